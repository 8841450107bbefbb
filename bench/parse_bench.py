"""Time ``parse_fields`` over a dumped corpus, optionally interleaved with another source tree.

Usage:
    python bench/parse_bench.py DUMP.jsonl [--repeat 7] [--baseline REV_OR_SRC_DIR] [--profile]

DUMP.jsonl is what ``aimeta dump FOLDER --out DUMP.jsonl`` writes (e.g. over the corpus of
``bench/make_corpus.py``). Each tree runs in its own worker process that loads the corpus
once; the passes of the trees alternate, so load from other jobs on the machine hits both
alike and only the ratio within one run means anything. ``--baseline`` is a git revision
(its ``src`` is exported to a temporary folder) or a folder holding an ``aimeta`` package.
``--profile`` prints the top of a cProfile of one pass of this tree instead. Not a test.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def _load(dump: Path) -> list[dict[str, str]]:
    import orjson

    from aimeta.metadata.readers.fields import text_fields

    fields: list[dict[str, str]] = []
    with dump.open("rb") as handle:
        for line in handle:
            if not line.strip() or line.startswith((b"#", b'{"aimeta_dump"')):
                continue
            fields.append(dict(text_fields(orjson.loads(line).get("tags") or {})))
    return fields


def _worker(src: str, dump: Path) -> None:
    """Answer each ``run`` line on stdin with the wall-clock and CPU seconds of one pass over
    the corpus."""
    sys.path.insert(0, src)
    from aimeta.metadata.parsers import parse_fields

    fields = _load(dump)
    for item in fields:  # warm-up: imports, regex caches
        parse_fields(item)
    print(len(fields), flush=True)
    for _ in sys.stdin:
        started, cpu_started = time.perf_counter(), time.process_time()
        for item in fields:
            parse_fields(item)
        print(time.perf_counter() - started, time.process_time() - cpu_started, flush=True)


def _start(src: str, dump: Path) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, __file__, str(dump), "--worker", src],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    process.stdout.readline()
    return process


def _pass(process: subprocess.Popen[str]) -> tuple[float, float]:
    """(wall-clock, CPU) seconds of one pass in the worker."""
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write("run\n")
    process.stdin.flush()
    wall, cpu = process.stdout.readline().split()
    return float(wall), float(cpu)


def _baseline_src(baseline: str, scratch: Path) -> str:
    if Path(baseline, "aimeta").is_dir():
        return baseline
    archive = subprocess.run(
        ["git", "-C", str(SRC.parent), "archive", baseline, "src/aimeta"],
        capture_output=True,
        check=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(scratch)], input=archive, check=True)
    return str(scratch / "src")


def _profile(dump: Path) -> None:
    import cProfile
    import pstats

    sys.path.insert(0, str(SRC))
    from aimeta.metadata.parsers import parse_fields

    fields = _load(dump)
    for item in fields:
        parse_fields(item)
    profiler = cProfile.Profile()
    profiler.enable()
    for item in fields:
        parse_fields(item)
    profiler.disable()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dump", type=Path)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--baseline", help="git revision or folder with an aimeta package")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.worker:
        _worker(options.worker, options.dump)
        return 0
    if options.profile:
        _profile(options.dump)
        return 0
    with tempfile.TemporaryDirectory() as scratch:
        trees = {"this tree": str(SRC)}
        if options.baseline:
            trees["baseline"] = _baseline_src(options.baseline, Path(scratch))
        workers = {name: _start(src, options.dump) for name, src in trees.items()}
        times: dict[str, list[float]] = {name: [] for name in trees}
        cpu_times: dict[str, list[float]] = {name: [] for name in trees}
        for _ in range(options.repeat):
            for name, process in workers.items():
                wall, cpu = _pass(process)
                times[name].append(wall)
                cpu_times[name].append(cpu)
        for process in workers.values():
            assert process.stdin is not None
            process.stdin.close()
            process.wait()
    # CPU time is shown too: on a busy machine it varies less than wall-clock time.
    medians = {name: statistics.median(values) for name, values in times.items()}
    cpu_medians = {name: statistics.median(values) for name, values in cpu_times.items()}
    for name, median in medians.items():
        print(
            f"{name:10s} median {median * 1000:8.1f} ms (min {min(times[name]) * 1000:.1f}), "
            f"CPU median {cpu_medians[name] * 1000:.1f} ms"
        )
    if "baseline" in medians:
        print(
            f"speed-up: {medians['baseline'] / medians['this tree']:.2f}x wall-clock, "
            f"{cpu_medians['baseline'] / cpu_medians['this tree']:.2f}x CPU"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
