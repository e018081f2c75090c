#!/bin/bash
# Build the minimal guest kernel: Debian linux-source-6.1 + `make tinyconfig` +
# kernel/minimal.config + kernel/*.patch. Results are cached in CACHE/kernel-min-<key>/
# where <key> hashes the fragment, the patch(es), the linux-source package version and
# RECIPE below, so an unchanged tree never rebuilds. Bump RECIPE when this script
# changes how the kernel is configured or built.
#
# usage: build-kernel.sh GUEST_DIR OUT_DIR CACHE_DIR
set -euo pipefail

RECIPE=1

guest=$1 out=$2 cache=$3
# Called from make: do not let the outer make's flags or command-line variables
# (CC=..., CFLAGS=..., jobserver) leak into the kernel's own build.
unset MAKEFLAGS MFLAGS MAKEOVERRIDES MAKELEVEL
src_tar=/usr/src/linux-source-6.1.tar.xz
fragment=$guest/kernel/minimal.config
patches=$(ls "$guest"/kernel/*.patch 2>/dev/null | sort || true)

say() { printf '[kernel-min] %s\n' "$*"; }
die() { printf '[kernel-min] error: %s\n' "$*" >&2; exit 1; }

[ -r "$src_tar" ] || die "$src_tar missing (install Debian package linux-source-6.1)"
src_ver=$(dpkg-query -W -f='${Version}' linux-source-6.1 2>/dev/null || echo unknown)

key=$({
	echo "recipe $RECIPE linux-source-6.1 $src_ver"
	cat "$fragment"
	for p in $patches; do cat "$p"; done
} | sha256sum | cut -c1-16)
dir=$cache/kernel-min-$key

install_outputs() {
	mkdir -p "$out"
	cp "$dir/bzImage" "$out/bzImage-min.tmp" && mv "$out/bzImage-min.tmp" "$out/bzImage-min"
	cp "$dir/vmlinux" "$out/vmlinux-min.tmp" && mv "$out/vmlinux-min.tmp" "$out/vmlinux-min"
	cp "$dir/config" "$out/config-min"
}

if [ -f "$dir/done" ]; then
	if ! cmp -s "$dir/bzImage" "$out/bzImage-min" 2>/dev/null ||
		! cmp -s "$dir/vmlinux" "$out/vmlinux-min" 2>/dev/null; then
		install_outputs
	fi
	say "cached build $key (linux-source-6.1 $src_ver): nothing to do"
	exit 0
fi

start=$(date +%s)
say "building $key from linux-source-6.1 $src_ver with $(nproc) jobs; log: $dir/build.log"
rm -rf "$dir"
mkdir -p "$dir"
log=$dir/build.log
: >"$log"

say "extracting $src_tar"
tar -xf "$src_tar" -C "$dir"
ksrc=$dir/linux-source-6.1
[ -d "$ksrc" ] || die "unexpected layout in $src_tar (no linux-source-6.1/)"

for p in $patches; do
	say "applying $(basename "$p")"
	patch -d "$ksrc" -p1 --forward --batch --quiet <"$p" >>"$log" 2>&1 ||
		die "patch $(basename "$p") does not apply (see $log)"
done

say "configuring: tinyconfig + $(basename "$fragment")"
(
	cd "$ksrc"
	make tinyconfig
	scripts/kconfig/merge_config.sh -m .config "$fragment"
	make olddefconfig
) >>"$log" 2>&1 || die "configuration failed (see $log)"

# Every line of the fragment must be in the final .config, else a dependency was
# missing and the kernel would silently lack something the guest relies on.
bad=0
while IFS= read -r line; do
	case $line in
	CONFIG_*=*)
		grep -qxF "$line" "$ksrc/.config" || { echo "  wanted: $line; got: $(grep -E "^(# )?${line%%=*}[= ]" "$ksrc/.config" || echo 'absent')"; bad=1; } ;;
	"# CONFIG_"*" is not set")
		sym=${line#\# }
		sym=${sym%% *}
		! grep -q "^$sym=" "$ksrc/.config" || { echo "  wanted: $line; got: $(grep "^$sym=" "$ksrc/.config")"; bad=1; } ;;
	esac
done <"$fragment"
[ $bad = 0 ] || die "the fragment did not apply as written (lines above)"

say "compiling bzImage + vmlinux (make -j$(nproc)); a progress line every 500 objects"
set +e
(cd "$ksrc" && make -j"$(nproc)" bzImage 2>&1) | tee -a "$log" |
	awk -v t0="$start" '/^  (CC|AS|LD|AR) /{ n++; if (n % 500 == 0) { printf "[kernel-min] %5d objects, %4ds\n", n, systime() - t0; fflush() } }'
rc=${PIPESTATUS[0]}
set -e
if [ "$rc" != 0 ]; then
	tail -n 30 "$log" >&2
	die "kernel build failed (exit $rc; full log $log)"
fi

cp "$ksrc/arch/x86/boot/bzImage" "$dir/bzImage"
cp "$ksrc/vmlinux" "$dir/vmlinux"
cp "$ksrc/.config" "$dir/config"
krel=$(cat "$ksrc/include/config/kernel.release")
echo "$krel" >"$dir/release"
rm -rf "$ksrc"
touch "$dir/done"
# Keep the three newest finished builds (other keys) and drop older ones: a cache shared
# by worktrees or branches with different fragments (the GUI kernel, say) then does not
# rebuild at every switch, and never loses a build another tree is about to copy.
ls -1dt "$cache"/kernel-min-*/done 2>/dev/null | tail -n +4 | while IFS= read -r stamp; do
	rm -rf "${stamp%/done}"
done
install_outputs
end=$(date +%s)
say "done: $krel, bzImage $(stat -c %s "$dir/bzImage") bytes, $((end - start)) s"
