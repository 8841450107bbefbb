"""Shared test set-up: an isolated environment for every test."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# Tests import the fixture factory as `factory` (tests/factory.py).
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True)
def _isolate(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No AIMETA_* variable, aimeta.toml or terminal width leaks in from the machine."""
    for name in list(os.environ):
        if name.startswith("AIMETA_") and name != "AIMETA_SAMPLES":
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AIMETA_CONFIG", str(tmp_path / "no-aimeta.toml"))
    monkeypatch.setenv("COLUMNS", "120")
    monkeypatch.setenv("NO_COLOR", "1")


def samples_dir() -> Path | None:
    """The real sample files named by AIMETA_SAMPLES, or None when unset."""
    value = os.environ.get("AIMETA_SAMPLES")
    if not value:
        return None
    path = Path(value)
    return path if path.is_dir() else None
