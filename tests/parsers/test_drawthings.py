"""Draw Things: XMP exif:UserComment JSON (PNG iTXt XMP packet)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from xml.sax.saxutils import escape

from aimeta.metadata.parsers import drawthings
from aimeta.metadata.readers.fields import text_fields
from factory import png_with_text

SETTINGS = {
    "c": "a lighthouse at dusk, oil painting",
    "uc": "people, text",
    "seed": 2541329051,
    "steps": 8,
    "scale": 4.5,
    "sampler": "DPM++ 2M Karras",
    "model": "sd_xl_base_1.0_f16.ckpt",
    "size": "1024x768",
    "strength": 1,
    "seed_mode": "Scale Alike",
    "lora": [{"file": "sdxl_lightning_8_step_lora_f16.ckpt", "weight": 1}],
}


def xmp_packet(settings: dict[str, object]) -> str:
    """An XMP packet shaped like Draw Things' (CreatorTool, description, UserComment)."""
    comment = escape(json.dumps(settings))
    return (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'xmlns:exif="http://ns.adobe.com/exif/1.0/">'
        "<xmp:CreatorTool>Draw Things</xmp:CreatorTool>"
        '<dc:description><rdf:Alt><rdf:li xml:lang="x-default">'
        f"{escape(str(settings['c']))}</rdf:li></rdf:Alt></dc:description>"
        '<exif:UserComment><rdf:Alt><rdf:li xml:lang="x-default">'
        f"{comment}</rdf:li></rdf:Alt></exif:UserComment>"
        "</rdf:Description></rdf:RDF></x:xmpmeta>"
    )


def fields_of(path: Path) -> dict[str, str]:
    """Real ExifTool output for one file, as canonical text fields."""
    out = subprocess.run(
        ["exiftool", "-json", "-G1", "-n", "--", str(path)], capture_output=True, check=True
    ).stdout
    return text_fields(json.loads(out)[0])


def test_xmp_usercomment_through_exiftool(tmp_path: Path) -> None:
    path = png_with_text(
        tmp_path / "dt.png", {"XML:com.adobe.xmp": xmp_packet(SETTINGS)}, chunk="iTXt"
    )
    fields = fields_of(path)
    assert fields["xmp:creatortool"] == "Draw Things"
    record = drawthings.parse(fields)
    assert record is not None
    assert record.generator == "drawthings"
    assert record.prompt == "a lighthouse at dusk, oil painting"
    assert record.negative_prompt == "people, text"
    assert record.params["seed"] == "2541329051"
    assert (record.params["steps"], record.params["cfg"]) == ("8", "4.5")
    assert (record.params["width"], record.params["height"]) == ("1024", "768")
    assert (record.params["sampler_norm"], record.params["scheduler_norm"]) == (
        "dpmpp_2m",
        "karras",
    )
    assert "denoise" not in record.params  # strength 1 is text-to-image
    assert [(r.kind, r.name, r.weight) for r in record.resources] == [
        ("checkpoint", "sd_xl_base_1.0_f16.ckpt", None),
        ("lora", "sdxl_lightning_8_step_lora_f16.ckpt", 1.0),
    ]
    assert record.extra["seed_mode"] == "Scale Alike"


def test_other_xmp_is_not_draw_things() -> None:
    assert drawthings.parse({"xmp:usercomment": "beach, 2019"}) is None
    assert drawthings.parse({"xmp:usercomment": '{"c": 1}', "xmp:creatortool": "darktable"}) is None


def test_loras_only_in_the_v2_configuration_become_resources(tmp_path: Path) -> None:
    settings = {key: value for key, value in SETTINGS.items() if key != "lora"}
    settings["v2"] = {
        "seed": 2541329051,
        "loras": [
            {"file": "detail_tweaker_lora_f16.ckpt", "weight": 0.6},
            {"file": "film_grain_lora_f16.ckpt", "weight": -0.25},
        ],
    }
    path = png_with_text(
        tmp_path / "dt.png", {"XML:com.adobe.xmp": xmp_packet(settings)}, chunk="iTXt"
    )
    record = drawthings.parse(fields_of(path))
    assert record is not None
    assert [(r.kind, r.name, r.weight) for r in record.resources] == [
        ("checkpoint", "sd_xl_base_1.0_f16.ckpt", None),
        ("lora", "detail_tweaker_lora_f16.ckpt", 0.6),
        ("lora", "film_grain_lora_f16.ckpt", -0.25),
    ]


def test_lora_items_in_other_shapes() -> None:
    data = {
        "c": "a cat",
        "scale": 5,
        "loras": [{"model": "a_lora_f16.ckpt", "strength": "0.8"}, "b_lora_f16.ckpt", 3],
    }
    record = drawthings.parse({"xmp:usercomment": json.dumps(data)})
    assert record is not None
    assert [(r.kind, r.name, r.weight) for r in record.resources] == [
        ("lora", "a_lora_f16.ckpt", 0.8),
        ("lora", "b_lora_f16.ckpt", None),
    ]
