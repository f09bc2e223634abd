#!/usr/bin/env bash
# owlsync round trip on a throwaway PostgreSQL cluster: keygen, export of two
# sample datasets, verify, inspect. Everything it starts and writes is removed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
OWLSYNC=${OWLSYNC:-$here/../owlsync}
source "$here/lib/pg.bash"

work=$(mktemp -d)
cleanup() { pg_stop_all >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT INT TERM

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "start a throwaway PostgreSQL cluster and load the sample metastore"
pg_start prod
pg_load_metastore prod 20
echo "datasets in prod: $(pg_query prod "SELECT count(DISTINCT dataset) FROM owl_rule")"

step "owlsync keygen -o $work/prod.key"
"$OWLSYNC" keygen -o "$work/prod.key"

mkdir -p "$work/outbox" "$work/state"
cat >"$work/prod.ini" <<INI
[owlsync]
environment = prod
state_dir = $work/state

[database]
conninfo = $(pg_conninfo prod)

[export nightly]
datasets = public.ds_1, public.ds_2, public.ds_1%
outbox = $work/outbox
signing_key = $work/prod.key
INI

step "owlsync export -j nightly"
bundle=$("$OWLSYNC" -c "$work/prod.ini" export -j nightly)
echo "$bundle"

step "owlsync verify -k prod.key.pub BUNDLE"
"$OWLSYNC" verify -k "$work/prod.key.pub" "$bundle"

step "owlsync inspect BUNDLE"
"$OWLSYNC" inspect "$bundle"

step "a second export finds nothing new (skip_unchanged)"
"$OWLSYNC" -c "$work/prod.ini" export -j nightly
echo "round trip done; cleaning up"
