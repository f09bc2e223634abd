-- owlsync: sample data for the stand-in metastore of sql/metastore.sql.
--
--   psql -X -v ON_ERROR_STOP=1 -v datasets=5000 -f sql/metastore.sql -f sql/sample.sql
--
-- psql variable "datasets" (default 20) sets the number of bulk datasets
-- public.ds_1 … public.ds_N; "columns" (default 10, written C below) the
-- dataset_schema rows of each, as a wide source table has.  Every value is deterministic (no random(), no
-- now()), so two loads with the same size hold equal rows (ids included).
--
-- Rows, for datasets = N:
--   table            bulk (N datasets)   public.special   public.o'hara   total (C = 10)
--   rule_repo        -                   -                -               12 (global)
--   owl_catalog      N                   1                1               N + 2
--   owl_rule         20 N                8                1               20 N + 9
--   alert_cond       3 N                 2                -               3 N + 2
--   alert_output     6 N                 1                -               6 N + 1
--   owl_check_repo   N                   1                -               N + 1
--   job_schedule     N                   1                -               N + 1
--   dataset_schema   C N                 3                -               10 N + 3
--   dataset_scoring  N                   1                -               N + 1
--
-- Hostile and special values are hand-written below: all of them in dataset
-- 'public.special' (and two templates in rule_repo); a dataset whose very name
-- holds a quote is 'public.o''hara'.  Neither name matches the LIKE pattern
-- 'public.ds_%'.
--
-- Bulk values meant for [rewrite] tests: owl_check_repo.conn_name is 'prod_pg'
-- (every 10th dataset: 'prod_pg_hist'), conn_url
-- 'jdbc:postgresql://prod-db{1,2,3}.example.com:5432/sales?sslmode=require',
-- agent_name and job_schedule.agent 'prod-agent-{1,2,3}', job_schedule.run_as
-- 'svc_owl_prod', spark_master 'yarn'.

\set ON_ERROR_STOP 1
\if :{?datasets}
\else
  \set datasets 20
\endif
\if :{?columns}
\else
  \set columns 10
\endif
SELECT :'datasets' ~ '^[0-9]{1,7}$' AS owl_sample_ok \gset
\if :owl_sample_ok
\else
  \warn 'sample.sql: datasets must be a whole number, got' :'datasets'
  SELECT 'sample.sql: datasets must be a whole number'::int;  -- an error: ON_ERROR_STOP ends psql
\endif
SELECT :'columns' ~ '^[1-9][0-9]{0,3}$' AS owl_sample_ok \gset
\if :owl_sample_ok
\else
  \warn 'sample.sql: columns must be a whole number from 1 to 9999, got' :'columns'
  SELECT 'sample.sql: columns must be a whole number'::int;
\endif

BEGIN;

-- ---------------------------------------------------------------- rule_repo
INSERT INTO rule_repo (rule_nm, rule_type, rule_value, rule_desc, rule_category,
                       dimension, points, perc, params, is_active, user_nm, updt_ts)
SELECT t.nm, t.ty, t.val, 'Template ' || t.nm, t.cat, t.dim, t.pts, t.pc,
       jsonb_build_object('placeholders', t.ph), true, 'admin',
       '2024-01-01 00:00:00+00'::timestamptz + t.n * interval '1 hour'
FROM (VALUES
  (1,  'not_null',        'SQLF', '${col} IS NOT NULL',                         'basic',    'completeness', 1, 1.0,  '["col"]'::jsonb),
  (2,  'not_empty',       'SQLF', 'trim(${col}) <> ''''',                       'basic',    'completeness', 1, 1.0,  '["col"]'),
  (3,  'positive',        'SQLF', '${col} > 0',                                 'numeric',  'validity',     2, 0.5,  '["col"]'),
  (4,  'in_range',        'SQLF', '${col} BETWEEN ${lo} AND ${hi}',             'numeric',  'validity',     2, 0.5,  '["col","lo","hi"]'),
  (5,  'email_format',    'SQLF', '${col} ~ ''^[^@]+@[^@]+$''',                 'pattern',  'conformity',   3, 0.25, '["col"]'),
  (6,  'date_not_future', 'SQLF', '${col} <= current_date',                     'temporal', 'validity',     1, 1.0,  '["col"]'),
  (7,  'unique_key',      'SQLG', 'SELECT ${col}, count(*) FROM ${ds} GROUP BY 1 HAVING count(*) > 1', 'keys', 'uniqueness', 5, 0.1, '["col","ds"]'),
  (8,  'fk_exists',       'SQLG', 'SELECT * FROM ${ds} a WHERE NOT EXISTS (SELECT 1 FROM ${ref} b WHERE b.id = a.${col})', 'keys', 'integrity', 5, 0.1, '["col","ds","ref"]'),
  (9,  'row_count_min',   'SQLG', 'SELECT count(*) < ${min} FROM ${ds}',        'volume',   'completeness', 3, 1.0,  '["ds","min"]'),
  (10, 'iso_country',     'SQLF', '${col} IN (''US'', ''GB'', ''DE'', ''FR'', ''JP'')', 'pattern', 'conformity', 1, 1.0, '["col"]')
) AS t(n, nm, ty, val, cat, dim, pts, pc, ph);

-- Two hostile templates.
INSERT INTO rule_repo (rule_nm, rule_type, rule_value, rule_desc, rule_category,
                       dimension, points, perc, params, is_active, user_nm, updt_ts)
VALUES
  (E'tpl \'quoted\'\t"tab"', 'SQLF',
   E'${col} <> \'it\'\'s\'\nAND ${col} NOT LIKE \'%\\\\%\'',
   E'line 1\nline 2\r\nline 3 \\N \\.', NULL, NULL, 1, 1.0,
   '{"note": "he said \"hi\"", "uni": "é 日本 🦉"}', false, '', '2024-02-29 12:34:56.789012+00'),
  ('tpl_unicode_é_日本_🦉', 'SQLF', '${col} <> ''日本''', '', '', NULL, 0, 0,
   NULL, true, NULL, '1999-12-31 23:59:59.999999+00');

-- ---------------------------------------------------------------- bulk datasets
INSERT INTO owl_catalog (dataset, alias_nm, business_unit, dataset_desc, tags, owner_nm,
                         source_db, source_table, row_cnt, col_cnt, is_masked, sample_img,
                         metadata, created_ts, last_run_ts)
SELECT 'public.ds_' || d,
       'Dataset ' || d,
       (ARRAY['sales', 'finance', 'marketing', 'ops'])[d % 4 + 1],
       'Sample dataset number ' || d || ' of the stand-in metastore',
       ARRAY['tier' || d % 3, 'team_' || (ARRAY['a', 'b', 'c', 'd', 'e'])[d % 5 + 1]],
       'owner' || d % 7 || '@example.com',
       'salesdb', 'sales.t' || d,
       d::bigint * 1000, 10, d % 11 = 0,
       CASE WHEN d % 4 = 0 THEN NULL ELSE decode(md5('img' || d), 'hex') END,
       jsonb_build_object('source', 'postgres', 'ordinal', d,
                          'columns', 10, 'pii', d % 2 = 0),
       '2023-01-01 00:00:00+00'::timestamptz + d * interval '1 minute',
       CASE WHEN d % 5 = 0 THEN NULL
            ELSE '2024-06-01 02:00:00+00'::timestamptz + d * interval '1.000001 second' END
FROM generate_series(1, :datasets) AS d;

INSERT INTO owl_rule (dataset, rule_nm, rule_type, rule_value, rule_repo, filter_query,
                      points, perc, score, is_active, run_time_limit, rule_category,
                      dimension, user_nm, params, updt_ts)
SELECT 'public.ds_' || d,
       'rule_' || r,
       CASE WHEN r % 4 = 0 THEN 'SQLG' ELSE 'SQLF' END,
       CASE WHEN r % 4 = 0
            THEN format('SELECT * FROM sales.t%s WHERE col_%s IS NULL OR col_%s < %s', d, r % 10, r % 10, r)
            ELSE format('col_%s IS NOT NULL AND col_%s <> ''n/a''', r % 10, r % 10) END,
       CASE WHEN r % 5 = 0 THEN 'not_null' WHEN r % 7 = 0 THEN 'in_range' END,
       CASE WHEN r % 3 = 0 THEN format('region = ''R%s''', d % 4) END,
       r % 10 + 1,
       (r % 4 + 1) * 0.25,
       CASE WHEN r % 6 = 0 THEN NULL ELSE round(100 - (d * r) % 37 / 3.0, 4) END,
       r % 9 <> 0,
       CASE WHEN r % 2 = 0 THEN 30 END,
       (ARRAY['completeness', 'validity', 'conformity', 'integrity'])[r % 4 + 1],
       (ARRAY['COMPLETENESS', 'VALIDITY', 'CONFORMITY', 'CONSISTENCY', 'UNIQUENESS'])[r % 5 + 1],
       'user' || d % 13,
       CASE WHEN r % 3 = 0 THEN jsonb_build_object('threshold', r, 'cols', jsonb_build_array('col_' || r % 10)) END,
       '2024-01-01 00:00:00+00'::timestamptz + (d * 20 + r) * interval '1.000001 second'
FROM generate_series(1, :datasets) AS d, generate_series(1, 20) AS r;

INSERT INTO alert_cond (dataset, alert_nm, condition, alert_type, recipients, message,
                        params, batch_nm, is_active, user_nm, updt_ts)
SELECT 'public.ds_' || d,
       (ARRAY['score_low', 'rule_breaks', 'row_count_drop'])[a],
       (ARRAY['score < 75', 'rule_breaks > 0', 'row_count < 0.9 * prev_row_count'])[a],
       CASE WHEN a = 3 THEN 'SLACK' ELSE 'EMAIL' END,
       CASE WHEN a = 3 THEN ARRAY['#dq-alerts']
            ELSE ARRAY['dq-team@example.com', 'owner' || d % 7 || '@example.com'] END,
       format('Alert %s on dataset public.ds_%s', a, d),
       jsonb_build_object('severity', (ARRAY['high', 'medium', 'low'])[a], 'repeat', a > 1),
       CASE WHEN d % 2 = 0 THEN 'nightly' END,
       true,
       'user' || d % 13,
       '2024-01-02 00:00:00+00'::timestamptz + (d * 3 + a) * interval '1 second'
FROM generate_series(1, :datasets) AS d, generate_series(1, 3) AS a;

INSERT INTO alert_output (dataset, alert_nm, run_id, score, output, details, sent, sent_ts)
SELECT 'public.ds_' || d,
       (ARRAY['score_low', 'rule_breaks', 'row_count_drop'])[a],
       '2024-03-01 02:00:00+00'::timestamptz + k * interval '1 day' + d * interval '1 microsecond',
       round(60 + (d + a + k) % 40 + 0.5, 1),
       format('Alert %s fired for public.ds_%s on run %s', a, d, k),
       jsonb_build_object('run', k, 'breaks', (d + a) % 5),
       k = 1,
       CASE WHEN k = 1 THEN '2024-03-01 02:05:00+00'::timestamptz + k * interval '1 day' END
FROM generate_series(1, :datasets) AS d, generate_series(1, 3) AS a, generate_series(1, 2) AS k;

INSERT INTO owl_check_repo (dataset, conn_name, conn_url, agent_name, cmd_line, spark_conf,
                            spark_master, env_vars, lib_path, query, is_active, user_nm, updt_ts)
SELECT 'public.ds_' || d,
       CASE WHEN d % 10 = 0 THEN 'prod_pg_hist' ELSE 'prod_pg' END,
       format('jdbc:postgresql://prod-db%s.example.com:5432/sales?sslmode=require', d % 3 + 1),
       'prod-agent-' || d % 3 + 1,
       format('-ds public.ds_%s -rd "${rd}" -q "select * from sales.t%s" -cxn %s -agentId prod-agent-%s',
              d, d, CASE WHEN d % 10 = 0 THEN 'prod_pg_hist' ELSE 'prod_pg' END, d % 3 + 1),
       '--num-executors 2 --executor-cores 2 --executor-memory 4g --driver-memory 2g'
         || ' --conf spark.sql.shuffle.partitions=200',
       CASE WHEN d % 8 = 0 THEN 'local[*]' ELSE 'yarn' END,
       jsonb_build_object('ENV', 'prod', 'SPARK_HOME', '/opt/spark', 'OWL_HOME', '/opt/owl'),
       '/opt/owl/drivers/postgres',
       format('select * from sales.t%s', d),
       d % 17 <> 0,
       'user' || d % 13,
       '2024-01-03 00:00:00+00'::timestamptz + d * interval '1 second'
FROM generate_series(1, :datasets) AS d;

INSERT INTO job_schedule (dataset, cron, time_zone, agent, run_as, enabled,
                          last_run_ts, next_run_ts, updated)
SELECT 'public.ds_' || d,
       format('%s %s * * *', d % 60, d % 24),
       CASE WHEN d % 3 = 0 THEN 'America/New_York' ELSE 'UTC' END,
       'prod-agent-' || d % 3 + 1,
       'svc_owl_prod',
       d % 9 <> 0,
       CASE WHEN d % 6 = 0 THEN NULL
            ELSE '2024-06-01 00:00:00+00'::timestamptz + d * interval '1.5 second' END,
       CASE WHEN d % 9 = 0 THEN NULL
            ELSE '2024-06-02 00:00:00+00'::timestamptz + d * interval '1.5 second' END,
       '2024-01-04 00:00:00.000001+00'::timestamptz + d * interval '1 second'
FROM generate_series(1, :datasets) AS d;

INSERT INTO dataset_schema (dataset, col_nm, col_type, col_pos, col_precision, col_scale,
                            is_nullable, is_key, col_desc, col_tags, updt_ts)
SELECT 'public.ds_' || d,
       CASE WHEN c = 1 THEN 'id' ELSE 'col_' || c - 1 END,
       (ARRAY['bigint', 'text', 'numeric', 'timestamptz', 'boolean',
              'varchar', 'integer', 'date', 'jsonb', 'double precision'])[(c - 1) % 10 + 1],
       c,
       CASE WHEN c % 10 = 3 THEN 18 END,
       CASE WHEN c % 10 = 3 THEN 4 END,
       CASE WHEN c = 1 THEN false WHEN c % 4 = 0 THEN NULL ELSE true END,
       c = 1,
       CASE WHEN c % 2 = 0 THEN 'Column ' || c || ' of public.ds_' || d END,
       CASE WHEN c % 3 = 0 THEN ARRAY['pii', 'c' || c] END,
       '2024-01-05 00:00:00+00'::timestamptz + (d * 10 + c) * interval '1 second'
FROM generate_series(1, :datasets) AS d, generate_series(1, :columns) AS c;

INSERT INTO dataset_scoring (dataset, pass_threshold, warn_threshold, behavior_weight,
                             outlier_weight, dupe_weight, pattern_weight, rule_weight,
                             total_points, weights, is_custom, updt_ts)
SELECT 'public.ds_' || d,
       75, CASE WHEN d % 2 = 0 THEN 85 END,
       1.0, 0.5, 0.25, 0.75, 1.0,
       round(1000 + d / 7.0, 6),
       jsonb_build_object('behavior', 1.0, 'outlier', 0.5, 'dupe', 0.25),
       d % 5 = 0,
       '2024-01-06 00:00:00+00'::timestamptz + d * interval '1 second'
FROM generate_series(1, :datasets) AS d;

-- ---------------------------------------------------------------- public.special
-- Hostile and special values.  E'' strings: \t tab, \n newline, \r CR, \\ one
-- backslash, '' one quote.  tests/lib/pg.bash has the same values as bash
-- variables (OWL_SPECIAL_*); keep the two in step.

INSERT INTO owl_catalog (dataset, alias_nm, business_unit, dataset_desc, tags, owner_nm,
                         source_db, source_table, row_cnt, col_cnt, is_masked, sample_img,
                         metadata, created_ts, last_run_ts)
VALUES ('public.special',
        E'Ali\'as "special"',                       -- quotes
        '',                                         -- empty string, not NULL
        E'desc: tab\there, newline\nhere, CR\rhere, CRLF\r\nhere, backslash \\ here, \\N, \\.',
        ARRAY['a,b', 'quote"d', NULL, '', 'NULL', E'it\'s', E'back\\slash', '{braces}', ' spaced '],
        NULL,                                       -- NULL
        'salesdb', E'sales."Odd Table"',
        9223372036854775807, 0, true,
        '\x00ff00ff0a0d095c2c22275c4e00'::bytea,    -- NUL, 0xff, \n \r \t \ , " ' \N NUL
        '{"quote": "he said \"hi\" and it''s", "uni": "é 日本 🦉", "esc": "tab\tnl\nbs\\", "nested": {"arr": [1, "a,b", null, "", {"k": "v"}], "empty": {}}, "num": 12345678901234567890.123456789}',
        '2024-02-29 23:59:59.123456+00',            -- microseconds
        '1969-07-20 20:17:40.000001+00');           -- before the epoch

INSERT INTO owl_rule (dataset, rule_nm, rule_type, rule_value, rule_repo, filter_query,
                      points, perc, score, is_active, run_time_limit, rule_category,
                      dimension, user_nm, params, updt_ts)
VALUES
  ('public.special', 'quotes_and_controls', 'SQLF',
   E'it\'s a "quoted" value\twith tab\nnewline\r\nCRLF CR\ronly and \\ backslash and \\N and\n\\.\nend',
   NULL, E'name = \'O\'\'Brien\'', 1, 1.0, 99.9999, true, NULL, NULL, NULL, 'user_a', NULL,
   '2024-02-29 23:59:59.123456+00'),
  ('public.special', 'sql_injection', 'SQLF',
   E'\'); DROP TABLE owl_rule; --',
   NULL, E'1=1; DELETE FROM owl_rule WHERE \'\'=\'', 1, 1.0, 0, true, NULL, NULL, NULL,
   E'Robert\'); DROP TABLE students;--', NULL, '2024-02-29 23:59:59.000001+00'),
  ('public.special', 'unicode', 'SQLF',
   'é 日本 🦉 Ω ß Ünïcödé',
   'tpl_unicode_é_日本_🦉', NULL, 1, 1.0, 50, true, NULL, 'catégorie', '日本', 'josé',
   '{"uni": "é 日本 🦉", "escaped": "\u00e9\u65e5"}', '2024-03-01 00:00:00+00'),
  ('public.special', 'empty_strings', '',
   '', '', '', 0, 0, 0, false, 0, '', '', '', '{}', '2024-03-01 00:00:01+00'),
  ('public.special', 'all_nulls', 'SQLF',
   NULL, NULL, NULL, 1, 1.0, NULL, true, NULL, NULL, NULL, NULL, NULL,
   '2024-03-01 00:00:02+00'),
  ('public.special', E'key with\ttab, "quotes", \'apostrophe\' and \\', 'SQLF',
   'col IS NOT NULL', NULL, NULL, 2, 0.5, 1, true, 5, NULL, NULL, NULL,
   'null',                                          -- JSON null, not SQL NULL
   '2024-03-01 00:00:03+00'),
  ('public.special', 'literal_backslash_n', 'SQLF',
   E'\\N', E'\\N', 'NULL', 1, 1.0, NULL, true, NULL, NULL, NULL, 'NULL',
   '"a JSON string"', '2024-03-01 00:00:04+00'),
  ('public.special', 'big_numbers', 'SQLF',
   'col > 0', NULL, NULL, 2147483647, 999.9999,
   12345678901234567890.123456789012345678901234567890,
   false, -2147483648, NULL, NULL, NULL,
   '{"big": 123456789012345678901234567890.5, "small": 1e-30, "neg": -0.0, "bool": false}',
   '0001-01-01 00:00:00+00');

INSERT INTO alert_cond (dataset, alert_nm, condition, alert_type, recipients, message,
                        params, batch_nm, is_active, user_nm, updt_ts)
VALUES
  ('public.special', 'hostile', E'score < 75 AND name <> \'x\'',
   'EMAIL',
   ARRAY['a,b', 'quote"d', NULL, '', 'NULL', E'it\'s', E'back\\slash', '{braces}', ' spaced ', '日本'],
   E'Line 1\nLine 2\twith tab\r\nLine 3 \'quoted\' \\ end',
   '{"text": "nested \"quotes\" \\ and \\\\", "uni": "🦉", "list": ["x", null, 1.5, true], "obj": {"a": {"b": "c"}}}',
   NULL, true, '', '2024-02-29 23:59:59.999999+00'),
  ('public.special', 'empty_array', 'score < 50',
   'SLACK', '{}', NULL, 'null', '', false, NULL, '2024-03-01 00:00:00+00');

INSERT INTO alert_output (dataset, alert_nm, run_id, score, output, details, sent, sent_ts)
VALUES ('public.special', 'hostile', '2024-02-29 23:59:59.123456+00',
        -0.000000000000000000000000000001,
        E'fired:\n\t- rule \'sql_injection\'\n\t- rule "unicode" é\r\n\\.',
        '{"rules": ["quotes_and_controls", "sql_injection"], "by": "🦉"}',
        NULL, NULL);

INSERT INTO owl_check_repo (dataset, conn_name, conn_url, agent_name, cmd_line, spark_conf,
                            spark_master, env_vars, lib_path, query, is_active, user_nm, updt_ts)
VALUES ('public.special', 'prod_pg',
        'jdbc:postgresql://prod-db1.example.com:5432/sales?sslmode=require&options=-c%20search_path%3Dsales',
        'prod-agent-1',
        E'-ds public.special -q "select * from sales.\\"Odd Table\\" where name = \'O\'\'Brien\'" -cxn prod_pg',
        E'--conf spark.driver.extraJavaOptions="-Dfile.encoding=UTF-8 -Dkey=\'v a l\'"\t--num-executors 1',
        'local[*]',
        '{"ENV": "prod", "PATH": "/opt/spark/bin:/usr/bin", "QUOTE": "\"", "BS": "\\"}',
        E'C:\\owl\\drivers\\postgres',
        E'select * from sales."Odd Table"\nwhere name = \'O\'\'Brien\'',
        true, NULL, '2024-02-29 23:59:59.5+00');

INSERT INTO job_schedule (dataset, cron, time_zone, agent, run_as, enabled,
                          last_run_ts, next_run_ts, updated)
VALUES ('public.special', '*/15 1-5 * * MON-FRI', 'Asia/Tokyo', 'prod-agent-1',
        E'svc_owl_prod', false,
        '1969-12-31 23:59:59.999999+00', 'infinity', '2024-02-29 23:59:59.123456+00');

INSERT INTO dataset_schema (dataset, col_nm, col_type, col_pos, col_precision, col_scale,
                            is_nullable, is_key, col_desc, col_tags, updt_ts)
VALUES
  ('public.special', 'Mixed Case "col"', 'text', 1, NULL, NULL, NULL, false,
   E'has "quotes",\ttabs and a\nnewline', ARRAY[NULL, 'x', NULL]::text[], '2024-03-01 00:00:00+00'),
  ('public.special', 'é_日本_🦉', 'varchar', 2, 255, NULL, true, false,
   'unicode column', '{}', '2024-03-01 00:00:00.000001+00'),
  ('public.special', 'plain', 'numeric', 3, 38, 30, false, true,
   '', ARRAY['', '""', E'\\'], '2024-03-01 00:00:00.5+00');

INSERT INTO dataset_scoring (dataset, pass_threshold, warn_threshold, behavior_weight,
                             outlier_weight, dupe_weight, pattern_weight, rule_weight,
                             total_points, weights, is_custom, updt_ts)
VALUES ('public.special',
        0.000000000000000000000000000001,           -- many fraction digits
        'NaN',                                      -- numeric NaN
        -0.5, 0, 999999.9999, NULL, 1,
        12345678901234567890.123456789012345678901234567890123,
        '{"big": 123456789012345678901234567890.123456789, "neg": -1e-20, "s": "\"q\""}',
        true, '2024-02-29 23:59:59.123456+00');

-- ---------------------------------------------------------------- public.o'hara
INSERT INTO owl_catalog (dataset, alias_nm, tags, sample_img, metadata, created_ts)
VALUES (E'public.o\'hara', E'O\'Hara', '{}', ''::bytea, '[]', '2024-01-01 00:00:00+00');

INSERT INTO owl_rule (dataset, rule_nm, rule_value, updt_ts)
VALUES (E'public.o\'hara', 'rule_1', E'name = \'O\'\'Hara\'', '2024-01-01 00:00:00+00');

COMMIT;

ANALYZE rule_repo, owl_catalog, owl_rule, alert_cond, alert_output, owl_check_repo,
        job_schedule, dataset_schema, dataset_scoring;
