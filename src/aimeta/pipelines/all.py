"""all: dump, then ingest, then resolve (no-op without mappings), into one output folder."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aimeta import db, events
from aimeta.pipelines import dump, export, ingest
from aimeta.settings import Settings


@dataclass
class AllResult:
    """The results of each step and the database summary at the end."""

    dump: dump.DumpResult
    ingest: ingest.IngestResult
    summary: dict[str, Any]
    db_path: Path
    exported: bool


def run(
    inputs: list[Path],
    settings: Settings,
    *,
    recursive: bool = True,
    force: bool = False,
    on_event: events.OnEvent = events.ignore,
) -> AllResult:
    """Read every image under ``inputs`` into ``settings.out_dir`` (exif_raw.jsonl, images.db,
    records.jsonl, records.csv)."""
    out_dir = settings.out_dir
    raw = out_dir / "exif_raw.jsonl"
    dumped = dump.run(
        inputs,
        raw,
        recursive=recursive,
        force=force,
        reader=settings.reader,
        exiftool=settings.exiftool,
        on_event=on_event,
    )
    conn = db.connect(settings.db)
    try:
        ingested = ingest.run(raw, conn, batch_size=settings.batch_size, on_event=on_event)
        exports = (out_dir / "records.jsonl", out_dir / "records.csv")
        exported = ingested.lines > 0 or not all(path.exists() for path in exports)
        if exported:
            export.write_jsonl(conn, exports[0])
            export.write_csv(conn, exports[1])
        _resolve(conn, on_event)
        summary = db.summary(conn)
    finally:
        conn.close()
    return AllResult(dumped, ingested, summary, settings.db, exported)


def _resolve(conn: sqlite3.Connection, on_event: events.OnEvent) -> None:
    """Apply the stored model-version mappings (the resolve step; nothing to do without any).

    Imported here: resolve brings the Civitai client along, which the re-run does not need."""
    from aimeta.pipelines import resolve

    resolve.apply_mappings(conn, on_event=on_event)
