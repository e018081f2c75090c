// Lists where docs/api.yaml differs from a Firecracker swagger document, for a person to judge:
//   node compare-firecracker.mjs firecracker.yaml
// (Firecracker's is src/firecracker/swagger/firecracker.yaml in its repository; not vendored.)
// Per shared definition: properties only in one of them, differing types, formats, enums,
// bounds and required lists; per shared operation: operationId, status codes, body and answer
// schemas; then the Firecracker paths ignition does not serve.  Always exits 0.
import path from "node:path";
import { fileURLToPath } from "node:url";
import SP from "@apidevtools/swagger-parser";
const here = path.dirname(fileURLToPath(import.meta.url));
if (!process.argv[2]) {
	console.error("usage: node compare-firecracker.mjs FIRECRACKER_YAML");
	process.exit(2);
}
const [mine, fc] = await Promise.all([SP.parse(path.resolve(here, "../../../docs/api.yaml")), SP.parse(process.argv[2])]);
const t = (s) => s && (s.$ref ? "ref:" + s.$ref.split("/").pop() : (s.type || "") + (s.format ? "/" + s.format : "") + (s.items ? "[" + t(s.items) + "]" : ""));
let n = 0;
for (const [name, d] of Object.entries(mine.definitions)) {
  const f = fc.definitions[name];
  if (!f) { console.log("ONLY-MINE def", name); continue; }
  if (d.type !== f.type) console.log("TYPE", name, d.type, f.type);
  for (const [p, s] of Object.entries(d.properties || {})) {
    const g = (f.properties || {})[p];
    if (!g) { console.log("EXTRA prop", name + "." + p); continue; }
    n++;
    if (t(s) !== t(g)) console.log("PROPTYPE", name + "." + p, t(s), t(g));
    if (JSON.stringify(s.enum) !== JSON.stringify(g.enum)) console.log("ENUM", name + "." + p, s.enum, g.enum);
    for (const k of ["minimum", "maximum"]) if (s[k] !== g[k]) console.log(k, name + "." + p, s[k], g[k]);
  }
  for (const p of Object.keys(f.properties || {})) if (!(d.properties || {})[p]) console.log("MISSING prop", name + "." + p);
  const r1 = JSON.stringify((d.required || []).slice().sort()), r2 = JSON.stringify((f.required || []).slice().sort());
  if (r1 !== r2) console.log("REQUIRED", name, r1, r2);
  if (JSON.stringify(d.enum) !== JSON.stringify(f.enum)) console.log("ENUM", name, d.enum, f.enum);
}
for (const [p, ops] of Object.entries(mine.paths)) {
  const g = fc.paths[p];
  if (!g) { console.log("ONLY-MINE path", p); continue; }
  for (const [m, op] of Object.entries(ops)) {
    if (m === "parameters") continue;
    const h = g[m];
    if (!h) { console.log("ONLY-MINE op", m, p); continue; }
    if (op.operationId !== h.operationId) console.log("OPID", m, p, op.operationId, h.operationId);
    const c1 = Object.keys(op.responses).sort().join(","), c2 = Object.keys(h.responses).sort().join(",");
    if (c1 !== c2) console.log("CODES", m, p, "mine", c1, "fc", c2);
    const b1 = (op.parameters || []).find((x) => x.in === "body"), b2 = (h.parameters || []).find((x) => x.in === "body");
    if (t(b1 && b1.schema) !== t(b2 && b2.schema)) console.log("BODY", m, p, t(b1 && b1.schema), t(b2 && b2.schema));
    for (const code of Object.keys(op.responses)) {
      const r = op.responses[code].$ref ? mine.responses[op.responses[code].$ref.split("/").pop()] : op.responses[code];
      const s = h.responses[code];
      if (s && t(r.schema) !== t(s.schema)) console.log("RESP", m, p, code, t(r.schema), t(s.schema));
    }
  }
}
for (const p of Object.keys(fc.paths)) if (!mine.paths[p]) console.log("NOT SERVED", p);
console.log("compared", n, "properties");
