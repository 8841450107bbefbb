"""Writes that fail (a file-size limit standing in for a full disk, read-only places): one
clear `Error: ...` line, exit status 1, and the files of the previous run left intact."""

from __future__ import annotations

import hashlib
import os
import resource
import signal
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from rel_support import integrity_ok, make_photos, run_aimeta, table_dump

from openai_server import serve

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from make_corpus import make


def _file_size_limit(limit: int) -> Callable[[], None]:
    """A preexec function: writes past ``limit`` bytes fail with EFBIG (SIGXFSZ ignored, so
    the process is not killed by the signal but sees the error)."""

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def _hashes(folder: Path) -> dict[str, str]:
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.iterdir())
        if path.is_file()
    }


def _one_error_line(stderr: str) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error: ")]
    assert len(errors) == 1, stderr
    assert "Traceback" not in stderr, stderr


@pytest.fixture
def previous_run(tmp_path: Path) -> tuple[Path, Path, Path]:
    """out/ from `aimeta all` over 30 images, and 200 more images for the next run."""
    first, more = tmp_path / "first", tmp_path / "more"
    make(30, first)
    make(200, more, seed=2)
    done = run_aimeta(["all", str(first), "--out-dir", str(tmp_path / "out"), "-q"])
    assert done.code == 0, done.stderr
    return tmp_path / "out", first, more


def test_all_with_a_file_size_limit(previous_run: tuple[Path, Path, Path]) -> None:
    out, first, more = previous_run
    before = _hashes(out)
    tables = table_dump(out / "images.db")
    raw_before = (out / "exif_raw.jsonl").read_bytes()
    # The JSONL file cannot take the new lines. The previous run stored its lines and left
    # only a header, so the margin is what SQLite needs before them: the 32 KB shared-memory
    # file of the write-ahead log and a few log frames (the first chunk of lines is larger).
    limit = len(raw_before) + 100_000
    run = run_aimeta(
        ["all", str(first), str(more), "--out-dir", str(out)], preexec=_file_size_limit(limit)
    )
    assert run.code == 1, run.stderr
    _one_error_line(run.stderr)
    assert "File too large" in run.stderr
    after = _hashes(out)
    for name in ("images.db", "records.csv", "records.jsonl"):
        assert after[name] == before[name], name
    assert (out / "exif_raw.jsonl").read_bytes().startswith(raw_before)
    assert table_dump(out / "images.db") == tables
    # Without the limit the next run finishes the job (the partial JSONL line is cut off).
    again = run_aimeta(["all", str(first), str(more), "--out-dir", str(out), "-q"])
    assert again.code == 0, again.stderr
    integrity_ok(out / "images.db")
    with sqlite3.connect(out / "images.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM images").fetchone() == (230,)
    conn.close()


def test_ingest_with_a_file_size_limit(previous_run: tuple[Path, Path, Path]) -> None:
    out, _first, more = previous_run
    raw = out / "exif_raw.jsonl"
    dumped = run_aimeta(["dump", str(more), "--out", str(raw), "-q"])
    assert dumped.code == 0, dumped.stderr
    database = out / "images.db"
    before = hashlib.sha256(database.read_bytes()).hexdigest()
    tables = table_dump(database)
    limit = database.stat().st_size + 50_000  # the new rows do not fit
    args = ["ingest", "--in", str(raw), "--db", str(database), "--csv", str(out / "records.csv")]
    run = run_aimeta(args, preexec=_file_size_limit(limit))
    assert run.code == 1, run.stderr
    _one_error_line(run.stderr)
    assert "cannot write the database" in run.stderr
    assert hashlib.sha256(database.read_bytes()).hexdigest() == before
    integrity_ok(database)
    assert table_dump(database) == tables


def test_rate_with_a_file_size_limit(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    make_photos(folder, 4)
    database = tmp_path / "r.db"
    with serve() as server:
        args = ["rate", str(folder), "--api-url", server.base_url, "--db", str(database)]
        args += ["--converter", "pillow", "--size", "64", "-q"]
        first = run_aimeta(args)
        assert first.code == 0, first.stderr
        before = _hashes(folder)
        rated = table_dump(database, only=frozenset({"ratings"}))
        make_photos(folder / "new", 6)
        for path in (folder / "new").iterdir():
            path.rename(folder / f"new_{path.name}")
        (folder / "new").rmdir()
        csv_size = next(folder.glob("*.csv")).stat().st_size
        run = run_aimeta(args, preexec=_file_size_limit(csv_size + 100))
    assert run.code == 1, run.stderr
    _one_error_line(run.stderr)
    after = _hashes(folder)
    for name, digest in before.items():  # old sidecars, CSV and images untouched
        assert after[name] == digest, name
    integrity_ok(database)
    now = table_dump(database, only=frozenset({"ratings"}))
    assert set(rated["ratings"]) <= set(now["ratings"])


def test_read_only_places(tmp_path: Path) -> None:
    """An output folder that cannot be created or written: /sys refuses even root; a chmod
    555 folder refuses everyone else."""
    make(3, tmp_path / "in")
    run = run_aimeta(["all", str(tmp_path / "in"), "--out-dir", "/sys/aimeta-out"])
    assert run.code == 1, run.stderr
    _one_error_line(run.stderr)
    if os.geteuid() == 0:
        return
    locked = tmp_path / "locked"
    done = run_aimeta(["all", str(tmp_path / "in"), "--out-dir", str(locked), "-q"])
    assert done.code == 0, done.stderr
    before = _hashes(locked)
    locked.chmod(0o555)
    try:
        make(2, tmp_path / "in", seed=3)
        run = run_aimeta(["all", str(tmp_path / "in"), "--out-dir", str(locked)])
    finally:
        locked.chmod(0o755)
    assert run.code == 1, run.stderr
    _one_error_line(run.stderr)
    assert _hashes(locked) == before
