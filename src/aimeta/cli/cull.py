"""The ``cull`` command: groups, ranks within groups, calibrated stars, picks and rejects."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from aimeta import settings
from aimeta.cli.common import (
    app,
    handle_errors,
    progress_events,
    setting_option,
    stderr,
    stop_on_ctrl_c,
)

if TYPE_CHECKING:
    from aimeta.pipelines import cull as cull_pipeline


@app.command()
@handle_errors
def cull(
    folder: Path = typer.Argument(..., help="Folder of images to cull."),
    xmp: bool = typer.Option(True, "--xmp/--no-xmp", help="Write XMP sidecars."),
    csv: bool = typer.Option(
        True, "--csv/--no-csv", help="Write FOLDER/ai_cull_results_{model}.csv."
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace star ratings the user has set."
    ),
    group_window: float = typer.Option(
        None,
        "--group-window",
        help="Seconds between two shots of one burst.",
        show_default="2",
    ),
    hash_distance: int = typer.Option(
        14, "--hash-distance", help="Perceptual-hash bits two near-duplicates may differ in."
    ),
    group_size: int = typer.Option(6, "--group-size", help="Images per ranking request."),
    distribution: str = typer.Option(
        "10,20,40,20,10",
        "--distribution",
        help="Per cent of the images with 5, 4, 3, 2 and 1 stars.",
    ),
    rank_prompt: Path = typer.Option(
        None, "--rank-prompt", help="Prompt file for ranking a group (default: the shipped one)."
    ),
    recursive: bool = typer.Option(False, "--recursive/--no-recursive", help="Sub-folders too."),
    api_url: list[str] = setting_option("api_urls", "--api-url"),
    model: str = setting_option("model", "--model"),
    size: int = setting_option("size", "--size"),
    workers: int = setting_option("workers", "--workers", "-w"),
    converter: str = setting_option("converter", "--converter"),
    db_path: Path = setting_option("db", "--db", help="SQLite database to write."),
    out_dir: Path = setting_option("out_dir", "--out"),
    sidecar: str = setting_option("sidecar", "--sidecar"),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Show the groups and what would be sent; write nothing."
    ),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per image on stdout."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress or per-group lines."),
) -> None:
    """Pick the best of each burst, near-duplicate set and AI batch: group the images of
    FOLDER, rank each group with the vision model (one request per group), measure sharpness
    and exposure, and write calibrated stars with pick/reject labels.

    Absolute scores come from `aimeta rate` (run first for the images without one). Re-running
    ranks only the groups not ranked yet.

    Example: aimeta cull ~/Pictures/2024-05-burst --group-window 3 --distribution 5,15,50,20,10
    """
    from aimeta.rating.calibrate import parse_distribution

    try:
        shares = parse_distribution(distribution)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--distribution") from exc
    config = settings.resolve(
        {
            "api_urls": tuple(api_url or ()),
            "model": model,
            "size": size,
            "workers": workers,
            "converter": converter,
            "db": db_path,
            "out_dir": out_dir,
            "sidecar": sidecar,
        }
    )
    from aimeta.pipelines import cull as cull_pipeline

    # The window's default lives with the grouping code (numpy is not imported at start-up).
    window = {} if group_window is None else {"group_window": group_window}
    options = cull_pipeline.CullOptions(
        folder=folder,
        xmp=xmp,
        csv=csv,
        recursive=recursive,
        dry_run=dry_run,
        overwrite=overwrite,
        **window,
        hash_distance=hash_distance,
        group_size=group_size,
        distribution=shares,
        rank_prompt=rank_prompt,
    )
    stop = threading.Event()
    with stop_on_ctrl_c(stop), progress_events(quiet) as show:
        result = cull_pipeline.run(config, options, on_event=show, stop=stop)
    if as_json:
        for row in result.decisions.values():
            sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")
    _print_summary(result, quiet=quiet)
    if result.stopped:
        raise typer.Exit(code=130)


def _print_summary(result: cull_pipeline.CullResult, *, quiet: bool) -> None:
    groups = len(result.groups)
    if result.dry_run:
        stderr.print(
            f"dry run: {result.found} image(s), {groups} group(s) of two or more, "
            f"{result.requests} ranking request(s) would be sent",
            highlight=False,
        )
        return
    stderr.print(
        f"cull: {result.found} image(s), {groups} group(s): {result.ranked} ranked now, "
        f"{result.reused} ranked before, {len(result.failed)} failed; "
        f"{result.count('pick')} pick(s), {result.count('reject')} reject(s) with {result.model}",
        highlight=False,
    )
    for path, reason in result.failed:
        stderr.print(f"  [red]failed[/red] group of {escape(path)}: {escape(reason)}")
    if result.stars_kept:
        stderr.print(f"kept the user's own stars in {result.stars_kept} sidecar(s)")
    if result.csv_path and not quiet:
        stderr.print(f"csv: {result.csv_path}", highlight=False)
    if result.stopped:
        stderr.print("[yellow]Stopped early[/yellow]: re-run the same command to finish.")
