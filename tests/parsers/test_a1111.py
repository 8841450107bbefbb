"""A1111-family infotext: plain dicts of text fields in, Record out."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aimeta.metadata.parsers import a1111
from aimeta.metadata.record import Record

BASIC = (
    "photo of a duck\n"
    "Negative prompt: monochrome\n"
    "Steps: 15, Sampler: UniPC, CFG scale: 5, Seed: 235284042, Size: 512x400, "
    "Model hash: c0d1994c73, Model: realistic_realisticVisionV20_v20"
)


def parse(text: str, field: str = "parameters") -> Record:
    record = a1111.parse({field: text})
    assert record is not None
    return record


def kinds(record: Record) -> list[tuple[str, str, float | None, str | None, str]]:
    return [(r.kind, r.name, r.weight, r.hash, r.source) for r in record.resources]


def test_basic_infotext() -> None:
    record = parse(BASIC)
    assert record.generator == "a1111"
    assert (record.prompt, record.negative_prompt) == ("photo of a duck", "monochrome")
    assert record.params == {
        "steps": "15",
        "sampler": "UniPC",
        "sampler_norm": "uni_pc",
        "cfg": "5",
        "seed": "235284042",
        "width": "512",
        "height": "400",
        "model_hash": "c0d1994c73",
        "model": "realistic_realisticVisionV20_v20",
    }
    assert kinds(record) == [
        ("checkpoint", "realistic_realisticVisionV20_v20", None, "c0d1994c73", "Model")
    ]
    assert record.resources[0].hash_type == "autov2"
    assert record.raw == {"parameters": BASIC}


@pytest.mark.parametrize("field", ["parameters", "usercomment", "stealth_png_info"])
def test_every_source_field(field: str) -> None:
    record = parse(BASIC, field)
    assert record.params["seed"] == "235284042"
    assert list(record.raw) == [field]


def test_parameters_win_over_usercomment() -> None:
    record = a1111.parse({"usercomment": BASIC.replace("duck", "goose"), "parameters": BASIC})
    assert record is not None and record.prompt == "photo of a duck"


def test_non_ascii_and_multi_line_prompts() -> None:
    text = (
        "café, 日本語\nsecond line, (detail:1.2)\n"
        "Negative prompt: ugly,\nblurry\n"
        "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1"
    )
    record = parse(text)
    assert record.prompt == "café, 日本語\nsecond line, (detail:1.2)"
    assert record.negative_prompt == "ugly,\nblurry"
    assert record.params["sampler_norm"] == "euler_ancestral"


def test_negative_prompt_label_only_at_line_start() -> None:
    text = (
        "a sign saying Negative prompt: none here\n"
        "Negative prompt: bad\n"
        "Steps: 20, Sampler: Euler, Seed: 5"
    )
    record = parse(text)
    assert record.prompt == "a sign saying Negative prompt: none here"
    assert record.negative_prompt == "bad"


def test_no_negative_prompt_and_no_prompt() -> None:
    record = parse("just a prompt\nSteps: 20, Sampler: Euler, Seed: 5")
    assert (record.prompt, record.negative_prompt) == ("just a prompt", None)
    record = parse("Steps: 20, Sampler: Euler, Seed: 5")
    assert (record.prompt, record.negative_prompt) == (None, None)
    assert record.params["steps"] == "20"


def test_quoted_values_with_commas_colons_and_newlines() -> None:
    controlnet = "Module: canny, Model: control_v11p_sd15_canny [d14c016b], Weight: 0.8"
    text = (
        "a cat\n"
        f"Steps: 20, Sampler: DPM++ 2M Karras, Seed: 7, ControlNet 0: {json.dumps(controlnet)}, "
        'Lora hashes: "detailTweaker: 4d2ebb2e2a0b, add_detail: 7c6bad76eb54", '
        'TI hashes: "easynegative: c74b4e810b03", '
        f"Wildcard note: {json.dumps('line one' + chr(10) + 'line two: yes')}, "
        "ADetailer model: face_yolov8n.pt, ADetailer model 2nd: hand_yolov8n.pt, "
        "ADetailer confidence: 0.3, Hires upscale: 2, Hires steps: 10, "
        "Hires upscaler: 4x-UltraSharp, Denoising strength: 0.4, Hires resize-1: 0"
    )
    record = parse(text)
    params = record.params
    assert params["sampler_norm"] == "dpmpp_2m" and params["scheduler_norm"] == "karras"
    assert "scheduler" not in params
    assert params["wildcard_note"] == "line one\nline two: yes"
    assert params["adetailer_model"] == "face_yolov8n.pt"
    assert params["adetailer_confidence"] == "0.3"
    assert params["controlnet_0"] == controlnet
    assert params["lora_hashes"] == "detailTweaker: 4d2ebb2e2a0b, add_detail: 7c6bad76eb54"
    assert (params["hires_upscale"], params["hires_steps"], params["hires_upscaler"]) == (
        "2",
        "10",
        "4x-UltraSharp",
    )
    assert params["denoise"] == params["hires_denoise"] == "0.4"
    assert "hires_width" not in params
    assert kinds(record) == [
        ("lora", "detailTweaker", None, "4d2ebb2e2a0b", "Lora hashes"),
        ("lora", "add_detail", None, "7c6bad76eb54", "Lora hashes"),
        ("embedding", "easynegative", None, "c74b4e810b03", "TI hashes"),
        ("upscaler", "4x-UltraSharp", None, None, "Hires upscaler"),
        ("controlnet", "control_v11p_sd15_canny", 0.8, "d14c016b", "ControlNet 0"),
        ("detailer", "face_yolov8n.pt", None, None, "ADetailer model"),
        ("detailer", "hand_yolov8n.pt", None, None, "ADetailer model 2nd"),
    ]


def test_schedule_type_and_version_flavours() -> None:
    text = "x\nSteps: 28, Sampler: DPM++ 2M, Schedule type: Karras, Seed: 1, Version: {}"
    assert parse(text.format("v1.9.4")).params["ui"] == "a1111"
    forge = parse(text.format("f2.0.1v1.10.1-previous-519-g44eb4ea8"))
    assert forge.params["ui"] == "forge"
    assert forge.params["version"] == "f2.0.1v1.10.1-previous-519-g44eb4ea8"
    assert (forge.params["scheduler"], forge.params["scheduler_norm"]) == ("Karras", "karras")
    assert "ui" not in parse(text.format("abc1234")).params


def test_hashes_json_and_civitai_structures() -> None:
    hashes = {
        "model": "6ce0161689",
        "vae": "735e4c3a44",
        "lora:detailTweaker": "4d2ebb2e2a",
        "embed:easynegative": "c74b4e810b",
    }
    resources = [{"type": "checkpoint", "modelVersionId": 128713, "modelName": "DreamShaper"}]
    metadata = {"remixOfId": 123, "resources": [{"modelVersionId": 99, "strength": 0.7}]}
    text = (
        "a, <lora:detailTweaker:0.8>\n"
        "Steps: 20, Sampler: Euler, Seed: 1, Model: dreamshaper_8, VAE: vae-ft-mse, "
        f"Hashes: {json.dumps(hashes)}, Civitai resources: {json.dumps(resources)}, "
        f"Civitai metadata: {json.dumps(metadata)}"
    )
    record = parse(text)
    assert record.extra["civitai_resources"] == resources
    assert record.extra["civitai_metadata"] == metadata
    assert json.loads(record.params["hashes"]) == hashes
    assert kinds(record) == [
        ("checkpoint", "dreamshaper_8", None, "6ce0161689", "Hashes"),
        ("vae", "vae-ft-mse", None, "735e4c3a44", "Hashes"),
        ("lora", "detailTweaker", None, "4d2ebb2e2a", "Hashes"),
        ("embedding", "easynegative", None, "c74b4e810b", "Hashes"),
        ("lora", "detailTweaker", 0.8, None, "prompt"),
        ("checkpoint", "dreamshaper_8", None, None, "Model"),
        ("vae", "vae-ft-mse", None, None, "VAE"),
    ]


def test_broken_json_structures_warn() -> None:
    record = parse("a\nSteps: 20, Sampler: Euler, Seed: 1, Hashes: {oops, Civitai resources: [1")
    assert record.params["steps"] == "20"
    assert "civitai_resources" not in record.extra
    assert len(record.warnings) == 2


def test_template_as_parameter_keys() -> None:
    text = (
        "a red car\nNegative prompt: ugly\n"
        'Steps: 20, Sampler: Euler, Seed: 1, Template: "a {red|blue} car, photo", '
        "Negative Template: ugly"
    )
    record = parse(text)
    assert record.prompt == "a red car" and record.negative_prompt == "ugly"
    assert record.params["template"] == "a {red|blue} car, photo"
    assert record.params["negative_template"] == "ugly"


def test_template_lines_after_the_parameter_line() -> None:
    text = (
        "a red car\nNegative prompt: ugly\n"
        "Steps: 20, Sampler: Euler, Seed: 1, Size: 512x512\n"
        "Template: a {red|blue} car,\nstill the template\n"
        "Negative Template: {ugly|bad}"
    )
    record = parse(text)
    assert record.prompt == "a red car" and record.negative_prompt == "ugly"
    assert record.params["template"] == "a {red|blue} car,\nstill the template"
    assert record.params["negative_template"] == "{ugly|bad}"
    assert record.params["width"] == "512"
    assert record.warnings == []


def test_addnet_refiner_and_prompt_loras() -> None:
    text = (
        "<lora:two:0.5:0.7> portrait, <lyco:ly:0.6>, <hypernet:anime:0.3>\n"
        "Negative prompt: <lora:neg:1>\n"
        "Steps: 20, Sampler: Euler, Seed: 1, AddNet Enabled: True, AddNet Module 1: LoRA, "
        "AddNet Model 1: myLora(a1b2c3d4e5f6), AddNet Weight A 1: 0.6, AddNet Weight B 1: 0.4, "
        "Refiner: sd_xl_refiner_1.0 [7440042bbd], Refiner switch at: 0.8"
    )
    record = parse(text)
    assert [(r.kind, r.name, r.weight, r.weight_clip, r.hash) for r in record.resources] == [
        ("lora", "two", 0.7, 0.5, None),
        ("lora", "ly", 0.6, None, None),
        ("hypernetwork", "anime", 0.3, None, None),
        ("lora", "neg", 1.0, None, None),
        ("refiner", "sd_xl_refiner_1.0", None, None, "7440042bbd"),
        ("lora", "myLora", 0.6, 0.4, "a1b2c3d4e5f6"),
    ]
    assert record.resources[3].extra["in_negative"] is True
    assert record.params["refiner_switch_at"] == "0.8"


def test_parameter_line_is_the_last_qualifying_line() -> None:
    text = "a: b, c: d, e: f\nSteps: 20, Sampler: Euler, Seed: 1"
    record = parse(text)
    assert record.prompt == "a: b, c: d, e: f"
    assert "a" not in record.params


def test_negative_label_without_parameters_is_kept_with_warning() -> None:
    record = parse("a cat\nNegative prompt: dog")
    assert (record.prompt, record.negative_prompt) == ("a cat", "dog")
    assert record.warnings == ["no parameter line"]


@pytest.mark.parametrize(
    "text",
    [
        '{"prompt": "a", "steps": 20, "sampler": "euler", "seed": 1}',
        "[1, 2, 3]",
        "Hello world",
        "Screenshot taken on a phone: yes, nice: true, a: b",
        "",
    ],
)
def test_not_infotext(text: str) -> None:
    assert a1111.parse({"parameters": text, "usercomment": text}) is None


def test_prompt_starting_with_a_bracket_is_infotext() -> None:
    record = parse("[red|blue] car\nSteps: 20, Sampler: Euler, Seed: 1")
    assert record.prompt == "[red|blue] car"
    record = parse("{masterpiece}, girl\nSteps: 20, Sampler: Euler, Seed: 1")
    assert record.prompt == "{masterpiece}, girl"


def test_no_fields() -> None:
    assert a1111.parse({"prompt": BASIC, "comment": BASIC}) is None


def test_weird_whitespace_and_crlf() -> None:
    record = parse("  a cat \r\nNegative prompt:   dog  \r\nSteps: 20,Sampler: Euler,Seed: 1\r\n")
    assert (record.prompt, record.negative_prompt) == ("a cat", "dog")
    assert record.params["sampler"] == "Euler"


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_any_text_never_raises(text: str) -> None:
    record = a1111.parse({"parameters": text})
    assert record is None or record.generator == "a1111"


@settings(max_examples=200, deadline=None)
@given(
    st.text(max_size=40),
    st.dictionaries(
        st.from_regex(r"[A-Za-z][A-Za-z \-/]{1,12}", fullmatch=True), st.text(max_size=30)
    ),
)
def test_generated_infotext_never_raises(prompt: str, extra: dict[str, str]) -> None:
    params = ", ".join(f"{key}: {json.dumps(value)}" for key, value in extra.items())
    record = a1111.parse({"parameters": f"{prompt}\nSteps: 20, Sampler: Euler, Seed: 1, {params}"})
    assert record is not None
    assert record.generator == "a1111"
