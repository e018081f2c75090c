#!/bin/bash
# Build the ext4 root file system image without loop mounts or root privileges:
# stage a tree (busybox-static + applet symlinks + rootfs/files), turn it into an
# image with `mke2fs -d`, then fix ownership and add device nodes with debugfs.
#
# usage: build.sh GUEST_DIR OUTPUT_IMAGE STAGING_DIR [SIZE_MIB]
set -euo pipefail

guest=$1 image=$2 stage=$3 size=${4:-64}
busybox=/bin/busybox
files=$guest/rootfs/files

say() { printf '[rootfs] %s\n' "$*"; }

rm -rf "$stage"
mkdir -p "$stage"
cd "$stage"
mkdir -p bin sbin usr/bin usr/sbin etc dev proc sys tmp run root mnt var/log lib
chmod 1777 tmp
chmod 700 root

cp "$busybox" bin/busybox
chmod 755 bin/busybox
# Applet links where busybox itself would put them (bin/sh, sbin/init, usr/bin/...).
n=0
for path in $("$busybox" --list-full); do
	[ -e "$path" ] || [ -L "$path" ] && continue
	mkdir -p "$(dirname "$path")"
	ln -s /bin/busybox "$path"
	n=$((n + 1))
done

# Dynamically linked Debian programs the guest tests need, copied with the shared
# libraries ldd lists (the packages are in guest/packages.txt):
#   socat  vsock both ways (VSOCK-LISTEN / VSOCK-CONNECT), tests/guest/dev_vsock.py
add_dynamic() {
	local bin=$1 pkg=$2 lib
	[ -x "$bin" ] || { say "error: $bin missing: install Debian package $pkg"; exit 1; }
	mkdir -p ".$(dirname "$bin")"
	cp -L "$bin" ".$bin"
	for lib in $(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'); do
		mkdir -p ".$(dirname "$lib")"
		[ -e ".$lib" ] || cp -L "$lib" ".$lib"
	done
}
add_dynamic /usr/bin/socat socat

# Guest-side helper of bench/blk.sh (O_DIRECT sequential and random block I/O), static so it
# needs no libraries here: Debian's fio would bring some 80 MB of them (see the source).
gcc -static -s -O2 -std=gnu11 -Wall -Wextra -Werror -o usr/bin/ign-blkbench \
	"$guest/rootfs/ign-blkbench.c"
# Guest-side helper of the balloon test: touch N MiB from user space (see the source).
gcc -static -s -O2 -std=gnu11 -Wall -Wextra -Werror -o usr/bin/ign-touch "$guest/rootfs/ign-touch.c"
# ign-netwatch's wait for a link change (a netlink socket instead of a poll a second).
gcc -static -s -O2 -std=gnu11 -Wall -Wextra -Werror -o usr/bin/ign-linkwait \
	"$guest/rootfs/ign-linkwait.c"
# The agent of `ignition mcp` (docs/agent.md): exec and files over vsock port 52, started by
# init.  Its frame codec is the host's (src/agent/proto.c).
gcc -static -s -O2 -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE -I"$guest/../src" \
	-o usr/sbin/ign-agent "$guest/agent/ign-agent.c" "$guest/../src/agent/proto.c"

cp -R "$files"/. .
chmod 644 etc/passwd etc/group etc/hostname etc/hosts etc/issue etc/motd etc/profile etc/fstab
chmod 600 etc/shadow
chmod 644 etc/inittab
chmod 755 etc/init.d/rcS etc/init.d/rcK
ln -sf /proc/mounts etc/mtab

say "staged $(find . | wc -l) entries ($n applet links); making a ${size} MiB ext4 image"
rm -f "$image.tmp"
truncate -s "${size}M" "$image.tmp"
# Fixed UUID and hash seed: the same inputs give the same directory layout.
# Inode tables and the journal are zeroed now, not by ext4lazyinit in every guest boot.
# 4 KiB blocks and 256-byte inodes (mke2fs would pick the "small" profile, 1 KiB
# blocks and 128-byte inodes without post-2038 timestamps, for a disk this size).
mke2fs -q -F -t ext4 -b 4096 -I 256 -L ignition-root -m 0 \
	-U 5f0c6a1e-7b7d-4c53-9d51-2a9b1c3e8f00 \
	-E lazy_itable_init=0,lazy_journal_init=0,hash_seed=0b4d6c1a-3e2f-4a5b-8c7d-9e0f1a2b3c4d,root_owner=0:0 \
	-d "$stage" "$image.tmp"

# Everything in the image belongs to root, whoever built it; /dev/console and
# /dev/null exist before devtmpfs is mounted (the kernel opens the console first).
{
	find . -mindepth 1 | sed 's|^\.||' | while read -r p; do
		echo "sif \"$p\" uid 0"
		echo "sif \"$p\" gid 0"
	done
	echo "cd /dev"
	echo "mknod console c 5 1"
	echo "mknod null c 1 3"
	echo "sif /dev/console mode 020600"
	echo "sif /dev/null mode 020666"
} | debugfs -w -f - "$image.tmp" >/dev/null 2>"$stage.debugfs.log" || {
	cat "$stage.debugfs.log" >&2
	exit 1
}
if grep -v '^debugfs ' "$stage.debugfs.log" | grep -q .; then
	cat "$stage.debugfs.log" >&2
	say "error: debugfs reported problems (above)"
	exit 1
fi
rm -f "$stage.debugfs.log"
e2fsck -fn "$image.tmp" >/dev/null 2>&1 || { say "error: e2fsck finds the new image inconsistent"; exit 1; }
mv "$image.tmp" "$image"
say "done: $image ($size MiB, $(du -k "$image" | cut -f1) KiB allocated)"
