"""The native reader and ExifTool build the same database (issue: differential test).

Over a generated mixed corpus, the bundled examples and, when AIMETA_SAMPLES is set, the real
sample files: every normalised field, token and resource is the same whichever reader read the
files. Raw fields may differ only in naming (documented in aimeta.metadata.readers.native).
"""

from __future__ import annotations

import shutil
import sqlite3
import sys
from pathlib import Path

import pytest

from aimeta import db
from aimeta.pipelines import dump, ingest
from conftest import samples_dir
from db_tables import QUERIES

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import make_corpus  # noqa: E402


def build(folder: Path, reader: str, where: Path) -> sqlite3.Connection:
    raw = where / f"{reader}.jsonl"
    dump.run([folder], raw, reader=reader)
    conn = db.connect(where / f"{reader}.db")
    ingest.run(raw, conn)
    return conn


@pytest.mark.skipif(shutil.which("exiftool") is None, reason="ExifTool is not installed")
def test_native_and_exiftool_readers_build_the_same_database(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    make_corpus.make(75, corpus / "generated")
    shutil.copytree(ROOT / "examples", corpus / "examples", ignore=shutil.ignore_patterns("*.py"))
    samples = samples_dir()
    if samples is not None:
        shutil.copytree(samples / "generated", corpus / "samples")
    native = build(corpus, "native", tmp_path)
    exiftool = build(corpus, "exiftool", tmp_path)
    generators = dict(native.execute("SELECT generator, COUNT(*) FROM images GROUP BY 1"))
    assert {"a1111", "comfyui", "invokeai", "novelai", "fooocus", "swarmui", "none"} <= set(
        generators
    )
    for table, query in QUERIES.items():
        assert native.execute(query).fetchall() == exiftool.execute(query).fetchall(), table
