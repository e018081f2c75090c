#include "devices/virtio/rng.h"

#include "core/devmgr.h"
#include "core/metrics.h"
#include "core/evloop.h"
#include "devices/virtio/mmio.h"
#include "devices/virtio/virtq.h"
#include "snapshot/snap.h"
#include "util/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>

/* A source that keeps failing with EINTR gets this many tries per request, then the request
 * completes with what it has. */
#define EINTR_RETRIES 8

struct virtio_rng {
	long (*src)(void *buf, size_t len);
	uint64_t bytes; /* handed to the guest so far */
	/* Set while the driver has the device activated. */
	struct virtio_mmio *t;
	struct virtq *vq;
	/* Scratch space for one request; requests run one at a time under the transport lock. */
	struct virtq_elem elem;
	/* Rate limiter (bytes per request, one op per request).  While it holds a request the
	 * queue is not drained; its timer resumes it.  The transport, kept across resets, is the
	 * lock the timer callback takes. */
	struct ratelimit rl;
	struct evloop *ev;
	bool watched; /* rl's timerfd is on ev */
	struct virtio_mmio *lock_t;
};

/* getrandom(2) without blocking: the event loop must never wait for the host's pool (only
 * possible very early in the host's boot); a request then completes with fewer bytes. */
static long getrandom_source(void *buf, size_t len)
{
	ssize_t n = getrandom(buf, len, GRND_NONBLOCK);

	return n < 0 ? -errno : (long)n;
}

static uint64_t rng_features(void *dev)
{
	/* §5.4.3: no device-specific feature bits. */
	return VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC) |
	       VIRTIO_BIT(VIRTIO_F_EVENT_IDX);
}

/* §5.4.4: no config space. */
static uint64_t rng_config_read(void *dev, uint32_t off, unsigned size)
{
	return 0;
}

/* Fill the writable buffers of r->elem, at most VIRTIO_RNG_MAX_REQUEST bytes in all; returns
 * the number of bytes written (§5.4.6.1: one or more, possibly less than the buffer). */
static uint32_t fill(struct virtio_rng *r)
{
	struct virtq_elem *e = &r->elem;
	size_t budget = VIRTIO_RNG_MAX_REQUEST, done = 0;
	unsigned retries = EINTR_RETRIES;

	for (unsigned i = e->nr_out; i < e->nr_out + e->nr_in && budget; i++) {
		uint8_t *p = e->iov[i].iov_base;
		size_t left = e->iov[i].iov_len;

		while (left && budget) {
			size_t want = left < budget ? left : budget;
			long n = r->src(p, want);

			if (n == -EINTR && retries) {
				retries--;
				continue;
			}
			if (n <= 0 || (size_t)n > want) {
				if (n < 0 && n != -EAGAIN)
					METRIC_INC(metrics_entropy.host_rng_fails);
				if (n < 0 && n != -EAGAIN)
					log_warn("virtio-rng: entropy source: %s",
						 strerror((int)-n));
				return (uint32_t)done;
			}
			p += n;
			left -= (size_t)n;
			budget -= (size_t)n;
			done += (size_t)n;
		}
	}
	return (uint32_t)done;
}

static void rng_queue_notify(void *dev, unsigned q)
{
	struct virtio_rng *r = dev;
	bool pushed = false;

	if (q != 0 || !r->vq)
		return;
	METRIC_INC(metrics_entropy.entropy_event_count);
	for (unsigned n = 0;; n++) {
		uint32_t len = 0;
		int ret;

		if (n == VIRTIO_QUEUE_BUDGET) {
			virtio_mmio_queue_yield(r->t, q);
			break;
		}
		if (r->rl.armed)
			break; /* the limiter's timer resumes us */
		ret = virtq_pop(r->vq, &r->elem);

		if (ret == 0)
			break;
		if (ret < 0) {
			virtio_mmio_set_needs_reset(r->t);
			break;
		}
		if (!ratelimit_none(&r->rl)) {
			uint64_t want = r->elem.in_len < VIRTIO_RNG_MAX_REQUEST
						? r->elem.in_len
						: VIRTIO_RNG_MAX_REQUEST;
			uint64_t wait;

			/* Not now: the chain stays available and the timer resumes us (without
			 * a timer, the request passes rather than stall the queue). */
			if (!ratelimit_consume(&r->rl, want, 1, &wait) &&
			    ratelimit_arm(&r->rl, wait) == 0) {
				virtq_unpop(r->vq, 1);
				break;
			}
		}
		/* §5.4.6.1: the driver only offers device-writable buffers.  A readable one is
		 * a driver bug: complete the request empty rather than guess. */
		if (r->elem.nr_out)
			log_guest("virtio-rng: request with %u readable buffers", r->elem.nr_out);
		else
			len = fill(r);
		r->bytes += len;
		METRIC_ADD(metrics_entropy.entropy_bytes, len);
		virtq_push(r->vq, r->elem.head, len);
		pushed = true;
	}
	if (pushed)
		virtio_mmio_notify_used(r->t, r->vq);
}

static int rng_activate(void *dev, struct virtio_mmio *t, uint64_t features, struct virtq *vqs,
			unsigned nr)
{
	struct virtio_rng *r = dev;

	if (nr < 1 || !vqs[0].ready) {
		log_guest("virtio-rng: DRIVER_OK without a request queue");
		return -EINVAL;
	}
	r->t = t;
	r->vq = &vqs[0];
	__atomic_store_n(&r->lock_t, t, __ATOMIC_RELEASE);
	return 0;
}

static void rng_reset(void *dev)
{
	struct virtio_rng *r = dev;

	r->t = NULL;
	r->vq = NULL;
	ratelimit_disarm(&r->rl);
}

void virtio_rng_ratelimit_fire(struct virtio_rng *r)
{
	struct virtio_mmio *t = __atomic_load_n(&r->lock_t, __ATOMIC_ACQUIRE);

	if (!t) {
		ratelimit_timer_ack(&r->rl);
		return;
	}
	virtio_mmio_lock(t);
	ratelimit_timer_ack(&r->rl);
	if (r->t && r->vq)
		virtio_mmio_queue_yield(r->t, 0);
	virtio_mmio_unlock(t);
}

static void timer_cb(void *opaque, uint32_t events)
{
	virtio_rng_ratelimit_fire(opaque);
}

int virtio_rng_set_ratelimit(struct virtio_rng *r, const struct ratelimit_cfg *cfg)
{
	struct virtio_mmio *t = __atomic_load_n(&r->lock_t, __ATOMIC_ACQUIRE);
	int ret;

	if (t)
		virtio_mmio_lock(t);
	ret = ratelimit_update(&r->rl, cfg);
	/* A request held under the old limits is looked at again under the new ones. */
	if (!ret && r->rl.armed) {
		ratelimit_disarm(&r->rl);
		if (r->t && r->vq)
			virtio_mmio_queue_yield(r->t, 0);
	}
	if (t)
		virtio_mmio_unlock(t);
	return ret;
}

/* Snapshots (SNAP_REC_VIRTIO_RNG).  Requests are popped, filled and pushed in one go under the
 * transport lock, so the device never holds a chain and needs no quiesce (a request the rate
 * limiter holds back stays in the available ring); it has no config space.  The limiter's
 * bucket state is not saved: a restored device starts with full buckets.  Its record keeps the statistic, so that virtio_rng_bytes() counts
 * on across a restore.  Payload, version 1: u64 bytes handed to the guest. */
#define VIRTIO_RNG_STATE_VERSION 1

static int rng_save(void *dev, struct snap_writer *w, const char *id)
{
	struct virtio_rng *r = dev;

	snap_rec_begin(w, SNAP_REC_VIRTIO_RNG, VIRTIO_RNG_STATE_VERSION, id);
	snap_put_u64(w, r->bytes);
	return w->err;
}

static int rng_restore(void *dev, const struct snap_file *f, const char *id)
{
	struct virtio_rng *r = dev;
	struct snap_reader rd;
	uint64_t bytes;

	if (snap_file_find(f, SNAP_REC_VIRTIO_RNG, id, &rd) ||
	    rd.version != VIRTIO_RNG_STATE_VERSION) {
		log_warn("virtio-rng: no record of version %u for '%s'", VIRTIO_RNG_STATE_VERSION,
			 id);
		return -EINVAL;
	}
	bytes = snap_get_u64(&rd);
	if (snap_reader_done(&rd)) {
		log_warn("virtio-rng: malformed record for '%s'", id);
		return -EINVAL;
	}
	r->bytes = bytes;
	return 0;
}

static void rng_destroy(void *dev)
{
	virtio_rng_destroy(dev);
}

const struct virtio_device_ops virtio_rng_ops = {
	.name = "virtio-rng",
	.device_id = VIRTIO_ID_RNG,
	.num_queues = 1, /* §5.4.2: requestq */
	.queue_max_size = VIRTIO_RNG_QUEUE_SIZE,
	.features = rng_features,
	.config_read = rng_config_read,
	.activate = rng_activate,
	.queue_notify = rng_queue_notify,
	.reset = rng_reset,
	.save = rng_save,
	.restore = rng_restore,
	.rec = { SNAP_REC_VIRTIO_RNG, VIRTIO_RNG_STATE_VERSION },
	.destroy = rng_destroy,
};

int virtio_rng_create(struct virtio_rng **out)
{
	struct virtio_rng *r = calloc(1, sizeof(*r));

	if (!r)
		return -ENOMEM;
	r->src = getrandom_source;
	ratelimit_init_none(&r->rl);
	*out = r;
	return 0;
}

void virtio_rng_set_source(struct virtio_rng *r, long (*src)(void *buf, size_t len))
{
	r->src = src ? src : getrandom_source;
}

int virtio_rng_add(struct devmgr *dm, struct virtio_rng **out)
{
	struct virtio_rng *r;
	int ret;

	ret = virtio_rng_create(&r);
	if (ret)
		return ret;
	/* The limiter's timer exists from the start, limited or not: a limit set at run time
	 * then needs no new fd (timerfd_create is outside the seccomp policy after start-up). */
	if (dm->ev) {
		int fd = ratelimit_timer_fd(&r->rl);

		ret = fd < 0 ? fd : evloop_add(dm->ev, fd, EPOLLIN, timer_cb, r);
		if (ret) {
			virtio_rng_destroy(r);
			return ret;
		}
		r->ev = dm->ev;
		r->watched = true;
	}
	ret = virtio_mmio_add(dm, "virtio-rng", &virtio_rng_ops, r, NULL);
	if (ret) {
		virtio_rng_destroy(r);
		return ret;
	}
	if (out)
		*out = r;
	return 0;
}

uint64_t virtio_rng_bytes(const struct virtio_rng *r)
{
	return r->bytes;
}

void virtio_rng_destroy(struct virtio_rng *r)
{
	if (!r)
		return;
	if (r->watched)
		evloop_del(r->ev, r->rl.timer_fd);
	ratelimit_destroy(&r->rl);
	free(r);
}
