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

/* Largest size or one_time_burst a bucket takes (keeps the token arithmetic, debt included,
 * inside int64_t), and the longest refill_time (keeps it in nanoseconds inside uint64_t). */
#define RATELIMIT_MAX_TOKENS	(UINT64_C(1) << 60)
#define RATELIMIT_MAX_REFILL_MS (UINT64_C(1) << 40)

/* One bucket's state.  `budget` goes negative when a request larger than the bucket was let
 * through (debt): nothing more passes until refill has paid it back. */
struct tbucket {
	struct tbucket_cfg cfg;
	int64_t budget;	  /* tokens now, <= cfg.size */
	uint64_t burst;	  /* one_time_burst left (never refilled) */
	uint64_t rem;	  /* refill remainder, in token*ns units below refill_time (no drift) */
	uint64_t last_ns; /* clock at the last refill */
};

/* A limiter: both buckets, plus a timerfd the device arms when a request must wait (created
 * on first use, -1 before). */
struct ratelimit {
	struct tbucket bw, ops;
	int timer_fd;
	bool armed;
};

/* 0, or -EINVAL: a bucket with size > 0 and refill_time 0, or a size, burst or refill_time
 * above the RATELIMIT_MAX_* bounds. */
int ratelimit_validate(const struct ratelimit_cfg *c) __attribute__((warn_unused_result));

/* A limiter with full buckets (and their one-time bursts) for `c`; -EINVAL as validate. */
int ratelimit_init(struct ratelimit *rl, const struct ratelimit_cfg *c)
	__attribute__((warn_unused_result));

/* A limiter that does not limit (ratelimit_init with zero sizes, which cannot fail). */
void ratelimit_init_none(struct ratelimit *rl);

/* Reconfigure in place: a bucket whose config changed starts over full (as a new one in
 * Firecracker), an unchanged one keeps its state.  -EINVAL (nothing changed) as validate. */
int ratelimit_update(struct ratelimit *rl, const struct ratelimit_cfg *c)
	__attribute__((warn_unused_result));

/* True when neither bucket limits. */
bool ratelimit_none(const struct ratelimit *rl);

/* Take `bytes` from the bandwidth bucket and `ops` from the ops bucket, both or neither.
 * One-time burst tokens go first.  A request larger than a bucket's size passes once that
 * bucket is full and leaves it in debt, so it cannot wait for ever.  True: taken.  False:
 * nothing taken, *wait_ns (when not NULL) says how long until it would pass (>= 1). */
bool ratelimit_consume(struct ratelimit *rl, uint64_t bytes, uint64_t ops, uint64_t *wait_ns);

/* Would ratelimit_consume() take these now?  The same answer and *wait_ns, nothing taken (a
 * frame the device may still fail to deliver: it calls ratelimit_force() once it has). */
bool ratelimit_check(struct ratelimit *rl, uint64_t bytes, uint64_t ops, uint64_t *wait_ns);

/* Take tokens without asking (a frame already read from the back end): buckets may go into
 * debt. */
void ratelimit_force(struct ratelimit *rl, uint64_t bytes, uint64_t ops);

/* The limiter's timerfd (CLOCK_MONOTONIC, non-blocking), created on the first call, for the
 * device to watch on its event loop; -errno. */
int ratelimit_timer_fd(struct ratelimit *rl) __attribute__((warn_unused_result));

/* Arm the timerfd (created if needed) to expire in `wait_ns`.  0 or -errno. */
int ratelimit_arm(struct ratelimit *rl, uint64_t wait_ns) __attribute__((warn_unused_result));

/* The timer fired: read it and mark it disarmed. */
void ratelimit_timer_ack(struct ratelimit *rl);

/* Disarm the timer (a reconfiguration, a reset). */
void ratelimit_disarm(struct ratelimit *rl);

/* Close the timerfd. */
void ratelimit_destroy(struct ratelimit *rl);

/* Clock of every limiter, in ns (unit tests); NULL restores CLOCK_MONOTONIC. */
void ratelimit_set_clock(uint64_t (*now_ns)(void));

#endif
