#!/usr/bin/env bash
# Runs owlsync's fuzz harnesses (built by make fuzz-build) one after another,
# each for a number of seconds, and reports each as a TAP line ("ok N - fuzz
# NAME ..." or "not ok N - ..."), which tests/run counts, then a table of
# executions and corpus sizes. Exits 1 when any harness crashed, leaked, hung or
# broke a property; its input is kept under BUILD/crashes/NAME/.
#
# usage: tests/fuzz/run.sh --build DIR --seconds N [--fresh] [--only NAME[,NAME...]]
#   --build DIR   where make fuzz-build put fuzz/fuzz_NAME (default build-fuzz)
#   --seconds N   how long each harness runs (default 60)
#   --fresh       start from the seeds alone, in a temporary directory (the smoke
#                 run); otherwise new inputs are kept in DIR/corpus/NAME for later runs
#   --only LIST   only these harnesses (manifest, bundle, ...)
#
# Seeds are read from tests/fuzz/corpus/NAME (never written), and a dictionary
# from tests/fuzz/NAME.dict when there is one.
set -u
here=$(cd "$(dirname "$0")" && pwd)
build='build-fuzz'
seconds=60
fresh=
only=
while [ $# -gt 0 ]; do
    case $1 in
        --build) build=$2; shift 2 ;;
        --seconds) seconds=$2; shift 2 ;;
        --fresh) fresh=1; shift ;;
        --only) only=$2; shift 2 ;;
        *) echo "usage: $0 --build DIR --seconds N [--fresh] [--only NAME,...]" >&2; exit 2 ;;
    esac
done
if [[ ! $seconds =~ ^[1-9][0-9]*$ ]]; then
    echo "run.sh: --seconds wants a positive number of seconds, not '$seconds'" >&2
    exit 2
fi

bins=()
for b in "$build"/fuzz/fuzz_*; do
    [ -x "$b" ] || continue
    name=${b##*/fuzz_}
    if [ -n "$only" ] && [[ ",$only," != *",$name,"* ]]; then continue; fi
    bins+=("$b")
done
if [ ${#bins[@]} -eq 0 ]; then
    echo "not ok 1 - no fuzz harness in $build/fuzz (run make fuzz-build)"
    exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/owlsync-fuzz.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$build/logs" "$build/crashes"
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

failed=0
i=0
summary=()
start_all=$SECONDS
for b in "${bins[@]}"; do
    i=$((i + 1))
    name=${b##*/fuzz_}
    seeds=$here/corpus/$name
    if [ -n "$fresh" ]; then work=$tmp/$name; else work=$build/corpus/$name; fi
    crashes=$build/crashes/$name
    log=$build/logs/$name.log
    mkdir -p "$work" "$crashes"
    args=(-max_total_time="$seconds" -timeout=25 -rss_limit_mb=2048 -print_final_stats=1
          -artifact_prefix="$crashes/")
    if [ -f "$here/$name.dict" ]; then args+=(-dict="$here/$name.dict"); fi
    dirs=("$work")
    if [ -d "$seeds" ]; then dirs+=("$seeds"); fi
    t0=$SECONDS
    touch "$tmp/start"
    # The harness stops itself after --seconds; the timeout is only a backstop.
    timeout --kill-after=10 $((seconds + 120)) "$b" "${args[@]}" "${dirs[@]}" >"$log" 2>&1
    rc=$?
    took=$((SECONDS - t0))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    newu=$(sed -n 's/^stat::new_units_added: *//p' "$log" | tail -1)
    corp=$(grep -o 'corp: [0-9]*/[0-9]*[A-Za-z]*' "$log" | tail -1 | cut -d' ' -f2)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    execs=${execs:-?} newu=${newu:-?} corp=${corp:-?} cov=${cov:-?}
    units=${corp%%/*}
    summary+=("$(printf '%-14s %-6s %6ss %12s %10s %12s %8s' "$name" \
        "$([ $rc -eq 0 ] && echo ok || echo FAILED)" "$took" "$execs" "$units" "${corp#*/}" "$cov")")
    if [ $rc -eq 0 ]; then
        echo "ok $i - fuzz $name: $execs executions in ${took}s, corpus $corp (units/bytes), $newu new"
    else
        failed=$((failed + 1))
        echo "not ok $i - fuzz $name exited $rc after ${took}s (log: $log)"
        # The finding: the sanitizer's or the property's report and the input kept.
        grep -E '^(==[0-9]+==ERROR|SUMMARY|owlsync fuzz:|.*runtime error:|artifact_prefix|Test unit written)' "$log" |
            head -20 | sed 's/^/#   /'
        find "$crashes" -type f -newer "$tmp/start" 2>/dev/null | head -3 | sed 's|^|#   kept: |'
    fi
done

echo "# fuzz: ${#bins[@]} harnesses, ${seconds}s each, $((SECONDS - start_all))s in all"
printf '# %-14s %-6s %7s %12s %10s %12s %8s\n' harness result time executions corpus bytes cov
for line in "${summary[@]}"; do echo "# $line"; done
[ "$failed" -eq 0 ]
