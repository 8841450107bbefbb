"""NovelAI: PNG chunks, v4 character prompts, WebP/JPEG UserComment JSON, stealth JSON."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from aimeta.metadata.parsers import novelai, parse_fields
from aimeta.metadata.readers.fields import text_fields
from aimeta.metadata.readers.native import read_native
from aimeta.metadata.record import Record
from factory import jpeg_with_exif, png_with_text, webp_with_exif

COMMENT = {
    "prompt": "1girl, {{smile}}, [[hat]], -0.8::sad::",
    "steps": 28,
    "height": 1216,
    "width": 832,
    "scale": 5.0,
    "uncond_scale": 1.0,
    "seed": 1234567890,
    "sampler": "k_euler_ancestral",
    "noise_schedule": "karras",
    "uc": "lowres, bad anatomy",
    "request_type": "PromptGenerateRequest",
    "v4_prompt": {
        "caption": {
            "base_caption": "1girl, {{smile}}",
            "char_captions": [
                {"char_caption": "girl, red hair", "centers": [{"x": 0.3, "y": 0.5}]},
                {"char_caption": "boy, glasses", "centers": [{"x": 0.7, "y": 0.5}]},
            ],
        },
        "use_coords": True,
    },
    "v4_negative_prompt": {
        "caption": {"base_caption": "lowres", "char_captions": [{"char_caption": "blurry"}]}
    },
}
CHUNKS = {
    "Title": "NovelAI generated image",
    "Description": "1girl, {{smile}}, [[hat]], -0.8::sad::",
    "Software": "NovelAI",
    "Source": "NovelAI Diffusion V4.5 4BDE2A90",
    "Generation time": "3.2",
    "Comment": json.dumps(COMMENT),
}


def fields_of(path: Path) -> dict[str, str]:
    """Real ExifTool output for one file, as canonical text fields."""
    out = subprocess.run(
        ["exiftool", "-json", "-G1", "-n", "--", str(path)], capture_output=True, check=True
    ).stdout
    return text_fields(json.loads(out)[0])


def _check_v4(record: Record | None) -> None:
    assert record is not None
    assert record.generator == "novelai"
    # The character captions follow the base prompt, one per line (see novelai._with_characters).
    assert record.prompt == "1girl, {{smile}}, [[hat]], -0.8::sad::\ngirl, red hair\nboy, glasses"
    assert record.negative_prompt == "lowres, bad anatomy\nblurry"
    params = record.params
    assert params["seed"] == "1234567890"
    assert params["steps"] == "28"
    assert params["cfg"] == "5"
    assert params["sampler"] == "k_euler_ancestral"
    assert params["scheduler"] == "karras"
    assert (params["width"], params["height"]) == ("832", "1216")
    assert (params["model"], params["model_hash"]) == ("NovelAI Diffusion V4.5", "4BDE2A90")
    extra = record.extra
    assert extra["characters"][0] == {
        "caption": "girl, red hair",
        "centers": [{"x": 0.3, "y": 0.5}],
    }
    assert extra["characters_negative"] == [{"caption": "blurry", "centers": []}]
    assert extra["prompt_syntax"] == "novelai"


def test_png_chunks_v45_through_exiftool(tmp_path: Path) -> None:
    fields = fields_of(png_with_text(tmp_path / "nai.png", CHUNKS))
    record = novelai.parse(fields)
    _check_v4(record)
    assert record is not None and record.extra["generationtime"] == "3.2"
    assert record.resources[0].hash_type == "novelai"


def test_webp_usercomment_json_with_nul_prefixed_description(tmp_path: Path) -> None:
    chunks = dict(CHUNKS, Description="\x00\x00\x00\x00" + CHUNKS["Description"])
    path = webp_with_exif(tmp_path / "nai.webp", user_comment=json.dumps(chunks))
    record = novelai.parse(fields_of(path))
    _check_v4(record)
    assert record is not None and "usercomment" in record.raw


@pytest.mark.parametrize("kind", ["webp", "jpg"])
def test_download_layout_gives_the_png_record(tmp_path: Path, kind: str) -> None:
    """NovelAI's WebP/JPEG: Software and the short prompt in EXIF IFD0, every chunk in a
    UserComment JSON (ASCII header, UTF-8 bytes) whose Comment is a JSON string and whose
    Description starts with NUL characters. IFD0's Software alone once won and lost it all."""
    chunks = dict(CHUNKS, Description="\x00\x00\x00\x00" + CHUNKS["Description"])
    writer = webp_with_exif if kind == "webp" else jpeg_with_exif
    path = writer(
        tmp_path / f"nai.{kind}",
        user_comment=json.dumps(chunks, ensure_ascii=False),
        encoding="ascii-utf8",
        software="NovelAI",
        image_description=CHUNKS["Description"],
    )
    png = parse_fields(fields_of(png_with_text(tmp_path / "nai.png", CHUNKS)))
    for fields in (fields_of(path), text_fields(read_native(path))):
        record = parse_fields(fields)
        _check_v4(record)
        assert record.raw.keys() == {"usercomment"}
        assert (record.prompt, record.negative_prompt) == (png.prompt, png.negative_prompt)
        assert record.params == png.params
        assert record.resources == png.resources
        assert record.extra == png.extra


def test_jpeg_headerless_usercomment(tmp_path: Path) -> None:
    chunks = {key: value for key, value in CHUNKS.items() if key != "Description"}
    path = jpeg_with_exif(tmp_path / "nai.jpg", user_comment=json.dumps(chunks), encoding="none")
    _check_v4(novelai.parse(fields_of(path)))


def test_description_only_prompt_and_nul_cleaning() -> None:
    comment = {"steps": 50, "sampler": "k_euler", "seed": 1, "uc": "bad", "scale": 11}
    record = novelai.parse(
        {
            "software": "NovelAI",
            "description": "\x00\x00masterpiece, cat",
            "comment": json.dumps(comment),
            "source": "Stable Diffusion 1D44365E",
        }
    )
    assert record is not None
    assert record.prompt == "masterpiece, cat"
    assert (record.params["model"], record.params["model_hash"]) == ("Stable Diffusion", "1D44365E")


def test_stealth_json_is_read() -> None:
    record = novelai.parse({"stealth_png_info": json.dumps(CHUNKS)})
    _check_v4(record)


def test_mojibake_prompt_is_repaired_by_the_field_reader(tmp_path: Path) -> None:
    chunks = dict(CHUNKS, Description="#テスト, 1girl")
    comment = dict(COMMENT, prompt="#テスト, 1girl")
    chunks["Comment"] = json.dumps(comment, ensure_ascii=False)
    # UTF-8 bytes written into Latin-1 tEXt chunks, as some tools do.
    path = png_with_text(tmp_path / "moji.png", chunks, tEXt_encoding="utf-8")
    raw = json.loads(
        subprocess.run(
            ["exiftool", "-json", "-G1", "-n", "--", str(path)], capture_output=True, check=True
        ).stdout
    )[0]
    assert raw["PNG:Description"].startswith("#ãƒ†ã‚¹ãƒˆ")
    record = novelai.parse(text_fields(raw))
    assert record is not None and record.prompt is not None
    assert record.prompt.splitlines()[0] == "#テスト, 1girl"


def test_other_software_is_not_novelai() -> None:
    assert novelai.parse({"software": "GIMP 2.10", "comment": '{"uc": "x"}'}) is None
    assert novelai.parse({"software": "NovelAI", "comment": "not json"}) is not None
