"""A1111 "stealth pnginfo": infotext hidden in the least significant bits of the pixels.

The sd-webui stealth-pnginfo extension writes, pixel by pixel in column-major order (all rows
of column 0, then column 1, ...), one bit per pixel into the alpha channel (or three bits
per pixel into R, G, B):

1. a 15-byte signature: ``stealth_pnginfo`` (alpha, plain), ``stealth_pngcomp`` (alpha,
   gzip), ``stealth_rgbinfo`` / ``stealth_rgbcomp`` (RGB);
2. the payload length in bits, a 32-bit big-endian number;
3. the payload: UTF-8 infotext, gzip-compressed for the ``comp`` variants.

This is the one place aimeta decodes pixels to read metadata, so the pipeline calls it only
for PNGs whose text chunks carry no generation metadata.
"""

from __future__ import annotations

import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from aimeta.metadata.readers.native import NativeReadError

MAX_STEALTH_TEXT_BYTES = 8 * 1024 * 1024
_SIGNATURE_BITS = 15 * 8
_LENGTH_BITS = 32
_ALPHA_SIGNATURES = {b"stealth_pnginfo": False, b"stealth_pngcomp": True}
_RGB_SIGNATURES = {b"stealth_rgbinfo": False, b"stealth_rgbcomp": True}


def _payload(bits: np.ndarray, signatures: dict[bytes, bool]) -> str | None:
    """Decode signature, length and text from a flat array of 0/1 values."""
    if bits.size < _SIGNATURE_BITS + _LENGTH_BITS:
        return None
    signature = np.packbits(bits[:_SIGNATURE_BITS]).tobytes()
    if signature not in signatures:
        return None
    compressed = signatures[signature]
    length_bytes = np.packbits(bits[_SIGNATURE_BITS : _SIGNATURE_BITS + _LENGTH_BITS]).tobytes()
    length = int.from_bytes(length_bytes, "big")
    start = _SIGNATURE_BITS + _LENGTH_BITS
    if length == 0 or length > MAX_STEALTH_TEXT_BYTES * 8 or start + length > bits.size:
        return None  # absurd declared length: not a stealth payload after all
    data = np.packbits(bits[start : start + length]).tobytes()
    if compressed:
        inflater = zlib.decompressobj(wbits=31)  # gzip container
        try:
            data = inflater.decompress(data, MAX_STEALTH_TEXT_BYTES)
        except zlib.error:
            return None
    return data.decode("utf-8", errors="replace")


def read_stealth(path: Path) -> str | None:
    """The infotext hidden in a PNG's pixels, or None when there is none.

    Tries the alpha channel first (as the extension does), then the RGB channels. Raises
    ``NativeReadError`` when the image cannot be decoded.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as image:
                image.load()
                has_alpha = image.mode == "RGBA" or (
                    "A" in image.getbands() or "transparency" in image.info
                )
                converted = image.convert("RGBA" if has_alpha else "RGB")
    # Pillow reports broken files with several exception types (SyntaxError for a bad
    # PNG chunk, struct.error for short data).
    except (
        OSError,
        ValueError,
        SyntaxError,
        EOFError,
        struct.error,
        Image.DecompressionBombError,
    ) as error:
        raise NativeReadError(f"cannot decode the image: {error}") from error
    # Column-major: x is the outer loop, y the inner one.
    pixels = np.asarray(converted).transpose(1, 0, 2)
    if has_alpha:
        text = _payload((pixels[:, :, 3] & 1).reshape(-1), _ALPHA_SIGNATURES)
        if text is not None:
            return text
    return _payload((pixels[:, :, :3] & 1).reshape(-1), _RGB_SIGNATURES)
