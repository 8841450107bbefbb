"""The job runner on its own: numbered entries, a bounded log, failures that end a job."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from aimeta import events
from aimeta.pipelines import rate
from aimeta.settings import Settings
from aimeta.web import jobs


def _pipeline_of(count: int, *, explode: bool = False) -> Any:
    """A stand-in for rate.run that reports ``count`` images (or raises a bug)."""

    def run(
        settings: Settings,
        options: rate.RateOptions,
        *,
        on_event: events.OnEvent,
        stop: threading.Event,
    ) -> rate.RateResult:
        on_event(events.Started("rate", total=count))
        for index in range(count):
            path = str(options.folder / f"{index}.jpg")
            on_event(events.Progress("rate", advance=0, item=path))
            if explode and index == 1:
                raise KeyError("a bug")
            data = {"path": path, "overall": 3, "scores": {}, "keywords": [], "preview": None}
            on_event(events.ItemResult("rate", path, True, data))
            on_event(events.Progress("rate", advance=1, item=path))
        on_event(events.Finished("rate"))
        return rate.RateResult(found=count, rated=count, overall=[3] * count)

    return run


def test_old_entries_drop_and_the_reader_is_told(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jobs, "MAX_ENTRIES", 10)
    runner = jobs.JobRunner(_pipeline_of(20))
    runner.start(Settings(), rate.RateOptions(folder=tmp_path))
    assert runner.wait(timeout=10)
    entries, dropped = runner.entries_after(0)
    assert dropped and len(entries) == 10 and entries[-1].kind == "end"
    assert [e.seq for e in entries] == list(range(entries[0].seq, entries[0].seq + 10))
    later, dropped_later = runner.entries_after(entries[-3].seq)
    assert [e.seq for e in later] == [e.seq for e in entries[-2:]] and not dropped_later
    status = runner.status()
    assert status["state"] == "finished" and status["done"] == status["total"] == 20
    assert status["eta_s"] is None and status["in_flight"] == []
    runner.close()


def test_a_bug_in_the_pipeline_ends_the_job_with_its_reason(tmp_path: Path) -> None:
    runner = jobs.JobRunner(_pipeline_of(3, explode=True))
    runner.start(Settings(), rate.RateOptions(folder=tmp_path))
    assert runner.wait(timeout=10)
    status = runner.status()
    assert status["state"] == "failed" and "KeyError" in status["error"]
    last = runner.entries_after(0)[0][-1]
    assert last.kind == "end" and last.level == "error" and "KeyError" in last.text
    # The next job may start: the failed one holds nothing.
    runner.start(Settings(), rate.RateOptions(folder=tmp_path))
    assert runner.wait(timeout=10)
    assert runner.status()["state"] == "failed"
    runner.close()
