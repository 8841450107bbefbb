"""Byte-level builders for reader tests: TIFF/EXIF blocks, WebP files, raw PNG chunks.

The shared factory (tests/factory.py) covers the common cases through Pillow; these helpers
write the bytes Pillow will not (big-endian EXIF, IFD loops, WebP chunks with an ``Exif``
prefix, chunks with wrong lengths).
"""

from __future__ import annotations

import struct
import zlib

from factory import png_chunk

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ASCII, UNDEFINED, SHORT, LONG, RATIONAL, BYTE = 2, 7, 3, 4, 5, 1
_SIZES = {BYTE: 1, ASCII: 1, SHORT: 2, LONG: 4, RATIONAL: 8, UNDEFINED: 1}

Entry = tuple[int, int, bytes | int | tuple[int, int]]


def _pack_value(order: str, field_type: int, value: bytes | int | tuple[int, int]) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, tuple):
        return struct.pack(f"{order}II", *value)
    code = {SHORT: "H", LONG: "I", BYTE: "B"}[field_type]
    return struct.pack(f"{order}{code}", value)


def tiff(
    ifd0: list[Entry],
    exif_ifd: list[Entry] | None = None,
    *,
    big_endian: bool = True,
    exif_pointer: int | None = None,
) -> bytes:
    """A TIFF block with IFD0 and (optionally) an Exif IFD.

    ``exif_pointer`` overrides the Exif IFD offset (to build loops and bad offsets).
    """
    order = ">" if big_endian else "<"
    header = (b"MM\0*" if big_endian else b"II*\0") + struct.pack(f"{order}I", 8)
    entries = list(ifd0)
    if exif_ifd is not None or exif_pointer is not None:
        entries.append((0x8769, LONG, 0))  # patched below
    entries.sort(key=lambda entry: entry[0])
    ifd0_size = 2 + 12 * len(entries) + 4
    exif_offset = 8 + ifd0_size
    exif_size = 0 if exif_ifd is None else 2 + 12 * len(exif_ifd) + 4
    data_offset = exif_offset + exif_size
    payload = b""

    def directory(items: list[Entry]) -> bytes:
        nonlocal payload
        out = struct.pack(f"{order}H", len(items))
        for tag, field_type, value in items:
            raw = _pack_value(order, field_type, value)
            if tag == 0x8769:
                pointer = exif_offset if exif_pointer is None else exif_pointer
                raw = struct.pack(f"{order}I", pointer)
            count = len(raw) // _SIZES[field_type]
            if len(raw) <= 4:
                field = raw.ljust(4, b"\0")
            else:
                field = struct.pack(f"{order}I", data_offset + len(payload))
                payload += raw + (b"\0" if len(raw) % 2 else b"")
            out += struct.pack(f"{order}HHI", tag, field_type, count) + field
        return out + struct.pack(f"{order}I", 0)

    first = directory(entries)
    second = directory(exif_ifd) if exif_ifd is not None else b""
    return header + first + second + payload


def png(
    before: list[bytes] = (),  # type: ignore[assignment]
    after: list[bytes] = (),  # type: ignore[assignment]
    *,
    size: tuple[int, int] = (4, 3),
    color_type: int = 2,
) -> bytes:
    """PNG bytes with the given ready-made chunks before and after the image data."""
    width, height = size
    channels = {2: 3, 6: 4, 0: 1}[color_type]
    ihdr = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    raw = b"".join(b"\0" + b"\x10" * channels * width for _ in range(height))
    return (
        PNG_SIGNATURE
        + png_chunk(b"IHDR", ihdr)
        + b"".join(before)
        + png_chunk(b"IDAT", zlib.compress(raw))
        + b"".join(after)
        + png_chunk(b"IEND", b"")
    )


def text(keyword: bytes, value: bytes) -> bytes:
    return png_chunk(b"tEXt", keyword + b"\0" + value)


def ztxt(keyword: bytes, value: bytes) -> bytes:
    return png_chunk(b"zTXt", keyword + b"\0\0" + zlib.compress(value))


def itxt(keyword: bytes, value: bytes, *, compressed: bool = False, language: bytes = b"") -> bytes:
    body = zlib.compress(value) if compressed else value
    flags = bytes([1 if compressed else 0, 0])
    return png_chunk(b"iTXt", keyword + b"\0" + flags + language + b"\0" + b"\0" + body)


def riff_chunk(kind: bytes, data: bytes) -> bytes:
    return kind + struct.pack("<I", len(data)) + data + (b"\0" if len(data) % 2 else b"")


def webp(chunks: list[bytes]) -> bytes:
    """A WebP file from ready-made RIFF chunks."""
    body = b"WEBP" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def vp8l_chunk(width: int, height: int) -> bytes:
    """A VP8L header chunk (enough for the size; the bitstream itself is not valid)."""
    bits = (width - 1) | ((height - 1) << 14)
    return riff_chunk(b"VP8L", b"\x2f" + struct.pack("<I", bits) + b"\0" * 8)


def vp8x_chunk(width: int, height: int, flags: int) -> bytes:
    data = bytes([flags, 0, 0, 0]) + (width - 1).to_bytes(3, "little")
    return riff_chunk(b"VP8X", data + (height - 1).to_bytes(3, "little"))


XMP_PACKET = (
    '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
    '<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="Test Toolkit 1.0">'
    '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/"'
    ' xmlns:exif="http://ns.adobe.com/exif/1.0/" xmlns:xmp="http://ns.adobe.com/xap/1.0/"'
    ' xmlns:tiff="http://ns.adobe.com/tiff/1.0/" xmlns:sd="http://example.com/sd/1.0/"'
    ' xmp:CreatorTool="ComfyUI" tiff:Make="maker" xmp:CreateDate="2024-05-06T07:08:09">'
    '<dc:description><rdf:Alt><rdf:li xml:lang="x-default">a cat, masterpiece</rdf:li>'
    '<rdf:li xml:lang="de-de">eine Katze</rdf:li></rdf:Alt></dc:description>'
    '<dc:title><rdf:Alt><rdf:li xml:lang="x-default">Title 東京</rdf:li></rdf:Alt></dc:title>'
    "<dc:subject><rdf:Bag><rdf:li>cat</rdf:li><rdf:li>1.5</rdf:li></rdf:Bag></dc:subject>"
    "<dc:creator><rdf:Seq><rdf:li>me</rdf:li></rdf:Seq></dc:creator>"
    '<exif:UserComment><rdf:Alt><rdf:li xml:lang="x-default">Steps: 20, Sampler: Euler &amp;'
    " more\nNegative prompt: ugly </rdf:li></rdf:Alt></exif:UserComment>"
    "<exif:PixelXDimension>640</exif:PixelXDimension><tiff:XResolution>72/1</tiff:XResolution>"
    "<sd:seed>0012</sd:seed><sd:cfg_scale>7/2</sd:cfg_scale><sd:when>2023-01-02 03:04</sd:when>"
    "</rdf:Description></rdf:RDF></x:xmpmeta>"
    '<?xpacket end="w"?>'
).encode("utf-8")
