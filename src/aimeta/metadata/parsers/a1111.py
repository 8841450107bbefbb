"""AUTOMATIC1111-family infotext (A1111, Forge, reForge, SD.Next).

The infotext grammar, as A1111 writes and reads it:

* the parameter line is the last line with at least three ``Key: value`` pairs; values that
  contain a comma, colon or newline are JSON-quoted (``"..."``), and a few keys carry bare
  JSON (``Hashes: {...}``, ``Civitai resources: [...]``);
* the lines before it are the prompt, up to the first line that *starts* with
  ``Negative prompt:``; from there on they are the negative prompt (both may span lines);
* sd-dynamic-prompts' ``Template:`` / ``Negative Template:`` appear either as parameter keys or
  as lines after the parameter line; either way they become the ``template`` /
  ``negative_template`` params and never part of the prompt.

Every key lands in ``params``: the common ones under their normalised names (steps, cfg,
seed, ...), every other under its snake-case name (``ADetailer model`` -> ``adetailer_model``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from aimeta.metadata.parsers._values import (
    add_resource,
    as_float,
    is_empty_name,
    load_json,
    set_sampler,
)
from aimeta.metadata.parsers.info import ParserInfo
from aimeta.metadata.record import Record
from aimeta.metadata.resources import hash_type
from aimeta.metadata.tokens import prompt_resources

# Where the infotext lives: PNG text chunk, JPEG/WebP EXIF, or the stealth alpha-channel data.
_SOURCE_FIELDS = ("parameters", "usercomment", "stealth_png_info")
# The Extras tab's text chunk (``postprocessing``; ``extras`` in older versions).
_POSTPROCESSING_FIELDS = ("postprocessing", "extras")
_POSTPROCESS_UPSCALER = re.compile(r"postprocess upscaler(?: \d+)?")

_KEY = re.compile(r"\s*(\w[\w \-/]+):\s*")
# The common pair in one match: _KEY and a plain value up to the next comma. The lookahead
# refuses a value starting with a quote or bracket (and, as \s* backtracks, with a space), so
# those pairs take the general path in parse_pairs.
_PLAIN_PAIR = re.compile(r"\s*(\w[\w \-/]+):\s*(?![\s\"{\[])([^,]*)")
# The pairs of a line without quotes or brackets: _KEY right at the start of the line or of a
# comma-separated piece, the value up to the next comma.
_PLAIN_LINE = re.compile(r"(?:^|,)\s*(\w[\w \-/]+):\s*([^,]*)")
_NEGATIVE_LABEL = "Negative prompt:"
_TEMPLATE_LABELS = (("Negative Template:", "negative_template"), ("Template:", "template"))
# At least one of these must be on the parameter line, so any text with three colons is not
# taken for infotext.
_CORE_KEYS = frozenset({"steps", "sampler", "seed", "cfg scale", "size", "model", "model hash"})

_NORMALISED = {
    "steps": "steps",
    "cfg scale": "cfg",
    "seed": "seed",
    "model": "model",
    "model hash": "model_hash",
    "vae": "vae",
    "vae hash": "vae_hash",
    "clip skip": "clip_skip",
    "denoising strength": "denoise",
    "hires upscaler": "hires_upscaler",
    "hires upscale": "hires_upscale",
    "hires steps": "hires_steps",
    "hires resize-1": "hires_width",
    "hires resize-2": "hires_height",
    "hires sampler": "hires_sampler",
    "hires schedule type": "hires_scheduler",
    "version": "version",
    "template": "template",
    "negative template": "negative_template",
}
# Upscaler names that are interpolation methods, not model files.
_BUILTIN_UPSCALERS = ("latent", "none", "lanczos", "nearest")
_BRACKET_HASH = re.compile(r"^(.*?)\s*\[([0-9a-fA-F]{6,})\]\s*$")
_PAREN_HASH = re.compile(r"^(.*?)\s*\(([0-9a-fA-F]{6,})\)\s*$")
_NON_WORD = re.compile(r"[^0-9a-z]+")
_ADETAILER_MODEL = re.compile(r"adetailer model(?: \d+\w*)?")
_CONTROLNET_UNIT = re.compile(r"controlnet(?: \d+)?")
_ADDNET_MODEL = re.compile(r"addnet model (\d+)")
# Every key the three patterns above can match starts with one of these.
_UNIT_PREFIXES = ("adetailer model", "controlnet", "addnet model ")
_FORGE_VERSION = re.compile(r"f\d")
_A1111_VERSION = re.compile(r"v\d")


# Infotext keys repeat from file to file (Steps, ADetailer model, ...); the cache is bounded
# because the keys come from untrusted text.
@lru_cache(maxsize=4096)
def _snake_key(key: str) -> str:
    return _NON_WORD.sub("_", key.lower()).strip("_")


def _scan_string(line: str, start: int) -> int:
    """Index just past the JSON string starting at ``start`` (a quote), or -1 if unclosed."""
    i = start + 1
    while i < len(line):
        if line[i] == "\\":
            i += 2
        elif line[i] == '"':
            return i + 1
        else:
            i += 1
    return -1


def _scan_json(line: str, start: int) -> int:
    """Index just past the balanced JSON object/array starting at ``start``, or -1."""
    depth, i = 0, start
    while i < len(line):
        char = line[i]
        if char == '"':
            i = _scan_string(line, i)
            if i < 0:
                return -1
            continue
        if char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return -1


def _value_at(line: str, start: int) -> tuple[str, int]:
    """The value starting at ``start`` and the index after it (before the comma)."""
    char = line[start : start + 1]
    stop = -1
    if char == '"':
        stop = _scan_string(line, start)
        if stop > 0:
            raw = line[start:stop]
            try:
                value = json.loads(raw)
            except ValueError:
                value = raw[1:-1]
            return (value if isinstance(value, str) else raw), stop
    elif char in ("{", "["):
        stop = _scan_json(line, start)
        if stop > 0 and line[stop:].lstrip()[:1] in ("", ","):
            return line[start:stop], stop
    comma = line.find(",", start)
    stop = len(line) if comma < 0 else comma
    return line[start:stop].strip(), stop


def parse_pairs(line: str) -> list[tuple[str, str]]:
    """``Key: value`` pairs of one infotext line, values unquoted; junk between pairs skipped."""
    if '"' not in line and "{" not in line and "[" not in line:
        # Without quotes or brackets every value runs to the next comma, so the scan below
        # comes down to _KEY at the start of each comma-separated piece: one findall.
        return [(key.strip(), value.strip()) for key, value in _PLAIN_LINE.findall(line)]
    pairs: list[tuple[str, str]] = []
    pos = 0
    while pos < len(line):
        plain = _PLAIN_PAIR.match(line, pos)
        if plain is not None:
            # Same result as the general path below for an unquoted value, in one match.
            pairs.append((plain.group(1).strip(), plain.group(2).strip()))
            pos = plain.end() + 1  # past the comma (or the end of the line)
            continue
        match = _KEY.match(line, pos)
        if match is None:
            comma = line.find(",", pos)
            if comma < 0:
                break
            pos = comma + 1
            continue
        value, pos = _value_at(line, match.end())
        pairs.append((match.group(1).strip(), value))
        comma = line.find(",", pos)
        pos = len(line) if comma < 0 else comma + 1
    return pairs


def _is_parameter_line(pairs: list[tuple[str, str]]) -> bool:
    return len(pairs) >= 3 and any(key.lower() in _CORE_KEYS for key, _ in pairs)


def _split_infotext(
    text: str,
) -> tuple[list[str], list[tuple[str, str]] | None, list[str]]:
    """(lines before the parameter line, its pairs or None, lines after it)."""
    lines = [line.rstrip("\r") for line in text.strip().split("\n")]
    for index in range(len(lines) - 1, -1, -1):
        pairs = parse_pairs(lines[index])
        if _is_parameter_line(pairs):
            return lines[:index], pairs, lines[index + 1 :]
    return lines, None, []


def _after_labels(text: str) -> str:
    """``text`` without its leading ``Negative prompt:`` labels: some tools write the label
    twice (``Negative prompt: Negative prompt: ...``), and the second is no prompt text."""
    while text.startswith(_NEGATIVE_LABEL):
        text = text[len(_NEGATIVE_LABEL) :].lstrip()
    return text


def _prompts(lines: list[str]) -> tuple[str, str | None]:
    prompt: list[str] = []
    negative: list[str] | None = None
    for line in lines:
        stripped = line.lstrip()
        if negative is None and stripped.startswith(_NEGATIVE_LABEL):
            negative = [_after_labels(stripped)]
        elif negative is None:
            prompt.append(line)
        else:
            negative.append(line)
    return "\n".join(prompt).strip(), (None if negative is None else "\n".join(negative).strip())


def _trailing_fields(lines: list[str], record: Record) -> dict[str, str]:
    """``Template:`` / ``Negative Template:`` lines after the parameter line (a label's text
    runs until the next label)."""
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    leftover: list[str] = []
    for line in lines:
        stripped = line.lstrip()
        for label, key in _TEMPLATE_LABELS:
            if stripped.startswith(label):
                current = found.setdefault(key, [])
                current.append(stripped[len(label) :])
                break
        else:
            if current is not None:
                current.append(line)
            elif line.strip():
                leftover.append(line)
    if leftover:
        record.extra["trailing_text"] = "\n".join(leftover)
        record.warnings.append("text after the parameter line was not recognised")
    return {key: "\n".join(parts).strip() for key, parts in found.items()}


def _name_and_hash(value: str, pattern: re.Pattern[str]) -> tuple[str, str | None]:
    match = pattern.match(value)
    if match:
        return match.group(1).strip(), match.group(2)
    return value.strip(), None


def _name_hash_list(value: str) -> list[tuple[str, str]]:
    """``name: hash, name2: hash2`` (Lora hashes, TI hashes) as pairs."""
    found: list[tuple[str, str]] = []
    for part in value.split(","):
        name, colon, hash_value = part.rpartition(":")
        if colon and name.strip() and hash_value.strip():
            found.append((name.strip(), hash_value.strip()))
    return found


_HASH_KINDS = {
    "lora": "lora",
    "lyco": "lora",
    "locon": "lora",
    "embed": "embedding",
    "ti": "embedding",
    "hypernet": "hypernetwork",
}


def _add_hashes(record: Record, hashes: Mapping[str, Any], params: Mapping[str, str]) -> None:
    for key, value in hashes.items():
        if not isinstance(value, str) or not value.strip():
            continue
        prefix, colon, name = str(key).partition(":")
        if not colon:
            kind = {"model": "checkpoint", "vae": "vae"}.get(prefix.lower())
            if kind is None:
                continue
            label = params.get("model" if kind == "checkpoint" else "vae") or value
            add_resource(record, kind, label, model_hash=value, source="Hashes")
        elif prefix.lower() in _HASH_KINDS and name.strip():
            add_resource(
                record, _HASH_KINDS[prefix.lower()], name, model_hash=value, source="Hashes"
            )


def _add_controlnet(record: Record, key: str, value: str) -> None:
    inner = dict((k.lower(), v) for k, v in parse_pairs(value))
    model = inner.get("model")
    if not model or is_empty_name(model):
        return
    name, model_hash = _name_and_hash(model, _BRACKET_HASH)
    extra = {k: v for k, v in inner.items() if k != "model"}
    extra["unit"] = key
    add_resource(
        record,
        "controlnet",
        name,
        weight=inner.get("weight"),
        model_hash=model_hash,
        source=key,
        extra=extra,
    )


def _add_addnet(record: Record, models: list[tuple[str, str]], lowered: Mapping[str, str]) -> None:
    """sd-webui-additional-networks: ``AddNet Model 1: name(hash)`` with its weights
    (``models``: the lower-cased ``addnet model ...`` keys and their values, in order)."""
    for key, value in models:
        match = _ADDNET_MODEL.fullmatch(key)
        if not match or is_empty_name(value):
            continue
        number = match.group(1)
        module = lowered.get(f"addnet module {number}", "LoRA")
        if module.lower() not in ("lora", "lycoris", "lyco"):
            continue
        name, model_hash = _name_and_hash(value, _PAREN_HASH)
        unet = as_float(
            lowered.get(f"addnet weight a {number}", lowered.get(f"addnet weight {number}"))
        )
        text_encoder = as_float(lowered.get(f"addnet weight b {number}"))
        resource = add_resource(
            record,
            "lora",
            name,
            weight=unet,
            model_hash=model_hash,
            source=f"AddNet Model {number}",
        )
        if resource is not None and text_encoder is not None:
            resource.weight_clip = text_encoder


def _ui_flavour(version: str, app: str | None) -> str | None:
    """Which A1111-family UI wrote the file, when its Version (or App) says so."""
    if app and "sd.next" in app.lower():
        return "sdnext"
    text = version.strip().lower()
    if _FORGE_VERSION.match(text):
        return "forge"
    if "neo" in text:
        return "forge-neo"
    if "classic" in text:
        return "forge-classic"
    if _A1111_VERSION.match(text):
        return "a1111"
    return None


# _param_name's answer for Size, which becomes width and height.
_SIZE = "\0size"


# Cached like _snake_key: the same keys come back in every file.
@lru_cache(maxsize=4096)
def _param_name(key: str) -> str:
    """The param an infotext key is stored under: "" for none (the sampler keys are stored by
    set_sampler), _SIZE for Size, else its normalised or snake-case name."""
    low = key.lower()
    if low in ("sampler", "schedule type"):
        return ""
    if low == "size":
        return _SIZE
    return _NORMALISED.get(low) or _snake_key(key)


def _apply_params(record: Record, values: Mapping[str, str], lowered: Mapping[str, str]) -> None:
    params = record.params
    for key, value in values.items():
        name = _param_name(key)
        if name == _SIZE:
            width, _, height = value.lower().partition("x")
            if width.strip().isdigit() and height.strip().isdigit():
                record.set_param("width", width.strip())
                record.set_param("height", height.strip())
            continue
        if name in ("hires_width", "hires_height") and value.strip() in ("0", ""):
            continue
        if name and name not in params:
            # record.set_param for a str value (they all are), without its type checks.
            text = value.strip()
            if text:
                params[name] = text
    set_sampler(record, lowered.get("sampler"), lowered.get("schedule type"))
    if "denoising strength" in lowered and any(key.startswith("hires ") for key in lowered):
        # In a txt2img hires-fix run A1111's "Denoising strength" is the second pass's.
        record.set_param("hires_denoise", lowered["denoising strength"])
    ui = _ui_flavour(lowered.get("version", ""), lowered.get("app"))
    record.set_param("ui", ui)


def _apply_structures(record: Record, lowered: Mapping[str, str]) -> None:
    if "lora hashes" in lowered:
        for name, hash_value in _name_hash_list(lowered["lora hashes"]):
            add_resource(record, "lora", name, model_hash=hash_value, source="Lora hashes")
    if "ti hashes" in lowered:
        for name, hash_value in _name_hash_list(lowered["ti hashes"]):
            add_resource(record, "embedding", name, model_hash=hash_value, source="TI hashes")
    if "hashes" in lowered:
        hashes = load_json(lowered["hashes"])
        if isinstance(hashes, dict):
            _add_hashes(record, hashes, record.params)
        else:
            record.warnings.append("Hashes is not a JSON object")
    for key, extra_key, kind in (
        ("civitai resources", "civitai_resources", list),
        ("civitai metadata", "civitai_metadata", dict),
    ):
        if key in lowered:
            parsed = load_json(lowered[key])
            if isinstance(parsed, kind):
                record.extra[extra_key] = parsed
            else:
                record.warnings.append(f"{key.capitalize()} is not valid JSON")


def _apply_resources(record: Record, pairs: Mapping[str, str], lowered: Mapping[str, str]) -> None:
    model, model_hash = lowered.get("model"), lowered.get("model hash")
    if model or model_hash:
        add_resource(
            record, "checkpoint", model or model_hash, model_hash=model_hash, source="Model"
        )
    vae, vae_hash = lowered.get("vae"), lowered.get("vae hash")
    if vae or vae_hash:
        add_resource(record, "vae", vae or vae_hash, model_hash=vae_hash, source="VAE")
    if "refiner" in lowered:
        name, refiner_hash = _name_and_hash(lowered["refiner"], _BRACKET_HASH)
        add_resource(record, "refiner", name, model_hash=refiner_hash, source="Refiner")
    if "hypernet" in lowered:
        add_resource(
            record,
            "hypernetwork",
            lowered["hypernet"],
            weight=lowered.get("hypernet strength"),
            model_hash=lowered.get("hypernet hash"),
            source="Hypernet",
        )
    upscaler = lowered.get("hires upscaler", "")
    if upscaler and not upscaler.strip().lower().startswith(_BUILTIN_UPSCALERS):
        add_resource(record, "upscaler", upscaler, source="Hires upscaler")
    addnet: list[tuple[str, str]] = []
    for key, value in pairs.items():
        low = key.lower()
        if not low.startswith(_UNIT_PREFIXES):
            continue  # most keys; a prefix test is cheaper than the patterns
        if _ADETAILER_MODEL.fullmatch(low):
            add_resource(record, "detailer", value, source=key)
        elif _CONTROLNET_UNIT.fullmatch(low):
            _add_controlnet(record, key, value)
        elif low.startswith("addnet model "):
            addnet.append((low, value))
    _add_addnet(record, addnet, lowered)


def _add_prompt_resources(record: Record) -> None:
    for resource in prompt_resources(record.prompt or ""):
        record.resources.append(resource)
    for resource in prompt_resources(record.negative_prompt or ""):
        resource.extra["in_negative"] = True
        record.resources.append(resource)


def parse_infotext(text: str) -> Record | None:
    """A record from A1111 infotext, or ``None`` when ``text`` is not infotext (JSON, plain
    text without a parameter line or ``Negative prompt:`` label, ...)."""
    body = text.strip().strip("\x00").strip()
    # JSON belongs to other formats (Fooocus, SwarmUI, ...); a prompt may still start with a
    # bracket ("[red|blue] car", "{masterpiece}"), so only text that *is* JSON is refused.
    if not body or (body[0] in "{[" and load_json(body) is not None):
        return None
    before, pairs, after = _split_infotext(body)
    prompt, negative = _prompts(before)
    if pairs is None and negative is None:
        return None
    record = Record(generator="a1111", prompt=prompt or None, negative_prompt=negative or None)
    if pairs is None:
        record.warnings.append("no parameter line")
        _add_prompt_resources(record)
        return record
    trailing = _trailing_fields(after, record) if after else {}
    values = dict(pairs)
    # Keys are matched without case; a later spelling of a key wins, as in ``values``.
    lowered = {key.lower(): value for key, value in values.items()}
    _apply_params(record, values, lowered)
    for key, value in trailing.items():
        if value:
            record.params.setdefault(key, value)
    _apply_structures(record, lowered)
    _add_prompt_resources(record)
    _apply_resources(record, values, lowered)
    for resource in record.resources:
        if resource.hash and not resource.hash_type:
            resource.hash_type = hash_type(resource.hash)
    return record


def _apply_postprocessing(record: Record, text: str) -> None:
    """The Extras tab's pairs (``Postprocess upscale by: 2, Postprocess upscaler: R-ESRGAN
    4x+, Postprocess upscaler 2: ..., GFPGAN visibility: 1``) as snake-case params, and each
    upscaler model as an ``upscaler`` resource."""
    pairs = parse_pairs(" ".join(text.split("\n")))
    lowered = {key.lower(): value for key, value in pairs}
    for key, value in pairs:
        record.set_param(_snake_key(key), value)
        if _POSTPROCESS_UPSCALER.fullmatch(key.lower()) and not value.lower().startswith(
            _BUILTIN_UPSCALERS
        ):
            # The second upscaler is blended in at its visibility: that is its weight.
            weight = lowered.get(f"{key.lower()} visibility")
            add_resource(record, "upscaler", value, weight=weight, source=key)


def parse(fields: Mapping[str, str]) -> Record | None:
    """A1111-family text fields -> record (``parameters``, else ``usercomment``, else
    ``stealth_png_info``, plus the Extras tab's ``postprocessing``/``extras`` text);
    ``None`` when none of them holds infotext or postprocessing pairs."""
    record = None
    for field in _SOURCE_FIELDS:
        text = fields.get(field)
        if not text:
            continue
        record = parse_infotext(text)
        if record is not None:
            record.raw[field] = text
            break
    for field in _POSTPROCESSING_FIELDS:
        text = fields.get(field)
        if text and parse_pairs(text):
            if record is None:  # an image upscaled in the Extras tab, made elsewhere
                record = Record(generator="a1111")
            record.raw[field] = text
            _apply_postprocessing(record, text)
    return record


PARSER = ParserInfo(
    name="a1111",
    label="AUTOMATIC1111 / Forge / reForge / SD.Next",
    containers=(
        "PNG tEXt/iTXt/zTXt `parameters` (+ Extras tab `postprocessing`/`extras`); "
        "JPEG/WebP EXIF UserComment"
    ),
    parse=parse,
    source_fields=frozenset(_SOURCE_FIELDS + _POSTPROCESSING_FIELDS),
)
