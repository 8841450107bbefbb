"""A real local HTTP server speaking the OpenAI chat-completions protocol, for tests and benches.

    with serve(latency=0.5, slots=4, mode="ok") as server:
        ... point aimeta at server.base_url ...
        server.request_count, server.max_concurrent, server.requests  # what was sent

It answers ``GET /v1/models`` and ``POST /v1/chat/completions`` on 127.0.0.1 (a free port) from
a background thread. ``slots`` requests are served at once, later ones wait (as LM Studio
queues them). The answer's scores are derived from the image bytes, so different images get
different but repeatable ratings. ``mode`` picks a fault (see MODES); ``fail_times`` says how
many requests the transient faults (500, 429, timeout, html_200, truncated_200) hit before
the server behaves.
``closed_port_url()`` gives a URL where nothing listens (connection refused).

A request with two or more images is a ranking request (``aimeta cull``): the answer is
``{"ranking": [...], "reasons": {...}}``. With ``judge=Judge(absolute_noise, compare_noise)``
the server plays a model that is noisy in absolute scores and better at comparisons: an image
made by ``tests/cull_images.py`` carries a hidden quality q (0-1) in a marker block, the
rating of one image is ``1 + 4 * (q + N(0, absolute_noise))`` rounded into 1-5, and a ranking
orders the images by ``q + N(0, compare_noise)``. The noise is seeded by the images sent, so
the same request gets the same answer. Images without a marker get a quality from their bytes.
"""

from __future__ import annotations

import base64
import io
import json
import random
import socket
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CRITERIA_KEYS = ("composition", "lighting", "colour", "sharpness", "impact", "creativity")

MODES = (
    "ok",  # a JSON answer as the schema asks
    "error_500",  # HTTP 500 for the first `fail_times` requests, then ok
    "rate_limit",  # HTTP 429 with Retry-After: `retry_after` for the first `fail_times`
    "timeout",  # sleep `timeout_sleep` s before answering, for the first `fail_times`
    "malformed_json",  # content is cut-off JSON
    "bad_body",  # the HTTP body itself is not JSON (an HTML page), every time
    "html_200",  # HTTP 200 with an HTML error page for the first `fail_times`, then ok
    "truncated_200",  # HTTP 200 with half a JSON body for the first `fail_times`, then ok
    "fenced",  # JSON inside a ```json fence
    "think",  # <think>...</think> reasoning before the JSON
    "key_value",  # "Composition: 8" lines instead of JSON
    "missing_fields",  # JSON without "lighting"
    "out_of_range",  # composition 14
    "reject_schema",  # 400 naming response_format when it is sent; ok without it
    "length",  # finish_reason "length" with a cut-off answer
)


@dataclass(frozen=True)
class Judge:
    """A simulated model: the noise (standard deviation, on the 0-1 quality scale) of its
    absolute scores and of its comparisons."""

    absolute_noise: float = 0.25
    compare_noise: float = 0.05


@dataclass
class ServerState:
    """What the server saw; read it from the test."""

    mode: str = "ok"
    latency: float = 0.0
    slots: int = 4
    fail_times: int = 1
    retry_after: float = 1.0
    timeout_sleep: float = 2.0
    model_id: str = "test-vision-model"
    judge: Judge | None = None
    base_url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    request_times: list[float] = field(default_factory=list)
    max_concurrent: int = 0
    _active: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _slots: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(4))

    @property
    def request_count(self) -> int:
        """Chat-completion requests received (GET /models not counted)."""
        with self._lock:
            return len(self.requests)

    def chat_bodies(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r["body"] for r in self.requests]


def answer_for(image_url: str) -> dict[str, Any]:
    """The rating the server gives an image: repeatable, spread over 1-5 stars."""
    seed = zlib.crc32(image_url.encode("ascii", "replace"))
    scores = {key: 1 + (seed >> (3 * index)) % 10 for index, key in enumerate(CRITERIA_KEYS)}
    overall = 1 + seed % 5
    return {**scores, "overall": overall, "keywords": ["test image", "Test Image", "colour", "42"]}


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/v1/models":
            state = self.server.state
            self._send(200, {"object": "list", "data": [{"id": state.model_id, "object": "model"}]})
        else:
            self._send(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length)
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._send(404, {"error": {"message": f"no route {self.path}"}})
            return
        state = self.server.state
        try:
            body = json.loads(raw)
        except ValueError:
            self._send(400, {"error": {"message": "body is not JSON"}})
            return
        with state._lock:
            state.requests.append({"body": body, "headers": dict(self.headers)})
            state.request_times.append(time.monotonic())
            number = len(state.requests)
        with state._slots:
            with state._lock:
                state._active += 1
                state.max_concurrent = max(state.max_concurrent, state._active)
            try:
                self._answer(state, body, number)
            finally:
                with state._lock:
                    state._active -= 1

    def _answer(self, state: ServerState, body: dict[str, Any], number: int) -> None:
        mode = state.mode
        transient = number <= state.fail_times
        if mode == "timeout" and transient:
            time.sleep(state.timeout_sleep)
        elif state.latency:
            time.sleep(state.latency)
        if mode == "error_500" and transient:
            self._send(500, {"error": {"message": "model crashed"}})
            return
        if mode == "rate_limit" and transient:
            self._send(
                429,
                {"error": {"message": "too many requests"}},
                {"Retry-After": f"{state.retry_after:g}"},
            )
            return
        if mode == "reject_schema" and "response_format" in body:
            self._send(400, {"error": {"message": "'response_format' is not supported"}})
            return
        if mode == "bad_body" or (mode == "html_200" and transient):
            self._send_raw(200, b"<html>upstream error</html>", "text/html")
            return
        if mode == "truncated_200" and transient:
            whole = json.dumps({"choices": [{"message": {"content": "{}"}}]}).encode()
            self._send_raw(200, whole[: len(whole) // 2], "application/json")
            return
        urls = _image_urls(body)
        if len(urls) >= 2:
            text = json.dumps(ranking_for(urls, state.judge))
            if mode == "malformed_json":  # cut JSON would still name every image
                text = "Hard to say; maybe image 2."
            self._send_chat(state, body, number, text)
            return
        image_url = urls[0] if urls else ""
        answer = answer_for(image_url)
        if state.judge is not None:
            answer = judged_answer(image_url, state.judge, answer)
        text = json.dumps(answer)
        finish = "stop"
        if mode == "malformed_json":
            text = text[: len(text) // 2]
        elif mode == "fenced":
            text = f"Here is my rating:\n```json\n{json.dumps(answer, indent=2)}\n```\n"
        elif mode == "think":
            text = "<think>The light is soft; {not json} composition: 2.</think>\n" + text
        elif mode == "key_value":
            lines = [f"{k.title()}: {v}" for k, v in answer.items() if k != "keywords"]
            text = "\n".join([*lines, "Keywords: " + ", ".join(answer["keywords"])])
        elif mode == "missing_fields":
            text = json.dumps({k: v for k, v in answer.items() if k != "lighting"})
        elif mode == "out_of_range":
            text = json.dumps({**answer, "composition": 14})
        elif mode == "length":
            text, finish = text[:20], "length"
        elif mode == "reject_schema":
            text = "Sure! " + text
        self._send_chat(state, body, number, text, finish)

    def _send_chat(
        self, state: ServerState, body: dict[str, Any], number: int, text: str, finish: str = "stop"
    ) -> None:
        self._send(
            200,
            {
                "id": f"chatcmpl-{number}",
                "object": "chat.completion",
                "model": body.get("model") or state.model_id,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": finish,
                    }
                ],
                "usage": {"prompt_tokens": 700, "completion_tokens": 60, "total_tokens": 760},
            },
        )

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._send_raw(status, json.dumps(payload).encode(), "application/json", headers)

    def _send_raw(
        self, status: int, data: bytes, kind: str, headers: dict[str, str] | None = None
    ) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (its time-out); nothing to tell it


def _image_urls(body: dict[str, Any]) -> list[str]:
    urls = []
    for message in body.get("messages", []):
        content = message.get("content")
        if isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and part.get("type") == "image_url":
                    urls.append(str(part["image_url"]["url"]))
    return urls


def hidden_quality(image_url: str) -> float | None:
    """The quality a marker of tests/cull_images.py carries in the image; None without one."""
    from cull_images import read_quality

    try:
        data = base64.b64decode(image_url.split(",", 1)[1])
    except (IndexError, ValueError):
        return None
    return read_quality(io.BytesIO(data))


def _quality(image_url: str) -> float:
    found = hidden_quality(image_url)
    if found is not None:
        return found
    return (zlib.crc32(image_url.encode("ascii", "replace")) % 1000) / 1000


def judged_answer(image_url: str, judge: Judge, answer: dict[str, Any]) -> dict[str, Any]:
    """``answer`` with the overall stars of the simulated model."""
    noise = random.Random(zlib.crc32(image_url.encode("ascii", "replace")))
    seen = _quality(image_url) + noise.gauss(0.0, judge.absolute_noise)
    return {**answer, "overall": max(1, min(5, round(1 + 4 * seen)))}


def ranking_for(urls: list[str], judge: Judge | None) -> dict[str, Any]:
    """The ranking answer for images sent in this order (numbers are 1-based)."""
    noise = random.Random(zlib.crc32("|".join(urls).encode("ascii", "replace")))
    spread = judge.compare_noise if judge is not None else 0.0
    seen = [_quality(url) + noise.gauss(0.0, spread) for url in urls]
    order = sorted(range(len(urls)), key=lambda index: -seen[index])
    return {
        "ranking": [index + 1 for index in order],
        "reasons": {str(order[0] + 1): "sharpest and best composed"},
    }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: ServerState


@contextmanager
def serve(
    *,
    latency: float = 0.0,
    slots: int = 4,
    mode: str = "ok",
    fail_times: int = 1,
    retry_after: float = 1.0,
    timeout_sleep: float = 2.0,
    model_id: str = "test-vision-model",
    judge: Judge | None = None,
) -> Iterator[ServerState]:
    """Run the server for the ``with`` block; ``state.base_url`` ends in ``/v1``."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; one of {', '.join(MODES)}")
    state = ServerState(
        mode=mode,
        latency=latency,
        slots=slots,
        fail_times=fail_times,
        retry_after=retry_after,
        timeout_sleep=timeout_sleep,
        model_id=model_id,
        judge=judge,
    )
    state._slots = threading.Semaphore(slots)
    server = _Server(("127.0.0.1", 0), _Handler)
    server.state = state
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def closed_port_url() -> str:
    """A base URL on 127.0.0.1 where nothing listens: connecting is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


if __name__ == "__main__":  # run by hand: python tests/openai_server.py [latency] [slots] [mode]
    import sys

    args = sys.argv[1:]
    with serve(
        latency=float(args[0]) if args else 0.5,
        slots=int(args[1]) if len(args) > 1 else 4,
        mode=args[2] if len(args) > 2 else "ok",
    ) as running:
        print(running.base_url, flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
