#!/usr/bin/env bash
# The OpenAPI check: starts `ignition --api-sock` (no guest is booted), drives it with
# tests/api/openapi/check.mjs, which validates every answer against docs/api.yaml with an
# OpenAPI 2.0 response validator from npm, and records one result per check ("api/openapi-*").
# Installs the npm packages (npm ci, from package-lock.json) on first use.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"
ign=${IGNITION:-$here/../../build/ignition}
pkg=$here/openapi

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
	result FAIL api/openapi "node and npm are needed (Debian: nodejs npm)"
	exit 0
fi
if [ ! -d "$pkg/node_modules" ]; then
	if ! (cd "$pkg" && npm ci --no-audit --no-fund >/tmp/ignition-openapi-npm.log 2>&1); then
		tail -n 20 /tmp/ignition-openapi-npm.log
		result FAIL api/openapi "npm ci failed (log: /tmp/ignition-openapi-npm.log)"
		exit 0
	fi
fi
if [ ! -x "$ign" ]; then
	result FAIL api/openapi "$ign not built"
	exit 0
fi

tmp=$(mktemp -d)
pid=
cleanup() {
	if [ -n "$pid" ]; then
		kill "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT

# PUT /boot-source may open the kernel: point it at a real one when the guest assets exist.
guest_dir=${IGNITION_GUEST_DIR:-$here/../../guest/out}
[ -f "$guest_dir/bzImage-min" ] && export IGN_KERNEL=$guest_dir/bzImage-min

sock=$tmp/api.sock
(cd "$tmp" && exec "$ign" --api-sock "$sock" --id openapi-check) </dev/null >"$tmp/out.log" 2>&1 &
pid=$!
for _ in $(seq 50); do
	[ -S "$sock" ] && break
	kill -0 "$pid" 2>/dev/null || break
	sleep 0.1
done
if [ ! -S "$sock" ]; then
	tail -n 20 "$tmp/out.log"
	result FAIL api/openapi "ignition --api-sock did not create $sock"
	exit 0
fi

TMPDIR=$tmp node "$pkg/check.mjs" "$sock" >"$tmp/check.log" 2>&1
rc=$?
n=0
while IFS= read -r line; do
	case $line in
	PASS\ * | FAIL\ *)
		status=${line%% *}
		rest=${line#* }
		name=${rest%% *}
		reason=
		[ "$name" != "$rest" ] && reason=${rest#"$name" (} && reason=${reason%)}
		result "$status" "$name" ${reason:+"$reason"}
		n=$((n + 1))
		;;
	*) printf '    | %s\n' "$line" ;;
	esac
done <"$tmp/check.log"
if [ $rc -ne 0 ] || [ $n -eq 0 ]; then
	result FAIL api/openapi "check.mjs exit status $rc after $n checks"
fi
if ! kill -0 "$pid" 2>/dev/null; then
	tail -n 20 "$tmp/out.log"
	result FAIL api/openapi-alive "ignition exited during the checks"
fi
