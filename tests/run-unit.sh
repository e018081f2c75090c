#!/usr/bin/env bash
# Run cmocka unit test binaries; one result line per test case.
# Usage: tests/run-unit.sh [--label L] BIN...
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
label=unit
if [ "${1:-}" = --label ]; then
	label=$2
	shift 2
fi
# Sanitizer builds: leaks are errors, UBSan stops at its first report with a stack, and a
# report ends the binary with a failing status (not an abort that loses cmocka's output).
if [ "$label" = asan ]; then
	export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
	export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
fi
# A binary that runs longer than this is killed and fails (the slowest takes seconds; one
# once hung in an io_uring wait the host kernel never completed, and stalled the suite).
limit=${IGN_UNIT_TIMEOUT:-600}
rc=0
for bin in "$@"; do
	name=$(basename "$bin")
	out=$(mktemp)
	# cmocka prints "[       OK ] case" / "[  FAILED  ] case" per test case.
	timeout -k 10 "$limit" "$bin" >"$out" 2>&1
	status=$?
	[ $status -eq 124 ] && echo "killed: still running after ${limit} s" >>"$out"
	cases=0
	while read -r tag rest; do
		case "$tag" in
		OK) result PASS "$label/$name/$rest"; cases=$((cases + 1)) ;;
		FAILED) result FAIL "$label/$name/$rest"; cases=$((cases + 1)); rc=1 ;;
		SKIPPED) result SKIP "$label/$name/$rest" "$(grep -m1 '^skip: ' "$out" | cut -c7-)"
			cases=$((cases + 1)) ;;
		esac
	# cmocka names failed and skipped cases twice (again in its closing list): once each.
	# Passes stay as they are: a binary may run a case once per group (backends).
	done < <(sed -n -E 's/^\[ *(OK|FAILED|SKIPPED) *\] ([A-Za-z0-9_]+)$/\1 \2/p' "$out" |
		awk '$1 == "OK" || !seen[$0]++')
	if [ $status -ne 0 ] || [ $cases -eq 0 ]; then
		# A crash (sanitizer report, abort) or a binary that ran no case.
		if ! grep -q -E '^\[ *FAILED *\] [A-Za-z0-9_]+$' "$out"; then
			result FAIL "$label/$name" "exit status $status, $cases cases"
		fi
		rc=1
		sed 's/^/    | /' "$out" | tail -n 40
	fi
	rm -f "$out"
done
exit $rc
