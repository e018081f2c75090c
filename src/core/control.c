/* The control socket: see control.h and docs/architecture.md, "Control socket".
 *
 * Two halves: control_handle_line() turns one command line into one answer line (jansson
 * parses and prints; a small table dispatches), and the socket half frames lines out of a byte
 * stream for up to CONTROL_MAX_CLIENTS clients on the event loop, never blocking it: every
 * socket is non-blocking, input waits in a bounded line buffer, output in a bounded queue. */
#include "core/control.h"

#include "core/evloop.h"
#include "ui/display.h"
#include "util/log.h"
#include "util/unix_listen.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* ---- text that goes into answers ---- */

/* Length of the well-formed UTF-8 sequence at p[0..n) (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF), or 0. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
	unsigned char c = p[0];
	size_t len;
	unsigned char lo = 0x80, hi = 0xbf;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4;
	else
		return 0;
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f;
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f;
	if (n < len || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return len;
}

/* Copy src[0..len) into dst[n] as valid UTF-8 (jansson refuses anything else): bytes that are
 * not UTF-8 become '?', control characters ' ' when `printable` (a message: one clean line; a
 * path keeps them, JSON escapes them), and a text that does not fit ends in "...". */
static void clean_text(char *dst, size_t n, const char *src, size_t len, bool printable)
{
	const unsigned char *s = (const unsigned char *)src;
	size_t i = 0, o = 0;

	if (!n)
		return;
	while (i < len) {
		size_t k = utf8_seq(s + i, len - i);

		if (o + (k ? k : 1) + 1 > n) {
			o = n >= 4 ? n - 4 : 0;
			/* Never end inside a sequence kept earlier. */
			while (o && ((unsigned char)dst[o] & 0xc0) == 0x80)
				o--;
			memcpy(dst + o, "...", n - 1 - o < 3 ? n - 1 - o : 3);
			o += n - 1 - o < 3 ? n - 1 - o : 3;
			break;
		}
		if (!k) {
			dst[o++] = '?';
			i++;
		} else if (k == 1) {
			dst[o++] = printable && (s[i] < 0x20 || s[i] == 0x7f) ? ' ' : (char)s[i];
			i++;
		} else {
			memcpy(dst + o, s + i, k);
			o += k;
			i += k;
		}
	}
	dst[o] = '\0';
}

/* A user-supplied name quoted in an error: short, printable. */
#define NAME_MAX_SHOWN 64

static void show_name(char *dst, size_t n, const char *name, size_t len)
{
	clean_text(dst, n < NAME_MAX_SHOWN ? n : NAME_MAX_SHOWN, name, len, true);
}

static const char *json_kind(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "an object";
	case JSON_ARRAY:
		return "an array";
	case JSON_STRING:
		return "a string";
	case JSON_INTEGER:
	case JSON_REAL:
		return "a number";
	case JSON_TRUE:
	case JSON_FALSE:
		return "a boolean";
	case JSON_NULL:
		return "null";
	}
	return "something else";
}

/* ---- commands ---- */

/* A command's work: read its arguments from `req` (whose fields are already checked against
 * the command's list), call the callback, add the answer's fields to `ans`.  0 or -errno with
 * a reason in err (empty: strerror). */
struct command {
	const char *name;
	const char *const *fields; /* fields besides "cmd", NULL-terminated */
	int (*run)(const struct control_ops *ops, const json_t *req, json_t *ans, char *err,
		   size_t n);
};

static int put(json_t *ans, const char *key, json_t *v)
{
	return v && !json_object_set_new(ans, key, v) ? 0 : -ENOMEM;
}

/* A path into the answer: as it is, unless it is not UTF-8. */
static int put_path(json_t *ans, const char *key, const char *s)
{
	char buf[CONTROL_PATH_MAX + 4];

	clean_text(buf, sizeof(buf), s, strlen(s), false);
	return put(ans, key, json_string(buf));
}

/* A creator that leaves a callback NULL does not offer its command. */
static int unsupported(char *err, size_t n)
{
	snprintf(err, n, "not supported");
	return -EOPNOTSUPP;
}

static int run_pause(const struct control_ops *ops, const json_t *req, json_t *ans, char *err,
		     size_t n)
{
	return ops->pause ? ops->pause(ops->ctx, err, n) : unsupported(err, n);
}

static int run_resume(const struct control_ops *ops, const json_t *req, json_t *ans, char *err,
		      size_t n)
{
	return ops->resume ? ops->resume(ops->ctx, err, n) : unsupported(err, n);
}

static int run_snapshot(const struct control_ops *ops, const json_t *req, json_t *ans, char *err,
			size_t n)
{
	const json_t *jdir = json_object_get(req, "dir");
	const char *dir = NULL;
	char *out;
	int ret;

	if (!ops->snapshot)
		return unsupported(err, n);
	if (jdir && !json_is_null(jdir)) {
		if (!json_is_string(jdir)) {
			snprintf(err, n, "\"dir\" must be a string or null, got %s",
				 json_kind(jdir));
			return -EINVAL;
		}
		/* jansson (without JSON_ALLOW_NUL) refuses \u0000, so the string is the path. */
		dir = json_string_value(jdir);
		if (!*dir) {
			snprintf(err, n, "\"dir\" is empty");
			return -EINVAL;
		}
		if (json_string_length(jdir) >= CONTROL_PATH_MAX) {
			snprintf(err, n, "\"dir\" is longer than %d bytes", CONTROL_PATH_MAX - 1);
			return -ENAMETOOLONG;
		}
	}
	out = calloc(1, CONTROL_PATH_MAX);
	if (!out)
		return -ENOMEM;
	ret = ops->snapshot(ops->ctx, dir, out, CONTROL_PATH_MAX, err, n);
	out[CONTROL_PATH_MAX - 1] = '\0';
	if (!ret && (*out || dir))
		ret = put_path(ans, "dir", *out ? out : dir);
	free(out);
	return ret;
}

static const char *const state_names[] = {
	[CONTROL_VM_RUNNING] = "running",
	[CONTROL_VM_PAUSED] = "paused",
};

static json_t *json_u64(uint64_t v)
{
	/* json_int_t is long long (JSON_INTEGER_IS_LONG_LONG). */
	return json_integer(v > (uint64_t)LLONG_MAX ? LLONG_MAX : (json_int_t)v);
}

static int run_status(const struct control_ops *ops, const json_t *req, json_t *ans, char *err,
		      size_t n)
{
	struct control_status st;
	unsigned s;
	int ret;

	if (!ops->status)
		return unsupported(err, n);
	memset(&st, 0, sizeof(st));
	ret = ops->status(ops->ctx, &st, err, n);
	if (ret)
		return ret;
	s = (unsigned)st.state;
	ret = put(ans, "state",
		  json_string(s < sizeof(state_names) / sizeof(state_names[0]) ? state_names[s]
									       : "unknown"));
	if (!ret)
		ret = put(ans, "vcpus", json_integer(st.vcpus));
	if (!ret)
		ret = put(ans, "mem_mib", json_u64(st.mem_mib));
	if (!ret)
		ret = put(ans, "uptime_ms", json_u64(st.uptime_ms));
	if (!ret)
		ret = put(ans, "net_ready", json_integer(st.net_ready));
	return ret;
}

static int run_checkpoint(const struct control_ops *ops, const json_t *req, json_t *ans, char *err,
			  size_t n)
{
	(void)req;
	(void)ans;
	return ops->checkpoint ? ops->checkpoint(ops->ctx, err, n) : unsupported(err, n);
}

static int run_reset(const struct control_ops *ops, const json_t *req, json_t *ans, char *err,
		     size_t n)
{
	uint64_t us = 0, pages = 0;
	int ret;

	(void)req;
	if (!ops->reset)
		return unsupported(err, n);
	ret = ops->reset(ops->ctx, &us, &pages, err, n);
	if (!ret)
		ret = put(ans, "reset_us", json_u64(us));
	if (!ret)
		ret = put(ans, "pages", json_u64(pages));
	return ret;
}

/* ---- display commands (docs/gui.md) ---- */

/* A required string field: present, a string, non-empty, shorter than `max` bytes (jansson
 * refuses \u0000, so the C string is all of it). */
static int get_string(const json_t *req, const char *key, size_t max, int too_long,
		      const char **out, char *err, size_t n)
{
	const json_t *v = json_object_get(req, key);

	if (!v) {
		snprintf(err, n, "\"%s\" is missing", key);
		return -EINVAL;
	}
	if (!json_is_string(v)) {
		snprintf(err, n, "\"%s\" must be a string, got %s", key, json_kind(v));
		return -EINVAL;
	}
	if (!json_string_length(v)) {
		snprintf(err, n, "\"%s\" is empty", key);
		return -EINVAL;
	}
	if (json_string_length(v) >= max) {
		snprintf(err, n, "\"%s\" is longer than %zu bytes", key, max - 1);
		return too_long;
	}
	*out = json_string_value(v);
	return 0;
}

/* An integer field in [min, max]; when absent, `def` if optional (def >= 0), else an error.
 * A number with a fraction (or written 1.0) is not an integer. */
static int get_uint(const json_t *req, const char *key, uint32_t min, uint32_t max, int64_t def,
		    uint32_t *out, char *err, size_t n)
{
	const json_t *v = json_object_get(req, key);
	json_int_t i;

	if (!v) {
		if (def >= 0) {
			*out = (uint32_t)def;
			return 0;
		}
		snprintf(err, n, "\"%s\" is missing", key);
		return -EINVAL;
	}
	if (!json_is_integer(v)) {
		snprintf(err, n, "\"%s\" must be an integer, got %s", key, json_kind(v));
		return -EINVAL;
	}
	i = json_integer_value(v);
	if (i < (json_int_t)min || i > (json_int_t)max) {
		snprintf(err, n, "\"%s\" must be %u to %u, got %lld", key, min, max, (long long)i);
		return -EINVAL;
	}
	*out = (uint32_t)i;
	return 0;
}

static int run_screenshot(const struct control_ops *ops, const json_t *req, json_t *ans, char *err,
			  size_t n)
{
	const char *path;
	uint32_t w = 0, h = 0;
	int ret;

	if (!ops->screenshot)
		return unsupported(err, n);
	ret = get_string(req, "path", CONTROL_PATH_MAX, -ENAMETOOLONG, &path, err, n);
	if (!ret)
		ret = ops->screenshot(ops->ctx, path, &w, &h, err, n);
	if (!ret)
		ret = put_path(ans, "path", path);
	if (!ret)
		ret = put(ans, "width", json_integer(w));
	if (!ret)
		ret = put(ans, "height", json_integer(h));
	return ret;
}

static int run_display(const struct control_ops *ops, const json_t *req, json_t *ans, char *err,
		       size_t n)
{
	struct control_display d;
	int ret;

	(void)req;
	if (!ops->display)
		return unsupported(err, n);
	memset(&d, 0, sizeof(d));
	ret = ops->display(ops->ctx, &d, err, n);
	if (ret)
		return ret;
	if (!d.active)
		d.width = d.height = 0;
	ret = put(ans, "active", json_boolean(d.active));
	if (!ret)
		ret = put(ans, "width", json_integer(d.width));
	if (!ret)
		ret = put(ans, "height", json_integer(d.height));
	if (!ret)
		ret = put(ans, "serial", json_u64(d.serial));
	return ret;
}

static int run_type(const struct control_ops *ops, const json_t *req, json_t *ans, char *err,
		    size_t n)
{
	const char *text;
	int ret;

	(void)ans;
	if (!ops->type)
		return unsupported(err, n);
	ret = get_string(req, "text", CONTROL_TYPE_MAX, -E2BIG, &text, err, n);
	return ret ? ret : ops->type(ops->ctx, text, err, n);
}

static int run_key(const struct control_ops *ops, const json_t *req, json_t *ans, char *err,
		   size_t n)
{
	const char *keys;
	int ret;

	(void)ans;
	if (!ops->key)
		return unsupported(err, n);
	ret = get_string(req, "keys", CONTROL_KEYS_MAX, -E2BIG, &keys, err, n);
	return ret ? ret : ops->key(ops->ctx, keys, err, n);
}

/* x and y: inside the largest mode there is (the op checks the current one). */
static int get_xy(const json_t *req, uint32_t *x, uint32_t *y, char *err, size_t n)
{
	int ret = get_uint(req, "x", 0, DISPLAY_MAX_W - 1, -1, x, err, n);

	return ret ? ret : get_uint(req, "y", 0, DISPLAY_MAX_H - 1, -1, y, err, n);
}

static int run_pointer(const struct control_ops *ops, const json_t *req, json_t *ans, char *err,
		       size_t n)
{
	uint32_t x, y, buttons;
	int ret;

	(void)ans;
	if (!ops->pointer)
		return unsupported(err, n);
	ret = get_xy(req, &x, &y, err, n);
	if (!ret)
		ret = get_uint(req, "buttons", 0,
			       CONTROL_BUTTON_LEFT | CONTROL_BUTTON_RIGHT | CONTROL_BUTTON_MIDDLE,
			       0, &buttons, err, n);
	return ret ? ret : ops->pointer(ops->ctx, x, y, buttons, err, n);
}

static int run_click(const struct control_ops *ops, const json_t *req, json_t *ans, char *err,
		     size_t n)
{
	static const struct {
		const char *name;
		uint32_t bit;
	} buttons[] = {
		{ "left", CONTROL_BUTTON_LEFT },
		{ "right", CONTROL_BUTTON_RIGHT },
		{ "middle", CONTROL_BUTTON_MIDDLE },
	};
	const json_t *jb = json_object_get(req, "button");
	uint32_t x, y, bit = 0;
	int ret;

	(void)ans;
	if (!ops->pointer)
		return unsupported(err, n);
	ret = get_xy(req, &x, &y, err, n);
	if (ret)
		return ret;
	if (!jb) {
		bit = CONTROL_BUTTON_LEFT;
	} else if (json_is_string(jb)) {
		for (size_t i = 0; i < sizeof(buttons) / sizeof(buttons[0]); i++)
			if (!strcmp(json_string_value(jb), buttons[i].name))
				bit = buttons[i].bit;
	}
	if (!bit) {
		char shown[NAME_MAX_SHOWN];

		if (json_is_string(jb)) {
			show_name(shown, sizeof(shown), json_string_value(jb),
				  json_string_length(jb));
			snprintf(err, n, "\"button\" must be left, right or middle, got \"%s\"",
				 shown);
		} else {
			snprintf(err, n, "\"button\" must be a string, got %s", json_kind(jb));
		}
		return -EINVAL;
	}
	/* Move there first with nothing held, so the press lands at (x, y) even for a guest
	 * that acts on the button before the position of the same report; then press and
	 * release as separate reports. */
	ret = ops->pointer(ops->ctx, x, y, 0, err, n);
	if (!ret)
		ret = ops->pointer(ops->ctx, x, y, bit, err, n);
	if (!ret)
		ret = ops->pointer(ops->ctx, x, y, 0, err, n);
	return ret;
}

static int run_resize(const struct control_ops *ops, const json_t *req, json_t *ans, char *err,
		      size_t n)
{
	uint32_t w, h;
	int ret;

	(void)ans;
	if (!ops->resize)
		return unsupported(err, n);
	ret = get_uint(req, "width", DISPLAY_MIN_DIM, DISPLAY_MAX_W, -1, &w, err, n);
	if (!ret)
		ret = get_uint(req, "height", DISPLAY_MIN_DIM, DISPLAY_MAX_H, -1, &h, err, n);
	return ret ? ret : ops->resize(ops->ctx, w, h, err, n);
}

static int run_kvm_stats(const struct control_ops *ops, const json_t *req, json_t *ans, char *err,
			 size_t n)
{
	(void)req;
	return ops->kvm_stats ? ops->kvm_stats(ops->ctx, ans, err, n) : unsupported(err, n);
}

static const char *const no_fields[] = { NULL };
static const char *const snapshot_fields[] = { "dir", NULL };
static const char *const screenshot_fields[] = { "path", NULL };
static const char *const type_fields[] = { "text", NULL };
static const char *const key_fields[] = { "keys", NULL };
static const char *const pointer_fields[] = { "x", "y", "buttons", NULL };
static const char *const click_fields[] = { "x", "y", "button", NULL };
static const char *const resize_fields[] = { "width", "height", NULL };

/* The command table: a new command is one entry here and one callback in control_ops. */
static const struct command commands[] = {
	{ "pause", no_fields, run_pause },
	{ "resume", no_fields, run_resume },
	{ "snapshot", snapshot_fields, run_snapshot },
	{ "status", no_fields, run_status },
	{ "checkpoint", no_fields, run_checkpoint },
	{ "reset", no_fields, run_reset },
	{ "kvm_stats", no_fields, run_kvm_stats },
	{ "screenshot", screenshot_fields, run_screenshot },
	{ "display", no_fields, run_display },
	{ "type", type_fields, run_type },
	{ "key", key_fields, run_key },
	{ "pointer", pointer_fields, run_pointer },
	{ "click", click_fields, run_click },
	{ "resize", resize_fields, run_resize },
};

#define NR_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static const struct command *find_command(const char *name)
{
	for (size_t i = 0; i < NR_COMMANDS; i++)
		if (!strcmp(commands[i].name, name))
			return &commands[i];
	return NULL;
}

static bool field_known(const struct command *cmd, const char *key)
{
	if (!strcmp(key, "cmd"))
		return true;
	for (const char *const *f = cmd->fields; *f; f++)
		if (!strcmp(*f, key))
			return true;
	return false;
}

/* Parse and check one command line; on failure -errno and the reason in err. */
static int parse_command(const char *line, size_t len, json_t **req, const struct command **cmd,
			 char *err, size_t n)
{
	char shown[NAME_MAX_SHOWN];
	json_error_t jerr;
	const json_t *jcmd, *v;
	const char *key;
	json_t *root;

	if (len > CONTROL_LINE_MAX) {
		snprintf(err, n, "command line longer than %d bytes", CONTROL_LINE_MAX);
		return -EMSGSIZE;
	}
	/* JSON_DECODE_ANY: a non-object gets its own message below rather than jansson's; a
	 * duplicate key would make "cmd" ambiguous. */
	root = json_loadb(line, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		clean_text(shown, sizeof(shown), jerr.text, strnlen(jerr.text, sizeof(jerr.text)),
			   true);
		snprintf(err, n, "invalid JSON at byte %d: %s", jerr.position, shown);
		return -EINVAL;
	}
	if (!json_is_object(root)) {
		snprintf(err, n, "a command is a JSON object, got %s", json_kind(root));
		goto bad;
	}
	jcmd = json_object_get(root, "cmd");
	if (!jcmd) {
		snprintf(err, n, "missing \"cmd\"");
		goto bad;
	}
	if (!json_is_string(jcmd)) {
		snprintf(err, n, "\"cmd\" must be a string, got %s", json_kind(jcmd));
		goto bad;
	}
	*cmd = find_command(json_string_value(jcmd));
	if (!*cmd) {
		char known[160];
		size_t at = 0;

		for (size_t i = 0; i < NR_COMMANDS && at < sizeof(known); i++)
			at += (size_t)snprintf(known + at, sizeof(known) - at, "%s%s",
					       i ? ", " : "", commands[i].name);
		show_name(shown, sizeof(shown), json_string_value(jcmd), json_string_length(jcmd));
		snprintf(err, n, "unknown command \"%s\" (known: %s)", shown, known);
		goto bad;
	}
	json_object_foreach(root, key, v)
	{
		if (field_known(*cmd, key))
			continue;
		show_name(shown, sizeof(shown), key, strlen(key));
		snprintf(err, n, "%s: unknown field \"%s\"", (*cmd)->name, shown);
		goto bad;
	}
	*req = root;
	return 0;
bad:
	json_decref(root);
	return -EINVAL;
}

/* The answer object as one line, in a malloc'd buffer of our own. */
static char *dump_line(const json_t *ans)
{
	size_t len = json_dumpb(ans, NULL, 0, JSON_COMPACT);
	char *s;

	if (!len)
		return NULL;
	s = malloc(len + 2);
	if (!s)
		return NULL;
	if (json_dumpb(ans, s, len, JSON_COMPACT) != len) {
		free(s);
		return NULL;
	}
	s[len] = '\n';
	s[len + 1] = '\0';
	return s;
}

static char *error_line(const char *prefix, const char *msg)
{
	char text[CONTROL_ERR_MAX + 64], clean[sizeof(text) + 4];
	json_t *ans;
	char *s;

	snprintf(text, sizeof(text), "%s%s%s", prefix ? prefix : "", prefix ? ": " : "", msg);
	clean_text(clean, sizeof(clean), text, strlen(text), true);
	ans = json_object();
	if (!ans)
		return NULL;
	if (put(ans, "ok", json_false()) || put(ans, "error", json_string(clean))) {
		json_decref(ans);
		return NULL;
	}
	s = dump_line(ans);
	json_decref(ans);
	return s;
}

int control_handle_line(const struct control_ops *ops, const char *line, size_t len, char **answer)
{
	char err[CONTROL_ERR_MAX];
	const struct command *cmd = NULL;
	json_t *req = NULL, *ans = NULL;
	int ret;

	*answer = NULL;
	memset(err, 0, sizeof(err));
	ret = parse_command(line, len, &req, &cmd, err, sizeof(err));
	if (ret) {
		*answer = error_line(NULL, err);
		return *answer ? ret : -ENOMEM;
	}
	ans = json_object();
	if (!ans || put(ans, "ok", json_true())) {
		ret = -ENOMEM;
	} else {
		ret = cmd->run(ops, req, ans, err, sizeof(err));
		err[sizeof(err) - 1] = '\0';
		if (ret > 0) /* not the contract: a failure without an errno */
			ret = -EIO;
	}
	if (!ret) {
		*answer = dump_line(ans);
		if (!*answer) {
			ret = -ENOMEM;
			snprintf(err, sizeof(err),
				 "out of memory (after the command was carried out)");
		}
	}
	json_decref(ans);
	json_decref(req);
	if (ret) {
		if (!err[0])
			snprintf(err, sizeof(err), "%s", strerror(-ret));
		*answer = error_line(cmd->name, err);
	}
	return *answer ? ret : -ENOMEM;
}

/* ---- the socket ---- */

/* Epoll tags of the private set: the listening socket, or a client slot with the generation
 * it was accepted in (an event left over for a slot's previous client is dropped). */
#define LISTEN_TAG UINT64_MAX

/* Connections a burst of clients may queue before the loop accepts them. */
#define LISTEN_BACKLOG 64
/* Events handled per wake-up of the private set (level-triggered: the rest come next). */
#define EVENTS_PER_WAKE 16
/* Connections accepted per wake-up, so that a flood of them leaves the loop to others. */
#define ACCEPTS_PER_WAKE 16

static const char oom_line[] = "{\"ok\":false,\"error\":\"out of memory\"}\n";

struct client {
	int fd; /* -1: free slot */
	uint32_t gen;
	uint32_t events; /* what the private set waits for */
	bool closing;	 /* send what is queued, then close (EOF, line too long) */
	bool dead;	 /* close now (peer gone, not reading) */
	char *in;	 /* CONTROL_LINE_MAX + 1 bytes: one line and its '\n' */
	size_t in_len;
	char *out; /* CONTROL_OUT_MAX bytes: answers the socket did not take yet */
	size_t out_off, out_len;
};

struct control {
	struct evloop *ev;
	struct control_ops ops;
	int listen_fd;
	int epfd;
	bool registered; /* epfd is on the event loop */
	bool bound;	 /* path is ours to remove */
	unsigned nr_clients;
	uint32_t next_gen;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct client clients[CONTROL_MAX_CLIENTS];
};

static uint64_t client_tag(const struct control *c, const struct client *cl)
{
	return (uint64_t)cl->gen << 32 | (uint64_t)(cl - c->clients);
}

static void drop_client(struct control *c, struct client *cl)
{
	epoll_ctl(c->epfd, EPOLL_CTL_DEL, cl->fd, NULL);
	close(cl->fd);
	free(cl->in);
	free(cl->out);
	memset(cl, 0, sizeof(*cl));
	cl->fd = -1;
	__atomic_store_n(&c->nr_clients, c->nr_clients - 1, __ATOMIC_RELAXED);
}

/* Queue `len` bytes of answer; a client that leaves more than CONTROL_OUT_MAX unread is dead. */
static void queue_out(struct client *cl, const char *s, size_t len)
{
	if (cl->out_off) {
		memmove(cl->out, cl->out + cl->out_off, cl->out_len - cl->out_off);
		cl->out_len -= cl->out_off;
		cl->out_off = 0;
	}
	if (len > CONTROL_OUT_MAX - cl->out_len) {
		static uint64_t rl;

		if (log_ratelimit(&rl, 5))
			log_warn("control: dropping a client that leaves %zu bytes of answers "
				 "unread",
				 cl->out_len);
		cl->dead = true;
		return;
	}
	memcpy(cl->out + cl->out_len, s, len);
	cl->out_len += len;
}

/* Send what is queued: 0 all sent or blocked (the rest waits for EPOLLOUT), else -errno. */
static int flush_out(struct client *cl)
{
	while (cl->out_off < cl->out_len) {
		ssize_t r = send(cl->fd, cl->out + cl->out_off, cl->out_len - cl->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? 0 : -errno;
		}
		cl->out_off += (size_t)r;
	}
	cl->out_off = cl->out_len = 0;
	return 0;
}

static bool blank(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
			return false;
	return true;
}

/* Run line[0..len) and queue its answer. */
static void answer(struct control *c, struct client *cl, const char *line, size_t len)
{
	char *ans;

	if (control_handle_line(&c->ops, line, len, &ans) == -ENOMEM && !ans) {
		queue_out(cl, oom_line, sizeof(oom_line) - 1);
		return;
	}
	log_debug("control: %.*s -> %.*s", (int)(len > 200 ? 200 : len), line, (int)strlen(ans) - 1,
		  ans);
	queue_out(cl, ans, strlen(ans));
	free(ans);
}

/* One command line (without '\n').  A '\r' before the '\n' is dropped (terminal and netcat
 * users); blank lines get no answer. */
static void answer_line(struct control *c, struct client *cl, const char *line, size_t len)
{
	if (len && line[len - 1] == '\r')
		len--;
	if (!blank(line, len))
		answer(c, cl, line, len);
}

/* Answer every complete line in the input buffer, keep the partial one. */
static void answer_lines(struct control *c, struct client *cl)
{
	size_t start = 0;

	while (!cl->dead && start < cl->in_len) {
		char *nl = memchr(cl->in + start, '\n', cl->in_len - start);
		size_t len;

		if (!nl)
			break;
		len = (size_t)(nl - (cl->in + start));
		answer_line(c, cl, cl->in + start, len);
		start += len + 1;
	}
	memmove(cl->in, cl->in + start, cl->in_len - start);
	cl->in_len -= start;
}

static void client_read(struct control *c, struct client *cl)
{
	ssize_t r;

	do
		r = recv(cl->fd, cl->in + cl->in_len, CONTROL_LINE_MAX + 1 - cl->in_len,
			 MSG_DONTWAIT);
	while (r < 0 && errno == EINTR);
	if (r < 0) {
		if (errno != EAGAIN)
			cl->dead = true; /* ECONNRESET and the like: nobody to answer */
		return;
	}
	if (r == 0) {
		/* EOF: a last line without '\n' still counts; answer, then close. */
		if (cl->in_len)
			answer_line(c, cl, cl->in, cl->in_len);
		cl->in_len = 0;
		cl->closing = true;
		return;
	}
	cl->in_len += (size_t)r;
	answer_lines(c, cl);
	if (cl->in_len == CONTROL_LINE_MAX + 1) {
		/* A full buffer without '\n': the line is too long.  Answer through the
		 * protocol function, which says so (all of it: no '\r' dropped), and close. */
		static uint64_t rl;

		if (log_ratelimit(&rl, 5))
			log_warn("control: closing a client whose line exceeds %d bytes",
				 CONTROL_LINE_MAX);
		answer(c, cl, cl->in, cl->in_len);
		cl->in_len = 0;
		cl->closing = true;
	}
}

static void client_event(struct control *c, struct client *cl, uint32_t events)
{
	uint32_t want;

	if (!cl->closing && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		client_read(c, cl);
	if (!cl->dead && cl->out_off < cl->out_len && flush_out(cl) < 0)
		cl->dead = true;
	if (cl->dead || (cl->closing && cl->out_off == cl->out_len)) {
		log_debug("control: client %u closed", (unsigned)(cl - c->clients));
		drop_client(c, cl);
		return;
	}
	/* Closing: no more input, only the queued answers.  Otherwise input, and EPOLLOUT only
	 * while answers wait, so an idle client costs no wake-ups. */
	want = cl->closing ? EPOLLOUT : EPOLLIN | (cl->out_off < cl->out_len ? EPOLLOUT : 0);
	if (want != cl->events) {
		struct epoll_event e = { .events = want, .data.u64 = client_tag(c, cl) };

		if (epoll_ctl(c->epfd, EPOLL_CTL_MOD, cl->fd, &e) < 0) {
			log_warn("control: epoll_ctl: %s", strerror(errno));
			drop_client(c, cl);
			return;
		}
		cl->events = want;
	}
}

/* One more client than we serve: tell it why in one line and close. */
static void refuse_client(int fd)
{
	static const char msg[] = "{\"ok\":false,\"error\":\"too many control clients (at most "
				  "8)\"}\n";
	static uint64_t rl;
	ssize_t r;

	_Static_assert(CONTROL_MAX_CLIENTS == 8, "the refusal message names the limit");
	/* A new socket's buffer is empty: the line fits, or the peer is gone already. */
	r = send(fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
	(void)r;
	close(fd);
	if (log_ratelimit(&rl, 5))
		log_warn("control: refused a client: %d are connected", CONTROL_MAX_CLIENTS);
}

static void accept_clients(struct control *c)
{
	for (int i = 0; i < ACCEPTS_PER_WAKE; i++) {
		int fd = accept4(c->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct client *cl = NULL;
		struct epoll_event e;

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN) {
				static uint64_t rl;

				if (log_ratelimit(&rl, 1))
					log_warn("control: accept: %s", strerror(errno));
			}
			return;
		}
		for (unsigned k = 0; k < CONTROL_MAX_CLIENTS && !cl; k++)
			if (c->clients[k].fd < 0)
				cl = &c->clients[k];
		if (!cl) {
			refuse_client(fd);
			continue;
		}
		cl->in = malloc(CONTROL_LINE_MAX + 1);
		cl->out = malloc(CONTROL_OUT_MAX);
		cl->gen = ++c->next_gen;
		cl->events = EPOLLIN;
		e = (struct epoll_event){ .events = EPOLLIN, .data.u64 = client_tag(c, cl) };
		if (!cl->in || !cl->out || epoll_ctl(c->epfd, EPOLL_CTL_ADD, fd, &e) < 0) {
			log_warn("control: cannot serve a new client: %s",
				 cl->in && cl->out ? strerror(errno) : "out of memory");
			free(cl->in);
			free(cl->out);
			memset(cl, 0, sizeof(*cl));
			cl->fd = -1;
			close(fd);
			continue;
		}
		cl->fd = fd;
		__atomic_store_n(&c->nr_clients, c->nr_clients + 1, __ATOMIC_RELAXED);
		log_debug("control: client %u connected", (unsigned)(cl - c->clients));
	}
}

/* The private set is readable: handle what is ready in it. */
static void on_events(void *opaque, uint32_t events)
{
	struct control *c = opaque;
	struct epoll_event evs[EVENTS_PER_WAKE];
	int n = epoll_wait(c->epfd, evs, EVENTS_PER_WAKE, 0);

	(void)events;
	for (int i = 0; i < n; i++) {
		uint64_t tag = evs[i].data.u64;
		struct client *cl;

		if (tag == LISTEN_TAG) {
			accept_clients(c);
			continue;
		}
		cl = &c->clients[(uint32_t)tag % CONTROL_MAX_CLIENTS];
		if (cl->fd >= 0 && cl->gen == (uint32_t)(tag >> 32))
			client_event(c, cl, evs[i].events);
	}
}

int control_create(struct evloop *ev, const char *path, const struct control_ops *ops,
		   struct control **out)
{
	struct epoll_event e = { .events = EPOLLIN, .data.u64 = LISTEN_TAG };
	struct control *c;
	int ret;

	*out = NULL;
	if (!ev || !path || !*path || !ops)
		return -EINVAL;
	if (strlen(path) >= sizeof(c->path))
		return -ENAMETOOLONG;
	/* jansson seeds its hash function from /dev/urandom on first use; do it here, on the
	 * unfiltered thread that creates us (see control.h). */
	json_object_seed(0);
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->ev = ev;
	c->ops = *ops;
	c->listen_fd = -1;
	snprintf(c->path, sizeof(c->path), "%s", path);
	for (unsigned i = 0; i < CONTROL_MAX_CLIENTS; i++)
		c->clients[i].fd = -1;
	c->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (c->epfd < 0) {
		ret = -errno;
		goto free_control;
	}
	/* Owner only: a client can pause the VM and write snapshots wherever the VMM may. */
	ret = unix_listen(path, LISTEN_BACKLOG, 0600);
	if (ret < 0)
		goto close_epoll;
	c->listen_fd = ret;
	c->bound = true;
	if (epoll_ctl(c->epfd, EPOLL_CTL_ADD, c->listen_fd, &e) < 0) {
		ret = -errno;
		goto close_listen;
	}
	ret = evloop_add(ev, c->epfd, EPOLLIN, on_events, c);
	if (ret)
		goto close_listen;
	c->registered = true;
	log_info("control: listening on %s", path);
	*out = c;
	return 0;

close_listen:
	close(c->listen_fd);
	unlink(path);
close_epoll:
	close(c->epfd);
free_control:
	free(c);
	return ret;
}

void control_destroy(struct control *c)
{
	if (!c)
		return;
	if (c->registered)
		evloop_del(c->ev, c->epfd);
	for (unsigned i = 0; i < CONTROL_MAX_CLIENTS; i++)
		if (c->clients[i].fd >= 0)
			drop_client(c, &c->clients[i]);
	close(c->listen_fd);
	close(c->epfd);
	if (c->bound)
		unlink(c->path);
	free(c);
}

unsigned control_nr_clients(const struct control *c)
{
	return __atomic_load_n(&c->nr_clients, __ATOMIC_RELAXED);
}
