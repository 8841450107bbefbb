"""Processes that write images the ways generators do, for the tests and bench of `aimeta watch`.

    python tests/watch_writers.py MODE FOLDER COUNT PER_SECOND PREFIX

MODE ``a1111``: each image is written to ``<name>.png.tmp`` and renamed to its final name;
``comfyui``: written under its final name in three chunks with pauses between them;
``rewrite``: ``<PREFIX>0.png`` .. are written again in place (the same file truncated, then
written in two chunks with a pause), as an editor saving over a file does. Each image's
prompt is ``prompt_of(PREFIX, n)``; the writer prints ``<path> <time of its final write>``
per image on stdout.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from factory import _PNG_SIGNATURE, png_chunk, text_chunk

CHUNK_PAUSE_S = 0.3


def prompt_of(prefix: str, number: int) -> str:
    return f"a watched image {prefix} number {number}, (detailed:1.1)"


def infotext(prefix: str, number: int) -> str:
    return (
        f"{prompt_of(prefix, number)}\nNegative prompt: blurry\n"
        f"Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: {number}, Size: 64x64, Model: base"
    )


def png_bytes(text: str, seed: int) -> bytes:
    """A 64x64 PNG whose pixels depend on ``seed`` (so images differ in content and size)."""
    import struct
    import zlib

    width = height = 64
    row = bytes((seed * 7 + x * 13) % 256 for x in range(width * 3))
    raw = b"".join(b"\0" + row[y % 7 :] + row[: y % 7] for y in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        _PNG_SIGNATURE
        + png_chunk(b"IHDR", ihdr)
        + text_chunk("parameters", text)
        + png_chunk(b"IDAT", zlib.compress(raw, 1))
        + png_chunk(b"IEND", b"")
    )


def write_a1111(path: Path, data: bytes) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def write_in_chunks(path: Path, data: bytes, parts: int) -> None:
    step = len(data) // parts + 1
    with path.open("wb") as handle:
        for start in range(0, len(data), step):
            if start:
                time.sleep(CHUNK_PAUSE_S)
            handle.write(data[start : start + step])
            handle.flush()


def main(mode: str, folder: str, count: str, per_second: str, prefix: str) -> None:
    interval = 1.0 / float(per_second)
    started = time.monotonic()
    for number in range(int(count)):
        path = Path(folder) / f"{prefix}{number}.png"
        # A rewrite changes the text (and so the stored prompt) of the same file.
        text = infotext(prefix + "-edited" if mode == "rewrite" else prefix, number)
        data = png_bytes(text, number + len(prefix) * 1000)
        if mode == "a1111":
            write_a1111(path, data)
        elif mode == "comfyui":
            write_in_chunks(path, data, 3)
        else:
            write_in_chunks(path, data, 2)  # the same file (inode), truncated and written again
        print(f"{path} {time.time()}", flush=True)
        delay = started + (number + 1) * interval - time.monotonic()
        if delay > 0:
            time.sleep(delay)


if __name__ == "__main__":
    main(*sys.argv[1:6])
