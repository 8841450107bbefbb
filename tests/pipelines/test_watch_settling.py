"""When a file named by an event is complete enough to read, and how a folder moved whole is
re-linked without looking at each file (the pure parts of `aimeta watch`)."""

from __future__ import annotations

import os
from pathlib import Path

from aimeta import db
from aimeta.pipelines import all as all_pipeline
from aimeta.pipelines import relink
from aimeta.pipelines.watch import Settling, has_end_marker
from aimeta.settings import Settings
from factory import jpeg_with_exif, png_with_text


def test_end_markers_tell_complete_files_from_partial_ones(tmp_path: Path) -> None:
    png = png_with_text(tmp_path / "a.png", {"parameters": "a cat"})
    jpeg = jpeg_with_exif(tmp_path / "b.jpg", user_comment="a dog")
    assert has_end_marker(png) and has_end_marker(jpeg)
    for path in (png, jpeg):
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        assert not has_end_marker(path), path
    other = tmp_path / "c.tiff"
    other.write_bytes(b"II*\0" + b"\0" * 64)
    assert not has_end_marker(other)


def test_a_file_is_ready_after_two_equal_looks_with_its_marker_or_a_quiet_time(
    tmp_path: Path,
) -> None:
    settling = Settling(quiet_s=1.0)
    png = png_with_text(tmp_path / "a.png", {"parameters": "a cat"})
    whole = png.read_bytes()
    png.write_bytes(whole[:40])  # a ComfyUI-style writer between two chunks
    tiff = tmp_path / "c.tiff"
    tiff.write_bytes(b"II*\0" + b"\0" * 64)
    for path in (png, tiff, tmp_path / "renamed-away.png"):
        settling.saw(path, 0.0)

    assert settling.ready(0.0) == []  # first look: sizes noted
    assert settling.ready(0.1) == []  # the PNG lacks IEND, the TIFF has no marker
    png.write_bytes(whole)
    assert settling.ready(0.2) == []  # changed since the last look
    assert settling.ready(0.3) == [png]
    assert settling.ready(0.9) == []
    assert settling.ready(1.1) == [tiff]  # quiet for a second
    assert settling.waiting == {}  # the file renamed away before a look is dropped


def test_a_folder_moved_whole_is_relinked_in_one_statement_unless_a_file_changed(
    tmp_path: Path,
) -> None:
    folder, out = tmp_path / "Input", tmp_path / "out"
    (folder / "batch").mkdir(parents=True)
    for number in range(3):
        png_with_text(folder / "batch" / f"{number}.png", {"parameters": f"image {number}"})
    all_pipeline.run([folder], Settings(out_dir=out, db=out / "images.db"))
    conn = db.connect(out / "images.db")
    ids = dict(conn.execute("SELECT file_name, id FROM images").fetchall())
    kept = folder / "batch" / "2.png"
    original, stat = kept.read_bytes(), kept.stat()
    (folder / "batch").rename(folder / "moved")
    moved_file = folder / "moved" / "2.png"
    png_with_text(moved_file, {"parameters": "edited since"})

    # One file differs: each file goes through the per-file rules instead.
    assert relink.match_folder(conn, str(folder / "batch"), folder / "moved", folder) is None

    moved_file.write_bytes(original)
    os.utime(moved_file, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    move = relink.match_folder(conn, str(folder / "batch"), folder / "moved", folder)
    assert move is not None
    assert relink.apply_folder(conn, move).images == 3
    rows = conn.execute("SELECT file_name, id, key, path FROM images ORDER BY 1").fetchall()
    conn.close()
    assert [(name, ident) for name, ident, _k, _p in rows] == sorted(ids.items())
    assert [key for _n, _i, key, _p in rows] == [f"Input/moved/{n}.png" for n in range(3)]
    assert [path for *_rest, path in rows] == [str(folder / "moved" / f"{n}.png") for n in range(3)]
