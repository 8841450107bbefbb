"""Insights benchmark: ``aimeta insights`` on a 100,000-image database, a third of it rated.

The database is query_bench.py's (same generator, same schema; its build rates every third
image). For each ``--by`` choice: the median time of the pipeline (aimeta.pipelines.insights)
in this process after one warm-up, and one run of the real command in a fresh process (wall
time including Python start-up, and its peak resident memory). Prints a markdown table.
Targets: ``--by all`` ≤ 5 s and ≤ 500 MB, one dimension ≤ 1 s.

    .venv/bin/python bench/insights_bench.py [--images 100000] [--runs 3] [--keep DIR]
        [--before OTHER/src]

``--before`` adds a column: the same pipeline timing of another checkout's ``src`` (e.g. the
main branch's), run in a child process between this checkout's runs, so both share the load
of the moment.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import query_bench
from aimeta import db
from aimeta.pipelines.insights import (
    DIMENSIONS,
    PAIR_DIMENSIONS,
    SINGLE_DIMENSIONS,
    InsightQuery,
    insights,
)

ALL_S, ONE_S, ALL_MB = 5.0, 1.0, 500.0
CHOICES: list[tuple[str, tuple[str, ...]]] = [
    ("all", DIMENSIONS),
    *((name, (name,)) for name in SINGLE_DIMENSIONS),
    ("pairs", PAIR_DIMENSIONS),
]


def pipeline_seconds(path: Path, dimensions: tuple[str, ...], runs: int) -> tuple[float, int]:
    """Median seconds of ``runs`` computations (after a warm-up) and the number of rows."""
    conn = db.open_existing(path, readonly=True)
    try:
        query = InsightQuery(dimensions=dimensions)
        rows = len(insights(conn, query).rows)
        timings = []
        for _ in range(runs):
            started = time.perf_counter()
            insights(conn, query)
            timings.append(time.perf_counter() - started)
    finally:
        conn.close()
    return statistics.median(timings), rows


_BEFORE = """
import statistics, sys, time
from aimeta import db
from aimeta.pipelines.insights import InsightQuery, insights
conn = db.open_existing(sys.argv[1], readonly=True)
query = InsightQuery(dimensions=tuple(sys.argv[3:]))
insights(conn, query)
timings = []
for _ in range(int(sys.argv[2])):
    started = time.perf_counter()
    insights(conn, query)
    timings.append(time.perf_counter() - started)
print(statistics.median(timings))
"""


def before_seconds(src: Path, path: Path, dimensions: tuple[str, ...], runs: int) -> float:
    """:func:`pipeline_seconds` of the aimeta in ``src`` (another checkout), in a child."""
    done = subprocess.run(
        [sys.executable, "-c", _BEFORE, str(path), str(runs), *dimensions],
        env={**os.environ, "PYTHONPATH": str(src)},
        capture_output=True,
        text=True,
        check=True,
    )
    return float(done.stdout.strip())


# Runs a command and prints its wall seconds and peak resident KB. A child inherits at exec
# the peak resident size of the process that spawned it (Linux keeps the high-water mark of
# the old address space), so this small launcher spawns the command, not the benchmark, whose
# own pipeline runs have grown it to a few hundred MB.
_LAUNCHER = """
import os, subprocess, sys, time
started = time.perf_counter()
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(child.pid, 0)
print(time.perf_counter() - started, usage.ru_maxrss, os.waitstatus_to_exitcode(status))
"""


def command_run(path: Path, by: str) -> tuple[float, float]:
    """Wall seconds and peak MB of ``aimeta insights --by BY --json`` in a fresh process."""
    command = [sys.executable, "-m", "aimeta", "insights", "--db", str(path), "--by", by, "--json"]
    done = subprocess.run(
        [sys.executable, "-c", _LAUNCHER, *command], capture_output=True, text=True, check=True
    )
    wall, peak_kb, code = done.stdout.split()
    if int(code):
        raise SystemExit(f"{' '.join(command)} failed ({code})")
    return float(wall), int(peak_kb) / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--keep", type=Path, help="build the database here and keep it (reused when present)"
    )
    parser.add_argument("--before", type=Path, help="another checkout's src to compare with")
    args = parser.parse_args()

    folder = args.keep or Path(tempfile.mkdtemp(prefix="aimeta-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "images.db"
    if not (args.keep and path.is_file() and query_bench.image_count(path) == args.images):
        path.unlink(missing_ok=True)
        query_bench.build(path, args.images)
    conn = db.open_readonly(path)
    images, rated = conn.execute(
        "SELECT (SELECT COUNT(*) FROM images), (SELECT COUNT(*) FROM ratings)"
    ).fetchone()
    conn.close()
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(
        f"Database: {images:,} images, {rated:,} with an AI rating; --min-images 20;"
        f" {os.cpu_count()} cores, load average before the runs {load}.\n"
    )
    before = f" before s ({args.before}) |" if args.before else ""
    print(f"| aimeta insights --by | rows |{before} pipeline s (median of {args.runs}) |"
          " command s (fresh process) | peak MB |")  # fmt: skip
    print("|---|---:|" + ("---:|" if args.before else "") + "---:|---:|---:|")
    over = 0
    for label, dimensions in CHOICES:
        earlier = ""
        if args.before:
            earlier = f" {before_seconds(args.before, path, dimensions, args.runs):.2f} |"
        seconds, rows = pipeline_seconds(path, dimensions, args.runs)
        wall, peak_mb = command_run(path, label)
        limit = ONE_S if len(dimensions) == 1 else ALL_S
        flag = " (over target)" if seconds > limit else ""
        over += seconds > limit or (label == "all" and peak_mb > ALL_MB)
        print(
            f"| `{label}` | {rows:,} |{earlier} {seconds:.2f}{flag} | {wall:.2f} | {peak_mb:.0f} |"
        )
    if args.keep is None:
        shutil.rmtree(folder, ignore_errors=True)
    return 1 if over else 0


if __name__ == "__main__":
    raise SystemExit(main())
