"""An image is its id: a renamed folder is re-linked by content (size, sha256) and keeps its id,
rows and ratings; a deleted file is marked missing until `aimeta prune`; migration 3 ties the
ratings already stored to their images."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from typer.testing import CliRunner

import old_databases
from aimeta import db
from aimeta.cli import app
from aimeta.migrations import MIGRATIONS
from aimeta.pipelines import all as all_pipeline
from aimeta.settings import Settings
from factory import png_with_text

INFOTEXT = (
    "a lighthouse at dusk, (masterpiece:1.2)\nNegative prompt: blurry\n"
    "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 42, Size: 512x512, Model: base"
)


def make_images(folder: Path) -> None:
    (folder / "sub").mkdir(parents=True)
    png_with_text(folder / "a.png", {"parameters": INFOTEXT})
    png_with_text(folder / "sub" / "b.png", {"parameters": INFOTEXT.replace("42", "43")})


def run_all(folder: Path, out: Path) -> all_pipeline.AllResult:
    return all_pipeline.run([folder], Settings(out_dir=out, db=out / "images.db"))


def rate(database: Path, image: Path, stars: int) -> None:
    conn = db.connect(database)
    with db.transaction(conn):
        conn.execute(
            "INSERT INTO ratings (path, model, overall, scores_json, keywords_json, rated_at)"
            " VALUES (?, 'test-model', ?, '{}', '[]', '2026-12-02T00:00:00Z')",
            (str(image), stars),
        )
    conn.close()


def rows(database: Path, sql: str, *args: object) -> list[tuple[object, ...]]:
    conn = db.open_readonly(database)
    try:
        return [tuple(row) for row in conn.execute(sql, args)]
    finally:
        conn.close()


def test_a_renamed_folder_is_relinked_by_content_keeping_ids_rows_and_ratings(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    make_images(tmp_path / "Input")
    run_all(tmp_path / "Input", out)
    database = out / "images.db"
    rate(database, tmp_path / "Input" / "sub" / "b.png", 4)
    before = rows(database, "SELECT id, key, sha256 FROM images ORDER BY sha256")
    kv_before = rows(database, "SELECT image_id, key, value FROM kv ORDER BY 1, 2")
    # The scanned folder itself is renamed: every key changes, the content does not.
    (tmp_path / "Input").rename(tmp_path / "Renamed")

    result = run_all(tmp_path / "Renamed", out)

    assert (result.dump.read, result.ingest.stored, result.relinked.images) == (0, 0, 2)
    after = rows(database, "SELECT id, key, sha256, missing_since FROM images ORDER BY sha256")
    assert [(i, s) for i, _k, s, _m in after] == [(i, s) for i, _k, s in before]
    assert sorted(k for _i, k, _s, _m in after) == ["Renamed/a.png", "Renamed/sub/b.png"]
    assert all(missing is None for *_rest, missing in after)
    assert rows(database, "SELECT image_id, key, value FROM kv ORDER BY 1, 2") == kv_before
    b_path = str(tmp_path / "Renamed" / "sub" / "b.png")
    (b_id,) = rows(database, "SELECT id FROM images WHERE path = ?", b_path)[0]
    assert rows(database, "SELECT path, image_id FROM ratings") == [(b_path, b_id)]
    assert rows(database, "SELECT best_rating FROM v_images_search WHERE id = ?", b_id) == [(4,)]

    # A later read of that file under its new key replaces its rows in place, under its id.
    png_with_text(tmp_path / "Renamed" / "sub" / "b.png", {"parameters": INFOTEXT + " edited"})
    again = run_all(tmp_path / "Renamed", out)
    assert (again.dump.read, again.ingest.stored) == (1, 1)
    assert rows(database, "SELECT COUNT(*) FROM images") == [(2,)]
    assert rows(database, "SELECT id FROM images WHERE path = ?", b_path) == [(b_id,)]
    assert rows(database, "SELECT image_id FROM ratings") == [(b_id,)]


def test_a_new_file_where_a_renamed_folder_was_is_a_new_image(tmp_path: Path) -> None:
    out = tmp_path / "out"
    make_images(tmp_path / "Input")
    run_all(tmp_path / "Input", out)
    (tmp_path / "Input").rename(tmp_path / "Renamed")
    run_all(tmp_path / "Renamed", out)
    database = out / "images.db"
    # A new Input/a.png: its key is the one the re-linked image had, and so is its hashed id.
    (tmp_path / "Input").mkdir()
    png_with_text(tmp_path / "Input" / "a.png", {"parameters": INFOTEXT.replace("dusk", "dawn")})

    result = run_all(tmp_path / "Input", out)

    assert result.ingest.stored == 1
    stored = rows(database, "SELECT key, COUNT(DISTINCT id) FROM images GROUP BY key ORDER BY 1")
    assert stored == [("Input/a.png", 1), ("Renamed/a.png", 1), ("Renamed/sub/b.png", 1)]
    assert rows(database, "SELECT COUNT(DISTINCT id) FROM images") == [(3,)]
    prompts = rows(
        database,
        "SELECT i.key, kv.value FROM images i JOIN kv ON kv.image_id = i.id"
        " WHERE kv.key = 'prompt' AND i.key LIKE '%a.png' ORDER BY 1",
    )
    first_line = INFOTEXT.split("\n")[0]
    assert prompts == [
        ("Input/a.png", first_line.replace("dusk", "dawn")),
        ("Renamed/a.png", first_line),
    ]


def test_a_deleted_file_is_marked_missing_then_pruned_on_request(tmp_path: Path) -> None:
    out = tmp_path / "out"
    make_images(tmp_path / "Input")
    run_all(tmp_path / "Input", out)
    database = out / "images.db"
    gone = tmp_path / "Input" / "sub" / "b.png"
    rate(database, gone, 2)
    kept = gone.read_bytes()
    gone.unlink()

    assert run_all(tmp_path / "Input", out).missing.marked == 1
    marked = rows(database, "SELECT path FROM images WHERE missing_since IS NOT NULL")
    assert marked == [(str(gone),)]
    assert rows(database, "SELECT COUNT(*) FROM ratings WHERE image_id IS NOT NULL") == [(1,)]

    gone.write_bytes(kept)  # back again (restored from a backup): the mark goes
    assert run_all(tmp_path / "Input", out).missing.back == 1
    assert rows(database, "SELECT COUNT(*) FROM images WHERE missing_since IS NOT NULL") == [(0,)]

    gone.unlink()
    run_all(tmp_path / "Input", out)
    runner = CliRunner()
    listed = runner.invoke(app, ["prune", "--db", str(database), "--dry-run"])
    assert listed.exit_code == 0, listed.output
    assert listed.stdout.split() == [str(gone)]
    assert rows(database, "SELECT COUNT(*) FROM images") == [(2,)]
    pruned = runner.invoke(app, ["prune", "--db", str(database)])
    assert pruned.exit_code == 0, pruned.output
    assert rows(database, "SELECT path FROM images") == [(str(tmp_path / "Input" / "a.png"),)]
    assert rows(database, "SELECT COUNT(*) FROM ratings") == [(0,)]
    assert rows(database, "SELECT COUNT(*) FROM kv WHERE image_id NOT IN (SELECT id FROM images)")


def test_migration_3_ties_stored_ratings_to_their_images(tmp_path: Path) -> None:
    path = tmp_path / "images.db"
    conn = db.connect(path, migration_list=MIGRATIONS[:1])
    old_databases.fill(conn)
    stored = conn.execute("SELECT id, path FROM images ORDER BY path LIMIT 2").fetchall()
    with db.transaction(conn):
        for (_ident, image_path), stars in zip(stored, (3, 5), strict=True):
            conn.execute(
                "INSERT INTO ratings (path, model, overall, scores_json, keywords_json,"
                " rated_at) VALUES (?, 'm', ?, '{}', '[]', 'now')",
                (image_path, stars),
            )
        conn.execute(
            "INSERT INTO ratings (path, model, overall, scores_json, keywords_json, rated_at)"
            " VALUES ('/not/ingested.png', 'm', 1, '{}', '[]', 'now')"
        )
    conn.close()

    db.connect(path).close()

    check = sqlite3.connect(path)
    tied = check.execute("SELECT path, image_id FROM ratings ORDER BY path").fetchall()
    best = check.execute(
        "SELECT id, best_rating FROM v_images_search WHERE id IN (?, ?) ORDER BY path",
        [ident for ident, _path in stored],
    ).fetchall()
    missing = check.execute("SELECT COUNT(*) FROM images WHERE missing_since IS NULL").fetchone()
    total = check.execute("SELECT COUNT(*) FROM images").fetchone()
    check.close()
    by_path = dict(tied)
    assert by_path["/not/ingested.png"] is None
    assert [by_path[image_path] for _ident, image_path in stored] == [i for i, _p in stored]
    # Every rating of a stored image (fill() stores one of its own too) is tied to it.
    images = dict(sqlite3.connect(path).execute("SELECT path, id FROM images").fetchall())
    assert {p: i for p, i in tied if p in images} == {p: images[p] for p in by_path if p in images}
    assert best == [(stored[0][0], 3), (stored[1][0], 5)]
    assert missing == total


def test_a_rating_made_before_its_image_is_stored_is_tied_to_it_by_ingest(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (tmp_path / "Input").mkdir()
    database = out / "images.db"
    image = png_with_text(tmp_path / "Input" / "a.png", {"parameters": INFOTEXT})
    rate(database, image, 5)  # `aimeta rate` ran before `aimeta all`
    assert rows(database, "SELECT image_id FROM ratings") == [(None,)]

    run_all(tmp_path / "Input", out)

    assert rows(database, "SELECT image_id FROM ratings") == rows(database, "SELECT id FROM images")
