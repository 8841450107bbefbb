"""Helpers shared by the web tests (importable because tests/web/conftest.py puts this folder
on sys.path): the test client class, the base URL, a tiny-photo maker."""

from __future__ import annotations

import warnings
from pathlib import Path

from PIL import Image
from starlette.exceptions import StarletteDeprecationWarning

# Starlette warns that its test client will move to another HTTP library; nothing to act on.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

BASE_URL = "http://127.0.0.1:5000"

__all__ = ["BASE_URL", "TestClient", "make_photos"]


def make_photos(folder: Path, count: int) -> list[Path]:
    """``count`` small JPEGs of different colours in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        path = folder / f"photo{index:02d}.jpg"
        Image.new("RGB", (96, 64), (40 * index % 256, 120, 255 - 30 * index % 256)).save(path)
        paths.append(path)
    return paths
