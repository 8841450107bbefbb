"""Small value helpers shared by the JSON-based format parsers (InvokeAI, NovelAI, SwarmUI, ...).

The standard ``json`` module is used on purpose: it keeps integers of any size exact (seeds
above 2**64 survive), where orjson (3.13) silently turns them into floats.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from types import FrameType
from typing import Any

from aimeta.metadata.record import Record, Resource
from aimeta.metadata.resources import hash_type
from aimeta.metadata.vocab import normalize_sampler, normalize_scheduler

# isinstance() with tuples built once (``dict | list`` in the call builds a union each time);
# these helpers run for nearly every value of every record.
_CONTAINERS = (dict, list)
_NUMBERS = (int, float)
# Values whose meaning is "nothing chosen" in the formats seen.
_EMPTY_NAMES = frozenset({"", "none", "null", "default", "default (model)", "automatic", "auto"})
# Seeds that mean "pick one at random": the request, not the seed the image was made with.
_RANDOM_SEEDS = frozenset({"-1", "random", "randomize", "randomized"})


# JSON decoded during one parse_fields call, shared by the formats it asks: a UserComment is
# looked at as SwarmUI, Civitai, Easy Diffusion, NovelAI, Fooocus and ComfyUI JSON in turn, and
# a 100 KB ComfyUI save would be decoded each time. Text -> (value, stack depth it was decoded
# at); only long texts, where decoding costs far more than the bookkeeping. The formats only
# read what they are given, so handing one value to several of them changes nothing.
SHARED_JSON: ContextVar[dict[str, tuple[Any, int]] | None] = ContextVar(
    "aimeta_shared_json", default=None
)
_SHARE_MIN_CHARS = 2048
_SYNTAX_ERROR = sys.maxsize  # the "depth" of a text that is no JSON: it is none at any depth


def _stack_depth() -> int:
    frame: FrameType | None = sys._getframe(1)
    depth = 0
    while frame is not None:
        frame, depth = frame.f_back, depth + 1
    return depth


def _decode_shared(stripped: str, shared: dict[str, tuple[Any, int]]) -> Any:
    # A text nested almost as deeply as the recursion limit decodes in a shallow caller and not
    # in a deeper one, so a value is reused only as deep as it was decoded, as if decoded anew.
    depth = _stack_depth()
    found = shared.get(stripped)
    if found is not None and depth <= found[1]:
        return found[0]
    try:
        value = json.loads(stripped)
    except ValueError:
        shared[stripped] = (None, _SYNTAX_ERROR)
        return None
    except RecursionError:
        return None
    shared[stripped] = (value, depth)
    return value


def load_json(text: str | None) -> Any:
    """The JSON value in ``text`` (surrounding whitespace and NUL characters ignored), or
    ``None`` when it is not JSON or nests too deeply."""
    if not text:
        return None
    first = text[0]
    if first not in "{[" and first != "\x00" and not first.isspace():
        return None  # what stripping would leave starts with this character: no JSON
    stripped = text.strip().strip("\x00").strip()
    if not stripped or stripped[0] not in "{[":
        return None
    if len(stripped) >= _SHARE_MIN_CHARS:
        shared = SHARED_JSON.get()
        if shared is not None:
            return _decode_shared(stripped, shared)
    try:
        return json.loads(stripped)
    except (ValueError, RecursionError):
        return None


def load_json_object(text: str | None) -> dict[str, Any] | None:
    """Like :func:`load_json` but only a JSON object (a dict) counts."""
    value = load_json(text)
    return value if isinstance(value, dict) else None


def as_text(value: Any) -> str | None:
    """A scalar as text (``None`` for missing, empty, containers and non-finite floats)."""
    if type(value) is str:  # the common case, and str() would return it unchanged
        return value.strip() or None
    if value is None or isinstance(value, _CONTAINERS):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return str(int(value)) if value.is_integer() else repr(value)
    text = str(value).strip()
    return text or None


def as_float(value: Any) -> float | None:
    """A number from an int, float or numeric string; ``None`` otherwise."""
    if value is None:  # the common case: an optional value that is absent
        return None
    if isinstance(value, bool):
        return None
    if isinstance(value, _NUMBERS):
        number = float(value) if abs(value) < 1e300 else None
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if number is not None and math.isfinite(number) else None


def seed_text(value: Any) -> str | None:
    """A seed as exact text: ints and integer strings as digits, anything else as found."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer() and math.isfinite(value):
        return str(int(value))
    return as_text(value)


def is_random_seed(seed: str | None) -> bool:
    """True for the placeholders (``-1``, ``random``) a request holds when the seed was left
    to the generator."""
    return seed is not None and seed.strip().lower() in _RANDOM_SEEDS


def merge_seed(record: Record, value: Any, *, source: str) -> None:
    """Store the seed a second source of the same image gives (a request next to a graph).

    A concrete seed always beats a random placeholder, whichever source was read first: a
    request that says ``-1`` next to a graph that ran with 123456 was made with 123456. Two
    different concrete seeds keep the one stored first and record a warning naming ``source``.
    """
    seed = seed_text(value)
    stored = record.params.get("seed")
    if seed is None or is_random_seed(seed):
        if stored is None:
            record.set_param("seed", seed)  # the placeholder is all there is
        return
    if stored is None or is_random_seed(stored):
        record.set_param("seed", seed)
    elif seed != stored:
        record.warnings.append(f"{source}: seed {seed} differs from the stored seed {stored}")


def pick(data: Mapping[str, Any], *keys: str) -> Any:
    """The first of ``keys`` present in ``data`` with a non-empty value."""
    for key in keys:
        value = data.get(key)
        if value is not None and value != "":
            return value
    return None


def text_value(data: Mapping[str, Any], *keys: str) -> str | None:
    """The first non-empty string value among ``keys`` (prompts: kept as they are)."""
    value = pick(data, *keys)
    return value if isinstance(value, str) else as_text(value)


def is_empty_name(name: str | None) -> bool:
    """True for the placeholder names formats write when no model was chosen."""
    return name is None or name.strip().lower() in _EMPTY_NAMES


def add_resource(
    record: Record,
    kind: str,
    name: Any,
    *,
    weight: Any = None,
    model_hash: Any = None,
    hash_kind: str | None = None,
    source: str,
    extra: Mapping[str, Any] | None = None,
) -> Resource | None:
    """Append a resource when ``name`` is a real name; returns it (or ``None`` when skipped)."""
    name_text = as_text(name)
    if name_text is None or is_empty_name(name_text):
        return None
    hash_text = as_text(model_hash)
    resource = Resource(
        kind=kind,
        name=name_text,
        weight=as_float(weight),
        hash=hash_text,
        hash_type=(hash_kind or hash_type(hash_text)) if hash_text else None,
        source=source,
        extra=dict(extra or {}),
    )
    record.resources.append(resource)
    return resource


def set_sampler(record: Record, sampler: Any, scheduler: Any = None) -> None:
    """Store ``sampler``/``scheduler`` as found and their normalised forms."""
    sampler_text = as_text(sampler)
    scheduler_text = as_text(scheduler)
    record.set_param("sampler", sampler_text)
    record.set_param("scheduler", scheduler_text)
    if sampler_text:
        sampler_norm, scheduler_norm = normalize_sampler(sampler_text)
        record.set_param("sampler_norm", sampler_norm)
        if scheduler_norm and not scheduler_text:
            record.set_param("scheduler_norm", scheduler_norm)
    if scheduler_text:
        record.set_param("scheduler_norm", normalize_scheduler(scheduler_text))


def set_size(record: Record, width: Any, height: Any) -> None:
    """Store width/height (positive integers only)."""
    width_number, height_number = as_float(width), as_float(height)
    if width_number and height_number and width_number > 0 and height_number > 0:
        record.set_param("width", int(width_number))
        record.set_param("height", int(height_number))


def keep_extra(record: Record, data: Mapping[str, Any], used: Iterable[str]) -> None:
    """Put every key of ``data`` not in ``used`` into ``record.extra`` (values as found)."""
    skip = set(used)
    for key, value in data.items():
        if key not in skip and value is not None and value != "":
            record.extra.setdefault(str(key), value)


def is_comfy_graph(value: Any) -> bool:
    """True for a ComfyUI API graph: a dict whose node values carry ``class_type``."""
    return isinstance(value, dict) and any(
        isinstance(node, dict) and "class_type" in node for node in value.values()
    )
