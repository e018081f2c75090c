#!/bin/bash
# The REST API driven with `curl --unix-socket`, as Firecracker's getting-started guide does:
# (a) without a guest: every error case, 1000 concurrent connections, the /vm/config round
# trip; (b) one real boot: configure, InstanceStart, a shell on the serial console, pause,
# snapshot, load into a second process, resume, a command there.  IGN_API_BOOT=0 skips (b).
# One "PASS|FAIL api/NAME (reason)" line per check goes to $IGN_RESULTS.
cd "$(dirname "$0")/../.." || exit 1
exec python3 tests/api/curl_test.py "$@"
