#!/usr/bin/env bats
# owlsync reports at scale, end to end: a bundle of 2,000 datasets of which
# two change. The dry run and import reports stay a screenful (per table, then
# the datasets that change), --all-datasets and --json keep every dataset,
# inspect elides a long dataset list with a count, and import progress on a
# terminal shows percentage and time left (a pseudo-terminal from script(1)).
#
# The files share one source and target schema (big), set up once: the first
# bundle is imported in setup_file, the second (two rows changed) is what the
# tests report on; the tests that import it for real come last.

bats_require_minimum_version 1.5.0
load ../lib/pg
load ../lib/owl
load ../lib/import

OWLSYNC=${OWLSYNC:-$BATS_TEST_DIRNAME/../../owlsync}
TABLES_INI=$OWL_TABLES_INI
N=2000

setup_file() {
    import_setup_file prod
    W=$BATS_FILE_TMPDIR/w
    K=$BATS_FILE_TMPDIR/keys
    mkdir -p "$W/out" "$W/state"
    pair big "$N"
    job nightly "public.ds_%"
    b1=$(mkbundle nightly) || return 1
    "$OWLSYNC" -c "$W/tgt.ini" import "$b1" >/dev/null || return 1
    # two rows change, in two datasets
    pg_psql src -c "SET search_path TO $S" -c "
        UPDATE owl_rule SET points = 99 WHERE dataset = 'public.ds_7' AND rule_nm = 'rule_3';
        DELETE FROM owl_rule WHERE dataset = 'public.ds_1234' AND rule_nm = 'rule_5'" >/dev/null
    b2=$(mkbundle nightly) || return 1
    printf '%s\n' "$b2" >"$BATS_FILE_TMPDIR/b2"
}

teardown_file() {
    pg_stop_all
}

setup() {
    W=$BATS_FILE_TMPDIR/w
    K=$BATS_FILE_TMPDIR/keys
    S=big
    B2=$(cat "$BATS_FILE_TMPDIR/b2")
}

# per_dataset_rows — the last imp's per-dataset rows ("    public.ds_N  …").
per_dataset_rows() {
    grep -E '^    public\.ds_[0-9]+ ' <<<"$output" || true
}

@test "a dry run of 2 changed rows among $N datasets prints a short report that names the 2 datasets" {
    state=$(tgt_state)
    imp --dry-run "$B2"
    [ "$status" -eq 0 ]
    [[ $output == *"dry run of bundle 2 of prod/nightly ($N datasets)"* ]]
    [ "$(wc -l <<<"$output")" -le 20 ]
    # the tables, with their totals
    rules=$(owl_expected_rows owl_rule "$N")
    printed_counts owl_rule 0 1 1 $((rules - 9 - 2))   # less the special datasets' 9
    printed_counts owl_catalog 0 0 0 "$N"
    # the datasets that change, and no other
    printed_counts public.ds_7 0 1 0 19
    printed_counts public.ds_1234 0 0 1 19
    [ "$(per_dataset_rows | wc -l)" -eq 2 ]
    [[ $output == *"  2 of 2,000 datasets would change"* ]]
    [[ $output == *"dry run: rolled back, nothing was written"* ]]
    [ "$(tgt_state)" = "$state" ]
}

@test "--all-datasets lists every dataset of every table, changed or not" {
    imp --dry-run --all-datasets "$B2"
    [ "$status" -eq 0 ]
    printed_counts public.ds_7 0 1 0 19
    printed_counts public.ds_8 0 0 0 20
    # every dataset, under each of the 8 tables that have a dataset column
    [ "$(per_dataset_rows | awk '{ print $1 }' | sort -u | wc -l)" -eq "$N" ]
    [ "$(per_dataset_rows | wc -l)" -eq $((8 * N)) ]
    [[ $output == *"  2 of 2,000 datasets would change"* ]]
}

@test "a dry run with more changed datasets than it shows says how many more" {
    # 25 datasets gain a rule: 20 of them are shown under owl_rule, then the count
    pg_psql src -c "SET search_path TO $S" \
        -c "INSERT INTO owl_rule (dataset, rule_nm) SELECT 'public.ds_' || d, 'extra' FROM generate_series(101, 125) d" >/dev/null
    b=$(mkbundle nightly)
    pg_psql src -c "DELETE FROM $S.owl_rule WHERE rule_nm = 'extra'" >/dev/null
    imp --dry-run "$b"
    [ "$status" -eq 0 ]
    [ "$(per_dataset_rows | wc -l)" -eq 20 ]   # 20 of owl_rule's 27 (25 and the 2 of b2), nothing else changes
    [[ $output == *"    … and 7 more datasets change here (--all-datasets lists every dataset)"* ]]
    [[ $output == *"  27 of 2,000 datasets would change"* ]]
    [ "$(wc -l <<<"$output")" -le 40 ]
}

@test "--json keeps every dataset of every table, with its counts" {
    imp --dry-run --json "$B2"
    [ "$status" -eq 0 ]
    python3 -c '
import json, sys
n = int(sys.argv[1])
r = json.load(sys.stdin)
assert r["status"] == "dry_run", r["status"]
t = {x["name"]: x for x in r["tables"]}
d = {x["dataset"]: x for x in t["owl_rule"]["datasets"]}
assert len(d) == n, len(d)
assert (d["public.ds_7"]["updated"], d["public.ds_1234"]["deleted"], d["public.ds_8"]["unchanged"]) == (1, 1, 20), d["public.ds_7"]
changed = {k for k, v in d.items() if v["inserted"] or v["updated"] or v["deleted"]}
assert changed == {"public.ds_7", "public.ds_1234"}, changed
' "$N" <<<"$output"
}

@test "inspect shows the first 10 of $N dataset names and how many more; --all-datasets and --json every one" {
    run --separate-stderr "$OWLSYNC" inspect "$B2"
    [ "$status" -eq 0 ]
    line=$(grep '^datasets ' <<<"$output")
    [[ $line == "datasets     $N: public.ds_1, public.ds_10, public.ds_100, "* ]]
    [[ $line == *", … and 1,990 more (--all-datasets lists them)" ]]
    [ "$(tr ', ' '\n\n' <<<"$line" | grep -c '^public\.ds_')" -eq 10 ]
    [ "$(awk '{ if (length($0) > m) m = length($0) } END { print m }' <<<"$output")" -le 250 ]

    run --separate-stderr "$OWLSYNC" inspect --all-datasets "$B2"
    [ "$status" -eq 0 ]
    line=$(grep '^datasets ' <<<"$output")
    [ "$(tr ',' '\n' <<<"$line" | grep -c 'public\.ds_')" -eq "$N" ]
    [[ $line != *"more"* ]]

    run --separate-stderr "$OWLSYNC" inspect --json "$B2"
    [ "$status" -eq 0 ]
    [ "$(python3 -c 'import json, sys; print(len(json.load(sys.stdin)["manifest"]["datasets"]))' <<<"$output")" -eq "$N" ]
}

@test "import progress on a terminal shows percentage and time left; not when stderr is no terminal; a plain import names the datasets it changes" {
    command -v script >/dev/null || skip "no script(1) (util-linux)"
    script -qec 'test -t 2' /dev/null >/dev/null </dev/null || skip "script(1) cannot give a pseudo-terminal here"
    # not a terminal: no progress line at all
    imp --dry-run "$B2"
    [ "$status" -eq 0 ]
    [[ $stderr != *"%"* ]]
    [[ $stderr != *"ETA"* ]]

    # on a terminal: percentage of the bundle's unpacked bytes, and time left
    # while some are still to come (of each of the two passes); then the report
    script -qec "$(printf '%q ' "$OWLSYNC" -c "$W/tgt.ini" import "$B2")" "$W/tty.log" >/dev/null </dev/null
    tty=$(tr '\r' '\n' <"$W/tty.log")
    grep -Eq '^.*import [a-z_]+ +[0-9.]+ of [0-9.]+ MB +[0-9]{1,2}% +[0-9.]+ MB/s  ETA [0-9]+:[0-9]{2}$' <<<"$tty"
    grep -Eq 'import applying +[0-9.]+ of [0-9.]+ MB 100%' <<<"$tty"
    # the first pass, which checks every entry's hash, shows too
    grep -Eq 'import verifying +[0-9.]+ of [0-9.]+ MB +[0-9]{1,3}%' <<<"$tty"
    [[ $tty == *"imported bundle 2 of prod/nightly ($N datasets)"* ]]
    # a plain import names the datasets that change, with what changed in
    # each (not its unchanged rows: it spares counting them per dataset)
    output=$(grep -Ev 'ETA|MB/s|%' <<<"$tty")
    [ "$(per_dataset_rows | wc -l)" -eq 2 ]
    printed_counts public.ds_7 0 1 0 -
    printed_counts public.ds_1234 0 0 1 -
    [[ $output == *"  2 of 2,000 datasets changed"* ]]
    [ "$(grep -c . <<<"$output")" -le 20 ]
    same_as_src "dataset LIKE 'public.ds_%'"
}

@test "--all-datasets on a real import lists every dataset with what changed" {
    pg_psql src -c "UPDATE $S.owl_catalog SET alias_nm = 'renamed' WHERE dataset = 'public.ds_42'" >/dev/null
    b=$(mkbundle nightly)
    imp --all-datasets "$b"
    [ "$status" -eq 0 ]
    [[ $output == *"imported bundle 4 of prod/nightly ($N datasets)"* ]]
    printed_counts public.ds_42 0 1 0 0
    [ "$(per_dataset_rows | wc -l)" -eq $((8 * N)) ]
    [[ $output == *"  1 of 2,000 datasets changed"* ]]
    same_as_src "dataset LIKE 'public.ds_%'"
}
