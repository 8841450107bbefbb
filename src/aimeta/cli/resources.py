"""Commands for the models used by each image: resources, resolve."""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path

import orjson
import typer
from rich.table import Table

from aimeta import db, settings
from aimeta.cli.common import (
    app,
    handle_errors,
    progress_events,
    setting_option,
    stderr,
    stdout,
)
from aimeta.pipelines import export_state
from aimeta.pipelines import resolve as resolve_pipeline
from aimeta.pipelines import resources as resources_pipeline

DB_HELP = "SQLite database written by `aimeta ingest`."


@app.command()
@handle_errors
def resources(
    db_path: Path = setting_option("db", "--db", help=DB_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the counts as JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or summary."),
) -> None:
    """Rebuild the table of models used by every image from its stored metadata.

    One row per image, kind and name: checkpoint, lora, embedding, hypernetwork, vae,
    upscaler, controlnet, refiner, detailer, ipadapter, or resource_ref (a Civitai model
    version not resolved yet), with weight, hash and the field it came from. No image file is
    read: the metadata stored by `aimeta ingest` is parsed again, so parser improvements apply.
    Prints the number of rows per kind.

    Example: aimeta resources --db out/images.db
    """
    config = settings.resolve({"db": db_path})
    conn = db.open_existing(config.db)
    try:
        with progress_events(quiet) as on_event, export_state.changing(config.db):
            result = resources_pipeline.run(conn, batch_size=config.batch_size, on_event=on_event)
    finally:
        conn.close()
    if as_json:
        stdout.print_json(orjson.dumps(dataclasses.asdict(result)).decode())
        return
    table = Table(box=None)
    table.add_column("kind")
    table.add_column("rows", justify="right")
    for kind, count in result.by_kind.items():
        table.add_row(kind, str(count))
    stdout.print(table)
    if not quiet:
        stderr.print(
            f"resources: {result.images} images, {result.rows} rows,"
            f" {len(result.failures)} failed in {result.seconds:.2f}s -> {config.db}",
            highlight=False,
        )


@app.command()
@handle_errors
def resolve(
    db_path: Path = setting_option("db", "--db", help=DB_HELP),
    maps: list[Path] = typer.Option(
        [], "--map", help="Manual map, CSV or JSON (repeatable). " + resolve_pipeline.MAP_HELP
    ),
    exports: list[Path] = typer.Option(
        [],
        "--civitai-export",
        help="JSON saved from the Civitai API: /api/v1/model-versions/{id}, "
        "/model-versions/by-hash/{hash} or /models/{id}, single or in lists (repeatable).",
    ),
    rewrite: bool = typer.Option(
        False, "--rewrite", help="Replace resolved references by named resources."
    ),
    online: bool = typer.Option(
        False,
        "--online",
        help="Ask the Civitai API about ids and hashes no mapping knows (answers are cached; "
        "token from AIMETA_CIVITAI_TOKEN).",
    ),
    civitai_url: str = setting_option("civitai_base_url", "--civitai-url"),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or hints."),
) -> None:
    """Name the models images know only by a Civitai model-version id or a hash.

    Imports mappings (model version -> kind, model name, file name, hashes) from map files and
    Civitai API exports into the database, optionally looks up the rest online, and with
    --rewrite turns each `modelVersionId:<id>` or `hash:<hex>` resource into the real one,
    keeping the reference in extra_json. Without a mapping nothing changes; it says how many
    references are unresolved. Running it again changes nothing.

    Example: aimeta resolve --map models.csv --civitai-export civitai/*.json --rewrite
    """
    config = settings.resolve({"db": db_path, "civitai_base_url": civitai_url})
    conn = db.open_existing(config.db)
    try:
        # A rewrite changes the resources of records.jsonl/records.csv without listing them.
        forgetting = export_state.changing(config.db) if rewrite else contextlib.nullcontext()
        with progress_events(quiet) as on_event, forgetting:
            result = resolve_pipeline.run(
                conn,
                config,
                maps=maps,
                exports=exports,
                rewrite=rewrite,
                online=online,
                on_event=on_event,
            )
    finally:
        conn.close()
    if as_json:
        data = dataclasses.asdict(result) | {"unresolved": result.unresolved}
        del data["images"]  # the ids rewritten, for aimeta all's exports
        stdout.print_json(orjson.dumps(data).decode())
        return
    lines = [
        f"imported: {result.imported_from_maps} from maps, "
        f"{result.imported_from_exports} from Civitai exports",
        f"references: {result.version_refs} model-version placeholders, "
        f"{result.hash_refs} known only by hash; {result.resolvable} resolvable",
        f"unresolved: {len(result.unresolved_versions)} model versions, "
        f"{len(result.unresolved_hashes)} hashes",
    ]
    if online:
        lines.append(
            f"online: {result.online_requests} requests, {result.online_found} found, "
            f"{result.online_not_found} not found, {result.online_failed} failed"
            + (" (Civitai not reachable)" if result.offline else "")
        )
    if rewrite:
        lines.append(f"rewritten: {result.rewritten} ({result.merged} merged into existing rows)")
    for line in lines:
        stdout.print(line, highlight=False)
    if not quiet:
        if result.resolvable and not rewrite:
            stderr.print("Run again with --rewrite to apply the mappings.", highlight=False)
        if result.hint:
            stderr.print(result.hint, highlight=False)
