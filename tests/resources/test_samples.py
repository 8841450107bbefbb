"""Resources of the real sample files (only when AIMETA_SAMPLES names the samples folder)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from aimeta.metadata.readers.fields import text_fields
from aimeta.pipelines import resources

SAMPLES = Path(os.environ.get("AIMETA_SAMPLES", "")) / "generated"

pytestmark = [
    pytest.mark.skipif(
        not os.environ.get("AIMETA_SAMPLES") or not SAMPLES.is_dir(),
        reason="AIMETA_SAMPLES does not name the samples folder",
    ),
    pytest.mark.skipif(shutil.which("exiftool") is None, reason="ExifTool is not installed"),
]


def _fields(name: str) -> dict[str, str]:
    output = subprocess.run(
        ["exiftool", "-json", "-G1", "-n", "--", str(SAMPLES / name)],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    return text_fields(json.loads(output)[0])


def test_sample_resources_match_what_the_files_carry(
    conn: sqlite3.Connection, store_image: Callable[..., int]
) -> None:
    a1111 = store_image("a1111.png", _fields("imagemetahub_a1111.png"))
    comfy = store_image("night.png", _fields("night_evening_day_morning_cropped.png"))
    resources.run(conn)

    def rows(image_id: int) -> list[tuple[object, ...]]:
        return conn.execute(
            "SELECT kind, name, weight, hash FROM resources WHERE image_id = ? ORDER BY kind, name",
            (image_id,),
        ).fetchall()

    assert rows(a1111) == [
        ("checkpoint", "v1-5-pruned-emaonly", None, "6ce0161689"),
        ("lora", "detailTweaker", 0.8, None),
    ]
    assert rows(comfy) == [
        ("checkpoint", "AbyssOrangeMix2_hard", None, None),
        ("checkpoint", "Anything-V3.0", None, None),
        ("vae", "vae-ft-mse-840000-ema-pruned", None, None),
    ]
    view = conn.execute(
        "SELECT checkpoints, loras, vaes FROM v_images_with_resources WHERE id = ?", (comfy,)
    ).fetchone()
    assert view == ("AbyssOrangeMix2_hard, Anything-V3.0", None, "vae-ft-mse-840000-ema-pruned")
