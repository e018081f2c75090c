/* Common virtio definitions and the ops table every virtio device implements (DESIGN.md §2).
 * The transport (mmio.c) owns registers, feature negotiation, status and queues; a device only
 * supplies its id, features, config space and queue work. */
#ifndef IGNITION_DEVICES_VIRTIO_VIRTIO_H
#define IGNITION_DEVICES_VIRTIO_VIRTIO_H

#include "core/bus.h"

#include <stddef.h>
#include <stdint.h>

struct virtio_mmio;
struct virtq;
struct snap_writer;
struct snap_file;

/* Device ids (virtio 1.2 §5). */
#define VIRTIO_ID_NET	  1
#define VIRTIO_ID_BLOCK	  2
#define VIRTIO_ID_CONSOLE 3
#define VIRTIO_ID_RNG	  4
#define VIRTIO_ID_BALLOON 5
#define VIRTIO_ID_VSOCK	  19

/* Device status bits (virtio 1.2 §2.1). */
#define VIRTIO_STATUS_ACKNOWLEDGE	 1u
#define VIRTIO_STATUS_DRIVER		 2u
#define VIRTIO_STATUS_DRIVER_OK		 4u
#define VIRTIO_STATUS_FEATURES_OK	 8u
#define VIRTIO_STATUS_DEVICE_NEEDS_RESET 64u
#define VIRTIO_STATUS_FAILED		 128u

/* Reserved feature bits (virtio 1.2 §6). */
#define VIRTIO_F_INDIRECT_DESC	 28
#define VIRTIO_F_EVENT_IDX	 29
#define VIRTIO_F_VERSION_1	 32
#define VIRTIO_F_ACCESS_PLATFORM 33
#define VIRTIO_F_RING_PACKED	 34

/* Feature bit n as a mask. */
#define VIRTIO_BIT(n) (1ull << (n))

/* Interrupt status bits (virtio 1.2 §4.2.2, InterruptStatus). */
#define VIRTIO_INT_USED	  1u /* a used buffer notification */
#define VIRTIO_INT_CONFIG 2u /* the configuration changed (or DEVICE_NEEDS_RESET was set) */

/* Transport limits: most queues any ignition device has, largest queue size (§2.7: 32768). */
#define VIRTIO_MAX_QUEUES     16
#define VIRTIO_QUEUE_MAX_SIZE 32768

/* Most chains one queue_notify() call may handle.  A device that stops with work left calls
 * virtio_mmio_queue_yield(), and the event loop serves every other ready source (console, other
 * devices, control plane) before it comes back: one busy queue cannot starve the rest. */
#define VIRTIO_QUEUE_BUDGET 64

/* The ops table of a virtio device.  `dev` is the device's own state.  Every callback except
 * `features` and `set_transport` (called when the transport is created or freed) runs with the
 * transport's lock held: register accesses come from vCPU threads, queue work from the
 * event-loop thread, and the (recursive) lock serialises them, so a device needs no lock of
 * its own for them. */
struct virtio_device_ops {
	const char *name;	 /* "virtio-blk" */
	uint32_t device_id;	 /* VIRTIO_ID_* */
	unsigned num_queues;	 /* <= VIRTIO_MAX_QUEUES */
	uint16_t queue_max_size; /* power of two, <= VIRTIO_QUEUE_MAX_SIZE */
	/* Feature bits the device offers (VIRTIO_F_VERSION_1 is required; the transport adds
	 * nothing on its own). */
	uint64_t (*features)(void *dev);
	/* The transport gives itself to the device: `t` once it is created, NULL if it is freed
	 * without the device (a failed add).  For a device that signals or takes the transport
	 * lock outside the callbacks here (back-end and timer callbacks on the event loop).
	 * Called without the lock, before any other use of `t`.  May be NULL. */
	void (*set_transport)(void *dev, struct virtio_mmio *t);
	/* Read/write `size` (1, 2, 4 or 8) bytes at `off` within the device config space
	 * (virtio 1.2 §4.2.2: offset 0x100 of the window).  Out-of-range reads return 0. */
	uint64_t (*config_read)(void *dev, uint32_t off, unsigned size);
	void (*config_write)(void *dev, uint32_t off, unsigned size,
			     uint64_t val); /* may be NULL */
	/* The driver set DRIVER_OK: start using `vqs[0..nr)` (only those with vq->ready) with the
	 * negotiated `features`.  `t` is the transport to signal through.  0 or -errno (the
	 * transport then sets DEVICE_NEEDS_RESET). */
	int (*activate)(void *dev, struct virtio_mmio *t, uint64_t features, struct virtq *vqs,
			unsigned nr);
	/* The driver notified queue `q` (event-loop thread, or the vCPU thread without an
	 * event loop).  Handle at most VIRTIO_QUEUE_BUDGET chains; with more left, call
	 * virtio_mmio_queue_yield() and return. */
	void (*queue_notify)(void *dev, unsigned q);
	/* Forget activation and in-flight work: the driver reset the device.  May be NULL. */
	void (*reset)(void *dev);
	/* Finish or park in-flight work so guest memory and queues are stable (pause, snapshot).
	 * May be NULL. */
	void (*quiesce)(void *dev);
	/* The device's own snapshot record(s) keyed by `id` (the transport saves the common
	 * state: status, features, queues, interrupt bits).  restore runs after the transport
	 * has loaded its own record and before the device is re-activated.  May be NULL for a
	 * device with no state of its own. */
	int (*save)(void *dev, struct snap_writer *w, const char *id);
	int (*restore)(void *dev, const struct snap_file *f, const char *id);
	/* The device's own record, declared as struct dev_ops.rec is (the transport reports it
	 * through its inner_rec): set exactly when save and restore are, else
	 * virtio_mmio_create() refuses the table. */
	struct dev_rec rec;
	/* Free the device. */
	void (*destroy)(void *dev);
};

/* Read `size` bytes at `off` from a little-endian config image of `len` bytes; bytes past the
 * end read as 0, so any offset and width is safe (virtio 1.2 §2.5: any access width). */
static inline uint64_t virtio_config_get(const void *cfg, size_t len, uint32_t off, unsigned size)
{
	uint64_t v = 0;

	if (size > sizeof(v))
		size = sizeof(v);
	for (unsigned i = 0; i < size; i++)
		if ((uint64_t)off + i < len)
			v |= (uint64_t)((const uint8_t *)cfg)[off + i] << (8 * i);
	return v;
}

/* Store a little-endian value of `size` bytes into `p`. */
static inline void virtio_put_le(void *p, uint64_t v, unsigned size)
{
	for (unsigned i = 0; i < size; i++)
		((uint8_t *)p)[i] = (uint8_t)(v >> (8 * i));
}

/* Load a little-endian value of `size` bytes from `p`. */
static inline uint64_t virtio_get_le(const void *p, unsigned size)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < size; i++)
		v |= (uint64_t)((const uint8_t *)p)[i] << (8 * i);
	return v;
}

#endif
