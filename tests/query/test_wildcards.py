"""`aimeta wildcards ...` on the fixture database, checked against golden files.

Set UPDATE_GOLDEN=1 to rewrite the golden files after a deliberate change (then review the
diff in git).
"""

from __future__ import annotations

import difflib
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aimeta import db
from aimeta.cli import app
from aimeta.metadata.record import Record
from aimeta.metadata.tokens import Token
from aimeta.pipelines.wildcards import LineFilter, finish, format_weight

GOLDEN = Path(__file__).parent / "golden"
runner = CliRunner()

# golden file -> the arguments after `aimeta wildcards`
CASES = {
    "tokens_pos.txt": ["tokens", "--side", "pos"],
    "tokens_neg_alpha.txt": ["tokens", "--side", "neg", "--sort", "alpha"],
    "tokens_pos_min2_count_asc.txt": ["tokens", "--min-count", "2", "--sort", "count_asc"],
    "tokens_pos_max_count_1.txt": ["tokens", "--side", "pos", "--max-count", "1"],
    "tokens_pos_regex.txt": ["tokens", "--include", "hair|eyes|^s", "--exclude", "^blue"],
    "tokens_pos_limit.txt": ["tokens", "--sort", "count_desc", "--limit", "2"],
    "prompts_pos.txt": ["prompts", "--which", "pos"],
    "prompts_neg_min2.txt": ["prompts", "--which", "neg", "--min-count", "2", "--sort", "alpha"],
    "kv_sampler_norm.txt": ["kv", "--key", "sampler_norm"],
    "kv_seed_alpha_exclude.txt": ["kv", "--key", "seed", "--sort", "alpha", "--exclude", "^1005$"],
    "resources_lora.txt": ["resources", "--kind", "lora"],
    "resources_lora_with_weight.txt": ["resources", "--kind", "lora", "--with-weight"],
    "resources_checkpoint_regex.txt": [
        "resources", "--kind", "checkpoint", "--include", "(?i)xl", "--sort", "alpha",
    ],
    "sql_first_column.txt": [
        "sql", "--sql", "SELECT t_norm, side FROM tokens ORDER BY side DESC, t_norm",
    ],
    "sql_counted.txt": [
        "sql", "--sql", "SELECT generator FROM images", "--min-count", "2", "--sort", "count_desc",
    ],
}  # fmt: skip


def assert_golden(name: str, actual: str) -> None:
    """Compare with tests/query/golden/NAME; a mismatch shows a unified diff."""
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(actual, encoding="utf-8", newline="\n")
    expected = path.read_text(encoding="utf-8") if path.is_file() else ""
    if actual != expected:
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(keepends=True),
                actual.splitlines(keepends=True),
                f"golden/{name}",
                "actual",
            )
        )
        pytest.fail(f"output differs from golden/{name}:\n{diff}", pytrace=False)


def assert_wildcard_file(text: str) -> list[str]:
    """The contract of every wildcard list: one item a line, no empty lines, no duplicates."""
    assert text == "" or text.endswith("\n")
    lines = text.splitlines()
    assert all(line.strip() == line and line for line in lines), lines
    assert len(lines) == len(set(lines)), lines
    return lines


@pytest.mark.parametrize("name", sorted(CASES))
def test_wildcards_match_golden_files(fixture_db, tmp_path: Path, name: str) -> None:
    out = tmp_path / "new" / "folder" / name  # parent folders are created
    args = ["wildcards", *CASES[name], "--db", str(fixture_db.path), "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    text = out.read_bytes().decode("utf-8")
    lines = assert_wildcard_file(text)
    assert result.stderr.strip() == f"{len(lines)} lines written to {out}"
    assert_golden(name, text)


def test_stdout_gets_the_same_lines(fixture_db) -> None:
    args = ["wildcards", "tokens", "--db", str(fixture_db.path), "--out", "-", "--side", "pos"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert result.stdout == (GOLDEN / "tokens_pos.txt").read_text(encoding="utf-8")
    assert "lines written to stdout" in result.stderr


def test_readme_example_runs_as_written(fixture_db, tmp_path: Path, monkeypatch) -> None:
    """The command from the README, with the default database found under out/."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out").mkdir()
    shutil.copy(fixture_db.path, tmp_path / "out" / "images.db")
    conn = db.connect(tmp_path / "out" / "images.db")
    with db.transaction(conn):  # ten more images so that --min-count 10 keeps something
        for n in range(10):
            record = Record("a1111", prompt="masterpiece, tree")
            tokens = [
                ("pos", Token(0, "masterpiece", "masterpiece")),
                ("pos", Token(1, "tree", "tree")),
            ]
            info = {"key": f"extra/{n}.png", "path": f"/extra/{n}.png", "file_name": f"{n}.png"}
            db.store_image(conn, info, record, tokens)
    conn.close()
    command = (
        "wildcards tokens --db out/images.db --out out/wildcards/pos_tokens.txt --side pos"
        " --min-count 10 --sort count_desc"
    )
    result = runner.invoke(app, command.split())
    assert result.exit_code == 0, result.output
    written = (tmp_path / "out" / "wildcards" / "pos_tokens.txt").read_text(encoding="utf-8")
    assert written == "masterpiece\ntree\n"  # 14 and 10 images; red hair (4) is left out
    # Without --db the database comes from the settings default, out/images.db.
    result = runner.invoke(app, ["wildcards", "kv", "--key", "seed", "--min-count", "2"])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert result.stderr.strip() == "0 lines written to stdout"


def test_bad_regex_is_one_usage_error(fixture_db) -> None:
    args = ["wildcards", "tokens", "--db", str(fixture_db.path), "--include", "(unclosed"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: --include '(unclosed' is not a valid regular")
    assert len(result.stderr.strip().splitlines()) == 1


def test_with_weight_only_for_weighted_kinds(fixture_db) -> None:
    args = ["wildcards", "resources", "--db", str(fixture_db.path), "--kind", "checkpoint",
            "--with-weight"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "--with-weight works for lora and hypernetwork" in result.stderr


def test_missing_database_is_a_clear_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["wildcards", "tokens", "--db", str(tmp_path / "none.db")])
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: no database at ")
    assert not (tmp_path / "none.db").exists()


# Statements that would change the database if they ran: every one is refused.
WRITES = [
    "DELETE FROM images",
    "UPDATE kv SET value = 'x'",
    "INSERT INTO errors (path, stage, reason) VALUES ('a', 'b', 'c') RETURNING path",
    "DROP TABLE tokens",
    "CREATE TABLE evil AS SELECT * FROM images",
    "WITH doomed AS (SELECT id FROM images) DELETE FROM images WHERE id IN doomed",
    "PRAGMA query_only = OFF",
    "PRAGMA user_version = 5",
    "VACUUM",
    "REINDEX",
    "ATTACH DATABASE '{folder}/other.db' AS other",
    "SELECT 1; DELETE FROM images",
    "PRAGMA writable_schema = ON",
    "UPDATE sqlite_master SET sql = NULL",
]


@pytest.mark.parametrize("statement", WRITES)
def test_sql_cannot_change_the_database(
    fresh_db, images_spec, digest: Callable[[Path], str], statement: str
) -> None:
    def sql_lines(sql: str) -> tuple[int, str]:
        args = ["wildcards", "sql", "--db", str(fresh_db.path), "--sql", sql]
        result = runner.invoke(app, args)
        return result.exit_code, result.stdout

    counts = "SELECT (SELECT COUNT(*) FROM images) || '/' || (SELECT COUNT(*) FROM kv)"
    kv_rows = sum(
        len(image.params) + (image.prompt is not None) + (image.negative_prompt is not None)
        for image in images_spec
    )
    expected = (0, f"{len(images_spec)}/{kv_rows}\n")
    assert sql_lines(counts) == expected
    before = digest(fresh_db.path)
    sql = statement.format(folder=fresh_db.path.parent)
    result = runner.invoke(app, ["wildcards", "sql", "--db", str(fresh_db.path), "--sql", sql])
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("Error: --sql "), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert digest(fresh_db.path) == before
    assert sql_lines(counts) == expected
    assert not (fresh_db.path.parent / "other.db").exists()


def test_invalid_sql_is_one_clear_error(fixture_db) -> None:
    result = runner.invoke(
        app, ["wildcards", "sql", "--db", str(fixture_db.path), "--sql", "SELEC 1"]
    )
    assert result.exit_code == 1
    assert (
        result.stderr.strip() == 'Error: --sql is not a valid statement: near "SELEC": syntax error'
    )


def test_sql_may_read_views_and_schema(fixture_db) -> None:
    sql = (
        "SELECT name FROM pragma_table_info('ratings') UNION ALL"
        " SELECT loras FROM v_images_with_resources WHERE loras LIKE '%film%'"
    )
    result = runner.invoke(app, ["wildcards", "sql", "--db", str(fixture_db.path), "--sql", sql])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[:3] == ["path", "model", "overall"]
    assert lines[10:] == ["image_id", *lines[11:]]  # 10 columns of 0.1.0, then migration 3's
    assert len(lines) == 13  # 11 ratings columns, then the two images with film_grain


def test_finish_merges_folded_duplicates_and_sorts_ties_alphabetically() -> None:
    pairs = [("b\nc", 1), ("b c", 2), ("a", 3), (None, 9), ("  ", 4), ("Z", 3)]
    lines = finish(pairs, LineFilter())
    assert [(line.text, line.count) for line in lines] == [("a", 3), ("b c", 3), ("Z", 3)]


@pytest.mark.parametrize(
    ("weight", "text"),
    [(0.8, "0.8"), (1.0, "1"), (0.75000001, "0.75"), (1.25, "1.25"), (-0.5, "-0.5"),
     (0.00001, "0"), (2, "2")],
)  # fmt: skip
def test_format_weight_has_no_trailing_zeros(weight: float, text: str) -> None:
    assert format_weight(weight) == text
