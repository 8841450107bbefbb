"""Thumbnails of the library: upright, bounded, cached in one SQLite file until the file
changes; `aimeta thumbs` fills the cache for a whole database."""

from __future__ import annotations

import io
import os
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image
from typer.testing import CliRunner

from aimeta.cli import app
from aimeta.pipelines.thumbs import SIZES, Source, ThumbCache, bucket, cache_path, render
from library_fixture import make_library

ORIENTATION = 0x0112


def rotated_jpeg(path: Path) -> Path:
    """A 400x200 JPEG whose EXIF says "turn 90 degrees clockwise to view" (orientation 6):
    upright it is 200 wide and 400 high."""
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    Image.new("RGB", (400, 200), (200, 30, 30)).save(path, exif=exif, quality=90)
    return path


def decoded(jpeg: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(jpeg))
    image.load()
    return image


def test_a_thumbnail_is_upright_and_fits_its_bucket(tmp_path: Path) -> None:
    photo = rotated_jpeg(tmp_path / "turned.jpg")
    for asked in (64, 128, 200):
        thumb = decoded(render(photo, bucket(asked)))
        assert thumb.format == "JPEG"
        assert thumb.size == (bucket(asked) // 2, bucket(asked))  # portrait once turned
    assert [bucket(n) for n in (1, 128, 129, 256, 300, 512, 9999)] == [
        128,
        128,
        256,
        256,
        512,
        512,
        512,
    ]
    assert SIZES[-1] == 512


def test_the_cache_serves_until_the_file_changes(tmp_path: Path) -> None:
    photo = rotated_jpeg(tmp_path / "turned.jpg")
    database = tmp_path / "images.db"
    cache = ThumbCache(database)
    source = Source(42, photo)
    first = cache.get(source, 256)
    assert cache_path(database) == tmp_path / "images.thumbs.db"

    # While the file is unchanged the stored bytes are served as they are (a lookup, no
    # decoding): a marker put in their place comes back.
    with sqlite3.connect(cache_path(database)) as conn:
        conn.execute("UPDATE thumbs SET jpeg = x'ffd8aa'")
    assert cache.get(source, 200) == b"\xff\xd8\xaa"
    assert first[:2] == b"\xff\xd8" and len(first) > 100

    # Other pixels under a new mtime: made again (green, landscape: no orientation now).
    stat = photo.stat()
    Image.new("RGB", (400, 200), (30, 200, 30)).save(photo, quality=90)
    os.utime(photo, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    again = decoded(cache.get(source, 256))
    assert again.size == (256, 128)
    red, green, _blue = again.getpixel((128, 64))
    assert green > red
    cache.close()
    with sqlite3.connect(cache_path(database)) as conn:
        assert conn.execute("SELECT count(*) FROM thumbs").fetchone()[0] == 1


def test_aimeta_thumbs_fills_the_cache(tmp_path: Path) -> None:
    made = make_library(tmp_path, 5)
    made.images[4].write_bytes(b"not a picture any more")

    result = CliRunner().invoke(app, ["thumbs", "--db", str(made.database), "--size", "128"])

    assert result.exit_code == 0, result.output
    assert "4 thumbnails ready" in result.output and "1 files could not be read" in result.output
    with sqlite3.connect(cache_path(made.database)) as conn:
        rows = conn.execute("SELECT size, count(*) FROM thumbs GROUP BY size").fetchall()
    assert rows == [(128, 4)]


def test_many_threads_opening_a_new_cache_at_once_all_get_thumbnails(tmp_path: Path) -> None:
    """The page's first screen asks for dozens of thumbnails together, each on a server thread
    with its own connection to a cache file that does not exist yet; switching a new file to
    WAL can be refused at once ("database is locked") while another connection sets it up."""
    photo = rotated_jpeg(tmp_path / "turned.jpg")
    database = tmp_path / "images.db"
    for round_ in range(60):
        cache_path(database).unlink(missing_ok=True)
        start = threading.Barrier(12)

        def one(n: int, start: threading.Barrier = start) -> bytes:
            start.wait()
            cache = ThumbCache(database)  # a cache each: the worst case, as separate processes
            try:
                return cache.get(Source(n, photo), 128)
            finally:
                cache.close()

        with ThreadPoolExecutor(12) as pool:
            thumbs = list(pool.map(one, range(12)))
        assert all(t[:2] == b"\xff\xd8" for t in thumbs), round_
        with sqlite3.connect(cache_path(database)) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert conn.execute("SELECT count(*) FROM thumbs").fetchone()[0] == 12
