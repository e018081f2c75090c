/* Display tools of `ignition mcp`: see gui.h.
 *
 * MCP 2025-06-18, "Server Features: Tools", "Tool Result": an image is a content block
 * {"type":"image","data":BASE64,"mimeType":"image/png"}; a tool's own failure is a result
 * with isError true and the reason as text, so the model can read it. */
#include "mcp/gui.h"
#include "util/fileio.h"

#include "core/control.h"
#include "mcp/sandbox.h"
#include "ui/display.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct gui_tool {
	const char *name, *desc;
	const char *props;	 /* JSON object: the properties besides sandbox_id */
	const char *required;	 /* JSON array: required besides sandbox_id */
	const char *const *args; /* argument names besides sandbox_id, NULL-terminated */
};

static const char *const no_args[] = { NULL };
static const char *const type_args[] = { "text", NULL };
static const char *const key_args[] = { "keys", NULL };
static const char *const click_args[] = { "x", "y", "button", NULL };
static const char *const resize_args[] = { "width", "height", NULL };

static const struct gui_tool tools[] = {
	{ "screenshot",
	  "Take a screenshot of a sandbox's display: a PNG image of the whole screen (its size "
	  "in the text). Needs a sandbox with a display.",
	  "{}", "[]", no_args },
	{ "type",
	  "Type text on a sandbox's keyboard (US layout): printable ASCII, \\n for Enter, \\t "
	  "for Tab.",
	  "{\"text\":{\"type\":\"string\",\"description\":\"at most 4095 bytes\"}}", "[\"text\"]",
	  type_args },
	{ "key",
	  "Press and release a key or a combination on a sandbox's keyboard, e.g. Return, "
	  "ctrl+c, ctrl+alt+t, shift+Tab, F1.",
	  "{\"keys\":{\"type\":\"string\",\"description\":\"key names joined by +\"}}",
	  "[\"keys\"]", key_args },
	{ "click",
	  "Click at a position of a sandbox's screen (pixels from the top-left corner, as in "
	  "the screenshot).",
	  "{\"x\":{\"type\":\"integer\",\"minimum\":0},\"y\":{\"type\":\"integer\",\"minimum\":0},"
	  "\"button\":{\"type\":\"string\",\"enum\":[\"left\",\"right\",\"middle\"],"
	  "\"description\":\"default left\"}}",
	  "[\"x\",\"y\"]", click_args },
	{ "resize",
	  "Ask a sandbox's guest to change its screen size (64x64 to 3840x2160); later "
	  "screenshots have the new size once the guest follows.",
	  "{\"width\":{\"type\":\"integer\",\"minimum\":64,\"maximum\":3840},"
	  "\"height\":{\"type\":\"integer\",\"minimum\":64,\"maximum\":2160}}",
	  "[\"width\",\"height\"]", resize_args },
};

#define NR_TOOLS (sizeof(tools) / sizeof(tools[0]))

static const struct gui_tool *find(const char *name)
{
	for (size_t i = 0; name && i < NR_TOOLS; i++)
		if (!strcmp(tools[i].name, name))
			return &tools[i];
	return NULL;
}

bool mcp_gui_is_tool(const char *name)
{
	return find(name) != NULL;
}

int mcp_gui_list(json_t *arr)
{
	for (size_t i = 0; i < NR_TOOLS; i++) {
		json_error_t je;
		json_t *props = json_loads(tools[i].props, 0, &je);
		json_t *req = json_loads(tools[i].required, 0, &je);
		json_t *t;

		if (!props || !req ||
		    json_object_set_new(props, "sandbox_id",
					json_pack("{s:s,s:s}", "type", "string", "description",
						  "from create_sandbox")) ||
		    json_array_insert_new(req, 0, json_string("sandbox_id"))) {
			json_decref(props);
			json_decref(req);
			return -ENOMEM;
		}
		t = json_pack("{s:s,s:s,s:{s:s,s:o,s:o,s:b}}", "name", tools[i].name, "description",
			      tools[i].desc, "inputSchema", "type", "object", "properties", props,
			      "required", req, "additionalProperties", false);
		if (!t || json_array_append_new(arr, t))
			return -ENOMEM;
	}
	return 0;
}

/* A string argument: present, non-empty, shorter than max bytes. */
static int arg_string(const char *tool, json_t *args, const char *key, size_t max, const char **out,
		      char *err, size_t n)
{
	json_t *v = json_object_get(args, key);

	if (!json_is_string(v) || !json_string_length(v)) {
		snprintf(err, n, "%s: '%s' (a non-empty string) is required", tool, key);
		return -EINVAL;
	}
	if (json_string_length(v) >= max || strlen(json_string_value(v)) != json_string_length(v)) {
		snprintf(err, n, "%s: '%s' must be at most %zu bytes without NUL", tool, key,
			 max - 1);
		return -EINVAL;
	}
	*out = json_string_value(v);
	return 0;
}

/* An integer argument in [min, max]. */
static int arg_int(const char *tool, json_t *args, const char *key, json_int_t min, json_int_t max,
		   json_int_t *out, char *err, size_t n)
{
	json_t *v = json_object_get(args, key);

	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
		snprintf(err, n, "%s: '%s' must be an integer from %lld to %lld", tool, key,
			 (long long)min, (long long)max);
		return -EINVAL;
	}
	*out = json_integer_value(v);
	return 0;
}

int mcp_gui_command(const char *name, json_t *args, json_t **cmd, char *err, size_t n)
{
	const struct gui_tool *t = find(name);
	const char *key, *s;
	json_int_t a, b;
	json_t *v;
	int ret;

	*cmd = NULL;
	if (!t) {
		snprintf(err, n, "'%.64s' is not a display tool", name ? name : "");
		return -EINVAL;
	}
	/* Unknown arguments are refused, not ignored: a typo ("button" for "buttons") would
	 * otherwise do something else than asked. */
	json_object_foreach(args, key, v)
	{
		bool known = !strcmp(key, "sandbox_id");

		for (const char *const *k = t->args; !known && *k; k++)
			known = !strcmp(key, *k);
		if (!known) {
			snprintf(err, n, "%s: unknown argument '%.64s'", name, key);
			return -EINVAL;
		}
	}
	if (!strcmp(name, "screenshot")) {
		*cmd = json_pack("{s:s}", "cmd", "screenshot");
	} else if (!strcmp(name, "type")) {
		if ((ret = arg_string(name, args, "text", CONTROL_TYPE_MAX, &s, err, n)))
			return ret;
		*cmd = json_pack("{s:s,s:s}", "cmd", "type", "text", s);
	} else if (!strcmp(name, "key")) {
		if ((ret = arg_string(name, args, "keys", CONTROL_KEYS_MAX, &s, err, n)))
			return ret;
		*cmd = json_pack("{s:s,s:s}", "cmd", "key", "keys", s);
	} else if (!strcmp(name, "click")) {
		json_t *jb = json_object_get(args, "button");
		const char *btn = jb ? json_string_value(jb) : "left";

		if ((ret = arg_int(name, args, "x", 0, DISPLAY_MAX_W - 1, &a, err, n)) ||
		    (ret = arg_int(name, args, "y", 0, DISPLAY_MAX_H - 1, &b, err, n)))
			return ret;
		if (!btn ||
		    (strcmp(btn, "left") && strcmp(btn, "right") && strcmp(btn, "middle"))) {
			snprintf(err, n, "%s: 'button' must be \"left\", \"right\" or \"middle\"",
				 name);
			return -EINVAL;
		}
		*cmd = json_pack("{s:s,s:I,s:I,s:s}", "cmd", "click", "x", a, "y", b, "button",
				 btn);
	} else {
		if ((ret = arg_int(name, args, "width", DISPLAY_MIN_DIM, DISPLAY_MAX_W, &a, err,
				   n)) ||
		    (ret = arg_int(name, args, "height", DISPLAY_MIN_DIM, DISPLAY_MAX_H, &b, err,
				   n)))
			return ret;
		*cmd = json_pack("{s:s,s:I,s:I}", "cmd", "resize", "width", a, "height", b);
	}
	if (!*cmd) {
		snprintf(err, n, "out of memory");
		return -ENOMEM;
	}
	return 0;
}

/* RFC 4648 §4 base64 of p[0..len), NUL-terminated, malloc'd. */
static char *base64(const uint8_t *p, size_t len)
{
	static const char abc[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char *out = malloc((len + 2) / 3 * 4 + 1), *o = out;
	size_t i = 0;

	if (!out)
		return NULL;
	for (; i + 3 <= len; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];

		*o++ = abc[v >> 18];
		*o++ = abc[(v >> 12) & 63];
		*o++ = abc[(v >> 6) & 63];
		*o++ = abc[v & 63];
	}
	if (len - i == 1) {
		uint32_t v = (uint32_t)p[i] << 16;

		*o++ = abc[v >> 18];
		*o++ = abc[(v >> 12) & 63];
		*o++ = '=';
		*o++ = '=';
	} else if (len - i == 2) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;

		*o++ = abc[v >> 18];
		*o++ = abc[(v >> 12) & 63];
		*o++ = abc[(v >> 6) & 63];
		*o++ = '=';
	}
	*o = '\0';
	return out;
}

/* The whole file at path (at most max bytes) into *buf (malloc'd).  0 or -errno. */
static int slurp(const char *path, size_t max, uint8_t **buf, size_t *len)
{
	struct stat st;
	size_t got = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC), ret = 0;

	*buf = NULL;
	*len = 0;
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		goto close_fd;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > max) {
		ret = S_ISREG(st.st_mode) ? -EFBIG : -EINVAL;
		goto close_fd;
	}
	*buf = malloc((size_t)st.st_size + 1);
	if (!*buf) {
		ret = -ENOMEM;
		goto close_fd;
	}
	ret = pread_full(fd, *buf, (size_t)st.st_size, 0);
	if (ret) {
		free(*buf);
		*buf = NULL;
	} else {
		got = (size_t)st.st_size;
	}
	*len = got;
close_fd:
	close(fd);
	return ret;
}

static json_t *text_result(bool is_error, json_t *structured, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static json_t *text_result(bool is_error, json_t *structured, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	json_t *r;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	r = json_pack("{s:[{s:s,s:s}],s:b}", "content", "type", "text", "text", msg, "isError",
		      is_error);
	if (r && structured)
		json_object_set_new(r, "structuredContent", structured);
	else
		json_decref(structured);
	return r;
}

/* A failed control command as a tool error.  The VM's "no display" line is for `ignition
 * run` users; a sandbox gets its display from the server, which the hint says. */
static json_t *control_error(const char *id, const char *err)
{
	bool nodisp = strstr(err, "has no display") != NULL;

	return text_result(true, NULL, "%s: %s%s", id, err,
			   nodisp ? " [sandboxes have one when the server runs with --gpu WxH, or "
				    "when its --base snapshot was taken with a display]"
				  : "");
}

/* Screenshots in flight get distinct file names. */
static unsigned shot_counter;

static json_t *screenshot(json_t *cmd, const char *id, const char *dir)
{
	char path[PATH_MAX], err[512];
	json_t *ans = NULL, *r;
	json_int_t w, h;
	uint8_t *png;
	size_t len = 0;
	char *b64;
	int ret;

	if ((size_t)snprintf(path, sizeof(path), "%s/screenshot-%u.png", dir,
			     __atomic_add_fetch(&shot_counter, 1, __ATOMIC_RELAXED)) >=
	    sizeof(path))
		return text_result(true, NULL, "screenshot: the sandbox directory is too long");
	if (json_object_set_new(cmd, "path", json_string(path)))
		return NULL;
	ret = sandbox_control(dir, cmd, MCP_GUI_TIMEOUT_MS, &ans, err, sizeof(err));
	if (ret) {
		unlink(path);
		return control_error(id, err);
	}
	w = json_integer_value(json_object_get(ans, "width"));
	h = json_integer_value(json_object_get(ans, "height"));
	json_decref(ans);
	ret = slurp(path, MCP_GUI_PNG_MAX, &png, &len);
	unlink(path);
	if (ret)
		return text_result(true, NULL,
				   "%s: screenshot: cannot read the PNG the VM wrote: %s", id,
				   strerror(-ret));
	b64 = base64(png, len);
	free(png);
	if (!b64)
		return NULL;
	r = json_pack("{s:[{s:s,s:s},{s:s,s:s,s:s}],s:b,s:{s:I,s:I}}", "content", "type", "text",
		      "text", id, "type", "image", "data", b64, "mimeType", "image/png", "isError",
		      false, "structuredContent", "width", w, "height", h);
	free(b64);
	if (r) {
		char text[128];

		/* The size in the text too: models that read only text content see it. */
		snprintf(text, sizeof(text), "%s: screenshot %lldx%lld (PNG, %zu bytes)", id,
			 (long long)w, (long long)h, len);
		json_object_set_new(json_array_get(json_object_get(r, "content"), 0), "text",
				    json_string(text));
	}
	return r;
}

json_t *mcp_gui_call(const char *name, json_t *args, const char *id, const char *dir)
{
	char err[512];
	json_t *cmd, *ans = NULL, *r;
	int ret = mcp_gui_command(name, args, &cmd, err, sizeof(err));

	if (ret)
		return ret == -ENOMEM ? NULL : text_result(true, NULL, "%s", err);
	if (!strcmp(name, "screenshot")) {
		r = screenshot(cmd, id, dir);
		json_decref(cmd);
		return r;
	}
	ret = sandbox_control(dir, cmd, MCP_GUI_TIMEOUT_MS, &ans, err, sizeof(err));
	json_decref(cmd);
	json_decref(ans);
	if (ret)
		return control_error(id, err);
	if (!strcmp(name, "type"))
		return text_result(false, NULL, "%s: typed %zu characters", id,
				   strlen(json_string_value(json_object_get(args, "text"))));
	if (!strcmp(name, "key"))
		return text_result(false, NULL, "%s: pressed %s", id,
				   json_string_value(json_object_get(args, "keys")));
	if (!strcmp(name, "click"))
		return text_result(false, NULL, "%s: clicked at (%lld, %lld)", id,
				   (long long)json_integer_value(json_object_get(args, "x")),
				   (long long)json_integer_value(json_object_get(args, "y")));
	return text_result(false, NULL,
			   "%s: asked the guest for %lldx%lld (a later screenshot shows when it "
			   "follows)",
			   id, (long long)json_integer_value(json_object_get(args, "width")),
			   (long long)json_integer_value(json_object_get(args, "height")));
}
