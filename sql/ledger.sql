-- owlsync ledger: what was imported into this database, kept in the same
-- transaction as the import itself. owlsync creates it on first use; a DBA may
-- create it ahead of time with this file and grant the importing role
-- SELECT, INSERT, UPDATE on its tables and USAGE on the schema.
CREATE SCHEMA IF NOT EXISTS owlsync;

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

-- The last snapshot applied per source environment and dataset: an older
-- bundle for one of these datasets is a rollback and is refused.
CREATE TABLE IF NOT EXISTS owlsync.datasets (
    environment  text NOT NULL,
    dataset      text NOT NULL,
    snapshot_at  timestamptz NOT NULL,
    bundle_id    text NOT NULL,
    imported_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (environment, dataset)
);

-- Values each [rewrite] rule changed, per bundle and table.
CREATE TABLE IF NOT EXISTS owlsync.bundle_rewrites (
    bundle_id    text NOT NULL REFERENCES owlsync.bundles ON DELETE CASCADE,
    rule_name    text NOT NULL,
    table_name   text NOT NULL,
    changed      bigint NOT NULL,
    PRIMARY KEY (bundle_id, rule_name, table_name)
);
