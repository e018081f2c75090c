/* Front-end input: key names, text and pointer positions turned into virtio-input events for
 * a US keyboard layout.  Every key event is its own group (the event, then SYN_REPORT), as a
 * real keyboard reports them; a combination or a character goes to the device in one
 * virtio_input_send(), so it is queued whole or refused whole. */
#include "ui/input.h"

#include "devices/virtio/input.h"
#include "ui/display.h"

#include <errno.h>
#include <linux/input-event-codes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Most keys in one combination ("ctrl+alt+shift+t" is four). */
#define MAX_COMBO 8

struct key_name {
	const char *name;
	uint16_t code;
};

/* Names beyond single characters and F1..F12 (those are parsed), compared case-insensitively.
 * X11 keysym names are accepted where they differ (Prior/Next, Control_L...). */
static const struct key_name names[] = {
	{ "return", KEY_ENTER },
	{ "enter", KEY_ENTER },
	{ "escape", KEY_ESC },
	{ "esc", KEY_ESC },
	{ "tab", KEY_TAB },
	{ "backspace", KEY_BACKSPACE },
	{ "space", KEY_SPACE },
	{ "delete", KEY_DELETE },
	{ "del", KEY_DELETE },
	{ "insert", KEY_INSERT },
	{ "ins", KEY_INSERT },
	{ "home", KEY_HOME },
	{ "end", KEY_END },
	{ "pageup", KEY_PAGEUP },
	{ "page_up", KEY_PAGEUP },
	{ "prior", KEY_PAGEUP },
	{ "pagedown", KEY_PAGEDOWN },
	{ "page_down", KEY_PAGEDOWN },
	{ "next", KEY_PAGEDOWN },
	{ "up", KEY_UP },
	{ "down", KEY_DOWN },
	{ "left", KEY_LEFT },
	{ "right", KEY_RIGHT },
	{ "ctrl", KEY_LEFTCTRL },
	{ "control", KEY_LEFTCTRL },
	{ "lctrl", KEY_LEFTCTRL },
	{ "ctrl_l", KEY_LEFTCTRL },
	{ "control_l", KEY_LEFTCTRL },
	{ "rctrl", KEY_RIGHTCTRL },
	{ "ctrl_r", KEY_RIGHTCTRL },
	{ "control_r", KEY_RIGHTCTRL },
	{ "shift", KEY_LEFTSHIFT },
	{ "lshift", KEY_LEFTSHIFT },
	{ "shift_l", KEY_LEFTSHIFT },
	{ "rshift", KEY_RIGHTSHIFT },
	{ "shift_r", KEY_RIGHTSHIFT },
	{ "alt", KEY_LEFTALT },
	{ "lalt", KEY_LEFTALT },
	{ "alt_l", KEY_LEFTALT },
	{ "altgr", KEY_RIGHTALT },
	{ "ralt", KEY_RIGHTALT },
	{ "alt_r", KEY_RIGHTALT },
	{ "super", KEY_LEFTMETA },
	{ "meta", KEY_LEFTMETA },
	{ "win", KEY_LEFTMETA },
	{ "super_l", KEY_LEFTMETA },
	{ "meta_l", KEY_LEFTMETA },
	{ "rsuper", KEY_RIGHTMETA },
	{ "super_r", KEY_RIGHTMETA },
	{ "meta_r", KEY_RIGHTMETA },
	{ "menu", KEY_COMPOSE },
	{ "capslock", KEY_CAPSLOCK },
	{ "caps_lock", KEY_CAPSLOCK },
	{ "numlock", KEY_NUMLOCK },
	{ "num_lock", KEY_NUMLOCK },
	{ "scrolllock", KEY_SCROLLLOCK },
	{ "scroll_lock", KEY_SCROLLLOCK },
	{ "print", KEY_SYSRQ },
	{ "sysrq", KEY_SYSRQ },
	{ "pause", KEY_PAUSE },
	{ "minus", KEY_MINUS },
	{ "equal", KEY_EQUAL },
	{ "bracketleft", KEY_LEFTBRACE },
	{ "bracketright", KEY_RIGHTBRACE },
	{ "backslash", KEY_BACKSLASH },
	{ "semicolon", KEY_SEMICOLON },
	{ "apostrophe", KEY_APOSTROPHE },
	{ "quote", KEY_APOSTROPHE },
	{ "grave", KEY_GRAVE },
	{ "comma", KEY_COMMA },
	{ "period", KEY_DOT },
	{ "dot", KEY_DOT },
	{ "slash", KEY_SLASH },
	{ "kp_0", KEY_KP0 },
	{ "kp_1", KEY_KP1 },
	{ "kp_2", KEY_KP2 },
	{ "kp_3", KEY_KP3 },
	{ "kp_4", KEY_KP4 },
	{ "kp_5", KEY_KP5 },
	{ "kp_6", KEY_KP6 },
	{ "kp_7", KEY_KP7 },
	{ "kp_8", KEY_KP8 },
	{ "kp_9", KEY_KP9 },
	{ "kp_enter", KEY_KPENTER },
	{ "kp_add", KEY_KPPLUS },
	{ "kp_subtract", KEY_KPMINUS },
	{ "kp_multiply", KEY_KPASTERISK },
	{ "kp_divide", KEY_KPSLASH },
	{ "kp_decimal", KEY_KPDOT },
};

static const uint16_t letters[26] = {
	KEY_A, KEY_B, KEY_C, KEY_D, KEY_E, KEY_F, KEY_G, KEY_H, KEY_I, KEY_J, KEY_K, KEY_L, KEY_M,
	KEY_N, KEY_O, KEY_P, KEY_Q, KEY_R, KEY_S, KEY_T, KEY_U, KEY_V, KEY_W, KEY_X, KEY_Y, KEY_Z,
};

/* Shifted digits of the US layout: !@#$%^&*() over 1..0. */
static const char shifted_digits[] = ")!@#$%^&*(";

/* Punctuation keys of the US layout: the unshifted character, the shifted one, the key. */
static const struct {
	char plain, shifted;
	uint16_t code;
} punct[] = {
	{ '-', '_', KEY_MINUS },       { '=', '+', KEY_EQUAL },	     { '[', '{', KEY_LEFTBRACE },
	{ ']', '}', KEY_RIGHTBRACE },  { '\\', '|', KEY_BACKSLASH }, { ';', ':', KEY_SEMICOLON },
	{ '\'', '"', KEY_APOSTROPHE }, { '`', '~', KEY_GRAVE },	     { ',', '<', KEY_COMMA },
	{ '.', '>', KEY_DOT },	       { '/', '?', KEY_SLASH },
};

static uint16_t digit_key(int d)
{
	return d == 0 ? KEY_0 : (uint16_t)(KEY_1 + d - 1);
}

/* The key (and whether shift) that types character c on a US keyboard; 0 if none. */
static uint16_t char_key(int c, bool *shift)
{
	*shift = false;
	if (c >= 'a' && c <= 'z')
		return letters[c - 'a'];
	if (c >= 'A' && c <= 'Z') {
		*shift = true;
		return letters[c - 'A'];
	}
	if (c >= '0' && c <= '9')
		return digit_key(c - '0');
	for (int d = 0; d < 10; d++)
		if (c == shifted_digits[d]) {
			*shift = true;
			return digit_key(d);
		}
	for (size_t i = 0; i < sizeof(punct) / sizeof(punct[0]); i++) {
		if (c == punct[i].plain)
			return punct[i].code;
		if (c == punct[i].shifted) {
			*shift = true;
			return punct[i].code;
		}
	}
	switch (c) {
	case ' ':
		return KEY_SPACE;
	case '\n':
		return KEY_ENTER;
	case '\t':
		return KEY_TAB;
	}
	return 0;
}

/* Look up `len` bytes of `name` (not NUL-terminated). */
static uint16_t key_code_n(const char *name, size_t len)
{
	char buf[32];

	if (!len || len >= sizeof(buf))
		return 0;
	memcpy(buf, name, len);
	buf[len] = '\0';
	if (len == 1) {
		bool shift;
		uint16_t code = char_key(buf[0], &shift);

		/* A letter in either case names its key; other characters that need shift
		 * ("$") name no key of their own. */
		if (code && (!shift || (buf[0] >= 'A' && buf[0] <= 'Z')))
			return code;
		return 0;
	}
	if ((buf[0] == 'f' || buf[0] == 'F') && len <= 3 && buf[1] >= '1' && buf[1] <= '9') {
		int n = buf[1] - '0';

		if (len == 3) {
			if (buf[2] < '0' || buf[2] > '9')
				return 0;
			n = n * 10 + buf[2] - '0';
		}
		if (n >= 1 && n <= 10)
			return (uint16_t)(KEY_F1 + n - 1);
		if (n == 11)
			return KEY_F11;
		if (n == 12)
			return KEY_F12;
		return 0;
	}
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcasecmp(buf, names[i].name))
			return names[i].code;
	return 0;
}

uint16_t ui_key_code(const char *name)
{
	return name ? key_code_n(name, strlen(name)) : 0;
}

static struct virtio_input_event key_ev(uint16_t code, bool down)
{
	return (struct virtio_input_event){ VIRTIO_INPUT_EV_KEY, code, down ? 1u : 0u };
}

static const struct virtio_input_event syn_ev = { VIRTIO_INPUT_EV_SYN, VIRTIO_INPUT_SYN_REPORT, 0 };

int ui_key(const struct ui_input *in, uint16_t code, bool down)
{
	struct virtio_input_event ev[2] = { key_ev(code, down), syn_ev };

	if (!in || !in->kbd)
		return -ENODEV;
	return virtio_input_send(in->kbd, ev, 2);
}

int ui_keys(const struct ui_input *in, const char *combo, char *err, size_t n)
{
	struct virtio_input_event ev[4 * MAX_COMBO];
	uint16_t codes[MAX_COMBO];
	unsigned nk = 0, ne = 0;
	const char *p = combo;

	if (!in || !in->kbd)
		return -ENODEV;
	if (!combo || !*combo) {
		if (err && n)
			snprintf(err, n, "empty key combination");
		return -EINVAL;
	}
	for (;;) {
		const char *end = strchr(p, '+');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		uint16_t code = key_code_n(p, len);

		if (!code) {
			if (err && n && len)
				snprintf(err, n, "unknown key '%.*s'", (int)len, p);
			else if (err && n)
				snprintf(err, n, "empty key name in '%s'", combo);
			return -EINVAL;
		}
		if (nk == MAX_COMBO) {
			if (err && n)
				snprintf(err, n, "more than %d keys in '%s'", MAX_COMBO, combo);
			return -EINVAL;
		}
		codes[nk++] = code;
		if (!end)
			break;
		p = end + 1;
	}
	for (unsigned i = 0; i < nk; i++) {
		ev[ne++] = key_ev(codes[i], true);
		ev[ne++] = syn_ev;
	}
	for (unsigned i = nk; i-- > 0;) {
		ev[ne++] = key_ev(codes[i], false);
		ev[ne++] = syn_ev;
	}
	return virtio_input_send(in->kbd, ev, ne);
}

int ui_type(const struct ui_input *in, const char *text, char *err, size_t n)
{
	if (!in || !in->kbd)
		return -ENODEV;
	if (!text)
		return -EINVAL;
	/* Check everything first: an error types nothing. */
	for (size_t i = 0; text[i]; i++) {
		bool shift;

		if (!char_key((unsigned char)text[i], &shift)) {
			if (err && n)
				snprintf(err, n, "cannot type character 0x%02x at offset %zu",
					 (unsigned char)text[i], i);
			return -EINVAL;
		}
	}
	for (size_t i = 0; text[i]; i++) {
		struct virtio_input_event ev[8];
		unsigned ne = 0;
		bool shift;
		uint16_t code = char_key((unsigned char)text[i], &shift);
		int ret;

		if (shift) {
			ev[ne++] = key_ev(KEY_LEFTSHIFT, true);
			ev[ne++] = syn_ev;
		}
		ev[ne++] = key_ev(code, true);
		ev[ne++] = syn_ev;
		ev[ne++] = key_ev(code, false);
		ev[ne++] = syn_ev;
		if (shift) {
			ev[ne++] = key_ev(KEY_LEFTSHIFT, false);
			ev[ne++] = syn_ev;
		}
		ret = virtio_input_send(in->kbd, ev, ne);
		if (ret) {
			if (err && n)
				snprintf(err, n, "typing stopped at offset %zu: %s", i,
					 strerror(-ret));
			return ret;
		}
	}
	return 0;
}

/* Screen pixel v of a dimension of `size` pixels on the 0..VIRTIO_INPUT_ABS_MAX axis: the
 * first pixel is 0, the last ABS_MAX, beyond the screen clamps to the edge. */
static uint32_t scale(uint32_t v, uint32_t size)
{
	if (size <= 1)
		return 0;
	if (v > size - 1)
		v = size - 1;
	return (uint32_t)((uint64_t)v * VIRTIO_INPUT_ABS_MAX / (size - 1));
}

int ui_pointer(const struct ui_input *in, uint32_t x, uint32_t y, uint32_t buttons)
{
	static const struct {
		uint32_t bit;
		uint16_t code;
	} btn[] = {
		{ UI_BUTTON_LEFT, BTN_LEFT },
		{ UI_BUTTON_RIGHT, BTN_RIGHT },
		{ UI_BUTTON_MIDDLE, BTN_MIDDLE },
	};
	struct virtio_input_event ev[6];
	uint32_t w = VIRTIO_INPUT_ABS_MAX + 1, h = VIRTIO_INPUT_ABS_MAX + 1;
	unsigned ne = 0;

	if (!in || !in->tablet)
		return -ENODEV;
	if (buttons & ~(UI_BUTTON_LEFT | UI_BUTTON_RIGHT | UI_BUTTON_MIDDLE))
		return -EINVAL;
	/* Without a display the coordinates are the tablet's own. */
	if (in->display && !display_mode(in->display, &w, &h))
		display_preferred(in->display, &w, &h);
	ev[ne++] =
		(struct virtio_input_event){ VIRTIO_INPUT_EV_ABS, VIRTIO_INPUT_ABS_X, scale(x, w) };
	ev[ne++] =
		(struct virtio_input_event){ VIRTIO_INPUT_EV_ABS, VIRTIO_INPUT_ABS_Y, scale(y, h) };
	/* Only the buttons whose state changes, against what the device last took from us. */
	for (size_t i = 0; i < sizeof(btn) / sizeof(btn[0]); i++) {
		bool want = buttons & btn[i].bit;

		if (virtio_input_key_down(in->tablet, btn[i].code) != want)
			ev[ne++] = key_ev(btn[i].code, want);
	}
	ev[ne++] = syn_ev;
	return virtio_input_send(in->tablet, ev, ne);
}

int ui_wheel(const struct ui_input *in, int clicks)
{
	struct virtio_input_event ev[2] = {
		{ VIRTIO_INPUT_EV_REL, VIRTIO_INPUT_REL_WHEEL, (uint32_t)(int32_t)clicks },
		syn_ev,
	};

	if (!in || !in->tablet)
		return -ENODEV;
	if (!clicks)
		return 0;
	return virtio_input_send(in->tablet, ev, 2);
}

uint16_t ui_keysym_code(uint32_t keysym, bool *shift)
{
	bool s = false;
	uint16_t code = 0;

	if (keysym >= 0x20 && keysym <= 0x7e) {
		code = char_key((int)keysym, &s);
	} else if (keysym >= 0xffbe && keysym <= 0xffc7) {
		code = (uint16_t)(KEY_F1 + keysym - 0xffbe);
	} else if (keysym >= 0xffb0 && keysym <= 0xffb9) {
		static const uint16_t kp[10] = { KEY_KP0, KEY_KP1, KEY_KP2, KEY_KP3, KEY_KP4,
						 KEY_KP5, KEY_KP6, KEY_KP7, KEY_KP8, KEY_KP9 };

		code = kp[keysym - 0xffb0];
	} else {
		switch (keysym) {
		case 0xffc8:
			code = KEY_F11;
			break;
		case 0xffc9:
			code = KEY_F12;
			break;
		case 0xff08:
			code = KEY_BACKSPACE;
			break;
		case 0xff09:
			code = KEY_TAB;
			break;
		case 0xff0d:
			code = KEY_ENTER;
			break;
		case 0xff13:
			code = KEY_PAUSE;
			break;
		case 0xff14:
			code = KEY_SCROLLLOCK;
			break;
		case 0xff15:
			code = KEY_SYSRQ;
			break;
		case 0xff1b:
			code = KEY_ESC;
			break;
		case 0xffff:
			code = KEY_DELETE;
			break;
		case 0xff50:
			code = KEY_HOME;
			break;
		case 0xff51:
			code = KEY_LEFT;
			break;
		case 0xff52:
			code = KEY_UP;
			break;
		case 0xff53:
			code = KEY_RIGHT;
			break;
		case 0xff54:
			code = KEY_DOWN;
			break;
		case 0xff55:
			code = KEY_PAGEUP;
			break;
		case 0xff56:
			code = KEY_PAGEDOWN;
			break;
		case 0xff57:
			code = KEY_END;
			break;
		case 0xff61:
			code = KEY_SYSRQ;
			break; /* Print */
		case 0xff63:
			code = KEY_INSERT;
			break;
		case 0xff67:
			code = KEY_COMPOSE;
			break; /* Menu */
		case 0xff7f:
			code = KEY_NUMLOCK;
			break;
		case 0xff8d:
			code = KEY_KPENTER;
			break;
		case 0xffaa:
			code = KEY_KPASTERISK;
			break;
		case 0xffab:
			code = KEY_KPPLUS;
			break;
		case 0xffad:
			code = KEY_KPMINUS;
			break;
		case 0xffae:
			code = KEY_KPDOT;
			break;
		case 0xffaf:
			code = KEY_KPSLASH;
			break;
		case 0xffe1:
			code = KEY_LEFTSHIFT;
			break;
		case 0xffe2:
			code = KEY_RIGHTSHIFT;
			break;
		case 0xffe3:
			code = KEY_LEFTCTRL;
			break;
		case 0xffe4:
			code = KEY_RIGHTCTRL;
			break;
		case 0xffe5:
			code = KEY_CAPSLOCK;
			break;
		case 0xffe7:
			code = KEY_LEFTMETA;
			break;
		case 0xffe8:
			code = KEY_RIGHTMETA;
			break;
		case 0xffe9:
			code = KEY_LEFTALT;
			break;
		case 0xffea:
			code = KEY_RIGHTALT;
			break;
		case 0xffeb:
			code = KEY_LEFTMETA;
			break;
		case 0xffec:
			code = KEY_RIGHTMETA;
			break;
		case 0xfe03:
			code = KEY_RIGHTALT;
			break; /* ISO_Level3_Shift (AltGr) */
		}
	}
	if (shift)
		*shift = code ? s : false;
	return code;
}
