"""dump: read the metadata of image files into a JSON Lines file.

Each line describes one file: ``path``, ``root``, ``key`` (stable identity), ``size``,
``mtime_ns``, ``sha256``, ``reader`` (``native`` or ``exiftool``), ``tags`` (ExifTool-style
``Group:Name`` keys, see :mod:`aimeta.metadata.readers.fields`), ``error`` (a reason, or null) and,
for damaged files whose metadata could still be read, ``warnings``. The first line is a
header (``{"aimeta_dump": 1, "id": ...}``) that identifies the file.

The output is append-only: a run adds lines for new and changed files, so ``ingest`` can
continue from where it stopped. Files already read with the same size and mtime are skipped
(unless ``force``); that state is kept next to the output in ``<out>.seen``. A killed run
leaves at most a partial last line, which the next run cuts off before appending. ``aimeta
all`` starts a new file (:func:`start_afresh`) once every line is stored in the database,
which keeps the same text fields, compressed.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import orjson

from aimeta import events, workers
from aimeta.errors import AimetaError, OutputError, UsageError
from aimeta.files import FoundFile, find_images
from aimeta.metadata.readers.c2pa import C2paError, c2pa_summary, has_c2pa
from aimeta.metadata.readers.exiftool import ExifToolPool
from aimeta.metadata.readers.fields import generation_evidence, text_fields
from aimeta.metadata.readers.native import (
    MAX_TEXT_BYTES,
    NativeReadError,
    NativeTooLarge,
    read_native,
)

if TYPE_CHECKING:
    from aimeta.pipelines.prepare import Prepared

READERS = ("auto", "native", "exiftool")
# Every dump file starts with a header line beginning with these bytes (ingest skips it).
HEADER_PREFIX = b'{"aimeta_dump"'
NATIVE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp"})


@dataclass
class DumpResult:
    """What a dump run did."""

    out: Path | None
    found: int = 0
    unchanged: int = 0
    read: int = 0
    failed: int = 0
    by_reader: dict[str, int] = field(default_factory=dict)
    exiftool_processes: int = 0
    seconds: float = 0.0
    failures: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Pending:
    """A file to read, with the size and modification time it had when listed."""

    found: FoundFile
    size: int
    mtime_ns: int


@dataclass(frozen=True, slots=True)
class Moved:
    """A file read before under another path: same key (the scanned folder's name and the path
    below it), size and modification time, so the same file in a moved or re-mounted folder."""

    key: str
    old_path: str
    path: Path
    root: Path
    size: int
    mtime_ns: int


@dataclass
class Plan:
    """The files a dump run will read: found, minus those unchanged since the last run.

    ``moved`` (only when ``plan`` was asked to look for them) are unchanged files found under a
    new path: they need their stored path updated, not a new read.
    """

    inputs: Sequence[Path]
    out: Path | None
    result: DumpResult
    pending: list[Pending]
    moved: list[Moved] = field(default_factory=list)


# Files per task handed to a worker process.
CHUNK_FILES = 64


def run(
    inputs: Sequence[Path],
    out: Path | None,
    *,
    recursive: bool = True,
    force: bool = False,
    reader: str = "auto",
    exiftool: str = "exiftool",
    processes: int | None = None,
    batch_size: int = 200,
    sha256: bool = True,
    on_event: events.OnEvent = events.ignore,
    stdout: IO[bytes] | None = None,
) -> DumpResult:
    """Read every image under ``inputs`` into the JSONL file ``out`` (``None``: ``stdout``)."""
    found = plan(inputs, out, recursive=recursive, force=force, reader=reader, on_event=on_event)
    return read(
        found,
        reader=reader,
        exiftool=exiftool,
        processes=processes,
        batch_size=batch_size,
        sha256=sha256,
        on_event=on_event,
        stdout=stdout,
    )


def plan(
    inputs: Sequence[Path],
    out: Path | None,
    *,
    recursive: bool = True,
    force: bool = False,
    reader: str = "auto",
    relink: bool = False,
    on_event: events.OnEvent = events.ignore,
) -> Plan:
    """List the image files under ``inputs`` and keep those new or changed since the last run.

    With ``relink``, a file not seen under its path but seen under its key with the same size
    and modification time goes to ``Plan.moved`` instead of being read again (the caller
    updates the stored path: see :func:`remember_moved`)."""
    if reader not in READERS:
        raise UsageError(f"--reader must be one of {', '.join(READERS)}, not {reader!r}")
    started = time.perf_counter()
    result = DumpResult(out=out)

    def walk_error(path: str, reason: str) -> None:
        result.failures.append((path, reason))
        on_event(events.Log(f"cannot read {path}: {reason}", "warning"))

    found = find_images(inputs, recursive=recursive, on_error=walk_error)
    return plan_files(found, inputs, out, result, force=force, relink=relink, started=started)


def plan_files(
    found: Sequence[FoundFile],
    inputs: Sequence[Path],
    out: Path | None,
    result: DumpResult | None = None,
    *,
    force: bool = False,
    relink: bool = False,
    started: float | None = None,
) -> Plan:
    """The plan for these listed files (``plan`` lists the folders; ``aimeta watch`` hands over
    the files it saw change): those new or changed since the last run, and the moved ones."""
    started = time.perf_counter() if started is None else started
    result = DumpResult(out=out) if result is None else result
    result.found = len(found)
    seen = _Seen() if (force or out is None) else _load_seen(out)
    pending: list[Pending] = []
    moved: list[Moved] = []
    for item in found:
        try:
            stat = item.path.stat()
        except OSError as exc:
            result.failures.append((str(item.path), exc.strerror or str(exc)))
            continue
        size_mtime = (stat.st_size, stat.st_mtime_ns)
        if seen.by_path.get(str(item.path)) == size_mtime:
            result.unchanged += 1
            continue
        if relink:
            earlier = seen.by_key.get(item.key)
            if earlier is not None and earlier[:2] == size_mtime:
                moved.append(Moved(item.key, earlier[2], item.path, item.root, *size_mtime))
                result.unchanged += 1
                continue
        pending.append(Pending(item, *size_mtime))
    result.seconds = time.perf_counter() - started
    return Plan(inputs, out, result, pending, moved)


# Receives, after each write to the JSONL file, the prepared lines just written and the file
# position after them (see ``read``'s ``sink``).
Sink = Callable[[list["Prepared"], int], None]


def read(
    found: Plan,
    *,
    reader: str = "auto",
    exiftool: str = "exiftool",
    processes: int | None = None,
    batch_size: int = 200,
    sha256: bool = True,
    jobs: int = 1,
    sink: Sink | None = None,
    on_event: events.OnEvent = events.ignore,
    stdout: IO[bytes] | None = None,
) -> DumpResult:
    """Read the files of ``found`` and append their lines to its JSONL file.

    The built-in reader runs on ``jobs`` worker processes. With a ``sink``, each line is also
    prepared for the database (parsed, tokenized: :mod:`aimeta.pipelines.prepare`) and handed
    over right after it is safely written, so ``aimeta all`` stores while it reads.
    """
    started = time.perf_counter()
    result = found.result
    native, by_exiftool = _split(found.pending, reader)
    # In auto mode a file the native reader rejects (damaged, unusual) is read again by
    # ExifTool, which recovers what it can and says what is wrong.
    retry = reader == "auto" and shutil.which(exiftool) is not None
    prepare = sink is not None
    use = jobs if len(found.pending) >= 2 * CHUNK_FILES else 1
    # The worker processes are forked before any ExifTool reader thread exists.
    with _Output(found.out, stdout) as output, workers.Workers(use) as pool:
        # Failures found while listing still get a line, so ingest records them.
        listing = [_line_for_error(path, reason) for path, reason in result.failures]
        output.write(_chunk_of(listing, prepare), sink)
        on_event(events.Started("read", total=len(found.pending)))

        def take(chunk: _Chunk) -> None:
            _account(result, chunk.lines)
            output.write(chunk, sink)
            on_event(events.Progress("read", advance=len(chunk.lines)))

        tasks = (
            _NativeTask(batch, retry, sha256, prepare) for batch in _chunks(native, CHUNK_FILES)
        )
        for chunk in pool.map(_read_native_task, tasks):
            by_exiftool.extend(chunk.retry)
            take(chunk)
        if by_exiftool:
            count = processes or min(os.cpu_count() or 1, max(1, len(by_exiftool) // batch_size))
            result.exiftool_processes = count
            with ExifToolPool(exiftool, processes=count) as exiftool_pool:
                answered = _exiftool_tasks(exiftool_pool, by_exiftool, batch_size, sha256, prepare)
                # Checksums, parsing and serialising go to the workers; a batch's tags are
                # large, so only two per worker wait.
                for chunk in pool.map(_finish_exiftool_task, answered, in_flight=2 * use):
                    take(chunk)
        on_event(events.Finished("read"))
    result.failed = len(result.failures)
    result.seconds += time.perf_counter() - started
    return result


@dataclass(frozen=True, slots=True)
class _NativeTask:
    batch: list[Pending]
    retry: bool
    sha256: bool
    prepare: bool


@dataclass(slots=True)
class _Chunk:
    """Lines read from a batch of files, serialised, and (when asked) prepared for the
    database; ``retry`` are the files the built-in reader left to ExifTool."""

    payload: bytes
    lines: list[dict[str, Any]]  # without their tags: what the run's accounting needs
    prepared: list[Prepared] | None = None
    fresh: list[Pending] = field(default_factory=list)
    retry: list[Pending] = field(default_factory=list)


def _read_native_task(task: _NativeTask) -> _Chunk:
    """Read one batch with the built-in reader (runs in a worker process)."""
    retry: list[Pending] = []
    lines, fresh = _read_native_batch(task.batch, retry if task.retry else None, task.sha256)
    chunk = _chunk_of(lines, task.prepare)
    chunk.fresh = fresh
    chunk.retry = retry
    return chunk


def _chunk_of(lines: list[dict[str, Any]], prepare: bool) -> _Chunk:
    prepared = None
    if prepare:
        from aimeta.pipelines.prepare import prepare_line  # only `aimeta all` parses here

        prepared = [prepare_line(line) for line in lines]
    payload = b"".join(orjson.dumps(line) + b"\n" for line in lines)
    summary = [{k: v for k, v in line.items() if k != "tags"} for line in lines]
    return _Chunk(payload, summary, prepared)


def _split(pending: list[Pending], reader: str) -> tuple[list[Pending], list[Pending]]:
    if reader == "exiftool":
        return [], pending
    native_items = [p for p in pending if p.found.path.suffix.lower() in NATIVE_EXTENSIONS]
    other = [p for p in pending if p.found.path.suffix.lower() not in NATIVE_EXTENSIONS]
    return native_items, other


def _account(result: DumpResult, lines: list[dict[str, Any]]) -> None:
    for line in lines:
        for warning in line.get("warnings", ()):
            result.failures.append((line["path"], warning))
        if line["error"]:
            result.failures.append((line["path"], line["error"]))
        else:
            result.read += 1
            result.by_reader[line["reader"]] = result.by_reader.get(line["reader"], 0) + 1


def _base(item: Pending, reader: str) -> dict[str, Any]:
    return {
        "path": str(item.found.path),
        "root": str(item.found.root),
        "key": item.found.key,
        "size": item.size,
        "mtime_ns": item.mtime_ns,
        "sha256": None,
        "reader": reader,
        "tags": {},
        "error": None,
    }


def _line_for_error(path: str, reason: str) -> dict[str, Any]:
    return {"path": path, "error": reason, "tags": {}, "reader": None}


def _finish(line: dict[str, Any], item: Pending, sha256: bool) -> None:
    """Add the checksum, the C2PA manifest summary and, for PNGs without generation text,
    stealth infotext."""
    path = item.found.path
    if has_c2pa(line["tags"]):
        _add_c2pa(line, path)
    try:
        if sha256:
            with path.open("rb") as handle:
                line["sha256"] = hashlib.file_digest(handle, "sha256").hexdigest()
        # A PNG whose text shows no generation metadata may hide its infotext in the
        # alpha channel (A1111 stealth pnginfo).
        if path.suffix.lower() == ".png" and not generation_evidence(text_fields(line["tags"])):
            # Imported here: Pillow costs ~0.1 s at start-up and is rarely needed.
            from aimeta.metadata.readers.stealth import read_stealth

            stealth = read_stealth(path)
            if stealth:
                line["tags"]["AIMETA:StealthPNGInfo"] = stealth
    except OSError as exc:
        line["error"] = f"cannot read the file: {exc.strerror or exc}"
    except (ValueError, AimetaError) as exc:
        # The pixels cannot be decoded (a damaged PNG): its text was read all the same.
        line.setdefault("warnings", []).append(f"hidden (stealth) metadata not checked: {exc}")


def _add_c2pa(line: dict[str, Any], path: Path) -> None:
    # Both readers report the store's outer box; its claims are read here, once, for both.
    try:
        line["tags"]["AIMETA:C2paManifest"] = c2pa_summary(path, line["tags"])
    except OSError as exc:
        line["error"] = f"cannot read the file: {exc.strerror or exc}"
    except C2paError as exc:
        line.setdefault("warnings", []).append(f"C2PA manifest not read: {exc}")


def _read_native_batch(
    batch: list[Pending], fallback: list[Pending] | None, sha256: bool
) -> tuple[list[dict[str, Any]], list[Pending]]:
    """Lines for ``batch`` read natively; files the reader rejects go to ``fallback`` if given."""
    lines: list[dict[str, Any]] = []
    fresh: list[Pending] = []
    for item in batch:
        line = _base(item, "native")
        try:
            line["tags"] = read_native(item.found.path)
        except NativeReadError as exc:
            # An oversized block (a zip bomb) is not retried: ExifTool would inflate it all.
            if fallback is not None and not isinstance(exc, NativeTooLarge):
                fallback.append(item)
                continue
            line["error"] = exc.message
        except OSError as exc:
            line["error"] = f"cannot read the file: {exc.strerror or exc}"
        if line["error"] is None:
            _finish(line, item, sha256)
        lines.append(line)
        if line["error"] is None:
            fresh.append(item)
    return lines, fresh


@dataclass(frozen=True, slots=True)
class _ExifToolTask:
    batch: list[Pending]
    answers: dict[str, dict[str, Any] | str]
    sha256: bool
    prepare: bool


def _exiftool_tasks(
    pool: ExifToolPool, items: list[Pending], batch_size: int, sha256: bool, prepare: bool
) -> Iterator[_ExifToolTask]:
    paths = [str(item.found.path) for item in items]
    index = 0
    for answers in pool.read(paths, batch_size=batch_size):
        yield _ExifToolTask(items[index : index + len(answers)], answers, sha256, prepare)
        index += len(answers)


def _finish_exiftool_task(task: _ExifToolTask) -> _Chunk:
    """Lines for a batch ExifTool has read (runs in a worker process)."""
    lines, fresh = _exiftool_lines(task.batch, task.answers, task.sha256)
    chunk = _chunk_of(lines, task.prepare)
    chunk.fresh = fresh
    return chunk


def _exiftool_lines(
    batch: list[Pending], answers: dict[str, dict[str, Any] | str], sha256: bool
) -> tuple[list[dict[str, Any]], list[Pending]]:
    lines: list[dict[str, Any]] = []
    fresh: list[Pending] = []
    for item in batch:
        line = _base(item, "exiftool")
        answer = answers.get(str(item.found.path), "ExifTool returned nothing for this file")
        if isinstance(answer, str):
            line["error"] = answer
        else:
            answer.pop("SourceFile", None)
            line["error"] = _not_an_image(answer) or _too_large(answer)
            if line["error"] is None:
                line["tags"] = answer
                warning = str(answer.get("ExifTool:Warning", ""))
                if _DAMAGE.search(warning):
                    line["warnings"] = [f"ExifTool: {warning}"]
                _finish(line, item, sha256)
        lines.append(line)
        if line["error"] is None:
            fresh.append(item)
    return lines, fresh


# ExifTool warnings that mean the file is damaged (its metadata may still be complete).
_DAMAGE = re.compile(r"corrupt|truncat|unexpected end|bad .* (chunk|segment)|missing", re.I)


def _too_large(tags: dict[str, Any]) -> str | None:
    """A reason when a text value is over the native reader's limit (a zTXt zip bomb): such a
    value would cost minutes and gigabytes in ingest, so the file is an error for both readers."""
    for name, value in tags.items():
        if isinstance(value, str) and len(value) > MAX_TEXT_BYTES:
            return f"{name} holds {len(value):,} characters, more than aimeta reads"
    return None


def _not_an_image(tags: dict[str, Any]) -> str | None:
    """A reason when ExifTool read the file but it is no image (a text file named .jpg)."""
    mime = str(tags.get("File:MIMEType", ""))
    if mime.startswith("image/"):
        return None
    kind = tags.get("File:FileType") or "an unknown type"
    return f"not an image file (ExifTool sees {kind})"


def _chunks(items: list[Pending], size: int) -> Iterator[list[Pending]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def seen_path(out: Path) -> Path:
    """Where dump remembers which files it has read (next to the JSONL file)."""
    return out.with_name(out.name + ".seen")


@dataclass
class _Seen:
    """What ``<out>.seen`` says was read: by absolute path (size, mtime) and, for lines that
    carry it (written since 0.2), by key (size, mtime, the path it was read under)."""

    by_path: dict[str, tuple[int, int]] = field(default_factory=dict)
    by_key: dict[str, tuple[int, int, str]] = field(default_factory=dict)


def _seen_line(path: Path, size: int, mtime_ns: int, key: str) -> bytes:
    return orjson.dumps([str(path), size, mtime_ns, key]) + b"\n"


def _load_seen(out: Path) -> _Seen:
    index = seen_path(out)
    seen = _Seen()
    if not out.is_file() or not index.is_file():
        return seen
    with index.open("rb") as handle:
        for raw in handle:
            if not raw.endswith(b"\n"):
                break  # a partial line from a killed run: that file is read again
            try:
                path, size, mtime_ns, *rest = orjson.loads(raw)
            except (orjson.JSONDecodeError, ValueError, TypeError):
                continue
            seen.by_path[path] = (size, mtime_ns)
            if rest and isinstance(rest[0], str):
                seen.by_key[rest[0]] = (size, mtime_ns, path)
    return seen


def remember_moved(out: Path, moved: Sequence[Moved]) -> None:
    """Add the new paths of ``moved`` files to ``<out>.seen`` (call once their stored rows
    point at them: until then a killed run finds them moved again, which is harmless)."""
    remember(out, [(str(m.path), m.size, m.mtime_ns, m.key) for m in moved])


def remember(out: Path, files: Sequence[tuple[str, int, int, str]]) -> None:
    """Add (path, size, mtime_ns, key) of files stored already to ``<out>.seen``."""
    if not files:
        return
    try:
        with seen_path(out).open("ab") as handle:
            handle.write(b"".join(orjson.dumps(list(item)) + b"\n" for item in files))
    except OSError as exc:
        raise OutputError(f"cannot write {seen_path(out)}: {exc.strerror or exc}") from exc


class _Output:
    """The JSONL file (append-only, partial tail cut off) and its ``.seen`` index."""

    def __init__(self, out: Path | None, stdout: IO[bytes] | None) -> None:
        self.out = out
        self.stdout = stdout
        self.lines: IO[bytes] | None = None
        self.seen: IO[bytes] | None = None

    def __enter__(self) -> _Output:
        if self.out is None:
            return self
        try:
            self.out.parent.mkdir(parents=True, exist_ok=True)
            if not self.out.exists():
                seen_path(self.out).unlink(missing_ok=True)
            _cut_partial_line(self.out)
            _cut_partial_line(seen_path(self.out))
            self.lines = self.out.open("ab")
            if self.lines.tell() == 0:
                self.lines.write(_header_line())
            self.seen = seen_path(self.out).open("ab")
        except OSError as exc:
            raise OutputError(f"cannot write {self.out}: {exc.strerror or exc}") from exc
        return self

    def __exit__(self, *_exc: object) -> None:
        for handle in (self.lines, self.seen):
            if handle is not None:
                handle.close()

    def write(self, chunk: _Chunk, sink: Sink | None = None) -> None:
        """Append the chunk's lines; then mark its ``fresh`` files as read and hand the
        prepared lines to ``sink`` — only once the lines are safely on disk."""
        payload = chunk.payload
        if not payload:
            return
        if self.lines is None:
            target = self.stdout
            if target is not None:
                target.write(payload)
                target.flush()
            return
        try:
            self.lines.write(payload)
            self.lines.flush()
            os.fsync(self.lines.fileno())
            if self.seen is not None and chunk.fresh:
                self.seen.write(
                    b"".join(
                        _seen_line(p.found.path, p.size, p.mtime_ns, p.found.key)
                        for p in chunk.fresh
                    )
                )
                self.seen.flush()
            end = self.lines.tell()
        except OSError as exc:
            raise OutputError(f"cannot write {self.out}: {exc.strerror or exc}") from exc
        if sink is not None and chunk.prepared is not None:
            sink(chunk.prepared, end)


def _header_line() -> bytes:
    """A header unique to one JSONL file: ingest tells a new file at the same path from the one
    it has already read by it."""
    header = {"aimeta_dump": 1, "id": uuid.uuid4().hex, "created": time.time()}
    return orjson.dumps(header) + b"\n"


def start_afresh(out: Path) -> None:
    """Replace the JSONL file ``out`` by a new one holding only a new header (call it once
    every line of ``out`` is stored: the database keeps each file's raw text fields, which
    ``aimeta show --raw`` prints and ``aimeta ingest --reparse`` parses again). The new
    header gives the file a new identity, so ingest reads it from its start. Atomic: a run
    killed before the rename leaves the old file, stored to its end, to be replaced next time.
    ``<out>.seen`` stays: the files it lists are read, and are skipped while unchanged."""
    fresh = out.with_name(out.name + ".new")
    try:
        with fresh.open("wb") as handle:
            handle.write(_header_line())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(fresh, out)
    except OSError as exc:
        fresh.unlink(missing_ok=True)
        raise OutputError(f"cannot write {out}: {exc.strerror or exc}") from exc


def _cut_partial_line(path: Path) -> None:
    """Truncate ``path`` after its last newline (a killed writer may leave half a line)."""
    if not path.is_file():
        return
    with path.open("rb+") as handle:
        size = handle.seek(0, os.SEEK_END)
        if size == 0:
            return
        position = size
        step = 65536
        while position > 0:
            start = max(0, position - step)
            handle.seek(start)
            block = handle.read(position - start)
            newline = block.rfind(b"\n")
            if newline >= 0:
                end = start + newline + 1
                if end != size:
                    handle.truncate(end)
                return
            position = start
        handle.truncate(0)
