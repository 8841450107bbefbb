"""Turn raw metadata bytes into the exact values ``exiftool -json -n`` prints.

ExifTool's JSON writer changes values on the way out, and the native reader has to make the
same changes so that both readers feed identical tag dicts to ``fields.text_fields``:

* a string that looks like a JSON number (ExifTool's own, conservative pattern) is printed
  as a number, ``true``/``false`` (any case) as a boolean;
* NUL characters are dropped;
* bytes that are not valid UTF-8 are replaced one by one with ``?`` (its ``FixUTF8``).
"""

from __future__ import annotations

import re

# ExifTool prints these unquoted. Perl's "$" also matches before a final newline, so a
# value like "5\n" comes out as the JSON number 5.
_JSON_NUMBER = re.compile(
    r"-?(?:\d|[1-9]\d{1,14})(?:\.\d{1,16})?(?:[eE][-+]?\d{1,3})?\n?", re.ASCII
)
_JSON_BOOL = re.compile(r"(?i:true|false)\n?")

# cp1252 as ExifTool decodes it: the five code points cp1252 leaves undefined (0x81, 0x8D,
# 0x8F, 0x90, 0x9D) map to the same Latin-1 code point instead of failing.
_CP1252_HIGH = bytes(range(0x80, 0xA0)).decode("cp1252", errors="replace")
_CP1252_TABLE = {
    0x80 + index: (char if char != "\ufffd" else chr(0x80 + index))
    for index, char in enumerate(_CP1252_HIGH)
}

Value = str | int | float | bool


def json_value(text: str) -> Value:
    """The value a JSON parser gets back for ``text`` after ExifTool printed it."""
    if text and (text[0].isdigit() or text[0] == "-") and _JSON_NUMBER.fullmatch(text):
        number = text.rstrip("\n")
        if "." in number or "e" in number or "E" in number:
            return float(number)
        return int(number)
    if len(text) in (4, 5, 6) and _JSON_BOOL.fullmatch(text):
        return text.rstrip("\n").lower() == "true"
    if "\0" in text:
        return text.replace("\0", "")
    return text


def fix_utf8(data: bytes) -> str:
    """Decode UTF-8 the way ExifTool's JSON output does: each bad byte becomes ``?``."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return _fix_utf8_slow(data)
    # Python accepts the non-characters U+FFFE/U+FFFF, ExifTool replaces them.
    if "\ufffe" in text or "\uffff" in text:
        return _fix_utf8_slow(data)
    return text


def _sequence_ok(data: bytes, pos: int, lead: int) -> int:
    """Length of the valid UTF-8 sequence starting at ``pos`` (0 when ExifTool rejects it)."""
    if not 0xC2 <= lead < 0xF8:
        return 0
    extra = 1 if lead < 0xE0 else (2 if lead < 0xF0 else 3)
    tail = data[pos + 1 : pos + 1 + extra]
    if len(tail) != extra or any(not 0x80 <= byte <= 0xBF for byte in tail):
        return 0
    first = tail[0]
    if extra == 2 and (
        (lead == 0xE0 and first & 0xE0 == 0x80)
        or (lead == 0xED and first & 0xE0 == 0xA0)
        or (lead == 0xEF and first == 0xBF and tail[1] & 0xFE == 0xBE)
    ):
        return 0
    if extra == 3 and (
        (lead == 0xF0 and first & 0xF0 == 0x80) or (lead == 0xF4 and first > 0x8F) or lead > 0xF4
    ):
        return 0
    return 1 + extra


def _fix_utf8_slow(data: bytes) -> str:
    out = bytearray()
    pos = 0
    size = len(data)
    while pos < size:
        byte = data[pos]
        if byte < 0x80:
            out.append(byte)
            pos += 1
            continue
        length = _sequence_ok(data, pos, byte)
        if length:
            out += data[pos : pos + length]
            pos += length
        else:
            out.append(0x3F)  # "?"
            pos += 1
    return out.decode("utf-8")


def decode_latin(data: bytes) -> str:
    """Decode PNG tEXt/zTXt bytes as ExifTool does (cp1252, undefined bytes kept as Latin-1).

    Pure ASCII passes through untouched; otherwise ExifTool's re-encoding stops at the first
    NUL, so the value is cut there.
    """
    if data.isascii():
        return data.decode("ascii")
    nul = data.find(b"\0")
    if nul >= 0:
        data = data[:nul]
    text = data.decode("latin-1")
    if any(0x80 <= ord(char) < 0xA0 for char in text):
        text = text.translate(_CP1252_TABLE)
    return text


def binary_placeholder(size: int) -> str:
    """What ExifTool prints for a binary value without ``-b``."""
    return f"(Binary data {size} bytes, use -b option to extract)"
