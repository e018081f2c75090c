#!/usr/bin/env bash
# Dirty-tracking benchmark: what --track-dirty costs a memory-writing guest workload, Diff
# snapshots against a Full one, and in-place reset times.  ROUNDS, MIB, RESETS, MEM_MIB, SNAP
# (an existing snapshot of the default guest at its shell).  See bench/dirty.py.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x build/ignition ] || make -s all
exec python3 bench/dirty.py "$@"
