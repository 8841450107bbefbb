"""How much `aimeta cull` improves on `aimeta rate`, against a simulated model with known noise.

The local test server plays a model that is noisy in absolute scores and better at comparing
(tests/openai_server.py, ``Judge``): each generated image carries a hidden quality q (0-1);
a rating is ``1 + 4 * (q + N(0, absolute_noise))`` rounded into 1-5 stars, a ranking orders a
group by ``q + N(0, compare_noise)``. The set: GROUPS groups of 3-8 near-duplicates (crops and
exposure changes of one generated scene), group means spread over the scale and images within
a group up to 0.25 apart. Run from the repository root:

    .venv/bin/python bench/cull_quality.py [--groups 12] [--seed 7] [--noise 0.15,0.25,0.35]

Prints a markdown table per absolute-noise level: Spearman correlation of rate's stars and of
cull's stars with the hidden quality (and of cull's latent score, before the percentile cut),
the share of groups whose pick is the truly best image, whether the groups were found as
built, and the model requests per image of each command. Exits 1 when cull's stars do not beat
rate's by 0.10 at the middle noise level, or picks are right in fewer than 80 % of groups.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import sqlite3
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import pandas as pd

from aimeta.pipelines import cull
from aimeta.settings import Settings
from cull_images import scene, variant
from openai_server import Judge, serve


@dataclasses.dataclass
class Outcome:
    rate_spearman: float
    cull_spearman: float
    latent_spearman: float
    pick_accuracy: float
    groups_as_built: bool
    rate_requests: float
    cull_requests: float


def make_set(folder: Path, groups: int, seed: int) -> dict[str, tuple[int, float]]:
    """The images, and their (group, hidden quality) by file name."""
    rng = random.Random(seed)
    folder.mkdir(parents=True)
    truth = {}
    for group in range(groups):
        picture = scene(1000 + seed * 100 + group)
        centre = rng.uniform(0.2, 0.8)
        for index in range(rng.randint(3, 8)):
            quality = min(1.0, max(0.0, centre + rng.uniform(-0.125, 0.125)))
            image = variant(
                picture, quality, crop=rng.randint(0, 5), brightness=rng.uniform(0.95, 1.05)
            )
            name = f"g{group:02d}_{index}.jpg"
            image.save(folder / name, quality=90)
            truth[name] = (group, quality)
    return truth


def spearman(first: list[float], second: list[float]) -> float:
    return float(pd.Series(first).corr(pd.Series(second), method="spearman"))


def measure(groups: int, seed: int, judge: Judge) -> Outcome:
    with tempfile.TemporaryDirectory(prefix="aimeta-cull-bench-") as temp:
        root = Path(temp)
        folder = root / "photos"
        truth = make_set(folder, groups, seed)
        with serve(judge=judge, slots=4) as server:
            settings = Settings(
                api_urls=(server.base_url,),
                db=root / "out" / "images.db",
                out_dir=root / "out",
                converter="pillow",
                workers=4,
                jobs=1,
                size=512,
                prompts_dir=root / "prompts",
            )
            result = cull.run(settings, cull.CullOptions(folder=folder, xmp=False))
        with sqlite3.connect(settings.db) as conn:
            rated = dict(conn.execute("SELECT path, overall FROM ratings").fetchall())
    names = sorted(truth)
    hidden = [truth[name][1] for name in names]
    by_name = {Path(path).name: row for path, row in result.decisions.items()}
    picks_right = 0
    for group in range(groups):
        members = [name for name in names if truth[name][0] == group]
        best = max(members, key=lambda name: truth[name][1])
        picks_right += by_name[best]["decision"] == "pick"
    built = sorted(sorted(n for n in names if truth[n][0] == g) for g in range(groups))
    found = sorted(sorted(Path(p).name for p in members) for members in result.groups)
    return Outcome(
        rate_spearman=spearman([rated[str(folder / name)] for name in names], hidden),
        cull_spearman=spearman([by_name[name]["stars"] for name in names], hidden),
        latent_spearman=spearman([by_name[name]["score"] for name in names], hidden),
        pick_accuracy=picks_right / groups,
        groups_as_built=found == built,
        rate_requests=result.rate_requests / len(names),
        cull_requests=(result.rate_requests + result.requests) / len(names),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--groups", type=int, default=12)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--noise", default="0.15,0.25,0.35", help="absolute-noise levels")
    parser.add_argument("--compare-noise", default="0.02,0.05", help="comparison-noise levels")
    args = parser.parse_args()
    levels = [float(level) for level in args.noise.split(",")]
    compare_levels = [float(level) for level in args.compare_noise.split(",")]
    with tempfile.TemporaryDirectory() as temp:
        truth = make_set(Path(temp) / "set", args.groups, args.seed)
    print(
        f"{args.groups} groups, {len(truth)} images (seed {args.seed}); mean gap between the "
        f"best and the second-best image of a group: {best_gap(truth, args.groups):.3f}\n"
    )
    print(
        "| absolute noise | comparison noise | rate stars ρ | cull stars ρ | cull latent ρ "
        "| gain | picks right | groups as built | requests/image rate | requests/image cull |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    outcomes = []
    for compare in compare_levels:
        for level in levels:
            outcome = measure(args.groups, args.seed, Judge(level, compare))
            outcomes.append(outcome)
            _row(level, compare, outcome)
    middle = outcomes[len(levels) // 2]  # the middle absolute noise, the first comparison noise
    ok = middle.cull_spearman - middle.rate_spearman >= 0.10 and middle.pick_accuracy >= 0.8
    return 0 if ok else 1


def best_gap(truth: dict[str, tuple[int, float]], groups: int) -> float:
    gaps = []
    for group in range(groups):
        qualities = sorted((q for g, q in truth.values() if g == group), reverse=True)
        gaps.append(qualities[0] - qualities[1])
    return sum(gaps) / len(gaps)


def _row(level: float, compare: float, outcome: Outcome) -> None:
    print(
        f"| {level:.2f} | {compare:.2f} | {outcome.rate_spearman:.3f} "
        f"| {outcome.cull_spearman:.3f} "
        f"| {outcome.latent_spearman:.3f} "
        f"| {outcome.cull_spearman - outcome.rate_spearman:+.3f} "
        f"| {outcome.pick_accuracy:.0%} | {'yes' if outcome.groups_as_built else 'no'} "
        f"| {outcome.rate_requests:.2f} | {outcome.cull_requests:.2f} |"
    )


if __name__ == "__main__":
    sys.exit(main())
