"""A small, polite client for Civitai's public API (used only by ``aimeta resolve --online``).

Two questions: a model version by id (``GET /model-versions/{id}``) and by file hash
(``GET /model-versions/by-hash/{hash}``). Requests are spaced to at most ``rate`` per second,
carry ``Authorization: Bearer <token>`` when a token is set, and time out. The client takes an
``httpx`` transport so tests can answer with a local handler or server.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx

from aimeta import __version__


class CivitaiUnreachable(Exception):
    """The API could not be reached (offline, DNS, refused, timed out)."""


@dataclass(frozen=True, slots=True)
class Answer:
    """One API answer: ``status`` 200 with the JSON ``data``, 404 (not found), or another
    status (a failure worth trying again later: 429, 5xx, ...)."""

    status: int
    data: Any = None

    @property
    def found(self) -> bool:
        return self.status == 200 and isinstance(self.data, dict)

    @property
    def not_found(self) -> bool:
        return self.status == 404


class CivitaiClient:
    """Ask Civitai about model versions; use as a context manager."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str = "",
        rate: float = 2.0,
        timeout: float = 20.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"User-Agent": f"aimeta/{__version__}", "Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._client = httpx.Client(
            base_url=base_url.rstrip("/") + "/",
            headers=headers,
            timeout=timeout,
            transport=transport,
            follow_redirects=True,
        )
        self._interval = 1.0 / rate if rate > 0 else 0.0
        self._last_request: float | None = None
        self.requests = 0

    def __enter__(self) -> CivitaiClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def model_version(self, version_id: int) -> Answer:
        """``GET /model-versions/{version_id}``."""
        return self._get(f"model-versions/{version_id}")

    def by_hash(self, file_hash: str) -> Answer:
        """``GET /model-versions/by-hash/{hash}`` (any hash type Civitai knows)."""
        return self._get(f"model-versions/by-hash/{file_hash}")

    def _wait_for_turn(self) -> None:
        if self._last_request is not None and self._interval:
            remaining = self._last_request + self._interval - time.monotonic()
            if remaining > 0:
                time.sleep(remaining)
        self._last_request = time.monotonic()

    def _get(self, path: str) -> Answer:
        self._wait_for_turn()
        self.requests += 1
        try:
            response = self._client.get(path)
        except httpx.TransportError as exc:
            raise CivitaiUnreachable(f"{type(exc).__name__}: {exc}") from exc
        if response.status_code != 200:
            return Answer(response.status_code)
        try:
            return Answer(200, response.json())
        except ValueError:
            return Answer(502)  # a 200 without JSON (a captive portal, a proxy page)
