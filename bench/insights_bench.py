"""Insights benchmark: ``aimeta insights`` on a 100,000-image database, a third of it rated.

The database is query_bench.py's (same generator, same schema; its build rates every third
image). For each ``--by`` choice: the median time of the pipeline (aimeta.pipelines.insights)
in this process after one warm-up, and one run of the real command in a fresh process (wall
time including Python start-up, and its peak resident memory). Prints a markdown table.
Targets: ``--by all`` ≤ 5 s and ≤ 500 MB, one dimension ≤ 1 s.

    .venv/bin/python bench/insights_bench.py [--images 100000] [--runs 3] [--keep DIR]
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


def command_run(path: Path, by: str) -> tuple[float, float]:
    """Wall seconds and peak MB of ``aimeta insights --by BY --json`` in a fresh process."""
    command = [sys.executable, "-m", "aimeta", "insights", "--db", str(path), "--by", by, "--json"]
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    # wait4 reports this child's own peak memory (RUSAGE_CHILDREN would give the largest so far).
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise SystemExit(f"{' '.join(command)} failed ({child.returncode})")
    return time.perf_counter() - started, usage.ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--keep", type=Path, help="build the database here and keep it (reused when present)"
    )
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
    print(f"| aimeta insights --by | rows | pipeline s (median of {args.runs}) |"
          " command s (fresh process) | peak MB |")  # fmt: skip
    print("|---|---:|---:|---:|---:|")
    over = 0
    for label, dimensions in CHOICES:
        seconds, rows = pipeline_seconds(path, dimensions, args.runs)
        wall, peak_mb = command_run(path, label)
        limit = ONE_S if len(dimensions) == 1 else ALL_S
        flag = " (over target)" if seconds > limit else ""
        over += seconds > limit or (label == "all" and peak_mb > ALL_MB)
        print(f"| `{label}` | {rows:,} | {seconds:.2f}{flag} | {wall:.2f} | {peak_mb:.0f} |")
    if args.keep is None:
        shutil.rmtree(folder, ignore_errors=True)
    return 1 if over else 0


if __name__ == "__main__":
    raise SystemExit(main())
