"""ComfyUI API graphs for parser tests: a node builder, a basic text-to-image graph and the
parse call that checks the record is a ComfyUI one."""

from __future__ import annotations

import json
from typing import Any

from aimeta.metadata.parsers import comfyui
from aimeta.metadata.record import Record


def node(class_type: str, **inputs: Any) -> dict[str, Any]:
    return {"class_type": class_type, "inputs": inputs}


def basic_graph() -> dict[str, Any]:
    return {
        "3": node(
            "KSampler",
            seed=156680208700286,
            steps=20,
            cfg=8.0,
            sampler_name="euler",
            scheduler="normal",
            denoise=1.0,
            model=["4", 0],
            positive=["6", 0],
            negative=["7", 0],
            latent_image=["5", 0],
        ),
        "4": node("CheckpointLoaderSimple", ckpt_name="sd_xl_base_1.0.safetensors"),
        "5": node("EmptyLatentImage", width=1024, height=768, batch_size=1),
        "6": node("CLIPTextEncode", text="a majestic lion, café, 日本語", clip=["4", 1]),
        "7": node("CLIPTextEncode", text="text, watermark", clip=["4", 1]),
        "8": node("VAEDecode", samples=["3", 0], vae=["4", 2]),
        "9": node("SaveImage", filename_prefix="ComfyUI", images=["8", 0]),
    }


def parse_graph(graph: dict[str, Any], **fields: str) -> Record:
    record = comfyui.parse({"prompt": json.dumps(graph), **fields})
    assert record is not None
    assert record.generator == "comfyui"
    return record
