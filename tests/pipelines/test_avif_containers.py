"""AVIF files (and the other ISO-BMFF/JPEG XL containers) are found, read by ExifTool and their
ComfyUI graphs routed to the ComfyUI parser, whether the graph sits in XMP or in EXIF."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import features

from aimeta import db
from aimeta.files import IMAGE_EXTENSIONS, find_images
from aimeta.pipelines import dump, ingest
from factory import avif_with_metadata, xmp_packet

pytestmark = pytest.mark.skipif(not features.check("avif"), reason="Pillow cannot write AVIF")

GRAPH = {
    "3": {
        "class_type": "KSampler",
        "inputs": {
            "seed": 42,
            "steps": 24,
            "cfg": 5.5,
            "sampler_name": "dpmpp_2m",
            "scheduler": "karras",
            "denoise": 1.0,
            "model": ["4", 0],
            "positive": ["6", 0],
            "negative": ["7", 0],
            "latent_image": ["5", 0],
        },
    },
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "flux.safetensors"}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 896, "height": 1152}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a heron", "clip": ["4", 1]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "fog", "clip": ["4", 1]}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
    "9": {"class_type": "SaveImageExtended", "inputs": {"images": ["8", 0]}},
}
WORKFLOW = {"nodes": [], "links": [], "version": 0.4}


def test_heic_avif_and_jpeg_xl_are_image_extensions() -> None:
    assert {".avif", ".heic", ".heif", ".jxl"} <= IMAGE_EXTENSIONS


@pytest.mark.parametrize("reader", ["auto", "native"])
def test_comfy_graph_in_avif_xmp_and_exif_reaches_the_database(tmp_path: Path, reader: str) -> None:
    # The native reader reads PNG, JPEG and WebP only: AVIF goes to ExifTool in both modes.
    folder = tmp_path / "in"
    folder.mkdir()
    graph, workflow = json.dumps(GRAPH), json.dumps(WORKFLOW)
    xmp = xmp_packet(
        {"prompt": graph, "workflow": workflow}, prefix="comfy", namespace="https://comfy.org/ns/"
    )
    avif_with_metadata(folder / "xmp.avif", xmp=xmp)
    avif_with_metadata(
        folder / "exif.avif", user_comment=json.dumps({"prompt": GRAPH, "workflow": WORKFLOW})
    )
    assert [f.path.name for f in find_images([folder])] == ["exif.avif", "xmp.avif"]
    raw = tmp_path / "raw.jsonl"
    dump.run([folder], raw, reader=reader)
    readers = [json.loads(line)["reader"] for line in raw.read_text().splitlines()[1:]]
    assert readers == ["exiftool", "exiftool"]
    conn = db.connect(tmp_path / "images.db")
    ingest.run(raw, conn)

    for name, container in (("xmp.avif", "xmp"), ("exif.avif", "exif:usercomment")):
        generator, extra = conn.execute(
            "SELECT generator, extra_json FROM images WHERE file_name = ?", (name,)
        ).fetchone()
        assert generator == "comfyui", name
        assert json.loads(extra)["graph_container"] == container
        values = dict(
            conn.execute(
                "SELECT kv.key, kv.value FROM kv JOIN images ON images.id = kv.image_id"
                " WHERE file_name = ?",
                (name,),
            ).fetchall()
        )
        assert values["prompt"] == "a heron" and values["negative_prompt"] == "fog", name
        assert (values["seed"], values["steps"], values["cfg"]) == ("42", "24", "5.5"), name
        assert (values["width"], values["height"], values["model"]) == (
            "896",
            "1152",
            "flux.safetensors",
        ), name
