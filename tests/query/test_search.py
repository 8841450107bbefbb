"""`aimeta search`: every filter alone, every pair against a plain-Python reading of the
fixture, the output formats, `--paths | xargs ls`, and the query plan."""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import old_databases
from aimeta import db
from aimeta.cli import app
from aimeta.metadata.record import Record
from aimeta.metadata.resources import normalize_name
from aimeta.metadata.tokens import Token
from aimeta.pipelines.search import (
    SearchQuery,
    fts_query,
    normalize_token,
    search,
    search_sql,
)

runner = CliRunner()


def _ratings(image: Any, model: str | None = None) -> list[int]:
    return [overall for tag, overall in image.ratings if model is None or tag == model]


def _names(image: Any, kind: str) -> list[str]:
    return [normalize_name(r.name).lower() for r in image.resources if r.kind == kind]


def _words(text: str | None) -> set[str]:
    return set(re.findall(r"\w+", (text or "").lower()))


# name -> (the CLI options, what they mean for one fixture image)
FILTERS: dict[str, tuple[list[str], Callable[[Any], bool]]] = {
    "token": (["--token", "red hair"], lambda i: any(t[1] == "red hair" for t in i.pos)),
    "token_typed_loosely": (
        ["--token", " Blue_EYES "],
        lambda i: any(t[1] == "blue eyes" for t in i.pos),
    ),
    "two_tokens": (
        ["--token", "masterpiece", "--token", "smile"],
        lambda i: {"masterpiece", "smile"} <= {t[1] for t in i.pos},
    ),
    "not_token": (
        ["--not-token", "masterpiece"],
        lambda i: "masterpiece" not in {t[1] for t in i.pos},
    ),
    "neg_token": (["--neg-token", "lowres"], lambda i: "lowres" in {t[1] for t in i.neg}),
    "not_neg_token": (
        ["--not-neg-token", "bad hands"],
        lambda i: "bad hands" not in {t[1] for t in i.neg},
    ),
    "text": (["--text", "eyes blue"], lambda i: {"blue", "eyes"} <= _words(i.prompt)),
    "text_prefix": (
        ["--text", "sun*"],
        lambda i: any(word.startswith("sun") for word in _words(i.prompt)),
    ),
    "model": (
        ["--model", "DreamShaper_8"],
        lambda i: "dreamshaper_8" in _names(i, "checkpoint"),
    ),
    "model_pattern": (
        ["--model", "*xl*"],
        lambda i: any("xl" in name for name in _names(i, "checkpoint")),
    ),
    "lora": (["--lora", "add_detail"], lambda i: "add_detail" in _names(i, "lora")),
    "lora_case": (["--lora", "detail_tweaker"], lambda i: "detail_tweaker" in _names(i, "lora")),
    "resource": (
        ["--resource", "embedding:easynegative"],
        lambda i: "easynegative" in _names(i, "embedding"),
    ),
    "sampler_norm": (
        ["--sampler", "euler_ancestral"],
        lambda i: i.params.get("sampler_norm") == "euler_ancestral",
    ),
    "sampler_as_written": (
        ["--sampler", "euler a"],
        lambda i: i.params.get("sampler") == "Euler a",
    ),
    "seed": (
        ["--seed", "123456789012345678901"],
        lambda i: i.params.get("seed") == "123456789012345678901",
    ),
    "generator": (["--generator", "A1111"], lambda i: i.generator == "a1111"),
    "min_rating": (["--min-rating", "4"], lambda i: max(_ratings(i), default=0) >= 4),
    "rating_model": (["--rating-model", "llava"], lambda i: bool(_ratings(i, "llava"))),
}  # fmt: skip

# What each filter alone finds, written out by hand from tests/query/conftest.py.
ALONE = {
    "token": {"a1.png", "a2.png", "c3.png", "a6.png"},
    "token_typed_loosely": {"a2.png", "n5.png", "a6.png"},
    "two_tokens": {"a1.png"},
    "not_token": {"c3.png", "n5.png", "u7.png", "p8.jpg"},
    "neg_token": {"a1.png", "a2.png", "n5.png", "a6.png"},
    "not_neg_token": {"a2.png", "a4.png", "n5.png", "a6.png", "u7.png", "p8.jpg"},
    "text": {"a2.png", "n5.png", "a6.png"},
    "text_prefix": {"a4.png"},
    "model": {"a1.png", "a2.png", "a6.png"},
    "model_pattern": {"c3.png", "a4.png"},
    "lora": {"a1.png", "a2.png", "c3.png", "a6.png"},
    "lora_case": {"a4.png"},
    "resource": {"c3.png"},
    "sampler_norm": {"a2.png", "n5.png", "a6.png"},
    "sampler_as_written": {"a2.png", "a6.png"},
    "seed": {"c3.png"},
    "generator": {"a1.png", "a2.png", "a4.png", "a6.png"},
    "min_rating": {"a1.png", "a2.png"},
    "rating_model": {"a1.png"},
}


def _run(fixture_db, *options: str) -> set[str]:
    args = ["search", "--db", str(fixture_db.path), "--paths", "--limit", "0", *options]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return {Path(line).name for line in result.stdout.splitlines()}


@pytest.mark.parametrize("name", sorted(FILTERS))
def test_each_filter_alone(fixture_db, images_spec, name: str) -> None:
    options, meaning = FILTERS[name]
    assert _run(fixture_db, *options) == ALONE[name]
    # The hand-written expectation and the plain reading of the fixture agree.
    assert {image.name for image in images_spec if meaning(image)} == ALONE[name]


REPEATABLE = {"--token", "--not-token", "--neg-token", "--not-neg-token", "--lora", "--resource"}
# Pairs that give a single-value option twice (the last would win) are left out.
PAIRS = [
    (first, second)
    for first, second in itertools.combinations(sorted(FILTERS), 2)
    if FILTERS[first][0][0] != FILTERS[second][0][0] or FILTERS[first][0][0] in REPEATABLE
]


@pytest.mark.parametrize(("first", "second"), PAIRS)
def test_every_pair_of_filters(fixture_db, images_spec, first: str, second: str) -> None:
    options = FILTERS[first][0] + FILTERS[second][0]
    expected = {
        image.name
        for image in images_spec
        if FILTERS[first][1](image) and FILTERS[second][1](image)
    }
    if (first, second) == ("min_rating", "rating_model"):
        # Together they mean: rated at least 4 *by that model* (a1 has llava 3, qwen 5).
        expected = {i.name for i in images_spec if max(_ratings(i, "llava"), default=0) >= 4}
        assert expected == set()
    assert _run(fixture_db, *options) == expected


def test_has_token_but_not_negative_token_with_lora_and_rating(fixture_db) -> None:
    found = _run(
        fixture_db, "--token", "red hair", "--not-neg-token", "bad hands", "--lora", "add_detail",
        "--min-rating", "4", "--rating-model", "qwen",
    )  # fmt: skip
    assert found == {"a2.png"}


def test_no_filter_lists_every_image(fixture_db, images_spec) -> None:
    assert _run(fixture_db) == {image.name for image in images_spec}


def test_limit_keeps_a_stable_selection_sorted_by_path(fixture_db) -> None:
    conn = db.open_readonly(fixture_db.path)
    every = search(conn, SearchQuery(limit=0))
    first = search(conn, SearchQuery(limit=3))
    again = search(conn, SearchQuery(limit=3))
    conn.close()
    assert [hit.path for hit in first] == [hit.path for hit in again]
    assert len(first) == 3 and {hit.path for hit in first} < {hit.path for hit in every}
    assert [hit.path for hit in first] == sorted(hit.path for hit in first)
    assert [hit.path for hit in every] == sorted(hit.path for hit in every)


def test_paths_feed_xargs_ls(fixture_db, tmp_path: Path) -> None:
    """`aimeta search --paths | xargs ls` lists exactly the files found."""
    environment = {**os.environ, "AIMETA_CONFIG": str(tmp_path / "none.toml")}
    search_run = subprocess.run(
        [sys.executable, "-m", "aimeta", "search", "--db", str(fixture_db.path),
         "--token", "red hair", "--not-neg-token", "bad hands", "--paths"],
        capture_output=True, text=True, check=True, cwd=tmp_path, env=environment,
    )  # fmt: skip
    listing = subprocess.run(
        ["xargs", "ls"], input=search_run.stdout, capture_output=True, text=True, check=True
    )
    assert listing.stdout.splitlines() == [fixture_db.file("a2.png"), fixture_db.file("a6.png")]
    assert search_run.stderr.strip() == "2 images found"


def test_json_lines(fixture_db) -> None:
    args = ["search", "--db", str(fixture_db.path), "--json", "--lora", "film_grain"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [Path(row["path"]).name for row in rows] == ["a1.png", "a4.png"]
    first = rows[0]
    assert first["generator"] == "a1111"
    assert first["model"] == "dreamshaper_8"
    assert first["sampler"] == "dpmpp_2m"
    assert first["seed"] == "1001"
    assert first["best_rating"] == 5
    assert first["prompt"] == "masterpiece, (red hair:1.2), smile, red_hair"
    assert first["loras"] == [
        {"name": "add_detail", "weight": 0.8},
        {"name": "film_grain", "weight": 0.5},
    ]
    assert rows[1]["loras"] == [
        {"name": "Detail_Tweaker", "weight": 0.75000001},
        {"name": "film_grain", "weight": None},
    ]


def test_best_rating_follows_the_rating_model(fixture_db) -> None:
    args = ["search", "--db", str(fixture_db.path), "--json", "--rating-model", "llava"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["best_rating"] for line in result.stdout.splitlines()] == [3]


def test_table_output(fixture_db, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    args = ["search", "--db", str(fixture_db.path), "--seed", "123456789012345678901"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    header, row = (line for line in result.stdout.splitlines() if "│" in line or "┃" in line)
    assert [cell.strip() for cell in header.strip("┃ ").split("┃")] == [
        "path", "generator", "model", "sampler", "seed", "rating", "prompt",
    ]  # fmt: skip
    cells = [cell.strip() for cell in row.strip("│ ").split("│")]
    assert cells == [
        fixture_db.file("c3.png"), "comfyui", "juggernautXL", "euler", "123456789012345678901",
        "", "Red_Hair, 1girl, forest",
    ]  # fmt: skip
    assert result.stderr.strip() == "1 image found"


def test_long_prompts_are_cut_to_60_characters_in_the_table(fresh_db, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    conn = db.connect(fresh_db.path)
    prompt = "castle on a hill, " * 10
    with db.transaction(conn):
        db.store_image(
            conn,
            {"key": "long.png", "path": "/long.png", "file_name": "long.png"},
            Record("a1111", prompt=prompt),
            [("pos", Token(0, "castle on a hill", "castle on a hill"))],
        )
    conn.close()
    result = runner.invoke(
        app, ["search", "--db", str(fresh_db.path), "--token", "castle on a hill"]
    )
    assert result.exit_code == 0, result.output
    row = next(line for line in result.stdout.splitlines() if "long.png" in line)
    shown = row.strip("│ ").split("│")[-1].strip()
    assert shown == "castle on a hill, castle on a hill, castle on a hill, castle…"
    assert len(shown) == 61


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--text", ", ( )"], "Error: --text ', ( )' has no words to search for"),
        (["--resource", "easynegative"], "Error: --resource takes KIND:NAME"),
        (["--token", "  "], "Error: empty token '  '"),
    ],
)
def test_unusable_filters_are_one_clear_error(fixture_db, options: list[str], message: str) -> None:
    result = runner.invoke(app, ["search", "--db", str(fixture_db.path), *options])
    assert result.exit_code == 2
    assert result.stderr.startswith(message), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "text", ['"unclosed', "NEAR(a b", "a AND OR b", "-x", "col:on", "*", "^start", "a + b"]
)
def test_fts_syntax_in_the_input_is_plain_text(fixture_db, text: str) -> None:
    args = ["search", "--db", str(fixture_db.path), "--text", f"blue {text}", "--paths"]
    result = runner.invoke(app, args)
    assert result.exit_code in (0, 2), result.output
    assert "Traceback" not in result.output
    if result.exit_code == 2:
        assert result.stderr.startswith("Error: ")


@pytest.mark.parametrize(
    ("typed", "t_norm"),
    [("(Red_Hair:1.2)", "red hair"), ("  RED   hair ", "red hair"), ("[[smile]]", "smile"),
     ("a, b", "a, b"), ("blue_eyes", "blue eyes")],
)  # fmt: skip
def test_token_arguments_are_normalised_like_t_norm(typed: str, t_norm: str) -> None:
    assert normalize_token(typed) == t_norm


def test_fts_query_quotes_every_term() -> None:
    assert fts_query('red "blue eyes" sun* a"b') == (
        'prompt : ("red" AND "blue eyes" AND "sun"* AND "a""b")'
    )


def test_token_include_exclude_uses_indexes_only(fixture_db) -> None:
    """EXPLAIN QUERY PLAN: the tokens table is searched through an index, never scanned."""
    query = SearchQuery(
        tokens=("red hair", "masterpiece"), not_tokens=("smile",), not_neg_tokens=("bad hands",),
        loras=("add_detail",), min_rating=4,
    )  # fmt: skip
    sql, params = search_sql(query)
    conn = db.open_readonly(fixture_db.path)
    plan = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params)]
    conn.close()
    token_steps = [step for step in plan if " token_rows " in f"{step} "]
    assert len(token_steps) == 4, plan
    assert all(
        step.startswith("SEARCH token_rows USING COVERING INDEX idx_tokens_norm")
        for step in token_steps
    ), plan
    assert any("SEARCH resources USING COVERING INDEX idx_resources_kind_name_nocase" in step
               for step in plan), plan  # fmt: skip
    assert not [step for step in plan if step.startswith("SCAN token")], plan
    assert not [step for step in plan if step.startswith("SCAN resources")], plan
    assert any(step.startswith("MERGE") for step in plan), plan


def test_full_text_index_follows_prompt_changes(fresh_db) -> None:
    def found(words: str) -> set[str]:
        return _run(fresh_db, "--text", words)

    assert found("sunset") == {"a4.png"}
    conn = db.connect(fresh_db.path)
    with db.transaction(conn):  # re-ingest a4 with a new prompt: kv rows are replaced
        db.store_image(
            conn,
            {"key": "images/a4.png", "path": fresh_db.file("a4.png"), "file_name": "a4.png"},
            Record("a1111", prompt="moonrise over hills", negative_prompt="sunset"),
        )
        conn.execute("DELETE FROM images WHERE file_name = 'n5.png'")
    conn.close()
    assert found("sunset") == set()  # the negative prompt is not searched
    assert found("moonrise hills") == {"a4.png"}
    assert found("1girl") == {"c3.png"}  # n5 and its full-text row are gone


def test_full_text_index_follows_a_prompt_row_deleted_by_hand(fresh_db) -> None:
    assert _run(fresh_db, "--text", "sunset") == {"a4.png"}
    conn = db.connect(fresh_db.path)
    with db.transaction(conn):
        conn.execute(
            "DELETE FROM kv WHERE key = 'prompt' AND image_id ="
            " (SELECT id FROM images WHERE file_name = 'a4.png')"
        )
    conn.close()
    assert _run(fresh_db, "--text", "sunset") == set()


def test_full_text_index_is_filled_for_an_older_database(fresh_db) -> None:
    conn = db.connect(fresh_db.path)
    conn.execute("DELETE FROM prompts_fts")  # as if made before prompts_fts existed,
    conn.execute("DROP TABLE aimeta_migrations")  # so before migrations were recorded
    conn.execute("PRAGMA user_version = 0")
    old_databases.back_to_v0_1_0_tokens(conn)
    conn.close()
    assert _run(fresh_db, "--text", "blue") == {"a2.png", "n5.png", "a6.png"}
    conn = db.connect(fresh_db.path)
    assert conn.execute("SELECT COUNT(*) FROM prompts_fts").fetchone()[0] == 6
    conn.close()
