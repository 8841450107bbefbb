"""Helpers of the reliability suite: real `aimeta` processes with their exit status and peak
memory, a fork server for the kill tests, database checks."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent


@dataclass
class Run:
    """A finished `aimeta` process."""

    code: int | None
    signal: int | None
    stdout: str
    stderr: str
    maxrss_mb: float


# Starts `python -m aimeta ARGS` and reports the peak memory of it and its descendants. The
# test process itself cannot: a child it starts inherits, at exec, the peak resident size of
# the process that spawned it (Linux records the old address space's high-water mark, and
# subprocess spawns with vfork, whose "old" space is the test runner's), so after a few hundred
# tests the figure was pytest's size, not aimeta's. This small launcher is that parent instead.
_LAUNCHER = """
import os, signal, subprocess, sys
report, args = sys.argv[1], sys.argv[2:]
child = subprocess.Popen([sys.executable, "-m", "aimeta", *args])
signal.signal(signal.SIGTERM, lambda *_: child.kill())
_, status, usage = os.wait4(child.pid, 0)
child.returncode = 0
with open(report, "w") as out:
    out.write(str(usage.ru_maxrss))
if os.WIFSIGNALED(status):
    signal.signal(os.WTERMSIG(status), signal.SIG_DFL)
    os.kill(os.getpid(), os.WTERMSIG(status))
sys.exit(os.WEXITSTATUS(status))
"""


def run_aimeta(
    args: Sequence[str],
    *,
    cwd: Path | None = None,
    timeout: float = 120,
    preexec: Any = None,
    env: dict[str, str] | None = None,
) -> Run:
    """Run ``python -m aimeta ARGS`` and measure its peak memory (the largest of it and its
    own children, from wait4 in a small launcher process: see _LAUNCHER)."""
    out_path = Path(os.environ.get("TMPDIR", "/tmp"))
    stamp = f"{os.getpid()}-{time.monotonic_ns()}"
    out_file, err_file = out_path / f"aimeta-{stamp}.out", out_path / f"aimeta-{stamp}.err"
    report = out_path / f"aimeta-{stamp}.rss"
    with out_file.open("wb") as out, err_file.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-c", _LAUNCHER, str(report), *args],
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            preexec_fn=preexec,
            env=env,
        )
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.terminate()  # the launcher kills aimeta, then reports
            process.wait()
    try:
        status = process.returncode
        return Run(
            code=status if status >= 0 else None,
            signal=-status if status < 0 else None,
            stdout=out_file.read_text("utf-8", "replace"),
            stderr=err_file.read_text("utf-8", "replace"),
            maxrss_mb=int(report.read_text() or 0) / 1024 if report.is_file() else 0.0,
        )
    finally:
        for path in (out_file, err_file, report):
            path.unlink(missing_ok=True)


class ForkServer:
    """Client of forkserver.py: start `aimeta` children without paying Python's start-up."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(HERE / "forkserver.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.logs = Path(os.environ.get("TMPDIR", "/tmp")) / f"aimeta-fork-{os.getpid()}"
        self.logs.mkdir(exist_ok=True)

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        answer: dict[str, Any] = json.loads(self.process.stdout.readline())
        return answer

    def start(self, args: Sequence[str], cwd: Path) -> int:
        """Start ``aimeta ARGS`` in ``cwd`` with the current environment; return its pid."""
        answer = self._ask(
            {
                "op": "run",
                "argv": list(args),
                "cwd": str(cwd),
                "env": dict(os.environ),
                "out": str(self.logs / "out"),
                "err": str(self.logs / "err"),
            }
        )
        return int(answer["pid"])

    def wait(self, pid: int) -> Run:
        answer = self._ask({"op": "wait", "pid": pid})
        return Run(
            code=answer["code"],
            signal=answer["signal"],
            stdout=(self.logs / "out").read_text("utf-8", "replace"),
            stderr=(self.logs / "err").read_text("utf-8", "replace"),
            maxrss_mb=answer["maxrss_kb"] / 1024,
        )

    def run(self, args: Sequence[str], cwd: Path) -> Run:
        return self.wait(self.start(args, cwd))

    def kill_after(self, args: Sequence[str], cwd: Path, delay: float) -> Run:
        """Start ``aimeta ARGS``, SIGKILL its process group after ``delay`` s, reap it."""
        pid = self.start(args, cwd)
        time.sleep(delay)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        return self.wait(pid)

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=30)


def integrity_ok(database: Path) -> None:
    """PRAGMA integrity_check and foreign_key_check pass."""
    with sqlite3.connect(database) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    conn.close()


# Columns that hold the time of a run: left out when two databases are compared.
TIME_COLUMNS = frozenset(
    {
        "ingested_at",
        "rated_at",
        "at",
        "duration_s",
        "updated_at",
        "asked_at",
        "first_used",
        "applied_at",
    }
)


def table_dump(
    database: Path,
    replace: tuple[str, str] | None = None,
    only: frozenset[str] | None = None,
) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table (or of the tables in ``only``), time columns left out, rows
    sorted; ``replace`` rewrites a path prefix in text values so two copies of one folder
    compare equal."""
    dump: dict[str, list[tuple[Any, ...]]] = {}
    with sqlite3.connect(database) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                # The tokens view, not token_rows/token_texts: a text's id depends on the
                # order the images were written in, its rows' content does not.
                "SELECT name FROM sqlite_master WHERE (type = 'table' OR name = 'tokens')"
                " AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '%fts%'"
                " AND name NOT IN ('token_rows', 'token_texts')"
            )
        ]
        for table in sorted(tables):
            if only is not None and table not in only:
                continue
            names = [row[1] for row in conn.execute(f'PRAGMA table_info("{table}")')]
            kept = [name for name in names if name not in TIME_COLUMNS]
            columns = ", ".join(f'"{name}"' for name in kept)
            rows = conn.execute(f'SELECT {columns} FROM "{table}"').fetchall()
            if replace is not None:
                old, new = replace
                rows = [
                    tuple(v.replace(old, new) if isinstance(v, str) else v for v in row)
                    for row in rows
                ]
            dump[table] = sorted(rows, key=repr)
    conn.close()
    return dump


def make_photos(folder: Path, count: int, size: tuple[int, int] = (48, 32)) -> list[Path]:
    """``count`` small images of different colours, JPEG and PNG alternating."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        colour = ((37 * index) % 256, (91 * index + 40) % 256, (53 * index + 90) % 256)
        path = folder / (f"img{index:03d}.jpg" if index % 2 == 0 else f"img{index:03d}.png")
        Image.new("RGB", size, colour).save(path)
        paths.append(path)
    return paths
