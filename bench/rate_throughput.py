"""Throughput of `aimeta rate` against the local test server: --workers 1 versus --workers N.

The server answers each request after LATENCY seconds and serves SLOTS requests at once (as a
model server with parallel slots does). Run from the repository root:

    .venv/bin/python bench/rate_throughput.py [--images 32] [--latency 0.5] [--slots 4]

Prints images/s per worker count and the speed-up; exits 1 when --workers 4 is not at least
3x faster than --workers 1.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from PIL import Image

from aimeta import events
from aimeta.pipelines import rate
from aimeta.settings import Settings
from openai_server import serve


def make_folder(root: Path, count: int) -> Path:
    folder = root / "images"
    folder.mkdir()
    for index in range(count):
        Image.new("RGB", (640, 480), (index * 9 % 256, 120, 200)).save(folder / f"{index:03d}.jpg")
    return folder


def measure(root: Path, folder: Path, base_url: str, workers: int) -> tuple[float, float, int]:
    """Seconds for one full run (fresh database, CSV and sidecars), seconds of its rating
    phase (first image sent to last result, without start-up) and images rated."""
    for output in [*folder.glob("*.xmp"), *folder.glob("*.csv")]:
        output.unlink()
    settings = Settings(
        api_urls=(base_url,),
        db=root / f"bench-{workers}.db",
        workers=workers,
        converter="pillow",
        prompts_dir=root / "prompts",
    )
    marks: dict[str, float] = {}

    def on_event(event: events.Event) -> None:
        if isinstance(event, events.Started):
            marks["first"] = time.monotonic()
        elif isinstance(event, events.ItemResult):
            marks["last"] = time.monotonic()

    result = rate.run(settings, rate.RateOptions(folder=folder), on_event=on_event)
    return result.wall_s, marks["last"] - marks["first"], result.rated


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--slots", type=int, default=4)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as temporary,
        serve(latency=args.latency, slots=args.slots) as server,
    ):
        root = Path(temporary)
        folder = make_folder(root, args.images)
        print(
            f"{args.images} images (640x480 JPEG), server latency {args.latency} s, "
            f"{args.slots} slots, Pillow rendering, XMP + CSV + database written"
        )
        timings: dict[int, tuple[float, float]] = {}
        for workers in (1, 2, 4):
            seconds, rating_phase, rated = measure(root, folder, server.base_url, workers)
            timings[workers] = (seconds, rating_phase)
            print(
                f"--workers {workers}: {rated} rated in {seconds:6.2f} s wall "
                f"({rated / seconds:5.2f} images/s); rating phase {rating_phase:6.2f} s "
                f"({rated / rating_phase:5.2f} images/s)"
            )
        ideal = args.slots / args.latency
        best = args.images / timings[4][0]
        print(
            f"--workers 4 reached {best:.2f} images/s = {100 * best / ideal:.0f} % of the ideal "
            f"K/L = {args.slots}/{args.latency} s = {ideal:.2f} images/s"
        )
        speedup = timings[1][0] / timings[4][0]
        phase_speedup = timings[1][1] / timings[4][1]
        print(
            f"speed-up --workers 4 over --workers 1: {speedup:.2f}x wall, "
            f"{phase_speedup:.2f}x rating phase (ideal {min(4, args.slots)}x); "
            f"peak concurrent requests {server.max_concurrent}"
        )
    return 0 if speedup >= 3.0 else 1


if __name__ == "__main__":
    sys.exit(main())
