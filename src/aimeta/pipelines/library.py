"""The library's queries: pages of images in a chosen order, one image in full, facets.

Filters are those of ``aimeta search`` (:func:`aimeta.pipelines.search.search_sql` makes the
set of matching ids) plus a folder prefix and whether an image is rated. Pages use keyset
pagination: the cursor holds the sort key and id of the last image shown, so page 50 reads
the same number of rows as page 1 instead of skipping 4,900 with OFFSET.

AI ratings are matched to images only through :data:`AI_RATING_OF_IMAGE` (used by
every query here and by :func:`ai_ratings`): they are keyed by path today, and a change of
that key is one edit here.
"""

from __future__ import annotations

import base64
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import orjson

from aimeta import db
from aimeta.errors import UsageError
from aimeta.pipelines import insight_sql, wildcards
from aimeta.pipelines.search import SearchQuery, search_sql

SORTS = ("newest", "oldest", "rating", "path", "random")
RATED = ("any", "ai", "user", "none")
MAX_LIMIT = 500
PROMPT_PREVIEW_CHARS = 160
# Counting stops here: beyond it the answer says "more than" (total_exact false).
COUNT_CAP = 200_000
# Facets are counted over at most this many matching images (the first by id).
FACET_SAMPLE = 2_500
FACET_TOP = 15
# How an AI rating ``r`` belongs to image ``i``: the one place that knows how they join (the
# three forms below change together).
AI_RATING_OF_IMAGE = "r.path = i.path"
# Images with an AI rating matching {condition}, as a condition on ``i`` that reads the
# ratings first (by idx_ratings_overall), then the images by path.
_AI_RATED_WHERE = "i.path IN (SELECT r.path FROM ratings r WHERE {condition})"
# The best AI rating of every rated image, to join on ``b.path = i.path``.
_BEST_BY_IMAGE = "(SELECT r.path AS path, MAX(r.overall) AS best FROM ratings r GROUP BY r.path)"
_BEST_AI = f"(SELECT MAX(r.overall) FROM ratings r WHERE {AI_RATING_OF_IMAGE})"
# A seeded shuffle in SQL arithmetic (no Python function per row): multiply by a seed-chosen
# factor modulo a prime below 2^31, mix the high bits into the low ones, multiply again. The
# products stay below 2^62 (no overflow to REAL). The middle step matters since migration 8
# numbers images 1, 2, 3...: a product alone keeps small ids in order until it wraps around
# the prime. SQLite has no XOR: a ^ b = (a | b) - (a & b).
_PRIME = 2147483629
_SCRAMBLED = f"(((i.id % {_PRIME}) * (1000003 + :seed % 1073741789) + :seed) % {_PRIME})"
_MIXED = f"(({_SCRAMBLED} | ({_SCRAMBLED} >> 16)) - ({_SCRAMBLED} & ({_SCRAMBLED} >> 16)))"
_RANDOM_KEY = f"(({_MIXED} * 1597334677 + :seed) % {_PRIME})"
# sort name -> (key expression, descending)
_SORT_KEYS: dict[str, tuple[str, bool]] = {
    "newest": ("i.mtime_ns", True),
    "oldest": ("i.mtime_ns", False),
    "path": ("i.path", False),
    "rating": ("COALESCE(u.stars, b.best, -1)", True),
    "random": (_RANDOM_KEY, False),
}


@dataclass(frozen=True)
class LibraryQuery:
    """One request for a page: ``search`` filters (its limit is ignored), ``folder`` a path
    prefix, ``rated`` one of :data:`RATED` (None: no condition), ``sort`` one of :data:`SORTS`
    (``seed`` for random), ``limit`` images a page, ``cursor`` from the previous page.
    ``not_models``/``not_loras`` exclude images made with them (the facets' alt-click).
    ``values`` (``DIMENSION:VALUE``, as insights names them) and ``has_rating`` (a rating kind
    of insights) keep the images an insights row counted."""

    search: SearchQuery = field(default_factory=SearchQuery)
    not_models: tuple[str, ...] = ()
    not_loras: tuple[str, ...] = ()
    folder: str | None = None
    rated: str | None = None
    values: tuple[str, ...] = ()
    has_rating: str | None = None
    sort: str = "newest"
    seed: int = 0
    limit: int = 100
    cursor: str | None = None


@dataclass
class Page:
    items: list[dict[str, Any]]
    next: str | None
    total: int
    total_exact: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "items": self.items,
            "next": self.next,
            "total": self.total,
            "total_exact": self.total_exact,
        }


def encode_cursor(key: Any, ident: int) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([key, ident])).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> tuple[Any, int]:
    """The (sort key, id) a cursor holds; UsageError for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key, ident = orjson.loads(raw)
    except (ValueError, TypeError) as exc:
        raise UsageError("cursor: not a cursor this server made") from exc
    if not isinstance(ident, int) or not isinstance(key, int | float | str | None):
        raise UsageError("cursor: not a cursor this server made")
    return key, ident


def _conditions(query: LibraryQuery) -> tuple[list[str], dict[str, Any]]:
    """WHERE conditions (over ``images i`` left-joined to ``user_ratings u``) and parameters."""
    conditions: list[str] = []
    params: dict[str, Any] = {"seed": query.seed}
    # The rating filters are applied here, reading the ratings first: inside search_sql's id
    # sets SQLite would scan every image and look its ratings up.
    filters = replace(query.search, min_rating=None, rating_model=None, limit=0)
    if filters != SearchQuery(limit=0):
        conditions.append(f"i.id IN ({_ids(filters, params)})")
    if query.search.min_rating is not None or query.search.rating_model:
        rating_condition = "r.overall >= :min_rating"
        params["min_rating"] = query.search.min_rating or 1
        if query.search.rating_model:
            rating_condition += " AND r.model = :rating_model"
            params["rating_model"] = query.search.rating_model
        conditions.append(_AI_RATED_WHERE.format(condition=rating_condition))
    excluded = [SearchQuery(model=name, limit=0) for name in query.not_models]
    excluded += [SearchQuery(loras=(name,), limit=0) for name in query.not_loras]
    for search in excluded:
        conditions.append(f"i.id NOT IN ({_ids(search, params)})")
    if query.folder:
        prefix = query.folder.rstrip("/\\")
        conditions.append("i.path >= :folder_lo AND i.path < :folder_hi")
        params["folder_lo"], params["folder_hi"] = prefix + "/", prefix + "0"  # "0" follows "/"
    ai_rated = f"EXISTS (SELECT 1 FROM ratings r WHERE {AI_RATING_OF_IMAGE})"
    user_rated = "u.image_id IS NOT NULL"
    rated = {
        None: None,
        "any": f"({ai_rated} OR {user_rated})",
        "ai": ai_rated,
        "user": user_rated,
        "none": f"NOT {ai_rated} AND NOT ({user_rated})",
    }
    if query.rated not in rated:
        raise UsageError(f"rated: use one of {', '.join(RATED)}")
    if rated[query.rated]:
        conditions.append(str(rated[query.rated]))
    conditions += _insight_conditions(query, params)
    return conditions, params


def _insight_conditions(query: LibraryQuery, params: dict[str, Any]) -> list[str]:
    """The images of one insights row: its values (:mod:`insight_sql`'s own expressions) and
    a rating of its kind (AI ratings by ``rating_model`` only, when it is given)."""
    conditions = []
    for index, named in enumerate(query.values):
        dimension, sep, value = named.partition(":")
        if not sep:
            raise UsageError(
                f"value: DIMENSION:VALUE (e.g. lora:add_detail @ (0.8, 1]), not {named!r}"
            )
        sql, values = insight_sql.value_ids_sql(dimension, value, f"value{index}")
        params.update(values)
        conditions.append(f"i.id IN ({sql})")
    if query.has_rating:
        conditions.append(f"i.id IN ({insight_sql.rated_ids_sql(query.has_rating)})")
        params["model"] = query.search.rating_model
    return conditions


def _ids(filters: SearchQuery, params: dict[str, Any]) -> str:
    """The SELECT of the ids matching ``filters`` (all of them), its parameters added to
    ``params`` under fresh names (search_sql numbers them with "?")."""
    sql, values = search_sql(replace(filters, limit=0))
    for value in values:
        name = f"f{len(params)}"
        sql = sql.replace("?", f":{name}", 1)
        params[name] = value
    return sql


def _from(conditions: Sequence[str], *, best: bool = False, user: bool = True) -> str:
    """FROM images ``i`` (with the user's rating ``u``, the best AI rating ``b.best`` when
    asked) WHERE ``conditions``."""
    where = " WHERE " + " AND ".join(conditions) if conditions else ""
    joins = " LEFT JOIN user_ratings u ON u.image_id = i.id" if user else ""
    if best:
        joins += f" LEFT JOIN {_BEST_BY_IMAGE} b ON b.path = i.path"
    return f" FROM images i{joins}{where}"


def page(conn: sqlite3.Connection, query: LibraryQuery) -> Page:
    """One page of images matching ``query`` in its order, the cursor of the next page (None
    after the last) and how many images match."""
    if query.sort not in _SORT_KEYS:
        raise UsageError(f"sort: use one of {', '.join(SORTS)}")
    if not 1 <= query.limit <= MAX_LIMIT:
        raise UsageError(f"limit: from 1 to {MAX_LIMIT}")
    conditions, params = _conditions(query)
    total, exact = _count(conn, conditions, params)
    key, descending = _SORT_KEYS[query.sort]
    page_conditions = list(conditions)
    if query.sort in _INDEXED_SORTS and _dense(conn, total, conditions):
        # Most images match: walking the sort's index and testing each image stops after a
        # page, where reading every match first would sort tens of thousands of them.
        page_conditions = [c.replace("i.id IN (", "+i.id IN (", 1) for c in page_conditions]
    elif _fewer_rated(conn, conditions, params):
        # Fewer images carry a matching AI rating than match the other filters: read those
        # first (without statistics SQLite would walk the other filters' images).
        page_conditions = [c.replace("i.id IN (", "+i.id IN (", 1) for c in page_conditions]
    if query.cursor:
        params["after_key"], params["after_id"] = decode_cursor(query.cursor)
        compare = "<" if descending else ">"
        page_conditions.append(f"({key}, i.id) {compare} (:after_key, :after_id)")
    direction = "DESC" if descending else "ASC"
    sql = (
        f"SELECT i.id, {key}{_from(page_conditions, best=query.sort == 'rating')}"
        f" ORDER BY {key} {direction}, i.id {direction} LIMIT :limit"
    )
    params["limit"] = query.limit + 1
    rows = _run(conn, sql, params)
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    items = summaries(conn, [row[0] for row in rows])
    cursor = encode_cursor(rows[-1][1], rows[-1][0]) if more and rows else None
    return Page(items, cursor, total, exact)


_INDEXED_SORTS = ("newest", "oldest", "path")
# A filter keeping at least 1 image in this many counts as dense (see page()).
_DENSE_ONE_IN = 20


def _dense(conn: sqlite3.Connection, total: int, conditions: Sequence[str]) -> bool:
    if not any(c.startswith("i.id IN (") for c in conditions):
        return False
    images = int(conn.execute("SELECT count(*) FROM images").fetchone()[0])
    return total * _DENSE_ONE_IN >= images


def _fewer_rated(
    conn: sqlite3.Connection, conditions: Sequence[str], params: dict[str, Any]
) -> bool:
    """True when a filter on AI ratings keeps fewer images than the search filters do."""
    ids = next((c for c in conditions if c.startswith("i.id IN (")), None)
    rated = next((c for c in conditions if c.startswith("i.path IN (SELECT r.path")), None)
    if ids is None or rated is None:
        return False
    ids_sql = ids.removeprefix("i.id IN (").removesuffix(")")
    rated_sql = rated.removeprefix("i.path IN (").removesuffix(")")
    counts = [
        conn.execute(f"SELECT count(*) FROM ({sql} LIMIT {COUNT_CAP})", params).fetchone()[0]
        for sql in (ids_sql, rated_sql)
    ]
    return bool(counts[1] < counts[0])


def _run(conn: sqlite3.Connection, sql: str, params: dict[str, Any]) -> list[Any]:
    try:
        return conn.execute(sql, params).fetchall()
    except sqlite3.OperationalError as exc:
        raise UsageError(f"the query could not run: {exc}") from exc


def _count(
    conn: sqlite3.Connection, conditions: Sequence[str], params: dict[str, Any]
) -> tuple[int, bool]:
    if len(conditions) == 1 and conditions[0].startswith("i.id IN ("):
        # Only the filters of aimeta search: count their ids without reading each image.
        counted = conditions[0].removeprefix("i.id IN (").removesuffix(")")
    else:
        user = any("u." in condition for condition in conditions)
        counted = f"SELECT 1{_from(conditions, user=user)}"
    sql = f"SELECT count(*) FROM ({counted} LIMIT {COUNT_CAP + 1})"
    total = int(_run(conn, sql, params)[0][0])
    return min(total, COUNT_CAP), total <= COUNT_CAP


_SUMMARY = f"""
SELECT i.id, i.path, i.generator, i.width, i.height,
    (SELECT value FROM kv WHERE image_id = i.id AND key = 'prompt'),
    COALESCE(
        (SELECT name FROM resources WHERE image_id = i.id AND kind = 'checkpoint'
         ORDER BY name LIMIT 1),
        (SELECT value FROM kv WHERE image_id = i.id AND key = 'model')),
    {_BEST_AI}, u.stars, u.pick, u.label, c.group_id, c.rank, c.stars, c.decision
FROM images i LEFT JOIN user_ratings u ON u.image_id = i.id
    LEFT JOIN cull_decisions c ON c.image_id = i.id
WHERE i.id IN (SELECT value FROM json_each(:ids))
"""


def summaries(conn: sqlite3.Connection, ids: Sequence[int]) -> list[dict[str, Any]]:
    """The grid's fields of each image of ``ids``, in that order (ids as text: JavaScript
    numbers hold 53 bits, image ids 63)."""
    found = {}
    for row in conn.execute(_SUMMARY, {"ids": orjson.dumps(list(ids)).decode("ascii")}):
        ident, path, generator, width, height, prompt, model, best, stars, pick, label = row[:11]
        if prompt and len(prompt) > PROMPT_PREVIEW_CHARS:
            prompt = prompt[: PROMPT_PREVIEW_CHARS - 1].rstrip() + "…"
        found[ident] = {
            "id": str(ident),
            "path": path,
            "generator": generator,
            "width": width,
            "height": height,
            "prompt": prompt,
            "model": model,
            "rating": {"ai": best, "user": _user(stars, pick, label)},
            "cull": _cull(*row[11:]),
            "thumb": f"/api/images/{ident}/thumb?size=256",
        }
    return [found[ident] for ident in ids if ident in found]


def _user(stars: int | None, pick: int | None, label: str | None) -> dict[str, Any] | None:
    if stars is None and not pick and label is None:
        return None
    return {"stars": stars, "pick": pick == 1, "reject": pick == -1, "label": label}


def _cull(
    group: int | None, rank: int | None, stars: int | None, decision: str | None
) -> dict[str, Any] | None:
    """What `aimeta cull` decided for an image (None: not culled); the group id as text, as
    image ids (JavaScript numbers hold 53 bits)."""
    if decision is None:
        return None
    named = None if group is None else str(group)
    return {"group": named, "rank": rank, "stars": stars, "decision": decision}


def ai_ratings(conn: sqlite3.Connection, ident: int) -> list[dict[str, Any]]:
    """Every AI rating of image ``ident``: model, overall, scores, keywords, when."""
    rows = conn.execute(
        f"SELECT r.model, r.overall, r.scores_json, r.keywords_json, r.rated_at FROM images i"
        f" JOIN ratings r ON {AI_RATING_OF_IMAGE} WHERE i.id = ? ORDER BY r.model",
        (ident,),
    ).fetchall()
    return [
        {
            "model": model,
            "overall": overall,
            "scores": orjson.loads(scores or "{}"),
            "keywords": orjson.loads(keywords or "[]"),
            "rated_at": rated_at,
        }
        for model, overall, scores, keywords, rated_at in rows
    ]


def detail(conn: sqlite3.Connection, ident: int, *, raw: bool = False) -> dict[str, Any] | None:
    """Everything stored about image ``ident`` (None: no such image)."""
    row = conn.execute(
        "SELECT id, path, key, generator, width, height, size, mtime_ns, ext, reader,"
        f" {db.RAW_COLUMNS} FROM images WHERE id = ?",
        (ident,),
    ).fetchone()
    if row is None:
        return None
    parameters = dict(conn.execute("SELECT key, value FROM kv WHERE image_id = ?", (ident,)))
    tokens: dict[str, list[dict[str, Any]]] = {"pos": [], "neg": []}
    for side, t_raw, t_norm, weight in conn.execute(
        "SELECT side, t_raw, t_norm, weight FROM tokens WHERE image_id = ? ORDER BY side, position",
        (ident,),
    ):
        tokens[side].append({"raw": t_raw, "norm": t_norm, "weight": weight})
    resources = [
        {"kind": kind, "name": name, "weight": weight, "hash": hash_, "civitai_name": civitai}
        for kind, name, weight, hash_, civitai in conn.execute(
            "SELECT kind, name, weight, hash, COALESCE(json_extract(extra_json, '$.model_name'),"
            " (SELECT v.model_name FROM model_hashes h JOIN model_versions v USING (version_id)"
            " WHERE h.hash = lower(r.hash) LIMIT 1)) FROM resources r WHERE image_id = ?"
            " ORDER BY kind, name",
            (ident,),
        )
    ]
    user = conn.execute(
        "SELECT stars, pick, label, updated_at FROM user_ratings WHERE image_id = ?", (ident,)
    ).fetchone()
    cull = conn.execute(
        "SELECT group_id, rank, stars, decision FROM cull_decisions WHERE image_id = ?", (ident,)
    ).fetchone()
    errors = [
        {"stage": stage, "reason": reason}
        for stage, reason in conn.execute(
            "SELECT stage, reason FROM errors WHERE path = ?", (row[1],)
        )
    ]
    info: dict[str, Any] = {
        "id": str(row[0]),
        "path": row[1],
        "key": row[2],
        "generator": row[3],
        "width": row[4],
        "height": row[5],
        "size": row[6],
        "mtime_ns": row[7],
        "ext": row[8],
        "reader": row[9],
        "prompt": parameters.pop("prompt", None),
        "negative_prompt": parameters.pop("negative_prompt", None),
        "parameters": parameters,
        "tokens": tokens,
        "resources": resources,
        "ai_ratings": ai_ratings(conn, ident),
        "user_rating": {**(_user(*user[:3]) or {}), "updated_at": user[3]} if user else None,
        "cull": _cull(*cull) if cull else None,
        "errors": errors,
        "file": f"/api/images/{ident}/file",
        "thumb": f"/api/images/{ident}/thumb?size=512",
    }
    if raw:
        info["raw"] = db.raw_fields(row[10], row[11])
    return info


# A large match's sample: the matches whose scrambled id is a multiple of ``every``, chosen
# so that about FACET_SAMPLE pass. Since migration 8 ids count up in the order images were
# stored, so the first 2,500 matches by id would be the oldest only (before, ids were hashes:
# any 2,500 were a fair sample). Multiplying by a constant modulo a prime spreads consecutive
# ids evenly over the residues, so every range of the library gives its share. One filtered
# pass over the matches (ordering them all by the scrambled id instead costs a sort: 1,000,000
# images, 270 -> 530 ms a call unfiltered, 306 -> 754 ms with a common token).
def _sampled(column: str) -> str:
    """The condition that keeps ``column``'s ids whose scrambled value is a multiple of
    ``:every``."""
    return f"(({column} % {_PRIME}) * 1597334677 % {_PRIME}) % :every = 0"


def _facet_sample(conn: sqlite3.Connection, query: LibraryQuery) -> tuple[list[int], bool]:
    """Every match's id when there are at most :data:`FACET_SAMPLE`, else about that many
    spread over the library (at most that many); whether sampled."""
    conditions, params = _conditions(query)
    user = any("u." in condition for condition in conditions)
    matches = _from(conditions, user=user)
    first = f"SELECT i.id{matches} ORDER BY i.id LIMIT {FACET_SAMPLE + 1}"
    ids = [row[0] for row in _run(conn, first, params)]
    if len(ids) <= FACET_SAMPLE:
        return ids, False
    last = _run(conn, f"SELECT i.id{matches} ORDER BY i.id DESC LIMIT 1", params)[0][0]
    # The first matches span this share of the matches' ids: about as many matches in all
    # as they are, divided by it (exact for evenly spread matches).
    share = (ids[-1] - ids[0] + 1) / (last - ids[0] + 1)
    every = max(1, int(len(ids) / share / FACET_SAMPLE))
    spread = f"SELECT i.id{_from([*conditions, _sampled('i.id')], user=user)}"
    if len(conditions) == 1 and conditions[0].startswith("i.id IN ("):
        # Only the filters of aimeta search: their ids without a look-up of each image
        # (258,725 matches of 1,000,000: 307 -> 16 ms), as _count does.
        found = conditions[0].removeprefix("i.id IN (").removesuffix(")")
        spread = f"WITH f(i) AS ({found}) SELECT i FROM f WHERE {_sampled('i')}"
    for retry in range(4):
        picked = [row[0] for row in _run(conn, spread, params | {"every": every})]
        if every == 1 or len(picked) >= FACET_SAMPLE // 2:
            break
        # The matches bunch together: fewer passed than estimated. Twice more at an eighth,
        # then every match (thinned below).
        every = max(1, every // 8) if retry < 2 else 1
    if len(picked) > FACET_SAMPLE:  # more passed than estimated: every n-th of them
        picked.sort()
        step = len(picked) / FACET_SAMPLE
        picked = [picked[int(n * step)] for n in range(FACET_SAMPLE)]
    return picked, True


def facets(conn: sqlite3.Connection, query: LibraryQuery) -> dict[str, Any]:
    """The most common values among the images matching ``query``, with counts: counted over
    every match, or when there are more than :data:`FACET_SAMPLE`, over that many spread over
    the library (``sampled`` says so)."""
    ids, sampled = _facet_sample(conn, query)
    id_json = orjson.dumps(ids).decode("ascii")
    members = "(SELECT value FROM json_each(:ids))"

    def top(sql: str) -> list[dict[str, Any]]:
        sql = f"{_MEMBERS} {sql} ORDER BY 2 DESC, 1 LIMIT {FACET_TOP}"
        rows = conn.execute(sql, {"ids": id_json})
        return [{"value": value, "count": count} for value, count in rows]

    histogram = conn.execute(
        f"SELECT stars, count(*) FROM (SELECT COALESCE(u.stars, {_BEST_AI}) AS stars FROM"
        f" images i LEFT JOIN user_ratings u ON u.image_id = i.id WHERE i.id IN {members})"
        " GROUP BY stars ORDER BY stars",
        {"ids": id_json},
    ).fetchall()
    return {
        "images": len(ids),
        "sampled": sampled,
        "generators": top(
            f"SELECT generator, count(*) FROM images WHERE id IN {members} GROUP BY 1"
        ),
        "checkpoints": top(_resource_facet("checkpoint")),
        "loras": top(_resource_facet("lora")),
        "samplers": top(
            "SELECT kv.value, count(*) FROM m CROSS JOIN kv ON kv.image_id = m.id"
            f" WHERE kv.key = 'sampler' AND {db.PARAMETER_ROWS} GROUP BY 1"
        ),
        "tokens": top(
            "SELECT t.t_norm, count(DISTINCT t.image_id) FROM m CROSS JOIN tokens t"
            " ON t.image_id = m.id WHERE t.side = 'pos' GROUP BY 1"
        ),
        "ratings": [{"value": stars, "count": count} for stars, count in histogram],
    }


# The sampled images, for the facets that read other tables: each image's rows are looked up
# by the primary key, which starts with image_id (CROSS JOIN keeps that order). Left to
# itself the planner read every row of the kind through idx_resources_kind_name or
# idx_kv_key_value and tested each for membership: O(library) (1,000,000 images: the LoRA
# facet 163 -> 7 ms).
_MEMBERS = "WITH m(id) AS (SELECT value FROM json_each(:ids))"


def _resource_facet(kind: str) -> str:
    return (
        "SELECT r.name, count(DISTINCT r.image_id) FROM m CROSS JOIN resources r"
        f" ON r.image_id = m.id WHERE r.kind = '{kind}' GROUP BY 1"
    )


def set_user_rating(
    conn: sqlite3.Connection,
    ident: int,
    *,
    stars: int | None = None,
    pick: int | None = None,
) -> dict[str, Any]:
    """Store the user's stars and/or pick (1), reject (-1) or neither (0) for image ``ident``;
    setting stars lifts a reject (the sidecar's -1 is replaced by the stars). Returns the
    stored row as the API shows it. The label follows the pick: Green for a pick, Red for a
    reject, none otherwise."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    old = conn.execute(
        "SELECT stars, pick FROM user_ratings WHERE image_id = ?", (ident,)
    ).fetchone()
    new_stars = stars if stars is not None else (old[0] if old else None)
    new_pick = pick if pick is not None else (old[1] if old else 0)
    if stars is not None and new_pick == -1 and pick is None:
        new_pick = 0
    label = {1: "green", -1: "red"}.get(new_pick)
    conn.execute(
        "INSERT INTO user_ratings (image_id, stars, pick, label, updated_at) VALUES (?,?,?,?,?)"
        " ON CONFLICT (image_id) DO UPDATE SET stars = excluded.stars, pick = excluded.pick,"
        " label = excluded.label, updated_at = excluded.updated_at",
        (ident, new_stars, new_pick, label, now),
    )
    return {**(_user(new_stars, new_pick, label) or {}), "updated_at": now}


def image_count(conn: sqlite3.Connection) -> int:
    """How many images the database holds: what the page polls to notice new ones (SQLite
    counts the entries of the smallest index, a few milliseconds at 100,000 images)."""
    return int(conn.execute("SELECT count(*) FROM images").fetchone()[0])


# What a selection exports: its files, or a wildcard list of its prompts or prompt tokens.
EXPORTS = ("paths", "prompts", "tokens")
_EXPORT_SQL = {
    "paths": "SELECT path, 1 FROM images WHERE id IN {members} ORDER BY path",
    "prompts": "SELECT value, count(*) FROM kv WHERE key = 'prompt' AND image_id IN {members}"
    " GROUP BY value",
    "tokens": "SELECT t_norm, count(DISTINCT image_id) FROM tokens WHERE side = 'pos' AND"
    " image_id IN {members} GROUP BY t_norm",
}


def selection_ids(conn: sqlite3.Connection, query: LibraryQuery) -> list[int]:
    """Every image matching ``query``'s filters (at most :data:`COUNT_CAP`): "select all
    matching"."""
    sql, params = matching_sql(query)
    return [row[0] for row in _run(conn, f"{sql} LIMIT {COUNT_CAP}", params)]


def matching_sql(query: LibraryQuery) -> tuple[str, dict[str, Any]]:
    """A SELECT of the ids of every image matching ``query``'s filters, and its parameters
    (the selection of the page's insights)."""
    conditions, params = _conditions(query)
    user = any("u." in condition for condition in conditions)
    return f"SELECT i.id{_from(conditions, user=user)}", params


def filtered(query: LibraryQuery) -> bool:
    """True when ``query`` has any filter (sort, page and cursor are none)."""
    bare = replace(query, search=replace(query.search, limit=0), sort="newest", seed=0,
                   limit=100, cursor=None)  # fmt: skip
    return bare != LibraryQuery(search=SearchQuery(limit=0))


def export_lines(conn: sqlite3.Connection, ids: Sequence[int], what: str) -> list[str]:
    """The lines of an export of images ``ids``: their paths (sorted), or their distinct
    prompts or positive tokens, most frequent first (the order of `aimeta wildcards`)."""
    if what not in EXPORTS:
        raise UsageError(f"export: use one of {', '.join(EXPORTS)}")
    sql = _EXPORT_SQL[what].format(members="(SELECT value FROM json_each(:ids))")
    rows = conn.execute(sql, {"ids": orjson.dumps(list(ids)).decode("ascii")})
    if what == "paths":
        return [path for path, _ in rows]
    return [line.text for line in wildcards.finish(rows, wildcards.LineFilter())]
