"""Fixture factory: small image files carrying exactly the metadata bytes a test states.

PNG chunks are written by hand (so tests can place text after the image data, pick tEXt,
zTXt or iTXt, and write UTF-8 into tEXt as some tools wrongly do); JPEG and WebP EXIF go
through Pillow with the UserComment bytes built here in every encoding generators use.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Literal
from xml.sax.saxutils import escape

import numpy as np
from PIL import Image
from PIL.PngImagePlugin import PngInfo

Chunk = Literal["tEXt", "zTXt", "iTXt"]
UserCommentEncoding = Literal[
    "unicode-be", "unicode-le", "unicode-bom", "ascii", "ascii-utf8", "none"
]

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_EXIF_IFD_POINTER = 0x8769
_USER_COMMENT = 0x9286
_MAKE, _MODEL, _IMAGE_DESCRIPTION, _SOFTWARE = 0x010F, 0x0110, 0x010E, 0x0131


def png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk with a correct CRC."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def text_chunk(
    keyword: str, text: str, chunk: Chunk = "tEXt", *, tEXt_encoding: str = "latin-1"
) -> bytes:
    """A tEXt (Latin-1, or ``tEXt_encoding``), zTXt (zlib) or iTXt (UTF-8) chunk."""
    key = keyword.encode("latin-1")
    if chunk == "tEXt":
        return png_chunk(b"tEXt", key + b"\0" + text.encode(tEXt_encoding))
    if chunk == "zTXt":
        return png_chunk(b"zTXt", key + b"\0\0" + zlib.compress(text.encode("latin-1")))
    return png_chunk(b"iTXt", key + b"\0\0\0\0\0" + text.encode("utf-8"))


def png_with_text(
    path: Path,
    chunks: Mapping[str, str],
    *,
    chunk: Chunk = "tEXt",
    after_idat: bool = False,
    size: tuple[int, int] = (8, 8),
    tEXt_encoding: str = "latin-1",
) -> Path:
    """Write an RGB PNG of ``size`` with one text chunk per ``chunks`` item.

    Values that do not fit Latin-1 in a tEXt/zTXt chunk go into iTXt automatically.
    """
    width, height = size
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    raw = b"".join(b"\0" + b"\x80\x40\x20" * width for _ in range(height))
    texts = b""
    for keyword, text in chunks.items():
        kind: Chunk = chunk
        if kind != "iTXt" and tEXt_encoding == "latin-1":
            try:
                text.encode("latin-1")
            except UnicodeEncodeError:
                kind = "iTXt"
        texts += text_chunk(keyword, text, kind, tEXt_encoding=tEXt_encoding)
    body = png_chunk(b"IHDR", ihdr)
    idat = png_chunk(b"IDAT", zlib.compress(raw))
    body += idat + texts if after_idat else texts + idat
    path.write_bytes(_PNG_SIGNATURE + body + png_chunk(b"IEND", b""))
    return path


def user_comment_bytes(text: str, encoding: UserCommentEncoding = "unicode-be") -> bytes:
    """EXIF UserComment bytes: an 8-byte charset header (or none) and the text.

    ``ascii-utf8`` is the ASCII header followed by UTF-8 bytes, as NovelAI writes it.
    """
    if encoding == "unicode-be":
        return b"UNICODE\0" + text.encode("utf-16-be")
    if encoding == "unicode-le":
        return b"UNICODE\0" + text.encode("utf-16-le")
    if encoding == "unicode-bom":
        return b"UNICODE\0" + b"\xff\xfe" + text.encode("utf-16-le")
    if encoding == "ascii":
        return b"ASCII\0\0\0" + text.encode("ascii", errors="replace")
    if encoding == "ascii-utf8":
        return b"ASCII\0\0\0" + text.encode("utf-8")
    return text.encode("utf-8")


def _exif(
    user_comment: str | None,
    encoding: UserCommentEncoding,
    make: str | None,
    model: str | None,
    image_description: str | None,
    software: str | None = None,
) -> Image.Exif:
    exif = Image.Exif()
    if make is not None:
        exif[_MAKE] = make
    if model is not None:
        exif[_MODEL] = model
    if image_description is not None:
        exif[_IMAGE_DESCRIPTION] = image_description
    if software is not None:
        exif[_SOFTWARE] = software
    if user_comment is not None:
        exif.get_ifd(_EXIF_IFD_POINTER)[_USER_COMMENT] = user_comment_bytes(user_comment, encoding)
    return exif


def jpeg_with_exif(
    path: Path,
    *,
    user_comment: str | None = None,
    encoding: UserCommentEncoding = "unicode-be",
    make: str | None = None,
    model: str | None = None,
    image_description: str | None = None,
    software: str | None = None,
    size: tuple[int, int] = (8, 8),
    comment: str | None = None,
) -> Path:
    """Write a JPEG with the given EXIF fields (and a COM segment when ``comment`` is set)."""
    image = Image.new("RGB", size, (128, 64, 32))
    exif = _exif(user_comment, encoding, make, model, image_description, software)
    extra = {"comment": comment.encode("utf-8")} if comment is not None else {}
    image.save(path, "JPEG", exif=exif.tobytes(), quality=80, **extra)
    return path


def webp_with_exif(
    path: Path,
    *,
    user_comment: str | None = None,
    encoding: UserCommentEncoding = "unicode-be",
    make: str | None = None,
    model: str | None = None,
    image_description: str | None = None,
    software: str | None = None,
    size: tuple[int, int] = (8, 8),
) -> Path:
    """Write a WebP with an EXIF chunk holding the given fields."""
    image = Image.new("RGB", size, (32, 64, 128))
    exif = _exif(user_comment, encoding, make, model, image_description, software)
    image.save(path, "WEBP", exif=exif.tobytes(), quality=80)
    return path


def plain_png(path: Path, size: tuple[int, int] = (8, 8)) -> Path:
    """A PNG without any text chunk (a photo, for aimeta)."""
    return png_with_text(path, {}, size=size)


def bits_of(data: bytes) -> np.ndarray:
    """The bits of ``data``, most significant first, as the stealth format stores them."""
    return np.unpackbits(np.frombuffer(data, dtype=np.uint8))


def write_stealth(
    path: Path,
    text: str,
    *,
    channel: str,
    compressed: bool,
    size: tuple[int, int] = (48, 40),
    chunks: Mapping[str, str] | None = None,
) -> Path:
    """Hide ``text`` the way the A1111 extension does (column-major, LSB of each value), in a
    PNG that also carries the tEXt ``chunks`` given."""
    payload = text.encode("utf-8")
    if compressed:
        payload = gzip.compress(payload)
    kind = "png" if channel == "alpha" else "rgb"
    signature = f"stealth_{kind}{'comp' if compressed else 'info'}".encode()
    bits = np.concatenate(
        [bits_of(signature), bits_of((len(payload) * 8).to_bytes(4, "big")), bits_of(payload)]
    )
    width, height = size
    rng = np.random.default_rng(7)
    pixels = rng.integers(0, 256, size=(width, height, 4), dtype=np.uint8)  # x, y, channel
    pixels[:, :, 3] |= 0xF0  # mostly opaque
    if channel == "alpha":
        plane = pixels[:, :, 3].reshape(-1)
        plane[: bits.size] = (plane[: bits.size] & 0xFE) | bits
        pixels[:, :, 3] = plane.reshape(width, height)
    else:
        values = pixels[:, :, :3].reshape(-1)
        values[: bits.size] = (values[: bits.size] & 0xFE) | bits
        pixels[:, :, :3] = values.reshape(width, height, 3)
    mode = "RGBA" if channel == "alpha" else "RGB"
    image_array = pixels.transpose(1, 0, 2)  # back to rows (y) of columns (x)
    if mode == "RGB":
        image_array = image_array[:, :, :3]
    info = PngInfo()
    for keyword, value in (chunks or {}).items():
        info.add_text(keyword, value)
    Image.fromarray(np.ascontiguousarray(image_array), mode).save(path, pnginfo=info)
    return path


def xmp_packet(properties: Mapping[str, str], *, prefix: str, namespace: str) -> bytes:
    """An XMP packet with one ``rdf:Description`` holding ``prefix:name`` text properties."""
    body = "".join(
        f"<{prefix}:{name}>{escape(value)}</{prefix}:{name}>" for name, value in properties.items()
    )
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">'
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        f'<rdf:Description rdf:about="" xmlns:{prefix}="{namespace}">{body}</rdf:Description>'
        '</rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
    ).encode()


def avif_with_metadata(
    path: Path,
    *,
    xmp: bytes | None = None,
    user_comment: str | None = None,
    encoding: UserCommentEncoding = "none",
    size: tuple[int, int] = (16, 16),
) -> Path:
    """Write an AVIF (Pillow's own AVIF encoder) with an XMP item and/or an EXIF UserComment."""
    image = Image.new("RGB", size, (64, 128, 32))
    extra: dict[str, bytes] = {}
    if xmp is not None:
        extra["xmp"] = xmp
    if user_comment is not None:
        extra["exif"] = _exif(user_comment, encoding, None, None, None).tobytes()
    image.save(path, "AVIF", quality=60, **extra)
    return path


# ------------------------------------------------------------------ C2PA Content Credentials
# A C2PA manifest store is a JUMBF superbox tree (ISO 19566-5): each ``jumb`` box starts with a
# ``jumd`` description box (a 16-byte type UUID, toggles, a NUL-terminated label) and holds
# content boxes (``cbor``, ``json``) or further superboxes. C2PA's type UUIDs are a four-letter
# code followed by a fixed 12-byte tail.

C2PA_UUID_TAIL = bytes.fromhex("00110010800000AA00389B71")
TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"


def jumbf_box(kind: bytes, payload: bytes) -> bytes:
    """One ISO BMFF box: 4-byte big-endian size (header included), 4-byte type, payload."""
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def jumbf_superbox(code: bytes, label: str, *children: bytes) -> bytes:
    """A ``jumb`` superbox typed ``code`` (a C2PA four-letter code) and labelled ``label``."""
    toggles = 0x03  # requestable, label present
    description = code + C2PA_UUID_TAIL + bytes([toggles]) + label.encode() + b"\0"
    return jumbf_box(b"jumb", jumbf_box(b"jumd", description) + b"".join(children))


def c2pa_manifest(
    label: str, claim: Mapping[str, object], assertions: Mapping[str, object]
) -> bytes:
    """One manifest (``c2ma``): its assertion store (each assertion a CBOR box), the claim
    (CBOR) and an empty signature box (aimeta reads claims; it does not verify signatures)."""
    import cbor2

    store = jumbf_superbox(
        b"c2as",
        "c2pa.assertions",
        *(
            jumbf_superbox(b"cbor", name, jumbf_box(b"cbor", cbor2.dumps(value)))
            for name, value in assertions.items()
        ),
    )
    links = [
        {"url": f"self#jumbf=c2pa.assertions/{name}", "hash": b"\0" * 32} for name in assertions
    ]
    claim_box = jumbf_superbox(
        b"c2cl", "c2pa.claim", jumbf_box(b"cbor", cbor2.dumps({**claim, "assertions": links}))
    )
    signature = jumbf_superbox(b"c2cs", "c2pa.signature", jumbf_box(b"cbor", cbor2.dumps(b"")))
    return jumbf_superbox(b"c2ma", label, store, claim_box, signature)


def c2pa_store(*manifests: bytes) -> bytes:
    """The manifest store (``c2pa`` superbox); the last manifest is the active one."""
    return jumbf_superbox(b"c2pa", "c2pa", *manifests)


def png_with_c2pa(path: Path, store: bytes, size: tuple[int, int] = (8, 8)) -> Path:
    """A PNG whose ``caBX`` chunk (before the image data, as C2PA asks) holds ``store``."""
    png_with_text(path, {}, size=size)
    data = path.read_bytes()
    ihdr_end = 8 + 8 + 13 + 4
    path.write_bytes(data[:ihdr_end] + png_chunk(b"caBX", store) + data[ihdr_end:])
    return path


def jpeg_with_c2pa(path: Path, store: bytes, *, segment_bytes: int = 65000) -> Path:
    """A JPEG with ``store`` in APP11 JPEG XT segments (``JP``, box instance 1, sequence
    numbers from 1; every segment repeats the box's 8-byte header), right after SOI."""
    image = Image.new("RGB", (8, 8), (10, 20, 30))
    image.save(path, "JPEG", quality=80)
    data = path.read_bytes()
    header, body = store[:8], store[8:]
    room = segment_bytes - 2 - 8 - 8
    segments = b""
    for sequence, start in enumerate(range(0, max(len(body), 1), room), start=1):
        payload = b"JP" + struct.pack(">HI", 1, sequence) + header + body[start : start + room]
        segments += b"\xff\xeb" + struct.pack(">H", 2 + len(payload)) + payload
    path.write_bytes(data[:2] + segments + data[2:])
    return path
