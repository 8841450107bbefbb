"""parse_fields decodes a long JSON text once and hands the value to every format that looks
at it; the records are the same as when each format decodes it anew."""

from __future__ import annotations

import json
from typing import Any

import pytest

from aimeta.metadata.parsers import _values, parse_fields

GRAPH: dict[str, Any] = {
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "m.safetensors"}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["4", 1], "text": "a cat " * 300}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["4", 1], "text": "blurry"}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 768}},
    "3": {
        "class_type": "KSampler",
        "inputs": {"model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0]}
        | {"latent_image": ["5", 0], "seed": 2**70, "steps": 20, "cfg": 7.0},
    },
    "9": {"class_type": "SaveImage", "inputs": {"images": ["3", 0]}},
}
WORKFLOW = {"nodes": [{"id": n, "type": "Note", "widgets_values": ["x" * 50]} for n in range(60)]}
FIELDS = [
    # SaveImagePlus: the graph and workflow as one JSON object in a WebP's UserComment.
    {"usercomment": json.dumps({"prompt": GRAPH, "workflow": WORKFLOW})},
    {"usercomment": json.dumps({"prompt": json.dumps(GRAPH), "workflow": WORKFLOW})},
    # Civitai: the graph with its AIRs and the request.
    {
        "usercomment": json.dumps(
            {
                **GRAPH,
                "extra": {"airs": ["urn:air:sd1:checkpoint:civitai:1@2"]},
                "extraMetadata": json.dumps({"prompt": "a cat", "steps": 20}),
            }
        )
    },
    # Core ComfyUI WebP save: graph and workflow in IFD0 Model and Make.
    {"model": "prompt:" + json.dumps(GRAPH), "make": "workflow:" + json.dumps(WORKFLOW)},
    # SwarmUI parameters next to its ComfyUI graph.
    {
        "parameters": json.dumps({"sui_image_params": {"prompt": "a cat " * 400, "seed": 1}}),
        "prompt": json.dumps(GRAPH),
    },
]


@pytest.mark.parametrize("fields", FIELDS)
def test_records_are_the_same_without_sharing(
    fields: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = parse_fields(fields)
    monkeypatch.setattr(_values, "_SHARE_MIN_CHARS", 1 << 60)
    assert parse_fields(fields) == shared
    assert shared.generator != "none"


@pytest.mark.parametrize("fields", FIELDS)
def test_no_format_changes_the_values_it_is_handed(
    fields: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    memos: list[dict[str, tuple[Any, int]]] = []
    real_set = _values.SHARED_JSON.set

    class Recording:
        def set(self, value: dict[str, tuple[Any, int]]) -> Any:
            memos.append(value)
            return real_set(value)

        def reset(self, token: Any) -> None:
            _values.SHARED_JSON.reset(token)

    monkeypatch.setattr("aimeta.metadata.parsers.SHARED_JSON", Recording())
    parse_fields(fields)
    [memo] = memos
    assert memo, "nothing was shared"
    for text, (value, _depth) in memo.items():
        assert value == json.loads(text)


def test_a_value_is_reused_only_as_deep_as_it_was_decoded() -> None:
    """JSON nested nearly as deeply as the recursion limit decodes in a shallow caller but not
    in a deeper one: a deeper caller decodes afresh, as it would without sharing."""
    text = json.dumps({"a": [1]})
    shallow: dict[str, tuple[Any, int]] = {text: ("decoded higher up", 0)}
    assert _values._decode_shared(text, shallow) == {"a": [1]}
    deep: dict[str, tuple[Any, int]] = {text: ("decoded further down", 1 << 30)}
    assert _values._decode_shared(text, deep) == "decoded further down"


def test_a_syntax_error_is_remembered_at_any_depth() -> None:
    shared: dict[str, tuple[Any, int]] = {}
    assert _values._decode_shared("{" + " " * 3000, shared) is None
    assert _values._decode_shared("{" + " " * 3000, shared) is None
    assert list(shared.values()) == [(None, _values._SYNTAX_ERROR)]
