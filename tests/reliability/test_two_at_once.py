"""Two aimeta processes on one database or folder: both finish correctly, or the second stops
at once with a clear message; nothing is corrupted. (`aimeta rate` beside a job of
`aimeta web` on one folder is tested in tests/web/test_web_command.py.)"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
from rel_support import integrity_ok, make_photos, run_aimeta, table_dump

from openai_server import serve

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from make_corpus import make


def _start(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "aimeta", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _without_progress(tables: dict[str, list[object]]) -> dict[str, list[object]]:
    return {name: rows for name, rows in tables.items() if name != "ingest_progress"}


def test_two_ingests_on_one_database(tmp_path: Path) -> None:
    corpus = tmp_path / "Input"
    make(120, corpus)
    raw = tmp_path / "raw.jsonl"
    dumped = run_aimeta(["dump", str(corpus), "--out", str(raw), "-q"])
    assert dumped.code == 0, dumped.stderr
    reference = run_aimeta(["ingest", "--in", str(raw), "--db", str(tmp_path / "ref.db"), "-q"])
    assert reference.code == 0, reference.stderr

    shared = tmp_path / "shared.db"
    both = [_start(["ingest", "--in", str(raw), "--db", str(shared)], tmp_path) for _ in "ab"]
    outcomes = [(*p.communicate(timeout=120), p.returncode) for p in both]
    for _out, err, code in outcomes:
        assert "Traceback" not in err, err
        assert code == 0 or (code == 1 and "Another aimeta process" in err), err
    assert any(code == 0 for _o, _e, code in outcomes)
    integrity_ok(shared)
    assert _without_progress(table_dump(shared)) == _without_progress(
        table_dump(tmp_path / "ref.db")
    )


def test_two_all_runs_into_one_folder(tmp_path: Path) -> None:
    corpus = tmp_path / "Input"
    make(120, corpus)
    reference = run_aimeta(["all", str(corpus), "--out-dir", str(tmp_path / "ref"), "-q"])
    assert reference.code == 0, reference.stderr
    both = [
        _start(["all", str(corpus), "--out-dir", str(tmp_path / "out")], tmp_path) for _ in "ab"
    ]
    outcomes = [(*p.communicate(timeout=120), p.returncode) for p in both]
    for _out, err, code in outcomes:
        assert "Traceback" not in err, err
        assert code == 0 or (code == 1 and "Error:" in err), err
    integrity_ok(tmp_path / "out" / "images.db")
    # Whatever the interleaving, a third run leaves the same database as a single run.
    again = run_aimeta(["all", str(corpus), "--out-dir", str(tmp_path / "out"), "-q"])
    assert again.code == 0, again.stderr
    assert _without_progress(table_dump(tmp_path / "out" / "images.db")) == _without_progress(
        table_dump(tmp_path / "ref" / "images.db")
    )
    frame = pd.read_csv(tmp_path / "out" / "records.csv", dtype=str, keep_default_na=False)
    assert frame.path.is_unique and len(frame) == 120


def test_two_rate_runs_on_one_folder(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    make_photos(folder, 8)
    with serve(latency=0.3, slots=4) as server:
        args = ["rate", str(folder), "--api-url", server.base_url, "--db", str(tmp_path / "r.db")]
        args += ["--converter", "pillow", "--size", "64", "-w", "2", "-q"]
        first = _start(args, tmp_path)
        deadline = time.monotonic() + 30
        while server.request_count == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        started = time.monotonic()
        second = run_aimeta(args, cwd=tmp_path)
        second_s = time.monotonic() - started
        code = first.wait(timeout=60)
        _out, first_err = first.communicate()
        assert code == 0, first_err
        assert second.code == 1, second.stderr
        assert "is being rated by another aimeta process" in second.stderr
        assert second.stderr.count("Error:") == 1 and "Traceback" not in second.stderr
        assert second_s < 10, f"the second run took {second_s:.1f} s to give up"
        assert server.request_count == 8  # nobody asked twice
    integrity_ok(tmp_path / "r.db")
    frame = pd.read_csv(next(folder.glob("*.csv")), dtype=str, keep_default_na=False)
    assert len(frame) == 8 and frame.path.is_unique
    assert len(list(folder.glob("*.xmp"))) == 8
    assert not (folder / ".aimeta-rate.lock").exists()
