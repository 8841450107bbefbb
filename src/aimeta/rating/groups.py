"""Groups of images that want one pick: near-duplicates, bursts and AI batches.

Two images join the same group (and groups chain: A~B and B~C put A, B and C together) when

- **near-duplicate**: their perceptual hashes (pHash, 64 bits) differ in at most
  ``hash_distance`` bits (default 14): on the scikit-image sample photos a re-encode or a
  brightness change of 25 % moves pHash by 0-2 bits, a crop of 3-4 % per side by 6-14,
  while different scenes differ by 24-42;
- **burst**: both have a capture time, taken at most ``window`` seconds apart (default 2),
  and their hashes differ in at most ``hash_distance + BURST_EXTRA`` bits (a burst of a
  moving subject changes more than a re-encode; different scenes still differ by more);
- **AI batch**: the same :func:`batch_key` -- the same prompt, negative prompt, model, size,
  sampler, steps and CFG, whatever the seed (the seeds of one run, or a re-run of a prompt).

Groups are returned largest first, each sorted by image id, with a stable id: the smallest
image id of the group.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_WINDOW_S = 2.0
DEFAULT_HASH_DISTANCE = 14
BURST_EXTRA = 6
# The generation parameters that make two images one batch (every stored key but the seed).
BATCH_KEYS = (
    "prompt",
    "negative_prompt",
    "model",
    "model_hash",
    "width",
    "height",
    "sampler",
    "scheduler",
    "steps",
    "cfg",
)


@dataclass(frozen=True, slots=True)
class Item:
    """What grouping needs of one image."""

    image_id: int
    phash: str
    captured: float | None = None  # seconds since the epoch
    batch: str | None = None  # batch_key of its generation parameters


@dataclass(frozen=True, slots=True)
class Group:
    """Images that belong together; ``group_id`` is the smallest of ``members``."""

    group_id: int
    members: tuple[int, ...]

    @property
    def key(self) -> str:
        """A key that changes when the members change (the ranking record's key)."""
        text = ",".join(str(member) for member in self.members)
        return hashlib.sha1(text.encode("ascii")).hexdigest()


def batch_key(params: Mapping[str, str]) -> str | None:
    """The key of an AI image's batch from its generation parameters; None without a
    prompt (a photo, or an image whose parameters are not known)."""
    prompt = (params.get("prompt") or "").strip()
    if not prompt:
        return None
    parts = [" ".join((params.get(name) or "").split()) for name in BATCH_KEYS]
    return hashlib.sha1("\x1f".join(parts).encode("utf-8")).hexdigest()


def find_groups(
    items: Sequence[Item],
    *,
    window: float = DEFAULT_WINDOW_S,
    hash_distance: int = DEFAULT_HASH_DISTANCE,
) -> list[Group]:
    """Every image of ``items`` in exactly one group (groups of one included)."""
    parent = list(range(len(items)))

    def root(index: int) -> int:
        while parent[index] != index:
            parent[index] = parent[parent[index]]
            index = parent[index]
        return index

    def join(first: int, second: int) -> None:
        parent[root(first)] = root(second)

    for first, second in _similar_pairs(items, window, hash_distance):
        join(first, second)
    by_batch: dict[str, int] = {}
    for index, item in enumerate(items):
        if item.batch is not None:
            join(index, by_batch.setdefault(item.batch, index))
    members: dict[int, list[int]] = {}
    for index, item in enumerate(items):
        members.setdefault(root(index), []).append(item.image_id)
    groups = [Group(min(ids), tuple(sorted(ids))) for ids in members.values()]
    return sorted(groups, key=lambda group: (-len(group.members), group.group_id))


def _similar_pairs(
    items: Sequence[Item], window: float, hash_distance: int
) -> Iterable[tuple[int, int]]:
    """Index pairs that are near-duplicates or one burst (numpy: all pairs, row by row)."""
    if len(items) < 2:
        return
    hashes = np.array([int(item.phash, 16) for item in items], dtype=np.uint64)
    times = np.array(
        [item.captured if item.captured is not None else np.nan for item in items],
        dtype=np.float64,
    )
    for index in range(len(items) - 1):
        distances = np.bitwise_count(hashes[index + 1 :] ^ hashes[index])
        close_in_time = np.abs(times[index + 1 :] - times[index]) <= window  # NaN: False
        burst = close_in_time & (distances <= hash_distance + BURST_EXTRA)
        joined = (distances <= hash_distance) | burst
        for offset in np.flatnonzero(joined):
            yield index, index + 1 + int(offset)
