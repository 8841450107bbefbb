"""`aimeta resources` and `aimeta resolve` as people type them, on images read by `aimeta all`."""

from __future__ import annotations

import json
import socket
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from aimeta.cli import app
from factory import png_with_text

Tables = Callable[[sqlite3.Connection], dict[str, list[tuple[Any, ...]]]]

CIVITAI_RESOURCES = json.dumps(
    [
        {"type": "checkpoint", "modelVersionId": 290640, "modelName": "Pony Diffusion V6 XL"},
        {"type": "lora", "weight": 0.8, "modelVersionId": 62833, "modelName": "Detail Tweaker"},
    ]
)
CIVITAI_INFOTEXT = (
    "score_9, a fox in the snow, <lora:add_detail:0.4>\nNegative prompt: blurry\n"
    "Steps: 25, Sampler: DPM++ 2M, CFG scale: 6, Seed: 42, Size: 8x8,"
    f" Civitai resources: {CIVITAI_RESOURCES}, Civitai metadata: {{}}"
)
MAP_CSV = (
    "version_id,model_id,kind,model_name,version_name,base_model,file_name\n"
    "290640,257749,Checkpoint,Pony Diffusion V6 XL,V6,Pony,"
    "ponyDiffusionV6XL_v6StartWithThisOne.safetensors\n"
    "62833,58390,LORA,Detail Tweaker LoRA,v1.0,SD 1.5,detailTweaker.safetensors\n"
)


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """out/images.db made by `aimeta all` from one Civitai-style A1111 PNG."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "Input").mkdir()
    png_with_text(tmp_path / "Input" / "fox.png", {"parameters": CIVITAI_INFOTEXT})
    result = CliRunner().invoke(app, ["all", "Input", "--quiet"])
    assert result.exit_code == 0, result.output
    return tmp_path / "out" / "images.db"


def _names(database: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(database) as conn:
        return conn.execute(
            "SELECT kind, name, weight FROM resources ORDER BY kind, name"
        ).fetchall()


def test_resources_then_resolve_rewrite_twice_gives_identical_tables(
    database: Path, dump_tables: Tables
) -> None:
    Path("models.csv").write_text(MAP_CSV, encoding="utf-8")
    runner = CliRunner()
    rebuilt = runner.invoke(app, ["resources", "--db", str(database)])
    assert rebuilt.exit_code == 0, rebuilt.output
    assert "resource_ref" in rebuilt.stdout and "lora" in rebuilt.stdout
    assert _names(database) == [
        ("lora", "add_detail", 0.4),
        ("resource_ref", "modelVersionId:290640", None),
        ("resource_ref", "modelVersionId:62833", 0.8),
    ]
    resolved = runner.invoke(
        app, ["resolve", "--db", str(database), "--map", "models.csv", "--rewrite"]
    )
    assert resolved.exit_code == 0, resolved.output
    assert "imported: 2 from maps" in resolved.stdout
    assert "rewritten: 2 (0 merged into existing rows)" in resolved.stdout
    expected = [
        ("checkpoint", "ponyDiffusionV6XL_v6StartWithThisOne", None),
        ("lora", "add_detail", 0.4),
        ("lora", "detailTweaker", 0.8),
    ]
    assert _names(database) == expected
    with sqlite3.connect(database) as conn:
        first = dump_tables(conn)
        view = conn.execute("SELECT checkpoints, loras FROM v_images_search").fetchone()
    assert view == ("ponyDiffusionV6XL_v6StartWithThisOne", "add_detail:0.4, detailTweaker:0.8")

    for args in (["resources"], ["resolve", "--rewrite"]):
        again = runner.invoke(app, [*args, "--db", str(database)])
        assert again.exit_code == 0, again.output
    with sqlite3.connect(database) as conn:
        assert dump_tables(conn) == first


def test_resolve_without_a_mapping_says_how_to_provide_one(database: Path) -> None:
    before = _names(database)
    result = CliRunner().invoke(app, ["resolve", "--db", str(database), "--rewrite"])
    assert result.exit_code == 0, result.output
    assert "unresolved: 2 model versions, 0 hashes" in result.stdout
    assert "2 references are unresolved. Provide a map with --map FILE.csv" in result.stderr
    assert _names(database) == before


def test_resolve_online_against_a_local_civitai(
    database: Path, civitai_server: Any, make_version: Callable[..., dict[str, Any]]
) -> None:
    for version_id, model_id, kind, name, file_name in (
        (290640, 257749, "Checkpoint", "Pony Diffusion V6 XL", "ponyV6.safetensors"),
        (62833, 58390, "LORA", "Detail Tweaker LoRA", "detailTweaker.safetensors"),
    ):
        civitai_server.answers[f"/api/v1/model-versions/{version_id}"] = make_version(
            version_id, model_id, kind, name, file_name, f"{version_id:064x}"
        )
    args = ["resolve", "--db", str(database), "--online", "--rewrite", "--json"]
    args += ["--civitai-url", civitai_server.base_url]
    runner = CliRunner(env={"AIMETA_CIVITAI_RATE": "1000", "AIMETA_CIVITAI_TOKEN": "t0k"})
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert (answer["online_requests"], answer["online_found"], answer["rewritten"]) == (2, 2, 2)
    assert {headers["Authorization"] for _, headers in civitai_server.requests} == {"Bearer t0k"}
    assert _names(database) == [
        ("checkpoint", "ponyV6", None),
        ("lora", "add_detail", 0.4),
        ("lora", "detailTweaker", 0.8),
    ]
    # rebuilt placeholders are resolved from the cache: no new request
    assert runner.invoke(app, ["resources", "--db", str(database), "--quiet"]).exit_code == 0
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["rewritten"] == 2
    assert len(civitai_server.requests) == 2


def test_resolve_online_while_offline_warns_and_exits_0(database: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = CliRunner().invoke(
        app,
        [
            "resolve",
            "--db",
            str(database),
            "--online",
            "--civitai-url",
            f"http://127.0.0.1:{port}/api/v1",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Civitai is not reachable" in result.stderr
    assert "(Civitai not reachable)" in result.stdout


def test_resources_json_and_missing_database(tmp_path: Path, database: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["resources", "--db", str(database), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["by_kind"] == {"lora": 1, "resource_ref": 2}
    for command in ("resources", "resolve"):
        missing = runner.invoke(app, [command, "--db", str(tmp_path / "none.db")])
        assert missing.exit_code == 1
        assert missing.output.startswith("Error: no database at")
    bad_map = runner.invoke(app, ["resolve", "--db", str(database), "--map", "nope.csv"])
    assert bad_map.exit_code == 1
    assert bad_map.output.strip() == "Error: nope.csv: no such file"
