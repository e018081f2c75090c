#include "net/slirp.h"

#include "api/mmds.h"
#include "api/http.h"
#include "core/evloop.h"
#include "net/backend.h"
#include "net/mmds_net.h"
#include "util/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libslirp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

/* How slirp is driven from an epoll loop: slirp only knows poll(2)-style rounds
 * (slirp_pollfds_fill, then slirp_pollfds_poll).  After every round the (fd, events) list it
 * asked for is mirrored into a private epoll set, itself watched by the event loop, and a
 * timerfd is armed for slirp's timeout and timers.  When either fires, one poll(2) with a zero
 * timeout over the list gives slirp its revents, and the next round begins. */

struct slirp_timer {
	struct slirp_timer *next;
	SlirpTimerCb cb;
	void *cb_opaque;
	int64_t expire_ms; /* -1: not armed */
};

struct reg {
	int fd;
	uint32_t events;
};

struct net_slirp {
	struct net_backend be;
	Slirp *slirp;
	struct evloop *ev;
	int epfd;     /* slirp's sockets */
	int timer_fd; /* next slirp deadline */
	int wake_fd;  /* another round is wanted (guest sent, rx resumed) */
	bool started;
	bool want_rx;	    /* atomic: the device has room for frames */
	bool round_pending; /* wake_fd already written */
	bool dirty;	    /* slirp opened or closed a socket since the last sync */
	struct pollfd *pfds;
	unsigned npfds, cap_pfds;
	struct reg *regs; /* what epfd holds */
	unsigned nregs, cap_regs;
	struct slirp_timer *timers;
	int64_t armed_ns; /* deadline timer_fd is set to, or -1 */
	/* MMDS (net_slirp_add_mmds): its HTTP server, the guest-visible address and the
	 * in-network address slirp forwards to the server (host order), a frame buffer for
	 * rewriting copies (never the device's buffer, which may be guest memory). */
	struct mmds_http *mmds;
	uint32_t mmds_ip, mmds_fwd_ip;
	uint8_t *mmds_buf;
};

/* The in-network address slirp connects to MMDS's socket: outside the DHCP range
 * (10.0.2.15 and the 15 after it), the host (.2) and DNS (.3). */
#define MMDS_FWD_ADDR 0x0a0002fdu /* 10.0.2.253 */
/* slirp's gateway MAC: 52:55 then the gateway's address (libslirp's if_encap). */
static const uint8_t gateway_mac[6] = { 0x52, 0x55, 10, 0, 2, 2 };

static uint32_t frame_ip(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* --- slirp's callbacks --- */

static ssize_t cb_send_packet(const void *buf, size_t len, void *opaque)
{
	struct net_slirp *s = opaque;

	/* MMDS's answers come from its forward address: the guest must see MMDS_IP. */
	if (s->mmds && len >= 34 && len <= NET_MAX_FRAME &&
	    frame_ip((const uint8_t *)buf + 26) == s->mmds_fwd_ip) {
		uint8_t *copy = s->mmds_buf + NET_MAX_FRAME; /* the guest-bound half */

		memcpy(copy, buf, len);
		if (mmds_net_from_slirp(copy, len, s->mmds_ip, s->mmds_fwd_ip)) {
			net_backend_deliver(&s->be, NULL, copy, len);
			return (ssize_t)len;
		}
	}
	/* Frames the guest has no room for are queued or dropped by the device; TCP recovers. */
	net_backend_deliver(&s->be, NULL, buf, len);
	return (ssize_t)len;
}

static void cb_guest_error(const char *msg, void *opaque)
{
	log_guest("slirp: %s", msg);
}

static int64_t cb_clock_get_ns(void *opaque)
{
	return now_ns();
}

static void *cb_timer_new(SlirpTimerCb cb, void *cb_opaque, void *opaque)
{
	struct net_slirp *s = opaque;
	struct slirp_timer *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->cb = cb;
	t->cb_opaque = cb_opaque;
	t->expire_ms = -1;
	t->next = s->timers;
	s->timers = t;
	return t;
}

static void cb_timer_free(void *timer, void *opaque)
{
	struct net_slirp *s = opaque;

	for (struct slirp_timer **p = &s->timers; *p; p = &(*p)->next) {
		if (*p == timer) {
			*p = (*p)->next;
			free(timer);
			return;
		}
	}
}

static void cb_timer_mod(void *timer, int64_t expire_ms, void *opaque)
{
	struct slirp_timer *t = timer;

	if (t)
		t->expire_ms = expire_ms;
}

/* Any socket opened or closed: mirror the whole set again at the end of the round (an fd
 * number may have been reused with the same events). */
static void cb_register_poll_fd(int fd, void *opaque)
{
	((struct net_slirp *)opaque)->dirty = true;
}

static void cb_unregister_poll_fd(int fd, void *opaque)
{
	struct net_slirp *s = opaque;

	s->dirty = true;
	/* slirp closes fd right after this: take it out while the number still means it. */
	if (s->epfd >= 0)
		epoll_ctl(s->epfd, EPOLL_CTL_DEL, fd, NULL);
}

static void schedule_round(struct net_slirp *s)
{
	uint64_t one = 1;
	ssize_t r;

	if (__atomic_exchange_n(&s->round_pending, true, __ATOMIC_ACQ_REL))
		return;
	r = write(s->wake_fd, &one, sizeof(one));
	(void)r;
}

static void cb_notify(void *opaque)
{
	schedule_round(opaque);
}

static const SlirpCb slirp_callbacks = {
	.send_packet = cb_send_packet,
	.guest_error = cb_guest_error,
	.clock_get_ns = cb_clock_get_ns,
	.timer_new = cb_timer_new,
	.timer_free = cb_timer_free,
	.timer_mod = cb_timer_mod,
	.register_poll_fd = cb_register_poll_fd,
	.unregister_poll_fd = cb_unregister_poll_fd,
	.notify = cb_notify,
};

/* --- one round --- */

static int cb_add_poll(int fd, int events, void *opaque)
{
	struct net_slirp *s = opaque;
	short ev = 0;

	if (s->npfds == s->cap_pfds) {
		unsigned cap = s->cap_pfds ? 2 * s->cap_pfds : 16;
		struct pollfd *p = realloc(s->pfds, cap * sizeof(*p));

		if (!p)
			return -1;
		s->pfds = p;
		s->cap_pfds = cap;
	}
	/* Paused (the guest has no room): read nothing from the host side. */
	if ((events & SLIRP_POLL_IN) && __atomic_load_n(&s->want_rx, __ATOMIC_ACQUIRE))
		ev |= POLLIN;
	if (events & SLIRP_POLL_OUT)
		ev |= POLLOUT;
	if ((events & SLIRP_POLL_PRI) && __atomic_load_n(&s->want_rx, __ATOMIC_ACQUIRE))
		ev |= POLLPRI;
	s->pfds[s->npfds] = (struct pollfd){ .fd = fd, .events = ev };
	return (int)s->npfds++;
}

static int cb_get_revents(int idx, void *opaque)
{
	struct net_slirp *s = opaque;
	short re;
	int out = 0;

	if (idx < 0 || (unsigned)idx >= s->npfds)
		return 0;
	re = s->pfds[idx].revents;
	if (re & POLLIN)
		out |= SLIRP_POLL_IN;
	if (re & POLLOUT)
		out |= SLIRP_POLL_OUT;
	if (re & POLLPRI)
		out |= SLIRP_POLL_PRI;
	if (re & POLLERR)
		out |= SLIRP_POLL_ERR;
	if (re & POLLHUP)
		out |= SLIRP_POLL_HUP;
	return out;
}

static uint32_t epoll_events(short ev)
{
	return (ev & POLLIN ? EPOLLIN : 0) | (ev & POLLOUT ? EPOLLOUT : 0) |
	       (ev & POLLPRI ? EPOLLPRI : 0);
}

/* Make epfd hold exactly pfds[0..npfds).  Only when something changed. */
static void sync_epoll(struct net_slirp *s)
{
	bool same = !s->dirty && s->nregs == s->npfds;

	for (unsigned i = 0; same && i < s->npfds; i++)
		same = s->regs[i].fd == s->pfds[i].fd &&
		       s->regs[i].events == epoll_events(s->pfds[i].events);
	if (same)
		return;
	for (unsigned i = 0; i < s->nregs; i++)
		epoll_ctl(s->epfd, EPOLL_CTL_DEL, s->regs[i].fd, NULL);
	s->nregs = 0;
	if (s->cap_regs < s->npfds) {
		struct reg *r = realloc(s->regs, s->cap_pfds * sizeof(*r));

		if (!r) {
			log_warn("slirp: out of memory");
			return;
		}
		s->regs = r;
		s->cap_regs = s->cap_pfds;
	}
	for (unsigned i = 0; i < s->npfds; i++) {
		struct epoll_event e = { .events = epoll_events(s->pfds[i].events),
					 .data.fd = s->pfds[i].fd };

		if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, e.data.fd, &e) < 0 && errno == EEXIST)
			epoll_ctl(s->epfd, EPOLL_CTL_MOD, e.data.fd, &e);
		s->regs[s->nregs++] = (struct reg){ .fd = e.data.fd, .events = e.events };
	}
	s->dirty = false;
}

/* Make timer_fd fire no later than deadline_ns.  An earlier pending deadline is kept: firing
 * early only costs one more round, and skipping the re-arm saves a system call per round. */
static void arm_timer(struct net_slirp *s, int64_t deadline_ns, int64_t now)
{
	struct itimerspec its = { 0 };

	if (s->armed_ns >= 0 && s->armed_ns > now && s->armed_ns <= deadline_ns)
		return;
	its.it_value.tv_sec = deadline_ns / 1000000000;
	its.it_value.tv_nsec = deadline_ns % 1000000000;
	if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0)
		its.it_value.tv_nsec = 1; /* 0 would disarm */
	if (timerfd_settime(s->timer_fd, TFD_TIMER_ABSTIME, &its, NULL) == 0)
		s->armed_ns = deadline_ns;
}

static void run_timers(struct net_slirp *s)
{
	int64_t now_ms = now_ns() / 1000000;
	bool fired;

	/* A callback may add, re-arm or free timers: restart the walk after each one. */
	do {
		fired = false;
		for (struct slirp_timer *t = s->timers; t; t = t->next) {
			if (t->expire_ms >= 0 && t->expire_ms <= now_ms) {
				t->expire_ms = -1;
				t->cb(t->cb_opaque);
				fired = true;
				break;
			}
		}
	} while (fired);
}

/* Loop thread: poll what slirp asked for last time, let it run, ask again. */
static void round_run(struct net_slirp *s, bool poll_fds)
{
	uint32_t timeout = UINT32_MAX;
	int64_t deadline, now;

	if (poll_fds) {
		int r = s->npfds ? poll(s->pfds, s->npfds, 0) : 0;

		slirp_pollfds_poll(s->slirp, r < 0, cb_get_revents, s);
	}
	run_timers(s);
	s->npfds = 0;
	slirp_pollfds_fill(s->slirp, &timeout, cb_add_poll, s);
	sync_epoll(s);
	/* slirp's own timeout (TCP fast/slow timers) bounds the wait, as do its timers. */
	if (timeout > 1000)
		timeout = 1000;
	now = now_ns();
	deadline = now + (int64_t)timeout * 1000000;
	for (struct slirp_timer *t = s->timers; t; t = t->next)
		if (t->expire_ms >= 0 && t->expire_ms * 1000000 < deadline)
			deadline = t->expire_ms * 1000000;
	arm_timer(s, deadline, now);
	/* Whatever this round sent the guest: one interrupt for all of it. */
	net_backend_flush(&s->be);
}

static void on_sockets(void *opaque, uint32_t events)
{
	round_run(opaque, true);
}

static void on_timer(void *opaque, uint32_t events)
{
	struct net_slirp *s = opaque;
	uint64_t v;
	ssize_t r = read(s->timer_fd, &v, sizeof(v));

	(void)r;
	s->armed_ns = -1;
	round_run(s, true);
}

static void on_wake(void *opaque, uint32_t events)
{
	struct net_slirp *s = opaque;
	uint64_t v;
	ssize_t r = read(s->wake_fd, &v, sizeof(v));

	(void)r;
	__atomic_store_n(&s->round_pending, false, __ATOMIC_RELEASE);
	round_run(s, false);
}

/* --- back-end ops --- */

static int slirp_be_start(struct net_backend *be, struct evloop *ev)
{
	struct net_slirp *s = (struct net_slirp *)be;
	int ret;

	s->ev = ev;
	ret = evloop_add(ev, s->epfd, EPOLLIN, on_sockets, s);
	if (ret)
		return ret;
	ret = evloop_add(ev, s->timer_fd, EPOLLIN, on_timer, s);
	if (ret)
		goto del_epfd;
	ret = evloop_add(ev, s->wake_fd, EPOLLIN, on_wake, s);
	if (ret)
		goto del_timer;
	if (s->mmds && (ret = http_mmds_start(s->mmds, ev))) {
		evloop_del(ev, s->wake_fd);
		goto del_timer;
	}
	s->started = true;
	/* The first round runs on the loop thread, like every other. */
	schedule_round(s);
	return 0;

del_timer:
	evloop_del(ev, s->timer_fd);
del_epfd:
	evloop_del(ev, s->epfd);
	return ret;
}

/* Guest → network (loop thread).  slirp copies the frame; replies may come back at once
 * through cb_send_packet. */
static int slirp_be_send(struct net_backend *be, const struct iovec *iov, int n)
{
	struct net_slirp *s = (struct net_slirp *)be;

	const uint8_t *f = iov[0].iov_base;
	size_t len;

	if (n != 1 || iov[0].iov_len > NET_MAX_FRAME)
		return -EINVAL;
	len = iov[0].iov_len;
	/* MMDS: a cheap look first (ARP, or IPv4 to MMDS_IP), then the checks and the rewrite
	 * on a private copy, so the guest cannot change the bytes between check and use. */
	if (s->mmds && len >= 42 &&
	    ((f[12] == 0x08 && f[13] == 0x06) ||
	     (f[12] == 0x08 && f[13] == 0x00 && frame_ip(f + 30) == s->mmds_ip))) {
		uint8_t reply[MMDS_NET_ARP_LEN];

		memcpy(s->mmds_buf, f, len);
		switch (mmds_net_to_slirp(s->mmds_buf, len, s->mmds_ip, s->mmds_fwd_ip)) {
		case MMDS_NET_ARP:
			if (mmds_net_arp_reply(s->mmds_buf, len, s->mmds_ip, gateway_mac, reply)) {
				net_backend_deliver(&s->be, NULL, reply, sizeof(reply));
				/* Signalled at the round's end, like slirp's own replies. */
				schedule_round(s);
			}
			return 0;
		case MMDS_NET_REWRITTEN:
			f = s->mmds_buf;
			break;
		case MMDS_NET_PASS:
			break;
		}
	}
	slirp_input(s->slirp, f, (int)len);
	/* New connections or window updates change what slirp polls: one round after the
	 * guest's batch, not one per frame. */
	schedule_round(s);
	return 0;
}

static void slirp_be_set_rx_enabled(struct net_backend *be, bool on)
{
	struct net_slirp *s = (struct net_slirp *)be;

	if (__atomic_exchange_n(&s->want_rx, on, __ATOMIC_ACQ_REL) != on)
		schedule_round(s);
}

static void slirp_be_destroy(struct net_backend *be)
{
	struct net_slirp *s = (struct net_slirp *)be;

	if (s->started) {
		evloop_del(s->ev, s->wake_fd);
		evloop_del(s->ev, s->timer_fd);
		evloop_del(s->ev, s->epfd);
	}
	if (s->slirp)
		slirp_cleanup(s->slirp);
	http_mmds_destroy(s->mmds);
	free(s->mmds_buf);
	while (s->timers) {
		struct slirp_timer *t = s->timers;

		s->timers = t->next;
		free(t);
	}
	if (s->epfd >= 0)
		close(s->epfd);
	if (s->timer_fd >= 0)
		close(s->timer_fd);
	if (s->wake_fd >= 0)
		close(s->wake_fd);
	free(s->pfds);
	free(s->regs);
	free(s);
}

static const struct net_backend_ops slirp_ops = {
	.name = "user",
	.start = slirp_be_start,
	.send = slirp_be_send,
	.set_rx_enabled = slirp_be_set_rx_enabled,
	.destroy = slirp_be_destroy,
};

/* --- set-up --- */

static int parse_port(const char *s, size_t len, uint16_t *out)
{
	unsigned v = 0;

	if (len == 0 || len > 5)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v == 0 || v > 65535)
		return -EINVAL;
	*out = (uint16_t)v;
	return 0;
}

/* "[ADDR]:PORT" of `len` bytes. */
static int parse_endpoint(const char *s, size_t len, uint32_t *addr, uint16_t *port)
{
	const char *colon = memchr(s, ':', len);
	char buf[INET_ADDRSTRLEN];
	struct in_addr a;
	size_t alen;

	if (!colon)
		return -EINVAL;
	alen = (size_t)(colon - s);
	*addr = 0;
	if (alen) {
		if (alen >= sizeof(buf))
			return -EINVAL;
		memcpy(buf, s, alen);
		buf[alen] = '\0';
		if (inet_pton(AF_INET, buf, &a) != 1)
			return -EINVAL;
		*addr = a.s_addr;
	}
	return parse_port(colon + 1, len - alen - 1, port);
}

int net_slirp_parse_fwd(const char *s, struct net_slirp_fwd *out)
{
	struct net_slirp_fwd f = { 0 };
	const char *dash;

	if (!strncmp(s, "tcp:", 4)) {
		s += 4;
	} else if (!strncmp(s, "udp:", 4)) {
		f.udp = true;
		s += 4;
	} else {
		return -EINVAL;
	}
	dash = strchr(s, '-');
	if (!dash || parse_endpoint(s, (size_t)(dash - s), &f.host_addr, &f.host_port) ||
	    parse_endpoint(dash + 1, strlen(dash + 1), &f.guest_addr, &f.guest_port))
		return -EINVAL;
	*out = f;
	return 0;
}

int net_slirp_create(const struct net_slirp_fwd *fwd, int nr_fwd, unsigned flags,
		     struct net_backend **out, char *err, size_t err_size)
{
	SlirpConfig cfg = { 0 };
	struct net_slirp *s;
	struct in_addr guest;
	int ret;

	s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, err_size, "--net user: out of memory");
		return -ENOMEM;
	}
	s->timer_fd = s->wake_fd = -1;
	s->armed_ns = -1;
	s->want_rx = true;
	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (s->epfd >= 0)
		s->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (s->timer_fd >= 0)
		s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->wake_fd < 0) {
		ret = -errno;
		snprintf(err, err_size, "--net user: %s", strerror(-ret));
		goto destroy;
	}
	inet_pton(AF_INET, NET_SLIRP_GUEST_ADDR, &guest);
	/* The network QEMU's user networking uses, so guides and habits carry over. */
	cfg.version = 4;
	/* restricted: slirp drops every connection and datagram the guest starts towards
	 * anything but its own services (DHCP), while host forwards keep working. */
	cfg.restricted = (flags & NET_SLIRP_RESTRICTED) ? 1 : 0;
	cfg.in_enabled = true;
	inet_pton(AF_INET, "10.0.2.0", &cfg.vnetwork);
	inet_pton(AF_INET, "255.255.255.0", &cfg.vnetmask);
	inet_pton(AF_INET, "10.0.2.2", &cfg.vhost);
	cfg.vdhcp_start = guest;
	inet_pton(AF_INET, "10.0.2.3", &cfg.vnameserver);
	cfg.vhostname = "ignition";
	cfg.if_mtu = 1500;
	cfg.if_mru = 1500;
	/* Without HOST_LOOPBACK, 10.0.2.2 (and the rest of 10.0.2.0/24 that is not DNS) leads
	 * nowhere: a guest must not reach services the host only offers to itself on 127.0.0.1.
	 * With it, those addresses are the host's loopback. */
	cfg.disable_host_loopback = !(flags & NET_SLIRP_HOST_LOOPBACK);
	s->slirp = slirp_new(&cfg, &slirp_callbacks, s);
	if (!s->slirp) {
		ret = -ENOMEM;
		snprintf(err, err_size, "--net user: cannot create the slirp stack");
		goto destroy;
	}
	for (int i = 0; i < nr_fwd; i++) {
		struct in_addr h = { .s_addr = fwd[i].host_addr };
		struct in_addr g = { .s_addr =
					     fwd[i].guest_addr ? fwd[i].guest_addr : guest.s_addr };
		char hs[INET_ADDRSTRLEN];

		if (slirp_add_hostfwd(s->slirp, fwd[i].udp, h, fwd[i].host_port, g,
				      fwd[i].guest_port) < 0) {
			ret = -EADDRINUSE;
			inet_ntop(AF_INET, &h, hs, sizeof(hs));
			snprintf(err, err_size,
				 "--net user: hostfwd %s:%s:%u: cannot listen there (port in use, "
				 "or not an address of this host?)",
				 fwd[i].udp ? "udp" : "tcp", hs, fwd[i].host_port);
			goto destroy;
		}
	}
	s->be.ops = &slirp_ops;
	s->be.vnet_hdr = false;
	s->be.host_features = 0;
	*out = &s->be;
	return 0;

destroy:
	slirp_be_destroy(&s->be);
	return ret;
}

int net_slirp_add_mmds(struct net_backend *be, struct mmds *m, char *err, size_t err_size)
{
	struct net_slirp *s = (struct net_slirp *)be;
	struct in_addr fwd = { .s_addr = htonl(MMDS_FWD_ADDR) };
	struct mmds_config c;
	int ret;

	if (be->ops != &slirp_ops || s->mmds || s->started)
		return -EINVAL;
	s->mmds_buf = malloc(2 * (size_t)NET_MAX_FRAME); /* guest-sent, guest-bound */
	if (!s->mmds_buf) {
		snprintf(err, err_size, "MMDS: out of memory");
		return -ENOMEM;
	}
	ret = http_mmds_create(m, &s->mmds, err, err_size);
	if (ret)
		return ret;
	/* The address is fixed before the guest runs (Firecracker refuses /mmds/config then). */
	mmds_get_config(m, &c);
	s->mmds_ip = c.ipv4;
	s->mmds_fwd_ip = MMDS_FWD_ADDR;
	if (slirp_add_unix(s->slirp, http_mmds_path(s->mmds), &fwd, MMDS_NET_PORT) < 0) {
		snprintf(err, err_size, "MMDS: slirp refused the forward to %s",
			 http_mmds_path(s->mmds));
		return -EINVAL;
	}
	return 0;
}
