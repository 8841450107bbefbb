"""Easy Diffusion: one PNG text chunk per setting, or UserComment JSON in JPEG/WebP."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from aimeta.metadata.parsers import easydiffusion
from aimeta.metadata.readers.fields import text_fields
from factory import jpeg_with_exif, png_with_text

SETTINGS = {
    "prompt": "a photo of an astronaut riding a horse",
    "negative_prompt": "cartoon",
    "seed": 3326406317,
    "use_stable_diffusion_model": "sd-v1-5",
    "clip_skip": False,
    "use_vae_model": "vae-ft-mse-840000-ema-pruned",
    "sampler_name": "dpmpp_2m",
    "width": 512,
    "height": 768,
    "num_inference_steps": 25,
    "guidance_scale": 7.5,
    "use_lora_model": ["add_detail", "pixel-art"],
    "lora_alpha": [0.5, 0.8],
    "use_face_correction": "GFPGANv1.4",
    "use_upscale": "RealESRGAN_x4plus",
    "upscale_amount": "4",
}


def fields_of(path: Path) -> dict[str, str]:
    """Real ExifTool output for one file, as canonical text fields."""
    out = subprocess.run(
        ["exiftool", "-json", "-G1", "-n", "--", str(path)], capture_output=True, check=True
    ).stdout
    return text_fields(json.loads(out)[0])


def _check(fields: dict[str, str]) -> None:
    record = easydiffusion.parse(fields)
    assert record is not None
    assert record.generator == "easydiffusion"
    assert record.prompt == "a photo of an astronaut riding a horse"
    assert record.negative_prompt == "cartoon"
    assert record.params["seed"] == "3326406317"
    assert (record.params["steps"], record.params["cfg"]) == ("25", "7.5")
    assert (record.params["width"], record.params["height"]) == ("512", "768")
    assert record.params["model"] == "sd-v1-5"
    assert record.params["sampler_norm"] == "dpmpp_2m"
    loras = [(r.name, r.weight) for r in record.resources if r.kind == "lora"]
    assert loras == [("add_detail", 0.5), ("pixel-art", 0.8)]
    assert any(r.kind == "vae" for r in record.resources)
    assert record.params["hires_upscaler"] == "RealESRGAN_x4plus"
    assert record.extra["use_face_correction"] == "GFPGANv1.4"


def test_png_chunk_per_setting(tmp_path: Path) -> None:
    # Easy Diffusion writes str(value) for each setting, as Python prints it.
    chunks = {key: str(value) for key, value in SETTINGS.items()}
    _check(fields_of(png_with_text(tmp_path / "ed.png", chunks)))


def test_jpeg_usercomment_json(tmp_path: Path) -> None:
    path = jpeg_with_exif(tmp_path / "ed.jpg", user_comment=json.dumps(SETTINGS))
    _check(fields_of(path))


def test_missing_models_written_as_none() -> None:
    record = easydiffusion.parse(
        {"use_stable_diffusion_model": "sd-v1-5", "use_lora_model": "None", "prompt": "x"}
    )
    assert record is not None
    assert [r.kind for r in record.resources] == ["checkpoint"]


def test_not_easy_diffusion() -> None:
    assert easydiffusion.parse({"prompt": "a plain prompt"}) is None
    assert easydiffusion.parse({"usercomment": '{"prompt": "x"}'}) is None
