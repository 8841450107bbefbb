"""Wildcard lists for prompt tools (Dynamic Prompts, ComfyUI wildcard nodes) from the database.

Every kind (tokens, prompts, kv values, resources, the first column of a SQL query) first
yields ``(text, count)`` pairs; :func:`finish` then folds each text onto one line, merges
duplicates, applies the regex and count filters, sorts and cuts. A count is the number of
images an item appears in (for ``sql``: the number of rows that gave the line).
"""

from __future__ import annotations

import os
import re
import sqlite3
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aimeta.db import PARAMETER_ROWS, PROMPT_KEYS, TOKEN_COUNTS_SQL
from aimeta.errors import DatabaseError, OutputError, UsageError

SORTS = ("count_desc", "count_asc", "alpha", "none")
SIDES = ("pos", "neg")
# A1111 prompt syntax for weighted extra networks: `<lora:name:0.8>`, `<hypernet:name:1>`.
WEIGHTED_TAGS = {"lora": "lora", "hypernetwork": "hypernet"}
_NEWLINES = re.compile(r"[\r\n\u2028\u2029\x0b\x0c\x85]+")


@dataclass(frozen=True)
class LineFilter:
    """What to keep and in which order.

    ``include``/``exclude`` are Python regular expressions searched anywhere in a line;
    ``min_count``/``max_count`` bound the count (inclusive); ``sort`` is one of
    :data:`SORTS` (``none`` keeps the order the items were found in); ``limit`` keeps the
    first N lines after sorting (``None`` or 0: all).
    """

    include: str | None = None
    exclude: str | None = None
    min_count: int = 1
    max_count: int | None = None
    sort: str = "count_desc"
    limit: int | None = None


@dataclass(frozen=True)
class WildcardLine:
    """One output line and the number of images (or rows) behind it."""

    text: str
    count: int


def fold_line(text: str) -> str:
    """One line: newlines (and other line breaks) become single spaces, ends are stripped."""
    return _NEWLINES.sub(" ", text).strip()


def format_weight(weight: float) -> str:
    """``0.8`` -> ``0.8``, ``1.0`` -> ``1``, ``0.75000001`` -> ``0.75`` (4 decimals at most)."""
    text = f"{weight:.4f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _compile(option: str, pattern: str | None) -> re.Pattern[str] | None:
    if not pattern:
        return None
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise UsageError(f"{option} {pattern!r} is not a valid regular expression: {exc}") from exc


def finish(pairs: Iterable[tuple[Any, int]], line_filter: LineFilter) -> list[WildcardLine]:
    """Fold, merge, filter, sort and cut ``(text, count)`` pairs into wildcard lines.

    Texts that are None or empty after folding are dropped; equal texts are merged by adding
    their counts, keeping the position of the first.
    """
    if line_filter.sort not in SORTS:
        raise UsageError(f"--sort must be one of {', '.join(SORTS)}, not {line_filter.sort!r}")
    include = _compile("--include", line_filter.include)
    exclude = _compile("--exclude", line_filter.exclude)
    merged: dict[str, int] = {}
    for value, count in pairs:
        if value is None:
            continue
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        text = fold_line(str(value))
        if text:
            merged[text] = merged.get(text, 0) + int(count)
    lines = [
        WildcardLine(text, count)
        for text, count in merged.items()
        if count >= line_filter.min_count
        and (line_filter.max_count is None or count <= line_filter.max_count)
        and (include is None or include.search(text))
        and (exclude is None or not exclude.search(text))
    ]
    # Ties are broken alphabetically so a list is the same on every run.
    if line_filter.sort == "count_desc":
        lines.sort(key=lambda line: (-line.count, line.text.casefold(), line.text))
    elif line_filter.sort == "count_asc":
        lines.sort(key=lambda line: (line.count, line.text.casefold(), line.text))
    elif line_filter.sort == "alpha":
        lines.sort(key=lambda line: (line.text.casefold(), line.text))
    if line_filter.limit:
        lines = lines[: line_filter.limit]
    return lines


def token_lines(conn: sqlite3.Connection, side: str, line_filter: LineFilter) -> list[WildcardLine]:
    """Normalised prompt tokens (``t_norm``) of one side (pos|neg), counted by images."""
    if side not in SIDES:
        raise UsageError(f"--side must be pos or neg, not {side!r}")
    rows = conn.execute(TOKEN_COUNTS_SQL + " ORDER BY t_norm", (side,))
    return finish(rows, line_filter)


def prompt_lines(
    conn: sqlite3.Connection, which: str, line_filter: LineFilter
) -> list[WildcardLine]:
    """Whole positive (``pos``) or negative (``neg``) prompts, one per line, counted by images."""
    if which not in SIDES:
        raise UsageError(f"--which must be pos or neg, not {which!r}")
    key = "prompt" if which == "pos" else "negative_prompt"
    return kv_lines(conn, key, line_filter)


def kv_lines(conn: sqlite3.Connection, key: str, line_filter: LineFilter) -> list[WildcardLine]:
    """The distinct values stored under one kv ``key`` (e.g. sampler_norm), counted by images."""
    # Any other key is read through idx_kv_key_value, whose rows PARAMETER_ROWS names; the
    # prompts are not in it, and are sorted here.
    only = "" if key in PROMPT_KEYS else f" AND {PARAMETER_ROWS}"
    rows = conn.execute(
        f"SELECT value, COUNT(*) FROM kv WHERE key = ?{only} GROUP BY value ORDER BY value",
        (key,),
    )
    return finish(rows, line_filter)


def resource_lines(
    conn: sqlite3.Connection, kind: str, with_weight: bool, line_filter: LineFilter
) -> list[WildcardLine]:
    """Names of the resources of one ``kind``, counted by images.

    With ``with_weight`` (lora and hypernetwork only) each distinct name + weight becomes one
    prompt tag, ``<lora:name:0.8>``; a resource whose weight is unknown becomes
    ``<lora:name>``, which prompt tools read with their default weight.
    """
    if not with_weight:
        rows = conn.execute(
            "SELECT name, COUNT(DISTINCT image_id) FROM resources WHERE kind = ?"
            " GROUP BY name ORDER BY name",
            (kind,),
        )
        return finish(rows, line_filter)
    tag = WEIGHTED_TAGS.get(kind)
    if tag is None:
        raise UsageError(
            f"--with-weight works for {' and '.join(WEIGHTED_TAGS)} (prompt tags with a"
            f" weight), not for {kind!r}"
        )
    rows = conn.execute(
        "SELECT name, weight, COUNT(*) FROM resources WHERE kind = ?"
        " GROUP BY name, weight ORDER BY name, weight",
        (kind,),
    )
    # Weights that format alike (0.8 and 0.80000001) are merged by finish().
    tagged = (
        (
            f"<{tag}:{name}>" if weight is None else f"<{tag}:{name}:{format_weight(weight)}>",
            count,
        )
        for name, weight, count in rows
    )
    return finish(tagged, line_filter)


# What a `wildcards sql` statement may do: read tables and views, call functions, recurse.
_ALLOWED_ACTIONS = {
    sqlite3.SQLITE_SELECT,
    sqlite3.SQLITE_READ,
    sqlite3.SQLITE_FUNCTION,
    sqlite3.SQLITE_RECURSIVE,
}
# Pragmas that only describe the schema (usable as table-valued functions: pragma_table_info).
_READ_PRAGMAS = {
    "table_info",
    "table_xinfo",
    "table_list",
    "index_list",
    "index_info",
    "index_xinfo",
    "foreign_key_list",
    "function_list",
    "collation_list",
    "pragma_list",
    "compile_options",
}


def _read_only_authorizer(
    action: int, arg1: str | None, arg2: str | None, db_name: str | None, source: str | None
) -> int:
    del arg2, db_name, source
    if action in _ALLOWED_ACTIONS:
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_PRAGMA and (arg1 or "").lower() in _READ_PRAGMAS:
        return sqlite3.SQLITE_OK
    # SQLite reports (re)reading the schema as an update of sqlite_master; no statement can
    # really change it without `PRAGMA writable_schema`, which is refused above.
    if action == sqlite3.SQLITE_UPDATE and arg1 == "sqlite_master":
        return sqlite3.SQLITE_OK
    return sqlite3.SQLITE_DENY


def sql_lines(conn: sqlite3.Connection, sql: str, line_filter: LineFilter) -> list[WildcardLine]:
    """The first column of each row of one read-only ``sql`` statement.

    ``conn`` should come from ``aimeta.db.open_existing(path, readonly=True)``; on top of that
    an authorizer refuses anything but reading (writes, ATTACH, pragmas that change settings),
    so the database stays unchanged whatever the statement. A refused or invalid statement raises
    DatabaseError with SQLite's reason.
    """
    if not sql.strip():
        raise UsageError("--sql is empty: give one SELECT statement")
    conn.set_authorizer(_read_only_authorizer)
    try:
        cursor = conn.execute(sql)
        if cursor.description is None:
            raise DatabaseError("--sql must be a SELECT statement that returns rows")
        rows = [(row[0], 1) for row in cursor]
    except (sqlite3.Error, sqlite3.Warning) as exc:
        reason = str(exc).rstrip(".")
        if "not authorized" in reason or "readonly" in reason or "read-only" in reason:
            raise DatabaseError(
                f"--sql may only read the database; this statement tries to change it ({reason})"
            ) from exc
        if "one statement at a time" in reason:
            raise DatabaseError("--sql takes a single statement (found more than one)") from exc
        raise DatabaseError(f"--sql is not a valid statement: {reason}") from exc
    finally:
        conn.set_authorizer(None)
    return finish(rows, line_filter)


def write_lines(lines: Sequence[str], out: Path) -> None:
    """Write ``lines`` to ``out`` as UTF-8, one per line, creating parent folders.

    The file is replaced atomically: on failure the previous file is left as it was.
    """
    text = "".join(f"{line}\n" for line in lines)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
        try:
            with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as stream:
                stream.write(text)
            os.replace(temporary, out)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise OutputError(f"cannot write {out}: {exc.strerror or exc}") from exc
