#!/bin/bash
# Build the fuzz harness images (docs/fuzzing.md, "Images"):
#   build.sh GUEST_DIR OUT_DIR CACHE_DIR [planted] [libpng] [exits]   (default: all three)
# into OUT_DIR:
#   planted.cpio, libpng.cpio        initramfs images: /init, /harness, its loader and libraries
#   planted, libpng                  the harnesses themselves (run natively with files to replay)
#   seeds/planted/, seeds/libpng/    seed corpora, generated here (make-seeds.py)
#   exits.cpio                       a harness that panics or powers off the guest on request,
#                                    run as PID 1 (exits.c; the tests of crash codes 0x200/0x201)
# Targets are built with clang, -fsanitize=address and -fsanitize-coverage=trace-pc-guard; the
# guest library (fuzz.c) without either.  libpng comes from Debian's source package
# (fetch-libpng.sh); zlib is the system one, uninstrumented.  Debian packages only.
set -euo pipefail
guest=$1 out=$2 cache=$3
shift 3
targets=${*:-planted libpng exits}
here=$guest/fuzz

for t in clang:clang cpio:cpio python3:python3 ldd:libc-bin gcc:gcc; do
	command -v "${t%%:*}" >/dev/null 2>&1 ||
		{ echo "guest-fuzz: '${t%%:*}' not found: install Debian package ${t#*:}" >&2; exit 1; }
done
[ -n "$(clang -print-file-name=libclang_rt.asan-x86_64.a | grep /)" ] &&
	[ -f "$(clang -print-file-name=libclang_rt.asan-x86_64.a)" ] ||
	{ echo "guest-fuzz: clang's ASan runtime missing: install Debian package libclang-rt-14-dev" >&2; exit 1; }
[ -f /usr/include/zlib.h ] ||
	{ echo "guest-fuzz: zlib.h missing: install Debian package zlib1g-dev" >&2; exit 1; }

mkdir -p "$out" "$cache"
obj=$cache/obj
mkdir -p "$obj"
TARGET_CFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=address -fsanitize-coverage=trace-pc-guard"

# The guest library: no coverage, no sanitizer (it implements the coverage callbacks).
clang -O2 -g -Wall -Wextra -Werror -c "$here/fuzz.c" -o "$obj/fuzz.o"
# /init: static, so it needs nothing from the image; init-exec makes the harness PID 1.
gcc -O2 -Wall -Wextra -Werror -static "$here/init.c" -o "$obj/init"
gcc -O2 -Wall -Wextra -Werror -static -DINIT_EXEC "$here/init.c" -o "$obj/init-exec"

# image NAME BINARY [INIT]: NAME.cpio with /init (default: the forking one), /harness and every
# shared object it loads.
image() {
	local name=$1 bin=$2 init=${3:-$obj/init} stage=$cache/stage-$1 lib
	rm -rf "$stage"
	mkdir -p "$stage/proc" "$stage/dev" "$stage/tmp"
	cp "$init" "$stage/init"
	cp "$bin" "$stage/harness"
	# ldd lists "name => /path (addr)" and the loader as "/lib64/ld-linux... (addr)".
	for lib in $(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'); do
		mkdir -p "$stage$(dirname "$lib")"
		cp -L "$lib" "$stage$lib"
	done
	(cd "$stage" && find . -mindepth 1 | LC_ALL=C sort |
		cpio -o -H newc -R 0:0 --quiet) >"$out/$name.cpio.tmp"
	mv "$out/$name.cpio.tmp" "$out/$name.cpio"
	echo "guest-fuzz: $out/$name.cpio ($(du -k "$out/$name.cpio" | cut -f1) KiB:" \
		"$(ldd "$bin" | wc -l) shared objects)"
}

for t in $targets; do
	case $t in
	planted)
		clang $TARGET_CFLAGS -I"$here" -c "$here/planted.c" -o "$obj/planted.o"
		clang -fsanitize=address "$obj/planted.o" "$obj/fuzz.o" -o "$out/planted"
		python3 "$here/make-seeds.py" planted "$out/seeds/planted"
		image planted "$out/planted"
		;;
	libpng)
		src=$("$here/fetch-libpng.sh" "$cache")
		pngobj=$obj/libpng
		mkdir -p "$pngobj"
		# The library's C files, as its own CMakeLists lists them, with the stock
		# configuration header (what configure would generate for this platform).
		cp "$src/scripts/pnglibconf.h.prebuilt" "$pngobj/pnglibconf.h"
		objs=()
		for f in png pngerror pngget pngmem pngpread pngread pngrio pngrtran pngrutil \
			pngset pngtrans pngwio pngwrite pngwtran pngwutil; do
			clang $TARGET_CFLAGS -I"$pngobj" -I"$src" -c "$src/$f.c" -o "$pngobj/$f.o"
			objs+=("$pngobj/$f.o")
		done
		clang $TARGET_CFLAGS -I"$here" -I"$pngobj" -I"$src" -c "$here/png_harness.c" \
			-o "$obj/png_harness.o"
		clang -fsanitize=address "$obj/png_harness.o" "${objs[@]}" "$obj/fuzz.o" -lz -lm \
			-o "$out/libpng"
		python3 "$here/make-seeds.py" png "$out/seeds/libpng"
		# Every seed must decode (natively, with the same build): a bad seed is a bug here.
		ASAN_OPTIONS=detect_leaks=0 "$out/libpng" "$out/seeds/libpng"/* |
			awk '{ print } $NF != 0 { bad = 1 } END { exit bad }' >"$cache/seed-check.log" ||
			{ cat "$cache/seed-check.log" >&2; echo "guest-fuzz: a PNG seed does not decode" >&2; exit 1; }
		echo "guest-fuzz: libpng $(basename "$src"), $(ls "$out/seeds/libpng" | wc -l) seeds decode"
		image libpng "$out/libpng"
		;;
	exits)
		# No sanitizer (nothing to find), coverage so that each command has its edges.
		clang -O1 -g -fsanitize-coverage=trace-pc-guard -I"$here" -c "$here/exits.c" \
			-o "$obj/exits.o"
		clang "$obj/exits.o" "$obj/fuzz.o" -o "$out/exits"
		image exits "$out/exits" "$obj/init-exec"
		;;
	*)
		echo "guest-fuzz: unknown target '$t' (planted, libpng, exits)" >&2
		exit 1
		;;
	esac
done
