"""Stability Matrix (Inference): PNG text chunks ``parameters`` (A1111-style text),
``parameters-json`` (``PositivePrompt``, ``NegativePrompt``, ``Width``, ``Height``, ``Seed``,
``Steps``, ``CfgScale``, ``Sampler``, ``ModelName``, ``ModelHash``), ``smproj`` (the project,
kept raw) and the ComfyUI ``prompt``/``workflow`` graph its ComfyUI backend ran.

The graph says what ran; the JSON says what the user typed. Their prompts differ when a
wildcard was filled in (``{red|blue}``, ``__colour__``) or a prompt node added words (a style
prefix, quality tags): the typed text is then the prompt (it is what the user searches for and
reuses), and the graph's text is kept in ``extra["graph_prompt"]``. When they differ otherwise
(the graph was edited by hand), the graph's text wins and a warning says so.
``extra["prompt_source"]`` names the winner: ``parameters-json``, ``parameters`` (the A1111
text, when there is no JSON) or ``graph``. The model hash (which the graph lacks) is kept as
``model_hash`` and on the checkpoint resource.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from aimeta.metadata.parsers._values import (
    add_resource,
    as_text,
    load_json_object,
    seed_text,
    set_sampler,
    set_size,
)
from aimeta.metadata.parsers.a1111 import parse_infotext
from aimeta.metadata.parsers.comfyui import comfy_graph_record
from aimeta.metadata.parsers.info import ParserInfo
from aimeta.metadata.record import Record
from aimeta.metadata.resources import hash_type

_JSON_FIELD = "parameters-json"
# Wildcard syntax a prompt may hold before it is filled in: {a|b} choices, __name__ files.
_WILDCARD = re.compile(r"\{[^{}]*\|[^{}]*\}|__[\w./-]+__")


def _typed(fields: Mapping[str, str]) -> tuple[dict[str, Any], str | None]:
    """(the user's request as a dict with the JSON's keys, where it came from)."""
    data = load_json_object(fields.get(_JSON_FIELD))
    if data is not None:
        return data, _JSON_FIELD
    infotext = parse_infotext(fields.get("parameters") or "")
    if infotext is None:
        return {}, None
    request: dict[str, Any] = {
        "PositivePrompt": infotext.prompt,
        "NegativePrompt": infotext.negative_prompt,
        "ModelName": infotext.params.get("model"),
        "ModelHash": infotext.params.get("model_hash"),
    }
    return request, "parameters"


def only_additions(typed: str, used: str) -> bool:
    """True when ``used`` is ``typed`` with wildcards filled in and/or words added around or
    between its parts (prompt nodes), compared without case and spacing differences."""
    typed_norm, used_norm = _normalise(typed), _normalise(used)
    if not typed_norm:
        return False
    if typed_norm in used_norm:
        return True
    parts = [re.escape(part) for part in _WILDCARD.split(typed_norm)]
    pattern = ".*?".join(parts)
    return re.search(pattern, used_norm, re.DOTALL) is not None and len(parts) > 1


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def _choose_prompt(
    record: Record, graph_text: str | None, typed_text: str | None, source: str, side: str
) -> str | None:
    """The prompt to store for one side (``prompt`` or ``negative_prompt``)."""
    if not typed_text or not typed_text.strip():
        return graph_text
    if not graph_text:
        record.extra.setdefault("prompt_source", source)
        return typed_text.strip()
    if _normalise(graph_text) == _normalise(typed_text):
        return graph_text
    if only_additions(typed_text, graph_text):
        record.extra[f"graph_{side}"] = graph_text
        record.extra.setdefault("prompt_source", source)
        return typed_text.strip()
    record.warnings.append(f"stabilitymatrix: the graph's {side} differs from the {source} one")
    record.extra[f"{source.replace('-', '_')}_{side}"] = typed_text
    return graph_text


def _fill_without_graph(record: Record, request: Mapping[str, Any]) -> None:
    record.set_param("seed", seed_text(request.get("Seed")))
    record.set_param("steps", as_text(request.get("Steps")))
    record.set_param("cfg", as_text(request.get("CfgScale")))
    set_sampler(record, request.get("Sampler"))
    set_size(record, request.get("Width"), request.get("Height"))


def _keep_model_hash(record: Record, request: Mapping[str, Any]) -> None:
    model_hash = as_text(request.get("ModelHash"))
    if model_hash is None:
        return
    record.params.setdefault("model_hash", model_hash)
    checkpoints = [r for r in record.resources if r.kind == "checkpoint"]
    name = as_text(request.get("ModelName")) or ""
    matching = [r for r in checkpoints if name and name.lower() in r.name.lower()] or checkpoints
    if matching and matching[0].hash is None:
        matching[0].hash, matching[0].hash_type = model_hash, hash_type(model_hash)
    elif not checkpoints:
        add_resource(record, "checkpoint", name, model_hash=model_hash, source="Stability Matrix")


def parse(fields: Mapping[str, str]) -> Record | None:
    """Stability Matrix chunks -> a ``stabilitymatrix`` record; ``None`` without its
    ``parameters-json`` or ``smproj`` marker."""
    if _JSON_FIELD not in fields and "smproj" not in fields:
        return None
    request, source = _typed(fields)
    graph = comfy_graph_record(fields.get("prompt"), fields.get("workflow"))
    if graph is None and source is None:
        return None
    record = graph or Record(generator="stabilitymatrix")
    record.generator = "stabilitymatrix"
    for key in (_JSON_FIELD, "parameters", "smproj"):
        if fields.get(key):
            record.raw[key] = fields[key]
    if graph is None:
        _fill_without_graph(record, request)
        record.prompt = as_text(request.get("PositivePrompt"))
        record.negative_prompt = as_text(request.get("NegativePrompt"))
        record.set_param("model", as_text(request.get("ModelName")))
        record.extra["prompt_source"] = source
    elif source is not None:
        record.prompt = _choose_prompt(
            record, record.prompt, as_text(request.get("PositivePrompt")), source, "prompt"
        )
        record.negative_prompt = _choose_prompt(
            record,
            record.negative_prompt,
            as_text(request.get("NegativePrompt")),
            source,
            "negative_prompt",
        )
        record.extra.setdefault("prompt_source", "graph")
    _keep_model_hash(record, request)
    return record


PARSER = ParserInfo(
    name="stabilitymatrix",
    label="Stability Matrix (Inference)",
    containers=(
        "PNG text `parameters-json` + `parameters` (A1111-style) + ComfyUI `prompt`/`workflow`"
        " graph (+ `smproj` kept raw)"
    ),
    parse=parse,
    source_fields=frozenset({_JSON_FIELD, "smproj"}),
)
