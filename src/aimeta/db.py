"""The one place that opens SQLite.

``connect`` opens (creating if needed) a database, sets the pragmas every writer needs (WAL,
foreign keys, busy timeout) and applies the pending migrations of :mod:`aimeta.migrations` in
one transaction (schema.sql, the 0.1.0 baseline, is migration 1), with a backup copy first when
one rewrites a table; a database made by a newer aimeta is refused unchanged. Opening an
up-to-date database costs one query. ``open_existing`` opens a database a run has made,
read-only or for writing; ``upgrade`` and ``schema_info`` serve ``aimeta db``. Writers group
work with ``transaction`` so a killed run loses at most the current batch.

How an image is identified (the rows of every per-image table follow from this):

- ``images.id``: what every per-image row references (kv, tokens, resources, ``ratings.image_id``,
  ``user_ratings``, ``cull_decisions``). Set once, when the image is first stored: one past
  the largest id given before (migration 8; databases from before it keep their images'
  hashed ids), and never changed afterwards, even when the key changes.
- ``images.key``: the scanned folder's name and the path below it (``Input/sub/a.png``), unique.
  A new read of a file finds its row by key (:func:`store_batch`), so a file read again under
  the same key replaces its rows in place.
- ``images.path`` / ``root``: where the file is now; updated when a file is re-linked.
- ``images.sha256`` and ``size``: the content. A file missing from its stored path and a new
  file with the same size and sha256 are the same image (moved, renamed, its folder renamed):
  :mod:`aimeta.pipelines.relink` points the row at the new path and key and keeps its id.
  A file found under a new path with the same key, size and mtime is re-linked without reading.
- ``images.missing_since`` (migration 3): the file was not found at its path since then; its
  rows stay until ``aimeta prune``.
- ``ratings``: one AI rating per (path, model); ``image_id`` ties it to the image, and follows
  a re-link. ``path`` stays the key of the rating job's cache (a file rated before it is
  ingested has no image yet; ingest fills ``image_id`` once it is stored).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import time
import zlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from aimeta import __version__, migrations
from aimeta.errors import DatabaseBusy, DatabaseError, DatabaseTooNew
from aimeta.metadata.record import Record
from aimeta.metadata.resources import merge_resources
from aimeta.metadata.tokens import Token
from aimeta.migrations import MIGRATIONS, Migration, UpgradeResult

BUSY_TIMEOUT_MS = 30_000


def schema_path() -> Path:
    """schema.sql (the baseline schema) from an installed wheel or a source checkout."""
    return migrations.schema_path()


def connect(
    path: Path | str, *, migration_list: Sequence[Migration] = MIGRATIONS
) -> sqlite3.Connection:
    """Open (creating if needed) the database at ``path`` and bring its schema up to date.

    The connection is in autocommit mode; group writes with :func:`transaction`.
    ``migration_list`` is for tests of the mechanism.
    """
    conn, _result = _open_current(Path(path), migration_list, always_backup=False)
    return conn


def upgrade(path: Path | str, *, migration_list: Sequence[Migration] = MIGRATIONS) -> UpgradeResult:
    """Bring the existing database at ``path`` up to date, after a backup copy beside it when
    any migration is pending; says what was applied and where the backup is."""
    conn, result = _open_current(_existing(Path(path)), migration_list, always_backup=True)
    conn.close()
    return result


@dataclass(frozen=True)
class SchemaInfo:
    """The schema of a database as ``aimeta db version`` reports it."""

    path: str
    version: int
    known_version: int
    aimeta_version: str
    made_by: str | None
    applied: list[dict[str, Any]]
    pending: list[str]
    newer: str | None = None  # why this aimeta would refuse the database, when it would


def schema_info(
    path: Path | str, *, migration_list: Sequence[Migration] = MIGRATIONS
) -> SchemaInfo:
    """The schema number of the database at ``path``, its applied and pending migrations, and
    whether it is newer than this aimeta (read-only)."""
    conn = open_existing(path, readonly=True)
    try:
        state = migrations.read_state(conn)
    except sqlite3.DatabaseError as exc:
        raise _translate(exc, Path(path)) from exc
    finally:
        conn.close()
    try:
        todo, newer = migrations.pending(state, migration_list), None
    except DatabaseTooNew as exc:
        todo, newer = [], exc.message
    return SchemaInfo(
        str(path),
        state.version,
        migration_list[-1].number,
        __version__,
        state.unrecorded,
        [
            {
                "number": step.number,
                "name": step.name,
                "aimeta_version": step.aimeta_version,
                "rewrites_table": step.rewrites_table,
                "applied_at": step.applied_at,
            }
            for step in state.applied
        ],
        [step.name for step in todo],
        newer,
    )


def use_wal(conn: sqlite3.Connection) -> None:
    """Put a database file in WAL mode unless it already is (the mode is kept in the file).

    Switching needs the file to itself, and SQLite can answer "database is locked" to the
    switch at once, without calling the busy handler, while another connection is opening the
    same new file (the library page's first thumbnails arrive together on several threads; two
    `aimeta` commands may start on one new database). So the mode is read first, and a refused
    switch is tried again for a few seconds."""
    deadline = time.monotonic() + 10
    while True:
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


# One query tells whether an open needs any work: the schema number, and how many of the
# indexes a bulk load drops are there (see deferred_indexes).
_QUICK_CHECK = (
    "SELECT (SELECT user_version FROM pragma_user_version),"
    " (SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name IN ({}))"
)


def _open_current(
    path: Path, migration_list: Sequence[Migration], *, always_backup: bool
) -> tuple[sqlite3.Connection, UpgradeResult]:
    if str(path) != ":memory:":
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatabaseError(f"cannot create the folder for {path}: {exc.strerror}") from exc
    latest = migration_list[-1].number
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    except sqlite3.DatabaseError as exc:
        raise _translate(exc, path) from exc
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        marks = ",".join("?" * len(DEFERRABLE_INDEXES))
        version, indexes = conn.execute(_QUICK_CHECK.format(marks), DEFERRABLE_INDEXES).fetchone()
        if version != latest:
            # Read-only, before any pragma writes: a newer database is refused untouched.
            migrations.pending(migrations.read_state(conn), migration_list)
        if str(path) != ":memory:":
            use_wal(conn)
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        result = UpgradeResult(version, latest)
        if version != latest:
            on_disk = None if str(path) == ":memory:" else path
            result = migrations.upgrade(conn, on_disk, migration_list, always_backup=always_backup)
        if version != latest or indexes < len(DEFERRABLE_INDEXES):
            _restore_deferred_indexes(conn)
    except BaseException as exc:
        conn.close()
        if isinstance(exc, sqlite3.DatabaseError):
            raise _translate(exc, path) from exc
        raise
    return conn, result


def _existing(path: Path) -> Path:
    if not path.is_file():
        raise DatabaseError(f"no database at {path}: run `aimeta ingest` or `aimeta all` first")
    return path


def open_existing(path: Path | str, *, readonly: bool = False) -> sqlite3.Connection:
    """Open a database that `aimeta ingest` or `aimeta all` made (a missing file is an error,
    not a new empty database): ``readonly`` so that no statement can change it, else for
    writing through :func:`connect` (which brings its schema up to date)."""
    path = _existing(Path(path))
    if not readonly:
        return connect(path)
    try:
        conn = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False
        )
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA query_only = ON")
    except sqlite3.DatabaseError as exc:
        raise _translate(exc, path) from exc
    return conn


def open_readonly(path: Path | str) -> sqlite3.Connection:
    """Open an existing database so that no statement can change it (``open_existing``)."""
    return open_existing(path, readonly=True)


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception.

    IMMEDIATE takes the write lock up front, so two writers wait for each other (up to the
    busy timeout) instead of failing half-way through a batch.
    """
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        raise _translate(exc, None) from exc
    try:
        yield conn
    except BaseException as exc:
        # SQLite has already rolled back by itself after a full disk or an I/O error; a
        # second ROLLBACK would raise and hide the real reason.
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        if isinstance(exc, sqlite3.DatabaseError):
            raise _translate(exc, None) from exc
        raise
    else:
        try:
            conn.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise _translate(exc, None) from exc


# Secondary indexes that a large ingest drops and builds again at the end: building an index
# from sorted rows is ~3x cheaper than keeping it up to date row by row. Their definitions are
# those of the schema (a test compares them); a migration that changes one changes it here too.
DEFERRABLE_INDEX_SQL = {
    "idx_tokens_norm": "CREATE INDEX idx_tokens_norm ON token_rows(norm_id, side, image_id)",
    "idx_kv_key_value": "CREATE INDEX idx_kv_key_value ON kv(key, value)\n"
    "    WHERE key NOT IN ('prompt', 'negative_prompt')",
    "idx_kv_model_nocase": "CREATE INDEX idx_kv_model_nocase ON kv(value COLLATE NOCASE,"
    " image_id)\n    WHERE key = 'model'",
}
DEFERRABLE_INDEXES = tuple(DEFERRABLE_INDEX_SQL)
# Migration 5's fixed planner statistics for a deferrable index (table, stat). DROP INDEX
# deletes the index's sqlite_stat1 row, and without it the README's top-tokens query sorts
# every token row's text (1,000,000 images: seconds); the rebuild writes the row back.
DEFERRABLE_INDEX_STATS = {"idx_tokens_norm": ("token_rows", "1000000 1000 500 1")}
# idx_kv_key_value (kv by key and value) leaves out the prompts (migration 6). SQLite uses a
# partial index only when the query's WHERE contains the index's condition as written, so a
# query that finds kv rows by key (and value) without an image id ANDs this in; without it
# that query reads the whole kv table.
PROMPT_KEYS = ("prompt", "negative_prompt")
PARAMETER_ROWS = "key NOT IN ('prompt', 'negative_prompt')"
BULK_CHECKPOINT_PAGES = 25_000


@contextmanager
def deferred_indexes(conn: sqlite3.Connection, enabled: bool = True) -> Iterator[None]:
    """Drop the :data:`DEFERRABLE_INDEXES` for the duration of a bulk load, then rebuild them.

    Crash-safe: if the run is killed before the rebuild, the next :func:`connect` finds them
    missing (its one query on opening counts them) and creates them. A run interrupted by
    Ctrl-C leaves the rebuild to that next connect too, rather than keeping the user waiting.
    """
    if not enabled:
        yield
        return
    # Checkpoints (copying the write-ahead log into the database, with two fsyncs) every
    # ~100 MB instead of every 4 MB: a third of the load's commit time on this kind of disk.
    checkpoint_pages = conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
    conn.execute(f"PRAGMA wal_autocheckpoint = {BULK_CHECKPOINT_PAGES}")
    with transaction(conn):
        present = _present_deferrable_indexes(conn)
        for name in present:
            conn.execute(f'DROP INDEX "{name}"')
    try:
        yield
    except Exception:
        # Best effort (the database may be what failed): if this fails too, the next
        # connect() rebuilds them.
        with suppress(DatabaseError):
            _restore_deferred_indexes(conn)
        raise
    finally:
        with suppress(sqlite3.Error):  # a connection already closed needs nothing back
            conn.execute(f"PRAGMA wal_autocheckpoint = {int(checkpoint_pages)}")
    _restore_deferred_indexes(conn)


def checkpoint(path: Path | str) -> None:
    """Copy what the write-ahead log holds into the database file, through a connection of its
    own, without waiting for other connections (a passive checkpoint; best effort: a busy or
    failing one leaves the log to the next checkpoint)."""
    with suppress(sqlite3.Error):
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000)
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            conn.close()


def _present_deferrable_indexes(conn: sqlite3.Connection) -> list[str]:
    marks = ",".join("?" * len(DEFERRABLE_INDEXES))
    rows = conn.execute(
        f"SELECT name FROM sqlite_master WHERE type = 'index' AND name IN ({marks})",
        DEFERRABLE_INDEXES,
    )
    return [row[0] for row in rows]


def _restore_deferred_indexes(conn: sqlite3.Connection) -> None:
    """Create whichever of the deferrable indexes is missing (a bulk load dropped it)."""
    missing = set(DEFERRABLE_INDEXES) - set(_present_deferrable_indexes(conn))
    if not missing:
        return
    has_stats = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_stat1'"
    ).fetchone()
    with transaction(conn):
        for name in DEFERRABLE_INDEXES:
            if name in missing:
                sql = DEFERRABLE_INDEX_SQL[name]
                conn.execute(sql.replace("CREATE INDEX", "CREATE INDEX IF NOT EXISTS", 1))
                if has_stats and name in DEFERRABLE_INDEX_STATS:
                    table, stat = DEFERRABLE_INDEX_STATS[name]
                    conn.execute("DELETE FROM sqlite_stat1 WHERE idx = ?", (name,))
                    conn.execute("INSERT INTO sqlite_stat1 VALUES (?, ?, ?)", (table, name, stat))
    if has_stats:
        conn.execute("ANALYZE sqlite_schema")  # this connection's planner reads them again


def _translate(exc: sqlite3.DatabaseError, path: Path | None) -> DatabaseError:
    text = str(exc)
    where = f" ({path})" if path else ""
    if "locked" in text or "busy" in text:
        return DatabaseBusy()
    if "disk" in text or "full" in text:
        return DatabaseError(f"cannot write the database{where}: {text} (is the disk full?)")
    return DatabaseError(f"database error{where}: {text}")


def image_id(key: str) -> int:
    """A stable 63-bit hash of ``key``: the provisional id of the rows :func:`image_rows`
    builds (in a worker, before the database is asked), replaced by the image's real id when
    they are stored (:func:`store_batch`; ids given before migration 8 were this hash). Look an
    image up by ``images.key``, never by hashing a key."""
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode("utf-8")


# The raw metadata of an image (every text field read from its file, as JSON) is kept in
# images.raw_zlib, zlib-compressed, when that saves at least a fifth of it (migration 6); a
# short text that would not shrink stays readable in images.raw_json. aimeta sets one of the
# two; raw_json wins when both are set (someone's edit in DB Browser takes effect). SQLite
# cannot decompress, so DB Browser shows the blob: `aimeta show PATH --raw` prints it.
RAW_COLUMNS = "raw_json, raw_zlib"
RAW_ZLIB_LEVEL = 6
_RAW_MIN_SAVING = 0.2


def pack_raw(text: str) -> tuple[str | None, bytes | None]:
    """(raw_json, raw_zlib) to store for the raw metadata ``text``."""
    data = text.encode("utf-8")
    if len(data) < 64:
        return text, None
    packed = zlib.compress(data, RAW_ZLIB_LEVEL)
    if len(packed) > len(data) * (1 - _RAW_MIN_SAVING):
        return text, None
    return None, packed


def raw_text(raw_json: str | None, raw_zlib: bytes | None) -> str | None:
    """The raw metadata stored as (raw_json, raw_zlib), as the JSON text it was."""
    if raw_json is None and raw_zlib is not None:
        return zlib.decompress(raw_zlib).decode("utf-8")
    return raw_json


def raw_fields(raw_json: str | None, raw_zlib: bytes | None) -> Any:
    """The raw metadata stored as (raw_json, raw_zlib), parsed (None when nothing is stored)."""
    text = raw_text(raw_json, raw_zlib)
    return orjson.loads(text) if text else None


@dataclass(slots=True)
class ImageRows:
    """Every row one image contributes, ready to insert (plain tuples: cheap to send between
    processes, and written with one ``executemany`` per table for a whole batch)."""

    ident: int
    image: tuple[Any, ...]
    kv: list[tuple[int, str, Any]] = field(default_factory=list)
    fts: tuple[int, str | None, str | None] | None = None
    tokens: list[tuple[int, str, int, str, str, float]] = field(default_factory=list)
    resources: list[tuple[Any, ...]] = field(default_factory=list)


def image_rows(
    image: dict[str, Any],
    record: Record | None,
    tokens: Sequence[tuple[str, Token]] = (),
) -> ImageRows:
    """The rows of one image (pure): ``image`` carries key, path, root, file_name, ext, size,
    mtime_ns, sha256, width, height, reader, raw (the text fields), parser_version and
    generator (used when ``record`` is None)."""
    ident = image_id(image["key"])
    generator = record.generator if record else image.get("generator", "none")
    row = (
        ident,
        image["key"],
        image["path"],
        image.get("root"),
        image["file_name"],
        image.get("ext"),
        image.get("size"),
        image.get("mtime_ns"),
        image.get("sha256"),
        image.get("width"),
        image.get("height"),
        generator,
        image.get("reader"),
        *pack_raw(_json(image.get("raw") or {})),
        _json(record.extra) if record and record.extra else None,
        _json(record.warnings) if record and record.warnings else None,
        image.get("parser_version"),
    )
    rows = ImageRows(ident, row)
    if record is None:
        return rows
    rows.kv = [(ident, key, value) for key, value in record.params.items()]
    if record.prompt is not None:
        rows.kv.append((ident, "prompt", record.prompt))
    if record.negative_prompt is not None:
        rows.kv.append((ident, "negative_prompt", record.negative_prompt))
    if record.prompt is not None or record.negative_prompt is not None:
        # One full-text row per image (see prompts_fts in schema.sql).
        rows.fts = (ident, record.prompt, record.negative_prompt)
    # Token is a named tuple (position, t_raw, t_norm, weight): the row is the id, side and it.
    rows.tokens = [(ident, side, *token) for side, token in tokens]
    rows.resources = resource_rows(ident, record)
    return rows


def store_image(
    conn: sqlite3.Connection,
    image: dict[str, Any],
    record: Record | None,
    tokens: Sequence[tuple[str, Token]] = (),
) -> int:
    """Replace everything stored for one image (inside the caller's transaction); its id."""
    (ident,) = store_batch(conn, [image_rows(image, record, tokens)])
    return ident


_INSERT_IMAGE = """INSERT INTO images (id, key, path, root, file_name, ext, size, mtime_ns,
       sha256, width, height, generator, reader, raw_json, raw_zlib, extra_json,
       warnings_json, parser_version, ingested_at)
   VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?, strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
   ON CONFLICT(id) DO UPDATE SET key=excluded.key, path=excluded.path,
       root=excluded.root, file_name=excluded.file_name, ext=excluded.ext,
       size=excluded.size, mtime_ns=excluded.mtime_ns, sha256=excluded.sha256,
       width=excluded.width, height=excluded.height, generator=excluded.generator,
       reader=excluded.reader, raw_json=excluded.raw_json, raw_zlib=excluded.raw_zlib,
       extra_json=excluded.extra_json, warnings_json=excluded.warnings_json,
       parser_version=excluded.parser_version, ingested_at=excluded.ingested_at"""


_INSERT_RESOURCE = (
    "INSERT INTO resources (image_id, kind, name, weight, weight_clip, hash, hash_type,"
    " source, extra_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def store_batch(conn: sqlite3.Connection, batch: Sequence[ImageRows]) -> list[int]:
    """Replace everything stored for each image of ``batch`` (inside the caller's
    transaction): one statement per table for the whole batch; the id each image has in the
    database, in the batch's order. When an image appears twice, the later rows win, as if
    they had been stored one after the other."""
    batch, seen_before = _adopt_stored_ids(conn, batch)
    given = [rows.ident for rows in batch]
    latest = {rows.ident: rows for rows in batch}
    # In id order every table's rows land left to right in its B-tree (~10 % faster than the
    # random order of hashed ids).
    batch = [latest[ident] for ident in sorted(latest)]
    if seen_before:
        # Only an image seen before has rows to replace. Its full-text row goes first, so the
        # trigger on kv has nothing to keep current (else it re-indexes the prompts per
        # deleted prompt row: 3,000 images replaced, 1.3 s -> 0.1 s).
        ids = [(ident,) for ident in seen_before]
        drop_prompt_index_rows(conn, seen_before)
        conn.executemany("DELETE FROM kv WHERE image_id = ?", ids)
        conn.executemany("DELETE FROM token_rows WHERE image_id = ?", ids)
        conn.executemany("DELETE FROM resources WHERE image_id = ?", ids)
    conn.executemany(_INSERT_IMAGE, [rows.image for rows in batch])
    conn.executemany(
        "INSERT INTO kv (image_id, key, value) VALUES (?, ?, ?)",
        [row for rows in batch for row in rows.kv],
    )
    conn.executemany(
        "INSERT INTO prompts_fts (rowid, prompt, negative_prompt) VALUES (?, ?, ?)",
        [rows.fts for rows in batch if rows.fts is not None],
    )
    _store_tokens(conn, [row for rows in batch for row in rows.tokens])
    conn.executemany(_INSERT_RESOURCE, [row for rows in batch for row in rows.resources])
    return given


def drop_prompt_index_rows(conn: sqlite3.Connection, ids: Sequence[int]) -> None:
    """Take images out of the full-text index while their kv rows still hold the prompts it
    indexed (it reads them from there to know what to remove). Only images it has: removing
    one it never indexed would remove tokens it does not have (see migration 6)."""
    for start in range(0, len(ids), 500):
        chunk = list(ids[start : start + 500])
        marks = ",".join("?" * len(chunk))
        indexed = conn.execute(
            f"SELECT id FROM prompts_fts_docsize WHERE id IN ({marks})", chunk
        ).fetchall()
        conn.executemany("DELETE FROM prompts_fts WHERE rowid = ?", indexed)


# Normalised tokens of one side (parameter) counted by images, straight from the compact
# tables: grouping by norm_id walks idx_tokens_norm in order (no sort for the groups, no text
# looked up per row); callers add ORDER BY and LIMIT.
TOKEN_COUNTS_SQL = (
    "SELECT (SELECT text FROM token_texts WHERE id = norm_id) AS t_norm,"
    " COUNT(DISTINCT image_id) AS n FROM token_rows WHERE side = ? GROUP BY norm_id"
)


def _store_tokens(
    conn: sqlite3.Connection, tokens: list[tuple[int, str, int, str, str, float]]
) -> None:
    """Insert token rows given with their texts as token_rows (texts interned)."""
    if not tokens:
        return
    text_ids = intern_texts(conn, {text for row in tokens for text in (row[3], row[4])})
    conn.executemany(
        "INSERT INTO token_rows (image_id, side, position, raw_id, norm_id, weight)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        [
            (ident, side, position, text_ids[raw], text_ids[norm], weight)
            for ident, side, position, raw, norm, weight in tokens
        ],
    )


def intern_texts(conn: sqlite3.Connection, texts: Iterable[str]) -> dict[str, int]:
    """The token_texts id of each text, adding the texts not stored yet (inside the caller's
    transaction). A batch repeats a few thousand texts many times: they are looked up once."""
    wanted = list(texts)
    ids = _text_ids(conn, wanted)
    missing = [text for text in wanted if text not in ids]
    if missing:
        conn.executemany("INSERT INTO token_texts (text) VALUES (?)", [(t,) for t in missing])
        ids.update(_text_ids(conn, missing))
    return ids


def _text_ids(conn: sqlite3.Connection, texts: list[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for start in range(0, len(texts), 500):
        chunk = texts[start : start + 500]
        marks = ",".join("?" * len(chunk))
        found.update(
            conn.execute(f"SELECT text, id FROM token_texts WHERE text IN ({marks})", chunk)
        )
    return found


def _adopt_stored_ids(
    conn: sqlite3.Connection, batch: Sequence[ImageRows]
) -> tuple[list[ImageRows], list[int]]:
    """``batch`` with each image's rows under the id stored for its key, or a new id for a new
    key; and the ids already stored. Looked up by key: an image re-linked by content (its
    folder renamed) keeps the id it had under its first key (see the module docstring)."""
    keys = list(dict.fromkeys(rows.image[1] for rows in batch))  # in order, once each
    stored: dict[str, int] = {}
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        marks = ",".join("?" * len(chunk))
        stored.update(conn.execute(f"SELECT key, id FROM images WHERE key IN ({marks})", chunk))
    new_keys = [key for key in keys if key not in stored]
    given = dict(zip(new_keys, _new_ids(conn, len(new_keys)), strict=True))
    adopted = []
    for rows in batch:
        key = rows.image[1]
        ident = stored[key] if key in stored else given[key]
        adopted.append(rows if ident == rows.ident else _with_id(rows, ident))
    return adopted, sorted(set(stored.values()))


def _new_ids(conn: sqlite3.Connection, count: int) -> list[int]:
    """``count`` ids for new images (inside the caller's transaction): one past the largest
    id ever given, counting up (migration 8 says why), recorded as taken. Only past SQLite's
    largest integer (a database of hashed ids from before migration 8 may start near it) is
    a new id the hash of a random text, checked to be free."""
    if count == 0:
        return []
    last = conn.execute(_LAST_ID).fetchone()[0]
    if last + count > _LARGEST_ID:
        taken: set[int] = set()
        return [_free_id(conn, os.urandom(16).hex(), taken) for _ in range(count)]
    conn.execute("UPDATE image_id_seq SET last = ?", (last + count,))
    return list(range(last + 1, last + count + 1))


# The largest id given so far: the counter, or a larger id some other writer stored.
_LAST_ID = (
    "SELECT MAX(COALESCE((SELECT MAX(last) FROM image_id_seq), 0),"
    " COALESCE((SELECT MAX(id) FROM images), 0))"
)
_LARGEST_ID = 2**63 - 1


def _free_id(conn: sqlite3.Connection, key: str, taken: set[int]) -> int:
    """An id for ``key`` that no stored image has (the hash of the key and a counter)."""
    for attempt in range(1, 1000):
        ident = image_id(f"{key}\0{attempt}")
        if (
            ident not in taken
            and not conn.execute("SELECT 1 FROM images WHERE id = ?", (ident,)).fetchone()
        ):
            taken.add(ident)
            return ident
    raise DatabaseError(f"no free image id for {key}")


def _with_id(rows: ImageRows, ident: int) -> ImageRows:
    """The same rows under another image id."""
    return ImageRows(
        ident,
        (ident, *rows.image[1:]),
        [(ident, *row[1:]) for row in rows.kv],
        (ident, *rows.fts[1:]) if rows.fts is not None else None,
        [(ident, *row[1:]) for row in rows.tokens],
        [(ident, *row[1:]) for row in rows.resources],
    )


def resource_rows(ident: int, record: Record) -> list[tuple[Any, ...]]:
    """The merged resources of ``record`` as rows of the resources table."""
    return [
        (
            ident,
            row.kind,
            row.name,
            row.weight,
            row.weight_clip,
            row.hash,
            row.hash_type,
            row.source,
            _json(row.extra) if row.extra else None,
        )
        for row in merge_resources(record.resources)
    ]


def store_resources(conn: sqlite3.Connection, ident: int, record: Record) -> None:
    """Insert the merged resources of ``record`` for image ``ident`` (rows must be absent)."""
    conn.executemany(_INSERT_RESOURCE, resource_rows(ident, record))


def record_error(conn: sqlite3.Connection, path: str, stage: str, reason: str) -> None:
    """Remember that ``path`` failed in ``stage`` (replacing an older reason)."""
    conn.execute(
        "INSERT INTO errors (path, stage, reason) VALUES (?, ?, ?)"
        " ON CONFLICT(path, stage) DO UPDATE SET reason=excluded.reason, at=excluded.at",
        (path, stage, reason[:2000]),
    )


def clear_errors(conn: sqlite3.Connection, paths: Iterable[str], *stages: str) -> None:
    """Forget earlier failures of ``paths`` in ``stages`` (they have now succeeded)."""
    conn.executemany(
        "DELETE FROM errors WHERE path = ? AND stage = ?",
        [(path, stage) for path in paths for stage in stages],
    )


def apply_errors(conn: sqlite3.Connection, outcome: dict[tuple[str, str], str | None]) -> None:
    """Record (reason) or forget (None) the failure of each (path, stage) in ``outcome``."""
    failed = [
        (path, stage, reason[:2000])
        for (path, stage), reason in outcome.items()
        if reason is not None
    ]
    conn.executemany(
        "INSERT INTO errors (path, stage, reason) VALUES (?, ?, ?)"
        " ON CONFLICT(path, stage) DO UPDATE SET reason=excluded.reason, at=excluded.at",
        failed,
    )
    cleared = [key for key, reason in outcome.items() if reason is None]
    # Most runs have no error rows at all: one query saves a delete per file and stage.
    if cleared and conn.execute("SELECT 1 FROM errors LIMIT 1").fetchone():
        conn.executemany("DELETE FROM errors WHERE path = ? AND stage = ?", cleared)


def summary(conn: sqlite3.Connection) -> dict[str, Any]:
    """Counts for the end-of-run summary: images by generator, tokens, resources, errors."""
    by_generator = dict(
        conn.execute(
            "SELECT generator, COUNT(*) FROM images GROUP BY generator ORDER BY COUNT(*) DESC"
        ).fetchall()
    )

    def count(table: str) -> int:
        return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])

    return {
        "images": sum(by_generator.values()),
        "by_generator": by_generator,
        "tokens": count("token_rows"),
        "resources": count("resources"),
        "ratings": count("ratings"),
        "errors": count("errors"),
    }
