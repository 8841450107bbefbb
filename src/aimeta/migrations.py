"""Numbered schema migrations: what :func:`aimeta.db.connect` applies to bring a database up
to date, and the record of what was applied.

``schema.sql`` is the baseline, the schema released in aimeta 0.1.0, frozen: migration 1 applies
it. Every later schema change is one function below, appended to :data:`MIGRATIONS` under the
next number and named for what it does; a released migration is never edited (a fix is a new
migration). A migration that rewrites a table (``Table.transform``, a copy into a new table) is
marked ``rewrites_table``: opening a database makes a backup copy before running one.

The record is the ``aimeta_migrations`` table (number, name, aimeta version, rewrote a table,
time applied); ``PRAGMA user_version`` repeats the highest number so that opening an up-to-date
database costs one query. Databases made by aimeta 0.1.0 have no record: their user_version is
the crc32 fingerprint of its schema.sql (or 0 after a bulk load killed before it rebuilt its
indexes), and migration 1, idempotent, is applied to them again and recorded.

Why not ``sqlite_utils.Migrations``: it records only a name and a time, so it cannot say which
aimeta and schema number made a database newer than this code, and its ``pending()`` skips names
it does not know, where aimeta must refuse such a database and leave it untouched. It also
commits once per migration, where here all pending migrations, their record and the new
user_version commit together. The runner below is small; migrations use the
``sqlite_utils.Database`` API (``add_column``, ``transform``, ``create_index``) through
:func:`table_api`, which imports sqlite-utils only then: importing it loads pandas (0.5 s and
50 MB), which no command that opens an up-to-date database should pay.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources as package_files
from pathlib import Path
from typing import TYPE_CHECKING

from aimeta import __version__
from aimeta.errors import DatabaseError, DatabaseTooNew

MIGRATIONS_TABLE = "aimeta_migrations"
# user_version of a database made by aimeta 0.1.0: crc32 of its schema.sql text & 0x7FFFFFFF
# (tests/db/fixtures/schema_v0_1_0.sql is that text; a test checks the number).
V0_1_0_FINGERPRINT = 478_994_881

if TYPE_CHECKING:
    import sqlite_utils


@dataclass(frozen=True)
class Migration:
    """One numbered step: ``apply`` changes the schema through the connection, inside the
    runner's transaction (it must not commit); :func:`table_api` gives sqlite-utils' API."""

    number: int
    name: str
    apply: Callable[[sqlite3.Connection], None]
    rewrites_table: bool = False


def schema_path() -> Path:
    """schema.sql from an installed wheel (inside the package) or a source checkout (top level)."""
    packaged = package_files.files("aimeta").joinpath("schema.sql")
    if packaged.is_file():
        return Path(str(packaged))
    checkout = Path(__file__).resolve().parents[2] / "schema.sql"
    if checkout.is_file():
        return checkout
    raise DatabaseError("schema.sql not found: the aimeta installation is incomplete")


def statements(script: str) -> Iterator[str]:
    """Split a schema script into statements, without its PRAGMAs (executescript would commit
    on its own, and pragmas are set by connect, outside the transaction)."""
    buffer = ""
    for line in script.splitlines(keepends=True):
        if line.lstrip().startswith("--") and not buffer.strip():
            continue
        buffer += line
        if sqlite3.complete_statement(buffer):
            statement = buffer.strip()
            buffer = ""
            if not statement.upper().startswith("PRAGMA"):
                yield statement


def table_api(conn: sqlite3.Connection) -> sqlite_utils.Database:
    """sqlite-utils' Database over ``conn``, for a migration (its recursive_triggers default
    would change how aimeta's triggers run on this connection, hence off)."""
    import sqlite_utils

    return sqlite_utils.Database(conn, recursive_triggers=False, execute_plugins=False)


def create_baseline(conn: sqlite3.Connection) -> None:
    """Migration 1: the tables, indexes, views and triggers of aimeta 0.1.0 (schema.sql). Every
    statement is idempotent, so it also completes a 0.1.0 database (e.g. indexes dropped by a
    bulk load that was killed)."""
    for statement in statements(schema_path().read_text(encoding="utf-8")):
        conn.execute(statement)


# Migration 5: token texts stored once. 0.1.0's `tokens` table repeated each token's text twice
# per row (t_raw, t_norm) and once more in its index: 42 % of a database. `token_rows` keeps a
# token as integers (image, side, position, ids of its two texts, weight), `token_texts` each
# distinct text once, and a view named `tokens` shows the old columns, so the documented SQL
# and DB Browser read what they read before. t_norm is a join, so `t_norm = ?` finds its id
# through the texts' index and then the rows through idx_tokens_norm, and a GROUP BY t_norm
# scans that index; t_raw is a subquery, evaluated only when a query reads it (as a second join
# SQLite 3.40 looked it up for every row even when unused: the README's top-500 query took
# 1.7x as long). The INSTEAD OF triggers keep plain SQL that writes the view working. Texts
# no row uses any more stay in token_texts (a few thousand).
_COMPACT_TOKENS = (
    """CREATE TABLE token_texts (
    id   INTEGER PRIMARY KEY,
    text TEXT NOT NULL UNIQUE
)""",
    """CREATE TABLE token_rows (
    image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    side     TEXT NOT NULL CHECK (side IN ('pos', 'neg')),
    position INTEGER NOT NULL,
    raw_id   INTEGER NOT NULL,              -- token_texts.id of t_raw
    norm_id  INTEGER NOT NULL,              -- token_texts.id of t_norm
    weight   REAL NOT NULL DEFAULT 1.0,
    PRIMARY KEY (image_id, side, position)
) WITHOUT ROWID""",
    "INSERT INTO token_texts (text) SELECT t_raw FROM tokens UNION SELECT t_norm FROM tokens",
    """INSERT INTO token_rows (image_id, side, position, raw_id, norm_id, weight)
SELECT t.image_id, t.side, t.position, r.id, n.id, t.weight
FROM tokens t JOIN token_texts r ON r.text = t.t_raw JOIN token_texts n ON n.text = t.t_norm
ORDER BY t.image_id, t.side, t.position""",
    "DROP TABLE tokens",
    "CREATE INDEX idx_tokens_norm ON token_rows(norm_id, side, image_id)",
    """CREATE VIEW tokens AS
SELECT r.image_id, r.side, r.position,
    (SELECT text FROM token_texts WHERE id = r.raw_id) AS t_raw,
    norm.text AS t_norm, r.weight
FROM token_rows r JOIN token_texts norm ON norm.id = r.norm_id""",
    """CREATE TRIGGER trg_tokens_insert INSTEAD OF INSERT ON tokens
BEGIN
    INSERT OR IGNORE INTO token_texts (text) VALUES (new.t_raw), (new.t_norm);
    INSERT INTO token_rows (image_id, side, position, raw_id, norm_id, weight)
    VALUES (new.image_id, new.side, new.position,
        (SELECT id FROM token_texts WHERE text = new.t_raw),
        (SELECT id FROM token_texts WHERE text = new.t_norm),
        COALESCE(new.weight, 1.0));
END""",
    # What the query planner knows of the two tables' shape (a text is shared by many rows)
    # without running ANALYZE: with no statistics it reads the README's top-500 query row by
    # row and sorts every row's text (100,000 images: 1.1 s); with these it walks the texts
    # in order and counts each one's rows in idx_tokens_norm (0.2 s). "ANALYZE sqlite_schema"
    # creates sqlite_stat1 without analysing a table.
    "ANALYZE sqlite_schema",
    "DELETE FROM sqlite_stat1 WHERE tbl IN ('token_rows', 'token_texts')",
    """INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES
    ('token_rows', 'token_rows', '1000000 60 30 1'),
    ('token_rows', 'idx_tokens_norm', '1000000 1000 500 1'),
    ('token_texts', 'sqlite_autoindex_token_texts_1', '1000 1')""",
    "ANALYZE sqlite_schema",  # again: the connection reads the statistics it now has
    """CREATE TRIGGER trg_tokens_delete INSTEAD OF DELETE ON tokens
BEGIN
    DELETE FROM token_rows
    WHERE image_id = old.image_id AND side = old.side AND position = old.position;
END""",
)


def compact_tokens(conn: sqlite3.Connection) -> None:
    """Migration 5: the tokens table becomes token_rows + token_texts behind a ``tokens`` view
    with the old columns (see _COMPACT_TOKENS)."""
    for statement in _COMPACT_TOKENS:
        conn.execute(statement)


# Numbers are unique and increasing, not necessarily consecutive: migrations 2-4 belong to
# features merged separately, and each database records the numbers it applied.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "create_baseline", create_baseline),
    Migration(5, "compact_tokens", compact_tokens, rewrites_table=True),
)


@dataclass(frozen=True)
class AppliedMigration:
    """One row of the record."""

    number: int
    name: str
    aimeta_version: str
    rewrites_table: bool
    applied_at: str


@dataclass(frozen=True)
class SchemaState:
    """What a database says about its schema. ``unrecorded`` names the aimeta that made a
    database from before the record ("0.1.0"); it is None for a recorded or empty database."""

    applied: tuple[AppliedMigration, ...]
    empty: bool = False
    unrecorded: str | None = None

    @property
    def version(self) -> int:
        """The schema number: the highest migration applied (0: empty; 1: made by 0.1.0)."""
        if self.applied:
            return max(step.number for step in self.applied)
        return 0 if self.empty else 1


@dataclass(frozen=True)
class UpgradeResult:
    """What bringing a database up to date did."""

    before: int
    after: int
    applied: tuple[str, ...] = ()
    backup: Path | None = None


def read_state(conn: sqlite3.Connection) -> SchemaState:
    """Read (never write) what ``conn``'s database records about its schema."""
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if MIGRATIONS_TABLE in tables:
        rows = conn.execute(
            f"SELECT number, name, aimeta_version, rewrites_table, applied_at"
            f" FROM {MIGRATIONS_TABLE} ORDER BY number"
        ).fetchall()
        return SchemaState(tuple(AppliedMigration(n, s, v, bool(r), t) for n, s, v, r, t in rows))
    if not tables:
        return SchemaState((), empty=True)
    if "images" not in tables:
        raise DatabaseError("this SQLite file was not made by aimeta (no images table)")
    user_version = conn.execute("PRAGMA user_version").fetchone()[0]
    made_by = "0.1.0" if user_version in (V0_1_0_FINGERPRINT, 0) else "a version before 0.1.0"
    return SchemaState((), unrecorded=made_by)


def pending(state: SchemaState, migrations: Sequence[Migration] = MIGRATIONS) -> list[Migration]:
    """The migrations ``state`` lacks, in order; raises DatabaseTooNew when the database records
    a migration this code does not know (it was made by a newer aimeta)."""
    known = {step.number: step.name for step in migrations}
    latest = migrations[-1].number
    for step in state.applied:
        if step.number > latest:
            newest = state.applied[-1]
            raise DatabaseTooNew(
                f"database schema {newest.number} (made by aimeta {newest.aimeta_version}) is"
                f" newer than this aimeta {__version__} knows (schema {latest}): upgrade aimeta"
            )
        if known.get(step.number) != step.name:
            raise DatabaseTooNew(
                f"database migration {step.number} is {step.name!r} (made by aimeta"
                f" {step.aimeta_version}), which this aimeta {__version__} does not know"
                f" (its schema {step.number} is {known.get(step.number)!r}): use that aimeta"
            )
    done = {step.number for step in state.applied}
    return [step for step in migrations if step.number not in done]


def backup_copy(conn: sqlite3.Connection, path: Path, version: int) -> Path:
    """Copy the database (with what its write-ahead log holds) to ``<name>.bak-schema<N>`` beside
    it, never over an older backup; returns the copy's path. VACUUM INTO writes a consistent,
    compact copy through the open connection."""
    target = path.with_name(f"{path.name}.bak-schema{version}")
    suffix = 2
    while target.exists():
        target = path.with_name(f"{path.name}.bak-schema{version}-{suffix}")
        suffix += 1
    conn.execute("VACUUM INTO ?", (str(target),))
    return target


def upgrade(
    conn: sqlite3.Connection,
    path: Path | None,
    migrations: Sequence[Migration] = MIGRATIONS,
    *,
    always_backup: bool = False,
) -> UpgradeResult:
    """Apply the pending migrations in one transaction, after a backup copy of the database at
    ``path`` when one of them rewrites a table (or always, with ``always_backup``). Refuses a
    database newer than ``migrations`` before writing anything."""
    state = read_state(conn)
    todo = pending(state, migrations)
    latest = migrations[-1].number
    backup = None
    wants_backup = always_backup or any(step.rewrites_table for step in todo)
    if todo and wants_backup and not state.empty and path is not None:
        backup = backup_copy(conn, path, state.version)
    applied = _apply(conn, migrations)
    return UpgradeResult(state.version, latest, applied, backup)


def _apply(conn: sqlite3.Connection, migrations: Sequence[Migration]) -> tuple[str, ...]:
    # Foreign keys off while tables are rewritten: dropping the old copy of `images` would
    # otherwise cascade into kv, tokens and resources. The pragma is a no-op inside a
    # transaction, hence set around it, and a foreign_key_check stands in before COMMIT.
    conn.execute("PRAGMA foreign_keys = OFF")
    conn.execute("BEGIN IMMEDIATE")
    try:
        # Read again under the write lock: another process may have upgraded meanwhile.
        todo = pending(read_state(conn), migrations)
        conn.execute(_RECORD_TABLE)
        for step in todo:
            step.apply(conn)
            conn.execute(
                f"INSERT INTO {MIGRATIONS_TABLE} (number, name, aimeta_version, rewrites_table,"
                " applied_at) VALUES (?, ?, ?, ?, ?)",
                (
                    step.number,
                    step.name,
                    __version__,
                    int(step.rewrites_table),
                    datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                ),
            )
        # Only a rewrite can orphan rows; the check reads every child row (seconds on a large
        # database), so other migrations skip it.
        rewrote = any(step.rewrites_table for step in todo)
        broken = rewrote and conn.execute("PRAGMA foreign_key_check").fetchone()
        if broken:
            raise DatabaseError(f"a migration left rows without their parent in {broken[0]}")
        conn.execute(f"PRAGMA user_version = {int(migrations[-1].number)}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    finally:
        conn.execute("PRAGMA foreign_keys = ON")
    return tuple(step.name for step in todo)


# The record (plain SQL: creating it must not need sqlite-utils, see the module docstring).
_RECORD_TABLE = f"""CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (
    number         INTEGER PRIMARY KEY,
    name           TEXT NOT NULL,
    aimeta_version TEXT NOT NULL,
    rewrites_table INTEGER NOT NULL,
    applied_at     TEXT NOT NULL
)"""
