"""Commands of the rating half: rate, doctor."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape

from aimeta import events, settings
from aimeta.cli.common import (
    app,
    handle_errors,
    progress_events,
    setting_option,
    stderr,
    stdout,
    stop_on_ctrl_c,
)
from aimeta.rating.answer import CRITERIA

if TYPE_CHECKING:
    from aimeta.pipelines import rate as rate_pipeline


@app.command()
@handle_errors
def rate(
    folder: Path = typer.Argument(..., help="Folder of images to rate."),
    xmp: bool = typer.Option(True, "--xmp/--no-xmp", help="Write XMP sidecars."),
    csv: bool = typer.Option(True, "--csv/--no-csv", help="Write the ratings CSV."),
    csv_path: Path = typer.Option(
        None,
        "--csv-path",
        help="CSV file to write.",
        show_default="FOLDER/ai_rating_results_{model}.csv",
    ),
    api_url: list[str] = setting_option("api_urls", "--api-url"),
    model: str = setting_option("model", "--model"),
    temperature: float = setting_option("temperature", "--temperature"),
    size: int = setting_option("size", "--size"),
    quality: int = setting_option("quality", "--quality"),
    recursive: bool = typer.Option(
        False, "--recursive/--no-recursive", help="Rate sub-folders too."
    ),
    skip_existing: bool = typer.Option(
        True,
        "--skip-existing/--no-skip-existing",
        help="Skip images already rated by this model (CSV, database or sidecar).",
    ),
    workers: int = setting_option("workers", "--workers", "-w"),
    converter: str = setting_option("converter", "--converter"),
    system_prompt: Path = setting_option("system_prompt", "--system-prompt"),
    user_prompt: Path = setting_option("user_prompt", "--user-prompt"),
    db_path: Path = setting_option("db", "--db", help="SQLite database to write."),
    sidecar: str = setting_option("sidecar", "--sidecar"),
    max_tokens: int = setting_option("max_tokens", "--max-tokens"),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="List what would be rated; send and write nothing."
    ),
    as_json: bool = typer.Option(False, "--json", help="One JSON result per image on stdout."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or per-image lines."),
) -> None:
    """Rate the images in FOLDER with a local vision model; write XMP sidecars, a CSV and the
    database.

    Each image is rendered to a small JPEG (darktable-cli with your edits, or Pillow), sent
    to an OpenAI-compatible server (LM Studio by default) and answered with scores per
    criterion, keywords and 1-5 stars (xmp:Rating). Ctrl-C stops cleanly; press it twice to
    quit at once. Re-running rates only what is missing.

    Example: aimeta rate ~/Pictures/2024 --workers 4 --api-url http://localhost:1234/v1
    """
    if not xmp and not csv:
        raise typer.BadParameter(
            "--no-xmp and --no-csv leave nothing to write", param_hint="--xmp/--csv"
        )
    config = settings.resolve(
        {
            "api_urls": tuple(api_url or ()),
            "model": model,
            "temperature": temperature,
            "size": size,
            "quality": quality,
            "workers": workers,
            "converter": converter,
            "system_prompt": system_prompt,
            "user_prompt": user_prompt,
            "db": db_path,
            "sidecar": sidecar,
            "max_tokens": max_tokens,
        }
    )
    # Imported here, not at start-up: rating pulls in Pillow, httpx and pandas.
    from aimeta.pipelines import rate as rate_pipeline

    options = rate_pipeline.RateOptions(
        folder=folder,
        xmp=xmp,
        csv=csv,
        csv_path=csv_path,
        recursive=recursive,
        skip_existing=skip_existing,
        dry_run=dry_run,
    )
    stop = threading.Event()
    with stop_on_ctrl_c(stop), progress_events(quiet) as show:
        result = rate_pipeline.run(
            config, options, on_event=_per_image(show, quiet=quiet, as_json=as_json), stop=stop
        )
    _print_summary(result, quiet=quiet)
    if result.aborted:
        raise typer.Exit(code=1)
    if result.stopped:
        raise typer.Exit(code=130)


@app.command()
@handle_errors
def doctor(
    api_url: list[str] = setting_option("api_urls", "--api-url", help="Model server(s) to check."),
    model: str = setting_option("model", "--model", help="Model tag that should be loaded."),
    db_path: Path = setting_option("db", "--db", help="Database to check."),
    as_json: bool = typer.Option(False, "--json", help="The checks as JSON on stdout."),
) -> None:
    """Check ExifTool, darktable-cli, the model server and the database, and say what to do
    about each problem. Exits 1 when rating cannot run.

    Example: aimeta doctor --api-url http://localhost:1234/v1
    """
    config = settings.resolve({"api_urls": tuple(api_url or ()), "model": model, "db": db_path})
    from aimeta.pipelines import doctor as doctor_pipeline

    checks = doctor_pipeline.run(config)
    if as_json:
        stdout.print_json(json.dumps([check.to_dict() for check in checks]))
    else:
        colours = {"ok": "green", "warning": "yellow", "problem": "red"}
        for check in checks:
            label = f"[{colours[check.status]}]{check.status:>7}[/]"
            stderr.print(f"{label}  [bold]{escape(check.name)}[/bold]: {escape(check.found)}")
            if check.advice and check.status != "ok":
                stderr.print(f"{'':>9}-> {escape(check.advice)}")
    if any(check.status == "problem" for check in checks):
        raise typer.Exit(code=1)


def _per_image(show: events.OnEvent, *, quiet: bool, as_json: bool) -> events.OnEvent:
    """Wrap the progress bar's callback: add a line (or a JSON object) per rated image."""

    def on_event(event: events.Event) -> None:
        if isinstance(event, events.Progress) and event.advance == 0:
            return  # "image sent to the model": for the web page, not the bar
        show(event)
        if not isinstance(event, events.ItemResult):
            return
        if as_json:
            sys.stdout.write(json.dumps({"ok": event.ok, **event.data}, ensure_ascii=False) + "\n")
            sys.stdout.flush()
        elif not quiet:
            stderr.print(_image_line(event.ok, event.data), highlight=False)

    return on_event


def _image_line(ok: bool, data: dict[str, Any]) -> str:
    name = escape(Path(str(data.get("path", ""))).name)
    if not ok:
        if data.get("dry_run"):
            return f"would rate {escape(str(data['path']))}"
        return f"[red]failed[/red] {name}: {escape(str(data.get('reason', '')))}"
    if data.get("dry_run"):
        return f"would rate {escape(str(data['path']))}"
    stars = int(data["overall"])
    scores = " · ".join(f"{c.key} {data['scores'].get(c.key, '?')}" for c in CRITERIA)
    keywords = ", ".join(data.get("keywords", []))
    return (
        f"[yellow]{'★' * stars}{'☆' * (5 - stars)}[/yellow] {stars}/5  [bold]{name}[/bold]  "
        f"{scores}  [dim]{escape(keywords)}[/dim]"
    )


def _print_summary(result: rate_pipeline.RateResult, *, quiet: bool) -> None:
    if result.dry_run:
        stderr.print(
            f"dry run: {result.found} image(s) found, {result.skipped} already rated, "
            f"{len(result.to_rate)} would be rated by {result.model}",
            highlight=False,
        )
        return
    speed = result.rated / result.wall_s if result.wall_s else 0.0
    stderr.print(
        f"rate: {result.rated} rated, {result.skipped} skipped, {result.failed} failed "
        f"in {result.wall_s:.1f} s ({speed:.2f} images/s) with {result.model}",
        highlight=False,
    )
    if result.stopped:
        stderr.print("[yellow]Stopped early[/yellow]: re-run the same command to rate the rest.")
    if result.aborted:
        stderr.print(f"[red]Error:[/red] {escape(result.aborted)}")
    for reason, count in result.failure_reasons.items():
        stderr.print(f"  [red]{count} failed[/red]: {escape(reason)}", highlight=False)
    if quiet:
        return
    if result.overall:
        stderr.print(f"overall: mean {result.mean:.2f}, median {result.median:g}", highlight=False)
        widest = max(result.histogram.values()) or 1
        for stars in range(5, 0, -1):
            count = result.histogram[stars]
            bar = "█" * round(20 * count / widest)
            stderr.print(f"  {'★' * stars}{'☆' * (5 - stars)} {count:>5}  {bar}", highlight=False)
    stderr.print(
        f"tokens: {result.prompt_tokens:,} prompt + {result.completion_tokens:,} completion",
        highlight=False,
    )
    if result.csv_path and result.csv_rows:
        stderr.print(f"csv: {result.csv_path} ({result.csv_rows} rows)", highlight=False)
    if result.repaired:
        stderr.print(f"repaired {result.repaired} CSV row(s)/sidecar(s) from the database")
