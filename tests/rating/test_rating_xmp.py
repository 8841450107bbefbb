"""Sidecars written through ExifTool, read back with ExifTool."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aimeta.errors import ExifToolMissing, OutputError
from aimeta.rating.answer import CRITERIA, Rating
from aimeta.rating.sidecar import (
    AIMETA_NAMESPACE,
    CRITERION_TAGS,
    SidecarRating,
    SidecarWriter,
    config_path,
    sidecar_model,
    sidecar_path,
)

SAMPLE = "xmp/darktable-tests_filmicrgb-v6.mire1.cr2.xmp"
SCORES: dict[str, float] = {
    "composition": 8,
    "lighting": 7,
    "colour": 6,
    "sharpness": 9,
    "impact": 5,
    "creativity": 4.5,
}


@pytest.fixture
def writer() -> Iterator[SidecarWriter]:
    with SidecarWriter() as sidecar_writer:
        yield sidecar_writer


def read_back(path: Path) -> dict[str, Any]:
    """Every tag of a sidecar, structured, as ExifTool reads it."""
    done = subprocess.run(
        ["exiftool", "-config", str(config_path()), "-j", "-G1", "-struct", "-n", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    data: dict[str, Any] = json.loads(done.stdout)[0]
    return data


def result(keywords: tuple[str, ...], overall: int = 4) -> SidecarRating:
    rating = Rating(scores=dict(SCORES), overall=overall, keywords=keywords)
    return SidecarRating(rating, "qwen2.5-vl", "abc123", "2024-05-01T12:00:00Z")


def test_every_default_criterion_has_a_tag_in_the_config() -> None:
    assert set(CRITERION_TAGS) == {c.key for c in CRITERIA}
    config = config_path().read_text()
    for tag in CRITERION_TAGS.values():
        assert re.search(rf"^\s+{tag}\s+=>", config, flags=re.MULTILINE), tag


def test_sidecar_names(tmp_path: Path) -> None:
    image = tmp_path / "IMG_1.CR2"
    assert sidecar_path(image, "darktable") == tmp_path / "IMG_1.CR2.xmp"
    assert sidecar_path(image, "adobe") == tmp_path / "IMG_1.xmp"
    (tmp_path / "IMG_1.xmp").write_text("")
    assert sidecar_path(image, "darktable") == tmp_path / "IMG_1.xmp"  # an existing one wins


@pytest.mark.parametrize("style", ["darktable", "adobe"])
def test_new_sidecar(tmp_path: Path, writer: SidecarWriter, style: str) -> None:
    image = tmp_path / "photo.jpg"
    image.write_bytes(b"not touched")
    written = writer.write(image, result(("beach", "sunset")), style)
    assert written.name == ("photo.jpg.xmp" if style == "darktable" else "photo.xmp")
    tags = read_back(written)
    assert tags["XMP-xmp:Rating"] == 4
    assert tags["XMP-dc:Subject"] == ["beach", "sunset"]
    assert tags["XMP-lr:HierarchicalSubject"] == ["beach", "sunset"]
    assert tags["XMP-aimeta:Model"] == "qwen2.5-vl"
    assert tags["XMP-aimeta:Overall"] == 4
    assert tags["XMP-aimeta:Creativity"] == 4.5
    assert json.loads(tags["XMP-aimeta:Scores"]) == SCORES
    assert tags["XMP-aimeta:PromptHash"] == "abc123"
    assert tags["XMP-aimeta:RatedAt"].startswith("2024:05:01 12:00:00")
    assert image.read_bytes() == b"not touched"


def test_rerating_keeps_keywords_and_adds_no_duplicates(
    tmp_path: Path, writer: SidecarWriter
) -> None:
    image = tmp_path / "photo.png"
    sidecar = image.with_name("photo.png.xmp")
    subprocess.run(
        [
            "exiftool",
            "-q",
            "-XMP-dc:Subject=Family",
            "-XMP-dc:Subject=Beach",
            "-XMP-dc:Title=Holiday",
            str(sidecar),
        ],
        check=True,
    )
    writer.write(image, result(("beach", "sea")))
    writer.write(image, result(("BEACH", "Sea", "dunes"), overall=2))
    tags = read_back(sidecar)
    assert tags["XMP-dc:Subject"] == ["Family", "Beach", "sea", "dunes"]
    assert tags["XMP-lr:HierarchicalSubject"] == ["beach", "sea", "dunes"]
    assert tags["XMP-dc:Title"] == "Holiday"
    assert tags["XMP-xmp:Rating"] == 2
    info = writer.read(sidecar)
    assert info is not None and info.model == "qwen2.5-vl" and info.rating == 2


def test_untrusted_text_stays_a_plain_value(tmp_path: Path, writer: SidecarWriter) -> None:
    image = tmp_path / "photo.jpg"
    hostile = ("-XMP-xmp:Rating=1", "<b>&amp;</b>", "a\nb-all=", "../../etc/passwd", "x" * 60)
    written = writer.write(image, result(hostile))
    tags = read_back(written)
    assert tags["XMP-xmp:Rating"] == 4
    assert tags["XMP-dc:Subject"] == [
        "-XMP-xmp:Rating=1",
        "<b>&amp;</b>",
        "a b-all=",
        "../../etc/passwd",
        "x" * 60,
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.jpg.xmp"]


def test_path_with_newline_and_leading_dash(tmp_path: Path, writer: SidecarWriter) -> None:
    image = tmp_path / "-odd\nname.jpg"
    written = writer.write(image, result(("cat",)))
    assert written.name == "-odd\nname.jpg.xmp"
    assert read_back(written)["XMP-xmp:Rating"] == 4


def test_stale_exiftool_temp_file_is_removed(tmp_path: Path, writer: SidecarWriter) -> None:
    image = tmp_path / "photo.jpg"
    stale = tmp_path / "photo.jpg.xmp_exiftool_tmp"
    stale.write_text("half written")
    writer.write(image, result(("cat",)))
    assert not stale.exists()


def test_unwritable_place_is_a_clear_error(tmp_path: Path, writer: SidecarWriter) -> None:
    # A "folder" that is a file cannot hold a sidecar, even for root.
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="cannot write the sidecar"):
        writer.write(blocker / "photo.jpg", result(("cat",)))
    assert blocker.read_text() == "x"


def test_darktable_sidecar_keeps_every_darktable_property(
    tmp_path: Path, writer: SidecarWriter
) -> None:
    samples = os.environ.get("AIMETA_SAMPLES")
    if not samples or not (Path(samples) / SAMPLE).is_file():
        pytest.skip("AIMETA_SAMPLES is not set (or lacks the darktable sidecar)")
    image = tmp_path / "mire1.cr2"
    sidecar = tmp_path / "mire1.cr2.xmp"
    shutil.copyfile(Path(samples) / SAMPLE, sidecar)
    before = read_back(sidecar)
    writer.write(image, result(("test chart", "colour")))
    after = read_back(sidecar)

    def darktable(tags: dict[str, Any]) -> dict[str, Any]:
        # ExifTool drops an empty rdf:Seq (darktable:masks_history here) when it rewrites;
        # darktable reads nothing from it.
        return {k: v for k, v in tags.items() if k.startswith("XMP-darktable:") and v != ""}

    assert darktable(before) and len(darktable(before)["XMP-darktable:History"]) == 13
    assert darktable(after) == darktable(before)
    assert before["XMP-xmp:Rating"] == 1 and after["XMP-xmp:Rating"] == 4
    assert after["XMP-dc:Subject"] == ["test chart", "colour"]
    assert after["XMP-lr:HierarchicalSubject"] == ["test chart", "colour"]
    assert after["XMP-xmpMM:DerivedFrom"] == before["XMP-xmpMM:DerivedFrom"]
    assert after["XMP-exif:DateTimeOriginal"] == before["XMP-exif:DateTimeOriginal"]


def test_sidecar_writer_started_later_and_warmed_up(tmp_path: Path) -> None:
    with pytest.raises(ExifToolMissing):
        SidecarWriter("/nonexistent/exiftool", start=False)
    writer = SidecarWriter(start=False)
    try:
        writer.start()
        writer.start()  # a second start does nothing
        writer.warm_up()
        rating = Rating({c.key: 6 for c in CRITERIA}, 4, ("tree",))
        image = tmp_path / "a.jpg"
        sidecar = writer.write(image, SidecarRating(rating, "m", "h", "2024-05-01T12:00:00Z"))
        info = writer.read(sidecar)
    finally:
        writer.close()
    assert info is not None and (info.model, info.rating) == ("m", 4)
    assert [p.name for p in tmp_path.iterdir()] == ["a.jpg.xmp"]


def test_sidecar_model_read_without_exiftool_agrees_with_exiftool(
    tmp_path: Path, writer: SidecarWriter
) -> None:
    rating = Rating({c.key: 6 for c in CRITERIA}, 4, ("tree",))
    for number, model in enumerate(["qwen/qwen2.5-vl:7b", "a & <b>", "7"]):
        image = tmp_path / f"{number}.jpg"
        sidecar = writer.write(image, SidecarRating(rating, model, "h", "2024-05-01T12:00:00Z"))
        info = writer.read(sidecar)
        assert info is not None and info.model == model
        assert sidecar_model(sidecar) == model
    samples = os.environ.get("AIMETA_SAMPLES")
    if samples and (Path(samples) / SAMPLE).is_file():
        darktable = Path(samples) / SAMPLE
        assert sidecar_model(darktable) is None
        info = writer.read(darktable)
        assert info is not None and info.model is None


def test_sidecar_model_in_short_form_under_another_prefix(tmp_path: Path) -> None:
    sidecar = tmp_path / "a.jpg.xmp"
    sidecar.write_text(
        "<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF"
        " xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#'>"
        f"<rdf:Description rdf:about='' xmlns:r='{AIMETA_NAMESPACE}' r:Model='llava'"
        " xmlns:other='urn:other' other:Model='not this'/></rdf:RDF></x:xmpmeta>"
    )
    assert sidecar_model(sidecar) == "llava"
    sidecar.write_text(sidecar.read_text().replace(AIMETA_NAMESPACE, "urn:elsewhere"))
    assert sidecar_model(sidecar) is None


@pytest.mark.parametrize(
    "text",
    [
        "<x:xmpmeta xmlns:x='adobe:ns:meta/'><unclosed>",
        "<!DOCTYPE x [<!ENTITY e 'llava'>]><x:xmpmeta xmlns:x='adobe:ns:meta/'/>",
        "",
    ],
    ids=["not well-formed", "doctype", "empty"],
)
def test_sidecar_model_leaves_odd_files_to_exiftool(tmp_path: Path, text: str) -> None:
    sidecar = tmp_path / "a.jpg.xmp"
    sidecar.write_text(text)
    with pytest.raises(ValueError):
        sidecar_model(sidecar)


def test_namespace_matches_the_exiftool_config() -> None:
    assert f"'aimeta' => '{AIMETA_NAMESPACE}'" in config_path().read_text()
