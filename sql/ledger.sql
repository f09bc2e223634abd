-- owlsync ledger: what was imported into this database, kept in the same
-- transaction as the import itself. owlsync creates it on first use when the
-- importing role may; a DBA may create it ahead of time with this file
--
--   psql -X -v ON_ERROR_STOP=1 -d DATABASE -f ledger.sql
--
-- and grant the importing role USAGE on schema owlsync and what the import
-- writes (sql/grants.sql, ledger_owner=false, does both): SELECT, INSERT on
-- bundles; INSERT on bundle_tables and bundle_rewrites; SELECT, INSERT, UPDATE
-- on datasets and dataset_tables. An importer finding the whole ledger needs
-- no CREATE privilege at all. Running this file again adds what a newer
-- owlsync needs (owlsync does so itself when the role owns the ledger) and
-- keeps every row.

-- The schema, made only when missing: CREATE SCHEMA IF NOT EXISTS would need
-- CREATE on the database even when the schema exists.
DO $owlsync$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_namespace WHERE nspname = 'owlsync') THEN
        CREATE SCHEMA owlsync;
    END IF;
END
$owlsync$;

-- One row per imported bundle.
CREATE TABLE IF NOT EXISTS owlsync.bundles (
    bundle_id    text PRIMARY KEY,
    environment  text NOT NULL,
    job          text NOT NULL,
    sequence     bigint NOT NULL,
    snapshot_at  timestamptz NOT NULL,
    created_at   timestamptz NOT NULL,
    key_id       text NOT NULL,
    file_name    text NOT NULL,
    datasets     text[] NOT NULL,
    rows_total   bigint NOT NULL,
    imported_at  timestamptz NOT NULL DEFAULT now()
);

-- Rows inserted, updated, deleted and left unchanged, per bundle and table.
CREATE TABLE IF NOT EXISTS owlsync.bundle_tables (
    bundle_id    text NOT NULL REFERENCES owlsync.bundles ON DELETE CASCADE,
    table_name   text NOT NULL,
    rows         bigint NOT NULL,
    inserted     bigint NOT NULL,
    updated      bigint NOT NULL,
    deleted      bigint NOT NULL,
    unchanged    bigint NOT NULL,
    PRIMARY KEY (bundle_id, table_name)
);

-- The last snapshot applied per source environment and dataset.
CREATE TABLE IF NOT EXISTS owlsync.datasets (
    environment  text NOT NULL,
    dataset      text NOT NULL,
    snapshot_at  timestamptz NOT NULL,
    bundle_id    text NOT NULL,
    imported_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (environment, dataset)
);

-- The last snapshot applied per source environment, dataset and table: the
-- rollback check, so that two jobs exporting different tables of the same
-- datasets do not refuse each other's bundles.
CREATE TABLE IF NOT EXISTS owlsync.dataset_tables (
    environment  text NOT NULL,
    dataset      text NOT NULL,
    table_name   text NOT NULL,
    snapshot_at  timestamptz NOT NULL,
    bundle_id    text NOT NULL,
    imported_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (environment, dataset, table_name)
);

-- The job and sequence of the bundle each row came from: bundles of one job
-- are ordered by sequence as well as by snapshot time.
ALTER TABLE owlsync.dataset_tables ADD COLUMN IF NOT EXISTS job text;
ALTER TABLE owlsync.dataset_tables ADD COLUMN IF NOT EXISTS sequence bigint;

UPDATE owlsync.dataset_tables d SET job = b.job, sequence = b.sequence
  FROM owlsync.bundles b
 WHERE d.bundle_id = b.bundle_id AND d.sequence IS NULL;

-- A ledger older than this table: what its bundles applied, newest first.
INSERT INTO owlsync.dataset_tables (environment, dataset, table_name, snapshot_at, bundle_id, imported_at, job,
                                    sequence)
SELECT DISTINCT ON (b.environment, d.dataset, t.table_name)
       b.environment, d.dataset, t.table_name, b.snapshot_at, b.bundle_id, b.imported_at, b.job, b.sequence
  FROM owlsync.bundles b
  JOIN owlsync.bundle_tables t ON t.bundle_id = b.bundle_id
 CROSS JOIN LATERAL unnest(b.datasets) AS d(dataset)
 ORDER BY b.environment, d.dataset, t.table_name, b.snapshot_at DESC
    ON CONFLICT DO NOTHING;

-- Values each [rewrite] rule changed, per bundle and table.
CREATE TABLE IF NOT EXISTS owlsync.bundle_rewrites (
    bundle_id    text NOT NULL REFERENCES owlsync.bundles ON DELETE CASCADE,
    rule_name    text NOT NULL,
    table_name   text NOT NULL,
    changed      bigint NOT NULL,
    PRIMARY KEY (bundle_id, rule_name, table_name)
);
