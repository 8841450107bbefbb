"""Which tokens, LoRAs, checkpoints and settings go with the images rated highly.

For every value of a dimension (a prompt token, a LoRA with its weight binned, a checkpoint, a
sampler, a binned CFG or step count, ...) the rated images of the selection that carry it are
compared with the whole selection: their number, their mean rating (for picks and rejects the
keep rate, picks / (picks + rejects)), ``delta`` = that mean minus the selection's mean, and an
interval of ``delta``. Rows are sorted by the interval's lower bound, so a value seen on three
lucky images does not top a value seen on three hundred good ones.

These are associations in the user's own library, not causes: a LoRA used mostly with a good
checkpoint looks good too. The counts are shown so people can judge.

**The interval is analytic (Welch's t interval), not a bootstrap.** ``delta`` compares the
value's images (n_v) with the rest of the selection (n_r, N = n_v + n_r):
``delta = mean_v - mean_all = (n_r / N) * (mean_v - mean_r)``, so its standard error is
``(n_r / N) * sqrt(s_v² / n_v + s_r² / n_r)``, with Welch-Satterthwaite degrees of freedom.
It needs only the count, sum and sum of squares of each value, which SQLite adds up in one
grouped pass (NumPy for the token dimensions: :mod:`aimeta.pipelines.insight_tokens`); pandas
then computes every interval at once. A bootstrap would resample each of
thousands of values a thousand times: minutes on 100,000 images instead of the target of a
second per dimension, for no better coverage at the sample sizes shown (``--min-images``).
Ratings are discrete (1-5 stars, 0/1 for keep), so each group's variance is pooled with two
images' worth of the selection's variance: a value whose few images all got the same rating
gets a narrow interval, never a zero-width one. The intervals are per value (no correction for
the many values compared): about 5 % of values with no real effect show an interval that
misses zero at the default 95 %.

The computation reads ratings through :func:`rating_frame` (and AI ratings through
:func:`ai_ratings` only), the selection through :func:`aimeta.pipelines.search.search_sql`,
so ``aimeta insights`` filters exactly as ``aimeta search`` does (or through a statement of
image ids: the library page's filters). The SQL of values and ratings lives in
:mod:`aimeta.pipelines.insight_sql`, which the page's grid filters use too.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from statistics import NormalDist
from typing import Any

import numpy as np
import orjson
import pandas as pd

from aimeta.errors import UsageError
from aimeta.pipelines.insight_sql import (
    AI_RATINGS,
    CULL_KEEPS,
    DIMENSIONS,
    GROUPED,
    LABELS,
    PAIR_DIMENSIONS,
    RATING_KINDS,
    SINGLE_DIMENSIONS,
    USER_KEEPS,
    USER_STARS,
    VALUE_ROWS,
    bin_labels,
)
from aimeta.pipelines.insight_tokens import token_lora_sums, token_sums
from aimeta.pipelines.search import SearchQuery, search_sql

__all__ = ["DIMENSIONS", "PAIR_DIMENSIONS", "RATING_KINDS", "SINGLE_DIMENSIONS", "bin_labels"]

COLUMNS = ["dimension", "value", "images", "mean", "delta", "delta_low", "delta_high"]
# Kept beside COLUMNS in Insights.rows: a value's parts (a pair's two; else the value and
# ''), from which the library page builds the filter of a row's images.
PARTS = ["first", "second"]

# Pooled into each group's variance, in images (see the module docstring).
_PSEUDO_IMAGES = 2.0


@dataclass(frozen=True)
class InsightQuery:
    """What to compare: dimensions, which rating, the smallest group shown, the selection.

    ``within`` holds the ``aimeta search`` filters (its ``limit`` is ignored); ``selection``,
    when given, replaces them: a SELECT of image ids and its named parameters (the library
    page's filters). ``rating_model`` keeps only AI ratings by that model tag (otherwise an
    image's AI ratings are averaged).
    """

    dimensions: tuple[str, ...] = DIMENSIONS
    rating: str = "ai"
    min_images: int = 20
    within: SearchQuery = field(default_factory=SearchQuery)
    selection: tuple[str, Mapping[str, Any]] | None = None
    rating_model: str | None = None
    confidence: float = 0.95


@dataclass
class Insights:
    """The baseline of the selection and one frame of rows (:data:`COLUMNS`), best first
    within each dimension."""

    rating: str
    baseline_images: int
    baseline_mean: float
    rows: pd.DataFrame

    def records(self) -> list[dict[str, Any]]:
        """Rows as plain dicts, the selection's baseline first (dimension ``baseline``)."""
        baseline = {
            "dimension": "baseline",
            "value": "selection",
            "images": self.baseline_images,
            "mean": self.baseline_mean,
            "delta": 0.0,
            "delta_low": 0.0,
            "delta_high": 0.0,
        }
        rows = [
            {str(key): value for key, value in row.items()}
            for row in self.rows[COLUMNS].to_dict("records")
        ]
        return [baseline, *rows]


# --- reading ratings ---------------------------------------------------------------------------


def has_table(conn: sqlite3.Connection, name: str) -> bool:
    """True when the database has table ``name`` (user ratings and culls come with later
    migrations; an older database has neither)."""
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
    ).fetchone()
    return row is not None


def ai_ratings(conn: sqlite3.Connection, model: str | None = None) -> pd.DataFrame:
    """AI ratings per image: columns ``image_id`` and ``rating`` (the mean ``overall`` over the
    models that rated the image, or only ``model``'s).

    The one place that reads how AI ratings reach images: by ``ratings.image_id`` (migration 3
    fills it on insert and re-links keep it), :data:`aimeta.pipelines.insight_sql.AI_RATINGS`.
    """
    return _frame(conn.execute(AI_RATINGS, {"model": model}).fetchall())


def user_stars(conn: sqlite3.Connection) -> pd.DataFrame:
    """The user's own stars per image; 0 stars means not rated (as in photo managers)."""
    if not has_table(conn, "user_ratings"):
        return _frame([])
    return _frame(conn.execute(USER_STARS).fetchall())


def keep_outcomes(conn: sqlite3.Connection) -> pd.DataFrame:
    """1 for a pick, 0 for a reject, per image. The user's pick or reject (library page) wins
    over a cull decision; a cull ``keep`` and a user's 0 are neither and are left out."""
    rows: dict[int, float] = {}
    if has_table(conn, "cull_decisions"):
        rows.update((image_id, float(kept)) for image_id, kept in conn.execute(CULL_KEEPS))
    if has_table(conn, "user_ratings"):
        rows.update((image_id, float(kept)) for image_id, kept in conn.execute(USER_KEEPS))
    return _frame(list(rows.items()))


def rating_frame(conn: sqlite3.Connection, kind: str, model: str | None = None) -> pd.DataFrame:
    """The outcome per image for rating ``kind``: ``ai``, ``user`` (stars), ``pick`` (1 pick,
    0 reject) or ``any`` (the user's stars where given, else the AI rating)."""
    if kind == "ai":
        return ai_ratings(conn, model)
    if kind == "user":
        return user_stars(conn)
    if kind == "pick":
        return keep_outcomes(conn)
    if kind == "any":
        user = user_stars(conn)
        ai = ai_ratings(conn, model)
        ai = ai[~ai["image_id"].isin(user["image_id"])]
        return pd.concat([user, ai], ignore_index=True)
    raise UsageError(f"--rating takes one of {', '.join(RATING_KINDS)}, not {kind!r}")


def _frame(rows: Sequence[tuple[Any, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["image_id", "rating"])
    return frame.astype({"image_id": "int64", "rating": "float64"})


def selected_outcomes(conn: sqlite3.Connection, query: InsightQuery) -> pd.DataFrame:
    """The rated images of the selection (``aimeta search``'s filters) with their outcome."""
    outcomes = rating_frame(conn, query.rating, query.rating_model)
    within = replace(query.within, limit=0)
    params: Sequence[Any] | Mapping[str, Any]
    if query.selection is not None:
        sql, params = query.selection
    elif within == SearchQuery(limit=0):
        return outcomes
    else:
        sql, params = search_sql(within)
    try:
        ids = [row[0] for row in conn.execute(sql, params)]
    except sqlite3.OperationalError as exc:
        raise UsageError(f"the filters could not run: {exc}") from exc
    return outcomes[outcomes["image_id"].isin(ids)].reset_index(drop=True)


# --- grouping ----------------------------------------------------------------------------------


def _outcome_json(outcomes: pd.DataFrame) -> str:
    # Ids as Python ints: in one float array 63-bit ids would lose their last digits.
    return orjson.dumps(
        list(zip(outcomes["image_id"].tolist(), outcomes["rating"].tolist(), strict=True))
    ).decode("ascii")


def value_sums(
    conn: sqlite3.Connection, dimension: str, outcomes: pd.DataFrame, min_images: int
) -> pd.DataFrame:
    """Per value of ``dimension`` seen on at least ``min_images`` of the ``outcomes`` images:
    ``value``, its parts ``first`` and ``second`` (a pair's; else the value and ''),
    ``images``, ``sum`` and ``sum_sq`` of their outcomes."""
    if dimension not in VALUE_ROWS:
        raise UsageError(f"--by takes one of {', '.join(DIMENSIONS)}, not {dimension!r}")
    if dimension in _COUNTED_IN_NUMPY:
        pairs = list(zip(outcomes["image_id"].tolist(), outcomes["rating"].tolist(), strict=True))
        return _sums_frame(_COUNTED_IN_NUMPY[dimension](conn, pairs, min_images))
    rows = conn.execute(
        GROUPED.format(rows=VALUE_ROWS[dimension], label=LABELS.get(dimension, "a")),
        {"outcome": _outcome_json(outcomes), "min_images": max(min_images, 1)},
    ).fetchall()
    return _sums_frame(rows)


# The token dimensions: see aimeta.pipelines.insight_tokens.
_COUNTED_IN_NUMPY = {"token": token_sums, "token+lora": token_lora_sums}


def _sums_frame(rows: Sequence[tuple[Any, ...]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["first", "second", "images", "sum", "sum_sq"])
    frame = frame.astype(
        {"first": "str", "second": "str", "images": "int64", "sum": "float64", "sum_sq": "float64"}
    )
    joined = np.where(frame["second"] == "", "", " + " + frame["second"])
    frame.insert(0, "value", frame["first"] + joined)
    return frame


# --- statistics (pure functions over frames) ---------------------------------------------------


def t_quantile(confidence: float, df: np.ndarray) -> np.ndarray:
    """Two-sided Student-t quantiles for ``confidence`` at ``df`` degrees of freedom.

    Hill's series in the normal quantile (Abramowitz & Stegun 26.7.5), accurate to about 1e-3
    from 3 degrees of freedom on; fewer are treated as 3 (wider, never narrower than needed
    for the sizes ``--min-images`` allows). Saves a SciPy dependency for one function.
    """
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    nu = np.maximum(np.asarray(df, dtype="float64"), 3.0)
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
    result: np.ndarray = z + g1 / nu + g2 / nu**2 + g3 / nu**3 + g4 / nu**4
    return result


def with_intervals(
    sums: pd.DataFrame, total: int, total_sum: float, total_sum_sq: float, confidence: float
) -> pd.DataFrame:
    """Add ``mean``, ``delta``, ``delta_low`` and ``delta_high`` to per-value ``sums`` against
    a selection of ``total`` images whose outcomes add up to ``total_sum`` (squares:
    ``total_sum_sq``); the Welch interval of the module docstring."""
    frame = sums.copy()
    n_value = frame["images"].to_numpy(dtype="float64")
    n_rest = total - n_value
    mean_all = total_sum / total
    var_all = max(total_sum_sq / total - mean_all**2, 0.0) * total / max(total - 1, 1)
    mean_value = frame["sum"].to_numpy() / n_value
    rest_sum = total_sum - frame["sum"].to_numpy()
    rest_sum_sq = total_sum_sq - frame["sum_sq"].to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_rest = np.where(n_rest > 0, rest_sum / n_rest, mean_all)
        var_value = _pooled_variance(frame["sum_sq"].to_numpy(), mean_value, n_value, var_all)
        var_rest = _pooled_variance(rest_sum_sq, mean_rest, n_rest, var_all)
        se_value, se_rest = var_value / n_value, np.where(n_rest > 0, var_rest / n_rest, 0.0)
        share_rest = n_rest / total
        se = share_rest * np.sqrt(se_value + se_rest)
        df = (se_value + se_rest) ** 2 / (
            se_value**2 / np.maximum(n_value - 1, 1) + se_rest**2 / np.maximum(n_rest - 1, 1)
        )
    df = np.nan_to_num(df, nan=3.0, posinf=1e9)
    delta = mean_value - mean_all
    half_width = t_quantile(confidence, df) * np.nan_to_num(se)
    frame["mean"] = mean_value
    frame["delta"] = delta
    frame["delta_low"] = delta - half_width
    frame["delta_high"] = delta + half_width
    return frame


def _pooled_variance(
    sum_sq: np.ndarray, mean: np.ndarray, count: np.ndarray, prior: float
) -> np.ndarray:
    """The group's sample variance pooled with ``_PSEUDO_IMAGES`` images at the selection's."""
    squares = np.maximum(sum_sq - count * mean**2, 0.0)
    result: np.ndarray = (squares + _PSEUDO_IMAGES * prior) / np.maximum(
        count - 1 + _PSEUDO_IMAGES, 1.0
    )
    return result


def ranked(frame: pd.DataFrame, dimension: str) -> pd.DataFrame:
    """Rows of one dimension, best lower bound first (ties: more images, then value)."""
    frame = frame.assign(dimension=dimension)
    return frame.sort_values(
        ["delta_low", "images", "value"], ascending=[False, False, True], kind="stable"
    )[COLUMNS + PARTS].reset_index(drop=True)


def insights(conn: sqlite3.Connection, query: InsightQuery) -> Insights:
    """Compare every value of ``query.dimensions`` with the selection's baseline.

    Raises UsageError for an unknown dimension or rating kind, a filter that cannot run, a
    confidence outside (0, 1), or a selection with no rated image.
    """
    if not 0 < query.confidence < 1:
        raise UsageError(f"--confidence is a share between 0 and 1, not {query.confidence}")
    unknown = [name for name in query.dimensions if name not in VALUE_ROWS]
    if unknown:
        raise UsageError(f"--by takes one of {', '.join(DIMENSIONS)}, not {unknown[0]!r}")
    outcomes = selected_outcomes(conn, query)
    if outcomes.empty:
        raise UsageError(_nothing_rated(query.rating))
    ratings = outcomes["rating"].to_numpy(dtype="float64")
    total, total_sum, total_sum_sq = len(ratings), float(ratings.sum()), float(ratings @ ratings)
    frames = []
    for dimension in query.dimensions:
        sums = value_sums(conn, dimension, outcomes, query.min_images)
        if sums.empty:
            continue
        scored = with_intervals(sums, total, total_sum, total_sum_sq, query.confidence)
        frames.append(ranked(scored, dimension))
    empty = pd.DataFrame(columns=COLUMNS + PARTS)
    rows = pd.concat(frames, ignore_index=True) if frames else empty
    return Insights(query.rating, total, total_sum / total, rows)


def _nothing_rated(kind: str) -> str:
    where = {
        "ai": "no AI rating (run `aimeta rate`)",
        "user": "no stars of your own (rate images on the library page)",
        "pick": "no pick or reject (library page or `aimeta cull`)",
        "any": "no rating of any kind",
    }[kind]
    return f"the selected images have {where}"
