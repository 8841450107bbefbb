"""`aimeta show PATH`: one image's stored record and its raw metadata text, decompressed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import old_databases
from aimeta import db
from aimeta.cli import app

runner = CliRunner()
FOX = "/photos/Input/forest/fox.png"


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "images.db"
    conn = db.connect(path)
    old_databases.fill(conn)
    conn.execute("UPDATE ratings SET image_id = (SELECT id FROM images WHERE path = ?)", (FOX,))
    conn.close()
    return path


def test_show_prints_the_record_and_with_raw_the_text_read_from_the_file(database: Path) -> None:
    conn = db.connect(database)
    stored = conn.execute("SELECT raw_json, raw_zlib FROM images WHERE path = ?", (FOX,)).fetchone()
    conn.close()
    assert stored[0] is None  # compressed, so DB Browser would show a blob

    plain = runner.invoke(app, ["show", FOX, "--db", str(database)])
    with_raw = runner.invoke(app, ["show", FOX, "--raw", "--db", str(database)])

    assert plain.exit_code == 0, plain.output
    lines = plain.stdout.splitlines()
    assert lines[0] == f"path: {FOX}"
    assert lines[1].startswith("generator: a1111  (832x1216,")
    assert "  blurry, lowres, easynegative" in lines
    assert "  seed: 3141592653" in lines
    assert "  lora add_detail weight 0.8 hash 7c6bad76eb54" in lines
    assert "  AI qwen2.5-vl-7b: 4/5 (2026-05-01T10:00:00Z)" in lines
    assert "raw metadata:" not in lines
    assert with_raw.exit_code == 0, with_raw.output
    infotext = old_databases.INFOTEXTS["Input/forest/fox.png"]
    raw_part = with_raw.stdout.splitlines()[len(lines) :]
    assert raw_part == [
        "raw metadata:",
        "  parameters:",
        *(f"    {x}" for x in infotext.split("\n")),
    ]


def test_show_json_carries_the_raw_fields_and_finds_an_image_by_its_key(database: Path) -> None:
    result = runner.invoke(
        app, ["show", "Input/forest/owl.png", "--raw", "--json", "--db", str(database)]
    )

    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["path"] == "/photos/Input/forest/owl.png"
    assert info["raw"] == {"parameters": old_databases.INFOTEXTS["Input/forest/owl.png"]}
    assert info["parameters"]["sampler"] == "Euler a"
    assert {r["name"] for r in info["resources"]} >= {"juggernautXL_v9", "owl_style"}
    assert "file" not in info


def test_show_names_a_path_that_is_not_stored(database: Path) -> None:
    result = runner.invoke(app, ["show", "/photos/nowhere.png", "--db", str(database)])

    assert result.exit_code != 0
    assert "/photos/nowhere.png: not in the database" in result.output
    assert "Traceback" not in result.output


def test_show_prints_an_image_stored_with_few_facts(tmp_path: Path) -> None:
    path = tmp_path / "images.db"
    conn = db.connect(path)
    conn.execute(
        "INSERT INTO images (id, key, path, file_name, generator) VALUES"
        " (7, 'Input/bare.png', '/photos/Input/bare.png', 'bare.png', 'none')"
    )
    conn.commit()
    conn.close()

    result = runner.invoke(app, ["show", "/photos/Input/bare.png", "--raw", "--db", str(path)])

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "path: /photos/Input/bare.png",
        "generator: none",
        "raw metadata: (none stored)",
    ]
