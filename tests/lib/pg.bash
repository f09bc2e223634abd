# tests/lib/pg.bash — throwaway PostgreSQL clusters for owlsync's end-to-end tests.
#
# Source it from a bats file and start clusters once per file:
#
#   load ../lib/pg
#   setup_file()    { pg_start src; pg_start dst; pg_load_metastore src 5; pg_load_schema dst; }
#   teardown_file() { pg_stop_all; }
#   @test "…" { run "$OWLSYNC" …; [ "$(pg_query dst 'SELECT count(*) FROM owl_rule')" = 109 ]; }
#
# Each cluster is made with initdb in a temporary directory, listens on a Unix
# socket only (listen_addresses = ''), has the superuser "postgres" with trust
# authentication and a database "owl", and runs with fsync off.  As root (CI),
# initdb and the server run as the "postgres" user through runuser, in a
# directory that user owns.  Clusters are removed by pg_stop/pg_stop_all; a
# guard process also stops a cluster when the process that started it (the
# bats file, or the test that called pg_start) is gone, so a failing or killed
# run never leaves a postmaster behind.
#
# State lives in files under $PG_BASE, not only in shell variables, so every
# function works from any test or subshell of the bats file.
#
# Environment (all optional):
#   PG_BINDIR    PostgreSQL server binaries (default: newest /usr/lib/postgresql/*/bin)
#   PG_TMPDIR    where the temporary directory goes (default /tmp; keep it short:
#                Unix socket paths are limited to 107 bytes)
#   PG_OWNER_PID the pid whose exit makes the guard stop the cluster (default $$)
#   PG_SQL_DIR   the sql/ directory with metastore.sql and sample.sql

# The OWL_SPECIAL_* strings hold quotes and backslashes as data:
# shellcheck disable=SC2089,SC2090

# ----------------------------------------------------------------- locations
PG_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PG_SQL_DIR=${PG_SQL_DIR:-$(cd "$PG_LIB_DIR/../.." && pwd)/sql}
export PG_SQL_DIR

if [ -z "${PG_BINDIR:-}" ]; then
    # shellcheck disable=SC2012 # version directories: names are digits
    PG_BINDIR=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
    if [ -z "$PG_BINDIR" ] || [ ! -x "$PG_BINDIR/initdb" ]; then
        PG_BINDIR=$(pg_config --bindir 2>/dev/null || true)
    fi
fi
export PG_BINDIR

# ----------------------------------------------------------------- special values
# The hand-written hostile values of sql/sample.sql, as bash strings, for tests
# that compare what arrives with what was written.  Keep in step with sample.sql.
# (Quotes and backslashes in them are data, never shell syntax.)
OWL_SPECIAL_DATASET='public.special'        # every hostile value lives in this dataset
OWL_QUOTE_DATASET="public.o'hara"           # a dataset name with a quote (catalog + 1 rule)
# owl_rule.rule_value WHERE rule_nm = 'quotes_and_controls'
OWL_SPECIAL_CONTROLS=$'it\'s a "quoted" value\twith tab\nnewline\r\nCRLF CR\ronly and \\ backslash and \\N and\n\\.\nend'
# owl_rule.rule_value WHERE rule_nm = 'sql_injection'
OWL_SPECIAL_INJECTION=$'\'); DROP TABLE owl_rule; --'
# owl_rule.rule_value WHERE rule_nm = 'unicode'
OWL_SPECIAL_UNICODE='é 日本 🦉 Ω ß Ünïcödé'
# an owl_rule.rule_nm (part of the natural key) with a tab, quotes and a backslash
OWL_SPECIAL_KEY=$'key with\ttab, "quotes", \'apostrophe\' and \\'
# owl_rule.rule_value WHERE rule_nm = 'literal_backslash_n': the two characters \N, not NULL
OWL_SPECIAL_BACKSLASH_N='\N'
# owl_catalog.sample_img of public.special, as encode(…, 'hex')
OWL_SPECIAL_BYTEA_HEX='00ff00ff0a0d095c2c22275c4e00'
# owl_catalog.tags of public.special, as text (a NULL element, and the string "NULL")
OWL_SPECIAL_ARRAY='{"a,b","quote\"d",NULL,"","NULL",it'"'"'s,"back\\slash","{braces}"," spaced "}'
# dataset_scoring.total_points of public.special
OWL_SPECIAL_NUMERIC='12345678901234567890.123456789012345678901234567890123'
# owl_catalog.created_ts of public.special, with TimeZone = UTC
OWL_SPECIAL_TIMESTAMP='2024-02-29 23:59:59.123456+00'
export OWL_SPECIAL_DATASET OWL_QUOTE_DATASET OWL_SPECIAL_CONTROLS OWL_SPECIAL_INJECTION \
       OWL_SPECIAL_UNICODE OWL_SPECIAL_KEY OWL_SPECIAL_BACKSLASH_N OWL_SPECIAL_BYTEA_HEX \
       OWL_SPECIAL_ARRAY OWL_SPECIAL_NUMERIC OWL_SPECIAL_TIMESTAMP

# Tables of the stand-in metastore, parents before children.
OWL_TABLES='rule_repo owl_catalog owl_rule alert_cond alert_output owl_check_repo job_schedule dataset_schema dataset_scoring'
export OWL_TABLES

# Expected row count of TABLE after pg_load_metastore with DATASETS bulk datasets.
owl_expected_rows() { # TABLE DATASETS
    local n=$2
    case $1 in
        rule_repo) echo 12 ;;
        owl_catalog) echo $((n + 2)) ;;
        owl_rule) echo $((20 * n + 9)) ;;
        alert_cond) echo $((3 * n + 2)) ;;
        alert_output) echo $((6 * n + 1)) ;;
        owl_check_repo | job_schedule | dataset_scoring) echo $((n + 1)) ;;
        dataset_schema) echo $((10 * n + 3)) ;;
        *) echo "owl_expected_rows: unknown table $1" >&2; return 2 ;;
    esac
}

# ----------------------------------------------------------------- internals
_pg_err() { echo "pg.bash: $*" >&2; }

_pg_is_root() { [ "$(id -u)" -eq 0 ]; }

# Runs a PostgreSQL server-side command as the cluster owner, from directory $1.
_pg_as_owner() { # DIR CMD [ARGS…]
    local dir=$1; shift
    if _pg_is_root; then
        (cd "$dir" && runuser -u postgres -- "$@")
    else
        (cd "$dir" && "$@")
    fi
}

_pg_check_name() {
    if [[ ! ${1:-} =~ ^[A-Za-z][A-Za-z0-9_]{0,23}$ ]]; then
        _pg_err "bad cluster name '${1:-}' (letters, digits, _; at most 24)"
        return 2
    fi
}

# Sets and exports PG_BASE, the per-bats-file directory that holds every cluster.
# The path is remembered in $BATS_FILE_TMPDIR, so setup_file, the tests and
# teardown_file all find the same one.
_pg_base() {
    if [ -n "${PG_BASE:-}" ] && [ -d "$PG_BASE" ]; then return 0; fi
    local ptr=
    if [ -n "${BATS_FILE_TMPDIR:-}" ] && [ -d "$BATS_FILE_TMPDIR" ]; then
        ptr=$BATS_FILE_TMPDIR/.owlsync-pg-base
        if [ -f "$ptr" ] && [ -d "$(cat "$ptr")" ]; then
            PG_BASE=$(cat "$ptr")
            export PG_BASE
            return 0
        fi
    fi
    [ "${1:-}" = create ] || return 1
    PG_BASE=$(mktemp -d "${PG_TMPDIR:-/tmp}/owlpg.XXXXXX") || { _pg_err "mktemp failed"; return 1; }
    chmod 0711 "$PG_BASE"            # the postgres user must traverse it
    export PG_BASE
    if [ -n "$ptr" ]; then printf '%s\n' "$PG_BASE" >"$ptr"; fi
}

# A port no other cluster here uses and no socket in the usual places claims.
# The server binds no TCP port (listen_addresses = ''), so this only has to be
# unique among Unix sockets.
_pg_pick_port() {
    local seqf=$PG_BASE/.seq c try port f taken
    c=$(cat "$seqf" 2>/dev/null || echo 0)
    echo $((c + 1)) >"$seqf"
    for ((try = 0; try < 500; try++)); do
        port=$((20000 + (($$ * 13 + c * 101 + try) % 30000)))
        taken=
        for f in "$PG_BASE"/*.port; do
            [ -f "$f" ] && [ "$(cat "$f")" = "$port" ] && taken=1
        done
        for f in /tmp /var/run/postgresql "$PG_BASE"/*; do
            [ -e "$f/.s.PGSQL.$port" ] && taken=1
        done
        if [ -z "$taken" ]; then echo "$port"; return 0; fi
    done
    _pg_err "no free port found"
    return 1
}

# Sets _PG_DIR (cluster directory: socket dir, data in DIR/data) and _PG_PORT
# of cluster NAME, without forking (tests call this for every query).
_pg_locate() { # NAME
    _PG_DIR='' _PG_PORT=''
    _pg_check_name "${1:-}" || return 2
    if ! _pg_base; then _pg_err "no cluster '$1' (no cluster was started)"; return 1; fi
    if [ ! -f "$PG_BASE/$1.port" ]; then _pg_err "no cluster '$1'"; return 1; fi
    _PG_DIR=$PG_BASE/$1
    read -r _PG_PORT <"$_PG_DIR.port"
}

# pg_alive PID — true when PID is a running process (a zombie is not).
pg_alive() {
    local st
    [ -r "/proc/${1:-x}/stat" ] || return 1
    read -r st <"/proc/$1/stat" 2>/dev/null || return 1
    st=${st##*) }
    [ "${st%% *}" != Z ] && [ "${st%% *}" != X ]
}

# Stops the postmaster of cluster directory DIR the hard way, when pg_ctl cannot.
_pg_kill_postmaster() { # DIR
    local pidf=$1/data/postmaster.pid pid i
    [ -f "$pidf" ] || return 0
    pid=$(head -1 "$pidf")
    [[ $pid =~ ^[0-9]+$ ]] || return 0
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = postgres ] || return 0
    kill -QUIT "$pid" 2>/dev/null             # immediate shutdown
    for ((i = 0; i < 100; i++)); do
        pg_alive "$pid" || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null
}

# A detached process that stops cluster NAME once OWNER is gone.
_pg_guard() { # NAME DIR OWNER
    local name=$1 dir=$2 owner=$3
    (
        (
            exec </dev/null >/dev/null 2>&1 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&-
            trap '' HUP INT TERM PIPE
            while pg_alive "$owner" && [ -d "$dir" ]; do sleep 1; done
            if [ -d "$dir" ]; then _pg_stop_dir "$dir"; rm -f "$dir.port"; fi
            _pg_base_cleanup
        ) &
    )
}

_pg_stop_dir() { # DIR: stop the server (if running) and remove DIR
    local dir=$1
    if [ -f "$dir/data/postmaster.pid" ]; then
        _pg_as_owner "$dir" "$PG_BINDIR/pg_ctl" -D "$dir/data" -m immediate -w -t 30 stop \
            </dev/null >/dev/null 2>&1 3>&- || _pg_kill_postmaster "$dir"
    fi
    rm -rf "$dir"
}

# Runs initdb once per PG_BASE into PG_BASE/.template; clusters are copies of
# it (a copy takes a fraction of an initdb).
_pg_template() {
    local t=$PG_BASE/.template tmp=$PG_BASE/.template.$$.$RANDOM
    [ -f "$t/data/PG_VERSION" ] && return 0
    mkdir -m 0755 "$tmp" || return 1
    if _pg_is_root; then chown postgres: "$tmp" || return 1; fi
    if ! _pg_as_owner "$tmp" "$PG_BINDIR/initdb" -D "$tmp/data" -U postgres -A trust \
            -E UTF8 --locale=C --no-sync --no-instructions \
            </dev/null >"$tmp.log" 2>&1 3>&-; then
        _pg_err "initdb failed:"
        cat "$tmp.log" >&2
        rm -rf "$tmp" "$tmp.log"
        return 1
    fi
    rm -f "$tmp.log"
    if ! mv -T "$tmp" "$t" 2>/dev/null; then
        rm -rf "$tmp"                   # another pg_start made it first
        [ -f "$t/data/PG_VERSION" ] || return 1
    fi
}

# Removes PG_BASE once it holds no cluster.
_pg_base_cleanup() {
    [ -n "${PG_BASE:-}" ] && [ -d "$PG_BASE" ] || return 0
    local f
    for f in "$PG_BASE"/*.port; do [ -e "$f" ] && return 0; done
    rm -rf "$PG_BASE/.seq" "$PG_BASE/.template"
    rmdir "$PG_BASE" 2>/dev/null || true
    if [ -n "${BATS_FILE_TMPDIR:-}" ]; then rm -f "$BATS_FILE_TMPDIR/.owlsync-pg-base"; fi
}

_pg_export_vars() { # NAME DIR PORT
    local v
    printf -v "PG_HOST_$1" '%s' "$2"
    printf -v "PG_PORT_$1" '%s' "$3"
    printf -v "PG_DATA_$1" '%s' "$2/data"
    printf -v "PG_CONNINFO_$1" '%s' "host=$2 port=$3 user=postgres dbname=owl"
    for v in PG_HOST_$1 PG_PORT_$1 PG_DATA_$1 PG_CONNINFO_$1; do export "${v?}"; done
}

# ----------------------------------------------------------------- public functions

# pg_start NAME [GUC=VALUE …] — makes and starts cluster NAME with database "owl".
# Extra GUC=VALUE settings go into its postgresql.conf (e.g. TimeZone=Asia/Tokyo).
# Exports PG_HOST_NAME (socket directory), PG_PORT_NAME, PG_DATA_NAME, PG_CONNINFO_NAME.
pg_start() {
    local name=${1:-} rc=0
    _pg_check_name "$name" || return 2
    shift
    _pg_start "$name" "$@" || rc=$?
    if [ $rc -ne 0 ] && [ $rc -ne 3 ]; then pg_stop "$name"; fi
    [ $rc -eq 0 ]
}

_pg_start() { # NAME [GUC=VALUE …]; returns 3 when there is nothing to undo
    local name=$1 dir port kv key val
    shift
    if [ -z "$PG_BINDIR" ] || [ ! -x "$PG_BINDIR/initdb" ]; then
        _pg_err "PostgreSQL server binaries not found (set PG_BINDIR)"
        return 1
    fi
    if _pg_is_root && ! id -u postgres >/dev/null 2>&1; then
        _pg_err "running as root needs a 'postgres' user to run the server"
        return 1
    fi
    for kv in "$@"; do
        if [[ ! $kv =~ ^[A-Za-z_][A-Za-z0-9_.]*=.*$ ]]; then
            _pg_err "pg_start: bad setting '$kv' (want NAME=VALUE)"
            return 3
        fi
    done
    _pg_base create || return 1
    dir=$PG_BASE/$name
    if [ -e "$dir" ] || [ -e "$dir.port" ]; then
        _pg_err "cluster '$name' already exists ($dir)"
        return 3
    fi
    port=$(_pg_pick_port) || return 1
    if [ $((${#dir} + 20)) -gt 107 ]; then
        _pg_err "socket path under $dir is too long; set PG_TMPDIR to a shorter directory"
        return 1
    fi
    mkdir -m 0755 "$dir" || return 1
    echo "$port" >"$dir.port"
    if _pg_is_root; then chown postgres: "$dir" || return 1; fi
    _pg_guard "$name" "$dir" "${PG_OWNER_PID:-$$}"

    _pg_template || return 1
    if ! cp -a "$PG_BASE/.template/data" "$dir/data"; then
        _pg_err "could not copy the initdb template to $dir/data"
        return 1
    fi
    {
        echo "# owlsync test harness"
        echo "listen_addresses = ''"
        echo "port = $port"
        echo "unix_socket_directories = '$dir'"
        echo "unix_socket_permissions = 0777"
        echo "fsync = off"
        echo "full_page_writes = off"
        echo "synchronous_commit = off"
        echo "wal_level = minimal"
        echo "max_wal_senders = 0"
        echo "max_wal_size = 1GB"
        echo "shared_buffers = 64MB"
        echo "max_connections = 40"
        echo "timezone = 'UTC'"
        echo "log_timezone = 'UTC'"
        echo "log_min_messages = warning"
        echo "log_min_error_statement = error"
        for kv in "$@"; do
            key=${kv%%=*}
            val=${kv#*=}
            val=${val//\\/\\\\}
            echo "$key = '${val//\'/\'\'}'"
        done
    } >>"$dir/data/postgresql.conf"

    if ! _pg_as_owner "$dir" "$PG_BINDIR/pg_ctl" -D "$dir/data" -l "$dir/server.log" \
            -w -t 60 start </dev/null >/dev/null 2>&1 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&-; then
        _pg_err "server '$name' did not start:"
        tail -20 "$dir/server.log" >&2 2>/dev/null
        return 1
    fi
    if ! "$PG_BINDIR/psql" -X -q -v ON_ERROR_STOP=1 \
            -d "host=$dir port=$port user=postgres dbname=postgres" \
            -c 'CREATE DATABASE owl STRATEGY = file_copy' </dev/null >/dev/null; then
        _pg_err "CREATE DATABASE owl failed in '$name'"
        return 1
    fi
    _pg_export_vars "$name" "$dir" "$port"
}

# pg_conninfo NAME [DBNAME] — prints the libpq conninfo of cluster NAME
# ("host=SOCKDIR port=PORT user=postgres dbname=owl").
pg_conninfo() {
    _pg_locate "${1:-}" || return
    printf 'host=%s port=%s user=postgres dbname=%s\n' "$_PG_DIR" "$_PG_PORT" "${2:-owl}"
}

# pg_psql NAME [PSQL ARGS…] — psql on database owl of NAME: no .psqlrc, quiet,
# stop at the first error.
pg_psql() {
    _pg_locate "${1:-}" || return
    shift
    "$PG_BINDIR/psql" -X -q -v ON_ERROR_STOP=1 \
        -d "host=$_PG_DIR port=$_PG_PORT user=postgres dbname=owl" "$@"
}

# pg_query NAME SQL — runs one SQL command, prints the rows unaligned, no header
# ('|' between columns; NULL prints as nothing).
pg_query() {
    pg_psql "${1:-}" -At -c "$2"
}

# pg_digest NAME TABLE [WHERE [EXCLUDED COLUMN…]] — prints "ROWS MD5" of the
# rows of TABLE that match WHERE (default: all), each row as jsonb without the
# excluded columns (default: id), sorted; compares tables across clusters
# whatever their ids.  TABLE may be schema-qualified.
pg_digest() {
    local name=${1:-} table=${2:-} where=${3:-true} ex
    shift 3 2>/dev/null || shift $#
    if [ $# -eq 0 ]; then set -- id; fi
    ex=$(printf '"%s",' "$@")
    PGOPTIONS="${PGOPTIONS:-} -c timezone=UTC" pg_query "$name" "
        SELECT count(*) || ' ' || coalesce(md5(string_agg(r, E'\n' ORDER BY r COLLATE \"C\")), '-')
        FROM (SELECT (to_jsonb(t) - '{${ex%,}}'::text[])::text AS r
              FROM $table t WHERE $where) s"
}

# pg_load_schema NAME [SCHEMA] — creates the stand-in metastore tables (no rows)
# in SCHEMA (default public) of database owl.
pg_load_schema() {
    local name=${1:-} schema=${2:-public}
    _pg_load "$name" "$schema" -f "$PG_SQL_DIR/metastore.sql"
}

# pg_load_metastore NAME [DATASETS [SCHEMA [COLUMNS]]] — creates the metastore
# tables and fills them with sql/sample.sql (DATASETS bulk datasets, default 20,
# each with COLUMNS dataset_schema rows, default 10) in SCHEMA (default public)
# of database owl.  Row counts (COLUMNS 10): owl_expected_rows TABLE DATASETS.
pg_load_metastore() {
    local name=${1:-} n=${2:-20} schema=${3:-public} cols=${4:-10}
    if [[ ! $n =~ ^[0-9]+$ ]]; then _pg_err "pg_load_metastore: bad dataset count '$n'"; return 2; fi
    if [[ ! $cols =~ ^[1-9][0-9]*$ ]]; then _pg_err "pg_load_metastore: bad column count '$cols'"; return 2; fi
    _pg_load "$name" "$schema" -v datasets="$n" -v columns="$cols" \
        -f "$PG_SQL_DIR/metastore.sql" -f "$PG_SQL_DIR/sample.sql"
}

_pg_load() { # NAME SCHEMA PSQL-ARGS…
    local name=$1 schema=$2
    shift 2
    if [[ ! $schema =~ ^[a-z_][a-z0-9_]*$ ]]; then _pg_err "bad schema name '$schema'"; return 2; fi
    pg_psql "$name" -c "SET client_min_messages = warning" \
        -c "CREATE SCHEMA IF NOT EXISTS $schema" -c "SET search_path TO $schema" \
        "$@" </dev/null >/dev/null
}

# pg_log NAME — prints the server log of NAME (for a failing test's output).
pg_log() {
    _pg_locate "${1:-}" || return
    cat "$_PG_DIR/server.log" 2>/dev/null
}

# pg_down NAME — stops the server of NAME but keeps the cluster (a database outage).
pg_down() {
    _pg_locate "${1:-}" || return
    local dir=$_PG_DIR
    _pg_as_owner "$dir" "$PG_BINDIR/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop \
        </dev/null >/dev/null 2>&1 3>&-
}

# pg_up NAME — starts the server of NAME again after pg_down (same port and socket).
pg_up() {
    _pg_locate "${1:-}" || return
    local dir=$_PG_DIR
    _pg_as_owner "$dir" "$PG_BINDIR/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start \
        </dev/null >/dev/null 2>&1 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&-
}

# pg_stop NAME — stops NAME (immediate shutdown) and removes its directory.
pg_stop() {
    local name=${1:-}
    _pg_check_name "$name" || return 2
    _pg_base || return 0
    _pg_stop_dir "$PG_BASE/$name"
    rm -f "$PG_BASE/$name.port"
    unset "PG_HOST_$name" "PG_PORT_$name" "PG_DATA_$name" "PG_CONNINFO_$name"
    _pg_base_cleanup
}

# pg_stop_all — stops and removes every cluster of this bats file, and PG_BASE.
pg_stop_all() {
    local f name
    _pg_base || return 0
    for f in "$PG_BASE"/*.port; do
        [ -e "$f" ] || continue
        name=$(basename "$f" .port)
        pg_stop "$name"
    done
    _pg_base_cleanup
}
