"""Answer text -> Rating: tolerant of the form, strict about the values."""

from __future__ import annotations

import json

import pytest

from aimeta.errors import RatingError
from aimeta.rating import prompt_files
from aimeta.rating.answer import (
    CRITERIA,
    clean_keywords,
    fill_user_prompt,
    json_schema,
    parse_answer,
)

GOOD = {
    "composition": 8,
    "lighting": 7,
    "colour": 6,
    "sharpness": 9,
    "impact": 5,
    "creativity": 4,
    "overall": 4,
    "keywords": ["beach", "Sunset", "sunset", " waves ", "2024", ""],
}


def test_plain_json() -> None:
    rating = parse_answer(json.dumps(GOOD))
    assert rating.overall == 4
    assert rating.scores == {
        "composition": 8,
        "lighting": 7,
        "colour": 6,
        "sharpness": 9,
        "impact": 5,
        "creativity": 4,
    }
    assert rating.keywords == ("beach", "Sunset", "waves")


def test_fenced_json_with_text_around() -> None:
    text = "Here you go:\n```json\n" + json.dumps(GOOD, indent=2) + "\n```\nHope it helps."
    assert parse_answer(text).overall == 4


def test_think_block_removed_even_when_it_holds_json_like_text() -> None:
    text = '<think>maybe {"overall": 1} ... composition: 2</think>\n' + json.dumps(GOOD)
    rating = parse_answer(text)
    assert rating.overall == 4 and rating.scores["composition"] == 8


def test_unopened_think_block() -> None:
    assert parse_answer("reasoning here</think>" + json.dumps(GOOD)).overall == 4


def test_key_value_lines_with_aliases() -> None:
    text = """**Composition:** 8/10
    - Lighting: 7
    Color: 6
    Technical quality: 9
    Subject: 5 out of 10
    Creativity = 4
    Overall rating: ★★★★
    Keywords: beach, sunset, 42"""
    rating = parse_answer(text)
    assert rating.overall == 4
    assert rating.scores["colour"] == 6 and rating.scores["sharpness"] == 9
    assert rating.scores["impact"] == 5
    assert rating.keywords == ("beach", "sunset")


def test_nested_scores_object() -> None:
    nested = {
        "scores": {
            k: GOOD[k]
            for k in ("composition", "lighting", "colour", "sharpness", "impact", "creativity")
        },
        "overall": 3,
        "keywords": "a; b",
    }
    rating = parse_answer(json.dumps(nested))
    assert rating.overall == 3 and rating.keywords == ("a", "b")


@pytest.mark.parametrize("missing", ["lighting", "overall"])
def test_missing_value_is_an_error_naming_it(missing: str) -> None:
    answer = {k: v for k, v in GOOD.items() if k != missing}
    with pytest.raises(RatingError, match=f"no {missing}"):
        parse_answer(json.dumps(answer))


@pytest.mark.parametrize(
    ("key", "value"),
    [("composition", 11), ("composition", 0), ("overall", 6), ("overall", 0), ("lighting", "NaN")],
)
def test_out_of_range_is_an_error(key: str, value: object) -> None:
    with pytest.raises(RatingError, match=key):
        parse_answer(json.dumps({**GOOD, key: value}))


def test_fractional_stars_are_an_error_but_fractional_scores_are_kept() -> None:
    with pytest.raises(RatingError, match="whole stars"):
        parse_answer(json.dumps({**GOOD, "overall": 3.5}))
    assert parse_answer(json.dumps({**GOOD, "lighting": 7.5})).scores["lighting"] == 7.5


def test_no_rating_at_all() -> None:
    with pytest.raises(RatingError, match="holds no rating"):
        parse_answer("I cannot see an image.")


def test_keywords_cleaned() -> None:
    raw = ["a|b", "x" * 65, "line\nbreak", "-tag=1", "3.5", "100%", "35mm", "Cat", "cat", "Dog"]
    assert clean_keywords(raw, 4) == ("a/b", "line break", "-tag=1", "35mm")
    assert clean_keywords(raw, 0) == ()
    assert clean_keywords(None, 5) == ()


def test_schema_and_prompt_name_every_criterion() -> None:
    schema = json_schema()
    keys = [c.key for c in CRITERIA]
    assert schema["required"] == [*keys, "overall", "keywords"]
    assert schema["additionalProperties"] is False
    prompt = fill_user_prompt(prompt_files.default_prompts().user, 7)
    for key in keys:
        assert f"- {key}:" in prompt
    assert "up to\n7 short keywords" in prompt or "up to 7" in prompt.replace("\n", " ")
    assert "{criteria}" not in prompt and "{example}" not in prompt
    # The example in the prompt is itself a valid answer.
    example = prompt[prompt.index('{"') :].strip()
    assert parse_answer(example).overall == 3


def test_user_prompt_braces_survive() -> None:
    assert fill_user_prompt("Use {json} {max_keywords}", 3) == "Use {json} 3"
