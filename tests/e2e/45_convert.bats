#!/usr/bin/env bats
# owlsync convert, end to end: payloads of the vendor's Export API, made by its
# own dump() function (tests/bench/vendor_dump.sql) over the stand-in
# metastore, converted into bundles and imported; compared with `pg_dump
# --data-only` of a direct owlsync promotion of the same datasets. Hostile
# payloads are refused (exit 2, nothing written) or carried as data, never run.

bats_require_minimum_version 1.5.0
load ../lib/pg
load ../lib/owl
load ../lib/import

OWLSYNC=${OWLSYNC:-$BATS_TEST_DIRNAME/../../owlsync}
TABLES_INI=$OWL_TABLES_INI
# parents first, as a person calling the vendor's API lists them
DUMP_TABLES="ARRAY['rule_repo', 'owl_catalog', 'owl_rule', 'alert_cond', 'owl_check_repo', 'job_schedule',
                   'dataset_schema', 'dataset_scoring', 'alert_output']"

setup_file() {
    import_setup_file prod
    pg_psql src -c "SET client_min_messages = warning" -f "$BATS_TEST_DIRNAME/../bench/vendor_dump.sql" >/dev/null
}

teardown_file() {
    pg_stop_all
}

setup() {
    import_setup
    mkdir -p "$W/conv"
}

# ------------------------------------------------------------------ helpers

# payload SCHEMA DATASETS_ARRAY [SKIP_ARRAY] — the vendor's payload: dump()'s
# statements as the JSON list its API answers with (json_agg), on stdout. SKIP
# defaults to none: every column travels, id too, as the vendor's function
# writes them.
payload() {
    pg_psql src -At -c "SELECT json_agg(s) FROM bench_vendor.dump('$1', $DUMP_TABLES, $2, ${3:-ARRAY[]::text[]}) s"
}

# convert ARGS… — owlsync convert with src.ini, through bats' run.
convert() {
    run --separate-stderr "$OWLSYNC" -c "$W/src.ini" convert "$@"
}

# refused TEXT — the last convert exited 2 with TEXT in its error, and wrote
# nothing: no bundle, no sequence number taken.
refused() {
    if [ "$status" -ne 2 ] || [[ $stderr != *"owlsync convert: "*"$1"* ]]; then
        echo "expected exit 2 and '$1', got $status: $stderr" >&2
        return 1
    fi
    [ -z "$output" ]
    [ -z "$(ls -A "$W/conv")" ]
    [ ! -e "$W/state/export-convert.state" ]
}

# rows NODE SCHEMA.TABLE — pg_dump --data-only of the table's rows without
# their first column (id, which each import assigns), sorted.
rows() {
    local ci
    ci=$(pg_conninfo "$1")
    PGTZ=UTC "$PG_BINDIR/pg_dump" --data-only --encoding=UTF8 --table="$2" -d "$ci" |
        awk '/^COPY /{on=1; next} /^\\\.$/{on=0} on' | cut -f2- | LC_ALL=C sort
}

# tgt2_ini SCHEMA — tgt.ini for another target schema.
tgt2_ini() {
    sed "s/^schema = .*/schema = $1/" "$W/tgt.ini" >"$W/tgt2.ini"
}

# stmt TEXT — a payload of one statement (TEXT is JSON string content).
stmt() {
    printf '["%s"]\n' "$1" >"$W/p.json"
}

# ------------------------------------------------------------------ tests

@test "a payload of the vendor's dump() converts and imports to the rows a direct promotion gives, every hostile sample value included" {
    pair cv 3
    pg_load_schema tgt cv2
    job direct "public.ds_1, public.special, public.o'hara"
    b=$(mkbundle direct)
    imp_ok "$b"

    ds="ARRAY['public.ds_1', 'public.special', 'public.o''hara']"
    PGOPTIONS="-c extra_float_digits=3" payload cv "$ds" >"$W/payload.json"
    grep -q "INSERT INTO cv.owl_rule(id, dataset, rule_nm" "$W/payload.json"
    grep -q "E'" "$W/payload.json" # values with a backslash, in quote_literal's E'' form

    convert --from-vendor-json "$W/payload.json" -o "$W/conv"
    [ "$status" -eq 0 ] || { echo "$stderr"; false; }
    cb=$output
    [ -f "$cb" ]
    [[ $cb == "$W/conv/prod_convert_"*"_000001.owlb" ]]
    run "$OWLSYNC" inspect "$cb"
    [[ $output == *"datasets     3: public.ds_1, public.o'hara, public.special"* ]]
    unpack "$cb" "$W/u"
    ! grep -q '"name": "id"' "$W/u/manifest.json" # generated: left out, as the exporter leaves it out
    grep -q '"type": "unknown"' "$W/u/manifest.json"

    tgt2_ini cv2
    run --separate-stderr "$OWLSYNC" -c "$W/tgt2.ini" import "$cb"
    [ "$status" -eq 0 ] || { echo "$stderr"; false; }

    for t in $OWL_TABLES; do
        a=$(rows tgt "cv.$t")
        c=$(rows tgt "cv2.$t")
        if [ -z "$a" ] || [ "$a" != "$c" ]; then
            echo "$t differs (< direct, > converted):" >&2
            diff <(echo "$a") <(echo "$c") >&2
            return 1
        fi
    done
    # the hostile values are data: the injection text is there, and its tables too
    [ "$(pg_query tgt "SELECT count(*) FROM cv2.owl_rule WHERE rule_value LIKE '%DROP TABLE owl_rule%'")" = 1 ]
    [ "$(pg_query tgt "SELECT count(*) FROM cv2.owl_rule WHERE dataset = 'public.special'")" = 8 ]

    # the same payload again, from standard input: a new bundle, which changes nothing
    convert --from-vendor-json - -o "$W/conv" <"$W/payload.json"
    [ "$status" -eq 0 ] || { echo "$stderr"; false; }
    [[ $output == *"_000002.owlb" ]]
    run --separate-stderr "$OWLSYNC" -c "$W/tgt2.ini" import "$output"
    [ "$status" -eq 0 ]
    printed_counts owl_rule 0 0 0 29
}

@test "convert -j JOB signs with the job's key into its outboxes and keeps to its tables; the job's state keeps only the sequence" {
    pair cvj 2
    job nightly "public.ds_1" "tables=owl_catalog, owl_rule" "skip_unchanged=true"
    b1=$(mkbundle nightly)
    [[ $b1 == *"_000001.owlb" ]]
    payload cvj "ARRAY['public.ds_2']" "ARRAY['id']" >"$W/payload.json"
    convert --from-vendor-json "$W/payload.json" -j nightly
    [ "$status" -eq 2 ]
    [[ $stderr == *"table \"rule_repo\" is not among the tables this conversion carries"* ]]
    [ "$(ls "$W/out")" = "$(basename "$b1")" ]

    pg_psql src -At -c "SELECT json_agg(s) FROM bench_vendor.dump('cvj', ARRAY['owl_catalog', 'owl_rule'],
        ARRAY['public.ds_2']) s" >"$W/payload.json"
    convert --from-vendor-json "$W/payload.json" -j nightly
    [ "$status" -eq 0 ] || { echo "$stderr"; false; }
    [[ $output == "$W/out/prod_nightly_"*"_000002.owlb" ]]
    "$OWLSYNC" verify -k "$K/prod.key.pub" "$output"
    imp_ok "$output"
    printed_counts owl_rule 20 0 0 0
    [ "$(pg_query tgt "SELECT count(*) FROM cvj.owl_rule WHERE dataset = 'public.ds_2'")" = 20 ]
    # the job's next export finds its outbox holding its content still (the
    # convert recorded no delivery and no dataset of the job's): no bundle
    run --separate-stderr "$OWLSYNC" -c "$W/src.ini" export -j nightly --quiet
    [ "$status" -eq 0 ]
    [ -z "$output" ]
    # and after a change, the number after the convert's
    pg_psql src -c "UPDATE cvj.owl_rule SET points = points + 1 WHERE dataset = 'public.ds_1'" >/dev/null
    b3=$(mkbundle nightly)
    [[ $b3 == *"_000003.owlb" ]]
}

@test "statements that are not the vendor's dump() shape are refused with their index and byte, exit 2, nothing written" {
    pair cvh 1
    job keys "public.x"
    local ok="INSERT INTO cvh.owl_catalog(dataset, alias_nm) VALUES ('public.x', 'a');"
    while IFS='|' read -r text what; do
        printf '["%s", "%s"]\n' "$ok" "$text" >"$W/p.json"
        convert --from-vendor-json "$W/p.json" -o "$W/conv"
        refused "statement 2 (payload byte" || { echo "for: $text" >&2; return 1; }
        [[ $stderr == *"$what"* ]] || { echo "for: $text: $stderr" >&2; return 1; }
    done <<'EOF'
INSERT INTO cvh.owl_catalog(dataset, alias_nm) VALUES ('public.x', 'a');DROP TABLE cvh.owl_catalog;|byte 73: text after the statement's end
DROP TABLE cvh.owl_catalog;|byte 1: not an INSERT statement
INSERT INTO cvh.owl_catalog(dataset, alias_nm) VALUES ('public.x', 'a'); -- comment|byte 73: text after
INSERT INTO cvh.owl_catalog(dataset, alias_nm) VALUES ('public.x', /* c */ 'a');|byte 68: expected a quoted value or NULL
INSERT INTO cvh.owl_catalog(dataset, alias_nm) VALUES ('public.x', lower('A'));|byte 68: expected a quoted value or NULL
INSERT INTO cvh.owl_catalog(dataset, alias_nm) VALUES ('public.x', 'a'::text);|byte 71: expected ','
INSERT INTO cvh.owl_catalog(dataset, alias_nm) VALUES ('public.x', pg_sleep(10));|byte 68: expected a quoted value
INSERT INTO cvh.owl_catalog(dataset, alias_nm) VALUES ('public.x', 'a);|byte 68: a value without its closing quote
INSERT INTO cvh.owl_catalog(dataset, alias_nm) VALUES ('public.x');|byte 66: 1 values for 2 columns
INSERT INTO cvh.owl_catalog(dataset, alias_nm) VALUES ('public.x', 'a', 'b');|byte 73: more values than the 2 columns
INSERT INTO cvh.owl_catalog(dataset, alias_nm) VALUES ('public.x', 'a\\\\b');|byte 70: a backslash in a '...' value
INSERT INTO cvh.owl_catalog(dataset, alias_nm) VALUES ('public.x', E'a\\nb');|byte 71: a backslash not doubled
INSERT INTO cvh.owl_catalog(dataset, alias_nm) VALUES ('public.x', 'a') ON CONFLICT DO NOTHING;|byte 71: expected ','
INSERT INTO cvh.owl_catalog(dataset, alias_nm) SELECT dataset, alias_nm FROM cvh.owl_catalog;|byte 46: expected ','
INSERT INTO cvh.pg_authid(rolname) VALUES ('x');|table "pg_authid" is not among the tables
INSERT INTO cvh.owl_catalog(dataset) VALUES (NULL);|its column list differs from that of statement 1
INSERT INTO other.owl_catalog(dataset, alias_nm) VALUES ('public.x', 'a');|schema "other" is not cvh
EOF
    # a NULL dataset, an unknown column shape for the first statement of a table
    stmt "INSERT INTO cvh.owl_rule(dataset, rule_nm) VALUES (NULL, 'r');"
    convert --from-vendor-json "$W/p.json" -o "$W/conv"
    refused "statement 1 (payload byte 2): its dataset column dataset is NULL"
    stmt "INSERT INTO cvh.owl_rule(rule_nm) VALUES ('r');"
    convert --from-vendor-json "$W/p.json" -o "$W/conv"
    refused "owl_rule has no column dataset"
    stmt "INSERT INTO cvh.owl_rule(dataset, \\\"Rule Nm\\\") VALUES ('d', 'r');"
    convert --from-vendor-json "$W/p.json" -o "$W/conv"
    refused "column \"Rule Nm\" of owl_rule has a name owlsync cannot carry"
    # and the target never heard of any of it
    [ "$(pg_query src "SELECT count(*) FROM cvh.owl_catalog")" -gt 0 ]
}

@test "malformed JSON, an empty list and payloads over the limits are refused, exit 2, nothing written" {
    pair cvm 1
    job keys "public.x"
    local ok="INSERT INTO cvm.owl_catalog(dataset) VALUES ('d');"
    for p in '' '{"statements": []}' "[\"$ok\"" "[\"$ok\",]" "[\"$ok\"] [\"$ok\"]" "[\"$ok\" \"$ok\"]" \
        "[\"$ok]" '["\u0000"]' '["\ud800"]' '["\q"]' "[1]" "[null]" '[["x"]]'; do
        printf '%s' "$p" >"$W/p.json"
        convert --from-vendor-json "$W/p.json" -o "$W/conv"
        refused "" || { echo "for: $p" >&2; return 1; }
    done
    printf '[]' >"$W/p.json"
    convert --from-vendor-json "$W/p.json" -o "$W/conv"
    refused "holds no statement"
    printf '["%s"]' "$ok" | tr -d '\n' >"$W/p.json"
    printf '\xff' >>"$W/p.json"
    convert --from-vendor-json "$W/p.json" -o "$W/conv"
    refused "payload byte $((${#ok} + 5)): text after the end of the list"

    # a row of 64 MiB and a byte (one of 40 MB with a backslash, which COPY
    # doubles, fits: at the end)
    { printf '["INSERT INTO cvm.owl_catalog(dataset, alias_nm) VALUES (%s, %s);"]' "'d'" \
        "'$(head -c 67108863 /dev/zero | tr '\0' a)'"; } >"$W/p.json"
    convert --from-vendor-json "$W/p.json" -o "$W/conv"
    refused "statement 1 (payload byte 2): its row is longer than 67108864 bytes"
    stmt "INSERT INTO cvm.owl_catalog(dataset) VALUES ('$(head -c 1025 /dev/zero | tr '\0' d)');"
    convert --from-vendor-json "$W/p.json" -o "$W/conv"
    refused "its dataset name is longer than 1024 bytes"
    rm -f "$W/p.json"

    # 1 GB (a sparse file): refused by its size, before a byte is read
    truncate -s 1100M "$W/big.json"
    convert --from-vendor-json "$W/big.json" -o "$W/conv"
    refused "is 1153433600 bytes, more than [import] max_bundle_size (1073741824 bytes)"
    rm -f "$W/big.json"
    # from a pipe: counted as it comes
    printf '\n[import]\nmax_bundle_size = 64K\n' >>"$W/src.ini"
    { printf '['; for i in $(seq 1 2000); do printf '"%s",' "$ok"; done; printf '"%s"]' "$ok"; } >"$W/p.json"
    run --separate-stderr bash -c 'cat "$1" | "$2" -c "$3" convert --from-vendor-json - -o "$4"' \
        - "$W/p.json" "$OWLSYNC" "$W/src.ini" "$W/conv"
    refused "the payload (stdin) is more than [import] max_bundle_size (65536 bytes)"

    sed -i '/^max_bundle_size = 64K$/d' "$W/src.ini"
    { printf '["INSERT INTO cvm.owl_catalog(dataset, alias_nm) VALUES (%s, %s);"]' "'d'" \
        "E'\\\\\\\\$(head -c 40000000 /dev/zero | tr '\0' a)'"; } >"$W/p.json"
    mkdir -p "$W/big"
    convert --from-vendor-json "$W/p.json" -o "$W/big"
    [ "$status" -eq 0 ] || { echo "$stderr"; false; }
    rm -rf "$W/big"
}

@test "values carried as data: E'' escapes, semicolons, comments and quotes in values, a 10 MB value, byte for byte" {
    pair cvv 1
    local big
    # a value of 10 MB, with a quote and a backslash in it
    pg_psql src -c "SET search_path TO cvv" -c "
        INSERT INTO owl_catalog (dataset, alias_nm, dataset_desc, tags)
        VALUES ('public.vals', E'it''s; DROP TABLE owl_catalog; --', repeat(E'ab''c\\\\d;x', 1310720),
                ARRAY[E'/* c */', E'\\\\x41', E'E''\\\\n''', 'NULL', '']);
        INSERT INTO owl_rule (dataset, rule_nm, rule_value)
        VALUES ('public.vals', E'r\\\\1', E'\\\\N'), ('public.vals', 'r2', E'line\\nbreak\\ttab\\r'),
               ('public.vals', 'r3', E'\\\\.'), ('public.vals', 'r4', E'''); DROP TABLE owl_rule; --')" >/dev/null
    job keys "public.vals"
    payload cvv "ARRAY['public.vals']" >"$W/payload.json"
    [ "$(stat -c %s "$W/payload.json")" -gt 10000000 ]
    convert --from-vendor-json "$W/payload.json" -o "$W/conv"
    [ "$status" -eq 0 ] || { echo "$stderr"; false; }
    imp_ok "$output"
    for t in owl_catalog owl_rule; do
        # ids differ: compared without them
        a=$(pg_digest src "cvv.$t" "dataset = 'public.vals'")
        b=$(pg_digest tgt "cvv.$t" "dataset = 'public.vals'")
        [ "$a" = "$b" ] || { echo "$t: $a vs $b" >&2; false; }
    done
    big=$(pg_query tgt "SELECT length(dataset_desc) FROM cvv.owl_catalog WHERE dataset = 'public.vals'")
    [ "$big" = 10485760 ]
    [ "$(pg_query tgt "SELECT rule_value FROM cvv.owl_rule WHERE rule_nm = 'r2'")" = "$(printf 'line\nbreak\ttab\r')" ]
    [ "$(pg_query tgt "SELECT count(*) FROM cvv.owl_rule")" = 4 ]
}
