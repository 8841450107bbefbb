"""records.jsonl / records.csv: their exact bytes and order; a failure leaves the old files."""

from __future__ import annotations

import csv
import io
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aimeta import db
from aimeta.pipelines import export

# (id, key, path, generator, width, height, sha256): ids in another order than the paths, two
# images on one path (they come by id), a path that sorts after ASCII (UTF-8 bytes).
IMAGES = [
    (30, "k-cat", "/pics/été/猫 1.png", "a1111", 512, 768, "ab12"),
    (10, "k-b", "/pics/b.png", "comfyui", 1024, 1024, None),
    (20, "k-none", "/pics/a.png", "none", None, None, "ff"),
    (5, "k-dup", "/pics/b.png", "unknown", 64, 64, None),
]
# Inserted out of key order: the parameters come sorted by key (binary: upper case first).
KV = [
    (30, "zeta", "z"),
    (30, "prompt", 'a cat, "cute"'),
    (30, "Alpha", "A"),
    (30, "negative_prompt", "blurry"),
    (30, "steps", "20"),
    (30, "hires", "yes, 2x"),
    (30, "seed", "123"),
    (30, "model", "sdxl"),
    (10, "prompt", "line one\nline two"),
    (10, "cfg", "7.5"),
    (10, "sampler_norm", "euler"),
    (10, "sampler", "euler"),
    (10, "denoise", None),
    (10, "custom", "x"),
]
# (image_id, kind, name, weight, hash): they come by kind, then name.
RESOURCES = [
    (30, "lora", "detail", 0.8, "0a1b"),
    (30, "lora", "add, more", None, None),
    (30, "checkpoint", "sdxl", None, "6ce0"),
    (30, "embedding", "bad hands", 1.0, None),
    (10, "lora", "x", 0.7000000000000001, None),
    (5, "lora", "solo", 2.0, None),
]

NO_CORE = ',"prompt":null,"negative_prompt":null,"model":null,"model_hash":null,"sampler":null,"sampler_norm":null,"scheduler_norm":null,"steps":null,"cfg":null,"seed":null,"clip_skip":null,"denoise":null'  # noqa: E501
EXPECTED_JSONL = (
    '{"path":"/pics/a.png","key":"k-none","generator":"none","width":null,"height":null,'
    '"sha256":"ff"' + NO_CORE + ',"params":{},"resources":[]}\n'
    '{"path":"/pics/b.png","key":"k-dup","generator":"unknown","width":64,"height":64,'
    '"sha256":null' + NO_CORE + ',"params":{},'
    '"resources":[{"kind":"lora","name":"solo","weight":2.0,"hash":null}]}\n'
    '{"path":"/pics/b.png","key":"k-b","generator":"comfyui","width":1024,"height":1024,'
    '"sha256":null,"prompt":"line one\\nline two","negative_prompt":null,"model":null,'
    '"model_hash":null,"sampler":"euler","sampler_norm":"euler","scheduler_norm":null,'
    '"steps":null,"cfg":"7.5","seed":null,"clip_skip":null,"denoise":null,'
    '"params":{"custom":"x"},'
    '"resources":[{"kind":"lora","name":"x","weight":0.7000000000000001,"hash":null}]}\n'
    '{"path":"/pics/été/猫 1.png","key":"k-cat","generator":"a1111","width":512,"height":768,'
    '"sha256":"ab12","prompt":"a cat, \\"cute\\"","negative_prompt":"blurry","model":"sdxl",'
    '"model_hash":null,"sampler":null,"sampler_norm":null,"scheduler_norm":null,"steps":"20",'
    '"cfg":null,"seed":"123","clip_skip":null,"denoise":null,'
    '"params":{"Alpha":"A","hires":"yes, 2x","zeta":"z"},'
    '"resources":[{"kind":"checkpoint","name":"sdxl","weight":null,"hash":"6ce0"},'
    '{"kind":"embedding","name":"bad hands","weight":1.0,"hash":null},'
    '{"kind":"lora","name":"add, more","weight":null,"hash":null},'
    '{"kind":"lora","name":"detail","weight":0.8,"hash":"0a1b"}]}\n'
).encode()

HEADER = (
    "path,key,generator,width,height,sha256,prompt,negative_prompt,model,model_hash,sampler,"
    "sampler_norm,scheduler_norm,steps,cfg,seed,clip_skip,denoise,loras,other_params"
)
CSV_ROWS = [
    ["/pics/a.png", "k-none", "none", "", "", "ff", *[""] * 12, "", ""],
    ["/pics/b.png", "k-dup", "unknown", "64", "64", "", *[""] * 12, "solo:2", ""],
    [
        *("/pics/b.png", "k-b", "comfyui", "1024", "1024", ""),
        # prompt, negative_prompt, model, model_hash, sampler, sampler_norm, scheduler_norm
        *('"line one\nline two"', "", "", "", "euler", "euler", ""),
        # steps, cfg, seed, clip_skip, denoise, loras, other_params
        *("", "7.5", "", "", "", "x:0.7", '"{""custom"":""x""}"'),
    ],
    [
        *("/pics/été/猫 1.png", "k-cat", "a1111", "512", "768", "ab12"),
        *('"a cat, ""cute"""', "blurry", "sdxl", "", "", "", ""),
        *("20", "", "123", "", "", '"add, more; detail:0.8"'),
        '"{""Alpha"":""A"",""hires"":""yes, 2x"",""zeta"":""z""}"',
    ],
]
EXPECTED_CSV = "".join(line + "\r\n" for line in [HEADER, *map(",".join, CSV_ROWS)]).encode()


def database(path: Path) -> sqlite3.Connection:
    conn = db.connect(path)
    with db.transaction(conn):
        conn.executemany(
            "INSERT INTO images (id, key, path, file_name, generator, width, height, sha256)"
            " VALUES (?, ?, ?, 'f', ?, ?, ?, ?)",
            [(ident, key, path, gen, w, h, sha) for ident, key, path, gen, w, h, sha in IMAGES],
        )
        conn.executemany("INSERT INTO kv (image_id, key, value) VALUES (?, ?, ?)", KV)
        conn.executemany(
            "INSERT INTO resources (image_id, kind, name, weight, hash) VALUES (?, ?, ?, ?, ?)",
            RESOURCES,
        )
    return conn


def test_records_are_written_ordered_by_path_with_every_parameter(tmp_path: Path) -> None:
    conn = database(tmp_path / "images.db")
    assert export.write_jsonl(conn, tmp_path / "records.jsonl") == 4
    assert export.write_csv(conn, tmp_path / "records.csv") == 4
    assert (tmp_path / "records.jsonl").read_bytes() == EXPECTED_JSONL
    assert (tmp_path / "records.csv").read_bytes() == EXPECTED_CSV
    # The CSV reads back into the same fields.
    text = EXPECTED_CSV.decode()
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[3][6] == "line one\nline two" and rows[4][0] == "/pics/été/猫 1.png"


def test_write_both_writes_the_same_files_in_one_pass(tmp_path: Path) -> None:
    conn = database(tmp_path / "images.db")
    assert export.write_both(conn, tmp_path / "r.jsonl", tmp_path / "r.csv") == 4
    assert (tmp_path / "r.jsonl").read_bytes() == EXPECTED_JSONL
    assert (tmp_path / "r.csv").read_bytes() == EXPECTED_CSV


def test_iter_records_gives_the_records(tmp_path: Path) -> None:
    conn = database(tmp_path / "images.db")
    records = list(export.iter_records(conn))
    assert [r["key"] for r in records] == ["k-none", "k-dup", "k-b", "k-cat"]
    assert records[2]["params"] == {"custom": "x"} and records[2]["denoise"] is None
    assert list(records[3])[6:18] == list(export.CORE_KEYS)


def test_an_empty_database_gives_empty_files(tmp_path: Path) -> None:
    conn = db.connect(tmp_path / "images.db")
    assert export.write_both(conn, tmp_path / "r.jsonl", tmp_path / "r.csv") == 0
    assert (tmp_path / "r.jsonl").read_bytes() == b""
    assert (tmp_path / "r.csv").read_bytes() == (HEADER + "\r\n").encode()


def test_a_failure_leaves_the_previous_files(tmp_path: Path) -> None:
    conn = database(tmp_path / "images.db")
    jsonl, csv_path = tmp_path / "records.jsonl", tmp_path / "records.csv"
    jsonl.write_bytes(b"old jsonl\n")
    csv_path.write_bytes(b"old csv\r\n")
    # A value JSON cannot hold fails the read of the last image, after the first were written.
    conn.execute("UPDATE kv SET value = x'00ff' WHERE image_id = 30 AND key = 'zeta'")
    for write in (
        lambda: export.write_jsonl(conn, jsonl),
        lambda: export.write_csv(conn, csv_path),
        lambda: export.write_both(conn, jsonl, csv_path),
    ):
        with pytest.raises(sqlite3.Error):
            write()
        assert jsonl.read_bytes() == b"old jsonl\n"
        assert csv_path.read_bytes() == b"old csv\r\n"
    assert sorted(path.name for path in tmp_path.iterdir() if "records" in path.name) == [
        "records.csv",
        "records.jsonl",
    ]


@given(st.lists(st.one_of(st.text(), st.integers(), st.floats()), min_size=2))
def test_csv_fields_are_encoded_as_the_csv_module_does(fields: list[object]) -> None:
    out = io.StringIO(newline="")
    csv.writer(out).writerow(fields)
    assert export._csv_line(fields) == out.getvalue()
