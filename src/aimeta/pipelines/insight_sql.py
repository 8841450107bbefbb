"""What ``aimeta insights`` counts, as SQL: the value of each dimension for an image, and which
images have a rating of each kind. No pandas here: the library page imports this module to
filter its grid to the images behind one insights row, with the very expressions that counted
them (a bar's count and the grid's total are the same set by construction).

A dimension's value of an image ``o.id``: its positive prompt tokens (``token``), each LoRA as
``name @ weight bin`` (``lora``), the checkpoint (the first checkpoint resource by name, else
the ``model`` parameter), the sampler (normalised, else as written), the scheduler, the binned
CFG and step count, the generator. Pairs combine a token or a LoRA name (no weight: a bin
would split pairs too thin to judge) with a LoRA name or the checkpoint.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from aimeta import db
from aimeta.errors import UsageError

RATING_KINDS = ("ai", "user", "pick", "any")
SINGLE_DIMENSIONS = ("token", "lora", "checkpoint", "sampler", "scheduler", "cfg", "steps",
                     "generator")  # fmt: skip
PAIR_DIMENSIONS = ("token+lora", "lora+checkpoint")
DIMENSIONS = SINGLE_DIMENSIONS + PAIR_DIMENSIONS
# What a pair's parts are, as filters: (first part, second part).
PAIR_PARTS = {"token+lora": ("token", "lora_name"), "lora+checkpoint": ("lora_name", "checkpoint")}
# Values a grid can be filtered by: every single dimension and a LoRA by name alone (pairs).
FILTER_DIMENSIONS = (*SINGLE_DIMENSIONS, "lora_name")

# Bin edges; each bin includes its upper edge: a LoRA at 0.8 is in (0.6, 0.8], at 0.85 in (0.8, 1].
LORA_WEIGHT_EDGES = (0.0, 0.4, 0.6, 0.8, 1.0)
CFG_EDGES = (2.0, 4.0, 6.0, 8.0, 10.0, 15.0)
STEPS_EDGES = (10.0, 20.0, 30.0, 40.0, 50.0, 80.0)


# --- ratings -----------------------------------------------------------------------------------

# AI ratings reach images through ratings.image_id (migration 3: filled on insert, kept by
# re-links); ``:model`` NULL averages every model's rating of an image.
AI_RATINGS = (
    "SELECT r.image_id, AVG(r.overall) FROM ratings r JOIN images i ON i.id = r.image_id"
    " WHERE (:model IS NULL OR r.model = :model) GROUP BY r.image_id"
)
# The user's stars; 0 stars means not rated (as in photo managers).
USER_STARS = "SELECT image_id, stars FROM user_ratings WHERE stars > 0"
# 1 for a pick, 0 for a reject: the user's (library page) and aimeta cull's decisions.
CULL_KEEPS = (
    "SELECT image_id, decision = 'pick' FROM cull_decisions WHERE decision IN ('pick', 'reject')"
)
USER_KEEPS = "SELECT image_id, pick = 1 FROM user_ratings WHERE pick <> 0"


def rated_ids_sql(kind: str) -> str:
    """A SELECT of the ids of images with a rating of ``kind`` (:data:`RATING_KINDS`), as
    :func:`aimeta.pipelines.insights.rating_frame` reads them; parameter ``:model``."""
    if kind not in RATING_KINDS:
        raise UsageError(f"rating: use one of {', '.join(RATING_KINDS)}, not {kind!r}")

    def ids(sql: str) -> str:
        return f"SELECT image_id FROM ({sql})"

    ai, user = ids(AI_RATINGS), ids(USER_STARS)
    return {
        "ai": ai,
        "user": user,
        "pick": f"{ids(USER_KEEPS)} UNION {ids(CULL_KEEPS)}",
        "any": f"{user} UNION {ai}",
    }[kind]


# --- values ------------------------------------------------------------------------------------


def bin_labels(edges: Sequence[float]) -> list[str]:
    """Labels of the bins that ``edges`` cut: ``≤ a``, ``(a, b]``, ..., ``> z``."""
    shown = [f"{edge:g}" for edge in edges]
    middle = [f"({low}, {high}]" for low, high in itertools.pairwise(shown)]
    return [f"≤ {shown[0]}", *middle, f"> {shown[-1]}"]


def bin_case(expression: str, edges: Sequence[float]) -> str:
    """A SQL CASE naming the bin of ``expression`` (NULL stays NULL)."""
    labels = bin_labels(edges)
    whens = " ".join(
        f"WHEN {expression} <= {edge!r} THEN '{label}'"
        for edge, label in zip(edges, labels, strict=False)
    )
    return f"CASE WHEN {expression} IS NULL THEN NULL {whens} ELSE '{labels[-1]}' END"


CHECKPOINT = """COALESCE(
    (SELECT name FROM resources WHERE image_id = o.id AND kind = 'checkpoint'
     ORDER BY name LIMIT 1),
    (SELECT value FROM kv WHERE image_id = o.id AND key = 'model'))"""
SAMPLER = """COALESCE(
    (SELECT value FROM kv WHERE image_id = o.id AND key = 'sampler_norm'),
    (SELECT value FROM kv WHERE image_id = o.id AND key = 'sampler'))"""


def kv_number(key: str) -> str:
    return (
        f"(SELECT CAST(value AS REAL) FROM kv WHERE image_id = o.id AND key = '{key}'"
        " AND value GLOB '*[0-9]*')"
    )


def lora_label(alias: str) -> str:
    weight = bin_case(f"{alias}.weight", LORA_WEIGHT_EDGES)
    return f"{alias}.name || ' @ ' || COALESCE({weight}, 'weight ?')"


CFG_BIN = bin_case(kv_number("cfg"), CFG_EDGES)
STEPS_BIN = bin_case(kv_number("steps"), STEPS_EDGES)
TOKEN_ID = "(SELECT id FROM token_texts WHERE text = :{name})"


def value_ids_sql(dimension: str, value: str, name: str) -> tuple[str, dict[str, Any]]:
    """A SELECT of the ids of images whose ``dimension`` (:data:`FILTER_DIMENSIONS`) has
    ``value``, and its parameters, named ``name`` and ``name`` + ``_n``.

    Each reads an index range first (the images that can have the value), then tests the
    expression the insights grouped by, so it selects exactly the images of that row."""
    params: dict[str, Any] = {name: value}
    where = f"= :{name}"
    if dimension == "token":
        sql = f"SELECT image_id FROM token_rows WHERE side = 'pos' AND norm_id = {TOKEN_ID}"
        return sql.format(name=name), params
    if dimension == "lora":
        params[name + "_n"] = value.rpartition(" @ ")[0]
        return (
            f"SELECT r.image_id FROM resources r WHERE r.kind = 'lora' AND r.name = :{name}_n"
            f" AND {lora_label('r')} {where}",
            params,
        )
    if dimension == "lora_name":
        return f"SELECT image_id FROM resources WHERE kind = 'lora' AND name {where}", params
    if dimension == "checkpoint":
        candidates = (
            f"SELECT image_id AS id FROM resources WHERE kind = 'checkpoint' AND name {where}"
            f" UNION SELECT image_id FROM kv WHERE key = 'model' AND value {where}"
            f" AND {db.PARAMETER_ROWS}"
        )
        return f"SELECT o.id FROM ({candidates}) o WHERE {CHECKPOINT} {where}", params
    if dimension == "sampler":
        candidates = (
            "SELECT image_id AS id FROM kv WHERE key IN ('sampler_norm', 'sampler')"
            f" AND value {where} AND {db.PARAMETER_ROWS}"
        )
        return f"SELECT o.id FROM ({candidates}) o WHERE {SAMPLER} {where}", params
    if dimension == "scheduler":
        return (
            f"SELECT image_id FROM kv WHERE key = 'scheduler_norm' AND value {where}"
            f" AND {db.PARAMETER_ROWS}",
            params,
        )
    if dimension in ("cfg", "steps"):
        binned = CFG_BIN if dimension == "cfg" else STEPS_BIN
        candidates = (
            f"SELECT image_id AS id FROM kv WHERE key = '{dimension}' AND {db.PARAMETER_ROWS}"
        )
        return f"SELECT o.id FROM ({candidates}) o WHERE {binned} {where}", params
    if dimension == "generator":
        return f"SELECT id FROM images WHERE generator {where}", params
    raise UsageError(f"value: use one of {', '.join(FILTER_DIMENSIONS)}, not {dimension!r}")


def row_filter(dimension: str, first: str, second: str) -> list[list[str]]:
    """The grid filters (``[dimension, value]`` pairs) selecting the images of one insights
    row of ``dimension`` whose value is ``first`` (and ``second`` for a pair)."""
    if dimension in PAIR_PARTS:
        parts = PAIR_PARTS[dimension]
        return [[parts[0], first], [parts[1], second]]
    return [[dimension, first]]


# Per dimension: rows (value, second value of a pair or '', outcome) for the rated images of
# the selection, each (image, value) once. They join `outcome` image by image, so SQLite reads
# only the index ranges of rated images, never a whole table. Grouping by the image id drops a
# token written twice in one prompt; it is cheaper than DISTINCT over whole rows. (The token
# dimension alone is counted in NumPy: see aimeta.pipelines.insights.token_sums.)
VALUE_ROWS = {
    "token": "SELECT t.norm_id AS a, '' AS b, o.y AS y FROM outcome o"
    " JOIN token_rows t ON t.image_id = o.id AND t.side = 'pos' GROUP BY a, o.id",
    "lora": f"SELECT {lora_label('r')} AS a, '' AS b, o.y AS y FROM outcome o"
    " JOIN resources r ON r.image_id = o.id AND r.kind = 'lora'",
    "checkpoint": f"SELECT {CHECKPOINT} AS a, '' AS b, o.y AS y FROM outcome o",
    "sampler": f"SELECT {SAMPLER} AS a, '' AS b, o.y AS y FROM outcome o",
    "scheduler": "SELECT kv.value AS a, '' AS b, o.y AS y FROM outcome o"
    " JOIN kv ON kv.image_id = o.id AND kv.key = 'scheduler_norm'",
    "cfg": f"SELECT {CFG_BIN} AS a, '' AS b, o.y AS y FROM outcome o",
    "steps": f"SELECT {STEPS_BIN} AS a, '' AS b, o.y AS y FROM outcome o",
    "generator": "SELECT i.generator AS a, '' AS b, o.y AS y FROM outcome o"
    " JOIN images i ON i.id = o.id",
    "token+lora": "SELECT t.norm_id AS a, r.name AS b, o.y AS y FROM outcome o"
    " JOIN resources r ON r.image_id = o.id AND r.kind = 'lora'"
    " JOIN token_rows t ON t.image_id = o.id AND t.side = 'pos' GROUP BY a, b, o.id",
    "lora+checkpoint": f"SELECT r.name AS a, {CHECKPOINT} AS b, o.y AS y FROM outcome o"
    " JOIN resources r ON r.image_id = o.id AND r.kind = 'lora'",
}

# The rated images of the selection and their outcome, from a JSON list of [id, outcome].
OUTCOME = """WITH outcome(id, y) AS MATERIALIZED (
    SELECT value ->> 0, value ->> 1 FROM json_each(:outcome))"""
GROUPED = (
    OUTCOME
    + """
SELECT {label}, b, COUNT(*), SUM(y), SUM(y * y)
FROM ({rows})
WHERE a IS NOT NULL AND a <> '' AND b IS NOT NULL
GROUP BY a, b HAVING COUNT(*) >= :min_images
"""
)
# Token dimensions group the compact layout's integer text ids (migration 5) and look each
# group's text up once: sorting a million integers instead of a million strings.
TOKEN_LABEL = "(SELECT text FROM token_texts WHERE id = a)"
LABELS = {"token": TOKEN_LABEL, "token+lora": TOKEN_LABEL}
