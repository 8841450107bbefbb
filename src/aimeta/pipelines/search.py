"""Find images by what made them: prompt tokens, prompt text, models, LoRAs, sampler, seed, rating.

Every filter becomes one SELECT of image ids over an index range; the filters are combined
with INTERSECT/EXCEPT (see :func:`search_sql`), so "has token X but not negative token Y"
merges two index ranges instead of scanning the tokens table. Details (path, model, prompt,
...) are fetched only for the ids kept.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from aimeta.db import PARAMETER_ROWS
from aimeta.errors import UsageError
from aimeta.metadata.resources import normalize_name
from aimeta.metadata.tokens import normalize_text, tokenize

_FTS_TERM = re.compile(r'"([^"]*)"|(\S+)')


@dataclass(frozen=True)
class SearchQuery:
    """The filters of one search; all given filters must match.

    Token filters compare with ``t_norm`` (see :func:`normalize_token`). ``model``, ``loras``
    and ``resources`` (``KIND:NAME``) compare names case-insensitively after dropping folders
    and file extensions; a name containing ``*`` or ``%`` is a pattern (``*``/``%`` match any
    text). ``limit`` 0 means no limit.
    """

    tokens: tuple[str, ...] = ()
    not_tokens: tuple[str, ...] = ()
    neg_tokens: tuple[str, ...] = ()
    not_neg_tokens: tuple[str, ...] = ()
    text: str | None = None
    model: str | None = None
    loras: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    sampler: str | None = None
    seed: str | None = None
    generator: str | None = None
    min_rating: int | None = None
    rating_model: str | None = None
    limit: int = 50


@dataclass
class SearchHit:
    """One matching image with the fields people look at first."""

    id: int
    path: str
    generator: str
    model: str | None
    sampler: str | None
    seed: str | None
    best_rating: int | None
    prompt: str | None
    negative_prompt: str | None
    loras: list[dict[str, Any]] = field(default_factory=list)
    # `aimeta cull`'s decision: group (id), rank, stars, decision; None when not culled
    cull: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``--json`` (the id as text: it is a 63-bit number)."""
        data = asdict(self)
        data["id"] = str(self.id)
        return data


def normalize_token(text: str) -> str:
    """A search argument in ``t_norm`` form, made by the tokenizer that made ``t_norm``:
    ``(Red_Hair:1.2)`` -> ``red hair``. Text the tokenizer splits in several tokens (``a, b``)
    is only lower-cased, with ``_`` as space and whitespace collapsed."""
    tokens = tokenize(text)
    if len(tokens) == 1:
        return tokens[0].t_norm
    return normalize_text(text)


def fts_query(text: str) -> str:
    """Turn user words into a safe FTS5 query over the positive prompt.

    Every word must appear; ``"two words"`` is a phrase, a trailing ``*`` a prefix. Each term
    is quoted, so FTS5 syntax characters in the input are plain text, never an error.
    """
    terms = []
    for match in _FTS_TERM.finditer(text):
        phrase, word = match.groups()
        if phrase is not None:
            if any(ch.isalnum() for ch in phrase):
                terms.append('"' + phrase.replace('"', '""') + '"')
            continue
        prefix = len(word) > 1 and word.endswith("*")
        core = word.rstrip("*") if prefix else word
        # Words of punctuation only (",", "(") would become empty phrases, which match nothing.
        if any(ch.isalnum() for ch in core):
            terms.append('"' + core.replace('"', '""') + '"' + ("*" if prefix else ""))
    if not terms:
        raise UsageError(f"--text {text!r} has no words to search for")
    return "prompt : (" + " AND ".join(terms) + ")"


def _name_condition(column: str, name: str) -> tuple[str, str]:
    """``column = ?`` (case-insensitive) for a plain name, ``LIKE`` for a ``*``/``%`` pattern."""
    if "*" in name or "%" in name:
        pattern = name.replace("\\", "\\\\").replace("_", "\\_").replace("*", "%")
        return f"{column} LIKE ? ESCAPE '\\'", pattern
    return f"{column} = ? COLLATE NOCASE", name


def _resource_ids(kind: str, name: str) -> tuple[str, list[Any]]:
    condition, value = _name_condition("name", normalize_name(name) or name)
    return f"SELECT image_id FROM resources WHERE kind = ? AND {condition}", [kind, value]


def _split_resource(spec: str) -> tuple[str, str]:
    kind, sep, name = spec.partition(":")
    if not sep or not kind.strip() or not name.strip():
        raise UsageError(f"--resource takes KIND:NAME (e.g. lora:add_detail), not {spec!r}")
    return kind.strip().lower(), name.strip()


def _id_sets(query: SearchQuery) -> tuple[list[tuple[str, list[Any]]], list[tuple[str, list[Any]]]]:
    """One SELECT of image ids per filter: those an image must be in, those it must not."""
    include: list[tuple[str, list[Any]]] = []
    exclude: list[tuple[str, list[Any]]] = []
    token_filters = (
        (query.tokens, "pos", include),
        (query.neg_tokens, "neg", include),
        (query.not_tokens, "pos", exclude),
        (query.not_neg_tokens, "neg", exclude),
    )
    for values, side, target in token_filters:
        for value in values:
            token = normalize_token(value)
            if not token:
                raise UsageError(f"empty token {value!r}")
            target.append(
                (
                    # The compact table itself (migration 5): its index on (norm_id, side,
                    # image_id) yields ids in order, which the compound SELECT merges.
                    "SELECT image_id FROM token_rows WHERE side = ?"
                    " AND norm_id = (SELECT id FROM token_texts WHERE text = ?)",
                    [side, token],
                )
            )
    if query.text is not None:
        include.append(
            ("SELECT rowid FROM prompts_fts WHERE prompts_fts MATCH ?", [fts_query(query.text)])
        )
    if query.model:
        resource_sql, resource_params = _resource_ids("checkpoint", query.model)
        kv_condition, kv_value = _name_condition("value", query.model.strip())
        include.append(
            (
                f"SELECT image_id FROM ({resource_sql} UNION"
                f" SELECT image_id FROM kv WHERE key = 'model' AND {kv_condition})",
                [*resource_params, kv_value],
            )
        )
    include += [_resource_ids("lora", lora) for lora in query.loras]
    include += [_resource_ids(*_split_resource(spec)) for spec in query.resources]
    if query.sampler:
        include.append(
            (
                "SELECT image_id FROM kv WHERE key IN ('sampler_norm', 'sampler')"
                f" AND value = ? COLLATE NOCASE AND {PARAMETER_ROWS}",
                [query.sampler.strip()],
            )
        )
    if query.seed is not None:
        include.append(
            (
                f"SELECT image_id FROM kv WHERE key = 'seed' AND value = ? AND {PARAMETER_ROWS}",
                [query.seed.strip()],
            )
        )
    if query.generator:
        include.append(
            ("SELECT id FROM images WHERE generator = ?", [query.generator.strip().lower()])
        )
    if query.min_rating is not None or query.rating_model:
        rating_sql = (
            "SELECT i.id FROM ratings r JOIN images i ON i.path = r.path WHERE r.overall >= ?"
        )
        rating_params: list[Any] = [query.min_rating or 1]
        if query.rating_model:
            rating_sql += " AND r.model = ?"
            rating_params.append(query.rating_model)
        include.append((rating_sql, rating_params))
    return include, exclude


def search_sql(query: SearchQuery) -> tuple[str, list[Any]]:
    """The statement selecting the ids of matching images, and its parameters.

    The filters form one compound SELECT (INTERSECT for what must match, EXCEPT for what must
    not) ordered by image id. Each part reads an index range that is already in id order, so
    SQLite merges the parts as streams and stops after ``limit`` ids instead of collecting
    every match: a common token costs as little as a rare one.
    """
    include, exclude = _id_sets(query)
    if not include:
        include = [("SELECT id FROM images", [])]
    parts = [sql for sql, _ in include]
    if len(parts) == 1 and not exclude:
        # INTERSECT/EXCEPT return each id once; a lone SELECT must say so (an image may
        # carry a token twice, or match a pattern with two LoRAs).
        parts[0] = "SELECT DISTINCT" + parts[0].removeprefix("SELECT")
    sql = " INTERSECT ".join(parts) + "".join(f" EXCEPT {sql}" for sql, _ in exclude)
    params = [value for _, part_params in include + exclude for value in part_params]
    sql += " ORDER BY 1"
    if query.limit:
        sql += " LIMIT ?"
        params.append(query.limit)
    return sql, params


_DETAILS = """
SELECT i.id, i.path, i.generator,
    COALESCE(
        (SELECT name FROM resources WHERE image_id = i.id AND kind = 'checkpoint'
         ORDER BY name LIMIT 1),
        (SELECT value FROM kv WHERE image_id = i.id AND key = 'model')),
    COALESCE(
        (SELECT value FROM kv WHERE image_id = i.id AND key = 'sampler_norm'),
        (SELECT value FROM kv WHERE image_id = i.id AND key = 'sampler')),
    (SELECT value FROM kv WHERE image_id = i.id AND key = 'seed'),
    (SELECT MAX(overall) FROM ratings WHERE path = i.path
        AND (:rating_model IS NULL OR model = :rating_model)),
    (SELECT value FROM kv WHERE image_id = i.id AND key = 'prompt'),
    (SELECT value FROM kv WHERE image_id = i.id AND key = 'negative_prompt'),
    (SELECT json_group_array(json_object('name', name, 'weight', weight))
     FROM (SELECT name, weight FROM resources WHERE image_id = i.id AND kind = 'lora'
           ORDER BY name)),
    {cull}
FROM images i WHERE i.id IN (SELECT value FROM json_each(:ids))
"""
_CULL = """(SELECT json_object('group', CAST(group_id AS TEXT), 'rank', rank, 'stars', stars,
    'decision', decision) FROM cull_decisions WHERE image_id = i.id)"""
_DETAIL_BATCH = 500


def search(conn: sqlite3.Connection, query: SearchQuery) -> list[SearchHit]:
    """Images matching every filter of ``query``, sorted by path.

    With a ``limit`` the hits are the first ``limit`` matches in image-id order (a stable
    choice that does not depend on how many images match), then sorted by path. Raises
    UsageError for a filter that cannot be used (an empty token, a malformed ``--resource``,
    a database without the full-text index).
    """
    sql, params = search_sql(query)
    try:
        ids = [row[0] for row in conn.execute(sql, params)]
    except sqlite3.OperationalError as exc:
        if "prompts_fts" in str(exc):
            raise UsageError(
                "this database has no full-text index yet; open it once with a current"
                " aimeta (e.g. `aimeta ingest`) to build it"
            ) from exc
        raise UsageError(f"the search could not run: {exc}") from exc
    hits = []
    culled = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'cull_decisions'"
    ).fetchone()
    details = _DETAILS.format(cull=_CULL if culled else "NULL")
    for start in range(0, len(ids), _DETAIL_BATCH):
        batch = orjson.dumps(ids[start : start + _DETAIL_BATCH]).decode("ascii")
        for row in conn.execute(details, {"ids": batch, "rating_model": query.rating_model}):
            hits.append(
                SearchHit(
                    id=row[0],
                    path=row[1],
                    generator=row[2],
                    model=row[3],
                    sampler=row[4],
                    seed=row[5],
                    best_rating=row[6],
                    prompt=row[7],
                    negative_prompt=row[8],
                    loras=orjson.loads(row[9]) if row[9] else [],
                    cull=orjson.loads(row[10]) if row[10] else None,
                )
            )
    hits.sort(key=lambda hit: hit.path)
    return hits
