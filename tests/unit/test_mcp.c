/* The MCP server's JSON-RPC dispatch (src/mcp/mcp.c) without VMs: lifecycle and version
 * negotiation, ping, tools/list schemas, the JSON-RPC errors (parse, invalid request, unknown
 * method, unknown tool, bad params), notifications never answered, and tool calls on sandboxes
 * that do not exist answered as tool results with isError. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "mcp/mcp.h"

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

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
	assert_int_equal(json_array_size(tools), 8);
	size_t i;
	json_t *t;
	bool exec_seen = false;
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
	}
	assert_true(exec_seen);
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_initialize, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tools_list, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rpc_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tool_results, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
