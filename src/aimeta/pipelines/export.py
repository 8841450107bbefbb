"""records.jsonl / records.csv: one record per image, written from the database.

Written from the database (not from the run), so they always show everything ingested so far.
Both are streamed and replaced atomically: a failure leaves the previous file as it was.
"""

from __future__ import annotations

import csv
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from aimeta.files import atomic_write

# Core columns first; all other kv keys follow in the JSONL under "params".
CORE_KEYS = (
    "prompt",
    "negative_prompt",
    "model",
    "model_hash",
    "sampler",
    "sampler_norm",
    "scheduler_norm",
    "steps",
    "cfg",
    "seed",
    "clip_skip",
    "denoise",
)


def iter_records(conn: sqlite3.Connection) -> Iterator[dict[str, Any]]:
    """Each image with its parameters and resources, ordered by path."""
    images = conn.execute(
        "SELECT id, path, key, generator, width, height, sha256 FROM images ORDER BY path"
    )
    for image_id, path, key, generator, width, height, sha256 in images:
        params = dict(conn.execute("SELECT key, value FROM kv WHERE image_id = ?", (image_id,)))
        resources = [
            {"kind": kind, "name": name, "weight": weight, "hash": hash_}
            for kind, name, weight, hash_ in conn.execute(
                "SELECT kind, name, weight, hash FROM resources WHERE image_id = ?"
                " ORDER BY kind, name",
                (image_id,),
            )
        ]
        yield {
            "path": path,
            "key": key,
            "generator": generator,
            "width": width,
            "height": height,
            "sha256": sha256,
            **{name: params.pop(name, None) for name in CORE_KEYS},
            "params": params,
            "resources": resources,
        }


def write_jsonl(conn: sqlite3.Connection, path: Path) -> int:
    """Write every record as one JSON object per line; returns the number written."""
    count = 0
    with atomic_write(path, "wb", encoding=None) as out:
        for record in iter_records(conn):
            out.write(orjson.dumps(record) + b"\n")  # type: ignore[arg-type]
            count += 1
    return count


def write_csv(conn: sqlite3.Connection, path: Path) -> int:
    """Write the core parameters, LoRAs and other parameters as a CSV (UTF-8, header row).

    Streamed row by row with the csv module, so memory stays flat however many images there
    are (the ratings CSV, which is rewritten in place, is the one that goes through pandas).
    """
    columns = ["path", "key", "generator", "width", "height", "sha256", *CORE_KEYS]
    count = 0
    with atomic_write(path) as out:
        writer = csv.writer(out)
        writer.writerow([*columns, "loras", "other_params"])
        for record in iter_records(conn):
            loras = "; ".join(
                f"{r['name']}:{r['weight']:g}" if r["weight"] is not None else r["name"]
                for r in record["resources"]
                if r["kind"] == "lora"
            )
            params = record["params"]
            writer.writerow(
                [
                    *("" if record[name] is None else record[name] for name in columns),
                    loras,
                    orjson.dumps(params).decode() if params else "",
                ]
            )
            count += 1
    return count
