"""Fixtures of the rating tests: small images, a settings factory, the local model server."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from aimeta.settings import Settings

COLOURS = [
    (200, 30, 30),
    (30, 200, 30),
    (30, 30, 200),
    (200, 200, 30),
    (30, 200, 200),
    (90, 90, 90),
]


def make_images(folder: Path, count: int, size: tuple[int, int] = (64, 48)) -> list[Path]:
    """``count`` small images with different colours (JPEG and PNG alternating)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        colour = COLOURS[index % len(COLOURS)]
        colour = (colour[0], colour[1], (colour[2] + 7 * index) % 256)
        path = folder / (f"img{index:03d}.jpg" if index % 2 == 0 else f"img{index:03d}.png")
        Image.new("RGB", size, colour).save(path)
        paths.append(path)
    return paths


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """A folder with 4 small images."""
    folder = tmp_path / "photos"
    make_images(folder, 4)
    return folder


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Settings for a test run: Pillow rendering, fast retries, a database in tmp_path."""

    def build(base_url: str, **changes: Any) -> Settings:
        base = Settings(
            api_urls=(base_url,),
            db=tmp_path / "out" / "images.db",
            converter="pillow",
            workers=2,
            retry_backoff=0.05,
            max_retries=2,
            request_timeout=10.0,
            size=128,
            prompts_dir=tmp_path / "prompts",
        )
        return dataclasses.replace(base, **changes)

    return build


@pytest.fixture
def folder_of(tmp_path: Path) -> Callable[[int], Path]:
    """Make a folder of ``count`` small images under tmp_path."""

    def build(count: int) -> Path:
        folder = tmp_path / f"images{count}"
        make_images(folder, count)
        return folder

    return build
