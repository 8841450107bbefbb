-- aimeta database schema: the baseline, frozen as released in aimeta 0.1.0 (migration 1).
-- Do not edit the statements: every later schema change is a numbered migration in
-- src/aimeta/migrations.py, applied by aimeta.db.connect. Every statement is idempotent.
-- Open a database in DB Browser for SQLite to explore it (`aimeta db version` lists its migrations).

PRAGMA foreign_keys = ON;

-- One row per image file. `id` is stable: derived from `key`, the path relative to the
-- folder that was scanned, prefixed with that folder's name (moving the folder keeps ids).
CREATE TABLE IF NOT EXISTS images (
    id            INTEGER PRIMARY KEY,
    key           TEXT NOT NULL UNIQUE,
    path          TEXT NOT NULL,              -- absolute path when read
    root          TEXT,                       -- the folder that was scanned
    file_name     TEXT NOT NULL,
    ext           TEXT,
    size          INTEGER,
    mtime_ns      INTEGER,
    sha256        TEXT,
    width         INTEGER,
    height        INTEGER,
    generator     TEXT NOT NULL,              -- a1111, comfyui, ..., 'none' (no metadata), 'unknown'
    reader        TEXT,                       -- exiftool | native
    raw_json      TEXT,                       -- every text field read from the file
    extra_json    TEXT,                       -- parser output without a normalised key
    warnings_json TEXT,
    parser_version INTEGER,
    ingested_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);
CREATE INDEX IF NOT EXISTS idx_images_path ON images(path);
CREATE INDEX IF NOT EXISTS idx_images_generator ON images(generator);
CREATE INDEX IF NOT EXISTS idx_images_sha256 ON images(sha256);

-- Normalised parameters, one row per key. Values are text: seeds exceed 64-bit integers.
CREATE TABLE IF NOT EXISTS kv (
    image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    key      TEXT NOT NULL,
    value    TEXT,
    PRIMARY KEY (image_id, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idx_kv_key_value ON kv(key, value);

-- Prompt tokens. t_raw as written, t_norm lower-case without emphasis, for matching.
CREATE TABLE IF NOT EXISTS tokens (
    image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    side     TEXT NOT NULL CHECK (side IN ('pos', 'neg')),
    position INTEGER NOT NULL,
    t_raw    TEXT NOT NULL,
    t_norm   TEXT NOT NULL,
    weight   REAL NOT NULL DEFAULT 1.0,
    PRIMARY KEY (image_id, side, position)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idx_tokens_norm ON tokens(t_norm, side, image_id);

-- Models used to make each image: checkpoint, lora, embedding, vae, upscaler, ...
CREATE TABLE IF NOT EXISTS resources (
    image_id    INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    kind        TEXT NOT NULL,
    name        TEXT NOT NULL,                -- normalised: no folders, no file extension
    weight      REAL,
    weight_clip REAL,
    hash        TEXT,
    hash_type   TEXT,
    source      TEXT,
    extra_json  TEXT,
    PRIMARY KEY (image_id, kind, name)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idx_resources_kind_name ON resources(kind, name, image_id);
CREATE INDEX IF NOT EXISTS idx_resources_hash ON resources(hash);

-- Civitai model versions known locally (from map files, API exports or --online look-ups).
CREATE TABLE IF NOT EXISTS model_versions (
    version_id   INTEGER PRIMARY KEY,
    model_id     INTEGER,
    kind         TEXT,
    model_name   TEXT,
    version_name TEXT,
    base_model   TEXT,
    files_json   TEXT,
    hashes_json  TEXT,
    source       TEXT,
    updated_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);

-- Hashes of model files, for resolving resources known only by hash (prefix match).
CREATE TABLE IF NOT EXISTS model_hashes (
    hash       TEXT NOT NULL,                 -- lower-case hex
    hash_type  TEXT,
    version_id INTEGER NOT NULL REFERENCES model_versions(version_id) ON DELETE CASCADE,
    PRIMARY KEY (hash, version_id)
) WITHOUT ROWID;

-- Every question `aimeta resolve --online` asked the Civitai API, with its answer, so that no
-- id or hash is asked twice; "not found" (404) answers are remembered too.
CREATE TABLE IF NOT EXISTS civitai_lookups (
    endpoint   TEXT NOT NULL,                 -- model-version | by-hash
    key        TEXT NOT NULL,                 -- the version id or hash asked for
    status     INTEGER NOT NULL,              -- HTTP status: 200 found, 404 not found
    version_id INTEGER,                       -- the model version answered, when found
    asked_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    PRIMARY KEY (endpoint, key)
) WITHOUT ROWID;

-- AI ratings: one row per (image path, model tag).
CREATE TABLE IF NOT EXISTS ratings (
    path              TEXT NOT NULL,
    model             TEXT NOT NULL,
    overall           INTEGER NOT NULL CHECK (overall BETWEEN 1 AND 5),
    scores_json       TEXT NOT NULL,
    keywords_json     TEXT NOT NULL,
    prompt_tokens     INTEGER,
    completion_tokens INTEGER,
    duration_s        REAL,
    prompt_hash       TEXT,
    rated_at          TEXT NOT NULL,
    PRIMARY KEY (path, model)
);
CREATE INDEX IF NOT EXISTS idx_ratings_overall ON ratings(overall, model);

-- The prompt texts behind ratings.prompt_hash (stored once, not once per image).
CREATE TABLE IF NOT EXISTS rating_prompts (
    prompt_hash   TEXT PRIMARY KEY,
    system_prompt TEXT NOT NULL,
    user_prompt   TEXT NOT NULL,
    first_used    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);

-- Files that could not be read or parsed, with the reason. Cleared when the file succeeds.
CREATE TABLE IF NOT EXISTS errors (
    path   TEXT NOT NULL,
    stage  TEXT NOT NULL,                     -- dump | ingest | resources | rate | ...
    reason TEXT NOT NULL,
    at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    PRIMARY KEY (path, stage)
);

-- How far each raw-metadata file has been ingested, so a re-run starts where the last ended.
CREATE TABLE IF NOT EXISTS ingest_progress (
    source     TEXT PRIMARY KEY,              -- absolute path of the JSONL file
    identity   TEXT NOT NULL,                 -- changes when the file is replaced
    offset     INTEGER NOT NULL
);

DROP VIEW IF EXISTS v_images_with_core_params;
CREATE VIEW v_images_with_core_params AS
SELECT
    i.id, i.path, i.file_name, i.generator, i.width, i.height,
    MAX(CASE WHEN kv.key = 'prompt' THEN kv.value END)          AS prompt,
    MAX(CASE WHEN kv.key = 'negative_prompt' THEN kv.value END) AS negative_prompt,
    MAX(CASE WHEN kv.key = 'model' THEN kv.value END)           AS model,
    MAX(CASE WHEN kv.key = 'model_hash' THEN kv.value END)      AS model_hash,
    MAX(CASE WHEN kv.key = 'sampler' THEN kv.value END)         AS sampler,
    MAX(CASE WHEN kv.key = 'sampler_norm' THEN kv.value END)    AS sampler_norm,
    MAX(CASE WHEN kv.key = 'scheduler_norm' THEN kv.value END)  AS scheduler_norm,
    MAX(CASE WHEN kv.key = 'steps' THEN kv.value END)           AS steps,
    MAX(CASE WHEN kv.key = 'cfg' THEN kv.value END)             AS cfg,
    MAX(CASE WHEN kv.key = 'seed' THEN kv.value END)            AS seed,
    MAX(CASE WHEN kv.key = 'clip_skip' THEN kv.value END)       AS clip_skip,
    MAX(CASE WHEN kv.key = 'denoise' THEN kv.value END)         AS denoise
FROM images i LEFT JOIN kv ON kv.image_id = i.id
GROUP BY i.id;

-- One display label per resource row: a Civitai placeholder not yet resolved counts under the
-- kind it declares and shows the model name it carries; weights follow the name
-- (`detailTweaker:0.8`, and `:clip` strength when it differs).
DROP VIEW IF EXISTS v_resource_labels;
CREATE VIEW v_resource_labels AS
SELECT
    image_id,
    CASE WHEN kind = 'resource_ref'
         THEN COALESCE(json_extract(extra_json, '$.declared_kind'), kind) ELSE kind END AS kind,
    CASE WHEN kind = 'resource_ref' AND json_extract(extra_json, '$.model_name') IS NOT NULL
         THEN json_extract(extra_json, '$.model_name') || ' [' || name || ']' ELSE name END
    || COALESCE(':' || weight, '')
    || CASE WHEN weight_clip IS NOT NULL AND weight_clip IS NOT weight
            THEN ':' || weight_clip ELSE '' END                       AS label,
    name, weight, weight_clip, hash, source
FROM resources;

DROP VIEW IF EXISTS v_images_with_resources;
CREATE VIEW v_images_with_resources AS
SELECT
    i.id, i.path, i.generator,
    (SELECT group_concat(label, ', ') FROM (SELECT label FROM v_resource_labels l
      WHERE l.image_id = i.id AND l.kind = 'checkpoint' ORDER BY label))  AS checkpoints,
    (SELECT group_concat(label, ', ') FROM (SELECT label FROM v_resource_labels l
      WHERE l.image_id = i.id AND l.kind = 'lora' ORDER BY label))        AS loras,
    (SELECT group_concat(label, ', ') FROM (SELECT label FROM v_resource_labels l
      WHERE l.image_id = i.id AND l.kind = 'embedding' ORDER BY label))   AS embeddings,
    (SELECT group_concat(label, ', ') FROM (SELECT label FROM v_resource_labels l
      WHERE l.image_id = i.id AND l.kind = 'vae' ORDER BY label))         AS vaes,
    (SELECT group_concat(label, ', ') FROM (SELECT label FROM v_resource_labels l
      WHERE l.image_id = i.id AND l.kind = 'upscaler' ORDER BY label))    AS upscalers,
    (SELECT group_concat(kind || ':' || label, ', ') FROM (SELECT kind, label
      FROM v_resource_labels l WHERE l.image_id = i.id AND l.kind NOT IN
        ('checkpoint', 'lora', 'embedding', 'vae', 'upscaler')
      ORDER BY kind, label))                                              AS other_resources
FROM images i;

DROP VIEW IF EXISTS v_images_search;
CREATE VIEW v_images_search AS
SELECT
    c.*, r.checkpoints, r.loras, r.embeddings, r.vaes, r.upscalers, r.other_resources,
    (SELECT MAX(overall) FROM ratings WHERE ratings.path = c.path)     AS best_rating
FROM v_images_with_core_params c JOIN v_images_with_resources r ON r.id = c.id;

-- Full-text index of the prompts: one row per image (rowid = images.id). db.store_image writes
-- an image's row once, after its kv rows (an insert trigger on kv would rewrite the row once
-- per prompt field, doubling the indexing work of every ingest); the triggers below keep it
-- current when kv rows are deleted (also by cascade) or updated by anyone.
CREATE VIRTUAL TABLE IF NOT EXISTS prompts_fts USING fts5(
    prompt, negative_prompt, tokenize = 'unicode61 remove_diacritics 2'
);

DROP TRIGGER IF EXISTS trg_kv_prompts_fts_insert;

DROP TRIGGER IF EXISTS trg_kv_prompts_fts_delete;
-- With no full-text row for the image there is nothing a deleted prompt can make stale: that is
-- how db.store_batch replaces an image (its row deleted first) without re-indexing the prompts
-- once per deleted kv row.
CREATE TRIGGER trg_kv_prompts_fts_delete AFTER DELETE ON kv
WHEN old.key IN ('prompt', 'negative_prompt')
    AND EXISTS (SELECT 1 FROM prompts_fts WHERE rowid = old.image_id)
BEGIN
    DELETE FROM prompts_fts WHERE rowid = old.image_id;
    INSERT INTO prompts_fts (rowid, prompt, negative_prompt)
    SELECT old.image_id,
        MAX(CASE WHEN key = 'prompt' THEN value END),
        MAX(CASE WHEN key = 'negative_prompt' THEN value END)
    FROM kv WHERE image_id = old.image_id AND key IN ('prompt', 'negative_prompt')
    HAVING COUNT(*) > 0;
END;

DROP TRIGGER IF EXISTS trg_kv_prompts_fts_update;
CREATE TRIGGER trg_kv_prompts_fts_update AFTER UPDATE ON kv
WHEN old.key IN ('prompt', 'negative_prompt') OR new.key IN ('prompt', 'negative_prompt')
BEGIN
    DELETE FROM prompts_fts WHERE rowid IN (old.image_id, new.image_id);
    INSERT INTO prompts_fts (rowid, prompt, negative_prompt)
    SELECT image_id,
        MAX(CASE WHEN key = 'prompt' THEN value END),
        MAX(CASE WHEN key = 'negative_prompt' THEN value END)
    FROM kv WHERE image_id IN (old.image_id, new.image_id)
        AND key IN ('prompt', 'negative_prompt')
    GROUP BY image_id;
END;

-- Databases made before prompts_fts existed: fill it once (a no-op when it has rows).
INSERT INTO prompts_fts (rowid, prompt, negative_prompt)
SELECT image_id,
    MAX(CASE WHEN key = 'prompt' THEN value END),
    MAX(CASE WHEN key = 'negative_prompt' THEN value END)
FROM kv
WHERE key IN ('prompt', 'negative_prompt') AND NOT EXISTS (SELECT 1 FROM prompts_fts)
GROUP BY image_id;

-- Case-insensitive look-ups for `aimeta search --model/--lora/--resource` through an index.
CREATE INDEX IF NOT EXISTS idx_resources_kind_name_nocase
    ON resources(kind, name COLLATE NOCASE, image_id);
-- Checkpoint names as written in the parameters (found even before `aimeta resources` ran).
CREATE INDEX IF NOT EXISTS idx_kv_model_nocase ON kv(value COLLATE NOCASE, image_id)
    WHERE key = 'model';
