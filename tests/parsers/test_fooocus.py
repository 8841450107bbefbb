"""Fooocus (JSON and A1111 schemes, PNG and JPEG/WebP) and RuinedFooocus."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from aimeta.metadata.parsers import fooocus
from aimeta.metadata.readers.fields import text_fields
from aimeta.metadata.record import Record
from factory import png_with_text

BIG_SEED = "18446744073709551615"  # 2**64 - 1, as a string: must stay exact

FOOOCUS = {
    "prompt": "a smiling goldfish",
    "negative_prompt": "",
    "styles": "['Fooocus V2', 'Fooocus Sharp']",
    "performance": "Quality",
    "steps": 60,
    "resolution": "(896, 1152)",
    "guidance_scale": 4.5,
    "sharpness": 2,
    "adm_guidance": "(1.5, 0.8, 0.3)",
    "base_model": "juggernautXL_v8Rundiffusion",
    "base_model_hash": "aeb7e9e689",
    "refiner_model": "realisticVision",
    "refiner_model_hash": "15012c538f",
    "refiner_switch": 0.8,
    "sampler": "dpmpp_2m_sde_gpu",
    "scheduler": "karras",
    "seed": BIG_SEED,
    "loras": [["sd_xl_offset_example-lora_1.0", 0.1, "4852686128"]],
    "lora_combined_2": "pixel-art : 0.6",
    "vae": "Default (model)",
    "version": "Fooocus v2.5.5",
    "metadata_scheme": "fooocus",
    "full_prompt": ["a smiling goldfish, cinematic"],
}


def fields_of(path: Path) -> dict[str, str]:
    """Real ExifTool output for one file, as canonical text fields."""
    out = subprocess.run(
        ["exiftool", "-json", "-G1", "-n", "--", str(path)], capture_output=True, check=True
    ).stdout
    return text_fields(json.loads(out)[0])


def fooocus_exif_image(path: Path, parameters: str, scheme: str) -> Path:
    """A JPEG/WebP written the way Fooocus does: Pillow EXIF with a headerless UserComment,
    Software "Fooocus v..." and the scheme in MakerNote."""
    exif = Image.Exif()
    exif[0x9286] = parameters
    exif[0x0131] = "Fooocus v2.5.5"
    exif[0x927C] = scheme
    Image.new("RGB", (8, 8)).save(path, exif=exif)
    return path


def _check(record: Record | None) -> None:
    assert record is not None
    assert record.generator == "fooocus"
    assert record.prompt == "a smiling goldfish"
    assert record.params["seed"] == BIG_SEED
    assert record.params["cfg"] == "4.5"
    assert (record.params["width"], record.params["height"]) == ("896", "1152")
    assert (record.params["sampler_norm"], record.params["scheduler_norm"]) == (
        "dpmpp_2m_sde",
        "karras",
    )
    assert (record.params["model"], record.params["model_hash"]) == (
        "juggernautXL_v8Rundiffusion",
        "aeb7e9e689",
    )
    resources = {(r.kind, r.name, r.weight, r.hash) for r in record.resources}
    assert ("lora", "sd_xl_offset_example-lora_1.0", 0.1, "4852686128") in resources
    assert ("lora", "pixel-art", 0.6, None) in resources
    assert ("refiner", "realisticVision", None, "15012c538f") in resources
    assert not any(r.kind == "vae" for r in record.resources)  # "Default (model)" is no file
    assert record.extra["performance"] == "Quality"
    assert record.extra["sharpness"] == 2
    assert record.extra["styles"] == "['Fooocus V2', 'Fooocus Sharp']"


def test_png_json_scheme(tmp_path: Path) -> None:
    path = png_with_text(
        tmp_path / "f.png", {"parameters": json.dumps(FOOOCUS), "fooocus_scheme": "fooocus"}
    )
    fields = fields_of(path)
    _check(fooocus.parse(fields))


@pytest.mark.parametrize("suffix", [".jpg", ".webp"])
def test_exif_json_scheme_headerless_usercomment(tmp_path: Path, suffix: str) -> None:
    path = fooocus_exif_image(tmp_path / f"f{suffix}", json.dumps(FOOOCUS), "fooocus")
    fields = fields_of(path)
    assert fields["makernoteunknowntext"] == "fooocus"
    record = fooocus.parse(fields)
    _check(record)
    assert record is not None and "usercomment" in record.raw


def test_a1111_scheme_in_a_headerless_jpeg_usercomment(tmp_path: Path) -> None:
    text = (
        "a smiling goldfish, cinematic, film grain\nNegative prompt: blurry, ugly\n"
        "Steps: 30, Sampler: DPM++ 2M SDE Karras, Seed: 6952411511246973023, Size: 768x1280, "
        "CFG scale: 4, Sharpness: 2, Performance: Speed, Styles: \"['Fooocus V2']\", "
        "Model: juggernautXL_v8Rundiffusion, Model hash: aeb7e9e689, "
        "Raw prompt: a smiling goldfish, Raw negative prompt: blurry, "
        'Lora hashes: "add_detail: abcdef123456", Lora weights: "add_detail: 0.5", '
        "Version: Fooocus v2.4.3"
    )
    path = fooocus_exif_image(tmp_path / "f.jpg", text, "a1111")
    record = fooocus.parse(fields_of(path))
    assert record is not None
    assert record.generator == "fooocus"
    assert (record.prompt, record.negative_prompt) == ("a smiling goldfish", "blurry")
    assert record.extra["full_prompt"] == "a smiling goldfish, cinematic, film grain"
    assert record.params["seed"] == "6952411511246973023"
    assert (record.params["sharpness"], record.params["performance"]) == ("2", "Speed")
    assert record.params["sampler_norm"] == "dpmpp_2m_sde"
    loras = {(r.name, r.weight, r.hash) for r in record.resources if r.kind == "lora"}
    assert loras == {("add_detail", None, "abcdef123456"), ("add_detail", 0.5, None)}
    assert record.extra["metadata_scheme"] == "a1111"


def test_a1111_scheme_png_needs_the_version_or_scheme() -> None:
    text = "a cat\nSteps: 20, Sampler: Euler, Seed: 1, Size: 512x512"
    assert fooocus.parse({"parameters": text}) is None
    record = fooocus.parse({"parameters": text, "fooocus_scheme": "a1111"})
    assert record is not None and record.params["seed"] == "1"


def test_ruinedfooocus_packed_lora_strings() -> None:
    data = {
        "Prompt": "a dog",
        "Negative": "ugly",
        "steps": 24,
        "cfg": 4.5,
        "width": 1152,
        "height": 896,
        "seed": 3864674281,
        "sampler_name": "dpmpp_2m_sde_gpu",
        "scheduler": "karras",
        "base_model_name": "sd_xl_base_1.0_0.9vae.safetensors",
        "base_model_hash": "be9edd61",
        "loras": [["4852686128", "0.1 - sd_xl_offset_example-lora_1.0.safetensors"]],
        "clip_skip": 1,
        "software": "RuinedFooocus",
    }
    record = fooocus.parse({"parameters": json.dumps(data)})
    assert record is not None
    assert (record.prompt, record.negative_prompt) == ("a dog", "ugly")
    assert record.extra["app"] == "RuinedFooocus"
    assert record.params["model"] == "sd_xl_base_1.0_0.9vae.safetensors"
    lora = next(r for r in record.resources if r.kind == "lora")
    assert (lora.name, lora.weight, lora.hash) == (
        "sd_xl_offset_example-lora_1.0.safetensors",
        0.1,
        "4852686128",
    )
    older = dict(data, loras="Loras:<add_detail:0.5>,<pixel-art:1.0>")
    older_record = fooocus.parse({"parameters": json.dumps(older)})
    assert older_record is not None
    assert [(r.name, r.weight) for r in older_record.resources if r.kind == "lora"] == [
        ("add_detail", 0.5),
        ("pixel-art", 1.0),
    ]


def test_not_fooocus() -> None:
    assert fooocus.parse({"parameters": '{"prompt": "x"}'}) is None
    assert fooocus.parse({"parameters": "a cat\nSteps: 20, Sampler: Euler"}) is None
    assert fooocus.parse({"usercomment": "holiday photo"}) is None
