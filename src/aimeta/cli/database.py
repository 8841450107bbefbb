"""Commands about the database itself: ``db version``, ``db upgrade``."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import orjson
import typer

from aimeta import db, settings
from aimeta.cli.common import app, handle_errors, stdout

db_app = typer.Typer(
    help=(
        "Show the schema version of a database and upgrade it explicitly (opening a database "
        "with any command upgrades it too).\n\nExample: aimeta db version --db out/images.db"
    ),
    no_args_is_help=True,
)
app.add_typer(db_app, name="db")

DbOption = Annotated[
    Path | None, typer.Option("--db", help="The database [default: out/images.db, or settings].")
]


@db_app.command("version")
@handle_errors
def version(
    db_path: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """The schema version of a database and the migrations applied to it (read-only).

    Example: aimeta db version --db out/images.db --json
    """
    info = db.schema_info(settings.resolve({"db": db_path}).db)
    if as_json:
        stdout.print_json(orjson.dumps(dataclasses.asdict(info)).decode())
        return
    made_by = f", made by aimeta {info.made_by} (no migration record yet)" if info.made_by else ""
    stdout.print(
        f"{info.path}: schema {info.version}{made_by};"
        f" aimeta {info.aimeta_version} knows schema {info.known_version}",
        highlight=False,
        markup=False,
    )
    for step in info.applied:
        stdout.print(
            f"  {step['number']:>3} {step['name']}  aimeta {step['aimeta_version']}"
            f"  {step['applied_at']}{'  rewrote a table' if step['rewrites_table'] else ''}",
            highlight=False,
            markup=False,
        )
    if info.pending:
        stdout.print(f"pending: {', '.join(info.pending)}", highlight=False, markup=False)
    if info.newer:
        stdout.print(info.newer, highlight=False, markup=False)


@db_app.command("upgrade")
@handle_errors
def upgrade(db_path: DbOption = None) -> None:
    """Apply the pending migrations to a database, after a backup copy beside it
    (images.db.bak-schema<N>, written with VACUUM INTO so it holds what the WAL holds).

    Example: aimeta db upgrade --db out/images.db
    """
    path = settings.resolve({"db": db_path}).db
    result = db.upgrade(path)
    if not result.applied:
        stdout.print(f"{path}: up to date (schema {result.after})", highlight=False, markup=False)
        return
    stdout.print(
        f"{path}: schema {result.before} -> {result.after}, applied {', '.join(result.applied)}",
        highlight=False,
        markup=False,
    )
    if result.backup:
        stdout.print(f"backup: {result.backup}", highlight=False, markup=False)
