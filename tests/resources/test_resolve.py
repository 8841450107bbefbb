"""resolve: mappings from map files and Civitai exports, --rewrite, --online with a local server."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from aimeta.errors import InputError
from aimeta.metadata.civitai.refs import resources_from_civitai
from aimeta.metadata.record import Record, Resource
from aimeta.metadata.resources import hash_only_name
from aimeta.pipelines import resolve
from aimeta.settings import Settings

PONY_SHA = "67ab2fd8ec439a89b3fedb15cc65f54336af163c7eb5e4f2acc98f090a29b0b3"
TWEAK_SHA = "3e8f8a3a5f8c0f3c1ba1ba79f2f6b6a1e4a0c6f7d6b5a4c3b2a1f0e9d8c7b6a5"
DUCK_SHA = "c0d1994c73d784a17a5b335ae8bda02dcc8dd2fc5f5a0cefa37fe9f0e2dd3bee"

Tables = Callable[[sqlite3.Connection], dict[str, list[tuple[Any, ...]]]]


def _civitai_image(store_image: Callable[..., int]) -> int:
    """An A1111-style Civitai image: its checkpoint by file name and hash, its LoRA only by
    model-version id (the `Civitai resources` list)."""
    record = Record(generator="a1111")
    record.resources = [
        Resource(
            "checkpoint", "ponyDiffusionV6XL_v6StartWithThisOne", hash="67ab2fd8ec", source="Model"
        ),
        *resources_from_civitai(
            [
                {
                    "type": "checkpoint",
                    "modelVersionId": 290640,
                    "modelName": "Pony Diffusion V6 XL",
                },
                {
                    "type": "lora",
                    "weight": 0.8,
                    "modelVersionId": 62833,
                    "modelName": "Detail Tweaker",
                },
            ]
        ),
    ]
    return store_image("civitai.png", {"parameters": "..."}, record)


def _hash_only_image(store_image: Callable[..., int]) -> int:
    record = Record(generator="a1111")
    record.resources = [
        Resource("checkpoint", hash_only_name("C0D1994C73"), hash="C0D1994C73", source="Model hash")
    ]
    return store_image("duck.png", {"parameters": "..."}, record)


MAP_CSV = (
    "version_id,model_id,kind,model_name,version_name,base_model,file_name,sha256,autov2\n"
    "290640,257749,Checkpoint,Pony Diffusion V6 XL,V6,Pony,"
    f"ponyDiffusionV6XL_v6StartWithThisOne.safetensors,{PONY_SHA},\n"
    f"62833,58390,LORA,Detail Tweaker LoRA,v1.0,SD 1.5,detailTweaker.safetensors,{TWEAK_SHA},\n"
)


def _resources(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT kind, name, weight, hash, source FROM resources ORDER BY kind, name"
    ).fetchall()


def test_without_a_mapping_nothing_changes_and_the_hint_says_how(
    conn: sqlite3.Connection, store_image: Callable[..., int], dump_tables: Tables
) -> None:
    _civitai_image(store_image)
    _hash_only_image(store_image)
    before = dump_tables(conn)
    result = resolve.run(conn, Settings(), rewrite=True)
    assert dump_tables(conn) == before
    assert (result.version_refs, result.hash_refs, result.resolvable, result.rewritten) == (
        2,
        1,
        0,
        0,
    )
    assert result.unresolved_versions == [62833, 290640]
    assert result.unresolved_hashes == ["c0d1994c73"]
    assert result.hint is not None and "--map" in result.hint and "--online" in result.hint


def test_a_csv_map_resolves_placeholders_and_rewrite_merges_into_the_model_row(
    conn: sqlite3.Connection, store_image: Callable[..., int], tmp_path: Path
) -> None:
    image_id = _civitai_image(store_image)
    map_file = tmp_path / "models.csv"
    map_file.write_text(MAP_CSV, encoding="utf-8")

    result = resolve.run(conn, Settings(), maps=[map_file])
    assert (result.imported_from_maps, result.resolvable, result.rewritten) == (2, 2, 0)
    assert result.unresolved == 0
    assert len(_resources(conn)) == 3  # not rewritten without --rewrite

    result = resolve.run(conn, Settings(), rewrite=True)
    assert (result.rewritten, result.merged) == (2, 1)
    assert _resources(conn) == [
        (
            "checkpoint",
            "ponyDiffusionV6XL_v6StartWithThisOne",
            None,
            "67ab2fd8ec",
            "Model, Civitai resources",
        ),
        ("lora", "detailTweaker", 0.8, None, "Civitai resources"),
    ]
    extra = orjson.loads(
        conn.execute(
            "SELECT extra_json FROM resources WHERE image_id = ? AND kind = 'lora'", (image_id,)
        ).fetchone()[0]
    )
    assert extra["resolved_from"] == ["modelVersionId:62833"]
    assert extra["resolved"] == {
        "version_id": 62833,
        "model_id": 58390,
        "model_name": "Detail Tweaker LoRA",
        "version_name": "v1.0",
        "base_model": "SD 1.5",
    }
    assert extra["declared_kind"] == "lora"
    merged_extra = orjson.loads(
        conn.execute(
            "SELECT extra_json FROM resources WHERE image_id = ? AND kind = 'checkpoint'",
            (image_id,),
        ).fetchone()[0]
    )
    assert merged_extra["resolved_from"] == ["modelVersionId:290640"]


def test_rewrite_twice_changes_nothing_the_second_time(
    conn: sqlite3.Connection, store_image: Callable[..., int], tmp_path: Path, dump_tables: Tables
) -> None:
    _civitai_image(store_image)
    map_file = tmp_path / "models.csv"
    map_file.write_text(MAP_CSV, encoding="utf-8")
    resolve.run(conn, Settings(), maps=[map_file], rewrite=True)
    first = dump_tables(conn)
    again = resolve.run(conn, Settings(), maps=[map_file], rewrite=True)
    assert dump_tables(conn) == first
    assert (again.version_refs, again.rewritten) == (0, 0)


def test_a_hash_only_checkpoint_gets_its_name_from_an_export_by_prefix(
    conn: sqlite3.Connection,
    store_image: Callable[..., int],
    tmp_path: Path,
    make_version: Callable[..., dict[str, Any]],
) -> None:
    _hash_only_image(store_image)
    # A /models/{id} answer saved inside another JSON document: versions nested under the model.
    version = make_version(
        130072,
        4201,
        "Checkpoint",
        "Realistic Vision",
        "realisticVisionV20_v20.safetensors",
        DUCK_SHA,
    )
    del version["modelId"], version["model"]
    export = {
        "saved": {
            "items": [
                {
                    "id": 4201,
                    "name": "Realistic Vision",
                    "type": "Checkpoint",
                    "modelVersions": [version],
                }
            ]
        }
    }
    export_file = tmp_path / "export.json"
    export_file.write_text(json.dumps(export), encoding="utf-8")

    result = resolve.run(conn, Settings(), exports=[export_file], rewrite=True)
    assert (result.imported_from_exports, result.hash_refs, result.rewritten) == (1, 1, 1)
    assert _resources(conn) == [
        ("checkpoint", "realisticVisionV20_v20", None, "c0d1994c73", "Model hash")
    ]
    stored = conn.execute(
        "SELECT model_id, kind, model_name FROM model_versions WHERE version_id = 130072"
    ).fetchone()
    assert stored == (4201, "checkpoint", "Realistic Vision")
    # the training data's hash is no model hash
    assert conn.execute(
        "SELECT COUNT(*) FROM model_hashes WHERE hash = ?", ("f" * 64,)
    ).fetchone() == (0,)


def test_a_json_map_of_local_files_without_version_ids(
    conn: sqlite3.Connection, store_image: Callable[..., int], tmp_path: Path
) -> None:
    _hash_only_image(store_image)
    map_file = tmp_path / "local.json"
    map_file.write_text(
        json.dumps(
            [{"kind": "checkpoint", "file_name": "duck_model.safetensors", "hash": DUCK_SHA}]
        ),
        encoding="utf-8",
    )
    result = resolve.run(conn, Settings(), maps=[map_file], rewrite=True)
    assert result.rewritten == 1
    assert _resources(conn)[0][:2] == ("checkpoint", "duck_model")
    assert conn.execute("SELECT version_id < 0 FROM model_versions").fetchone() == (1,)


def test_bad_map_rows_are_skipped_with_reasons(conn: sqlite3.Connection, tmp_path: Path) -> None:
    map_file = tmp_path / "models.csv"
    map_file.write_text(
        "version_id,kind,model_name,sha256\n"
        "12,lora,Good,\n"
        "x1,lora,Bad id,\n"
        "13,poses,Bad kind,\n"
        "14,lora,,\n"
        ",lora,No id or hash,\n"
        "15,lora,Bad hash,nothex\n",
        encoding="utf-8",
    )
    result = resolve.run(conn, Settings(), maps=[map_file])
    assert result.imported_from_maps == 1
    assert [problem.split(":")[0] for problem in result.map_problems] == [
        "models.csv line 3",
        "models.csv line 4",
        "models.csv line 5",
        "models.csv line 6",
        "models.csv line 7",
    ]


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("missing.csv", None, "no such file"),
        ("broken.json", "[{", "not valid JSON"),
        ("headless.csv", "1,2,3\n", "needs a header row"),
    ],
)
def test_unusable_map_files_are_input_errors(
    conn: sqlite3.Connection, tmp_path: Path, name: str, text: str | None, message: str
) -> None:
    path = tmp_path / name
    if text is not None:
        path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError, match=message):
        resolve.run(conn, Settings(), maps=[path])


def test_match_hash_uses_exact_prefix_and_short_forms(conn: sqlite3.Connection) -> None:
    with conn:
        conn.execute("INSERT INTO model_versions (version_id) VALUES (1), (2), (3)")
        conn.executemany(
            "INSERT INTO model_hashes (hash, hash_type, version_id) VALUES (?, ?, ?)",
            [
                (DUCK_SHA, "sha256", 1),
                ("1d44365e", "autov1", 2),
                ("abcdef0123", "autov2", 3),
                ("blake3:" + "9" * 64, "blake3", 3),
            ],
        )
    assert resolve.match_hash(conn, "C0D1994C73", "autov2") == 1
    assert resolve.match_hash(conn, "c0d1994c73d7", "autov3") == 1
    assert resolve.match_hash(conn, "0x" + DUCK_SHA.upper(), "swarmui_sha256") == 1
    assert resolve.match_hash(conn, "1d44365e", "autov1") == 2
    assert resolve.match_hash(conn, "c0d1994c", "autov1") is None  # legacy hash: no prefix match
    assert resolve.match_hash(conn, "abcdef0123" + "4" * 54, "sha256") == 3
    assert resolve.match_hash(conn, "blake3:" + "9" * 64, "blake3") == 3
    assert resolve.match_hash(conn, "9" * 10, "autov2") is None  # not a prefix of the BLAKE3


def test_online_looks_up_once_and_caches_found_and_not_found(
    conn: sqlite3.Connection,
    store_image: Callable[..., int],
    civitai_server: Any,
    make_version: Callable[..., dict[str, Any]],
    dump_tables: Tables,
) -> None:
    _civitai_image(store_image)
    _hash_only_image(store_image)
    civitai_server.answers["/api/v1/model-versions/62833"] = make_version(
        62833, 58390, "LORA", "Detail Tweaker LoRA", "detailTweaker.safetensors", TWEAK_SHA
    )
    civitai_server.answers["/api/v1/model-versions/by-hash/c0d1994c73"] = make_version(
        130072,
        4201,
        "Checkpoint",
        "Realistic Vision",
        "realisticVisionV20_v20.safetensors",
        DUCK_SHA,
    )
    settings = Settings(
        civitai_base_url=civitai_server.base_url, civitai_token="secret-token", civitai_rate=1000.0
    )

    result = resolve.run(conn, settings, online=True, rewrite=True)
    asked = sorted(path for path, _ in civitai_server.requests)
    assert asked == [
        "/api/v1/model-versions/290640",
        "/api/v1/model-versions/62833",
        "/api/v1/model-versions/by-hash/c0d1994c73",
    ]
    assert all(h.get("Authorization") == "Bearer secret-token" for _, h in civitai_server.requests)
    assert (result.online_requests, result.online_found, result.online_not_found) == (3, 2, 1)
    assert result.rewritten == 2
    assert result.unresolved_versions == [290640]
    assert conn.execute(
        "SELECT endpoint, key, status FROM civitai_lookups ORDER BY 1, 2"
    ).fetchall() == [
        ("by-hash", "c0d1994c73", 200),
        ("model-version", "290640", 404),
        ("model-version", "62833", 200),
    ]
    names = {row[1] for row in _resources(conn)}
    assert {"detailTweaker", "realisticVisionV20_v20", "modelVersionId:290640"} <= names

    tables = dump_tables(conn)
    again = resolve.run(conn, settings, online=True, rewrite=True)
    assert len(civitai_server.requests) == 3  # nothing asked twice, "not found" included
    assert again.online_requests == 0
    assert dump_tables(conn) == tables


def test_online_without_network_warns_and_goes_on(
    conn: sqlite3.Connection, store_image: Callable[..., int]
) -> None:
    _civitai_image(store_image)
    events: list[Any] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("no route to host", request=request)

    result = resolve.run(
        conn,
        Settings(civitai_rate=1000.0),
        online=True,
        rewrite=True,
        transport=httpx.MockTransport(refuse),
        on_event=events.append,
    )
    assert result.offline
    assert (result.online_requests, result.online_failed, result.rewritten) == (1, 1, 0)
    assert any("not reachable" in getattr(event, "message", "") for event in events)
    assert conn.execute("SELECT COUNT(*) FROM civitai_lookups").fetchone() == (0,)


def test_online_server_errors_are_not_cached(
    conn: sqlite3.Connection, store_image: Callable[..., int]
) -> None:
    _civitai_image(store_image)
    statuses = iter([500, 429])

    def busy(request: httpx.Request) -> httpx.Response:
        return httpx.Response(next(statuses), json={"error": "busy"})

    result = resolve.run(
        conn, Settings(civitai_rate=1000.0), online=True, transport=httpx.MockTransport(busy)
    )
    # 500 for the first id, 429 for the second: stop asking, remember nothing
    assert (result.online_requests, result.online_failed) == (2, 2)
    assert conn.execute("SELECT COUNT(*) FROM civitai_lookups").fetchone() == (0,)
