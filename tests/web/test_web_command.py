"""`aimeta web` as a real process: it starts, serves, refuses remote binds, other commands
never import its libraries, and a `rate` run on the folder of a web job does not corrupt
anything."""

from __future__ import annotations

import csv
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from typer.testing import CliRunner

from aimeta.cli import app
from aimeta.settings import Settings
from openai_server import serve

runner = CliRunner()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _aimeta(*args: str, **kwargs: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "aimeta", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def test_help_has_an_example() -> None:
    result = runner.invoke(app, ["web", "--help"])
    assert result.exit_code == 0, result.output
    assert "--allow-remote" in result.output and "Example: aimeta web" in result.output


def test_another_host_needs_allow_remote() -> None:
    result = runner.invoke(app, ["web", "--host", "0.0.0.0"])
    assert result.exit_code == 2
    assert "Error:" in result.output and "--allow-remote" in result.output


def test_a_port_in_use_is_one_error_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = runner.invoke(app, ["web", "--port", str(port)])
    assert result.exit_code == 1
    assert re.search(rf"Error: cannot listen on 127\.0\.0\.1:{port}", result.output)


WEB_LIBRARIES = ("fastapi", "starlette", "uvicorn", "jinja2", "multipart", "python_multipart")
# Prints the web libraries loaded once the code before it has run (even if it exits).
_REPORT_WEB_MODULES = (
    "import sys\ntry:\n    {code}\nfinally:\n"
    "    print(sorted(m for m in sys.modules if m.split('.')[0] in {libraries!r}),"
    " file=sys.stderr)"
)


def _web_modules_after(code: str, *args: str) -> tuple[subprocess.CompletedProcess[str], str]:
    block = _REPORT_WEB_MODULES.format(code=code, libraries=WEB_LIBRARIES)
    result = subprocess.run(
        [sys.executable, "-c", block, *args], capture_output=True, text=True, timeout=60
    )
    return result, result.stderr.strip().splitlines()[-1]


def test_other_commands_do_not_import_the_web_libraries() -> None:
    """The page ships with every install, but only `aimeta web` pays for importing it."""
    imported, loaded = _web_modules_after("import aimeta.cli")
    assert imported.returncode == 0, imported.stderr
    assert loaded == "[]"
    version, loaded = _web_modules_after("from aimeta.cli import main; main()", "--version")
    assert version.returncode == 0 and version.stdout.startswith("aimeta "), version.stderr
    assert loaded == "[]"
    # The check itself sees the libraries when they are imported.
    _, loaded = _web_modules_after("import aimeta.web.app")
    assert "'fastapi'" in loaded and "'starlette'" in loaded and "'jinja2'" in loaded


def test_the_command_serves_the_page_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    port = _free_port()
    process = _aimeta("web", "--port", str(port), cwd=tmp_path)
    try:
        assert process.stderr is not None
        first = process.stderr.readline()
        assert first.strip() == f"aimeta web: http://127.0.0.1:{port}/  (Ctrl-C to stop)"
        status = _get_when_up(f"http://127.0.0.1:{port}/status")
        assert status.status_code == 200 and status.json()["state"] == "idle"
        refused = httpx.get(f"http://127.0.0.1:{port}/status", headers={"Origin": "http://x.org"})
        assert refused.status_code == 403
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=15)
    assert process.returncode == 0


def test_remote_mode_prints_a_token_that_every_request_needs(tmp_path: Path) -> None:
    port = _free_port()
    process = _aimeta(
        "web", "--host", "0.0.0.0", "--port", str(port), "--allow-remote", cwd=tmp_path
    )
    try:
        assert process.stderr is not None
        first = process.stderr.readline()
        match = re.fullmatch(rf"aimeta web: http://0\.0\.0\.0:{port}/\?token=(\S+)\n", first)
        assert match, first
        url = f"http://127.0.0.1:{port}/status"
        assert _get_when_up(url).status_code == 401
        assert httpx.get(url, headers={"X-Aimeta-Token": match.group(1)}).status_code == 200
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=15)


def _get_when_up(url: str, timeout: float = 15.0) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return httpx.get(url, timeout=2)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_rate_on_the_folder_of_a_running_web_job(
    tmp_path: Path,
    make_settings: Callable[..., Settings],
    make_client: Callable[..., Any],
    make_photos: Callable[[Path, int], list[Path]],
    wait_for_end: Callable[..., Any],
) -> None:
    """Two writers on one folder: the second stops at once with a clear message (the folder
    lock), the first finishes; nothing is corrupted and no image is asked twice."""
    folder = tmp_path / "shared"
    make_photos(folder, 10)
    with serve(latency=0.4, slots=4) as server:
        settings = make_settings(server.base_url, workers=2)
        client = make_client(settings)
        assert client.post("/start_processing", json={"folder": str(folder)}).status_code == 200
        environment = {
            **os.environ,
            "AIMETA_DB": str(settings.db),
            "AIMETA_CONVERTER": "pillow",
            "AIMETA_SIZE": "128",
            "AIMETA_PROMPTS_DIR": str(settings.prompts_dir),
        }
        command = [sys.executable, "-m", "aimeta", "rate", str(folder), "--api-url"]
        command += [server.base_url, "-w", "2", "--quiet"]
        cli = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=60)
        status = wait_for_end(client, timeout=30)
        # The web job normally still runs when the command starts; if it was quicker, the
        # command finds everything rated.
        if cli.returncode != 0:
            assert cli.returncode == 1, cli.stderr
            assert "is being rated by another aimeta process" in cli.stderr
        assert status["state"] == "finished", status
        assert status["counts"]["failed"] == 0
        asked = server.request_count
        assert asked == 10
        with sqlite3.connect(settings.db) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            rated = conn.execute("SELECT COUNT(*), COUNT(DISTINCT path) FROM ratings").fetchone()
        assert rated == (10, 10)
        rows = _csv_rows(Path(status["csv_path"]))
        assert len({row["path"] for row in rows}) == len(rows)  # a complete file, no duplicates
        again = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=60)
        assert again.returncode == 0, again.stderr
        assert server.request_count == asked
    assert len(_csv_rows(Path(status["csv_path"]))) == 10
    for sidecar in folder.glob("*.xmp"):
        assert b"Rating" in sidecar.read_bytes()
    assert len(list(folder.glob("*.xmp"))) == 10


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))
