"""The prompt tokenizer and the resources named inside prompts."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aimeta.metadata.record import Record
from aimeta.metadata.tokens import (
    MAX_TOKENIZED_CHARS,
    MAX_TOKENS_PER_SIDE,
    Token,
    prompt_resources,
    tokenize,
    tokenize_bounded,
)
from aimeta.pipelines.prepare import prompt_tokens


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


def test_unknown_syntax_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown prompt syntax 'sdxl'"):
        tokenize("cat", syntax="sdxl")  # type: ignore[arg-type]


def test_a_record_naming_an_unknown_syntax_is_read_as_a1111() -> None:
    record = Record("a1111", prompt="(cat:1.2), dog", extra={"prompt_syntax": "sdxl"})
    assert [(side, t.t_norm, t.weight) for side, t in prompt_tokens(record)] == [
        ("pos", "cat", 1.2),
        ("pos", "dog", 1.0),
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
        # Any case, and in text that is not ASCII (where a plain lower-case search is not used).
        (
            "EMBEDDING:Loud, Embedding:Mixed",
            [("embedding", "Loud", None, None), ("embedding", "Mixed", None, None)],
        ),
        ("café, embedding:Neg", [("embedding", "Neg", None, None)]),
        ("xembedding:no, embeddings:no, embedding", []),
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
    from aimeta.metadata.tokens import _tokenize_whole

    assert tokenize(prompt, syntax=syntax) == _tokenize_whole(prompt, syntax)  # type: ignore[arg-type]


# Pieces shaped like the ones the fast paths take without the scanner (plain text, one
# emphasis group around plain text), and their near misses: unbalanced or crossed brackets,
# weights where they are no weights, BREAK/AND, compel's "-", escapes, "embedding:", blanks
# other than spaces, digits float() reads but ASCII does not have.
_BLANKS = st.sampled_from(["", " ", "  ", "\t", "\u3000", "\x1c", "\u00a0", "\n"])
_TEXT = st.lists(
    st.sampled_from(
        [*"ab Z_é日-.07:()+|\\", "BREAK", " AND ", "ANDroid", "embedding:", "Embedding_:", "٣"]
    ),
    max_size=5,
).map("".join)
_NUMBERS = st.sampled_from(["1.2", "0", "-0", ".5", "1.", "+2", "٣.٥", "1" + "0" * 308, "9" * 400])


@st.composite
def _emphasis_piece(draw: st.DrawFn) -> str:
    opener = draw(st.sampled_from("([{"))
    closer = {"(": ")", "[": "]", "{": "}"}[opener]
    if draw(st.integers(0, 9)) == 0:
        closer = draw(st.sampled_from(")]}"))
    opened = draw(st.integers(0, 9))
    closed = opened if draw(st.booleans()) else draw(st.integers(0, 9))
    weight = ""
    if draw(st.booleans()):
        weight = ":" + draw(_BLANKS) + draw(_NUMBERS) + draw(_BLANKS)
    return draw(_BLANKS) + opener * opened + draw(_TEXT) + weight + closer * closed + draw(_BLANKS)


_PIECES_PROMPT = st.lists(st.one_of(_emphasis_piece(), _TEXT), min_size=1, max_size=5).flatmap(
    lambda pieces: st.sampled_from([",", ", ", "\n", "\r\n", " "]).map(lambda sep: sep.join(pieces))
)


@settings(max_examples=600, deadline=None)
@given(prompt=_PIECES_PROMPT, syntax=st.sampled_from(["a1111", "novelai", "compel"]))
def test_fast_paths_equal_the_scanner_on_emphasis_shaped_pieces(prompt: str, syntax: str) -> None:
    from aimeta.metadata.tokens import _tokenize_whole, clear_caches

    clear_caches()  # every piece a miss: the fast paths run, not the cache
    assert tokenize(prompt, syntax=syntax) == _tokenize_whole(prompt, syntax)  # type: ignore[arg-type]


_CUT_TEXT = st.lists(
    st.sampled_from([*"ab ,\n\r()[]{}<>\\:", "((", "))", "\\(", "\\,", "\\\\", "<lora:x:1>"]),
    max_size=30,
).map("".join)


@settings(max_examples=600, deadline=None)
@given(prompt=_CUT_TEXT, syntax=st.sampled_from(["a1111", "novelai"]))
def test_quick_cut_equals_the_bracket_walk(prompt: str, syntax: str) -> None:
    from aimeta.metadata.tokens import _cut, _top_level_segments

    assert _cut(prompt, syntax) == _top_level_segments(prompt, syntax)  # type: ignore[arg-type]


def test_cached_tokens_are_not_shared_with_callers() -> None:
    first = tokenize("masterpiece, (red hair:1.2)")
    first.clear()
    again = tokenize("masterpiece, (red hair:1.2)")
    assert again == [
        Token(0, "masterpiece", "masterpiece", 1.0),
        Token(1, "(red hair:1.2)", "red hair", 1.2),
    ]
    assert again is not tokenize("masterpiece, (red hair:1.2)")


def test_token_keeps_its_fields_and_constructor() -> None:
    token = Token(3, "(a:1.2)", "a", 1.2)
    assert (token.position, token.t_raw, token.t_norm, token.weight) == (3, "(a:1.2)", "a", 1.2)
    assert Token(0, "a", "a").weight == 1.0
    assert Token(position=0, t_raw="a", t_norm="a") == Token(0, "a", "a", 1.0)
    with pytest.raises(AttributeError):
        token.weight = 2.0  # type: ignore[misc]


def test_a_full_piece_cache_forgets_and_stays_correct(monkeypatch: pytest.MonkeyPatch) -> None:
    from aimeta.metadata import tokens

    monkeypatch.setattr(tokens, "_PIECE_CACHE_SIZE", 4)
    tokens.clear_caches()
    prompt = ", ".join(f"tag{i}, (w{i}:1.{i})" for i in range(10))
    assert tokenize(prompt) == tokens._tokenize_whole(prompt, "a1111")
    assert len(tokens._PIECES["a1111"]) <= 4
    tokens.clear_caches()


def test_tokenize_bounded_cuts_by_tokens_and_by_characters() -> None:
    short = ", ".join(f"w{index}" for index in range(10))
    assert tokenize_bounded(short) == (tokenize(short), False)
    many = ", ".join(f"w{index}" for index in range(MAX_TOKENS_PER_SIDE + 1))
    tokens, cut = tokenize_bounded(many)
    assert cut and len(tokens) == MAX_TOKENS_PER_SIDE and tokens[-1].t_norm == "w999"
    # Long tokens: the text is cut at MAX_TOKENIZED_CHARS and the token cut there is dropped,
    # so the tokens are those ended by a comma before the cut.
    word = "x" * 199
    wide = ", ".join(f"{word}{index}" for index in range(500))  # 100,900 characters
    tokens, cut = tokenize_bounded(wide)
    assert cut and len(tokens) == wide[:MAX_TOKENIZED_CHARS].count(",")
    assert all(t.t_raw == f"{word}{t.position}" for t in tokens)
