"""Prompt tokenizer (interim: comma split; the full weighted tokenizer replaces this)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Token:
    position: int
    t_raw: str
    t_norm: str
    weight: float = 1.0


def tokenize(prompt: str) -> list[Token]:
    parts = [p.strip() for p in prompt.split(",")]
    return [
        Token(i, p, " ".join(p.lower().replace("_", " ").split()), 1.0)
        for i, p in enumerate(x for x in parts if x)
    ]
