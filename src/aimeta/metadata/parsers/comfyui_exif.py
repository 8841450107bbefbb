"""ComfyUI graphs stored in EXIF or XMP (WebP, JPEG, AVIF, HEIC and JPEG XL saves).

* Core ``SaveAnimatedWEBP``/``SaveWEBM``: IFD0 Model = ``prompt:{...}``, Make =
  ``workflow:{...}`` (further extra-info keys count down through the IFD0 tags).
* save-image-extended: ImageDescription = ``Workflow: {...}``, Make = ``Prompt: {...}``.
* SaveImagePlus and similar: UserComment = ``{"prompt": ..., "workflow": ...}`` without a
  charset header, the values either objects or JSON strings (also in AVIF/JPEG XL saves).
* XMP properties named ``prompt`` / ``workflow`` in any namespace (``comfy:prompt``), as
  savers for AVIF, HEIC and JPEG XL write them: fields ``xmp:prompt`` / ``xmp:workflow``.

The graph itself is read by the ComfyUI parser; this module only finds it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from aimeta.metadata.parsers._values import is_comfy_graph, load_json, load_json_object
from aimeta.metadata.parsers.comfyui import comfy_graph_record
from aimeta.metadata.parsers.info import ParserInfo
from aimeta.metadata.record import Record

_EXIF_TAGS = ("model", "make", "imagedescription", "documentname", "usercomment", "software")
_XMP_FIELDS = {"xmp:prompt": "prompt", "xmp:workflow": "workflow"}
_PREFIXED = re.compile(r"^\s*(prompt|workflow)\s*:\s*(?=[{\[])", re.IGNORECASE)


def _as_json_text(value: object) -> str | None:
    if isinstance(value, str):
        return value if load_json(value) is not None else None
    if isinstance(value, dict | list):
        return json.dumps(value)
    return None


def find_graph(fields: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """({"prompt"/"workflow": JSON text}, [EXIF tags or XMP fields they came from]) from EXIF
    and XMP fields."""
    found: dict[str, str] = {}
    sources: list[str] = []
    for source, key in _XMP_FIELDS.items():
        text = fields.get(source)
        if text and load_json(text) is not None:
            found[key] = text
            sources.append(source)
    for tag in _EXIF_TAGS:
        text = fields.get(tag)
        if not text:
            continue
        prefix = _PREFIXED.match(text)
        if prefix:
            key = prefix.group(1).lower()
            if key not in found and load_json(text[prefix.end() :]) is not None:
                found[key] = text[prefix.end() :]
                sources.append(tag)
            continue
        document = load_json_object(text) if tag == "usercomment" else None
        if document is None:
            continue
        prompt = document.get("prompt")
        prompt_text = _as_json_text(prompt)
        if prompt_text is None or not is_comfy_graph(load_json(prompt_text)):
            continue
        found.setdefault("prompt", prompt_text)
        workflow_text = _as_json_text(document.get("workflow"))
        if workflow_text:
            found.setdefault("workflow", workflow_text)
        sources.append(tag)
    return found, sources


def parse(fields: Mapping[str, str]) -> Record | None:
    """EXIF fields with a ComfyUI graph -> the ComfyUI record; ``None`` otherwise."""
    found, sources = find_graph(fields)
    if "prompt" not in found and "workflow" not in found:
        return None
    record = comfy_graph_record(found.get("prompt"), found.get("workflow"))
    if record is None:
        record = Record(generator="comfyui", warnings=["comfyui: graph in EXIF not readable"])
    for tag in sources:
        record.raw[tag] = fields[tag]
    exif = [tag for tag in sources if tag not in _XMP_FIELDS]
    container = "exif:" + ",".join(exif) if exif else "xmp"
    record.extra.setdefault("graph_container", container)
    return record


PARSER = ParserInfo(
    name="comfyui",
    label="ComfyUI (WebP/JPEG/AVIF/HEIC/JPEG XL)",
    containers=(
        "EXIF IFD0 Model `prompt:` / Make `workflow:` (core WebP save), ImageDescription "
        "`Workflow:` / Make `Prompt:` (save-image-extended), UserComment "
        '`{"prompt":…,"workflow":…}` (SaveImagePlus, AVIF/JPEG XL savers); XMP `prompt` / '
        "`workflow` properties (`comfy:prompt`)"
    ),
    parse=parse,
    source_fields=frozenset((*_EXIF_TAGS, *_XMP_FIELDS)),
)
