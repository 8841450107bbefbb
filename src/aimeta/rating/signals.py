"""Technical signals of an image, measured without a model (Pillow and NumPy only).

``measure(image)`` takes a Pillow image (the JPEG rendered for the model, so darktable's edits
count) and returns :class:`Signals`:

- ``sharpness``: the variance of the Laplacian of luminance (0-1 scale), measured on a copy
  scaled to ``ANALYSIS_SIDE`` pixels on its long side, so a small rendering and a large one
  of the same picture score alike. Focused detail gives strong second derivatives; blur
  removes them.
- ``highlights`` / ``shadows``: the share of pixels whose luminance is clipped (at least
  ``CLIP_HIGH`` or at most ``CLIP_LOW`` of 255).
- ``brightness``: mean luminance, 0-1.
- ``noise``: Immerkær's estimate of the noise sigma (0-1 scale): the mean absolute response of
  a 3x3 mask that cancels smooth gradients and edges of first order, leaving the noise.
- ``width``/``height``: the image's pixels.
- ``phash``: the 64-bit perceptual hash (imagehash's pHash, DCT of the 32x32 luminance), hex.

Reasons, at the thresholds below (chosen on the scikit-image sample photos: their sharpness
lies between 0.003 and 0.025 at 896 pixels, a Gaussian blur of radius 3 brings it under
0.0001; at most 1 % of their pixels are clipped white, 14 % black):

- ``blurry``: sharpness below ``BLURRY_BELOW``;
- ``overexposed``: more than ``OVEREXPOSED_SHARE`` of the pixels clipped white, or a mean
  luminance above ``BRIGHT_MEAN``;
- ``underexposed``: more than ``UNDEREXPOSED_SHARE`` clipped black, or a mean below
  ``DARK_MEAN``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import imagehash
import numpy as np
from PIL import Image

ANALYSIS_SIDE = 512
CLIP_HIGH = 250
CLIP_LOW = 5
BLURRY_BELOW = 0.0008
OVEREXPOSED_SHARE = 0.10
BRIGHT_MEAN = 0.85
UNDEREXPOSED_SHARE = 0.40
DARK_MEAN = 0.10
REASONS = ("blurry", "overexposed", "underexposed")


@dataclass(frozen=True, slots=True)
class Signals:
    """What :func:`measure` found in one image."""

    sharpness: float
    highlights: float
    shadows: float
    brightness: float
    noise: float
    width: int
    height: int
    phash: str

    @property
    def reasons(self) -> tuple[str, ...]:
        """The technical faults found, in the order of REASONS."""
        found = []
        if self.sharpness < BLURRY_BELOW:
            found.append("blurry")
        if self.highlights > OVEREXPOSED_SHARE or self.brightness > BRIGHT_MEAN:
            found.append("overexposed")
        if self.shadows > UNDEREXPOSED_SHARE or self.brightness < DARK_MEAN:
            found.append("underexposed")
        return tuple(found)


def measure(image: Image.Image) -> Signals:
    """The signals of ``image`` (any mode; converted to luminance)."""
    luminance = image.convert("L")
    pixels = np.asarray(luminance, dtype=np.float64)
    scaled = np.asarray(_analysis_copy(luminance), dtype=np.float64) / 255.0
    return Signals(
        sharpness=_laplacian_variance(scaled),
        highlights=float(np.mean(pixels >= CLIP_HIGH)),
        shadows=float(np.mean(pixels <= CLIP_LOW)),
        brightness=float(np.mean(pixels) / 255.0),
        noise=_noise_sigma(scaled),
        width=image.width,
        height=image.height,
        phash=str(imagehash.phash(luminance)),
    )


def hash_distance(first: str, second: str) -> int:
    """The number of bits in which two hex hashes of :func:`measure` differ."""
    return bin(int(first, 16) ^ int(second, 16)).count("1")


def _analysis_copy(luminance: Image.Image) -> Image.Image:
    """``luminance`` scaled so its long side is ANALYSIS_SIDE (down or up)."""
    scale = ANALYSIS_SIDE / max(luminance.width, luminance.height)
    size = (max(3, round(luminance.width * scale)), max(3, round(luminance.height * scale)))
    return luminance.resize(size, Image.Resampling.BOX if scale < 1 else Image.Resampling.BICUBIC)


def _laplacian_variance(pixels: np.ndarray) -> float:
    centre = pixels[1:-1, 1:-1]
    laplacian = (
        pixels[:-2, 1:-1] + pixels[2:, 1:-1] + pixels[1:-1, :-2] + pixels[1:-1, 2:] - 4 * centre
    )
    return float(np.var(laplacian))


def _noise_sigma(pixels: np.ndarray) -> float:
    """Immerkær (1996): sigma = sqrt(pi/2) / (6 (W-2)(H-2)) * sum |I * M|,
    M = [[1, -2, 1], [-2, 4, -2], [1, -2, 1]]."""
    height, width = pixels.shape
    response = (
        pixels[:-2, :-2]
        + pixels[:-2, 2:]
        + pixels[2:, :-2]
        + pixels[2:, 2:]
        - 2 * (pixels[:-2, 1:-1] + pixels[2:, 1:-1] + pixels[1:-1, :-2] + pixels[1:-1, 2:])
        + 4 * pixels[1:-1, 1:-1]
    )
    total = float(np.sum(np.abs(response)))
    return math.sqrt(math.pi / 2) * total / float(6 * (width - 2) * (height - 2))
