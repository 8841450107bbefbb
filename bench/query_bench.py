"""Query benchmark: token, LoRA, rating and text searches on a 100,000-image database.

Builds the database in a temporary folder through aimeta's own write path (db.store_batch, as
`aimeta ingest` stores a batch; indexes, triggers and the full-text index are the real ones), then
times aimeta.pipelines.search.search for each query: median of several runs after one warm-up.
Prints a markdown table. The target is < 100 ms for every token and LoRA search.

    .venv/bin/python bench/query_bench.py [--images 100000] [--runs 7] [--keep DIR]
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import json
import random
import shutil
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from aimeta import db
from aimeta.pipelines.search import SearchQuery, search, search_sql

TARGET_MS = 100.0

_QUALITY = [
    "masterpiece", "best quality", "highres", "ultra detailed", "absurdres", "8k",
    "high quality", "detailed", "intricate details", "sharp focus", "photorealistic",
]  # fmt: skip
_COLOURS = [
    "red", "blue", "green", "black", "white", "silver", "golden", "pink", "purple",
    "orange", "brown", "grey", "aqua", "blonde", "crimson", "teal", "violet", "beige",
    "navy", "yellow",
]  # fmt: skip
_THINGS = [
    "hair", "eyes", "dress", "shirt", "skirt", "jacket", "background", "sky", "flowers",
    "ribbon", "hat", "boots", "gloves", "scarf", "lips", "nails", "cape", "armor",
    "kimono", "sweater", "bikini", "umbrella", "car", "wall", "curtains", "sword",
    "wings", "tail", "bow", "earrings", "necklace", "belt", "socks", "shorts", "coat",
    "hoodie", "veil", "crown", "mask", "lantern",
]  # fmt: skip
_ADJECTIVES = [
    "long", "short", "messy", "wavy", "shiny", "torn", "wet", "glowing", "floating",
    "ornate", "simple", "frilled", "striped", "plaid", "lace", "leather", "wooden",
    "ancient", "futuristic", "cozy", "dark", "bright", "soft", "dramatic", "cinematic",
    "dynamic", "vintage", "neon", "misty", "snowy",
]  # fmt: skip
_NOUNS = [
    "lighting", "shadows", "pose", "angle", "portrait", "landscape", "city", "forest",
    "beach", "castle", "room", "street", "mountains", "river", "garden", "temple",
    "library", "cafe", "station", "bridge", "rooftop", "desert", "ocean", "meadow",
    "window", "stairs", "alley", "market", "field", "sunset", "night", "rain", "fog",
    "smile", "expression", "composition", "atmosphere", "colors", "texture", "style",
    "girl", "boy", "woman", "man", "cat", "dog", "dragon", "robot", "knight", "witch",
    "elf", "angel", "demon", "samurai", "pilot", "chef", "student", "queen", "king",
    "wizard",
]  # fmt: skip
_NEGATIVE_BASE = [
    "lowres", "bad anatomy", "bad hands", "text", "error", "missing fingers",
    "extra digit", "fewer digits", "cropped", "worst quality", "low quality",
    "normal quality", "jpeg artifacts", "signature", "watermark", "username", "blurry",
    "deformed", "ugly", "mutated", "disfigured", "extra limbs", "poorly drawn face",
    "nsfw", "out of frame", "duplicate", "morbid", "mutilated", "bad proportions",
    "gross proportions",
]  # fmt: skip
_SAMPLERS = [
    ("DPM++ 2M Karras", "dpmpp_2m", "karras"), ("Euler a", "euler_ancestral", "normal"),
    ("DPM++ SDE Karras", "dpmpp_sde", "karras"), ("Euler", "euler", "normal"),
    ("DDIM", "ddim", "ddim_uniform"), ("UniPC", "uni_pc", "normal"),
]  # fmt: skip


def vocabulary(rng: random.Random) -> tuple[list[str], list[str]]:
    """About 3,000 positive and 500 negative tokens, in a shuffled popularity order."""
    positive = list(_QUALITY)
    positive += [f"{colour} {thing}" for colour in _COLOURS for thing in _THINGS]
    positive += [f"{adjective} {noun}" for adjective in _ADJECTIVES for noun in _NOUNS]
    positive = list(dict.fromkeys(positive))
    tail = positive[len(_QUALITY) :]
    rng.shuffle(tail)
    positive = positive[: len(_QUALITY)] + tail  # quality tags stay the most common
    negative = list(_NEGATIVE_BASE)
    negative += [f"{adjective} {noun}" for adjective in _ADJECTIVES[:10] for noun in _NOUNS[:47]]
    return positive, negative


def zipf_cumulative(size: int, exponent: float = 1.0) -> list[float]:
    """Cumulative weights of a Zipf distribution over ranks 1..size."""
    return list(itertools.accumulate(1.0 / (rank**exponent) for rank in range(1, size + 1)))


def draw_distinct(
    rng: random.Random, items: Sequence[str], cumulative: list[float], count: int
) -> list[str]:
    """``count`` distinct items drawn by popularity (rejection of repeats)."""
    total = cumulative[-1]
    chosen: dict[str, None] = {}
    while len(chosen) < count:
        chosen[items[bisect.bisect_left(cumulative, rng.random() * total)]] = None
    return list(chosen)


def corpus_names(seed: int = 7) -> tuple[random.Random, dict[str, list[str]]]:
    """The seeded random source and the vocabularies by popularity rank (pos, neg, lora, ...)."""
    rng = random.Random(seed)
    positive, negative = vocabulary(rng)
    loras = [f"lora_{rng.choice(_ADJECTIVES)}_{rng.choice(_NOUNS)}_v{n % 5}" for n in range(800)]
    loras = list(dict.fromkeys(loras))
    checkpoints = [f"checkpoint_{n:03d}_{rng.choice(_ADJECTIVES)}" for n in range(150)]
    return rng, {"pos": positive, "neg": negative, "lora": loras, "checkpoint": checkpoints}


@dataclass
class Generated:
    """One generated image: its rows for db.store_batch and its AI rating row, if rated."""

    rows: db.ImageRows
    rating: tuple[object, ...] | None


def image_key(n: int) -> str:
    """The key of image number ``n`` of the benchmark corpus."""
    return f"library/{2023 + n % 3}-{1 + n % 12:02d}/{n:08d}.png"


def generate(images: int, first: int = 0) -> Iterator[Generated]:
    """Images ``first``..``first + images - 1`` of the benchmark corpus, as aimeta's ingest would
    store them: 40 positive and 20 negative tokens drawn by Zipf popularity (10 % of positive
    ones weighted), one checkpoint and 0-3 LoRAs, a third of the images rated. Seeded by
    ``first``, so a later range is new images drawn from the same vocabulary."""
    rng, vocab = corpus_names()
    if first:
        rng = random.Random(first)
    positive, negative, loras, checkpoints = (
        vocab["pos"],
        vocab["neg"],
        vocab["lora"],
        vocab["checkpoint"],
    )
    pos_cum, neg_cum = zipf_cumulative(len(positive)), zipf_cumulative(len(negative))
    lora_cum, ckpt_cum = zipf_cumulative(len(loras)), zipf_cumulative(len(checkpoints))
    for n in range(first, first + images):
        key = image_key(n)
        ident = db.image_id(key)
        file_path = f"/data/{key}"
        pos = draw_distinct(rng, positive, pos_cum, 40)
        neg = draw_distinct(rng, negative, neg_cum, 20)
        weights = [rng.choice((1.1, 1.2, 1.3)) if rng.random() < 0.1 else 1.0 for _ in pos]
        prompt = ", ".join(
            f"({token}:{weight})" if weight != 1.0 else token
            for token, weight in zip(pos, weights, strict=True)
        )
        negative_prompt = ", ".join(neg)
        sampler, sampler_norm, scheduler = rng.choice(_SAMPLERS)
        checkpoint = draw_distinct(rng, checkpoints, ckpt_cum, 1)[0]
        image_loras = draw_distinct(rng, loras, lora_cum, rng.randint(0, 3))
        seed_text = str(rng.randrange(2**32))
        infotext = (
            f"{prompt} "
            + " ".join(f"<lora:{lora}:0.8>" for lora in image_loras)
            + f"\nNegative prompt: {negative_prompt}\nSteps: 30, Sampler: {sampler},"
            f" CFG scale: 7, Seed: {seed_text}, Size: 832x1216, Model: {checkpoint}"
        )
        generator = "a1111" if n % 4 else "comfyui"
        image = (
            ident, key, file_path, "/data/library", key.rsplit("/", 1)[-1], ".png",
            1_500_000 + n, 1_700_000_000_000_000_000 + n, f"{n:064x}", 832, 1216,
            generator, "native", *db.pack_raw(json.dumps({"PNG:Parameters": infotext})), None,
            None, 1,
        )  # fmt: skip
        rows = db.ImageRows(ident, image)
        rows.kv = [
            (ident, "prompt", prompt),
            (ident, "negative_prompt", negative_prompt),
            (ident, "steps", "30"),
            (ident, "cfg", "7"),
            (ident, "seed", seed_text),
            (ident, "sampler", sampler),
            (ident, "sampler_norm", sampler_norm),
            (ident, "scheduler_norm", scheduler),
            (ident, "model", checkpoint),
            (ident, "width", "832"),
            (ident, "height", "1216"),
        ]
        rows.fts = (ident, prompt, negative_prompt)
        rows.tokens = [
            (ident, "pos", position, token, token, weight)
            for position, (token, weight) in enumerate(zip(pos, weights, strict=True))
        ]
        rows.tokens += [(ident, "neg", position, token, token, 1.0) for position, token in
                        enumerate(neg)]  # fmt: skip
        rows.resources = [(ident, "checkpoint", checkpoint, None, None, None, None, "params", None)]
        rows.resources += [
            (ident, "lora", lora, rng.choice((0.5, 0.6, 0.7, 0.8, 0.9, 1.0)), None, None, None,
             "prompt", None)
            for lora in image_loras
        ]  # fmt: skip
        rating = None
        if n % 3 == 0:
            rating = (file_path, "qwen2.5-vl-7b", rng.choice((1, 2, 3, 3, 4, 4, 4, 5)),
                      "{}", "[]", "2024-06-01T00:00:00Z")  # fmt: skip
        yield Generated(rows, rating)


BATCH = 2_000


def store(conn: sqlite3.Connection, generated: Iterable[Generated]) -> None:
    """Write ``generated`` through db.store_batch, one transaction per BATCH images."""
    items = iter(generated)
    while chunk := list(itertools.islice(items, BATCH)):
        with db.transaction(conn):
            db.store_batch(conn, [item.rows for item in chunk])
            conn.executemany(
                "INSERT INTO ratings (path, model, overall, scores_json, keywords_json,"
                " rated_at) VALUES (?,?,?,?,?,?)",
                [item.rating for item in chunk if item.rating is not None],
            )


def build(path: Path, images: int) -> dict[str, list[str]]:
    """Write a database of ``images`` images at ``path`` through aimeta's write path
    (db.store_batch, the secondary indexes built once at the end as `aimeta ingest` does for a
    large load); returns the vocabularies by rank."""
    conn = db.connect(path)
    with db.deferred_indexes(conn):
        store(conn, generate(images))
    conn.close()
    return corpus_names()[1]


def queries(vocab: dict[str, list[str]]) -> list[tuple[str, SearchQuery]]:
    """The searches to time, named as a user would type them."""
    pos, neg, lora, ckpt = vocab["pos"], vocab["neg"], vocab["lora"], vocab["checkpoint"]
    return [
        (f"--token '{pos[20]}'", SearchQuery(tokens=(pos[20],))),
        (
            f"--token '{pos[20]}' --not-neg-token '{neg[2]}'",
            SearchQuery(tokens=(pos[20],), not_neg_tokens=(neg[2],)),
        ),
        (
            f"--token '{pos[0]}' --not-token '{pos[3]}' --not-neg-token '{neg[0]}'",
            SearchQuery(tokens=(pos[0],), not_tokens=(pos[3],), not_neg_tokens=(neg[0],)),
        ),
        (
            f"--token '{pos[60]}' --token '{pos[150]}' --not-neg-token '{neg[5]}'",
            SearchQuery(tokens=(pos[60], pos[150]), not_neg_tokens=(neg[5],)),
        ),
        (f"--token '{pos[2500]}' (rare)", SearchQuery(tokens=(pos[2500],))),
        (f"--lora {lora[0]}", SearchQuery(loras=(lora[0],))),
        (f"--lora {lora[300]}", SearchQuery(loras=(lora[300],))),
        (f"--lora '{lora[0][:9]}*'", SearchQuery(loras=(lora[0][:9] + "*",))),
        (
            f"--model {ckpt[1]} --lora {lora[5]}",
            SearchQuery(model=ckpt[1], loras=(lora[5],)),
        ),
        ("--min-rating 5", SearchQuery(min_rating=5)),
        (
            f"--token '{pos[20]}' --min-rating 4",
            SearchQuery(tokens=(pos[20],), min_rating=4),
        ),
        (f"--text '{pos[30].split()[0]}'", SearchQuery(text=pos[30].split()[0])),
        ("--sampler euler --seed 12345", SearchQuery(sampler="euler", seed="12345")),
        (
            f"--token '{pos[0]}' --not-neg-token '{neg[0]}' (both in ~all images)",
            SearchQuery(tokens=(pos[0],), not_neg_tokens=(neg[0],)),
        ),
        (
            f"--lora {lora[300]} --limit 0 (every match, details included)",
            SearchQuery(loras=(lora[300],), limit=0),
        ),
        (
            f"--token '{pos[20]}' --limit 0 (every match, details included)",
            SearchQuery(tokens=(pos[20],), limit=0),
        ),
    ]


def time_query(conn: sqlite3.Connection, query: SearchQuery, runs: int) -> tuple[float, int]:
    """Median milliseconds of ``runs`` searches (after a warm-up) and the number of matches."""
    search(conn, query)
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        search(conn, query)
        timings.append((time.perf_counter() - started) * 1000)
    sql, params = search_sql(SearchQuery(**{**query.__dict__, "limit": 0}))
    matches = conn.execute(f"SELECT COUNT(*) FROM ({sql})", params).fetchone()[0]
    return statistics.median(timings), matches


def image_count(path: Path) -> int:
    conn = db.open_readonly(path)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM images").fetchone()[0])
    finally:
        conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument(
        "--keep", type=Path, help="build the database here and keep it (reused when present)"
    )
    args = parser.parse_args()

    folder = args.keep or Path(tempfile.mkdtemp(prefix="aimeta-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "images.db"
    started = time.perf_counter()
    if args.keep and path.is_file() and image_count(path) == args.images:
        vocab = corpus_names()[1]
    else:
        path.unlink(missing_ok=True)
        vocab = build(path, args.images)
    built_s = time.perf_counter() - started
    conn = db.open_readonly(path)
    counts = {
        table: conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
        for table in ("images", "tokens", "resources", "ratings", "prompts_fts")
    }
    print(
        f"Database: {counts['images']:,} images, {counts['tokens']:,} tokens, "
        f"{counts['resources']:,} resources, {counts['ratings']:,} ratings, "
        f"{path.stat().st_size / 1e6:,.0f} MB, built in {built_s:.0f} s. "
        f"SQLite {sqlite3.sqlite_version}, no ANALYZE statistics.\n"
    )
    print(
        f"| aimeta search ... (--limit 50 unless shown) | matches | median ms ({args.runs} runs) |"
    )
    print("|---|---:|---:|")
    slow = 0
    for label, query in queries(vocab):
        median_ms, matches = time_query(conn, query, args.runs)
        # The target is for a screenful of results; fetching every match is shown for scale.
        bounded = query.limit != 0
        flag = "" if median_ms < TARGET_MS or not bounded else " (over target)"
        slow += bounded and median_ms >= TARGET_MS
        print(f"| `{label}` | {matches:,} | {median_ms:.1f}{flag} |")
    conn.close()
    if args.keep is None:
        shutil.rmtree(folder, ignore_errors=True)
    return 1 if slow else 0


if __name__ == "__main__":
    raise SystemExit(main())
