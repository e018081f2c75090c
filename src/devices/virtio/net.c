#include "devices/virtio/net.h"

#include "core/devmgr.h"
#include "core/metrics.h"
#include "core/evloop.h"
#include "devices/virtio/mmio.h"
#include "devices/virtio/virtq.h"
#include "net/backend.h"
#include "snapshot/snap.h"
#include "util/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <unistd.h>

/* Most iovec entries one pull reads into: readv's limit (UIO_MAXIOV). */
#define RX_IOV_MAX 1024
/* What a pull offers for one frame, at least: one byte more than the largest frame with its
 * header, so a frame that fills the offer was cut off (the TUN driver returns the bytes it
 * wrote, not the frame's length). */
#define OFFER_BYTES (NET_VNET_HDR_BYTES + NET_MAX_FRAME + 1)

/* One frame the guest had no room for yet: header (vnet back ends) + frame. */
struct pending {
	uint8_t *buf;
	size_t len; /* frame bytes, after the header if has_hdr */
	bool has_hdr;
};

/* A receive chain popped for pulling and not used yet: its writable buffers are
 * rxiov[iov..iov+nr). */
struct held_chain {
	uint16_t head;
	uint16_t nr;
	uint32_t len;
};

struct virtio_net {
	struct net_backend *be;
	uint8_t config[VIRTIO_NET_CFG_SIZE];
	bool link_up;
	/* A link bounce in progress (virtio_net_bounce_link): the link is down until the driver
	 * has read the status field once, then comes back up by itself. */
	bool bounce;
	struct virtio_mmio *t;
	/* Set while the driver has the device activated. */
	bool active;
	bool broken; /* we asked for a reset; nothing moves until the driver resets us */
	uint64_t features;
	struct virtq *rxq, *txq;
	/* Back-pressure (§5.1.6.3 gives the device no way to refuse a frame): frames wait here
	 * while the guest has no buffers, and the back end pauses when this fills up. */
	struct pending pend[VIRTIO_NET_PENDING_MAX];
	unsigned pend_head, pend_count;
	bool rx_paused;
	unsigned rx_unsignalled; /* frames pushed on the receive queue, no interrupt yet */
	/* Pull back ends (ops->recv): receive chains popped ahead of the next frame, in pop
	 * order, their buffers laid out in rxiov[0..rxiov_n) for one readv. */
	struct held_chain held[VIRTIO_NET_QUEUE_SIZE];
	unsigned nheld, rxiov_n;
	size_t held_len;
	struct iovec rxiov[RX_IOV_MAX];
	struct virtio_net_stats stats;
	struct metrics_net *m; /* this interface's metrics (never NULL) */
	/* Scratch, used under the transport lock. */
	struct virtq_elem first;  /* the receive chain that gets the header */
	struct virtq_elem elem;	  /* further receive chains */
	struct virtq_elem txelem; /* a transmit chain: a back end may receive while we send */
	uint16_t heads[VIRTIO_NET_QUEUE_SIZE];
	uint32_t lens[VIRTIO_NET_QUEUE_SIZE];
	struct iovec txiov[VIRTQ_ELEM_MAX_SEGS + 1];
	uint8_t linear[NET_MAX_FRAME];
	/* Pull back ends: the tail of a frame that did not fit the held chains, or a whole
	 * frame nobody can take. */
	uint8_t overflow[OFFER_BYTES];
	/* Rate limiters (bytes of frames, one op per frame).  While rx_rl holds a frame the back
	 * end is paused (frames wait there, none is dropped) and waiting frames stay in pend[];
	 * while tx_rl holds a chain the transmit queue is not drained.  Their timers, on ev,
	 * resume each direction. */
	struct ratelimit rx_rl, tx_rl;
	struct evloop *ev;
	bool rx_watched, tx_watched;
};

static void lock(struct virtio_net *n)
{
	if (n->t)
		virtio_mmio_lock(n->t);
}

static void unlock(struct virtio_net *n)
{
	if (n->t)
		virtio_mmio_unlock(n->t);
}

static bool has(const struct virtio_net *n, unsigned bit)
{
	return n->features & VIRTIO_BIT(bit);
}

static uint64_t net_features(void *dev)
{
	struct virtio_net *n = dev;

	/* Checksum offload both ways for every back end: with a vnet-header back end (TAP) the
	 * header passes through; otherwise (slirp, which wants complete checksums) the device
	 * completes NEEDS_CSUM packets itself and marks received frames DATA_VALID, since slirp
	 * builds them with correct checksums.  Segmentation offloads only where the back end
	 * takes them (be->host_features). */
	return VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(VIRTIO_F_EVENT_IDX) |
	       VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC) | VIRTIO_BIT(VIRTIO_NET_F_MAC) |
	       VIRTIO_BIT(VIRTIO_NET_F_STATUS) | VIRTIO_BIT(VIRTIO_NET_F_MRG_RXBUF) |
	       VIRTIO_BIT(VIRTIO_NET_F_CSUM) | VIRTIO_BIT(VIRTIO_NET_F_GUEST_CSUM) |
	       n->be->host_features;
}

static void update_status(struct virtio_net *n);

/* Under the transport lock. */
static uint64_t net_config_read(void *dev, uint32_t off, unsigned size)
{
	struct virtio_net *n = dev;
	uint64_t v = virtio_config_get(n->config, sizeof(n->config), off, size);

	/* The driver has now seen the link down (the read covers the status field): bring it
	 * back up, a second configuration change (§2.5.1).  Linux reads this 16-bit field with
	 * one access, outside any generation loop, so it sees the "down" it read. */
	if (n->bounce && off < VIRTIO_NET_CFG_STATUS + 2 && off + size > VIRTIO_NET_CFG_STATUS) {
		n->bounce = false;
		n->link_up = true;
		update_status(n);
		if (n->t && n->active)
			virtio_mmio_config_changed(n->t);
		log_info("virtio-net: link up again (bounce seen by the driver)");
	}
	return v;
}

/* §5.1.4: the MAC is driver-writable only with legacy or CTRL_MAC_ADDR; we offer neither. */
static void net_config_write(void *dev, uint32_t off, unsigned size, uint64_t val)
{
	log_guest("virtio-net: config write at %u ignored", off);
}

static void update_status(struct virtio_net *n)
{
	virtio_put_le(n->config + VIRTIO_NET_CFG_STATUS, n->link_up ? VIRTIO_NET_S_LINK_UP : 0, 2);
}

static void needs_reset(struct virtio_net *n)
{
	n->broken = true;
	if (n->t)
		virtio_mmio_set_needs_reset(n->t);
}

/* Give back the last `count` chains virtq_pop handed us: they stay available (§2.7.13). */
static void unpop(struct virtq *vq, unsigned count)
{
	vq->last_avail = (uint16_t)(vq->last_avail - count);
}

/* Header for the guest: from a vnet back end (checked against what the guest accepted), or
 * our own. */
static int rx_header(struct virtio_net *n, const uint8_t *in, uint8_t hdr[VIRTIO_NET_HDR_BYTES])
{
	memset(hdr, 0, VIRTIO_NET_HDR_BYTES);
	if (!in) {
		if (has(n, VIRTIO_NET_F_GUEST_CSUM))
			hdr[VIRTIO_NET_HDR_FLAGS] = VIRTIO_NET_HDR_F_DATA_VALID;
		return 0;
	}
	memcpy(hdr, in, VIRTIO_NET_HDR_NUM_BUFFERS);
	if (!has(n, VIRTIO_NET_F_GUEST_CSUM)) {
		if (hdr[VIRTIO_NET_HDR_FLAGS] & VIRTIO_NET_HDR_F_NEEDS_CSUM)
			return -EINVAL;
		hdr[VIRTIO_NET_HDR_FLAGS] = 0;
	}
	switch (hdr[VIRTIO_NET_HDR_GSO_TYPE] & ~VIRTIO_NET_HDR_GSO_ECN) {
	case VIRTIO_NET_HDR_GSO_NONE:
		return 0;
	case VIRTIO_NET_HDR_GSO_TCPV4:
		return has(n, VIRTIO_NET_F_GUEST_TSO4) ? 0 : -EINVAL;
	case VIRTIO_NET_HDR_GSO_TCPV6:
		return has(n, VIRTIO_NET_F_GUEST_TSO6) ? 0 : -EINVAL;
	default:
		return -EINVAL;
	}
}

/* Put one frame into the receive queue (§5.1.6.4): the header and frame fill one chain, or
 * with MRG_RXBUF as many chains as needed, num_buffers saying how many.  1: delivered;
 * 0: dropped; -EAGAIN: the guest has too few buffers now (none consumed). */
/* The device's own statistics and the process metrics (docs/metrics.md) move together. */
static void rx_count(struct virtio_net *n, size_t bytes)
{
	n->stats.rx_frames++;
	n->stats.rx_bytes += bytes;
	METRIC_INC(n->m->rx_packets_count);
	METRIC_ADD(n->m->rx_bytes_count, bytes);
}

static void rx_drop(struct virtio_net *n)
{
	n->stats.rx_dropped++;
	METRIC_INC(n->m->rx_dropped_count);
}

static int deliver(struct virtio_net *n, const uint8_t *hdr_in, const uint8_t *frame, size_t len)
{
	struct virtq *vq = n->rxq;
	bool mrg = has(n, VIRTIO_NET_F_MRG_RXBUF);
	uint8_t hdr[VIRTIO_NET_HDR_BYTES];
	size_t total = VIRTIO_NET_HDR_BYTES + len, off = 0;
	unsigned popped = 0;

	if (rx_header(n, hdr_in, hdr)) {
		log_guest("virtio-net: dropping a received frame with offloads the guest refused");
		goto drop;
	}
	while (off < total) {
		struct virtq_elem *e = popped ? &n->elem : &n->first;
		size_t chunk;
		int r;

		if (popped == vq->size) {
			/* Every buffer in the ring cannot hold it: it never will fit. */
			unpop(vq, popped);
			log_guest("virtio-net: %zu-byte frame does not fit in the receive queue",
				  len);
			goto drop;
		}
		r = virtq_pop(vq, e);
		if (r == 0) {
			/* Out of buffers: ask for a notification when the driver adds some, and
			 * look once more (§2.7.10), before giving up on this frame for now. */
			if (virtq_enable_notify(vq)) {
				virtq_disable_notify(vq);
				continue;
			}
			unpop(vq, popped);
			METRIC_INC(n->m->no_rx_avail_buffer);
			return -EAGAIN;
		}
		if (r < 0) {
			needs_reset(n);
			goto drop;
		}
		/* §5.1.6.3.1: receive buffers are device-writable and hold at least a header. */
		if (e->nr_out || e->in_len < VIRTIO_NET_HDR_BYTES) {
			log_guest("virtio-net: receive chain of %u readable, %u writable bytes",
				  e->out_len, e->in_len);
			needs_reset(n);
			goto drop;
		}
		chunk = total - off < e->in_len ? total - off : e->in_len;
		if (!mrg && chunk < total) {
			/* No merging: one chain must hold it all; keep the buffer for a smaller
			 * frame. */
			unpop(vq, 1);
			log_guest("virtio-net: %zu-byte frame, %u-byte receive buffer", len,
				  e->in_len);
			goto drop;
		}
		if (popped == 0)
			virtq_elem_write(e, VIRTIO_NET_HDR_BYTES, frame,
					 chunk - VIRTIO_NET_HDR_BYTES);
		else
			virtq_elem_write(e, 0, frame + (off - VIRTIO_NET_HDR_BYTES), chunk);
		n->heads[popped] = e->head;
		n->lens[popped] = (uint32_t)chunk;
		popped++;
		off += chunk;
	}
	virtio_put_le(hdr + VIRTIO_NET_HDR_NUM_BUFFERS, popped, 2);
	virtq_elem_write(&n->first, 0, hdr, sizeof(hdr));
	for (unsigned i = 0; i < popped; i++)
		virtq_push(vq, n->heads[i], n->lens[i]);
	rx_count(n, len);
	return 1;
drop:
	rx_drop(n);
	return 0;
}

static bool rx_usable(const struct virtio_net *n)
{
	return n->active && !n->broken && n->rxq && !n->rxq->broken;
}

static void pend_drop_all(struct virtio_net *n)
{
	while (n->pend_count) {
		free(n->pend[n->pend_head].buf);
		n->pend_head = (n->pend_head + 1) % VIRTIO_NET_PENDING_MAX;
		n->pend_count--;
	}
	n->pend_head = 0;
}

static void set_paused(struct virtio_net *n, bool paused)
{
	if (n->rx_paused == paused)
		return;
	n->rx_paused = paused;
	n->be->ops->set_rx_enabled(n->be, !paused);
}

/* May a frame of `len` bytes go to the guest now?  When rx_rl says no, its timer is armed
 * and the back end paused until it fires (without a timer the frame passes). */
static bool rx_allowed(struct virtio_net *n, size_t len)
{
	uint64_t wait;

	if (ratelimit_none(&n->rx_rl))
		return true;
	if (n->rx_rl.armed)
		return false;
	if (ratelimit_check(&n->rx_rl, len, 1, &wait))
		return true;
	if (ratelimit_arm(&n->rx_rl, wait))
		return true;
	set_paused(n, true);
	return false;
}

static void rx_charge(struct virtio_net *n, size_t len)
{
	if (!ratelimit_none(&n->rx_rl))
		ratelimit_force(&n->rx_rl, len, 1);
}

/* Deliver waiting frames in order while the guest has room and the limiter lets them; resume
 * the back end once the backlog is half gone.  Returns true if anything was pushed. */
static bool flush_pending(struct virtio_net *n)
{
	bool pushed = false;

	while (n->pend_count && rx_usable(n)) {
		struct pending *p = &n->pend[n->pend_head];
		const uint8_t *frame = p->has_hdr ? p->buf + VIRTIO_NET_HDR_BYTES : p->buf;
		int r;

		if (!rx_allowed(n, p->len))
			break;
		r = deliver(n, p->has_hdr ? p->buf : NULL, frame, p->len);
		if (r == -EAGAIN)
			break;
		if (r > 0)
			rx_charge(n, p->len);
		pushed |= r > 0;
		free(p->buf);
		n->pend_head = (n->pend_head + 1) % VIRTIO_NET_PENDING_MAX;
		n->pend_count--;
	}
	if (!rx_usable(n))
		pend_drop_all(n);
	if (n->pend_count <= VIRTIO_NET_PENDING_MAX / 2 && !n->rx_rl.armed)
		set_paused(n, false);
	return pushed;
}

static void enqueue(struct virtio_net *n, const uint8_t *hdr, const uint8_t *frame, size_t len)
{
	struct pending *p;
	size_t hl = hdr ? VIRTIO_NET_HDR_BYTES : 0;

	if (n->pend_count == VIRTIO_NET_PENDING_MAX) {
		rx_drop(n);
		return;
	}
	p = &n->pend[(n->pend_head + n->pend_count) % VIRTIO_NET_PENDING_MAX];
	p->buf = malloc(hl + len);
	if (!p->buf) {
		rx_drop(n);
		return;
	}
	if (hdr)
		memcpy(p->buf, hdr, hl);
	memcpy(p->buf + hl, frame, len);
	p->len = len;
	p->has_hdr = hdr != NULL;
	if (++n->pend_count == VIRTIO_NET_PENDING_MAX)
		set_paused(n, true);
}

/* One interrupt decision for everything pushed on the receive queue since the last one. */
static void rx_signal(struct virtio_net *n)
{
	if (!n->rx_unsignalled)
		return;
	n->rx_unsignalled = 0;
	if (n->t && n->rxq)
		virtio_mmio_notify_used(n->t, n->rxq);
}

/* Copy bytes [off, off+len) of iov[0..cnt) into buf, or from buf with to_iov. */
static void iov_copy(const struct iovec *iov, unsigned cnt, size_t off, uint8_t *buf, size_t len,
		     bool to_iov)
{
	for (unsigned i = 0; i < cnt && len; i++) {
		size_t take;

		if (off >= iov[i].iov_len) {
			off -= iov[i].iov_len;
			continue;
		}
		take = iov[i].iov_len - off < len ? iov[i].iov_len - off : len;
		if (to_iov)
			memcpy((uint8_t *)iov[i].iov_base + off, buf, take);
		else
			memcpy(buf, (const uint8_t *)iov[i].iov_base + off, take);
		buf += take;
		len -= take;
		off = 0;
	}
}

/* Forget the held chains: they go back to the available ring (they are the last popped). */
static void release_held(struct virtio_net *n)
{
	if (n->nheld && n->rxq)
		unpop(n->rxq, n->nheld);
	n->nheld = n->rxiov_n = 0;
	n->held_len = 0;
}

/* Bytes of receive buffers one frame may need: the header and the largest frame the back end
 * can hand over with the offloads the guest accepted. */
static size_t rx_want(const struct virtio_net *n)
{
	size_t max = n->be->rx_frame_max ? n->be->rx_frame_max : NET_MAX_FRAME;

	if (has(n, VIRTIO_NET_F_GUEST_TSO4) || has(n, VIRTIO_NET_F_GUEST_TSO6) ||
	    max > NET_MAX_FRAME)
		max = NET_MAX_FRAME;
	return VIRTIO_NET_HDR_BYTES + max;
}

/* Hold receive chains until they can take any frame (without MRG_RXBUF: one chain), the
 * whole ring is held or the driver has no more.  0: at least one chain held; -EAGAIN: none
 * (a notification was asked for); -EINVAL: garbage (the device needs a reset). */
static int rx_gather(struct virtio_net *n)
{
	struct virtq *vq = n->rxq;
	bool mrg = has(n, VIRTIO_NET_F_MRG_RXBUF);
	size_t want = rx_want(n);

	while (mrg ? n->held_len < want : n->nheld == 0) {
		struct virtq_elem *e = &n->elem;
		struct held_chain *h;
		int r;

		/* One iovec stays free for the overflow buffer (rx_pull). */
		if (n->nheld == vq->size || n->rxiov_n >= RX_IOV_MAX - 1)
			break; /* the best this ring can do */
		r = virtq_pop(vq, e);
		if (r == 0) {
			if (virtq_enable_notify(vq)) {
				virtq_disable_notify(vq);
				continue;
			}
			return n->nheld ? 0 : -EAGAIN;
		}
		if (r < 0)
			return -EINVAL;
		/* §5.1.6.3.1: receive buffers are device-writable and hold at least a header. */
		if (e->nr_out || e->in_len < VIRTIO_NET_HDR_BYTES) {
			log_guest("virtio-net: receive chain of %u readable, %u writable bytes",
				  e->out_len, e->in_len);
			unpop(vq, 1);
			return -EINVAL;
		}
		if (n->rxiov_n + e->nr_in > RX_IOV_MAX - 1) {
			unpop(vq, 1);
			break;
		}
		h = &n->held[n->nheld++];
		h->head = e->head;
		h->nr = (uint16_t)e->nr_in;
		h->len = e->in_len;
		memcpy(&n->rxiov[n->rxiov_n], &e->iov[e->nr_out], e->nr_in * sizeof(e->iov[0]));
		n->rxiov_n += e->nr_in;
		n->held_len += e->in_len;
	}
	return 0;
}

/* The frame of `len` bytes (header included) read into the held chains fits: fix up the
 * header, return the chains it filled (§5.1.6.4), keep the rest for the next frame. */
static int rx_complete(struct virtio_net *n, size_t len)
{
	uint8_t in[VIRTIO_NET_HDR_BYTES], hdr[VIRTIO_NET_HDR_BYTES];
	unsigned used = 0, iovs = 0;
	size_t off = 0;

	iov_copy(n->rxiov, n->rxiov_n, 0, in, sizeof(in), false);
	if (rx_header(n, in, hdr)) {
		log_guest("virtio-net: dropping a received frame with offloads the guest refused");
		return -EINVAL;
	}
	while (off < len) {
		const struct held_chain *h = &n->held[used++];
		size_t take = len - off < h->len ? len - off : h->len;

		n->lens[used - 1] = (uint32_t)take;
		iovs += h->nr;
		off += take;
	}
	virtio_put_le(hdr + VIRTIO_NET_HDR_NUM_BUFFERS, used, 2);
	iov_copy(n->rxiov, n->rxiov_n, 0, hdr, sizeof(hdr), true);
	/* Chains leave held[] in pop order, so what stays is still the tail of what was
	 * popped (release_held unpops it). */
	for (unsigned i = 0; i < used; i++) {
		n->held_len -= n->held[i].len;
		virtq_push(n->rxq, n->held[i].head, n->lens[i]);
	}
	n->nheld -= used;
	memmove(n->held, n->held + used, n->nheld * sizeof(n->held[0]));
	n->rxiov_n -= iovs;
	memmove(n->rxiov, n->rxiov + iovs, n->rxiov_n * sizeof(n->rxiov[0]));
	return 0;
}

/* A frame of `len` bytes (header included) filled the held chains and went on into the
 * overflow buffer: the guest has too few buffers for it now.  It waits with the frames of
 * push back ends (one copy, a rare case) until the driver adds buffers. */
static void rx_park(struct virtio_net *n, size_t len)
{
	size_t in_guest = n->held_len;
	uint8_t *buf = malloc(len);

	if (!buf) {
		rx_drop(n);
		return;
	}
	iov_copy(n->rxiov, n->rxiov_n, 0, buf, in_guest, false);
	memcpy(buf + in_guest, n->overflow, len - in_guest);
	release_held(n); /* deliver() pops these chains again for it */
	enqueue(n, buf, buf + VIRTIO_NET_HDR_BYTES, len - VIRTIO_NET_HDR_BYTES);
	free(buf);
}

/* Read and drop one frame nobody can take.  False when none waits. */
static bool rx_discard(struct virtio_net *n)
{
	struct iovec v = { n->overflow, sizeof(n->overflow) };
	ssize_t r = n->be->ops->recv(n->be, &v, 1);

	if (r < 0)
		return false;
	rx_drop(n);
	return true;
}

/* A pull back end has frames: read them straight into the guest's receive buffers (the
 * kernel writes the virtio-net header into the first bytes), at most a budget per call; the
 * back end calls again while frames wait.  With MRG_RXBUF the chains held are those the
 * largest frame needs, when the driver has that many; an overflow buffer follows them (up to
 * OFFER_BYTES in all), so no frame is lost for want of buffers and a cut-off frame is
 * recognised.  With no buffers at all, the back end is paused until the driver adds some
 * (net_queue_notify). */
static void rx_pull(struct virtio_net *n)
{
	bool mrg;

	if (!n->be->ops->recv)
		return;
	mrg = has(n, VIRTIO_NET_F_MRG_RXBUF);
	for (unsigned i = 0; i < VIRTIO_QUEUE_BUDGET; i++) {
		ssize_t r;
		size_t cap;
		int ret, cnt;

		if (!rx_usable(n) || !n->link_up) {
			if (!rx_discard(n))
				break;
			continue;
		}
		/* A parked frame goes first: nothing may overtake it. */
		if (n->pend_count) {
			release_held(n);
			if (flush_pending(n))
				n->rx_unsignalled++;
			if (n->pend_count) {
				set_paused(n, true);
				break;
			}
		}
		/* The frame's size is known only once read: it passes while the limiter is not
		 * in debt, and is then counted in full (ratelimit_force). */
		if (!rx_allowed(n, 1))
			break;
		ret = rx_gather(n);
		if (ret == -EAGAIN) {
			set_paused(n, true);
			break;
		}
		if (ret) {
			release_held(n);
			needs_reset(n);
			break;
		}
		cap = mrg ? n->held_len : n->held[0].len;
		cnt = mrg ? (int)n->rxiov_n : n->held[0].nr;
		/* rxiov[cnt] is free: rx_gather keeps one entry for this. */
		if (cap < OFFER_BYTES)
			n->rxiov[cnt++] = (struct iovec){ n->overflow, OFFER_BYTES - cap };
		r = n->be->ops->recv(n->be, n->rxiov, cnt);
		if (r == -EAGAIN)
			break;
		if (r < 0) {
			METRIC_INC(n->m->rx_fails);
			rx_drop(n);
			break;
		}
		/* Short, cut off (it filled the whole offer) or, without MRG_RXBUF, larger than
		 * the one chain: dropped, and the buffers stay for the next frame. */
		if ((size_t)r < VIRTIO_NET_HDR_BYTES + NET_MIN_FRAME || (size_t)r >= OFFER_BYTES ||
		    (!mrg && (size_t)r > cap)) {
			if ((size_t)r >= VIRTIO_NET_HDR_BYTES + NET_MIN_FRAME)
				log_guest(
					"virtio-net: %zd-byte frame, %zu bytes of receive buffers",
					r - VIRTIO_NET_HDR_BYTES, cap);
			rx_drop(n);
			continue;
		}
		if ((size_t)r > cap) {
			rx_park(n, (size_t)r);
			continue; /* delivered first thing next time round */
		}
		if (rx_complete(n, (size_t)r)) {
			rx_drop(n);
			continue;
		}
		rx_charge(n, (size_t)r - VIRTIO_NET_HDR_BYTES);
		rx_count(n, (size_t)r - VIRTIO_NET_HDR_BYTES);
		n->rx_unsignalled++;
	}
	release_held(n);
	rx_signal(n);
}

/* Back end: frames wait behind ops->recv. */
static void net_readable(void *opaque)
{
	struct virtio_net *n = opaque;

	lock(n);
	rx_pull(n);
	unlock(n);
}

/* Back end → guest (event-loop thread). */
static void net_receive(void *opaque, const uint8_t *hdr, const uint8_t *frame, size_t len)
{
	struct virtio_net *n = opaque;
	int r = -EAGAIN;

	lock(n);
	if (!rx_usable(n) || !n->link_up || len < NET_MIN_FRAME || len > NET_MAX_FRAME) {
		rx_drop(n);
		goto out;
	}
	if (n->pend_count == 0 && rx_allowed(n, len)) {
		r = deliver(n, hdr, frame, len);
		if (r > 0)
			rx_charge(n, len);
	}
	if (r == -EAGAIN)
		enqueue(n, hdr, frame, len);
	else if (r > 0 && ++n->rx_unsignalled >= VIRTIO_QUEUE_BUDGET)
		rx_signal(n); /* a long batch still interrupts every budget's worth */
out:
	unlock(n);
}

/* Back end: the batch of net_receive() calls ended. */
static void net_receive_flush(void *opaque)
{
	struct virtio_net *n = opaque;

	lock(n);
	rx_signal(n);
	unlock(n);
}

/* RFC 1071 sum of `len` bytes, big-endian 16-bit words. */
static uint32_t csum_add(uint32_t sum, const uint8_t *p, size_t len)
{
	size_t i;

	for (i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)p[i] << 8 | p[i + 1];
	if (len & 1)
		sum += (uint32_t)p[len - 1] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return sum;
}

/* NEEDS_CSUM (§5.1.6.2): the checksum from csum_start to the end, which already includes the
 * pseudo-header sum the driver left in the field, goes at csum_start + csum_offset.  A UDP
 * checksum of 0 means "none", so 0 is sent as 0xffff (the same in one's complement). */
void virtio_net_complete_csum(uint8_t *frame, size_t len, uint16_t start, uint16_t offset)
{
	uint16_t c = (uint16_t)~csum_add(0, frame + start, len - start);

	if (c == 0)
		c = 0xffff;
	frame[start + offset] = (uint8_t)(c >> 8);
	frame[start + offset + 1] = (uint8_t)c;
}

/* Check the header of a transmitted frame of `len` bytes against what was negotiated. */
static int tx_header_ok(struct virtio_net *n, const uint8_t *hdr, size_t len)
{
	uint8_t flags = hdr[VIRTIO_NET_HDR_FLAGS], gso = hdr[VIRTIO_NET_HDR_GSO_TYPE];

	if (flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
		uint32_t start = (uint32_t)virtio_get_le(hdr + VIRTIO_NET_HDR_CSUM_START, 2);
		uint32_t offset = (uint32_t)virtio_get_le(hdr + VIRTIO_NET_HDR_CSUM_OFFSET, 2);

		if (start + offset + 2 > len) {
			log_guest("virtio-net: checksum at %u+%u outside a %zu-byte frame", start,
				  offset, len);
			return -EINVAL;
		}
	}
	if (gso == VIRTIO_NET_HDR_GSO_NONE)
		return 0;
	/* §5.1.6.2: segmentation only as negotiated, and only a vnet back end can do it. */
	if (n->be->vnet_hdr && (flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) &&
	    ((gso == VIRTIO_NET_HDR_GSO_TCPV4 && has(n, VIRTIO_NET_F_HOST_TSO4)) ||
	     (gso == VIRTIO_NET_HDR_GSO_TCPV6 && has(n, VIRTIO_NET_F_HOST_TSO6))))
		return 0;
	log_guest("virtio-net: transmitted frame with GSO type %#x not negotiated", gso);
	return -EINVAL;
}

/* Send one transmitted chain (§5.1.6.2): header, then the frame.  Errors drop the frame. */
static void tx_one(struct virtio_net *n, struct virtq_elem *e)
{
	uint8_t hdr[VIRTIO_NET_HDR_BYTES];
	size_t len;
	int ret, cnt;

	if (e->nr_in || e->out_len < VIRTIO_NET_HDR_BYTES + NET_MIN_FRAME ||
	    e->out_len - VIRTIO_NET_HDR_BYTES > NET_MAX_FRAME) {
		log_guest("virtio-net: dropping a transmit chain of %u readable, %u writable bytes",
			  e->out_len, e->in_len);
		goto malformed;
	}
	len = e->out_len - VIRTIO_NET_HDR_BYTES;
	virtq_elem_read(e, 0, hdr, sizeof(hdr));
	if (!n->link_up)
		goto drop;
	if (tx_header_ok(n, hdr, len))
		goto malformed;
	if (n->be->vnet_hdr) {
		/* The header (our checked copy) and the guest's buffers go to the back end as
		 * they are: no copy. */
		virtio_put_le(hdr + VIRTIO_NET_HDR_NUM_BUFFERS, 0, 2);
		n->txiov[0].iov_base = hdr;
		n->txiov[0].iov_len = sizeof(hdr);
		cnt = virtq_iov_slice(e->iov, e->nr_out, VIRTIO_NET_HDR_BYTES, len, n->txiov + 1,
				      VIRTQ_ELEM_MAX_SEGS);
		if (cnt < 0)
			goto drop;
		ret = n->be->ops->send(n->be, n->txiov, cnt + 1);
	} else {
		/* One copy, which also stops the guest changing the frame under the checksum. */
		virtq_elem_read(e, VIRTIO_NET_HDR_BYTES, n->linear, len);
		if (hdr[VIRTIO_NET_HDR_FLAGS] & VIRTIO_NET_HDR_F_NEEDS_CSUM)
			virtio_net_complete_csum(
				n->linear, len,
				(uint16_t)virtio_get_le(hdr + VIRTIO_NET_HDR_CSUM_START, 2),
				(uint16_t)virtio_get_le(hdr + VIRTIO_NET_HDR_CSUM_OFFSET, 2));
		n->txiov[0].iov_base = n->linear;
		n->txiov[0].iov_len = len;
		ret = n->be->ops->send(n->be, n->txiov, 1);
	}
	if (ret) {
		METRIC_INC(n->m->tx_fails);
		goto drop;
	}
	n->stats.tx_frames++;
	n->stats.tx_bytes += len;
	METRIC_INC(n->m->tx_packets_count);
	METRIC_ADD(n->m->tx_bytes_count, len);
	return;
malformed:
	METRIC_INC(n->m->tx_malformed_frames);
drop:
	n->stats.tx_dropped++;
	METRIC_INC(n->m->tx_dropped_count);
}

/* Drain the transmit queue, at most a budget of chains per call.  The driver is asked not to
 * notify while we drain (§2.7.10); notifications are re-enabled only when the ring is empty,
 * and the ring looked at once more, so a buffer added meanwhile is not left behind. */
static void process_tx(struct virtio_net *n)
{
	unsigned done = 0;

	virtq_disable_notify(n->txq);
	for (;;) {
		int ret;

		if (done == VIRTIO_QUEUE_BUDGET) {
			/* Still suppressed: we come back after the loop's other sources. */
			virtio_mmio_queue_yield(n->t, VIRTIO_NET_TXQ);
			break;
		}
		if (n->tx_rl.armed)
			break; /* the limiter's timer resumes us */
		ret = virtq_pop(n->txq, &n->txelem);
		if (ret == 0) {
			if (virtq_enable_notify(n->txq)) {
				virtq_disable_notify(n->txq);
				continue;
			}
			break;
		}
		if (ret < 0) {
			needs_reset(n);
			break;
		}
		if (!ratelimit_none(&n->tx_rl)) {
			uint32_t len = n->txelem.out_len;
			uint64_t wait;

			len = len > VIRTIO_NET_HDR_BYTES ? len - VIRTIO_NET_HDR_BYTES : 0;
			/* Not now: the chain goes back to the ring (notifications stay off) and
			 * the timer resumes us; without a timer the frame passes. */
			if (!ratelimit_consume(&n->tx_rl, len, 1, &wait) &&
			    ratelimit_arm(&n->tx_rl, wait) == 0) {
				virtq_unpop(n->txq, 1);
				break;
			}
		}
		tx_one(n, &n->txelem);
		virtq_push(n->txq, n->txelem.head, 0);
		done++;
	}
	if (done)
		virtio_mmio_notify_used(n->t, n->txq);
	/* Replies a back end produced while we sent (slirp answers ARP, DHCP at once). */
	rx_signal(n);
}

static void net_queue_notify(void *dev, unsigned q)
{
	struct virtio_net *n = dev;

	if (!n->active || n->broken)
		return;
	if (q == VIRTIO_NET_RXQ) {
		METRIC_INC(n->m->rx_queue_event_count);
		/* New receive buffers: we asked for this notification because frames wait (it
		 * was enabled when the ring ran dry).  Stop further ones, deliver what waited and
		 * resume a paused back end; running dry again re-enables them. */
		virtq_disable_notify(n->rxq);
		if (flush_pending(n))
			virtio_mmio_notify_used(n->t, n->rxq);
	} else if (q == VIRTIO_NET_TXQ) {
		METRIC_INC(n->m->tx_queue_event_count);
		process_tx(n);
	}
}

static int net_activate(void *dev, struct virtio_mmio *t, uint64_t features, struct virtq *vqs,
			unsigned nr)
{
	struct virtio_net *n = dev;

	if (nr < 2 || !vqs[VIRTIO_NET_RXQ].ready || !vqs[VIRTIO_NET_TXQ].ready) {
		log_guest("virtio-net: DRIVER_OK without both queues");
		return -EINVAL;
	}
	n->features = features;
	n->rxq = &vqs[VIRTIO_NET_RXQ];
	n->txq = &vqs[VIRTIO_NET_TXQ];
	/* `broken` stays as it is: reset clears it (a driver must reset a device that asked
	 * for it), and a restored device that had asked keeps asking. */
	n->active = true;
	n->rx_unsignalled = 0;
	n->nheld = n->rxiov_n = 0;
	n->held_len = 0;
	/* The driver need not notify as it adds receive buffers: only when the device waits
	 * for some (the ring ran dry with frames to deliver) does it ask again. */
	virtq_disable_notify(n->rxq);
	if (n->be->ops->set_offload)
		n->be->ops->set_offload(n->be, features);
	/* Frames wait only on a restored device (reset drops them): deliver what fits now, and
	 * the rest asks for a notification when the ring runs dry (deliver()). */
	set_paused(n, n->pend_count >= VIRTIO_NET_PENDING_MAX);
	if (n->pend_count && flush_pending(n))
		virtio_mmio_notify_used(t, n->rxq);
	return 0;
}

static void net_reset(void *dev)
{
	struct virtio_net *n = dev;

	n->active = false;
	n->broken = false;
	n->features = 0;
	n->rxq = n->txq = NULL;
	n->rx_unsignalled = 0;
	n->nheld = n->rxiov_n = 0;
	n->held_len = 0;
	pend_drop_all(n);
	ratelimit_disarm(&n->rx_rl);
	ratelimit_disarm(&n->tx_rl);
	/* Keep draining the back end while nobody listens (frames are dropped). */
	set_paused(n, false);
}

static void net_destroy(void *dev)
{
	virtio_net_destroy(dev);
}

/* ---- snapshots ----
 *
 * SNAP_REC_VIRTIO_NET, version 1 (the transport saves status, features and queues):
 *   u8[6] mac, bool link_up, bool broken (the device asked for a reset),
 *   u32 count of frames waiting for receive buffers (<= VIRTIO_NET_PENDING_MAX), then per
 *   frame, oldest first: bool has_hdr, u32 len (NET_MIN_FRAME..NET_MAX_FRAME), and
 *   (has_hdr ? VIRTIO_NET_HDR_BYTES : 0) + len bytes (the back end's header, then the frame).
 * The status field is derived from link_up.  Not saved: the counters (diagnostics), the
 * back end (re-created from the configuration), rx_unsignalled (quiesce signals it) and held
 * receive chains (never held across a call), and the rate limiters' bucket state (a restored
 * device starts with full buckets; the limits themselves come from the configuration). */
#define VIRTIO_NET_STATE_VERSION 1

/* Frames already taken from the network wait in pend[]: they are saved and delivered after a
 * restore, so none is lost or sent twice.  Every chain is popped and pushed (or unpopped)
 * within one call of deliver(), rx_pull() or process_tx(); a pull leaves no chain held when it
 * returns.  What may remain is an interrupt owed for frames pushed in an unfinished batch:
 * signal it now, so that it is part of the transport's saved interrupt state. */
static void net_quiesce(void *dev)
{
	struct virtio_net *n = dev;

	release_held(n);
	rx_signal(n);
}

static int net_save(void *dev, struct snap_writer *w, const char *id)
{
	struct virtio_net *n = dev;

	if (n->nheld)
		return -EBUSY; /* not quiesced */
	snap_rec_begin(w, SNAP_REC_VIRTIO_NET, VIRTIO_NET_STATE_VERSION, id);
	snap_put_bytes(w, n->config + VIRTIO_NET_CFG_MAC, 6);
	/* A bounce in progress is transient: the link it will return to is what is saved (a
	 * restore bounces again anyway). */
	snap_put_bool(w, n->link_up || n->bounce);
	snap_put_bool(w, n->broken);
	snap_put_u32(w, n->pend_count);
	for (unsigned i = 0; i < n->pend_count; i++) {
		const struct pending *p = &n->pend[(n->pend_head + i) % VIRTIO_NET_PENDING_MAX];

		snap_put_bool(w, p->has_hdr);
		snap_put_u32(w, (uint32_t)p->len);
		snap_put_bytes(w, p->buf, (p->has_hdr ? VIRTIO_NET_HDR_BYTES : 0) + p->len);
	}
	return w->err;
}

/* A MAC the device may present: unicast (IEEE 802 §8.2: bit 0 of the first octet clear) and
 * not all zeros. */
static bool mac_ok(const uint8_t mac[6])
{
	static const uint8_t zero[6];

	return !(mac[0] & 1) && memcmp(mac, zero, 6) != 0;
}

static int net_restore(void *dev, const struct snap_file *f, const char *id)
{
	struct virtio_net *n = dev;
	struct pending pend[VIRTIO_NET_PENDING_MAX];
	struct snap_reader r;
	uint8_t mac[6];
	bool link_up, broken;
	uint32_t count, got = 0;
	int ret;

	if (snap_file_find(f, SNAP_REC_VIRTIO_NET, id, &r))
		return -EINVAL;
	if (r.version != VIRTIO_NET_STATE_VERSION) {
		log_warn("virtio-net: %s: state version %u, this build reads %u", id, r.version,
			 VIRTIO_NET_STATE_VERSION);
		return -EINVAL;
	}
	snap_get_bytes(&r, mac, sizeof(mac));
	link_up = snap_get_bool(&r);
	broken = snap_get_bool(&r);
	count = snap_get_u32(&r);
	if (!mac_ok(mac) || count > VIRTIO_NET_PENDING_MAX)
		snap_fail(&r);
	for (; got < count && !r.err; got++) {
		bool has_hdr = snap_get_bool(&r);
		uint32_t len = snap_get_u32(&r);
		size_t bytes = (has_hdr ? VIRTIO_NET_HDR_BYTES : 0) + (size_t)len;

		/* Bounded before anything is allocated: a hostile file costs nothing. */
		if (r.err || len < NET_MIN_FRAME || len > NET_MAX_FRAME || bytes > r.len - r.off) {
			snap_fail(&r);
			break;
		}
		pend[got] =
			(struct pending){ .buf = malloc(bytes), .len = len, .has_hdr = has_hdr };
		if (!pend[got].buf) {
			ret = -ENOMEM;
			goto free_frames;
		}
		snap_get_bytes(&r, pend[got].buf, bytes);
	}
	ret = snap_reader_done(&r);
	if (ret) {
		log_warn("virtio-net: %s: invalid state record", id);
		goto free_frames;
	}
	lock(n);
	pend_drop_all(n);
	memcpy(n->config + VIRTIO_NET_CFG_MAC, mac, sizeof(mac));
	n->link_up = link_up;
	n->bounce = false;
	update_status(n);
	n->broken = broken;
	memcpy(n->pend, pend, count * sizeof(pend[0]));
	n->pend_head = 0;
	n->pend_count = count;
	unlock(n);
	return 0;

free_frames:
	while (got)
		free(pend[--got].buf);
	return ret;
}

/* The back end's callbacks signal link changes and received frames through the transport. */
static void net_set_transport(void *dev, struct virtio_mmio *t)
{
	struct virtio_net *n = dev;

	n->t = t;
}

const struct virtio_device_ops virtio_net_ops = {
	.name = "virtio-net",
	.device_id = VIRTIO_ID_NET,
	.num_queues = 2,
	.queue_max_size = VIRTIO_NET_QUEUE_SIZE,
	.features = net_features,
	.set_transport = net_set_transport,
	.config_read = net_config_read,
	.config_write = net_config_write,
	.activate = net_activate,
	.queue_notify = net_queue_notify,
	.reset = net_reset,
	.quiesce = net_quiesce,
	.save = net_save,
	.restore = net_restore,
	.rec = { SNAP_REC_VIRTIO_NET, VIRTIO_NET_STATE_VERSION },
	.destroy = net_destroy,
};

int virtio_net_create(struct net_backend *be, const uint8_t mac[6], struct virtio_net **out)
{
	struct virtio_net *n;

	/* A pull back end reads the header into the guest's buffers itself: vnet_hdr only. */
	if (!be || !be->ops || !be->ops->send || !be->ops->set_rx_enabled ||
	    (be->ops->recv && !be->vnet_hdr)) {
		if (be && be->ops && be->ops->destroy)
			be->ops->destroy(be);
		return -EINVAL;
	}
	n = calloc(1, sizeof(*n));
	if (!n) {
		be->ops->destroy(be);
		return -ENOMEM;
	}
	n->be = be;
	n->m = metrics_net_get(NULL); /* virtio_net_add names it */
	memcpy(n->config + VIRTIO_NET_CFG_MAC, mac, 6);
	n->link_up = true;
	update_status(n);
	ratelimit_init_none(&n->rx_rl);
	ratelimit_init_none(&n->tx_rl);
	be->receive = net_receive;
	be->receive_flush = net_receive_flush;
	be->readable = net_readable;
	be->receive_opaque = n;
	*out = n;
	return 0;
}

static void rx_timer_cb(void *opaque, uint32_t events);
static void tx_timer_cb(void *opaque, uint32_t events);

static int watch(struct virtio_net *n, struct ratelimit *rl, bool *watched,
		 void (*cb)(void *, uint32_t))
{
	int fd, ret;

	if (!n->ev)
		return 0;
	fd = ratelimit_timer_fd(rl);
	ret = fd < 0 ? fd : evloop_add(n->ev, fd, EPOLLIN, cb, n);
	if (!ret)
		*watched = true;
	return ret;
}

int virtio_net_add(struct devmgr *dm, const char *id, struct net_backend *be, const uint8_t mac[6],
		   struct virtio_net **out)
{
	struct virtio_net *n;
	int ret;

	ret = virtio_net_create(be, mac, &n);
	if (ret)
		return ret;
	n->m = metrics_net_get(id);
	/* The limiters' timers exist from the start, limited or not: a limit set at run time
	 * then needs no new fd (timerfd_create is outside the seccomp policy after start-up). */
	n->ev = dm->ev;
	ret = watch(n, &n->rx_rl, &n->rx_watched, rx_timer_cb);
	if (!ret)
		ret = watch(n, &n->tx_rl, &n->tx_watched, tx_timer_cb);
	if (ret) {
		virtio_net_destroy(n);
		return ret;
	}
	ret = virtio_mmio_add(dm, id, &virtio_net_ops, n, NULL);
	if (ret) {
		virtio_net_destroy(n);
		return ret;
	}
	/* From here the manager owns the device (and so the back end). */
	if (dm->ev && be->ops->start) {
		ret = be->ops->start(be, dm->ev);
		if (ret)
			return ret;
	}
	if (out)
		*out = n;
	return 0;
}

void virtio_net_ratelimit_fire(struct virtio_net *n, bool tx)
{
	lock(n);
	if (tx) {
		ratelimit_timer_ack(&n->tx_rl);
		if (n->t && n->active && !n->broken)
			virtio_mmio_queue_yield(n->t, VIRTIO_NET_TXQ);
	} else {
		ratelimit_timer_ack(&n->rx_rl);
		if (n->active && flush_pending(n))
			virtio_mmio_notify_used(n->t, n->rxq);
		/* A pull back end reads again (and is limited again) once resumed. */
		if (!n->rx_rl.armed && n->pend_count <= VIRTIO_NET_PENDING_MAX / 2)
			set_paused(n, false);
	}
	unlock(n);
}

static void rx_timer_cb(void *opaque, uint32_t events)
{
	virtio_net_ratelimit_fire(opaque, false);
}

static void tx_timer_cb(void *opaque, uint32_t events)
{
	virtio_net_ratelimit_fire(opaque, true);
}

int virtio_net_set_ratelimit(struct virtio_net *n, const struct ratelimit_cfg *rx,
			     const struct ratelimit_cfg *tx)
{
	int ret = 0;

	if ((rx && ratelimit_validate(rx)) || (tx && ratelimit_validate(tx)))
		return -EINVAL;
	lock(n);
	if (rx && !(ret = ratelimit_update(&n->rx_rl, rx)) && n->rx_rl.armed) {
		/* Frames held under the old limits are looked at again under the new ones. */
		ratelimit_disarm(&n->rx_rl);
		if (n->active && flush_pending(n))
			virtio_mmio_notify_used(n->t, n->rxq);
		if (!n->rx_rl.armed && n->pend_count <= VIRTIO_NET_PENDING_MAX / 2)
			set_paused(n, false);
	}
	if (tx && !ret && !(ret = ratelimit_update(&n->tx_rl, tx)) && n->tx_rl.armed) {
		ratelimit_disarm(&n->tx_rl);
		if (n->t && n->active && !n->broken)
			virtio_mmio_queue_yield(n->t, VIRTIO_NET_TXQ);
	}
	unlock(n);
	return ret;
}

void virtio_net_set_link(struct virtio_net *n, bool up)
{
	bool changed;

	lock(n);
	changed = n->link_up != up;
	n->link_up = up;
	n->bounce = false; /* an explicit setting ends a bounce */
	update_status(n);
	if (!up)
		pend_drop_all(n);
	/* §5.1.4, §2.5.1: a status change is a configuration change. */
	if (changed && n->t && n->active)
		virtio_mmio_config_changed(n->t);
	unlock(n);
	if (changed)
		log_info("virtio-net: link %s", up ? "up" : "down");
}

int virtio_net_set_mac_after_restore(struct virtio_net *n, const uint8_t mac[6])
{
	if (!mac_ok(mac))
		return -EINVAL;
	lock(n);
	memcpy(n->config + VIRTIO_NET_CFG_MAC, mac, 6);
	/* §2.5.1: a config change is signalled (a driver that is already up ignores it for the
	 * MAC, see net.h). */
	if (n->t && n->active)
		virtio_mmio_config_changed(n->t);
	unlock(n);
	return 0;
}

bool virtio_net_bounce_link(struct virtio_net *n)
{
	bool bounced = false;

	lock(n);
	/* Without VIRTIO_NET_F_STATUS the driver never reads the field, so a bounce would leave
	 * the link down for good; a link that is down stays down (Ctrl-A n's choice). */
	if (n->t && n->active && !n->broken && n->link_up && has(n, VIRTIO_NET_F_STATUS)) {
		n->link_up = false;
		n->bounce = true;
		update_status(n);
		virtio_mmio_config_changed(n->t);
		bounced = true;
	}
	unlock(n);
	if (bounced)
		log_info("virtio-net: link bounced (down until the driver has seen it)");
	return bounced;
}

bool virtio_net_link_up(struct virtio_net *n)
{
	bool up;

	lock(n);
	up = n->link_up;
	unlock(n);
	return up;
}

void virtio_net_get_stats(struct virtio_net *n, struct virtio_net_stats *out)
{
	lock(n);
	*out = n->stats;
	unlock(n);
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int virtio_net_parse_mac(const char *s, uint8_t mac[6])
{
	uint8_t m[6];

	for (int i = 0; i < 6; i++) {
		int hi = hexval(s[0]), lo = hi < 0 ? -1 : hexval(s[1]);

		if (hi < 0 || lo < 0)
			return -EINVAL;
		m[i] = (uint8_t)(hi << 4 | lo);
		s += 2;
		if (i < 5 && *s++ != ':')
			return -EINVAL;
	}
	if (*s)
		return -EINVAL;
	memcpy(mac, m, 6);
	return 0;
}

void virtio_net_random_mac(uint8_t mac[6])
{
	uint8_t m[6] = { 0 };

	/* Nothing sensible to do if the kernel has no entropy to give: fall back to the time. */
	if (getrandom(m, sizeof(m), 0) != (ssize_t)sizeof(m)) {
		uint64_t v = log_uptime_ms() ^ ((uint64_t)getpid() << 20);

		for (int i = 0; i < 6; i++)
			m[i] = (uint8_t)(v >> (8 * i));
	}
	/* Unicast (bit 0 clear), locally administered (bit 1 set): IEEE 802 §8.2. */
	m[0] = (uint8_t)((m[0] & 0xfc) | 0x02);
	memcpy(mac, m, 6);
}

void virtio_net_destroy(struct virtio_net *n)
{
	if (!n)
		return;
	if (n->rx_watched)
		evloop_del(n->ev, n->rx_rl.timer_fd);
	if (n->tx_watched)
		evloop_del(n->ev, n->tx_rl.timer_fd);
	ratelimit_destroy(&n->rx_rl);
	ratelimit_destroy(&n->tx_rl);
	if (n->be && n->be->ops->destroy)
		n->be->ops->destroy(n->be);
	pend_drop_all(n);
	free(n);
}
