"""NovelAI: the PNG text chunks Title/Description/Software/Source/Comment.

``Comment`` is JSON (``uc`` negative prompt, ``scale`` CFG, ``sampler``, ``noise_schedule``,
``seed``, ``steps``, ...; v4/v4.5 add ``v4_prompt``/``v4_negative_prompt`` with per-character
captions and their positions). ``Source`` names the model and an 8-hex-digit hash
(``Stable Diffusion 1D44365E``, ``NovelAI Diffusion V4.5 4BDE2A90``). The same chunks arrive
as one JSON object in the EXIF UserComment of WebP/JPEG downloads (where ``Description`` may
start with NUL characters) and in the alpha-channel "stealth" data of PNGs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from aimeta.metadata.parsers._values import (
    add_resource,
    as_text,
    keep_extra,
    load_json_object,
    seed_text,
    set_sampler,
    set_size,
    text_value,
)
from aimeta.metadata.parsers.info import ParserInfo
from aimeta.metadata.record import Record

_CHUNK_KEYS = ("title", "description", "software", "source", "comment", "generationtime")
# Fields holding all the chunks as one JSON object.
_JSON_ORIGINS = ("usercomment", "stealth_png_info", "xmp:usercomment")
# Comment keys only NovelAI writes; enough to recognise a Comment whose Software was lost.
_NOVELAI_ONLY = frozenset({"noise_schedule", "v4_prompt", "signed_hash", "request_type"})
_SOURCE = re.compile(r"^(?P<name>.*?)\s+(?P<hash>[0-9A-Fa-f]{8})$")
_COMMENT_USED = {
    "prompt",
    "uc",
    "steps",
    "seed",
    "scale",
    "sampler",
    "noise_schedule",
    "width",
    "height",
}


def _clean(text: str | None) -> str | None:
    """Drop the NUL padding NovelAI's WebP/JPEG writer puts in front of some values."""
    if text is None:
        return None
    cleaned = text.replace("\x00", "")
    return cleaned if cleaned.strip() else None


def _chunk_sets(fields: Mapping[str, str]) -> list[tuple[str, dict[str, Any]]]:
    """Candidate (origin, {chunk name lower-cased: value}) sets, PNG chunks first."""
    sets: list[tuple[str, dict[str, Any]]] = [
        ("png", {key: fields[key] for key in _CHUNK_KEYS if fields.get(key)})
    ]
    for origin in _JSON_ORIGINS:
        data = load_json_object(fields.get(origin))
        if data is not None:
            sets.append((origin, {str(key).lower(): value for key, value in data.items()}))
    return sets


def _comment(chunks: Mapping[str, Any]) -> dict[str, Any] | None:
    comment = chunks.get("comment")
    if isinstance(comment, dict):
        return comment
    return load_json_object(comment) if isinstance(comment, str) else None


def _is_novelai(chunks: Mapping[str, Any], comment: Mapping[str, Any] | None) -> bool:
    software = chunks.get("software")
    if isinstance(software, str) and "novelai" in software.lower():
        return True
    return comment is not None and bool(_NOVELAI_ONLY & comment.keys())


def _captions(prompt: Any) -> tuple[str | None, list[dict[str, Any]]]:
    """(base caption, [{caption, centers}]) of a v4 prompt object."""
    if not isinstance(prompt, dict) or not isinstance(prompt.get("caption"), dict):
        return None, []
    caption = prompt["caption"]
    base = caption.get("base_caption") if isinstance(caption.get("base_caption"), str) else None
    characters = []
    for item in caption.get("char_captions") or []:
        if isinstance(item, dict) and isinstance(item.get("char_caption"), str):
            centers = item.get("centers") if isinstance(item.get("centers"), list) else []
            characters.append({"caption": item["char_caption"], "centers": centers})
    return base, characters


def _with_characters(text: str | None, characters: list[dict[str, Any]]) -> str | None:
    """The base prompt followed by one line per character caption.

    NovelAI v4 conditions the image on every character caption as well as the base prompt, so
    they are part of what the image was made from: on lines of their own (a token boundary)
    they become tokens, full-text matches and wildcard lines like the base prompt. Their
    structure (caption and position) stays in ``extra``.
    """
    captions = [c["caption"].strip() for c in characters if c["caption"].strip()]
    if not captions:
        return text
    return "\n".join([text, *captions] if text else captions)


def _from_comment(comment: dict[str, Any], record: Record) -> None:
    base_prompt, characters = _captions(comment.get("v4_prompt"))
    base_negative, negative_characters = _captions(comment.get("v4_negative_prompt"))
    prompt = _clean(text_value(comment, "prompt")) or base_prompt or record.prompt
    negative = _clean(text_value(comment, "uc")) or base_negative
    record.prompt = _with_characters(prompt, characters)
    record.negative_prompt = _with_characters(negative, negative_characters)
    if characters:
        record.extra["characters"] = characters
    if negative_characters:
        record.extra["characters_negative"] = negative_characters
    record.set_param("steps", as_text(comment.get("steps")))
    record.set_param("seed", seed_text(comment.get("seed")))
    record.set_param("cfg", as_text(comment.get("scale")))
    set_size(record, comment.get("width"), comment.get("height"))
    set_sampler(record, comment.get("sampler"), comment.get("noise_schedule"))
    request = as_text(comment.get("request_type")) or ""
    if "img2img" in request.lower():
        record.set_param("denoise", as_text(comment.get("strength")))
    keep_extra(record, comment, _COMMENT_USED)


def _from_source(source: str, record: Record) -> None:
    match = _SOURCE.match(source.strip())
    name, model_hash = (match["name"], match["hash"]) if match else (source.strip(), None)
    record.set_param("model", name)
    record.set_param("model_hash", model_hash)
    add_resource(
        record,
        "checkpoint",
        name,
        model_hash=model_hash,
        hash_kind="novelai",
        source="novelai:source",
    )


def _best_set(
    fields: Mapping[str, str],
) -> tuple[str, dict[str, Any], dict[str, Any] | None] | None:
    """The NovelAI chunk set to read: the first whose Comment is JSON, else the first one
    that is NovelAI's at all.

    A WebP/JPEG download carries ``Software: NovelAI`` in EXIF IFD0 as well as the chunks in
    the UserComment JSON; the IFD0 tag alone makes a "png" set with no Comment, and reading
    that one would lose every parameter.
    """
    found: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = []
    for origin, chunks in _chunk_sets(fields):
        comment = _comment(chunks)
        if not _is_novelai(chunks, comment):
            continue
        if comment is not None:
            return origin, chunks, comment
        found.append((origin, chunks, comment))
    return found[0] if found else None


def parse(fields: Mapping[str, str]) -> Record | None:
    """NovelAI chunks (PNG, UserComment JSON or stealth data) -> record; ``None`` otherwise."""
    best = _best_set(fields)
    if best is None:
        return None
    origin, chunks, comment = best
    raw_keys = _CHUNK_KEYS if origin == "png" else (origin,)
    record = Record(
        generator="novelai",
        raw={key: fields[key] for key in raw_keys if fields.get(key)},
    )
    description = chunks.get("description")
    if not isinstance(description, str):
        description = fields.get("imagedescription")  # a JPEG/WebP keeps it in EXIF too
    record.prompt = _clean(description)
    if comment is not None:
        _from_comment(comment, record)
    elif chunks.get("comment"):
        record.warnings.append("novelai: Comment is not a JSON object")
    source = chunks.get("source")
    if isinstance(source, str) and source.strip():
        _from_source(source, record)
    for key in ("title", "software", "generationtime", "generation time"):
        value = as_text(chunks.get(key))
        if value:
            record.extra[key.replace(" ", "")] = value  # as the PNG chunk's field name
    record.extra["prompt_syntax"] = "novelai"
    return record


PARSER = ParserInfo(
    name="novelai",
    label="NovelAI",
    containers=(
        "PNG text Title/Description/Software/Source/Comment (v3, v4, v4.5 character prompts); "
        "WebP/JPEG EXIF UserComment JSON; alpha-channel stealth data"
    ),
    parse=parse,
    source_fields=frozenset(_CHUNK_KEYS + _JSON_ORIGINS),
)
