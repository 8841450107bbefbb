"""The ratings CSV: ``ai_rating_results_{model tag}.csv``, one row per image, written by pandas.

Rows already in the file are kept, a re-rated image replaces its row, new images are appended.
Every write goes to a temporary file in the same folder that is then renamed over the CSV, so a
run killed at any moment leaves either the old or the new complete file, never a partial row.

Because each write is the whole file, writes are paced by what the last one cost: rewriting
every 10 rows would make a run quadratic (5,000 images: ~100 s of rewriting, and at ~30,000
the rewrites alone would be slower than the model). Rows not yet written when a run is killed
are in the database, and the next run writes them from there (``rate``'s repair).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from aimeta.errors import InputError, OutputError
from aimeta.files import atomic_write
from aimeta.rating.answer import CRITERIA

FLUSH_EVERY = 10
# After a write that took t seconds, the next waits at least this many times t: rewriting then
# takes at most a tenth of the run, however large the file grows.
FLUSH_SPACING = 9.0


def safe_model_tag(model: str) -> str:
    """The model tag made safe for a file name: ``qwen/qwen2.5-vl:7b`` -> ``qwen_qwen2.5-vl_7b``."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", model).strip("._-")
    return safe[:100] or "model"


def default_csv_path(folder: Path, model: str) -> Path:
    """``{folder}/ai_rating_results_{safe model tag}.csv``."""
    return folder / f"ai_rating_results_{safe_model_tag(model)}.csv"


def columns() -> list[str]:
    """The CSV columns, in order."""
    return [
        "path",
        "overall",
        *(c.key for c in CRITERIA),
        "keywords",
        "timestamp",
        "model",
        "prompt_tokens",
        "completion_tokens",
        "duration_s",
        "prompt_hash",
        "system_prompt",
        "user_prompt",
    ]


class RatingsCsv:
    """The CSV of one model tag; ``add`` rows, they reach the disk on ``flush`` and along the
    way: once ``flush_every`` rows wait, and at least FLUSH_SPACING times the last write's
    duration after it (``clock``: seconds, monotonic)."""

    def __init__(
        self,
        path: Path,
        flush_every: int = FLUSH_EVERY,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self.flush_every = max(1, flush_every)
        self._clock = clock
        self._rows: dict[str, dict[str, str]] = {}
        self._extra_columns: list[str] = []
        self._unsaved = 0
        self._next_flush = float("-inf")
        self._load()

    @property
    def rated_paths(self) -> set[str]:
        """Paths that have a row."""
        return set(self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, row: Mapping[str, Any]) -> None:
        """Add or replace the row of ``row["path"]``; flush when enough rows are waiting."""
        text_row = {key: _text(value) for key, value in row.items()}
        self._rows[text_row["path"]] = text_row
        self._unsaved += 1
        if self._unsaved >= self.flush_every and self._clock() >= self._next_flush:
            self.flush()

    def add_many(self, rows: Iterable[Mapping[str, Any]]) -> None:
        for row in rows:
            self.add(row)

    def flush(self) -> None:
        """Write every row now (atomically); nothing to do when nothing changed."""
        if not self._unsaved:
            return
        import pandas as pd  # imported when needed: it adds ~0.3 s to every command's start

        started = self._clock()
        ordered = columns() + [c for c in self._extra_columns if c not in columns()]
        frame = pd.DataFrame(
            [[row.get(name, "") for name in ordered] for row in self._rows.values()],
            columns=ordered,
            dtype=str,
        )
        try:
            with atomic_write(self.path) as out:
                frame.to_csv(out, index=False)
        except OutputError as exc:
            raise OutputError(f"{exc.message}; the previous CSV is unchanged") from exc
        self._unsaved = 0
        finished = self._clock()
        self._next_flush = finished + FLUSH_SPACING * (finished - started)

    def _load(self) -> None:
        if not self.path.is_file():
            return
        import pandas as pd

        try:
            frame = pd.read_csv(self.path, dtype=str, keep_default_na=False)
        except pd.errors.EmptyDataError:
            return
        except (OSError, ValueError, pd.errors.ParserError) as exc:
            raise InputError(f"cannot read the existing CSV {self.path}: {exc}") from exc
        if "path" not in frame.columns:
            raise InputError(f"{self.path} has no 'path' column: not an aimeta ratings CSV")
        self._extra_columns = [str(c) for c in frame.columns]
        for record in frame.to_dict(orient="records"):
            row = {str(k): str(v) for k, v in record.items()}
            self._rows[row["path"]] = row


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list | tuple):
        return ", ".join(str(item) for item in value)
    return str(value)
