#include "devices/virtio/vsock/vsock.h"

#include "core/devmgr.h"
#include "core/evloop.h"
#include "core/metrics.h"
#include "devices/virtio/mmio.h"
#include "devices/virtio/virtq.h"
#include "devices/virtio/vsock/conn.h"
#include "snapshot/snap.h"
#include "util/log.h"
#include "util/unix_listen.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* epoll tags besides connections ((gen << 32) | slot). */
#define TAG_LISTEN UINT64_MAX
#define TAG_TIMER  (UINT64_MAX - 1)
#define TAG_WAKE   (UINT64_MAX - 2)

/* RSTs owed to the guest for packets that match no connection; more are dropped (the guest's
 * connect times out instead). */
#define ORPHAN_RST_MAX 64
/* Most packets handed to the guest, and host clients accepted, in one pass before the event
 * loop gets a chance to run something else. */
#define RX_BUDGET     256
#define ACCEPT_BUDGET 64
/* Timer period while any connection has a deadline. */
#define TICK_MS 250

struct orphan_rst {
	uint32_t src_port, dst_port; /* as sent: host port, guest port */
};

struct virtio_vsock {
	uint32_t cid;
	char path[VSOCK_PATH_MAX + 1];
	uint8_t config[VSOCK_CFG_SIZE];
	int listen_fd, epfd, timer_fd, wake_fd;
	bool timer_armed;
	struct virtio_mmio *t;
	struct evloop *ev;
	/* Set while the driver has the device activated. */
	bool active;
	struct virtq *rxq, *txq, *evq;
	struct vsock_table tab;
	unsigned rr; /* round-robin start for data */
	struct orphan_rst rst_q[ORPHAN_RST_MAX];
	unsigned rst_head, rst_len;
	bool event_pending;
	/* A restore keeps the configured CID instead of refusing a snapshot with another one
	 * (virtio_vsock_keep_cid_on_restore). */
	bool keep_cid;
	/* One receive buffer popped but not used yet (kept rather than returned unused). */
	bool rx_held;
	struct virtq_elem rx_elem;
	struct virtq_elem tx_elem;
	struct virtq_elem ev_elem;
	struct iovec iov[VIRTQ_ELEM_MAX_SEGS];
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void wake(struct virtio_vsock *v)
{
	uint64_t one = 1;
	ssize_t r = write(v->wake_fd, &one, sizeof(one));

	(void)r; /* counter overflow: a wake is pending anyway */
}

static void arm_timer(struct virtio_vsock *v, bool on)
{
	struct itimerspec its = { 0 };

	if (on == v->timer_armed)
		return;
	if (on) {
		its.it_interval.tv_nsec = TICK_MS * 1000000L;
		its.it_value = its.it_interval;
	}
	if (timerfd_settime(v->timer_fd, 0, &its, NULL) == 0)
		v->timer_armed = on;
}

static void set_deadline(struct virtio_vsock *v, struct vsock_conn *c, uint64_t ms)
{
	c->deadline_ms = now_ms() + ms;
	arm_timer(v, true);
}

/* The device cannot go on with what the driver gave it (§2.1.2). */
static void needs_reset(struct virtio_vsock *v)
{
	v->active = false;
	if (v->t)
		virtio_mmio_set_needs_reset(v->t);
}

/* ---- connections ---- */

static void conn_close_fd(struct virtio_vsock *v, struct vsock_conn *c)
{
	if (c->fd < 0)
		return;
	epoll_ctl(v->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
}

/* Forget a connection without telling the guest (it sent RST, or never heard of it). */
static void conn_drop(struct virtio_vsock *v, struct vsock_conn *c)
{
	conn_close_fd(v, c);
	vsock_conn_free(&v->tab, c);
	METRIC_INC(metrics_vsock.conns_removed);
}

/* Close the host side and owe the guest an OP_RST; the slot is freed once it is sent. */
static void conn_reset(struct virtio_vsock *v, struct vsock_conn *c)
{
	if (c->state == VSOCK_CONN_HOST_CONNECT ||
	    (c->state == VSOCK_CONN_REQUEST_SENT && (c->pending & VSOCK_PEND_REQUEST))) {
		/* The guest never heard of it. */
		conn_drop(v, c);
		return;
	}
	METRIC_INC(metrics_vsock.conns_killed);
	conn_close_fd(v, c);
	vsock_ring_free(&c->out);
	c->state = VSOCK_CONN_CLOSING;
	c->pending = VSOCK_PEND_RST;
	c->readable = c->writable = false;
	set_deadline(v, c, VSOCK_LINGER_TIMEOUT_MS);
}

static void drop_all(struct virtio_vsock *v)
{
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
		struct vsock_conn *c = v->tab.conns[i];

		if (c && c->state != VSOCK_CONN_FREE)
			conn_drop(v, c);
	}
	v->rst_head = v->rst_len = 0;
}

static void queue_orphan_rst(struct virtio_vsock *v, uint32_t src_port, uint32_t dst_port)
{
	if (v->rst_len == ORPHAN_RST_MAX) {
		log_guest("virtio-vsock: too many RSTs owed to the guest; dropping one");
		return;
	}
	v->rst_q[(v->rst_head + v->rst_len) % ORPHAN_RST_MAX] =
		(struct orphan_rst){ src_port, dst_port };
	v->rst_len++;
}

static int conn_watch(struct virtio_vsock *v, struct vsock_conn *c)
{
	struct epoll_event e = {
		.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
		.data.u64 = ((uint64_t)c->gen << 32) | c->slot,
	};

	if (epoll_ctl(v->epfd, EPOLL_CTL_ADD, c->fd, &e) < 0)
		return -errno;
	return 0;
}

/* Write what the ring holds to the host socket; false if the connection was reset. */
static bool conn_flush(struct virtio_vsock *v, struct vsock_conn *c);

/* After any change of shutdown state or buffered bytes: close what can be closed (§5.10.6.5). */
static void conn_progress(struct virtio_vsock *v, struct vsock_conn *c)
{
	if (c->state != VSOCK_CONN_ESTABLISHED)
		return;
	if (c->out.len == 0 && (c->guest_shut & VSOCK_SHUTDOWN_BOTH) == VSOCK_SHUTDOWN_BOTH) {
		/* The guest closed and everything it sent reached the host: close, answer RST. */
		conn_reset(v, c);
		return;
	}
	if (c->out.len == 0 && (c->guest_shut & VSOCK_SHUTDOWN_SEND) && !c->host_wr_closed) {
		/* Half-close: the host reader sees end-of-file, and may still answer. */
		shutdown(c->fd, SHUT_WR);
		c->host_wr_closed = true;
	}
	if (c->hup && (c->guest_shut & VSOCK_SHUTDOWN_RCV)) {
		/* The host closed and the guest reads no more: nothing left to carry. */
		conn_reset(v, c);
		return;
	}
	if (!c->deadline_ms && ((c->host_shut & VSOCK_SHUTDOWN_BOTH) == VSOCK_SHUTDOWN_BOTH ||
				(c->guest_shut & VSOCK_SHUTDOWN_BOTH) == VSOCK_SHUTDOWN_BOTH))
		/* Waiting for the guest's RST, or for the host to drain: not for ever. */
		set_deadline(v, c, VSOCK_LINGER_TIMEOUT_MS);
}

static bool conn_flush(struct virtio_vsock *v, struct vsock_conn *c)
{
	while (c->fd >= 0 && c->out.len) {
		struct iovec iov[2];
		struct msghdr m = { .msg_iov = iov };
		ssize_t r;
		uint32_t n, ctrl;

		m.msg_iovlen = vsock_ring_peek(&c->out, iov);
		r = sendmsg(c->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				c->writable = false;
				break;
			}
			METRIC_INC(metrics_vsock.tx_write_fails);
			conn_reset(v, c);
			return false;
		}
		n = (uint32_t)r;
		vsock_ring_consume(&c->out, n);
		/* The "OK" line ahead of the data is not guest payload. */
		ctrl = n < c->out_ctrl ? n : c->out_ctrl;
		c->out_ctrl -= ctrl;
		c->fwd_cnt += n - ctrl;
	}
	if (vsock_conn_want_credit_update(c))
		c->pending |= VSOCK_PEND_CREDIT_UPDATE;
	conn_progress(v, c);
	return c->state == VSOCK_CONN_ESTABLISHED;
}

/* ---- host -> guest: the receive queue ---- */

/* Make sure a receive buffer is in hand: 1 yes, 0 none posted, -1 the queue is broken. */
static int rx_get(struct virtio_vsock *v)
{
	int ret;

	if (v->rx_held)
		return 1;
	ret = virtq_pop(v->rxq, &v->rx_elem);
	if (ret == 0)
		return 0;
	if (ret < 0) {
		needs_reset(v);
		return -1;
	}
	if (v->rx_elem.in_len < VSOCK_HDR_BYTES) {
		log_guest("virtio-vsock: receive buffer of %u writable bytes", v->rx_elem.in_len);
		needs_reset(v);
		return -1;
	}
	v->rx_held = true;
	return 1;
}

static void rx_push(struct virtio_vsock *v, const struct vsock_hdr *h)
{
	uint8_t raw[VSOCK_HDR_BYTES];

	vsock_hdr_encode(h, raw);
	virtq_elem_write(&v->rx_elem, 0, raw, sizeof(raw));
	virtq_push(v->rxq, v->rx_elem.head, VSOCK_HDR_BYTES + h->len);
	v->rx_held = false;
	METRIC_INC(metrics_vsock.rx_packets_count);
	METRIC_ADD(metrics_vsock.rx_bytes_count, h->len);
}

static void conn_hdr(struct virtio_vsock *v, struct vsock_conn *c, uint16_t op, struct vsock_hdr *h)
{
	*h = (struct vsock_hdr){
		.src_cid = VSOCK_CID_HOST,
		.dst_cid = v->cid,
		.src_port = c->local_port,
		.dst_port = c->peer_port,
		.type = VSOCK_TYPE_STREAM,
		.op = op,
		.buf_alloc = VSOCK_CONN_BUF_ALLOC,
		.fwd_cnt = c->fwd_cnt,
	};
	/* Every packet tells the guest our credit (§5.10.6.3). */
	c->fwd_cnt_sent = c->fwd_cnt;
	c->pending &= ~VSOCK_PEND_CREDIT_UPDATE;
}

/* Send the most urgent control packet `c` owes (an rx buffer is in hand). */
static void send_control(struct virtio_vsock *v, struct vsock_conn *c)
{
	struct vsock_hdr h;

	if (c->pending & VSOCK_PEND_RST) {
		conn_hdr(v, c, VSOCK_OP_RST, &h);
		rx_push(v, &h);
		conn_drop(v, c);
		return;
	}
	if (c->pending & VSOCK_PEND_REQUEST) {
		c->pending &= ~VSOCK_PEND_REQUEST;
		conn_hdr(v, c, VSOCK_OP_REQUEST, &h);
	} else if (c->pending & VSOCK_PEND_RESPONSE) {
		c->pending &= ~VSOCK_PEND_RESPONSE;
		conn_hdr(v, c, VSOCK_OP_RESPONSE, &h);
	} else if (c->pending & VSOCK_PEND_SHUTDOWN) {
		c->pending &= ~VSOCK_PEND_SHUTDOWN;
		conn_hdr(v, c, VSOCK_OP_SHUTDOWN, &h);
		h.flags = c->shut_flags;
	} else if (c->pending & VSOCK_PEND_CREDIT_REQUEST) {
		c->pending &= ~VSOCK_PEND_CREDIT_REQUEST;
		conn_hdr(v, c, VSOCK_OP_CREDIT_REQUEST, &h);
	} else {
		c->pending &= ~VSOCK_PEND_CREDIT_UPDATE;
		conn_hdr(v, c, VSOCK_OP_CREDIT_UPDATE, &h);
	}
	rx_push(v, &h);
}

static bool wants_data(struct vsock_conn *c)
{
	return c->state == VSOCK_CONN_ESTABLISHED && c->fd >= 0 && c->readable &&
	       !(c->guest_shut & VSOCK_SHUTDOWN_RCV) && !(c->host_shut & VSOCK_SHUTDOWN_SEND);
}

/* Read from the host socket straight into the receive buffer in hand. */
static void send_data(struct virtio_vsock *v, struct vsock_conn *c, uint32_t credit)
{
	struct virtq_elem *e = &v->rx_elem;
	uint32_t n = e->in_len - VSOCK_HDR_BYTES;
	struct vsock_hdr h;
	int nio;
	ssize_t r;

	if (n > credit)
		n = credit;
	if (n > VSOCK_MAX_PKT_LEN)
		n = VSOCK_MAX_PKT_LEN;
	nio = virtq_iov_slice(e->iov + e->nr_out, e->nr_in, VSOCK_HDR_BYTES, n, v->iov,
			      VIRTQ_ELEM_MAX_SEGS);
	if (nio <= 0) {
		/* A receive buffer with no room after the header can carry no data. */
		log_guest("virtio-vsock: receive buffer too small for data (%u bytes)", e->in_len);
		needs_reset(v);
		return;
	}
	do
		r = readv(c->fd, v->iov, nio);
	while (r < 0 && errno == EINTR);
	if (r < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			c->readable = false;
			return;
		}
		METRIC_INC(metrics_vsock.rx_read_fails);
		conn_reset(v, c);
		return;
	}
	if (r == 0) {
		/* End of file: the host sends no more; after a full close it receives no more
		 * either (§5.10.6.5). */
		c->readable = false;
		c->host_shut |= VSOCK_SHUTDOWN_SEND;
		if (c->hup)
			c->host_shut |= VSOCK_SHUTDOWN_RCV;
		c->shut_flags = c->host_shut;
		c->pending |= VSOCK_PEND_SHUTDOWN;
		conn_progress(v, c);
		return;
	}
	conn_hdr(v, c, VSOCK_OP_RW, &h);
	h.len = (uint32_t)r;
	rx_push(v, &h);
	c->tx_cnt += (uint32_t)r;
}

/* Fill the guest's receive queue: owed RSTs, control packets, then data round-robin. */
static void rx_pass(struct virtio_vsock *v)
{
	bool pushed = false;
	unsigned sent = 0;

	if (!v->active || !v->rxq)
		return;
	while (v->active) {
		struct vsock_conn *c = NULL;
		uint32_t credit = 0;
		int got;

		if (sent >= RX_BUDGET) {
			wake(v); /* come back after others had a turn */
			break;
		}
		if (!v->rst_len) {
			/* A connection that owes a control packet, else one with data to send. */
			for (unsigned i = 0; i < VSOCK_MAX_CONNS && !c; i++) {
				struct vsock_conn *x = v->tab.conns[i];

				if (x && x->state != VSOCK_CONN_FREE && x->pending &&
				    !(x->state == VSOCK_CONN_HOST_CONNECT))
					c = x;
			}
			for (unsigned k = 0; k < VSOCK_MAX_CONNS && !c; k++) {
				unsigned i = (v->rr + k) % VSOCK_MAX_CONNS;
				struct vsock_conn *x = v->tab.conns[i];

				if (!x || !wants_data(x))
					continue;
				credit = vsock_conn_peer_credit(x);
				if (credit) {
					c = x;
					v->rr = i + 1;
				} else if (!x->credit_requested) {
					/* Stalled on credit: ask once (§5.10.6.3). */
					x->credit_requested = true;
					x->pending |= VSOCK_PEND_CREDIT_REQUEST;
					c = x;
				}
			}
			if (!c)
				break;
		}
		got = rx_get(v);
		if (got <= 0)
			break; /* no buffers: host sockets wait until the guest posts some */
		if (v->rst_len) {
			struct orphan_rst *o = &v->rst_q[v->rst_head];
			struct vsock_hdr h = {
				.src_cid = VSOCK_CID_HOST,
				.dst_cid = v->cid,
				.src_port = o->src_port,
				.dst_port = o->dst_port,
				.type = VSOCK_TYPE_STREAM,
				.op = VSOCK_OP_RST,
			};

			v->rst_head = (v->rst_head + 1) % ORPHAN_RST_MAX;
			v->rst_len--;
			rx_push(v, &h);
		} else if (c->pending) {
			send_control(v, c);
		} else {
			bool was_held = v->rx_held;

			send_data(v, c, credit);
			if (was_held && v->rx_held) {
				continue; /* nothing read; the buffer is still in hand */
			}
		}
		pushed = true;
		sent++;
	}
	if (pushed && v->t)
		virtio_mmio_notify_used(v->t, v->rxq);
}

/* ---- guest -> host: the transmit queue ---- */

static void reply_rst(struct virtio_vsock *v, const struct vsock_hdr *h)
{
	if (h->op != VSOCK_OP_RST) /* never answer an RST with one */
		queue_orphan_rst(v, h->dst_port, h->src_port);
}

/* A guest connect to host port h->dst_port: a Unix connection to PATH_<port>. */
static void guest_connect(struct virtio_vsock *v, const struct vsock_hdr *h)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	struct vsock_conn *c;
	int fd;

	c = vsock_conn_alloc(&v->tab);
	if (!c) {
		log_guest("virtio-vsock: connection table full; refusing port %u", h->dst_port);
		reply_rst(v, h);
		return;
	}
	snprintf(a.sun_path, sizeof(a.sun_path), "%s_%u", v->path, h->dst_port);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	/* A Unix stream connect never waits: it succeeds, or fails (EAGAIN: backlog full). */
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		log_debug("virtio-vsock: guest port %u -> %s: %s", h->src_port, a.sun_path,
			  strerror(errno));
		if (fd >= 0)
			close(fd);
		vsock_conn_free(&v->tab, c);
		reply_rst(v, h);
		return;
	}
	c->fd = fd;
	c->state = VSOCK_CONN_ESTABLISHED;
	c->local_port = h->dst_port;
	c->peer_port = h->src_port;
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
	c->writable = true;
	if (conn_watch(v, c)) {
		conn_drop(v, c);
		reply_rst(v, h);
		return;
	}
	c->pending |= VSOCK_PEND_RESPONSE;
	METRIC_INC(metrics_vsock.conns_added);
}

/* OP_RW payload from the guest: to the host socket, or into the bounded ring behind it. */
static void guest_data(struct virtio_vsock *v, struct vsock_conn *c, uint32_t len)
{
	struct virtq_elem *e = &v->tx_elem;
	uint32_t done = 0;
	int nio, ret;

	if (!len)
		return;
	METRIC_ADD(metrics_vsock.tx_bytes_count, len);
	c->rx_cnt += len;
	if (c->out.len == 0) {
		struct msghdr m = { .msg_iov = v->iov };
		ssize_t r;

		nio = virtq_iov_slice(e->iov, e->nr_out, VSOCK_HDR_BYTES, len, v->iov,
				      VIRTQ_ELEM_MAX_SEGS);
		if (nio < 0) {
			conn_reset(v, c);
			return;
		}
		m.msg_iovlen = (size_t)nio;
		do
			r = sendmsg(c->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
		while (r < 0 && errno == EINTR);
		if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
			METRIC_INC(metrics_vsock.tx_write_fails);
			conn_reset(v, c);
			return;
		}
		if (r < 0)
			c->writable = false;
		done = r > 0 ? (uint32_t)r : 0;
		c->fwd_cnt += done;
	}
	if (done < len) {
		nio = virtq_iov_slice(e->iov, e->nr_out, VSOCK_HDR_BYTES + done, len - done, v->iov,
				      VIRTQ_ELEM_MAX_SEGS);
		ret = nio < 0 ? -EINVAL
			      : vsock_ring_put_iov(&c->out,
						   VSOCK_CONN_BUF_ALLOC + VSOCK_CONN_BUF_SLACK,
						   v->iov, (unsigned)nio, len - done);
		if (ret == 0 && c->out.len - c->out_ctrl > VSOCK_CONN_BUF_ALLOC)
			ret = -ENOBUFS;
		if (ret) {
			log_guest("virtio-vsock: port %u: guest sent beyond its credit (%s)",
				  c->local_port, strerror(-ret));
			conn_reset(v, c);
			return;
		}
		if (c->writable && !conn_flush(v, c))
			return;
	}
	if (vsock_conn_want_credit_update(c))
		c->pending |= VSOCK_PEND_CREDIT_UPDATE;
}

/* One packet from the transmit queue.  Malformed packets are dropped or answered with RST;
 * none stops the device. */
static void tx_packet(struct virtio_vsock *v)
{
	struct virtq_elem *e = &v->tx_elem;
	uint8_t raw[VSOCK_HDR_BYTES];
	struct vsock_conn *c;
	struct vsock_hdr h;

	METRIC_INC(metrics_vsock.tx_packets_count);
	if (e->out_len < VSOCK_HDR_BYTES) {
		log_guest("virtio-vsock: transmit buffer of %u bytes, no header", e->out_len);
		return;
	}
	virtq_elem_read(e, 0, raw, sizeof(raw));
	vsock_hdr_decode(raw, &h);
	/* Addressing: only this guest, only to the host.  Anything else is not answered. */
	if (h.src_cid != v->cid || h.dst_cid != VSOCK_CID_HOST) {
		log_guest("virtio-vsock: packet from CID %llu to CID %llu dropped",
			  (unsigned long long)h.src_cid, (unsigned long long)h.dst_cid);
		return;
	}
	c = vsock_conn_find(&v->tab, h.dst_port, h.src_port);
	/* A length the chain does not hold, a payload on anything but RW, an unknown type:
	 * the stream can no longer be trusted. */
	if (h.len > e->out_len - VSOCK_HDR_BYTES || h.len > VSOCK_MAX_PKT_LEN ||
	    (h.len && h.op != VSOCK_OP_RW) || h.type != VSOCK_TYPE_STREAM) {
		log_guest("virtio-vsock: bad packet (op %u type %u len %u in %u bytes)", h.op,
			  h.type, h.len, e->out_len);
		if (c)
			conn_reset(v, c);
		else
			reply_rst(v, &h);
		return;
	}
	if (c) {
		/* §5.10.6.3: every packet carries the sender's credit. */
		c->peer_buf_alloc = h.buf_alloc;
		c->peer_fwd_cnt = h.fwd_cnt;
		if (vsock_conn_peer_credit(c))
			c->credit_requested = false;
	}
	switch (h.op) {
	case VSOCK_OP_REQUEST:
		if (c) {
			log_guest("virtio-vsock: second REQUEST for port %u", h.dst_port);
			conn_reset(v, c);
			return;
		}
		guest_connect(v, &h);
		return;
	case VSOCK_OP_RESPONSE:
		if (!c || c->state != VSOCK_CONN_REQUEST_SENT ||
		    (c->pending & VSOCK_PEND_REQUEST)) {
			if (c)
				conn_reset(v, c);
			else
				reply_rst(v, &h);
			return;
		} else {
			char ok[VSOCK_CONN_BUF_SLACK];
			int n = snprintf(ok, sizeof(ok), "OK %u\n", c->local_port);

			c->state = VSOCK_CONN_ESTABLISHED;
			c->deadline_ms = 0;
			METRIC_INC(metrics_vsock.conns_added);
			if (vsock_ring_put(&c->out, VSOCK_CONN_BUF_ALLOC + VSOCK_CONN_BUF_SLACK, ok,
					   (size_t)n)) {
				conn_reset(v, c);
				return;
			}
			c->out_ctrl = (uint32_t)n;
			conn_flush(v, c);
		}
		return;
	case VSOCK_OP_RST:
		if (c)
			conn_drop(v, c);
		return;
	case VSOCK_OP_SHUTDOWN:
		if (!c || c->state != VSOCK_CONN_ESTABLISHED) {
			if (c)
				conn_reset(v, c);
			else
				reply_rst(v, &h);
			return;
		}
		c->guest_shut |= h.flags & VSOCK_SHUTDOWN_BOTH;
		conn_progress(v, c);
		return;
	case VSOCK_OP_RW:
		if (!c || c->state != VSOCK_CONN_ESTABLISHED ||
		    (c->guest_shut & VSOCK_SHUTDOWN_SEND)) {
			if (c)
				conn_reset(v, c);
			else
				reply_rst(v, &h);
			return;
		}
		guest_data(v, c, h.len);
		return;
	case VSOCK_OP_CREDIT_UPDATE:
		if (!c)
			reply_rst(v, &h);
		return;
	case VSOCK_OP_CREDIT_REQUEST:
		if (!c)
			reply_rst(v, &h);
		else
			c->pending |= VSOCK_PEND_CREDIT_UPDATE;
		return;
	default:
		log_guest("virtio-vsock: unknown op %u", h.op);
		if (c)
			conn_reset(v, c);
		else
			reply_rst(v, &h);
		return;
	}
}

static void tx_pass(struct virtio_vsock *v)
{
	bool pushed = false;

	for (unsigned n = 0; v->active && v->txq; n++) {
		int ret;

		if (n == VIRTIO_QUEUE_BUDGET) {
			if (v->t)
				virtio_mmio_queue_yield(v->t, VSOCK_QUEUE_TX);
			break;
		}
		ret = virtq_pop(v->txq, &v->tx_elem);
		if (ret == 0)
			break;
		if (ret < 0) {
			needs_reset(v);
			break;
		}
		tx_packet(v);
		virtq_push(v->txq, v->tx_elem.head, 0);
		pushed = true;
	}
	if (pushed && v->t)
		virtio_mmio_notify_used(v->t, v->txq);
}

/* ---- the event queue ---- */

static void event_pass(struct virtio_vsock *v)
{
	struct virtq_elem *e = &v->ev_elem;
	uint8_t ev[VSOCK_EVENT_BYTES];
	int ret;

	if (!v->event_pending || !v->active || !v->evq || !v->evq->ready)
		return;
	ret = virtq_pop(v->evq, e);
	if (ret == 0)
		return;
	if (ret < 0 || e->in_len < VSOCK_EVENT_BYTES) {
		if (ret > 0)
			log_guest("virtio-vsock: event buffer of %u bytes", e->in_len);
		needs_reset(v);
		return;
	}
	virtio_put_le(ev, VSOCK_EVENT_TRANSPORT_RESET, 4);
	virtq_elem_write(e, 0, ev, sizeof(ev));
	virtq_push(v->evq, e->head, sizeof(ev));
	v->event_pending = false;
	if (v->t)
		virtio_mmio_notify_used(v->t, v->evq);
}

/* ---- host clients on PATH ---- */

/* "CONNECT <port>\n" (a "\r" before the newline is tolerated); -EINVAL otherwise. */
static int parse_connect(const char *s, size_t len, uint32_t *port)
{
	static const char prefix[] = "CONNECT ";
	uint64_t p = 0;
	size_t i = sizeof(prefix) - 1, digits = 0;

	if (len < i || memcmp(s, prefix, i))
		return -EINVAL;
	for (; i < len && s[i] >= '0' && s[i] <= '9'; i++, digits++) {
		p = p * 10 + (uint64_t)(s[i] - '0');
		if (p > UINT32_MAX)
			return -EINVAL;
	}
	if (i < len && s[i] == '\r')
		i++;
	if (!digits || i + 1 != len || s[i] != '\n')
		return -EINVAL;
	*port = (uint32_t)p;
	return 0;
}

/* Read the client's CONNECT line without consuming any byte after it (those are data). */
static void host_connect_line(struct virtio_vsock *v, struct vsock_conn *c)
{
	for (;;) {
		char buf[sizeof(c->line)];
		size_t room = sizeof(c->line) - 1 - c->line_len;
		char *nl;
		uint32_t port;
		ssize_t r, take;

		r = recv(c->fd, buf, room, MSG_PEEK | MSG_DONTWAIT);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			c->readable = false;
			return;
		}
		if (r <= 0) {
			conn_drop(v, c); /* the client went away */
			return;
		}
		nl = memchr(buf, '\n', (size_t)r);
		take = nl ? nl - buf + 1 : r;
		if (recv(c->fd, c->line + c->line_len, (size_t)take, MSG_DONTWAIT) != take) {
			conn_drop(v, c);
			return;
		}
		c->line_len += (unsigned)take;
		if (!nl) {
			if (c->line_len >= sizeof(c->line) - 1) {
				log_warn("virtio-vsock: host client sent no CONNECT line");
				conn_drop(v, c);
				return;
			}
			continue;
		}
		if (parse_connect(c->line, c->line_len, &port)) {
			log_warn("virtio-vsock: host client: bad CONNECT line");
			conn_drop(v, c);
			return;
		}
		c->line_len = 0;
		c->peer_port = port;
		c->local_port = vsock_table_ephemeral(&v->tab, port);
		c->state = VSOCK_CONN_REQUEST_SENT;
		c->pending |= VSOCK_PEND_REQUEST;
		c->readable = true; /* bytes after the line may wait; not seen EAGAIN yet */
		set_deadline(v, c, VSOCK_REQUEST_TIMEOUT_MS);
		return;
	}
}

static void accept_clients(struct virtio_vsock *v)
{
	for (unsigned n = 0; n < ACCEPT_BUDGET; n++) {
		int fd = accept4(v->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct vsock_conn *c;

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				log_warn("virtio-vsock: accept on %s: %s", v->path,
					 strerror(errno));
			return;
		}
		/* No driver yet, or no room: the client sees its connection closed. */
		c = v->active ? vsock_conn_alloc(&v->tab) : NULL;
		if (!c) {
			log_info("virtio-vsock: host connection refused (%s)",
				 v->active ? "too many connections" : "guest driver not ready");
			close(fd);
			continue;
		}
		c->fd = fd;
		c->host_init = true;
		c->state = VSOCK_CONN_HOST_CONNECT;
		if (conn_watch(v, c)) {
			conn_drop(v, c);
			continue;
		}
		set_deadline(v, c, VSOCK_CONNECT_LINE_TIMEOUT_MS);
	}
	/* More may be waiting: the listener is level-triggered, so the loop comes back. */
}

static void conn_event(struct virtio_vsock *v, struct vsock_conn *c, uint32_t events)
{
	if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		c->readable = true;
	if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
		c->writable = true;
	if (events & (EPOLLHUP | EPOLLERR))
		c->hup = true;
	switch (c->state) {
	case VSOCK_CONN_HOST_CONNECT:
		if (c->readable)
			host_connect_line(v, c);
		return;
	case VSOCK_CONN_REQUEST_SENT:
		if (c->hup)
			conn_reset(v, c); /* the client gave up before the guest answered */
		return;
	case VSOCK_CONN_ESTABLISHED:
		if (c->writable && c->out.len && !conn_flush(v, c))
			return;
		conn_progress(v, c);
		return;
	default:
		return;
	}
}

void virtio_vsock_tick(struct virtio_vsock *v, uint64_t now)
{
	bool any = false;

	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
		struct vsock_conn *c = v->tab.conns[i];

		if (!c || c->state == VSOCK_CONN_FREE || !c->deadline_ms)
			continue;
		if (now < c->deadline_ms) {
			any = true;
			continue;
		}
		c->deadline_ms = 0;
		switch (c->state) {
		case VSOCK_CONN_HOST_CONNECT:
			log_info("virtio-vsock: host client sent no CONNECT line in time");
			conn_drop(v, c);
			break;
		case VSOCK_CONN_CLOSING:
			/* The guest never took its RST (no receive buffers): forget it. */
			conn_drop(v, c);
			break;
		default:
			/* No RESPONSE in time, or a close that never finished. */
			conn_reset(v, c);
			any = true;
			break;
		}
	}
	if (!any)
		arm_timer(v, false);
	rx_pass(v);
}

static void handle_events(struct virtio_vsock *v, const struct epoll_event *evs, int n);

void virtio_vsock_poll(struct virtio_vsock *v)
{
	struct epoll_event evs[64];
	int n;

	if (v->t)
		virtio_mmio_lock(v->t);
	/* A few rounds: a client accepted in one round has its first bytes seen in the next. */
	for (int round = 0; round < 4 && (n = epoll_wait(v->epfd, evs, 64, 0)) > 0; round++) {
		handle_events(v, evs, n);
	}
	rx_pass(v);
	if (v->t)
		virtio_mmio_unlock(v->t);
}

static void handle_events(struct virtio_vsock *v, const struct epoll_event *evs, int n)
{
	for (int i = 0; i < n; i++) {
		uint64_t tag = evs[i].data.u64, cnt;
		struct vsock_conn *c;
		ssize_t r;

		if (tag == TAG_LISTEN) {
			accept_clients(v);
		} else if (tag == TAG_TIMER) {
			r = read(v->timer_fd, &cnt, sizeof(cnt));
			(void)r;
			virtio_vsock_tick(v, now_ms());
		} else if (tag == TAG_WAKE) {
			r = read(v->wake_fd, &cnt, sizeof(cnt));
			(void)r;
		} else {
			c = vsock_conn_get(&v->tab, (unsigned)(tag & 0xffffffffu),
					   (uint32_t)(tag >> 32));
			if (c)
				conn_event(v, c, evs[i].events);
		}
	}
}

static void poll_cb(void *opaque, uint32_t events)
{
	virtio_vsock_poll(opaque);
}

/* ---- virtio ops ---- */

static uint64_t vsock_features(void *dev)
{
	/* Stream only: without VIRTIO_VSOCK_F_SEQPACKET the driver assumes streams (§5.10.3). */
	return VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC) |
	       VIRTIO_BIT(VIRTIO_F_EVENT_IDX);
}

static uint64_t vsock_config_read(void *dev, uint32_t off, unsigned size)
{
	struct virtio_vsock *v = dev;

	return virtio_config_get(v->config, sizeof(v->config), off, size);
}

static void vsock_config_write(void *dev, uint32_t off, unsigned size, uint64_t val)
{
	log_guest("virtio-vsock: config write at %u ignored", off);
}

static int vsock_activate(void *dev, struct virtio_mmio *t, uint64_t features, struct virtq *vqs,
			  unsigned nr)
{
	struct virtio_vsock *v = dev;

	if (nr < VSOCK_NUM_QUEUES || !vqs[VSOCK_QUEUE_RX].ready || !vqs[VSOCK_QUEUE_TX].ready) {
		log_guest("virtio-vsock: DRIVER_OK without receive and transmit queues");
		return -EINVAL;
	}
	v->rxq = &vqs[VSOCK_QUEUE_RX];
	v->txq = &vqs[VSOCK_QUEUE_TX];
	v->evq = &vqs[VSOCK_QUEUE_EVENT];
	v->rx_held = false;
	v->active = true;
	/* A TRANSPORT_RESET owed since a restore goes out as soon as there is an event buffer
	 * (Linux posts them at probe, so usually at once). */
	event_pass(v);
	return 0;
}

static void vsock_queue_notify(void *dev, unsigned q)
{
	struct virtio_vsock *v = dev;

	if (!v->active)
		return;
	switch (q) {
	case VSOCK_QUEUE_RX:
		METRIC_INC(metrics_vsock.rx_queue_event_count);
		break; /* new receive buffers: the pass below uses them */
	case VSOCK_QUEUE_TX:
		METRIC_INC(metrics_vsock.tx_queue_event_count);
		tx_pass(v);
		break;
	case VSOCK_QUEUE_EVENT:
		event_pass(v);
		break;
	default:
		return;
	}
	rx_pass(v);
	event_pass(v);
}

static void vsock_reset(void *dev)
{
	struct virtio_vsock *v = dev;

	drop_all(v);
	v->active = false;
	v->rxq = v->txq = v->evq = NULL;
	v->rx_held = false;
	v->event_pending = false;
}

static void vsock_destroy_op(void *dev)
{
	virtio_vsock_destroy(dev);
}

/* Close every connection's host socket, with no RST per connection, and owe the guest one
 * TRANSPORT_RESET event (§5.10.6.7) instead: the driver then drops all its connections at once
 * and re-reads guest_cid.  Under the transport lock. */
static void transport_reset_locked(struct virtio_vsock *v)
{
	drop_all(v);
	v->event_pending = true;
	event_pass(v);
}

/* ---- snapshots ----
 *
 * SNAP_REC_VIRTIO_VSOCK, version 1 (the transport saves status, features and queues):
 *   u64 guest_cid, bool event_pending (a TRANSPORT_RESET waiting for an event buffer).
 * Connections are not saved: their host sockets belong to the process that took the
 * snapshot.  A restore drops whatever connection state the device has and always owes the
 * guest a TRANSPORT_RESET, so the guest resets the connections it still believes in (and its
 * listeners keep listening); the event is posted once the device is activated.  (A driver that
 * had not set DRIVER_OK yet resets the device before it does, which forgets the event: it has
 * no connections to drop.) */
#define VIRTIO_VSOCK_STATE_VERSION 1

/* Transmit and event chains are popped and pushed within one call; the receive buffer kept in
 * hand between passes (rx_held: a socket had nothing to read after all) goes back to the
 * driver's ring, unused, so that the snapshot's queue state has it available again. */
static void vsock_quiesce(void *dev)
{
	struct virtio_vsock *v = dev;

	if (v->rx_held && v->rxq)
		virtq_unpop(v->rxq, 1); /* rx_get pops nothing while one is held: it is the last */
	v->rx_held = false;
}

static int vsock_save(void *dev, struct snap_writer *w, const char *id)
{
	struct virtio_vsock *v = dev;

	if (v->rx_held)
		return -EBUSY; /* not quiesced */
	snap_rec_begin(w, SNAP_REC_VIRTIO_VSOCK, VIRTIO_VSOCK_STATE_VERSION, id);
	snap_put_u64(w, v->cid);
	snap_put_bool(w, v->event_pending);
	return w->err;
}

/* The guest CID must be the configured one: a guest that silently changed address would break
 * whoever reaches it by CID, and two restored copies of one VM would claim the same CID.  A
 * clone given its own CID says so with virtio_vsock_keep_cid_on_restore(): the configured CID
 * then stands, and the guest learns it from the TRANSPORT_RESET event (Linux's driver re-reads
 * guest_cid when it gets one). */
static int vsock_restore(void *dev, const struct snap_file *f, const char *id)
{
	struct virtio_vsock *v = dev;
	struct snap_reader r;
	uint64_t cid;

	if (snap_file_find(f, SNAP_REC_VIRTIO_VSOCK, id, &r))
		return -EINVAL;
	if (r.version != VIRTIO_VSOCK_STATE_VERSION) {
		log_warn("virtio-vsock: %s: state version %u, this build reads %u", id, r.version,
			 VIRTIO_VSOCK_STATE_VERSION);
		return -EINVAL;
	}
	cid = snap_get_u64(&r);
	/* event_pending is in the record to describe the snapshot; a restore owes the guest the
	 * reset event either way. */
	(void)snap_get_bool(&r);
	if (cid < VSOCK_CID_MIN || cid >= VSOCK_CID_ANY)
		snap_fail(&r);
	if (snap_reader_done(&r)) {
		log_warn("virtio-vsock: %s: invalid state record", id);
		return -EINVAL;
	}
	if (cid != v->cid && !v->keep_cid) {
		log_warn("virtio-vsock: %s: the snapshot's guest CID is %llu, this VM's %u", id,
			 (unsigned long long)cid, v->cid);
		return -EINVAL;
	}
	if (v->t)
		virtio_mmio_lock(v->t);
	v->rx_held = false;
	transport_reset_locked(v);
	if (v->t)
		virtio_mmio_unlock(v->t);
	return 0;
}

/* Socket events on the event loop signal and lock through the transport. */
static void vsock_set_transport(void *dev, struct virtio_mmio *t)
{
	struct virtio_vsock *v = dev;

	v->t = t;
}

const struct virtio_device_ops virtio_vsock_ops = {
	.name = "virtio-vsock",
	.device_id = VIRTIO_ID_VSOCK,
	.num_queues = VSOCK_NUM_QUEUES,
	.queue_max_size = VIRTIO_VSOCK_QUEUE_SIZE,
	.features = vsock_features,
	.set_transport = vsock_set_transport,
	.config_read = vsock_config_read,
	.config_write = vsock_config_write,
	.activate = vsock_activate,
	.queue_notify = vsock_queue_notify,
	.reset = vsock_reset,
	.quiesce = vsock_quiesce,
	.save = vsock_save,
	.restore = vsock_restore,
	.rec = { SNAP_REC_VIRTIO_VSOCK, VIRTIO_VSOCK_STATE_VERSION },
	.destroy = vsock_destroy_op,
};

/* ---- life cycle ---- */

static int watch(int epfd, int fd, uint32_t events, uint64_t tag)
{
	struct epoll_event e = { .events = events, .data.u64 = tag };

	return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &e) < 0 ? -errno : 0;
}

int virtio_vsock_create(uint32_t cid, const char *path, struct virtio_vsock **out)
{
	struct virtio_vsock *v;
	int ret;

	if (cid < VSOCK_CID_MIN || cid == VSOCK_CID_ANY)
		return -EINVAL;
	if (!path || !*path)
		return -EINVAL;
	if (strlen(path) > VSOCK_PATH_MAX)
		return -ENAMETOOLONG;
	v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	v->cid = cid;
	snprintf(v->path, sizeof(v->path), "%s", path);
	virtio_put_le(v->config + VSOCK_CFG_GUEST_CID, cid, 8);
	vsock_table_init(&v->tab);
	v->listen_fd = v->timer_fd = v->wake_fd = -1;
	v->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (v->epfd < 0) {
		ret = -errno;
		goto free_dev;
	}
	v->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	v->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (v->timer_fd < 0 || v->wake_fd < 0) {
		ret = -errno;
		goto close_fds;
	}
	ret = unix_listen(path, 128, -1);
	if (ret < 0)
		goto close_fds;
	v->listen_fd = ret;
	ret = watch(v->epfd, v->listen_fd, EPOLLIN, TAG_LISTEN);
	if (!ret)
		ret = watch(v->epfd, v->timer_fd, EPOLLIN, TAG_TIMER);
	if (!ret)
		ret = watch(v->epfd, v->wake_fd, EPOLLIN, TAG_WAKE);
	if (ret)
		goto unlink_path;
	*out = v;
	return 0;

unlink_path:
	close(v->listen_fd);
	unlink(path);
close_fds:
	if (v->timer_fd >= 0)
		close(v->timer_fd);
	if (v->wake_fd >= 0)
		close(v->wake_fd);
	close(v->epfd);
free_dev:
	free(v);
	return ret;
}

int virtio_vsock_add(struct devmgr *dm, uint32_t cid, const char *path, struct virtio_vsock **out)
{
	struct virtio_vsock *v;
	int ret;

	ret = virtio_vsock_create(cid, path, &v);
	if (ret)
		return ret;
	ret = virtio_mmio_add(dm, "virtio-vsock0", &virtio_vsock_ops, v, NULL);
	if (ret) {
		virtio_vsock_destroy(v);
		return ret;
	}
	if (dm->ev) {
		/* From here the transport owns v: destroying the manager frees it. */
		ret = evloop_add(dm->ev, v->epfd, EPOLLIN, poll_cb, v);
		if (ret)
			return ret;
		v->ev = dm->ev;
	}
	if (out)
		*out = v;
	return 0;
}

int virtio_vsock_poll_fd(const struct virtio_vsock *v)
{
	return v->epfd;
}

void virtio_vsock_transport_reset(struct virtio_vsock *v)
{
	if (v->t)
		virtio_mmio_lock(v->t);
	transport_reset_locked(v);
	if (v->t)
		virtio_mmio_unlock(v->t);
}

void virtio_vsock_keep_cid_on_restore(struct virtio_vsock *v, bool keep)
{
	v->keep_cid = keep;
}

unsigned virtio_vsock_nr_conns(const struct virtio_vsock *v)
{
	return v->tab.nr_live;
}

void virtio_vsock_destroy(struct virtio_vsock *v)
{
	if (!v)
		return;
	if (v->ev)
		evloop_del(v->ev, v->epfd);
	drop_all(v);
	vsock_table_destroy(&v->tab);
	close(v->listen_fd);
	unlink(v->path);
	close(v->timer_fd);
	close(v->wake_fd);
	close(v->epfd);
	free(v);
}
