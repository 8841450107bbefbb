"""Fooocus and RuinedFooocus.

Fooocus writes its parameters either as JSON (``fooocus_scheme`` = ``fooocus``) or as
A1111-style text (``fooocus_scheme`` = ``a1111``): in the PNG ``parameters`` chunk, or for
JPEG/WebP in the EXIF UserComment (no charset header) with the scheme in MakerNote and
``Fooocus v...`` in Software. The JSON keeps the seed as a string, styles, performance,
sharpness, refiner and LoRAs as ``[[name, weight, hash]]`` (older: ``lora_combined_N`` =
``"name : weight"``).

RuinedFooocus writes flat JSON with ``"software": "RuinedFooocus"`` (``Prompt``, ``Negative``,
``cfg``, ``sampler_name``, ``base_model_name``, ...); its LoRAs are packed into strings, either
``"Loras:<name:weight>,..."`` or ``[[hash, "weight - name"]]``.
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
    seed_text,
    set_sampler,
    set_size,
    text_value,
)
from aimeta.metadata.parsers.a1111 import parse_infotext
from aimeta.metadata.parsers.info import ParserInfo
from aimeta.metadata.record import Record

_RESOLUTION = re.compile(r"\(?\s*'?(\d+)'?\s*[,x×*]\s*'?(\d+)'?\s*\)?")
_PACKED_LORA = re.compile(r"<([^<>]+?):(-?[\d.]+)>")
_WEIGHT_NAME = re.compile(r"^\s*(-?[\d.]+)\s+-\s+(.+)$")
_FOOOCUS_USED = {
    "prompt",
    "negative_prompt",
    "seed",
    "steps",
    "guidance_scale",
    "resolution",
    "sampler",
    "scheduler",
    "base_model",
    "base_model_hash",
    "refiner_model_hash",
    "clip_skip",
}
_RUINED_USED = {
    "Prompt",
    "Negative",
    "prompt",
    "seed",
    "steps",
    "cfg",
    "width",
    "height",
    "sampler_name",
    "scheduler",
    "base_model_name",
    "base_model_hash",
    "refiner_model_name",
    "denoise",
    "clip_skip",
    "loras",
}


def _source(fields: Mapping[str, str]) -> tuple[str, str, str | None] | None:
    """(field name, text, scheme) of the Fooocus parameters, or ``None``."""
    scheme = fields.get("fooocus_scheme")
    if fields.get("parameters"):
        return "parameters", fields["parameters"], scheme
    if fields.get("usercomment"):
        return "usercomment", fields["usercomment"], fields.get("makernoteunknowntext") or scheme
    return None


def _is_fooocus_json(data: Mapping[str, Any], fields: Mapping[str, str]) -> bool:
    version = as_text(data.get("version")) or ""
    software = fields.get("software") or ""
    return (
        data.get("metadata_scheme") == "fooocus"
        or version.lower().startswith("fooocus")
        or software.lower().startswith("fooocus")
        or (fields.get("fooocus_scheme") or "").strip().lower() == "fooocus"
    )


def _add_lora_items(record: Record, items: Any, source: str) -> None:
    """Fooocus ``loras``: ``[[name, weight, hash]]``, ``[name, weight]`` or ``"name : weight"``."""
    for item in items if isinstance(items, list) else []:
        name: Any = None
        weight: Any = None
        lora_hash: Any = None
        if isinstance(item, list) and item:
            name = item[0]
            weight = item[1] if len(item) > 1 else None
            lora_hash = item[2] if len(item) > 2 else None
        elif isinstance(item, str):
            name, _, weight = item.rpartition(" : ") if " : " in item else (item, "", None)
        if isinstance(name, str) and " : " in name and weight is None:
            name, _, weight = name.rpartition(" : ")
        add_resource(record, "lora", name, weight=weight, model_hash=lora_hash, source=source)


def _from_fooocus_json(data: dict[str, Any], record: Record) -> None:
    record.prompt = text_value(data, "prompt")
    record.negative_prompt = text_value(data, "negative_prompt")
    record.set_param("seed", seed_text(data.get("seed")))
    record.set_param("steps", as_text(data.get("steps")))
    record.set_param("cfg", as_text(data.get("guidance_scale")))
    record.set_param("clip_skip", as_text(data.get("clip_skip")))
    resolution = _RESOLUTION.fullmatch(as_text(data.get("resolution")) or "")
    if resolution:
        set_size(record, resolution[1], resolution[2])
    set_sampler(record, data.get("sampler"), data.get("scheduler"))
    model = as_text(data.get("base_model"))
    model_hash = as_text(data.get("base_model_hash"))
    record.set_param("model", model)
    record.set_param("model_hash", model_hash)
    add_resource(record, "checkpoint", model, model_hash=model_hash, source="fooocus")
    add_resource(
        record,
        "refiner",
        data.get("refiner_model"),
        model_hash=data.get("refiner_model_hash"),
        source="fooocus",
    )
    vae = as_text(data.get("vae"))
    if add_resource(record, "vae", vae, source="fooocus") is not None:
        record.set_param("vae", vae)
    _add_lora_items(record, data.get("loras"), "fooocus")
    combined = sorted(key for key in data if key.startswith("lora_combined_"))
    _add_lora_items(record, [data[key] for key in combined], "fooocus")
    keep_extra(record, data, _FOOOCUS_USED | set(combined))


def _add_ruined_loras(record: Record, loras: Any) -> None:
    if isinstance(loras, str):
        for name, weight in _PACKED_LORA.findall(loras):
            add_resource(record, "lora", name, weight=weight, source="ruinedfooocus")
        return
    for item in loras if isinstance(loras, list) else []:
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[1], str)):
            continue
        match = _WEIGHT_NAME.match(item[1])
        if match:
            add_resource(
                record,
                "lora",
                match[2],
                weight=match[1],
                model_hash=as_text(item[0]),
                source="ruinedfooocus",
            )


def _from_ruined_json(data: dict[str, Any], record: Record) -> None:
    record.prompt = text_value(data, "Prompt", "prompt")
    record.negative_prompt = text_value(data, "Negative")
    record.set_param("seed", seed_text(data.get("seed")))
    record.set_param("steps", as_text(data.get("steps")))
    record.set_param("cfg", as_text(data.get("cfg")))
    record.set_param("clip_skip", as_text(data.get("clip_skip")))
    record.set_param("denoise", as_text(data.get("denoise")))
    set_size(record, data.get("width"), data.get("height"))
    set_sampler(record, data.get("sampler_name"), data.get("scheduler"))
    model = as_text(data.get("base_model_name"))
    model_hash = as_text(data.get("base_model_hash"))
    record.set_param("model", model)
    record.set_param("model_hash", model_hash)
    add_resource(record, "checkpoint", model, model_hash=model_hash, source="ruinedfooocus")
    add_resource(record, "refiner", data.get("refiner_model_name"), source="ruinedfooocus")
    _add_ruined_loras(record, data.get("loras"))
    keep_extra(record, data, _RUINED_USED)
    record.extra["app"] = "RuinedFooocus"


def _from_a1111_text(text: str, record: Record) -> bool:
    """Fooocus's A1111 scheme: A1111 infotext plus Fooocus keys (``Raw prompt``,
    ``Lora weights: "name: 0.5, ..."``, Styles, Performance, Sharpness, ...)."""
    parsed = parse_infotext(text)
    if parsed is None:
        return False
    record.params.update(parsed.params)
    record.resources.extend(parsed.resources)
    record.extra.update(parsed.extra)
    record.warnings.extend(parsed.warnings)
    # The infotext prompts are the expanded ones (styles applied); the user's are "Raw".
    raw_prompt = record.params.pop("raw_prompt", None)
    raw_negative = record.params.pop("raw_negative_prompt", None)
    record.prompt = raw_prompt or parsed.prompt
    record.negative_prompt = raw_negative or parsed.negative_prompt
    if raw_prompt and parsed.prompt and parsed.prompt != raw_prompt:
        record.extra["full_prompt"] = parsed.prompt
    if raw_negative and parsed.negative_prompt and parsed.negative_prompt != raw_negative:
        record.extra["full_negative_prompt"] = parsed.negative_prompt
    for item in (record.params.get("lora_weights") or "").split(", "):
        name, _, weight = item.rpartition(": ")
        add_resource(record, "lora", name, weight=weight, source="Lora weights")
    record.extra["metadata_scheme"] = "a1111"
    return True


def _raw(fields: Mapping[str, str], field: str) -> dict[str, str]:
    raw_keys = (field, "fooocus_scheme", "makernoteunknowntext", "software")
    return {key: fields[key] for key in raw_keys if fields.get(key)}


def parse(fields: Mapping[str, str]) -> Record | None:
    """Fooocus/RuinedFooocus fields -> record; ``None`` for anything else."""
    found = _source(fields)
    if found is None:
        return None
    field, text, scheme = found
    data = load_json_object(text)
    if data is not None:
        if data.get("software") == "RuinedFooocus":
            record = Record(generator="fooocus", raw=_raw(fields, field))
            _from_ruined_json(data, record)
            return record
        if _is_fooocus_json(data, fields):
            record = Record(generator="fooocus", raw=_raw(fields, field))
            _from_fooocus_json(data, record)
            return record
        return None
    software = (fields.get("software") or "").lower()
    is_a1111_scheme = (scheme or "").strip().lower() == "a1111" and (
        field == "parameters" or software.startswith("fooocus")
    )
    if is_a1111_scheme or "Version: Fooocus" in text:
        record = Record(generator="fooocus", raw=_raw(fields, field))
        if not _from_a1111_text(text, record):
            record.warnings.append("fooocus: A1111-style text without parameters")
        return record
    return None


PARSER = ParserInfo(
    name="fooocus",
    label="Fooocus / RuinedFooocus",
    containers=(
        "PNG text `parameters` (JSON or A1111-style text) + `fooocus_scheme`; JPEG/WebP EXIF "
        "UserComment (no charset header) + MakerNote scheme; RuinedFooocus JSON `parameters`"
    ),
    parse=parse,
    source_fields=frozenset({"parameters", "usercomment"}),
)
