"""Re-scan benchmark: what `aimeta all` costs when little or nothing changed.

    python bench/rescan_bench.py --files 20000
    python bench/rescan_bench.py --files 100000 --keep /tmp/rescan   # keep corpus and out/

Generates FILES files with bench/make_corpus.py's mix, then times, each as its own process:
the first `aimeta all`, a no-change re-run (and its share of the first), and a run after
adding 1 % new files, each with the peak memory of all its processes (worker processes
included) counted two ways: resident (as bench/run.py counts it: a page shared by the main
process and its forked workers counts once per process) and proportional (a shared page
counts once in all). Then, in this process, records.jsonl/records.csv written whole against
merging 1 % changed records into them. Prints a markdown table; bench/scale.py adds its rows
under `--rescan-files N`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import make_corpus  # noqa: E402
from aimeta import db  # noqa: E402
from aimeta.pipelines import export  # noqa: E402
from run import tree_rss_mb  # noqa: E402

ADDED_SHARE = 100  # the added run brings 1/100 of the corpus


def tree_pss_mb(pid: int) -> float:
    """Proportional memory (MB) of a process and its descendants: each page shared by n of
    them counts 1/n in each (forked workers share the main process's pages, which the
    resident sizes of bench/run.py's tree_rss_mb count once per process)."""
    total, pending = 0.0, [pid]
    while pending:
        current = pending.pop()
        try:
            for line in Path(f"/proc/{current}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) / 1024
            for task in Path(f"/proc/{current}/task").iterdir():
                pending.extend(int(c) for c in (task / "children").read_text().split())
        except (OSError, ValueError):
            continue
    return total


@dataclass
class Run:
    """One `aimeta all`: seconds, peak memory of all its processes (resident, as bench/run.py
    counts it, and proportional) and its --json report."""

    seconds: float
    rss_mb: float
    pss_mb: float
    report: dict[str, Any]

    def memory(self) -> str:
        return f"peak {self.rss_mb:.0f} MB resident, {self.pss_mb:.0f} MB proportional"


def aimeta_all(corpus: Path, out: Path) -> Run:
    """Run `aimeta all` on ``corpus`` into ``out``, sampling its memory every 20 ms."""
    command = [sys.executable, "-m", "aimeta", "all", str(corpus), "--out-dir", str(out)]
    started = time.perf_counter()
    process = subprocess.Popen([*command, "--json", "--quiet"], stdout=subprocess.PIPE)
    peaks = [0.0, 0.0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            peaks[0] = max(peaks[0], tree_rss_mb(process.pid))
            peaks[1] = max(peaks[1], tree_pss_mb(process.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output, _ = process.communicate()
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({process.returncode})")
    return Run(seconds, peaks[0], peaks[1], json.loads(output))


def export_seconds(out: Path, share: int) -> tuple[float, float, int]:
    """Seconds to write records.* whole, and to merge 1/``share`` of the records (the last
    stored, as if read again) into them; and the number of records."""
    conn = db.open_readonly(out / "images.db")
    try:
        jsonl, csv = out / "records.jsonl", out / "records.csv"
        started = time.perf_counter()
        count = export.write_both(conn, jsonl, csv)
        whole = time.perf_counter() - started
        keys = [key for (key,) in conn.execute("SELECT key FROM images ORDER BY id")]
        changes = export.Changes(keys=set(keys[: max(1, len(keys) // share)]))
        started = time.perf_counter()
        export.merge_both(conn, jsonl, csv, changes)
        merged = time.perf_counter() - started
    finally:
        conn.close()
    return whole, merged, count


def measure(files: int, workdir: Path) -> list[tuple[str, str]]:
    """Markdown table rows (label, value) of the re-scan of a ``files``-file corpus built in
    ``workdir`` (the corpus and out/ are left there)."""
    corpus, out = workdir / "corpus", workdir / "out"
    added = corpus / "added"
    shutil.rmtree(added, ignore_errors=True)  # left by an earlier run with --keep
    if not corpus.is_dir():
        make_corpus.make(files, corpus)
    shutil.rmtree(out, ignore_errors=True)
    first = aimeta_all(corpus, out)
    again = aimeta_all(corpus, out)
    make_corpus.make(max(1, files // ADDED_SHARE), added, seed=2)
    more = aimeta_all(corpus, out)
    whole, merged, records = export_seconds(out, ADDED_SHARE)
    size_mb = sum((out / name).stat().st_size for name in ("records.jsonl", "records.csv")) / 1e6
    return [
        (
            f"first `aimeta all` of {files:,} files",
            f"{first.seconds:.1f} s ({files / first.seconds:,.0f} files/s), {first.memory()}",
        ),
        (
            "no-change re-run",
            f"{again.seconds:.2f} s = {100 * again.seconds / first.seconds:.1f} % of the first,"
            f" {again.memory()} (records.*: {again.report.get('exports', '?')})",
        ),
        (
            f"re-run after adding {files // ADDED_SHARE:,} files (1 %)",
            f"{more.seconds:.2f} s = {100 * more.seconds / first.seconds:.1f} % of the first,"
            f" {more.memory()} ({more.report['stored']} stored;"
            f" records.*: {more.report.get('exports', '?')})",
        ),
        (
            f"records.jsonl + records.csv ({records:,} records, {size_mb:,.0f} MB)",
            f"written whole {whole:.2f} s; 1 % changed records merged in {merged:.2f} s",
        ),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--keep", type=Path, help="build the corpus and out/ in DIR and keep them")
    args = parser.parse_args()
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="aimeta-rescan-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        rows = measure(args.files, workdir)
    finally:
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)
    print("| step | result |\n|---|---|")
    for label, value in rows:
        print(f"| {label} | {value} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
