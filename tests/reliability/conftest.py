"""Fixtures of the reliability suite and its ``--soak`` option (many more kill points)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# The suite's own modules (hostile.py, rel_support.py) are imported by name.
sys.path.insert(0, str(Path(__file__).parent))

from rel_support import ForkServer


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--soak",
        action="store_true",
        default=False,
        help="reliability suite: many more kill points and bigger corpora (minutes)",
    )


@pytest.fixture(scope="session")
def soak_mode(pytestconfig: pytest.Config) -> bool:
    """True with --soak (or RELIABILITY_SOAK=1, for runs started from the repository root,
    where pytest does not know this folder's option)."""
    given = bool(pytestconfig.getoption("--soak", default=False))
    return given or os.environ.get("RELIABILITY_SOAK") == "1"


@pytest.fixture(scope="session")
def forkserver() -> Iterator[ForkServer]:
    server = ForkServer()
    yield server
    server.close()
