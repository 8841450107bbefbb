"""The ratings CSV: ``ai_rating_results_{model tag}.csv``, one row per image, written by pandas.

Rows already in the file are kept, a re-rated image replaces its row, new images are appended.
Every write goes to a temporary file in the same folder that is then renamed over the CSV, so a
run killed at any moment leaves either the old or the new complete file, never a partial row.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from aimeta.errors import InputError, OutputError
from aimeta.files import atomic_write
from aimeta.rating.answer import CRITERIA

FLUSH_EVERY = 10


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
    """The CSV of one model tag; ``add`` rows, they reach the disk every FLUSH_EVERY and on
    ``flush``."""

    def __init__(self, path: Path, flush_every: int = FLUSH_EVERY) -> None:
        self.path = path
        self.flush_every = max(1, flush_every)
        self._rows: dict[str, dict[str, str]] = {}
        self._extra_columns: list[str] = []
        self._unsaved = 0
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
        if self._unsaved >= self.flush_every:
            self.flush()

    def add_many(self, rows: Iterable[Mapping[str, Any]]) -> None:
        for row in rows:
            self.add(row)

    def flush(self) -> None:
        """Write every row now (atomically); nothing to do when nothing changed."""
        if not self._unsaved:
            return
        import pandas as pd  # imported when needed: it adds ~0.3 s to every command's start

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
