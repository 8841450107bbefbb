"""No injection anywhere: no shell in the code, and `aimeta wildcards sql` cannot change the
database (web path escapes are tested in tests/web/test_safety.py)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from rel_support import ForkServer, run_aimeta

from factory import png_with_text

SOURCE = Path(__file__).resolve().parents[2] / "src" / "aimeta"
SHELL = re.compile(r"shell\s*=\s*True|os\.system\s*\(|os\.popen\s*\(|\bpty\.spawn|commands\.get")


def test_no_shell_anywhere_in_the_code() -> None:
    files = sorted(SOURCE.rglob("*.py"))
    assert len(files) > 30
    found = [
        f"{path.relative_to(SOURCE)}:{number}: {line.strip()}"
        for path in files
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if SHELL.search(line)
    ]
    assert not found, "\n".join(found)


WRITES = [
    "INSERT INTO errors (path, stage, reason) VALUES ('x', 'y', 'z')",
    "UPDATE images SET generator = 'pwned'",
    "DELETE FROM kv",
    "DROP TABLE tokens",
    "CREATE TABLE pwned (x)",
    "ALTER TABLE images ADD COLUMN pwned TEXT",
    "ATTACH DATABASE '{tmp}/other.db' AS other",
    "PRAGMA writable_schema = ON",
    "PRAGMA journal_mode = DELETE",
    "PRAGMA user_version = 7",
    "VACUUM",
    "VACUUM INTO '{tmp}/copy.db'",
    "REPLACE INTO errors (path, stage, reason) VALUES ('x', 'y', 'z')",
    "WITH x AS (SELECT 1) DELETE FROM kv",
    "SELECT 1; DELETE FROM kv",
    "SELECT load_extension('/tmp/evil.so')",
    "SELECT writefile('{tmp}/pwned.txt', 'x')",
    "SELECT * FROM images; DROP TABLE images",
]


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("sql")
    (base / "in").mkdir()
    png_with_text(base / "in" / "a.png", {"parameters": "a cat\nSteps: 20, Seed: 1, CFG: 7"})
    done = run_aimeta(["all", str(base / "in"), "--out-dir", str(base / "out"), "-q"])
    assert done.code == 0, done.stderr
    return base / "out" / "images.db"


@pytest.mark.parametrize("statement", WRITES)
def test_wildcards_sql_cannot_write(database: Path, statement: str, forkserver: ForkServer) -> None:
    tmp = database.parent
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in tmp.iterdir()}
    sql = statement.format(tmp=tmp)
    args = ["wildcards", "sql", "--db", str(database), "--sql", sql, "--out", "-"]
    run = forkserver.run(args, database.parent)
    assert run.code in (1, 2), run.stdout + run.stderr
    assert "Error:" in run.stderr and "Traceback" not in run.stderr, run.stderr
    after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in tmp.iterdir()}
    # A reader of a WAL database may create the -shm index and an empty -wal file.
    wal = tmp / "images.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0, "something was written"
    assert _files(after) == _files(before), "the database folder changed"


def _files(hashes: dict[str, str]) -> dict[str, str]:
    return {name: digest for name, digest in hashes.items() if not name.endswith(("-shm", "-wal"))}


def test_wildcards_sql_still_reads(database: Path) -> None:
    run = run_aimeta(
        ["wildcards", "sql", "--db", str(database), "--sql", "SELECT t_norm FROM tokens", "-o", "-"]
    )
    assert run.code == 0, run.stderr
    assert "cat" in run.stdout
