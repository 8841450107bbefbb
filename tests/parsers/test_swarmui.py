"""SwarmUI: sui_image_params in PNG parameters or JPEG/WebP UserComment."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from aimeta.metadata.parsers import ORDER, parse_fields, swarmui
from aimeta.metadata.readers.fields import text_fields
from factory import jpeg_with_exif, png_with_text

BIG_SEED = 2**64 + 12345  # beyond 64 bits: must survive as exact text

DOCUMENT = {
    "sui_image_params": {
        "prompt": "a red fox in snow, <lora:pixel-art>",
        "negativeprompt": "blurry",
        "model": "sdxl/juggernautXL_v9",
        "seed": BIG_SEED,
        "steps": 30,
        "cfgscale": 6.5,
        "width": 1024,
        "height": 1024,
        "sampler": "dpmpp_2m",
        "scheduler": "karras",
        "clipstopatlayer": -2,
        "loras": ["pixel-art", "detail"],
        "loraweights": ["0.8", "0.5"],
        "refinerupscale": 1.5,
        "refinercontrolpercentage": 0.4,
        "swarm_version": "0.9.2.1",
    },
    "sui_extra_data": {"date": "2024-08-01", "generation_time": "1.2 (prep) and 9.8 (gen)"},
    "sui_models": [
        {"name": "sdxl/juggernautXL_v9.safetensors", "param": "model", "hash": "0x" + "ab" * 32},
        {"name": "pixel-art.safetensors", "param": "loras", "hash": "0x" + "cd" * 32},
    ],
}


def fields_of(path: Path) -> dict[str, str]:
    """Real ExifTool output for one file, as canonical text fields."""
    out = subprocess.run(
        ["exiftool", "-json", "-G1", "-n", "--", str(path)], capture_output=True, check=True
    ).stdout
    return text_fields(json.loads(out)[0])


def test_pretty_printed_png_parameters_with_a_comfy_graph(tmp_path: Path) -> None:
    graph = '{"3": {"class_type": "KSampler", "inputs": {"seed": 1}}}'
    path = png_with_text(
        tmp_path / "swarm.png",
        {"parameters": json.dumps(DOCUMENT, indent=2), "prompt": graph},
    )
    record = swarmui.parse(fields_of(path))
    assert record is not None
    assert record.generator == "swarmui"
    assert record.prompt == "a red fox in snow, <lora:pixel-art>"
    assert record.negative_prompt == "blurry"
    assert record.params["seed"] == str(BIG_SEED)
    assert record.params["cfg"] == "6.5"
    assert record.params["clip_skip"] == "2"
    assert record.params["model_hash"] == "0x" + "ab" * 32
    assert (record.params["sampler_norm"], record.params["scheduler_norm"]) == (
        "dpmpp_2m",
        "karras",
    )
    assert (record.params["hires_upscale"], record.params["hires_denoise"]) == ("1.5", "0.4")
    loras = [(r.name, r.weight, r.hash) for r in record.resources if r.kind == "lora"]
    assert loras == [("pixel-art", 0.8, "0x" + "cd" * 32), ("detail", 0.5, None)]
    assert record.resources[0].hash_type == "swarmui_sha256"
    # Swarm's parameters win; the graph it also embeds is kept raw.
    assert record.raw["prompt"] == graph
    assert record.extra["sui_extra_data"]["date"] == "2024-08-01"
    assert ORDER.index("swarmui") < ORDER.index("comfyui")
    assert parse_fields(fields_of(path)).generator == "swarmui"


def test_jpeg_usercomment_with_string_values(tmp_path: Path) -> None:
    params = {
        "prompt": "castle",
        "seed": "18446744073709551615",
        "steps": "20",
        "cfgscale": "7",
        "width": "768",
        "height": "512",
        "model": "dreamshaper_8",
    }
    path = jpeg_with_exif(
        tmp_path / "swarm.jpg", user_comment=json.dumps({"sui_image_params": params})
    )
    record = swarmui.parse(fields_of(path))
    assert record is not None
    assert record.params["seed"] == "18446744073709551615"
    assert (record.params["steps"], record.params["width"]) == ("20", "768")
    assert record.raw["usercomment"].startswith('{"sui_image_params"')


def test_other_json_is_not_swarm() -> None:
    assert swarmui.parse({"parameters": '{"prompt": "x"}'}) is None
    assert swarmui.parse({"parameters": '{"sui_image_params": "nope"}'}) is None
