"""Running pure, CPU-bound tasks on every core, results in order.

Parsing and tokenizing are pure Python, so threads would share one core; worker processes
run them in parallel while the main process writes the database (SQLite has one writer
anyway). Tasks and results must be picklable; results come back in the order the tasks were
given, so output files stay in a stable order.

On Linux the workers are forked: they start in milliseconds with every module already
imported, where a fresh interpreter costs ~0.3 s each. They only compute and return values
(no output, no locks), which is what makes forking a process that has threads safe enough.
Elsewhere the platform's default (spawn) is used.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def default_jobs() -> int:
    """One worker per core (the main process's writing is mostly SQLite, outside the GIL)."""
    return max(1, os.cpu_count() or 1)


def ordered_map(
    function: Callable[[T], R],
    tasks: Iterable[T],
    *,
    jobs: int,
    in_flight: int | None = None,
) -> Iterator[R]:
    """``map(function, tasks)`` on ``jobs`` worker processes, yielding results in task order.

    At most ``in_flight`` tasks (default: 8 per worker) are submitted ahead of the one being
    consumed, so memory stays bounded however many tasks there are. With ``jobs`` <= 1 the
    tasks run in this process. If a worker dies (killed, out of memory), the tasks not yet
    answered run here instead: a lost worker costs speed, never results.
    """
    if jobs <= 1:
        yield from map(function, tasks)
        return
    limit = in_flight or 8 * jobs
    pending: deque[tuple[T, Future[R]]] = deque()
    source = iter(tasks)
    context = multiprocessing.get_context("fork" if sys.platform == "linux" else None)
    executor = ProcessPoolExecutor(
        max_workers=jobs, mp_context=context, initializer=_ignore_interrupts
    )
    broken = False
    unsent: list[T] = []
    try:
        for task in source:
            try:
                future = executor.submit(function, task)
            except BrokenProcessPool:  # a worker died since the last answer
                broken = True
                unsent.append(task)
                break
            pending.append((task, future))
            if len(pending) >= limit:
                task, future = pending.popleft()
                result, broken = _result(function, task, future, broken)
                yield result
                if broken:
                    break
        while pending:
            task, future = pending.popleft()
            result, broken = _result(function, task, future, broken)
            yield result
        # Left over only when the pool broke: finish here.
        yield from map(function, unsent)
        yield from map(function, source)
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


def _ignore_interrupts() -> None:
    # Ctrl-C reaches every process of the terminal's group: the main process stops the run
    # and the workers finish their current task instead of each printing a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _result(function: Callable[[T], R], task: T, future: Future[R], broken: bool) -> tuple[R, bool]:
    if not broken:
        try:
            return future.result(), False
        except BrokenProcessPool:
            pass
    future.cancel()
    return function(task), True
