"""The web app refuses what another site, another host or a crafted path could ask of it."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from web_helpers import BASE_URL, TestClient, make_photos

from aimeta.errors import UsageError
from aimeta.settings import Settings
from aimeta.web.app import create_app
from openai_server import serve


@pytest.fixture(scope="module")
def rated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Path, Path]]:
    """A client whose last job rated a folder of photos (once for this module); a secret JPEG,
    a sibling folder and symlinks pointing outside lie around it."""
    tmp_path = tmp_path_factory.mktemp("rated")
    photos = tmp_path / "photos"
    make_photos(photos, 3)
    secret = tmp_path / "secret.jpg"
    secret.write_bytes((photos / "photo00.jpg").read_bytes())
    sibling = tmp_path / "photos-private"
    sibling.mkdir()
    (sibling / "other.jpg").write_bytes(secret.read_bytes())
    with serve() as server:
        settings = Settings(
            api_urls=(server.base_url,),
            db=tmp_path / "images.db",
            converter="pillow",
            size=128,
            prompts_dir=tmp_path / "prompts",
        )
        with TestClient(create_app(settings), base_url=BASE_URL) as client:
            start = client.post("/start_processing", json={"folder": str(photos), "xmp": False})
            assert start.status_code == 200
            assert client.app.state.jobs.wait(timeout=20)
            assert client.get("/status").json()["state"] == "finished"
            (photos / "link-out.jpg").symlink_to(secret)
            (photos / "linked-dir").symlink_to(tmp_path)
            yield client, photos, secret


def test_images_of_the_job_are_served(rated: tuple[Any, Path, Path]) -> None:
    client, photos, _secret = rated
    by_absolute = client.get("/image_proxy", params={"path": str(photos / "photo01.jpg")})
    by_relative = client.get("/image_proxy", params={"path": "photo01.jpg"})
    assert by_absolute.status_code == by_relative.status_code == 200
    assert by_absolute.content[:2] == b"\xff\xd8"


# the raw query string after "path=", the status expected
ESCAPES = [
    ("../secret.jpg", 403),
    ("photo00.jpg/../../secret.jpg", 403),
    ("{tmp}/secret.jpg", 403),
    ("{tmp}/photos-private/other.jpg", 403),  # a sibling whose name starts like the folder
    ("/etc/passwd", 403),
    ("/etc/hostname", 403),
    ("%2e%2e%2fsecret.jpg", 403),  # percent-encoded ../
    ("..%2Fsecret.jpg", 403),
    ("%252e%252e%252fsecret.jpg", 404),  # double-encoded: a name that does not exist
    ("..%252Fsecret.jpg", 404),
    ("link-out.jpg", 403),  # a symlink inside the folder pointing outside
    ("linked-dir/secret.jpg", 403),  # through a symlinked folder
    ("photo00.jpg%00.png", 404),  # a NUL byte
    ("missing.jpg", 404),
    ("", 404),
    ("ai_rating_results_test-vision-model.csv", 404),  # inside, but not an image
    ("photos/../photos/photo00.jpg", 404),  # inside after all, but no such file
    ("~/.ssh/id_rsa", 404),
    # more variants (reliability suite): backslashes, overlong UTF-8, file URLs, //, mixes
    ("..\\secret.jpg", 404),
    ("..%5Csecret.jpg", 404),
    ("%c0%ae%c0%ae/secret.jpg", 404),
    ("file:///etc/passwd", 404),
    ("//etc/passwd", 403),
    ("%2e%2e/secret.jpg", 403),
    ("./../secret.jpg", 403),
    ("photo00.jpg/..%2f..%2fsecret.jpg", 403),
    ("%2fetc%2fpasswd", 403),
]


@pytest.mark.parametrize(("raw", "status"), ESCAPES, ids=[e[0] or "empty" for e in ESCAPES])
def test_image_proxy_refuses_paths_outside_the_job_folder(
    rated: tuple[Any, Path, Path], raw: str, status: int
) -> None:
    client, photos, _secret = rated
    response = client.get("/image_proxy?path=" + raw.format(tmp=photos.parent))
    assert response.status_code == status, response.text
    assert b"\xff\xd8" not in response.content[:2]


def test_a_symlink_inside_to_an_image_inside_is_fine(rated: tuple[Any, Path, Path]) -> None:
    client, photos, _secret = rated
    alias = photos / "alias.jpg"
    if not alias.is_symlink():
        alias.symlink_to(photos / "photo02.jpg")
    assert client.get("/image_proxy", params={"path": "alias.jpg"}).status_code == 200


EVIL = "http://evil.example"


@pytest.mark.parametrize(
    ("method", "route"),
    [
        ("get", "/status"),
        ("get", "/log"),
        ("get", "/events"),
        ("get", "/get_prompts"),
        ("post", "/stop_processing"),
        ("get", "/download_last_csv"),
        ("get", "/image_proxy?path=photo00.jpg"),
        ("get", "/"),
        ("get", "/api/count"),
        ("post", "/api/export"),
        ("post", "/api/rate"),
        ("get", "/api/insights"),
    ],
)
def test_requests_from_another_site_are_refused(client: Any, method: str, route: str) -> None:
    response = getattr(client, method)(route, headers={"Origin": EVIL})
    assert response.status_code == 403
    assert "evil.example" in response.json()["detail"]


def test_another_site_cannot_start_a_job_or_save_prompts(
    client: Any, photos: Path, tmp_path: Path
) -> None:
    start = client.post("/start_processing", json={"folder": str(photos)}, headers={"Origin": EVIL})
    assert start.status_code == 403
    assert client.get("/status").json()["state"] == "idle"
    save = client.post("/save_prompts", json={"system": "x", "user": "y"}, headers={"Origin": EVIL})
    assert save.status_code == 403
    assert not (tmp_path / "prompts").exists()
    form = client.post(
        "/start_processing",
        data={"folder": str(photos)},
        headers={"Origin": "null"},  # a sandboxed frame or a file:// page
    )
    assert form.status_code == 403


@pytest.mark.parametrize(
    ("host", "origin", "status"),
    [
        ("127.0.0.1:5000", "http://127.0.0.1:5000", 200),
        ("localhost:5000", "http://localhost:5000", 200),
        ("[::1]:5000", "http://[::1]:5000", 200),
        ("localhost:5000", None, 200),
        ("127.0.0.1:5000", "http://localhost:5000", 403),  # Origin is not the page's own
        ("127.0.0.1:5000", "http://127.0.0.1:5001", 403),  # another port is another site
        ("127.0.0.1:5001", None, 403),  # a Host with another port
        ("evil.example:5000", "http://evil.example:5000", 403),  # DNS rebinding
        ("evil.example", None, 403),
        ("", None, 403),
    ],
)
def test_host_and_origin_must_be_the_server_itself(
    client: Any, host: str, origin: str | None, status: int
) -> None:
    headers = {"Host": host}
    if origin:
        headers["Origin"] = origin
    assert client.get("/status", headers=headers).status_code == status


def test_cross_site_fetch_metadata_is_refused_except_opening_the_page(client: Any) -> None:
    cross = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"}
    assert client.get("/download_last_csv", headers=cross).status_code == 403
    assert client.get("/image_proxy?path=a.jpg", headers=cross).status_code == 403
    link = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}
    assert client.get("/", headers=link).status_code == 200
    assert client.get("/status", headers=link).status_code == 403
    same = {"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors"}
    assert client.get("/status", headers=same).status_code == 200


def test_a_remote_host_needs_a_token(
    make_settings: Callable[..., Settings], make_client: Callable[..., Any]
) -> None:
    remote = make_settings(host="0.0.0.0")
    with pytest.raises(UsageError, match="allow-remote"):
        create_app(remote)
    client = make_client(remote, token="s3cret-token", base_url="http://192.0.2.7:5000")
    assert client.get("/status").status_code == 401
    assert client.get("/", params={"token": "wrong"}).status_code == 401
    assert client.get("/status", headers={"X-Aimeta-Token": "wrong"}).status_code == 401
    assert client.get("/status", headers={"X-Aimeta-Token": "s3cret-token"}).status_code == 200
    assert (
        client.get("/status", headers={"Authorization": "Bearer s3cret-token"}).status_code == 200
    )
    assert client.get("/status", params={"token": "s3cret-token"}).status_code == 200
    # Opening the page with ?token= sets a same-site cookie; the page's links then work.
    page = client.get("/", params={"token": "s3cret-token"})
    assert page.status_code == 200
    cookie = page.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert client.get("/static/app.js").status_code == 200
    client.cookies.clear()
    assert client.get("/static/app.js").status_code == 401
    # The Origin check still applies with a token.
    stolen = {"X-Aimeta-Token": "s3cret-token", "Origin": EVIL}
    assert client.get("/status", headers=stolen).status_code == 403


def test_request_bodies_are_bounded(client: Any, photos: Path) -> None:
    big = {"folder": str(photos), "model": "m" * 70_000}
    response = client.post("/start_processing", json=big)
    assert response.status_code == 413
    assert "65,536" in response.json()["detail"]

    def chunks() -> Any:  # no Content-Length: the size is counted as it arrives
        for _ in range(20):
            yield b"x" * 8192

    chunked = client.post(
        "/start_processing", content=chunks(), headers={"content-type": "application/json"}
    )
    assert chunked.status_code == 413
    assert client.get("/status").json()["state"] == "idle"
    huge_prompts = {"system": "s" * 200_000, "user": "u" * 200_000}
    assert client.post("/save_prompts", json=huge_prompts).status_code == 413


def test_prompts_are_read_and_saved_only_in_the_prompts_folder(client: Any, tmp_path: Path) -> None:
    before = {p for p in tmp_path.rglob("*")}
    shipped = client.get("/get_prompts").json()
    assert "{criteria}" in shipped["user"] and shipped["system"].strip()
    assert shipped["prompts_dir"] == str(tmp_path / "prompts")
    saved = client.post(
        "/save_prompts", json={"system": "Rate photos strictly.", "user": "Scores: {criteria}"}
    )
    assert saved.status_code == 200, saved.text
    assert saved.json()["saved_to"] == str(tmp_path / "prompts")
    added = {p for p in tmp_path.rglob("*")} - before
    assert added == {
        tmp_path / "prompts",
        tmp_path / "prompts" / "system.txt",
        tmp_path / "prompts" / "user.txt",
    }
    assert (tmp_path / "prompts" / "user.txt").read_text(encoding="utf-8") == "Scores: {criteria}"
    again = client.get("/get_prompts").json()
    assert again["system"] == "Rate photos strictly." and again["user"] == "Scores: {criteria}"


@pytest.mark.parametrize(
    ("body", "name", "message"),
    [
        ({"system": "s" * 32_769, "user": "ok"}, "system", "longer than 32 KB"),
        ({"system": "ok", "user": "é" * 16_385}, "user", "longer than 32 KB"),  # bytes, not chars
        ({"system": "   ", "user": "ok"}, "system", "empty"),
        ({"system": "ok"}, "user", "required"),
        ({"system": "ok", "user": "ok", "prompts_dir": "/tmp/x"}, "prompts_dir", "not an option"),
        ({"system": "ok", "user": ["a"]}, "user", "valid string"),
    ],
)
def test_invalid_prompts_are_refused(
    client: Any, tmp_path: Path, body: dict[str, Any], name: str, message: str
) -> None:
    response = client.post("/save_prompts", json=body)
    assert response.status_code == 422
    assert message in response.json()["errors"][name]
    assert not (tmp_path / "prompts").exists()


def test_prompts_of_32_kb_are_accepted(client: Any, tmp_path: Path) -> None:
    body = {"system": "s" * 32_768, "user": "u" * 32_768}
    assert client.post("/save_prompts", json=body).status_code == 200
    assert os.path.getsize(tmp_path / "prompts" / "system.txt") == 32_768
