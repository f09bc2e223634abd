#!/usr/bin/env bats
# Releases: --version, make dist (a tarball whose build is the checkout's, byte
# for byte), make install and uninstall, make deb (lintian clean), and the
# Debian package installed with dpkg -i, checked, and purged (as root).

load ../lib/pg

ROOT=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
OWLSYNC=${OWLSYNC:-$ROOT/owlsync}
VERSION=$(cat "$ROOT/VERSION")

# make, without what an outer make (make test, make check-asan) passes down.
mk() {
    env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u CFLAGS -u CPPFLAGS -u LDFLAGS -u EXTRA_CFLAGS -u BUILD \
        make --no-print-directory -j2 "$@"
}

# The files the package and make install put in, with their modes and owners.
EXPECTED_FILES="755 root root usr/bin/owlsync
644 root root usr/share/man/man1/owlsync.1
644 root root usr/share/man/man5/owlsync.ini.5
644 root root lib/systemd/system/owlsync.service
644 root root usr/lib/sysusers.d/owlsync.conf
644 root root usr/lib/tmpfiles.d/owlsync.conf
644 root root etc/owlsync/owlsync.ini.example
644 root root usr/share/owlsync/sql/grants.sql
644 root root usr/share/owlsync/sql/ledger.sql
644 root root usr/share/owlsync/sql/metastore.sql
644 root root usr/share/owlsync/sql/sample.sql
644 root root usr/share/bash-completion/completions/owlsync"

# The source's description as the Makefile takes it: git's, or a tarball's COMMIT.
describe() {
    if [ -e "$1/.git" ]; then
        git -C "$1" describe --tags --match 'v[0-9]*' --always --dirty --abbrev=12
    else
        cat "$1/COMMIT"
    fi
}

# The tests that build from a clean clone of HEAD need a git checkout.
need_checkout() {
    [ -n "$CO" ] || skip "not a git checkout: make dist and make deb build from git's HEAD"
}

setup_file() {
    export CO="" PKG_MARK="$BATS_FILE_TMPDIR/installed-by-test"
    [ -e "$ROOT/.git" ] || return 0
    # a clean checkout of HEAD: what CI and a release build from
    CO="$BATS_FILE_TMPDIR/co"
    git clone -q --no-checkout "$ROOT" "$CO"
    git -C "$CO" -c advice.detachedHead=false checkout -q "$(git -C "$ROOT" rev-parse HEAD)"
    export DESCRIBE
    DESCRIBE=$(describe "$CO")
}

# Purges the package and, when the test made it, the owlsync user (a purge
# keeps it), so that every run installs on a machine without either.
cleanup_package() {
    if [ -f "$PKG_MARK" ]; then
        rm -f /etc/owlsync/owlsync.ini /etc/owlsync/pgpass /var/lib/owlsync/.pgpass
        dpkg --purge owlsync >/dev/null 2>&1 || true
        if [ "$(cat "$PKG_MARK")" = new-user ] && getent passwd owlsync >/dev/null; then
            userdel owlsync 2>/dev/null || true
            groupdel owlsync 2>/dev/null || true
        fi
        rm -f "$PKG_MARK"
    fi
}

teardown_file() {
    pg_stop_all
    cleanup_package # after a failed test too
}

@test "--version: VERSION's number first, then the git description and the libraries in use" {
    run "$OWLSYNC" --version
    [ "$status" -eq 0 ]
    [ "${lines[0]}" = "owlsync $VERSION" ]
    [ "${lines[1]}" = "commit $(describe "$ROOT")" ]
    [[ ${lines[2]} =~ ^libpq\ [0-9]+\.[0-9]+ ]]
    [[ ${lines[3]} == "libarchive "[0-9]*"libzstd/"* ]]
    [[ ${lines[4]} =~ ^libsodium\ [0-9]+\.[0-9]+ ]]
    [[ ${lines[5]} =~ ^jansson\ [0-9]+\.[0-9]+ ]]
    [[ ${lines[6]} =~ ^inih\ r[0-9]+\ \(built\ with ]]
    [ "${#lines[@]}" -eq 7 ]
    # the libraries this process runs with, as the system has them
    [ "${lines[4]}" = "libsodium $(pkg-config --modversion libsodium)" ]
    [ "${lines[5]}" = "jansson $(pkg-config --modversion jansson)" ]
}

@test "make dist: a tarball without .git that builds the checkout's binary, byte for byte" {
    need_checkout
    mk -C "$CO" dist
    tarball="$CO/owlsync-$VERSION.tar.gz"
    [ -f "$tarball" ]
    run tar -tzf "$tarball"
    [ "$status" -eq 0 ]
    [[ $output == *"owlsync-$VERSION/COMMIT"* ]]
    [[ $output == *"owlsync-$VERSION/VERSION"* ]]
    [[ $output == *"owlsync-$VERSION/debian/control"* ]]
    [[ $output != *"owlsync-$VERSION/.git/"* ]]
    [[ $output != *"owlsync-$VERSION/build/"* ]]

    mk -C "$CO" build/owlsync >/dev/null
    mkdir "$BATS_FILE_TMPDIR/x"
    tar -xzf "$tarball" -C "$BATS_FILE_TMPDIR/x"
    src="$BATS_FILE_TMPDIR/x/owlsync-$VERSION"
    [ ! -e "$src/.git" ]
    [ "$(cat "$src/COMMIT")" = "$DESCRIBE" ]
    mk -C "$src" build/owlsync >/dev/null
    run "$src/build/owlsync" --version
    [ "${lines[0]}" = "owlsync $VERSION" ]
    [ "${lines[1]}" = "commit $DESCRIBE" ]
    # another directory, no .git: the same bytes (-ffile-prefix-map, no dates)
    cmp "$CO/build/owlsync" "$src/build/owlsync"
}

@test "make install PREFIX DESTDIR puts in the package's files, make uninstall takes them out" {
    need_checkout
    dest="$BATS_FILE_TMPDIR/dest"
    mk -C "$CO" install DESTDIR="$dest" PREFIX=/usr UNITDIR=/lib/systemd/system >/dev/null
    run bash -c "cd '$dest' && find . -type f -printf '%m %P\n' | sort"
    [ "$output" = "$(cut -d' ' -f1,4 <<<"$EXPECTED_FILES" | sort)" ] || { echo "$output"; return 1; }
    grep -qx 'ExecStart=/usr/bin/owlsync daemon' "$dest/lib/systemd/system/owlsync.service"
    mk -C "$CO" uninstall DESTDIR="$dest" PREFIX=/usr UNITDIR=/lib/systemd/system >/dev/null
    [ -z "$(find "$dest" -type f)" ]

    # another PREFIX: the unit starts the binary where it went
    mk -C "$CO" install DESTDIR="$dest" PREFIX=/opt/o >/dev/null
    grep -qx 'ExecStart=/opt/o/bin/owlsync daemon' "$dest/opt/o/lib/systemd/system/owlsync.service"
    [ -x "$dest/opt/o/bin/owlsync" ]
    [ -f "$dest/opt/o/share/bash-completion/completions/owlsync" ]
    mk -C "$CO" uninstall DESTDIR="$dest" PREFIX=/opt/o >/dev/null
    [ -z "$(find "$dest" -type f)" ]
}

@test "make deb: lintian clean, the files of make install, Depends only on runtime libraries" {
    need_checkout
    run mk -C "$CO" deb
    echo "$output" | tail -30
    [ "$status" -eq 0 ]
    deb=$(ls "$CO"/owlsync_"$VERSION"_*.deb)
    [ -f "$deb" ]
    # the same files as make install (man pages compressed), plus the package's own docs
    run bash -c "dpkg-deb -c '$deb' | awk '\$1 ~ /^-/ { print \$6 }' | sed 's|^\./||; s|\.gz$||' \
        | grep -v -e '^usr/share/doc/owlsync/' -e '^usr/share/lintian/overrides/owlsync$' | sort"
    [ "$output" = "$(cut -d' ' -f4 <<<"$EXPECTED_FILES" | sort)" ] || { echo "$output"; return 1; }
    # Depends: shared libraries (dpkg-shlibdeps) and systemd-sysusers, nothing for building or testing
    depends=$(dpkg-deb -f "$deb" Depends)
    echo "$depends"
    while read -r dep; do
        [[ $dep =~ ^(libc6|libpq5|libarchive13|libsodium23|libjansson4|libinih1)\  ]] ||
            [ "$dep" = "systemd | systemd-standalone-sysusers | systemd-sysusers" ] ||
            { echo "unexpected dependency: $dep"; return 1; }
    done < <(tr ',' '\n' <<<"$depends" | sed 's/^ *//')
}

@test "the package installs with dpkg -i: the service user, its directories and .pgpass, a unit that verifies, purged after" {
    [ "$(id -u)" = 0 ] || skip "needs root: installs the package with dpkg -i"
    if dpkg-query -W -f='${Status}' owlsync 2>/dev/null | grep -q 'ok installed'; then
        skip "an owlsync package is installed on this machine: not replaced by the test"
    fi
    [ ! -e /usr/bin/owlsync ] || skip "/usr/bin/owlsync exists outside a package: not replaced by the test"
    need_checkout
    deb=$(ls "$CO"/owlsync_"$VERSION"_*.deb 2>/dev/null) || { mk -C "$CO" deb >/dev/null; deb=$(ls "$CO"/owlsync_"$VERSION"_*.deb); }

    if getent passwd owlsync >/dev/null; then echo old-user >"$PKG_MARK"; else echo new-user >"$PKG_MARK"; fi
    dpkg -i "$deb"
    run /usr/bin/owlsync --version
    [ "$status" -eq 0 ]
    [ "${lines[0]}" = "owlsync $VERSION" ]
    [ "${lines[1]}" = "commit $DESCRIBE" ]

    # files, modes, owners
    while read -r mode user group path; do
        [ "$(stat -c '%a %U %G' "/$path")" = "$mode $user $group" ] || { echo "/$path: $(stat -c '%a %U %G' "/$path")"; return 1; }
    done <<<"$(sed 's|^\(.* usr/share/man/.*\)$|\1.gz|' <<<"$EXPECTED_FILES")"
    [ "$(dpkg-query -W -f='${Conffiles}' owlsync | awk '{print $1}')" = /etc/owlsync/owlsync.ini.example ]

    # the user whose home holds .pgpass, outside what ProtectHome= hides
    IFS=: read -r _ _ _ _ _ home shell < <(getent passwd owlsync)
    [ "$home" = /var/lib/owlsync ]
    [ "$shell" = /usr/sbin/nologin ]
    [ "$(stat -c '%a %U %G' /var/lib/owlsync)" = "750 owlsync owlsync" ]
    [ "$(stat -c '%a %U %G' /var/spool/owlsync/inbox)" = "2770 owlsync owlsync" ]
    [ "$(stat -c '%a %U %G' /var/spool/owlsync/outbox)" = "750 owlsync owlsync" ]

    # the unit as installed: verified, hardened (exposure at most 2.0), not enabled
    unit=/lib/systemd/system/owlsync.service
    grep -qx 'ExecStart=/usr/bin/owlsync daemon' "$unit"
    grep -qx 'ProtectHome=yes' "$unit"
    grep -qx 'StateDirectory=owlsync' "$unit"
    run systemd-analyze verify "$unit"
    echo "$output"
    [ "$status" -eq 0 ]
    [[ $output != *owlsync* ]] # no warning about it (nor its binary or man pages)
    run systemd-analyze security --offline=true --threshold=20 "$unit"
    echo "$output" | tail -1
    [ "$status" -eq 0 ]
    [ ! -e /etc/systemd/system/multi-user.target.wants/owlsync.service ]

    # bash completion: commands, and the job names of the configuration
    run bash -c '. /usr/share/bash-completion/completions/owlsync
        c() { COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMPREPLY=(); _owlsync; echo "${COMPREPLY[*]}"; }
        c owlsync im; OWLSYNC_CONFIG=/etc/owlsync/owlsync.ini.example c owlsync export -j ""'
    [ "${lines[0]}" = import ]
    [ "${lines[1]}" = "nightly alerts" ]
    # where bash-completion looks for it
    run bash -c '. /usr/share/bash-completion/bash_completion; _completion_loader owlsync; complete -p owlsync'
    [ "$output" = "complete -F _owlsync owlsync" ]

    # the service user's password: from ~/.pgpass in its home, else PGPASSFILE
    # (the owlsync user's environment holds nothing else, as under systemd)
    pg_start pw
    pg_load_schema pw
    pg_psql pw -c "CREATE ROLE owlpw LOGIN SUPERUSER PASSWORD 'pw-in-pgpass'"
    sed -i '1i local all owlpw scram-sha-256' "$(pg_query pw 'SHOW hba_file')"
    pg_query pw 'SELECT pg_reload_conf()' >/dev/null
    cat >/etc/owlsync/owlsync.ini <<INI
[owlsync]
environment = qa
[database]
conninfo = $(pg_conninfo pw | sed 's/user=postgres/user=owlpw/')
[import]
inbox = /var/spool/owlsync/inbox
trusted_key = prod owlsync-ed25519:bWFkZS11cC1rZXktZm9yLXRoZS1leGFtcGxlLW9ubHk=
INI
    install -m 0600 -o owlsync -g owlsync /dev/null /var/lib/owlsync/.pgpass
    echo '*:*:*:owlpw:pw-in-pgpass' >/var/lib/owlsync/.pgpass
    run runuser -u owlsync -- env -i PATH=/usr/bin:/bin /usr/bin/owlsync check
    echo "$output"
    [ "$status" -eq 0 ]
    [[ $output == *"ok: connected to the target database"* ]]
    echo '*:*:*:owlpw:wrong' >/var/lib/owlsync/.pgpass
    run runuser -u owlsync -- env -i PATH=/usr/bin:/bin /usr/bin/owlsync check
    [ "$status" -eq 1 ]
    [[ $output == *'password authentication failed for user "owlpw"'* ]]
    install -m 0600 -o owlsync -g owlsync /dev/null /etc/owlsync/pgpass
    echo '*:*:*:owlpw:pw-in-pgpass' >/etc/owlsync/pgpass
    run runuser -u owlsync -- env -i PATH=/usr/bin:/bin PGPASSFILE=/etc/owlsync/pgpass /usr/bin/owlsync check
    echo "$output"
    [ "$status" -eq 0 ]
    rm -f /etc/owlsync/owlsync.ini /etc/owlsync/pgpass /var/lib/owlsync/.pgpass
    pg_stop pw

    # purged: the files gone; the empty directories too, the user kept
    dpkg --purge owlsync
    if dpkg-query -W -f='${Status}' owlsync 2>/dev/null | grep -q 'ok installed'; then
        echo "owlsync still installed"
        return 1
    fi
    while read -r _ _ _ path; do
        [ ! -e "/$path" ] && [ ! -e "/$path.gz" ] || { echo "/$path left"; return 1; }
    done <<<"$EXPECTED_FILES"
    [ ! -e /etc/owlsync ]
    [ ! -e /var/spool/owlsync ]
    [ ! -e /var/lib/owlsync ]
    getent passwd owlsync >/dev/null
    cleanup_package
}
