"""The model client against httpx.MockTransport handlers (the code next to it, no server)."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from aimeta.errors import ModelServerError
from aimeta.rating.client import ModelClient, RetryableError, ServerUnreachable

ANSWER = {
    "choices": [{"message": {"content": "{}"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 10, "completion_tokens": 5},
}


def client(handler, **kwargs) -> ModelClient:  # type: ignore[no-untyped-def]
    kwargs.setdefault("backoff", 0.01)
    return ModelClient("http://model.test/v1", transport=httpx.MockTransport(handler), **kwargs)


def ask(model_client: ModelClient, schema: dict | None = None):  # type: ignore[no-untyped-def,type-arg]
    return model_client.chat(
        model="m",
        system_prompt="s",
        user_prompt="u",
        image_jpeg=b"\xff\xd8jpeg",
        temperature=0.1,
        max_tokens=100,
        schema=schema,
    )


def test_request_shape_and_usage() -> None:
    seen: list[dict] = []  # type: ignore[type-arg]

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        assert request.url.path == "/v1/chat/completions"
        assert request.headers["authorization"] == "Bearer secret"
        return httpx.Response(200, json=ANSWER)

    answer = ask(client(handler, api_key="secret"), schema={"type": "object"})
    body = seen[0]
    image = body["messages"][1]["content"][1]["image_url"]["url"]
    assert image == "data:image/jpeg;base64,/9hqcGVn"
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["schema"] == {"type": "object"}
    assert (body["temperature"], body["max_tokens"], body["model"]) == (0.1, 100, "m")
    assert (answer.prompt_tokens, answer.completion_tokens, answer.used_schema) == (10, 5, True)


def test_5xx_retried_then_succeeds() -> None:
    statuses = iter([500, 503, 200])

    def handler(_request: httpx.Request) -> httpx.Response:
        status = next(statuses)
        return httpx.Response(status, json=ANSWER if status == 200 else {"error": "busy"})

    assert ask(client(handler, max_retries=2)).text == "{}"


def test_5xx_gives_up_after_max_retries() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(502, text="bad gateway")

    with pytest.raises(RetryableError, match=r"HTTP 502.*gave up after 3 tries"):
        ask(client(handler, max_retries=2))
    assert len(calls) == 3


@pytest.mark.parametrize(
    ("content_type", "body"),
    [("text/html", b"<html><body>502 Bad Gateway</body></html>"), ("application/json", b'{"cho')],
    ids=["html-page", "truncated-json"],
)
def test_200_with_a_body_that_is_not_json_is_retried(content_type: str, body: bytes) -> None:
    answers = iter([httpx.Response(200, content=body, headers={"content-type": content_type})])

    def handler(_request: httpx.Request) -> httpx.Response:
        return next(answers, None) or httpx.Response(200, json=ANSWER)

    assert ask(client(handler, max_retries=1)).text == "{}"


def test_200_with_a_body_that_is_not_json_gives_up_after_max_retries() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200, text="<html>proxy error</html>")

    with pytest.raises(
        RetryableError, match=r"HTTP 200 with a body that is not JSON: '<html>proxy error</html>'"
    ):
        ask(client(handler, max_retries=2))
    assert len(calls) == 3


def test_json_that_is_no_chat_completion_is_not_retried() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200, json={"detail": "ok"})

    with pytest.raises(ModelServerError, match="not a chat completion"):
        ask(client(handler, max_retries=2))
    assert len(calls) == 1


def test_4xx_not_retried() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(404, json={"error": {"message": "model not found"}})

    with pytest.raises(ModelServerError, match="HTTP 404: model not found"):
        ask(client(handler, max_retries=3))
    assert len(calls) == 1


def test_429_honours_retry_after() -> None:
    times: list[float] = []

    def handler(_request: httpx.Request) -> httpx.Response:
        times.append(time.monotonic())
        if len(times) == 1:
            return httpx.Response(429, headers={"Retry-After": "0.4"}, json={})
        return httpx.Response(200, json=ANSWER)

    ask(client(handler, backoff=0.0))
    assert times[1] - times[0] >= 0.38


def test_schema_rejected_retried_once_without_it_and_remembered() -> None:
    formats: list[bool] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        formats.append("response_format" in body)
        if "response_format" in body:
            return httpx.Response(400, json={"error": {"message": "response_format not allowed"}})
        return httpx.Response(200, json=ANSWER)

    model_client = client(handler)
    assert ask(model_client, schema={"type": "object"}).used_schema is False
    ask(model_client, schema={"type": "object"})
    assert formats == [True, False, False]


def test_length_is_an_error_naming_max_tokens() -> None:
    def handler(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, json={"choices": [{"message": {"content": "{"}, "finish_reason": "length"}]}
        )

    with pytest.raises(ModelServerError, match="max_tokens"):
        ask(client(handler))


def test_connection_error_retried_then_unreachable() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    with pytest.raises(ServerUnreachable, match="connection refused"):
        ask(client(handler, max_retries=1))
    assert len(calls) == 2


def test_list_models() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/models"
        return httpx.Response(200, json={"data": [{"id": "qwen2.5-vl"}, {"object": "x"}]})

    assert [m.id for m in client(handler).list_models()] == ["qwen2.5-vl"]
