"""Migration 5 (compact_tokens): a 0.1.0 tokens table becomes token_rows + token_texts behind
a `tokens` view with the old columns and the same rows; writes through store_batch and plain
SQL on the view; the documented SQL reads the view through indexes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import old_databases
from aimeta import db

TOKEN_COLUMNS = ["image_id", "side", "position", "t_raw", "t_norm", "weight"]


def old_tokens(path: Path) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    try:
        return sorted(conn.execute("SELECT * FROM tokens").fetchall(), key=repr)
    finally:
        conn.close()


def test_a_0_1_0_tokens_table_becomes_the_view_with_every_row_and_each_text_once(
    tmp_path: Path,
) -> None:
    path = tmp_path / "images.db"
    old_databases.build_v0_1_0(path)
    before = old_tokens(path)
    assert len(before) > 10
    assert any(raw != norm for _, _, _, raw, norm, _ in before)  # "(masterpiece:1.2)"

    conn = db.connect(path)

    kind = conn.execute("SELECT type FROM sqlite_master WHERE name = 'tokens'").fetchone()
    assert kind == ("view",)
    assert [row[1] for row in conn.execute("PRAGMA table_info(tokens)")] == TOKEN_COLUMNS
    assert sorted(conn.execute("SELECT * FROM tokens").fetchall(), key=repr) == before
    texts = {text for row in before for text in (row[3], row[4])}
    stored = [row[0] for row in conn.execute("SELECT text FROM token_texts")]
    assert sorted(stored) == sorted(texts)
    assert conn.execute("SELECT COUNT(*) FROM token_rows").fetchone()[0] == len(before)
    conn.close()
    assert old_tokens(tmp_path / "images.db.bak-schema1") == before


def rows_for(key: str, *tokens: str) -> db.ImageRows:
    """An image's rows with positive tokens written in capitals (t_raw) and as given (t_norm)."""
    image = {"key": key, "path": f"/p/{key}", "file_name": key, "generator": "a1111"}
    rows = db.image_rows(image, None)
    rows.tokens = [
        (rows.ident, "pos", n, token.upper(), token, 1.0) for n, token in enumerate(tokens)
    ]
    return rows


def test_store_batch_interns_texts_and_replaces_an_images_rows(tmp_path: Path) -> None:
    conn = db.connect(tmp_path / "a.db")
    with db.transaction(conn):
        db.store_batch(conn, [rows_for("a.png", "sky", "sea"), rows_for("b.png", "sky")])
    with db.transaction(conn):
        db.store_batch(conn, [rows_for("a.png", "sea", "sun")])

    rows = conn.execute(
        "SELECT i.key, position, t_raw, t_norm FROM tokens JOIN images i ON i.id = image_id"
        " ORDER BY 1, 2"
    ).fetchall()
    assert rows == [
        ("a.png", 0, "SEA", "sea"),
        ("a.png", 1, "SUN", "sun"),
        ("b.png", 0, "SKY", "sky"),
    ]
    texts = [row[0] for row in conn.execute("SELECT text FROM token_texts ORDER BY text")]
    assert texts == ["SEA", "SKY", "SUN", "sea", "sky", "sun"]  # once each, "sky" kept unused
    conn.close()


def test_plain_sql_writes_the_view(tmp_path: Path) -> None:
    conn = db.connect(tmp_path / "a.db")
    with db.transaction(conn):
        db.store_batch(conn, [rows_for("a.png", "sky")])
    (ident,) = conn.execute("SELECT id FROM images WHERE key = 'a.png'").fetchone()
    conn.execute(
        "INSERT INTO tokens (image_id, side, position, t_raw, t_norm) VALUES (?, 'neg', 0,"
        " '(Blurry:1.3)', 'blurry')",
        (ident,),
    )
    assert conn.execute(
        "SELECT side, t_raw, t_norm, weight FROM tokens ORDER BY side"
    ).fetchall() == [
        ("neg", "(Blurry:1.3)", "blurry", 1.0),
        ("pos", "SKY", "sky", 1.0),
    ]
    conn.execute("DELETE FROM tokens WHERE side = 'pos'")
    assert conn.execute("SELECT side, t_norm FROM tokens").fetchall() == [("neg", "blurry")]
    conn.close()


def test_the_documented_not_exists_query_reads_indexes(tmp_path: Path) -> None:
    conn = db.connect(tmp_path / "a.db")
    sql = (
        "SELECT COUNT(DISTINCT p.image_id) FROM tokens p WHERE p.side='pos' AND p.t_norm='sky'"
        " AND NOT EXISTS (SELECT 1 FROM tokens n WHERE n.image_id=p.image_id AND n.side='neg'"
        " AND n.t_norm='blurry')"
    )
    plan = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}")]
    assert not [step for step in plan if step.startswith("SCAN")], plan
    assert sum("idx_tokens_norm" in step for step in plan) == 2, plan
    conn.close()


def test_the_documented_top_tokens_query_groups_in_text_order(tmp_path: Path) -> None:
    """Migration 5's planner statistics: the texts are walked in order, each one's rows
    counted through idx_tokens_norm, rather than every row's text sorted."""
    sql = "SELECT t_norm FROM tokens WHERE side='pos' GROUP BY t_norm ORDER BY COUNT(*) DESC"
    conn = db.connect(tmp_path / "a.db")
    statistics = "SELECT tbl, idx, stat FROM sqlite_stat1 ORDER BY 1, 2"
    recorded = conn.execute(statistics).fetchall()
    assert ("token_rows", "idx_tokens_norm", "1000000 1000 500 1") in recorded
    # Also after a bulk load, whose DROP INDEX takes that index's statistics row along: the
    # rebuild writes it back.
    for bulk_loads in (0, 1):
        with db.deferred_indexes(conn, enabled=bool(bulk_loads)):
            pass
        assert conn.execute(statistics).fetchall() == recorded
        conn.close()
        conn = db.connect(tmp_path / "a.db")
        plan = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}")]
        assert not [step for step in plan if "GROUP BY" in step], plan
        assert any(
            step.startswith("SEARCH r USING COVERING INDEX idx_tokens_norm") for step in plan
        )
    conn.close()
