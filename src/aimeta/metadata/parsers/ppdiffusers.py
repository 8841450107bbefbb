"""PaddleNLP / PPDiffusers: a ``parameters`` text chunk with the prompt first, then one
``key: value`` per line.

Keys as written (lower-case, snake_case; the A1111 spelling ``Negative prompt`` is taken
too): ``negative_prompt``, ``steps``, ``sampler``, ``seed``, ``guidance_scale``,
``width``/``height`` or ``size`` (``512x768``), ``model``, ... A value may run on over the
following lines until the next key. What tells it apart from A1111 infotext, which also has
``Key: value`` pairs: every setting sits on its own line, and the numeric ones (steps, seed,
sizes, scale) hold a number and nothing else, where A1111's ``Steps: 20, Sampler: ...`` line
holds several pairs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from aimeta.metadata.parsers._values import add_resource, as_float, set_sampler, set_size
from aimeta.metadata.parsers.info import ParserInfo
from aimeta.metadata.record import Record

_LINE = re.compile(r"^\s*([A-Za-z][A-Za-z_ ]{0,40}?)\s*:\s?(.*)$")
# Known keys (lower-cased, spaces as underscores) -> the param they are stored under.
_PARAMS = {
    "steps": "steps",
    "num_inference_steps": "steps",
    "seed": "seed",
    "guidance_scale": "cfg",
    "cfg_scale": "cfg",
    "scale": "cfg",
    "strength": "denoise",
    "eta": "eta",
    "model": "model",
    "model_name": "model",
    "clip_skip": "clip_skip",
}
_TEXT_KEYS = frozenset({"negative_prompt", "sampler", "scheduler", "size", "width", "height"})
_NUMERIC = frozenset(
    {
        "steps",
        "num_inference_steps",
        "seed",
        "guidance_scale",
        "cfg_scale",
        "scale",
        "width",
        "height",
        "strength",
        "eta",
        "clip_skip",
    }
)
_SIZE = re.compile(r"^\s*(\d+)\s*[x×*]\s*(\d+)\s*$", re.IGNORECASE)


def _key(line: str) -> tuple[str, str] | None:
    """(normalised key, value) when ``line`` is one known ``key: value`` setting."""
    match = _LINE.match(line)
    if match is None:
        return None
    key = match[1].strip().lower().replace(" ", "_")
    if key not in _PARAMS and key not in _TEXT_KEYS:
        return None
    value = match[2].strip()
    if key in _NUMERIC and as_float(value) is None:
        return None  # "Steps: 20, Sampler: Euler" is A1111's parameter line
    return key, value


def _split(text: str) -> tuple[str, dict[str, str]] | None:
    """(prompt, {key: value}) of the text, or ``None`` when it is not in this format."""
    lines = text.strip().split("\n")
    prompt: list[str] = []
    settings: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in lines:
        found = _key(line.rstrip("\r"))
        if found is not None:
            current = settings.setdefault(found[0], [])
            current.clear()  # a repeated key: the later line wins
            current.append(found[1])
        elif current is None:
            prompt.append(line)
        else:
            current.append(line.rstrip("\r"))  # a value running on over lines
    numeric = [key for key in settings if key in _NUMERIC]
    if not numeric or len(settings) < 2:
        return None
    return "\n".join(prompt).strip(), {k: "\n".join(v).strip() for k, v in settings.items()}


def _apply(settings: Mapping[str, str], record: Record) -> None:
    for key, value in settings.items():
        if key in _PARAMS and _PARAMS[key] not in record.params:
            record.set_param(_PARAMS[key], value)
    set_sampler(record, settings.get("sampler"), settings.get("scheduler"))
    size = _SIZE.match(settings.get("size", ""))
    set_size(record, *(size.groups() if size else (settings.get("width"), settings.get("height"))))
    model = record.params.get("model")
    add_resource(record, "checkpoint", model, source="model")


def parse(fields: Mapping[str, str]) -> Record | None:
    """PPDiffusers ``parameters`` text -> record; ``None`` for anything else."""
    text = fields.get("parameters")
    if not text or text.lstrip()[:1] in ("{", "["):
        return None
    split = _split(text)
    if split is None:
        return None
    prompt, settings = split
    record = Record(generator="ppdiffusers", raw={"parameters": text})
    record.prompt = prompt or None
    record.negative_prompt = settings.get("negative_prompt") or None
    _apply(settings, record)
    return record


PARSER = ParserInfo(
    name="ppdiffusers",
    label="PaddleNLP PPDiffusers",
    containers="PNG text `parameters`: the prompt, then one `key: value` setting per line",
    parse=parse,
    source_fields=frozenset({"parameters"}),
)
