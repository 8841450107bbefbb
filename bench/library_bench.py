"""Library benchmark: the JSON API of `aimeta web` on the 100,000-image benchmark database.

Builds the database with bench/query_bench.py's generator (or reuses it with --keep), starts
`aimeta web`'s app under uvicorn in a child process, and times through HTTP: the first page of
100 items for single filters and the combinations of query_bench, page 50 against page 1,
facets, a cached thumbnail, and the server's memory. Thumbnail generation is timed in this
process on real 1.2 MP JPEGs and PNGs (one core). Prints a markdown table.

    .venv/bin/python bench/library_bench.py [--images 100000] [--runs 7] [--keep DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from aimeta import db
from aimeta.pipelines.search import SearchQuery
from aimeta.pipelines.thumbs import render
from query_bench import build, corpus_names, image_count, queries

THUMB_FILES = 40
PARAM_NAMES = {
    "tokens": "token", "not_tokens": "not_token", "neg_tokens": "neg_token",
    "not_neg_tokens": "not_neg_token", "loras": "lora", "resources": "resource",
}  # fmt: skip
SERVER = """
import sys, dataclasses, uvicorn
from pathlib import Path
from aimeta.settings import Settings
from aimeta.web.app import create_app
settings = dataclasses.replace(Settings(), db=Path(sys.argv[1]), host="127.0.0.1",
                               port=int(sys.argv[2]))
uvicorn.run(create_app(settings), host="127.0.0.1", port=settings.port, log_level="warning")
"""


def as_params(query: SearchQuery) -> list[tuple[str, str]]:
    """The /api/images parameters of a search (repeated names for tuples)."""
    params: list[tuple[str, str]] = []
    for field in dataclasses.fields(query):
        value = getattr(query, field.name)
        if field.name == "limit" or value in (None, ()):
            continue
        name = PARAM_NAMES.get(field.name, field.name)
        values = value if isinstance(value, tuple) else (value,)
        params += [(name, str(item)) for item in values]
    return params


class Client:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def get(self, path: str, params: list[tuple[str, str]] | None = None) -> tuple[float, bytes]:
        url = self.base + path + ("?" + urllib.parse.urlencode(params) if params else "")
        started = time.perf_counter()
        with urllib.request.urlopen(url, timeout=120) as response:
            body: bytes = response.read()
        return (time.perf_counter() - started) * 1000, body

    def json(self, path: str, params: list[tuple[str, str]] | None = None) -> Any:
        return json.loads(self.get(path, params)[1])

    def median(self, path: str, params: list[tuple[str, str]], runs: int) -> float:
        self.get(path, params)  # warm-up
        return statistics.median(self.get(path, params)[0] for _ in range(runs))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def start_server(database: Path, port: int) -> subprocess.Popen[bytes]:
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(database), str(port)])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return server
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise SystemExit("the server did not start")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def page_n(client: Client, params: list[tuple[str, str]], n: int, runs: int) -> float:
    """Median ms of fetching page ``n`` (100 items), its cursor found by walking there."""
    cursor = None
    for _ in range(n - 1):
        answer = client.json("/api/images", [*params, ("limit", "100"), *_cursor(cursor)])
        cursor = answer["next"]
    return client.median("/api/images", [*params, ("limit", "100"), *_cursor(cursor)], runs)


def _cursor(cursor: str | None) -> list[tuple[str, str]]:
    return [("cursor", cursor)] if cursor else []


def photo_files(folder: Path) -> list[Path]:
    """1216x832 (1 MP) JPEGs and PNGs: gradients with a quarter of noise, which compress
    about as generated pictures do (1 MB as PNG); flat colour would flatter the decoder."""
    rng = random.Random(3)
    ramp = Image.linear_gradient("L").resize((1216, 832))
    files = []
    for index in range(THUMB_FILES):
        tint = Image.new("L", (1216, 832), rng.randrange(256))
        smooth = Image.merge("RGB", (ramp, ramp.transpose(Image.Transpose.FLIP_TOP_BOTTOM), tint))
        noise = Image.effect_noise((1216, 832), 60).convert("RGB")
        picture = Image.blend(smooth, noise, 0.25)
        path = folder / f"photo{index:03d}.{'jpg' if index % 2 else 'png'}"
        picture.save(path, quality=90)
        files.append(path)
    return files


def point_rows_at(database: Path, files: list[Path]) -> list[int]:
    """Let the first images of the database be ``files`` (for the thumbnail timings)."""
    conn = db.connect(database)
    ids = [
        row[0] for row in conn.execute("SELECT id FROM images ORDER BY id LIMIT ?", (len(files),))
    ]
    with db.transaction(conn):
        for ident, path in zip(ids, files, strict=True):
            conn.execute("UPDATE images SET path = ? WHERE id = ?", (str(path), ident))
    conn.close()
    return ids


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--keep", type=Path, help="build the database here and keep it")
    args = parser.parse_args()

    folder = args.keep or Path(tempfile.mkdtemp(prefix="aimeta-library-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    database = folder / "images.db"
    if args.keep and database.is_file() and image_count(database) == args.images:
        vocab = corpus_names()[1]
    else:
        database.unlink(missing_ok=True)
        vocab = build(database, args.images)
    (folder / "images.thumbs.db").unlink(missing_ok=True)
    files = photo_files(Path(tempfile.mkdtemp(prefix="aimeta-photos-", dir=folder)))
    thumb_ids = point_rows_at(database, files)

    rows: list[tuple[str, str, str]] = []
    started = time.perf_counter()
    for path in files:
        render(path, 256)
    rate = len(files) / (time.perf_counter() - started)
    rows.append(
        (
            "thumbnail generation, 1 MP JPEG/PNG, one core",
            f"{len(files)} files",
            f"{rate:.0f} images/s",
        )
    )

    port = free_port()
    server = start_server(database, port)
    client = Client(port)
    try:
        for label, query in queries(vocab):
            if query.limit == 0:
                continue  # query_bench's "every match" rows: a page is always 100 here
            params = [*as_params(query), ("limit", "100")]
            answer = client.json("/api/images", params)
            ms = client.median("/api/images", params, args.runs)
            rows.append((f"first page, `{label}`", f"{answer['total']:,}", f"{ms:.1f} ms"))
        for label, params in (
            ("no filter, newest", []),
            (f"--token '{vocab['pos'][20]}', newest", [("token", vocab["pos"][20])]),
            ("no filter, path", [("sort", "path")]),
        ):
            first = page_n(client, params, 1, args.runs)
            fiftieth = page_n(client, params, 50, args.runs)
            rows.append((f"page 1 / page 50, {label}", "", f"{first:.1f} / {fiftieth:.1f} ms"))
        for label, params in (
            ("sort=rating, no filter", [("sort", "rating")]),
            ("sort=random, no filter", [("sort", "random"), ("sort_seed", "7")]),
        ):
            rows.append(
                (
                    f"first page, {label}",
                    "",
                    f"{client.median('/api/images', params, args.runs):.1f} ms",
                )
            )
        for label, params in (
            ("facets, no filter", []),
            (f"facets, --lora {vocab['lora'][0]}", [("lora", vocab["lora"][0])]),
        ):
            rows.append((label, "", f"{client.median('/api/facets', params, args.runs):.1f} ms"))
        count = client.median("/api/count", [], args.runs)
        rows.append(("image count, the page's poll for new images", "", f"{count:.1f} ms"))
        detail = f"/api/images/{thumb_ids[0]}"
        rows.append(("one image in full", "", f"{client.median(detail, [], args.runs):.1f} ms"))
        for ident in thumb_ids:
            client.get(f"/api/images/{ident}/thumb", [("size", "256")])
        cached = statistics.median(
            client.get(f"/api/images/{ident}/thumb", [("size", "256")])[0] for ident in thumb_ids
        )
        rows.append(
            (
                "cached thumbnail (256 px) through HTTP",
                f"{len(thumb_ids)} files",
                f"{cached:.1f} ms",
            )
        )
        rows.append(
            ("server memory (RSS) after all of the above", "", f"{rss_mb(server.pid):.0f} MB")
        )
    finally:
        server.terminate()
        server.wait(timeout=20)

    print(f"{args.images:,} images, {os.cpu_count()} cores; median of {args.runs} runs.\n")
    print("| measure | matches | result |")
    print("|---|---:|---:|")
    for label, matches, result in rows:
        print(f"| {label} | {matches} | {result} |")
    if args.keep is None:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
