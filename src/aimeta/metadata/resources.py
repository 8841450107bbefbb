"""Pure helpers that make resource rows comparable: name normalisation, hash types, merging."""

from __future__ import annotations

import re
from typing import Any

from aimeta.metadata.record import Resource

MODEL_EXTENSIONS = (
    ".safetensors",
    ".ckpt",
    ".pt",
    ".pth",
    ".bin",
    ".gguf",
    ".sft",
    ".onnx",
    ".pkl",
)

_HEX = re.compile(r"[0-9a-fA-F]+")
# hash_type's names for plain hex hashes by their length.
_HASH_TYPES_BY_LENGTH = {8: "autov1", 10: "autov2", 12: "autov3", 64: "sha256"}

# Names people and tools give each kind, keyed without case, spaces, dashes or underscores.
# LyCORIS-family networks (LoCon, LoHa, LoKr, DoRA) load like LoRAs, so they are LoRAs here.
_KIND_ALIASES = {
    "checkpoint": "checkpoint",
    "ckpt": "checkpoint",
    "model": "checkpoint",
    "unet": "checkpoint",
    "lora": "lora",
    "locon": "lora",
    "lycoris": "lora",
    "lyco": "lora",
    "loha": "lora",
    "lokr": "lora",
    "dora": "lora",
    "embedding": "embedding",
    "embed": "embedding",
    "textualinversion": "embedding",
    "ti": "embedding",
    "hypernetwork": "hypernetwork",
    "hypernet": "hypernetwork",
    "vae": "vae",
    "upscaler": "upscaler",
    "upscalemodel": "upscaler",
    "controlnet": "controlnet",
    "refiner": "refiner",
    "detailer": "detailer",
    "adetailer": "detailer",
    "ipadapter": "ipadapter",
    "resourceref": "resource_ref",
}

# A resource whose only identity is its hash is stored under this name until `resolve` finds it.
HASH_NAME_PREFIX = "hash:"


def normalize_name(name: str) -> str:
    """Drop folders and a model file extension:
    ``loras\\sd15\\detail.safetensors`` -> ``detail``."""
    text = name.strip().replace("\\", "/").rsplit("/", 1)[-1].strip()
    lowered = text.lower()
    for extension in MODEL_EXTENSIONS:
        if lowered.endswith(extension) and len(text) > len(extension):
            return text[: -len(extension)].strip()
    return text


def normalize_kind(kind: str) -> str | None:
    """Our resource kind for a kind as tools write it (``LyCORIS`` -> ``lora``,
    ``TextualInversion``/``embed`` -> ``embedding``); ``None`` when it names no kind we keep."""
    key = "".join(kind.lower().replace("-", " ").replace("_", " ").split())
    return _KIND_ALIASES.get(key)


def hash_only_name(value: str) -> str:
    """The placeholder name of a resource known only by its hash: ``hash:<normalised hash>``."""
    return HASH_NAME_PREFIX + normalize_hash(value)


def hash_type(value: str) -> str | None:
    """Name the kind of a model hash by its shape.

    A1111 writes 10 hex digits for checkpoints (AutoV2, a prefix of SHA-256), 12 for LoRA and
    embedding hashes (AutoV3: for a LoRA a prefix of the SHA-256 of its tensor data, for an
    embedding of the whole file), 8 for the legacy model hash (AutoV1); InvokeAI writes
    ``blake3:...``, SwarmUI ``0x`` + the SHA-256 of the tensor data (ModelSpec).
    """
    text = value.strip()
    lowered = text.lower()
    if lowered.startswith("blake3:"):
        return "blake3"
    if lowered.startswith("sha256:"):
        return "sha256"
    if lowered.startswith("0x") and _HEX.fullmatch(text[2:]):
        return "swarmui_sha256" if len(text) == 66 else "hex"
    if not _HEX.fullmatch(text):
        return None
    return _HASH_TYPES_BY_LENGTH.get(len(text), "hex")


def normalize_hash(value: str) -> str:
    """Lower-case hex without the ``sha256:``/``0x`` prefixes (``blake3:`` is kept: it is not hex
    of the same function)."""
    text = value.strip().lower()
    for prefix in ("sha256:", "0x"):
        if text.startswith(prefix):
            return text[len(prefix) :]
    return text


def merge_resources(resources: list[Resource]) -> list[Resource]:
    """One resource per (kind, normalised name): weights, hashes and sources combined.

    The same LoRA named in the prompt (weight) and in ``Lora hashes`` (hash) becomes one row
    carrying both; the names as found are kept in ``extra['original_names']``.
    """
    merged: dict[tuple[str, str], Resource] = {}
    for item in resources:
        if not item.name or not item.name.strip():
            continue
        name = normalize_name(item.name)
        if not name:
            continue
        kind = normalize_kind(item.kind) or item.kind.strip().lower()
        key = (kind, name.lower())
        found = merged.get(key)
        if found is None:
            extra: dict[str, Any] = dict(item.extra)
            if item.name != name:
                extra.setdefault("original_names", [item.name])
            found = Resource(
                kind=kind,
                name=name,
                weight=item.weight,
                weight_clip=item.weight_clip,
                source=item.source,
                extra=extra,
            )
            merged[key] = found
        else:
            if found.weight is None:
                found.weight = item.weight
            if found.weight_clip is None:
                found.weight_clip = item.weight_clip
            if item.source and item.source not in found.source.split(", "):
                found.source = f"{found.source}, {item.source}" if found.source else item.source
            if item.name != name:
                names = found.extra.setdefault("original_names", [])
                if item.name not in names:
                    names.append(item.name)
            for extra_key, extra_value in item.extra.items():
                found.extra.setdefault(extra_key, extra_value)
        if item.hash and not found.hash:
            found.hash = normalize_hash(item.hash)
            found.hash_type = item.hash_type or hash_type(item.hash)
        elif item.hash and normalize_hash(item.hash) != found.hash:
            others = found.extra.setdefault("other_hashes", [])
            if item.hash not in others:
                others.append(item.hash)
    return list(merged.values())
