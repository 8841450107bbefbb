"""Rendering and model calls in parallel: keep every model slot busy until the images run out.

The calling thread runs the loop: it renders ahead through a pool (so a model slot never
waits for the renderer), keeps ``workers`` calls in flight spread over the servers, hands each
answer to the output thread and reports what that thread has written, in the order handed
over. A stop drops what is not sent yet and gives the calls in flight up to ``STOP_GRACE_S``;
``UNREACHABLE_LIMIT`` images in a row that no server answered end the run.
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
import os
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from aimeta.errors import AimetaError
from aimeta.pipelines.rate.ask import Outcome, Question
from aimeta.pipelines.rate.output import Outputs
from aimeta.pipelines.rate.report import Reporter
from aimeta.rating.client import ModelClient
from aimeta.rating.render import Rendered, Renderer
from aimeta.settings import Settings

STOP_GRACE_S = 30.0
# This many images in a row failing because no server answers ends the run.
UNREACHABLE_LIMIT = 8
# How long the loop waits for a render, call or write before it looks at the stop again.
POLL_S = 0.2


class Schedule:
    """One run's loop and its state: images waiting, rendered, being asked, being written."""

    def __init__(
        self,
        settings: Settings,
        todo: list[str],
        *,
        clients: list[ModelClient],
        question: Question,
        outputs: Outputs,
        report: Reporter,
        stop: threading.Event,
    ) -> None:
        self.renderer = Renderer.from_settings(settings)
        self.workers = settings.workers
        self.render_workers = max(1, min(self.workers, os.cpu_count() or 1))
        self.clients = clients
        self.question = question
        self.outputs = outputs
        self.report = report
        self.stop = stop
        self.waiting = deque(todo)
        self.ready: deque[tuple[str, Rendered]] = deque()
        self.renders: dict[cf.Future[Any], str] = {}
        self.calls: dict[cf.Future[Any], str] = {}
        # Outputs being written, in the order handed over, each with what the calling thread
        # does once it is written (count it, report it).
        self.writes: dict[cf.Future[Any], Callable[[Any], None]] = {}
        self.in_flight: Counter[int] = Counter()  # calls per client
        # Executors start their threads on the first task, so nothing runs before ``run``.
        self.output = outputs.thread()
        self.render_pool = cf.ThreadPoolExecutor(
            self.render_workers, thread_name_prefix="aimeta-render"
        )
        self.model_pool = cf.ThreadPoolExecutor(self.workers, thread_name_prefix="aimeta-model")
        self.unreachable_in_a_row = 0
        self.stop_seen_at: float | None = None

    def run(self) -> None:
        """Render, ask and write every image (or until ``stop`` is set)."""
        self.report.rating_starts(len(self.waiting), self.workers, self.renderer.converter)
        try:
            while self.waiting or self.ready or self.renders or self.calls or self.writes:
                if self.stop.is_set() and self._wound_down():
                    break
                self._top_up()
                done, _pending = cf.wait(
                    [*self.renders, *self.calls, *self.writes],
                    timeout=POLL_S,
                    return_when=cf.FIRST_COMPLETED,
                )
                for future in done:
                    if future in self.renders:
                        self._rendered(future)
                    elif future in self.calls:
                        self._answered(future)
                # Refill the freed model slots first: the server never waits for the writes.
                self._top_up()
                self._report_written(done)
                self._give_up_when_unreachable()
            # After a stop: the answers that came are written before the run ends.
            self._report_written(self.writes)
        finally:
            self.render_pool.shutdown(wait=False, cancel_futures=True)
            self.model_pool.shutdown(wait=False, cancel_futures=True)
            # After an error too, the output thread finishes what it was given (answers
            # already paid for reach the database) before the outputs are closed.
            cf.wait(self.writes)
            self.renderer.close()
            self.report.finished()

    def _top_up(self) -> None:
        if self.stop.is_set():
            return
        # Render ahead so a model slot never waits for the renderer.
        while self.waiting and len(self.renders) + len(self.ready) < (
            self.workers + self.render_workers
        ):
            path = self.waiting.popleft()
            self.renders[self.render_pool.submit(self.renderer.render, Path(path))] = path
        while self.ready and len(self.calls) < self.workers:
            path, rendered = self.ready.popleft()
            client = min(self.clients, key=lambda c: self.in_flight[id(c)])
            self.in_flight[id(client)] += 1
            self.report.sent(path)
            self.calls[self.model_pool.submit(self.question.ask, path, rendered, client)] = path
        if self.calls and (len(self.calls) >= self.workers or not self.waiting):
            self.outputs.warm_up()

    def _rendered(self, future: cf.Future[Any]) -> None:
        path = self.renders.pop(future)
        try:
            self.ready.append((path, future.result()))
        except AimetaError as exc:
            self._failed(path, exc.message)
        except Exception as exc:  # a renderer bug must not end the run
            self._failed(path, f"cannot render: {exc!r}")

    def _answered(self, future: cf.Future[Any]) -> None:
        self.calls.pop(future)
        outcome: Outcome = future.result()
        self.in_flight[id(outcome.client)] -= 1
        if outcome.rating is not None and outcome.answer is not None:
            self.unreachable_in_a_row = 0
            self.outputs.warm_up()  # queued before the first write
            written = self.output.submit(self.outputs.write_rated, outcome)
            self.writes[written] = functools.partial(self.report.rated, outcome)
        else:
            self.unreachable_in_a_row = self.unreachable_in_a_row + 1 if outcome.unreachable else 0
            self._failed(outcome.path, outcome.reason or "no answer")

    def _failed(self, path: str, reason: str) -> None:
        """Record the error in the output thread; report it once recorded."""
        future = self.output.submit(self.outputs.record_error, path, reason)
        self.writes[future] = lambda _none: self.report.failed(path, reason)

    def _report_written(self, done: Collection[Any]) -> None:
        """Report the outputs written among ``done`` (waiting for them), in the order they were
        handed to the output thread; an error of the output thread is raised here."""
        for future in [f for f in self.writes if f in done]:
            then = self.writes.pop(future)
            then(future.result())

    def _wound_down(self) -> bool:
        """After a stop: drop what is not sent yet; True once no call is in flight or the
        calls in flight had their grace time."""
        if self.stop_seen_at is None:
            self.stop_seen_at = time.monotonic()
            self.report.stopping()
            self.waiting.clear()
            self.ready.clear()
            for future in self.renders:
                future.cancel()
            self.renders.clear()
        return not self.calls or time.monotonic() - self.stop_seen_at > STOP_GRACE_S

    def _give_up_when_unreachable(self) -> None:
        if self.unreachable_in_a_row >= UNREACHABLE_LIMIT and not self.stop.is_set():
            self.report.aborted(
                f"{self.unreachable_in_a_row} images in a row found no model server; "
                "stopped (re-run to rate the rest)"
            )
            self.stop.set()
