"""Scale benchmark: an N-image database (default 1,000,000) built through aimeta's write path.

Generates the corpus of bench/query_bench.py (40 positive and 20 negative tokens per image by
Zipf popularity, 1 checkpoint and 0-3 LoRAs, a third of the images rated) and stores it with
db.store_batch inside db.deferred_indexes, as `aimeta ingest` stores a large load. Then, in
the same run, prints one markdown table: size per image, build rate, every search of
query_bench.py, the README's documented SQL on the `tokens` view, the library API (first page,
page 50 and facets, unfiltered and filtered, called as `aimeta web` calls it), the memory of an
`aimeta web` server over the database, adding 1,000 new images to the big database and to an
empty one (database writes only: no file is read), optionally `aimeta all` of 1,000 new files
into the big database's folder and into an empty one (--add-files) and a no-change re-scan of
a generated folder (--rescan-files, bench/rescan_bench.py), and the peak memory of each phase.

    .venv/bin/python bench/scale.py [--images 1000000] [--add 1000] [--runs 5] [--keep DIR]
    .venv/bin/python bench/scale.py --reuse DIR      # measure DIR/images.db, no build
    .venv/bin/python bench/scale.py ... --add-files 1000 --rescan-files 100000

--keep builds in DIR and keeps the database; --reuse opens DIR/images.db (its pending
migrations applied and timed) and adds its new images after the ones it holds, so a second run
measures the same way. The added images stay in the database; --add-files also leaves
exif_raw.jsonl and records.* of `aimeta all` beside it.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import math
import os
import re
import resource
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from types import ModuleType

from aimeta import db
from aimeta.pipelines import library
from aimeta.pipelines.search import SearchQuery
from library_bench import Client, free_port
from query_bench import corpus_names, generate, image_count, image_key, queries, store, time_query

Row = tuple[str, str]

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
LIBRARY_PAGE = 100  # images a page: the API's default
LIBRARY_PAGE_N = 50
SERVER_START_S = 120


def _status_mb(pid: int | str, field: str) -> float:
    """A memory field of /proc/PID/status (kB) in MB; NaN where there is no /proc."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return float("nan")
    found = re.search(rf"^{field}:\s+(\d+) kB", status, re.MULTILINE)
    return int(found.group(1)) / 1024 if found else float("nan")


class PhasePeak:
    """The peak resident memory of this process during one phase: Linux resets the high-water
    mark (VmHWM) when "5" is written to /proc/self/clear_refs. Elsewhere the peak since the
    start (getrusage), which only grows."""

    def start(self) -> None:
        with suppress(OSError):
            Path("/proc/self/clear_refs").write_text("5")

    def mb(self) -> float:
        peak = _status_mb("self", "VmHWM")
        if math.isnan(peak):  # no /proc
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return peak


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


def build_rows(path: Path, images: int) -> list[Row]:
    """Build ``path`` from scratch with ``images`` images; size and rate rows."""
    for stale in path.parent.glob(path.name + "*"):
        stale.unlink()
    started = time.perf_counter()
    conn = db.connect(path)
    with db.deferred_indexes(conn):
        store(conn, generate(images))
    conn.close()
    build_s = time.perf_counter() - started
    return [
        ("images", f"{images:,}"),
        size_row(path, images),
        (
            "build (store_batch, deferred indexes)",
            f"{build_s:.0f} s ({images / build_s:,.0f} images/s)",
        ),
    ]


def reuse_rows(path: Path) -> tuple[list[Row], int]:
    """Open an existing ``path`` through db.connect (its pending migrations applied, timed);
    rows and its image count."""
    if not path.is_file():
        raise SystemExit(f"--reuse: no database at {path}")
    pending = db.schema_info(path).pending
    started = time.perf_counter()
    db.connect(path).close()
    migrate_s = time.perf_counter() - started
    images = image_count(path)
    named = ", ".join(pending) if pending else "none pending"
    return [
        ("images (existing database)", f"{images:,}"),
        (f"open through db.connect, migrations: {named}", f"{migrate_s:.1f} s"),
        size_row(path, images),
    ], images


def size_row(path: Path, images: int) -> Row:
    size = file_mb(path)
    return "database size", f"{size:,.0f} MB ({size * 1e6 / max(images, 1) / 1e3:.2f} KB per image)"


def search_rows(path: Path, vocab: dict[str, list[str]], runs: int) -> list[Row]:
    """Every search of query_bench.py and the README's SQL on the tokens view."""
    rows = []
    conn = db.open_readonly(path)
    try:
        for label, query in queries(vocab):
            ms, matches = time_query(conn, query, runs)
            rows.append((f"`aimeta search {label}`", f"{ms:.1f} ms ({matches:,} matches)"))
        token, negative = vocab["pos"][20], vocab["neg"][2]
        for label, sql in DOCUMENTED_SQL.items():
            params = (token, negative) if "?" in sql else ()
            ms = median_ms(
                lambda sql=sql, params=params: conn.execute(sql, params).fetchall(), runs
            )
            rows.append((label, f"{ms:.1f} ms"))
    finally:
        conn.close()
    return rows


def library_filters(vocab: dict[str, list[str]]) -> list[tuple[str, library.LibraryQuery]]:
    """The library queries to time, as GET /api/images and /api/facets make them (the search
    filters' own limit is 0 there; the page's limit is the API's default)."""
    token = vocab["pos"][20]
    return [
        ("no filter, newest", library.LibraryQuery(SearchQuery(limit=0), limit=LIBRARY_PAGE)),
        (
            f"--token '{token}', newest",
            library.LibraryQuery(SearchQuery(tokens=(token,), limit=0), limit=LIBRARY_PAGE),
        ),
    ]


def cursor_of_page(conn: sqlite3.Connection, query: library.LibraryQuery, n: int) -> str | None:
    """The cursor that asks for page ``n`` of ``query`` (found by walking the pages before)."""
    cursor = None
    for _ in range(n - 1):
        cursor = library.page(conn, _at(query, cursor)).next
        if cursor is None:
            break
    return cursor


def _at(query: library.LibraryQuery, cursor: str | None) -> library.LibraryQuery:
    return dataclasses.replace(query, cursor=cursor)


def library_rows(path: Path, vocab: dict[str, list[str]], runs: int) -> list[Row]:
    """Median ms of the library API's first page, page 50 and facets (pipelines.library)."""
    rows = []
    conn = db.open_readonly(path)
    try:
        for label, query in library_filters(vocab):
            first = median_ms(lambda query=query: library.page(conn, query), runs)
            later = _at(query, cursor_of_page(conn, query, LIBRARY_PAGE_N))
            nth = median_ms(lambda later=later: library.page(conn, later), runs)
            facets = median_ms(lambda query=query: library.facets(conn, query), runs)
            rows.append(
                (f"library API: first page ({LIBRARY_PAGE} images), {label}", f"{first:.1f} ms")
            )
            rows.append((f"library API: page {LIBRARY_PAGE_N}, {label}", f"{nth:.1f} ms"))
            rows.append((f"library API: facets, {label}", f"{facets:.1f} ms"))
    finally:
        conn.close()
    return rows


def plain_environment() -> dict[str, str]:
    """This environment without AIMETA_* settings (an AIMETA_DB of the shell would point a
    child `aimeta` at another database)."""
    return {name: value for name, value in os.environ.items() if not name.startswith("AIMETA_")}


def server_rows(path: Path, vocab: dict[str, list[str]]) -> list[Row]:
    """Peak memory of an `aimeta web` process over ``path`` after a first page, page 50,
    facets and one image in full, each with and without a token filter, through HTTP."""
    port = free_port()
    home = Path(tempfile.mkdtemp(prefix="aimeta-scale-web-"))  # no stray aimeta.toml read
    env = {**plain_environment(), "AIMETA_DB": str(path.resolve())}
    server = subprocess.Popen(
        [sys.executable, "-m", "aimeta", "web", "--port", str(port)],
        cwd=home,
        env=env,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(port, server)
        client = Client(port)
        started_mb = _status_mb(server.pid, "VmRSS")
        for params in ([], [("token", vocab["pos"][20])]):
            paged = [*params, ("limit", str(LIBRARY_PAGE))]
            answer = client.json("/api/images", paged)
            for _ in range(LIBRARY_PAGE_N - 1):
                if not answer["next"]:
                    break
                answer = client.json("/api/images", [*paged, ("cursor", answer["next"])])
            client.json("/api/facets", params)
            client.json(f"/api/images/{answer['items'][0]['id']}")
        peak = _status_mb(server.pid, "VmHWM")
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(home, ignore_errors=True)
    return [
        ("`aimeta web` memory when it starts (RSS)", f"{started_mb:.0f} MB"),
        (
            f"`aimeta web` peak memory (VmHWM) after pages 1-{LIBRARY_PAGE_N}, facets and an image"
            " in full, unfiltered and with --token",
            f"{peak:.0f} MB",
        ),
    ]


def _wait_for_port(port: int, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"`aimeta web` ended with status {server.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("`aimeta web` did not start listening")


def first_free_number(path: Path, start: int, count: int) -> int:
    """The first image number from ``start`` whose ``count`` keys are not in ``path`` (a
    reused database holds the images earlier runs added)."""
    conn = db.open_readonly(path)
    try:
        number = start
        while conn.execute(
            "SELECT 1 FROM images WHERE key IN (?, ?)",
            (image_key(number), image_key(number + count - 1)),
        ).fetchone():
            number += count
        return number
    finally:
        conn.close()


def add_images(path: Path, first: int, count: int) -> tuple[float, int]:
    """Seconds to store ``count`` new images (one batch per query_bench.BATCH) into ``path``,
    and the pages its largest transaction wrote to the write-ahead log: what the time mostly
    pays for, each new row landing on another page of the large indexes."""
    items = list(generate(count, first=first))  # generated before the clock starts
    conn = db.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the log starts empty
    started = time.perf_counter()
    store(conn, items)
    elapsed = time.perf_counter() - started
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    # Read before closing (the last connection removes the log). A checkpoint after each
    # commit lets the next transaction rewrite the log from its start: its size is that of
    # the largest transaction (a 32-byte header, then 24 bytes and a page a frame).
    log = Path(f"{path}-wal")
    frames = (log.stat().st_size - 32) // (page_size + 24) if log.is_file() else 0
    conn.close()
    return elapsed, max(frames, 0)


def add_rows(path: Path, images: int, count: int, peak: PhasePeak) -> list[Row]:
    """Adding ``count`` new images to ``path`` and the same ones to an empty database."""
    first = first_free_number(path, images, count)
    peak.start()
    big_s, big_pages = add_images(path, first, count)
    big_mb = peak.mb()
    scratch = Path(tempfile.mkdtemp(prefix="aimeta-scale-empty-"))
    try:
        empty_s, empty_pages = add_images(scratch / "images.db", first, count)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return [
        (
            f"add {count:,} new images to the {images:,}-image database",
            f"{big_s:.2f} s ({big_pages:,} pages written)",
        ),
        (
            f"add the same {count:,} images to an empty database",
            f"{empty_s:.2f} s ({empty_pages:,} pages written)",
        ),
        ("ratio (target ≤ 2)", f"{big_s / empty_s:.1f}"),
        (f"peak memory while adding {count:,} to the large database", f"{big_mb:.0f} MB"),
    ]


def run_all(corpus: Path, out_dir: Path, *flags: str) -> float:
    """Seconds of `aimeta all CORPUS --out-dir OUT_DIR [FLAGS]` in a child process (reading
    the files, storing them, resolving, exporting: everything a user's run does)."""
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "aimeta",
            "all",
            str(corpus),
            "--out-dir",
            str(out_dir),
            "-q",
            *flags,
        ],
        check=True,
        cwd=out_dir,  # no stray aimeta.toml read
        env=plain_environment(),
    )
    return time.perf_counter() - started


def add_files_rows(path: Path, images: int, files: int) -> list[Row]:
    """`aimeta all` on a new bench/make_corpus.py folder of ``files`` files into the folder of
    ``path`` (so into the big database) and into an empty folder; then the same with
    --no-export on another new folder (the database's share of the work). The corpora are
    seeded by the database's size, so that a second --reuse run reads new files (the same
    files again would be re-linked by content, not added)."""
    rows: list[Row] = []
    for seed, flags in ((images, ()), (images + 1, ("--no-export",))):
        # Named by the time: each run's files sort after the last run's, as a generator's
        # next files do, so their records are appended to records.* (not merged).
        scratch = Path(tempfile.mkdtemp(prefix=f"aimeta-scale-files-{time.time_ns()}-"))
        try:
            corpus = scratch / "corpus"
            subprocess.run(
                [sys.executable, str(Path(__file__).with_name("make_corpus.py")), str(files),
                 str(corpus), "--seed", str(seed)],
                check=True,
                stdout=subprocess.DEVNULL,
            )  # fmt: skip
            big_s = run_all(corpus, path.parent, *flags)
            (scratch / "empty").mkdir()
            empty_s = run_all(corpus, scratch / "empty", *flags)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        named = " ".join(("`aimeta all", *flags)) + "`"
        rows += [
            (
                f"{named} of {files:,} new files (bench/make_corpus.py) into the"
                f" {images:,}-image database",
                f"{big_s:.2f} s",
            ),
            (f"{named} of the same {files:,} files into an empty folder", f"{empty_s:.2f} s"),
            ("ratio (target ≤ 2)", f"{big_s / empty_s:.1f}"),
        ]
    return rows


def rescan_module() -> ModuleType | None:
    """bench/rescan_bench.py when it is there (it measures `aimeta all` on a generated folder)."""
    try:
        return importlib.import_module("rescan_bench")
    except ModuleNotFoundError as exc:
        if exc.name != "rescan_bench":
            raise
        return None


def rescan_rows(files: int, workdir: Path) -> list[Row]:
    module = rescan_module()
    if module is None:
        return [(f"re-scan of {files:,} files", "skipped: bench/rescan_bench.py is missing")]
    rows: list[Row] = module.measure(files, workdir)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1_000_000)
    parser.add_argument("--add", type=int, default=1_000)
    parser.add_argument("--runs", type=int, default=5)
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--keep", type=Path, help="build the database in DIR and keep it")
    where.add_argument("--reuse", type=Path, help="measure DIR/images.db without building")
    parser.add_argument(
        "--add-files",
        type=int,
        default=0,
        help="also time `aimeta all` of N new files into the database's folder (0: skip)",
    )
    parser.add_argument(
        "--rescan-files", type=int, default=0, help="also time bench/rescan_bench.py (0: skip)"
    )
    args = parser.parse_args()
    folder = args.reuse or args.keep or Path(tempfile.mkdtemp(prefix="aimeta-scale-"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "images.db"

    peak = PhasePeak()
    rows: list[Row] = []

    def phase(name: str, action: Callable[[], list[Row]]) -> None:
        peak.start()
        rows.extend(action())
        rows.append((f"peak memory of this process: {name}", f"{peak.mb():.0f} MB"))

    if args.reuse:
        peak.start()
        reused, images = reuse_rows(path)
        rows.extend(reused)
        rows.append(("peak memory of this process: open and migrate", f"{peak.mb():.0f} MB"))
    else:
        images = args.images
        phase("build", lambda: build_rows(path, images))
    vocab = corpus_names()[1]
    phase("searches and SQL", lambda: search_rows(path, vocab, args.runs))
    phase("library API", lambda: library_rows(path, vocab, args.runs))
    rows.extend(server_rows(path, vocab))
    rows.extend(add_rows(path, images, args.add, peak))
    if args.add_files:
        rows.extend(add_files_rows(path, images + args.add, args.add_files))
    if args.rescan_files:
        workdir = Path(tempfile.mkdtemp(prefix="aimeta-scale-rescan-"))
        try:
            rows.extend(rescan_rows(args.rescan_files, workdir))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    print(f"SQLite {sqlite3.sqlite_version}; {os.cpu_count()} cores; median of {args.runs} runs.\n")
    print("| measure | value |")
    print("|---|---:|")
    for label, value in rows:
        print(f"| {label} | {value} |")
    if args.keep is None and args.reuse is None:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
