"""Broken files: the native reader gives a per-file NativeReadError or tags, nothing else.

Truncation at every byte offset, lengths beyond the end of the file, bad CRCs, IFD loops,
random byte flips, empty and foreign files. Each read must also be quick and allocate
little (a declared length of 4 GB is never allocated).
"""

from __future__ import annotations

import random
import struct
import time
import tracemalloc
import zlib
from pathlib import Path

import pytest

from aimeta.errors import InputError
from aimeta.metadata.readers import native
from aimeta.metadata.readers.native import NativeReadError, can_read_native, read_native
from factory import png_chunk, user_comment_bytes

from .builders import (
    ASCII,
    UNDEFINED,
    itxt,
    png,
    riff_chunk,
    text,
    tiff,
    vp8l_chunk,
    vp8x_chunk,
    webp,
    ztxt,
)

# A short packet keeps "every offset" quick; the long one is read in the differential test.
_XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf='
    b'"http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description xmlns:exif='
    b'"http://ns.adobe.com/exif/1.0/" exif:UserComment="a cat"/></rdf:RDF></x:xmpmeta>'
)
_EXIF = tiff(
    [(0x010F, ASCII, b"workflow:{}\0"), (0x010E, ASCII, b"a description\0")],
    [(0x9286, UNDEFINED, user_comment_bytes("Steps: 20, Seed: 1", "unicode-be"))],
)


def _small_png() -> bytes:
    return png(
        [text(b"parameters", b"a cat\nSteps: 20"), itxt(b"prompt", b"{}", compressed=True)],
        [ztxt(b"workflow", b'{"nodes": []}'), png_chunk(b"eXIf", _EXIF)],
    )


def _small_jpeg() -> bytes:
    soi, sof = b"\xff\xd8", b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, 7, 9, 1) + b"\x01\x11\x00"
    exif = b"Exif\0\0" + _EXIF
    xmp = b"http://ns.adobe.com/xap/1.0/\0" + _XMP
    segments = b"".join(
        b"\xff" + bytes([marker]) + struct.pack(">H", len(body) + 2) + body
        for marker, body in ((0xE1, exif), (0xE1, xmp), (0xFE, b"a comment"))
    )
    sos = b"\xff\xda" + struct.pack(">H", 8) + b"\x01\x01\x00\x00\x3f\x00"
    return soi + segments + sof + sos + b"\x12\x34" * 8 + b"\xff\xd9"


def _small_webp() -> bytes:
    return webp(
        [
            vp8x_chunk(9, 7, 0x0C),
            vp8l_chunk(9, 7),
            riff_chunk(b"EXIF", b"Exif\0\0" + _EXIF),
            riff_chunk(b"XMP ", _XMP),
        ]
    )


SMALL_FILES = {"png": _small_png, "jpeg": _small_jpeg, "webp": _small_webp}


def _read(path: Path) -> dict[str, object] | NativeReadError:
    """read_native's result, or the NativeReadError it raised (anything else fails)."""
    try:
        return read_native(path)
    except NativeReadError as error:
        assert error.message
        return error


@pytest.mark.parametrize("kind", sorted(SMALL_FILES))
def test_the_small_files_read_completely(kind: str, tmp_path: Path) -> None:
    path = tmp_path / f"small.{kind}"
    path.write_bytes(SMALL_FILES[kind]())
    tags = read_native(path)
    assert tags["IFD0:Make"] == "workflow:{}"
    assert tags["ExifIFD:UserComment"] == "Steps: 20, Seed: 1"
    if kind != "png":
        assert tags["XMP-exif:UserComment"] == "a cat"


@pytest.mark.parametrize("kind", sorted(SMALL_FILES))
def test_truncated_at_every_offset(kind: str, tmp_path: Path) -> None:
    data = SMALL_FILES[kind]()
    path = tmp_path / f"cut.{kind}"
    started = time.perf_counter()
    outcomes = []
    for length in range(len(data)):
        path.write_bytes(data[:length])
        outcomes.append(_read(path))
    assert time.perf_counter() - started < 10
    errors = [isinstance(outcome, NativeReadError) for outcome in outcomes]
    if kind == "png":
        assert all(errors)  # every cut loses the IEND chunk
    elif kind == "jpeg":
        scan = data.index(b"\xff\xda")
        assert all(errors[:scan])  # everything before the image data is checked
    else:
        assert sum(errors) > len(data) // 2
    assert any(
        isinstance(outcome, NativeReadError) and "truncated" in outcome.message
        for outcome in outcomes
    )


def _peak_allocation(path: Path) -> int:
    tracemalloc.start()
    try:
        _read(path)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(
            png()[:33] + struct.pack(">I", 0xFFFFFFF0) + b"tEXtparameters\0x", id="png-4gb-text"
        ),
        pytest.param(
            png()[:33] + struct.pack(">I", 0x7FFFFFFF) + b"IDAT" + b"x" * 20, id="png-idat"
        ),
        pytest.param(b"\xff\xd8\xff\xe1\xff\xffExif\0\0" + _EXIF[:20], id="jpeg-segment-past-end"),
        pytest.param(
            b"RIFF\xff\xff\xff\xffWEBP" + b"EXIF" + struct.pack("<I", 0xFFFFFFFF) + b"MM\0*",
            id="webp-4gb-exif",
        ),
    ],
)
def test_lengths_beyond_the_file_are_errors_without_big_allocations(
    data: bytes, tmp_path: Path
) -> None:
    path = tmp_path / "lying.bin"
    path.write_bytes(data)
    with pytest.raises(NativeReadError, match="past the end"):
        read_native(path)
    assert _peak_allocation(path) < 1_000_000


def test_a_text_chunk_over_the_cap_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(native, "MAX_TEXT_BYTES", 1000)
    path = tmp_path / "big.png"
    path.write_bytes(png([text(b"parameters", b"x" * 2000)]))
    with pytest.raises(NativeReadError, match="2011 bytes"):
        read_native(path)


def test_a_zip_bomb_is_stopped_at_the_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(native, "MAX_TEXT_BYTES", 10_000)
    path = tmp_path / "bomb.png"
    path.write_bytes(png([png_chunk(b"zTXt", b"workflow\0\0" + zlib.compress(b"\0" * 5_000_000))]))
    with pytest.raises(NativeReadError, match="inflates to more than 10000 bytes"):
        read_native(path)


def test_bad_crcs_are_ignored_like_exiftool(tmp_path: Path) -> None:
    good = _small_png()
    broken = bytearray(good)
    position = 8
    while position < len(broken):
        (length,) = struct.unpack(">I", broken[position : position + 4])
        crc_at = position + 8 + length
        broken[crc_at : crc_at + 4] = b"\0\0\0\0"
        position = crc_at + 4
    (tmp_path / "good.png").write_bytes(good)
    (tmp_path / "broken.png").write_bytes(bytes(broken))
    assert read_native(tmp_path / "broken.png") == read_native(tmp_path / "good.png")


@pytest.mark.parametrize(
    ("pointer", "expected_warning"),
    [(8, "loop"), (10**6, "Bad ExifIFD directory offset")],
)
def test_ifd_loops_and_bad_offsets_are_skipped(
    pointer: int, expected_warning: str, tmp_path: Path
) -> None:
    block = tiff([(0x010F, ASCII, b"maker\0")], exif_pointer=pointer)
    path = tmp_path / "loop.webp"
    path.write_bytes(webp([vp8l_chunk(3, 3), riff_chunk(b"EXIF", block)]))
    tags = read_native(path)
    assert tags["IFD0:Make"] == "maker"
    assert expected_warning in tags["ExifTool:Warning"]


def test_entries_pointing_outside_the_block_are_skipped(tmp_path: Path) -> None:
    block = bytearray(tiff([(0x010E, ASCII, b"a long description\0"), (0x010F, ASCII, b"mk\0")]))
    block[8 + 2 + 8 : 8 + 2 + 12] = struct.pack(">I", 0xFFFFFF00)  # ImageDescription offset
    path = tmp_path / "offsets.webp"
    path.write_bytes(webp([vp8l_chunk(3, 3), riff_chunk(b"EXIF", bytes(block))]))
    tags = read_native(path)
    assert "IFD0:ImageDescription" not in tags
    assert tags["IFD0:Make"] == "mk"


@pytest.mark.parametrize("kind", sorted(SMALL_FILES))
def test_random_byte_flips_never_escape(kind: str, tmp_path: Path) -> None:
    rng = random.Random(f"aimeta-{kind}")
    data = SMALL_FILES[kind]()
    path = tmp_path / f"flipped.{kind}"
    for _ in range(250):
        mutated = bytearray(data)
        for _ in range(rng.randint(1, 6)):
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        path.write_bytes(bytes(mutated))
        _read(path)


def test_garbage_xmp_and_exif_blocks_are_warnings(tmp_path: Path) -> None:
    path = tmp_path / "garbage.webp"
    path.write_bytes(
        webp(
            [
                vp8l_chunk(3, 3),
                riff_chunk(b"XMP ", b"<x:xmpmeta><unclosed"),
                riff_chunk(b"EXIF", b"MM\0*\0\0\0\x08\xff\xff"),
            ]
        )
    )
    tags = read_native(path)
    assert tags["RIFF:ImageWidth"] == 3
    assert "ExifTool:Warning" in tags


def test_an_xmp_doctype_is_refused(tmp_path: Path) -> None:
    packet = b'<!DOCTYPE x [<!ENTITY a "aaaa">]><x:xmpmeta xmlns:x="adobe:ns:meta/">&a;</x:xmpmeta>'
    path = tmp_path / "entity.png"
    path.write_bytes(png([itxt(b"XML:com.adobe.xmp", packet)]))
    tags = read_native(path)
    assert tags["ExifTool:Warning"] == "XMP packet with a DOCTYPE ignored"
    assert not any(key.startswith("XMP-") for key in tags)


def test_empty_foreign_and_missing_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(NativeReadError, match="empty"):
        read_native(empty)
    foreign = tmp_path / "notes.png"
    foreign.write_text("not an image")
    with pytest.raises(NativeReadError, match="unknown signature"):
        read_native(foreign)
    with pytest.raises(NativeReadError, match="cannot read"):
        read_native(tmp_path / "missing.png")
    with pytest.raises(InputError):
        read_native(tmp_path)


def test_can_read_native_sniffs_the_signature_not_the_extension(tmp_path: Path) -> None:
    disguised = tmp_path / "photo.jpg"
    disguised.write_bytes(_small_png())
    webp_file = tmp_path / "image.bin"
    webp_file.write_bytes(_small_webp())
    jpeg_file = tmp_path / "x.png"
    jpeg_file.write_bytes(_small_jpeg())
    text_file = tmp_path / "notes.png"
    text_file.write_text("hello")
    assert can_read_native(disguised)
    assert can_read_native(webp_file)
    assert can_read_native(jpeg_file)
    assert not can_read_native(text_file)
    assert not can_read_native(tmp_path / "missing.png")
    assert read_native(disguised)["File:FileType"] == "PNG"
