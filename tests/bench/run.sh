#!/usr/bin/env bash
# owlsync benchmark (issue 8): owlsync against raw COPY and against the
# vendor's dump()+INSERT way, measured in one run on the same data.
#
#   make bench [SIZE=5000] [SELECTED=500] [COLUMNS=200] [RUNS=5] [SCALE="10000 100000 1000000"] [SCALE_RUNS=RUNS]
#              [DURABLE=1] [BENCH_TIMEOUT=600] [BENCH_KEEP=0]
#   OWLSYNC=./owlsync tests/bench/run.sh          (the same, without make)
#
#   SIZE        bulk datasets in the source metastore (sql/sample.sql; 33 + COLUMNS
#               rows each)
#   SELECTED    datasets promoted, spread evenly over the source (every SIZE/SELECTED-th)
#   COLUMNS     dataset_schema rows per dataset (default 200).  The defaults make
#               the metastore of issue 8: 5,000 datasets, 100k rules, 1M schema
#               rows, 500 promoted = 116.5k rows (COLUMNS=10: 21.5k rows)
#   RUNS        timed runs per figure (default 5); the table shows the median
#               time and the largest peak RSS of them, and each ratio as the
#               median of the ratios run by run (each run measures every method
#               once, seconds apart: the durable disk's slow spells, which move
#               single figures by a third, move both sides of a ratio)
#   SCALE       row counts of the second table (each rounded to whole datasets);
#               SCALE= (empty) skips it
#   SCALE_RUNS  timed runs per figure of the second table (default RUNS)
#   DURABLE     1 (default): the target runs as a production server does (fsync,
#               synchronous_commit, full_page_writes on, wal_level replica), so a
#               commit costs a WAL flush; 0: the test harness's fsync-off cluster
#   BENCH_TIMEOUT  seconds one timed command may take (default 600); a figure
#               that hits it prints as ">N" and its later runs are skipped
#   BENCH_KEEP  1 keeps the work directory (bundles, statements, timings)
#   SMALL       small bundles of the throughput table (default 200; 0 skips it):
#               one dataset each (COLUMNS + 33 rows, and rule_repo), exported by
#               as many jobs, then all moved into the inbox of one running
#               daemon at once; timed from the move until every one is imported
#               (processed/), median of RUNS runs, each into an empty target
#
# Not a test: it prints figures and asserts nothing.  Clusters are throwaway
# (tests/lib/pg.bash) and removed at the end, whatever happens.
#
# What is timed (wall clock; peak RSS from /usr/bin/time -v, the largest
# process of the command):
#   raw COPY out   one psql session: COPY (SELECT cols FROM t WHERE dataset =
#                  ANY ('{selection}'::text[])) TO STDOUT for each table, one
#                  stream piped into one `zstd -3` (a bundle is one file too).
#                  A constant array is the fastest way to name the datasets: the
#                  planner reads them by index (an IN (SELECT d FROM a table of
#                  them) scanned every row, 1.2-1.5x as long)
#   raw COPY in    one psql session into an empty target: \copy t (cols) FROM
#                  'file' of uncompressed per-table files (made untimed), parents
#                  first, each COPY in autocommit: the floor, no decompression
#   vendor dump    psql -c "SELECT bench_vendor.dump(...)" > statements.sql
#                  (tests/bench/vendor_dump.sql)
#   vendor import  psql -f statements.sql: one INSERT at a time, autocommit
#   owlsync        export -j bench (signed, zstd 3); import into an empty target
#                  (rewrites off, on; and into empty tables that were ANALYZEd while
#                  empty, as autovacuum or vacuumdb --analyze leaves a new database);
#                  import of a newer bundle over the rows of an older one
#                  (unchanged, or every row changed in the target first);
#                  export and fresh import of the same bundle encrypted to the
#                  target's key (encrypt_to, decrypt_key), run beside the plain ones
#   raw stage + UPDATE   the floor of "every row changed": one psql session, one
#                  transaction, each table's rows \copy'd into a temporary table
#                  and one UPDATE ... FROM it by key (write_raw_update_script)
# "Empty target" = the metastore tables and the owlsync ledger (sql/ledger.sql)
# dropped and created again before each run: never analyzed, as in a new database.
# The columns copied are the ones owlsync exports: all but "id" (generated).
set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BENCH_DIR=$ROOT/tests/bench
OWLSYNC=${OWLSYNC:-$ROOT/owlsync}
SIZE=${SIZE:-5000}
SELECTED=${SELECTED:-500}
COLUMNS=${COLUMNS:-200}
PER_DS=$((33 + COLUMNS)) # rows of one bulk dataset (sql/sample.sql)
RUNS=${RUNS:-5}
SCALE=${SCALE-10000 100000 1000000}
SCALE_RUNS=${SCALE_RUNS:-$RUNS}
SMALL=${SMALL:-200}
DURABLE=${DURABLE:-1}
BENCH_TIMEOUT=${BENCH_TIMEOUT:-600}
ZSTD_LEVEL=3 # owlsync's default compression_level; the raw baseline uses the same

die() { echo "bench: $*" >&2; exit 2; }
for v in SIZE SELECTED COLUMNS RUNS SCALE_RUNS BENCH_TIMEOUT; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive whole number, got '${!v}'"
done
for r in $SCALE; do [[ $r =~ ^[1-9][0-9]*$ ]] || die "SCALE holds '$r', not a row count"; done
[[ $SMALL =~ ^[0-9]+$ ]] || die "SMALL must be a whole number, got '$SMALL'"
[ "$SMALL" -le "$SIZE" ] || die "SMALL ($SMALL) is larger than SIZE ($SIZE)"
[ "$SELECTED" -le "$SIZE" ] || die "SELECTED ($SELECTED) is larger than SIZE ($SIZE)"
[ -x "$OWLSYNC" ] || die "no owlsync binary at $OWLSYNC (make owlsync)"
[[ $DURABLE =~ ^[01]$ ]] || die "DURABLE must be 0 or 1, got '$DURABLE'"
command -v timeout >/dev/null || die "timeout (coreutils) is missing"
[ -x /usr/bin/time ] || die "/usr/bin/time is missing: apt-get install time (make deps)"
command -v zstd >/dev/null || die "zstd is missing: apt-get install zstd (make deps)"

# shellcheck disable=SC1091 # tests/lib/pg.bash
source "$ROOT/tests/lib/pg.bash"
PSQL=$PG_BINDIR/psql
[ -x "$PSQL" ] || PSQL=$(command -v psql)

W=$(mktemp -d "${TMPDIR:-/tmp}/owlbench.XXXXXX")
chmod 0755 "$W"
DAEMON_PID=
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [ -z "$DAEMON_PID" ] || kill "$DAEMON_PID" 2>/dev/null || true
    pg_stop_all >/dev/null 2>&1 || true
    if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "bench: work directory kept: $W" >&2; else rm -rf "$W"; fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$W/res" "$W/out" "$W/state"

TABLES=(rule_repo owl_catalog owl_rule alert_cond alert_output owl_check_repo job_schedule dataset_schema dataset_scoring)
declare -A KEY=(
    [rule_repo]=rule_nm [owl_catalog]=dataset [owl_rule]='dataset, rule_nm' [alert_cond]='dataset, alert_nm'
    [alert_output]='dataset, alert_nm, run_id' [owl_check_repo]=dataset [job_schedule]=dataset
    [dataset_schema]='dataset, col_nm' [dataset_scoring]=dataset
)
# A non-key column per table that "every row changed" alters in the target.
declare -A CHANGE=(
    [rule_repo]="rule_desc = coalesce(rule_desc, '') || ' (target)'"
    [owl_catalog]="owner_nm = coalesce(owner_nm, '') || ' (target)'"
    [owl_rule]="user_nm = coalesce(user_nm, '') || ' (target)'"
    [alert_cond]="user_nm = coalesce(user_nm, '') || ' (target)'"
    [alert_output]="output = coalesce(output, '') || ' (target)'"
    [owl_check_repo]="user_nm = coalesce(user_nm, '') || ' (target)'"
    [job_schedule]="run_as = coalesce(run_as, '') || ' (target)'"
    [dataset_schema]="col_desc = coalesce(col_desc, '') || ' (target)'"
    [dataset_scoring]="warn_threshold = coalesce(warn_threshold, 0) + 1"
)
declare -A COLS

say() { printf '%s  %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# ------------------------------------------------------------------ measuring

# measure LABEL CMD [ARG…] — runs CMD under /usr/bin/time -v, appends
# "SECONDS PEAK_RSS_KB" to $W/res/LABEL; CMD's stdout is left in $W/out.txt.
# A command that runs past BENCH_TIMEOUT is stopped and recorded as
# "BENCH_TIMEOUT RSS T" and MEASURE_TIMEDOUT is set to 1 (else 0).
MEASURE_TIMEDOUT=0
measure() {
    local label=$1 t0 t1 rc=0 rss
    shift
    MEASURE_TIMEDOUT=0
    t0=$EPOCHREALTIME
    /usr/bin/time -v -o "$W/time.txt" timeout -k 10 "$BENCH_TIMEOUT" "$@" >"$W/out.txt" 2>"$W/err.txt" || rc=$?
    t1=$EPOCHREALTIME
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
        rss=$(awk -F': *' '/Maximum resident set size/ { print $2 }' "$W/time.txt")
        echo "$BENCH_TIMEOUT ${rss:-0} T" >>"$W/res/$label"
        say "  $label: stopped after ${BENCH_TIMEOUT}s (BENCH_TIMEOUT)"
        MEASURE_TIMEDOUT=1
        return 0
    fi
    if [ $rc -ne 0 ]; then
        echo "bench: '$label' failed (exit $rc): $*" >&2
        tail -20 "$W/err.txt" >&2
        exit 1
    fi
    rss=$(awk -F': *' '/Maximum resident set size/ { print $2 }' "$W/time.txt")
    awk -v a="$t0" -v b="$t1" -v r="$rss" 'BEGIN { printf "%.4f %d\n", b - a, r }' >>"$W/res/$label"
}

# Median seconds and largest peak RSS (KiB) of LABEL's runs: "SECS RSS FLAG",
# FLAG "T" when a run hit BENCH_TIMEOUT (SECS is then a lower bound), else "-".
stat_of() {
    sort -n "$W/res/$1" | awk '{ s[NR] = $1; if ($2 > r) r = $2; if ($3 == "T") t = 1 }
        END { m = (NR % 2) ? s[(NR + 1) / 2] : (s[NR / 2] + s[NR / 2 + 1]) / 2
              if (t) m = s[NR]; printf "%.4f %d %s\n", m, r, t ? "T" : "-" }'
}
secs_of() { stat_of "$1" | cut -d' ' -f1; }

# Median, least and largest of the ratios NUM/DEN run by run (run i of each:
# measured a few seconds apart, so a slow spell of the disk moves both and
# cancels out): "MEDIAN MIN MAX", or "- - -" without a pair of runs.
ratio_stat() { # NUM_LABEL DEN_LABEL
    paste -d' ' <(cut -d' ' -f1 "$W/res/$1") <(cut -d' ' -f1 "$W/res/$2") |
        awk 'NF == 2 && $2 > 0 { print $1 / $2 }' | sort -g |
        awk '{ v[NR] = $1 } END { if (NR == 0) { print "- - -"; exit }
              m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
              printf "%.2f %.2f %.2f\n", m, v[1], v[NR] }'
}
ratio_med() { ratio_stat "$1" "$2" | cut -d' ' -f1; }
timed_out() { [ -f "$W/res/$1" ] && grep -q ' T$' "$W/res/$1"; }
# SECS [FLAG] → "1.234" or ">600"
fmt_secs() { if [ "${2:--}" = T ]; then echo ">$BENCH_TIMEOUT"; else printf "%.${3:-3}f" "$1"; fi; }

fsize() { stat -c %s "$1"; }

# ------------------------------------------------------------------ SQL helpers

q_src() { pg_query src "$1"; }

# "col1, col2, …" of TABLE in SCHEMA of cluster NAME, without id.
columns_of() { # NAME SCHEMA TABLE
    pg_query "$1" "SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute
                   WHERE attrelid = '$2.$3'::regclass AND attnum > 0 AND NOT attisdropped AND attname <> 'id'"
}

# An empty target, as a new database: the metastore tables and the owlsync
# ledger (sql/ledger.sql, as a DBA creates it) dropped and created again, so
# they were never analyzed and autovacuum has nothing to do; then a checkpoint.
reset_target() {
    pg_psql tgt -c "SET client_min_messages = warning" -c "DROP SCHEMA IF EXISTS public CASCADE" \
        -c "DROP SCHEMA IF EXISTS owlsync CASCADE" >/dev/null
    pg_load_schema tgt
    pg_psql tgt -c "SET client_min_messages = warning" -f "$ROOT/sql/ledger.sql" -c "CHECKPOINT" >/dev/null
}

# VACUUM ANALYZE the target's tables and checkpoint (after an untimed setup step).
settle_target() {
    pg_psql tgt -c "VACUUM ANALYZE" -c "CHECKPOINT" >/dev/null
}

# Writes the psql script of raw COPY out: COPY … TO STDOUT of every table, one
# stream (piped to one zstd, as a bundle is one file).  WHERE is the row filter.
write_copy_out_script() { # FILE SCHEMA WHERE
    local f=$1 schema=$2 where=$3 t
    : >"$f"
    for t in "${TABLES[@]}"; do
        if [ "$t" = rule_repo ]; then
            echo "COPY (SELECT ${COLS[$t]} FROM $schema.$t) TO STDOUT;" >>"$f"
        else
            echo "COPY (SELECT ${COLS[$t]} FROM $schema.$t WHERE $where) TO STDOUT;" >>"$f"
        fi
    done
}

# The same rows, one uncompressed file per table (untimed: the input of raw COPY in).
write_copy_files_script() { # FILE SCHEMA WHERE OUTDIR
    local f=$1 schema=$2 where=$3 dir=$4 t
    : >"$f"
    for t in "${TABLES[@]}"; do
        if [ "$t" = rule_repo ]; then
            echo "\\copy (SELECT ${COLS[$t]} FROM $schema.$t) TO '$dir/$t.copy'" >>"$f"
        else
            echo "\\copy (SELECT ${COLS[$t]} FROM $schema.$t WHERE $where) TO '$dir/$t.copy'" >>"$f"
        fi
    done
}

# Raw COPY in: one psql session, one COPY per table from its uncompressed file,
# parents first, each in autocommit.  (No decompression: the strictest floor.)
write_copy_in_script() { # FILE INDIR
    local f=$1 dir=$2 t
    : >"$f"
    for t in "${TABLES[@]}"; do
        echo "\\copy public.$t (${COLS[$t]}) FROM '$dir/$t.copy'" >>"$f"
    done
}

# The floor of "every row changed": what any tool does to make the target's
# rows equal to the source's in place, keeping their ids. In one transaction:
# each table's rows COPYed into a temporary table, its key columns analyzed,
# then one UPDATE ... FROM it, matched by key. (owlsync does the same and, on
# top, finds what to delete and insert and what did not change.)
write_raw_update_script() { # FILE INDIR
    local f=$1 dir=$2 t c set k match
    {
        echo "BEGIN;"
        echo "SET LOCAL work_mem = '64MB';"
        echo "SET LOCAL temp_buffers = '64MB';"
        for t in "${TABLES[@]}"; do
            set="" match=""
            IFS=',' read -r -a keys <<<"${KEY[$t]// /}"
            for k in "${keys[@]}"; do match+="${match:+ AND }t.$k = s.$k"; done
            IFS=',' read -r -a cols <<<"${COLS[$t]// /}"
            for c in "${cols[@]}"; do
                [[ " ${keys[*]} " == *" $c "* ]] || set+="${set:+, }$c = s.$c"
            done
            echo "CREATE TEMP TABLE s_$t ON COMMIT DROP AS SELECT ${COLS[$t]} FROM public.$t WITH NO DATA;"
            echo "\copy s_$t (${COLS[$t]}) FROM '$dir/$t.copy'"
            echo "ANALYZE s_$t (${KEY[$t]});"
            echo "UPDATE public.$t t SET $set FROM s_$t s WHERE $match;"
        done
        echo "COMMIT;"
    } >"$f"
}

# [table] sections: natural keys, id generated.
table_sections() {
    local t
    for t in "${TABLES[@]}"; do
        echo "[table $t]"
        [ "$t" = rule_repo ] && echo "dataset_column ="
        echo "key = ${KEY[$t]}"
        echo "generated = id"
    done
}

# "datasets = a, b, …" wrapped on indented lines (an INI line holds ≤ 199 chars).
datasets_line() { # NAME…
    local line="datasets =" n=0 d
    for d in "$@"; do
        if [ $n -gt 0 ] && [ $((n % 8)) -eq 0 ]; then
            echo "$line,"
            line="   "
        elif [ $n -gt 0 ]; then
            line+=","
        fi
        line+=" $d"
        n=$((n + 1))
    done
    echo "$line"
}

write_src_ini() { # FILE CLUSTER SCHEMA DATASET…
    local f=$1 cl=$2 schema=$3
    shift 3
    {
        echo "[owlsync]"
        echo "environment = prod"
        echo "state_dir = $W/state"
        echo "log_level = warn"
        echo "[database]"
        echo "conninfo = $(pg_conninfo "$cl")"
        echo "schema = $schema"
        table_sections
        echo "[export bench]"
        datasets_line "$@"
        echo "outbox = $W/out"
        echo "signing_key = $W/key"
        echo "skip_unchanged = false"
        echo "compression = zstd"
        echo "compression_level = $ZSTD_LEVEL"
        # the same job, its bundles encrypted to the target's key
        echo "[export benchenc]"
        datasets_line "$@"
        echo "outbox = $W/out"
        echo "signing_key = $W/key"
        echo "skip_unchanged = false"
        echo "compression = zstd"
        echo "compression_level = $ZSTD_LEVEL"
        echo "encrypt_to = qa $W/enc.pub"
    } >"$f"
}

write_tgt_ini() { # FILE REWRITES(0|1)
    {
        echo "[owlsync]"
        echo "environment = qa"
        echo "state_dir = $W/state"
        echo "log_level = warn"
        echo "[database]"
        echo "conninfo = $(pg_conninfo tgt)"
        table_sections
        echo "[import]"
        echo "trusted_key = prod $W/key.pub"
        echo "decrypt_key = $W/enc"
        if [ "$2" = 1 ]; then
            # The usual promotion rules; "tenant" touches every row of every table.
            cat <<'INI'
[rewrite conn]
columns = owl_check_repo.conn_name
from = prod_pg
to = qa_pg
[rewrite hosts]
columns = owl_check_repo.conn_url
match = substring
from = prod-db
to = qa-db
[rewrite agents]
columns = *.agent, owl_check_repo.agent_name
match = regex
from = ^prod-agent-([0-9]+)$
to = qa-agent-\1
[rewrite run_as]
columns = job_schedule.run_as
from = svc_owl_prod
to = svc_owl_qa
[rewrite tenant]
columns = *.dataset
match = substring
from = public.
to = qa.
INI
        fi
    } >"$1.tmp"
    mv "$1.tmp" "$1"
}

# owlsync export; prints the bundle path (untimed use).
owl_export() { "$OWLSYNC" -c "$1" export -j bench --quiet; }

owl_import() { # INI BUNDLE: untimed
    "$OWLSYNC" -c "$1" import "$2" >"$W/import.txt" 2>&1 || { cat "$W/import.txt" >&2; exit 1; }
}

# Fails when the last import output says it did nothing.
check_applied() {
    [ "$MEASURE_TIMEDOUT" = 0 ] || return 0
    if grep -qi "already imported" "$W/out.txt" "$W/import.txt" 2>/dev/null; then
        echo "bench: an import said 'already imported': the figure would be wrong" >&2
        exit 1
    fi
}

# The target holds bundle A's rows, every one of them changed since (CHANGE).
changed_target() {
    local t
    reset_target
    owl_import "$W/tgt.ini" "$BUNDLE_A"
    for t in "${TABLES[@]}"; do
        pg_query tgt "UPDATE public.$t SET ${CHANGE[$t]}" >/dev/null
    done
    settle_target
}

# Fails unless WHAT (just measured) undid every change of changed_target.
check_restored() { # WHAT
    [ "$MEASURE_TIMEDOUT" = 1 ] ||
        [ "$(pg_query tgt "SELECT count(*) FROM public.owl_rule WHERE user_nm LIKE '% (target)'")" = 0 ] ||
        die "$1 did not restore the changed rows"
}

# Rows in the target's metastore tables.
target_rows() {
    local sum="0" t
    for t in "${TABLES[@]}"; do sum+=" + (SELECT count(*) FROM public.$t)"; done
    pg_query tgt "SELECT $sum"
}

# ------------------------------------------------------------------ printing

fmt_rate() { awk -v n="$1" -v s="$2" 'BEGIN { if (s <= 0) print "-"; else printf "%.0f", n / s }'; }
fmt_mbs() { awk -v b="$1" -v s="$2" 'BEGIN { if (s <= 0) print "-"; else printf "%.1f", b / 1e6 / s }'; }
fmt_mb() { awk -v b="$1" 'BEGIN { printf "%.2f", b / 1e6 }'; }
fmt_mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
verdict() { # VALUE OP LIMIT → met / MISSED
    awk -v v="$1" -v op="$2" -v l="$3" 'BEGIN { ok = (op == "le") ? (v <= l) : (v >= l); print ok ? "met" : "MISSED" }'
}

# ================================================================== setup

say "owlsync benchmark: SIZE=$SIZE SELECTED=$SELECTED COLUMNS=$COLUMNS RUNS=$RUNS SCALE='$SCALE' SCALE_RUNS=$SCALE_RUNS"
LOAD_START=$(loadavg)
"$OWLSYNC" keygen -o "$W/key" >/dev/null 2>&1
"$OWLSYNC" keygen --encryption -o "$W/enc" >/dev/null 2>&1

say "source: $SIZE datasets"
pg_start src >/dev/null
if [ "$DURABLE" = 1 ]; then
    pg_start tgt fsync=on synchronous_commit=on full_page_writes=on wal_level=replica >/dev/null
else
    pg_start tgt >/dev/null
fi
t0=$EPOCHREALTIME
pg_load_metastore src "$SIZE" public "$COLUMNS"
say "  loaded in $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }') s"
pg_psql src -c "SET client_min_messages = warning" -f "$BENCH_DIR/vendor_dump.sql" >/dev/null
pg_psql src -c "VACUUM ANALYZE" >/dev/null
pg_load_schema tgt

for t in "${TABLES[@]}"; do COLS[$t]=$(columns_of src public "$t"); done

# Every (SIZE/SELECTED)-th dataset.
step=$((SIZE / SELECTED))
SEL=()
for ((i = 1; i <= SELECTED; i++)); do SEL+=("public.ds_$((i * step))"); done
SEL_ARRAY="{$(IFS=,; echo "${SEL[*]}")}"
WHERE_SEL="dataset = ANY ('$SEL_ARRAY'::text[])"

ROWS=0
for t in "${TABLES[@]}"; do
    if [ "$t" = rule_repo ]; then n=$(q_src "SELECT count(*) FROM public.$t")
    else n=$(q_src "SELECT count(*) FROM public.$t WHERE $WHERE_SEL"); fi
    ROWS=$((ROWS + n))
done

write_src_ini "$W/src.ini" src public "${SEL[@]}"
write_tgt_ini "$W/tgt.ini" 0
write_tgt_ini "$W/tgt_rw.ini" 1
write_copy_out_script "$W/copy_out.sql" public "$WHERE_SEL"
write_copy_files_script "$W/copy_files.sql" public "$WHERE_SEL" "$W/raw"
write_copy_in_script "$W/copy_in.sql" "$W/raw"
write_raw_update_script "$W/raw_update.sql" "$W/raw"
TABLES_ARRAY="{$(IFS=,; echo "${TABLES[*]}")}"
DUMP_SQL="SELECT bench_vendor.dump('public', '$TABLES_ARRAY', '$SEL_ARRAY')"

SRC_CI=$(pg_conninfo src)
TGT_CI=$(pg_conninfo tgt)
PSQL_Q=("$PSQL" -X -q -v ON_ERROR_STOP=1)

# raw_out LABEL CONNINFO SCRIPT: one psql, its COPY stream piped into one zstd.
# shellcheck disable=SC2016 # $0 and $@ belong to the inner bash
raw_out() {
    rm -f "$W/raw.zst"
    measure "$1" bash -c 'set -o pipefail; "$@" | zstd -'"$ZSTD_LEVEL"' -q -o "$0"' "$W/raw.zst" \
        "${PSQL_Q[@]}" -d "$2" -f "$3"
}
raw_in() { reset_target; measure "$1" "${PSQL_Q[@]}" -d "$TGT_CI" -f "$W/copy_in.sql"; }

# ------------------------------------------------------------------ warm-up (untimed)
say "warm-up: one untimed pass of each method; bundles A and B"
mkdir -p "$W/raw"
"${PSQL_Q[@]}" -d "$SRC_CI" -f "$W/copy_files.sql"
COPY_BYTES=$(cat "$W"/raw/*.copy | wc -c)
raw_out raw_warm "$SRC_CI" "$W/copy_out.sql"
[ "$(zstd -dcq "$W/raw.zst" | wc -c)" = "$COPY_BYTES" ] || die "raw COPY out wrote a stream of another size"
"${PSQL_Q[@]}" -At -d "$SRC_CI" -c "$DUMP_SQL" >"$W/statements.sql"
[ "$(wc -l <"$W/statements.sql")" -ge "$ROWS" ] || die "dump() returned fewer statements than $ROWS rows"
reset_target
"${PSQL_Q[@]}" -d "$TGT_CI" -f "$W/copy_in.sql"
[ "$(target_rows)" = "$ROWS" ] || die "raw COPY in loaded $(target_rows) rows, expected $ROWS"
reset_target
"${PSQL_Q[@]}" -d "$TGT_CI" -f "$W/statements.sql"
[ "$(target_rows)" = "$ROWS" ] || die "the vendor import loaded $(target_rows) rows, expected $ROWS"
BUNDLE_A=$(owl_export "$W/src.ini")
sleep 1.1 # B's snapshot is strictly newer than A's
BUNDLE_B=$(owl_export "$W/src.ini")
mv "$BUNDLE_A" "$W/A.owl"; BUNDLE_A=$W/A.owl
mv "$BUNDLE_B" "$W/B.owl"; BUNDLE_B=$W/B.owl
BUNDLE_BYTES=$(fsize "$BUNDLE_A")
BUNDLE_AE=$("$OWLSYNC" -c "$W/src.ini" export -j benchenc --quiet)
mv "$BUNDLE_AE" "$W/AE.owl"; BUNDLE_AE=$W/AE.owl
[ "$(head -c 11 "$BUNDLE_AE")" = OWLSYNC-ENC ] || die "the encrypted job wrote a bundle that is not encrypted"
BUNDLE_ENC_BYTES=$(fsize "$BUNDLE_AE")
reset_target
owl_import "$W/tgt.ini" "$BUNDLE_AE"
[ "$(target_rows)" = "$ROWS" ] || die "owlsync import (encrypted) loaded $(target_rows) rows, expected $ROWS"
reset_target
owl_import "$W/tgt.ini" "$BUNDLE_A"
[ "$(target_rows)" = "$ROWS" ] || die "owlsync import loaded $(target_rows) rows, expected $ROWS"
reset_target
owl_import "$W/tgt_rw.ini" "$BUNDLE_A"
[ "$(target_rows)" = "$ROWS" ] || die "owlsync import (rewrites) loaded $(target_rows) rows, expected $ROWS"
[ "$(pg_query tgt "SELECT count(*) FROM public.owl_rule WHERE dataset LIKE 'qa.%'")" -gt 0 ] ||
    die "the rewrites did not apply"
RAW_BYTES=$(fsize "$W/raw.zst")
STMT_BYTES=$(fsize "$W/statements.sql")

# ------------------------------------------------------------------ timed runs
for ((run = 1; run <= RUNS; run++)); do
    say "run $run/$RUNS (load $(loadavg))"
    raw_out raw_out "$SRC_CI" "$W/copy_out.sql"
    measure vendor_dump "${PSQL_Q[@]}" -At -d "$SRC_CI" -c "$DUMP_SQL"
    measure owl_export "$OWLSYNC" -c "$W/src.ini" export -j bench --quiet
    rm -f "$(cat "$W/out.txt")"
    measure owl_export_enc "$OWLSYNC" -c "$W/src.ini" export -j benchenc --quiet
    rm -f "$(cat "$W/out.txt")"

    raw_in raw_in
    reset_target
    measure vendor_import "${PSQL_Q[@]}" -d "$TGT_CI" -f "$W/statements.sql"

    reset_target
    measure owl_fresh "$OWLSYNC" -c "$W/tgt.ini" import "$BUNDLE_A"
    check_applied
    reset_target
    measure owl_fresh_enc "$OWLSYNC" -c "$W/tgt.ini" import "$BUNDLE_AE"
    check_applied
    reset_target
    measure owl_fresh_rw "$OWLSYNC" -c "$W/tgt_rw.ini" import "$BUNDLE_A"
    check_applied
    # Empty tables with statistics that say so (ANALYZE ran on them while empty).
    if ! timed_out owl_fresh_an; then
        reset_target
        pg_psql tgt -c "ANALYZE" >/dev/null
        measure owl_fresh_an "$OWLSYNC" -c "$W/tgt.ini" import "$BUNDLE_A"
        check_applied
    fi

    # Over the rows of an older bundle: nothing changed …
    reset_target
    owl_import "$W/tgt.ini" "$BUNDLE_A"
    settle_target
    measure owl_reimport "$OWLSYNC" -c "$W/tgt.ini" import "$BUNDLE_B"
    check_applied
    # … or every row changed in the target since.
    changed_target
    measure owl_reimport_chg "$OWLSYNC" -c "$W/tgt.ini" import "$BUNDLE_B"
    check_applied
    check_restored "the re-import"
    # … and the floor of that: the same rows staged and UPDATEd in place by hand.
    changed_target
    measure raw_update "${PSQL_Q[@]}" -d "$TGT_CI" -f "$W/raw_update.sql"
    check_restored "the raw UPDATE"
done
LOAD_MAIN=$(loadavg)

# ------------------------------------------------------------------ table 1
row() { # LABEL NAME BYTES BASE_NAME TARGET
    local s r f lt=""
    read -r s r f < <(stat_of "$2")
    [ "$f" = T ] && lt="<"
    printf '%-46s %8s %9s %7s %9s %8s %9s  %s\n' "$1" "$(fmt_secs "$s" "$f")" "$lt$(fmt_rate "$ROWS" "$s")" \
        "$lt$(fmt_mbs "$COPY_BYTES" "$s")" "$3" "$(fmt_mib "$r")" \
        "$(if [ -n "$4" ]; then echo "${lt:+>}$(ratio_med "$2" "$4")x"; else echo -; fi)" "$5"
}
echo
echo "owlsync benchmark — $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $("$PSQL" --version | sed 's/^psql (PostgreSQL) /PostgreSQL /')"
echo "load average: $LOAD_START at start, $LOAD_MAIN after table 1 (other work shares this machine)"
if [ "$DURABLE" = 1 ]; then
    echo "target: durable (fsync, synchronous_commit, full_page_writes on; wal_level replica); source: fsync off"
else
    echo "target and source: fsync off, synchronous_commit off (DURABLE=0)"
fi
echo "source: $SIZE datasets; promoted: $SELECTED datasets (every ${step}th), $ROWS rows in ${#TABLES[@]} tables,"
echo "        $(fmt_mb "$COPY_BYTES") MB as COPY text; median of $RUNS runs, peak RSS = largest of them,"
echo "        x raw = median of the ratios run by run"
echo
printf '%-46s %8s %9s %7s %9s %8s %9s  %s\n' "" seconds rows/s MB/s "size MB" "RSS MiB" "x raw" "target"
row "raw COPY out + zstd -$ZSTD_LEVEL" raw_out "$(fmt_mb "$RAW_BYTES")" "" ""
row "vendor dump() -> INSERT statements" vendor_dump "$(fmt_mb "$STMT_BYTES")" raw_out ""
row "owlsync export" owl_export "$(fmt_mb "$BUNDLE_BYTES")" raw_out "<= 1.2x"
row "owlsync export, encrypted" owl_export_enc "$(fmt_mb "$BUNDLE_ENC_BYTES")" raw_out "+10% over export"
row "raw COPY in (empty target)" raw_in "-" "" ""
row "vendor import (INSERT by INSERT, autocommit)" vendor_import "-" raw_in ""
row "owlsync import, fresh" owl_fresh "-" raw_in "<= 1.5x"
row "owlsync import, fresh, encrypted" owl_fresh_enc "-" raw_in "+10% over fresh"
row "owlsync import, fresh, rewrites on" owl_fresh_rw "-" raw_in "<= 1.5x, +10% over fresh"
row "owlsync import, fresh, tables ANALYZEd empty" owl_fresh_an "-" raw_in "<= 1.5x"
row "owlsync re-import, rows unchanged" owl_reimport "-" raw_in "<= 2x"
row "owlsync re-import, every row changed" owl_reimport_chg "-" raw_in "<= 2x"
row "raw stage + UPDATE of every row (its floor)" raw_update "-" raw_in ""

echo
echo "targets (median of the ratios run by run, least and largest in brackets):"
# target_line DESC NUM_LABEL DEN_LABEL OP LIMIT — NUM/DEN against the target;
# a figure that hit BENCH_TIMEOUT is a bound (">" or "<"), its verdict stands.
target_line() {
    local x lo hi p=""
    read -r x lo hi < <(ratio_stat "$2" "$3")
    if timed_out "$2"; then p=">"; elif timed_out "$3"; then p="<"; fi
    printf '  %-52s %8s %-13s target %s %-5s %s\n' "$1" "$p${x}x" "($lo..$hi)" \
        "$([ "$4" = le ] && echo "<=" || echo ">=")" "$5x" "$(verdict "$x" "$4" "$5")"
}
target_line "export / (raw COPY out + zstd)" owl_export raw_out le 1.2
target_line "fresh import / raw COPY in" owl_fresh raw_in le 1.5
target_line "fresh import, tables ANALYZEd empty / raw COPY in" owl_fresh_an raw_in le 1.5
target_line "re-import (unchanged) / raw COPY in" owl_reimport raw_in le 2
target_line "re-import (every row changed) / raw COPY in" owl_reimport_chg raw_in le 2
read -r x lo hi < <(ratio_stat owl_reimport_chg raw_update)
printf '  %-52s %8s %-13s (PostgreSQL'"'"'s floor of a changed re-import)\n' "  the same / raw stage + UPDATE" "${x}x" "($lo..$hi)"
read -r x lo hi < <(ratio_stat owl_fresh_rw owl_fresh)
pct() { awk -v r="$1" 'BEGIN { printf "%+.1f", (r - 1) * 100 }'; }
printf '  %-52s %8s %-13s target <= +10%%  %s\n' "rewrites on / off (fresh import)" "$(pct "$x")%" \
    "($(pct "$lo")..$(pct "$hi"))" "$(verdict "$(pct "$x")" le 10)"
for pair in "export:owl_export_enc:owl_export" "fresh import:owl_fresh_enc:owl_fresh"; do
    IFS=: read -r what enc plain <<<"$pair"
    read -r x lo hi < <(ratio_stat "$enc" "$plain")
    printf '  %-52s %8s %-13s target <= +10%%  %s\n' "encrypted / plain ($what)" "$(pct "$x")%" \
        "($(pct "$lo")..$(pct "$hi"))" "$(verdict "$(pct "$x")" le 10)"
done
target_line "vendor import / owlsync fresh import" vendor_import owl_fresh ge 25

# ================================================================== table 3: small bundles
# Many small bundles dropped at once into the inbox of one running daemon: what
# a nightly sync of many datasets, one job each, hands the target at once.
small_bundles() {
    local i run n t0 t1 got secs
    rm -rf "$W/small_out" "$W/small_state"
    mkdir -p "$W/small_out" "$W/small_state"
    {
        echo "[owlsync]"
        echo "environment = prod"
        echo "state_dir = $W/small_state"
        echo "log_level = warn"
        echo "[database]"
        echo "conninfo = $(pg_conninfo src)"
        table_sections
        for ((i = 1; i <= SMALL; i++)); do
            echo "[export s$i]"
            echo "datasets = public.ds_$i"
            echo "outbox = $W/small_out"
            echo "signing_key = $W/key"
        done
    } >"$W/small_src.ini"
    say "small bundles: exporting $SMALL one-dataset bundles"
    for ((i = 1; i <= SMALL; i++)); do
        "$OWLSYNC" -c "$W/small_src.ini" export -j "s$i" --quiet >/dev/null || die "export of small bundle $i failed"
    done
    n=$(find "$W/small_out" -name '*.owlb' | wc -l)
    [ "$n" = "$SMALL" ] || die "small bundles: $n exported, expected $SMALL"
    SMALL_BYTES=$(cat "$W"/small_out/*.owlb | wc -c)
    write_tgt_ini "$W/small_tgt.ini" 0
    cat >>"$W/small_tgt.ini" <<INI
inbox = $W/inbox
settle_time = 0
poll_interval = 1
INI
    rm -f "$W/res/small"
    for ((run = 1; run <= RUNS; run++)); do
        say "small bundles: run $run/$RUNS (load $(loadavg))"
        reset_target
        rm -rf "$W/inbox"
        mkdir -p "$W/inbox" "$W/small_drop"
        cp "$W"/small_out/*.owlb "$W/small_drop/"
        "$OWLSYNC" -c "$W/small_tgt.ini" daemon 2>"$W/small_daemon.log" &
        DAEMON_PID=$!
        for ((i = 0; i < 100; i++)); do
            grep -q "watching inbox" "$W/small_daemon.log" 2>/dev/null && break
            sleep 0.1
        done
        sleep 0.5
        t0=$EPOCHREALTIME
        mv "$W"/small_drop/*.owlb "$W/inbox/"
        got=0
        while [ "$got" -lt "$SMALL" ]; do
            kill -0 "$DAEMON_PID" 2>/dev/null || die "small bundles: the daemon stopped: $(tail -3 "$W/small_daemon.log")"
            awk -v a="$t0" -v b="$EPOCHREALTIME" -v l="$BENCH_TIMEOUT" 'BEGIN { exit !(b - a > l) }' &&
                die "small bundles: $got of $SMALL imported after $BENCH_TIMEOUT s"
            sleep 0.02
            got=$(find "$W/inbox/processed" -name '*.owlb' 2>/dev/null | wc -l)
        done
        t1=$EPOCHREALTIME
        kill "$DAEMON_PID"
        wait "$DAEMON_PID" || true
        DAEMON_PID=
        [ -z "$(find "$W/inbox/quarantine" -type f 2>/dev/null)" ] || die "small bundles: some were quarantined"
        got=$(pg_query tgt "SELECT count(*) FROM owlsync.bundles")
        [ "$got" = "$SMALL" ] || die "small bundles: the ledger holds $got bundles, expected $SMALL"
        awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f 0\n", b - a }' >>"$W/res/small"
    done
    secs=$(secs_of small)
    echo
    echo "small bundles: $SMALL one-dataset bundles ($(fmt_mb "$SMALL_BYTES") MB in all, $((COLUMNS + 33)) rows each and"
    echo "rule_repo) moved into the inbox of one running daemon at once; median of $RUNS runs"
    printf '  %-52s %8s %8s/s  target >= 30/s  %s\n' "imported by the daemon" "$(printf '%.2f s' "$secs")" \
        "$(awk -v n="$SMALL" -v s="$secs" 'BEGIN { printf "%.1f", n / s }')" \
        "$(verdict "$(awk -v n="$SMALL" -v s="$secs" 'BEGIN { printf "%.2f", n / s }')" ge 30)"
}
[ "$SMALL" -eq 0 ] || small_bundles

# ================================================================== table 2: scale
[ -n "$SCALE" ] || exit 0
pg_stop src
say "scale: loading the sources (one schema per size)"
pg_start big >/dev/null
declare -A SCALE_DS
for r in $SCALE; do
    k=$(awk -v r="$r" -v p="$PER_DS" 'BEGIN { k = int((r - 12) / p + 0.5); if (k < 1) k = 1; print k }')
    SCALE_DS[$r]=$k
    t0=$EPOCHREALTIME
    pg_load_metastore big "$k" "s$k" "$COLUMNS"
    say "  s$k: $k datasets loaded in $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }') s"
done
pg_psql big -c "VACUUM ANALYZE" >/dev/null
BIG_CI=$(pg_conninfo big)
SCALE_HEAD=$(printf '%9s %8s %8s %8s | %7s %7s %7s %7s %7s | %7s %7s %7s %7s %7s' \
    rows datasets "COPY MB" "bndl MB" "raw out" export "x raw" "rows/s" RSS "raw in" import "x raw" "rows/s" RSS)
SCALE_OUT=()
# "secs x-raw rows/s rss" cells of LABEL against the runs of BASE_LABEL
scale_cells() { # LABEL BASE_LABEL ROWS
    local s r f lt=""
    read -r s r f < <(stat_of "$1")
    [ "$f" = T ] && lt="<"
    printf '%7s %7s %7s %7s' "$(fmt_secs "$s" "$f" 2)" "${lt:+>}$(ratio_med "$1" "$2")x" "$lt$(fmt_rate "$3" "$s")" \
        "$(fmt_mib "$r")"
}
for r in $SCALE; do
    k=${SCALE_DS[$r]}
    where="dataset LIKE 'public.ds_%'"
    rows=$((PER_DS * k + 12))
    write_src_ini "$W/big.ini" big "s$k" 'public.ds_%'
    write_copy_out_script "$W/big_out.sql" "s$k" "$where"
    write_copy_files_script "$W/big_files.sql" "s$k" "$where" "$W/raw"
    rm -rf "$W/raw"; mkdir -p "$W/raw"
    "${PSQL_Q[@]}" -d "$BIG_CI" -f "$W/big_files.sql"
    cbytes=$(cat "$W"/raw/*.copy | wc -c)
    bsize=0
    rm -f "$W"/res/sc_*
    for ((run = 1; run <= SCALE_RUNS; run++)); do
        say "scale $rows rows ($k datasets): run $run/$SCALE_RUNS (load $(loadavg))"
        raw_out sc_raw_out "$BIG_CI" "$W/big_out.sql"
        raw_in sc_raw_in
        got=$(target_rows)
        [ "$got" = "$rows" ] || die "scale $rows: raw COPY in loaded $got rows"
        timed_out sc_export && continue
        measure sc_export "$OWLSYNC" -c "$W/big.ini" export -j bench --quiet
        [ "$MEASURE_TIMEDOUT" = 0 ] || continue
        bundle=$(cat "$W/out.txt")
        bsize=$(fsize "$bundle")
        if ! timed_out sc_import; then
            reset_target
            measure sc_import "$OWLSYNC" -c "$W/tgt.ini" import "$bundle"
            check_applied
            if [ "$MEASURE_TIMEDOUT" = 0 ]; then
                got=$(target_rows)
                [ "$got" = "$rows" ] || die "scale $rows: owlsync import loaded $got rows"
            fi
        fi
        rm -f "$bundle"
    done
    read -r so _ < <(stat_of sc_raw_out)
    read -r si _ < <(stat_of sc_raw_in)
    line=$(printf '%9d %8d %8s %8s | %7.2f %s | %7.2f %s' "$rows" "$k" "$(fmt_mb "$cbytes")" "$(fmt_mb "$bsize")" \
        "$so" "$(if [ -f "$W/res/sc_export" ]; then scale_cells sc_export sc_raw_out "$rows"; else echo "      -"; fi)" \
        "$si" "$(if [ -f "$W/res/sc_import" ]; then scale_cells sc_import sc_raw_in "$rows"; else echo "      -"; fi)")
    SCALE_OUT+=("$line")
    say "$SCALE_HEAD"
    say "$line"
    reset_target
done
LOAD_END=$(loadavg)
echo
echo "scale: owlsync export and fresh import by row count (median of $SCALE_RUNS runs; RSS in MiB, largest)"
echo "load average after: $LOAD_END"
echo "$SCALE_HEAD"
for l in "${SCALE_OUT[@]}"; do echo "$l"; done
echo "target: peak RSS <= 32 MiB at 1M rows and flat across sizes; time linear in rows"
