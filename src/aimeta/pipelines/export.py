"""records.jsonl / records.csv: one record per image, written from the database.

Written from the database (not from the run), so they always show everything ingested so far.
Both are streamed and replaced atomically: a failure leaves the previous file as it was.

The records are read with two statements walked side by side, both ordered by (path, id): the
images, each with its parameters gathered by SQLite into one JSON object, and the resources
of all images. Two queries in all rather than two per image, and one row per image rather
than one per parameter (stepping those rows in Python was most of the time). Nothing is held
beyond the current image, so memory stays flat however many images there are.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Generator, Iterable
from contextlib import closing
from itertools import islice
from pathlib import Path
from typing import Any

import orjson

from aimeta.files import atomic_write

# Core columns first; all other kv keys follow in the JSONL under "params".
# iter_records spells them out in this order (a dict display is the fastest way to build it).
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

# The first columns of the CSV are the first values of a record, in the same order.
CSV_COLUMNS = ("path", "key", "generator", "width", "height", "sha256", *CORE_KEYS)
CSV_HEADER = (*CSV_COLUMNS, "loras", "other_params")
_CSV_VALUES = len(CSV_COLUMNS)

# Each image with its parameters as one JSON object in the order of the kv primary key
# (image_id, key), that is sorted by key. kv.value is TEXT (or NULL), which JSON gives back
# exactly; no parameters give '{}'. Ties on path keep the order of idx_images_path (by id).
_IMAGES = """
SELECT id, path, key, generator, width, height, sha256,
       (SELECT json_group_object(kv.key, kv.value) FROM kv WHERE kv.image_id = images.id)
FROM images
ORDER BY path, id
"""

# Resources stay rows: their weights are REAL, which SQLite's JSON does not render exactly.
# In the order of _IMAGES, so both are walked together.
_RESOURCES = """
SELECT r.image_id, r.kind, r.name, r.weight, r.hash
FROM images AS i JOIN resources AS r ON r.image_id = i.id
ORDER BY i.path, i.id, r.kind, r.name
"""


def iter_records(conn: sqlite3.Connection) -> Generator[dict[str, Any], None, None]:
    """Each image with its parameters and resources, ordered by path."""
    loads = orjson.loads
    images = conn.execute(_IMAGES)
    # Run while the images statement is active, so both read the same snapshot: SQLite keeps
    # one read transaction open while any statement of the connection is unfinished.
    resources = conn.execute(_RESOURCES)
    try:
        pending = resources.fetchone()
        for image_id, path, key, generator, width, height, sha256, params_json in images:
            found = []
            while pending is not None and pending[0] == image_id:
                _, kind, name, weight, hash_ = pending
                found.append({"kind": kind, "name": name, "weight": weight, "hash": hash_})
                pending = resources.fetchone()
            params = loads(params_json)
            pop = params.pop
            yield {
                "path": path,
                "key": key,
                "generator": generator,
                "width": width,
                "height": height,
                "sha256": sha256,
                "prompt": pop("prompt", None),
                "negative_prompt": pop("negative_prompt", None),
                "model": pop("model", None),
                "model_hash": pop("model_hash", None),
                "sampler": pop("sampler", None),
                "sampler_norm": pop("sampler_norm", None),
                "scheduler_norm": pop("scheduler_norm", None),
                "steps": pop("steps", None),
                "cfg": pop("cfg", None),
                "seed": pop("seed", None),
                "clip_skip": pop("clip_skip", None),
                "denoise": pop("denoise", None),
                "params": params,
                "resources": found,
            }
    finally:
        # Stopped early (a failed write): end both statements now, not when collected, so
        # the connection does not stay in a read transaction.
        resources.close()
        images.close()


def write_jsonl(conn: sqlite3.Connection, path: Path) -> int:
    """Write every record as one JSON object per line; returns the number written."""
    count = 0
    dumps = orjson.dumps
    with atomic_write(path, "wb", encoding=None) as out, closing(iter_records(conn)) as records:
        write = out.write
        for record in records:
            write(dumps(record) + b"\n")  # type: ignore[arg-type]
            count += 1
    return count


def write_csv(conn: sqlite3.Connection, path: Path) -> int:
    """Write the core parameters, LoRAs and other parameters as a CSV (UTF-8, header row).

    Streamed row by row, so memory stays flat however many images there are (the ratings
    CSV, which is rewritten in place, is the one that goes through pandas).
    """
    count = 0
    with atomic_write(path) as out, closing(iter_records(conn)) as records:
        write = out.write
        write(_csv_line(CSV_HEADER))
        for record in records:
            write(_csv_record(record))
            count += 1
    return count


def write_both(conn: sqlite3.Connection, jsonl_path: Path, csv_path: Path) -> int:
    """Write records.jsonl and records.csv in one pass over the database: the same files as
    :func:`write_jsonl` and :func:`write_csv`, the records read once. A failure while writing
    leaves both previous files; returns the number of records."""
    count = 0
    dumps = orjson.dumps
    with (
        atomic_write(jsonl_path, "wb", encoding=None) as jsonl,
        atomic_write(csv_path) as csv,
        closing(iter_records(conn)) as records,
    ):
        write_jsonl_line = jsonl.write
        write_csv_line = csv.write
        write_csv_line(_csv_line(CSV_HEADER))
        for record in records:
            write_jsonl_line(dumps(record) + b"\n")  # type: ignore[arg-type]
            write_csv_line(_csv_record(record))
            count += 1
    return count


def _csv_record(record: dict[str, Any]) -> str:
    """The CSV line of a record: CSV_COLUMNS, the LoRAs, the other parameters as JSON."""
    fields = [
        "" if value is None else _csv_field(value) for value in islice(record.values(), _CSV_VALUES)
    ]
    fields.append(
        _csv_field(
            "; ".join(
                f"{r['name']}:{r['weight']:g}" if r["weight"] is not None else r["name"]
                for r in record["resources"]
                if r["kind"] == "lora"
            )
        )
    )
    params = record["params"]
    fields.append(_csv_field(orjson.dumps(params).decode()) if params else "")
    return ",".join(fields) + "\r\n"


def _csv_line(values: Iterable[object]) -> str:
    return ",".join(map(_csv_field, values)) + "\r\n"


def _csv_field(value: object) -> str:
    """``value`` as csv.writer writes it (the default "excel" dialect, QUOTE_MINIMAL): quoted
    when it holds a comma, a quote or a line break, with quotes doubled. On these rows, long
    prompts mostly, this is about twice as fast as the csv module's writer."""
    text = value if isinstance(value, str) else str(value)
    if '"' in text:
        return '"' + text.replace('"', '""') + '"'
    if "," in text or "\n" in text or "\r" in text:
        return '"' + text + '"'
    return text
