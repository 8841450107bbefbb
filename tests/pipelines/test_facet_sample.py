"""The library's facets count a sample of the matches when there are many: it must cover the
whole library, not only the images stored first (ids count up in storing order)."""

from __future__ import annotations

from pathlib import Path

import pytest

from aimeta import db
from aimeta.metadata.record import Record
from aimeta.pipelines import library


def rows(key: str, sampler: str) -> db.ImageRows:
    image = {"key": key, "path": f"/in/{key}", "file_name": key, "raw": {"parameters": "x"}}
    return db.image_rows(image, Record(generator="a1111", params={"sampler": sampler}))


def test_a_sampled_facet_counts_old_and_new_images_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = db.connect(tmp_path / "images.db")
    with db.transaction(conn):  # 200 early images, then 200 later ones with another sampler
        db.store_batch(conn, [rows(f"old/{n:03d}.png", "Euler a") for n in range(200)])
    with db.transaction(conn):
        db.store_batch(conn, [rows(f"new/{n:03d}.png", "DPM++ 2M") for n in range(200)])
    monkeypatch.setattr(library, "FACET_SAMPLE", 40)

    facets = library.facets(conn, library.LibraryQuery())

    assert 20 <= facets["images"] <= 40 and facets["sampled"]
    counts = {entry["value"]: entry["count"] for entry in facets["samplers"]}
    assert sum(counts.values()) == facets["images"]
    # About half each (not all of the images stored first).
    assert 0.3 <= counts.get("Euler a", 0) / facets["images"] <= 0.7, counts
    conn.close()


def test_a_sample_reaches_the_largest_id_sqlite_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ids hashed before migration 8 reach up to 2^63 - 1: the estimate of how many match
    takes the span of their ids, and a sample is still taken."""
    conn = db.connect(tmp_path / "images.db")
    with db.transaction(conn):
        db.store_batch(conn, [rows(f"new/{n:03d}.png", "Euler a") for n in range(50)])
        conn.execute(
            "INSERT INTO images (id, key, path, file_name, generator)"
            " VALUES (?, 'top.png', '/in/top.png', 'top.png', 'a1111')",
            (2**63 - 1,),
        )
        conn.execute("INSERT INTO kv VALUES (?, 'sampler', 'DDIM')", (2**63 - 1,))
    monkeypatch.setattr(library, "FACET_SAMPLE", 10)

    facets = library.facets(conn, library.LibraryQuery())

    assert facets["sampled"] and 5 <= facets["images"] <= 10, facets
    conn.close()
