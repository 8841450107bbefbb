"""watch: keep the database current while a generator writes images into watched folders.

A start-up scan is exactly ``aimeta all`` (a watcher started after a crash or a week off catches
up); then file-system events come in and the files they name are stored in small batches
through the same functions as ``all`` (:func:`aimeta.pipelines.all.store`): same per-file
error rules, same ``.seen`` index, same re-linking of moved files by key and by content.

Writes in progress: a file named by an event waits in :class:`Settling` until it is complete —
its container's end marker is there (PNG ``IEND``, JPEG ``EOI``, a RIFF/WebP size that matches)
and its size and mtime did not change between two looks, or, for other formats, they did not
change for ``QUIET_S``. A file written to a temporary name and renamed arrives as an event for
its final name; a file rewritten in place is an event for its path again, and the ``.seen``
index (size and mtime) makes it read again. A deleted file or folder marks its images missing
(once no file is settling, so that moved files are re-linked first). A folder that disappears
and appears elsewhere in the same group of events is re-linked whole when each of its stored
images is there with the same size and mtime (:func:`relink_folder`); other moves go through
the per-file re-link by content.

Why watchfiles (not watchdog): both are maintained and cross-platform. watchfiles (Rust
``notify`` underneath, used by uvicorn's reloader) hands over *sets of changes grouped over a
debounce window*, which is the batch this module stores; it stops on a ``threading.Event``,
can wake on a timeout with nothing changed (the tick that lets settling files become ready),
and switches to polling with one flag (``force_polling``) for network drives. watchdog gives
one callback per event on an observer thread, which would need the batching, the timer and a
queue written here. Its move events (source and destination in one event) are its one edge:
with watchfiles a rename is a deletion and an addition, which for folders arrive in the same
group and are paired here; moves between runs must be recognised by content anyway.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aimeta import db, events
from aimeta.files import IMAGE_EXTENSIONS, FoundFile, image_paths
from aimeta.pipelines import all as all_pipeline
from aimeta.pipelines import dump, export, export_state, relink
from aimeta.settings import Settings

# A file without an end marker is complete once its size and mtime stay the same this long.
QUIET_S = 1.0
# How often the watcher wakes with nothing changed, to look at settling files again.
TICK_MS = 100
# The most files stored in one batch (the rest wait for the next one): a folder of thousands
# moved in comes in few batches (each loads the .seen index once).
BATCH_FILES = 2000

_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"
_JPEG_END = b"\xff\xd9"


def has_end_marker(path: Path) -> bool:
    """Whether the file ends as a complete file of its container ends (PNG: the IEND chunk;
    JPEG: EOI; WebP: the RIFF size covers the file); False for other formats."""
    suffix = path.suffix.lower()
    try:
        with path.open("rb") as handle:
            if suffix == ".png":
                handle.seek(-len(_PNG_END), os.SEEK_END)
                return handle.read() == _PNG_END
            if suffix in (".jpg", ".jpeg"):
                handle.seek(-2, os.SEEK_END)
                return handle.read() == _JPEG_END
            if suffix == ".webp":
                head = handle.read(12)
                size = handle.seek(0, os.SEEK_END)
                declared = int.from_bytes(head[4:8], "little") + 8
                return head[:4] == b"RIFF" and head[8:12] == b"WEBP" and declared == size
    except OSError:
        return False  # too short for the marker, or gone: not complete (yet)
    return False


@dataclass
class _Waiting:
    stat: tuple[int, int] | None = None
    changed_at: float = 0.0


@dataclass
class Settling:
    """Files named by events that are not known to be complete yet."""

    quiet_s: float = QUIET_S
    waiting: dict[Path, _Waiting] = field(default_factory=dict)

    def saw(self, path: Path, now: float) -> None:
        """An event named ``path`` (written, created, renamed to): look at it again."""
        self.waiting[path] = _Waiting(None, now)

    def ready(self, now: float) -> list[Path]:
        """The waiting files that are complete now (taken out); files gone are dropped."""
        done: list[Path] = []
        for path, state in list(self.waiting.items()):
            try:
                stat = path.stat()
            except OSError:
                del self.waiting[path]  # renamed away or deleted: its own event follows
                continue
            current = (stat.st_size, stat.st_mtime_ns)
            if current != state.stat:
                state.stat, state.changed_at = current, now
                continue
            if now - state.changed_at >= self.quiet_s or has_end_marker(path):
                done.append(path)
                if len(done) >= BATCH_FILES:
                    break  # the rest wait for the next batch
        for path in done:
            del self.waiting[path]
        return sorted(done)


@dataclass
class BatchReport:
    """What one batch did: the status line's figures."""

    stored: int = 0
    failed: int = 0
    relinked: int = 0
    missing: int = 0
    rated: int = 0
    seconds: float = 0.0
    paths: list[str] = field(default_factory=list)

    def line(self) -> str:
        """The status line, e.g. ``+12 images, 1 failed, 3 rated``."""
        parts = [f"+{self.stored} images", f"{self.failed} failed"]
        if self.relinked:
            parts.append(f"{self.relinked} re-linked")
        if self.missing:
            parts.append(f"{self.missing} missing")
        parts.append(f"{self.rated} rated")
        return ", ".join(parts)


# Rates the images given (files, or the watched folders after the start-up scan) that are not
# rated yet (``--rate``); returns how many were rated.
Rater = Callable[[Sequence[Path]], int]


def report_of(result: all_pipeline.AllResult) -> BatchReport:
    """The batch figures of one store (or of the start-up scan)."""
    return BatchReport(
        stored=result.ingest.stored,
        failed=result.ingest.failed,
        relinked=result.relinked.images,
        missing=result.missing.marked,
    )


def root_of(path: Path, folders: Sequence[Path]) -> Path | None:
    """The watched folder ``path`` is under (the deepest, when folders nest)."""
    best: Path | None = None
    for folder in folders:
        if path.is_relative_to(folder) and (best is None or len(folder.parts) > len(best.parts)):
            best = folder
    return best


def store_files(
    paths: Sequence[Path],
    folders: Sequence[Path],
    settings: Settings,
    *,
    deleted: bool,
) -> all_pipeline.AllResult:
    """Store the complete files ``paths`` through ``aimeta all``'s functions; with ``deleted``,
    also mark the images of the watched folders whose file is gone as missing."""
    found = [FoundFile(path, root) for path in paths if (root := root_of(path, folders))]
    plan = dump.plan_files(found, folders, settings.raw_jsonl, relink=True)
    roots = list(folders) if deleted else []
    return all_pipeline.store(plan, settings, roots, export_files=False, summarize=False)


def expand(path: Path, skip: frozenset[str] = frozenset()) -> list[Path]:
    """The image files an event for ``path`` stands for: itself, or those in a folder that
    appeared (moved or copied in whole), but those in ``skip`` (re-linked already)."""
    if path.is_dir():
        return [Path(text) for text in image_paths(path) if text not in skip]
    return [path] if path.suffix.lower() in IMAGE_EXTENSIONS else []


def relink_folder(
    new: Path, gone: Sequence[str], folders: Sequence[Path], settings: Settings
) -> tuple[BatchReport, frozenset[str]]:
    """Re-link a folder that appeared as ``new`` in the same events as one of ``gone``
    disappeared, when all its stored images are there unchanged (one UPDATE per table instead
    of a look at each file: see :func:`aimeta.pipelines.relink.match_folder`); the report and
    the paths re-linked."""
    started = time.perf_counter()
    root = root_of(new, folders)
    report = BatchReport()
    if root is None or not settings.db.is_file():
        return report, frozenset()
    conn = db.connect(settings.db)
    try:
        for old in gone:
            move = relink.match_folder(conn, old, new, root)
            if move is not None:
                with export_state.claimed(settings.db) as taken:
                    report.relinked = relink.apply_folder(conn, move).images
                    export_state.defer(taken, _moved_records(move))
                dump.remember(settings.raw_jsonl, move.files)
                report.seconds = time.perf_counter() - started
                return report, frozenset(path for path, *_rest in move.files)
    finally:
        conn.close()
    return report, frozenset()


def _moved_records(move: relink.FolderMove) -> export.Changes:
    """The records a folder move changes: each image's line goes from its old path (and key)
    to its new path."""
    changes = export.Changes()
    for path, _size, _mtime_ns, key in move.files:
        changes.keys.add(key)
        changes.paths.add(os.path.join(move.old, os.path.relpath(path, move.new)))
    return changes


def _may_hold_images(text: str) -> bool:
    """Whether a deleted path may have been an image or a folder of them (a temporary file
    renamed to its final name is neither), and is still gone."""
    suffix = os.path.splitext(text)[1].lower()
    return (suffix in IMAGE_EXTENSIONS or not suffix) and not os.path.exists(text)


def run(
    folders: Sequence[Path],
    settings: Settings,
    *,
    stop: threading.Event,
    poll: bool = False,
    rate: Rater | None = None,
    on_batch: Callable[[BatchReport], None] = lambda report: None,
    on_event: events.OnEvent = events.ignore,
    quiet_s: float = QUIET_S,
) -> int:
    """Scan ``folders`` as ``aimeta all`` does, then store what changes in them until ``stop``
    is set (checked between batches, so a batch is never cut); returns the batches stored."""
    import watchfiles  # imported here: no other command needs it

    folders = [Path(os.path.abspath(folder)) for folder in folders]
    started = time.perf_counter()
    scan = all_pipeline.run(list(folders), settings, on_event=on_event)
    first = report_of(scan)
    first.seconds = time.perf_counter() - started
    if rate is not None:
        first.rated = rate(folders)
    on_batch(first)
    settling = Settling(quiet_s)
    batches = 1
    changes: Iterable[set[tuple[watchfiles.Change, str]]] = watchfiles.watch(
        *folders,
        watch_filter=None,
        debounce=TICK_MS * 2,
        step=TICK_MS // 2,
        stop_event=stop,
        rust_timeout=TICK_MS,
        yield_on_timeout=True,
        force_polling=poll,
        poll_delay_ms=TICK_MS * 3,
        raise_interrupt=False,
    )
    deleted = False
    for group in changes:
        now = time.monotonic()
        gone = [text for change, text in group if change == watchfiles.Change.deleted]
        gone = [text for text in gone if _may_hold_images(text)]
        deleted = deleted or bool(gone)
        for change, text in group:
            if change == watchfiles.Change.deleted:
                continue
            path, relinked = Path(text), frozenset[str]()
            if change != watchfiles.Change.added and path.is_dir():
                continue  # a folder's own metadata changed; its files have events of their own
            if gone and path.is_dir():
                moved, relinked = relink_folder(path, gone, folders, settings)
                if moved.relinked:
                    on_batch(moved)
                    batches += 1
            for image in expand(path, relinked):
                settling.saw(image, now)
        ready = settling.ready(now)
        # Deletions wait until no file settles: a moved folder's files are re-linked first,
        # instead of being marked missing and then found again.
        marking = deleted and not settling.waiting
        if ready or marking:
            on_batch(_store_batch(ready, folders, settings, deleted=marking, rate=rate))
            batches += 1
            deleted = deleted and not marking
        if stop.is_set():
            break
    return batches


def _store_batch(
    ready: list[Path],
    folders: Sequence[Path],
    settings: Settings,
    *,
    deleted: bool,
    rate: Rater | None,
) -> BatchReport:
    started = time.perf_counter()
    result = store_files(ready, folders, settings, deleted=deleted)
    report = report_of(result)
    report.paths = [str(path) for path in ready]
    if rate is not None and ready:
        report.rated = rate(ready)
    report.seconds = time.perf_counter() - started
    return report


def folder_rater(settings: Settings, folders: Sequence[Path], stop: threading.Event) -> Rater:
    """A :data:`Rater` that runs the rating job (its rules: skip what is rated, concurrency,
    sidecars, CSV in the watched folder) on the given images, one job per watched folder."""
    from aimeta.pipelines import rate  # imported here: only --rate needs the rating half

    absolute = [Path(os.path.abspath(folder)) for folder in folders]

    def rate_paths(paths: Sequence[Path]) -> int:
        rated = 0
        for folder in absolute:
            mine = tuple(p for p in paths if root_of(p, absolute) == folder and p.exists())
            if mine:
                options = rate.RateOptions(folder=folder, recursive=True, paths=mine)
                rated += rate.run(settings, options, stop=stop).rated
        return rated

    return rate_paths
