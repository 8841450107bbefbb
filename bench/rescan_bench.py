"""Re-scan benchmark: what `aimeta all` costs when little or nothing changed.

    python bench/rescan_bench.py --files 20000
    python bench/rescan_bench.py --files 100000 --keep /tmp/rescan   # keep corpus and out/

Generates FILES files with bench/make_corpus.py's mix, then times, each as its own process
with every process it starts (workers, ExifTool) counted in its peak memory: the first
`aimeta all`, a no-change re-run (and its share of the first), and a run after adding 1 % new
files; then, in this process, records.jsonl/records.csv written whole against merging 1 %
changed records into them. Prints a markdown table; bench/scale.py adds its rows under
`--rescan-files N`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import make_corpus  # noqa: E402
from aimeta import db  # noqa: E402
from aimeta.pipelines import export  # noqa: E402
from run import timed  # noqa: E402

ADDED_SHARE = 100  # the added run brings 1/100 of the corpus


def aimeta_all(corpus: Path, out: Path) -> tuple[float, int, dict[str, object]]:
    """Seconds, peak MB (all processes) and the --json report of one `aimeta all`."""
    report = out.parent / "report.json"
    command = [sys.executable, "-m", "aimeta", "all", str(corpus), "--out-dir", str(out)]
    script = f"{subprocess.list2cmdline([*command, '--json', '--quiet'])} > {report}"
    seconds, peak = timed(["sh", "-c", script])
    return seconds, peak, json.loads(report.read_text())


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
    first, first_peak, _ = aimeta_all(corpus, out)
    again, again_peak, again_report = aimeta_all(corpus, out)
    make_corpus.make(max(1, files // ADDED_SHARE), added, seed=2)
    more, more_peak, more_report = aimeta_all(corpus, out)
    whole, merged, records = export_seconds(out, ADDED_SHARE)
    size_mb = sum((out / name).stat().st_size for name in ("records.jsonl", "records.csv")) / 1e6
    return [
        (
            f"first `aimeta all` of {files:,} files",
            f"{first:.1f} s ({files / first:,.0f} files/s), peak {first_peak} MB",
        ),
        (
            "no-change re-run",
            f"{again:.2f} s = {100 * again / first:.1f} % of the first, peak {again_peak} MB"
            f" (records.*: {again_report.get('exports', '?')})",
        ),
        (
            f"re-run after adding {files // ADDED_SHARE:,} files (1 %)",
            f"{more:.2f} s = {100 * more / first:.1f} % of the first, peak {more_peak} MB"
            f" ({more_report['stored']} stored; records.*: {more_report.get('exports', '?')})",
        ),
        (
            f"records.jsonl + records.csv ({records:,} records, {size_mb:,.0f} MB)",
            f"whole {whole:.2f} s; 1 % merged in {merged:.2f} s",
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
