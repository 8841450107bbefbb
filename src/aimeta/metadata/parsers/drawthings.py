"""Draw Things (iOS/macOS): XMP with ``xmp:CreatorTool`` = ``Draw Things`` and a JSON object in
``exif:UserComment``.

The JSON keys: ``c`` prompt, ``uc`` negative prompt, ``seed``, ``steps``, ``scale`` (CFG),
``sampler``, ``model``, ``size`` (``"1024x1024"``), ``strength``, ``lora`` as a list of
``{file, weight}`` (or only ``v2.loras`` inside the full configuration ``v2``), each becoming
a ``lora`` resource with its weight; everything else (``seed_mode``, ``shift``, ``v2``, ...)
goes to extra. The XMP ``dc:description`` repeats the prompt as text and is kept raw only.
"""

from __future__ import annotations

import re
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

_SIZE = re.compile(r"\s*(\d+)\s*[x×]\s*(\d+)\s*")
_USED = {"c", "uc", "seed", "steps", "scale", "sampler", "model", "size", "lora"}


def _lora_items(data: Mapping[str, Any]) -> list[Any]:
    """The LoRA list: top-level ``lora`` (or ``loras``), else the full configuration's
    ``v2.loras``, which some versions write alone."""
    for holder in (data, data.get("v2")):
        if isinstance(holder, dict):
            for key in ("lora", "loras"):
                if isinstance(holder.get(key), list) and holder[key]:
                    return list(holder[key])
    return []


def _loras(data: Mapping[str, Any]) -> list[tuple[Any, Any]]:
    """(file name, weight) of every LoRA; an item is ``{file, weight}`` (``model``/``name``
    and ``strength`` seen too) or a bare file name."""
    found = []
    for item in _lora_items(data):
        if isinstance(item, dict):
            found.append((pick(item, "file", "model", "name"), pick(item, "weight", "strength")))
        elif isinstance(item, str):
            found.append((item, None))
    return found


def parse(fields: Mapping[str, str]) -> Record | None:
    """Draw Things XMP fields -> record; ``None`` when the XMP is not Draw Things'."""
    data = load_json_object(fields.get("xmp:usercomment"))
    creator = fields.get("xmp:creatortool") or ""
    if data is None or not ("draw things" in creator.lower() or ("c" in data and "scale" in data)):
        return None
    raw_keys = ("xmp:usercomment", "xmp:creatortool", "xmp:description")
    record = Record(
        generator="drawthings", raw={key: fields[key] for key in raw_keys if fields.get(key)}
    )
    record.prompt = text_value(data, "c")
    record.negative_prompt = text_value(data, "uc")
    record.set_param("seed", seed_text(data.get("seed")))
    record.set_param("steps", as_text(data.get("steps")))
    record.set_param("cfg", as_text(data.get("scale")))
    strength = as_float(data.get("strength"))
    if strength is not None and strength < 1:
        # 1.0 is Draw Things' text-to-image default; lower values mean image-to-image.
        record.set_param("denoise", strength)
    size = _SIZE.fullmatch(as_text(data.get("size")) or "")
    if size:
        set_size(record, size[1], size[2])
    set_sampler(record, data.get("sampler"))
    model = as_text(data.get("model"))
    record.set_param("model", model)
    add_resource(record, "checkpoint", model, source="drawthings")
    for name, weight in _loras(data):
        add_resource(record, "lora", name, weight=weight, source="drawthings")
    keep_extra(record, data, _USED)
    return record


PARSER = ParserInfo(
    name="drawthings",
    label="Draw Things",
    containers="XMP `exif:UserComment` JSON (`xmp:CreatorTool` Draw Things) in PNG/JPEG",
    parse=parse,
    source_fields=frozenset({"xmp:usercomment"}),
)
