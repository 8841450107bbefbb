"""Prompt tokenizer: split a prompt into weighted tokens, and find the resources it names.

Grammar (``syntax="a1111"``, the default; ComfyUI uses the same emphasis syntax):

* ``(text)`` multiplies the weight by 1.1 per level, ``(text:1.3)`` by 1.3, ``[text]`` divides
  by 1.1; an unclosed bracket applies to the rest of the prompt (as A1111 does), a stray
  closing bracket is dropped. ``\\(`` ``\\)`` ``\\[`` ``\\]`` ``\\\\`` are literal characters.
* Tokens are separated by commas, newlines and the words ``BREAK`` and ``AND``; an emphasis
  group is also a token boundary, so ``(masterpiece) (best quality) landscape`` gives three
  tokens. ``(dog)s`` therefore gives ``dog`` and ``s``: rare, and the price of the rule.
* Prompt editing ``[a:b:0.5]`` / ``[a:0.5]`` / ``[a::0.5]`` and alternation ``[a|b]``: every
  alternative becomes its own token at the surrounding weight (the image saw all of them).
* Extra-network tags ``<lora:...>``, ``<hypernet:...>``, ``<lyco:...>`` (any ``<kind:...>``)
  are removed from the tokens; :func:`prompt_resources` returns them as resources.

``syntax="novelai"``: ``{text}`` ×1.05 and ``[text]`` ÷1.05 per level, parentheses are plain
text, and NovelAI v4 weights ``1.2::text::`` / ``-0.8::text::`` multiply by the number.
``syntax="compel"`` (InvokeAI): ``word+``/``word-`` ×1.1/×0.9 per sign, ``(words)+``,
``(words)1.3``; parentheses alone only group.

A token whose characters carry different weights (``compressed jpg+``) takes the weight
farthest from 1.0, so an emphasis is never lost. ``t_raw`` is the token as written, including
its own brackets when the brackets hold nothing else; ``t_norm`` is lower-case with emphasis
syntax removed, escapes resolved, underscores as spaces and whitespace collapsed.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import math
import re
from dataclasses import dataclass, field
from typing import Literal, NamedTuple, get_args

from aimeta.metadata.record import Resource

Syntax = Literal["a1111", "novelai", "compel"]
SYNTAXES: tuple[Syntax, ...] = get_args(Syntax)


class Token(NamedTuple):
    """One prompt token: its position in the prompt, the text as written, the normalised text
    and its attention weight.

    A named tuple, not a frozen dataclass: a prompt gives dozens of tokens, and a tuple can be
    made without running Python (see _prompt_tokens), where a frozen dataclass's __init__ runs
    four object.__setattr__ calls (twice the time per token).
    """

    position: int
    t_raw: str
    t_norm: str
    weight: float = 1.0


# A1111 extra networks: <kind:args>. The kind is a word; args never contain < or >.
_EXTRA_NETWORK = re.compile(r"<\s*([A-Za-z_][\w-]*)\s*:([^<>]*)>")
# ComfyUI embeddings inside prompt text; the name stops at whitespace, separators and the ":"
# that starts a weight, as ComfyUI's own tokenizer does.
_EMBEDDING = re.compile(r"(?<![\w])embedding:([^\s,()\[\]{}<>:|]+)", re.IGNORECASE)
_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)"
_WEIGHT_SUFFIX = re.compile(rf":\s*({_NUMBER})\s*$")
_EDIT_WHEN = re.compile(rf"\s*{_NUMBER}\s*")
_COMPEL_SUFFIX = re.compile(r"[+-]+|\d*\.?\d+")
_NOVELAI_WEIGHT = re.compile(r"(-?\d+(?:\.\d+)?)::")
_SEPARATOR_WORDS = ("BREAK", "AND")
_BRACKET_OR_ESCAPE = re.compile(r"\\.|[()\[\]{}]", re.DOTALL)
_OPENER = {")": "(", "]": "[", "}": "{"}
_ESCAPABLE = "()[]{}\\"
_MAX_DEPTH = 40  # deeper nesting is treated as plain grouping, which keeps recursion bounded
# Runs of characters with no meaning to the grammar are emitted in one piece (speed). Compel
# has none: its "word+" needs to see word boundaries character by character.
_PLAIN_RUN = {
    "a1111": re.compile(r"[^\\,\n\r()\[\]<BA]+"),
    "novelai": re.compile(r"[^\\,\n\r{}\[\]<BA0-9\-]+"),
}

_LORA_KINDS = {"lora": "lora", "lyco": "lora", "locon": "lora", "lycoris": "lora"}
_NETWORK_KINDS = {**_LORA_KINDS, "hypernet": "hypernetwork", "hypernetwork": "hypernetwork"}


@dataclass(slots=True)
class _Group:
    start: int
    end: int
    parent: int  # -1 for the top level
    chars: int = 0


@dataclass(slots=True)
class _Char:
    text: str
    weight: float
    raw: int
    group: int
    raw_end: int = -1  # end of the characters as written (an escape is two)


_BREAK = None  # marks a token boundary in the event stream


@dataclass(slots=True)
class _Scanner:
    prompt: str
    syntax: Syntax
    events: list[_Char | None] = field(default_factory=list)
    groups: list[_Group] = field(default_factory=list)
    pairs: dict[int, int] = field(default_factory=dict)
    tags: dict[int, int] = field(default_factory=dict)

    def prepare(self) -> None:
        """Find extra-network tags and pair brackets once (O(n)), skipping escapes and tags."""
        for match in _EXTRA_NETWORK.finditer(self.prompt):
            self.tags[match.start()] = match.end()
        tag_starts = sorted(self.tags)
        stacks: dict[str, list[int]] = {"(": [], "[": [], "{": []}
        for match in _BRACKET_OR_ESCAPE.finditer(self.prompt):
            char, pos = match.group(), match.start()
            if len(char) > 1:
                continue  # an escape
            before = bisect.bisect_right(tag_starts, pos) - 1
            if before >= 0 and pos < self.tags[tag_starts[before]]:
                continue  # inside <lora:...>
            if char in stacks:
                stacks[char].append(pos)
            elif stacks[_OPENER[char]]:
                self.pairs[stacks[_OPENER[char]].pop()] = pos

    def emit(self, text: str, weight: float, raw: int, group: int, width: int = 1) -> None:
        self.events.append(_Char(text, weight, raw, group, raw + width))

    def new_group(self, start: int, end: int, parent: int) -> int:
        self.groups.append(_Group(start, end, parent))
        return len(self.groups) - 1

    def close_of(self, index: int, end: int) -> int:
        """Index of the bracket closing the one at ``index`` inside ``end``, or -1."""
        close = self.pairs.get(index, -1)
        return close if close < end else -1

    def top_level(self, start: int, end: int, marks: str) -> list[int]:
        """Positions of ``marks`` characters in [start, end) outside nested brackets."""
        found: list[int] = []
        i = start
        while i < end:
            char = self.prompt[i]
            if char == "\\":
                i += 2
                continue
            if i in self.pairs and self.pairs[i] < end:
                i = self.pairs[i] + 1
                continue
            if char in marks:
                found.append(i)
            i += 1
        return found

    def scan(self, start: int, end: int, weight: float, group: int, depth: int) -> None:
        text, i = self.prompt, start
        while i < end:
            char = text[i]
            if i in self.tags and self.tags[i] <= end:
                self.events.append(_BREAK)
                i = self.tags[i]
            elif char == "\\":
                if i + 1 < end and text[i + 1] in _ESCAPABLE:
                    self.emit(text[i + 1], weight, i, group, width=2)
                    i += 2
                else:
                    self.emit(char, weight, i, group)
                    i += 1
            elif char in ",\n\r":
                self.events.append(_BREAK)
                i += 1
            elif char in "BA" and self._separator_word(i, end):
                self.events.append(_BREAK)
                i += len("BREAK" if char == "B" else "AND")
            else:
                plain = _PLAIN_RUN.get(self.syntax)
                run = plain.match(text, i, end) if plain else None
                if run is not None:
                    self.emit(run.group(), weight, i, group, width=run.end() - i)
                    i = run.end()
                else:
                    i = self.scan_syntax(i, end, weight, group, depth)

    def _separator_word(self, i: int, end: int) -> bool:
        text = self.prompt
        if i > 0 and (text[i - 1].isalnum() or text[i - 1] == "_"):
            return False
        for word in _SEPARATOR_WORDS:
            stop = i + len(word)
            if text.startswith(word, i) and stop <= end:
                return stop == len(text) or not (text[stop].isalnum() or text[stop] == "_")
        return False

    def scan_syntax(self, i: int, end: int, weight: float, group: int, depth: int) -> int:
        """Handle the character at ``i`` (emphasis syntax or plain text); return the next index."""
        char, syntax = self.prompt[i], self.syntax
        if syntax == "novelai":
            if char in "{[":
                factor = 1.05 if char == "{" else 1 / 1.05
                return self.bracket(i, end, weight, factor, group, depth)
            if char in "}]":
                return i + 1
            match = _NOVELAI_WEIGHT.match(self.prompt, i, end)
            if match and (i == 0 or not self.prompt[i - 1].isalnum()):
                return self.novelai_weight(match, end, weight, group, depth)
        elif syntax == "compel":
            if char == "(":
                return self.compel_paren(i, end, weight, group, depth)
            if char == ")":
                return i + 1
            if char in "+-" and self.compel_word(i, end):
                return self.compel_suffix(i, end)
        else:
            if char == "(":
                return self.paren(i, end, weight, group, depth)
            if char == "[":
                return self.square(i, end, weight, group, depth)
            if char in ")]":
                return i + 1
        self.emit(char, weight, i, group)
        return i + 1

    def enter(
        self,
        start: int,
        stop: int,
        inner: tuple[int, int],
        weight: float,
        group: int,
        depth: int,
    ) -> int:
        """Scan the content ``inner`` of a group spanning [start, stop) as its own token run."""
        new = self.new_group(start, stop, group)
        self.events.append(_BREAK)
        if depth < _MAX_DEPTH:
            self.scan(inner[0], inner[1], weight, new, depth + 1)
        else:
            self.scan_flat(inner[0], inner[1], weight, new)
        self.events.append(_BREAK)
        return stop

    def scan_flat(self, start: int, end: int, weight: float, group: int) -> None:
        """Too deeply nested: keep the text, drop the bracket syntax, no more recursion."""
        for i in range(start, end):
            char = self.prompt[i]
            if char in ",\n\r":
                self.events.append(_BREAK)
            elif char not in "()[]{}\\":
                self.emit(char, weight, i, group)

    def bracket(
        self, i: int, end: int, weight: float, factor: float, group: int, depth: int
    ) -> int:
        close = self.close_of(i, end)
        stop = close + 1 if close >= 0 else end
        inner_end = close if close >= 0 else end
        return self.enter(i, stop, (i + 1, inner_end), weight * factor, group, depth)

    def paren(self, i: int, end: int, weight: float, group: int, depth: int) -> int:
        close = self.close_of(i, end)
        inner_end = close if close >= 0 else end
        stop = close + 1 if close >= 0 else end
        factor = 1.1
        match = _WEIGHT_SUFFIX.search(self.prompt, i + 1, inner_end)
        if match and self._colon_is_top_level(i + 1, match.start()):
            factor = _to_float(match.group(1), 1.1)
            inner_end = match.start()
        return self.enter(i, stop, (i + 1, inner_end), weight * factor, group, depth)

    def _colon_is_top_level(self, start: int, colon: int) -> bool:
        return colon in self.top_level(start, colon + 1, ":")

    def square(self, i: int, end: int, weight: float, group: int, depth: int) -> int:
        close = self.close_of(i, end)
        if close < 0:
            return self.bracket(i, end, weight, 1 / 1.1, group, depth)
        bars = self.top_level(i + 1, close, "|")
        colons = self.top_level(i + 1, close, ":")
        if bars:
            bounds = [i, *bars, close]
        elif (
            colons and len(colons) <= 2 and _EDIT_WHEN.fullmatch(self.prompt, colons[-1] + 1, close)
        ):
            bounds = [i, *colons]
        else:
            return self.bracket(i, end, weight, 1 / 1.1, group, depth)
        new = self.new_group(i, close + 1, group)
        for left, right in itertools.pairwise(bounds):
            self.events.append(_BREAK)
            if depth < _MAX_DEPTH:
                self.scan(left + 1, right, weight, new, depth + 1)
            else:
                self.scan_flat(left + 1, right, weight, new)
        self.events.append(_BREAK)
        return close + 1

    def novelai_weight(
        self, match: re.Match[str], end: int, weight: float, group: int, depth: int
    ) -> int:
        content_start = match.end()
        closing = self.prompt.find("::", content_start, end)
        inner_end = closing if closing >= 0 else end
        stop = closing + 2 if closing >= 0 else end
        factor = _to_float(match.group(1), 1.0)
        return self.enter(
            match.start(), stop, (content_start, inner_end), weight * factor, group, depth
        )

    def compel_paren(self, i: int, end: int, weight: float, group: int, depth: int) -> int:
        close = self.close_of(i, end)
        if close < 0:
            return self.enter(i, end, (i + 1, end), weight, group, depth)
        inner_end, factor, stop = close, 1.0, close + 1
        legacy = _WEIGHT_SUFFIX.search(self.prompt, i + 1, close)
        suffix = _COMPEL_SUFFIX.match(self.prompt, close + 1, end)
        if suffix:
            factor, stop = _compel_factor(suffix.group(0)), suffix.end()
        elif legacy and self._colon_is_top_level(i + 1, legacy.start()):
            factor, inner_end = _to_float(legacy.group(1), 1.0), legacy.start()
        return self.enter(i, stop, (i + 1, inner_end), weight * factor, group, depth)

    def compel_word(self, i: int, end: int) -> bool:
        """A ``+``/``-`` run right after a word and before a boundary weights that word."""
        if not self.events or self.events[-1] is None or self.events[-1].text.isspace():
            return False
        if self.events[-1].raw_end != i:
            return False
        stop = i
        while stop < end and self.prompt[stop] in "+-":
            stop += 1
        return stop == end or self.prompt[stop] in " \t,\n\r)"

    def compel_suffix(self, i: int, end: int) -> int:
        stop = i
        while stop < end and self.prompt[stop] in "+-":
            stop += 1
        factor = _compel_factor(self.prompt[i:stop])
        word: list[_Char] = []
        for event in reversed(self.events):
            if event is None or event.text.isspace():
                break
            word.append(event)
        parent = word[0].group
        new = self.new_group(word[-1].raw, stop, parent)
        for char in word:
            char.weight *= factor
            char.group = new
        return stop


def _to_float(text: str, default: float) -> float:
    try:
        number = float(text)
    except ValueError:
        return default
    return number if math.isfinite(number) else default


def _compel_factor(suffix: str) -> float:
    if suffix[0] in "+-":
        return float(1.1 ** suffix.count("+") * 0.9 ** suffix.count("-"))
    return _to_float(suffix, 1.0)


def normalize_text(text: str) -> str:
    """Lower-case, underscores as spaces, whitespace collapsed."""
    return " ".join(text.lower().replace("_", " ").split())


def _token_weight(chars: list[_Char]) -> float:
    weight = max(
        (char.weight for char in chars if not char.text.isspace()),
        key=lambda w: abs(w - 1.0),
        default=1.0,
    )
    return round(weight, 4) if math.isfinite(weight) else 1.0


def _raw_span(scanner: _Scanner, chars: list[_Char]) -> tuple[int, int]:
    """The token's extent in the prompt, widened to groups that hold only this token."""
    start = min(char.raw for char in chars)
    stop = max(char.raw_end for char in chars)
    own: dict[int, int] = {}
    for char in chars:
        group = char.group
        while group >= 0:
            own[group] = own.get(group, 0) + 1
            group = scanner.groups[group].parent
    for group_id, count in own.items():
        owned = scanner.groups[group_id]
        if count == owned.chars:
            start, stop = min(start, owned.start), max(stop, owned.end)
    return start, stop


def tokenize(prompt: str, *, syntax: Syntax = "a1111") -> list[Token]:
    """Split ``prompt`` into weighted tokens (see the module docstring for the grammar).

    Returns tokens numbered from 0 in prompt order; empty tokens are dropped. Never raises for
    any prompt; a ``syntax`` outside SYNTAXES is a ValueError.
    """
    if syntax not in SYNTAXES:
        raise ValueError(f"unknown prompt syntax {syntax!r}; expected one of {SYNTAXES}")
    if not prompt:
        return []
    return list(_prompt_tokens(prompt, syntax))


# Bounds on what one prompt side turns into. A real prompt has tens to a few hundred tokens
# (A1111's longest practical prompts, many BREAK chunks of 75 CLIP tokens, stay below 1,000
# comma-separated pieces), while a hostile 24 MB prompt of 4 million words became 4 million
# token rows and a 366 MB database. Past the bound the tokens are of no use for search or
# statistics anyway; the whole text stays in the image's raw fields and kv.
MAX_TOKENS_PER_SIDE = 1_000
# Only this many characters are tokenized: 1,000 tokens of 64 characters, far more than any
# real prompt, and it keeps tokenizer time and memory bounded for a text of any size.
MAX_TOKENIZED_CHARS = 64_000


def tokenize_bounded(prompt: str, *, syntax: Syntax = "a1111") -> tuple[list[Token], bool]:
    """:func:`tokenize` with the bounds above: (at most MAX_TOKENS_PER_SIDE tokens from the
    first MAX_TOKENIZED_CHARS characters, whether anything was left out)."""
    cut = len(prompt) > MAX_TOKENIZED_CHARS
    tokens = tokenize(prompt[:MAX_TOKENIZED_CHARS] if cut else prompt, syntax=syntax)
    if cut and tokens:
        tokens.pop()  # the text was cut, maybe inside its last token
    if len(tokens) > MAX_TOKENS_PER_SIDE:
        return tokens[:MAX_TOKENS_PER_SIDE], True
    return tokens, cut


def clear_caches() -> None:
    """Forget every cached prompt and piece (for benchmarks: the next call is a cold one)."""
    _prompt_tokens.cache_clear()
    for cache in _PIECES.values():
        cache.clear()


# Whole prompts repeat: many images share a negative prompt, a batch shares its positive
# prompt, and the repeats are close together (so a small cache catches nearly all of them).
# Tokens are immutable, so cached ones can be handed out again; callers get their own list.
@functools.lru_cache(maxsize=1024)
def _prompt_tokens(prompt: str, syntax: Syntax) -> tuple[Token, ...]:
    segments = _cut(prompt, syntax)
    if segments is None:
        return tuple(_tokenize_whole(prompt, syntax))
    # Everything per piece and per token runs in C: the cache's lookups, and the tokens made
    # from (position, raw, norm, weight) tuples. A Python call per token cost more than the rest.
    # The (raw, norm, weight) triples are transposed to columns, which zip pairs with positions
    # in one pass (zip(count()) alone would never end, hence the test for no pieces).
    pieces = [*itertools.chain.from_iterable(map(_PIECES[syntax].__getitem__, segments))]
    fields = zip(itertools.count(), *zip(*pieces, strict=True)) if pieces else ()
    return tuple(map(tuple.__new__, itertools.repeat(Token), fields))


# Characters that open and close groups in any of the syntaxes.
_OPENERS = {"(": ")", "[": "]", "{": "}", "<": ">"}
_CLOSERS = frozenset(_OPENERS.values())
_STRUCTURE = re.compile(r"[()\[\]{}<>\\,\n\r]")
# Text inside a group: no bracket, escape or separator; or an escape of anything but a
# separator (an escaped bracket is text; an escaped comma is too, which a split would miss).
_INSIDE = r"(?:[^()\[\]{}<>\\,\n\r]++|\\[^,\n\r])"


def _group_pattern(depth: int) -> str:
    """A regex for one group holding no separator or stray bracket: ``()``, ``[]``, ``{}``
    nested up to ``depth`` levels, or a ``<...>`` with no brackets inside."""
    alternatives = [rf"<{_INSIDE}*+>"]
    if depth > 0:
        body = rf"(?:{_INSIDE}|{_group_pattern(depth - 1)})*+"
        alternatives += [rf"\({body}\)", rf"\[{body}\]", rf"\{{{body}\}}"]
    return "(?:" + "|".join(alternatives) + ")"


# A prompt _clean() matches has every comma and newline at the top level (most prompts: groups
# are short and hold no commas), so cutting it is a split, done in C. Possessive quantifiers
# keep the match linear; depth 3 keeps the pattern small (it grows 3x a level). Anything else
# (deeper nesting, commas inside groups, unbalanced brackets, escaped separators) goes through
# _top_level_segments, which gives the same cuts. Compiled on first use: it takes ~10 ms, and
# most commands import this module (for prompt_resources) without tokenizing.
@functools.cache
def _clean() -> re.Pattern[str]:
    return re.compile(rf"(?:[^()\[\]{{}}<>\\]++|\\[^,\n\r]|{_group_pattern(3)})*+")


_SEPARATOR = re.compile(r"[,\n\r]")


def _cut(prompt: str, syntax: Syntax) -> list[str] | None:
    """What _top_level_segments returns, faster for the usual prompt."""
    if syntax == "novelai" and "::" in prompt:
        return None
    if not _clean().fullmatch(prompt):
        return _top_level_segments(prompt, syntax)
    if "\n" in prompt or "\r" in prompt:
        return _SEPARATOR.split(prompt)
    return prompt.split(",")  # the usual prompt, one line: str.split is thrice re.split's speed


def _top_level_segments(prompt: str, syntax: Syntax) -> list[str] | None:
    """``prompt`` cut at the commas and newlines outside every bracket, or None when it cannot
    be cut safely (a stray closing bracket, NovelAI ``::`` weights that span commas).

    Tokens never span such a cut, so each piece can be tokenized on its own — and the pieces
    repeat across prompts (``masterpiece``, ``best quality``), which the cache exploits.
    """
    if syntax == "novelai" and "::" in prompt:
        return None
    segments: list[str] = []
    expected: list[str] = []  # the closing bracket each open group waits for
    start = 0
    escaped_at = -2
    # Only brackets, escapes and separators matter: visit those, not every character.
    for match in _STRUCTURE.finditer(prompt):
        index = match.start()
        char = prompt[index]
        if escaped_at == index - 1:
            escaped_at = -2  # this character is escaped: plain text
        elif char == "\\":
            escaped_at = index
        elif char in _OPENERS:
            expected.append(_OPENERS[char])
        elif char in _CLOSERS:
            if not expected or expected[-1] != char:
                return None  # stray or crossed brackets: leave it to the full scanner
            expected.pop()
        elif not expected:
            segments.append(prompt[start:index])
            start = index + 1
    segments.append(prompt[start:])
    return segments


_PieceTokens = tuple[tuple[str, str, float], ...]  # (t_raw, t_norm, weight) of each token
_PIECE_CACHE_SIZE = 65_536


class _PieceCache(dict[str, _PieceTokens]):
    """Tokens of prompt pieces in one syntax. A dict rather than an lru_cache: a hit is then a
    plain C lookup (``map(cache.__getitem__, pieces)``), and only a miss runs Python."""

    def __init__(self, syntax: Syntax) -> None:
        super().__init__()
        self.syntax: Syntax = syntax

    def __missing__(self, segment: str) -> _PieceTokens:
        if len(self) >= _PIECE_CACHE_SIZE:
            # Full: forget the older half (a dict keeps insertion order). Not LRU, but the
            # pieces still in use come back on their next prompt. pop: safe if threads race.
            for old in list(itertools.islice(self, len(self) // 2)):
                self.pop(old, None)
        tokens = self[segment] = _segment_tokens(segment, self.syntax)
        return tokens


_PIECES: dict[str, _PieceCache] = {
    syntax: _PieceCache(syntax) for syntax in ("a1111", "novelai", "compel")
}

# A piece with none of these is plain text: one token at weight 1.0, no scanner needed (most
# tags in real prompts). Conservative on purpose: any BREAK/AND substring sends the piece to the
# scanner. ":" means something only inside brackets and tags (excluded here) and in a leading
# "embedding:", which _segment_tokens drops as the scanner does. NovelAI's parentheses are
# plain text, so its "(tag:1.2)" is plain too; its "1.2::" weights never reach a piece.
_NOT_PLAIN = {
    "a1111": re.compile(r"[\\,\n\r()\[\]{}<>|+]|BREAK|AND"),
    "novelai": re.compile(r"[\\,\n\r\[\]{}<>|+]|BREAK|AND"),
    "compel": re.compile(r"[\\,\n\r()\[\]{}<>|+\-]|BREAK|AND"),
}
_EMBEDDING_PREFIX = "embedding:"


def _segment_tokens(segment: str, syntax: Syntax) -> _PieceTokens:
    """The scanner's tokens of one piece, without the scanner for the usual pieces."""
    if not _NOT_PLAIN[syntax].search(segment):
        norm = normalize_text(segment)
        if norm.startswith(_EMBEDDING_PREFIX):
            norm = norm[len(_EMBEDDING_PREFIX) :].strip()
        return ((segment.strip(), norm, 1.0),) if norm else ()
    emphasis = _emphasis_tokens(segment, syntax)
    if emphasis is not None:
        return emphasis
    return tuple((t.t_raw, t.t_norm, t.weight) for t in _tokenize_whole(segment, syntax))


# One emphasis group around plain text, the usual weighted tag: "(text:1.2)", "((text))",
# "[[text]]", "{{text}}", blanks around it. The text holds none of the characters _NOT_PLAIN
# looks for (BREAK/AND and compel's "-" are checked apart), so the scanner sees plain text.
_EMPHASIS = re.compile(
    r"\s*(?P<raw>(?P<open>\({1,8}|\[{1,8}|\{{1,8})(?P<text>[^\\,\n\r()\[\]{}<>:|+]*)"
    rf"(?::\s*(?P<number>{_NUMBER})\s*)?(?P<close>\){{1,8}}|\]{{1,8}}|\}}{{1,8}}))\s*"
)
# Per syntax and opening bracket: the factor of one level and, for "(text:1.2)", the weight the
# scanner takes for a number that is no finite float. No entry: the scanner decides. A missing
# default: a number there is not a weight ("[a:0.5]" is prompt editing).
_EMPHASIS_LEVELS: dict[str, dict[str, tuple[float, float | None]]] = {
    "a1111": {"(": (1.1, 1.1), "[": (1 / 1.1, None)},
    "novelai": {"{": (1.05, None), "[": (1 / 1.05, None)},
    "compel": {"(": (1.0, 1.0)},
}


def _emphasis_tokens(segment: str, syntax: Syntax) -> _PieceTokens | None:
    """The scanner's tokens for a piece that is one simple emphasis group, or None."""
    match = _EMPHASIS.fullmatch(segment)
    if match is None:
        return None
    opened, closed, text, number = match["open"], match["close"], match["text"], match["number"]
    level = _EMPHASIS_LEVELS.get(syntax, {}).get(opened[0])
    if level is None or len(opened) != len(closed) or opened[0] != _OPENER[closed[0]]:
        return None  # unbalanced or crossed: an unclosed group weights more than itself
    if "BREAK" in text or "AND" in text or (syntax == "compel" and "-" in text):
        return None  # separator words; compel's "word-" is a weight
    factor, default = level
    if number is None:
        innermost = factor
    elif default is None:
        return None
    else:
        innermost = _to_float(number, default)
    # As the scanner multiplies: outer levels first, an explicit number on the innermost.
    weight = 1.0
    for _ in range(len(opened) - 1):
        weight *= factor
    weight *= innermost
    norm = normalize_text(text)
    if not norm:
        return ()
    # The group holds nothing but this token, so the token as written is the whole group.
    return ((match["raw"], norm, round(weight, 4) if math.isfinite(weight) else 1.0),)


def _tokenize_whole(prompt: str, syntax: Syntax) -> list[Token]:
    """The character-level tokenizer over a whole prompt (the reference implementation)."""
    if not prompt:
        return []
    scanner = _Scanner(prompt, syntax)
    scanner.prepare()
    scanner.scan(0, len(prompt), 1.0, -1, 0)
    for event in scanner.events:
        if event is not None:
            group = event.group
            while group >= 0:
                scanner.groups[group].chars += 1
                group = scanner.groups[group].parent
    tokens: list[Token] = []
    current: list[_Char] = []
    for event in [*scanner.events, _BREAK]:
        if event is not None:
            current.append(event)
            continue
        norm = normalize_text("".join(char.text for char in current))
        if norm.startswith("embedding:"):
            norm = norm[len("embedding:") :].strip()
        if norm:
            start, stop = _raw_span(scanner, current)
            raw = prompt[start:stop].strip() or norm
            tokens.append(Token(len(tokens), raw, norm, _token_weight(current)))
        current = []
    return tokens


def _network_resource(kind: str, args: str) -> Resource | None:
    parts = [part.strip() for part in args.split(":")]
    name = parts[0] if parts else ""
    if not name:
        return None
    positional: list[float | None] = []
    named: dict[str, str] = {}
    for part in parts[1:]:
        key, equals, value = part.partition("=")
        if equals:
            named[key.strip().lower()] = value.strip()
        else:
            positional.append(_maybe_float(part))
    extra: dict[str, object] = {"syntax": f"<{kind}:{args}>"}
    if kind in _LORA_KINDS and kind != "lora":
        extra["tag"] = kind
    te = _maybe_float(named["te"]) if "te" in named else (positional[0] if positional else None)
    unet = (
        _maybe_float(named["unet"])
        if "unet" in named
        else (positional[1] if len(positional) > 1 else None)
    )
    dyn = named.get("dyn") or (str(positional[2]) if len(positional) > 2 else None)
    if dyn:
        extra["dyn"] = dyn
    resource_kind = _NETWORK_KINDS[kind]
    if resource_kind == "hypernetwork":
        return Resource(
            "hypernetwork", name, weight=te if te is not None else 1.0, source="prompt", extra=extra
        )
    # A1111: one number sets the text encoder and the UNet alike; with two, the first is the
    # text encoder and the second the UNet, so the UNet (model) strength is the weight.
    if unet is None:
        weight = te if te is not None else 1.0
        return Resource("lora", name, weight=weight, source="prompt", extra=extra)
    return Resource("lora", name, weight=unet, weight_clip=te, source="prompt", extra=extra)


def _maybe_float(text: str) -> float | None:
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def prompt_resources(prompt: str) -> list[Resource]:
    """Resources named inside prompt text, in order of appearance.

    ``<lora:name:w>`` / ``<lyco:...>`` / ``<locon:...>`` -> kind ``lora`` (one number: weight;
    ``<lora:name:te:unet>``: weight = UNet strength, weight_clip = text-encoder strength; no
    number: 1.0), ``<hypernet:name:w>`` -> ``hypernetwork``, ComfyUI ``embedding:name`` ->
    ``embedding``. All with source ``prompt``. Never raises.
    """
    found: list[tuple[int, Resource]] = []
    for match in _EXTRA_NETWORK.finditer(prompt):
        kind = match.group(1).lower()
        if kind in _NETWORK_KINDS:
            resource = _network_resource(kind, match.group(2))
            if resource is not None:
                found.append((match.start(), resource))
    # The case-insensitive pattern with its look-behind is tried at every position (~20 µs for
    # a 500-character prompt); an ASCII prompt can be ruled out by a plain lower-case search.
    # (Other text keeps the full search: a few non-ASCII letters match "i" or "k" ignoring case.)
    if not prompt.isascii() or "embedding:" in prompt.lower():
        for match in _EMBEDDING.finditer(prompt):
            name = match.group(1).rstrip(".")
            if name:
                found.append((match.start(), Resource("embedding", name, source="prompt")))
    found.sort(key=lambda item: item[0])
    return [resource for _, resource in found]
