"""Commands that follow files as they change: watch, prune."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType

import typer

from aimeta import db, settings
from aimeta.cli.common import app, handle_errors, setting_option, stderr, stdout
from aimeta.pipelines import export_state, relink
from aimeta.pipelines import watch as watch_pipeline


@app.command()
@handle_errors
def watch(
    folders: list[Path] = typer.Argument(..., help="Folders to watch (sub-folders too)."),
    out_dir: Path = setting_option("out_dir", "--out-dir"),
    db_path: Path = setting_option("db", "--db", help="SQLite database to write."),
    rate: bool = typer.Option(
        False, "--rate", help="Also rate new images with the configured model server."
    ),
    api_url: list[str] = setting_option("api_urls", "--api-url"),
    poll: bool = typer.Option(
        False, "--poll", help="Poll the folders instead of waiting for events (network drives)."
    ),
) -> None:
    """Keep the database current while images are written: scan FOLDERS as `aimeta all`
    does, then read each new or changed image once it is complete, re-link moved ones and
    mark deleted ones missing. One status line per batch on stderr; Ctrl-C stops after the
    current batch.

    Example: aimeta watch ~/ComfyUI/output --rate
    """
    config = settings.resolve({"out_dir": out_dir, "db": db_path, "api_urls": tuple(api_url or ())})
    for folder in folders:
        if not folder.is_dir():
            raise typer.BadParameter(f"{folder} is not a folder", param_hint="FOLDERS")
    stop = threading.Event()

    def stop_after_batch(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {
        sig: signal.signal(sig, stop_after_batch) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    rater = watch_pipeline.folder_rater(config, folders, stop) if rate else None
    try:
        watch_pipeline.run(
            folders,
            config,
            stop=stop,
            poll=poll,
            rate=rater,
            on_batch=lambda report: stderr.print(report.line(), highlight=False),
        )
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    stderr.print("watch: stopped", highlight=False)


@app.command()
@handle_errors
def prune(
    db_path: Path = setting_option("db", "--db", help="SQLite database to change."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would be removed."),
) -> None:
    """Remove the images whose files are gone (marked missing by `aimeta all` or `aimeta
    watch`), with their parameters, tokens, resources and ratings.

    Example: aimeta prune --dry-run
    """
    config = settings.resolve({"db": db_path})
    conn = db.open_existing(config.db)
    try:
        if dry_run:
            paths = relink.prune(conn, dry_run=True)
        else:
            with export_state.changing(config.db):
                paths = relink.prune(conn)
    finally:
        conn.close()
    for path in paths:
        stdout.print(path, highlight=False, soft_wrap=True)
    verb = "would remove" if dry_run else "removed"
    stderr.print(f"prune: {verb} {len(paths)} missing image(s)", highlight=False)
