"""Record and Resource: the hub types every parser returns.

A parser turns the text fields of one file into one ``Record``. Everything downstream (the
database, tokens, resources, exports) reads records, never parser internals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Resource kinds, in the order people think of them.
RESOURCE_KINDS = (
    "checkpoint",
    "lora",
    "embedding",
    "hypernetwork",
    "vae",
    "upscaler",
    "controlnet",
    "refiner",
    "detailer",
    "ipadapter",
    "resource_ref",
)


@dataclass(slots=True)
class Resource:
    """One model file (checkpoint, LoRA, ...) that took part in making an image.

    ``name`` is the name as found; normalisation for matching happens when resources are
    stored. ``weight`` is the model strength (LoRA ``<lora:x:0.8>``, ComfyUI strength_model),
    ``weight_clip`` the text-encoder strength where a second one exists.
    """

    kind: str
    name: str
    weight: float | None = None
    weight_clip: float | None = None
    hash: str | None = None
    hash_type: str | None = None
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Record:
    """Normalised generation metadata of one image.

    ``params`` holds the normalised keys (steps, cfg, seed, sampler, sampler_norm,
    scheduler_norm, model, model_hash, clip_skip, denoise, width, height, hires_*, ...), all
    as text so nothing is lost to integer range or float formatting (ComfyUI seeds exceed
    64 bits). ``raw`` holds the source texts the parser used, ``extra`` everything else the
    format carries that has no normalised key.
    """

    generator: str
    prompt: str | None = None
    negative_prompt: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    resources: list[Resource] = field(default_factory=list)
    raw: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def set_param(self, key: str, value: object) -> None:
        """Store ``value`` under ``key`` as text; ``None`` and empty strings are skipped."""
        if value is None:
            return
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, float):
            text = repr(value) if not value.is_integer() else str(int(value))
        else:
            text = str(value).strip()
        if text:
            self.params[key] = text
