"""Generated near-duplicate images with a hidden quality, for the cull tests and benchmark.

``scene(seed)`` is a picture (soft colour blobs over fine texture); ``variant(...)`` makes a
near-duplicate of it (a small crop, an exposure change) and writes the hidden quality q (0-1)
into a marker: a grey block in the top-left corner whose level is q, next to a magenta block
in the top-right corner that says the marker is there. ``read_quality`` reads it back from the
rendered JPEG the model server receives (the blocks are 1/16 of the width, so scaling keeps
them). The quality is not visible to aimeta's signals: the blocks are the same size in every
image and the texture keeps every variant sharp.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image, ImageEnhance

SIZE = (512, 384)
_MAGENTA = (255, 0, 255)


def scene(seed: int, size: tuple[int, int] = SIZE) -> Image.Image:
    """A different picture for every seed (pHash far apart), sharp and well exposed."""
    rng = np.random.default_rng(seed)
    width, height = size
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * xs / width + np.sin(angle) * ys / height)[..., None]
    canvas = rng.uniform(70, 130, 3) + ramp * rng.uniform(-60, 60, 3)
    for _blob in range(10):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        radius = rng.uniform(25, 90)
        weight = np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * radius**2))
        canvas += weight[..., None] * rng.uniform(-120, 120, 3)
    texture = rng.normal(0, 14, (height // 2, width // 2))
    canvas += np.kron(texture, np.ones((2, 2)))[:height, :width, None]
    return Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))


def variant(
    picture: Image.Image,
    quality: float,
    *,
    crop: int = 0,
    brightness: float = 1.0,
) -> Image.Image:
    """A near-duplicate of ``picture``: ``crop`` pixels off each side (scaled back to the
    size), ``brightness`` times as bright, with the marker of ``quality``."""
    width, height = picture.size
    image = picture.crop((crop, crop, width - crop, height - crop)).resize((width, height))
    if brightness != 1.0:
        image = ImageEnhance.Brightness(image).enhance(brightness)
    return mark(image, quality)


def mark(image: Image.Image, quality: float) -> Image.Image:
    """``image`` with the marker of ``quality`` (0-1) painted in."""
    marked = image.convert("RGB").copy()
    side = _side(marked.width)
    level = round(40 + 175 * min(1.0, max(0.0, quality)))
    marked.paste((level, level, level), (0, 0, side, side))
    marked.paste(_MAGENTA, (marked.width - side, 0, marked.width, side))
    return marked


def read_quality(source: str | Path | IO[bytes]) -> float | None:
    """The quality of a marked image; None when it has no marker."""
    with Image.open(source) as opened:
        image = opened.convert("RGB")
    side = _side(image.width)
    inner = (side // 4, side // 4, side - side // 4, side - side // 4)
    pixels = np.asarray(image, dtype=np.float64)
    sign = pixels[inner[1] : inner[3], image.width - side + inner[0] : image.width - inner[0]]
    red, green, blue = sign.reshape(-1, 3).mean(axis=0)
    if not (red > 180 and green < 80 and blue > 180):
        return None
    grey = pixels[inner[1] : inner[3], inner[0] : inner[2]].mean()
    return float(min(1.0, max(0.0, (grey - 40) / 175)))


def _side(width: int) -> int:
    return max(8, width // 16)
