#!/usr/bin/env bash
# owlsync demo: a whole promotion from "prod" to "qa" on two throwaway PostgreSQL
# clusters, as a user would run it: keygen, a nightly export job into a drop
# directory, the qa daemon verifying, rewriting and importing, then status.
# Everything it starts is stopped and removed, also when interrupted.
# DEMO_KEEP=1 leaves the clusters running (for the test that checks the result).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
OWLSYNC=${OWLSYNC:-$root/owlsync}
EXAMPLE=${EXAMPLE:-$root/owlsync.ini.example}
source "$here/lib/pg.bash"

work=$(mktemp -d "${TMPDIR:-/tmp}/owlsync-demo.XXXXXX")
daemon_pid=
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
        kill -TERM "$daemon_pid" 2>/dev/null || true
        wait "$daemon_pid" 2>/dev/null || true
    fi
    if [ -z "${DEMO_KEEP:-}" ]; then
        pg_stop_all >/dev/null 2>&1 || true
        rm -rf "$work"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'echo; echo "interrupted: cleaning up"; exit 130' INT TERM

bold= plain=
if [ -t 1 ]; then bold=$(tput bold 2>/dev/null || true); plain=$(tput sgr0 2>/dev/null || true); fi
step() { printf '\n%s== %s%s\n' "$bold" "$*" "$plain"; }
say() { printf '   %s\n' "$*"; }

# The [table] and [rewrite] sections of the example config: both sides share the
# table definitions, and qa applies the example's rewrites.
sections() { # KIND...
    awk -v kinds="$*" '
        /^\[/ { keep = 0; n = split(kinds, k, " "); for (i = 1; i <= n; i++) if (index($0, "[" k[i] " ") == 1) keep = 1 }
        keep { print }' "$EXAMPLE"
}

step "two throwaway PostgreSQL clusters, prod and qa, on Unix sockets in a temporary directory"
pg_start prod
pg_start qa
say "clusters in $PG_BASE"
pg_load_metastore prod 20
pg_load_schema qa
say "prod: $(pg_query prod "SELECT count(DISTINCT dataset) FROM owl_rule") datasets, $(pg_query prod "SELECT count(*) FROM owl_rule") rules"
say "qa:   $(pg_query qa "SELECT count(*) FROM owl_rule") rules (an empty metastore)"

step "owlsync keygen: prod signs, qa trusts the public key"
"$OWLSYNC" keygen -o "$work/prod.key" >"$work/prod.token" 2>/dev/null
say "public key: $(cat "$work/prod.token")"

mkdir -p "$work/drop" "$work/prod-state" "$work/qa-state"
{
    printf '[owlsync]\nenvironment = prod\nstate_dir = %s\nlog_level = warn\n\n' "$work/prod-state"
    printf '[database]\nconninfo = %s\n\n' "$(pg_conninfo prod)"
    sections table
    printf '\n[export nightly]\ndatasets = public.ds_1, public.ds_2, public.special\n'
    printf 'outbox = %s\nsigning_key = %s\nschedule = 0 2 * * *\ntargets = qa\n' "$work/drop" "$work/prod.key"
} >"$work/prod.ini"
{
    printf '[owlsync]\nenvironment = qa\nstate_dir = %s\nlog_level = info\n\n' "$work/qa-state"
    printf '[database]\nconninfo = %s\n\n' "$(pg_conninfo qa)"
    sections table rewrite
    printf '\n[import]\ninbox = %s\ntrusted_key = prod %s\nsettle_time = 1\npoll_interval = 2\n' \
        "$work/drop" "$(cat "$work/prod.token")"
} >"$work/qa.ini"
say "configs: $work/prod.ini and $work/qa.ini (rewrites from $(basename "$EXAMPLE"))"
"$OWLSYNC" -c "$work/qa.ini" check | sed 's/^/   /'

step "qa starts its daemon, watching the drop directory"
"$OWLSYNC" -c "$work/qa.ini" daemon 2>"$work/qa-daemon.log" &
daemon_pid=$!
sleep 1
sed 's/^/   qa daemon: /' "$work/qa-daemon.log"

row="SELECT conn_name, conn_url, agent_name FROM owl_check_repo WHERE dataset = 'public.ds_1'"
step "before: the connection of public.ds_1 in prod"
pg_query prod "$row" | tr '|' '\n' | sed 's/^/   /'

step "prod runs its nightly export job (owlsync export -j nightly)"
bundle=$("$OWLSYNC" -c "$work/prod.ini" export -j nightly)
say "published $bundle"
"$OWLSYNC" inspect "$bundle" | sed -n '3,8p;16,$p' | sed 's/^/   /'

step "qa picks it up: verify, rewrite, import in one transaction"
for _ in $(seq 1 60); do
    if [ "$(pg_query qa "SELECT count(*) FROM pg_tables WHERE schemaname = 'owlsync' AND tablename = 'bundles'")" = 1 ] &&
        [ "$(pg_query qa "SELECT count(*) FROM owlsync.bundles")" -ge 1 ]; then
        break
    fi
    sleep 0.5
done
sed 's/^/   qa daemon: /' "$work/qa-daemon.log" | tail -n +3

step "owlsync status (qa)"
"$OWLSYNC" -c "$work/qa.ini" status | sed 's/^/   /'

step "after: the same row in qa, with qa's connection, host and agent"
pg_query qa "$row" | tr '|' '\n' | sed 's/^/   /'
promoted=$(pg_query qa "SELECT count(*) FROM owl_rule")
expected=$(pg_query prod "SELECT count(*) FROM owl_rule WHERE dataset IN ('public.ds_1', 'public.ds_2', 'public.special')")
say "qa holds $promoted rules; prod has $expected in the three datasets"
if [ "$promoted" != "$expected" ]; then
    echo "demo: the promotion did not complete; the qa daemon's log is above" >&2
    exit 1
fi

step "done: stopping the daemon and removing the clusters"
kill -TERM "$daemon_pid"
wait "$daemon_pid" || true
daemon_pid=
if [ -n "${DEMO_KEEP:-}" ]; then
    say "kept (DEMO_KEEP): $work"
else
    say "everything removed"
fi
