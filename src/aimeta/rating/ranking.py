"""The model's answer when asked to order a group of images, best first.

**Contract**: a JSON object whose key ``ranking`` is the list of image numbers (1-based, as
the request labels them ``Image 1``, ``Image 2``, ...), best first, with an optional
``reasons`` object keyed by image number. :func:`ranking_schema` is sent as
``response_format``; :func:`parse_ranking` also takes the answer leniently: fenced JSON,
reasoning before it (``<think>``), a bare list, or plain text such as ``3 > 1 > 2`` -- as long
as every image number appears exactly once.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from aimeta.errors import RatingError
from aimeta.rating.answer import strip_control

RANK_PROMPT_FILE = "rank_group.txt"


@dataclass(frozen=True, slots=True)
class Ranking:
    """Image numbers (1-based, as sent) best first, and the model's reasons by number."""

    order: tuple[int, ...]
    reasons: dict[int, str] = field(default_factory=dict)


def default_rank_prompt() -> str:
    """The shipped prompt that asks for the best-first order (rating/prompts/rank_group.txt)."""
    folder = resources.files("aimeta.rating").joinpath("prompts")
    return folder.joinpath(RANK_PROMPT_FILE).read_text(encoding="utf-8")


def label(number: int) -> str:
    """The text part sent before image ``number``."""
    return f"Image {number}"


def ranking_schema(count: int) -> dict[str, Any]:
    """The JSON schema of the answer for a group of ``count`` images."""
    return {
        "type": "object",
        "properties": {
            "ranking": {
                "type": "array",
                "items": {"type": "integer", "minimum": 1, "maximum": count},
                "minItems": count,
                "maxItems": count,
            },
            "reasons": {"type": "object", "additionalProperties": {"type": "string"}},
        },
        "required": ["ranking"],
        "additionalProperties": False,
    }


def parse_ranking(text: str, count: int) -> Ranking:
    """The ranking in ``text`` for ``count`` images; raise RatingError when it does not name
    every image exactly once."""
    body = _strip_reasoning(text)
    data = _json_value(body)
    reasons: dict[int, str] = {}
    if isinstance(data, dict):
        raw = data.get("ranking", data.get("order"))
        reasons = _reasons(data.get("reasons"), count)
    else:
        raw = data
    if isinstance(raw, list):
        numbers = [_number(item) for item in raw]
    else:
        numbers = [int(word) for word in re.findall(r"\d+", body)]
    if sorted(n for n in numbers if n is not None) != list(range(1, count + 1)):
        shown = body[:160].replace("\n", " ")
        raise RatingError(f"the answer does not rank images 1 to {count} once each: {shown!r}")
    return Ranking(tuple(n for n in numbers if n is not None), reasons)


def _strip_reasoning(text: str) -> str:
    if "</think>" in text.lower():
        text = re.split(r"</think>", text, flags=re.IGNORECASE)[-1]
    return text.strip()


def _json_value(body: str) -> Any:
    candidates = re.findall(r"```(?:json|JSON)?\s*(.*?)```", body, flags=re.DOTALL)
    for opening, closing in ("{}", "[]"):
        start, end = body.find(opening), body.rfind(closing)
        if start != -1 and end > start:
            candidates.append(body[start : end + 1])
    for candidate in candidates:
        try:
            return json.loads(candidate)
        except ValueError:
            continue
    return None


def _number(item: Any) -> int | None:
    if isinstance(item, bool):
        return None
    if isinstance(item, int):
        return item
    match = re.search(r"\d+", str(item))
    return int(match.group()) if match else None


def _reasons(raw: Any, count: int) -> dict[int, str]:
    if not isinstance(raw, dict):
        return {}
    found = {}
    for key, value in raw.items():
        number = _number(key)
        if number is not None and 1 <= number <= count and isinstance(value, str):
            found[number] = strip_control(value).strip()[:300]
    return found
