/* The display: one host-side frame that the virtio-gpu device draws into and every front end
 * (SDL window, VNC server, headless screenshots) reads.  It decouples the device from the
 * front ends: the device never knows who looks, a front end never touches guest memory.
 *
 * Pixels are 32-bit words 0x00RRGGBB in host order (bytes B, G, R, X on x86: DRM's XRGB8888,
 * virtio-gpu's B8G8R8X8_UNORM), rows `width` words apart.  While no scanout is set the frame is
 * black and `active` is false.
 *
 * Threading: every function may be called from any thread; the frame is guarded by a mutex of
 * the display's own.  Listener callbacks run on the producer's thread (the event loop) with that
 * mutex held: they must be quick (note the damage, wake their own thread) and must not call back
 * into the display. */
#ifndef IGNITION_UI_DISPLAY_H
#define IGNITION_UI_DISPLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct display;

/* Mode limits: a guest or a host request outside them is refused (-EINVAL). */
#define DISPLAY_MIN_DIM 64u
#define DISPLAY_MAX_W	3840u
#define DISPLAY_MAX_H	2160u
/* Listeners one display takes (SDL, VNC, headless waiters...). */
#define DISPLAY_MAX_LISTENERS 4

/* Source pixel layouts display_blit() converts from: the eight virtio-gpu 2D formats (virtio
 * 1.2 §5.7.6.8, VIRTIO_GPU_FORMAT_*), named by their bytes in memory, first byte first. */
enum display_format {
	DISPLAY_FMT_BGRA = 1,	/* B8G8R8A8_UNORM */
	DISPLAY_FMT_BGRX = 2,	/* B8G8R8X8_UNORM (Linux's XRGB8888) */
	DISPLAY_FMT_ARGB = 3,	/* A8R8G8B8_UNORM */
	DISPLAY_FMT_XRGB = 4,	/* X8R8G8B8_UNORM */
	DISPLAY_FMT_RGBA = 67,	/* R8G8B8A8_UNORM */
	DISPLAY_FMT_XBGR = 68,	/* X8B8G8R8_UNORM */
	DISPLAY_FMT_ABGR = 121, /* A8B8G8R8_UNORM */
	DISPLAY_FMT_RGBX = 134, /* R8G8B8X8_UNORM */
};

struct display_listener {
	void *opaque;
	/* The rectangle (inside the current mode) changed. */
	void (*update)(void *opaque, uint32_t x, uint32_t y, uint32_t w, uint32_t h);
	/* The mode changed to w x h (the frame is black until the next update), or the scanout
	 * went away (active false). */
	void (*mode)(void *opaque, uint32_t w, uint32_t h, bool active);
};

/* A host request to change the mode (window resized, `resize` command): the producer (the
 * virtio-gpu device) passes it on to the guest as a display-change event.  Called on the
 * requesting thread; the handler must be thread-safe.  0 or -errno. */
typedef int (*display_resize_fn)(void *opaque, uint32_t w, uint32_t h);

/* A black, inactive display whose preferred mode (what the device reports to the guest until a
 * host request changes it) is w x h.  -EINVAL (out of limits), -ENOMEM. */
int display_create(uint32_t w, uint32_t h, struct display **out)
	__attribute__((warn_unused_result));
/* Free it (listeners must be gone or no longer called).  NULL is a no-op. */
void display_destroy(struct display *d);

/* ---- Producer side (the virtio-gpu device) ---- */

/* Switch to mode w x h (black) and active, or inactive (active false: w, h ignored). */
int display_set_mode(struct display *d, uint32_t w, uint32_t h, bool active)
	__attribute__((warn_unused_result));
/* Copy the rectangle (x, y, w, h) of the frame from `src`: pixels of `fmt`, the rectangle's first
 * pixel at src, rows `stride` bytes apart.  The rectangle is clipped to the mode; with no active
 * mode nothing happens.  Calls every listener's update once.  -EINVAL for an unknown format. */
int display_blit(struct display *d, uint32_t x, uint32_t y, uint32_t w, uint32_t h,
		 const uint8_t *src, size_t stride, enum display_format fmt)
	__attribute__((warn_unused_result));
/* Set (or clear, fn NULL) the handler of host resize requests. */
void display_set_resize_handler(struct display *d, display_resize_fn fn, void *opaque);
/* The preferred mode (what display info reports); display_request_size() updates it. */
void display_preferred(struct display *d, uint32_t *w, uint32_t *h);
/* Set the preferred mode without asking anyone (a restored device brings back what it
 * reported before its snapshot).  -EINVAL out of limits. */
int display_set_preferred(struct display *d, uint32_t w, uint32_t h)
	__attribute__((warn_unused_result));

/* ---- Consumer side (front ends, screenshots) ---- */

/* Add a listener (copied); it is called at once with the current mode.  -ENOSPC when full. */
int display_add_listener(struct display *d, const struct display_listener *l)
	__attribute__((warn_unused_result));
/* Remove the listener with this opaque (no-op if none). */
void display_remove_listener(struct display *d, void *opaque);
/* A copy of the frame: *pixels malloc'd (width * height words; the caller frees), the mode, and
 * the frame's serial number (incremented by every blit and mode change).  With no active mode,
 * *pixels is NULL, *w = *h = 0, and 0 is returned.  -ENOMEM. */
int display_copy(struct display *d, uint32_t **pixels, uint32_t *w, uint32_t *h, uint64_t *serial)
	__attribute__((warn_unused_result));
/* The frame's serial number now (cheap: to see whether the screen changed). */
uint64_t display_serial(struct display *d);
/* The current mode; false when inactive. */
bool display_mode(struct display *d, uint32_t *w, uint32_t *h);
/* Run fn(opaque, pixels, w, h) with the frame locked (no copy; fn must be quick and must not
 * call the display).  Not called when inactive; returns whether it was. */
bool display_with_frame(struct display *d,
			void (*fn)(void *opaque, const uint32_t *pixels, uint32_t w, uint32_t h),
			void *opaque);
/* Ask the guest for mode w x h: records it as the preferred mode and calls the resize handler.
 * -EINVAL out of limits, -ENOTSUP without a handler, or the handler's -errno. */
int display_request_size(struct display *d, uint32_t w, uint32_t h)
	__attribute__((warn_unused_result));

/* Convert one source pixel of `fmt` at p to 0x00RRGGBB (for producers and tests).  Unknown
 * formats give 0. */
uint32_t display_pixel(const uint8_t *p, enum display_format fmt);
/* Whether fmt is one of the formats above. */
bool display_format_valid(uint32_t fmt);

#endif
