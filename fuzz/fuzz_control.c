/* The control socket's protocol (src/core/control.c): one command line through
 * control_handle_line() with fake operations whose behaviour the input chooses.  The answer must
 * always be one line of JSON: an object whose boolean "ok" says whether the call returned 0,
 * with a printable "error" when it is false; a command must reach its callback exactly when it
 * is a well-formed object naming it, with the arguments it gave (the display commands too:
 * "click" is three "pointer" calls, stopped at the first that fails).
 *
 * Input: [flags u8] [reason length u8] [reason bytes] [the line]. */
#include "core/control.h"
#include "harness.h"

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
	F_NULL_OPS = 1 << 0,   /* every callback NULL: "not supported" */
	F_FAIL = 1 << 1,       /* callbacks return -EIO */
	F_REASON = 1 << 2,     /* ... with the input's reason bytes (else none: strerror) */
	F_POSITIVE = 1 << 3,   /* callbacks return 1 (not the contract: becomes -EIO) */
	F_SNAP_OUT = 1 << 4,   /* snapshot reports the reason bytes as the directory written */
	F_ODD_STATUS = 1 << 5, /* status: a state out of range and the largest numbers */
};

static struct {
	unsigned flags;
	const uint8_t *reason;
	size_t reason_len;
	int calls;
	const char *called;
	bool dir_null;
	char dir[CONTROL_PATH_MAX];
	/* screenshot's path, type's text, key's keys (copied: the request is freed before
	 * the answer is checked) */
	char arg[CONTROL_PATH_MAX > CONTROL_TYPE_MAX ? CONTROL_PATH_MAX : CONTROL_TYPE_MAX];
	uint32_t x, y, buttons, w, h;
} fk;

static int outcome(const char *name, char *err, size_t n)
{
	fk.calls++;
	fk.called = name;
	if (fk.flags & F_POSITIVE)
		return 1;
	if (!(fk.flags & F_FAIL))
		return 0;
	if (fk.flags & F_REASON) {
		/* Raw bytes, possibly filling err without a NUL: the module must cope. */
		memcpy(err, fk.reason, fk.reason_len < n ? fk.reason_len : n);
	}
	return -EIO;
}

static int fake_pause(void *ctx, char *err, size_t n)
{
	return outcome("pause", err, n);
}

static int fake_resume(void *ctx, char *err, size_t n)
{
	return outcome("resume", err, n);
}

static int fake_snapshot(void *ctx, const char *dir, char *dir_out, size_t dir_n, char *err,
			 size_t n)
{
	int ret = outcome("snapshot", err, n);

	FUZZ_CHECK(dir_n == CONTROL_PATH_MAX);
	fk.dir_null = !dir;
	if (dir) {
		FUZZ_CHECK(*dir && strlen(dir) < CONTROL_PATH_MAX);
		snprintf(fk.dir, sizeof(fk.dir), "%s", dir);
	}
	if (fk.flags & F_SNAP_OUT)
		memcpy(dir_out, fk.reason, fk.reason_len < dir_n ? fk.reason_len : dir_n);
	return ret;
}

static int fake_status(void *ctx, struct control_status *st, char *err, size_t n)
{
	if (fk.flags & F_ODD_STATUS) {
		st->state = (enum control_vm_state)(200 + fk.reason_len);
		st->vcpus = UINT32_MAX;
		st->mem_mib = UINT64_MAX;
		st->uptime_ms = UINT64_MAX;
		st->net_ready = UINT32_MAX;
	} else {
		st->state = fk.reason_len & 1 ? CONTROL_VM_PAUSED : CONTROL_VM_RUNNING;
		st->vcpus = 2;
		st->mem_mib = 512;
		st->uptime_ms = fk.reason_len;
		st->net_ready = fk.reason_len;
	}
	return outcome("status", err, n);
}

static int fake_checkpoint(void *ctx, char *err, size_t n)
{
	return outcome("checkpoint", err, n);
}

static int fake_reset(void *ctx, uint64_t *us, uint64_t *pages, char *err, size_t n)
{
	*us = fk.flags & F_ODD_STATUS ? UINT64_MAX : fk.reason_len;
	*pages = fk.reason_len;
	return outcome("reset", err, n);
}

static int fake_screenshot(void *ctx, const char *path, uint32_t *w, uint32_t *h, char *err,
			   size_t n)
{
	FUZZ_CHECK(*path && strlen(path) < CONTROL_PATH_MAX);
	snprintf(fk.arg, sizeof(fk.arg), "%s", path);
	*w = fk.flags & F_ODD_STATUS ? UINT32_MAX : 1280;
	*h = (uint32_t)fk.reason_len;
	return outcome("screenshot", err, n);
}

static int fake_display(void *ctx, struct control_display *d, char *err, size_t n)
{
	d->active = fk.reason_len & 1;
	d->width = d->height = 77; /* the answer says 0 when inactive */
	d->serial = fk.flags & F_ODD_STATUS ? UINT64_MAX : fk.reason_len;
	return outcome("display", err, n);
}

static int fake_type(void *ctx, const char *text, char *err, size_t n)
{
	FUZZ_CHECK(*text && strlen(text) < CONTROL_TYPE_MAX);
	snprintf(fk.arg, sizeof(fk.arg), "%s", text);
	return outcome("type", err, n);
}

static int fake_key(void *ctx, const char *keys, char *err, size_t n)
{
	FUZZ_CHECK(*keys && strlen(keys) < CONTROL_KEYS_MAX);
	snprintf(fk.arg, sizeof(fk.arg), "%s", keys);
	return outcome("key", err, n);
}

static int fake_pointer(void *ctx, uint32_t x, uint32_t y, uint32_t buttons, char *err, size_t n)
{
	FUZZ_CHECK(x < 3840 && y < 2160 && buttons <= 7);
	/* A click's three calls are at one place. */
	FUZZ_CHECK(!fk.calls || (x == fk.x && y == fk.y));
	fk.x = x;
	fk.y = y;
	fk.buttons |= buttons;
	return outcome("pointer", err, n);
}

static int fake_resize(void *ctx, uint32_t w, uint32_t h, char *err, size_t n)
{
	FUZZ_CHECK(w >= 64 && w <= 3840 && h >= 64 && h <= 2160);
	fk.w = w;
	fk.h = h;
	return outcome("resize", err, n);
}

static void check_text(const char *s)
{
	FUZZ_CHECK(s && *s);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		FUZZ_CHECK(*p >= 0x20 && *p != 0x7f);
}

/* What the line asks for, by jansson's own reading: the command name when it is an object with
 * a string "cmd", NULL otherwise (*root: the parsed line, or NULL). */
static const char *requested(const uint8_t *line, size_t len, json_t **root)
{
	const json_t *cmd;

	*root = json_loadb((const char *)line, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(*root))
		return NULL;
	cmd = json_object_get(*root, "cmd");
	return json_is_string(cmd) ? json_string_value(cmd) : NULL;
}

/* A string field: a non-empty string shorter than max (no NUL: jansson refuses \u0000). */
static bool good_str(const json_t *v, size_t max)
{
	return json_is_string(v) && json_string_length(v) > 0 && json_string_length(v) < max &&
	       strlen(json_string_value(v)) == json_string_length(v);
}

/* An integer field in [min, max]; absent is fine when optional. */
static bool good_int(const json_t *v, json_int_t min, json_int_t max, bool optional)
{
	if (!v)
		return optional;
	return json_is_integer(v) && json_integer_value(v) >= min && json_integer_value(v) <= max;
}

/* Fields of root other than "cmd" are all in the NULL-terminated list. */
static bool only(const json_t *root, const char *const *fields)
{
	size_t n = 1;

	for (const char *const *f = fields; *f; f++)
		n += json_object_get(root, *f) != NULL;
	return json_object_size(root) == n;
}

/* The display commands' rules (docs/gui.md), written out again. */
static bool display_well_formed(const json_t *root, const char *cmd)
{
	static const char *const path[] = { "path", NULL }, *const text[] = { "text", NULL },
				 *const keys[] = { "keys", NULL },
				 *const ptr[] = { "x", "y", "buttons", NULL },
				 *const click[] = { "x", "y", "button", NULL },
				 *const size[] = { "width", "height", NULL },
				 *const none[] = { NULL };
	const json_t *x = json_object_get(root, "x"), *y = json_object_get(root, "y");
	const json_t *b = json_object_get(root, "button");

	if (!strcmp(cmd, "screenshot"))
		return only(root, path) &&
		       good_str(json_object_get(root, "path"), CONTROL_PATH_MAX);
	if (!strcmp(cmd, "display"))
		return only(root, none);
	if (!strcmp(cmd, "type"))
		return only(root, text) &&
		       good_str(json_object_get(root, "text"), CONTROL_TYPE_MAX);
	if (!strcmp(cmd, "key"))
		return only(root, keys) &&
		       good_str(json_object_get(root, "keys"), CONTROL_KEYS_MAX);
	if (!strcmp(cmd, "pointer"))
		return only(root, ptr) && good_int(x, 0, 3839, false) &&
		       good_int(y, 0, 2159, false) &&
		       good_int(json_object_get(root, "buttons"), 0, 7, true);
	if (!strcmp(cmd, "click"))
		return only(root, click) && good_int(x, 0, 3839, false) &&
		       good_int(y, 0, 2159, false) &&
		       (!b || (json_is_string(b) && (!strcmp(json_string_value(b), "left") ||
						     !strcmp(json_string_value(b), "right") ||
						     !strcmp(json_string_value(b), "middle"))));
	return only(root, size) && good_int(json_object_get(root, "width"), 64, 3840, false) &&
	       good_int(json_object_get(root, "height"), 64, 2160, false);
}

/* The protocol's rules, written out again: a line within CONTROL_LINE_MAX, a known command, no
 * other field than "dir" (for snapshot only), which is null or a non-empty string shorter than
 * CONTROL_PATH_MAX; the display commands as display_well_formed() says. */
static bool well_formed(const json_t *root, const char *cmd, size_t len)
{
	static const char *const known[] = { "pause",  "resume",     "snapshot",
					     "status", "checkpoint", "reset" };
	static const char *const display[] = { "screenshot", "display", "type",	 "key",
					       "pointer",    "click",	"resize" };
	const json_t *dir;
	bool found = false;

	if (!cmd || len > CONTROL_LINE_MAX)
		return false;
	for (size_t i = 0; i < sizeof(display) / sizeof(display[0]); i++)
		if (!strcmp(cmd, display[i]))
			return display_well_formed(root, cmd);
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		found |= !strcmp(cmd, known[i]);
	if (!found)
		return false;
	dir = json_object_get(root, "dir");
	if (json_object_size(root) != 1 + (dir != NULL))
		return false;
	if (!dir)
		return true;
	return !strcmp(cmd, "snapshot") &&
	       (json_is_null(dir) || (json_is_string(dir) && json_string_length(dir) > 0 &&
				      json_string_length(dir) < CONTROL_PATH_MAX &&
				      strlen(json_string_value(dir)) == json_string_length(dir)));
}

static void check_answer(const char *ans, int ret, const uint8_t *line, size_t len)
{
	size_t n = strlen(ans);
	json_error_t jerr;
	json_t *a, *root = NULL;
	const json_t *ok;
	const char *cmd = requested(line, len, &root);

	FUZZ_CHECK(n >= 2 && ans[n - 1] == '\n' && strchr(ans, '\n') == ans + n - 1);
	FUZZ_CHECK(n < 2 * CONTROL_PATH_MAX);
	a = json_loadb(ans, n, 0, &jerr);
	if (!a)
		fuzz_fail("answer is not JSON (%s): %s", jerr.text, ans);
	FUZZ_CHECK(json_is_object(a));
	ok = json_object_get(a, "ok");
	FUZZ_CHECK(json_is_boolean(ok));
	FUZZ_CHECK(json_is_true(ok) == (ret == 0));
	if (ret) {
		FUZZ_CHECK(ret < 0);
		FUZZ_CHECK(json_object_size(a) == 2);
		check_text(json_string_value(json_object_get(a, "error")));
		/* Refused before any callback, or the callback's own failure. */
		if (ret == -EIO)
			FUZZ_CHECK(fk.calls == 1 && (fk.flags & (F_FAIL | F_POSITIVE)));
		else
			FUZZ_CHECK(fk.calls == 0);
		if (ret == -EOPNOTSUPP)
			FUZZ_CHECK(fk.flags & F_NULL_OPS);
	} else {
		/* It ran the callback the line names (a click: pointer, three times), with the
		 * line's arguments. */
		bool click = cmd && !strcmp(cmd, "click");

		FUZZ_CHECK(cmd && fk.calls == (click ? 3 : 1) &&
			   !strcmp(click ? "pointer" : cmd, fk.called));
		if (!strcmp(cmd, "screenshot")) {
			const char *path = json_string_value(json_object_get(root, "path"));

			FUZZ_CHECK(!strcmp(fk.arg, path));
			FUZZ_CHECK(!strcmp(json_string_value(json_object_get(a, "path")), path));
			FUZZ_CHECK(json_integer_value(json_object_get(a, "width")) ==
				   (fk.flags & F_ODD_STATUS ? UINT32_MAX : 1280));
			FUZZ_CHECK(json_integer_value(json_object_get(a, "height")) ==
				   (json_int_t)fk.reason_len);
			FUZZ_CHECK(json_object_size(a) == 4);
		} else if (!strcmp(cmd, "display")) {
			bool active = json_is_true(json_object_get(a, "active"));

			FUZZ_CHECK(active == (fk.reason_len & 1));
			FUZZ_CHECK(json_integer_value(json_object_get(a, "width")) ==
				   (active ? 77 : 0));
			FUZZ_CHECK(json_integer_value(json_object_get(a, "serial")) >= 0);
			FUZZ_CHECK(json_object_size(a) == 5);
		} else if (!strcmp(cmd, "type") || !strcmp(cmd, "key")) {
			FUZZ_CHECK(
				!strcmp(fk.arg, json_string_value(json_object_get(
							root, cmd[0] == 't' ? "text" : "keys"))));
			FUZZ_CHECK(json_object_size(a) == 1);
		} else if (!strcmp(cmd, "pointer") || click) {
			FUZZ_CHECK(fk.x == json_integer_value(json_object_get(root, "x")));
			FUZZ_CHECK(fk.y == json_integer_value(json_object_get(root, "y")));
			FUZZ_CHECK(json_object_size(a) == 1);
		} else if (!strcmp(cmd, "resize")) {
			FUZZ_CHECK(fk.w == json_integer_value(json_object_get(root, "width")));
			FUZZ_CHECK(fk.h == json_integer_value(json_object_get(root, "height")));
			FUZZ_CHECK(json_object_size(a) == 1);
		} else if (!strcmp(cmd, "snapshot")) {
			const json_t *dir = json_object_get(root, "dir");

			FUZZ_CHECK(fk.dir_null == (!dir || json_is_null(dir)));
			if (!fk.dir_null)
				FUZZ_CHECK(!strcmp(fk.dir, json_string_value(dir)));
			/* The directory written: the callback's word, else the one asked for,
			 * exactly. */
			const char *said = json_string_value(json_object_get(a, "dir"));

			if (!fk.dir_null || json_object_get(a, "dir"))
				FUZZ_CHECK(said && *said);
			if (!fk.dir_null && !(fk.flags & F_SNAP_OUT))
				FUZZ_CHECK(!strcmp(said, fk.dir));
			FUZZ_CHECK(json_object_size(a) == 1 + !!json_object_get(a, "dir"));
		} else if (!strcmp(cmd, "status")) {
			const char *st = json_string_value(json_object_get(a, "state"));

			FUZZ_CHECK(st && (!strcmp(st, "running") || !strcmp(st, "paused") ||
					  !strcmp(st, "unknown")));
			FUZZ_CHECK(json_integer_value(json_object_get(a, "uptime_ms")) >= 0);
			FUZZ_CHECK(json_integer_value(json_object_get(a, "mem_mib")) >= 0);
			FUZZ_CHECK(json_integer_value(json_object_get(a, "net_ready")) >= 0);
			FUZZ_CHECK(json_object_size(a) == 6);
		} else if (!strcmp(cmd, "reset")) {
			FUZZ_CHECK(json_integer_value(json_object_get(a, "reset_us")) >= 0);
			FUZZ_CHECK(json_is_integer(json_object_get(a, "pages")));
			FUZZ_CHECK(json_object_size(a) == 3);
		} else {
			FUZZ_CHECK(json_object_size(a) == 1);
		}
	}
	/* A request reaches its callback exactly when it is well-formed. */
	if (fk.flags & F_NULL_OPS)
		FUZZ_CHECK(fk.calls == 0 && (!well_formed(root, cmd, len) || ret == -EOPNOTSUPP));
	else
		FUZZ_CHECK((fk.calls > 0) == well_formed(root, cmd, len));
	json_decref(root);
	json_decref(a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct control_ops real = {
		.pause = fake_pause,
		.resume = fake_resume,
		.snapshot = fake_snapshot,
		.status = fake_status,
		.checkpoint = fake_checkpoint,
		.reset = fake_reset,
		.screenshot = fake_screenshot,
		.display = fake_display,
		.type = fake_type,
		.key = fake_key,
		.pointer = fake_pointer,
		.resize = fake_resize,
	};
	static const struct control_ops none = { 0 };
	struct fuzz_in in = { data, size };
	const uint8_t *line;
	size_t len;
	char *ans;
	int ret;

	memset(&fk, 0, sizeof(fk));
	fk.flags = fuzz_u8(&in);
	fk.reason_len = fuzz_bytes(&in, fuzz_u8(&in), &fk.reason);
	len = fuzz_bytes(&in, in.n, &line);
	ret = control_handle_line(fk.flags & F_NULL_OPS ? &none : &real, (const char *)line, len,
				  &ans);
	if (!ans)
		fuzz_fail("no answer (%d)", ret);
	check_answer(ans, ret, line, len);
	free(ans);
	return 0;
}

static void seed(struct fuzz_seed *s, const char *name, uint8_t flags, const char *reason,
		 const char *line)
{
	seed_u8(s, flags);
	seed_u8(s, (uint8_t)strlen(reason));
	seed_bytes(s, reason, strlen(reason));
	seed_bytes(s, line, strlen(line));
	fuzz_seed_save(s, name);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static struct fuzz_seed s;

	if (!fuzz_want_seeds())
		return 0;
	seed(&s, "pause", 0, "", "{\"cmd\":\"pause\"}");
	seed(&s, "resume-fails", F_FAIL | F_REASON, "vCPU 1 did not stop\n\xff",
	     "{\"cmd\":\"resume\"}");
	seed(&s, "status", 0, "x", " {\"cmd\" : \"status\"} ");
	seed(&s, "status-odd", F_ODD_STATUS, "", "{\"cmd\":\"status\"}");
	seed(&s, "snapshot-dir", F_SNAP_OUT, "/var/snap/\xc3\xa9\x01",
	     "{\"cmd\":\"snapshot\",\"dir\":\"/tmp/s\\u00e9\\n\"}");
	seed(&s, "snapshot-null", F_FAIL, "", "{\"dir\":null,\"cmd\":\"snapshot\"}");
	seed(&s, "unsupported", F_NULL_OPS, "", "{\"cmd\":\"snapshot\",\"dir\":\"/x\"}");
	seed(&s, "positive", F_POSITIVE, "", "{\"cmd\":\"pause\"}");
	seed(&s, "bad-type", 0, "", "{\"cmd\":\"snapshot\",\"dir\":[1,{\"a\":null}]}");
	seed(&s, "screenshot", 0, "abc", "{\"cmd\":\"screenshot\",\"path\":\"/t/s.png\"}");
	seed(&s, "display", F_ODD_STATUS, "a", "{\"cmd\":\"display\"}");
	seed(&s, "type", 0, "", "{\"cmd\":\"type\",\"text\":\"echo $((6*7))\\n\"}");
	seed(&s, "key", F_FAIL | F_REASON, "unknown key", "{\"cmd\":\"key\",\"keys\":\"ctrl+x\"}");
	seed(&s, "pointer", 0, "", "{\"cmd\":\"pointer\",\"x\":3839,\"y\":0,\"buttons\":7}");
	seed(&s, "click", 0, "", "{\"cmd\":\"click\",\"x\":1,\"y\":2,\"button\":\"right\"}");
	seed(&s, "click-fails", F_FAIL, "", "{\"cmd\":\"click\",\"x\":1,\"y\":2}");
	seed(&s, "resize", 0, "", "{\"cmd\":\"resize\",\"width\":64,\"height\":2160}");
	seed(&s, "unknown-field", 0, "", "{\"cmd\":\"pause\",\"force\":true}");
	seed(&s, "duplicate", 0, "", "{\"cmd\":\"pause\",\"cmd\":\"resume\"}");
	seed(&s, "not-object", 0, "", "[\"pause\",1.5e300,-0,\"\\ud83d\\ude00\"]");
	seed(&s, "unknown", 0, "", "{\"cmd\":\"checkpoint\"}");
	return 0;
}
