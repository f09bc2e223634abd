#!/usr/bin/env bash
# Fault injection, long run: `owlsync import` killed with SIGKILL at every
# write it makes to the server (strace inject), after increasing delays, and
# PostgreSQL stopped (fast and immediate) in the middle of an import.
#
# Each round exports a new bundle (the source changed: updates, deletes,
# inserts), measures the target before and after a clean import of it (on a
# copy of the target database), runs the import with one fault, and checks:
# the target equals the state before or the state after, never a mix; the
# ledger has the bundle's row exactly when the target is "after"; a rerun
# exits 0, imports it exactly once (or says "already imported") and ends
# equal to the clean import, generated ids aside; one ledger row per bundle.
# Prints its counts and exits 1 on any violation.
#
#   OWLSYNC=build/owlsync tests/long/import_kills.sh
#   environment: DATASETS (bulk datasets, default 200), WIRE_POINTS (the
#   writes to kill at, arithmetic in M, the number of writes a clean import
#   makes; default every one: "1..M"), DELAY_ROUNDS (default 20), PGSTOP_ROUNDS
#   (default 10), READ_POINTS (the last reads to kill at, default 3), KEEP=1 (keep the work directory)
set -u
here=$(cd "$(dirname "$0")" && pwd)
: "${OWLSYNC:?OWLSYNC must name the owlsync binary under test}"
# shellcheck source=../lib/pg.bash
. "$here/../lib/pg.bash"
# shellcheck source=../lib/owl.bash
. "$here/../lib/owl.bash"
# shellcheck source=../lib/faults.bash
. "$here/../lib/faults.bash"

DATASETS=${DATASETS:-200}
WIRE_POINTS=${WIRE_POINTS-1..M}
DELAY_ROUNDS=${DELAY_ROUNDS:-20}
PGSTOP_ROUNDS=${PGSTOP_ROUNDS:-10}
command -v strace >/dev/null || { echo "import_kills: strace is needed (make deps)" >&2; exit 2; }

W=$(mktemp -d /tmp/owlkills.XXXXXX)
S=k
cleanup() {
    pg_stop_all
    if [ -n "${KEEP:-}" ]; then echo "work directory kept: $W"; else rm -rf "$W"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

FAULT="setup"
unreached=0 kills=0 reruns=0 bundles=0 checks=0 violations=0 n_before=0 n_after=0 pgstops=0 round=0

violation() {
    violations=$((violations + 1))
    echo "VIOLATION (round $round, $FAULT): $*" >&2
}
check() { # DESCRIPTION CMD…
    local d=$1
    shift
    if "$@"; then checks=$((checks + 1)); else violation "$d"; fi
}

mkdir -p "$W/out" "$W/state" "$W/tstate"
pg_start src || exit 2
pg_start tgt || exit 2
pg_load_metastore src "$DATASETS" "$S" >/dev/null || exit 2
pg_load_schema tgt "$S" >/dev/null || exit 2
# rows of the target's own, outside every bundle's datasets: never touched
pg_query tgt "INSERT INTO $S.owl_rule (dataset, rule_nm) VALUES ('qa.local', 'kept')" >/dev/null
"$OWLSYNC" keygen -o "$W/prod.key" >/dev/null 2>&1 || exit 2
cat >"$W/src.ini" <<EOF
[owlsync]
environment = prod
state_dir = $W/state
log_level = warn

[database]
conninfo = $(pg_conninfo src)
schema = $S
$OWL_TABLES_INI
[export kills]
datasets = public.ds_%
outbox = $W/out
signing_key = $W/prod.key
skip_unchanged = false
EOF
cat >"$W/tgt.ini" <<EOF
[owlsync]
environment = qa
state_dir = $W/tstate
log_level = warn

[database]
conninfo = $(pg_conninfo tgt)
schema = $S
$OWL_TABLES_INI
[import]
trusted_key = prod $W/prod.key.pub
EOF

imp() { "$OWLSYNC" -c "$W/tgt.ini" import "$@"; }
ledger_rows() { pg_query tgt "SELECT count(*) || ' ' || count(DISTINCT bundle_id) FROM owlsync.bundles"; }

# A first bundle, imported cleanly: later rounds update, delete and insert.
b=$(owl_export_one "$W/src.ini" kills) || exit 2
imp "$b" >/dev/null || exit 2
imported=1

# new_round — a changed source, its bundle B, and the states before and after.
new_round() {
    round=$((round + 1))
    fault_change_src src "$S" "$round" || exit 2
    B=$(owl_export_one "$W/src.ini" kills) || exit 2
    bundles=$((bundles + 1))
    BID=$(owl_bundle_id "$B")
    BEFORE=$(fault_state tgt owl "$S") || exit 2
    fault_clean_state tgt "$W/tgt.ini" "$S" "$B" "$W/after" || exit 2
    AFTER=$(cat "$W/after")
}

# judge — the checks after one fault, and the rerun.
judge() {
    local st which n out rc=0
    kills=$((kills + 1))
    fault_sessions_gone tgt || violation "sessions left open"
    st=$(fault_state tgt owl "$S")
    if which=$(fault_which "$st" "$BEFORE" "$AFTER"); then
        checks=$((checks + 1))
    else
        violation "the target is a mix of before and after"
        which=mix
    fi
    LAST=$which
    n=$(pg_query tgt "SELECT count(*) FROM owlsync.bundles WHERE bundle_id = '$BID'")
    case $which in
        before) n_before=$((n_before + 1)); check "ledger row of a rolled-back import" test "$n" = 0 ;;
        after) n_after=$((n_after + 1)); check "no ledger row of a committed import" test "$n" = 1 ;;
    esac
    out=$(imp "$B" 2>&1) || rc=$?
    reruns=$((reruns + 1))
    check "rerun exited $rc: $out" test "$rc" = 0
    case $which in
        before) check "rerun did not import: $out" grep -q "imported bundle" <<<"$out" ;;
        after) check "rerun was not 'already imported': $out" grep -q "already imported" <<<"$out" ;;
    esac
    imported=$((imported + 1))
    check "after the rerun the target differs from a clean import" \
        test "$(fault_state tgt owl "$S" id)" = "$(cat "$W/after.noid")"
    check "ledger: not one row per bundle ($(ledger_rows), want $imported)" test "$(ledger_rows)" = "$imported $imported"
    out=$(imp "$B" 2>&1)
    check "a second rerun was not 'already imported'" grep -q "already imported" <<<"$out"
    echo "# $FAULT: left as $which; rerun once"
}

# 1. SIGKILL at each write to the server (libpq's sendto), then at the last reads.
new_round
M=0 R=0
if [ -n "$WIRE_POINTS" ] || [ "${READ_POINTS:-3}" != 0 ]; then
    fault_clone tgt owl owl_clean && M=$(fault_wire_calls sendto "$OWLSYNC" -c "$W/tgt.ini.clean" import "$B")
    R=$(fault_clone tgt owl owl_clean && fault_wire_calls recvfrom "$OWLSYNC" -c "$W/tgt.ini.clean" import "$B")
    fault_drop tgt owl_clean
    [[ $M =~ ^[1-9][0-9]*$ && $R =~ ^[1-9][0-9]*$ ]] || { echo "import_kills: a clean import under strace failed" >&2; exit 1; }
    echo "# a clean import of $DATASETS datasets writes to the server $M times, reads $R times"
fi
seen_after=
points=()
for p in $WIRE_POINTS; do
    if [ "$p" = 1..M ]; then points+=($(seq 1 "$M")); else points+=($((p))); fi
done
first=1
for w in "${points[@]}"; do
    [ -n "$first" ] || new_round
    first=''
    [ "$w" -ge 1 ] && [ "$w" -le "$M" ] || { violation "wire point $w outside 1..$M"; continue; }
    FAULT="SIGKILL at write $w of $M"
    fault_kill_at sendto "$w" "$OWLSYNC" -c "$W/tgt.ini" import "$B"
    # (each round's bundle differs: its import may make fewer writes than M)
    if [ "$FAULT_RC" = 0 ]; then unreached=$((unreached + 1)); else check "exit $FAULT_RC when killed at write $w" test "$FAULT_RC" = 137; fi
    judge
    [ "$FAULT_RC" != 0 ] || check "exit 0 but the target is not as after" test "$LAST" = after
    # once a kill point leaves the bundle committed, every later one does
    if [ "$LAST" = after ]; then seen_after=1; elif [ -n "$seen_after" ]; then violation "rolled back after a committed point"; fi
done
for ((r = R - ${READ_POINTS:-3} + 1; r <= R; r++)); do
    [ -n "$first" ] || new_round
    first=
    FAULT="SIGKILL at read $r of $R"
    fault_kill_at recvfrom "$r" "$OWLSYNC" -c "$W/tgt.ini" import "$B"
    judge
done

# 2. SIGKILL after increasing delays, across the whole run of an import.
T=$(cat "$W/after.secs")
for ((k = 1; k <= DELAY_ROUNDS; k++)); do
    [ -n "$first" ] || new_round
    first=
    d=$(awk -v t="$T" -v k="$k" -v n="$DELAY_ROUNDS" 'BEGIN { printf "%.3f", (t + 0.1) * k / n }')
    FAULT="SIGKILL after $d s"
    fault_kill_after "$d" "$OWLSYNC" -c "$W/tgt.ini" import "$B"
    judge
done

# 3. PostgreSQL stopped (fast, or immediate: a crash) in the middle of an
#    import, and started again: the import fails with 1 (retry), the rerun imports.
for ((k = 1; k <= PGSTOP_ROUNDS; k++)); do
    [ -n "$first" ] || new_round
    first=
    d=$(awk -v t="$T" -v k="$k" -v n="$PGSTOP_ROUNDS" 'BEGIN { printf "%.3f", t * k / (n + 1) }')
    mode=fast
    [ $((k % 2)) = 0 ] || mode=immediate
    FAULT="PostgreSQL stopped ($mode) after $d s"
    "$OWLSYNC" -c "$W/tgt.ini" import "$B" >"$W/stopped.out" 2>&1 &
    pid=$!
    sleep "$d"
    _pg_locate tgt && _pg_as_owner "$_PG_DIR" "$PG_BINDIR/pg_ctl" -D "$_PG_DIR/data" -m "$mode" -w -t 30 stop \
        </dev/null >/dev/null 2>&1
    rc=0
    wait "$pid" || rc=$?
    pgstops=$((pgstops + 1))
    check "import exited $rc, not 0 or 1, when the server stopped: $(cat "$W/stopped.out")" test "$rc" -le 1
    pg_up tgt || { violation "server did not start again"; exit 1; }
    kills=$((kills - 1)) # judge counts a kill; this was a server stop
    judge
done

echo "import_kills: $round rounds, $bundles bundles, $kills kills ($n_before left it as before, $n_after as after), $pgstops server stops, $unreached wire points past the end of an import, $reruns reruns, $checks checks passed, $violations violations"
[ "$violations" = 0 ]
