#!/usr/bin/env bash
# owlsync export under kill -9, the long version (make test-long; the quick one
# is tests/e2e/22_publish.bats): an export job with two outboxes is killed
#   1. on entering every call of SYSCALLS a publishing run makes (strace),
#   2. on entering every fsync, rename, link and unlink where
#      renameat2(RENAME_NOREPLACE) fails with EINVAL, as on NFS and CIFS
#      (publishing then goes by link(2)),
#   3. after K ms, for K across the length of a whole run (kill -9),
# and after each kill every outbox is checked (tests/lib/publish.bash: only
# whole bundles visible, no sequence number twice, nothing published ever
# replaced or removed, numbers only grow), the job is run again and checked,
# and run once more, which must find every outbox holding the content.
# Prints its counts: kills, reruns, checks. Environment (optional): DATASETS
# (default 50), SYSCALLS (default: those of publishing, and openat and write), TIMED (number of timed kills, default 60).
set -u
here=$(cd "$(dirname "$0")" && pwd)
: "${OWLSYNC:?OWLSYNC must name the owlsync binary under test}"
export OWLSYNC
DATASETS=${DATASETS:-50}
SYSCALLS=${SYSCALLS:-fsync renameat renameat2 linkat unlinkat openat write fchmod}
TIMED=${TIMED:-60}
command -v strace >/dev/null || { echo "export_kills: strace missing (make deps)" >&2; exit 1; }

# shellcheck disable=SC1091 # found beside this script
. "$here/../lib/pg.bash"
# shellcheck disable=SC1091
. "$here/../lib/publish.bash"

W=$(mktemp -d "${TMPDIR:-/tmp}/owlsync-kills.XXXXXX")
trap 'pg_stop_all; rm -rf "$W"' EXIT
pg_start src || exit 1
pg_load_metastore src "$DATASETS" || exit 1
"$OWLSYNC" keygen -o "$W/k" >/dev/null 2>&1 || exit 1
mkdir "$W/o1" "$W/o2"
cat >"$W/ini" <<EOF
[owlsync]
environment = prod
state_dir = $W/state
[database]
conninfo = $(pg_conninfo src)
[export j]
datasets = public.ds_%
outbox = $W/o1
outbox = $W/o2
signing_key = $W/k
skip_unchanged = true
EOF

failed=0
round=0
EXTRA=                                  # strace injections of the current phase

# export_job: one run of the job, under strace with the injections of $EXTRA when set.
export_job() {
    if [ -n "$EXTRA" ]; then
        # shellcheck disable=SC2086
        pub_strace -f -qq -o /dev/null $EXTRA "$OWLSYNC" -c "$W/ini" export -j j --quiet
    else
        "$OWLSYNC" -c "$W/ini" export -j j --quiet
    fi
}

edit() {
    round=$((round + 1))
    pg_query src "UPDATE owl_rule SET points = $round WHERE dataset = 'public.ds_1' AND rule_nm = 'rule_1'" >/dev/null
}

check() { # WHAT
    pub_check "$W/o1" "$W/seen1" "$W/k.pub" && pub_check "$W/o2" "$W/seen2" "$W/k.pub" && return 0
    echo "export_kills: FAILED after $1"
    failed=$((failed + 1))
    return 1
}

# after_kill WHAT: the checks, the rerun, the checks, and one more run that
# finds the content in every outbox already.
after_kill() {
    check "the kill at $1" || return 1
    PUB_RERUNS=$((PUB_RERUNS + 1))
    if ! export_job >"$W/rerun.out" 2>"$W/rerun.err"; then
        echo "export_kills: FAILED: the rerun after the kill at $1:"; cat "$W/rerun.err"
        failed=$((failed + 1)); return 1
    fi
    check "the rerun after the kill at $1" || return 1
    if ! export_job >"$W/again.out" 2>"$W/again.err" || [ -s "$W/again.out" ]; then
        echo "export_kills: FAILED: after the kill at $1 and a rerun, a third run published again:"
        cat "$W/again.out" "$W/again.err"
        failed=$((failed + 1)); return 1
    fi
}

# phase NAME CALLS: kills at every call of CALLS (names) a publishing run
# makes (under $EXTRA).
phase() {
    local sc n count kills0=$PUB_KILLS extra=$EXTRA calls=$2
    edit
    # shellcheck disable=SC2086
    pub_strace -f -qq -o "$W/trace" -e trace="${calls// /,}" $extra "$OWLSYNC" -c "$W/ini" export -j j --quiet \
        >/dev/null 2>&1
    check "the traced run" || return 1
    for sc in $calls; do
        [[ $extra == *"inject=$sc:"* ]] && continue
        count=$(pub_count "$sc" "$W/trace")
        for ((n = 1; n <= count; n++)); do
            edit
            PUB_STRACE_EXTRA=$extra pub_strace_kill "$sc" "$n" "$OWLSYNC" -c "$W/ini" export -j j --quiet
            if [ "$PUB_RC" -ne 137 ]; then
                echo "export_kills: $1: $sc:$n not reached (exit $PUB_RC)"
            fi
            after_kill "$1 $sc:$n" || return 1
        done
        echo "export_kills: $1: $sc: $count calls, each killed in turn"
    done
    echo "export_kills: $1: $((PUB_KILLS - kills0)) kills"
}

# timed: kill -9 after K ms, for K across the length of a clean run.
timed() {
    local t0 t1 len k i pid kills0=$PUB_KILLS
    edit
    t0=$(date +%s%N)
    export_job >/dev/null 2>&1
    t1=$(date +%s%N)
    check "the timed run" || return 1
    len=$(((t1 - t0) / 1000000))
    for ((i = 0; i < TIMED; i++)); do
        k=$((len * i / TIMED + RANDOM % 5))
        edit
        "$OWLSYNC" -c "$W/ini" export -j j --quiet >/dev/null 2>&1 &
        pid=$!
        sleep "$(printf '0.%03d' "$k")" 2>/dev/null || sleep "$((k / 1000))"
        if kill -KILL "$pid" 2>/dev/null; then PUB_KILLS=$((PUB_KILLS + 1)); fi
        wait "$pid" 2>/dev/null
        after_kill "timed ${k}ms" || return 1
    done
    echo "export_kills: timed: $((PUB_KILLS - kills0)) kills across ${len} ms"
}

start=$(date +%s)
phase "every call" "$SYSCALLS" &&
    EXTRA="-e inject=renameat2:error=EINVAL" phase "link(2) instead of RENAME_NOREPLACE" "fsync renameat renameat2 linkat unlinkat" &&
    timed
echo "export_kills: kills $PUB_KILLS, reruns $PUB_RERUNS, checks $PUB_CHECKS;" \
    "sequences published $(wc -l <"$W/seen1"), highest $(pub_seqs "$W/seen1" | awk '{ print $NF }');" \
    "$(($(date +%s) - start)) s; $failed failed"
[ "$failed" -eq 0 ]
