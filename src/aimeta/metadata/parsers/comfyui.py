"""ComfyUI API graphs (the PNG ``prompt`` chunk; the ``workflow`` chunk is kept raw).

The graph is ``{node_id: {"class_type": ..., "inputs": {...}}}``; an input is either a value
or a link ``[node_id, output_index]``. From every sampler the parser follows links backwards:
``model`` through LoRA loaders and pass-through nodes to the checkpoint, ``positive`` /
``negative`` through conditioning nodes to the text encoders (whose text may itself come from
a primitive or string node), scalars (seed, steps, ...) through primitive nodes, and the latent
input to the empty latent (size: also rgthree's ``dimensions`` and ComfyRoll's
``aspect_ratio`` text), upscale nodes (hires) and earlier samplers. Switches and selectors
(core ``ComfySwitchNode``, Impact/ComfyRoll/Easy-Use selectors, rgthree's Any Switch) are
followed along the input they pass on; a text generator (``TextGenerate``) is followed to the
prompt it was given, since the generated text is not in the graph. Upscales between the last
sampler and the saved image give ``upscaler``/``upscale_factor``.

Which sampler is the image's: the graph is walked backwards from its saved images (SaveImage
and other "save" nodes; from previews only when no sampler leads to a save); the sampler
closest to an output that feeds no other such sampler is the final one. When its latent
comes from an earlier sampler (a hires-fix or refiner chain), the first sampler of that chain
is the primary one, as in A1111 where Steps/Seed/Sampler describe the
first pass and ``hires_*`` the second. Every other sampler is kept in ``extra["samplers"]``.

Several positive texts for one sampler (area composition, concatenated conditioning) are
joined with a newline into ``prompt`` (a token boundary) and listed with their node ids and
areas in ``extra["positive_prompts"]``. Resources are collected from every loader node in the
graph, since the image was made with all of them; from prompt text only ``embedding:name``
counts (ComfyUI itself reads it), while ``<lora:...>`` text is left alone: plain ComfyUI
encodes it as words, and a tag-loader node shows up as a loader anyway.

The graph is untrusted: NaN/Infinity, string or numeric ids, cycles, unknown custom nodes and
missing inputs are all expected; every walk has a visited set and a depth limit.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from aimeta.metadata.parsers._values import (
    as_float,
    as_text,
    is_empty_name,
    load_json,
    seed_text,
    set_sampler,
)
from aimeta.metadata.parsers.info import ParserInfo
from aimeta.metadata.record import Record, Resource
from aimeta.metadata.resources import MODEL_EXTENSIONS
from aimeta.metadata.tokens import prompt_resources

_MAX_DEPTH = 64
_TEXT_KEYS = ("text", "text_g", "text_l", "t5xxl", "clip_l", "clip_g", "prompt")
# Inputs through which a text encoder gets its CLIP model (rgthree's Power Prompt: opt_clip).
_CLIP_KEYS = ("clip", "opt_clip")
# A selector's number input (Impact/ComfyRoll/Easy-Use switches) and a boolean switch's inputs
# (core ComfySwitchNode: switch, on_true, on_false).
_SELECT_KEYS = ("select", "Input", "input", "index", "selected_index")
_SIZE_TEXT = re.compile(r"(\d{2,5})\s*[x×]\s*(\d{2,5})")
_SCALE_KEYS = ("scale_by", "scale", "upscale_by", "rescale_factor", "upscale_factor")
_STRING_KEYS = (
    "populated_text",  # Impact wildcard processor: the text after the wildcards were filled in
    "text",
    "string",
    "value",
    "prompt",
    "text_positive",
    "wildcard_text",
    "STRING",
    "Text",
)
_SCALAR_KEYS = ("value", "seed", "noise_seed", "int", "float", "number", "steps", "cfg")
_SCHEDULER_CLASSES = {
    "KarrasScheduler": "karras",
    "ExponentialScheduler": "exponential",
    "PolyexponentialScheduler": "polyexponential",
    "AlignYourStepsScheduler": "align_your_steps",
    "SDTurboScheduler": "turbo",
    "BetaSamplingScheduler": "beta",
    "VPScheduler": "vp",
    "LaplaceScheduler": "laplace",
    "GITSScheduler": "align_your_steps_gits",
}
_LATENT_KEYS = ("samples", "latent_image", "latent", "latents", "pixels", "image", "images")
_OUTPUT_WORDS = ("save", "preview")
# Inputs that name a model file and the kind of resource each is, in the order they are read.
_NAMED_INPUTS = (
    ("ckpt_name", "checkpoint"),
    ("base_ckpt_name", "checkpoint"),
    ("unet_name", "checkpoint"),
    ("refiner_ckpt_name", "refiner"),
    ("vae_name", "vae"),
    ("control_net_name", "controlnet"),
    ("ipadapter_file", "ipadapter"),
)
_STACK_NAME = re.compile(r"lora_name_(\d+)$")
_TRAILING_NUMBER = re.compile(r"(.*?)(\d+)$")
# isinstance() with a tuple built once: ``list | tuple`` in the call builds a union every time,
# and link() runs for every input of every node visited.
_LINK_TYPES = (list, tuple)

Link = tuple[str, int]


@dataclass(slots=True)
class _Text:
    node: str
    text: str
    area: dict[str, Any] | None = None


@dataclass(slots=True)
class _Sampler:
    node: str
    class_type: str
    values: dict[str, Any] = field(default_factory=dict)
    model: str | None = None
    positive: list[_Text] = field(default_factory=list)
    negative: list[_Text] = field(default_factory=list)
    upstream: str | None = None  # an earlier sampler whose latent this one continues
    width: Any = None
    height: Any = None
    upscale: dict[str, Any] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)


class _Graph:
    """The nodes of one API graph and link-following helpers (all bounded)."""

    def __init__(self, nodes: dict[str, tuple[str, dict[str, Any]]]) -> None:
        self.nodes = nodes
        self._links: dict[str, list[tuple[str, Link]]] = {}

    def link(self, value: Any) -> Link | None:
        """``(node id, output index)`` when ``value`` is a link to a node of the graph."""
        if not isinstance(value, _LINK_TYPES) or len(value) != 2:
            return None
        node_id, index = value
        # The values come from json.loads (load_graph builds every _Graph), so exact type
        # tests say what isinstance() would, faster, and leave out bool (an int subclass).
        if type(index) is not int:
            return None
        if type(node_id) is str:
            key = node_id
        elif type(node_id) is int:
            key = str(node_id)
        else:
            return None
        return (key, index) if key in self.nodes else None

    def class_of(self, node_id: str) -> str:
        return self.nodes[node_id][0]

    def inputs(self, node_id: str) -> dict[str, Any]:
        return self.nodes[node_id][1]

    def links_of(self, node_id: str) -> list[tuple[str, Link]]:
        """The (input name, link) pairs of a node, in input order. Computed once per node: the
        walks (outputs, conditioning, model chains) visit the same nodes again and again, and
        the graph is never changed."""
        found = self._links.get(node_id)
        if found is None:
            found = []
            for key, value in self.inputs(node_id).items():
                link = self.link(value) if isinstance(value, _LINK_TYPES) else None
                if link is not None:
                    found.append((key, link))
            self._links[node_id] = found
        return found

    def switched(self, node_id: str) -> tuple[bool, Any]:
        """(True, the input a switch/selector node passes on) or (False, None) for other
        nodes. A boolean switch passes ``on_true``/``on_false``; a selector the input whose
        trailing number is the selected one (``text2``, ``input2``, ...); rgthree's Any Switch
        its first connected input."""
        inputs = self.inputs(node_id)
        if "on_true" in inputs or "on_false" in inputs:
            flag = self.scalar(inputs.get("switch", inputs.get("boolean", True)))
            chosen = "on_true" if _truthy(flag) else "on_false"
            return True, inputs.get(chosen)
        for key in _SELECT_KEYS:
            number = as_float(self.scalar(inputs[key], key)) if key in inputs else None
            if number is None or not number.is_integer():
                continue
            for name in inputs:
                match = _TRAILING_NUMBER.match(name) if name != key else None
                if match and int(match.group(2)) == int(number) and match.group(1):
                    return True, inputs[name]
        if "switch" in self.class_of(node_id).lower():
            linked = [name for name, _ in self.links_of(node_id)]
            if linked:
                return True, inputs[_natural_order(tuple(linked))[0]]
        return False, None

    def scalar(self, value: Any, key: str = "", depth: int = 0) -> Any:
        """A plain value, following links into primitive-like nodes and switches."""
        link = self.link(value) if isinstance(value, _LINK_TYPES) else None
        if link is None:
            if isinstance(value, dict) and "content" in value:  # pysssss-style pickers
                return value["content"]
            return value
        if depth > _MAX_DEPTH:
            return None
        is_switch, chosen = self.switched(link[0])
        if is_switch:
            return self.scalar(chosen, key, depth + 1)
        inputs = self.inputs(link[0])
        for name in (key, *_SCALAR_KEYS, *_STRING_KEYS):
            if name and name in inputs:
                return self.scalar(inputs[name], name, depth + 1)
        plain = [v for v in inputs.values() if self.link(v) is None and not isinstance(v, dict)]
        return plain[0] if len(plain) == 1 else None

    def string(self, value: Any, depth: int = 0) -> str | None:
        """A text value, following links into string, primitive and concatenation nodes."""
        if isinstance(value, str):
            return value
        link = self.link(value)
        if link is None or depth > _MAX_DEPTH:
            return None
        node_id, index = link
        is_switch, chosen = self.switched(node_id)
        if is_switch:
            return self.string(chosen, depth + 1)
        inputs = self.inputs(node_id)
        class_type = self.class_of(node_id).lower()
        if "text_positive" in inputs and "text_negative" in inputs:
            return self.string(
                inputs["text_negative" if index == 1 else "text_positive"], depth + 1
            )
        if any(word in class_type for word in ("concat", "join", "combine")):
            return self._joined(node_id, depth)
        for key in _STRING_KEYS:
            if key in inputs:
                found = self.string(inputs[key], depth + 1)
                if found is not None:
                    return found
        for candidate in inputs.values():
            if isinstance(candidate, str) and candidate.strip():
                return candidate
        return None

    def _joined(self, node_id: str, depth: int) -> str | None:
        inputs = self.inputs(node_id)
        delimiter = inputs.get("delimiter", inputs.get("separator", " "))
        delimiter = delimiter if isinstance(delimiter, str) else " "
        delimiter = delimiter.replace("\\n", "\n")
        parts: list[str] = []
        for key in sorted(inputs, key=_natural):
            if key.startswith(("text", "string", "prompt")):
                part = self.string(inputs[key], depth + 1)
                if part:
                    parts.append(part)
        return delimiter.join(parts) if parts else None


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in ("false", "off", "no", "0", "")
    return bool(value) if value is not None else True


# Input names repeat across nodes and graphs (text_1, lora_name_2, ...); bounded because they
# come from the file.
@lru_cache(maxsize=4096)
def _natural(key: str) -> tuple[str, int]:
    match = _TRAILING_NUMBER.match(key)
    return (match.group(1), int(match.group(2))) if match else (key, -1)


# Nodes of one class have the same inputs from graph to graph, so their order is cached by the
# tuple of names (bounded: the names come from the file). Raises like sorting by _natural does.
@lru_cache(maxsize=1024)
def _natural_order(keys: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(sorted(keys, key=_natural))


# Node ids repeat from graph to graph ("3", "4", ...); bounded because they come from the file.
@lru_cache(maxsize=4096)
def _id_order(node_id: str) -> tuple[int, int, str]:
    return (0, int(node_id), "") if node_id.isdigit() else (1, 0, node_id)


def load_graph(text: str | None) -> _Graph | None:
    """The API graph in ``text`` (NaN/Infinity allowed), or ``None`` when it is not one."""
    data = load_json(text)
    if not isinstance(data, dict):
        return None
    nodes: dict[str, tuple[str, dict[str, Any]]] = {}
    for node_id, node in data.items():
        if isinstance(node, dict) and isinstance(node.get("class_type"), str):
            inputs = node.get("inputs")
            nodes[str(node_id)] = (node["class_type"], inputs if isinstance(inputs, dict) else {})
    return _Graph(nodes) if nodes else None


def _is_sampler(graph: _Graph, node_id: str) -> bool:
    """Conditioning (or a guider), the numbers of a sampling run and something to sample
    with. The latent input is not required: samplers whose latent is missing, renamed or
    made by a node of another kind (an aspect-ratio picker, a VAE encode) still sample."""
    class_type, inputs = graph.nodes[node_id]
    if class_type == "SamplerCustomAdvanced":
        return True
    return (
        ("positive" in inputs or "guider" in inputs)
        and any(key in inputs for key in ("seed", "noise_seed", "steps", "noise", "sigmas"))
        and any(key in inputs for key in ("latent_image", "model", "guider", *_LATENT_KEYS))
    )


# ---------------------------------------------------------------- conditioning -> texts


def _texts(graph: _Graph, link: Link | None, notes: dict[str, Any]) -> list[_Text]:
    found: list[_Text] = []
    seen: set[Link] = set()

    def walk(current: Link, depth: int, area: dict[str, Any] | None) -> None:
        if current in seen or depth > _MAX_DEPTH:
            return
        seen.add(current)
        node_id, index = current
        class_type, inputs = graph.class_of(node_id), graph.inputs(node_id)
        lowered = class_type.lower()
        if class_type == "ConditioningZeroOut":
            notes["zeroed"] = True
            return
        is_switch, chosen = graph.switched(node_id)
        if is_switch:
            target = graph.link(chosen)
            if target is not None:
                walk(target, depth + 1, area)
            return
        if "ckpt_name" in inputs and "positive" in inputs and "negative" in inputs:
            # Efficiency nodes' loader: outputs 1/2 are its positive/negative conditioning.
            text = graph.string(inputs["negative" if index == 2 else "positive"])
            if text and text.strip():
                found.append(_Text(node_id, text.strip(), area))
            return
        keys = [key for key in _TEXT_KEYS if key in inputs]
        if keys and (any(key in inputs for key in _CLIP_KEYS) or "encode" in lowered):
            texts: list[str] = []
            for key in keys:
                text = graph.string(inputs[key])
                if text and text.strip() and text.strip() not in texts:
                    texts.append(text.strip())
            if texts:
                found.append(_Text(node_id, "\n".join(texts), area))
            return
        if class_type == "FluxGuidance":
            notes.setdefault("guidance", graph.scalar(inputs.get("guidance")))
        if "width" in inputs and "height" in inputs and "cond" in lowered:
            area = {key: graph.scalar(inputs.get(key)) for key in ("width", "height", "x", "y")}
            area["strength"] = graph.scalar(inputs.get("strength"))
            area["node"] = node_id
        positive, negative = graph.link(inputs.get("positive")), graph.link(inputs.get("negative"))
        if positive and negative:
            walk(negative if index == 1 else positive, depth + 1, area)
            return
        for key, target in graph.links_of(node_id):
            if "cond" in key.lower():
                walk(target, depth + 1, area)

    if link is not None:
        walk(link, 0, None)
    return found


# ---------------------------------------------------------------- sampler inputs


def _sigmas(graph: _Graph, value: Any, sampler: _Sampler) -> None:
    seen: set[str] = set()
    link = graph.link(value)
    while link is not None and link[0] not in seen and len(seen) < _MAX_DEPTH:
        node_id = link[0]
        seen.add(node_id)
        class_type, inputs = graph.class_of(node_id), graph.inputs(node_id)
        for key in ("steps", "denoise"):
            if key in inputs:
                sampler.values.setdefault(key, graph.scalar(inputs[key], key))
        if "scheduler" in inputs:
            sampler.values.setdefault("scheduler", graph.scalar(inputs["scheduler"], "scheduler"))
        elif class_type in _SCHEDULER_CLASSES:
            sampler.values.setdefault("scheduler", _SCHEDULER_CLASSES[class_type])
        if "model" in inputs and sampler.model is None:
            sampler.model = _checkpoint(graph, inputs["model"])
        link = graph.link(inputs.get("sigmas"))


def _guider(graph: _Graph, value: Any, sampler: _Sampler) -> tuple[Any, Any, Any]:
    """(model, positive, negative) inputs of a CFGGuider/BasicGuider/DualCFGGuider."""
    link = graph.link(value)
    if link is None:
        return None, None, None
    inputs = graph.inputs(link[0])
    for key in ("cfg", "cfg_conds"):
        if key in inputs:
            sampler.values.setdefault("cfg", graph.scalar(inputs[key], key))
    positive = inputs.get("positive", inputs.get("conditioning", inputs.get("cond1")))
    return inputs.get("model"), positive, inputs.get("negative")


def _checkpoint(graph: _Graph, value: Any) -> str | None:
    """The checkpoint/UNet name at the end of a model chain (LoRA loaders, model patches...)."""
    seen: set[str] = set()
    link = graph.link(value)
    while link is not None and link[0] not in seen and len(seen) < _MAX_DEPTH:
        node_id = link[0]
        seen.add(node_id)
        inputs = graph.inputs(node_id)
        for key in ("ckpt_name", "base_ckpt_name", "unet_name"):
            if key not in inputs:  # a missing input reads as None
                continue
            name = as_text(graph.scalar(inputs[key], key))
            if name and not is_empty_name(name):
                return name
        is_switch, chosen = graph.switched(node_id)
        link = graph.link(chosen if is_switch else inputs.get("model"))
        if link is None and not is_switch:
            link = next((t for k, t in graph.links_of(node_id) if "model" in k.lower()), None)
    return None


def _latent(graph: _Graph, value: Any, sampler: _Sampler, samplers: set[str]) -> None:
    """Walk the latent input back to the empty latent (size), upscales (hires) and an earlier
    sampler."""
    seen: set[str] = set()
    link = graph.link(value)
    while link is not None and link[0] not in seen and len(seen) < _MAX_DEPTH:
        node_id = link[0]
        seen.add(node_id)
        if node_id in samplers:
            sampler.upstream = node_id
            return
        is_switch, chosen = graph.switched(node_id)
        if is_switch:
            link = graph.link(chosen)
            continue
        class_type, inputs = graph.class_of(node_id), graph.inputs(node_id)
        lowered = class_type.lower()
        size = _latent_size(graph, node_id)
        if size is not None:
            sampler.width, sampler.height = size
            factor = graph.scalar(inputs.get("upscale_factor"), "upscale_factor")
            if as_float(factor) not in (None, 1.0):
                sampler.notes["upscale_factor"] = factor
            return
        if "upscale" in lowered or class_type in ("ImageScale", "ImageScaleBy"):
            _note_upscale(graph, node_id, sampler.upscale)
        elif class_type == "LoadImage":
            sampler.notes["init_image"] = as_text(inputs.get("image"))
            return
        link = next(
            (graph.link(inputs[key]) for key in _LATENT_KEYS if graph.link(inputs.get(key))),
            None,
        )


def _latent_size(graph: _Graph, node_id: str) -> tuple[Any, Any] | None:
    """(width, height) of a node that makes an empty latent: ``width``/``height`` inputs of
    an Empty*Latent node, rgthree's ``dimensions`` text ("1024 x 1024  (square)"), ComfyRoll's
    ``aspect_ratio`` ("1:1 square 1024x1024", or "custom" with ``width``/``height``, swapped
    when ``swap_dimensions`` is on)."""
    class_type, inputs = graph.nodes[node_id]
    lowered = class_type.lower()
    if "upscale" in lowered or not any(
        word in lowered for word in ("empty", "latent", "aspect", "resolution")
    ):
        return None
    if any(graph.link(inputs.get(key)) is not None for key in _LATENT_KEYS):
        return None  # it changes a latent it is given (scale, crop, encode), makes none
    width, height = (
        graph.scalar(inputs.get("width"), "width"),
        graph.scalar(inputs.get("height"), "height"),
    )
    for key in ("dimensions", "resolution", "aspect_ratio"):
        text = graph.scalar(inputs.get(key), key) if key in inputs else None
        match = _SIZE_TEXT.search(text) if isinstance(text, str) else None
        if match:
            width, height = int(match.group(1)), int(match.group(2))
            break
    if as_float(width) is None or as_float(height) is None:
        return None
    if str(graph.scalar(inputs.get("swap_dimensions"))).lower() == "on":
        width, height = height, width
    return width, height


def _note_upscale(graph: _Graph, node_id: str, upscale: dict[str, Any]) -> None:
    inputs = graph.inputs(node_id)
    if "width" in inputs and "height" in inputs:
        upscale.setdefault("width", graph.scalar(inputs["width"], "width"))
        upscale.setdefault("height", graph.scalar(inputs["height"], "height"))
    for key in _SCALE_KEYS:
        if key in inputs:
            upscale.setdefault("scale", graph.scalar(inputs[key], key))
    model_link = graph.link(inputs.get("upscale_model"))
    if model_link is not None:
        name = graph.scalar(graph.inputs(model_link[0]).get("model_name"), "model_name")
        upscale.setdefault("upscaler", as_text(name))
    elif "upscale_method" in inputs:
        # A resampling method names the upscaler only when no upscale model is in the chain.
        upscale.setdefault("method", as_text(graph.scalar(inputs["upscale_method"])))


def _read_sampler(graph: _Graph, node_id: str, samplers: set[str]) -> _Sampler:
    inputs = graph.inputs(node_id)
    sampler = _Sampler(node_id, graph.class_of(node_id))
    values = sampler.values
    for key in ("seed", "noise_seed", "steps", "cfg", "sampler_name", "scheduler", "denoise"):
        if key in inputs:
            values.setdefault(
                "seed" if key == "noise_seed" else key, graph.scalar(inputs[key], key)
            )
    for key in ("start_at_step", "end_at_step"):
        if key in inputs:
            sampler.notes[key] = graph.scalar(inputs[key], key)
    noise = graph.link(inputs.get("noise"))
    if noise is not None:
        noise_inputs = graph.inputs(noise[0])
        if "noise_seed" in noise_inputs:
            values.setdefault("seed", graph.scalar(noise_inputs["noise_seed"], "noise_seed"))
    picker = graph.link(inputs.get("sampler"))
    if picker is not None and "sampler_name" in graph.inputs(picker[0]):
        values.setdefault(
            "sampler_name", graph.scalar(graph.inputs(picker[0])["sampler_name"], "sampler_name")
        )
    elif picker is not None:
        values.setdefault("sampler_name", graph.class_of(picker[0]))
    model, positive, negative = inputs.get("model"), inputs.get("positive"), inputs.get("negative")
    if "guider" in inputs:
        model, positive, negative = _guider(graph, inputs["guider"], sampler)
    sampler.model = _checkpoint(graph, model) or sampler.model
    _sigmas(graph, inputs.get("sigmas"), sampler)
    sampler.positive = _texts(graph, graph.link(positive), sampler.notes)
    zeroed_before = sampler.notes.pop("zeroed", False)
    sampler.negative = _texts(graph, graph.link(negative), sampler.notes)
    sampler.notes.pop("zeroed", None)
    if zeroed_before:
        sampler.notes["positive_zeroed"] = True
    if "upscale_by" in inputs:  # Ultimate SD Upscale: a sampler that upscales its input
        _note_upscale(graph, node_id, sampler.upscale)
    latent = next((inputs[key] for key in ("latent_image", *_LATENT_KEYS) if key in inputs), None)
    _latent(graph, latent, sampler, samplers)
    return sampler


# ---------------------------------------------------------------- choosing the primary


# Class names repeat across nodes and graphs; bounded because they come from the file.
@lru_cache(maxsize=4096)
def _is_output(class_type: str, words: tuple[str, ...] = _OUTPUT_WORDS) -> bool:
    lowered = class_type.lower()
    return any(word in lowered for word in words)


def _distances_from_outputs(
    graph: _Graph, words: tuple[str, ...] = _OUTPUT_WORDS
) -> dict[str, int]:
    """Breadth-first distance of every node from the nearest output node (a class name with
    one of ``words``), following links backwards."""
    # One level at a time: every node of a level is ``steps`` away.
    level = [
        node_id for node_id, (class_type, _) in graph.nodes.items() if _is_output(class_type, words)
    ]
    distance: dict[str, int] = {}
    steps = 0
    while level:
        next_level: list[str] = []
        for node_id in level:
            if node_id in distance:
                continue
            distance[node_id] = steps
            for _, (target, _index) in graph.links_of(node_id):
                if target not in distance:
                    next_level.append(target)
        level, steps = next_level, steps + 1
    return distance


def _output_distances(graph: _Graph, samplers: dict[str, _Sampler]) -> dict[str, int]:
    """Distances from the saved images; from the previews too only when no sampler leads to a
    save (a chain that only feeds a preview is a test run, not the image)."""
    saved = _distances_from_outputs(graph, ("save",))
    if any(node in saved for node in samplers):
        return saved
    return _distances_from_outputs(graph)


def _choose(samplers: dict[str, _Sampler], distance: dict[str, int]) -> tuple[str, str]:
    """(primary sampler id, final sampler id)."""
    reachable = [node for node in samplers if node in distance] or list(samplers)
    # Only samplers that lead to an output count as continuing a chain.
    feeding = {samplers[node].upstream for node in reachable if samplers[node].upstream}
    pool = [node for node in reachable if node not in feeding] or reachable
    final = min(pool, key=lambda node: (distance.get(node, 1 << 30), _negated(node)))
    primary, seen = final, {final}
    while samplers[primary].upstream in samplers and samplers[primary].upstream not in seen:
        primary = samplers[primary].upstream or primary
        seen.add(primary)
    return primary, final


def _output_upscale(graph: _Graph, samplers: dict[str, _Sampler]) -> dict[str, Any]:
    """Upscales between the samplers and the saved images (an upscale model, "upscale by"
    nodes): walked backwards from the save nodes along image inputs, stopping at samplers."""
    upscale: dict[str, Any] = {}
    level = [
        node for node, (class_type, _) in graph.nodes.items() if _is_output(class_type, ("save",))
    ]
    seen: set[str] = set()
    while level and len(seen) < 4 * _MAX_DEPTH:
        next_level: list[str] = []
        for node_id in level:
            if node_id in seen or node_id in samplers:
                continue
            seen.add(node_id)
            class_type = graph.class_of(node_id)
            if "upscale" in class_type.lower() or class_type in ("ImageScale", "ImageScaleBy"):
                _note_upscale(graph, node_id, upscale)
            next_level.extend(t for key, (t, _) in graph.links_of(node_id) if key in _LATENT_KEYS)
        level = next_level
    return upscale


def _negated(node_id: str) -> tuple[int, int, str]:
    kind, number, text = _id_order(node_id)
    return (kind, -number, text)


# ---------------------------------------------------------------- resources


def _weight(graph: _Graph, inputs: Mapping[str, Any], *keys: str) -> float | None:
    for key in keys:
        if key in inputs:
            number = as_float(graph.scalar(inputs[key], key))
            if number is not None:
                return number
    return None


def _lora(
    graph: _Graph, name: Any, model: float | None, clip: float | None, source: str, node_id: str
) -> Resource | None:
    text = as_text(graph.scalar(name))
    if not text or is_empty_name(text):
        return None
    return Resource(
        "lora", text, weight=model, weight_clip=clip, source=source, extra={"node": node_id}
    )


@lru_cache(maxsize=1024)
def _input_shape(keys: tuple[str, ...]) -> tuple[tuple[tuple[str, str], ...], bool]:
    """What a node's input names say about its resources (cached like _natural_order): the
    _NAMED_INPUTS among them, and whether any is a LoRA stack's ``lora_name_N``."""
    named = tuple((key, kind) for key, kind in _NAMED_INPUTS if key in keys)
    return named, any(key.startswith("lora_name_") for key in keys)


def _node_resources(graph: _Graph, node_id: str) -> list[Resource]:
    class_type, inputs = graph.nodes[node_id]
    keys = tuple(inputs)
    # Most nodes have none of the named inputs: read only those that are there.
    named_inputs, stacked = _input_shape(keys)
    named = list(named_inputs)
    if "model_name" in inputs:
        lowered = class_type.lower()
        if "upscale" in lowered and "loader" in lowered:
            named.append(("model_name", "upscaler"))
        if "detector" in lowered or "samloader" in lowered:
            named.append(("model_name", "detailer"))
    found: list[Resource] = []
    for key, kind in named:
        text = as_text(graph.scalar(inputs[key], key))
        if text and not is_empty_name(text) and text.lower() != "baked vae":
            found.append(Resource(kind, text, source=class_type, extra={"node": node_id}))
    if "lora_name" in inputs:
        model = _weight(
            graph,
            inputs,
            "strength_model",
            "lora_model_strength",
            "model_weight",
            "strength",
            "lora_strength",
        )
        clip = _weight(graph, inputs, "strength_clip", "lora_clip_strength", "clip_weight")
        lora = _lora(graph, inputs["lora_name"], model, clip, class_type, node_id)
        if lora:
            found.append(lora)
    found.extend(_stack_loras(graph, node_id, keys, stacked))
    return found


def _stack_loras(
    graph: _Graph, node_id: str, keys: tuple[str, ...], stacked: bool
) -> list[Resource]:
    """LoRA stacks: ``lora_name_N`` inputs (CR LoRA Stack, LoRA Stacker) and rgthree's Power
    Lora Loader (``lora_N`` objects with on/lora/strength). ``keys``: the node's input names;
    ``stacked``: whether one starts with ``lora_name_``."""
    class_type, inputs = graph.nodes[node_id]
    found: list[Resource] = []
    # This runs for every node, and most have neither input: skip reading what is absent.
    count = as_float(graph.scalar(inputs["lora_count"])) if "lora_count" in inputs else None
    simple = "input_mode" in inputs and str(inputs["input_mode"]).lower() == "simple"
    order = _natural_order(keys)  # raises for absurd names as sorting them always did
    # Neither a lora_name_N nor an object value (JSON: exactly dict): the loop would find
    # nothing.
    if not stacked and dict not in map(type, inputs.values()):
        return found
    for key in order:
        match = _STACK_NAME.match(key) if key.startswith("lora_name_") else None
        value = inputs[key]
        if match:
            number = match.group(1)
            if count is not None and int(number) > count:
                continue
            if str(graph.scalar(inputs.get(f"switch_{number}", "On"))).lower() == "off":
                continue
            shared = _weight(graph, inputs, f"lora_wt_{number}")
            model = (
                shared
                if simple
                else _weight(
                    graph,
                    inputs,
                    f"model_weight_{number}",
                    f"model_str_{number}",
                    f"strength_{number}",
                    f"lora_wt_{number}",
                )
            )
            clip = (
                shared
                if simple
                else _weight(graph, inputs, f"clip_weight_{number}", f"clip_str_{number}")
            )
            lora = _lora(graph, value, model, clip, class_type, node_id)
            if lora:
                found.append(lora)
        elif isinstance(value, dict) and "lora" in value and value.get("on", True) is not False:
            model = as_float(value.get("strength"))
            clip = as_float(value.get("strengthTwo"))
            lora = _lora(graph, value.get("lora"), model, clip, class_type, node_id)
            if lora:
                found.append(lora)
    return found


def _clip_skip(graph: _Graph, texts: list[_Text]) -> Any:
    """CLIPSetLastLayer's ``stop_at_clip_layer`` (-2) on the clip chain of the first positive
    text encoder, as A1111's clip skip (2)."""
    if not texts:
        return None
    seen: set[str] = set()
    link: Link | None = (texts[0].node, 0)  # the encoder itself may say (Efficient Loader)
    while link is not None and link[0] not in seen and len(seen) < _MAX_DEPTH:
        seen.add(link[0])
        inputs = graph.inputs(link[0])
        for key in ("stop_at_clip_layer", "clip_skip"):
            if key not in inputs:  # a missing input reads as None
                continue
            number = as_float(graph.scalar(inputs[key], key))
            if number is not None and number != 0:
                return int(abs(number))
        is_switch, chosen = graph.switched(link[0])
        values = [chosen] if is_switch else [inputs.get(key) for key in _CLIP_KEYS]
        link = next((graph.link(v) for v in values if graph.link(v) is not None), None)
    return None


# ---------------------------------------------------------------- record


def _summary(sampler: _Sampler) -> dict[str, Any]:
    values = sampler.values
    summary: dict[str, Any] = {
        "node": sampler.node,
        "class_type": sampler.class_type,
        "seed": seed_text(values.get("seed")),
        "steps": as_text(values.get("steps")),
        "cfg": as_text(values.get("cfg")),
        "sampler": as_text(values.get("sampler_name")),
        "scheduler": as_text(values.get("scheduler")),
        "denoise": as_text(values.get("denoise")),
        "model": sampler.model,
        "prompt": "\n".join(t.text for t in sampler.positive) or None,
        "negative_prompt": "\n".join(t.text for t in sampler.negative) or None,
        "upstream": sampler.upstream,
    }
    return {key: value for key, value in summary.items() if value is not None}


def _prompt_list(texts: list[_Text]) -> list[dict[str, Any]]:
    return [{"node": t.node, "text": t.text, **({"area": t.area} if t.area else {})} for t in texts]


def _fill(record: Record, graph: _Graph) -> None:
    ordered = sorted(graph.nodes, key=_id_order)
    sampler_ids = [node for node in ordered if _is_sampler(graph, node)]
    ids = set(sampler_ids)
    samplers = {node: _read_sampler(graph, node, ids) for node in sampler_ids}
    for node_id in ordered:
        record.resources.extend(_node_resources(graph, node_id))
    texts = [t for s in samplers.values() for t in (*s.positive, *s.negative)]
    for text in texts:
        record.resources.extend(r for r in prompt_resources(text.text) if r.kind == "embedding")
    if not samplers:
        record.warnings.append("no sampler node found")
        return
    # With one sampler there is nothing to choose (_choose returns it either way), and the
    # walk over the whole graph is most of the work.
    distance = _output_distances(graph, samplers) if len(samplers) > 1 else {}
    primary_id, final_id = _choose(samplers, distance)
    primary, final = samplers[primary_id], samplers[final_id]
    values = primary.values
    record.prompt = "\n".join(t.text for t in primary.positive) or None
    record.negative_prompt = "\n".join(t.text for t in primary.negative) or None
    record.set_param("seed", seed_text(values.get("seed")))
    record.set_param("steps", as_text(values.get("steps")))
    record.set_param("cfg", as_text(values.get("cfg")))
    set_sampler(record, values.get("sampler_name"), values.get("scheduler"))
    record.set_param("denoise", as_text(values.get("denoise")))
    record.set_param("model", primary.model)
    record.set_param("clip_skip", as_text(_clip_skip(graph, primary.positive)))
    record.set_param("guidance", as_text(primary.notes.get("guidance")))
    record.set_param("width", as_text(primary.width))
    record.set_param("height", as_text(primary.height))
    if final_id != primary_id and final.upscale:
        upscale = final.upscale
        record.set_param("hires_upscaler", upscale.get("upscaler") or upscale.get("method"))
        record.set_param("hires_upscale", as_text(upscale.get("scale")))
        record.set_param("hires_width", as_text(upscale.get("width")))
        record.set_param("hires_height", as_text(upscale.get("height")))
        record.set_param("hires_steps", as_text(final.values.get("steps")))
        record.set_param("hires_denoise", as_text(final.values.get("denoise")))
        record.set_param("hires_sampler", as_text(final.values.get("sampler_name")))
    after = _output_upscale(graph, samplers)
    record.set_param("upscaler", after.get("upscaler") or after.get("method"))
    # An upscale node's own factor first; ComfyRoll's aspect-ratio node states one too.
    factor = after.get("scale", primary.notes.get("upscale_factor"))
    record.set_param("upscale_factor", as_text(factor))
    if primary.notes.get("init_image"):
        record.extra["init_image"] = primary.notes["init_image"]
    record.extra["primary_sampler"] = primary_id
    others = [_summary(s) for node, s in samplers.items() if node != primary_id]
    if others:
        record.extra["samplers"] = others
    if len(primary.positive) > 1 or any(t.area for t in primary.positive):
        record.extra["positive_prompts"] = _prompt_list(primary.positive)
    if len(primary.negative) > 1:
        record.extra["negative_prompts"] = _prompt_list(primary.negative)


def _workflow_only(text: str) -> Record | None:
    """A record for a UI workflow without the API graph: only the checkpoint names are cheap
    to take (from the loaders' widget values)."""
    data = load_json(text)
    if not isinstance(data, dict) or not isinstance(data.get("nodes"), list):
        return None
    record = Record(generator="comfyui", raw={"workflow": text}, warnings=["workflow only"])
    for node in data["nodes"]:
        if not isinstance(node, dict) or "checkpointloader" not in str(node.get("type")).lower():
            continue
        widgets = node.get("widgets_values")
        for value in widgets if isinstance(widgets, list) else []:
            if isinstance(value, str) and value.lower().endswith(MODEL_EXTENSIONS):
                record.resources.append(Resource("checkpoint", value, source=str(node["type"])))
                record.params.setdefault("model", value)
    return record


def parse(fields: Mapping[str, str]) -> Record | None:
    """ComfyUI ``prompt`` (API graph) -> record; a ``workflow`` without ``prompt`` gives a
    record warned "workflow only"; ``None`` when neither is a ComfyUI graph."""
    prompt_text = fields.get("prompt")
    graph = load_graph(prompt_text) if prompt_text else None
    if graph is None:
        workflow = fields.get("workflow")
        return _workflow_only(workflow) if workflow and not prompt_text else None
    record = Record(generator="comfyui", raw={"prompt": prompt_text or ""})
    for key in ("workflow", "parameters"):
        if fields.get(key):
            record.raw[key] = fields[key]
    try:
        _fill(record, graph)
    except (TypeError, ValueError, AttributeError, KeyError, RecursionError) as exc:
        # A custom node shaped in a way nobody foresaw must not stop a whole run.
        record.warnings.append(f"graph only partly read: {type(exc).__name__}: {exc}")
    return record


PARSER = ParserInfo(
    name="comfyui",
    label="ComfyUI",
    containers="PNG tEXt `prompt` (+ `workflow` kept raw)",
    parse=parse,
    source_fields=frozenset({"prompt", "workflow"}),
)


def comfy_graph_record(prompt: str | None, workflow: str | None = None) -> Record | None:
    """This parser's record for a graph found outside the PNG ``prompt`` chunk (EXIF, Civitai
    JPEGs, TensorArt), or ``None`` when it finds nothing."""
    fields = {key: value for key, value in (("prompt", prompt), ("workflow", workflow)) if value}
    if not fields:
        return None
    return PARSER.parse(fields)
