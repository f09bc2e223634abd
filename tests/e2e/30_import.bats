#!/usr/bin/env bats
# owlsync import, end to end: a source and a target cluster (tests/lib/pg.bash),
# bundles made by `owlsync export` and applied by `owlsync import`.
#
# Every test works in its own schema (the [database] schema key), so tests do
# not see each other's rows; they share the target's ledger (schema owlsync),
# whose rows are told apart by bundle file name.  Bundles are always made in
# the test that imports them, so a later test's bundle is never "older" than
# what an earlier test left in the ledger.

bats_require_minimum_version 1.5.0
load ../lib/pg
load ../lib/owl
load ../lib/import

OWLSYNC=${OWLSYNC:-$BATS_TEST_DIRNAME/../../owlsync}

# The [table] sections of both sides.  alert_output (the child of alert_cond)
# is the last table of every bundle, so it is both staged and applied last.
TABLES_INI=$OWL_TABLES_INI

# ------------------------------------------------------------------ helpers

setup_file() {
    # (the kill test also waits for the target to have no other sessions)
    import_setup_file prod other
}

teardown_file() {
    pg_stop_all
}

setup() {
    import_setup
}

# ------------------------------------------------------------------ tests

@test "round trip: the target's rows of the exported datasets equal the source's, special values intact, other datasets untouched" {
    pair rt 3
    # The target holds a dataset of its own, and a rule template of its own.
    pg_psql tgt -c "SET search_path TO $S" -c "
        INSERT INTO owl_catalog (dataset, alias_nm) VALUES ('qa.local', 'kept');
        INSERT INTO owl_rule (dataset, rule_nm, rule_value) VALUES ('qa.local', 'r1', 'a > 0'), ('qa.local', 'rule_1', 'b');
        INSERT INTO alert_cond (dataset, alert_nm, condition) VALUES ('qa.local', 'score_low', 'score < 1');
        INSERT INTO alert_output (dataset, alert_nm, run_id) VALUES ('qa.local', 'score_low', '2024-01-01');
        INSERT INTO job_schedule (dataset, cron) VALUES ('qa.local', '0 0 * * *');
        INSERT INTO rule_repo (rule_nm, rule_value) VALUES ('qa_only_tpl', 'x')"
    local_before=$(tgt_rows "dataset = 'qa.local'" "rule_nm = 'qa_only_tpl'")

    job nightly "public.ds_1, public.special, public.o'hara"
    b=$(mkbundle nightly)
    imp_ok "$b"
    [[ $output == *"imported bundle 1 of prod/nightly (3 datasets)"* ]]
    printed_counts owl_rule 29 0 0 0          # 20 + 8 + 1
    printed_counts public.ds_1 20 0 0 -       # under it, each dataset it changes
    printed_counts public.special 8 0 0 -
    printed_counts rule_repo 12 0 0 0
    [[ $output == *"  3 of 3 datasets changed"* ]]

    ds="dataset IN ('public.ds_1', 'public.special', 'public.o''hara')"
    same_as_src "$ds" "rule_nm <> 'qa_only_tpl'"
    [ "$(except_both owl_rule "$ds")" = "29 0 0" ]
    [ "$(except_both alert_cond "$ds")" = "5 0 0" ]

    # The special values, compared with what sample.sql wrote (one query: each
    # check prints its name and true; the values travel as psql variables).
    run pg_psql tgt -At -v s="$S" -v controls="$OWL_SPECIAL_CONTROLS" -v injection="$OWL_SPECIAL_INJECTION" \
        -v unicode="$OWL_SPECIAL_UNICODE" -v key="$OWL_SPECIAL_KEY" -v bsn="$OWL_SPECIAL_BACKSLASH_N" \
        -v bytea="$OWL_SPECIAL_BYTEA_HEX" -v arr="$OWL_SPECIAL_ARRAY" -v num="$OWL_SPECIAL_NUMERIC" \
        -v ts="$OWL_SPECIAL_TIMESTAMP" <<'SQL'
SET search_path TO :"s";
SET timezone = 'UTC';
CREATE TEMP VIEW r AS SELECT * FROM owl_rule WHERE dataset = 'public.special';
SELECT c || ' ' || coalesce(ok::text, 'null') FROM (VALUES
  (1, 'controls',  (SELECT rule_value = :'controls' FROM r WHERE rule_nm = 'quotes_and_controls')),
  (2, 'injection', (SELECT rule_value = :'injection' FROM r WHERE rule_nm = 'sql_injection')),
  (3, 'unicode',   (SELECT rule_value = :'unicode' FROM r WHERE rule_nm = 'unicode')),
  (4, 'key',       (SELECT count(*) = 1 FROM r WHERE rule_nm = :'key')),
  (5, 'backslash_n', (SELECT rule_value = :'bsn' AND rule_repo = :'bsn' AND filter_query = 'NULL' FROM r WHERE rule_nm = 'literal_backslash_n')),
  (6, 'nulls',     (SELECT rule_value IS NULL AND params IS NULL FROM r WHERE rule_nm = 'all_nulls')),
  (7, 'empty',     (SELECT rule_value = '' AND params = '{}' FROM r WHERE rule_nm = 'empty_strings')),
  (8, 'json_null', (SELECT params = 'null'::jsonb FROM r WHERE rule_nm = :'key')),
  (9, 'bytea',     (SELECT encode(sample_img, 'hex') = :'bytea' FROM owl_catalog WHERE dataset = 'public.special')),
  (10, 'array',    (SELECT tags::text = :'arr' FROM owl_catalog WHERE dataset = 'public.special')),
  (11, 'timestamp', (SELECT created_ts::text = :'ts' FROM owl_catalog WHERE dataset = 'public.special')),
  (12, 'numeric',  (SELECT total_points::text = :'num' FROM dataset_scoring WHERE dataset = 'public.special')),
  (13, 'nan',      (SELECT warn_threshold::text = 'NaN' FROM dataset_scoring WHERE dataset = 'public.special')),
  (14, 'infinity', (SELECT next_run_ts = 'infinity' FROM job_schedule WHERE dataset = 'public.special')),
  (15, 'ohara',    (SELECT rule_value = 'name = ''O''''Hara''' FROM owl_rule WHERE dataset = 'public.o''hara'))
) v(n, c, ok) ORDER BY n;
SQL
    [ "$status" -eq 0 ]
    [ "$output" = "$(printf '%s true\n' controls injection unicode key backslash_n nulls empty json_null \
                                      bytea array timestamp numeric nan infinity ohara)" ]

    # Datasets the bundle does not carry: not brought, and the target's own untouched.
    [ "$(tgt1 "SELECT count(*) FROM $S.owl_rule WHERE dataset IN ('public.ds_2', 'public.ds_3')")" = 0 ]
    [ "$(tgt_rows "dataset = 'qa.local'" "rule_nm = 'qa_only_tpl'")" = "$local_before" ]
    [ "$(tgt1 "SELECT count(*) FROM $S.owl_rule WHERE dataset = 'qa.local'")" = 2 ]

    # The ledger: the bundle, its per-table counts, the datasets' snapshots.
    [ "$(ledger_count "$b")" = 1 ]
    [ "$(ledger_counts "$b" owl_rule)" = "29 29 0 0 0" ]
    [ "$(tgt1 "SELECT count(*) FROM owlsync.bundle_tables t JOIN owlsync.bundles b USING (bundle_id)
               WHERE b.bundle_id = '$(owl_bundle_id "$b")'")" = 9 ]
    [ "$(tgt1 "SELECT environment || ' ' || job || ' ' || sequence || ' ' || array_length(datasets, 1) || ' ' || file_name
               FROM owlsync.bundles WHERE bundle_id = '$(owl_bundle_id "$b")'")" = "prod nightly 1 3 $(basename "$b")" ]
    [ "$(tgt1 "SELECT string_agg(d.dataset, ',' ORDER BY d.dataset) FROM owlsync.datasets d
               JOIN owlsync.bundles b USING (bundle_id) WHERE b.bundle_id = '$(owl_bundle_id "$b")'")" = "public.ds_1,public.o'hara,public.special" ]
}

@test "promotion twice with edits, deletions and additions: equal to the source, exact counts, unchanged rows keep their target ids" {
    pair promo 3
    # Target ids differ from the source's: the target has rows of its own first.
    pg_query tgt "INSERT INTO $S.owl_rule (dataset, rule_nm) SELECT 'qa.local', 'r' || i FROM generate_series(1, 7) i" >/dev/null
    job nightly "public.ds_%"
    b1=$(mkbundle nightly)
    imp_ok "$b1"
    printed_counts owl_rule 60 0 0 0
    same_as_src "dataset LIKE 'public.ds_%'"
    pg_query tgt "CREATE TABLE cmp.promo_ids AS SELECT dataset, rule_nm, id FROM $S.owl_rule WHERE dataset LIKE 'public.ds_%'" >/dev/null
    [ "$(tgt1 "SELECT count(*) FROM cmp.promo_ids")" = 60 ]

    pg_psql src -c "SET search_path TO $S" -c "
        UPDATE owl_rule SET rule_value = rule_value || ' /* edited */'
         WHERE (dataset, rule_nm) IN (('public.ds_1', 'rule_1'), ('public.ds_2', 'rule_5'), ('public.ds_3', 'rule_20'));
        DELETE FROM owl_rule WHERE dataset = 'public.ds_2' AND rule_nm = 'rule_7';
        INSERT INTO owl_rule (dataset, rule_nm, rule_value) VALUES ('public.ds_1', 'rule_21', 'x > 1'), ('public.ds_3', 'rule_new', 'y < 2');
        INSERT INTO owl_catalog (dataset, alias_nm) VALUES ('public.ds_9', 'added');
        INSERT INTO job_schedule (dataset, cron) VALUES ('public.ds_9', '5 4 * * *');
        DELETE FROM dataset_schema WHERE dataset = 'public.ds_3' AND col_nm = 'col_9';
        UPDATE dataset_scoring SET pass_threshold = 80 WHERE dataset = 'public.ds_2'"
    b2=$(mkbundle nightly)
    imp_ok "$b2"
    [[ $output == *"imported bundle 2 of prod/nightly (4 datasets)"* ]]
    printed_counts owl_rule 2 3 1 56
    printed_counts owl_catalog 1 0 0 3
    printed_counts job_schedule 1 0 0 3
    printed_counts dataset_schema 0 0 1 29
    printed_counts dataset_scoring 0 1 0 2
    printed_counts alert_output 0 0 0 18
    [ "$(ledger_counts "$b2" owl_rule)" = "61 2 3 1 56" ]
    [ "$(ledger_counts "$b2" dataset_schema)" = "29 0 0 1 29" ]
    same_as_src "dataset LIKE 'public.ds_%'"

    # Matched rows (changed or not) kept their target ids; new rows got new ones.
    [ "$(tgt1 "SELECT count(*) FROM cmp.promo_ids b JOIN $S.owl_rule r USING (dataset, rule_nm)")" = 59 ]
    [ "$(tgt1 "SELECT count(*) FROM cmp.promo_ids b JOIN $S.owl_rule r USING (dataset, rule_nm) WHERE r.id <> b.id")" = 0 ]
    [ "$(tgt1 "SELECT count(*) FROM $S.owl_rule r WHERE dataset LIKE 'public.ds_%'
               AND r.id > (SELECT max(id) FROM cmp.promo_ids)")" = 2 ]
    [ "$(tgt1 "SELECT count(*) FROM $S.owl_rule WHERE dataset = 'qa.local'")" = 7 ]

    # Once more with nothing changed: every row unchanged, nothing written.
    before=$(tgt_state | grep -v '^ledger')
    job again "public.ds_%" skip_unchanged=false
    b3=$(mkbundle again)
    imp_ok "$b3"
    printed_counts owl_rule 0 0 0 61
    [ "$(ledger_counts "$b3" owl_rule)" = "61 0 0 0 61" ]
    [ "$(tgt_state | grep -v '^ledger')" = "$before" ]
}

@test "a copy of an imported bundle with other data under its signed manifest is refused (3), not 'already imported'" {
    pair tamper 2
    job nightly "public.ds_1" "compression=none"
    b=$(mkbundle nightly)
    imp_ok "$b"
    cp "$b" "$W/tampered.owlb"
    off=$(grep -obUa "score_low" "$W/tampered.owlb" | tail -1 | cut -d: -f1)
    [ "$off" -gt "$(bsdtar -xOf "$b" manifest.json | wc -c)" ]   # in a data entry, past the manifest
    flip_byte "$W/tampered.owlb" "$off"
    state=$(tgt_state)
    imp "$W/tampered.owlb"
    expect_refusal 3 "does not match its hash in the manifest"
    [ "$(tgt_state)" = "$state" ]
    imp_ok "$b"
    [[ $output == *"already imported"* ]]
    # every data entry is verified before a byte of it is parsed or the
    # database is asked anything: with no database at all, still 3
    sed 's/^conninfo = .*/conninfo = host=127.0.0.1 port=1 connect_timeout=2/' "$W/tgt.ini" >"$W/nodb.ini"
    run --separate-stderr "$OWLSYNC" -c "$W/nodb.ini" import "$W/tampered.owlb"
    expect_refusal 3 "does not match its hash in the manifest"
}

@test "the same bundle twice is already imported; an older bundle is superseded and writes nothing; --allow-rollback applies it" {
    pair rb 2
    job nightly "public.ds_%"
    old=$(mkbundle nightly)
    old_rules=$(pg_digest src "$S.owl_rule" "dataset LIKE 'public.ds_%'")
    pg_query src "UPDATE $S.owl_rule SET rule_value = 'newer' WHERE dataset = 'public.ds_1' AND rule_nm = 'rule_1'" >/dev/null
    new=$(mkbundle nightly)
    imp_ok "$new"
    [ "$(tgt1 "SELECT rule_value FROM $S.owl_rule WHERE dataset = 'public.ds_1' AND rule_nm = 'rule_1'")" = newer ]
    state=$(tgt_state)

    imp "$new"
    [ "$status" -eq 0 ]
    [[ $output == *"already imported"* ]]
    [ "$(tgt_state)" = "$state" ]
    [ "$(ledger_count "$new")" = 1 ]

    imp "$old"
    [ "$status" -eq 0 ]
    [[ $output == *"superseded"*"the database holds newer data of all its datasets and tables; nothing applied"* ]]
    [ "$(tgt_state)" = "$state" ]
    [ "$(ledger_count "$old")" = 0 ]

    imp_ok --allow-rollback "$old"
    [[ $output == *"imported bundle 1 of prod/nightly"* ]]
    printed_counts owl_rule 0 1 0 39
    [ "$(tgt1 "SELECT rule_value FROM $S.owl_rule WHERE dataset = 'public.ds_1' AND rule_nm = 'rule_1'")" != newer ]
    [ "$(ledger_count "$old")" = 1 ]
    [ "$(tgt1 "SELECT count(*) FROM owlsync.datasets d JOIN owlsync.bundles b USING (bundle_id)
               WHERE b.bundle_id = '$(owl_bundle_id "$old")' AND d.snapshot_at = b.snapshot_at")" = 2 ]
    [ "$(pg_digest tgt "$S.owl_rule")" = "$old_rules" ]
}

@test "a bundle that fails half-way (last table rejects a value) exits 2 (no retry fixes it) and leaves the target exactly as before, without a ledger row" {
    pair half 2
    job nightly "public.ds_%"
    b1=$(mkbundle nightly)
    imp_ok "$b1"
    # Changes in every table at the source, and in alert_output (the last
    # table) a row the target will not take.
    pg_psql src -c "SET search_path TO $S" -c "
        UPDATE owl_rule SET rule_value = 'changed ' || rule_nm;
        DELETE FROM dataset_schema WHERE col_nm = 'col_1';
        INSERT INTO owl_catalog (dataset) VALUES ('public.ds_new');
        UPDATE alert_cond SET condition = 'score < 10';
        INSERT INTO alert_output (dataset, alert_nm, run_id, output)
        VALUES ('public.ds_2', 'score_low', '2025-01-01', 'REJECT ME ' || repeat('x', 90))"
    b2=$(mkbundle nightly)

    # 1. A CHECK constraint of the target: fails while applying, after the
    #    other tables' rows were deleted, updated and inserted.
    pg_query tgt "ALTER TABLE $S.alert_output ADD CONSTRAINT no_reject CHECK (output NOT LIKE 'REJECT%') NOT VALID" >/dev/null
    state=$(tgt_state)
    imp "$b2"
    expect_refusal 2 "alert_output"
    [[ $stderr == *no_reject* ]]
    [[ $stderr == *"Failing row contains"* ]]   # the server's DETAIL
    [ "$(tgt_state)" = "$state" ]
    [ "$(ledger_count "$b2")" = 0 ]

    # 2. A column type that rejects the value: fails while staging the last table.
    pg_psql tgt -c "ALTER TABLE $S.alert_output DROP CONSTRAINT no_reject" \
        -c "ALTER TABLE $S.alert_output ALTER COLUMN output TYPE varchar(60)" >/dev/null
    state=$(tgt_state)
    imp "$b2"
    expect_refusal 2 "alert_output"
    [[ $stderr == *"too long"* ]]
    [[ $stderr == *"row "*", column output"* ]]   # the server's CONTEXT, as the bundle's row
    [ "$(tgt_state)" = "$state" ]
    [ "$(ledger_count "$b2")" = 0 ]

    # With the obstacle gone the same bundle imports, once.
    pg_query tgt "ALTER TABLE $S.alert_output ALTER COLUMN output TYPE text" >/dev/null
    imp_ok "$b2"
    [[ $output == *"imported bundle 2"* ]]
    same_as_src "dataset LIKE 'public.ds_%'"
    [ "$(ledger_count "$b2")" = 1 ]
}

# refusal_setup — schema $1 imported once, then a change at the source, so a
# refused bundle would have something to write.
refusal_setup() {
    pair "$1" 2
    job nightly "public.ds_%"
    b0=$(mkbundle nightly)
    imp_ok "$b0"
    pg_query src "UPDATE $S.owl_rule SET rule_value = 'must not arrive'; DELETE FROM $S.alert_output" >/dev/null
    state=$(tgt_state)
}

# refused CODE TEXT BUNDLE — the last imp refused BUNDLE: exit CODE, TEXT in its
# error, the target as before and no ledger row.
refused() {
    expect_refusal "$1" "$2"
    [ "$(tgt_state)" = "$state" ]
    [ "$(ledger_count "$3")" = 0 ]
    [ "$(tgt1 "SELECT count(*) FROM $S.owl_rule WHERE rule_value = 'must not arrive'")" = 0 ]
}

@test "refused: a table outside [import] tables (exit 4)" {
    refusal_setup ref_tab
    b=$(mkbundle nightly)
    tgt_ini "tables = owl_rule, owl_catalog"
    imp "$b"
    refused 4 "carries table rule_repo, which this environment does not allow" "$b"
    # the allow-list, not the bundle, was the reason
    tgt_ini
    imp_ok "$b"
    [ "$(tgt1 "SELECT count(*) FROM $S.owl_rule WHERE rule_value = 'must not arrive'")" = 40 ]
}

@test "refused: an expired bundle (exit 4)" {
    refusal_setup ref_exp
    job quick "public.ds_%" valid_for=1s
    b=$(mkbundle quick)
    sleep 1.2                   # past valid_for
    imp "$b"
    refused 4 "expired" "$b"
}

@test "refused: a bundle signed by an untrusted key (exit 3)" {
    refusal_setup ref_key
    b=$(mkbundle nightly)
    tgt_ini "trusted_key = prod $K/other.key.pub"
    imp "$b"
    refused 3 "which is not trusted" "$b"
}

@test "refused: a key trusted only for another environment (exit 3)" {
    refusal_setup ref_env
    b=$(mkbundle nightly)
    tgt_ini "trusted_key = uat $K/prod.key.pub" "trusted_key = prod $K/other.key.pub"
    imp "$b"
    refused 3 "trusted only for uat" "$b"
}

@test "refused: a bundle whose targets name another environment (exit 4)" {
    refusal_setup ref_tgt
    job foruat "public.ds_%" targets=uat,prod2
    b=$(mkbundle foruat)
    imp "$b"
    refused 4 "meant for uat and others, not for this environment (qa)" "$b"
}

@test "--dry-run reports per table and dataset and writes nothing; --json parses" {
    pair dry 2
    job nightly "public.ds_%"
    b1=$(mkbundle nightly)
    imp_ok "$b1"
    pg_psql src -c "SET search_path TO $S" -c "
        UPDATE owl_rule SET points = 9 WHERE dataset = 'public.ds_1' AND rule_nm IN ('rule_1', 'rule_2', 'rule_3');
        DELETE FROM owl_rule WHERE dataset = 'public.ds_2' AND rule_nm = 'rule_4';
        INSERT INTO owl_rule (dataset, rule_nm) VALUES ('public.ds_2', 'rule_x')"
    b2=$(mkbundle nightly)
    state=$(tgt_state)

    imp --dry-run "$b2"
    [ "$status" -eq 0 ]
    [[ $output == *"dry run of bundle 2 of prod/nightly (2 datasets)"* ]]
    [[ $output == *"dry run: rolled back, nothing was written"* ]]
    printed_counts owl_rule 1 3 1 36
    printed_counts public.ds_1 0 3 0 17
    printed_counts public.ds_2 1 0 1 19
    printed_counts owl_catalog 0 0 0 2
    [ "$(tgt_state)" = "$state" ]
    [ "$(ledger_count "$b2")" = 0 ]

    imp --dry-run --json "$b2"
    [ "$status" -eq 0 ]
    [ "$(tgt_state)" = "$state" ]
    [ "$(ledger_count "$b2")" = 0 ]
    grep -q '^{' <<<"$output"
    grep -q '^}$' <<<"$output"
    grep -q '"status": "dry_run"' <<<"$output"
    grep -q '"dataset": "public.ds_1"' <<<"$output"
    [ "$(grep -c '"name": ' <<<"$output")" = 9 ]
    if command -v python3 >/dev/null; then
        python3 -c '
import json, sys
r = json.load(sys.stdin)
assert r["status"] == "dry_run", r["status"]
t = {x["name"]: x for x in r["tables"]}
o = t["owl_rule"]
assert (o["inserted"], o["updated"], o["deleted"], o["unchanged"]) == (1, 3, 1, 36), o
d = {x["dataset"]: x for x in o["datasets"]}
assert (d["public.ds_1"]["updated"], d["public.ds_2"]["inserted"], d["public.ds_2"]["deleted"]) == (3, 1, 1), d
' <<<"$output"
    fi

    # The real import does what the dry run said.
    imp_ok "$b2"
    printed_counts owl_rule 1 3 1 36
    [ "$(ledger_counts "$b2" owl_rule)" = "40 1 3 1 36" ]
    same_as_src "dataset LIKE 'public.ds_%'"
}

@test "hostile dataset names and values land as data, never as SQL" {
    pair hostile 1
    job base "public.ds_1"
    job evil "public.evil%"
    b0=$(mkbundle base)
    imp_ok "$b0"
    ds1=$(tgt_rows "dataset = 'public.ds_1'")

    pg_psql src -v s="$S" <<'SQL'
SET search_path TO :"s";
CREATE TEMP TABLE hostile (n text);
INSERT INTO hostile VALUES
  (E'public.evil\'); DROP TABLE owl_rule; --'),
  (E'public.evil","public.ds_1'),
  (E'public.evil\\'),
  (E'public.evil\\N'),
  (E'public.evil\\.'),
  (E'public.evil\ttab\nnewline\r\nCRLF\rCR'),
  (E'public.evil%_{}" OR \'1\'=\'1'),
  (E'public.evil$$; DROP SCHEMA owlsync CASCADE; $$'),
  (E'public.evil\\0 \\x00 \\000 \\u0000 nul-adjacent'),
  (E'public.evil\\"}; DELETE FROM owl_rule; --');
INSERT INTO owl_catalog (dataset, alias_nm, tags, sample_img, metadata)
  SELECT n, n, ARRAY[n, NULL, '', 'NULL'], convert_to(n, 'UTF8') || '\x005c4e0a00'::bytea,
         jsonb_build_object('name', n, 'nul', E'\\u0000')
  FROM hostile;
INSERT INTO owl_rule (dataset, rule_nm, rule_value, filter_query, params)
  SELECT n, k, E'\\0 \\x00 \\000 \\\\ \\N ' || k, E'\\.\n' || n, jsonb_build_object(k, n)
  FROM hostile, (VALUES ('plain'), (E'\'); DELETE FROM owl_rule; --'), (E'tab\there\\N\n\\.')) r(k);
INSERT INTO alert_cond (dataset, alert_nm, condition, recipients)
  SELECT n, n, E'x = \'' || n || '''', ARRAY[n] FROM hostile;
INSERT INTO alert_output (dataset, alert_nm, run_id, output)
  SELECT n, n, '2024-01-01', n FROM hostile;
SQL
    b=$(mkbundle evil)
    # a dry run names them, escaped: no control character of a name reaches the terminal
    imp_ok --dry-run "$b"
    [ "$(grep -Fx -A1 '    public.evil\ttab\nnewline\r\nCRLF\rCR' <<<"$output" | grep -Ec '^ +1 +0 +0 +0$')" -eq 3 ]
    [[ $output == *'    public.evil\\N '* ]]
    [[ $output != *$'\r'* && $output != *$'\t'* ]]
    [[ $output == *"  10 of 10 datasets would change"* ]]
    imp_ok "$b"
    printed_counts owl_rule 30 0 0 0
    printed_counts alert_output 10 0 0 0

    # Every table is still there, the rows arrived as they were, ds_1 untouched.
    for t in $OWL_TABLES; do [ "$(tgt1 "SELECT to_regclass('$S.$t') IS NOT NULL")" = t ]; done
    for t in bundles bundle_tables datasets; do [ "$(tgt1 "SELECT to_regclass('owlsync.$t') IS NOT NULL")" = t ]; done
    ev="dataset LIKE 'public.evil%'"
    same_as_src "$ev"
    [ "$(except_both owl_rule "$ev")" = "30 0 0" ]
    [ "$(tgt_rows "dataset = 'public.ds_1'")" = "$ds1" ]
    # The ledger holds the names as they are.
    names="SELECT md5(string_agg(dataset, '|' ORDER BY dataset COLLATE \"C\"))"
    [ "$(tgt1 "$names FROM owlsync.datasets d JOIN owlsync.bundles b USING (bundle_id) WHERE b.bundle_id = '$(owl_bundle_id "$b")'")" = \
      "$(pg_query src "$names FROM $S.owl_catalog WHERE $ev")" ]
    # status: the names exactly in --json (a comma in a name splits nothing),
    # cleaned of control characters in text
    run --separate-stderr "$OWLSYNC" -c "$W/tgt.ini" status --json
    [ "$status" -eq 0 ]
    [ "$(python3 -c 'import json, sys, hashlib
d = json.load(sys.stdin)["imports"][0]["datasets"]
print(hashlib.md5("|".join(sorted(d, key=lambda n: n.encode())).encode()).hexdigest())' <<<"$output")" = \
      "$(pg_query src "$names FROM $S.owl_catalog WHERE $ev")" ]
    run --separate-stderr "$OWLSYNC" -c "$W/tgt.ini" status
    [ "$status" -eq 0 ]
    [[ $output == *'public.evil","public.ds_1'* && $output == *" … and 5 more)"* ]]
    [[ $output != *$'\r'* && $output != *$'\t'* ]]

    # A second promotion matches every hostile key: one update, nothing deleted.
    [ "$(pg_query src "UPDATE $S.owl_rule SET points = 7 WHERE dataset LIKE 'public.evil'')%' AND rule_nm = 'plain'
                        RETURNING dataset")" = "public.evil'); DROP TABLE owl_rule; --" ]
    b2=$(mkbundle evil)
    imp_ok "$b2"
    printed_counts owl_rule 0 1 0 29
    printed_counts alert_cond 0 0 0 10
    same_as_src "$ev"
}

@test "SIGKILL of owlsync import in the middle of a large import leaves the target as before; the next run imports it once" {
    pair big 3000
    pg_query tgt "INSERT INTO $S.owl_rule (dataset, rule_nm) VALUES ('qa.local', 'kept')" >/dev/null
    job nightly "public.ds_%"
    b=$(mkbundle nightly)
    state=$(tgt_state)

    "$OWLSYNC" -c "$W/tgt.ini" import "$b" >"$W/killed.out" 2>&1 &
    pid=$!
    # Wait until it writes the target's tables (inside its transaction): from
    # its staging tables, or, into tables with none of the bundle's rows yet,
    # by COPY straight in.
    local seen='' i
    for ((i = 0; i < 600; i++)); do
        if [ "$(tgt1 "SELECT count(*) FROM pg_stat_activity WHERE state = 'active'
                      AND (query LIKE 'WITH x AS (INSERT INTO \"$S\".%' OR query LIKE 'COPY \"$S\".%')")" != 0 ]; then
            seen=1
            break
        fi
        pg_alive "$pid" || break
        sleep 0.02
    done
    if [ -z "$seen" ]; then
        kill -KILL "$pid" 2>/dev/null || true
        echo "the import was never seen applying rows; its output:" >&2
        cat "$W/killed.out" >&2
        return 1
    fi
    kill -KILL "$pid"
    rc=0
    wait "$pid" || rc=$?
    [ "$rc" -eq 137 ]           # killed, not finished
    # Its server session ends when it notices the client is gone.
    others="SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
    for ((i = 0; i < 600; i++)); do
        [ "$(tgt1 "$others")" = 0 ] && break
        sleep 0.1
    done
    [ "$(tgt1 "$others")" = 0 ]
    [ "$(tgt_state)" = "$state" ]
    [ "$(ledger_count "$b")" = 0 ]
    [ "$(tgt1 "SELECT count(*) FROM $S.owl_rule")" = 1 ]

    imp_ok "$b"
    [[ $output == *"imported bundle 1 of prod/nightly (3000 datasets)"* ]]
    printed_counts owl_rule 60000 0 0 0
    [ "$(ledger_count "$b")" = 1 ]
    [ "$(tgt1 "SELECT count(*) FROM $S.owl_rule")" = 60001 ]
    [ "$(pg_digest tgt "$S.alert_output")" = "$(pg_digest src "$S.alert_output" "dataset LIKE 'public.ds_%'")" ]
    [ "$(pg_digest tgt "$S.owl_rule" "dataset <> 'qa.local'")" = "$(pg_digest src "$S.owl_rule" "dataset LIKE 'public.ds_%'")" ]
    imp "$b"
    [ "$status" -eq 0 ]
    [[ $output == *"already imported"* ]]
    [ "$(ledger_count "$b")" = 1 ]
}

@test "two imports of different bundles started at once both succeed, one after the other" {
    pair conc 4
    job a "public.ds_1, public.ds_2"
    job b "public.ds_3, public.ds_4"
    ba=$(mkbundle a)
    bb=$(mkbundle b)
    # A session holds a lock on rule_repo (in both bundles), so that both
    # imports are surely in flight at the same time: one waits for that lock,
    # the other for the first import (the importers' advisory lock).
    PGAPPNAME=owltest_holder pg_psql tgt -c "BEGIN" -c "LOCK TABLE $S.rule_repo IN ACCESS EXCLUSIVE MODE" \
        -c "SELECT pg_sleep(60)" >/dev/null 2>&1 &
    holder=$!
    local i
    for ((i = 0; i < 300; i++)); do
        [ "$(tgt1 "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'owltest_holder'
                   AND query LIKE '%pg_sleep%'")" = 1 ] && break
        sleep 0.05
    done
    "$OWLSYNC" -c "$W/tgt.ini" import "$ba" >"$W/a.out" 2>&1 &
    pa=$!
    "$OWLSYNC" -c "$W/tgt.ini" import "$bb" >"$W/b.out" 2>&1 &
    pb=$!
    waiting="SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND backend_type = 'client backend'"
    for ((i = 0; i < 300; i++)); do
        [ "$(tgt1 "$waiting")" = 2 ] && break
        sleep 0.05
    done
    both_waiting=$(tgt1 "$waiting")
    advisory_waits=$(tgt1 "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
    tgt1 "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'owltest_holder'" >/dev/null
    wait "$holder" || true
    ra=0 rb=0
    wait "$pa" || ra=$?
    wait "$pb" || rb=$?
    if [ "$ra" -ne 0 ] || [ "$rb" -ne 0 ]; then
        cat "$W/a.out" "$W/b.out" >&2
        return 1
    fi
    [ "$both_waiting" = 2 ]
    [ "$advisory_waits" = 1 ]
    grep -q "imported bundle 1 of prod/a" "$W/a.out"
    grep -q "imported bundle 1 of prod/b" "$W/b.out"
    [ "$(ledger_count "$ba")" = 1 ]
    [ "$(ledger_count "$bb")" = 1 ]
    same_as_src "dataset LIKE 'public.ds_%'"
    [ "$(tgt1 "SELECT count(*) FROM $S.owl_rule")" = 80 ]
}

@test "the foreign-key pair alert_cond -> alert_output imports and re-imports in replace mode, parent rows deleted with their children" {
    # The child first in the bundle: the import must order by the target's FKs.
    TABLES_SRC="
[table alert_output]
key = dataset, alert_nm, run_id
generated = id
${TABLES_INI%%\[table alert_output\]*}"
    pair fk 2
    job nightly "public.ds_%"
    b1=$(mkbundle nightly)
    run "$OWLSYNC" inspect "$b1"
    [ "$status" -eq 0 ]
    [ "$(grep -Eo '^  (alert_output|alert_cond) ' <<<"$output" | tr -d ' ' | paste -sd,)" = alert_output,alert_cond ]
    imp_ok "$b1"
    pg_query tgt "CREATE TABLE cmp.fk_ids AS SELECT dataset, alert_nm, id FROM $S.alert_cond" >/dev/null

    pg_psql src -c "SET search_path TO $S" -c "
        DELETE FROM alert_output WHERE dataset = 'public.ds_1' AND alert_nm = 'score_low';
        DELETE FROM alert_cond WHERE dataset = 'public.ds_1' AND alert_nm = 'score_low';
        UPDATE alert_cond SET condition = 'rule_breaks > 5' WHERE dataset = 'public.ds_2' AND alert_nm = 'rule_breaks';
        INSERT INTO alert_cond (dataset, alert_nm, condition) VALUES ('public.ds_2', 'new_alert', 'score < 1');
        INSERT INTO alert_output (dataset, alert_nm, run_id, output) VALUES
          ('public.ds_2', 'new_alert', '2025-01-01', 'fired'),
          ('public.ds_1', 'rule_breaks', '2025-01-02', 'fired again')"
    b2=$(mkbundle nightly)
    imp_ok "$b2"
    printed_counts alert_cond 1 1 1 4
    printed_counts alert_output 2 0 2 10
    same_as_src "dataset LIKE 'public.ds_%'"
    # the alert conditions kept at the source kept their target ids
    [ "$(tgt1 "SELECT count(*) FROM cmp.fk_ids f JOIN $S.alert_cond c USING (dataset, alert_nm) WHERE c.id = f.id")" = 5 ]
    [ "$(tgt1 "SELECT count(*) FROM $S.alert_cond WHERE dataset = 'public.ds_1' AND alert_nm = 'score_low'")" = 0 ]

    # The whole dataset gone at the source: children and parents both deleted.
    pg_psql src -c "SET search_path TO $S" -c "
        DELETE FROM alert_output WHERE dataset = 'public.ds_2';
        DELETE FROM alert_cond WHERE dataset = 'public.ds_2'"
    b3=$(mkbundle nightly)
    imp_ok "$b3"
    printed_counts alert_cond 0 0 4 2
    printed_counts alert_output 0 0 7 5
    same_as_src "dataset LIKE 'public.ds_%'"

    # Without keys on the target side (delete, then insert) it works as well.
    sed -i '/^\[table alert_cond\]/,/^$/{/^key/d}; /^\[table alert_output\]/,/^$/{/^key/d}' "$W/tgt.ini"
    [ "$(grep -c '^key = dataset, alert_nm' "$W/tgt.ini")" = 0 ]
    pg_query src "INSERT INTO $S.alert_output (dataset, alert_nm, run_id) VALUES ('public.ds_1', 'rule_breaks', '2025-02-01')" >/dev/null
    b4=$(mkbundle nightly)
    imp_ok "$b4"
    same_as_src "dataset LIKE 'public.ds_%'"
}

@test "a re-import finds a change to the byte: numeric 99.6667 vs 99.66670, jsonb 3 vs 3.0, NULL vs '', a bool, a text[] element, a microsecond" {
    pair bytes 2
    job nightly "public.ds_%" skip_unchanged=false
    b1=$(mkbundle nightly)
    imp_ok "$b1"
    # Values "=" calls equal but whose text differs, and plain changes, one row each.
    pg_psql tgt -c "SET search_path TO $S" -c "
        UPDATE owl_rule SET score = score + 0.00000 WHERE dataset = 'public.ds_1' AND rule_nm = 'rule_1';
        UPDATE owl_rule SET params = '{\"threshold\": 3.0, \"cols\": [\"col_3\"]}' WHERE dataset = 'public.ds_1' AND rule_nm = 'rule_3';
        UPDATE owl_rule SET filter_query = '' WHERE dataset = 'public.ds_2' AND rule_nm = 'rule_4' AND filter_query IS NULL;
        UPDATE owl_rule SET user_nm = NULL WHERE dataset = 'public.ds_2' AND rule_nm = 'rule_5';
        UPDATE owl_rule SET is_active = NOT is_active WHERE dataset = 'public.ds_2' AND rule_nm = 'rule_6';
        UPDATE owl_rule SET updt_ts = updt_ts + interval '1 microsecond' WHERE dataset = 'public.ds_2' AND rule_nm = 'rule_7';
        UPDATE dataset_schema SET col_tags = ARRAY['pii', 'C3'] WHERE dataset = 'public.ds_1' AND col_nm = 'col_2'" >/dev/null
    # Each edit took; the numeric and jsonb ones are equal by "=", yet not the same text.
    [ "$(tgt1 "SELECT count(*) FROM $S.owl_rule WHERE filter_query = ''")" = 1 ]
    [ "$(tgt1 "SELECT score::text FROM $S.owl_rule WHERE dataset = 'public.ds_1' AND rule_nm = 'rule_1' AND score = 99.6667")" = 99.66670 ]
    [ "$(tgt1 "SELECT params = '{\"threshold\": 3, \"cols\": [\"col_3\"]}' AND params::text LIKE '%3.0%'
               FROM $S.owl_rule WHERE dataset = 'public.ds_1' AND rule_nm = 'rule_3'")" = t ]
    b2=$(mkbundle nightly)
    imp_ok "$b2"
    printed_counts owl_rule 0 6 0 34
    printed_counts dataset_schema 0 1 0 19
    printed_counts owl_catalog 0 0 0 2
    same_as_src "dataset LIKE 'public.ds_%'"
    # byte for byte, as text
    [ "$(tgt1 "SELECT count(*) FROM $S.owl_rule WHERE score::text = '99.66670' OR params::text LIKE '%3.0%'")" = 0 ]
}

@test "modes upsert and insert: upsert updates and adds but deletes nothing; insert adds only rows new to the target" {
    pair modes 2
    job nightly "public.ds_%" skip_unchanged=false
    b1=$(mkbundle nightly)
    sed -i '/^\[table owl_rule\]/a mode = upsert' "$W/tgt.ini"
    sed -i '/^\[table dataset_schema\]/a mode = insert' "$W/tgt.ini"
    [ "$(grep -c '^mode = ' "$W/tgt.ini")" = 2 ]
    imp_ok "$b1"
    printed_counts owl_rule 40 0 0 0
    printed_counts dataset_schema 20 0 0 0
    same_as_src "dataset LIKE 'public.ds_%'"
    ids=$(tgt1 "SELECT string_agg(id::text, ',' ORDER BY dataset, rule_nm) FROM $S.owl_rule")

    # The target's own edits to rows the bundle also has, and rows of its own.
    pg_psql tgt -c "SET search_path TO $S" -c "
        INSERT INTO owl_rule (dataset, rule_nm) VALUES ('public.ds_1', 'qa_only');
        INSERT INTO dataset_schema (dataset, col_nm, col_type, col_pos) VALUES ('public.ds_1', 'qa_col', 'text', 99);
        UPDATE dataset_schema SET col_desc = 'qa edit' WHERE dataset = 'public.ds_2' AND col_nm = 'col_1'" >/dev/null
    # The source's: an edit, a deletion and an addition in each table.
    pg_psql src -c "SET search_path TO $S" -c "
        UPDATE owl_rule SET rule_value = 'edited' WHERE dataset = 'public.ds_1' AND rule_nm = 'rule_2';
        DELETE FROM owl_rule WHERE dataset = 'public.ds_2' AND rule_nm = 'rule_9';
        INSERT INTO owl_rule (dataset, rule_nm) VALUES ('public.ds_2', 'rule_new');
        UPDATE dataset_schema SET col_desc = 'src edit' WHERE dataset = 'public.ds_1' AND col_nm = 'col_3';
        DELETE FROM dataset_schema WHERE dataset = 'public.ds_2' AND col_nm = 'col_4';
        INSERT INTO dataset_schema (dataset, col_nm, col_type, col_pos) VALUES ('public.ds_2', 'src_col', 'int', 42)" >/dev/null
    b2=$(mkbundle nightly)
    imp_ok "$b2"
    printed_counts owl_rule 1 1 0 38
    printed_counts dataset_schema 1 0 0 19
    # upsert: the source's edit and addition arrived; the row deleted at the
    # source and the target's own row are still there; matched rows kept ids.
    [ "$(tgt1 "SELECT rule_value FROM $S.owl_rule WHERE dataset = 'public.ds_1' AND rule_nm = 'rule_2'")" = edited ]
    [ "$(tgt1 "SELECT count(*) FROM $S.owl_rule WHERE (dataset, rule_nm) IN
               (('public.ds_2', 'rule_9'), ('public.ds_1', 'qa_only'), ('public.ds_2', 'rule_new'))")" = 3 ]
    [ "$(tgt1 "SELECT string_agg(id::text, ',' ORDER BY dataset, rule_nm) FROM $S.owl_rule
               WHERE rule_nm NOT IN ('qa_only', 'rule_new')")" = "$ids" ]
    # insert: only the new row arrived; the target's edit stands, the source's
    # edit did not overwrite, the deleted row and the target's own row remain.
    [ "$(tgt1 "SELECT col_type || ' ' || col_pos FROM $S.dataset_schema WHERE dataset = 'public.ds_2' AND col_nm = 'src_col'")" = "int 42" ]
    [ "$(tgt1 "SELECT coalesce(col_desc, '-') FROM $S.dataset_schema WHERE dataset = 'public.ds_1' AND col_nm = 'col_3'")" != "src edit" ]
    [ "$(tgt1 "SELECT col_desc FROM $S.dataset_schema WHERE dataset = 'public.ds_2' AND col_nm = 'col_1'")" = "qa edit" ]
    [ "$(tgt1 "SELECT count(*) FROM $S.dataset_schema WHERE (dataset, col_nm) IN
               (('public.ds_2', 'col_4'), ('public.ds_1', 'qa_col'))")" = 2 ]

    # Once more, the same rows: nothing new, nothing written.
    before=$(tgt_state | grep -v '^ledger')
    b3=$(mkbundle nightly)
    imp_ok "$b3"
    printed_counts owl_rule 0 0 0 40
    printed_counts dataset_schema 0 0 0 20
    [ "$(tgt_state | grep -v '^ledger')" = "$before" ]
}

@test "a child moved to a new parent before its old one goes is updated in place; a cascade into a kept row is never a silent loss" {
    # parent -> child with ON DELETE CASCADE, and a child key that leaves out
    # its FK column: parents are inserted and children updated before any
    # delete, so the old parent's delete reaches no child.
    local ddl="
        CREATE TABLE parent (id serial PRIMARY KEY, dataset text NOT NULL, name text NOT NULL,
                             UNIQUE (dataset, name));
        CREATE TABLE child (id serial PRIMARY KEY, dataset text NOT NULL, cname text NOT NULL,
                            parent_name text NOT NULL, note text, UNIQUE (dataset, cname),
                            FOREIGN KEY (dataset, parent_name) REFERENCES parent (dataset, name) ON DELETE CASCADE);"
    S=casc
    pg_psql src -c "CREATE SCHEMA $S" -c "SET search_path TO $S" -c "$ddl" \
        -c "INSERT INTO parent (dataset, name) VALUES ('d1', 'a'), ('d2', 'a')" \
        -c "INSERT INTO child (dataset, cname, parent_name, note) VALUES ('d1', 'x', 'a', 'one'), ('d2', 'y', 'a', 'two')" >/dev/null
    pg_psql tgt -c "CREATE SCHEMA $S" -c "SET search_path TO $S" -c "$ddl" >/dev/null
    TABLES_INI="
[table child]
key = dataset, cname
generated = id

[table parent]
key = dataset, name
generated = id
"
    src_ini
    tgt_ini
    job nightly "d1, d2"
    b1=$(mkbundle nightly)
    imp_ok "$b1"
    [ "$(tgt1 "SELECT string_agg(dataset || ':' || cname || '->' || parent_name, ' ' ORDER BY dataset) FROM $S.child")" = "d1:x->a d2:y->a" ]
    xid=$(tgt1 "SELECT id FROM $S.child WHERE cname = 'x'")

    # At the source, d1's child moves to a new parent and the old parent goes.
    pg_psql src -c "SET search_path TO $S" -c "INSERT INTO parent (dataset, name) VALUES ('d1', 'b')" \
        -c "UPDATE child SET parent_name = 'b' WHERE dataset = 'd1'" -c "DELETE FROM parent WHERE name = 'a' AND dataset = 'd1'" >/dev/null
    b2=$(mkbundle nightly)
    imp_ok "$b2"
    printed_counts parent 1 0 1 1
    printed_counts child 0 1 0 1
    [ "$(tgt1 "SELECT string_agg(dataset || ':' || cname || '->' || parent_name || ':' || note, ' ' ORDER BY dataset) FROM $S.child")" = "d1:x->b:one d2:y->a:two" ]
    [ "$(tgt1 "SELECT string_agg(dataset || ':' || name, ' ' ORDER BY dataset) FROM $S.parent")" = "d1:b d2:a" ]
    # the child kept its target row (and id): updated, not deleted and added
    [ "$(tgt1 "SELECT id FROM $S.child WHERE cname = 'x'")" = "$xid" ]

    # A foreign key the source lacks: its child row keeps a parent the source
    # deleted. The target's cascade would take the row the bundle keeps: the
    # import writes it again, which its foreign key refuses (2), and nothing
    # changes; never a row quietly lost.
    pg_psql src -c "SET search_path TO $S" -c "ALTER TABLE child DROP CONSTRAINT child_dataset_parent_name_fkey" \
        -c "DELETE FROM parent WHERE dataset = 'd2'" >/dev/null
    before=$(tgt1 "SELECT string_agg(c::text, ' ' ORDER BY id) FROM $S.child c")
    b3=$(mkbundle nightly)
    imp "$b3"
    expect_refusal 2 "child_dataset_parent_name_fkey"
    [ "$(tgt1 "SELECT string_agg(c::text, ' ' ORDER BY id) FROM $S.child c")" = "$before" ]
}

@test "check: every check of a source and a target passes, one line each; a missing table and a missing key column are named" {
    pair chk
    job nightly "public.ds_1"
    run "$OWLSYNC" -c "$W/src.ini" check
    [ "$status" -eq 0 ]
    [[ $output == *"ok: config $W/src.ini (environment prod)"* ]]
    [[ $output == *"ok: [export nightly] signing key $K/prod.key"* ]]
    [[ $output == *"ok: connected to the source database"* ]]
    [[ $output == *"ok: table chk.owl_rule readable, "*" columns travel"* ]]
    [ "$(grep -c '^ok: table chk\..* readable' <<<"$output")" = 9 ]
    [ "${lines[-1]}" = "all checks passed" ]
    run "$OWLSYNC" -c "$W/tgt.ini" check
    [ "$status" -eq 0 ]
    [[ $output == *"ok: 1 trusted key(s)"* ]]
    [[ $output == *"ok: connected to the target database"* ]]
    [[ $output == *"ok: ledger "* ]]
    [[ $output == *"ok: table chk.owl_rule writable (mode replace)"* ]]
    [ "$(grep -c '^ok: table chk\..* writable' <<<"$output")" = 9 ]
    [ "${lines[-1]}" = "all checks passed" ]

    pg_query tgt "ALTER TABLE chk.alert_output RENAME TO alert_output_old" >/dev/null
    run "$OWLSYNC" -c "$W/tgt.ini" check
    [ "$status" -eq 1 ]
    [[ ${lines[-1]} == "owlsync check: table chk.alert_output does not exist in the target database" ]]
    pg_query tgt "ALTER TABLE chk.alert_output_old RENAME TO alert_output" >/dev/null
    pg_query tgt "ALTER TABLE chk.owl_rule RENAME COLUMN rule_nm TO rule_name" >/dev/null
    run "$OWLSYNC" -c "$W/tgt.ini" check
    [ "$status" -eq 2 ]
    [[ $output == *"owlsync check: [table owl_rule] key: column rule_nm does not exist in chk.owl_rule"* ]]
}
