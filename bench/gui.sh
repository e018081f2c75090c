#!/usr/bin/env bash
# GUI benchmark: ignition vs QEMU microvm + virtio-gpu + VNC on the desktop guest (sway + foot):
# boot to foot, key-to-screen latency, frames per second, RSS of a GUI vs a console guest;
# one run each, with ratios (bench/gui.py says how each figure is taken).
# VMMS=qemu|ignition runs one side; MEM_MIB=N (default 512), KEYS=N, FPS_SECONDS=N.
set -euo pipefail
cd "$(dirname "$0")/.."
case ${VMMS:-ignition} in *ignition*) [ -x build/ignition ] && [ -f build/ignition-ui.so ] || make -s all ;; esac
[ -f guest/out/rootfs-gui.ext4 ] || { echo "bench/gui: run 'make guest-gui' first" >&2; exit 2; }
exec python3 bench/gui.py "$@"
