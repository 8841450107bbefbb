"""Latency of `aimeta watch`, its idle CPU, and a folder move re-linked against a first read.

Run from the repository root:

    .venv/bin/python bench/watch_latency.py [--images 1000] [--rate 20] [--move-images 10000]

1. Latency: an `aimeta watch` process watches an empty folder while writers add ``--images``
   images at ``--rate`` images/s in total: half by one A1111-style writer (temporary file, then
   rename), half by ComfyUI-style writers (the final name written in three chunks, 0.3 s apart;
   several processes, since one image takes 0.6 s to write). The database is polled every
   20 ms; an image counts as searchable once its prompt is in ``kv``. Reports p50/p95/max from
   the writer's final write to searchable, and the images whose stored prompt differs from
   the written one (a half-read file) — both must be 0 and p95 <= 2 s.
2. Idle CPU: the watcher's CPU time over 5 s with nothing written (from /proc).
3. Move: ``--move-images`` images in a sub-folder of the watched folder, read once by `aimeta
   all` (timed); then the sub-folder is renamed while the watcher runs, timed until every
   image is stored under its new path (re-linked: no image stored again). Target: <= 10 % of
   the first read.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from aimeta.pipelines import all as all_pipeline  # noqa: E402
from aimeta.settings import Settings  # noqa: E402
from watch_writers import infotext, png_bytes, prompt_of  # noqa: E402

WRITERS = ROOT / "tests" / "watch_writers.py"
COMFY_PROCESSES = 8


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIMETA_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    return env


def start_watcher(folder: Path, out: Path, log: Path) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "aimeta", "watch", str(folder), "--out-dir", str(out)],
        stderr=log.open("wb"),
        stdout=subprocess.DEVNULL,
        env=environment(),
    )
    while log.stat().st_size == 0:  # the start-up scan's line
        time.sleep(0.05)
    time.sleep(0.5)
    return process


def stored_prompts(database: Path) -> dict[str, str]:
    if not database.is_file():
        return {}
    conn = sqlite3.connect(database, timeout=30)
    try:
        return dict(
            conn.execute(
                "SELECT i.path, kv.value FROM images i JOIN kv ON kv.image_id = i.id"
                " AND kv.key = 'prompt' WHERE i.missing_since IS NULL"
            ).fetchall()
        )
    finally:
        conn.close()


def under(database: Path, folder: Path) -> int:
    """Images stored under ``folder`` and not missing (an indexed range count: the poll must
    not load the machine it measures)."""
    low = str(folder) + os.sep
    conn = sqlite3.connect(database, timeout=30)
    try:
        return int(
            conn.execute(
                "SELECT COUNT(*) FROM images WHERE path >= ? AND path < ?"
                " AND missing_since IS NULL",
                (low, low[:-1] + chr(ord(os.sep) + 1)),
            ).fetchone()[0]
        )
    finally:
        conn.close()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def latency(work: Path, images: int, rate: float) -> subprocess.Popen[bytes]:
    folder, out = work / "Input", work / "out"
    folder.mkdir(parents=True)
    watcher = start_watcher(folder, out, work / "watch.log")
    half = images // 2
    per_comfy = (images - half) // COMFY_PROCESSES
    writers = [
        subprocess.Popen(
            [sys.executable, str(WRITERS), "a1111", str(folder), str(half), str(rate / 2), "a"],
            stdout=subprocess.PIPE,
        )
    ]
    for number in range(COMFY_PROCESSES):
        comfy_rate = rate / 2 / COMFY_PROCESSES
        writers.append(
            subprocess.Popen(
                [
                    sys.executable,
                    str(WRITERS),
                    "comfyui",
                    str(folder),
                    str(per_comfy),
                    str(comfy_rate),
                    f"c{number}x",
                ],
                stdout=subprocess.PIPE,
            )
        )
    expected = half + per_comfy * COMFY_PROCESSES
    seen_at: dict[str, float] = {}
    database = out / "images.db"
    deadline = time.time() + images / rate + 60
    while len(seen_at) < expected and time.time() < deadline:
        now = time.time()
        for path in stored_prompts(database):
            seen_at.setdefault(path, now)
        time.sleep(0.02)
    written: dict[str, float] = {}
    for writer in writers:
        output, _ = writer.communicate()
        for line in output.decode().splitlines():
            path, at = line.rsplit(" ", 1)
            written[path] = float(at)
    delays = sorted(seen_at[path] - written[path] for path in written if path in seen_at)
    stored = stored_prompts(database)
    wrong = 0
    for path in written:
        name = Path(path).stem
        prefix, number = ("a", name[1:]) if name.startswith("a") else name.split("x")
        prefix = prefix if prefix == "a" else prefix + "x"
        wrong += stored.get(path) != prompt_of(prefix, int(number))
    p95 = delays[int(0.95 * (len(delays) - 1))] if delays else float("nan")
    print(
        f"latency: {len(written)} images written at {rate:g}/s, {len(delays)} searchable;"
        f" p50 {statistics.median(delays):.2f} s, p95 {p95:.2f} s, max {delays[-1]:.2f} s;"
        f" {wrong} stored with another prompt than written (half-read)"
    )
    return watcher


def idle_cpu(watcher: subprocess.Popen[bytes], seconds: float = 5.0) -> None:
    before = cpu_seconds(watcher.pid)
    time.sleep(seconds)
    used = cpu_seconds(watcher.pid) - before
    print(f"idle: watcher used {used:.3f} s of CPU in {seconds:g} s ({100 * used / seconds:.1f} %)")


def move(work: Path, count: int) -> None:
    folder, out = work / "Input", work / "out"
    batch = folder / "batch"
    batch.mkdir(parents=True)
    for number in range(count):
        (batch / f"m{number}.png").write_bytes(png_bytes(infotext("m", number), number))
    started = time.perf_counter()
    all_pipeline.run([folder], Settings(out_dir=out, db=out / "images.db"))
    first_read = time.perf_counter() - started
    log = work / "watch-move.log"
    watcher = start_watcher(folder, out, log)
    moved = folder / "moved-batch"
    database = out / "images.db"
    started = time.perf_counter()
    batch.rename(moved)
    while under(database, moved) < count:
        time.sleep(0.02)
    relinked = time.perf_counter() - started
    watcher.terminate()
    watcher.wait()
    lines = log.read_text().splitlines()
    stored_again = sum(int(line.split()[0][1:]) for line in lines[1:] if line.startswith("+"))
    print(
        f"move: {count} images; first read {first_read:.2f} s, move re-linked in"
        f" {relinked:.2f} s ({100 * relinked / first_read:.1f} %); {stored_again} stored again"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--move-images", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        watcher = latency(Path(scratch) / "latency", args.images, args.rate)
        try:
            idle_cpu(watcher)
        finally:
            watcher.terminate()
            watcher.wait()
    with tempfile.TemporaryDirectory() as scratch:
        move(Path(scratch), args.move_images)


if __name__ == "__main__":
    main()
