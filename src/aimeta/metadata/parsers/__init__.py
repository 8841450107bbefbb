"""Generator-format parsers and the registry that tries them in order.

Each format is one module exposing ``PARSER``: a :class:`ParserInfo` whose ``parse`` takes
the canonical text fields of one file (see :mod:`aimeta.metadata.readers.fields`) and returns
a :class:`~aimeta.metadata.record.Record`, or ``None`` when the fields are not in its format.
Parsers are pure: no I/O, no globals, and they never raise on bad input (they return ``None``
or a record with warnings). Adding a format is adding one module to ``_MODULES``; its
``source_fields`` name every field whose presence can make it return a record.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from types import ModuleType

from aimeta.metadata.civitai import refs as civitai
from aimeta.metadata.parsers import (
    a1111,
    c2pa,
    civitai_comfy,
    comfyui,
    comfyui_exif,
    diffusers,
    drawthings,
    easydiffusion,
    fooocus,
    invokeai,
    novelai,
    ppdiffusers,
    stabilitymatrix,
    swarmui,
    tensorart,
    unknown,
)
from aimeta.metadata.parsers._values import SHARED_JSON
from aimeta.metadata.parsers.info import ParserInfo
from aimeta.metadata.record import Record

# Tried first to last; the first parser that returns a record wins. More specific formats come
# before the general ones they resemble:
# - SwarmUI before ComfyUI: Swarm's own parameters win over the graph it also embeds;
# - Stability Matrix before ComfyUI and A1111: its `parameters-json` marks the graph and the
#   A1111-style text next to it as one request;
# - Civitai and TensorArt before ComfyUI: their graphs come with the user's request;
# - Easy Diffusion before ComfyUI: its plain-text `prompt` chunk is no graph;
# - SwarmUI, NovelAI and Fooocus before A1111: JSON (or Fooocus text) in `parameters` and
#   NovelAI's JSON in the stealth alpha data are theirs;
# - Easy Diffusion, Fooocus and SwarmUI before diffusers: their JSON shares diffusers'
#   argument names (guidance_scale, num_inference_steps), and they have markers of their own;
# - ComfyUI before A1111: comfy-image-saver writes A1111-style text next to the real graph,
#   and the graph wins when they disagree;
# - PPDiffusers before A1111: A1111 would read its first settings line as a negative prompt
#   label and swallow the rest; its stricter rule (one numeric setting per line) never takes
#   A1111's multi-pair parameter line;
# - C2PA after every generator: Content Credentials name the signing software but carry no
#   prompt, so a generator's own metadata in the same file is the richer record;
# - unknown last: it takes any generation-like text nobody else recognised.
_MODULES: tuple[ModuleType, ...] = (
    swarmui,
    stabilitymatrix,
    civitai_comfy,
    tensorart,
    easydiffusion,
    invokeai,
    novelai,
    fooocus,
    drawthings,
    diffusers,
    comfyui_exif,
    comfyui,
    ppdiffusers,
    a1111,
    c2pa,
    unknown,
)
ORDER: tuple[str, ...] = tuple(module.__name__.rpartition(".")[2] for module in _MODULES)
_REGISTRY: tuple[ParserInfo, ...] = tuple(module.PARSER for module in _MODULES)

# Bumped whenever a parser changes what it extracts, so stored images can be re-parsed. Each
# image row records the version that parsed it (images.parser_version); nothing re-parses on
# its own (unchanged files are not read again): `aimeta ingest --reparse` runs the parsers
# over every image's stored raw fields, and `parser_version < PARSER_VERSION` finds the rows
# an older aimeta parsed.
# 2: NovelAI WebP/JPEG UserComment and v4 character prompts, diffusers and ppdiffusers formats,
#    A1111 Extras text, Draw Things v2 LoRAs, concrete seeds over -1, bounded prompt tokens.
PARSER_VERSION = 2


def registry() -> tuple[ParserInfo, ...]:
    """The parsers in the order they are tried."""
    return _REGISTRY


def supported_formats_markdown() -> str:
    """The README's table of supported generators and containers, built from the registry
    (``python -m aimeta.metadata.parsers`` prints it)."""
    lines = [
        "| Generator | Stored as | Where aimeta reads it |",
        "|---|---|---|",
    ]
    for parser in registry():
        containers = parser.containers.replace("|", "\\|")
        lines.append(f"| {parser.label} | `{parser.name}` | {containers} |")
    return "\n".join(lines) + "\n"


# Files of one kind carry the same field names, so the answer is cached by them (bounded:
# the names come from the files).
@lru_cache(maxsize=1024)
def _candidates(names: tuple[str, ...]) -> tuple[ParserInfo, ...]:
    """The parsers to ask, in order, for fields with these names: those whose source_fields
    include one of them (the others would say no)."""
    return tuple(
        parser
        for parser in registry()
        if parser.source_fields is None or not parser.source_fields.isdisjoint(names)
    )


def parse_fields(fields: Mapping[str, str]) -> Record:
    """The record for one file's text fields: the first parser that recognises them, else a
    record with generator ``none`` (nothing generation-like was found)."""
    token = SHARED_JSON.set({})  # JSON decoded by one format is handed to the next
    try:
        for parser in _candidates(tuple(fields)):
            try:
                record = parser.parse(fields)
            except RecursionError:
                warning = f"{parser.name}: input nested too deeply"
                return Record(generator="unknown", warnings=[warning])
            if record is not None:
                # Civitai references (resource lists, AIRs) look the same in every format; the
                # parsers leave them in record.extra (or as AIR names) and they become
                # resources here, in one place.
                record.resources = civitai.with_civitai_references(record.resources, record.extra)
                if record.generator != "c2pa" and c2pa.FIELD in fields:
                    _add_credentials(record, fields)
                return record
        return Record(generator="none")
    finally:
        SHARED_JSON.reset(token)


def _add_credentials(record: Record, fields: Mapping[str, str]) -> None:
    """Content Credentials next to a generator's own metadata (an image signed on export):
    their keys join the generator's record, which keeps its own values."""
    credentials = c2pa.parse(fields)
    if credentials is None:
        return
    for key, value in credentials.params.items():
        if key != "model":  # the generator's own model (a checkpoint) is the model
            record.params.setdefault(key, value)
    record.extra.setdefault("c2pa", credentials.extra.get("c2pa", {}))
    record.raw.setdefault(c2pa.FIELD, fields[c2pa.FIELD])


__all__ = ["ORDER", "PARSER_VERSION", "ParserInfo", "parse_fields", "registry"]
