"""show: one image's stored record, found by its file path, and its raw metadata text.

The record is what the library's detail view shows (:func:`aimeta.pipelines.library.detail`)
without the web page's links; the raw text comes out of ``images.raw_zlib`` decompressed,
which DB Browser cannot do (migration 6).
"""

from __future__ import annotations

import os
import sqlite3
from typing import Any

from aimeta.errors import InputError
from aimeta.pipelines import library

# Links that only the web page can follow.
_WEB_ONLY = ("file", "thumb")


def find_image(conn: sqlite3.Connection, path: str) -> int:
    """The id of the image stored for ``path``: its absolute path as given, or with links
    resolved, or the stored key (``Input/sub/a.png``); InputError when none matches."""
    candidates = dict.fromkeys((os.path.abspath(path), os.path.realpath(path), path))
    for candidate in candidates:
        row = conn.execute(
            "SELECT id FROM images WHERE path = ? ORDER BY missing_since IS NOT NULL LIMIT 1",
            (candidate,),
        ).fetchone()
        if row is not None:
            return int(row[0])
    row = conn.execute("SELECT id FROM images WHERE key = ?", (path,)).fetchone()
    if row is not None:
        return int(row[0])
    raise InputError(f"{path}: not in the database (read it with `aimeta all` or `aimeta ingest`)")


def stored_record(conn: sqlite3.Connection, path: str, *, raw: bool = False) -> dict[str, Any]:
    """Everything stored about the image at ``path``; with ``raw``, its raw metadata fields
    (``raw``: {field name: text}) too."""
    info = library.detail(conn, find_image(conn, path), raw=raw)
    if info is None:  # deleted between the two queries
        raise InputError(f"{path}: not in the database")
    for name in _WEB_ONLY:
        info.pop(name, None)
    return info
