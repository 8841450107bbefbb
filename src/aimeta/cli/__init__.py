"""The ``aimeta`` command line: one Typer app, one short function per command.

Commands live in small modules by topic (``metadata``, ``rating``, ``query``, ``web``) and
register themselves on ``app``. They declare options, resolve settings, call one pipeline
function and render its result; nothing below this package knows about Typer or rich.
"""

from __future__ import annotations

# Each module adds its commands to `app` when imported; the order is the order in --help.
from aimeta.cli import (  # noqa: F401
    cull,
    database,
    insights,
    metadata,
    query,
    rating,
    resources,
    thumbs,
    watch,
    web,
)
from aimeta.cli.common import app


def main() -> None:
    """Entry point of the ``aimeta`` console script."""
    app()


__all__ = ["app", "main"]
