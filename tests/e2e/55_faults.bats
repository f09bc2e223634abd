#!/usr/bin/env bats
# Fault injection, the short forms of the long runs in tests/long/ (make
# test-long runs them with many more iterations): `owlsync import` killed with
# SIGKILL at chosen writes to the server and after chosen delays, PostgreSQL
# stopped in the middle of an import, three daemons on one inbox with tampered
# bundles and a daemon killed while it drains, and a full disk under the inbox,
# the outbox and state_dir.
#
# The first three run the long scripts with few iterations; each script makes
# its own clusters (tests/lib/pg.bash), prints its counts, and fails on any
# violation, saying which.  What 50_daemon.bats covers (one SIGKILL of the
# daemon mid-import, the database lost mid-import, two daemons on 50 bundles)
# is not repeated here.

bats_require_minimum_version 1.5.0
load ../lib/pg
load ../lib/owl

OWLSYNC=${OWLSYNC:-$BATS_TEST_DIRNAME/../../owlsync}
LONG=$BATS_TEST_DIRNAME/../long

setup_file() {
    if [ ! -x "$OWLSYNC" ]; then
        echo "no owlsync binary at $OWLSYNC (run make)" >&2
        return 1
    fi
    export OWLSYNC
    # two cores: one fault run at a time
    export BATS_NO_PARALLELIZE_WITHIN_FILE=true
}

# long SCRIPT [VAR=VALUE …] — runs tests/long/SCRIPT with those settings;
# shows its counts, and everything it said when it fails.
long() {
    local script=$1
    shift
    run env "$@" "$LONG/$script"
    echo "# $(tail -1 <<<"$output")" >&3
    if [ "$status" -ne 0 ]; then
        echo "$output" >&2
        return 1
    fi
}

@test "SIGKILL of owlsync import at chosen writes to the server (the first, through the middle, COMMIT and after) and at its last reads: as before or as after, never a mix; the rerun imports once" {
    command -v strace >/dev/null || skip "strace is not installed (make deps)"
    long import_kills.sh DATASETS=30 WIRE_POINTS="1 M/3 2*M/3 M-2 M-1 M" READ_POINTS=1 \
        DELAY_ROUNDS=0 PGSTOP_ROUNDS=0
    [[ $output == *" 0 violations"* ]]
    # both outcomes were seen: the kill points span the COMMIT
    [[ $output =~ \(([1-9][0-9]*)\ left\ it\ as\ before,\ ([1-9][0-9]*)\ as\ after\) ]]
}

@test "SIGKILL of owlsync import after increasing delays, and PostgreSQL stopped (fast and immediate) mid-import and started again: never a mix, retried, imported once" {
    command -v strace >/dev/null || skip "strace is not installed (make deps)"
    long import_kills.sh DATASETS=200 WIRE_POINTS= READ_POINTS=0 DELAY_ROUNDS=3 PGSTOP_ROUNDS=2
    [[ $output == *" 0 violations"* ]]
    [[ $output == *" 2 server stops"* ]]
}

@test "three daemons on one inbox, 60 bundles of 4 jobs with 4 tampered copies, a daemon killed 4 times while it drains: each good one imported once in order, each tampered one quarantined (3), nothing left in .work/" {
    long daemons.sh DAEMONS=3 JOBS=4 PER_JOB=14 TAMPERED=4 KILLS=4 KILL_EVERY=0.2 TIMEOUT=300
    [[ $output == *"60 bundles (56 good, 4 tampered)"* ]]
    [[ $output == *" 4 kills"* ]]
    [[ $output == *" 0 violations"* ]]
}

# ------------------------------------------------------------------ a full disk

teardown() {
    if [ -n "${DPID:-}" ]; then
        kill -TERM "$DPID" 2>/dev/null
        wait "$DPID" 2>/dev/null || true
    fi
    if [ -n "${FULL:-}" ] && mountpoint -q "$FULL"; then umount "$FULL"; fi
    pg_stop_all
}

# fill — fills the small file system at $FULL (a file "filler" takes what is left).
fill() {
    dd if=/dev/zero of="$FULL/filler" bs=4k status=none 2>/dev/null || true
    [ "$(df --output=avail -k "$FULL" | tail -1 | tr -d ' ')" -le 4 ]
}

# until_ok SECONDS CMD… — runs CMD every 0.2 s until it succeeds, or fails after SECONDS.
until_ok() {
    local end=$((SECONDS + $1))
    shift
    until "$@"; do
        [ "$SECONDS" -lt "$end" ] || { echo "timed out waiting for: $*" >&2; return 1; }
        sleep 0.2
    done
}

# full_src_ini STATE_DIR OUTBOX — the source's config: job "full", every bulk dataset.
full_src_ini() {
    cat >"$W/src.ini" <<EOF
[owlsync]
environment = prod
state_dir = $1
log_level = warn

[database]
conninfo = $(pg_conninfo src)
schema = disk
$OWL_TABLES_INI
[export full]
datasets = public.ds_%
outbox = $2
signing_key = $W/prod.key
EOF
}

@test "a full disk: under the outbox the export fails (1) leaving nothing; under state_dir it fails (1), its state intact; under the inbox the daemon imports, and keeps a tampered file in .work/ until its reason can be written" {
    W=$BATS_TEST_TMPDIR
    FULL=$W/full
    mkdir -p "$FULL" "$W/state" "$W/out"
    if [ "$(id -u)" != 0 ] || ! mount -t tmpfs -o size=512k tmpfs "$FULL" 2>/dev/null; then
        skip "mounting a small tmpfs needs root (and a system that allows it)"
    fi
    pg_start src
    pg_start tgt
    pg_load_metastore src 20 disk >/dev/null
    pg_load_schema tgt disk >/dev/null
    "$OWLSYNC" keygen -o "$W/prod.key" >/dev/null 2>&1
    mkdir -p "$FULL/out" "$FULL/state" "$FULL/inbox" "$FULL/tstate"

    # the outbox full: exit 1, the outbox named; no file, whole or partial,
    # left in it; the sequence number was taken before publishing (never
    # reused), but no outbox is recorded as having it: the next run publishes 2
    full_src_ini "$W/state" "$FULL/out"
    fill
    run --separate-stderr "$OWLSYNC" -c "$W/src.ini" export -j full --quiet
    [ "$status" -eq 1 ]
    [[ $stderr == *"owlsync export: cannot write $FULL/out/"*"No space left on device"* ]]
    [ -z "$(ls -A "$FULL/out")" ]
    ! grep -q '^outbox ' "$W/state/export-full.state" || false
    rm "$FULL/filler"
    run --separate-stderr "$OWLSYNC" -c "$W/src.ini" export -j full --quiet
    [ "$status" -eq 0 ]
    [[ $output == "$FULL/out/prod_full_"*"_000002.owlb" ]]
    rm -f "$FULL/out"/*

    # state_dir full: exit 1, the state file named; what it held is intact,
    # and once there is room again the job runs as before
    full_src_ini "$FULL/state" "$W/out"
    run --separate-stderr "$OWLSYNC" -c "$W/src.ini" export -j full --quiet
    [ "$status" -eq 0 ]
    cp "$FULL/state/export-full.state" "$W/state.before"
    pg_query src "UPDATE disk.owl_rule SET rule_value = 'changed' WHERE dataset = 'public.ds_1'" >/dev/null
    fill
    run --separate-stderr "$OWLSYNC" -c "$W/src.ini" export -j full --quiet
    [ "$status" -eq 1 ]
    [[ $stderr == *"owlsync export: "*"$FULL/state/export-full.state"*"No space left on device"* ]]
    [ "$(ls "$W/out" | wc -l)" = 1 ]   # nothing published
    cmp "$W/state.before" "$FULL/state/export-full.state"
    [ -z "$(find "$FULL/state" -name '*.tmp')" ]
    rm "$FULL/filler"
    run --separate-stderr "$OWLSYNC" -c "$W/src.ini" export -j full --quiet
    [ "$status" -eq 0 ]
    grep -q '^sequence ' "$FULL/state/export-full.state"

    # the inbox (and the metrics file) full: the good bundle is imported and
    # moved (a rename needs no room); the tampered one cannot get its .reason,
    # so it waits in .work/, and is quarantined with it once there is room
    good=$(ls "$W/out"/*.owlb | head -1)
    cp "$good" "$W/tampered.owlb"
    flip_byte "$W/tampered.owlb" $(($(stat -c %s "$good") / 2))
    I=$FULL/inbox
    cat >"$W/tgt.ini" <<EOF
[owlsync]
environment = qa
state_dir = $FULL/tstate
log_level = info
metrics_file = $FULL/tstate/owlsync.prom

[database]
conninfo = $(pg_conninfo tgt)
schema = disk
$OWL_TABLES_INI
[import]
inbox = $I
trusted_key = prod $W/prod.key.pub
settle_time = 1
poll_interval = 1
EOF
    "$OWLSYNC" -c "$W/tgt.ini" daemon </dev/null >/dev/null 2>"$W/tgt.log" &
    DPID=$!
    until_ok 10 grep -q 'owlsync daemon started' "$W/tgt.log"
    cp "$good" "$W/tampered.owlb" "$I/"
    fill
    until_ok 30 test -f "$I/processed/$(basename "$good")"
    until_ok 30 grep -q 'tampered.owlb.reason (write): No space left on device' "$W/tgt.log"
    sleep 1
    # never in the quarantine without its reason
    [ ! -e "$I/quarantine/tampered.owlb" ] || [ -f "$I/quarantine/tampered.owlb.reason" ]
    [ "$(pg_query tgt "SELECT count(*) FROM owlsync.bundles WHERE file_name = '$(basename "$good")'")" = 1 ]
    kill -0 "$DPID"
    rm "$FULL/filler"
    until_ok 30 test -f "$I/quarantine/tampered.owlb.reason"
    grep -q '^exit_code: 3$' "$I/quarantine/tampered.owlb.reason"
    [ -z "$(ls -A "$I/.work")" ]
    [ "$(pg_query tgt "SELECT count(*) FROM owlsync.bundles")" = 1 ]
}
