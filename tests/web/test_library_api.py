"""The library's JSON API against a real database made by `aimeta all`: every filter checked
against a plain reading of the tables in Python, keyset pages, the user's rating in the
database and the sidecar (read back with ExifTool), and the refusals."""

from __future__ import annotations

import dataclasses
import json
import re
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from web_helpers import TestClient

from aimeta.pipelines import all as all_pipeline
from aimeta.rating.answer import Rating
from aimeta.rating.sidecar import SidecarRating, SidecarWriter
from aimeta.settings import Settings
from darktable_xmp import MINIMAL_DARKTABLE_XMP
from library_fixture import Made, make_library, picture
from openai_server import ServerState

Image = dict[str, Any]


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Made:
    return make_library(tmp_path_factory.mktemp("library"), 30, later_from=20, plain=2)


@pytest.fixture
def make_library_client(
    make_client: Callable[..., TestClient],
) -> Callable[[Path], TestClient]:
    def build(database: Path) -> TestClient:
        settings = dataclasses.replace(Settings(), db=database, host="127.0.0.1", port=5000)
        return make_client(settings)

    return build


@pytest.fixture
def api(made: Made, make_library_client: Callable[[Path], TestClient]) -> TestClient:
    return make_library_client(made.database)


def plain_reading(database: Path) -> dict[int, Image]:
    """Each image with what the filters look at, read table by table without the API's SQL."""
    conn = sqlite3.connect(database)
    images: dict[int, Image] = {}
    for ident, path, generator, mtime in conn.execute(
        "SELECT id, path, generator, mtime_ns FROM images"
    ):
        images[ident] = {
            "path": path, "generator": generator, "mtime": mtime, "pos": set(), "neg": set(),
            "models": set(), "loras": set(), "kv": {}, "ai": {}, "user": None,
        }  # fmt: skip
    for ident, side, norm in conn.execute("SELECT image_id, side, t_norm FROM tokens"):
        images[ident][side].add(norm)
    for ident, kind, name in conn.execute("SELECT image_id, kind, name FROM resources"):
        if kind == "checkpoint":
            images[ident]["models"].add(name.lower())
        if kind == "lora":
            images[ident]["loras"].add(name.lower())
    for ident, key, value in conn.execute("SELECT image_id, key, value FROM kv"):
        images[ident]["kv"][key] = value
        if key == "model":
            images[ident]["models"].add(value.lower())
    by_path = {image["path"]: image for image in images.values()}
    for path, model, overall in conn.execute("SELECT path, model, overall FROM ratings"):
        by_path[path]["ai"][model] = overall
    for ident, stars in conn.execute("SELECT image_id, stars FROM user_ratings"):
        images[ident]["user"] = stars
    conn.close()
    return images


def every_id(api: TestClient, limit: int = 7, **params: Any) -> list[int]:
    """The ids of every page, in order, following the cursors."""
    ids: list[int] = []
    cursor = None
    for _ in range(100):
        query = {**params, "limit": limit, **({"cursor": cursor} if cursor else {})}
        response = api.get("/api/images", params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        ids += [int(item["id"]) for item in page["items"]]
        cursor = page["next"]
        if cursor is None:
            return ids
    raise AssertionError("the cursors never ended")


def prompt_words(image: Image) -> set[str]:
    return set(re.findall(r"[a-z0-9_]+", image["kv"].get("prompt", "").lower()))


FILTERS: list[tuple[dict[str, Any], Callable[[Image], bool]]] = [
    ({"token": "red hair"}, lambda i: "red hair" in i["pos"]),
    ({"token": ["masterpiece", "blue sky"]}, lambda i: {"masterpiece", "blue sky"} <= i["pos"]),
    ({"not_token": "red hair"}, lambda i: "red hair" not in i["pos"]),
    (
        {"token": "masterpiece", "not_token": "green dress"},
        lambda i: "masterpiece" in i["pos"] and "green dress" not in i["pos"],
    ),
    ({"neg_token": "lowres"}, lambda i: "lowres" in i["neg"]),
    ({"not_neg_token": "watermark"}, lambda i: "watermark" not in i["neg"]),
    ({"text": "red sky"}, lambda i: {"red", "sky"} <= prompt_words(i)),
    ({"model": "dreamshaper_8"}, lambda i: "dreamshaper_8" in i["models"]),
    ({"model": "JUGGER*"}, lambda i: any(m.startswith("jugger") for m in i["models"])),
    ({"not_model": "dreamshaper_8"}, lambda i: "dreamshaper_8" not in i["models"]),
    ({"lora": "add_detail"}, lambda i: "add_detail" in i["loras"]),
    ({"not_lora": "film_grain"}, lambda i: "film_grain" not in i["loras"]),
    ({"resource": "lora:film_grain"}, lambda i: "film_grain" in i["loras"]),
    ({"sampler": "Euler a"}, lambda i: i["kv"].get("sampler") == "Euler a"),
    ({"seed": "1007"}, lambda i: i["kv"].get("seed") == "1007"),
    ({"generator": "a1111"}, lambda i: i["generator"] == "a1111"),
    ({"min_rating": 3}, lambda i: max(i["ai"].values(), default=0) >= 3),
    ({"rating_model": "tester", "min_rating": 5}, lambda i: i["ai"].get("tester", 0) >= 5),
    (
        {"token": "masterpiece", "min_rating": 2},
        lambda i: "masterpiece" in i["pos"] and max(i["ai"].values(), default=0) >= 2,
    ),
    ({"rated": "ai"}, lambda i: bool(i["ai"])),
    ({"rated": "none"}, lambda i: not i["ai"] and i["user"] is None),
    ({"folder": "LATER"}, lambda i: "/later/" in i["path"]),
    (
        {"token": "masterpiece", "lora": "add_detail", "model": "juggernautXL", "rated": "ai"},
        lambda i: "add_detail" in i["loras"] and "juggernautxl" in i["models"] and bool(i["ai"]),
    ),
    (
        {"not_lora": "add_detail", "sampler": "DPM++ 2M", "not_token": "black sky"},
        lambda i: (
            "add_detail" not in i["loras"]
            and i["kv"].get("sampler") == "DPM++ 2M"
            and "black sky" not in i["pos"]
        ),
    ),
]


@pytest.mark.parametrize(("params", "keep"), FILTERS, ids=[json.dumps(p) for p, _ in FILTERS])
def test_each_filter_finds_what_a_plain_reading_finds(
    api: TestClient, made: Made, params: dict[str, Any], keep: Callable[[Image], bool]
) -> None:
    if params.get("folder") == "LATER":
        params = {**params, "folder": str(made.folder / "later")}
    images = plain_reading(made.database)
    expected = {ident for ident, image in images.items() if keep(image)}
    found = every_id(api, **params)

    assert len(found) == len(set(found))
    assert set(found) == expected
    assert 0 < len(expected) < len(images)  # each filter keeps some images and drops some
    total = api.get("/api/images", params={**params, "limit": 1}).json()
    assert (total["total"], total["total_exact"]) == (len(expected), True)


def test_the_orders(api: TestClient, made: Made) -> None:
    images = plain_reading(made.database)
    newest = every_id(api, sort="newest")
    assert newest == sorted(images, key=lambda i: (images[i]["mtime"], i), reverse=True)
    assert every_id(api, sort="oldest") == newest[::-1]
    assert every_id(api, sort="path") == sorted(images, key=lambda i: (images[i]["path"], i))
    ranked = every_id(api, sort="rating")
    best = [max(images[i]["ai"].values(), default=-1) for i in ranked]
    assert best == sorted(best, reverse=True)
    shuffled = every_id(api, sort="random", sort_seed=5)
    assert sorted(shuffled) == sorted(images) and shuffled not in (newest, newest[::-1])
    assert every_id(api, sort="random", sort_seed=5) == shuffled
    assert every_id(api, sort="random", sort_seed=6) != shuffled


def test_an_item_has_the_grid_fields(api: TestClient) -> None:
    item = api.get("/api/images", params={"seed": "1003"}).json()["items"][0]
    assert item["path"].endswith("img003.png")
    assert item["model"] == "juggernautXL" and item["generator"] == "a1111"
    assert (item["width"], item["height"]) == (180, 240)
    assert item["prompt"].startswith("masterpiece, (black hair:1.2)")
    assert item["rating"] == {"ai": 4, "user": None}
    assert item["thumb"] == f"/api/images/{item['id']}/thumb?size=256"


@pytest.fixture
def growing(tmp_path: Path) -> Made:
    return make_library(tmp_path, 16)


@pytest.mark.parametrize("sort", ["path", "newest", "random"])
def test_pages_visit_every_image_once_while_images_are_added(
    growing: Made, make_library_client: Callable[[Path], TestClient], sort: str
) -> None:
    api = make_library_client(growing.database)
    before = set(plain_reading(growing.database))
    seen: list[int] = []
    cursor = None
    added = 0
    while True:
        query = {"sort": sort, "limit": 3, **({"cursor": cursor} if cursor else {})}
        page = api.get("/api/images", params=query).json()
        seen += [int(item["id"]) for item in page["items"]]
        cursor = page["next"]
        if cursor is None:
            break
        # New images land before and after the cursor in every order.
        with sqlite3.connect(growing.database) as conn:
            for name in (f"a{added:03d}.png", f"z{added:03d}.png"):
                ident = 10**17 + added * 7_919 + len(name) + (0 if name[0] == "a" else 10**16)
                conn.execute(
                    "INSERT INTO images (id, key, path, file_name, generator, mtime_ns)"
                    " VALUES (?, ?, ?, ?, 'none', ?)",
                    (
                        ident,
                        f"new/{name}",
                        f"/new/{name}",
                        name,
                        added * (10**18 if name[0] == "z" else 1),
                    ),
                )
            added += 1

    assert len(seen) == len(set(seen))  # no image twice
    assert before <= set(seen)  # every image that was there at the start
    assert added >= 4


def sidecar_tags(image: Path) -> dict[str, Any]:
    done = subprocess.run(
        ["exiftool", "-j", "-n", "-struct", "-XMP:all", str(image.with_name(image.name + ".xmp"))],
        capture_output=True,
        text=True,
        check=True,
    )
    tags: dict[str, Any] = json.loads(done.stdout)[0]
    return tags


@pytest.fixture
def small(tmp_path: Path) -> Made:
    return make_library(tmp_path, 4)


@pytest.fixture
def small_api(
    small: Made, make_library_client: Callable[[Path], TestClient]
) -> Iterator[TestClient]:
    yield make_library_client(small.database)


def image_id(api: TestClient, path: Path) -> str:
    items = api.get("/api/images", params={"sort": "path"}).json()["items"]
    return next(item["id"] for item in items if item["path"] == str(path))


def test_a_rating_goes_to_the_database_and_the_sidecar(small: Made, small_api: TestClient) -> None:
    image = small.images[1]
    ident = image_id(small_api, image)

    stored = small_api.put(f"/api/images/{ident}/rating", json={"stars": 4}).json()
    assert (stored["stars"], stored["reject"], stored["sidecar"]) == (4, False, f"{image}.xmp")
    assert sidecar_tags(image)["Rating"] == 4
    assert small_api.get(f"/api/images/{ident}").json()["user_rating"]["stars"] == 4
    assert every_id(small_api, rated="user") == [int(ident)]

    small_api.put(f"/api/images/{ident}/rating", json={"reject": True})
    tags = sidecar_tags(image)
    assert (tags["Rating"], tags["Label"]) == (-1, "Red")
    user = small_api.get(f"/api/images/{ident}").json()["user_rating"]
    assert (user["stars"], user["reject"], user["label"]) == (4, True, "red")

    small_api.put(f"/api/images/{ident}/rating", json={"pick": True})
    tags = sidecar_tags(image)
    assert (tags["Rating"], tags["Label"]) == (4, "Green")
    small_api.put(f"/api/images/{ident}/rating", json={"stars": 2})
    assert small_api.get(f"/api/images/{ident}").json()["user_rating"]["pick"] is True
    assert sidecar_tags(image)["Rating"] == 2


def test_a_rating_keeps_a_darktable_sidecar_and_aimeta_rate_keeps_the_rating(
    small: Made, small_api: TestClient
) -> None:
    image = small.images[2]
    sidecar = image.with_name(image.name + ".xmp")
    sidecar.write_text(MINIMAL_DARKTABLE_XMP.format(name=image.name), encoding="utf-8")
    ident = image_id(small_api, image)
    history = sidecar_tags(image)["History"]
    assert [step["Operation"] for step in history] == ["exposure", "filmicrgb"]

    assert small_api.put(f"/api/images/{ident}/rating", json={"stars": 5}).status_code == 200

    tags = sidecar_tags(image)
    assert tags["Rating"] == 5
    assert tags["History"] == history
    assert tags["Subject"] == ["my own keyword"] and tags["History_end"] == 2
    # A later `aimeta rate` adds its own properties but leaves the user's stars alone.
    with SidecarWriter() as writer:
        rating = Rating({"impact": 1.0}, 1, ("dull",))
        writer.write(image, SidecarRating(rating, "vision-model", "", "2024-06-01T00:00:00Z"))
    tags = sidecar_tags(image)
    assert (tags["Rating"], tags["UserRating"], tags["Model"], tags["Overall"]) == (
        5, 5, "vision-model", 1,
    )  # fmt: skip
    assert tags["History"] == history
    assert sorted(tags["Subject"]) == ["dull", "my own keyword"]


def test_refusals(small: Made, small_api: TestClient) -> None:
    ident = image_id(small_api, small.images[0])
    evil = {"Origin": "http://evil.example"}
    refused = small_api.put(f"/api/images/{ident}/rating", json={"stars": 5}, headers=evil)
    assert refused.status_code == 403
    site = {"Sec-Fetch-Site": "cross-site"}
    assert (
        small_api.put(f"/api/images/{ident}/rating", json={"stars": 5}, headers=site).status_code
        == 403
    )
    assert small_api.get("/api/images", headers=evil).status_code == 403
    assert (
        small_api.get("/api/images", headers={"Host": "attacker.example:5000"}).status_code == 403
    )
    assert not small.images[0].with_name(small.images[0].name + ".xmp").exists()
    assert every_id(small_api, rated="user") == []

    unknown = "12345"
    for route in ("", "/thumb", "/file"):
        assert small_api.get(f"/api/images/{unknown}{route}").status_code == 404
    assert small_api.put(f"/api/images/{unknown}/rating", json={"stars": 1}).status_code == 404
    assert small_api.get("/api/images/not-a-number").status_code == 422
    for body in (
        {"stars": 6},
        {},
        {"stars": 1, "path": "/etc/passwd"},
        {"pick": True, "reject": True},
    ):
        assert small_api.put(f"/api/images/{ident}/rating", json=body).status_code == 422
    huge = {"stars": 1, "pad": "x" * 70_000}
    assert small_api.put(f"/api/images/{ident}/rating", json=huge).status_code == 413
    assert small_api.get("/api/images", params={"cursor": "garbage"}).status_code == 422
    assert small_api.get("/api/images", params={"sort": "size"}).status_code == 422
    assert (
        small_api.get("/api/images/" + ident + "/thumb", params={"size": 2000}).status_code == 422
    )


def test_thumb_file_and_facets(small: Made, small_api: TestClient) -> None:
    ident = image_id(small_api, small.images[0])
    thumb = small_api.get(f"/api/images/{ident}/thumb", params={"size": 100})
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert thumb.content[:2] == b"\xff\xd8"
    file = small_api.get(f"/api/images/{ident}/file")
    assert file.content == small.images[0].read_bytes()
    facets = small_api.get("/api/facets", params={"lora": "add_detail"}).json()
    assert facets["images"] == 2 and not facets["sampled"]
    assert facets["loras"] == [{"value": "add_detail", "count": 2}]
    tokens = {entry["value"]: entry["count"] for entry in facets["tokens"]}
    assert tokens["masterpiece"] == 2 and tokens["red hair"] == 1
    assert facets["ratings"] == [{"value": 1, "count": 1}, {"value": 4, "count": 1}]


def test_the_library_page_and_a_missing_database(
    tmp_path: Path, make_library_client: Callable[[Path], TestClient]
) -> None:
    api = make_library_client(tmp_path / "none.db")
    page = api.get("/library")
    assert page.status_code == 200 and "library.js" in page.text
    answer = api.get("/api/images")
    assert answer.status_code == 503 and "no database" in answer.json()["detail"]
    assert not (tmp_path / "none.db").exists()


def store_cull(database: Path, decisions: list[tuple[int, int | None, int, int, str]]) -> None:
    """Rows of cull_decisions as `aimeta cull` writes them (image, group, rank, stars, decision)."""
    with sqlite3.connect(database) as conn:
        conn.executemany(
            "INSERT INTO cull_decisions (image_id, group_id, rank, stars, decision, model,"
            " decided_at) VALUES (?, ?, ?, ?, ?, 'tester', '2026-01-01T00:00:00Z')",
            decisions,
        )


def test_items_and_the_detail_carry_the_cull_decision(small: Made, small_api: TestClient) -> None:
    ids = [int(image_id(small_api, path)) for path in small.images]
    group = ids[0]  # cull names a group after one of its images: a 63-bit id
    store_cull(
        small.database,
        [
            (ids[0], group, 1, 5, "pick"),
            (ids[1], group, 2, 2, "reject"),
            (ids[2], None, 1, 3, "keep"),
        ],
    )
    items = {item["id"]: item for item in small_api.get("/api/images").json()["items"]}
    assert items[str(ids[0])]["cull"] == {
        "group": str(group),
        "rank": 1,
        "stars": 5,
        "decision": "pick",
    }
    assert items[str(ids[1])]["cull"] == {
        "group": str(group),
        "rank": 2,
        "stars": 2,
        "decision": "reject",
    }
    assert items[str(ids[2])]["cull"] == {"group": None, "rank": 1, "stars": 3, "decision": "keep"}
    assert items[str(ids[3])]["cull"] is None
    assert small_api.get(f"/api/images/{ids[1]}").json()["cull"]["decision"] == "reject"
    assert small_api.get(f"/api/images/{ids[3]}").json()["cull"] is None


def test_the_count_follows_new_images(small: Made, small_api: TestClient) -> None:
    assert small_api.get("/api/count").json() == {"images": 4}
    picture(small.folder / "img900.png", 900)
    all_pipeline.run([small.folder], Settings(db=small.database, jobs=1))
    assert small_api.get("/api/count").json() == {"images": 5}


def test_a_selection_exports_paths_prompts_and_tokens(api: TestClient, made: Made) -> None:
    images = plain_reading(made.database)
    chosen = sorted(images)[:5]
    answer = api.post("/api/export", json={"what": "paths", "ids": [str(i) for i in chosen]})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-disposition"] == 'attachment; filename="paths.txt"'
    assert answer.text.splitlines() == sorted(images[i]["path"] for i in chosen)

    # No ids: every image matching the filters of the query string ("select all matching").
    red = [i for i, image in images.items() if "red hair" in image["pos"]]
    answer = api.post("/api/export?token=red+hair", json={"what": "prompts", "ids": None})
    assert sorted(answer.text.splitlines()) == sorted({images[i]["kv"]["prompt"] for i in red})
    answer = api.post("/api/export?token=red+hair", json={"what": "tokens", "ids": None})
    tokens = answer.text.splitlines()
    assert tokens[0] in {"masterpiece", "red hair", "portrait"}  # in every red-hair image
    assert set(tokens) == set().union(*(images[i]["pos"] for i in red))

    assert api.post("/api/export", json={"what": "files", "ids": None}).status_code == 422
    assert api.post("/api/export", json={"what": "paths", "ids": ["x"]}).status_code == 422


def test_a_selection_is_rated_by_the_model(
    small: Made,
    model_server: ServerState,
    make_settings: Callable[..., Settings],
    make_client: Callable[..., TestClient],
    wait_for_end: Callable[..., dict[str, Any]],
) -> None:
    api = make_client(make_settings(model_server.base_url, db=small.database))
    chosen = [small.images[1], small.images[2]]
    started = api.post("/api/rate", json={"ids": [image_id(api, path) for path in chosen]})
    assert started.status_code == 200, started.text
    assert started.json()["folder"] == str(small.folder)
    assert started.json()["images"] == 2
    assert wait_for_end(api)["state"] == "finished"
    assert model_server.request_count == 2
    with sqlite3.connect(small.database) as conn:
        rated = {
            path
            for (path,) in conn.execute(
                "SELECT path FROM ratings WHERE model = ?", (model_server.model_id,)
            )
        }
    assert rated == {str(path) for path in chosen}
    assert (small.images[1].with_name(small.images[1].name + ".xmp")).is_file()
    assert not (small.images[3].with_name(small.images[3].name + ".xmp")).exists()
    assert api.post("/api/rate", json={"ids": []}).status_code == 422
