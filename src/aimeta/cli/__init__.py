"""The ``aimeta`` command line: one Typer app, one short function per command.

Commands live in small modules by topic (``metadata``, ``rating``, ``query``, ``web``) and
register themselves on ``app``. They declare options, resolve settings, call one pipeline
function and render its result; nothing below this package knows about Typer or rich.
"""

from __future__ import annotations

import importlib

from aimeta.cli.common import app

# Each module adds its commands to `app` when imported; the order is the order in --help.
for _module in ("metadata", "resources", "query", "rating", "web"):
    try:
        importlib.import_module(f"aimeta.cli.{_module}")
    except ModuleNotFoundError as _exc:  # a topic not built yet
        if _exc.name != f"aimeta.cli.{_module}":
            raise


def main() -> None:
    """Entry point of the ``aimeta`` console script."""
    app()


__all__ = ["app", "main"]
