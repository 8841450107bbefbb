"""The raw-field interface shared by every reader.

A reader (ExifTool or the native chunk reader) returns, per file, a dict of ExifTool-style
tags keyed ``Group:Name`` as ``exiftool -json -G1 -n`` names them (``PNG:Parameters``,
``ExifIFD:UserComment``, ``IFD0:Make``, ``XMP-exif:UserComment``, ``File:Comment``, ...).
``text_fields`` turns those into the canonical text fields the parsers read:

* PNG text chunks (tEXt, zTXt, iTXt): the tag name lower-cased (``parameters``, ``prompt``,
  ``workflow``, ``sd-metadata``, ``invokeai_metadata``, ``comment``, ...).
* EXIF (IFD0, ExifIFD): ``usercomment``, ``make``, ``model``, ``imagedescription``,
  ``software``, ... (ExifIFD wins over IFD0 for the same name).
* XMP: ``xmp:`` + the name lower-cased (``xmp:usercomment``, ``xmp:description``).
* JPEG COM segment: ``comment``.
* ``AIMETA:*`` tags aimeta derives itself: snake_case (``AIMETA:StealthPNGInfo`` ->
  ``stealth_png_info``).

Whether a file's text fields carry generation metadata is decided here, once, for dump (which
searches a PNG's pixels for stealth infotext only when its text shows none), ingest (which
reports damaged JSON in a generation field as an error) and the ``unknown`` parser (which
keeps generation-like text no format parser took). :func:`generation_evidence` applies
these rules in order; the first that holds is the evidence:

1. a field in :data:`GENERATION_FIELDS`, whose *name* only image generators write;
2. a field whose value names an image generator (``Stable Diffusion``, ``NovelAI``,
   ``ComfyUI``, ``Midjourney``, ``DALL-E``, ...);
3. a field whose value uses at least two distinct generation words (prompt, negative, seed,
   steps, sampler, scheduler, cfg, guidance, denoise/denoising, checkpoint, lora, workflow).

Fields every kind of software writes (``comment``, ``usercomment``, ``imagedescription``,
``software``, ``xmp:usercomment``, ...) count only by their value (rules 2 and 3).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

# Groups whose text values can carry generation metadata.
_PNG_GROUPS = frozenset({"PNG"})
_EXIF_GROUPS = ("IFD0", "ExifIFD")  # later wins
# Tags that describe the file, not its content; never parsed, never stored as raw text.
_SKIP_NAMES = frozenset(
    {
        "imagewidth",
        "imageheight",
        "bitdepth",
        "colortype",
        "compression",
        "filter",
        "interlace",
        "exifbyteorder",
        "warning",
    }
)


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return orjson.dumps(value).decode()
    if isinstance(value, list | dict):
        return orjson.dumps(value).decode()
    return str(value)


def repair_mojibake(text: str) -> str:
    """Undo UTF-8 bytes that were decoded as cp1252/Latin-1 (``ãƒ†`` -> ``テ``).

    PNG tEXt is Latin-1 by the spec, but many tools write UTF-8 into it; readers decode it as
    cp1252. Each character is turned back into its byte (cp1252, or Latin-1 for the five code
    points cp1252 leaves undefined); if the bytes are valid UTF-8 the repaired text is used,
    otherwise the original is kept (so genuine Latin-1 like ``café`` stays as it is).
    """
    if text.isascii():
        return text
    buffer = bytearray()
    for char in text:
        code = ord(char)
        if code < 0x80:
            buffer.append(code)
            continue
        try:
            buffer += char.encode("cp1252")
        except UnicodeEncodeError:
            if code > 0xFF:
                return text
            buffer.append(code)
    try:
        repaired = buffer.decode("utf-8")
    except UnicodeDecodeError:
        return text
    return repaired


def _snake(name: str) -> str:
    return (
        "".join(f"_{c.lower()}" if c.isupper() else c for c in name)
        .lstrip("_")
        .replace("p_n_g", "png")
    )


def text_fields(tags: Mapping[str, Any]) -> dict[str, str]:
    """Canonical text fields (see the module docstring) from one file's tag dict."""
    fields: dict[str, str] = {}
    exif: dict[str, dict[str, str]] = {group: {} for group in _EXIF_GROUPS}
    for full_name, value in tags.items():
        group, _, name = full_name.rpartition(":")
        # The group decides first: most of ExifTool's tags (File, System, camera groups) are
        # of no interest, and converting their values would cost more than the rest.
        if group in _PNG_GROUPS:
            target = "png"
        elif group in exif:
            target = group
        elif group.startswith("XMP"):
            target = "xmp"
        elif full_name == "File:Comment":
            target = "comment"
        elif group == "AIMETA":
            target = "aimeta"
        else:
            continue
        lowered = name.lower()
        if lowered in _SKIP_NAMES:
            continue
        text = _as_text(value)
        if text is None:
            continue
        if target == "png":
            fields[lowered] = repair_mojibake(text)
        elif target == "xmp":
            fields[f"xmp:{lowered}"] = text
        elif target == "comment":
            fields["comment"] = text
        elif target == "aimeta":
            # Fields aimeta derives itself, e.g. AIMETA:StealthPNGInfo (infotext hidden in
            # the alpha channel of a PNG) -> "stealth_pnginfo".
            fields[_snake(name)] = text
        else:
            exif[target][lowered] = text
    for name, text in exif["IFD0"].items():
        fields.setdefault(name, text)
    fields.update(exif["ExifIFD"])
    return fields


# Text fields whose name alone says "generation metadata": the PNG chunks and derived fields
# that image generators (and nothing else) write. A parser reading a new such field adds it
# here (tests/readers/test_generation_fields.py checks every parser's source fields).
GENERATION_FIELDS = frozenset(
    {
        "parameters",  # A1111/Forge, Fooocus, SwarmUI
        "prompt",  # ComfyUI graph, Easy Diffusion
        "workflow",  # ComfyUI
        "negative_prompt",  # Easy Diffusion
        "use_stable_diffusion_model",  # Easy Diffusion
        "dream",  # InvokeAI (legacy)
        "sd-metadata",  # InvokeAI 2.x
        "invokeai_metadata",  # InvokeAI 3+
        "invokeai_graph",
        "invokeai_workflow",
        "generation_data",  # TensorArt
        "sui_image_params",  # SwarmUI
        "fooocus_scheme",  # Fooocus
        "stealth_png_info",  # A1111 stealth infotext, derived by dump
        "extras",  # A1111 Extras tab (upscalers, face restoration)
        "postprocessing",  # A1111 Extras tab, newer versions
        "parameters-json",  # Stability Matrix
        "smproj",  # Stability Matrix project
        "xmp:prompt",  # ComfyUI graph in XMP (AVIF, HEIC, JPEG XL savers)
        "xmp:workflow",
    }
)
_GENERATOR_NAMES = re.compile(
    r"stable[ -]?diffusion|novel ?ai|comfy ?ui|midjourney|dall[-·]?e\b|invoke ?ai|fooocus|"
    r"swarm ?ui|draw things|automatic1111|stable ?swarm|\bsdxl\b",
    re.IGNORECASE,
)
_GENERATION_WORDS = re.compile(
    r"\b(prompt|negative|seed|steps|sampler|scheduler|cfg|guidance|denoise|denoising|"
    r"checkpoint|lora|workflow)\b",
    re.IGNORECASE,
)
# Only the start of each value is searched: evidence sits there, and scanning a 50 MB comment
# with these patterns took 23 s.
_SCAN_CHARS = 1 << 20


def generation_evidence(fields: Mapping[str, str]) -> str | None:
    """Why ``fields`` look like generation metadata (rule and field name, see the module
    docstring), or ``None`` when nothing does."""
    for key in sorted(fields):
        if key in GENERATION_FIELDS and fields[key].strip():
            return f"generation field {key!r}"
    for key in sorted(fields):
        if _GENERATOR_NAMES.search(fields[key], 0, _SCAN_CHARS):
            return f"field {key!r} names an image generator"
    for key in sorted(fields):
        words = {word.lower() for word in _GENERATION_WORDS.findall(fields[key], 0, _SCAN_CHARS)}
        if len(words) >= 2:
            return f"field {key!r} uses generation words ({', '.join(sorted(words))})"
    return None


def pixel_size(tags: Mapping[str, Any]) -> tuple[int, int] | None:
    """Width and height in pixels from ``Composite:ImageSize`` or the container's own tags."""
    size = tags.get("Composite:ImageSize")
    if isinstance(size, str):
        parts = size.replace("x", " ").split()
        if len(parts) == 2 and all(p.isdigit() for p in parts):
            return int(parts[0]), int(parts[1])
    for group in ("PNG", "File", "RIFF", "VP8", "VP8L", "VP8X", "EXIF", "ExifIFD", "IFD0"):
        width, height = tags.get(f"{group}:ImageWidth"), tags.get(f"{group}:ImageHeight")
        if isinstance(width, int) and isinstance(height, int):
            return width, height
    return None
