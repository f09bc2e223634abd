#!/usr/bin/env bash
# Fault injection, long run: several daemons on one inbox, hundreds of bundles
# of several jobs dropped at once, some of them tampered copies (a byte
# flipped), and a daemon killed with SIGKILL (and restarted) again and again
# while the inbox drains.
#
# Checks: every good bundle imported exactly once (one ledger row per bundle
# id, all of them there), in snapshot order per job (each job exports one
# dataset); every good file in processed/, every tampered one in quarantine/
# with exit code 3 in its .reason; nothing left in the inbox or in .work/;
# the target's rows of each dataset equal the source's; the daemons still run.
# Prints its counts and exits 1 on any violation.
#
#   OWLSYNC=build/owlsync tests/long/daemons.sh
#   environment: DAEMONS (default 3), JOBS (default 4), PER_JOB (bundles per
#   job, default 75), TAMPERED (default 15), KILLS (SIGKILLs while draining,
#   default 10), KILL_EVERY (seconds between them, a fraction too, default 0.5), TIMEOUT
#   (seconds to drain, default 900), KEEP=1 (keep the work directory)
set -u
here=$(cd "$(dirname "$0")" && pwd)
: "${OWLSYNC:?OWLSYNC must name the owlsync binary under test}"
# shellcheck source=../lib/pg.bash
. "$here/../lib/pg.bash"
# shellcheck source=../lib/owl.bash
. "$here/../lib/owl.bash"

DAEMONS=${DAEMONS:-3}
JOBS=${JOBS:-4}
PER_JOB=${PER_JOB:-75}
TAMPERED=${TAMPERED:-15}
KILLS=${KILLS:-10}
KILL_EVERY=${KILL_EVERY:-0.5}
TIMEOUT=${TIMEOUT:-900}
GOOD=$((JOBS * PER_JOB))
TOTAL=$((GOOD + TAMPERED))

W=$(mktemp -d /tmp/owldaemons.XXXXXX)
S=d
declare -A DPID=()
cleanup() {
    local i
    for i in "${!DPID[@]}"; do kill -KILL "${DPID[$i]}" 2>/dev/null; done
    pg_stop_all
    if [ -n "${KEEP:-}" ]; then echo "work directory kept: $W"; else rm -rf "$W"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

kills=0 checks=0 violations=0 restarts=0
violation() {
    violations=$((violations + 1))
    echo "VIOLATION: $*" >&2
}
check() { # DESCRIPTION CMD…
    local d=$1
    shift
    if "$@"; then checks=$((checks + 1)); else violation "$d"; fi
}

I=$W/inbox
mkdir -p "$W/stage" "$W/state" "$I"
pg_start src || exit 2
pg_start tgt || exit 2
pg_load_metastore src "$JOBS" "$S" >/dev/null || exit 2
pg_load_schema tgt "$S" >/dev/null || exit 2
"$OWLSYNC" keygen -o "$W/prod.key" >/dev/null 2>&1 || exit 2
{
    cat <<EOF
[owlsync]
environment = prod
state_dir = $W/state
log_level = warn

[database]
conninfo = $(pg_conninfo src)
schema = $S
$OWL_TABLES_INI
EOF
    for ((j = 1; j <= JOBS; j++)); do
        printf '[export job%d]\ndatasets = public.ds_%d\noutbox = %s\nsigning_key = %s\n' "$j" "$j" "$W/stage" "$W/prod.key"
        printf 'skip_unchanged = false\ntables = owl_catalog, owl_rule\n\n'
    done
} >"$W/src.ini"
for ((d = 1; d <= DAEMONS; d++)); do
    mkdir -p "$W/tstate$d"
    cat >"$W/tgt$d.ini" <<EOF
[owlsync]
environment = qa
state_dir = $W/tstate$d
log_level = info

[database]
conninfo = $(pg_conninfo tgt)
schema = $S
$OWL_TABLES_INI
[import]
inbox = $I
trusted_key = prod $W/prod.key.pub
settle_time = 1
poll_interval = 2
EOF
done

# The bundles: each job's in turn, the source's rows of its dataset changed
# before each, so every bundle carries other content.
t0=$SECONDS
# The jobs export side by side (each job's runs one after the other).
for ((j = 1; j <= JOBS; j++)); do
    (
        for ((r = 1; r <= PER_JOB; r++)); do
            pg_query src "UPDATE $S.owl_rule SET rule_value = 'round $r' WHERE dataset = 'public.ds_$j' AND id % 3 = $r % 3;
                          UPDATE $S.owl_catalog SET created_ts = created_ts + interval '1 second' WHERE dataset = 'public.ds_$j'" >/dev/null
            "$OWLSYNC" -c "$W/src.ini" export -j "job$j" --quiet || exit 1
        done >"$W/good$j.list"
    ) &
done
wait
cat "$W"/good[0-9]*.list >"$W/good.list"
[ "$(wc -l <"$W/good.list")" = "$GOOD" ] || { echo "exports: $(wc -l <"$W/good.list") bundles, want $GOOD" >&2; exit 2; }
# Tampered copies of good bundles spread over them, one byte flipped in the
# middle, each refused by verify (another offset when a flip happened to
# land where nothing is checked).
for ((t = 1; t <= TAMPERED; t++)); do
    src=$(sed -n "$(((t * GOOD / (TAMPERED + 1)) + 1))p" "$W/good.list")
    f=$W/stage/tampered_$(printf %03d "$t").owlb
    size=$(stat -c %s "$src")
    for off in $((size / 2)) $((size / 3)) $((2 * size / 3)) $((size - 40)); do
        cp "$src" "$f"
        flip_byte "$f" "$off"
        if ! "$OWLSYNC" verify -k "$W/prod.key.pub" "$f" >/dev/null 2>&1 &&
            ! "$OWLSYNC" -c "$W/tgt1.ini" import --dry-run "$f" >/dev/null 2>&1; then
            break
        fi
    done
done
# each good bundle's id and file name, as the ledger will have them
while read -r b; do
    id=$("$OWLSYNC" inspect "$b" 2>"$W/inspect.err" </dev/null | awk '$1 == "bundle" && $2 == "id" { print $3 }')
    if [ -z "$id" ]; then
        echo "inspect $b found no bundle id: $(cat "$W/inspect.err")" >&2
        exit 2
    fi
    echo "$id $(basename "$b")"
done <"$W/good.list" | sort >"$W/good.ids" || exit 2
echo "# $GOOD bundles of $JOBS jobs and $TAMPERED tampered copies made in $((SECONDS - t0)) s"

start_daemon() { # N
    local n=$1 i
    "$OWLSYNC" -c "$W/tgt$n.ini" daemon </dev/null >>"$W/tgt$n.out" 2>>"$W/tgt$n.log" &
    DPID[$n]=$!
    for ((i = 0; i < 100; i++)); do
        [ "$(grep -c 'owlsync daemon started' "$W/tgt$n.log")" -gt "${STARTS[$n]:-0}" ] && break
        sleep 0.1
    done
    STARTS[$n]=$(grep -c 'owlsync daemon started' "$W/tgt$n.log")
}
declare -A STARTS=()
nfiles() { find "$1" -maxdepth 1 -type f -name '*.owlb' | wc -l; }
done_count() { echo $(($(nfiles "$I/processed") + $(nfiles "$I/quarantine"))); }

for ((d = 1; d <= DAEMONS; d++)); do touch "$W/tgt$d.log"; start_daemon "$d"; done
mv "$W/stage"/*.owlb "$I/"
t0=$SECONDS
# KILL_EVERY may be a fraction of a second: a fast drain is over in seconds
later() { awk -v t="$EPOCHREALTIME" -v d="$1" 'BEGIN { printf "%.3f", t + d }'; }
past() { awk -v t="$EPOCHREALTIME" -v w="$1" 'BEGIN { exit !(t >= w) }'; }
next_kill=$(later "$KILL_EVERY")
while [ "$(done_count)" -lt "$TOTAL" ]; do
    if [ $((SECONDS - t0)) -ge "$TIMEOUT" ]; then
        violation "not drained after $TIMEOUT s: $(done_count) of $TOTAL done"
        break
    fi
    if [ "$kills" -lt "$KILLS" ] && past "$next_kill"; then
        d=$((RANDOM % DAEMONS + 1))
        kill -KILL "${DPID[$d]}" 2>/dev/null && kills=$((kills + 1))
        { wait "${DPID[$d]}"; } 2>/dev/null
        start_daemon "$d"
        restarts=$((restarts + 1))
        next_kill=$(later "$KILL_EVERY")
    fi
    sleep 0.05
done
drain=$((SECONDS - t0))
sleep 1

pg_query tgt "SELECT bundle_id || ' ' || file_name FROM owlsync.bundles WHERE environment = 'prod' ORDER BY 1" >"$W/ledger.ids"
check "ledger: $(wc -l <"$W/ledger.ids") rows, want $GOOD" test "$(wc -l <"$W/ledger.ids")" = "$GOOD"
check "ledger: a bundle imported twice" test "$(pg_query tgt "SELECT count(*) - count(DISTINCT bundle_id) FROM owlsync.bundles")" = 0
check "ledger rows are not the good bundles: $(diff "$W/good.ids" "$W/ledger.ids" | head -5)" cmp -s "$W/good.ids" "$W/ledger.ids"
for ((j = 1; j <= JOBS; j++)); do
    check "job$j: not imported in snapshot order" test \
        "$(pg_query tgt "SELECT string_agg(sequence::text, ',' ORDER BY imported_at, sequence) FROM owlsync.bundles WHERE job = 'job$j'")" \
        = "$(seq -s, "$PER_JOB")"
    a=$(PGOPTIONS='-c timezone=UTC' pg_query src "SELECT md5(string_agg((to_jsonb(t) - 'id')::text, ',' ORDER BY rule_nm)) FROM $S.owl_rule t WHERE dataset = 'public.ds_$j'")
    b=$(PGOPTIONS='-c timezone=UTC' pg_query tgt "SELECT md5(string_agg((to_jsonb(t) - 'id')::text, ',' ORDER BY rule_nm)) FROM $S.owl_rule t WHERE dataset = 'public.ds_$j'")
    check "job$j: the target's rules differ from the source's" test "$a" = "$b"
    a=$(PGOPTIONS='-c timezone=UTC' pg_query src "SELECT created_ts FROM $S.owl_catalog WHERE dataset = 'public.ds_$j'")
    b=$(PGOPTIONS='-c timezone=UTC' pg_query tgt "SELECT created_ts FROM $S.owl_catalog WHERE dataset = 'public.ds_$j'")
    check "job$j: the target's catalog row differs from the source's" test "$a" = "$b"
done
check "processed/ holds $(nfiles "$I/processed") files, want $GOOD" test "$(nfiles "$I/processed")" = "$GOOD"
q=$(find "$I/quarantine" -maxdepth 1 -name '*.owlb' -printf '%f\n' | sort | tr '\n' ' ')
want=$(for ((t = 1; t <= TAMPERED; t++)); do printf 'tampered_%03d.owlb ' "$t"; done)
check "quarantine/ holds '$q', want the tampered files" test "$q" = "$want"
for f in "$I"/quarantine/*.owlb; do
    [ -e "$f" ] || continue
    check "$(basename "$f").reason lacks exit_code: 3" grep -q '^exit_code: 3$' "$f.reason"
done
check "left in the inbox: $(ls "$I" | grep owlb | head -3)" test "$(nfiles "$I")" = 0
check "left in .work/: $(ls -A "$I/.work" | head -3)" test -z "$(ls -A "$I/.work")"
superseded=$(cat "$W"/tgt*.log | grep -c "superseded, not applied" || true)
check "$superseded bundles superseded (imported out of order)" test "$superseded" = 0
imports=$(cat "$W"/tgt*.log | grep -c ": imported bundle" || true)
resumed=$(cat "$W"/tgt*.log | grep -c "left in .work by an interrupted run" || true)
for ((d = 1; d <= DAEMONS; d++)); do
    check "daemon $d is gone" kill -0 "${DPID[$d]}"
    kill -TERM "${DPID[$d]}" 2>/dev/null
done
for ((d = 1; d <= DAEMONS; d++)); do
    rc=0
    wait "${DPID[$d]}" || rc=$?
    check "daemon $d exited $rc on SIGTERM" test "$rc" = 0
done
DPID=()
if [ "$violations" != 0 ]; then
    for ((d = 1; d <= DAEMONS; d++)); do grep -E 'superseded|error|warn|quarantined' "$W/tgt$d.log" | grep -v tampered_ | tail -5 >&2; done
fi

echo "daemons: $DAEMONS daemons, $TOTAL bundles ($GOOD good, $TAMPERED tampered), drained in $drain s, $kills kills, $restarts restarts, $imports imports logged, $resumed taken up from .work/ after a kill, $checks checks passed, $violations violations"
[ "$violations" = 0 ]
