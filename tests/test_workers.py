"""aimeta.workers: results in task order, and a dead worker costs speed, never results."""

from __future__ import annotations

import os

import pytest

from aimeta.workers import WORKER_NICENESS, ordered_map

PARENT = os.getpid()


def square_with_pid(value: int) -> tuple[int, int]:
    return value * value, os.getpid()


def die_in_a_worker(value: int) -> int:
    # Only in a worker process: the same call made by the parent (the fallback) succeeds.
    if value == 5 and os.getpid() != PARENT:
        os._exit(3)
    return value * 10


def test_results_come_back_in_task_order_from_several_processes() -> None:
    results = list(ordered_map(square_with_pid, range(200), jobs=2, in_flight=7))
    assert [value for value, _pid in results] == [n * n for n in range(200)]
    assert PARENT not in {pid for _value, pid in results}


def niceness(_value: int) -> int:
    return os.nice(0)


@pytest.mark.skipif(not hasattr(os, "nice"), reason="POSIX only")
def test_workers_yield_the_cpu_to_this_process() -> None:
    # The kernel caps niceness at 19.
    expected = min(19, os.nice(0) + WORKER_NICENESS)
    assert set(ordered_map(niceness, range(8), jobs=2)) == {expected}


def test_one_job_runs_in_this_process() -> None:
    results = list(ordered_map(square_with_pid, range(5), jobs=1))
    assert results == [(n * n, PARENT) for n in range(5)]


def test_a_worker_that_dies_leaves_its_tasks_to_this_process() -> None:
    assert list(ordered_map(die_in_a_worker, range(40), jobs=2, in_flight=3)) == [
        n * 10 for n in range(40)
    ]


def test_a_lazy_task_source_is_read_only_a_window_ahead() -> None:
    taken: list[int] = []

    def source() -> object:
        for n in range(100):
            taken.append(n)
            yield n

    results = ordered_map(square_with_pid, source(), jobs=2, in_flight=4)  # type: ignore[arg-type]
    first = next(results)
    assert first[0] == 0
    assert len(taken) <= 5  # the window (4) plus the one that made it full
    assert [value for value, _pid in results] == [n * n for n in range(1, 100)]
