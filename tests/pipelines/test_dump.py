"""dump: every container and encoding read completely, unchanged files skipped, bad files kept."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from aimeta.errors import ExifToolMissing, UsageError
from aimeta.metadata.readers.fields import text_fields
from aimeta.pipelines import dump
from factory import jpeg_with_exif, plain_png, png_with_text, webp_with_exif

INFOTEXT = (
    "café, 日本語, (masterpiece:1.2)\nsecond line of the prompt\n"
    "Negative prompt: blurry\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 8x8"
)


def read_lines(path: Path) -> list[dict]:
    """The file lines of a dump, without its header line."""
    lines = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    assert "aimeta_dump" in lines[0]
    return lines[1:]


def by_name(lines: list[dict]) -> dict[str, dict]:
    return {Path(line["path"]).name: line for line in lines}


@pytest.fixture(params=["exiftool", "auto"])
def reader(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_every_container_is_read_completely(tmp_path: Path, reader: str) -> None:
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    long_workflow = '{"nodes": [' + ",".join(['{"id": 1, "text": "x"}'] * 5000) + "]}"
    png_with_text(folder / "text.png", {"parameters": INFOTEXT})
    png_with_text(folder / "ztxt.png", {"parameters": INFOTEXT}, chunk="zTXt")
    png_with_text(folder / "itxt.png", {"parameters": INFOTEXT}, chunk="iTXt")
    png_with_text(folder / "sub" / "after.png", {"parameters": INFOTEXT}, after_idat=True)
    png_with_text(folder / "long.png", {"workflow": long_workflow, "prompt": "{}"}, chunk="zTXt")
    jpeg_with_exif(folder / "be.jpg", user_comment=INFOTEXT, encoding="unicode-be")
    jpeg_with_exif(folder / "le.jpg", user_comment=INFOTEXT, encoding="unicode-le")
    webp_with_exif(
        folder / "plain.webp",
        user_comment=INFOTEXT.replace("é", "e").replace("日本語", "x"),
        encoding="none",
    )
    out = tmp_path / "out" / "raw.jsonl"

    result = dump.run([folder], out, reader=reader)

    assert (result.found, result.read, result.failed) == (8, 8, 0)
    lines = by_name(read_lines(out))
    for name in ("text.png", "ztxt.png", "itxt.png", "after.png"):
        assert text_fields(lines[name]["tags"])["parameters"] == INFOTEXT, name
    for name in ("be.jpg", "le.jpg"):
        assert text_fields(lines[name]["tags"])["usercomment"] == INFOTEXT, name
    assert "Negative prompt: blurry" in text_fields(lines["plain.webp"]["tags"])["usercomment"]
    assert text_fields(lines["long.png"]["tags"])["workflow"] == long_workflow
    assert lines["after.png"]["key"] == "in/sub/after.png"
    assert len(lines["text.png"]["sha256"]) == 64


def test_unchanged_files_are_skipped_and_changed_ones_read_again(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    png_with_text(folder / "a.png", {"parameters": INFOTEXT})
    png_with_text(folder / "b.png", {"parameters": INFOTEXT})
    out = tmp_path / "raw.jsonl"
    assert dump.run([folder], out).read == 2

    again = dump.run([folder], out)
    assert (again.read, again.unchanged) == (0, 2)

    png_with_text(folder / "b.png", {"parameters": INFOTEXT + ", Clip skip: 2"})
    changed = dump.run([folder], out)
    assert (changed.read, changed.unchanged) == (1, 1)
    assert dump.run([folder], out, force=True).read == 2
    assert len(read_lines(out)) == 5


def test_no_recursive_reads_only_the_top_folder(tmp_path: Path) -> None:
    (tmp_path / "in" / "sub").mkdir(parents=True)
    plain_png(tmp_path / "in" / "top.png")
    plain_png(tmp_path / "in" / "sub" / "deep.png")
    result = dump.run([tmp_path / "in"], tmp_path / "raw.jsonl", recursive=False)
    assert result.found == 1


def test_bad_files_get_a_line_with_the_reason_and_the_run_goes_on(
    tmp_path: Path, reader: str
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    png_with_text(folder / "good.png", {"parameters": INFOTEXT})
    (folder / "empty.png").write_bytes(b"")
    (folder / "text.jpg").write_text("this is not an image")
    good = (folder / "good.png").read_bytes()
    (folder / "truncated.png").write_bytes(good[:20])
    (folder / "dir.png").mkdir()  # a folder with an image name is not a file to read
    out = tmp_path / "raw.jsonl"

    result = dump.run([folder], out, reader=reader)

    lines = by_name(read_lines(out))
    assert set(lines) == {"good.png", "empty.png", "text.jpg", "truncated.png"}
    assert not lines["good.png"]["error"]
    for name in ("empty.png", "text.jpg"):
        assert lines[name]["error"], name
    # A damaged file is an error or a warning, never silently fine.
    assert lines["truncated.png"]["error"] or lines["truncated.png"]["warnings"]
    failed = {Path(path).name for path, _reason in result.failures}
    assert failed == {"empty.png", "text.jpg", "truncated.png"}
    # Files that could not be read are tried again next time (they may have been fixed).
    assert dump.run([folder], out, reader=reader).unchanged in (1, 2)


def test_a_partial_last_line_from_a_killed_run_is_cut_off(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    png_with_text(folder / "a.png", {"parameters": INFOTEXT})
    out = tmp_path / "raw.jsonl"
    dump.run([folder], out)
    with out.open("ab") as handle:
        handle.write(b'{"path": "/half/a line')
    png_with_text(folder / "b.png", {"parameters": INFOTEXT})
    dump.run([folder], out)
    names = [Path(line["path"]).name for line in read_lines(out)]
    assert names == ["a.png", "b.png"]


def test_one_exiftool_process_per_core_at_most(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for index in range(30):
        png_with_text(
            folder / f"{index}.png",
            {"parameters": f"prompt {index}\nSteps: 1, Seed: 2, CFG scale: 3"},
        )
    result = dump.run([folder], tmp_path / "raw.jsonl", reader="exiftool", batch_size=10)
    assert result.read == 30
    assert 1 <= result.exiftool_processes <= 2


def test_missing_exiftool_is_one_clear_error(tmp_path: Path) -> None:
    plain_png(tmp_path / "a.png")
    with pytest.raises(ExifToolMissing, match="libimage-exiftool-perl"):
        dump.run(
            [tmp_path], tmp_path / "raw.jsonl", reader="exiftool", exiftool="/nonexistent/exiftool"
        )


def test_unknown_reader_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        dump.run([tmp_path], tmp_path / "raw.jsonl", reader="magic")
