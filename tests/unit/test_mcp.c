/* The MCP server's JSON-RPC dispatch (src/mcp/mcp.c) without VMs: lifecycle and version
 * negotiation, ping, tools/list schemas, the JSON-RPC errors (parse, invalid request, unknown
 * method, unknown tool, bad params), notifications never answered, and tool calls on sandboxes
 * that do not exist answered as tool results with isError. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "mcp/gui.h"
#include "mcp/mcp.h"
#include "mcp/sandbox.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

struct out {
	pthread_mutex_t lock;
	json_t *msgs; /* array of what the server wrote, one parsed object per line */
};

static int capture(void *ctx, const char *line, size_t len)
{
	struct out *o = ctx;
	json_error_t je;
	/* One line, ending in its newline, no other newline inside. */
	assert_true(len > 0 && line[len - 1] == '\n');
	assert_null(memchr(line, '\n', len - 1));
	json_t *m = json_loadb(line, len, 0, &je);
	assert_non_null(m);
	pthread_mutex_lock(&o->lock);
	json_array_append_new(o->msgs, m);
	pthread_mutex_unlock(&o->lock);
	return 0;
}

static struct out out;
static struct mcp *srv;

static int setup(void **state)
{
	pthread_mutex_init(&out.lock, NULL);
	out.msgs = json_array();
	struct mcp_config cfg = { .ignition = "/nonexistent/ignition",
				  .write = capture,
				  .write_ctx = &out };
	return mcp_create(&cfg, &srv);
}

static int teardown(void **state)
{
	mcp_destroy(srv);
	json_decref(out.msgs);
	return 0;
}

/* Send a line, wait for the tool threads, return the only new message (or NULL for none). */
static json_t *roundtrip(const char *line)
{
	size_t before = json_array_size(out.msgs);
	mcp_handle_line(srv, line, strlen(line));
	mcp_wait_idle(srv);
	size_t after = json_array_size(out.msgs);
	if (after == before)
		return NULL;
	assert_int_equal(after, before + 1);
	json_t *m = json_array_get(out.msgs, after - 1);
	assert_string_equal(json_string_value(json_object_get(m, "jsonrpc")), "2.0");
	return m;
}

static int error_code(json_t *m)
{
	assert_non_null(m);
	json_t *e = json_object_get(m, "error");
	assert_true(json_is_object(e));
	assert_true(json_is_string(json_object_get(e, "message")));
	return (int)json_integer_value(json_object_get(e, "code"));
}

static void test_initialize(void **state)
{
	json_t *m = roundtrip("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":"
			      "{\"protocolVersion\":\"2025-06-18\",\"capabilities\":{},"
			      "\"clientInfo\":{\"name\":\"t\",\"version\":\"1\"}}}");
	json_t *r = json_object_get(m, "result");
	assert_int_equal(json_integer_value(json_object_get(m, "id")), 1);
	assert_string_equal(json_string_value(json_object_get(r, "protocolVersion")), "2025-06-18");
	assert_string_equal(
		json_string_value(json_object_get(json_object_get(r, "serverInfo"), "name")),
		"ignition");
	assert_true(json_is_object(json_object_get(json_object_get(r, "capabilities"), "tools")));
	/* An unknown version gets the server's latest. */
	m = roundtrip("{\"jsonrpc\":\"2.0\",\"id\":\"x\",\"method\":\"initialize\",\"params\":"
		      "{\"protocolVersion\":\"1999-01-01\"}}");
	assert_string_equal(json_string_value(json_object_get(m, "id")), "x");
	assert_string_equal(
		json_string_value(json_object_get(json_object_get(m, "result"), "protocolVersion")),
		"2025-11-25");
	/* Notifications are never answered. */
	assert_null(roundtrip("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}"));
	assert_null(roundtrip("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\","
			      "\"params\":{\"requestId\":99}}"));
	assert_null(roundtrip("{\"jsonrpc\":\"2.0\",\"method\":\"no/such\"}"));
	assert_null(roundtrip("   "));
	m = roundtrip("{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"ping\"}");
	assert_int_equal(json_object_size(json_object_get(m, "result")), 0);
}

static void test_tools_list(void **state)
{
	json_t *m = roundtrip("{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\"}");
	json_t *tools = json_object_get(json_object_get(m, "result"), "tools");
	assert_int_equal(json_array_size(tools), 13);
	size_t i;
	json_t *t;
	bool exec_seen = false, click_seen = false;
	unsigned gui = 0;
	json_array_foreach(tools, i, t)
	{
		json_t *s = json_object_get(t, "inputSchema");
		assert_string_equal(json_string_value(json_object_get(s, "type")), "object");
		assert_true(json_is_object(json_object_get(s, "properties")));
		assert_true(json_is_string(json_object_get(t, "description")));
		if (!strcmp(json_string_value(json_object_get(t, "name")), "exec")) {
			exec_seen = true;
			json_t *req = json_object_get(s, "required");
			assert_int_equal(json_array_size(req), 2);
			assert_non_null(
				json_object_get(json_object_get(s, "properties"), "timeout_s"));
		}
		const char *name = json_string_value(json_object_get(t, "name"));
		if (mcp_gui_is_tool(name)) {
			gui++;
			/* Every display tool takes the sandbox first, and nothing unlisted. */
			json_t *req = json_object_get(s, "required");
			assert_string_equal(json_string_value(json_array_get(req, 0)),
					    "sandbox_id");
			assert_true(json_is_false(json_object_get(s, "additionalProperties")));
			assert_non_null(
				json_object_get(json_object_get(s, "properties"), "sandbox_id"));
		}
		if (!strcmp(name, "click")) {
			click_seen = true;
			json_t *req = json_object_get(s, "required");
			assert_int_equal(json_array_size(req), 3);
			json_t *b = json_object_get(json_object_get(s, "properties"), "button");
			assert_int_equal(json_array_size(json_object_get(b, "enum")), 3);
		}
	}
	assert_true(exec_seen);
	assert_true(click_seen);
	assert_int_equal(gui, 5);
}

static void test_rpc_errors(void **state)
{
	assert_int_equal(error_code(roundtrip("{not json")), -32700);
	assert_true(json_is_null(
		json_object_get(json_array_get(out.msgs, json_array_size(out.msgs) - 1), "id")));
	assert_int_equal(
		error_code(roundtrip("[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]")),
		-32600);
	assert_int_equal(
		error_code(roundtrip("{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"ping\"}")),
		-32600);
	assert_int_equal(
		error_code(roundtrip("{\"jsonrpc\":\"2.0\",\"id\":1.5,\"method\":\"ping\"}")),
		-32600);
	assert_int_equal(error_code(roundtrip("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":7}")),
			 -32600);
	assert_int_equal(
		error_code(roundtrip("{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"nope\"}")),
		-32601);
	assert_int_equal(
		error_code(roundtrip("{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/call\","
				     "\"params\":{\"name\":\"rm_rf\"}}")),
		-32602);
	assert_int_equal(
		error_code(roundtrip("{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/call\","
				     "\"params\":[1]}")),
		-32602);
	assert_int_equal(
		error_code(roundtrip("{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"tools/call\","
				     "\"params\":{\"name\":\"exec\",\"arguments\":3}}")),
		-32602);
	/* A response to a request (we send none) is ignored. */
	assert_null(roundtrip("{\"jsonrpc\":\"2.0\",\"id\":8,\"result\":{}}"));
}

static json_t *tool(const char *args_json)
{
	char line[512];
	snprintf(line, sizeof(line),
		 "{\"jsonrpc\":\"2.0\",\"id\":10,\"method\":\"tools/call\",\"params\":%s}",
		 args_json);
	json_t *m = roundtrip(line);
	assert_non_null(m);
	json_t *r = json_object_get(m, "result");
	assert_true(json_is_object(r));
	json_t *c = json_array_get(json_object_get(r, "content"), 0);
	assert_string_equal(json_string_value(json_object_get(c, "type")), "text");
	return r;
}

static void test_tool_results(void **state)
{
	json_t *r = tool("{\"name\":\"list_sandboxes\"}");
	assert_false(json_is_true(json_object_get(r, "isError")));
	assert_int_equal(json_array_size(json_object_get(json_object_get(r, "structuredContent"),
							 "sandboxes")),
			 0);
	r = tool("{\"name\":\"exec\",\"arguments\":{\"sandbox_id\":\"sb9\",\"command\":\"true\"}}");
	assert_true(json_is_true(json_object_get(r, "isError")));
	r = tool("{\"name\":\"exec\",\"arguments\":{\"command\":\"true\"}}");
	assert_true(json_is_true(json_object_get(r, "isError")));
	r = tool("{\"name\":\"destroy_sandbox\",\"arguments\":{\"sandbox_id\":\"sb1\"}}");
	assert_true(json_is_true(json_object_get(r, "isError")));
	r = tool("{\"name\":\"read_file\",\"arguments\":{\"sandbox_id\":\"sb1\",\"path\":\"/x\"}}");
	assert_true(json_is_true(json_object_get(r, "isError")));
	/* A create whose VM binary does not exist fails as a tool result and leaves nothing. */
	r = tool("{\"name\":\"create_sandbox\",\"arguments\":{}}");
	assert_true(json_is_true(json_object_get(r, "isError")));
	r = tool("{\"name\":\"list_sandboxes\"}");
	assert_int_equal(json_array_size(json_object_get(json_object_get(r, "structuredContent"),
							 "sandboxes")),
			 0);
}

/* Display tools: arguments are checked before the sandbox is looked up (so without VMs), each
 * bad one named; good ones reach "no sandbox". */
static const char *tool_text(json_t *r)
{
	return json_string_value(
		json_object_get(json_array_get(json_object_get(r, "content"), 0), "text"));
}

static void expect_tool_error(const char *params, const char *want)
{
	json_t *r = tool(params);
	assert_true(json_is_true(json_object_get(r, "isError")));
	if (!strstr(tool_text(r), want))
		fail_msg("%s: error '%s' does not contain '%s'", params, tool_text(r), want);
}

static void test_gui_tool_args(void **state)
{
	static const struct {
		const char *params, *want;
	} cases[] = {
		{ "{\"name\":\"screenshot\",\"arguments\":{}}",
		  "'sandbox_id' (string) is required" },
		{ "{\"name\":\"screenshot\",\"arguments\":{\"sandbox_id\":\"sb1\",\"path\":\"/"
		  "x\"}}",
		  "screenshot: unknown argument 'path'" },
		{ "{\"name\":\"type\",\"arguments\":{\"sandbox_id\":\"sb1\"}}",
		  "type: 'text' (a non-empty string) is required" },
		{ "{\"name\":\"type\",\"arguments\":{\"sandbox_id\":\"sb1\",\"text\":\"\"}}",
		  "type: 'text' (a non-empty string) is required" },
		{ "{\"name\":\"type\",\"arguments\":{\"sandbox_id\":\"sb1\",\"text\":5}}",
		  "type: 'text' (a non-empty string) is required" },
		{ "{\"name\":\"type\",\"arguments\":{\"sandbox_id\":\"sb1\",\"text\":\"a\\u0000b\"}"
		  "}",
		  "type: 'text' must be at most 4095 bytes without NUL" },
		{ "{\"name\":\"key\",\"arguments\":{\"sandbox_id\":\"sb1\",\"key\":\"Return\"}}",
		  "key: unknown argument 'key'" },
		{ "{\"name\":\"click\",\"arguments\":{\"sandbox_id\":\"sb1\",\"x\":1}}",
		  "click: 'y' must be an integer from 0 to 2159" },
		{ "{\"name\":\"click\",\"arguments\":{\"sandbox_id\":\"sb1\",\"x\":-1,\"y\":1}}",
		  "click: 'x' must be an integer from 0 to 3839" },
		{ "{\"name\":\"click\",\"arguments\":{\"sandbox_id\":\"sb1\",\"x\":1.5,\"y\":1}}",
		  "click: 'x' must be an integer from 0 to 3839" },
		{ "{\"name\":\"click\",\"arguments\":{\"sandbox_id\":\"sb1\",\"x\":1,\"y\":1,"
		  "\"button\":\"LEFT\"}}",
		  "click: 'button' must be \"left\", \"right\" or \"middle\"" },
		{ "{\"name\":\"click\",\"arguments\":{\"sandbox_id\":\"sb1\",\"x\":1,\"y\":1,"
		  "\"button\":2}}",
		  "click: 'button' must be \"left\", \"right\" or \"middle\"" },
		{ "{\"name\":\"resize\",\"arguments\":{\"sandbox_id\":\"sb1\",\"width\":63,"
		  "\"height\":100}}",
		  "resize: 'width' must be an integer from 64 to 3840" },
		{ "{\"name\":\"resize\",\"arguments\":{\"sandbox_id\":\"sb1\",\"width\":640,"
		  "\"height\":2161}}",
		  "resize: 'height' must be an integer from 64 to 2160" },
		/* Good arguments: then the sandbox is looked up. */
		{ "{\"name\":\"screenshot\",\"arguments\":{\"sandbox_id\":\"sb1\"}}",
		  "no sandbox 'sb1'" },
		{ "{\"name\":\"type\",\"arguments\":{\"sandbox_id\":\"sb1\",\"text\":\"ls\\n\"}}",
		  "no sandbox 'sb1'" },
		{ "{\"name\":\"key\",\"arguments\":{\"sandbox_id\":\"sb1\",\"keys\":\"ctrl+c\"}}",
		  "no sandbox 'sb1'" },
		{ "{\"name\":\"click\",\"arguments\":{\"sandbox_id\":\"sb1\",\"x\":3839,\"y\":2159,"
		  "\"button\":\"middle\"}}",
		  "no sandbox 'sb1'" },
		{ "{\"name\":\"resize\",\"arguments\":{\"sandbox_id\":\"sb1\",\"width\":1024,"
		  "\"height\":768}}",
		  "no sandbox 'sb1'" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_tool_error(cases[i].params, cases[i].want);
}

/* The control commands the tools send, exactly. */
static void test_gui_commands(void **state)
{
	static const struct {
		const char *name, *args, *cmd;
	} cases[] = {
		{ "screenshot", "{\"sandbox_id\":\"s\"}", "{\"cmd\":\"screenshot\"}" },
		{ "type", "{\"sandbox_id\":\"s\",\"text\":\"echo ignition-$((6*7))\\n\"}",
		  "{\"cmd\":\"type\",\"text\":\"echo ignition-$((6*7))\\n\"}" },
		{ "key", "{\"keys\":\"ctrl+alt+t\"}", "{\"cmd\":\"key\",\"keys\":\"ctrl+alt+t\"}" },
		{ "click", "{\"x\":10,\"y\":20}",
		  "{\"cmd\":\"click\",\"x\":10,\"y\":20,\"button\":\"left\"}" },
		{ "click", "{\"x\":0,\"y\":0,\"button\":\"right\"}",
		  "{\"cmd\":\"click\",\"x\":0,\"y\":0,\"button\":\"right\"}" },
		{ "resize", "{\"width\":1024,\"height\":768}",
		  "{\"cmd\":\"resize\",\"width\":1024,\"height\":768}" },
	};
	char err[256];
	json_t *cmd;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_error_t je;
		json_t *args = json_loads(cases[i].args, 0, &je),
		       *want = json_loads(cases[i].cmd, 0, &je);
		assert_non_null(args);
		assert_non_null(want);
		assert_int_equal(mcp_gui_command(cases[i].name, args, &cmd, err, sizeof(err)), 0);
		if (!json_equal(cmd, want)) {
			char *got = json_dumps(cmd, JSON_COMPACT);
			fail_msg("%s: sent %s, want %s", cases[i].name, got, cases[i].cmd);
		}
		json_decref(cmd);
		json_decref(want);
		json_decref(args);
	}
	json_t *empty = json_object();
	assert_int_equal(mcp_gui_command("exec", empty, &cmd, err, sizeof(err)), -EINVAL);
	assert_null(cmd);
	json_decref(empty);
	assert_false(mcp_gui_is_tool("exec"));
	assert_false(mcp_gui_is_tool(NULL));
}

/* A fake sandbox VM: its control socket in a directory, answering each connection's one line.
 * A screenshot writes `png` to the path asked for; without a display every command gets the
 * VMM's error line. */
struct fake_vm {
	char dir[64];
	int lfd;
	bool has_display;
	const char *png;
	size_t png_len;
	int conns;
	char last[4096];
	char shot_path[4096];
	pthread_t th;
};

static void *fake_vm_thread(void *arg)
{
	struct fake_vm *v = arg;
	for (;;) {
		int fd = accept(v->lfd, NULL, NULL);
		if (fd < 0)
			return NULL;
		char buf[4096];
		size_t got = 0;
		ssize_t r;
		while (got < sizeof(buf) - 1 && !memchr(buf, '\n', got) &&
		       (r = read(fd, buf + got, sizeof(buf) - 1 - got)) > 0)
			got += (size_t)r;
		buf[got] = 0;
		char *nl = strchr(buf, '\n');
		if (nl)
			*nl = 0;
		snprintf(v->last, sizeof(v->last), "%s", buf);
		json_error_t je;
		json_t *req = json_loads(buf, 0, &je);
		const char *cmd = json_string_value(json_object_get(req, "cmd"));
		char ans[8192];
		if (!v->has_display) {
			snprintf(ans, sizeof(ans),
				 "{\"ok\":false,\"error\":\"%s: this VM has no display (start it "
				 "with --gui, --vnc or --gpu)\"}\n",
				 cmd);
		} else if (!strcmp(cmd, "screenshot")) {
			const char *path = json_string_value(json_object_get(req, "path"));
			snprintf(v->shot_path, sizeof(v->shot_path), "%s", path);
			FILE *f = fopen(path, "w");
			assert_non_null(f);
			assert_int_equal(fwrite(v->png, 1, v->png_len, f), v->png_len);
			fclose(f);
			snprintf(ans, sizeof(ans),
				 "{\"ok\":true,\"path\":\"%s\",\"width\":1280,\"height\":800}\n",
				 path);
		} else {
			snprintf(ans, sizeof(ans), "{\"ok\":true}\n");
		}
		json_decref(req);
		/* Counted before the answer goes out: the test reads the count once it has its
		 * answer (counting after the write raced with that read). */
		__atomic_add_fetch(&v->conns, 1, __ATOMIC_SEQ_CST);
		assert_int_equal(write(fd, ans, strlen(ans)), (ssize_t)strlen(ans));
		close(fd);
	}
}

static void fake_vm_start(struct fake_vm *v)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	memset(v, 0, sizeof(*v));
	snprintf(v->dir, sizeof(v->dir), "/tmp/ign-mcpgui-XXXXXX");
	assert_non_null(mkdtemp(v->dir));
	snprintf(a.sun_path, sizeof(a.sun_path), "%s/%s", v->dir, SANDBOX_CONTROL);
	v->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(v->lfd >= 0);
	assert_int_equal(bind(v->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(v->lfd, 4), 0);
	v->has_display = true;
	assert_int_equal(pthread_create(&v->th, NULL, fake_vm_thread, v), 0);
}

static void fake_vm_stop(struct fake_vm *v)
{
	char path[128];
	shutdown(v->lfd, SHUT_RDWR);
	pthread_join(v->th, NULL);
	close(v->lfd);
	snprintf(path, sizeof(path), "%s/%s", v->dir, SANDBOX_CONTROL);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(rmdir(v->dir), 0); /* nothing else left: the screenshot is gone */
}

static json_t *gui_call(struct fake_vm *v, const char *name, const char *args_json)
{
	json_error_t je;
	json_t *args = json_loads(args_json, 0, &je);
	assert_non_null(args);
	json_t *r = mcp_gui_call(name, args, "sb7", v->dir);
	json_decref(args);
	assert_non_null(r);
	assert_true(json_is_string(
		json_object_get(json_array_get(json_object_get(r, "content"), 0), "text")));
	return r;
}

static void test_gui_screenshot_image(void **state)
{
	/* RFC 4648 §10's test vectors: every padding case. */
	static const struct {
		const char *in, *out;
	} b64[] = { { "", "" },
		    { "f", "Zg==" },
		    { "fo", "Zm8=" },
		    { "foo", "Zm9v" },
		    { "foob", "Zm9vYg==" },
		    { "fooba", "Zm9vYmE=" },
		    { "foobar", "Zm9vYmFy" } };
	struct fake_vm v;
	fake_vm_start(&v);
	for (size_t i = 0; i < sizeof(b64) / sizeof(b64[0]); i++) {
		v.png = b64[i].in;
		v.png_len = strlen(b64[i].in);
		json_t *r = gui_call(&v, "screenshot", "{\"sandbox_id\":\"sb7\"}");
		assert_false(json_is_true(json_object_get(r, "isError")));
		json_t *content = json_object_get(r, "content");
		assert_int_equal(json_array_size(content), 2);
		json_t *img = json_array_get(content, 1);
		assert_string_equal(json_string_value(json_object_get(img, "type")), "image");
		assert_string_equal(json_string_value(json_object_get(img, "mimeType")),
				    "image/png");
		assert_string_equal(json_string_value(json_object_get(img, "data")), b64[i].out);
		assert_non_null(strstr(tool_text(r), "sb7: screenshot 1280x800 (PNG, "));
		json_t *st = json_object_get(r, "structuredContent");
		assert_int_equal(json_integer_value(json_object_get(st, "width")), 1280);
		assert_int_equal(json_integer_value(json_object_get(st, "height")), 800);
		/* The VM was asked for a file in the sandbox directory, now removed. */
		assert_int_equal(strncmp(v.shot_path, v.dir, strlen(v.dir)), 0);
		assert_int_equal(access(v.shot_path, F_OK), -1);
		json_decref(r);
	}
	/* Binary bytes (a real PNG's signature) survive. */
	v.png = "\x89PNG\r\n\x1a\n";
	v.png_len = 8;
	json_t *r = gui_call(&v, "screenshot", "{\"sandbox_id\":\"sb7\"}");
	assert_string_equal(json_string_value(json_object_get(
				    json_array_get(json_object_get(r, "content"), 1), "data")),
			    "iVBORw0KGgo=");
	json_decref(r);
	/* The other tools: one command each, a short text. */
	r = gui_call(&v, "type", "{\"sandbox_id\":\"sb7\",\"text\":\"ls\\n\"}");
	assert_false(json_is_true(json_object_get(r, "isError")));
	assert_string_equal(v.last, "{\"cmd\":\"type\",\"text\":\"ls\\n\"}");
	assert_string_equal(tool_text(r), "sb7: typed 3 characters");
	json_decref(r);
	r = gui_call(&v, "click", "{\"sandbox_id\":\"sb7\",\"x\":5,\"y\":6}");
	assert_string_equal(v.last, "{\"cmd\":\"click\",\"x\":5,\"y\":6,\"button\":\"left\"}");
	assert_string_equal(tool_text(r), "sb7: clicked at (5, 6)");
	json_decref(r);
	/* No display: the VM's message, as a tool error, with the server's hint. */
	v.has_display = false;
	r = gui_call(&v, "screenshot", "{\"sandbox_id\":\"sb7\"}");
	assert_true(json_is_true(json_object_get(r, "isError")));
	assert_int_equal(json_array_size(json_object_get(r, "content")), 1);
	assert_non_null(strstr(tool_text(r), "sb7: screenshot: this VM has no display (start it "
					     "with --gui, --vnc or --gpu)"));
	assert_non_null(strstr(tool_text(r), "--gpu WxH"));
	json_decref(r);
	r = gui_call(&v, "key", "{\"sandbox_id\":\"sb7\",\"keys\":\"Return\"}");
	assert_true(json_is_true(json_object_get(r, "isError")));
	assert_non_null(strstr(tool_text(r), "key: this VM has no display"));
	json_decref(r);
	assert_int_equal(__atomic_load_n(&v.conns, __ATOMIC_SEQ_CST), 12);
	fake_vm_stop(&v);
}

/* --ready-timeout (cfg.ready_ms): a VM whose agent never answers (here a script that only
 * sleeps) fails create_sandbox after that bound, not the 300 s default of a boot, says so,
 * and leaves no sandbox behind. */
static void test_ready_timeout(void **state)
{
	char dir[] = "/tmp/ign-mcp-ready-XXXXXX", vm[64], rootfs[64];
	assert_non_null(mkdtemp(dir));
	snprintf(vm, sizeof(vm), "%s/vm", dir);
	snprintf(rootfs, sizeof(rootfs), "%s/rootfs.ext4", dir);
	FILE *f = fopen(vm, "w");
	assert_non_null(f);
	fputs("#!/bin/sh\nexec sleep 60\n", f);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(vm, 0755), 0);
	f = fopen(rootfs, "w");
	assert_non_null(f);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(setenv("IGNITION_GUEST_DIR", dir, 1), 0);
	pthread_mutex_init(&out.lock, NULL);
	out.msgs = json_array();
	struct mcp_config cfg = {
		.ignition = vm, .ready_ms = 700, .write = capture, .write_ctx = &out
	};
	assert_int_equal(mcp_create(&cfg, &srv), 0);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	json_t *r = tool("{\"name\":\"create_sandbox\",\"arguments\":{}}");
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	assert_true(json_is_true(json_object_get(r, "isError")));
	if (!strstr(tool_text(r), "did not answer within 700 ms"))
		fail_msg("create_sandbox: '%s'", tool_text(r));
	assert_true(s >= 0.69 && s < 30);
	r = tool("{\"name\":\"list_sandboxes\"}");
	assert_int_equal(json_array_size(json_object_get(json_object_get(r, "structuredContent"),
							 "sandboxes")),
			 0);
	teardown(state);
	unsetenv("IGNITION_GUEST_DIR");
	unlink(vm);
	unlink(rootfs);
	assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_initialize, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tools_list, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rpc_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tool_results, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gui_tool_args, setup, teardown),
		cmocka_unit_test(test_gui_commands),
		cmocka_unit_test(test_gui_screenshot_image),
		cmocka_unit_test(test_ready_timeout),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
