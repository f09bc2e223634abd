#!/usr/bin/env bash
# Remakes the fuzz harnesses' seed corpora, tests/fuzz/corpus/NAME/, from real
# outputs: owlsync export runs against a throwaway PostgreSQL cluster loaded
# with the stand-in metastore and its hostile sample values (tests/lib/pg.bash,
# sql/metastore.sql, sql/sample.sql), signed with the fuzz harnesses' fixed
# test key (fuzzkey), and the bundles, their manifests and rows are taken
# apart into seeds. Configs are owlsync.ini.example and the ones the run used;
# schedules are the examples of owlsync.ini(5) and the source's job_schedule;
# vendor statements are what the vendor's dump() writes of the same rows.
#
# make fuzz-corpus runs it (OWLSYNC and FUZZKEY set); commit what it writes.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
: "${OWLSYNC:?OWLSYNC must name the owlsync binary}"
: "${FUZZKEY:?FUZZKEY must name the fuzzkey tool (make fuzz-build)}"
command -v bsdtar >/dev/null || { echo "make-corpus: bsdtar missing (make deps)" >&2; exit 1; }

# shellcheck source=tests/lib/pg.bash
. "$root/tests/lib/pg.bash"
# shellcheck source=tests/lib/owl.bash
. "$root/tests/lib/owl.bash"

work=$(mktemp -d "${TMPDIR:-/tmp}/owlsync-corpus.XXXXXX")
export PG_OWNER_PID=$$
cleanup() { pg_stop_all || true; rm -rf "$work"; }
trap cleanup EXIT
chmod 0755 "$work"

pg_start src
pg_load_metastore src 3

"$FUZZKEY" "$work/fuzz.key" >"$work/fuzz.token"
mkdir -p "$work/state" "$work/out"
{
    printf '[owlsync]\nenvironment = prod\nstate_dir = %s\n' "$work/state"
    printf '[database]\nconninfo = %s\nschema = public\n' "$(pg_conninfo src)"
    printf '%s\n' "$OWL_TABLES_INI"
    for job in special:zstd:"public.special, public.o'hara":"owl_catalog, owl_rule, alert_cond, alert_output, owl_check_repo, job_schedule" \
               bulk:gzip:"public.ds_%":"owl_check_repo, job_schedule, dataset_scoring" \
               global:none:"public.ds_1":"rule_repo, owl_check_repo"; do
        IFS=: read -r name comp datasets tables <<<"$job"
        printf '[export %s]\ndatasets = %s\ntables = %s\noutbox = %s\nsigning_key = %s\n' \
            "$name" "$datasets" "$tables" "$work/out" "$work/fuzz.key"
        printf 'compression = %s\nskip_unchanged = false\nvalid_for = 7d\ntargets = qa\n' "$comp"
    done
} >"$work/src.ini"

corpus=$here/corpus
rm -rf "$corpus"
mkdir -p "$corpus"/{bundle,bundle_signed,envelope,manifest,copytext,rewrite,config,cron,vendorsql,retries}

for name in special bulk global; do
    bundle=$(owl_export_one "$work/src.ini" "$name")
    cp "$bundle" "$corpus/bundle/$name.owlb"
    mkdir "$work/$name"
    bsdtar -xf "$bundle" -C "$work/$name"
    cp "$work/$name/manifest.json" "$corpus/manifest/$name.json"
    # bundle_signed: flags (bit 2: fix the manifest up; bits 0-1: zstd, gzip,
    # none), the manifest, then each data entry after "\n@@NAME\n", in the
    # archive's order (the manifest's).
    for flags in 2 4 5 6; do
        {
            # shellcheck disable=SC2059 # the format is the flags' octal escape
            printf "\\$(printf '%03o' "$flags")"
            cat "$work/$name/manifest.json"
            bsdtar -tf "$bundle" | grep '^data/' | while IFS= read -r f; do
                printf '\n@@%s\n' "$f"
                cat "$work/$name/$f"
            done
        } >"$corpus/bundle_signed/$name-$flags"
    done
    for f in "$work/$name"/data/*.tsv; do
        t=${f##*/}
        t=${t%.tsv}
        [ -s "$f" ] || continue
        if [ "$t" = owl_check_repo ]; then cp "$f" "$corpus/rewrite/$name.tsv"; fi
        # copytext: each table's rows, no file over 4 KiB (whole rows)
        awk -v max=4096 '{ n += length($0) + 1; if (n > max) exit; print }' "$f" >"$corpus/copytext/$name-$t.tsv"
        [ -s "$corpus/copytext/$name-$t.tsv" ] || rm -f "$corpus/copytext/$name-$t.tsv"
    done
done
# Flags 2 (no fix-up, uncompressed) rebuild the exported archive with the
# same sizes, so offsets into it are known: seeds that write a byte past its
# end, into the last entry's padding and into the end-of-archive blocks, and
# one that cuts its last 512 bytes, show the harness's two operations.
size=$(stat -c %s "$corpus/bundle/global.owlb")
for patch in end:$((size + 100)) pad:$((size - 1025)) eoa:$((size - 1)); do
    off=${patch#*:}
    le32=$(printf '\\%03o\\%03o\\%03o\\%03o' $((off & 255)) $((off >> 8 & 255)) $((off >> 16 & 255)) $((off >> 24 & 255)))
    # shellcheck disable=SC2059 # the format is the offset's octal escapes
    { cat "$corpus/bundle_signed/global-2"; printf '\n@@!patch\n'; printf "$le32"; printf '\001'; } \
        >"$corpus/bundle_signed/global-2-patch-${patch%%:*}"
done
{ cat "$corpus/bundle_signed/global-2"; printf '\n@@!cut\n\000\002'; } >"$corpus/bundle_signed/global-2-cut"

# envelope: each bundle to be encrypted by the harness (flag 1), and one
# encrypted to two keys that are not the harness's (flag 0: the header, and the
# refusal that names them).
for name in special bulk global; do
    { printf '\001'; cat "$corpus/bundle/$name.owlb"; } >"$corpus/envelope/inner-$name"
done
"$OWLSYNC" keygen --encryption -o "$work/a.enc" >/dev/null 2>&1
"$OWLSYNC" keygen --encryption -o "$work/b.enc" >/dev/null 2>&1
"${SEAL:?SEAL must name the seal test tool}" "$corpus/bundle/bulk.owlb" "$work/sealed" "$work/a.enc.pub" "$work/b.enc.pub"
{ printf '\000'; cat "$work/sealed"; } >"$corpus/envelope/sealed-bulk"

# The target side of the same promotion, as the e2e tests write one.
{
    printf '[owlsync]\nenvironment = qa\nstate_dir = /var/lib/owlsync\n'
    printf '[database]\nconninfo = host=/run/postgresql dbname=owl\n'
    printf '%s\n' "$OWL_TABLES_INI"
    printf '[import]\ninbox = /mnt/transfer/inbox\ntrusted_key = prod %s\n' "$(cat "$work/fuzz.token")"
    printf 'max_bundle_size = 64M\nmax_staleness = 36h\n'
    printf '[rewrite connection]\ncolumns = owl_check_repo.conn_name, owl_check_repo.cmd_line\n'
    printf 'match = substring\nfrom = prod_pg\nto = qa_pg\n'
    printf '[rewrite agents]\ncolumns = owl_check_repo.agent_name, job_schedule.agent\n'
    printf 'match = regex\nfrom = prod-agent-([0-9]+)\nto = qa-agent-\\1\n'
} >"$corpus/config/target.ini"
sed -e "s|$work/state|/var/lib/owlsync|" -e "s|$work/out|/mnt/transfer/outbox|" \
    -e "s|$work/fuzz.key|/etc/owlsync/prod.key|" -e "s|^conninfo = .*|conninfo = dbname=owl|" \
    "$work/src.ini" >"$corpus/config/source.ini"
cp "$root/owlsync.ini.example" "$corpus/config/example.ini"

# Schedules: the examples of owlsync.ini(5), the forms it names, and the
# source's job_schedule.cron values.
n=0
{
    sed -n '/^\.SH SCHEDULES/,/^\.SH EXAMPLES/p' "$root/man/owlsync.ini.5" |
        sed -n '/^\.EX/,/^\.EE/p' | grep -v '^\.E' | sed -e 's/\\-/-/g' -e 's/  .*//'
    printf '%s\n' '0 0 30 2 *' '0 9 * jan-mar MON' '5/15 8-18/2 1,15 */3 sun,7'
    pg_query src 'SELECT DISTINCT cron FROM job_schedule ORDER BY 1 LIMIT 8'
} | while IFS= read -r line; do
    [ -n "$line" ] || continue
    n=$((n + 1))
    printf '%s' "$line" >"$corpus/cron/$(printf '%02d' "$n")"
done

# vendorsql: statements of the vendor's own dump() (tests/bench/vendor_dump.sql)
# over the hostile sample values, one per seed, ids included as its function
# writes them; a payload of a few, as its API answers (a JSON list); and shapes
# it must refuse.
pg_psql src -c "SET client_min_messages = warning" -f "$root/tests/bench/vendor_dump.sql" >/dev/null
mkdir -p "$corpus/vendorsql"
n=0
pg_psql src -At -0 -c "SELECT s FROM bench_vendor.dump('public',
        ARRAY['rule_repo', 'owl_catalog', 'owl_rule', 'alert_cond', 'alert_output', 'owl_check_repo'],
        ARRAY['public.special', 'public.o''hara'], ARRAY[]::text[]) s
    WHERE length(s) < 1500 ORDER BY md5(s) LIMIT 12" |
    while IFS= read -r -d '' s; do
        n=$((n + 1))
        printf '%s' "$s" >"$corpus/vendorsql/dump-$(printf '%02d' "$n").sql"
    done
pg_psql src -At -c "SELECT json_agg(s) FROM bench_vendor.dump('public', ARRAY['owl_catalog', 'owl_rule'],
    ARRAY['public.o''hara']) s" | tr -d '\n' >"$corpus/vendorsql/payload-ohara.json"
printf '[]' >"$corpus/vendorsql/payload-empty.json"
printf '%s' "[\"INSERT INTO s.t(a) VALUES ('1');DROP TABLE s.t;\", \"DELETE FROM s.t;\", \"\\u00e9\\ud83e\\udd89\"]" \
    >"$corpus/vendorsql/payload-hostile.json"
printf '%s' "INSERT INTO \"Tenant\"\"1\".t(a,b,c) VALUES (E'x\\\\y''z','',NULL);" >"$corpus/vendorsql/shape-quoted.sql"

# retries: an agent's .work/.retries.AGENT list as a daemon writes it, one with
# what a hand or a stranger may put there, an empty one and a foreign file.
mkdir -p "$corpus/retries"
printf 'owlsync-retries 1\na.owlb\t3\t1800000200\t1800000150\tcanceling statement due to lock timeout\nprod_nightly_20261125T020000Z_000042.owlb\t1\t1800000005\t1800000000\tcould not connect to server: Connection refused\\n\\tIs the server running?\n' \
    >"$corpus/retries/01"
printf 'owlsync-retries 1\na.owlb\t1\t1\t1900000000\ta\033[2Jb\\x1b \xc3\x28 \xc2\x85\nx\\y.owlb\t4\t1\t1\tback\\\\slash\na.owlb\t-1\t1\t1\tneg\nb.owlb\t1\t1\n../a.owlb\t1\t1\t1\tp\na.owlb\t99999999999\t1\t1\tbig\na.owlb\t1\t1\t1\tno end' \
    >"$corpus/retries/02"
printf 'owlsync-retries 1\n' >"$corpus/retries/03"
printf 'not a retry list\n' >"$corpus/retries/04"

du -sh "$corpus"
echo "make-corpus: $(find "$corpus" -type f | wc -l) seeds in $corpus"
