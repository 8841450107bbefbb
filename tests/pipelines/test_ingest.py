"""ingest: rows replaced never duplicated, resumable from where it stopped, failures recorded."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import orjson
import pytest

from aimeta import db
from aimeta.metadata.parsers import PARSER_VERSION
from aimeta.pipelines import dump, export, ingest
from factory import jpeg_with_exif, plain_png, png_with_text

INFOTEXT = (
    "café, 日本語, (masterpiece:1.2), <lora:detail:0.8>\nsecond line\n"
    "Negative prompt: blurry, lowres\n"
    "Steps: 20, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 123, Size: 512x768, "
    'Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Lora hashes: "detail: 0a1b2c3d4e5f"'
)
GRAPH = {
    "4": {
        "class_type": "CheckpointLoaderSimple",
        "inputs": {"ckpt_name": "sd_xl_base_1.0.safetensors"},
    },
    "6": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["4", 1], "text": "a lion"}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["4", 1], "text": "text, watermark"}},
    "5": {
        "class_type": "EmptyLatentImage",
        "inputs": {"width": 1024, "height": 1024, "batch_size": 1},
    },
    "3": {
        "class_type": "KSampler",
        "inputs": {
            "model": ["4", 0],
            "positive": ["6", 0],
            "negative": ["7", 0],
            "latent_image": ["5", 0],
            "seed": 18446744073709551615,
            "steps": 20,
            "cfg": 8.0,
            "sampler_name": "euler",
            "scheduler": "normal",
            "denoise": 1.0,
        },
    },
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
    "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "x"}},
}


def build(tmp_path: Path) -> tuple[Path, Path]:
    folder = tmp_path / "in"
    folder.mkdir()
    png_with_text(folder / "a1111.png", {"parameters": INFOTEXT})
    jpeg_with_exif(folder / "a1111.jpg", user_comment=INFOTEXT, encoding="unicode-le")
    png_with_text(folder / "comfy.png", {"prompt": json.dumps(GRAPH), "workflow": '{"nodes": []}'})
    plain_png(folder / "photo.png")
    png_with_text(folder / "broken.png", {"prompt": '{"3": {"class_type": '})
    (folder / "empty.jpg").write_bytes(b"")
    return folder, tmp_path / "raw.jsonl"


def counts(conn: sqlite3.Connection) -> dict[str, int]:
    return {
        table: conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
        for table in ("images", "kv", "tokens", "resources", "errors")
    }


def kv(conn: sqlite3.Connection, name: str) -> dict[str, str]:
    rows = conn.execute(
        "SELECT kv.key, kv.value FROM kv JOIN images ON images.id = kv.image_id"
        " WHERE images.file_name = ?",
        (name,),
    )
    return dict(rows.fetchall())


def test_ingest_stores_each_file_once_and_records_failures(tmp_path: Path) -> None:
    folder, raw = build(tmp_path)
    dump.run([folder], raw)
    conn = db.connect(tmp_path / "images.db")

    result = ingest.run(raw, conn)

    generators = dict(conn.execute("SELECT file_name, generator FROM images").fetchall())
    assert generators == {
        "a1111.png": "a1111",
        "a1111.jpg": "a1111",
        "comfy.png": "comfyui",
        "photo.png": "none",
        "broken.png": "unknown",
    }
    errors = dict(conn.execute("SELECT path, reason FROM errors").fetchall())
    assert {Path(p).name for p in errors} == {"broken.png", "empty.jpg"}
    assert "not valid JSON" in errors[str(folder / "broken.png")]
    assert result.stored == 5 and len(result.failures) == 2
    # Raw text is kept for files no parser understood, so nothing is lost.
    stored = conn.execute(
        f"SELECT {db.RAW_COLUMNS} FROM images WHERE file_name = 'broken.png'"
    ).fetchone()
    assert '"class_type"' in db.raw_fields(*stored)["prompt"]


def test_a1111_and_comfyui_values_reach_the_database(tmp_path: Path) -> None:
    folder, raw = build(tmp_path)
    dump.run([folder], raw)
    conn = db.connect(tmp_path / "images.db")
    ingest.run(raw, conn)

    for name in ("a1111.png", "a1111.jpg"):
        values = kv(conn, name)
        assert values["prompt"] == "café, 日本語, (masterpiece:1.2), <lora:detail:0.8>\nsecond line"
        assert values["negative_prompt"] == "blurry, lowres"
        assert (values["steps"], values["cfg"], values["seed"]) == ("20", "7", "123")
        assert (values["sampler_norm"], values["scheduler_norm"]) == ("dpmpp_2m", "karras")
    comfy = kv(conn, "comfy.png")
    assert comfy["seed"] == "18446744073709551615"  # beyond 64-bit: stored exactly, as text
    assert comfy["prompt"] == "a lion"
    tokens = conn.execute(
        "SELECT t_norm, weight FROM tokens JOIN images ON images.id = tokens.image_id"
        " WHERE images.file_name = 'a1111.png' AND side = 'pos' ORDER BY position"
    ).fetchall()
    assert ("masterpiece", pytest.approx(1.2)) in tokens
    assert ("日本語", 1.0) in tokens
    lora = conn.execute(
        "SELECT name, weight, hash FROM resources JOIN images ON images.id = resources.image_id"
        " WHERE images.file_name = 'a1111.png' AND kind = 'lora'"
    ).fetchall()
    assert lora == [("detail", 0.8, "0a1b2c3d4e5f")]


def test_running_again_changes_nothing_and_reingesting_replaces_rows(tmp_path: Path) -> None:
    folder, raw = build(tmp_path)
    dump.run([folder], raw)
    conn = db.connect(tmp_path / "images.db")
    ingest.run(raw, conn)
    first = counts(conn)

    assert ingest.run(raw, conn).lines == 0
    assert counts(conn) == first
    # Reading everything again appends lines; ingesting them replaces rows, never adds.
    dump.run([folder], raw, force=True)
    assert ingest.run(raw, conn).lines == 6
    assert counts(conn) == first
    assert ingest.run(raw, conn, from_start=True).lines == 12
    assert counts(conn) == first


def test_a_killed_dump_leaves_a_partial_line_that_ingest_waits_for(tmp_path: Path) -> None:
    folder, raw = build(tmp_path)
    dump.run([folder], raw)
    complete = raw.read_bytes()
    raw.write_bytes(complete + b'{"path": "/half')
    conn = db.connect(tmp_path / "images.db")
    assert ingest.run(raw, conn).lines == 6
    raw.write_bytes(complete)  # dump's next run cuts the partial line off
    assert ingest.run(raw, conn).lines == 0


def test_a_new_dump_file_at_the_same_path_is_ingested_from_the_start(tmp_path: Path) -> None:
    folder, raw = build(tmp_path)
    dump.run([folder], raw)
    conn = db.connect(tmp_path / "images.db")
    ingest.run(raw, conn)
    raw.unlink()
    dump.run([folder], raw)
    assert ingest.run(raw, conn).lines == 6


def test_reparse_rebuilds_rows_from_stored_raw_fields(tmp_path: Path) -> None:
    folder, raw = build(tmp_path)
    dump.run([folder], raw)
    conn = db.connect(tmp_path / "images.db")
    ingest.run(raw, conn)
    before = counts(conn)
    conn.execute("DELETE FROM tokens")
    # Rows stored by an older parser: re-parsing is what brings them to PARSER_VERSION.
    conn.execute("UPDATE images SET parser_version = ?", (PARSER_VERSION - 1,))
    for path in folder.iterdir():
        path.unlink()  # files are not needed any more
    result = ingest.reparse(conn)
    assert result.stored == 5
    assert counts(conn) == before
    versions = conn.execute("SELECT DISTINCT parser_version FROM images").fetchall()
    assert versions == [(PARSER_VERSION,)]


def test_exports_are_written_from_the_database(tmp_path: Path) -> None:
    folder, raw = build(tmp_path)
    dump.run([folder], raw)
    conn = db.connect(tmp_path / "images.db")
    ingest.run(raw, conn)
    assert export.write_jsonl(conn, tmp_path / "records.jsonl") == 5
    assert export.write_csv(conn, tmp_path / "records.csv") == 5
    records = [
        orjson.loads(line) for line in (tmp_path / "records.jsonl").read_bytes().splitlines()
    ]
    comfy = next(r for r in records if r["path"].endswith("comfy.png"))
    assert comfy["generator"] == "comfyui" and comfy["seed"] == "18446744073709551615"
    import pandas as pd

    frame = pd.read_csv(tmp_path / "records.csv", dtype=str)
    assert len(frame) == 5
    assert "café" in frame.loc[frame["path"].str.endswith("a1111.png"), "prompt"].iloc[0]
