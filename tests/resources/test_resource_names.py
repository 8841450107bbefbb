"""Resource names, kinds, hash types and merging."""

from __future__ import annotations

import pytest

from aimeta.metadata.record import Resource
from aimeta.metadata.resources import (
    hash_only_name,
    hash_type,
    merge_resources,
    normalize_hash,
    normalize_kind,
    normalize_name,
)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("loras\\sd15\\detail.safetensors", "detail"),
        ("models/Stable-diffusion/v1-5-pruned-emaonly.ckpt", "v1-5-pruned-emaonly"),
        ("  easynegative.pt ", "easynegative"),
        ("4x-UltraSharp", "4x-UltraSharp"),
        (".safetensors", ".safetensors"),
    ],
)
def test_normalize_name(name: str, expected: str) -> None:
    assert normalize_name(name) == expected


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("LyCORIS", "lora"),
        ("LoCon", "lora"),
        ("lokr", "lora"),
        ("Textual Inversion", "embedding"),
        ("embed", "embedding"),
        ("hypernet", "hypernetwork"),
        ("ADetailer", "detailer"),
        ("upscale_model", "upscaler"),
        ("IP-Adapter", "ipadapter"),
        ("poses", None),
    ],
)
def test_normalize_kind(kind: str, expected: str | None) -> None:
    assert normalize_kind(kind) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1d44365e", "autov1"),
        ("c0d1994c73", "autov2"),
        ("3e8f8a3a5f8c", "autov3"),
        ("56d1442a0feefd64836a19ac8e3527ec71c884fc962e246ddf67b03e42921272", "sha256"),
        ("sha256:56d1442a0feefd64836a19ac8e3527ec71c884fc962e246ddf67b03e42921272", "sha256"),
        ("blake3:9a5d1a6e", "blake3"),
        ("0x" + "ab" * 32, "swarmui_sha256"),
        ("abcdef", "hex"),
        ("not a hash", None),
    ],
)
def test_hash_type_by_shape(value: str, expected: str | None) -> None:
    assert hash_type(value) == expected


def test_normalize_hash_drops_prefixes_but_keeps_blake3() -> None:
    assert normalize_hash("0xABCD") == "abcd"
    assert normalize_hash("SHA256:ABCD") == "abcd"
    assert normalize_hash("blake3:ABCD") == "blake3:abcd"


def test_hash_only_names() -> None:
    assert hash_only_name("C0D1994C73") == "hash:c0d1994c73"


def test_one_lora_from_prompt_lora_hashes_and_hashes_is_one_row() -> None:
    merged = merge_resources(
        [
            Resource("lora", "detailTweaker", weight=0.8, source="prompt"),
            Resource("lora", "detailTweaker", hash="AB12CD34EF56", source="Lora hashes"),
            Resource(
                "LyCORIS", "loras/detailTweaker.safetensors", hash="ab12cd34ef56", source="Hashes"
            ),
        ]
    )
    assert len(merged) == 1
    row = merged[0]
    assert (row.kind, row.name, row.weight, row.hash, row.hash_type) == (
        "lora",
        "detailTweaker",
        0.8,
        "ab12cd34ef56",
        "autov3",
    )
    assert row.source == "prompt, Lora hashes, Hashes"
    assert row.extra["original_names"] == ["loras/detailTweaker.safetensors"]
    assert "other_hashes" not in row.extra


def test_a_different_hash_for_the_same_name_is_kept_aside() -> None:
    merged = merge_resources(
        [
            Resource("checkpoint", "sdxl", hash="aaaaaaaaaa"),
            Resource("checkpoint", "SDXL.safetensors", hash="bbbbbbbbbb"),
        ]
    )
    assert len(merged) == 1
    assert merged[0].hash == "aaaaaaaaaa"
    assert merged[0].extra["other_hashes"] == ["bbbbbbbbbb"]


def test_empty_names_are_dropped() -> None:
    assert merge_resources([Resource("lora", "  "), Resource("vae", "")]) == []
