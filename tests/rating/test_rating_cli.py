"""`aimeta rate` and `aimeta doctor` on the command line, and a run killed with SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from aimeta.cli import app
from openai_server import closed_port_url, serve

runner = CliRunner()


def test_rate_prints_lines_and_summary(photos: Path, tmp_path: Path) -> None:
    with serve() as server:
        result = runner.invoke(
            app,
            [
                "rate",
                str(photos),
                "--api-url",
                server.base_url,
                "--db",
                str(tmp_path / "a.db"),
                "--converter",
                "pillow",
                "--workers",
                "2",
                "--size",
                "128",
            ],
        )
    assert result.exit_code == 0, result.output
    output = result.output
    assert output.count("/5  img") == 4
    assert "composition" in output and "test image, colour" in output
    assert "rate: 4 rated, 0 skipped, 0 failed" in output
    assert "overall: mean" in output and "★★★★★" in output
    assert "tokens: 2,800 prompt + 240 completion" in output
    assert "ai_rating_results_test-vision-model.csv (4 rows)" in output


def test_rate_json_lines_on_stdout(photos: Path, tmp_path: Path) -> None:
    with serve() as server:
        result = runner.invoke(
            app,
            [
                "rate",
                str(photos),
                "--api-url",
                server.base_url,
                "--db",
                str(tmp_path / "a.db"),
                "--converter",
                "pillow",
                "--json",
                "--quiet",
                "--no-xmp",
            ],
        )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 4 and all(line["ok"] and 1 <= line["overall"] <= 5 for line in lines)
    assert not list(photos.glob("*.xmp"))


def test_rate_needs_an_output(photos: Path) -> None:
    result = runner.invoke(app, ["rate", str(photos), "--no-xmp", "--no-csv"])
    assert result.exit_code == 2
    assert "leave nothing to write" in result.output


def test_rate_without_server_is_one_error_line(photos: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["rate", str(photos), "--api-url", closed_port_url(), "--db", str(tmp_path / "a.db")]
    )
    assert result.exit_code == 1
    assert "Error: cannot reach the model server" in result.output


def test_dry_run(photos: Path, tmp_path: Path) -> None:
    with serve() as server:
        result = runner.invoke(
            app,
            [
                "rate",
                str(photos),
                "--api-url",
                server.base_url,
                "--db",
                str(tmp_path / "a.db"),
                "--dry-run",
            ],
        )
        assert server.request_count == 0
    assert result.exit_code == 0, result.output
    assert "4 would be rated by test-vision-model" in result.output


def test_doctor(tmp_path: Path) -> None:
    with serve() as server:
        good = runner.invoke(
            app, ["doctor", "--api-url", server.base_url, "--db", str(tmp_path / "none.db")]
        )
    assert good.exit_code == 0, good.output
    assert "ExifTool: version" in good.output
    assert "reachable; models: test-vision-model" in good.output
    bad = runner.invoke(app, ["doctor", "--api-url", closed_port_url(), "--json"])
    assert bad.exit_code == 1
    checks = {c["name"]: c for c in json.loads(bad.stdout)}
    server_check = next(c for name, c in checks.items() if name.startswith("model server"))
    assert server_check["status"] == "problem" and "start the server" in server_check["advice"]


def _ratings(db_path: Path) -> int:
    if not db_path.exists():
        return 0
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM ratings").fetchone()[0])
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()


def test_killed_run_resumes_without_duplicates(
    folder_of: Callable[[int], Path], tmp_path: Path
) -> None:
    folder = folder_of(12)
    db_path = tmp_path / "kill.db"
    with serve(latency=0.15, slots=2) as server:
        command = [
            sys.executable,
            "-m",
            "aimeta",
            "rate",
            str(folder),
            "--api-url",
            server.base_url,
            "--db",
            str(db_path),
            "--converter",
            "pillow",
            "--workers",
            "2",
            "--quiet",
        ]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while _ratings(db_path) < 4 and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait()
        rated_before = _ratings(db_path)
        assert 4 <= rated_before < 12, "the run was not killed mid-way"
        csv_path = folder / "ai_rating_results_test-vision-model.csv"
        if csv_path.exists():  # whatever was flushed is whole rows
            partial = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
            assert partial.path.is_unique and set(partial.overall) <= set("12345")
        sent_before = server.request_count

        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        assert server.request_count - sent_before == 12 - rated_before

    frame = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    assert len(frame) == 12 and frame.path.is_unique
    assert set(frame.path) == {str(p) for p in folder.iterdir() if p.suffix in (".jpg", ".png")}
    assert _ratings(db_path) == 12
    sidecars = sorted(folder.glob("*.xmp"))
    assert len(sidecars) == 12
    read = subprocess.run(
        ["exiftool", "-j", "-XMP-xmp:Rating", *map(str, sidecars)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert all(1 <= item["Rating"] <= 5 for item in json.loads(read.stdout))
    assert not [p for p in folder.iterdir() if "tmp" in p.name]
    assert os.listdir(folder)  # nothing else deleted


def test_ctrl_c_stops_cleanly(folder_of: Callable[[int], Path], tmp_path: Path) -> None:
    folder = folder_of(12)
    db_path = tmp_path / "int.db"
    with serve(latency=0.3, slots=1) as server:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "aimeta",
                "rate",
                str(folder),
                "--api-url",
                server.base_url,
                "--db",
                str(db_path),
                "--converter",
                "pillow",
                "--workers",
                "1",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 30
        while _ratings(db_path) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        process.send_signal(signal.SIGINT)
        _out, errors = process.communicate(timeout=30)
    assert process.returncode == 130, errors
    assert "Stopping after the images in progress" in errors
    assert "Stopped early" in errors
    rated = _ratings(db_path)
    frame = pd.read_csv(folder / "ai_rating_results_test-vision-model.csv", dtype=str)
    assert 2 <= rated < 12 and len(frame) == rated  # flushed on stop, nothing lost


def test_pipeline_knows_nothing_of_the_terminal() -> None:
    # (httpx itself imports rich when it is installed, so look at aimeta's own imports.)
    import ast

    import aimeta.pipelines.doctor
    import aimeta.pipelines.rate
    import aimeta.rating.client
    import aimeta.rating.render
    import aimeta.rating.sidecar

    # The rating job is a package: every module of it is looked at.
    rate_package = Path(str(aimeta.pipelines.rate.__file__)).parent
    files = sorted(rate_package.glob("*.py"))
    assert len(files) > 1
    files += [
        Path(str(module.__file__))
        for module in (
            aimeta.pipelines.doctor,
            aimeta.rating.client,
            aimeta.rating.render,
            aimeta.rating.sidecar,
        )
    ]
    for file in files:
        tree = ast.parse(file.read_text())
        names = {
            alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        }
        names |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        assert not {n for n in names if n.split(".")[0] in ("typer", "rich", "aimeta.cli")}
        assert not any(n.startswith("aimeta.cli") for n in names)
