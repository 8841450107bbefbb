"""ComfyUI graphs built the way custom-node packs wire them: rgthree Power Prompts and
dimensions, switches and text generators in front of the encoder, samplers without a latent
input, preview-only chains, upscales after the sampler, ComfyRoll aspect ratios, clip skip."""

from __future__ import annotations

import json
from typing import Any

from aimeta.metadata.parsers import civitai_comfy
from comfy_graphs import basic_graph, node, parse_graph


def test_rgthree_power_prompts_and_dimensions() -> None:
    graph = basic_graph()
    graph["11"] = node("CLIPSetLastLayer", stop_at_clip_layer=-2, clip=["4", 1])
    graph["10"] = node(
        "Power Prompt (rgthree)",
        prompt="a lighthouse at dusk",
        opt_model=["4", 0],
        opt_clip=["11", 0],
        insert_lora="CHOOSE",
        insert_embedding="CHOOSE",
        insert_saved="CHOOSE",
    )
    graph["12"] = node("Power Prompt - Simple (rgthree)", prompt="blurry", opt_clip=["11", 0])
    graph["13"] = node(
        "SDXL Empty Latent Image (rgthree)",
        dimensions="1152 x 896  (landscape)",
        clip_scale=2.0,
        batch_size=1,
    )
    graph["3"]["inputs"].update(positive=["10", 0], negative=["12", 0], latent_image=["13", 0])
    record = parse_graph(graph)
    assert (record.prompt, record.negative_prompt) == ("a lighthouse at dusk", "blurry")
    params = record.params
    assert (params["width"], params["height"], params["clip_skip"]) == ("1152", "896", "2")


def test_prompts_are_followed_through_switches_and_text_generators() -> None:
    graph = basic_graph()
    graph["21"] = node(
        "TextGenerate",
        clip=["4", 1],
        prompt="describe a cozy cabin in the snow",
        max_length=256,
        sampling_mode="on",
    )
    graph["22"] = node("PrimitiveStringMultiline", value="not this one")
    graph["20"] = node("ComfySwitchNode", switch=True, on_true=["21", 0], on_false=["22", 0])
    graph["6"]["inputs"]["text"] = ["20", 0]
    graph["23"] = node("StringConstant", string="lowres, jpeg artifacts")
    graph["24"] = node("CR Text Input Switch", Input=2, text1="unused negative", text2=["23", 0])
    graph["7"]["inputs"]["text"] = ["24", 0]
    # The sampler's conditioning itself goes through a switch set to its false branch.
    graph["31"] = node("CLIPTextEncode", text="the other branch", clip=["4", 1])
    graph["30"] = node("ComfySwitchNode", switch="false", on_true=["31", 0], on_false=["6", 0])
    graph["3"]["inputs"]["positive"] = ["30", 0]
    record = parse_graph(graph)
    assert record.prompt == "describe a cozy cabin in the snow"
    assert record.negative_prompt == "lowres, jpeg artifacts"


def test_sampler_without_a_latent_input_is_still_a_sampler() -> None:
    graph = basic_graph()
    del graph["3"]["inputs"]["latent_image"]
    record = parse_graph(graph)
    assert record.warnings == []
    params = record.params
    assert (params["seed"], params["steps"], params["cfg"]) == ("156680208700286", "20", "8")
    assert "width" not in params
    # A latent under another input name, and one made by a node of another kind.
    graph["3"]["inputs"]["latent"] = ["5", 0]
    assert parse_graph(graph).params["width"] == "1024"
    graph["3"]["inputs"]["latent"] = ["40", 0]
    graph["40"] = node("VAEEncode", pixels=["41", 0], vae=["4", 2])
    graph["41"] = node("LoadImage", image="start.png")
    record = parse_graph(graph)
    assert (record.params["steps"], record.extra["init_image"]) == ("20", "start.png")


def hires_preview_graph() -> dict[str, Any]:
    """basic_graph's sampler saves its image; a hires pass on its latent only feeds a preview."""
    graph = basic_graph()
    graph["22"] = node("LatentUpscaleBy", upscale_method="bislerp", scale_by=1.5, samples=["3", 0])
    graph["24"] = node(
        "KSampler",
        seed=7,
        steps=12,
        cfg=6.0,
        sampler_name="dpmpp_2m",
        scheduler="karras",
        denoise=0.45,
        model=["4", 0],
        positive=["6", 0],
        negative=["7", 0],
        latent_image=["22", 0],
    )
    graph["25"] = node("VAEDecode", samples=["24", 0], vae=["4", 2])
    graph["26"] = node("PreviewImage", images=["25", 0])
    return graph


def test_the_chain_that_is_saved_wins_over_a_preview() -> None:
    record = parse_graph(hires_preview_graph())
    assert not any(key.startswith("hires_") for key in record.params)
    assert (record.params["steps"], record.params["denoise"]) == ("20", "1")
    assert record.extra["primary_sampler"] == "3"
    assert [s["node"] for s in record.extra["samplers"]] == ["24"]
    # Saved instead of previewed, the same pass is the image's hires fix.
    graph = hires_preview_graph()
    graph["26"] = node("SaveImage", images=["25", 0], filename_prefix="hires")
    del graph["9"]
    params = parse_graph(graph).params
    assert (params["hires_steps"], params["hires_denoise"], params["hires_upscale"]) == (
        "12",
        "0.45",
        "1.5",
    )
    assert params["hires_upscaler"] == "bislerp"


def test_upscales_after_the_sampler_are_stored() -> None:
    graph = basic_graph()
    graph["50"] = node("UpscaleModelLoader", model_name="4x-UltraSharp.pth")
    graph["51"] = node("ImageUpscaleWithModel", upscale_model=["50", 0], image=["8", 0])
    graph["52"] = node("ImageScaleBy", upscale_method="lanczos", scale_by=0.5, image=["51", 0])
    graph["9"]["inputs"]["images"] = ["52", 0]
    params = parse_graph(graph).params
    assert (params["upscaler"], params["upscale_factor"]) == ("4x-UltraSharp.pth", "0.5")
    assert not any(key.startswith("hires_") for key in params)


def test_ultimate_sd_upscale_is_a_hires_pass() -> None:
    graph = basic_graph()
    graph["50"] = node("UpscaleModelLoader", model_name="4x_NMKD.pth")
    graph["60"] = node(
        "UltimateSDUpscale",
        image=["8", 0],
        model=["4", 0],
        positive=["6", 0],
        negative=["7", 0],
        vae=["4", 2],
        upscale_model=["50", 0],
        upscale_by=2,
        seed=9,
        steps=10,
        cfg=5.0,
        sampler_name="euler",
        scheduler="normal",
        denoise=0.3,
    )
    graph["9"]["inputs"]["images"] = ["60", 0]
    params = parse_graph(graph).params
    assert (params["steps"], params["width"]) == ("20", "1024")
    assert (params["hires_upscale"], params["hires_upscaler"], params["hires_steps"]) == (
        "2",
        "4x_NMKD.pth",
        "10",
    )


def test_comfyroll_aspect_ratio_gives_size_and_upscale_factor() -> None:
    graph = basic_graph()
    graph["40"] = node(
        "CR SDXL Aspect Ratio",
        width=1024,
        height=1024,
        aspect_ratio="3:4 portrait 896x1152",
        swap_dimensions="Off",
        upscale_factor=1.5,
        batch_size=1,
    )
    graph["3"]["inputs"]["latent_image"] = ["40", 4]
    params = parse_graph(graph).params
    assert (params["width"], params["height"], params["upscale_factor"]) == ("896", "1152", "1.5")
    graph["40"]["inputs"].update(
        aspect_ratio="custom", width=640, height=1536, swap_dimensions="On"
    )
    params = parse_graph(graph).params
    assert (params["width"], params["height"]) == ("1536", "640")


def test_clip_skip_comes_from_the_primary_samplers_clip_chain() -> None:
    graph = hires_preview_graph()
    graph["60"] = node("LoraLoader", lora_name="detail.safetensors", clip=["61", 0], model=["4", 0])
    graph["61"] = node("CLIPSetLastLayer", stop_at_clip_layer=-2, clip=["4", 1])
    graph["6"]["inputs"]["clip"] = ["60", 1]
    # The preview-only sampler's encoder has a clip skip of its own.
    graph["62"] = node("CLIPSetLastLayer", stop_at_clip_layer=-3, clip=["4", 1])
    graph["63"] = node("CLIPTextEncode", text="preview text", clip=["62", 0])
    graph["24"]["inputs"]["positive"] = ["63", 0]
    record = parse_graph(graph)
    assert (record.prompt, record.params["clip_skip"]) == ("a majestic lion, café, 日本語", "2")


def test_civitai_upscale_transformation_gives_the_upscale_factor() -> None:
    request = {
        "prompt": "a fox",
        "width": 832,
        "height": 1216,
        "transformations": [{"type": "upscale", "upscaleWidth": 1248, "upscaleHeight": 1824}],
    }
    graph = basic_graph()
    del graph["5"]
    del graph["3"]["inputs"]["latent_image"]
    document = {**graph, "extraMetadata": json.dumps(request), "extra": {"airs": []}}
    record = civitai_comfy.parse({"usercomment": json.dumps(document)})
    assert record is not None
    params = record.params
    assert (params["width"], params["height"]) == ("832", "1216")
    assert (params["upscale_width"], params["upscale_height"], params["upscale_factor"]) == (
        "1248",
        "1824",
        "1.5",
    )
