/* The GUI front ends of `ignition run`: an SDL2 window (--gui), a VNC server (--vnc), or none
 * (--gui=headless: screenshots and input through the control socket and MCP).  They read a
 * struct display and send input through struct ui_input; they never touch a device directly.
 * They live in a module loaded on demand (frontend.h, util/module.h): every call below but
 * ui_load() fails with -ENOSYS until ui_load() has succeeded. */
#ifndef IGNITION_UI_UI_H
#define IGNITION_UI_UI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct display;
struct ui_input;
struct ui;

enum ui_mode {
	UI_NONE,     /* no GPU */
	UI_SDL,	     /* --gui or --gui=sdl: a window */
	UI_HEADLESS, /* --gui=headless */
};

struct ui_opts {
	enum ui_mode mode;
	bool vnc;		/* --vnc given (with any mode but UI_NONE) */
	char vnc_addr[64];	/* numeric IPv4 or IPv6 address to bind; default "127.0.0.1" */
	uint16_t vnc_port;	/* TCP port */
	char vnc_password[128]; /* read from the password file; "" = no password */
	/* Hotkeys of the window (docs/gui.md), called on the front end's thread: quit the VM,
	 * take a snapshot (Ctrl-A s's operation).  May be NULL. */
	void (*quit)(void *ctx);
	void (*snapshot)(void *ctx);
	void *ctx;
};

/* Load the GUI module (frontend.h) if it is not loaded: before a jail is entered, by a process
 * whose machine has a display.  0, or -errno with one line in err. */
int ui_load(char *err, size_t n) __attribute__((warn_unused_result));
/* Start the front ends `o` asks for on their own threads.  0, or -errno with one line in err
 * (no display on the host, port taken...). */
int ui_start(const struct ui_opts *o, struct display *d, const struct ui_input *in, struct ui **out,
	     char *err, size_t n) __attribute__((warn_unused_result));
/* Stop them and join their threads.  NULL is a no-op. */
void ui_stop(struct ui *u);

/* Write the display's current frame as a PNG (libpng) to `path` (written to a temp name and
 * renamed); *w, *h get its size.  -EAGAIN when no scanout is set yet, or -errno. */
int ui_screenshot_png(struct display *d, const char *path, uint32_t *w, uint32_t *h)
	__attribute__((warn_unused_result));
/* The same into memory: *png malloc'd, *len bytes (for the MCP screenshot tool). */
int ui_screenshot_png_mem(struct display *d, uint8_t **png, size_t *len, uint32_t *w, uint32_t *h)
	__attribute__((warn_unused_result));

#endif
