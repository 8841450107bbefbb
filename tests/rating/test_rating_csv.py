"""The ratings CSV: kept rows, replaced rows, atomic writes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import pandas as pd
import pytest

from aimeta.rating import csvout
from aimeta.rating.csvout import RatingsCsv, columns, default_csv_path, safe_model_tag


def row(path: str, overall: int) -> dict[str, object]:
    return {"path": path, "overall": overall, "keywords": ["a", "b"], "model": "m"}


def test_safe_model_tag() -> None:
    assert safe_model_tag("qwen/qwen2.5-vl:7b") == "qwen_qwen2.5-vl_7b"
    assert safe_model_tag("../..") == "model"
    assert default_csv_path(Path("/x"), "a b").name == "ai_rating_results_a_b.csv"


def test_rows_kept_replaced_appended(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    first = RatingsCsv(path)
    first.add_many([row("/a.jpg", 3), row("/b.jpg", 4)])
    first.flush()
    second = RatingsCsv(path)
    assert second.rated_paths == {"/a.jpg", "/b.jpg"}
    second.add(row("/b.jpg", 1))
    second.add(row("/c, d.jpg", 5))
    second.flush()
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert list(frame.columns) == columns()
    assert frame[["path", "overall", "keywords"]].values.tolist() == [
        ["/a.jpg", "3", "a, b"],
        ["/b.jpg", "1", "a, b"],
        ["/c, d.jpg", "5", "a, b"],
    ]


def test_flushes_every_n_rows_and_leaves_no_temp_files(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    ratings = RatingsCsv(path, flush_every=3)
    ratings.add_many(row(f"/{n}.jpg", 1) for n in range(2))
    assert not path.exists()
    ratings.add(row("/2.jpg", 1))
    assert len(pd.read_csv(path)) == 3
    assert [p.name for p in tmp_path.iterdir()] == ["r.csv"]


def test_unknown_columns_of_an_older_file_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text("path,overall,note\n/a.jpg,2,keep me\n")
    ratings = RatingsCsv(path)
    ratings.add(row("/b.jpg", 3))
    ratings.flush()
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert frame.loc[frame.path == "/a.jpg", "note"].item() == "keep me"
    assert len(frame) == 2


def test_a_slow_write_postpones_the_next(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A write that took 2 s holds the next back until 9 x 2 s after it, however many rows
    wait; ``flush`` still writes at once."""
    path = tmp_path / "r.csv"
    now = [100.0]
    real_write = csvout.atomic_write

    @contextmanager
    def two_second_write(target: Path) -> Iterator[IO[str]]:
        with real_write(target) as out:
            yield out
        now[0] += 2.0

    monkeypatch.setattr(csvout, "atomic_write", two_second_write)
    ratings = RatingsCsv(path, flush_every=1, clock=lambda: now[0])
    ratings.add(row("/a.jpg", 1))  # written from 100 s to 102 s: the next is due at 120 s
    assert len(pd.read_csv(path)) == 1
    now[0] = 119.0
    ratings.add_many([row("/b.jpg", 1), row("/c.jpg", 1)])
    assert len(pd.read_csv(path)) == 1
    now[0] = 120.0
    ratings.add(row("/d.jpg", 1))
    assert len(pd.read_csv(path)) == 4
    ratings.add(row("/e.jpg", 1))  # due at 122 + 18 s
    assert len(pd.read_csv(path)) == 4
    ratings.flush()
    assert len(pd.read_csv(path)) == 5
