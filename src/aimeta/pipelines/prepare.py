"""One dump line -> the database rows of one image (pure: no I/O, picklable results).

This is the CPU-heavy half of ingest — JSON decoding, format detection, parsing,
tokenizing, row building — kept apart from the writing so that worker processes can run it on
every core while one process writes the database (see :mod:`aimeta.workers`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from aimeta import db
from aimeta.metadata.parsers import PARSER_VERSION, parse_fields
from aimeta.metadata.readers.fields import GENERATION_FIELDS, pixel_size, text_fields
from aimeta.metadata.record import Record
from aimeta.metadata.tokens import SYNTAXES, Syntax, Token, tokenize_bounded

# Stages whose error rows describe a file's metadata: cleared once the file is stored cleanly.
CLEARED_STAGES = frozenset({"ingest", "read"})


@dataclass(slots=True)
class Prepared:
    """What to do in the database for one dump line.

    ``rows`` is None when there is nothing to store (the file could not be read, or the line
    was no JSON object: then ``path`` is None and the writer names it by its line number).
    ``errors`` are (stage, reason) pairs to record for ``path``.
    """

    path: str | None
    rows: db.ImageRows | None
    errors: list[tuple[str, str]] = field(default_factory=list)
    generator: str | None = None


def prepare_raw(raw: bytes) -> Prepared:
    """Prepare one JSONL line as read from the file."""
    try:
        line = orjson.loads(raw)
    except orjson.JSONDecodeError:
        line = None
    if not isinstance(line, dict):
        text = raw[:80].decode("utf-8", errors="replace").rstrip()
        return Prepared(None, None, [("dump", f"not a JSON object: {text}")])
    return prepare_line(line)


def prepare_raw_lines(raws: list[bytes]) -> list[Prepared]:
    """:func:`prepare_raw` over a chunk of lines (one task for a worker process)."""
    return [prepare_raw(raw) for raw in raws]


def prepare_line(line: dict[str, Any]) -> Prepared:
    """Prepare one decoded dump line."""
    path = str(line.get("path") or "")
    if line.get("error"):
        return Prepared(path, None, [("read", str(line["error"]))])
    tags = line.get("tags") or {}
    return prepare_fields(line, text_fields(tags), pixel_size(tags))


def prepare_fields(
    line: dict[str, Any], fields: dict[str, str], size: tuple[int, int] | None
) -> Prepared:
    """Parse one file's text fields into its rows; ``line`` carries the file's identity."""
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
    name = Path(path).name
    image = {
        "key": line["key"],
        "path": path,
        "root": line.get("root"),
        "file_name": name,
        "ext": Path(name).suffix.lower().lstrip(".") or None,
        "size": line.get("size"),
        "mtime_ns": line.get("mtime_ns"),
        "sha256": line.get("sha256"),
        "width": size[0] if size else None,
        "height": size[1] if size else None,
        "reader": line.get("reader"),
        "raw": fields,
        "parser_version": PARSER_VERSION,
    }
    try:
        tokens = prompt_tokens(record)
    except Exception as exc:  # a tokenizer bug, likewise
        tokens = []
        errors.append(("ingest", f"tokenizer failed: {exc!r}"))
    return Prepared(path, db.image_rows(image, record, tokens), errors, record.generator)


def _unparsed_reason(record: Record, fields: dict[str, str]) -> str | None:
    """Why a file whose generation metadata is damaged yielded none (invalid JSON in a chunk).

    Text that no parser recognises is not an error: it is kept raw under generator
    ``unknown`` and can be parsed again when a parser learns it.
    """
    if record.generator not in ("none", "unknown"):
        return None
    return damaged_json(fields)


def damaged_json(fields: dict[str, str]) -> str | None:
    """The first generation field (:data:`GENERATION_FIELDS`, by name) whose text starts like
    JSON but is not valid JSON, as a reason; ``None`` when there is none."""
    for name in sorted(GENERATION_FIELDS.intersection(fields)):
        text = fields[name].lstrip()
        if text.startswith(("{", "[")):
            try:
                json.loads(text)  # the stdlib accepts NaN/Infinity as generators write them
            except (ValueError, RecursionError) as exc:
                return f"the {name!r} text is not valid JSON ({exc})"
    return None


def prompt_tokens(record: Record) -> list[tuple[str, Token]]:
    """Tokens of the positive and negative prompt, tagged with their side (A1111 syntax unless
    the parser named one of :data:`SYNTAXES`).

    Each side is bounded (see :data:`~aimeta.metadata.tokens.MAX_TOKENS_PER_SIDE`); a side
    that was cut adds a warning to ``record.warnings``, which is stored with the image.
    """
    named = record.extra.get("prompt_syntax")
    syntax: Syntax = next((known for known in SYNTAXES if known == named), "a1111")
    tokens: list[tuple[str, Token]] = []
    for side, text in (("pos", record.prompt), ("neg", record.negative_prompt)):
        if text:
            side_tokens, cut = tokenize_bounded(text, syntax=syntax)
            tokens.extend((side, token) for token in side_tokens)
            if cut:
                record.warnings.append(
                    f"{side} prompt too long ({len(text):,} characters): only its first "
                    f"{len(side_tokens):,} tokens are stored as tokens; the text is kept whole"
                )
    return tokens
