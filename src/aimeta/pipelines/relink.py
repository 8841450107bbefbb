"""relink: point the stored rows of files found under a new path at that path.

A folder moved, re-mounted or synced to another machine keeps its files' keys (the scanned
folder's name and the path below it), so their ids, parameters, tokens and ratings stay; only
the paths stored beside them change. Re-linking costs an UPDATE per file instead of a read,
a parse and a re-store.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from aimeta import db
from aimeta.pipelines.dump import Moved


@dataclass
class RelinkResult:
    """How many images and AI ratings now point at a new path."""

    images: int = 0
    ratings: int = 0


def apply(conn: sqlite3.Connection, moved: Sequence[Moved]) -> RelinkResult:
    """Update ``images.path``/``root`` by key and move ratings and error rows from each old path
    to the new one, in one transaction. Repeating it changes nothing."""
    result = RelinkResult()
    if not moved:
        return result
    with db.transaction(conn):
        # rowcount of executemany: the rows changed by all its statements (without triggers).
        result.images = conn.executemany(
            "UPDATE images SET path = ?, root = ? WHERE key = ? AND path <> ?",
            [(str(m.path), str(m.root), m.key, str(m.path)) for m in moved],
        ).rowcount
        # OR IGNORE: a rating already stored under the new path (rated there by another run)
        # wins over the old one, which stays under its old path.
        pairs = [(str(m.path), m.old_path) for m in moved if m.old_path != str(m.path)]
        result.ratings = conn.executemany(
            "UPDATE OR IGNORE ratings SET path = ? WHERE path = ?", pairs
        ).rowcount
        conn.executemany("UPDATE OR IGNORE errors SET path = ? WHERE path = ?", pairs)
    return result
