"""`aimeta stats` on the fixture database."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from aimeta import db
from aimeta.cli import app
from aimeta.pipelines.stats import stats

runner = CliRunner()


def _pairs(rows: list[dict[str, object]]) -> list[tuple[object, object]]:
    return [(row["name"], row["images"]) for row in rows]


def test_stats_counts_what_the_fixture_holds(fixture_db) -> None:
    conn = db.open_readonly(fixture_db.path)
    result = stats(conn, top=20)
    conn.close()
    assert result.images == 8
    assert _pairs(result.by_generator) == [
        ("a1111", 4), ("comfyui", 1), ("none", 1), ("novelai", 1), ("unknown", 1),
    ]  # fmt: skip
    assert (result.unknown_generator, result.no_metadata, result.errors) == (1, 1, 1)
    assert _pairs(result.checkpoints) == [
        ("dreamshaper_8", 3), ("juggernautXL", 1), ("sd_xl_base_1.0", 1),
    ]  # fmt: skip
    assert result.loras == [
        {"name": "add_detail", "images": 4, "mean_weight": 0.85},
        {"name": "film_grain", "images": 2, "mean_weight": 0.5},  # one weight unknown
        {"name": "Detail_Tweaker", "images": 1, "mean_weight": 0.75},
    ]
    assert _pairs(result.samplers) == [("euler_ancestral", 3), ("dpmpp_2m", 2), ("euler", 1)]
    assert _pairs(result.schedulers) == [("karras", 2), ("normal", 1)]
    assert _pairs(result.pos_tokens)[:3] == [("masterpiece", 4), ("red hair", 4), ("blue eyes", 3)]
    assert _pairs(result.neg_tokens) == [("lowres", 4), ("bad hands", 2), ("blurry", 2)]
    assert result.ratings == [
        {"model": "qwen", "images": 3, "mean": 3.67,
         "by_overall": {"1": 0, "2": 1, "3": 0, "4": 1, "5": 1}},
        {"model": "llava", "images": 1, "mean": 3.0,
         "by_overall": {"1": 0, "2": 0, "3": 1, "4": 0, "5": 0}},
    ]  # fmt: skip


def test_top_bounds_every_list(fixture_db) -> None:
    conn = db.open_readonly(fixture_db.path)
    result = stats(conn, top=1)
    conn.close()
    for rows in (result.checkpoints, result.loras, result.samplers, result.pos_tokens):
        assert len(rows) == 1
    assert result.pos_tokens == [{"name": "masterpiece", "images": 4}]


def test_stats_json(fixture_db) -> None:
    result = runner.invoke(app, ["stats", "--db", str(fixture_db.path), "--json", "--top", "2"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["images"] == 8
    assert [row["name"] for row in data["loras"]] == ["add_detail", "film_grain"]


def test_stats_tables(fixture_db, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    result = runner.invoke(app, ["stats", "--db", str(fixture_db.path)])
    assert result.exit_code == 0, result.output
    for title in ("Images: 8", "Checkpoints", "LoRAs", "Samplers", "Schedulers",
                  "Positive tokens", "Negative tokens", "AI ratings"):  # fmt: skip
        assert title in result.stdout
    assert "unknown generator: 1   no metadata: 1   unreadable (errors table): 1" in result.stdout
    add_detail = next(line for line in result.stdout.splitlines() if "add_detail" in line)
    assert add_detail.replace("│", " ").split() == ["add_detail", "4", "0.85"]


def test_stats_on_an_empty_database(tmp_path: Path) -> None:
    db.connect(tmp_path / "empty.db").close()
    result = runner.invoke(app, ["stats", "--db", str(tmp_path / "empty.db"), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["images"] == 0 and data["loras"] == [] and data["ratings"] == []
