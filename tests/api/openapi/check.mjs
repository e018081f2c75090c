// Drives a running `ignition --api-sock SOCKET` over its Unix socket and validates every answer
// against docs/api.yaml with a real OpenAPI 2.0 response validator (openapi-response-validator,
// after @apidevtools/swagger-parser has validated and dereferenced the document).
//
// Usage: node check.mjs SOCKET      (node check.mjs --spec-only: only validate docs/api.yaml;
//        node check.mjs --running SOCKET [DRIVE,...] [balloon]: a VM already running)
// Prints one line per check, "PASS api/openapi-NAME" or "FAIL api/openapi-NAME (reason)", and
// exits 0 even when checks fail (the caller counts the lines); exit 2 only when it cannot start
// (bad usage, docs/api.yaml unreadable or invalid).
//
// The sequence needs no guest: everything is pre-boot configuration, reads back, and errors.
// A test with a booted VM imports the helpers instead:
//   import { loadSpec, checkCall, runPreboot, runPostboot, runLoad, runRunning } from "./check.mjs";
//   const api = await loadSpec();
//   await runPreboot(api, sock, dir, { kernel, rootfs, bootArgs }); // configure a real guest
//   await runPostboot(api, sock, snapDir, { ifaceId: "eth0" });   // start ... pause, snapshot
//   await runLoad(api, sock2, snapDir);                            // second process: load, resume
//   await runRunning(api, sock, { drives: ["rootfs"] });          // any running VM: GETs, refusals
//   await checkCall(api, sock, "my-check", "PATCH", "/vm", { state: "Paused" }, { status: 204 });

import http from "node:http";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import SwaggerParser from "@apidevtools/swagger-parser";
import responseValidatorModule from "openapi-response-validator";

// A CommonJS module whose class is its `default` export.
const OpenAPIResponseValidator = responseValidatorModule.default || responseValidatorModule;

const here = path.dirname(fileURLToPath(import.meta.url));
export const SPEC_PATH = path.resolve(here, "../../../docs/api.yaml");

// Swagger 2.0 has no null type; `x-nullable: true` (the vendor extension go-swagger reads) marks
// a value that may be null.  Turned into JSON Schema for the validator, on a copy.
function withNullable(node) {
	if (Array.isArray(node)) return node.map(withNullable);
	if (node === null || typeof node !== "object") return node;
	const out = {};
	for (const [k, v] of Object.entries(node)) if (k !== "x-nullable") out[k] = withNullable(v);
	return node["x-nullable"] === true ? { anyOf: [out, { type: "null" }] } : out;
}

/** Validates docs/api.yaml as swagger 2.0 and returns it with every $ref resolved. */
export async function loadSpec(specPath = SPEC_PATH) {
	await SwaggerParser.validate(specPath);
	return withNullable(await SwaggerParser.dereference(specPath));
}

/** One HTTP/1.1 exchange on the Unix socket: {status, text, json} (json undefined if none). */
export function apiCall(socket, method, urlPath, body, { rawBody, timeoutMs = 10000 } = {}) {
	return new Promise((resolve, reject) => {
		const payload = rawBody !== undefined ? rawBody
			: body === undefined ? undefined : JSON.stringify(body);
		const headers = { Accept: "application/json" };
		if (payload !== undefined) {
			headers["Content-Type"] = "application/json";
			headers["Content-Length"] = Buffer.byteLength(payload);
		}
		const req = http.request({ socketPath: socket, method, path: urlPath, headers,
			agent: false, timeout: timeoutMs }, (res) => {
			const chunks = [];
			res.on("data", (c) => chunks.push(c));
			res.on("end", () => {
				const text = Buffer.concat(chunks).toString("utf8");
				let json;
				try {
					json = text.length ? JSON.parse(text) : undefined;
				} catch {
					json = undefined;
				}
				resolve({ status: res.statusCode, text, json, headers: res.headers });
			});
			res.on("error", reject);
		});
		req.on("timeout", () => req.destroy(new Error(`no answer in ${timeoutMs} ms`)));
		req.on("error", reject);
		if (payload !== undefined) req.write(payload);
		req.end();
	});
}

/** The spec's path template matching a concrete path ("/drives/root" -> "/drives/{drive_id}"). */
export function findTemplate(api, urlPath) {
	const p = urlPath.split("?")[0];
	for (const tmpl of Object.keys(api.paths)) {
		const re = new RegExp("^" + tmpl.replace(/[.*+?^$()|[\]\\]/g, "\\$&")
			.replace(/\{[^}]+\}/g, "[^/]+") + "$");
		if (re.test(p)) return tmpl;
	}
	return undefined;
}

function validateAgainst(responses, definitions, status, res) {
	// Keep ajv's params so that a message names the extra property or the allowed values.
	const v = new OpenAPIResponseValidator({ responses, definitions,
		errorTransformer: (e, ajvError) => ({ ...e, params: ajvError.params }) });
	const schema = (responses[status] || responses.default || {}).schema;
	if (!schema) {
		// No body declared (204): there must be none.
		return res.text.length ? [`status ${status} declares no body, got ${res.text.length} bytes`] : [];
	}
	if (res.json === undefined) return [`body is not JSON: ${JSON.stringify(res.text.slice(0, 80))}`];
	const err = v.validateResponse(status, res.json);
	if (!err) return [];
	return err.errors.map((e) => {
		const p = e.params || {};
		const detail = p.additionalProperty !== undefined ? `: ${p.additionalProperty}`
			: p.allowedValues ? `: ${JSON.stringify(p.allowedValues)}` : "";
		return `${e.path || "body"} ${e.message}${detail}`;
	});
}

/**
 * Problems of one answer against the spec: the status must be declared explicitly for the
 * operation (not only covered by `default`), the body must match that status' schema, an error
 * answer must be application/json.  A path or method that the spec does not declare must be
 * refused with 400 and an Error body, as Firecracker does.  Returns [] when conforming.
 */
export function validateExchange(api, method, urlPath, res) {
	const problems = [];
	const tmpl = findTemplate(api, urlPath);
	const op = tmpl && api.paths[tmpl][method.toLowerCase()];
	if (!op) {
		if (res.status !== 400) problems.push(`undeclared ${method} ${urlPath} answered ${res.status}, want 400`);
		const errResponses = { 400: { description: "error", schema: api.definitions.Error } };
		problems.push(...validateAgainst(errResponses, api.definitions, 400, res));
		return problems;
	}
	if (!Object.hasOwn(op.responses, String(res.status)))
		problems.push(`status ${res.status} not declared for ${method} ${tmpl}` +
			` (declared: ${Object.keys(op.responses).join(",")})`);
	problems.push(...validateAgainst(op.responses, api.definitions, res.status, res));
	if (res.text.length && !/json/.test(res.headers["content-type"] || ""))
		problems.push(`content-type ${res.headers["content-type"]} is not JSON`);
	return problems;
}

/**
 * Problems of a request body against the operation's body schema (the same validator, given
 * the body schema as if it were an answer's).  [] when valid or when there is no such schema.
 */
export function validateRequestBody(api, method, urlPath, body) {
	const tmpl = findTemplate(api, urlPath);
	const op = tmpl && api.paths[tmpl][method.toLowerCase()];
	const param = op && (op.parameters || []).find((p) => p.in === "body");
	if (!param || body === undefined) return [];
	const responses = { 200: { description: "request", schema: param.schema } };
	return validateAgainst(responses, api.definitions, 200, { text: JSON.stringify(body), json: body });
}

/**
 * One check: sends the request, validates the answer, applies the expectations
 * (`status`: the status this step must get, `fault`: regexp the fault_message must match,
 * `verify(res)`: returns a problem string or nothing) and prints PASS/FAIL api/openapi-NAME.
 * Returns {ok, res}.
 */
export async function checkCall(api, socket, name, method, urlPath, body, expect = {}) {
	let res;
	const problems = [];
	try {
		res = await apiCall(socket, method, urlPath, body, expect);
	} catch (e) {
		problems.push(`no answer: ${e.message}`);
	}
	if (res) {
		if (expect.status !== undefined && res.status !== expect.status) {
			const fm = res.json && res.json.fault_message;
			problems.push(`status ${res.status}, want ${expect.status}${fm ? `: ${fm}` : ""}`);
		}
		try {
			problems.push(...validateExchange(api, method, urlPath, res));
		} catch (e) {
			problems.push(`validator error: ${e.message}`);
		}
		if (expect.fault && !(res.json && expect.fault.test(String(res.json.fault_message))))
			problems.push(`fault_message ${JSON.stringify(res.json && res.json.fault_message)} does not match ${expect.fault}`);
		// The spec must describe the request the same way ignition judged it: a body that
		// ignition accepts must be valid for the spec (unless the step says the spec is
		// stricter), and one marked specRejects must be invalid for it.
		const reqProblems = validateRequestBody(api, method, urlPath, body);
		if (expect.specRejects && reqProblems.length === 0)
			problems.push("docs/api.yaml accepts this request body, ignition must not");
		if (!expect.specRejects && expect.specStricter === undefined && res.status >= 200 &&
		    res.status < 300 && reqProblems.length)
			problems.push(`docs/api.yaml rejects the accepted request: ${reqProblems.join(", ")}`);
		if (expect.verify && problems.length === 0) {
			const p = expect.verify(res);
			if (p) problems.push(p);
		}
	}
	const ok = problems.length === 0;
	console.log(ok ? `PASS api/openapi-${name}` : `FAIL api/openapi-${name} (${problems.join("; ").replace(/\n/g, " ")})`);
	return { ok, res };
}

function eq(got, want, what) {
	return JSON.stringify(got) === JSON.stringify(want) ? undefined
		: `${what} is ${JSON.stringify(got)}, want ${JSON.stringify(want)}`;
}

/**
 * The scripted pre-boot sequence; `dir` holds the files it points ignition at.  A test that
 * boots afterwards passes a real `kernel`, `rootfs` (a copy: the guest writes it) and
 * `bootArgs`; by default the kernel is $IGN_KERNEL or a dummy file and the disks are empty.
 * Leaves eth0 on user networking, drives rootfs and scratch, vsock, entropy, balloon, logger,
 * metrics and MMDS configured.
 */
export async function runPreboot(api, sock, dir, { kernel, rootfs, bootArgs } = {}) {
	kernel = kernel || process.env.IGN_KERNEL || path.join(dir, "vmlinux");
	const disk = rootfs || path.join(dir, "root.img");
	const scratch = path.join(dir, "scratch.img");
	if (!fs.existsSync(kernel)) fs.writeFileSync(kernel, "not a kernel, never booted\n");
	for (const f of rootfs ? [scratch] : [disk, scratch]) {
		fs.writeFileSync(f, "");
		fs.truncateSync(f, 1 << 20);
	}
	const c = (name, method, p, body, expect) => checkCall(api, sock, name, method, p, body, expect);
	const rl = { bandwidth: { size: 2097152, one_time_burst: 0, refill_time: 1000 },
		ops: { size: 1000, refill_time: 1000 } };

	await c("get-root", "GET", "/", undefined, { status: 200,
		verify: (r) => eq(r.json.state, "Not started", "state") });
	await c("get-version", "GET", "/version", undefined, { status: 200 });
	await c("get-machine-config-default", "GET", "/machine-config", undefined, { status: 200,
		verify: (r) => eq([r.json.vcpu_count, r.json.mem_size_mib], [1, 128], "defaults [vcpu_count, mem_size_mib]") });
	await c("put-boot-source", "PUT", "/boot-source",
		{ kernel_image_path: kernel, boot_args: bootArgs || "console=ttyS0 reboot=k panic=1" }, { status: 204 });
	await c("put-drive-root", "PUT", "/drives/rootfs",
		{ drive_id: "rootfs", path_on_host: disk, is_root_device: true, is_read_only: false }, { status: 204 });
	// Firecracker takes null for an optional field as "not given" (and writes such nulls in its
	// own GET /vm/config), so a client may send them back.
	await c("put-drive-null-optionals", "PUT", "/drives/scratch",
		{ drive_id: "scratch", path_on_host: scratch, is_root_device: false, is_read_only: null,
			partuuid: null, rate_limiter: null, io_engine: null }, { status: 204, specStricter: "swagger 2.0 has no null" });
	await c("put-drive-ratelimited", "PUT", "/drives/scratch",
		{ drive_id: "scratch", path_on_host: scratch, is_root_device: false, is_read_only: true,
			cache_type: "Unsafe", io_engine: "Sync", rate_limiter: rl }, { status: 204 });
	await c("put-machine-config", "PUT", "/machine-config",
		{ vcpu_count: 2, mem_size_mib: 256, smt: false, track_dirty_pages: true }, { status: 204 });
	await c("patch-machine-config", "PATCH", "/machine-config", { mem_size_mib: 512 }, { status: 204 });
	await c("get-machine-config", "GET", "/machine-config", undefined, { status: 200,
		verify: (r) => eq([r.json.vcpu_count, r.json.mem_size_mib, r.json.track_dirty_pages],
			[2, 512, true], "[vcpu_count, mem_size_mib, track_dirty_pages]") });
	await c("put-net-user", "PUT", "/network-interfaces/eth0",
		{ iface_id: "eth0", host_dev_name: "ignition:user", guest_mac: "06:00:ac:10:00:02",
			rx_rate_limiter: rl }, { status: 204 });
	await c("put-vsock", "PUT", "/vsock", { guest_cid: 3, uds_path: path.join(dir, "v.sock") }, { status: 204 });
	await c("put-entropy", "PUT", "/entropy", { rate_limiter: { bandwidth: { size: 1024, refill_time: 100 } } }, { status: 204 });
	await c("put-balloon", "PUT", "/balloon",
		{ amount_mib: 16, deflate_on_oom: true, stats_polling_interval_s: 1 }, { status: 204 });
	await c("get-balloon", "GET", "/balloon", undefined, { status: 200,
		verify: (r) => eq([r.json.amount_mib, r.json.deflate_on_oom, r.json.stats_polling_interval_s],
			[16, true, 1], "[amount_mib, deflate_on_oom, stats_polling_interval_s]") });
	// Firecracker refuses these four before start (400; its rpc_interface.rs, whatever its swagger
	// descriptions say); accepting them is a harmless superset, so only the answer's conformance
	// to the spec is checked, not which of the declared answers it is.
	await c("get-balloon-statistics-preboot", "GET", "/balloon/statistics", undefined, {});
	await c("patch-balloon-preboot", "PATCH", "/balloon", { amount_mib: 16 }, {});
	await c("patch-balloon-statistics-preboot", "PATCH", "/balloon/statistics", { stats_polling_interval_s: 1 }, {});
	await c("patch-drive-preboot", "PATCH", "/drives/rootfs", { drive_id: "rootfs" }, {});
	await c("put-logger", "PUT", "/logger",
		{ log_path: path.join(dir, "ignition.log"), level: "Info", show_level: true, show_log_origin: false }, { status: 204 });
	await c("put-metrics", "PUT", "/metrics", { metrics_path: path.join(dir, "metrics.json") }, { status: 204 });
	await c("put-mmds-config", "PUT", "/mmds/config",
		{ version: "V2", network_interfaces: ["eth0"], ipv4_address: "169.254.169.254" }, { status: 204 });
	await c("put-mmds", "PUT", "/mmds",
		{ latest: { "meta-data": { "ami-id": "ami-12345678", hostname: "ignition-guest" } } }, { status: 204 });
	await c("patch-mmds", "PATCH", "/mmds",
		{ latest: { "meta-data": { hostname: "patched", "local-ipv4": "10.0.2.15" } } }, { status: 204 });
	await c("get-mmds", "GET", "/mmds", undefined, { status: 200,
		verify: (r) => eq(r.json, { latest: { "meta-data": { "ami-id": "ami-12345678", hostname: "patched",
			"local-ipv4": "10.0.2.15" } } }, "store after merge patch") });
	// Firecracker: 400 before start; see above.
	await c("flush-metrics-preboot", "PUT", "/actions", { action_type: "FlushMetrics" }, {});
	await c("get-vm-config", "GET", "/vm/config", undefined, { status: 200,
		verify: (r) => {
			const j = r.json;
			return eq(j["boot-source"] && j["boot-source"].kernel_image_path, kernel, "boot-source.kernel_image_path") ||
				eq((j.drives || []).map((d) => d.drive_id).sort(), ["rootfs", "scratch"], "drive ids") ||
				eq((j["network-interfaces"] || []).map((n) => n.host_dev_name), ["ignition:user"], "host_dev_name") ||
				eq(j["machine-config"] && j["machine-config"].mem_size_mib, 512, "machine-config.mem_size_mib") ||
				eq(j.vsock && j.vsock.guest_cid, 3, "vsock.guest_cid") ||
				eq(j.balloon && j.balloon.amount_mib, 16, "balloon.amount_mib") ||
				eq(j["mmds-config"] && j["mmds-config"].network_interfaces, ["eth0"], "mmds-config.network_interfaces") ||
				eq(j.entropy && j.entropy.rate_limiter && j.entropy.rate_limiter.bandwidth.size, 1024, "entropy bandwidth size");
		} });

	// Errors: 400 with a fault_message that names what was wrong.
	await c("err-unknown-field", "PUT", "/machine-config",
		{ vcpu_count: 1, mem_size_mib: 128, turbo: true }, { specRejects: true, status: 400, fault: /turbo/ });
	await c("err-unknown-nested-field", "PUT", "/drives/scratch",
		{ drive_id: "scratch", path_on_host: scratch, is_root_device: false,
			rate_limiter: { bandwidth: { size: 1, refill_time: 1, burst: 5 } } }, { specRejects: true, status: 400, fault: /burst/ });
	await c("err-wrong-type", "PUT", "/machine-config", { vcpu_count: "two", mem_size_mib: 128 },
		{ specRejects: true, status: 400, fault: /vcpu_count/ });
	await c("err-missing-field", "PUT", "/vsock", { uds_path: path.join(dir, "v2.sock") },
		{ specRejects: true, status: 400, fault: /guest_cid/ });
	await c("err-bad-enum", "PUT", "/actions", { action_type: "Reboot" }, { specRejects: true, status: 400 });
	await c("err-id-mismatch", "PUT", "/drives/other",
		{ drive_id: "rootfs", path_on_host: disk, is_root_device: false }, { status: 400 });
	await c("err-bad-json", "PUT", "/boot-source", undefined, { status: 400, rawBody: "{\"kernel_image_path\": " });
	await c("err-empty-body", "PUT", "/boot-source", undefined, { status: 400, rawBody: "" });
	// Over Firecracker's default payload limit (51200 bytes): 400, the connection stays usable.
	await c("err-huge-body", "PUT", "/boot-source",
		{ kernel_image_path: kernel, boot_args: "x".repeat(60000) }, { status: 400 });
	await c("err-unknown-path", "GET", "/no-such-endpoint", undefined, { status: 400 });
	await c("err-unknown-method", "DELETE", "/machine-config", undefined, { status: 400 });
	await c("err-unsupported-endpoint", "PUT", "/cpu-config", { kvm_capabilities: [] }, { status: 400, fault: /cpu-config/ });
	await c("err-vm-preboot", "PATCH", "/vm", { state: "Paused" }, { status: 400 });
	await c("err-patch-unknown-drive", "PATCH", "/drives/nosuch", { drive_id: "nosuch" }, { status: 400 });
	await c("err-snapshot-preboot", "PUT", "/snapshot/create",
		{ snapshot_path: path.join(dir, "snap"), mem_file_path: path.join(dir, "mem") }, { status: 400 });
	await c("err-mmds-address", "PUT", "/mmds/config",
		{ network_interfaces: ["eth0"], ipv4_address: "10.0.0.1" }, { status: 400 });
	await c("get-root-still-not-started", "GET", "/", undefined, { status: 200,
		verify: (r) => eq(r.json.state, "Not started", "state") });
}

/**
 * For a test that boots a guest: after runPreboot-style configuration with a real kernel and
 * rootfs (the caller's), starts the instance and validates the answers of the running-VM calls:
 * state changes, live PATCHes, balloon statistics, pre-boot calls refused, then a snapshot of
 * the paused VM into snapDir (a directory that must not exist yet).  Leaves the VM paused.
 */
export async function runPostboot(api, sock, snapDir, { memLink, driveId = "rootfs", ifaceId } = {}) {
	const c = (name, method, p, body, expect) => checkCall(api, sock, name, method, p, body, expect);
	const rl = { bandwidth: { size: 1048576, refill_time: 1000 } };
	await c("instance-start", "PUT", "/actions", { action_type: "InstanceStart" }, { status: 204, timeoutMs: 60000 });
	await c("get-root-running", "GET", "/", undefined, { status: 200,
		verify: (r) => eq(r.json.state, "Running", "state") });
	await c("err-start-twice", "PUT", "/actions", { action_type: "InstanceStart" }, { status: 400 });
	await c("err-boot-source-after-start", "PUT", "/boot-source", { kernel_image_path: "/nonexistent" }, { status: 400 });
	await c("err-machine-config-after-start", "PATCH", "/machine-config", { vcpu_count: 1 }, { status: 400 });
	await c("patch-drive-ratelimit", "PATCH", `/drives/${driveId}`, { drive_id: driveId, rate_limiter: rl }, { status: 204 });
	if (ifaceId)
		await c("patch-net-ratelimit", "PATCH", `/network-interfaces/${ifaceId}`,
			{ iface_id: ifaceId, rx_rate_limiter: rl, tx_rate_limiter: rl }, { status: 204 });
	await c("patch-balloon-running", "PATCH", "/balloon", { amount_mib: 0 }, { status: 204 });
	await c("patch-balloon-statistics-running", "PATCH", "/balloon/statistics", { stats_polling_interval_s: 2 }, { status: 204 });
	await c("get-balloon-statistics", "GET", "/balloon/statistics", undefined, { status: 200 });
	await c("flush-metrics", "PUT", "/actions", { action_type: "FlushMetrics" }, { status: 204 });
	await c("vm-pause", "PATCH", "/vm", { state: "Paused" }, { status: 204 });
	await c("get-root-paused", "GET", "/", undefined, { status: 200,
		verify: (r) => eq(r.json.state, "Paused", "state") });
	await c("snapshot-create", "PUT", "/snapshot/create",
		{ snapshot_type: "Full", snapshot_path: snapDir, mem_file_path: memLink || `${snapDir}.mem` },
		{ status: 204, timeoutMs: 120000 });
	await c("err-vm-bad-state", "PATCH", "/vm", { state: "Stopped" }, { status: 400 });
}

/**
 * Against a VM that is already running (booted or loaded by the caller, e.g. boot 6 of
 * tests/guest/guest_test.py through tests/api/curl_test.py): every GET answer and the
 * after-start refusals, validated against the spec, without changing the VM (the one PATCH
 * sets the balloon target it already has).  `drives`: the drive ids configured; `balloon`:
 * whether a balloon with statistics was configured.
 */
export async function runRunning(api, sock, { drives = [], balloon = false, prefix = "running-" } = {}) {
	const c = (name, method, p, body, expect) => checkCall(api, sock, prefix + name, method, p, body, expect);
	await c("get-root", "GET", "/", undefined, { status: 200,
		verify: (r) => ["Running", "Paused"].includes(r.json.state) ? undefined : `state ${r.json.state}` });
	await c("get-version", "GET", "/version", undefined, { status: 200 });
	await c("get-vm-config", "GET", "/vm/config", undefined, { status: 200,
		verify: (r) => eq((r.json.drives || []).map((d) => d.drive_id).sort(), [...drives].sort(), "drive ids") });
	await c("get-machine-config", "GET", "/machine-config", undefined, { status: 200 });
	await c("get-mmds", "GET", "/mmds", undefined, { status: 200 });
	if (balloon) {
		let target;
		const got = await c("get-balloon", "GET", "/balloon", undefined, { status: 200,
			verify: (r) => { target = r.json.amount_mib; return undefined; } });
		await c("get-balloon-statistics", "GET", "/balloon/statistics", undefined, { status: 200,
			verify: (r) => typeof r.json.actual_mib === "number" ? undefined : "no actual_mib" });
		if (got.ok)
			await c("patch-balloon-same", "PATCH", "/balloon", { amount_mib: target }, { status: 204 });
	} else {
		await c("err-get-balloon", "GET", "/balloon", undefined, { status: 400 });
		await c("err-get-balloon-statistics", "GET", "/balloon/statistics", undefined, { status: 400 });
	}
	// Refused after start, with a fault_message.
	await c("err-start-twice", "PUT", "/actions", { action_type: "InstanceStart" }, { status: 400, fault: /after starting/ });
	await c("err-boot-source", "PUT", "/boot-source", { kernel_image_path: "/nonexistent" }, { status: 400 });
	await c("err-machine-config", "PATCH", "/machine-config", { vcpu_count: 1 }, { status: 400 });
	await c("err-put-drive", "PUT", "/drives/new", { drive_id: "new", path_on_host: "/nonexistent", is_root_device: false }, { status: 400 });
	await c("err-patch-drive-missing-image", "PATCH", `/drives/${drives[0] || "rootfs"}`,
		{ drive_id: drives[0] || "rootfs", path_on_host: "/nonexistent/image" }, { status: 400, fault: /nonexistent/ });
	await c("err-vsock", "PUT", "/vsock", { guest_cid: 9, uds_path: "/nonexistent.sock" }, { status: 400 });
	await c("err-logger", "PUT", "/logger", { level: "Info" }, { status: 400 });
	await c("err-load", "PUT", "/snapshot/load", { snapshot_path: "/nonexistent" }, { status: 400 });
	await c("err-snapshot-running", "PUT", "/snapshot/create", { snapshot_path: "/nonexistent/snap" }, { status: 400 });
	await c("err-vm-state", "PATCH", "/vm", { state: "Stopped" }, { specRejects: true, status: 400 });
	await c("err-unknown-path", "GET", "/no-such-endpoint", undefined, { status: 400 });
	await c("get-root-still", "GET", "/", undefined, { status: 200 });
}

/** In a fresh `ignition --api-sock`: loads snapDir (paused), checks the state, resumes it. */
export async function runLoad(api, sock, snapDir, { memFile, overrides = {} } = {}) {
	const c = (name, method, p, body, expect) => checkCall(api, sock, name, method, p, body, expect);
	const body = { snapshot_path: snapDir, resume_vm: false, ...overrides };
	if (memFile) body.mem_backend = { backend_type: "File", backend_path: memFile };
	await c("err-load-uffd", "PUT", "/snapshot/load",
		{ snapshot_path: snapDir, mem_backend: { backend_type: "Uffd", backend_path: "/nonexistent.sock" } },
		{ status: 400, fault: /page-fault handler/ });
	await c("snapshot-load", "PUT", "/snapshot/load", body, { status: 204, timeoutMs: 120000 });
	await c("get-root-loaded", "GET", "/", undefined, { status: 200,
		verify: (r) => eq(r.json.state, "Paused", "state") });
	await c("err-load-twice", "PUT", "/snapshot/load", body, { status: 400 });
	await c("vm-resume", "PATCH", "/vm", { state: "Resumed" }, { status: 204 });
	await c("get-root-resumed", "GET", "/", undefined, { status: 200,
		verify: (r) => eq(r.json.state, "Running", "state") });
}

async function main() {
	// --running SOCKET [drive-id,...] [balloon|-] [PREFIX]: a VM already running (runRunning).
	const running = process.argv[2] === "--running";
	const sock = process.argv[running ? 3 : 2];
	if (!sock) {
		console.error("usage: node check.mjs SOCKET | --spec-only | --running SOCKET [DRIVE,...] [balloon]");
		process.exit(2);
	}
	let api;
	try {
		api = await loadSpec();
	} catch (e) {
		console.log(`FAIL api/openapi-spec (docs/api.yaml: ${String(e.message).split("\n")[0]})`);
		process.exit(0);
	}
	console.log("PASS api/openapi-spec");
	if (sock === "--spec-only") return;
	if (running) {
		const drives = (process.argv[4] || "").split(",").filter((d) => d);
		await runRunning(api, sock, { drives, balloon: process.argv[5] === "balloon",
			prefix: process.argv[6] || "running-" });
		return;
	}
	const dir = fs.mkdtempSync(path.join(process.env.TMPDIR || os.tmpdir(), "ign-openapi-"));
	try {
		await runPreboot(api, sock, dir);
	} finally {
		fs.rmSync(dir, { recursive: true, force: true });
	}
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href)
	await main();
