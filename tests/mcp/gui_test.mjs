// A computer-use agent's session on the desktop guest, through `ignition mcp --base SNAPSHOT`
// and the official MCP TypeScript SDK client: a sandbox cloned from a snapshot of the desktop
// guest (cage + foot, its guest agent up), its screen read with the `screenshot` tool (an
// image block: a PNG of the mode), a command typed into foot with `type` and `key`, the answer
// read back from the next screenshots by OCR (tesseract), `click` accepted, the sandbox
// destroyed.  usage: node gui_test.mjs BASE_SNAPSHOT SCRATCH_DIR [IGNITION_BINARY]
// One line per check: "PASS mcp/gui-NAME" or "FAIL mcp/gui-NAME (reason)"; exit 1 if any failed.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";

const [base, tmp] = process.argv.slice(2, 4);
const here = path.dirname(fileURLToPath(import.meta.url));
const ignition = process.argv[4] || path.join(here, "..", "..", "build", "ignition");
if (!base || !tmp) {
  console.error("usage: node gui_test.mjs BASE_SNAPSHOT SCRATCH_DIR [IGNITION_BINARY]");
  process.exit(2);
}

let failed = 0;
function check(name, ok, reason) {
  if (ok) console.log(`PASS mcp/gui-${name}`);
  else {
    failed++;
    console.log(`FAIL mcp/gui-${name} (${String(reason).replace(/\s+/g, " ").slice(0, 300)})`);
  }
  return ok;
}
const text = (r) => (r.content || []).map((c) => c.text || "").join("");
const slow = { timeout: 600000 }; // an emulated guest is slow
// Bounds for a wedged guest, not durations (kvm_pvm hosts emulate the guest kernel).
const KEY_DRAWN_MS = 60000, TEXT_MS = 240000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// The PNG of a screenshot result: its bytes and IHDR size (PNG 1.2 §4.1.1), or null.
function png(r) {
  const img = (r.content || []).find((c) => c.type === "image");
  if (!img || img.mimeType !== "image/png") return null;
  const b = Buffer.from(img.data, "base64");
  const sig = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  if (b.length < 33 || !b.subarray(0, 8).equals(sig) || b.toString("latin1", 12, 16) !== "IHDR")
    return null;
  return { bytes: b, w: b.readUInt32BE(16), h: b.readUInt32BE(20) };
}

// Text of the screen's top-left part (foot's first lines: the boot typed one command before
// the snapshot), cropped, enlarged and inverted to dark on light for tesseract, as
// tests/guest/gui.py reads it.
function ocr(file) {
  const big = file + ".ocr.png";
  execFileSync("convert", [file, "-crop", "50%x40%+0+0", "+repage", "-resize", "300%",
    "-negate", big], { timeout: 60000 });
  return execFileSync("tesseract", [big, "-"], { timeout: 120000, stdio: ["ignore", "pipe", "ignore"] }).toString();
}

// IGN_MCP_READY_S: the server's --ready-timeout (the guest tests raise it on emulated hosts).
const ready = process.env.IGN_MCP_READY_S ? ["--ready-timeout", process.env.IGN_MCP_READY_S] : [];
const transport = new StdioClientTransport({ command: ignition, args: ["mcp", "--base", base, ...ready], stderr: "inherit" });
const client = new Client({ name: "ignition-mcp-gui-test", version: "0.1" });
const call = (name, args, opts) => client.callTool({ name, arguments: args }, undefined, opts);
const t0 = Date.now();
try {
  await client.connect(transport);
  const rc = await call("create_sandbox", {}, slow);
  const id = rc.structuredContent?.sandbox_id;
  check("create_sandbox", !rc.isError && id, text(rc));
  console.error(`# create_sandbox: ${Date.now() - t0} ms`);

  // The clone's screen: the snapshot's, drawn by foot (many colours, not a blank frame).
  let r = await call("screenshot", { sandbox_id: id });
  let shot = png(r);
  const sc = r.structuredContent || {};
  check("screenshot-image", !r.isError && shot && shot.w === sc.width && shot.h === sc.height &&
    shot.w >= 640 && shot.h >= 480, `${text(r)} ${shot ? shot.w + "x" + shot.h : "no PNG image block"}`);
  if (shot) {
    const f = path.join(tmp, "mcp-gui-0.png");
    writeFileSync(f, shot.bytes);
    const colours = Number(execFileSync("convert", [f, "-format", "%k", "info:"]).toString());
    check("screenshot-drawn", colours >= 8, `${colours} distinct colours`);
  }

  // Type a command one character at a time, each until the screen changed: keys typed
  // faster than the guest's compositor reads them are lost on kvm_pvm hosts (docs/gui.md).
  const line = "echo mcp-$((6*7))";
  let prev = shot ? shot.bytes : Buffer.alloc(0), typed = 0;
  for (const ch of line) {
    const rt = await call("type", { sandbox_id: id, text: ch });
    if (rt.isError) {
      check("type", false, text(rt));
      break;
    }
    const deadline = Date.now() + KEY_DRAWN_MS;
    while (Date.now() < deadline) {
      const s = png(await call("screenshot", { sandbox_id: id }));
      if (s && !s.bytes.equals(prev)) {
        prev = s.bytes;
        typed++;
        break;
      }
      await sleep(200);
    }
  }
  check("type-drawn", typed === line.length, `${typed} of ${line.length} characters showed on the screen`);
  const rk = await call("key", { sandbox_id: id, keys: "Return" });
  check("key", !rk.isError, text(rk));
  let seen = "", found = false;
  const tdl = Date.now() + TEXT_MS;
  const f = path.join(tmp, "mcp-gui-typed.png");
  while (Date.now() < tdl && !found) {
    const s = png(await call("screenshot", { sandbox_id: id }));
    if (s && !s.bytes.equals(prev)) {
      prev = s.bytes;
      writeFileSync(f, s.bytes);
      seen = ocr(f);
      found = /mcp-42/.test(seen);
    }
    if (!found) await sleep(500);
  }
  check("typed-answer-on-screen", found, `OCR read ${JSON.stringify(seen.split("\n").filter((l) => l.trim()).join(" | ").slice(-200))}`);

  const rcl = await call("click", { sandbox_id: id, x: 100, y: 100 });
  check("click", !rcl.isError, text(rcl));
  const rd = await call("destroy_sandbox", { sandbox_id: id });
  check("destroy", !rd.isError, text(rd));
} catch (e) {
  check("session", false, e?.stack || e);
} finally {
  await client.close().catch(() => {});
}
console.error(`# MCP GUI session ${Date.now() - t0} ms`);
process.exit(failed ? 1 : 0);
