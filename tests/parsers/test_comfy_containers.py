"""ComfyUI graphs outside the PNG prompt chunk: EXIF (WebP/JPEG), Civitai JPEGs, TensorArt,
and comfy-image-saver's A1111 text next to a graph. Finding the graph is tested on its own;
reading it needs the ComfyUI parser."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from aimeta.metadata.parsers import ORDER, civitai_comfy, comfyui_exif, parse_fields, tensorart
from aimeta.metadata.readers.fields import text_fields
from factory import jpeg_with_exif, png_with_text, webp_with_exif

GRAPH = {
    "3": {
        "class_type": "KSampler",
        "inputs": {
            "seed": 2**64 - 1,
            "steps": 20,
            "cfg": 7.0,
            "sampler_name": "euler",
            "scheduler": "normal",
            "denoise": 1.0,
            "model": ["4", 0],
            "positive": ["6", 0],
            "negative": ["7", 0],
            "latent_image": ["5", 0],
        },
    },
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sdxl.safetensors"}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 832, "height": 1216}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red fox", "clip": ["4", 1]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["4", 1]}},
}
WORKFLOW = {"nodes": [], "links": [], "version": 0.4}


def fields_of(path: Path) -> dict[str, str]:
    """Real ExifTool output for one file, as canonical text fields."""
    out = subprocess.run(
        ["exiftool", "-json", "-G1", "-n", "--", str(path)], capture_output=True, check=True
    ).stdout
    return text_fields(json.loads(out)[0])


def exif_cases(tmp_path: Path) -> dict[str, dict[str, str]]:
    graph, workflow = json.dumps(GRAPH), json.dumps(WORKFLOW)
    core = webp_with_exif(
        tmp_path / "core.webp", model=f"prompt:{graph}", make=f"workflow:{workflow}"
    )
    extended = jpeg_with_exif(
        tmp_path / "extended.jpg",
        image_description=f"Workflow: {workflow}",
        make=f"Prompt: {graph}",
    )
    plus = webp_with_exif(
        tmp_path / "plus.webp",
        user_comment=json.dumps({"prompt": graph, "workflow": WORKFLOW}),
        encoding="none",
    )
    return {
        name: fields_of(path)
        for name, path in (("core", core), ("extended", extended), ("plus", plus))
    }


def test_graph_is_found_in_every_exif_layout(tmp_path: Path) -> None:
    for name, fields in exif_cases(tmp_path).items():
        found, sources = comfyui_exif.find_graph(fields)
        assert json.loads(found["prompt"]) == GRAPH, name
        assert json.loads(found["workflow"]) == WORKFLOW, name
        assert sources, name
    assert comfyui_exif.find_graph({"make": "Canon", "model": "EOS R5"}) == ({}, [])
    assert comfyui_exif.find_graph({"usercomment": '{"prompt": "a plain prompt"}'}) == ({}, [])


def test_order_puts_specific_graph_formats_first() -> None:
    for name in ("swarmui", "civitai_comfy", "tensorart", "easydiffusion", "comfyui_exif"):
        assert ORDER.index(name) < ORDER.index("comfyui")
    assert ORDER.index("comfyui") < ORDER.index("a1111")


def test_markers_without_a_graph_are_not_claimed() -> None:
    assert civitai_comfy.parse({"usercomment": '{"extraMetadata": "{}"}'}) is None
    assert civitai_comfy.parse({"usercomment": json.dumps(GRAPH)}) is None
    assert tensorart.parse({"prompt": json.dumps(GRAPH)}) is None


# --- reading the graph: needs aimeta.metadata.parsers.comfyui -------------------------------------


def test_exif_graphs_are_read(tmp_path: Path) -> None:
    pytest.importorskip("aimeta.metadata.parsers.comfyui")
    for name, fields in exif_cases(tmp_path).items():
        record = parse_fields(fields)
        assert record.generator == "comfyui", name
        assert record.params["seed"] == str(2**64 - 1), name
        assert record.prompt == "a red fox", name
        assert record.extra["graph_container"].startswith("exif:"), name


def test_civitai_jpeg_graph_with_airs_and_extra_metadata(tmp_path: Path) -> None:
    pytest.importorskip("aimeta.metadata.parsers.comfyui")
    request = {
        "prompt": "a red fox",
        "negativePrompt": "blurry",
        "steps": 20,
        "cfgScale": 7,
        "seed": 2**64 - 1,
        "clipSkip": 2,
        "resources": [{"modelVersionId": 128713, "strength": 1}],
    }
    airs = ["urn:air:sdxl:checkpoint:civitai:4384@128713", "urn:air:sdxl:lora:civitai:1@2"]
    document = dict(GRAPH, extra={"airs": airs}, extraMetadata=json.dumps(request))
    path = jpeg_with_exif(tmp_path / "civitai.jpg", user_comment=json.dumps(document))
    record = parse_fields(fields_of(path))
    assert record.generator == "civitai"
    assert record.params["seed"] == str(2**64 - 1)
    assert record.params["clip_skip"] == "2"  # only the request says it
    assert record.extra["civitai_airs"] == airs
    assert record.extra["civitai_resources"] == [{"modelVersionId": 128713, "strength": 1}]


def test_tensorart_generation_data_with_mojibake_repaired(tmp_path: Path) -> None:
    pytest.importorskip("aimeta.metadata.parsers.comfyui")
    data = {
        "prompt": "#テスト, a red fox",
        "negativePrompt": "blurry",
        "seed": "18446744073709551615",
        "baseModel": {"modelFileName": "tensorart_model_v1", "hash": "ABCDEF0123"},
    }
    path = png_with_text(
        tmp_path / "tensorart.png",
        {"generation_data": json.dumps(data, ensure_ascii=False), "prompt": json.dumps(GRAPH)},
        tEXt_encoding="utf-8",
    )
    record = parse_fields(fields_of(path))
    assert record.generator == "tensorart"
    assert record.prompt == "#テスト, a red fox"
    assert record.params["seed"] == "18446744073709551615"
    assert record.params["model"] == "tensorart_model_v1"


def test_comfy_image_saver_graph_wins_over_its_a1111_text(tmp_path: Path) -> None:
    pytest.importorskip("aimeta.metadata.parsers.comfyui")
    text = (
        "unknown\nNegative prompt: unknown\nSteps: 20, Sampler: euler, CFG scale: 7.0, "
        "Seed: 0, Size: 832x1216, Model: sdxl, Hashes: {}, Version: ComfyUI"
    )
    path = png_with_text(tmp_path / "saver.png", {"parameters": text, "prompt": json.dumps(GRAPH)})
    record = parse_fields(fields_of(path))
    assert record.generator == "comfyui"
    assert record.params["seed"] == str(2**64 - 1)
    assert record.prompt == "a red fox"
    assert record.raw.get("parameters") == text or record.extra.get("parameters") == text
