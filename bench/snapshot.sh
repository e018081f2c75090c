#!/usr/bin/env bash
# Snapshot benchmark: ignition vs QEMU microvm (same guest): snapshot write time, restore to a
# running guest and to a shell (medians, ratios), ignition's restore timeline, the memory of 1
# and CLONES (default 8) idle clones, boot-to-shell vs restore-to-shell.  RUNS=N (default 3),
# MEM_MIB=N (default 256).  See bench/snapshot.py.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x build/ignition ] || make -s all
exec python3 bench/snapshot.py "$@"
