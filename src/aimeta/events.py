"""Events a pipeline reports while it works.

Pipelines never print. They call ``on_event`` with one of these; the CLI renders them with
rich (progress bar, log lines), the web page streams them as server-sent events. One mechanism,
two views.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True, slots=True)
class Started:
    """A stage begins; ``total`` is the number of items when known."""

    stage: str
    total: int | None = None


@dataclass(frozen=True, slots=True)
class Progress:
    """``advance`` more items of ``stage`` are done; ``item`` names the last one."""

    stage: str
    advance: int = 1
    item: str | None = None


@dataclass(frozen=True, slots=True)
class Log:
    """A line for the user; ``level`` decides its colour and whether --quiet hides it."""

    message: str
    level: Literal["debug", "info", "warning", "error"] = "info"


@dataclass(frozen=True, slots=True)
class ItemResult:
    """The result for one item (an image rated, a file that failed, ...)."""

    stage: str
    item: str
    ok: bool
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Finished:
    """A stage ended."""

    stage: str


Event = Started | Progress | Log | ItemResult | Finished
OnEvent = Callable[[Event], None]


def ignore(_event: Event) -> None:
    """The default callback: drop every event."""
