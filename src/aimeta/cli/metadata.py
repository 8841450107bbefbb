"""Commands of the metadata pipeline: dump, ingest, all, export."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import typer
from rich.table import Table

from aimeta import db, settings, workers
from aimeta.cli.common import (
    app,
    handle_errors,
    progress_events,
    setting_option,
    stderr,
    stdout,
)
from aimeta.pipelines import all as all_pipeline
from aimeta.pipelines import dump as dump_pipeline
from aimeta.pipelines import export, export_state
from aimeta.pipelines import ingest as ingest_pipeline

JOBS_OPTION = setting_option("jobs", "--jobs", "-j", min=0)
# dump writes and ingest reads this file in the output folder (AIMETA_OUT_DIR, out_dir).
RAW_SHOWN = str(settings.Settings().raw_jsonl)


@app.command()
@handle_errors
def dump(
    inputs: list[Path] = typer.Argument(..., help="Image files or folders to read."),
    out: Path = typer.Option(
        None, "--out", "-o", help="JSONL file to append to; - for stdout.", show_default=RAW_SHOWN
    ),
    recursive: bool = typer.Option(
        True, "--recursive/--no-recursive", help="Read sub-folders too."
    ),
    force: bool = typer.Option(False, "--force", help="Read files again even when unchanged."),
    reader: str = setting_option("reader", "--reader"),
    exiftool: str = setting_option("exiftool", "--exiftool"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or summary."),
) -> None:
    """Read the metadata of every image under INPUTS into a JSON Lines file.

    One line per file with every tag (group names, complete values). Files read before with
    the same size and modification time are skipped unless --force.

    Example: aimeta dump Input/ --out out/exif_raw.jsonl
    """
    config = settings.resolve({"reader": reader, "exiftool": exiftool})
    out = out or config.raw_jsonl
    to_stdout = str(out) == "-"
    with progress_events(quiet) as on_event:
        result = dump_pipeline.run(
            inputs,
            None if to_stdout else out,
            recursive=recursive,
            force=force,
            reader=config.reader,
            exiftool=config.exiftool,
            on_event=on_event,
            stdout=sys.stdout.buffer if to_stdout else None,
        )
    if not quiet:
        _print_failures(result.failures)
        readers = ", ".join(
            f"{count} by {name}" for name, count in sorted(result.by_reader.items())
        )
        stderr.print(
            f"dump: {result.found} files found, {result.read} read"
            f"{f' ({readers})' if readers else ''}, {result.unchanged} unchanged,"
            f" {len(result.failures)} failed in {result.seconds:.2f}s"
            + ("" if to_stdout else f" -> {out}"),
            highlight=False,
        )


@app.command()
@handle_errors
def ingest(
    source: Path = typer.Option(
        None, "--in", help="JSONL file written by `aimeta dump`.", show_default=RAW_SHOWN
    ),
    db_path: Path = setting_option("db", "--db", help="SQLite database to write."),
    jsonl: Path = typer.Option(None, "--jsonl", help="Also write every record to this JSONL file."),
    csv: Path = typer.Option(
        None, "--csv", help="Also write the core parameters to this CSV file."
    ),
    reparse: bool = typer.Option(
        False,
        "--reparse",
        help="Re-run the parsers over the raw metadata stored in the database (no file is read).",
    ),
    from_start: bool = typer.Option(
        False, "--from-start", help="Process the whole JSONL file again, not only new lines."
    ),
    jobs: int = JOBS_OPTION,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or summary."),
) -> None:
    """Parse the metadata read by `aimeta dump` into the database.

    Detects the generator of each image, normalises its parameters, splits the prompts into
    weighted tokens and lists the models used. Re-running only processes what was added to
    the JSONL file since; an image's rows are replaced, never duplicated.

    Example: aimeta ingest --in out/exif_raw.jsonl --db out/images.db --csv out/records.csv
    """
    config = settings.resolve({"db": db_path, "jobs": jobs})
    with export_state.claimed(config.db) as taken:
        conn = db.connect(config.db)
        try:
            with progress_events(quiet) as on_event:
                if reparse:
                    result = ingest_pipeline.reparse(
                        conn, batch_size=config.batch_size, on_event=on_event
                    )
                else:
                    result = ingest_pipeline.run(
                        source or config.raw_jsonl,
                        conn,
                        batch_size=config.batch_size,
                        from_start=from_start,
                        jobs=config.jobs or workers.default_jobs(),
                        on_event=on_event,
                    )
            _export(conn, taken, jsonl, csv, export.Changes(keys=result.keys))
            summary = db.summary(conn)
        finally:
            conn.close()
    if not quiet:
        _print_failures(result.failures)
        stderr.print(
            f"ingest: {result.stored} images stored, {len(result.failures)} failed"
            f" in {result.seconds:.2f}s -> {config.db}",
            highlight=False,
        )
        _print_summary(summary)


@app.command(name="all")
@handle_errors
def all_command(
    inputs: list[Path] = typer.Argument(..., help="Image files or folders to read."),
    out_dir: Path = setting_option("out_dir", "--out-dir"),
    recursive: bool = typer.Option(
        True, "--recursive/--no-recursive", help="Read sub-folders too."
    ),
    force: bool = typer.Option(False, "--force", help="Read files again even when unchanged."),
    reader: str = setting_option("reader", "--reader"),
    exiftool: str = setting_option("exiftool", "--exiftool"),
    jobs: int = JOBS_OPTION,
    export_files: bool = typer.Option(
        True,
        "--export/--no-export",
        help="Bring records.jsonl and records.csv up to date. --no-export leaves them as"
        " they are and remembers what changed: the next run that exports merges it in"
        " (at 1,000,000 images merging costs ~9 s a run, so large libraries adding a few"
        " files at a time may export once at the end).",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or summary."),
    as_json: bool = typer.Option(
        False, "--json", help="Print the result as one JSON object on stdout (for scripts)."
    ),
) -> None:
    """Run the whole metadata pipeline: dump, ingest and resolve, into one folder.

    Writes OUT_DIR/exif_raw.jsonl, OUT_DIR/images.db, OUT_DIR/records.jsonl and
    OUT_DIR/records.csv, then prints what the database now holds.

    Example: aimeta all Input/

    Example: aimeta all --no-export Input/  (the next aimeta all merges into records.*)
    """
    config = settings.resolve(
        {"out_dir": out_dir, "reader": reader, "exiftool": exiftool, "jobs": jobs}
    )
    with progress_events(quiet) as on_event:
        result = all_pipeline.run(
            inputs,
            config,
            recursive=recursive,
            force=force,
            export_files=export_files,
            on_event=on_event,
        )
    # ingest records dump's failures in the database again: count each file once.
    failures = list(dict(result.dump.failures + result.ingest.failures).items())
    if as_json:
        report = {
            "found": result.dump.found,
            "read": result.dump.read,
            "unchanged": result.dump.unchanged,
            "stored": result.ingest.stored,
            "relinked": result.relinked.images,
            "missing": result.missing.marked,
            "exports": result.export_how or "pending",
            "failed": [{"path": path, "reason": reason} for path, reason in failures],
            "seconds": round(result.dump.seconds + result.ingest.seconds, 3),
            "database": str(result.db_path),
            "summary": result.summary,
        }
        stdout.print_json(data=report)
    if not quiet:
        _print_failures(failures)
        stderr.print(
            f"all: {result.dump.found} files found, {result.dump.read} read,"
            f" {result.dump.unchanged} unchanged, {result.ingest.stored} stored,"
            + (f" {result.relinked.images} moved," if result.relinked.images else "")
            + (f" {result.missing.marked} missing," if result.missing.marked else "")
            + f" {len(failures)} failed in {result.dump.seconds + result.ingest.seconds:.2f}s",
            highlight=False,
        )
        _print_summary(result.summary, str(result.db_path))


@app.command(name="export")
@handle_errors
def export_command(
    out_dir: Path = setting_option("out_dir", "--out-dir"),
    db_path: Path = setting_option("db", "--db", help="SQLite database to read."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No summary."),
) -> None:
    """Write OUT_DIR/records.jsonl and OUT_DIR/records.csv whole from the database.

    `aimeta all` keeps both files current by merging what changed into them; this writes
    them in full, for example after changing the database with SQL of your own.

    Example: aimeta export --out-dir out
    """
    config = settings.resolve({"out_dir": out_dir, "db": db_path})
    jsonl, csv = config.out_dir / "records.jsonl", config.out_dir / "records.csv"
    with export_state.claimed(config.db) as taken:
        conn = db.open_existing(config.db, readonly=True)
        try:
            written = export_state.refresh(conn, taken, jsonl, csv, export.Changes(), whole=True)
        finally:
            conn.close()
    if not quiet:
        stderr.print(f"export: {written.records} records -> {jsonl}, {csv}", highlight=False)


def _export(
    conn: sqlite3.Connection,
    taken: export_state.Claim,
    jsonl: Path | None,
    csv: Path | None,
    changes: export.Changes,
) -> None:
    """Bring --jsonl and --csv up to date (merged when they are the files written last from
    this database), or leave the changes pending for the next export."""
    if jsonl and csv:
        export_state.refresh(conn, taken, jsonl, csv, changes)
        return
    if jsonl:
        export.write_jsonl(conn, jsonl)
    elif csv:
        export.write_csv(conn, csv)
    export_state.defer(taken, changes)


def _print_failures(failures: list[tuple[str, str]], limit: int = 20) -> None:
    for path, reason in failures[:limit]:
        stderr.print(f"[yellow]failed:[/yellow] {path}: {reason}", highlight=False)
    if len(failures) > limit:
        stderr.print(
            f"... and {len(failures) - limit} more (see the errors table)", highlight=False
        )


def _print_summary(summary: dict[str, object], where: str | None = None) -> None:
    table = Table(title=f"Now in {where}" if where else None, show_header=True, box=None)
    table.add_column("generator")
    table.add_column("images", justify="right")
    by_generator = summary["by_generator"]
    assert isinstance(by_generator, dict)
    for generator, count in by_generator.items():
        table.add_row(str(generator), str(count))
    stderr.print(table)
    stderr.print(
        f"{summary['images']} images, {summary['tokens']} prompt tokens,"
        f" {summary['resources']} resources, {summary['ratings']} ratings,"
        f" {summary['errors']} files with errors",
        highlight=False,
    )
