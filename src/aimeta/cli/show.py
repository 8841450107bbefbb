"""The ``show`` command: one image's stored record and, on request, its raw metadata text."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from aimeta import db, settings
from aimeta.cli.common import app, handle_errors, setting_option, stdout
from aimeta.pipelines import show as show_pipeline

DbOption = Annotated[Path | None, setting_option("db", "--db", annotated=True)]


@app.command("show")
@handle_errors
def show(
    path: Annotated[str, typer.Argument(help="The image file (or its stored key).")],
    raw: Annotated[
        bool, typer.Option("--raw", help="Also print the raw metadata text read from the file.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the record as JSON.")] = False,
    db_path: DbOption = None,
) -> None:
    """One image's stored record: path, generator, prompts, parameters, resources, ratings.

    --raw adds the metadata text fields as read from the file (stored compressed, so DB
    Browser shows them as a blob).

    Example: aimeta show Input/fox.png --raw

    Example: aimeta show Input/fox.png --json | jq .parameters
    """
    with closing(db.open_existing(settings.resolve({"db": db_path}).db, readonly=True)) as conn:
        info = show_pipeline.stored_record(conn, path, raw=raw)
    if as_json:
        stdout.print_json(orjson.dumps(info).decode())
        return
    for line in record_lines(info):
        stdout.print(line, highlight=False, markup=False)


def record_lines(info: dict[str, Any]) -> list[str]:
    """The record as text, one field per line; long texts (prompts, raw fields) follow their
    name on lines of their own."""
    facts = [
        f"{info['width']}x{info['height']}" if info["width"] is not None else "",
        f"{info['size']:,} bytes" if info["size"] is not None else "",
        f"read by {info['reader']}" if info["reader"] else "",
    ]
    known = ", ".join(fact for fact in facts if fact)
    lines = [
        f"path: {info['path']}",
        f"generator: {info['generator']}" + (f"  ({known})" if known else ""),
    ]
    for name, key in (("prompt", "prompt"), ("negative prompt", "negative_prompt")):
        if info[key] is not None:
            lines += [f"{name}:", f"  {info[key]}"]
    lines += _section("parameters", [f"{k}: {v}" for k, v in sorted(info["parameters"].items())])
    lines += _section("resources", [_resource(item) for item in info["resources"]])
    lines += _section("ratings", _ratings(info))
    lines += _section("errors", [f"{e['stage']}: {e['reason']}" for e in info["errors"]])
    if "raw" in info:
        fields = info["raw"] or {}
        lines += ["raw metadata:"] if fields else ["raw metadata: (none stored)"]
        for name, text in fields.items():
            lines += [f"  {name}:", *(f"    {part}" for part in str(text).splitlines())]
    return lines


def _section(title: str, items: list[str]) -> list[str]:
    return [f"{title}:", *(f"  {item}" for item in items)] if items else []


def _resource(item: dict[str, Any]) -> str:
    weight = f" weight {item['weight']}" if item["weight"] is not None else ""
    known = f" = {item['civitai_name']}" if item["civitai_name"] else ""
    hashed = f" hash {item['hash']}" if item["hash"] else ""
    return f"{item['kind']} {item['name']}{weight}{hashed}{known}"


def _ratings(info: dict[str, Any]) -> list[str]:
    lines = [
        f"AI {rating['model']}: {rating['overall']}/5 ({rating['rated_at']})"
        for rating in info["ai_ratings"]
    ]
    user = info["user_rating"]
    if user:
        marks = [f"{user['stars']} stars" if user.get("stars") is not None else ""]
        marks += ["pick" if user.get("pick") else "", "reject" if user.get("reject") else ""]
        marks += [f"label {user['label']}" if user.get("label") else ""]
        lines.append(f"yours: {', '.join(m for m in marks if m) or 'none'}")
    if info["cull"]:
        lines.append(f"cull: {info['cull']['decision']} (group {info['cull']['group']})")
    return lines
