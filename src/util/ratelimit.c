/* Token buckets (ratelimit.h).  Refill is continuous: after `elapsed` ns a bucket gains
 * size * elapsed / refill_time tokens, capped at size; the division's remainder is carried
 * over (b->rem) so that many small refills add up to exactly the rate.  The products run in
 * unsigned __int128, so no size or refill_time within the validated bounds can overflow. */
#include "util/ratelimit.h"

#include <errno.h>
#include <string.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define NS_PER_MS UINT64_C(1000000)

static uint64_t (*clock_fn)(void);

static uint64_t now_ns(void)
{
	struct timespec ts;

	if (clock_fn)
		return clock_fn();
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void ratelimit_set_clock(uint64_t (*fn)(void))
{
	clock_fn = fn;
}

static int bucket_validate(const struct tbucket_cfg *c)
{
	if (c->size > RATELIMIT_MAX_TOKENS || c->one_time_burst > RATELIMIT_MAX_TOKENS ||
	    c->refill_time_ms > RATELIMIT_MAX_REFILL_MS)
		return -EINVAL;
	/* A bucket that limits must refill, or it would block for ever once empty. */
	if (c->size && !c->refill_time_ms)
		return -EINVAL;
	return 0;
}

int ratelimit_validate(const struct ratelimit_cfg *c)
{
	int ret = bucket_validate(&c->bandwidth);

	return ret ? ret : bucket_validate(&c->ops);
}

static void bucket_init(struct tbucket *b, const struct tbucket_cfg *c, uint64_t now)
{
	b->cfg = *c;
	b->budget = (int64_t)c->size;
	b->burst = c->size ? c->one_time_burst : 0;
	b->rem = 0;
	b->last_ns = now;
}

int ratelimit_init(struct ratelimit *rl, const struct ratelimit_cfg *c)
{
	uint64_t now = now_ns();

	if (ratelimit_validate(c))
		return -EINVAL;
	bucket_init(&rl->bw, &c->bandwidth, now);
	bucket_init(&rl->ops, &c->ops, now);
	rl->timer_fd = -1;
	rl->armed = false;
	return 0;
}

void ratelimit_init_none(struct ratelimit *rl)
{
	memset(rl, 0, sizeof(*rl));
	rl->timer_fd = -1;
}

int ratelimit_update(struct ratelimit *rl, const struct ratelimit_cfg *c)
{
	uint64_t now = now_ns();

	if (ratelimit_validate(c))
		return -EINVAL;
	if (memcmp(&rl->bw.cfg, &c->bandwidth, sizeof(c->bandwidth)))
		bucket_init(&rl->bw, &c->bandwidth, now);
	if (memcmp(&rl->ops.cfg, &c->ops, sizeof(c->ops)))
		bucket_init(&rl->ops, &c->ops, now);
	return 0;
}

bool ratelimit_none(const struct ratelimit *rl)
{
	return rl->bw.cfg.size == 0 && rl->ops.cfg.size == 0;
}

static void refill(struct tbucket *b, uint64_t now)
{
	uint64_t refill_ns = b->cfg.refill_time_ms * NS_PER_MS;
	unsigned __int128 acc;
	uint64_t add;

	if (!b->cfg.size || now <= b->last_ns)
		return;
	acc = (unsigned __int128)b->cfg.size * (now - b->last_ns) + b->rem;
	b->last_ns = now;
	if (acc / refill_ns >= (unsigned __int128)b->cfg.size - (unsigned __int128)b->budget) {
		/* Full (debt included: size - budget <= 2 * MAX_TOKENS fits). */
		b->budget = (int64_t)b->cfg.size;
		b->rem = 0;
		return;
	}
	add = (uint64_t)(acc / refill_ns);
	b->rem = (uint64_t)(acc % refill_ns);
	b->budget += (int64_t)add;
}

/* Tokens beyond what may be counted stay at the cap: no request is that large in practice. */
static int64_t clamp(uint64_t n)
{
	return n > 2 * RATELIMIT_MAX_TOKENS ? (int64_t)(2 * RATELIMIT_MAX_TOKENS) : (int64_t)n;
}

/* 0 if `n` tokens can be taken now, else the ns until they can. */
static uint64_t bucket_wait(const struct tbucket *b, uint64_t n)
{
	int64_t need = clamp(n), target;
	uint64_t refill_ns = b->cfg.refill_time_ms * NS_PER_MS;
	unsigned __int128 tok_ns;

	if (!b->cfg.size)
		return 0;
	need -= (int64_t)(b->burst < (uint64_t)need ? b->burst : (uint64_t)need);
	if (need <= b->budget)
		return 0;
	/* More than the bucket holds: passes once the bucket is full (then leaves a debt). */
	target = need > (int64_t)b->cfg.size ? (int64_t)b->cfg.size : need;
	if (b->budget >= target)
		return 0;
	tok_ns = (unsigned __int128)(target - b->budget) * refill_ns - b->rem;
	tok_ns = (tok_ns + b->cfg.size - 1) / b->cfg.size;
	return tok_ns > UINT64_MAX ? UINT64_MAX : tok_ns ? (uint64_t)tok_ns : 1;
}

static void bucket_take(struct tbucket *b, uint64_t n)
{
	int64_t need = clamp(n);
	uint64_t from_burst;

	if (!b->cfg.size)
		return;
	from_burst = b->burst < (uint64_t)need ? b->burst : (uint64_t)need;
	b->burst -= from_burst;
	b->budget -= need - (int64_t)from_burst;
	if (b->budget < -(int64_t)(2 * RATELIMIT_MAX_TOKENS))
		b->budget = -(int64_t)(2 * RATELIMIT_MAX_TOKENS);
}

bool ratelimit_check(struct ratelimit *rl, uint64_t bytes, uint64_t ops, uint64_t *wait_ns)
{
	uint64_t now = now_ns(), w1, w2;

	refill(&rl->bw, now);
	refill(&rl->ops, now);
	w1 = bucket_wait(&rl->bw, bytes);
	w2 = bucket_wait(&rl->ops, ops);
	if (w1 || w2) {
		if (wait_ns)
			*wait_ns = w1 > w2 ? w1 : w2;
		return false;
	}
	return true;
}

bool ratelimit_consume(struct ratelimit *rl, uint64_t bytes, uint64_t ops, uint64_t *wait_ns)
{
	if (!ratelimit_check(rl, bytes, ops, wait_ns))
		return false;
	bucket_take(&rl->bw, bytes);
	bucket_take(&rl->ops, ops);
	return true;
}

void ratelimit_force(struct ratelimit *rl, uint64_t bytes, uint64_t ops)
{
	uint64_t now = now_ns();

	refill(&rl->bw, now);
	refill(&rl->ops, now);
	bucket_take(&rl->bw, bytes);
	bucket_take(&rl->ops, ops);
}

int ratelimit_timer_fd(struct ratelimit *rl)
{
	if (rl->timer_fd < 0) {
		rl->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
		if (rl->timer_fd < 0) {
			rl->timer_fd = -1;
			return -errno;
		}
	}
	return rl->timer_fd;
}

int ratelimit_arm(struct ratelimit *rl, uint64_t wait_ns)
{
	struct itimerspec its = { 0 };
	int fd = ratelimit_timer_fd(rl);

	if (fd < 0)
		return fd;
	if (!wait_ns)
		wait_ns = 1;
	its.it_value.tv_sec = (time_t)(wait_ns / 1000000000u);
	its.it_value.tv_nsec = (long)(wait_ns % 1000000000u);
	if (timerfd_settime(rl->timer_fd, 0, &its, NULL) < 0)
		return -errno;
	rl->armed = true;
	return 0;
}

void ratelimit_timer_ack(struct ratelimit *rl)
{
	uint64_t n;
	ssize_t r;

	if (rl->timer_fd >= 0) {
		r = read(rl->timer_fd, &n, sizeof(n)); /* EAGAIN: disarmed meanwhile */
		(void)r;
	}
	rl->armed = false;
}

void ratelimit_disarm(struct ratelimit *rl)
{
	struct itimerspec its = { 0 };

	if (rl->timer_fd >= 0)
		timerfd_settime(rl->timer_fd, 0, &its, NULL);
	rl->armed = false;
}

void ratelimit_destroy(struct ratelimit *rl)
{
	if (rl->timer_fd >= 0)
		close(rl->timer_fd);
	rl->timer_fd = -1;
	rl->armed = false;
}
