"""exif_raw.jsonl once its lines are stored: `aimeta all` starts a new file (the database keeps
each image's raw text fields, compressed), and every way of reading it on still works."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aimeta import db
from aimeta.cli import app
from aimeta.errors import OutputError
from aimeta.pipelines import ingest
from factory import png_with_text

runner = CliRunner()
WORKFLOW = json.dumps(
    {str(n): {"class_type": "KSampler", "inputs": {"seed": n}} for n in range(40)}
)


def infotext(subject: str) -> str:
    return (
        f"a {subject} at dusk, highly detailed\nNegative prompt: blurry\n"
        "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 5, Size: 8x8, Model: base_v1"
    )


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    images = tmp_path / "Input"
    images.mkdir()
    png_with_text(images / "a.png", {"parameters": infotext("lighthouse")})
    png_with_text(images / "b.png", {"parameters": infotext("harbour"), "workflow": WORKFLOW})
    return images


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def test_all_keeps_only_a_new_header_once_every_line_is_stored(folder: Path) -> None:
    raw = folder.parent / "out" / "exif_raw.jsonl"

    first = runner.invoke(app, ["all", "Input"])

    assert first.exit_code == 0, first.output
    header = lines(raw)
    assert len(header) == 1 and "aimeta_dump" in header[0]
    shown = runner.invoke(app, ["show", "Input/b.png", "--raw", "--json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["raw"]["workflow"] == WORKFLOW
    # A new file is read into the new JSONL file, stored, and that file starts afresh too.
    png_with_text(folder / "c.png", {"parameters": infotext("windmill")})
    second = runner.invoke(app, ["all", "Input"])
    assert second.exit_code == 0, second.output
    assert "1 read, 2 unchanged, 1 stored" in second.output
    again = lines(raw)
    assert len(again) == 1 and again[0]["id"] != header[0]["id"]
    conn = sqlite3.connect(folder.parent / "out" / "images.db")
    assert conn.execute("SELECT COUNT(*) FROM images").fetchone()[0] == 3
    conn.close()


def test_lines_not_stored_yet_stay_and_ingest_reads_them(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert runner.invoke(app, ["all", "Input"]).exit_code == 0
    png_with_text(folder / "c.png", {"parameters": infotext("windmill")})
    # `aimeta dump` alone appends to the new file; nothing is stored, so nothing is dropped.
    dumped = runner.invoke(app, ["dump", "Input", "--out", str(out / "exif_raw.jsonl")])
    assert dumped.exit_code == 0, dumped.output
    conn = db.connect(out / "images.db")
    assert not ingest.stored_to_end(conn, out / "exif_raw.jsonl")
    assert [line["key"] for line in lines(out / "exif_raw.jsonl")[1:]] == ["Input/c.png"]

    stored = ingest.run(out / "exif_raw.jsonl", conn)

    assert stored.stored == 1
    assert ingest.stored_to_end(conn, out / "exif_raw.jsonl")
    conn.close()


def test_a_run_killed_before_the_new_file_replaced_the_old_one_loses_nothing(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def killed(_out: Path) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(ingest, "start_afresh", killed)
        runner.invoke(app, ["all", "Input"])
    raw = tmp_path / "out" / "exif_raw.jsonl"
    assert len(lines(raw)) == 3  # the header and both files: stored, not replaced yet

    again = runner.invoke(app, ["all", "Input"])

    assert again.exit_code == 0, again.output
    assert "0 read, 2 unchanged, 0 stored" in again.output
    assert len(lines(raw)) == 1
    assert not (tmp_path / "out" / "exif_raw.jsonl.new").exists()


def test_a_new_file_that_cannot_be_written_leaves_the_old_one_and_the_run_succeeds(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(out: Path) -> None:
        raise OutputError(f"cannot write {out}: No space left on device")

    monkeypatch.setattr(ingest, "start_afresh", disk_full)

    result = runner.invoke(app, ["all", "Input"])

    assert result.exit_code == 0, result.output
    assert len(lines(tmp_path / "out" / "exif_raw.jsonl")) == 3
