#!/usr/bin/env bats
# Encrypted bundles (format version 2), end to end: encryption key pairs,
# export jobs with encrypt_to, and targets that decrypt (decrypt_key) and may
# require it (require_encryption); the hostile bundles of the bundle and
# import suites refused for the same reasons once encrypted to the target.

bats_require_minimum_version 1.5.0
load ../lib/pg
load ../lib/owl
load ../lib/import

OWLSYNC=${OWLSYNC:-$BATS_TEST_DIRNAME/../../owlsync}
TABLES_INI=$OWL_TABLES_INI

setup_file() {
    import_setup_file prod other
    local k
    for k in qa uat; do
        "$OWLSYNC" keygen --encryption -o "$BATS_FILE_TMPDIR/keys/$k.enc" >/dev/null 2>&1 || return 1
    done
}

teardown_file() {
    pg_stop_all
}

setup() {
    import_setup
    QA_ID=$(key_id "$K/qa.enc")
    UAT_ID=$(key_id "$K/uat.enc")
}

# key_id SECRET — the key id keygen printed for it (its .pub, through check's
# view of it: the first 8 bytes of BLAKE2b-256 of the key, in hex).
key_id() {
    python3 - "$1.pub" <<'PY'
import base64, hashlib, sys
tok = open(sys.argv[1]).read().strip()
print(hashlib.blake2b(base64.b64decode(tok.split(":", 1)[1]), digest_size=32).hexdigest()[:16])
PY
}

# enc_ledger_count BUNDLE — ledger rows for an encrypted bundle (its id read
# through the target's decryption key).
enc_ledger_count() {
    local id
    id=$("$OWLSYNC" -c "$W/tgt.ini" inspect "$1" | awk '$1 == "bundle" && $2 == "id" { print $3 }')
    [[ $id =~ ^[0-9a-f]{32}$ ]] || { echo "no bundle id in $1" >&2; return 1; }
    pg_query tgt "SELECT count(*) FROM owlsync.bundles WHERE bundle_id = '$id'" 2>/dev/null || echo 0
}

seal() { # IN OUT PUB…
    "${SEAL:?SEAL must name the seal test tool (make test sets it)}" "$@"
}

@test "keygen --encryption writes a 0600 secret and an x25519 token; neither kind of key is taken for the other" {
    run "$OWLSYNC" keygen --encryption -o "$W/e1"
    [ "$status" -eq 0 ]
    [ "$(stat -c %a "$W/e1")" = 600 ]
    [[ ${lines[-1]} =~ ^owlsync-x25519:[A-Za-z0-9+/]{43}=$ ]]
    [ "${lines[-1]}" = "$(cat "$W/e1.pub")" ]
    [[ $output == *"key id $(key_id "$W/e1")"* ]]
    run "$OWLSYNC" keygen --encryption -o "$W/e1"
    [ "$status" -eq 2 ]
    [[ $output == *"already exists"* ]]

    pair kinds 1
    # an encryption public key is no trusted signing key, and the other way round
    tgt_ini "trusted_key = prod $K/qa.enc.pub"
    run "$OWLSYNC" -c "$W/tgt.ini" verify "$W/nosuch.owlb"
    [ "$status" -eq 2 ]
    [[ $output == *"does not hold an owlsync public key"* ]]
    tgt_ini "decrypt_key = $K/prod.key"
    run "$OWLSYNC" -c "$W/tgt.ini" verify "$W/nosuch.owlb"
    [ "$status" -eq 2 ]
    [[ $output == *"is a signing key, not an encryption key"* ]]
    job bad1 "public.ds_%" "encrypt_to=qa $K/prod.key.pub"
    run "$OWLSYNC" -c "$W/src.ini" export -j bad1
    [ "$status" -eq 2 ]
    [[ $output == *"does not hold an owlsync encryption public key"* ]]
    printf '[export bad2]\ndatasets = public.ds_1\noutbox = %s\nsigning_key = %s\n' "$W/out" "$K/qa.enc" >>"$W/src.ini"
    run "$OWLSYNC" -c "$W/src.ini" export -j bad2
    [ "$status" -eq 2 ]
    [[ $output == *"is an encryption key, not a signing key"* ]]
    # a decryption key others can read is refused
    cp "$K/qa.enc" "$W/loose.enc"
    chmod 0640 "$W/loose.enc"
    tgt_ini "decrypt_key = $W/loose.enc"
    run "$OWLSYNC" -c "$W/tgt.ini" verify "$W/nosuch.owlb"
    [ "$status" -eq 2 ]
    [[ $output == *"accessible by group or others (mode 0640)"* ]]
    # require_encryption without a key to decrypt with can import nothing
    tgt_ini "require_encryption = true"
    run "$OWLSYNC" -c "$W/tgt.ini" verify "$W/nosuch.owlb"
    [ "$status" -eq 2 ]
    [[ $output == *"require_encryption"*"no decrypt_key"* ]]
}

@test "an encrypted promotion: nothing of the manifest or rows shows in the file; verify, inspect and import with the key" {
    pair enc 2
    job sec "public.ds_%" "encrypt_to=qa $K/qa.enc.pub"
    b=$(mkbundle sec)
    [ "$(head -c 11 "$b")" = OWLSYNC-ENC ]
    # what a reader without the key learns: no name, no value, not even the compression
    for s in manifest.json manifest.sig owlsync-bundle public.ds_1 owl_rule "$S" prod; do
        if grep -aqF -- "$s" "$b"; then
            echo "'$s' is readable in the encrypted bundle" >&2
            return 1
        fi
    done
    run zstd -t -q "$b"
    [ "$status" -ne 0 ]

    # inspect without the key: that it is encrypted, and for which key
    run "$OWLSYNC" inspect "$b"
    [ "$status" -eq 0 ]
    [[ $output == *"encrypted"*"yes"* ]]
    [[ $output == *"recipients   $QA_ID"* ]]
    [[ $output != *"environment"* ]]
    [[ $output != *"owl_rule"* ]]
    run "$OWLSYNC" inspect --json "$b"
    [ "$status" -eq 0 ]
    [ "$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(d["encrypted"], d["recipients"], sorted(d))' "$output")" = \
      "True ['$QA_ID'] ['encrypted', 'file', 'recipients']" ]

    tgt_ini "decrypt_key = $K/qa.enc"
    # inspect with the target's config decrypts
    run "$OWLSYNC" -c "$W/tgt.ini" inspect "$b"
    [ "$status" -eq 0 ]
    [[ $output == *"environment  prod"* ]]
    [[ $output == *"job          sec"* ]]
    # verify: with the config's keys, and with -k and -K
    run "$OWLSYNC" -c "$W/tgt.ini" verify "$b"
    [ "$status" -eq 0 ]
    [[ $output == *": ok, encrypted (opened with key $QA_ID), signed by key"*"for environment prod"* ]]
    run "$OWLSYNC" verify -k "$K/prod.key.pub" -K "$K/qa.enc" "$b"
    [ "$status" -eq 0 ]
    # without a decryption key: refused (3), naming the key it was made for
    run "$OWLSYNC" verify -k "$K/prod.key.pub" "$b"
    [ "$status" -eq 3 ]
    [[ $output == *"bundle is encrypted for key $QA_ID, and no decryption key is configured"* ]]

    imp_ok "$b"
    same_as_src "dataset LIKE 'public.ds_%'"
    [ "$(enc_ledger_count "$b")" = 1 ]
    # an ad hoc export takes the first job's encrypt_to, as it takes its signing key
    mkdir -p "$W/adhoc"
    a=$("$OWLSYNC" -c "$W/src.ini" export -d public.ds_1 -o "$W/adhoc" --quiet)
    [ "$(head -c 11 "$a")" = OWLSYNC-ENC ]
    run "$OWLSYNC" -c "$W/tgt.ini" verify "$a"
    [ "$status" -eq 0 ]
    imp_ok "$b"
    [[ $output == *"already imported"* ]]
}

@test "a bundle encrypted for another environment is refused (3), naming the key ids it was made for; several recipients each open it" {
    pair other 2
    job foruat "public.ds_%" "encrypt_to=uat $K/uat.enc.pub"
    job forboth "public.ds_%" "encrypt_to=uat $K/uat.enc.pub" "encrypt_to=qa $K/qa.enc.pub"
    tgt_ini "decrypt_key = $K/qa.enc"
    state=$(tgt_state)
    b=$(mkbundle foruat)
    imp "$b"
    expect_refusal 3 "bundle is encrypted for key $UAT_ID, not for this environment's decryption key"
    [ "$(tgt_state)" = "$state" ]
    run "$OWLSYNC" -c "$W/tgt.ini" verify "$b"
    [ "$status" -eq 3 ]
    [[ $output == *"encrypted for key $UAT_ID"* ]]

    b2=$(mkbundle forboth)
    run "$OWLSYNC" inspect "$b2"
    [[ $output == *"recipients   $UAT_ID, $QA_ID"* ]]
    run "$OWLSYNC" verify -k "$K/prod.key.pub" -K "$K/uat.enc" "$b2"
    [ "$status" -eq 0 ]
    run "$OWLSYNC" verify -k "$K/prod.key.pub" -K "$K/qa.enc" "$b2"
    [ "$status" -eq 0 ]
    # a stranger's key opens neither; both ids are named
    "$OWLSYNC" keygen --encryption -o "$W/stranger.enc" >/dev/null 2>&1
    run "$OWLSYNC" verify -k "$K/prod.key.pub" -K "$W/stranger.enc" "$b2"
    [ "$status" -eq 3 ]
    [[ $output == *"bundle is encrypted for keys $UAT_ID and $QA_ID, not for this environment's decryption key"* ]]
    imp_ok "$b2"
    same_as_src "dataset LIKE 'public.ds_%'"
}

@test "require_encryption: a plaintext bundle is refused by policy (4) and writes nothing; an encrypted one is imported" {
    pair req 2
    job plain "public.ds_%"
    job sec "public.ds_%" "encrypt_to=qa $K/qa.enc.pub"
    tgt_ini "decrypt_key = $K/qa.enc" "require_encryption = true"
    state=$(tgt_state)
    b=$(mkbundle plain)
    imp "$b"
    expect_refusal 4 "bundle is not encrypted, and this environment requires encryption"
    [ "$(tgt_state)" = "$state" ]
    [ "$(ledger_count "$b")" = 0 ]
    # the same target without the requirement takes it: the policy was the reason
    tgt_ini "decrypt_key = $K/qa.enc"
    imp --dry-run "$b"
    [ "$status" -eq 0 ]
    tgt_ini "decrypt_key = $K/qa.enc" "require_encryption = true"
    b2=$(mkbundle sec)
    imp_ok "$b2"
    same_as_src "dataset LIKE 'public.ds_%'"
}

@test "a flipped byte anywhere in an encrypted bundle's header, and in its body, a truncation or an appended byte: refused (3)" {
    pair flip 1
    job sec "public.ds_%" "encrypt_to=uat $K/uat.enc.pub" "encrypt_to=qa $K/qa.enc.pub" compression=none
    b=$(mkbundle sec)
    size=$(stat -c %s "$b")
    hl=$((14 + 2 * 88 + 24))
    tgt_ini "decrypt_key = $K/qa.enc"
    state=$(tgt_state)
    cp "$b" "$W/f.owlb"
    for off in $(seq 0 3 $((hl + 40))) $(seq $((hl + 41)) 997 $((size - 1))) $((size - 17)) $((size - 1)); do
        flip_byte "$W/f.owlb" "$off"
        run "$OWLSYNC" -c "$W/tgt.ini" verify "$W/f.owlb"
        [ "$status" -eq 3 ] || { echo "offset $off: $status $output"; return 1; }
        flip_byte "$W/f.owlb" "$off"
    done
    cmp "$b" "$W/f.owlb"
    for len in 1 11 13 14 $((hl - 1)) "$hl" $((hl + 17)) $((size / 2)) $((size - 1)); do
        head -c "$len" "$b" >"$W/t.owlb"
        run "$OWLSYNC" -c "$W/tgt.ini" verify "$W/t.owlb"
        [ "$status" -eq 3 ] || { echo "length $len: $status $output"; return 1; }
    done
    { cat "$b"; printf x; } >"$W/a.owlb"
    run "$OWLSYNC" -c "$W/tgt.ini" verify "$W/a.owlb"
    [ "$status" -eq 3 ]
    [[ $output == *"encrypted bundle"* ]]
    # an encrypted bundle encrypted again
    seal "$b" "$W/twice.owlb" "$K/qa.enc.pub"
    run "$OWLSYNC" -c "$W/tgt.ini" verify "$W/twice.owlb"
    [ "$status" -eq 3 ]
    [[ $output == *"bundle is encrypted more than once"* ]]
    # import of a damaged one writes nothing
    cp "$b" "$W/f.owlb"
    flip_byte "$W/f.owlb" $((size / 2))
    imp "$W/f.owlb"
    expect_refusal 3 "encrypted bundle does not authenticate"
    [ "$(tgt_state)" = "$state" ]
    imp_ok "$b"
}

# hostile NAME — writes hostile bundle $H/NAME.owlb from the entries of the
# good plaintext bundle unpacked in $X ($E: their names, in order).
repack() { # NAME ENTRY…
    local out="$H/$1.owlb"
    shift
    (cd "$X" && bsdtar --format ustar -cf - "$@") | zstd -q -c >"$out"
}

@test "the hostile bundles, encrypted to the target's key, are refused after decryption (3) for the same reason as in plaintext, and import writes nothing" {
    : "${GZCRAFT:?GZCRAFT must name the gzcraft test tool (make test sets it)}"
    pair hostile 2
    job plain "public.ds_1, public.ds_2" compression=none
    job zplain "public.ds_1, public.ds_2"
    tgt_ini "decrypt_key = $K/qa.enc" "max_unpacked_size = 4M"
    NONE=$(mkbundle plain)
    GOOD=$(mkbundle zplain)
    H=$W/h X=$W/x
    mkdir -p "$H" "$W/s"
    unpack "$GOOD" "$X"
    mapfile -t E < <(bsdtar -tf "$GOOD")

    # the hostile suite of 10_bundle_cli.bats and 30_import.bats
    repack missing "${E[@]:0:${#E[@]}-1}"
    cp "$X/${E[2]}" "$X/data/extra.tsv"
    repack extra "${E[@]}" data/extra.tsv
    rm "$X/data/extra.tsv"
    repack reorder "${E[1]}" "${E[0]}" "${E[@]:2}"
    repack datareorder "${E[0]}" "${E[1]}" "${E[3]}" "${E[2]}" "${E[@]:4}"
    (cd "$X" && bsdtar --format ustar -cf - "${E[@]}") | zstd -q -c >"$H/repacked.owlb"
    for bad in ../x /etc/x data/../../x; do
        (cd "$X" && bsdtar -P --format ustar -s ",^${E[2]}\$,$bad," -cf - "${E[@]}") | zstd -q -c >"$H/path-${bad//\//_}.owlb"
    done
    printf '#mtree\n%s type=link link=/etc/passwd\n' "${E[2]}" >"$W/link.mtree"
    bsdtar --format ustar -cf - -C "$X" "${E[0]}" "${E[1]}" -C "$W" "@$W/link.mtree" | zstd -q -c >"$H/symlink.owlb"
    printf '#mtree\n%s type=char device=native,1,3\n' "${E[2]}" >"$W/dev.mtree"
    bsdtar --format ustar -cf - -C "$X" "${E[0]}" "${E[1]}" -C "$W" "@$W/dev.mtree" | zstd -q -c >"$H/device.owlb"
    (cd "$X" && bsdtar --format zip -cf "$H/zip.owlb" "${E[@]}")
    rm -rf "$W/big" && mkdir -p "$W/big" && head -c $((5 * 1024 * 1024)) /dev/zero >"$W/big/manifest.json"
    (cd "$W/big" && bsdtar --format ustar -cf - manifest.json) | zstd -q -c >"$H/bigmanifest.owlb"
    rm -rf "$W/grow" && cp -r "$X" "$W/grow" && echo "extra row" >>"$W/grow/${E[2]}"
    (cd "$W/grow" && bsdtar --format ustar -cf - "${E[@]}") | zstd -q -c >"$H/grow.owlb"
    rm -rf "$W/bomb" && cp -r "$X" "$W/bomb" && head -c $((64 * 1024 * 1024)) /dev/zero >"$W/bomb/${E[2]}"
    (cd "$W/bomb" && bsdtar --format ustar -cf - "${E[@]}") | zstd -q -c >"$H/bomb.owlb"
    "$GZCRAFT" quine "$H/quine.owlb"
    "$GZCRAFT" name-bomb 4000000000 "$W/name.gz"
    zstd -19 -q -c "$W/name.gz" >"$H/namebomb.owlb"
    size=$(stat -c %s "$NONE")
    for off in 0 155 512 1024 $((size / 2)) $((size - 600)) $((size - 1)); do
        cp "$NONE" "$H/flip$off.owlb"
        flip_byte "$H/flip$off.owlb" "$off"
    done
    for len in 100 $((size / 2)) $((size - 1)); do
        head -c "$len" "$NONE" >"$H/trunc$len.owlb"
    done
    : >"$H/empty.owlb"
    # signed by a key the target does not trust, and with data the manifest does not describe
    unpack "$NONE" "$W/r"
    resign "$K/other.key" "$W/r" "$H/untrusted.owlb"
    mkdir -p "$W/m" && cp -r "$X/." "$W/m/" && printf 'x\ty\n' >>"$W/m/${E[2]}"
    (cd "$W/m" && bsdtar --format ustar -cf - "${E[@]}") | zstd -q -c >"$H/swapped.owlb"

    state=$(tgt_state)
    n=0
    for h in "$H"/*.owlb; do
        name=$(basename "$h")
        seal "$h" "$W/s/$name" "$K/qa.enc.pub"
        run "$OWLSYNC" -c "$W/tgt.ini" verify "$h"
        plain_status=$status plain_out=${output//$H\//}
        [ "$plain_status" -eq 3 ] || { echo "$name (plaintext): $status $output"; return 1; }
        run timeout 20 "$OWLSYNC" -c "$W/tgt.ini" verify "$W/s/$name"
        enc_out=${output//$W\/s\//}
        if [ "$status" -ne 3 ] || [ "$enc_out" != "$plain_out" ]; then
            echo "$name: plaintext: $plain_out" >&2
            echo "$name: encrypted ($status): $enc_out" >&2
            return 1
        fi
        n=$((n + 1))
    done
    echo "# $n hostile bundles, each refused alike encrypted" >&3
    [ "$n" -ge 25 ]
    # import of each writes nothing
    for name in extra.owlb grow.owlb swapped.owlb untrusted.owlb bomb.owlb quine.owlb; do
        imp "$W/s/$name"
        [ "$status" -eq 3 ] || { echo "$name: $status $stderr"; return 1; }
    done
    [ "$(tgt_state)" = "$state" ]
    # the good ones, encrypted the same way, are taken
    seal "$GOOD" "$W/s/good.owlb" "$K/qa.enc.pub"
    imp_ok "$W/s/good.owlb"
    same_as_src "dataset IN ('public.ds_1', 'public.ds_2')"
}
