#!/usr/bin/env bats
# The test harness itself: throwaway clusters (tests/lib/pg.bash) and the
# stand-in metastore with its sample data (sql/metastore.sql, sql/sample.sql,
# sql/grants.sql).  Needs no owlsync binary.

load ../lib/pg

N=3     # bulk datasets loaded

setup_file() {
    pg_start c
    pg_start b
    pg_load_metastore c "$N"
    pg_load_metastore b "$N" tenant1
}

teardown_file() {
    pg_stop_all
}

q() { pg_query c "$1"; }

# one value of public.special's owl_rule row RULE_NM, column COL
rule() { q "SELECT $2 FROM owl_rule WHERE dataset = 'public.special' AND rule_nm = '$1'"; }

@test "pg_start: conninfo, socket only, fast settings, database owl" {
    run pg_conninfo c
    [ "$status" -eq 0 ]
    [[ $output =~ ^host=/[^\ ]+\ port=[0-9]+\ user=postgres\ dbname=owl$ ]]
    [ "$output" = "$PG_CONNINFO_c" ]
    [ -S "$PG_HOST_c/.s.PGSQL.$PG_PORT_c" ]
    [ "$PG_PORT_c" != "$PG_PORT_b" ]
    [ "$(q 'SELECT current_database()')" = owl ]
    [ "$(q 'SHOW listen_addresses')" = "" ]
    [ "$(q 'SHOW fsync')" = off ]
    [ "$(q 'SHOW full_page_writes')" = off ]
    [ "$(q 'SHOW synchronous_commit')" = off ]
    [ "$(q 'SHOW server_encoding')" = UTF8 ]
    [ "$(q 'SELECT rolsuper FROM pg_roles WHERE rolname = current_user')" = t ]
    [ "$(pg_conninfo c postgres)" = "host=$PG_HOST_c port=$PG_PORT_c user=postgres dbname=postgres" ]
}

@test "pg_start: the server runs as postgres when we are root" {
    pid=$(head -1 "$PG_DATA_c/postmaster.pid")
    user=$(ps -o user= -p "$pid")
    if [ "$(id -u)" -eq 0 ]; then [ "$user" = postgres ]; else [ "$user" = "$(id -un)" ]; fi
    [ "$(stat -c %U "$PG_DATA_c")" = "$user" ]
}

@test "pg_psql: stops at the first error, reads no .psqlrc" {
    run pg_psql c -c 'SELECT 1/0' -c 'SELECT 42'
    [ "$status" -ne 0 ]
    [[ $output != *42* ]]
    run pg_psql c -At -c 'SELECT 42'
    [ "$status" -eq 0 ]
    [ "$output" = 42 ]
    run pg_psql nosuch -c 'SELECT 1'
    [ "$status" -ne 0 ]
    run pg_psql 'bad name' -c 'SELECT 1'
    [ "$status" -ne 0 ]
}

@test "metastore: every table exists, in public, with the natural keys" {
    for t in $OWL_TABLES; do want+="$t|t"$'\n'; done
    [ "$(q "SELECT t, to_regclass('public.' || t) IS NOT NULL
            FROM unnest(string_to_array('$OWL_TABLES', ' ')) WITH ORDINALITY AS u(t, n) ORDER BY n")" = "${want%$'\n'}" ]
    [ "$(q "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")" = 9 ]
    # every table but rule_repo has a text "dataset" column
    [ "$(q "SELECT string_agg(table_name, ' ' ORDER BY table_name) FROM information_schema.columns
            WHERE table_schema = 'public' AND column_name = 'dataset' AND data_type = 'text'")" = \
      "alert_cond alert_output dataset_schema dataset_scoring job_schedule owl_catalog owl_check_repo owl_rule" ]
    # bigserial primary keys
    [ "$(q "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'public'
            AND column_name = 'id' AND data_type = 'bigint' AND column_default LIKE 'nextval(%'")" = 9 ]
    [ "$(q "SELECT count(*) FROM pg_constraint WHERE contype = 'p'
            AND connamespace = 'public'::regnamespace")" = 9 ]
    [ "$(q "SELECT pg_get_constraintdef(oid) FROM pg_constraint
            WHERE conrelid = 'owl_rule'::regclass AND contype = 'u'")" = "UNIQUE (dataset, rule_nm)" ]
    # the column types a real metastore has
    [ "$(q "SELECT count(DISTINCT data_type) FROM information_schema.columns
            WHERE table_schema = 'public' AND data_type IN ('text', 'jsonb', 'ARRAY', 'bytea',
            'timestamp with time zone', 'numeric', 'boolean', 'bigint', 'integer')")" = 9 ]
    # nullable columns too
    [ "$(q "SELECT count(*) > 0 FROM information_schema.columns
            WHERE table_schema = 'public' AND is_nullable = 'YES'")" = t ]
}

@test "metastore: exactly one foreign key, alert_output (dataset, alert_nm) -> alert_cond" {
    [ "$(q "SELECT count(*) FROM pg_constraint WHERE contype = 'f'
            AND connamespace = 'public'::regnamespace")" = 1 ]
    [ "$(q "SELECT conrelid::regclass || ' ' || confrelid::regclass || ' ' || pg_get_constraintdef(oid)
            FROM pg_constraint WHERE contype = 'f' AND connamespace = 'public'::regnamespace")" = \
      "alert_output alert_cond FOREIGN KEY (dataset, alert_nm) REFERENCES alert_cond(dataset, alert_nm)" ]
    # and it is enforced
    run pg_psql c -c "INSERT INTO alert_output (dataset, alert_nm, run_id) VALUES ('public.ds_1', 'nosuch', now())"
    [ "$status" -ne 0 ]
    [[ $output == *alert_output_alert_cond_fk* ]]
}

@test "sample: row counts follow the datasets parameter" {
    sql='' want=''
    for t in $OWL_TABLES; do
        sql+="${sql:+ UNION ALL }SELECT '$t', count(*) FROM $t"
        want+="$t|$(owl_expected_rows "$t" "$N")"$'\n'
    done
    got=$(q "$sql")
    echo "got:"$'\n'"$got"$'\n'"want:"$'\n'"$want"
    [ "$got" = "${want%$'\n'}" ]
    [ "$(q "SELECT count(DISTINCT dataset) FROM owl_catalog WHERE dataset LIKE 'public.ds_%'")" = "$N" ]
    [ "$(q "SELECT count(*) FROM owl_rule WHERE dataset = 'public.ds_2'")" = 20 ]
    [ "$(q "SELECT count(*) FROM dataset_schema WHERE dataset = 'public.ds_$N'")" = 10 ]
    [ "$(q "SELECT count(*) FROM alert_cond WHERE dataset = 'public.ds_1'")" = 3 ]
    [ "$(q "SELECT count(*) FROM owl_check_repo WHERE dataset = 'public.ds_1'")" = 1 ]
    [ "$(q "SELECT count(*) FROM job_schedule WHERE dataset = 'public.ds_1'")" = 1 ]
    [ "$(q "SELECT count(*) FROM owl_rule WHERE dataset = 'public.special'")" = 8 ]
    [ "$(q "SELECT count(*) FROM owl_rule WHERE dataset = 'public.o''hara'")" = 1 ]
    # neither hand-written dataset matches the bulk pattern
    [ "$(q "SELECT count(*) FROM owl_catalog WHERE dataset LIKE 'public.ds_%'
            AND dataset IN ('public.special', 'public.o''hara')")" = 0 ]
    # rewrite-test values
    [ "$(q "SELECT conn_name FROM owl_check_repo WHERE dataset = 'public.ds_1'")" = prod_pg ]
    [[ $(q "SELECT conn_url FROM owl_check_repo WHERE dataset = 'public.ds_1'") == jdbc:postgresql://prod-db*.example.com:5432/* ]]
}

@test "sample: the datasets parameter defaults to 20" {
    pg_psql c -c 'CREATE SCHEMA dflt' -c 'SET search_path TO dflt' \
        -f "$PG_SQL_DIR/metastore.sql" -f "$PG_SQL_DIR/sample.sql" >/dev/null
    [ "$(q 'SELECT count(*) FROM dflt.owl_rule')" = "$(owl_expected_rows owl_rule 20)" ]
    [ "$(q 'SELECT count(*) FROM dflt.owl_catalog')" = 22 ]
    pg_psql c -c 'DROP SCHEMA dflt CASCADE' 2>/dev/null
}

@test "sample: a bad datasets value is refused" {
    run pg_psql c -c 'CREATE SCHEMA bad' -c 'SET search_path TO bad' -v 'datasets=1;DROP' \
        -f "$PG_SQL_DIR/metastore.sql" -f "$PG_SQL_DIR/sample.sql"
    [ "$status" -ne 0 ]
    [ "$(q 'SELECT count(*) FROM bad.owl_rule')" = 0 ]
    pg_psql c -c 'DROP SCHEMA bad CASCADE' 2>/dev/null
}

@test "special: hostile text round-trips as written" {
    [ "$(rule quotes_and_controls rule_value)" = "$OWL_SPECIAL_CONTROLS" ]
    [ "$(rule sql_injection rule_value)" = "$OWL_SPECIAL_INJECTION" ]
    [ "$(rule sql_injection user_nm)" = "Robert'); DROP TABLE students;--" ]
    [ "$(rule unicode rule_value)" = "$OWL_SPECIAL_UNICODE" ]
    [ "$(rule literal_backslash_n rule_value)" = "$OWL_SPECIAL_BACKSLASH_N" ]
    [ "$(rule literal_backslash_n user_nm)" = NULL ]
    # the value holds a tab, LF, CRLF, a lone CR, a backslash and a "\." line
    [[ $OWL_SPECIAL_CONTROLS == *$'\t'* && $OWL_SPECIAL_CONTROLS == *$'\r\n'* ]]
    [[ $OWL_SPECIAL_CONTROLS == *$'\n\\.\n'* && $OWL_SPECIAL_CONTROLS == *$'CR\ronly'* ]]
    [ "$(q "SELECT length(rule_value) FROM owl_rule WHERE rule_nm = 'quotes_and_controls'")" = "${#OWL_SPECIAL_CONTROLS}" ]
    [ "$(q "SELECT octet_length(rule_value) FROM owl_rule WHERE rule_nm = 'unicode'")" = \
      "$(printf '%s' "$OWL_SPECIAL_UNICODE" | wc -c)" ]
    # a natural key with a tab, quotes and a backslash
    [ "$(q "SELECT rule_nm FROM owl_rule WHERE dataset = 'public.special' AND rule_value = 'col IS NOT NULL'")" = \
      "$OWL_SPECIAL_KEY" ]
    # the dataset name with a quote
    [ "$(q "SELECT dataset FROM owl_rule WHERE rule_value LIKE 'name = ''O''''Hara''%'")" = "$OWL_QUOTE_DATASET" ]
    # the tables are all still there
    [ "$(q "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")" = 9 ]
}

@test "special: empty strings and NULLs stay distinct" {
    [ "$(rule empty_strings "rule_value IS NULL, rule_value = '', rule_repo = '', params::text")" = "f|t|t|{}" ]
    [ "$(rule all_nulls "rule_value IS NULL, rule_repo IS NULL, params IS NULL, score IS NULL")" = "t|t|t|t" ]
    # JSON null is not SQL NULL
    [ "$(q "SELECT params IS NULL, params::text FROM owl_rule WHERE rule_value = 'col IS NOT NULL'
            AND dataset = 'public.special'")" = "f|null" ]
    [ "$(q "SELECT business_unit = '', owner_nm IS NULL FROM owl_catalog WHERE dataset = 'public.special'")" = "t|t" ]
    [ "$(q "SELECT sample_img = ''::bytea, cardinality(tags) FROM owl_catalog WHERE dataset = 'public.o''hara'")" = "t|0" ]
    [ "$(q "SELECT recipients::text, params::text FROM alert_cond WHERE alert_nm = 'empty_array'")" = "{}|null" ]
}

@test "special: bytea, arrays, jsonb, numeric, timestamptz, booleans" {
    [ "$(q "SELECT encode(sample_img, 'hex') FROM owl_catalog WHERE dataset = 'public.special'")" = "$OWL_SPECIAL_BYTEA_HEX" ]
    [ "$(q "SELECT get_byte(sample_img, 0), get_byte(sample_img, 1) FROM owl_catalog WHERE dataset = 'public.special'")" = "0|255" ]
    [ "$(q "SELECT tags::text FROM owl_catalog WHERE dataset = 'public.special'")" = "$OWL_SPECIAL_ARRAY" ]
    [ "$(q "SELECT tags[3] IS NULL, tags[5], tags[1] FROM owl_catalog WHERE dataset = 'public.special'")" = "t|NULL|a,b" ]
    [ "$(q "SELECT recipients[10] FROM alert_cond WHERE alert_nm = 'hostile'")" = "日本" ]
    [ "$(q "SELECT metadata->>'quote' FROM owl_catalog WHERE dataset = 'public.special'")" = "he said \"hi\" and it's" ]
    [ "$(q "SELECT metadata->>'uni' FROM owl_catalog WHERE dataset = 'public.special'")" = "é 日本 🦉" ]
    [ "$(q "SELECT metadata->>'esc' FROM owl_catalog WHERE dataset = 'public.special'")" = $'tab\tnl\nbs\\' ]
    [ "$(q "SELECT jsonb_typeof(metadata#>'{nested,arr,2}') FROM owl_catalog WHERE dataset = 'public.special'")" = null ]
    [ "$(q "SELECT params->>'text' FROM alert_cond WHERE alert_nm = 'hostile'")" = 'nested "quotes" \ and \\' ]
    [ "$(q "SELECT total_points FROM dataset_scoring WHERE dataset = 'public.special'")" = "$OWL_SPECIAL_NUMERIC" ]
    [ "$(q "SELECT warn_threshold, pass_threshold FROM dataset_scoring WHERE dataset = 'public.special'")" = \
      "NaN|0.000000000000000000000000000001" ]
    [ "$(q "SELECT created_ts FROM owl_catalog WHERE dataset = 'public.special'")" = "$OWL_SPECIAL_TIMESTAMP" ]
    [ "$(q "SELECT extract(microseconds FROM created_ts)::bigint FROM owl_catalog
            WHERE dataset = 'public.special'")" = 59123456 ]
    [ "$(q "SELECT last_run_ts, next_run_ts, enabled FROM job_schedule WHERE dataset = 'public.special'")" = \
      "1969-12-31 23:59:59.999999+00|infinity|f" ]
    [ "$(q "SELECT sent IS NULL, is_masked FROM alert_output, owl_catalog
            WHERE alert_output.dataset = 'public.special' AND owl_catalog.dataset = 'public.special'")" = "t|t" ]
}

@test "pg_load_metastore: loads into another schema; pg_digest compares clusters" {
    [ "$(pg_query b "SELECT count(*) FROM pg_tables WHERE schemaname = 'tenant1'")" = 9 ]
    [ "$(pg_query b "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")" = 0 ]
    for t in $OWL_TABLES; do
        a=$(pg_digest c "public.$t")
        z=$(pg_digest b "tenant1.$t")
        [ "$a" = "$z" ] || { echo "$t: $a vs $z"; false; }
        [ "${a%% *}" = "$(owl_expected_rows "$t" "$N")" ]
    done
    run pg_digest c owl_rule "dataset = 'public.special'"
    [[ $output =~ ^8\ [0-9a-f]{32}$ ]]
    # a change shows, and ids are ignored by default
    before=$(pg_digest b tenant1.owl_rule "dataset = 'public.ds_1'")
    pg_psql b -c "UPDATE tenant1.owl_rule SET id = id + 100000 WHERE dataset = 'public.ds_1'"
    [ "$(pg_digest b tenant1.owl_rule "dataset = 'public.ds_1'")" = "$before" ]
    pg_psql b -c "UPDATE tenant1.owl_rule SET points = 0 WHERE dataset = 'public.ds_1' AND rule_nm = 'rule_1'"
    [ "$(pg_digest b tenant1.owl_rule "dataset = 'public.ds_1'")" != "$before" ]
    [ "$(pg_digest b tenant1.owl_rule "dataset = 'public.ds_1'" id points)" = \
      "$(pg_digest c owl_rule "dataset = 'public.ds_1'" id points)" ]
}

@test "grants.sql: export role reads only, import role writes, bumps sequences, writes the ledger made for it" {
    pg_psql c -v schema=public -f "$PG_SQL_DIR/grants.sql" >/dev/null
    pg_psql c -v schema=public -f "$PG_SQL_DIR/grants.sql" >/dev/null     # re-runnable
    [ "$(q "SELECT count(*) FROM pg_roles WHERE rolname IN ('owlsync_export', 'owlsync_import')
            AND NOT rolsuper AND rolcanlogin")" = 2 ]
    as() { pg_psql c -At -c "SET ROLE $1" -c "$2"; }
    [ "$(as owlsync_export "SELECT count(*) FROM owl_rule WHERE dataset = 'public.ds_1'")" = 20 ]
    run as owlsync_export "DELETE FROM owl_rule"
    [ "$status" -ne 0 ]
    [[ $output == *"permission denied"* ]]
    run as owlsync_export "CREATE SCHEMA owlsync"
    [ "$status" -ne 0 ]
    run as owlsync_import "BEGIN;
        INSERT INTO owl_rule (dataset, rule_nm) VALUES ('public.ds_1', 'grant_test');
        UPDATE owl_rule SET points = 3 WHERE rule_nm = 'grant_test';
        DELETE FROM owl_rule WHERE rule_nm = 'grant_test';
        SELECT setval('owl_rule_id_seq', 1000000);
        CREATE TEMP TABLE staging (LIKE owl_rule);
        INSERT INTO owlsync.bundles VALUES ('b', 'e', 'j', 1, now(), now(), 'k', 'f', '{}', 0);
        SELECT count(*) FROM owlsync.bundles;
        ROLLBACK"
    echo "$output"
    [ "$status" -eq 0 ]
    # ledger_owner=false (the default): the ledger is made now; the role has
    # no CREATE anywhere, not even in schema owlsync
    run as owlsync_import "CREATE SCHEMA owlsync2"
    [ "$status" -ne 0 ]
    run as owlsync_import "CREATE TABLE owlsync.x (i int)"
    [ "$status" -ne 0 ]
    run as owlsync_import "DELETE FROM owlsync.bundles"
    [ "$status" -ne 0 ]
    run as owlsync_import "CREATE TABLE public.nope (x int)"
    [ "$status" -ne 0 ]
    run as owlsync_import "TRUNCATE owl_rule"
    [ "$status" -ne 0 ]
    # ledger_owner=true: the schema is made now and owned by the import role
    pg_psql c -c "DROP SCHEMA owlsync CASCADE" >/dev/null
    pg_psql c -v ledger_owner=true -f "$PG_SQL_DIR/grants.sql" >/dev/null
    [ "$(q "SELECT nspowner::regrole FROM pg_namespace WHERE nspname = 'owlsync'")" = owlsync_import ]
    run as owlsync_import "CREATE TABLE owlsync.x (i int); DROP TABLE owlsync.x"
    [ "$status" -eq 0 ]
}

@test "pg_down / pg_up: a database outage and its end" {
    pg_down b
    run pg_query b 'SELECT 1'
    [ "$status" -ne 0 ]
    pg_up b
    [ "$(pg_query b 'SELECT count(*) FROM tenant1.rule_repo')" = 12 ]
}

@test "pg_start: refuses a name in use or a bad name, and cleans up after itself" {
    run pg_start c
    [ "$status" -ne 0 ]
    [ "$(q 'SELECT 1')" = 1 ]           # the running cluster is untouched
    run pg_start '../x'
    [ "$status" -ne 0 ]
    run pg_start bad TimeZone
    [ "$status" -ne 0 ]
    [ ! -e "$PG_BASE/bad" ] && [ ! -e "$PG_BASE/bad.port" ]
}

@test "pg_start: extra settings; pg_stop removes a cluster started in a test" {
    pg_start t TimeZone=Asia/Tokyo "log_line_prefix=it's \\ %p "
    [ "$(pg_query t 'SHOW TimeZone')" = Asia/Tokyo ]
    [ "$(pg_query t 'SHOW log_line_prefix')" = "it's \\ %p " ]
    [ "$(pg_query t "SELECT '2024-01-01 00:00:00+00'::timestamptz")" = "2024-01-01 09:00:00+09" ]
    pg_log t >/dev/null
    dir=$PG_HOST_t
    pid=$(head -1 "$PG_DATA_t/postmaster.pid")
    [ -d "$dir" ]
    pg_stop t
    [ ! -e "$dir" ]
    run pg_alive "$pid"
    [ "$status" -ne 0 ]
    [ -z "${PG_PORT_t:-}" ]
    run pg_conninfo t
    [ "$status" -ne 0 ]
}

@test "guard: a cluster whose starter dies is stopped and removed" {
    bash -c 'source "$1"; pg_start g >/dev/null' _ "$BATS_TEST_DIRNAME/../lib/pg.bash"
    dir=$PG_BASE/g
    [ -d "$dir/data" ]
    pid=$(head -1 "$dir/data/postmaster.pid")
    for _ in $(seq 50); do [ -e "$dir" ] || break; sleep 0.2; done
    [ ! -e "$dir" ]
    run pg_alive "$pid"
    [ "$status" -ne 0 ]
}

@test "pg_stop_all: every cluster stopped, every directory gone" {
    base=$PG_BASE
    dirs=("$PG_HOST_c" "$PG_HOST_b")
    pids=()
    for d in "${dirs[@]}"; do pids+=("$(head -1 "$d/data/postmaster.pid")"); done
    pg_stop_all
    for d in "${dirs[@]}"; do [ ! -e "$d" ]; done
    for p in "${pids[@]}"; do
        run pg_alive "$p"
        [ "$status" -ne 0 ]
    done
    [ ! -e "$base" ]
    pg_stop_all                          # again: nothing to do, no error
}
