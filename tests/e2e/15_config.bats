#!/usr/bin/env bats
# The command line and the config file's sharp edges, through the real binary
# against a throwaway PostgreSQL cluster: -c after the command, status on an
# import-only host, import --json on failure, a .pub as signing_key, indented
# keys, long values over continuation lines, relative paths.

bats_require_minimum_version 1.5.0
load ../lib/pg

setup_file() {
    export OWLSYNC=${OWLSYNC:-$BATS_TEST_DIRNAME/../../owlsync}
    [ -x "$OWLSYNC" ] || { echo "no owlsync binary at $OWLSYNC (run make)" >&2; return 1; }
    pg_start src
    pg_load_metastore src 3
    "$OWLSYNC" keygen -o "$BATS_FILE_TMPDIR/k" >/dev/null 2>&1
}

teardown_file() {
    pg_stop_all
}

setup() {
    W=$BATS_TEST_TMPDIR
    KEY=$BATS_FILE_TMPDIR/k
    mkdir -p "$W/state" "$W/out"
}

# qa_ini — $W/qa.ini: an import-only host (no inbox) on the cluster.
qa_ini() {
    cat >"$W/qa.ini" <<INI
[owlsync]
environment = qa
state_dir = $W/state
[database]
conninfo = $(pg_conninfo src)
[import]
trusted_key = prod $KEY.pub
INI
}

# prod_ini [LINE…] — $W/prod.ini: [export j] of public.ds_1 into $W/out.
prod_ini() {
    {
        printf '[owlsync]\nenvironment = prod\nstate_dir = %s\n' "$W/state"
        printf '[database]\nconninfo = %s\n' "$(pg_conninfo src)"
        printf '[export j]\ndatasets = public.ds_1\noutbox = %s\nsigning_key = %s\n' "$W/out" "$KEY"
        if [ $# -gt 0 ]; then printf '%s\n' "$@"; fi
    } >"$W/prod.ini"
}

@test "-c FILE after the command is taken as before it" {
    prod_ini
    run --separate-stderr "$OWLSYNC" export -j j --quiet -c "$W/prod.ini"
    [ "$status" -eq 0 ]
    [[ $output == "$W/out"/prod_j_*_000001.owlb ]]
    run --separate-stderr "$OWLSYNC" export --config "$W/prod.ini" -j j --quiet
    [ "$status" -eq 0 ]
    run --separate-stderr "$OWLSYNC" status -c "$W/prod.ini"
    [ "$status" -eq 0 ]
    [[ $output == *"j"* ]]
    # the one after the command wins over the one before
    run --separate-stderr "$OWLSYNC" -c "$W/missing.ini" status -c "$W/prod.ini"
    [ "$status" -eq 0 ]
    run --separate-stderr "$OWLSYNC" status -c
    [ "$status" -eq 2 ]
    [[ $stderr == *"option needs an argument: -c"* ]]
    # after an operand too: the bundle is inspected and verified under the
    # config named last, never the default one
    b=$(ls "$W/out"/*.owlb | head -1)
    OWLSYNC_CONFIG=$W/missing.ini run --separate-stderr "$OWLSYNC" verify "$b" -c "$W/prod.ini" -k "$KEY.pub"
    [ "$status" -eq 0 ]
    qa_ini
    OWLSYNC_CONFIG=$W/missing.ini run --separate-stderr "$OWLSYNC" import --dry-run "$b" -c "$W/qa.ini"
    [ "$status" -eq 0 ]
    [[ $output == *"dry run of bundle 1 of prod/j"* ]]
    OWLSYNC_CONFIG=$W/missing.ini run --separate-stderr "$OWLSYNC" check "$b" --json -c "$W/qa.ini"
    [[ $stderr != *"missing.ini"* && $output != *"missing.ini"* ]]
    # "--" ends the options: a file named -c is an operand
    run --separate-stderr "$OWLSYNC" -c "$W/qa.ini" import -- -c
    [ "$status" -ne 0 ]
    [[ $stderr == *"-c"* && $stderr != *"option needs an argument"* ]]
}

@test "status on an import-only host without an inbox: no (null), exit 0" {
    qa_ini
    run --separate-stderr "$OWLSYNC" -c "$W/qa.ini" status
    echo "$output"; echo "$stderr"
    [ "$status" -eq 0 ]
    [[ $output != *"(null)"* ]]
    [[ $output == *"inbox: none"* ]]
    run --separate-stderr "$OWLSYNC" -c "$W/qa.ini" status --json
    [ "$status" -eq 0 ]
    [[ $output == *'"inbox": {'*'"dir": null,'* ]]
    [[ $output == *'"stale": false'* ]]
    # the ledger out of reach: what it holds is unknown, not "none", not "not stale"
    sed -i 's|^conninfo = .*|conninfo = host=/nonexistent connect_timeout=2|' "$W/qa.ini"
    run --separate-stderr "$OWLSYNC" -c "$W/qa.ini" status
    [ "$status" -eq 1 ]
    [[ $output == *"  unknown: the ledger cannot be read"* && $output != *"  none"* ]]
    run --separate-stderr "$OWLSYNC" -c "$W/qa.ini" status --json
    [ "$status" -eq 1 ]
    [[ $output == *'"stale": null'* && $output == *'"ledger_error": "'* ]]
}

@test "import --json prints a JSON error object on failure, with the exit code" {
    qa_ini
    printf 'not a bundle' >"$W/junk.owlb"
    run --separate-stderr "$OWLSYNC" -c "$W/qa.ini" import --json "$W/junk.owlb"
    echo "$output"; echo "$stderr"
    [ "$status" -eq 3 ]
    [ "${output:0:1}" = '{' ] && [ "${output: -1}" = '}' ]
    grep -qx '  "file": "'"$W"'/junk.owlb",' <<<"$output"
    grep -qx '  "status": "failed",' <<<"$output"
    grep -qx '  "exit_code": 3,' <<<"$output"
    grep -q '^  "error": ".*junk.owlb: bundle is damaged' <<<"$output"
    [[ $stderr == *"owlsync import: $W/junk.owlb: bundle is damaged"* ]]
    # a missing file: exit 1 or 2 as the contract says, JSON all the same
    run --separate-stderr "$OWLSYNC" -c "$W/qa.ini" import --json "$W/none.owlb"
    [ "$status" -ne 0 ]
    grep -qx "  \"exit_code\": $status," <<<"$output"
}

@test "a .pub given as signing_key: said to be a public key, no chmod hint" {
    prod_ini
    sed -i "s|^signing_key = .*|signing_key = $KEY.pub|" "$W/prod.ini"
    run --separate-stderr "$OWLSYNC" -c "$W/prod.ini" export -j j --quiet
    echo "$stderr"
    [ "$status" -eq 2 ]
    [[ $stderr == *"$KEY.pub is a public key, not a secret key"* ]]
    [[ $stderr != *chmod* ]]
    [ -z "$(ls -A "$W/out")" ]
}

@test "an indented key after a key: an error saying indented lines continue the previous key, exit 2" {
    prod_ini '  skip_unchanged = false'
    run --separate-stderr "$OWLSYNC" -c "$W/prod.ini" export -j j --quiet
    [ "$status" -eq 2 ]
    [[ $stderr == *"prod.ini:10: [export j] signing_key: indented line \"skip_unchanged = false\" continues this key's value"* ]]
    [[ $stderr == *"HINT: indented lines continue the previous key"* ]]
    [ -z "$(ls -A "$W/out")" ]
}

@test "a conninfo and a path longer than a line, over continuation lines; the too-long hint fits the key" {
    local long=$W/a-directory-name-long-enough-to-need-two-lines-of-the-config-file-0123456789
    long=$long/and-another-one-to-make-sure-the-path-is-over-the-line-limit-of-the-ini-reader-9876543210
    long=$long/and-a-third-one-as-the-test-directory-may-have-a-short-name-0123456789
    mkdir -p "$long"
    {
        printf '[owlsync]\nenvironment = prod\nstate_dir = %s\n' "$W/state"
        printf '[database]\nconninfo = %s\n' "$(pg_conninfo src)"
        printf '  application_name=owlsync_test_of_a_conninfo_that_runs_over_several_lines\n'
        printf '  connect_timeout=10 ; comments are dropped\n'
        printf '[export j]\ndatasets = public.ds_1\nsigning_key = %s\n' "$KEY"
        printf 'outbox = %s\n' "$W/out"
    } >"$W/prod.ini"
    # an [import] inbox path split in two
    printf '[import]\ntrusted_key = prod %s.pub\ninbox = %s\n  %s\n' "$KEY" "${long:0:120}" "${long:120}" >>"$W/prod.ini"
    [ "${#long}" -gt 199 ]
    run --separate-stderr "$OWLSYNC" -c "$W/prod.ini" export -j j --quiet
    echo "$stderr"
    [ "$status" -eq 0 ]
    run --separate-stderr "$OWLSYNC" -c "$W/prod.ini" status
    echo "$output"
    [ "$status" -eq 0 ]
    [[ $output == *"inbox $long:"* ]]
    # the same path on one line: too long, and the hint says how to continue it
    printf '[import]\ninbox = %s\n' "$long" >"$W/long.ini"
    sed -i "1i [owlsync]\nenvironment = qa" "$W/long.ini"
    run --separate-stderr "$OWLSYNC" -c "$W/long.ini" status
    [ "$status" -eq 2 ]
    [[ $stderr == *"long.ini:4: line too long (over 199 characters)"* ]]
    [[ $stderr == *"HINT: continue the value on indented lines (joined as they are, without a space)"* ]]
    # a long comment is a comment, whatever its length
    { printf '; %s\n' "$long"; printf '[owlsync]\nenvironment = qa\n  # %s\n' "$long"; } >"$W/comment.ini"
    run --separate-stderr "$OWLSYNC" -c "$W/comment.ini" status
    [ "$status" -eq 0 ]
}

@test "relative paths in the config are taken against the config file's directory, not the working directory" {
    mkdir -p "$W/etc/keys" "$W/etc/out" "$W/elsewhere"
    cp "$KEY" "$W/etc/keys/prod.key"
    cp "$KEY.pub" "$W/etc/keys/prod.key.pub"
    cat >"$W/etc/owlsync.ini" <<INI
[owlsync]
environment = prod
state_dir = state
metrics_file = metrics/owlsync.prom
[database]
conninfo = $(pg_conninfo src)
[export j]
datasets = public.ds_1
outbox = out
signing_key = keys/prod.key
[import]
inbox = inbox
trusted_key = prod keys/prod.key.pub
INI
    mkdir "$W/etc/state" "$W/etc/inbox"
    cd "$W/elsewhere"
    run --separate-stderr "$OWLSYNC" -c ../etc/owlsync.ini export -j j --quiet
    echo "$stderr"
    [ "$status" -eq 0 ]
    [[ $output == "$W/etc/out"/prod_j_*_000001.owlb ]]
    [ -f "$W/etc/state/export-j.state" ]
    [ -z "$(ls -A "$W/elsewhere")" ]
    run --separate-stderr "$OWLSYNC" -c ../etc/owlsync.ini verify "$W/etc/out"/prod_j_*_000001.owlb
    echo "$output $stderr"
    [ "$status" -eq 0 ]
    run --separate-stderr "$OWLSYNC" -c ../etc/owlsync.ini status
    [[ $output == *"inbox $W/etc/inbox:"* ]]
}

@test "processed_keep = 30d: the daemon removes processed bundles older than that, a bounded number at a time, nothing else" {
    local p=$W/inbox/processed pid i
    mkdir -p "$p"
    qa_ini
    printf 'inbox = %s\nprocessed_keep = 30d\nwatch = poll\n' "$W/inbox" >>"$W/qa.ini"
    for ((i = 0; i < 1500; i++)); do : >"$p/old_$i.owlb"; done
    touch -d '40 days ago' "$p"/old_*.owlb
    : >"$p/new.owlb"
    touch -d '29 days ago' "$p/recent.owlb"
    touch -d '40 days ago' "$p/notes.txt" "$p/.hidden.owlb" "$W/target"
    ln -s "$W/target" "$p/link.owlb"
    "$OWLSYNC" -c "$W/qa.ini" daemon </dev/null >/dev/null 2>"$W/daemon.log" &
    pid=$!
    for ((i = 0; i < 150; i++)); do
        [ -z "$(ls "$p" | grep '^old_')" ] && break
        sleep 0.1
    done
    kill -TERM "$pid"
    wait "$pid" || true
    cat "$W/daemon.log"
    [ -z "$(ls "$p" | grep '^old_')" ]
    [ "$(ls -A "$p" | sort | tr '\n' ' ')" = ".hidden.owlb link.owlb new.owlb notes.txt recent.owlb " ]
    [ -e "$W/target" ]
    # bounded: 1000 the first time, the rest at the next turn
    grep -q "processed_keep: removed 1000 bundle(s) processed more than 2592000 s ago from $p" "$W/daemon.log"
    grep -q "processed_keep: removed 500 bundle(s)" "$W/daemon.log"
}

@test "without processed_keep, processed bundles are kept" {
    local p=$W/inbox/processed pid
    mkdir -p "$p"
    qa_ini
    printf 'inbox = %s\nwatch = poll\n' "$W/inbox" >>"$W/qa.ini"
    touch -d '400 days ago' "$p/old.owlb"
    "$OWLSYNC" -c "$W/qa.ini" daemon </dev/null >/dev/null 2>"$W/daemon.log" &
    pid=$!
    sleep 2
    kill -TERM "$pid"
    wait "$pid" || true
    [ -f "$p/old.owlb" ]
    ! grep -q processed_keep "$W/daemon.log"
}

@test "status where the inbox cannot be read (another user's 0750 directories): unknown, not zero files, exit 1" {
    [ "$(id -u)" -eq 0 ] || skip "needs root to run owlsync as nobody"
    NB=$(mktemp -d /tmp/owlsync-status-test.XXXXXX)
    chmod 0755 "$NB"
    mkdir -m 0750 "$NB/inbox" "$NB/state"
    touch "$NB/inbox/a.owlb"
    cp "$OWLSYNC" "$NB/owlsync"
    printf '[owlsync]\nenvironment = qa\nstate_dir = %s\n[database]\nconninfo = %s\n[import]\ninbox = %s\ntrusted_key = prod %s\n' \
        "$NB/state" "$(pg_conninfo src)" "$NB/inbox" "$(cat "$KEY.pub")" >"$NB/qa.ini"
    chmod 0644 "$NB/qa.ini"
    run runuser -u nobody -- "$NB/owlsync" -c "$NB/qa.ini" status
    echo "$output"
    rm -rf "$NB"
    [ "$status" -eq 1 ]
    [[ $output == *"inbox $NB/inbox: unknown: it could not be read (see above)"* ]]
    [[ $output != *"0 waiting"* ]]
}
