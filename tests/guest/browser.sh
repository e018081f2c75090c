#!/usr/bin/env bash
# `make test-browser`: the disposable browser's checks (tests/guest/browser.py) on their own,
# under KVM, or inside the nested harness (tests/nested) where /dev/kvm is absent.  `make test`
# runs them too (boot 8 of tests/guest/guest_test.py).  Last line: "N passed, N failed".
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
mkdir -p "$root/build/guest-logs"
IGN_RESULTS=$(mktemp "$root/build/browser-results.XXXXXX")
export IGN_RESULTS
. "$here/../lib.sh"
if [ -e /dev/kvm ]; then
	python3 "$here/browser.py" || result FAIL guest/browser "browser.py exit status $?"
else
	echo "no /dev/kvm here: running the browser checks inside tests/nested"
	NESTED_LOG="$root/build/guest-logs/nested-browser.log" NESTED_TIMEOUT=${NESTED_TIMEOUT:-2400} \
		"$root/tests/nested/run.sh" -C "$root" -e IGN_RESULTS="$IGN_RESULTS" -e IGN_NESTED=1 \
		-- python3 tests/guest/browser.py ||
		result FAIL guest/nested-harness "tests/nested/run.sh exit status $?"
fi
summary "$IGN_RESULTS"
grep -q '^PASS ' "$IGN_RESULTS" && ! grep -q '^FAIL ' "$IGN_RESULTS"
rc=$?
rm -f "$IGN_RESULTS"
exit $rc
