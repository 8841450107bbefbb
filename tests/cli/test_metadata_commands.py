"""dump, ingest and all through the command line, as people type them."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aimeta.cli import app
from factory import plain_png, png_with_text

INFOTEXT = (
    "a lighthouse\nNegative prompt: fog\n"
    "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 5, Size: 8x8"
)


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    images = tmp_path / "Input"
    images.mkdir()
    png_with_text(images / "a.png", {"parameters": INFOTEXT})
    plain_png(images / "photo.png")
    (images / "zero.png").write_bytes(b"")
    return images


def test_all_reads_a_folder_into_out(folder: Path) -> None:
    result = CliRunner().invoke(app, ["all", "Input"])
    assert result.exit_code == 0, result.output
    out = folder.parent / "out"
    for name in ("exif_raw.jsonl", "images.db", "records.jsonl", "records.csv"):
        assert (out / name).is_file(), name
    assert "3 files found" in result.output and "1 failed" in result.output
    assert "zero.png" in result.output
    conn = sqlite3.connect(out / "images.db")
    assert conn.execute("SELECT COUNT(*) FROM images").fetchone()[0] == 2
    assert conn.execute("SELECT COUNT(*) FROM errors").fetchone()[0] == 1


def test_a_second_run_without_changes_reads_nothing(folder: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["all", "Input"]).exit_code == 0
    again = runner.invoke(app, ["all", "Input"])
    assert again.exit_code == 0, again.output
    assert "0 read, 2 unchanged, 0 stored" in again.output


def test_dump_then_ingest_with_exports(folder: Path) -> None:
    runner = CliRunner()
    dumped = runner.invoke(app, ["dump", "Input", "--out", "raw/x.jsonl"])
    assert dumped.exit_code == 0, dumped.output
    ingested = runner.invoke(
        app,
        [
            "ingest",
            "--in",
            "raw/x.jsonl",
            "--db",
            "db/x.db",
            "--jsonl",
            "r.jsonl",
            "--csv",
            "r.csv",
        ],
    )
    assert ingested.exit_code == 0, ingested.output
    lines = Path("r.jsonl").read_text(encoding="utf-8").splitlines()
    assert sorted(json.loads(line)["generator"] for line in lines) == ["a1111", "none"]
    assert Path("r.csv").read_text(encoding="utf-8").startswith("path,")


def test_dump_to_stdout(folder: Path) -> None:
    result = CliRunner().invoke(app, ["dump", "Input/a.png", "--out", "-", "--quiet"])
    assert result.exit_code == 0, result.output
    line = json.loads(result.stdout.splitlines()[0])
    assert line["tags"]["PNG:Parameters"] == INFOTEXT


def test_errors_are_one_line_with_the_right_exit_code(folder: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(app, ["all", "nowhere"])
    assert missing.exit_code == 1
    assert missing.output.strip() == "Error: nowhere: no such file or folder"
    no_exiftool = runner.invoke(
        app, ["dump", "Input", "--reader", "exiftool", "--exiftool", "/no/exiftool"]
    )
    assert no_exiftool.exit_code == 1
    assert no_exiftool.output.startswith("Error: ExifTool is not installed")
    bad_reader = runner.invoke(app, ["dump", "Input", "--reader", "magic"])
    assert bad_reader.exit_code == 2
    no_dump = runner.invoke(app, ["ingest", "--in", "missing.jsonl"])
    assert no_dump.exit_code == 1 and "run `aimeta dump` first" in no_dump.output


def test_all_json_summary_for_scripts(folder: Path) -> None:
    result = CliRunner().invoke(app, ["all", "Input", "--json", "--quiet"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["found"], report["read"], report["stored"]) == (3, 2, 2)
    assert [Path(item["path"]).name for item in report["failed"]] == ["zero.png"]
    assert report["summary"]["by_generator"] == {"a1111": 1, "none": 1}
