# owlsync test helpers for publishing under faults (load ../lib/publish, or
# source it from a script): run an export killed by strace at a chosen system
# call, and check what its outboxes show against everything published before.
#
# The checks (pub_check) hold at every moment a run can be stopped at:
#   - every visible *.owlb is whole: it verifies, and its manifest's job and
#     sequence are those of its name (a partial bundle is only ever a hidden
#     .NAME.tmp);
#   - no two visible bundles of a job have one sequence number;
#   - every bundle seen before is still there, the same file (inode) with the
#     same bytes: nothing published is ever replaced;
#   - a bundle new in an outbox has a sequence above every one seen there before.
# Counters PUB_KILLS, PUB_RERUNS and PUB_CHECKS count what was done.

# shellcheck disable=SC2034 # PUB_RERUNS is counted by the scripts that load this one
PUB_KILLS=0 PUB_RERUNS=0 PUB_CHECKS=0

# shellcheck source-path=SCRIPTDIR source=faults.bash
. "${BASH_SOURCE[0]%/*}/faults.bash"

# pub_strace ARGS… — strace ARGS, with LeakSanitizer off (fault_noleak).
pub_strace() { fault_noleak strace "$@"; }

# pub_strace_kill SYSCALL N ARGS… — runs ARGS (an owlsync command) under
# strace, which kills it with SIGKILL on entering the Nth call of SYSCALL (the
# call is not made). Sets PUB_RC to its exit status: 137 when killed, the
# command's own when it makes fewer calls. Adds 1 to PUB_KILLS when killed.
# PUB_STRACE_EXTRA may hold more strace options: further -e inject=… (one
# -e trace= replaces another: none is given here).
pub_strace_kill() {
    local sc=$1 n=$2
    shift 2
    PUB_RC=0
    # (in a shell of its own, which says "Killed" into the log, not here)
    # shellcheck disable=SC2086 # PUB_STRACE_EXTRA is a list of options
    (pub_strace -f -qq -o /dev/null -e inject="$sc:signal=SIGKILL:when=$n" ${PUB_STRACE_EXTRA:-} "$@"
        exit $?) >"${PUB_LOG:-/dev/null}" 2>&1 || PUB_RC=$?
    if [ "$PUB_RC" -eq 137 ]; then PUB_KILLS=$((PUB_KILLS + 1)); fi
}

# pub_count SYSCALL TRACE — how many calls of SYSCALL the strace -o file TRACE shows.
pub_count() {
    grep -cE "^[0-9]+ +$1\(" "$2" || true
}

# pub_points TRACE — the kill points around every rename and link the strace -o
# file TRACE shows (of fsync, renameat, renameat2, linkat): "SYSCALL:N" for
# the call itself (killed before it) and for the fsync after it (killed once
# it is done), one a line.
pub_points() {
    awk '{ sub(/^[0-9]+ +/, ""); c = $0; sub(/\(.*/, "", c); n[c]++ }
         c == "fsync" && want { print "fsync:" n["fsync"]; want = 0 }
         c == "renameat" || c == "renameat2" || c == "linkat" { print c ":" n[c]; want = 1 }' "$1"
}

# pub_check OUTBOX SEEN KEYPUB — the checks above for OUTBOX; SEEN is the file
# (created when missing) that lists "NAME INODE B2SUM SEQUENCE" of every bundle
# seen there so far: new ones are added. Prints what is wrong and fails.
pub_check() {
    local dir=$1 seen=$2 pub=$3 now=$2.now name ino sum seq inside bad=
    local -a files=()
    touch "$seen"
    PUB_CHECKS=$((PUB_CHECKS + 1))
    mapfile -t files < <(cd "$dir" && ls -1 -- *.owlb 2>/dev/null)
    # "NAME INODE B2SUM" of each visible bundle, in one stat and one b2sum
    if [ "${#files[@]}" -gt 0 ]; then
        join <(cd "$dir" && stat -c '%n %i' -- "${files[@]}" | sort) \
             <(cd "$dir" && b2sum -- "${files[@]}" | awk '{ print $2, $1 }' | sort) >"$now"
    else
        : >"$now"
    fi
    # bundles seen before: the same files, unchanged; names of a bundle; one
    # number per job; new ones numbered above every earlier one
    awk -v dir="$dir" '
        FILENAME == ARGV[1] { seen[$1] = $2 " " $3; if ($4 > max) max = $4; next }
        {
            now[$1] = $2 " " $3
            d = "[0-9]"   # (mawk has no {n})
            if ($1 !~ ("^[A-Za-z0-9_-]+_" d d d d d d d d "T" d d d d d d "Z_" d "+\\.owlb$")) {
                print "pub_check: " dir "/" $1 ": not a bundle name"; bad = 1; next
            }
            n = split($1, p, "_"); seq = p[n] + 0; job = substr($1, 1, length($1) - length(p[n]) - length(p[n - 1]) - 2)
            if ((job, seq) in num) {
                print "pub_check: " dir "/" $1 " and " num[job, seq] " are both sequence " seq " of " job; bad = 1
            }
            num[job, seq] = $1
            if (!($1 in seen) && seq <= max) {
                print "pub_check: " dir "/" $1 " is sequence " seq ", published after sequence " max; bad = 1
            }
        }
        END {
            for (f in seen) {
                if (!(f in now)) { print "pub_check: " dir "/" f " was published and is gone"; bad = 1 }
                else if (now[f] != seen[f]) { print "pub_check: " dir "/" f " was published and has been replaced"; bad = 1 }
            }
            exit bad
        }' "$seen" "$now" || bad=1
    # new bundles: whole, and what their names say
    while read -r name ino sum; do
        seq=${name##*_}
        seq=$((10#${seq%.owlb}))
        if ! "$OWLSYNC" verify -k "$pub" "$dir/$name" >/dev/null 2>&1; then
            echo "pub_check: $dir/$name is visible and does not verify (partial?)"; bad=1
        fi
        inside=$("$OWLSYNC" inspect "$dir/$name" 2>/dev/null | awk '$1 == "sequence" { print $2 }')
        if [ "$inside" != "$seq" ]; then
            echo "pub_check: $dir/$name says sequence '$inside' inside"; bad=1
        fi
        echo "$name $ino $sum $seq" >>"$seen"
    done < <(awk 'FILENAME == ARGV[1] { seen[$1]; next } !($1 in seen)' "$seen" "$now")
    rm -f "$now"
    [ -z "$bad" ]
}

# pub_seqs SEEN — the sequence numbers SEEN lists, in order, on one line.
pub_seqs() {
    awk '{ print $4 }' "$1" | sort -n | tr '\n' ' ' | sed 's/ $//'
}
