"""Hugging Face Spaces (diffusers apps) JSON and PPDiffusers key-per-line text in the PNG
``parameters`` chunk, read from real files through ExifTool and the whole registry."""

from __future__ import annotations

import json
from pathlib import Path

from aimeta.metadata.parsers import ORDER, parse_fields
from exif_fields import exiftool_fields as fields_of
from factory import png_with_text

SPACE = {
    "prompt": "1girl, solo, looking at viewer, masterpiece",
    "negative_prompt": "lowres, bad anatomy",
    "resolution": "896 x 1152",
    "guidance_scale": 7,
    "num_inference_steps": 28,
    "seed": 1234567,
    "sampler": "Euler a",
    "sdxl_style": "(None)",
    "add_quality_tags": True,
    "use_upscaler": {
        "upscale_method": "nearest-exact",
        "upscaler_strength": 0.55,
        "upscale_by": 1.5,
        "new_resolution": "1344 x 1728",
    },
    "Model": "Animagine XL 3.1",
    "Model hash": "e3c47aedb0",
}
PADDLE = (
    "a cat sitting on a chair, oil painting\n"
    "negative_prompt: lowres, blurry,\n"
    "  extra limbs\n"
    "steps: 50\n"
    "sampler: DDIM\n"
    "seed: 42\n"
    "guidance_scale: 7.5\n"
    "size: 512x768\n"
    "model: runwayml/stable-diffusion-v1-5"
)


def test_space_json_parameters(tmp_path: Path) -> None:
    path = png_with_text(tmp_path / "space.png", {"parameters": json.dumps(SPACE)})
    record = parse_fields(fields_of(path))
    assert record.generator == "diffusers"
    assert record.prompt == "1girl, solo, looking at viewer, masterpiece"
    assert record.negative_prompt == "lowres, bad anatomy"
    assert record.params == {
        "steps": "28",
        "cfg": "7",
        "seed": "1234567",
        "sampler": "Euler a",
        "sampler_norm": "euler_ancestral",
        "width": "896",
        "height": "1152",
        "model": "Animagine XL 3.1",
        "model_hash": "e3c47aedb0",
        "hires_upscaler": "nearest-exact",
        "hires_upscale": "1.5",
        "hires_denoise": "0.55",
        "hires_width": "1344",
        "hires_height": "1728",
    }
    [checkpoint] = record.resources
    assert (checkpoint.kind, checkpoint.name, checkpoint.hash) == (
        "checkpoint",
        "Animagine XL 3.1",
        "e3c47aedb0",
    )
    assert record.extra == {"sdxl_style": "(None)", "add_quality_tags": True}


def test_space_variants_width_height_and_nested_model() -> None:
    data = {
        "prompt": "a fox",
        "num_inference_steps": 30,
        "width": 1024,
        "height": 768,
        "use_upscaler": None,
        "Model": {"Model": "Animagine XL 4.0", "Model hash": "6327eca98b"},
    }
    record = parse_fields({"parameters": json.dumps(data)})
    assert record.generator == "diffusers"
    assert (record.params["width"], record.params["height"]) == ("1024", "768")
    assert (record.params["model"], record.params["model_hash"]) == (
        "Animagine XL 4.0",
        "6327eca98b",
    )
    assert "hires_upscale" not in record.params


def test_json_without_diffusers_argument_names_is_not_claimed() -> None:
    record = parse_fields({"parameters": json.dumps({"prompt": "a fox", "steps": 20})})
    assert record.generator == "unknown"


def test_ppdiffusers_key_per_line(tmp_path: Path) -> None:
    path = png_with_text(tmp_path / "paddle.png", {"parameters": PADDLE})
    record = parse_fields(fields_of(path))
    assert record.generator == "ppdiffusers"
    assert record.prompt == "a cat sitting on a chair, oil painting"
    assert record.negative_prompt == "lowres, blurry,\n  extra limbs"
    assert record.params == {
        "steps": "50",
        "seed": "42",
        "cfg": "7.5",
        "model": "runwayml/stable-diffusion-v1-5",
        "sampler": "DDIM",
        "sampler_norm": "ddim",
        "width": "512",
        "height": "768",
    }
    assert [(r.kind, r.name) for r in record.resources] == [
        ("checkpoint", "runwayml/stable-diffusion-v1-5")
    ]


def test_ppdiffusers_with_a1111_negative_label_and_width_height() -> None:
    text = "a cat\nNegative prompt: blurry\nsteps: 20\nseed: 7\nwidth: 640\nheight: 448"
    record = parse_fields({"parameters": text})
    assert record.generator == "ppdiffusers"
    assert (record.prompt, record.negative_prompt) == ("a cat", "blurry")
    assert record.params == {"steps": "20", "seed": "7", "width": "640", "height": "448"}


def test_a1111_infotext_is_still_a1111() -> None:
    text = (
        "a cat\nNegative prompt: blurry\n"
        "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 7, Size: 512x512, Model: sd15"
    )
    record = parse_fields({"parameters": text})
    assert record.generator == "a1111"
    assert record.params["seed"] == "7"


def test_registry_order() -> None:
    for name in ("easydiffusion", "fooocus", "swarmui"):
        assert ORDER.index(name) < ORDER.index("diffusers")
    assert ORDER.index("comfyui") < ORDER.index("ppdiffusers") < ORDER.index("a1111")
