/* A front end's own copy of the display (src/ui/display.h), kept up to date from its own
 * thread.  The display's listeners run on the producer's thread with the display locked, so
 * they only record what changed here (and optionally wake the consumer); the consumer then
 * copies the changed rectangle under the display's lock with ui_shadow_sync() and draws from
 * its copy without holding any lock (an SDL texture upload or a VNC encode never stalls the
 * guest's GPU flush).  Shared by the SDL window and the VNC server. */
#ifndef IGNITION_UI_SHADOW_H
#define IGNITION_UI_SHADOW_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct display;

struct ui_shadow {
	struct display *d;
	/* Guards the fields the listener writes (pending damage). */
	pthread_mutex_t lock;
	bool dirty, mode_changed;
	uint32_t dx0, dy0, dx1, dy1; /* pending damage, [x0, x1) x [y0, y1) */
	/* Called by the listener (display locked, producer thread): must be quick. May be NULL. */
	void (*wake)(void *opaque);
	void *wake_opaque;
	/* Owned by the consumer thread. */
	uint32_t *pixels; /* w * h words, 0x00RRGGBB */
	uint32_t w, h;
	bool active;
	bool swap_rb; /* store 0x00BBGGRR (libvncserver's default 32-bit format) */
};

/* What one sync changed. */
struct ui_shadow_change {
	bool resized; /* w/h changed (the buffer was reallocated: pixels moved) */
	bool damaged; /* the rectangle below must be redrawn */
	uint32_t x, y, w, h;
};

/* Start following d: the buffer starts black at the current mode (or the preferred mode when
 * the display is inactive).  0, -ENOMEM or -ENOSPC (no listener slot). */
int ui_shadow_init(struct ui_shadow *s, struct display *d, bool swap_rb, void (*wake)(void *),
		   void *wake_opaque) __attribute__((warn_unused_result));
/* Copy what changed since the last call; *c says what.  0 or -ENOMEM. */
int ui_shadow_sync(struct ui_shadow *s, struct ui_shadow_change *c)
	__attribute__((warn_unused_result));
/* Whether the listener recorded something since the last sync (cheap). */
bool ui_shadow_pending(struct ui_shadow *s);
/* Stop following and free the buffer. */
void ui_shadow_fini(struct ui_shadow *s);

#endif
