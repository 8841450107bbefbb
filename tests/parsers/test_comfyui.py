"""ComfyUI API graphs: plain dicts of text fields in, Record out."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aimeta.metadata.parsers import comfyui
from aimeta.metadata.record import Record
from comfy_graphs import basic_graph, node, parse_graph


def resources(record: Record) -> list[tuple[str, str, float | None, float | None, str]]:
    return [(r.kind, r.name, r.weight, r.weight_clip, r.source) for r in record.resources]


def test_basic_graph() -> None:
    record = parse_graph(basic_graph(), workflow='{"nodes": []}')
    assert record.prompt == "a majestic lion, café, 日本語"
    assert record.negative_prompt == "text, watermark"
    assert record.params == {
        "seed": "156680208700286",
        "steps": "20",
        "cfg": "8",
        "sampler": "euler",
        "sampler_norm": "euler",
        "scheduler": "normal",
        "scheduler_norm": "normal",
        "denoise": "1",
        "model": "sd_xl_base_1.0.safetensors",
        "width": "1024",
        "height": "768",
    }
    assert resources(record) == [
        ("checkpoint", "sd_xl_base_1.0.safetensors", None, None, "CheckpointLoaderSimple")
    ]
    assert record.raw["workflow"] == '{"nodes": []}'
    assert "samplers" not in record.extra
    assert record.warnings == []


def test_hires_chain_primary_is_first_pass_and_others_are_kept() -> None:
    graph = basic_graph()
    graph["22"] = node(
        "LatentUpscale",
        upscale_method="nearest-exact",
        width=1536,
        height=1152,
        crop="disabled",
        samples=["3", 0],
    )
    graph["24"] = node(
        "KSampler",
        seed=2**70,
        steps=14,
        cfg=7.0,
        sampler_name="dpmpp_2m",
        scheduler="karras",
        denoise=0.5,
        model=["46", 0],
        positive=["26", 0],
        negative=["7", 0],
        latent_image=["22", 0],
    )
    graph["26"] = node("CLIPTextEncode", text="second pass text", clip=["46", 1])
    graph["46"] = node("CheckpointLoaderSimple", ckpt_name="refine.safetensors")
    graph["8"]["inputs"]["samples"] = ["24", 0]
    record = parse_graph(graph)
    params = record.params
    assert (params["seed"], params["steps"], params["model"]) == (
        "156680208700286",
        "20",
        "sd_xl_base_1.0.safetensors",
    )
    assert record.prompt == "a majestic lion, café, 日本語"
    assert (params["width"], params["height"]) == ("1024", "768")
    assert (params["hires_width"], params["hires_height"], params["hires_upscaler"]) == (
        "1536",
        "1152",
        "nearest-exact",
    )
    assert (params["hires_steps"], params["hires_denoise"]) == ("14", "0.5")
    [other] = record.extra["samplers"]
    assert other["node"] == "24" and other["seed"] == str(2**70)
    assert other["model"] == "refine.safetensors" and other["prompt"] == "second pass text"
    assert [name for kind, name, *_ in resources(record) if kind == "checkpoint"] == [
        "sd_xl_base_1.0.safetensors",
        "refine.safetensors",
    ]


def test_two_independent_samplers_the_saved_one_wins() -> None:
    graph = basic_graph()
    graph["30"] = node(
        "KSampler",
        seed=1,
        steps=5,
        cfg=1.0,
        sampler_name="lcm",
        scheduler="simple",
        denoise=1.0,
        model=["4", 0],
        positive=["6", 0],
        negative=["7", 0],
        latent_image=["5", 0],
    )
    # Sampler 30's output goes nowhere, so sampler 3 (saved) is the image's.
    record = parse_graph(graph)
    assert record.params["seed"] == "156680208700286"
    assert [s["node"] for s in record.extra["samplers"]] == ["30"]


def test_without_output_nodes_the_highest_id_wins() -> None:
    graph = basic_graph()
    del graph["9"], graph["8"]
    graph["30"] = node(
        "KSampler",
        seed=1,
        steps=5,
        cfg=1.0,
        sampler_name="lcm",
        scheduler="simple",
        model=["4", 0],
        positive=["6", 0],
        negative=["7", 0],
        latent_image=["5", 0],
    )
    assert parse_graph(graph).params["seed"] == "1"


def test_links_to_primitive_and_text_nodes() -> None:
    graph = basic_graph()
    graph["6"]["inputs"]["text"] = ["50", 0]
    graph["50"] = node("Text Concatenate", text_a=["51", 0], text_b="sunset", delimiter=", ")
    graph["51"] = node("PrimitiveString", value="a cat")
    graph["3"]["inputs"]["seed"] = ["52", 0]
    graph["52"] = node("Seed (rgthree)", seed=99)
    graph["3"]["inputs"]["sampler_name"] = ["53", 0]
    graph["53"] = node("SamplerSelector", sampler_name="dpmpp_2m_sde_gpu")
    graph["3"]["inputs"]["steps"] = ["54", 0]
    graph["54"] = node("Int Literal", int=33)
    record = parse_graph(graph)
    assert record.prompt == "a cat, sunset"
    assert (record.params["seed"], record.params["steps"]) == ("99", "33")
    assert (record.params["sampler"], record.params["sampler_norm"]) == (
        "dpmpp_2m_sde_gpu",
        "dpmpp_2m_sde",
    )


def test_lora_loaders_and_stacks() -> None:
    graph = basic_graph()
    graph["3"]["inputs"]["model"] = ["60", 0]
    graph["60"] = node(
        "LoraLoader",
        lora_name="detail.safetensors",
        strength_model=0.8,
        strength_clip=0.6,
        model=["61", 0],
        clip=["61", 1],
    )
    graph["61"] = node(
        "LoraLoaderModelOnly", lora_name="style.safetensors", strength_model=0.5, model=["62", 0]
    )
    graph["62"] = node(
        "Power Lora Loader (rgthree)",
        lora_1={"on": True, "lora": "power.safetensors", "strength": 0.7},
        lora_2={"on": False, "lora": "off.safetensors", "strength": 1},
        **{"➕ Add Lora": ""},
        model=["63", 0],
        clip=["4", 1],
    )
    graph["63"] = node("CR Apply LoRA Stack", model=["64", 0], clip=["4", 1], lora_stack=["65", 0])
    graph["64"] = node("ModelSamplingDiscrete", sampling="eps", zsnr=False, model=["4", 0])
    graph["65"] = node(
        "CR LoRA Stack",
        switch_1="On",
        lora_name_1="cr1.safetensors",
        model_weight_1=0.9,
        clip_weight_1=0.4,
        switch_2="Off",
        lora_name_2="cr2.safetensors",
        model_weight_2=1,
        clip_weight_2=1,
        switch_3="On",
        lora_name_3="None",
        model_weight_3=1,
        clip_weight_3=1,
    )
    graph["66"] = node(
        "LoRA Stacker",
        input_mode="simple",
        lora_count=1,
        lora_name_1="stacker.safetensors",
        lora_wt_1=0.3,
        lora_name_2="beyond_count.safetensors",
        lora_wt_2=1,
    )
    record = parse_graph(graph)
    assert record.params["model"] == "sd_xl_base_1.0.safetensors"
    assert [r for r in resources(record) if r[0] == "lora"] == [
        ("lora", "detail.safetensors", 0.8, 0.6, "LoraLoader"),
        ("lora", "style.safetensors", 0.5, None, "LoraLoaderModelOnly"),
        ("lora", "power.safetensors", 0.7, None, "Power Lora Loader (rgthree)"),
        ("lora", "cr1.safetensors", 0.9, 0.4, "CR LoRA Stack"),
        ("lora", "stacker.safetensors", 0.3, 0.3, "LoRA Stacker"),
    ]


def test_sampler_custom_advanced_flux_style() -> None:
    graph = {
        "10": node(
            "SamplerCustomAdvanced",
            noise=["11", 0],
            guider=["12", 0],
            sampler=["13", 0],
            sigmas=["14", 0],
            latent_image=["15", 0],
        ),
        "11": node("RandomNoise", noise_seed=18446744073709551615),
        "12": node("BasicGuider", model=["16", 0], conditioning=["17", 0]),
        "13": node("KSamplerSelect", sampler_name="euler"),
        "14": node("BasicScheduler", scheduler="simple", steps=25, denoise=1.0, model=["16", 0]),
        "15": node("EmptySD3LatentImage", width=896, height=1152, batch_size=1),
        "16": node("UNETLoader", unet_name="flux1-dev.safetensors", weight_dtype="default"),
        "17": node("FluxGuidance", guidance=3.5, conditioning=["18", 0]),
        "18": node("CLIPTextEncode", text="a fox in snow", clip=["19", 0]),
        "19": node(
            "DualCLIPLoader", clip_name1="t5xxl.safetensors", clip_name2="clip_l.safetensors"
        ),
        "20": node("VAEDecode", samples=["10", 0], vae=["21", 0]),
        "21": node("VAELoader", vae_name="ae.safetensors"),
        "22": node("SaveImage", images=["20", 0], filename_prefix="flux"),
    }
    record = parse_graph(graph)
    assert record.prompt == "a fox in snow" and record.negative_prompt is None
    assert record.params == {
        "seed": "18446744073709551615",
        "steps": "25",
        "sampler": "euler",
        "sampler_norm": "euler",
        "scheduler": "simple",
        "scheduler_norm": "simple",
        "denoise": "1",
        "model": "flux1-dev.safetensors",
        "guidance": "3.5",
        "width": "896",
        "height": "1152",
    }
    assert resources(record) == [
        ("checkpoint", "flux1-dev.safetensors", None, None, "UNETLoader"),
        ("vae", "ae.safetensors", None, None, "VAELoader"),
    ]


def test_cfg_guider_and_karras_scheduler_node() -> None:
    graph = {
        "1": node(
            "SamplerCustom",
            add_noise=True,
            noise_seed=5,
            cfg=6.5,
            model=["2", 0],
            positive=["3", 0],
            negative=["4", 0],
            sampler=["5", 0],
            sigmas=["6", 0],
            latent_image=["7", 0],
        ),
        "2": node("CheckpointLoaderSimple", ckpt_name="m.safetensors"),
        "3": node(
            "CLIPTextEncodeSDXL",
            text_g="castle",
            text_l="castle, detailed",
            clip=["2", 1],
            width=1024,
            height=1024,
        ),
        "4": node("ConditioningZeroOut", conditioning=["3", 0]),
        "5": node("KSamplerSelect", sampler_name="dpmpp_2m"),
        "6": node("KarrasScheduler", steps=30, sigma_max=14.6, sigma_min=0.03, rho=7.0),
        "7": node("EmptyLatentImage", width=512, height=512, batch_size=1),
    }
    record = parse_graph(graph)
    assert record.prompt == "castle\ncastle, detailed"
    assert record.negative_prompt is None
    assert (record.params["cfg"], record.params["steps"], record.params["scheduler_norm"]) == (
        "6.5",
        "30",
        "karras",
    )


def test_controlnet_upscaler_clip_skip_and_embeddings() -> None:
    graph = basic_graph()
    graph["3"]["inputs"]["positive"] = ["70", 0]
    graph["3"]["inputs"]["negative"] = ["70", 1]
    graph["70"] = node(
        "ControlNetApplyAdvanced",
        positive=["6", 0],
        negative=["7", 0],
        control_net=["71", 0],
        image=["72", 0],
        strength=0.8,
    )
    graph["71"] = node("ControlNetLoader", control_net_name="control_canny.safetensors")
    graph["72"] = node("LoadImage", image="pose.png")
    graph["7"]["inputs"]["text"] = "embedding:EasyNegative, (embedding:bad_hands:1.2), blurry"
    graph["6"]["inputs"]["clip"] = ["73", 0]
    graph["73"] = node("CLIPSetLastLayer", stop_at_clip_layer=-2, clip=["4", 1])
    graph["74"] = node("UpscaleModelLoader", model_name="4x-UltraSharp.pth")
    graph["75"] = node("ImageUpscaleWithModel", upscale_model=["74", 0], image=["8", 0])
    graph["9"]["inputs"]["images"] = ["75", 0]
    record = parse_graph(graph)
    assert record.prompt == "a majestic lion, café, 日本語"
    assert record.negative_prompt == "embedding:EasyNegative, (embedding:bad_hands:1.2), blurry"
    assert record.params["clip_skip"] == "2"
    assert sorted((kind, name) for kind, name, *_ in resources(record)) == [
        ("checkpoint", "sd_xl_base_1.0.safetensors"),
        ("controlnet", "control_canny.safetensors"),
        ("embedding", "EasyNegative"),
        ("embedding", "bad_hands"),
        ("upscaler", "4x-UltraSharp.pth"),
    ]


def test_efficiency_nodes() -> None:
    graph = {
        "1": node(
            "Efficient Loader",
            ckpt_name="dream.safetensors",
            vae_name="Baked VAE",
            clip_skip=-2,
            lora_name="None",
            lora_model_strength=1,
            lora_clip_strength=1,
            positive="a lighthouse",
            negative="fog",
            empty_latent_width=512,
            empty_latent_height=640,
            batch_size=1,
            lora_stack=["2", 0],
        ),
        "2": node(
            "LoRA Stacker",
            input_mode="advanced",
            lora_count=1,
            lora_name_1="sea.safetensors",
            model_str_1=0.6,
            clip_str_1=0.5,
        ),
        "3": node(
            "KSampler (Efficient)",
            seed=12,
            steps=22,
            cfg=6.0,
            sampler_name="euler_ancestral",
            scheduler="karras",
            denoise=1.0,
            model=["1", 0],
            positive=["1", 1],
            negative=["1", 2],
            latent_image=["1", 3],
            preview_method="auto",
            vae_decode="true",
        ),
    }
    record = parse_graph(graph)
    assert (record.prompt, record.negative_prompt) == ("a lighthouse", "fog")
    assert record.params["model"] == "dream.safetensors"
    assert record.params["sampler_norm"] == "euler_ancestral"
    assert resources(record) == [
        ("checkpoint", "dream.safetensors", None, None, "Efficient Loader"),
        ("lora", "sea.safetensors", 0.6, 0.5, "LoRA Stacker"),
    ]


def test_nan_infinity_string_ids_and_unknown_nodes() -> None:
    text = (
        '{"sampler": {"class_type": "KSampler", "inputs": {"seed": 1, "steps": 20, "cfg": NaN,'
        ' "sampler_name": "euler", "scheduler": "normal", "denoise": Infinity,'
        ' "model": ["loader", 0], "positive": ["pos", 0], "negative": ["mystery", 0],'
        ' "latent_image": ["lat", 0]}},'
        ' "loader": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "x.ckpt"}},'
        ' "pos": {"class_type": "CLIPTextEncode",'
        ' "inputs": {"text": "hello", "clip": ["loader", 1]}},'
        ' "mystery": {"class_type": "SomeCustomNode|pack", "inputs": {"whatever": [1, 2, 3],'
        ' "other": ["nowhere", 0]}},'
        ' "lat": {"class_type": "EmptyLatentImage", "inputs": {}},'
        ' "broken": {"class_type": "KSampler"}, "junk": 5, "7": {"inputs": {}}}'
    )
    record = comfyui.parse({"prompt": text})
    assert record is not None
    assert record.prompt == "hello" and record.negative_prompt is None
    assert record.params["model"] == "x.ckpt"
    assert "cfg" not in record.params and "denoise" not in record.params  # NaN/inf dropped


def test_cycles_terminate() -> None:
    graph = {
        "1": node(
            "KSampler",
            seed=1,
            steps=2,
            cfg=3,
            sampler_name="euler",
            scheduler="normal",
            model=["2", 0],
            positive=["3", 0],
            negative=["3", 0],
            latent_image=["4", 0],
        ),
        "2": node("LoraLoader", lora_name="a.safetensors", strength_model=1, model=["2", 0]),
        "3": node("ConditioningCombine", conditioning_1=["3", 0], conditioning_2=["5", 0]),
        "4": node("LatentUpscale", samples=["4", 0], width=1, height=1),
        "5": node("CLIPTextEncode", text=["6", 0], clip=["2", 1]),
        "6": node("StringFunction", text=["6", 0]),
        "7": node("SaveImage", images=["8", 0]),
        "8": node("VAEDecode", samples=["1", 0], vae=["8", 0]),
        "9": node(
            "KSampler",
            seed=2,
            steps=2,
            cfg=3,
            positive=["3", 0],
            negative=["3", 0],
            latent_image=["1", 0],
            model=["2", 0],
        ),
    }
    graph["1"]["inputs"]["latent_image"] = ["9", 0]  # sampler cycle 1 <-> 9
    record = parse_graph(graph)
    assert record.params["steps"] == "2"
    assert record.prompt is None


def test_workflow_only() -> None:
    workflow = {
        "nodes": [
            {"id": 4, "type": "CheckpointLoaderSimple", "widgets_values": ["sd15.safetensors"]}
        ]
    }
    record = comfyui.parse({"workflow": json.dumps(workflow)})
    assert record is not None
    assert record.warnings == ["workflow only"]
    assert record.params["model"] == "sd15.safetensors"
    assert comfyui.parse({"workflow": "not json"}) is None


def test_graph_without_sampler_is_a_warned_record() -> None:
    record = parse_graph(
        {"1": node("LoadImage", image="x.png"), "2": node("PreviewImage", images=["1", 0])}
    )
    assert record.warnings == ["no sampler node found"]
    assert record.prompt is None


@pytest.mark.parametrize(
    "text",
    [
        "photo of a duck\nNegative prompt: x\nSteps: 20, Sampler: Euler, Seed: 1",
        "[1, 2]",
        '{"prompt": "a cat", "seed": 3}',
        '{"1": {"inputs": {}}}',
        "{" * 100000,
        "[" * 100000 + "]" * 100000,
    ],
)
def test_not_a_graph(text: str) -> None:
    assert comfyui.parse({"prompt": text}) is None
    assert comfyui.parse({"prompt": text, "workflow": '{"nodes": []}'}) is None


def test_absent_or_empty_prompt() -> None:
    assert comfyui.parse({"parameters": "a\nSteps: 1, Sampler: Euler, Seed: 1"}) is None
    assert comfyui.parse({"prompt": ""}) is None
    record = comfyui.parse({"prompt": "", "workflow": '{"nodes": []}'})
    assert record is not None and record.warnings == ["workflow only"]


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=20,
)
_ids = st.sampled_from(["1", "2", "3", "a"])
_node = st.fixed_dictionaries(
    {
        "class_type": st.sampled_from(
            [
                "KSampler",
                "SamplerCustomAdvanced",
                "CLIPTextEncode",
                "LoraLoader",
                "ConditioningCombine",
                "CheckpointLoaderSimple",
                "SaveImage",
                "EmptyLatentImage",
                "LatentUpscale",
                "Mystery",
            ]
        ),
        "inputs": st.dictionaries(
            st.sampled_from(
                [
                    "model",
                    "positive",
                    "negative",
                    "latent_image",
                    "text",
                    "seed",
                    "clip",
                    "conditioning_1",
                    "samples",
                    "guider",
                    "noise",
                    "sigmas",
                    "lora_name",
                    "ckpt_name",
                    "steps",
                    "images",
                    "width",
                    "height",
                    "lora_1",
                ]
            ),
            _json | st.tuples(_ids, st.integers(0, 2)).map(list),
            max_size=8,
        ),
    }
)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(_ids, _node, max_size=5))
def test_any_graph_never_raises(graph: dict[str, Any]) -> None:
    record = comfyui.parse({"prompt": json.dumps(graph)})
    assert record is None or record.generator == "comfyui"
    assert record is None or not any(w.startswith("graph only partly") for w in record.warnings)


@settings(max_examples=200, deadline=None)
@given(_json)
def test_any_json_never_raises(value: Any) -> None:
    result = comfyui.parse({"prompt": json.dumps(value), "workflow": json.dumps(value)})
    assert result is None or isinstance(result, Record)


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_any_text_never_raises(text: str) -> None:
    assert comfyui.parse({"prompt": text}) is None or text.lstrip().startswith("{")
