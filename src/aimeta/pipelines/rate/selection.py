"""Which images to rate: those of the folder that this model has not rated yet.

An image counts as rated when the database, the CSV or its sidecar holds a rating by the same
model. The database is the record a re-run repairs from: an image rated there but missing from
the CSV or its sidecar gets that row or sidecar written again without asking the model (a run
killed between its writes leaves such images behind).
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aimeta.errors import AimetaError
from aimeta.files import find_images
from aimeta.pipelines.rate.options import RateOptions
from aimeta.pipelines.rate.output import Outputs, csv_row
from aimeta.pipelines.rate.report import Log
from aimeta.rating.answer import Rating
from aimeta.rating.render import IMAGE_SUFFIXES
from aimeta.rating.sidecar import SidecarRating, existing_sidecar, sidecar_model


@dataclass
class Selection:
    """The images to rate, and how many were found, skipped and repaired."""

    todo: list[str]
    found: int
    skipped: int = 0
    repaired: int = 0


def select_images(options: RateOptions, model: str, outputs: Outputs, log: Log) -> Selection:
    """The images of ``options.folder`` to rate with ``model``; with ``skip_existing`` those
    rated already are left out (and their missing CSV rows and sidecars repaired)."""
    paths = _images_in(options, log)
    selection = Selection(todo=[], found=len(paths))
    if not options.skip_existing:
        selection.todo = paths
        return selection
    in_db = _database_rows(outputs.conn, model)
    in_csv = outputs.csv.rated_paths if outputs.csv else set()
    for path in paths:
        in_sidecar = _sidecar_model(path, outputs)
        if path in in_db or path in in_csv or in_sidecar == model:
            selection.skipped += 1
            if path in in_db and not options.dry_run:
                repaired = _repair(path, in_db[path], in_csv, in_sidecar, outputs, log)
                selection.repaired += int(repaired)
        else:
            selection.todo.append(path)
    if selection.skipped:
        log(f"{selection.skipped} image(s) already rated by {model}: skipped", "info")
    return selection


def _images_in(options: RateOptions, log: Log) -> list[str]:
    """The image files of the folder (or the given ones), without the previews a previous run
    kept inside it."""
    found = find_images(
        list(options.paths) if options.paths is not None else [options.folder],
        recursive=options.recursive,
        extensions=IMAGE_SUFFIXES,
        on_error=lambda path, reason: log(f"{path}: {reason}", "warning"),
    )
    preview_dir = os.path.abspath(options.preview_dir) if options.preview_dir else None
    return [
        str(item.path)
        for item in found
        if not (preview_dir and str(item.path).startswith(preview_dir + os.sep))
    ]


def _database_rows(conn: sqlite3.Connection | None, model: str) -> dict[str, sqlite3.Row]:
    """The ratings of ``model`` in the database, by path, with the prompts they were asked
    with (what a repair writes)."""
    if conn is None:
        return {}
    conn.row_factory = sqlite3.Row
    rows = conn.execute(
        "SELECT r.*, p.system_prompt, p.user_prompt FROM ratings r"
        " LEFT JOIN rating_prompts p ON p.prompt_hash = r.prompt_hash WHERE r.model = ?",
        (model,),
    ).fetchall()
    conn.row_factory = None
    return {row["path"]: row for row in rows}


def _sidecar_model(path: str, outputs: Outputs) -> str | None:
    """The model that rated ``path`` according to its sidecar; None without one."""
    sidecar = existing_sidecar(Path(path))
    if sidecar is None:
        return None
    try:
        return sidecar_model(sidecar)
    except (OSError, ValueError):
        pass  # not plain XMP: ExifTool reads what it can, as it will when writing
    info = outputs.await_writer().read(sidecar)
    return info.model if info else None


def _repair(
    path: str,
    row: sqlite3.Row,
    in_csv: set[str],
    in_sidecar: str | None,
    outputs: Outputs,
    log: Log,
) -> bool:
    """Write the CSV row or sidecar that a killed run did not get to, from the database;
    True when something was written."""
    rating = Rating(
        scores=json.loads(row["scores_json"]),
        overall=int(row["overall"]),
        keywords=tuple(json.loads(row["keywords_json"])),
    )
    repaired = False
    if outputs.options.csv and outputs.csv is not None and path not in in_csv:
        outputs.csv.add(_csv_row_of(path, rating, row))
        repaired = True
    if outputs.options.xmp and outputs.writer is not None and in_sidecar != row["model"]:
        writer = outputs.await_writer()
        try:
            writer.write(
                Path(path),
                SidecarRating(rating, row["model"], row["prompt_hash"] or "", row["rated_at"]),
                outputs.settings.sidecar,
            )
            repaired = True
        except AimetaError as exc:
            log(f"{path}: {exc.message}", "error")
    return repaired


def _csv_row_of(path: str, rating: Rating, row: sqlite3.Row) -> dict[str, Any]:
    """The CSV row of a rating read back from the database."""
    return csv_row(
        path,
        rating,
        model=row["model"],
        rated_at=row["rated_at"],
        prompt_tokens=row["prompt_tokens"],
        completion_tokens=row["completion_tokens"],
        duration_s=row["duration_s"],
        prompt_hash=row["prompt_hash"] or "",
        system_prompt=row["system_prompt"] or "",
        user_prompt=row["user_prompt"] or "",
    )
