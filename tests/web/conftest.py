"""Fixtures of the web tests: tiny photos, settings, the local model server, an app client."""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from web_helpers import BASE_URL, TestClient, make_photos

from aimeta.settings import Settings
from aimeta.web.app import create_app
from openai_server import ServerState, serve


@pytest.fixture(name="make_photos")
def make_photos_fixture() -> Callable[[Path, int], list[Path]]:
    """``make_photos(folder, count)``: that many tiny JPEGs in ``folder``."""
    return make_photos


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """A folder with 3 tiny JPEGs."""
    folder = tmp_path / "photos"
    make_photos(folder, 3)
    return folder


@pytest.fixture
def model_server() -> Iterator[ServerState]:
    with serve() as state:
        yield state


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    def build(api_url: str = "http://127.0.0.1:9/v1", **changes: Any) -> Settings:
        base = Settings(
            api_urls=(api_url,),
            db=tmp_path / "out" / "images.db",
            converter="pillow",
            workers=2,
            size=128,
            retry_backoff=0.05,
            max_retries=1,
            request_timeout=10.0,
            prompts_dir=tmp_path / "prompts",
            host="127.0.0.1",
            port=5000,
        )
        return dataclasses.replace(base, **changes)

    return build


@pytest.fixture
def make_client() -> Iterator[Callable[..., TestClient]]:
    """``make_client(settings, token=None, base_url=...)``: a started client, closed at the end."""
    opened: list[TestClient] = []

    def build(settings: Settings, token: str | None = None, base_url: str = BASE_URL) -> TestClient:
        test_client = TestClient(create_app(settings, token=token), base_url=base_url)
        test_client.__enter__()
        opened.append(test_client)
        return test_client

    yield build
    for test_client in opened:
        test_client.__exit__(None, None, None)


@pytest.fixture
def client(
    make_settings: Callable[..., Settings],
    model_server: ServerState,
    make_client: Callable[..., TestClient],
) -> TestClient:
    """A client of an app whose model server is the local test server."""
    return make_client(make_settings(model_server.base_url))


def _wait_for_end(test_client: TestClient, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status = test_client.get("/status").json()
        if status["state"] in ("finished", "stopped", "failed"):
            return status
        time.sleep(0.05)
    raise AssertionError(f"the job did not end within {timeout} s: {status}")


@pytest.fixture
def wait_for_end() -> Callable[..., dict[str, Any]]:
    """``wait_for_end(client)``: poll /status until the job is over; the last status."""
    return _wait_for_end
