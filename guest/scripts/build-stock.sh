#!/bin/bash
# Fetch a stock Debian kernel and build its initramfs.  FLAVOUR "cloud" (the default):
#   OUT/vmlinuz-stock     the kernel of linux-image-<abi>-cloud-amd64 (the package that
#                         linux-image-cloud-amd64 depends on today)
#   OUT/initrd-stock.img  gzip'd newc cpio: busybox-static, the modules of
#                         stock/modules.txt plus their dependencies, stock/init
#   OUT/stock-version     the package and its version
# FLAVOUR "gui": the same from Debian's generic kernel (linux-image-amd64: the cloud kernel
# has no DRM at all) with stock/modules-gui.txt (virtio-gpu, virtio-input, evdev too), as
# OUT/vmlinuz-gui-stock, OUT/initrd-gui-stock.img, OUT/gui-stock-version: the desktop guest
# booted with a stock kernel (`--guest gui-stock`).
# The .deb and its extracted tree stay in CACHE/stock/ (CACHE/stock-gui/); a stamp holding
# the package version and a hash of the inputs skips the work when nothing changed.
#
# usage: build-stock.sh GUEST_DIR OUT_DIR CACHE_DIR [cloud|gui]
set -euo pipefail

RECIPE=2
guest=$1 out=$2 flavour=${4:-cloud}
busybox=/bin/busybox

tag=stock
[ "$flavour" = gui ] && tag=stock-gui
say() { printf '[%s] %s\n' "$tag" "$*"; }
die() { printf '[%s] error: %s\n' "$tag" "$*" >&2; exit 1; }

case $flavour in
cloud)
	meta=linux-image-cloud-amd64 cache=$3/stock modules=$guest/stock/modules.txt
	kernel_out=vmlinuz-stock initrd_out=initrd-stock.img version_out=stock-version
	;;
gui)
	meta=linux-image-amd64 cache=$3/stock-gui modules=$guest/stock/modules-gui.txt
	kernel_out=vmlinuz-gui-stock initrd_out=initrd-gui-stock.img version_out=gui-stock-version
	;;
*) die "flavour '$flavour' is not cloud or gui" ;;
esac
pkg=$(apt-cache depends "$meta" 2>/dev/null | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
[ -n "$pkg" ] || die "cannot resolve $meta with apt-cache (run apt-get update?)"
ver=$(apt-cache policy "$pkg" | awk '/Candidate:/ { print $2; exit }')
[ -n "$ver" ] && [ "$ver" != "(none)" ] || die "no candidate version for $pkg"
kver=${pkg#linux-image-}

key=$({
	echo "recipe $RECIPE $pkg $ver"
	cat "$guest/stock/init" "$modules" "$busybox"
} | sha256sum | cut -c1-16)
if [ -f "$cache/stamp" ] && [ "$(cat "$cache/stamp")" = "$key" ] &&
	[ -f "$out/$kernel_out" ] && [ -f "$out/$initrd_out" ]; then
	say "$pkg $ver: up to date"
	exit 0
fi

mkdir -p "$cache" "$out"
deb=$(ls "$cache/${pkg}_"*.deb 2>/dev/null | head -n1 || true)
if [ -z "$deb" ] || [ "$(dpkg-deb -f "$deb" Version)" != "$ver" ]; then
	rm -f "$cache"/*.deb
	say "downloading $pkg $ver"
	# apt's download sandbox user cannot write into a root-owned cache; as root, skip it.
	sandbox=()
	[ "$(id -u)" = 0 ] && sandbox=(-o APT::Sandbox::User=root)
	(cd "$cache" && apt-get -q "${sandbox[@]}" download "$pkg=$ver") >/dev/null ||
		die "apt-get download $pkg=$ver failed"
	deb=$(ls "$cache/${pkg}_"*.deb | head -n1)
fi

say "extracting $(basename "$deb")"
tree=$cache/tree
rm -rf "$tree"
dpkg-deb -x "$deb" "$tree"
# The package ships no modules.dep (its postinst runs depmod): make one here.
depmod -b "$tree" "$kver"

say "initramfs: busybox + modules"
stage=$cache/initrd
rm -rf "$stage"
mkdir -p "$stage/bin" "$stage/lib/modules" "$stage/dev" "$stage/proc" "$stage/sys" "$stage/newroot"
cp "$busybox" "$stage/bin/busybox"
ln -s busybox "$stage/bin/sh"
cp "$guest/stock/init" "$stage/init"
chmod 755 "$stage/init"

: >"$stage/lib/modules/load-order"
while read -r line; do
	case $line in '' | '#'*) continue ;; esac
	optional=0
	case $line in '?'*) optional=1; line=${line#?} ;; esac
	if ! deps=$(modprobe -d "$tree" -S "$kver" --show-depends "$line" 2>/dev/null); then
		[ $optional = 1 ] && { say "  (optional $line not in this kernel)"; continue; }
		die "module $line not found in $pkg"
	fi
	while read -r kind path _; do
		case $kind in
		insmod)
			name=$(basename "$path")
			if ! grep -qxF "$name" "$stage/lib/modules/load-order"; then
				# modprobe -d prints absolute paths inside $tree
				cp "$path" "$stage/lib/modules/$name"
				echo "$name" >>"$stage/lib/modules/load-order"
			fi ;;
		builtin) ;;
		esac
	done <<<"$deps"
done <"$modules"
say "  modules: $(tr '\n' ' ' <"$stage/lib/modules/load-order")"

(cd "$stage" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) |
	gzip -9n >"$out/$initrd_out.tmp"
mv "$out/$initrd_out.tmp" "$out/$initrd_out"
cp "$tree/boot/vmlinuz-$kver" "$out/$kernel_out"
echo "$pkg $ver" >"$out/$version_out"
echo "$key" >"$cache/stamp"
say "done: $kernel_out ($pkg $ver), $initrd_out $(stat -c %s "$out/$initrd_out") bytes"
