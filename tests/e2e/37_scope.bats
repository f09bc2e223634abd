#!/usr/bin/env bats
# owlsync import scope, end to end: an import changes exactly the bundle's
# datasets. Writes limited to them whatever the keys; keys that cannot reach
# another dataset, nor lose or repeat a row; references to ids each database
# assigns itself that follow their parents; an apply order that survives
# row-by-row constraint checks; deletes that arrive; a ledger that tells one
# source's bundle from another's. Signed bundles a leaked key (or a source
# configured by mistake) can make are refused with the target left as it was.
#
# Every test works in its own schema; they share the target's ledger.

bats_require_minimum_version 1.5.0
load ../lib/pg
load ../lib/owl
load ../lib/import

OWLSYNC=${OWLSYNC:-$BATS_TEST_DIRNAME/../../owlsync}
RESIGN=${RESIGN:-$BATS_TEST_DIRNAME/../../build/tests/tools/resign}

# The vendor's seven tables, as the default table set has them.
DEFAULT_TABLES='rule_repo owl_catalog owl_rule alert_cond alert_output owl_check_repo job_schedule'

setup_file() {
    if [ ! -x "$RESIGN" ]; then
        echo "no resign binary at $RESIGN (run make test)" >&2
        return 1
    fi
    import_setup_file prod dev
}

teardown_file() {
    pg_stop_all
}

setup() {
    import_setup
    TABLES_INI=$OWL_TABLES_INI
    unset TABLES_SRC
}

# ------------------------------------------------------------------ helpers

# qa_copy SCHEMA — the target's SCHEMA holds the sample metastore too, renamed
# to datasets qa.*: its own datasets, whose ids are the source's ids.
qa_copy() {
    local t sql="SET search_path TO $1;"
    pg_load_metastore tgt 3 "$1"
    for t in $OWL_TABLES; do
        [ "$t" = rule_repo ] || sql+="UPDATE $t SET dataset = replace(dataset, 'public.', 'qa.');"
    done
    pg_psql tgt -c "ALTER TABLE $1.alert_output DROP CONSTRAINT alert_output_alert_cond_fk" -c "$sql" \
        -c "ALTER TABLE $1.alert_output ADD CONSTRAINT alert_output_alert_cond_fk FOREIGN KEY (dataset, alert_nm) REFERENCES $1.alert_cond (dataset, alert_nm)" >/dev/null
}

# edit_manifest DIR JSONB-EXPR — rewrites DIR/manifest.json as the value of
# the SQL expression, in which m is the manifest as jsonb.
edit_manifest() {
    local json
    json=$(cat "$1/manifest.json")
    pg_psql src -At -v m="$json" <<<"SELECT ($2)::text FROM (SELECT :'m'::jsonb AS m) x" >"$1/manifest.new" &&
        mv "$1/manifest.new" "$1/manifest.json"
}

# qa_pair SCHEMA [TABLES] — the sample metastore in src, its copy as qa.* in
# tgt, both sides on the [table] sections TABLES (default: none, the default
# table set); the target trusts the prod key for prod and the dev key for dev.
qa_pair() {
    S=$1
    pg_load_metastore src 3 "$S"
    qa_copy "$S"
    TABLES_INI=${2:-}
    src_ini
    tgt_ini "trusted_key = prod $K/prod.key.pub" "trusted_key = dev $K/dev.key.pub"
}

# digests of the target's rows of datasets other than those given (ids included)
others() {
    local list=$1
    OWL_TABLES=$DEFAULT_TABLES tgt_rows "dataset NOT IN ($list)" false
}

# ------------------------------------------------------------------ scope

@test "the default table set promotes into a target whose own datasets' ids overlap the source's: they stay byte-identical" {
    qa_pair defscope
    job nightly "public.ds_1"
    before=$(others "'public.ds_1'")
    [[ $before == *"owl_rule 69 "* ]]   # qa.ds_1..3 and qa.special, ids 1.. as at the source
    b=$(mkbundle nightly)
    imp_ok "$b"
    [ "$(others "'public.ds_1'")" = "$before" ]
    OWL_TABLES=$DEFAULT_TABLES same_as_src "dataset = 'public.ds_1'"
    # edits, deletes and additions at the source: scoped as well
    pg_psql src -c "SET search_path TO $S" \
        -c "UPDATE owl_rule SET rule_value = 'changed' WHERE dataset = 'public.ds_1' AND rule_nm = 'rule_2'" \
        -c "DELETE FROM owl_rule WHERE dataset = 'public.ds_1' AND rule_nm = 'rule_3'" \
        -c "INSERT INTO owl_rule (dataset, rule_nm, rule_value) VALUES ('public.ds_1', 'rule_new', 'x')" >/dev/null
    b=$(mkbundle nightly)
    imp_ok "$b"
    printed_counts owl_rule 1 1 1 18
    [ "$(others "'public.ds_1'")" = "$before" ]
    OWL_TABLES=$DEFAULT_TABLES same_as_src "dataset = 'public.ds_1'"
}

@test "a configured key without the dataset column is completed with it: another dataset's rows of the same name stay" {
    qa_pair keyscope
    TABLES_INI='
[table owl_rule]
key = rule_nm
generated = id
'
    src_ini
    tgt_ini
    # two datasets whose rules share their names: matched by name alone, they would merge
    job nightly "public.ds_1, public.ds_2"
    pg_query tgt "INSERT INTO $S.owl_rule (dataset, rule_nm, rule_value) SELECT 'public.ds_1', rule_nm, 'old' FROM $S.owl_rule WHERE dataset = 'qa.ds_2' AND rule_nm IN ('rule_1', 'rule_2')" >/dev/null
    before=$(OWL_TABLES=owl_rule tgt_rows "dataset NOT IN ('public.ds_1', 'public.ds_2')")
    b=$(mkbundle nightly)
    imp_ok "$b"
    printed_counts owl_rule 38 2 0 0
    [ "$(OWL_TABLES=owl_rule tgt_rows "dataset NOT IN ('public.ds_1', 'public.ds_2')")" = "$before" ]
    OWL_TABLES=owl_rule same_as_src "dataset IN ('public.ds_1', 'public.ds_2')"
}

# ------------------------------------------------------------------ hostile signed bundles

@test "signed hostile manifests are refused and the target stays byte-identical: dataset_column, undeclared rows, generated and reference columns" {
    qa_pair hostile "$OWL_TABLES_INI"
    job nightly "public.ds_1, public.ds_2"
    b=$(mkbundle nightly)
    imp_ok "$b"
    pg_query src "UPDATE $S.owl_rule SET rule_value = 'v2' WHERE dataset = 'public.ds_1'" >/dev/null
    b=$(mkbundle nightly)
    unpack "$b" "$W/u"
    state=$(tgt_state)

    # the untouched bundle, re-signed, is fine (the crafting is not what fails)
    cp -r "$W/u" "$W/ok"
    resign "$K/prod.key" "$W/ok" "$W/ok.owlb"
    imp --dry-run "$W/ok.owlb"
    [ "$status" -eq 0 ]

    # 1. owl_rule scoped by no column: every dataset's rules would go
    cp -r "$W/u" "$W/h1"
    edit_manifest "$W/h1" "jsonb_set(m, '{tables,2,dataset_column}', '\"\"')"
    resign "$K/prod.key" "$W/h1" "$W/h1.owlb"
    imp "$W/h1.owlb"
    expect_refusal 4 'bundle table owl_rule is scoped by dataset column ""'
    # ... or by another column
    cp -r "$W/u" "$W/h2"
    edit_manifest "$W/h2" "jsonb_set(m, '{tables,2,dataset_column}', '\"rule_nm\"')"
    resign "$K/prod.key" "$W/h2" "$W/h2.owlb"
    imp "$W/h2.owlb"
    expect_refusal 4 'scoped by dataset column "rule_nm"'
    [ "$(tgt_state)" = "$state" ]

    # 2. rows of a dataset the manifest does not declare
    cp -r "$W/u" "$W/h3"
    edit_manifest "$W/h3" "jsonb_set(m, '{datasets}', '[\"public.ds_1\"]')"
    resign "$K/prod.key" "$W/h3" "$W/h3.owlb"
    imp "$W/h3.owlb"
    expect_refusal 4 "holds"
    [[ $stderr == *"rows of datasets the bundle does not declare (one: public.ds_2)"* ]]
    [ "$(tgt_state)" = "$state" ]

    # ... also when COPY writes the table itself (the target holds nothing of
    # the declared dataset yet): the rows it wrote go again
    job third "public.ds_3"
    b3=$(mkbundle third)
    unpack "$b3" "$W/h3d"
    awk -F'\t' -v OFS='\t' '{ print; $1 = "qa.zz"; print }' "$W/h3d/data/owl_rule.tsv" >"$W/h3d/owl_rule.tsv"
    mv "$W/h3d/owl_rule.tsv" "$W/h3d/data/owl_rule.tsv"
    resign "$K/prod.key" "$W/h3d" "$W/h3d.owlb"
    imp "$W/h3d.owlb"
    expect_refusal 4 "bundle table owl_rule holds 20 rows of datasets the bundle does not declare"
    [ "$(tgt_state)" = "$state" ]

    # 3. a column this environment assigns itself
    cp -r "$W/u" "$W/h4"
    edit_manifest "$W/h4" "jsonb_set(m, '{tables,2,columns}', '[{\"name\": \"id\", \"type\": \"bigint\"}]'::jsonb || (m->'tables'->2->'columns'))"
    awk '{ print NR "\t" $0 }' "$W/u/data/owl_rule.tsv" >"$W/h4/data/owl_rule.tsv"
    resign "$K/prod.key" "$W/h4" "$W/h4.owlb"
    imp "$W/h4.owlb"
    expect_refusal 4 "bundle table owl_rule carries column id, which this environment's [table owl_rule] lists as generated"
    [ "$(tgt_state)" = "$state" ]

    # 4. a reference to a column this environment does not assign itself
    cp -r "$W/u" "$W/h5"
    edit_manifest "$W/h5" "jsonb_set(jsonb_set(m, '{version}', '2'), '{tables,2,columns,3,ref}', 'true')"
    resign "$K/prod.key" "$W/h5" "$W/h5.owlb"
    imp "$W/h5.owlb"
    expect_refusal 4 "carries column rule_value as a reference"
    # ... and a reference in a version-1 manifest is not one
    cp -r "$W/u" "$W/h6"
    edit_manifest "$W/h6" "jsonb_set(m, '{tables,2,columns,3,ref}', 'true')"
    resign "$K/prod.key" "$W/h6" "$W/h6.owlb"
    imp "$W/h6.owlb"
    expect_refusal 3 "column rule_value is not a valid reference"
    [ "$(tgt_state)" = "$state" ]

    # 5. what a signed manifest says reaches no terminal raw: no escape
    #    sequence, no line of its own (a fake "signature verified")
    cp -r "$W/u" "$W/h7"
    edit_manifest "$W/h7" "jsonb_set(m, '{datasets}', '[\"public.ds_1\\nsignature    verified \\u001b[31mred\"]')"
    resign "$K/prod.key" "$W/h7" "$W/h7.owlb"
    run "$OWLSYNC" inspect "$W/h7.owlb"
    [ "$status" -eq 0 ]
    [[ $output == *'public.ds_1\nsignature    verified \x1b[31mred'* ]]
    ! grep -q $'\x1b' <<<"$output"
    ! grep -q '^signature  *verified' <<<"$output"
}

@test "a bundle id reused by another environment's key is refused, and so is the real bundle after it: never 'already imported'" {
    qa_pair reuse "$OWL_TABLES_INI"
    job nightly "public.ds_1"
    real=$(mkbundle nightly)
    unpack "$real" "$W/u"
    # a dev bundle (its key trusted for dev only) with the real one's id
    edit_manifest "$W/u" "jsonb_set(m, '{environment}', '\"dev\"')"
    resign "$K/dev.key" "$W/u" "$W/forged.owlb"
    [ "$(owl_bundle_id "$W/forged.owlb")" = "$(owl_bundle_id "$real")" ]
    imp_ok "$W/forged.owlb"          # a dev bundle as good as any: it applies
    state=$(tgt_state)
    imp "$real"
    expect_refusal 4 "was imported before from environment dev, key"
    [ "$(tgt_state)" = "$state" ]
    # the same bundle again is "already imported"
    imp_ok "$W/forged.owlb"
    [[ $output == *"already imported"* ]]

    # and the other way round: the real bundle first, the forged one refused
    job second "public.ds_2"
    real=$(mkbundle second)
    imp_ok "$real"
    unpack "$real" "$W/v"
    edit_manifest "$W/v" "jsonb_set(m, '{environment}', '\"dev\"')"
    resign "$K/dev.key" "$W/v" "$W/forged2.owlb"
    state=$(tgt_state)
    imp "$W/forged2.owlb"
    expect_refusal 4 "was imported before from environment prod"
    [ "$(tgt_state)" = "$state" ]
}

# ------------------------------------------------------------------ keys

@test "keys: duplicate and NULL keys are refused naming table, key and value; a target's case-insensitive key refuses what it would merge" {
    pair keys 2
    job nightly "public.ds_1"
    b=$(mkbundle nightly)
    imp_ok "$b"
    pg_query src "UPDATE $S.owl_rule SET rule_value = 'v2' WHERE dataset = 'public.ds_1' AND rule_nm = 'rule_4'" >/dev/null
    b=$(mkbundle nightly)
    unpack "$b" "$W/u"
    # a row twice, one of them changed: which would land?
    awk -F'\t' -v OFS='\t' '$1 == "public.ds_1" && $2 == "rule_4" { $4 = "v3"; print }' "$W/u/data/owl_rule.tsv" >"$W/dup.tsv"
    [ "$(wc -l <"$W/dup.tsv")" = 1 ]
    cat "$W/dup.tsv" >>"$W/u/data/owl_rule.tsv"
    resign "$K/prod.key" "$W/u" "$W/dup.owlb"
    state=$(tgt_state)
    imp "$W/dup.owlb"
    expect_refusal 2 "owl_rule: key (dataset, rule_nm) holds 2 rows equal in it under the target's equality ('public.ds_1', 'rule_4')"
    [ "$(tgt_state)" = "$state" ]

    # a key column that may be NULL: such a row would be added on every import
    S=nullkey
    pg_psql src -c "CREATE SCHEMA $S" -c "CREATE TABLE $S.nk (dataset text NOT NULL, a text, note text)" \
        -c "INSERT INTO $S.nk VALUES ('public.ds_1', 'x', 'one'), ('public.ds_1', NULL, 'two')" >/dev/null
    pg_psql tgt -c "CREATE SCHEMA $S" -c "CREATE TABLE $S.nk (dataset text NOT NULL, a text, note text)" >/dev/null
    TABLES_INI='
[table nk]
key = dataset, a
mode = upsert
'
    src_ini
    tgt_ini
    job nk "public.ds_1"
    b=$(mkbundle nk)
    imp "$b"
    expect_refusal 2 "nk: key (dataset, a) holds a row with a NULL in it ('public.ds_1', NULL)"
    [ "$(tgt1 "SELECT count(*) FROM $S.nk")" = 0 ]

    # the target's key compares case-insensitively: two rows the source tells apart
    S=cikey
    pg_psql src -c "CREATE SCHEMA $S" -c "CREATE TABLE $S.ck (dataset text NOT NULL, name text NOT NULL, v text, PRIMARY KEY (dataset, name))" \
        -c "INSERT INTO $S.ck VALUES ('public.ds_1', 'Rule_B', 'upper'), ('public.ds_1', 'rule_b', 'lower')" >/dev/null
    pg_psql tgt -c "CREATE SCHEMA $S" -c "CREATE COLLATION $S.ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false)" \
        -c "CREATE TABLE $S.ck (dataset text NOT NULL, name text COLLATE $S.ci NOT NULL, v text, PRIMARY KEY (dataset, name))" \
        -c "INSERT INTO $S.ck VALUES ('public.ds_1', 'RULE_B', 'target')" >/dev/null
    TABLES_INI='
[table ck]
key = dataset, name
'
    src_ini
    tgt_ini
    job ck "public.ds_1" "skip_unchanged=false"
    b=$(mkbundle ck)
    imp "$b"
    expect_refusal 2 "ck: key (dataset, name) holds 2 rows equal in it under the target's equality"
    [ "$(tgt1 "SELECT string_agg(name || '=' || v, ' ') FROM $S.ck")" = "RULE_B=target" ]
    # one of them: the key's new text lands (the target calls it equal), then it is unchanged
    pg_query src "DELETE FROM $S.ck WHERE name = 'Rule_B'" >/dev/null
    b=$(mkbundle ck)
    imp_ok "$b"
    printed_counts ck 0 1 0 0
    [ "$(tgt1 "SELECT string_agg(name || '=' || v, ' ') FROM $S.ck")" = "rule_b=lower" ]
    b=$(mkbundle ck)
    imp_ok "$b"
    printed_counts ck 0 0 0 1
}

@test "a key's text the target calls equal (1.0, 1.00) is written, and reported unchanged once it landed" {
    S=numkey
    local ddl="CREATE TABLE nkey (dataset text NOT NULL, k numeric NOT NULL, v text, PRIMARY KEY (dataset, k))"
    pg_psql src -c "CREATE SCHEMA $S" -c "SET search_path TO $S" -c "$ddl" \
        -c "INSERT INTO nkey VALUES ('public.ds_1', 1.0, 'a'), ('public.ds_1', 2, 'b')" >/dev/null
    pg_psql tgt -c "CREATE SCHEMA $S" -c "SET search_path TO $S" -c "$ddl" >/dev/null
    TABLES_INI='
[table nkey]
key = dataset, k
'
    src_ini
    tgt_ini
    job nightly "public.ds_1" "skip_unchanged=false"
    b=$(mkbundle nightly)
    imp_ok "$b"
    pg_query src "UPDATE $S.nkey SET k = 1.00 WHERE k = 1" >/dev/null
    b=$(mkbundle nightly)
    imp_ok "$b"
    printed_counts nkey 0 1 0 1
    [ "$(tgt1 "SELECT string_agg(k::text, ' ' ORDER BY k) FROM $S.nkey")" = "1.00 2" ]
    b=$(mkbundle nightly)
    imp_ok "$b"
    printed_counts nkey 0 0 0 2
}

# ------------------------------------------------------------------ references

# The parent/child pair with ids each database assigns itself.
REF_DDL='
CREATE TABLE par (id bigserial PRIMARY KEY, dataset text NOT NULL, name text NOT NULL, note text,
                  UNIQUE (dataset, name));
CREATE TABLE kid (id bigserial PRIMARY KEY, dataset text NOT NULL, kname text NOT NULL,
                  par_id bigint REFERENCES par (id), UNIQUE (dataset, kname));'
REF_INI='
[table par]
key = dataset, name
generated = id

[table kid]
key = dataset, kname
generated = id
'

# kids NODE — each kid with the parent it points at, by name: "dataset kname -> dataset name".
kids() {
    pg_query "$1" "SELECT string_agg(k.dataset || ' ' || k.kname || ' -> ' || coalesce(p.dataset || ' ' || p.name, '-'), ', '
                                     ORDER BY k.dataset, k.kname)
                   FROM $S.kid k LEFT JOIN $S.par p ON p.id = k.par_id WHERE k.dataset IN ('d1', 'd2')"
}

@test "references to generated ids follow their parents: every child points at its own parent, re-parented and deleted too" {
    S=refs
    pg_psql src -c "CREATE SCHEMA $S" -c "SET search_path TO $S" -c "$REF_DDL" \
        -c "INSERT INTO par (dataset, name) VALUES ('d1', 'a'), ('d1', 'b'), ('d2', 'a')" \
        -c "INSERT INTO kid (dataset, kname, par_id) VALUES ('d1', 'k1', 1), ('d1', 'k2', 2), ('d1', 'k3', NULL), ('d2', 'k4', 3)" >/dev/null
    # the target's own datasets take the ids the source's rows have
    pg_psql tgt -c "CREATE SCHEMA $S" -c "SET search_path TO $S" -c "$REF_DDL" \
        -c "INSERT INTO par (dataset, name) SELECT 'qa', 'p' || g FROM generate_series(1, 5) g" \
        -c "INSERT INTO kid (dataset, kname, par_id) SELECT 'qa', 'q' || g, g FROM generate_series(1, 5) g" >/dev/null
    TABLES_INI=$REF_INI
    src_ini
    tgt_ini
    job nightly "d1, d2" "skip_unchanged=false"
    qa=$(tgt1 "SELECT string_agg(k::text, ' ' ORDER BY k.id) FROM $S.kid k WHERE dataset = 'qa'")
    b=$(mkbundle nightly)
    [ "$(bsdtar -xOf "$b" manifest.json | grep -o '"version": *[0-9]*' | tr -d ' ')" = '"version":2' ]
    imp_ok "$b"
    [ "$(kids tgt)" = "d1 k1 -> d1 a, d1 k2 -> d1 b, d1 k3 -> -, d2 k4 -> d2 a" ]
    [ "$(kids tgt)" = "$(kids src)" ]
    [ "$(tgt1 "SELECT string_agg(k::text, ' ' ORDER BY k.id) FROM $S.kid k WHERE dataset = 'qa'")" = "$qa" ]

    # re-parented under a new parent, the old one deleted; another set to NULL
    pg_psql src -c "SET search_path TO $S" -c "INSERT INTO par (dataset, name) VALUES ('d1', 'c')" \
        -c "UPDATE kid SET par_id = (SELECT id FROM par WHERE dataset = 'd1' AND name = 'c') WHERE kname = 'k1'" \
        -c "UPDATE kid SET par_id = NULL WHERE kname = 'k2'" -c "DELETE FROM par WHERE dataset = 'd1' AND name = 'a'" >/dev/null
    b=$(mkbundle nightly)
    imp_ok "$b"
    printed_counts par 1 0 1 2
    printed_counts kid 0 2 0 2
    [ "$(kids tgt)" = "d1 k1 -> d1 c, d1 k2 -> -, d1 k3 -> -, d2 k4 -> d2 a" ]
    [ "$(kids tgt)" = "$(kids src)" ]
    [ "$(tgt1 "SELECT string_agg(k::text, ' ' ORDER BY k.id) FROM $S.kid k WHERE dataset = 'qa'")" = "$qa" ]
    # unchanged the next time: the translated references compare equal
    b=$(mkbundle nightly)
    imp_ok "$b"
    printed_counts kid 0 0 0 4

    # a child pointing at a parent of a dataset the bundle does not carry
    pg_psql src -c "SET search_path TO $S" -c "INSERT INTO par (dataset, name) VALUES ('d3', 'z')" \
        -c "UPDATE kid SET par_id = (SELECT id FROM par WHERE dataset = 'd3') WHERE kname = 'k3'" >/dev/null
    b=$(mkbundle nightly)
    state=$(tgt1 "SELECT md5(string_agg(k::text, ' ' ORDER BY k.id)) FROM $S.kid k")
    imp "$b"
    expect_refusal 2 "kid: 1 rows reference par rows the bundle does not hold (foreign key kid_par_id_fkey)"
    [[ $stderr == *"'d1', 'k3' -> "* ]]
    [ "$(tgt1 "SELECT md5(string_agg(k::text, ' ' ORDER BY k.id)) FROM $S.kid k")" = "$state" ]
}

@test "a target foreign key to a generated column the bundle does not carry is refused; a table referencing its own generated id too" {
    S=refmiss
    # the source has no foreign key: its ids do not travel as references
    pg_psql src -c "CREATE SCHEMA $S" -c "SET search_path TO $S" \
        -c "$(sed 's/ REFERENCES par (id)//' <<<"$REF_DDL")" \
        -c "INSERT INTO par (dataset, name) VALUES ('d1', 'a')" -c "INSERT INTO kid (dataset, kname, par_id) VALUES ('d1', 'k1', 1)" >/dev/null
    pg_psql tgt -c "CREATE SCHEMA $S" -c "SET search_path TO $S" -c "$REF_DDL" >/dev/null
    TABLES_INI=$REF_INI
    src_ini
    tgt_ini
    job nightly "d1"
    b=$(mkbundle nightly)
    imp "$b"
    expect_refusal 2 "foreign key kid_par_id_fkey of kid references par.id, which the bundle does not carry"
    [ "$(tgt1 "SELECT count(*) FROM $S.par")" = 0 ]

    # the other way round: the source's ids travel as references, but no
    # foreign key of the target says which column reads them
    S=refnofk
    pg_psql src -c "CREATE SCHEMA $S" -c "SET search_path TO $S" -c "$REF_DDL" \
        -c "INSERT INTO par (dataset, name) VALUES ('d1', 'a')" -c "INSERT INTO kid (dataset, kname, par_id) VALUES ('d1', 'k1', 1)" >/dev/null
    pg_psql tgt -c "CREATE SCHEMA $S" -c "SET search_path TO $S" -c "$(sed 's/ REFERENCES par (id)//' <<<"$REF_DDL")" >/dev/null
    src_ini
    tgt_ini
    job nightly "d1"
    job kids "d1" "tables=kid"
    b=$(mkbundle nightly)
    imp "$b"
    expect_refusal 2 "the bundle carries par.id as a reference (the source has a foreign key to it), but no foreign key of this database follows it"
    [ "$(tgt1 "SELECT count(*) FROM $S.par")" = 0 ]
    # the child without its parent: its ids name rows of this database's own numbering
    pg_psql tgt -c "ALTER TABLE $S.kid ADD FOREIGN KEY (par_id) REFERENCES $S.par (id)" \
        -c "INSERT INTO $S.par (dataset, name) VALUES ('qa', 'x')" >/dev/null
    b=$(mkbundle kids)
    imp "$b"
    expect_refusal 2 "references par.id, which this database assigns itself, but the bundle does not carry par"
    [[ $stderr == *"export par together with kid"* ]]
    [ "$(tgt1 "SELECT count(*) FROM $S.kid")" = 0 ]

    S=refself
    local ddl="CREATE TABLE node (id bigserial PRIMARY KEY, dataset text NOT NULL, name text NOT NULL,
                                  up bigint REFERENCES node (id), UNIQUE (dataset, name))"
    pg_psql src -c "CREATE SCHEMA $S" -c "SET search_path TO $S" -c "$ddl" \
        -c "INSERT INTO node (dataset, name, up) VALUES ('d1', 'root', NULL), ('d1', 'leaf', 1)" >/dev/null
    pg_psql tgt -c "CREATE SCHEMA $S" -c "SET search_path TO $S" -c "$ddl" >/dev/null
    TABLES_INI='
[table node]
key = dataset, name
generated = id
'
    src_ini
    tgt_ini
    job nightly "d1"
    b=$(mkbundle nightly)
    imp "$b"
    expect_refusal 2 "foreign key node_up_fkey of node references its own table's id"
    [ "$(tgt1 "SELECT count(*) FROM $S.node")" = 0 ]
}

# ------------------------------------------------------------------ order

@test "apply order: a row re-parented under a new row of its own table and its old parent deleted; a value swapped under a deferrable constraint" {
    S=applyorder
    local ddl="CREATE TABLE node (id integer PRIMARY KEY, dataset text NOT NULL, up integer REFERENCES node (id));
               CREATE TABLE sw (dataset text NOT NULL, k integer NOT NULL, code text NOT NULL,
                                PRIMARY KEY (dataset, k), CONSTRAINT sw_code UNIQUE (code) DEFERRABLE)"
    pg_psql src -c "CREATE SCHEMA $S" -c "SET search_path TO $S" -c "$ddl" \
        -c "INSERT INTO node VALUES (1, 'd1', NULL), (2, 'd1', 1)" \
        -c "INSERT INTO sw VALUES ('d1', 1, 'x'), ('d1', 2, 'y')" >/dev/null
    pg_psql tgt -c "CREATE SCHEMA $S" -c "SET search_path TO $S" -c "$ddl" >/dev/null
    TABLES_INI='
[table node]
key = id

[table sw]
key = dataset, k
'
    src_ini
    tgt_ini
    job nightly "d1"
    b=$(mkbundle nightly)
    imp_ok "$b"
    # a new root, the old one's child moved under it, the old root gone; codes swapped
    pg_psql src -c "SET search_path TO $S" -c "INSERT INTO node VALUES (3, 'd1', NULL)" \
        -c "UPDATE node SET up = 3 WHERE id = 2" -c "DELETE FROM node WHERE id = 1" \
        -c "UPDATE sw SET code = CASE code WHEN 'x' THEN 'y' ELSE 'x' END" >/dev/null
    b=$(mkbundle nightly)
    imp_ok "$b"
    printed_counts node 1 1 1 0
    [ "$(tgt1 "SELECT string_agg(id || ':' || coalesce(up::text, '-'), ' ' ORDER BY id) FROM $S.node")" = "2:3 3:-" ]
    [ "$(tgt1 "SELECT string_agg(k || ':' || code, ' ' ORDER BY k) FROM $S.sw")" = "1:y 2:x" ]

    # the same swap under a constraint checked row by row: refused, named, with the way out
    pg_query tgt "ALTER TABLE $S.sw DROP CONSTRAINT sw_code, ADD CONSTRAINT sw_code UNIQUE (code)" >/dev/null
    pg_query src "UPDATE $S.sw SET code = CASE code WHEN 'x' THEN 'y' ELSE 'x' END" >/dev/null
    b=$(mkbundle nightly)
    imp "$b"
    expect_refusal 2 'sw_code'
    [[ $stderr == *"Key (code)="* ]]
    [[ $stderr == *"make the constraint DEFERRABLE"* ]]
    [ "$(tgt1 "SELECT string_agg(k || ':' || code, ' ' ORDER BY k) FROM $S.sw")" = "1:y 2:x" ]
}

@test "apply order: a row whose key changed leaves its unique values to its successor; a row moves to another dataset under its id" {
    # the old rows of a table nothing references leave before the new ones go in
    S=applyorder2
    local ddl="CREATE TABLE t (dataset text NOT NULL, code text NOT NULL, name text NOT NULL,
                               PRIMARY KEY (dataset, code), UNIQUE (dataset, name));
               CREATE TABLE m (id integer PRIMARY KEY, dataset text NOT NULL, v text)"
    pg_psql src -c "CREATE SCHEMA $S" -c "SET search_path TO $S" -c "$ddl" \
        -c "INSERT INTO t VALUES ('d1', 'c1', 'n1')" -c "INSERT INTO m VALUES (1, 'd1', 'x')" >/dev/null
    pg_psql tgt -c "CREATE SCHEMA $S" -c "SET search_path TO $S" -c "$ddl" >/dev/null
    TABLES_INI='
[table t]
key = dataset, code

[table m]
key = id
'
    src_ini
    tgt_ini
    job nightly "d%"
    b=$(mkbundle nightly)
    imp_ok "$b"
    pg_psql src -c "SET search_path TO $S" -c "UPDATE t SET code = 'c2'" -c "UPDATE m SET dataset = 'd2'" >/dev/null
    b=$(mkbundle nightly)
    imp_ok "$b"
    printed_counts t 1 0 1 0
    printed_counts m 1 0 1 0
    [ "$(tgt1 "SELECT string_agg(dataset || code || name, ' ') FROM $S.t")" = "d1c2n1" ]
    [ "$(tgt1 "SELECT string_agg(id || dataset || v, ' ') FROM $S.m")" = "1d2x" ]
}

# ------------------------------------------------------------------ sequences

@test "--dry-run leaves every sequence where it was and says where it would move them; a failed import too; a real one moves them" {
    S=seqs
    pg_load_metastore src 2 "$S"
    pg_load_schema tgt "$S"
    TABLES_INI=$(sed '/^generated = id$/d' <<<"$OWL_TABLES_INI")   # ids travel: sequences must move
    src_ini
    tgt_ini
    job nightly "public.ds_%"
    local seqs="SELECT string_agg(sequencename || '=' || coalesce(last_value::text, 'null'), ' ' ORDER BY sequencename) FROM pg_sequences WHERE schemaname = '$S'"
    before=$(tgt1 "$seqs")
    b=$(mkbundle nightly)
    imp --dry-run "$b"
    [ "$status" -eq 0 ]
    [[ $output == *"sequence $S.owl_rule_id_seq would move from 0 to "* ]]
    [ "$(tgt1 "$seqs")" = "$before" ]
    imp --dry-run --json "$b"
    [ "$status" -eq 0 ]
    [ "$(pg_query src "SELECT count(*) FROM jsonb_array_elements('$output'::jsonb->'sequences')")" -ge 9 ]
    # fails on the last table it applies: nothing moved either
    pg_query tgt "ALTER TABLE $S.alert_output ADD CONSTRAINT no CHECK (false) NOT VALID" >/dev/null
    imp "$b"
    [ "$status" -eq 2 ]
    [ "$(tgt1 "$seqs")" = "$before" ]
    pg_query tgt "ALTER TABLE $S.alert_output DROP CONSTRAINT no" >/dev/null
    # fails on a constraint deferred to the end: the dry run says so, and nothing moved
    pg_psql tgt -c "CREATE TABLE $S.names (alert_nm text PRIMARY KEY)" \
        -c "ALTER TABLE $S.alert_output ADD CONSTRAINT late FOREIGN KEY (alert_nm) REFERENCES $S.names DEFERRABLE INITIALLY DEFERRED" >/dev/null
    imp --dry-run "$b"
    expect_refusal 2 "rows rejected by a deferred constraint"
    [[ $stderr == *late* ]]
    imp "$b"
    expect_refusal 2 "rows rejected by a deferred constraint"
    [ "$(tgt1 "$seqs")" = "$before" ]
    pg_query tgt "ALTER TABLE $S.alert_output DROP CONSTRAINT late" >/dev/null
    imp_ok "$b"
    [[ $output == *"sequence $S.owl_rule_id_seq moved from 0 to "* ]]
    [ "$(tgt1 "SELECT last_value FROM $S.owl_rule_id_seq")" = "$(tgt1 "SELECT max(id) FROM $S.owl_rule")" ]
}

# ------------------------------------------------------------------ ledger

@test "the rollback check is per table: jobs of different tables of the same datasets import in any order; an older bundle of one table is superseded" {
    pair roll 2
    job rules "public.ds_1" "tables=owl_rule"
    job sched "public.ds_1" "tables=job_schedule"
    r1=$(mkbundle rules)
    pg_query src "UPDATE $S.job_schedule SET cron = '1 1 * * *' WHERE dataset = 'public.ds_1'" >/dev/null
    s1=$(mkbundle sched)
    imp_ok "$s1"
    imp_ok "$r1"                                   # older than s1, but of another table
    [ "$(tgt1 "SELECT cron FROM $S.job_schedule WHERE dataset = 'public.ds_1'")" = '1 1 * * *' ]
    pg_query src "UPDATE $S.owl_rule SET rule_value = 'r2' WHERE dataset = 'public.ds_1'" >/dev/null
    r2=$(mkbundle rules)
    pg_query src "UPDATE $S.owl_rule SET rule_value = 'r3' WHERE dataset = 'public.ds_1'" >/dev/null
    r3=$(mkbundle rules)
    imp_ok "$r3"
    before=$(tgt_state)
    imp_ok "$r2"
    [[ $output == *"superseded"*"dataset public.ds_1, table owl_rule was imported from bundle 3 of job rules"* ]]
    [ "$(tgt1 "SELECT DISTINCT rule_value FROM $S.owl_rule WHERE dataset = 'public.ds_1'")" = r3 ]
    [ "$(tgt_state)" = "$before" ]
    # a ledger from before the per-table check learns it from the bundles it recorded
    rows=$(tgt_rows true)
    pg_query tgt "DROP TABLE owlsync.dataset_tables" >/dev/null
    imp_ok --json "$r2"
    [[ $output == *'"status": "superseded"'* ]]
    [ "$(tgt_rows true)" = "$rows" ]
    # --allow-rollback applies it
    imp_ok --allow-rollback "$r2"
    [ "$(tgt1 "SELECT DISTINCT rule_value FROM $S.owl_rule WHERE dataset = 'public.ds_1'")" = r2 ]
}

@test "bundles of one job in any order: older ones are superseded (exit 0, nothing written), a mix of older and newer pairs is refused (4)" {
    pair ord 2
    job rules "public.ds_1, public.ds_2" "tables=owl_rule"
    job one "public.ds_1" "tables=owl_rule"
    job two "public.ds_1, public.ds_2" "tables=owl_rule"
    for v in v1 v2 v3; do
        pg_query src "UPDATE $S.owl_rule SET rule_value = '$v' WHERE dataset IN ('public.ds_1', 'public.ds_2')" >/dev/null
        eval "b_$v=\$(mkbundle rules)"
    done
    imp_ok "$b_v3"
    before=$(tgt_state)
    for b in "$b_v1" "$b_v2" "$b_v3"; do
        imp_ok "$b"
        [[ $output == *"superseded"* || $output == *"already imported"* ]]
    done
    [ "$(tgt_state)" = "$before" ]
    [ "$(tgt1 "SELECT count(*) FROM owlsync.bundles WHERE bundle_id IN ('$(owl_bundle_id "$b_v1")', '$(owl_bundle_id "$b_v2")', '$(owl_bundle_id "$b_v3")')")" = 1 ]
    # older than what the target holds for ds_1 (job one, a later snapshot), not
    # for ds_2: taking it would roll ds_1 back, leaving it would lose ds_2's change
    pg_query src "UPDATE $S.owl_rule SET rule_value = 'x' WHERE dataset IN ('public.ds_1', 'public.ds_2')" >/dev/null
    t2=$(mkbundle two)
    pg_query src "UPDATE $S.owl_rule SET rule_value = 'w' WHERE dataset = 'public.ds_1'" >/dev/null
    o1=$(mkbundle one)
    imp_ok "$o1"
    before=$(tgt_state)
    imp "$t2"
    expect_refusal 4 "bundle is older than what this database holds for 1 of its 2 (dataset, table) pairs: dataset public.ds_1, table owl_rule was imported from bundle 1 of job one"
    [ "$(tgt_state)" = "$before" ]
}

@test "a source clock stepped back: a later bundle of the job with an earlier snapshot is applied, with a warning; one made 30 days ahead is refused (4)" {
    pair clock 2
    job rules "public.ds_1" "tables=owl_rule"
    pg_query src "UPDATE $S.owl_rule SET rule_value = 'a' WHERE dataset = 'public.ds_1'" >/dev/null
    b1=$(mkbundle rules)
    imp_ok "$b1"
    pg_query src "UPDATE $S.owl_rule SET rule_value = 'b' WHERE dataset = 'public.ds_1'" >/dev/null
    b2=$(mkbundle rules)
    # bundle 2 as a source whose clock stepped back an hour would have made it
    unpack "$b2" "$W/back"
    edit_manifest "$W/back" "m || jsonb_build_object(
        'snapshot_at', to_char(((m->>'snapshot_at')::timestamptz - interval '1 hour') AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),
        'created_at', to_char(((m->>'created_at')::timestamptz - interval '1 hour') AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'))"
    resign "$K/prod.key" "$W/back" "$W/back.owlb"
    imp_ok "$W/back.owlb"
    [[ $stderr == *"sequence and its snapshot time"*"disagree"* ]]
    [[ $output == *"imported bundle 2 of prod/rules"* ]]
    [ "$(tgt1 "SELECT DISTINCT rule_value FROM $S.owl_rule WHERE dataset = 'public.ds_1'")" = b ]
    # and bundle 1 (an earlier sequence, a later snapshot) is not newer than it: no rollback
    imp_ok "$b1"
    [ "$(tgt1 "SELECT DISTINCT rule_value FROM $S.owl_rule WHERE dataset = 'public.ds_1'")" = b ]

    pg_query src "UPDATE $S.owl_rule SET rule_value = 'c' WHERE dataset = 'public.ds_1'" >/dev/null
    b3=$(mkbundle rules)
    unpack "$b3" "$W/ahead"
    edit_manifest "$W/ahead" "m || jsonb_build_object(
        'snapshot_at', to_char(((m->>'snapshot_at')::timestamptz + interval '30 days') AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),
        'created_at', to_char(((m->>'created_at')::timestamptz + interval '30 days') AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),
        'expires_at', to_char(((m->>'expires_at')::timestamptz + interval '30 days') AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'))"
    resign "$K/prod.key" "$W/ahead" "$W/ahead.owlb"
    before=$(tgt_state)
    imp "$W/ahead.owlb"
    expect_refusal 4 "s ahead of this host's clock (max_clock_skew is 300 s)"
    [ "$(tgt_state)" = "$before" ]
    # a target that allows more skew takes it (a dry run: the ledger is shared,
    # and a snapshot 30 days ahead would hold back the other tests' bundles)
    tgt_ini "max_clock_skew = 40d"
    imp_ok --dry-run "$W/ahead.owlb"
}

# ------------------------------------------------------------------ deletes

@test "a dataset deleted at the source travels empty and is removed at the target; a named one too; a name never seen is still an error" {
    pair gone 3
    job nightly "public.ds_%"
    job named "public.ds_1, public.ds_3"
    b=$(mkbundle nightly)
    imp_ok "$b"
    other=$(tgt_rows "dataset NOT IN ('public.ds_2')" true)
    local t sql="SET search_path TO $S;"
    for t in alert_output $OWL_TABLES; do   # the child first
        [ "$t" = rule_repo ] || sql+="DELETE FROM $t WHERE dataset = 'public.ds_2';"
    done
    pg_psql src -c "$sql" >/dev/null
    b=$(mkbundle nightly)
    [ "$(bsdtar -xOf "$b" manifest.json | grep -c '"public.ds_2"')" = 1 ]
    imp_ok "$b"
    printed_counts owl_rule 0 0 20 40
    [ "$(tgt1 "SELECT count(*) FROM $S.owl_rule WHERE dataset = 'public.ds_2'")" = 0 ]
    [ "$(tgt_rows "dataset NOT IN ('public.ds_2')" true)" = "$other" ]
    same_as_src "dataset LIKE 'public.ds_%'"

    # a named dataset: once seen, its deletion travels; never seen, a typo
    b=$(mkbundle named)
    imp_ok "$b"
    pg_psql src -c "$(sed 's/public.ds_2/public.ds_3/g' <<<"$sql")" >/dev/null
    b=$(mkbundle named)
    imp_ok "$b"
    [ "$(tgt1 "SELECT count(*) FROM $S.owl_catalog WHERE dataset = 'public.ds_3'")" = 0 ]
    job typo "public.ds_1, public.ds_33"
    run --separate-stderr "$OWLSYNC" -c "$W/src.ini" export -j typo --quiet
    [ "$status" -eq 2 ]
    [[ $stderr == *"dataset public.ds_33 matches no row in any chosen table"* ]]
}
