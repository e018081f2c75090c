#!/bin/bash
# The MCP server under the official @modelcontextprotocol/sdk client (mcp_test.mjs).
# usage: tests/mcp/mcp_test.sh BASE_SNAPSHOT   (a snapshot of a guest whose agent is up:
# docs/mcp.md, "A base snapshot").  Appends PASS/FAIL lines to $IGN_RESULTS (tests/lib.sh).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"
base=${1:?usage: mcp_test.sh BASE_SNAPSHOT}
command -v node >/dev/null || { result FAIL mcp/node "node is not installed (setup.sh installs it)"; exit 1; }
if [ ! -d "$here/node_modules/@modelcontextprotocol/sdk" ]; then
	(cd "$here" && npm ci --no-audit --no-fund >/dev/null) || { result FAIL mcp/npm-ci "npm ci failed"; exit 1; }
fi
out=$(node "$here/mcp_test.mjs" "$base" "$here/../../build/ignition")
status=$?
echo "$out" | while read -r verdict name rest; do
	case $verdict in PASS | FAIL) rest=${rest#(}; result "$verdict" "$name" ${rest:+"${rest%)}"} ;; esac
done
[ -n "$out" ] || result FAIL mcp/run "mcp_test.mjs printed nothing (status $status)"
exit $status
