"""resources: rebuild the resources table from the raw metadata stored for every image.

The text fields of each image are kept in ``images.raw_json`` (or compressed in ``raw_zlib``),
so a parser improvement applies
by parsing them again, without reading any file. Images are read in id order, a batch at a
time (keyset paging, so memory stays flat however large the database is), and each batch's
rows are replaced inside one transaction: a killed run loses at most one batch, and running it
again gives the same table. Only ``resources`` (and ``errors`` for stage ``resources``) change;
kv and tokens are left as ingest wrote them.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from aimeta import db, events
from aimeta.metadata.parsers import parse_fields
from aimeta.metadata.record import Record

STAGE = "resources"


@dataclass
class ResourcesResult:
    """What a rebuild did: images parsed, rows stored per kind, images that failed."""

    images: int = 0
    rows: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    failures: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0


def run(
    conn: sqlite3.Connection,
    *,
    batch_size: int = 500,
    on_event: events.OnEvent = events.ignore,
) -> ResourcesResult:
    """Re-parse the stored fields of every image in ``conn`` and replace its resource rows.

    Returns the counts; the rows per kind are those in the table at the end.
    """
    started = time.perf_counter()
    result = ResourcesResult()
    total = conn.execute("SELECT COUNT(*) FROM images").fetchone()[0]
    on_event(events.Started(STAGE, total=total))
    last_id: int | None = None
    while True:
        batch = _next_batch(conn, last_id, max(1, batch_size))
        if not batch:
            break
        last_id = batch[-1][0]
        with db.transaction(conn):
            for image_id, path, raw_json, raw_zlib in batch:
                _rebuild_one(conn, image_id, path, (raw_json, raw_zlib), result)
        result.images += len(batch)
        on_event(events.Progress(STAGE, advance=len(batch), item=batch[-1][1]))
    on_event(events.Finished(STAGE))
    result.by_kind = dict(
        conn.execute("SELECT kind, COUNT(*) FROM resources GROUP BY kind ORDER BY kind").fetchall()
    )
    result.rows = sum(result.by_kind.values())
    for path, reason in result.failures[:20]:
        on_event(events.Log(f"{path}: {reason}", level="warning"))
    result.seconds = time.perf_counter() - started
    return result


def _next_batch(
    conn: sqlite3.Connection, after: int | None, size: int
) -> list[tuple[int, str, str | None, bytes | None]]:
    if after is None:
        rows = conn.execute(
            f"SELECT id, path, {db.RAW_COLUMNS} FROM images ORDER BY id LIMIT ?", (size,)
        ).fetchall()
    else:
        rows = conn.execute(
            f"SELECT id, path, {db.RAW_COLUMNS} FROM images WHERE id > ? ORDER BY id LIMIT ?",
            (after, size),
        ).fetchall()
    return [(int(row[0]), str(row[1]), row[2], row[3]) for row in rows]


def _fields(raw_json: str | None) -> dict[str, str]:
    """The stored text fields; values that are not text (an old or foreign writer) become text."""
    if not raw_json:
        return {}
    loaded: Any = orjson.loads(raw_json)
    if not isinstance(loaded, dict):
        raise ValueError("raw_json is not an object of text fields")
    return {
        str(key): value if isinstance(value, str) else orjson.dumps(value).decode()
        for key, value in loaded.items()
    }


def _rebuild_one(
    conn: sqlite3.Connection,
    image_id: int,
    path: str,
    raw: tuple[str | None, bytes | None],
    result: ResourcesResult,
) -> None:
    conn.execute("DELETE FROM resources WHERE image_id = ?", (image_id,))
    try:
        record = parse_fields(_fields(db.raw_text(*raw)))
    except Exception as exc:  # one bad image must not stop the rebuild
        reason = f"could not re-parse the stored metadata: {exc!r}"
        db.record_error(conn, path, STAGE, reason)
        result.failures.append((path, reason))
        record = Record(generator="unknown")
    else:
        db.clear_errors(conn, [path], STAGE)
    db.store_resources(conn, image_id, record)
