"""Every registered parser takes arbitrary text and arbitrary JSON without raising."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aimeta.parsers import parse_fields, registry, supported_formats_markdown
from aimeta.record import Record

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
