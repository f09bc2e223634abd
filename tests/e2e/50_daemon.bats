#!/usr/bin/env bats
# owlsync daemon, end to end: real daemon processes watching an inbox, with a
# source and a target cluster (tests/lib/pg.bash); bundles made by `owlsync
# export` and dropped into the inbox, or published there by a scheduled job.
#
# Every test works in its own target schema (the [database] schema key) and its
# own export job names, so tests do not see each other's rows; they share the
# target's ledger (schema owlsync), whose rows are told apart by job.  Bundles
# are always made in the test that imports them, so a later test's bundle is
# never older than what an earlier one applied (the rollback check).
#
# The scheduled-job test needs a cron minute to pass: its two daemons (source
# environment "night", so its datasets never collide with the others') start
# in setup_file and run while the other tests do; that test, the last one,
# only waits for what is left of the minute.
#
# Every daemon started here is recorded (pid and start time) and stopped in
# teardown or teardown_file; a guard process also stops it when the bats
# process that started it is gone, so no daemon outlives the file.  A failing
# test shows the end of its daemons' logs (with OWL_SHOW_LOGS=1, every test).

# shellcheck disable=SC2154 # $stderr is set by bats' run --separate-stderr
bats_require_minimum_version 1.5.0
load ../lib/pg
load ../lib/owl

OWLSYNC=${OWLSYNC:-$BATS_TEST_DIRNAME/../../owlsync}

# The [table] sections of both sides (alert_output is the child of alert_cond).
TABLES_INI=$OWL_TABLES_INI

BIG_DATASETS=1500 # bulk datasets of the "big" source schema: an import of it takes over a second

# ------------------------------------------------------------------ daemons

# The start time of process PID (field 22 of /proc/PID/stat), to tell it from
# a later process that got the same pid.
proc_start() {
    local st f
    { read -r st <"/proc/$1/stat"; } 2>/dev/null || return 1
    st=${st##*) }
    read -ra f <<<"$st"
    echo "${f[19]}"
}

# same_proc PID START — PID is alive and is the process that started at START.
same_proc() {
    pg_alive "$1" && [ "$(proc_start "$1")" = "$2" ]
}

# A detached process that stops daemon PID (started at START) once OWNER is gone.
daemon_guard() { # PID START OWNER
    (
        (
            exec </dev/null >/dev/null 2>&1 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&-
            trap '' HUP INT TERM PIPE
            while pg_alive "$3" && same_proc "$1" "$2"; do sleep 1; done
            if same_proc "$1" "$2"; then
                kill -TERM "$1"
                for _ in 1 2 3 4 5 6 7 8 9 10; do
                    same_proc "$1" "$2" || exit 0
                    sleep 1
                done
                same_proc "$1" "$2" && kill -KILL "$1"
            fi
        ) &
    )
}

# daemon_start NAME CONFIG [DIR] — starts `owlsync -c CONFIG daemon` in the
# background, its log (stderr) in DIR/NAME.log (DIR default $W); records it in
# DIR/daemons, sets PID to its pid, and waits until it says it started.
daemon_start() {
    local name=$1 cfg=$2 dir=${3:-$W} start
    "$OWLSYNC" -c "$cfg" daemon </dev/null >"$dir/$name.out" 2>"$dir/$name.log" \
        3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&- &
    PID=$!
    start=$(proc_start "$PID") || start=gone
    echo "$PID $start $name" >>"$dir/daemons"
    daemon_guard "$PID" "$start" "$$"
    if ! wait_until 10 grep -q 'owlsync daemon started' "$dir/$name.log"; then
        echo "daemon $name did not start:" >&2
        cat "$dir/$name.log" >&2
        return 1
    fi
}

# daemons_stop LIST — stops every daemon recorded in LIST that still runs:
# SIGTERM, then SIGKILL after 10 s.
daemons_stop() {
    local pid start name i
    [ -f "$1" ] || return 0
    while read -r pid start name; do
        same_proc "$pid" "$start" || continue
        kill -TERM "$pid" 2>/dev/null
        for ((i = 0; i < 100; i++)); do
            same_proc "$pid" "$start" || break
            sleep 0.1
        done
        if same_proc "$pid" "$start"; then
            echo "daemon $name (pid $pid) ignored SIGTERM; killed" >&2
            kill -KILL "$pid" 2>/dev/null
        fi
        wait "$pid" 2>/dev/null || true
    done <"$1"
}

# gone PID — PID has exited (a zombie not yet waited for counts as exited).
gone() { ! pg_alive "$1"; }

# stop_and_wait PID SECONDS — waits up to SECONDS for PID to exit and sets RC
# to its exit status (the daemon must be a child of this shell).
stop_and_wait() {
    wait_until "$2" gone "$1" || return 1
    RC=0
    wait "$1" || RC=$?
}

# ------------------------------------------------------------------ helpers

# wait_until SECONDS CMD… — runs CMD every 0.1 s until it succeeds; fails
# (saying what it waited for) when SECONDS have passed.
wait_until() {
    local limit=$1 end
    shift
    end=$((SECONDS + limit))
    until "$@"; do
        if [ "$SECONDS" -ge "$end" ]; then
            echo "timed out after ${limit} s waiting for: $*" >&2
            return 1
        fi
        sleep 0.1
    done
}

# not CMD… — succeeds when CMD fails (a bare "! CMD" never fails a bats test).
not() { ! "$@"; }

# has_inotify PID — process PID holds an inotify descriptor.
has_inotify() {
    local fd
    for fd in /proc/"$1"/fd/*; do
        [ "$(readlink "$fd" 2>/dev/null)" = 'anon_inode:inotify' ] && return 0
    done
    return 1
}

# in_log NAME TEXT — the log of daemon NAME (in $LOGDIR, default $W) has a
# line containing TEXT.
in_log() { grep -qF -- "$2" "${LOGDIR:-$W}/$1.log"; }

# log_count NAME TEXT — lines of the log of daemon NAME containing TEXT.
log_count() { grep -cF -- "$2" "${LOGDIR:-$W}/$1.log" || true; }

# log_count_is NAME TEXT N — log_count NAME TEXT is N (for wait_until: counted
# on each try).
log_count_is() { [ "$(log_count "$1" "$2")" = "$3" ]; }

# files DIR — the names of the *.owlb files in DIR, one a line (none: empty).
files() {
    local f
    for f in "$1"/*.owlb; do
        [ -e "$f" ] && basename "$f"
    done
    return 0
}

# nfiles DIR — how many *.owlb files DIR holds.
nfiles() { files "$1" | grep -c . || true; }

# all_done N — N bundle files have left the inbox for processed/ or quarantine/.
all_done() { [ $(($(nfiles "$W/inbox/processed") + $(nfiles "$W/inbox/quarantine"))) = "$1" ]; }

# src_schema SCHEMA N — SCHEMA in src holds the sample metastore with N bulk datasets
# (made once per file; tests that share it only read it).
src_schema() {
    if [ "$(pg_query src "SELECT to_regnamespace('$1') IS NOT NULL")" != t ]; then
        pg_load_metastore src "$2" "$1"
    fi
}

# pair NAME [N] — target schema NAME (empty tables) for a source schema of
# the same name with N bulk datasets (default 2), or, with N = big, the shared
# source schema "big"; writes src.ini (no job yet) and tgt.ini (the inbox
# $W/inbox, the prod key trusted for prod).  Sets SS and TS (the schemas).
pair() {
    TS=$1
    if [ "${2:-}" = big ]; then
        SS=big
        src_schema big "$BIG_DATASETS"
    else
        SS=$1
        pg_load_metastore src "${2:-2}" "$SS"
    fi
    pg_load_schema tgt "$TS"
    src_ini "$W/src.ini" prod "$W/stage"
    tgt_ini "$W/tgt.ini"
}

# src_ini FILE ENV OUTBOX [LOG_LEVEL] — a source config for schema $SS (log
# level warn unless told); jobs are added by job.
src_ini() {
    SRC_INI=$1
    SRC_OUTBOX=$3
    cat >"$1" <<EOF
[owlsync]
environment = $2
state_dir = $(dirname "$1")/state
log_level = ${4:-warn}

[database]
conninfo = $(pg_conninfo src)
schema = $SS
$TABLES_INI
EOF
}

# job NAME DATASETS [KEY=VALUE …] — appends [export NAME] to $SRC_INI.
job() {
    local name=$1 ds=$2 kv
    shift 2
    {
        echo "[export $name]"
        echo "datasets = $ds"
        echo "outbox = $SRC_OUTBOX"
        echo "signing_key = $K/prod.key"
        for kv in "$@"; do echo "${kv%%=*} = ${kv#*=}"; done
        echo
    } >>"$SRC_INI"
}

# tgt_ini FILE [KEY=VALUE …] — a target config (environment qa, schema $TS,
# log level info, metrics in FILE less .ini plus .prom) whose [import] section
# watches $W/inbox with settle_time 1 and poll_interval 30 (so only inotify
# takes a file quickly), trusting the prod key for prod; KEY=VALUE add or
# override [import] keys.
tgt_ini() {
    local file=$1 kv k
    shift
    local -A imp=([inbox]="$W/inbox" [trusted_key]="prod $K/prod.key.pub" [settle_time]=1 [poll_interval]=30)
    for kv in "$@"; do imp[${kv%%=*}]=${kv#*=}; done
    {
        echo "[owlsync]"
        echo "environment = qa"
        echo "state_dir = $(dirname "$file")/tstate"
        echo "log_level = info"
        echo "metrics_file = ${file%.ini}.prom"
        echo
        echo "[database]"
        echo "conninfo = $(pg_conninfo tgt)"
        echo "schema = $TS"
        echo "$TABLES_INI"
        echo "[import]"
        for k in "${!imp[@]}"; do echo "$k = ${imp[$k]}"; done
    } >"$file"
}

# mkbundle JOB — runs export job JOB of src.ini and prints the one bundle path.
mkbundle() { owl_export_one "$SRC_INI" "$1"; }

# ledger JOB — ledger rows of environment prod, job JOB.
ledger() {
    pg_query tgt "SELECT count(*) FROM owlsync.bundles WHERE environment = 'prod' AND job = '$1'"
}

# digests NODE SCHEMA WHERE [EXCLUDED] — "TABLE ROWS MD5" for every table of
# SCHEMA on NODE ($DIGEST_TABLES if set): the rows matching WHERE (rule_repo:
# all of them) as jsonb less the EXCLUDED key (default id), sorted.
digests() {
    local t w q='' sep=''
    for t in ${DIGEST_TABLES:-$OWL_TABLES}; do
        w=$3
        [ "$t" != rule_repo ] || w=true
        q+="$sep SELECT '$t ' || count(*) || ' ' || coalesce(md5(string_agg(r, E'\\n' ORDER BY r COLLATE \"C\")), '-') AS d
             FROM (SELECT (to_jsonb(t) - '${4:-id}')::text AS r FROM $2.$t t WHERE $w) s"
        sep=' UNION ALL'
    done
    PGOPTIONS='-c timezone=UTC' pg_query "$1" "SELECT d FROM ($q) x ORDER BY 1"
}

# same_data WHERE — every table's rows matching WHERE are equal in src ($SS)
# and tgt ($TS), ids aside, and there are some.
same_data() {
    local a b
    a=$(digests src "$SS" "$1")
    b=$(digests tgt "$TS" "$1")
    if [ "$a" != "$b" ] || [[ $a == *" 0 -"* ]]; then
        echo "src.$SS and tgt.$TS differ (or are empty) where $1:" >&2
        diff <(echo "$a") <(echo "$b") >&2
        return 1
    fi
}

# tgt_state — digests of every table of $TS in tgt (ids included) and of the ledger.
tgt_state() {
    digests tgt "$TS" true _
    # (less the ledger rows of environment night: the nightly pair of
    # setup_file imports every minute whatever the test does)
    PGOPTIONS='-c timezone=UTC' pg_query tgt "
        SELECT (SELECT count(*) || ' ' || md5(coalesce(string_agg(b::text, E'\\n' ORDER BY bundle_id), '')) FROM owlsync.bundles b WHERE environment <> 'night')
            || ' ' || (SELECT count(*) || ' ' || md5(coalesce(string_agg(d::text, E'\\n' ORDER BY environment, dataset), '')) FROM owlsync.datasets d WHERE environment <> 'night')"
}

# metric FILE NAME — the value of metric NAME (with its labels) in FILE.
metric() {
    awk -v n="$2" '$1 == n { print $2 }' "$1" 2>/dev/null
}

# metric_is FILE NAME VALUE — metric NAME in FILE has VALUE.
metric_is() { [ "$(metric "$1" "$2")" = "$3" ]; }

# metric_ge FILE NAME VALUE — metric NAME in FILE is at least VALUE.
metric_ge() { local v; v=$(metric "$1" "$2"); [ -n "$v" ] && [ "$v" -ge "$3" ]; }

# json_get JSON PATH… — the text at PATH (jsonb #>> path, e.g. {inbox,waiting}).
json_get() {
    local j=$1
    shift
    pg_psql tgt -At -v j="$j" -v p="$1" <<<"SELECT (:'j'::jsonb) #>> :'p'"
}

# json_q JSON SQL — runs SQL with the JSON as :'j' (a jsonb literal is (:'j'::jsonb)).
json_q() {
    pg_psql tgt -At -v j="$1" <<<"$2"
}

# status_stale CONFIG — `status --json` says stale.
status_stale() {
    [ "$(json_get "$("$OWLSYNC" -c "$1" status --json)" '{stale}')" = true ]
}

# next_minute TEXT T0 T1 — TEXT is the local time ("YYYY-MM-DD HH:MM ZONE") of
# the minute after that of T0 or of T1 (epoch seconds).
next_minute() {
    local t
    for t in "$2" "$3"; do
        [[ $1 == "$(date -d "@$((t / 60 * 60 + 60))" '+%Y-%m-%d %H:%M') "* ]] && return 0
    done
    echo "next run '$1' is not the minute after $(date -d "@$2") or $(date -d "@$3")" >&2
    return 1
}

# no_quarantine — the inbox's quarantine/ is empty.
no_quarantine() {
    local q
    q=$(ls -A "$W/inbox/quarantine" 2>/dev/null)
    if [ -n "$q" ]; then
        echo "quarantined:" >&2
        head -5 "$W/inbox/quarantine"/*.reason >&2 2>/dev/null
        return 1
    fi
}

# ------------------------------------------------------------------ setup

# night_start — the nightly sync: a source daemon with export job "nightly"
# (environment night, schedule every minute) publishing into the inbox of a
# target daemon; both run from setup_file until teardown_file.
night_start() {
    local N=$BATS_FILE_TMPDIR/night W=$BATS_FILE_TMPDIR/night
    mkdir -p "$N/inbox" "$N/state" "$N/tstate"
    SS=nightly TS=nightly
    pg_load_metastore src 2 nightly
    pg_load_schema tgt nightly
    src_ini "$N/src.ini" night "$N/inbox" info
    sed -i "s|^state_dir = .*|&\nmetrics_file = $N/src.prom|" "$N/src.ini"
    job nightly "public.ds_1, public.ds_2" "schedule=* * * * *"
    tgt_ini "$N/tgt.ini" "trusted_key=night $K/prod.key.pub" poll_interval=5
    date +%s >"$N/started"
    # as under the unit's UMask=0027: bundles and metrics are still 0644
    (
        umask 0027
        daemon_start src "$N/src.ini" "$N"
        daemon_start tgt "$N/tgt.ini" "$N"
    )
}

setup_file() {
    if [ ! -x "$OWLSYNC" ]; then
        echo "no owlsync binary at $OWLSYNC (run make)" >&2
        return 1
    fi
    # Tests share the target's ledger and its claim lock: one test at a time.
    export BATS_NO_PARALLELIZE_WITHIN_FILE=true
    K=$BATS_FILE_TMPDIR/keys
    pg_start src
    pg_start tgt
    mkdir -p "$K"
    "$OWLSYNC" keygen -o "$K/prod.key" >/dev/null 2>&1
    "$OWLSYNC" keygen -o "$K/stranger.key" >/dev/null 2>&1
    "$OWLSYNC" keygen --encryption -o "$K/qa.enc" >/dev/null 2>&1
    "$OWLSYNC" keygen --encryption -o "$K/uat.enc" >/dev/null 2>&1
    # The ledger, as a DBA would create it (so tests can count its rows at once).
    pg_psql tgt -c "SET client_min_messages = warning" -f "$PG_SQL_DIR/ledger.sql" >/dev/null
    night_start
}

teardown_file() {
    daemons_stop "$BATS_FILE_TMPDIR/night/daemons"
    pg_stop_all
}

setup() {
    W=$BATS_TEST_TMPDIR
    K=$BATS_FILE_TMPDIR/keys
    mkdir -p "$W/stage" "$W/inbox" "$W/state" "$W/tstate"
}

teardown() {
    daemons_stop "$W/daemons"
    if [ -f "$W/tgt_down" ]; then # a test that stopped the target failed before restarting it
        pg_up tgt
        rm -f "$W/tgt_down"
    fi
    if [ -z "${BATS_TEST_COMPLETED:-}" ] || [ -n "${OWL_SHOW_LOGS:-}" ]; then
        local l
        for l in "$W"/*.log; do
            [ -e "$l" ] || continue
            echo "--- $l (last 40 lines)"
            tail -40 "$l"
        done >&2
    fi
}

# ------------------------------------------------------------------ tests

@test "drop-a-file: a bundle copied into the inbox is imported once and moved to processed/; tampered ones are quarantined with a reason and change nothing" {
    pair drop
    job drop "public.ds_1, public.ds_2"
    daemon_start tgt "$W/tgt.ini"
    in_log tgt "(inotify, rescanned every 30 s, settle 1 s)"
    has_inotify "$PID"

    b=$(mkbundle drop)
    n=$(basename "$b")
    touch -d '40 days ago' "$b"
    cp -p "$b" "$W/inbox/"
    # poll_interval is 30 s: only inotify makes this quick
    wait_until 15 test -f "$W/inbox/processed/$n"
    # its mtime is when it was processed (what processed_keep counts from)
    [ $(($(date +%s) - $(stat -c %Y "$W/inbox/processed/$n"))) -lt 60 ]
    [ "$(ledger drop)" = 1 ]
    same_data "dataset IN ('public.ds_1', 'public.ds_2')"
    [ -z "$(files "$W/inbox")" ]
    [ -z "$(ls -A "$W/inbox/.work")" ]
    cmp "$b" "$W/inbox/processed/$n"
    in_log tgt "$n: imported bundle 1 of prod/drop"
    [ "$(log_count tgt "$n: importing")" = 1 ]
    no_quarantine

    # A newer bundle with other content, damaged two ways.
    pg_query src "UPDATE drop.owl_rule SET rule_value = 'changed' WHERE dataset = 'public.ds_1'" >/dev/null
    b2=$(mkbundle drop)
    size=$(stat -c %s "$b2")
    cp "$b2" "$W/stage/flipped.owlb"
    flip_byte "$W/stage/flipped.owlb" $((size / 2))
    not cmp -s "$b2" "$W/stage/flipped.owlb"
    head -c $((size / 2)) "$b2" >"$W/stage/truncated.owlb"
    before=$(tgt_state)
    cp "$W/stage/flipped.owlb" "$W/stage/truncated.owlb" "$W/inbox/"
    q=$W/inbox/quarantine
    wait_until 15 test -f "$q/flipped.owlb.reason" -a -f "$q/truncated.owlb.reason"
    cmp "$W/stage/flipped.owlb" "$q/flipped.owlb"
    cmp "$W/stage/truncated.owlb" "$q/truncated.owlb"
    for f in flipped truncated; do
        cat "$q/$f.owlb.reason"
        grep -q '^exit_code: 3$' "$q/$f.owlb.reason"
        grep -q "^file: $f.owlb\$" "$q/$f.owlb.reason"
        grep -Eq '^time: [0-9]{4}-[0-9]{2}-[0-9]{2}T' "$q/$f.owlb.reason"
        # the cause, as the import itself states it
        run --separate-stderr "$OWLSYNC" -c "$W/tgt.ini" import --dry-run "$q/$f.owlb"
        [ "$status" -eq 3 ]
        cause=$(sed -n 's/^reason: //p' "$q/$f.owlb.reason")
        [ -n "$cause" ]
        [[ $stderr == *"${cause:0:30}"* ]]
        in_log tgt "$f.owlb: $cause; quarantined"
    done
    # the database is untouched
    [ "$(tgt_state)" = "$before" ]
    [ "$(ledger drop)" = 1 ]
    [ "$(pg_query tgt "SELECT count(*) FROM drop.owl_rule WHERE rule_value = 'changed'")" = 0 ]
    [ "$(files "$W/inbox/processed")" = "$n" ]
    [ -z "$(files "$W/inbox")" ]
    [ -z "$(ls -A "$W/inbox/.work")" ]
}

@test "a gzip quine and a gzip stream that unpacks to gigabytes are quarantined at once, and the good bundle beside them is imported" {
    : "${GZCRAFT:?GZCRAFT must name the gzcraft test tool (make test sets it)}"
    pair quine
    job quine "public.ds_1"
    b=$(mkbundle quine)
    "$GZCRAFT" quine "$W/stage/aaa-quine.owlb"
    "$GZCRAFT" name-bomb 4000000000 "$W/stage/name.gz"
    gzip -9 -c "$W/stage/name.gz" >"$W/stage/aaa-name.owlb"
    touch -d '2020-01-01' "$W/stage/aaa-quine.owlb" "$W/stage/aaa-name.owlb" # older: looked at first
    cp -p "$W/stage/aaa-quine.owlb" "$W/stage/aaa-name.owlb" "$W/inbox/"
    cp "$b" "$W/inbox/"
    daemon_start tgt "$W/tgt.ini"
    wait_until 20 test -f "$W/inbox/processed/$(basename "$b")"
    [ "$(ledger quine)" = 1 ]
    same_data "dataset = 'public.ds_1'"
    q=$W/inbox/quarantine
    for f in aaa-quine aaa-name; do
        wait_until 5 test -f "$q/$f.owlb.reason"
        grep -q '^exit_code: 3$' "$q/$f.owlb.reason"
        grep -q '^reason: bundle is compressed more than once (gzip inside gzip)' "$q/$f.owlb.reason"
    done
    # the daemon stayed small: no bundle's bytes were unpacked beyond their bound
    rss=$(awk '/^VmHWM:/ { print $2 }' "/proc/$PID/status")
    echo "# daemon peak memory $rss KB" >&3
    [ "$rss" -lt 100000 ]
}

@test "a symbolic link planted for .work/ (to a FIFO named like the next bundle) neither hangs nor stops the daemon, at start, on reload or running" {
    pair planted
    job planted "public.ds_1"
    b=$(mkbundle planted)
    n=$(basename "$b")
    mkdir -p "$W/trap"
    mkfifo "$W/trap/$n"
    daemon_start tgt "$W/tgt.ini"
    # running: .work/ renamed away and a link to the trap put in its place
    mv "$W/inbox/.work" "$W/inbox/.work-real"
    ln -s "$W/trap" "$W/inbox/.work"
    cp "$b" "$W/inbox/"
    wait_until 15 test -f "$W/inbox/processed/$n"
    [ "$(ledger planted)" = 1 ]
    same_data "dataset = 'public.ds_1'"
    # the file went through the directory the daemon opened, never through the link
    [ -p "$W/trap/$n" ] && [ -L "$W/inbox/.work" ]
    # on reload and at start the planted link is moved aside, loudly
    kill -HUP "$PID"
    wait_until 10 in_log tgt "config reloaded"
    in_log tgt "was not a directory (a symbolic link or another file, planted in the inbox): moved aside"
    [ -d "$W/inbox/.work" ] && [ ! -L "$W/inbox/.work" ]
    kill -TERM "$PID"
    stop_and_wait "$PID" 10
    [ "$RC" = 0 ]
    rm -rf "$W/inbox/.work"
    ln -s "$W/trap" "$W/inbox/.work"
    rmdir "$W/inbox/quarantine"
    ln -s "$W/trap" "$W/inbox/quarantine"
    daemon_start tgt2 "$W/tgt.ini"
    [ -d "$W/inbox/.work" ] && [ ! -L "$W/inbox/.work" ]
    [ -d "$W/inbox/quarantine" ] && [ ! -L "$W/inbox/quarantine" ]
    pg_query src "UPDATE planted.owl_rule SET rule_value = 'next' WHERE dataset = 'public.ds_1'" >/dev/null
    b2=$(mkbundle planted)
    cp "$b2" "$W/inbox/"
    wait_until 15 test -f "$W/inbox/processed/$(basename "$b2")"
    [ "$(ledger planted)" = 2 ]
    same_data "dataset = 'public.ds_1'"
}

@test "a bundle the target cannot take (a column it lacks) is quarantined with exit code 2 and its reason, not retried" {
    pair mismatch
    job mismatch "public.ds_1"
    pg_query tgt "ALTER TABLE mismatch.owl_rule DROP COLUMN rule_value" >/dev/null
    b=$(mkbundle mismatch)
    n=$(basename "$b")
    daemon_start tgt "$W/tgt.ini"
    cp "$b" "$W/inbox/"
    q=$W/inbox/quarantine
    wait_until 15 test -f "$q/$n.reason"
    grep -q '^exit_code: 2$' "$q/$n.reason"
    grep -q "^reason: .*bundle column owl_rule.rule_value does not exist in the target table mismatch.owl_rule" "$q/$n.reason"
    sleep 2
    not in_log tgt "will retry"
    [ "$(log_count tgt "$n: importing")" = 1 ]
    [ "$(ledger mismatch)" = 0 ]
    wait_until 5 metric_is "$W/tgt.prom" 'owlsync_bundles_rejected_total{reason="mismatch"}' 1
}

@test "retry: a quarantined bundle whose cause was fixed is put back into the inbox by rename, without its .reason, and imported; bad requests exit 2 and move nothing" {
    pair requeue
    job requeue "public.ds_1"
    pg_query tgt "ALTER TABLE requeue.owl_rule DROP COLUMN rule_value" >/dev/null
    b=$(mkbundle requeue)
    n=$(basename "$b")
    daemon_start tgt "$W/tgt.ini"
    cp "$b" "$W/inbox/"
    q=$W/inbox/quarantine
    wait_until 15 test -f "$q/$n.reason"
    ino=$(stat -c %i "$q/$n")

    # nothing of the kind in the quarantine, a name no bundle has, a file elsewhere: 2, nothing moved
    run --separate-stderr "$OWLSYNC" -c "$W/tgt.ini" retry nothing.owlb
    [ "$status" -eq 2 ]
    [[ $stderr == *"nothing.owlb is not in the quarantine $q"* ]]
    run --separate-stderr "$OWLSYNC" -c "$W/tgt.ini" retry "$n.reason"
    [ "$status" -eq 2 ]
    [[ $stderr == *"is not the name of a bundle file"* ]]
    cp "$b" "$W/stage/elsewhere.owlb"
    run --separate-stderr "$OWLSYNC" -c "$W/tgt.ini" retry "$W/stage/elsewhere.owlb"
    [ "$status" -eq 2 ]
    [[ $stderr == *"is not in the quarantine"* ]]
    [ -f "$W/stage/elsewhere.owlb" ]
    run --separate-stderr "$OWLSYNC" -c "$W/tgt.ini" retry
    [ "$status" -eq 2 ]
    [ -f "$q/$n" ] && [ -f "$q/$n.reason" ]

    # a file of that name already in the inbox is never replaced
    kill -STOP "$PID"
    echo other >"$W/inbox/$n"
    run --separate-stderr "$OWLSYNC" -c "$W/tgt.ini" retry "$n"
    [ "$status" -eq 2 ]
    [[ $stderr == *"$W/inbox/$n already exists"* ]]
    [ "$(cat "$W/inbox/$n")" = other ]
    [ -f "$q/$n.reason" ]
    rm "$W/inbox/$n"
    kill -CONT "$PID"

    # the cause fixed, the bundle requeued (by its path) is imported once
    pg_query tgt "ALTER TABLE requeue.owl_rule ADD COLUMN rule_value text" >/dev/null
    run --separate-stderr "$OWLSYNC" -c "$W/tgt.ini" retry "$q/$n"
    [ "$status" -eq 0 ]
    [ "$output" = "requeued $W/inbox/$n" ]
    [ ! -e "$q/$n.reason" ]
    wait_until 15 test -f "$W/inbox/processed/$n"
    [ "$(stat -c %i "$W/inbox/processed/$n")" = "$ino" ]   # moved, never copied
    [ "$(ledger requeue)" = 1 ]
    [ -z "$(ls -A "$q")" ]
    wait_until 5 metric_is "$W/tgt.prom" owlsync_bundles_imported_total 1

    # a clash name (NAME.owlb.1) goes back as NAME.owlb
    kill -STOP "$PID"
    echo x >"$q/clash.owlb.1"
    echo "reason: test" >"$q/clash.owlb.1.reason"
    run --separate-stderr "$OWLSYNC" -c "$W/tgt.ini" retry clash.owlb.1
    [ "$status" -eq 0 ]
    [ -f "$W/inbox/clash.owlb" ]
    [ ! -e "$q/clash.owlb.1" ] && [ ! -e "$q/clash.owlb.1.reason" ]
    kill -CONT "$PID"
}

@test "a file written slowly in pieces is not taken until it is whole, then imported" {
    pair slow
    job slow "public.ds_1"
    tgt_ini "$W/tgt.ini" settle_time=2
    daemon_start tgt "$W/tgt.ini"
    b=$(mkbundle slow)
    size=$(stat -c %s "$b")
    chunk=$((size / 6 + 1))
    f=$W/inbox/slow.owlb
    # six pieces, 0.5 s apart: 2.5 s in all, longer than settle_time, but no
    # pause as long as it
    for i in 0 1 2 3 4 5; do
        dd if="$b" of="$f" bs="$chunk" skip="$i" seek="$i" count=1 conv=notrunc status=none
        # still where it was written, not claimed, not quarantined
        [ -f "$f" ]
        [ -z "$(ls -A "$W/inbox/.work")" ]
        [ -z "$(ls -A "$W/inbox/quarantine")" ]
        [ "$i" = 5 ] || sleep 0.5
    done
    cmp "$b" "$f"
    wait_until 15 test -f "$W/inbox/processed/slow.owlb"
    cmp "$b" "$W/inbox/processed/slow.owlb"
    [ "$(ledger slow)" = 1 ]
    same_data "dataset = 'public.ds_1'"
    [ "$(log_count tgt "slow.owlb: importing")" = 1 ]
    no_quarantine
}

@test "poll mode: with watch = poll (no inotify) a dropped bundle is imported within about poll_interval" {
    pair poll
    job poll "public.ds_2"
    tgt_ini "$W/tgt.ini" watch=poll poll_interval=2 settle_time=1
    daemon_start tgt "$W/tgt.ini"
    in_log tgt "(poll, rescanned every 2 s, settle 1 s)"
    not has_inotify "$PID"

    b=$(mkbundle poll)
    n=$(basename "$b")
    cp "$b" "$W/inbox/"
    # seen at the next scan (<= 2 s), settled 1 s later: well within 10 s
    wait_until 10 test -f "$W/inbox/processed/$n"
    [ "$(ledger poll)" = 1 ]
    same_data "dataset = 'public.ds_2'"
    no_quarantine
}

@test "database down when a bundle arrives: retried with backoff, nothing quarantined, imported exactly once when it is back" {
    pair down
    job down "public.ds_1, public.ds_2"
    daemon_start tgt "$W/tgt.ini"
    b=$(mkbundle down)
    n=$(basename "$b")

    touch "$W/tgt_down"
    pg_down tgt
    cp "$b" "$W/inbox/"
    wait_until 20 in_log tgt "will retry in 10 s"
    in_log tgt "will retry in 5 s"
    in_log tgt "; 1 bundle(s) wait; will retry in 5 s"
    metric_is "$W/tgt.prom" owlsync_target_down 1
    # kept, untouched: in the inbox or claimed in .work/, never quarantined
    [ "$(files "$W/inbox") $(files "$W/inbox/.work")" = "$n " ] ||
        [ "$(files "$W/inbox") $(files "$W/inbox/.work")" = " $n" ]
    no_quarantine
    [ -z "$(files "$W/inbox/processed")" ]
    pg_alive "$PID"

    pg_up tgt
    rm -f "$W/tgt_down"
    wait_until 30 test -f "$W/inbox/processed/$n"
    [ "$(ledger down)" = 1 ]
    wait_until 5 metric_is "$W/tgt.prom" owlsync_target_down 0
    same_data "dataset IN ('public.ds_1', 'public.ds_2')"
    [ "$(log_count tgt "$n: imported bundle")" = 1 ]
    no_quarantine
    [ -z "$(files "$W/inbox")" ]
    [ -z "$(ls -A "$W/inbox/.work")" ]
}

@test "the daemon keeps its connection between imports: bundles one after another open no connection each; after a server restart the next goes in at once on a new one" {
    pair keep
    job keep "public.ds_1" skip_unchanged=false
    tgt_ini "$W/tgt.ini" settle_time=0
    sed -i "s|^conninfo = .*|& application_name=owlkeep|" "$W/tgt.ini"
    pg_psql tgt -c "ALTER SYSTEM SET log_connections = on" -c "SELECT pg_reload_conf()" >/dev/null
    before=$(pg_log tgt | grep -c "connection authorized.*application_name=owlkeep" || true)
    daemon_start tgt "$W/tgt.ini"
    for i in 1 2 3 4 5; do
        b=$(mkbundle keep)
        mv "$b" "$W/inbox/" # whole at once: settle_time is 0
        wait_until 20 test -f "$W/inbox/processed/$(basename "$b")"
    done
    after=$(pg_log tgt | grep -c "connection authorized.*application_name=owlkeep" || true)
    # the start's look at the ledger, the claim's and the imports' own: not one per import
    [ $((after - before)) -le 3 ]
    [ "$(ledger keep)" = 5 ]

    touch "$W/tgt_down"
    pg_down tgt
    pg_up tgt
    rm -f "$W/tgt_down"
    b=$(mkbundle keep)
    mv "$b" "$W/inbox/"
    # at once, not after the 5 s backoff of a failed try
    wait_until 4 test -f "$W/inbox/processed/$(basename "$b")"
    [ "$(ledger keep)" = 6 ]
    [ "$(log_count tgt "will retry")" = 0 ]
    no_quarantine
    pg_psql tgt -c "ALTER SYSTEM RESET log_connections" -c "SELECT pg_reload_conf()" >/dev/null
}

@test "a trigger of the target that changes the session (client_encoding, DateStyle, TimeZone) does not reach the next import on the kept connection" {
    pair sess
    job sess1 "public.ds_1"
    job sess2 "public.special"
    pg_psql tgt -c "CREATE FUNCTION $TS.unpin() RETURNS trigger LANGUAGE plpgsql AS \$\$
        BEGIN
            PERFORM set_config('client_encoding', 'LATIN1', false);
            PERFORM set_config('DateStyle', 'SQL, DMY', false);
            PERFORM set_config('TimeZone', 'Asia/Tokyo', false);
            PERFORM set_config('extra_float_digits', '0', false);
            RETURN NULL;
        END \$\$" \
        -c "CREATE TRIGGER unpin AFTER INSERT ON $TS.owl_catalog FOR EACH STATEMENT EXECUTE FUNCTION $TS.unpin()" >/dev/null
    daemon_start tgt "$W/tgt.ini"
    b=$(mkbundle sess1)
    cp "$b" "$W/inbox/"
    wait_until 20 test -f "$W/inbox/processed/$(basename "$b")"
    b=$(mkbundle sess2)
    cp "$b" "$W/inbox/"
    wait_until 20 test -f "$W/inbox/processed/$(basename "$b")"
    same_data "dataset IN ('public.ds_1', 'public.special')"
    no_quarantine
}

@test "database lost in the middle of an import: the bundle stays in .work/, is retried, and imported exactly once" {
    pair lost big
    job lost "public.ds_%"
    daemon_start tgt "$W/tgt.ini"
    b=$(mkbundle lost)
    n=$(basename "$b")
    cp "$b" "$W/inbox/"
    wait_until 20 in_log tgt "$n: importing"

    touch "$W/tgt_down"
    pg_down tgt
    wait_until 20 in_log tgt "$n: will retry in"
    [ -f "$W/inbox/.work/$n" ]
    no_quarantine
    [ -z "$(files "$W/inbox/processed")" ]
    pg_up tgt
    rm -f "$W/tgt_down"

    wait_until 60 test -f "$W/inbox/processed/$n"
    [ "$(ledger lost)" = 1 ]
    same_data "dataset LIKE 'public.ds_%'"
    [ "$(log_count tgt "$n: importing")" -ge 2 ]
    [ "$(log_count tgt "$n: imported bundle")" = 1 ]
    no_quarantine
    [ -z "$(ls -A "$W/inbox/.work")" ]
}

@test "SIGKILL of the daemon in the middle of an import: after a restart the bundle is imported exactly once; SIGTERM mid-import exits 0" {
    pair kill big
    job kill "public.ds_%"
    daemon_start tgt1 "$W/tgt.ini"
    b=$(mkbundle kill)
    n=$(basename "$b")
    cp "$b" "$W/inbox/"
    wait_until 20 in_log tgt1 "$n: importing"
    kill -KILL "$PID"
    { wait "$PID"; } 2>/dev/null || true
    not in_log tgt1 "$n: imported"
    [ -f "$W/inbox/.work/$n" ]
    [ "$(ledger kill)" = 0 ]

    # a restart takes it up from .work/; SIGTERM in the middle of that import
    # lets it commit or roll back, and the daemon exits 0
    daemon_start tgt2 "$W/tgt.ini"
    wait_until 60 in_log tgt2 "$n: importing"
    kill -TERM "$PID"
    stop_and_wait "$PID" 30
    [ "$RC" = 0 ]
    in_log tgt2 "owlsync daemon stopped"
    if [ "$(ledger kill)" = 1 ]; then
        [ -f "$W/inbox/processed/$n" ]
    else
        [ -f "$W/inbox/.work/$n" ]
        daemon_start tgt3 "$W/tgt.ini"
    fi
    wait_until 60 test -f "$W/inbox/processed/$n"
    [ "$(ledger kill)" = 1 ]
    same_data "dataset LIKE 'public.ds_%'"
    [ "$(cat "$W"/tgt*.log | grep -cF "$n: imported bundle")" = 1 ]
    no_quarantine
    [ -z "$(ls -A "$W/inbox/.work")" ]
    [ -z "$(files "$W/inbox")" ]
}

@test "two daemons on one inbox, 50 bundles dropped at once: each imported exactly once, in snapshot order per dataset" {
    pair many
    # one small table, so that 50 exports and imports stay quick
    job many_a "public.ds_1" skip_unchanged=false tables=owl_catalog
    job many_b "public.ds_2" skip_unchanged=false tables=owl_catalog
    # the two jobs' exports side by side (each job's own runs one after the
    # other), in a plain shell: bats' per-command tracing would slow the loop
    for j in many_a many_b; do
        bash -c 'for i in $(seq 25); do "$0" -c "$1" export -j "$2" --quiet >/dev/null || exit 1; done' \
            "$OWLSYNC" "$SRC_INI" "$j" &
    done
    wait -n
    wait -n
    [ "$(nfiles "$W/stage")" = 50 ]
    tgt_ini "$W/tgt1.ini" settle_time=1 poll_interval=2
    tgt_ini "$W/tgt2.ini" settle_time=1 poll_interval=2
    daemon_start tgt1 "$W/tgt1.ini"
    pid1=$PID
    daemon_start tgt2 "$W/tgt2.ini"
    pid2=$PID

    mv "$W/stage"/*.owlb "$W/inbox/"
    wait_until 120 all_done 50
    [ "$(pg_query tgt "SELECT count(*) || ' ' || count(DISTINCT bundle_id) FROM owlsync.bundles
                      WHERE environment = 'prod' AND job IN ('many_a', 'many_b')")" = "50 50" ]
    no_quarantine
    [ -z "$(files "$W/inbox")" ]
    [ -z "$(ls -A "$W/inbox/.work")" ]
    # each file imported once, by one daemon or the other
    [ $(($(log_count tgt1 ": imported bundle") + $(log_count tgt2 ": imported bundle"))) = 50 ]
    [ $(($(log_count tgt1 ": importing") + $(log_count tgt2 ": importing"))) = 50 ]
    not grep -q "already imported" "$W/tgt1.log" "$W/tgt2.log"
    # in snapshot order per job and dataset
    for j in many_a many_b; do
        [ "$(pg_query tgt "SELECT string_agg(sequence::text, ',' ORDER BY imported_at, sequence) FROM owlsync.bundles
                          WHERE environment = 'prod' AND job = '$j'")" = "$(seq -s, 25)" ]
        [ "$(pg_query tgt "SELECT string_agg(sequence::text, ',' ORDER BY snapshot_at) FROM owlsync.bundles
                          WHERE environment = 'prod' AND job = '$j'")" = "$(seq -s, 25)" ]
    done
    DIGEST_TABLES=owl_catalog same_data "dataset IN ('public.ds_1', 'public.ds_2')"
    # the metrics of both say so, and that nothing waits any more
    [ $(($(metric "$W/tgt1.prom" owlsync_bundles_imported_total) + $(metric "$W/tgt2.prom" owlsync_bundles_imported_total))) = 50 ]
    wait_until 5 metric_is "$W/tgt1.prom" owlsync_inbox_backlog 0
    wait_until 5 metric_is "$W/tgt2.prom" owlsync_inbox_backlog 0
    pg_alive "$pid1"
    pg_alive "$pid2"
}

@test "SIGHUP with a broken config keeps the old one running, a good one is taken; SIGTERM exits 0 promptly" {
    pair hup
    job hup "public.ds_1" skip_unchanged=false
    daemon_start tgt "$W/tgt.ini"
    cp "$W/tgt.ini" "$W/tgt.good"

    # broken: an unknown key
    echo "no_such_key = 1" >>"$W/tgt.ini"
    kill -HUP "$PID"
    wait_until 10 in_log tgt "reload refused"
    grep "reload refused" "$W/tgt.log" | grep -q "no_such_key"
    pg_alive "$PID"
    # valid, but its inbox does not exist: refused the same way, the old inbox stays on
    tgt_ini "$W/tgt.ini" "inbox=$W/no-such-inbox"
    kill -HUP "$PID"
    wait_until 10 log_count_is tgt "reload refused" 2
    grep "reload refused" "$W/tgt.log" | grep -q "no-such-inbox"
    b=$(mkbundle hup)
    cp "$b" "$W/inbox/"
    wait_until 15 test -f "$W/inbox/processed/$(basename "$b")"
    [ "$(ledger hup)" = 1 ]
    not in_log tgt "config reloaded"

    # a valid config with another watch mode and inbox is taken as a whole
    mkdir "$W/inbox2"
    tgt_ini "$W/tgt.ini" watch=poll poll_interval=2 "inbox=$W/inbox2"
    kill -HUP "$PID"
    wait_until 10 in_log tgt "config reloaded"
    in_log tgt "watching inbox $W/inbox2 (poll, rescanned every 2 s, settle 1 s)"
    b=$(mkbundle hup)
    cp "$b" "$W/inbox2/"
    wait_until 15 test -f "$W/inbox2/processed/$(basename "$b")"
    [ "$(ledger hup)" = 2 ]

    kill -TERM "$PID"
    stop_and_wait "$PID" 5
    [ "$RC" = 0 ]
    in_log tgt "owlsync daemon stopped"

    # SIGINT too
    daemon_start tgt3 "$W/tgt.ini"
    kill -INT "$PID"
    stop_and_wait "$PID" 5
    [ "$RC" = 0 ]
}

@test "bundles dropped newest first (a week carried across an air gap): the older are superseded, moved to processed/ and counted, never quarantined" {
    pair late
    job late "public.ds_1, public.ds_2"
    for v in 1 2 3 4; do
        pg_query src "UPDATE late.owl_rule SET rule_value = 'v$v' WHERE dataset IN ('public.ds_1', 'public.ds_2')" >/dev/null
        mkbundle late >"$W/b$v"
    done
    daemon_start tgt "$W/tgt.ini"
    cp "$(cat "$W/b4")" "$W/inbox/"
    wait_until 15 all_done 1
    # the rest one by one, newest first, as a copy of a folder in any order would
    for v in 3 1 2; do cp "$(cat "$W/b$v")" "$W/inbox/"; done
    wait_until 20 all_done 4
    no_quarantine
    [ "$(ledger late)" = 1 ]
    same_data "dataset IN ('public.ds_1', 'public.ds_2')"
    [ "$(pg_query tgt "SELECT DISTINCT rule_value FROM late.owl_rule")" = v4 ]
    [ "$(log_count tgt "superseded, not applied")" = 3 ]
    wait_until 5 metric_is "$W/tgt.prom" owlsync_bundles_superseded_total 3
    metric_is "$W/tgt.prom" owlsync_bundles_imported_total 1
    [ -z "$(ls -A "$W/inbox/.work")" ]
}

@test "SIGTERM while an import waits on a lock exits within seconds; with lock_timeout set, a lock held longer is retried, not quarantined" {
    pair lock
    job lock "public.ds_1"
    b=$(mkbundle lock)
    n=$(basename "$b")
    # another session holds the table the import must write
    hold_lock lock.owl_rule
    daemon_start tgt "$W/tgt.ini"
    cp "$b" "$W/inbox/"
    wait_until 15 in_log tgt "$n: importing"
    sleep 2
    wait_until 5 lock_waited
    start=$SECONDS
    kill -TERM "$PID"
    stop_and_wait "$PID" 10
    [ "$RC" = 0 ]
    [ $((SECONDS - start)) -le 5 ]
    [ -f "$W/inbox/.work/$n" ]
    no_quarantine
    [ "$(ledger lock)" = 0 ]

    # lock_timeout = 2s: the import gives up after 2 s, and is retried later
    tgt_ini "$W/tgt.ini" lock_timeout=2s
    daemon_start tgt2 "$W/tgt.ini"
    wait_until 15 in_log tgt2 "$n: will retry in"
    grep "$n:" "$W/tgt2.log" | grep -q "lock timeout"
    no_quarantine
    kill "$holder" 2>/dev/null
    pg_query tgt "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(120)%' AND pid <> pg_backend_pid()" >/dev/null
    wait_until 30 test -f "$W/inbox/processed/$n"
    [ "$(ledger lock)" = 1 ]
}

@test "a processed_dir the file cannot be moved into: imported once, the move retried with backoff, not every second" {
    pair stuck
    job stuck "public.ds_1"
    mkdir -p "$W/inbox/processed"
    if ! chattr +i "$W/inbox/processed" 2>/dev/null; then
        skip "chattr +i does not work here"
    fi
    b=$(mkbundle stuck)
    n=$(basename "$b")
    daemon_start tgt "$W/tgt.ini"
    cp "$b" "$W/inbox/"
    wait_until 15 in_log tgt "$n: will retry in"
    sleep 8
    chattr -i "$W/inbox/processed"
    # a retry after 5 s, then one after 10 s at most: not one a second
    [ "$(log_count tgt "$n: importing")" -le 3 ]
    [ "$(ledger stuck)" = 1 ]
    wait_until 20 test -f "$W/inbox/processed/$n"
    [ "$(ledger stuck)" = 1 ]
    no_quarantine
}

@test "bundles signed by no trusted key are looked at last: a good bundle dropped with 20 of them is imported before any is quarantined" {
    pair junk
    job junk "public.ds_1"
    # the strangers' files hold an older snapshot: by their unverified word, they would go first
    j=$(mkbundle junk)
    unpack "$j" "$W/u"
    mkdir "$W/drop"
    resign "$K/stranger.key" "$W/u" "$W/drop/junk.owlb"
    pg_query src "UPDATE junk.owl_rule SET rule_value = 'good' WHERE dataset = 'public.ds_1'" >/dev/null
    b=$(mkbundle junk)
    n=$(basename "$b")
    for i in $(seq 2 20); do cp "$W/drop/junk.owlb" "$W/drop/junk$i.owlb"; done
    cp "$b" "$W/drop/"
    daemon_start tgt "$W/tgt.ini"
    mv "$W/drop"/*.owlb "$W/inbox/"
    wait_until 30 all_done 21
    first_q=$(grep -n "; quarantined" "$W/tgt.log" | head -1 | cut -d: -f1)
    imported=$(grep -n "$n: imported bundle" "$W/tgt.log" | cut -d: -f1)
    [ -n "$imported" ] && [ -n "$first_q" ]
    [ "$imported" -lt "$first_q" ]
    [ "$(nfiles "$W/inbox/quarantine")" = 20 ]
    [ "$(ledger junk)" = 1 ]
}

@test "encrypted promotion: a bundle encrypted to this target is imported; one for another environment (3, its key id named) and a plaintext one under require_encryption (4) are quarantined" {
    pair encd
    job sec "public.ds_1, public.ds_2" "encrypt_to=qa $K/qa.enc.pub"
    job foruat "public.ds_1, public.ds_2" "encrypt_to=uat $K/uat.enc.pub"
    job plain "public.ds_1, public.ds_2"
    tgt_ini "$W/tgt.ini" "decrypt_key=$K/qa.enc" "require_encryption=true"
    uat_id=$("$OWLSYNC" inspect "$(mkbundle foruat)" | awk '$1 == "recipients" { print $2 }')
    [[ $uat_id =~ ^[0-9a-f]{16}$ ]]
    u=$(basename "$(ls "$W/stage"/prod_foruat_*.owlb)")
    p=$(basename "$(mkbundle plain)")
    b=$(mkbundle sec)
    n=$(basename "$b")
    [ "$(head -c 11 "$b")" = OWLSYNC-ENC ]
    daemon_start tgt "$W/tgt.ini"
    cp "$W/stage/$u" "$W/stage/$p" "$b" "$W/inbox/"
    wait_until 30 all_done 3
    [ "$(files "$W/inbox/processed")" = "$n" ]
    cmp "$b" "$W/inbox/processed/$n"
    in_log tgt "$n: imported bundle 1 of prod/sec"
    [ "$(ledger sec)" = 1 ]
    same_data "dataset IN ('public.ds_1', 'public.ds_2')"
    q=$W/inbox/quarantine
    grep -q '^exit_code: 3$' "$q/$u.reason"
    grep -q "^reason: .*bundle is encrypted for key $uat_id, not for this environment's decryption key" "$q/$u.reason"
    grep -q '^exit_code: 4$' "$q/$p.reason"
    grep -q '^reason: .*bundle is not encrypted, and this environment requires encryption' "$q/$p.reason"
    [ "$(ledger foruat)" = 0 ]
    [ "$(ledger plain)" = 0 ]
}

@test "a scheduled export that fails (source unreachable) is retried with backoff before its next scheduled time" {
    pair retry
    job retry "public.ds_1" "schedule=* * * * *"
    sed -i -e "s|^conninfo = .*|conninfo = host=$W/no-such-socket-dir dbname=none connect_timeout=2|" \
        -e "s|^log_level = .*|log_level = info|" "$SRC_INI"
    daemon_start src "$SRC_INI"
    wait_until 75 in_log src "export job retry: failed (exit 1); will retry in 5 s"
    wait_until 10 in_log src "export job retry: retrying after its failed run"
    wait_until 10 in_log src "export job retry: failed (exit 1); will retry in 10 s"
}

@test "status --json shows the imports, the inbox and the quarantine with reasons; max_staleness and the metrics file" {
    pair stat
    job stat "public.ds_1"
    job stat_uat "public.ds_2" targets=uat
    tgt_ini "$W/tgt.ini" max_staleness=1s
    daemon_start tgt "$W/tgt.ini"
    b=$(mkbundle stat)
    n=$(basename "$b")
    p=$(mkbundle stat_uat)           # meant for uat: refused by policy
    pn=$(basename "$p")
    head -c 100 "$b" >"$W/stage/short.owlb"
    cp "$b" "$p" "$W/stage/short.owlb" "$W/inbox/"
    wait_until 15 test -f "$W/inbox/processed/$n" -a -f "$W/inbox/quarantine/$pn.reason" \
        -a -f "$W/inbox/quarantine/short.owlb.reason"
    grep -q '^exit_code: 4$' "$W/inbox/quarantine/$pn.reason"
    grep -q '^exit_code: 3$' "$W/inbox/quarantine/short.owlb.reason"

    # max_staleness = 1 s: soon stale, said in the log and the metrics
    wait_until 10 in_log tgt "max_staleness"
    m=$W/tgt.prom
    wait_until 10 metric_is "$m" owlsync_stale 1
    [ "$(metric "$m" owlsync_bundles_imported_total)" = 1 ]
    [ "$(metric "$m" 'owlsync_bundles_rejected_total{reason="verification"}')" = 1 ]
    [ "$(metric "$m" 'owlsync_bundles_rejected_total{reason="policy"}')" = 1 ]
    [ "$(metric "$m" owlsync_inbox_backlog)" = 0 ]
    rows=$(metric "$m" owlsync_rows_applied_total)
    [ "$rows" -gt 0 ]
    [ "$(pg_query tgt "SELECT rows_total FROM owlsync.bundles WHERE job = 'stat'")" = "$rows" ]
    [ "$(metric "$m" owlsync_inbox_last_success_timestamp_seconds)" -gt $(($(date +%s) - 60)) ]
    grep -q '^# TYPE owlsync_bundles_imported_total counter$' "$m"
    [ ! -e "$W/.tgt.prom.tmp" ]

    # status --json
    run --separate-stderr "$OWLSYNC" -c "$W/tgt.ini" status --json
    [ "$status" -eq 0 ]
    j=$output
    echo "$j"
    [ "$(json_q "$j" "SELECT count(*) FROM jsonb_array_elements((:'j'::jsonb)->'imports') e
                      WHERE e->>'file' = '$n' AND e->>'job' = 'stat' AND e->>'environment' = 'prod'
                        AND (e->>'rows')::bigint = $rows AND e->>'datasets' LIKE '%public.ds_1%'")" = 1 ]
    [ "$(json_get "$j" '{inbox,dir}')" = "$W/inbox" ]
    [ "$(json_get "$j" '{inbox,waiting}')" = 0 ]
    [ "$(json_get "$j" '{inbox,working}')" = 0 ]
    [ "$(json_get "$j" '{inbox,quarantined}')" = 2 ]
    [ "$(json_q "$j" "SELECT string_agg(e->>'file', ' ' ORDER BY e->>'file') FROM jsonb_array_elements((:'j'::jsonb)->'quarantine') e")" \
        = "$(printf '%s\n' "$pn" short.owlb | sort | tr '\n' ' ' | sed 's/ $//')" ]
    for f in "$pn" short.owlb; do
        reason=$(sed -n 's/^reason: //p' "$W/inbox/quarantine/$f.reason")
        [ -n "$reason" ]
        [ "$(json_q "$j" "SELECT e->>'reason' FROM jsonb_array_elements((:'j'::jsonb)->'quarantine') e WHERE e->>'file' = '$f'")" = "$reason" ]
    done
    [[ $(json_get "$j" '{quarantine}') == *uat* ]]     # the policy reason names the targets
    wait_until 5 status_stale "$W/tgt.ini"

    # the text form says the same
    run --separate-stderr "$OWLSYNC" -c "$W/tgt.ini" status
    [ "$status" -eq 0 ]
    [[ $output == *"$n"* ]]
    [[ $output == *"0 waiting, 0 settling, 0 in .work/, 2 quarantined"* ]]
    [[ $output == *"quarantined short.owlb: "* ]]

    # the same name quarantined again lands as short.owlb.1: counted and listed alike
    cp "$W/stage/short.owlb" "$W/inbox/"
    wait_until 15 test -f "$W/inbox/quarantine/short.owlb.1.reason"
    run --separate-stderr "$OWLSYNC" -c "$W/tgt.ini" status --json
    [ "$status" -eq 0 ]
    j=$output
    [ "$(json_get "$j" '{inbox,quarantined}')" = 3 ]
    [ "$(json_q "$j" "SELECT count(*) FROM jsonb_array_elements((:'j'::jsonb)->'quarantine') e")" = 3 ]
    [ "$(json_q "$j" "SELECT e->>'reason' FROM jsonb_array_elements((:'j'::jsonb)->'quarantine') e
                      WHERE e->>'file' = 'short.owlb.1'")" = "$(sed -n 's/^reason: //p' "$W/inbox/quarantine/short.owlb.1.reason")" ]
    run --separate-stderr "$OWLSYNC" -c "$W/tgt.ini" status
    [[ $output == *"0 waiting, 0 settling, 0 in .work/, 3 quarantined"* ]]
    [ "$(grep -c '^  quarantined ' <<<"$output")" = 3 ]
    [[ $output == *"quarantined short.owlb.1: "* ]]
}

@test "metrics: a restarted daemon reports each job's last success and failure from its state, not 0; imports count their bytes and seconds; build info" {
    pair metr
    job metr "public.ds_1" "schedule=0 3 1 1 *"
    sed -i -e "s|^state_dir = .*|&\nmetrics_file = $W/src.prom\nmetrics_mode = 0640|" -e "s|^log_level = .*|log_level = info|" "$SRC_INI"
    mkdir -p "$W/state"
    printf 'finished 2026-01-02T03:04:05Z\nexit 1\nsuccess 2026-01-01T00:00:00Z\nfailure 2026-01-02T03:04:05Z\n' \
        >"$W/state/export-metr.last"
    daemon_start src "$SRC_INI"
    m=$W/src.prom
    wait_until 5 test -f "$m"
    [ "$(stat -c %a "$m")" = 640 ] # metrics_mode
    [ "$(metric "$m" 'owlsync_export_last_success_timestamp_seconds{job="metr"}')" = "$(date -d 2026-01-01T00:00:00Z +%s)" ]
    [ "$(metric "$m" 'owlsync_export_last_failure_timestamp_seconds{job="metr"}')" = "$(date -d 2026-01-02T03:04:05Z +%s)" ]
    [ "$(metric "$m" 'owlsync_export_bytes_total{job="metr"}')" = 0 ]
    grep -q '^# TYPE owlsync_export_bytes_total counter$' "$m"
    grep -q '^owlsync_build_info{version="[0-9][^"]*",commit="[^"]*"} 1$' "$m"

    # an import: its bundle's bytes and the seconds it took
    b=$(mkbundle metr)
    tgt_ini "$W/tgt.ini"
    daemon_start tgt "$W/tgt.ini"
    cp "$b" "$W/inbox/"
    t=$W/tgt.prom
    wait_until 15 metric_is "$t" owlsync_bundles_imported_total 1
    [ "$(metric "$t" owlsync_import_bytes_total)" = "$(stat -c %s "$b")" ]
    awk '$1 == "owlsync_import_duration_seconds_total" && $2 > 0 { a = 1 }
         $1 == "owlsync_import_last_duration_seconds" && $2 > 0 { b = 1 } END { exit !(a && b) }' "$t"
    [ "$(metric "$t" owlsync_import_retries_total)" = 0 ]
    grep -q '^owlsync_build_info{' "$t"
}

@test "metrics: the last failed import's time survives a restart (STATE_DIR/import.last); 0 before any failure" {
    pair ifail
    job ifail "public.ds_1"
    b=$(mkbundle ifail)
    head -c 100 "$b" >"$W/stage/short.owlb"
    tgt_ini "$W/tgt.ini"
    daemon_start tgt "$W/tgt.ini"
    t=$W/tgt.prom
    wait_until 5 test -f "$t"
    [ "$(metric "$t" owlsync_inbox_last_failure_timestamp_seconds)" = 0 ]
    before=$(date +%s)
    cp "$W/stage/short.owlb" "$W/inbox/"
    wait_until 15 test -f "$W/inbox/quarantine/short.owlb.reason"
    wait_until 5 metric_ge "$t" owlsync_inbox_last_failure_timestamp_seconds "$before"
    failed=$(metric "$t" owlsync_inbox_last_failure_timestamp_seconds)
    grep -q "^failure $(date -u -d "@$failed" +%Y-%m-%dT%H:%M:%SZ)$" "$W/tstate/import.last"
    # a good import later does not clear it
    cp "$b" "$W/inbox/"
    wait_until 15 metric_is "$t" owlsync_bundles_imported_total 1
    daemons_stop "$W/daemons"
    rm "$W/daemons" "$t"

    daemon_start tgt2 "$W/tgt.ini"
    wait_until 5 test -f "$t"
    [ "$(metric "$t" owlsync_inbox_last_failure_timestamp_seconds)" = "$failed" ]
    [ "$(metric "$t" owlsync_bundles_imported_total)" = 0 ]
}

@test "logs: when stderr is the journal (JOURNAL_STREAM names it) each line has its sd-daemon priority and no timestamp; elsewhere a timestamp; log_format = json gives one object a line" {
    pair logs
    job logs "public.ds_1"
    b=$(mkbundle logs)
    head -c 100 "$b" >"$W/stage/short.owlb"
    tgt_ini "$W/tgt.ini"
    : >"$W/tgt.log"
    JOURNAL_STREAM=$(stat -c %d:%i "$W/tgt.log") daemon_start tgt "$W/tgt.ini"
    cp "$W/stage/short.owlb" "$W/inbox/"
    wait_until 15 test -f "$W/inbox/quarantine/short.owlb.reason"
    cat "$W/tgt.log"
    grep -q '^<6>info  owlsync daemon started' "$W/tgt.log"
    grep -q '^<3>error short.owlb: .*; quarantined$' "$W/tgt.log"
    not grep -q '^<[0-9]>[0-9]' "$W/tgt.log"           # no timestamp of its own
    not grep -qv '^<[3467]>' "$W/tgt.log"              # every line has its priority
    daemons_stop "$W/daemons"
    rm "$W/daemons"

    # JOURNAL_STREAM left over from a parent whose stderr was the journal, ours a file: timestamps
    : >"$W/tgt2.log"
    JOURNAL_STREAM=$(stat -c %d:%i "$W/tgt.log") daemon_start tgt2 "$W/tgt.ini"
    grep -q '^20[0-9-]*T[0-9:]*Z info  owlsync daemon started' "$W/tgt2.log"
    not grep -q '^<' "$W/tgt2.log"
    daemons_stop "$W/daemons"
    rm "$W/daemons"

    # log_format = json: every line one object with time, level and message
    sed -i 's/^log_level = info$/&\nlog_format = json/' "$W/tgt.ini"
    daemon_start tgt3 "$W/tgt.ini"
    cp "$W/stage/short.owlb" "$W/inbox/short2.owlb"
    wait_until 15 test -f "$W/inbox/quarantine/short2.owlb.reason"
    cat "$W/tgt3.log"
    [ "$(pg_psql tgt -At -v t="$(cat "$W/tgt3.log")" <<<"
        SELECT count(*) FILTER (WHERE l::jsonb ?& ARRAY['time', 'level', 'message']
                                  AND (SELECT count(*) FROM jsonb_object_keys(l::jsonb)) = 3
                                  AND l::jsonb->>'time' ~ '^20[0-9-]{8}T[0-9:]{8}\.[0-9]{6}Z$')
               = count(*)
        FROM unnest(string_to_array(:'t', E'\n')) l")" = t ]
    grep -q '^{"time":"[^"]*","level":"error","message":"short2.owlb: .*; quarantined"}$' "$W/tgt3.log"
    grep -q '"level":"info","message":"owlsync daemon started' "$W/tgt3.log"

    # a command's final error too: one object of level error with log_format = json
    run --separate-stderr "$OWLSYNC" -c "$W/tgt.ini" import "$W/stage/short.owlb"
    [ "$status" -eq 3 ]
    grep -q '^{"time":"[^"]*","level":"error","message":"owlsync import: .*short.owlb' <<<"$stderr"
    not grep -qv '^{' <<<"$stderr"
    # and under the journal, the error priority on each of its lines (the hint's too)
    sed -i '/^log_format = json$/d' "$W/tgt.ini"
    printf 'bogus = 1\n' >>"$W/tgt.ini"
    : >"$W/final.log"
    JOURNAL_STREAM=$(stat -c %d:%i "$W/final.log") "$OWLSYNC" -c "$W/tgt.ini" daemon 2>>"$W/final.log" </dev/null &&
        false || true
    cat "$W/final.log"
    grep -q '^<3>owlsync daemon: .*bogus: unknown key' "$W/final.log"
    not grep -qv '^<[0-9]>' "$W/final.log"
}

@test "logs: what the database server says outside a result (a trigger's WARNING) is a log line at its level, not a raw line" {
    pair notice
    job notice "public.ds_1"
    b=$(mkbundle notice)
    pg_psql tgt -c "CREATE FUNCTION notice.warn() RETURNS trigger LANGUAGE plpgsql AS \$\$
        BEGIN RAISE WARNING 'rows of % arrive', TG_TABLE_NAME; RETURN NULL; END \$\$" \
        -c "CREATE TRIGGER warn AFTER INSERT ON notice.owl_catalog FOR EACH STATEMENT EXECUTE FUNCTION notice.warn()" \
        >/dev/null
    tgt_ini "$W/tgt.ini"
    run --separate-stderr "$OWLSYNC" -c "$W/tgt.ini" import "$b"
    [ "$status" -eq 0 ]
    echo "$stderr"
    grep -Eq '^20[0-9-]+T[0-9:]+Z warn  the database server: WARNING: rows of owl_catalog arrive$' <<<"$stderr"
    not grep -q '^WARNING:' <<<"$stderr"
}

# lock_held TABLE — a session holds a granted lock on TABLE in tgt.
lock_held() {
    [ "$(pg_query tgt "SELECT count(*) FROM pg_locks WHERE relation = '$1'::regclass AND granted")" -ge 1 ]
}

# hold_lock TABLE — another session of tgt takes an ACCESS EXCLUSIVE lock on
# TABLE and keeps it (120 s, or until `kill "$holder"`); returns once it is
# held, or fails saying what the server shows.
hold_lock() {
    pg_psql tgt -c "BEGIN; LOCK TABLE $1 IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(120); COMMIT" \
        </dev/null >"$W/holder.out" 2>&1 &
    holder=$!
    if ! wait_until 30 lock_held "$1"; then
        cat "$W/holder.out" >&2
        pg_query tgt "SELECT pid, state, wait_event_type, wait_event, left(query, 80) FROM pg_stat_activity" >&2
        pg_query tgt "SELECT pid, locktype, relation::regclass, mode, granted FROM pg_locks WHERE relation IS NOT NULL" >&2
        return 1
    fi
}

# lock_waited — a session of tgt waits for a lock.
lock_waited() {
    [ "$(pg_query tgt "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")" -ge 1 ]
}

# status_json CONFIG — sets J to `status --json` (exit 0 required).
status_json() {
    run --separate-stderr "$OWLSYNC" -c "$1" status --json
    [ "$status" -eq 0 ]
    J=$output
}

# file_field FILE FIELD — FIELD of file FILE in $J's files (jsonb #>> text).
file_field() {
    json_q "$J" "SELECT e->>'$2' FROM jsonb_array_elements((:'j'::jsonb)->'files') e WHERE e->>'file' = '$1'"
}

@test "status names every file with its state: waiting, settling, retrying (attempts, last error, next try), quarantined, ignored and why; bounded in text; --json typed" {
    pair stfiles 8
    job stfiles "public.ds_1, public.ds_2, public.ds_3, public.ds_4, public.ds_5, public.ds_6, public.ds_7, public.ds_8"
    tgt_ini "$W/tgt.ini" lock_timeout=2s
    b=$(mkbundle stfiles)
    n=$(basename "$b")
    hold_lock stfiles.owl_rule
    daemon_start tgt "$W/tgt.ini"
    cp "$b" "$W/inbox/"
    wait_until 20 in_log tgt "$n: will retry in"
    grep -q "^$n	[1-9][0-9]*	" "$W/tstate/inbox-retries"
    kill -STOP "$PID"
    # a settled bundle, one still being written, and what the daemon never takes
    cp "$b" "$W/inbox/older.owlb"
    touch -d '-1 hour' "$W/inbox/older.owlb"
    echo partial >"$W/inbox/fresh.owlb"
    touch -d '+1 hour' "$W/inbox/fresh.owlb"
    ln -s "$b" "$W/inbox/link.owlb"
    echo x >"$W/inbox/notes.txt"
    echo x >"$W/inbox/.partial.owlb"
    mkdir "$W/inbox/dir.owlb"
    echo x >"$W/inbox/quarantine/bad.owlb"
    printf 'reason: signature does not verify\ntime: x\nexit_code: 3\nfile: bad.owlb\n' >"$W/inbox/quarantine/bad.owlb.reason"

    run --separate-stderr "$OWLSYNC" -c "$W/tgt.ini" status
    echo "$output"
    [ "$status" -eq 0 ]
    [[ $output == *"inbox $W/inbox: 1 waiting, 1 settling, 1 in .work/, 1 quarantined, 4 ignored"* ]]
    grep -q "^  waiting     older.owlb$" <<<"$output"
    grep -q "^  settling    fresh.owlb$" <<<"$output"
    grep -q "^  retrying    $n: [0-9]* failed attempts\?, next try 20[0-9-]*T[0-9:]*Z; last error: .*lock timeout" <<<"$output"
    grep -q "^  quarantined bad.owlb: signature does not verify$" <<<"$output"
    grep -q "^  ignored     link.owlb: a symbolic link" <<<"$output"
    grep -q "^  ignored     notes.txt: not named \*.owlb$" <<<"$output"
    grep -q "^  ignored     .partial.owlb: hidden" <<<"$output"
    grep -q "^  ignored     dir.owlb: a directory$" <<<"$output"
    not grep -q "processed\|quarantine:" <<<"$(grep '^  ignored' <<<"$output")"

    status_json "$W/tgt.ini"
    echo "$J"
    [ "$(json_q "$J" "SELECT string_agg(k || '=' || jsonb_typeof((:'j'::jsonb)->'inbox'->k), ' ' ORDER BY k)
                      FROM unnest(ARRAY['waiting','settling','working','retrying','quarantined','ignored']) k")" \
        = "ignored=number quarantined=number retrying=number settling=number waiting=number working=number" ]
    [ "$(json_get "$J" '{inbox,retrying}')" = 1 ]
    [ "$(json_get "$J" '{inbox,settling}')" = 1 ]
    [ "$(json_get "$J" '{inbox,waiting}')" = 1 ]   # the settled one: the settling one apart
    [ "$(file_field "$n" state)" = retrying ]
    [ "$(file_field "$n" dir)" = "$W/inbox/.work" ]
    [ "$(file_field "$n" attempts)" -ge 1 ]
    [ "$(json_q "$J" "SELECT jsonb_typeof(e->'attempts') FROM jsonb_array_elements((:'j'::jsonb)->'files') e WHERE e->>'file' = '$n'")" = number ]
    [[ $(file_field "$n" next_try) =~ ^20[0-9-]{8}T[0-9:]{8}Z$ ]]
    [[ $(file_field "$n" last_error) == *"lock timeout"* ]]
    [ "$(file_field older.owlb state)" = waiting ]
    [ "$(file_field fresh.owlb state)" = settling ]
    [ "$(file_field bad.owlb state)" = quarantined ]
    [ "$(file_field bad.owlb reason)" = "signature does not verify" ]
    [ "$(file_field link.owlb state)" = ignored ]
    [[ $(file_field link.owlb reason) == "a symbolic link"* ]]

    # long lists: 50 named per state in text, then a count; --json has them all
    for i in $(seq 1 60); do echo x >"$W/inbox/junk$i.txt"; done
    run --separate-stderr "$OWLSYNC" -c "$W/tgt.ini" status
    [ "$status" -eq 0 ]
    [ "$(grep -c '^  ignored ' <<<"$output")" = 50 ]
    grep -q "^  … and 14 more ignored$" <<<"$output"
    status_json "$W/tgt.ini"
    [ "$(json_get "$J" '{inbox,ignored}')" = 64 ]
    [ "$(json_q "$J" "SELECT count(*) FROM jsonb_array_elements((:'j'::jsonb)->'files') e WHERE e->>'state' = 'ignored'")" = 64 ]
    rm -f "$W/inbox/junk"*.txt "$W/inbox/older.owlb" "$W/inbox/fresh.owlb"

    # the lock gone, the bundle is imported: nothing retrying any more
    kill -CONT "$PID"
    kill "$holder" 2>/dev/null
    pg_query tgt "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(120)%' AND pid <> pg_backend_pid()" >/dev/null
    wait_until 30 test -f "$W/inbox/processed/$n"
    wait_until 5 not grep -q "^$n	" "$W/tstate/inbox-retries"
    status_json "$W/tgt.ini"
    [ "$(json_get "$J" '{inbox,retrying}')" = 0 ]
    [ -z "$(file_field "$n" state)" ]
    wait_until 5 metric_is "$W/tgt.prom" owlsync_import_retries_total "$(grep -c "$n: will retry in" "$W/tgt.log")"

    # the import's eight datasets: five named in text, then a count; all in --json
    run --separate-stderr "$OWLSYNC" -c "$W/tgt.ini" status
    grep -q "$n  (prod/stfiles #1, [0-9]* rows; public.ds_1, public.ds_2, public.ds_3, public.ds_4, public.ds_5 … and 3 more)" <<<"$output"
    [ "$(json_q "$J" "SELECT jsonb_array_length(e->'datasets') || ' ' || (e->>'dataset_count') FROM jsonb_array_elements((:'j'::jsonb)->'imports') e WHERE e->>'file' = '$n'")" = "8 8" ]

    # an [import] without an inbox (imports by hand only): nothing to list, exit 0
    grep -v '^inbox = ' "$W/tgt.ini" >"$W/noinbox.ini"
    run --separate-stderr "$OWLSYNC" -c "$W/noinbox.ini" status
    [ "$status" -eq 0 ]
    [[ $output == *"inbox: none configured"* ]]
    [[ $output != *"(null)"* ]]
}

# retry_files — the agents' retry files in the inbox's .work/, one a line.
retry_files() { ls -A "$W/inbox/.work" | grep '^\.retries\.' || true; }

@test "two agents on one inbox: status on either host shows the file the other retries, with its attempts, last error and agent; a stale or planted retry file neither misleads nor hangs it" {
    pair agents
    job agents "public.ds_1"
    # two agents, each with its own state_dir, sharing the inbox and the target
    mkdir -p "$W/a" "$W/b"
    tgt_ini "$W/a/tgt.ini" lock_timeout=2s
    tgt_ini "$W/b/tgt.ini" lock_timeout=2s
    b=$(mkbundle agents)
    n=$(basename "$b")
    hold_lock agents.owl_rule
    daemon_start b "$W/b/tgt.ini"
    cp "$b" "$W/inbox/"
    wait_until 20 in_log b "$n: will retry in"
    kill -STOP "$PID"
    # agent b's list, named by its id (host name, hash of its state_dir)
    [ "$(retry_files | wc -l)" = 1 ]
    agent=$(retry_files | sed 's/^\.retries\.//')
    [[ $agent =~ ^[A-Za-z0-9._-]+-[0-9a-f]{8}$ ]]
    [ "$(stat -c %a "$W/inbox/.work/.retries.$agent")" = 644 ]
    grep -q "^$n	[1-9][0-9]*	" "$W/inbox/.work/.retries.$agent"
    [ ! -e "$W/a/tstate/inbox-retries" ]

    # on agent a's host: the file is retrying on b, with b's attempts and error
    run --separate-stderr "$OWLSYNC" -c "$W/a/tgt.ini" status
    echo "$output"
    [ "$status" -eq 0 ]
    [[ $output == *"inbox $W/inbox: 0 waiting, 0 settling, 1 in .work/, 0 quarantined, 0 ignored"* ]]
    grep -q "^  retrying    $n on $agent: [1-9][0-9]* failed attempts\?, next try 20[0-9-]*T[0-9:]*Z; last error: .*lock timeout" <<<"$output"
    not grep -q "in progress\|overdue\|retry state" <<<"$output"
    status_json "$W/a/tgt.ini"
    [ "$(json_get "$J" '{inbox,retrying}')" = 1 ]
    [ "$(file_field "$n" state)" = retrying ]
    [ "$(file_field "$n" agent)" = "$agent" ]
    [ "$(file_field "$n" attempts)" -ge 1 ]
    [ "$(file_field "$n" attempts)" = "$(grep "^$n	" "$W/b/tstate/inbox-retries" | cut -f2)" ]
    [[ $(file_field "$n" last_error) == *"lock timeout"* ]]
    [[ $(file_field "$n" next_try) =~ ^20[0-9-]{8}T[0-9:]{8}Z$ ]]
    [[ $(file_field "$n" agent_state_written) =~ ^20[0-9-]{8}T[0-9:]{8}Z$ ]]
    [ "$(file_field "$n" overdue)" = false ]
    [ "$(json_get "$J" '{agents_retry_files,read}')" = 1 ]
    # on b's own host: as before, no agent named in text; the agent in --json
    run --separate-stderr "$OWLSYNC" -c "$W/b/tgt.ini" status
    [ "$status" -eq 0 ]
    grep -q "^  retrying    $n: [1-9][0-9]* failed attempts\?, next try 20[0-9-]*T[0-9:]*Z; last error: .*lock timeout" <<<"$output"
    status_json "$W/b/tgt.ini"
    [ "$(file_field "$n" agent)" = "$agent" ]

    # an agent gone long ago: its entry for a file no longer in .work/ is
    # ignored, an older one for the same file loses to b's, and a file it
    # left in .work/ shows overdue
    printf 'owlsync-retries 1\n%s\t99\t1000\t900\tghost error\nghost.owlb\t3\t1000\t900\tghost\nold.owlb\t7\t1000\t900\tdisk full\n' \
        "$n" >"$W/inbox/.work/.retries.gone-0000beef"
    echo x >"$W/inbox/.work/old.owlb"
    # planted files: one too large, one binary, a FIFO, a link; none hangs status
    head -c 3000000 /dev/zero | tr '\0' 'x' >"$W/inbox/.work/.retries.huge-00000000"
    printf '\x7fELF\x00\x01\xff' >"$W/inbox/.work/.retries.binary-00000000"
    mkfifo "$W/inbox/.work/.retries.fifo-00000000"
    ln -s "$W/b/tstate/inbox-retries" "$W/inbox/.work/.retries.link-00000000"
    run --separate-stderr timeout 20 "$OWLSYNC" -c "$W/a/tgt.ini" status
    echo "$output"
    [ "$status" -eq 0 ]
    grep -q "^  retrying    $n on $agent: [1-9][0-9]* failed attempts\?, .*lock timeout" <<<"$output"
    grep -q "^  retrying    old.owlb on gone-0000beef: 7 failed attempts, next try 1970-01-01T00:16:40Z; last error: disk full (overdue: is gone-0000beef still running?)$" <<<"$output"
    not grep -q "ghost" <<<"$output"
    grep -q "^retry state: 4 agent files in .work/ not read: .*$W/inbox/.work/.retries\.[a-z]*-00000000" <<<"$output"
    status_json "$W/a/tgt.ini"
    [ "$(json_get "$J" '{inbox,retrying}')" = 2 ]
    [ "$(file_field "$n" agent)" = "$agent" ]
    [ "$(file_field old.owlb agent)" = gone-0000beef ]
    [ "$(file_field old.owlb overdue)" = true ]
    [ "$(json_get "$J" '{agents_retry_files,read}')" = 2 ]
    [ "$(json_get "$J" '{agents_retry_files,skipped}')" = 4 ]
    rm -f "$W/inbox/.work/.retries."{gone-0000beef,huge-00000000,binary-00000000,fifo-00000000,link-00000000} \
        "$W/inbox/.work/old.owlb"

    # the lock gone, b imports the bundle and removes its list
    kill -CONT "$PID"
    kill "$holder" 2>/dev/null
    pg_query tgt "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(120)%' AND pid <> pg_backend_pid()" >/dev/null
    wait_until 30 test -f "$W/inbox/processed/$n"
    wait_until 5 test ! -e "$W/inbox/.work/.retries.$agent"
    [ -z "$(ls -A "$W/inbox/.work")" ]
    status_json "$W/a/tgt.ini"
    [ "$(json_get "$J" '{inbox,retrying}')" = 0 ]
    no_quarantine
}

@test "a scheduled job publishes into the inbox, and the target's daemon imports it: the nightly sync, end to end" {
    N=$BATS_FILE_TMPDIR/night
    SS=nightly TS=nightly
    # status shows the job's schedule and next run: the minute after the one
    # status ran in, somewhere between t0 and t1
    t0=$(date +%s)
    run --separate-stderr "$OWLSYNC" -c "$N/src.ini" status --json
    [ "$status" -eq 0 ]
    json=$output
    run --separate-stderr "$OWLSYNC" -c "$N/src.ini" status
    [ "$status" -eq 0 ]
    text=$output
    t1=$(date +%s)
    echo "$json"
    echo "$text"
    [ "$(json_get "$json" '{jobs,0,job}')" = nightly ]
    [ "$(json_get "$json" '{jobs,0,schedule}')" = "* * * * *" ]
    # --json: ISO 8601 UTC
    nr=$(json_get "$json" '{jobs,0,next_run}')
    [[ $nr =~ ^20[0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:00Z$ ]]
    nr=$(date -d "$nr" +%s)
    [ "$nr" = $((t0 / 60 * 60 + 60)) ] || [ "$nr" = $((t1 / 60 * 60 + 60)) ]
    [ "$(json_q "$json" "SELECT jsonb_typeof((:'j'::jsonb)#>'{jobs,0,last_sequence}') IN ('null', 'number')")" = t ]
    next_minute "$(sed -n 's/^ *nightly .*, next //p' <<<"$text")" "$t0" "$t1"

    # the job fires at the first minute boundary after the daemon started
    # (started in setup_file): wait for what is left of it, and the import
    left=$(($(cat "$N/started") + 90 - $(date +%s)))
    [ "$left" -gt 15 ] || left=15
    LOGDIR=$N
    wait_until "$left" in_log tgt ": imported bundle 1 of night/nightly"
    in_log src "export job nightly: started"
    b=$(sed -n 's/.*export job nightly: published //p' "$N/src.log" | head -1)
    n=$(basename "$b")
    [ "$b" = "$N/inbox/$n" ]
    [[ $n == night_nightly_*_000001.owlb ]]
    wait_until 10 test -f "$N/inbox/processed/$n"
    in_log tgt "$n: imported bundle 1 of night/nightly"
    [ "$(pg_query tgt "SELECT count(*) FROM owlsync.bundles WHERE environment = 'night' AND job = 'nightly'")" = 1 ]
    same_data "dataset IN ('public.ds_1', 'public.ds_2')"
    [ -z "$(ls -A "$N/inbox/quarantine")" ]

    # status shows the run that happened
    wait_until 10 test -f "$N/state/export-nightly.last"
    run --separate-stderr "$OWLSYNC" -c "$N/src.ini" status --json
    [ "$status" -eq 0 ]
    [ "$(json_get "$output" '{jobs,0,last_sequence}')" = 1 ]
    [ "$(json_get "$output" '{jobs,0,last_exit}')" = 0 ]
    # the run's metrics: its bundle's bytes, how long it took, when it succeeded; modes despite umask 0027
    m=$N/src.prom
    wait_until 10 metric_is "$m" 'owlsync_export_bytes_total{job="nightly"}' "$(stat -c %s "$N/inbox/processed/$n")"
    [ "$(stat -c %a "$N/inbox/processed/$n")" = 644 ]
    [ "$(stat -c %a "$m")" = 644 ]
    [ "$(stat -c %a "$N/tgt.prom")" = 644 ]
    awk '$1 == "owlsync_export_last_duration_seconds{job=\"nightly\"}" && $2 > 0 { ok = 1 } END { exit !ok }' "$m"
    [ "$(metric "$m" 'owlsync_export_last_success_timestamp_seconds{job="nightly"}')" -gt "$(cat "$N/started")" ]
    grep -q "^owlsync_build_info{version=\"$(cat "$BATS_TEST_DIRNAME/../../VERSION")\",commit=\"[^\"]*\"} 1$" "$m"
    [ "$(json_q "$output" "SELECT jsonb_typeof((:'j'::jsonb)#>'{jobs,0,last_sequence}') || jsonb_typeof((:'j'::jsonb)#>'{jobs,0,last_exit}')")" = numbernumber ]
    [[ $(json_get "$output" '{jobs,0,last_run}') =~ ^20[0-9-]{8}T[0-9:]{8}Z$ ]]
    [[ $(json_get "$output" '{jobs,0,last_success}') =~ ^20[0-9-]{8}T[0-9:]{8}Z$ ]]
    # both daemons still run
    while read -r pid start name; do
        same_proc "$pid" "$start"
    done <"$N/daemons"
}
