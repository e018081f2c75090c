/* ui.h's calls, answered by the GUI module (frontend.h).  A process loads the module only when
 * its machine has a display (main.c calls ui_load() before any jail is entered); a console VM
 * never maps SDL2, libvncserver, libpng or their dependencies.  A program that links the
 * module's objects in (the unit tests) has its table here already, through the weak reference,
 * and loads nothing. */
#include "ui/ui.h"

#include "ui/frontend.h"
#include "util/module.h"

#include <errno.h>
#include <stdio.h>

extern const struct ui_frontend ui_frontend __attribute__((weak));

/* Set once by ui_load() on the main thread before the front ends' threads start. */
static const struct ui_frontend *fe;

/* The table if it is here: loaded, or linked in (the weak reference). */
static const struct ui_frontend *loaded(void)
{
	if (!fe && &ui_frontend)
		fe = &ui_frontend;
	return fe;
}

int ui_load(char *err, size_t n)
{
	const void *t;
	int ret;

	if (loaded())
		return 0;
	ret = module_load("ignition-ui.so", "ui_frontend", UI_FRONTEND_ABI, &t, err, n);
	if (!ret)
		fe = t;
	return ret;
}

int ui_start(const struct ui_opts *o, struct display *d, const struct ui_input *in, struct ui **out,
	     char *err, size_t n)
{
	*out = NULL;
	if (!loaded()) {
		snprintf(err, n, "the GUI module is not loaded");
		return -ENOSYS;
	}
	return fe->start(o, d, in, out, err, n);
}

void ui_stop(struct ui *u)
{
	if (u && loaded())
		fe->stop(u);
}

int ui_screenshot_png(struct display *d, const char *path, uint32_t *w, uint32_t *h)
{
	return loaded() ? fe->screenshot_png(d, path, w, h) : -ENOSYS;
}

int ui_screenshot_png_mem(struct display *d, uint8_t **png, size_t *len, uint32_t *w, uint32_t *h)
{
	return loaded() ? fe->screenshot_png_mem(d, png, len, w, h) : -ENOSYS;
}
