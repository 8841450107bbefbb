"""Stability Matrix PNGs: A1111 text, parameters-json and the ComfyUI graph side by side."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aimeta.metadata.parsers import parse_fields
from aimeta.metadata.parsers.stabilitymatrix import only_additions
from aimeta.metadata.readers.fields import text_fields
from aimeta.metadata.readers.native import read_native
from aimeta.metadata.record import Record
from comfy_graphs import basic_graph
from factory import png_with_text

TYPED = "a {red|blue} car on a __weather__ street"
# What ran: the wildcards filled in and a style node's quality tags in front.
USED = "masterpiece, best quality, a red car on a rainy street"
NEGATIVE = "lowres, watermark"
REQUEST = {
    "PositivePrompt": TYPED,
    "NegativePrompt": NEGATIVE,
    "Width": 1024,
    "Height": 768,
    "Seed": 156680208700286,
    "Steps": 20,
    "CfgScale": 8.0,
    "Sampler": "Euler",
    "ModelName": "sd_xl_base_1.0",
    "ModelHash": "31e35c80fc",
}
INFOTEXT = (
    f"{TYPED}\nNegative prompt: {NEGATIVE}\nSteps: 20, Sampler: Euler, CFG scale: 8, "
    "Seed: 156680208700286, Size: 1024x768, Model hash: 31e35c80fc, Model: sd_xl_base_1.0"
)


def graph(positive: str = USED) -> dict[str, Any]:
    nodes = basic_graph()
    nodes["6"]["inputs"]["text"] = positive
    nodes["7"]["inputs"]["text"] = NEGATIVE
    return nodes


def read(tmp_path: Path, chunks: dict[str, str]) -> Record:
    path = png_with_text(tmp_path / "sm.png", chunks, chunk="iTXt")
    return parse_fields(text_fields(read_native(path)))


def test_typed_prompt_wins_over_wildcards_and_prompt_nodes(tmp_path: Path) -> None:
    record = read(
        tmp_path,
        {
            "parameters": INFOTEXT,
            "parameters-json": json.dumps(REQUEST),
            "prompt": json.dumps(graph()),
            "workflow": '{"nodes": []}',
            "smproj": '{"Version": 3}',
        },
    )
    assert record.generator == "stabilitymatrix"
    assert (record.prompt, record.negative_prompt) == (TYPED, NEGATIVE)
    assert record.extra["prompt_source"] == "parameters-json"
    assert record.extra["graph_prompt"] == USED
    params = record.params
    assert (params["seed"], params["steps"], params["model"]) == (
        "156680208700286",
        "20",
        "sd_xl_base_1.0.safetensors",
    )
    assert params["model_hash"] == "31e35c80fc"
    checkpoint = [(r.name, r.hash, r.hash_type) for r in record.resources if r.kind == "checkpoint"]
    assert checkpoint == [("sd_xl_base_1.0.safetensors", "31e35c80fc", "autov2")]
    assert record.warnings == []
    assert set(record.raw) >= {"prompt", "parameters", "parameters-json", "smproj"}


def test_a_graph_edited_by_hand_wins_with_a_warning(tmp_path: Path) -> None:
    record = read(
        tmp_path,
        {"parameters-json": json.dumps(REQUEST), "prompt": json.dumps(graph("a green bicycle"))},
    )
    assert record.prompt == "a green bicycle"
    assert record.extra["prompt_source"] == "graph"
    assert record.extra["parameters_json_prompt"] == TYPED
    assert record.warnings == [
        "stabilitymatrix: the graph's prompt differs from the parameters-json one"
    ]


def test_a1111_text_is_the_typed_prompt_without_the_json(tmp_path: Path) -> None:
    record = read(tmp_path, {"parameters": INFOTEXT, "prompt": json.dumps(graph()), "smproj": "{}"})
    assert (record.generator, record.prompt) == ("stabilitymatrix", TYPED)
    assert record.extra["prompt_source"] == "parameters"
    assert record.params["model_hash"] == "31e35c80fc"


def test_json_alone_is_a_record(tmp_path: Path) -> None:
    record = read(tmp_path, {"parameters-json": json.dumps(REQUEST)})
    assert record.generator == "stabilitymatrix"
    assert record.prompt == TYPED
    params = record.params
    assert (params["width"], params["height"], params["cfg"], params["sampler"]) == (
        "1024",
        "768",
        "8",
        "Euler",
    )
    assert [(r.kind, r.name, r.hash) for r in record.resources] == [
        ("checkpoint", "sd_xl_base_1.0", "31e35c80fc")
    ]


def test_only_additions() -> None:
    assert only_additions("a cat", "masterpiece, A  cat, detailed")
    assert only_additions("a {red|blue} car", "a blue car")
    assert only_additions("__animal__ in a field", "score_9, a fox in a field")
    assert not only_additions("a cat", "a dog")
    assert not only_additions("a {red|blue} car", "a blue bicycle")
    assert not only_additions("", "anything")
