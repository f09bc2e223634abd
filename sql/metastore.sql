-- owlsync: a stand-in Collibra DQ ("Owl") metastore, for tests, the demo and
-- benchmarks.
--
-- The tables are modelled on the metastore tables the vendor's Export/Import
-- API works on (rule_repo, owl_rule, alert_cond, owl_check_repo, job_schedule,
-- owl_catalog, alert_output, dataset_schema, dataset_scoring) with the column
-- types a real metastore uses: bigserial surrogate ids, text, jsonb, text[],
-- bytea, timestamptz, numeric, boolean and nullable columns.  They are not a
-- copy of the vendor's DDL; they are what owlsync must cope with.
--
-- Every table but rule_repo (the global rule templates) belongs to a dataset
-- through its text column "dataset".  Every table has a bigserial "id" primary
-- key that the target assigns itself, and a UNIQUE natural key that an import
-- matches rows on:
--
--   table            natural key               rows per dataset (sample.sql)
--   rule_repo        (rule_nm)                 global
--   owl_catalog      (dataset)                 1
--   owl_rule         (dataset, rule_nm)        20
--   alert_cond       (dataset, alert_nm)       3
--   alert_output     (dataset, alert_nm, run_id)  2 per alert
--   owl_check_repo   (dataset)                 1
--   job_schedule     (dataset)                 1
--   dataset_schema   (dataset, col_nm)         10
--   dataset_scoring  (dataset)                 1
--
-- No schema prefix anywhere: load it into any schema (tenant) with
--   PGOPTIONS='-c search_path=tenant' psql -f sql/metastore.sql
-- The file expects an empty schema.

-- Global rule templates ("rule library"); they travel as a whole table.
CREATE TABLE rule_repo (
    id              bigserial PRIMARY KEY,
    rule_nm         text NOT NULL UNIQUE,
    rule_type       text NOT NULL DEFAULT 'SQLG',   -- SQLG, SQLF, Native, …
    rule_value      text NOT NULL,                  -- template, with ${column} placeholders
    rule_desc       text,
    rule_category   text,
    dimension       text,                           -- completeness, validity, …
    points          integer NOT NULL DEFAULT 1,
    perc            numeric(7,4) NOT NULL DEFAULT 1.0,
    params          jsonb,
    is_active       boolean NOT NULL DEFAULT true,
    user_nm         text,
    updt_ts         timestamptz NOT NULL DEFAULT now()
);

-- The dataset's catalog entry.
CREATE TABLE owl_catalog (
    id              bigserial PRIMARY KEY,
    dataset         text NOT NULL UNIQUE,
    alias_nm        text,
    business_unit   text,
    dataset_desc    text,
    tags            text[],
    owner_nm        text,
    source_db       text,
    source_table    text,
    row_cnt         bigint,
    col_cnt         integer,
    is_masked       boolean NOT NULL DEFAULT false,
    sample_img      bytea,                          -- an opaque blob (thumbnail, serialized state)
    metadata        jsonb,
    created_ts      timestamptz NOT NULL DEFAULT now(),
    last_run_ts     timestamptz
);

-- Rules of a dataset.
CREATE TABLE owl_rule (
    id              bigserial PRIMARY KEY,
    dataset         text NOT NULL,
    rule_nm         text NOT NULL,
    rule_type       text NOT NULL DEFAULT 'SQLG',
    rule_value      text,                           -- the SQL/expression the rule runs
    rule_repo       text,                           -- name of the rule_repo template used, if any
    filter_query    text,
    points          integer NOT NULL DEFAULT 1,
    perc            numeric(7,4) NOT NULL DEFAULT 1.0,
    score           numeric,
    is_active       boolean NOT NULL DEFAULT true,
    run_time_limit  integer,                        -- minutes
    rule_category   text,
    dimension       text,
    user_nm         text,
    params          jsonb,
    updt_ts         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (dataset, rule_nm)
);

-- Alert conditions of a dataset.
CREATE TABLE alert_cond (
    id              bigserial PRIMARY KEY,
    dataset         text NOT NULL,
    alert_nm        text NOT NULL,
    condition       text NOT NULL,                  -- e.g. score < 75
    alert_type      text NOT NULL DEFAULT 'EMAIL',
    recipients      text[],                         -- e-mail addresses, channels
    message         text,
    params          jsonb,
    batch_nm        text,
    is_active       boolean NOT NULL DEFAULT true,
    user_nm         text,
    updt_ts         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (dataset, alert_nm)
);

-- Alerts that fired.
CREATE TABLE alert_output (
    id              bigserial PRIMARY KEY,
    dataset         text NOT NULL,
    alert_nm        text NOT NULL,
    run_id          timestamptz NOT NULL,
    score           numeric,
    output          text,
    details         jsonb,
    sent            boolean,
    sent_ts         timestamptz,
    UNIQUE (dataset, alert_nm, run_id),
    -- The one foreign key of the stand-in metastore.  It exists to exercise the
    -- import's FK ordering (children deleted before parents, parents inserted
    -- before children) and to check that a "replace" keeps target ids: it is a
    -- natural-key FK, so it survives when alert_cond rows are matched by
    -- (dataset, alert_nm) and not deleted and re-inserted.
    CONSTRAINT alert_output_alert_cond_fk FOREIGN KEY (dataset, alert_nm)
        REFERENCES alert_cond (dataset, alert_nm)
);

-- How and where the dataset's check runs: connection, agent, Spark settings.
-- These are the values an import rewrites per environment.
CREATE TABLE owl_check_repo (
    id              bigserial PRIMARY KEY,
    dataset         text NOT NULL UNIQUE,
    conn_name       text NOT NULL,                  -- connection alias, e.g. prod_pg
    conn_url        text,                           -- JDBC URL, with a host
    agent_name      text,
    cmd_line        text,                           -- the owlcheck command line
    spark_conf      text,                           -- --num-executors 2 --executor-memory 4g …
    spark_master    text,
    env_vars        jsonb,
    lib_path        text,
    query           text,
    is_active       boolean NOT NULL DEFAULT true,
    user_nm         text,
    updt_ts         timestamptz NOT NULL DEFAULT now()
);

-- When the dataset's check runs.
CREATE TABLE job_schedule (
    id              bigserial PRIMARY KEY,
    dataset         text NOT NULL UNIQUE,
    cron            text NOT NULL,                  -- 5-field cron
    time_zone       text,
    agent           text,
    run_as          text,                           -- user the job runs as
    enabled         boolean NOT NULL DEFAULT true,
    last_run_ts     timestamptz,
    next_run_ts     timestamptz,
    updated         timestamptz NOT NULL DEFAULT now()
);

-- The dataset's columns, as the check last saw them.
CREATE TABLE dataset_schema (
    id              bigserial PRIMARY KEY,
    dataset         text NOT NULL,
    col_nm          text NOT NULL,
    col_type        text NOT NULL,
    col_pos         integer NOT NULL,
    col_precision   integer,
    col_scale       integer,
    is_nullable     boolean,
    is_key          boolean NOT NULL DEFAULT false,
    col_desc        text,
    col_tags        text[],
    updt_ts         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (dataset, col_nm)
);

-- How the dataset's score is computed.
CREATE TABLE dataset_scoring (
    id              bigserial PRIMARY KEY,
    dataset         text NOT NULL UNIQUE,
    pass_threshold  numeric NOT NULL DEFAULT 75,
    warn_threshold  numeric,
    behavior_weight numeric(10,4),
    outlier_weight  numeric(10,4),
    dupe_weight     numeric(10,4),
    pattern_weight  numeric(10,4),
    rule_weight     numeric(10,4),
    total_points    numeric,                        -- arbitrary precision
    weights         jsonb,
    is_custom       boolean NOT NULL DEFAULT false,
    updt_ts         timestamptz NOT NULL DEFAULT now()
);
