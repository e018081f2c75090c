#!/usr/bin/env bash
# Block benchmark: virtio-blk sequential MB/s and random 4-KiB IOPS on a scratch disk (/dev/vdb),
# O_DIRECT at queue depth 1 in the guest, ignition vs QEMU microvm (cache=writeback), same
# guest; prints medians and ratios.  RUNS=N (default 1), SEQ_MIB=N (default 32), RAND_OPS=N
# (default 500), DISK_MIB=N scratch disk size (default 256), MEM_MIB=N (default 256),
# KERNEL=elf|bzimage (default elf), BENCH_APPEND="..." (kernel parameters for both VMMs).
# Needs /dev/kvm; without it: tests/nested/run.sh bench/blk.sh
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x build/ignition ] || make -s all
exec python3 bench/blk.py "$@"
