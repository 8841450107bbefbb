"""The library's detail view with ``?raw=true``: the raw metadata text, stored compressed
since migration 6, comes back as the fields read from the file."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from web_helpers import TestClient

import old_databases
from aimeta import db
from aimeta.settings import Settings


def test_the_detail_view_gives_the_raw_text_back(
    tmp_path: Path, make_client: Callable[..., TestClient]
) -> None:
    database = tmp_path / "images.db"
    conn = db.connect(database)
    old_databases.fill(conn)
    ident, text, blob = conn.execute(
        "SELECT id, raw_json, raw_zlib FROM images WHERE file_name = 'owl.png'"
    ).fetchone()
    conn.close()
    assert text is None and blob is not None
    api = make_client(dataclasses.replace(Settings(), db=database, host="127.0.0.1", port=5000))

    detail = api.get(f"/api/images/{ident}", params={"raw": "true"}).json()
    plain = api.get(f"/api/images/{ident}").json()

    assert detail["raw"] == {"parameters": old_databases.INFOTEXTS["Input/forest/owl.png"]}
    assert "raw" not in plain
    assert plain["prompt"] == detail["prompt"]
