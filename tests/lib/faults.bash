# tests/lib/faults.bash — fault injection for owlsync's end-to-end tests and
# the long runs under tests/long/ (load after ../lib/pg and ../lib/owl).
#
# "Never a mix": the state of a target (every row of the metastore schema, ids
# included, and every ledger row less its imported_at) after an interrupted
# import must equal the state before it or the state a clean import of the
# same bundle reaches.  The clean state is measured on a copy of the target
# database (CREATE DATABASE … TEMPLATE), so ids and sequences start alike.
#
# Uses OWLSYNC.

# fault_state NODE DB SCHEMA [EXCLUDED] — one line per table of SCHEMA and of
# the ledger (schema owlsync) in database DB of cluster NODE: "TABLE ROWS MD5"
# of its rows as jsonb less EXCLUDED (default none; ledger rows always less
# imported_at), sorted.
fault_state() {
    local node=$1 db=$2 schema=$3 ex=${4:-_}
    _pg_locate "$node" || return 1
    PGOPTIONS='-c timezone=UTC' "$PG_BINDIR/psql" -X -q -At -v ON_ERROR_STOP=1 \
        -d "host=$_PG_DIR port=$_PG_PORT user=postgres dbname=$db" <<EOF
SELECT format(\$q\$SELECT %L || ' ' || count(*) || ' ' || coalesce(md5(string_agg(r, E'\\n' ORDER BY r COLLATE "C")), '-')
                 FROM (SELECT (to_jsonb(t) - %L::text[])::text AS r FROM %I.%I t) s\$q\$,
              n.nspname || '.' || c.relname, CASE WHEN n.nspname = 'owlsync' THEN '{imported_at}' ELSE '{$ex}' END,
              n.nspname, c.relname)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind = 'r' AND n.nspname IN ('$schema', 'owlsync')
 ORDER BY n.nspname, c.relname \gexec
EOF
}

# fault_sessions_gone NODE [SECONDS] — waits (default 60 s) until NODE has no
# client session but the caller's: a killed client's server session ends only
# when it notices, and a COMMIT it sent may still be under way until then.
fault_sessions_gone() {
    local i n
    for ((i = 0; i < ${2:-60} * 10; i++)); do
        n=$(pg_query "$1" "SELECT count(*) FROM pg_database d JOIN pg_stat_activity a ON a.datid = d.oid
                           WHERE a.backend_type = 'client backend' AND a.pid <> pg_backend_pid()")
        [ "$n" = 0 ] && return 0
        sleep 0.1
    done
    echo "sessions of killed clients still open on $1 after ${2:-60} s" >&2
    return 1
}

# fault_clone NODE FROM TO — database TO of NODE becomes a copy of FROM (no
# session may be open on FROM).
fault_clone() {
    "$PG_BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -d "$(pg_conninfo "$1" postgres)" \
        -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $3" -c "CREATE DATABASE $3 TEMPLATE $2 STRATEGY = file_copy" >/dev/null
}

# fault_drop NODE DB — drops database DB of NODE.
fault_drop() {
    "$PG_BINDIR/psql" -X -q -d "$(pg_conninfo "$1" postgres)" -c "DROP DATABASE IF EXISTS $2" >/dev/null
}

# fault_ini_db INI DB OUT — a copy of config INI whose conninfo names database DB.
fault_ini_db() {
    sed -e "s/^\(conninfo = .*\)dbname=[^ ]*/\1dbname=$2/" "$1" >"$3"
}

# fault_clean_state NODE INI SCHEMA BUNDLE OUT — a clean import of BUNDLE
# from the target's present state, on a copy of database owl of NODE: its
# state (fault_state) goes to OUT, the same less the generated ids to OUT.noid
# (a rerun after a kill inserts with sequence values the killed run did not
# give back), its seconds to OUT.secs; the copy is dropped again.
fault_clean_state() {
    local node=$1 ini=$2 schema=$3 b=$4 out=$5 rc=0 t0
    fault_clone "$node" owl owl_clean || return 1
    fault_ini_db "$ini" owl_clean "$ini.clean"
    t0=$(date +%s.%N)
    "$OWLSYNC" -c "$ini.clean" import "$b" >/dev/null 2>"$ini.clean.err" || rc=$?
    awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f\n", b - a }' >"$out.secs"
    if [ $rc -ne 0 ]; then
        echo "clean import of $b on a copy of the target exited $rc: $(cat "$ini.clean.err")" >&2
        fault_drop "$node" owl_clean
        return 1
    fi
    fault_state "$node" owl_clean "$schema" >"$out" &&
        fault_state "$node" owl_clean "$schema" id >"$out.noid"
    rc=$?
    fault_drop "$node" owl_clean
    return $rc
}

# fault_noleak CMD… — runs CMD with LeakSanitizer off. Under strace it cannot
# stop the traced process to look for leaks (it traces it itself): with an
# ASan build (make check-asan), leaks are looked for in the runs without strace.
fault_noleak() { ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" "$@"; }

# fault_wire_calls SYSCALL CMD… — runs CMD under strace and prints how many
# times it (and its threads) made SYSCALL; CMD must succeed.
fault_wire_calls() {
    local sc=$1 out
    shift
    out=$(mktemp)
    if ! fault_noleak strace -f -qq -c -U calls,name -e trace="$sc" -o "$out" "$@" >/dev/null 2>&1; then
        rm -f "$out"
        echo "fault_wire_calls: $* failed" >&2
        return 1
    fi
    awk -v s="$sc" '$2 == s { print $1 }' "$out"
    rm -f "$out"
}

# fault_kill_at SYSCALL N CMD… — runs CMD under strace, which kills it with
# SIGKILL when it enters SYSCALL for the Nth time (before that call is made);
# sets FAULT_RC to the exit status (137 when killed).
fault_kill_at() {
    local sc=$1 n=$2
    shift 2
    FAULT_RC=0
    # (in a subshell that is not replaced by strace, whose stderr is
    # discarded: bash's "Killed" notice goes with it)
    (
        fault_noleak strace -f -qq -o /dev/null -e trace="$sc" -e inject="$sc:signal=SIGKILL:when=$n" "$@" >/dev/null 2>&1
        exit $?
    ) 2>/dev/null || FAULT_RC=$?
}

# fault_kill_after SECONDS CMD… — runs CMD and sends it SIGKILL after SECONDS
# (fractions allowed) if it still runs; sets FAULT_RC (137 when killed).
fault_kill_after() {
    local d=$1 pid
    shift
    "$@" >/dev/null 2>&1 &
    pid=$!
    sleep "$d"
    kill -KILL "$pid" 2>/dev/null || true
    FAULT_RC=0
    { wait "$pid"; } 2>/dev/null || FAULT_RC=$?
}

# fault_which STATE BEFORE AFTER — prints "before" or "after" when STATE
# equals one of them, else prints the difference to stderr and fails.
fault_which() {
    if [ "$1" = "$2" ]; then
        echo before
    elif [ "$1" = "$3" ]; then
        echo after
    else
        echo "a mix: the target equals neither the state before nor the state after a clean import" >&2
        echo "--- against before:" >&2
        diff <(echo "$2") <(echo "$1") >&2
        echo "--- against after:" >&2
        diff <(echo "$3") <(echo "$1") >&2
        return 1
    fi
}

# fault_change_src NODE SCHEMA I — changes the source's rows of its bulk
# datasets for round I: updates some rules, deletes one, adds one, changes
# alert outputs, so that an import updates, deletes and inserts.
fault_change_src() {
    pg_psql "$1" >/dev/null <<EOF
UPDATE $2.owl_rule SET rule_value = 'round $3' WHERE dataset LIKE 'public.ds_%' AND id % 5 = $3 % 5;
DELETE FROM $2.owl_rule WHERE id = (SELECT min(id) FROM $2.owl_rule WHERE dataset LIKE 'public.ds_%');
INSERT INTO $2.owl_rule (dataset, rule_nm, rule_value) VALUES ('public.ds_1', 'fault rule $3', 'new in round $3');
DELETE FROM $2.alert_output WHERE id = (SELECT min(id) FROM $2.alert_output WHERE dataset LIKE 'public.ds_%');
INSERT INTO $2.alert_output (dataset, alert_nm, run_id, output)
     SELECT dataset, alert_nm, timestamptz '2030-01-01 00:00:00+00' + $3 * interval '1 second', 'new in round $3'
       FROM $2.alert_output WHERE dataset = 'public.ds_2' ORDER BY id LIMIT 1;
UPDATE $2.owl_catalog SET created_ts = created_ts + interval '1 second' WHERE dataset LIKE 'public.ds_%';
EOF
}
