#!/usr/bin/env bats
# owlsync export, publishing under faults, end to end against a throwaway
# PostgreSQL cluster: kill -9 at each step of publishing (strace stops the
# export on entering a chosen system call) and a rerun; a bundle name already
# taken; a full state_dir; link(2) where RENAME_NOREPLACE is missing; what each
# outbox received; -o DIR. The many-kill version is tests/long/export_kills.sh
# (make test-long).

bats_require_minimum_version 1.5.0
load ../lib/pg
load ../lib/publish

setup_file() {
    export OWLSYNC=${OWLSYNC:-$BATS_TEST_DIRNAME/../../owlsync}
    [ -x "$OWLSYNC" ] || { echo "no owlsync binary at $OWLSYNC (run make)" >&2; return 1; }
    command -v strace >/dev/null || { echo "strace missing (make deps)" >&2; return 1; }
    pg_start src
    pg_load_metastore src 20
    "$OWLSYNC" keygen -o "$BATS_FILE_TMPDIR/k" >/dev/null 2>&1
}

teardown_file() {
    pg_stop_all
}

setup() {
    W=$BATS_TEST_TMPDIR
    OUT=$W/out
    INI=$W/owlsync.ini
    KEY=$BATS_FILE_TMPDIR/k
    STATE=$W/state
    mkdir -p "$OUT"
}

teardown() {
    if [ -n "${MOUNTED:-}" ]; then umount "$MOUNTED" || umount -l "$MOUNTED" || true; fi
}

# job_ini LINE… — $INI: environment prod, state in $STATE, and [export j] of
# public.ds_1 into $OUT signed by $KEY; each LINE follows it.
job_ini() {
    {
        printf '[owlsync]\nenvironment = prod\nstate_dir = %s\n' "$STATE"
        printf '[database]\nconninfo = %s\n' "$(pg_conninfo src)"
        printf '[export j]\ndatasets = public.ds_1\noutbox = %s\nsigning_key = %s\n' "$OUT" "$KEY"
        if [ $# -gt 0 ]; then printf '%s\n' "$@"; fi
    } >"$INI"
}

# owl_export ARGS… — `owlsync -c $INI export ARGS…` through bats' run.
owl_export() {
    run --separate-stderr "$OWLSYNC" -c "$INI" export --quiet "$@"
    echo "export $*: exit $status"
    echo "stdout: $output"
    echo "stderr: $stderr"
}

# edit — changes a row of public.ds_1, so that the next export has new content.
edit() {
    pg_query src "UPDATE owl_rule SET points = points + 1 WHERE dataset = 'public.ds_1' AND rule_nm = 'rule_1'"
}

# visible DIR — the bundles in DIR, by name, on one line.
visible() {
    (cd "$1" && ls -- *.owlb 2>/dev/null | tr '\n' ' ' | sed 's/ $//')
}

@test "kill -9 at each step of publishing, then a rerun: no partial bundle, no number twice, nothing replaced" {
    job_ini 'skip_unchanged = false'
    mkdir "$W/o2"
    sed -i "/^outbox = /a outbox = $W/o2" "$INI"
    # a clean run, traced: how many of each call it makes
    pub_strace -f -qq -o "$W/trace" -e trace=fsync,renameat,renameat2,linkat,unlinkat \
        "$OWLSYNC" -c "$INI" export -j j --quiet >/dev/null
    pub_check "$OUT" "$W/seen1" "$KEY.pub"
    pub_check "$W/o2" "$W/seen2" "$KEY.pub"
    mapfile -t points < <(pub_points "$W/trace")
    echo "# ${#points[@]} kill points: ${points[*]}" >&3
    [ "${#points[@]}" -ge 8 ]
    for p in "${points[@]}"; do
        edit    # new content each time: a number used twice would show
        PUB_LOG=$W/kill.log pub_strace_kill "${p%:*}" "${p#*:}" "$OWLSYNC" -c "$INI" export -j j --quiet
        [ "$PUB_RC" -eq 137 ] || { echo "$p: exit $PUB_RC, not killed"; cat "$W/kill.log"; false; }
        pub_check "$OUT" "$W/seen1" "$KEY.pub" || { echo "after the kill at $p"; false; }
        pub_check "$W/o2" "$W/seen2" "$KEY.pub" || { echo "after the kill at $p"; false; }
        "$OWLSYNC" -c "$INI" export -j j --quiet >"$W/rerun.out" 2>"$W/rerun.err" ||
            { echo "rerun after the kill at $p failed:"; cat "$W/rerun.err"; false; }
        [ "$(wc -l <"$W/rerun.out")" -eq 2 ]
        pub_check "$OUT" "$W/seen1" "$KEY.pub" || { echo "after the rerun that followed the kill at $p"; false; }
        pub_check "$W/o2" "$W/seen2" "$KEY.pub" || { echo "after the rerun that followed the kill at $p"; false; }
    done
    echo "# kills $PUB_KILLS, checks $PUB_CHECKS; sequences in $OUT: $(pub_seqs "$W/seen1")" >&3
    [ "$PUB_KILLS" -eq "${#points[@]}" ]
    # a run killed after it took its number skipped it: numbers only grow, with gaps
    [ "$(pub_seqs "$W/seen1" | wc -w)" -lt "$(tail -1 "$W/seen1" | awk '{ print $4 }')" ]
    # a killed run leaves at most hidden temporary files, which the next run
    # removes; those of job j_x are j_x's own
    [ -z "$(ls -A "$OUT" | grep -v '\.owlb$')" ]
    : >"$OUT/.prod_j_x_20200101T000000Z_000001.owlb.tmp"
    : >"$OUT/.prod_j_20200101T000000Z_000001.owlb.tmp"
    "$OWLSYNC" -c "$INI" export -j j --quiet >/dev/null 2>&1
    [ "$(ls -A "$OUT" | grep -v '\.owlb$')" = .prod_j_x_20200101T000000Z_000001.owlb.tmp ]
}

@test "a bundle name already taken is never replaced: that outbox fails (exit 1), the next run takes the next number" {
    job_ini
    # what a lost or restored state would meet: sequence 1 of job j, named for
    # every second this test may run in
    now=$(date -u +%s)
    for ((t = now - 2; t <= now + 20; t++)); do
        echo "planted $t" >"$OUT/prod_j_$(date -u -d "@$t" +%Y%m%dT%H%M%SZ)_000001.owlb"
    done
    (cd "$OUT" && b2sum -- * && stat -c '%n %i' -- *) >"$W/before"
    owl_export -j j
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    [ "$(grep -c '^owlsync export: ' <<<"$stderr")" -eq 1 ]
    [[ $stderr == *"_000001.owlb already exists: sequence number 1 of export job j was published before, and is left as it is"* ]]
    [[ $stderr == *"HINT: was $STATE/export-j.state deleted or restored from a copy?"* ]]
    [ "$(cd "$OUT" && b2sum -- * && stat -c '%n %i' -- *)" = "$(cat "$W/before")" ]
    [ -z "$(ls -A "$OUT" | grep -v '_000001\.owlb$')" ]
    # number 1 stays taken: the rerun publishes 2, the planted files untouched
    owl_export -j j
    [ "$status" -eq 0 ]
    [[ $output == "$OUT"/prod_j_*_000002.owlb ]]
    "$OWLSYNC" verify -k "$KEY.pub" "$output"
    rm "$output"
    [ "$(cd "$OUT" && b2sum -- * && stat -c '%n %i' -- *)" = "$(cat "$W/before")" ]
}

@test "a full state_dir: exit 1 before anything is published; with room again the next run publishes" {
    job_ini
    mkdir "$STATE"
    if mount -t tmpfs -o size=256k,mode=0750 owlsync-test "$STATE" 2>/dev/null; then
        MOUNTED=$STATE
        owl_export -j j                  # bundle 1, with room
        [ "$status" -eq 0 ]
        b1=$output
        edit
        dd if=/dev/zero of="$STATE/fill" bs=4k 2>/dev/null || true
        owl_export -j j
        [ "$status" -eq 1 ]
        [ -z "$output" ]
        [ "$(grep -c '^owlsync export: ' <<<"$stderr")" -eq 1 ]
        [[ $stderr == *"owlsync export: nothing published: sequence number 2 of export job j could not be saved first: cannot write $STATE/export-j.state (write): No space left on device"* ]]
        [[ $stderr == *"HINT: make room in state_dir $STATE"* ]]
        [ "$(visible "$OUT")" = "${b1##*/}" ]
        [ -z "$(ls -A "$OUT" | grep -v '\.owlb$')" ]
        rm "$STATE/fill"
        owl_export -j j
        [ "$status" -eq 0 ]
        [[ $output == "$OUT"/prod_j_*_000002.owlb ]]
    else
        echo "# tmpfs not mountable here: ENOSPC injected by strace instead" >&3
        owl_export -j j
        [ "$status" -eq 0 ]
        edit
    fi
    # the same, where only the state file's writes fail (strace), and then
    # where only the second one does, after the bundle was published
    edit
    run --separate-stderr pub_strace -f -qq -o /dev/null -P "$STATE/.export-j.state.tmp" \
        -e trace=write -e inject=write:error=ENOSPC "$OWLSYNC" -c "$INI" export -j j --quiet
    echo "$stderr"
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    [[ $stderr == *"nothing published: sequence number "*" of export job j could not be saved first: cannot write $STATE/export-j.state (write): No space left on device"* ]]
    before=$(visible "$OUT")
    run --separate-stderr pub_strace -f -qq -o /dev/null -P "$STATE/.export-j.state.tmp" \
        -e trace=write -e inject=write:error=ENOSPC:when=2 "$OWLSYNC" -c "$INI" export -j j --quiet
    echo "$stderr"
    [ "$status" -eq 1 ]
    [[ $output == "$OUT"/prod_j_*.owlb ]] && [ -f "$output" ]
    [[ $stderr == *"bundle "*" published but not recorded (the next run publishes its content again, under a new number): cannot write $STATE/export-j.state (write): No space left on device"* ]]
    seq=${output##*_}
    # unchanged content, but the outbox is not known to have it: published again, as the next number
    owl_export -j j
    [ "$status" -eq 0 ]
    [[ $output == "$OUT"/prod_j_*_$(printf '%06d' $((10#${seq%.owlb} + 1))).owlb ]]
    owl_export -j j
    [ "$status" -eq 0 ]
    [ -z "$output" ]
    [[ $stderr == *"unchanged since bundle $((10#${seq%.owlb} + 1))"* ]]
    [ "$(visible "$OUT" | wc -w)" -eq $(($(wc -w <<<"$before") + 2)) ]
}

@test "an outbox that missed a bundle gets it on the next run whatever skip_unchanged says; the others do not" {
    : >"$W/o2"                          # not a directory yet
    job_ini "outbox = $W/o2" 'skip_unchanged = true'
    owl_export -j j
    [ "$status" -eq 1 ]
    [[ $output == "$OUT"/prod_j_*_000001.owlb ]]
    [[ $stderr == *"bundle 1 published to 1 of 2 outboxes: cannot write to outbox $W/o2: Not a directory"* ]]
    rm "$W/o2" && mkdir "$W/o2"
    # nothing changed: only the outbox that missed it gets it, as bundle 2
    owl_export -j j
    [ "$status" -eq 0 ]
    [[ $output == "$W/o2"/prod_j_*_000002.owlb ]]
    [[ $stderr == *"outbox $W/o2 has not received bundle 1 or its content: it gets it now"* ]]
    [ "$(visible "$OUT" | wc -w)" -eq 1 ]
    owl_export -j j
    [ "$status" -eq 0 ]
    [ -z "$output" ]
    [[ $stderr == *"unchanged since bundle 2"* ]]
    # an outbox added to the job is one that missed it too
    mkdir "$W/o3"
    sed -i "/^outbox = .*o2$/a outbox = $W/o3" "$INI"
    owl_export -j j
    [ "$status" -eq 0 ]
    [[ $output == "$W/o3"/prod_j_*_000003.owlb ]]
    # new content goes everywhere, and the state lists each outbox once
    edit
    owl_export -j j
    [ "$status" -eq 0 ]
    [ "$(wc -l <<<"$output")" -eq 3 ]
    [ "$(grep -c '^outbox 4 ' "$STATE/export-j.state")" -eq 3 ]
    # the same directory named twice gets one file
    sed -i "/^outbox = .*o3$/a outbox = $W/o3/" "$INI"
    edit
    owl_export -j j
    [ "$status" -eq 0 ]
    [ "$(visible "$W/o3" | wc -w)" -eq 3 ]
}

@test "-o DIR takes a number of the job's and changes nothing else of its state" {
    job_ini 'skip_unchanged = true'
    owl_export -j j
    [ "$status" -eq 0 ]
    [[ $output == "$OUT"/prod_j_*_000001.owlb ]]
    cp "$STATE/export-j.state" "$W/state.before"
    cp "$STATE/export-j.datasets" "$W/datasets.before"
    mkdir "$W/d"
    edit
    owl_export -j j -o "$W/d"
    [ "$status" -eq 0 ]
    [[ $output == "$W/d"/prod_j_*_000002.owlb ]]
    # only the sequence taken changed
    diff <(grep -v '^sequence ' "$W/state.before") <(grep -v '^sequence ' "$STATE/export-j.state")
    grep -qx 'sequence 2' "$STATE/export-j.state"
    cmp "$W/datasets.before" "$STATE/export-j.datasets"
    # the job's outbox has not received the new content: it gets it, as 3
    owl_export -j j
    [ "$status" -eq 0 ]
    [[ $output == "$OUT"/prod_j_*_000003.owlb ]]
    owl_export -j j
    [ "$status" -eq 0 ]
    [ -z "$output" ]
    # -o asks for a bundle where the job keeps no record: it gets one
    owl_export -j j -o "$W/d"
    [ "$status" -eq 0 ]
    [[ $output == "$W/d"/prod_j_*_000004.owlb ]]
}

@test "two outbox lines, one missing: exit 1 publishing to the other; fixed, the rerun delivers there though nothing changed" {
    job_ini "outbox = $W/o2" 'skip_unchanged = true'
    owl_export -j j
    [ "$status" -eq 1 ]
    [[ $output == "$OUT"/prod_j_*_000001.owlb ]]
    [[ $stderr == *"outbox $W/o2"* ]]
    [ ! -e "$W/o2" ]
    mkdir "$W/o2"
    owl_export -j j
    [ "$status" -eq 0 ]
    [[ $output == "$W/o2"/prod_j_*_000002.owlb ]]
    [ "$(visible "$OUT" | wc -w)" -eq 1 ]
    owl_export -j j
    [ "$status" -eq 0 ]
    [ -z "$output" ]
    [[ $stderr == *"unchanged since bundle 2; nothing published"* ]]
}

@test "export -j JOB -o DIR, then a normal run: the job's own outboxes still get that content" {
    mkdir "$W/o2"
    job_ini "outbox = $W/o2" 'skip_unchanged = true'
    owl_export -j j
    [ "$status" -eq 0 ]
    [ "$(wc -l <<<"$output")" -eq 2 ]
    edit
    mkdir "$W/usb"
    owl_export -j j -o "$W/usb"
    [ "$status" -eq 0 ]
    [[ $output == "$W/usb"/prod_j_*_000002.owlb ]]
    owl_export -j j
    [ "$status" -eq 0 ]
    [ "$(wc -l <<<"$output")" -eq 2 ]
    [[ $output == *"$OUT"/prod_j_*_000003.owlb* ]]
    [[ $output == *"$W/o2"/prod_j_*_000003.owlb* ]]
    [ "$(visible "$W/usb" | wc -w)" -eq 1 ]
}

@test "export --force publishes to every outbox whatever skip_unchanged says; -f too; --help names it" {
    job_ini 'skip_unchanged = true'
    owl_export -j j
    [ "$status" -eq 0 ]
    owl_export -j j
    [ "$status" -eq 0 ]
    [ -z "$output" ]
    owl_export -j j --force
    [ "$status" -eq 0 ]
    [[ $output == "$OUT"/prod_j_*_000002.owlb ]]
    [[ $stderr != *"has not received"* ]]     # it had: forced, not missed
    [[ $stderr == *"--force: every outbox gets this run's bundle"* ]]
    owl_export -j j -f
    [ "$status" -eq 0 ]
    [[ $output == "$OUT"/prod_j_*_000003.owlb ]]
    # and what the forced run delivered is remembered: unchanged again
    owl_export -j j
    [ "$status" -eq 0 ]
    [ -z "$output" ]
    run "$OWLSYNC" export --help
    [[ $output == *"--force"* ]]
}

@test "bundles are published 0644 whatever the umask, or with the job's bundle_mode; a mode that is not one is refused (2)" {
    job_ini 'skip_unchanged = false'
    umask 0077
    owl_export -j j
    [ "$status" -eq 0 ]
    [ "$(stat -c %a "$output")" = 644 ]
    job_ini 'skip_unchanged = false' 'bundle_mode = 0640'
    owl_export -j j
    [ "$status" -eq 0 ]
    [ "$(stat -c %a "$output")" = 640 ]
    job_ini 'skip_unchanged = false' 'bundle_mode = 0600'
    umask 0000
    owl_export -j j
    [ "$status" -eq 0 ]
    [ "$(stat -c %a "$output")" = 600 ]
    before=$(visible "$OUT")
    for bad in 0755 644 0400 08 0o640 "" 00644; do
        job_ini "bundle_mode = $bad"
        owl_export -j j
        [ "$status" -eq 2 ]
        [[ $stderr == *"bundle_mode"*"invalid file mode"* ]]
    done
    [ "$(visible "$OUT")" = "$before" ]
}

@test "where RENAME_NOREPLACE is missing (NFS, CIFS): link(2), and where links are too, a look then rename; never a replaced file" {
    job_ini 'skip_unchanged = false'
    for inject in "-e inject=renameat2:error=EINVAL" "-e inject=renameat2:error=EINVAL -e inject=linkat:error=EPERM"; do
        # shellcheck disable=SC2086
        run --separate-stderr pub_strace -f -qq -o "$W/trace" -e trace=renameat2,linkat,renameat $inject \
            "$OWLSYNC" -c "$INI" export -j j --quiet
        [ "$status" -eq 0 ]
        [ -f "$output" ] && "$OWLSYNC" verify -k "$KEY.pub" "$output"
        grep -q 'linkat(.*owlb.tmp' "$W/trace"
        [ -z "$(ls -A "$OUT" | grep -v '\.owlb$')" ]
    done
    grep -q 'renameat(.*\.owlb\.tmp", [0-9]*, "prod_j_' "$W/trace"   # the last way: rename
    # a taken name, each way: refused, the file there untouched
    next=$(($(ls "$OUT" | wc -l) + 1))
    now=$(date -u +%s)
    for ((t = now - 2; t <= now + 20; t++)); do
        for s in "$next" $((next + 1)); do
            echo "planted $t" >"$OUT/prod_j_$(date -u -d "@$t" +%Y%m%dT%H%M%SZ)_$(printf '%06d' "$s").owlb"
        done
    done
    (cd "$OUT" && b2sum -- * && stat -c '%n %i' -- *) >"$W/before"
    for inject in "-e inject=renameat2:error=EINVAL" "-e inject=renameat2:error=EINVAL -e inject=linkat:error=EPERM"; do
        # shellcheck disable=SC2086
        run --separate-stderr pub_strace -f -qq -o /dev/null $inject "$OWLSYNC" -c "$INI" export -j j --quiet
        echo "$stderr"
        [ "$status" -eq 1 ]
        [[ $stderr == *"_$(printf '%06d' "$next").owlb already exists"* ]]
        next=$((next + 1))
        [ "$(cd "$OUT" && b2sum -- * && stat -c '%n %i' -- *)" = "$(cat "$W/before")" ]
    done
}

@test "a state file of an earlier owlsync (one hash for the job): unchanged content is not published again" {
    job_ini 'skip_unchanged = true'
    owl_export -j j
    [ "$status" -eq 0 ]
    digest=$(awk '$1 == "digest" { print $2 }' "$STATE/export-j.state")
    [[ $digest =~ ^[0-9a-f]{64}$ ]]
    printf 'sequence 1\ndigest %s\n' "$digest" >"$STATE/export-j.state"    # as it was written then
    owl_export -j j
    [ "$status" -eq 0 ]
    [ -z "$output" ]
    [[ $stderr == *"unchanged since bundle 1"* ]]
    # -o DIR, which that file knows nothing of, gets a bundle; the file keeps its form
    mkdir "$W/d"
    owl_export -j j -o "$W/d"
    [ "$status" -eq 0 ]
    [[ $output == "$W/d"/prod_j_*_000002.owlb ]]
    [ "$(cat "$STATE/export-j.state")" = "$(printf 'sequence 2\ndigest %s' "$digest")" ]
    owl_export -j j
    [ "$status" -eq 0 ]
    [ -z "$output" ]
    # new content: published as 3, and the file now records the outbox
    edit
    owl_export -j j
    [ "$status" -eq 0 ]
    [[ $output == "$OUT"/prod_j_*_000003.owlb ]]
    [ "$(head -1 "$STATE/export-j.state")" = "owlsync-state 2" ]
    grep -qx "outbox 3 [0-9a-f]\{64\} $OUT" "$STATE/export-j.state"
}
