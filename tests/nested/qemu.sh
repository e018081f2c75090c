#!/bin/bash
# tests/nested/qemu.sh DIR — QEMU for the nested harness from this Debian release's backports
# suite, extracted into DIR (DIR/usr/bin/qemu-system-x86_64, DIR/usr/share/qemu).
#
# Why: the TCG emulation of AMD SVM in Debian 12's QEMU 7.2 brings the L1 kernel down during
# long guest-test runs (a kernel stack overflow in exception entry on a vCPU thread:
# recursive page faults on the IRET at native_irq_return_iret), about once per 10 minutes.
# Backports carry a current QEMU built for the same release (its libraries are the
# release's own).  Nothing on the system changes: apt reads a private sources list and keeps
# its package lists under DIR.apt; the archive is the one the system's own sources name.
set -eu -o pipefail
out=${1:?usage: qemu.sh DIR}
log() { echo "nested/qemu: $*" >&2; }

. /etc/os-release
codename=${VERSION_CODENAME:?no VERSION_CODENAME in /etc/os-release}
# The archive that serves the release itself (the system's configured mirror).
uri=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE) $(COMPONENT)' 2>/dev/null |
	awk -v r="$codename" '$2 == r && $3 == "main" { print $1; exit }')
[ -n "$uri" ] || { log "no apt source for $codename main"; exit 1; }

apt=$out.apt
rm -rf "$apt"
mkdir -p "$apt/lists/partial" "$apt/archives/partial"
echo "deb $uri $codename-backports main" >"$apt/sources.list"
opts=(-o Dir::Etc::SourceList="$apt/sources.list" -o Dir::Etc::SourceParts=/nonexistent
	-o Dir::State::Lists="$apt/lists" -o Dir::Cache::Archives="$apt/archives"
	-o Dir::Cache::pkgcache="" -o Dir::Cache::srcpkgcache="" -o APT::Sandbox::User=root)
apt-get "${opts[@]}" -qq update >&2 || { log "apt-get update of $codename-backports failed"; exit 1; }
(cd "$apt" && apt-get "${opts[@]}" -qq download "qemu-system-x86/$codename-backports" \
	"qemu-system-data/$codename-backports" >&2) ||
	{ log "$codename-backports has no qemu-system-x86"; exit 1; }
rm -rf "$out.tmp"
mkdir -p "$out.tmp"
for d in "$apt"/*.deb; do dpkg-deb -x "$d" "$out.tmp"; done
# Its libraries must all be on the system (setup.sh installs the release's QEMU, which
# pulls in the same ones).
if ldd "$out.tmp/usr/bin/qemu-system-x86_64" | grep -q 'not found'; then
	log "backports QEMU needs libraries this system lacks:"
	ldd "$out.tmp/usr/bin/qemu-system-x86_64" | grep 'not found' >&2
	rm -rf "$out.tmp"
	exit 1
fi
rm -rf "$out"
mv "$out.tmp" "$out"
rm -rf "$apt"
