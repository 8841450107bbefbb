"""What is in the database: images by generator, top models, LoRAs, samplers, tokens, ratings."""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, dataclass, field
from typing import Any

from aimeta.db import PARAMETER_ROWS, TOKEN_COUNTS_SQL


@dataclass
class Stats:
    """Counts for ``aimeta stats``; every list holds at most ``top`` rows, most used first.

    Rows are plain dicts: ``{"name", "images"}`` for checkpoints, samplers, schedulers and
    tokens; LoRAs add ``mean_weight`` (None when no weight was recorded); ``ratings`` holds
    one row per model tag with ``images``, ``mean`` and ``by_overall`` (counts for 1..5).
    """

    images: int
    by_generator: list[dict[str, Any]]
    unknown_generator: int
    no_metadata: int
    errors: int
    checkpoints: list[dict[str, Any]] = field(default_factory=list)
    loras: list[dict[str, Any]] = field(default_factory=list)
    samplers: list[dict[str, Any]] = field(default_factory=list)
    schedulers: list[dict[str, Any]] = field(default_factory=list)
    pos_tokens: list[dict[str, Any]] = field(default_factory=list)
    neg_tokens: list[dict[str, Any]] = field(default_factory=list)
    ratings: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return asdict(self)


def _named_counts(
    conn: sqlite3.Connection, sql: str, params: tuple[Any, ...]
) -> list[dict[str, Any]]:
    return [{"name": name, "images": images} for name, images in conn.execute(sql, params)]


def stats(conn: sqlite3.Connection, top: int = 20) -> Stats:
    """Collect :class:`Stats` from an open database; ``top`` bounds each list (0: no bound)."""
    limit = top if top > 0 else -1  # SQLite: LIMIT -1 means no limit
    by_generator = _named_counts(
        conn,
        "SELECT generator, COUNT(*) AS n FROM images GROUP BY generator ORDER BY n DESC, generator",
        (),
    )
    counts = {row["name"]: row["images"] for row in by_generator}
    resource_sql = (
        "SELECT name, COUNT(DISTINCT image_id) AS n FROM resources WHERE kind = ?"
        " GROUP BY name ORDER BY n DESC, name LIMIT ?"
    )
    kv_sql = (
        f"SELECT value, COUNT(*) AS n FROM kv WHERE key = ? AND value <> '' AND {PARAMETER_ROWS}"
        " GROUP BY value ORDER BY n DESC, value LIMIT ?"
    )
    # Per image: the normalised sampler name when the parser knew it, else the name as written.
    sampler_sql = f"""
        SELECT name, COUNT(*) AS images FROM (
            SELECT COALESCE(MAX(CASE WHEN key = 'sampler_norm' THEN value END), MAX(value))
                AS name
            FROM kv WHERE key IN ('sampler_norm', 'sampler') AND {PARAMETER_ROWS}
            GROUP BY image_id)
        WHERE name <> '' GROUP BY name ORDER BY images DESC, name LIMIT ?"""
    token_sql = TOKEN_COUNTS_SQL + " ORDER BY n DESC, t_norm LIMIT ?"
    loras = [
        {
            "name": name,
            "images": images,
            "mean_weight": None if mean is None else round(mean, 3),
        }
        for name, images, mean in conn.execute(
            "SELECT name, COUNT(DISTINCT image_id) AS n, AVG(weight) FROM resources"
            " WHERE kind = 'lora' GROUP BY name ORDER BY n DESC, name LIMIT ?",
            (limit,),
        )
    ]
    return Stats(
        images=sum(counts.values()),
        by_generator=by_generator,
        unknown_generator=counts.get("unknown", 0),
        no_metadata=counts.get("none", 0),
        errors=conn.execute("SELECT COUNT(*) FROM errors").fetchone()[0],
        checkpoints=_named_counts(conn, resource_sql, ("checkpoint", limit)),
        loras=loras,
        samplers=_named_counts(conn, sampler_sql, (limit,)),
        schedulers=_named_counts(conn, kv_sql, ("scheduler_norm", limit)),
        pos_tokens=_named_counts(conn, token_sql, ("pos", limit)),
        neg_tokens=_named_counts(conn, token_sql, ("neg", limit)),
        ratings=_rating_rows(conn),
    )


def _rating_rows(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for model, overall, images in conn.execute(
        "SELECT model, overall, COUNT(*) FROM ratings GROUP BY model, overall ORDER BY model"
    ):
        row = rows.setdefault(
            model,
            {"model": model, "images": 0, "mean": 0.0, "by_overall": dict.fromkeys("12345", 0)},
        )
        row["images"] += images
        row["mean"] += overall * images
        row["by_overall"][str(overall)] = images
    for row in rows.values():
        row["mean"] = round(row["mean"] / row["images"], 2)
    return sorted(rows.values(), key=lambda row: (-row["images"], row["model"]))
