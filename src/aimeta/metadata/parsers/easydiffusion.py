"""Easy Diffusion (sdkit): one PNG text chunk per setting, or a JSON object in the EXIF
UserComment of JPEG/WebP.

Keys as Easy Diffusion writes them: ``prompt``, ``negative_prompt``, ``seed``,
``use_stable_diffusion_model``, ``clip_skip``, ``use_vae_model``, ``sampler_name``, ``width``,
``height``, ``num_inference_steps``, ``guidance_scale``, ``prompt_strength``,
``use_lora_model``/``lora_alpha`` (a name or a list, with matching strengths),
``use_hypernetwork_model``, ``use_embeddings_model``, ``use_face_correction``,
``use_upscale``/``upscale_amount``. PNG chunk values are Python ``str()`` of the value, so
lists arrive as ``"['a', 'b']"`` and missing models as ``"None"``. The key
``use_stable_diffusion_model`` marks the format.
"""

from __future__ import annotations

import ast
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

_MARKER = "use_stable_diffusion_model"
_KEYS = (
    "prompt",
    "negative_prompt",
    "seed",
    "use_stable_diffusion_model",
    "clip_skip",
    "use_controlnet_model",
    "control_filter_to_apply",
    "use_vae_model",
    "sampler_name",
    "width",
    "height",
    "num_inference_steps",
    "guidance_scale",
    "prompt_strength",
    "use_lora_model",
    "lora_alpha",
    "use_hypernetwork_model",
    "hypernetwork_strength",
    "use_embeddings_model",
    "tiling",
    "use_face_correction",
    "use_upscale",
    "upscale_amount",
    "latent_upscaler_steps",
)
_USED = {
    "prompt",
    "negative_prompt",
    "seed",
    "use_stable_diffusion_model",
    "clip_skip",
    "use_vae_model",
    "sampler_name",
    "width",
    "height",
    "num_inference_steps",
    "guidance_scale",
    "prompt_strength",
    "use_lora_model",
    "lora_alpha",
    "use_hypernetwork_model",
    "hypernetwork_strength",
    "use_controlnet_model",
    "use_upscale",
    "upscale_amount",
}


def _python_value(text: str) -> Any:
    """A PNG chunk value written with Python's ``str()``: lists and ``None`` come back."""
    stripped = text.strip()
    if stripped == "None":
        return None
    if stripped.startswith("[") and len(stripped) < 100_000:
        try:
            return ast.literal_eval(stripped)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return text
    return text


def _settings(fields: Mapping[str, str]) -> tuple[str, dict[str, Any]] | None:
    for source in ("usercomment", "xmp:usercomment"):
        data = load_json_object(fields.get(source))
        if data is not None and _MARKER in data:
            return source, data
    if _MARKER in fields:
        return "png", {key: _python_value(fields[key]) for key in _KEYS if key in fields}
    return None


def _listed(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _apply(data: dict[str, Any], record: Record) -> None:
    record.prompt = text_value(data, "prompt")
    record.negative_prompt = text_value(data, "negative_prompt")
    record.set_param("seed", seed_text(data.get("seed")))
    record.set_param("steps", as_text(data.get("num_inference_steps")))
    record.set_param("cfg", as_text(data.get("guidance_scale")))
    record.set_param("clip_skip", as_text(data.get("clip_skip")))
    record.set_param("denoise", as_text(data.get("prompt_strength")))
    set_size(record, data.get("width"), data.get("height"))
    set_sampler(record, data.get("sampler_name"))
    model = as_text(data.get(_MARKER))
    record.set_param("model", model)
    add_resource(record, "checkpoint", model, source="easydiffusion")
    vae = as_text(data.get("use_vae_model"))
    if add_resource(record, "vae", vae, source="easydiffusion") is not None:
        record.set_param("vae", vae)
    for kind, model_key, weight_key in (
        ("lora", "use_lora_model", "lora_alpha"),
        ("hypernetwork", "use_hypernetwork_model", "hypernetwork_strength"),
        ("controlnet", "use_controlnet_model", None),
    ):
        weights = _listed(data.get(weight_key)) if weight_key else []
        for index, name in enumerate(_listed(data.get(model_key))):
            weight = weights[index] if index < len(weights) else None
            add_resource(record, kind, name, weight=weight, source="easydiffusion")
    upscaler = as_text(data.get("use_upscale"))
    if upscaler and upscaler.lower() not in {"none", "false"}:
        add_resource(record, "upscaler", upscaler, source="easydiffusion")
        record.set_param("hires_upscaler", upscaler)
        record.set_param("hires_upscale", as_text(data.get("upscale_amount")))
    keep_extra(record, data, _USED)


def parse(fields: Mapping[str, str]) -> Record | None:
    """Easy Diffusion settings -> record; ``None`` without ``use_stable_diffusion_model``."""
    found = _settings(fields)
    if found is None:
        return None
    source, data = found
    raw_keys = _KEYS if source == "png" else (source,)
    record = Record(
        generator="easydiffusion",
        raw={key: fields[key] for key in raw_keys if fields.get(key)},
    )
    _apply(data, record)
    return record


PARSER = ParserInfo(
    name="easydiffusion",
    label="Easy Diffusion",
    containers=(
        "PNG text chunks per setting (`use_stable_diffusion_model`, `prompt`, ...); "
        "JPEG/WebP EXIF UserComment JSON"
    ),
    parse=parse,
    source_fields=frozenset({"usercomment", "xmp:usercomment", _MARKER}),
)
