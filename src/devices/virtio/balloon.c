#include "devices/virtio/balloon.h"

#include "core/devmgr.h"
#include "core/evloop.h"
#include "core/gmem.h"
#include "core/metrics.h"
#include "devices/virtio/mmio.h"
#include "devices/virtio/virtq.h"
#include "snapshot/snap.h"
#include "util/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

/* Frame numbers read from guest memory at a time. */
#define PFN_CHUNK 256u

struct virtio_balloon {
	struct gmem *gm;
	struct evloop *ev;
	struct virtio_mmio *mmio; /* the transport (set_transport); its lock guards all of the
				   * state below */
	int timer_fd;		  /* statistics timer, or -1 */
	uint32_t step_pages;
	uint32_t ram_pages;  /* the largest target: all of guest RAM */
	bool can_discard;    /* host pages are 4 KiB: discarding works per balloon page */
	bool deflate_on_oom; /* VIRTIO_BALLOON_F_DEFLATE_ON_OOM offered */
	uint8_t config[VIRTIO_BALLOON_CFG_SIZE]; /* num_pages, actual (§5.5.4) */
	/* VIRTIO_BALLOON_EV_REACHED: armed by a target change, raised (once) by the driver's
	 * write of an `actual` equal to it; pending events wait in `events` for the user. */
	bool reach_armed;
	uint32_t events;
	uint32_t reached_pages;
	int event_fd; /* eventfd: `events` became non-zero */
	/* Set while the driver has the device activated. */
	bool active;
	struct virtq *inflate_vq, *deflate_vq, *stats_vq;
	/* The stats buffer the driver left with us (§5.5.6.3): giving it back asks for more. */
	bool stats_held;
	uint16_t stats_head;
	struct virtio_balloon_stats stats;
	uint64_t stats_at_ms; /* CLOCK_MONOTONIC when stats arrived */
	struct virtio_balloon_counters counters;
	/* Scratch space for one request; requests run one at a time under the transport lock. */
	struct virtq_elem elem;
};

static void lock(struct virtio_balloon *b)
{
	if (b->mmio)
		virtio_mmio_lock(b->mmio);
}

static void unlock(struct virtio_balloon *b)
{
	if (b->mmio)
		virtio_mmio_unlock(b->mmio);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint32_t cfg_get(const struct virtio_balloon *b, unsigned off)
{
	return (uint32_t)virtio_get_le(b->config + off, 4);
}

static uint64_t balloon_features(void *dev)
{
	struct virtio_balloon *b = dev;

	/* No MUST_TELL_HOST: a deflated page needs nothing from us, so the guest may reuse it
	 * before telling (§5.5.6.1).  No free-page hinting, poisoning or reporting. */
	return VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC) |
	       VIRTIO_BIT(VIRTIO_F_EVENT_IDX) | VIRTIO_BIT(VIRTIO_BALLOON_F_STATS_VQ) |
	       (b->deflate_on_oom ? VIRTIO_BIT(VIRTIO_BALLOON_F_DEFLATE_ON_OOM) : 0);
}

static uint64_t balloon_config_read(void *dev, uint32_t off, unsigned size)
{
	struct virtio_balloon *b = dev;

	return virtio_config_get(b->config, sizeof(b->config), off, size);
}

/* Record an event for the user and wake its watcher.  Called on vCPU threads under the
 * transport lock: nothing here blocks or prints (an eventfd write never blocks short of
 * 2^64-2 unread signals; EAGAIN then only means it is signalled already). */
static void raise_event(struct virtio_balloon *b, uint32_t ev)
{
	uint64_t one = 1;
	ssize_t r;

	b->events |= ev;
	r = write(b->event_fd, &one, sizeof(one));
	(void)r;
}

/* §5.5.4: the driver writes `actual` (any width, as every config field); num_pages is the
 * device's and writes to it are dropped. */
static void balloon_config_write(void *dev, uint32_t off, unsigned size, uint64_t val)
{
	struct virtio_balloon *b = dev;
	bool dropped = false;

	for (unsigned i = 0; i < size && i < 8; i++) {
		uint64_t at = (uint64_t)off + i;

		if (at >= VIRTIO_BALLOON_CFG_ACTUAL && at < VIRTIO_BALLOON_CFG_SIZE)
			b->config[at] = (uint8_t)(val >> (8 * i));
		else
			dropped = true;
	}
	if (dropped)
		log_guest("virtio-balloon: config write of %u bytes at %u outside 'actual'", size,
			  off);
	if (b->reach_armed &&
	    cfg_get(b, VIRTIO_BALLOON_CFG_ACTUAL) == cfg_get(b, VIRTIO_BALLOON_CFG_NUM_PAGES)) {
		b->reach_armed = false;
		b->reached_pages = cfg_get(b, VIRTIO_BALLOON_CFG_ACTUAL);
		raise_event(b, VIRTIO_BALLOON_EV_REACHED);
	}
}

/* Give guest RAM [gpa, gpa+len) back to the host; the guest reads zeros there afterwards.
 * gmem_discard() knows how guest RAM is backed (private anonymous memory, or a private
 * mapping of a snapshot's memory file, where MADV_DONTNEED alone would bring the file's bytes
 * back). */
static void discard(struct virtio_balloon *b, uint64_t gpa, size_t len)
{
	int ret;

	if (!len)
		return;
	if (!b->can_discard) {
		b->counters.inflated += len / VIRTIO_BALLOON_PAGE_SIZE;
		return;
	}
	ret = gmem_discard(b->gm, gpa, len);
	if (ret) {
		b->counters.madvise_err++;
		log_guest("virtio-balloon: discarding %zu bytes at %#llx: %s", len,
			  (unsigned long long)gpa, strerror(-ret));
		return;
	}
	b->counters.inflated += len / VIRTIO_BALLOON_PAGE_SIZE;
}

/* An inflate or deflate request (§5.5.6.1): an array of le32 page frame numbers in 4 KiB
 * units.  Numbers outside guest RAM are ignored; consecutive pages are discarded together. */
static void do_pfns(struct virtio_balloon *b, bool inflate)
{
	const struct virtq_elem *e = &b->elem;
	uint32_t n = e->out_len / 4;
	uint8_t *run = NULL;
	uint64_t run_gpa = 0;
	size_t run_len = 0;

	if (e->nr_in)
		log_guest("virtio-balloon: %u writable buffers in a page list ignored", e->nr_in);
	if (e->out_len % 4)
		log_guest("virtio-balloon: page list of %u bytes (not whole le32s)", e->out_len);
	if (n > VIRTIO_BALLOON_MAX_PFNS) {
		log_guest("virtio-balloon: %u pages in one request, using %u", n,
			  VIRTIO_BALLOON_MAX_PFNS);
		n = VIRTIO_BALLOON_MAX_PFNS;
	}
	for (uint32_t i = 0; i < n; i += PFN_CHUNK) {
		uint8_t buf[PFN_CHUNK * 4];
		uint32_t k = n - i < PFN_CHUNK ? n - i : PFN_CHUNK;

		virtq_elem_read(e, (size_t)i * 4, buf, (size_t)k * 4);
		for (uint32_t j = 0; j < k; j++) {
			uint32_t pfn = (uint32_t)virtio_get_le(buf + 4 * j, 4);
			uint64_t gpa = (uint64_t)pfn << VIRTIO_BALLOON_PAGE_SHIFT;
			uint8_t *p = gmem_ptr(b->gm, gpa, VIRTIO_BALLOON_PAGE_SIZE);

			if (!p) {
				b->counters.bad_pfns++;
				log_guest("virtio-balloon: page frame %#x is not guest RAM", pfn);
				continue;
			}
			if (!inflate) {
				b->counters.deflated++;
				continue;
			}
			/* A run is contiguous in guest and host addresses: one region. */
			if (run && p == run + run_len && gpa == run_gpa + run_len) {
				run_len += VIRTIO_BALLOON_PAGE_SIZE;
				continue;
			}
			discard(b, run_gpa, run_len);
			run = p;
			run_gpa = gpa;
			run_len = VIRTIO_BALLOON_PAGE_SIZE;
		}
	}
	discard(b, run_gpa, run_len);
}

/* A stats buffer (§5.5.6.3): packed {le16 tag, le64 val} entries.  The whole set replaces the
 * previous one; unknown tags and a trailing partial entry are ignored. */
static void do_stats(struct virtio_balloon *b)
{
	const struct virtq_elem *e = &b->elem;
	uint32_t n = e->out_len / VIRTIO_BALLOON_STAT_BYTES;
	struct virtio_balloon_stats s = { .valid = true };

	if (e->nr_in)
		log_guest("virtio-balloon: %u writable buffers in a stats buffer ignored",
			  e->nr_in);
	if (e->out_len % VIRTIO_BALLOON_STAT_BYTES)
		log_guest("virtio-balloon: stats buffer of %u bytes (not whole entries)",
			  e->out_len);
	if (n > VIRTIO_BALLOON_MAX_STATS)
		n = VIRTIO_BALLOON_MAX_STATS;
	for (uint32_t i = 0; i < n; i++) {
		uint8_t ent[VIRTIO_BALLOON_STAT_BYTES];
		uint16_t tag;

		virtq_elem_read(e, (size_t)i * VIRTIO_BALLOON_STAT_BYTES, ent, sizeof(ent));
		tag = (uint16_t)virtio_get_le(ent, 2);
		if (tag >= VIRTIO_BALLOON_S_MAX)
			continue;
		s.val[tag] = virtio_get_le(ent + 2, 8);
		s.present |= 1u << tag;
	}
	b->stats = s;
	b->stats_at_ms = now_ms();
}

static void balloon_queue_notify(void *dev, unsigned q)
{
	struct virtio_balloon *b = dev;
	struct virtq *vq;
	bool pushed = false;

	if (!b->active)
		return;
	vq = q == VIRTIO_BALLOON_Q_INFLATE   ? b->inflate_vq
	     : q == VIRTIO_BALLOON_Q_DEFLATE ? b->deflate_vq
	     : q == VIRTIO_BALLOON_Q_STATS   ? b->stats_vq
					     : NULL;
	if (!vq)
		return;
	for (unsigned n = 0;; n++) {
		int ret;

		if (n == VIRTIO_QUEUE_BUDGET) {
			virtio_mmio_queue_yield(b->mmio, q);
			break;
		}
		ret = virtq_pop(vq, &b->elem);
		if (ret == 0)
			break;
		if (ret < 0) {
			virtio_mmio_set_needs_reset(b->mmio);
			break;
		}
		if (q != VIRTIO_BALLOON_Q_STATS) {
			if (q == VIRTIO_BALLOON_Q_INFLATE)
				METRIC_INC(metrics_balloon.inflate_count);
			else
				METRIC_INC(metrics_balloon.deflate_count);
			do_pfns(b, q == VIRTIO_BALLOON_Q_INFLATE);
			virtq_push(vq, b->elem.head, 0);
			pushed = true;
			continue;
		}
		do_stats(b);
		METRIC_INC(metrics_balloon.stats_updates_count);
		/* The driver keeps one stats buffer with us; should it add another, return the
		 * older one so that none is lost. */
		if (b->stats_held) {
			virtq_push(vq, b->stats_head, 0);
			pushed = true;
		}
		b->stats_held = true;
		b->stats_head = b->elem.head;
	}
	if (pushed)
		virtio_mmio_notify_used(b->mmio, vq);
}

static int balloon_activate(void *dev, struct virtio_mmio *t, uint64_t features, struct virtq *vqs,
			    unsigned nr)
{
	struct virtio_balloon *b = dev;

	if (nr < 2 || !vqs[VIRTIO_BALLOON_Q_INFLATE].ready ||
	    !vqs[VIRTIO_BALLOON_Q_DEFLATE].ready) {
		log_guest("virtio-balloon: DRIVER_OK without the inflate and deflate queues");
		return -EINVAL;
	}
	b->inflate_vq = &vqs[VIRTIO_BALLOON_Q_INFLATE];
	b->deflate_vq = &vqs[VIRTIO_BALLOON_Q_DEFLATE];
	b->stats_vq = NULL;
	/* A driver that negotiated STATS_VQ but left the queue unset just gets no requests. */
	if ((features & VIRTIO_BIT(VIRTIO_BALLOON_F_STATS_VQ)) && nr > VIRTIO_BALLOON_Q_STATS &&
	    vqs[VIRTIO_BALLOON_Q_STATS].ready)
		b->stats_vq = &vqs[VIRTIO_BALLOON_Q_STATS];
	/* Only a restore leaves a stats buffer held here (reset forgets it): keep it if it still
	 * names a descriptor of the stats queue as the driver set it up. */
	if (b->stats_held && (!b->stats_vq || b->stats_head >= b->stats_vq->size)) {
		log_warn("virtio-balloon: the restored stats buffer %u is not in the stats queue",
			 b->stats_head);
		b->stats_held = false;
	}
	b->active = true;
	/* Linux primes the stats queue and kicks it before DRIVER_OK (§5.5.6.3): the transport
	 * runs every ready queue once after this returns, so that buffer is taken then. */
	return 0;
}

static void balloon_reset(void *dev)
{
	struct virtio_balloon *b = dev;

	b->active = false;
	b->inflate_vq = b->deflate_vq = b->stats_vq = NULL;
	b->stats_held = false;
	/* A reset driver holds no balloon pages; the host's target stands. */
	virtio_put_le(b->config + VIRTIO_BALLOON_CFG_ACTUAL, 0, 4);
}

static void balloon_destroy(void *dev)
{
	virtio_balloon_destroy(dev);
}

/* ---- snapshots ----
 *
 * SNAP_REC_VIRTIO_BALLOON, version 1 (the transport saves status, features and queues):
 *   u32 num_pages (the target, <= guest RAM), u32 actual (as the driver last wrote it),
 *   bool stats_held, u16 stats_head (< VIRTIO_BALLOON_QUEUE_SIZE when held, else 0),
 *   bool stats_valid, u32 stats_present (bits < VIRTIO_BALLOON_S_MAX; 0 unless valid),
 *   u64 stats_val[VIRTIO_BALLOON_S_MAX] (0 where the bit is clear).
 * The held stats buffer is recorded rather than completed at quiesce: giving it back is a
 * request for fresh statistics, so completing it would make every pause and snapshot poke the
 * guest (an interrupt, a stats round trip) and change what it sees; recorded, the restored
 * device holds the same chain (the transport's queue state has it consumed and not used) and
 * gives it back at the next request, exactly once.  Inflated pages need nothing: the memory
 * file holds them as the guest left them (zeros once discarded, or whatever the guest wrote
 * after deflating).  Not saved: the counters (diagnostics), the age of the statistics (host
 * time: after a restore they count as received at the restore), the armed or pending
 * VIRTIO_BALLOON_EV_REACHED (a user-interface matter of the run that set the target).
 * No quiesce: inflate, deflate and stats chains are completed (or held, as above) within the
 * call that pops them. */
#define VIRTIO_BALLOON_STATE_VERSION 1

static int balloon_save(void *dev, struct snap_writer *w, const char *id)
{
	struct virtio_balloon *b = dev;

	snap_rec_begin(w, SNAP_REC_VIRTIO_BALLOON, VIRTIO_BALLOON_STATE_VERSION, id);
	snap_put_u32(w, cfg_get(b, VIRTIO_BALLOON_CFG_NUM_PAGES));
	snap_put_u32(w, cfg_get(b, VIRTIO_BALLOON_CFG_ACTUAL));
	snap_put_bool(w, b->stats_held);
	snap_put_u16(w, b->stats_held ? b->stats_head : 0);
	snap_put_bool(w, b->stats.valid);
	snap_put_u32(w, b->stats.present);
	for (unsigned i = 0; i < VIRTIO_BALLOON_S_MAX; i++)
		snap_put_u64(w, b->stats.val[i]);
	return w->err;
}

static int balloon_restore(void *dev, const struct snap_file *f, const char *id)
{
	struct virtio_balloon *b = dev;
	struct virtio_balloon_stats s = { 0 };
	struct snap_reader r;
	uint32_t num_pages, actual;
	uint16_t head;
	bool held;

	if (snap_file_find(f, SNAP_REC_VIRTIO_BALLOON, id, &r))
		return -EINVAL;
	if (r.version != VIRTIO_BALLOON_STATE_VERSION) {
		log_warn("virtio-balloon: %s: state version %u, this build reads %u", id, r.version,
			 VIRTIO_BALLOON_STATE_VERSION);
		return -EINVAL;
	}
	num_pages = snap_get_u32(&r);
	/* `actual` is whatever the driver wrote (any le32, §5.5.4); the device only reports it. */
	actual = snap_get_u32(&r);
	held = snap_get_bool(&r);
	head = snap_get_u16(&r);
	s.valid = snap_get_bool(&r);
	s.present = snap_get_u32(&r);
	for (unsigned i = 0; i < VIRTIO_BALLOON_S_MAX; i++) {
		s.val[i] = snap_get_u64(&r);
		if (s.val[i] && !(s.present & (1u << i)))
			snap_fail(&r);
	}
	if (num_pages > b->ram_pages)
		snap_fail(&r);
	/* The queue's real size is checked at activation; it is at most this. */
	if (held ? head >= VIRTIO_BALLOON_QUEUE_SIZE : head != 0)
		snap_fail(&r);
	if (s.present >> VIRTIO_BALLOON_S_MAX || (!s.valid && s.present))
		snap_fail(&r);
	if (snap_reader_done(&r)) {
		log_warn("virtio-balloon: %s: invalid state record", id);
		return -EINVAL;
	}
	lock(b);
	virtio_put_le(b->config + VIRTIO_BALLOON_CFG_NUM_PAGES, num_pages, 4);
	virtio_put_le(b->config + VIRTIO_BALLOON_CFG_ACTUAL, actual, 4);
	b->stats_held = held;
	b->stats_head = head;
	b->stats = s;
	b->stats_at_ms = now_ms();
	b->reach_armed = false;
	b->events = 0;
	unlock(b);
	return 0;
}

/* Target changes from outside queue work (console, API) and the statistics timer take the
 * transport's lock and raise config interrupts through it. */
static void balloon_set_transport(void *dev, struct virtio_mmio *t)
{
	struct virtio_balloon *b = dev;

	b->mmio = t;
}

const struct virtio_device_ops virtio_balloon_ops = {
	.name = "virtio-balloon",
	.device_id = VIRTIO_ID_BALLOON,
	.num_queues = 3, /* §5.5.2: inflateq, deflateq, statsq */
	.queue_max_size = VIRTIO_BALLOON_QUEUE_SIZE,
	.features = balloon_features,
	.set_transport = balloon_set_transport,
	.config_read = balloon_config_read,
	.config_write = balloon_config_write,
	.activate = balloon_activate,
	.queue_notify = balloon_queue_notify,
	.reset = balloon_reset,
	.save = balloon_save,
	.restore = balloon_restore,
	.rec = { SNAP_REC_VIRTIO_BALLOON, VIRTIO_BALLOON_STATE_VERSION },
	.destroy = balloon_destroy,
};

int virtio_balloon_request_stats(struct virtio_balloon *b)
{
	int ret = -EAGAIN;

	lock(b);
	if (b->active && b->stats_vq && b->stats_held && !b->stats_vq->broken) {
		b->stats_held = false;
		virtq_push(b->stats_vq, b->stats_head, 0);
		virtio_mmio_notify_used(b->mmio, b->stats_vq);
		ret = 0;
	}
	unlock(b);
	return ret;
}

static void timer_cb(void *opaque, uint32_t events)
{
	struct virtio_balloon *b = opaque;
	uint64_t ticks;

	if (read(b->timer_fd, &ticks, sizeof(ticks)) < 0)
		return; /* EAGAIN: another wake took it */
	(void)virtio_balloon_request_stats(b);
}

static void set_target_locked(struct virtio_balloon *b, uint32_t pages)
{
	if (pages > b->ram_pages)
		pages = b->ram_pages;
	if (pages == cfg_get(b, VIRTIO_BALLOON_CFG_NUM_PAGES))
		return;
	virtio_put_le(b->config + VIRTIO_BALLOON_CFG_NUM_PAGES, pages, 4);
	b->reach_armed = pages != cfg_get(b, VIRTIO_BALLOON_CFG_ACTUAL);
	/* §5.5.6.1: the driver re-reads num_pages on a configuration change notification. */
	if (b->mmio)
		virtio_mmio_config_changed(b->mmio);
}

void virtio_balloon_set_target(struct virtio_balloon *b, uint32_t pages)
{
	lock(b);
	set_target_locked(b, pages);
	unlock(b);
}

uint32_t virtio_balloon_toggle(struct virtio_balloon *b)
{
	uint32_t t;

	lock(b);
	set_target_locked(b, cfg_get(b, VIRTIO_BALLOON_CFG_NUM_PAGES) ? 0 : b->step_pages);
	t = cfg_get(b, VIRTIO_BALLOON_CFG_NUM_PAGES);
	unlock(b);
	return t;
}

/* One config field read under the transport lock (other threads write it). */
static uint32_t cfg_get_locked(struct virtio_balloon *b, unsigned off)
{
	uint32_t v;

	lock(b);
	v = cfg_get(b, off);
	unlock(b);
	return v;
}

uint32_t virtio_balloon_target(struct virtio_balloon *b)
{
	return cfg_get_locked(b, VIRTIO_BALLOON_CFG_NUM_PAGES);
}

uint32_t virtio_balloon_actual(struct virtio_balloon *b)
{
	return cfg_get_locked(b, VIRTIO_BALLOON_CFG_ACTUAL);
}

void virtio_balloon_get_stats(struct virtio_balloon *b, struct virtio_balloon_stats *s,
			      struct virtio_balloon_counters *c)
{
	lock(b);
	if (s) {
		*s = b->stats;
		s->age_ms = s->valid ? now_ms() - b->stats_at_ms : 0;
	}
	if (c)
		*c = b->counters;
	unlock(b);
}

uint32_t virtio_balloon_step(const struct virtio_balloon *b)
{
	return b->step_pages; /* set at creation, never changed */
}

int virtio_balloon_event_fd(const struct virtio_balloon *b)
{
	return b->event_fd;
}

uint32_t virtio_balloon_take_events(struct virtio_balloon *b, uint32_t *reached_pages)
{
	uint32_t ev;
	uint64_t v;
	ssize_t r;

	lock(b);
	ev = b->events;
	b->events = 0;
	if (reached_pages)
		*reached_pages = b->reached_pages;
	/* Drained under the lock: a raise_event() after this signals again. */
	r = read(b->event_fd, &v, sizeof(v));
	(void)r;
	unlock(b);
	return ev;
}

int virtio_balloon_set_stats_interval(struct virtio_balloon *b, uint32_t stats_s)
{
	struct itimerspec its = { .it_interval = { .tv_sec = stats_s },
				  .it_value = { .tv_sec = stats_s } };

	if (b->timer_fd < 0 || !stats_s)
		return -EINVAL;
	return timerfd_settime(b->timer_fd, 0, &its, NULL) < 0 ? -errno : 0;
}

int virtio_balloon_create(struct gmem *gm, struct evloop *ev, const struct virtio_balloon_opts *o,
			  struct virtio_balloon **out)
{
	uint32_t step_mib = o && o->step_mib ? o->step_mib : VIRTIO_BALLOON_DEFAULT_STEP_MIB;
	uint32_t stats_s = o ? o->stats_s : VIRTIO_BALLOON_DEFAULT_STATS_S;
	uint64_t ram_pages = gm->ram_size >> VIRTIO_BALLOON_PAGE_SHIFT;
	struct virtio_balloon *b;
	int ret;

	/* num_pages is a le32 count of 4 KiB pages: 16 TiB at most. */
	if (step_mib > (UINT32_MAX >> (20 - VIRTIO_BALLOON_PAGE_SHIFT)))
		return -EINVAL;
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->gm = gm;
	b->timer_fd = -1;
	b->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (b->event_fd < 0) {
		ret = -errno;
		goto free_dev;
	}
	b->ram_pages = ram_pages > UINT32_MAX ? UINT32_MAX : (uint32_t)ram_pages;
	b->step_pages = step_mib << (20 - VIRTIO_BALLOON_PAGE_SHIFT);
	b->can_discard = sysconf(_SC_PAGESIZE) == VIRTIO_BALLOON_PAGE_SIZE;
	b->deflate_on_oom = !(o && o->no_deflate_on_oom);
	if (!b->can_discard)
		log_warn("virtio-balloon: host pages are not 4 KiB; inflated pages stay resident");
	if (ev && stats_s) {
		struct itimerspec its = { .it_interval = { .tv_sec = stats_s },
					  .it_value = { .tv_sec = stats_s } };

		b->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
		if (b->timer_fd < 0) {
			ret = -errno;
			goto close_event;
		}
		if (timerfd_settime(b->timer_fd, 0, &its, NULL) < 0) {
			ret = -errno;
			goto close_timer;
		}
		ret = evloop_add(ev, b->timer_fd, EPOLLIN, timer_cb, b);
		if (ret)
			goto close_timer;
		b->ev = ev;
	}
	*out = b;
	return 0;

close_timer:
	close(b->timer_fd);
close_event:
	close(b->event_fd);
free_dev:
	free(b);
	return ret;
}

int virtio_balloon_add(struct devmgr *dm, const struct virtio_balloon_opts *o,
		       struct virtio_balloon **out)
{
	struct virtio_balloon *b;
	int ret;

	ret = virtio_balloon_create(dm->gm, dm->ev, o, &b);
	if (ret)
		return ret;
	ret = virtio_mmio_add(dm, "virtio-balloon", &virtio_balloon_ops, b, NULL);
	if (ret) {
		virtio_balloon_destroy(b);
		return ret;
	}
	if (out)
		*out = b;
	return 0;
}

void virtio_balloon_destroy(struct virtio_balloon *b)
{
	if (!b)
		return;
	if (b->timer_fd >= 0) {
		if (b->ev)
			evloop_del(b->ev, b->timer_fd);
		close(b->timer_fd);
	}
	close(b->event_fd);
	free(b);
}
