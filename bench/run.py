"""Benchmark runner: one run, one corpus, one markdown table of medians.

    python bench/run.py                      # 3,000-file corpus, 3 repeats
    python bench/run.py --files 20000 --repeat 1 --skip-rate --skip-queries   # memory check

Rows: `aimeta all` with the default reader, `aimeta all --reader exiftool`, a bare
`exiftool -json -r` over the folder, one ExifTool process per file (on a 200-file subset,
extrapolated and labelled so), the no-change re-run and peak memory; then the tables of
bench/query_bench.py (searches on a 100,000-image database) and bench/rate_throughput.py
(`aimeta rate` against the local OpenAI-compatible test server at latency L with K slots,
against the ideal K/L). Figures are ratios within this one run, so the machine's speed
cancels out.
"""

from __future__ import annotations

import argparse
import compileall
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import aimeta as aimeta_package  # noqa: E402
import make_corpus  # noqa: E402


def tree_rss_mb(pid: int) -> float:
    """Resident memory (MB) of a process and all its descendants, from /proc (Linux)."""
    total = 0
    pending = [pid]
    page = os.sysconf("SC_PAGE_SIZE")
    while pending:
        current = pending.pop()
        try:
            total += int(Path(f"/proc/{current}/statm").read_text().split()[1]) * page
            for task in Path(f"/proc/{current}/task").iterdir():
                pending.extend(int(c) for c in (task / "children").read_text().split())
        except (OSError, ValueError):
            continue
    return total / 1e6


def timed(command: list[str], cwd: Path | None = None) -> tuple[float, int]:
    """Wall seconds and peak resident memory (MB) of one command with every process it starts
    (aimeta's worker processes, ExifTool), sampled every 20 ms."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0.0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.02):
            peak = max(peak, tree_rss_mb(process.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _pid, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    if os.waitstatus_to_exitcode(status) != 0:
        stderr = process.stderr.read().decode() if process.stderr else ""
        raise SystemExit(f"{' '.join(command)} failed:\n{stderr}")
    if process.stderr:
        process.stderr.close()
    # The sampler can miss a short peak; the largest single process's own peak bounds it below.
    return seconds, int(max(peak, usage.ru_maxrss / 1024))


def median_of(results: list[tuple[float, int]]) -> tuple[float, int]:
    """The median seconds and the largest peak memory of several runs."""
    return statistics.median(r[0] for r in results), max(r[1] for r in results)


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--corpus", type=Path, help="use this folder instead of generating one")
    parser.add_argument("--skip-rate", action="store_true")
    parser.add_argument("--skip-queries", action="store_true")
    args = parser.parse_args()
    exiftool = shutil.which("exiftool")
    if exiftool is None:
        raise SystemExit("ExifTool is needed for the comparison rows")
    aimeta = [sys.executable, "-m", "aimeta"]
    work = Path(tempfile.mkdtemp(prefix="aimeta-bench-"))
    corpus = args.corpus or work / "corpus"
    if args.corpus is None:
        make_corpus.make(args.files, corpus)
    files = sorted(p for p in corpus.rglob("*") if p.is_file())
    rows: list[tuple[str, str, str]] = []

    def fresh_all(*extra: str) -> Callable[[], tuple[float, int]]:
        def run() -> tuple[float, int]:
            out = work / "out"
            shutil.rmtree(out, ignore_errors=True)
            return timed([*aimeta, "all", str(corpus), "--out-dir", str(out), "--quiet", *extra])

        return run

    # Bytecode as an installed package has it (pip compiles on install; an editable install
    # run with PYTHONDONTWRITEBYTECODE would compile every module at every start).
    compileall.compile_dir(str(Path(aimeta_package.__file__).parent), quiet=1)
    # The measured commands take turns, so a slow spell of the machine weighs on each alike.
    turns: dict[str, list[tuple[float, int]]] = {"default": [], "rerun": [], "exiftool": []}
    bare_turns: list[tuple[float, int]] = []
    for _turn in range(args.repeat):
        turns["default"].append(fresh_all()())
        turns["rerun"].append(
            timed([*aimeta, "all", str(corpus), "--out-dir", str(work / "out"), "--quiet"])
        )
        turns["exiftool"].append(fresh_all("--reader", "exiftool")())
        bare_turns.append(timed([exiftool, "-json", "-r", "-q", str(corpus)]))
    default, default_memory = median_of(turns["default"])
    rerun, _ = median_of(turns["rerun"])
    by_exiftool, _ = median_of(turns["exiftool"])
    bare, _ = median_of(bare_turns)
    subset = files[:200]
    per_file_subset, _ = timed(
        [
            "sh",
            "-c",
            'for f in "$@"; do "$0" -json "$f" >/dev/null; done',
            exiftool,
            *map(str, subset),
        ]
    )
    per_file = per_file_subset * len(files) / len(subset)

    n = len(files)
    rows.append(
        (
            "`aimeta all` (default reader: native for PNG/JPEG/WebP)",
            f"{default:.2f} s ({n / default:,.0f} files/s)",
            f"{bare / default:.1f}× the speed of bare ExifTool",
        )
    )
    rows.append(
        (
            "`aimeta all --reader exiftool`",
            f"{by_exiftool:.2f} s ({n / by_exiftool:,.0f} files/s)",
            f"{bare / by_exiftool:.2f}× the speed of bare ExifTool",
        )
    )
    rows.append(
        (
            "bare `exiftool -json -r` over the folder",
            f"{bare:.2f} s ({n / bare:,.0f} files/s)",
            "1.0× (reference)",
        )
    )
    rows.append(
        (
            "one ExifTool process per file (200-file subset, extrapolated)",
            f"{per_file:.1f} s ({n / per_file:,.0f} files/s)",
            f"{per_file / bare:.0f}× slower than bare ExifTool",
        )
    )
    rows.append(
        (
            "no-change re-run of `aimeta all`",
            f"{rerun:.2f} s",
            f"{100 * rerun / default:.1f} % of the first run",
        )
    )
    rows.append(
        (
            "peak memory of `aimeta all` (default reader), all its processes together",
            f"{default_memory} MB",
            f"{n} files",
        )
    )

    megabytes = sum(p.stat().st_size for p in files) / 1e6
    print(
        f"Machine: {machine()}; corpus: {n} files, {megabytes:.0f} MB;"
        f" medians of {args.repeat} runs.\n"
    )
    print("| measurement | result | ratio |")
    print("|---|---|---|")
    for row in rows:
        print(f"| {' | '.join(row)} |")
    shutil.rmtree(work, ignore_errors=True)
    # The query and rating benchmarks print their own tables; they run after the reading rows
    # so they do not compete with them for the CPU.
    if not args.skip_queries:
        print("\n### Queries on a 100,000-image database (bench/query_bench.py)\n")
        sys.stdout.flush()
        subprocess.run([sys.executable, str(HERE / "query_bench.py")], check=False)
    if not args.skip_rate:
        print("\n### `aimeta rate` throughput (bench/rate_throughput.py)\n\n```")
        sys.stdout.flush()
        subprocess.run([sys.executable, str(HERE / "rate_throughput.py")], check=False)
        print("```")


if __name__ == "__main__":
    main()
