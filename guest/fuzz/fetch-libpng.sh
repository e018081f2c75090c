#!/bin/bash
# Fetch and unpack Debian's libpng1.6 source package into $1 (a cache directory); print the
# unpacked source directory.  Adds a deb-src entry built from the machine's first Debian
# "deb" source when apt has none (apt-get source needs one), then runs apt-get update once.
set -euo pipefail
cache=$1
mkdir -p "$cache"
for t in apt-get:apt dpkg-source:dpkg-dev; do
	command -v "${t%%:*}" >/dev/null 2>&1 ||
		{ echo "guest-fuzz: '${t%%:*}' not found: install Debian package ${t#*:}" >&2; exit 1; }
done
existing=$(find "$cache" -maxdepth 1 -type d -name 'libpng1.6-*' | sort | tail -n 1)
if [ -n "$existing" ] && [ -f "$existing/png.c" ]; then
	echo "$existing"
	exit 0
fi
have_src() {
	grep -rqsE '^(deb-src|Types:.*deb-src)' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null
}
if ! have_src; then
	list=/etc/apt/sources.list.d/ignition-deb-src.sources
	if [ -f /etc/apt/sources.list.d/debian.sources ]; then
		# deb822: the first stanza whose Types has "deb", with deb-src as its type.
		awk 'BEGIN { RS = ""; ORS = "\n\n" } /Types:[^\n]*deb/ && !done {
			sub(/Types:[^\n]*/, "Types: deb-src"); print; done = 1 }' \
			/etc/apt/sources.list.d/debian.sources >"$list.tmp"
	else
		grep -m1 -E '^deb ' /etc/apt/sources.list | sed 's/^deb /deb-src /' >"$list.tmp"
		list=/etc/apt/sources.list.d/ignition-deb-src.list
		mv "$list.tmp" "$list"
	fi
	[ -f "$list.tmp" ] && mv "$list.tmp" "$list"
	[ -s "$list" ] || { echo "guest-fuzz: no Debian deb line to build a deb-src entry from" >&2; exit 1; }
	echo "guest-fuzz: added $list (Debian source packages)" >&2
	apt-get update -qq >&2
fi
(cd "$cache" && apt-get source -qq libpng1.6 >&2)
dir=$(find "$cache" -maxdepth 1 -type d -name 'libpng1.6-*' | sort | tail -n 1)
[ -n "$dir" ] && [ -f "$dir/png.c" ] || { echo "guest-fuzz: apt-get source libpng1.6 gave no source tree" >&2; exit 1; }
echo "$dir"
