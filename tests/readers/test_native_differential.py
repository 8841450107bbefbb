"""The native reader against the real ExifTool on the same files.

Every generated file is read by both; the canonical text fields (what the parsers see), the
pixel size and every tag the native reader reports must be identical to ExifTool's.
ExifTool runs once for the whole corpus (a single process keeps the test fast).
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from aimeta.metadata.readers.fields import pixel_size, text_fields
from aimeta.metadata.readers.native import read_native
from conftest import samples_dir
from factory import (
    c2pa_manifest,
    c2pa_store,
    jpeg_with_c2pa,
    jpeg_with_exif,
    png_chunk,
    png_with_c2pa,
    png_with_text,
    user_comment_bytes,
    webp_with_exif,
)

from .builders import (
    ASCII,
    BYTE,
    RATIONAL,
    SHORT,
    UNDEFINED,
    XMP_PACKET,
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

pytestmark = pytest.mark.skipif(shutil.which("exiftool") is None, reason="ExifTool not installed")

A1111 = (
    "masterpiece, (a cat:1.2), <lora:detail:0.8>\nNegative prompt: ugly, blurry\n"
    "Steps: 20, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 1234567890, Size: 512x768, "
    'Model hash: c0d1994c73, Model: realisticVision, Lora hashes: "detail: 0123456789ab"'
)
WORKFLOW = json.dumps(
    {
        "last_node_id": 40,
        "nodes": [
            {"id": index, "type": "KSampler", "widgets_values": [index, "euler", 7.5, "東京"]}
            for index in range(400)
        ],
    }
)
PROMPT = json.dumps({"3": {"class_type": "KSampler", "inputs": {"seed": 2**64 - 1, "cfg": 8.0}}})
UNICODE = "größe 東京 café – 🐱 end"

Builder = Callable[[Path], None]
CASES: dict[str, Builder] = {}


def case(name: str) -> Callable[[Builder], Builder]:
    def register(builder: Builder) -> Builder:
        CASES[name] = builder
        return builder

    return register


def write(data: bytes) -> Builder:
    return lambda path: path.write_bytes(data) and None


# ----------------------------------------------------------------------------------- PNG

for chunk_kind in ("tEXt", "zTXt", "iTXt"):
    for after in (False, True):
        CASES[f"png_{chunk_kind}_{'after' if after else 'before'}.png"] = (
            lambda path, kind=chunk_kind, after_idat=after: (
                png_with_text(
                    path,
                    {"parameters": A1111},
                    chunk=kind,
                    after_idat=after_idat,  # type: ignore[arg-type]
                )
                and None
            )
        )

CASES["png_comfyui.png"] = lambda path: (
    png_with_text(path, {"prompt": PROMPT, "workflow": WORKFLOW}, chunk="iTXt") and None
)
CASES["png_comfyui_ztxt.png"] = lambda path: (
    png_with_text(path, {"prompt": PROMPT, "workflow": WORKFLOW}, chunk="zTXt", after_idat=True)
    and None
)
CASES["png_utf8_in_text.png"] = lambda path: (
    png_with_text(path, {"parameters": UNICODE}, tEXt_encoding="utf-8") and None
)
CASES["png_latin1.png"] = lambda path: png_with_text(path, {"Comment": "café naïve"}) and None
CASES["png_keywords.png"] = write(
    png(
        [
            text(keyword, b"value of " + keyword)
            for keyword in (
                b"sd-metadata",
                b"invokeai_metadata",
                b"Dream",
                b"generation_data",
                b"date:create",
                b"fooocus_scheme",
                b"Title",
                b"description",
                b"Software",
                b"Source",
                b"Warning",
                b"Disclaimer",
                b"foo bar baz",
                b"a",
                b"1abc",
                b"k.e.y",
                b"caf\xe9 k",
                b"Raw profile type foo",
            )
        ]
        + [
            text(b"Creation Time", b"Mon, 1 Jan 2018 12:10:22 EST"),
            text(b"create-date", b"2023-01-02T03:04:05Z"),
            text(b"modify-date", b"2023-01"),
        ]
    )
)
CASES["png_duplicates.png"] = write(
    png([text(b"parameters", b"first"), text(b"Parameters", b"second")], [ztxt(b"prompt", b"x")])
)
CASES["png_values.png"] = write(
    png(
        [
            text(b"v1", b"1.10"),
            text(b"v2", b"007"),
            text(b"v3", b"True"),
            text(b"v4", b"1e5"),
            text(b"v5", b"-0.5"),
            text(b"v6", b"12345678901234567"),
            text(b"v7", b"a\0b"),
            text(b"v8", b"caf\xe9\0tail"),
            text(b"v9", b"\x81\x8d\x80\x9f trail  "),
            text(b"v10", b"line1\r\nline2\t\x01"),
            text(b"v11", b"5\n"),
            text(b"v12", b""),
        ]
    )
)
CASES["png_itxt_variants.png"] = write(
    png(
        [
            itxt(b"parameters", UNICODE.encode(), compressed=True),
            itxt(b"bad", b"bad\xff\xe3\x81utf \xed\xa0\x80 \xef\xbf\xbe", compressed=False),
            itxt(b"Title", b"lang title", language=b"en-us"),
            itxt(b"foo", b"lang foo", language=b"DE"),
            itxt(b"nul", "ü€\0x".encode()),
        ]
    )
)
CASES["png_xmp.png"] = write(png([itxt(b"XML:com.adobe.xmp", XMP_PACKET)]))
_EXIF_BLOCK = tiff(
    [(0x010F, ASCII, b"workflow:{}\0"), (0x0110, ASCII, b"prompt:{}\0")],
    [(0x9286, UNDEFINED, user_comment_bytes(A1111, "unicode-be"))],
)
CASES["png_exif_chunk.png"] = write(png([png_chunk(b"eXIf", _EXIF_BLOCK)]))
CASES["png_exif_chunk_prefixed.png"] = write(
    png(after=[png_chunk(b"eXIf", b"Exif\0\0" + _EXIF_BLOCK)])
)
_PROFILE = b"Exif\0\0" + _EXIF_BLOCK
CASES["png_raw_profile.png"] = write(
    png(
        [ztxt(b"Raw profile type exif", b"\nexif\n%8d\n" % len(_PROFILE) + _PROFILE.hex().encode())]
    )
)
BAD_ZLIB = png([png_chunk(b"zTXt", b"parameters\0\0" + b"not zlib data"), text(b"prompt", b"ok")])
CASES["png_ancillary.png"] = write(
    png(
        [
            png_chunk(b"gAMA", struct.pack(">I", 45455)),
            png_chunk(b"sRGB", b"\0"),
            png_chunk(b"pHYs", struct.pack(">IIB", 2835, 2835, 1)),
            png_chunk(b"tIME", struct.pack(">HBBBBB", 2024, 1, 2, 3, 4, 5)),
            png_chunk(
                b"cHRM", struct.pack(">8I", 31270, 32900, 64000, 33000, 30000, 60000, 15000, 6000)
            ),
            png_chunk(b"bKGD", struct.pack(">HHH", 1, 2, 3)),
            png_chunk(b"tRNS", struct.pack(">HHH", 4, 5, 6)),
            png_chunk(b"iCCP", b"fake profile\0\0" + zlib.compress(b"x" * 100)),
            text(b"parameters", A1111.encode()),
        ]
    )
)


def _bad_crc(path: Path) -> None:
    data = bytearray(png([text(b"parameters", A1111.encode())]))
    crc_at = 8 + 25 + 8 + 11 + len(A1111)  # after IHDR, header and tEXt data
    data[crc_at : crc_at + 4] = b"\xde\xad\xbe\xef"
    path.write_bytes(bytes(data))


CASES["png_bad_crc.png"] = _bad_crc
CASES["png_plain.png"] = lambda path: png_with_text(path, {}, size=(33, 17)) and None
CASES["png_big_workflow.png"] = lambda path: (
    png_with_text(path, {"workflow": WORKFLOW * 8}, chunk="zTXt", size=(300, 200)) and None
)

# ---------------------------------------------------------------------------------- JPEG

for encoding in ("unicode-be", "unicode-le", "unicode-bom", "ascii", "none"):
    comment = A1111 + "  " if encoding in ("ascii", "none") else A1111 + " " + UNICODE + "   "
    CASES[f"jpeg_usercomment_{encoding}.jpg"] = lambda path, text_value=comment, kind=encoding: (
        jpeg_with_exif(
            path,
            user_comment=text_value,
            encoding=kind,  # type: ignore[arg-type]
        )
        and None
    )
CASES["jpeg_comfyui.jpg"] = lambda path: (
    jpeg_with_exif(
        path, make="workflow:" + WORKFLOW[:3000], model="prompt:" + PROMPT, image_description="desc"
    )
    and None
)
CASES["jpeg_comment.jpg"] = lambda path: jpeg_with_exif(path, comment=A1111, size=(21, 13)) and None


def _jpeg_with_app1(
    path: Path, exif: bytes | None, *, xmp: bytes | None = None, comment: bytes | None = None
) -> None:
    image = Image.new("RGB", (9, 7), (1, 2, 3))
    options: dict[str, Any] = {}
    if exif is not None:
        options["exif"] = exif
    if xmp is not None:
        options["xmp"] = xmp
    if comment is not None:
        options["comment"] = comment
    image.save(path, "JPEG", **options)


def _exif_variants() -> dict[str, bytes]:
    cjk = "東京の夜景、美しい光"
    return {
        "mm_le_comment": tiff([], [(0x9286, UNDEFINED, b"UNICODE\0" + cjk.encode("utf-16-le"))]),
        "ii_be_comment": tiff(
            [], [(0x9286, UNDEFINED, b"UNICODE\0" + cjk.encode("utf-16-be"))], big_endian=False
        ),
        "undefined_header": tiff([], [(0x9286, UNDEFINED, b"\0" * 8 + b"plain text\0junk")]),
        "invalid_header": tiff([], [(0x9286, UNDEFINED, b"XYZ12345text after  ")]),
        "short_comment": tiff([], [(0x9286, UNDEFINED, b"abc")]),
        "surrogate": tiff([], [(0x9286, UNDEFINED, b"UNICODE\0" + b"\x00a\xd8\x00\x00b")]),
        "nul_in_unicode": tiff(
            [], [(0x9286, UNDEFINED, b"UNICODE\0" + "ab\0cd".encode("utf-16-be"))]
        ),
        "ifd0_fields": tiff(
            [
                (0x010E, ASCII, b"desc\0after\0"),
                (0x010F, ASCII, b"Make \t\n\0"),
                (0x0110, ASCII, b"Model  \0"),
                (0x0131, ASCII, b"Software 1.0 \0"),
                (0x013B, ASCII, b"Artist caf\xc3\xa9\0"),
                (0x8298, ASCII, b"Photographer \0Editor\0"),
                (0x0132, ASCII, b"2024:01:02 03:04:05\0"),
                (0x0112, SHORT, 1),
                (0x011A, RATIONAL, (72, 1)),
                (0x011B, RATIONAL, (1, 3)),
                (0x9286, UNDEFINED, b"ASCII\0\0\0in IFD0"),
                (0x9C9C, BYTE, "XP comment ✓".encode("utf-16-le") + b"\0\0"),
            ],
            [
                (0x9000, UNDEFINED, b"0230"),
                (0xA002, SHORT, 640),
                (0x9003, ASCII, b"2024:01:02 03:04:05\0"),
            ],
        ),
        "latin1_bytes": tiff([(0x010E, ASCII, b"caf\xe9 \xff\0")]),
    }


for variant, block in _exif_variants().items():
    CASES[f"jpeg_exif_{variant}.jpg"] = lambda path, data=block: _jpeg_with_app1(
        path, b"Exif\0\0" + data
    )
CASES["jpeg_xmp.jpg"] = lambda path: _jpeg_with_app1(path, None, xmp=XMP_PACKET)
CASES["jpeg_everything.jpg"] = lambda path: _jpeg_with_app1(
    path,
    b"Exif\0\0" + _EXIF_BLOCK,
    xmp=XMP_PACKET,
    comment=b"raw latin-1 caf\xe9 comment",
)

# ---------------------------------------------------------------------------------- C2PA

_C2PA_STORE = c2pa_store(
    c2pa_manifest(
        "urn:uuid:differential",
        {"claim_generator": "Generator 東京/1.0", "dc:title": "x.png"},
        {"c2pa.actions": {"actions": [{"action": "c2pa.created", "softwareAgent": "Model"}]}},
    )
)
CASES["png_c2pa.png"] = lambda path: png_with_c2pa(path, _C2PA_STORE) and None
CASES["jpeg_c2pa.jpg"] = lambda path: jpeg_with_c2pa(path, _C2PA_STORE) and None
CASES["jpeg_c2pa_segments.jpg"] = lambda path: (
    jpeg_with_c2pa(path, _C2PA_STORE, segment_bytes=120) and None
)


# ---------------------------------------------------------------------------------- WebP

for encoding in ("unicode-be", "unicode-le", "ascii"):
    CASES[f"webp_usercomment_{encoding}.webp"] = lambda path, kind=encoding: (
        webp_with_exif(
            path,
            user_comment=A1111,
            encoding=kind,
            size=(37, 23),  # type: ignore[arg-type]
        )
        and None
    )
CASES["webp_comfyui_make_model.webp"] = lambda path: (
    webp_with_exif(path, make="workflow:" + WORKFLOW[:2000], model="prompt:" + PROMPT) and None
)
CASES["webp_exif_prefixed.webp"] = write(
    webp(
        [
            vp8x_chunk(40, 30, 0x08),
            vp8l_chunk(40, 30),
            riff_chunk(b"EXIF", b"Exif\0\0" + _EXIF_BLOCK),
        ]
    )
)
CASES["webp_exif_plain.webp"] = write(
    webp([vp8x_chunk(41, 31, 0x08), vp8l_chunk(41, 31), riff_chunk(b"EXIF", _EXIF_BLOCK)])
)
CASES["webp_xmp.webp"] = write(
    webp([vp8x_chunk(5, 6, 0x04), vp8l_chunk(5, 6), riff_chunk(b"XMP ", XMP_PACKET)])
)


def _webp_pillow(path: Path, mode: str, **options: Any) -> None:
    Image.new(mode, (19, 11), (10, 20, 30, 40)[: len(mode)]).save(path, "WEBP", **options)


CASES["webp_lossy_plain.webp"] = lambda path: _webp_pillow(path, "RGB")
CASES["webp_lossless_plain.webp"] = lambda path: _webp_pillow(path, "RGB", lossless=True)
CASES["webp_alpha_exif.webp"] = lambda path: _webp_pillow(
    path, "RGBA", exif=b"Exif\0\0" + _EXIF_BLOCK, xmp=XMP_PACKET
)


def _animated_webp(path: Path) -> None:
    frames = [Image.new("RGB", (16, 16), (index * 40, 0, 0)) for index in range(3)]
    exif = Image.Exif()
    exif[0x010F] = "workflow:" + WORKFLOW[:500]
    exif[0x0110] = "prompt:" + PROMPT
    frames[0].save(path, "WEBP", save_all=True, append_images=frames[1:], exif=exif.tobytes())


CASES["webp_animated_comfyui.webp"] = _animated_webp


# ------------------------------------------------------------------------------ harness


def exiftool_tags(paths: list[Path]) -> dict[Path, dict[str, Any]]:
    """Tags of every file from one ``exiftool -json -G1 -n`` call."""
    result = subprocess.run(
        ["exiftool", "-json", "-G1", "-n", "--", *map(str, paths)],
        capture_output=True,
        check=False,
        timeout=120,
    )
    records = json.loads(result.stdout.decode("utf-8"))
    return {Path(record["SourceFile"]): record for record in records}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, dict[str, Any]]]:
    folder = tmp_path_factory.mktemp("native_corpus")
    paths = []
    for name, build in CASES.items():
        path = folder / name
        build(path)
        paths.append(path)
    reference = exiftool_tags(paths)
    return {path.name: (path, reference[path]) for path in paths}


def assert_same(path: Path, expected: dict[str, Any]) -> None:
    native = read_native(path)
    assert text_fields(native) == text_fields(expected)
    assert pixel_size(native) == pixel_size(expected)
    assert native.get("File:FileType") == expected.get("File:FileType")
    differing = {
        key: (value, expected.get(key, "<missing>"))
        for key, value in native.items()
        if key != "ExifTool:Warning" and expected.get(key, "<missing>") != value
    }
    assert differing == {}


@pytest.mark.parametrize("name", sorted(CASES))
def test_native_equals_exiftool(name: str, corpus: dict[str, tuple[Path, dict[str, Any]]]) -> None:
    path, expected = corpus[name]
    assert_same(path, expected)


def test_text_after_idat_is_flagged_like_exiftool(
    corpus: dict[str, tuple[Path, dict[str, Any]]],
) -> None:
    path, expected = corpus["png_tEXt_after.png"]
    native = read_native(path)
    assert native["ExifTool:Warning"] == expected["ExifTool:Warning"]
    assert native["PNG:Parameters"] == A1111


def test_text_that_does_not_inflate_is_binary_like_exiftool(tmp_path: Path) -> None:
    # ExifTool's byte count is what zlib left unconsumed, so only the shape is compared.
    path = tmp_path / "bad_zlib.png"
    path.write_bytes(BAD_ZLIB)
    native, expected = read_native(path), exiftool_tags([path])[path]
    assert str(native["PNG:Parameters"]).startswith("(Binary data ")
    assert str(expected["PNG:Parameters"]).startswith("(Binary data ")
    assert native["PNG:Prompt"] == expected["PNG:Prompt"] == "ok"
    assert native["ExifTool:Warning"] == expected["ExifTool:Warning"]


def _sample_files() -> list[Path]:
    folder = samples_dir()
    if folder is None:
        return []
    return sorted(path for path in (folder / "generated").iterdir() if path.is_file())


@pytest.mark.skipif(samples_dir() is None, reason="AIMETA_SAMPLES is not set")
def test_native_equals_exiftool_on_samples() -> None:
    files = _sample_files()
    reference = exiftool_tags(files)
    for path in files:
        assert_same(path, reference[path])


@pytest.mark.parametrize("name", ["png_c2pa.png", "jpeg_c2pa.jpg", "jpeg_c2pa_segments.jpg"])
def test_c2pa_store_is_seen_like_exiftool(
    name: str, corpus: dict[str, tuple[Path, dict[str, Any]]]
) -> None:
    path, expected = corpus[name]
    native = read_native(path)
    assert native["JUMBF:JUMDLabel"] == expected["JUMBF:JUMDLabel"] == "c2pa"
    assert native["JUMBF:JUMDType"] == expected["JUMBF:JUMDType"]
    assert native["JUMBF:JUMDType"] == "6332706100110010800000aa00389b71"
