/* The SDL2 window of `ignition run --gui` (docs/gui.md, "Window (SDL) hotkeys"): the display
 * scaled into a resizable window, keyboard and mouse into virtio-input, window size into the
 * guest's mode.  One thread of its own. */
#ifndef IGNITION_UI_SDL_H
#define IGNITION_UI_SDL_H

#include <stddef.h>
#include <stdint.h>

struct display;
struct ui_input;
struct ui_opts;
struct sdl_ui;

/* Open the window on a thread of its own and wait until it is up.  0, or -errno with one line
 * in err (-ENODEV: no X11/Wayland display to open it on). */
int sdl_start(const struct ui_opts *o, struct display *d, const struct ui_input *in,
	      struct sdl_ui **out, char *err, size_t n) __attribute__((warn_unused_result));
/* Close the window and join the thread.  NULL is a no-op. */
void sdl_stop(struct sdl_ui *s);

/* The Linux evdev code (KEY_*) of an SDL scancode (USB HID usage, US layout), 0 if none. */
uint16_t sdl_scancode_to_evdev(int scancode);

#endif
