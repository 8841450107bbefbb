"""SIGKILL at any moment: `aimeta all`, `resources`, `resolve --rewrite` and `rate` are killed
at many points spread over their run, then run again to completion. Each time: the database
passes integrity_check, holds no duplicate rows and equals an uninterrupted run's (time
columns left out); every CSV parses with whole rows; every sidecar parses with ExifTool and
keeps its darktable:* properties.

Kill points are evenly spaced fractions of the uninterrupted run's duration (plus a little
jitter), each starting from a fresh copy of the same initial state. The processes come from
a fork server (see forkserver.py) so a kill point costs the run, not Python's start-up.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from rel_support import ForkServer, Run, integrity_ok, make_photos, table_dump

from aimeta.rating.sidecar import config_path
from darktable_xmp import MINIMAL_DARKTABLE_XMP
from factory import png_with_text
from openai_server import serve

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from make_corpus import make

DEFAULT_POINTS = 20
SOAK_POINTS = 40
DARKTABLE_SAMPLE = "xmp/darktable-tests_filmicrgb-v6.mire1.cr2.xmp"


@dataclass
class Campaign:
    """What the kills of one command did (for the assertions and the printed figures)."""

    command: str
    reference_s: float
    points: int = 0
    killed_mid_run: int = 0
    progress: list[str] = field(default_factory=list)

    def report(self) -> str:
        spread = sorted(set(self.progress))
        return (
            f"{self.command}: {self.points} kill points over {self.reference_s:.2f} s,"
            f" {self.killed_mid_run} killed mid-run, progress at kill {spread}"
        )


@pytest.fixture(scope="module")
def points(soak_mode: bool) -> int:
    return SOAK_POINTS if soak_mode else DEFAULT_POINTS


@pytest.fixture(scope="module")
def chain(soak_mode: bool) -> int:
    """Kills per fresh copy: 10 by default (fast), 1 in a soak (every kill from scratch)."""
    return 1 if soak_mode else 10


def _delays(reference_s: float, count: int, seed: int) -> list[float]:
    """``count`` kill delays spread evenly over the run, each moved by up to a quarter step."""
    rng = random.Random(seed)
    step = reference_s / count
    return [max(0.0, step * (index + 0.5 + rng.uniform(-0.25, 0.25))) for index in range(count)]


def _rows(database: Path, table: str) -> int:
    if not database.exists():
        return 0
    try:
        with sqlite3.connect(database, timeout=5) as conn:
            count = int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
        conn.close()
    except sqlite3.DatabaseError:
        return 0
    return count


def _copy_db(source: Path, target: Path) -> Path:
    """A consistent copy through SQLite's backup API (WAL content included)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    src.close()
    dst.close()
    return target


def _run_ok(server: ForkServer, args: list[str], cwd: Path) -> Run:
    done = server.run(args, cwd)
    assert done.code == 0, f"aimeta {' '.join(args)}: {done.stderr[-2000:]}"
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    return done


def _campaign(
    server: ForkServer,
    command: str,
    count: int,
    reference_s: float,
    prepare: Callable[[int], tuple[list[str], Path]],
    progress: Callable[[int], str],
    check: Callable[[int], None],
    chain: int,
) -> Campaign:
    """Kill runs ``count`` times at delays spread over ``reference_s``, then finish and check.

    Each fresh copy of the initial state takes ``chain`` kills in a row (each restart resumes
    the killed run and is killed again: kills during recovery), then one run to completion.
    """
    campaign = Campaign(command, reference_s)
    delays = _delays(reference_s, count, seed=sum(map(ord, command)))
    copies = (count + chain - 1) // chain
    for copy in range(copies):
        args, cwd = prepare(copy)
        # Copy c takes the delays c, c + copies, c + 2 * copies, ...: early and late points.
        for delay in delays[copy::copies]:
            killed = server.kill_after(args, cwd, delay)
            campaign.points += 1
            if killed.signal == signal.SIGKILL:
                campaign.killed_mid_run += 1
            else:
                assert killed.code == 0, killed.stderr[-2000:]
            campaign.progress.append(progress(copy))
        _run_ok(server, args, cwd)
        check(copy)
    print(campaign.report())
    # Most kills must land while the command works, at different stages of its work.
    assert campaign.killed_mid_run >= count * 0.6, campaign.report()
    assert len(set(campaign.progress)) >= 2, campaign.report()
    return campaign


def _reference_time(server: ForkServer, runs: list[tuple[list[str], Path]]) -> float:
    """The shortest of a few uninterrupted runs (the first one warms caches)."""
    times = []
    for args, cwd in runs:
        started = time.monotonic()
        _run_ok(server, args, cwd)
        times.append(time.monotonic() - started)
    return min(times)


# -- aimeta all -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, soak_mode: bool) -> Path:
    folder = tmp_path_factory.mktemp("corpus") / "Input"
    # More files than one task of the worker processes (aimeta.pipelines.dump.CHUNK_FILES),
    # so `all` reads, parses and stores in several steps that a kill can land between.
    make(600 if soak_mode else 200, folder)
    return folder


def _records_csv(out: Path) -> pd.DataFrame:
    frame = pd.read_csv(out / "records.csv", dtype=str, keep_default_na=False)
    drop = [c for c in frame.columns if c.endswith("_at") or c == "id"]
    return frame.drop(columns=drop).sort_values("path").reset_index(drop=True)


def _jsonl_rows(path: Path) -> list[dict[str, Any]]:
    with path.open("rb") as handle:
        lines = handle.read().split(b"\n")
    assert lines[-1] == b"", f"{path} ends with a partial line"
    return [json.loads(line) for line in lines[:-1]]


def _without_progress(tables: dict[str, Any]) -> dict[str, Any]:
    # ingest_progress names the JSONL file (its path and unique id) and how far ingest read
    # it: a killed dump legitimately appends some lines twice, so only the rest is compared.
    return {name: rows for name, rows in tables.items() if name != "ingest_progress"}


def _all_progress(out: Path) -> str:
    """Lines dumped and images stored so far."""
    raw = out / "exif_raw.jsonl"
    lines = raw.read_bytes().count(b"\n") if raw.exists() else 0
    exported = "records.csv" if (out / "records.csv").exists() else "no export"
    return f"{lines} lines/{_rows(out / 'images.db', 'images')} images/{exported}"


def test_kill_all(
    forkserver: ForkServer, corpus: Path, tmp_path: Path, points: int, chain: int
) -> None:
    reference = tmp_path / "reference"
    reference_s = _reference_time(
        forkserver,
        [
            (["all", str(corpus), "--out-dir", str(tmp_path / out), "-q"], tmp_path)
            for out in ("warm-up", "reference")
        ],
    )
    shutil.rmtree(tmp_path / "warm-up")
    expected = _without_progress(table_dump(reference / "images.db"))
    expected_csv = _records_csv(reference)
    assert len(expected["images"]) == len(list(corpus.rglob("*.*")))

    def prepare(index: int) -> tuple[list[str], Path]:
        out = tmp_path / f"kill{index:03d}"
        shutil.rmtree(out, ignore_errors=True)
        return ["all", str(corpus), "--out-dir", str(out), "-q"], tmp_path

    def check(index: int) -> None:
        out = tmp_path / f"kill{index:03d}"
        integrity_ok(out / "images.db")
        assert _without_progress(table_dump(out / "images.db")) == expected, f"point {index}"
        pd.testing.assert_frame_equal(_records_csv(out), expected_csv)
        records = _jsonl_rows(out / "records.jsonl")
        assert len(records) == len(expected["images"])
        _jsonl_rows(out / "exif_raw.jsonl")  # whole lines only
        shutil.rmtree(out)

    _campaign(
        forkserver,
        "all",
        points,
        reference_s,
        prepare,
        lambda index: _all_progress(tmp_path / f"kill{index:03d}"),
        check,
        chain,
    )


# -- aimeta resources and aimeta resolve --rewrite --------------------------------------------


@pytest.fixture(scope="module")
def civitai_db(
    tmp_path_factory: pytest.TempPathFactory, forkserver: ForkServer, soak_mode: bool
) -> tuple[Path, Path]:
    """A database of images that name their models by Civitai version id, and a map file."""
    base = tmp_path_factory.mktemp("civitai")
    folder = base / "Input"
    folder.mkdir()
    # More than two batches of 500, so a kill can land between batch commits.
    count = 2500 if soak_mode else 1050
    rows = ["version_id,model_id,kind,model_name,version_name,base_model,file_name"]
    for index in range(count):
        checkpoint, lora = 100_000 + index, 200_000 + index % 7
        resources = json.dumps(
            [
                {"type": "checkpoint", "modelVersionId": checkpoint, "modelName": f"ck{index}"},
                {"type": "lora", "weight": 0.5, "modelVersionId": lora, "modelName": "detail"},
            ]
        )
        infotext = (
            f"a fox number {index}, <lora:add_detail:0.4>\nNegative prompt: blurry\n"
            f"Steps: 25, Sampler: DPM++ 2M, CFG scale: 6, Seed: {index}, Size: 8x8,"
            f" Civitai resources: {resources}, Civitai metadata: {{}}"
        )
        png_with_text(folder / f"fox{index:04d}.png", {"parameters": infotext})
        rows.append(f"{checkpoint},{index},Checkpoint,Model {index},v1,SDXL,model{index}.st")
    rows += [f"{200_000 + n},{900 + n},LORA,Detail {n},v1,SDXL,detail{n}.st" for n in range(7)]
    (base / "map.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    _run_ok(forkserver, ["all", str(folder), "--out-dir", str(base / "out"), "-q"], base)
    return base / "out" / "images.db", base / "map.csv"


# What resources and resolve write (images, kv and tokens they only read).
RESOURCE_TABLES = frozenset(
    {"resources", "model_versions", "model_hashes", "civitai_lookups", "errors", "images"}
)


@pytest.mark.parametrize("command", ["resources", "resolve"])
def test_kill_resources_and_resolve(
    forkserver: ForkServer,
    civitai_db: tuple[Path, Path],
    tmp_path: Path,
    points: int,
    chain: int,
    command: str,
) -> None:
    source, map_file = civitai_db
    extra = ["--map", str(map_file), "--rewrite"] if command == "resolve" else []

    def args_for(database: Path) -> list[str]:
        return [command, "--db", str(database), *extra, "-q"]

    if command == "resources":
        # Rebuild from nothing, so the progress of the killed run shows in the table.
        source = _copy_db(source, tmp_path / "empty-resources.db")
        with sqlite3.connect(source) as conn:
            conn.execute("DELETE FROM resources")
        conn.close()
    reference = _copy_db(source, tmp_path / "reference.db")
    warm_up = _copy_db(source, tmp_path / "warm-up.db")
    reference_s = _reference_time(
        forkserver, [(args_for(warm_up), tmp_path), (args_for(reference), tmp_path)]
    )
    expected = table_dump(reference, only=RESOURCE_TABLES)
    if command == "resolve":
        names = {row for row in expected["resources"] if "Model 1" in repr(row)}
        assert names or any("model1" in repr(row) for row in expected["resources"])

    def database(index: int) -> Path:
        return tmp_path / f"kill{index:03d}.db"

    def prepare(index: int) -> tuple[list[str], Path]:
        return args_for(_copy_db(source, database(index))), tmp_path

    def progress(index: int) -> str:
        # How far the killed run got: resource rows, Civitai references, mappings, names.
        with sqlite3.connect(database(index)) as conn:
            rows, refs = conn.execute(
                "SELECT COUNT(*), SUM(kind = 'resource_ref') FROM resources"
            ).fetchone()
            versions = conn.execute("SELECT COUNT(*) FROM model_versions").fetchone()[0]
            named = conn.execute(
                "SELECT COUNT(*) FROM resources WHERE name GLOB 'model[0-9]*'"
            ).fetchone()[0]
        conn.close()
        return f"{rows} rows/{refs} refs/{versions} versions/{named} named"

    def check(index: int) -> None:
        integrity_ok(database(index))
        assert table_dump(database(index), only=RESOURCE_TABLES) == expected, f"point {index}"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{database(index)}{suffix}").unlink(missing_ok=True)

    _campaign(forkserver, command, points, reference_s, prepare, progress, check, chain)


# -- aimeta rate ------------------------------------------------------------------------------


RATE_TABLES = frozenset({"ratings", "rating_prompts", "errors"})
RATING_TAGS = frozenset(
    {"XMP-xmp:Rating", "XMP-aimeta:Overall", "XMP-aimeta:Scores", "XMP-dc:Subject"}
)


def _sidecar_tags(sidecars: list[Path]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Per sidecar name: its darktable:* properties, and the tags a rating writes, as
    ExifTool reads them (one ExifTool run)."""
    if not sidecars:
        return {}, {}
    done = subprocess.run(
        [
            "exiftool",
            "-j",
            "-G1",
            "-struct",
            "-config",
            str(config_path()),
            "-XMP-darktable:all",
            *(f"-{tag}" for tag in sorted(RATING_TAGS)),
            *map(str, sidecars),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    darktable: dict[str, Any] = {}
    ratings: dict[str, Any] = {}
    for item in json.loads(done.stdout):
        name = Path(item.pop("SourceFile")).name
        # ExifTool drops empty lists such as an empty darktable:masks_history when it rewrites
        # a sidecar (DESIGN.md: nothing darktable reads is lost), so empty values are left out.
        darktable[name] = {
            k: v
            for k, v in item.items()
            if k.startswith("XMP-darktable:") and v not in ("", [], {})
        }
        ratings[name] = {k: v for k, v in item.items() if k in RATING_TAGS}
    return darktable, ratings


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory, soak_mode: bool) -> Path:
    """Small images; two carry darktable sidecars (the real sample when AIMETA_SAMPLES is set,
    and one written here)."""
    folder = tmp_path_factory.mktemp("photos") / "photos"
    images = make_photos(folder, 24 if soak_mode else 8)
    first, second = images[0], images[1]
    first.with_name(first.name + ".xmp").write_text(
        MINIMAL_DARKTABLE_XMP.format(name=first.name), encoding="utf-8"
    )
    samples = os.environ.get("AIMETA_SAMPLES")
    if samples and (Path(samples) / DARKTABLE_SAMPLE).is_file():
        shutil.copyfile(Path(samples) / DARKTABLE_SAMPLE, second.with_name(second.name + ".xmp"))
    return folder


@pytest.fixture(scope="module")
def model_server() -> Iterator[str]:
    with serve(latency=0.04, slots=2) as server:
        yield server.base_url


def test_kill_rate(
    forkserver: ForkServer,
    photos: Path,
    model_server: str,
    tmp_path: Path,
    points: int,
    chain: int,
) -> None:
    darktable_before, _ratings = _sidecar_tags(sorted(photos.glob("*.xmp")))
    assert all(props for props in darktable_before.values())

    def layout(name: str) -> tuple[Path, Path]:
        return tmp_path / name / "photos", tmp_path / name / "ratings.db"

    def prepare_named(name: str) -> tuple[list[str], Path]:
        folder, database = layout(name)
        shutil.rmtree(folder.parent, ignore_errors=True)
        shutil.copytree(photos, folder, symlinks=True)
        args = [
            "rate",
            str(folder),
            "--api-url",
            model_server,
            "--db",
            str(database),
            "--converter",
            "pillow",
            "--workers",
            "2",
            "--size",
            "64",
            "-q",
        ]
        return args, folder.parent

    def state(name: str) -> tuple[dict[str, Any], pd.DataFrame, dict[str, Any], dict[str, Any]]:
        folder, database = layout(name)
        integrity_ok(database)
        tables = table_dump(database, replace=(str(folder), "PHOTOS"), only=RATE_TABLES)
        csvs = sorted(folder.glob("*.csv"))
        assert len(csvs) == 1
        frame = pd.read_csv(csvs[0], dtype=str, keep_default_na=False)
        assert frame.path.is_unique and set(frame.overall) <= set("12345")
        frame["path"] = frame.path.str.replace(str(folder), "PHOTOS", regex=False)
        frame = frame.drop(columns=["timestamp", "duration_s"]).sort_values("path")
        sidecars = sorted(folder.glob("*.xmp"))
        assert not [p for p in folder.iterdir() if "tmp" in p.name], "temporary files left"
        darktable, ratings = _sidecar_tags(sidecars)
        darktable = {name: tags for name, tags in darktable.items() if name in darktable_before}
        return tables, frame.reset_index(drop=True), darktable, ratings

    reference_s = _reference_time(
        forkserver, [prepare_named("warm-up"), prepare_named("reference")]
    )
    expected_tables, expected_csv, darktable_after, expected_tags = state("reference")
    assert darktable_after == darktable_before, "rating changed a darktable property"
    assert len(expected_tags) == len(list(photos.glob("*.jpg")) + list(photos.glob("*.png")))

    def prepare(index: int) -> tuple[list[str], Path]:
        return prepare_named(f"kill{index:03d}")

    def check(index: int) -> None:
        tables, frame, darktable, tags = state(f"kill{index:03d}")
        assert tables == expected_tables, f"kill point {index}"
        pd.testing.assert_frame_equal(frame, expected_csv)
        assert darktable == darktable_before, f"kill point {index}: darktable properties"
        assert tags == expected_tags, f"kill point {index}: sidecar ratings"
        shutil.rmtree(tmp_path / f"kill{index:03d}")

    _campaign(
        forkserver,
        "rate",
        points,
        reference_s,
        prepare,
        lambda index: str(_rows(layout(f"kill{index:03d}")[1], "ratings")),
        check,
        chain,
    )
