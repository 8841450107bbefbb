"""The safety layer in front of every route: who may ask, from which page, with how much data.

- **Host**: on a loopback bind only ``127.0.0.1``, ``localhost`` and ``[::1]`` with the server's
  port are answered, so a web site that points its own name at 127.0.0.1 (DNS rebinding) gets
  403. With ``--allow-remote`` any Host is accepted, because the token is then required.
- **Origin**: a request that names an Origin must come from the page this server serves
  (``http://`` + the request's own Host); a browser's ``Sec-Fetch-Site: cross-site`` is refused
  too, except for plainly opening the page. So another site open in the same browser can
  neither start jobs nor read images or the CSV.
- **Token** (only with ``--allow-remote``): every request carries it as the ``X-Aimeta-Token``
  header, an ``Authorization: Bearer`` header, ``?token=`` or the cookie this layer sets when
  the page is first opened with ``?token=``. The cookie (HttpOnly, SameSite=Strict) lets the
  page's images, event stream and CSV link work, which cannot send headers, and survives a
  reload; scripts cannot read it and other sites' requests never carry it.
- **Body size**: request bodies above a per-route bound get 413 before any route sees them.

Written as plain ASGI so that the server-sent event stream passes through unbuffered.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

TOKEN_HEADER = "x-aimeta-token"
TOKEN_COOKIE = "aimeta_token"
MAX_BODY_BYTES = 64 * 1024
# The prompt editor sends two prompts of up to 32 KB each; JSON escaping can double that.
BODY_LIMITS = {"/save_prompts": 256 * 1024}
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
# The pages (as opposed to the API): opening one from a link is harmless, and opening one with
# ?token= sets the token cookie.
PAGES = ("/", "/library")
SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        b"connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]


def allowed_hosts(host: str, port: int) -> frozenset[str]:
    """The Host header values a loopback server answers: each loopback name with the port."""
    names = {*LOOPBACK_NAMES, f"[{host}]" if ":" in host else host}
    hosts = {f"{name}:{port}" for name in names}
    if port == 80:  # browsers leave out the default port
        hosts |= names
    return frozenset(hosts)


class Guard:
    """ASGI middleware: Host, Origin, token and body-size checks, plus security headers."""

    def __init__(
        self, app: ASGIApp, *, hosts: Iterable[str] | None, token: str | None = None
    ) -> None:
        self.app = app
        self.hosts = None if hosts is None else frozenset(h.lower() for h in hosts)
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        problem = self._refusal(scope, headers)
        if problem is not None:
            status, message = problem
            await _send_json(send, status, {"detail": message})
            return
        limit = BODY_LIMITS.get(scope["path"], MAX_BODY_BYTES)
        body = await _read_body(receive, headers, limit)
        if body is None:
            await _send_json(send, 413, {"detail": f"request body larger than {limit:,} bytes"})
            return
        set_cookie = self._cookie_to_set(scope, headers)
        await self.app(scope, _replay(body, receive), _with_headers(send, set_cookie))

    def _refusal(self, scope: Scope, headers: dict[str, str]) -> tuple[int, str] | None:
        host = headers.get("host", "").lower()
        if self.hosts is not None and host not in self.hosts:
            return 403, (
                f"requests for host {host or '(none)'!r} are refused; open the page at "
                "http://127.0.0.1 or http://localhost with the server's port"
            )
        origin = headers.get("origin")
        if origin is not None and origin.lower() not in (f"http://{host}", f"https://{host}"):
            return 403, f"requests from {origin!r} are refused: only this server's own page"
        if headers.get("sec-fetch-site") == "cross-site" and not _opens_page(scope, headers):
            return 403, "requests from other web sites are refused"
        if self.token is not None and not self._has_token(scope, headers):
            return 401, "this server needs the token printed when it started (?token=...)"
        return None

    def _has_token(self, scope: Scope, headers: dict[str, str]) -> bool:
        assert self.token is not None
        given = [headers.get(TOKEN_HEADER, "")]
        authorization = headers.get("authorization", "")
        if authorization.lower().startswith("bearer "):
            given.append(authorization[7:].strip())
        given.extend(_query(scope).get("token", []))
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except Exception:  # a malformed cookie header is just no token
            cookie = SimpleCookie()
        if TOKEN_COOKIE in cookie:
            given.append(cookie[TOKEN_COOKIE].value)
        expected = self.token.encode()
        return any(hmac.compare_digest(value.encode(), expected) for value in given if value)

    def _cookie_to_set(self, scope: Scope, headers: dict[str, str]) -> bytes | None:
        """Remember a token given in the page's URL, so images and the CSV link carry it."""
        if self.token is None or scope["path"] not in PAGES or scope["method"] != "GET":
            return None
        if self.token not in _query(scope).get("token", []):
            return None
        return f"{TOKEN_COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict".encode("latin-1")


def _opens_page(scope: Scope, headers: dict[str, str]) -> bool:
    """A plain link from elsewhere to the page itself (nothing is done or read by opening it)."""
    return (
        scope["method"] == "GET"
        and scope["path"] in PAGES
        and headers.get("sec-fetch-mode") == "navigate"
    )


def _headers(scope: Scope) -> dict[str, str]:
    return {
        name.decode("latin-1").lower(): value.decode("latin-1")
        for name, value in scope.get("headers", [])
    }


def _query(scope: Scope) -> dict[str, list[str]]:
    return parse_qs(scope.get("query_string", b"").decode("latin-1"))


async def _read_body(receive: Receive, headers: dict[str, str], limit: int) -> bytes | None:
    """The whole request body, or None when it exceeds ``limit`` (declared or actual)."""
    declared = headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the app the body already read, then waits for a disconnect."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _with_headers(send: Send, set_cookie: bytes | None) -> Send:
    async def send_with_headers(message: Message) -> None:
        if message["type"] == "http.response.start":
            extra = list(SECURITY_HEADERS)
            if set_cookie is not None:
                extra.append((b"set-cookie", set_cookie))
            message["headers"] = [*message.get("headers", []), *extra]
        await send(message)

    return send_with_headers


async def _send_json(send: Send, status: int, payload: dict[str, Any]) -> None:
    data = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
                *SECURITY_HEADERS,
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})
