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
"""

from __future__ import annotations

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
