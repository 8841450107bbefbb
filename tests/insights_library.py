"""Synthetic libraries for the insights tests: random settings, random ratings, and optionally
two planted effects (a token adds one star, a LoRA above weight 0.8 takes one away).

Rows are written with SQL into a database made by aimeta.db.connect (the real schema); the
tests then read it through the real pipeline and CLI.
"""

from __future__ import annotations

import random
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from aimeta import db

TOKENS = [f"token {n:02d}" for n in range(12)]
LORAS = [f"lora_{n}" for n in range(5)]
CHECKPOINTS = ["ckpt_a", "ckpt_b", "ckpt_c"]
SAMPLERS = ["euler", "dpmpp_2m", "ddim"]
PLANTED_TOKEN = TOKENS[3]
PLANTED_LORA = LORAS[2]
LORA_WEIGHTS = (0.5, 0.7, 0.9, 1.0)


@dataclass
class Library:
    """What was written: the database path and, per image id, its rating and its tokens."""

    path: Path
    ratings: dict[int, int] = field(default_factory=dict)
    tokens: dict[int, set[str]] = field(default_factory=dict)


def build_library(path: Path, seed: int, images: int = 600, planted: bool = True) -> Library:
    """Write a library of ``images`` images; about 85 % of them carry an AI rating."""
    rng = random.Random(seed)
    library = Library(path)
    conn = db.connect(path)
    with db.transaction(conn):
        for n in range(images):
            _add_image(conn, rng, library, n, planted)
    conn.close()
    return library


def _add_image(
    conn: sqlite3.Connection, rng: random.Random, library: Library, n: int, planted: bool
) -> None:
    key = f"lib/{n:05d}.png"
    ident = db.image_id(key)
    path = f"/data/{key}"
    tokens = [token for token in TOKENS if rng.random() < 0.3]
    loras = [(lora, rng.choice(LORA_WEIGHTS)) for lora in rng.sample(LORAS, rng.randint(0, 2))]
    checkpoint, sampler = rng.choice(CHECKPOINTS), rng.choice(SAMPLERS)
    generator = rng.choice(("a1111", "comfyui"))
    conn.execute(
        "INSERT INTO images (id, key, path, file_name, generator) VALUES (?, ?, ?, ?, ?)",
        (ident, key, path, key.rsplit("/", 1)[-1], generator),
    )
    conn.executemany(
        "INSERT INTO tokens (image_id, side, position, t_raw, t_norm) VALUES (?, 'pos', ?, ?, ?)",
        [(ident, position, token, token) for position, token in enumerate(tokens)],
    )
    conn.executemany(
        "INSERT INTO resources (image_id, kind, name, weight) VALUES (?, ?, ?, ?)",
        [(ident, "checkpoint", checkpoint, None)]
        + [(ident, "lora", lora, weight) for lora, weight in loras],
    )
    conn.executemany(
        "INSERT INTO kv (image_id, key, value) VALUES (?, ?, ?)",
        [
            (ident, "model", checkpoint),
            (ident, "sampler_norm", sampler),
            (ident, "cfg", rng.choice(("5", "7", "7.5", "9"))),
            (ident, "steps", rng.choice(("20", "25", "30"))),
        ],
    )
    library.tokens[ident] = set(tokens)
    if rng.random() < 0.15:
        return
    rating = rng.choice((2, 3, 4))
    if planted:
        rating += PLANTED_TOKEN in tokens
        rating -= any(lora == PLANTED_LORA and weight > 0.8 for lora, weight in loras)
    conn.execute(
        "INSERT INTO ratings (path, model, overall, scores_json, keywords_json, rated_at)"
        " VALUES (?, 'qwen', ?, '{}', '[]', '2026-01-01T00:00:00Z')",
        (path, rating),
    )
    library.ratings[ident] = rating
