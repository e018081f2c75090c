/* virtio-balloon, the memory balloon (virtio 1.2 §5.5): `--balloon[=step=MiB,stats=SEC]`.
 *
 * The host sets a target (config num_pages, in 4 KiB pages); the guest driver inflates the
 * balloon towards it, handing the device the frame numbers of pages it gave up, and reports its
 * progress in config `actual`.  Inflated pages are returned to the host at once with
 * gmem_discard() (madvise(MADV_DONTNEED) on their host mapping: guest RAM is private anonymous
 * memory, so the VMM's RSS falls); a deflated page needs nothing, the guest's next touch faults
 * in a zero page.
 * The statistics queue (VIRTIO_BALLOON_F_STATS_VQ) keeps the guest's latest memory statistics,
 * refreshed every `stats` seconds and whenever the console asks; VIRTIO_BALLOON_F_DEFLATE_ON_OOM
 * lets the guest take pages back under memory pressure.
 * The device prints nothing and knows no console: the CLI binds Ctrl-A b to
 * virtio_balloon_toggle() (between 0 and `step` MiB) and reports what the device signals on
 * virtio_balloon_event_fd(). */
#ifndef IGNITION_DEVICES_VIRTIO_BALLOON_H
#define IGNITION_DEVICES_VIRTIO_BALLOON_H

#include "devices/virtio/virtio.h"

#include <stdbool.h>
#include <stdint.h>

struct devmgr;
struct evloop;
struct gmem;
struct virtio_balloon;
struct virtio_mmio;

/* Feature bits (§5.5.3). */
#define VIRTIO_BALLOON_F_MUST_TELL_HOST 0
#define VIRTIO_BALLOON_F_STATS_VQ	1
#define VIRTIO_BALLOON_F_DEFLATE_ON_OOM 2
#define VIRTIO_BALLOON_F_FREE_PAGE_HINT 3
#define VIRTIO_BALLOON_F_PAGE_POISON	4
#define VIRTIO_BALLOON_F_PAGE_REPORTING 5

/* Queues (§5.5.2); statsq exists only with VIRTIO_BALLOON_F_STATS_VQ. */
#define VIRTIO_BALLOON_Q_INFLATE 0
#define VIRTIO_BALLOON_Q_DEFLATE 1
#define VIRTIO_BALLOON_Q_STATS	 2

/* Config space (§5.5.4): le32 num_pages (host-written target), le32 actual (guest-written). */
#define VIRTIO_BALLOON_CFG_NUM_PAGES 0
#define VIRTIO_BALLOON_CFG_ACTUAL    4
#define VIRTIO_BALLOON_CFG_SIZE	     8

/* The balloon's page size, whatever the guest's (§5.5.6: "4096-byte pages"). */
#define VIRTIO_BALLOON_PAGE_SHIFT 12
#define VIRTIO_BALLOON_PAGE_SIZE  (1u << VIRTIO_BALLOON_PAGE_SHIFT)

/* Statistics tags (§5.5.6.3); later kernels add more, kept up to VIRTIO_BALLOON_S_MAX. */
#define VIRTIO_BALLOON_S_SWAP_IN      0
#define VIRTIO_BALLOON_S_SWAP_OUT     1
#define VIRTIO_BALLOON_S_MAJFLT	      2
#define VIRTIO_BALLOON_S_MINFLT	      3
#define VIRTIO_BALLOON_S_MEMFREE      4 /* bytes */
#define VIRTIO_BALLOON_S_MEMTOT	      5 /* bytes */
#define VIRTIO_BALLOON_S_AVAIL	      6 /* bytes */
#define VIRTIO_BALLOON_S_CACHES	      7 /* bytes */
#define VIRTIO_BALLOON_S_HTLB_PGALLOC 8
#define VIRTIO_BALLOON_S_HTLB_PGFAIL  9
#define VIRTIO_BALLOON_S_MAX	      16
/* One statistic: le16 tag, le64 value, packed (10 bytes). */
#define VIRTIO_BALLOON_STAT_BYTES 10

#define VIRTIO_BALLOON_QUEUE_SIZE 128u
/* Most frame numbers one inflate/deflate request may carry (Linux sends up to 256); the rest of
 * a longer one is ignored. */
#define VIRTIO_BALLOON_MAX_PFNS 4096u
/* Most statistics parsed from one stats buffer; the rest are ignored. */
#define VIRTIO_BALLOON_MAX_STATS 64u

#define VIRTIO_BALLOON_DEFAULT_STEP_MIB 128u
#define VIRTIO_BALLOON_DEFAULT_STATS_S	5u

/* Events (bits of virtio_balloon_take_events()), signalled on virtio_balloon_event_fd(). */
#define VIRTIO_BALLOON_EV_REACHED 0x1u /* the guest's `actual` reached a new target */

/* What the command line chose. */
struct virtio_balloon_opts {
	uint32_t step_mib; /* Ctrl-A b toggles the target between 0 and this; 0: the default */
	uint32_t stats_s;  /* seconds between statistics requests; 0: only on demand */
	/* Leave VIRTIO_BALLOON_F_DEFLATE_ON_OOM out (Firecracker's deflate_on_oom false): the
	 * guest then never takes pages back from the balloon under memory pressure. */
	bool no_deflate_on_oom;
};

/* The guest's latest statistics. */
struct virtio_balloon_stats {
	bool valid;	  /* a stats buffer has arrived since the device was created */
	uint32_t present; /* bit n: tag n was reported */
	uint64_t age_ms;  /* how long ago it arrived */
	uint64_t val[VIRTIO_BALLOON_S_MAX];
};

/* Counters of what the device did (diagnostics, tests). */
struct virtio_balloon_counters {
	uint64_t inflated;    /* pages returned to the host (madvise'd) */
	uint64_t deflated;    /* pages the guest took back */
	uint64_t bad_pfns;    /* frame numbers outside guest RAM, ignored */
	uint64_t madvise_err; /* gmem_discard (madvise) failures */
};

/* The virtio ops of the balloon (register it with virtio_mmio_add). */
extern const struct virtio_device_ops virtio_balloon_ops;

/* A balloon over guest RAM `gm`.  `ev` (may be NULL: no periodic statistics requests) is the
 * event loop the statistics timer runs on.  -EINVAL for bad options, -ENOMEM, -errno from
 * timerfd_create / evloop_add. */
int virtio_balloon_create(struct gmem *gm, struct evloop *ev, const struct virtio_balloon_opts *o,
			  struct virtio_balloon **out) __attribute__((warn_unused_result));

/* Create the balloon, register it as "virtio-balloon" on `dm`. */
int virtio_balloon_add(struct devmgr *dm, const struct virtio_balloon_opts *o,
		       struct virtio_balloon **out) __attribute__((warn_unused_result));

/* Set the target to `pages` 4 KiB pages (clamped to guest RAM) and, if it changed, raise a
 * config-change interrupt (§5.5.6.1) and, unless `actual` already equals it, arm
 * VIRTIO_BALLOON_EV_REACHED for the driver's next write of `actual` that matches.  Any thread. */
void virtio_balloon_set_target(struct virtio_balloon *b, uint32_t pages);

/* Target 0 -> step, anything else -> 0; returns the new target in pages.  Any thread. */
uint32_t virtio_balloon_toggle(struct virtio_balloon *b);

/* The target and the guest's last reported size, in pages. */
uint32_t virtio_balloon_target(struct virtio_balloon *b);
uint32_t virtio_balloon_actual(struct virtio_balloon *b);
/* The toggle step, in pages (what --balloon=step= chose). */
uint32_t virtio_balloon_step(const struct virtio_balloon *b);

/* An eventfd (EFD_NONBLOCK, owned by the balloon) that becomes readable when events are
 * pending.  The driver's config write that raises one runs on a vCPU thread under the
 * transport lock, so the device only records the event and signals this fd: the user watches
 * it on the event loop and takes the events there. */
int virtio_balloon_event_fd(const struct virtio_balloon *b);

/* Take and clear the pending events (VIRTIO_BALLOON_EV_* bits; 0: none) and drain the
 * eventfd; *reached_pages (may be NULL) gets `actual` as it was when VIRTIO_BALLOON_EV_REACHED
 * was raised.  Any thread. */
uint32_t virtio_balloon_take_events(struct virtio_balloon *b, uint32_t *reached_pages);

/* Change the statistics interval (event-loop thread): only while a statistics timer runs
 * (the device was created with stats_s > 0) and to a non-zero value; -EINVAL otherwise
 * (statistics cannot be turned on or off after creation, as in Firecracker). */
int virtio_balloon_set_stats_interval(struct virtio_balloon *b, uint32_t stats_s)
	__attribute__((warn_unused_result));
/* Ask the guest for fresh statistics: give back the stats buffer it left with us
 * (§5.5.6.3).  -EAGAIN if there is none to give back (no stats queue, or a request is already
 * in flight).  Any thread. */
int virtio_balloon_request_stats(struct virtio_balloon *b);

/* Copy the latest statistics and the counters out (either may be NULL).  Any thread. */
void virtio_balloon_get_stats(struct virtio_balloon *b, struct virtio_balloon_stats *s,
			      struct virtio_balloon_counters *c);

/* Stop the timer and free the device (also virtio_balloon_ops.destroy). */
void virtio_balloon_destroy(struct virtio_balloon *b);

#endif
