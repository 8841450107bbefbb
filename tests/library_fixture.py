"""A small library for the library tests: PNGs with A1111 parameters, read by `aimeta all`
(the real pipeline), and AI ratings stored as `aimeta rate` stores them."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, PngImagePlugin

from aimeta.pipelines import all as all_pipeline
from aimeta.settings import Settings

COLOURS = ("red", "blue", "green", "black")
THINGS = ("hair", "dress", "sky")
MODELS = ("dreamshaper_8", "juggernautXL")
LORAS = ("add_detail", "film_grain", "")
SAMPLERS = ("Euler a", "DPM++ 2M")


@dataclass(frozen=True)
class Made:
    database: Path
    folder: Path
    images: list[Path]


def infotext(index: int) -> str:
    colour, thing = COLOURS[index % 4], THINGS[index % 3]
    lora = LORAS[index % 3]
    prompt = f"masterpiece, ({colour} {thing}:1.2), portrait, photo number {index}"
    if lora:
        prompt += f" <lora:{lora}:0.7>"
    negative = "blurry, lowres" if index % 2 else "watermark"
    return (
        f"{prompt}\nNegative prompt: {negative}\nSteps: 20, Sampler: {SAMPLERS[index % 2]},"
        f" CFG scale: 7, Seed: {1000 + index}, Size: 64x48, Model: {MODELS[index % 2]}"
    )


def picture(path: Path, index: int) -> Path:
    """A PNG with a gradient of its own colour (so thumbnails differ) and A1111 parameters,
    landscape or portrait by index, written by Pillow as A1111 writes them."""
    size = (240, 180) if index % 3 else (180, 240)
    ramp = Image.linear_gradient("L").resize(size)
    hue = Image.new("L", size, (index * 37) % 256)
    rgb = Image.merge("HSV", (hue, Image.new("L", size, 150), ramp)).convert("RGB")
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", infotext(index))
    rgb.save(path, pnginfo=info)
    return path


def make_library(
    root: Path, count: int = 12, *, later_from: int | None = None, plain: int = 0
) -> Made:
    """``count`` PNGs under root/photos (from image ``later_from`` on in root/photos/later),
    and ``plain`` PNGs without metadata, indexed into root/out/images.db; images 0, 3, 6, ...
    get an AI rating of 1 + index % 5."""
    folder = root / "photos"
    (folder / "later").mkdir(parents=True, exist_ok=True)
    images = [
        picture(
            folder
            / ("later" if later_from is not None and index >= later_from else "")
            / f"img{index:03d}.png",
            index,
        )
        for index in range(count)
    ]
    for index in range(plain):
        Image.new("RGB", (50, 50), (90, 90, 90)).save(folder / f"plain{index}.png")
    out = root / "out"
    all_pipeline.run([folder], Settings(out_dir=out, db=out / "images.db", jobs=1))
    database = out / "images.db"
    with sqlite3.connect(database) as conn:
        conn.executemany(
            "INSERT OR REPLACE INTO ratings (path, model, overall, scores_json, keywords_json,"
            " rated_at) VALUES (?, 'tester', ?, '{\"impact\": 3}', '[\"kw\"]',"
            " '2024-06-01T00:00:00Z')",
            [(str(path), 1 + index % 5) for index, path in enumerate(images) if index % 3 == 0],
        )
    return Made(database, folder, images)
