#!/usr/bin/env bats
# keygen, verify and inspect through the real binary, and every hostile bundle
# of the foundation issue refused with exit code 3 and a message naming the cause.

load ../lib/pg

OWLSYNC=${OWLSYNC:-$BATS_TEST_DIRNAME/../../owlsync}

setup_file() {
    export W="$BATS_FILE_TMPDIR/w"
    mkdir -p "$W/out" "$W/state" "$W/x" "$W/craft"
    pg_start src
    pg_load_metastore src 3
    "$OWLSYNC" keygen -o "$W/prod.key" >/dev/null 2>&1
    "$OWLSYNC" keygen -o "$W/other.key" >/dev/null 2>&1
    write_ini zstd >"$W/prod.ini"
    write_ini none >"$W/none.ini"
    export GOOD NONE
    GOOD=$("$OWLSYNC" -c "$W/prod.ini" export -j nightly 2>/dev/null)
    NONE=$("$OWLSYNC" -c "$W/none.ini" export -j plain 2>/dev/null)
    (cd "$W/x" && bsdtar -xf "$GOOD")
    cat >"$W/qa.ini" <<INI
[owlsync]
environment = qa
state_dir = $W/state
[import]
trusted_key = prod $W/prod.key.pub
INI
}

teardown_file() {
    pg_stop_all
}

write_ini() { # COMPRESSION
    cat <<INI
[owlsync]
environment = prod
state_dir = $W/state
[database]
conninfo = $(pg_conninfo src)
[export nightly]
datasets = public.ds_1, public.special
outbox = $W/out
signing_key = $W/prod.key
compression = $1
[export plain]
datasets = public.ds_2
outbox = $W/out
signing_key = $W/prod.key
compression = none
INI
}

verify() { run "$OWLSYNC" verify -k "$W/prod.key.pub" "$1"; }

# The entries of the good bundle, in order.
entries() { bsdtar -tf "$GOOD"; }

# repack NAME ENTRY… — a zstd ustar archive of the extracted entries, in that order
repack() {
    local out="$W/craft/$1.owlb"
    shift
    (cd "$W/x" && bsdtar --format ustar -cf - "$@") | zstd -q -c >"$out"
    echo "$out"
}

expect_refused() { # PATTERN: exit 3, one line naming the cause
    [ "$status" -eq 3 ] || { echo "status $status: $output"; return 1; }
    [[ $output == *"$1"* ]] || { echo "expected '$1' in: $output"; return 1; }
}

@test "keygen writes a 0600 secret and a .pub token, prints the token, never overwrites" {
    run "$OWLSYNC" keygen -o "$W/k1"
    [ "$status" -eq 0 ]
    [ "$(stat -c %a "$W/k1")" = 600 ]
    [[ ${lines[-1]} =~ ^owlsync-ed25519:[A-Za-z0-9+/]{43}=$ ]]
    [ "${lines[-1]}" = "$(cat "$W/k1.pub")" ]
    before=$(sha256sum "$W/k1" "$W/k1.pub")
    run "$OWLSYNC" keygen -o "$W/k1"
    [ "$status" -eq 2 ]
    [[ $output == *"already exists"* ]]
    [ "$before" = "$(sha256sum "$W/k1" "$W/k1.pub")" ]
    run "$OWLSYNC" keygen
    [ "$status" -eq 2 ]
}

@test "a secret key group or others can read is refused" {
    cp "$W/prod.key" "$W/loose.key"
    chmod 0644 "$W/loose.key"
    sed "s|signing_key = $W/prod.key|signing_key = $W/loose.key|" "$W/prod.ini" >"$W/loose.ini"
    run "$OWLSYNC" -c "$W/loose.ini" export -j nightly
    [ "$status" -eq 2 ]
    [[ $output == *"accessible by group or others (mode 0644)"* ]]
    [[ $output == *"chmod 600"* ]]
}

@test "verify accepts the good bundle with -k and with the config's trusted keys" {
    verify "$GOOD"
    [ "$status" -eq 0 ]
    [[ $output == *": ok, signed by key"*"for environment prod"* ]]
    run "$OWLSYNC" -c "$W/qa.ini" verify "$GOOD"
    [ "$status" -eq 0 ]
    verify "$NONE"
    [ "$status" -eq 0 ]
}

@test "inspect shows the manifest, and --json for scripts" {
    run "$OWLSYNC" inspect "$GOOD"
    [ "$status" -eq 0 ]
    [[ $output == *"environment  prod"* ]]
    [[ $output == *"job          nightly"* ]]
    [[ $output == *"sequence     1"* ]]
    [[ $output == *"datasets     2: public.ds_1, public.special"* ]]
    [[ $output == *"not checked"* ]]
    rules=$(pg_query src "SELECT count(*) FROM owl_rule WHERE dataset IN ('public.ds_1', 'public.special')")
    [[ $output =~ owl_rule\ +$rules\  ]]
    run "$OWLSYNC" inspect --json "$GOOD"
    [ "$status" -eq 0 ]
    [[ $output == *'"signature_verified": false'* ]]
    [[ $output == *'"format": "owlsync-bundle"'* ]]
    [[ $output == *'"environment": "prod"'* ]]
}

@test "a key that is not trusted, and one trusted only for another environment, are refused" {
    run "$OWLSYNC" verify -k "$W/other.key.pub" "$GOOD"
    expect_refused "not trusted"
    cat >"$W/uat.ini" <<INI
[owlsync]
environment = qa
state_dir = $W/state
[import]
trusted_key = uat $W/prod.key.pub
INI
    run "$OWLSYNC" -c "$W/uat.ini" verify "$GOOD"
    expect_refused "trusted only for uat"
}

@test "a flipped byte anywhere in an uncompressed bundle is refused" {
    size=$(stat -c %s "$NONE")
    for off in 0 100 155 300 511 512 700 1023 1024 1536 2047 2048 3000 $((size / 2)) $((size - 1025)) $((size - 600)) $((size - 1)); do
        cp "$NONE" "$W/craft/flip.owlb"
        byte=$(od -An -tu1 -j "$off" -N1 "$NONE" | tr -d ' ')
        printf "$(printf '\\%03o' $(((byte ^ 0x20) & 255)))" | dd of="$W/craft/flip.owlb" bs=1 seek="$off" conv=notrunc status=none
        verify "$W/craft/flip.owlb"
        [ "$status" -eq 3 ] || { echo "offset $off passed: $output"; return 1; }
    done
}

@test "a flipped byte in a zstd bundle is refused or changes nothing that is read" {
    size=$(stat -c %s "$GOOD")
    good_tar=$(zstd -dc "$GOOD" | sha256sum)
    for off in $(seq 0 53 $((size - 1))) $((size - 1)); do
        cp "$GOOD" "$W/craft/flip.owlb"
        byte=$(od -An -tu1 -j "$off" -N1 "$GOOD" | tr -d ' ')
        printf "$(printf '\\%03o' $(((byte ^ 0x04) & 255)))" | dd of="$W/craft/flip.owlb" bs=1 seek="$off" conv=notrunc status=none
        verify "$W/craft/flip.owlb"
        if [ "$status" -ne 3 ]; then
            # accepted only when the unpacked archive is byte for byte the signed one
            [ "$status" -eq 0 ] && [ "$(zstd -dc "$W/craft/flip.owlb" 2>/dev/null | sha256sum)" = "$good_tar" ] ||
                { echo "offset $off: status $status, $output"; return 1; }
        fi
    done
}

@test "truncated bundles and an empty file are refused" {
    size=$(stat -c %s "$GOOD")
    for len in 1 10 100 $((size / 2)) $((size - 10)) $((size - 1)); do
        head -c "$len" "$GOOD" >"$W/craft/trunc.owlb"
        verify "$W/craft/trunc.owlb"
        [ "$status" -eq 3 ] || { echo "length $len: $status $output"; return 1; }
    done
    : >"$W/craft/empty.owlb"
    verify "$W/craft/empty.owlb"
    expect_refused "bundle is empty"
}

@test "a zip or cpio archive renamed .owlb is refused" {
    (cd "$W/x" && bsdtar --format zip -cf "$W/craft/zip.owlb" $(cd "$W/x" && bsdtar -tf "$GOOD"))
    verify "$W/craft/zip.owlb"
    expect_refused "not a bundle"
    (cd "$W/x" && bsdtar --format cpio -cf - $(bsdtar -tf "$GOOD") | zstd -q -c >"$W/craft/cpio.owlb")
    verify "$W/craft/cpio.owlb"
    expect_refused "not a bundle"
}

@test "a missing, extra or reordered entry is refused" {
    mapfile -t e < <(entries)
    verify "$(repack missing "${e[@]:0:${#e[@]}-1}")"
    expect_refused "ends before its entry ${e[-1]}"
    cp "$W/x/${e[2]}" "$W/x/data/extra.tsv"
    verify "$(repack extra "${e[@]}" data/extra.tsv)"
    expect_refused 'unexpected extra entry "data/extra.tsv"'
    verify "$(repack reorder "${e[1]}" "${e[0]}" "${e[@]:2}")"
    expect_refused '"manifest.sig" found where manifest.json was expected'
    verify "$(repack datareorder "${e[0]}" "${e[1]}" "${e[3]}" "${e[2]}" "${e[@]:4}")"
    expect_refused "found where ${e[2]} was expected"
    # the same entries re-packed by another tar (padded to 10240-byte blocks): nothing may hide there
    verify "$(repack repacked "${e[@]}")"
    expect_refused "after the end of its archive"
}

@test "entries named ../x, /etc/x or data/../../x are refused" {
    mapfile -t e < <(entries)
    for bad in ../x /etc/x data/../../x; do
        (cd "$W/x" && bsdtar -P --format ustar -s ",^${e[2]}\$,$bad," -cf - "${e[@]}") | zstd -q -c >"$W/craft/path.owlb"
        bsdtar -tf "$W/craft/path.owlb" | grep -qxF -- "$bad"
        verify "$W/craft/path.owlb"
        expect_refused "\"$bad\" found where ${e[2]} was expected"
    done
}

@test "symlink, hardlink and device entries are refused" {
    mapfile -t e < <(entries)
    printf '#mtree\n%s type=link link=/etc/passwd\n' "${e[2]}" >"$W/craft/link.mtree"
    bsdtar --format ustar -cf - -C "$W/x" "${e[0]}" "${e[1]}" -C "$W/craft" "@$W/craft/link.mtree" | zstd -q -c >"$W/craft/link.owlb"
    verify "$W/craft/link.owlb"
    expect_refused "entry ${e[2]} is not a regular file"
    printf '#mtree\n%s type=char device=native,1,3\n' "${e[2]}" >"$W/craft/dev.mtree"
    bsdtar --format ustar -cf - -C "$W/x" "${e[0]}" "${e[1]}" -C "$W/craft" "@$W/craft/dev.mtree" | zstd -q -c >"$W/craft/dev.owlb"
    verify "$W/craft/dev.owlb"
    expect_refused "entry ${e[2]} is not a regular file"
    rm -rf "$W/h" && mkdir -p "$W/h/data" && cp "$W/x/${e[0]}" "$W/x/${e[1]}" "$W/h/"
    ln "$W/h/manifest.json" "$W/h/${e[2]}"
    (cd "$W/h" && bsdtar --format ustar -cf - "${e[0]}" "${e[1]}" "${e[2]}") | zstd -q -c >"$W/craft/hard.owlb"
    bsdtar -tvf "$W/craft/hard.owlb" | grep -q "link to"
    verify "$W/craft/hard.owlb"
    expect_refused "entry ${e[2]} is not a regular file"
}

@test "a manifest over its bound and a data entry larger than the manifest says are refused" {
    mapfile -t e < <(entries)
    rm -rf "$W/big" && mkdir -p "$W/big" && head -c $((5 * 1024 * 1024)) /dev/zero >"$W/big/manifest.json"
    (cd "$W/big" && bsdtar --format ustar -cf - manifest.json) | zstd -q -c >"$W/craft/bigmanifest.owlb"
    verify "$W/craft/bigmanifest.owlb"
    expect_refused "manifest.json is 5242880 bytes, over its bound"
    rm -rf "$W/grow" && cp -r "$W/x" "$W/grow" && echo "extra row" >>"$W/grow/${e[2]}"
    (cd "$W/grow" && bsdtar --format ustar -cf - "${e[@]}") | zstd -q -c >"$W/craft/grow.owlb"
    verify "$W/craft/grow.owlb"
    expect_refused "bundle entry ${e[2]} is"
    [[ $output == *"but the manifest says"* ]]
}

@test "a decompression bomb over max_unpacked_size and a file over max_bundle_size are refused" {
    mapfile -t e < <(entries)
    rm -rf "$W/bomb" && cp -r "$W/x" "$W/bomb" && head -c $((64 * 1024 * 1024)) /dev/zero >"$W/bomb/${e[2]}"
    (cd "$W/bomb" && bsdtar --format ustar -cf - "${e[@]}") | zstd -q -c >"$W/craft/bomb.owlb"
    [ "$(stat -c %s "$W/craft/bomb.owlb")" -lt 100000 ]
    cp "$W/qa.ini" "$W/small.ini"
    printf 'max_unpacked_size = 1M\n' >>"$W/small.ini"
    run "$OWLSYNC" -c "$W/small.ini" verify "$W/craft/bomb.owlb"
    expect_refused "more than max_unpacked_size"
    cp "$W/qa.ini" "$W/tiny.ini"
    printf 'max_bundle_size = 1K\n' >>"$W/tiny.ini"
    run "$OWLSYNC" -c "$W/tiny.ini" verify "$GOOD"
    expect_refused "over max_bundle_size"
}

# bounded CMD… — runs CMD under timeout 10 (a hang guard, not a timing), with
# $status and $output as bats' run; $BOUND_KB is its peak resident memory.
bounded() {
    run /usr/bin/time -f '%e %M' -o "$W/bounded.time" timeout 10 "$@"
    BOUND_KB=$(awk 'END { print $2 }' "$W/bounded.time")
    echo "# $(awk 'END { print $1 }' "$W/bounded.time") s, $BOUND_KB KB: ${*: -1}" >&3
}

@test "a gzip quine and gzip streams that unpack to gigabytes of gzip header are refused at once, in little memory, by verify, inspect and import" {
    : "${GZCRAFT:?GZCRAFT must name the gzcraft test tool (make test sets it)}"
    "$GZCRAFT" quine "$W/craft/quine.owlb"
    gzip -dc <"$W/craft/quine.owlb" | cmp - "$W/craft/quine.owlb" # it unpacks to itself
    # a gzip header whose file name runs on for 4 GB, gzipped and zstd-compressed:
    # a reader that bids for a filter on unpacked bytes reads the name into memory
    "$GZCRAFT" name-bomb 4000000000 "$W/craft/name.gz"
    gzip -9 -c "$W/craft/name.gz" >"$W/craft/name-gz.owlb"
    zstd -19 -q -c "$W/craft/name.gz" >"$W/craft/name-zst.owlb"
    [ "$(stat -c %s "$W/craft/name-zst.owlb")" -lt 100000 ]
    cat >"$W/imp.ini" <<INI
[owlsync]
environment = qa
state_dir = $W/state
[database]
conninfo = $(pg_conninfo src)
[import]
trusted_key = prod $W/prod.key.pub
INI
    before=$(pg_digest src owl_rule)
    for f in quine:gzip name-gz:gzip name-zst:zstd; do
        b=$W/craft/${f%%:*}.owlb
        want="bundle is compressed more than once (gzip inside ${f#*:})"
        bounded "$OWLSYNC" verify -k "$W/prod.key.pub" "$b"
        expect_refused "$want"
        [ "$BOUND_KB" -lt 100000 ]
        bounded "$OWLSYNC" inspect "$b"
        expect_refused "$want"
        [ "$BOUND_KB" -lt 100000 ]
        bounded "$OWLSYNC" -c "$W/imp.ini" import "$b"
        expect_refused "$want"
        [ "$BOUND_KB" -lt 100000 ]
    done
    [ "$(pg_digest src owl_rule)" = "$before" ]
    [ "$(pg_query src "SELECT to_regnamespace('owlsync') IS NULL")" = t ]
}

@test "config errors name file and line and exit 2" {
    printf '[owlsync]\nenvironment = qa\nbogus = 1\n' >"$W/bad.ini"
    run "$OWLSYNC" -c "$W/bad.ini" verify "$GOOD"
    [ "$status" -eq 2 ]
    [[ $output == *"$W/bad.ini:3:"*"bogus"* ]]
    printf '[owlsync]\nenvironment = %0250d\n' 0 >"$W/long.ini"
    run "$OWLSYNC" -c "$W/long.ini" verify "$GOOD"
    [ "$status" -eq 2 ]
    [[ $output == *"$W/long.ini:2: line too long"* ]]
    run "$OWLSYNC" -c "$W/nosuch.ini" verify "$GOOD"
    [ "$status" -eq 2 ]
    [[ $output == *"nosuch.ini"* ]]
}

@test "--help for every command, usage errors exit 2" {
    for c in keygen export verify inspect import; do
        run "$OWLSYNC" "$c" --help
        [ "$status" -eq 0 ]
        [[ ${lines[0]} == "usage: owlsync"*"$c"* ]]
    done
    run "$OWLSYNC" --help
    [ "$status" -eq 0 ]
    run "$OWLSYNC" frobnicate
    [ "$status" -eq 2 ]
    [[ $output == *'unknown command "frobnicate"'* ]]
    run "$OWLSYNC" verify
    [ "$status" -eq 2 ]
    run "$OWLSYNC" --version
    [ "$status" -eq 0 ]
    [[ ${lines[0]} =~ ^owlsync\ [0-9]+\.[0-9]+\.[0-9]+$ ]]
}
