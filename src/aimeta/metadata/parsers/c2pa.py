"""C2PA Content Credentials (ChatGPT/DALL-E, Gemini/Imagen, Adobe Firefly, signed edits).

The manifest store is read by :mod:`aimeta.metadata.readers.c2pa` into the ``c2pa_manifest``
field (a JSON summary of the active manifest). This parser stores:

* ``c2pa_generator``: the claim generator (``claim_generator``, else the first
  ``claim_generator_info`` name and version) -- the vendor's software that signed;
* ``c2pa_tool`` (and ``model``): the model or tool an action names (``softwareAgent``), the
  AI action's first;
* ``ai_generated``: ``true`` when an action declares an IPTC digital source type of trained
  algorithmic media (``trainedAlgorithmicMedia``: made by a model;
  ``compositeWithTrainedAlgorithmicMedia``: edited with one), else ``false``;
* ``digital_source_type``: that type's short name (the AI one first);
* the actions, ingredient titles and manifest count in ``extra``.

C2PA carries no prompt or settings; a file with a generator's own metadata as well is read by
that generator's parser (they come first in the registry).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aimeta.metadata.parsers._values import load_json_object
from aimeta.metadata.parsers.info import ParserInfo
from aimeta.metadata.record import Record

FIELD = "c2pa_manifest"
AI_SOURCE_TYPES = frozenset({"trainedAlgorithmicMedia", "compositeWithTrainedAlgorithmicMedia"})


def _short_type(uri: Any) -> str | None:
    """``http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia`` ->
    ``trainedAlgorithmicMedia`` (C2PA 1.x also wrote the bare code)."""
    if not isinstance(uri, str) or not uri.strip():
        return None
    return uri.rstrip("/").rpartition("/")[2]


def _claim_generator(summary: Mapping[str, Any]) -> str | None:
    generator = summary.get("claim_generator")
    if isinstance(generator, str) and generator.strip():
        return generator.strip()
    for info in summary.get("claim_generator_info") or []:
        if isinstance(info, dict) and info.get("name"):
            version = info.get("version")
            return f"{info['name']}/{version}" if version else str(info["name"])
    return None


def parse(fields: Mapping[str, str]) -> Record | None:
    """The ``c2pa_manifest`` summary -> a ``c2pa`` record; ``None`` without one."""
    summary = load_json_object(fields.get(FIELD))
    if summary is None:
        return None
    actions = [a for a in summary.get("actions") or [] if isinstance(a, dict)]
    types = [(_short_type(a.get("digital_source_type")), a) for a in actions]
    ai_actions = [action for short, action in types if short in AI_SOURCE_TYPES]
    record = Record(generator="c2pa", raw={FIELD: fields[FIELD]})
    record.set_param("c2pa_generator", _claim_generator(summary))
    tools = [a.get("software_agent") for a in (*ai_actions, *actions) if a.get("software_agent")]
    record.set_param("c2pa_tool", tools[0] if tools else None)
    # The tool is these images' model: `aimeta search --model` and the views find it there.
    record.set_param("model", tools[0] if tools else None)
    record.set_param("ai_generated", bool(ai_actions))
    named = [short for short, _ in types if short]
    ai_named = [short for short in named if short in AI_SOURCE_TYPES]
    record.set_param("digital_source_type", next(iter(ai_named or named), None))
    record.extra["c2pa"] = {
        key: summary[key]
        for key in ("source", "manifests", "active", "title", "format", "actions", "ingredients")
        if summary.get(key) not in (None, [], "")
    }
    return record


PARSER = ParserInfo(
    name="c2pa",
    label="C2PA Content Credentials (ChatGPT/DALL·E, Gemini/Imagen, Firefly, ...)",
    containers="JUMBF manifest store: PNG `caBX` chunk, JPEG APP11 (others through ExifTool)",
    parse=parse,
    source_fields=frozenset({FIELD}),
)
