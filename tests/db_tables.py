"""What two databases built from the same files must agree on, table by table (keyed by the
image key, not the id, and without the columns that hold times or file names of a run)."""

from __future__ import annotations

import sqlite3
from typing import Any

QUERIES = {
    "images": "SELECT key, generator, width, height, sha256 FROM images ORDER BY key",
    "kv": "SELECT i.key, kv.key, kv.value FROM kv JOIN images i ON i.id = kv.image_id"
    " ORDER BY 1, 2",
    "tokens": "SELECT i.key, side, position, t_raw, t_norm, weight FROM tokens"
    " JOIN images i ON i.id = tokens.image_id ORDER BY 1, 2, 3",
    "resources": "SELECT i.key, kind, name, weight, weight_clip, hash, hash_type, source"
    " FROM resources JOIN images i ON i.id = resources.image_id ORDER BY 1, 2, 3",
    "errors": "SELECT path, stage FROM errors ORDER BY 1, 2",
}


def tables(conn: sqlite3.Connection, extra: dict[str, str] | None = None) -> dict[str, list[Any]]:
    """The rows of every query in QUERIES (and ``extra``)."""
    queries = {**QUERIES, **(extra or {})}
    return {name: conn.execute(sql).fetchall() for name, sql in queries.items()}
