#!/usr/bin/env bats
# make demo's script: the promotion it shows really lands in qa, rewritten, and
# it leaves nothing behind and works a second time.

load ../lib/pg

ROOT=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
OWLSYNC=${OWLSYNC:-$ROOT/owlsync}

teardown_file() {
    pg_stop_all
}

datasets="'public.ds_1', 'public.ds_2', 'public.special'"

@test "the demo promotes the three datasets from prod into qa, with the example's rewrites" {
    # keep the clusters (owned by this test process) to look at qa afterwards
    DEMO_KEEP=1 PG_OWNER_PID=$$ OWLSYNC=$OWLSYNC run "$ROOT/tests/demo.sh"
    echo "$output"
    [ "$status" -eq 0 ]
    [[ $output == *"imported bundle 1 of prod/nightly"* ]]
    for t in owl_rule alert_cond owl_catalog alert_output; do
        src=$(pg_digest prod "$t" "dataset IN ($datasets)")
        dst=$(pg_digest qa "$t")
        [ "${src%% *}" -gt 0 ]
        [ "$src" = "$dst" ] || { echo "$t: prod $src, qa $dst"; return 1; }
    done
    [ "$(pg_query qa "SELECT count(*) FROM owl_rule WHERE dataset NOT IN ($datasets)")" = 0 ]
    # rewritten: qa's connection, hosts and agents, nothing of prod's left
    [ "$(pg_query qa "SELECT conn_name FROM owl_check_repo WHERE dataset = 'public.ds_1'")" = qa_pg ]
    [ "$(pg_query qa "SELECT count(*) FROM owl_check_repo WHERE conn_url LIKE '%prod-db%' OR agent_name LIKE 'prod-agent-%'")" = 0 ]
    [ "$(pg_query qa "SELECT count(*) FROM owl_check_repo WHERE conn_url LIKE '%qa-db%'")" -gt 0 ]
    [ "$(pg_query qa "SELECT count(*) FROM owlsync.bundles")" = 1 ]
}

# Where a demo run kept its work and its clusters, from what it printed.
demo_dirs() {
    work=$(sed -n 's|.*configs: \(/[^ ]*\)/prod.ini.*|\1|p' "$1")
    base=$(sed -n 's|.*clusters in \(/[^ ]*\)$|\1|p' "$1")
    [ -n "$work" ] && [ -n "$base" ]
}

# Nothing of a run is left: its directories and every process that used them.
gone() {
    [ ! -e "$work" ] && [ ! -e "$base" ] || { echo "left: $(ls -d "$work" "$base" 2>/dev/null)"; return 1; }
    for _ in $(seq 1 50); do
        pgrep -f -- "$base" >/dev/null || pgrep -f -- "$work" >/dev/null || return 0
        sleep 0.1
    done
    echo "still running: $(pgrep -a -f -- "$base"; pgrep -a -f -- "$work")"
    return 1
}

@test "the demo cleans up after itself and runs a second time" {
    for n in 1; do  # test 1 ran it once already: this is the second run
        env -u BATS_FILE_TMPDIR OWLSYNC="$OWLSYNC" "$ROOT/tests/demo.sh" >"$BATS_TEST_TMPDIR/out$n" 2>&1 ||
            { cat "$BATS_TEST_TMPDIR/out$n"; return 1; }
        grep -q "everything removed" "$BATS_TEST_TMPDIR/out$n"
        demo_dirs "$BATS_TEST_TMPDIR/out$n"
        gone
    done
}

@test "an interrupted demo stops what it started" {
    # (a background job ignores SIGINT in a script; SIGTERM takes the same path)
    env -u BATS_FILE_TMPDIR OWLSYNC="$OWLSYNC" "$ROOT/tests/demo.sh" >"$BATS_TEST_TMPDIR/out" 2>&1 &
    pid=$!
    for _ in $(seq 1 200); do
        grep -q "qa starts its daemon" "$BATS_TEST_TMPDIR/out" && break
        sleep 0.1
    done
    grep -q "qa starts its daemon" "$BATS_TEST_TMPDIR/out"
    kill -TERM "$pid"
    wait "$pid" || true
    grep -q "interrupted: cleaning up" "$BATS_TEST_TMPDIR/out"
    demo_dirs "$BATS_TEST_TMPDIR/out"
    gone
}
