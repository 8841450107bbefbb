"""One list of the text fields that carry generation metadata, used alike by dump (stealth
search), ingest (damaged JSON is an error) and the ``unknown`` detector."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from aimeta.metadata.parsers import registry, unknown
from aimeta.metadata.readers.fields import GENERATION_FIELDS
from aimeta.pipelines import dump
from aimeta.pipelines.prepare import damaged_json
from factory import write_stealth

# Fields that cameras, editors and other software write too: they count only by their value.
# A parser field missing from both lists fails test_every_parser_field_is_classified.
SHARED_FIELDS = frozenset(
    {
        "comment",
        "usercomment",
        "xmp:usercomment",
        "xmp:creatortool",
        "imagedescription",
        "documentname",
        "make",
        "model",
        "software",
        "title",
        "description",
        "source",
        "generationtime",
        "makernoteunknowntext",
        "c2pa_manifest",  # Content Credentials: cameras and editors sign images too
    }
)
# Fields that never come from a PNG text chunk (XMP properties, what dump derives from a
# C2PA store): the stealth-search part of the agreement test cannot write them as chunks.
NOT_PNG_CHUNKS = frozenset({"xmp:usercomment", "xmp:creatortool", "c2pa_manifest"})
DAMAGED = "{not json"
STEALTH_TEXT = "hidden prompt\nSteps: 20, Seed: 1, Size: 48x40"


def dumped_tags(tmp_path: Path, chunks: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """Tags that a real dump run records for stealth PNGs carrying the given text chunks."""
    folder = tmp_path / "in"
    folder.mkdir()
    for name, texts in chunks.items():
        write_stealth(
            folder / f"{name}.png", STEALTH_TEXT, channel="alpha", compressed=False, chunks=texts
        )
    out = tmp_path / "exif_raw.jsonl"
    dump.run([folder], out, reader="native", processes=1)
    lines = [orjson.loads(raw) for raw in out.read_bytes().splitlines()[1:]]
    return {Path(line["path"]).stem: line["tags"] for line in lines}


def recognised_by(tags: dict[str, str], field: str, value: str) -> dict[str, bool]:
    """Which of the three consumers take ``field`` (holding ``value``) as generation text."""
    return {
        "dump": "AIMETA:StealthPNGInfo" not in tags,  # no stealth search: text was evidence
        "ingest": damaged_json({field: value}) is not None,
        "unknown": unknown.parse({field: value}) is not None,
    }


def test_dump_ingest_and_unknown_agree_on_every_field(tmp_path: Path) -> None:
    neutral = sorted(SHARED_FIELDS - NOT_PNG_CHUNKS)
    names = [name for name in sorted(GENERATION_FIELDS) if not name.startswith("xmp:")] + neutral
    # PNG keywords are case-insensitive for the readers: "Comment" is the field "comment".
    tags = dumped_tags(tmp_path, {name: {name: DAMAGED} for name in names})
    wrong = {}
    for name in names:
        seen = recognised_by(tags[name], name, DAMAGED)
        if set(seen.values()) != {name in GENERATION_FIELDS}:
            wrong[name] = seen
    assert not wrong, f"fields the three consumers disagree about: {wrong}"


def test_a_comment_counts_by_its_value(tmp_path: Path) -> None:
    """A PNG Comment is searched for stealth text unless it reads like generation metadata
    (NovelAI writes its JSON there)."""
    novelai = '{"prompt": "a fox", "steps": 28, "sampler": "k_euler"}'
    tags = dumped_tags(
        tmp_path, {"holiday": {"Comment": "Holiday 2023"}, "novelai": {"Comment": novelai}}
    )
    assert tags["holiday"]["AIMETA:StealthPNGInfo"] == STEALTH_TEXT
    assert "AIMETA:StealthPNGInfo" not in tags["novelai"]
    assert unknown.parse({"comment": novelai}) is not None
    assert unknown.parse({"comment": "Holiday 2023"}) is None


@pytest.mark.parametrize("name", sorted(GENERATION_FIELDS))
def test_damaged_json_names_the_field(name: str) -> None:
    assert damaged_json({name: DAMAGED, "comment": DAMAGED}) == (
        f"the {name!r} text is not valid JSON "
        "(Expecting property name enclosed in double quotes: line 1 column 2 (char 1))"
    )
    assert damaged_json({name: '{"valid": true}'}) is None


def test_every_parser_field_is_classified() -> None:
    """A parser that reads a new field must say whether only generators write it."""
    assert not GENERATION_FIELDS & SHARED_FIELDS
    for parser in registry():
        unclassified = (parser.source_fields or frozenset()) - GENERATION_FIELDS - SHARED_FIELDS
        assert not unclassified, f"{parser.name} reads {sorted(unclassified)}: add to a list"
