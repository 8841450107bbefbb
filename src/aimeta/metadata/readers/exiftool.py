"""ExifTool adapter: stay-open processes (pyexiftool) reading tags in batches.

One ``ExifToolPool`` serves a whole run: ``processes`` ExifTool instances in stay-open mode,
each fed batches of files by its own thread. Never one process per file (Perl start-up alone
costs ~0.15 s). Output is ``-json -G1 -n``: group names on every key, complete values (nothing
truncated, newlines and UTF-8 kept). ``-fast2`` is deliberately not used: it stops at the PNG
image data and misses text chunks written after it (``-fast`` does not).
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import exiftool
import orjson
from exiftool.exceptions import ExifToolException

from aimeta.errors import ExifToolFailed, ExifToolMissing

# -a is left out: with -json duplicate tags would collapse anyway (the last one wins).
# -e skips the Composite tags (derived values such as ImageSize, ~1/3 of ExifTool's time on
# these files; the size is taken from the container's own tags). -fast only stops the scan of
# a JPEG's end for trailers (preview images, AFCP), which carry no generation metadata; it is
# -fast2 that would stop at a PNG's image data and miss text written after it.
READ_ARGS = (
    "-json",
    "-G1",
    "-n",
    "-e",
    "-fast",
    "-charset",
    "filename=utf8",
    "-api",
    "largefilesupport=1",
)


def find_exiftool(executable: str = "exiftool") -> str:
    """The path of the ExifTool executable, or ExifToolMissing with install instructions."""
    found = shutil.which(executable)
    if found is None and Path(executable).is_file():
        found = executable
    if found is None:
        raise ExifToolMissing()
    return found


def version(executable: str = "exiftool") -> str:
    """ExifTool's version string (``12.57``)."""
    result = subprocess.run(
        [find_exiftool(executable), "-ver"], capture_output=True, text=True, timeout=30, check=False
    )
    return result.stdout.strip()


def _safe_for_stay_open(path: str) -> bool:
    # In stay-open mode each line sent is one argument: a path with a line break would be cut
    # in two (and the second half could be taken for an option). Such files are read by a
    # one-off process whose arguments go through argv instead.
    return "\n" not in path and "\r" not in path


class ExifToolPool:
    """Several stay-open ExifTool processes; ``read`` spreads files over them.

    Use as a context manager so the processes are always shut down.
    """

    def __init__(self, executable: str = "exiftool", processes: int = 1) -> None:
        self.executable = find_exiftool(executable)
        self.processes = max(1, processes)
        self._local = threading.local()
        self._instances: list[exiftool.ExifTool] = []
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(self.processes, thread_name_prefix="exiftool")

    def __enter__(self) -> ExifToolPool:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        # Terminate before the worker threads end: pyexiftool starts ExifTool with
        # PR_SET_PDEATHSIG, so each process dies with the thread that started it, and a
        # process found dead later makes pyexiftool warn.
        with self._lock:
            for instance in self._instances:
                with contextlib.suppress(ExifToolException, OSError):
                    instance.terminate()
            self._instances.clear()
        self._executor.shutdown(wait=True)

    def _instance(self) -> exiftool.ExifTool:
        instance: exiftool.ExifTool | None = getattr(self._local, "instance", None)
        if instance is None or not instance.running:
            # common_args stay empty: pyexiftool runs `-ver` with them at start-up.
            instance = exiftool.ExifTool(
                executable=self.executable, common_args=[], encoding="utf-8"
            )
            # pyexiftool reads the answer 4 KB at a time, a Python loop turn each; a batch's
            # JSON is megabytes.
            instance.block_size = 1 << 20
            try:
                instance.run()
            except (ExifToolException, OSError) as exc:
                raise ExifToolFailed(f"ExifTool did not start: {exc}") from exc
            self._local.instance = instance
            with self._lock:
                self._instances.append(instance)
        return instance

    def _read_batch(self, paths: Sequence[str]) -> dict[str, dict[str, Any] | str]:
        """Tags per path, or an error reason (str) for files ExifTool could not read."""
        results: dict[str, dict[str, Any] | str] = {}
        stay_open = [p for p in paths if _safe_for_stay_open(p)]
        if stay_open:
            instance = self._instance()
            try:
                output = instance.execute(*READ_ARGS, *stay_open)
            except (ExifToolException, OSError, UnicodeDecodeError) as exc:
                # The process died or answered garbage: read this batch one file at a time
                # with one-off processes, so one poisonous file costs only itself.
                self._local.instance = None
                for path in stay_open:
                    results[path] = _read_one_off(self.executable, path, f"{exc}")
            else:
                results.update(_match(stay_open, output, instance.last_stderr))
        for path in paths:
            if path not in results:
                results[path] = _read_one_off(self.executable, path, None)
        return results

    def read(
        self, paths: Sequence[str], batch_size: int = 200
    ) -> Iterator[dict[str, dict[str, Any] | str]]:
        """Yield one result dict per batch (path -> tags or error reason), batches in order.

        Two batches per process are read ahead of the one being consumed: the processes never
        wait for the consumer, and a slow consumer does not make answers pile up in memory.
        """
        pending: deque[Future[dict[str, dict[str, Any] | str]]] = deque()
        for start in range(0, len(paths), batch_size):
            pending.append(
                self._executor.submit(self._read_batch, paths[start : start + batch_size])
            )
            if len(pending) > 2 * self.processes:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _match(paths: Sequence[str], output: str, stderr: str) -> dict[str, dict[str, Any] | str]:
    results: dict[str, dict[str, Any] | str] = {}
    if output.strip():
        try:
            for item in orjson.loads(output):
                source = item.get("SourceFile")
                if isinstance(source, str):
                    results[source] = item
        except orjson.JSONDecodeError:
            pass
    reasons = _errors_by_file(stderr)
    for path in paths:
        tags = results.get(path)
        if tags is None:
            results[path] = reasons.get(path, "ExifTool returned nothing for this file")
        elif isinstance(tags, dict) and "ExifTool:Error" in tags:
            results[path] = f"ExifTool: {tags['ExifTool:Error']}"
    return results


def _errors_by_file(stderr: str) -> dict[str, str]:
    """ExifTool prints ``Error: reason - path`` on stderr for files it cannot read."""
    reasons: dict[str, str] = {}
    for line in stderr.splitlines():
        if line.startswith("Error: ") and " - " in line:
            reason, _, path = line[len("Error: ") :].rpartition(" - ")
            reasons[path] = f"ExifTool: {reason}"
    return reasons


def _read_one_off(executable: str, path: str, earlier: str | None) -> dict[str, Any] | str:
    try:
        completed = subprocess.run(
            [executable, *READ_ARGS, path],
            capture_output=True,
            timeout=300,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"ExifTool failed: {exc}"
    output = completed.stdout.decode("utf-8", errors="replace")
    stderr = completed.stderr.decode("utf-8", errors="replace")
    result = _match([path], output, stderr).get(path)
    if isinstance(result, str) and earlier:
        result = f"{result} (after: {earlier})"
    return result if result is not None else "ExifTool returned nothing for this file"
