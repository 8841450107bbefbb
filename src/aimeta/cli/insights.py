"""``aimeta insights``: which tokens, LoRAs, checkpoints and settings go with good ratings.

The filters are ``aimeta search``'s own options, parsed by the search command itself (given
after the insights options, or quoted in ``--within``), so there is one filter language.
"""

from __future__ import annotations

import csv
import json
import shlex
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import click
import typer
from rich.table import Table

from aimeta import db, settings
from aimeta.cli.common import app, handle_errors, setting_option, stderr, stdout
from aimeta.errors import UsageError
from aimeta.pipelines.search import SearchQuery

if TYPE_CHECKING:
    from aimeta.pipelines import insights as insights_pipeline


class By(StrEnum):
    token = "token"
    lora = "lora"
    checkpoint = "checkpoint"
    sampler = "sampler"
    scheduler = "scheduler"
    cfg = "cfg"
    steps = "steps"
    generator = "generator"
    pairs = "pairs"
    all = "all"


class RatingKind(StrEnum):
    ai = "ai"
    user = "user"
    pick = "pick"
    any = "any"


# `aimeta search` options that choose how results are shown, not which images are searched.
_NOT_FILTERS = ("limit", "paths", "as_json", "db_path")


@app.command(
    "insights", context_settings={"allow_extra_args": True, "ignore_unknown_options": True}
)
@handle_errors
def insights(
    ctx: typer.Context,
    by: Annotated[
        list[By] | None,
        typer.Option(
            "--by",
            help="token, lora, checkpoint, sampler, scheduler, cfg, steps, generator,"
            " pairs (token+lora, lora+checkpoint) or all; repeatable. Default: all.",
        ),
    ] = None,
    rating: Annotated[
        RatingKind,
        typer.Option(
            "--rating",
            help="ai (aimeta rate), user (your stars), pick (keep rate: picks / (picks +"
            " rejects)), any (your stars, else the AI rating).",
        ),
    ] = RatingKind.ai,
    min_images: Annotated[
        int, typer.Option("--min-images", min=1, help="Show values on at least N rated images.")
    ] = 20,
    within: Annotated[
        str | None,
        typer.Option("--within", help='aimeta search filters in one string: "--model X".'),
    ] = None,
    confidence: Annotated[
        float, typer.Option("--confidence", min=0.5, max=0.999, help="Interval level.")
    ] = 0.95,
    top: Annotated[
        int, typer.Option("--top", min=0, help="Table: best and worst N per dimension; 0: all.")
    ] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="A JSON list of rows.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV rows on stdout.")] = False,
    db_path: Annotated[Path | None, setting_option("db", "--db", annotated=True)] = None,
) -> None:
    """Which prompt tokens, LoRAs (weight binned), checkpoints and settings go with the images
    rated highly: per value, its rated images, their mean rating, delta (mean minus the mean
    of the whole selection) and a confidence interval of delta, best lower bound first.

    These are associations in your own library, not causes: a LoRA you mostly used with a
    good checkpoint looks good too. Read the image counts before trusting a row.

    Any `aimeta search` filter narrows the selection, given after the options or in
    --within: "within this checkpoint, which LoRA weight works?"

    Example: aimeta insights --by lora --model dreamshaper_8 --min-images 30
    """
    # Imported here: pandas and NumPy would add 50 MB and a second to every other command.
    from aimeta.pipelines import insights as insights_pipeline

    if as_json and as_csv:
        raise UsageError("choose one of --json and --csv")
    filters = search_filters([*ctx.args, *shlex.split(within or "")])
    query = insights_pipeline.InsightQuery(
        dimensions=_dimensions(by or [By.all]),
        rating=rating.value,
        min_images=min_images,
        within=filters,
        # --rating-model selects the images that model rated (as in search) and its ratings.
        rating_model=filters.rating_model,
        confidence=confidence,
    )
    path = settings.resolve({"db": db_path}).db
    db.open_existing(path).close()  # bring the schema up to date, as `aimeta search` does
    conn = db.open_existing(path, readonly=True)
    try:
        result = insights_pipeline.insights(conn, query)
    finally:
        conn.close()
    if as_json:
        sys.stdout.write(json.dumps(result.records(), ensure_ascii=False) + "\n")
    elif as_csv:
        _write_csv(result.records())
    else:
        _print_tables(result, top)


def search_filters(args: list[str]) -> SearchQuery:
    """The filters of ``aimeta search ARGS``, parsed by the search command's own options."""
    search_command = typer.main.get_command(app).get_command(click.Context(click.Group()), "search")  # type: ignore[attr-defined]
    assert search_command is not None
    try:
        params = search_command.make_context("aimeta search", list(args)).params
    except click.UsageError as exc:
        raise UsageError(f"filters: {exc.format_message()}") from exc
    given = [name for name in _NOT_FILTERS if args and params.get(name) not in (None, False, 50)]
    if given:
        raise UsageError(f"not a filter here: --{given[0].removeprefix('as_').replace('_', '-')}")

    def many(name: str) -> tuple[str, ...]:
        return tuple(params.get(name) or ())

    return SearchQuery(
        tokens=many("token"),
        not_tokens=many("not_token"),
        neg_tokens=many("neg_token"),
        not_neg_tokens=many("not_neg_token"),
        text=params.get("text"),
        model=params.get("model"),
        loras=many("lora"),
        resources=many("resource"),
        sampler=params.get("sampler"),
        seed=params.get("seed"),
        generator=params.get("generator"),
        min_rating=params.get("min_rating"),
        rating_model=params.get("rating_model"),
        limit=0,
    )


def _dimensions(chosen: list[By]) -> tuple[str, ...]:
    from aimeta.pipelines import insights as insights_pipeline

    names: list[str] = []
    for choice in chosen:
        if choice is By.all:
            names += insights_pipeline.DIMENSIONS
        elif choice is By.pairs:
            names += insights_pipeline.PAIR_DIMENSIONS
        else:
            names.append(choice.value)
    return tuple(dict.fromkeys(names))


def _write_csv(records: list[dict[str, Any]]) -> None:
    from aimeta.pipelines.insights import COLUMNS

    writer = csv.DictWriter(
        sys.stdout, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n"
    )
    writer.writeheader()
    writer.writerows(records)
    sys.stdout.flush()


def _print_tables(result: insights_pipeline.Insights, top: int) -> None:
    measure = "keep rate" if result.rating == "pick" else "mean rating"
    stdout.print(
        f"Selection: {result.baseline_images:,} rated images ({result.rating}),"
        f" {measure} {result.baseline_mean:.2f}. Associations in this library, not causes.",
        highlight=False,
    )
    for dimension, rows in result.rows.groupby("dimension", sort=False):
        shown = (
            rows
            if top == 0 or len(rows) <= 2 * top
            else rows.iloc[list(range(top)) + list(range(len(rows) - top, len(rows)))]
        )
        table = Table(
            "value", "images", measure, "delta", "interval",
            title=f"{dimension} ({len(rows):,} values)", title_justify="left",
        )  # fmt: skip
        for index, row in enumerate(shown.itertuples(index=False)):
            if top and len(rows) > 2 * top and index == top:
                table.add_row("…", "", "", "", "")
            table.add_row(
                str(row.value),
                f"{row.images:,}",
                f"{row.mean:.2f}",
                f"{row.delta:+.2f}",
                f"[{row.delta_low:+.2f}, {row.delta_high:+.2f}]",
            )
        stdout.print(table)
    if result.rows.empty:
        stderr.print("no value has enough rated images; try a lower --min-images")
