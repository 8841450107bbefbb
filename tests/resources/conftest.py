"""Fixtures for the resources/resolve tests: a real SQLite file, images stored the way ingest
stores them, and a local HTTP server standing in for the Civitai API."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from aimeta import db
from aimeta.metadata.record import Record


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    path = tmp_path / "images.db"
    db.connect(path).close()
    return path


@pytest.fixture
def conn(db_path: Path) -> Iterator[sqlite3.Connection]:
    connection = db.connect(db_path)
    yield connection
    connection.close()


StoreImage = Callable[..., int]


@pytest.fixture
def store_image(conn: sqlite3.Connection) -> StoreImage:
    """Store one image as ingest does: its text fields in raw_json and, when given, a record."""

    def store(key: str, fields: Mapping[str, str], record: Record | None = None) -> int:
        image = {
            "key": key,
            "path": f"/images/{key}",
            "file_name": key,
            "raw": dict(fields),
            "generator": record.generator if record else "none",
        }
        with db.transaction(conn):
            return db.store_image(conn, image, record)

    return store


@pytest.fixture
def dump_tables() -> Callable[[sqlite3.Connection], dict[str, list[tuple[Any, ...]]]]:
    return _table_dump


def _table_dump(conn: sqlite3.Connection) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the tables resources/resolve write (timestamps left out)."""
    return {
        "resources": conn.execute("SELECT * FROM resources ORDER BY 1, 2, 3").fetchall(),
        "model_versions": conn.execute(
            "SELECT version_id, model_id, kind, model_name, version_name, base_model,"
            " files_json, hashes_json, source FROM model_versions ORDER BY 1"
        ).fetchall(),
        "model_hashes": conn.execute("SELECT * FROM model_hashes ORDER BY 1, 3").fetchall(),
        "civitai_lookups": conn.execute(
            "SELECT endpoint, key, status, version_id FROM civitai_lookups ORDER BY 1, 2"
        ).fetchall(),
        "kv": conn.execute("SELECT * FROM kv ORDER BY 1, 2").fetchall(),
        "tokens": conn.execute("SELECT * FROM tokens ORDER BY 1, 2, 3").fetchall(),
    }


@dataclass
class FakeCivitai:
    """A real HTTP server on 127.0.0.1 answering like Civitai's API from ``answers``
    (path -> JSON); other paths get 404. Records every request's path and headers."""

    answers: dict[str, Any] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    base_url: str = ""


@pytest.fixture
def civitai_server() -> Iterator[FakeCivitai]:
    fake = FakeCivitai()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            fake.requests.append((self.path, dict(self.headers)))
            answer = fake.answers.get(self.path)
            body = json.dumps(answer if answer is not None else {"error": "Not found"}).encode()
            self.send_response(200 if answer is not None else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fake.base_url = f"http://127.0.0.1:{server.server_address[1]}/api/v1"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def make_version() -> Callable[..., dict[str, Any]]:
    return _civitai_version


def _civitai_version(
    version_id: int,
    model_id: int,
    model_type: str,
    model_name: str,
    file_name: str,
    sha256: str,
    autov2: str | None = None,
) -> dict[str, Any]:
    """A model version object shaped like Civitai's /model-versions/{id} answer."""
    return {
        "id": version_id,
        "modelId": model_id,
        "name": "v1.0",
        "baseModel": "SDXL 1.0",
        "model": {"name": model_name, "type": model_type, "nsfw": False},
        "files": [
            {
                "id": version_id * 10,
                "name": file_name,
                "type": "Model",
                "primary": True,
                "sizeKB": 1024.5,
                "hashes": {"AutoV2": autov2 or sha256[:10].upper(), "SHA256": sha256.upper()},
            },
            {
                "id": version_id * 10 + 1,
                "name": "training.zip",
                "type": "Training Data",
                "hashes": {"SHA256": "F" * 64},
            },
        ],
        "images": [{"id": 1, "url": "https://example.invalid/1.jpeg", "nsfwLevel": 1}],
    }
