"""Generate a realistic mixed corpus of generated images for the benchmarks.

    python bench/make_corpus.py 3000 bench/corpus

Mix (by file count): A1111 PNG 40 %, ComfyUI PNG with a 20–40 KB workflow 20 %, A1111 JPEG and
WebP with UTF-16 UserComment 10 % each, InvokeAI, NovelAI, Fooocus and SwarmUI PNG 4 % each,
photos without generation metadata 4 %. Prompts have realistic lengths (25–70 tags), every
file is unique (its own prompt, seed and noise pixels), and the generator is seeded so the
same N gives the same corpus.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from factory import jpeg_with_exif, png_with_text, webp_with_exif

SUBJECTS = (
    "woman man cat dog castle forest city street robot dragon ship car flower mountain lake"
).split()
STYLES = (
    "masterpiece|best quality|highly detailed|8k|photorealistic|cinematic lighting|film grain|"
    "sharp focus|bokeh|volumetric light|oil painting|watercolor|anime|concept art|octane render|"
    "dramatic sky|golden hour|soft light|rim light|depth of field|intricate|ornate|vivid colors|"
    "muted colors|wide angle|portrait|full body|close-up|from above|from below|night|rain|snow"
).split("|")
NEGATIVE = (
    "lowres|bad anatomy|bad hands|text|error|missing fingers|cropped|worst quality|"
    "jpeg artifacts|watermark|blurry"
).split("|")
SAMPLERS = ["Euler a", "DPM++ 2M", "DPM++ 2M SDE", "DPM++ SDE", "UniPC", "DDIM"]
MODELS = [
    "v1-5-pruned-emaonly",
    "realisticVisionV51_v51VAE",
    "sd_xl_base_1.0",
    "juggernautXL_v9",
    "dreamshaper_8",
]
LORAS = ["detail_tweaker", "add_detail", "film_grain", "pixel_art_xl", "more_details"]


def prompt(rng: random.Random) -> str:
    tags = [rng.choice(SUBJECTS), *rng.sample(STYLES, k=rng.randint(12, 30))]
    tags += [f"tag{rng.randint(1, 4000)}" for _ in range(rng.randint(10, 40))]
    tags = [f"({tag}:{rng.choice([1.1, 1.2, 1.3])})" if rng.random() < 0.1 else tag for tag in tags]
    if rng.random() < 0.4:
        tags.append(f"<lora:{rng.choice(LORAS)}:{rng.choice([0.5, 0.7, 0.8, 1.0])}>")
    return ", ".join(tags)


def infotext(rng: random.Random) -> str:
    return (
        f"{prompt(rng)}\nNegative prompt: {', '.join(rng.sample(NEGATIVE, k=6))}\n"
        f"Steps: {rng.randint(20, 40)}, Sampler: {rng.choice(SAMPLERS)}, Schedule type: Karras, "
        f"CFG scale: {rng.choice([5, 6.5, 7])}, Seed: {rng.randint(0, 2**32)}, Size: 832x1216, "
        f"Model hash: {rng.getrandbits(40):010x}, Model: {rng.choice(MODELS)}, Version: v1.10.1"
    )


def comfy(rng: random.Random) -> dict[str, str]:
    graph = {
        "4": {
            "class_type": "CheckpointLoaderSimple",
            "inputs": {"ckpt_name": f"{rng.choice(MODELS)}.safetensors"},
        },
        "6": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["4", 1], "text": prompt(rng)}},
        "7": {
            "class_type": "CLIPTextEncode",
            "inputs": {"clip": ["4", 1], "text": ", ".join(NEGATIVE)},
        },
        "5": {
            "class_type": "EmptyLatentImage",
            "inputs": {"width": 832, "height": 1216, "batch_size": 1},
        },
        "3": {
            "class_type": "KSampler",
            "inputs": {
                "model": ["4", 0],
                "positive": ["6", 0],
                "negative": ["7", 0],
                "latent_image": ["5", 0],
                "seed": rng.getrandbits(64),
                "steps": rng.randint(20, 40),
                "cfg": 7.0,
                "sampler_name": rng.choice(["euler", "dpmpp_2m", "dpmpp_2m_sde_gpu"]),
                "scheduler": "karras",
                "denoise": 1.0,
            },
        },
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {
            "class_type": "SaveImage",
            "inputs": {"images": ["8", 0], "filename_prefix": "ComfyUI"},
        },
    }
    # The UI workflow is the bulk of a ComfyUI file: node positions, widgets, links, groups.
    target = rng.randint(20_000, 40_000)
    nodes: list[dict[str, object]] = []
    written = 0
    while written < target:
        index = len(nodes) + 1
        nodes.append(
            {
                "id": index,
                "type": rng.choice(["KSampler", "CLIPTextEncode", "Reroute", "Note"]),
                "pos": [rng.randint(0, 3000), rng.randint(0, 3000)],
                "size": [315, 262],
                "flags": {},
                "order": index,
                "mode": 0,
                "inputs": [{"name": "model", "type": "MODEL", "link": index}],
                "outputs": [
                    {"name": "LATENT", "type": "LATENT", "links": [index + 1], "slot_index": 0}
                ],
                "properties": {"Node name for S&R": "KSampler"},
                "widgets_values": [rng.getrandbits(48), "randomize", 20, 7],
            }
        )
        written += len(json.dumps(nodes[-1])) + 2
    workflow = {
        "last_node_id": len(nodes),
        "last_link_id": len(nodes),
        "nodes": nodes,
        "links": [],
        "version": 0.4,
    }
    return {"prompt": json.dumps(graph), "workflow": json.dumps(workflow)}


def other_generator(rng: random.Random, kind: str) -> dict[str, str]:
    text = prompt(rng)
    if kind == "invokeai":
        meta = {
            "positive_prompt": text,
            "negative_prompt": "blurry",
            "seed": rng.getrandbits(32),
            "steps": 30,
            "cfg_scale": 7.5,
            "scheduler": "euler",
            "width": 1024,
            "height": 1024,
            "model": {
                "name": "juggernautXL",
                "base": "sdxl",
                "type": "main",
                "hash": "blake3:" + "ab" * 32,
            },
        }
        return {"invokeai_metadata": json.dumps(meta)}
    if kind == "novelai":
        comment = {
            "prompt": text,
            "steps": 28,
            "scale": 5.0,
            "seed": rng.getrandbits(32),
            "sampler": "k_euler_ancestral",
            "uc": "lowres, bad anatomy",
            "noise_schedule": "karras",
            "width": 832,
            "height": 1216,
        }
        return {
            "Title": "NovelAI generated image",
            "Description": text,
            "Software": "NovelAI",
            "Source": "NovelAI Diffusion V4.5 4BDE2A90",
            "Comment": json.dumps(comment),
        }
    if kind == "fooocus":
        meta = {
            "prompt": text,
            "negative_prompt": "",
            "steps": 30,
            "guidance_scale": 4,
            "seed": str(rng.getrandbits(63)),
            "sampler": "dpmpp_2m_sde_gpu",
            "scheduler": "karras",
            "base_model": "juggernautXL_v8Rundiffusion",
            "base_model_hash": "aeb7e9e689",
            "styles": "['Fooocus V2']",
            "performance": "Speed",
            "resolution": "(1024, 1024)",
            "version": "Fooocus v2.5.5",
            "loras": [],
            "metadata_scheme": "fooocus",
        }
        return {"parameters": json.dumps(meta), "fooocus_scheme": "fooocus"}
    meta = {
        "sui_image_params": {
            "prompt": text,
            "negativeprompt": "blurry",
            "model": "juggernautXL_v9",
            "seed": rng.getrandbits(32),
            "steps": 30,
            "cfgscale": 7,
            "sampler": "euler",
            "scheduler": "karras",
            "width": 1024,
            "height": 1024,
            "swarm_version": "0.9.4",
        }
    }
    return {"parameters": json.dumps(meta, indent=2)}


def noise(rng: random.Random, size: tuple[int, int]) -> Image.Image:
    return Image.frombytes("RGB", size, rng.randbytes(size[0] * size[1] * 3))


def make(count: int, folder: Path, seed: int = 1) -> None:
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    kinds = (
        ["a1111_png"] * 40
        + ["comfyui"] * 20
        + ["a1111_jpg"] * 10
        + ["a1111_webp"] * 10
        + ["invokeai", "novelai", "fooocus", "swarmui"] * 4
        + ["photo"] * 4
    )
    for index in range(count):
        # Step through the mix with a stride coprime to its length, so even a small corpus
        # holds every kind.
        kind = kinds[(index * 37) % len(kinds)]
        sub = folder / f"batch{index // 500:03d}"
        sub.mkdir(exist_ok=True)
        stem = sub / f"{index:06d}_{kind}"
        size = (64, 64)
        if kind == "a1111_jpg":
            jpeg_with_exif(
                stem.with_suffix(".jpg"),
                user_comment=infotext(rng),
                encoding="unicode-be",
                size=size,
            )
        elif kind == "a1111_webp":
            webp_with_exif(
                stem.with_suffix(".webp"),
                user_comment=infotext(rng),
                encoding="unicode-be",
                size=size,
            )
        elif kind == "photo":
            noise(rng, size).save(stem.with_suffix(".jpg"), quality=85)
        else:
            if kind == "a1111_png":
                chunks = {"parameters": infotext(rng)}
            elif kind == "comfyui":
                chunks = comfy(rng)
            else:
                chunks = other_generator(rng, kind)
            path = png_with_text(stem.with_suffix(".png"), chunks, chunk="tEXt", size=size)
            # Replace the flat test pixels with noise so files are unique and realistically sized.
            _swap_pixels(path, noise(rng, size))


def _swap_pixels(path: Path, pixels: Image.Image) -> None:
    import io
    import struct
    import zlib

    data = path.read_bytes()
    buffer = io.BytesIO()
    pixels.save(buffer, "PNG")
    fresh = buffer.getvalue()

    # Take the IDAT of the noise image, keep the text chunks of the original.
    def chunks(blob: bytes) -> list[tuple[bytes, bytes]]:
        out, offset = [], 8
        while offset < len(blob):
            length = struct.unpack(">I", blob[offset : offset + 4])[0]
            out.append((blob[offset + 4 : offset + 8], blob[offset : offset + 12 + length]))
            offset += 12 + length
        return out

    idat = b"".join(raw for kind, raw in chunks(fresh) if kind == b"IDAT")
    rebuilt = data[:8] + b"".join(idat if kind == b"IDAT" else raw for kind, raw in chunks(data))
    assert zlib  # the noise IDAT is already compressed by Pillow
    path.write_bytes(rebuilt)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("count", type=int)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    make(args.count, args.folder, args.seed)
    total = sum(p.stat().st_size for p in args.folder.rglob("*") if p.is_file())
    print(f"{args.count} files, {total / 1e6:.1f} MB in {args.folder}")


if __name__ == "__main__":
    main()
