/* Split virtqueues (virtio 1.2 §2.7) over guest memory.  The guest runs concurrently and may be
 * hostile: every descriptor is copied once before it is checked, every address and length is
 * resolved through gmem_ptr(), every chain walk is bounded, and a malformed queue is marked
 * broken instead of crashing anything. */
#ifndef IGNITION_DEVICES_VIRTIO_VIRTQ_H
#define IGNITION_DEVICES_VIRTIO_VIRTQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct gmem;

/* Descriptor flags (virtio 1.2 §2.7.5). */
#define VIRTQ_DESC_F_NEXT     1
#define VIRTQ_DESC_F_WRITE    2
#define VIRTQ_DESC_F_INDIRECT 4
/* Ring flags (§2.7.6, §2.7.8). */
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1
#define VIRTQ_USED_F_NO_NOTIFY	   1

/* Ring alignment (§2.7: descriptor table 16, available ring 2, used ring 4). */
#define VIRTQ_DESC_ALIGN  16
#define VIRTQ_AVAIL_ALIGN 2
#define VIRTQ_USED_ALIGN  4

/* Most segments one popped chain may have (also the largest indirect table, in entries). */
#define VIRTQ_ELEM_MAX_SEGS 1024
/* Largest total length of one chain: used.len is 32 bits (§2.7.8). */
#define VIRTQ_ELEM_MAX_LEN UINT32_MAX

/* One descriptor as laid out in guest memory (§2.7.5), little-endian. */
struct virtq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

/* One available chain, resolved to host memory: iov[0..nr_out) are driver-written (readable)
 * buffers, iov[nr_out..nr_out+nr_in) device-writable ones (§2.7.4.2: readable first). */
struct virtq_elem {
	uint16_t head;	  /* descriptor index: the id returned in the used ring */
	unsigned nr_out;  /* readable segments */
	unsigned nr_in;	  /* writable segments */
	uint32_t out_len; /* total readable bytes */
	uint32_t in_len;  /* total writable bytes */
	struct iovec iov[VIRTQ_ELEM_MAX_SEGS];
};

/* One split virtqueue.  The transport fills in the layout with virtq_setup(); the device pops
 * and pushes. */
struct virtq {
	const struct gmem *gm;
	uint16_t size;	/* queue size (power of two); 0 when not set up */
	bool ready;	/* set up and usable */
	bool broken;	/* the driver handed us garbage; stop until reset */
	bool event_idx; /* VIRTIO_F_EVENT_IDX negotiated (§2.7.10) */
	bool indirect;	/* VIRTIO_F_INDIRECT_DESC negotiated (§2.7.5.3) */
	uint64_t desc_gpa, avail_gpa, used_gpa;
	uint8_t *desc; /* host views of the rings, resolved once at setup */
	uint8_t *avail;
	uint8_t *used;
	uint16_t last_avail;	 /* next available-ring slot to consume */
	uint16_t used_idx;	 /* our copy of used->idx */
	uint16_t signalled_used; /* used_idx when we last decided whether to notify */
	bool signalled_valid;	 /* signalled_used is meaningful */
	bool notify_off;	 /* virtq_disable_notify() in force: the device is draining */
};

/* Bytes of each ring for a queue of `size` entries (§2.7, with the event fields). */
uint64_t virtq_desc_bytes(uint16_t size);
uint64_t virtq_avail_bytes(uint16_t size);
uint64_t virtq_used_bytes(uint16_t size);

/* True if `size` is a valid queue size no larger than `max` (nonzero power of two). */
bool virtq_size_valid(uint32_t size, uint32_t max);

/* Point `vq` at rings of `size` entries in guest memory and mark it ready.  -EINVAL if the size
 * is invalid, a ring is misaligned or not wholly inside guest RAM. */
int virtq_setup(struct virtq *vq, const struct gmem *gm, uint16_t size, uint64_t desc,
		uint64_t avail, uint64_t used) __attribute__((warn_unused_result));

/* Record the negotiated ring features (EVENT_IDX, INDIRECT_DESC). */
void virtq_set_features(struct virtq *vq, uint64_t features);

/* Forget everything: not ready, no rings, indices zero. */
void virtq_reset(struct virtq *vq);

/* Take the next available chain into `elem`.  1: got one; 0: the ring is empty (with EVENT_IDX
 * and notifications enabled, the driver has been asked to notify on the next one);
 * -EINVAL/-EFAULT: the chain or ring is malformed, the queue is now broken and nothing more is
 * popped until virtq_reset(); -EIO: the queue was already broken or is not ready. */
int virtq_pop(struct virtq *vq, struct virtq_elem *elem) __attribute__((warn_unused_result));

/* The device is about to drain the queue: ask the driver not to notify for the buffers it adds
 * meanwhile (§2.7.7.2: VIRTQ_USED_F_NO_NOTIFY; with EVENT_IDX, §2.7.10, avail_event is simply
 * no longer advanced, so it stays behind the driver's index).  Until virtq_enable_notify(),
 * virtq_pop() leaves the suppression state alone. */
void virtq_disable_notify(struct virtq *vq);

/* The device is about to sleep: ask the driver to notify for the next buffer (clear
 * NO_NOTIFY, or set avail_event to the next slot), then look at the ring again.  True if
 * buffers are available, so the device must keep draining instead of sleeping: the driver may
 * have added them before it could see the request and will not notify for them. */
bool virtq_enable_notify(struct virtq *vq) __attribute__((warn_unused_result));

/* Return chain `head` to the driver with `len` bytes written into its writable buffers (also on
 * a broken queue: requests popped before it broke still complete). */
void virtq_push(struct virtq *vq, uint16_t head, uint32_t len);

/* After pushing: should the driver be interrupted (§2.7.7.2, §2.7.10)?  Consumes the decision,
 * so call it once per batch.  A broken queue with new used entries always says yes. */
bool virtq_should_notify(struct virtq *vq);

/* Gather up to `len` bytes from `elem`'s readable buffers starting at byte `off` into `dst`;
 * returns the number of bytes copied. */
size_t virtq_elem_read(const struct virtq_elem *elem, size_t off, void *dst, size_t len);
/* Scatter up to `len` bytes from `src` into `elem`'s writable buffers at byte `off`; returns the
 * number of bytes copied. */
size_t virtq_elem_write(const struct virtq_elem *elem, size_t off, const void *src, size_t len);

/* Describe bytes [off, off+len) of the iovec list `iov[0..n)` as a new list in `out` (at most
 * `max` entries).  Returns the number of entries, or -EINVAL if the range does not fit. */
int virtq_iov_slice(const struct iovec *iov, unsigned n, size_t off, size_t len, struct iovec *out,
		    unsigned max) __attribute__((warn_unused_result));

/* Give back the last `n` chains virtq_pop() returned that were neither pushed nor written:
 * they are still in the driver's available ring (§2.7.13), so moving our consumption index
 * back makes the next pops return them again, in order.  Nothing else may have been popped
 * since (pushes do not matter).  For a device that parked chains it will not complete (a
 * receive buffer kept in hand, before a snapshot).  No-op on a queue that is not set up. */
void virtq_unpop(struct virtq *vq, uint16_t n);

/* Snapshots: the device's progress through a queue, the part of struct virtq that is neither
 * the ring layout (the transport saves the addresses and size and rebuilds it with
 * virtq_setup()), nor a host view, nor the negotiated ring features (virtq_set_features() at
 * activation).  Plain data; the transport encodes it into its snapshot record. */
struct virtq_progress {
	uint16_t last_avail;	 /* next available-ring slot to consume */
	uint16_t used_idx;	 /* used->idx as we last published it */
	uint16_t signalled_used; /* used_idx at the last notification decision */
	bool signalled_valid;	 /* signalled_used is meaningful */
	bool notify_off;	 /* virtq_disable_notify() in force */
	bool broken;		 /* the driver handed us garbage */
};

/* Copy the progress of `vq` into `p` (all zero for a queue that is not set up). */
void virtq_get_progress(const struct virtq *vq, struct virtq_progress *p);

/* Give `vq`, just set up with virtq_setup(), the progress `p`, without touching guest memory.
 * -EINVAL (vq unchanged) if vq is not set up, if more than its size chains would be
 * outstanding (popped and not yet used: last_avail - used_idx), or if signalled_used is set
 * without signalled_valid. */
int virtq_set_progress(struct virtq *vq, const struct virtq_progress *p)
	__attribute__((warn_unused_result));

#endif
