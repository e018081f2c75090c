#!/bin/sh
# tests/nested/smoke.sh — build kvm-smoke on the host and run it inside the
# nested-KVM L1 (tests/nested/run.sh). Exit 0 iff /dev/kvm works in L1.
# usage: tests/nested/smoke.sh [N]   (N = timed I/O exits, default 10000)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
NESTED_DIR=${NESTED_DIR:-$repo/build/nested}
export NESTED_DIR
mkdir -p "$NESTED_DIR"
${CC:-cc} -O2 -Wall -Wextra -Werror -o "$NESTED_DIR/kvm-smoke" "$here/kvm-smoke.c"
exec "$here/run.sh" -C "$repo" -- "$NESTED_DIR/kvm-smoke" "${1:-10000}"
