"""Migration 6 (compact_prompts_and_raw): the full-text index reads the prompts from kv (no
copy of its own) and stays equal to them through every way kv changes; the raw metadata is
kept compressed where that pays and every reader still gets the text back."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import orjson
import pytest

import old_databases
from aimeta import db
from aimeta.migrations import MIGRATIONS
from aimeta.pipelines import ingest, insight_sql, library, relink, stats, wildcards
from aimeta.pipelines.search import SearchQuery, search

WORDS = ("fox", "owl", "forest", "tokyo", "blurry", "watermark", "masterpiece", "neon", "lowres")


def text_hits(conn: sqlite3.Connection) -> dict[str, list[str]]:
    """What `aimeta search --text WORD` finds for each of WORDS (paths)."""
    return {
        word: [hit.path for hit in search(conn, SearchQuery(text=word, limit=0))] for word in WORDS
    }


def check_index(conn: sqlite3.Connection) -> None:
    """FTS5's own check: for an external-content index it compares the index with what the
    content (the v_prompts view over kv) holds, and raises if they differ."""
    conn.execute("INSERT INTO prompts_fts (prompts_fts, rank) VALUES ('integrity-check', 1)")


def image_ids(conn: sqlite3.Connection) -> dict[str, int]:
    return dict(conn.execute("SELECT file_name, id FROM images"))


@pytest.fixture
def upgraded(tmp_path: Path) -> sqlite3.Connection:
    path = tmp_path / "images.db"
    conn = db.connect(path, migration_list=MIGRATIONS[:5])
    old_databases.fill(conn)
    conn.close()
    return db.connect(path)


def test_the_upgrade_drops_the_copy_and_finds_the_same_images(tmp_path: Path) -> None:
    path = tmp_path / "images.db"
    conn = db.connect(path, migration_list=MIGRATIONS[:5])
    old_databases.fill(conn)
    before = text_hits(conn)
    raw_before = dict(conn.execute("SELECT id, raw_json FROM images"))
    assert conn.execute("SELECT COUNT(*) FROM prompts_fts_content").fetchone()[0] == 3
    conn.close()
    assert sum(map(len, before.values())) > 6

    conn = db.connect(path)

    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert "prompts_fts_content" not in tables
    assert text_hits(conn) == before
    check_index(conn)
    stored = conn.execute("SELECT id, raw_json, raw_zlib FROM images").fetchall()
    # The two long infotexts shrink by more than a fifth; the short one stays plain text.
    compressed = {ident for ident, text, blob in stored if blob is not None and text is None}
    names = image_ids(conn)
    assert compressed == {names["fox.png"], names["owl.png"]}
    assert {ident: db.raw_text(text, blob) for ident, text, blob in stored} == raw_before
    conn.close()


def test_deleting_and_updating_kv_keeps_the_index_equal_to_kv(
    upgraded: sqlite3.Connection,
) -> None:
    conn = upgraded
    ids = image_ids(conn)
    with db.transaction(conn):
        conn.execute(
            "UPDATE kv SET value = 'a grey wolf howling' WHERE key = 'prompt' AND image_id = ?",
            (ids["fox.png"],),
        )
    check_index(conn)
    assert text_hits(conn)["fox"] == []
    assert [hit.path for hit in search(conn, SearchQuery(text="wolf"))] == [
        "/photos/Input/forest/fox.png"
    ]
    with db.transaction(conn):  # the prompt goes, the negative prompt stays searchable
        conn.execute("DELETE FROM kv WHERE key = 'prompt' AND image_id = ?", (ids["owl.png"],))
    check_index(conn)
    assert "/photos/Input/forest/owl.png" not in text_hits(conn)["owl"]
    negative = conn.execute(
        "SELECT rowid FROM prompts_fts WHERE prompts_fts MATCH 'negative_prompt : watermark'"
    ).fetchall()
    assert negative == [(ids["owl.png"],)]
    with db.transaction(conn):  # a negative prompt added to an image that had none
        conn.execute(
            "INSERT INTO kv (image_id, key, value) VALUES (?, 'negative_prompt', 'puddles')",
            (ids["street.jpg"],),
        )
    check_index(conn)
    negative = conn.execute(
        "SELECT rowid FROM prompts_fts WHERE prompts_fts MATCH 'negative_prompt : puddles'"
    ).fetchall()
    assert negative == [(ids["street.jpg"],)]
    assert "/photos/Input/city/street.jpg" in text_hits(conn)["tokyo"]
    with db.transaction(conn):  # the cascade from images deletes both prompt rows
        conn.execute("DELETE FROM images WHERE id = ?", (ids["street.jpg"],))
    check_index(conn)
    assert text_hits(conn)["tokyo"] == []


def test_storing_an_image_again_and_pruning_keep_the_index_equal_to_kv(
    upgraded: sqlite3.Connection,
) -> None:
    conn = upgraded
    ids = image_ids(conn)
    with db.transaction(conn):
        old_databases.fill_images(
            conn, {"Input/forest/fox.png": "a badger at dawn\nSteps: 20, Sampler: Euler a, Seed: 1"}
        )
    check_index(conn)
    assert text_hits(conn)["fox"] == []
    assert len(search(conn, SearchQuery(text="badger"))) == 1
    with db.transaction(conn):
        conn.execute("UPDATE images SET missing_since = 'now' WHERE id = ?", (ids["owl.png"],))
    assert relink.prune(conn) == ["/photos/Input/forest/owl.png"]
    check_index(conn)
    assert text_hits(conn)["owl"] == []


def test_every_reader_gets_the_raw_text_back(upgraded: sqlite3.Connection) -> None:
    conn = upgraded
    ident = image_ids(conn)["fox.png"]
    text, blob = conn.execute(
        "SELECT raw_json, raw_zlib FROM images WHERE id = ?", (ident,)
    ).fetchone()
    assert text is None and blob is not None
    infotext = old_databases.INFOTEXTS["Input/forest/fox.png"]
    detail = library.detail(conn, ident, raw=True)
    assert detail is not None and detail["raw"] == {"parameters": infotext}
    before = conn.execute("SELECT key, value FROM kv ORDER BY 1, 2").fetchall()
    with db.transaction(conn):
        conn.execute("DELETE FROM kv")
    result = ingest.reparse(conn)
    assert result.failed == 0
    assert result.stored == 3
    assert conn.execute("SELECT key, value FROM kv ORDER BY 1, 2").fetchall() == before
    check_index(conn)


@pytest.mark.parametrize(
    ("text", "compressed"),
    [
        ("{}", False),  # too short to gain anything
        (orjson.dumps({"parameters": "a" * 10 + "b c d e f g h i j k l"}).decode(), False),
        (orjson.dumps({"parameters": "masterpiece, best quality, " * 40}).decode(), True),
    ],
)
def test_raw_text_is_compressed_only_where_it_pays(text: str, compressed: bool) -> None:
    raw_json, raw_zlib = db.pack_raw(text)
    assert (raw_zlib is not None) == compressed
    assert (raw_json is None) == compressed
    if raw_zlib is not None:
        assert len(raw_zlib) <= 0.8 * len(text.encode())
    assert db.raw_text(raw_json, raw_zlib) == text


def test_every_query_of_kv_by_key_reads_the_index_without_the_prompts(
    upgraded: sqlite3.Connection,
) -> None:
    conn = upgraded
    definition = conn.execute(
        "SELECT sql FROM sqlite_master WHERE name = 'idx_kv_key_value'"
    ).fetchone()[0]
    assert definition.endswith(f"WHERE {db.PARAMETER_ROWS}")
    seen: list[str] = []
    conn.set_trace_callback(seen.append)
    stats.stats(conn)
    search(conn, SearchQuery(seed="3141592653", sampler="euler a"))
    wildcards.kv_lines(conn, "sampler_norm", wildcards.LineFilter())
    conn.set_trace_callback(None)
    by_key: list[tuple[str, dict[str, str]]] = [
        (sql, {}) for sql in seen if "FROM kv WHERE key" in sql
    ]
    assert len(by_key) >= 4
    # The library's value=DIMENSION:VALUE filters (the Insights view's bars) read kv by key.
    for dimension in ("checkpoint", "sampler", "scheduler", "cfg", "steps"):
        by_key.append(insight_sql.value_ids_sql(dimension, "x", "v"))
    for sql, params in by_key:
        plan = " ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))
        assert "idx_kv_key_value" in plan, (sql, plan)
        assert "SCAN kv" not in plan, (sql, plan)
    # The prompts are not in the index, and still listed whole.
    prompts = wildcards.kv_lines(conn, "prompt", wildcards.LineFilter())
    assert len(prompts) == 3
