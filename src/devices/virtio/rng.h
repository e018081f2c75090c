/* virtio-rng, the entropy device (virtio 1.2 §5.4), backed by getrandom(2).  Present by default
 * (a microVM without a hardware RNG waits a long time for entropy); `--no-rng` leaves it out. */
#ifndef IGNITION_DEVICES_VIRTIO_RNG_H
#define IGNITION_DEVICES_VIRTIO_RNG_H

#include "devices/virtio/virtio.h"
#include "util/ratelimit.h"

#include <stddef.h>
#include <stdint.h>

struct devmgr;
struct virtio_rng;

#define VIRTIO_RNG_QUEUE_SIZE 64u
/* Most bytes one request gets (§5.4.6: the device MAY use less than the whole buffer), so one
 * huge buffer cannot keep the event loop in getrandom() for long. */
#define VIRTIO_RNG_MAX_REQUEST (64u * 1024)

/* The virtio ops of the entropy device (register it with virtio_mmio_add). */
extern const struct virtio_device_ops virtio_rng_ops;

/* A new entropy device reading from getrandom(2).  -ENOMEM. */
int virtio_rng_create(struct virtio_rng **out) __attribute__((warn_unused_result));

/* Replace the entropy source (unit tests: short reads, errors).  `src` fills `buf` with up to
 * `len` random bytes and returns how many (>= 0) or -errno; -EINTR is retried.  NULL restores
 * getrandom(2). */
void virtio_rng_set_source(struct virtio_rng *r, long (*src)(void *buf, size_t len));

/* Create the device and register it as "virtio-rng" on `dm`. */
int virtio_rng_add(struct devmgr *dm, struct virtio_rng **out) __attribute__((warn_unused_result));

/* Limit the device (bandwidth: bytes asked for, at most VIRTIO_RNG_MAX_REQUEST per request;
 * ops: requests); a limiter of zero sizes removes the limit.  A request that must wait stays
 * in the ring until the limiter's timer fires (on the event loop of virtio_rng_add).  Callable
 * before activation or at run time on the event-loop thread.  0, -EINVAL (ratelimit_validate),
 * or -errno of the timer. */
int virtio_rng_set_ratelimit(struct virtio_rng *r, const struct ratelimit_cfg *cfg)
	__attribute__((warn_unused_result));

/* The limiter's timer expired: resume the queue (its event-loop callback; unit tests). */
void virtio_rng_ratelimit_fire(struct virtio_rng *r);

/* Random bytes handed to the guest so far. */
uint64_t virtio_rng_bytes(const struct virtio_rng *r);

/* Free the device (also virtio_rng_ops.destroy). */
void virtio_rng_destroy(struct virtio_rng *r);

#endif
