"""Where the answers go: the database row, the XMP sidecar and the CSV row of each image.

One output thread writes every answer, in the order the answers came, so a freed model slot
is refilled at once, not after the writes. The thread also owns ExifTool: pyexiftool ties its
process to the thread that starts it, so the process is started there (once the first requests
are out, or at once when a sidecar must be read to skip an image) and lives until the end of
the run. Order of writes per image: database row, then sidecar, then CSV (written every 10
images while it is small, less often as it grows: see csvout). The database is the record a
re-run repairs from (see selection).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import json
import sqlite3
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aimeta import db
from aimeta.errors import AimetaError
from aimeta.pipelines.rate.ask import Outcome
from aimeta.pipelines.rate.options import STAGE, RateOptions
from aimeta.rating.answer import CRITERIA, Rating
from aimeta.rating.csvout import RatingsCsv, default_csv_path
from aimeta.rating.prompt_files import Prompts
from aimeta.rating.sidecar import SidecarRating, SidecarWriter
from aimeta.settings import Settings


@dataclass
class Written:
    """What the output thread did for one rated image."""

    rated_at: str
    sidecar: str | None = None
    problems: list[str] = field(default_factory=list)


class Outputs:
    """The database, the CSV and the sidecar writer of one run, and the thread that writes."""

    def __init__(self, settings: Settings, options: RateOptions, prompts: Prompts) -> None:
        self.settings = settings
        self.options = options
        self.prompts = prompts
        self.model = ""
        self.conn: sqlite3.Connection | None = None
        self.csv: RatingsCsv | None = None
        # Looked up at the start, started later in the output thread (see start_writer).
        self.writer: SidecarWriter | None = None
        self.writer_started: cf.Future[None] | None = None
        self._thread: cf.ThreadPoolExecutor | None = None
        self._warmed_up = False

    # -- opening ---------------------------------------------------------------------------

    def look_up_exiftool(self) -> None:
        """Raise ExifToolMissing before anything is sent when sidecars are to be written; the
        process starts when needed, at the latest once the first requests are out."""
        if self.options.xmp and not self.options.dry_run:
            self.writer = SidecarWriter(self.settings.exiftool, start=False)

    def open(self, model: str) -> Path:
        """Open the CSV and the database for answers of ``model``; return the CSV's path (it
        is read, to skip what it holds, even when no CSV is to be written)."""
        self.model = model
        options = self.options
        csv_path = options.csv_path or default_csv_path(options.folder, model)
        if options.csv or csv_path.is_file():
            self.csv = RatingsCsv(csv_path)
        if options.dry_run:
            if Path(self.settings.db).is_file():
                self.conn = db.open_existing(self.settings.db, readonly=True)
        else:
            self.conn = db.connect(self.settings.db)
            with db.transaction(self.conn):
                self.conn.execute(
                    "INSERT OR IGNORE INTO rating_prompts (prompt_hash, system_prompt, user_prompt)"
                    " VALUES (?, ?, ?)",
                    (self.prompts.prompt_hash, self.prompts.system, self.prompts.user),
                )
        return csv_path

    def thread(self) -> cf.ThreadPoolExecutor:
        """The output thread (started on first use)."""
        if self._thread is None:
            self._thread = cf.ThreadPoolExecutor(1, thread_name_prefix="aimeta-output")
        return self._thread

    # -- ExifTool --------------------------------------------------------------------------

    def start_writer(self) -> None:
        """Have the output thread start ExifTool for sidecars (once; calling thread only). That
        thread lives until the end of the run: pyexiftool ties the process to the thread that
        starts it."""
        if self.writer is None:
            self.writer = SidecarWriter(self.settings.exiftool, start=False)
        if self.writer_started is None:
            self.writer_started = self.thread().submit(self.writer.start)

    def await_writer(self) -> SidecarWriter:
        """Start ExifTool for sidecars if that is not done yet and wait until it runs; raise
        when it cannot start (calling thread only)."""
        self.start_writer()
        assert self.writer is not None and self.writer_started is not None
        self.writer_started.result()
        return self.writer

    def warm_up(self) -> None:
        """Start ExifTool and load what the writes need while the first requests are out
        (before the first write at the latest); once per run, calling thread only."""
        if self._warmed_up:
            return
        self._warmed_up = True
        sidecars = self.options.xmp and self.writer is not None
        if sidecars:
            self.start_writer()
        # pandas (~0.4 s, csvout's first flush needs it) is imported beside ExifTool's
        # warm-up, but only once ExifTool is started: pyexiftool forks with a preexec_fn
        # that loads libc in the child, which must not happen while another thread is
        # loading shared libraries.
        if self.csv is not None:
            self.thread().submit(_import_pandas_in_background)
        if sidecars:
            assert self.writer is not None
            self.thread().submit(self.writer.warm_up)

    # -- writing (the output thread) ---------------------------------------------------------

    def write_rated(self, outcome: Outcome) -> Written:
        """Runs in the output thread: the database row, then the sidecar, then the CSV row."""
        assert outcome.rating is not None and outcome.answer is not None
        if self.options.xmp and self.writer_started is not None:
            # Queued before any write, so done by now; ExifTool that could not start ends
            # the run (as it did when it was started before the first request).
            self.writer_started.result()
        written = Written(rated_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
        self._insert_rating(outcome, written.rated_at)
        if self.options.xmp and self.writer is not None:
            try:
                sidecar = self.writer.write(
                    Path(outcome.path),
                    SidecarRating(
                        outcome.rating, self.model, self.prompts.prompt_hash, written.rated_at
                    ),
                    self.settings.sidecar,
                )
                written.sidecar = str(sidecar)
            except AimetaError as exc:
                written.problems.append(exc.message)
                self.record_error(outcome.path, exc.message)
        if self.options.csv and self.csv is not None:
            self.csv.add(self._csv_row(outcome, written.rated_at))
        return written

    def record_error(self, path: str, reason: str) -> None:
        """Record why ``path`` was not rated in the ``errors`` table (not in a dry run)."""
        if self.conn is not None and not self.options.dry_run:
            with db.transaction(self.conn):
                db.record_error(self.conn, path, STAGE, reason)

    def _insert_rating(self, outcome: Outcome, rated_at: str) -> None:
        assert outcome.rating is not None and outcome.answer is not None
        assert self.conn is not None
        rating, answer = outcome.rating, outcome.answer
        with db.transaction(self.conn):
            self.conn.execute(
                "INSERT INTO ratings (path, model, overall, scores_json, keywords_json,"
                " prompt_tokens, completion_tokens, duration_s, prompt_hash, rated_at, image_id)"
                " VALUES (?,?,?,?,?,?,?,?,?,?, (SELECT id FROM images WHERE path = ?))"
                " ON CONFLICT(path, model) DO UPDATE SET"
                " image_id=COALESCE(excluded.image_id, ratings.image_id),"
                " overall=excluded.overall, scores_json=excluded.scores_json,"
                " keywords_json=excluded.keywords_json, prompt_tokens=excluded.prompt_tokens,"
                " completion_tokens=excluded.completion_tokens, duration_s=excluded.duration_s,"
                " prompt_hash=excluded.prompt_hash, rated_at=excluded.rated_at",
                (
                    outcome.path,
                    self.model,
                    rating.overall,
                    json.dumps(rating.scores),
                    json.dumps(list(rating.keywords)),
                    answer.prompt_tokens,
                    answer.completion_tokens,
                    round(answer.duration_s, 3),
                    self.prompts.prompt_hash,
                    rated_at,
                    outcome.path,
                ),
            )
            db.clear_errors(self.conn, [outcome.path], STAGE)

    def _csv_row(self, outcome: Outcome, rated_at: str) -> dict[str, Any]:
        assert outcome.rating is not None and outcome.answer is not None
        answer = outcome.answer
        return csv_row(
            outcome.path,
            outcome.rating,
            model=self.model,
            rated_at=rated_at,
            prompt_tokens=answer.prompt_tokens,
            completion_tokens=answer.completion_tokens,
            duration_s=round(answer.duration_s, 3),
            prompt_hash=self.prompts.prompt_hash,
            system_prompt=self.prompts.system,
            user_prompt=self.prompts.user,
        )

    # -- closing ---------------------------------------------------------------------------

    def flush(self) -> int:
        """Let the output thread finish what it was given, write the CSV; return its rows
        (0 when there is none or nothing is written)."""
        if self.writer_started is not None and not self.writer_started.cancel():
            cf.wait([self.writer_started])  # a start under way is finished, then closed
        if self._thread is not None:
            self._thread.submit(lambda: None).result()  # the output thread is idle now
        if self.csv is None or self.options.dry_run:
            return 0
        self.csv.flush()
        return len(self.csv)

    def close_writer(self) -> None:
        """Close ExifTool, then end the output thread (the process ends with that thread)."""
        if self.writer is not None:
            self.writer.close()
        if self._thread is not None:
            self._thread.shutdown()

    def close_database(self) -> None:
        if self.conn is not None:
            self.conn.close()


def csv_row(path: str, rating: Rating, **fields: Any) -> dict[str, Any]:
    """One row of the ratings CSV (columns: see csvout)."""
    return {
        "path": path,
        "overall": rating.overall,
        **{key: rating.scores.get(key, "") for key in (c.key for c in CRITERIA)},
        "keywords": list(rating.keywords),
        "timestamp": fields["rated_at"],
        "model": fields["model"],
        "prompt_tokens": fields["prompt_tokens"],
        "completion_tokens": fields["completion_tokens"],
        "duration_s": fields["duration_s"],
        "prompt_hash": fields["prompt_hash"],
        "system_prompt": fields["system_prompt"],
        "user_prompt": fields["user_prompt"],
    }


def _import_pandas_in_background() -> None:
    """Import pandas in a thread of its own; whoever imports it meanwhile waits for it
    (Python's import lock), and an import error shows where pandas is used (csvout)."""
    threading.Thread(target=_import_pandas, name="aimeta-import-pandas", daemon=True).start()


def _import_pandas() -> None:
    with contextlib.suppress(Exception):
        import pandas  # noqa: F401  (loaded for csvout's first flush, not used here)
