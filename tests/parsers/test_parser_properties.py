"""Every registered parser takes arbitrary text and arbitrary JSON without raising."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aimeta.metadata.parsers import parse_fields, registry, supported_formats_markdown
from aimeta.metadata.record import Record

# Field names the parsers read, so generated input reaches their code paths.
FIELD_NAMES = [
    "parameters",
    "prompt",
    "workflow",
    "dream",
    "sd-metadata",
    "invokeai_metadata",
    "invokeai_graph",
    "generation_data",
    "fooocus_scheme",
    "makernoteunknowntext",
    "title",
    "description",
    "software",
    "source",
    "comment",
    "usercomment",
    "make",
    "model",
    "imagedescription",
    "stealth_png_info",
    "use_stable_diffusion_model",
    "xmp:usercomment",
    "xmp:creatortool",
]
# Keys the JSON formats use, mixed into generated objects.
JSON_KEYS = [
    "sui_image_params",
    "sui_models",
    "prompt",
    "negativeprompt",
    "loras",
    "loraweights",
    "seed",
    "model",
    "image",
    "v4_prompt",
    "caption",
    "char_captions",
    "centers",
    "extra",
    "airs",
    "extraMetadata",
    "resources",
    "class_type",
    "inputs",
    "c",
    "lora",
    "software",
    "Software",
    "Comment",
    "metadata_scheme",
    "resolution",
    "baseModel",
    "use_stable_diffusion_model",
    "use_lora_model",
    "lora_alpha",
    "ipAdapters",
    "vae",
    "width",
    "height",
]

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=30)
    | st.sampled_from(["RuinedFooocus", "NovelAI", "fooocus", "Draw Things", "(512, 768)"])
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(JSON_KEYS) | st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=25,
)
field_texts = (
    st.text(max_size=200)
    | json_values.map(json.dumps)
    | st.builds(
        lambda prefix, value: prefix + json.dumps(value),
        st.sampled_from(["prompt:", "workflow:", "Prompt: ", "Workflow: ", "\x00\x00"]),
        json_values,
    )
)
field_dicts = st.dictionaries(st.sampled_from(FIELD_NAMES), field_texts, max_size=6)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fields=field_dicts)
def test_every_parser_takes_arbitrary_fields(fields: dict[str, str]) -> None:
    for parser in registry():
        result: Any = parser.parse(fields)
        assert result is None or isinstance(result, Record), parser.name
    assert isinstance(parse_fields(fields), Record)


def test_supported_formats_table_lists_every_parser() -> None:
    table = supported_formats_markdown()
    rows = table.splitlines()
    assert rows[0].startswith("| Generator |")
    assert len(rows) == 2 + len(registry())
    for parser in registry():
        assert f"| {parser.label} | `{parser.name}` |" in table


# --- source_fields: parse_fields skips a parser when none of its fields is present ---------

_GRAPH = {
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "m.safetensors"}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["4", 1], "text": "a cat"}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512}},
    "3": {
        "class_type": "KSampler",
        "inputs": {"model": ["4", 0], "positive": ["6", 0], "negative": ["6", 0]}
        | {"latent_image": ["5", 0], "seed": 1, "steps": 20},
    },
    "9": {"class_type": "SaveImage", "inputs": {"images": ["3", 0]}},
}
_INFOTEXT = "a cat\nNegative prompt: dog\nSteps: 20, Sampler: Euler a, Seed: 1, Size: 512x512"
# One document of every format (and the marker values some formats look for), to put under
# fields that are not a parser's own.
DOCUMENTS = [
    _INFOTEXT,
    _INFOTEXT + ", Version: Fooocus v2.5.0",
    json.dumps(_GRAPH),
    "prompt:" + json.dumps(_GRAPH),
    "Workflow: " + json.dumps({"nodes": []}),
    json.dumps({"prompt": _GRAPH, "workflow": {"nodes": []}}),
    json.dumps({**_GRAPH, "extra": {"airs": ["urn:air:sd1:checkpoint:civitai:1@2"]}}),
    json.dumps({"nodes": [{"type": "CheckpointLoaderSimple", "widgets_values": ["m.ckpt"]}]}),
    json.dumps({"sui_image_params": {"prompt": "a cat", "seed": 1}}),
    json.dumps({"prompt": "a cat", "uc": "dog", "noise_schedule": "karras", "steps": 20}),
    json.dumps({"Software": "NovelAI", "Comment": json.dumps({"prompt": "a cat"})}),
    json.dumps({"positive_prompt": "a cat", "model": {"name": "m"}}),
    json.dumps({"model_weights": "m", "image": {"prompt": "a cat", "steps": 20}}),
    '"a cat [dog]" -s 20 -S 1 -W 512 -H 512',
    json.dumps({"prompt": "a cat", "metadata_scheme": "fooocus", "version": "Fooocus v2"}),
    json.dumps({"software": "RuinedFooocus", "Prompt": "a cat"}),
    json.dumps({"use_stable_diffusion_model": "m", "prompt": "a cat"}),
    json.dumps({"c": "a cat", "scale": 5, "seed": 1}),
    json.dumps({"prompt": "a cat", "baseModel": {"modelFileName": "m"}}),
    json.dumps({"prompt": "a cat", "num_inference_steps": 20, "guidance_scale": 7}),
    "a cat\nnegative_prompt: a dog\nsteps: 20\nseed: 1",
    "NovelAI",
    "Draw Things",
    "Fooocus v2.5.0",
    "fooocus",
    "a1111",
    "m.safetensors",
]
ALL_FIELD_NAMES = sorted(
    set(FIELD_NAMES).union(*(parser.source_fields or () for parser in registry()))
)


def _declaring_parsers() -> list[Any]:
    return [parser for parser in registry() if parser.source_fields is not None]


def test_every_format_is_found_in_one_of_its_source_fields() -> None:
    """The documents are real enough for the test below to mean something."""
    for parser in _declaring_parsers():
        assert any(
            parser.parse({name: document}) is not None
            for name in sorted(parser.source_fields)
            for document in DOCUMENTS
        ), parser.name


def test_no_format_is_found_outside_its_source_fields() -> None:
    for parser in _declaring_parsers():
        for name in ALL_FIELD_NAMES:
            if name not in parser.source_fields:
                for document in DOCUMENTS:
                    assert parser.parse({name: document}) is None, (parser.name, name, document)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_no_format_is_found_outside_its_source_fields_in_any_mix(data: st.DataObject) -> None:
    for parser in _declaring_parsers():
        others = [name for name in ALL_FIELD_NAMES if name not in parser.source_fields]
        texts = field_texts | st.sampled_from(DOCUMENTS)
        fields = data.draw(st.dictionaries(st.sampled_from(others), texts, max_size=6))
        assert parser.parse(fields) is None, parser.name
