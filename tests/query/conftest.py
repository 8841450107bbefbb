"""A small hand-made database for the query tests (wildcards, search, stats).

Images are stored through aimeta.db.store_image with explicit Record objects and Token lists
(not the tokenizer's output), and every image path is a real file so `--paths` can be fed to
other tools. ``IMAGES`` is the single description both the database and the tests read.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from aimeta import db
from aimeta.metadata.record import Record, Resource
from aimeta.metadata.tokens import Token


@dataclass(frozen=True)
class Image:
    """One fixture image: its file name, generator, prompt tokens and parameters."""

    name: str
    generator: str
    pos: tuple[tuple[str, str, float], ...] = ()  # (t_raw, t_norm, weight)
    neg: tuple[tuple[str, str, float], ...] = ()
    prompt: str | None = None
    negative_prompt: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    resources: tuple[Resource, ...] = ()
    ratings: tuple[tuple[str, int], ...] = ()  # (model tag, overall)


def _plain(*tokens: str) -> tuple[tuple[str, str, float], ...]:
    """Tokens written without emphasis: t_raw and t_norm are the same text."""
    return tuple((token, token, 1.0) for token in tokens)


IMAGES = (
    Image(
        "a1.png",
        "a1111",
        pos=(*_plain("masterpiece"), ("(red hair:1.2)", "red hair", 1.2), *_plain("smile"),
             ("red_hair", "red hair", 1.0)),
        neg=_plain("lowres", "bad hands"),
        prompt="masterpiece, (red hair:1.2), smile, red_hair",
        negative_prompt="lowres, bad hands",
        params={"sampler": "DPM++ 2M Karras", "sampler_norm": "dpmpp_2m",
                "scheduler_norm": "karras", "seed": "1001", "model": "dreamshaper_8"},
        resources=(Resource("checkpoint", "dreamshaper_8"), Resource("lora", "add_detail", 0.8),
                   Resource("lora", "film_grain", 0.5)),
        ratings=(("qwen", 5), ("llava", 3)),
    ),
    Image(
        "a2.png",
        "a1111",
        pos=_plain("masterpiece", "blue eyes", "red hair"),
        neg=_plain("lowres", "blurry"),
        prompt="masterpiece, blue eyes, red hair",
        negative_prompt="lowres, blurry",
        params={"sampler": "Euler a", "sampler_norm": "euler_ancestral",
                "scheduler_norm": "normal", "seed": "1002", "model": "dreamshaper_8"},
        resources=(Resource("checkpoint", "models/Stable-diffusion/dreamshaper_8.safetensors"),
                   Resource("lora", "add_detail", 0.8)),
        ratings=(("qwen", 4),),
    ),
    Image(
        "c3.png",
        "comfyui",
        pos=(("Red_Hair", "red hair", 1.0), *_plain("1girl", "forest")),
        neg=_plain("bad hands"),
        prompt="Red_Hair, 1girl, forest",
        negative_prompt="bad hands",
        params={"sampler": "euler", "sampler_norm": "euler", "scheduler_norm": "karras",
                "seed": "123456789012345678901", "model": "sdxl/juggernautXL.safetensors"},
        resources=(Resource("checkpoint", "sdxl/juggernautXL.safetensors"),
                   Resource("lora", "add_detail", 1.0), Resource("embedding", "easynegative")),
    ),
    Image(
        "a4.png",
        "a1111",
        pos=_plain("masterpiece", "sunset over the sea"),
        prompt="masterpiece,\nsunset over the sea",
        params={"sampler": "DPM++ 2M", "sampler_norm": "dpmpp_2m", "seed": "1004",
                "model": "sd_xl_base_1.0"},
        resources=(Resource("checkpoint", "sd_xl_base_1.0"),
                   Resource("lora", "Detail_Tweaker", 0.75000001),
                   Resource("lora", "film_grain")),
        ratings=(("qwen", 2),),
    ),
    Image(
        "n5.png",
        "novelai",
        pos=_plain("1girl", "blue eyes"),
        neg=_plain("lowres"),
        prompt="1girl, blue eyes",
        negative_prompt="lowres",
        params={"sampler": "k_euler_ancestral", "sampler_norm": "euler_ancestral",
                "seed": "1005"},
    ),
    Image(
        "a6.png",
        "a1111",
        pos=_plain("masterpiece", "blue eyes", "red hair"),
        neg=_plain("lowres", "blurry"),
        prompt="masterpiece, blue eyes, red hair",
        negative_prompt="lowres, blurry",
        params={"sampler": "Euler a", "sampler_norm": "euler_ancestral", "seed": "1006",
                "model": "dreamshaper_8"},
        resources=(Resource("checkpoint", "dreamshaper_8"), Resource("lora", "add_detail", 0.8)),
    ),
    Image("u7.png", "unknown"),
    Image("p8.jpg", "none"),
)  # fmt: skip


@dataclass(frozen=True)
class FixtureDb:
    path: Path
    images: Path  # the folder holding the image files

    def file(self, name: str) -> str:
        return str(self.images / name)


def build_database(folder: Path) -> FixtureDb:
    """Write the fixture images (tiny files) and their database below ``folder``."""
    images = folder / "images"
    images.mkdir(parents=True)
    path = folder / "images.db"
    conn = db.connect(path)
    with db.transaction(conn):
        for image in IMAGES:
            file_path = images / image.name
            file_path.write_bytes(image.name.encode())
            info = {
                "key": f"images/{image.name}",
                "path": str(file_path),
                "root": str(images),
                "file_name": image.name,
                "ext": file_path.suffix.lstrip("."),
                "generator": image.generator,
            }
            record = None
            if image.generator != "none":
                record = Record(
                    image.generator,
                    prompt=image.prompt,
                    negative_prompt=image.negative_prompt,
                    params=dict(image.params),
                    resources=list(image.resources),
                )
            tokens = [("pos", Token(i, *token)) for i, token in enumerate(image.pos)]
            tokens += [("neg", Token(i, *token)) for i, token in enumerate(image.neg)]
            db.store_image(conn, info, record, tokens)
            for model, overall in image.ratings:
                conn.execute(
                    "INSERT INTO ratings (path, model, overall, scores_json, keywords_json,"
                    " rated_at) VALUES (?, ?, ?, '{}', '[]', '2024-06-01T00:00:00Z')",
                    (str(file_path), model, overall),
                )
        db.record_error(conn, str(images / "broken.png"), "dump", "not an image")
    conn.close()  # the last connection checkpoints the WAL into the main file
    return FixtureDb(path, images)


@pytest.fixture(scope="session")
def fixture_db(tmp_path_factory: pytest.TempPathFactory) -> FixtureDb:
    """The fixture database, shared: every query command only reads it."""
    return build_database(tmp_path_factory.mktemp("query"))


@pytest.fixture
def fresh_db(tmp_path: Path) -> FixtureDb:
    """A private copy of the fixture database, for tests that try to change it."""
    return build_database(tmp_path / "fresh")


@pytest.fixture(scope="session")
def images_spec() -> tuple[Image, ...]:
    """The description the fixture database was built from."""
    return IMAGES


@pytest.fixture(scope="session")
def digest() -> Callable[[Path], str]:
    """SHA-256 of a file's bytes."""
    return lambda path: hashlib.sha256(path.read_bytes()).hexdigest()
