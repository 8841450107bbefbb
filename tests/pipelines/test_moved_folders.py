"""Moving the output folder or the image folder costs what a no-change run costs: nothing is
read, parsed or stored again; the stored rows follow the files (issue: daily runs)."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from aimeta import db
from aimeta.pipelines import all as all_pipeline
from aimeta.settings import Settings
from factory import plain_png, png_with_text

INFOTEXT = (
    "a lighthouse at dusk, (masterpiece:1.2)\nNegative prompt: blurry\n"
    "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 42, Size: 512x512, Model: base"
)
TABLES = ("images", "kv", "token_rows", "token_texts", "resources", "ratings")


def make_project(root: Path) -> Path:
    images = root / "Input"
    (images / "sub").mkdir(parents=True)
    png_with_text(images / "a.png", {"parameters": INFOTEXT})
    png_with_text(images / "sub" / "b.png", {"parameters": INFOTEXT.replace("42", "43")})
    plain_png(images / "photo.png")
    return images


def run_all(project: Path) -> all_pipeline.AllResult:
    out = project / "out"
    return all_pipeline.run([project / "Input"], Settings(out_dir=out, db=out / "images.db"))


def count_writes(database: Path) -> None:
    """Triggers that count every row written to the tables that hold an image's data."""
    conn = sqlite3.connect(database)
    conn.execute("CREATE TABLE write_log (tbl TEXT, op TEXT)")
    for table in TABLES:
        for op in ("INSERT", "UPDATE", "DELETE"):
            conn.execute(
                f"CREATE TRIGGER count_{table}_{op.lower()} AFTER {op} ON {table} "
                f"BEGIN INSERT INTO write_log VALUES ('{table}', '{op}'); END"
            )
    conn.commit()
    conn.close()


def writes(database: Path) -> dict[tuple[str, str], int]:
    conn = sqlite3.connect(database)
    try:
        rows = conn.execute("SELECT tbl, op, COUNT(*) FROM write_log GROUP BY tbl, op")
        return {(table, op): count for table, op, count in rows}
    finally:
        conn.close()


def rate_by_hand(database: Path, image: Path) -> None:
    conn = db.connect(database)
    with db.transaction(conn):
        conn.execute(
            "INSERT INTO ratings (path, model, overall, scores_json, keywords_json, rated_at)"
            " VALUES (?, 'test-model', 4, '{}', '[]', '2026-12-02T00:00:00Z')",
            (str(image),),
        )
    conn.close()


def test_a_moved_output_folder_stores_nothing_again(tmp_path: Path) -> None:
    project = tmp_path / "project"
    make_project(project)
    first = run_all(project)
    assert first.ingest.stored == 3
    # The output folder goes elsewhere (another drive, a synced copy); the images stay.
    elsewhere = tmp_path / "copy"
    shutil.copytree(project / "out", elsewhere / "out")
    count_writes(elsewhere / "out" / "images.db")
    (elsewhere / "Input").symlink_to(project / "Input")

    again = all_pipeline.run(
        [project / "Input"],
        Settings(out_dir=elsewhere / "out", db=elsewhere / "out" / "images.db"),
    )

    assert (again.dump.read, again.dump.unchanged, again.ingest.stored) == (0, 3, 0)
    assert writes(elsewhere / "out" / "images.db") == {}


def test_a_moved_project_relinks_paths_and_ratings_without_reading(tmp_path: Path) -> None:
    project = tmp_path / "project"
    images = make_project(project)
    run_all(project)
    rate_by_hand(project / "out" / "images.db", images / "sub" / "b.png")
    moved = tmp_path / "elsewhere" / "project"
    moved.parent.mkdir()
    shutil.move(project, moved)
    database = moved / "out" / "images.db"
    count_writes(database)

    result = run_all(moved)

    assert (result.dump.read, result.ingest.stored, result.relinked.images) == (0, 0, 3)
    # Only the three stored paths and the one rating's path were written; no row of the
    # images' parameters, tokens or resources was deleted, inserted or rewritten.
    assert writes(database) == {("images", "UPDATE"): 3, ("ratings", "UPDATE"): 1}
    conn = db.open_readonly(database)
    paths = sorted(row[0] for row in conn.execute("SELECT path FROM images"))
    rated = conn.execute("SELECT path FROM ratings").fetchall()
    best = conn.execute(
        "SELECT best_rating FROM v_images_search WHERE path = ?",
        (str(moved / "Input" / "sub" / "b.png"),),
    ).fetchone()
    conn.close()
    assert paths == sorted(str(p) for p in (moved / "Input").rglob("*.png"))
    assert rated == [(str(moved / "Input" / "sub" / "b.png"),)]
    assert best == (4,)

    # And the run after that is an ordinary no-change run: nothing written at all.
    again = run_all(moved)
    assert (again.dump.read, again.ingest.stored, again.relinked.images) == (0, 0, 0)
    assert writes(database) == {("images", "UPDATE"): 3, ("ratings", "UPDATE"): 1}


def test_a_changed_file_in_a_moved_folder_is_read_again(tmp_path: Path) -> None:
    project = tmp_path / "project"
    images = make_project(project)
    run_all(project)
    moved = tmp_path / "moved"
    shutil.move(project, moved)
    png_with_text(moved / "Input" / "a.png", {"parameters": INFOTEXT.replace("dusk", "dawn")})
    assert images != moved / "Input"

    result = run_all(moved)

    assert (result.dump.read, result.relinked.images) == (1, 2)
    conn = db.open_readonly(moved / "out" / "images.db")
    prompt = conn.execute(
        "SELECT kv.value FROM kv JOIN images i ON i.id = kv.image_id"
        " WHERE i.path = ? AND kv.key = 'prompt'",
        (str(moved / "Input" / "a.png"),),
    ).fetchone()
    conn.close()
    assert prompt is not None and "dawn" in prompt[0]
