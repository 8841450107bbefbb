"""Civitai references in image metadata: AIR URNs, resource lists and model-version ids.

Pure functions, no I/O. Images made on Civitai (and by tools that imitate it) name their models
by Civitai ids instead of file names: A1111-style infotext carries ``Civitai resources: [...]``
and ComfyUI images carry ``extra.airs`` / ``extraMetadata.resources``. A model known only by its
model-version id becomes a ``resource_ref`` placeholder named ``modelVersionId:<id>``, its
declared kind kept in ``extra['declared_kind']``; ``aimeta resolve`` later turns it into a real
resource.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from aimeta.metadata.record import Resource
from aimeta.metadata.resources import hash_type, normalize_kind, normalize_name

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
    ``civitai_resources`` (list of dicts), ``airs`` and any ``*_airs`` key (lists of AIR
    strings, e.g. ``civitai_airs``), ``civitai_extra_metadata`` / ``civitai_metadata`` (objects
    with a ``resources`` list). Returns an empty list when none are present."""
    found: list[Resource] = []
    if "civitai_resources" in extra:
        found.extend(resources_from_civitai(extra["civitai_resources"], source="Civitai resources"))
    for key, value in extra.items():
        if (key == "airs" or key.endswith("_airs")) and isinstance(value, list):
            strings = [item for item in value if isinstance(item, str)]
            found.extend(resources_from_civitai(strings, source="Civitai AIRs"))
    for key, source in (
        ("civitai_extra_metadata", "extraMetadata.resources"),
        ("civitai_metadata", "Civitai metadata"),
    ):
        # Every parsed record comes through here and most have neither key; the test is
        # cheaper than _resources_key's type checks on None.
        listed = _resources_key(extra[key]) if key in extra else None
        if listed is not None:
            found.extend(resources_from_civitai(listed, source=source))
    return found


# --- model versions: what `aimeta resolve` learns from maps and API answers -------------------

# Hash types as Civitai names them (files[].hashes) and as a map file's columns name them.
HASH_TYPES = ("sha256", "autov1", "autov2", "autov3", "blake3", "crc32")
# File types in a model version that are not the model (their hashes would match nothing).
_NOT_MODEL_FILES = frozenset({"training data", "archive", "config"})


@dataclass(slots=True)
class ModelVersion:
    """One Civitai model version (or one local model file from a map without a version id,
    which gets a negative ``version_id``). ``files`` are dicts with name, type, primary and
    hashes (type -> value, as :func:`model_hash_value` stores them)."""

    version_id: int
    model_id: int | None = None
    kind: str | None = None
    model_name: str | None = None
    version_name: str | None = None
    base_model: str | None = None
    files: list[dict[str, Any]] | None = None

    @property
    def primary_file(self) -> dict[str, Any] | None:
        """The model file people download: marked primary, else the first model file."""
        files = self.files or []
        for candidate in files:
            if candidate.get("primary"):
                return candidate
        for candidate in files:
            if str(candidate.get("type") or "model").lower() not in _NOT_MODEL_FILES:
                return candidate
        return None

    @property
    def resource_name(self) -> str | None:
        """The name a resolved resource gets: the model file's name (what A1111 writes in
        ``Model:`` and LoRA tags use), else the model's name."""
        primary = self.primary_file
        if primary and isinstance(primary.get("name"), str) and primary["name"].strip():
            return normalize_name(primary["name"])
        return self.model_name.strip() if self.model_name and self.model_name.strip() else None

    def hashes(self) -> list[tuple[str, str]]:
        """(value, type) of every model file's hashes, for the model_hashes table."""
        pairs: dict[tuple[str, str], None] = {}
        for file in self.files or []:
            if str(file.get("type") or "model").lower() in _NOT_MODEL_FILES:
                continue
            for kind, value in (file.get("hashes") or {}).items():
                pairs[(value, kind)] = None
        return list(pairs)


def model_hash_value(hash_kind: str, value: str) -> str | None:
    """A hash as model_hashes stores it: lower-case hex; BLAKE3 as ``blake3:<hex>`` (the way
    image metadata writes it), so it never matches a SHA-256 prefix. ``None`` if not hex."""
    text = value.strip().lower()
    for prefix in ("0x", "sha256:", "blake3:"):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    if not text or any(char not in "0123456789abcdef" for char in text):
        return None
    return f"blake3:{text}" if hash_kind == "blake3" else text


def _file_hashes(raw: Any) -> dict[str, str]:
    hashes: dict[str, str] = {}
    if isinstance(raw, Mapping):
        for name, value in raw.items():
            kind = str(name).lower()
            if kind in HASH_TYPES and isinstance(value, str):
                stored = model_hash_value(kind, value)
                if stored:
                    hashes[kind] = stored
    return hashes


def _api_files(raw: Any) -> list[dict[str, Any]]:
    files: list[dict[str, Any]] = []
    if not isinstance(raw, list):
        return files
    for item in raw:
        if not isinstance(item, Mapping):
            continue
        entry: dict[str, Any] = {
            "name": item.get("name") if isinstance(item.get("name"), str) else None,
            "type": item.get("type") if isinstance(item.get("type"), str) else None,
            "primary": bool(item.get("primary")),
            "hashes": _file_hashes(item.get("hashes")),
        }
        if isinstance(item.get("sizeKB"), int | float):
            entry["size_kb"] = item["sizeKB"]
        files.append(entry)
    return files


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _is_model(node: Mapping[str, Any]) -> bool:
    return isinstance(node.get("modelVersions"), list) and _version_id(node.get("id")) is not None


def _is_version(node: Mapping[str, Any]) -> bool:
    if _version_id(node.get("id")) is None or "modelVersions" in node:
        return False
    return "modelId" in node or "baseModel" in node or isinstance(node.get("files"), list)


def _version_from_api(node: Mapping[str, Any], model: Mapping[str, Any]) -> ModelVersion:
    inner = node.get("model") if isinstance(node.get("model"), Mapping) else {}
    assert isinstance(inner, Mapping)
    civitai_type = _text(inner.get("type")) or _text(model.get("type"))
    version_id = _version_id(node.get("id"))
    assert version_id is not None
    return ModelVersion(
        version_id=version_id,
        model_id=_version_id(node.get("modelId")) or _version_id(model.get("id")),
        kind=kind_from_civitai_type(civitai_type) if civitai_type else None,
        model_name=_text(inner.get("name")) or _text(model.get("name")),
        version_name=_text(node.get("name")),
        base_model=_text(node.get("baseModel")),
        files=_api_files(node.get("files")),
    )


def versions_from_api(data: Any) -> list[ModelVersion]:
    """Every model version in a Civitai API answer, wherever it is nested: the objects of
    ``/model-versions/{id}`` and ``/model-versions/by-hash/{hash}``, ``/models/{id}`` with its
    ``modelVersions``, lists and search pages of them. Later copies of a version win."""
    found: dict[int, ModelVersion] = {}
    stack: list[tuple[Any, Mapping[str, Any]]] = [(data, {})]
    while stack:  # iterative: an export may be nested deeper than Python's recursion limit
        node, model = stack.pop()
        if isinstance(node, list):
            stack.extend((item, model) for item in reversed(node))
        elif isinstance(node, Mapping):
            if _is_model(node):
                stack.extend((item, node) for item in reversed(node["modelVersions"]))
            elif _is_version(node):
                version = _version_from_api(node, model)
                found.pop(version.version_id, None)
                found[version.version_id] = version
            else:
                stack.extend((value, model) for value in reversed(list(node.values())))
    return list(found.values())


# Columns of a manual map (CSV header or JSON object keys); see `aimeta resolve --help`.
MAP_COLUMNS = (
    "version_id",
    "model_id",
    "kind",
    "model_name",
    "version_name",
    "base_model",
    "file_name",
    "hash",
    *HASH_TYPES,
)


def _local_id(row: Mapping[str, str]) -> int:
    """A stable negative id for a map row naming a local file without a Civitai version."""
    key = "|".join(row.get(column, "") for column in ("kind", "model_name", "file_name", "hash"))
    key += "|" + "|".join(row.get(column, "") for column in HASH_TYPES)
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    return -(int.from_bytes(digest, "big") >> 2) - 1


def version_from_map_row(row: Mapping[str, Any]) -> ModelVersion:
    """One manual map row (column -> text) as a :class:`ModelVersion`.

    Raises ``ValueError`` with the reason when the row can resolve nothing: it needs a name
    (``model_name`` or ``file_name``) and a ``version_id`` or a hash.
    """
    cells = {
        str(key).strip().lower(): str(value).strip()
        for key, value in row.items()
        if key is not None and value is not None and str(value).strip()
    }
    hashes: dict[str, str] = {}
    for column in HASH_TYPES:
        if column in cells:
            stored = model_hash_value(column, cells[column])
            if stored is None:
                raise ValueError(f"{column} {cells[column]!r} is not a hex hash")
            hashes[column] = stored
    if "hash" in cells:
        shape = hash_type(cells["hash"])
        column = {"blake3": "blake3", "swarmui_sha256": "sha256"}.get(shape or "", shape or "")
        stored = model_hash_value(column, cells["hash"]) if column else None
        if stored is None:
            raise ValueError(f"hash {cells['hash']!r} is not a hex hash")
        hashes.setdefault(column if column in HASH_TYPES else "hash", stored)
    version_text = cells.get("version_id") or cells.get("modelversionid")
    version_id = _version_id(version_text) if version_text else None
    if version_text and version_id is None:
        raise ValueError(f"version_id {version_text!r} is not a positive whole number")
    if not (cells.get("model_name") or cells.get("file_name")):
        raise ValueError("neither model_name nor file_name is given")
    if version_id is None and not hashes:
        raise ValueError("neither version_id nor a hash is given")
    kind_text = cells.get("kind")
    kind = kind_from_civitai_type(kind_text) if kind_text else None
    if kind_text and kind is None:
        raise ValueError(f"kind {kind_text!r} is not one of checkpoint, lora, embedding, ...")
    file_name = cells.get("file_name")
    model_id_text = cells.get("model_id")
    return ModelVersion(
        version_id=version_id if version_id is not None else _local_id(cells),
        model_id=_version_id(model_id_text) if model_id_text else None,
        kind=kind,
        model_name=cells.get("model_name"),
        version_name=cells.get("version_name"),
        base_model=cells.get("base_model"),
        files=[{"name": file_name, "type": "Model", "primary": True, "hashes": hashes}]
        if file_name or hashes
        else [],
    )


def with_civitai_references(resources: list[Resource], extra: Mapping[str, Any]) -> list[Resource]:
    """``resources`` plus those of the Civitai keys in ``extra``, with every resource named by
    a Civitai AIR (Civitai's own ComfyUI graphs load ``urn:air:...`` as the checkpoint or LoRA
    name) turned into the same ``modelVersionId:<id>`` placeholder the resource lists give, so
    one model is one row. The loader's kind becomes the declared kind."""
    converted: list[Resource] = []
    for resource in resources:
        air = parse_air(resource.name) if ":" in resource.name else None
        if air is None or air.source != "civitai" or not isinstance(air.version_id, int):
            converted.append(resource)
            continue
        placeholder = resource_from_air(
            resource.name, weight=resource.weight, source=resource.source
        )
        assert placeholder is not None
        placeholder.weight_clip = resource.weight_clip
        placeholder.hash, placeholder.hash_type = resource.hash, resource.hash_type
        if resource.kind != "resource_ref":
            placeholder.extra.setdefault("declared_kind", resource.kind)
        for key, value in resource.extra.items():
            placeholder.extra.setdefault(key, value)
        converted.append(placeholder)
    converted.extend(resources_from_extra(extra))
    return converted
