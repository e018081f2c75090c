/* The GUI module's entry points (build/ignition-ui.so: ui.c, sdl.c, vnc.c, screenshot.c,
 * shadow.c, linked with SDL2, libvncserver and libpng; util/module.h says why it is a module).
 * The executable reaches it only through ui.h (loader.c), which checks `abi`. */
#ifndef IGNITION_UI_FRONTEND_H
#define IGNITION_UI_FRONTEND_H

#include <stddef.h>
#include <stdint.h>

struct display;
struct ui;
struct ui_input;
struct ui_opts;

/* Bump when this table or a structure it passes (ui.h, display.h, input.h) changes. */
#define UI_FRONTEND_ABI 1

struct ui_frontend {
	uint32_t abi; /* UI_FRONTEND_ABI of the module's build; first (module_load checks it) */
	int (*start)(const struct ui_opts *o, struct display *d, const struct ui_input *in,
		     struct ui **out, char *err, size_t n);
	void (*stop)(struct ui *u);
	int (*screenshot_png)(struct display *d, const char *path, uint32_t *w, uint32_t *h);
	int (*screenshot_png_mem)(struct display *d, uint8_t **png, size_t *len, uint32_t *w,
				  uint32_t *h);
};

/* Defined by the module (ui.c). */
extern const struct ui_frontend ui_frontend;

/* screenshot.c's encoders, behind ui_screenshot_png and ui_screenshot_png_mem (ui.h). */
int screenshot_png(struct display *d, const char *path, uint32_t *w, uint32_t *h)
	__attribute__((warn_unused_result));
int screenshot_png_mem(struct display *d, uint8_t **png, size_t *len, uint32_t *w, uint32_t *h)
	__attribute__((warn_unused_result));

#endif
