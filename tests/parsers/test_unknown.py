"""unknown: generation-like text nobody recognised is kept; plain file metadata is not."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from aimeta.metadata.parsers import ORDER, unknown
from aimeta.metadata.readers.fields import text_fields
from factory import jpeg_with_exif, png_with_text


def fields_of(path: Path) -> dict[str, str]:
    """Real ExifTool output for one file, as canonical text fields."""
    out = subprocess.run(
        ["exiftool", "-json", "-G1", "-n", "--", str(path)], capture_output=True, check=True
    ).stdout
    return text_fields(json.loads(out)[0])


def test_unknown_is_tried_last() -> None:
    assert ORDER[-1] == "unknown"


def test_imagemagick_dates_stay_none(tmp_path: Path) -> None:
    path = png_with_text(
        tmp_path / "magick.png",
        {"date:create": "2025-03-27T21:10:17+00:00", "date:modify": "2025-03-27T21:10:17+00:00"},
    )
    assert unknown.parse(fields_of(path)) is None


def test_camera_and_photo_editor_metadata_stay_none(tmp_path: Path) -> None:
    path = jpeg_with_exif(
        tmp_path / "camera.jpg",
        make="Canon",
        model="Canon EOS R5",
        image_description="Sunset over the harbour",
        user_comment="Holiday 2023",
    )
    assert unknown.parse(fields_of(path)) is None
    editor = {
        "comment": "File written by Adobe Photoshop 5.0",
        "software": "darktable 4.6.1",
        "xmp:creatortool": "darktable 4.6.1",
        "xmp:history_operation": '["exposure", "denoiseprofile", "filmicrgb"]',
    }
    assert unknown.parse(editor) is None


def test_unrecognised_generation_text_is_kept_raw(tmp_path: Path) -> None:
    text = "masterpiece, castle --ar 16:9 | seed 1234, 30 steps, sampler euler"
    path = png_with_text(tmp_path / "odd.png", {"Comment": text, "date:create": "2025"})
    fields = fields_of(path)
    record = unknown.parse(fields)
    assert record is not None
    assert record.generator == "unknown"
    assert record.raw == fields
    assert "generation words" in record.warnings[0]


def test_generator_name_or_generation_key_is_enough() -> None:
    named = unknown.parse({"software": "Midjourney v6"})
    assert named is not None and "names an image generator" in named.warnings[0]
    keyed = unknown.parse({"parameters": "garbled"})
    assert keyed is not None and "'parameters'" in keyed.warnings[0]
    assert unknown.parse({}) is None
    assert unknown.parse({"parameters": "   "}) is None
