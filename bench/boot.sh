#!/usr/bin/env bash
# Boot benchmark: ignition vs QEMU microvm (same kernel, command line, disk), on the ELF
# vmlinux-min and on bzImage-min; prints medians and ratios.  RUNS=N (default 3),
# MEM_MIB=N (default 256), KERNELS=elf,bzimage (default both).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x build/ignition ] || make -s all
exec python3 bench/boot.py "$@"
