"""`aimeta cull` end to end: the real local model server, real SQLite, real ExifTool."""

from __future__ import annotations

import csv
import dataclasses
import json
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import ImageFilter
from PIL.PngImagePlugin import PngInfo

from aimeta.pipelines import cull, search
from aimeta.settings import Settings
from cull_images import scene, variant
from openai_server import Judge, serve

QUALITIES = (0.2, 0.8, 0.5, 0.6)  # per group: the second image is the best


def _photos(folder: Path, groups: int = 3, *, blurry: bool = True) -> dict[str, float]:
    """Groups of four near-duplicates, one single image and (optionally) a blurry one;
    returns the hidden quality by file name."""
    folder.mkdir(parents=True, exist_ok=True)
    hidden = {}
    for group in range(groups):
        picture = scene(40 + group)
        for index, quality in enumerate(QUALITIES):
            name = f"g{group}_{index}.jpg"
            image = variant(picture, quality, crop=2 * index, brightness=1 + 0.03 * (index - 1))
            image.save(folder / name, quality=92)
            hidden[name] = quality
    variant(scene(90), 0.5).save(folder / "single.png")
    hidden["single.png"] = 0.5
    if blurry:
        variant(scene(91), 0.9).filter(ImageFilter.GaussianBlur(4)).save(folder / "soft.png")
        hidden["soft.png"] = 0.9
    return hidden


@pytest.fixture
def cull_settings(tmp_path: Path) -> Callable[..., Settings]:
    def build(base_url: str, **changes: Any) -> Settings:
        base = Settings(
            api_urls=(base_url,),
            db=tmp_path / "out" / "images.db",
            out_dir=tmp_path / "out",
            converter="pillow",
            workers=2,
            jobs=1,
            size=512,
            retry_backoff=0.05,
            max_retries=1,
            request_timeout=10.0,
            prompts_dir=tmp_path / "prompts",
        )
        return dataclasses.replace(base, **changes)

    return build


def _ranking_requests(bodies: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The content parts of every request that sent two or more images."""
    found = []
    for body in bodies:
        parts = body["messages"][1]["content"]
        if sum(part["type"] == "image_url" for part in parts) >= 2:
            found.append(parts)
    return found


def _exif(paths: list[Path], *tags: str) -> list[dict[str, Any]]:
    done = subprocess.run(
        ["exiftool", "-j", "-n", *tags, *map(str, paths)],
        capture_output=True,
        text=True,
        check=True,
    )
    return list(json.loads(done.stdout))


def test_groups_ranked_once_each_with_picks_and_rejects(
    tmp_path: Path, cull_settings: Callable[..., Settings]
) -> None:
    folder = tmp_path / "photos"
    _photos(folder)
    with serve(judge=Judge(absolute_noise=0.3, compare_noise=0.0)) as server:
        settings = cull_settings(server.base_url)
        result = cull.run(settings, cull.CullOptions(folder=folder))
        requests = _ranking_requests(server.chat_bodies())
        again = cull.run(settings, cull.CullOptions(folder=folder))
        assert len(_ranking_requests(server.chat_bodies())) == len(requests)  # nothing re-asked
    assert again.ranked == 0 and again.reused == 3
    assert again.decisions == result.decisions

    assert sorted(sorted(Path(p).name for p in g) for g in result.groups) == [
        [f"g{group}_{index}.jpg" for index in range(4)] for group in range(3)
    ]
    assert len(requests) == 3 and result.requests == 3
    for parts in requests:  # the prompt, then "Image N" before each image
        texts = [part["text"] for part in parts[1::2]]
        assert texts == [f"Image {n}" for n in range(1, 5)]
        assert all(part["type"] == "image_url" for part in parts[2::2])
    by_name = {Path(p).name: row for p, row in result.decisions.items()}
    for group in range(3):
        assert by_name[f"g{group}_1.jpg"]["decision"] == "pick"
        assert [by_name[f"g{group}_{i}.jpg"]["rank"] for i in range(4)] == [4, 1, 3, 2]
    assert by_name["soft.png"]["decision"] == "reject"
    assert by_name["soft.png"]["reasons"] == ["blurry"]
    assert by_name["single.png"]["rank"] is None and by_name["single.png"]["decision"] == "keep"

    with sqlite3.connect(settings.db) as conn:
        rows = conn.execute(
            "SELECT i.file_name, d.decision, d.rank, d.stars, d.group_id FROM cull_decisions d"
            " JOIN images i ON i.id = d.image_id"
        ).fetchall()
        reasons = conn.execute("SELECT reason FROM cull_reasons").fetchall()
    assert len(rows) == 14 and {r[1] for r in rows} == {"pick", "reject", "keep"}
    assert all(1 <= r[3] <= 5 for r in rows)
    assert ("blurry",) in reasons

    with (folder / "ai_cull_results_test-vision-model.csv").open(encoding="utf-8") as handle:
        table = list(csv.DictReader(handle))
    assert len(table) == 14
    soft = next(row for row in table if row["path"].endswith("soft.png"))
    assert (soft["reject"], soft["pick"], soft["reasons"]) == ("1", "0", "blurry")

    read = {
        Path(row["SourceFile"]).name: row
        for row in _exif(
            sorted(folder.glob("*.xmp")),
            "-XMP-xmp:Rating",
            "-XMP-xmp:Label",
            "-XMP-lr:HierarchicalSubject",
            "-XMP-dc:Subject",
        )
    }
    assert read["g0_1.jpg.xmp"]["Label"] == "Green"
    assert read["soft.png.xmp"]["Label"] == "Red"
    assert set(read["soft.png.xmp"]["HierarchicalSubject"]) == {
        "aimeta cull|reject",
        "aimeta cull|blurry",
    }
    assert "Label" not in read["single.png.xmp"]
    assert read["g0_1.jpg.xmp"]["Rating"] == by_name["g0_1.jpg"]["stars"]

    # `aimeta search` shows the decision with each hit
    with sqlite3.connect(settings.db) as conn:
        hits = {Path(h.path).name: h for h in search.search(conn, search.SearchQuery(limit=0))}
    assert hits["g0_1.jpg"].cull is not None
    assert hits["g0_1.jpg"].cull["decision"] == "pick" and hits["g0_1.jpg"].cull["rank"] == 1
    assert hits["g0_1.jpg"].cull["stars"] == by_name["g0_1.jpg"]["stars"]


DARKTABLE_SIDECAR = """<?xml version="1.0" encoding="UTF-8"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="XMP Core 4.4.0-Exiv2">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:darktable="http://darktable.sf.net/"
   xmp:Rating="1"
   darktable:xmp_version="5"
   darktable:history_end="2">
   <darktable:history>
    <rdf:Seq>
     <rdf:li darktable:num="0" darktable:operation="exposure" darktable:enabled="1"/>
     <rdf:li darktable:num="1" darktable:operation="filmicrgb" darktable:enabled="1"/>
    </rdf:Seq>
   </darktable:history>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
"""


def test_user_rating_kept_unless_overwrite_and_darktable_history_kept(
    tmp_path: Path, cull_settings: Callable[..., Settings]
) -> None:
    folder = tmp_path / "photos"
    _photos(folder, groups=1, blurry=False)
    user_rated = folder / "g0_1.jpg.xmp"  # the best of the group
    user_rated.write_text(DARKTABLE_SIDECAR, encoding="utf-8")
    with serve(judge=Judge(compare_noise=0.0)) as server:
        settings = cull_settings(server.base_url)
        result = cull.run(settings, cull.CullOptions(folder=folder))
        (first,) = _exif([user_rated], "-XMP-xmp:Rating", "-XMP-xmp:Label")
        text = user_rated.read_text(encoding="utf-8")
        assert first["Rating"] == 1  # the user's stars
        assert result.stars_kept == 1
        assert "filmicrgb" in text and "exposure" in text and "history_end" in text
        assert first["Label"] == "Green"  # the pick: the label is written all the same

        overwritten = cull.run(settings, cull.CullOptions(folder=folder, overwrite=True))
    (second,) = _exif([user_rated], "-XMP-xmp:Rating")
    # the pick is first or second of five images: 5 or 4 stars
    assert second["Rating"] == overwritten.decisions[str(folder / "g0_1.jpg")]["stars"] >= 4
    assert "filmicrgb" in user_rated.read_text(encoding="utf-8")


def test_user_ratings_table_counts_as_a_user_rating(
    tmp_path: Path, cull_settings: Callable[..., Settings]
) -> None:
    folder = tmp_path / "photos"
    _photos(folder, groups=1, blurry=False)
    with serve(judge=Judge(compare_noise=0.0)) as server:
        settings = cull_settings(server.base_url)
        cull.run(settings, cull.CullOptions(folder=folder, xmp=False))
        with sqlite3.connect(settings.db) as conn:  # the library's user_ratings (migration 2)
            conn.execute(
                "INSERT INTO user_ratings SELECT id, 5, 0, NULL, 'now' FROM images"
                " WHERE file_name = 'g0_2.jpg'"
            )
        result = cull.run(settings, cull.CullOptions(folder=folder))
    assert result.stars_kept == 1
    (row,) = _exif([folder / "g0_2.jpg.xmp"], "-XMP-xmp:Rating", "-XMP-aimeta:CullStars")
    assert "Rating" not in row and row["CullStars"] >= 1


def _ai_image(path: Path, seed: int, prompt: str) -> None:
    info = PngInfo()
    info.add_text(
        "parameters",
        f"{prompt}\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a, CFG scale: 7, "
        f"Seed: {seed}, Size: 512x384, Model: dreamshaper",
    )
    variant(scene(seed), (seed % 7) / 7).save(path, pnginfo=info)


def test_ai_batches_grouped_by_their_parameters(
    tmp_path: Path, cull_settings: Callable[..., Settings]
) -> None:
    folder = tmp_path / "generated"
    folder.mkdir()
    for seed in (101, 102, 103):
        _ai_image(folder / f"lighthouse_{seed}.png", seed, "a lighthouse at dusk")
    for seed in (201, 202):
        _ai_image(folder / f"castle_{seed}.png", seed, "a castle in fog")
    with serve(judge=Judge()) as server:
        result = cull.run(cull_settings(server.base_url), cull.CullOptions(folder=folder))
    names = sorted(sorted(Path(p).name for p in group) for group in result.groups)
    assert names == [
        ["castle_201.png", "castle_202.png"],
        ["lighthouse_101.png", "lighthouse_102.png", "lighthouse_103.png"],
    ]
    assert result.count("pick") == 2


def test_big_group_ranked_in_overlapping_rounds(
    tmp_path: Path, cull_settings: Callable[..., Settings]
) -> None:
    folder = tmp_path / "burst"
    folder.mkdir()
    picture = scene(60)
    qualities = [0.3, 0.5, 0.1, 0.9, 0.7, 0.2, 0.6]
    for index, quality in enumerate(qualities):
        variant(picture, quality, crop=index).save(folder / f"b{index}.png")
    with serve(judge=Judge(compare_noise=0.0)) as server:
        result = cull.run(
            cull_settings(server.base_url), cull.CullOptions(folder=folder, group_size=3)
        )
        sizes = [
            sum(p["type"] == "image_url" for p in parts)
            for parts in _ranking_requests(server.chat_bodies())
        ]
    assert sorted(sizes) == [3, 3, 3]  # 3 new, then the best so far + 2 new, twice
    ranks = {Path(p).name: row["rank"] for p, row in result.decisions.items()}
    assert ranks["b3.png"] == 1 and sorted(ranks.values()) == list(range(1, 8))


def test_invalid_rankings_asked_again_once_then_recorded_as_failures(
    tmp_path: Path, cull_settings: Callable[..., Settings]
) -> None:
    folder = tmp_path / "photos"
    _photos(folder, groups=2, blurry=False)
    with serve(mode="malformed_json") as server:
        settings = cull_settings(server.base_url)
        result = cull.run(settings, cull.CullOptions(folder=folder))
        asked = len(_ranking_requests(server.chat_bodies()))
    assert asked == 4 and len(result.failed) == 2  # two tries per group
    assert all("rank images 1 to 4" in reason for _path, reason in result.failed)
    assert {row["decision"] for row in result.decisions.values()} == {"keep"}
    with sqlite3.connect(settings.db) as conn:
        recorded = conn.execute("SELECT count(*) FROM cull_rankings").fetchone()[0]
        errors = conn.execute("SELECT count(*) FROM errors WHERE stage = 'cull'").fetchone()[0]
    assert recorded == 0 and errors == 2


def test_dry_run_shows_groups_and_writes_nothing(
    tmp_path: Path, cull_settings: Callable[..., Settings]
) -> None:
    folder = tmp_path / "photos"
    _photos(folder, groups=2)
    before = sorted(folder.iterdir())
    lines: list[str] = []
    with serve() as server:
        settings = cull_settings(server.base_url)
        result = cull.run(
            settings,
            cull.CullOptions(folder=folder, dry_run=True),
            on_event=lambda event: lines.append(getattr(event, "message", "")),
        )
        assert server.request_count == 0
    assert sorted(folder.iterdir()) == before and not settings.db.exists()
    assert len(result.groups) == 2 and result.requests == 2
    assert sum(line.startswith("group of 4 (1 request(s))") for line in lines) == 2
    assert any("soft.png: blurry" in line for line in lines)


def _decisions(db_path: Path) -> dict[str, tuple[Any, ...]]:
    with sqlite3.connect(db_path) as conn:
        rows = conn.execute(
            "SELECT i.file_name, d.rank, d.stars, d.decision FROM cull_decisions d"
            " JOIN images i ON i.id = d.image_id"
        ).fetchall()
    return {row[0]: row[1:] for row in rows}


def _rankings(db_path: Path) -> int:
    try:
        with sqlite3.connect(db_path) as conn:
            return int(conn.execute("SELECT count(*) FROM cull_rankings").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def _command(folder: Path, url: str, db_path: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "aimeta",
        "cull",
        str(folder),
        "--api-url",
        url,
        "--db",
        str(db_path),
        "--out",
        str(db_path.parent),
        "--converter",
        "pillow",
        "--size",
        "512",
        "--workers",
        "1",
        "--quiet",
    ]


def test_killed_run_resumes_to_the_same_result(tmp_path: Path) -> None:
    # the same folder name: the same image ids, so the same requests in the same order
    killed_folder, whole_folder = tmp_path / "k" / "photos", tmp_path / "w" / "photos"
    _photos(killed_folder, groups=5, blurry=False)
    _photos(whole_folder, groups=5, blurry=False)
    killed_db, whole_db = tmp_path / "k" / "out" / "images.db", tmp_path / "w" / "out" / "images.db"
    with serve(latency=0.15, slots=1, judge=Judge()) as server:
        process = subprocess.Popen(
            _command(killed_folder, server.base_url, killed_db),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 60
        while _rankings(killed_db) < 2 and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait()
        recorded = _rankings(killed_db)
        assert 2 <= recorded < 5, "the run was not killed while ranking"
        asked = len(_ranking_requests(server.chat_bodies()))

        done = subprocess.run(
            _command(killed_folder, server.base_url, killed_db),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        found = re.search(r"(\d+) group\(s\): (\d+) ranked now, (\d+) ranked before", done.stderr)
        assert found, done.stderr
        groups, now, before = map(int, found.groups())
        assert groups == 5 and before == recorded and now == groups - recorded
        # the groups recorded before the kill were not asked again
        assert len(_ranking_requests(server.chat_bodies())) - asked == groups - recorded

        whole = subprocess.run(
            _command(whole_folder, server.base_url, whole_db),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert whole.returncode == 0, whole.stderr
    resumed, uninterrupted = _decisions(killed_db), _decisions(whole_db)
    assert len(resumed) == 21 and resumed == uninterrupted
