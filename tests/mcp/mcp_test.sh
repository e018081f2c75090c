#!/bin/bash
# The MCP server under the official @modelcontextprotocol/sdk client (mcp_test.mjs).
# usage: tests/mcp/mcp_test.sh BASE_SNAPSHOT   (a snapshot of a guest whose agent is up:
# docs/mcp.md, "A base snapshot"), or
#        tests/mcp/mcp_test.sh --gui BASE_SNAPSHOT SCRATCH_DIR   (the computer-use session of
# gui_test.mjs on a desktop guest's snapshot).  Appends PASS/FAIL lines to $IGN_RESULTS
# (tests/lib.sh).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"
script=mcp_test.mjs extra=()
if [ "${1:-}" = --gui ]; then
	script=gui_test.mjs
	shift
	extra=("${2:?usage: mcp_test.sh --gui BASE_SNAPSHOT SCRATCH_DIR}")
fi
base=${1:?usage: mcp_test.sh [--gui] BASE_SNAPSHOT [SCRATCH_DIR]}
command -v node >/dev/null || { result FAIL mcp/node "node is not installed (setup.sh installs it)"; exit 1; }
if [ ! -d "$here/node_modules/@modelcontextprotocol/sdk" ]; then
	(cd "$here" && npm ci --no-audit --no-fund >/dev/null) || { result FAIL mcp/npm-ci "npm ci failed"; exit 1; }
fi
out=$(node "$here/$script" "$base" "${extra[@]}" "$here/../../build/ignition")
status=$?
echo "$out" | while read -r verdict name rest; do
	case $verdict in PASS | FAIL) rest=${rest#(}; result "$verdict" "$name" ${rest:+"${rest%)}"} ;; esac
done
[ -n "$out" ] || result FAIL mcp/run "$script printed nothing (status $status)"
exit $status
