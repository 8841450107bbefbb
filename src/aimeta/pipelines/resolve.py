"""resolve: turn Civitai references and bare hashes into named resources.

1. Import mappings into ``model_versions``/``model_hashes``: manual map files (CSV or JSON, see
   :data:`MAP_HELP`) and Civitai API exports (any JSON holding model versions or models).
2. Optionally (``online``) ask the Civitai API about version ids and hashes no mapping knows;
   every answer, "not found" included, is cached so nothing is asked twice.
3. With ``rewrite``, replace each ``resource_ref`` placeholder (``modelVersionId:<id>``) and
   each resource known only by its hash (``hash:<hex>``) with a resource of the resolved kind
   and name; the reference it came from stays in ``extra_json['resolved_from']``. A resolved
   name that the image already has (its ``Model:`` field, a LoRA tag) merges into that row.

Without any mapping nothing changes; the result says how many references are unresolved.
Running it again changes nothing: resolved placeholders are gone, mappings are upserted.
"""

from __future__ import annotations

import csv
import io
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from aimeta import db, events
from aimeta.errors import InputError
from aimeta.metadata.civitai.refs import (
    VERSION_REF_PREFIX,
    ModelVersion,
    version_from_map_row,
    version_id_of_ref,
    versions_from_api,
)
from aimeta.metadata.resources import HASH_NAME_PREFIX, hash_type, normalize_hash
from aimeta.settings import Settings

if TYPE_CHECKING:
    import httpx

STAGE = "resolve"
BATCH_SIZE = 500
CIVITAI_TIMEOUT_S = 20.0

MAP_HELP = (
    "A map is a CSV file with a header row, or a JSON list of objects, with the columns "
    "version_id, model_id, kind, model_name, version_name, base_model, file_name and any of "
    "the hashes sha256, autov1, autov2, autov3, blake3, crc32 (or hash, typed by its length). "
    "Each row needs a model_name or file_name, and a version_id or a hash."
)

# Rows that name no model of their own: Civitai version placeholders, and hash-only rows
# ("hash:<hex>", or the hash itself written where the name belongs).
_REFERENCE_ROWS = (
    "((kind = 'resource_ref' AND name >= 'modelVersionId:' AND name < 'modelVersionId;')"
    " OR (name >= 'hash:' AND name < 'hash;')"
    " OR (hash IS NOT NULL AND lower(name) = hash))"
)
_COLUMNS = "image_id, kind, name, weight, weight_clip, hash, hash_type, source, extra_json"


@dataclass
class ResolveResult:
    """What a resolve run found and did."""

    imported_from_maps: int = 0
    imported_from_exports: int = 0
    map_problems: list[str] = field(default_factory=list)
    version_refs: int = 0  # placeholder rows naming a Civitai model version
    hash_refs: int = 0  # rows known only by a hash
    resolvable: int = 0  # of those, rows a mapping resolves
    unresolved_versions: list[int] = field(default_factory=list)
    unresolved_hashes: list[str] = field(default_factory=list)
    rewritten: int = 0  # rows turned into named resources
    merged: int = 0  # of which merged into a row the image already had
    images: set[int] = field(default_factory=set)  # ids of the images whose rows were rewritten
    online_requests: int = 0
    online_found: int = 0
    online_not_found: int = 0
    online_failed: int = 0
    offline: bool = False
    seconds: float = 0.0

    @property
    def unresolved(self) -> int:
        """Distinct version ids and hashes no mapping resolves."""
        return len(self.unresolved_versions) + len(self.unresolved_hashes)

    @property
    def hint(self) -> str | None:
        """How to resolve what is left, or ``None`` when nothing is."""
        if not self.unresolved:
            return None
        return (
            f"{self.unresolved} references are unresolved. Provide a map with --map FILE.csv "
            "(columns: version_id, model_id, kind, model_name, version_name, base_model, "
            "file_name, sha256, autov2, ...), a Civitai API export with --civitai-export FILE "
            "(the JSON of /api/v1/model-versions/{id} or /models/{id}), or look them up with "
            "--online."
        )


# --- importing mappings --------------------------------------------------------------------


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError as exc:
        raise InputError(f"{path}: no such file") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read it ({exc})") from exc


def _map_rows(path: Path, text: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, row) for each row of a CSV or JSON map."""
    stripped = text.lstrip()
    if path.suffix.lower() == ".json" or stripped.startswith(("[", "{")):
        try:
            data = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise InputError(f"{path}: not valid JSON ({exc})") from exc
        if isinstance(data, dict):
            # {"versions": [...]} or any object holding one list of rows
            lists = [value for value in data.values() if isinstance(value, list)]
            data = lists[0] if len(lists) == 1 else [data]
        if not isinstance(data, list):
            raise InputError(f"{path}: a JSON map is a list of objects")
        for number, item in enumerate(data, 1):
            if isinstance(item, dict):
                yield f"{path.name} item {number}", item
            else:
                yield f"{path.name} item {number}", {}
        return
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or not any(
        name and name.strip().lower() in ("version_id", "model_name", "file_name")
        for name in reader.fieldnames
    ):
        raise InputError(f"{path}: a CSV map needs a header row. {MAP_HELP}")
    for number, row in enumerate(reader, 2):
        yield f"{path.name} line {number}", dict(row)


def load_map(path: Path) -> tuple[list[ModelVersion], list[str]]:
    """The model versions of a manual map file and a reason for each row that was skipped."""
    versions: list[ModelVersion] = []
    problems: list[str] = []
    for where, row in _map_rows(path, _read_text(path)):
        try:
            versions.append(version_from_map_row(row))
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
    return versions, problems


def load_export(path: Path) -> list[ModelVersion]:
    """The model versions found anywhere in a Civitai API export (a JSON file)."""
    try:
        data = orjson.loads(_read_text(path))
    except orjson.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from exc
    return versions_from_api(data)


def store_versions(conn: sqlite3.Connection, versions: Sequence[ModelVersion], source: str) -> int:
    """Upsert ``versions`` into model_versions and their hashes into model_hashes (inside the
    caller's transaction). Known fields are kept where the new mapping leaves them empty."""
    for version in versions:
        primary = version.primary_file
        conn.execute(
            """INSERT INTO model_versions (version_id, model_id, kind, model_name, version_name,
                   base_model, files_json, hashes_json, source, updated_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
               ON CONFLICT(version_id) DO UPDATE SET
                   model_id = COALESCE(excluded.model_id, model_id),
                   kind = COALESCE(excluded.kind, kind),
                   model_name = COALESCE(excluded.model_name, model_name),
                   version_name = COALESCE(excluded.version_name, version_name),
                   base_model = COALESCE(excluded.base_model, base_model),
                   files_json = COALESCE(excluded.files_json, files_json),
                   hashes_json = COALESCE(excluded.hashes_json, hashes_json),
                   source = excluded.source,
                   updated_at = excluded.updated_at""",
            (
                version.version_id,
                version.model_id,
                version.kind,
                version.model_name,
                version.version_name,
                version.base_model,
                _dumps(version.files) if version.files else None,
                _dumps(primary["hashes"]) if primary and primary.get("hashes") else None,
                source,
            ),
        )
        conn.executemany(
            "INSERT OR IGNORE INTO model_hashes (hash, hash_type, version_id) VALUES (?, ?, ?)",
            [(value, kind, version.version_id) for value, kind in version.hashes()],
        )
    return len(versions)


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode("utf-8")


# --- what is unresolved ----------------------------------------------------------------------


@dataclass
class _Survey:
    version_rows: dict[int, int] = field(default_factory=dict)  # version id -> rows
    hash_rows: dict[tuple[str, str | None], int] = field(default_factory=dict)
    versions: dict[int, ModelVersion] = field(default_factory=dict)  # resolvable ones
    hashes: dict[str, int] = field(default_factory=dict)  # hash -> version id


def _survey(conn: sqlite3.Connection) -> _Survey:
    survey = _Survey()
    for name, count in conn.execute(
        "SELECT name, COUNT(*) FROM resources WHERE kind = 'resource_ref'"
        " AND name >= ? AND name < ? GROUP BY name",
        (VERSION_REF_PREFIX, VERSION_REF_PREFIX[:-1] + ";"),
    ):
        version_id = version_id_of_ref(name)
        if version_id is not None:
            survey.version_rows[version_id] = survey.version_rows.get(version_id, 0) + count
    for name, value, value_type, count in conn.execute(
        "SELECT name, hash, hash_type, COUNT(*) FROM resources"
        " WHERE kind != 'resource_ref' AND ((name >= 'hash:' AND name < 'hash;')"
        " OR (hash IS NOT NULL AND lower(name) = hash)) GROUP BY name, hash, hash_type"
    ):
        key_hash = value or normalize_hash(name[len(HASH_NAME_PREFIX) :])
        key = (key_hash, value_type or hash_type(key_hash))
        survey.hash_rows[key] = survey.hash_rows.get(key, 0) + count
    for version_id in survey.version_rows:
        version = load_version(conn, version_id)
        if version is not None:
            survey.versions[version_id] = version
    for key_hash, key_type in survey.hash_rows:
        matched = match_hash(conn, key_hash, key_type)
        if matched is not None:
            survey.hashes[key_hash] = matched
            version = load_version(conn, matched)
            if version is not None:
                survey.versions[matched] = version
    return survey


def load_version(conn: sqlite3.Connection, version_id: int) -> ModelVersion | None:
    """The stored mapping of one model version, or ``None``."""
    row = conn.execute(
        "SELECT model_id, kind, model_name, version_name, base_model, files_json"
        " FROM model_versions WHERE version_id = ?",
        (version_id,),
    ).fetchone()
    if row is None:
        return None
    files = orjson.loads(row[5]) if row[5] else []
    return ModelVersion(version_id, row[0], row[1], row[2], row[3], row[4], files)


def match_hash(conn: sqlite3.Connection, value: str, value_type: str | None) -> int | None:
    """The model version whose file has hash ``value``: an exact match of any type, else (for
    AutoV2/AutoV3-style short hashes) a SHA-256 that starts with it, else (for a full SHA-256)
    a stored AutoV2 that is its first 10 digits. The lowest version id wins a tie."""
    value = normalize_hash(value)
    exact = conn.execute(
        "SELECT MIN(version_id) FROM model_hashes WHERE hash = ?", (value,)
    ).fetchone()[0]
    if exact is not None:
        return int(exact)
    is_hex = not value.startswith("blake3:") and all(c in "0123456789abcdef" for c in value)
    # The legacy 8-digit hash (AutoV1) is no prefix of anything; 10+ digits are SHA-256 prefixes.
    if is_hex and 10 <= len(value) < 64 and value_type != "autov1":
        # A range on the primary key instead of LIKE, so the index is used.
        prefix = conn.execute(
            "SELECT MIN(version_id) FROM model_hashes"
            " WHERE hash >= ? AND hash < ? AND hash_type = 'sha256'",
            (value, value + "g"),
        ).fetchone()[0]
        if prefix is not None:
            return int(prefix)
    if is_hex and len(value) == 64:
        short = conn.execute(
            "SELECT MIN(version_id) FROM model_hashes WHERE hash = ? AND hash_type = 'autov2'",
            (value[:10],),
        ).fetchone()[0]
        if short is not None:
            return int(short)
    return None


# --- asking Civitai --------------------------------------------------------------------------


def _asked(conn: sqlite3.Connection, endpoint: str, key: str) -> bool:
    return (
        conn.execute(
            "SELECT 1 FROM civitai_lookups WHERE endpoint = ? AND key = ?", (endpoint, key)
        ).fetchone()
        is not None
    )


def _remember(
    conn: sqlite3.Connection, endpoint: str, key: str, status: int, version_id: int | None
) -> None:
    conn.execute(
        "INSERT INTO civitai_lookups (endpoint, key, status, version_id) VALUES (?, ?, ?, ?)"
        " ON CONFLICT(endpoint, key) DO UPDATE SET status = excluded.status,"
        " version_id = excluded.version_id, asked_at = excluded.asked_at",
        (endpoint, key, status, version_id),
    )


def _lookup_online(
    conn: sqlite3.Connection,
    survey: _Survey,
    settings: Settings,
    transport: httpx.BaseTransport | None,
    result: ResolveResult,
    on_event: events.OnEvent,
) -> None:
    questions: list[tuple[str, str]] = [
        ("model-version", str(version_id))
        for version_id in sorted(survey.version_rows)
        if version_id not in survey.versions
    ]
    questions += [
        ("by-hash", key_hash)
        for key_hash, _ in sorted(survey.hash_rows, key=lambda item: item[0])
        if key_hash not in survey.hashes
    ]
    questions = [q for q in questions if not _asked(conn, *q)]
    if not questions:
        return
    # Imported here: httpx is only needed for --online.
    from aimeta.metadata.civitai.client import CivitaiClient, CivitaiUnreachable

    on_event(events.Started("civitai", total=len(questions)))
    with CivitaiClient(
        settings.civitai_base_url,
        token=settings.civitai_token,
        rate=settings.civitai_rate,
        timeout=CIVITAI_TIMEOUT_S,
        transport=transport,
    ) as client:
        for endpoint, key in questions:
            try:
                if endpoint == "model-version":
                    answer = client.model_version(int(key))
                else:
                    answer = client.by_hash(key.removeprefix("blake3:"))
            except CivitaiUnreachable as exc:
                result.offline = True
                result.online_failed += 1
                on_event(
                    events.Log(
                        f"Civitai is not reachable at {settings.civitai_base_url} ({exc});"
                        " the remaining look-ups are left for another run.",
                        level="warning",
                    )
                )
                break
            finally:
                result.online_requests = client.requests
            on_event(events.Progress("civitai", item=f"{endpoint} {key}"))
            if answer.found:
                found = versions_from_api(answer.data)
                answered_id = found[0].version_id if found else None
                with db.transaction(conn):
                    store_versions(conn, found, "civitai-api")
                    if endpoint == "by-hash" and answered_id is not None:
                        # The hash as the image wrote it leads to this version next time, even
                        # when the answer lists the file's hashes in another form.
                        conn.execute(
                            "INSERT OR IGNORE INTO model_hashes (hash, hash_type, version_id)"
                            " VALUES (?, ?, ?)",
                            (key, hash_type(key) or "hash", answered_id),
                        )
                    _remember(conn, endpoint, key, 200, answered_id)
                result.online_found += 1
            elif answer.not_found:
                with db.transaction(conn):
                    _remember(conn, endpoint, key, 404, None)
                result.online_not_found += 1
            else:
                result.online_failed += 1
                on_event(
                    events.Log(
                        f"Civitai answered {answer.status} for {endpoint} {key}; try again later.",
                        level="warning",
                    )
                )
                if answer.status == 429:
                    break  # asked to slow down: stop for this run
    on_event(events.Finished("civitai"))


# --- rewriting -------------------------------------------------------------------------------


def _reference_pages(conn: sqlite3.Connection) -> Iterator[list[tuple[Any, ...]]]:
    """Reference rows in primary-key order, a page at a time (keyset paging: rows rewritten
    on the way leave the filter and are not seen again)."""
    after: tuple[int, str, str] = (-(2**63), "", "")
    while True:
        page = conn.execute(
            f"SELECT {_COLUMNS} FROM resources WHERE {_REFERENCE_ROWS}"
            " AND (image_id, kind, name) > (?, ?, ?)"
            " ORDER BY image_id, kind, name LIMIT ?",
            (*after, BATCH_SIZE),
        ).fetchall()
        if not page:
            return
        after = (page[-1][0], page[-1][1], page[-1][2])
        yield page


def _target(row: tuple[Any, ...], survey: _Survey) -> tuple[str, ModelVersion] | None:
    """(kind, version) a reference row resolves to, or ``None``."""
    kind, name, value = row[1], row[2], row[5]
    extra = orjson.loads(row[8]) if row[8] else {}
    if kind == "resource_ref":
        version_id = version_id_of_ref(name)
        version = survey.versions.get(version_id) if version_id is not None else None
        if version is None:
            return None
        declared = extra.get("declared_kind") if isinstance(extra, dict) else None
        target_kind = version.kind or (declared if isinstance(declared, str) else None)
    else:
        key_hash = value or normalize_hash(name[len(HASH_NAME_PREFIX) :])
        matched = survey.hashes.get(key_hash)
        version = survey.versions.get(matched) if matched is not None else None
        if version is None:
            return None
        target_kind = kind
    if not target_kind or target_kind == "resource_ref" or not version.resource_name:
        return None
    return target_kind, version


def _civitai_details(version: ModelVersion) -> dict[str, Any]:
    details = {
        "version_id": version.version_id if version.version_id > 0 else None,
        "model_id": version.model_id,
        "model_name": version.model_name,
        "version_name": version.version_name,
        "base_model": version.base_model,
    }
    return {key: value for key, value in details.items() if value is not None}


def _rewrite_row(
    conn: sqlite3.Connection, row: tuple[Any, ...], kind: str, version: ModelVersion
) -> bool:
    """Replace one reference row; True when it merged into a row the image already had."""
    image_id, old_kind, old_name = row[0], row[1], row[2]
    name = version.resource_name
    assert name is not None
    existing = conn.execute(
        f"SELECT {_COLUMNS} FROM resources WHERE image_id = ? AND kind = ? AND lower(name) = ?"
        " AND NOT (kind = ? AND name = ?)",
        (image_id, kind, name.lower(), old_kind, old_name),
    ).fetchone()
    details = _civitai_details(version)
    if existing is None:
        extra = orjson.loads(row[8]) if row[8] else {}
        extra["resolved_from"] = [old_name]
        extra["resolved"] = details
        conn.execute(
            "UPDATE resources SET kind = ?, name = ?, extra_json = ?"
            " WHERE image_id = ? AND kind = ? AND name = ?",
            (kind, name, _dumps(extra), image_id, old_kind, old_name),
        )
        return False
    extra = orjson.loads(existing[8]) if existing[8] else {}
    resolved_from = extra.setdefault("resolved_from", [])
    if old_name not in resolved_from:
        resolved_from.append(old_name)
    extra.setdefault("resolved", details)
    sources = [part for part in (existing[7] or "").split(", ") if part]
    for part in (row[7] or "").split(", "):
        if part and part not in sources:
            sources.append(part)
    conn.execute(
        "UPDATE resources SET weight = COALESCE(weight, ?), weight_clip = COALESCE(weight_clip, ?),"
        " hash = COALESCE(hash, ?), hash_type = COALESCE(hash_type, ?), source = ?,"
        " extra_json = ? WHERE image_id = ? AND kind = ? AND name = ?",
        (
            row[3],
            row[4],
            row[5],
            row[6],
            ", ".join(sources),
            _dumps(extra),
            existing[0],
            existing[1],
            existing[2],
        ),
    )
    conn.execute(
        "DELETE FROM resources WHERE image_id = ? AND kind = ? AND name = ?",
        (image_id, old_kind, old_name),
    )
    return True


def _rewrite(
    conn: sqlite3.Connection, survey: _Survey, result: ResolveResult, on_event: events.OnEvent
) -> None:
    on_event(events.Started("rewrite", total=result.resolvable))
    for page in _reference_pages(conn):
        changed = 0
        with db.transaction(conn):
            for row in page:
                target = _target(row, survey)
                if target is None:
                    continue
                merged = _rewrite_row(conn, row, *target)
                result.images.add(row[0])
                result.rewritten += 1
                result.merged += int(merged)
                changed += 1
        if changed:
            on_event(events.Progress("rewrite", advance=changed))
    on_event(events.Finished("rewrite"))


# --- the pipeline ----------------------------------------------------------------------------


def run(
    conn: sqlite3.Connection,
    settings: Settings,
    *,
    maps: Sequence[Path] = (),
    exports: Sequence[Path] = (),
    rewrite: bool = False,
    online: bool = False,
    transport: httpx.BaseTransport | None = None,
    on_event: events.OnEvent = events.ignore,
) -> ResolveResult:
    """Import ``maps`` and ``exports``, look up the rest on Civitai when ``online``, and
    rewrite resolved references when ``rewrite``. ``transport`` replaces the network (tests)."""
    started = time.perf_counter()
    result = ResolveResult()
    for path in maps:
        versions, problems = load_map(path)
        with db.transaction(conn):
            result.imported_from_maps += store_versions(conn, versions, f"map:{path.name}")
        result.map_problems.extend(problems)
        for problem in problems[:20]:
            on_event(events.Log(f"skipped {problem}", level="warning"))
    for path in exports:
        versions = load_export(path)
        if not versions:
            on_event(events.Log(f"{path}: no Civitai model versions found", level="warning"))
        with db.transaction(conn):
            result.imported_from_exports += store_versions(conn, versions, f"export:{path.name}")
    survey = _survey(conn)
    if online:
        _lookup_online(conn, survey, settings, transport, result, on_event)
        survey = _survey(conn)
    result.version_refs = sum(survey.version_rows.values())
    result.hash_refs = sum(survey.hash_rows.values())
    result.resolvable = sum(
        count for vid, count in survey.version_rows.items() if vid in survey.versions
    ) + sum(count for (key, _), count in survey.hash_rows.items() if key in survey.hashes)
    result.unresolved_versions = sorted(v for v in survey.version_rows if v not in survey.versions)
    result.unresolved_hashes = sorted({k for k, _ in survey.hash_rows if k not in survey.hashes})
    if rewrite and result.resolvable:
        _rewrite(conn, survey, result, on_event)
    result.seconds = time.perf_counter() - started
    return result


def apply_mappings(
    conn: sqlite3.Connection, *, on_event: events.OnEvent = events.ignore
) -> ResolveResult:
    """Rewrite references with the mappings already stored (the resolve step of ``aimeta all``;
    nothing changes when there are none)."""
    if conn.execute("SELECT 1 FROM model_versions LIMIT 1").fetchone() is None:
        # No mapping can resolve anything: skip the survey, whose look-up of rows known only
        # by a hash reads the whole resources table (bench/make_corpus.py's 100,000 files,
        # 121,000 resource rows: 0.02 s every run).
        return ResolveResult()
    return run(conn, Settings(), rewrite=True, on_event=on_event)
