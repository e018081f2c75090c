/* Token-bucket rate limiters for device I/O (Firecracker's `rate_limiter` objects): a
 * `bandwidth` bucket counted in bytes and an `ops` bucket counted in requests, each
 * {size, one_time_burst, refill_time}.  A bucket with size 0 does not limit.
 *
 * The configuration below is plain data (kept in struct machine_config, saved in snapshots,
 * filled by the REST API and the config file); the bucket state and the devices' use of it
 * live in ratelimit.c and the devices (virtio-blk, virtio-net rx/tx, virtio-rng). */
#ifndef IGNITION_UTIL_RATELIMIT_H
#define IGNITION_UTIL_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

struct tbucket_cfg {
	uint64_t size;		 /* tokens the bucket holds when full; 0: unlimited */
	uint64_t one_time_burst; /* extra tokens usable once, on top of size */
	uint64_t refill_time_ms; /* ms to refill from empty to size (> 0 when size > 0) */
};

struct ratelimit_cfg {
	struct tbucket_cfg bandwidth; /* bytes */
	struct tbucket_cfg ops;	      /* requests (virtio chains) */
};

/* True when neither bucket limits. */
static inline bool ratelimit_cfg_none(const struct ratelimit_cfg *c)
{
	return c->bandwidth.size == 0 && c->ops.size == 0;
}

#endif
