"""A generator of hostile files: everything a folder of years of images may hold.

``make_hostile(folder)`` writes them and returns one :class:`Hostile` per file, saying what a
run must do with it: ``"error"`` (recorded in ``errors`` with a reason, the run goes on),
``"ok"`` (stored as an image, maybe with a warning), ``"either"`` (a damaged file that one
reader recovers and the other rejects) or ``"absent"`` (not an image file at all: never
listed, e.g. a directory named ``x.png``). Nothing here is committed as a binary: every file
is built from a few bytes at test time.
"""

from __future__ import annotations

import io
import json
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from PIL import Image

from factory import jpeg_with_exif, png_chunk, png_with_text, user_comment_bytes, webp_with_exif

Expect = Literal["ok", "error", "either", "absent"]

PROMPT = "a lighthouse at dusk, (oil painting:1.2)"
INFOTEXT = (
    f"{PROMPT}\nNegative prompt: blurry\n"
    "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1234, Size: 8x8, Model: dreamshaper_8"
)
BIG_TEXT_BYTES = 50 * 1024 * 1024
DEEP_LEVELS = 100_000
# Names a careless caller would hand to ExifTool as options.
DASH_NAMES = ("-ver.png", "-o x.png", "-@ args.png", "-if 0.png", "-overwrite_original.png")
ODD_NAMES = (
    "with space.png",
    "single'quote.png",
    'double"quote.png',
    "new\nline.png",
    "tab\there.png",
    "日本語 café.png",
    "semi;colon $HOME `id`.png",
    *DASH_NAMES,
)


@dataclass(frozen=True)
class Hostile:
    """One hostile file: its path, what a run must do with it, and why it is hostile."""

    path: Path
    expect: Expect
    why: str


def _png_bytes(chunks: dict[str, str] | None = None) -> bytes:
    # Same layout as factory.png_with_text, built in memory so it can be cut anywhere.
    width = height = 8
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    raw = b"".join(b"\0" + b"\x80\x40\x20" * width for _ in range(height))
    body = png_chunk(b"IHDR", ihdr)
    for key, text in (chunks or {"parameters": INFOTEXT}).items():
        body += png_chunk(b"iTXt", key.encode("latin-1") + b"\0\0\0\0\0" + text.encode("utf-8"))
    body += png_chunk(b"IDAT", zlib.compress(raw)) + png_chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def _jpeg_bytes(app1: bytes | None = None) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 120, 200)).save(out, "JPEG", quality=80)
    data = out.getvalue()
    if app1 is None:
        return data
    segment = b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1
    return data[:2] + segment + data[2:]


def looping_exif() -> bytes:
    """An APP1 Exif block whose IFD offsets loop: IFD0 -> itself, Exif IFD -> IFD0."""
    comment = user_comment_bytes(INFOTEXT, "unicode-be")
    # Layout: header(8) | IFD0 at 8 (2 entries) | Exif IFD at 38 (1 entry) | comment at 56.
    ifd0_at, exif_at, comment_at = 8, 38, 56
    tiff = b"II*\0" + struct.pack("<I", ifd0_at)
    tiff += struct.pack("<H", 2)
    tiff += struct.pack("<HHII", 0x8769, 4, 1, exif_at)  # Exif IFD pointer
    tiff += struct.pack("<HHII", 0x8769, 4, 1, ifd0_at)  # a second pointer back to IFD0
    tiff += struct.pack("<I", ifd0_at)  # next IFD: IFD0 again
    assert len(tiff) == exif_at
    tiff += struct.pack("<H", 1)
    tiff += struct.pack("<HHII", 0x9286, 7, len(comment), comment_at)  # UserComment
    tiff += struct.pack("<I", ifd0_at)  # next IFD of the Exif IFD: back to IFD0
    assert len(tiff) == comment_at
    tiff += comment
    return b"Exif\0\0" + tiff


def _deep_json(levels: int) -> str:
    return "[" * levels + "]" * levels


def _deep_object(levels: int) -> str:
    return '{"a": ' * levels + "1" + "}" * levels


def _comfy_graph(cfg: str, seed: str) -> str:
    # Written by hand: json.dumps would not write bare NaN/Infinity inside a string template.
    return (
        '{"3": {"class_type": "KSampler", "inputs": {"seed": '
        + seed
        + ', "steps": 20, "cfg": '
        + cfg
        + ', "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0, '
        '"model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0], '
        '"latent_image": ["5", 0]}}, '
        '"4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "x.safetensors"}}, '
        '"6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["4", 1]}}, '
        '"7": {"class_type": "CLIPTextEncode", "inputs": {"text": "a dog", "clip": ["4", 1]}}}'
    )


def truncation_offsets(size: int, count: int) -> list[int]:
    """``count`` cut points spread over a file of ``size`` bytes, plus the first few bytes."""
    fixed = [1, 4, 8, 12, 16, 33]
    spread = [size * step // (count + 1) for step in range(1, count + 1)]
    return sorted({offset for offset in [*fixed, *spread, size - 1] if 0 < offset < size})


def make_hostile(folder: Path, *, big: bool = True, bomb: bool = False) -> list[Hostile]:
    """Write every hostile file into ``folder``; ``big`` adds the 50 MB text chunk, ``bomb``
    a zTXt that inflates to 200 MB."""
    folder.mkdir(parents=True, exist_ok=True)
    made: list[Hostile] = []

    def add(name: str, data: bytes, expect: Expect, why: str) -> Path:
        path = folder / name
        path.write_bytes(data)
        made.append(Hostile(path, expect, why))
        return path

    add("zero.png", b"", "error", "zero bytes")
    add("zero.jpg", b"", "error", "zero bytes")

    png, jpeg = _png_bytes(), _jpeg_bytes(looping_exif())
    webp_path = webp_with_exif(folder / "whole.webp", user_comment=INFOTEXT)
    webp = webp_path.read_bytes()
    webp_path.unlink()
    for label, data, count in (("png", png, 14), ("jpg", jpeg, 10), ("webp", webp, 8)):
        for offset in truncation_offsets(len(data), count):
            # A cut inside the image data may still leave the metadata readable: either way
            # it is recorded (as an error, or stored with a damage warning).
            add(f"cut_{offset:05d}.{label}", data[:offset], "either", f"truncated at {offset}")

    add("jpeg_named.png", _jpeg_bytes(), "ok", "a JPEG with a .png extension")
    add("png_named.jpg", png, "ok", "a PNG with a .jpg extension")
    add("text_named.jpg", b"just some text, not an image\n" * 20, "error", "text named .jpg")
    add("html_named.webp", b"<html><body>404</body></html>", "error", "HTML named .webp")

    (folder / "x.png").mkdir()
    made.append(Hostile(folder / "x.png", "absent", "a directory named x.png"))

    loop_a, loop_b = folder / "loop_a.png", folder / "loop_b.png"
    os.symlink(loop_b.name, loop_a)
    os.symlink(loop_a.name, loop_b)
    made.append(Hostile(loop_a, "error", "symlink loop"))
    made.append(Hostile(loop_b, "error", "symlink loop"))
    (folder / "subdir").mkdir()
    os.symlink("..", folder / "subdir" / "up")  # a folder loop: never followed
    os.symlink("missing.png", folder / "dangling.png")
    made.append(Hostile(folder / "dangling.png", "error", "dangling symlink"))

    if big:
        # 50 MB of text in one tEXt chunk: stored in full, memory stays bounded.
        text = (b"masterpiece, best quality, " * (BIG_TEXT_BYTES // 27 + 1))[:BIG_TEXT_BYTES]
        body = _png_bytes({"Comment": "x"}).replace(
            png_chunk(b"iTXt", b"Comment\0\0\0\0\0x"), png_chunk(b"tEXt", b"Comment\0" + text)
        )
        add("big_text_chunk.png", body, "ok", "a 50 MB text chunk")
    if bomb:
        add("zip_bomb.png", zip_bomb(), "error", "a zTXt that inflates to 200 MB")

    deep = _deep_json(DEEP_LEVELS)
    add("deep_prompt.png", _png_bytes({"prompt": deep}), "ok", "ComfyUI prompt nested 100k deep")
    add(
        "deep_workflow.png",
        _png_bytes({"prompt": _comfy_graph("7", "1"), "workflow": deep}),
        "ok",
        "workflow nested 100k deep",
    )
    add(
        "deep_hashes.png",
        _png_bytes({"parameters": f"{INFOTEXT}, Hashes: {_deep_object(50_000)}"}),
        "ok",
        "A1111 Hashes JSON nested 50k deep",
    )
    add(
        "deep_invoke.png",
        _png_bytes({"invokeai_metadata": _deep_object(DEEP_LEVELS)}),
        "ok",
        "InvokeAI metadata nested 100k deep",
    )
    add(
        "nan_graph.png",
        _png_bytes({"prompt": _comfy_graph("NaN", "Infinity")}),
        "ok",
        "ComfyUI graph with NaN and Infinity",
    )
    add(
        "nan_negative.png",
        _png_bytes({"prompt": _comfy_graph("-Infinity", "-NaN")}),
        "ok",
        "ComfyUI graph with -Infinity",
    )
    add(
        "invalid_json.png",
        _png_bytes({"prompt": '{"3": {"class_type": "KSampler", "inputs": {'}),
        "ok",
        "ComfyUI prompt cut off mid-JSON",
    )
    bad_utf8 = _png_bytes({}).replace(
        png_chunk(b"IEND", b""),
        png_chunk(b"iTXt", b"parameters\0\0\0\0\0" + b"caf\xc3 \xff\xfe \xed\xa0\x80 Steps: 1")
        + png_chunk(b"IEND", b""),
    )
    add("invalid_utf8.png", bad_utf8, "ok", "invalid UTF-8 in an iTXt chunk")
    odd = b"UNICODE\0" + INFOTEXT.encode("utf-16-be") + b"\x41"
    add("odd_utf16.jpg", _jpeg_exif_comment(odd), "ok", "odd-length UTF-16 UserComment")
    lone = b"UNICODE\0" + "café".encode("utf-16-le") + b"\x00\xd8"  # unpaired surrogate
    add("lone_surrogate.jpg", _jpeg_exif_comment(lone), "ok", "UTF-16 with a lone surrogate")
    add("ifd_loop.jpg", jpeg, "ok", "EXIF IFD offsets that loop")

    for name in ODD_NAMES:
        path = png_with_text(folder / name, {"parameters": INFOTEXT})
        made.append(Hostile(path, "ok", f"file name {name!r}"))
    jpeg_with_exif(folder / "-ver.jpg", user_comment=INFOTEXT)
    made.append(Hostile(folder / "-ver.jpg", "ok", "JPEG named -ver.jpg"))
    return made


def zip_bomb(inflated: int = 200 * 1024 * 1024) -> bytes:
    """A PNG whose zTXt ``parameters`` chunk inflates to ``inflated`` bytes (from ~0.1 %)."""
    packed = zlib.compress(b" " * inflated, 9)
    return _png_bytes({}).replace(
        png_chunk(b"IEND", b""),
        png_chunk(b"zTXt", b"parameters\0\0" + packed) + png_chunk(b"IEND", b""),
    )


def _jpeg_exif_comment(comment: bytes) -> bytes:
    """A JPEG whose Exif IFD holds ``comment`` as the raw UserComment bytes."""
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = comment
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(out, "JPEG", exif=exif.tobytes())
    return out.getvalue()


def describe(made: list[Hostile]) -> str:
    """A one-line count per expectation (for messages and the README table)."""
    counts: dict[str, int] = {}
    for item in made:
        counts[item.expect] = counts.get(item.expect, 0) + 1
    return json.dumps(counts, sort_keys=True)
