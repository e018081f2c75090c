/* `ignition mcp`: the MCP server (mcp.h, docs/mcp.md).
 *
 * Protocol references: MCP specification 2025-06-18 — "Base Protocol" (JSON-RPC 2.0 messages;
 * no batches since this version), "Lifecycle" (initialize / notifications/initialized, version
 * negotiation), "Transports" (stdio: one message per line, nothing else on stdout),
 * "Utilities: Cancellation" (notifications/cancelled: no answer for a cancelled request),
 * "Utilities: Ping", "Server Features: Tools" (tools/list, tools/call, isError results). */
#include "mcp/mcp.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent/client.h"
#include "mcp/gui.h"
#include "mcp/sandbox.h"
#include "ui/display.h"

#define PROTOCOL_LATEST "2025-11-25"
/* What the server's tools need is the same in all of these (tools/list, tools/call, ping,
 * cancellation); 2025-11-25 is what @modelcontextprotocol/sdk 1.32 asks for. */
static const char *const protocol_versions[] = { "2025-11-25", "2025-06-18", "2025-03-26",
						 "2024-11-05" };

/* JSON-RPC 2.0 §5.1 error codes. */
#define RPC_PARSE_ERROR	     -32700
#define RPC_INVALID_REQUEST  -32600
#define RPC_METHOD_NOT_FOUND -32601
#define RPC_INVALID_PARAMS   -32602
#define RPC_INTERNAL_ERROR   -32603

#define EXEC_TIMEOUT_DEFAULT_S 30
#define EXEC_TIMEOUT_MAX_S     3600
#define EXEC_OUTPUT_DEFAULT    (1u << 20)
#define READ_DEFAULT	       (1u << 20)
/* Agent calls that are not commands (files, pings). */
#define AGENT_FILE_TIMEOUT_MS 30000
/* Beyond a command's own timeout: the agent's kill, output transfer. */
#define AGENT_SLACK_MS 10000
/* A clone restores in seconds; a fresh boot on a slow (emulated) host takes minutes.  The
 * defaults of --ready-timeout; a host running many guests at once may need more. */
#define READY_RESTORE_MS   60000
#define READY_BOOT_MS	   300000
#define READY_MAX_S	   3600
#define CONTROL_TIMEOUT_MS 120000
#define RESET_AGENT_MS	   6000

enum sandbox_state { SB_STARTING, SB_READY, SB_DYING };

struct sandbox {
	struct sandbox *next;
	char id[32];
	char dir[PATH_MAX];
	pid_t pid;
	enum sandbox_state state;
	unsigned refs; /* tool calls using it; the struct is freed at 0 once unlinked */
	unsigned snapshots;
	uint64_t created_ms; /* time create_sandbox took */
};

/* A tools/call in flight, findable for notifications/cancelled. */
struct call {
	struct call *next;
	struct mcp *m;
	json_t *id;
	json_t *params;
	int cancel[2]; /* pipe: a byte in it cancels the call */
	bool cancelled;
};

struct mcp {
	struct mcp_config cfg;
	char base[PATH_MAX];
	char ignition[PATH_MAX];
	char tmpdir[256]; /* short: socket paths inside must fit sun_path */
	char gpu[24];	  /* cfg->gpu's "WxH", or "" */
	uint32_t cid;
	pthread_mutex_t lock; /* sandboxes, calls, threads, next_id */
	pthread_cond_t idle;
	pthread_mutex_t out_lock;
	struct sandbox *sandboxes;
	struct call *calls;
	unsigned threads;
	unsigned next_id;
	bool shutting_down;
};

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Send one message (takes the reference). */
static void send_msg(struct mcp *m, json_t *msg)
{
	if (!msg)
		return;
	char *s = json_dumps(msg, JSON_COMPACT | JSON_ENSURE_ASCII);
	json_decref(msg);
	if (!s)
		return;
	size_t len = strlen(s);
	char *line = realloc(s, len + 2);
	if (!line) {
		free(s);
		return;
	}
	line[len] = '\n';
	line[len + 1] = 0;
	pthread_mutex_lock(&m->out_lock);
	(void)m->cfg.write(m->cfg.write_ctx, line, len + 1);
	pthread_mutex_unlock(&m->out_lock);
	free(line);
}

static void send_result(struct mcp *m, json_t *id, json_t *result)
{
	send_msg(m, json_pack("{s:s,s:O,s:o}", "jsonrpc", "2.0", "id", id, "result", result));
}

static void send_error(struct mcp *m, json_t *id, int code, const char *msg)
{
	send_msg(m, json_pack("{s:s,s:O,s:{s:i,s:s}}", "jsonrpc", "2.0", "id",
			      id ? id : json_null(), "error", "code", code, "message", msg));
}

/* A string from bytes that may not be UTF-8: invalid sequences become U+FFFD, so any output
 * a command prints can be carried in JSON. */
static json_t *text_from_bytes(const uint8_t *p, size_t len)
{
	char *out = malloc(len * 3 + 1);
	size_t o = 0;
	if (!out)
		return NULL;
	for (size_t i = 0; i < len;) {
		uint8_t c = p[i];
		size_t need = c < 0x80		   ? 0
			      : (c & 0xe0) == 0xc0 ? 1
			      : (c & 0xf0) == 0xe0 ? 2
			      : (c & 0xf8) == 0xf0 ? 3
						   : 4;
		bool ok = need < 4 && need < len - i;
		if (ok && need) {
			for (size_t k = 1; ok && k <= need; k++)
				ok = (p[i + k] & 0xc0) == 0x80;
			/* Overlong forms, surrogates and values past U+10FFFF are invalid too. */
			if (ok) {
				uint32_t cp = c & (0x3f >> need);
				for (size_t k = 1; k <= need; k++)
					cp = cp << 6 | (p[i + k] & 0x3f);
				static const uint32_t min[] = { 0, 0x80, 0x800, 0x10000 };
				ok = cp >= min[need] && cp <= 0x10ffff &&
				     (cp < 0xd800 || cp > 0xdfff);
			}
		}
		if (!ok) {
			memcpy(out + o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
			continue;
		}
		memcpy(out + o, p + i, need + 1);
		o += need + 1;
		i += need + 1;
	}
	json_t *s = json_stringn(out, o);
	free(out);
	return s;
}

/* A tool result: one text block, optional structured content, isError. */
static json_t *tool_result(const char *text, json_t *structured, bool is_error)
{
	json_t *r = json_pack("{s:[{s:s,s:s}],s:b}", "content", "type", "text", "text", text,
			      "isError", is_error);
	if (r && structured)
		json_object_set_new(r, "structuredContent", structured);
	else
		json_decref(structured);
	return r;
}

static json_t *tool_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static json_t *tool_error(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return tool_result(msg, NULL, true);
}

/* --- tools/list ------------------------------------------------------------------------ */

static json_t *schema(const char *props_json, const char *required_json)
{
	json_error_t je;
	json_t *s = json_pack("{s:s,s:o,s:o,s:b}", "type", "object", "properties",
			      json_loads(props_json, 0, &je), "required",
			      json_loads(required_json, 0, &je), "additionalProperties", false);
	return s;
}

#define SB_PROP "\"sandbox_id\":{\"type\":\"string\",\"description\":\"from create_sandbox\"}"

static json_t *tools_list(void)
{
	struct {
		const char *name, *desc, *props, *req;
	} t[] = {
		{ "create_sandbox",
		  "Start a new sandbox: a Linux microVM cloned from the base snapshot (or booted "
		  "when the server has no base). Returns its sandbox_id.",
		  "{}", "[]" },
		{ "exec",
		  "Run a shell command (/bin/sh -c) in a sandbox as root. Returns stdout, stderr "
		  "and the exit code; the command's process group is killed at the timeout.",
		  "{" SB_PROP ",\"command\":{\"type\":\"string\"},"
		  "\"stdin\":{\"type\":\"string\",\"description\":\"bytes for the command's "
		  "stdin\"},"
		  "\"timeout_s\":{\"type\":\"number\",\"description\":\"default 30, at most "
		  "3600\"},"
		  "\"max_output\":{\"type\":\"integer\",\"description\":\"bytes kept of each of "
		  "stdout and stderr (default 1 MiB, at most 8 MiB)\"}}",
		  "[\"sandbox_id\",\"command\"]" },
		{ "write_file", "Write a file in a sandbox (created or truncated).",
		  "{" SB_PROP ",\"path\":{\"type\":\"string\"},\"content\":{\"type\":\"string\"},"
		  "\"mode\":{\"type\":\"integer\",\"description\":\"permission bits, default "
		  "0644 (decimal 420)\"}}",
		  "[\"sandbox_id\",\"path\",\"content\"]" },
		{ "read_file", "Read a file from a sandbox (text; invalid UTF-8 shows as U+FFFD).",
		  "{" SB_PROP ",\"path\":{\"type\":\"string\"},\"max_bytes\":{\"type\":\"integer\","
		  "\"description\":\"default 1 MiB, at most 16 MiB\"}}",
		  "[\"sandbox_id\",\"path\"]" },
		{ "reset_sandbox",
		  "Roll a sandbox back to where it started (its memory, disk and devices), in "
		  "place, in milliseconds.",
		  "{" SB_PROP "}", "[\"sandbox_id\"]" },
		{ "snapshot_sandbox",
		  "Write a snapshot of a sandbox to a directory on the host (restorable with "
		  "ignition run --restore, or usable as another server's --base).",
		  "{" SB_PROP ",\"dir\":{\"type\":\"string\",\"description\":\"absolute path that "
		  "does not exist yet; default ./ign-mcp-snapshots/<id>-<n>\"}}",
		  "[\"sandbox_id\"]" },
		{ "destroy_sandbox", "Stop a sandbox and delete everything it had.",
		  "{" SB_PROP "}", "[\"sandbox_id\"]" },
		{ "list_sandboxes", "List the sandboxes and their state.", "{}", "[]" },
	};
	json_t *arr = json_array();
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		json_array_append_new(arr, json_pack("{s:s,s:s,s:o}", "name", t[i].name,
						     "description", t[i].desc, "inputSchema",
						     schema(t[i].props, t[i].req)));
	/* screenshot, type, key, click, resize (src/mcp/gui.c). */
	if (arr && mcp_gui_list(arr)) {
		json_decref(arr);
		return NULL;
	}
	return json_pack("{s:o}", "tools", arr);
}

/* --- sandboxes ------------------------------------------------------------------------- */

/* Find a ready sandbox and take a reference; NULL when none. */
static struct sandbox *sb_get(struct mcp *m, const char *id)
{
	struct sandbox *s;
	pthread_mutex_lock(&m->lock);
	for (s = m->sandboxes; s; s = s->next)
		if (!strcmp(s->id, id) && s->state == SB_READY) {
			s->refs++;
			break;
		}
	pthread_mutex_unlock(&m->lock);
	return s;
}

static void sb_free(struct sandbox *s)
{
	sandbox_kill(s->pid);
	sandbox_rmtree(s->dir);
	free(s);
}

static void sb_put(struct mcp *m, struct sandbox *s)
{
	bool last;
	pthread_mutex_lock(&m->lock);
	last = --s->refs == 0 && s->state == SB_DYING;
	pthread_mutex_unlock(&m->lock);
	if (last)
		sb_free(s);
}

/* Unlink a sandbox and mark it dying; the last reference frees it (kills the VM).  The
 * sandbox is killed first so calls using it end at once. */
static int sb_destroy(struct mcp *m, const char *id)
{
	struct sandbox **pp, *s = NULL;
	pthread_mutex_lock(&m->lock);
	for (pp = &m->sandboxes; *pp; pp = &(*pp)->next)
		if (!strcmp((*pp)->id, id) && (*pp)->state == SB_READY) {
			s = *pp;
			*pp = s->next;
			s->state = SB_DYING;
			break;
		}
	/* The list holds no reference: without calls using it the sandbox goes now, else the
	 * last call's sb_put() frees it. */
	bool now = s && s->refs == 0;
	pthread_mutex_unlock(&m->lock);
	if (!s)
		return -ENOENT;
	if (s->pid > 0)
		kill(s->pid, SIGTERM);
	if (now)
		sb_free(s);
	return 0;
}

static const char *arg_str(json_t *args, const char *key)
{
	return json_string_value(json_object_get(args, key));
}

static json_t *do_create(struct mcp *m, struct call *c)
{
	struct sandbox *s = calloc(1, sizeof(*s));
	char err[512];
	if (!s)
		return tool_error("out of memory");
	pthread_mutex_lock(&m->lock);
	unsigned count = 0;
	for (struct sandbox *x = m->sandboxes; x; x = x->next)
		count++;
	if (count >= m->cfg.max_sandboxes || m->shutting_down) {
		pthread_mutex_unlock(&m->lock);
		free(s);
		return tool_error("%u sandboxes exist already (the server's --max-sandboxes)",
				  count);
	}
	snprintf(s->id, sizeof(s->id), "sb%u", ++m->next_id);
	snprintf(s->dir, sizeof(s->dir), "%s/%s", m->tmpdir, s->id);
	s->state = SB_STARTING;
	s->refs = 1;
	s->next = m->sandboxes;
	m->sandboxes = s;
	pthread_mutex_unlock(&m->lock);

	int64_t t0 = now_ms();
	int ret = mkdir(s->dir, 0700) ? -errno : 0;
	if (ret) {
		snprintf(err, sizeof(err), "mkdir %.200s: %s", s->dir, strerror(-ret));
	} else {
		struct sandbox_spec spec = {
			.ignition = m->ignition,
			.base = m->base[0] ? m->base : NULL,
			.dir = s->dir,
			.cid = m->cid,
			.ready_ms = m->cfg.ready_ms ? m->cfg.ready_ms
				    : m->base[0]    ? READY_RESTORE_MS
						    : READY_BOOT_MS,
			.cancel_fd = c->cancel[0],
			.gpu = m->gpu[0] ? m->gpu : NULL,
		};
		pid_t pid = 0;
		ret = sandbox_start(&spec, &pid, err, sizeof(err));
		/* The pid is recorded even on failure so the free below kills it. */
		pthread_mutex_lock(&m->lock);
		s->pid = pid;
		pthread_mutex_unlock(&m->lock);
	}
	s->created_ms = (uint64_t)(now_ms() - t0);
	pthread_mutex_lock(&m->lock);
	if (!ret && s->state == SB_STARTING)
		s->state = SB_READY;
	else if (s->state != SB_DYING) {
		/* Failed: unlink; the put below frees it. */
		for (struct sandbox **pp = &m->sandboxes; *pp; pp = &(*pp)->next)
			if (*pp == s) {
				*pp = s->next;
				break;
			}
		s->state = SB_DYING;
		if (!ret) {
			ret = -ECANCELED;
			snprintf(err, sizeof(err), "the server is shutting down");
		}
	}
	pthread_mutex_unlock(&m->lock);
	if (ret) {
		sb_put(m, s);
		return tool_error("create_sandbox failed: %s", err);
	}
	char text[256];
	snprintf(text, sizeof(text), "sandbox %s ready in %llu ms (%s)", s->id,
		 (unsigned long long)s->created_ms,
		 m->base[0] ? "restored from the base" : "booted");
	json_t *r = tool_result(
		text,
		json_pack("{s:s,s:I}", "sandbox_id", s->id, "create_ms", (json_int_t)s->created_ms),
		false);
	sb_put(m, s);
	return r;
}

static json_t *do_exec(struct mcp *m, struct call *c, struct sandbox *s, json_t *args)
{
	const char *cmd = arg_str(args, "command");
	json_t *jin = json_object_get(args, "stdin"), *jto = json_object_get(args, "timeout_s");
	json_t *jmax = json_object_get(args, "max_output");
	if (!cmd || (jin && !json_is_string(jin)) || (jto && !json_is_number(jto)) ||
	    (jmax && !json_is_integer(jmax)))
		return tool_error("exec: 'command' (string) is required; 'stdin' is a string, "
				  "'timeout_s' a number, 'max_output' an integer");
	double to = jto ? json_number_value(jto) : EXEC_TIMEOUT_DEFAULT_S;
	if (!(to > 0 && to <= EXEC_TIMEOUT_MAX_S))
		return tool_error("exec: timeout_s must be in (0, %d]", EXEC_TIMEOUT_MAX_S);
	json_int_t max = jmax ? json_integer_value(jmax) : EXEC_OUTPUT_DEFAULT;
	if (max < 0 || max > AGENT_OUTPUT_MAX)
		return tool_error("exec: max_output must be 0 to %u", AGENT_OUTPUT_MAX);
	struct agent_exec_req req = {
		.flags = AGENT_EXEC_SHELL,
		.timeout_ms = (uint32_t)(to * 1000) ? (uint32_t)(to * 1000) : 1,
		.max_output = (uint32_t)max,
		.argc = 1,
		.argv = { cmd, NULL },
		.in = jin ? (const uint8_t *)json_string_value(jin) : NULL,
		.in_len = jin ? (uint32_t)json_string_length(jin) : 0,
	};
	if (jin && json_string_length(jin) > AGENT_DATA_MAX)
		return tool_error("exec: stdin is longer than %u bytes", AGENT_DATA_MAX);
	if (strlen(cmd) + 1 > AGENT_STR_MAX)
		return tool_error("exec: command is longer than %u bytes", AGENT_STR_MAX - 1);
	struct agent_buf b = { 0 };
	struct agent_reply r;
	struct agent_exec_result res;
	char err[512];
	int ret = agent_exec_encode(&b, &req);
	if (ret) {
		agent_buf_free(&b);
		return tool_error("exec: cannot encode the request: %s", strerror(-ret));
	}
	int64_t t0 = now_ms();
	ret = sandbox_agent_call(s->dir, &b, (int)req.timeout_ms + AGENT_SLACK_MS, c->cancel[0], &r,
				 err, sizeof(err));
	agent_buf_free(&b);
	if (ret)
		return tool_error("exec in %s failed: %s", s->id, err);
	if (r.type != AGENT_EXEC_RESULT || agent_exec_result_decode(r.payload, r.len, &res)) {
		agent_reply_free(&r);
		return tool_error("exec in %s: malformed answer from the agent", s->id);
	}
	json_t *out = text_from_bytes(res.out, res.out_len);
	json_t *errs = text_from_bytes(res.err, res.err_len);
	json_t *st = json_pack(
		"{s:o,s:o,s:o,s:o,s:b,s:b,s:b,s:I}", "stdout", out, "stderr", errs, "exit_code",
		res.kind == AGENT_EXITED ? json_integer(res.code) : json_null(), "signal",
		res.kind == AGENT_SIGNALED ? json_integer(res.code) : json_null(), "timed_out",
		res.timed_out, "stdout_truncated", res.out_truncated, "stderr_truncated",
		res.err_truncated, "duration_ms", (json_int_t)(now_ms() - t0));
	agent_reply_free(&r);
	if (!st)
		return tool_error("exec: out of memory");
	/* The text block for models that read only content: status line, then the outputs. */
	char head[256];
	if (res.timed_out)
		snprintf(head, sizeof(head), "timed out after %.3g s (killed)", to);
	else if (res.kind == AGENT_SIGNALED)
		snprintf(head, sizeof(head), "killed by signal %u", res.code);
	else
		snprintf(head, sizeof(head), "exit code %u", res.code);
	const char *so = json_string_value(json_object_get(st, "stdout"));
	const char *se = json_string_value(json_object_get(st, "stderr"));
	size_t tl = strlen(head) + strlen(so) + strlen(se) + 64;
	char *text = malloc(tl);
	if (!text) {
		json_decref(st);
		return tool_error("exec: out of memory");
	}
	snprintf(text, tl, "%s\n--- stdout%s ---\n%s\n--- stderr%s ---\n%s", head,
		 res.out_truncated ? " (truncated)" : "", so,
		 res.err_truncated ? " (truncated)" : "", se);
	json_t *result = tool_result(text, st, res.timed_out);
	free(text);
	return result;
}

static json_t *do_write(struct mcp *m, struct call *c, struct sandbox *s, json_t *args)
{
	const char *path = arg_str(args, "path");
	json_t *content = json_object_get(args, "content"), *jmode = json_object_get(args, "mode");
	if (!path || !path[0] || !json_is_string(content) || (jmode && !json_is_integer(jmode)))
		return tool_error("write_file: 'path' and 'content' (strings) are required, 'mode' "
				  "is an integer");
	json_int_t mode = jmode ? json_integer_value(jmode) : 0644;
	if (mode < 0 || mode > 07777)
		return tool_error("write_file: mode must be 0 to 4095 (07777)");
	if (json_string_length(content) > AGENT_DATA_MAX)
		return tool_error("write_file: content is longer than %u bytes", AGENT_DATA_MAX);
	struct agent_file_req req = {
		.path = path,
		.mode = (uint32_t)mode,
		.data = (const uint8_t *)json_string_value(content),
		.data_len = (uint32_t)json_string_length(content),
	};
	struct agent_buf b = { 0 };
	struct agent_reply r;
	char err[512];
	int ret = agent_file_encode(&b, AGENT_WRITE_FILE, &req);
	if (ret) {
		agent_buf_free(&b);
		return tool_error("write_file: bad request: %s", strerror(-ret));
	}
	ret = sandbox_agent_call(s->dir, &b, AGENT_FILE_TIMEOUT_MS, c->cancel[0], &r, err,
				 sizeof(err));
	agent_buf_free(&b);
	if (ret)
		return tool_error("write_file in %s failed: %s", s->id, err);
	bool ok = r.type == AGENT_WRITE_RESULT;
	agent_reply_free(&r);
	if (!ok)
		return tool_error("write_file in %s: unexpected answer from the agent", s->id);
	char text[PATH_MAX + 64];
	snprintf(text, sizeof(text), "wrote %zu bytes to %s", json_string_length(content), path);
	return tool_result(text, NULL, false);
}

static json_t *do_read(struct mcp *m, struct call *c, struct sandbox *s, json_t *args)
{
	const char *path = arg_str(args, "path");
	json_t *jmax = json_object_get(args, "max_bytes");
	if (!path || !path[0] || (jmax && !json_is_integer(jmax)))
		return tool_error(
			"read_file: 'path' (string) is required, 'max_bytes' is an integer");
	json_int_t max = jmax ? json_integer_value(jmax) : READ_DEFAULT;
	if (max < 0 || max > AGENT_DATA_MAX)
		return tool_error("read_file: max_bytes must be 0 to %u", AGENT_DATA_MAX);
	struct agent_file_req req = { .path = path, .max = (uint32_t)max };
	struct agent_buf b = { 0 };
	struct agent_reply r;
	struct agent_read_result res;
	char err[512];
	int ret = agent_file_encode(&b, AGENT_READ_FILE, &req);
	if (ret) {
		agent_buf_free(&b);
		return tool_error("read_file: bad request: %s", strerror(-ret));
	}
	ret = sandbox_agent_call(s->dir, &b, AGENT_FILE_TIMEOUT_MS, c->cancel[0], &r, err,
				 sizeof(err));
	agent_buf_free(&b);
	if (ret)
		return tool_error("read_file in %s failed: %s", s->id, err);
	if (r.type != AGENT_READ_RESULT || agent_read_result_decode(r.payload, r.len, &res)) {
		agent_reply_free(&r);
		return tool_error("read_file in %s: malformed answer from the agent", s->id);
	}
	json_t *t = text_from_bytes(res.data, res.data_len);
	bool trunc = res.truncated;
	agent_reply_free(&r);
	if (!t)
		return tool_error("read_file: out of memory");
	json_t *result =
		tool_result(json_string_value(t),
			    json_pack("{s:O,s:b}", "content", t, "truncated", trunc), false);
	json_decref(t);
	return result;
}

static json_t *do_control(struct mcp *m, struct sandbox *s, const char *verb, json_t *args,
			  int cancel_fd)
{
	json_t *cmd, *ans = NULL;
	char err[512], text[PATH_MAX + 128], dir[PATH_MAX];
	if (!strcmp(verb, "reset")) {
		cmd = json_pack("{s:s}", "cmd", "reset");
	} else {
		const char *d = arg_str(args, "dir");
		if (d && d[0] != '/')
			return tool_error("snapshot_sandbox: dir must be an absolute path");
		if (d) {
			snprintf(dir, sizeof(dir), "%s", d);
		} else {
			char cwd[PATH_MAX];
			unsigned k;
			if (!getcwd(cwd, sizeof(cwd)))
				return tool_error("snapshot_sandbox: getcwd: %s", strerror(errno));
			pthread_mutex_lock(&m->lock);
			k = ++s->snapshots;
			pthread_mutex_unlock(&m->lock);
			snprintf(text, sizeof(text), "%s/ign-mcp-snapshots", cwd);
			mkdir(text, 0700);
			if (snprintf(dir, sizeof(dir), "%s/%s-%u-%ld", text, s->id, k,
				     (long)time(NULL)) >= (int)sizeof(dir))
				return tool_error(
					"snapshot_sandbox: the current directory is too long");
		}
		cmd = json_pack("{s:s,s:s}", "cmd", "snapshot", "dir", dir);
	}
	if (!cmd)
		return tool_error("out of memory");
	int ret;
	bool reset = !strcmp(verb, "reset");
	ret = sandbox_control(s->dir, cmd, CONTROL_TIMEOUT_MS, &ans, err, sizeof(err));
	/* The agent's connections were reset with the VM; its listener is back at once
	 * (docs/mcp.md), which a ping confirms before the tool answers. */
	if (!ret && reset)
		ret = sandbox_wait_agent(s->dir, RESET_AGENT_MS, cancel_fd, err, sizeof(err));
	json_decref(cmd);
	if (ret) {
		json_decref(ans);
		return tool_error("%s of %s failed: %s", verb, s->id, err);
	}
	json_t *st;
	if (!strcmp(verb, "reset")) {
		json_int_t us = json_integer_value(json_object_get(ans, "reset_us"));
		json_int_t pages = json_integer_value(json_object_get(ans, "pages"));
		snprintf(text, sizeof(text),
			 "%s reset to its start in %lld us (%lld pages copied back)", s->id,
			 (long long)us, (long long)pages);
		st = json_pack("{s:I,s:I}", "reset_us", us, "pages", pages);
	} else {
		const char *d = json_string_value(json_object_get(ans, "dir"));
		snprintf(text, sizeof(text), "snapshot of %s written to %s", s->id, d ? d : dir);
		st = json_pack("{s:s}", "dir", d ? d : dir);
	}
	json_decref(ans);
	return tool_result(text, st, false);
}

static json_t *do_list(struct mcp *m)
{
	json_t *arr = json_array();
	pthread_mutex_lock(&m->lock);
	for (struct sandbox *s = m->sandboxes; s; s = s->next)
		json_array_append_new(arr, json_pack("{s:s,s:s,s:I}", "sandbox_id", s->id, "state",
						     s->state == SB_READY ? "ready" : "starting",
						     "create_ms", (json_int_t)s->created_ms));
	pthread_mutex_unlock(&m->lock);
	char *text = json_dumps(arr, JSON_COMPACT);
	json_t *r = tool_result(text ? text : "[]", json_pack("{s:o}", "sandboxes", arr), false);
	free(text);
	return r;
}

/* Run one tools/call; returns the result object (tool errors inside), or NULL with *code and
 * msg set for a JSON-RPC error. */
static json_t *run_tool(struct mcp *m, struct call *c, int *code, char *msg, size_t n)
{
	const char *name = json_string_value(json_object_get(c->params, "name"));
	json_t *args = json_object_get(c->params, "arguments");
	if (!args)
		args = json_object();
	else
		json_incref(args);
	json_t *r = NULL;
	if (!json_is_object(args)) {
		*code = RPC_INVALID_PARAMS;
		snprintf(msg, n, "arguments must be an object");
		goto out;
	}
	if (!strcmp(name, "create_sandbox")) {
		r = do_create(m, c);
		goto out;
	}
	if (!strcmp(name, "list_sandboxes")) {
		r = do_list(m);
		goto out;
	}
	const char *id = arg_str(args, "sandbox_id");
	if (!id) {
		r = tool_error("%s: 'sandbox_id' (string) is required", name);
		goto out;
	}
	if (!strcmp(name, "destroy_sandbox")) {
		char text[128];
		snprintf(text, sizeof(text), "%s destroyed", id);
		r = sb_destroy(m, id) ? tool_error("no sandbox '%s'", id)
				      : tool_result(text, NULL, false);
		goto out;
	}
	/* Display tools: their arguments are checked before the sandbox is looked up. */
	if (mcp_gui_is_tool(name)) {
		char err[512];
		json_t *cmd;
		if (mcp_gui_command(name, args, &cmd, err, sizeof(err))) {
			r = tool_error("%s", err);
			goto out;
		}
		json_decref(cmd);
	}
	struct sandbox *s = sb_get(m, id);
	if (!s) {
		r = tool_error("no sandbox '%s' (list_sandboxes shows them)", id);
		goto out;
	}
	if (!strcmp(name, "exec"))
		r = do_exec(m, c, s, args);
	else if (!strcmp(name, "write_file"))
		r = do_write(m, c, s, args);
	else if (!strcmp(name, "read_file"))
		r = do_read(m, c, s, args);
	else if (mcp_gui_is_tool(name))
		r = mcp_gui_call(name, args, s->id, s->dir);
	else if (!strcmp(name, "reset_sandbox"))
		r = do_control(m, s, "reset", args, c->cancel[0]);
	else
		r = do_control(m, s, "snapshot", args, c->cancel[0]);
	sb_put(m, s);
out:
	json_decref(args);
	return r;
}

static bool known_tool(const char *name)
{
	static const char *const names[] = { "create_sandbox",	"exec",		 "write_file",
					     "read_file",	"reset_sandbox", "snapshot_sandbox",
					     "destroy_sandbox", "list_sandboxes" };
	for (size_t i = 0; name && i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(name, names[i]))
			return true;
	return mcp_gui_is_tool(name);
}

static void call_free(struct call *c)
{
	json_decref(c->id);
	json_decref(c->params);
	close(c->cancel[0]);
	close(c->cancel[1]);
	free(c);
}

static void *call_thread(void *arg)
{
	struct call *c = arg;
	struct mcp *m = c->m;
	int code = RPC_INTERNAL_ERROR;
	char msg[256] = "out of memory";
	json_t *r = run_tool(m, c, &code, msg, sizeof(msg));
	pthread_mutex_lock(&m->lock);
	for (struct call **pp = &m->calls; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	bool cancelled = c->cancelled;
	pthread_mutex_unlock(&m->lock);
	/* "Utilities: Cancellation": the receiver of a cancellation sends no answer. */
	if (!cancelled) {
		if (r)
			send_result(m, c->id, r);
		else
			send_error(m, c->id, code, msg);
	} else {
		json_decref(r);
	}
	call_free(c);
	pthread_mutex_lock(&m->lock);
	if (--m->threads == 0)
		pthread_cond_broadcast(&m->idle);
	pthread_mutex_unlock(&m->lock);
	return NULL;
}

static void start_call(struct mcp *m, json_t *id, json_t *params)
{
	const char *name = json_string_value(json_object_get(params, "name"));
	if (!json_is_object(params) || !name) {
		send_error(m, id, RPC_INVALID_PARAMS, "tools/call needs params.name");
		return;
	}
	if (!known_tool(name)) {
		char msg[128];
		snprintf(msg, sizeof(msg), "unknown tool '%.64s'", name);
		send_error(m, id, RPC_INVALID_PARAMS, msg);
		return;
	}
	struct call *c = calloc(1, sizeof(*c));
	if (!c || pipe2(c->cancel, O_CLOEXEC)) {
		free(c);
		send_error(m, id, RPC_INTERNAL_ERROR, "out of resources");
		return;
	}
	c->m = m;
	c->id = json_incref(id);
	c->params = json_incref(params);
	pthread_mutex_lock(&m->lock);
	if (m->shutting_down) {
		pthread_mutex_unlock(&m->lock);
		call_free(c);
		send_error(m, id, RPC_INTERNAL_ERROR, "the server is shutting down");
		return;
	}
	c->next = m->calls;
	m->calls = c;
	m->threads++;
	pthread_mutex_unlock(&m->lock);
	pthread_t t;
	pthread_attr_t a;
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	int ret = pthread_create(&t, &a, call_thread, c);
	pthread_attr_destroy(&a);
	if (ret) {
		pthread_mutex_lock(&m->lock);
		m->calls = c->next; /* still first: only this thread adds */
		m->threads--;
		pthread_mutex_unlock(&m->lock);
		call_free(c);
		send_error(m, id, RPC_INTERNAL_ERROR, "cannot start a thread");
	}
}

/* notifications/cancelled {requestId, reason?}: stop that call if it still runs. */
static void cancel_call(struct mcp *m, json_t *params)
{
	json_t *rid = json_object_get(params, "requestId");
	if (!rid)
		return;
	pthread_mutex_lock(&m->lock);
	for (struct call *c = m->calls; c; c = c->next)
		if (json_equal(c->id, rid) && !c->cancelled) {
			c->cancelled = true;
			(void)!write(c->cancel[1], "x", 1);
		}
	pthread_mutex_unlock(&m->lock);
}

static json_t *initialize_result(json_t *params)
{
	const char *want = json_string_value(json_object_get(params, "protocolVersion"));
	const char *ver = PROTOCOL_LATEST;
	/* "Lifecycle: Version Negotiation": the client's version when supported, else ours. */
	for (size_t i = 0; want && i < sizeof(protocol_versions) / sizeof(protocol_versions[0]);
	     i++)
		if (!strcmp(want, protocol_versions[i]))
			ver = protocol_versions[i];
	return json_pack(
		"{s:s,s:{s:{s:b}},s:{s:s,s:s,s:s},s:s}", "protocolVersion", ver, "capabilities",
		"tools", "listChanged", false, "serverInfo", "name", "ignition", "title",
		"ignition microVM sandboxes", "version", "0.1", "instructions",
		"Create a sandbox (a Linux microVM) with create_sandbox, then run commands "
		"in it with exec and move files with write_file/read_file. reset_sandbox "
		"brings it back to its start; destroy_sandbox when done.");
}

void mcp_handle_line(struct mcp *m, const char *line, size_t len)
{
	json_error_t je;
	/* Blank lines between messages are harmless: skip them. */
	size_t i = 0;
	while (i < len && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r'))
		i++;
	if (i == len)
		return;
	json_t *msg = json_loadb(line, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
	if (!msg) {
		send_error(m, NULL, RPC_PARSE_ERROR, "parse error: not JSON");
		return;
	}
	json_t *id = json_object_get(msg, "id");
	json_t *method = json_object_get(msg, "method");
	json_t *params = json_object_get(msg, "params");
	if (!json_is_object(msg) || !json_is_string(json_object_get(msg, "jsonrpc")) ||
	    strcmp(json_string_value(json_object_get(msg, "jsonrpc")), "2.0")) {
		send_error(m, NULL, RPC_INVALID_REQUEST,
			   "not a JSON-RPC 2.0 message (batches are "
			   "not part of MCP 2025-06-18)");
		goto out;
	}
	/* MCP ids are strings or integers, never null. */
	if (id && !json_is_string(id) && !json_is_integer(id)) {
		send_error(m, NULL, RPC_INVALID_REQUEST, "id must be a string or an integer");
		goto out;
	}
	if (!method) {
		/* A response to a request of ours: we send none, so there is nothing to match. */
		goto out;
	}
	if (!json_is_string(method)) {
		send_error(m, id, RPC_INVALID_REQUEST, "method must be a string");
		goto out;
	}
	const char *name = json_string_value(method);
	if (params && !json_is_object(params)) {
		if (id)
			send_error(m, id, RPC_INVALID_PARAMS, "params must be an object");
		goto out;
	}
	if (!id) {
		/* Notifications: never answered. */
		if (!strcmp(name, "notifications/cancelled"))
			cancel_call(m, params);
		goto out;
	}
	if (!strcmp(name, "initialize"))
		send_result(m, id, initialize_result(params));
	else if (!strcmp(name, "ping"))
		send_result(m, id, json_object());
	else if (!strcmp(name, "tools/list"))
		send_result(m, id, tools_list());
	else if (!strcmp(name, "tools/call"))
		start_call(m, id, params);
	else
		send_error(m, id, RPC_METHOD_NOT_FOUND, "method not found");
out:
	json_decref(msg);
}

int mcp_create(const struct mcp_config *cfg, struct mcp **out)
{
	struct mcp *m = calloc(1, sizeof(*m));
	int ret;
	if (!m)
		return -ENOMEM;
	m->cfg = *cfg;
	if (!m->cfg.max_sandboxes)
		m->cfg.max_sandboxes = MCP_DEFAULT_MAX_SANDBOXES;
	m->cid = 3;
	snprintf(m->ignition, sizeof(m->ignition), "%s", cfg->ignition ? cfg->ignition : "");
	if (cfg->gpu && (cfg->base || strlen(cfg->gpu) >= sizeof(m->gpu))) {
		ret = -EINVAL; /* a base snapshot fixes the machine, display or not */
		goto free_m;
	}
	snprintf(m->gpu, sizeof(m->gpu), "%s", cfg->gpu ? cfg->gpu : "");
	if (cfg->base) {
		if (!realpath(cfg->base, m->base)) {
			ret = -errno;
			goto free_m;
		}
		if ((ret = sandbox_base_cid(m->base, &m->cid)))
			goto free_m;
	}
	const char *tmp = getenv("TMPDIR");
	if (snprintf(m->tmpdir, sizeof(m->tmpdir), "%s/ign-mcp-XXXXXX",
		     tmp && tmp[0] ? tmp : "/tmp") >= (int)sizeof(m->tmpdir)) {
		ret = -ENAMETOOLONG;
		goto free_m;
	}
	if (!mkdtemp(m->tmpdir)) {
		ret = -errno;
		goto free_m;
	}
	pthread_mutex_init(&m->lock, NULL);
	pthread_mutex_init(&m->out_lock, NULL);
	pthread_cond_init(&m->idle, NULL);
	*out = m;
	return 0;
free_m:
	free(m);
	return ret;
}

void mcp_wait_idle(struct mcp *m)
{
	pthread_mutex_lock(&m->lock);
	while (m->threads)
		pthread_cond_wait(&m->idle, &m->lock);
	pthread_mutex_unlock(&m->lock);
}

void mcp_destroy(struct mcp *m)
{
	if (!m)
		return;
	pthread_mutex_lock(&m->lock);
	m->shutting_down = true;
	/* Calls end quickly once cancelled (their agent connections close); a sandbox still
	 * starting is killed so its create ends too. */
	for (struct call *c = m->calls; c; c = c->next) {
		c->cancelled = true;
		(void)!write(c->cancel[1], "x", 1);
	}
	for (struct sandbox *s = m->sandboxes; s; s = s->next)
		if (s->pid > 0)
			kill(s->pid, SIGTERM);
	pthread_mutex_unlock(&m->lock);
	mcp_wait_idle(m);
	while (m->sandboxes) {
		struct sandbox *s = m->sandboxes;
		m->sandboxes = s->next;
		sb_free(s);
	}
	sandbox_rmtree(m->tmpdir);
	pthread_cond_destroy(&m->idle);
	pthread_mutex_destroy(&m->out_lock);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

/* --- the command ----------------------------------------------------------------------- */

static const char mcp_usage[] =
	"Usage: ignition mcp [--base SNAPSHOT_DIR | --gpu WxH] [--max-sandboxes N]\n"
	"                    [--ready-timeout SECONDS]\n"
	"A Model Context Protocol server on stdin/stdout (JSON-RPC 2.0, one message per line)\n"
	"whose tools create and drive sandboxes: microVMs cloned from SNAPSHOT_DIR (a snapshot of\n"
	"a guest whose agent is up, docs/mcp.md), or booted from the default guest without it.\n"
	"  --base DIR           snapshot every sandbox is restored from\n"
	"  --gpu WxH            booted sandboxes get a display of this size (64x64 to\n"
	"                       3840x2160) for the screenshot, type, key, click and resize\n"
	"                       tools; a --base snapshot has one if it was taken with one\n"
	"  --max-sandboxes N    sandboxes at once (default 8)\n"
	"  --ready-timeout S    seconds a new sandbox's agent has to answer before\n"
	"                       create_sandbox fails (1 to 3600; default 60 for a --base\n"
	"                       clone, 300 for a boot)\n"
	"  -h, --help           show this help\n"
	"Sandboxes live in a private directory under $TMPDIR (or /tmp); all are killed and the\n"
	"directory removed when stdin closes or on SIGTERM, SIGINT or SIGHUP.\n";

static int write_stdout(void *ctx, const char *line, size_t len)
{
	(void)ctx;
	while (len) {
		ssize_t w = write(STDOUT_FILENO, line, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		line += w;
		len -= (size_t)w;
	}
	return 0;
}

static int stop_pipe[2] = { -1, -1 };

static void on_signal(int sig)
{
	(void)sig;
	int e = errno;
	(void)!write(stop_pipe[1], "x", 1);
	errno = e;
}

int mcp_main(int argc, char **argv)
{
	const char *base = NULL, *gpu = NULL;
	unsigned long max = 0, ready_s = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			fputs(mcp_usage, stdout);
			return 0;
		} else if (!strcmp(argv[i], "--base") && i + 1 < argc) {
			base = argv[++i];
		} else if (!strcmp(argv[i], "--gpu") && i + 1 < argc) {
			unsigned w, h;
			char tail;
			gpu = argv[++i];
			/* Digits only (sscanf alone would take signs and spaces), as `run`'s
			 * --gpu, which the sandboxes get. */
			if (strspn(gpu, "0123456789x") != strlen(gpu) ||
			    sscanf(gpu, "%ux%u%c", &w, &h, &tail) != 2 || w < DISPLAY_MIN_DIM ||
			    h < DISPLAY_MIN_DIM || w > DISPLAY_MAX_W || h > DISPLAY_MAX_H) {
				fprintf(stderr,
					"ignition mcp: error: --gpu: bad mode '%s' (want WxH from "
					"%ux%u to %ux%u)\n",
					gpu, DISPLAY_MIN_DIM, DISPLAY_MIN_DIM, DISPLAY_MAX_W,
					DISPLAY_MAX_H);
				return 2;
			}
		} else if (!strcmp(argv[i], "--max-sandboxes") && i + 1 < argc) {
			char *end;
			max = strtoul(argv[++i], &end, 10);
			if (*end || max == 0 || max > 1024) {
				fprintf(stderr,
					"ignition mcp: error: --max-sandboxes: 1 to 1024\n");
				return 2;
			}
		} else if (!strcmp(argv[i], "--ready-timeout") && i + 1 < argc) {
			char *end;
			const char *v = argv[++i];
			ready_s = strtoul(v, &end, 10);
			if (!isdigit((unsigned char)*v) || *end || ready_s == 0 ||
			    ready_s > READY_MAX_S) {
				fprintf(stderr,
					"ignition mcp: error: --ready-timeout: 1 to %u seconds\n",
					READY_MAX_S);
				return 2;
			}
		} else {
			fprintf(stderr, "ignition mcp: error: bad argument '%s'\n%s", argv[i],
				mcp_usage);
			return 2;
		}
	}
	if (base && gpu) {
		fprintf(stderr, "ignition mcp: error: --gpu is for booted sandboxes; a --base "
				"snapshot has a display if it was taken with one\n");
		return 2;
	}
	char self[PATH_MAX];
	ssize_t sl = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (sl <= 0) {
		fprintf(stderr, "ignition mcp: error: cannot find my own binary\n");
		return 1;
	}
	self[sl] = 0;
	if (pipe2(stop_pipe, O_CLOEXEC)) {
		perror("ignition mcp: pipe");
		return 1;
	}
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	struct mcp_config cfg = {
		.base = base,
		.max_sandboxes = (unsigned)max,
		.ready_ms = (unsigned)ready_s * 1000u,
		.ignition = self,
		.gpu = gpu,
		.write = write_stdout,
	};
	struct mcp *m;
	int ret = mcp_create(&cfg, &m);
	if (ret) {
		fprintf(stderr, "ignition mcp: error: %s%s: %s\n", base ? "base snapshot " : "",
			base ? base : "setup",
			ret == -ENODEV ? "it has no vsock device (boot it with --vsock)"
				       : strerror(-ret));
		return 1;
	}
	size_t cap = 65536, len = 0;
	char *buf = malloc(cap);
	bool skipping = false; /* the rest of an over-long line */
	while (buf) {
		struct pollfd p[2] = { { .fd = STDIN_FILENO, .events = POLLIN },
				       { .fd = stop_pipe[0], .events = POLLIN } };
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents)
			break;
		if (len == cap) {
			char *nb = cap * 2 <= MCP_LINE_MAX + 1 ? realloc(buf, cap * 2) : NULL;
			if (!nb) {
				/* Too long: answer once, drop bytes up to the next newline. */
				mcp_handle_line(m, "{", 1);
				skipping = true;
				len = 0;
				continue;
			}
			buf = nb;
			cap *= 2;
		}
		ssize_t r = read(STDIN_FILENO, buf + len, cap - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		len += (size_t)r;
		char *start = buf, *nl;
		while ((nl = memchr(start, '\n', len - (size_t)(start - buf)))) {
			if (!skipping)
				mcp_handle_line(m, start, (size_t)(nl - start));
			skipping = false;
			start = nl + 1;
		}
		len -= (size_t)(start - buf);
		memmove(buf, start, len);
		if (skipping)
			len = 0;
	}
	free(buf);
	mcp_destroy(m);
	return 0;
}
