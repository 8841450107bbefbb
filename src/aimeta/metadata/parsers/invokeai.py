"""InvokeAI: the legacy ``Dream`` command line, 2.x ``sd-metadata`` and 3.x+ ``invokeai_metadata``.

* ``Dream`` (1.x/2.x): ``"prompt [negative]" -s 50 -S 2980747362 -W 512 -H 768 -C 5 -A k_lms``.
  Text in square brackets is the negative prompt.
* ``sd-metadata`` (2.x): JSON with ``model_weights``/``model_hash`` and an ``image`` object
  (``prompt`` as a list of ``{prompt, weight}``, ``steps``, ``cfg_scale``, ``seed``, ...).
* ``invokeai_metadata`` (3.x and later): flat JSON with ``positive_prompt``/``negative_prompt``;
  models are ``{model_name, base_model}`` (3.x) or ``{key, hash, name, base}`` (4.x+, ``blake3:``
  hashes). ``invokeai_graph``/``invokeai_workflow`` are kept raw only.

Prompts use compel's ``word+``/``(words)-`` emphasis, so records say ``prompt_syntax: compel``.
"""

from __future__ import annotations

import re
import shlex
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

_RAW_KEYS = ("invokeai_metadata", "invokeai_graph", "invokeai_workflow", "sd-metadata", "dream")
_NEGATIVE = re.compile(r"\[([^\[\]]*)\]")
# Dream flags (short and long spellings) that have a normalised key.
_DREAM_FLAGS = {
    "s": "steps",
    "steps": "steps",
    "S": "seed",
    "seed": "seed",
    "W": "width",
    "width": "width",
    "H": "height",
    "height": "height",
    "C": "cfg",
    "cfg_scale": "cfg",
    "A": "sampler",
    "sampler": "sampler",
    "f": "denoise",
    "strength": "denoise",
    "m": "model",
    "model": "model",
}
_NUMBER = re.compile(r"-?\d+(\.\d*)?|-?\.\d+")


def split_negative(prompt: str) -> tuple[str, str | None]:
    """Legacy InvokeAI prompt -> (positive, negative): ``[...]`` groups are the negative."""
    negatives = [part.strip() for part in _NEGATIVE.findall(prompt) if part.strip()]
    positive = " ".join(_NEGATIVE.sub(" ", prompt).split())
    return positive, (", ".join(negatives) if negatives else None)


def parse_dream(text: str) -> tuple[str, dict[str, str]]:
    """A ``Dream`` command line -> (prompt with its ``[negative]``, {flag: value(s)})."""
    try:
        words = shlex.split(text)
    except ValueError:
        words = text.split()
    prompt_words: list[str] = []
    options: dict[str, str] = {}
    flag: str | None = None
    for word in words:
        if word.startswith("-") and len(word) > 1 and not _NUMBER.fullmatch(word):
            flag = word.lstrip("-")
            options.setdefault(flag, "")
        elif flag is None:
            prompt_words.append(word)
        else:
            options[flag] = f"{options[flag]} {word}".strip()
    return " ".join(prompt_words), options


def _from_dream(text: str, record: Record) -> None:
    prompt, options = parse_dream(text)
    record.prompt, record.negative_prompt = split_negative(prompt)
    other: dict[str, str] = {}
    for flag, value in options.items():
        key = _DREAM_FLAGS.get(flag)
        if key == "sampler":
            set_sampler(record, value)
        elif key == "seed":
            record.set_param("seed", value)
        elif key == "model":
            record.set_param("model", value)
            add_resource(record, "checkpoint", value, source="invokeai:dream")
        elif key is not None:
            record.set_param(key, value)
        else:
            other[flag] = value
    if other:
        record.extra["dream_options"] = other


def _model_parts(model: Any) -> tuple[str | None, str | None, dict[str, Any]]:
    """(name, hash, extra) of an InvokeAI model reference in any of its shapes."""
    if isinstance(model, str):
        return model, None, {}
    if not isinstance(model, dict):
        return None, None, {}
    name = as_text(pick(model, "model_name", "name"))
    model_hash = as_text(model.get("hash"))
    extra = {
        key: model[key]
        for key in ("base_model", "base", "model_type", "type", "key")
        if as_text(model.get(key))
    }
    return name, model_hash, extra


def _add_model(record: Record, kind: str, model: Any, weight: Any = None) -> str | None:
    name, model_hash, extra = _model_parts(model)
    add_resource(
        record,
        kind,
        name,
        weight=weight,
        model_hash=model_hash,
        source="invokeai_metadata",
        extra=extra,
    )
    return name


def _from_sd_metadata(data: dict[str, Any], record: Record) -> None:
    image_value = data.get("image")
    image: dict[str, Any] = image_value if isinstance(image_value, dict) else {}
    prompt = image.get("prompt")
    if isinstance(prompt, list):
        parts = [p for p in prompt if isinstance(p, dict) and isinstance(p.get("prompt"), str)]
        if len(parts) > 1:
            record.extra["prompt_blend"] = parts
        prompt = " ".join(p["prompt"] for p in parts) if parts else None
    if isinstance(prompt, str):
        record.prompt, record.negative_prompt = split_negative(prompt)
    record.set_param("steps", as_text(image.get("steps")))
    record.set_param("cfg", as_text(image.get("cfg_scale")))
    record.set_param("seed", seed_text(image.get("seed")))
    record.set_param("denoise", as_text(image.get("strength")))
    set_size(record, image.get("width"), image.get("height"))
    set_sampler(record, image.get("sampler"))
    model = as_text(data.get("model_weights"))
    model_hash = as_text(data.get("model_hash"))
    record.set_param("model", model)
    record.set_param("model_hash", model_hash)
    add_resource(record, "checkpoint", model, model_hash=model_hash, source="sd-metadata")
    keep_extra(record, data, {"image", "model_weights", "model_hash"})
    keep_extra(
        record,
        image,
        {"prompt", "steps", "cfg_scale", "seed", "strength", "width", "height", "sampler"},
    )


_METADATA_USED = {
    "positive_prompt",
    "negative_prompt",
    "width",
    "height",
    "seed",
    "cfg_scale",
    "steps",
    "scheduler",
    "model",
    "vae",
    "loras",
    "ipAdapters",
    "controlnets",
    "t2iAdapters",
    "refiner_model",
    "strength",
    "clip_skip",
    "hrf_enabled",
    "hrf_strength",
    "hrf_method",
}


def _from_invokeai_metadata(data: dict[str, Any], record: Record) -> None:
    record.prompt = text_value(data, "positive_prompt")
    record.negative_prompt = text_value(data, "negative_prompt")
    record.set_param("steps", as_text(data.get("steps")))
    record.set_param("cfg", as_text(data.get("cfg_scale")))
    record.set_param("seed", seed_text(data.get("seed")))
    record.set_param("clip_skip", as_text(data.get("clip_skip")))
    record.set_param("denoise", as_text(data.get("strength")))
    set_size(record, data.get("width"), data.get("height"))
    set_sampler(record, data.get("scheduler"))
    if data.get("hrf_enabled") is True:
        record.set_param("hires_fix", True)
        record.set_param("hires_denoise", as_text(data.get("hrf_strength")))
        record.set_param("hires_upscaler", as_text(data.get("hrf_method")))
    name, model_hash, _ = _model_parts(data.get("model"))
    record.set_param("model", name)
    record.set_param("model_hash", model_hash)
    _add_model(record, "checkpoint", data.get("model"))
    vae = _add_model(record, "vae", data.get("vae"))
    record.set_param("vae", vae)
    _add_model(record, "refiner", data.get("refiner_model"))
    for kind, key, model_keys in (
        ("lora", "loras", ("lora", "model")),
        ("ipadapter", "ipAdapters", ("ip_adapter_model", "model")),
        ("controlnet", "controlnets", ("control_model", "model")),
        ("controlnet", "t2iAdapters", ("t2i_adapter_model", "model")),
    ):
        items = data.get(key)
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict):
                model = pick(item, *model_keys)
                weight = pick(item, "weight", "control_weight")
                _add_model(record, kind, model, as_float(weight))
    keep_extra(record, data, _METADATA_USED - {"loras", "ipAdapters", "controlnets", "vae"})


def parse(fields: Mapping[str, str]) -> Record | None:
    """InvokeAI fields -> record; ``None`` when none of its keys is present."""
    present = {key: fields[key] for key in _RAW_KEYS if fields.get(key)}
    if not present:
        return None
    record = Record(generator="invokeai", raw=dict(present))
    metadata = load_json_object(fields.get("invokeai_metadata"))
    sd_metadata = load_json_object(fields.get("sd-metadata"))
    # An empty object says nothing; the older formats next to it may still say something.
    if metadata:
        _from_invokeai_metadata(metadata, record)
    elif sd_metadata:
        _from_sd_metadata(sd_metadata, record)
    elif fields.get("dream"):
        _from_dream(fields["dream"], record)
    else:
        record.warnings.append("invokeai: no readable generation metadata (kept raw)")
    record.extra["prompt_syntax"] = "compel"
    return record


PARSER = ParserInfo(
    name="invokeai",
    label="InvokeAI",
    containers=(
        "PNG text `invokeai_metadata` (3.x+, graph kept raw), `sd-metadata` (2.x), "
        "`Dream` (legacy command line)"
    ),
    parse=parse,
    source_fields=frozenset(_RAW_KEYS),
)
