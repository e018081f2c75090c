#!/usr/bin/env bash
# Tests of the built binary: CLI errors (no KVM needed), then guests booted under KVM.
set -u
here=$(cd "$(dirname "$0")" && pwd)
"$here/cli_errors.sh"
python3 "$here/guest_test.py"
