"""C2PA Content Credentials: the manifest store of a PNG or JPEG, read into a plain summary.

ChatGPT/DALL-E, Gemini/Imagen, Adobe Firefly, cameras and editors sign their images with a C2PA
manifest store: JUMBF boxes (ISO 19566-5) in a PNG ``caBX`` chunk or in JPEG APP11 segments
(JPEG XT framing: ``JP``, box instance, sequence number, then the box, whose 8-byte header
every continuation segment repeats). A ``jumb`` superbox starts with a ``jumd`` description
(type UUID, toggles, label); the store (``c2pa``) holds manifests (``c2ma``), each an
assertion store (``c2as``, one CBOR or JSON box per assertion), a claim (``c2cl``, CBOR) and a
signature. The last manifest is the active one, the others are its ingredients'.

Why aimeta reads the boxes itself: ExifTool (12.57) flattens every CBOR box into one tag
namespace where the first manifest wins (an ingredient's camera claim hides the active
Firefly claim) and repeated actions collapse. Signatures are not verified: aimeta records
what the file claims, it does not vouch for it. ExifTool's flattened ``CBOR:*`` tags are the
fallback for containers read here not (HEIC, AVIF, WebP).

``c2pa_summary(path, tags)`` returns the JSON text stored as ``AIMETA:C2paManifest`` (the
``c2pa_manifest`` field the C2PA parser reads)::

    {"source": "jumbf"|"exiftool", "manifests": 2, "active": "urn:uuid:...",
     "claim_generator": "...", "claim_generator_info": [{"name": ..., "version": ...}],
     "title": ..., "format": ..., "actions": [{"action": ..., "digital_source_type": ...,
     "software_agent": ..., "description": ...}], "ingredients": [title, ...]}
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import cbor2
import orjson

MAX_STORE_BYTES = 16 * 1024 * 1024
_MAX_BOX_DEPTH = 16
_MAX_CBOR_DEPTH = 64  # claims nest a few levels; deeper is hostile
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class C2paError(ValueError):
    """The file's C2PA manifest store is broken or too large to read."""


@dataclass(slots=True)
class _Superbox:
    code: bytes  # the first four bytes of the jumd type UUID: b"c2pa", b"c2ma", b"cbor", ...
    label: str
    children: list[_Superbox] = field(default_factory=list)
    content: list[tuple[bytes, bytes]] = field(default_factory=list)  # (box type, payload)


# ------------------------------------------------------------------------- finding the store


def find_store(path: Path) -> bytes | None:
    """The JUMBF manifest store of a PNG (``caBX``) or JPEG (APP11), or ``None``. Only the
    chunk and segment headers are read on the way (image data is skipped)."""
    with open(path, "rb") as handle:
        head = handle.read(8)
        if head.startswith(_PNG_SIGNATURE):
            return _png_store(handle)
        if head.startswith(b"\xff\xd8"):
            handle.seek(2)
            return _jpeg_store(handle)
    return None


def _png_store(handle: BinaryIO) -> bytes | None:
    while True:
        header = handle.read(8)
        if len(header) < 8:
            return None
        length, kind = struct.unpack(">I4s", header)
        if kind == b"caBX":
            if length > MAX_STORE_BYTES:
                raise C2paError(f"caBX chunk of {length} bytes")
            return handle.read(length)
        if kind == b"IEND":
            return None
        handle.seek(length + 4, 1)  # the chunk's data and CRC


def _jpeg_store(handle: BinaryIO) -> bytes | None:
    parts: dict[int, dict[int, bytes]] = {}  # box instance -> sequence number -> payload
    total = 0
    while True:
        marker = handle.read(2)
        if len(marker) < 2 or marker[0] != 0xFF or marker[1] in (0xD9, 0xDA):
            break  # end of image or start of scan: metadata segments come before
        if marker[1] == 0xFF:
            handle.seek(-1, 1)  # a fill byte
            continue
        if 0xD0 <= marker[1] <= 0xD8 or marker[1] == 0x01:
            continue  # markers without a length
        length_bytes = handle.read(2)
        if len(length_bytes) < 2:
            break
        (length,) = struct.unpack(">H", length_bytes)
        if marker[1] != 0xEB:
            handle.seek(length - 2, 1)
            continue
        segment = handle.read(length - 2)
        if segment[:2] == b"JP" and len(segment) >= 16:
            total += len(segment)
            if total > MAX_STORE_BYTES:
                raise C2paError(f"APP11 JUMBF segments of more than {MAX_STORE_BYTES} bytes")
            instance, sequence = struct.unpack(">HI", segment[2:8])
            parts.setdefault(instance, {})[sequence] = segment[8:]
    for instance in sorted(parts):
        pieces = parts[instance]
        first = pieces[min(pieces)]
        if first[4:8] != b"jumb":
            continue
        # Continuation segments repeat the box header (LBox + TBox): drop it from them.
        return first + b"".join(pieces[number][8:] for number in sorted(pieces)[1:])
    return None


# ------------------------------------------------------------------------- JUMBF and CBOR


def _boxes(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, bytes]]:
    """(type, payload) of the boxes in ``data[start:end]``."""
    position = start
    while position + 8 <= end:
        size, kind = struct.unpack(">I4s", data[position : position + 8])
        header = 8
        if size == 1:
            if position + 16 > end:
                raise C2paError("truncated JUMBF box header")
            (size,) = struct.unpack(">Q", data[position + 8 : position + 16])
            header = 16
        elif size == 0:
            size = end - position
        if size < header or position + size > end:
            raise C2paError(f"JUMBF box {kind!r} runs past its container")
        yield kind, data[position + header : position + size]
        position += size


def _superbox(payload: bytes, depth: int = 0) -> _Superbox:
    if depth > _MAX_BOX_DEPTH:
        raise C2paError("JUMBF boxes nested too deeply")
    boxes = iter(_boxes(payload, 0, len(payload)))
    kind, description = next(boxes, (b"", b""))
    if kind != b"jumd" or len(description) < 17:
        raise C2paError("JUMBF superbox without a description box")
    label = ""
    if description[16] & 0x02:
        label = description[17:].split(b"\0", 1)[0].decode("utf-8", "replace")
    box = _Superbox(description[:4], label)
    for kind, content in boxes:
        if kind == b"jumb":
            box.children.append(_superbox(content, depth + 1))
        else:
            box.content.append((kind, content))
    return box


def _content(box: _Superbox) -> Any:
    """The decoded CBOR or JSON content box of a superbox, or ``None``."""
    for kind, payload in box.content:
        if kind == b"cbor":
            try:
                return cbor2.loads(payload, max_depth=_MAX_CBOR_DEPTH)
            except (cbor2.CBORDecodeError, ValueError, RecursionError) as exc:
                raise C2paError(f"CBOR in {box.label!r} does not decode: {exc}") from exc
        if kind == b"json":
            try:
                return orjson.loads(payload)
            except orjson.JSONDecodeError as exc:
                raise C2paError(f"JSON in {box.label!r} does not decode: {exc}") from exc
    return None


def parse_store(data: bytes) -> dict[str, Any]:
    """The summary (see the module docstring) of a JUMBF manifest store."""
    kind, payload = next(_boxes(data, 0, len(data)), (b"", b""))
    if kind != b"jumb":
        raise C2paError("no JUMBF superbox")
    store = _superbox(payload)
    if store.code != b"c2pa":
        raise C2paError(f"JUMBF store of type {store.code!r}, not C2PA")
    manifests = [child for child in store.children if child.code in (b"c2ma", b"c2um")]
    if not manifests:
        raise C2paError("C2PA store without a manifest")
    active = manifests[-1]
    summary: dict[str, Any] = {
        "source": "jumbf",
        "manifests": len(manifests),
        "active": active.label,
    }
    summary.update(_manifest(active))
    ingredients = [_manifest(other).get("title") for other in manifests[:-1]]
    summary["ingredients"] = [title for title in ingredients if title]
    return summary


def _manifest(manifest: _Superbox) -> dict[str, Any]:
    found: dict[str, Any] = {}
    actions: list[dict[str, Any]] = []
    for child in manifest.children:
        if child.code == b"c2cl":
            claim = _content(child)
            if isinstance(claim, dict):
                found.update(_claim(claim))
        elif child.code == b"c2as":
            for assertion in child.children:
                if assertion.label.startswith("c2pa.actions"):
                    actions.extend(_actions(_content(assertion)))
    found["actions"] = actions
    return found


def _claim(claim: Mapping[str, Any]) -> dict[str, Any]:
    info = claim.get("claim_generator_info")
    infos = info if isinstance(info, list) else [info] if isinstance(info, dict) else []
    return {
        "claim_generator": _text(claim.get("claim_generator")),
        "claim_generator_info": [
            {"name": _text(item.get("name")), "version": _text(item.get("version"))}
            for item in infos
            if isinstance(item, dict)
        ],
        "title": _text(claim.get("dc:title")),
        "format": _text(claim.get("dc:format")),
    }


def _actions(assertion: Any) -> list[dict[str, Any]]:
    entries = assertion.get("actions") if isinstance(assertion, dict) else None
    found = []
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict):
            continue
        agent = entry.get("softwareAgent")
        if isinstance(agent, dict):  # actions v2: a generator-info map
            agent = agent.get("name")
        parameters = entry.get("parameters")
        description = entry.get("description")
        if description is None and isinstance(parameters, dict):
            description = parameters.get("description")
        found.append(
            {
                "action": _text(entry.get("action")),
                "digital_source_type": _text(entry.get("digitalSourceType")),
                "software_agent": _text(agent),
                "description": _text(description),
            }
        )
    return found


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, bytes | dict | list):
        return None
    return str(value)


# ------------------------------------------------------------------------- ExifTool fallback


def summary_from_tags(tags: Mapping[str, Any]) -> dict[str, Any] | None:
    """The summary from ExifTool's flattened ``CBOR:*`` tags (first manifest wins there; see
    the module docstring), or ``None`` when there are none."""
    cbor = {name[5:]: value for name, value in tags.items() if name.startswith("CBOR:")}
    if not cbor:
        return None
    agent = cbor.get("ActionsSoftwareAgentName", cbor.get("ActionsSoftwareAgent"))
    action = {
        "action": _text(_first(cbor.get("ActionsAction"))),
        "digital_source_type": _text(_first(cbor.get("ActionsDigitalSourceType"))),
        "software_agent": _text(_first(agent)),
        "description": _text(_first(cbor.get("ActionsParametersDescription"))),
    }
    info = {
        "name": _text(_first(cbor.get("Claim_Generator_InfoName"))),
        "version": _text(_first(cbor.get("Claim_Generator_InfoVersion"))),
    }
    return {
        "source": "exiftool",
        "claim_generator": _text(_first(cbor.get("Claim_generator"))),
        "claim_generator_info": [info] if info["name"] else [],
        "title": _text(_first(cbor.get("Title"))),
        "format": _text(_first(cbor.get("Format"))),
        "actions": [action] if any(action.values()) else [],
    }


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, list) and value else value


def has_c2pa(tags: Mapping[str, Any]) -> bool:
    """True when a reader saw a C2PA manifest store (the outer JUMBF box's label)."""
    return tags.get("JUMBF:JUMDLabel") == "c2pa"


def c2pa_summary(path: Path, tags: Mapping[str, Any]) -> str:
    """The summary of the file's manifest store as JSON text (``AIMETA:C2paManifest``).

    Raises ``C2paError`` when the store is broken and ``OSError`` when the file cannot be read.
    """
    store = find_store(path)
    summary = parse_store(store) if store is not None else summary_from_tags(tags)
    if summary is None:
        raise C2paError("C2PA manifest store found but not readable in this container")
    return orjson.dumps(summary).decode()
