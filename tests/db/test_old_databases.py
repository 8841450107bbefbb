"""Databases made by aimeta 0.1.0 (before migrations were recorded) open with every row kept."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

import old_databases
from aimeta import db, migrations
from aimeta.migrations import MIGRATIONS

ROOT = Path(__file__).resolve().parents[2]


def indexes(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    finally:
        conn.close()


def test_the_baseline_keeps_the_statements_of_0_1_0() -> None:
    baseline = (ROOT / "schema.sql").read_text(encoding="utf-8")
    released = old_databases.V0_1_0_SCHEMA.read_text(encoding="utf-8")
    assert list(migrations.statements(baseline)) == list(migrations.statements(released))
    assert old_databases.v0_1_0_fingerprint() == migrations.V0_1_0_FINGERPRINT


def test_a_0_1_0_database_opens_with_every_row_kept(tmp_path: Path) -> None:
    path = tmp_path / "images.db"
    old_databases.build_v0_1_0(path)
    tables = old_databases.columns(path)
    assert set(tables) == old_databases.V0_1_0_TABLES
    before = old_databases.contents(path, tables)
    assert all(before.values()), [table for table, rows in before.items() if not rows]

    db.connect(path).close()

    assert old_databases.contents(path, tables) == before
    conn = sqlite3.connect(path)
    recorded = conn.execute("SELECT number, name FROM aimeta_migrations ORDER BY 1").fetchall()
    assert recorded == [(step.number, step.name) for step in MIGRATIONS]
    assert conn.execute("PRAGMA user_version").fetchone()[0] == MIGRATIONS[-1].number
    conn.close()
    # A backup copy exactly when a migration rewrites a table (migration 5 does), holding
    # the rows as they were.
    backups = list(tmp_path.glob("*.bak-*"))
    assert len(backups) == any(step.rewrites_table for step in MIGRATIONS)
    for backup in backups:
        assert old_databases.contents(backup, tables) == before


def test_a_0_1_0_database_killed_mid_bulk_load_gets_its_indexes_back(tmp_path: Path) -> None:
    path = tmp_path / "images.db"
    old_databases.build_v0_1_0(path)
    complete = indexes(path)
    tables = old_databases.columns(path)
    before = old_databases.contents(path, tables)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")  # what 0.1.0's deferred_indexes committed before its load
    for name in db.DEFERRABLE_INDEXES:
        conn.execute(f"DROP INDEX {name}")
    conn.execute("PRAGMA user_version = 0")
    conn.execute("COMMIT")
    conn.close()
    assert complete - indexes(path) == set(db.DEFERRABLE_INDEXES)

    db.connect(path).close()
    db.connect(tmp_path / "current.db").close()

    # The indexes of a database made by this aimeta (migration 5 replaced the tokens index).
    assert indexes(path) == indexes(tmp_path / "current.db")
    assert old_databases.contents(path, tables) == before


def test_the_deferrable_index_definitions_are_those_of_the_schema(tmp_path: Path) -> None:
    conn = db.connect(tmp_path / "images.db")
    marks = ",".join("?" * len(db.DEFERRABLE_INDEXES))
    found = dict(
        conn.execute(
            f"SELECT name, sql FROM sqlite_master WHERE name IN ({marks})", db.DEFERRABLE_INDEXES
        ).fetchall()
    )
    conn.close()
    assert found == db.DEFERRABLE_INDEX_SQL


def test_opening_an_up_to_date_database_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "images.db"
    old_databases.build_v0_1_0(path)
    db.connect(path).close()
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    db.connect(path).close()  # a schema script run again would drop and create its views
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


def test_an_upgrade_that_rewrites_a_table_says_so_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = tmp_path / "old.db"
    old_databases.build_v0_1_0(old)
    db.connect(old).close()
    fresh = tmp_path / "fresh.db"
    db.connect(fresh).close()
    db.connect(old).close()  # up to date now: nothing to say

    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"aimeta: upgrading {old} from schema 1 to ")
    assert "rewrites a table (a backup is made first)" in line
