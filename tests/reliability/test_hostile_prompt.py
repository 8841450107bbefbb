"""A hostile prompt (millions of comma-separated words) through `aimeta all`: its tokens are
bounded per prompt side, the file gets a warning, its text is kept whole, the database stays
within the README's bound, and the rest of the folder is stored as usual."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from rel_support import integrity_ok, run_aimeta

from aimeta import db
from aimeta.metadata.tokens import MAX_TOKENS_PER_SIDE
from factory import png_with_text

# README "Reliability": a file adds at most MAX_TOKENS_PER_SIDE token rows per prompt side,
# and the database grows by about 2.8x the file's metadata text (the prompt in kv, the
# full-text index, the raw fields compressed; 5.6x before migration 6); 4x plus a fixed 2 MB
# is the bound checked here.
GROWTH_PER_TEXT_BYTE = 4
FIXED_BYTES = 2 * 1024 * 1024
# Scaled down from the 24 MB, 4-million-word prompt that made 4 million token rows: every
# word distinct (the worst case for the full-text index), about 3 MB.
WORDS = 300_000
NORMAL = (
    "a lighthouse at dusk, (oil painting:1.2)\nNegative prompt: blurry, text\n"
    "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: {seed}, Size: 512x512, Model: sd15"
)


def test_hostile_prompt_is_bounded(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    prompt = ", ".join(f"word{index}" for index in range(WORDS))
    negative = ", ".join(f"neg{index}" for index in range(MAX_TOKENS_PER_SIDE + 5))
    infotext = (
        f"{prompt}\nNegative prompt: {negative}\n"
        "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 512x512, Model: sd15"
    )
    png_with_text(folder / "hostile.png", {"parameters": infotext}, chunk="zTXt")
    for seed in (2, 3):
        png_with_text(folder / f"normal{seed}.png", {"parameters": NORMAL.format(seed=seed)})

    out = tmp_path / "out"
    run = run_aimeta(["all", str(folder), "--out-dir", str(out)])
    assert run.code == 0, run.stderr[-3000:]

    database = out / "images.db"
    integrity_ok(database)
    assert database.stat().st_size < GROWTH_PER_TEXT_BYTE * len(infotext) + FIXED_BYTES
    with sqlite3.connect(database) as conn:
        rows = {
            name: (image_id, warnings)
            for image_id, name, warnings in conn.execute(
                "SELECT id, file_name, warnings_json FROM images"
            )
        }
        hostile_id, warnings = rows["hostile.png"]
        sides = dict(
            conn.execute(
                "SELECT side, COUNT(*) FROM tokens WHERE image_id = ? GROUP BY side",
                (hostile_id,),
            ).fetchall()
        )
        kv = dict(
            conn.execute("SELECT key, value FROM kv WHERE image_id = ?", (hostile_id,)).fetchall()
        )
        stored = conn.execute(
            f"SELECT {db.RAW_COLUMNS} FROM images WHERE id = ?", (hostile_id,)
        ).fetchone()
        raw = json.loads(db.raw_text(*stored) or "")
        first = conn.execute(
            "SELECT t_norm FROM tokens WHERE image_id = ? AND side = 'pos' ORDER BY position"
            " LIMIT 2",
            (hostile_id,),
        ).fetchall()
        normal_tokens = conn.execute(
            "SELECT COUNT(*) FROM tokens t JOIN images i ON i.id = t.image_id"
            " WHERE i.file_name LIKE 'normal%'"
        ).fetchone()[0]
    conn.close()

    assert sides == {"pos": MAX_TOKENS_PER_SIDE, "neg": MAX_TOKENS_PER_SIDE}
    assert first == [("word0",), ("word1",)]
    assert [w.split(" (")[0] for w in json.loads(warnings)] == [
        "pos prompt too long",
        "neg prompt too long",
    ]
    assert kv["prompt"] == prompt  # the whole text stays
    assert kv["negative_prompt"] == negative
    assert raw["parameters"] == infotext
    assert set(rows) == {"hostile.png", "normal2.png", "normal3.png"}
    assert rows["normal2.png"][1] is None and rows["normal3.png"][1] is None
    assert normal_tokens == 2 * 4  # lighthouse at dusk, oil painting | blurry, text
