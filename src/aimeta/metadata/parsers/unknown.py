"""The last resort: generation-like text that no format parser recognised.

Such a file gets generator ``unknown`` with every text field kept in ``raw``, so nothing is
lost and ``aimeta ingest --reparse`` can read it once a parser for its format exists. Files
whose text is only about the file itself (ImageMagick ``date:create``, a camera's
Make/Model/Software, a photo editor's XMP) stay generator ``none``.

The rule, in order; the first that holds makes the file ``unknown``:

1. a field whose *name* only image generators write (``parameters``, ``prompt``,
   ``workflow``, ``dream``, ``sd-metadata``, ``invokeai_metadata``, ``generation_data``, ...);
2. a field whose value names an image generator (``Stable Diffusion``, ``NovelAI``,
   ``ComfyUI``, ``Midjourney``, ``DALL-E``, ...);
3. a field whose value uses at least two distinct generation words (prompt, negative, seed,
   steps, sampler, scheduler, cfg, guidance, denoise/denoising, checkpoint, lora, workflow).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from aimeta.metadata.parsers.info import ParserInfo
from aimeta.metadata.record import Record

GENERATION_KEYS = frozenset(
    {
        "parameters",
        "prompt",
        "workflow",
        "dream",
        "sd-metadata",
        "invokeai_metadata",
        "invokeai_graph",
        "invokeai_workflow",
        "generation_data",
        "sui_image_params",
        "fooocus_scheme",
        "stealth_png_info",
        "negative_prompt",
        "use_stable_diffusion_model",
    }
)
_GENERATOR_NAMES = re.compile(
    r"stable[ -]?diffusion|novel ?ai|comfy ?ui|midjourney|dall[-·]?e\b|invoke ?ai|fooocus|"
    r"swarm ?ui|draw things|automatic1111|stable ?swarm|\bsdxl\b",
    re.IGNORECASE,
)
_GENERATION_WORDS = re.compile(
    r"\b(prompt|negative|seed|steps|sampler|scheduler|cfg|guidance|denoise|denoising|"
    r"checkpoint|lora|workflow)\b",
    re.IGNORECASE,
)
# Only the start of each value is searched: evidence sits there, and scanning a 50 MB comment
# with these patterns took 23 s.
_SCAN_CHARS = 1 << 20


def generation_evidence(fields: Mapping[str, str]) -> str | None:
    """Why ``fields`` look like generation metadata (rule and field name), or ``None``."""
    for key in sorted(fields):
        if key in GENERATION_KEYS and fields[key].strip():
            return f"generation field {key!r}"
    for key in sorted(fields):
        if _GENERATOR_NAMES.search(fields[key], 0, _SCAN_CHARS):
            return f"field {key!r} names an image generator"
    for key in sorted(fields):
        words = {word.lower() for word in _GENERATION_WORDS.findall(fields[key], 0, _SCAN_CHARS)}
        if len(words) >= 2:
            return f"field {key!r} uses generation words ({', '.join(sorted(words))})"
    return None


def parse(fields: Mapping[str, str]) -> Record | None:
    """Generation-like fields no other parser took -> ``unknown`` record keeping them all."""
    reason = generation_evidence(fields)
    if reason is None:
        return None
    return Record(
        generator="unknown",
        raw=dict(fields),
        warnings=[f"no parser recognised this metadata: {reason}"],
    )


PARSER = ParserInfo(
    name="unknown",
    label="Unrecognised generation metadata",
    containers="any text field that looks like generation metadata, kept raw for re-parsing",
    parse=parse,
)
