"""resources: the table rebuilt from the raw fields stored for each image, one source at a time."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from typing import Any

import pytest

from aimeta import db, events
from aimeta.pipelines import resources

Tables = Callable[[sqlite3.Connection], dict[str, list[tuple[Any, ...]]]]

A1111_ALL_SOURCES = (
    "castle, <lora:add_detail:0.5:0.3>, <lyco:myLyco:0.7>, <hypernet:hyperA:0.4>\n"
    "Negative prompt: easynegative\n"
    "Steps: 20, Sampler: Euler a, Model: sd15, Model hash: 1d44365e,"
    " VAE: vae-ft-mse-840000-ema-pruned.safetensors, VAE hash: 735e4c3a44,"
    " ADetailer model: face_yolov8n.pt,"
    ' ControlNet 0: "Module: canny, Model: control_v11p_sd15_canny [d14c016b], Weight: 1.0",'
    " AddNet Enabled: True, AddNet Module 1: LoRA, AddNet Model 1: myAddnet(abcdef123456),"
    " AddNet Weight A 1: 0.6, AddNet Weight B 1: 0.6, Hires upscaler: 4x-UltraSharp,"
    ' TI hashes: "easynegative: c74b4e810b03", Refiner: sdxl_refiner [7440042bbd]'
)


def _rows(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT kind, name, weight, weight_clip, hash FROM resources ORDER BY kind, name"
    ).fetchall()


def test_a_lora_in_prompt_lora_hashes_and_hashes_is_one_row_with_weight_and_hash(
    conn: sqlite3.Connection, store_image: Callable[..., int]
) -> None:
    store_image(
        "lora.png",
        {
            "parameters": "a photo, <lora:detailTweaker:0.8>\n"
            "Steps: 20, Model: foo, Model hash: abcdef1234,"
            ' Lora hashes: "detailTweaker: 3e8f8a3a5f8c",'
            ' Hashes: {"lora:detailTweaker": "3e8f8a3a5f8c", "model": "abcdef1234"}'
        },
    )
    result = resources.run(conn)
    assert result.by_kind == {"checkpoint": 1, "lora": 1}
    row = conn.execute(
        "SELECT name, weight, hash, hash_type, source FROM resources WHERE kind = 'lora'"
    ).fetchall()
    assert len(row) == 1
    name, weight, hash_value, hash_kind, source = row[0]
    assert (name, weight, hash_value, hash_kind) == ("detailTweaker", 0.8, "3e8f8a3a5f8c", "autov3")
    assert set(source.split(", ")) == {"prompt", "Lora hashes", "Hashes"}


def test_every_a1111_source_gives_its_row(
    conn: sqlite3.Connection, store_image: Callable[..., int]
) -> None:
    store_image("all.png", {"parameters": A1111_ALL_SOURCES})
    resources.run(conn)
    assert _rows(conn) == [
        ("checkpoint", "sd15", None, None, "1d44365e"),
        ("controlnet", "control_v11p_sd15_canny", 1.0, None, "d14c016b"),
        ("detailer", "face_yolov8n", None, None, None),
        ("embedding", "easynegative", None, None, "c74b4e810b03"),
        ("hypernetwork", "hyperA", 0.4, None, None),
        # <lora:name:te:unet>: weight is the unet strength, weight_clip the text encoder's
        ("lora", "add_detail", 0.3, 0.5, None),
        ("lora", "myAddnet", 0.6, 0.6, "abcdef123456"),
        ("lora", "myLyco", 0.7, None, None),
        ("refiner", "sdxl_refiner", None, None, "7440042bbd"),
        ("upscaler", "4x-UltraSharp", None, None, None),
        ("vae", "vae-ft-mse-840000-ema-pruned", None, None, "735e4c3a44"),
    ]
    original = conn.execute("SELECT extra_json FROM resources WHERE kind = 'vae'").fetchone()[0]
    assert json.loads(original)["original_names"] == ["vae-ft-mse-840000-ema-pruned.safetensors"]


def test_civitai_resources_in_both_forms_become_placeholders(
    conn: sqlite3.Connection, store_image: Callable[..., int]
) -> None:
    resources_json = json.dumps(
        [
            {"type": "checkpoint", "modelVersionId": 290640, "modelName": "Pony Diffusion V6 XL"},
            {"type": "lora", "weight": 0.8, "modelVersionId": 62833},
            {"air": "urn:air:sdxl:embedding:civitai:7808@9208", "weight": 1},
        ]
    )
    store_image(
        "civitai.jpeg",
        {"usercomment": f"a cat\nSteps: 25, Seed: 1, Civitai resources: {resources_json}"},
    )
    resources.run(conn)
    rows = conn.execute(
        "SELECT kind, name, weight, json_extract(extra_json, '$.declared_kind')"
        " FROM resources ORDER BY name"
    ).fetchall()
    assert rows == [
        ("resource_ref", "modelVersionId:290640", None, "checkpoint"),
        ("resource_ref", "modelVersionId:62833", 0.8, "lora"),
        ("resource_ref", "modelVersionId:9208", 1.0, "embedding"),
    ]
    view = conn.execute(
        "SELECT checkpoints, loras, embeddings FROM v_images_with_resources"
    ).fetchone()
    assert view == (
        "Pony Diffusion V6 XL [modelVersionId:290640]",
        "modelVersionId:62833:0.8",
        "modelVersionId:9208:1.0",
    )


def test_civitai_comfyui_jpeg_airs_and_extra_metadata_are_one_row_per_model(
    conn: sqlite3.Connection, store_image: Callable[..., int]
) -> None:
    graph = {
        "3": {
            "class_type": "KSampler",
            "inputs": {
                "seed": 5,
                "steps": 20,
                "cfg": 7,
                "sampler_name": "euler",
                "scheduler": "normal",
                "denoise": 1,
                "model": ["4", 0],
                "positive": ["6", 0],
                "negative": ["7", 0],
                "latent_image": ["5", 0],
            },
        },
        "4": {
            "class_type": "CheckpointLoaderSimple",
            "inputs": {"ckpt_name": "urn:air:sdxl:checkpoint:civitai:101055@128078"},
        },
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["4", 1]}},
    }
    document = {
        **graph,
        "extra": {
            "airs": [
                "urn:air:sdxl:checkpoint:civitai:101055@128078",
                "urn:air:sdxl:lora:civitai:12345@67890",
            ]
        },
        "extraMetadata": json.dumps(
            {"prompt": "a cat", "resources": [{"modelVersionId": 67890, "strength": 0.65}]}
        ),
    }
    store_image("civitai.jpeg", {"usercomment": json.dumps(document)})
    resources.run(conn)
    rows = conn.execute(
        "SELECT kind, name, weight, json_extract(extra_json, '$.declared_kind') FROM resources"
        " ORDER BY name"
    ).fetchall()
    assert rows == [
        ("resource_ref", "modelVersionId:128078", None, "checkpoint"),
        ("resource_ref", "modelVersionId:67890", 0.65, "lora"),
    ]


def test_comfyui_loader_nodes_and_embeddings_in_prompts(
    conn: sqlite3.Connection, store_image: Callable[..., int]
) -> None:
    graph = {
        "3": {
            "class_type": "KSampler",
            "inputs": {
                "seed": 1,
                "steps": 20,
                "cfg": 7,
                "sampler_name": "euler",
                "scheduler": "normal",
                "denoise": 1,
                "model": ["10", 0],
                "positive": ["6", 0],
                "negative": ["7", 0],
                "latent_image": ["5", 0],
            },
        },
        "4": {
            "class_type": "CheckpointLoaderSimple",
            "inputs": {"ckpt_name": "sdxl\\juggernautXL_v9.safetensors"},
        },
        "10": {
            "class_type": "LoraLoader",
            "inputs": {
                "lora_name": "styles/pixelArt.safetensors",
                "strength_model": 0.7,
                "strength_clip": 0.5,
                "model": ["4", 0],
                "clip": ["4", 1],
            },
        },
        "5": {
            "class_type": "EmptyLatentImage",
            "inputs": {"width": 512, "height": 512, "batch_size": 1},
        },
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a castle", "clip": ["10", 1]}},
        "7": {
            "class_type": "CLIPTextEncode",
            "inputs": {"text": "embedding:easynegative.pt, blurry", "clip": ["10", 1]},
        },
        "11": {"class_type": "VAELoader", "inputs": {"vae_name": "sdxl_vae.safetensors"}},
        "12": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": "4x-UltraSharp.pth"}},
        "13": {
            "class_type": "ControlNetLoader",
            "inputs": {"control_net_name": "control_v11p_sd15_canny.pth"},
        },
    }
    store_image("comfy.png", {"prompt": json.dumps(graph)})
    resources.run(conn)
    assert _rows(conn) == [
        ("checkpoint", "juggernautXL_v9", None, None, None),
        ("controlnet", "control_v11p_sd15_canny", None, None, None),
        ("embedding", "easynegative", None, None, None),
        ("lora", "pixelArt", 0.7, 0.5, None),
        ("upscaler", "4x-UltraSharp", None, None, None),
        ("vae", "sdxl_vae", None, None, None),
    ]


def test_rebuild_is_batched_idempotent_and_leaves_kv_and_tokens_alone(
    conn: sqlite3.Connection, store_image: Callable[..., int], dump_tables: Tables
) -> None:
    for number in range(5):
        store_image(
            f"{number}.png",
            {
                "parameters": f"cat <lora:l{number}:0.5>\n"
                "Steps: 20, Sampler: Euler, Seed: 1, Model: m"
            },
        )
    conn.execute("INSERT INTO kv (image_id, key, value) SELECT id, 'note', 'kept' FROM images")
    seen: list[events.Event] = []
    result = resources.run(conn, batch_size=2, on_event=seen.append)
    assert result.images == 5
    assert result.by_kind == {"checkpoint": 5, "lora": 5}
    assert [e.advance for e in seen if isinstance(e, events.Progress)] == [2, 2, 1]
    first = dump_tables(conn)
    assert len([row for row in first["kv"] if row[1] == "note"]) == 5
    resources.run(conn, batch_size=3)
    assert dump_tables(conn) == first


def test_an_image_whose_stored_fields_are_broken_is_reported_and_the_run_goes_on(
    conn: sqlite3.Connection, store_image: Callable[..., int]
) -> None:
    store_image("good.png", {"parameters": "cat\nSteps: 20, Sampler: Euler, Seed: 1, Model: m"})
    bad = store_image(
        "bad.png", {"parameters": "dog\nSteps: 20, Sampler: Euler, Seed: 1, Model: n"}
    )
    conn.execute("UPDATE images SET raw_json = '[1, 2' WHERE id = ?", (bad,))
    result = resources.run(conn)
    assert result.images == 2
    assert [path for path, _ in result.failures] == ["/images/bad.png"]
    assert conn.execute("SELECT path, stage FROM errors").fetchall() == [
        ("/images/bad.png", "resources")
    ]
    assert _rows(conn) == [("checkpoint", "m", None, None, None)]
    conn.execute(
        "UPDATE images SET raw_json = ? WHERE id = ?",
        ('{"parameters": "x\\nSteps: 20, Sampler: Euler, Model: n"}', bad),
    )
    resources.run(conn)
    assert conn.execute("SELECT COUNT(*) FROM errors").fetchone() == (0,)


def test_missing_database_is_an_error(tmp_path: Any) -> None:
    from aimeta.errors import DatabaseError

    with pytest.raises(DatabaseError, match="run `aimeta ingest`"):
        db.open_existing(tmp_path / "nothing.db")
