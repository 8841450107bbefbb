"""The rating job: render images, ask a vision model, write sidecars, CSV and the database.

Stable API (used by ``aimeta rate`` and the web page)::

    from aimeta.pipelines import rate
    options = rate.RateOptions(folder=Path("photos"), xmp=True, csv=True)
    problems = rate.check_options(settings, options)   # {field: message}, empty when fine
    result = rate.run(settings, options, on_event=callback, stop=threading.Event())

``run`` reports through ``on_event`` (aimeta.events) and returns a :class:`RateResult`:

- ``Log`` lines (which model and server, what is skipped, warnings);
- ``Started("rate", total)`` once the images to rate are known;
- ``Progress("rate", advance=0, item=path)`` when an image is sent to the model, and
  ``Progress("rate", advance=1, item=path)`` when it is finished (rated or failed);
- ``ItemResult("rate", item=path, ok, data)`` per image: ``data`` holds path, overall, scores,
  keywords, model, tokens, duration_s, sidecar, preview (the rendered JPEG when
  ``options.preview_dir`` is set) -- or ``reason`` when ``ok`` is False;
- ``Finished("rate")``.

Setting ``stop`` ends the run cleanly: nothing new is started, calls in flight are given up
to ``STOP_GRACE_S`` to finish, and every output is flushed. Bad images are per-image errors
(recorded in the ``errors`` table with stage ``rate``); a missing model server, a wrong
option or an unwritable CSV raise AimetaError.

Order of writes per image: database row, then sidecar, then CSV (written every 10 images
while it is small, less often as it grows: see csvout).
The database is the record a re-run repairs from: an image rated there but missing from the
CSV or its sidecar gets that row or sidecar written again without asking the model.

Threads: the calling thread renders (through a pool) and hands images to the model threads;
one output thread writes every answer (database, sidecar, CSV, in the order the answers came),
so a freed model slot is refilled at once, not after the writes. ExifTool is looked up at the
start (ExifToolMissing before anything is sent); the output thread starts its process once the
first requests are out (at once when a sidecar must be read to skip an image and aimeta's
own reader does not take it on) and warms it up,
while pandas is imported beside it. Events are reported from the calling thread only; an
image's ``ItemResult`` comes once its outputs are written, and ``run`` returns once every
answer received is written.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import functools
import hashlib
import importlib
import json
import os
import sqlite3
import statistics
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from aimeta import db, events
from aimeta.errors import AimetaError, ModelServerError, RatingError, UsageError
from aimeta.files import find_images
from aimeta.rating import prompt_files
from aimeta.rating.answer import CRITERIA, Rating, fill_user_prompt, json_schema, parse_answer
from aimeta.rating.client import ChatAnswer, ModelClient, ServerUnreachable
from aimeta.rating.csvout import RatingsCsv, default_csv_path
from aimeta.rating.lock import FolderLock
from aimeta.rating.render import CONVERTERS, IMAGE_SUFFIXES, Rendered, Renderer
from aimeta.rating.sidecar import (
    SIDECAR_STYLES,
    SidecarRating,
    SidecarWriter,
    existing_sidecar,
    sidecar_model,
)
from aimeta.settings import Settings

STAGE = "rate"
STOP_GRACE_S = 30.0
# This many images in a row failing because no server answers ends the run.
UNREACHABLE_LIMIT = 8


@dataclass(frozen=True)
class RateOptions:
    """What to rate and where the answers go (the rest comes from Settings)."""

    folder: Path
    xmp: bool = True
    csv: bool = True
    csv_path: Path | None = None
    recursive: bool = False
    skip_existing: bool = True
    dry_run: bool = False
    preview_dir: Path | None = None


@dataclass
class RateResult:
    """The summary of one run."""

    model: str = ""
    api_urls: tuple[str, ...] = ()
    converter: str = ""
    found: int = 0
    rated: int = 0
    skipped: int = 0
    failed: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    overall: list[int] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    wall_s: float = 0.0
    csv_path: Path | None = None
    csv_rows: int = 0
    repaired: int = 0
    stopped: bool = False
    aborted: str | None = None
    dry_run: bool = False
    to_rate: list[str] = field(default_factory=list)

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.overall) if self.overall else None

    @property
    def median(self) -> float | None:
        return statistics.median(self.overall) if self.overall else None

    @property
    def histogram(self) -> dict[int, int]:
        """Images per overall star count, 1 to 5."""
        counts = Counter(self.overall)
        return {stars: counts.get(stars, 0) for stars in range(1, 6)}

    @property
    def failure_reasons(self) -> dict[str, int]:
        """How many images failed for each reason."""
        return dict(Counter(reason for _path, reason in self.failures).most_common())

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON output and the web page."""
        return {
            "model": self.model,
            "api_urls": list(self.api_urls),
            "converter": self.converter,
            "found": self.found,
            "rated": self.rated,
            "skipped": self.skipped,
            "failed": self.failed,
            "failures": [{"path": p, "reason": r} for p, r in self.failures],
            "mean": self.mean,
            "median": self.median,
            "histogram": self.histogram,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "wall_s": round(self.wall_s, 3),
            "csv_path": str(self.csv_path) if self.csv_path else None,
            "csv_rows": self.csv_rows,
            "repaired": self.repaired,
            "stopped": self.stopped,
            "aborted": self.aborted,
            "dry_run": self.dry_run,
        }


def check_options(settings: Settings, options: RateOptions) -> dict[str, str]:
    """Problems with the settings and options, as ``{field: message}``; empty when all fit."""
    problems: dict[str, str] = {}
    if not options.folder.is_dir():
        problems["folder"] = f"{options.folder} is not a folder"
    if not options.xmp and not options.csv:
        problems["xmp"] = "at least one output is needed: XMP sidecars or the CSV"
    if not settings.api_urls:
        problems["api_urls"] = "no model server URL given"
    for url in settings.api_urls:
        if not url.startswith(("http://", "https://")):
            problems["api_urls"] = f"{url!r} is not an http(s) URL"
    if settings.workers < 1 or settings.workers > 64:
        problems["workers"] = "workers must be between 1 and 64"
    if not 64 <= settings.size <= 8192:
        problems["size"] = "size must be between 64 and 8192 pixels"
    if not 1 <= settings.quality <= 100:
        problems["quality"] = "quality must be between 1 and 100"
    if not 0.0 <= settings.temperature <= 2.0:
        problems["temperature"] = "temperature must be between 0 and 2"
    if settings.converter not in CONVERTERS:
        problems["converter"] = f"converter must be one of {', '.join(CONVERTERS)}"
    if settings.sidecar not in SIDECAR_STYLES:
        problems["sidecar"] = f"sidecar must be one of {', '.join(SIDECAR_STYLES)}"
    if settings.max_tokens < 16:
        problems["max_tokens"] = "max_tokens must be at least 16"
    if settings.max_keywords < 0:
        problems["max_keywords"] = "max_keywords cannot be negative"
    for name in ("system_prompt", "user_prompt"):
        given = getattr(settings, name)
        if given is not None and not Path(given).is_file():
            problems[name] = f"prompt file {given} not found"
    return problems


def run(
    settings: Settings,
    options: RateOptions,
    *,
    on_event: events.OnEvent = events.ignore,
    stop: threading.Event | None = None,
    transport: httpx.BaseTransport | None = None,
) -> RateResult:
    """Rate the images of ``options.folder``; see the module docstring for events and stop."""
    problems = check_options(settings, options)
    if problems:
        raise UsageError("; ".join(problems.values()))
    job = _Job(settings, options, on_event, stop or threading.Event(), transport)
    return job.run()


@dataclass
class _Done:
    """A finished model call (or its failure), handed back to the main thread."""

    path: str
    client: ModelClient
    rating: Rating | None = None
    answer: ChatAnswer | None = None
    reason: str | None = None
    unreachable: bool = False
    preview: str | None = None


@dataclass
class _Written:
    """What the output thread did for one rated image."""

    rated_at: str
    sidecar: str | None = None
    problems: list[str] = field(default_factory=list)


class _Job:
    def __init__(
        self,
        settings: Settings,
        options: RateOptions,
        on_event: events.OnEvent,
        stop: threading.Event,
        transport: httpx.BaseTransport | None,
    ) -> None:
        self.settings = settings
        self.options = options
        self.emit = on_event
        self.stop = stop
        self.transport = transport
        self.result = RateResult(dry_run=options.dry_run)
        self.prompts = prompt_files.load(settings)
        self.user_prompt = fill_user_prompt(self.prompts.user, settings.max_keywords)
        self.clients: list[ModelClient] = []
        self.in_flight: Counter[int] = Counter()
        self.conn: sqlite3.Connection | None = None
        # Looked up at the start, started later in the output thread (see _start_writer).
        self.writer: SidecarWriter | None = None
        self.writer_started: cf.Future[None] | None = None
        self.csv: RatingsCsv | None = None
        # The one thread that writes outputs while images are rated (and starts ExifTool).
        self.output: cf.ThreadPoolExecutor | None = None

    # -- the run ---------------------------------------------------------------------------

    def run(self) -> RateResult:
        started = time.monotonic()
        # One writer per folder: a second job stops here at once (FolderBusy) instead of
        # overwriting the first one's CSV rows and sidecars. A dry run writes nothing.
        lock = contextlib.nullcontext() if self.options.dry_run else FolderLock(self.options.folder)
        with lock:
            try:
                if self.options.xmp and not self.options.dry_run:
                    # Only looked up here (ExifToolMissing before anything is sent); its
                    # process starts when needed, at the latest once the first requests are out.
                    self.writer = SidecarWriter(self.settings.exiftool, start=False)
                self._connect_servers()
                self._open_outputs()
                todo = self._select_images()
                if self.options.dry_run:
                    self._report_dry_run(todo)
                elif todo:
                    self._rate_all(todo)
            finally:
                self.result.wall_s = time.monotonic() - started
                self._close()
        return self.result

    def _connect_servers(self) -> None:
        settings = self.settings
        problems: list[str] = []
        model = settings.model
        for url in dict.fromkeys(settings.api_urls):
            client = ModelClient(
                url,
                api_key=settings.api_key,
                timeout=settings.request_timeout,
                max_retries=settings.max_retries,
                backoff=settings.retry_backoff,
                transport=self.transport,
                stop=self.stop,
                max_connections=settings.workers + 2,
            )
            # Probing /models once, without retries, tells at start whether the server is up.
            probe = ModelClient(
                url, api_key=settings.api_key, timeout=10, max_retries=0, transport=self.transport
            )
            try:
                models = [m.id for m in probe.list_models()]
            except ServerUnreachable as exc:
                problems.append(exc.message)
                client.close()
                continue
            except ModelServerError as exc:
                models = []  # no /models on this server; usable when --model is given
                self._log(f"{url}: cannot list models ({exc.message})", "warning")
            finally:
                probe.close()
            if not model:
                if not models:
                    problems.append(f"{url} has no model loaded: load a vision model in it")
                    client.close()
                    continue
                model = models[0]
                self._log(f"Using model {model} (loaded on {url}; choose one with --model)")
            elif models and model not in models:
                self._log(f"{url} does not list model {model}; trying it anyway", "warning")
            self.clients.append(client)
        if not self.clients:
            raise ModelServerError(
                "; ".join(problems)
                + ". Start the model server (LM Studio: load a vision model and start the "
                "server) or pass --api-url"
            )
        for problem in problems:
            self._log(f"{problem}; rating with the other servers", "warning")
        self.result.model = model
        self.result.api_urls = tuple(c.base_url for c in self.clients)

    def _open_outputs(self) -> None:
        options, settings = self.options, self.settings
        self.result.csv_path = options.csv_path or default_csv_path(
            options.folder, self.result.model
        )
        if options.csv or self.result.csv_path.is_file():
            self.csv = RatingsCsv(self.result.csv_path)
        if options.dry_run:
            if Path(settings.db).is_file():
                self.conn = db.open_existing(settings.db, readonly=True)
        else:
            self.conn = db.connect(settings.db)
            with db.transaction(self.conn):
                self.conn.execute(
                    "INSERT OR IGNORE INTO rating_prompts (prompt_hash, system_prompt, user_prompt)"
                    " VALUES (?, ?, ?)",
                    (self.prompts.prompt_hash, self.prompts.system, self.prompts.user),
                )

    def _select_images(self) -> list[str]:
        options = self.options
        found = find_images(
            [options.folder],
            recursive=options.recursive,
            extensions=IMAGE_SUFFIXES,
            on_error=lambda path, reason: self._log(f"{path}: {reason}", "warning"),
        )
        preview_dir = os.path.abspath(options.preview_dir) if options.preview_dir else None
        paths = [
            str(item.path)
            for item in found
            if not (preview_dir and str(item.path).startswith(preview_dir + os.sep))
        ]
        self.result.found = len(paths)
        if not options.skip_existing:
            return paths
        in_db = self._db_rows()
        in_csv = self.csv.rated_paths if self.csv else set()
        todo: list[str] = []
        for path in paths:
            sidecar_model = self._sidecar_model(path)
            if path in in_db or path in in_csv or sidecar_model == self.result.model:
                self.result.skipped += 1
                if path in in_db and not options.dry_run:
                    self._repair(path, in_db[path], in_csv, sidecar_model)
            else:
                todo.append(path)
        if self.result.skipped:
            self._log(
                f"{self.result.skipped} image(s) already rated by {self.result.model}: skipped"
            )
        return todo

    def _sidecar_model(self, path: str) -> str | None:
        sidecar = existing_sidecar(Path(path))
        if sidecar is None:
            return None
        try:
            return sidecar_model(sidecar)
        except (OSError, ValueError):
            pass  # not plain XMP: ExifTool reads what it can, as it will when writing
        self._await_writer()
        assert self.writer is not None
        info = self.writer.read(sidecar)
        return info.model if info else None

    def _start_writer(self) -> None:
        """Have the output thread start ExifTool for sidecars (once; calling thread only). That
        thread lives until the end of the run: pyexiftool ties the process to the thread that
        starts it."""
        if self.writer is None:
            self.writer = SidecarWriter(self.settings.exiftool, start=False)
        if self.writer_started is None:
            self.writer_started = self._output().submit(self.writer.start)

    def _await_writer(self) -> None:
        """Start ExifTool for sidecars if that is not done yet and wait until it runs; raise
        when it cannot start (calling thread only)."""
        self._start_writer()
        assert self.writer_started is not None
        self.writer_started.result()

    def _output(self) -> cf.ThreadPoolExecutor:
        if self.output is None:
            self.output = cf.ThreadPoolExecutor(1, thread_name_prefix="aimeta-output")
        return self.output

    def _db_rows(self) -> dict[str, sqlite3.Row]:
        if self.conn is None:
            return {}
        self.conn.row_factory = sqlite3.Row
        rows = self.conn.execute(
            "SELECT r.*, p.system_prompt, p.user_prompt FROM ratings r"
            " LEFT JOIN rating_prompts p ON p.prompt_hash = r.prompt_hash WHERE r.model = ?",
            (self.result.model,),
        ).fetchall()
        self.conn.row_factory = None
        return {row["path"]: row for row in rows}

    def _repair(
        self, path: str, row: sqlite3.Row, in_csv: set[str], sidecar_model: str | None
    ) -> None:
        """Write the CSV row or sidecar that a killed run did not get to, from the database."""
        rating = Rating(
            scores=json.loads(row["scores_json"]),
            overall=int(row["overall"]),
            keywords=tuple(json.loads(row["keywords_json"])),
        )
        repaired = False
        if self.options.csv and self.csv is not None and path not in in_csv:
            self.csv.add(
                _csv_row(
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
            )
            repaired = True
        if self.options.xmp and self.writer is not None and sidecar_model != row["model"]:
            self._await_writer()
            try:
                self.writer.write(
                    Path(path),
                    SidecarRating(rating, row["model"], row["prompt_hash"] or "", row["rated_at"]),
                    self.settings.sidecar,
                )
                repaired = True
            except AimetaError as exc:
                self._log(f"{path}: {exc.message}", "error")
        self.result.repaired += int(repaired)

    def _report_dry_run(self, todo: list[str]) -> None:
        self.result.to_rate = todo
        self.emit(events.Started(STAGE, total=len(todo)))
        for path in todo:
            self.emit(events.ItemResult(STAGE, path, True, {"path": path, "dry_run": True}))
        self.emit(events.Finished(STAGE))

    # -- rendering and model calls in parallel --------------------------------------------

    def _rate_all(self, todo: list[str]) -> None:
        settings = self.settings
        workers = settings.workers
        render_workers = max(1, min(workers, os.cpu_count() or 1))
        renderer = Renderer(
            size=settings.size,
            quality=settings.quality,
            converter=settings.converter,
            darktable_cli=settings.darktable_cli,
            exiftool=settings.exiftool,
            timeout=settings.render_timeout,
        )
        self.result.converter = renderer.converter
        self._log(
            f"Rating {len(todo)} image(s) with {self.result.model} on "
            f"{', '.join(self.result.api_urls)} ({workers} at once, rendering with "
            f"{renderer.converter})"
        )
        self.emit(events.Started(STAGE, total=len(todo)))
        waiting = deque(todo)
        ready: deque[tuple[str, Rendered]] = deque()
        renders: dict[cf.Future[Any], str] = {}
        calls: dict[cf.Future[Any], str] = {}
        # Outputs being written, in the order handed over, each with what the calling thread
        # does once it is written (count it, report it).
        writes: dict[cf.Future[Any], Callable[[Any], None]] = {}
        output = self._output()
        render_pool = cf.ThreadPoolExecutor(render_workers, thread_name_prefix="aimeta-render")
        model_pool = cf.ThreadPoolExecutor(workers, thread_name_prefix="aimeta-model")
        unreachable_in_a_row = 0
        stop_seen_at: float | None = None
        warmed_up = False

        def failed(path: str, reason: str) -> None:
            future = output.submit(self._record_error, path, reason)
            writes[future] = lambda _none: self._failed(path, reason)

        def warm_up() -> None:
            """Start ExifTool and load what the writes need while the first requests are out
            (before the first write at the latest)."""
            nonlocal warmed_up
            if not warmed_up:
                warmed_up = True
                if self.options.xmp and self.writer is not None:
                    self._start_writer()
                # pandas (~0.4 s, csvout's first flush needs it) is imported beside ExifTool's
                # warm-up, but only once ExifTool is started: pyexiftool forks with a
                # preexec_fn that loads libc in the child, which must not happen while
                # another thread is loading shared libraries.
                if self.csv is not None:
                    output.submit(_import_in_background, "pandas")
                if self.options.xmp and self.writer is not None:
                    output.submit(self.writer.warm_up)

        def top_up() -> None:
            if self.stop.is_set():
                return
            # Render ahead so a model slot never waits for the renderer.
            while waiting and len(renders) + len(ready) < workers + render_workers:
                path = waiting.popleft()
                renders[render_pool.submit(renderer.render, Path(path))] = path
            while ready and len(calls) < workers:
                path, rendered = ready.popleft()
                client = min(self.clients, key=lambda c: self.in_flight[id(c)])
                self.in_flight[id(client)] += 1
                self.emit(events.Progress(STAGE, advance=0, item=path))
                calls[model_pool.submit(self._ask, path, rendered, client)] = path
            if calls and (len(calls) >= workers or not waiting):
                warm_up()

        try:
            while waiting or ready or renders or calls or writes:
                if self.stop.is_set():
                    if stop_seen_at is None:
                        stop_seen_at = time.monotonic()
                        self.result.stopped = True
                        self._log("Stopping: finishing the images in progress", "warning")
                        waiting.clear()
                        ready.clear()
                        for future in renders:
                            future.cancel()
                        renders.clear()
                    if not calls or time.monotonic() - stop_seen_at > STOP_GRACE_S:
                        break
                top_up()
                done, _pending = cf.wait(
                    [*renders, *calls, *writes], timeout=0.2, return_when=cf.FIRST_COMPLETED
                )
                for future in done:
                    if future in renders:
                        path = renders.pop(future)
                        try:
                            ready.append((path, future.result()))
                        except AimetaError as exc:
                            failed(path, exc.message)
                        except Exception as exc:  # a renderer bug must not end the run
                            failed(path, f"cannot render: {exc!r}")
                    elif future in calls:
                        calls.pop(future)
                        outcome: _Done = future.result()
                        self.in_flight[id(outcome.client)] -= 1
                        if outcome.rating is not None and outcome.answer is not None:
                            unreachable_in_a_row = 0
                            warm_up()  # queued before the first write
                            writes[output.submit(self._write_rated, outcome)] = functools.partial(
                                self._rated, outcome
                            )
                        else:
                            unreachable_in_a_row = (
                                unreachable_in_a_row + 1 if outcome.unreachable else 0
                            )
                            failed(outcome.path, outcome.reason or "no answer")
                # Refill the freed model slots first: the server never waits for the writes.
                top_up()
                self._report_written(writes, done)
                if unreachable_in_a_row >= UNREACHABLE_LIMIT and not self.stop.is_set():
                    self.result.aborted = (
                        f"{unreachable_in_a_row} images in a row found no model server; "
                        "stopped (re-run to rate the rest)"
                    )
                    self._log(self.result.aborted, "error")
                    self.stop.set()
            # After a stop: the answers that came are written before the run ends.
            self._report_written(writes, writes)
        finally:
            render_pool.shutdown(wait=False, cancel_futures=True)
            model_pool.shutdown(wait=False, cancel_futures=True)
            # After an error too, the output thread finishes what it was given (answers
            # already paid for reach the database) before the outputs are closed.
            cf.wait(writes)
            renderer.close()
            self.emit(events.Finished(STAGE))

    def _report_written(
        self, writes: dict[cf.Future[Any], Callable[[Any], None]], done: Collection[Any]
    ) -> None:
        """Report the outputs written among ``done`` (waiting for them), in the order they were
        handed to the output thread; an error of the output thread is raised here."""
        for future in [f for f in writes if f in done]:
            then = writes.pop(future)
            then(future.result())

    def _ask(self, path: str, rendered: Rendered, client: ModelClient) -> _Done:
        """Runs in a model thread: one chat call and the parsing of its answer."""
        done = _Done(path=path, client=client)
        try:
            if self.options.preview_dir is not None:
                done.preview = self._save_preview(path, rendered)
            answer = client.chat(
                model=self.result.model,
                system_prompt=self.prompts.system,
                user_prompt=self.user_prompt,
                image_jpeg=rendered.jpeg,
                temperature=self.settings.temperature,
                max_tokens=self.settings.max_tokens,
                schema=json_schema(CRITERIA),
            )
            done.answer = answer
            done.rating = parse_answer(answer.text, max_keywords=self.settings.max_keywords)
        except ServerUnreachable as exc:
            done.reason, done.unreachable = exc.message, True
        except RatingError as exc:
            done.reason = exc.message
        except AimetaError as exc:
            done.reason = exc.message
        except Exception as exc:  # keep the run going; the reason says what broke
            done.reason = f"unexpected error: {exc!r}"
        return done

    def _save_preview(self, path: str, rendered: Rendered) -> str:
        assert self.options.preview_dir is not None
        folder = Path(self.options.preview_dir)
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / (hashlib.sha1(path.encode("utf-8")).hexdigest()[:20] + ".jpg")
        target.write_bytes(rendered.jpeg)
        return str(target)

    # -- results ---------------------------------------------------------------------------

    def _write_rated(self, outcome: _Done) -> _Written:
        """Runs in the output thread: the database row, then the sidecar, then the CSV row."""
        assert outcome.rating is not None and outcome.answer is not None
        path, rating, answer = outcome.path, outcome.rating, outcome.answer
        model = self.result.model
        if self.options.xmp and self.writer_started is not None:
            # Queued before any write, so done by now; ExifTool that could not start ends
            # the run (as it did when it was started before the first request).
            self.writer_started.result()
        written = _Written(rated_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
        assert self.conn is not None
        with db.transaction(self.conn):
            self.conn.execute(
                "INSERT INTO ratings (path, model, overall, scores_json, keywords_json,"
                " prompt_tokens, completion_tokens, duration_s, prompt_hash, rated_at)"
                " VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT(path, model) DO UPDATE SET"
                " overall=excluded.overall, scores_json=excluded.scores_json,"
                " keywords_json=excluded.keywords_json, prompt_tokens=excluded.prompt_tokens,"
                " completion_tokens=excluded.completion_tokens, duration_s=excluded.duration_s,"
                " prompt_hash=excluded.prompt_hash, rated_at=excluded.rated_at",
                (
                    path,
                    model,
                    rating.overall,
                    json.dumps(rating.scores),
                    json.dumps(list(rating.keywords)),
                    answer.prompt_tokens,
                    answer.completion_tokens,
                    round(answer.duration_s, 3),
                    self.prompts.prompt_hash,
                    written.rated_at,
                ),
            )
            db.clear_errors(self.conn, [path], STAGE)
        if self.options.xmp and self.writer is not None:
            try:
                written.sidecar = str(
                    self.writer.write(
                        Path(path),
                        SidecarRating(rating, model, self.prompts.prompt_hash, written.rated_at),
                        self.settings.sidecar,
                    )
                )
            except AimetaError as exc:
                written.problems.append(exc.message)
                self._record_error(path, exc.message)
        if self.options.csv and self.csv is not None:
            self.csv.add(
                _csv_row(
                    path,
                    rating,
                    model=model,
                    rated_at=written.rated_at,
                    prompt_tokens=answer.prompt_tokens,
                    completion_tokens=answer.completion_tokens,
                    duration_s=round(answer.duration_s, 3),
                    prompt_hash=self.prompts.prompt_hash,
                    system_prompt=self.prompts.system,
                    user_prompt=self.prompts.user,
                )
            )
        return written

    def _rated(self, outcome: _Done, written: _Written) -> None:
        """Count and report an image whose outputs are written (calling thread)."""
        assert outcome.rating is not None and outcome.answer is not None
        path, rating, answer = outcome.path, outcome.rating, outcome.answer
        for problem in written.problems:
            self._log(f"{path}: {problem}", "error")
        self.result.rated += 1
        self.result.overall.append(rating.overall)
        self.result.prompt_tokens += answer.prompt_tokens or 0
        self.result.completion_tokens += answer.completion_tokens or 0
        data = {
            "path": path,
            "overall": rating.overall,
            "scores": rating.scores,
            "keywords": list(rating.keywords),
            "model": self.result.model,
            "api_url": outcome.client.base_url,
            "prompt_tokens": answer.prompt_tokens,
            "completion_tokens": answer.completion_tokens,
            "duration_s": round(answer.duration_s, 3),
            "sidecar": written.sidecar,
            "preview": outcome.preview,
        }
        self.emit(events.ItemResult(STAGE, path, True, data))
        self.emit(events.Progress(STAGE, advance=1, item=path))

    def _failed(self, path: str, reason: str) -> None:
        """Count and report an image that failed (its error is recorded already)."""
        self.result.failed += 1
        self.result.failures.append((path, reason))
        self.emit(events.ItemResult(STAGE, path, False, {"path": path, "reason": reason}))
        self.emit(events.Progress(STAGE, advance=1, item=path))

    def _record_error(self, path: str, reason: str) -> None:
        if self.conn is not None and not self.options.dry_run:
            with db.transaction(self.conn):
                db.record_error(self.conn, path, STAGE, reason)

    def _log(self, message: str, level: str = "info") -> None:
        self.emit(events.Log(message, level))  # type: ignore[arg-type]

    def _close(self) -> None:
        if self.writer_started is not None and not self.writer_started.cancel():
            cf.wait([self.writer_started])  # a start under way is finished, then closed
        if self.output is not None:
            self.output.submit(lambda: None).result()  # the output thread is idle now
        try:
            if self.csv is not None and not self.options.dry_run:
                self.csv.flush()
                self.result.csv_rows = len(self.csv)
        finally:
            if self.writer is not None:
                self.writer.close()
            if self.output is not None:
                self.output.shutdown()  # after ExifTool is closed: it ends with this thread
            for client in self.clients:
                client.close()
            if self.conn is not None:
                self.conn.close()


def _import_in_background(module: str) -> None:
    """Import ``module`` in a thread of its own; whoever imports it meanwhile waits for it
    (Python's import lock), and an import error shows where the module is used."""

    def load() -> None:
        with contextlib.suppress(Exception):
            importlib.import_module(module)

    threading.Thread(target=load, name=f"aimeta-import-{module}", daemon=True).start()


def _csv_row(path: str, rating: Rating, **fields: Any) -> dict[str, Any]:
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
