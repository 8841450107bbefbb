"""C2PA Content Credentials: manifest stores built from the spec's box structure, read through
both readers (native and ExifTool) into generator ``c2pa`` records."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest

from aimeta import db
from aimeta.metadata.parsers import parse_fields
from aimeta.metadata.readers.c2pa import C2paError, parse_store, summary_from_tags
from aimeta.pipelines import dump, ingest
from aimeta.pipelines.search import SearchQuery, search
from factory import (
    TRAINED_ALGORITHMIC_MEDIA,
    c2pa_manifest,
    c2pa_store,
    jpeg_with_c2pa,
    png_with_c2pa,
    png_with_text,
)

IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"
CHATGPT_CLAIM = {
    "claim_generator": "ChatGPT",
    "claim_generator_info": [{"name": "ChatGPT", "version": "1.0"}],
    "dc:title": "image.png",
    "dc:format": "image/png",
    "instanceID": "xmp:iid:0b6f4e1c",
}
CHATGPT_ACTIONS = {
    "actions": [
        {
            "action": "c2pa.created",
            "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
            "softwareAgent": {"name": "GPT-4o"},
        },
        {"action": "c2pa.converted", "softwareAgent": {"name": "OpenAI API"}},
    ]
}
# An edit on top of a camera photo: the camera's manifest is the ingredient (first), the
# editor's the active one (last).
CAMERA = c2pa_manifest(
    "urn:uuid:camera",
    {"claim_generator": "Camera firmware/3.1", "dc:title": "DSC_0001.jpg"},
    {
        "c2pa.actions": {
            "actions": [{"action": "c2pa.created", "digitalSourceType": IPTC + "digitalCapture"}]
        }
    },
)
FIREFLY = c2pa_manifest(
    "urn:uuid:firefly",
    {
        "claim_generator_info": {"name": "Adobe Photoshop", "version": "26.0"},
        "dc:title": "edit.jpg",
    },
    {
        "c2pa.actions.v2": {
            "actions": [
                {"action": "c2pa.opened"},
                {
                    "action": "c2pa.edited",
                    "digitalSourceType": IPTC + "compositeWithTrainedAlgorithmicMedia",
                    "softwareAgent": "Adobe Firefly",
                    "parameters": {"description": "generative fill"},
                },
            ]
        }
    },
)


def chatgpt_store() -> bytes:
    return c2pa_store(
        c2pa_manifest("urn:uuid:chatgpt", CHATGPT_CLAIM, {"c2pa.actions.v2": CHATGPT_ACTIONS})
    )


def build(folder: Path) -> Path:
    folder.mkdir()
    png_with_c2pa(folder / "chatgpt.png", chatgpt_store())
    # small APP11 segments: the store is split over several, as large manifests are
    jpeg_with_c2pa(folder / "chatgpt.jpg", chatgpt_store(), segment_bytes=300)
    jpeg_with_c2pa(folder / "firefly.jpg", c2pa_store(CAMERA, FIREFLY))
    png_with_text(folder / "plain.png", {"Software": "GIMP"})
    return folder


def kv(conn: sqlite3.Connection, name: str) -> dict[str, str]:
    rows = conn.execute(
        "SELECT kv.key, kv.value FROM kv JOIN images ON images.id = kv.image_id"
        " WHERE images.file_name = ?",
        (name,),
    )
    return dict(rows.fetchall())


def stored(tmp_path: Path, reader: str) -> sqlite3.Connection:
    folder = build(tmp_path / "in")
    raw = tmp_path / "raw.jsonl"
    dump.run([folder], raw, reader=reader)
    conn = db.connect(tmp_path / "images.db")
    ingest.run(raw, conn)
    return conn


CHATGPT_KV = {
    "c2pa_generator": "ChatGPT",
    "c2pa_tool": "GPT-4o",
    "model": "GPT-4o",
    "ai_generated": "true",
    "digital_source_type": "trainedAlgorithmicMedia",
}


@pytest.mark.parametrize("reader", ["auto", "native", "exiftool"])
def test_content_credentials_reach_the_database_through_every_reader(
    tmp_path: Path, reader: str
) -> None:
    conn = stored(tmp_path, reader)
    generators = dict(conn.execute("SELECT file_name, generator FROM images").fetchall())
    assert generators == {
        "chatgpt.png": "c2pa",
        "chatgpt.jpg": "c2pa",
        "firefly.jpg": "c2pa",
        "plain.png": "none",
    }
    for name in ("chatgpt.png", "chatgpt.jpg"):
        values = kv(conn, name)
        assert {key: values.get(key) for key in CHATGPT_KV} == CHATGPT_KV, name
    # The active (last) manifest wins over its ingredient, whichever reader saw the file.
    firefly = kv(conn, "firefly.jpg")
    assert {key: firefly.get(key) for key in CHATGPT_KV} == {
        "c2pa_generator": "Adobe Photoshop/26.0",
        "c2pa_tool": "Adobe Firefly",
        "model": "Adobe Firefly",
        "ai_generated": "true",
        "digital_source_type": "compositeWithTrainedAlgorithmicMedia",
    }
    extra = json.loads(
        conn.execute("SELECT extra_json FROM images WHERE file_name = 'firefly.jpg'").fetchone()[0]
    )["c2pa"]
    assert (extra["manifests"], extra["active"], extra["ingredients"]) == (
        2,
        "urn:uuid:firefly",
        ["DSC_0001.jpg"],
    )
    assert extra["actions"][1]["description"] == "generative fill"
    # Searchable like any generator: by generator and by the model (tool) named.
    found = search(conn, SearchQuery(generator="c2pa", model="GPT-4o"))
    assert sorted(Path(hit.path).name for hit in found) == ["chatgpt.jpg", "chatgpt.png"]


def test_a_camera_manifest_is_not_ai_generated(tmp_path: Path) -> None:
    store = c2pa_store(CAMERA)
    summary = parse_store(store)
    record = parse_fields({"c2pa_manifest": json.dumps(summary)})
    assert record.generator == "c2pa"
    assert record.params == {
        "c2pa_generator": "Camera firmware/3.1",
        "ai_generated": "false",
        "digital_source_type": "digitalCapture",
    }


def test_credentials_join_a_generator_record() -> None:
    summary = parse_store(chatgpt_store())
    record = parse_fields(
        {
            "parameters": "a cat\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 8x8",
            "c2pa_manifest": json.dumps(summary),
        }
    )
    assert record.generator == "a1111"
    assert record.params["steps"] == "20"
    assert record.params["ai_generated"] == "true"
    assert record.params["c2pa_tool"] == "GPT-4o"
    assert "model" not in record.params  # an A1111 text without a Model: no checkpoint named


def exiftool_tags(path: Path) -> dict[str, Any]:
    out = subprocess.run(
        ["exiftool", "-json", "-G1", "-n", "--", str(path)], capture_output=True, check=True
    ).stdout
    tags: dict[str, Any] = json.loads(out)[0]
    return tags


def test_exiftool_flattened_tags_are_the_fallback(tmp_path: Path) -> None:
    # For containers aimeta does not walk itself (HEIC, AVIF, WebP) ExifTool's CBOR tags are
    # read; for a single-manifest store they say what the boxes say.
    path = png_with_c2pa(tmp_path / "chatgpt.png", chatgpt_store())
    fallback = summary_from_tags(exiftool_tags(path))
    assert fallback is not None
    record = parse_fields({"c2pa_manifest": json.dumps(fallback)})
    assert {key: record.params.get(key) for key in CHATGPT_KV} == CHATGPT_KV
    # ExifTool keeps the first manifest's values: the ingredient's, not the active one's.
    mixed = jpeg_with_c2pa(tmp_path / "firefly.jpg", c2pa_store(CAMERA, FIREFLY))
    assert summary_from_tags(exiftool_tags(mixed))["claim_generator"] == "Camera firmware/3.1"  # type: ignore[index]


def test_broken_stores_are_reported_not_raised_through(tmp_path: Path) -> None:
    with pytest.raises(C2paError, match="no JUMBF superbox"):
        parse_store(b"\0\0\0\x08free")
    truncated = chatgpt_store()[:-40]
    with pytest.raises(C2paError, match="runs past its container"):
        parse_store(truncated)
    folder = tmp_path / "in"
    folder.mkdir()
    png_with_c2pa(folder / "cut.png", truncated)
    raw = tmp_path / "raw.jsonl"
    dump.run([folder], raw)
    line = json.loads(raw.read_text().splitlines()[1])
    assert line["error"] is None
    assert line["warnings"] == ["C2PA manifest not read: JUMBF box b'jumb' runs past its container"]
