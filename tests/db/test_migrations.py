"""Every step of the migration list upgrades to the last with rows kept; the mechanism (one
transaction, backups before rewrites, refusal of newer databases) on a synthetic list."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import old_databases
from aimeta import db
from aimeta.errors import DatabaseError, DatabaseTooNew
from aimeta.migrations import MIGRATIONS, Migration, table_api
from aimeta.pipelines import relink

LATEST = MIGRATIONS[-1].number


def recorded(path: Path) -> list[tuple[int, str]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT number, name FROM aimeta_migrations ORDER BY 1").fetchall()
    finally:
        conn.close()


def database_at(path: Path, steps: tuple[Migration, ...]) -> dict[str, list[str]]:
    """A database made by code whose list ends with ``steps[-1]``, with rows; its tables but
    the record of migrations (which upgrades extend)."""
    conn = db.connect(path, migration_list=steps)
    old_databases.fill(conn)
    conn.close()
    tables = old_databases.columns(path)
    del tables["aimeta_migrations"]
    return tables


@pytest.mark.parametrize("step", range(1, len(MIGRATIONS) + 1))
def test_a_database_at_each_step_opens_at_the_last_with_rows_kept(
    tmp_path: Path, step: int
) -> None:
    path = tmp_path / "images.db"
    tables = database_at(path, MIGRATIONS[:step])
    before = old_databases.contents(path, tables)

    db.connect(path).close()

    assert recorded(path) == [(m.number, m.name) for m in MIGRATIONS]
    assert old_databases.contents(path, tables) == before


# A synthetic continuation of the real list: one step that adds a column, one that rewrites
# the images table (which kv, tokens and resources reference with ON DELETE CASCADE).
def add_note_to_ratings(conn: sqlite3.Connection) -> None:
    table_api(conn)["ratings"].add_column("note", str)  # type: ignore[union-attr]


def rebuild_images_with_a_default_generator(conn: sqlite3.Connection) -> None:
    table_api(conn)["images"].transform(defaults={"generator": "none"})  # type: ignore[union-attr]


def fail_half_way(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE half_done (x)")
    conn.execute("INSERT INTO no_such_table VALUES (1)")


ADD_NOTE = Migration(LATEST + 1, "add_note_to_ratings", add_note_to_ratings)
REBUILD = Migration(
    LATEST + 2,
    "rebuild_images_with_a_default_generator",
    rebuild_images_with_a_default_generator,
    rewrites_table=True,
)
FAILING = Migration(LATEST + 2, "fail_half_way", fail_half_way)


def test_one_step_behind_is_upgraded_after_a_backup_for_a_rewrite(tmp_path: Path) -> None:
    path = tmp_path / "images.db"
    tables = database_at(path, (*MIGRATIONS, ADD_NOTE))
    before = old_databases.contents(path, tables)
    assert not list(tmp_path.glob("*.bak-*"))  # adding a column needed no backup

    conn = db.connect(path, migration_list=(*MIGRATIONS, ADD_NOTE, REBUILD))
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    conn.close()

    assert recorded(path)[-2:] == [(ADD_NOTE.number, ADD_NOTE.name), (REBUILD.number, REBUILD.name)]
    assert old_databases.contents(path, tables) == before  # kv, tokens ... kept their images
    backup = tmp_path / f"images.db.bak-schema{ADD_NOTE.number}"
    assert old_databases.contents(backup, tables) == before
    assert recorded(backup)[-1] == (ADD_NOTE.number, ADD_NOTE.name)


def test_a_failing_migration_leaves_the_database_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "images.db"
    tables = database_at(path, MIGRATIONS)
    before = old_databases.contents(path, tables), old_databases.schema_of(path)

    with pytest.raises(DatabaseError, match="no_such_table"):
        db.connect(path, migration_list=(*MIGRATIONS, ADD_NOTE, FAILING))

    assert (old_databases.contents(path, tables), old_databases.schema_of(path)) == before
    db.connect(path).close()  # and the code it belongs to still opens it


def test_a_newer_database_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "images.db"
    database_at(path, (*MIGRATIONS, ADD_NOTE))
    content = path.read_bytes()

    newer = rf"schema {ADD_NOTE.number} \(made by aimeta .*\) .*\(schema {LATEST}\)"
    with pytest.raises(DatabaseTooNew, match=newer):
        db.connect(path)

    assert path.read_bytes() == content


def test_a_step_of_the_same_number_but_another_name_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "images.db"
    database_at(path, (*MIGRATIONS, ADD_NOTE))
    renamed = Migration(ADD_NOTE.number, "add_comment_to_ratings", add_note_to_ratings)
    # Only the record tells (an open trusts user_version, the number): `aimeta db version`.
    info = db.schema_info(path, migration_list=(*MIGRATIONS, renamed))
    assert info.newer and "'add_note_to_ratings'" in info.newer
    assert info.pending == []


def test_the_size_lookup_of_new_files_reads_an_index_after_migration_7(tmp_path: Path) -> None:
    """Each `aimeta all` asks which new files have the size of a stored image (a moved file's
    first test); from migration 7 on that is an index look-up, not a read of every image."""
    path = tmp_path / "images.db"
    database_at(path, MIGRATIONS[:6])
    conn = db.connect(path)
    seen: list[str] = []
    conn.set_trace_callback(seen.append)
    sizes = relink._stored(conn, "size", "size", [1, 2, 3])
    conn.set_trace_callback(None)
    assert isinstance(sizes, list)
    (query,) = [sql for sql in seen if "FROM images WHERE size IN" in sql]
    plan = " ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {query}"))
    assert "idx_images_size" in plan, plan
    assert "SCAN images" not in plan, plan
    conn.close()


def _store_new(conn: sqlite3.Connection, keys: list[str]) -> dict[str, int]:
    with db.transaction(conn):
        old_databases.fill_images(conn, {key: f"a {key}, b\nSteps: 20" for key in keys})
    marks = ",".join("?" * len(keys))
    return dict(conn.execute(f"SELECT key, id FROM images WHERE key IN ({marks})", keys))


def test_after_migration_8_new_images_count_up_from_the_largest_id_never_reusing_one(
    tmp_path: Path,
) -> None:
    """Before migration 8 an image's id was the 63-bit hash of its key; a database from then
    keeps those ids, and its new images count up from the largest (rows at the end of every
    index instead of scattered over them). A pruned image's id is not given again."""
    path = tmp_path / "images.db"
    database_at(path, MIGRATIONS[:7])
    conn = sqlite3.connect(path)
    hashed = db.image_id("Input/from-0.1.0.png")  # as a 0.1.0 writer numbered it
    conn.execute(
        "INSERT INTO images (id, key, path, file_name, generator) VALUES (?,"
        " 'Input/from-0.1.0.png', '/photos/Input/from-0.1.0.png', 'from-0.1.0.png', 'none')",
        (hashed,),
    )
    conn.commit()
    conn.close()
    conn = db.connect(path)  # every row kept: the parametrised test above, from step 7
    largest = conn.execute("SELECT MAX(id) FROM images").fetchone()[0]
    assert largest >= hashed
    assert conn.execute("SELECT last FROM image_id_seq").fetchall() == [(largest,)]
    added = _store_new(conn, ["Input/new-1.png", "Input/new-2.png"])
    assert sorted(added.values()) == [largest + 1, largest + 2]
    # Stored again: same id. Pruned, then a new image: the next number, not the pruned one.
    assert _store_new(conn, ["Input/new-2.png"]) == {"Input/new-2.png": largest + 2}
    conn.execute("UPDATE images SET missing_since = '2026-01-01' WHERE id = ?", (largest + 2,))
    assert relink.prune(conn) == ["/photos/Input/new-2.png"]
    assert _store_new(conn, ["Input/new-3.png"]) == {"Input/new-3.png": largest + 3}
    conn.close()


def test_a_fresh_database_numbers_its_images_from_one_and_never_overflows(tmp_path: Path) -> None:
    conn = db.connect(tmp_path / "images.db")
    assert sorted(_store_new(conn, ["In/a.png", "In/b.png", "In/c.png"]).values()) == [1, 2, 3]
    # An id at SQLite's largest integer (written by hand or by another tool): new images get
    # free hashed ids instead of overflowing.
    conn.execute(
        "INSERT INTO images (id, key, path, file_name, generator) VALUES (?, 'In/top.png',"
        " '/in/top.png', 'top.png', 'none')",
        (2**63 - 1,),
    )
    ids = _store_new(conn, ["In/d.png", "In/e.png"])
    assert len(set(ids.values())) == 2
    assert all(3 < ident < 2**63 - 1 for ident in ids.values())
    conn.close()
