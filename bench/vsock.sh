#!/usr/bin/env bash
# vsock benchmark: stream throughput guest->host and host->guest, ignition (--vsock, hybrid
# Unix-socket protocol) vs QEMU microvm with vhost-vsock where the host has /dev/vhost-vsock;
# prints medians and ratios.  RUNS=N (default 3), SIZE_MIB=N per transfer (default 64),
# MEM_MIB=N (default 256), KERNEL=elf|bzimage (default elf).
# Needs /dev/kvm; without it: tests/nested/run.sh bench/vsock.sh
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x build/ignition ] || make -s all
exec python3 bench/vsock.py "$@"
