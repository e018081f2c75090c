/* PLACEHOLDER (the headless helper's src/ui/screenshot.c replaces this file). */
#include "ui/ui.h"

#include <errno.h>

int ui_screenshot_png(struct display *d, const char *path, uint32_t *w, uint32_t *h)
{
	return -ENOSYS;
}

int ui_screenshot_png_mem(struct display *d, uint8_t **png, size_t *len, uint32_t *w, uint32_t *h)
{
	return -ENOSYS;
}
