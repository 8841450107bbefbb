"""ingest: parse the raw metadata of a dump into the database.

Reads the JSONL written by :mod:`aimeta.pipelines.dump` from where the last ingest of that
file stopped (the offset is stored in the database, in the same transaction as the rows), so
re-running is cheap and a killed run loses at most one batch. For every file: detect the
generator, parse, tokenize the prompts and replace the image's rows.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from aimeta import db, events
from aimeta.errors import InputError
from aimeta.parsers import PARSER_VERSION, parse_fields
from aimeta.pipelines.dump import HEADER_PREFIX
from aimeta.readers.fields import pixel_size, text_fields
from aimeta.record import Record
from aimeta.tokens import Token, tokenize

# Fields whose presence means the file was meant to carry generation metadata: if no parser
# recognises them, that is reported as an error (e.g. invalid JSON in a ComfyUI chunk).
_GENERATION_FIELDS = ("prompt", "workflow", "parameters", "sd-metadata", "invokeai_metadata")


@dataclass
class IngestResult:
    """What an ingest run did."""

    lines: int = 0
    stored: int = 0
    failed: int = 0
    by_generator: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    failures: list[tuple[str, str]] = field(default_factory=list)


def run(
    source: Path,
    conn: sqlite3.Connection,
    *,
    batch_size: int = 500,
    from_start: bool = False,
    on_event: events.OnEvent = events.ignore,
) -> IngestResult:
    """Ingest the new lines of the JSONL file ``source`` into the open database ``conn``."""
    started = time.perf_counter()
    if not source.is_file():
        raise InputError(f"{source}: no such file; run `aimeta dump` first")
    result = IngestResult()
    source_key = str(source.resolve())
    identity = _identity(source)
    offset = 0 if from_start else _stored_offset(conn, source_key, identity)
    size = source.stat().st_size
    if offset > size:
        offset = 0
    on_event(events.Started("ingest", total=_count_lines(source, offset)))
    for batch, end in _batches(source, offset, batch_size):
        with db.transaction(conn):
            for line in batch:
                _ingest_line(conn, line, result)
            conn.execute(
                "INSERT INTO ingest_progress (source, identity, offset) VALUES (?, ?, ?)"
                " ON CONFLICT(source) DO UPDATE SET identity=excluded.identity,"
                " offset=excluded.offset",
                (source_key, identity, end),
            )
        result.lines += len(batch)
        on_event(events.Progress("ingest", advance=len(batch)))
    on_event(events.Finished("ingest"))
    result.seconds = time.perf_counter() - started
    return result


def _identity(source: Path) -> str:
    """Identifies one JSONL file by its first line (dump writes a unique header there), so a
    new file at the same path is ingested from the start."""
    with source.open("rb") as handle:
        head = handle.readline()
    return hashlib.blake2b(head, digest_size=8).hexdigest()


def _count_lines(source: Path, offset: int) -> int:
    """Complete file lines after ``offset``, for the progress bar: a newline count (~1 GB/s),
    less the header line when it is among them."""
    count = 0
    with source.open("rb") as handle:
        handle.seek(offset)
        header = handle.read(len(HEADER_PREFIX)) == HEADER_PREFIX
        handle.seek(offset)
        while block := handle.read(1 << 20):
            count += block.count(b"\n")
    return max(0, count - header)


def _stored_offset(conn: sqlite3.Connection, source_key: str, identity: str) -> int:
    row = conn.execute(
        "SELECT identity, offset FROM ingest_progress WHERE source = ?", (source_key,)
    ).fetchone()
    return int(row[1]) if row and row[0] == identity else 0


def _batches(
    source: Path, offset: int, batch_size: int
) -> Iterator[tuple[list[dict[str, Any] | str], int]]:
    """Complete lines from ``offset`` on, in batches, with the offset after each batch.

    A line that is not valid JSON is passed on as its text (it becomes an error row); a last
    line without a newline is left for the next run (its writer may still be busy or killed).
    """
    with source.open("rb") as handle:
        handle.seek(offset)
        batch: list[dict[str, Any] | str] = []
        position = offset
        for raw in handle:
            if not raw.endswith(b"\n"):
                break
            position += len(raw)
            if raw.startswith(HEADER_PREFIX):
                continue
            try:
                parsed = orjson.loads(raw)
                batch.append(
                    parsed if isinstance(parsed, dict) else raw[:200].decode(errors="replace")
                )
            except orjson.JSONDecodeError:
                batch.append(raw[:200].decode("utf-8", errors="replace"))
            if len(batch) >= batch_size:
                yield batch, position
                batch = []
        if batch:
            yield batch, position


@dataclass
class _Parsed:
    """One file made ready for the database: what to store and what to record as errors."""

    image: dict[str, Any]
    record: Record
    tokens: list[tuple[str, Token]]
    errors: list[tuple[str, str]] = field(default_factory=list)  # (stage, reason)


def _parse(line: dict[str, Any], fields: dict[str, str], size: tuple[int, int] | None) -> _Parsed:
    """Parse one file's text fields (pure: no I/O), ready for :func:`_store`."""
    path = str(line["path"])
    errors: list[tuple[str, str]] = []
    try:
        record = parse_fields(fields)
    except Exception as exc:  # a parser bug must cost one file, not the run
        record = Record(generator="unknown", warnings=[f"parser failed: {exc!r}"])
        errors.append(("ingest", f"parser failed: {exc!r}"))
    else:
        reason = _unparsed_reason(record, fields)
        if reason:
            record = Record(generator="unknown", warnings=[reason])
            errors.append(("ingest", reason))
    if line.get("warnings"):
        # Damaged but readable: the metadata is stored and the damage is on record.
        errors.append(("read", "; ".join(map(str, line["warnings"]))))
    image = {
        "key": line["key"],
        "path": path,
        "root": line.get("root"),
        "file_name": Path(path).name,
        "ext": Path(path).suffix.lower().lstrip(".") or None,
        "size": line.get("size"),
        "mtime_ns": line.get("mtime_ns"),
        "sha256": line.get("sha256"),
        "width": size[0] if size else None,
        "height": size[1] if size else None,
        "reader": line.get("reader"),
        "raw": fields,
        "parser_version": PARSER_VERSION,
    }
    return _Parsed(image, record, prompt_tokens(record), errors)


def _store(conn: sqlite3.Connection, parsed: _Parsed, result: IngestResult) -> None:
    """Replace the image's rows and bring its error rows up to date."""
    path = parsed.image["path"]
    failed_stages = {stage for stage, _reason in parsed.errors}
    for stage, reason in parsed.errors:
        _fail(conn, result, path, stage, reason)
    db.clear_errors(conn, [path], *({"ingest", "read"} - failed_stages))
    db.store_image(conn, parsed.image, parsed.record, parsed.tokens)
    result.stored += 1
    generator = parsed.record.generator
    result.by_generator[generator] = result.by_generator.get(generator, 0) + 1


def _ingest_line(
    conn: sqlite3.Connection, line: dict[str, Any] | str, result: IngestResult
) -> None:
    if isinstance(line, str):
        _fail(conn, result, f"<line {result.lines + 1}>", "dump", f"not a JSON object: {line[:80]}")
        return
    if line.get("error"):
        _fail(conn, result, str(line.get("path") or ""), "read", str(line["error"]))
        return
    tags = line.get("tags") or {}
    _store(conn, _parse(line, text_fields(tags), pixel_size(tags)), result)


def _fail(
    conn: sqlite3.Connection, result: IngestResult, path: str, stage: str, reason: str
) -> None:
    db.record_error(conn, path, stage, reason)
    result.failed += 1
    result.failures.append((path, reason))


def _unparsed_reason(record: Record, fields: dict[str, str]) -> str | None:
    """Why a file whose generation metadata is damaged yielded none (invalid JSON in a chunk).

    Text that no parser recognises is not an error: it is kept raw under generator
    ``unknown`` and can be parsed again when a parser learns it.
    """
    if record.generator not in ("none", "unknown"):
        return None
    for name in _GENERATION_FIELDS:
        text = fields.get(name, "").lstrip()
        if text.startswith(("{", "[")):
            try:
                json.loads(text)  # the stdlib accepts NaN/Infinity as generators write them
            except (ValueError, RecursionError) as exc:
                return f"the {name!r} text is not valid JSON ({exc})"
    return None


def prompt_tokens(record: Record) -> list[tuple[str, Token]]:
    """Tokens of the positive and negative prompt, tagged with their side."""
    syntax = str(record.extra.get("prompt_syntax", "a1111"))
    tokens: list[tuple[str, Token]] = []
    for side, text in (("pos", record.prompt), ("neg", record.negative_prompt)):
        if text:
            tokens.extend((side, token) for token in tokenize(text, syntax=syntax))  # type: ignore[arg-type]
    return tokens


def reparse(
    conn: sqlite3.Connection,
    *,
    batch_size: int = 500,
    on_event: events.OnEvent = events.ignore,
) -> IngestResult:
    """Run the parsers again over the raw fields stored for every image (no file is read)."""
    started = time.perf_counter()
    result = IngestResult()
    total = conn.execute("SELECT COUNT(*) FROM images").fetchone()[0]
    on_event(events.Started("reparse", total=total))
    last_id = -1
    while True:
        rows = conn.execute(
            "SELECT id, key, path, root, file_name, ext, size, mtime_ns, sha256, width, height,"
            " reader, raw_json FROM images WHERE id > ? ORDER BY id LIMIT ?",
            (last_id, batch_size),
        ).fetchall()
        if not rows:
            break
        with db.transaction(conn):
            for row in rows:
                fields = orjson.loads(row[12] or "{}")
                line = {
                    "key": row[1],
                    "path": row[2],
                    "root": row[3],
                    "size": row[6],
                    "mtime_ns": row[7],
                    "sha256": row[8],
                    "reader": row[11],
                    "tags": {},
                }
                size = (row[9], row[10]) if row[9] is not None else None
                _store(conn, _parse(line, fields, size), result)
        last_id = rows[-1][0]
        result.lines += len(rows)
        on_event(events.Progress("reparse", advance=len(rows)))
    on_event(events.Finished("reparse"))
    result.seconds = time.perf_counter() - started
    return result
