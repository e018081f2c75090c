/* PLACEHOLDER (replaced by the front ends before this lands). */
#include "ui/ui.h"

#include <errno.h>
#include <stdio.h>

int ui_start(const struct ui_opts *o, struct display *d, const struct ui_input *in, struct ui **out,
	     char *err, size_t n)
{
	*out = NULL;
	if (o->mode == UI_HEADLESS && !o->vnc)
		return 0;
	snprintf(err, n, "GUI front ends are not built yet");
	return -ENOSYS;
}

void ui_stop(struct ui *u)
{
}
