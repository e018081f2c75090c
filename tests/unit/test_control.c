/* The control socket: control_handle_line() on good and bad commands (each answer parsed back
 * and compared byte for byte where it is fixed), then the socket on a real event loop: framing
 * across writes, an over-long line, a client that does not read, more clients than it serves,
 * the path's life cycle, and the whole conversation under the event loop's seccomp filter. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/control.h"
#include "core/evloop.h"
#include "core/seccomp.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- fake operations ---- */

struct fake {
	bool paused;
	int pause_calls, resume_calls, snapshot_calls, status_calls, checkpoint_calls, reset_calls;
	bool has_checkpoint;
	bool snap_dir_null;
	char snap_dir[256];
	/* The next call fails with this -errno and reason (0: succeeds). */
	int fail;
	const char *fail_msg;
	/* What snapshot puts in dir_out (NULL: the dir it was given, or "/var/snap/1"). */
	const char *snap_out;
	struct control_status st;
	struct evloop *stop_on_snapshot; /* the seccomp child's way out */
};

static int fail_now(struct fake *f, char *err, size_t n)
{
	int ret = f->fail;

	if (f->fail_msg)
		snprintf(err, n, "%s", f->fail_msg);
	f->fail = 0;
	f->fail_msg = NULL;
	return ret;
}

static int fake_pause(void *ctx, char *err, size_t n)
{
	struct fake *f = ctx;

	f->pause_calls++;
	if (f->fail)
		return fail_now(f, err, n);
	if (f->paused) {
		snprintf(err, n, "already paused");
		return -EALREADY;
	}
	f->paused = true;
	return 0;
}

static int fake_resume(void *ctx, char *err, size_t n)
{
	struct fake *f = ctx;

	f->resume_calls++;
	if (f->fail)
		return fail_now(f, err, n);
	f->paused = false;
	return 0;
}

static int fake_snapshot(void *ctx, const char *dir, char *dir_out, size_t dir_n, char *err,
			 size_t n)
{
	struct fake *f = ctx;

	f->snapshot_calls++;
	f->snap_dir_null = !dir;
	snprintf(f->snap_dir, sizeof(f->snap_dir), "%s", dir ? dir : "");
	if (f->stop_on_snapshot)
		evloop_stop(f->stop_on_snapshot);
	if (f->fail)
		return fail_now(f, err, n);
	snprintf(dir_out, dir_n, "%s", f->snap_out ? f->snap_out : dir ? dir : "/var/snap/1");
	return 0;
}

static int fake_status(void *ctx, struct control_status *st, char *err, size_t n)
{
	struct fake *f = ctx;

	f->status_calls++;
	if (f->fail)
		return fail_now(f, err, n);
	*st = f->st;
	st->state = f->paused ? CONTROL_VM_PAUSED : f->st.state;
	return 0;
}

static int fake_checkpoint(void *ctx, char *err, size_t n)
{
	struct fake *f = ctx;

	f->checkpoint_calls++;
	if (f->fail)
		return fail_now(f, err, n);
	f->has_checkpoint = true;
	return 0;
}

static int fake_reset(void *ctx, uint64_t *us, uint64_t *pages, char *err, size_t n)
{
	struct fake *f = ctx;

	f->reset_calls++;
	if (f->fail)
		return fail_now(f, err, n);
	if (!f->has_checkpoint) {
		snprintf(err, n, "no checkpoint");
		return -ENOENT;
	}
	*us = 180;
	*pages = (uint64_t)f->reset_calls;
	return 0;
}

static void fake_init(struct fake *f, struct control_ops *ops)
{
	memset(f, 0, sizeof(*f));
	f->st = (struct control_status){
		.state = CONTROL_VM_RUNNING, .vcpus = 2, .mem_mib = 512, .uptime_ms = 1234
	};
	*ops = (struct control_ops){ .ctx = f,
				     .pause = fake_pause,
				     .resume = fake_resume,
				     .snapshot = fake_snapshot,
				     .status = fake_status,
				     .checkpoint = fake_checkpoint,
				     .reset = fake_reset };
}

/* ---- control_handle_line ---- */

/* Run one line; check the answer is one line of a JSON object with a boolean "ok" that says
 * whether the return value is 0; return the answer (without its '\n') for comparison. */
static char *run_n(const struct control_ops *ops, const char *line, size_t len, int *ret)
{
	json_error_t jerr;
	json_t *ans, *ok;
	char *s;
	size_t n;

	*ret = control_handle_line(ops, line, len, &s);
	assert_non_null(s);
	n = strlen(s);
	assert_true(n >= 2);
	assert_int_equal(s[n - 1], '\n');
	assert_ptr_equal(strchr(s, '\n'), s + n - 1);
	ans = json_loadb(s, n, 0, &jerr);
	if (!ans)
		fail_msg("answer is not JSON: %s (%s)", s, jerr.text);
	assert_true(json_is_object(ans));
	ok = json_object_get(ans, "ok");
	assert_true(json_is_boolean(ok));
	assert_int_equal(json_is_true(ok), *ret == 0);
	if (!json_is_true(ok)) {
		const char *e = json_string_value(json_object_get(ans, "error"));

		assert_non_null(e);
		assert_true(*e);
		assert_null(strchr(e, '\n'));
	}
	json_decref(ans);
	s[n - 1] = '\0';
	return s;
}

static char *run(const struct control_ops *ops, const char *line, int *ret)
{
	return run_n(ops, line, strlen(line), ret);
}

/* Expect exactly `want` (without '\n') and return value `want_ret`. */
#define expect(ops, line, want_ret, want)         \
	do {                                      \
		int ret_;                         \
		char *s_ = run(ops, line, &ret_); \
		assert_string_equal(s_, want);    \
		assert_int_equal(ret_, want_ret); \
		free(s_);                         \
	} while (0)

/* Expect a failure whose error text starts with `prefix`. */
#define expect_error(ops, line, len, want_ret, prefix)                        \
	do {                                                                  \
		int ret_;                                                     \
		char *s_ = run_n(ops, line, len, &ret_);                      \
		const char *p_ = "{\"ok\":false,\"error\":\"" prefix;         \
		if (strncmp(s_, p_, strlen(p_)))                              \
			fail_msg("answer %s does not start with %s", s_, p_); \
		assert_int_equal(ret_, want_ret);                             \
		free(s_);                                                     \
	} while (0)

static void test_pause_resume(void **state)
{
	struct control_ops ops;
	struct fake f;

	fake_init(&f, &ops);
	expect(&ops, "{\"cmd\":\"pause\"}", 0, "{\"ok\":true}");
	assert_true(f.paused);
	expect(&ops, "{\"cmd\":\"pause\"}", -EALREADY,
	       "{\"ok\":false,\"error\":\"pause: already paused\"}");
	/* Whitespace anywhere JSON allows it. */
	expect(&ops, " { \"cmd\" : \"resume\" } ", 0, "{\"ok\":true}");
	assert_false(f.paused);
	assert_int_equal(f.pause_calls, 2);
	assert_int_equal(f.resume_calls, 1);
	/* A reason-less failure says strerror. */
	f.fail = -EIO;
	expect(&ops, "{\"cmd\":\"resume\"}", -EIO,
	       "{\"ok\":false,\"error\":\"resume: Input/output error\"}");
}

static void test_status(void **state)
{
	struct control_ops ops;
	struct fake f;

	fake_init(&f, &ops);
	expect(&ops, "{\"cmd\":\"status\"}", 0,
	       "{\"ok\":true,\"state\":\"running\",\"vcpus\":2,\"mem_mib\":512,\"uptime_ms\":"
	       "1234,\"net_ready\":0}");
	f.paused = true;
	f.st.vcpus = 32;
	f.st.mem_mib = 1048576;
	f.st.uptime_ms = UINT64_MAX; /* beyond JSON integers here: clamped */
	f.st.net_ready = 3;
	expect(&ops, "{\"cmd\":\"status\"}", 0,
	       "{\"ok\":true,\"state\":\"paused\",\"vcpus\":32,\"mem_mib\":1048576,"
	       "\"uptime_ms\":9223372036854775807,\"net_ready\":3}");
	f.paused = false;
	f.st.state = (enum control_vm_state)7;
	f.st.uptime_ms = 0;
	expect(&ops, "{\"cmd\":\"status\"}", 0,
	       "{\"ok\":true,\"state\":\"unknown\",\"vcpus\":32,\"mem_mib\":1048576,"
	       "\"uptime_ms\":0,\"net_ready\":3}");
	f.fail = -EBUSY;
	f.fail_msg = "vCPUs are being restored";
	expect(&ops, "{\"cmd\":\"status\"}", -EBUSY,
	       "{\"ok\":false,\"error\":\"status: vCPUs are being restored\"}");
	assert_int_equal(f.status_calls, 4);
}

/* checkpoint and reset: fields, the reset's figures, failures passed through, extra fields
 * refused like every command's. */
static void test_checkpoint_reset(void **state)
{
	struct control_ops ops;
	struct fake f;

	fake_init(&f, &ops);
	expect(&ops, "{\"cmd\":\"reset\"}", -ENOENT,
	       "{\"ok\":false,\"error\":\"reset: no checkpoint\"}");
	expect(&ops, "{\"cmd\":\"checkpoint\"}", 0, "{\"ok\":true}");
	assert_true(f.has_checkpoint);
	expect(&ops, "{\"cmd\":\"reset\"}", 0, "{\"ok\":true,\"reset_us\":180,\"pages\":2}");
	expect_error(&ops, "{\"cmd\":\"reset\",\"dir\":\"/x\"}",
		     strlen("{\"cmd\":\"reset\",\"dir\":\"/x\"}"), -EINVAL, "reset: ");
	f.fail = -ENOTSUP;
	f.fail_msg = "checkpoints need --track-dirty";
	expect(&ops, "{\"cmd\":\"checkpoint\"}", -ENOTSUP,
	       "{\"ok\":false,\"error\":\"checkpoint: checkpoints need --track-dirty\"}");
	assert_int_equal(f.checkpoint_calls, 2);
	assert_int_equal(f.reset_calls, 2);
	ops = (struct control_ops){ 0 };
	expect(&ops, "{\"cmd\":\"checkpoint\"}", -EOPNOTSUPP,
	       "{\"ok\":false,\"error\":\"checkpoint: not supported\"}");
	expect(&ops, "{\"cmd\":\"reset\"}", -EOPNOTSUPP,
	       "{\"ok\":false,\"error\":\"reset: not supported\"}");
}

static void test_snapshot(void **state)
{
	struct control_ops ops;
	struct fake f;

	fake_init(&f, &ops);
	expect(&ops, "{\"cmd\":\"snapshot\",\"dir\":\"/tmp/s1\"}", 0,
	       "{\"ok\":true,\"dir\":\"/tmp/s1\"}");
	assert_false(f.snap_dir_null);
	assert_string_equal(f.snap_dir, "/tmp/s1");
	/* No dir, or null: the creator's default, which the answer names. */
	expect(&ops, "{\"cmd\":\"snapshot\"}", 0, "{\"ok\":true,\"dir\":\"/var/snap/1\"}");
	assert_true(f.snap_dir_null);
	expect(&ops, "{\"dir\":null,\"cmd\":\"snapshot\"}", 0,
	       "{\"ok\":true,\"dir\":\"/var/snap/1\"}");
	assert_true(f.snap_dir_null);
	/* Escapes are decoded before the callback sees the path, and encoded again. */
	expect(&ops, "{\"cmd\":\"snapshot\",\"dir\":\"/s/caf\\u00e9 \\\"q\\\"\"}", 0,
	       "{\"ok\":true,\"dir\":\"/s/caf\xc3\xa9 \\\"q\\\"\"}");
	assert_string_equal(f.snap_dir, "/s/caf\xc3\xa9 \"q\"");
	/* The directory the callback says it wrote wins, made valid UTF-8 if it is not. */
	f.snap_out = "/s/x\xff";
	expect(&ops, "{\"cmd\":\"snapshot\",\"dir\":\"/s/x\"}", 0,
	       "{\"ok\":true,\"dir\":\"/s/x?\"}");
	f.snap_out = "";
	expect(&ops, "{\"cmd\":\"snapshot\",\"dir\":\"/s/y\"}", 0,
	       "{\"ok\":true,\"dir\":\"/s/y\"}");
	f.snap_out = NULL;
	/* A path is given back as it is, control characters and all (JSON escapes them). */
	expect(&ops, "{\"cmd\":\"snapshot\",\"dir\":\"/s/a\\nb\\u0001\"}", 0,
	       "{\"ok\":true,\"dir\":\"/s/a\\nb\\u0001\"}");
	assert_string_equal(f.snap_dir, "/s/a\nb\x01");
	f.fail = -ENOSPC;
	expect(&ops, "{\"cmd\":\"snapshot\",\"dir\":\"/full\"}", -ENOSPC,
	       "{\"ok\":false,\"error\":\"snapshot: No space left on device\"}");
	assert_int_equal(f.snapshot_calls, 8);
}

/* ---- the display commands, against a fake display ---- */

#define NO_DISPLAY "this VM has no display (start it with --gui, --vnc or --gpu)"

struct gfake {
	bool has_display, active;
	uint32_t w, h;
	uint64_t serial;
	int calls; /* every op */
	char path[CONTROL_PATH_MAX];
	char text[CONTROL_TYPE_MAX];
	char keys[CONTROL_KEYS_MAX];
	uint32_t ptr[8][3]; /* pointer calls: x, y, buttons */
	int nr_ptr;
	int ptr_fail_at; /* the pointer call (1-based) that fails; 0: none */
	uint32_t rw, rh;
};

static int no_display(struct gfake *g, char *err, size_t n)
{
	g->calls++;
	if (g->has_display)
		return 0;
	snprintf(err, n, NO_DISPLAY);
	return -ENODEV;
}

static int gf_screenshot(void *ctx, const char *path, uint32_t *w, uint32_t *h, char *err, size_t n)
{
	struct gfake *g = ctx;
	int ret = no_display(g, err, n);

	if (ret)
		return ret;
	snprintf(g->path, sizeof(g->path), "%s", path);
	if (!g->active) {
		snprintf(err, n, "the guest has not set a display mode yet");
		return -EAGAIN;
	}
	*w = g->w;
	*h = g->h;
	return 0;
}

static int gf_display(void *ctx, struct control_display *d, char *err, size_t n)
{
	struct gfake *g = ctx;
	int ret = no_display(g, err, n);

	if (ret)
		return ret;
	*d = (struct control_display){ .active = g->active,
				       /* an inactive display's stale size must not show */
				       .width = g->w,
				       .height = g->h,
				       .serial = g->serial };
	return 0;
}

static int gf_type(void *ctx, const char *text, char *err, size_t n)
{
	struct gfake *g = ctx;
	int ret = no_display(g, err, n);

	if (ret)
		return ret;
	snprintf(g->text, sizeof(g->text), "%s", text);
	if (strchr(text, '\x7f')) {
		snprintf(err, n, "cannot type character 0x7f");
		return -EINVAL;
	}
	return 0;
}

static int gf_key(void *ctx, const char *keys, char *err, size_t n)
{
	struct gfake *g = ctx;
	int ret = no_display(g, err, n);

	if (ret)
		return ret;
	snprintf(g->keys, sizeof(g->keys), "%s", keys);
	if (strstr(keys, "hyper")) {
		snprintf(err, n, "unknown key \"hyper\"");
		return -EINVAL;
	}
	return 0;
}

static int gf_pointer(void *ctx, uint32_t x, uint32_t y, uint32_t buttons, char *err, size_t n)
{
	struct gfake *g = ctx;
	int ret = no_display(g, err, n);

	if (ret)
		return ret;
	assert_true(g->nr_ptr < 8);
	g->ptr[g->nr_ptr][0] = x;
	g->ptr[g->nr_ptr][1] = y;
	g->ptr[g->nr_ptr][2] = buttons;
	if (++g->nr_ptr == g->ptr_fail_at) {
		snprintf(err, n, "the tablet's queue is full");
		return -EAGAIN;
	}
	return 0;
}

static int gf_resize(void *ctx, uint32_t w, uint32_t h, char *err, size_t n)
{
	struct gfake *g = ctx;
	int ret = no_display(g, err, n);

	if (ret)
		return ret;
	g->rw = w;
	g->rh = h;
	return 0;
}

static void gfake_init(struct gfake *g, struct control_ops *ops)
{
	memset(g, 0, sizeof(*g));
	g->has_display = g->active = true;
	g->w = 1280;
	g->h = 800;
	g->serial = 42;
	*ops = (struct control_ops){ .ctx = g,
				     .screenshot = gf_screenshot,
				     .display = gf_display,
				     .type = gf_type,
				     .key = gf_key,
				     .pointer = gf_pointer,
				     .resize = gf_resize };
}

static void test_screenshot(void **state)
{
	struct control_ops ops;
	struct gfake g;
	static char line[CONTROL_PATH_MAX + 64];

	gfake_init(&g, &ops);
	expect(&ops, "{\"cmd\":\"screenshot\",\"path\":\"/tmp/s.png\"}", 0,
	       "{\"ok\":true,\"path\":\"/tmp/s.png\",\"width\":1280,\"height\":800}");
	assert_string_equal(g.path, "/tmp/s.png");
	expect(&ops, "{\"path\":\"rel/caf\\u00e9.png\",\"cmd\":\"screenshot\"}", 0,
	       "{\"ok\":true,\"path\":\"rel/caf\xc3\xa9.png\",\"width\":1280,\"height\":800}");
	assert_string_equal(g.path, "rel/caf\xc3\xa9.png");
	assert_int_equal(g.calls, 2);
	/* Arguments checked before the op runs. */
	expect(&ops, "{\"cmd\":\"screenshot\"}", -EINVAL,
	       "{\"ok\":false,\"error\":\"screenshot: \\\"path\\\" is missing\"}");
	expect(&ops, "{\"cmd\":\"screenshot\",\"path\":null}", -EINVAL,
	       "{\"ok\":false,\"error\":\"screenshot: \\\"path\\\" must be a string, got "
	       "null\"}");
	expect(&ops, "{\"cmd\":\"screenshot\",\"path\":7}", -EINVAL,
	       "{\"ok\":false,\"error\":\"screenshot: \\\"path\\\" must be a string, got a "
	       "number\"}");
	expect(&ops, "{\"cmd\":\"screenshot\",\"path\":\"\"}", -EINVAL,
	       "{\"ok\":false,\"error\":\"screenshot: \\\"path\\\" is empty\"}");
	expect(&ops, "{\"cmd\":\"screenshot\",\"path\":\"/a\",\"dir\":\"/b\"}", -EINVAL,
	       "{\"ok\":false,\"error\":\"screenshot: unknown field \\\"dir\\\"\"}");
	{
		const char pre[] = "{\"cmd\":\"screenshot\",\"path\":\"";
		size_t k = sizeof(pre) - 1;
		int ret;
		char *s;

		memcpy(line, pre, k);
		memset(line + k, 'p', CONTROL_PATH_MAX);
		memcpy(line + k + CONTROL_PATH_MAX, "\"}", 3);
		expect_error(&ops, line, strlen(line), -ENAMETOOLONG,
			     "screenshot: \\\"path\\\" is longer than 4095 bytes");
		/* 4095 bytes: taken. */
		memcpy(line + k + CONTROL_PATH_MAX - 1, "\"}", 3);
		s = run(&ops, line, &ret);
		assert_int_equal(ret, 0);
		assert_int_equal(strlen(g.path), CONTROL_PATH_MAX - 1);
		free(s);
	}
	assert_int_equal(g.calls, 3);
	/* No mode yet: the op's reason. */
	g.active = false;
	expect(&ops, "{\"cmd\":\"screenshot\",\"path\":\"/tmp/s.png\"}", -EAGAIN,
	       "{\"ok\":false,\"error\":\"screenshot: the guest has not set a display mode "
	       "yet\"}");
}

static void test_display(void **state)
{
	struct control_ops ops;
	struct gfake g;

	gfake_init(&g, &ops);
	expect(&ops, "{\"cmd\":\"display\"}", 0,
	       "{\"ok\":true,\"active\":true,\"width\":1280,\"height\":800,\"serial\":42}");
	g.serial = UINT64_MAX;
	g.w = 3840;
	g.h = 2160;
	expect(&ops, "{\"cmd\":\"display\"}", 0,
	       "{\"ok\":true,\"active\":true,\"width\":3840,\"height\":2160,"
	       "\"serial\":9223372036854775807}");
	/* Inactive: no size, whatever the op left in it. */
	g.active = false;
	g.serial = 7;
	expect(&ops, "{\"cmd\":\"display\"}", 0,
	       "{\"ok\":true,\"active\":false,\"width\":0,\"height\":0,\"serial\":7}");
	expect(&ops, "{\"cmd\":\"display\",\"wait\":1}", -EINVAL,
	       "{\"ok\":false,\"error\":\"display: unknown field \\\"wait\\\"\"}");
	assert_int_equal(g.calls, 3);
}

static void test_type_key(void **state)
{
	struct control_ops ops;
	struct gfake g;
	static char line[CONTROL_TYPE_MAX + 64];

	gfake_init(&g, &ops);
	expect(&ops, "{\"cmd\":\"type\",\"text\":\"echo ignition-$((6*7))\\n\"}", 0,
	       "{\"ok\":true}");
	assert_string_equal(g.text, "echo ignition-$((6*7))\n");
	expect(&ops, "{\"cmd\":\"key\",\"keys\":\"ctrl+alt+t\"}", 0, "{\"ok\":true}");
	assert_string_equal(g.keys, "ctrl+alt+t");
	/* The op's refusal, passed on. */
	expect(&ops, "{\"cmd\":\"type\",\"text\":\"a\\u007fb\"}", -EINVAL,
	       "{\"ok\":false,\"error\":\"type: cannot type character 0x7f\"}");
	expect(&ops, "{\"cmd\":\"key\",\"keys\":\"hyper+a\"}", -EINVAL,
	       "{\"ok\":false,\"error\":\"key: unknown key \\\"hyper\\\"\"}");
	assert_int_equal(g.calls, 4);
	/* Types, emptiness, lengths, field names. */
	expect(&ops, "{\"cmd\":\"type\"}", -EINVAL,
	       "{\"ok\":false,\"error\":\"type: \\\"text\\\" is missing\"}");
	expect(&ops, "{\"cmd\":\"type\",\"text\":[\"a\"]}", -EINVAL,
	       "{\"ok\":false,\"error\":\"type: \\\"text\\\" must be a string, got an array\"}");
	expect(&ops, "{\"cmd\":\"type\",\"text\":\"\"}", -EINVAL,
	       "{\"ok\":false,\"error\":\"type: \\\"text\\\" is empty\"}");
	expect(&ops, "{\"cmd\":\"type\",\"keys\":\"a\"}", -EINVAL,
	       "{\"ok\":false,\"error\":\"type: unknown field \\\"keys\\\"\"}");
	expect(&ops, "{\"cmd\":\"key\",\"keys\":true}", -EINVAL,
	       "{\"ok\":false,\"error\":\"key: \\\"keys\\\" must be a string, got a boolean\"}");
	expect(&ops, "{\"cmd\":\"key\",\"key\":\"a\"}", -EINVAL,
	       "{\"ok\":false,\"error\":\"key: unknown field \\\"key\\\"\"}");
	expect(&ops, "{\"cmd\":\"key\"}", -EINVAL,
	       "{\"ok\":false,\"error\":\"key: \\\"keys\\\" is missing\"}");
	/* Escaped NUL would cut the text short: refused by the parser. */
	expect_error(&ops, "{\"cmd\":\"type\",\"text\":\"a\\u0000b\"}",
		     strlen("{\"cmd\":\"type\",\"text\":\"a\\u0000b\"}"), -EINVAL,
		     "invalid JSON at byte ");
	memcpy(line, "{\"cmd\":\"type\",\"text\":\"", 22);
	memset(line + 22, 'x', CONTROL_TYPE_MAX);
	memcpy(line + 22 + CONTROL_TYPE_MAX, "\"}", 3);
	expect_error(&ops, line, strlen(line), -E2BIG,
		     "type: \\\"text\\\" is longer than 4095 bytes");
	memset(line + 22 + CONTROL_KEYS_MAX, '"', 1);
	memcpy(line + 23 + CONTROL_KEYS_MAX, "}", 2);
	memcpy(line, "{\"cmd\":\"key\",\"keys\":\"x", 22);
	expect_error(&ops, line, strlen(line), -E2BIG,
		     "key: \\\"keys\\\" is longer than 255 bytes");
	assert_int_equal(g.calls, 4);
	/* No display: every op says so, after its arguments were found good. */
	g.has_display = false;
	expect(&ops, "{\"cmd\":\"type\",\"text\":\"a\"}", -ENODEV,
	       "{\"ok\":false,\"error\":\"type: " NO_DISPLAY "\"}");
	expect(&ops, "{\"cmd\":\"key\",\"keys\":\"Return\"}", -ENODEV,
	       "{\"ok\":false,\"error\":\"key: " NO_DISPLAY "\"}");
	expect(&ops, "{\"cmd\":\"screenshot\",\"path\":\"/x.png\"}", -ENODEV,
	       "{\"ok\":false,\"error\":\"screenshot: " NO_DISPLAY "\"}");
	expect(&ops, "{\"cmd\":\"display\"}", -ENODEV,
	       "{\"ok\":false,\"error\":\"display: " NO_DISPLAY "\"}");
	expect(&ops, "{\"cmd\":\"pointer\",\"x\":1,\"y\":1}", -ENODEV,
	       "{\"ok\":false,\"error\":\"pointer: " NO_DISPLAY "\"}");
	expect(&ops, "{\"cmd\":\"click\",\"x\":1,\"y\":1}", -ENODEV,
	       "{\"ok\":false,\"error\":\"click: " NO_DISPLAY "\"}");
	expect(&ops, "{\"cmd\":\"resize\",\"width\":640,\"height\":480}", -ENODEV,
	       "{\"ok\":false,\"error\":\"resize: " NO_DISPLAY "\"}");
}

static void test_pointer_click(void **state)
{
	struct control_ops ops;
	struct gfake g;

	gfake_init(&g, &ops);
	expect(&ops, "{\"cmd\":\"pointer\",\"x\":10,\"y\":20,\"buttons\":5}", 0, "{\"ok\":true}");
	/* buttons is optional: nothing held. */
	expect(&ops, "{\"cmd\":\"pointer\",\"y\":2159,\"x\":3839}", 0, "{\"ok\":true}");
	assert_int_equal(g.nr_ptr, 2);
	assert_int_equal(g.ptr[0][0], 10);
	assert_int_equal(g.ptr[0][1], 20);
	assert_int_equal(g.ptr[0][2], CONTROL_BUTTON_LEFT | CONTROL_BUTTON_MIDDLE);
	assert_int_equal(g.ptr[1][0], 3839);
	assert_int_equal(g.ptr[1][1], 2159);
	assert_int_equal(g.ptr[1][2], 0);
	/* click: move, press, release at the same place. */
	g.nr_ptr = 0;
	expect(&ops, "{\"cmd\":\"click\",\"x\":100,\"y\":200,\"button\":\"right\"}", 0,
	       "{\"ok\":true}");
	assert_int_equal(g.nr_ptr, 3);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(g.ptr[i][0], 100);
		assert_int_equal(g.ptr[i][1], 200);
		assert_int_equal(g.ptr[i][2], i == 1 ? CONTROL_BUTTON_RIGHT : 0);
	}
	g.nr_ptr = 0;
	expect(&ops, "{\"cmd\":\"click\",\"x\":0,\"y\":0}", 0, "{\"ok\":true}");
	assert_int_equal(g.ptr[1][2], CONTROL_BUTTON_LEFT);
	g.nr_ptr = 0;
	expect(&ops, "{\"cmd\":\"click\",\"x\":0,\"y\":0,\"button\":\"middle\"}", 0,
	       "{\"ok\":true}");
	assert_int_equal(g.ptr[1][2], CONTROL_BUTTON_MIDDLE);
	/* A failing press stops the click there (no release of a button never pressed). */
	g.nr_ptr = 0;
	g.ptr_fail_at = 2;
	expect(&ops, "{\"cmd\":\"click\",\"x\":1,\"y\":2}", -EAGAIN,
	       "{\"ok\":false,\"error\":\"click: the tablet's queue is full\"}");
	assert_int_equal(g.nr_ptr, 2);
	g.ptr_fail_at = 0;
	g.nr_ptr = 0;
	/* Ranges and types. */
	expect(&ops, "{\"cmd\":\"pointer\",\"x\":3840,\"y\":0}", -EINVAL,
	       "{\"ok\":false,\"error\":\"pointer: \\\"x\\\" must be 0 to 3839, got 3840\"}");
	expect(&ops, "{\"cmd\":\"pointer\",\"x\":0,\"y\":2160}", -EINVAL,
	       "{\"ok\":false,\"error\":\"pointer: \\\"y\\\" must be 0 to 2159, got 2160\"}");
	expect(&ops, "{\"cmd\":\"pointer\",\"x\":-1,\"y\":0}", -EINVAL,
	       "{\"ok\":false,\"error\":\"pointer: \\\"x\\\" must be 0 to 3839, got -1\"}");
	expect(&ops, "{\"cmd\":\"pointer\",\"x\":1.5,\"y\":0}", -EINVAL,
	       "{\"ok\":false,\"error\":\"pointer: \\\"x\\\" must be an integer, got a "
	       "number\"}");
	expect(&ops, "{\"cmd\":\"pointer\",\"x\":\"1\",\"y\":0}", -EINVAL,
	       "{\"ok\":false,\"error\":\"pointer: \\\"x\\\" must be an integer, got a "
	       "string\"}");
	/* Beyond 64 bits: jansson refuses the number itself. */
	expect_error(&ops, "{\"cmd\":\"pointer\",\"x\":99999999999999999999,\"y\":0}",
		     strlen("{\"cmd\":\"pointer\",\"x\":99999999999999999999,\"y\":0}"), -EINVAL,
		     "invalid JSON at byte ");
	expect(&ops, "{\"cmd\":\"pointer\",\"x\":9223372036854775807,\"y\":0}", -EINVAL,
	       "{\"ok\":false,\"error\":\"pointer: \\\"x\\\" must be 0 to 3839, got "
	       "9223372036854775807\"}");
	expect(&ops, "{\"cmd\":\"pointer\",\"y\":0}", -EINVAL,
	       "{\"ok\":false,\"error\":\"pointer: \\\"x\\\" is missing\"}");
	expect(&ops, "{\"cmd\":\"pointer\",\"x\":0}", -EINVAL,
	       "{\"ok\":false,\"error\":\"pointer: \\\"y\\\" is missing\"}");
	expect(&ops, "{\"cmd\":\"pointer\",\"x\":0,\"y\":0,\"buttons\":8}", -EINVAL,
	       "{\"ok\":false,\"error\":\"pointer: \\\"buttons\\\" must be 0 to 7, got 8\"}");
	expect(&ops, "{\"cmd\":\"pointer\",\"x\":0,\"y\":0,\"buttons\":\"left\"}", -EINVAL,
	       "{\"ok\":false,\"error\":\"pointer: \\\"buttons\\\" must be an integer, got a "
	       "string\"}");
	expect(&ops, "{\"cmd\":\"pointer\",\"x\":0,\"y\":0,\"button\":\"left\"}", -EINVAL,
	       "{\"ok\":false,\"error\":\"pointer: unknown field \\\"button\\\"\"}");
	expect(&ops, "{\"cmd\":\"click\",\"x\":0,\"y\":0,\"button\":\"LEFT\"}", -EINVAL,
	       "{\"ok\":false,\"error\":\"click: \\\"button\\\" must be left, right or middle, "
	       "got \\\"LEFT\\\"\"}");
	expect(&ops, "{\"cmd\":\"click\",\"x\":0,\"y\":0,\"button\":1}", -EINVAL,
	       "{\"ok\":false,\"error\":\"click: \\\"button\\\" must be a string, got a "
	       "number\"}");
	expect(&ops, "{\"cmd\":\"click\",\"x\":0,\"y\":0,\"buttons\":1}", -EINVAL,
	       "{\"ok\":false,\"error\":\"click: unknown field \\\"buttons\\\"\"}");
	expect(&ops, "{\"cmd\":\"click\",\"x\":0}", -EINVAL,
	       "{\"ok\":false,\"error\":\"click: \\\"y\\\" is missing\"}");
	assert_int_equal(g.nr_ptr, 0);
}

static void test_resize(void **state)
{
	struct control_ops ops;
	struct gfake g;

	gfake_init(&g, &ops);
	expect(&ops, "{\"cmd\":\"resize\",\"width\":1024,\"height\":768}", 0, "{\"ok\":true}");
	assert_int_equal(g.rw, 1024);
	assert_int_equal(g.rh, 768);
	expect(&ops, "{\"cmd\":\"resize\",\"width\":64,\"height\":64}", 0, "{\"ok\":true}");
	expect(&ops, "{\"cmd\":\"resize\",\"width\":3840,\"height\":2160}", 0, "{\"ok\":true}");
	assert_int_equal(g.rw, 3840);
	assert_int_equal(g.rh, 2160);
	assert_int_equal(g.calls, 3);
	expect(&ops, "{\"cmd\":\"resize\",\"width\":63,\"height\":768}", -EINVAL,
	       "{\"ok\":false,\"error\":\"resize: \\\"width\\\" must be 64 to 3840, got 63\"}");
	expect(&ops, "{\"cmd\":\"resize\",\"width\":1024,\"height\":2161}", -EINVAL,
	       "{\"ok\":false,\"error\":\"resize: \\\"height\\\" must be 64 to 2160, got "
	       "2161\"}");
	expect(&ops, "{\"cmd\":\"resize\",\"width\":1024}", -EINVAL,
	       "{\"ok\":false,\"error\":\"resize: \\\"height\\\" is missing\"}");
	expect(&ops, "{\"cmd\":\"resize\",\"width\":\"1024\",\"height\":768}", -EINVAL,
	       "{\"ok\":false,\"error\":\"resize: \\\"width\\\" must be an integer, got a "
	       "string\"}");
	expect(&ops, "{\"cmd\":\"resize\",\"width\":1024,\"height\":768,\"depth\":24}", -EINVAL,
	       "{\"ok\":false,\"error\":\"resize: unknown field \\\"depth\\\"\"}");
	assert_int_equal(g.calls, 3);
	/* A creator without display ops: not supported, arguments or not. */
	ops = (struct control_ops){ 0 };
	expect(&ops, "{\"cmd\":\"resize\",\"width\":1,\"height\":1}", -EOPNOTSUPP,
	       "{\"ok\":false,\"error\":\"resize: not supported\"}");
	expect(&ops, "{\"cmd\":\"screenshot\",\"path\":\"/x\"}", -EOPNOTSUPP,
	       "{\"ok\":false,\"error\":\"screenshot: not supported\"}");
	expect(&ops, "{\"cmd\":\"display\"}", -EOPNOTSUPP,
	       "{\"ok\":false,\"error\":\"display: not supported\"}");
	expect(&ops, "{\"cmd\":\"type\",\"text\":\"a\"}", -EOPNOTSUPP,
	       "{\"ok\":false,\"error\":\"type: not supported\"}");
	expect(&ops, "{\"cmd\":\"key\",\"keys\":\"a\"}", -EOPNOTSUPP,
	       "{\"ok\":false,\"error\":\"key: not supported\"}");
	expect(&ops, "{\"cmd\":\"pointer\",\"x\":0,\"y\":0}", -EOPNOTSUPP,
	       "{\"ok\":false,\"error\":\"pointer: not supported\"}");
	expect(&ops, "{\"cmd\":\"click\",\"x\":0,\"y\":0}", -EOPNOTSUPP,
	       "{\"ok\":false,\"error\":\"click: not supported\"}");
}

static void test_bad_json(void **state)
{
	static const char *const lines[] = {
		"{\"cmd\":",
		"not json",
		"{\"cmd\":\"pause\"} trailing",
		"{\"cmd\":\"pause\",}",
		"{cmd:1}",
		"{\"cmd\":\"pause\"}{\"cmd\":\"pause\"}",
		"\"unterminated",
	};
	const char *dup = "{\"cmd\":\"status\",\"cmd\":\"pause\"}";
	struct control_ops ops;
	struct fake f;

	fake_init(&f, &ops);
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
		expect_error(&ops, lines[i], strlen(lines[i]), -EINVAL, "invalid JSON at byte ");
	expect(&ops, "{\"cmd\":\"pause\"} x", -EINVAL,
	       "{\"ok\":false,\"error\":\"invalid JSON at byte 17: end of file expected near "
	       "'x'\"}");
	/* An empty line (the socket never passes one) and a key given twice. */
	expect_error(&ops, "", 0, -EINVAL, "invalid JSON at byte 0: ");
	expect_error(&ops, dup, strlen(dup), -EINVAL, "invalid JSON at byte ");
	/* Bytes that are not UTF-8 are refused by jansson, and not echoed raw. */
	expect_error(&ops, "{\"cmd\":\"\xff\"}", 11, -EINVAL, "invalid JSON at byte ");
	assert_int_equal(f.pause_calls + f.resume_calls + f.snapshot_calls + f.status_calls, 0);
}

static void test_not_an_object(void **state)
{
	struct control_ops ops;
	struct fake f;

	fake_init(&f, &ops);
	expect(&ops, "[\"pause\"]", -EINVAL,
	       "{\"ok\":false,\"error\":\"a command is a JSON object, got an array\"}");
	expect(&ops, "\"pause\"", -EINVAL,
	       "{\"ok\":false,\"error\":\"a command is a JSON object, got a string\"}");
	expect(&ops, "42", -EINVAL,
	       "{\"ok\":false,\"error\":\"a command is a JSON object, got a number\"}");
	expect(&ops, "null", -EINVAL,
	       "{\"ok\":false,\"error\":\"a command is a JSON object, got null\"}");
	expect(&ops, "{}", -EINVAL, "{\"ok\":false,\"error\":\"missing \\\"cmd\\\"\"}");
	expect(&ops, "{\"dir\":\"/x\"}", -EINVAL,
	       "{\"ok\":false,\"error\":\"missing \\\"cmd\\\"\"}");
	assert_int_equal(f.pause_calls + f.resume_calls + f.snapshot_calls + f.status_calls, 0);
}

static void test_wrong_types(void **state)
{
	struct control_ops ops;
	struct fake f;

	fake_init(&f, &ops);
	expect(&ops, "{\"cmd\":1}", -EINVAL,
	       "{\"ok\":false,\"error\":\"\\\"cmd\\\" must be a string, got a number\"}");
	expect(&ops, "{\"cmd\":[\"pause\"]}", -EINVAL,
	       "{\"ok\":false,\"error\":\"\\\"cmd\\\" must be a string, got an array\"}");
	expect(&ops, "{\"cmd\":null}", -EINVAL,
	       "{\"ok\":false,\"error\":\"\\\"cmd\\\" must be a string, got null\"}");
	expect(&ops, "{\"cmd\":true}", -EINVAL,
	       "{\"ok\":false,\"error\":\"\\\"cmd\\\" must be a string, got a boolean\"}");
	expect(&ops, "{\"cmd\":\"snapshot\",\"dir\":5}", -EINVAL,
	       "{\"ok\":false,\"error\":\"snapshot: \\\"dir\\\" must be a string or null, got a "
	       "number\"}");
	expect(&ops, "{\"cmd\":\"snapshot\",\"dir\":{}}", -EINVAL,
	       "{\"ok\":false,\"error\":\"snapshot: \\\"dir\\\" must be a string or null, got an "
	       "object\"}");
	expect(&ops, "{\"cmd\":\"snapshot\",\"dir\":\"\"}", -EINVAL,
	       "{\"ok\":false,\"error\":\"snapshot: \\\"dir\\\" is empty\"}");
	assert_int_equal(f.snapshot_calls, 0);
}

static void test_unknown(void **state)
{
	struct control_ops ops;
	struct fake f;
	char line[1100], *s;
	int ret;

	fake_init(&f, &ops);
	expect(&ops, "{\"cmd\":\"reboot\"}", -EINVAL,
	       "{\"ok\":false,\"error\":\"unknown command \\\"reboot\\\" (known: pause, resume, "
	       "snapshot, status, checkpoint, reset, kvm_stats, screenshot, display, type, key, "
	       "pointer, click, resize)\"}");
	expect(&ops, "{\"cmd\":\"PAUSE\"}", -EINVAL,
	       "{\"ok\":false,\"error\":\"unknown command \\\"PAUSE\\\" (known: pause, resume, "
	       "snapshot, status, checkpoint, reset, kvm_stats, screenshot, display, type, key, "
	       "pointer, click, resize)\"}");
	/* Fields are checked per command: a typo is not silently ignored. */
	expect(&ops, "{\"cmd\":\"snapshot\",\"dri\":\"/x\"}", -EINVAL,
	       "{\"ok\":false,\"error\":\"snapshot: unknown field \\\"dri\\\"\"}");
	expect(&ops, "{\"cmd\":\"pause\",\"dir\":\"/x\"}", -EINVAL,
	       "{\"ok\":false,\"error\":\"pause: unknown field \\\"dir\\\"\"}");
	/* A long name is cut short in the message, and a control character in it kept out. */
	memcpy(line, "{\"cmd\":\"\\n", 10);
	memset(line + 10, 'a', 1000);
	memcpy(line + 1010, "\"}", 3);
	s = run(&ops, line, &ret);
	assert_int_equal(ret, -EINVAL);
	assert_true(strlen(s) < 250);
	assert_non_null(strstr(s, "unknown command \\\" aaaa"));
	assert_non_null(strstr(s, "aaa...\\\" (known: "));
	free(s);
	assert_int_equal(f.pause_calls + f.resume_calls + f.snapshot_calls + f.status_calls, 0);
}

static void test_huge_line(void **state)
{
	static char line[CONTROL_LINE_MAX + 2];
	const char cmd[] = "{\"cmd\":\"status\"}";
	struct control_ops ops;
	struct fake f;

	fake_init(&f, &ops);
	/* Exactly the limit passes (padding is JSON whitespace), one byte more does not. */
	memset(line, ' ', sizeof(line));
	memcpy(line, cmd, sizeof(cmd) - 1);
	expect_error(&ops, line, CONTROL_LINE_MAX + 1, -EMSGSIZE,
		     "command line longer than 65536 bytes\"");
	assert_int_equal(f.status_calls, 0);
	{
		int ret;
		char *s = run_n(&ops, line, CONTROL_LINE_MAX, &ret);

		assert_int_equal(ret, 0);
		free(s);
	}
	assert_int_equal(f.status_calls, 1);
	/* A snapshot path longer than PATH_MAX. */
	memcpy(line, "{\"cmd\":\"snapshot\",\"dir\":\"", 25);
	memset(line + 25, 'd', CONTROL_PATH_MAX);
	memcpy(line + 25 + CONTROL_PATH_MAX, "\"}", 2);
	expect_error(&ops, line, 27 + CONTROL_PATH_MAX, -ENAMETOOLONG,
		     "snapshot: \\\"dir\\\" is longer than 4095 bytes");
	assert_int_equal(f.snapshot_calls, 0);
}

static void test_embedded_nul(void **state)
{
	static const char raw[] = "{\"cmd\":\"pa\0use\"}";
	static const char after[] = "{\"cmd\":\"pause\"}\0";
	const char *esc = "{\"cmd\":\"snapshot\",\"dir\":\"/a\\u0000/b\"}";
	struct control_ops ops;
	struct fake f;

	fake_init(&f, &ops);
	/* A NUL byte in the line, inside a string or after the object. */
	expect_error(&ops, raw, sizeof(raw) - 1, -EINVAL, "invalid JSON at byte ");
	expect_error(&ops, after, sizeof(after) - 1, -EINVAL, "invalid JSON at byte ");
	/* An escaped one would cut the path short: jansson refuses it. */
	expect_error(&ops, esc, strlen(esc), -EINVAL, "invalid JSON at byte ");
	/* Without the NUL the same bytes are a command. */
	expect(&ops, "{\"cmd\":\"pause\"}", 0, "{\"ok\":true}");
	assert_int_equal(f.pause_calls, 1);
	assert_int_equal(f.snapshot_calls, 0);
}

static void test_not_supported(void **state)
{
	struct control_ops ops = { 0 };

	expect(&ops, "{\"cmd\":\"pause\"}", -EOPNOTSUPP,
	       "{\"ok\":false,\"error\":\"pause: not supported\"}");
	expect(&ops, "{\"cmd\":\"resume\"}", -EOPNOTSUPP,
	       "{\"ok\":false,\"error\":\"resume: not supported\"}");
	expect(&ops, "{\"cmd\":\"snapshot\",\"dir\":\"/x\"}", -EOPNOTSUPP,
	       "{\"ok\":false,\"error\":\"snapshot: not supported\"}");
	expect(&ops, "{\"cmd\":\"status\"}", -EOPNOTSUPP,
	       "{\"ok\":false,\"error\":\"status: not supported\"}");
}

static int bad_reason(void *ctx, char *err, size_t n)
{
	/* Several lines, a byte that is not UTF-8, and no NUL in the whole buffer. */
	memset(err, 'z', n);
	memcpy(err, "disk\nfull\t\xc3(", 12);
	return -ENOSPC;
}

static int positive(void *ctx, char *err, size_t n)
{
	return 1;
}

static void test_callback_reasons_cleaned(void **state)
{
	struct control_ops ops = { .pause = bad_reason, .resume = positive };
	int ret;
	char *s = run(&ops, "{\"cmd\":\"pause\"}", &ret);

	assert_int_equal(ret, -ENOSPC);
	assert_non_null(strstr(s, "\"error\":\"pause: disk full ?(zzz"));
	assert_true(strlen(s) < CONTROL_ERR_MAX + 64);
	free(s);
	expect(&ops, "{\"cmd\":\"resume\"}", -EIO,
	       "{\"ok\":false,\"error\":\"resume: Input/output error\"}");
}

/* ---- the socket ---- */

struct served {
	struct evloop ev;
	struct control_ops ops;
	struct fake f;
	struct control *c;
	pthread_t th;
	char dir[64];
	char path[128];
};

static void *loop_thread(void *arg)
{
	return (void *)(intptr_t)evloop_run(arg);
}

static void make_dir(char *dir, size_t n)
{
	snprintf(dir, n, "/tmp/ign-control-XXXXXX");
	assert_non_null(mkdtemp(dir));
}

static void serve(struct served *s)
{
	memset(s, 0, sizeof(*s));
	fake_init(&s->f, &s->ops);
	make_dir(s->dir, sizeof(s->dir));
	snprintf(s->path, sizeof(s->path), "%s/ctl.sock", s->dir);
	assert_int_equal(evloop_init(&s->ev), 0);
	assert_int_equal(control_create(&s->ev, s->path, &s->ops, &s->c), 0);
	assert_int_equal(pthread_create(&s->th, NULL, loop_thread, &s->ev), 0);
}

static void unserve(struct served *s)
{
	void *ret;

	evloop_stop(&s->ev);
	pthread_join(s->th, &ret);
	assert_int_equal((intptr_t)ret, 0);
	control_destroy(s->c);
	assert_int_equal(access(s->path, F_OK), -1);
	assert_int_equal(errno, ENOENT);
	evloop_destroy(&s->ev);
	assert_int_equal(rmdir(s->dir), 0);
}

/* A blocking client with a 10 s receive timeout (a safety net: no test waits that long). */
static int client(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = 10 };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	return fd;
}

static void send_all(int fd, const char *s)
{
	assert_int_equal(send(fd, s, strlen(s), MSG_NOSIGNAL), (ssize_t)strlen(s));
}

/* One answer line (without '\n'), or NULL at EOF, a reset or the timeout. */
static char *read_line(int fd, char *buf, size_t n)
{
	size_t len = 0;

	while (len + 1 < n) {
		ssize_t r = recv(fd, buf + len, 1, 0);

		if (r <= 0)
			return NULL;
		if (buf[len] == '\n') {
			buf[len] = '\0';
			return buf;
		}
		len++;
	}
	fail_msg("answer longer than %zu bytes", n);
	return NULL;
}

/* True when the peer closed: EOF, or a reset (it closed with our bytes unread). */
static bool closed_by_peer(int fd)
{
	char b;
	ssize_t r = recv(fd, &b, 1, 0);

	return r == 0 || (r < 0 && errno == ECONNRESET);
}

static bool nothing_to_read(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, ms) == 0;
}

/* Wait (at most 5 s) for the server to have `n` clients: it learns of closes asynchronously. */
static void wait_clients(struct control *c, unsigned n)
{
	for (int i = 0; i < 5000 && control_nr_clients(c) != n; i++)
		usleep(1000);
	assert_int_equal(control_nr_clients(c), n);
}

static void test_socket_framing(void **state)
{
	struct served s;
	char buf[512];
	int fd;

	serve(&s);
	fd = client(s.path);
	/* Two commands in one write: two answers, in order. */
	send_all(fd, "{\"cmd\":\"pause\"}\n{\"cmd\":\"status\"}\n");
	assert_string_equal(read_line(fd, buf, sizeof(buf)), "{\"ok\":true}");
	assert_string_equal(read_line(fd, buf, sizeof(buf)),
			    "{\"ok\":true,\"state\":\"paused\",\"vcpus\":2,\"mem_mib\":512,"
			    "\"uptime_ms\":1234,\"net_ready\":0}");
	/* One command in two writes: no answer to the first half. */
	send_all(fd, "{\"cmd\":\"res");
	assert_true(nothing_to_read(fd, 100));
	send_all(fd, "ume\"}\n");
	assert_string_equal(read_line(fd, buf, sizeof(buf)), "{\"ok\":true}");
	assert_false(s.f.paused);
	/* CRLF, a blank line (no answer), a bad line: the connection stays usable. */
	send_all(fd,
		 "\r\n  \n{\"cmd\":\"snapshot\",\"dir\":\"/s\"}\r\nnope\n{\"cmd\":\"pause\"}\n");
	assert_string_equal(read_line(fd, buf, sizeof(buf)), "{\"ok\":true,\"dir\":\"/s\"}");
	assert_string_equal(read_line(fd, buf, sizeof(buf)),
			    "{\"ok\":false,\"error\":\"invalid JSON at byte 4: invalid token near "
			    "'nope'\"}");
	assert_string_equal(read_line(fd, buf, sizeof(buf)), "{\"ok\":true}");
	/* A last command without '\n' before the client's EOF is still answered. */
	send_all(fd, "{\"cmd\":\"resume\"}");
	assert_true(nothing_to_read(fd, 50));
	assert_int_equal(shutdown(fd, SHUT_WR), 0);
	assert_string_equal(read_line(fd, buf, sizeof(buf)), "{\"ok\":true}");
	assert_true(closed_by_peer(fd));
	close(fd);
	wait_clients(s.c, 0);
	assert_int_equal(s.f.pause_calls, 2);
	assert_int_equal(s.f.resume_calls, 2);
	unserve(&s);
}

static void test_socket_long_line(void **state)
{
	static char big[100 * 1024];
	struct served s;
	char buf[512];
	size_t sent = 0;
	int fd, other;

	serve(&s);
	other = client(s.path);
	fd = client(s.path);
	/* A valid command padded with blanks: the first CONTROL_LINE_MAX bytes, and the '\r'
	 * after them, would pass as a line of their own.  Nothing of it may run. */
	memset(big, ' ', sizeof(big));
	memcpy(big, "{\"cmd\":\"pause\"}", 15);
	big[CONTROL_LINE_MAX] = '\r';
	/* The server may close before it has read everything: then the send fails. */
	while (sent < sizeof(big)) {
		ssize_t r = send(fd, big + sent, sizeof(big) - sent, MSG_NOSIGNAL);

		if (r < 0) {
			assert_true(errno == EPIPE || errno == ECONNRESET);
			break;
		}
		sent += (size_t)r;
	}
	assert_string_equal(read_line(fd, buf, sizeof(buf)),
			    "{\"ok\":false,\"error\":\"command line longer than 65536 bytes\"}");
	assert_true(closed_by_peer(fd));
	close(fd);
	assert_int_equal(s.f.pause_calls, 0);
	/* The other client is served as before. */
	send_all(other, "{\"cmd\":\"pause\"}\n");
	assert_string_equal(read_line(other, buf, sizeof(buf)), "{\"ok\":true}");
	wait_clients(s.c, 1);
	close(other);
	wait_clients(s.c, 0);
	unserve(&s);
}

/* A client that sends commands and never reads its answers is dropped, and meanwhile the loop
 * goes on serving others. */
static void test_socket_client_not_reading(void **state)
{
	static const char cmd[] = "{\"cmd\":\"status\"}\n";
	static char burst[64 * sizeof(cmd)];
	struct served s;
	char buf[512];
	size_t total = 0;
	int fd, other, err = 0;
	struct timeval tv = { .tv_sec = 10 };

	serve(&s);
	for (size_t i = 0; i < 64; i++)
		memcpy(burst + i * (sizeof(cmd) - 1), cmd, sizeof(cmd) - 1);
	fd = client(s.path);
	other = client(s.path);
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)), 0);
	/* At most 64 MiB of commands: far more answers than the socket and the queue hold. */
	while (total < (64u << 20)) {
		ssize_t r = send(fd, burst, 64 * (sizeof(cmd) - 1), MSG_NOSIGNAL);

		if (r < 0) {
			err = errno;
			break;
		}
		total += (size_t)r;
	}
	assert_true(err == EPIPE || err == ECONNRESET);
	assert_true(s.f.status_calls > 100);
	send_all(other, "{\"cmd\":\"pause\"}\n");
	assert_string_equal(read_line(other, buf, sizeof(buf)), "{\"ok\":true}");
	wait_clients(s.c, 1);
	close(fd);
	close(other);
	wait_clients(s.c, 0);
	unserve(&s);
}

static void test_socket_many_clients(void **state)
{
	enum { N = 20 };
	struct served s;
	char buf[512];
	int fds[N], fd;

	serve(&s);
	/* Connections are accepted in the order they were made. */
	for (int i = 0; i < N; i++)
		fds[i] = client(s.path);
	for (int i = 0; i < CONTROL_MAX_CLIENTS; i++)
		send_all(fds[i], "{\"cmd\":\"status\"}\n");
	for (int i = 0; i < N; i++) {
		char *line = read_line(fds[i], buf, sizeof(buf));

		assert_non_null(line);
		if (i < CONTROL_MAX_CLIENTS) {
			assert_non_null(strstr(line, "{\"ok\":true,\"state\":\"running\""));
		} else {
			assert_string_equal(line, "{\"ok\":false,\"error\":\"too many control "
						  "clients (at most 8)\"}");
			assert_true(closed_by_peer(fds[i]));
		}
	}
	assert_int_equal(s.f.status_calls, CONTROL_MAX_CLIENTS);
	assert_int_equal(control_nr_clients(s.c), CONTROL_MAX_CLIENTS);
	for (int i = 0; i < N; i++)
		close(fds[i]);
	/* Every slot is free again. */
	wait_clients(s.c, 0);
	fd = client(s.path);
	send_all(fd, "{\"cmd\":\"pause\"}\n");
	assert_string_equal(read_line(fd, buf, sizeof(buf)), "{\"ok\":true}");
	/* Clients still connected at destroy are closed. */
	unserve(&s);
	assert_true(closed_by_peer(fd));
	close(fd);
}

static void test_create_errors(void **state)
{
	struct control_ops ops;
	struct evloop ev;
	struct control *c, *c2;
	struct fake f;
	struct stat st;
	char dir[64], path[96], longp[200];
	int fd;

	fake_init(&f, &ops);
	make_dir(dir, sizeof(dir));
	assert_int_equal(evloop_init(&ev), 0);
	snprintf(path, sizeof(path), "%s/ctl.sock", dir);

	assert_int_equal(control_create(&ev, "", &ops, &c), -EINVAL);
	assert_null(c);
	assert_int_equal(control_create(&ev, path, NULL, &c), -EINVAL);
	memset(longp, 'p', sizeof(longp) - 1);
	longp[0] = '/';
	longp[sizeof(longp) - 1] = '\0';
	assert_int_equal(control_create(&ev, longp, &ops, &c), -ENAMETOOLONG);
	{
		char missing[128];

		snprintf(missing, sizeof(missing), "%s/no/such/dir/ctl.sock", dir);
		assert_int_equal(control_create(&ev, missing, &ops, &c), -ENOENT);
	}
	/* Something that is not a socket is never removed. */
	fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(control_create(&ev, path, &ops, &c), -EEXIST);
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(unlink(path), 0);

	/* A stale socket file (its server died) is replaced. */
	{
		struct sockaddr_un a = { .sun_family = AF_UNIX };
		int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

		snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
		assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
		close(s);
	}
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(control_create(&ev, path, &ops, &c), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);
	/* A live one is not, whether or not its loop runs right now. */
	assert_int_equal(control_create(&ev, path, &ops, &c2), -EADDRINUSE);
	assert_null(c2);
	assert_int_equal(stat(path, &st), 0);
	control_destroy(c);
	assert_int_equal(stat(path, &st), -1);
	assert_int_equal(errno, ENOENT);
	control_destroy(NULL);
	evloop_destroy(&ev);
	assert_int_equal(rmdir(dir), 0);
}

static void test_second_create_on_live_path(void **state)
{
	struct served s;
	struct evloop ev2;
	struct control *c2;
	char buf[512];
	int fd;

	serve(&s);
	assert_int_equal(evloop_init(&ev2), 0);
	assert_int_equal(control_create(&ev2, s.path, &s.ops, &c2), -EADDRINUSE);
	evloop_destroy(&ev2);
	/* The probe's connection did no harm. */
	fd = client(s.path);
	send_all(fd, "{\"cmd\":\"pause\"}\n");
	assert_string_equal(read_line(fd, buf, sizeof(buf)), "{\"ok\":true}");
	close(fd);
	unserve(&s);
}

/* ---- under the event loop's seccomp filter ---- */

struct filtered {
	struct evloop *ev;
	int ret;
};

static void *filtered_loop(void *arg)
{
	struct filtered *fl = arg;

	fl->ret = seccomp_thread_install(SECCOMP_THREAD_EVLOOP, "evloop");
	if (!fl->ret)
		fl->ret = evloop_run(fl->ev);
	return NULL;
}

/* The child: the control served by a filtered event-loop thread (filters built without
 * --net user, so no open() at all), destroyed by a filtered main thread.  Exit 0 or a code
 * naming the step that failed; a refused system call ends it with SECCOMP_EXIT_STATUS. */
static void seccomp_child(const char *path, int ready_fd)
{
	struct seccomp_config cfg = { .slirp = false };
	struct filtered fl;
	struct control_ops ops;
	struct control *c;
	struct evloop ev;
	struct fake f;
	pthread_t th;

	fake_init(&f, &ops);
	f.stop_on_snapshot = &ev;
	if (evloop_init(&ev) || control_create(&ev, path, &ops, &c))
		_exit(20);
	if (seccomp_filters_build(&cfg))
		_exit(21);
	fl = (struct filtered){ .ev = &ev };
	if (pthread_create(&th, NULL, filtered_loop, &fl))
		_exit(22);
	if (seccomp_thread_install(SECCOMP_THREAD_MAIN, "main"))
		_exit(23);
	if (write(ready_fd, "r", 1) != 1)
		_exit(24);
	pthread_join(th, NULL);
	if (fl.ret)
		_exit(25);
	control_destroy(c);
	evloop_destroy(&ev);
	_exit(f.pause_calls == 1 && f.status_calls == 1 && f.snapshot_calls == 1 ? 0 : 26);
}

/* A client connected to `path`, or -1 (no asserting: the child may be dead). */
static int try_client(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = 10 };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* The next answer on fd contains `want`. */
static bool answer_has(int fd, const char *want)
{
	char buf[512];
	const char *line = fd >= 0 ? read_line(fd, buf, sizeof(buf)) : NULL;

	return line && strstr(line, want);
}

/* Every path a client can take, against the child: NULL, or the step that went wrong. */
static const char *seccomp_conversation(const char *path)
{
	static char big[CONTROL_LINE_MAX + 10];
	static const char cmds[] = "{\"cmd\":\"pause\"}\n{\"cmd\":\"status\"}\n{\"x\n[1]\n";
	static const char snap[] = "{\"cmd\":\"snapshot\"}\n";
	int fds[CONTROL_MAX_CLIENTS], fd, l;
	const char *bad = NULL;
	ssize_t r;

	fd = try_client(path);
	if (send(fd, cmds, sizeof(cmds) - 1, MSG_NOSIGNAL) != sizeof(cmds) - 1)
		return "commands not sent";
	if (!answer_has(fd, "{\"ok\":true}") || !answer_has(fd, "\"state\":\"paused\"") ||
	    !answer_has(fd, "invalid JSON") || !answer_has(fd, "JSON object"))
		bad = "commands";
	/* A line too long. */
	l = try_client(path);
	memset(big, 'x', sizeof(big));
	r = send(l, big, sizeof(big), MSG_NOSIGNAL);
	(void)r;
	if (!bad && !answer_has(l, "longer than"))
		bad = "long line";
	if (l >= 0)
		close(l);
	/* With fd, the last of these is one too many. */
	for (int i = 0; i < CONTROL_MAX_CLIENTS; i++)
		fds[i] = try_client(path);
	if (!bad && !answer_has(fds[CONTROL_MAX_CLIENTS - 1], "too many"))
		bad = "too many clients";
	for (int i = 0; i < CONTROL_MAX_CLIENTS; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	/* The snapshot callback stops the loop; the child then tears down. */
	if (send(fd, snap, sizeof(snap) - 1, MSG_NOSIGNAL) != sizeof(snap) - 1 ||
	    !answer_has(fd, "{\"ok\":true,\"dir\":\"/var/snap/1\"}"))
		bad = bad ? bad : "snapshot";
	if (fd >= 0)
		close(fd);
	return bad;
}

static void test_seccomp_evloop(void **state)
{
	char dir[64], path[128], buf[1], err[2048];
	const char *bad;
	int p[2], status;
	size_t len = 0;
	ssize_t r;
	pid_t pid;

	make_dir(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/ctl.sock", dir);
	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		dup2(p[1], STDERR_FILENO);
		seccomp_child(path, p[1]);
	}
	close(p[1]);
	bad = read(p[0], buf, 1) == 1 ? seccomp_conversation(path) : "child not ready";
	while ((r = read(p[0], err + len, sizeof(err) - 1 - len)) > 0)
		len += (size_t)r;
	err[len] = '\0';
	close(p[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || bad || strstr(err, "seccomp")) {
		unlink(path);
		rmdir(dir);
		fail_msg("step %s, child status %#x, stderr: %s", bad ? bad : "-", status, err);
	}
	/* The filtered main thread removed the socket. */
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		/* First: jansson's hash seed must be taken in the child's control_create(), not
		 * inherited from an earlier test in this process. */
		cmocka_unit_test(test_seccomp_evloop),
		cmocka_unit_test(test_pause_resume),
		cmocka_unit_test(test_status),
		cmocka_unit_test(test_snapshot),
		cmocka_unit_test(test_checkpoint_reset),
		cmocka_unit_test(test_screenshot),
		cmocka_unit_test(test_display),
		cmocka_unit_test(test_type_key),
		cmocka_unit_test(test_pointer_click),
		cmocka_unit_test(test_resize),
		cmocka_unit_test(test_bad_json),
		cmocka_unit_test(test_not_an_object),
		cmocka_unit_test(test_wrong_types),
		cmocka_unit_test(test_unknown),
		cmocka_unit_test(test_huge_line),
		cmocka_unit_test(test_embedded_nul),
		cmocka_unit_test(test_not_supported),
		cmocka_unit_test(test_callback_reasons_cleaned),
		cmocka_unit_test(test_socket_framing),
		cmocka_unit_test(test_socket_long_line),
		cmocka_unit_test(test_socket_client_not_reading),
		cmocka_unit_test(test_socket_many_clients),
		cmocka_unit_test(test_create_errors),
		cmocka_unit_test(test_second_create_on_live_path),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
