"""What the rating job tells its caller: the events it reports and the counts of its result.

Every method runs in the calling thread (the one that called ``run``), so ``on_event`` is
never called from the model or output threads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from aimeta import events
from aimeta.pipelines.rate.ask import Outcome
from aimeta.pipelines.rate.options import STAGE, RateResult
from aimeta.pipelines.rate.output import Written

Level = Literal["debug", "info", "warning", "error"]
# How the parts of the job write a line for the user.
Log = Callable[[str, Level], None]


class Reporter:
    """Counts into a :class:`RateResult` and reports each step through ``on_event``."""

    def __init__(self, on_event: events.OnEvent, result: RateResult) -> None:
        self.emit = on_event
        self.result = result

    def log(self, message: str, level: Level = "info") -> None:
        self.emit(events.Log(message, level))

    def rating_starts(self, count: int, workers: int, converter: str) -> None:
        """The images to rate are known and the renderer is chosen."""
        self.result.converter = converter
        self.log(
            f"Rating {count} image(s) with {self.result.model} on "
            f"{', '.join(self.result.api_urls)} ({workers} at once, rendering with "
            f"{converter})"
        )
        self.emit(events.Started(STAGE, total=count))

    def sent(self, path: str) -> None:
        """An image goes to the model."""
        self.emit(events.Progress(STAGE, advance=0, item=path))

    def rated(self, outcome: Outcome, written: Written) -> None:
        """Count and report an image whose outputs are written."""
        assert outcome.rating is not None and outcome.answer is not None
        path, rating, answer = outcome.path, outcome.rating, outcome.answer
        for problem in written.problems:
            self.log(f"{path}: {problem}", "error")
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

    def failed(self, path: str, reason: str) -> None:
        """Count and report an image that failed (its error is recorded already)."""
        self.result.failed += 1
        self.result.failures.append((path, reason))
        self.emit(events.ItemResult(STAGE, path, False, {"path": path, "reason": reason}))
        self.emit(events.Progress(STAGE, advance=1, item=path))

    def stopping(self) -> None:
        """A stop was asked for: the run winds down."""
        self.result.stopped = True
        self.log("Stopping: finishing the images in progress", "warning")

    def aborted(self, reason: str) -> None:
        """The run gives up (no model server answers any more)."""
        self.result.aborted = reason
        self.log(reason, "error")

    def dry_run(self, todo: list[str]) -> None:
        """Report what a real run would rate; nothing is sent or written."""
        self.result.to_rate = todo
        self.emit(events.Started(STAGE, total=len(todo)))
        for path in todo:
            self.emit(events.ItemResult(STAGE, path, True, {"path": path, "dry_run": True}))
        self.emit(events.Finished(STAGE))

    def finished(self) -> None:
        self.emit(events.Finished(STAGE))
