"""The InvokeAI, NovelAI and Fooocus sample files (AIMETA_SAMPLES) parse to the values the
samples README lists: real ExifTool -> canonical fields -> the parser registry."""

from __future__ import annotations

import json
import subprocess

import pytest

from aimeta.metadata.parsers import parse_fields
from aimeta.metadata.readers.fields import text_fields
from aimeta.metadata.record import Record
from conftest import samples_dir


def parsed(name: str) -> Record:
    root = samples_dir()
    if root is None:
        pytest.skip("AIMETA_SAMPLES is not set (optional real-sample test)")
    path = root / "generated" / name
    out = subprocess.run(
        ["exiftool", "-json", "-G1", "-n", "--", str(path)], capture_output=True, check=True
    ).stdout
    return parse_fields(text_fields(json.loads(out)[0]))


PROMPT = (
    "professional full body photo of young woman, hyper long brunette hair, elegant hair, "
    "wearing a bikini top and asymmetric short skirt, curvy body, long legs, (imperfect skin), "
    "detailed skin, intense freckles, super long eye lashes, at night, outside, city "
    "background, 8k ultra detailed, realistic, high quality, film grain, low contrast"
)


def test_invokeai_dream() -> None:
    record = parsed("invokeai_dream1.png")
    assert record.generator == "invokeai"
    assert record.prompt == PROMPT
    assert record.negative_prompt == "rendering, glowing eyes, skinny"
    params = record.params
    assert (params["sampler"], params["steps"], params["seed"]) == ("k_lms", "50", "2980747362")
    assert float(params["cfg"]) == 5.0
    assert (params["width"], params["height"]) == ("512", "768")
    options = record.extra["dream_options"]
    assert (options["G"], options["cf"]) == ("0.9", "0.75")
    assert options["U"].split()[0] == "4"


def test_invokeai_sd_metadata() -> None:
    record = parsed("invokeai_sdmeta1.png")
    assert record.generator == "invokeai"
    assert (record.prompt, record.negative_prompt) == (PROMPT, "rendering, glowing eyes, skinny")
    assert (record.params["seed"], record.params["steps"], record.params["cfg"]) == (
        "2980747362",
        "50",
        "5",
    )
    assert record.params["model"] == "deliberateForInvoke_v08"
    assert record.params["model_hash"] == (
        "56d1442a0feefd64836a19ac8e3527ec71c884fc962e246ddf67b03e42921272"
    )
    assert (record.extra["threshold"], record.extra["perlin"]) == (0, 0)
    assert record.extra["app_id"] == "invoke-ai/InvokeAI"
    assert record.extra["app_version"] == "2.3.0"
    assert [step["type"] for step in record.extra["postprocessing"]] == ["codeformer", "esrgan"]


def test_invokeai_metadata_3x() -> None:
    record = parsed("invokeai_imeta1.png")
    assert record.generator == "invokeai"
    assert record.prompt == "digital artwork, oil painting. painterly brushstrokes, holidays,"
    assert record.negative_prompt == (
        "grainy+, photo, oversaturated, overexposed, blurry, compressed jpg+, noisy++, "
        "unfocused , black and white"
    )
    assert record.extra["prompt_syntax"] == "compel"
    params = record.params
    assert (params["sampler"], params["seed"], params["steps"]) == ("euler", "3293022630", "35")
    assert float(params["cfg"]) == 8.0
    assert (params["width"], params["height"]) == ("1024", "1024")
    assert record.extra["cfg_rescale_multiplier"] == 0.0
    assert record.extra["generation_mode"] == "sdxl_txt2img"
    checkpoint = next(r for r in record.resources if r.kind == "checkpoint")
    assert (checkpoint.name, checkpoint.extra["base_model"]) == ("juggernautXL", "sdxl")
    assert checkpoint.extra["model_type"] == "main"
    vae = next(r for r in record.resources if r.kind == "vae")
    assert (vae.name, vae.extra["base_model"]) == ("VAEFix", "sdxl")
    adapter = next(r for r in record.resources if r.kind == "ipadapter")
    assert (adapter.name, adapter.weight) == ("ip-adapter-plus_sdxl_vit-h", 0.45)


def test_novelai_legacy() -> None:
    record = parsed("novelai1_cropped.png")
    assert record.generator == "novelai"
    assert record.prompt == "masterpiece, best quality,  cat, space, icon"
    assert record.negative_prompt is not None
    assert record.negative_prompt.startswith("lowres, bad anatomy, bad hands, text, error, missing")
    params = record.params
    assert (params["sampler"], params["seed"], params["steps"]) == (
        "k_euler_ancestral",
        "2253955223",
        "50",
    )
    assert float(params["cfg"]) == 10.0
    assert (params["model"], params["model_hash"]) == ("Stable Diffusion", "1D44365E")
    assert (record.extra["strength"], record.extra["noise"]) == (0.4, 0.0)


def test_fooocus_json() -> None:
    record = parsed("fooocus1_cropped.png")
    assert record.generator == "fooocus"
    assert record.prompt == "a smiling goldfish"
    assert not record.negative_prompt
    params = record.params
    assert (params["sampler"], params["scheduler"]) == ("dpmpp_2m_sde_gpu", "karras")
    assert (params["cfg"], params["steps"], params["clip_skip"]) == ("4", "30", "2")
    assert params["seed"] == "6952411511246973023"
    assert (params["model"], params["model_hash"]) == ("juggernautXL_v8Rundiffusion", "aeb7e9e689")
    assert (params["width"], params["height"]) == ("768", "1280")
    extra = record.extra
    assert (extra["sharpness"], extra["performance"]) == (2, "Speed")
    assert extra["styles"] == "['Fooocus V2', 'Fooocus Enhance', 'Fooocus Sharp']"
    assert (extra["vae"], extra["version"]) == ("Default (model)", "Fooocus v2.4.3")
    assert (extra["refiner_model"], extra["metadata_scheme"]) == ("None", "fooocus")
    assert len(extra["full_prompt"]) == 2 and len(extra["full_negative_prompt"]) == 2
    assert not [r for r in record.resources if r.kind in ("lora", "vae", "refiner")]
