/* Test fake: a virtio-input device behind the real virtio-mmio transport, driven by the fake
 * driver with 8-byte event buffers, for the device's own tests and those of the front-end
 * input layer (src/ui/input.c) that feed it. */
#ifndef IGNITION_TESTS_FAKE_INPUT_H
#define IGNITION_TESTS_FAKE_INPUT_H

#include "core/irq.h"
#include "devices/virtio/input.h"
#include "fake_virtq.h"

#include <stdint.h>

/* Guest layout: eventq and statusq rings, then one 8-byte buffer per eventq descriptor. */
#define FIN_RAM_SIZE  (1u << 20)
#define FIN_EVQ_DESC  0x1000
#define FIN_EVQ_AVAIL 0x2000
#define FIN_EVQ_USED  0x3000
#define FIN_STQ_DESC  0x4000
#define FIN_STQ_AVAIL 0x5000
#define FIN_STQ_USED  0x6000
#define FIN_EVBUF     0x10000 /* + 8 * descriptor index */
#define FIN_STBUF     0x20000

struct fin {
	struct fake_mem mem;
	struct irq_line irq;
	struct virtio_input *in;
	struct virtio_mmio *t;
	struct fake_vq evq, stq;
};

/* Create a device of `kind` and its transport; bring it up (§3.1.1) with both queues of
 * `qsize` entries unless qsize is 0. */
void fin_init(struct fin *x, enum virtio_input_kind kind, uint16_t qsize);
/* Bring the device up with both queues of `qsize` entries. */
void fin_bring_up(struct fin *x, uint16_t qsize);
/* Destroy the transport (and device) and the fake memory. */
void fin_free(struct fin *x);
/* Make `n` 8-byte event buffers available and notify the eventq. */
void fin_post(struct fin *x, unsigned n);
/* Take the events the device returned, in used-ring order, into out (at most max; asserts
 * each used length is 8); their number. */
unsigned fin_take(struct fin *x, struct virtio_input_event *out, unsigned max);
/* Config space: select/subsel, then the size byte and the union. */
uint8_t fin_cfg_select(struct fin *x, uint8_t select, uint8_t subsel, uint8_t *u);

#endif
