"""Civitai references in image metadata: AIR URNs, resource lists and model-version ids.

Pure functions, no I/O. Images made on Civitai (and by tools that imitate it) name their models
by Civitai ids instead of file names: A1111-style infotext carries ``Civitai resources: [...]``
and ComfyUI images carry ``extra.airs`` / ``extraMetadata.resources``. A model known only by its
model-version id becomes a ``resource_ref`` placeholder named ``modelVersionId:<id>``, its
declared kind kept in ``extra['declared_kind']``; ``aimeta resolve`` later turns it into a real
resource.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from aimeta.record import Resource
from aimeta.resource_names import normalize_kind

VERSION_REF_PREFIX = "modelVersionId:"

# urn:air:{ecosystem}:{type}:{source}:{id}[@{version}][:{layer}][.{format}]. Files in the wild
# drop the "urn:" or "urn:air:" prefix, or the ecosystem and type (``civitai:12345@67890``).
_AIR = re.compile(
    r"""^(?:urn:)?(?:air:)?
        (?:(?P<ecosystem>[a-z0-9_.-]+):(?P<type>[a-z0-9_.-]+):)?
        (?P<source>[a-z0-9_.-]+):
        (?P<id>[^@:\s]+)
        (?:@(?P<version>[^:.\s]+))?
        (?::(?P<layer>[^.\s]+))?
        (?:\.(?P<format>[a-z0-9]+))?$""",
    re.IGNORECASE | re.VERBOSE,
)

# Civitai model types that are no model file taking part in generation.
_NOT_RESOURCES = frozenset({"workflows", "workflow", "wildcards", "poses", "aestheticgradient"})


@dataclass(frozen=True, slots=True)
class Air:
    """One parsed AIR. ``model_id``/``version_id`` are ints for Civitai, text for other sources
    (a Hugging Face repository name, ...)."""

    ecosystem: str | None
    type: str | None
    source: str
    model_id: int | str
    version_id: int | str | None
    layer: str | None = None
    format: str | None = None

    @property
    def kind(self) -> str | None:
        """Our resource kind for the type segment (``lycoris`` -> ``lora``), if any."""
        return kind_from_civitai_type(self.type) if self.type else None


def _int_or_text(text: str) -> int | str:
    return int(text) if text.isdigit() else text


def parse_air(text: str) -> Air | None:
    """Parse ``urn:air:sdxl:lora:civitai:12345@67890`` (and the prefix-less variants) into an
    :class:`Air`; ``None`` when the text is no AIR."""
    candidate = text.strip()
    if not candidate or len(candidate) > 500:
        return None
    match = _AIR.match(candidate)
    if match is None:
        return None
    source = match["source"].lower()
    # Without the "urn:air:" prefix and without a version, "a:b" would match anything with a
    # colon (a prompt tag, a path with a drive letter); insist on a known AIR shape then.
    has_prefix = candidate.lower().startswith(("urn:air:", "air:"))
    if not has_prefix and match["version"] is None and match["type"] is None:
        return None
    return Air(
        ecosystem=match["ecosystem"].lower() if match["ecosystem"] else None,
        type=match["type"].lower() if match["type"] else None,
        source=source,
        model_id=_int_or_text(match["id"]),
        version_id=_int_or_text(match["version"]) if match["version"] else None,
        layer=match["layer"],
        format=match["format"],
    )


def kind_from_civitai_type(civitai_type: str) -> str | None:
    """Our resource kind for a Civitai model type: Checkpoint, LORA, LoCon, LyCORIS, DoRA,
    TextualInversion/embed, Hypernetwork, VAE, Upscaler, Controlnet, ... ``None`` for types that
    are not model files (Workflows, Wildcards, Poses, ...) or unknown."""
    key = "".join(civitai_type.lower().replace("-", " ").replace("_", " ").split())
    if key in _NOT_RESOURCES:
        return None
    kind = normalize_kind(key)
    return None if kind == "resource_ref" else kind


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _version_id(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value > 0:
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def version_ref_name(version_id: int) -> str:
    """The placeholder name of a resource known only by its model-version id."""
    return f"{VERSION_REF_PREFIX}{version_id}"


def version_id_of_ref(name: str) -> int | None:
    """The model-version id in a placeholder name ``modelVersionId:<id>``, else ``None``."""
    if name.startswith(VERSION_REF_PREFIX):
        return _version_id(name[len(VERSION_REF_PREFIX) :])
    return None


def _placeholder(
    version_id: int,
    declared_type: str | None,
    weight: float | None,
    source: str,
    details: Mapping[str, Any],
) -> Resource:
    extra: dict[str, Any] = {"model_version_id": version_id}
    if declared_type:
        extra["declared_type"] = declared_type
        kind = kind_from_civitai_type(declared_type)
        if kind:
            extra["declared_kind"] = kind
    extra.update({key: value for key, value in details.items() if value not in (None, "")})
    return Resource(
        kind="resource_ref",
        name=version_ref_name(version_id),
        weight=weight,
        source=source,
        extra=extra,
    )


def resource_from_air(text: str, *, weight: float | None = None, source: str) -> Resource | None:
    """The resource an AIR names: a ``resource_ref`` placeholder for a Civitai model version
    (kind from the type segment kept in extra); for other sources a placeholder named by the
    AIR itself. ``None`` when ``text`` is no AIR."""
    air = parse_air(text)
    if air is None:
        return None
    details: dict[str, Any] = {"air": text.strip()}
    if air.ecosystem:
        details["ecosystem"] = air.ecosystem
    if air.source == "civitai" and isinstance(air.version_id, int):
        details["model_id"] = air.model_id
        return _placeholder(air.version_id, air.type, weight, source, details)
    extra: dict[str, Any] = dict(details)
    extra["air_source"] = air.source
    if air.type:
        extra["declared_type"] = air.type
        if air.kind:
            extra["declared_kind"] = air.kind
    return Resource(
        kind="resource_ref", name=text.strip(), weight=weight, source=source, extra=extra
    )


def _resource_from_item(item: Mapping[str, Any], source: str) -> Resource | None:
    weight = _number(item.get("weight", item.get("strength")))
    air_text = item.get("air")
    declared_type = item.get("type") or item.get("modelType")
    details = {
        "model_id": _version_id(item.get("modelId")),
        "model_name": item.get("modelName") or item.get("model_name"),
        "version_name": item.get("modelVersionName") or item.get("versionName"),
    }
    if isinstance(air_text, str):
        found = resource_from_air(air_text, weight=weight, source=source)
        if found is not None:
            for key, value in details.items():
                if value not in (None, ""):
                    found.extra.setdefault(key, value)
            if isinstance(declared_type, str) and "declared_type" not in found.extra:
                found.extra["declared_type"] = declared_type
                kind = kind_from_civitai_type(declared_type)
                if kind:
                    found.extra["declared_kind"] = kind
            return found
    version_id = _version_id(item.get("modelVersionId", item.get("versionId")))
    if version_id is not None:
        type_text = declared_type if isinstance(declared_type, str) else None
        return _placeholder(version_id, type_text, weight, source, details)
    # Older exports name the model and give its hash, without ids.
    name = item.get("modelName") or item.get("name")
    kind = kind_from_civitai_type(declared_type) if isinstance(declared_type, str) else None
    if isinstance(name, str) and name.strip() and kind:
        hash_value = item.get("hash")
        return Resource(
            kind=kind,
            name=name.strip(),
            weight=weight,
            hash=hash_value if isinstance(hash_value, str) and hash_value.strip() else None,
            source=source,
            extra={k: v for k, v in details.items() if k != "model_name" and v not in (None, "")},
        )
    return None


def resources_from_civitai(items: Any, *, source: str = "Civitai resources") -> list[Resource]:
    """Resources from a Civitai resource list: the A1111 ``Civitai resources`` form
    (``{"type": "lora", "weight": 0.8, "modelVersionId": 123, "modelName": ...}``), the AIR form
    (``{"air": "urn:air:...", "strength": 0.8}``) or bare AIR strings. Accepts the list or its
    JSON text; anything unusable is skipped."""
    if isinstance(items, str | bytes):
        try:
            items = orjson.loads(items)
        except orjson.JSONDecodeError:
            return []
    if isinstance(items, Mapping):
        items = [items]
    if not isinstance(items, list):
        return []
    found: list[Resource] = []
    for item in items:
        resource: Resource | None = None
        if isinstance(item, str):
            resource = resource_from_air(item, source=source)
        elif isinstance(item, Mapping):
            resource = _resource_from_item(item, source)
        if resource is not None:
            found.append(resource)
    return found


# record.extra keys the format parsers fill, and the source name each gets in the resources table.
_EXTRA_LISTS: tuple[tuple[str, str], ...] = (
    ("civitai_resources", "Civitai resources"),
    ("civitai_airs", "Civitai AIRs"),
    ("airs", "Civitai AIRs"),
)


def _resources_key(value: Any) -> Any:
    """The resource list inside a Civitai ``extraMetadata``/``Civitai metadata`` object."""
    if isinstance(value, str | bytes):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            return None
    if isinstance(value, Mapping):
        return value.get("resources")
    return None


def resources_from_extra(extra: Mapping[str, Any]) -> list[Resource]:
    """Resources from the Civitai keys a parser left in ``record.extra``:
    ``civitai_resources`` (list of dicts), ``civitai_airs``/``airs`` (AIR strings),
    ``civitai_extra_metadata`` / ``civitai_metadata`` (objects with a ``resources`` list).
    Returns an empty list when none are present."""
    found: list[Resource] = []
    for key, source in _EXTRA_LISTS:
        if key in extra:
            found.extend(resources_from_civitai(extra[key], source=source))
    for key, source in (
        ("civitai_extra_metadata", "extraMetadata.resources"),
        ("civitai_metadata", "Civitai metadata"),
    ):
        listed = _resources_key(extra.get(key))
        if listed is not None:
            found.extend(resources_from_civitai(listed, source=source))
    return found
