"""Batched writes: one statement per table per batch, indexes rebuilt after a bulk load, and the
same database whether worker processes parse or not."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import db_tables
from aimeta import db
from aimeta.metadata.record import Record
from aimeta.metadata.tokens import tokenize
from aimeta.pipelines import all as all_pipeline
from aimeta.pipelines import ingest
from aimeta.pipelines.prepare import Prepared
from aimeta.settings import Settings
from factory import png_with_text

# The full-text index answers the same search whether workers parsed or not.
FTS = {
    "fts": "SELECT rowid FROM prompts_fts WHERE prompts_fts MATCH 'fox' ORDER BY 1",
    "raw": "SELECT key, raw_json, raw_zlib FROM images ORDER BY key",
}


def indexes(conn: sqlite3.Connection) -> set[str]:
    return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}


def rows_for(key: str, prompt: str) -> db.ImageRows:
    image = {"key": key, "path": f"/in/{key}", "file_name": key, "raw": {"parameters": prompt}}
    record = Record(generator="a1111", prompt=prompt, params={"steps": "20"})
    return db.image_rows(image, record, [("pos", t) for t in tokenize(prompt)])


def test_an_image_twice_in_one_batch_keeps_the_later_rows(tmp_path: Path) -> None:
    conn = db.connect(tmp_path / "a.db")
    with db.transaction(conn):
        db.store_batch(conn, [rows_for("x.png", "red, blue"), rows_for("x.png", "green")])
    assert conn.execute("SELECT t_norm FROM tokens").fetchall() == [("green",)]
    assert conn.execute("SELECT value FROM kv WHERE key = 'prompt'").fetchall() == [("green",)]
    hits = conn.execute("SELECT rowid FROM prompts_fts WHERE prompts_fts MATCH 'green'")
    assert hits.fetchall() == conn.execute("SELECT id FROM images").fetchall()
    assert conn.execute("SELECT COUNT(*) FROM images").fetchone()[0] == 1


def test_a_batch_replaces_the_rows_of_images_stored_before(tmp_path: Path) -> None:
    conn = db.connect(tmp_path / "a.db")
    with db.transaction(conn):
        db.store_batch(conn, [rows_for("x.png", "red, blue"), rows_for("y.png", "sky")])
    with db.transaction(conn):
        db.store_batch(conn, [rows_for("x.png", "green")])
    tokens = conn.execute("SELECT t_norm FROM tokens ORDER BY t_norm").fetchall()
    assert tokens == [("green",), ("sky",)]
    assert (
        conn.execute("SELECT COUNT(*) FROM prompts_fts WHERE prompts_fts MATCH 'red'").fetchone()[0]
        == 0
    )


def test_errors_in_one_batch_end_as_the_last_outcome_of_each_file(tmp_path: Path) -> None:
    conn = db.connect(tmp_path / "a.db")
    clean = Prepared("/in/x.png", rows_for("x.png", "cat"), [], "a1111")
    broken = Prepared("/in/x.png", None, [("read", "truncated")])
    result = ingest.IngestResult()
    with db.transaction(conn):
        ingest.apply(conn, [broken, clean], result)
    assert conn.execute("SELECT COUNT(*) FROM errors").fetchone()[0] == 0
    with db.transaction(conn):
        ingest.apply(conn, [clean, broken], result)
    assert conn.execute("SELECT path, stage, reason FROM errors").fetchall() == [
        ("/in/x.png", "read", "truncated")
    ]


def test_deferred_indexes_come_back_after_the_load(tmp_path: Path) -> None:
    conn = db.connect(tmp_path / "a.db")
    before = indexes(conn)
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    with db.deferred_indexes(conn):
        assert not set(db.DEFERRABLE_INDEXES) & indexes(conn)
        with db.transaction(conn):
            db.store_batch(conn, [rows_for(f"{n}.png", f"tag{n % 7}, sky") for n in range(50)])
    assert indexes(conn) == before
    assert conn.execute("PRAGMA user_version").fetchone()[0] == version
    plan = conn.execute(
        "EXPLAIN QUERY PLAN SELECT image_id FROM tokens WHERE t_norm = 'sky'"
    ).fetchall()
    assert "idx_tokens_norm" in str(plan)


def test_a_load_killed_before_the_rebuild_is_repaired_by_the_next_connect(tmp_path: Path) -> None:
    conn = db.connect(tmp_path / "a.db")
    before = indexes(conn)
    loading = db.deferred_indexes(conn)
    loading.__enter__()  # and never left: the process "dies" here
    conn.close()
    assert not set(db.DEFERRABLE_INDEXES) & indexes(sqlite3.connect(tmp_path / "a.db"))
    assert indexes(db.connect(tmp_path / "a.db")) == before


def test_worker_processes_build_the_same_database(tmp_path: Path) -> None:
    folder = tmp_path / "Input"
    folder.mkdir()
    for n in range(300):  # enough for several worker tasks and for a bulk load
        infotext = (
            f"(masterpiece:1.2), fox {n}, <lora:detail:0.{n % 9}>\n"
            f"Negative prompt: blurry, lowres\nSteps: {n % 40 + 1}, Sampler: Euler a,"
            f" CFG scale: 7, Seed: {n}, Size: 8x8, Model: base{n % 3}"
        )
        png_with_text(folder / f"fox{n:03d}.png", {"parameters": infotext})
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    ingest_bulk = ingest.BULK_MIN_LINES
    ingest.BULK_MIN_LINES = 100
    try:
        tables = {}
        for jobs in (1, 2):
            out = tmp_path / f"jobs{jobs}"
            all_pipeline.run([folder], Settings(out_dir=out, db=out / "images.db", jobs=jobs))
            conn = db.connect(out / "images.db")
            tables[jobs] = db_tables.tables(conn, FTS)
            assert indexes(conn) >= set(db.DEFERRABLE_INDEXES)
            assert (out / "records.csv").read_bytes().count(b"\n") == 302
    finally:
        ingest.BULK_MIN_LINES = ingest_bulk
    assert len(tables[1]["images"]) == 301  # ExifTool recovers the broken file's name
    assert tables[1]["errors"] == [(str(folder / "broken.png"), "read")]
    assert len(tables[1]["tokens"]) == 300 * 4  # 2 positive (the LoRA tag is none), 2 negative
    assert tables[1] == tables[2]


def test_a_load_is_bulk_from_a_thousand_files_and_a_tenth_of_the_stored(tmp_path: Path) -> None:
    conn = db.connect(tmp_path / "images.db")
    assert not ingest.is_bulk(conn, ingest.BULK_MIN_LINES - 1)
    assert ingest.is_bulk(conn, ingest.BULK_MIN_LINES)
    conn.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)"
        " INSERT INTO images (id, key, path, file_name, generator)"
        " SELECT i, 'k' || i, 'p' || i, 'f', 'none' FROM n"
    )
    assert not ingest.is_bulk(conn, 1999)
    assert ingest.is_bulk(conn, 2000)
    conn.close()
