"""Hostile files through `aimeta all` (both readers): no crash, a reason per bad file, every
other file read, bounded memory, exit status 0, and ExifTool never takes a name for an option."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hostile import ODD_NAMES, PROMPT, Hostile, make_hostile, zip_bomb
from rel_support import integrity_ok, run_aimeta

from aimeta.pipelines import all as all_pipeline
from aimeta.settings import Settings
from factory import png_with_text

# Peak memory of a whole `aimeta all` run (the largest of the process and the ExifTool it
# starts). The largest file holds 50 MB of text, which is read, written to the JSONL file and
# stored: measured ~300 MB with the native reader, ~400 MB through ExifTool (pyexiftool keeps
# the batch output, its JSON and the line written).
MEMORY_LIMIT_MB = 450


def _snapshot(folder: Path) -> dict[str, str]:
    """Every entry under ``folder`` with a hash of its bytes (links and folders by kind)."""
    entries: dict[str, str] = {}
    for root, dirs, names in os.walk(folder):
        for name in dirs + names:
            path = Path(root) / name
            if path.is_symlink():
                entries[str(path)] = "link:" + os.readlink(path)
            elif path.is_dir():
                entries[str(path)] = "dir"
            else:
                entries[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return entries


@pytest.fixture(scope="module")
def hostile_folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Hostile]]:
    folder = tmp_path_factory.mktemp("hostile") / "in"
    return folder, make_hostile(folder)


@pytest.mark.parametrize("reader", ["auto", "exiftool"])
def test_all_survives_every_hostile_file(
    hostile_folder: tuple[Path, list[Hostile]], tmp_path: Path, reader: str
) -> None:
    folder, made = hostile_folder
    before = _snapshot(folder)
    run = run_aimeta(["all", str(folder), "--out-dir", str(tmp_path / "out"), "--reader", reader])

    assert run.code == 0, run.stderr[-3000:]
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
    assert run.maxrss_mb < MEMORY_LIMIT_MB, f"peak memory {run.maxrss_mb:.0f} MB"
    assert _snapshot(folder) == before, "a file in the input folder changed or appeared"

    database = tmp_path / "out" / "images.db"
    integrity_ok(database)
    with sqlite3.connect(database) as conn:
        stored = dict(conn.execute("SELECT path, generator FROM images").fetchall())
        errors = dict(conn.execute("SELECT path, reason FROM errors").fetchall())
        prompts = dict(
            conn.execute(
                "SELECT i.path, k.value FROM kv k JOIN images i ON i.id = k.image_id"
                " WHERE k.key = 'prompt'"
            ).fetchall()
        )
    conn.close()
    wrong = []
    for item in made:
        path = str(item.path)
        if item.expect == "ok" and path not in stored:
            wrong.append(f"{item.why}: not stored ({errors.get(path)})")
        elif item.expect == "error" and (path in stored or not errors.get(path, "").strip()):
            wrong.append(f"{item.why}: expected an error with a reason")
        elif item.expect == "either" and path not in stored and not errors.get(path):
            wrong.append(f"{item.why}: neither stored nor an error")
        elif item.expect == "absent" and (path in stored or path in errors):
            wrong.append(f"{item.why}: should not be listed")
    assert not wrong, "\n".join(wrong)
    # Every reason is one readable line, never a Python traceback.
    assert all("Traceback" not in reason for reason in errors.values())
    # Odd names are read like any other file: same prompt, nothing taken for an option.
    for name in ODD_NAMES:
        assert prompts.get(str(folder / name)) == PROMPT, name
    assert stored[str(folder / "big_text_chunk.png")] == "none"
    assert stored[str(folder / "deep_workflow.png")] == "comfyui"
    assert stored[str(folder / "nan_graph.png")] == "comfyui"
    assert stored[str(folder / "ifd_loop.jpg")] == "a1111"


@pytest.mark.parametrize("reader", ["auto", "exiftool"])
def test_zip_bomb_is_an_error_and_the_rest_is_read(tmp_path: Path, reader: str) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "bomb.png").write_bytes(zip_bomb())
    png_with_text(
        folder / "fine.png", {"parameters": PROMPT + "\nSteps: 20, Seed: 1, CFG scale: 7"}
    )
    run = run_aimeta(["all", str(folder), "--out-dir", str(tmp_path / "out"), "--reader", reader])
    assert run.code == 0, run.stderr
    with sqlite3.connect(tmp_path / "out" / "images.db") as conn:
        reason = conn.execute(
            "SELECT reason FROM errors WHERE path = ?", (str(folder / "bomb.png"),)
        ).fetchone()
        stored = [row[0] for row in conn.execute("SELECT file_name FROM images")]
    conn.close()
    assert reason is not None and ("inflates to more than" in reason[0] or "more than" in reason[0])
    assert stored == ["fine.png"]
    if reader == "auto":
        # The native reader stops inflating at its limit; ExifTool (--reader exiftool)
        # inflates the whole 200 MB before aimeta can refuse it.
        assert run.maxrss_mb < MEMORY_LIMIT_MB, f"peak memory {run.maxrss_mb:.0f} MB"
    print(f"zip bomb, reader {reader}: peak {run.maxrss_mb:.0f} MB")


@pytest.mark.parametrize("reader", ["auto", "exiftool"])
def test_file_deleted_between_listing_and_reading(tmp_path: Path, reader: str) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for index in range(4):
        png_with_text(folder / f"img{index}.png", {"parameters": f"{PROMPT}\nSteps: {index + 1}"})
    doomed = folder / "img1.png"

    def delete_when_reading_starts(event: object) -> None:
        # Started("read") comes after the folder was listed and before any file is opened.
        if getattr(event, "stage", None) == "read" and type(event).__name__ == "Started":
            doomed.unlink()

    settings = Settings(out_dir=tmp_path / "out", db=tmp_path / "out" / "images.db", reader=reader)
    result = all_pipeline.run([folder], settings, on_event=delete_when_reading_starts)
    assert not doomed.exists()
    failures = dict(result.dump.failures)
    assert re.search("no such file|not found", failures[str(doomed)], re.I), failures
    with sqlite3.connect(settings.db) as conn:
        stored = sorted(row[0] for row in conn.execute("SELECT file_name FROM images"))
        reason = conn.execute("SELECT reason FROM errors WHERE path = ?", (str(doomed),)).fetchone()
    conn.close()
    assert stored == ["img0.png", "img2.png", "img3.png"]
    assert reason is not None and re.search("no such file|not found", reason[0], re.I)


def _as_nobody() -> None:
    os.setgid(65534)
    os.setuid(65534)


def _nobody_can_run_python() -> bool:
    try:
        done = subprocess.run(
            [sys.executable, "-c", "import aimeta"], preexec_fn=_as_nobody, capture_output=True
        )
    except OSError:
        return False
    return done.returncode == 0


def test_unreadable_file(tmp_path: Path) -> None:
    """chmod 000: a per-file error. As root (where chmod does not stop reads) the aimeta
    process runs as user nobody, in a folder under /tmp that nobody may use."""
    as_root = os.geteuid() == 0
    if as_root and not _nobody_can_run_python():
        pytest.skip(
            "running as root, and user nobody cannot run this Python (to make chmod 000 bite)"
        )
    base = Path(tempfile.mkdtemp(prefix="aimeta-unreadable-")) if as_root else tmp_path
    try:
        base.chmod(0o777)
        folder = base / "in"
        folder.mkdir(mode=0o777)
        png_with_text(folder / "fine.png", {"parameters": PROMPT + "\nSteps: 20, Seed: 1"})
        locked = png_with_text(folder / "locked.png", {"parameters": PROMPT + "\nSteps: 2"})
        locked.chmod(0)
        for reader in ("auto", "exiftool"):
            out = base / f"out-{reader}"
            run = run_aimeta(
                ["all", str(folder), "--out-dir", str(out), "--reader", reader],
                preexec=_as_nobody if as_root else None,
                cwd=base,
            )
            assert run.code == 0, run.stderr
            with sqlite3.connect(out / "images.db") as conn:
                stored = [row[0] for row in conn.execute("SELECT file_name FROM images")]
                reason = conn.execute(
                    "SELECT reason FROM errors WHERE path = ?", (str(locked),)
                ).fetchone()
            conn.close()
            assert stored == ["fine.png"], reader
            assert reason is not None and "ermission" in reason[0], (reader, reason)
    finally:
        if as_root:
            shutil.rmtree(base, ignore_errors=True)
