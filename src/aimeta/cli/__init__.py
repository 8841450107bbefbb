"""The ``aimeta`` command line: one Typer app, one short function per command.

Commands live in small modules by topic (``metadata``, ``rating``, ``query``, ``web``) and
register themselves on ``app``. They declare options, resolve settings, call one pipeline
function and render its result; nothing below this package knows about Typer or rich.
"""

from __future__ import annotations

# Each module adds its commands to `app` when imported; the order is the order in --help
# (the order of the work: read, query, rate and cull, look, maintain), hence no sorting here.
# isort: off
from aimeta.cli import metadata  # noqa: F401
from aimeta.cli import resources  # noqa: F401
from aimeta.cli import query  # noqa: F401
from aimeta.cli import show  # noqa: F401
from aimeta.cli import insights  # noqa: F401
from aimeta.cli import rating  # noqa: F401
from aimeta.cli import cull  # noqa: F401
from aimeta.cli import watch  # noqa: F401
from aimeta.cli import web  # noqa: F401
from aimeta.cli import thumbs  # noqa: F401
from aimeta.cli import database  # noqa: F401

# isort: on
from aimeta.cli.common import app


def main() -> None:
    """Entry point of the ``aimeta`` console script."""
    app()


__all__ = ["app", "main"]
