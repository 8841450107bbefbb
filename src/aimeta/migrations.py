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
import sys
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


def add_user_ratings(conn: sqlite3.Connection) -> None:
    """Migration 2: ``user_ratings``, the user's own stars, pick/reject and colour label per
    image (set in the library of ``aimeta web``; never written by ``aimeta rate``), and an
    index on ``images(mtime_ns, id)`` so that the library's newest/oldest order pages by
    keyset instead of sorting every image."""
    conn.execute(
        """CREATE TABLE IF NOT EXISTS user_ratings (
    image_id   INTEGER PRIMARY KEY REFERENCES images(id) ON DELETE CASCADE,
    stars      INTEGER CHECK (stars BETWEEN 0 AND 5),
    pick       INTEGER NOT NULL DEFAULT 0 CHECK (pick IN (-1, 0, 1)),
    label      TEXT,
    updated_at TEXT NOT NULL
)"""
    )
    conn.execute("CREATE INDEX IF NOT EXISTS idx_images_mtime ON images(mtime_ns, id)")


def track_image_identity(conn: sqlite3.Connection) -> None:
    """Migration 3: AI ratings follow the image, not its path string, and deleted files are
    marked instead of forgotten.

    - ``images.missing_since``: when the file was last found gone (NULL: present); ``aimeta
      prune`` deletes such images on request.
    - ``ratings.image_id``: the image a rating belongs to, filled from ``images.path``; a
      re-linked image (moved, renamed) keeps it, so its ratings stay attached. A trigger fills it
      on insert; ingest fills it for ratings made before their image was stored. SET NULL on
      delete: a rating outlives a pruned image under its path (it is also the rating cache).
    - ``v_images_search.best_rating`` reads ratings by that id.
    """
    # Idempotent like migration 1: a database that lost its record is upgraded again.
    if not _has_column(conn, "images", "missing_since"):
        conn.execute("ALTER TABLE images ADD COLUMN missing_since TEXT")
    if not _has_column(conn, "ratings", "image_id"):
        conn.execute(
            "ALTER TABLE ratings ADD COLUMN image_id INTEGER"
            " REFERENCES images(id) ON DELETE SET NULL"
        )
    conn.execute(
        "UPDATE ratings SET image_id = (SELECT id FROM images WHERE images.path = ratings.path)"
    )
    conn.execute("CREATE INDEX IF NOT EXISTS idx_ratings_image ON ratings(image_id)")
    # Whatever writes a rating (the rating job, the web page, a script) ties it to its image.
    conn.execute(
        "CREATE TRIGGER IF NOT EXISTS trg_ratings_image_id AFTER INSERT ON ratings"
        " WHEN new.image_id IS NULL BEGIN"
        " UPDATE ratings SET image_id = (SELECT id FROM images WHERE images.path = new.path)"
        " WHERE rowid = new.rowid; END"
    )
    conn.execute(
        "CREATE INDEX IF NOT EXISTS idx_images_missing ON images(missing_since)"
        " WHERE missing_since IS NOT NULL"
    )
    conn.execute("DROP VIEW IF EXISTS v_images_search")
    conn.execute(_SEARCH_VIEW_BY_IMAGE_ID)


def _has_column(conn: sqlite3.Connection, table: str, column: str) -> bool:
    return any(row[1] == column for row in conn.execute(f'PRAGMA table_info("{table}")'))


_SEARCH_VIEW_BY_IMAGE_ID = """CREATE VIEW v_images_search AS
SELECT
    c.*, r.checkpoints, r.loras, r.embeddings, r.vaes, r.upscalers, r.other_resources,
    (SELECT MAX(overall) FROM ratings WHERE ratings.image_id = c.id)   AS best_rating
FROM v_images_with_core_params c JOIN v_images_with_resources r ON r.id = c.id"""


def add_cull_tables(conn: sqlite3.Connection) -> None:
    """Migration 4 (``aimeta cull``): technical signals and perceptual hash per image, the
    model's ranking of each group (the record a killed run resumes from) and the decisions."""
    for statement in _CULL_TABLES:
        conn.execute(statement)


_CULL_TABLES = (
    """CREATE TABLE IF NOT EXISTS cull_signals (
    image_id     INTEGER PRIMARY KEY REFERENCES images(id) ON DELETE CASCADE,
    sharpness    REAL NOT NULL,    -- variance of the Laplacian of luminance (0-1 scale)
    highlights   REAL NOT NULL,    -- share of pixels clipped white
    shadows      REAL NOT NULL,    -- share of pixels clipped black
    noise        REAL NOT NULL,    -- estimated noise sigma (0-1 scale)
    width        INTEGER NOT NULL, -- of the image file
    height       INTEGER NOT NULL,
    captured     REAL,             -- EXIF capture time, seconds since the epoch (local)
    phash        TEXT NOT NULL,    -- 64-bit perceptual hash, hex
    reasons_json TEXT NOT NULL,    -- ["blurry", "overexposed", ...]
    computed_at  TEXT NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS cull_rankings (
    group_key    TEXT NOT NULL,    -- sha1 of the group's sorted image ids
    model        TEXT NOT NULL,
    members_json TEXT NOT NULL,    -- image ids, in the order they were sent
    order_json   TEXT NOT NULL,    -- image ids, best first
    reasons_json TEXT NOT NULL,    -- {image id: the model's reason}
    requests     INTEGER NOT NULL,
    ranked_at    TEXT NOT NULL,
    PRIMARY KEY (group_key, model)
)""",
    """CREATE TABLE IF NOT EXISTS cull_decisions (
    image_id   INTEGER PRIMARY KEY REFERENCES images(id) ON DELETE CASCADE,
    group_id   INTEGER,
    rank       INTEGER,
    stars      INTEGER,
    decision   TEXT NOT NULL CHECK (decision IN ('pick', 'reject', 'keep')),
    model      TEXT,
    decided_at TEXT NOT NULL
)""",
    # Beyond the shared contract: why an image is a reject candidate, and its group's size.
    """CREATE TABLE IF NOT EXISTS cull_reasons (
    image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    reason   TEXT NOT NULL,
    PRIMARY KEY (image_id, reason)
) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS idx_cull_decisions_group ON cull_decisions(group_id)",
)


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


# Migration 6: the prompts are stored once, in kv. Until 5, prompts_fts kept its own copy of
# both prompts (prompts_fts_content: 1.2 KB per image on bench/scale.py's corpus, the prompt
# text's fourth copy). Now it is an external-content index that reads the text, when it needs
# it, from the view v_prompts over kv (a lookup by image id goes through kv's primary key: the
# view's WHERE is pushed into its GROUP BY). An external-content index must be told what it
# indexed when a row goes away: a plain DELETE of a row reads the text from the view, so it
# must run while kv still holds that text, hence BEFORE triggers; and it must never run for a
# row that is not indexed (the index would drop tokens it never had), hence every delete asks
# prompts_fts_docsize (one small row per indexed image) first. db.store_batch inserts an
# image's full-text row itself, after its kv rows, as before; so the insert trigger acts only
# for an image indexed already (plain SQL adding a prompt to it), which costs store_batch one
# look-up in prompts_fts_docsize per prompt row.
_PROMPTS_VIEW = """CREATE VIEW v_prompts AS
SELECT image_id,
    MAX(CASE WHEN key = 'prompt' THEN value END) AS prompt,
    MAX(CASE WHEN key = 'negative_prompt' THEN value END) AS negative_prompt
FROM kv WHERE key IN ('prompt', 'negative_prompt') GROUP BY image_id"""

_EXTERNAL_PROMPTS_FTS = (
    "DROP TRIGGER IF EXISTS trg_kv_prompts_fts_delete",
    "DROP TRIGGER IF EXISTS trg_kv_prompts_fts_update",
    "DROP TRIGGER IF EXISTS trg_kv_prompts_fts_before_update",
    "DROP TRIGGER IF EXISTS trg_kv_prompts_fts_insert",
    "DROP TABLE IF EXISTS prompts_fts",
    "DROP VIEW IF EXISTS v_prompts",
    _PROMPTS_VIEW,
    """CREATE VIRTUAL TABLE prompts_fts USING fts5(
    prompt, negative_prompt, content = 'v_prompts', content_rowid = 'image_id',
    tokenize = 'unicode61 remove_diacritics 2'
)""",
    "INSERT INTO prompts_fts (prompts_fts) VALUES ('rebuild')",
    # The parameters' index without the prompts: they were its largest entries (1.2 of its
    # 1.5 KB per image on bench/scale.py's corpus) and no query looks a prompt up by its text
    # (the full-text index does). SQLite uses a partial index only for a query whose WHERE
    # repeats its condition: every query by key and value adds db.PARAMETER_ROWS.
    "DROP INDEX IF EXISTS idx_kv_key_value",
    """CREATE INDEX idx_kv_key_value ON kv(key, value)
    WHERE key NOT IN ('prompt', 'negative_prompt')""",
    # A prompt row deleted (by anyone, also by the cascade from images): the image's entry
    # goes while kv still has both texts, and comes back with the text that stays, if any.
    """CREATE TRIGGER trg_kv_prompts_fts_delete BEFORE DELETE ON kv
WHEN old.key IN ('prompt', 'negative_prompt')
    AND EXISTS (SELECT 1 FROM prompts_fts_docsize WHERE id = old.image_id)
BEGIN
    DELETE FROM prompts_fts WHERE rowid = old.image_id;
    INSERT INTO prompts_fts (rowid, prompt, negative_prompt)
    SELECT image_id, left_prompt, left_negative FROM (
        SELECT image_id,
            CASE WHEN old.key = 'prompt' THEN NULL ELSE prompt END AS left_prompt,
            CASE WHEN old.key = 'negative_prompt' THEN NULL ELSE negative_prompt END
                AS left_negative
        FROM v_prompts WHERE image_id = old.image_id)
    WHERE left_prompt IS NOT NULL OR left_negative IS NOT NULL;
END""",
    # A prompt row added to an image indexed already: its entry goes while kv holds only the
    # texts it was made of, and comes back with the new text.
    """CREATE TRIGGER trg_kv_prompts_fts_insert BEFORE INSERT ON kv
WHEN new.key IN ('prompt', 'negative_prompt')
    AND EXISTS (SELECT 1 FROM prompts_fts_docsize WHERE id = new.image_id)
BEGIN
    DELETE FROM prompts_fts WHERE rowid = new.image_id;
    INSERT INTO prompts_fts (rowid, prompt, negative_prompt)
    SELECT new.image_id,
        CASE WHEN new.key = 'prompt' THEN new.value ELSE MAX(prompt) END,
        CASE WHEN new.key = 'negative_prompt' THEN new.value ELSE MAX(negative_prompt) END
    FROM v_prompts WHERE image_id = new.image_id;
END""",
    """CREATE TRIGGER trg_kv_prompts_fts_before_update BEFORE UPDATE ON kv
WHEN old.key IN ('prompt', 'negative_prompt') OR new.key IN ('prompt', 'negative_prompt')
BEGIN
    DELETE FROM prompts_fts WHERE rowid IN (
        SELECT id FROM prompts_fts_docsize WHERE id IN (old.image_id, new.image_id));
END""",
    """CREATE TRIGGER trg_kv_prompts_fts_update AFTER UPDATE ON kv
WHEN old.key IN ('prompt', 'negative_prompt') OR new.key IN ('prompt', 'negative_prompt')
BEGIN
    INSERT INTO prompts_fts (rowid, prompt, negative_prompt)
    SELECT image_id, prompt, negative_prompt FROM v_prompts
    WHERE image_id IN (old.image_id, new.image_id)
        AND image_id NOT IN (SELECT id FROM prompts_fts_docsize);
END""",
)


def compact_prompts_and_raw(conn: sqlite3.Connection) -> None:
    """Migration 6: the full-text index reads the prompts from kv instead of keeping a copy
    (see _EXTERNAL_PROMPTS_FTS), and the raw metadata of each image is kept zlib-compressed
    in ``images.raw_zlib`` where that saves space (``raw_json`` is then NULL; see
    :func:`aimeta.db.raw_text`), and idx_kv_key_value leaves the prompts out."""
    for statement in _EXTERNAL_PROMPTS_FTS:
        conn.execute(statement)
    if not _has_column(conn, "images", "raw_zlib"):
        conn.execute("ALTER TABLE images ADD COLUMN raw_zlib BLOB")
    _compress_raw(conn)


def _compress_raw(conn: sqlite3.Connection, batch: int = 2000) -> None:
    """Compress the stored raw metadata, batch by batch in id order (the rows stay where they
    are; the space they free is reused by later writes, or given back by VACUUM)."""
    from aimeta.db import pack_raw  # db imports this module

    last = -(2**63)
    while True:
        rows = conn.execute(
            "SELECT id, raw_json FROM images WHERE id > ? AND raw_json IS NOT NULL"
            " ORDER BY id LIMIT ?",
            (last, batch),
        ).fetchall()
        if not rows:
            return
        packed = [(ident, pack_raw(text)) for ident, text in rows]
        conn.executemany(
            "UPDATE images SET raw_json = NULL, raw_zlib = ? WHERE id = ?",
            [(blob, ident) for ident, (text, blob) in packed if blob is not None],
        )
        last = rows[-1][0]


def index_image_sizes(conn: sqlite3.Connection) -> None:
    """Migration 7: an index on ``images(size)``. Every `aimeta all` asks which of its new
    files have the size of a stored image (the first test of a moved file, before any
    hashing); without the index each such query read the whole images table (1,000,000
    images: 0.8 s a run, whatever the run's size). About 15 bytes per image."""
    conn.execute("CREATE INDEX IF NOT EXISTS idx_images_size ON images(size)")


def number_images_in_order(conn: sqlite3.Connection) -> None:
    """Migration 8: new images are numbered in the order they are stored, one past the
    largest id ever given (kept in ``image_id_seq``, so the id of a pruned image is never
    given again), instead of by a 63-bit hash of their key. Stored images keep their ids.

    Why: every per-image index ends in the image id (``idx_tokens_norm``, kv's and
    token_rows' primary keys, ...). Hashed ids put each new image's rows on random pages of
    those indexes, so adding 1,000 images to 1,000,000 wrote ~177,000 pages; ids that only
    grow put them at the end of each range. Small ids are also one to three bytes on disk
    instead of eight, in every row and index entry that holds one."""
    conn.execute("CREATE TABLE IF NOT EXISTS image_id_seq (last INTEGER NOT NULL)")
    if conn.execute("SELECT COUNT(*) FROM image_id_seq").fetchone()[0] == 0:
        conn.execute("INSERT INTO image_id_seq SELECT COALESCE(MAX(id), 0) FROM images")


# Numbers are unique and increasing (the runner accepts gaps); each database records the
# numbers it applied.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "create_baseline", create_baseline),
    Migration(2, "add_user_ratings", add_user_ratings),
    Migration(3, "track_image_identity", track_image_identity),
    Migration(4, "add_cull_tables", add_cull_tables),
    Migration(5, "compact_tokens", compact_tokens, rewrites_table=True),
    Migration(6, "compact_prompts_and_raw", compact_prompts_and_raw, rewrites_table=True),
    Migration(7, "index_image_sizes", index_image_sizes),
    Migration(8, "number_images_in_order", number_images_in_order),
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
    rewrites = any(step.rewrites_table for step in todo) and not state.empty
    if rewrites:
        # Status, on stderr like every status line: rewriting a large table takes minutes
        # (about 2 per 100,000 images for compact_tokens), which would look like a hang.
        sys.stderr.write(
            f"aimeta: upgrading {path or 'the database'} from schema {state.version} to"
            f" {latest}, which rewrites a table (a backup is made first); a large database"
            " takes a few minutes\n"
        )
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
