"""InvokeAI: Dream command line, 2.x sd-metadata, 3.x/4.x invokeai_metadata."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from aimeta.metadata.parsers import invokeai
from aimeta.metadata.readers.fields import text_fields
from factory import png_with_text

DREAM = (
    '"a castle on a hill, (golden hour)+ [blurry, lowres] [text]" -s 30 -S 4294967296 '
    "-W 640 -H 512 -C 7.5 -A k_euler_a -f 0.6 -G 0.8 -U 2 0.75"
)


def fields_of(path: Path) -> dict[str, str]:
    """Real ExifTool output for one file, as canonical text fields."""
    out = subprocess.run(
        ["exiftool", "-json", "-G1", "-n", "--", str(path)], capture_output=True, check=True
    ).stdout
    return text_fields(json.loads(out)[0])


def test_dream_flags_and_bracketed_negative() -> None:
    record = invokeai.parse({"dream": DREAM})
    assert record is not None
    assert record.generator == "invokeai"
    assert record.prompt == "a castle on a hill, (golden hour)+"
    assert record.negative_prompt == "blurry, lowres, text"
    assert record.params["steps"] == "30"
    assert record.params["seed"] == "4294967296"
    assert (record.params["width"], record.params["height"]) == ("640", "512")
    assert record.params["cfg"] == "7.5"
    assert record.params["sampler"] == "k_euler_a"
    assert record.params["denoise"] == "0.6"
    assert record.extra["dream_options"] == {"G": "0.8", "U": "2 0.75"}
    assert record.extra["prompt_syntax"] == "compel"


def test_sd_metadata_2x_model_hash_and_postprocessing() -> None:
    metadata = {
        "model_weights": "stable-diffusion-1.5",
        "model_hash": "cc6cb27103417325ff94f52b7a5d2dde45a7515b25c255d8e396c90014281516",
        "app_version": "2.3.5",
        "image": {
            "prompt": [{"prompt": "portrait of a cat [ugly]", "weight": 1.0}],
            "steps": 25,
            "cfg_scale": 7.5,
            "seed": 12345,
            "width": 512,
            "height": 768,
            "sampler": "k_dpmpp_2",
            "postprocessing": [{"type": "esrgan", "scale": 2}],
        },
    }
    record = invokeai.parse({"sd-metadata": json.dumps(metadata), "dream": DREAM})
    assert record is not None
    assert (record.prompt, record.negative_prompt) == ("portrait of a cat", "ugly")
    assert record.params["model"] == "stable-diffusion-1.5"
    checkpoint = record.resources[0]
    assert (checkpoint.kind, checkpoint.hash_type) == ("checkpoint", "sha256")
    assert record.extra["postprocessing"] == [{"type": "esrgan", "scale": 2}]
    assert set(record.raw) == {"sd-metadata", "dream"}


def test_invokeai_4x_model_objects_with_blake3_hashes_and_loras() -> None:
    metadata = {
        "positive_prompt": "a (red)1.2 fox+, snow",
        "negative_prompt": "blur-",
        "seed": 98765,
        "steps": 30,
        "cfg_scale": 6,
        "scheduler": "dpmpp_2m_k",
        "width": 1024,
        "height": 1024,
        "model": {
            "key": "6c9d3b3c",
            "hash": "blake3:ab12cd",
            "name": "juggernautXL_v9",
            "base": "sdxl",
            "type": "main",
        },
        "vae": {"key": "v1", "hash": "blake3:ffee", "name": "sdxl-vae-fp16-fix", "base": "sdxl"},
        "loras": [
            {"model": {"key": "l1", "hash": "blake3:0011", "name": "pixel-art"}, "weight": 0.7}
        ],
        "hrf_enabled": True,
        "hrf_strength": 0.45,
        "hrf_method": "ESRGAN",
    }
    record = invokeai.parse({"invokeai_metadata": json.dumps(metadata), "invokeai_graph": "{}"})
    assert record is not None
    kinds = {(r.kind, r.name, r.hash, r.weight) for r in record.resources}
    assert ("checkpoint", "juggernautXL_v9", "blake3:ab12cd", None) in kinds
    assert ("vae", "sdxl-vae-fp16-fix", "blake3:ffee", None) in kinds
    assert ("lora", "pixel-art", "blake3:0011", 0.7) in kinds
    assert record.resources[0].hash_type == "blake3"
    assert record.params["sampler"] == "dpmpp_2m_k"
    assert (record.params["sampler_norm"], record.params["scheduler_norm"]) == (
        "dpmpp_2m",
        "karras",
    )
    assert record.params["hires_denoise"] == "0.45"
    assert record.raw["invokeai_graph"] == "{}"
    assert record.extra["loras"][0]["weight"] == 0.7


def test_invalid_json_is_kept_raw_with_a_warning() -> None:
    record = invokeai.parse({"invokeai_metadata": "{not json"})
    assert record is not None
    assert record.warnings and record.raw == {"invokeai_metadata": "{not json"}


def test_not_invokeai() -> None:
    assert invokeai.parse({"parameters": "a cat\nSteps: 20"}) is None


def test_png_chunks_through_exiftool(tmp_path: Path) -> None:
    metadata = {"positive_prompt": "a lighthouse", "negative_prompt": "fog+", "seed": 7}
    path = png_with_text(
        tmp_path / "invoke.png",
        {"invokeai_metadata": json.dumps(metadata), "invokeai_graph": '{"nodes": {}}'},
    )
    fields = fields_of(path)
    record = invokeai.parse(fields)
    assert record is not None
    assert (record.prompt, record.negative_prompt, record.params["seed"]) == (
        "a lighthouse",
        "fog+",
        "7",
    )
    assert record.raw["invokeai_graph"] == '{"nodes": {}}'
    dream_path = png_with_text(tmp_path / "dream.png", {"Dream": DREAM, "sd-metadata": "{}"})
    dream_fields = fields_of(dream_path)
    assert "dream" in dream_fields and "sd-metadata" in dream_fields
    dream_record = invokeai.parse(dream_fields)
    assert dream_record is not None and dream_record.params["seed"] == "4294967296"
