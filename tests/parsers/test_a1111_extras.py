"""A1111's Extras tab text (``postprocessing``, older ``extras``) and infotext that repeats
its negative-prompt label, read from real PNGs through ExifTool."""

from __future__ import annotations

from pathlib import Path

from aimeta.metadata.parsers import parse_fields
from exif_fields import exiftool_fields as fields_of
from factory import png_with_text

INFOTEXT = (
    "a red fox, <lora:fur:0.7>\n"
    "Negative prompt: blurry\n"
    "Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 42, "
    "Size: 512x768, Model hash: 6ce0161689, Model: v1-5-pruned-emaonly"
)
POSTPROCESSING = (
    "Postprocess upscale by: 2, Postprocess upscaler: R-ESRGAN 4x+, "
    "Postprocess upscaler 2: 4x-UltraSharp, Postprocess upscaler 2 visibility: 0.4, "
    "GFPGAN visibility: 0.8, CodeFormer visibility: 0.5, CodeFormer weight: 0.3"
)


def test_postprocessing_chunk_gives_upscalers_and_params(tmp_path: Path) -> None:
    chunks = {"parameters": INFOTEXT, "postprocessing": POSTPROCESSING}
    record = parse_fields(fields_of(png_with_text(tmp_path / "extras.png", chunks)))
    assert record.generator == "a1111"
    assert record.prompt == "a red fox, <lora:fur:0.7>"
    params = record.params
    assert params["seed"] == "42"
    assert {key: value for key, value in params.items() if key not in INFOTEXT_PARAMS} == {
        "postprocess_upscale_by": "2",
        "postprocess_upscaler": "R-ESRGAN 4x+",
        "postprocess_upscaler_2": "4x-UltraSharp",
        "postprocess_upscaler_2_visibility": "0.4",
        "gfpgan_visibility": "0.8",
        "codeformer_visibility": "0.5",
        "codeformer_weight": "0.3",
    }
    upscalers = [(r.name, r.weight, r.source) for r in record.resources if r.kind == "upscaler"]
    assert upscalers == [
        ("R-ESRGAN 4x+", None, "Postprocess upscaler"),
        ("4x-UltraSharp", 0.4, "Postprocess upscaler 2"),
    ]
    assert record.raw == {"parameters": INFOTEXT, "postprocessing": POSTPROCESSING}


INFOTEXT_PARAMS = {
    "steps",
    "sampler",
    "sampler_norm",
    "scheduler",
    "scheduler_norm",
    "cfg",
    "seed",
    "width",
    "height",
    "model",
    "model_hash",
}


def test_extras_chunk_alone_is_an_a1111_record(tmp_path: Path) -> None:
    text = "Postprocess upscale by: 4, Postprocess upscaler: Lanczos"
    record = parse_fields(fields_of(png_with_text(tmp_path / "old.png", {"extras": text})))
    assert record.generator == "a1111"
    assert record.prompt is None
    assert record.params == {"postprocess_upscale_by": "4", "postprocess_upscaler": "Lanczos"}
    assert record.resources == []  # Lanczos is an interpolation, no model file


def test_repeated_negative_label_is_kept_once(tmp_path: Path) -> None:
    text = INFOTEXT.replace("Negative prompt: ", "Negative prompt: Negative prompt: ")
    record = parse_fields(fields_of(png_with_text(tmp_path / "twice.png", {"parameters": text})))
    assert record.negative_prompt == "blurry"
    assert record.prompt == "a red fox, <lora:fur:0.7>"
