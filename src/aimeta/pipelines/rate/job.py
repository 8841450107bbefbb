"""One rating run from start to end: check, lock the folder, connect, select, rate, close."""

from __future__ import annotations

import contextlib
import threading
import time

import httpx

from aimeta import events
from aimeta.errors import UsageError
from aimeta.pipelines.rate import servers
from aimeta.pipelines.rate.ask import Question
from aimeta.pipelines.rate.options import RateOptions, RateResult, check_options
from aimeta.pipelines.rate.output import Outputs
from aimeta.pipelines.rate.report import Reporter
from aimeta.pipelines.rate.schedule import Schedule
from aimeta.pipelines.rate.selection import select_images
from aimeta.rating import prompt_files
from aimeta.rating.answer import fill_user_prompt
from aimeta.rating.client import ModelClient
from aimeta.rating.lock import FolderLock
from aimeta.settings import Settings


def run(
    settings: Settings,
    options: RateOptions,
    *,
    on_event: events.OnEvent = events.ignore,
    stop: threading.Event | None = None,
    transport: httpx.BaseTransport | None = None,
) -> RateResult:
    """Rate the images of ``options.folder``; see the package docstring for events and stop."""
    problems = check_options(settings, options)
    if problems:
        raise UsageError("; ".join(problems.values()))
    job = _Job(settings, options, on_event, stop or threading.Event(), transport)
    return job.run()


class _Job:
    """The parts of one run and the order they are used in; ``run`` closes them all."""

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
        self.stop = stop
        self.transport = transport
        self.result = RateResult(dry_run=options.dry_run)
        self.report = Reporter(on_event, self.result)
        self.prompts = prompt_files.load(settings)
        self.user_prompt = fill_user_prompt(self.prompts.user, settings.max_keywords)
        self.outputs = Outputs(settings, options, self.prompts)
        self.clients: list[ModelClient] = []

    def run(self) -> RateResult:
        started = time.monotonic()
        # One writer per folder: a second job stops here at once (FolderBusy) instead of
        # overwriting the first one's CSV rows and sidecars. A dry run writes nothing.
        lock = contextlib.nullcontext() if self.options.dry_run else FolderLock(self.options.folder)
        with lock:
            try:
                self._rate()
            finally:
                self.result.wall_s = time.monotonic() - started
                self._close()
        return self.result

    def _rate(self) -> None:
        result = self.result
        self.outputs.look_up_exiftool()
        found = servers.connect(
            self.settings, transport=self.transport, stop=self.stop, log=self.report.log
        )
        self.clients = found.clients
        result.model, result.api_urls = found.model, tuple(c.base_url for c in found.clients)
        result.csv_path = self.outputs.open(result.model)
        selection = select_images(self.options, result.model, self.outputs, self.report.log)
        result.found, result.skipped = selection.found, selection.skipped
        result.repaired = selection.repaired
        if self.options.dry_run:
            self.report.dry_run(selection.todo)
        elif selection.todo:
            schedule = Schedule(
                self.settings,
                selection.todo,
                clients=self.clients,
                question=self._question(result.model),
                outputs=self.outputs,
                report=self.report,
                stop=self.stop,
            )
            schedule.run()

    def _question(self, model: str) -> Question:
        return Question(
            model=model,
            system_prompt=self.prompts.system,
            user_prompt=self.user_prompt,
            temperature=self.settings.temperature,
            max_tokens=self.settings.max_tokens,
            max_keywords=self.settings.max_keywords,
            preview_dir=self.options.preview_dir,
        )

    def _close(self) -> None:
        try:
            self.result.csv_rows = self.outputs.flush()
        finally:
            self.outputs.close_writer()
            for client in self.clients:
                client.close()
            self.outputs.close_database()
