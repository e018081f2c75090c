#!/bin/bash
# tests/nested/setup.sh — prepare the L1 kernel + initramfs used by run.sh.
#
# Downloads Debian's own kernel package (the version linux-image-amd64 currently
# points at) with `apt-get download`, extracts vmlinuz and the handful of modules
# L1 needs (kvm, kvm_amd and 9p over virtio), and builds a busybox-static
# initramfs whose /init mounts the host's root filesystem over 9p, chroots into
# it and runs a command (see init.sh).
#
# Output (cached; rerun is a no-op unless the kernel version changes or
# init.sh/setup.sh are newer than the initramfs):
#   $NESTED_DIR/vmlinuz  $NESTED_DIR/initramfs.cpio.gz  $NESTED_DIR/kver
#   $NESTED_DIR/qemu/    QEMU from <release>-backports (qemu.sh), unless NESTED_QEMU is set
# NESTED_DIR defaults to <repo>/build/nested.
#
# Environment:
#   NESTED_DIR      cache/output directory
#   NESTED_KPKG     kernel package to use (default: resolved from linux-image-amd64)
#   NESTED_FORCE=1  rebuild even if cached
#
# Needs: apt-get, apt-cache, dpkg-deb, depmod (kmod), cpio, gzip,
# busybox-static (/bin/busybox must be statically linked).
set -eu -o pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
DIR=${NESTED_DIR:-$repo/build/nested}
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)

log() { echo "nested/setup: $*" >&2; }
die() { log "error: $*"; exit 1; }

for t in apt-get apt-cache dpkg-deb depmod cpio gzip; do
	command -v "$t" >/dev/null 2>&1 || die "missing tool: $t"
done

bb=
for c in /bin/busybox /usr/bin/busybox; do
	[ -x "$c" ] || continue
	# busybox-static: no dynamic loader in the ELF
	if ! LC_ALL=C readelf -l "$c" 2>/dev/null | grep -q 'interpreter'; then bb=$c; break; fi
done
[ -n "$bb" ] || die "need a static busybox (apt-get install busybox-static)"

# 0. QEMU from the release's backports suite, extracted under $DIR/qemu (the system's own
#    packages are untouched).  Debian 12's QEMU 7.2 brought L1's kernel down about once per
#    10 minutes of guest tests (README.md, "QEMU"); run.sh uses this one when it is there.
qemu_dir=$DIR/qemu
if [ -z "${NESTED_QEMU:-}" ] && { [ "${NESTED_FORCE:-0}" = 1 ] || [ ! -x "$qemu_dir/usr/bin/qemu-system-x86_64" ]; }; then
	if "$here/qemu.sh" "$qemu_dir"; then
		log "QEMU $("$qemu_dir/usr/bin/qemu-system-x86_64" --version | head -n1 | sed 's/.*version //')"
	else
		log "warning: no QEMU from backports; run.sh falls back to $(command -v qemu-system-x86_64 || echo none)"
	fi
fi

# 1. which kernel package?
kpkg=${NESTED_KPKG:-}
if [ -z "$kpkg" ]; then
	kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
		sed -n 's/^ *Depends: *\(linux-image-[0-9][^ ]*-amd64\).*/\1/p' | head -n1)
	[ -n "$kpkg" ] || die "cannot resolve linux-image-amd64 (apt-get update?)"
fi
kver=${kpkg#linux-image-}

out_k=$DIR/vmlinuz
out_i=$DIR/initramfs.cpio.gz
if [ "${NESTED_FORCE:-0}" != 1 ] && [ -f "$out_k" ] && [ -f "$out_i" ] &&
	[ "$(cat "$DIR/kver" 2>/dev/null)" = "$kver" ] &&
	[ "$out_i" -nt "$here/init.sh" ] && [ "$out_i" -nt "$here/setup.sh" ]; then
	log "up to date ($kver) in $DIR"
	exit 0
fi

# 2. download + extract
debs=("$DIR/$kpkg"_*.deb)
if [ ! -f "${debs[0]}" ]; then
	log "downloading $kpkg"
	(cd "$DIR" && apt-get download "$kpkg" 2>&1 | grep -v 'unsandboxed' >&2)
	debs=("$DIR/$kpkg"_*.deb)
	[ -f "${debs[0]}" ] || die "apt-get download $kpkg failed (try apt-get update, or set NESTED_KPKG)"
fi
deb=${debs[0]}
x=$DIR/extract
rm -rf "$x"
mkdir -p "$x"
log "extracting $(basename "$deb")"
dpkg-deb -x "$deb" "$x"
kmod=$x/lib/modules/$kver
[ -d "$kmod" ] || die "no modules dir for $kver in package"
depmod -b "$x" "$kver"

# 3. module closure, in load order (modules.dep lists deps so that the last
#    one must be loaded first, like modprobe does).
want="kvm-amd 9p 9pnet_virtio virtio_pci tun"
order=$DIR/modules.order.tmp
: >"$order"
add() { grep -qxF "$1" "$order" || echo "$1" >>"$order"; }
for m in $want; do
	line=$(grep -E "/$m\.ko(\.[a-z]+)?:" "$kmod/modules.dep" | head -n1) ||
		die "module $m not found in modules.dep"
	mod=${line%%:*}
	deps=${line#*:}
	rev=
	for d in $deps; do rev="$d $rev"; done
	for d in $rev; do add "$d"; done
	add "$mod"
done

# 4. initramfs tree
root=$DIR/initramfs
rm -rf "$root"
mkdir -p "$root/bin" "$root/dev" "$root/proc" "$root/sys" "$root/mnt" "$root/lib/modules"
cp "$bb" "$root/bin/busybox"
ln -s busybox "$root/bin/sh"
while read -r m; do
	f=$kmod/$m
	case $f in
	*.xz) xz -dc "$f" >"$root/lib/modules/$(basename "${m%.xz}")" ;;
	*.zst) zstd -qdc "$f" >"$root/lib/modules/$(basename "${m%.zst}")" ;;
	*) cp "$f" "$root/lib/modules/" ;;
	esac
	basename "${m%.*}" | sed 's/\.ko$//' >>"$root/lib/modules/load.order"
done <"$order"
# load.order holds names like kvm-amd; init.sh appends .ko
rm -f "$order"
cp "$here/init.sh" "$root/init"
chmod 755 "$root/init"
# minimal device nodes for the very first moments before devtmpfs is mounted
mknod -m 600 "$root/dev/console" c 5 1 2>/dev/null || true
mknod -m 666 "$root/dev/null" c 1 3 2>/dev/null || true

(cd "$root" && find . -print0 | cpio --null -o -H newc --quiet) | gzip -1 >"$out_i.tmp"
mv "$out_i.tmp" "$out_i"
cp "$x/boot/vmlinuz-$kver" "$out_k"
echo "$kver" >"$DIR/kver"
rm -rf "$x"
log "ready: $out_k, $out_i ($kver; modules: $(tr '\n' ' ' <"$root/lib/modules/load.order"))"
