"""Stealth pnginfo: infotext in the least significant bits of alpha or RGB."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aimeta.metadata.readers.native import NativeReadError
from aimeta.metadata.readers.stealth import read_stealth
from conftest import samples_dir
from factory import bits_of, write_stealth

INFOTEXT = "a lighthouse at dusk, 東京\nNegative prompt: blurry\nSteps: 24, Seed: 42, Size: 48x40"


@pytest.mark.parametrize("channel", ["alpha", "rgb"])
@pytest.mark.parametrize("compressed", [False, True])
def test_hidden_infotext_is_found(channel: str, compressed: bool, tmp_path: Path) -> None:
    path = write_stealth(tmp_path / "hidden.png", INFOTEXT, channel=channel, compressed=compressed)
    assert read_stealth(path) == INFOTEXT


def test_row_major_order_is_not_what_the_extension_writes(tmp_path: Path) -> None:
    # A square image written column-major must not decode when read row by row: guards
    # the x-then-y order against a transpose slip.
    path = write_stealth(
        tmp_path / "square.png", INFOTEXT, channel="alpha", compressed=False, size=(40, 40)
    )
    with Image.open(path) as image:
        flipped = image.transpose(Image.Transpose.TRANSPOSE)
        flipped.save(tmp_path / "transposed.png")
    assert read_stealth(path) == INFOTEXT
    assert read_stealth(tmp_path / "transposed.png") is None


def test_plain_images_have_no_stealth_text(tmp_path: Path) -> None:
    Image.new("RGBA", (30, 30), (10, 20, 30, 255)).save(tmp_path / "plain.png")
    Image.new("RGB", (30, 30), (10, 20, 30)).save(tmp_path / "plain_rgb.png")
    Image.new("L", (30, 30), 7).save(tmp_path / "gray.png")
    assert read_stealth(tmp_path / "plain.png") is None
    assert read_stealth(tmp_path / "plain_rgb.png") is None
    assert read_stealth(tmp_path / "gray.png") is None


def test_an_absurd_declared_length_is_rejected(tmp_path: Path) -> None:
    path = write_stealth(tmp_path / "liar.png", "x", channel="alpha", compressed=False)
    with Image.open(path) as image:
        pixels = np.array(image)
    length_bits = bits_of((2**31).to_bytes(4, "big"))
    column = pixels[:, :, 3].transpose().reshape(-1)
    column[120:152] = (column[120:152] & 0xFE) | length_bits
    pixels[:, :, 3] = column.reshape(pixels.shape[1], pixels.shape[0]).transpose()
    Image.fromarray(pixels, "RGBA").save(path)
    assert read_stealth(path) is None


def test_a_tiny_image_is_not_an_error(tmp_path: Path) -> None:
    Image.new("RGBA", (2, 2)).save(tmp_path / "tiny.png")
    assert read_stealth(tmp_path / "tiny.png") is None


def test_an_undecodable_file_is_a_native_read_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    with pytest.raises(NativeReadError, match="cannot decode"):
        read_stealth(path)


@pytest.mark.skipif(samples_dir() is None, reason="AIMETA_SAMPLES is not set")
def test_the_a1111_sample() -> None:
    folder = samples_dir()
    assert folder is not None
    text = read_stealth(folder / "generated" / "automatic1111_stealth.png")
    assert text is not None
    assert text.startswith("a circle\nNegative prompt: a square\n")
    assert "Seed: 2015833630" in text


def test_cut_or_damaged_files_give_native_read_errors_only(tmp_path: Path) -> None:
    data = write_stealth(tmp_path / "s.png", "x", channel="alpha", compressed=True).read_bytes()
    damaged = tmp_path / "damaged.png"
    for length in range(0, len(data), 97):
        damaged.write_bytes(data[:length] + b"\xff" * 3)
        try:
            read_stealth(damaged)
        except NativeReadError as error:
            assert error.message
