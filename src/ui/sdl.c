/* The SDL2 window (sdl.h).
 *
 * Threads: sdl_start() (main thread) starts the "sdl" thread and waits for it to report that
 * the window is up, so a missing X11/Wayland display is one line at start.  Everything SDL is
 * done on that thread: initialisation, events, drawing and SDL_Quit().  The display's
 * listener only records damage in the shadow copy (shadow.h); the thread waits for SDL events
 * with a 10 ms timeout and then copies what changed.  (Pushing an SDL event from the listener
 * would wake it sooner, but SDL_PushEvent() on X11 writes to the X server from the pushing
 * thread, which is the event loop holding the display lock: a slow X server would stall the
 * guest's GPU and the event loop's seccomp filter would see Xlib's system calls.)
 *
 * seccomp: the thread installs SECCOMP_THREAD_GUI once the window and renderer exist, a
 * deny-list rather than an allowlist (see seccomp.c for why). */
#include "ui/sdl.h"

#include "core/seccomp.h"
#include "ui/display.h"
#include "ui/input.h"
#include "ui/shadow.h"
#include "ui/ui.h"
#include "util/log.h"

#include <SDL2/SDL.h>
#include <errno.h>
#include <linux/input-event-codes.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Wait for SDL events at most this long before looking at the display again. */
#define SDL_POLL_MS 10
/* A window resize becomes a mode request once the size has been still this long. */
#define RESIZE_DEBOUNCE_MS 200
#define SDL_KEYS	   (KEY_MAX + 1)

struct sdl_ui {
	struct ui_shadow sh;
	struct display *d;
	const struct ui_input *in;
	void (*quit)(void *ctx);
	void (*snapshot)(void *ctx);
	void *ctx;
	pthread_t thread;
	sem_t ready;
	int init_ret;
	char init_err[256];
	bool stop; /* atomic */
	/* The sdl thread's own state. */
	SDL_Window *win;
	SDL_Renderer *ren;
	SDL_Texture *tex;
	uint32_t tex_w, tex_h;
	bool grabbed, fullscreen, redraw;
	uint32_t buttons;
	uint32_t px, py; /* the pointer's last position in the display */
	bool resize_pending;
	uint32_t resize_w, resize_h;
	uint32_t resize_at; /* SDL_GetTicks() deadline */
	uint8_t keys[SDL_KEYS / 8 + 1];
};

/* ---- keyboard map: SDL scancodes are USB HID usages (HID Usage Tables §10), which the US
 * layout pairs with these evdev codes ---- */

static const uint16_t keymap[SDL_NUM_SCANCODES] = {
	[SDL_SCANCODE_A] = KEY_A,
	[SDL_SCANCODE_B] = KEY_B,
	[SDL_SCANCODE_C] = KEY_C,
	[SDL_SCANCODE_D] = KEY_D,
	[SDL_SCANCODE_E] = KEY_E,
	[SDL_SCANCODE_F] = KEY_F,
	[SDL_SCANCODE_G] = KEY_G,
	[SDL_SCANCODE_H] = KEY_H,
	[SDL_SCANCODE_I] = KEY_I,
	[SDL_SCANCODE_J] = KEY_J,
	[SDL_SCANCODE_K] = KEY_K,
	[SDL_SCANCODE_L] = KEY_L,
	[SDL_SCANCODE_M] = KEY_M,
	[SDL_SCANCODE_N] = KEY_N,
	[SDL_SCANCODE_O] = KEY_O,
	[SDL_SCANCODE_P] = KEY_P,
	[SDL_SCANCODE_Q] = KEY_Q,
	[SDL_SCANCODE_R] = KEY_R,
	[SDL_SCANCODE_S] = KEY_S,
	[SDL_SCANCODE_T] = KEY_T,
	[SDL_SCANCODE_U] = KEY_U,
	[SDL_SCANCODE_V] = KEY_V,
	[SDL_SCANCODE_W] = KEY_W,
	[SDL_SCANCODE_X] = KEY_X,
	[SDL_SCANCODE_Y] = KEY_Y,
	[SDL_SCANCODE_Z] = KEY_Z,
	[SDL_SCANCODE_1] = KEY_1,
	[SDL_SCANCODE_2] = KEY_2,
	[SDL_SCANCODE_3] = KEY_3,
	[SDL_SCANCODE_4] = KEY_4,
	[SDL_SCANCODE_5] = KEY_5,
	[SDL_SCANCODE_6] = KEY_6,
	[SDL_SCANCODE_7] = KEY_7,
	[SDL_SCANCODE_8] = KEY_8,
	[SDL_SCANCODE_9] = KEY_9,
	[SDL_SCANCODE_0] = KEY_0,
	[SDL_SCANCODE_RETURN] = KEY_ENTER,
	[SDL_SCANCODE_ESCAPE] = KEY_ESC,
	[SDL_SCANCODE_BACKSPACE] = KEY_BACKSPACE,
	[SDL_SCANCODE_TAB] = KEY_TAB,
	[SDL_SCANCODE_SPACE] = KEY_SPACE,
	[SDL_SCANCODE_MINUS] = KEY_MINUS,
	[SDL_SCANCODE_EQUALS] = KEY_EQUAL,
	[SDL_SCANCODE_LEFTBRACKET] = KEY_LEFTBRACE,
	[SDL_SCANCODE_RIGHTBRACKET] = KEY_RIGHTBRACE,
	[SDL_SCANCODE_BACKSLASH] = KEY_BACKSLASH,
	[SDL_SCANCODE_NONUSHASH] = KEY_BACKSLASH,
	[SDL_SCANCODE_SEMICOLON] = KEY_SEMICOLON,
	[SDL_SCANCODE_APOSTROPHE] = KEY_APOSTROPHE,
	[SDL_SCANCODE_GRAVE] = KEY_GRAVE,
	[SDL_SCANCODE_COMMA] = KEY_COMMA,
	[SDL_SCANCODE_PERIOD] = KEY_DOT,
	[SDL_SCANCODE_SLASH] = KEY_SLASH,
	[SDL_SCANCODE_CAPSLOCK] = KEY_CAPSLOCK,
	[SDL_SCANCODE_F1] = KEY_F1,
	[SDL_SCANCODE_F2] = KEY_F2,
	[SDL_SCANCODE_F3] = KEY_F3,
	[SDL_SCANCODE_F4] = KEY_F4,
	[SDL_SCANCODE_F5] = KEY_F5,
	[SDL_SCANCODE_F6] = KEY_F6,
	[SDL_SCANCODE_F7] = KEY_F7,
	[SDL_SCANCODE_F8] = KEY_F8,
	[SDL_SCANCODE_F9] = KEY_F9,
	[SDL_SCANCODE_F10] = KEY_F10,
	[SDL_SCANCODE_F11] = KEY_F11,
	[SDL_SCANCODE_F12] = KEY_F12,
	[SDL_SCANCODE_PRINTSCREEN] = KEY_SYSRQ,
	[SDL_SCANCODE_SCROLLLOCK] = KEY_SCROLLLOCK,
	[SDL_SCANCODE_PAUSE] = KEY_PAUSE,
	[SDL_SCANCODE_INSERT] = KEY_INSERT,
	[SDL_SCANCODE_HOME] = KEY_HOME,
	[SDL_SCANCODE_PAGEUP] = KEY_PAGEUP,
	[SDL_SCANCODE_DELETE] = KEY_DELETE,
	[SDL_SCANCODE_END] = KEY_END,
	[SDL_SCANCODE_PAGEDOWN] = KEY_PAGEDOWN,
	[SDL_SCANCODE_RIGHT] = KEY_RIGHT,
	[SDL_SCANCODE_LEFT] = KEY_LEFT,
	[SDL_SCANCODE_DOWN] = KEY_DOWN,
	[SDL_SCANCODE_UP] = KEY_UP,
	[SDL_SCANCODE_NUMLOCKCLEAR] = KEY_NUMLOCK,
	[SDL_SCANCODE_KP_DIVIDE] = KEY_KPSLASH,
	[SDL_SCANCODE_KP_MULTIPLY] = KEY_KPASTERISK,
	[SDL_SCANCODE_KP_MINUS] = KEY_KPMINUS,
	[SDL_SCANCODE_KP_PLUS] = KEY_KPPLUS,
	[SDL_SCANCODE_KP_ENTER] = KEY_KPENTER,
	[SDL_SCANCODE_KP_1] = KEY_KP1,
	[SDL_SCANCODE_KP_2] = KEY_KP2,
	[SDL_SCANCODE_KP_3] = KEY_KP3,
	[SDL_SCANCODE_KP_4] = KEY_KP4,
	[SDL_SCANCODE_KP_5] = KEY_KP5,
	[SDL_SCANCODE_KP_6] = KEY_KP6,
	[SDL_SCANCODE_KP_7] = KEY_KP7,
	[SDL_SCANCODE_KP_8] = KEY_KP8,
	[SDL_SCANCODE_KP_9] = KEY_KP9,
	[SDL_SCANCODE_KP_0] = KEY_KP0,
	[SDL_SCANCODE_KP_PERIOD] = KEY_KPDOT,
	[SDL_SCANCODE_NONUSBACKSLASH] = KEY_102ND,
	[SDL_SCANCODE_APPLICATION] = KEY_COMPOSE,
	[SDL_SCANCODE_POWER] = KEY_POWER,
	[SDL_SCANCODE_KP_EQUALS] = KEY_KPEQUAL,
	[SDL_SCANCODE_F13] = KEY_F13,
	[SDL_SCANCODE_F14] = KEY_F14,
	[SDL_SCANCODE_F15] = KEY_F15,
	[SDL_SCANCODE_F16] = KEY_F16,
	[SDL_SCANCODE_F17] = KEY_F17,
	[SDL_SCANCODE_F18] = KEY_F18,
	[SDL_SCANCODE_F19] = KEY_F19,
	[SDL_SCANCODE_F20] = KEY_F20,
	[SDL_SCANCODE_F21] = KEY_F21,
	[SDL_SCANCODE_F22] = KEY_F22,
	[SDL_SCANCODE_F23] = KEY_F23,
	[SDL_SCANCODE_F24] = KEY_F24,
	[SDL_SCANCODE_HELP] = KEY_HELP,
	[SDL_SCANCODE_MENU] = KEY_MENU,
	[SDL_SCANCODE_STOP] = KEY_STOP,
	[SDL_SCANCODE_AGAIN] = KEY_AGAIN,
	[SDL_SCANCODE_UNDO] = KEY_UNDO,
	[SDL_SCANCODE_CUT] = KEY_CUT,
	[SDL_SCANCODE_COPY] = KEY_COPY,
	[SDL_SCANCODE_PASTE] = KEY_PASTE,
	[SDL_SCANCODE_FIND] = KEY_FIND,
	[SDL_SCANCODE_MUTE] = KEY_MUTE,
	[SDL_SCANCODE_VOLUMEUP] = KEY_VOLUMEUP,
	[SDL_SCANCODE_VOLUMEDOWN] = KEY_VOLUMEDOWN,
	[SDL_SCANCODE_KP_COMMA] = KEY_KPCOMMA,
	[SDL_SCANCODE_INTERNATIONAL1] = KEY_RO,
	[SDL_SCANCODE_INTERNATIONAL2] = KEY_KATAKANAHIRAGANA,
	[SDL_SCANCODE_INTERNATIONAL3] = KEY_YEN,
	[SDL_SCANCODE_INTERNATIONAL4] = KEY_HENKAN,
	[SDL_SCANCODE_INTERNATIONAL5] = KEY_MUHENKAN,
	[SDL_SCANCODE_LANG1] = KEY_HANGEUL,
	[SDL_SCANCODE_LANG2] = KEY_HANJA,
	[SDL_SCANCODE_LCTRL] = KEY_LEFTCTRL,
	[SDL_SCANCODE_LSHIFT] = KEY_LEFTSHIFT,
	[SDL_SCANCODE_LALT] = KEY_LEFTALT,
	[SDL_SCANCODE_LGUI] = KEY_LEFTMETA,
	[SDL_SCANCODE_RCTRL] = KEY_RIGHTCTRL,
	[SDL_SCANCODE_RSHIFT] = KEY_RIGHTSHIFT,
	[SDL_SCANCODE_RALT] = KEY_RIGHTALT,
	[SDL_SCANCODE_RGUI] = KEY_RIGHTMETA,
	[SDL_SCANCODE_AUDIONEXT] = KEY_NEXTSONG,
	[SDL_SCANCODE_AUDIOPREV] = KEY_PREVIOUSSONG,
	[SDL_SCANCODE_AUDIOSTOP] = KEY_STOPCD,
	[SDL_SCANCODE_AUDIOPLAY] = KEY_PLAYPAUSE,
	[SDL_SCANCODE_AUDIOMUTE] = KEY_MUTE,
	[SDL_SCANCODE_MAIL] = KEY_MAIL,
	[SDL_SCANCODE_CALCULATOR] = KEY_CALC,
	[SDL_SCANCODE_COMPUTER] = KEY_COMPUTER,
	[SDL_SCANCODE_AC_SEARCH] = KEY_SEARCH,
	[SDL_SCANCODE_AC_HOME] = KEY_HOMEPAGE,
	[SDL_SCANCODE_AC_BACK] = KEY_BACK,
	[SDL_SCANCODE_AC_FORWARD] = KEY_FORWARD,
	[SDL_SCANCODE_AC_REFRESH] = KEY_REFRESH,
	[SDL_SCANCODE_AC_BOOKMARKS] = KEY_BOOKMARKS,
	[SDL_SCANCODE_SLEEP] = KEY_SLEEP,
};

uint16_t sdl_scancode_to_evdev(int scancode)
{
	return scancode > 0 && scancode < SDL_NUM_SCANCODES ? keymap[scancode] : 0;
}

static const struct ui_input no_input;

/* What an input call returned: -ENODEV (no such device: --gpu without input, tests) is
 * normal; anything else is logged, rate-limited. */
static void sent(int ret)
{
	static uint64_t rl;

	if (ret && ret != -ENODEV && log_ratelimit(&rl, 3))
		log_warn("sdl: input: %s", strerror(-ret));
}

/* ---- input (sdl thread) ---- */

static bool key_down(const struct sdl_ui *s, uint16_t code)
{
	return s->keys[code / 8] & (1u << (code % 8));
}

static void send_key(struct sdl_ui *s, uint16_t code, bool down)
{
	if (down)
		s->keys[code / 8] |= (uint8_t)(1u << (code % 8));
	else
		s->keys[code / 8] &= (uint8_t) ~(1u << (code % 8));
	sent(ui_key(s->in, code, down)); /* -ENODEV without a keyboard */
}

/* Focus lost or window closing: nothing stays held in the guest. */
static void release_all(struct sdl_ui *s)
{
	for (uint16_t code = 0; code < SDL_KEYS; code++)
		if (key_down(s, code))
			send_key(s, code, false);
	if (s->buttons) {
		s->buttons = 0;
		sent(ui_pointer(s->in, s->px, s->py, 0));
	}
}

static void set_title(struct sdl_ui *s)
{
	char t[128];
	int n;

	if (s->sh.active)
		n = snprintf(t, sizeof(t), "ignition %ux%u", s->sh.w, s->sh.h);
	else
		n = snprintf(t, sizeof(t), "ignition (no scanout)");
	if (s->grabbed && n > 0 && (size_t)n < sizeof(t))
		snprintf(t + n, sizeof(t) - (size_t)n, " (Ctrl+Alt+G to release)");
	SDL_SetWindowTitle(s->win, t);
}

/* Where the frame goes in the renderer's output: scaled to fit, aspect kept, centred. */
static SDL_Rect frame_rect(struct sdl_ui *s)
{
	int ow = 1, oh = 1;
	SDL_Rect r;

	if (SDL_GetRendererOutputSize(s->ren, &ow, &oh) || ow <= 0 || oh <= 0)
		ow = oh = 1;
	if ((uint64_t)ow * s->sh.h <= (uint64_t)oh * s->sh.w) {
		r.w = ow;
		r.h = (int)((uint64_t)ow * s->sh.h / s->sh.w);
	} else {
		r.h = oh;
		r.w = (int)((uint64_t)oh * s->sh.w / s->sh.h);
	}
	if (r.w < 1)
		r.w = 1;
	if (r.h < 1)
		r.h = 1;
	r.x = (ow - r.w) / 2;
	r.y = (oh - r.h) / 2;
	return r;
}

/* Window coordinates to display pixels (clamped to the frame). */
static void map_point(struct sdl_ui *s, int wx, int wy, uint32_t *x, uint32_t *y)
{
	SDL_Rect r = frame_rect(s);
	int ww = 1, wh = 1, ow = 1, oh = 1;
	int64_t px, py;

	SDL_GetWindowSize(s->win, &ww, &wh);
	if (SDL_GetRendererOutputSize(s->ren, &ow, &oh) || ww <= 0 || wh <= 0) {
		ow = ww > 0 ? ww : 1;
		oh = wh > 0 ? wh : 1;
	}
	/* Output pixels may differ from window units (high-DPI). */
	px = (int64_t)wx * ow / (ww > 0 ? ww : 1) - r.x;
	py = (int64_t)wy * oh / (wh > 0 ? wh : 1) - r.y;
	px = px < 0 ? 0 : px >= r.w ? r.w - 1 : px;
	py = py < 0 ? 0 : py >= r.h ? r.h - 1 : py;
	*x = (uint32_t)(px * s->sh.w / r.w);
	*y = (uint32_t)(py * s->sh.h / r.h);
}

static uint32_t sdl_button(uint8_t b)
{
	switch (b) {
	case SDL_BUTTON_LEFT:
		return UI_BUTTON_LEFT;
	case SDL_BUTTON_RIGHT:
		return UI_BUTTON_RIGHT;
	case SDL_BUTTON_MIDDLE:
		return UI_BUTTON_MIDDLE;
	}
	return 0;
}

static void toggle_grab(struct sdl_ui *s)
{
	s->grabbed = !s->grabbed;
	SDL_SetWindowGrab(s->win, s->grabbed ? SDL_TRUE : SDL_FALSE);
	set_title(s);
}

static void toggle_fullscreen(struct sdl_ui *s)
{
	s->fullscreen = !s->fullscreen;
	if (SDL_SetWindowFullscreen(s->win, s->fullscreen ? SDL_WINDOW_FULLSCREEN_DESKTOP : 0)) {
		log_warn("sdl: full screen: %s", SDL_GetError());
		s->fullscreen = !s->fullscreen;
	}
	s->redraw = true;
}

/* Ctrl+Alt+key: true if it was a hotkey (not passed to the guest). */
static bool hotkey(struct sdl_ui *s, SDL_Scancode sc)
{
	switch (sc) {
	case SDL_SCANCODE_G:
		toggle_grab(s);
		return true;
	case SDL_SCANCODE_F:
		toggle_fullscreen(s);
		return true;
	case SDL_SCANCODE_S:
		if (s->snapshot)
			s->snapshot(s->ctx);
		return true;
	case SDL_SCANCODE_Q:
		release_all(s);
		if (s->quit)
			s->quit(s->ctx);
		return true;
	default:
		return false;
	}
}

static void on_key(struct sdl_ui *s, const SDL_KeyboardEvent *k)
{
	bool down = k->type == SDL_KEYDOWN;
	uint16_t code = sdl_scancode_to_evdev(k->keysym.scancode);
	uint16_t mod = k->keysym.mod; /* the modifiers held when this key went down */

	/* Ctrl+Alt, but not AltGr (X11 reports it as MODE): AltGr+Q and AltGr+S type '@' and
	 * other characters on many layouts. */
	if (down && mod & KMOD_CTRL && mod & KMOD_ALT && !(mod & KMOD_MODE) &&
	    hotkey(s, k->keysym.scancode))
		return;
	/* The guest repeats held keys itself (Linux input core autorepeat); a key whose press
	 * it never saw (a hotkey) is not released either. */
	if (!code || (down && k->repeat) || (!down && !key_down(s, code)))
		return;
	send_key(s, code, down);
}

/* A new window size: ask the guest for it once the user has stopped dragging. */
static void window_resized(struct sdl_ui *s, int w, int h)
{
	uint32_t cw = (uint32_t)(w < 0 ? 0 : w), ch = (uint32_t)(h < 0 ? 0 : h);

	s->redraw = true;
	if (cw < DISPLAY_MIN_DIM)
		cw = DISPLAY_MIN_DIM;
	if (ch < DISPLAY_MIN_DIM)
		ch = DISPLAY_MIN_DIM;
	if (cw > DISPLAY_MAX_W)
		cw = DISPLAY_MAX_W;
	if (ch > DISPLAY_MAX_H)
		ch = DISPLAY_MAX_H;
	if (cw == s->sh.w && ch == s->sh.h) {
		/* The size shown already: the guest's own mode (our resize to it), or the
		 * preferred mode while there is no scanout. */
		s->resize_pending = false;
		return;
	}
	s->resize_pending = true;
	s->resize_w = cw;
	s->resize_h = ch;
	s->resize_at = SDL_GetTicks() + RESIZE_DEBOUNCE_MS;
}

static void request_size(struct sdl_ui *s)
{
	int ret;

	s->resize_pending = false;
	ret = display_request_size(s->d, s->resize_w, s->resize_h);
	if (ret == -ENOTSUP)
		log_debug("sdl: the guest's display cannot be resized");
	else if (ret)
		log_warn("sdl: cannot ask the guest for %ux%u: %s", s->resize_w, s->resize_h,
			 strerror(-ret));
}

static void on_event(struct sdl_ui *s, const SDL_Event *e)
{
	switch (e->type) {
	case SDL_QUIT:
		release_all(s);
		if (s->quit)
			s->quit(s->ctx);
		break;
	case SDL_KEYDOWN:
	case SDL_KEYUP:
		on_key(s, &e->key);
		break;
	case SDL_MOUSEMOTION:
		map_point(s, e->motion.x, e->motion.y, &s->px, &s->py);
		sent(ui_pointer(s->in, s->px, s->py, s->buttons));
		break;
	case SDL_MOUSEBUTTONDOWN:
	case SDL_MOUSEBUTTONUP:
		if (e->button.type == SDL_MOUSEBUTTONDOWN)
			s->buttons |= sdl_button(e->button.button);
		else
			s->buttons &= ~sdl_button(e->button.button);
		map_point(s, e->button.x, e->button.y, &s->px, &s->py);
		sent(ui_pointer(s->in, s->px, s->py, s->buttons));
		break;
	case SDL_MOUSEWHEEL:
		if (e->wheel.y)
			sent(ui_wheel(s->in, e->wheel.direction == SDL_MOUSEWHEEL_FLIPPED
						     ? -e->wheel.y
						     : e->wheel.y));
		break;
	case SDL_WINDOWEVENT:
		switch (e->window.event) {
		case SDL_WINDOWEVENT_SIZE_CHANGED:
			window_resized(s, e->window.data1, e->window.data2);
			break;
		case SDL_WINDOWEVENT_FOCUS_LOST:
			release_all(s);
			break;
		case SDL_WINDOWEVENT_CLOSE:
			release_all(s);
			if (s->quit)
				s->quit(s->ctx);
			break;
		default:
			s->redraw = true; /* exposed, restored... */
			break;
		}
		break;
	default:
		break;
	}
}

/* ---- frames ---- */

static int make_texture(struct sdl_ui *s)
{
	if (s->tex)
		SDL_DestroyTexture(s->tex);
	s->tex = SDL_CreateTexture(s->ren, SDL_PIXELFORMAT_XRGB8888, SDL_TEXTUREACCESS_STREAMING,
				   (int)s->sh.w, (int)s->sh.h);
	if (!s->tex)
		return -ENOMEM;
	s->tex_w = s->sh.w;
	s->tex_h = s->sh.h;
	return SDL_UpdateTexture(s->tex, NULL, s->sh.pixels, (int)s->sh.w * 4) ? -EIO : 0;
}

static void follow_display(struct sdl_ui *s)
{
	struct ui_shadow_change c;
	bool was_active = s->sh.active;
	int ret = ui_shadow_sync(&s->sh, &c);

	if (ret) {
		static uint64_t rl;

		if (log_ratelimit(&rl, 3))
			log_warn("sdl: cannot follow the display: %s", strerror(-ret));
		return;
	}
	if (c.resized || !s->tex) {
		Uint32 flags = SDL_GetWindowFlags(s->win);

		if (make_texture(s))
			log_warn("sdl: cannot make a %ux%u texture: %s", s->sh.w, s->sh.h,
				 SDL_GetError());
		/* The window follows the guest's mode unless the user chose its size (full
		 * screen, maximised). */
		if (!(flags & (SDL_WINDOW_FULLSCREEN | SDL_WINDOW_FULLSCREEN_DESKTOP |
			       SDL_WINDOW_MAXIMIZED)))
			SDL_SetWindowSize(s->win, (int)s->sh.w, (int)s->sh.h);
		s->redraw = true;
	} else if (c.damaged && s->tex) {
		SDL_Rect r = { (int)c.x, (int)c.y, (int)c.w, (int)c.h };

		SDL_UpdateTexture(s->tex, &r, s->sh.pixels + (size_t)c.y * s->sh.w + c.x,
				  (int)s->sh.w * 4);
		s->redraw = true;
	}
	if (c.resized || was_active != s->sh.active)
		set_title(s);
}

static void draw(struct sdl_ui *s)
{
	SDL_Rect r = frame_rect(s);

	s->redraw = false;
	SDL_SetRenderDrawColor(s->ren, 0, 0, 0, 255);
	SDL_RenderClear(s->ren);
	if (s->tex)
		SDL_RenderCopy(s->ren, s->tex, NULL, &r);
	SDL_RenderPresent(s->ren);
}

/* ---- the thread ---- */

static int open_window(struct sdl_ui *s)
{
	const char *x = getenv("DISPLAY"), *wl = getenv("WAYLAND_DISPLAY");
	bool have_x = x && *x, have_wl = wl && *wl;
	SDL_RendererInfo ri;

	/* SDL must leave the terminal, the signals and the host's power settings alone: the
	 * serial console owns the tty and main handles SIGINT/SIGTERM. */
	SDL_SetHint(SDL_HINT_NO_SIGNAL_HANDLERS, "1");
	SDL_SetHint(SDL_HINT_VIDEO_ALLOW_SCREENSAVER, "1");
	SDL_SetHint(SDL_HINT_GRAB_KEYBOARD, "1"); /* grabbed: Alt+Tab goes to the guest */
	SDL_SetHint(SDL_HINT_MOUSE_FOCUS_CLICKTHROUGH, "1");

	/* Only window-system drivers, and only those the environment names: SDL's KMS/DRM and
	 * framebuffer drivers would take the console's tty and keyboard, and libwayland prints
	 * to stderr when it finds no compositor.  SDL_VIDEODRIVER in the environment still
	 * wins. */
	SDL_SetHint(SDL_HINT_VIDEODRIVER, have_x && have_wl ? "x11,wayland"
					  : have_wl	    ? "wayland"
							    : "x11");
	if ((!have_x && !have_wl && !getenv("SDL_VIDEODRIVER")) ||
	    SDL_InitSubSystem(SDL_INIT_VIDEO)) {
		if (have_x || have_wl)
			snprintf(s->init_err, sizeof(s->init_err),
				 "--gui: cannot open a window on %s=%s (%s); use --gui=headless or "
				 "--vnc",
				 have_x ? "DISPLAY" : "WAYLAND_DISPLAY", have_x ? x : wl,
				 SDL_GetError());
		else
			snprintf(s->init_err, sizeof(s->init_err),
				 "--gui: cannot open a window (no X11/Wayland display: DISPLAY "
				 "unset?); use --gui=headless or --vnc");
		return -ENODEV;
	}
	s->win = SDL_CreateWindow("ignition", SDL_WINDOWPOS_CENTERED, SDL_WINDOWPOS_CENTERED,
				  (int)s->sh.w, (int)s->sh.h, SDL_WINDOW_RESIZABLE);
	if (!s->win) {
		snprintf(s->init_err, sizeof(s->init_err), "--gui: cannot open a window: %s",
			 SDL_GetError());
		goto quit;
	}
	s->ren = SDL_CreateRenderer(s->win, -1, SDL_RENDERER_ACCELERATED);
	if (!s->ren)
		s->ren = SDL_CreateRenderer(s->win, -1, SDL_RENDERER_SOFTWARE);
	if (!s->ren) {
		snprintf(s->init_err, sizeof(s->init_err), "--gui: cannot draw in the window: %s",
			 SDL_GetError());
		goto destroy_win;
	}
	if (!SDL_GetRendererInfo(s->ren, &ri))
		log_info("sdl: window open (%s renderer)", ri.name);
	SDL_SetHint(SDL_HINT_RENDER_SCALE_QUALITY, "linear");
	if (make_texture(s)) {
		snprintf(s->init_err, sizeof(s->init_err), "--gui: cannot make a texture: %s",
			 SDL_GetError());
		goto destroy_ren;
	}
	/* Keys, not text: no input method between the keyboard and the guest. */
	SDL_StopTextInput();
	set_title(s);
	draw(s);
	return 0;

destroy_ren:
	SDL_DestroyRenderer(s->ren);
destroy_win:
	SDL_DestroyWindow(s->win);
quit:
	SDL_QuitSubSystem(SDL_INIT_VIDEO);
	SDL_Quit();
	return -EIO;
}

static void close_window(struct sdl_ui *s)
{
	if (s->tex)
		SDL_DestroyTexture(s->tex);
	SDL_DestroyRenderer(s->ren);
	SDL_DestroyWindow(s->win);
	SDL_QuitSubSystem(SDL_INIT_VIDEO);
	SDL_Quit();
}

static void *sdl_thread(void *opaque)
{
	struct sdl_ui *s = opaque;
	int ret;

	log_set_thread("sdl");
	pthread_setname_np(pthread_self(), "sdl");
	ret = open_window(s);
	/* Once SDL and the graphics driver are loaded (files, sockets, driver threads). */
	if (!ret && (ret = seccomp_thread_install(SECCOMP_THREAD_GUI, "sdl"))) {
		snprintf(s->init_err, sizeof(s->init_err),
			 "--gui: cannot install the window thread's seccomp filter: %s",
			 strerror(-ret));
		close_window(s);
	}
	s->init_ret = ret;
	sem_post(&s->ready);
	if (ret)
		return NULL;
	while (!__atomic_load_n(&s->stop, __ATOMIC_ACQUIRE)) {
		SDL_Event e;

		if (SDL_WaitEventTimeout(&e, SDL_POLL_MS)) {
			on_event(s, &e);
			while (SDL_PollEvent(&e))
				on_event(s, &e);
		}
		if (ui_shadow_pending(&s->sh))
			follow_display(s);
		if (s->resize_pending && SDL_TICKS_PASSED(SDL_GetTicks(), s->resize_at))
			request_size(s);
		if (s->redraw)
			draw(s);
	}
	release_all(s);
	close_window(s);
	return NULL;
}

int sdl_start(const struct ui_opts *o, struct display *d, const struct ui_input *in,
	      struct sdl_ui **out, char *err, size_t n)
{
	struct sdl_ui *s = calloc(1, sizeof(*s));
	int ret;

	*out = NULL;
	if (!s) {
		snprintf(err, n, "--gui: out of memory");
		return -ENOMEM;
	}
	s->d = d;
	s->in = in ? in : &no_input; /* input calls then say -ENODEV */
	s->quit = o->quit;
	s->snapshot = o->snapshot;
	s->ctx = o->ctx;
	ret = ui_shadow_init(&s->sh, d, false, NULL, NULL);
	if (ret) {
		snprintf(err, n, "--gui: cannot follow the display: %s", strerror(-ret));
		free(s);
		return ret;
	}
	/* The first frame as it is now (the texture is made from it). */
	{
		struct ui_shadow_change c;

		ret = ui_shadow_sync(&s->sh, &c);
	}
	if (!ret && sem_init(&s->ready, 0, 0) < 0)
		ret = -errno;
	if (!ret) {
		ret = -pthread_create(&s->thread, NULL, sdl_thread, s);
		if (ret)
			sem_destroy(&s->ready);
	}
	if (ret) {
		snprintf(err, n, "--gui: cannot start the window thread: %s", strerror(-ret));
		ui_shadow_fini(&s->sh);
		free(s);
		return ret;
	}
	while (sem_wait(&s->ready) < 0 && errno == EINTR)
		;
	sem_destroy(&s->ready);
	if (s->init_ret) {
		ret = s->init_ret;
		snprintf(err, n, "%s", s->init_err);
		pthread_join(s->thread, NULL);
		ui_shadow_fini(&s->sh);
		free(s);
		return ret;
	}
	*out = s;
	return 0;
}

void sdl_stop(struct sdl_ui *s)
{
	if (!s)
		return;
	__atomic_store_n(&s->stop, true, __ATOMIC_RELEASE);
	pthread_join(s->thread, NULL);
	ui_shadow_fini(&s->sh);
	free(s);
}
