"""The ``thumbs`` command: build the library's thumbnails ahead of browsing."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from aimeta import settings
from aimeta.cli.common import app, handle_errors, progress_events, setting_option, stderr


@app.command()
@handle_errors
def thumbs(
    db: Path | None = setting_option("db", "--db"),
    size: int = typer.Option(256, "--size", min=16, max=512, help="Longest side in pixels."),
    threads: int = typer.Option(
        0, "--threads", min=0, help="Images made at once (0: one per core)."
    ),
) -> None:
    """Make the thumbnails the library of `aimeta web` shows, for every image of the database,
    into <database>.thumbs.db beside it (e.g. out/images.thumbs.db). Thumbnails already made
    for an unchanged file are kept; the page makes missing ones itself, this only saves the
    wait.

    Example: aimeta thumbs --db out/images.db
    """
    from aimeta.pipelines import thumbs as thumbs_pipeline

    database = settings.resolve({"db": db}).db
    workers = threads or os.cpu_count() or 2
    with progress_events() as on_event:
        result = thumbs_pipeline.build_all(database, size, workers=workers, on_event=on_event)
    cache = thumbs_pipeline.cache_path(database)
    stderr.print(
        f"{result.ready} thumbnails ready in {cache}"
        + (f", {result.failed} files could not be read" if result.failed else ""),
        highlight=False,
    )
