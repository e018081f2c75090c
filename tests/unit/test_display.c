/* The display (src/ui/display.c): modes, format conversion, clipping, listeners, copies and
 * host resize requests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ui/display.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct seen {
	unsigned updates, modes;
	uint32_t x, y, w, h;
	uint32_t mw, mh;
	bool active;
};

static void on_update(void *opaque, uint32_t x, uint32_t y, uint32_t w, uint32_t h)
{
	struct seen *s = opaque;

	s->updates++;
	s->x = x;
	s->y = y;
	s->w = w;
	s->h = h;
}

static void on_mode(void *opaque, uint32_t w, uint32_t h, bool active)
{
	struct seen *s = opaque;

	s->modes++;
	s->mw = w;
	s->mh = h;
	s->active = active;
}

static void test_limits(void **state)
{
	struct display *d;

	assert_int_equal(display_create(63, 64, &d), -EINVAL);
	assert_int_equal(display_create(64, DISPLAY_MAX_H + 1, &d), -EINVAL);
	assert_int_equal(display_create(DISPLAY_MAX_W + 1, 64, &d), -EINVAL);
	assert_int_equal(display_create(640, 480, &d), 0);
	assert_int_equal(display_set_mode(d, 10, 10, true), -EINVAL);
	assert_int_equal(display_request_size(d, 5000, 480), -EINVAL);
	/* No resize handler yet. */
	assert_int_equal(display_request_size(d, 800, 600), -ENOTSUP);
	display_destroy(d);
	display_destroy(NULL);
}

/* Every virtio-gpu format turns into the same 0x00RRGGBB. */
static void test_formats(void **state)
{
	static const struct {
		enum display_format f;
		uint8_t bytes[4];
	} cases[] = {
		{ DISPLAY_FMT_BGRA, { 0x33, 0x22, 0x11, 0xff } },
		{ DISPLAY_FMT_BGRX, { 0x33, 0x22, 0x11, 0x00 } },
		{ DISPLAY_FMT_ARGB, { 0xff, 0x11, 0x22, 0x33 } },
		{ DISPLAY_FMT_XRGB, { 0x00, 0x11, 0x22, 0x33 } },
		{ DISPLAY_FMT_RGBA, { 0x11, 0x22, 0x33, 0xff } },
		{ DISPLAY_FMT_RGBX, { 0x11, 0x22, 0x33, 0x00 } },
		{ DISPLAY_FMT_XBGR, { 0x00, 0x33, 0x22, 0x11 } },
		{ DISPLAY_FMT_ABGR, { 0xff, 0x33, 0x22, 0x11 } },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_true(display_format_valid(cases[i].f));
		assert_int_equal(display_pixel(cases[i].bytes, cases[i].f), 0x112233);
	}
	assert_false(display_format_valid(0));
	assert_false(display_format_valid(5));
	assert_int_equal(display_pixel(cases[0].bytes, (enum display_format)5), 0);
}

static void test_blit_clip_and_listeners(void **state)
{
	struct display *d;
	struct seen s = { 0 };
	struct display_listener l = { .opaque = &s, .update = on_update, .mode = on_mode };
	uint8_t src[8 * 4 * 4]; /* 8 x 4 pixels, BGRA */
	uint32_t *px, w, h;
	uint64_t serial, serial2;

	assert_int_equal(display_create(640, 480, &d), 0);
	assert_int_equal(display_add_listener(d, &l), 0);
	/* Told the current mode at once: none. */
	assert_int_equal(s.modes, 1);
	assert_false(s.active);
	/* Inactive: a blit is a no-op, the copy is empty. */
	memset(src, 0xff, sizeof(src));
	assert_int_equal(display_blit(d, 0, 0, 8, 4, src, 32, DISPLAY_FMT_BGRA), 0);
	assert_int_equal(s.updates, 0);
	assert_int_equal(display_copy(d, &px, &w, &h, NULL), 0);
	assert_null(px);
	assert_int_equal(w, 0);
	assert_false(display_mode(d, &w, &h));

	assert_int_equal(display_set_mode(d, 64, 64, true), 0);
	assert_int_equal(s.modes, 2);
	assert_true(s.active);
	assert_int_equal(s.mw, 64);
	for (int i = 0; i < 32; i++) {
		src[i * 4 + 0] = (uint8_t)i; /* B */
		src[i * 4 + 1] = 0x80;	     /* G */
		src[i * 4 + 2] = 0x40;	     /* R */
		src[i * 4 + 3] = 0xaa;	     /* A: dropped */
	}
	serial = display_serial(d);
	/* At (60, 62): clipped to 4 x 2. */
	assert_int_equal(display_blit(d, 60, 62, 8, 4, src, 32, DISPLAY_FMT_BGRA), 0);
	assert_int_equal(s.updates, 1);
	assert_int_equal(s.x, 60);
	assert_int_equal(s.y, 62);
	assert_int_equal(s.w, 4);
	assert_int_equal(s.h, 2);
	assert_int_equal(display_copy(d, &px, &w, &h, &serial2), 0);
	assert_true(serial2 > serial);
	assert_int_equal(w, 64);
	assert_int_equal(h, 64);
	assert_int_equal(px[62 * 64 + 60], 0x408000);
	assert_int_equal(px[62 * 64 + 63], 0x408003);
	assert_int_equal(px[63 * 64 + 60], 0x408008); /* second source row */
	assert_int_equal(px[61 * 64 + 60], 0);
	free(px);
	/* Entirely outside: nothing, no update. */
	assert_int_equal(display_blit(d, 64, 0, 8, 4, src, 32, DISPLAY_FMT_BGRA), 0);
	assert_int_equal(s.updates, 1);
	assert_int_equal(display_blit(d, 0, 0, 8, 4, src, 32, (enum display_format)9), -EINVAL);
	/* A converted format. */
	assert_int_equal(display_blit(d, 0, 0, 1, 1, src, 32, DISPLAY_FMT_RGBX), 0);
	assert_int_equal(display_copy(d, &px, &w, &h, NULL), 0);
	assert_int_equal(px[0], 0x008040);
	free(px);
	/* Off again. */
	assert_int_equal(display_set_mode(d, 0, 0, false), 0);
	assert_false(s.active);
	assert_false(display_mode(d, &w, &h));
	display_remove_listener(d, &s);
	assert_int_equal(display_set_mode(d, 64, 64, true), 0);
	assert_int_equal(s.modes, 3);
	display_destroy(d);
}

static int resized_w, resized_h;

static int on_resize(void *opaque, uint32_t w, uint32_t h)
{
	resized_w = (int)w;
	resized_h = (int)h;
	return *(int *)opaque;
}

static void test_resize_requests(void **state)
{
	struct display *d;
	int answer = 0;
	uint32_t w, h;

	assert_int_equal(display_create(1280, 800, &d), 0);
	display_preferred(d, &w, &h);
	assert_int_equal(w, 1280);
	assert_int_equal(h, 800);
	display_set_resize_handler(d, on_resize, &answer);
	assert_int_equal(display_request_size(d, 1024, 768), 0);
	assert_int_equal(resized_w, 1024);
	assert_int_equal(resized_h, 768);
	display_preferred(d, &w, &h);
	assert_int_equal(w, 1024);
	assert_int_equal(h, 768);
	answer = -EIO;
	assert_int_equal(display_request_size(d, 800, 600), -EIO);
	/* Setting the preferred mode (a restore) asks nobody; out of limits it is refused. */
	resized_w = resized_h = 0;
	assert_int_equal(display_set_preferred(d, 1600, 900), 0);
	assert_int_equal(resized_w, 0);
	display_preferred(d, &w, &h);
	assert_int_equal(w, 1600);
	assert_int_equal(h, 900);
	assert_int_equal(display_set_preferred(d, 63, 900), -EINVAL);
	assert_int_equal(display_set_preferred(d, 1600, DISPLAY_MAX_H + 1), -EINVAL);
	display_preferred(d, &w, &h);
	assert_int_equal(w, 1600);
	assert_int_equal(h, 900);
	display_set_resize_handler(d, NULL, NULL);
	assert_int_equal(display_request_size(d, 800, 600), -ENOTSUP);
	display_destroy(d);
}

static void test_listener_slots(void **state)
{
	struct display *d;
	struct seen s[DISPLAY_MAX_LISTENERS + 1];

	assert_int_equal(display_create(64, 64, &d), 0);
	for (int i = 0; i < DISPLAY_MAX_LISTENERS; i++) {
		struct display_listener l = { .opaque = &s[i] };

		assert_int_equal(display_add_listener(d, &l), 0);
	}
	struct display_listener extra = { .opaque = &s[DISPLAY_MAX_LISTENERS] };

	assert_int_equal(display_add_listener(d, &extra), -ENOSPC);
	display_remove_listener(d, &s[0]);
	assert_int_equal(display_add_listener(d, &extra), 0);
	display_destroy(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_formats),
		cmocka_unit_test(test_blit_clip_and_listeners),
		cmocka_unit_test(test_resize_requests),
		cmocka_unit_test(test_listener_slots),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
