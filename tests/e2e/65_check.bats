#!/usr/bin/env bats
# owlsync check and the least-privilege setups of sql/grants.sql, end to end:
# real roles (LOGIN, conninfo user=...), each way of making the ledger, an
# import that works with exactly those grants, and check naming a grant taken
# away (which the import then refuses, exit 2, changing nothing). Then what
# else check covers: directories that must take files, dataset patterns, the
# columns of every table against the bundles at hand or the bundles named
# (check BUNDLE...), and the same checks as one JSON object (--json).

# shellcheck disable=SC2154 # status, output and stderr are set by bats' run
bats_require_minimum_version 1.5.0
load ../lib/pg
load ../lib/owl
load ../lib/import

OWLSYNC=${OWLSYNC:-$BATS_TEST_DIRNAME/../../owlsync}

TABLES_INI=$OWL_TABLES_INI

setup_file() {
    import_setup_file prod other
}

teardown_file() {
    pg_stop_all
}

setup() {
    import_setup
}

# as_import NAME — the conninfo of cluster NAME as role owlsync_import.
as_import() {
    pg_conninfo "$1" | sed 's/user=postgres/user=owlsync_import/'
}

# lp NAME — a target cluster NAME of its own (so its own ledger), schema $S of
# the metastore in it (empty) and in src (2 datasets); src.ini with job
# nightly, tgt.ini connecting to NAME as owlsync_import.
lp() {
    S=lp_$1
    pg_start "$1"
    pg_load_metastore src 2 "$S"
    pg_load_schema "$1" "$S"
    src_ini
    job nightly "public.ds_1, public.special"
    tgt_ini
    sed -i "s|^conninfo = .*|conninfo = $(as_import "$1")|" "$W/tgt.ini"
}

# grants NAME [PSQL ARGS…] — sql/grants.sql in cluster NAME for schema $S.
grants() {
    local name=$1
    shift
    pg_psql "$name" -v schema="$S" "$@" -f "$PG_SQL_DIR/grants.sql" >/dev/null
}

# state NAME — digests of the target's tables of $S and of its ledger.
state() {
    local t sql=""
    for t in $OWL_TABLES; do
        sql+="${sql:+ UNION ALL }SELECT '$t ' || count(*) || ' ' || coalesce(md5(string_agg(x::text, '' ORDER BY x::text)), '-') FROM $S.$t x"
    done
    for t in $(pg_query "$1" "SELECT tablename FROM pg_tables WHERE schemaname = 'owlsync' ORDER BY 1"); do
        sql+=" UNION ALL SELECT 'owlsync.$t ' || count(*) FROM owlsync.$t"
    done
    pg_query "$1" "$sql"
}

chk() {
    run "$OWLSYNC" -c "$W/tgt.ini" check
}

@test "least privilege, ledger_owner=false: grants.sql makes the ledger; check passes and the import works without any CREATE; a grant taken away fails check and import (exit 2), nothing changes" {
    lp lpf
    grants lpf
    [ "$(pg_query lpf "SELECT has_database_privilege('owlsync_import', 'owl', 'CREATE')
                           OR has_schema_privilege('owlsync_import', 'owlsync', 'CREATE')")" = f ]
    b=$(mkbundle nightly)
    chk
    [ "$status" -eq 0 ] || { echo "$output"; false; }
    [[ $output == *"ok: ledger present, role owlsync_import may read and write it as an import does"* ]]
    [[ $output == *"ok: USAGE on schema $S, TEMP on the database"* ]]
    [[ $output == *"ok: table $S.owl_rule writable (mode replace)"* ]]
    [ "${lines[-1]}" = "all checks passed" ]
    imp_ok "$b"
    [[ $output == *"imported bundle 1 of prod/nightly"* ]]
    [ "$(pg_query lpf "SELECT count(*) FROM owlsync.bundles")" = 1 ]

    # a ledger grant taken away: check names it; the import is refused, exit 2
    pg_query lpf "REVOKE UPDATE ON owlsync.dataset_tables FROM owlsync_import" >/dev/null
    chk
    [ "$status" -eq 2 ]
    [[ $output == *"FAIL: permission denied: role owlsync_import lacks UPDATE on owlsync.dataset_tables (the ledger)"* ]]
    [[ $output == *"1 check(s) failed"* ]]
    pg_query src "UPDATE $S.owl_rule SET points = points + 1 WHERE dataset = 'public.ds_1'" >/dev/null
    b2=$(mkbundle nightly)
    before=$(state lpf)
    imp "$b2"
    expect_refusal 2 "permission denied for table dataset_tables"
    [ "$(state lpf)" = "$before" ]
    pg_query lpf "GRANT UPDATE ON owlsync.dataset_tables TO owlsync_import" >/dev/null

    # a table privilege of the mode (replace deletes), a sequence's (the
    # target assigns ids: nextval), TEMP
    pg_query lpf "REVOKE DELETE ON $S.owl_rule FROM owlsync_import" >/dev/null
    pg_query lpf "REVOKE USAGE ON $S.alert_cond_id_seq FROM owlsync_import" >/dev/null
    pg_query lpf "REVOKE TEMP ON DATABASE owl FROM PUBLIC, owlsync_import" >/dev/null
    chk
    [ "$status" -eq 2 ]
    [[ $output == *"FAIL: permission denied: this role lacks DELETE on $S.owl_rule (mode replace)"* ]]
    [[ $output == *"FAIL: permission denied: this role lacks USAGE on sequence $S.alert_cond_id_seq (of $S.alert_cond)"* ]]
    [[ $output == *"FAIL: permission denied: this role lacks TEMP on the database"* ]]
    [[ $output == *"3 check(s) failed"* ]]
    imp "$b2"
    expect_refusal 2 "permission denied"
    [ "$(state lpf)" = "$before" ]
    pg_stop lpf
}

@test "least privilege, ledger_owner=true: the import role creates the ledger in its own schema on first import; check says it will; ledger.sql loads as that role" {
    lp lpt
    grants lpt -v ledger_owner=true
    [ "$(pg_query lpt "SELECT has_database_privilege('owlsync_import', 'owl', 'CREATE')")" = f ]
    b=$(mkbundle nightly)
    chk
    [ "$status" -eq 0 ] || { echo "$output"; false; }
    [[ $output == *"ok: ledger lacks owlsync.bundles, owlsync.bundle_tables, owlsync.datasets, owlsync.dataset_tables, owlsync.bundle_rewrites: role owlsync_import will create it on first import"* ]]
    imp_ok "$b"
    [ "$(pg_query lpt "SELECT tableowner FROM pg_tables WHERE schemaname = 'owlsync' AND tablename = 'bundles'")" = owlsync_import ]
    chk
    [ "$status" -eq 0 ]
    [[ $output == *"ok: ledger present, role owlsync_import may read and write it as an import does"* ]]
    # the DBA's way of upgrading the ledger works as the import role too
    run "$PG_BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -d "$(as_import lpt)" -f "$PG_SQL_DIR/ledger.sql"
    [ "$status" -eq 0 ] || { echo "$output"; false; }
    [ "$(pg_query lpt "SELECT count(*) FROM owlsync.bundles")" = 1 ]
    pg_stop lpt
}

@test "least privilege, a DBA pre-creates the ledger (sql/ledger.sql) and grants by hand: check and import work; USAGE on schema owlsync missing fails both, naming it, nothing changes" {
    lp lpd
    pg_psql lpd -c "SET client_min_messages = warning" -f "$PG_SQL_DIR/ledger.sql" >/dev/null
    # the metastore grants of grants.sql, then the ledger's by hand (no USAGE yet)
    grants lpd -v ledger_owner=true
    pg_psql lpd -c "ALTER SCHEMA owlsync OWNER TO postgres" \
        -c "REVOKE ALL ON ALL TABLES IN SCHEMA owlsync FROM owlsync_import" \
        -c "GRANT SELECT, INSERT ON owlsync.bundles TO owlsync_import" \
        -c "GRANT INSERT ON owlsync.bundle_tables, owlsync.bundle_rewrites TO owlsync_import" \
        -c "GRANT SELECT, INSERT, UPDATE ON owlsync.datasets, owlsync.dataset_tables TO owlsync_import" >/dev/null
    [ "$(pg_query lpd "SELECT has_database_privilege('owlsync_import', 'owl', 'CREATE')
                           OR has_schema_privilege('owlsync_import', 'owlsync', 'CREATE')")" = f ]
    b=$(mkbundle nightly)
    before=$(state lpd)
    chk
    [ "$status" -eq 2 ]
    [[ $output == *"FAIL: permission denied: role owlsync_import lacks USAGE on schema owlsync (the ledger)"* ]]
    imp "$b"
    expect_refusal 2 "permission denied for schema owlsync"
    [ "$(state lpd)" = "$before" ]
    pg_query lpd "GRANT USAGE ON SCHEMA owlsync TO owlsync_import" >/dev/null
    chk
    [ "$status" -eq 0 ] || { echo "$output"; false; }
    imp_ok "$b"
    [ "$(pg_query lpd "SELECT count(*) FROM owlsync.bundles")" = 1 ]
    pg_stop lpd
}

@test "a ledger missing a table that the role may not create: import refused (exit 2) naming it and the command a DBA runs" {
    lp lpm
    grants lpm
    pg_query lpm "DROP TABLE owlsync.bundle_rewrites" >/dev/null
    b=$(mkbundle nightly)
    before=$(state lpm)
    imp "$b"
    expect_refusal 2 "the ledger lacks owlsync.bundle_rewrites, and role owlsync_import may not create it in database owl"
    [[ $stderr == *"HINT: a DBA creates the ledger with: psql -X -v ON_ERROR_STOP=1 -d owl -f "*"/ledger.sql"* ]]
    [ "$(state lpm)" = "$before" ]
    chk
    [ "$status" -eq 2 ]
    [[ $output == *"FAIL: the ledger lacks owlsync.bundle_rewrites, and role owlsync_import may not create it"* ]]
    pg_stop lpm
}

@test "check: a dataset name or pattern that chooses nothing fails, each named; the others pass" {
    pair chkds
    job nightly "public.ds_1, public.nothing_%, public.ds_9x"
    run "$OWLSYNC" -c "$W/src.ini" check
    [ "$status" -eq 2 ]
    [[ $output == *"FAIL: $W/src.ini:"*": [export nightly] datasets: pattern public.nothing_% matches no dataset of chkds in the source database"* ]]
    [[ $output == *"FAIL: $W/src.ini:"*": [export nightly] datasets: name public.ds_9x matches no dataset of chkds in the source database"* ]]
    [[ $output == *"ok: table chkds.owl_rule readable"* ]]
    [[ $output == *"2 check(s) failed"* ]]
    src_ini
    job nightly "public.ds_%, public.special"
    run "$OWLSYNC" -c "$W/src.ini" check
    [ "$status" -eq 0 ] || { echo "$output"; false; }
    [[ $output == *"ok: [export nightly] datasets: each of 2 name(s) and pattern(s) matches"* ]]
    [[ $output == *"ok: state_dir $W/state writable"* ]]
    [[ $output == *"ok: [export nightly] outbox $W/out writable"* ]]
}

@test "check: outboxes, state_dir, the metrics file's directory, the inbox and processed/quarantine must take a file (as an unprivileged user)" {
    [ "$(id -u)" -eq 0 ] || skip "needs root to run owlsync as nobody"
    NB=$(mktemp -d /tmp/owlsync-check-test.XXXXXX)
    chmod 0755 "$NB"
    cp "$OWLSYNC" "$NB/owlsync"
    install -o nobody -m 0600 "$K/prod.key" "$NB/nobody.key"
    install -m 0644 "$K/prod.key.pub" "$NB/prod.pub"
    mkdir "$NB/rootonly" "$NB/open" "$NB/inbox" "$NB/inbox/quarantine"
    chown nobody "$NB/open" "$NB/inbox"
    cat >"$NB/owlsync.ini" <<EOF
[owlsync]
environment = prod
state_dir = $NB/rootonly/state
metrics_file = $NB/rootonly/owlsync.prom
[database]
conninfo = host=/nonexistent
[export j]
datasets = public.ds_1
outbox = $NB/open
outbox = $NB/rootonly
signing_key = $NB/nobody.key
[import]
inbox = $NB/inbox
trusted_key = prod $NB/prod.pub
EOF
    run runuser -u nobody -- "$NB/owlsync" -c "$NB/owlsync.ini" check
    echo "$output"
    [ "$status" -ne 0 ]
    [[ $output == *"ok: [export j] outbox $NB/open writable"* ]]
    [[ $output == *"FAIL: [export j] outbox: $NB/rootonly is not writable: Permission denied"* ]]
    [[ $output == *"FAIL: state_dir: $NB/rootonly/state does not exist and cannot be created: $NB/rootonly is not writable: Permission denied"* ]]
    [[ $output == *"FAIL: metrics_file $NB/rootonly/owlsync.prom: its directory: $NB/rootonly is not writable: Permission denied"* ]]
    [[ $output == *"ok: [import] inbox $NB/inbox writable"* ]]
    [[ $output == *"ok: [import] processed_dir $NB/inbox/processed will be created"* ]]
    [[ $output == *"FAIL: [import] quarantine_dir: $NB/inbox/quarantine is not writable: Permission denied"* ]]
    [[ $output == *"FAIL: cannot connect to the source database"* ]]
    [ -z "$(ls -A "$NB/open")" ]
    rm -rf "$NB"
}

@test "check: the columns of every table against the newest bundle at hand that carries it, not only the newest bundle" {
    pair chkcol
    job nightly "public.ds_1"
    job rules "public.ds_1" "tables=owl_rule"
    mkdir "$W/inbox"
    b1=$(mkbundle nightly)
    sleep 0.01
    b2=$(mkbundle rules)
    mv "$b1" "$b2" "$W/inbox/"
    touch -d '-1 minute' "$W/inbox/$(basename "$b1")"
    tgt_ini "inbox = $W/inbox"
    run "$OWLSYNC" -c "$W/tgt.ini" check
    [ "$status" -eq 0 ] || { echo "$output"; false; }
    [[ $output == *"ok: the columns of owl_rule in $W/inbox/$(basename "$b2") fit the target"* ]]
    [[ $output == *"ok: the columns of alert_cond in $W/inbox/$(basename "$b1") fit the target"* ]]
    pg_query tgt "ALTER TABLE chkcol.alert_cond DROP COLUMN condition" >/dev/null
    run "$OWLSYNC" -c "$W/tgt.ini" check
    [ "$status" -eq 2 ]
    [[ $output == *"FAIL: bundle column alert_cond.condition (of $W/inbox/$(basename "$b1")) does not exist in the target table chkcol.alert_cond"* ]]
}

@test "least privilege: ids that travel move their sequence, so check wants UPDATE on it and names it when missing; the import is refused (exit 2) without it" {
    lp lps
    grants lps
    # owl_rule's ids travel (not generated on either side)
    sed -i '/^\[table owl_rule\]/,/^\[/{/^generated = id$/d}' "$W/src.ini" "$W/tgt.ini"
    b=$(mkbundle nightly)
    pg_query lps "REVOKE UPDATE ON $S.owl_rule_id_seq FROM owlsync_import" >/dev/null
    chk
    [ "$status" -eq 2 ]
    [[ $output == *"FAIL: permission denied: this role lacks UPDATE on sequence $S.owl_rule_id_seq (of $S.owl_rule)"* ]]
    [[ $output == *"ok: table $S.alert_cond writable (mode replace)"* ]]
    before=$(state lps)
    imp "$b"
    expect_refusal 2 "permission denied for sequence owl_rule_id_seq"
    [ "$(state lps)" = "$before" ]
    pg_query lps "GRANT UPDATE ON $S.owl_rule_id_seq TO owlsync_import" >/dev/null
    chk
    [ "$status" -eq 0 ] || { echo "$output"; false; }
    imp_ok "$b"
    [[ $output == *"sequence "*"owl_rule_id_seq moved from"* ]]
    pg_stop lps
}

# jcheck INI [ARGS…] — owlsync check --json, stdout apart from stderr.
jcheck() {
    run --separate-stderr "$OWLSYNC" -c "$1" check --json "${@:2}"
}

# jq_py EXPR — EXPR of the JSON object in $output (as d), printed by python3.
jq_py() {
    python3 -c 'import json, sys; d = json.loads(sys.stdin.read()); print(eval(sys.argv[1]))' "$1" <<<"$output"
}

@test "check --json: one object, every check of the text output in it, ok true, exit 0" {
    pair chkjs
    job nightly "public.ds_1"
    for ini in src tgt; do
        run --separate-stderr "$OWLSYNC" -c "$W/$ini.ini" check
        [ "$status" -eq 0 ] || { echo "$output"; false; }
        text=$output
        jcheck "$W/$ini.ini"
        [ "$status" -eq 0 ] || { echo "$output"; false; }
        [ "$(jq_py 'd["ok"], d["failed"], d["warnings"], d["config"], d["environment"]')" = \
          "(True, 0, 0, '$W/$ini.ini', '$([ $ini = src ] && echo prod || echo qa)')" ]
        # the same checks, in the same order, as the text lines but the last
        [ "$(jq_py '"\n".join(("FAIL" if c["status"] == "fail" else c["status"]) + ": " + c["message"] for c in d["checks"])')" = \
          "$(sed '$d' <<<"$text")" ]
        [ "$(jq_py 'sorted(set(k for c in d["checks"] for k in c))')" = "['message', 'status']" ]
        [ "${output:0:1}" = "{" ] && [ "${output: -1}" = "}" ]
    done
    [[ $text == *"ok: connected to the target database"* ]]
}

@test "check --json: failures are entries with status fail, their code and hint; ok false; the exit code is the first failure's" {
    pair chkjf
    job nightly "public.ds_1, public.nothing_%"
    sed -i "s|^state_dir = .*|state_dir = $W/nowhere/state|" "$W/src.ini"
    jcheck "$W/src.ini"
    [ "$status" -eq 1 ]
    [ "$(jq_py 'd["ok"], d["failed"], d["warnings"]')" = "(False, 2, 0)" ]
    [ "$(jq_py '[c for c in d["checks"] if c["status"] != "ok"][0]')" = \
      "{'status': 'fail', 'message': 'state_dir: $W/nowhere/state does not exist, nor does its parent directory $W/nowhere', 'code': 1}" ]
    [[ $(jq_py '"|".join(str(v) for v in [c for c in d["checks"] if c["status"] != "ok"][1].values())') == \
       "fail|$W/src.ini:"*": [export nightly] datasets: pattern public.nothing_% matches no dataset of chkjf in the source database|dataset names are the values of each table's dataset_column; LIKE patterns use % and _|2" ]]
    [ "$(jq_py 'sum(1 for c in d["checks"] if "code" in c)')" = 2 ]
    [ "$(jq_py 'd["checks"][0]')" = "{'status': 'ok', 'message': 'config $W/src.ini (environment prod)'}" ]
    # text mode: the same, the hint indented under its line
    run --separate-stderr "$OWLSYNC" -c "$W/src.ini" check
    [ "$status" -eq 1 ]
    [[ $output == *"
FAIL: $W/src.ini:"*": [export nightly] datasets: pattern public.nothing_% matches no dataset of chkjf in the source database
      HINT: dataset names are the values of each table's dataset_column; LIKE patterns use % and _
"* ]]
    [ "${lines[-1]}" = "2 check(s) failed" ]

    # a [rewrite] column the target lacks
    printf '[rewrite conn]\ncolumns = owl_check_repo.conn_nme\nmatch = exact\nfrom = prod_pg\nto = qa_pg\n' >>"$W/tgt.ini"
    jcheck "$W/tgt.ini"
    [ "$status" -eq 2 ]
    [ "$(jq_py 'd["ok"], d["failed"]')" = "(False, 1)" ]
    [[ $(jq_py '[c for c in d["checks"] if c["status"] == "fail"]') == "[{'status': 'fail', 'message': '$W/tgt.ini:"*": [rewrite conn] columns: owl_check_repo.conn_nme matches no column of table owl_check_repo', 'hint': 'did you mean owl_check_repo.conn_name?', 'code': 2}]" ]]

    # a config that does not load: the error object of import --json, exit 2
    printf '[owlsync]\nenvironment = qa\nbogus = 1\n' >"$W/bad.ini"
    jcheck "$W/bad.ini"
    [ "$status" -eq 2 ]
    [[ $(jq_py 'd["config"], d["status"], d["exit_code"], d["error"]') == "('$W/bad.ini', 'failed', 2, '$W/bad.ini:3: "*"bogus"* ]]
    [[ $stderr == "owlsync check: $W/bad.ini:3: "*"bogus"* ]]
}

@test "check BUNDLE: verified, and every table it carries compared with the target's; a column the target lacks fails naming table.column" {
    pair chkb
    job nightly "public.ds_1"
    b=$(mkbundle nightly)
    run --separate-stderr "$OWLSYNC" -c "$W/tgt.ini" check "$b"
    [ "$status" -eq 0 ] || { echo "$output"; false; }
    [[ $output == *"ok: $b: verified, bundle 1 of prod/nightly ("*" table(s)), signed by key "* ]]
    for t in $OWL_TABLES; do
        [[ $output == *"ok: the columns of $t in $b fit the target"* ]] || { echo "no $t: $output"; false; }
    done
    [[ $output != *"bundle at hand"* ]]
    [ "${lines[-1]}" = "all checks passed" ]

    pg_query tgt "ALTER TABLE chkb.owl_rule DROP COLUMN rule_value" >/dev/null
    pg_query tgt "ALTER TABLE chkb.alert_cond DROP COLUMN condition" >/dev/null
    run --separate-stderr "$OWLSYNC" -c "$W/tgt.ini" check "$b"
    [ "$status" -eq 2 ]
    [[ $output == *"FAIL: bundle column owl_rule.rule_value (of $b) does not exist in the target table chkb.owl_rule"* ]]
    [[ $output == *"FAIL: bundle column alert_cond.condition (of $b) does not exist in the target table chkb.alert_cond"* ]]
    [[ $output == *"ok: the columns of rule_repo in $b fit the target"* ]]
    [ "${lines[-1]}" = "2 check(s) failed" ]
    jcheck "$W/tgt.ini" "$b"
    [ "$status" -eq 2 ]
    [ "$(jq_py '[c["code"] for c in d["checks"] if c["status"] == "fail"]')" = "[2, 2]" ]
    # the bundle at hand is not what a named bundle is compared with
    mkdir "$W/inbox"
    cp "$b" "$W/inbox/"
    tgt_ini "inbox = $W/inbox"
    run --separate-stderr "$OWLSYNC" -c "$W/tgt.ini" check
    [ "$status" -eq 2 ]
    [[ $output == *"FAIL: bundle column owl_rule.rule_value (of $W/inbox/$(basename "$b"))"* ]]
}

@test "check BUNDLE: a tampered bundle fails verification (exit 3), one the policy refuses exit 4, on an export-only config exit 2; nothing changes" {
    pair chkt
    job nightly "public.ds_1" "compression=none"
    b=$(mkbundle nightly)
    cp "$b" "$W/tampered.owlb"
    off=$(grep -obUa "score_low" "$W/tampered.owlb" | tail -1 | cut -d: -f1)
    [ "$off" -gt "$(bsdtar -xOf "$b" manifest.json | wc -c)" ]   # in a data entry, past the manifest
    flip_byte "$W/tampered.owlb" "$off"
    before=$(tgt_state)
    run --separate-stderr "$OWLSYNC" -c "$W/tgt.ini" check "$b" "$W/tampered.owlb"
    [ "$status" -eq 3 ]
    [[ $output == *"FAIL: $W/tampered.owlb: "*"does not match its hash in the manifest"* ]]
    [[ $output == *"ok: $b: verified"* ]]
    [ "${lines[-1]}" = "1 check(s) failed" ]
    jcheck "$W/tgt.ini" "$W/tampered.owlb"
    [ "$status" -eq 3 ]
    [ "$(jq_py '[(c["status"], c["code"]) for c in d["checks"] if c["status"] != "ok"]')" = "[('fail', 3)]" ]
    # with the target out of reach, still verified (and the columns left)
    sed 's/^conninfo = .*/conninfo = host=127.0.0.1 port=1 connect_timeout=2/' "$W/tgt.ini" >"$W/nodb.ini"
    run --separate-stderr "$OWLSYNC" -c "$W/nodb.ini" check "$b" "$W/tampered.owlb"
    [ "$status" -eq 1 ]
    [[ $output == *"FAIL: cannot connect to the target database"* ]]
    [[ $output == *"ok: $b: its columns are not compared: the target database was not reached"* ]]
    [[ $output == *"FAIL: $W/tampered.owlb: "*"does not match its hash in the manifest"* ]]
    # signed by a key this host does not trust
    tgt_ini "trusted_key = prod $K/other.key.pub"
    run --separate-stderr "$OWLSYNC" -c "$W/tgt.ini" check "$b"
    [ "$status" -eq 3 ]
    [[ $output == *"FAIL: $b: "* ]]

    # a table this host does not allow: the import's policy refusal, 4
    tgt_ini "tables = owl_rule, rule_repo"
    run --separate-stderr "$OWLSYNC" -c "$W/tgt.ini" check "$b"
    [ "$status" -eq 4 ]
    [[ $output == *"FAIL: $b: bundle carries table "*", which this environment does not allow"* ]]
    [[ $output == *"ok: the columns of owl_rule in $b fit the target"* ]]
    [ "$(tgt_state)" = "$before" ]

    # no [import] section: a usage error, said on stderr (and as --json's error object)
    run --separate-stderr "$OWLSYNC" -c "$W/src.ini" check "$b"
    [ "$status" -eq 2 ]
    [ "$output" = "" ]
    [ "$stderr" = "owlsync check: $W/src.ini has no [import] section: a bundle is checked against the target of an import
HINT: run check BUNDLE with the config of the host that imports it" ]
    jcheck "$W/src.ini" "$b"
    [ "$status" -eq 2 ]
    [ "$(jq_py 'd["status"], d["exit_code"]')" = "('failed', 2)" ]
    run --separate-stderr "$OWLSYNC" -c "$W/tgt.ini" check --bogus
    [ "$status" -eq 2 ]
}

@test "check: --help, the usage and bash completion know --json and BUNDLE" {
    run "$OWLSYNC" check --help
    [ "$status" -eq 0 ]
    [ "${lines[0]}" = "usage: owlsync [-c FILE] check [--json] [BUNDLE...]" ]
    [[ $output == *"  --json  print one JSON object"* ]]
    run "$OWLSYNC" --help
    [[ $output == *"  check [--json] [BUNDLE...]"* ]]
    touch "$W/a.owlb" "$W/notes.txt"
    run bash -c '. "$1"
        c() { COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMPREPLY=(); _owlsync; echo "${COMPREPLY[*]}"; }
        c owlsync check --j; cd "$2" && c owlsync check ""' _ "$BATS_TEST_DIRNAME/../../completion/owlsync.bash" "$W"
    [ "${lines[0]}" = "--json" ]
    [[ ${lines[1]} == *a.owlb* && ${lines[1]} != *notes.txt* ]] || { echo "$output"; false; }
}

@test "check BUNDLE: an encrypted bundle is opened with the config's decrypt_key, refused (exit 3) without it" {
    pair chkenc
    "$OWLSYNC" keygen --encryption -o "$W/qa.enc" >/dev/null 2>&1
    job sealed "public.ds_1" "encrypt_to=qa $W/qa.enc.pub"
    b=$(mkbundle sealed)
    run --separate-stderr "$OWLSYNC" -c "$W/tgt.ini" check "$b"
    [ "$status" -eq 3 ]
    [[ $output == *"FAIL: $b: "* ]]
    tgt_ini "decrypt_key = $W/qa.enc"
    run --separate-stderr "$OWLSYNC" -c "$W/tgt.ini" check "$b"
    [ "$status" -eq 0 ] || { echo "$output"; false; }
    [[ $output == *"ok: $b: verified, bundle 1 of prod/sealed"* ]]
    [[ $output == *"ok: the columns of owl_rule in $b fit the target"* ]]
}

@test "check: an import host's state_dir (the daemon's retries and last failure) must take files; an import by hand needs none" {
    pair chkst
    mkdir -p "$W/inbox"
    tgt_ini "inbox = $W/inbox"
    sed -i "s|^state_dir = .*|state_dir = $W/nowhere/state|" "$W/tgt.ini"
    run --separate-stderr "$OWLSYNC" -c "$W/tgt.ini" check
    [ "$status" -eq 1 ]
    [[ $output == *"FAIL: state_dir: $W/nowhere/state does not exist, nor does its parent directory $W/nowhere"* ]]
    # without an inbox (imports by hand) nothing is kept there
    tgt_ini
    sed -i "s|^state_dir = .*|state_dir = $W/nowhere/state|" "$W/tgt.ini"
    run --separate-stderr "$OWLSYNC" -c "$W/tgt.ini" check
    [ "$status" -eq 0 ]
    [[ $output != *"state_dir"* ]]
}

@test "check: a newer bundle in the quarantine (its column missing in the target) decides over an older processed one; a quarantined file that does not verify is passed over" {
    pair chkq
    job nightly "public.ds_1"
    mkdir -p "$W/inbox/processed" "$W/inbox/quarantine"
    b1=$(mkbundle nightly)
    mv "$b1" "$W/inbox/processed/"
    touch -d '-1 minute' "$W/inbox/processed/$(basename "$b1")"
    pg_query src "ALTER TABLE chkq.owl_rule ADD COLUMN extra_col text" >/dev/null
    b2=$(mkbundle nightly)
    mv "$b2" "$W/inbox/quarantine/"
    head -c 300 "$W/inbox/quarantine/$(basename "$b2")" >"$W/inbox/quarantine/zz_short.owlb"
    tgt_ini "inbox = $W/inbox"
    run --separate-stderr "$OWLSYNC" -c "$W/tgt.ini" check
    [ "$status" -eq 2 ]
    [[ $output == *"FAIL: bundle column owl_rule.extra_col (of $W/inbox/quarantine/$(basename "$b2")) does not exist in the target table chkq.owl_rule"* ]]
    [[ $output != *"zz_short"* ]]
    # the target takes the column: check passes
    pg_query tgt "ALTER TABLE chkq.owl_rule ADD COLUMN extra_col text" >/dev/null
    run --separate-stderr "$OWLSYNC" -c "$W/tgt.ini" check
    [ "$status" -eq 0 ] || { echo "$output"; false; }
}

@test "check BUNDLE: a dry run of its import finds what the columns cannot tell (a value too long for a narrower column): exit 2 as the import, nothing changes" {
    pair chkdr
    job nightly "public.ds_1"
    pg_query src "UPDATE chkdr.owl_check_repo SET agent_name = 'prod-agent-2' WHERE dataset = 'public.ds_1'" >/dev/null
    b=$(mkbundle nightly)
    run --separate-stderr "$OWLSYNC" -c "$W/tgt.ini" check "$b"
    [ "$status" -eq 0 ] || { echo "$output"; false; }
    [[ $output == *"ok: $b: a dry run of its import passes ("*" row(s) would change), rolled back"* ]]
    pg_query tgt "ALTER TABLE chkdr.owl_check_repo ALTER COLUMN agent_name TYPE varchar(3)" >/dev/null
    before=$(tgt_state)
    run --separate-stderr "$OWLSYNC" -c "$W/tgt.ini" check "$b"
    [ "$status" -eq 2 ]
    [[ $output == *"warning: "*"agent_name"* ]]
    [[ $output == *"FAIL: $b: a dry run of its import fails: "*"too long"* ]]
    [ "$(tgt_state)" = "$before" ]
    imp "$b"
    [ "$status" -eq 2 ]
    [ "$(tgt_state)" = "$before" ]
}
