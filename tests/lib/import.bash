# owlsync import test helpers (load ../lib/import after ../lib/pg and
# ../lib/owl): a source and a target schema of the stand-in metastore, their
# configs, export jobs, and what the target holds, as digests and counts.
#
# Uses W (the test's directory), K (the keys: prod.key), S (the schema, set by
# pair) and TABLES_INI (the [table] sections of both sides; TABLES_SRC, when
# set, for the source's).

# import_setup_file KEY… — for a file's setup_file: the source and target
# clusters, a scratch schema cmp in the target, and a key pair per KEY
# (prod, other, ...) in $BATS_FILE_TMPDIR/keys. Tests share the target's
# ledger (rollback checks): one test at a time.
import_setup_file() {
    local k
    if [ ! -x "$OWLSYNC" ]; then
        echo "no owlsync binary at $OWLSYNC (run make)" >&2
        return 1
    fi
    export BATS_NO_PARALLELIZE_WITHIN_FILE=true
    pg_start src
    pg_start tgt
    pg_query tgt "CREATE SCHEMA cmp" >/dev/null
    mkdir -p "$BATS_FILE_TMPDIR/keys"
    for k in "$@"; do
        "$OWLSYNC" keygen -o "$BATS_FILE_TMPDIR/keys/$k.key" >/dev/null 2>&1 || return 1
    done
}

# import_setup — for a test's setup: W, K and the output and state directories.
import_setup() {
    W=$BATS_TEST_TMPDIR
    K=$BATS_FILE_TMPDIR/keys
    mkdir -p "$W/out" "$W/state"
}

# pair SCHEMA [N] — SCHEMA in src holds the sample metastore (N bulk datasets,
# default 2), SCHEMA in tgt the same tables, empty; writes src.ini (no job yet)
# and tgt.ini (trusts the prod key for environment prod) for it.
pair() {
    S=$1
    pg_load_metastore src "${2:-2}" "$S"
    pg_load_schema tgt "$S"
    src_ini
    tgt_ini
}

# src_ini — the source's config (environment prod); its
# [table] sections are $TABLES_SRC if set, else $TABLES_INI.
src_ini() {
    cat >"$W/src.ini" <<EOF
[owlsync]
environment = prod
state_dir = $W/state
log_level = warn

[database]
conninfo = $(pg_conninfo src)
schema = $S
${TABLES_SRC:-$TABLES_INI}
EOF
}

# job NAME DATASETS [KEY=VALUE …] — appends [export NAME] to src.ini.
job() {
    local name=$1 ds=$2 kv
    shift 2
    {
        echo "[export $name]"
        echo "datasets = $ds"
        echo "outbox = $W/out"
        echo "signing_key = $K/prod.key"
        for kv in "$@"; do echo "${kv%%=*} = ${kv#*=}"; done
        echo
    } >>"$W/src.ini"
}

# tgt_ini [LINE …] — the target's config (environment qa); LINEs go into its
# [import] section; without a trusted_key line, the prod key is trusted for prod.
tgt_ini() {
    local l trust="trusted_key = prod $K/prod.key.pub"
    for l in "$@"; do [[ $l == trusted_key* ]] && trust=; done
    {
        echo "[owlsync]"
        echo "environment = qa"
        echo "state_dir = $W/tstate"
        echo "log_level = warn"
        echo
        echo "[database]"
        echo "conninfo = $(pg_conninfo tgt)"
        echo "schema = $S"
        echo "$TABLES_INI"
        echo "[import]"
        [ -z "$trust" ] || echo "$trust"
        for l in "$@"; do echo "$l"; done
    } >"$W/tgt.ini"
}

# mkbundle JOB — runs export job JOB of src.ini and prints the one bundle path.
mkbundle() { owl_export_one "$W/src.ini" "$1"; }

# expect_refusal CODE TEXT — the last imp exited CODE with TEXT in its one error line.
expect_refusal() {
    if [ "$status" -ne "$1" ] || [[ $stderr != *"owlsync import: "*"$2"* ]]; then
        echo "expected exit $1 and '$2', got $status: $stderr" >&2
        return 1
    fi
}

# digest_sql SCHEMA WHERE REPO_WHERE EXCLUDED — one query answering, for every
# table of SCHEMA, "TABLE ROWS MD5" as pg_digest does (rows matching WHERE,
# rule_repo's matching REPO_WHERE, as jsonb less the EXCLUDED columns, sorted).
# One query instead of one psql per table: psql startup dominates these tests.
digest_sql() {
    local t w sep=
    echo "SELECT d FROM ("
    for t in $OWL_TABLES; do
        w=$2
        [ "$t" != rule_repo ] || w=$3
        echo "$sep SELECT '$t ' || count(*) || ' ' || coalesce(md5(string_agg(r, E'\\n' ORDER BY r COLLATE \"C\")), '-')"
        echo "   FROM (SELECT (to_jsonb(t) - '{$4}'::text[])::text AS r FROM $1.$t t WHERE $w) s"
        sep="UNION ALL"
    done
    echo ") x(d) ORDER BY 1;"
}

# tgt_rows WHERE [REPO_WHERE] — digests (ids included) of tgt's rows of $S matching WHERE.
tgt_rows() {
    digest_sql "$S" "$1" "${2:-false}" _ | PGOPTIONS='-c timezone=UTC' pg_psql tgt -At
}

# tgt_state — digests of every table of $S in tgt (ids included) and of the ledger.
tgt_state() {
    local t
    {
        digest_sql "$S" true true _
        for t in bundles bundle_tables datasets dataset_tables; do
            echo "SELECT to_regclass('owlsync.$t') IS NOT NULL AS have_$t \\gset"
            echo "\\if :have_$t"
            echo "SELECT 'ledger.$t ' || count(*) || ' ' || coalesce(md5(string_agg(t::text, E'\\n' ORDER BY t::text COLLATE \"C\")), '-') FROM owlsync.$t t;"
            printf '%s\n' '\endif'
        done
    } | PGOPTIONS='-c timezone=UTC' pg_psql tgt -At
}

# ledger_counts BUNDLE TABLE — "rows inserted updated deleted unchanged" kept for it.
ledger_counts() {
    pg_query tgt "SELECT concat_ws(' ', t.rows, t.inserted, t.updated, t.deleted, t.unchanged)
                  FROM owlsync.bundle_tables t
                  WHERE t.bundle_id = '$(owl_bundle_id "$1")' AND t.table_name = '$2'"
}

# printed_counts TABLE INS UPD DEL UNCH — the last imp's report has that line.
printed_counts() {
    if ! grep -Eq "^ +$1 +$2 +$3 +$4 +$5\$" <<<"$output"; then
        echo "no line '$1 $2 $3 $4 $5' in the report:" >&2
        echo "$output" >&2
        return 1
    fi
}

# same_as_src WHERE [REPO_WHERE] — for every table of $S, the rows matching
# WHERE (rule_repo: REPO_WHERE, default all) are equal in src and tgt, ids aside.
same_as_src() {
    local q a b
    q=$(digest_sql "$S" "$1" "${2:-true}" id)
    a=$(PGOPTIONS='-c timezone=UTC' pg_psql src -At <<<"$q")
    b=$(PGOPTIONS='-c timezone=UTC' pg_psql tgt -At <<<"$q")
    if [ "$a" != "$b" ] || [ -z "$a" ]; then
        echo "src and tgt differ where $1:" >&2
        diff <(echo "$a") <(echo "$b") >&2
        return 1
    fi
}

# except_both TABLE WHERE — copies src's rows of $S.TABLE matching WHERE (all
# columns but id) into tgt and prints "ROWS MISSING EXTRA": rows, rows of src
# not in tgt and rows of tgt not in src (SQL EXCEPT ALL both ways).
except_both() {
    local t=$1 w=$2 cols
    cols=$(pg_query tgt "SELECT string_agg(quote_ident(column_name), ', ' ORDER BY ordinal_position)
                         FROM information_schema.columns
                         WHERE table_schema = '$S' AND table_name = '$t' AND column_name <> 'id'")
    pg_psql tgt -c "SET client_min_messages = warning" -c "DROP TABLE IF EXISTS cmp.src_rows" \
        -c "CREATE TABLE cmp.src_rows AS SELECT $cols FROM $S.$t WITH NO DATA" >/dev/null
    pg_psql src -c "COPY (SELECT $cols FROM $S.$t WHERE $w) TO STDOUT" |
        pg_psql tgt -c "COPY cmp.src_rows FROM STDIN"
    pg_query tgt "SELECT (SELECT count(*) FROM cmp.src_rows) || ' ' ||
        (SELECT count(*) FROM (SELECT * FROM cmp.src_rows EXCEPT ALL SELECT $cols FROM $S.$t WHERE $w) a) || ' ' ||
        (SELECT count(*) FROM (SELECT $cols FROM $S.$t WHERE $w EXCEPT ALL SELECT * FROM cmp.src_rows) b)"
}

# tgt1 SQL — one value from tgt.
tgt1() { pg_query tgt "$1"; }
