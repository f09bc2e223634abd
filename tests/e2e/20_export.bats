#!/usr/bin/env bats
# owlsync export, end to end, against a throwaway PostgreSQL cluster: which rows
# travel (compared with the source in SQL, every special value included), the
# manifest, snapshot consistency under concurrent edits, skip_unchanged and
# sequence numbers, several outboxes, every error case, and SIGKILL part-way.
#
# One cluster "src" holds two metastores: schema public (20 bulk datasets, plus
# public.special with the hostile values and public.o'hara) and schema big
# ($BIG bulk datasets, so that an export takes about a second).

bats_require_minimum_version 1.5.0
load ../lib/pg

BIG=2000
DEFAULT_TABLES='rule_repo owl_catalog owl_rule alert_cond owl_check_repo job_schedule alert_output'

setup_file() {
    export OWLSYNC=${OWLSYNC:-$BATS_TEST_DIRNAME/../../owlsync}
    [ -x "$OWLSYNC" ] || { echo "no owlsync binary at $OWLSYNC (run make)" >&2; return 1; }
    command -v bsdtar >/dev/null || { echo "bsdtar missing (make deps: libarchive-tools)" >&2; return 1; }
    pg_start src
    pg_load_metastore src 20
    pg_load_metastore src "$BIG" big
    "$OWLSYNC" keygen -o "$BATS_FILE_TMPDIR/k" >/dev/null 2>&1
    "$OWLSYNC" keygen -o "$BATS_FILE_TMPDIR/other" >/dev/null 2>&1
}

teardown_file() {
    pg_stop_all
}

setup() {
    OWLSYNC=${OWLSYNC:-$BATS_TEST_DIRNAME/../../owlsync}
    W=$BATS_TEST_TMPDIR
    OUT=$W/out
    INI=$W/owlsync.ini
    KEY=$BATS_FILE_TMPDIR/k
    SRC=$(pg_conninfo src)
    mkdir -p "$OUT"
}

teardown() {
    if [ -n "${LOOP_PID:-}" ]; then             # the consistency test's editor
        pg_query src 'INSERT INTO ctl.stop VALUES (1)' || true
        wait "$LOOP_PID" || true
    fi
    if [ -n "${NB:-}" ]; then rm -rf "$NB"; fi  # the unprivileged user's directory
}

# ----------------------------------------------------------------- helpers

# write_ini [CONNINFO [SCHEMA]] — writes $INI: [owlsync] (environment prod,
# state in $W/state) and [database], then the sections read from stdin.
write_ini() {
    {
        printf '[owlsync]\nenvironment = prod\nstate_dir = %s\n' "$W/state"
        printf '[database]\nconninfo = %s\nschema = %s\n' "${1:-$SRC}" "${2:-public}"
        cat
    } >"$INI"
}

# job_ini JOB DATASETS [LINE…] — write_ini (with $CONNINFO and $SCHEMA when set)
# and one [export JOB] of DATASETS into $OUT signed by $KEY; each LINE follows
# it (more keys of the job, or further sections).
job_ini() {
    local job=$1 ds=$2
    shift 2
    {
        printf '[export %s]\ndatasets = %s\noutbox = %s\nsigning_key = %s\n' "$job" "$ds" "$OUT" "$KEY"
        if [ $# -gt 0 ]; then printf '%s\n' "$@"; fi
    } | write_ini "${CONNINFO:-}" "${SCHEMA:-}"
}

# owl_export ARGS… — runs `owlsync -c $INI export ARGS…` with bats' run:
# $status, $output (stdout: the bundle paths) and $stderr.
owl_export() {
    run --separate-stderr "$OWLSYNC" -c "$INI" export "$@"
    echo "export $*: exit $status"
    echo "stdout: $output"
    echo "stderr: $stderr"
}

# fails_with CODE TEXT [DIR…] — the last run exited CODE, printed no path, and
# printed exactly one "owlsync export: " line, which contains TEXT; $OUT and
# every DIR hold no file at all.
fails_with() {
    local code=$1 text=$2 lines
    shift 2
    [ "$status" -eq "$code" ] || { echo "want exit $code"; return 1; }
    [ -z "$output" ] || { echo "want no path on stdout"; return 1; }
    lines=$(grep '^owlsync export: ' <<<"$stderr" || true)
    [ -n "$lines" ] && [ "$(wc -l <<<"$lines")" -eq 1 ] || { echo "want one error line"; return 1; }
    [[ $lines == *"$text"* ]] || { echo "want error line with: $text"; return 1; }
    no_files "$OUT" "$@"
}

# no_files DIR… — every DIR is empty (no bundle, no temporary file).
no_files() {
    local d
    for d in "$@"; do
        [ -z "$(ls -A "$d" 2>/dev/null)" ] || { echo "left in $d: $(ls -A "$d")"; return 1; }
    done
}

# mq BUNDLE EXPR — the value of SQL expression EXPR over m, the bundle's manifest.json as jsonb.
mq() {
    local json
    json=$(bsdtar -xOf "$1" manifest.json) || return 1
    pg_psql src -At -v m="$json" <<<"SELECT $2 FROM (SELECT :'m'::jsonb AS m) s"
}

# same_rows BUNDLE PREDICATE — loads every data file of BUNDLE into a scratch
# table (the manifest's columns) and compares it, EXCEPT ALL both ways on each
# row's text form, with the rows of the source table (in the manifest's schema)
# whose dataset column d satisfies PREDICATE, an SQL condition on d (a global
# table: every row).  Also checks manifest rows = source count = rows loaded > 0.
# Prints "TABLE=ROWS …" in bundle order; fails on any difference.
same_rows() {
    local b=$1 pred=$2 json plan sql=$W/same_rows.sql i=0 name file dcol cols rows qt where result
    local man src bun miss extra ex summary= bad=
    json=$(bsdtar -xOf "$b" manifest.json) || return 1
    plan=$(pg_psql src -At -F $'\x1f' -v m="$json" <<'SQL'
SELECT t->>'name', t->>'file', coalesce(quote_ident(nullif(t->>'dataset_column', '')), ''),
       (SELECT string_agg(quote_ident(c->>'name'), ', ' ORDER BY o)
        FROM jsonb_array_elements(t->'columns') WITH ORDINALITY AS c(c, o)),
       t->>'rows', quote_ident(m->>'schema') || '.' || quote_ident(t->>'name')
FROM (SELECT :'m'::jsonb AS m) s, jsonb_array_elements(m->'tables') WITH ORDINALITY AS x(t, n)
ORDER BY n
SQL
    ) || return 1
    {
        echo "CREATE TEMP TABLE cmp_result (n int, name text, manifest bigint, source bigint,"
        echo "    bundle bigint, missing bigint, extra bigint, example text);"
        while IFS=$'\x1f' read -r name file dcol cols rows qt; do
            i=$((i + 1))
            where=true
            if [ -n "$dcol" ]; then where="(SELECT $pred FROM (VALUES (s.$dcol)) AS z(d))"; fi
            echo "CREATE TEMP TABLE cmp_$i AS SELECT $cols FROM $qt WITH NO DATA;"
            echo "COPY cmp_$i ($cols) FROM STDIN;"
            bsdtar -xOf "$b" "$file"
            echo '\.'
            cat <<SQL
INSERT INTO cmp_result
SELECT $i, '${name//\'/\'\'}', $rows,
       (SELECT count(*) FROM $qt s WHERE $where),
       (SELECT count(*) FROM cmp_$i),
       (SELECT count(*) FROM (SELECT ROW($cols)::text FROM $qt s WHERE $where
                              EXCEPT ALL SELECT ROW($cols)::text FROM cmp_$i) x),
       (SELECT count(*) FROM (SELECT ROW($cols)::text FROM cmp_$i
                              EXCEPT ALL SELECT ROW($cols)::text FROM $qt s WHERE $where) x),
       (SELECT to_json(string_agg(r, ' // '))::text FROM (
            (SELECT 'source: ' || ROW($cols)::text AS r FROM $qt s WHERE $where
             EXCEPT ALL SELECT 'source: ' || ROW($cols)::text FROM cmp_$i LIMIT 2)
            UNION ALL
            (SELECT 'bundle: ' || ROW($cols)::text FROM cmp_$i
             EXCEPT ALL SELECT 'bundle: ' || ROW($cols)::text FROM $qt s WHERE $where LIMIT 2)) y);
SQL
        done <<<"$plan"
        echo "SELECT name, manifest, source, bundle, missing, extra, example FROM cmp_result ORDER BY n;"
    } >"$sql"
    result=$(pg_psql src -At -f "$sql") || return 1
    while IFS='|' read -r name man src bun miss extra ex; do
        summary+="$name=$src "
        if [ "$man" != "$src" ] || [ "$bun" != "$src" ] || [ "$src" -eq 0 ] || [ "$miss" != 0 ] || [ "$extra" != 0 ]; then
            echo "$name: manifest $man rows, source $src, bundle $bun; $miss missing, $extra extra: $ex"
            bad=1
        fi
    done <<<"$result"
    echo "${summary% }"
    [ -z "$bad" ]
}

# key_id PUBFILE — first 8 bytes of BLAKE2b-256 of the public key, in hex (DESIGN 3.3).
key_id() {
    sed 's/^owlsync-ed25519://' "$1" | base64 -d | b2sum -l 256 | cut -c1-16
}

# ----------------------------------------------------------------- what travels

@test "one dataset, the vendor's default tables: rows equal the source exactly, hostile values included" {
    job_ini one "$OWL_SPECIAL_DATASET"
    owl_export -j one
    [ "$status" -eq 0 ]
    b=$output
    [[ $b == "$OUT"/prod_one_*_000001.owlb ]] && [ -f "$b" ]
    [ "$(mq "$b" "m->'datasets'")" = '["public.special"]' ]
    run same_rows "$b" "d = 'public.special'"
    echo "$output"
    [ "$status" -eq 0 ]
    # the default set, in order; rule_repo (global) travels whole
    [ "$output" = "rule_repo=12 owl_catalog=1 owl_rule=8 alert_cond=2 owl_check_repo=1 job_schedule=1 alert_output=1" ]
    # each table's rows were compressed as they streamed, in a zstd frame of
    # their own, between the frames of the tar headers: 2 a table, and the end
    [ "$(zstd -lv "$b" 2>/dev/null | awk '/Zstandard Frames:/ { print $NF }')" = 15 ]
    zstd -tq "$b"
    # a hostile value arrives byte for byte (and the comparison is not vacuous)
    [ "$(pg_psql src -At <<SQL
CREATE TEMP TABLE r (LIKE owl_rule);
ALTER TABLE r DROP COLUMN id;
COPY r FROM STDIN;
$(bsdtar -xOf "$b" data/owl_rule.tsv)
\.
SELECT encode(convert_to(rule_value, 'UTF8'), 'hex') FROM r WHERE rule_nm = 'quotes_and_controls';
SQL
)" = "$(printf '%s' "$OWL_SPECIAL_CONTROLS" | od -An -v -tx1 | tr -d ' \n')" ]
    # the comparison notices a changed source row
    pg_query src "UPDATE owl_rule SET points = points + 1000 WHERE dataset = 'public.special' AND rule_nm = 'unicode'"
    run same_rows "$b" "d = 'public.special'"
    echo "$output"
    pg_query src "UPDATE owl_rule SET points = points - 1000 WHERE dataset = 'public.special' AND rule_nm = 'unicode'"
    [ "$status" -ne 0 ]
    [[ $output == *"owl_rule: manifest 8 rows, source 8, bundle 8; 1 missing, 1 extra"* ]]
}

@test "several datasets ad hoc (-d), one with a quote in its name; no other dataset's rows" {
    job_ini nightly public.nosuch
    owl_export -d "public.ds_1,public.ds_2,public.o'hara" -o "$OUT"
    [ "$status" -eq 0 ]
    b=$output
    [[ $b =~ ^$OUT/prod_adhoc_[0-9]{8}T[0-9]{6}Z_000001\.owlb$ ]]
    [ "$(mq "$b" "concat_ws('|', m->>'job', m->'datasets', m->'targets')")" = \
      "adhoc|[\"public.ds_1\", \"public.ds_2\", \"public.o'hara\"]|[]" ]
    run same_rows "$b" "d IN ('public.ds_1', 'public.ds_2', 'public.o''hara')"
    echo "$output"
    [ "$status" -eq 0 ]
    [ "$output" = "rule_repo=12 owl_catalog=3 owl_rule=41 alert_cond=6 owl_check_repo=2 job_schedule=2 alert_output=12" ]
}

@test "a LIKE pattern with a name: public.ds_1% and public.special" {
    job_ini pat "public.ds_1%, public.special"
    owl_export -j pat
    [ "$status" -eq 0 ]
    b=$output
    [ "$(mq "$b" "(SELECT string_agg(d, ' ') FROM jsonb_array_elements_text(m->'datasets') d)")" = \
      "public.ds_1 public.ds_10 public.ds_11 public.ds_12 public.ds_13 public.ds_14 public.ds_15 public.ds_16 public.ds_17 public.ds_18 public.ds_19 public.special" ]
    run same_rows "$b" "d LIKE 'public.ds\\_1%' OR d = 'public.special'"
    echo "$output"
    [ "$status" -eq 0 ]
    [ "$output" = "rule_repo=12 owl_catalog=12 owl_rule=228 alert_cond=35 owl_check_repo=12 job_schedule=12 alert_output=67" ]
}

@test "a table subset (-t) travels alone" {
    job_ini nightly public.ds_1
    owl_export -d public.ds_2 -t job_schedule,owl_rule -o "$OUT"
    [ "$status" -eq 0 ]
    b=$output
    run same_rows "$b" "d = 'public.ds_2'"
    echo "$output"
    [ "$status" -eq 0 ]
    [ "$output" = "owl_rule=20 job_schedule=1" ]
    [ "$(bsdtar -tf "$b" | tr '\n' ' ')" = "manifest.json manifest.sig data/owl_rule.tsv data/job_schedule.tsv " ]
}

@test "[table] sections: only they travel, dataset_schema and dataset_scoring too; generated columns are left out" {
    job_ini conf "$OWL_SPECIAL_DATASET" \
        '[table rule_repo]' 'dataset_column =' 'generated = id' \
        '[table owl_rule]' 'generated = id, updt_ts' \
        '[table dataset_schema]' '[table dataset_scoring]'
    owl_export -j conf
    [ "$status" -eq 0 ]
    b=$output
    run same_rows "$b" "d = 'public.special'"
    echo "$output"
    [ "$status" -eq 0 ]
    [ "$output" = "rule_repo=12 owl_rule=8 dataset_schema=3 dataset_scoring=1" ]
    cols="(SELECT string_agg(c->>'name', ',') FROM jsonb_array_elements(m->'tables'->%s->'columns') c)"
    [ "$(mq "$b" "$(printf "$cols" 0)")" = "rule_nm,rule_type,rule_value,rule_desc,rule_category,dimension,points,perc,params,is_active,user_nm,updt_ts" ]
    [ "$(mq "$b" "$(printf "$cols" 1)")" = "dataset,rule_nm,rule_type,rule_value,rule_repo,filter_query,points,perc,score,is_active,run_time_limit,rule_category,dimension,user_nm,params" ]
    [ "$(mq "$b" "$(printf "$cols" 2)")" = "id,dataset,col_nm,col_type,col_pos,col_precision,col_scale,is_nullable,is_key,col_desc,col_tags,updt_ts" ]
    [ "$(mq "$b" "m->'tables'->0->>'dataset_column'")" = "" ]
    [ "$(bsdtar -xOf "$b" data/owl_rule.tsv | awk -F'\t' '{ print NF }' | sort -u)" = 15 ]
}

@test "manifest: environment, job, sequence, targets, datasets, rows, hashes, snapshot_at; verify -k passes" {
    job_ini nightly "public.ds_1, public.ds_2" "targets = qa, uat"
    t0=$(date -u +%Y-%m-%dT%H:%M:%S.%6NZ)
    owl_export -j nightly
    [ "$status" -eq 0 ]
    t1=$(date -u +%Y-%m-%dT%H:%M:%S.%6NZ)
    b=$output
    name=$(basename "$b")
    [ "$(mq "$b" "concat_ws('|', m->>'format', m->>'version', m->>'environment', m->>'job', m->>'sequence',
                            m->'targets', m->'datasets', m->>'schema', m->>'key_id', length(m->>'bundle_id'))")" = \
      "owlsync-bundle|1|prod|nightly|1|[\"qa\", \"uat\"]|[\"public.ds_1\", \"public.ds_2\"]|public|$(key_id "$KEY.pub")|32" ]
    # snapshot_at is the source transaction's time, taken during the run; the
    # file name carries created_at; expires_at is 7 days later by default
    got=$(mq "$b" "concat_ws('|',
        (m->>'snapshot_at')::timestamptz BETWEEN '$t0' AND '$t1',
        (m->>'created_at')::timestamptz BETWEEN (m->>'snapshot_at')::timestamptz AND '$t1',
        (m->>'expires_at')::timestamptz - (m->>'created_at')::timestamptz,
        'prod_nightly_' || to_char((m->>'created_at')::timestamptz AT TIME ZONE 'UTC', 'YYYYMMDD\"T\"HH24MISS\"Z\"') || '_000001.owlb')")
    echo "times: $got ($t0 .. $t1)"
    [ "$got" = "t|t|7 days|$name" ]
    # rows equal SELECT count(*) (same_rows), and bytes and blake2b describe each data file
    run same_rows "$b" "d IN ('public.ds_1', 'public.ds_2')"
    echo "$output"
    [ "$status" -eq 0 ]
    [ "$output" = "rule_repo=12 owl_catalog=2 owl_rule=40 alert_cond=6 owl_check_repo=2 job_schedule=2 alert_output=12" ]
    mq "$b" "(SELECT string_agg(concat_ws(' ', t->>'name', t->>'bytes', t->>'blake2b'), E'\n' ORDER BY n)
              FROM jsonb_array_elements(m->'tables') WITH ORDINALITY x(t, n))" >"$W/want"
    for t in $DEFAULT_TABLES; do
        echo "$t $(bsdtar -xOf "$b" "data/$t.tsv" | wc -c) $(bsdtar -xOf "$b" "data/$t.tsv" | b2sum -l 256 | cut -d' ' -f1)"
    done >"$W/have"
    diff "$W/want" "$W/have"
    # signed by the job's key: verify -k passes, another key fails
    run "$OWLSYNC" verify -k "$KEY.pub" "$b"
    [ "$status" -eq 0 ]
    [[ $output == *"ok, signed by key $(key_id "$KEY.pub")"* ]]
    run "$OWLSYNC" verify -k "$BATS_FILE_TMPDIR/other.pub" "$b"
    [ "$status" -eq 3 ]
    # inspect --json shows the same manifest
    run --separate-stderr "$OWLSYNC" inspect --json "$b"
    [ "$status" -eq 0 ]
    [ "$(pg_psql src -At -v i="$output" -v m="$(bsdtar -xOf "$b" manifest.json)" <<<"SELECT :'i'::jsonb->'manifest' = :'m'::jsonb")" = t ]
}

# ----------------------------------------------------------------- consistency

@test "consistency: an edit committed while exports run is wholly in a bundle or wholly out" {
    SCHEMA=big job_ini live 'public.ds_%' 'skip_unchanged = false'
    pg_psql src -c 'SET client_min_messages = warning' -c 'DROP SCHEMA IF EXISTS ctl CASCADE' -c 'CREATE SCHEMA ctl' -c 'CREATE TABLE ctl.stop (x int)' \
        -c "UPDATE big.rule_repo SET rule_desc = 'marker 0' WHERE rule_nm = 'not_null'"
    # Each transaction sets one marker in the first table exported (rule_repo),
    # in the largest (owl_rule, in the middle) and in the last (alert_output).
    # Bounded: 20 s, 100000 transactions, or the stop row.
    pg_psql src -c "DO \$\$
        DECLARE i int := 0; t0 timestamptz := clock_timestamp();
        BEGIN
            LOOP
                i := i + 1;
                UPDATE big.rule_repo SET rule_desc = 'marker ' || i WHERE rule_nm = 'not_null';
                UPDATE big.owl_rule SET rule_value = 'marker ' || i
                    WHERE dataset = 'public.ds_1000' AND rule_nm = 'rule_7';
                UPDATE big.alert_output SET output = 'marker ' || i WHERE dataset = 'public.ds_$BIG';
                COMMIT;
                EXIT WHEN i >= 100000 OR clock_timestamp() > t0 + interval '20 s'
                          OR EXISTS (SELECT FROM ctl.stop);
                PERFORM pg_sleep(0.001);
            END LOOP;
        END \$\$" >"$W/loop.log" 2>&1 3>&- &
    LOOP_PID=$!
    for ((i = 0; i < 50; i++)); do
        [ "$(pg_query src "SELECT rule_desc FROM big.rule_repo WHERE rule_nm = 'not_null'")" != 'marker 0' ] && break
        sleep 0.1
    done
    bundles=()
    for run_no in 1 2 3 4; do           # (not i: bats' run uses a global i)
        # one connection, then two on one exported snapshot, in turn
        SCHEMA=big job_ini live 'public.ds_%' 'skip_unchanged = false' "parallel = $((run_no % 2 + 1))"
        owl_export -j live
        [ "$status" -eq 0 ]
        bundles+=("$output")
    done
    kill -0 "$LOOP_PID"                 # still editing when the last export ended
    pg_query src 'INSERT INTO ctl.stop VALUES (1)'
    wait "$LOOP_PID"
    LOOP_PID=
    # the marker columns are where the awk below looks
    # (the default tables leave their id out: the target assigns its own)
    [ "$(mq "${bundles[0]}" "(SELECT string_agg(t->'columns'->3->>'name', ' ' ORDER BY n) || ' ' || (m->'tables'->6->'columns'->4->>'name')
                              FROM jsonb_array_elements(m->'tables') WITH ORDINALITY x(t, n) WHERE n IN (1, 3))")" = "rule_desc rule_value output" ]
    seen=()
    for b in "${bundles[@]}"; do
        markers=$({
            bsdtar -xOf "$b" data/rule_repo.tsv | awk -F'\t' '$1 == "not_null" { print $4 }'
            bsdtar -xOf "$b" data/owl_rule.tsv | awk -F'\t' '$1 == "public.ds_1000" && $2 == "rule_7" { print $4 }'
            bsdtar -xOf "$b" data/alert_output.tsv | awk -F'\t' -v ds="public.ds_$BIG" '$1 == ds { print $5 }'
        })
        echo "$b: $(sort <<<"$markers" | uniq -c | tr '\n' ' ')"
        [ "$(wc -l <<<"$markers")" -eq 8 ]                  # 1 + 1 + 6 rows
        [ "$(sort -u <<<"$markers" | wc -l)" -eq 1 ]        # one transaction's value in all three tables
        [[ $(head -1 <<<"$markers") =~ ^marker\ [1-9][0-9]*$ ]]
        seen+=("$(head -1 <<<"$markers")")
    done
    # edits were committed while the exports ran
    [ "$(printf '%s\n' "${seen[@]}" | sort -u | wc -l)" -ge 2 ]
}

@test "parallel = 2: the rows of one connection, read on two in one snapshot; skip_unchanged sees the same content" {
    SCHEMA=big job_ini par 'public.ds_%' 'parallel = 1'
    owl_export -j par
    [ "$status" -eq 0 ]
    one=$output
    sed -i 's/^parallel = 1$/parallel = 2/' "$INI"
    grep -q '^parallel = 2$' "$INI"
    # the same content, in another order: skip_unchanged publishes nothing
    owl_export -j par
    [ "$status" -eq 0 ]
    [ -z "$output" ]
    [ "$(ls "$OUT" | wc -l)" -eq 1 ]
    sed -i 's/^skip_unchanged = .*//; /^\[export par\]/a skip_unchanged = false' "$INI"
    owl_export -j par
    [ "$status" -eq 0 ]
    two=$output
    run "$OWLSYNC" verify -k "$KEY.pub" "$two"
    [ "$status" -eq 0 ]
    for t in $DEFAULT_TABLES; do
        a=$(bsdtar -xOf "$one" "data/$t.tsv" | sort | md5sum)
        b=$(bsdtar -xOf "$two" "data/$t.tsv" | sort | md5sum)
        [ "$a" = "$b" ] || { echo "$t differs between parallel = 1 and 2" >&2; return 1; }
    done
    # owl_rule (40k rows) was read in two parts: every other dataset each
    [ "$(bsdtar -xOf "$one" data/owl_rule.tsv | md5sum)" != "$(bsdtar -xOf "$two" data/owl_rule.tsv | md5sum)" ]
}

# ----------------------------------------------------------------- sequences

@test "skip_unchanged: nothing published while the content is unchanged; an edit publishes sequence 2" {
    job_ini nightly public.ds_3 'skip_unchanged = true'
    owl_export -j nightly
    [ "$status" -eq 0 ]
    b1=$output
    [[ $(basename "$b1") =~ ^prod_nightly_[0-9]{8}T[0-9]{6}Z_000001\.owlb$ ]]
    owl_export -j nightly
    [ "$status" -eq 0 ]
    [ -z "$output" ]
    [[ $stderr == *unchanged* ]]
    [ "$(ls -A "$OUT")" = "$(basename "$b1")" ]
    # an edit in a dataset the job does not export changes nothing
    pg_query src "UPDATE owl_rule SET points = points + 1 WHERE dataset = 'public.ds_4' AND rule_nm = 'rule_1'"
    owl_export -j nightly
    [ "$status" -eq 0 ]
    [ -z "$output" ]
    [[ $stderr == *unchanged* ]]
    # an edit of the same size in the job's dataset is seen
    [ "$(pg_query src "SELECT points FROM owl_rule WHERE dataset = 'public.ds_3' AND rule_nm = 'rule_1'")" = 2 ]
    pg_query src "UPDATE owl_rule SET points = 3 WHERE dataset = 'public.ds_3' AND rule_nm = 'rule_1'"
    owl_export -j nightly
    [ "$status" -eq 0 ]
    b2=$output
    [[ $(basename "$b2") =~ ^prod_nightly_[0-9]{8}T[0-9]{6}Z_000002\.owlb$ ]]
    [ "$(mq "$b2" "m->>'sequence'")" = 2 ]
    [ "$(ls -A "$OUT" | wc -l)" -eq 2 ]
    run same_rows "$b2" "d = 'public.ds_3'"
    echo "$output"
    [ "$status" -eq 0 ]
}

# ----------------------------------------------------------------- outboxes

@test "several outboxes: each gets the bundle; a bad one is reported and the others still get it" {
    mkdir "$W/o1" "$W/o2"
    job_ini multi public.ds_5 "outbox = $W/o1" "outbox = $W/o2" 'skip_unchanged = false'
    owl_export -j multi
    [ "$status" -eq 0 ]
    mapfile -t paths <<<"$output"
    [ "${#paths[@]}" -eq 3 ]
    name=$(basename "${paths[0]}")
    [[ $name == prod_multi_*_000001.owlb ]]
    [ "${paths[*]}" = "$OUT/$name $W/o1/$name $W/o2/$name" ]
    cmp "$OUT/$name" "$W/o1/$name"
    cmp "$OUT/$name" "$W/o2/$name"
    # the middle outbox is a regular file now
    : >"$W/notadir"
    job_ini multi public.ds_5 "outbox = $W/notadir" "outbox = $W/o2" 'skip_unchanged = false'
    owl_export -j multi
    [ "$status" -eq 1 ] || [ "$status" -eq 2 ]
    [ "$(grep -c '^owlsync export: ' <<<"$stderr")" -eq 1 ]
    [[ $(grep '^owlsync export: ' <<<"$stderr") == *"$W/notadir"* ]]
    mapfile -t paths <<<"$output"
    [ "${#paths[@]}" -eq 2 ]
    name2=$(basename "${paths[0]}")
    [[ $name2 == prod_multi_*_000002.owlb ]]
    [ "${paths[*]}" = "$OUT/$name2 $W/o2/$name2" ]
    [ "$(ls -A "$OUT" | tr '\n' ' ')" = "$name $name2 " ]
    [ "$(ls -A "$W/o2" | tr '\n' ' ')" = "$name $name2 " ]
    [ -f "$W/notadir" ] && [ ! -s "$W/notadir" ]
    "$OWLSYNC" verify -k "$KEY.pub" "$W/o2/$name2"
}

# ----------------------------------------------------------------- errors

@test "error: unreachable database — exit 1, one line naming it, no file" {
    mkdir "$W/nosock"
    CONNINFO="host=$W/nosock port=5432 user=postgres dbname=owl" job_ini j public.ds_1
    owl_export -j j
    fails_with 1 "cannot connect to the source database: connection to server on socket \"$W/nosock/.s.PGSQL.5432\" failed"
}

@test "error: missing table, missing dataset column, missing generated column — exit 2, no file" {
    job_ini j public.ds_1 '[table owl_rule]' '[table nosuch]'
    owl_export -j j
    fails_with 2 "table public.nosuch does not exist"
    job_ini j public.ds_1 '[table owl_rule]' 'dataset_column = nosuch'
    owl_export -j j
    fails_with 2 "column nosuch does not exist in public.owl_rule"
    job_ini j public.ds_1 '[table owl_rule]' 'generated = id, nosuch'
    owl_export -j j
    fails_with 2 "column nosuch does not exist in public.owl_rule"
    [ ! -e "$W/state/export-j.state" ]
}

@test "error: permission denied — exit 2 (the grants, no retry), one line naming the table, no file" {
    pg_psql src <<'SQL'
SET client_min_messages = warning;
DROP ROLE IF EXISTS owl_partial;
CREATE ROLE owl_partial LOGIN;
GRANT USAGE ON SCHEMA public TO owl_partial;
GRANT SELECT ON rule_repo, owl_catalog, owl_rule, alert_cond, owl_check_repo, job_schedule TO owl_partial;
SQL
    CONNINFO="${SRC/user=postgres/user=owl_partial}" job_ini j public.ds_1
    owl_export -j j
    fails_with 2 "permission denied for table alert_output"
    # with SELECT on every table the same role exports
    pg_query src 'GRANT SELECT ON alert_output TO owl_partial'
    owl_export -j j
    [ "$status" -eq 0 ]
    [[ $output == "$OUT"/prod_j_*_000001.owlb ]]
}

@test "error: unwritable outbox, unreadable signing key (as an unprivileged user) — no file" {
    # as root every access check passes: run as nobody, from a directory of its own
    [ "$(id -u)" -eq 0 ] || skip "needs root to run owlsync as nobody"
    NB=$(mktemp -d /tmp/owlsync-export-test.XXXXXX)
    chmod 0755 "$NB"
    cp "$OWLSYNC" "$NB/owlsync"
    install -o nobody -m 0600 "$KEY" "$NB/nobody.key"
    mkdir "$NB/rootonly" "$NB/state" "$NB/open"
    chown nobody "$NB/state" "$NB/open"
    nb_export() { # OUTBOX KEY — runs export -j j as nobody
        printf '[owlsync]\nenvironment = prod\nstate_dir = %s\n[database]\nconninfo = %s\n' "$NB/state" "$SRC" >"$NB/owlsync.ini"
        printf '[export j]\ndatasets = public.ds_1\noutbox = %s\nsigning_key = %s\n' "$1" "$2" >>"$NB/owlsync.ini"
        run --separate-stderr runuser -u nobody -- "$NB/owlsync" -c "$NB/owlsync.ini" export -j j
        echo "exit $status; stdout: $output; stderr: $stderr"
    }
    nb_export "$NB/rootonly" "$NB/nobody.key"
    fails_with 1 "outbox $NB/rootonly is not writable: Permission denied" "$NB/rootonly"
    # a writable outbox, but a key only root may read
    nb_export "$NB/open" "$KEY"
    fails_with 2 "$KEY: Permission denied" "$NB/open"
    # the same user exports with a key and an outbox of its own
    nb_export "$NB/open" "$NB/nobody.key"
    [ "$status" -eq 0 ]
    [[ $output == "$NB/open"/prod_j_*_000001.owlb ]]
}

@test "error: outbox a regular file, or missing — exit 2 or 1, no file" {
    : >"$W/afile"
    job_ini j public.ds_1
    sed -i "s|^outbox = .*|outbox = $W/afile|" "$INI"
    owl_export -j j
    fails_with 2 "outbox $W/afile is not a directory"
    [ ! -s "$W/afile" ]
    sed -i "s|^outbox = .*|outbox = $W/missing|" "$INI"
    owl_export -j j
    fails_with 1 "outbox $W/missing: No such file or directory"
    [ ! -e "$W/missing" ]
    [ ! -e "$W/state/export-j.state" ]
}

@test "error: missing signing key, key readable by others (0644), no signing key — exit 2, no file" {
    job_ini j public.ds_1
    sed -i "s|^signing_key = .*|signing_key = $W/nokey|" "$INI"
    owl_export -j j
    fails_with 2 "cannot open key file $W/nokey: No such file or directory"
    install -m 0644 "$KEY" "$W/k644"
    sed -i "s|^signing_key = .*|signing_key = $W/k644|" "$INI"
    owl_export -j j
    fails_with 2 "secret key $W/k644 is accessible by group or others (mode 0644)"
    sed -i "/^signing_key = /d" "$INI"
    owl_export -j j
    fails_with 2 "export job j has no signing_key"
    [ ! -e "$W/state/export-j.state" ]
}

@test "error: a dataset name that matches nothing — exit 2 naming it; a pattern that matches nothing — exit 2" {
    job_ini j "public.ds_1, public.nosuch, public.ds_2"
    owl_export -j j
    fails_with 2 "dataset public.nosuch matches no row in any chosen table"
    owl_export -d 'public.zz%' -o "$OUT"
    fails_with 2 "match no row"
    # a dataset present only in a table not chosen counts as unknown
    owl_export -d "public.o'hara" -t job_schedule -o "$OUT"
    fails_with 2 "dataset public.o'hara matches no row in any chosen table"
}

# ----------------------------------------------------------------- crash

@test "SIGKILL part-way: no bundle and no file in the outbox; the next run publishes sequence 1" {
    SCHEMA=big job_ini big 'public.ds_%'
    mkdir "$W/spool"
    start=$(date +%s%N)
    TMPDIR=$W/spool "$OWLSYNC" -c "$INI" export -j big >"$W/kill.out" 2>&1 3>&- &
    pid=$!
    # wait until the third table is being read (each table spools to a file in TMPDIR)
    for ((i = 0; i < 500; i++)); do
        n=$(find "/proc/$pid/fd" -lname "$W/spool/*" 2>/dev/null | wc -l)
        [ "$n" -ge 3 ] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.01
    done
    echo "# killed with $n spool files open, $(( ($(date +%s%N) - start) / 1000000 )) ms after the start" >&3
    kill -KILL "$pid" || { echo "export ended before it could be killed:"; cat "$W/kill.out"; false; }
    st=0
    wait "$pid" || st=$?
    [ "$st" -eq 137 ] || { echo "export was not killed (exit $st):"; cat "$W/kill.out"; false; }
    no_files "$OUT"
    # what a kill while publishing would leave: a hidden temporary file
    : >"$OUT/.prod_big_20200101T000000Z_000001.owlb.tmp"
    owl_export -j big
    [ "$status" -eq 0 ]
    b=$output
    [[ $(basename "$b") =~ ^prod_big_[0-9]{8}T[0-9]{6}Z_000001\.owlb$ ]]
    [ "$(ls -A "$OUT")" = "$(basename "$b")" ]
    run "$OWLSYNC" verify -k "$KEY.pub" "$b"
    [ "$status" -eq 0 ]
    [ "$(mq "$b" "(SELECT t->>'rows' FROM jsonb_array_elements(m->'tables') t WHERE t->>'name' = 'owl_rule')")" = $((20 * BIG)) ]
}

@test "a FIFO in place of the signing key or of the config file is refused at once, never waited on" {
    mkfifo "$W/fifo.key" "$W/fifo.ini"
    KEY=$W/fifo.key job_ini fifo 'public.ds_1'
    run --separate-stderr timeout 10 "$OWLSYNC" -c "$INI" export -j fifo --quiet
    [ "$status" -eq 2 ]
    [[ $stderr == *"key file $W/fifo.key is not a regular file"* ]]
    run --separate-stderr timeout 10 "$OWLSYNC" -c "$W/fifo.ini" check
    [ "$status" -eq 2 ]
    [[ $stderr == *"$W/fifo.ini: not a regular file"* ]]
}
