"""Finding the model servers to rate with: one client per URL, and the model they serve.

Each URL's ``/models`` is probed once, without retries, so a server that is down is known at
the start. A server that is down is left out (a warning) while another one answers; with none
left the run ends with ModelServerError before any image is sent.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import httpx

from aimeta.errors import ModelServerError
from aimeta.pipelines.rate.report import Log
from aimeta.rating.client import ModelClient, ServerUnreachable
from aimeta.settings import Settings


@dataclass
class Servers:
    """The clients to send images to (one per reachable URL) and the model to ask for."""

    clients: list[ModelClient]
    model: str


def connect(
    settings: Settings,
    *,
    transport: httpx.BaseTransport | None,
    stop: threading.Event,
    log: Log,
) -> Servers:
    """A client for every URL of ``settings.api_urls`` that answers; the model is
    ``settings.model`` or else the first one loaded on the first server that has one. Raise
    ModelServerError when no server can be used."""
    problems: list[str] = []
    clients: list[ModelClient] = []
    model = settings.model
    try:
        for url in dict.fromkeys(settings.api_urls):
            client = _client(settings, url, transport, stop)
            try:
                models = _loaded_models(settings, url, transport, log)
            except ServerUnreachable as exc:
                problems.append(exc.message)
                client.close()
                continue
            if not model:
                if not models:
                    problems.append(f"{url} has no model loaded: load a vision model in it")
                    client.close()
                    continue
                model = models[0]
                log(f"Using model {model} (loaded on {url}; choose one with --model)", "info")
            elif models and model not in models:
                log(f"{url} does not list model {model}; trying it anyway", "warning")
            clients.append(client)
    except BaseException:
        for client in clients:
            client.close()
        raise
    if not clients:
        raise ModelServerError(
            "; ".join(problems)
            + ". Start the model server (LM Studio: load a vision model and start the "
            "server) or pass --api-url"
        )
    for problem in problems:
        log(f"{problem}; rating with the other servers", "warning")
    return Servers(clients, model)


def _client(
    settings: Settings, url: str, transport: httpx.BaseTransport | None, stop: threading.Event
) -> ModelClient:
    """The client that rates with the server at ``url`` (retries, timeouts from settings)."""
    return ModelClient(
        url,
        api_key=settings.api_key,
        timeout=settings.request_timeout,
        max_retries=settings.max_retries,
        backoff=settings.retry_backoff,
        transport=transport,
        stop=stop,
        max_connections=settings.workers + 2,
    )


def _loaded_models(
    settings: Settings, url: str, transport: httpx.BaseTransport | None, log: Log
) -> list[str]:
    """The models ``url`` lists (empty when it has no ``/models``: usable with --model);
    raise ServerUnreachable when nothing answers there."""
    probe = ModelClient(
        url, api_key=settings.api_key, timeout=10, max_retries=0, transport=transport
    )
    try:
        return [m.id for m in probe.list_models()]
    except ServerUnreachable:
        raise
    except ModelServerError as exc:
        log(f"{url}: cannot list models ({exc.message})", "warning")
        return []
    finally:
        probe.close()
