"""EXIF (TIFF IFD) reading for the native reader: IFD0 and the Exif sub-IFD.

Only the tags in ``_TAGS`` are reported (text tags generators write plus the common
image-description tags); ExifTool reports every tag it knows, so for camera files the
native reader gives fewer EXIF tags. Values follow ``exiftool -json -n``: strings cut at the
first NUL, trailing blanks removed where ExifTool removes them, UserComment decoded with its
8-byte character-code header, numbers as numbers, several numbers joined by spaces.

GPS, Interop, maker notes and IFD1 (thumbnail) are not read. Bad offsets and IFD loops are
skipped (ExifTool also skips them with a warning), never raised.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable

from aimeta.metadata.readers.native_values import Value, fix_utf8, json_value

# TIFF field types: (size of one value, struct code or "" for bytes/text).
_FORMATS: dict[int, tuple[int, str]] = {
    1: (1, "B"),
    2: (1, ""),
    3: (2, "H"),
    4: (4, "I"),
    5: (8, "II"),
    6: (1, "b"),
    7: (1, ""),
    8: (2, "h"),
    9: (4, "i"),
    10: (8, "ii"),
    11: (4, "f"),
    12: (8, "d"),
    13: (4, "I"),
}
_ASCII, _UNDEFINED = 2, 7
_EXIF_IFD_POINTER = 0x8769
_MAX_ENTRIES = 1000

_SURROGATE = re.compile("[\ud800-\udfff]")


def _rstrip_perl(data: bytes) -> bytes:
    """Perl's ``s/\\s+$//``: trailing whitespace (newlines included) removed."""
    return data.rstrip(b" \t\n\r\f\v")


def _trim_blanks(text: str) -> str:
    """Perl's ``s/ +$//``: trailing spaces, also those just before one final newline."""
    if text.endswith(" "):
        return text.rstrip(" ")
    if text.endswith(" \n"):
        return text[:-1].rstrip(" ") + "\n"
    return text


def _ucs2_le(raw: bytes) -> str:
    """Windows XP* tags: UCS-2 little-endian (a BOM wins), cut at the first NUL."""
    byte_order = "le"
    if raw[:2] in (b"\xfe\xff", b"\xff\xfe"):
        byte_order = "be" if raw[:2] == b"\xfe\xff" else "le"
        raw = raw[2:]
    raw = raw[: len(raw) & ~1]
    text = raw.decode(f"utf-16-{byte_order}", "surrogatepass")
    return _finish_unicode(text)


def _finish_unicode(text: str) -> str:
    nul = text.find("\0")
    if nul >= 0:
        text = text[:nul]
    # A lone surrogate is written out as three bytes ExifTool's JSON output rejects.
    if text.isascii() or not _SURROGATE.search(text):
        return text
    return _SURROGATE.sub("???", text)


def _utf16_guess(raw: bytes, tiff_order: str) -> str:
    """UTF-16 as ExifTool reads an EXIF ``UNICODE`` comment.

    A BOM decides the byte order; otherwise ExifTool starts from the TIFF byte order and
    swaps when the "high" bytes vary more than the "low" ones (or are zero less often).
    """
    if raw[:2] in (b"\xfe\xff", b"\xff\xfe"):
        order = "be" if raw[:2] == b"\xfe\xff" else "le"
        raw = raw[2:]
    else:
        order = "be" if tiff_order == ">" else "le"
        raw = raw[: len(raw) & ~1]
        first, second = raw[0::2], raw[1::2]
        high, low = (first, second) if order == "be" else (second, first)
        units = len(high)
        zero_high, zero_low = high.count(0), low.count(0)
        # Cheap answers first: ASCII-range text has all-zero high bytes (keep the order) or,
        # read with the wrong order, all-zero low bytes (swap).
        if zero_high == units:
            swap = False
        elif zero_low == units:
            swap = True
        else:
            distinct_high, distinct_low = len(set(high)), len(set(low))
            swap = distinct_high > distinct_low or (
                distinct_high == distinct_low and zero_low > zero_high
            )
        if swap:
            order = "le" if order == "be" else "be"
    raw = raw[: len(raw) & ~1]
    return _finish_unicode(raw.decode(f"utf-16-{order}", "surrogatepass"))


def user_comment(raw: bytes, tiff_order: str) -> tuple[str, str | None]:
    """Decode an EXIF UserComment (8-byte code + text); returns (text, warning or None)."""
    if len(raw) < 8:
        return fix_utf8(raw), None
    code, body = raw[:8], raw[8:]
    warning = None
    if re.match(rb"(?:ASCII)?(?:\0|[\0 ]+\Z)", code):
        nul = body.find(b"\0")
        text = fix_utf8(body if nul < 0 else body[:nul])
    elif re.fullmatch(rb"UNICODE[\0 ]", code):
        text = _utf16_guess(body, tiff_order)
    elif re.fullmatch(rb"JIS[\0 ]{5}", code):
        text = body.decode("iso2022_jp", errors="replace")
    else:
        warning = "Invalid EXIF text encoding for UserComment"
        text = fix_utf8(raw)
    return _trim_blanks(text), warning


def _copyright(raw: bytes) -> str:
    text = re.sub(rb" *\0", b"\n", raw, count=1)
    text = re.sub(rb" *\0.*", b"", text, count=1, flags=re.DOTALL)
    text = re.sub(rb"\n(?=\n?\Z)", b"", text, count=1)
    return fix_utf8(text)


_Converter = Callable[[bytes, str], Value]


def _rstrip_text(raw: bytes, _order: str) -> Value:
    return json_value(fix_utf8(_rstrip_perl(raw)))


# tag id -> (name, read as raw bytes whatever the stored type, special conversion)
_TAGS: dict[int, tuple[str, bool, _Converter | None]] = {
    0x0100: ("ImageWidth", False, None),
    0x0101: ("ImageHeight", False, None),
    0x010D: ("DocumentName", False, None),
    0x010E: ("ImageDescription", False, None),
    0x010F: ("Make", False, _rstrip_text),
    0x0110: ("Model", False, _rstrip_text),
    0x0112: ("Orientation", False, None),
    0x011A: ("XResolution", False, None),
    0x011B: ("YResolution", False, None),
    0x0128: ("ResolutionUnit", False, None),
    0x0131: ("Software", False, _rstrip_text),
    0x0132: ("ModifyDate", False, None),
    0x013B: ("Artist", False, _rstrip_text),
    0x013C: ("HostComputer", False, None),
    0x0213: ("YCbCrPositioning", False, None),
    0x8298: ("Copyright", True, lambda raw, _order: json_value(_copyright(raw))),
    0x9000: ("ExifVersion", True, None),
    0x9003: ("DateTimeOriginal", False, None),
    0x9004: ("CreateDate", False, None),
    0x9010: ("OffsetTime", False, None),
    0x9011: ("OffsetTimeOriginal", False, None),
    0x9012: ("OffsetTimeDigitized", False, None),
    0x9286: ("UserComment", True, lambda raw, order: json_value(user_comment(raw, order)[0])),
    0x9C9B: ("XPTitle", True, lambda raw, _order: json_value(_ucs2_le(raw))),
    0x9C9C: ("XPComment", True, lambda raw, _order: json_value(_ucs2_le(raw))),
    0x9C9D: ("XPAuthor", True, lambda raw, _order: json_value(_ucs2_le(raw))),
    0x9C9E: ("XPKeywords", True, lambda raw, _order: json_value(_ucs2_le(raw))),
    0x9C9F: ("XPSubject", True, lambda raw, _order: json_value(_ucs2_le(raw))),
    0xA001: ("ColorSpace", False, None),
    0xA002: ("ExifImageWidth", False, None),
    0xA003: ("ExifImageHeight", False, None),
    0xA420: ("ImageUniqueID", False, None),
    0xA430: ("OwnerName", False, None),
}


def _format_number(number: float, digits: int) -> str:
    return f"{number:.{digits}g}"


def _numbers(raw: bytes, order: str, field_type: int, count: int) -> Value:
    size, code = _FORMATS[field_type]
    values = struct.unpack(f"{order}{count * code}", raw[: count * size])
    parts: list[str] = []
    if field_type in (5, 10):
        for numerator, denominator in zip(values[0::2], values[1::2], strict=True):
            if denominator:
                parts.append(_format_number(numerator / denominator, 10))
            else:
                parts.append("inf" if numerator else "undef")
    elif field_type in (11, 12):
        parts = [_format_number(value, 15) for value in values]
    else:
        parts = [str(value) for value in values]
    return json_value(" ".join(parts))


class _IfdReader:
    def __init__(self, data: bytes, order: str) -> None:
        self.data = data
        self.order = order
        self.visited: set[int] = set()
        self.warnings: list[str] = []

    def read(self, offset: int, group: str, tags: dict[str, Value]) -> None:
        data = self.data
        if offset in self.visited:
            self.warnings.append(f"{group} loop at offset {offset}")
            return
        self.visited.add(offset)
        if offset < 8 or offset + 2 > len(data):
            self.warnings.append(f"Bad {group} directory offset")
            return
        (count,) = struct.unpack_from(f"{self.order}H", data, offset)
        if count > _MAX_ENTRIES:
            self.warnings.append(f"Too many entries in {group}")
            return
        sub_ifds: list[int] = []
        for index in range(count):
            entry = offset + 2 + 12 * index
            if entry + 12 > len(data):
                self.warnings.append(f"{group} directory truncated")
                break
            tag, field_type, value_count = struct.unpack_from(f"{self.order}HHI", data, entry)
            if field_type not in _FORMATS:
                continue
            if tag == _EXIF_IFD_POINTER and group == "IFD0":
                (pointer,) = struct.unpack_from(f"{self.order}I", data, entry + 8)
                sub_ifds.append(pointer)
                continue
            known = _TAGS.get(tag)
            if known is None:
                continue
            size = _FORMATS[field_type][0] * value_count
            if size <= 4:
                start = entry + 8
            else:
                (start,) = struct.unpack_from(f"{self.order}I", data, entry + 8)
            if start + size > len(data) or value_count == 0:
                self.warnings.append(f"Bad offset for {group} tag 0x{tag:04x}")
                continue
            raw = data[start : start + size]
            name, as_bytes, convert = known
            tags[f"{group}:{name}"] = self._value(raw, field_type, value_count, as_bytes, convert)
        for pointer in sub_ifds:
            self.read(pointer, "ExifIFD", tags)

    def _value(
        self,
        raw: bytes,
        field_type: int,
        count: int,
        as_bytes: bool,
        convert: _Converter | None,
    ) -> Value:
        if convert is not None:
            if field_type == _ASCII and not as_bytes:
                nul = raw.find(b"\0")
                raw = raw if nul < 0 else raw[:nul]
            return convert(raw, self.order)
        if field_type == _ASCII:
            nul = raw.find(b"\0")
            return json_value(fix_utf8(raw if nul < 0 else raw[:nul]))
        if field_type == _UNDEFINED or as_bytes:
            return json_value(fix_utf8(raw))
        return _numbers(raw, self.order, field_type, count)


def read_tiff(data: bytes) -> tuple[dict[str, Value], list[str]]:
    """Tags of IFD0 and the Exif IFD from a TIFF-structured EXIF block.

    ``data`` starts at the TIFF header (``II*\\0`` / ``MM\\0*``). Returns the tags keyed
    ``IFD0:Name`` / ``ExifIFD:Name`` plus ``File:ExifByteOrder``, and a list of warnings.
    Malformed parts are skipped with a warning; nothing is raised.
    """
    if len(data) < 8:
        return {}, ["EXIF block too short"]
    if data[:4] == b"II*\0":
        order = "<"
    elif data[:4] == b"MM\0*":
        order = ">"
    else:
        return {}, ["Invalid EXIF header"]
    tags: dict[str, Value] = {"File:ExifByteOrder": "II" if order == "<" else "MM"}
    reader = _IfdReader(data, order)
    (first_ifd,) = struct.unpack_from(f"{order}I", data, 4)
    reader.read(first_ifd, "IFD0", tags)
    return tags, reader.warnings
