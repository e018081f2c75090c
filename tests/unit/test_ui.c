/* The GUI front ends without a guest: the shadow copy that both follow the display with, and
 * the VNC server spoken to over RFB 3.8 from this file (security None and VNC authentication,
 * ServerInit, Raw updates compared pixel by pixel, damage, DesktopSize on a mode change, input
 * messages with no input device).  The VNC thread runs under its own seccomp filter, so a
 * system call missing from its list ends this binary with the SIGSYS line.
 *
 * `test_ui --sdl-show`, `--sdl-events` and `--vnc-show PORT` are not unit tests: tests/ui/run.sh runs
 * them to check the SDL window under Xvfb and the VNC server with vncsnapshot (show()). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/seccomp.h"
#include "ui/display.h"
#include "ui/input.h"
#include "ui/sdl.h"
#include "ui/shadow.h"
#include "ui/ui.h"
#include "ui/vnc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/input-event-codes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <SDL2/SDL.h>
#include <rfb/rfb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define W 320
#define H 240

/* ---- link seam: the front ends' input calls land here ----
 * This file defines ui_key, ui_pointer, ui_wheel and ui_keysym_code, so src/ui/input.c (and
 * the virtio-input devices behind it) is not linked in: every call the VNC server or the
 * window makes is recorded instead, from their threads. */
#define MAX_EV 64
enum rec_kind { REC_KEY, REC_PTR, REC_WHEEL };
static struct {
	pthread_mutex_t lock;
	unsigned n;
	struct {
		enum rec_kind kind;
		uint32_t a, b, c; /* key: code, down; pointer: x, y, buttons; wheel: clicks */
	} ev[MAX_EV];
} rec = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void record(enum rec_kind kind, uint32_t a, uint32_t b, uint32_t c)
{
	pthread_mutex_lock(&rec.lock);
	if (rec.n < MAX_EV)
		rec.ev[rec.n++] = (typeof(rec.ev[0])){ kind, a, b, c };
	pthread_mutex_unlock(&rec.lock);
}

int ui_key(const struct ui_input *in, uint16_t code, bool down)
{
	record(REC_KEY, code, down, 0);
	return 0;
}

int ui_pointer(const struct ui_input *in, uint32_t x, uint32_t y, uint32_t buttons)
{
	record(REC_PTR, x, y, buttons);
	return 0;
}

int ui_wheel(const struct ui_input *in, int clicks)
{
	record(REC_WHEEL, (uint32_t)clicks, 0, 0);
	return 0;
}

/* Enough of the X11 keysym table for the tests: lower- and upper-case a. */
uint16_t ui_keysym_code(uint32_t keysym, bool *shift)
{
	*shift = keysym == 'A';
	return keysym == 'a' || keysym == 'A' ? KEY_A : 0;
}

/* Wait (up to 5 s) until `n` events are recorded; then take them. */
static unsigned wait_events(unsigned n)
{
	unsigned got = 0;

	for (int i = 0; i < 500; i++) {
		pthread_mutex_lock(&rec.lock);
		got = rec.n;
		pthread_mutex_unlock(&rec.lock);
		if (got >= n)
			break;
		poll(NULL, 0, 10);
	}
	return got;
}

static void reset_events(void)
{
	pthread_mutex_lock(&rec.lock);
	rec.n = 0;
	pthread_mutex_unlock(&rec.lock);
}

static unsigned count_kind(enum rec_kind kind)
{
	unsigned n = 0;

	pthread_mutex_lock(&rec.lock);
	for (unsigned i = 0; i < rec.n; i++)
		n += rec.ev[i].kind == kind;
	pthread_mutex_unlock(&rec.lock);
	return n;
}

static bool has_event(enum rec_kind kind, uint32_t a, uint32_t b, uint32_t c)
{
	bool found = false;

	pthread_mutex_lock(&rec.lock);
	for (unsigned i = 0; i < rec.n && !found; i++)
		found = rec.ev[i].kind == kind && rec.ev[i].a == a && rec.ev[i].b == b &&
			rec.ev[i].c == c;
	pthread_mutex_unlock(&rec.lock);
	return found;
}

/* A pattern that tells rows, columns and the three channels apart. */
static uint32_t pattern(uint32_t x, uint32_t y, uint32_t salt)
{
	return ((x * 7 + salt) & 0xff) << 16 | ((y * 5 + salt) & 0xff) << 8 | ((x ^ y) & 0xff);
}

static struct display *make_display(uint32_t w, uint32_t h, uint32_t salt)
{
	struct display *d;
	uint32_t *px = malloc((size_t)w * h * 4);

	assert_non_null(px);
	assert_int_equal(display_create(w, h, &d), 0);
	assert_int_equal(display_set_mode(d, w, h, true), 0);
	for (uint32_t y = 0; y < h; y++)
		for (uint32_t x = 0; x < w; x++)
			px[y * w + x] = pattern(x, y, salt);
	/* Words 0x00RRGGBB are bytes B, G, R, X on x86: BGRX. */
	assert_int_equal(display_blit(d, 0, 0, w, h, (uint8_t *)px, w * 4, DISPLAY_FMT_BGRX), 0);
	free(px);
	return d;
}

/* ---- the shadow copy ---- */

static void test_shadow(void **state)
{
	struct display *d = make_display(W, H, 0);
	struct ui_shadow s;
	struct ui_shadow_change c;
	uint32_t red = 0x00ff0000u;

	assert_int_equal(ui_shadow_init(&s, d, false, NULL, NULL), 0);
	assert_true(ui_shadow_pending(&s));
	assert_int_equal(ui_shadow_sync(&s, &c), 0);
	assert_true(c.damaged);
	assert_int_equal(c.w, W);
	assert_int_equal(c.h, H);
	assert_int_equal(s.pixels[5 * W + 9], pattern(9, 5, 0));
	/* Nothing new: nothing to do. */
	assert_false(ui_shadow_pending(&s));
	assert_int_equal(ui_shadow_sync(&s, &c), 0);
	assert_false(c.damaged || c.resized);
	/* One pixel, then another: the union of both. */
	assert_int_equal(display_blit(d, 10, 20, 1, 1, (uint8_t *)&red, 4, DISPLAY_FMT_BGRX), 0);
	assert_int_equal(display_blit(d, 30, 5, 1, 1, (uint8_t *)&red, 4, DISPLAY_FMT_BGRX), 0);
	assert_int_equal(ui_shadow_sync(&s, &c), 0);
	assert_true(c.damaged);
	assert_false(c.resized);
	assert_int_equal(c.x, 10);
	assert_int_equal(c.y, 5);
	assert_int_equal(c.w, 21);
	assert_int_equal(c.h, 16);
	assert_int_equal(s.pixels[20 * W + 10], red);
	assert_int_equal(s.pixels[5 * W + 30], red);
	/* A mode change: new size, black. */
	assert_int_equal(display_set_mode(d, 640, 480, true), 0);
	assert_int_equal(ui_shadow_sync(&s, &c), 0);
	assert_true(c.resized && c.damaged);
	assert_int_equal(s.w, 640);
	assert_int_equal(s.h, 480);
	assert_int_equal(s.pixels[0], 0);
	/* No scanout: same size, black, inactive. */
	assert_int_equal(display_blit(d, 0, 0, 1, 1, (uint8_t *)&red, 4, DISPLAY_FMT_BGRX), 0);
	assert_int_equal(ui_shadow_sync(&s, &c), 0);
	assert_int_equal(s.pixels[0], red);
	assert_int_equal(display_set_mode(d, 0, 0, false), 0);
	assert_int_equal(ui_shadow_sync(&s, &c), 0);
	assert_true(c.damaged);
	assert_false(s.active);
	assert_int_equal(s.w, 640);
	assert_int_equal(s.pixels[0], 0);
	ui_shadow_fini(&s);
	display_destroy(d);
}

/* The VNC server keeps libvncserver's R, G, B, X byte order. */
static void test_shadow_swap(void **state)
{
	struct display *d = make_display(W, H, 3);
	struct ui_shadow s;
	struct ui_shadow_change c;
	uint32_t p = pattern(7, 8, 3);

	assert_int_equal(ui_shadow_init(&s, d, true, NULL, NULL), 0);
	assert_int_equal(ui_shadow_sync(&s, &c), 0);
	assert_int_equal(s.pixels[8 * W + 7], (p & 0xff) << 16 | (p & 0xff00) | (p >> 16 & 0xff));
	ui_shadow_fini(&s);
	display_destroy(d);
}

/* ---- an RFB client ---- */

static void rd(int fd, void *buf, size_t n)
{
	uint8_t *p = buf;

	while (n) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t r;

		assert_int_equal(poll(&pfd, 1, 5000), 1);
		r = read(fd, p, n);
		assert_true(r > 0);
		p += r;
		n -= (size_t)r;
	}
}

static void wr(int fd, const void *buf, size_t n)
{
	assert_int_equal(write(fd, buf, n), (ssize_t)n);
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static int dial(unsigned port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	return fd;
}

/* ProtocolVersion and security (RFB 7.1.1-7.1.3); returns the SecurityResult. */
static uint32_t handshake(int fd, const char *password)
{
	uint8_t buf[64], n;

	rd(fd, buf, 12);
	assert_memory_equal(buf, "RFB 003.008\n", 12);
	wr(fd, "RFB 003.008\n", 12);
	rd(fd, &n, 1);
	assert_int_equal(n, 1); /* exactly one type offered */
	rd(fd, buf, 1);
	if (!password) {
		assert_int_equal(buf[0], 1); /* None */
		wr(fd, buf, 1);
	} else {
		uint8_t ch[16];

		assert_int_equal(buf[0], 2); /* VNC authentication (RFB 7.2.2) */
		wr(fd, buf, 1);
		rd(fd, ch, 16);
		rfbEncryptBytes(ch, (char *)password);
		wr(fd, ch, 16);
	}
	rd(fd, buf, 4);
	return be32(buf);
}

/* ClientInit and ServerInit (RFB 7.3); then our pixel format and encodings. */
static void client_init(int fd, uint16_t *w, uint16_t *h)
{
	uint8_t si[24], name[64], shared = 1;
	uint32_t len;
	/* SetPixelFormat: 32 bpp, depth 24, little-endian, true colour, 0x00RRGGBB words. */
	static const uint8_t spf[20] = {
		0, 0, 0, 0, 32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0
	};
	/* SetEncodings: Raw, DesktopSize (-223). */
	static const uint8_t se[12] = { 2, 0, 0, 2, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x21 };

	wr(fd, &shared, 1);
	rd(fd, si, 24);
	*w = be16(si);
	*h = be16(si + 2);
	len = be32(si + 20);
	assert_true(len < sizeof(name));
	rd(fd, name, len);
	assert_memory_equal(name, "ignition", 8);
	wr(fd, spf, sizeof(spf));
	wr(fd, se, sizeof(se));
}

static void request(int fd, bool incremental, uint16_t w, uint16_t h)
{
	uint8_t m[10] = { 3,	      incremental,	 0,	    0, 0, 0, (uint8_t)(w >> 8),
			  (uint8_t)w, (uint8_t)(h >> 8), (uint8_t)h };

	wr(fd, m, sizeof(m));
}

/* Read one FramebufferUpdate into img (fb_w wide): Raw rectangles are copied, a DesktopSize
 * rectangle reports the new size.  Returns the number of pixels received. */
static size_t read_update(int fd, uint32_t *img, uint16_t fb_w, uint16_t fb_h, uint16_t *new_w,
			  uint16_t *new_h)
{
	uint8_t hdr[4], r[12];
	size_t got = 0;

	rd(fd, hdr, 4);
	assert_int_equal(hdr[0], 0); /* FramebufferUpdate */
	for (uint16_t i = 0; i < be16(hdr + 2); i++) {
		uint16_t x, y, w, h;
		int32_t enc;

		rd(fd, r, 12);
		x = be16(r);
		y = be16(r + 2);
		w = be16(r + 4);
		h = be16(r + 6);
		enc = (int32_t)be32(r + 8);
		if (enc == -223) {
			*new_w = w;
			*new_h = h;
			continue;
		}
		assert_int_equal(enc, 0);
		assert_true(x + w <= fb_w && y + h <= fb_h);
		for (uint16_t row = 0; row < h; row++)
			rd(fd, img + (size_t)(y + row) * fb_w + x, (size_t)w * 4);
		got += (size_t)w * h;
	}
	return got;
}

static struct vnc *start_vnc(struct display *d, const char *password, const struct ui_input *in)
{
	struct ui_opts o = { .mode = UI_HEADLESS, .vnc = true, .vnc_addr = "127.0.0.1" };
	struct seccomp_config sc = { 0 };
	struct vnc *v;
	char err[256] = "";

	/* The VMM's filters and SIGSYS handler (cmocka's own replaced it for the test).  Not
	 * under ASan, whose allocator gives its large regions madvise(MADV_NOHUGEPAGE), which
	 * the VMM's lists (made for the plain build) refuse. */
	seccomp_filters_free();
	unsetenv("IGNITION_SECCOMP_SELFTEST");
#ifndef __SANITIZE_ADDRESS__
	assert_int_equal(seccomp_filters_build(&sc), 0);
#else
	(void)sc;
#endif
	if (password)
		snprintf(o.vnc_password, sizeof(o.vnc_password), "%s", password);
	assert_int_equal(vnc_start(&o, d, in, &v, err, sizeof(err)), 0);
	assert_true(vnc_port(v) > 0);
	return v;
}

static void check_frame(const uint32_t *img, uint16_t w, uint16_t h, uint32_t salt)
{
	for (uint32_t y = 0; y < h; y++)
		for (uint32_t x = 0; x < w; x++)
			if (img[y * w + x] != pattern(x, y, salt)) {
				fail_msg("pixel (%u, %u) is %06x, not %06x", x, y, img[y * w + x],
					 pattern(x, y, salt));
			}
}

static void test_vnc_frames(void **state)
{
	struct display *d = make_display(W, H, 1);
	static const struct ui_input in = { 0 }; /* no devices: every call -ENODEV */
	struct vnc *v = start_vnc(d, NULL, &in);
	uint32_t *img = calloc((size_t)W * H, 4), *img2;
	uint16_t w, h, nw = 0, nh = 0;
	uint32_t green = 0x0000ff00u;
	int fd = dial(vnc_port(v));

	assert_int_equal(handshake(fd, NULL), 0);
	client_init(fd, &w, &h);
	assert_int_equal(w, W);
	assert_int_equal(h, H);
	/* The whole frame, pixel for pixel. */
	request(fd, false, w, h);
	assert_int_equal(read_update(fd, img, w, h, &nw, &nh), (size_t)W * H);
	check_frame(img, w, h, 1);
	/* Input (RFB 7.5.4, 7.5.5): 'a' pressed and released, 'A' pressed (the client sent its
	 * own shift: no shift added), a left click at (10, 10), a move with the right button
	 * held (mask bit 2), a wheel click up (button 4 pressed, released). */
	{
		static const uint8_t key[] = { 4, 1, 0, 0,   0, 0, 0, 'a', 4, 0, 0, 0,
					       0, 0, 0, 'a', 4, 1, 0, 0,   0, 0, 0, 'A' };
		static const uint8_t ptr[] = { 5, 1, 0, 10, 0, 10, 5, 0, 0, 10, 0, 10,
					       5, 4, 0, 11, 0, 12, 5, 0, 0, 11, 0, 12,
					       5, 8, 0, 11, 0, 12, 5, 0, 0, 11, 0, 12 };

		reset_events();
		wr(fd, key, sizeof(key));
		wr(fd, ptr, sizeof(ptr));
		assert_true(wait_events(8) >= 8);
		assert_true(has_event(REC_KEY, KEY_A, true, 0));
		assert_true(has_event(REC_KEY, KEY_A, false, 0));
		assert_false(has_event(REC_KEY, KEY_LEFTSHIFT, true, 0));
		assert_true(has_event(REC_PTR, 10, 10, UI_BUTTON_LEFT));
		assert_true(has_event(REC_PTR, 10, 10, 0));
		assert_true(has_event(REC_PTR, 11, 12, UI_BUTTON_RIGHT));
		assert_true(has_event(REC_PTR, 11, 12, 0));
		assert_true(has_event(REC_WHEEL, 1, 0, 0));
	}
	/* Damage: a green pixel arrives in an incremental update. */
	request(fd, true, w, h);
	assert_int_equal(display_blit(d, 100, 50, 1, 1, (uint8_t *)&green, 4, DISPLAY_FMT_BGRX), 0);
	assert_true(read_update(fd, img, w, h, &nw, &nh) >= 1);
	assert_int_equal(img[50 * W + 100], green);
	assert_int_equal(img[50 * W + 101], pattern(101, 50, 1));
	/* A new mode: DesktopSize with the new size, then the new frame. */
	assert_int_equal(display_set_mode(d, 400, 300, true), 0);
	{
		uint32_t *px = malloc(400 * 300 * 4);

		for (uint32_t y = 0; y < 300; y++)
			for (uint32_t x = 0; x < 400; x++)
				px[y * 400 + x] = pattern(x, y, 2);
		assert_int_equal(
			display_blit(d, 0, 0, 400, 300, (uint8_t *)px, 400 * 4, DISPLAY_FMT_BGRX),
			0);
		free(px);
	}
	request(fd, true, w, h);
	img2 = calloc(400 * 300, 4);
	/* The size change may come alone or with pixels; then ask for the whole new frame. */
	read_update(fd, img2, 400, 300, &nw, &nh);
	assert_int_equal(nw, 400);
	assert_int_equal(nh, 300);
	request(fd, false, 400, 300);
	while (read_update(fd, img2, 400, 300, &nw, &nh) < 400 * 300)
		request(fd, false, 400, 300);
	check_frame(img2, 400, 300, 2);
	/* The client goes with 'A' still down: the guest gets the release. */
	reset_events();
	close(fd);
	assert_true(wait_events(1) >= 1);
	assert_true(has_event(REC_KEY, KEY_A, false, 0));
	vnc_stop(v);
	free(img);
	free(img2);
	display_destroy(d);
	seccomp_filters_free();
}

static void test_vnc_password(void **state)
{
	struct display *d = make_display(W, H, 4);
	struct vnc *v = start_vnc(d, "s3cret", NULL);
	uint32_t *img = calloc((size_t)W * H, 4);
	uint16_t w, h, nw, nh;
	int fd;

	/* A wrong password is refused (SecurityResult 1, RFB 7.1.3) ... */
	fd = dial(vnc_port(v));
	assert_int_equal(handshake(fd, "wrong"), 1);
	close(fd);
	/* ... the right one lets the client in. */
	fd = dial(vnc_port(v));
	assert_int_equal(handshake(fd, "s3cret"), 0);
	client_init(fd, &w, &h);
	assert_int_equal(w, W);
	request(fd, false, w, h);
	assert_int_equal(read_update(fd, img, w, h, &nw, &nh), (size_t)W * H);
	check_frame(img, w, h, 4);
	close(fd);
	vnc_stop(v);
	free(img);
	display_destroy(d);
	seccomp_filters_free();
}

/* Only the address asked for, and a taken port is an error with one line. */
static void test_vnc_bind(void **state)
{
	struct display *d = make_display(W, H, 0);
	struct ui_opts o = { .mode = UI_HEADLESS, .vnc = true, .vnc_addr = "127.0.0.1" };
	struct vnc *v, *v2;
	struct ui *u;
	char err[256] = "";
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	int fd;

	assert_int_equal(vnc_start(&o, d, NULL, &v, err, sizeof(err)), 0);
	/* Not on ::1 (libvncserver's IPv6 twin would be). */
	a6.sin6_port = htons((uint16_t)vnc_port(v));
	fd = socket(AF_INET6, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&a6, sizeof(a6)), -1);
	close(fd);
	/* The same port again, through ui_start. */
	o.vnc_port = (uint16_t)vnc_port(v);
	assert_int_equal(ui_start(&o, d, NULL, &u, err, sizeof(err)), -EADDRINUSE);
	assert_null(u);
	assert_non_null(strstr(err, "port is taken"));
	/* Not an address. */
	snprintf(o.vnc_addr, sizeof(o.vnc_addr), "localhost");
	assert_int_equal(vnc_start(&o, d, NULL, &v2, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "not a numeric"));
	vnc_stop(v);
	/* IPv6, if the host has it. */
	snprintf(o.vnc_addr, sizeof(o.vnc_addr), "::1");
	o.vnc_port = 0;
	if (vnc_start(&o, d, NULL, &v2, err, sizeof(err)) == 0) {
		a6.sin6_port = htons((uint16_t)vnc_port(v2));
		fd = socket(AF_INET6, SOCK_STREAM, 0);
		assert_int_equal(connect(fd, (struct sockaddr *)&a6, sizeof(a6)), 0);
		assert_int_equal(handshake(fd, NULL), 0);
		close(fd);
		vnc_stop(v2);
	}
	/* Headless without VNC starts nothing. */
	o.vnc = false;
	assert_int_equal(ui_start(&o, d, NULL, &u, err, sizeof(err)), 0);
	assert_null(u);
	ui_stop(NULL);
	display_destroy(d);
}

/* ---- the UI threads' seccomp filters (in forked children: this process stays unfiltered) ---- */

/* Fork; the child builds the filters, installs `kind`, runs body(): returns the wait status
 * and the child's stderr in err. */
static int in_child(enum seccomp_thread kind, void (*body)(void), char *err, size_t n)
{
	int p[2], status;
	ssize_t r;
	pid_t pid;

	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct seccomp_config sc = { 0 };

		close(p[0]);
		dup2(p[1], STDERR_FILENO);
		seccomp_filters_free();
		unsetenv("IGNITION_SECCOMP_SELFTEST");
		if (seccomp_filters_build(&sc) || seccomp_thread_install(kind, "ui"))
			_exit(10);
		body();
		_exit(0);
	}
	close(p[1]);
	r = read(p[0], err, n - 1);
	err[r > 0 ? r : 0] = '\0';
	close(p[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return status;
}

static void gui_allowed(void)
{
	int fds[2];

	/* What no allowlist has but a graphics stack may do: pipes, sockets, files. */
	if (pipe(fds) || socket(AF_UNIX, SOCK_STREAM, 0) < 0 || open("/dev/null", O_RDONLY) < 0)
		_exit(11);
}

static void gui_exec(void)
{
	static char *const argv[] = { (char *)"true", NULL };

	gui_allowed();
	execv("/bin/true", argv);
	_exit(12);
}

static void vnc_socket(void)
{
	if (socket(AF_INET, SOCK_STREAM, 0) >= 0) /* libvncserver binds nothing: refused */
		_exit(11);
}

static void vnc_open(void)
{
	if (open("/etc/hostname", O_RDONLY) >= 0)
		_exit(11);
}

static void test_ui_filters(void **state)
{
	char err[512];
	int st;

	/* The window's deny-list lets the graphics stack work and refuses a new program. */
	st = in_child(SECCOMP_THREAD_GUI, gui_allowed, err, sizeof(err));
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	st = in_child(SECCOMP_THREAD_GUI, gui_exec, err, sizeof(err));
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), SECCOMP_EXIT_STATUS);
	assert_non_null(strstr(err, "refused system call execve"));
	/* The VNC server's allowlist: no new sockets, no files. */
	st = in_child(SECCOMP_THREAD_VNC, vnc_socket, err, sizeof(err));
	assert_int_equal(WEXITSTATUS(st), SECCOMP_EXIT_STATUS);
	assert_non_null(strstr(err, "refused system call socket"));
	st = in_child(SECCOMP_THREAD_VNC, vnc_open, err, sizeof(err));
	assert_int_equal(WEXITSTATUS(st), SECCOMP_EXIT_STATUS);
	assert_non_null(strstr(err, "refused system call open"));
	assert_string_equal(seccomp_thread_name(SECCOMP_THREAD_VNC), "vnc");
	assert_string_equal(seccomp_thread_name(SECCOMP_THREAD_GUI), "gui");
}

/* The keyboard table: letters, digits, modifiers; unknown scancodes give 0. */
static void test_sdl_keymap(void **state)
{
	assert_int_equal(sdl_scancode_to_evdev(4), KEY_A);	/* SDL_SCANCODE_A */
	assert_int_equal(sdl_scancode_to_evdev(29), KEY_Z);	/* SDL_SCANCODE_Z */
	assert_int_equal(sdl_scancode_to_evdev(30), KEY_1);	/* SDL_SCANCODE_1 */
	assert_int_equal(sdl_scancode_to_evdev(39), KEY_0);	/* SDL_SCANCODE_0 */
	assert_int_equal(sdl_scancode_to_evdev(40), KEY_ENTER); /* SDL_SCANCODE_RETURN */
	assert_int_equal(sdl_scancode_to_evdev(224), KEY_LEFTCTRL);
	assert_int_equal(sdl_scancode_to_evdev(230), KEY_RIGHTALT);
	assert_int_equal(sdl_scancode_to_evdev(0), 0);
	assert_int_equal(sdl_scancode_to_evdev(-1), 0);
	assert_int_equal(sdl_scancode_to_evdev(100000), 0);
}

/* ---- tests/ui/run.sh: the SDL window under Xvfb ---- */

/* Show a 320x240 frame of four colour quadrants (red, green, blue, white) in a window (or
 * with vnc_port, over VNC on 127.0.0.1:vnc_port), under the VMM's seccomp filters; print
 * READY and wait for a line on stdin; then switch to a 400x300 yellow frame, print READY
 * again, wait for a line, close.  Exit 3 with the error line on stderr if the front end
 * cannot start. */
static int show(uint16_t vnc_port)
{
	static const uint32_t q[4] = { 0xff0000u, 0x00ff00u, 0x0000ffu, 0xffffffu };
	struct ui_opts o = { .mode = vnc_port ? UI_HEADLESS : UI_SDL,
			     .vnc = vnc_port != 0,
			     .vnc_addr = "127.0.0.1",
			     .vnc_port = vnc_port };
	struct seccomp_config sc = { 0 };
	static const struct ui_input in = { 0 };
	struct display *d;
	struct ui *u;
	static char obuf[256], ibuf[256];
	char err[256] = "", line[16];
	uint32_t *px = malloc(400 * 300 * 4);
	int ret;

	if (!px || seccomp_filters_build(&sc) || display_create(W, H, &d) ||
	    display_set_mode(d, W, H, true))
		return 1;
	for (uint32_t y = 0; y < H; y++)
		for (uint32_t x = 0; x < W; x++)
			px[y * W + x] = q[(y >= H / 2) * 2 + (x >= W / 2)];
	if (display_blit(d, 0, 0, W, H, (uint8_t *)px, W * 4, DISPLAY_FMT_BGRX))
		return 1;
	ret = ui_start(&o, d, &in, &u, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "%s\n", err);
		return 3;
	}
	/* As in `ignition run`: the main thread filters itself once the front ends run, and
	 * stops them (ui_stop) under that filter.  Buffers of our own, so stdio needs no
	 * fstat; poll() for sleeping. */
	setvbuf(stdout, obuf, _IOLBF, sizeof(obuf));
	setvbuf(stdin, ibuf, _IOFBF, sizeof(ibuf));
	if (seccomp_thread_install(SECCOMP_THREAD_MAIN, "main"))
		return 1;
	poll(NULL, 0, 500);
	printf("READY\n");
	fflush(stdout);
	if (!fgets(line, sizeof(line), stdin))
		goto out;
	if (display_set_mode(d, 400, 300, true))
		return 1;
	for (uint32_t i = 0; i < 400 * 300; i++)
		px[i] = 0xffff00u;
	if (display_blit(d, 0, 0, 400, 300, (uint8_t *)px, 400 * 4, DISPLAY_FMT_BGRX))
		return 1;
	poll(NULL, 0, 500);
	printf("READY\n");
	fflush(stdout);
	if (!fgets(line, sizeof(line), stdin))
		goto out;
out:
	ui_stop(u);
	display_destroy(d);
	free(px);
	seccomp_filters_free();
	return 0;
}

/* `test_ui --sdl-events` (tests/ui/run.sh, under Xvfb): SDL events pushed into the window's
 * queue from this thread, and what the window did with them.  One "PASS name" or
 * "FAIL name: why" line per check on stdout; exit 1 if any failed. */
static int quits, snapshots;
static uint32_t resized_w, resized_h;

static void on_quit(void *ctx)
{
	__atomic_add_fetch(&quits, 1, __ATOMIC_SEQ_CST);
}

static void on_snapshot(void *ctx)
{
	__atomic_add_fetch(&snapshots, 1, __ATOMIC_SEQ_CST);
}

static int on_resize(void *opaque, uint32_t w, uint32_t h)
{
	__atomic_store_n(&resized_w, w, __ATOMIC_SEQ_CST);
	__atomic_store_n(&resized_h, h, __ATOMIC_SEQ_CST);
	return 0;
}

static int failures;

static void check(bool ok, const char *name, const char *why)
{
	printf(ok ? "PASS %s\n" : "FAIL %s: %s\n", name, why);
	fflush(stdout);
	failures += !ok;
}

static void push_key(int type, SDL_Scancode sc, uint16_t mod, int repeat)
{
	SDL_Event e = { .type = (uint32_t)type };

	e.key.state = type == SDL_KEYDOWN ? SDL_PRESSED : SDL_RELEASED;
	e.key.repeat = (uint8_t)repeat;
	e.key.keysym.scancode = sc;
	e.key.keysym.mod = mod;
	SDL_PushEvent(&e);
}

static void push_window(uint8_t event, int d1, int d2)
{
	SDL_Event e = { .type = SDL_WINDOWEVENT };

	e.window.event = event;
	e.window.data1 = d1;
	e.window.data2 = d2;
	SDL_PushEvent(&e);
}

/* Wait up to 5 s for that event to be recorded. */
static void wait_for(enum rec_kind kind, uint32_t a, uint32_t b, uint32_t c)
{
	for (int i = 0; i < 500 && !has_event(kind, a, b, c); i++)
		poll(NULL, 0, 10);
}

/* Wait up to 5 s for *counter to reach n. */
static bool wait_count(int *counter, int n)
{
	for (int i = 0; i < 500 && __atomic_load_n(counter, __ATOMIC_SEQ_CST) < n; i++)
		poll(NULL, 0, 10);
	return __atomic_load_n(counter, __ATOMIC_SEQ_CST) >= n;
}

static int sdl_events(void)
{
	struct ui_opts o = { .mode = UI_SDL, .quit = on_quit, .snapshot = on_snapshot };
	struct seccomp_config sc = { 0 };
	struct display *d = NULL;
	struct ui *u;
	char err[256] = "";
	const uint16_t ctrl_alt = KMOD_LCTRL | KMOD_LALT;
	SDL_Window *win;
	SDL_Event e;

	if (seccomp_filters_build(&sc) || display_create(W, H, &d) ||
	    display_set_mode(d, W, H, true))
		return 1;
	display_set_resize_handler(d, on_resize, NULL);
	if (ui_start(&o, d, NULL, &u, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		return 3;
	}
	/* Keys: a press and a release; an auto-repeat is not passed on. */
	reset_events();
	push_key(SDL_KEYDOWN, SDL_SCANCODE_A, 0, 0);
	push_key(SDL_KEYDOWN, SDL_SCANCODE_A, 0, 1);
	push_key(SDL_KEYUP, SDL_SCANCODE_A, 0, 0);
	wait_events(2);
	poll(NULL, 0, 100);
	check(count_kind(REC_KEY) == 2 && has_event(REC_KEY, KEY_A, true, 0) &&
		      has_event(REC_KEY, KEY_A, false, 0),
	      "ui/sdl-events/keys", "not KEY_A down then up, once");
	/* Hotkeys are not passed on; AltGr+Q is a key. */
	reset_events();
	push_key(SDL_KEYDOWN, SDL_SCANCODE_S, ctrl_alt, 0);
	push_key(SDL_KEYUP, SDL_SCANCODE_S, ctrl_alt, 0);
	check(wait_count(&snapshots, 1), "ui/sdl-events/ctrl-alt-s", "no snapshot call");
	push_key(SDL_KEYDOWN, SDL_SCANCODE_Q, ctrl_alt, 0);
	push_key(SDL_KEYUP, SDL_SCANCODE_Q, ctrl_alt, 0);
	check(wait_count(&quits, 1), "ui/sdl-events/ctrl-alt-q", "no quit call");
	push_key(SDL_KEYDOWN, SDL_SCANCODE_Q, KMOD_LCTRL | KMOD_RALT | KMOD_MODE, 0);
	wait_for(REC_KEY, KEY_Q, true, 0);
	check(has_event(REC_KEY, KEY_Q, true, 0) && !has_event(REC_KEY, KEY_S, true, 0) &&
		      __atomic_load_n(&quits, __ATOMIC_SEQ_CST) == 1,
	      "ui/sdl-events/hotkeys-not-passed", "a hotkey reached the guest, or AltGr+Q did not");
	/* Grab: the title says how to release it. */
	push_key(SDL_KEYDOWN, SDL_SCANCODE_G, ctrl_alt, 0);
	win = SDL_GetWindowFromID(1);
	for (int i = 0; i < 200 && win && !strstr(SDL_GetWindowTitle(win), "release"); i++)
		poll(NULL, 0, 10);
	check(win && strstr(SDL_GetWindowTitle(win), "ignition 320x240 (Ctrl+Alt+G to release)"),
	      "ui/sdl-events/grab-title", win ? SDL_GetWindowTitle(win) : "no window");
	push_key(SDL_KEYDOWN, SDL_SCANCODE_G, ctrl_alt, 0);
	/* Focus lost: held keys are released (Q is still down from AltGr+Q). */
	reset_events();
	push_window(SDL_WINDOWEVENT_FOCUS_LOST, 0, 0);
	wait_for(REC_KEY, KEY_Q, false, 0);
	check(has_event(REC_KEY, KEY_Q, false, 0), "ui/sdl-events/focus-release", "Q not released");
	/* Pointer: window pixels are display pixels at this size; buttons and the wheel. */
	reset_events();
	e = (SDL_Event){ .type = SDL_MOUSEMOTION };
	e.motion.x = 160;
	e.motion.y = 120;
	SDL_PushEvent(&e);
	e = (SDL_Event){ .type = SDL_MOUSEBUTTONDOWN };
	e.button.button = SDL_BUTTON_RIGHT;
	e.button.x = 100;
	e.button.y = 50;
	SDL_PushEvent(&e);
	e.type = SDL_MOUSEBUTTONUP;
	SDL_PushEvent(&e);
	e = (SDL_Event){ .type = SDL_MOUSEWHEEL };
	e.wheel.y = -2;
	SDL_PushEvent(&e);
	wait_for(REC_WHEEL, (uint32_t)-2, 0, 0);
	check(has_event(REC_PTR, 160, 120, 0) && has_event(REC_PTR, 100, 50, UI_BUTTON_RIGHT) &&
		      has_event(REC_PTR, 100, 50, 0) && has_event(REC_WHEEL, (uint32_t)-2, 0, 0),
	      "ui/sdl-events/pointer", "motion, right button or wheel not as sent");
	/* A window resize becomes one mode request, after the debounce. */
	push_window(SDL_WINDOWEVENT_SIZE_CHANGED, 500, 400);
	poll(NULL, 0, 100);
	check(__atomic_load_n(&resized_w, __ATOMIC_SEQ_CST) == 0, "ui/sdl-events/resize-debounce",
	      "requested before 200 ms");
	for (int i = 0; i < 300 && !__atomic_load_n(&resized_w, __ATOMIC_SEQ_CST); i++)
		poll(NULL, 0, 10);
	check(resized_w == 500 && resized_h == 400, "ui/sdl-events/resize", "no 500x400 request");
	/* Closing the window quits. */
	e = (SDL_Event){ .type = SDL_QUIT };
	SDL_PushEvent(&e);
	check(wait_count(&quits, 2), "ui/sdl-events/close", "no quit call");
	ui_stop(u);
	display_destroy(d);
	seccomp_filters_free();
	return failures ? 1 : 0;
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shadow),	   cmocka_unit_test(test_shadow_swap),
		cmocka_unit_test(test_vnc_frames), cmocka_unit_test(test_vnc_password),
		cmocka_unit_test(test_vnc_bind),   cmocka_unit_test(test_sdl_keymap),
		cmocka_unit_test(test_ui_filters),
	};

	if (argc > 1 && !strcmp(argv[1], "--sdl-events"))
		return sdl_events();
	if (argc > 1 && !strcmp(argv[1], "--sdl-show"))
		return show(0);
	if (argc > 2 && !strcmp(argv[1], "--vnc-show"))
		return show((uint16_t)atoi(argv[2]));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
