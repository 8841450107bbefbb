"""Calibrated stars and pick/reject decisions from group ranks, absolute scores and signals.

A vision model's absolute scores cluster and drift, while its comparisons of similar images are
much more reliable. So the within-group order comes from the model's ranking, the level of a
group from the absolute scores of all its members, and the stars from percentiles:

1. **Group level** ``L_g``: the mean absolute score (``rate``'s 1-5 overall) of the group's
   members that have one; averaging n noisy scores of near-equal images divides their noise
   by about sqrt(n). 3 when no member has a score.
2. **Position in the group** ``u_i = ((n + 1) / 2 - rank_i) / (n - 1)``: +0.5 for the best of
   n images, -0.5 for the worst, 0 for a single image.
3. **Latent score** ``s_i = L_g + SPREAD * u_i - TECHNICAL_PENALTY * [technical fault]``:
   a single image keeps its own absolute score; SPREAD (1.5 stars) is how far apart the best
   and the worst of a group are placed; an image that is blurry, overexposed or underexposed
   loses TECHNICAL_PENALTY (2 stars).
4. **Percentile stars**: the images are sorted by ``s`` (ties by absolute score, then by
   image id) and cut by ``distribution``, the share per star count from 5 down to 1 (default
   10/20/40/20/10: the top 10 % of the folder get 5 stars, the bottom 10 % 1 star).

Decisions: the best of each group of two or more is a **pick** unless it has a technical
fault. **Reject** candidates: every image with a technical fault (its reasons), and in a
group of three or more the images in its bottom third that end with 2 stars or fewer
(reason ``group-loser``). Everything else is **keep**.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_DISTRIBUTION = (10.0, 20.0, 40.0, 20.0, 10.0)  # % of images with 5, 4, 3, 2, 1 stars
SPREAD = 1.5
TECHNICAL_PENALTY = 2.0
NEUTRAL_LEVEL = 3.0
LOSER_REASON = "group-loser"


@dataclass(frozen=True, slots=True)
class Entry:
    """What calibration knows of one image."""

    image_id: int
    absolute: float | None  # the model's 1-5 overall, None when it has none
    group_id: int | None = None  # None: a group of one
    rank: int | None = None  # 1 = best in its group
    size: int = 1  # images in its group
    faults: tuple[str, ...] = ()  # technical reasons (signals)


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome for one image."""

    image_id: int
    stars: int
    decision: str  # pick | reject | keep
    reasons: tuple[str, ...]
    score: float  # the latent score s_i


def parse_distribution(text: str) -> tuple[float, ...]:
    """``"10,20,40,20,10"`` -> five shares (5 stars first); ValueError when not five
    non-negative numbers with a positive sum."""
    parts = [float(part) for part in text.replace("/", ",").split(",") if part.strip()]
    if len(parts) != 5 or any(part < 0 for part in parts) or sum(parts) <= 0:
        raise ValueError("give five shares for 5, 4, 3, 2 and 1 stars, e.g. 10,20,40,20,10")
    return tuple(parts)


def calibrate(
    entries: Sequence[Entry],
    *,
    distribution: Sequence[float] = DEFAULT_DISTRIBUTION,
    spread: float = SPREAD,
) -> dict[int, Decision]:
    """The decision for every entry, by image id (see the module docstring)."""
    levels = _group_levels(entries)
    scores = {entry.image_id: _latent(entry, levels, spread) for entry in entries}
    ordered = sorted(entries, key=lambda e: (-scores[e.image_id], -(e.absolute or 0.0), e.image_id))
    stars = _percentile_stars([entry.image_id for entry in ordered], distribution)
    decisions = {}
    for entry in entries:
        count = stars[entry.image_id]
        decision, reasons = _decide(entry, count)
        decisions[entry.image_id] = Decision(
            entry.image_id, count, decision, reasons, round(scores[entry.image_id], 4)
        )
    return decisions


def _group_levels(entries: Sequence[Entry]) -> dict[int, float]:
    sums: dict[int, list[float]] = {}
    for entry in entries:
        if entry.group_id is not None:
            values = sums.setdefault(entry.group_id, [])
            if entry.absolute is not None:
                values.append(entry.absolute)
    return {
        group: (sum(values) / len(values) if values else NEUTRAL_LEVEL)
        for group, values in sums.items()
    }


def _latent(entry: Entry, levels: dict[int, float], spread: float) -> float:
    if entry.group_id is None or entry.rank is None or entry.size < 2:
        level = entry.absolute if entry.absolute is not None else NEUTRAL_LEVEL
        position = 0.0
    else:
        level = levels[entry.group_id]
        position = ((entry.size + 1) / 2 - entry.rank) / (entry.size - 1)
    return level + spread * position - (TECHNICAL_PENALTY if entry.faults else 0.0)


def _percentile_stars(best_first: list[int], distribution: Sequence[float]) -> dict[int, int]:
    """Stars by image id: the first share of ``best_first`` gets 5, the next 4, and so on."""
    total = sum(distribution)
    bounds, running = [], 0.0
    for share in distribution:
        running += share / total
        bounds.append(running)
    stars = {}
    count = len(best_first)
    for index, image_id in enumerate(best_first):
        position = (index + 0.5) / count  # the image's percentile from the top
        step = next((k for k, bound in enumerate(bounds) if position <= bound + 1e-9), 4)
        stars[image_id] = 5 - step
    return stars


def _decide(entry: Entry, stars: int) -> tuple[str, tuple[str, ...]]:
    if entry.faults:
        return "reject", entry.faults
    if entry.rank is None or entry.size < 2:
        return "keep", ()
    if entry.rank == 1:
        return "pick", ()
    bottom_third = entry.rank > entry.size - math.floor(entry.size / 3)
    if entry.size >= 3 and bottom_third and stars <= 2:
        return "reject", (LOSER_REASON,)
    return "keep", ()
