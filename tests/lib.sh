# Shared helpers for the test scripts: results are appended to $IGN_RESULTS as
# "PASS|FAIL|SKIP <name> [reason]" lines; tests/run-all.sh prints the summary.
: "${IGN_RESULTS:=/dev/null}"

result() { # result PASS|FAIL|SKIP name [reason...]
	local status=$1 name=$2
	shift 2
	echo "$status $name${*:+ ($*)}" >>"$IGN_RESULTS"
	case $status in
	PASS) printf '  ok    %s\n' "$name" ;;
	FAIL) printf '  FAIL  %s%s\n' "$name" "${*:+: $*}" ;;
	SKIP) printf '  skip  %s%s\n' "$name" "${*:+: $*}" ;;
	esac
}

summary() { # summary FILE -> prints "N passed, N failed[, N skipped]"
	local p f s
	p=$(grep -c '^PASS ' "$1" || true)
	f=$(grep -c '^FAIL ' "$1" || true)
	s=$(grep -c '^SKIP ' "$1" || true)
	if [ "$s" -gt 0 ]; then
		echo "$p passed, $f failed, $s skipped"
	else
		echo "$p passed, $f failed"
	fi
}
