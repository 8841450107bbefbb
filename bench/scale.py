"""Scale benchmark: an N-image database (default 1,000,000) built through aimeta's write path.

Generates the corpus of bench/query_bench.py (40 positive and 20 negative tokens per image by
Zipf popularity, 1 checkpoint and 0-3 LoRAs, a third of the images rated) and stores it with
db.store_batch inside db.deferred_indexes, as `aimeta ingest` stores a large load. Then, in
the same run, prints one markdown table: size per image, build rate, every search of
query_bench.py, the README's documented SQL on the `tokens` view, adding 1,000 new images to
the big database and to an empty one (database writes only: no file is read), and the
process's peak memory after each phase.

    .venv/bin/python bench/scale.py [--images 1000000] [--add 1000] [--runs 5] [--keep DIR]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from aimeta import db
from query_bench import corpus_names, generate, queries, store, time_query

# The README's "SQL examples" on the tokens view (what DB Browser users type).
DOCUMENTED_SQL = {
    "top 500 positive tokens (README SQL)": (
        "SELECT t_norm FROM tokens WHERE side='pos' GROUP BY t_norm ORDER BY COUNT(*) DESC"
        " LIMIT 500"
    ),
    "token X but not negative token Y (README SQL)": (
        "SELECT COUNT(DISTINCT p.image_id) FROM tokens p WHERE p.side='pos' AND p.t_norm=?"
        " AND NOT EXISTS (SELECT 1 FROM tokens n WHERE n.image_id=p.image_id"
        " AND n.side='neg' AND n.t_norm=?)"
    ),
}


def peak_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def file_mb(path: Path) -> float:
    """The database's size with its write-ahead log copied in."""
    db.checkpoint(path)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return path.stat().st_size / 1e6


def median_ms(action: Callable[[], object], runs: int) -> float:
    action()  # warm-up
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


def add_images(path: Path, first: int, count: int) -> float:
    """Seconds to store ``count`` new images (one batch per query_bench.BATCH) into ``path``."""
    conn = db.connect(path)
    started = time.perf_counter()
    store(conn, generate(count, first=first))
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1_000_000)
    parser.add_argument("--add", type=int, default=1_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="build the database in DIR and keep it")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="aimeta-scale-"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "images.db"
    for stale in folder.glob("*.db*"):
        stale.unlink()

    rows: list[tuple[str, str]] = []
    started = time.perf_counter()
    conn = db.connect(path)
    with db.deferred_indexes(conn):
        store(conn, generate(args.images))
    conn.close()
    build_s = time.perf_counter() - started
    size = file_mb(path)
    rows.append(("images", f"{args.images:,}"))
    rows.append(
        ("database size", f"{size:,.0f} MB ({size * 1e6 / args.images / 1e3:.2f} KB per image)")
    )
    rows.append(
        (
            "build (store_batch, deferred indexes)",
            f"{build_s:.0f} s ({args.images / build_s:,.0f} images/s)",
        )
    )
    rows.append(("peak memory after the build", f"{peak_mb():.0f} MB"))

    vocab = corpus_names()[1]
    conn = db.open_readonly(path)
    for label, query in queries(vocab):
        ms, matches = time_query(conn, query, args.runs)
        rows.append((f"`aimeta search {label}`", f"{ms:.1f} ms ({matches:,} matches)"))
    token, negative = vocab["pos"][20], vocab["neg"][2]
    for label, sql in DOCUMENTED_SQL.items():
        params = (token, negative) if "?" in sql else ()
        ms = median_ms(
            lambda sql=sql, params=params: conn.execute(sql, params).fetchall(), args.runs
        )
        rows.append((label, f"{ms:.1f} ms"))
    conn.close()
    rows.append(("peak memory after the searches", f"{peak_mb():.0f} MB"))

    big_s = add_images(path, args.images, args.add)
    empty = folder / "empty.db"
    empty_s = add_images(empty, args.images, args.add)
    rows.append(
        (f"add {args.add:,} new images to the {args.images:,}-image database", f"{big_s:.2f} s")
    )
    rows.append((f"add the same {args.add:,} images to an empty database", f"{empty_s:.2f} s"))
    rows.append(("peak memory at the end", f"{peak_mb():.0f} MB"))

    print(f"SQLite {sqlite3.sqlite_version}; no ANALYZE run (planner statistics: only the")
    print("fixed ones migration 5 records for token_rows/token_texts).\n")
    print("| measure | value |")
    print("|---|---:|")
    for label, value in rows:
        print(f"| {label} | {value} |")
    if args.keep is None:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
