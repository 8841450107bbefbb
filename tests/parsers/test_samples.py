"""The real A1111 and ComfyUI files in $AIMETA_SAMPLES/generated parse to the values their
source projects' tests expect (see the samples README). Skipped when AIMETA_SAMPLES is unset."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from aimeta.metadata.parsers import parse_fields
from aimeta.metadata.readers.fields import text_fields
from aimeta.metadata.record import Record
from conftest import samples_dir

pytestmark = [
    pytest.mark.skipif(samples_dir() is None, reason="AIMETA_SAMPLES is not set"),
    pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool is not installed"),
]

DUCK = {
    "prompt": "photo of a duck",
    "negative": "monochrome",
    "sampler": "UniPC",
    "sampler_norm": "uni_pc",
    "steps": "15",
    "cfg": "5",
    "seed": "235284042",
    "model": "realistic_realisticVisionV20_v20",
    "model_hash": "c0d1994c73",
    "width": "512",
    "height": "400",
}


def parse_sample(name: str) -> Record:
    folder = samples_dir()
    assert folder is not None
    path = Path(folder) / "generated" / name
    result = subprocess.run(
        ["exiftool", "-json", "-G1", "-n", "--", str(path)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        check=True,
    )
    [tags] = json.loads(result.stdout)
    return parse_fields(text_fields(tags))


def check(record: Record, expected: dict[str, str]) -> None:
    assert (record.prompt or "").strip() == expected["prompt"]
    assert (record.negative_prompt or "").strip() == expected["negative"]
    for key, value in expected.items():
        if key not in ("prompt", "negative"):
            assert record.params.get(key) == value, key


@pytest.mark.parametrize(
    "name", ["automatic1111_cropped.png", "automatic1111_cropped.jpg", "text_after_idat.png"]
)
def test_a1111_duck(name: str) -> None:
    record = parse_sample(name)
    assert record.generator == "a1111"
    check(record, DUCK)
    [checkpoint] = record.resources
    assert (checkpoint.kind, checkpoint.name, checkpoint.hash) == (
        "checkpoint",
        "realistic_realisticVisionV20_v20",
        "c0d1994c73",
    )


def test_imagemetahub_a1111_with_lora() -> None:
    record = parse_sample("imagemetahub_a1111.png")
    assert record.generator == "a1111"
    assert "astronaut riding a horse" in (record.prompt or "")
    check(
        record,
        {
            "prompt": "a photograph of an astronaut riding a horse, <lora:detailTweaker:0.8>",
            "negative": "blurry, low quality, watermark",
            "steps": "28",
            "sampler": "DPM++ 2M",
            "sampler_norm": "dpmpp_2m",
            "scheduler_norm": "karras",
            "cfg": "7",
            "seed": "2895438046",
            "model": "v1-5-pruned-emaonly",
            "model_hash": "6ce0161689",
            "width": "512",
            "height": "768",
            "denoise": "0.45",
            "clip_skip": "2",
            "version": "v1.9.4",
        },
    )
    loras = [(r.name, r.weight) for r in record.resources if r.kind == "lora"]
    assert loras == [("detailTweaker", 0.8)]


def test_img2img_comfyui() -> None:
    record = parse_sample("img2img_cropped.png")
    assert record.generator == "comfyui"
    check(
        record,
        {
            "prompt": "photograph of victorian woman with wings, sky clouds, meadow grass",
            "negative": "watermark, text",
            "sampler": "sample_dpmpp_2m",
            "sampler_norm": "dpmpp_2m",
            "seed": "280823642470253",
            "steps": "20",
            "scheduler": "normal",
            "model": "v1-5-pruned-emaonly.ckpt",
        },
    )
    assert float(record.params["cfg"]) == 8.0
    assert float(record.params["denoise"]) == 0.8700000000000001
    assert "workflow" in record.raw


def test_night_evening_day_morning_two_samplers() -> None:
    record = parse_sample("night_evening_day_morning_cropped.png")
    assert record.generator == "comfyui"
    params = record.params
    assert (params["sampler"], params["scheduler"], params["seed"], params["steps"]) == (
        "dpmpp_sde",
        "normal",
        "335608130539327",
        "13",
    )
    assert float(params["cfg"]) == 8.5 and float(params["denoise"]) == 1.0
    assert params["model"] == "Anything-V3.0.ckpt"
    assert (params["width"], params["height"], params["clip_skip"]) == ("704", "1280", "2")
    assert (params["hires_width"], params["hires_height"]) == ("1088", "1920")
    positives = record.extra["positive_prompts"]
    assert sorted(p["node"] for p in positives) == ["13", "14", "17", "33", "6"]
    node_6 = next(p["text"] for p in positives if p["node"] == "6")
    assert node_6 == (
        "(masterpiece) (best quality) beautiful landscape breathtaking amazing view nature "
        "photograph forest mountains ocean (sky) national park scenery"
    )
    area_17 = next(p["area"] for p in positives if p["node"] == "17")
    assert (area_17["node"], area_17["width"], area_17["height"], area_17["x"], area_17["y"]) == (
        "11",
        704,
        384,
        0,
        512,
    )
    [second] = record.extra["samplers"]
    assert (second["node"], second["sampler"], second["scheduler"], second["seed"]) == (
        "24",
        "dpmpp_2m",
        "simple",
        "1122440447966177",
    )
    assert (second["steps"], float(second["cfg"]), float(second["denoise"])) == ("14", 7.0, 0.5)
    assert second["model"] == "AbyssOrangeMix2_hard.safetensors"
    found = sorted((r.kind, r.name) for r in record.resources)
    assert found == [
        ("checkpoint", "AbyssOrangeMix2_hard.safetensors"),
        ("checkpoint", "Anything-V3.0.ckpt"),
        ("vae", "vae-ft-mse-840000-ema-pruned.safetensors"),
    ]


def test_imagemetahub_comfyui() -> None:
    record = parse_sample("imagemetahub_comfyui.png")
    assert record.generator == "comfyui"
    check(
        record,
        {
            "prompt": "a majestic lion in the savanna",
            "negative": "text, watermark",
            "model": "sd_xl_base_1.0.safetensors",
            "steps": "20",
            "sampler": "euler",
            "seed": "156680208700286",
            "cfg": "8",
            "scheduler": "normal",
            "width": "1024",
            "height": "1024",
        },
    )


@pytest.mark.parametrize("name", ["empty_image.png", "empty_image.jpg"])
def test_no_generation_metadata(name: str) -> None:
    record = parse_sample(name)
    assert record.generator == "none"
    assert record.prompt is None and record.params == {}
