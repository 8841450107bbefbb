"""Every route of the web app through FastAPI's test client, against the real local model server."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from aimeta.settings import Settings
from openai_server import ServerState, serve

ROUTES = {
    "/",
    "/start_processing",
    "/stop_processing",
    "/status",
    "/log",
    "/events",
    "/get_prompts",
    "/save_prompts",
    "/download_last_csv",
    "/image_proxy",
    "/library",
    "/api/images",
    "/api/images/{image_id}",
    "/api/images/{image_id}/thumb",
    "/api/images/{image_id}/file",
    "/api/images/{image_id}/rating",
    "/api/facets",
    "/api/count",
    "/api/export",
    "/api/rate",
    "/api/insights",
}


def _sse_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    """(event name, data) of each event in a server-sent event stream."""
    found = []
    for block in text.split("\n\n"):
        lines = dict(
            line.split(": ", 1) for line in block.splitlines() if ": " in line and line[0] != ":"
        )
        if "event" in lines:
            found.append((lines["event"], json.loads(lines["data"])))
    return found


def test_page_is_served_with_its_own_assets_only(client: Any) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert 'id="start-form"' in page.text and 'id="progress"' in page.text
    assert client.app.state.settings.api_urls[0] in page.text  # the settings fill the form
    for asset in ("/static/app.js", "/static/app.css"):
        response = client.get(asset)
        assert response.status_code == 200 and len(response.text) > 1000
        # No CDN, fonts or other outside resources: the page works offline.
        assert not re.search(r"https?://(?!127\.0\.0\.1|localhost)", response.text), asset
    assert not re.search(r"(src|href)=\"https?://(?!127\.0\.0\.1:5000)", page.text)
    assert "default-src 'self'" in page.headers["content-security-policy"]


def test_openapi_lists_every_route(client: Any) -> None:
    schema = client.get("/openapi.json").json()
    assert set(schema["paths"]) == ROUTES
    assert "post" in schema["paths"]["/start_processing"]
    body = schema["paths"]["/start_processing"]["post"]["requestBody"]["content"]
    assert "folder" in body["application/json"]["schema"]["properties"]
    assert set(schema["paths"]["/image_proxy"]["get"]["responses"]) >= {"200", "403", "404"}
    app_routes = {getattr(route, "path", "") for route in client.app.routes}
    assert app_routes >= ROUTES


def test_status_log_and_events_before_any_job(client: Any) -> None:
    status = client.get("/status").json()
    assert status["state"] == "idle" and status["counts"] == {"rated": 0, "skipped": 0, "failed": 0}
    assert client.get("/log?after=0").json()["entries"] == []
    events = _sse_events(client.get("/events").text)
    assert [name for name, _data in events] == ["end"]
    assert client.get("/download_last_csv").status_code == 404
    assert client.get("/image_proxy", params={"path": "/etc/hostname"}).status_code == 404
    stop = client.post("/stop_processing").json()
    assert stop == {"stopping": False, "state": "idle"}


def test_a_job_runs_to_the_end(
    client: Any, photos: Path, model_server: ServerState, wait_for_end: Callable[..., Any]
) -> None:
    started = client.post("/start_processing", json={"folder": str(photos)})
    assert started.status_code == 200, started.text
    assert started.json()["after"] == 0
    status = wait_for_end(client)
    assert status["state"] == "finished", status
    assert status["done"] == status["total"] == 3
    assert status["counts"] == {"rated": 3, "skipped": 0, "failed": 0}
    assert status["csv_rows"] == 3
    assert Path(status["csv_path"]).parent == photos
    assert model_server.request_count == 3

    log = client.get("/log", params={"after": 0}).json()
    kinds = [entry["kind"] for entry in log["entries"]]
    assert kinds[0] == "job" and kinds[-1] == "end"
    assert kinds.count("item") == 3 and kinds.count("sent") == 3
    seqs = [entry["seq"] for entry in log["entries"]]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    later = client.get("/log", params={"after": seqs[-3]}).json()["entries"]
    assert [entry["seq"] for entry in later] == seqs[-2:]

    events = _sse_events(client.get("/events", params={"after": 0}).text)
    assert [name for name, _data in events] == kinds  # the same entries, ending with "end"
    end = events[-1][1]["data"]
    assert end["result"]["rated"] == 3 and sum(end["result"]["histogram"].values()) == 3
    from_header = _sse_events(client.get("/events", headers={"Last-Event-ID": str(seqs[-2])}).text)
    assert [name for name, _data in from_header] == ["end"]

    items = [entry["data"] for entry in log["entries"] if entry["kind"] == "item"]
    assert all(1 <= item["overall"] <= 5 and item["has_preview"] for item in items)
    assert "preview" not in items[0]  # the private preview path stays on the server
    image = client.get("/image_proxy", params={"path": items[0]["path"]})
    assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(image.content)) as rendered:
        assert max(rendered.size) <= 128  # the rendered JPEG, not the original

    download = client.get("/download_last_csv")
    assert download.status_code == 200
    assert download.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(download.text)))
    assert sorted(Path(row["path"]).name for row in rows) == [
        "photo00.jpg",
        "photo01.jpg",
        "photo02.jpg",
    ]


def test_second_start_is_409_and_stop_flushes(
    make_settings: Callable[..., Settings],
    make_client: Callable[..., Any],
    tmp_path: Path,
    wait_for_end: Callable[..., Any],
    make_photos: Callable[..., Any],
) -> None:
    folder = tmp_path / "many"
    make_photos(folder, 8)
    with serve(latency=0.4, slots=1) as server:
        client = make_client(make_settings(server.base_url, workers=1))
        assert client.post("/start_processing", json={"folder": str(folder)}).status_code == 200
        again = client.post("/start_processing", json={"folder": str(folder)})
        assert again.status_code == 409
        assert "already running" in again.json()["detail"]
        deadline_rated = _wait(lambda: client.get("/status").json()["counts"]["rated"] >= 1)
        assert deadline_rated
        stop = client.post("/stop_processing").json()
        assert stop["stopping"] is True
        status = wait_for_end(client)
    assert status["state"] == "stopped"
    rated = status["counts"]["rated"]
    assert 1 <= rated < 8
    assert status["csv_rows"] == rated  # outputs flushed on stop
    with open(status["csv_path"], newline="", encoding="utf-8") as handle:
        assert len(list(csv.DictReader(handle))) == rated
    texts = [entry["text"] for entry in client.get("/log").json()["entries"]]
    assert any("Stop requested" in text for text in texts)


def _wait(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_a_job_that_cannot_reach_the_server_fails_with_its_reason(
    make_settings: Callable[..., Settings],
    make_client: Callable[..., Any],
    photos: Path,
    wait_for_end: Callable[..., Any],
) -> None:
    from openai_server import closed_port_url

    client = make_client(make_settings(closed_port_url(), max_retries=0))
    assert client.post("/start_processing", json={"folder": str(photos)}).status_code == 200
    status = wait_for_end(client)
    assert status["state"] == "failed"
    assert "Start the model server" in status["error"]
    events = client.get("/events").text
    assert events.rstrip().splitlines()[-2] == "event: end"


def test_form_data_is_accepted(client: Any, photos: Path, wait_for_end: Callable[..., Any]) -> None:
    bad = client.post("/start_processing", data={"folder": str(photos / "nope"), "xmp": "on"})
    assert bad.status_code == 422 and "folder" in bad.json()["errors"]
    good = client.post(
        "/start_processing", data={"folder": str(photos), "csv": "on", "dry_run": "on"}
    )
    assert good.status_code == 200, good.text
    status = wait_for_end(client)
    assert status["state"] == "finished" and status["dry_run"] is True
    items = [e for e in client.get("/log").json()["entries"] if e["kind"] == "item"]
    assert len(items) == 3 and all(item["data"]["dry_run"] for item in items)
    # Nothing rendered in a dry run: web formats are served as they are, others are not.
    original = client.get("/image_proxy", params={"path": items[0]["data"]["path"]})
    assert original.status_code == 200
    with Image.open(io.BytesIO(original.content)) as image:
        assert image.size == (96, 64)
    Image.new("RGB", (8, 8)).save(photos / "scan.tif")
    not_shown = client.get("/image_proxy", params={"path": str(photos / "scan.tif")})
    assert not_shown.status_code == 404 and "no rendered JPEG" in not_shown.json()["detail"]


# field sent, value, field named in the answer, part of its message
INVALID: list[tuple[dict[str, Any], str, str]] = [
    ({}, "folder", "required"),
    ({"folder": ""}, "folder", "give the folder"),
    ({"folder": "{missing}"}, "folder", "is not a folder"),
    ({"folder": "{file}"}, "folder", "is not a folder"),
    ({"xmp": False, "csv": False}, "xmp", "at least one output"),
    ({"api_urls": []}, "api_urls", "no model server URL"),
    ({"api_urls": ["ftp://example.org"]}, "api_urls", "not an http(s) URL"),
    ({"api_urls": "localhost:1234"}, "api_urls", "not an http(s) URL"),
    ({"workers": 0}, "workers", "between 1 and 64"),
    ({"workers": 65}, "workers", "between 1 and 64"),
    ({"workers": "many"}, "workers", "valid integer"),
    ({"size": 10}, "size", "between 64 and 8192"),
    ({"quality": 0}, "quality", "between 1 and 100"),
    ({"temperature": 3}, "temperature", "between 0 and 2"),
    ({"temperature": "hot"}, "temperature", "valid number"),
    ({"converter": "gimp"}, "converter", "one of auto, darktable, pillow"),
    ({"sidecar": "lightroom"}, "sidecar", "one of darktable, adobe"),
    ({"max_tokens": 4}, "max_tokens", "at least 16"),
    ({"recursive": "sometimes"}, "recursive", "valid boolean"),
    ({"csv_path": "/tmp/elsewhere.csv"}, "csv_path", "inside the folder"),
    ({"csv_path": "../out.csv"}, "csv_path", "inside the folder"),
    ({"csv_path": "ratings.txt"}, "csv_path", "a .csv file"),
    ({"db": "/tmp/other.db"}, "db", "not an option"),
    ({"system_prompt": "/etc/passwd"}, "system_prompt", "not an option"),
]


@pytest.mark.parametrize(("fields", "name", "message"), INVALID, ids=[c[1] for c in INVALID])
def test_every_invalid_field_gets_its_message(
    client: Any, photos: Path, fields: dict[str, Any], name: str, message: str
) -> None:
    body = {"folder": str(photos), **fields}
    if fields == {}:
        body = {}
    body = {
        key: str(value).format(missing=photos / "missing", file=photos / "photo00.jpg")
        if key == "folder"
        else value
        for key, value in body.items()
    }
    response = client.post("/start_processing", json=body)
    assert response.status_code == 422, response.text
    errors = response.json()["errors"]
    assert message in errors[name], errors
    assert f"{name}: " in response.json()["detail"]
    assert client.get("/status").json()["state"] == "idle"  # nothing started


def test_several_invalid_fields_are_reported_together(client: Any, photos: Path) -> None:
    response = client.post(
        "/start_processing",
        json={"folder": str(photos / "missing"), "workers": "x", "size": 1, "quality": 500},
    )
    assert response.status_code == 422
    assert set(response.json()["errors"]) == {"folder", "workers", "size", "quality"}


@pytest.mark.parametrize(
    ("content", "kind", "message"),
    [
        (b"{not json", "application/json", "not valid JSON"),
        (b"[1, 2]", "application/json", "a JSON object"),
        (b"", "application/json", "a JSON object"),
    ],
)
def test_a_body_that_is_not_an_object_is_422(
    client: Any, content: bytes, kind: str, message: str
) -> None:
    response = client.post("/start_processing", content=content, headers={"content-type": kind})
    assert response.status_code == 422 and message in response.json()["errors"]["body"]


@pytest.mark.parametrize(
    ("query", "name"), [("after=-1", "after"), ("after=x", "after"), ("limit=0", "limit")]
)
def test_log_query_is_checked(client: Any, query: str, name: str) -> None:
    response = client.get(f"/log?{query}")
    assert response.status_code == 422 and name in response.json()["errors"]


def test_image_proxy_needs_a_path(client: Any) -> None:
    response = client.get("/image_proxy")
    assert response.status_code == 422 and "path" in response.json()["errors"]
