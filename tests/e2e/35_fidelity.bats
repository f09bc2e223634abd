#!/usr/bin/env bats
# owlsync fidelity, end to end: the same values arrive whatever the servers'
# session settings, encodings and target schema details. A source and a target
# cluster set up as DBAs set them up, each differently (DateStyle, IntervalStyle,
# extra_float_digits, TimeZone, bytea_output, xmloption), and every promoted
# row compared with `pg_dump --data-only` of both sides: pg_dump pins its own
# session, so its text is the truth the two must share.
#
# Each test works in its own schema and export job.

bats_require_minimum_version 1.5.0
load ../lib/pg
load ../lib/owl

OWLSYNC=${OWLSYNC:-$BATS_TEST_DIRNAME/../../owlsync}

setup_file() {
    if [ ! -x "$OWLSYNC" ]; then
        echo "no owlsync binary at $OWLSYNC (run make)" >&2
        return 1
    fi
    export BATS_NO_PARALLELIZE_WITHIN_FILE=true
    # Server settings a DBA might choose, different on each side, every one of
    # which used to change the data in some way.
    pg_start src "DateStyle=SQL, DMY" "IntervalStyle=sql_standard" "extra_float_digits=-15" \
        "TimeZone=Asia/Kolkata" "bytea_output=escape"
    pg_start tgt "DateStyle=German, DMY" "IntervalStyle=iso_8601" "extra_float_digits=0" \
        "TimeZone=Asia/Shanghai" "bytea_output=escape" "xmloption=document"
    mkdir -p "$BATS_FILE_TMPDIR/keys"
    "$OWLSYNC" keygen -o "$BATS_FILE_TMPDIR/keys/prod.key" >/dev/null 2>&1
}

teardown_file() {
    pg_stop_all
}

setup() {
    W=$BATS_TEST_TMPDIR
    K=$BATS_FILE_TMPDIR/keys
    mkdir -p "$W/out" "$W/state" "$W/tstate"
}

# ------------------------------------------------------------------ helpers

# The type table: one column of every built-in type family.
TYPES_DDL='
CREATE TYPE mood AS ENUM ($$sad$$, $$ok$$, $$happy$$);
CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
CREATE TYPE pair AS (a integer, b text);
CREATE TABLE types (
    dataset text NOT NULL, k integer NOT NULL,
    n numeric, f4 real, f8 double precision, m money, b bytea,
    d date, ts timestamp, tstz timestamptz, t time, ttz timetz, iv interval,
    u uuid, ip inet, net cidr, mac macaddr, bits bit(8), vbits varbit, bo boolean,
    j json, jb jsonb, x xml, ia integer[], ta text[], tsa timestamptz[], comp pair,
    r int4range, tsr tstzrange, mr int4multirange, e mood, dom posint,
    tsv tsvector, tq tsquery, pt point, bx box, ch char(5), vc varchar(20), txt text,
    i2 smallint, i8 bigint, nu numeric(12,4),
    PRIMARY KEY (dataset, k));'

# The rows: the values each setting used to bend. Days of 12 or less (where a
# DMY style swaps day and month), zones with half hours, negative interval
# parts, float digits, the edges of every type.
TYPES_ROWS="
INSERT INTO types VALUES
('public.ds_1', 1, 'NaN', '-0', '4.9e-324', 1234.56, '\\x00ff0a0d5c2c22', 'infinity', '-infinity',
 '2024-02-03 04:05:06.789+05:30', '24:00:00', '12:00:00.5+05:30', '-1 days -02:00:00',
 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '192.168.0.1/24', '10.0.0.0/8', '08:00:2b:01:02:03', B'10100101',
 B'101', true, '{\"a\": 1, \"a\": 2,   \"b\" : [1,2]}', '{\"z\": 1, \"a\": [true, null, 1.50]}',
 'a<b>c</b>d', '{1,NULL,3}', '{\"x\",NULL,\"NULL\",\"\",\"a,b\"}', '{\"2024-02-03 01:02:03+00\",NULL}',
 '(1,\"x y\")', '[1,5)', '[2024-02-03 04:05:06+05:30,infinity)', '{[1,3),[5,7)}', 'happy', 5,
 'a fat cat', 'fat & rat', '(1.5,-0)', '((0,0),(1,1))', 'ab', 'café', E'tab\\there', 32767,
 9223372036854775807, 12.3400),
('public.ds_1', 2, '1.10', 'Infinity', '-Infinity', -0.01, '', '0044-03-15 BC', '0001-01-01 00:00:00 BC',
 'infinity', '00:00:00', '23:59:59.999999-14:59', '1 year 2 mons -3 days 04:05:06.789',
 '00000000-0000-0000-0000-000000000000', '::1', '2001:db8::/32', 'ff:ff:ff:ff:ff:ff', B'00000000',
 B'', false, '[]', '[]', '', '{}', '{}', NULL, '(,)', 'empty', '(,)', '{}', 'sad', 1,
 '', 'a', '(1e300,-1e-300)', '((-1,-2),(3,4))', 'abcde', repeat('x', 20), repeat('é', 100), -32768,
 -9223372036854775808, -0.0001),
('public.ds_1', 3, '123456789012345678901234567890.123456789', 'NaN', '0.1', 0, NULL, '2024-12-11',
 '2024-01-02 03:04:05.000001', '2024-01-02 03:04:05.000001-03:30', '12:34:56.123456', '00:00:00+00',
 'P-1Y-2M3DT-4H-5M-6S', NULL, NULL, NULL, NULL, NULL, NULL, NULL,
 'null', '\"str\"', '<?xml version=\"1.0\"?><r a=\"1\"/>', NULL, NULL, NULL, NULL,
 '[-2147483648,2147483647)', NULL, NULL, 'ok', 2147483647, NULL, NULL, NULL, NULL, NULL, NULL,
 E'\\\\N is not NULL, \\\\ is a backslash, \\n is a newline', 0, 0, NULL),
('public.ds_2', 1, '-0.000000000000000000001', '1.17549435e-38', '2.2250738585072014e-308', 92233720368547758.07,
 '\\x', '1999-12-31', '2000-01-01 00:00:00', '1999-12-31 23:59:59.999999+14', '23:59:59.999999',
 '00:00:01-15:59', '178000000 years', NULL, NULL, NULL, NULL, NULL, NULL, NULL,
 '{\"deep\": {\"er\": [[[]]]}}', '{\"deep\": {\"er\": [[[]]]}}', NULL, '{{1,2},{3,4}}', '{{\"a\",NULL}}',
 NULL, '(-1,)', '(,5]', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '🦉 日本 Ωß',
 NULL, NULL, NULL);"

# schema NODE SCHEMA [DB] — creates SCHEMA with the type table in NODE (database DB, default owl).
schema() {
    pg_psql "$1" -d "$(pg_conninfo "$1" "${3:-owl}")" -c "SET client_min_messages = warning" \
        -c "DROP SCHEMA IF EXISTS $2 CASCADE" -c "CREATE SCHEMA $2" -c "SET search_path TO $2" \
        -c "$TYPES_DDL" >/dev/null
}

# fill SCHEMA — the type rows into SCHEMA of src.
fill() {
    pg_psql src -c "SET search_path TO $1" -c "$TYPES_ROWS" >/dev/null
}

# configs SCHEMA [SRC_CONNINFO [TGT_CONNINFO]] — src.ini with job "fid" and tgt.ini.
configs() {
    cat >"$W/src.ini" <<EOF
[owlsync]
environment = prod
state_dir = $W/state
log_level = warn
[database]
conninfo = ${2:-$(pg_conninfo src)}
schema = $1
[table types]
key = dataset, k
[export fid]
datasets = public.ds_%
outbox = $W/out
signing_key = $K/prod.key
EOF
    cat >"$W/tgt.ini" <<EOF
[owlsync]
environment = qa
state_dir = $W/tstate
log_level = warn
[database]
conninfo = ${3:-$(pg_conninfo tgt)}
schema = $1
[table types]
key = dataset, k
[import]
trusted_key = prod $K/prod.key.pub
EOF
}

# dump NODE SCHEMA.TABLE [DB] — the rows pg_dump --data-only writes for it,
# sorted (pg_dump pins all it needs but the time zone: UTC for both).
dump() {
    local ci
    ci=$(pg_conninfo "$1" "${3:-owl}")
    PGTZ=UTC "$PG_BINDIR/pg_dump" --data-only --encoding=UTF8 --table="$2" -d "$ci" |
        awk '/^COPY /{on=1; next} /^\\\.$/{on=0} on' | LC_ALL=C sort
}

# same_dump SCHEMA.TABLE [SRC_DB [TGT_DB]] — pg_dump of it is the same on both sides, and not empty.
same_dump() {
    local a b
    a=$(dump src "$1" "${2:-owl}")
    b=$(dump tgt "$1" "${3:-owl}")
    if [ -z "$a" ] || [ "$a" != "$b" ]; then
        echo "pg_dump of $1 differs (< src, > tgt):" >&2
        diff <(echo "$a") <(echo "$b") >&2
        return 1
    fi
}

# promote [ENV=VALUE …] — exports job fid and imports the bundle, with the
# environment given (PGDATESTYLE, PGTZ, PGCLIENTENCODING, PGOPTIONS ...).
promote() {
    local b
    b=$(env "$@" "$OWLSYNC" -c "$W/src.ini" export -j fid --quiet) || { echo "export failed" >&2; return 1; }
    [ -f "$b" ] || { echo "export printed '$b'" >&2; return 1; }
    BUNDLE=$b
    run --separate-stderr env "$@" "$OWLSYNC" -c "$W/tgt.ini" import "$b"
    if [ "$status" -ne 0 ]; then
        echo "import exited $status: $stderr" >&2
        return 1
    fi
}

# ------------------------------------------------------------------ tests

@test "every built-in type family arrives exactly, source and target set up differently; a changed value re-imports exactly too" {
    schema src fid
    schema tgt fid
    fill fid
    configs fid
    promote
    [[ $output == *"types"* ]]
    same_dump fid.types
    # changes too small for text of fewer digits, and equal values of another
    # scale or zone: each is a change, and arrives
    pg_psql src -c "SET search_path TO fid" -c "
        UPDATE types SET f8 = 0.10000000000000002 WHERE dataset = 'public.ds_1' AND k = 3; -- the next double: 0.1 in 15 digits
        UPDATE types SET f8 = '2.2250738585072019e-308', nu = 12.3 WHERE dataset = 'public.ds_2';
        UPDATE types SET n = 1.100, tstz = tstz + interval '1 microsecond' WHERE k = 2;
        UPDATE types SET iv = '-1 days +02:00:00' WHERE k = 1 AND dataset = 'public.ds_1'" >/dev/null
    promote
    grep -Eq '^ +types +0 +4 +0 +0$' <<<"$output" || { echo "$output"; false; }
    same_dump fid.types
}

@test "settings from ALTER DATABASE, ALTER ROLE, the environment and conninfo options change nothing" {
    schema src fidenv
    schema tgt fidenv
    fill fidenv
    pg_psql src -c "ALTER DATABASE owl SET DateStyle = 'Postgres, DMY'" -c "ALTER ROLE postgres SET IntervalStyle = 'postgres_verbose'" >/dev/null
    pg_psql tgt -c "ALTER DATABASE owl SET TimeZone = 'America/St_Johns'" -c "ALTER ROLE postgres SET extra_float_digits = -3" >/dev/null
    configs fidenv "$(pg_conninfo src) options='-c TimeZone=Pacific/Chatham -c bytea_output=escape'" \
        "$(pg_conninfo tgt) options='-c DateStyle=SQL,MDY -c lc_monetary=C'"
    promote PGDATESTYLE='Postgres, MDY' PGTZ=Asia/Kathmandu PGCLIENTENCODING=LATIN1 \
        PGOPTIONS='-c IntervalStyle=sql_standard -c extra_float_digits=-15 -c xmloption=document'
    same_dump fidenv.types
    pg_psql src -c "ALTER DATABASE owl RESET ALL" -c "ALTER ROLE postgres RESET ALL" >/dev/null
    pg_psql tgt -c "ALTER DATABASE owl RESET ALL" -c "ALTER ROLE postgres RESET ALL" >/dev/null
}

@test "encodings: a LATIN1 target holds what it can exactly and refuses what it cannot (exit 2, row and column named); a LATIN1 source arrives in UTF8" {
    pg_psql tgt -c "CREATE DATABASE latin ENCODING LATIN1 LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0" >/dev/null
    pg_psql src -c "CREATE DATABASE latin ENCODING LATIN1 LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0" >/dev/null
    for node in src tgt; do
        pg_psql "$node" -d "$(pg_conninfo "$node" latin)" -c "CREATE SCHEMA enc" \
            -c "CREATE TABLE enc.words (dataset text, k int, w text, PRIMARY KEY (dataset, k))" >/dev/null
    done
    pg_psql src -c "CREATE SCHEMA enc" -c "CREATE TABLE enc.words (dataset text, k int, w text, PRIMARY KEY (dataset, k))" \
        -c "INSERT INTO enc.words VALUES ('public.ds_1', 1, 'café crème'), ('public.ds_1', 2, 'Ærø ½ ÿ'), ('public.ds_1', 3, E'tab\\t¡')" >/dev/null
    configs enc "" "$(pg_conninfo tgt latin)"
    sed -i 's/^\[table types\]$/[table words]/' "$W/src.ini" "$W/tgt.ini"
    # UTF8 source, LATIN1 target: what LATIN1 holds arrives as it is
    promote
    same_dump enc.words owl latin
    # a character LATIN1 cannot hold: refused, named, nothing written
    pg_query src "INSERT INTO enc.words VALUES ('public.ds_1', 4, 'owl 🦉 here'); UPDATE enc.words SET w = 'changed' WHERE k = 1" >/dev/null
    b=$("$OWLSYNC" -c "$W/src.ini" export -j fid --quiet)
    before=$(dump tgt enc.words latin)
    run --separate-stderr "$OWLSYNC" -c "$W/tgt.ini" import "$b"
    [ "$status" -eq 2 ] || { echo "$status $stderr"; false; }
    [[ $stderr == *"words row 3 (dataset = public.ds_1, k = 4) column w: a character the target database's encoding cannot hold"* ]]
    [[ $stderr == *"no equivalent in encoding \"LATIN1\""* ]]
    [ "$(dump tgt enc.words latin)" = "$before" ]
    # LATIN1 source, UTF8 target: the source's server converts
    PGCLIENTENCODING=UTF8 pg_psql src -d "$(pg_conninfo src latin)" \
        -c "INSERT INTO enc.words VALUES ('public.ds_1', 1, 'café crème'), ('public.ds_1', 2, 'Ærø ½ ÿ')" >/dev/null
    pg_psql tgt -c "CREATE SCHEMA enc" -c "CREATE TABLE enc.words (dataset text, k int, w text, PRIMARY KEY (dataset, k))" >/dev/null
    configs enc "$(pg_conninfo src latin)" ""
    sed -i 's/^\[table types\]$/[table words]/' "$W/src.ini" "$W/tgt.ini"
    # a job started afresh: its numbers start again at 1, so its old bundles
    # go too (a name already taken is never replaced: the export would fail)
    rm -rf "$W/state" "$W"/out/*.owlb
    promote
    same_dump enc.words latin owl
    [ "$(PGCLIENTENCODING=UTF8 pg_query tgt "SELECT w FROM enc.words WHERE k = 2")" = "Ærø ½ ÿ" ]
}

# simple SCHEMA DDL [TABLES_INI] — SCHEMA with DDL on both sides (the target's
# may differ afterwards), configs for its tables ([table NAME] sections).
simple() {
    local n
    for n in src tgt; do
        pg_psql "$n" -c "SET client_min_messages = warning" -c "DROP SCHEMA IF EXISTS $1 CASCADE" \
            -c "CREATE SCHEMA $1" -c "SET search_path TO $1" -c "$2" >/dev/null
    done
    configs "$1"
    sed -i '/^\[table types\]$/,/^key = dataset, k$/d' "$W/src.ini" "$W/tgt.ini"
    printf '%s\n' "$3" >>"$W/src.ini"
    printf '%s\n' "$3" >>"$W/tgt.ini"
}

@test "target schema details: row-level security, identity ALWAYS, a trigger that skips rows or uses the role's search_path: the first import and the next alike" {
    simple fidt "
        CREATE TABLE sec (dataset text, k int, v text, PRIMARY KEY (dataset, k));
        CREATE TABLE ident (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, dataset text, v text);
        CREATE TABLE skip (dataset text, k int, v text, PRIMARY KEY (dataset, k));
        CREATE TABLE audited (dataset text, k int, v text, PRIMARY KEY (dataset, k));" "
[table sec]
key = dataset, k
[table ident]
[table skip]
key = dataset, k
[table audited]
key = dataset, k"
    pg_psql src -c "SET search_path TO fidt" -c "
        INSERT INTO sec VALUES ('public.ds_1', 1, 'a'), ('public.ds_1', 2, 'b');
        INSERT INTO ident (dataset, v) VALUES ('public.ds_1', 'x'), ('public.ds_1', 'y');
        INSERT INTO skip VALUES ('public.ds_1', 1, 'keep'), ('public.ds_1', 2, 'SKIP me');
        INSERT INTO audited VALUES ('public.ds_1', 1, 'a')" >/dev/null
    # The target: a role subject to forced row-level security; a trigger that
    # drops rows; a trigger function that names its audit table unqualified,
    # found through the role's own search_path.
    pg_psql tgt -c "SET client_min_messages = warning" -c "DROP ROLE IF EXISTS fidt_owner" -c "
        CREATE ROLE fidt_owner LOGIN;
        CREATE SCHEMA fidt_app AUTHORIZATION fidt_owner;
        CREATE TABLE fidt_app.audit (what text);
        ALTER TABLE fidt_app.audit OWNER TO fidt_owner;
        ALTER ROLE fidt_owner SET search_path = fidt_app, public;
        GRANT ALL ON SCHEMA fidt TO fidt_owner;
        ALTER TABLE fidt.sec OWNER TO fidt_owner; ALTER TABLE fidt.ident OWNER TO fidt_owner;
        ALTER TABLE fidt.skip OWNER TO fidt_owner; ALTER TABLE fidt.audited OWNER TO fidt_owner;
        ALTER TABLE fidt.sec ENABLE ROW LEVEL SECURITY; ALTER TABLE fidt.sec FORCE ROW LEVEL SECURITY;
        CREATE POLICY everything ON fidt.sec USING (true) WITH CHECK (true);
        CREATE FUNCTION fidt.no_skip() RETURNS trigger LANGUAGE plpgsql AS
            \$\$ BEGIN IF NEW.v LIKE 'SKIP%' THEN RETURN NULL; END IF; RETURN NEW; END \$\$;
        CREATE TRIGGER no_skip BEFORE INSERT ON fidt.skip FOR EACH ROW EXECUTE FUNCTION fidt.no_skip();
        CREATE FUNCTION fidt.log_it() RETURNS trigger LANGUAGE plpgsql AS
            \$\$ BEGIN INSERT INTO audit VALUES (TG_OP || ' ' || NEW.v); RETURN NEW; END \$\$;
        CREATE TRIGGER log_it AFTER INSERT OR UPDATE ON fidt.audited FOR EACH ROW EXECUTE FUNCTION fidt.log_it();
        GRANT CREATE ON DATABASE owl TO fidt_owner;" >/dev/null
    # the ledger, as a DBA sets it up for an importing role (another test may have made it)
    pg_psql tgt -c "SET client_min_messages = warning" -f "$PG_SQL_DIR/ledger.sql" \
        -c "GRANT USAGE ON SCHEMA owlsync TO fidt_owner" \
        -c "GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA owlsync TO fidt_owner" >/dev/null
    sed -i "s|^conninfo = .*|conninfo = $(pg_conninfo tgt | sed 's/user=postgres/user=fidt_owner/')|" "$W/tgt.ini"
    promote
    grep -Eq '^ +skip +1 +0 +0 +1$' <<<"$output" || { echo "$output"; false; }   # the trigger's choice, not a failure
    same_dump fidt.sec
    same_dump fidt.ident
    [ "$(pg_query tgt "SELECT string_agg(v, ',' ORDER BY k) FROM fidt.skip")" = keep ]
    [ "$(pg_query tgt "SELECT what FROM fidt_app.audit")" = "INSERT a" ]
    # the next import goes through the staging table: the same outcome
    pg_psql src -c "SET search_path TO fidt" -c "
        UPDATE sec SET v = 'a2' WHERE k = 1; INSERT INTO sec VALUES ('public.ds_1', 3, 'c');
        UPDATE ident SET v = 'x2' WHERE v = 'x'; INSERT INTO ident (dataset, v) VALUES ('public.ds_1', 'z');
        INSERT INTO skip VALUES ('public.ds_1', 3, 'SKIP again'), ('public.ds_1', 4, 'keep too');
        UPDATE audited SET v = 'b'" >/dev/null
    promote
    same_dump fidt.sec
    same_dump fidt.ident
    [ "$(pg_query tgt "SELECT string_agg(v, ',' ORDER BY k) FROM fidt.skip")" = "keep,keep too" ]
    [ "$(pg_query tgt "SELECT string_agg(what, ',' ORDER BY what) FROM fidt_app.audit")" = "INSERT a,UPDATE b" ]
    # the identity's sequence was moved: the target's own next row does not collide
    pg_psql tgt -c "INSERT INTO fidt.ident (dataset, v) VALUES ('qa.local', 'own')" >/dev/null
}

@test "sequences behind defaults move, owned or not; dataset columns of integer, uuid and char(n) scope right, read on one connection or two" {
    simple fids "
        CREATE SEQUENCE hibernate_sequence;
        CREATE TABLE hib (id bigint DEFAULT nextval('hibernate_sequence') PRIMARY KEY, dataset text, v text);
        CREATE TABLE byint (dataset int, k int, v text, PRIMARY KEY (dataset, k));
        CREATE TABLE byuuid (dataset uuid, k int, v text, PRIMARY KEY (dataset, k));
        CREATE TABLE bychar (dataset char(12), k int, v text, PRIMARY KEY (dataset, k));" "
[table hib]
key = id
[table byint]
key = dataset, k
[table byuuid]
key = dataset, k
[table bychar]
key = dataset, k"
    sed -i 's/^datasets = public.ds_%$/datasets = 7, a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11, public.ds_1 , public.ds_%/' "$W/src.ini"
    pg_psql src -c "SET search_path TO fids" -c "
        SELECT setval('hibernate_sequence', 1000);
        INSERT INTO hib (dataset, v) VALUES ('public.ds_1', 'a'), ('public.ds_1', 'b');
        INSERT INTO byint VALUES (7, 1, 'seven'), (8, 1, 'eight');
        INSERT INTO byuuid VALUES ('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 1, 'u');
        INSERT INTO bychar VALUES ('public.ds_1', 1, 'c')" >/dev/null
    pg_psql tgt -c "SET search_path TO fids" -c "
        INSERT INTO byint VALUES (8, 1, 'the target''s own'), (7, 9, 'gone after replace');
        INSERT INTO bychar VALUES ('qa.other', 1, 'kept')" >/dev/null
    promote
    for t in hib byuuid; do same_dump "fids.$t"; done
    [ "$(pg_query tgt "SELECT string_agg(dataset || ':' || k || ':' || v, ',' ORDER BY dataset, k) FROM fids.byint")" = "7:1:seven,8:1:the target's own" ]
    pg_psql tgt -c "INSERT INTO fids.hib (dataset, v) VALUES ('qa.local', 'next')" >/dev/null
    [ "$(pg_query tgt "SELECT id > 1002 FROM fids.hib WHERE dataset = 'qa.local'")" = t ]
    # again, and with two connections: nothing doubles, nothing else moves
    pg_query src "UPDATE fids.bychar SET v = 'c2'; UPDATE fids.byuuid SET v = 'u2'" >/dev/null
    sed -i 's/^signing_key = .*/&\nparallel = 2/' "$W/src.ini"
    promote
    [ "$(pg_query tgt "SELECT count(*) FROM fids.bychar")" = 2 ]
    [ "$(pg_query tgt "SELECT v FROM fids.bychar WHERE dataset = 'public.ds_1'")" = c2 ]
    [ "$(pg_query tgt "SELECT string_agg(v, ',') FROM fids.byuuid")" = u2 ]
    [ "$(pg_query tgt "SELECT count(*) FROM fids.byint")" = 2 ]
}

@test "narrower target columns are warned of (text and --json); a column the target lacks is 2; ONLY the named table is read; a row over 64 MiB is refused at export (2)" {
    simple fidn "
        CREATE TABLE wide (dataset text, k int, f8 double precision, n numeric(10,4), ts timestamptz, v text,
                           PRIMARY KEY (dataset, k));
        CREATE TABLE wide_child (extra int) INHERITS (wide);" "
[table wide]
key = dataset, k"
    pg_psql tgt -c "SET search_path TO fidn" -c "DROP TABLE wide_child" -c "
        ALTER TABLE wide ALTER f8 TYPE real, ALTER n TYPE numeric(10,2), ALTER ts TYPE timestamp,
                         ALTER v TYPE varchar(5)" >/dev/null
    pg_psql src -c "SET search_path TO fidn" -c "
        INSERT INTO wide VALUES ('public.ds_1', 1, 1.5, 1.25, '2024-01-01 00:00:00+00', 'abc');
        INSERT INTO wide_child VALUES ('public.ds_1', 2, 2.5, 2.5, '2024-01-01 00:00:00+00', 'child', 9)" >/dev/null
    promote
    [[ $output == *"warning: wide.f8: the source's double precision values are rounded (fewer significant digits) in the target's real"* ]]
    [[ $output == *"warning: wide.n: the source's numeric(10,4) values are rounded (a smaller scale) in the target's numeric(10,2)"* ]]
    [[ $output == *"warning: wide.ts: the source's timestamp with time zone values lose their time zone"* ]]
    [[ $output == *"warning: wide.v: the source's text values may be too long"* ]]
    [ "$(pg_query tgt "SELECT count(*) FROM fidn.wide")" = 1 ]     # not the child's row
    # check compares the newest bundle at hand with the target's columns
    sed -i "s|^\[import\]\$|[import]\ninbox = $W/out|" "$W/tgt.ini"
    run "$OWLSYNC" -c "$W/tgt.ini" check
    [ "$status" -eq 0 ] || { echo "$output"; false; }
    [[ $output == *"warning: wide.n: the source's numeric(10,4) values are rounded (a smaller scale) in the target's numeric(10,2)"* ]]
    [ "$(grep -c '^warning: wide\.' <<<"$output")" = 4 ]
    [[ $output == *"ok: the columns of wide in $BUNDLE fit the target (see the warnings)"* ]]
    pg_query src "UPDATE fidn.wide SET f8 = 3.5" >/dev/null
    b=$("$OWLSYNC" -c "$W/src.ini" export -j fid --quiet)
    run --separate-stderr "$OWLSYNC" -c "$W/tgt.ini" import --json --dry-run "$b"
    [ "$status" -eq 0 ]
    [ "$(pg_psql tgt -At -v j="$output" <<<"SELECT jsonb_array_length((:'j'::jsonb)->'warnings')")" = 4 ]
    # a bundle column the target lacks: no retry fixes it
    pg_query tgt "ALTER TABLE fidn.wide DROP COLUMN v" >/dev/null
    pg_query src "UPDATE fidn.wide SET v = 'new'" >/dev/null
    b=$("$OWLSYNC" -c "$W/src.ini" export -j fid --quiet)
    run --separate-stderr "$OWLSYNC" -c "$W/tgt.ini" import "$b"
    [ "$status" -eq 2 ]
    [[ $stderr == *"bundle column wide.v does not exist in the target table fidn.wide"* ]]
    run "$OWLSYNC" -c "$W/tgt.ini" check
    [ "$status" -eq 2 ]
    [[ $output == *"bundle column wide.v (of $b) does not exist in the target table fidn.wide"* ]]
    # a row longer than owlsync carries: refused at the source, naming it
    pg_query src "INSERT INTO fidn.wide VALUES ('public.ds_1', 3, 0, 0, now(), repeat('x', 64 * 1024 * 1024 + 1))" >/dev/null
    run --separate-stderr "$OWLSYNC" -c "$W/src.ini" export -j fid --quiet
    [ "$status" -eq 2 ]
    [[ $stderr == *"fidn.wide row "*" is "*" bytes: owlsync carries rows of at most 67108864 bytes"* ]]
    [ -z "$(ls "$W/out" | grep -v '^prod_fid_.*_00000[123].owlb$')" ]
}
