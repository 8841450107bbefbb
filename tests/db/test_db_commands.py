"""`aimeta db version`, `aimeta db upgrade`, the refusal of a newer database through the CLI,
and the documented SQL on an upgraded database."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from typer.testing import CliRunner

import old_databases
from aimeta import __version__, db
from aimeta.cli import app
from aimeta.migrations import MIGRATIONS, Migration

runner = CliRunner()
LATEST = MIGRATIONS[-1].number


def test_a_newer_database_is_refused_with_one_error_line(tmp_path: Path) -> None:
    path = tmp_path / "images.db"
    future = Migration(LATEST + 1, "add_something_new", lambda conn: None)
    db.connect(path, migration_list=(*MIGRATIONS, future)).close()
    conn = sqlite3.connect(path)  # as a newer aimeta records its own version
    with conn:
        conn.execute("UPDATE aimeta_migrations SET aimeta_version = '0.4.0' WHERE number = ?",
                     (future.number,))  # fmt: skip
    conn.close()
    content = path.read_bytes()

    for command in (["db", "upgrade"], ["search", "--token", "fox"], ["resources"]):
        result = runner.invoke(app, [*command, "--db", str(path)])
        assert result.exit_code == 1, (command, result.output)
        errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
        assert errors == [
            f"Error: database schema {LATEST + 1} (made by aimeta 0.4.0) is newer than this"
            f" aimeta {__version__} knows (schema {LATEST}): upgrade aimeta"
        ], command
    assert path.read_bytes() == content


def test_db_upgrade_backs_up_and_reports(tmp_path: Path) -> None:
    path = tmp_path / "images.db"
    old_databases.build_v0_1_0(path)
    # A row still in the write-ahead log only: the backup must hold it too.
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA wal_autocheckpoint = 0")
    db.record_error(writer, "/photos/Input/late.png", "read", "file vanished")
    tables = old_databases.columns(path)
    before = old_databases.contents(path, tables)
    assert ("/photos/Input/late.png", "read", "file vanished") in [
        row[:3] for row in before["errors"]
    ]

    result = runner.invoke(app, ["db", "upgrade", "--db", str(path)])
    writer.close()

    assert result.exit_code == 0, result.output
    backup = tmp_path / "images.db.bak-schema1"
    names = ", ".join(step.name for step in MIGRATIONS)
    assert result.stdout.splitlines() == [
        f"{path}: schema 1 -> {LATEST}, applied {names}",
        f"backup: {backup}",
    ]
    assert old_databases.contents(backup, tables) == before
    assert old_databases.contents(path, tables) == before
    again = runner.invoke(app, ["db", "upgrade", "--db", str(path)])
    assert again.stdout == f"{path}: up to date (schema {LATEST})\n"


def test_db_version_lists_the_applied_migrations(tmp_path: Path) -> None:
    path = tmp_path / "images.db"
    old_databases.build_v0_1_0(path)
    old = json.loads(runner.invoke(app, ["db", "version", "--db", str(path), "--json"]).stdout)
    assert (old["version"], old["made_by"], old["applied"]) == (1, "0.1.0", [])
    assert old["pending"] == [step.name for step in MIGRATIONS]

    db.connect(path).close()
    result = runner.invoke(app, ["db", "version", "--db", str(path), "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert (info["version"], info["known_version"], info["pending"]) == (LATEST, LATEST, [])
    assert [(s["number"], s["name"], s["aimeta_version"]) for s in info["applied"]] == [
        (step.number, step.name, __version__) for step in MIGRATIONS
    ]
    text = runner.invoke(app, ["db", "version", "--db", str(path)]).stdout.splitlines()
    assert text[0] == f"{path}: schema {LATEST}; aimeta {__version__} knows schema {LATEST}"
    assert [line.split()[:2] for line in text[1:]] == [
        [str(step.number), step.name] for step in MIGRATIONS
    ]


def test_a_missing_database_is_named_once(tmp_path: Path) -> None:
    result = runner.invoke(app, ["db", "version", "--db", str(tmp_path / "none.db")])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: no database at {tmp_path / 'none.db'}: run ")
    assert not (tmp_path / "none.db").exists()


def test_the_documented_sql_works_after_an_upgrade(tmp_path: Path) -> None:
    path = tmp_path / "images.db"
    old_databases.build_v0_1_0(path)
    db.connect(path).close()
    conn = db.open_existing(path, readonly=True)
    top = conn.execute(
        "SELECT t_norm FROM tokens WHERE side='pos' GROUP BY t_norm ORDER BY COUNT(*) DESC"
        " LIMIT 500"
    ).fetchall()
    has_but_not = conn.execute(
        "SELECT COUNT(DISTINCT p.image_id) FROM tokens p"
        " WHERE p.side='pos' AND p.t_norm='masterpiece'"
        "   AND NOT EXISTS (SELECT 1 FROM tokens n WHERE n.image_id=p.image_id"
        "   AND n.side='neg' AND n.t_norm='watermark')"
    ).fetchone()[0]
    search = conn.execute("SELECT * FROM v_images_search LIMIT 20")
    columns = [column[0] for column in search.description]
    rows = {row[columns.index("path")]: dict(zip(columns, row, strict=True)) for row in search}
    params = conn.execute("SELECT path, steps, seed FROM v_images_with_core_params").fetchall()
    loras = dict(conn.execute("SELECT path, loras FROM v_images_with_resources").fetchall())
    conn.close()
    # "masterpiece" opens the fox and the owl prompts; only the owl's negative has "watermark".
    assert top[0] == ("masterpiece",) and ("cinematic",) in top
    assert has_but_not == 1
    assert set(rows) == {f"/photos/{key}" for key in old_databases.INFOTEXTS}
    assert rows["/photos/Input/forest/fox.png"]["best_rating"] == 4
    assert ("/photos/Input/forest/owl.png", "20", "12345678901234567890") in params
    assert loras["/photos/Input/forest/fox.png"] == "add_detail:0.8"
