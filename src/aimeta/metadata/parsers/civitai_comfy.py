"""Civitai's on-site generator: a JPEG whose EXIF UserComment holds a ComfyUI API graph plus
two extra top-level keys.

* ``extra.airs``: the AIR URNs of every model used
  (``urn:air:sdxl:lora:civitai:12345@67890``).
* ``extraMetadata``: a JSON *string* with the request as the user made it (``prompt``,
  ``negativePrompt``, ``steps``, ``cfgScale``, ``sampler``, ``seed``, ``resources`` with
  ``modelVersionId`` and ``strength``, ``transformations`` such as an upscale to
  ``upscaleWidth`` x ``upscaleHeight``, ...).

The graph is read by the ComfyUI parser (it says what ran, including hires/upscale steps);
the request fills what the graph leaves out. AIRs and resources go to ``record.extra`` under
``civitai_airs``/``civitai_resources``, from where the registry turns them into resources.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aimeta.metadata.parsers._values import (
    as_float,
    as_text,
    is_comfy_graph,
    load_json_object,
    merge_seed,
    set_sampler,
    set_size,
)
from aimeta.metadata.parsers.comfyui import comfy_graph_record
from aimeta.metadata.parsers.info import ParserInfo
from aimeta.metadata.record import Record

_REQUEST_PARAMS = (("steps", "steps"), ("cfg", "cfgScale"), ("clip_skip", "clipSkip"))


def _request(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    parsed = load_json_object(value) if isinstance(value, str) else None
    return parsed or {}


def _airs(extra: Any) -> list[str]:
    airs = extra.get("airs") if isinstance(extra, dict) else None
    return [air for air in airs if isinstance(air, str)] if isinstance(airs, list) else []


def _fill_from_request(request: Mapping[str, Any], record: Record) -> None:
    if not record.prompt and isinstance(request.get("prompt"), str):
        record.prompt = request["prompt"]
    if not record.negative_prompt and isinstance(request.get("negativePrompt"), str):
        record.negative_prompt = request["negativePrompt"]
    for key, request_key in _REQUEST_PARAMS:
        if key not in record.params:
            record.set_param(key, as_text(request.get(request_key)))
    merge_seed(record, request.get("seed"), source="civitai request")
    if "sampler" not in record.params:
        set_sampler(record, request.get("sampler"))
    if "width" not in record.params:
        set_size(record, request.get("width"), request.get("height"))
    _fill_upscale(request, record)


def _fill_upscale(request: Mapping[str, Any], record: Record) -> None:
    """Civitai's upscale pass (``transformations``: ``{"type": "upscale", "upscaleWidth",
    "upscaleHeight"}``): its size and the factor over the generated width."""
    steps = request.get("transformations")
    for step in steps if isinstance(steps, list) else []:
        if not isinstance(step, dict) or step.get("type") != "upscale":
            continue
        width, height = as_float(step.get("upscaleWidth")), as_float(step.get("upscaleHeight"))
        base = as_float(record.params.get("width"))
        record.set_param("upscale_width", as_text(step.get("upscaleWidth")))
        record.set_param("upscale_height", as_text(step.get("upscaleHeight")))
        if width and base and "upscale_factor" not in record.params:
            record.set_param("upscale_factor", round(width / base, 2))
        elif height and "upscale_factor" not in record.params:
            base_height = as_float(record.params.get("height"))
            if base_height:
                record.set_param("upscale_factor", round(height / base_height, 2))
        return


def parse(fields: Mapping[str, str]) -> Record | None:
    """A Civitai UserComment graph -> record; ``None`` when the markers are missing."""
    document = load_json_object(fields.get("usercomment"))
    if document is None or not ("extraMetadata" in document or _airs(document.get("extra"))):
        return None
    graph = {key: node for key, node in document.items() if key not in ("extra", "extraMetadata")}
    if not is_comfy_graph(graph):
        return None
    record = comfy_graph_record(json.dumps(graph)) or Record(generator="civitai")
    record.generator = "civitai"
    record.raw["usercomment"] = fields["usercomment"]
    request = _request(document.get("extraMetadata"))
    _fill_from_request(request, record)
    if request:
        record.extra["civitai_request"] = request
    resources = request.get("resources")
    if isinstance(resources, list) and resources:
        record.extra["civitai_resources"] = [item for item in resources if isinstance(item, dict)]
    airs = _airs(document.get("extra"))
    if airs:
        record.extra["civitai_airs"] = airs
    return record


PARSER = ParserInfo(
    name="civitai",
    label="Civitai generator (ComfyUI graph)",
    containers=(
        "JPEG EXIF UserComment: ComfyUI graph + `extra.airs` + `extraMetadata` JSON "
        "(A1111-style text with `Civitai resources` is read by the A1111 parser)"
    ),
    parse=parse,
    source_fields=frozenset({"usercomment"}),
)
