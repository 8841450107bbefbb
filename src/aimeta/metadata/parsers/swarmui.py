"""SwarmUI (and StableSwarmUI): ``sui_image_params`` JSON.

Found in the PNG ``parameters`` chunk or the EXIF UserComment of JPEG/WebP, pretty-printed or
not, with values that may be strings (``"seed": "42"``). ``sui_extra_data`` (dates, timings,
original prompts) goes to extra; ``sui_models`` gives model hashes. When the PNG also carries a
ComfyUI ``prompt``/``workflow`` (Swarm generates through ComfyUI), Swarm's parameters are what
the user asked for, so they win and the graph is kept raw only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aimeta.metadata.parsers._values import (
    add_resource,
    as_float,
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
from aimeta.metadata.resources import normalize_name

_SOURCES = ("parameters", "usercomment", "xmp:usercomment")
_USED = {
    "prompt",
    "negativeprompt",
    "seed",
    "steps",
    "cfgscale",
    "width",
    "height",
    "model",
    "sampler",
    "scheduler",
    "vae",
    "loras",
    "loraweights",
    "clipstopatlayer",
    "refinermodel",
    "refinercontrolpercentage",
    "refinercontrol",
    "refinerupscale",
    "refinerupscalemethod",
    "initimagecreativity",
}


def _model_hashes(models: Any) -> dict[tuple[str, str], str]:
    """{(param, normalised lower-case name): hash} from ``sui_models``."""
    hashes: dict[tuple[str, str], str] = {}
    for item in models if isinstance(models, list) else []:
        if not isinstance(item, dict):
            continue
        name, param, model_hash = (as_text(item.get(key)) for key in ("name", "param", "hash"))
        if name and param and model_hash:
            hashes[(param.lower(), normalize_name(name).lower())] = model_hash
    return hashes


def _hash_for(hashes: Mapping[tuple[str, str], str], param: str, name: str) -> str | None:
    return hashes.get((param, normalize_name(name).lower()))


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    if isinstance(value, str) and value.strip():
        return [part.strip() for part in value.split(",")]
    return []


def _add_loras(record: Record, params: Mapping[str, Any], hashes: Mapping[Any, str]) -> None:
    names = _as_list(params.get("loras"))
    weights = _as_list(params.get("loraweights"))
    for index, name in enumerate(names):
        name_text = as_text(name)
        if not name_text:
            continue
        weight = weights[index] if index < len(weights) else None
        add_resource(
            record,
            "lora",
            name_text,
            weight=weight,
            model_hash=_hash_for(hashes, "loras", name_text),
            source="sui_image_params",
        )


def _apply(params: dict[str, Any], document: dict[str, Any], record: Record) -> None:
    record.prompt = text_value(params, "prompt")
    record.negative_prompt = text_value(params, "negativeprompt")
    record.set_param("seed", seed_text(params.get("seed")))
    record.set_param("steps", as_text(params.get("steps")))
    record.set_param("cfg", as_text(params.get("cfgscale")))
    record.set_param("denoise", as_text(params.get("initimagecreativity")))
    clip = as_float(params.get("clipstopatlayer"))
    # Swarm counts CLIP layers from the end as negatives (-2), A1111's clip skip is positive (2).
    record.set_param("clip_skip", int(abs(clip)) if clip else None)
    set_size(record, params.get("width"), params.get("height"))
    set_sampler(record, params.get("sampler"), params.get("scheduler"))
    hashes = _model_hashes(document.get("sui_models"))
    model = as_text(params.get("model"))
    model_hash = _hash_for(hashes, "model", model) if model else None
    record.set_param("model", model)
    record.set_param("model_hash", model_hash)
    add_resource(record, "checkpoint", model, model_hash=model_hash, source="sui_image_params")
    vae = as_text(params.get("vae"))
    record.set_param("vae", vae)
    add_resource(
        record,
        "vae",
        vae,
        model_hash=_hash_for(hashes, "vae", vae) if vae else None,
        source="sui_image_params",
    )
    refiner = as_text(params.get("refinermodel"))
    add_resource(
        record,
        "refiner",
        refiner,
        model_hash=_hash_for(hashes, "refinermodel", refiner) if refiner else None,
        source="sui_image_params",
    )
    upscale = as_float(params.get("refinerupscale"))
    if upscale and upscale != 1:
        record.set_param("hires_upscale", upscale)
        record.set_param("hires_upscaler", as_text(params.get("refinerupscalemethod")))
        record.set_param(
            "hires_denoise", as_text(pick(params, "refinercontrolpercentage", "refinercontrol"))
        )
    _add_loras(record, params, hashes)
    keep_extra(record, params, _USED)
    extra_data = document.get("sui_extra_data")
    if isinstance(extra_data, dict):
        record.extra["sui_extra_data"] = extra_data
    if isinstance(document.get("sui_models"), list):
        record.extra["sui_models"] = document["sui_models"]


def parse(fields: Mapping[str, str]) -> Record | None:
    """SwarmUI ``sui_image_params`` JSON -> record; ``None`` when absent."""
    for source in _SOURCES:
        document = load_json_object(fields.get(source))
        if document is None or not isinstance(document.get("sui_image_params"), dict):
            continue
        raw_keys = (source, "prompt", "workflow")
        record = Record(
            generator="swarmui", raw={key: fields[key] for key in raw_keys if fields.get(key)}
        )
        _apply(document["sui_image_params"], document, record)
        return record
    return None


PARSER = ParserInfo(
    name="swarmui",
    label="SwarmUI / StableSwarmUI",
    containers=(
        "`sui_image_params` JSON in PNG text `parameters` or JPEG/WebP EXIF UserComment "
        "(with `sui_extra_data`, `sui_models` hashes; an embedded ComfyUI graph is kept raw)"
    ),
    parse=parse,
    source_fields=frozenset(_SOURCES),
)
