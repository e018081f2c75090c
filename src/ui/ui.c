/* The GUI module's table (frontend.h): the front ends behind ui.h, the SDL window (sdl.c) and
 * the VNC server (vnc.c), each on a thread of its own, started here in the order that makes a
 * failure leave nothing behind; and the PNG screenshots (screenshot.c). */
#include "ui/frontend.h"
#include "ui/ui.h"

#include "ui/sdl.h"
#include "ui/vnc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

struct ui {
	struct sdl_ui *sdl;
	struct vnc *vnc;
};

static int start(const struct ui_opts *o, struct display *d, const struct ui_input *in,
		 struct ui **out, char *err, size_t n)
{
	struct ui *u;
	int ret;

	*out = NULL;
	/* Headless without VNC: the control socket and MCP read the display themselves. */
	if (o->mode == UI_NONE || (o->mode == UI_HEADLESS && !o->vnc))
		return 0;
	u = calloc(1, sizeof(*u));
	if (!u) {
		snprintf(err, n, "out of memory");
		return -ENOMEM;
	}
	/* VNC first: a taken port fails before a window flashes up. */
	if (o->vnc && (ret = vnc_start(o, d, in, &u->vnc, err, n)))
		goto free_u;
	if (o->mode == UI_SDL && (ret = sdl_start(o, d, in, &u->sdl, err, n)))
		goto stop_vnc;
	*out = u;
	return 0;

stop_vnc:
	vnc_stop(u->vnc);
free_u:
	free(u);
	return ret;
}

static void stop(struct ui *u)
{
	if (!u)
		return;
	sdl_stop(u->sdl);
	vnc_stop(u->vnc);
	free(u);
}

__attribute__((visibility("default"))) const struct ui_frontend ui_frontend = {
	.abi = UI_FRONTEND_ABI,
	.start = start,
	.stop = stop,
	.screenshot_png = screenshot_png,
	.screenshot_png_mem = screenshot_png_mem,
};
