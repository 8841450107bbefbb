"""GET /api/insights: the rows of `aimeta insights` for the same filters, and each row's
`filter` selects in /api/images exactly the images the row counted."""

from __future__ import annotations

import dataclasses
import re
import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from web_helpers import TestClient

from aimeta import db
from aimeta.cli.insights import search_filters
from aimeta.pipelines.insight_sql import DIMENSIONS
from aimeta.pipelines.insights import COLUMNS, InsightQuery, insights
from aimeta.settings import Settings
from insights_library import PLANTED_LORA, PLANTED_TOKEN, Library, build_library


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Library:
    made = build_library(tmp_path_factory.mktemp("insights-api") / "images.db", seed=7)
    ids = sorted(made.tokens)
    with closing(db.connect(made.path)) as conn, db.transaction(conn):
        conn.execute(
            "INSERT INTO kv (image_id, key, value) SELECT id, 'scheduler_norm',"
            " CASE WHEN id % 3 = 0 THEN 'karras' ELSE 'normal' END FROM images"
        )
        # Picks and rejects of the user (every 5th image) and of aimeta cull (every 7th).
        conn.executemany(
            "INSERT INTO user_ratings (image_id, stars, pick, updated_at) VALUES (?, ?, ?, 'x')",
            [(ident, n % 6, (1, -1, 0)[n % 3]) for n, ident in enumerate(ids) if n % 5 == 0],
        )
        conn.executemany(
            "INSERT INTO cull_decisions (image_id, decision, decided_at) VALUES (?, ?, 'x')",
            [
                (ident, ("pick", "reject", "keep")[n % 3])
                for n, ident in enumerate(ids)
                if n % 7 == 0
            ],
        )
    return made


@pytest.fixture
def api(library: Library, make_client: Callable[..., TestClient]) -> TestClient:
    settings = dataclasses.replace(Settings(), db=library.path, host="127.0.0.1", port=5000)
    return make_client(settings)


def pipeline_rows(
    path: Path, options: list[str], rating: str, min_images: int
) -> list[dict[str, Any]]:
    """`aimeta insights --json`'s rows for the same choice (the CLI's own filter parser)."""
    within = search_filters(options)
    query = InsightQuery(DIMENSIONS, rating, min_images, within, rating_model=within.rating_model)
    with closing(db.open_existing(path, readonly=True)) as conn:
        return insights(conn, query).records()


# (aimeta search options, the same filters as query parameters of the library API)
FILTERS = [
    ([], []),
    (["--model", "ckpt_a"], [("model", "ckpt_a")]),
    (
        ["--lora", "lora_1", "--not-token", "token 07"],
        [("lora", "lora_1"), ("not_token", "token 07")],
    ),
    (
        ["--sampler", "ddim", "--generator", "comfyui"],
        [("sampler", "ddim"), ("generator", "comfyui")],
    ),
]


@pytest.mark.parametrize("rating", ["ai", "pick"])
@pytest.mark.parametrize(("options", "params"), FILTERS, ids=lambda f: str(f))
def test_rows_equal_the_pipeline_and_filters_select_each_rows_images(
    api: TestClient,
    library: Library,
    options: list[str],
    params: list[tuple[str, str]],
    rating: str,
) -> None:
    min_images = 3
    asked = [*params, *(("by", name) for name in DIMENSIONS), ("rating", rating),
             ("min_images", str(min_images))]  # fmt: skip
    answer = api.get("/api/insights", params=asked)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    expected = pipeline_rows(library.path, options, rating, min_images)
    assert body["baseline"]["images"] == expected[0]["images"]
    assert body["baseline"]["mean"] == pytest.approx(expected[0]["mean"])
    rows = body["rows"]
    assert [(row["dimension"], row["value"], row["images"]) for row in rows] == [
        (row["dimension"], row["value"], row["images"]) for row in expected[1:]
    ]
    for got, want in zip(rows, expected[1:], strict=True):
        assert [got[name] for name in COLUMNS[3:]] == pytest.approx(
            [want[name] for name in COLUMNS[3:]]
        )
    shown = {row["dimension"] for row in rows}
    assert shown == set(DIMENSIONS) if not options else len(shown) >= 5
    # The grid, filtered as a click on each bar filters it, shows the bar's images.
    for row in rows[:: max(1, len(rows) // 60)]:
        grid = [*params, *(("value", text) for text in row["filter"]), ("has_rating", rating),
                ("limit", "1")]  # fmt: skip
        page = api.get("/api/images", params=grid)
        assert page.status_code == 200, page.text
        assert page.json()["total"] == row["images"], row
    # The whole selection of rated images, as the grid counts it.
    rated = api.get("/api/images", params=[*params, ("has_rating", rating), ("limit", "1")])
    assert rated.json()["total"] == body["baseline"]["images"]


def test_planted_effects_and_page_only_filters(api: TestClient, library: Library) -> None:
    body = api.get("/api/insights", params={"by": ["token", "lora"], "top": 2}).json()
    tokens = [row for row in body["rows"] if row["dimension"] == "token"]
    loras = [row for row in body["rows"] if row["dimension"] == "lora"]
    assert len(tokens) == 4 and body["values"]["token"] == 12  # best 2 and worst 2 of 12
    assert tokens[0]["value"] == PLANTED_TOKEN and tokens[0]["delta_low"] > 0
    assert loras[-1]["value"] == f"{PLANTED_LORA} @ (0.8, 1]" and loras[-1]["delta_high"] < 0
    assert loras[-1]["filter"] == [f"lora:{PLANTED_LORA} @ (0.8, 1]"]
    # A filter only the page has (not_model) narrows the selection too.
    narrowed = api.get("/api/insights", params={"by": "checkpoint", "not_model": "ckpt_c"}).json()
    assert {row["value"] for row in narrowed["rows"]} == {"ckpt_a", "ckpt_b"}
    with closing(sqlite3.connect(library.path)) as conn:
        kept = {
            i
            for (i,) in conn.execute(
                "SELECT image_id FROM kv WHERE key = 'model' AND value <> 'ckpt_c'"
            )
        }
    assert narrowed["baseline"]["images"] == len(kept & set(library.ratings))
    pair = next(
        row for row in api.get("/api/insights", params={"by": "lora+checkpoint"}).json()["rows"]
    )
    first, second = pair["value"].split(" + ")
    assert pair["filter"] == [f"lora_name:{first}", f"checkpoint:{second}"]


def test_refusals_and_the_route_is_documented(api: TestClient) -> None:
    assert api.get("/api/insights", params={"by": "colour"}).status_code == 422
    assert api.get("/api/insights", params={"rating": "stars"}).status_code == 422
    assert api.get("/api/images", params={"value": "colour:red"}).status_code == 422
    assert api.get("/api/images", params={"value": "no colon"}).status_code == 422
    assert api.get("/api/images", params={"has_rating": "stars"}).status_code == 422
    nothing = api.get("/api/insights", params={"model": "no_such_checkpoint"})
    assert nothing.status_code == 422 and "no AI rating" in nothing.json()["detail"]
    spec = api.get("/openapi.json").json()
    parameters = {p["name"] for p in spec["paths"]["/api/insights"]["get"]["parameters"]}
    assert {"by", "rating", "min_images", "model", "value", "has_rating"} <= parameters
    assert "not causes" in spec["paths"]["/api/insights"]["get"]["description"]


def test_the_page_draws_with_its_own_code_only(
    api: TestClient, tmp_path: Path, make_client: Callable[..., TestClient]
) -> None:
    page = api.get("/library")
    assert 'id="insights"' in page.text and "insights.js" in page.text
    assert "not causes" in page.text
    script = api.get("/static/insights.js")
    assert script.status_code == 200 and "createElementNS" in script.text  # SVG of its own
    for asset in ("/static/insights.js", "/static/library.js", "/static/library.css"):
        text = api.get(asset).text
        # No CDN, chart library or other outside resource (the SVG namespace is a name only).
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg\b)", text), asset
    settings = dataclasses.replace(Settings(), db=tmp_path / "none.db", host="127.0.0.1", port=5000)
    missing = make_client(settings).get("/api/insights")
    assert missing.status_code == 503 and "no database" in missing.json()["detail"]
