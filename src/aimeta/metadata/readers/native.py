"""A fast reader for the metadata of PNG, JPEG and WebP files, equal to ExifTool's output.

``read_native(path)`` returns the tags ``exiftool -json -G1 -n`` gives for the fields that
carry generation metadata, with the same keys and values, so ``fields.text_fields`` and
everything after it cannot tell the two readers apart. It reads only the container's
structure (chunk and segment headers, text, EXIF and XMP blocks), seeks past image data and
never decodes pixels.

What is read, and under which names:

* PNG: ``tEXt``/``zTXt``/``iTXt`` chunks wherever they sit (also after IDAT) as
  ``PNG:<Name>`` (ExifTool's names for the registered keywords: ``Title``, ``Author``,
  ``Creation Time`` -> ``CreationTime``, ``Warning`` -> ``PNGWarning``, ...; other keywords
  with blanks removed, the letter after a blank and the first letter upper-cased and
  characters other than letters, digits, ``-`` and ``_`` dropped: ``parameters`` ->
  ``Parameters``, ``sd-metadata`` -> ``Sd-metadata``, ``date:create`` -> ``Datecreate``);
  iTXt with a language other than the keyword's default as ``Name-<lang>`` for registered
  keywords. tEXt/zTXt are decoded as cp1252 (ExifTool's "Latin"); iTXt as UTF-8. The XMP
  keyword ``XML:com.adobe.xmp``, the ``eXIf`` chunk and ImageMagick's ``Raw profile type
  exif/APP1/xmp`` chunks are read as XMP/EXIF. IHDR gives ``PNG:ImageWidth``/``ImageHeight``
  (and BitDepth, ColorType, ...); gAMA, sRGB, tIME, cHRM, bKGD, tRNS and the iCCP profile name are
  reported too. Two chunks with the same keyword: the last wins, as with ``-json``. A
  ``caBX`` chunk (a C2PA manifest store) gives the outer JUMBF box's ``JUMBF:JUMDType`` and
  ``JUMBF:JUMDLabel``; its claims are read by ``c2pa`` (ExifTool's flattened ``CBOR:*``
  tags are not reproduced).
* JPEG: APP1 EXIF (IFD0 and Exif IFD, see ``native_tiff``), APP1 XMP (``native_xmp``), COM
  as ``File:Comment``, the frame header as ``File:ImageWidth``/``File:ImageHeight``, APP11
  JUMBF (C2PA) as for PNG ``caBX``.
  Reading stops at the first scan (SOS): segments after image data are not seen.
* WebP: ``VP8X``/``VP8``/``VP8L`` size as ``RIFF:ImageWidth``/``RIFF:ImageHeight``, the
  ``EXIF`` chunk (with or without a leading ``Exif\\0\\0``) and the ``XMP `` chunk.
* Always ``File:FileType`` (``PNG``, ``JPEG``, ``WEBP`` or ``Extended WEBP`` as ExifTool
  says) and ``Composite:ImageSize`` (``"W H"``).

Values are the ones a JSON parser gets back from ExifTool: numeric-looking text becomes a
number, ``true``/``false`` a boolean, NULs are dropped, bytes that are not UTF-8 become
``?`` (see ``native_values``).

Decisions where a file is broken:

* CRCs are not checked (ExifTool does not check them when reading either).
* A chunk or segment whose declared length runs past the end of the file, a file cut off
  before the PNG ``IEND`` chunk or the JPEG scan, a missing or wrong signature, and a text
  chunk over ``MAX_TEXT_BYTES`` (64 MiB, also after decompression) or an EXIF/XMP block over
  ``MAX_EXIF_BYTES`` (16 MiB) raise ``NativeReadError``: the whole file is an error, never
  a 4 GB allocation. (ExifTool instead returns what it found so far with a warning; a caller
  that wants that can fall back to ExifTool for the file.)
* Problems inside a block that the file survives -- a zTXt that does not inflate, EXIF
  entries pointing outside the block, IFD loops, unparsable XMP -- skip that part and add
  ``ExifTool:Warning`` (the first warning only, like ``-json``); a zTXt that does not
  inflate is reported as ExifTool reports it, ``(Binary data N bytes, ...)``.

Known differences from ExifTool: for a zTXt/iTXt that does not inflate, the byte count in
``(Binary data N bytes, ...)`` is the stored size (ExifTool counts what zlib left
unconsumed); only the EXIF tags listed in ``native_tiff`` are reported
(ExifTool reports all it knows, e.g. camera settings, GPS, IFD1); ICC profiles, JFIF, MPF,
Photoshop/IPTC, extended XMP and trailers are not read; ``File:*`` and ``System:*`` tags
other than the ones above are not produced; see ``native_xmp`` for XMP details. None of
these carries generation metadata.
"""

from __future__ import annotations

import functools
import re
import struct
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

from aimeta.errors import InputError
from aimeta.metadata.readers.native_tiff import read_tiff
from aimeta.metadata.readers.native_values import (
    Value,
    binary_placeholder,
    decode_latin,
    fix_utf8,
    json_value,
)
from aimeta.metadata.readers.native_xmp import read_xmp, standard_language, tag_name

MAX_TEXT_BYTES = 64 * 1024 * 1024
MAX_EXIF_BYTES = 16 * 1024 * 1024
_HEAD_BYTES = 64 * 1024

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_XMP_APP1 = b"http://ns.adobe.com/xap/1.0/\0"
_EXIF_HEADER = b"Exif\0\0"


class NativeReadError(InputError):
    """The file's PNG, JPEG or WebP structure is broken; its metadata could not be read."""


class NativeTooLarge(NativeReadError):
    """A text, EXIF or XMP block of the file is larger than aimeta reads (a zip bomb or a lie).

    Callers should not hand such a file to another reader: ExifTool would inflate it in full.
    """


Tags = dict[str, Any]


class _Source:
    """Random access to a file with its first bytes cached (most metadata sits there)."""

    def __init__(self, handle: BinaryIO, size: int) -> None:
        self.handle = handle
        self.size = size
        self.head = handle.read(_HEAD_BYTES)

    def read(self, offset: int, length: int) -> bytes:
        end = offset + length
        if end <= len(self.head):
            return self.head[offset:end]
        self.handle.seek(offset)
        return self.handle.read(length)


def _warn(tags: Tags, message: str) -> None:
    tags.setdefault("ExifTool:Warning", message)


def _merge(tags: Tags, found: Mapping[str, Any], warnings: list[str]) -> None:
    tags.update(found)
    for message in warnings:
        _warn(tags, message)


def can_read_native(path: Path) -> bool:
    """True when the file starts with a PNG, JPEG or WebP signature (the extension is ignored)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(12)
    except OSError:
        return False
    return _file_type(head) is not None


def _file_type(head: bytes) -> str | None:
    if head.startswith(_PNG_SIGNATURE):
        return "PNG"
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    return None


def read_native(path: Path) -> dict[str, Any]:
    """ExifTool-style tags (``Group:Name`` -> value) of one PNG, JPEG or WebP file.

    Raises ``NativeReadError`` (an ``InputError``) when the file is not one of these types or
    its structure is broken (see the module docstring); ``OSError`` from opening or reading
    the file is turned into ``NativeReadError`` too.
    """
    try:
        with open(path, "rb", buffering=0) as handle:
            size = handle.seek(0, 2)
            handle.seek(0)
            source = _Source(handle, size)
            kind = _file_type(source.head[:12])
            if kind == "PNG":
                return _read_png(source)
            if kind == "JPEG":
                return _read_jpeg(source)
            if kind == "WEBP":
                return _read_webp(source)
    except OSError as error:
        raise NativeReadError(f"cannot read the file: {error.strerror or error}") from error
    if size == 0:
        raise NativeReadError("the file is empty")
    raise NativeReadError("not a PNG, JPEG or WebP file (unknown signature)")


def _image_size(tags: Tags, width: int, height: int) -> None:
    tags["Composite:ImageSize"] = f"{width} {height}"


def _jumbf_description(tags: Tags, box: bytes) -> None:
    """The type and label of a JUMBF superbox's description box, as ExifTool names them (the
    first superbox of the file wins, as ExifTool's main document does)."""
    if len(box) < 33 or box[4:8] != b"jumb" or box[12:16] != b"jumd":
        return
    (description_size,) = struct.unpack(">I", box[8:12])
    description = box[16 : 8 + description_size]
    if len(description) < 17 or "JUMBF:JUMDType" in tags:
        return
    tags["JUMBF:JUMDType"] = description[:16].hex()
    if description[16] & 0x02:
        label = description[17:].split(b"\0", 1)[0]
        tags["JUMBF:JUMDLabel"] = json_value(fix_utf8(label))


# ---------------------------------------------------------------------------------- PNG

# Registered keywords -> ExifTool's tag name (keyword matched as is, then with its first
# letter upper-cased).
_PNG_KEYWORDS = {
    "Title": "Title",
    "Author": "Author",
    "Description": "Description",
    "Copyright": "Copyright",
    "Creation Time": "CreationTime",
    "Software": "Software",
    "Disclaimer": "Disclaimer",
    "Warning": "PNGWarning",
    "Source": "Source",
    "Comment": "Comment",
    "Collection": "Collection",
    "Artist": "Artist",
    "Document": "Document",
    "Label": "Label",
    "Make": "Make",
    "Model": "Model",
    "create-date": "CreateDate",
    "modify-date": "ModDate",
    "TimeStamp": "TimeStamp",
    "URL": "URL",
}
# Keywords whose content ExifTool reads as a block of its own (name if that fails).
_PNG_BLOCKS = {
    "XML:com.adobe.xmp": "XMP",
    "Raw profile type APP1": "APP1_Profile",
    "Raw profile type exif": "EXIF_Profile",
    "Raw profile type xmp": "XMP_Profile",
    "Raw profile type icc": "ICC_Profile",
    "Raw profile type icm": "ICC_Profile",
    "Raw profile type iptc": "IPTC_Profile",
    "Raw profile type 8bim": "Photoshop_Profile",
}
_MONTHS = {
    name: index + 1
    for index, name in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
    )
}
_ZONES = {"UT": "+00:00", "GMT": "+00:00", "UTC": "+00:00", "Z": "+00:00"}
_ZONES.update({"EST": "-05:00", "EDT": "-04:00", "CST": "-06:00", "CDT": "-05:00"})
_ZONES.update({"MST": "-07:00", "MDT": "-06:00", "PST": "-08:00", "PDT": "-07:00"})
_ZONES.update({letter: f"-{index + 1:02d}:00" for index, letter in enumerate("ABCDEFGHIKLM")})
_ZONES.update({letter: f"+{index + 1:02d}:00" for index, letter in enumerate("NOPQRSTUVWXY")})
_PNG_DATE = re.compile(
    r"(\d+)\s*(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)\s*(\d+)\s+(\d+):(\d{2})"
    r"(:\d{2})?\s*(\S*)",
    re.IGNORECASE | re.ASCII,
)
_XMP_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}:\d{2})(:\d{2})?\s*(\S*)", re.ASCII)
_PROFILE = re.compile(rb"\n(.*?)\n\s*(\d+)\n(.*)", re.DOTALL)


def _png_date(text: str) -> str:
    """RFC-1123 "Creation Time" -> EXIF date, as ExifTool converts it."""
    match = _PNG_DATE.search(text)
    if not match:
        return text
    day, month, year, hour, minute, seconds, zone = match.groups()
    year_number = int(year)
    if year_number < 100:
        year_number += 1900 if year_number > 70 else 2000
    if not zone:
        zone = ""
    elif zone.upper() in _ZONES:
        zone = _ZONES[zone.upper()]
    else:
        offset = re.match(r"([-+]\d+):?(\d{2})", zone)
        if not offset:
            return text
        zone = f"{offset.group(1)}:{offset.group(2)}"
    return (
        f"{year_number:04d}:{_MONTHS[month.lower()]:02d}:{int(day):02d} "
        f"{int(hour):02d}:{minute}{seconds or ':00'}{zone}"
    )


def _xmp_date(text: str) -> str:
    match = _XMP_DATE.fullmatch(text)
    if match:
        year, month, day, hour_minute, seconds, zone = match.groups()
        return f"{year}:{month}:{day} {hour_minute}{seconds or ''}{zone}"
    if re.match(r"\d{4}(?:-\d{2}){0,2}", text):
        return text.replace("-", ":")
    return text


def _inflate(data: bytes, what: str) -> bytes | None:
    """zlib data of a text chunk, or None when it does not inflate completely."""
    inflater = zlib.decompressobj()
    try:
        text = inflater.decompress(data, MAX_TEXT_BYTES + 1)
    except zlib.error:
        return None
    if len(text) > MAX_TEXT_BYTES:
        raise NativeTooLarge(f"{what} inflates to more than {MAX_TEXT_BYTES} bytes")
    return text if inflater.eof else None


def _keyword_name(keyword: str) -> str | None:
    return _PNG_KEYWORDS.get(keyword) or _PNG_KEYWORDS.get(keyword[:1].upper() + keyword[1:])


@functools.lru_cache(maxsize=1024)
def _unknown_keyword_name(keyword: str) -> str:
    # Keywords repeat across a folder ("parameters", "prompt", "workflow"): cache the name.
    return tag_name(keyword)


def _read_block(tags: Tags, block: str, data: bytes) -> bool:
    """Read an XMP/EXIF block found in a PNG text chunk; False when it could not be read."""
    if block in ("XMP", "XMP_Profile"):
        if block == "XMP_Profile":
            decoded = _decode_profile(data)
            if decoded is None:
                return False
            data = decoded
        found, warnings = read_xmp(data)
        _merge(tags, found, warnings)
        return not warnings
    if block in ("EXIF_Profile", "APP1_Profile"):
        decoded = _decode_profile(data)
        if decoded is None:
            return False
        if decoded.startswith(_EXIF_HEADER):
            decoded = decoded[len(_EXIF_HEADER) :]
        elif decoded.startswith(_XMP_APP1):
            found_xmp, warnings = read_xmp(decoded[len(_XMP_APP1) :])
            _merge(tags, found_xmp, warnings)
            return True
        if decoded[:4] not in (b"MM\0*", b"II*\0"):
            return False
        found_exif, warnings = read_tiff(decoded)
        _merge(tags, found_exif, warnings)
        return True
    return True  # ICC, IPTC, Photoshop: not read (no generation metadata there)


def _decode_profile(data: bytes) -> bytes | None:
    """ImageMagick's hex-encoded raw profile: "\\n<type>\\n <length>\\n<hex digits>"."""
    match = _PROFILE.match(data)
    if not match:
        return None
    digits = re.sub(rb"\s+", b"", match.group(3))
    if len(digits) % 2:
        digits += b"0"
    try:
        return bytes.fromhex(digits.decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        return None


def _png_text(tags: Tags, chunk_type: bytes, data: bytes) -> None:
    keyword_bytes, separator, rest = data.partition(b"\0")
    if not separator:
        return
    keyword = keyword_bytes.decode("latin-1")
    language = ""
    compressed = False
    if chunk_type == b"tEXt":
        stored = rest
    elif chunk_type == b"zTXt":
        compressed = True
        stored = rest[1:]
        method = rest[:1]
    else:  # iTXt: flag, method, language NUL, translated keyword NUL, text
        if len(rest) < 4:
            return
        compressed = rest[0] != 0
        method = rest[1:2]
        language_bytes, _, after = rest[2:].partition(b"\0")
        _translated, found, stored = after.partition(b"\0")
        if not found:
            return
        language = language_bytes.decode("latin-1")
    raw: bytes | None = stored
    if compressed:
        if method != b"\0":
            _warn(tags, f"Unknown compression method for {keyword}")
            raw = None
        else:
            raw = _inflate(stored, f"{chunk_type.decode()} chunk {keyword!r}")
            if raw is None:
                _warn(tags, f"Error inflating {keyword}")
    block = _PNG_BLOCKS.get(keyword)
    if block is not None:
        if raw is None or not _read_block(tags, block, raw):
            tags[f"PNG:{block}"] = binary_placeholder(len(raw if raw is not None else stored))
        return
    name = _keyword_name(keyword)
    if raw is None:
        tags[f"PNG:{name or _unknown_keyword_name(keyword)}"] = binary_placeholder(len(stored))
        return
    text_value = fix_utf8(raw) if chunk_type == b"iTXt" else decode_latin(raw)
    if name is None:
        name = _unknown_keyword_name(keyword)
        if keyword.startswith("Raw profile type "):
            tags[f"PNG:{name}"] = binary_placeholder(len(text_value.encode("utf-8")))
            return
    elif language:
        name = f"{name}-{standard_language(language)}"
    if name == "CreationTime":
        text_value = _png_date(text_value)
    elif name in ("CreateDate", "ModDate"):
        text_value = _xmp_date(text_value)
    tags[f"PNG:{name}"] = json_value(text_value)


def _png_exif(tags: Tags, data: bytes) -> None:
    if data.startswith(_EXIF_HEADER):
        _warn(tags, 'Improper "Exif00" header in EXIF chunk')
        data = data[len(_EXIF_HEADER) :]
    if data[:2] not in (b"MM", b"II"):
        _warn(tags, "Invalid eXIf chunk")
        tags["PNG:eXIf"] = binary_placeholder(len(data))
        return
    found, warnings = read_tiff(data)
    _merge(tags, found, warnings)


def _fraction(value: int, scale: int) -> Value:
    return json_value(f"{value / scale:.15g}")


def _png_ancillary(tags: Tags, chunk_type: bytes, data: bytes, color_type: int) -> None:
    if chunk_type == b"gAMA" and len(data) >= 4:
        (stored,) = struct.unpack(">I", data[:4])
        # ExifTool reports the decoding gamma, rounded to 4 decimals.
        gamma = int(1e9 / stored + 0.5) / 1e4 if stored else 0
        tags["PNG:Gamma"] = json_value(f"{gamma:.15g}")
    elif chunk_type == b"sRGB" and data:
        tags["PNG:SRGBRendering"] = data[0]
    elif chunk_type == b"tIME" and len(data) >= 7:
        year, month, day, hour, minute, second = struct.unpack(">HBBBBB", data[:7])
        tags["PNG:ModifyDate"] = (
            f"{year:04d}:{month:02d}:{day:02d} {hour:02d}:{minute:02d}:{second:02d}"
        )
    elif chunk_type == b"cHRM" and len(data) >= 32:
        names = ("WhitePointX", "WhitePointY", "RedX", "RedY", "GreenX", "GreenY", "BlueX")
        values = struct.unpack(">8I", data[:32])
        for name, value in zip((*names, "BlueY"), values, strict=True):
            tags[f"PNG:{name}"] = json_value(f"{value / 100000:.15g}")
    elif chunk_type == b"bKGD" and data:
        count = len(data) // 2
        numbers = struct.unpack(f">{count}H", data[: 2 * count]) if count else (data[0],)
        tags["PNG:BackgroundColor"] = json_value(" ".join(str(n) for n in numbers))
    elif chunk_type == b"tRNS":
        if len(data) > 6:
            tags["PNG:Transparency"] = binary_placeholder(len(data))
        elif color_type == 3:
            tags["PNG:Transparency"] = json_value(" ".join(str(byte) for byte in data))
        else:
            count = len(data) // 2
            numbers = struct.unpack(f">{count}H", data[: 2 * count])
            tags["PNG:Transparency"] = json_value(" ".join(str(n) for n in numbers))
    elif chunk_type == b"iCCP":
        profile_name, _, rest = data.partition(b"\0")
        if profile_name:
            tags["PNG:ProfileName"] = json_value(decode_latin(profile_name))
        # ExifTool reads the profile into its ICC groups (no generation metadata there);
        # only a profile it cannot read shows up as a PNG tag.
        profile = _inflate(rest[1:], "iCCP chunk") if rest[:1] == b"\0" else None
        if profile is None:
            tags["PNG:ICC_Profile"] = binary_placeholder(len(rest[1:]))
        elif len(profile) < 128 or int.from_bytes(profile[:4], "big") != len(profile):
            _warn(tags, f"Bad length ICC_Profile (length {int.from_bytes(profile[:4], 'big')})")
            tags["PNG:ICC_Profile"] = binary_placeholder(len(profile))
    elif chunk_type == b"pHYs" and len(data) >= 9:
        per_x, per_y, unit = struct.unpack(">IIB", data[:9])
        tags["PNG-pHYs:PixelsPerUnitX"] = per_x
        tags["PNG-pHYs:PixelsPerUnitY"] = per_y
        tags["PNG-pHYs:PixelUnits"] = unit


_PNG_TEXT = frozenset({b"tEXt", b"zTXt", b"iTXt"})
_PNG_DATA = frozenset({b"IDAT", b"JDAT", b"JDAA"})
_PNG_ANCILLARY = frozenset({b"gAMA", b"sRGB", b"tIME", b"cHRM", b"bKGD", b"tRNS", b"iCCP", b"pHYs"})


def _read_png(source: _Source) -> Tags:
    tags: Tags = {"File:FileType": "PNG"}
    size = source.size
    position = 8
    after_data = False
    color_type = -1
    while True:
        header = source.read(position, 8)
        if len(header) < 8:
            raise NativeReadError(f"truncated PNG: no IEND chunk before the end ({size} bytes)")
        length, chunk_type = struct.unpack(">I4s", header)
        end = position + 12 + length
        if length > 0x7FFFFFFF or end > size:
            raise NativeReadError(
                f"truncated PNG: chunk {chunk_type!r} at offset {position} declares {length} "
                f"bytes, past the end of the file ({size} bytes)"
            )
        if chunk_type == b"IEND":
            break
        if chunk_type in _PNG_DATA:
            after_data = True
        elif chunk_type in _PNG_TEXT or chunk_type == b"eXIf":
            cap = MAX_TEXT_BYTES if chunk_type != b"eXIf" else MAX_EXIF_BYTES
            if length > cap:
                raise NativeTooLarge(f"PNG {chunk_type.decode()} chunk of {length} bytes")
            if after_data:
                _warn(
                    tags,
                    "[minor] Text/EXIF chunk(s) found after PNG IDAT "
                    "(may be ignored by some readers)",
                )
            data = source.read(position + 8, length)
            if chunk_type == b"eXIf":
                _png_exif(tags, data)
            else:
                _png_text(tags, chunk_type, data)
        elif chunk_type == b"IHDR" and length >= 13:
            width, height, depth, color, compression, filtering, interlace = struct.unpack(
                ">IIBBBBB", source.read(position + 8, 13)
            )
            tags.update(
                {
                    "PNG:ImageWidth": width,
                    "PNG:ImageHeight": height,
                    "PNG:BitDepth": depth,
                    "PNG:ColorType": color,
                    "PNG:Compression": compression,
                    "PNG:Filter": filtering,
                    "PNG:Interlace": interlace,
                }
            )
            _image_size(tags, width, height)
            color_type = color
        elif chunk_type == b"caBX":
            _jumbf_description(tags, source.read(position + 8, min(length, 1024)))
        elif chunk_type in _PNG_ANCILLARY and length <= MAX_EXIF_BYTES:
            _png_ancillary(tags, chunk_type, source.read(position + 8, length), color_type)
        position = end
    return tags


# --------------------------------------------------------------------------------- JPEG

# Start-of-frame markers (all SOFn except DHT C4, JPG C8 and DAC CC).
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_STANDALONE_MARKERS = frozenset({0x01, *range(0xD0, 0xD8)})


def _read_jpeg(source: _Source) -> Tags:
    tags: Tags = {"File:FileType": "JPEG"}
    size = source.size
    position = 2
    seen_exif = seen_xmp = False
    while True:
        marker_bytes = source.read(position, 2)
        if len(marker_bytes) < 2:
            raise NativeReadError(f"truncated JPEG: no image data before the end ({size} bytes)")
        if marker_bytes[0] != 0xFF:
            raise NativeReadError(f"corrupt JPEG: no segment marker at offset {position}")
        marker = marker_bytes[1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in (0xD9, 0xDA):  # end of image, start of scan: the metadata is behind us
            break
        if marker in _STANDALONE_MARKERS or marker == 0xD8:
            position += 2
            continue
        length_bytes = source.read(position + 2, 2)
        if len(length_bytes) < 2:
            raise NativeReadError(f"truncated JPEG: segment header at offset {position} cut off")
        (length,) = struct.unpack(">H", length_bytes)
        end = position + 2 + length
        if length < 2 or end > size:
            raise NativeReadError(
                f"truncated JPEG: segment 0x{marker:02X} at offset {position} declares "
                f"{length} bytes, past the end of the file ({size} bytes)"
            )
        if marker == 0xEB:  # APP11: JPEG XT boxes; "JP", instance, sequence, then the box
            data = source.read(position + 4, min(length - 2, 1024))
            if data[:2] == b"JP":
                _jumbf_description(tags, data[8:])
        elif marker == 0xE1 or marker == 0xFE or marker in _SOF_MARKERS:
            data = source.read(position + 4, length - 2)
            if marker == 0xFE:
                tags["File:Comment"] = json_value(fix_utf8(data))
            elif marker in _SOF_MARKERS:
                if len(data) >= 5:
                    height, width = struct.unpack(">HH", data[1:5])
                    tags["File:ImageWidth"] = width
                    tags["File:ImageHeight"] = height
                    _image_size(tags, width, height)
            elif data.startswith(b"Exif\0") and not seen_exif:
                seen_exif = True
                found, warnings = read_tiff(data[6:])
                _merge(tags, found, warnings)
            elif data.startswith(_XMP_APP1) and not seen_xmp:
                seen_xmp = True
                found_xmp, warnings = read_xmp(data[len(_XMP_APP1) :])
                _merge(tags, found_xmp, warnings)
        position = end
    return tags


# --------------------------------------------------------------------------------- WebP


def _read_webp(source: _Source) -> Tags:
    tags: Tags = {"File:FileType": "WEBP"}
    size = source.size
    position = 12
    extended = False
    while position + 8 <= size:
        header = source.read(position, 8)
        chunk_type, length = struct.unpack("<4sI", header)
        end = position + 8 + length
        if end > size:
            raise NativeReadError(
                f"truncated WebP: chunk {chunk_type!r} at offset {position} declares {length} "
                f"bytes, past the end of the file ({size} bytes)"
            )
        if chunk_type == b"VP8X" and length >= 10:
            data = source.read(position + 8, 10)
            extended = True
            tags["File:FileType"] = "Extended WEBP"
            width = 1 + int.from_bytes(data[4:7], "little")
            height = 1 + int.from_bytes(data[7:10], "little")
            _webp_size(tags, width, height)
        elif chunk_type == b"VP8 " and length >= 10 and not extended:
            data = source.read(position + 8, 10)
            if data[3:6] == b"\x9d\x01\x2a":
                width, height = struct.unpack("<HH", data[6:10])
                _webp_size(tags, width & 0x3FFF, height & 0x3FFF)
        elif chunk_type == b"VP8L" and length >= 5 and not extended:
            data = source.read(position + 8, 5)
            if data[0] == 0x2F:
                (bits,) = struct.unpack("<I", data[1:5])
                _webp_size(tags, (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
        elif chunk_type in (b"EXIF", b"XMP "):
            if length > MAX_EXIF_BYTES:
                raise NativeTooLarge(f"WebP {chunk_type.decode().strip()} chunk of {length} bytes")
            data = source.read(position + 8, length)
            if chunk_type == b"EXIF":
                if data.startswith(_EXIF_HEADER):
                    _warn(tags, "[minor] Improper EXIF header")
                    data = data[len(_EXIF_HEADER) :]
                found_exif, warnings = read_tiff(data)
                _merge(tags, found_exif, warnings)
            else:
                found_xmp, warnings = read_xmp(data)
                _merge(tags, found_xmp, warnings)
        position = end + (length & 1)
    if 0 < size - position < 8:
        raise NativeReadError(f"truncated WebP: chunk header at offset {position} cut off")
    return tags


def _webp_size(tags: Tags, width: int, height: int) -> None:
    tags["RIFF:ImageWidth"] = width
    tags["RIFF:ImageHeight"] = height
    _image_size(tags, width, height)
