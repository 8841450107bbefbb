"""Client for an OpenAI-compatible vision model server (LM Studio, llama.cpp, vLLM, Ollama /v1).

``ModelClient(base_url, transport=...)`` speaks ``GET /models`` and ``POST /chat/completions``.
Connection errors, time-outs, 429 (honouring ``Retry-After``) and 5xx are retried with
exponential back-off up to ``max_retries`` times; other 4xx are not. An answer with a 2xx
status whose body is not JSON (a proxy's HTML error page, a body cut off in transit) is
retried like a 5xx: it says nothing about the request. When a server rejects
``response_format`` the call is repeated once without it, and the client remembers that for
later calls. Tests pass ``transport=httpx.MockTransport(handler)``.

On Linux the client acknowledges an answer's headers at once (TCP_QUICKACK): a server that
writes headers and body in two sends without TCP_NODELAY (Python's http.server, among others)
otherwise holds the body back until the client's delayed ACK, about 40 ms per request on a
reused connection.
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import functools
import random
import socket
import ssl
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from aimeta.errors import ModelServerError

MAX_BACKOFF_S = 30.0
MAX_RETRY_AFTER_S = 120.0


class RetryableError(ModelServerError):
    """The model server failed in a way that may pass (busy, overloaded, unreachable)."""


class ServerUnreachable(RetryableError):
    """The model server cannot be reached."""


@dataclass(frozen=True, slots=True)
class ChatAnswer:
    """What the server answered for one image."""

    text: str
    finish_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    duration_s: float
    model: str
    used_schema: bool


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """One entry of ``GET /models``."""

    id: str
    raw: dict[str, Any]


class ModelClient:
    """One model server. Thread-safe: several workers may call :meth:`chat` at once."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str = "",
        timeout: float = 300.0,
        max_retries: int = 4,
        backoff: float = 1.0,
        transport: httpx.BaseTransport | None = None,
        stop: threading.Event | None = None,
        max_connections: int = 16,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.max_retries = max(0, max_retries)
        self.backoff = backoff
        self.timeout = timeout
        # Waiting for a retry ends early when the run is being stopped.
        self._stop = stop or threading.Event()
        self._schema_rejected = False
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            # Every request goes to base_url (no redirects followed), so plain http needs no
            # certificates; loading them costs ~80 ms per client.
            verify=_ssl_context() if self.base_url.startswith("https") else False,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            transport=transport,
            limits=httpx.Limits(max_connections=max_connections),
            event_hooks={"response": [_ack_now]},
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ModelClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def list_models(self) -> list[ModelInfo]:
        """The models the server offers (``GET /models``), loaded ones first where it says."""
        body = self._send("GET", "/models")
        data = body.get("data", []) if isinstance(body, dict) else []
        if not isinstance(data, list):
            raise ModelServerError(f"{self.base_url}/models did not answer with a model list")
        return [
            ModelInfo(id=str(item["id"]), raw=item)
            for item in data
            if isinstance(item, dict) and item.get("id")
        ]

    def chat(
        self,
        *,
        model: str,
        system_prompt: str,
        user_prompt: str,
        image_jpeg: bytes,
        temperature: float,
        max_tokens: int,
        schema: dict[str, Any] | None = None,
    ) -> ChatAnswer:
        """Ask about one image; return the answer text with token usage and duration.

        Raise ModelServerError when no usable answer came (after retries)."""
        content = [{"type": "text", "text": user_prompt}, _image_part(image_jpeg)]
        return self._complete(model, system_prompt, content, temperature, max_tokens, schema)

    def chat_images(
        self,
        *,
        model: str,
        system_prompt: str,
        user_prompt: str,
        images: Sequence[tuple[str, bytes]],
        temperature: float,
        max_tokens: int,
        schema: dict[str, Any] | None = None,
    ) -> ChatAnswer:
        """Ask about several images in one request: the prompt, then per image its label
        (e.g. ``Image 1``) as a text part followed by the image. Same errors as :meth:`chat`."""
        content: list[dict[str, Any]] = [{"type": "text", "text": user_prompt}]
        for label, jpeg in images:
            content += [{"type": "text", "text": label}, _image_part(jpeg)]
        return self._complete(model, system_prompt, content, temperature, max_tokens, schema)

    def _complete(
        self,
        model: str,
        system_prompt: str,
        content: list[dict[str, Any]],
        temperature: float,
        max_tokens: int,
        schema: dict[str, Any] | None,
    ) -> ChatAnswer:
        payload: dict[str, Any] = {
            "model": model,
            "temperature": temperature,
            "max_tokens": max_tokens,
            "stream": False,
            "messages": [
                {"role": "system", "content": system_prompt},
                {"role": "user", "content": content},
            ],
        }
        use_schema = schema is not None and not self._schema_rejected
        if use_schema:
            payload["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "rating", "strict": True, "schema": schema},
            }
        started = time.monotonic()
        try:
            body = self._send("POST", "/chat/completions", json=payload)
        except _SchemaRejected:
            # Remembered for the whole run: one extra request, not one per image.
            self._schema_rejected = True
            payload.pop("response_format", None)
            use_schema = False
            body = self._send("POST", "/chat/completions", json=payload)
        duration = time.monotonic() - started
        return _read_answer(body, duration, model, use_schema)

    def _send(self, method: str, path: str, **kwargs: Any) -> Any:
        """The decoded JSON body of a successful answer, after retries."""
        last_problem = ""
        for attempt in range(self.max_retries + 1):
            if attempt and self._stop.is_set():
                break
            wait: float | None = None
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.TimeoutException:
                last_problem = f"no answer within {self.timeout:g} s"
            except httpx.TransportError as exc:
                last_problem = f"cannot connect ({_reason(exc)})"
                if attempt == self.max_retries:
                    raise ServerUnreachable(
                        f"cannot reach the model server at {self.base_url}: {_reason(exc)}"
                    ) from exc
            else:
                status = response.status_code
                if status < 400:
                    try:
                        return response.json()
                    except ValueError:
                        last_problem = _not_json(response)
                else:
                    last_problem, wait = self._failed(response, path)
            if attempt < self.max_retries:
                if wait is None:
                    wait = min(MAX_BACKOFF_S, self.backoff * 2**attempt)
                    wait *= random.uniform(0.8, 1.2)
                if self._stop.wait(wait):
                    break
        raise RetryableError(
            f"{self.base_url}{path}: {last_problem} (gave up after {self.max_retries + 1} tries)"
        )

    def _failed(self, response: httpx.Response, path: str) -> tuple[str, float | None]:
        """(problem, wait before the retry) for a 429 or 5xx answer; raises for the others."""
        status = response.status_code
        detail = _error_text(response)
        if status == 429 or status >= 500:
            wait = _retry_after(response) if status == 429 else None
            return f"HTTP {status} {detail}".strip(), wait
        if status == 400 and "response_format" in detail.lower():
            raise _SchemaRejected(detail)
        raise ModelServerError(f"{self.base_url}{path} answered HTTP {status}: {detail}".strip())


def _image_part(jpeg: bytes) -> dict[str, Any]:
    url = "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")
    return {"type": "image_url", "image_url": {"url": url}}


def _not_json(response: httpx.Response) -> str:
    # A proxy's error page or a body cut off in transit: nothing the request did wrong, so it
    # is retried like a 5xx.
    return f"HTTP {response.status_code} with a body that is not JSON: {response.text[:200]!r}"


_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)  # Linux only


def _ack_now(response: httpx.Response) -> None:
    """Runs when an answer's headers are in, before its body is read: send the pending ACK
    now, so a server whose body waits for it (Nagle) sends it without the ~40 ms delay."""
    if _QUICKACK is None:
        return
    stream = response.extensions.get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    return ssl.create_default_context()


class _SchemaRejected(ModelServerError):
    """The server does not accept response_format."""


def _read_answer(body: Any, duration: float, model: str, used_schema: bool) -> ChatAnswer:
    try:
        choice = body["choices"][0]
        message = choice.get("message") or {}
        content = message.get("content")
    except (KeyError, IndexError, TypeError, AttributeError) as exc:
        raise ModelServerError(
            f"the model server's answer is not a chat completion: {str(body)[:200]!r}"
        ) from exc
    if isinstance(content, list):  # some servers return content parts
        content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
    text = content if isinstance(content, str) else ""
    if not text and isinstance(message.get("reasoning_content"), str):
        text = message["reasoning_content"]
    usage = body.get("usage") or {}
    finish_reason = choice.get("finish_reason")
    if finish_reason == "length":
        raise ModelServerError(
            "the answer was cut off at the token limit (finish_reason 'length'): raise "
            "max_tokens (AIMETA_MAX_TOKENS or max_tokens in aimeta.toml; a thinking model "
            "needs room for its reasoning)"
        )
    return ChatAnswer(
        text=text,
        finish_reason=finish_reason,
        prompt_tokens=_int_or_none(usage.get("prompt_tokens")),
        completion_tokens=_int_or_none(usage.get("completion_tokens")),
        duration_s=duration,
        model=str(body.get("model") or model),
        used_schema=used_schema,
    )


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        when = email.utils.parsedate_to_datetime(value)
        if when is None:
            return None
        seconds = when.timestamp() - time.time()
    return max(0.0, min(MAX_RETRY_AFTER_S, seconds))


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict):
            return str(error.get("message") or error)[:300]
        return str(error)[:300]
    return str(body)[:300]


def _reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return "connection refused" if "refused" in text.lower() else text


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
