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

import os
import sqlite3
from collections.abc import Collection, Generator, Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import IO, Any, cast

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
FROM images {where}
ORDER BY path, id
"""

# Resources stay rows: their weights are REAL, which SQLite's JSON does not render exactly.
# In the order of _IMAGES, so both are walked together.
_RESOURCES = """
SELECT r.image_id, r.kind, r.name, r.weight, r.hash
FROM images AS i JOIN resources AS r ON r.image_id = i.id {where}
ORDER BY i.path, i.id, r.kind, r.name
"""
# Only some images, the changed records of a merge: their ids as a JSON array, one parameter.
_IDS = "IN (SELECT value FROM json_each(?))"


def iter_records(
    conn: sqlite3.Connection, ids: Collection[int] | None = None
) -> Generator[dict[str, Any], None, None]:
    """Each image with its parameters and resources, ordered by path (``ids``: only those)."""
    loads = orjson.loads
    if ids is None:
        images = conn.execute(_IMAGES.format(where=""))
        # Run while the images statement is active, so both read the same snapshot: SQLite
        # keeps one read transaction open while any statement of the connection is unfinished.
        resources = conn.execute(_RESOURCES.format(where=""))
    else:
        chosen = (orjson.dumps(sorted(ids)).decode(),)
        images = conn.execute(_IMAGES.format(where=f"WHERE id {_IDS}"), chosen)
        resources = conn.execute(_RESOURCES.format(where=f"AND i.id {_IDS}"), chosen)
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


# --- keeping the files current: merge the changed records into the previous files ----------


@dataclass
class Changes:
    """What changed since the files were written, as far as the records go: images by id,
    by key (its line is dropped wherever its path was) and paths (every line on them is
    dropped, every image now on them written again)."""

    ids: set[int] = field(default_factory=set)
    keys: set[str] = field(default_factory=set)
    paths: set[str] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.ids or self.keys or self.paths)

    def update(self, other: Changes) -> None:
        self.ids |= other.ids
        self.keys |= other.keys
        self.paths |= other.paths


class NotMergeable(Exception):
    """The previous files are not what :func:`write_both` wrote (edited, cut short, out of
    order): they are written whole instead."""


_PATH_START = b'{"path":"'
_KEY_START = b'","key":"'
_KEY_END = b'","generator":'


def merge_both(
    conn: sqlite3.Connection,
    jsonl_path: Path,
    csv_path: Path,
    changes: Changes,
    *,
    top_id: int | None = None,
) -> tuple[int, int]:
    """Write records.jsonl and records.csv as :func:`write_both` would, from the previous
    files and the records of ``changes`` only: the lines of unchanged images are copied as
    bytes (no database read, no JSON), the changed ones read and merged in path order.
    Returns (records written, records read from the database); raises :class:`NotMergeable`
    (both previous files left as they were) when the previous files are not mergeable.

    Both files hold one record per image in (path, id) order; the CSV's records follow the
    JSON lines one for one. Every image sharing a path with a changed one is read again, so
    on any path the lines are all old or all new, and the path alone orders the merge.

    With ``top_id`` (the largest image id when the files were written) the records are
    appended instead when that gives the same files (see :func:`append_both`)."""
    ids, paths = _changed_images(conn, changes)
    if top_id is not None:
        appended = _append(conn, jsonl_path, csv_path, changes, ids, paths, top_id)
        if appended is not None:
            return appended
    dropped_paths = {path.encode() for path in paths}
    # A key as it is written inside its JSON string (orjson escapes deterministically).
    dropped_keys = {orjson.dumps(key)[1:-1] for key in changes.keys}
    count = 0
    with (
        jsonl_path.open("rb") as old_jsonl,
        csv_path.open("rb") as old_csv,
        atomic_write(jsonl_path, "wb", encoding=None) as jsonl_text,
        atomic_write(csv_path, "wb", encoding=None) as csv_text,
        closing(iter_records(conn, ids)) as records,
    ):
        # Opened in binary mode ("wb"); atomic_write's annotation names its text default.
        jsonl, csv = cast(IO[bytes], jsonl_text), cast(IO[bytes], csv_text)
        old_records = _csv_records(old_csv)
        header = _csv_line(CSV_HEADER).encode()
        if next(old_records, None) != header:
            raise NotMergeable(f"{csv_path}: not the header aimeta writes")
        csv.write(header)
        fresh = _encoded(records)
        new = next(fresh, None)
        previous = b""
        for line in old_jsonl:
            old_record = next(old_records, None)
            path, end = _line_path(line)
            if old_record is None or path < previous or not line.endswith(b"\n"):
                raise NotMergeable(f"{jsonl_path} and {csv_path} do not match")
            previous = path
            while new is not None and new[0] < path:
                jsonl.write(new[1])
                csv.write(new[2])
                count += 1
                new = next(fresh, None)
            if path in dropped_paths or (dropped_keys and _line_key(line, end) in dropped_keys):
                continue
            jsonl.write(line)
            csv.write(old_record)
            count += 1
        if next(old_records, None) is not None:
            raise NotMergeable(f"{csv_path} has more records than {jsonl_path}")
        while new is not None:
            jsonl.write(new[1])
            csv.write(new[2])
            count += 1
            new = next(fresh, None)
    return count, len(ids)


def append_both(
    conn: sqlite3.Connection, jsonl_path: Path, csv_path: Path, changes: Changes, top_id: int
) -> tuple[int, int] | None:
    """Append the records of ``changes`` to records.jsonl and records.csv, when that gives
    what :func:`merge_both` would: every changed image is newer than the files (an id above
    ``top_id``, the largest id when they were written) and every path involved sorts after
    the last one in the files. Returns (records appended, records read), or None (files left
    as they were) when the changes need a merge.

    The common case of a growing library: new images get ever larger ids (migration 8) and a
    generator names its files in order (``00042-seed.png``, dated folders), so a run that
    only adds them costs what they cost, not a copy of every line (1,000,000 images: ~9 s).
    The files are appended in place: a run killed meanwhile publishes no state, and the next
    one writes them whole."""
    ids, paths = _changed_images(conn, changes)
    return _append(conn, jsonl_path, csv_path, changes, ids, paths, top_id)


def _append(
    conn: sqlite3.Connection,
    jsonl_path: Path,
    csv_path: Path,
    changes: Changes,
    ids: set[int],
    paths: set[str],
    top_id: int,
) -> tuple[int, int] | None:
    """:func:`append_both` for the images and paths :func:`_changed_images` gave."""
    if not ids or min(ids) <= top_id or not _all_keys_stored(conn, changes.keys):
        return None
    last = _last_path(jsonl_path)
    if last is None or any(path.encode() <= last for path in paths):
        return None
    count = 0
    with (
        jsonl_path.open("ab") as jsonl,
        csv_path.open("ab") as csv,
        closing(iter_records(conn, ids)) as records,
    ):
        for _path, line, record in _encoded(records):
            jsonl.write(line)
            csv.write(record)
            count += 1
        for handle in (jsonl, csv):
            handle.flush()
            os.fsync(handle.fileno())
    return count, len(ids)


def _all_keys_stored(conn: sqlite3.Connection, keys: set[str]) -> bool:
    """Whether an image has each key: a merge drops the lines of a key wherever they are, so
    one that no image has now (re-keyed, deleted) may still have a line in the files."""
    if not keys:
        return True
    sql = f"SELECT COUNT(*) FROM images WHERE key {_IDS}"
    return int(conn.execute(sql, (orjson.dumps(sorted(keys)).decode(),)).fetchone()[0]) == len(keys)


def _last_path(jsonl_path: Path) -> bytes | None:
    """The path of the last line of records.jsonl (b"" for an empty file), read from its end;
    None when it does not end with a whole line."""
    with jsonl_path.open("rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        if size == 0:
            return b""
        tail = b""
        start = size
        while start > 0:
            start = max(0, start - 65_536)  # a line with a ComfyUI prompt can be long
            handle.seek(start)
            tail = handle.read(size - start)
            if tail.count(b"\n") >= 2 or start == 0:
                break
    if not tail.endswith(b"\n"):
        return None
    line = tail[tail.rfind(b"\n", 0, len(tail) - 1) + 1 :]
    try:
        return _line_path(line)[0]
    except NotMergeable:
        return None


def _changed_images(conn: sqlite3.Connection, changes: Changes) -> tuple[set[int], set[str]]:
    """The ids of the images to read again and the paths whose old lines go: the images
    changed, and every image on a path one of them has or had."""
    found: dict[int, str] = {}
    for column, values in (("id", changes.ids), ("key", changes.keys), ("path", changes.paths)):
        if values:
            found.update(
                conn.execute(
                    f"SELECT id, path FROM images WHERE {column} {_IDS}",
                    (orjson.dumps(sorted(values)).decode(),),
                )
            )
    paths = changes.paths | set(found.values())
    if paths:
        found.update(
            conn.execute(
                f"SELECT id, path FROM images WHERE path {_IDS}",
                (orjson.dumps(sorted(paths)).decode(),),
            )
        )
    return set(found), paths


def _encoded(records: Iterable[dict[str, Any]]) -> Iterator[tuple[bytes, bytes, bytes]]:
    """(path as UTF-8, JSON line, CSV record) of each record: what the merge compares and
    writes. UTF-8 bytes compare as SQLite's BINARY collation orders the paths."""
    dumps = orjson.dumps
    for record in records:
        jsonl_line = dumps(record) + b"\n"
        yield record["path"].encode(), jsonl_line, _csv_record(record).encode()


def _line_path(line: bytes) -> tuple[bytes, int]:
    """The path of a records.jsonl line as UTF-8, and where its JSON string ends. Inside a
    JSON string every quote is escaped, so the first ``","key":"`` ends the path."""
    if not line.startswith(_PATH_START):
        raise NotMergeable("a records.jsonl line that does not start with its path")
    end = line.find(_KEY_START, len(_PATH_START))
    if end < 0:
        raise NotMergeable("a records.jsonl line without a key")
    text = line[len(_PATH_START) : end]
    if b"\\" in text:  # escaped characters (a Windows path): decode the JSON string
        text = orjson.loads(b'"' + text + b'"').encode()
    return text, end


def _line_key(line: bytes, path_end: int) -> bytes:
    """The key of a records.jsonl line as written inside its JSON string."""
    start = path_end + len(_KEY_START)
    return line[start : line.find(_KEY_END, start)]


def _csv_records(handle: IO[bytes]) -> Iterator[bytes]:
    """The records of a CSV file as bytes: a record goes on while a quoted field is open
    (an odd number of quotes so far), over the line breaks of multi-line prompts."""
    record = b""
    quotes = 0
    for line in handle:
        record += line
        quotes += line.count(b'"')
        if quotes % 2 == 0:
            yield record
            record = b""
            quotes = 0
    if record:
        yield record
