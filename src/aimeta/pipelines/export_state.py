"""Whether records.jsonl / records.csv are current, so a run rewrites only what changed.

A small JSON file next to the database (``images.db.exports.json``) names the two files last
written from it, by path, size, modification time and inode, and lists the changes stored
since then that they do not show yet (``pending``: ``aimeta watch`` batches). While it is
there and the files are exactly those, they show the database except for ``pending``: a run
merges its own changes and the pending ones into them (:func:`aimeta.pipelines.export.
merge_both`), and a run that changed nothing leaves them alone. Otherwise they are written
whole.

What keeps that true:

- A run that writes the database and keeps track of its changes (``all``, ``watch``,
  ``ingest``) first *claims* the state: renames it to a claim file of its own, so that if it is
  killed after writing there is no state and the next run writes the files whole. At the end
  it publishes the new state by renaming its claim back, only when its claim is still there
  and nobody else claimed meanwhile.
- A command that changes stored records without keeping track (``resources``, ``resolve
  --rewrite``, ``prune``, a moved folder re-linked by ``watch``) *forgets* the state and every
  claim, before and after it writes (:func:`changing`): the next run writes the files whole,
  and a run exporting meanwhile does not publish.
- SQL run by hand on the database is not seen: ``aimeta export`` writes the files whole.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from aimeta.migrations import MIGRATIONS_TABLE
from aimeta.pipelines import export
from aimeta.pipelines.export import Changes

SUFFIX = ".exports.json"


def state_path(database: Path) -> Path:
    """The state file of ``database``."""
    return database.with_name(database.name + SUFFIX)


def file_identity(path: Path) -> dict[str, Any] | None:
    """What a written file is known by: absolute path, size, modification time, inode."""
    try:
        found = path.stat()
    except OSError:
        return None
    return {
        "path": os.path.abspath(path),
        "size": found.st_size,
        "mtime_ns": found.st_mtime_ns,
        "inode": found.st_ino,
    }


def database_identity(conn: sqlite3.Connection) -> list[Any]:
    """What tells this database from another made at the same path (deleted and made again):
    its file's inode and when its first migration was applied."""
    row = conn.execute("PRAGMA database_list").fetchone()
    created = conn.execute(f"SELECT applied_at FROM {MIGRATIONS_TABLE} WHERE number = 1").fetchone()
    return [os.stat(row[2]).st_ino if row and row[2] else None, created[0] if created else None]


@dataclass
class State:
    """The database and the files written last from it, and the changes they do not show yet."""

    database: list[Any]
    files: list[dict[str, Any] | None]
    pending: Changes = field(default_factory=Changes)
    # The largest image id once the files were written: an image above it is not in them
    # (export.merge_both appends then). None in a state written before it was kept.
    top_id: int | None = None

    def describes(self, conn: sqlite3.Connection, *paths: Path) -> bool:
        """Whether ``paths`` are the files this state names, unchanged since written from the
        database of ``conn``."""
        return self.database == database_identity(conn) and self.files == [
            file_identity(path) for path in paths
        ]

    def dumps(self) -> bytes:
        pending = {
            "ids": sorted(self.pending.ids),
            "keys": sorted(self.pending.keys),
            "paths": sorted(self.pending.paths),
        }
        return orjson.dumps(
            {
                "database": self.database,
                "files": self.files,
                "pending": pending,
                "top_id": self.top_id,
            }
        )

    @classmethod
    def loads(cls, text: bytes) -> State | None:
        """The state in ``text``, or None when it is not one (empty, cut short, edited)."""
        try:
            data = orjson.loads(text)
            pending = data["pending"]
            return cls(
                list(data["database"]),
                list(data["files"]),
                Changes(
                    {int(ident) for ident in pending["ids"]},
                    {str(key) for key in pending["keys"]},
                    {str(path) for path in pending["paths"]},
                ),
                None if data.get("top_id") is None else int(data["top_id"]),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return None


@dataclass
class Claim:
    """The state taken by one run (``previous``: None when there was none) and its claim file;
    ``shared``: another run held a claim too, so this one publishes nothing."""

    database: Path
    path: Path
    previous: State | None
    shared: bool = False


def claim(database: Path) -> Claim:
    """Take the state of ``database`` for a run that is about to write it.

    With no state to take, the claims found are those of runs busy now or killed: they are
    removed (a busy run then publishes nothing; a killed one's claim would block publishing
    forever) and this run publishes nothing either, once."""
    state = state_path(database)
    mine = state.with_name(f"{state.name}.claim-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        os.rename(state, mine)
    except FileNotFoundError:
        others = _claims(database)
        forget(database)
        with contextlib.suppress(OSError):
            mine.parent.mkdir(parents=True, exist_ok=True)
            mine.write_bytes(b"")
        return Claim(database, mine, None, shared=bool(others))
    except OSError:  # a read-only folder: nothing can be claimed, and nothing published
        return Claim(database, mine, None)
    return Claim(database, mine, State.loads(mine.read_bytes()))


def publish(taken: Claim, state: State | None) -> bool:
    """End a claim: make ``state`` the state of the database (None: leave none), only when the
    claim is still there and no other run claimed or published meanwhile; whether it did."""
    target = state_path(taken.database)
    try:
        if state is None or taken.shared or not taken.path.exists():
            return False
        if target.exists() or any(path != taken.path for path in _claims(taken.database)):
            return False
        taken.path.write_bytes(state.dumps())
        os.rename(taken.path, target)
        return True
    except OSError:
        return False
    finally:
        with contextlib.suppress(OSError):
            taken.path.unlink(missing_ok=True)


@contextlib.contextmanager
def claimed(database: Path) -> Iterator[Claim]:
    """:func:`claim` for a ``with`` block; a claim not published by its end (a failure) is
    dropped, so the next run writes the files whole."""
    taken = claim(database)
    try:
        yield taken
    finally:
        with contextlib.suppress(OSError):
            taken.path.unlink(missing_ok=True)


@dataclass
class Refreshed:
    """How the files were brought up to date: ``unchanged`` (not touched), ``merged`` (the
    changed records merged in, or appended when they all come after the files' last) or
    ``written`` (whole); records written (by an append: those appended) and records read
    from the database."""

    how: str
    records: int = 0
    read: int = 0


def refresh(
    conn: sqlite3.Connection,
    taken: Claim,
    jsonl: Path,
    csv: Path,
    changes: Changes,
    *,
    whole: bool = False,
) -> Refreshed:
    """Bring ``jsonl`` and ``csv`` up to date with the database ``conn`` after the run that
    holds ``taken`` changed ``changes``, and publish the state they are in. Merged when the
    claimed state describes these very files (and not ``whole``), else written whole."""
    previous = taken.previous
    result: Refreshed | None = None
    if previous is not None and not whole and previous.describes(conn, jsonl, csv):
        pending = Changes()
        pending.update(previous.pending)
        pending.update(changes)
        if not pending:
            publish(taken, previous)
            return Refreshed("unchanged")
        with contextlib.suppress(export.NotMergeable):
            merged = export.merge_both(conn, jsonl, csv, pending, top_id=previous.top_id)
            result = Refreshed("merged", *merged)
    if result is None:
        written = export.write_both(conn, jsonl, csv)
        result = Refreshed("written", written, written)
    # Read after the files were written: at least the id of every image in them.
    (top_id,) = conn.execute("SELECT COALESCE(MAX(id), 0) FROM images").fetchone()
    files = [file_identity(jsonl), file_identity(csv)]
    publish(taken, State(database_identity(conn), files, top_id=top_id))
    return result


# Beyond this many pending changes the state is dropped and the next run writes the files
# whole: each watch batch rewrites the state file, which would otherwise grow all session.
PENDING_LIMIT = 20_000


def defer(taken: Claim, changes: Changes) -> None:
    """End the claim of a run that wrote ``changes`` without bringing the files up to date:
    they stay pending, for the next run to merge."""
    previous = taken.previous
    if previous is not None:
        previous.pending.update(changes)
        pending = previous.pending
        if len(pending.ids) + len(pending.keys) + len(pending.paths) > PENDING_LIMIT:
            previous = None
    publish(taken, previous)


def forget(database: Path) -> None:
    """Forget the state and every claim: the next run writes the files whole."""
    for path in [state_path(database), *_claims(database)]:
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)


@contextlib.contextmanager
def changing(database: Path) -> Iterator[None]:
    """Around writes that are not tracked: forget before (a killed run leaves no state) and
    after (a run that claimed meanwhile must not publish)."""
    forget(database)
    try:
        yield
    finally:
        forget(database)


def _claims(database: Path) -> list[Path]:
    state = state_path(database)
    try:
        names = os.listdir(state.parent)
    except OSError:
        return []
    prefix = state.name + ".claim-"
    return [state.parent / name for name in names if name.startswith(prefix)]
