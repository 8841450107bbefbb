"""all: dump, then ingest, then resolve (no-op without mappings), into one output folder."""

from __future__ import annotations

import os
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aimeta import db, events, workers
from aimeta.pipelines import dump, export, export_state, ingest, relink
from aimeta.pipelines.prepare import Prepared
from aimeta.settings import Settings

if TYPE_CHECKING:
    from aimeta.pipelines.resolve import ResolveResult


@dataclass
class AllResult:
    """The results of each step and the database summary at the end."""

    dump: dump.DumpResult
    ingest: ingest.IngestResult
    summary: dict[str, Any]
    db_path: Path
    exported: bool
    relinked: relink.RelinkResult
    missing: relink.MissingResult
    # How records.jsonl/records.csv were brought up to date: "unchanged", "merged", "written",
    # or "" when not (a watch batch leaves its changes pending).
    export_how: str = ""


def run(
    inputs: list[Path],
    settings: Settings,
    *,
    recursive: bool = True,
    force: bool = False,
    export_files: bool = True,
    on_event: events.OnEvent = events.ignore,
) -> AllResult:
    """Read every image under ``inputs`` into ``settings.out_dir`` (exif_raw.jsonl, images.db,
    records.jsonl, records.csv; ``export_files=False`` leaves the records files as they are
    and their changes pending, see :func:`store`).

    Reading and storing overlap: worker processes read, parse and tokenize each batch of files
    while this process appends the lines to exif_raw.jsonl and then stores their rows, with
    the ingest position saved in the same transaction. So the files on disk are exactly what
    ``aimeta dump`` followed by ``aimeta ingest`` would write, and a killed run resumes the
    same way.
    """
    found = dump.plan(
        inputs,
        settings.raw_jsonl,
        recursive=recursive,
        force=force,
        reader=settings.reader,
        relink=True,
        on_event=on_event,
    )
    roots = [Path(os.path.abspath(given)) for given in inputs]
    return store(
        found,
        settings,
        [root for root in roots if root.is_dir()],
        export_files=export_files,
        on_event=on_event,
    )


def store(
    found: dump.Plan,
    settings: Settings,
    roots: list[Path],
    *,
    export_files: bool = True,
    summarize: bool = True,
    on_event: events.OnEvent = events.ignore,
) -> AllResult:
    """The rest of :func:`run` for a plan made already (``aimeta watch`` plans the files it saw
    change): re-link moved files (by key, then by content), mark the images under ``roots``
    whose file is gone as missing, read and store the rest; ``export_files``: bring
    records.jsonl and records.csv up to date (merging what changed into them; see
    :mod:`aimeta.pipelines.export_state`), else leave what changed pending for the next run;
    ``summarize``: count what the database holds for the end-of-run summary (counting the
    token rows reads a whole index, 1,000,000 images: 0.45 s; a watch batch prints none)."""
    with export_state.claimed(settings.db) as taken:
        changes = export.Changes()
        result = _store(
            found, settings, roots, changes, taken if export_files else None, summarize, on_event
        )
        if not export_files:
            export_state.defer(taken, changes)
    return result


def _store(
    found: dump.Plan,
    settings: Settings,
    roots: list[Path],
    changes: export.Changes,
    taken: export_state.Claim | None,
    summarize: bool,
    on_event: events.OnEvent,
) -> AllResult:
    """store's work; adds what it changed to ``changes``, and brings the files up to date
    when it holds the claim ``taken``."""
    out_dir = settings.out_dir
    raw = settings.raw_jsonl
    jobs = settings.jobs or workers.default_jobs()
    conn = db.connect(settings.db)
    try:
        moved = relink.apply(conn, found.moved)
        changes.keys.update(item.key for item in found.moved)
        changes.paths.update(item.old_path for item in found.moved)
        dump.remember_moved(raw, found.moved)
        _relink_by_content(conn, found, moved, raw, changes)
        missing = relink.mark_missing(conn, roots) if roots else relink.MissingResult()
        # Lines written but not stored yet (a killed run, or a separate `aimeta dump`) go
        # first: the position saved below assumes everything before it is stored.
        if raw.is_file():
            ingested = ingest.run(raw, conn, batch_size=settings.batch_size, jobs=jobs)
        else:
            ingested = ingest.IngestResult()
        started = time.perf_counter()
        writer = ingest.BatchWriter(
            conn, ingested, settings.batch_size, events.ignore, "ingest", None, threaded=jobs > 1
        )

        def sink(prepared: list[Prepared], end: int) -> None:
            if writer.progress is None:  # the header, and so the identity, exists now
                writer.progress = (str(raw.resolve()), ingest.identity(raw))
            writer.add(prepared, end)

        exports = (out_dir / "records.jsonl", out_dir / "records.csv")
        bulk = ingest.is_bulk(conn, len(found.pending))
        with ThreadPoolExecutor(2, thread_name_prefix="aimeta-after") as background:
            # The writer's thread ends (exit order) before the indexes are rebuilt.
            with db.deferred_indexes(conn, bulk), writer:
                dumped = dump.read(
                    found,
                    reader=settings.reader,
                    exiftool=settings.exiftool,
                    jobs=jobs,
                    sink=sink,
                    on_event=on_event,
                )
                writer.flush()
                if bulk:
                    # A bulk load leaves a large write-ahead log: copying it into the database
                    # (and waiting for the disk) overlaps the index rebuild this way, instead
                    # of following it (3,000 files on a disk: ~0.15 s).
                    background.submit(db.checkpoint, settings.db)
                resolved = _resolve(conn, on_event)
                changes.keys.update(ingested.keys)
                changes.ids.update(resolved.images)
                # The exports read the committed rows through their own connection while
                # this one rebuilds the indexes (SQLite leaves the GIL while it works).
                exporting = (
                    background.submit(_export, settings.db, taken, exports, changes)
                    if taken is not None
                    else None
                )
            refreshed = exporting.result() if exporting is not None else None
        ingested.seconds += time.perf_counter() - started
        # The lines are in the database now (the raw text fields compressed): keeping them
        # twice doubled out/ for ComfyUI workflows (see dump.start_afresh).
        ingest.start_afresh_when_stored(conn, raw)
        summary = db.summary(conn) if summarize else {}
    finally:
        conn.close()
    how = refreshed.how if refreshed is not None else ""
    exported = how in ("merged", "written")
    return AllResult(dumped, ingested, summary, settings.db, exported, moved, missing, how)


def _relink_by_content(
    conn: sqlite3.Connection,
    found: dump.Plan,
    moved: relink.RelinkResult,
    raw: Path,
    changes: export.Changes,
) -> None:
    """Re-link the files of ``found.pending`` that are a stored image whose file is gone, and
    take them out of what is read (counted in ``moved``)."""
    matches = relink.match_by_content(conn, found.pending)
    if not matches:
        return
    done = relink.apply_content(conn, matches)
    moved.images += done.images
    moved.ratings += done.ratings
    changes.ids.update(match.ident for match in matches)
    changes.paths.update(match.moved.old_path for match in matches)
    relinked = {match.moved.path for match in matches}
    found.pending = [item for item in found.pending if item.found.path not in relinked]
    found.result.unchanged += len(relinked)
    dump.remember_moved(raw, [match.moved for match in matches])


def _resolve(conn: sqlite3.Connection, on_event: events.OnEvent) -> ResolveResult:
    """Apply the stored model-version mappings (the resolve step; nothing to do without any).

    Imported here: resolve brings the Civitai client along, which the re-run does not need."""
    from aimeta.pipelines import resolve

    return resolve.apply_mappings(conn, on_event=on_event)


def _export(
    database: Path, taken: export_state.Claim, paths: tuple[Path, Path], changes: export.Changes
) -> export_state.Refreshed:
    conn = db.open_existing(database, readonly=True)
    try:
        return export_state.refresh(conn, taken, *paths, changes)
    finally:
        conn.close()
