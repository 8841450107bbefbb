"""Hugging Face Spaces and other diffusers apps: a JSON object in the PNG ``parameters`` chunk.

The keys are the diffusers pipeline's argument names plus what the app adds: ``prompt``,
``negative_prompt``, ``num_inference_steps``, ``guidance_scale``, ``seed``, ``sampler`` (an
A1111-style name such as ``Euler a``), ``width``/``height`` or ``resolution``
(``"896 x 1152"``), ``Model`` and ``Model hash`` (or ``Model`` as an object holding both), and
``use_upscaler`` (``upscale_method``, ``upscaler_strength``, ``upscale_by``,
``new_resolution``) for a second, upscaled pass. A diffusers argument name
(``num_inference_steps`` or ``guidance_scale``) next to a text ``prompt`` marks the format;
Easy Diffusion, Fooocus and SwarmUI JSON, which share some of these names, are tried first.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from aimeta.metadata.parsers._values import (
    add_resource,
    as_text,
    keep_extra,
    load_json_object,
    pick,
    seed_text,
    set_sampler,
    set_size,
    text_value,
)
from aimeta.metadata.parsers.info import ParserInfo
from aimeta.metadata.record import Record

_MARKERS = ("num_inference_steps", "guidance_scale")
_RESOLUTION = re.compile(r"^\s*(\d+)\s*[x×*]\s*(\d+)\s*$", re.IGNORECASE)
_USED = {
    "prompt",
    "negative_prompt",
    "num_inference_steps",
    "steps",
    "guidance_scale",
    "seed",
    "sampler",
    "scheduler",
    "width",
    "height",
    "resolution",
    "Model",
    "Model hash",
    "model",
    "use_upscaler",
}


def _resolution(text: Any) -> tuple[str, str] | None:
    match = _RESOLUTION.match(text) if isinstance(text, str) else None
    return (match[1], match[2]) if match else None


def _model(data: Mapping[str, Any], record: Record) -> None:
    model = pick(data, "Model", "model")
    model_hash = data.get("Model hash")
    if isinstance(model, dict):  # {"Model": name, "Model hash": hash}
        nested: dict[str, Any] = model
        model, model_hash = nested.get("Model"), nested.get("Model hash", model_hash)
    name, hash_text = as_text(model), as_text(model_hash)
    record.set_param("model", name)
    record.set_param("model_hash", hash_text)
    add_resource(record, "checkpoint", name or hash_text, model_hash=hash_text, source="Model")


def _upscale(upscale: Any, record: Record) -> None:
    if not isinstance(upscale, dict):
        return  # null when the app ran without its upscaling pass
    record.set_param("hires_upscaler", as_text(upscale.get("upscale_method")))
    record.set_param("hires_upscale", as_text(upscale.get("upscale_by")))
    record.set_param("hires_denoise", as_text(upscale.get("upscaler_strength")))
    size = _resolution(upscale.get("new_resolution"))
    if size:
        record.set_param("hires_width", size[0])
        record.set_param("hires_height", size[1])


def parse(fields: Mapping[str, str]) -> Record | None:
    """A diffusers-app JSON ``parameters`` chunk -> record; ``None`` for anything else."""
    data = load_json_object(fields.get("parameters"))
    if data is None or not isinstance(data.get("prompt"), str):
        return None
    if not any(key in data for key in _MARKERS):
        return None
    record = Record(generator="diffusers", raw={"parameters": fields["parameters"]})
    record.prompt = text_value(data, "prompt")
    record.negative_prompt = text_value(data, "negative_prompt")
    record.set_param("steps", as_text(pick(data, "num_inference_steps", "steps")))
    record.set_param("cfg", as_text(data.get("guidance_scale")))
    record.set_param("seed", seed_text(data.get("seed")))
    set_sampler(record, data.get("sampler"), data.get("scheduler"))
    size = _resolution(data.get("resolution"))
    set_size(record, *(size or (data.get("width"), data.get("height"))))
    _model(data, record)
    _upscale(data.get("use_upscaler"), record)
    keep_extra(record, data, _USED)
    return record


PARSER = ParserInfo(
    name="diffusers",
    label="Hugging Face Spaces / diffusers apps",
    containers=(
        "PNG text `parameters` JSON with diffusers argument names "
        "(`num_inference_steps`, `guidance_scale`)"
    ),
    parse=parse,
    source_fields=frozenset({"parameters"}),
)
