-- owlsync: example least-privilege roles for the exporter and the importer.
--
-- Run as a superuser (or the metastore's owner, with CREATEROLE) in the
-- metastore database:
--
--   psql -X -v ON_ERROR_STOP=1 -d owl -v schema=public -f sql/grants.sql
--
-- psql variables (all optional):
--   schema        the metastore schema (tenant) owlsync reads or writes   [public]
--   export_role   the role "owlsync export" connects as                    [owlsync_export]
--   import_role   the role "owlsync import" / the daemon's inbox connects as [owlsync_import]
--   ledger_owner  true: create the "owlsync" ledger schema now, owned by
--                 import_role, which creates (and later upgrades) the ledger
--                 tables in it on first use; false: create the whole ledger
--                 now (sql/ledger.sql, beside this file) and grant
--                 import_role only the reads and writes an import makes on
--                 it: no CREATE privilege anywhere                        [false]
--
-- The roles are created (LOGIN, no password) when they do not exist.  Give
-- them a password with \password, or use peer/cert authentication in
-- pg_hba.conf; owlsync reads passwords from ~/.pgpass or PGPASSFILE, never
-- from its INI file.  Re-running the script is harmless.
--
-- Only the tables of the stand-in metastore (sql/metastore.sql) are granted.
-- A real metastore has many more tables: add the ones your [table] sections
-- name, and nothing else.  Neither role gets TRUNCATE, REFERENCES, TRIGGER,
-- DDL on the metastore schema, or any superuser attribute.

\set ON_ERROR_STOP 1
\if :{?schema}
\else
  \set schema public
\endif
\if :{?export_role}
\else
  \set export_role owlsync_export
\endif
\if :{?import_role}
\else
  \set import_role owlsync_import
\endif
\if :{?ledger_owner}
\else
  \set ledger_owner false
\endif

SELECT NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'export_role') AS owl_need_export,
       NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'import_role') AS owl_need_import,
       current_database() AS owl_db
\gset

BEGIN;

\if :owl_need_export
CREATE ROLE :"export_role" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION;
\endif
\if :owl_need_import
CREATE ROLE :"import_role" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION;
\endif
COMMENT ON ROLE :"export_role" IS 'owlsync export: reads the metastore tables (read-only)';
COMMENT ON ROLE :"import_role" IS 'owlsync import: writes the metastore tables and the owlsync ledger';

GRANT CONNECT ON DATABASE :"owl_db" TO :"export_role", :"import_role";
GRANT USAGE ON SCHEMA :"schema" TO :"export_role", :"import_role";

-- ------------------------------------------------------------------ export
-- Read-only: the exporter takes a REPEATABLE READ, READ ONLY snapshot and
-- COPYs the rows of the chosen datasets out.  It needs nothing else: no
-- sequence, no temporary table, no ledger.
GRANT SELECT ON TABLE
    :"schema".rule_repo,
    :"schema".owl_catalog,
    :"schema".owl_rule,
    :"schema".alert_cond,
    :"schema".alert_output,
    :"schema".owl_check_repo,
    :"schema".job_schedule,
    :"schema".dataset_schema,
    :"schema".dataset_scoring
TO :"export_role";

-- ------------------------------------------------------------------ import
-- SELECT to compare and match rows, INSERT/UPDATE/DELETE to apply them
-- (replace, upsert with ON CONFLICT … DO UPDATE, insert with DO NOTHING).
GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE
    :"schema".rule_repo,
    :"schema".owl_catalog,
    :"schema".owl_rule,
    :"schema".alert_cond,
    :"schema".alert_output,
    :"schema".owl_check_repo,
    :"schema".job_schedule,
    :"schema".dataset_schema,
    :"schema".dataset_scoring
TO :"import_role";

-- The id sequences: USAGE for nextval() when the target assigns ids itself,
-- SELECT to read them, UPDATE for setval() when rows arrive with explicit ids
-- and the sequence must move past the largest one. A column whose default
-- calls a sequence it does not own (a shared hibernate_sequence, say) needs
-- the same on that sequence: add it here.
GRANT USAGE, SELECT, UPDATE ON SEQUENCE
    :"schema".rule_repo_id_seq,
    :"schema".owl_catalog_id_seq,
    :"schema".owl_rule_id_seq,
    :"schema".alert_cond_id_seq,
    :"schema".alert_output_id_seq,
    :"schema".owl_check_repo_id_seq,
    :"schema".job_schedule_id_seq,
    :"schema".dataset_schema_id_seq,
    :"schema".dataset_scoring_id_seq
TO :"import_role";

-- Staging tables are temporary tables (PUBLIC usually has this already; it is
-- granted here so that a database that revoked it from PUBLIC still works).
GRANT TEMPORARY ON DATABASE :"owl_db" TO :"import_role";

-- The ledger: schema "owlsync" in the same database (sql/ledger.sql).  An
-- import finding the whole ledger runs no DDL; `owlsync check` tests exactly
-- these grants.
\if :ledger_owner
-- The DBA creates the schema now and hands it to the import role: the role
-- can create the ledger tables in it but no other schema in the database.
-- Load sql/ledger.sql afterwards as the import role, or let the importer
-- create the tables on first use.  Ledger tables a DBA made before are
-- granted as below.
CREATE SCHEMA IF NOT EXISTS owlsync AUTHORIZATION :"import_role";
ALTER SCHEMA owlsync OWNER TO :"import_role";
GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA owlsync TO :"import_role";
\else
-- The DBA creates the ledger now (re-running it keeps every row and adds what
-- a newer owlsync needs: run this script again after an upgrade) and grants
-- the import role what an import does, nothing more.
SET client_min_messages = warning;
\ir ledger.sql
RESET client_min_messages;
GRANT USAGE ON SCHEMA owlsync TO :"import_role";
GRANT SELECT, INSERT ON TABLE owlsync.bundles TO :"import_role";
GRANT INSERT ON TABLE owlsync.bundle_tables, owlsync.bundle_rewrites TO :"import_role";
GRANT SELECT, INSERT, UPDATE ON TABLE owlsync.datasets, owlsync.dataset_tables TO :"import_role";
\endif

COMMIT;
