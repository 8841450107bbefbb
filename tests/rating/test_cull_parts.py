"""The pure parts of `aimeta cull`: signals, groups, the ranking answer and the calibration."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image, ImageEnhance, ImageFilter

from aimeta.errors import RatingError
from aimeta.rating import calibrate, groups, ranking, signals
from conftest import samples_dir
from cull_images import scene, variant


def _jpeg_again(image: Image.Image, quality: int = 60) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue()))


def _check_signals(original: Image.Image) -> None:
    plain = signals.measure(original)
    blurred = signals.measure(original.filter(ImageFilter.GaussianBlur(3)))
    bright = signals.measure(ImageEnhance.Brightness(original).enhance(4.0))
    assert plain.reasons == ()
    assert blurred.sharpness < plain.sharpness / 10
    assert "blurry" in blurred.reasons
    assert "overexposed" in bright.reasons and "blurry" not in bright.reasons
    assert bright.highlights > plain.highlights
    # noise: added grain raises the estimate
    grain = Image.effect_noise(original.size, 40).convert("RGB")
    noisy = signals.measure(Image.blend(original.convert("RGB"), grain, 0.3))
    assert noisy.noise > plain.noise


def test_signals_on_generated_images() -> None:
    _check_signals(scene(3))


def test_dark_copy_is_underexposed() -> None:
    dark = signals.measure(ImageEnhance.Brightness(scene(4)).enhance(0.1))
    assert "underexposed" in dark.reasons


@pytest.mark.skipif(samples_dir() is None, reason="AIMETA_SAMPLES not set")
@pytest.mark.parametrize("name", ["skimage_astronaut.png", "skimage_chelsea.png"])
def test_signals_on_real_photos(name: str) -> None:
    folder = samples_dir()
    assert folder is not None
    with Image.open(folder / "photos" / name) as opened:
        photo = opened.convert("RGB")
    photo.thumbnail((896, 896))
    _check_signals(photo)


def _item(ident: int, image: Image.Image, **extra: object) -> groups.Item:
    return groups.Item(ident, signals.measure(image).phash, **extra)  # type: ignore[arg-type]


def _near_duplicates(base: Image.Image) -> list[Image.Image]:
    width, height = base.size
    cropped = base.crop((8, 6, width - 8, height - 6)).resize(base.size)  # ~3 % per side
    return [
        base,
        cropped,
        ImageEnhance.Brightness(base).enhance(1.2),
        _jpeg_again(base),
    ]


def test_near_duplicates_grouped_and_scenes_apart() -> None:
    first, second = _near_duplicates(scene(21)), _near_duplicates(scene(22))
    items = [_item(i, image) for i, image in enumerate(first + second)]
    found = groups.find_groups(items)
    assert [g.members for g in found] == [(0, 1, 2, 3), (4, 5, 6, 7)]


@pytest.mark.skipif(samples_dir() is None, reason="AIMETA_SAMPLES not set")
def test_real_photos_grouped_with_their_copies() -> None:
    folder = samples_dir()
    assert folder is not None
    images = []
    for name in ("skimage_astronaut.png", "skimage_chelsea.png", "skimage_coffee.png"):
        with Image.open(folder / "photos" / name) as opened:
            images += _near_duplicates(opened.convert("RGB"))
    found = groups.find_groups([_item(i, image) for i, image in enumerate(images)])
    assert sorted(g.members for g in found) == [(0, 1, 2, 3), (4, 5, 6, 7), (8, 9, 10, 11)]


def test_hash_distance_and_window_are_adjustable() -> None:
    base = scene(23)
    copies = [base, variant(base, 0.5, crop=6)]
    apart = groups.find_groups([_item(i, c) for i, c in enumerate(copies)], hash_distance=0)
    assert len(apart) == 2
    # different scenes one second apart are no burst; the same scene within the window is
    burst = [_item(0, scene(24), captured=100.0), _item(1, scene(25), captured=101.0)]
    assert len(groups.find_groups(burst)) == 2
    moved = [_item(0, base, captured=100.0), _item(1, variant(base, 0.5, crop=9), captured=101.0)]
    apart_by = signals.hash_distance(moved[0].phash, moved[1].phash)
    assert 0 < apart_by <= 20
    # too far apart for near-duplicates at this distance, close enough for one burst
    limit = apart_by - 1
    assert len(groups.find_groups(moved, hash_distance=limit)) == 1
    assert len(groups.find_groups(moved, hash_distance=limit, window=0.5)) == 2


def _params(seed: str, prompt: str = "a lighthouse at dusk") -> dict[str, str]:
    return {
        "prompt": prompt,
        "negative_prompt": "blurry",
        "seed": seed,
        "steps": "30",
        "cfg": "7",
        "width": "512",
        "height": "384",
    }


def test_ai_batches_grouped_by_parameters() -> None:
    items = [
        groups.Item(1, "0" * 16, batch=groups.batch_key(_params("1"))),
        groups.Item(2, "f" * 16, batch=groups.batch_key(_params("2"))),
        groups.Item(3, "0f" * 8, batch=groups.batch_key(_params("3", "a castle"))),
        groups.Item(4, "f0" * 8, batch=groups.batch_key({"seed": "4"})),  # no prompt: a photo
    ]
    assert groups.batch_key({"seed": "4"}) is None
    found = groups.find_groups(items)
    assert [g.members for g in found] == [(1, 2), (3,), (4,)]
    assert found[0].group_id == 1 and found[0].key != found[1].key


@pytest.mark.parametrize(
    "text",
    [
        '{"ranking": [3, 1, 2], "reasons": {"3": "sharp"}}',
        '<think>2 is soft {not json}</think>```json\n{"ranking": ["Image 3", "Image 1", 2]}\n```',
        "Best first: 3 > 1 > 2",
        "[3, 1, 2]",
    ],
)
def test_ranking_answers_parsed_leniently(text: str) -> None:
    assert ranking.parse_ranking(text, 3).order == (3, 1, 2)


@pytest.mark.parametrize("text", ['{"ranking": [1, 1, 2]}', '{"ranking": [1, 2]}', "no idea"])
def test_ranking_answers_that_miss_an_image_are_invalid(text: str) -> None:
    with pytest.raises(RatingError):
        ranking.parse_ranking(text, 3)


def test_ranking_reasons_kept_by_number() -> None:
    parsed = ranking.parse_ranking('{"ranking": [2, 1], "reasons": {"2": "eyes open"}}', 2)
    assert parsed.reasons == {2: "eyes open"}


def test_calibration_orders_within_groups_and_spreads_stars() -> None:
    entries = [
        # a group of three whose absolute scores disagree with the ranking
        calibrate.Entry(1, 3, group_id=1, rank=3, size=3),
        calibrate.Entry(2, 2, group_id=1, rank=1, size=3),
        calibrate.Entry(3, 4, group_id=1, rank=2, size=3),
        *(calibrate.Entry(10 + i, float(1 + i % 5)) for i in range(7)),
        calibrate.Entry(30, 5, faults=("blurry",)),
    ]
    decided = calibrate.calibrate(entries)
    assert decided[2].score > decided[3].score > decided[1].score
    assert decided[2].decision == "pick" and decided[3].decision == "keep"
    assert decided[30].decision == "reject" and decided[30].reasons == ("blurry",)
    stars = sorted(d.stars for d in decided.values())
    assert stars[0] == 1 and stars[-1] == 5  # 10/20/40/20/10 over 11 images


def test_distribution_is_adjustable() -> None:
    entries = [calibrate.Entry(i, float(1 + i % 5)) for i in range(20)]
    everyone_three = calibrate.calibrate(entries, distribution=(0, 0, 1, 0, 0))
    assert {d.stars for d in everyone_three.values()} == {3}
    assert calibrate.parse_distribution("5,15,50,20,10") == (5, 15, 50, 20, 10)
    with pytest.raises(ValueError, match="five shares"):
        calibrate.parse_distribution("50,50")


def test_clear_losers_are_reject_candidates() -> None:
    entries = [calibrate.Entry(i, 1.0, group_id=0, rank=i + 1, size=6) for i in range(6)]
    entries += [calibrate.Entry(10 + i, 5.0) for i in range(6)]
    decided = calibrate.calibrate(entries)
    losers = {i for i, d in decided.items() if d.reasons == (calibrate.LOSER_REASON,)}
    assert losers == {4, 5}
    assert decided[0].decision == "pick"


def test_scene_generator_keeps_images_clean(tmp_path: Path) -> None:
    for seed in range(3):
        assert signals.measure(variant(scene(seed), 0.9, crop=4)).reasons == ()
