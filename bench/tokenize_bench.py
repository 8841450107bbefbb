"""Seconds to tokenize every prompt of a dump, against an older tokenizer in the same run.

Usage:
    python bench/tokenize_bench.py DUMP.jsonl [--against REV] [--rounds 5]

DUMP.jsonl is what ``aimeta dump`` writes (e.g. of ``bench/make_corpus.py 3000 DIR``). Each
round times, for each tokenizer in turn (interleaved, so load from other jobs hits both alike):

* cold: every cache of the module cleared first, as in a fresh process (import not timed);
* known pieces: only the whole-prompt cache cleared (new prompts made of pieces already seen,
  the steady state of a long ingest); for a tokenizer without that cache, equal to repeated;
* repeated: nothing cleared, the same prompts again.

``--against REV`` loads ``src/aimeta/metadata/tokens.py`` as of git revision REV next to the current
one and checks both give the same tokens. Prints the median of the rounds, in CPU seconds
(time.process_time: on a shared machine, other jobs skew it less than wall time). Not a test.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import orjson

import aimeta.metadata.tokens
from aimeta.metadata.parsers import parse_fields
from aimeta.metadata.readers.fields import text_fields

_PROMPT_CACHES = ("_prompt_tokens",)  # whole-prompt caches, by name


def _prompts(dump: Path) -> list[tuple[str, str]]:
    prompts: list[tuple[str, str]] = []
    with dump.open("rb") as lines:
        for line in lines:
            if line.startswith(b"#"):
                continue  # dump's header
            record = parse_fields(text_fields(orjson.loads(line).get("tags") or {}))
            syntax = str(record.extra.get("prompt_syntax", "a1111"))
            prompts += [(text, syntax) for text in (record.prompt, record.negative_prompt) if text]
    return prompts


def _module_at(revision: str) -> ModuleType:
    root = Path(__file__).resolve().parent.parent
    source = subprocess.run(
        ["git", "show", f"{revision}:src/aimeta/metadata/tokens.py"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    spec = importlib.util.spec_from_loader(f"tokens_{revision}", loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    exec(compile(source, f"{revision}:src/aimeta/metadata/tokens.py", "exec"), module.__dict__)
    return module


def _clear(module: ModuleType, only: tuple[str, ...] = ()) -> None:
    if not only and hasattr(module, "clear_caches"):
        module.clear_caches()
        return
    for name, value in vars(module).items():
        if hasattr(value, "cache_clear") and (not only or name in only):
            value.cache_clear()


def _fields(module: ModuleType, prompt: str, syntax: str) -> list[tuple[int, str, str, float]]:
    # Tuples: tokens of two modules are two classes, which never compare equal.
    return [
        (t.position, t.t_raw, t.t_norm, t.weight) for t in module.tokenize(prompt, syntax=syntax)
    ]


def _timed(module: ModuleType, prompts: list[tuple[str, str]]) -> float:
    tokenize: Callable[..., object] = module.tokenize
    started = time.process_time()
    for prompt, syntax in prompts:
        tokenize(prompt, syntax=syntax)
    return time.process_time() - started


def _round(module: ModuleType, prompts: list[tuple[str, str]]) -> tuple[float, float, float]:
    _clear(module)
    cold = _timed(module, prompts)
    if any(hasattr(module, name) for name in _PROMPT_CACHES):
        _clear(module, _PROMPT_CACHES)
        known = _timed(module, prompts)
    else:
        known = _timed(module, prompts)
    return cold, known, _timed(module, prompts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dump", type=Path)
    parser.add_argument("--against", metavar="REV", help="git revision to compare with")
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    prompts = _prompts(options.dump)
    modules = {"current": aimeta.metadata.tokens}
    if options.against:
        modules[options.against] = _module_at(options.against)
        for prompt, syntax in prompts:
            outputs = [_fields(module, prompt, syntax) for module in modules.values()]
            if outputs[0] != outputs[1]:
                print(f"different tokens for {prompt!r} ({syntax})", file=sys.stderr)
                return 1
    count = sum(len(_fields(aimeta.metadata.tokens, prompt, syntax)) for prompt, syntax in prompts)
    print(f"{len(prompts)} prompts, {count} tokens")
    times: dict[str, list[tuple[float, float, float]]] = {name: [] for name in modules}
    for _ in range(options.rounds):
        for name, module in modules.items():
            times[name].append(_round(module, prompts))
    print("| tokenizer | cold s | known pieces s | repeated s |")
    print("|---|---|---|---|")
    for name, rounds in times.items():
        medians = [statistics.median(column) for column in zip(*rounds, strict=True)]
        print(f"| {name} | " + " | ".join(f"{value:.3f}" for value in medians) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
