"""The prompt tokenizer and the resources named inside prompts."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aimeta.tokens import Token, prompt_resources, tokenize


def summary(prompt: str, syntax: str = "a1111") -> list[tuple[str, str, float]]:
    return [(t.t_raw, t.t_norm, t.weight) for t in tokenize(prompt, syntax=syntax)]  # type: ignore[arg-type]


def test_commas_newlines_and_positions() -> None:
    tokens = tokenize("a cat,  sitting_on   a MAT\nsun")
    assert tokens == [
        Token(0, "a cat", "a cat", 1.0),
        Token(1, "sitting_on   a MAT", "sitting on a mat", 1.0),
        Token(2, "sun", "sun", 1.0),
    ]


def test_non_ascii_text_is_kept() -> None:
    assert summary("café, 日本語") == [("café", "café", 1.0), ("日本語", "日本語", 1.0)]


def test_attention_weights() -> None:
    assert summary("(red car:1.3), ((masterpiece)), [[bad]], (sky)") == [
        ("(red car:1.3)", "red car", 1.3),
        ("((masterpiece))", "masterpiece", 1.21),
        ("[[bad]]", "bad", 0.8264),
        ("(sky)", "sky", 1.1),
    ]


def test_nested_explicit_weight_multiplies() -> None:
    assert summary("((cat:1.5))") == [("((cat:1.5))", "cat", 1.65)]


def test_groups_split_tokens_without_commas() -> None:
    prompt = "(masterpiece) (best quality) beautiful landscape (sky) national park"
    assert [t.t_norm for t in tokenize(prompt)] == [
        "masterpiece",
        "best quality",
        "beautiful landscape",
        "sky",
        "national park",
    ]


def test_escaped_brackets_are_literal() -> None:
    assert summary(r"\(artist\) name, a \[b\]") == [
        (r"\(artist\) name", "(artist) name", 1.0),
        (r"a \[b\]", "a [b]", 1.0),
    ]


def test_break_and_and_separate_but_are_not_tokens() -> None:
    assert [t.t_norm for t in tokenize("cat BREAK dog AND bird, BREAKfast, ANDroid")] == [
        "cat",
        "dog",
        "bird",
        "breakfast",
        "android",
    ]


def test_extra_network_tags_are_not_tokens() -> None:
    prompt = "photo, <lora:detailTweaker:0.8> <hypernet:h:0.5>, sharp"
    assert [t.t_norm for t in tokenize(prompt)] == ["photo", "sharp"]


def test_prompt_editing_and_alternation_keep_every_alternative() -> None:
    assert summary("[cat:dog:0.5], [red|blue] car, [gone::3], ([a:b:10]:1.2)") == [
        ("cat", "cat", 1.0),
        ("dog", "dog", 1.0),
        ("red", "red", 1.0),
        ("blue", "blue", 1.0),
        ("car", "car", 1.0),
        ("[gone::3]", "gone", 1.0),
        ("a", "a", 1.2),
        ("b", "b", 1.2),
    ]


def test_group_holding_several_tokens_gives_each_its_weight() -> None:
    assert summary("(a, b:1.2)") == [("a", "a", 1.2), ("b", "b", 1.2)]


def test_unbalanced_brackets_follow_a1111() -> None:
    # An unclosed bracket weights the rest; a stray closer is dropped.
    assert summary("cat (dog, bird") == [
        ("cat", "cat", 1.0),
        ("dog", "dog", 1.1),
        ("bird", "bird", 1.1),
    ]
    assert summary("cat), dog]") == [("cat", "cat", 1.0), ("dog", "dog", 1.0)]


def test_compel_syntax() -> None:
    prompt = "grainy+, compressed jpg+, noisy++, (a cat)1.3, (b c)--, t-shirt, blurry-"
    assert summary(prompt, "compel") == [
        ("grainy+", "grainy", 1.1),
        ("compressed jpg+", "compressed jpg", 1.1),
        ("noisy++", "noisy", 1.21),
        ("(a cat)1.3", "a cat", 1.3),
        ("(b c)--", "b c", 0.81),
        ("t-shirt", "t-shirt", 1.0),
        ("blurry-", "blurry", 0.9),
    ]


def test_novelai_syntax() -> None:
    prompt = "{{masterpiece}}, [bad], 1.2::cat ears::, -0.8::dog::, (paren)"
    assert summary(prompt, "novelai") == [
        ("{{masterpiece}}", "masterpiece", 1.1025),
        ("[bad]", "bad", 0.9524),
        ("1.2::cat ears::", "cat ears", 1.2),
        ("-0.8::dog::", "dog", -0.8),
        ("(paren)", "(paren)", 1.0),
    ]


def test_comfyui_embedding_syntax() -> None:
    assert summary("embedding:EasyNegative, (embedding:bad_hands:1.2)") == [
        ("embedding:EasyNegative", "easynegative", 1.0),
        ("(embedding:bad_hands:1.2)", "bad hands", 1.2),
    ]


def test_deep_nesting_stays_bounded() -> None:
    prompt = "(" * 5000 + "cat" + ")" * 5000
    tokens = tokenize(prompt)
    assert [t.t_norm for t in tokens] == ["cat"]
    assert tokenize("[" * 3000 + "x") != []


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("<lora:detailTweaker:0.8>", [("lora", "detailTweaker", 0.8, None)]),
        ("<lora:style>", [("lora", "style", 1.0, None)]),
        ("<lora:two:0.5:0.7>", [("lora", "two", 0.7, 0.5)]),
        ("<lora:named:te=0.4:unet=0.9>", [("lora", "named", 0.9, 0.4)]),
        ("<lyco:ly:0.6>, <locon:lc>", [("lora", "ly", 0.6, None), ("lora", "lc", 1.0, None)]),
        ("<hypernet:anime:0.3>", [("hypernetwork", "anime", 0.3, None)]),
        (
            "embedding:EasyNegative.pt, (embedding:bad_hands:1.2)",
            [
                ("embedding", "EasyNegative.pt", None, None),
                ("embedding", "bad_hands", None, None),
            ],
        ),
        ("<lora::0.5> <unknown:thing:1>", []),
    ],
)
def test_prompt_resources(
    prompt: str, expected: list[tuple[str, str, float | None, float | None]]
) -> None:
    found = prompt_resources(prompt)
    assert [(r.kind, r.name, r.weight, r.weight_clip) for r in found] == expected
    assert all(r.source == "prompt" for r in found)


@settings(max_examples=300, deadline=None)
@given(st.text(), st.sampled_from(["a1111", "novelai", "compel"]))
def test_tokenize_never_raises(prompt: str, syntax: str) -> None:
    tokens = tokenize(prompt, syntax=syntax)  # type: ignore[arg-type]
    assert [t.position for t in tokens] == list(range(len(tokens)))
    assert all(t.t_norm and t.t_norm == t.t_norm.strip() for t in tokens)
    prompt_resources(prompt)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="()[]{}:|\\<>,.+-1a_ BREAKAND:lora0.5", max_size=80))
def test_syntax_heavy_text_never_raises(prompt: str) -> None:
    for syntax in ("a1111", "novelai", "compel"):
        for token in tokenize(prompt, syntax=syntax):  # type: ignore[arg-type]
            assert token.t_raw


# The fast path (cut at top-level commas, cache per piece) must give exactly what the
# character-level tokenizer gives over the whole prompt.
_SYNTAX_HEAVY = st.lists(
    st.sampled_from([*"ab c,\n\r()[]{}<>:|\\+-.0123456789_", " BREAK ", " AND ", "::"]),
    max_size=40,
).map("".join)


@settings(max_examples=400, deadline=None)
@given(prompt=_SYNTAX_HEAVY, syntax=st.sampled_from(["a1111", "novelai", "compel"]))
def test_cut_and_cached_tokenizing_equals_whole_prompt_tokenizing(prompt: str, syntax: str) -> None:
    from aimeta.tokens import _tokenize_whole

    assert tokenize(prompt, syntax=syntax) == _tokenize_whole(prompt, syntax)  # type: ignore[arg-type]
