"""Civitai references: AIR parsing, type mapping, resource lists and record.extra keys."""

from __future__ import annotations

import pytest

from aimeta.metadata.civitai.refs import (
    Air,
    kind_from_civitai_type,
    parse_air,
    resource_from_air,
    resources_from_civitai,
    resources_from_extra,
    version_id_of_ref,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "urn:air:sdxl:lora:civitai:12345@67890",
            Air("sdxl", "lora", "civitai", 12345, 67890),
        ),
        (
            "air:sd1:checkpoint:civitai:4201@130072",
            Air("sd1", "checkpoint", "civitai", 4201, 130072),
        ),
        ("sdxl:lycoris:civitai:55@66", Air("sdxl", "lycoris", "civitai", 55, 66)),
        ("civitai:12345@67890", Air(None, None, "civitai", 12345, 67890)),
        (
            "urn:air:flux1:lora:civitai:9@10.safetensors",
            Air("flux1", "lora", "civitai", 9, 10, None, "safetensors"),
        ),
        (
            "urn:air:sdxl:vae:huggingface:stabilityai/sdxl-vae",
            Air("sdxl", "vae", "huggingface", "stabilityai/sdxl-vae", None),
        ),
        ("URN:AIR:SDXL:LORA:CIVITAI:1@2", Air("sdxl", "lora", "civitai", 1, 2)),
    ],
)
def test_parse_air_reads_every_variant(text: str, expected: Air) -> None:
    assert parse_air(text) == expected


@pytest.mark.parametrize(
    "text", ["", "masterpiece, best quality", "lora:detail", "C:\\models\\x.safetensors", "a:b:c"]
)
def test_parse_air_refuses_text_that_is_no_air(text: str) -> None:
    assert parse_air(text) is None


@pytest.mark.parametrize(
    ("civitai_type", "kind"),
    [
        ("Checkpoint", "checkpoint"),
        ("LORA", "lora"),
        ("LoCon", "lora"),
        ("LyCORIS", "lora"),
        ("DoRA", "lora"),
        ("TextualInversion", "embedding"),
        ("embed", "embedding"),
        ("Hypernetwork", "hypernetwork"),
        ("VAE", "vae"),
        ("Upscaler", "upscaler"),
        ("Controlnet", "controlnet"),
        ("Workflows", None),
        ("Wildcards", None),
        ("somethingNew", None),
    ],
)
def test_civitai_types_map_onto_our_kinds(civitai_type: str, kind: str | None) -> None:
    assert kind_from_civitai_type(civitai_type) == kind


def test_a1111_civitai_resources_become_placeholders_with_declared_kind() -> None:
    text = (
        '[{"type":"checkpoint","modelVersionId":290640,"modelName":"Pony Diffusion V6 XL",'
        '"modelVersionName":"V6"},'
        '{"type":"lora","weight":0.8,"modelVersionId":123,"modelName":"Detail","modelVersionName":"v1"},'
        '{"type":"embed","weight":1,"modelVersionId":"456"}]'
    )
    found = resources_from_civitai(text)
    assert [(r.kind, r.name, r.weight) for r in found] == [
        ("resource_ref", "modelVersionId:290640", None),
        ("resource_ref", "modelVersionId:123", 0.8),
        ("resource_ref", "modelVersionId:456", 1.0),
    ]
    assert found[0].extra == {
        "model_version_id": 290640,
        "declared_type": "checkpoint",
        "declared_kind": "checkpoint",
        "model_name": "Pony Diffusion V6 XL",
        "version_name": "V6",
    }
    assert found[2].extra["declared_kind"] == "embedding"
    assert {r.source for r in found} == {"Civitai resources"}


def test_air_form_keeps_ids_strength_and_type() -> None:
    found = resources_from_civitai(
        [{"air": "urn:air:sdxl:lora:civitai:12345@67890", "strength": 0.65}],
        source="extraMetadata.resources",
    )
    assert len(found) == 1
    ref = found[0]
    assert (ref.kind, ref.name, ref.weight, ref.source) == (
        "resource_ref",
        "modelVersionId:67890",
        0.65,
        "extraMetadata.resources",
    )
    assert ref.extra["model_id"] == 12345
    assert ref.extra["declared_kind"] == "lora"
    assert ref.extra["ecosystem"] == "sdxl"
    assert ref.extra["air"] == "urn:air:sdxl:lora:civitai:12345@67890"


def test_air_from_another_source_is_a_placeholder_named_by_the_air() -> None:
    ref = resource_from_air("urn:air:sdxl:vae:huggingface:stabilityai/sdxl-vae", source="x")
    assert ref is not None
    assert (ref.kind, ref.name) == (
        "resource_ref",
        "urn:air:sdxl:vae:huggingface:stabilityai/sdxl-vae",
    )
    assert ref.extra["declared_kind"] == "vae"
    assert ref.extra["air_source"] == "huggingface"


def test_old_export_with_name_and_hash_becomes_a_real_resource() -> None:
    found = resources_from_civitai(
        [{"type": "lora", "modelName": "add_detail", "hash": "ABCDEF123456", "weight": "0.5"}]
    )
    assert [(r.kind, r.name, r.weight, r.hash) for r in found] == [
        ("lora", "add_detail", 0.5, "ABCDEF123456")
    ]


@pytest.mark.parametrize(
    "items",
    [None, 5, "not json", "{", [1, None, {"type": "lora"}, {"modelVersionId": -3}], {"x": 1}],
)
def test_unusable_lists_give_nothing_and_never_raise(items: object) -> None:
    assert resources_from_civitai(items) == []


def test_resources_from_extra_reads_every_key() -> None:
    extra = {
        "civitai_resources": [{"type": "lora", "weight": 0.8, "modelVersionId": 1}],
        "civitai_airs": ["urn:air:sdxl:checkpoint:civitai:10@20", "garbage"],
        "civitai_extra_metadata": {"resources": [{"modelVersionId": 30, "strength": 1.2}]},
        "civitai_metadata": '{"resources": [{"modelVersionId": 40}]}',
        "unrelated": {"resources": [{"modelVersionId": 99}]},
    }
    names = [(r.name, r.source) for r in resources_from_extra(extra)]
    assert names == [
        ("modelVersionId:1", "Civitai resources"),
        ("modelVersionId:20", "Civitai AIRs"),
        ("modelVersionId:30", "extraMetadata.resources"),
        ("modelVersionId:40", "Civitai metadata"),
    ]


def test_resources_from_extra_without_civitai_keys_is_empty() -> None:
    assert resources_from_extra({"comfy_nodes": 3}) == []


def test_version_id_of_ref() -> None:
    assert version_id_of_ref("modelVersionId:67890") == 67890
    assert version_id_of_ref("modelVersionId:x") is None
    assert version_id_of_ref("detailTweaker") is None


def test_air_named_loaders_become_the_same_placeholder_as_the_resource_list() -> None:
    from aimeta.metadata.civitai.refs import with_civitai_references
    from aimeta.metadata.record import Resource
    from aimeta.metadata.resources import merge_resources

    loaders = [
        Resource("lora", "urn:air:sdxl:lora:civitai:12345@67890", weight=0.7, source="LoraLoader"),
        Resource("checkpoint", "sd_xl_base_1.0.safetensors", source="CheckpointLoaderSimple"),
    ]
    extra = {"civitai_resources": [{"modelVersionId": 67890, "strength": 0.7}]}
    merged = merge_resources(with_civitai_references(loaders, extra))
    assert [(r.kind, r.name, r.weight) for r in merged] == [
        ("resource_ref", "modelVersionId:67890", 0.7),
        ("checkpoint", "sd_xl_base_1.0", None),
    ]
    assert merged[0].extra["declared_kind"] == "lora"
    assert merged[0].source == "LoraLoader, Civitai resources"


def test_any_airs_list_in_extra_is_read() -> None:
    extra = {
        "lora_airs": ["urn:air:sd1:lora:civitai:1@2", {"not": "a string"}],
        "checkpoint_airs": "urn:air:sd1:checkpoint:civitai:3@4",  # not a list: ignored
    }
    assert [(r.name, r.extra["declared_kind"]) for r in resources_from_extra(extra)] == [
        ("modelVersionId:2", "lora")
    ]
