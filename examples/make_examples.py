"""Write the small synthetic example images in examples/ (run: python examples/make_examples.py).

Each file carries metadata the way its generator writes it (text chunk names, EXIF fields,
encodings), with made-up prompts and settings. They are tiny (16x16 pixels) so the repository
stays small; `./run.sh` reads them when Input/ is empty.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from factory import jpeg_with_exif, plain_png, png_with_text, webp_with_exif  # noqa: E402

A1111 = (
    "masterpiece, (lighthouse on a cliff:1.2), stormy sea, dramatic sky, "
    "<lora:detail_tweaker:0.6>\n"
    "Negative prompt: lowres, blurry, (watermark:1.3)\n"
    "Steps: 28, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 1234567890, "
    "Size: 512x768, Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, VAE: vae-ft-mse-840000, "
    "Denoising strength: 0.45, Clip skip: 2, Hires upscale: 2, Hires upscaler: 4x-UltraSharp, "
    'Lora hashes: "detail_tweaker: 0a1b2c3d4e5f", Version: v1.10.1'
)

A1111_JPEG = (
    "portrait of an old fisherman, knitted hat, café terrace, 日本語の看板\n"
    "Negative prompt: cartoon, 3d\n"
    "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 42, Size: 512x512, "
    "Model hash: 15012c538f, Model: realisticVisionV51_v51VAE, Version: f2.0.1v1.10.1"
)

FORGE_WEBP = (
    "a red fox in fresh snow, golden hour, bokeh\n"
    "Negative prompt: low quality\n"
    "Steps: 25, Sampler: DPM++ 2M SDE, Schedule type: Exponential, CFG scale: 5, Seed: 987654321, "
    "Size: 832x1216, Model hash: 31e35c80fc, Model: sd_xl_base_1.0, Version: f2.0.1v1.10.1-previous"
)


def comfyui_graph() -> dict[str, object]:
    """A txt2img graph with a LoRA and a second (hires) sampler, in ComfyUI's API format."""
    return {
        "4": {
            "class_type": "CheckpointLoaderSimple",
            "inputs": {"ckpt_name": "sd_xl_base_1.0.safetensors"},
        },
        "10": {
            "class_type": "LoraLoader",
            "inputs": {
                "model": ["4", 0],
                "clip": ["4", 1],
                "lora_name": "pixel_art_xl.safetensors",
                "strength_model": 0.8,
                "strength_clip": 0.7,
            },
        },
        "6": {
            "class_type": "CLIPTextEncode",
            "inputs": {
                "clip": ["10", 1],
                "text": "isometric pixel art castle, (sunset:1.1), embedding:goodstyle",
            },
        },
        "7": {
            "class_type": "CLIPTextEncode",
            "inputs": {"clip": ["10", 1], "text": "blurry, text, watermark"},
        },
        "5": {
            "class_type": "EmptyLatentImage",
            "inputs": {"width": 1024, "height": 1024, "batch_size": 1},
        },
        "3": {
            "class_type": "KSampler",
            "inputs": {
                "model": ["10", 0],
                "positive": ["6", 0],
                "negative": ["7", 0],
                "latent_image": ["5", 0],
                "seed": 156680208700286,
                "steps": 20,
                "cfg": 8.0,
                "sampler_name": "euler_ancestral",
                "scheduler": "normal",
                "denoise": 1.0,
            },
        },
        "11": {
            "class_type": "LatentUpscaleBy",
            "inputs": {"samples": ["3", 0], "upscale_method": "nearest-exact", "scale_by": 1.5},
        },
        "12": {
            "class_type": "KSampler",
            "inputs": {
                "model": ["10", 0],
                "positive": ["6", 0],
                "negative": ["7", 0],
                "latent_image": ["11", 0],
                "seed": 18446744073709551615,
                "steps": 12,
                "cfg": 6.0,
                "sampler_name": "dpmpp_2m",
                "scheduler": "karras",
                "denoise": 0.5,
            },
        },
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["12", 0], "vae": ["4", 2]}},
        "9": {
            "class_type": "SaveImage",
            "inputs": {"images": ["8", 0], "filename_prefix": "ComfyUI"},
        },
    }


def main() -> None:
    HERE.mkdir(exist_ok=True)
    size = (16, 16)
    png_with_text(HERE / "a1111_lighthouse.png", {"parameters": A1111}, size=size)
    jpeg_with_exif(
        HERE / "a1111_fisherman.jpg", user_comment=A1111_JPEG, encoding="unicode-be", size=size
    )
    webp_with_exif(
        HERE / "forge_fox.webp", user_comment=FORGE_WEBP, encoding="unicode-le", size=size
    )
    graph = comfyui_graph()
    workflow = {
        "last_node_id": 12,
        "nodes": [{"id": int(k), "type": v["class_type"]} for k, v in graph.items()],
    }
    png_with_text(
        HERE / "comfyui_castle.png",
        {"prompt": json.dumps(graph), "workflow": json.dumps(workflow)},
        size=size,
    )
    invoke = {
        "generation_mode": "txt2img",
        "positive_prompt": "a cozy cabin in the woods, warm light",
        "negative_prompt": "people",
        "width": 1024,
        "height": 1024,
        "seed": 3293022630,
        "steps": 30,
        "cfg_scale": 6.0,
        "scheduler": "dpmpp_2m_k",
        "model": {"name": "juggernautXL", "base": "sdxl", "type": "main", "hash": "blake3:8d5e2a"},
        "loras": [{"model": {"name": "film_grain", "base": "sdxl"}, "weight": 0.5}],
    }
    png_with_text(HERE / "invokeai_cabin.png", {"invokeai_metadata": json.dumps(invoke)}, size=size)
    novelai = {
        "prompt": "1girl, {{silver hair}}, [smile], starry night",
        "steps": 28,
        "scale": 5.0,
        "seed": 2253955223,
        "sampler": "k_euler_ancestral",
        "noise_schedule": "karras",
        "uc": "lowres, bad anatomy",
        "width": 832,
        "height": 1216,
    }
    png_with_text(
        HERE / "novelai_stars.png",
        {
            "Title": "NovelAI generated image",
            "Description": novelai["prompt"],
            "Software": "NovelAI",
            "Source": "NovelAI Diffusion V4.5 4BDE2A90",
            "Comment": json.dumps(novelai),
        },
        size=size,
    )
    fooocus = {
        "prompt": "a smiling goldfish in a bowl",
        "negative_prompt": "",
        "styles": "['Fooocus V2']",
        "performance": "Speed",
        "resolution": "(1024, 1024)",
        "guidance_scale": 4,
        "sharpness": 2,
        "sampler": "dpmpp_2m_sde_gpu",
        "scheduler": "karras",
        "seed": "6952411511246973023",
        "base_model": "juggernautXL_v8Rundiffusion",
        "base_model_hash": "aeb7e9e689",
        "loras": [["sd_xl_offset_example-lora_1.0.safetensors", 0.1]],
        "steps": 30,
        "version": "Fooocus v2.5.5",
        "metadata_scheme": "fooocus",
    }
    png_with_text(
        HERE / "fooocus_goldfish.png",
        {"parameters": json.dumps(fooocus), "fooocus_scheme": "fooocus"},
        size=size,
    )
    swarm = {
        "sui_image_params": {
            "prompt": "a paper boat on a rainy street, reflections",
            "negativeprompt": "blurry",
            "model": "juggernautXL_v9",
            "seed": 77,
            "steps": 30,
            "cfgscale": 6.5,
            "sampler": "dpmpp_2m",
            "scheduler": "karras",
            "width": 1024,
            "height": 1024,
            "swarm_version": "0.9.4.0",
        },
        "sui_models": [
            {"name": "juggernautXL_v9.safetensors", "param": "model", "hash": "0x" + "ab" * 32}
        ],
    }
    png_with_text(HERE / "swarmui_boat.png", {"parameters": json.dumps(swarm, indent=2)}, size=size)
    # ComfyUI's own WebP saver puts the graph in EXIF IFD0 Model as "prompt:{...}".
    webp_with_exif(
        HERE / "comfyui_castle.webp",
        model="prompt:" + json.dumps(graph),
        make="workflow:" + json.dumps(workflow),
        size=size,
    )
    plain_png(HERE / "photo_without_metadata.png", size=size)


if __name__ == "__main__":
    main()
