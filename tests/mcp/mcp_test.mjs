// Drive `ignition mcp --base SNAPSHOT` with the official MCP TypeScript SDK client
// (Client + StdioClientTransport).  usage: node mcp_test.mjs BASE_SNAPSHOT [IGNITION_BINARY]
// One line per check: "PASS mcp/NAME" or "FAIL mcp/NAME (reason)"; exit status 1 if any failed.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { fileURLToPath } from "node:url";
import path from "node:path";

const base = process.argv[2];
const here = path.dirname(fileURLToPath(import.meta.url));
const ignition = process.argv[3] || path.join(here, "..", "..", "build", "ignition");
if (!base) {
  console.error("usage: node mcp_test.mjs BASE_SNAPSHOT [IGNITION_BINARY]");
  process.exit(2);
}

let failed = 0;
function check(name, ok, reason) {
  if (ok) console.log(`PASS mcp/${name}`);
  else {
    failed++;
    console.log(`FAIL mcp/${name} (${String(reason).replace(/\s+/g, " ").slice(0, 300)})`);
  }
  return ok;
}
const text = (r) => (r.content || []).map((c) => c.text || "").join("");
const slow = { timeout: 600000 }; // an emulated guest is slow

// IGN_MCP_READY_S: the server's --ready-timeout (the guest tests raise it on emulated hosts).
const ready = process.env.IGN_MCP_READY_S ? ["--ready-timeout", process.env.IGN_MCP_READY_S] : [];
const transport = new StdioClientTransport({
  command: ignition,
  args: ["mcp", "--base", base, ...ready],
  stderr: "inherit",
});
const client = new Client({ name: "ignition-mcp-test", version: "0.1" });
const t0 = Date.now();
try {
  await client.connect(transport);
  check("initialize", client.getServerVersion()?.name === "ignition", JSON.stringify(client.getServerVersion()));

  const { tools } = await client.listTools();
  const names = tools.map((t) => t.name).sort();
  const want = ["click", "create_sandbox", "destroy_sandbox", "exec", "key", "list_sandboxes",
    "read_file", "reset_sandbox", "resize", "screenshot", "snapshot_sandbox", "type",
    "write_file"];
  check("list_tools", JSON.stringify(names) === JSON.stringify(want) &&
    tools.every((t) => t.inputSchema?.type === "object"), names.join(","));

  const call = (name, args, opts) => client.callTool({ name, arguments: args }, undefined, opts);

  // Two sandboxes at once: the creates run in parallel on the server.
  const c0 = Date.now();
  const [ra, rb] = await Promise.all([call("create_sandbox", {}, slow), call("create_sandbox", {}, slow)]);
  const a = ra.structuredContent?.sandbox_id, b = rb.structuredContent?.sandbox_id;
  check("create_two", !ra.isError && !rb.isError && a && b && a !== b, text(ra) + " / " + text(rb));
  console.error(`# create_sandbox x2 in parallel: ${Date.now() - c0} ms (${ra.structuredContent?.create_ms}, ${rb.structuredContent?.create_ms} ms each)`);

  for (const [n, id] of [["a", a], ["b", b]]) {
    const e0 = Date.now();
    const r = await call("exec", { sandbox_id: id, command: "uname -a" });
    check(`uname_${n}`, !r.isError && r.structuredContent?.exit_code === 0 &&
      /^Linux /.test(r.structuredContent?.stdout), text(r));
    console.error(`# exec uname -a in ${id}: ${Date.now() - e0} ms`);
  }

  const r1 = await call("exec", { sandbox_id: a, command: "cat; echo oops >&2; exit 7", stdin: "in-data" });
  check("exec_stdin_stderr_code", r1.structuredContent?.stdout === "in-data" &&
    r1.structuredContent?.stderr === "oops\n" && r1.structuredContent?.exit_code === 7, text(r1));

  const w = await call("write_file", { sandbox_id: a, path: "/root/note.txt", content: "only in a\n" });
  const ra2 = await call("read_file", { sandbox_id: a, path: "/root/note.txt" });
  check("write_read", !w.isError && text(ra2) === "only in a\n", text(w) + " / " + text(ra2));
  const rb2 = await call("read_file", { sandbox_id: b, path: "/root/note.txt" });
  check("isolation", rb2.isError === true && /No such file/.test(text(rb2)), text(rb2));

  const rs = await call("reset_sandbox", { sandbox_id: a }, slow);
  check("reset", !rs.isError, text(rs));
  const ra3 = await call("exec", { sandbox_id: a, command: "test -e /root/note.txt && echo present || echo gone" });
  check("reset_file_gone", ra3.structuredContent?.stdout === "gone\n", text(ra3));

  const h0 = Date.now();
  const rh = await call("exec", { sandbox_id: b, command: "while :; do :; done", timeout_s: 3 });
  const took = Date.now() - h0;
  check("timeout_cut", rh.structuredContent?.timed_out === true && took < 20000,
    `${took} ms: ${text(rh)}`);
  const ru = await call("exec", { sandbox_id: b, command: "echo still here" });
  check("usable_after_timeout", ru.structuredContent?.stdout === "still here\n", text(ru));

  // notifications/cancelled: the SDK sends it when the call's signal aborts.
  const ac = new AbortController();
  const k0 = Date.now();
  setTimeout(() => ac.abort("test"), 1500);
  let aborted = false;
  try {
    await call("exec", { sandbox_id: b, command: "sleep 60; echo late > /root/late" }, { signal: ac.signal });
  } catch (e) {
    aborted = true;
  }
  const rk = await call("exec", { sandbox_id: b, command: "sleep 2; test -e /root/late && echo ran || echo killed" });
  check("cancel", aborted && Date.now() - k0 < 30000 && rk.structuredContent?.stdout === "killed\n",
    `aborted=${aborted} ${text(rk)}`);

  // Long calls do not block others: a 20 s command and a quick one meanwhile (same sandbox:
  // the server runs each call on its own thread, the agent forks per request).  The quick
  // one must be answered first; serialised it would come after the long one's 20 s.  (20 s,
  // not less: a fork + exec in the guest alone took up to 8 s on a kvm_pvm host.)
  const p0 = Date.now();
  let slowMs = 0;
  const longCall = call("exec", { sandbox_id: b, command: "sleep 20; echo slow", timeout_s: 120 }, slow)
    .then((r) => { slowMs = Date.now() - p0; return r; });
  const quick = await call("exec", { sandbox_id: b, command: "echo quick" });
  const quickMs = Date.now() - p0;
  const slowR = await longCall;
  check("parallel_calls", quick.structuredContent?.stdout === "quick\n" && quickMs < 20000 &&
    quickMs < slowMs && slowR.structuredContent?.stdout === "slow\n",
    `quick after ${quickMs} ms, slow after ${slowMs} ms`);

  const snapDir = `${process.env.TMPDIR || "/tmp"}/ign-mcp-test-snap-${process.pid}`;
  const rsn = await call("snapshot_sandbox", { sandbox_id: b, dir: snapDir }, slow);
  check("snapshot", !rsn.isError && rsn.structuredContent?.dir === snapDir, text(rsn));
  const { rmSync } = await import("node:fs");
  rmSync(snapDir, { recursive: true, force: true });

  const rl = await call("list_sandboxes", {});
  check("list_sandboxes", rl.structuredContent?.sandboxes?.length === 2, text(rl));

  const rbad = await call("exec", { sandbox_id: "nope", command: "true" });
  check("unknown_sandbox_is_error", rbad.isError === true, text(rbad));

  for (const id of [a, b]) {
    const rd = await call("destroy_sandbox", { sandbox_id: id });
    check(`destroy_${id}`, !rd.isError, text(rd));
  }
  const rl2 = await call("list_sandboxes", {});
  check("none_left", rl2.structuredContent?.sandboxes?.length === 0, text(rl2));
} catch (e) {
  check("session", false, e?.stack || e);
} finally {
  await client.close().catch(() => {});
}
console.error(`# total ${Date.now() - t0} ms`);
process.exit(failed ? 1 : 0);
