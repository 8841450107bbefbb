"""Untrusted model answers: keywords with XML specials, ExifTool argument syntax, newlines,
10,000 characters or paths, and a model id built to escape, go through a real local server
and `aimeta rate` into sidecars, CSV and database as plain values (or are rejected). They
never set another tag and never create or change a file outside the rated folder."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from rel_support import integrity_ok, make_photos, run_aimeta

import openai_server
from aimeta.rating.sidecar import config_path

HOSTILE_KEYWORDS = [
    "<b>bold</b> & \"quoted\" 'single'",
    "a > b < c & d",
    "-XMP-dc:Title=pwned",
    "-XMP:all=",
    "-all=",
    "-execute",
    "-@",
    "-o",
    "-tagsFromFile",
    "-Title<Rating",
    "${XMP:Rating}",
    "line one\nline two\n-XMP-xmp:Label=Red",
    "carriage\rreturn\r-execute\r",
    "x" * 10_000,
    "../../etc/passwd",
    "/tmp/aimeta-pwned",
    "]]><x:inject/>",
    "plain keyword",
]
MODEL_ID = "../../evil\n-XMP:all=\n-execute"


def _hostile_answer(image_url: str) -> dict[str, Any]:
    scores = {key: 7 for key in openai_server.CRITERIA_KEYS}
    return {**scores, "overall": 4, "keywords": HOSTILE_KEYWORDS}


def _tree(root: Path) -> dict[str, str]:
    found = {}
    for folder, _dirs, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def _all_tags(sidecars: list[Path]) -> dict[str, dict[str, Any]]:
    done = subprocess.run(
        ["exiftool", "-j", "-G1", "-a", "-struct", "-config", str(config_path())]
        + [str(path) for path in sidecars],
        capture_output=True,
        text=True,
        check=True,
    )
    return {Path(item.pop("SourceFile")).name: item for item in json.loads(done.stdout)}


def test_hostile_keywords_are_plain_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "photos"
    make_photos(folder, 2)
    existing = folder / "img000.jpg.xmp"
    existing.write_text(
        '<?xml version="1.0"?><x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF'
        ' xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description'
        ' xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:darktable="http://darktable.sf.net/"'
        ' darktable:history_end="3" darktable:xmp_version="5"><dc:title><rdf:Alt>'
        '<rdf:li xml:lang="x-default">my title</rdf:li></rdf:Alt></dc:title>'
        "</rdf:Description></rdf:RDF></x:xmpmeta>",
        encoding="utf-8",
    )
    before_tags = _all_tags([existing])["img000.jpg.xmp"]
    watched = tmp_path / "etc"
    watched.mkdir()
    (watched / "passwd").write_text("root:x:0:0\n", encoding="utf-8")
    outside_before = _tree(tmp_path)
    assert not Path("/tmp/aimeta-pwned").exists()

    monkeypatch.setattr(openai_server, "answer_for", _hostile_answer)
    with openai_server.serve(model_id=MODEL_ID) as server:
        run = run_aimeta(
            [
                "rate",
                str(folder),
                "--api-url",
                server.base_url,
                "--db",
                str(tmp_path / "r.db"),
                "--converter",
                "pillow",
                "--size",
                "64",
                "--json",
            ],
            cwd=tmp_path,
        )
    assert run.code == 0, run.stderr
    assert "Traceback" not in run.stderr

    # Nothing outside the rated folder changed; inside it only sidecars, one CSV and the
    # database beside it appeared.
    outside_after = {k: v for k, v in _tree(tmp_path).items() if not k.startswith(str(folder))}
    outside_expected = {k: v for k, v in outside_before.items() if not k.startswith(str(folder))}
    assert set(outside_after) - set(outside_expected) <= {
        str(tmp_path / name) for name in ("r.db", "r.db-wal", "r.db-shm")
    }
    assert all(outside_after[k] == v for k, v in outside_expected.items())
    assert not Path("/tmp/aimeta-pwned").exists()
    new_files = sorted(p.name for p in folder.iterdir())
    csvs = [name for name in new_files if name.endswith(".csv")]
    assert len(csvs) == 1 and "/" not in csvs[0] and "\n" not in csvs[0], new_files
    assert sorted(n for n in new_files if n.endswith(".xmp")) == [
        "img000.jpg.xmp",
        "img001.png.xmp",
    ]

    tags = _all_tags(sorted(folder.glob("*.xmp")))
    written = tags["img000.jpg.xmp"]
    # Every tag that was there is unchanged, except the keywords and rating aimeta writes.
    for name, value in before_tags.items():
        if not name.startswith(
            ("XMP-dc:Subject", "XMP-xmp:Rating", "XMP-lr:", "XMP-aimeta:", "System:", "File:")
        ):
            assert written.get(name) == value, name
    for sidecar in tags.values():
        groups = {name.split(":")[0] for name in sidecar}
        assert groups <= {
            "ExifTool",
            "System",
            "File",
            "XMP-x",
            "XMP-dc",
            "XMP-xmp",
            "XMP-lr",
            "XMP-aimeta",
            "XMP-darktable",
        }, groups
        names = set(sidecar)
        assert "XMP-dc:Title" not in names or sidecar["XMP-dc:Title"] == "my title"
        assert "XMP-xmp:Label" not in names
        assert sidecar["XMP-xmp:Rating"] == 4
        subjects = sidecar["XMP-dc:Subject"]
        subjects = subjects if isinstance(subjects, list) else [subjects]
        # Kept as written (control characters as spaces), too-long ones dropped.
        assert "-XMP-dc:Title=pwned" in subjects and "-execute" in subjects
        # (surrounding quotes are trimmed from keywords by design)
        assert '<b>bold</b> & "quoted" \'single' in subjects
        assert "line one line two -XMP-xmp:Label=Red" in subjects
        assert not any(len(str(s)) > 100 for s in subjects)
        assert "\n" not in json.dumps(sidecar["XMP-aimeta:Model"]).replace("\\n", "")
        assert str(sidecar["XMP-aimeta:Model"]).startswith("../../evil")

    frame = pd.read_csv(folder / csvs[0], dtype=str, keep_default_na=False)
    assert len(frame) == 2 and "-XMP-dc:Title=pwned" in frame.keywords.iloc[0]
    integrity_ok(tmp_path / "r.db")
