#!/bin/bash
# Build the desktop guest's root file system (out/rootfs-gui.ext4): Debian bookworm from the
# host's own apt sources with mmdebstrap (sway, foot, seatd, udev, a font; no systemd as
# init), our init (gui/init) and files (gui/files/), the static guest helpers of the busybox
# rootfs, then `mke2fs -d` into an ext4 image sized with headroom.
# FLAVOUR browser (out/rootfs-browser.ext4, `make guest-browser`) is the same desktop with
# Firefox ESR as cage's client instead of foot, the files of browser/files/ on top, and the
# busybox rootfs's DHCP client set-up (ign-netwatch): docs/browser.md.
# Cached in CACHE/<flavour>-<key>/ where <key> hashes the package list, the host's apt sources, init,
# files, the helpers' sources and RECIPE: an unchanged tree never rebuilds. Bump RECIPE when
# this script changes what goes into the image or how it is made.
# mmdebstrap needs root here (root mode: files owned by root, device nodes in /dev).
#
# usage: build.sh GUEST_DIR OUTPUT_IMAGE CACHE_DIR [gui|browser]
set -euo pipefail

RECIPE=5
SUITE=bookworm
guest=$1 image=$2 cache=$3 flavour=${4:-gui}
# Debian packages of the desktop (dependencies come along; no Recommends).
case $flavour in
# The desktop: sway, which follows a resized display (ign-gui-mode); cage 0.1.4 does not.
gui) PACKAGES=(sway foot seatd libseat1 udev fontconfig fonts-dejavu-core xkb-data busybox mount) ;;
# The browser: busybox-static for its applets (udhcpc, ip, httpd, devmem: Debian's dynamic
# busybox lacks some), CA certificates for HTTPS.
browser) PACKAGES=(cage firefox-esr seatd libseat1 udev fontconfig fonts-dejavu-core xkb-data
	busybox-static mount ca-certificates) ;;
*) echo "usage: build.sh GUEST_DIR OUTPUT_IMAGE CACHE_DIR [gui|browser]" >&2; exit 2 ;;
esac
say() { printf '[rootfs-%s] %s\n' "$flavour" "$*"; }
die() { printf '[rootfs-%s] error: %s\n' "$flavour" "$*" >&2; exit 1; }
# The browser's own files and helpers (hashed into the cache key like the desktop's).
extra_files=()
[ "$flavour" = browser ] && extra_files=("$guest/browser/files" "$guest/rootfs/files/usr/sbin/ign-netwatch"
	"$guest/rootfs/files/etc/udhcpc/default.script" "$guest/rootfs/ign-linkwait.c"
	"$guest/rootfs/files/usr/bin/ign-snapshot")

# The host's own apt sources, binary ("deb") entries only: one-line entries, and deb822
# stanzas whose Types has "deb" (written as Types: deb, so no source indices are fetched).
host_list() {
	local f
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -f "$f" ] && grep -E '^[[:space:]]*deb[[:space:]]' "$f"
	done
	return 0
}
host_deb822() {
	local f
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		awk 'BEGIN { RS = ""; ORS = "" }
			{ keep = 0; out = ""; n = split($0, l, "\n")
			  for (i = 1; i <= n; i++) {
				if (l[i] ~ /^#/) continue
				if (l[i] ~ /^Types:/) { if (l[i] ~ /[: ]deb( |$)/) keep = 1; l[i] = "Types: deb" }
				out = out l[i] "\n"
			  }
			  if (keep) print out "\n" }' "$f"
	done
}

list=$(host_list)
deb822=$(host_deb822)
sources="$list$deb822"
[ -n "$sources" ] || die "no Debian binary package sources in /etc/apt/sources.list{,.d/}"

key=$({
	echo "recipe $RECIPE $SUITE ${PACKAGES[*]}"
	echo "$sources"
	cat "$guest/gui/init" "$guest/rootfs/ign-blkbench.c" "$guest/rootfs/ign-touch.c" \
		"$guest/agent/ign-agent.c" "$guest/../src/agent/proto.c" "$guest/../src/agent/proto.h"
	(cd "$guest/gui/files" && find . -print0 | LC_ALL=C sort -z | xargs -0 ls -ld --time-style=+ | awk '{ $2 = ""; print }' &&
		find . -type f -print0 | LC_ALL=C sort -z | xargs -0 cat)
	for f in "${extra_files[@]}"; do
		(cd "$(dirname "$f")" && b=$(basename "$f") &&
			find "$b" -print0 | LC_ALL=C sort -z | xargs -0 ls -ld --time-style=+ | awk '{ $2 = ""; print }' &&
			find "$b" -type f -print0 | LC_ALL=C sort -z | xargs -0 cat)
	done
} | sha256sum | cut -c1-16)
dir=$cache/$flavour-$key
out=rootfs-$flavour.ext4

if [ -f "$dir/done" ]; then
	cmp -s "$dir/$out" "$image" 2>/dev/null ||
		{ cp "$dir/$out" "$image.tmp" && mv "$image.tmp" "$image"; }
	say "cached build $key: nothing to do"
	exit 0
fi
[ "$(id -u)" = 0 ] || die "mmdebstrap builds the desktop image as root here: run 'sudo make guest-$flavour'"

start=$(date +%s)
rm -rf "$dir"
mkdir -p "$dir"
log=$dir/build.log
stage=$dir/root
mirrors=()
[ -z "$list" ] || { echo "$list" >"$dir/host.list" && mirrors+=("$dir/host.list"); }
[ -z "$deb822" ] || { echo "$deb822" >"$dir/host.sources" && mirrors+=("$dir/host.sources"); }
say "mmdebstrap $SUITE (${PACKAGES[*]}) from the host's apt sources; log: $log"
# Recommends off (they would bring Xwayland and more); sway depends on Mesa's GL drivers
# (~40 MB, and ~140 MB of LLVM and Z3 under them) that nothing loads here (wlroots draws with
# pixman): their files are left out (path-exclude; the packages stay installed); no
# documentation, manuals or translations; no libinput device-group rule (it runs a program
# per input device with a phys attribute, the virtio ones included, seconds each on kvm_pvm
# hosts, for tablet/pad pairing only). The customize hooks build the font cache so the
# first start of foot does not, remove udev's hardware database (13 MB that udevd maps and
# searches for every input device, seconds each on kvm_pvm hosts; it has no entry for
# virtio devices), give root an empty password (serial console login) and add
# "user" (uid 1000), who runs the compositor and foot: cage refuses to run as root.
comma_list=$(IFS=,; echo "${PACKAGES[*]}")
set +e
# The merged-usr hook sets up merged /usr the debootstrap way and installs usr-is-merged:
# otherwise the essential init-system-helpers pulls in usrmerge and ~50 MB of Perl.
mmdebstrap --mode=root --variant=essential --include="$comma_list" \
	--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
	--aptopt='APT::Install-Recommends "false"' \
	--dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
	--dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
	--dpkgopt='path-exclude=/usr/share/locale/*' \
	--dpkgopt='path-exclude=/usr/lib/x86_64-linux-gnu/dri/*' \
	--dpkgopt='path-exclude=/usr/lib/x86_64-linux-gnu/libLLVM-*' \
	--dpkgopt='path-exclude=/usr/lib/x86_64-linux-gnu/libz3.so*' \
	--dpkgopt='path-exclude=/lib/udev/rules.d/80-libinput-device-groups.rules' \
	--customize-hook='chroot "$1" fc-cache -f' \
	--customize-hook='rm -f "$1/usr/lib/udev/hwdb.bin"' \
	--customize-hook='sed -i "s/^root:[^:]*:/root::/" "$1/etc/shadow"' \
	--customize-hook='chroot "$1" useradd -m -u 1000 -U -G video,input,render -s /bin/bash user' \
	--customize-hook='rm -f "$1"/var/cache/apt/*.bin "$1"/var/lib/apt/lists/*_Packages' \
	"$SUITE" "$stage" "${mirrors[@]}" 2>&1 | tee -a "$log" |
	sed -un "s/^I: /[rootfs-$flavour]   /p"
rc=${PIPESTATUS[0]}
set -e
[ "$rc" = 0 ] || {
	tail -n 30 "$log" >&2
	die "mmdebstrap failed (full log $log)"
}
t_strap=$(($(date +%s) - start))
say "debootstrapped in ${t_strap} s; adding ignition's files"

install -m 755 "$guest/gui/init" "$stage/usr/sbin/ign-gui-init"
cp -R "$guest/gui/files"/. "$stage"/
chmod 644 "$stage/etc/profile.d/ign-tunables.sh" "$stage/etc/xdg/foot/foot.ini" "$stage/etc/hostname" "$stage/etc/fstab" \
	"$stage/etc/sway/ign-config" "$stage/etc/udev/rules.d/90-ign-gui-mode.rules"
# The static guest helpers of the busybox root file system (rootfs/build.sh explains them).
gcc -static -s -O2 -std=gnu11 -Wall -Wextra -Werror -o "$stage/usr/bin/ign-blkbench" \
	"$guest/rootfs/ign-blkbench.c"
gcc -static -s -O2 -std=gnu11 -Wall -Wextra -Werror -o "$stage/usr/bin/ign-touch" \
	"$guest/rootfs/ign-touch.c"
gcc -static -s -O2 -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE -I"$guest/../src" \
	-o "$stage/usr/sbin/ign-agent" "$guest/agent/ign-agent.c" "$guest/../src/agent/proto.c"
install -m 755 "$guest/rootfs/files/usr/bin/ign-snapshot" "$stage/usr/bin/ign-snapshot"
chown -R 0:0 "$stage/usr/local" "$stage/usr/sbin/ign-gui-init" "$stage/etc/xdg/foot" \
	"$stage/etc/hostname" "$stage/etc/fstab" "$stage/etc/profile.d/ign-tunables.sh" "$stage"/usr/bin/ign-* "$stage/usr/sbin/ign-agent"

if [ "$flavour" = browser ]; then
	# Its files (session, start page, Firefox's settings, fstab) over the desktop's; the
	# busybox rootfs's DHCP set-up (ign-netwatch re-probes a clone's NIC and takes a fresh
	# lease, guest/README.md "Networking") with the busybox applets it calls.
	cp -R "$guest/browser/files"/. "$stage"/
	# cage, not sway, there: no mode switching.
	rm -rf "$stage/etc/sway" "$stage/etc/udev/rules.d/90-ign-gui-mode.rules" \
		"$stage/usr/local/sbin/ign-gui-mode"
	install -m 755 "$guest/rootfs/files/usr/sbin/ign-netwatch" "$stage/usr/sbin/ign-netwatch"
	install -D -m 755 "$guest/rootfs/files/etc/udhcpc/default.script" "$stage/etc/udhcpc/default.script"
	gcc -static -s -O2 -std=gnu11 -Wall -Wextra -Werror -o "$stage/usr/bin/ign-linkwait" \
		"$guest/rootfs/ign-linkwait.c"
	# In /usr/sbin: on ign-netwatch's PATH too (it sets its own).
	for a in udhcpc ip ipcalc usleep devmem httpd; do
		ln -sf /bin/busybox "$stage/usr/sbin/$a"
	done
	# D-Bus clients (Firefox's GLib) want a machine ID; every clone shares this one.
	od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$stage/etc/machine-id"
	echo >>"$stage/etc/machine-id"
	# The root is read-only (cmdline-browser): DHCP writes the resolver's file under /run.
	ln -sf /run/resolv.conf "$stage/etc/resolv.conf"
	chown -R 0:0 "$stage/usr/share/ign-browser" "$stage/etc/ign-session" "$stage/usr/sbin/ign-netwatch" \
		"$stage/etc/udhcpc" "$stage/usr/local" "$stage/usr/bin/ign-linkwait"
	chmod 644 "$stage/etc/ign-session" "$stage/etc/machine-id" "$stage/etc/hostname" "$stage/etc/fstab"
fi

# Size: what the tree uses plus a quarter, at least 64 MiB free, in 16 MiB steps.
used_mib=$(($(du -sxk "$stage" | cut -f1) / 1024))
extra=$((used_mib / 4 > 64 ? used_mib / 4 : 64))
size=$(((used_mib + extra + 15) / 16 * 16))
inodes=$(($(find "$stage" -xdev | wc -l) * 2 + 8192))
say "tree: ${used_mib} MiB, $(find "$stage" -xdev | wc -l) entries; making a ${size} MiB ext4 image"
rm -f "$dir/$out"
truncate -s "${size}M" "$dir/$out"
# As rootfs/build.sh: 4 KiB blocks, 256-byte inodes, no reserved blocks, fixed UUID and hash
# seed, inode tables and journal zeroed now instead of by ext4lazyinit in every guest boot.
mke2fs -q -F -t ext4 -b 4096 -I 256 -N "$inodes" -L "ignition-$flavour" -m 0 \
	-U 6a1d2c3b-4e5f-4a6b-8c7d-0e1f2a3b4c5d \
	-E lazy_itable_init=0,lazy_journal_init=0,hash_seed=1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f \
	-d "$stage" "$dir/$out" >>"$log" 2>&1 || die "mke2fs failed (see $log)"
e2fsck -fn "$dir/$out" >>"$log" 2>&1 || die "e2fsck finds the new image inconsistent (see $log)"
rm -rf "$stage"
touch "$dir/done"
mkdir -p "$(dirname "$image")"
cp "$dir/$out" "$image.tmp" && mv "$image.tmp" "$image"
say "done: $image ($size MiB, $(du -k "$image" | cut -f1) KiB allocated), $(($(date +%s) - start)) s"
