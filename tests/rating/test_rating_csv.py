"""The ratings CSV: kept rows, replaced rows, atomic writes."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

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
