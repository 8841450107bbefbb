"""One rating job at a time, run in a background thread, watched through a numbered event log.

The web routes start and stop the job and read its state; they never wait for it. Every event
the rate pipeline reports becomes an :class:`Entry` with a sequence number, so a page asks for
"everything after N" (``/log?after=N``, ``/events``) and never misses or repeats a line. The
last entry of a job is always an ``end`` entry carrying the job's summary or its error.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from aimeta import events
from aimeta.errors import AimetaError
from aimeta.pipelines import rate
from aimeta.settings import Settings

# Enough for the whole log of a large folder (about 3 entries per image); older entries drop.
MAX_ENTRIES = 30_000

RunRate = Callable[..., rate.RateResult]


class JobRunning(Exception):
    """A rating job is already running."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One numbered line of the job log.

    ``kind`` is ``job`` (a job begins), ``log``, ``started`` (the number of images is known),
    ``sent`` (an image went to the model), ``item`` (an image's result), ``finished`` or ``end``
    (the job is over: its summary or error).
    """

    seq: int
    kind: str
    text: str
    level: str = "info"
    data: dict[str, Any] = field(default_factory=dict)
    time: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "kind": self.kind,
            "text": self.text,
            "level": self.level,
            "data": self.data,
            "time": round(self.time, 3),
        }


@dataclass
class _JobState:
    """What the page shows about one job (the current one, or the last one)."""

    job_id: int
    folder: Path
    dry_run: bool
    preview_dir: Path
    state: str = "starting"  # starting, running, stopping, finished, stopped, failed
    total: int | None = None
    done: int = 0
    rated: int = 0
    failed: int = 0
    skipped: int = 0
    in_flight: list[str] = field(default_factory=list)
    started_at: float = field(default_factory=time.monotonic)
    first_item_at: float | None = None
    ended_at: float | None = None
    error: str | None = None
    result: dict[str, Any] | None = None
    previews: dict[str, str] = field(default_factory=dict)


class JobRunner:
    """Runs at most one rating job; thread-safe; ``run_rate`` is ``rate.run`` (tests keep it)."""

    def __init__(self, run_rate: RunRate = rate.run) -> None:
        self._run_rate = run_rate
        self._lock = threading.Lock()
        self._entries: deque[Entry] = deque(maxlen=MAX_ENTRIES)
        self._seq = itertools.count(1)
        self._last_seq = 0
        self._job: _JobState | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._job_ids = itertools.count(1)
        self._last_csv: tuple[str, int] | None = None

    # -- control -----------------------------------------------------------------------------

    def start(self, settings: Settings, options: rate.RateOptions) -> dict[str, Any]:
        """Start a job for checked ``options``; raise JobRunning when one runs.

        Returns the job id and the sequence number to read the log after. The job's rendered
        JPEGs go to a private temporary folder (``image_proxy`` serves them); the previous
        job's folder is removed.
        """
        with self._lock:
            if self.running:
                raise JobRunning("a rating job is already running; stop it first")
            if self._job is not None:
                shutil.rmtree(self._job.preview_dir, ignore_errors=True)
            preview_dir = Path(tempfile.mkdtemp(prefix="aimeta-web-previews-"))
            job = _JobState(
                job_id=next(self._job_ids),
                folder=options.folder,
                dry_run=options.dry_run,
                preview_dir=preview_dir,
            )
            self._job = job
            self._stop = threading.Event()
            after = self._last_seq
            options = replace(options, preview_dir=preview_dir)
            self._thread = threading.Thread(
                target=self._work,
                args=(job, settings, options, self._stop),
                name=f"aimeta-web-job-{job.job_id}",
                daemon=True,
            )
            self._add(
                "job",
                f"Job {job.job_id} started on {options.folder}",
                data={"job_id": job.job_id, "folder": str(options.folder)},
            )
            self._thread.start()
        return {"job_id": job.job_id, "after": after}

    def stop(self) -> bool:
        """Ask the running job to stop cleanly; False when nothing runs."""
        with self._lock:
            job = self._job
            if job is None or not self.running:
                return False
            if job.state != "stopping":
                job.state = "stopping"
                self._add("log", "Stop requested: finishing the images in progress", "warning")
            self._stop.set()
            return True

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the job thread to end (for tests and shutdown); True when it ended."""
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def close(self) -> None:
        """Stop the job, wait a little for it, and remove the preview folder."""
        self.stop()
        self.wait(timeout=rate.STOP_GRACE_S + 5)
        with self._lock:
            if self._job is not None:
                shutil.rmtree(self._job.preview_dir, ignore_errors=True)

    @property
    def running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    # -- reading -----------------------------------------------------------------------------

    def entries_after(self, after: int, limit: int = 1000) -> tuple[list[Entry], bool]:
        """Entries with ``seq > after`` (at most ``limit``) and whether older ones were dropped."""
        with self._lock:
            entries = self._entries
            if not entries:
                return [], False
            # Sequence numbers are consecutive, so the first wanted entry's index is known.
            first = max(0, after + 1 - entries[0].seq)
            found = list(itertools.islice(entries, first, first + limit))
            return found, entries[0].seq > after + 1

    @property
    def last_seq(self) -> int:
        with self._lock:
            return self._last_seq

    def job_folder(self) -> Path | None:
        """The folder of the current or last job."""
        with self._lock:
            return self._job.folder if self._job else None

    def preview_for(self, image_path: str) -> Path | None:
        """The rendered JPEG of an image of the current or last job, when there is one."""
        with self._lock:
            if self._job is None:
                return None
            preview = self._job.previews.get(image_path)
            return Path(preview) if preview else None

    def status(self) -> dict[str, Any]:
        """State, done/total, images being rated, counts, ETA, CSV path and rows."""
        with self._lock:
            job = self._job
            if job is None:
                return {
                    "state": "idle",
                    "job_id": None,
                    "last_seq": self._last_seq,
                    "counts": {"rated": 0, "skipped": 0, "failed": 0},
                    "csv_path": None,
                    "csv_rows": 0,
                }
            now = time.monotonic()
            elapsed = (job.ended_at or now) - job.started_at
            csv_path, csv_rows = self._last_csv or (None, 0)
            return {
                "state": job.state,
                "job_id": job.job_id,
                "folder": str(job.folder),
                "dry_run": job.dry_run,
                "done": job.done,
                "total": job.total,
                "current": job.in_flight[-1] if job.in_flight else None,
                "in_flight": list(job.in_flight),
                "counts": {"rated": job.rated, "skipped": job.skipped, "failed": job.failed},
                "elapsed_s": round(elapsed, 1),
                "eta_s": _eta(job, now),
                "error": job.error,
                "csv_path": csv_path,
                "csv_rows": csv_rows,
                "result": job.result,
                "last_seq": self._last_seq,
            }

    def last_csv(self) -> Path | None:
        """The CSV written by the last job that wrote one."""
        with self._lock:
            return Path(self._last_csv[0]) if self._last_csv else None

    # -- the job thread ----------------------------------------------------------------------

    def _work(
        self,
        job: _JobState,
        settings: Settings,
        options: rate.RateOptions,
        stop: threading.Event,
    ) -> None:
        with self._lock:
            if job.state == "starting":
                job.state = "running"
        result: rate.RateResult | None = None
        error: str | None = None
        try:
            result = self._run_rate(
                settings, options, on_event=lambda event: self._on_event(job, event), stop=stop
            )
        except AimetaError as exc:
            error = exc.message
        except Exception as exc:  # the page must learn that the job ended, whatever broke
            error = f"unexpected error: {exc!r}"
        with self._lock:
            job.ended_at = time.monotonic()
            job.in_flight.clear()
            if result is not None:
                summary = result.to_dict()
                job.result = summary
                job.skipped = result.skipped
                job.rated, job.failed = result.rated, result.failed
                if result.csv_path is not None and result.csv_path.is_file():
                    self._last_csv = (str(result.csv_path), result.csv_rows)
                if result.aborted:
                    job.state, job.error = "failed", result.aborted
                else:
                    job.state = "stopped" if result.stopped else "finished"
            else:
                job.state, job.error = "failed", error
            self._add("end", _end_line(job), "error" if job.error else "info", self._end_data(job))

    def _on_event(self, job: _JobState, event: events.Event) -> None:
        with self._lock:
            if isinstance(event, events.Log):
                self._add("log", event.message, event.level)
            elif isinstance(event, events.Started):
                job.total = event.total
                self._add("started", f"{event.total} image(s) to rate", data={"total": event.total})
            elif isinstance(event, events.Progress):
                self._progress(job, event)
            elif isinstance(event, events.ItemResult):
                self._item(job, event)
            elif isinstance(event, events.Finished):
                self._add("finished", f"{event.stage} finished")

    def _progress(self, job: _JobState, event: events.Progress) -> None:
        item = event.item or ""
        if event.advance == 0:
            job.in_flight.append(item)
            self._add("sent", f"rating {Path(item).name}", "debug", {"path": item})
            return
        job.done += event.advance
        if job.first_item_at is None:
            job.first_item_at = time.monotonic()
        if item in job.in_flight:
            job.in_flight.remove(item)

    def _item(self, job: _JobState, event: events.ItemResult) -> None:
        data = dict(event.data)
        data.setdefault("path", event.item)
        preview = data.pop("preview", None)
        if preview:
            job.previews[event.item] = str(preview)
        data["has_preview"] = bool(preview)
        data["ok"] = event.ok
        name = Path(event.item).name
        if data.get("dry_run"):
            job.done += 1
            self._add("item", f"would rate {event.item}", data=data)
        elif event.ok:
            job.rated += 1
            self._add("item", f"{data.get('overall', '?')}/5  {name}", data=data)
        else:
            job.failed += 1
            self._add("item", f"failed {name}: {data.get('reason', '')}", "error", data)

    def _end_data(self, job: _JobState) -> dict[str, Any]:
        csv_path, csv_rows = self._last_csv or (None, 0)
        return {
            "job_id": job.job_id,
            "state": job.state,
            "error": job.error,
            "result": job.result,
            "csv_path": csv_path,
            "csv_rows": csv_rows,
        }

    def _add(
        self,
        kind: str,
        text: str,
        level: str = "info",
        data: dict[str, Any] | None = None,
    ) -> None:
        # Called with self._lock held.
        seq = next(self._seq)
        self._entries.append(Entry(seq, kind, text, level, data or {}))
        self._last_seq = seq


def _eta(job: _JobState, now: float) -> float | None:
    """Seconds left, from the pace since the first finished image; None until it is known."""
    if job.total is None or job.first_item_at is None or job.ended_at is not None:
        return None
    left = job.total - job.done
    if left <= 0:
        return 0.0
    finished_since_first = job.done - 1
    if finished_since_first <= 0:
        # One image done: its time from the start is the only pace there is.
        per_image = (job.first_item_at - job.started_at) / max(job.done, 1)
    else:
        per_image = (now - job.first_item_at) / finished_since_first
    return round(per_image * left, 1)


def _end_line(job: _JobState) -> str:
    if job.error:
        return f"Job {job.job_id} {job.state}: {job.error}"
    return (
        f"Job {job.job_id} {job.state}: {job.rated} rated, {job.skipped} skipped, "
        f"{job.failed} failed"
    )
