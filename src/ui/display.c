#include "ui/display.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct display {
	pthread_mutex_t lock;
	uint32_t pref_w, pref_h; /* what the device reports as the preferred mode */
	uint32_t w, h;		 /* current mode when active */
	bool active;
	uint32_t *pixels; /* w * h when active, else NULL */
	uint64_t serial;
	struct display_listener ls[DISPLAY_MAX_LISTENERS];
	unsigned nr_ls;
	display_resize_fn resize;
	void *resize_opaque;
};

static bool dims_ok(uint32_t w, uint32_t h)
{
	return w >= DISPLAY_MIN_DIM && h >= DISPLAY_MIN_DIM && w <= DISPLAY_MAX_W &&
	       h <= DISPLAY_MAX_H;
}

bool display_format_valid(uint32_t fmt)
{
	switch (fmt) {
	case DISPLAY_FMT_BGRA:
	case DISPLAY_FMT_BGRX:
	case DISPLAY_FMT_ARGB:
	case DISPLAY_FMT_XRGB:
	case DISPLAY_FMT_RGBA:
	case DISPLAY_FMT_XBGR:
	case DISPLAY_FMT_ABGR:
	case DISPLAY_FMT_RGBX:
		return true;
	default:
		return false;
	}
}

static uint32_t rgb(uint8_t r, uint8_t g, uint8_t b)
{
	return (uint32_t)r << 16 | (uint32_t)g << 8 | b;
}

uint32_t display_pixel(const uint8_t *p, enum display_format fmt)
{
	/* The names list the bytes in memory order, first byte first; alpha is ignored (the
	 * scanout is opaque). */
	switch (fmt) {
	case DISPLAY_FMT_BGRA:
	case DISPLAY_FMT_BGRX:
		return rgb(p[2], p[1], p[0]);
	case DISPLAY_FMT_ARGB:
	case DISPLAY_FMT_XRGB:
		return rgb(p[1], p[2], p[3]);
	case DISPLAY_FMT_RGBA:
	case DISPLAY_FMT_RGBX:
		return rgb(p[0], p[1], p[2]);
	case DISPLAY_FMT_XBGR:
	case DISPLAY_FMT_ABGR:
		return rgb(p[3], p[2], p[1]);
	}
	return 0;
}

int display_create(uint32_t w, uint32_t h, struct display **out)
{
	struct display *d;

	if (!dims_ok(w, h))
		return -EINVAL;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	pthread_mutex_init(&d->lock, NULL);
	d->pref_w = w;
	d->pref_h = h;
	*out = d;
	return 0;
}

void display_destroy(struct display *d)
{
	if (!d)
		return;
	pthread_mutex_destroy(&d->lock);
	free(d->pixels);
	free(d);
}

int display_set_mode(struct display *d, uint32_t w, uint32_t h, bool active)
{
	uint32_t *px = NULL;

	if (active) {
		if (!dims_ok(w, h))
			return -EINVAL;
		px = calloc((size_t)w * h, sizeof(*px));
		if (!px)
			return -ENOMEM;
	} else {
		w = h = 0;
	}
	pthread_mutex_lock(&d->lock);
	free(d->pixels);
	d->pixels = px;
	d->w = w;
	d->h = h;
	d->active = active;
	d->serial++;
	for (unsigned i = 0; i < d->nr_ls; i++)
		if (d->ls[i].mode)
			d->ls[i].mode(d->ls[i].opaque, w, h, active);
	pthread_mutex_unlock(&d->lock);
	return 0;
}

int display_blit(struct display *d, uint32_t x, uint32_t y, uint32_t w, uint32_t h,
		 const uint8_t *src, size_t stride, enum display_format fmt)
{
	if (!display_format_valid(fmt))
		return -EINVAL;
	pthread_mutex_lock(&d->lock);
	if (!d->active || x >= d->w || y >= d->h) {
		pthread_mutex_unlock(&d->lock);
		return 0;
	}
	if (w > d->w - x)
		w = d->w - x;
	if (h > d->h - y)
		h = d->h - y;
	for (uint32_t row = 0; row < h; row++) {
		const uint8_t *s = src + (size_t)row * stride;
		uint32_t *o = d->pixels + (size_t)(y + row) * d->w + x;

		if (fmt == DISPLAY_FMT_BGRX || fmt == DISPLAY_FMT_BGRA) {
			/* The common case (Linux's XRGB8888) is the frame's own layout; the X or
			 * A byte is not ours to keep (frame words are 0x00RRGGBB). */
			memcpy(o, s, (size_t)w * 4);
			for (uint32_t col = 0; col < w; col++)
				o[col] &= 0x00ffffffu;
			continue;
		}
		for (uint32_t col = 0; col < w; col++)
			o[col] = display_pixel(s + (size_t)col * 4, fmt);
	}
	d->serial++;
	if (w && h)
		for (unsigned i = 0; i < d->nr_ls; i++)
			if (d->ls[i].update)
				d->ls[i].update(d->ls[i].opaque, x, y, w, h);
	pthread_mutex_unlock(&d->lock);
	return 0;
}

void display_set_resize_handler(struct display *d, display_resize_fn fn, void *opaque)
{
	pthread_mutex_lock(&d->lock);
	d->resize = fn;
	d->resize_opaque = opaque;
	pthread_mutex_unlock(&d->lock);
}

void display_preferred(struct display *d, uint32_t *w, uint32_t *h)
{
	pthread_mutex_lock(&d->lock);
	*w = d->pref_w;
	*h = d->pref_h;
	pthread_mutex_unlock(&d->lock);
}

int display_set_preferred(struct display *d, uint32_t w, uint32_t h)
{
	if (!dims_ok(w, h))
		return -EINVAL;
	pthread_mutex_lock(&d->lock);
	d->pref_w = w;
	d->pref_h = h;
	pthread_mutex_unlock(&d->lock);
	return 0;
}

int display_add_listener(struct display *d, const struct display_listener *l)
{
	pthread_mutex_lock(&d->lock);
	if (d->nr_ls == DISPLAY_MAX_LISTENERS) {
		pthread_mutex_unlock(&d->lock);
		return -ENOSPC;
	}
	d->ls[d->nr_ls++] = *l;
	if (l->mode)
		l->mode(l->opaque, d->w, d->h, d->active);
	pthread_mutex_unlock(&d->lock);
	return 0;
}

void display_remove_listener(struct display *d, void *opaque)
{
	pthread_mutex_lock(&d->lock);
	for (unsigned i = 0; i < d->nr_ls; i++) {
		if (d->ls[i].opaque != opaque)
			continue;
		memmove(&d->ls[i], &d->ls[i + 1], (d->nr_ls - i - 1) * sizeof(d->ls[0]));
		d->nr_ls--;
		break;
	}
	pthread_mutex_unlock(&d->lock);
}

int display_copy(struct display *d, uint32_t **pixels, uint32_t *w, uint32_t *h, uint64_t *serial)
{
	int ret = 0;

	*pixels = NULL;
	pthread_mutex_lock(&d->lock);
	*w = d->active ? d->w : 0;
	*h = d->active ? d->h : 0;
	if (serial)
		*serial = d->serial;
	if (d->active) {
		*pixels = malloc((size_t)d->w * d->h * sizeof(uint32_t));
		if (*pixels)
			memcpy(*pixels, d->pixels, (size_t)d->w * d->h * sizeof(uint32_t));
		else
			ret = -ENOMEM;
	}
	pthread_mutex_unlock(&d->lock);
	return ret;
}

uint64_t display_serial(struct display *d)
{
	uint64_t s;

	pthread_mutex_lock(&d->lock);
	s = d->serial;
	pthread_mutex_unlock(&d->lock);
	return s;
}

bool display_mode(struct display *d, uint32_t *w, uint32_t *h)
{
	bool a;

	pthread_mutex_lock(&d->lock);
	a = d->active;
	*w = d->w;
	*h = d->h;
	pthread_mutex_unlock(&d->lock);
	return a;
}

bool display_with_frame(struct display *d,
			void (*fn)(void *opaque, const uint32_t *pixels, uint32_t w, uint32_t h),
			void *opaque)
{
	bool a;

	pthread_mutex_lock(&d->lock);
	a = d->active;
	if (a)
		fn(opaque, d->pixels, d->w, d->h);
	pthread_mutex_unlock(&d->lock);
	return a;
}

int display_request_size(struct display *d, uint32_t w, uint32_t h)
{
	display_resize_fn fn;
	void *opaque;

	if (!dims_ok(w, h))
		return -EINVAL;
	pthread_mutex_lock(&d->lock);
	d->pref_w = w;
	d->pref_h = h;
	fn = d->resize;
	opaque = d->resize_opaque;
	pthread_mutex_unlock(&d->lock);
	/* Outside the lock: the handler signals the guest and may take the device's lock, which
	 * the device holds while it blits. */
	return fn ? fn(opaque, w, h) : -ENOTSUP;
}
