-- owlsync benchmark: "the vendor's way", as a baseline to measure owlsync against.
--
-- NOT part of owlsync.  It lives with the benchmark (tests/bench/) and is
-- loaded only into the benchmark's throwaway source cluster.
--
-- The vendor's Export/Import API promotes datasets like this:
--   export: a plpgsql function, dump(), returns one statement per selected row,
--             INSERT INTO schema.table(col, ...) VALUES ('v1', 'v2', NULL, ...);
--           every value cast to text and quote_literal()ed, NULL written as NULL;
--   import: those statements are run one at a time, each in its own transaction
--           (autocommit).  tests/bench/run.sh does it with
--             psql -X -q -v ON_ERROR_STOP=1 -f statements.sql
--           psql sends one statement at a time and, with no BEGIN in the file,
--           each one commits on its own.
--
-- bench_vendor.dump(schema, tables, datasets) returns the statements of the
-- rows of TABLES (in that order: parents first) whose "dataset" column is one of
-- DATASETS; a table without a "dataset" column (rule_repo) is dumped whole.
-- Columns named in SKIP (default: id, the surrogate key the target assigns
-- itself) are left out, as owlsync leaves out its "generated" columns.

CREATE SCHEMA IF NOT EXISTS bench_vendor;

CREATE OR REPLACE FUNCTION bench_vendor.dump(p_schema text, p_tables text[], p_datasets text[],
                                             p_skip text[] DEFAULT ARRAY['id'])
RETURNS SETOF text
LANGUAGE plpgsql
AS $fn$
DECLARE
    t       text;
    rel     regclass;
    cols    text;   -- "col1, col2, ..."
    vals    text;   -- the per-row expression that renders the VALUES list
    has_ds  boolean;
    q       text;
    stmt    text;
BEGIN
    FOREACH t IN ARRAY p_tables LOOP
        rel := format('%I.%I', p_schema, t)::regclass;
        SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum),
               string_agg(format('coalesce(pg_catalog.quote_literal(%I::text), ''NULL'')', a.attname),
                          ' || '', '' || ' ORDER BY a.attnum),
               bool_or(a.attname = 'dataset')
          INTO cols, vals, has_ds
          FROM pg_catalog.pg_attribute a
         WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped
           AND a.attname <> ALL (p_skip);
        q := format('SELECT %L || %s || %L FROM %s',
                    format('INSERT INTO %I.%I(%s) VALUES (', p_schema, t, cols), vals, ');', rel);
        IF has_ds THEN
            q := q || ' WHERE dataset = ANY ($1)';
        END IF;
        -- One row at a time, as the vendor's function does.
        FOR stmt IN EXECUTE q USING p_datasets LOOP
            RETURN NEXT stmt;
        END LOOP;
    END LOOP;
    RETURN;
END
$fn$;
