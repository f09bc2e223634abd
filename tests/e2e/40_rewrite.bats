#!/usr/bin/env bats
# owlsync environment rewrites, end to end (DESIGN.md 3.2 [rewrite NAME], issue 5):
# export from a "prod" source, import into a "qa" target whose config rewrites
# connection names, hosts, agents, the run-as user, Spark settings, a jsonb
# value, a text[] value and the tenant prefix of dataset names.  The target's
# rows are checked in SQL against the source's rows transformed with replace()
# and regexp_replace(): EXCEPT ALL both ways.
#
# Every test works in its own schema (the [database] schema key) of both
# clusters, so tests do not see each other's rows; they share the target's
# ledger (schema owlsync), whose rows are told apart by bundle file name.

# shellcheck disable=SC2154 # status, output and stderr are set by bats' run
bats_require_minimum_version 1.5.0
load ../lib/pg
load ../lib/owl

OWLSYNC=${OWLSYNC:-$BATS_TEST_DIRNAME/../../owlsync}

TABLES_INI=$OWL_TABLES_INI

# The exported datasets, as the export job names them and as SQL selects them.
DATASETS="public.ds_%, public.special, public.o'hara"
SRC_W="(dataset LIKE 'public.ds_%' OR dataset IN ('public.special', 'public.o''hara'))"

# The rewrites of the qa environment (INI), and the same changes in SQL over a
# source row (COLUMN=EXPRESSION, for expect_rows).
REWRITES_INI='
[rewrite conn]
columns = owl_check_repo.conn_name
match = exact
from = prod_pg
to = qa_pg

[rewrite hosts]
columns = owl_check_repo.conn_url
match = substring
from = prod-db
to = qa-db

[rewrite agents]
columns = owl_check_repo.agent_name, *.agent
match = regex
from = ^prod-agent-([0-9]+)$
to = qa-agent-\1

[rewrite tenant]
columns = *.dataset
match = regex
from = ^public\.
to = qa.

[rewrite env]
columns = owl_check_repo.env_vars
match = substring
from = "prod"
to = "qa"

[rewrite spark]
columns = owl_check_repo.spark_conf
match = substring
from = --executor-memory 4g
to = --executor-memory 2g

[rewrite run_as]
columns = job_schedule.*
match = substring
from = _prod
to = _qa

[rewrite mail]
columns = alert_cond.recipients
match = substring
from = @example.com
to = @qa.example.com
'
SQL_DATASET="dataset=regexp_replace(dataset, '^public\\.', 'qa.')"
SQL_CONN="conn_name=CASE WHEN conn_name = 'prod_pg' THEN 'qa_pg' ELSE conn_name END"
SQL_HOSTS="conn_url=replace(conn_url, 'prod-db', 'qa-db')"
SQL_AGENT_NAME="agent_name=regexp_replace(agent_name, '^prod-agent-([0-9]+)\$', 'qa-agent-\\1')"
SQL_AGENT="agent=regexp_replace(agent, '^prod-agent-([0-9]+)\$', 'qa-agent-\\1')"
SQL_ENV="env_vars=replace(env_vars::text, '\"prod\"', '\"qa\"')::jsonb"
SQL_SPARK="spark_conf=replace(spark_conf, '--executor-memory 4g', '--executor-memory 2g')"
SQL_RUN_AS="run_as=replace(run_as, '_prod', '_qa')"
SQL_MAIL="recipients=replace(recipients::text, '@example.com', '@qa.example.com')::text[]"

# ------------------------------------------------------------------ helpers

setup_file() {
    if [ ! -x "$OWLSYNC" ]; then
        echo "no owlsync binary at $OWLSYNC (run make)" >&2
        return 1
    fi
    pg_start src
    pg_start tgt
    mkdir -p "$BATS_FILE_TMPDIR/keys"
    "$OWLSYNC" keygen -o "$BATS_FILE_TMPDIR/keys/prod.key" >/dev/null 2>&1
    pg_query tgt "CREATE SCHEMA cmp" >/dev/null
}

teardown_file() {
    pg_stop_all
}

setup() {
    W=$BATS_TEST_TMPDIR
    K=$BATS_FILE_TMPDIR/keys
    mkdir -p "$W/out" "$W/state" "$W/tstate"
}

# pair SCHEMA — SCHEMA in src holds the sample metastore (10 bulk datasets, so
# public.ds_10 is on prod_pg_hist), SCHEMA in tgt the same tables, empty;
# writes src.ini with export job "nightly" and tgt.ini with REWRITES_INI.
pair() {
    S=$1
    pg_load_metastore src 10 "$S"
    pg_load_schema tgt "$S"
    cat >"$W/src.ini" <<EOF
[owlsync]
environment = prod
state_dir = $W/state
log_level = warn

[database]
conninfo = $(pg_conninfo src)
schema = $S
$TABLES_INI
[export nightly]
datasets = $DATASETS
outbox = $W/out
signing_key = $K/prod.key
skip_unchanged = false
EOF
    tgt_ini "$REWRITES_INI"
}

# tgt_ini REWRITES — the target's config (environment qa, trusts the prod key)
# with the [rewrite] sections REWRITES (may be empty).
tgt_ini() {
    cat >"$W/tgt.ini" <<EOF
[owlsync]
environment = qa
state_dir = $W/tstate
log_level = warn

[database]
conninfo = $(pg_conninfo tgt)
schema = $S
$TABLES_INI
[import]
trusted_key = prod $K/prod.key.pub
$1
EOF
}

# mkbundle — runs export job nightly of src.ini and prints the bundle path.
mkbundle() { owl_export_one "$W/src.ini" nightly; }

# src1 SQL / tgt1 SQL — one value.
src1() { pg_query src "$1"; }
tgt1() { pg_query tgt "$1"; }

# src_count TABLE CONDITION — rows of the exported datasets of $S.TABLE at the
# source for which CONDITION holds: the values a rule should change.
src_count() {
    src1 "SELECT count(*) FROM $S.$1 WHERE $SRC_W AND ($2)"
}

# digest_sql WHERE [ID] — one query: "TABLE ROWS MD5" for every table of $S
# (rows matching WHERE, rule_repo: all), each row as jsonb without its id
# (with it when ID is given), sorted; compares tables whatever their ids.
digest_sql() {
    local t w sql='' drop="- 'id'"
    [ -z "${2:-}" ] || drop=
    for t in $OWL_TABLES; do
        w=$1
        [ "$t" != rule_repo ] || w=true
        sql+="${sql:+ UNION ALL }SELECT '$t ' || count(*) || ' ' ||
            coalesce(md5(string_agg(r, E'\\n' ORDER BY r COLLATE \"C\")), '-')
            FROM (SELECT (to_jsonb(t) $drop)::text AS r FROM $S.$t t WHERE $w) s"
    done
    echo "(SELECT * FROM ($sql) d ORDER BY 1)"
}

# tgt_state — digests of every table of $S in tgt (ids included) and of the ledger.
tgt_state() {
    local t sql
    sql=$(digest_sql true id)
    if [ "$(tgt1 "SELECT to_regclass('owlsync.bundles') IS NOT NULL")" = t ]; then
        for t in bundles bundle_tables bundle_rewrites datasets; do
            sql+=" UNION ALL (SELECT 'ledger.$t ' || count(*) || ' ' ||
                coalesce(md5(string_agg(r, E'\\n' ORDER BY r COLLATE \"C\")), '-')
                FROM (SELECT to_jsonb(t)::text AS r FROM owlsync.$t t) s)"
        done
    fi
    PGOPTIONS="-c timezone=UTC" tgt1 "$sql"
}

# ledger_rewrites BUNDLE — "RULE TABLE CHANGED" lines kept for it, sorted.
ledger_rewrites() {
    tgt1 "SELECT r.rule_name || ' ' || r.table_name || ' ' || r.changed
          FROM owlsync.bundle_rewrites r JOIN owlsync.bundles b USING (bundle_id)
          WHERE b.bundle_id = '$(owl_bundle_id "$1")' ORDER BY 1"
}

# printed_rewrites — "RULE TABLE CHANGED" lines of the last imp's report, sorted.
printed_rewrites() {
    local line rule rest
    while IFS= read -r line; do
        [[ $line =~ ^\ +\[rewrite\ ([^]]+)\]\ changed:(.*)$ ]] || continue
        rule=${BASH_REMATCH[1]}
        rest=${BASH_REMATCH[2]}
        # shellcheck disable=SC2086 # "TABLE N TABLE N …"
        set -- $rest
        while [ $# -ge 2 ]; do
            echo "$rule $1 $2"
            shift 2
        done
    done <<<"$output" | LC_ALL=C sort
}

# expected_rewrites — "RULE TABLE CHANGED" lines for REWRITES_INI, counted in SQL
# at the source (values the rule changes; one line per table the rule covers).
expected_rewrites() {
    local t sql="
        SELECT 'conn owl_check_repo ' || count(*) FILTER (WHERE conn_name = 'prod_pg')
            || E'\\nhosts owl_check_repo ' || count(*) FILTER (WHERE strpos(conn_url, 'prod-db') > 0)
            || E'\\nagents owl_check_repo ' || count(*) FILTER (WHERE agent_name ~ '^prod-agent-([0-9]+)\$')
            || E'\\nenv owl_check_repo ' || count(*) FILTER (WHERE strpos(env_vars::text, '\"prod\"') > 0)
            || E'\\nspark owl_check_repo ' || count(*) FILTER (WHERE strpos(spark_conf, '--executor-memory 4g') > 0)
            FROM $S.owl_check_repo WHERE $SRC_W
        UNION ALL SELECT 'agents job_schedule ' || count(*) FILTER (WHERE agent ~ '^prod-agent-([0-9]+)\$')
            || E'\\nrun_as job_schedule ' || count(*) FILTER (WHERE strpos(run_as, '_prod') > 0)
            FROM $S.job_schedule WHERE $SRC_W
        UNION ALL SELECT 'mail alert_cond ' || count(*) FILTER (WHERE strpos(recipients::text, '@example.com') > 0)
            FROM $S.alert_cond WHERE $SRC_W"
    for t in owl_catalog owl_rule alert_cond owl_check_repo job_schedule dataset_schema dataset_scoring alert_output; do
        sql+=" UNION ALL SELECT 'tenant $t ' || count(*) FILTER (WHERE dataset ~ '^public\\.')
            FROM $S.$t WHERE $SRC_W"
    done
    src1 "$sql" | LC_ALL=C sort
}

# compare SPEC… — compares, in SQL, the target's rows of tables of $S with the
# source's rows of the exported datasets (rule_repo: all) after the configured
# changes.  A SPEC is a table name, then one COLUMN=EXPRESSION per line: that
# column of the source row is replaced by EXPRESSION (SQL over the source row);
# every other column must be equal.  Rows travel as jsonb (ids aside), so all
# tables take one query at the source and one at the target.  Prints, per
# table, "TABLE ROWS MISSING EXTRA": source rows, transformed source rows not
# in the target, target rows not among them (EXCEPT ALL both ways).
compare() {
    local spec t kv c e sel where src='' tgt='' lines cols=() line
    declare -A tcols=()
    while IFS='|' read -r t c; do
        tcols[$t]=$c
    done < <(tgt1 "SELECT table_name, string_agg(quote_ident(column_name), ' ' ORDER BY ordinal_position)
                   FROM information_schema.columns
                   WHERE table_schema = '$S' AND column_name <> 'id' GROUP BY table_name")
    for spec in "$@"; do
        mapfile -t lines <<<"$spec"
        t=${lines[0]}
        [ -n "${tcols[$t]:-}" ] || { echo "compare: no table $S.$t" >&2; return 1; }
        read -r -a cols <<<"${tcols[$t]}"
        sel=''
        for c in "${cols[@]}"; do
            e=$c
            for kv in "${lines[@]:1}"; do
                if [ "${kv%%=*}" = "$c" ]; then e="${kv#*=}"; fi
            done
            sel+="${sel:+, }$e AS $c"
        done
        where=$SRC_W
        [ "$t" != rule_repo ] || where=true
        src+="${src:+ UNION ALL }SELECT '$t', to_jsonb(x) FROM (SELECT $sel FROM $S.$t WHERE $where) x"
        line="(SELECT to_jsonb(x) FROM (SELECT ${tcols[$t]// /, } FROM $S.$t) x)"
        tgt+="${tgt:+ UNION ALL }SELECT '$t ' || (SELECT count(*) FROM want WHERE t = '$t') || ' ' ||
            (SELECT count(*) FROM (SELECT r FROM want WHERE t = '$t' EXCEPT ALL $line) a) || ' ' ||
            (SELECT count(*) FROM ($line EXCEPT ALL SELECT r FROM want WHERE t = '$t') b)"
    done
    PGOPTIONS="-c timezone=UTC" pg_psql src -c "COPY ($src) TO STDOUT" |
        PGOPTIONS="-c timezone=UTC" pg_psql tgt -At -c "CREATE TEMP TABLE want (t text, r jsonb)" \
            -c "COPY want FROM STDIN" -c "$tgt"
}

# check SPEC… — compare, which must find rows and no difference in each table.
check() {
    local got line rc=0
    got=$(compare "$@") || return 1
    [ "$(grep -c . <<<"$got")" -eq $# ] || { echo "compare printed: $got" >&2; return 1; }
    while read -r t n missing extra; do
        if [ "$missing $extra" != "0 0" ] || [ "$n" -eq 0 ]; then
            echo "$S.$t: rows $n, missing in the target $missing, extra in the target $extra" >&2
            rc=1
        fi
    done <<<"$got"
    return $rc
}

# check_all — every table of the target equals the source under REWRITES_INI.
check_all() {
    check rule_repo \
        "owl_catalog
$SQL_DATASET" "owl_rule
$SQL_DATASET" "alert_cond
$SQL_DATASET
$SQL_MAIL" "alert_output
$SQL_DATASET" "owl_check_repo
$SQL_DATASET
$SQL_CONN
$SQL_HOSTS
$SQL_AGENT_NAME
$SQL_ENV
$SQL_SPARK" "job_schedule
$SQL_DATASET
$SQL_AGENT
$SQL_RUN_AS" "dataset_schema
$SQL_DATASET" "dataset_scoring
$SQL_DATASET"
}

# same_lines NAME EXPECTED GOT — compares two line lists, showing both when not equal.
same_lines() {
    if [ "$2" != "$3" ]; then
        echo "$1 differ:" >&2
        diff <(echo "$2") <(echo "$3") >&2
        return 1
    fi
}

# ------------------------------------------------------------------ tests

@test "rewrites: the target's values equal the source's with exactly the configured changes; counts on stdout and in the ledger; --dry-run the same, writing nothing" {
    pair rw
    b=$(mkbundle)
    want=$(expected_rewrites)
    # every rule changes something here, in every table it covers
    [ "$(grep -c . <<<"$want")" -eq 16 ]
    [ "$(grep -c ' 0$' <<<"$want")" -eq 0 ]

    # a dry run reports the counts and writes nothing
    before=$(tgt_state)
    imp_ok --dry-run "$b"
    [[ $output == *"dry run: rolled back, nothing was written"* ]]
    dry=$(printed_rewrites)
    same_lines "dry-run counts" "$want" "$dry"
    [ "$(tgt_state)" = "$before" ]
    [ "$(ledger_count "$b")" = 0 ]
    [ "$(tgt1 "SELECT count(*) FROM $S.owl_check_repo")" = 0 ]
    # --json carries the counts too, per table
    imp --dry-run --json "$b"
    [ "$status" -eq 0 ]
    [[ $output == *'"rewrites": {'* ]]
    [[ $output == *"\"conn\": $(src_count owl_check_repo "conn_name = 'prod_pg'")"* ]]
    [ "$(tgt_state)" = "$before" ]

    # the import: every table, every column, only the configured changes (in SQL)
    imp_ok "$b"
    check_all
    same_lines "printed counts" "$dry" "$(printed_rewrites)"
    same_lines "ledger counts" "$want" "$(ledger_rewrites "$b")"
    [[ $stderr != *"changed nothing"* ]]

    # spot values the rules must have made; the hostile values of public.special
    # survive the rewrites of their neighbours (the jsonb keeps its quote and
    # backslash); cmd_line names prod_pg but is not a rewritten column
    got=$(tgt1 "SELECT conn_name || '|' || conn_url || '|' || agent_name || '|' || (env_vars->>'ENV')
                FROM $S.owl_check_repo WHERE dataset = 'qa.ds_1'
                UNION ALL SELECT conn_name FROM $S.owl_check_repo WHERE dataset = 'qa.ds_10'
                UNION ALL SELECT agent || '|' || run_as FROM $S.job_schedule WHERE dataset = 'qa.ds_3'
                UNION ALL SELECT count(*)::text FROM $S.owl_catalog WHERE dataset LIKE 'public.%'
                UNION ALL SELECT count(*)::text FROM $S.owl_rule WHERE dataset = 'qa.o''hara'
                UNION ALL SELECT (env_vars->>'QUOTE') || (env_vars->>'BS') || (env_vars->>'ENV')
                          FROM $S.owl_check_repo WHERE dataset = 'qa.special'
                UNION ALL SELECT count(*)::text FROM $S.owl_check_repo WHERE cmd_line LIKE '%-cxn prod_pg%'")
    same_lines "spot values" 'qa_pg|jdbc:postgresql://qa-db2.example.com:5432/sales?sslmode=require|qa-agent-2|qa
prod_pg_hist
qa-agent-1|svc_owl_qa
0
1
"\qa
11' "$got"
    [ "$(tgt1 "SELECT rule_value FROM $S.owl_rule WHERE dataset = 'qa.special' AND rule_nm = 'quotes_and_controls'")" = "$OWL_SPECIAL_CONTROLS" ]
}

@test "rewrites: a later bundle updates and deletes the renamed rows, matched through the rewritten dataset names" {
    pair rw2
    b=$(mkbundle)
    imp_ok "$b"
    ids=$(tgt1 "SELECT string_agg(id::text, ',' ORDER BY id) FROM $S.owl_check_repo")

    # the same content again: nothing to write, the renamed rows are the bundle's
    b=$(mkbundle)
    imp_ok "$b"
    grep -Eq '^ +owl_check_repo +0 +0 +0 +11$' <<<"$output"
    grep -Eq '^ +owl_rule +0 +0 +0 +209$' <<<"$output"

    # changes at the source travel, through the rules, to the renamed rows
    pg_psql src -c "SET search_path TO $S" -c "
        UPDATE owl_check_repo SET conn_name = 'prod_pg_hist', conn_url = conn_url || '&x=prod-db9'
            WHERE dataset = 'public.ds_1';
        UPDATE job_schedule SET agent = 'prod-agent-7' WHERE dataset = 'public.ds_2';
        DELETE FROM owl_rule WHERE dataset = 'public.ds_3' AND rule_nm = 'rule_1'"
    b=$(mkbundle)
    imp_ok "$b"
    grep -Eq '^ +owl_check_repo +0 +1 +0 +10$' <<<"$output"
    grep -Eq '^ +job_schedule +0 +1 +0 +10$' <<<"$output"
    grep -Eq '^ +owl_rule +0 +0 +1 +208$' <<<"$output"
    [ "$(tgt1 "SELECT string_agg(id::text, ',' ORDER BY id) FROM $S.owl_check_repo")" = "$ids" ]
    [ "$(tgt1 "SELECT conn_url FROM $S.owl_check_repo WHERE dataset = 'qa.ds_1'")" = \
      "jdbc:postgresql://qa-db2.example.com:5432/sales?sslmode=require&x=qa-db9" ]
    check_all
    same_lines "printed counts" "$(expected_rewrites)" "$(printed_rewrites)"
}

@test "rewrites: a rewrite that breaks a jsonb or text[] value fails the import, names the rule, table, column and row; nothing written" {
    pair rwbad
    b=$(mkbundle)
    imp_ok "$b"
    pg_query src "UPDATE $S.owl_rule SET rule_value = rule_value || ' x' WHERE dataset = 'public.ds_1'" >/dev/null
    b2=$(mkbundle)
    before=$(tgt_state)

    # a substring rule turning '"' into "'" leaves the jsonb value invalid JSON
    tgt_ini "$REWRITES_INI
[rewrite quotes]
columns = owl_check_repo.env_vars
match = substring
from = \"
to = '
"
    imp "$b2"
    [ "$status" -ne 0 ]
    [ "$(grep -c . <<<"$stderr")" -eq 1 ]
    [[ $stderr == *"$(basename "$b2")"*"rewrite [rewrite quotes] breaks owl_check_repo.env_vars in row 1: the value is no longer valid JSON"* ]]
    [ "$(tgt_state)" = "$before" ]
    [ "$(ledger_count "$b2")" = 0 ]
    # a dry run fails the same way
    imp --dry-run "$b2"
    [ "$status" -ne 0 ]
    [[ $stderr == *"[rewrite quotes] breaks owl_check_repo.env_vars in row 1"* ]]

    # a text[] value turned into a malformed array: the target refuses the rows,
    # and the message names the rules that changed that table
    tgt_ini "$REWRITES_INI
[rewrite braces]
columns = alert_cond.recipients
match = substring
from = @
to = }
"
    imp "$b2"
    [ "$status" -ne 0 ]
    [[ $stderr == *alert_cond* ]]
    [[ $stderr == *"[rewrite braces]"* ]]
    [ "$(tgt_state)" = "$before" ]
    [ "$(ledger_count "$b2")" = 0 ]

    # without the breaking rules the same bundle applies
    tgt_ini "$REWRITES_INI"
    imp_ok "$b2"
    [ "$(ledger_count "$b2")" = 1 ]
    check_all
}

# GREEDY_INI — a regex rule whose search, in glibc, tries every start of a value
# it does not match and scans to the end from each.
GREEDY_INI='
[rewrite greedy]
columns = owl_check_repo.query
match = regex
from = (.*)-prod-(.*)
to = \1-qa-\2
'

# imp_guarded ARGS… — imp, stopped after 120 s (exit 124): these imports
# take a second; before the rewrite bounds, they took hours.
imp_guarded() {
    run --separate-stderr timeout 120 "$OWLSYNC" -c "$W/tgt.ini" import "$@"
}

@test "rewrites: a value past a rule's bounds (max_regex_value, max_json_values) fails the import at once with exit 2, naming the rule, table, column and row; nothing written" {
    pair rwbound
    b=$(mkbundle)
    imp_ok "$b"
    before=$(tgt_state)

    # a legitimate, signed bundle whose query values are 1.1 MB long: the
    # greedy rule would scan them quadratically; over max_regex_value (1M)
    pg_query src "UPDATE $S.owl_check_repo SET query = repeat('select 1 ', 122223)" >/dev/null
    b1=$(mkbundle)
    tgt_ini "$REWRITES_INI$GREEDY_INI"
    imp_guarded "$b1"
    [ "$status" -eq 2 ]
    [ "$(grep -c . <<<"$stderr")" -eq 2 ]
    [[ $stderr == *"$(basename "$b1")"*"rewrite [rewrite greedy] on owl_check_repo.query in row 1: the value is 1100007 bytes, more than max_regex_value (1048576) lets a regex rule take"* ]]
    [[ $stderr == *"HINT: raise max_regex_value in [import]"* ]]
    [ "$(tgt_state)" = "$before" ]
    [ "$(ledger_count "$b1")" = 0 ]

    # a jsonb value of 1.2 million JSON values that the env rule changes:
    # parsing it to check it took seconds and over a gigabyte
    pg_query src "UPDATE $S.owl_check_repo SET query = NULL,
        env_vars = (SELECT jsonb_agg(jsonb_build_object('a', '{}'::jsonb)) FROM generate_series(1, 300000))
                   || '[\"prod\"]'::jsonb" >/dev/null
    b2=$(mkbundle)
    imp_guarded "$b2"
    [ "$status" -eq 2 ]
    [[ $stderr == *"$(basename "$b2")"*"rewrite [rewrite env] on owl_check_repo.env_vars in row 1: the value holds more than max_json_values (1000000) JSON values"* ]]
    [ "$(tgt_state)" = "$before" ]
    [ "$(ledger_count "$b2")" = 0 ]
    # the bound is the target's to raise
    tgt_ini "max_json_values = 2000000
$REWRITES_INI$GREEDY_INI"
    imp_guarded "$b2"
    [ "$status" -eq 0 ]
    [ "$(tgt1 "SELECT count(*) FROM $S.owl_check_repo WHERE env_vars->>300000 = 'qa'")" = 11 ]
}

@test "rewrites: a greedy regex over long values it does not match takes one pass; the import succeeds" {
    pair rwgreedy
    # 600 kB values without "-prod-": glibc alone tries each start and scans
    # to the end from each (minutes a value)
    pg_query src "UPDATE $S.owl_check_repo SET query = repeat('select 1 ', 66667)" >/dev/null
    b=$(mkbundle)
    tgt_ini "$REWRITES_INI$GREEDY_INI"
    imp_guarded "$b"
    [ "$status" -eq 0 ]
    [[ $output == *"[rewrite greedy] changed: owl_check_repo 0"* ]]
    check_all
}

@test "rewrites: a stale rule (matches nothing) is a warning on stderr; the import succeeds" {
    pair rwstale
    b=$(mkbundle)
    tgt_ini "$REWRITES_INI
[rewrite stale]
columns = owl_check_repo.conn_name, job_schedule.agent
from = nothing-matches-this
to = x
"
    imp_ok "$b"
    [[ $stderr == *"[rewrite stale] changed nothing in this bundle"* ]]
    [[ $output == *"[rewrite stale] changed: owl_check_repo 0 job_schedule 0"* ]]
    [ "$(ledger_rewrites "$b" | grep '^stale ')" = "stale job_schedule 0
stale owl_check_repo 0" ]
    # the other rules did their work all the same
    same_lines "counts" "$(expected_rewrites)" "$(printed_rewrites | grep -v '^stale ')"
    check_all
}

@test "rewrites: none configured, the import is identical to the source and reports no rewrite" {
    pair rwnone
    b=$(mkbundle)
    tgt_ini ""
    imp_ok "$b"
    [[ $output != *"[rewrite"* ]]
    [[ $stderr != *"[rewrite"* ]]
    [ "$(ledger_rewrites "$b")" = "" ]
    same_lines "digests" "$(PGOPTIONS="-c timezone=UTC" src1 "$(digest_sql "$SRC_W")")" \
        "$(PGOPTIONS="-c timezone=UTC" tgt1 "$(digest_sql true)")"
    # shellcheck disable=SC2086 # the table names, one argument each
    check $OWL_TABLES
}

@test "rewrites: an invalid regex, a back-reference in from or a column of no configured table is a config error (exit 2) naming the section" {
    S=public
    tgt_ini "[rewrite badre]
columns = owl_rule.rule_value
match = regex
from = ([a-
to = x
"
    run --separate-stderr "$OWLSYNC" -c "$W/tgt.ini" import /nonexistent.owlb
    [ "$status" -eq 2 ]
    [[ $stderr == *"[rewrite badre]"* ]]
    [[ $stderr == *from* ]]

    tgt_ini "[rewrite nowhere]
columns = no_such_table.conn_name
from = a
to = b
"
    run --separate-stderr "$OWLSYNC" -c "$W/tgt.ini" import /nonexistent.owlb
    [ "$status" -eq 2 ]
    [[ $stderr == *"[rewrite nowhere]"* ]]
    [[ $stderr == *no_such_table* ]]

    # a back-reference in from (a GNU extension glibc matches in exponential time)
    tgt_ini "[rewrite twice]
columns = owl_rule.rule_value
match = regex
from = (.*)\1-prod
to = \1
"
    run --separate-stderr "$OWLSYNC" -c "$W/tgt.ini" import /nonexistent.owlb
    [ "$status" -eq 2 ]
    [[ $stderr == *"[rewrite twice] from: \"(.*)\1-prod\" has a back-reference"* ]]
}

@test "rewrites: a column that names no column is refused by import (exit 2, nothing written) and by check, naming the rule and the nearest column" {
    pair rwbind
    b=$(mkbundle)
    before=$(tgt_state)
    tgt_ini "$REWRITES_INI
[rewrite typo]
columns = owl_check_repo.conn_nam
from = prod_pg
to = qa_pg
"
    imp --dry-run "$b"
    [ "$status" -eq 2 ]
    [[ $stderr == *"[rewrite typo] columns: owl_check_repo.conn_nam matches no column of table owl_check_repo"* ]]
    [[ $stderr == *"HINT: did you mean owl_check_repo.conn_name?"* ]]
    imp "$b"
    [ "$status" -eq 2 ]
    [ "$(tgt_state)" = "$before" ]
    [ "$(ledger_count "$b")" = 0 ]
    run "$OWLSYNC" -c "$W/tgt.ini" check
    [ "$status" -eq 2 ]
    [[ $output == *"FAIL: $W/tgt.ini:"*": [rewrite typo] columns: owl_check_repo.conn_nam matches no column of table owl_check_repo"* ]]
    [[ $output == *"HINT: did you mean owl_check_repo.conn_name?"* ]]

    # *.COLUMN must name a column of some configured table
    tgt_ini "$REWRITES_INI
[rewrite star]
columns = *.agentt
from = a
to = b
"
    imp "$b"
    [ "$status" -eq 2 ]
    [[ $stderr == *"[rewrite star] columns: *.agentt matches no column of any configured table"* ]]
    [[ $stderr == *"did you mean *.agent?"* ]]
    [ "$(tgt_state)" = "$before" ]
    run "$OWLSYNC" -c "$W/tgt.ini" check
    [ "$status" -eq 2 ]
    [[ $output == *"FAIL: "*"[rewrite star] columns: *.agentt matches no column of any configured table"* ]]

    # a column only the target has binds (the bundle need not carry it)
    pg_query tgt "ALTER TABLE $S.owl_check_repo ADD COLUMN qa_only text" >/dev/null
    tgt_ini "$REWRITES_INI
[rewrite qa]
columns = owl_check_repo.qa_only
from = a
to = b
"
    run "$OWLSYNC" -c "$W/tgt.ini" check
    [ "$status" -eq 0 ] || { echo "$output"; false; }
    [[ $output == *"ok: 9 [rewrite] rule(s): every column named exists in the target"* ]]
    imp_ok "$b"
    [[ $output == *"[rewrite qa] changed 0: none of its columns is in this bundle"* ]]
    pg_query tgt "ALTER TABLE $S.owl_check_repo DROP COLUMN qa_only" >/dev/null
    check_all
}

@test "rewrites: every rule's count is reported, 0 included, in text and --json" {
    pair rwcount
    printf '[export rules]\ndatasets = %s\ntables = owl_rule\noutbox = %s\nsigning_key = %s\n' \
        "$DATASETS" "$W/out" "$K/prod.key" >>"$W/src.ini"
    b=$(owl_export_one "$W/src.ini" rules)
    imp_ok --dry-run "$b"
    [[ $output == *"[rewrite tenant] changed: owl_rule "* ]]
    [[ $output == *"[rewrite conn] changed 0: none of its columns is in this bundle"* ]]
    [[ $output == *"[rewrite mail] changed 0: none of its columns is in this bundle"* ]]
    [ "$(grep -c '^  \[rewrite ' <<<"$output")" = 8 ]
    imp --dry-run --json "$b"
    [ "$status" -eq 0 ]
    j=$output
    [ "$(pg_psql tgt -At -v j="$j" <<<"SELECT string_agg(r->>'rule' || '=' || (r->>'changed'), ' ' ORDER BY o)
          FROM jsonb_array_elements((:'j'::jsonb)->'rewrites') WITH ORDINALITY x (r, o)
         WHERE (r->>'changed')::int = 0")" = "conn=0 hosts=0 agents=0 env=0 spark=0 run_as=0 mail=0" ]
    [ "$(pg_psql tgt -At -v j="$j" <<<"SELECT (r->>'changed') = (r->'tables'->>'owl_rule') AND (r->>'changed')::int > 0
          FROM jsonb_array_elements((:'j'::jsonb)->'rewrites') r WHERE r->>'rule' = 'tenant'")" = t ]
}
