"""`aimeta insights`: planted effects come out on top and bottom, intervals hold their level on
libraries without effects, filters agree with `aimeta search`, ratings of every kind, and the
--json/--csv/table output."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest
from typer.testing import CliRunner

from aimeta import db
from aimeta.cli import app
from aimeta.cli.insights import search_filters
from aimeta.errors import UsageError
from aimeta.pipelines import insight_sql, insight_tokens
from aimeta.pipelines.insights import (
    COLUMNS,
    InsightQuery,
    insights,
    rating_frame,
    t_quantile,
    value_sums,
    with_intervals,
)
from aimeta.pipelines.search import SearchQuery, search_sql
from insights_library import (
    PLANTED_LORA,
    PLANTED_TOKEN,
    TOKENS,
    Library,
    build_library,
)

runner = CliRunner()

# 95 % intervals: on libraries without effects about 5 % of them miss zero; allowed up to 8 %
# (the 20 libraries give 783 intervals: 3 points are almost 4 binomial standard deviations).
CONFIDENCE = 0.95
TOLERANCE = 0.03


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Library:
    return build_library(tmp_path_factory.mktemp("insights") / "images.db", seed=1)


@contextmanager
def reading(path: Path) -> Iterator[sqlite3.Connection]:
    with closing(db.open_existing(path, readonly=True)) as conn:
        yield conn


def test_planted_token_tops_and_planted_lora_weight_bottoms(planted: Library) -> None:
    with reading(planted.path) as conn:
        result = insights(conn, InsightQuery(dimensions=("token", "lora"), min_images=20))
    tokens = result.rows[result.rows["dimension"] == "token"]
    loras = result.rows[result.rows["dimension"] == "lora"]
    best, worst = tokens.iloc[0], loras.iloc[-1]
    assert best["value"] == PLANTED_TOKEN
    assert best["delta_low"] > 0
    assert 0.5 < best["delta"] < 1.0  # one star on ~30 % of images: mean minus baseline ≈ 0.7
    assert worst["value"] == f"{PLANTED_LORA} @ (0.8, 1]"
    assert worst["delta_high"] < 0
    # The same LoRA at a lower weight is told apart: its interval lies clear above.
    gentle = loras[loras["value"] == f"{PLANTED_LORA} @ (0.6, 0.8]"].iloc[0]
    assert gentle["delta_low"] > worst["delta_high"]
    assert (tokens["delta_low"].diff().dropna() <= 0).all()  # sorted by lower bound


def test_intervals_hold_their_level_without_effects(tmp_path: Path) -> None:
    dimensions = ("token", "lora", "checkpoint", "sampler", "cfg", "steps", "generator")
    missed, total = 0, 0
    for seed in range(20):
        library = build_library(tmp_path / f"{seed}.db", seed=100 + seed, planted=False)
        with reading(library.path) as conn:
            rows = insights(conn, InsightQuery(dimensions=dimensions, min_images=20)).rows
        missed += int(((rows["delta_low"] > 0) | (rows["delta_high"] < 0)).sum())
        total += len(rows)
    share = missed / total
    assert total > 500
    assert share <= (1 - CONFIDENCE) + TOLERANCE, (missed, total)
    # Not trivially wide either: some intervals do miss zero by chance.
    assert share >= 0.01, (missed, total)


def test_mean_delta_and_counts_match_a_direct_reading(planted: Library) -> None:
    with reading(planted.path) as conn:
        result = insights(conn, InsightQuery(dimensions=("token",), min_images=1))
    rated = planted.ratings
    baseline = np.mean(list(rated.values()))
    assert result.baseline_images == len(rated)
    assert result.baseline_mean == pytest.approx(baseline)
    for token in TOKENS:
        ratings = [rating for ident, rating in rated.items() if token in planted.tokens[ident]]
        row = result.rows[result.rows["value"] == token].iloc[0]
        assert row["images"] == len(ratings)
        assert row["mean"] == pytest.approx(np.mean(ratings))
        assert row["delta"] == pytest.approx(np.mean(ratings) - baseline)
        assert row["delta_low"] < row["delta"] < row["delta_high"]


def test_interval_is_welch_for_the_value_against_the_rest() -> None:
    """Large groups (the pooled pseudo-images no longer matter): the half width equals the
    textbook Welch interval of mean_v - mean_rest, scaled by the share of the rest."""
    rng = np.random.default_rng(5)
    value, rest = rng.integers(1, 6, 4000).astype(float), rng.integers(1, 6, 6000).astype(float)
    everything = np.concatenate([value, rest])
    sums = pd.DataFrame(
        {"value": ["v"], "images": [len(value)], "sum": [value.sum()], "sum_sq": [value @ value]}
    )
    row = with_intervals(
        sums, len(everything), everything.sum(), everything @ everything, 0.95
    ).iloc[0]
    se = np.sqrt(value.var(ddof=1) / len(value) + rest.var(ddof=1) / len(rest))
    half = (row["delta_high"] - row["delta_low"]) / 2
    assert half == pytest.approx(1.96 * se * len(rest) / len(everything), rel=2e-3)


def test_t_quantile_matches_tables() -> None:
    # Student-t two-sided 95 % and 99 % critical values from printed tables.
    assert t_quantile(0.95, np.array([10.0, 30.0, 1e6])) == pytest.approx(
        [2.228, 2.042, 1.960], abs=2e-3
    )
    assert t_quantile(0.99, np.array([20.0])) == pytest.approx([2.845], abs=3e-3)


FILTER_SETS = [
    ["--model", "ckpt_a"],
    ["--lora", "lora_1"],
    ["--token", "token 05", "--not-token", "token 07"],
    ["--sampler", "ddim", "--generator", "comfyui"],
    ["--min-rating", "3"],
    ["--resource", "lora:lora_*"],
]


@pytest.mark.parametrize("options", FILTER_SETS, ids=lambda options: " ".join(options))
def test_filters_agree_with_search(planted: Library, options: list[str]) -> None:
    within = search_filters(options)
    with reading(planted.path) as conn:
        result = insights(conn, InsightQuery(("token",), min_images=1, within=within))

        def rated_matches(query: SearchQuery) -> set[int]:
            sql, params = search_sql(query)
            return {row[0] for row in conn.execute(sql, params)} & set(planted.ratings)

        assert result.baseline_images == len(rated_matches(within))
        assert result.baseline_images > 0
        for row in result.rows.itertuples():
            narrower = SearchQuery(**{**within.__dict__, "tokens": (*within.tokens, row.value)})
            assert row.images == len(rated_matches(narrower)), row.value


def test_within_and_trailing_options_are_the_same_filters(planted: Library) -> None:
    base = ["insights", "--db", str(planted.path), "--by", "sampler", "--json"]
    trailing = runner.invoke(app, [*base, "--model", "ckpt_b", "--lora", "lora_0"])
    within = runner.invoke(app, [*base, "--within", "--model ckpt_b --lora lora_0"])
    unfiltered = runner.invoke(app, base)
    for result in (trailing, within, unfiltered):
        assert result.exit_code == 0, result.output
    assert json.loads(trailing.stdout) == json.loads(within.stdout)
    assert json.loads(trailing.stdout)[0]["images"] < json.loads(unfiltered.stdout)[0]["images"]


def test_search_display_options_are_refused() -> None:
    with pytest.raises(UsageError, match="--limit"):
        search_filters(["--limit", "3"])
    result = runner.invoke(app, ["insights", "--db", "x.db", "--no-such-filter", "1"])
    assert result.exit_code == 2


def test_json_and_csv_rows(planted: Library) -> None:
    base = ["insights", "--db", str(planted.path), "--by", "lora", "--by", "cfg"]
    as_json = runner.invoke(app, [*base, "--json"])
    as_csv = runner.invoke(app, [*base, "--csv"])
    assert as_json.exit_code == 0, as_json.output
    assert as_csv.exit_code == 0, as_csv.output
    rows = json.loads(as_json.stdout)
    assert [set(row) for row in rows] == [set(COLUMNS)] * len(rows)
    assert rows[0]["dimension"] == "baseline"
    assert {row["dimension"] for row in rows[1:]} == {"lora", "cfg"}
    cfg_values = {row["value"] for row in rows if row["dimension"] == "cfg"}
    assert cfg_values == {"(4, 6]", "(6, 8]", "(8, 10]"}  # 5; 7 and 7.5; 9
    csv_rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert list(csv_rows[0]) == COLUMNS
    assert [(row["dimension"], row["value"], int(row["images"])) for row in csv_rows] == [
        (row["dimension"], row["value"], row["images"]) for row in rows
    ]
    assert [float(row["delta_low"]) for row in csv_rows] == pytest.approx(
        [row["delta_low"] for row in rows]
    )


def test_table_shows_counts_and_says_associations(planted: Library) -> None:
    result = runner.invoke(
        app, ["insights", "--db", str(planted.path), "--by", "token", "--top", "2"]
    )
    assert result.exit_code == 0, result.output
    assert "not causes" in result.stdout
    assert "token (12 values)" in result.stdout
    assert "…" in result.stdout  # 12 values, best and worst 2 shown
    assert PLANTED_TOKEN in result.stdout
    help_text = runner.invoke(app, ["insights", "--help"]).stdout
    assert "not causes" in " ".join(help_text.split())


def _user_tables(
    path: Path, users: list[tuple[int, int, int]], culls: list[tuple[int, str]]
) -> None:
    # Both tables come from migrations (2: the library, 4: cull).
    with closing(db.connect(path)) as conn, db.transaction(conn):
        conn.executemany(
            "INSERT INTO user_ratings (image_id, stars, pick, updated_at) VALUES (?, ?, ?, 'now')",
            users,
        )
        conn.executemany(
            "INSERT INTO cull_decisions (image_id, decision, decided_at) VALUES (?, ?, 'now')",
            culls,
        )


def test_user_pick_and_any_ratings(tmp_path: Path) -> None:
    library = build_library(tmp_path / "images.db", seed=3, images=40)
    ids = sorted(library.tokens)
    unrated = next(ident for ident in ids if ident not in library.ratings)
    rated = next(ident for ident in ids if ident in library.ratings)
    users = [(rated, 5, 1), (unrated, 0, -1), (ids[-1], 2, 0)]
    culls = [(rated, "reject"), (ids[-2], "pick"), (ids[-3], "keep"), (unrated, "pick")]
    _user_tables(library.path, users, culls)
    with reading(library.path) as conn:
        user = dict(rating_frame(conn, "user").itertuples(index=False))
        pick = dict(rating_frame(conn, "pick").itertuples(index=False))
        any_kind = dict(rating_frame(conn, "any").itertuples(index=False))
        keep_rate = insights(conn, InsightQuery(("generator",), rating="pick", min_images=1))
    assert user == {rated: 5.0, ids[-1]: 2.0}  # 0 stars: not rated
    # The user's pick/reject wins over the cull's; a user 0 and a cull keep are neither.
    assert pick == {rated: 1.0, unrated: 0.0, ids[-2]: 1.0}
    assert any_kind[rated] == 5.0 and any_kind[ids[-1]] == 2.0
    assert {k: v for k, v in any_kind.items() if k not in user} == {
        k: float(v) for k, v in library.ratings.items() if k not in user
    }
    assert keep_rate.baseline_images == 3
    assert keep_rate.baseline_mean == pytest.approx(2 / 3)


def test_missing_tables_and_empty_selections_say_so(planted: Library) -> None:
    result = runner.invoke(app, ["insights", "--db", str(planted.path), "--rating", "user"])
    assert result.exit_code == 2
    assert "no stars of your own" in result.output
    result = runner.invoke(
        app, ["insights", "--db", str(planted.path), "--model", "no_such_checkpoint"]
    )
    assert result.exit_code == 2
    assert "no AI rating" in result.output


def test_other_commands_do_not_load_pandas() -> None:
    """The insights command imports its pipeline when run: pandas and NumPy would otherwise
    add about 50 MB to every command (the hostile-files test bounds `aimeta all`'s memory)."""
    code = "import sys, aimeta.cli; print('pandas' in sys.modules, 'numpy' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"]


def test_rating_model_chooses_whose_ratings_count(tmp_path: Path) -> None:
    library = build_library(tmp_path / "images.db", seed=4, images=30)
    with closing(db.connect(library.path)) as conn, db.transaction(conn):
        conn.execute(
            "INSERT INTO ratings (path, model, overall, scores_json, keywords_json, rated_at)"
            " SELECT path, 'other', 5, '{}', '[]', 'now' FROM ratings WHERE model = 'qwen'"
        )
    base = ["insights", "--db", str(library.path), "--by", "generator", "--json"]
    rows = {
        model: json.loads(runner.invoke(app, [*base, *extra]).stdout)[0]
        for model, extra in (("both", []), ("qwen", ["--rating-model", "qwen"]),
                             ("other", ["--rating-model", "other"]))
    }  # fmt: skip
    qwen_mean = np.mean(list(library.ratings.values()))
    assert rows["qwen"]["mean"] == pytest.approx(qwen_mean)
    assert rows["other"]["mean"] == pytest.approx(5.0)
    assert rows["both"]["mean"] == pytest.approx((qwen_mean + 5) / 2)


@pytest.mark.parametrize("dimension", ["token", "token+lora"])
def test_token_counts_in_numpy_equal_the_sql_grouping(tmp_path: Path, dimension: str) -> None:
    """The token dimensions are counted in NumPy (insight_tokens); SQLite's grouping of the
    same rows (insight_sql.VALUE_ROWS) gives the same values, counts and sums, also for a
    token written twice in one prompt and with chunks smaller than the library."""
    library = build_library(tmp_path / "images.db", seed=9, images=300)
    rated = next(iter(library.ratings))
    with closing(db.connect(library.path)) as conn, db.transaction(conn):
        conn.execute(
            "INSERT INTO tokens (image_id, side, position, t_raw, t_norm) VALUES"
            " (?, 'pos', 99, 'token 01', 'token 01'), (?, 'pos', 98, 'token 01', 'token 01')",
            (rated, rated),
        )
    with reading(library.path) as conn:
        outcomes = rating_frame(conn, "ai")
        # Ids as Python ints (in a float array 63-bit ids would lose digits).
        ids, ratings = outcomes["image_id"].tolist(), outcomes["rating"].tolist()
        pairs = orjson.dumps(list(zip(ids, ratings, strict=True))).decode("ascii")
        sql = insight_sql.GROUPED.format(
            rows=insight_sql.VALUE_ROWS[dimension], label=insight_sql.LABELS[dimension]
        )
        expected = conn.execute(sql, {"outcome": pairs, "min_images": 2}).fetchall()
        insight_tokens.CHUNK, chunk = 70, insight_tokens.CHUNK
        try:
            counted = value_sums(conn, dimension, outcomes, 2)
        finally:
            insight_tokens.CHUNK = chunk
    got = sorted(counted[["first", "second", "images", "sum", "sum_sq"]].itertuples(index=False))
    assert len(got) == len(expected) > 10
    for row, want in zip(got, sorted(expected), strict=True):
        assert tuple(row[:3]) == tuple(want[:3])
        assert tuple(row[3:]) == pytest.approx(tuple(want[3:]))
