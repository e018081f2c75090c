#!/usr/bin/env bash
# Snapshot-fuzzer benchmark: `ignition fuzz` on the libpng harness against AFL++ (fork server,
# ASan) on the same harness and seeds, FUZZ_SECONDS (default 60) each.  See bench/fuzz.py.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x build/ignition ] || make -s all
exec python3 bench/fuzz.py "$@"
