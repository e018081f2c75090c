/* Front-end input (src/ui/input.c) into real virtio-input devices driven by the fake driver:
 * the exact event sequences of typed text and key combinations, refusals that send nothing,
 * pointer scaling against the display's mode, and the X11 keysym map. */
#include "devices/virtio/input.h"
#include "fake_input.h"
#include "ui/display.h"
#include "ui/input.h"

#include <errno.h>
#include <linux/input-event-codes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define QSIZE 64

struct fixture {
	struct fin kbd, tablet;
	struct display *d;
	struct ui_input ui;
};

static int setup(void **state)
{
	struct fixture *x = calloc(1, sizeof(*x));

	fin_init(&x->kbd, VIRTIO_INPUT_KEYBOARD, QSIZE);
	fin_init(&x->tablet, VIRTIO_INPUT_TABLET, QSIZE);
	assert_int_equal(display_create(1024, 768, &x->d), 0);
	x->ui = (struct ui_input){ .kbd = x->kbd.in, .tablet = x->tablet.in, .display = x->d };
	*state = x;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *x = *state;

	fin_free(&x->kbd);
	fin_free(&x->tablet);
	display_destroy(x->d);
	free(x);
	return 0;
}

/* Everything the device sent so far, the driver keeping its queue full of buffers (a used
 * buffer is read before its descriptor is made available again). */
static unsigned take_all(struct fin *f, struct virtio_input_event *out, unsigned max)
{
	unsigned n = 0;

	for (bool posted = false;; posted = true) {
		unsigned got = fin_take(f, out + n, max - n);
		uint16_t outstanding;

		n += got;
		if (!got && posted)
			break;
		outstanding = (uint16_t)(f->evq.avail_idx - fake_vq_used_idx(&f->evq));
		fin_post(f, QSIZE - outstanding);
	}
	return n;
}

/* Expected events, built one key transition (then SYN_REPORT) at a time. */
struct seq {
	struct virtio_input_event ev[1024];
	unsigned n;
};

static void seq_key(struct seq *s, uint16_t code, bool down)
{
	s->ev[s->n++] = (struct virtio_input_event){ EV_KEY, code, down };
	s->ev[s->n++] = (struct virtio_input_event){ EV_SYN, SYN_REPORT, 0 };
}

static void seq_tap(struct seq *s, uint16_t code, bool shift)
{
	if (shift)
		seq_key(s, KEY_LEFTSHIFT, true);
	seq_key(s, code, true);
	seq_key(s, code, false);
	if (shift)
		seq_key(s, KEY_LEFTSHIFT, false);
}

static void expect_seq(const struct virtio_input_event *got, unsigned n, const struct seq *s)
{
	assert_int_equal(n, s->n);
	for (unsigned i = 0; i < n; i++)
		if (got[i].type != s->ev[i].type || got[i].code != s->ev[i].code ||
		    got[i].value != s->ev[i].value)
			fail_msg("event %u: %u/%u/%u, want %u/%u/%u", i, got[i].type, got[i].code,
				 got[i].value, s->ev[i].type, s->ev[i].code, s->ev[i].value);
}

/* The test line, key by key as a US keyboard types it. */
static void test_type_echo(void **state)
{
	struct fixture *x = *state;
	static const struct {
		uint16_t code;
		bool shift;
	} keys[] = {
		{ KEY_E, 0 }, { KEY_C, 0 }, { KEY_H, 0 },     { KEY_O, 0 },	{ KEY_SPACE, 0 },
		{ KEY_I, 0 }, { KEY_G, 0 }, { KEY_N, 0 },     { KEY_I, 0 },	{ KEY_T, 0 },
		{ KEY_I, 0 }, { KEY_O, 0 }, { KEY_N, 0 },     { KEY_MINUS, 0 }, { KEY_4, 1 },
		{ KEY_9, 1 }, { KEY_9, 1 }, { KEY_6, 0 },     { KEY_8, 1 },	{ KEY_7, 0 },
		{ KEY_0, 1 }, { KEY_0, 1 }, { KEY_ENTER, 0 },
	};
	static struct virtio_input_event got[1024];
	static struct seq want;
	char err[128] = "";

	want.n = 0;
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		seq_tap(&want, keys[i].code, keys[i].shift);
	assert_int_equal(ui_type(&x->ui, "echo ignition-$((6*7))\n", err, sizeof(err)), 0);
	expect_seq(got, take_all(&x->kbd, got, 1024), &want);
	/* Nothing is held afterwards. */
	assert_false(virtio_input_key_down(x->kbd.in, KEY_LEFTSHIFT));
	assert_false(virtio_input_key_down(x->kbd.in, KEY_0));
}

static void test_type_all_printable(void **state)
{
	struct fixture *x = *state;
	static struct virtio_input_event got[2048];
	static const char upper[] = "AZ~_+{}|:\"<>?!@#%^&*)";
	static const char lower[] = "az`-=[]\\;',./1230 \t";
	char err[128];
	unsigned n;

	assert_int_equal(ui_type(&x->ui, upper, err, sizeof(err)), 0);
	n = take_all(&x->kbd, got, 2048);
	assert_int_equal(n, 8 * strlen(upper)); /* every one with shift */
	for (unsigned i = 0; i < n; i += 8)
		assert_int_equal(got[i].code, KEY_LEFTSHIFT);
	assert_int_equal(ui_type(&x->ui, lower, err, sizeof(err)), 0);
	n = take_all(&x->kbd, got, 2048);
	assert_int_equal(n, 4 * strlen(lower)); /* none with shift */
	assert_int_equal(got[4 * (strlen(lower) - 1)].code, KEY_TAB);
	assert_int_equal(got[4 * (strlen(lower) - 2)].code, KEY_SPACE);
	assert_int_equal(got[4 * 2].code, KEY_GRAVE);
	assert_int_equal(got[4 * 5].code, KEY_LEFTBRACE);
}

static void test_type_refused(void **state)
{
	struct fixture *x = *state;
	struct virtio_input_event got[16];
	char err[128] = "";

	assert_int_equal(ui_type(&x->ui, "ok\x01", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "0x01"));
	assert_non_null(strstr(err, "offset 2"));
	assert_int_equal(ui_type(&x->ui, "caf\xc3\xa9", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "0xc3"));
	assert_int_equal(virtio_input_pending(x->kbd.in), 0);
	assert_int_equal(take_all(&x->kbd, got, 16), 0);
	/* No keyboard. */
	x->ui.kbd = NULL;
	assert_int_equal(ui_type(&x->ui, "a", err, sizeof(err)), -ENODEV);
	assert_int_equal(ui_keys(&x->ui, "a", err, sizeof(err)), -ENODEV);
	assert_int_equal(ui_key(&x->ui, KEY_A, true), -ENODEV);
}

static void test_keys_combo(void **state)
{
	struct fixture *x = *state;
	static struct virtio_input_event got[64];
	struct seq want = { .n = 0 };
	char err[128] = "";

	seq_key(&want, KEY_LEFTCTRL, true);
	seq_key(&want, KEY_LEFTALT, true);
	seq_key(&want, KEY_T, true);
	seq_key(&want, KEY_T, false);
	seq_key(&want, KEY_LEFTALT, false);
	seq_key(&want, KEY_LEFTCTRL, false);
	assert_int_equal(ui_keys(&x->ui, "ctrl+alt+t", err, sizeof(err)), 0);
	expect_seq(got, take_all(&x->kbd, got, 64), &want);
	/* Case-insensitive names, one key alone, synonyms. */
	want.n = 0;
	seq_key(&want, KEY_LEFTSHIFT, true);
	seq_key(&want, KEY_TAB, true);
	seq_key(&want, KEY_TAB, false);
	seq_key(&want, KEY_LEFTSHIFT, false);
	seq_tap(&want, KEY_ENTER, false);
	seq_tap(&want, KEY_PAGEUP, false);
	seq_tap(&want, KEY_F12, false);
	assert_int_equal(ui_keys(&x->ui, "SHIFT+Tab", err, sizeof(err)), 0);
	assert_int_equal(ui_keys(&x->ui, "Return", err, sizeof(err)), 0);
	assert_int_equal(ui_keys(&x->ui, "Prior", err, sizeof(err)), 0);
	assert_int_equal(ui_keys(&x->ui, "f12", err, sizeof(err)), 0);
	expect_seq(got, take_all(&x->kbd, got, 64), &want);
	/* ui_key: one transition. */
	want.n = 0;
	seq_key(&want, KEY_ESC, true);
	assert_int_equal(ui_key(&x->ui, KEY_ESC, true), 0);
	expect_seq(got, take_all(&x->kbd, got, 64), &want);
	assert_true(virtio_input_key_down(x->kbd.in, KEY_ESC));
	assert_int_equal(ui_key(&x->ui, BTN_LEFT, true), -EINVAL); /* not a keyboard key */
}

static void test_keys_unknown(void **state)
{
	struct fixture *x = *state;
	struct virtio_input_event got[16];
	char err[128] = "";

	assert_int_equal(ui_keys(&x->ui, "ctrl+alt+frobnicate", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "'frobnicate'"));
	assert_int_equal(ui_keys(&x->ui, "ctrl++t", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "empty"));
	assert_int_equal(ui_keys(&x->ui, "", err, sizeof(err)), -EINVAL);
	assert_int_equal(ui_keys(&x->ui, "f13", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "f13"));
	assert_int_equal(ui_keys(&x->ui, "$", err, sizeof(err)), -EINVAL);
	assert_int_equal(ui_keys(&x->ui, "a+b+c+d+e+f+g+h+i", err, sizeof(err)), -EINVAL);
	assert_int_equal(ui_keys(&x->ui, "ctrl+x", NULL, 0), 0); /* no err buffer needed */
	assert_int_equal(take_all(&x->kbd, got, 16), 8);
	assert_int_equal(ui_keys(&x->ui, "nope", NULL, 0), -EINVAL);
	assert_int_equal(virtio_input_pending(x->kbd.in), 0);
	assert_int_equal(take_all(&x->kbd, got, 16), 0);
}

static void test_key_names(void **state)
{
	static const struct {
		const char *name;
		uint16_t code;
	} t[] = {
		{ "a", KEY_A },
		{ "Z", KEY_Z },
		{ "5", KEY_5 },
		{ "0", KEY_0 },
		{ "F1", KEY_F1 },
		{ "F10", KEY_F10 },
		{ "F11", KEY_F11 },
		{ "Enter", KEY_ENTER },
		{ "Esc", KEY_ESC },
		{ "Escape", KEY_ESC },
		{ "BackSpace", KEY_BACKSPACE },
		{ "space", KEY_SPACE },
		{ "Delete", KEY_DELETE },
		{ "Insert", KEY_INSERT },
		{ "Home", KEY_HOME },
		{ "End", KEY_END },
		{ "PageDown", KEY_PAGEDOWN },
		{ "Next", KEY_PAGEDOWN },
		{ "Up", KEY_UP },
		{ "Down", KEY_DOWN },
		{ "Left", KEY_LEFT },
		{ "Right", KEY_RIGHT },
		{ "control", KEY_LEFTCTRL },
		{ "rctrl", KEY_RIGHTCTRL },
		{ "altgr", KEY_RIGHTALT },
		{ "super", KEY_LEFTMETA },
		{ "Meta", KEY_LEFTMETA },
		{ "win", KEY_LEFTMETA },
		{ "minus", KEY_MINUS },
		{ "-", KEY_MINUS },
		{ "equal", KEY_EQUAL },
		{ "bracketleft", KEY_LEFTBRACE },
		{ "[", KEY_LEFTBRACE },
		{ "bracketright", KEY_RIGHTBRACE },
		{ "backslash", KEY_BACKSLASH },
		{ "semicolon", KEY_SEMICOLON },
		{ "apostrophe", KEY_APOSTROPHE },
		{ "grave", KEY_GRAVE },
		{ "comma", KEY_COMMA },
		{ "period", KEY_DOT },
		{ "slash", KEY_SLASH },
		{ "/", KEY_SLASH },
		{ "", 0 },
		{ "F0", 0 },
		{ "Fx", 0 },
		{ "nosuchkey", 0 },
		{ "a_very_long_name_that_is_longer_than_any_key", 0 },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (ui_key_code(t[i].name) != t[i].code)
			fail_msg("'%s': %u, want %u", t[i].name, ui_key_code(t[i].name), t[i].code);
	assert_int_equal(ui_key_code(NULL), 0);
}

/* Check one pointer event group: ABS_X, ABS_Y, then `nb` button changes, SYN. */
static void expect_pointer(struct fixture *x, uint32_t ax, uint32_t ay, const uint16_t *btn,
			   const uint32_t *val, unsigned nb)
{
	struct virtio_input_event got[16];
	unsigned n = take_all(&x->tablet, got, 16);

	assert_int_equal(n, 3 + nb);
	assert_int_equal(got[0].type, EV_ABS);
	assert_int_equal(got[0].code, ABS_X);
	assert_int_equal(got[0].value, ax);
	assert_int_equal(got[1].type, EV_ABS);
	assert_int_equal(got[1].code, ABS_Y);
	assert_int_equal(got[1].value, ay);
	for (unsigned i = 0; i < nb; i++) {
		assert_int_equal(got[2 + i].type, EV_KEY);
		assert_int_equal(got[2 + i].code, btn[i]);
		assert_int_equal(got[2 + i].value, val[i]);
	}
	assert_int_equal(got[2 + nb].type, EV_SYN);
}

static void test_pointer_scaling(void **state)
{
	struct fixture *x = *state;
	const uint32_t M = VIRTIO_INPUT_ABS_MAX;

	/* No active mode: the preferred one (1024x768). */
	assert_int_equal(ui_pointer(&x->ui, 0, 0, 0), 0);
	expect_pointer(x, 0, 0, NULL, NULL, 0);
	assert_int_equal(ui_pointer(&x->ui, 1023, 767, 0), 0);
	expect_pointer(x, M, M, NULL, NULL, 0);
	assert_int_equal(ui_pointer(&x->ui, 1023, 0, 0), 0);
	expect_pointer(x, M, 0, NULL, NULL, 0);
	assert_int_equal(ui_pointer(&x->ui, 0, 767, 0), 0);
	expect_pointer(x, 0, M, NULL, NULL, 0);
	/* Clamped beyond the screen. */
	assert_int_equal(ui_pointer(&x->ui, 5000, UINT32_MAX, 0), 0);
	expect_pointer(x, M, M, NULL, NULL, 0);
	assert_int_equal(ui_pointer(&x->ui, 511, 383, 0), 0);
	expect_pointer(x, 511u * M / 1023, 383u * M / 767, NULL, NULL, 0);
	/* The guest's active mode wins. */
	assert_int_equal(display_set_mode(x->d, 800, 600, true), 0);
	assert_int_equal(ui_pointer(&x->ui, 799, 599, 0), 0);
	expect_pointer(x, M, M, NULL, NULL, 0);
	assert_int_equal(ui_pointer(&x->ui, 400, 300, 0), 0);
	expect_pointer(x, 400u * M / 799, 300u * M / 599, NULL, NULL, 0);
	/* Without a display: tablet coordinates as they are. */
	x->ui.display = NULL;
	assert_int_equal(ui_pointer(&x->ui, 1234, M + 10, 0), 0);
	expect_pointer(x, 1234, M, NULL, NULL, 0);
}

static void test_pointer_buttons(void **state)
{
	struct fixture *x = *state;
	const uint16_t l[] = { BTN_LEFT }, lr[] = { BTN_LEFT, BTN_RIGHT },
		       rm[] = { BTN_RIGHT, BTN_MIDDLE };
	const uint32_t one[] = { 1 }, zero[] = { 0 }, onezero[] = { 0, 1 };

	assert_int_equal(ui_pointer(&x->ui, 0, 0, UI_BUTTON_LEFT), 0);
	expect_pointer(x, 0, 0, l, one, 1);
	/* Held: only the move. */
	assert_int_equal(ui_pointer(&x->ui, 0, 0, UI_BUTTON_LEFT), 0);
	expect_pointer(x, 0, 0, NULL, NULL, 0);
	assert_int_equal(ui_pointer(&x->ui, 0, 0, UI_BUTTON_RIGHT), 0);
	expect_pointer(x, 0, 0, lr, onezero, 2);
	assert_int_equal(ui_pointer(&x->ui, 0, 0, UI_BUTTON_MIDDLE), 0);
	expect_pointer(x, 0, 0, rm, onezero, 2);
	assert_int_equal(ui_pointer(&x->ui, 0, 0, 0), 0);
	expect_pointer(x, 0, 0, rm + 1, zero, 1);
	assert_int_equal(ui_pointer(&x->ui, 0, 0, 8), -EINVAL);
	assert_int_equal(virtio_input_pending(x->tablet.in), 0);
	x->ui.tablet = NULL;
	assert_int_equal(ui_pointer(&x->ui, 0, 0, 0), -ENODEV);
	assert_int_equal(ui_wheel(&x->ui, 1), -ENODEV);
}

static void test_wheel(void **state)
{
	struct fixture *x = *state;
	struct virtio_input_event got[8];

	assert_int_equal(ui_wheel(&x->ui, -2), 0);
	assert_int_equal(ui_wheel(&x->ui, 0), 0); /* nothing */
	assert_int_equal(ui_wheel(&x->ui, 3), 0);
	assert_int_equal(take_all(&x->tablet, got, 8), 4);
	assert_int_equal(got[0].type, EV_REL);
	assert_int_equal(got[0].code, REL_WHEEL);
	assert_int_equal((int32_t)got[0].value, -2);
	assert_int_equal(got[1].type, EV_SYN);
	assert_int_equal(got[2].value, 3);
}

static void test_keysyms(void **state)
{
	static const struct {
		uint32_t sym;
		uint16_t code;
		bool shift;
	} t[] = {
		{ 'a', KEY_A, false },
		{ 'A', KEY_A, true },
		{ '$', KEY_4, true },
		{ '4', KEY_4, false },
		{ ' ', KEY_SPACE, false },
		{ '~', KEY_GRAVE, true },
		{ '/', KEY_SLASH, false },
		{ '?', KEY_SLASH, true },
		{ 0xff08, KEY_BACKSPACE, false },
		{ 0xff09, KEY_TAB, false },
		{ 0xff0d, KEY_ENTER, false },
		{ 0xff1b, KEY_ESC, false },
		{ 0xffff, KEY_DELETE, false },
		{ 0xff50, KEY_HOME, false },
		{ 0xff51, KEY_LEFT, false },
		{ 0xff52, KEY_UP, false },
		{ 0xff53, KEY_RIGHT, false },
		{ 0xff54, KEY_DOWN, false },
		{ 0xff55, KEY_PAGEUP, false },
		{ 0xff56, KEY_PAGEDOWN, false },
		{ 0xff57, KEY_END, false },
		{ 0xff63, KEY_INSERT, false },
		{ 0xffbe, KEY_F1, false },
		{ 0xffc7, KEY_F10, false },
		{ 0xffc8, KEY_F11, false },
		{ 0xffc9, KEY_F12, false },
		{ 0xffe1, KEY_LEFTSHIFT, false },
		{ 0xffe2, KEY_RIGHTSHIFT, false },
		{ 0xffe3, KEY_LEFTCTRL, false },
		{ 0xffe4, KEY_RIGHTCTRL, false },
		{ 0xffe5, KEY_CAPSLOCK, false },
		{ 0xffe7, KEY_LEFTMETA, false },
		{ 0xffe8, KEY_RIGHTMETA, false },
		{ 0xffe9, KEY_LEFTALT, false },
		{ 0xffea, KEY_RIGHTALT, false },
		{ 0xffeb, KEY_LEFTMETA, false },
		{ 0xffec, KEY_RIGHTMETA, false },
		{ 0xffb0, KEY_KP0, false },
		{ 0xffb9, KEY_KP9, false },
		{ 0xff8d, KEY_KPENTER, false },
		{ 0x1f, 0, false },
		{ 0x7f, 0, false },
		{ 0xe9, 0, false }, /* eacute: no US key */
		{ 0xffca, 0, false },
		{ 0x1000000, 0, false },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		bool shift = !t[i].shift;
		uint16_t code = ui_keysym_code(t[i].sym, &shift);

		if (code != t[i].code || shift != t[i].shift)
			fail_msg("keysym %#x: %u shift %d, want %u shift %d", t[i].sym, code, shift,
				 t[i].code, t[i].shift);
	}
	assert_int_equal(ui_keysym_code('B', NULL), KEY_B);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_type_echo, setup, teardown),
		cmocka_unit_test_setup_teardown(test_type_all_printable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_type_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keys_combo, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keys_unknown, setup, teardown),
		cmocka_unit_test(test_key_names),
		cmocka_unit_test_setup_teardown(test_pointer_scaling, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pointer_buttons, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wheel, setup, teardown),
		cmocka_unit_test(test_keysyms),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
