#!/bin/sh
# /init of the nested-KVM L1 initramfs (installed by setup.sh; busybox-static).
#
# Kernel command line parameters read here:
#   nested.cmd=PATH      script (path in the HOST filesystem) run via /bin/sh
#                        inside a chroot of the host root; no cmd -> a shell on
#                        the console if interactive, else just the checks
#   nested.status=PATH   host path that receives the command's exit status
#   nested.cache=MODE    9p cache mode (default: none)
#   <module>.<p>=<v>     passed to insmod of that module (kvm_amd.npt=0, ...)
#   nested.debug=1       `set -x`
export PATH=/bin
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null

say() { echo "nested/init: $*"; }
cmdline=$(cat /proc/cmdline)
arg() { # arg NAME -> value of NAME= on the command line (last wins)
	v=
	for w in $cmdline; do
		case $w in "$1="*) v=${w#*=} ;; esac
	done
	echo "$v"
}
[ "$(arg nested.debug)" = 1 ] && set -x

t0=$(cut -d' ' -f1 /proc/uptime)
say "up at ${t0}s"

# modules, in dependency order, with parameters from the command line
for m in $(cat /lib/modules/load.order); do
	u=$(echo "$m" | tr - _)
	params=
	for w in $cmdline; do
		case $w in "$u."*=* | "$m."*=*) params="$params ${w#*.}" ;; esac
	done
	# shellcheck disable=SC2086
	insmod /lib/modules/$m.ko $params || say "insmod $m$params failed"
done

# Loopback up: tests talk to servers on 127.0.0.1 in L1 (VNC, slirp's host-loopback
# forwards); without it a connect there fails with "Network is unreachable".
ip link set lo up 2>/dev/null || ifconfig lo 127.0.0.1 up || say "cannot bring up lo"

status_path=$(arg nested.status)
cmd=$(arg nested.cmd)
cache=$(arg nested.cache)
rc=0
finish() {
	if [ -n "$status_path" ] && [ -d /mnt/proc ]; then
		echo "$1" >"/mnt$status_path" || say "cannot write status file"
	fi
	[ -n "$cmd" ] && [ -e /mnt/proc/self ] && chroot /mnt python3 "${cmd%/*}/svm_shutdown.py" report
	sync
	for d in dev/pts dev tmp run sys proc; do umount "/mnt/$d" 2>/dev/null; done
	umount /mnt 2>/dev/null
	say "exit status $1 at $(cut -d' ' -f1 /proc/uptime)s"
	poweroff -f
}

if ! mount -t 9p -o "trans=virtio,version=9p2000.L,msize=512000,access=any,cache=${cache:-none}" hostroot /mnt; then
	say "mounting host root over 9p failed"
	dmesg | tail -n 20
	status_path=
	finish 125
fi
mount -t proc proc /mnt/proc
mount -t sysfs sysfs /mnt/sys
mount -t devtmpfs devtmpfs /mnt/dev
mkdir -p /mnt/dev/pts /mnt/dev/shm
# What udev would add: bash's process substitution needs /dev/fd.
ln -sf /proc/self/fd /mnt/dev/fd
ln -sf /proc/self/fd/0 /mnt/dev/stdin
ln -sf /proc/self/fd/1 /mnt/dev/stdout
ln -sf /proc/self/fd/2 /mnt/dev/stderr
mount -t devpts devpts /mnt/dev/pts 2>/dev/null
mount -t tmpfs tmpfs /mnt/dev/shm 2>/dev/null
mount -t tmpfs tmpfs /mnt/tmp
[ -d /mnt/run ] && mount -t tmpfs tmpfs /mnt/run
if [ ! -e /mnt/dev/kvm ] && [ -e /sys/class/misc/kvm/dev ]; then
	mknod /mnt/dev/kvm c "$(cut -d: -f1 /sys/class/misc/kvm/dev)" "$(cut -d: -f2 /sys/class/misc/kvm/dev)"
fi
# As on a Debian host: root and the kvm group (the CLI test checks that others are refused).
kvm_gid=$(grep '^kvm:' /mnt/etc/group 2>/dev/null | cut -d: -f3)
[ -n "$kvm_gid" ] && chgrp "$kvm_gid" /mnt/dev/kvm 2>/dev/null
chmod 660 /mnt/dev/kvm 2>/dev/null
if [ -e /mnt/dev/kvm ]; then
	say "/dev/kvm present; kvm_amd params: $(cd /sys/module/kvm_amd/parameters 2>/dev/null && for p in npt nested avic vls vgif; do printf '%s=%s ' $p "$(cat $p 2>/dev/null)"; done)"
else
	say "no /dev/kvm; kvm dmesg:"
	dmesg | grep -i -E 'kvm|svm' | tail -n 20
fi
say "ready at $(cut -d' ' -f1 /proc/uptime)s"

export HOME=/root TERM=dumb PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
if [ -n "$cmd" ]; then
	chroot /mnt python3 "${cmd%/*}/svm_shutdown.py" arm
	chroot /mnt /bin/sh "$cmd"
	rc=$?
else
	chroot /mnt /bin/sh -c 'ls -l /dev/kvm; grep -c -w svm /proc/cpuinfo; dmesg | grep -i -E "kvm|svm"'
	rc=$?
fi
finish $rc
