#include "ui/shadow.h"

#include "ui/display.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void on_update(void *opaque, uint32_t x, uint32_t y, uint32_t w, uint32_t h)
{
	struct ui_shadow *s = opaque;

	pthread_mutex_lock(&s->lock);
	if (!s->dirty) {
		s->dx0 = x;
		s->dy0 = y;
		s->dx1 = x + w;
		s->dy1 = y + h;
	} else {
		if (x < s->dx0)
			s->dx0 = x;
		if (y < s->dy0)
			s->dy0 = y;
		if (x + w > s->dx1)
			s->dx1 = x + w;
		if (y + h > s->dy1)
			s->dy1 = y + h;
	}
	s->dirty = true;
	pthread_mutex_unlock(&s->lock);
	if (s->wake)
		s->wake(s->wake_opaque);
}

static void on_mode(void *opaque, uint32_t w, uint32_t h, bool active)
{
	struct ui_shadow *s = opaque;

	(void)w;
	(void)h;
	(void)active;
	pthread_mutex_lock(&s->lock);
	s->mode_changed = true;
	pthread_mutex_unlock(&s->lock);
	if (s->wake)
		s->wake(s->wake_opaque);
}

static uint32_t swap(uint32_t p)
{
	return (p & 0xff00u) | (p >> 16 & 0xffu) | (p & 0xffu) << 16;
}

static void copy_rows(struct ui_shadow *s, const uint32_t *src, uint32_t x, uint32_t y, uint32_t w,
		      uint32_t h)
{
	for (uint32_t row = y; row < y + h; row++) {
		const uint32_t *in = src + (size_t)row * s->w + x;
		uint32_t *out = s->pixels + (size_t)row * s->w + x;

		if (!s->swap_rb) {
			memcpy(out, in, (size_t)w * 4);
			continue;
		}
		for (uint32_t i = 0; i < w; i++)
			out[i] = swap(in[i]);
	}
}

struct sync_ctx {
	struct ui_shadow *s;
	struct ui_shadow_change *c;
	bool full;
	uint32_t x0, y0, x1, y1;
	int ret;
};

/* Display locked: the frame cannot change under us; keep it short (a copy, at most one
 * allocation on a mode change). */
static void sync_frame(void *opaque, const uint32_t *px, uint32_t w, uint32_t h)
{
	struct sync_ctx *k = opaque;
	struct ui_shadow *s = k->s;

	if (w != s->w || h != s->h) {
		uint32_t *n = malloc((size_t)w * h * 4);

		if (!n) {
			k->ret = -ENOMEM;
			return;
		}
		free(s->pixels);
		s->pixels = n;
		s->w = w;
		s->h = h;
		k->c->resized = true;
		k->full = true;
	}
	if (!s->active)
		k->full = true;
	s->active = true;
	if (k->full) {
		k->x0 = k->y0 = 0;
		k->x1 = w;
		k->y1 = h;
	}
	/* Damage recorded for an older mode may lie outside this one. */
	if (k->x1 > w)
		k->x1 = w;
	if (k->y1 > h)
		k->y1 = h;
	if (k->x0 >= k->x1 || k->y0 >= k->y1)
		return;
	copy_rows(s, px, k->x0, k->y0, k->x1 - k->x0, k->y1 - k->y0);
	k->c->damaged = true;
	k->c->x = k->x0;
	k->c->y = k->y0;
	k->c->w = k->x1 - k->x0;
	k->c->h = k->y1 - k->y0;
}

int ui_shadow_sync(struct ui_shadow *s, struct ui_shadow_change *c)
{
	struct sync_ctx k = { .s = s, .c = c };
	bool dirty;

	memset(c, 0, sizeof(*c));
	pthread_mutex_lock(&s->lock);
	dirty = s->dirty;
	k.full = s->mode_changed;
	k.x0 = s->dx0;
	k.y0 = s->dy0;
	k.x1 = s->dx1;
	k.y1 = s->dy1;
	s->dirty = s->mode_changed = false;
	pthread_mutex_unlock(&s->lock);
	if (!dirty && !k.full)
		return 0;
	if (!dirty)
		k.x0 = k.y0 = k.x1 = k.y1 = 0;
	if (display_with_frame(s->d, sync_frame, &k))
		return k.ret;
	/* Inactive (no scanout): keep the size, show black. */
	if (s->active) {
		s->active = false;
		memset(s->pixels, 0, (size_t)s->w * s->h * 4);
		*c = (struct ui_shadow_change){ .damaged = true, .w = s->w, .h = s->h };
	}
	return 0;
}

bool ui_shadow_pending(struct ui_shadow *s)
{
	bool p;

	pthread_mutex_lock(&s->lock);
	p = s->dirty || s->mode_changed;
	pthread_mutex_unlock(&s->lock);
	return p;
}

int ui_shadow_init(struct ui_shadow *s, struct display *d, bool swap_rb, void (*wake)(void *),
		   void *wake_opaque)
{
	struct display_listener l = { .opaque = s, .update = on_update, .mode = on_mode };
	uint32_t w, h;
	int ret;

	memset(s, 0, sizeof(*s));
	s->d = d;
	s->swap_rb = swap_rb;
	s->wake = wake;
	s->wake_opaque = wake_opaque;
	if (!display_mode(d, &w, &h))
		display_preferred(d, &w, &h);
	s->pixels = calloc((size_t)w * h, 4);
	if (!s->pixels)
		return -ENOMEM;
	s->w = w;
	s->h = h;
	pthread_mutex_init(&s->lock, NULL);
	/* The listener is called at once with the current mode: the first sync copies it. */
	ret = display_add_listener(d, &l);
	if (ret) {
		pthread_mutex_destroy(&s->lock);
		free(s->pixels);
		s->pixels = NULL;
	}
	return ret;
}

void ui_shadow_fini(struct ui_shadow *s)
{
	if (!s->d)
		return;
	display_remove_listener(s->d, s);
	pthread_mutex_destroy(&s->lock);
	free(s->pixels);
	s->pixels = NULL;
	s->d = NULL;
}
