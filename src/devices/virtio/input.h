/* virtio-input (virtio 1.2 §5.8): a keyboard and an absolute pointer (tablet), the GUI's way
 * into the guest.  Events come from any host thread (SDL, VNC, the control socket, MCP) through
 * virtio_input_send(); the device queues them and delivers them into the event queue on the
 * event loop as the guest makes buffers available. */
#ifndef IGNITION_DEVICES_VIRTIO_INPUT_H
#define IGNITION_DEVICES_VIRTIO_INPUT_H

#include "devices/virtio/virtio.h"

#include <stdbool.h>
#include <stdint.h>

struct devmgr;
struct virtio_input;

#define VIRTIO_ID_INPUT 18

/* Linux input event types and codes used here (linux/input-event-codes.h values). */
#define VIRTIO_INPUT_EV_SYN	0x00
#define VIRTIO_INPUT_EV_KEY	0x01
#define VIRTIO_INPUT_EV_REL	0x02
#define VIRTIO_INPUT_EV_ABS	0x03
#define VIRTIO_INPUT_EV_REP	0x14
#define VIRTIO_INPUT_SYN_REPORT 0
#define VIRTIO_INPUT_ABS_X	0x00
#define VIRTIO_INPUT_ABS_Y	0x01
#define VIRTIO_INPUT_REL_WHEEL	0x08
#define VIRTIO_INPUT_BTN_LEFT	0x110
#define VIRTIO_INPUT_BTN_RIGHT	0x111
#define VIRTIO_INPUT_BTN_MIDDLE 0x112
/* The tablet's axes run 0..VIRTIO_INPUT_ABS_MAX on both X and Y, whatever the screen size. */
#define VIRTIO_INPUT_ABS_MAX 32767

enum virtio_input_kind {
	VIRTIO_INPUT_KEYBOARD, /* "ignition keyboard": EV_KEY (keys), EV_REP */
	VIRTIO_INPUT_TABLET,   /* "ignition tablet": EV_ABS X/Y, EV_KEY buttons, EV_REL wheel */
};

/* One event as the guest receives it (virtio 1.2 §5.8.6: struct virtio_input_event). */
struct virtio_input_event {
	uint16_t type;
	uint16_t code;
	uint32_t value;
};

/* The virtio ops of an input device. */
extern const struct virtio_device_ops virtio_input_ops;

/* A new input device of `kind`.  -ENOMEM. */
int virtio_input_create(enum virtio_input_kind kind, struct virtio_input **out)
	__attribute__((warn_unused_result));

/* Create the device and register it as `id` ("virtio-input0") on `dm`. */
int virtio_input_add(struct devmgr *dm, const char *id, enum virtio_input_kind kind,
		     struct virtio_input **out) __attribute__((warn_unused_result));

/* Queue n events (the caller ends each group with EV_SYN/SYN_REPORT) for the guest; any thread.
 * Events the device does not support (wrong type or code for its kind) are refused with
 * -EINVAL and nothing is queued.  When the guest does not take events (driver not loaded, not
 * reading), the queue holds a bounded number and then drops whole groups (-ENOBUFS).  0 or
 * -errno. */
int virtio_input_send(struct virtio_input *in, const struct virtio_input_event *ev, unsigned n)
	__attribute__((warn_unused_result));

/* Free the device (also virtio_input_ops.destroy). */
void virtio_input_destroy(struct virtio_input *in);

/* ---- Added by the implementation ---- */

/* Config space selectors (virtio 1.2 §5.8.4, enum virtio_input_config_select). */
#define VIRTIO_INPUT_CFG_UNSET	   0x00
#define VIRTIO_INPUT_CFG_ID_NAME   0x01
#define VIRTIO_INPUT_CFG_ID_SERIAL 0x02
#define VIRTIO_INPUT_CFG_ID_DEVIDS 0x03
#define VIRTIO_INPUT_CFG_PROP_BITS 0x10
#define VIRTIO_INPUT_CFG_EV_BITS   0x11
#define VIRTIO_INPUT_CFG_ABS_INFO  0x12
/* Config space layout: select, subsel, size, 5 reserved bytes, then a 128-byte union. */
#define VIRTIO_INPUT_CFG_SELECT 0
#define VIRTIO_INPUT_CFG_SUBSEL 1
#define VIRTIO_INPUT_CFG_SIZE	2
#define VIRTIO_INPUT_CFG_U	8
#define VIRTIO_INPUT_CFG_LEN	(8 + 128)

#define VIRTIO_INPUT_EV_LED	 0x11
#define VIRTIO_INPUT_BUS_VIRTUAL 0x06	/* BUS_VIRTUAL, linux/input.h */
#define VIRTIO_INPUT_VENDOR	 0x4947 /* "IG" */
#define VIRTIO_INPUT_KEY_MAX	 0x2ff	/* KEY_MAX */

/* Largest queue the device offers (Linux posts at most 64 event buffers). */
#define VIRTIO_INPUT_QUEUE_SIZE 64
/* Events the device holds for the guest (whole groups; a send that does not fit is dropped). */
#define VIRTIO_INPUT_RING 4096
/* Most events in one group (up to and including its SYN_REPORT). */
#define VIRTIO_INPUT_MAX_GROUP 16

/* The device's kind. */
enum virtio_input_kind virtio_input_kind(const struct virtio_input *in);

/* Whether key or button `code` is held as far as the host's events say (every event
 * virtio_input_send() accepted, delivered or dropped; cleared by a restore, which releases
 * every key the guest saw pressed).  Front ends derive button changes from it. */
bool virtio_input_key_down(struct virtio_input *in, uint16_t code);

/* The keyboard LEDs the guest set through the status queue (bit n = LED code n: 0 NumLock,
 * 1 CapsLock, 2 ScrollLock). */
uint8_t virtio_input_leds(struct virtio_input *in);

/* Events waiting for the guest (tests, diagnostics). */
unsigned virtio_input_pending(struct virtio_input *in);

#endif
