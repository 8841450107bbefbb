"""Turn a vision model's answer into a :class:`Rating` (pure: text in, Rating or RatingError out).

The criteria are defined once here (:data:`CRITERIA`): the shipped user prompt lists them, the
JSON schema sent to the server names them, the parser requires them, and the CSV, database and
sidecar writers take their columns from them.

Parsing is tolerant of how local models actually answer: ``<think>...</think>`` reasoning
before the answer, JSON inside a Markdown fence, JSON with text around it, or plain
``Key: value`` lines. It is strict about the values: a missing or out-of-range score is an
error that names the criterion, never a silent default.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from aimeta.errors import RatingError


@dataclass(frozen=True, slots=True)
class Criterion:
    """One thing the model scores from 1 to 10; ``key`` is the JSON/CSV name."""

    key: str
    label: str
    aliases: tuple[str, ...] = ()


CRITERIA: tuple[Criterion, ...] = (
    Criterion("composition", "Composition (framing, balance, use of space)"),
    Criterion("lighting", "Lighting (quality, direction, exposure)", ("light", "exposure")),
    Criterion("colour", "Colour (harmony, white balance, grading)", ("color", "colours", "colors")),
    Criterion(
        "sharpness",
        "Sharpness / technical quality (focus, noise, artefacts)",
        ("technical", "technical_quality", "quality", "sharpness_technical_quality", "focus"),
    ),
    Criterion(
        "impact",
        "Subject / impact (interest of the subject, emotional effect)",
        ("subject", "subject_impact", "emotional_impact", "interest"),
    ),
    Criterion("creativity", "Creativity (originality, point of view)", ("originality",)),
)

SCORE_MIN, SCORE_MAX = 1, 10
OVERALL_MIN, OVERALL_MAX = 1, 5
_OVERALL_ALIASES = ("overall", "overall_rating", "rating", "stars", "total", "score")
_KEYWORD_ALIASES = ("keywords", "keyword", "tags", "tag")
# A keyword longer than this is a sentence or junk, not a keyword.
MAX_KEYWORD_LENGTH = 64


@dataclass(frozen=True, slots=True)
class Rating:
    """A parsed answer: per-criterion scores (1-10), overall stars (1-5), clean keywords."""

    scores: dict[str, float]
    overall: int
    keywords: tuple[str, ...]


def json_schema(criteria: tuple[Criterion, ...] = CRITERIA) -> dict[str, Any]:
    """The JSON schema of an answer, within the subset LM Studio, llama.cpp, vLLM, Ollama and
    OpenAI all accept (flat object, integer and string-array properties, all required)."""
    properties: dict[str, Any] = {c.key: {"type": "integer"} for c in criteria}
    properties["overall"] = {"type": "integer"}
    properties["keywords"] = {"type": "array", "items": {"type": "string"}}
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def example_answer(criteria: tuple[Criterion, ...] = CRITERIA) -> str:
    """A JSON example of the expected answer, for the user prompt."""
    example: dict[str, Any] = {c.key: 7 for c in criteria}
    example["overall"] = 3
    example["keywords"] = ["keyword one", "keyword two"]
    return json.dumps(example)


def fill_user_prompt(
    template: str, max_keywords: int, criteria: tuple[Criterion, ...] = CRITERIA
) -> str:
    """Replace ``{criteria}``, ``{max_keywords}`` and ``{example}`` in a user prompt.

    Plain replacement (not ``str.format``), so other braces in a user's own prompt stay as
    written."""
    listing = "\n".join(f"- {c.key}: {c.label}" for c in criteria)
    return (
        template.replace("{criteria}", listing)
        .replace("{max_keywords}", str(max_keywords))
        .replace("{example}", example_answer(criteria))
    )


def parse_answer(
    text: str, *, max_keywords: int = 15, criteria: tuple[Criterion, ...] = CRITERIA
) -> Rating:
    """Read the model's answer text; raise RatingError saying what is missing or wrong."""
    body = _strip_reasoning(text)
    fields = _json_fields(body)
    if fields is None:
        fields = _key_value_fields(body)
    if not fields:
        raise RatingError(f"the answer holds no rating: {_preview(text)}")
    normalised = _normalise_keys(fields)

    scores: dict[str, float] = {}
    missing: list[str] = []
    for criterion in criteria:
        raw = _first(normalised, (criterion.key, *criterion.aliases))
        if raw is None:
            missing.append(criterion.key)
            continue
        scores[criterion.key] = _score(criterion.key, raw, SCORE_MIN, SCORE_MAX)
    raw_overall = _first(normalised, _OVERALL_ALIASES)
    if raw_overall is None:
        missing.append("overall")
    if missing:
        raise RatingError(f"the answer has no {', '.join(missing)}: {_preview(text)}")
    overall = _score("overall", raw_overall, OVERALL_MIN, OVERALL_MAX)
    if overall != int(overall):
        raise RatingError(f"overall must be whole stars from 1 to 5, got {raw_overall!r}")
    keywords = clean_keywords(_first(normalised, _KEYWORD_ALIASES), max_keywords)
    return Rating(scores=scores, overall=int(overall), keywords=keywords)


def clean_keywords(raw: Any, max_keywords: int) -> tuple[str, ...]:
    """Trim, drop control characters, bare numbers and over-long entries, de-duplicate
    case-insensitively (first spelling wins), keep at most ``max_keywords``."""
    if raw is None or max_keywords <= 0:
        return ()
    items = raw if isinstance(raw, list) else re.split(r"[,;\n]", str(raw))
    result: list[str] = []
    seen: set[str] = set()
    for item in items:
        if not isinstance(item, str | int | float) or isinstance(item, bool):
            continue
        # '|' is the hierarchy separator of lr:hierarchicalSubject: a model's '|' must not
        # create keyword hierarchies.
        word = strip_control(str(item)).replace("|", "/")
        word = re.sub(r"\s+", " ", word).strip().strip("\"'").strip()
        if not word or len(word) > MAX_KEYWORD_LENGTH or _is_number(word):
            continue
        if word.casefold() in seen:
            continue
        seen.add(word.casefold())
        result.append(word)
        if len(result) >= max_keywords:
            break
    return tuple(result)


def strip_control(text: str) -> str:
    """``text`` with control characters (newlines included) replaced by spaces."""
    return re.sub(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]", " ", text)


def _strip_reasoning(text: str) -> str:
    text = re.sub(r"<think>.*?</think>", "", text, flags=re.DOTALL | re.IGNORECASE)
    # A server that strips the opening tag (or a cut-off one) leaves "...</think>answer".
    if "</think>" in text.lower():
        text = re.split(r"</think>", text, flags=re.IGNORECASE)[-1]
    return text.strip()


def _json_fields(body: str) -> dict[str, Any] | None:
    candidates = re.findall(r"```(?:json|JSON)?\s*(.*?)```", body, flags=re.DOTALL)
    start, end = body.find("{"), body.rfind("}")
    if start != -1 and end > start:
        candidates.append(body[start : end + 1])
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(value, dict):
            # Some models nest the criteria: {"scores": {...}, "overall": 4, ...}.
            merged: dict[str, Any] = {}
            for key, item in value.items():
                if isinstance(item, dict) and key.lower() in ("scores", "criteria", "ratings"):
                    merged.update(item)
                else:
                    merged[key] = item
            return merged
    return None


def _key_value_fields(body: str) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for line in body.splitlines():
        match = re.match(r"^[\s*#>-]*([A-Za-z][A-Za-z /&_-]{0,40}?)\s*\**\s*[:=]\s*(.+)$", line)
        if match:
            fields.setdefault(match.group(1), match.group(2).strip().strip("*").strip())
    return fields


def _normalise_keys(fields: dict[str, Any]) -> dict[str, Any]:
    return {re.sub(r"[^a-z0-9]+", "_", str(k).lower()).strip("_"): v for k, v in fields.items()}


def _first(fields: dict[str, Any], names: tuple[str, ...]) -> Any:
    for name in names:
        if name in fields and fields[name] not in (None, ""):
            return fields[name]
    return None


def _score(name: str, raw: Any, low: int, high: int) -> float:
    if isinstance(raw, bool):
        raise RatingError(f"{name} is not a number: {raw!r}")
    if isinstance(raw, int | float):
        value = float(raw)
    else:
        # "8", "8/10", "8 out of 10", "4 stars", "★★★★" ...
        text = str(raw).strip()
        stars = text.count("★")
        match = re.match(r"^([0-9]+(?:\.[0-9]+)?)", text)
        if match:
            value = float(match.group(1))
        elif stars:
            value = float(stars)
        else:
            raise RatingError(f"{name} is not a number: {_preview(text)}")
    if not math.isfinite(value) or not low <= value <= high:
        raise RatingError(f"{name} is {raw!r}, outside {low}-{high}")
    return int(value) if value == int(value) else value


def _is_number(word: str) -> bool:
    return re.fullmatch(r"[-+]?[0-9][0-9.,:/ %]*", word) is not None


def _preview(text: str, limit: int = 160) -> str:
    flat = re.sub(r"\s+", " ", text).strip()
    return repr(flat if len(flat) <= limit else flat[:limit] + "...")
