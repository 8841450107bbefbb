"""Commands that read answers out of the database: ``wildcards``, ``search``, ``stats``."""

from __future__ import annotations

import json
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import closing, contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from aimeta import db, settings
from aimeta.cli.common import app, handle_errors, is_stdout, setting_option, stderr, stdout
from aimeta.pipelines import search as search_pipeline
from aimeta.pipelines import stats as stats_pipeline
from aimeta.pipelines import wildcards as wildcard_pipeline
from aimeta.pipelines.wildcards import LineFilter, WildcardLine


class Side(StrEnum):
    pos = "pos"
    neg = "neg"


class Sort(StrEnum):
    count_desc = "count_desc"
    count_asc = "count_asc"
    alpha = "alpha"
    none = "none"


wildcards_app = typer.Typer(
    help=(
        "Write wildcard lists (one item per line, UTF-8, no duplicates) for prompt tools such "
        "as Dynamic Prompts or ComfyUI wildcard nodes.\n\nExample: aimeta wildcards tokens "
        "--out out/wildcards/pos_tokens.txt --side pos --min-count 10"
    ),
    no_args_is_help=True,
)
app.add_typer(wildcards_app, name="wildcards")

DbOption = Annotated[Path | None, setting_option("db", "--db", annotated=True)]
OutOption = Annotated[
    str, typer.Option("--out", "-o", help="File to write (folders are created); - is stdout.")
]
IncludeOption = Annotated[
    str | None, typer.Option("--include", help="Keep only lines where this regex matches.")
]
ExcludeOption = Annotated[
    str | None, typer.Option("--exclude", help="Drop lines where this regex matches.")
]
MinCountOption = Annotated[
    int, typer.Option("--min-count", min=0, help="Keep items found in at least N images.")
]
MaxCountOption = Annotated[
    int | None, typer.Option("--max-count", min=0, help="Keep items found in at most N images.")
]
LimitOption = Annotated[
    int | None, typer.Option("--limit", min=0, help="Write at most N lines (after sorting).")
]


def _sort_option(default: Sort) -> Any:
    return typer.Option(
        default,
        "--sort",
        help="count_desc, count_asc, alpha, or none (the order found; the default for sql).",
    )


def _database(path: Path | None) -> Path:
    return settings.resolve({"db": path}).db


@contextmanager
def _reading(path: Path, *, update_schema: bool = True) -> Iterator[sqlite3.Connection]:
    """An existing database opened read-only (closed afterwards).

    With ``update_schema`` its schema (indexes, the full-text table) is first brought up to
    date; that writes only when the schema changed, so a current database is left untouched.
    """
    if update_schema:
        db.open_existing(path).close()
    with closing(db.open_existing(path, readonly=True)) as conn:
        yield conn


def _write(lines: list[WildcardLine], out: str) -> None:
    texts = [line.text for line in lines]
    if is_stdout(out):
        sys.stdout.write("".join(f"{text}\n" for text in texts))
        sys.stdout.flush()
        where = "stdout"
    else:
        wildcard_pipeline.write_lines(texts, Path(out))
        where = out
    stderr.print(f"{len(texts):,} lines written to {where}", highlight=False, markup=False)


def _filter(
    include: str | None,
    exclude: str | None,
    min_count: int,
    max_count: int | None,
    sort: Sort,
    limit: int | None,
) -> LineFilter:
    return LineFilter(include, exclude, min_count, max_count, sort.value, limit)


@wildcards_app.command("tokens")
@handle_errors
def wildcards_tokens(
    db_path: DbOption = None,
    out: OutOption = "-",
    side: Annotated[Side, typer.Option("--side", help="Positive or negative prompt.")] = Side.pos,
    include: IncludeOption = None,
    exclude: ExcludeOption = None,
    min_count: MinCountOption = 1,
    max_count: MaxCountOption = None,
    sort: Sort = _sort_option(Sort.count_desc),
    limit: LimitOption = None,
) -> None:
    """Prompt tokens (normalised: lower-case, no emphasis), counted by images.

    Example: aimeta wildcards tokens --db out/images.db --out out/wildcards/pos_tokens.txt
    --side pos --min-count 10 --sort count_desc
    """
    with _reading(_database(db_path)) as conn:
        line_filter = _filter(include, exclude, min_count, max_count, sort, limit)
        _write(wildcard_pipeline.token_lines(conn, side.value, line_filter), out)


@wildcards_app.command("prompts")
@handle_errors
def wildcards_prompts(
    db_path: DbOption = None,
    out: OutOption = "-",
    which: Annotated[
        Side, typer.Option("--which", help="Positive or negative prompts.")
    ] = Side.pos,
    include: IncludeOption = None,
    exclude: ExcludeOption = None,
    min_count: MinCountOption = 1,
    max_count: MaxCountOption = None,
    sort: Sort = _sort_option(Sort.count_desc),
    limit: LimitOption = None,
) -> None:
    """Whole prompts, one per line (line breaks inside a prompt become spaces).

    Example: aimeta wildcards prompts --which pos --min-count 2 --out out/wildcards/prompts.txt
    """
    with _reading(_database(db_path)) as conn:
        line_filter = _filter(include, exclude, min_count, max_count, sort, limit)
        _write(wildcard_pipeline.prompt_lines(conn, which.value, line_filter), out)


@wildcards_app.command("kv")
@handle_errors
def wildcards_kv(
    key: Annotated[str, typer.Option("--key", help="The parameter, e.g. sampler_norm, model.")],
    db_path: DbOption = None,
    out: OutOption = "-",
    include: IncludeOption = None,
    exclude: ExcludeOption = None,
    min_count: MinCountOption = 1,
    max_count: MaxCountOption = None,
    sort: Sort = _sort_option(Sort.count_desc),
    limit: LimitOption = None,
) -> None:
    """The distinct values of one parameter (any key of the kv table).

    Example: aimeta wildcards kv --key sampler_norm --out out/wildcards/samplers.txt
    """
    with _reading(_database(db_path)) as conn:
        line_filter = _filter(include, exclude, min_count, max_count, sort, limit)
        _write(wildcard_pipeline.kv_lines(conn, key, line_filter), out)


@wildcards_app.command("resources")
@handle_errors
def wildcards_resources(
    db_path: DbOption = None,
    out: OutOption = "-",
    kind: Annotated[str, typer.Option("--kind", help="lora, checkpoint, embedding, ...")] = "lora",
    with_weight: Annotated[
        bool,
        typer.Option(
            "--with-weight",
            help="Write <lora:name:weight> tags, one per distinct name and weight.",
        ),
    ] = False,
    include: IncludeOption = None,
    exclude: ExcludeOption = None,
    min_count: MinCountOption = 1,
    max_count: MaxCountOption = None,
    sort: Sort = _sort_option(Sort.count_desc),
    limit: LimitOption = None,
) -> None:
    """Names of the resources of one kind (LoRAs by default), counted by images.

    Example: aimeta wildcards resources --kind lora --with-weight --out out/wildcards/loras.txt
    """
    with _reading(_database(db_path)) as conn:
        line_filter = _filter(include, exclude, min_count, max_count, sort, limit)
        _write(wildcard_pipeline.resource_lines(conn, kind, with_weight, line_filter), out)


@wildcards_app.command("sql")
@handle_errors
def wildcards_sql(
    sql: Annotated[str, typer.Option("--sql", help="One SELECT; its first column is written.")],
    db_path: DbOption = None,
    out: OutOption = "-",
    include: IncludeOption = None,
    exclude: ExcludeOption = None,
    min_count: MinCountOption = 1,
    max_count: MaxCountOption = None,
    sort: Sort = _sort_option(Sort.none),
    limit: LimitOption = None,
) -> None:
    """The first column of a SQL query; the database is opened read-only.

    Example: aimeta wildcards sql --sql "SELECT t_norm FROM tokens WHERE side = 'neg'"
    --out out/wildcards/negative.txt
    """
    with _reading(_database(db_path), update_schema=False) as conn:
        line_filter = _filter(include, exclude, min_count, max_count, sort, limit)
        _write(wildcard_pipeline.sql_lines(conn, sql, line_filter), out)


@app.command("search")
@handle_errors
def search(
    token: Annotated[
        list[str] | None, typer.Option("--token", help="Positive prompt has it.")
    ] = None,
    not_token: Annotated[
        list[str] | None, typer.Option("--not-token", help="Positive prompt lacks it.")
    ] = None,
    neg_token: Annotated[
        list[str] | None, typer.Option("--neg-token", help="Negative prompt has it.")
    ] = None,
    not_neg_token: Annotated[
        list[str] | None, typer.Option("--not-neg-token", help="Negative prompt lacks it.")
    ] = None,
    text: Annotated[
        str | None, typer.Option("--text", help='Words in the prompt ("a phrase", prefix*).')
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="Checkpoint name (* for any text).")
    ] = None,
    lora: Annotated[
        list[str] | None, typer.Option("--lora", help="LoRA name (* for any text).")
    ] = None,
    resource: Annotated[
        list[str] | None, typer.Option("--resource", help="KIND:NAME, e.g. embedding:easynegative.")
    ] = None,
    sampler: Annotated[str | None, typer.Option("--sampler", help="e.g. euler_ancestral.")] = None,
    seed: Annotated[str | None, typer.Option("--seed", help="Exact seed.")] = None,
    generator: Annotated[
        str | None, typer.Option("--generator", help="a1111, comfyui, ...")
    ] = None,
    min_rating: Annotated[
        int | None, typer.Option("--min-rating", min=1, max=5, help="AI rating at least N.")
    ] = None,
    rating_model: Annotated[
        str | None, typer.Option("--rating-model", help="Only ratings by this model tag.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=0, help="At most N images; 0: all.")] = 50,
    paths: Annotated[bool, typer.Option("--paths", help="One path per line.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    db_path: DbOption = None,
) -> None:
    """Find images by prompt tokens, prompt text, models, LoRAs, sampler, seed or rating.

    All filters must match; --token and the other repeatable options may be given several
    times. Tokens are compared in normalised form (lower-case, _ as space). With --limit, the
    images shown are a stable selection of the matches, sorted by path.

    Example: aimeta search --token "red hair" --not-neg-token "bad hands" --lora add_detail
    """
    query = search_pipeline.SearchQuery(
        tuple(token or ()), tuple(not_token or ()), tuple(neg_token or ()),
        tuple(not_neg_token or ()), text, model, tuple(lora or ()), tuple(resource or ()),
        sampler, seed, generator, min_rating, rating_model, limit,
    )  # fmt: skip
    with _reading(_database(db_path)) as conn:
        hits = search_pipeline.search(conn, query)
    if paths or as_json:
        for hit in hits:
            text_line = hit.path if paths else json.dumps(hit.to_dict(), ensure_ascii=False)
            sys.stdout.write(f"{text_line}\n")
        sys.stdout.flush()
    else:
        stdout.print(_hits_table(hits))
    stderr.print(f"{len(hits):,} image{'' if len(hits) == 1 else 's'} found", highlight=False)


def _hits_table(hits: list[search_pipeline.SearchHit]) -> Table:
    table = Table("generator", "model", "sampler", "seed", "rating", "prompt")
    # A path is what people copy: fold it onto more lines rather than cut it.
    table.add_column("path", overflow="fold", ratio=1)
    table.columns.insert(0, table.columns.pop())
    for hit in hits:
        prompt = " ".join((hit.prompt or "").split())
        table.add_row(
            hit.path,
            hit.generator,
            hit.model or "",
            hit.sampler or "",
            hit.seed or "",
            _rating_text(hit),
            prompt[:60] + ("…" if len(prompt) > 60 else ""),
        )
    return table


def _rating_text(hit: search_pipeline.SearchHit) -> str:
    """The AI rating, then cull's stars and decision when the image was culled."""
    text = "" if hit.best_rating is None else str(hit.best_rating)
    if hit.cull:
        text += f" cull {hit.cull['stars']}★ {hit.cull['decision']}".rstrip()
    return text.strip()


@app.command("stats")
@handle_errors
def stats(
    top: Annotated[int, typer.Option("--top", min=0, help="Rows per table; 0: all.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
    db_path: DbOption = None,
) -> None:
    """What the database holds: images by generator, top checkpoints, LoRAs with their mean
    weight, samplers, schedulers, positive and negative tokens, AI ratings.

    Example: aimeta stats --top 10
    """
    with _reading(_database(db_path)) as conn:
        result = stats_pipeline.stats(conn, top)
    if as_json:
        sys.stdout.write(json.dumps(result.to_dict(), ensure_ascii=False) + "\n")
        return
    for table in _stats_tables(result):
        stdout.print(table)


def _count_table(title: str, rows: list[dict[str, Any]], *extra: str) -> Table:
    table = Table("name", "images", *extra, title=title, title_justify="left")
    for row in rows:
        table.add_row(str(row["name"]), f"{row['images']:,}", *(_cell(row[key]) for key in extra))
    return table


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def _stats_tables(result: stats_pipeline.Stats) -> list[Table]:
    summary = _count_table(f"Images: {result.images:,}", result.by_generator)
    summary.caption = (
        f"unknown generator: {result.unknown_generator:,}   no metadata: "
        f"{result.no_metadata:,}   unreadable (errors table): {result.errors:,}"
    )
    ratings = Table("model", "images", "mean", "1", "2", "3", "4", "5", title="AI ratings")
    for row in result.ratings:
        counts = [f"{row['by_overall'][star]:,}" for star in "12345"]
        ratings.add_row(row["model"], f"{row['images']:,}", f"{row['mean']:.2f}", *counts)
    return [
        summary,
        _count_table("Checkpoints", result.checkpoints),
        _count_table("LoRAs", result.loras, "mean_weight"),
        _count_table("Samplers", result.samplers),
        _count_table("Schedulers", result.schedulers),
        _count_table("Positive tokens", result.pos_tokens),
        _count_table("Negative tokens", result.neg_tokens),
        ratings,
    ]
