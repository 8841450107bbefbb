"""Databases as older aimeta versions left them, with real rows in every table, and a way to
read back everything a database holds."""

from __future__ import annotations

import sqlite3
import zlib
from pathlib import Path
from typing import Any

from aimeta import db
from aimeta.migrations import statements
from aimeta.pipelines.prepare import prepare_fields

V0_1_0_SCHEMA = Path(__file__).parent / "db" / "fixtures" / "schema_v0_1_0.sql"

# Generation parameters as A1111/Forge writes them: LoRAs with weights, an embedding, model
# and LoRA hashes, a Civitai resource list.
INFOTEXTS = {
    "Input/forest/fox.png": (
        "(masterpiece:1.2), best quality, a red fox in a misty forest, <lora:add_detail:0.8>\n"
        "Negative prompt: blurry, lowres, easynegative\n"
        "Steps: 28, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 3141592653,"
        " Size: 832x1216, Model hash: 6ce0161689, Model: dreamshaper_8, Clip skip: 2,"
        ' Lora hashes: "add_detail: 7c6bad76eb54", Version: v1.10.1'
    ),
    "Input/forest/owl.png": (
        "masterpiece, an owl on a branch at night, moonlight, <lora:owl_style:0.6:0.4>\n"
        "Negative prompt: blurry, watermark\n"
        "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 12345678901234567890, Size: 512x768,"
        " Model: juggernautXL_v9, Denoising strength: 0.35, Hires upscale: 2,"
        " Hires upscaler: 4x-UltraSharp,"
        ' Civitai resources: [{"type":"checkpoint","modelVersionId":288982}]'
    ),
    "Input/city/street.jpg": (
        "a rainy street in tokyo, neon lights, reflections, cinematic\n"
        "Steps: 30, Sampler: DPM++ SDE, CFG scale: 5, Seed: 42, Size: 1024x1024,"
        " Model: sdxl_base_1.0"
    ),
}

# Rows that only `resolve`, `rate` and the runs' bookkeeping write.
OTHER_ROWS = {
    "model_versions": (
        "INSERT INTO model_versions (version_id, model_id, kind, model_name, version_name,"
        " base_model, files_json, hashes_json, source) VALUES (288982, 133005, 'checkpoint',"
        " 'Juggernaut XL', 'V9 + RDPhoto2-Lightning_4S', 'SDXL 1.0',"
        ' \'[{"name": "juggernautXL_v9.safetensors"}]\', \'{"AutoV2": "C9E3E68F89"}\','
        " 'civitai-export')"
    ),
    "model_hashes": (
        "INSERT INTO model_hashes (hash, hash_type, version_id)"
        " VALUES ('c9e3e68f89', 'AutoV2', 288982)"
    ),
    "civitai_lookups": (
        "INSERT INTO civitai_lookups (endpoint, key, status, version_id) VALUES"
        " ('model-version', '288982', 200, 288982), ('by-hash', '7c6bad76eb54', 404, NULL)"
    ),
    "rating_prompts": (
        "INSERT INTO rating_prompts (prompt_hash, system_prompt, user_prompt) VALUES"
        " ('9f2c1e', 'You are a strict photo editor.', 'Rate this image from 1 to 5.')"
    ),
    "ratings": (
        "INSERT INTO ratings (path, model, overall, scores_json, keywords_json, prompt_tokens,"
        " completion_tokens, duration_s, prompt_hash, rated_at) VALUES"
        " ('/photos/Input/forest/fox.png', 'qwen2.5-vl-7b', 4,"
        ' \'{"composition": 4, "detail": 5}\', \'["fox", "forest", "mist"]\', 812, 64, 3.2,'
        " '9f2c1e', '2026-05-01T10:00:00Z')"
    ),
    "ingest_progress": (
        "INSERT INTO ingest_progress (source, identity, offset)"
        " VALUES ('/photos/out/exif_raw.jsonl', '1746093600:52341', 52341)"
    ),
}

# Every table of a 0.1.0 database, each of which the fixture fills.
V0_1_0_TABLES = {
    "images", "kv", "tokens", "resources", "model_versions", "model_hashes", "civitai_lookups",
    "ratings", "rating_prompts", "errors", "ingest_progress", "prompts_fts",
}  # fmt: skip


def v0_1_0_fingerprint() -> int:
    """The user_version aimeta 0.1.0 gave its databases: crc32 of its schema text."""
    return zlib.crc32(V0_1_0_SCHEMA.read_bytes()) & 0x7FFFFFFF


def build_v0_1_0(path: Path) -> None:
    """A database as aimeta 0.1.0's connect made it (schema statements in one transaction,
    user_version = fingerprint), filled with rows."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("BEGIN IMMEDIATE")
    for statement in statements(V0_1_0_SCHEMA.read_text(encoding="utf-8")):
        conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {v0_1_0_fingerprint()}")
    conn.execute("COMMIT")
    fill(conn)
    conn.close()


def fill(conn: sqlite3.Connection) -> None:
    """Store the INFOTEXTS images through the ingest path, a read error, and OTHER_ROWS."""
    with db.transaction(conn):
        fill_images(conn, INFOTEXTS)
        db.record_error(conn, "/photos/Input/broken.png", "read", "truncated PNG chunk IDAT")
        for sql in OTHER_ROWS.values():
            conn.execute(sql)


def fill_images(conn: sqlite3.Connection, infotexts: dict[str, str]) -> None:
    """Store (or store again) images {key: A1111 infotext} as ingest does, in whichever layout
    the database has (inside the caller's transaction)."""
    batch = []
    for number, (key, infotext) in enumerate(infotexts.items()):
        line = {
            "key": key,
            "path": f"/photos/{key}",
            "root": "/photos/Input",
            "size": 104_857 + number,
            "mtime_ns": 1_746_093_600_000_000_000 + number,
            "sha256": f"{number:064x}",
            "reader": "native",
        }
        prepared = prepare_fields(line, {"parameters": infotext}, (832, 1216))
        assert prepared.rows is not None
        batch.append(prepared.rows)
    # Tokens through plain SQL on `tokens`: a table in 0.1.0's layout, a view whose
    # INSTEAD OF trigger interns the texts since migration 5 (store_batch writes only the
    # current layout).
    tokens = [row for rows in batch for row in rows.tokens]
    for rows in batch:
        rows.tokens = []
    # Before migration 6 images had no raw_zlib: the column exists while store_batch
    # writes, and goes again with the raw text back in raw_json.
    before_raw_zlib = not any(
        row[1] == "raw_zlib" for row in conn.execute("PRAGMA table_info(images)")
    )
    if before_raw_zlib:
        conn.execute("ALTER TABLE images ADD COLUMN raw_zlib BLOB")
    # Before migration 8 there was no id counter (ids were hashes of the keys): the table
    # exists while store_batch writes, as raw_zlib does.
    before_id_seq = not conn.execute(
        "SELECT 1 FROM sqlite_master WHERE name = 'image_id_seq'"
    ).fetchone()
    if before_id_seq:
        conn.execute("CREATE TABLE image_id_seq (last INTEGER NOT NULL)")
        conn.execute("INSERT INTO image_id_seq SELECT COALESCE(MAX(id), 0) FROM images")
    db.store_batch(conn, batch)
    if before_id_seq:
        conn.execute("DROP TABLE image_id_seq")
    # The rows were built under provisional ids; the tokens go in under the stored ones.
    stored = dict(conn.execute("SELECT key, id FROM images"))
    real = {rows.ident: stored[rows.image[1]] for rows in batch}
    tokens = [(real[row[0]], *row[1:]) for row in tokens]
    if before_raw_zlib:
        conn.create_function("raw_text", 2, db.raw_text, deterministic=True)
        conn.execute("UPDATE images SET raw_json = raw_text(raw_json, raw_zlib)")
        conn.execute("ALTER TABLE images DROP COLUMN raw_zlib")
    conn.executemany(
        "INSERT INTO tokens (image_id, side, position, t_raw, t_norm, weight)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        tokens,
    )


def columns(path: Path) -> dict[str, list[str]]:
    """Each user table of the database (full-text shadow tables left out) and its columns."""
    conn = sqlite3.connect(path)
    try:
        names = [
            row[0]
            for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
                " AND name NOT LIKE 'sqlite_%' AND name NOT LIKE 'prompts_fts_%' ORDER BY name"
            )
        ]
        return {
            name: [row[1] for row in conn.execute(f'PRAGMA table_xinfo("{name}")')]
            for name in names
        }
    finally:
        conn.close()


def contents(path: Path, tables: dict[str, list[str]]) -> dict[str, list[tuple[Any, ...]]]:
    """All rows of ``tables`` (only the columns given), sorted; prompts_fts with its rowid;
    ``images.raw_json`` as the text it holds, also once compressed (migration 6)."""
    conn = sqlite3.connect(path)
    try:
        compressed = any(row[1] == "raw_zlib" for row in conn.execute("PRAGMA table_info(images)"))
        conn.create_function("raw_text", 2, db.raw_text, deterministic=True)
        found = {}
        for table, names in tables.items():
            listed = ", ".join(f'"{name}"' for name in names)
            if table == "images" and compressed:
                listed = listed.replace('"raw_json"', "raw_text(raw_json, raw_zlib)")
            if table == "prompts_fts":
                listed = "rowid, " + listed
            rows = conn.execute(f'SELECT {listed} FROM "{table}"').fetchall()
            found[table] = sorted(rows, key=repr)
        return found
    finally:
        conn.close()


def schema_of(path: Path) -> list[tuple[Any, ...]]:
    """Every schema object and the user_version: what a refused or failed upgrade keeps."""
    conn = sqlite3.connect(path)
    try:
        objects = conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()
        return [*objects, ("user_version", conn.execute("PRAGMA user_version").fetchone()[0])]
    finally:
        conn.close()


def back_to_v0_1_0_tokens(conn: sqlite3.Connection) -> None:
    """Give a current database 0.1.0's tokens table again (texts in every row, migration 5
    undone), with the index 0.1.0 had: how a test fakes a database from before migrations."""
    conn.execute("CREATE TABLE tokens_old AS SELECT * FROM tokens")
    conn.execute("DROP VIEW tokens")
    conn.execute("DROP TABLE token_rows")
    conn.execute("DROP TABLE token_texts")
    for statement in statements(V0_1_0_SCHEMA.read_text(encoding="utf-8")):
        if statement.startswith(
            ("CREATE TABLE IF NOT EXISTS tokens", "CREATE INDEX IF NOT EXISTS idx_tokens")
        ):
            conn.execute(statement)
    conn.execute("INSERT INTO tokens SELECT * FROM tokens_old")
    conn.execute("DROP TABLE tokens_old")
