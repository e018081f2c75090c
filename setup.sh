#!/usr/bin/env bash
# Set up everything on a fresh Debian 12 machine and boot the default guest to a login prompt.
#   sudo ./setup.sh            install packages, build ignition and the guest, boot it
#   sudo ./setup.sh --no-boot  the same without booting (CI)
set -euo pipefail
cd "$(dirname "$0")"
boot=1
[ "${1:-}" = --no-boot ] && boot=0

pkgs=$(cat packages.txt guest/packages.txt | sed 's/#.*//' | tr -s ' \n' ' ')
missing=$(dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' $pkgs 2>/dev/null |
	awk '$1 == "ii" { print $2 }' | sort >/tmp/ign-have.$$; printf '%s\n' $pkgs | sort |
	comm -23 - /tmp/ign-have.$$; rm -f /tmp/ign-have.$$)
if [ -n "$missing" ]; then
	echo "setup: installing Debian packages:" $missing
	if [ "$(id -u)" -ne 0 ]; then
		echo "setup: error: packages are missing and this is not root (run: sudo $0)" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	apt-get install -y -q $missing
fi

# Node.js and npm run the API and MCP client tests (npm packages pinned by package-lock.json).
# Only when absent: a host may have its own Node.js, which Debian's npm package conflicts with.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
	echo "setup: installing Debian packages: nodejs npm"
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -q nodejs npm
fi
for dir in tests/api/openapi tests/mcp; do
	if [ -f "$dir/package-lock.json" ]; then
		echo "setup: npm packages for $dir"
		(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
	fi
done

echo "setup: building ignition"
make -j"$(nproc)" all
echo "setup: building the guest (kernel, initramfs, root filesystem; the first time takes a while)"
make guest
if [ "$(id -u)" -eq 0 ]; then
	echo "setup: building the desktop guest (Debian bookworm + cage + foot with mmdebstrap; a minute or two)"
	make guest-gui
	echo "setup: building the browser guest (the desktop with Firefox ESR; a few minutes)"
	make guest-browser
else
	echo "setup: skipping the desktop and browser guests: mmdebstrap needs root (run: sudo" \
		"make guest-gui guest-browser)"
fi

if [ $boot = 1 ]; then
	echo "setup: booting the default guest; log in as root, Ctrl-A x quits"
	exec build/ignition run
fi
