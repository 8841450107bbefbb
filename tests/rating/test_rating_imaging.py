"""Rendering to the JPEG sent to the model: Pillow, darktable-cli, RAW previews."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
from PIL import Image

from aimeta.errors import InputError
from aimeta.rating.render import Renderer, RenderError, choose_converter


def decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    assert image.format == "JPEG"
    return image


def test_pillow_bounds_size_and_keeps_aspect(tmp_path: Path) -> None:
    path = tmp_path / "wide.png"
    Image.new("RGB", (400, 100), (10, 200, 10)).save(path)
    rendered = Renderer(size=100, converter="pillow").render(path)
    assert (rendered.width, rendered.height, rendered.via) == (100, 25, "pillow")
    assert decoded(rendered.jpeg).size == (100, 25)


def test_small_images_are_not_enlarged(tmp_path: Path) -> None:
    path = tmp_path / "small.webp"
    Image.new("RGB", (64, 48), (10, 20, 30)).save(path)
    assert decoded(Renderer(size=896, converter="pillow").render(path).jpeg).size == (64, 48)


def test_exif_orientation_applied(tmp_path: Path) -> None:
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    Image.new("RGB", (64, 48), (200, 10, 10)).save(path, exif=exif.tobytes())
    assert decoded(Renderer(size=128, converter="pillow").render(path).jpeg).size == (48, 64)


def test_transparency_becomes_white(tmp_path: Path) -> None:
    path = tmp_path / "clear.png"
    Image.new("RGBA", (32, 32), (0, 0, 0, 0)).save(path)
    pixel = decoded(Renderer(size=64, converter="pillow").render(path).jpeg).getpixel((5, 5))
    assert isinstance(pixel, tuple) and min(pixel) > 240


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("broken.jpg", b"\xff\xd8\xff garbage", "cannot read the image"),
        ("empty.png", b"", "cannot read the image"),
        ("notes.txt", b"hello", "not an image type"),
        ("fake.cr2", b"\x00" * 3000, "no preview JPEG"),
    ],
)
def test_bad_files_fail_with_a_reason(
    tmp_path: Path, name: str, content: bytes, reason: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(RenderError, match=reason):
        Renderer(size=64, converter="pillow").render(path)


def test_folder_named_like_an_image(tmp_path: Path) -> None:
    (tmp_path / "x.png").mkdir()
    with pytest.raises(RenderError, match="not a readable file"):
        Renderer(converter="pillow").render(tmp_path / "x.png")


def test_unknown_or_missing_converter() -> None:
    with pytest.raises(InputError, match="unknown converter"):
        choose_converter("gimp", "darktable-cli")
    with pytest.raises(InputError, match="darktable-cli not found"):
        choose_converter("darktable", "/nonexistent/darktable-cli")
    assert choose_converter("auto", "/nonexistent/darktable-cli") == "pillow"


def test_darktable_cli_renders_a_real_file(tmp_path: Path) -> None:
    if shutil.which("darktable-cli") is None:
        pytest.skip("darktable-cli is not installed (apt-get install darktable)")
    path = tmp_path / "photo.jpg"
    Image.new("RGB", (300, 200), (200, 120, 40)).save(path)
    with Renderer(size=96, converter="darktable", timeout=120) as renderer:
        rendered = renderer.render(path)
    assert rendered.via == "darktable"
    assert decoded(rendered.jpeg).size == (96, 64)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.jpg"]  # nothing left behind
