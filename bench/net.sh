#!/usr/bin/env bash
# Network benchmark: TCP throughput guest->host and host->guest through user-mode networking,
# ignition (--net user) vs QEMU microvm (-netdev user), same guest; prints medians and ratios.
# RUNS=N (default 3), SIZE_MIB=N per transfer (default 16), MEM_MIB=N (default 256),
# KERNEL=elf|bzimage (default elf).
# Needs /dev/kvm; without it: tests/nested/run.sh bench/net.sh
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x build/ignition ] || make -s all
exec python3 bench/net.py "$@"
