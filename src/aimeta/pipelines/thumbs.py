"""Thumbnails for the library: made with Pillow on first request, kept in one SQLite file.

The cache is ``<database>.thumbs.db`` beside the database (``images.db`` ->
``images.thumbs.db``): one file instead of one small file per thumbnail, so a cached thumbnail
costs one primary-key lookup and copying a library copies two files. A row remembers the
image's size and mtime when it was made; a file that changed since gets a new thumbnail.
Sizes are rounded up to :data:`SIZES`, so a page asking for 200 px and one asking for 256 px
share a thumbnail.

JPEGs are decoded with Pillow's draft mode (the decoder scales by 1/2, 1/4 or 1/8 while
reading, several times faster for a large photo); every image is turned upright by its EXIF
orientation.
"""

from __future__ import annotations

import io
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from aimeta import db, events

SIZES = (128, 256, 512)
JPEG_QUALITY = 82
_ORIENTATION = 0x0112
# EXIF orientation -> the turn that makes the picture upright (as ImageOps.exif_transpose).
_TURNS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SCHEMA = """CREATE TABLE IF NOT EXISTS thumbs (
    image_id   INTEGER NOT NULL,
    size       INTEGER NOT NULL,
    src_size   INTEGER NOT NULL,
    src_mtime  INTEGER NOT NULL,
    jpeg       BLOB NOT NULL,
    PRIMARY KEY (image_id, size)
) WITHOUT ROWID"""


def cache_path(database: Path) -> Path:
    """``images.db`` -> ``images.thumbs.db`` beside it."""
    return database.with_name(database.stem + ".thumbs" + (database.suffix or ".db"))


def bucket(size: int) -> int:
    """The cached size that serves a request for ``size`` pixels (the next larger one)."""
    for candidate in SIZES:
        if size <= candidate:
            return candidate
    return SIZES[-1]


def render(path: Path, size: int) -> bytes:
    """A JPEG of ``path`` fitting in ``size`` x ``size``, upright."""
    with Image.open(path) as image:
        orientation = image.getexif().get(_ORIENTATION, 1)
        if image.format == "JPEG":
            image.draft("RGB", (size, size))
        # In place, on the decoded file (no copy of the full-size pixels); turned afterwards,
        # on the small picture (the box is square, so it still fits).
        image.thumbnail((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0)
        small: Image.Image = image
        turn = _TURNS.get(orientation)
        if turn is not None:
            small = small.transpose(turn)
        if small.mode not in ("RGB", "L"):
            small = _flatten(small)
        out = io.BytesIO()
        small.save(out, "JPEG", quality=JPEG_QUALITY)
        return out.getvalue()


def _flatten(image: Image.Image) -> Image.Image:
    """RGB on a grey background (transparent PNGs, palettes, 16-bit)."""
    rgba = image.convert("RGBA")
    background = Image.new("RGB", rgba.size, (40, 40, 40))
    background.paste(rgba, mask=rgba.getchannel("A"))
    return background


@dataclass(frozen=True)
class Source:
    """The file of one image as the cache checks it."""

    image_id: int
    path: Path


class ThumbCache:
    """The thumbnail store of one database; safe to share between threads (one connection per
    thread, SQLite's own locking between them and between processes)."""

    def __init__(self, database: Path) -> None:
        self.path = cache_path(database)
        self._local = threading.local()
        with self._connection() as conn:
            conn.execute(_SCHEMA)

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=30)
            db.use_wal(conn)
            conn.execute("PRAGMA synchronous = NORMAL")
            self._local.conn = conn
        return conn

    def get(self, source: Source, size: int) -> bytes:
        """The thumbnail of ``source`` at ``bucket(size)``: cached when the file is unchanged,
        else made and stored. Raises OSError when the file is gone or unreadable and
        PIL.UnidentifiedImageError when it is not an image Pillow reads."""
        size = bucket(size)
        stat = source.path.stat()
        conn = self._connection()
        row = conn.execute(
            "SELECT src_size, src_mtime, jpeg FROM thumbs WHERE image_id = ? AND size = ?",
            (source.image_id, size),
        ).fetchone()
        if row is not None and row[0] == stat.st_size and row[1] == stat.st_mtime_ns:
            return bytes(row[2])
        jpeg = render(source.path, size)
        conn.execute(
            "INSERT OR REPLACE INTO thumbs VALUES (?, ?, ?, ?, ?)",
            (source.image_id, size, stat.st_size, stat.st_mtime_ns, jpeg),
        )
        return jpeg

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


@dataclass
class BuildResult:
    """What :func:`build_all` did: thumbnails now in the cache, files that failed."""

    ready: int = 0
    failed: int = 0


def build_all(
    database: Path,
    size: int = 256,
    *,
    workers: int = 2,
    on_event: events.OnEvent = events.ignore,
) -> BuildResult:
    """Make the thumbnail of every image of ``database`` at ``size`` (those cached and
    unchanged are only checked), ``workers`` at a time."""
    from concurrent.futures import ThreadPoolExecutor

    conn = db.open_readonly(database)
    try:
        sources = image_sources(conn)
    finally:
        conn.close()
    cache = ThumbCache(database)
    result = BuildResult()

    def one(source: Source) -> bool:
        try:
            cache.get(source, size)
        except (OSError, ValueError, Image.DecompressionBombError):
            return False
        return True

    on_event(events.Started("thumbs", len(sources)))
    # Pillow decodes, scales and encodes without holding the GIL, so threads use every core.
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for source, ok in zip(sources, pool.map(one, sources), strict=True):
            if ok:
                result.ready += 1
            else:
                result.failed += 1
                on_event(events.Log(f"no thumbnail for {source.path}", "warning"))
            on_event(events.Progress("thumbs"))
    on_event(events.Finished("thumbs"))
    cache.close()
    return result


def image_sources(conn: sqlite3.Connection) -> list[Source]:
    """Every image of the database as a thumbnail source."""
    rows = conn.execute("SELECT id, path FROM images")
    return [Source(ident, Path(path)) for ident, path in rows]
