#!/usr/bin/env bash
# `make test`: build, unit tests, the same under ASan+UBSan, format check, a libFuzzer smoke run
# of every fuzz target (skipped without clang's libFuzzer), guest tests under KVM (inside the
# nested harness where /dev/kvm is absent).  Last line: "N passed, N failed".
set -u
cd "$(dirname "$0")/.."
# Choose the results file before lib.sh, which defaults it to /dev/null.
IGN_RESULTS=${IGN_RESULTS:-$(mktemp)}
export IGN_RESULTS
: >"$IGN_RESULTS"
. tests/lib.sh
jobs=$(nproc 2>/dev/null || echo 2)
# Each section header says when it started (seconds into the run): CI logs show where time goes.
section() { echo "== $1 (at ${SECONDS} s)"; }

section "build"
if make -s -j"$jobs" all >/tmp/ignition-build.log 2>&1; then
	result PASS build
else
	tail -n 30 /tmp/ignition-build.log
	result FAIL build "make all failed"
fi

# Unit tests that run code under real KVM (they use tests/unit/kvm_guest.h or /dev/kvm): on
# a host without /dev/kvm they run inside the nested harness with the guest tests
# (tests/guest/run.sh, IGN_KVM_UNITS) instead of skipping here.
kvm_units=$(grep -l -E 'kvm_guest\.h|/dev/kvm' tests/unit/test_*.c | xargs -n1 basename | sed 's/\.c$//')
host_units() { # DIR: the unit binaries in DIR to run on this host
	for b in "$1"/test_*; do
		if [ ! -e /dev/kvm ] && printf '%s\n' $kvm_units | grep -qx "$(basename "$b")"; then
			IGN_KVM_UNITS="${IGN_KVM_UNITS:+$IGN_KVM_UNITS }$b"
		else
			echo "$b"
		fi
	done
}
IGN_KVM_UNITS=
export IGN_KVM_UNITS

section "unit tests"
make -s -j"$jobs" unit-bins >/tmp/ignition-unit-build.log 2>&1 || { tail -n 30 /tmp/ignition-unit-build.log; result FAIL unit-build; }
host_units build/tests >/tmp/ignition-units.txt
tests/run-unit.sh --label unit $(cat /tmp/ignition-units.txt) || true

section "unit tests under ASan + UBSan"
if make -s -j"$jobs" SAN=1 unit-bins >/tmp/ignition-asan-build.log 2>&1; then
	host_units build/asan/tests >/tmp/ignition-units.txt
	tests/run-unit.sh --label asan $(cat /tmp/ignition-units.txt) || true
else
	tail -n 30 /tmp/ignition-asan-build.log
	result FAIL asan-build
fi

section "GUI front ends (SDL under Xvfb, VNC, no guest)"
tests/ui/run.sh build/tests/test_ui || true

section "format"
if command -v clang-format >/dev/null; then
	if make -s format-check >/tmp/ignition-format.log 2>&1; then
		result PASS format-check
	else
		head -n 20 /tmp/ignition-format.log
		result FAIL format-check "run make format"
	fi
else
	result SKIP format-check "clang-format not installed"
fi

section "fuzz smoke (libFuzzer, ${FUZZ_SECONDS:-10} s per target)"
# Every fuzz/fuzz_*.c target runs from its own seeds (make fuzz-smoke); one result per target.
fuzz_cc=${FUZZ_CC:-clang}
fuzz_probe=$(mktemp -d)
printf '%s\n' '#include <stddef.h>' '#include <stdint.h>' \
	'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);' \
	'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { return d && n == 1; }' \
	>"$fuzz_probe/probe.c"
if ! command -v "$fuzz_cc" >/dev/null; then
	result SKIP fuzz "$fuzz_cc not installed (the fuzz targets need clang with libFuzzer)"
elif ! "$fuzz_cc" -fsanitize=fuzzer,address,undefined -o "$fuzz_probe/probe" \
	"$fuzz_probe/probe.c" >/dev/null 2>&1; then
	result SKIP fuzz "$fuzz_cc cannot link -fsanitize=fuzzer,address,undefined (no libFuzzer)"
elif ! make -s -j"$jobs" fuzz >/tmp/ignition-fuzz-build.log 2>&1; then
	tail -n 30 /tmp/ignition-fuzz-build.log
	result FAIL fuzz-build "make fuzz failed"
else
	make -k -s -j"$jobs" fuzz-smoke FUZZ_SECONDS="${FUZZ_SECONDS:-10}" \
		>/tmp/ignition-fuzz.log 2>&1
	for src in fuzz/fuzz_*.c; do
		name=fuzz/$(basename "$src" .c)
		line=$(grep -a -E "^(PASS|FAIL) $name \(" /tmp/ignition-fuzz.log | head -n 1)
		if [[ $line =~ ^(PASS|FAIL)\ ([^ ]+)\ \((.*)\)$ ]]; then
			result "${BASH_REMATCH[1]}" "$name" "${BASH_REMATCH[3]}"
		else
			result FAIL "$name" "no result (see /tmp/ignition-fuzz.log)"
		fi
	done
	# The crash reports of failing targets (each line starts with "    | ").
	grep -a -E '^    \| ' /tmp/ignition-fuzz.log | tail -n 60
fi
rm -rf "$fuzz_probe"

section "REST API against its OpenAPI document (no guest)"
tests/api/openapi_test.sh || true

section "guest tests"
tests/guest/run.sh || true

echo "   (test run took ${SECONDS} s)"
# The failures again, next to the summary: a long log is often read from its end only.
if grep -q '^FAIL ' "$IGN_RESULTS"; then
	echo
	echo "Failed:"
	grep -a '^FAIL ' "$IGN_RESULTS" | cut -c1-600 | sed 's/^/  /'
fi
echo
summary "$IGN_RESULTS"
# A run that recorded nothing is a broken run, not a green one.
grep -q -E '^(PASS|FAIL) ' "$IGN_RESULTS" || exit 1
grep -q '^FAIL ' "$IGN_RESULTS" && exit 1
exit 0
