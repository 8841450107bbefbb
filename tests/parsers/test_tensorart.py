"""TensorArt (and the other request-plus-graph formats): a random seed in the request never
replaces the concrete seed the graph's sampler ran with."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aimeta.metadata.parsers import parse_fields
from aimeta.metadata.parsers._values import merge_seed
from aimeta.metadata.record import Record
from exif_fields import exiftool_fields as fields_of
from factory import jpeg_with_exif, png_with_text

pytest.importorskip("aimeta.metadata.parsers.comfyui")

GENERATION_DATA = {
    "prompt": "a red fox",
    "negativePrompt": "blurry",
    "seed": "-1",
    "steps": 20,
    "cfgScale": 7,
    "width": 832,
    "height": 1216,
    "baseModel": {"modelFileName": "tensorart_model_v1", "hash": "ABCDEF0123"},
}


def _graph_with_seed(seed: int) -> dict[str, object]:
    """A minimal ComfyUI API graph whose one KSampler ran with ``seed``."""
    return {
        "3": {
            "class_type": "KSampler",
            "inputs": {
                "seed": seed,
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
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "x.safetensors"}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 832, "height": 1216}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red fox", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["4", 1]}},
    }


def _tensorart(tmp_path: Path, request_seed: object, graph_seed: int) -> Record:
    data = dict(GENERATION_DATA, seed=request_seed)
    graph = _graph_with_seed(graph_seed)
    path = png_with_text(
        tmp_path / "tensorart.png",
        {"generation_data": json.dumps(data), "prompt": json.dumps(graph)},
    )
    return parse_fields(fields_of(path))


def test_the_graph_seed_wins_over_a_random_request_seed(tmp_path: Path) -> None:
    record = _tensorart(tmp_path, "-1", 987654321012)
    assert record.generator == "tensorart"
    assert record.params["seed"] == "987654321012"
    assert record.params["steps"] == "20"
    assert record.params["model"] == "tensorart_model_v1"
    assert record.warnings == []
    assert json.loads(record.raw["generation_data"])["seed"] == "-1"  # kept as written


def test_a_concrete_request_seed_fills_a_random_graph_seed(tmp_path: Path) -> None:
    record = _tensorart(tmp_path, 424242, -1)
    assert record.params["seed"] == "424242"
    assert record.warnings == []


def test_two_concrete_seeds_keep_the_graphs_and_say_so(tmp_path: Path) -> None:
    record = _tensorart(tmp_path, "111", 222)
    assert record.params["seed"] == "222"
    assert record.warnings == [
        "tensorart generation_data: seed 111 differs from the stored seed 222"
    ]


def test_civitai_request_seed_minus_one_is_no_conflict(tmp_path: Path) -> None:
    request = {"prompt": "a red fox", "seed": -1, "steps": 20}
    document = dict(
        _graph_with_seed(5150),
        extra={"airs": ["urn:air:sdxl:lora:civitai:1@2"]},
        extraMetadata=json.dumps(request),
    )
    path = jpeg_with_exif(tmp_path / "civitai.jpg", user_comment=json.dumps(document))
    record = parse_fields(fields_of(path))
    assert record.generator == "civitai"
    assert record.params["seed"] == "5150"
    assert record.warnings == []


@pytest.mark.parametrize(
    ("stored", "offered", "expected"),
    [
        (None, "-1", "-1"),  # a placeholder is kept when nothing better exists
        (None, 7, "7"),
        ("-1", 7, "7"),
        ("7", -1, "7"),
        ("7", "random", "7"),
        ("random", "8", "8"),
    ],
)
def test_merge_seed(stored: str | None, offered: object, expected: str) -> None:
    record = Record(generator="test")
    if stored is not None:
        record.params["seed"] = stored
    merge_seed(record, offered, source="test")
    assert record.params["seed"] == expected
    assert record.warnings == []
