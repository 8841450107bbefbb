"""`aimeta watch` as a real process, with real processes writing images the ways generators
do (temporary file then rename, chunks with pauses, a rewrite in place), files and a folder
renamed and deleted under it, a SIGKILL mid-burst, and --rate against the local model server.
The end state is always compared with what one `aimeta all` over the final folder stores."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from aimeta import db
from aimeta.pipelines import all as all_pipeline
from aimeta.settings import Settings
from openai_server import serve

WRITERS = Path(__file__).resolve().parents[1] / "watch_writers.py"
SRC = Path(__file__).resolve().parents[2] / "src"
Popen = subprocess.Popen[bytes]


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIMETA_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    env["AIMETA_CONVERTER"] = "pillow"
    return env


@contextmanager
def watcher(folder: Path, out: Path, *extra: str) -> Iterator[subprocess.Popen[bytes]]:
    """`aimeta watch FOLDER --out-dir OUT`, started and past its start-up scan."""
    log = (out.parent / f"watch-{time.monotonic_ns()}.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "aimeta", "watch", str(folder), "--out-dir", str(out), *extra],
        stderr=log,
        stdout=subprocess.DEVNULL,
        env=environment(),
    )
    try:
        wait_for(lambda: Path(log.name).stat().st_size > 0, f"the start-up scan ({log.name})")
        # The scan's status line is written before the events are watched: give them a moment.
        time.sleep(0.5)
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        log.close()


def write(mode: str, folder: Path, count: int, per_second: float, prefix: str) -> Popen:
    return subprocess.Popen(
        [sys.executable, str(WRITERS), mode, str(folder), str(count), str(per_second), prefix],
        stdout=subprocess.DEVNULL,
    )


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def present(database: Path) -> set[tuple[str, str, str | None]]:
    """(key, path, prompt) of every image whose file is there."""
    if not database.is_file():
        return set()
    conn = sqlite3.connect(database, timeout=30)
    try:
        rows = conn.execute(
            "SELECT i.key, i.path, kv.value FROM images i LEFT JOIN kv"
            " ON kv.image_id = i.id AND kv.key = 'prompt' WHERE i.missing_since IS NULL"
        ).fetchall()
    finally:
        conn.close()
    return set(rows)


def one_all_run(folder: Path, tmp_path: Path) -> set[tuple[str, str, str | None]]:
    """What one `aimeta all` over the folder stores, into a database of its own."""
    out = tmp_path / f"fresh-{time.monotonic_ns()}"
    all_pipeline.run([folder], Settings(out_dir=out, db=out / "images.db"))
    return present(out / "images.db")


def matches_one_all_run(folder: Path, database: Path, tmp_path: Path) -> Callable[[], bool]:
    return lambda: present(database) == one_all_run(folder, tmp_path)


def rate_by_hand(database: Path, image: Path) -> None:
    conn = db.connect(database)
    with db.transaction(conn):
        conn.execute(
            "INSERT INTO ratings (path, model, overall, scores_json, keywords_json, rated_at)"
            " VALUES (?, 'test-model', 5, '{}', '[]', '2026-12-02T00:00:00Z')",
            (str(image),),
        )
    conn.close()


def finish(*writers: Popen) -> None:
    for process in writers:
        assert process.wait(timeout=30) == 0


def test_writes_renames_and_deletes_end_as_one_all_run_with_ratings_kept(
    tmp_path: Path,
) -> None:
    folder, out = tmp_path / "Input", tmp_path / "out"
    (folder / "sub").mkdir(parents=True)
    database = out / "images.db"
    with watcher(folder, out) as process:
        finish(write("a1111", folder, 12, 20, "a"), write("comfyui", folder / "sub", 4, 20, "c"))
        wait_for(matches_one_all_run(folder, database, tmp_path), "the written images")
        assert len(present(database)) == 16
        rate_by_hand(database, folder / "sub" / "c1.png")

        finish(write("rewrite", folder, 2, 20, "a"))  # a0, a1 rewritten in place
        (folder / "a3.png").rename(folder / "renamed-a3.png")
        (folder / "sub").rename(folder / "sub-renamed")
        (folder / "a5.png").unlink()
        wait_for(matches_one_all_run(folder, database, tmp_path), "the changes")

        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=15) == 0
    conn = db.open_readonly(database)
    rated = conn.execute(
        "SELECT i.path, r.path, v.best_rating FROM ratings r JOIN images i ON i.id = r.image_id"
        " JOIN v_images_search v ON v.id = i.id"
    ).fetchall()
    missing = conn.execute("SELECT path FROM images WHERE missing_since IS NOT NULL").fetchall()
    count = conn.execute("SELECT COUNT(*) FROM images").fetchone()[0]
    conn.close()
    moved = str(folder / "sub-renamed" / "c1.png")
    assert rated == [(moved, moved, 5)]
    assert missing == [(str(folder / "a5.png"),)]
    assert count == 16  # the moved ones re-linked, not stored twice; the deleted one kept


def test_a_watcher_killed_mid_burst_catches_up_when_started_again(tmp_path: Path) -> None:
    folder, out = tmp_path / "Input", tmp_path / "out"
    folder.mkdir()
    database = out / "images.db"
    with watcher(folder, out) as process:
        burst = write("a1111", folder, 60, 40, "k")
        wait_for(lambda: len(present(database)) >= 5, "the first images of the burst")
        process.send_signal(signal.SIGKILL)
        process.wait()
        finish(burst)
    assert len(present(database)) < 60
    with watcher(folder, out) as process:
        more = write("comfyui", folder, 3, 20, "m")
        finish(more)
        wait_for(matches_one_all_run(folder, database, tmp_path), "the catch-up")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    assert len(present(database)) == 63


def test_rate_rates_every_image_once_while_files_keep_arriving(tmp_path: Path) -> None:
    folder, out = tmp_path / "Input", tmp_path / "out"
    folder.mkdir()
    database = out / "images.db"
    with serve(latency=0.05) as server:
        with watcher(folder, out, "--rate", "--api-url", server.base_url) as process:
            finish(write("a1111", folder, 6, 10, "r"), write("comfyui", folder, 3, 10, "s"))

            def all_rated() -> bool:
                conn = sqlite3.connect(database, timeout=30)
                try:
                    return bool(conn.execute("SELECT COUNT(*) FROM ratings").fetchone()[0] == 9)
                finally:
                    conn.close()

            wait_for(all_rated, "9 ratings", timeout=30)
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=15) == 0
        requests = server.request_count
    conn = db.open_readonly(database)
    tied = conn.execute(
        "SELECT COUNT(DISTINCT r.image_id) FROM ratings r JOIN images i ON i.id = r.image_id"
    ).fetchone()[0]
    conn.close()
    assert requests == 9  # every image asked about once
    assert tied == 9
