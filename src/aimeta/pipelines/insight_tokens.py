"""The token dimensions of ``aimeta insights`` counted in NumPy: per token, and per token and
LoRA pair, the rated images, the sum and the sum of squares of their outcomes.

SQLite would sort the million (token, image) rows of 100,000 rated images twice (once so that
a token written twice in one prompt counts once, once to group by token), and the two million
(token, LoRA, image) rows of the pairs likewise. Here SQLite only walks each rated image's
token ids (an index range per image, joined as text), and NumPy drops the repeats and adds up
per id. Images are read in chunks, so memory stays bounded on any library. The counts equal
those of :data:`aimeta.pipelines.insight_sql.VALUE_ROWS` (a test compares them).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import orjson

from aimeta.pipelines.insight_sql import OUTCOME

# One row per value: (first, second, images, sum, sum of squares).
Sums = list[tuple[str, str, int, float, float]]

# Rated images read per statement.
CHUNK = 5_000
_TOKEN_IDS = (
    OUTCOME
    + """
SELECT o.y, (SELECT group_concat(norm_id, ' ') FROM token_rows
             WHERE image_id = o.id AND side = 'pos'),
    {loras} FROM outcome o"""
)
_LORA_NAMES = (
    "(SELECT json_group_array(name) FROM resources WHERE image_id = o.id AND kind = 'lora')"
)


@dataclass
class _ImageTokens:
    """The distinct positive tokens of a chunk of images, sorted by image then token id."""

    image: np.ndarray  # index of the image in the chunk, per token
    token: np.ndarray  # token_texts id
    outcome: np.ndarray  # outcome of each image of the chunk
    loras: list[list[str]]  # LoRA names of each image (when asked)


def _text_count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM token_texts").fetchone()[0])


def _read_chunk(
    conn: sqlite3.Connection, outcome_json: str, size: int, *, loras: bool
) -> _ImageTokens:
    sql = _TOKEN_IDS.format(loras=_LORA_NAMES if loras else "'[]'")
    rows = conn.execute(sql, {"outcome": outcome_json}).fetchall()
    lists = [ids for _, ids, _ in rows]
    lengths = np.array([ids.count(" ") + 1 if ids else 0 for ids in lists], dtype="int64")
    joined = " ".join(ids for ids in lists if ids)
    tokens = np.array(joined.split(" ") if joined else [], dtype="int64")
    images = np.repeat(np.arange(len(rows)), lengths)
    # A text a writer added after `size` was read is left out, as if read before it came.
    known = tokens < size
    tokens, images = tokens[known], images[known]
    # Each (image, token) once: a token written twice in one prompt counts once.
    keys = _distinct(images * size + tokens)
    return _ImageTokens(
        image=keys // size,
        token=keys % size,
        outcome=np.array([y for y, _, _ in rows], dtype="float64"),
        loras=[orjson.loads(names) for _, _, names in rows] if loras else [],
    )


def _distinct(keys: np.ndarray) -> np.ndarray:
    """The distinct ``keys``, sorted (a sort: NumPy's hashing np.unique is ten times slower
    on a million integers)."""
    keys = np.sort(keys)
    result: np.ndarray = keys[np.r_[True, keys[1:] != keys[:-1]]] if len(keys) else keys
    return result


def _chunks(outcomes: Sequence[tuple[int, float]]) -> list[str]:
    return [
        orjson.dumps(list(outcomes[start : start + CHUNK])).decode("ascii")
        for start in range(0, len(outcomes), CHUNK)
    ]


def _texts(conn: sqlite3.Connection, ids: np.ndarray) -> dict[int, str]:
    sql = "SELECT id, text FROM token_texts WHERE id IN (SELECT value FROM json_each(?))"
    unique = np.unique(ids).tolist()
    return dict(conn.execute(sql, (orjson.dumps(unique).decode("ascii"),)).fetchall())


def token_sums(
    conn: sqlite3.Connection, outcomes: Sequence[tuple[int, float]], min_images: int
) -> Sums:
    """Per positive-prompt token on at least ``min_images`` of the ``outcomes`` images
    ((image id, outcome) pairs): (text, '', images, sum, sum of squares)."""
    size = _text_count(conn)
    counts, sums, squares = np.zeros(size), np.zeros(size), np.zeros(size)
    for chunk in _chunks(outcomes):
        read = _read_chunk(conn, chunk, size, loras=False)
        y = read.outcome[read.image]
        counts += np.bincount(read.token, minlength=size)
        sums += np.bincount(read.token, weights=y, minlength=size)
        squares += np.bincount(read.token, weights=y * y, minlength=size)
    kept = np.flatnonzero(counts >= max(min_images, 1))
    texts = _texts(conn, kept)
    return [
        (texts[i], "", int(counts[i]), float(sums[i]), float(squares[i]))
        for i in kept.tolist()
        if i in texts
    ]


def token_lora_sums(
    conn: sqlite3.Connection, outcomes: Sequence[tuple[int, float]], min_images: int
) -> Sums:
    """Per (positive token, LoRA name) seen together on at least ``min_images`` images:
    (token text, LoRA name, images, sum, sum of squares)."""
    size = _text_count(conn)
    names: dict[str, int] = {}
    totals = _Totals.empty()
    pending: list[_Totals] = []
    for chunk in _chunks(outcomes):
        read = _read_chunk(conn, chunk, size, loras=True)
        lora_image = [i for i, image_loras in enumerate(read.loras) for _ in image_loras]
        lora_code = [names.setdefault(n, len(names)) for image in read.loras for n in image]
        keys, y = _cross(read, np.array(lora_image, dtype="int64"), np.array(lora_code), size)
        pending.append(_Totals.of(keys, np.ones(len(keys)), y, y * y))
        # Merged now and then, so memory follows the distinct pairs, not the pairs of images.
        if sum(len(part.keys) for part in pending) > _PENDING_PAIRS:
            totals, pending = _Totals.merge([totals, *pending]), []
    totals = _Totals.merge([totals, *pending])
    pairs, counts, sums, squares = totals.keys, totals.counts, totals.sums, totals.squares
    kept = np.flatnonzero(counts >= max(min_images, 1))
    tokens, loras = pairs[kept] % size, pairs[kept] // size
    texts, lora_names = _texts(conn, tokens), list(names)
    return [
        (texts[t], lora_names[lora], int(counts[k]), float(sums[k]), float(squares[k]))
        for k, t, lora in zip(kept.tolist(), tokens.tolist(), loras.tolist(), strict=True)
        if t in texts
    ]


# Pair rows of chunks held before they are merged into the totals (32 bytes each).
_PENDING_PAIRS = 500_000


@dataclass
class _Totals:
    """Count, sum and sum of squares per distinct key, keys sorted."""

    keys: np.ndarray
    counts: np.ndarray
    sums: np.ndarray
    squares: np.ndarray

    @classmethod
    def empty(cls) -> _Totals:
        nothing = np.zeros(0)
        return cls(np.zeros(0, "int64"), nothing, nothing, nothing)

    @classmethod
    def of(
        cls, keys: np.ndarray, counts: np.ndarray, sums: np.ndarray, squares: np.ndarray
    ) -> _Totals:
        """Rows with equal keys added up."""
        if not len(keys):
            return cls.empty()
        order = np.argsort(keys, kind="stable")
        keys = keys[order]
        starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
        return cls(
            keys[starts],
            np.add.reduceat(counts[order], starts),
            np.add.reduceat(sums[order], starts),
            np.add.reduceat(squares[order], starts),
        )

    @classmethod
    def merge(cls, parts: Sequence[_Totals]) -> _Totals:
        def joined(name: str) -> np.ndarray:
            return np.concatenate([getattr(part, name) for part in parts])

        return cls.of(joined("keys"), joined("counts"), joined("sums"), joined("squares"))


def _cross(
    read: _ImageTokens, lora_image: np.ndarray, lora_code: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Every (token, LoRA) of the same image: keys lora * size + token, and the outcomes."""
    per_image = np.bincount(read.image, minlength=len(read.outcome))
    first_token = np.cumsum(per_image) - per_image  # tokens are sorted by image
    repeat = per_image[lora_image]  # each LoRA meets every token of its image
    which_lora = np.repeat(np.arange(len(lora_image)), repeat)
    offset = np.arange(int(repeat.sum())) - np.repeat(np.cumsum(repeat) - repeat, repeat)
    token = read.token[first_token[lora_image[which_lora]] + offset]
    image = lora_image[which_lora]
    return lora_code[which_lora].astype("int64") * size + token, read.outcome[image]
