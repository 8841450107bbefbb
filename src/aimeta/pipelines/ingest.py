"""ingest: parse the raw metadata of a dump into the database.

Reads the JSONL written by :mod:`aimeta.pipelines.dump` from where the last ingest of that
file stopped (the offset is stored in the database, in the same transaction as the rows), so
re-running is cheap and a killed run loses at most one batch. For every file: detect the
generator, parse, tokenize the prompts and replace the image's rows.
"""

from __future__ import annotations

import hashlib
import queue
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from aimeta import db, events, workers
from aimeta.errors import InputError, OutputError
from aimeta.pipelines.dump import HEADER_PREFIX, start_afresh
from aimeta.pipelines.prepare import CLEARED_STAGES, Prepared, prepare_fields, prepare_raw_lines


@dataclass
class IngestResult:
    """What an ingest run did."""

    lines: int = 0
    stored: int = 0
    failed: int = 0
    by_generator: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    failures: list[tuple[str, str]] = field(default_factory=list)
    keys: set[str] = field(default_factory=set)  # of the images stored (records.* to update)


# Lines per task handed to a worker process: big enough that sending it costs little, small
# enough that every worker gets several.
CHUNK_LINES = 64
# A run this large, and at least 1/BULK_SHARE of what is stored already, drops the token and
# kv indexes and builds them again at the end (see db.deferred_indexes). Measured adding to
# 20,500 stored images: 2,500 new ones (12 %) take 8.1 s that way against 9.8 s keeping the
# indexes current (3,000: 8.0 s against 9.7 s); rebuilding costs ~0.1 ms per stored image,
# keeping the token index current ~1.8 ms per new one, so the break-even is near 6 %.
BULK_MIN_LINES = 1000
BULK_SHARE = 10


def run(
    source: Path,
    conn: sqlite3.Connection,
    *,
    batch_size: int = 500,
    from_start: bool = False,
    jobs: int = 1,
    on_event: events.OnEvent = events.ignore,
) -> IngestResult:
    """Ingest the new lines of the JSONL file ``source`` into the open database ``conn``.

    ``jobs`` worker processes parse while this process writes (1: all in this process).
    """
    started = time.perf_counter()
    if not source.is_file():
        raise InputError(f"{source}: no such file; run `aimeta dump` first")
    result = IngestResult()
    source_key = str(source.resolve())
    source_id = identity(source)
    offset = 0 if from_start else _stored_offset(conn, source_key, source_id)
    if offset > source.stat().st_size:
        offset = 0
    total = _count_lines(source, offset)
    on_event(events.Started("ingest", total=total))
    ends: deque[int] = deque()

    def tasks() -> Iterator[list[bytes]]:
        for lines, end in _chunks(source, offset, CHUNK_LINES):
            ends.append(end)
            yield lines

    use = jobs if total >= 2 * CHUNK_LINES else 1
    progress = (source_key, source_id)
    with (
        db.deferred_indexes(conn, is_bulk(conn, total)),
        BatchWriter(
            conn, result, batch_size, on_event, "ingest", progress, threaded=use > 1
        ) as writer,
    ):
        for prepared in workers.ordered_map(prepare_raw_lines, tasks(), jobs=use):
            writer.add(prepared, ends.popleft())
        writer.flush()
    on_event(events.Finished("ingest"))
    result.seconds = time.perf_counter() - started
    return result


def is_bulk(conn: sqlite3.Connection, incoming: int) -> bool:
    """Whether ``incoming`` new images are enough to rebuild the indexes rather than update
    them: many, and at least a tenth of the images stored already."""
    if incoming < BULK_MIN_LINES:
        return False
    stored = conn.execute("SELECT COUNT(*) FROM images").fetchone()[0]
    return bool(incoming * BULK_SHARE >= stored)


class BatchWriter:
    """Collects prepared lines and writes them a batch per transaction.

    With ``progress`` = (source key, identity), the position in the JSONL file after the batch
    is stored in the same transaction as its rows, so a killed run resumes exactly there.

    With ``threaded``, a thread of its own writes the batches while the caller collects the
    next ones (SQLite leaves the GIL while it works); at most two batches wait. Use it as a
    context manager so the thread always ends; ``flush`` waits until all is written and
    raises the writer's error, if any.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        result: IngestResult,
        batch_size: int,
        on_event: events.OnEvent,
        stage: str,
        progress: tuple[str, str] | None,
        *,
        threaded: bool = False,
    ) -> None:
        self.conn = conn
        self.result = result
        self.batch_size = batch_size
        self.on_event = on_event
        self.stage = stage
        self.progress = progress
        self.batch: list[Prepared] = []
        self.end: int | None = None
        self._threaded = threaded
        self._queue: queue.Queue[_Job | None] = queue.Queue(maxsize=2)
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None
        self._abandoned = False

    def __enter__(self) -> BatchWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_rest: object) -> None:
        if kind is not None:
            self._abandoned = True  # stopping on an error: what still waits is not written
        self.close()

    def add(self, prepared: list[Prepared], end: int | None = None) -> None:
        """Add prepared lines; ``end`` is the file position after the last of them."""
        self.batch.extend(prepared)
        self.end = end
        if len(self.batch) >= self.batch_size:
            self._submit()

    def flush(self) -> None:
        """Write what is collected and wait until everything handed over is written."""
        if self.batch or self.end is not None:
            self._submit()
        if self._thread is not None:
            self._queue.join()
        self._raise_failure()

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def _submit(self) -> None:
        job = _Job(self.batch, self.end, self.progress)
        self.batch = []
        self.end = None
        self._raise_failure()
        if not self._threaded:
            self._write(job)
            return
        if self._thread is None:
            # Started on the first batch, after the worker processes were forked: a process
            # forked while this thread held a lock could hang on it.
            self._thread = threading.Thread(target=self._work, name="aimeta-writer", daemon=True)
            self._thread.start()
        self._queue.put(job)

    def _work(self) -> None:
        while (job := self._queue.get()) is not None:
            try:
                if self._failure is None and not self._abandoned:
                    self._write(job)
            except BaseException as exc:  # handed to the caller's thread by _raise_failure
                self._failure = exc
            finally:
                self._queue.task_done()
        self._queue.task_done()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def _write(self, job: _Job) -> None:
        with db.transaction(self.conn):
            apply(self.conn, job.batch, self.result)
            if job.progress is not None and job.end is not None:
                _record_progress(self.conn, *job.progress, job.end)
        self.result.lines += len(job.batch)
        self.on_event(events.Progress(self.stage, advance=len(job.batch)))


@dataclass(frozen=True, slots=True)
class _Job:
    batch: list[Prepared]
    end: int | None
    progress: tuple[str, str] | None


def apply(conn: sqlite3.Connection, batch: list[Prepared], result: IngestResult) -> None:
    """Write a batch of prepared lines (inside the caller's transaction): error rows first,
    then every image's rows through one statement per table."""
    outcome: dict[tuple[str, str], str | None] = {}  # (path, stage) -> reason, None = cleared
    rows: list[db.ImageRows] = []
    for number, item in enumerate(batch, start=result.lines + 1):
        path = item.path if item.path is not None else f"<line {number}>"
        for stage, reason in item.errors:
            outcome[path, stage] = reason
            result.failed += 1
            result.failures.append((path, reason))
        if item.rows is None:
            continue
        failed = {stage for stage, _reason in item.errors}
        for stage in CLEARED_STAGES - failed:
            outcome[path, stage] = None
        rows.append(item.rows)
        result.keys.add(item.rows.image[1])
        result.stored += 1
        generator = item.generator or "none"
        result.by_generator[generator] = result.by_generator.get(generator, 0) + 1
    db.apply_errors(conn, outcome)
    db.store_batch(conn, rows)
    attach_ratings(conn, [row.image[2] for row in rows])


def attach_ratings(conn: sqlite3.Connection, paths: list[str]) -> None:
    """Tie AI ratings made before their image was stored (``image_id`` NULL) to it by path."""
    if not paths or not conn.execute("SELECT 1 FROM ratings WHERE image_id IS NULL").fetchone():
        return
    conn.executemany(
        "UPDATE ratings SET image_id = (SELECT id FROM images WHERE images.path = ratings.path)"
        " WHERE path = ? AND image_id IS NULL",
        [(path,) for path in paths],
    )


def identity(source: Path) -> str:
    """Identifies one JSONL file by its first line (dump writes a unique header there), so a
    new file at the same path is ingested from the start."""
    with source.open("rb") as handle:
        head = handle.readline()
    return hashlib.blake2b(head, digest_size=8).hexdigest()


def _record_progress(conn: sqlite3.Connection, source_key: str, identity: str, end: int) -> None:
    conn.execute(
        "INSERT INTO ingest_progress (source, identity, offset) VALUES (?, ?, ?)"
        " ON CONFLICT(source) DO UPDATE SET identity=excluded.identity, offset=excluded.offset",
        (source_key, identity, end),
    )
    # The same file known under an older path (the output folder was moved): one row per file
    # is enough.
    conn.execute(
        "DELETE FROM ingest_progress WHERE identity = ? AND source <> ?", (identity, source_key)
    )


def start_afresh_when_stored(conn: sqlite3.Connection, source: Path) -> bool:
    """Once every line of the JSONL file ``source`` is stored, replace it by a new file with
    only a header (:func:`aimeta.pipelines.dump.start_afresh`) and record that header as read,
    so the next run has nothing to record. Returns whether it did."""
    if not stored_to_end(conn, source):
        return False
    try:
        start_afresh(source)
    except OutputError:
        # Best effort, after everything is stored: the old file stays valid, read to its end,
        # and the next run tries again.
        return False
    with db.transaction(conn):
        _record_progress(conn, str(source.resolve()), identity(source), source.stat().st_size)
    return True


def stored_to_end(conn: sqlite3.Connection, source: Path) -> bool:
    """Whether every line of the JSONL file ``source`` after its header is stored (the
    position recorded for it is its end, and it has more than a header)."""
    if not source.is_file():
        return False
    size = source.stat().st_size
    with source.open("rb") as handle:
        header = len(handle.readline())
    return size > header and _stored_offset(conn, str(source.resolve()), identity(source)) == size


def _count_lines(source: Path, offset: int) -> int:
    """Complete file lines after ``offset``, for the progress bar: a newline count (~1 GB/s),
    less the header line when it is among them."""
    count = 0
    with source.open("rb") as handle:
        handle.seek(offset)
        header = handle.read(len(HEADER_PREFIX)) == HEADER_PREFIX
        handle.seek(offset)
        while block := handle.read(1 << 20):
            count += block.count(b"\n")
    return max(0, count - header)


def _stored_offset(conn: sqlite3.Connection, source_key: str, identity: str) -> int:
    """How far the JSONL file with this identity was ingested. Looked up by its identity, not
    its path: an output folder that was moved or copied elsewhere is the same file, and must
    not be stored again from its first line."""
    row = conn.execute(
        "SELECT MAX(offset) FROM ingest_progress WHERE identity = ?", (identity,)
    ).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def _chunks(source: Path, offset: int, size: int) -> Iterator[tuple[list[bytes], int]]:
    """Complete lines from ``offset`` on, ``size`` at a time, each chunk with the file position
    after it. The header line is skipped; a last line without a newline is left for the next
    run (its writer may still be busy, or was killed)."""
    with source.open("rb") as handle:
        handle.seek(offset)
        chunk: list[bytes] = []
        position = offset
        for raw in handle:
            if not raw.endswith(b"\n"):
                break
            position += len(raw)
            if raw.startswith(HEADER_PREFIX):
                continue
            chunk.append(raw)
            if len(chunk) >= size:
                yield chunk, position
                chunk = []
        if chunk or position != offset:
            yield chunk, position


def reparse(
    conn: sqlite3.Connection,
    *,
    batch_size: int = 500,
    on_event: events.OnEvent = events.ignore,
) -> IngestResult:
    """Run the parsers again over the raw fields stored for every image (no file is read)."""
    started = time.perf_counter()
    result = IngestResult()
    total = conn.execute("SELECT COUNT(*) FROM images").fetchone()[0]
    on_event(events.Started("reparse", total=total))
    last_id = -1
    while True:
        rows = conn.execute(
            "SELECT id, key, path, root, file_name, ext, size, mtime_ns, sha256, width, height,"
            f" reader, {db.RAW_COLUMNS} FROM images WHERE id > ? ORDER BY id LIMIT ?",
            (last_id, batch_size),
        ).fetchall()
        if not rows:
            break
        prepared: list[Prepared] = []
        for row in rows:
            line = {
                "key": row[1],
                "path": row[2],
                "root": row[3],
                "size": row[6],
                "mtime_ns": row[7],
                "sha256": row[8],
                "reader": row[11],
            }
            size = (row[9], row[10]) if row[9] is not None else None
            prepared.append(prepare_fields(line, db.raw_fields(row[12], row[13]) or {}, size))
        with db.transaction(conn):
            apply(conn, prepared, result)
        last_id = rows[-1][0]
        result.lines += len(rows)
        on_event(events.Progress("reparse", advance=len(rows)))
    on_event(events.Finished("reparse"))
    result.seconds = time.perf_counter() - started
    return result
