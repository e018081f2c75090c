#!/bin/bash
# tests/nested/run.sh — run a command with a working /dev/kvm, inside an L1
# Linux guest booted under QEMU TCG with an emulated AMD SVM CPU.
#
# usage: tests/nested/run.sh [-C DIR] [-e NAME[=VALUE]]... [-v] [--] CMD [ARGS...]
#   -C DIR   working directory for CMD (default: current directory)
#   -e NAME[=VALUE]  export NAME into CMD's environment (value taken from this
#            environment if omitted); otherwise CMD gets only HOME/TERM/PATH
#   -v       show all L1 kernel messages (default: quiet kernel)
#   CMD runs as root in a chroot of this machine's root filesystem (mounted
#   read-write over 9p), with fresh /proc /sys /dev (devtmpfs, incl. /dev/kvm)
#   /tmp /run (tmpfs: NOT the host's /tmp!). Exit status = CMD's exit status;
#   125 = harness failure (no status came back), 124 = timeout.
#
# Environment:
#   NESTED_DIR      build/cache dir (default <repo>/build/nested); setup.sh is
#                   run automatically if the kernel/initramfs are missing
#   NESTED_CPU      QEMU -cpu model (default: max,family=15,model=107,-avx,-avx2, see
#                   README.md; e.g. EPYC,+svm,+npt)
#   NESTED_SMP      L1 vCPUs (default 1: README.md "QEMU" says why)  NESTED_MEM  L1 MiB (default 4096)
#   NESTED_CACHE    9p cache mode for the host root: loose (default; fast, fine
#                   because the host does not touch the files while L1 runs),
#                   mmap, or none (coherent but ~4x slower exec/compile)
#   NESTED_APPEND   extra L1 kernel parameters, e.g. "kvm_amd.npt=0"
#   NESTED_TIMEOUT  seconds before the L1 is killed (default 1800; 0 = none)
#   NESTED_LOG      also append the (CR-stripped) L1 console to this file
#   NESTED_QEMU     qemu binary (default: $NESTED_DIR/qemu from backports, see qemu.sh,
#                   else qemu-system-x86_64)
#   NESTED_BIOS     firmware for L1 (default QEMU's qboot.rom if present, which
#                   boots faster than SeaBIOS; "none" = QEMU's default)
set -u

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
export NESTED_DIR=${NESTED_DIR:-$repo/build/nested}
wd=$PWD
verbose=0
envs=()
while [ $# -gt 0 ]; do
	case $1 in
	-C) wd=$2; shift 2 ;;
	-e)
		case $2 in
		*=*) envs+=("$2") ;;
		*) [ -n "${!2+x}" ] && envs+=("$2=${!2}") ;;
		esac
		shift 2 ;;
	-v) verbose=1; shift ;;
	--) shift; break ;;
	-h | --help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	-*) echo "run.sh: unknown option $1" >&2; exit 2 ;;
	*) break ;;
	esac
done
[ $# -gt 0 ] || { echo "usage: $0 [-C DIR] [-v] CMD [ARGS...]" >&2; exit 2; }
wd=$(cd "$wd" && pwd) || exit 2

"$here/setup.sh" || exit 125
# Physical path: L1 writes the status file through its 9p view of this machine before it
# chroots, where an absolute symlink on the way (a build/ linked elsewhere) would resolve in
# the initramfs instead.
DIR=$(cd "$NESTED_DIR" && pwd -P)
case $DIR in *[[:space:]]*) echo "run.sh: NESTED_DIR must not contain spaces" >&2; exit 2 ;; esac
case $DIR in /tmp | /tmp/* | /run/* | /dev/* | /proc/* | /sys/*)
	echo "run.sh: NESTED_DIR must not be under /tmp,/run (L1 mounts tmpfs there)" >&2; exit 2 ;;
esac

job=$(mktemp -d "$DIR/job.XXXXXX") || exit 125
trap 'rm -rf "$job"' EXIT
q() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }
{
	for e in ${envs[@]+"${envs[@]}"}; do echo "export ${e%%=*}=$(q "${e#*=}")"; done
	echo "cd $(q "$wd") || exit 125"
	printf 'exec'
	for a in "$@"; do printf ' %s' "$(q "$a")"; done
	echo
} >"$job/cmd.sh"
# In L1, init.sh records the state of any L2 guest that triple-faults (svm_shutdown.py says why).
cp "$here/svm_shutdown.py" "$job/" || exit 125

if [ "$verbose" = 1 ]; then klog="loglevel=7"; else klog="quiet loglevel=1"; fi
append="console=ttyS0 panic=-1 mitigations=off $klog nested.cmd=$job/cmd.sh nested.status=$job/status nested.cache=${NESTED_CACHE:-loose} ${NESTED_APPEND:-}"
tmo=${NESTED_TIMEOUT:-1800}
pre=()
[ "$tmo" != 0 ] && pre=(timeout -k 10 "$tmo")

# QEMU: NESTED_QEMU, else the backports one setup.sh extracted (qemu.sh says why), else
# the system's, each with its own firmware directory.
qemu=${NESTED_QEMU:-}
datadir=()
if [ -z "$qemu" ] && [ -x "$DIR/qemu/usr/bin/qemu-system-x86_64" ]; then
	qemu=$DIR/qemu/usr/bin/qemu-system-x86_64
	datadir=(-L "$DIR/qemu/usr/share/qemu")
fi
qemu=${qemu:-qemu-system-x86_64}
# qboot: a much quicker firmware than SeaBIOS for -kernel boots (and no
# terminal-control junk on the console); fall back to QEMU's default.
bios=()
for f in ${NESTED_BIOS:-${datadir[1]:-/usr/share/qemu}/qboot.rom /usr/share/seabios/qboot.rom}; do
	[ -f "$f" ] && { bios=(-bios "$f"); break; }
done

start=$(date +%s.%N)
"${pre[@]}" "$qemu" ${datadir[@]+"${datadir[@]}"} \
	-accel tcg -cpu "${NESTED_CPU:-max,family=15,model=107,-avx,-avx2}" -smp "${NESTED_SMP:-1}" -m "${NESTED_MEM:-4096}" \
	-nographic -no-reboot -nodefaults -serial stdio -monitor none ${bios[@]+"${bios[@]}"} \
	-kernel "$DIR/vmlinuz" -initrd "$DIR/initramfs.cpio.gz" -append "$append" \
	-fsdev local,id=h,path=/,security_model=passthrough,multidevs=remap \
	-device virtio-9p-pci,fsdev=h,mount_tag=hostroot \
	</dev/null 2>&1 | sed -u 's/\r//g' | if [ -n "${NESTED_LOG:-}" ]; then tee -a "$NESTED_LOG"; else cat; fi
qrc=${PIPESTATUS[0]}
end=$(date +%s.%N)
secs=$(echo "$end - $start" | bc 2>/dev/null || echo "?")

if [ -s "$job/status" ]; then
	rc=$(cat "$job/status")
elif [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then
	echo "run.sh: L1 timed out after ${tmo}s" >&2
	rc=124
else
	echo "run.sh: no exit status from L1 (qemu exit $qrc)" >&2
	rc=125
fi
echo "run.sh: exit $rc, L1 wall time ${secs}s" >&2
exit "$rc"
