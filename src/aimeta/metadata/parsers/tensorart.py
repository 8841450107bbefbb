"""TensorArt: a ``generation_data`` JSON chunk next to a ComfyUI ``prompt`` graph.

``generation_data`` holds what the user asked for (``prompt``, ``negativePrompt``, ``seed``
as a string, ``steps``, ``cfgScale``, ``clipSkip``, ``width``/``height``, ``baseModel`` with
``modelFileName`` and ``hash``); it is written as UTF-8 into a Latin-1 tEXt chunk, which the
field reader repairs. TensorArt graphs use custom nodes, so the prompts and checkpoint come
from ``generation_data`` and the graph (read by the ComfyUI parser) supplies the rest; the
seed is the graph's whenever it is concrete (``generation_data`` says ``-1`` for a random one).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aimeta.metadata.parsers._values import (
    add_resource,
    as_text,
    keep_extra,
    load_json_object,
    merge_seed,
    set_size,
)
from aimeta.metadata.parsers.comfyui import comfy_graph_record
from aimeta.metadata.parsers.info import ParserInfo
from aimeta.metadata.record import Record

_USED = {"prompt", "negativePrompt", "seed", "steps", "cfgScale", "clipSkip", "width", "height"}


def _apply(data: Mapping[str, Any], record: Record) -> None:
    if isinstance(data.get("prompt"), str):
        record.prompt = data["prompt"]
    if isinstance(data.get("negativePrompt"), str):
        record.negative_prompt = data["negativePrompt"]
    for key, data_key in (("steps", "steps"), ("cfg", "cfgScale"), ("clip_skip", "clipSkip")):
        record.set_param(key, as_text(data.get(data_key)))
    # The graph's sampler holds the seed that ran; generation_data often says -1 (random).
    merge_seed(record, data.get("seed"), source="tensorart generation_data")
    set_size(record, data.get("width"), data.get("height"))
    base = data.get("baseModel")
    if isinstance(base, dict):
        name = as_text(base.get("modelFileName"))
        model_hash = as_text(base.get("hash"))
        if name:
            record.set_param("model", name)
            record.set_param("model_hash", model_hash)
            record.resources = [item for item in record.resources if item.kind != "checkpoint"]
            add_resource(
                record, "checkpoint", name, model_hash=model_hash, source="generation_data"
            )
    keep_extra(record, {f"tensorart_{key}": value for key, value in data.items()}, ())
    for key in _USED:
        record.extra.pop(f"tensorart_{key}", None)


def parse(fields: Mapping[str, str]) -> Record | None:
    """TensorArt ``generation_data`` (+ ComfyUI graph) -> record; ``None`` without it."""
    data = load_json_object(fields.get("generation_data"))
    if data is None:
        return None
    record = comfy_graph_record(fields.get("prompt"), fields.get("workflow"))
    if record is None:
        record = Record(generator="tensorart")
    record.generator = "tensorart"
    record.raw["generation_data"] = fields["generation_data"]
    _apply(data, record)
    return record


PARSER = ParserInfo(
    name="tensorart",
    label="TensorArt",
    containers="PNG text `generation_data` JSON + ComfyUI `prompt` graph (UTF-8 in tEXt repaired)",
    parse=parse,
    source_fields=frozenset({"generation_data"}),
)
