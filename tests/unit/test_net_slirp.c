/* The slirp back end on a real event loop, no guest: a DHCP DISCOVER sent as the guest gets
 * an OFFER of 10.0.2.15, and a host connection to a hostfwd port makes slirp talk to the guest
 * (its listening socket is polled through the loop's epoll).  Only loopback is used. */
#include "core/evloop.h"
#include "net/backend.h"
#include "net/slirp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <cmocka.h>

static const uint8_t guest_mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };

struct ctx {
	struct evloop ev;
	struct net_backend *be;
	int kick_fd, timeout_fd, client;
	uint16_t port;
	bool got_offer;
	uint32_t offered;
	bool fwd_traffic; /* slirp sent the guest something for the forwarded connection */
	bool timed_out;
	unsigned flushes; /* batches ended (one interrupt each for a device) */
};

static uint16_t ip_csum(const uint8_t *p, size_t len)
{
	uint32_t s = 0;

	for (size_t i = 0; i + 1 < len; i += 2)
		s += (uint32_t)p[i] << 8 | p[i + 1];
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

/* Ethernet + IPv4 + UDP 68->67 + BOOTP DISCOVER (RFC 2131), UDP checksum 0 (none). */
static size_t dhcp_discover(uint8_t *f)
{
	uint8_t *ip = f + 14, *udp = ip + 20, *bootp = udp + 8;
	size_t blen = 240 + 4, ulen = 8 + blen, iplen = 20 + ulen;
	uint16_t c;

	memset(f, 0, 14 + iplen);
	memset(f, 0xff, 6);
	memcpy(f + 6, guest_mac, 6);
	f[12] = 0x08;
	ip[0] = 0x45;
	ip[2] = (uint8_t)(iplen >> 8);
	ip[3] = (uint8_t)iplen;
	ip[8] = 64;
	ip[9] = 17;
	memset(ip + 16, 0xff, 4);
	c = ip_csum(ip, 20);
	ip[10] = (uint8_t)(c >> 8);
	ip[11] = (uint8_t)c;
	udp[1] = 68;
	udp[3] = 67;
	udp[4] = (uint8_t)(ulen >> 8);
	udp[5] = (uint8_t)ulen;
	bootp[0] = 1; /* BOOTREQUEST */
	bootp[1] = 1; /* Ethernet */
	bootp[2] = 6;
	bootp[4] = 0x12; /* xid */
	memcpy(bootp + 28, guest_mac, 6);
	memcpy(bootp + 236, "\x63\x82\x53\x63", 4);
	memcpy(bootp + 240, "\x35\x01\x01\xff", 4); /* DHCP message type DISCOVER, end */
	return 14 + iplen;
}

static void on_receive(void *opaque, const uint8_t *hdr, const uint8_t *f, size_t len)
{
	struct ctx *c = opaque;

	assert_null(hdr);
	assert_true(len >= 14);
	/* An OFFER: IPv4, UDP 67 -> 68, BOOTREPLY with yiaddr. */
	if (len > 14 + 20 + 8 + 240 && f[12] == 0x08 && f[13] == 0 && f[14 + 9] == 17 &&
	    f[14 + 20 + 1] == 67 && f[14 + 20 + 3] == 68 && f[14 + 28] == 2) {
		memcpy(&c->offered, f + 14 + 28 + 16, 4);
		c->got_offer = true;
		return;
	}
	/* After the host connected: an ARP request for the guest or a SYN to it. */
	if (c->client >= 0 &&
	    ((f[12] == 0x08 && f[13] == 0x06) || (f[12] == 0x08 && f[13] == 0 && f[14 + 9] == 6))) {
		c->fwd_traffic = true;
		evloop_stop(&c->ev);
	}
}

static void on_flush(void *opaque)
{
	((struct ctx *)opaque)->flushes++;
}

static void on_kick(void *opaque, uint32_t events)
{
	struct ctx *c = opaque;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(c->port) };
	uint8_t frame[600];
	struct iovec v = { frame, 0 };
	uint64_t n;

	assert_int_equal(read(c->kick_fd, &n, sizeof(n)), sizeof(n));
	v.iov_len = dhcp_discover(frame);
	assert_int_equal(c->be->ops->send(c->be, &v, 1), 0);
	assert_true(c->got_offer); /* slirp answers DHCP at once */
	/* Now a host client for the forward; slirp sees it only through the loop. */
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	c->client = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	assert_true(c->client >= 0);
	assert_true(connect(c->client, (struct sockaddr *)&a, sizeof(a)) == 0 ||
		    errno == EINPROGRESS);
}

static void on_timeout(void *opaque, uint32_t events)
{
	struct ctx *c = opaque;

	c->timed_out = true;
	evloop_stop(&c->ev);
}

static uint16_t free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t l = sizeof(a);
	int s = socket(AF_INET, SOCK_STREAM, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(s, (struct sockaddr *)&a, &l), 0);
	close(s);
	return ntohs(a.sin_port);
}

static void test_dhcp_and_hostfwd(void **state)
{
	static struct ctx c;
	struct net_slirp_fwd fwd = { 0 };
	struct itimerspec its = { .it_value.tv_sec = 10 };
	char err[256];
	uint64_t one = 1;

	memset(&c, 0, sizeof(c));
	c.client = -1;
	c.port = free_port();
	fwd.host_addr = htonl(INADDR_LOOPBACK);
	fwd.host_port = c.port;
	fwd.guest_port = 8080;
	assert_int_equal(evloop_init(&c.ev), 0);
	assert_int_equal(net_slirp_create(&fwd, 1, 0, &c.be, err, sizeof(err)), 0);
	c.be->receive = on_receive;
	c.be->receive_flush = on_flush;
	c.be->receive_opaque = &c;
	assert_int_equal(c.be->ops->start(c.be, &c.ev), 0);
	c.kick_fd = eventfd(0, EFD_NONBLOCK);
	c.timeout_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
	assert_int_equal(timerfd_settime(c.timeout_fd, 0, &its, NULL), 0);
	assert_int_equal(evloop_add(&c.ev, c.kick_fd, EPOLLIN, on_kick, &c), 0);
	assert_int_equal(evloop_add(&c.ev, c.timeout_fd, EPOLLIN, on_timeout, &c), 0);
	assert_int_equal(write(c.kick_fd, &one, sizeof(one)), sizeof(one));
	assert_int_equal(evloop_run(&c.ev), 0);
	assert_false(c.timed_out);
	assert_true(c.got_offer);
	assert_int_equal(c.offered, htonl(0x0a00020f)); /* 10.0.2.15 */
	assert_true(c.fwd_traffic);
	/* The traffic to the guest came in a round, which ended with a flush. */
	assert_true(c.flushes > 0);
	evloop_del(&c.ev, c.kick_fd);
	evloop_del(&c.ev, c.timeout_fd);
	c.be->ops->destroy(c.be);
	close(c.client);
	close(c.kick_fd);
	close(c.timeout_fd);
	evloop_destroy(&c.ev);
}

/* A forward whose host port is taken: one clear error, nothing left behind. */
static void test_hostfwd_port_taken(void **state)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	struct net_slirp_fwd fwd = { 0 };
	struct net_backend *be;
	socklen_t l = sizeof(a);
	char err[256];
	int s = socket(AF_INET, SOCK_STREAM, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(s, 1), 0);
	assert_int_equal(getsockname(s, (struct sockaddr *)&a, &l), 0);
	fwd.host_addr = htonl(INADDR_LOOPBACK);
	fwd.host_port = ntohs(a.sin_port);
	fwd.guest_port = 22;
	assert_int_equal(net_slirp_create(&fwd, 1, 0, &be, err, sizeof(err)), -EADDRINUSE);
	assert_non_null(strstr(err, "hostfwd tcp:127.0.0.1:"));
	close(s);
}

/* --- what the guest may reach: host loopback, restricted --- */

struct reach {
	unsigned frames;
	bool arp_reply, rst, icmp_unreach, synack;
};

static void on_reach_receive(void *opaque, const uint8_t *hdr, const uint8_t *f, size_t len)
{
	struct reach *r = opaque;
	const uint8_t *ip = f + 14;

	r->frames++;
	if (len >= 14 + 28 && f[12] == 0x08 && f[13] == 0x06 && f[14 + 7] == 2)
		r->arp_reply = true;
	if (len < 14 + 20 || f[12] != 0x08 || f[13] != 0)
		return;
	if (ip[9] == 6 && len >= 14 + 20 + 20) {
		uint8_t fl = ip[20 + 13];

		r->rst |= (fl & 0x04) != 0;
		r->synack |= (fl & 0x12) == 0x12;
	}
	if (ip[9] == 1 && ip[20] == 3) /* ICMP destination unreachable */
		r->icmp_unreach = true;
}

/* The guest asks who has 10.0.2.2, as a guest does before its first packet there. */
static size_t arp_request(uint8_t *f)
{
	uint8_t *a = f + 14;

	memset(f, 0, 42);
	memset(f, 0xff, 6);
	memcpy(f + 6, guest_mac, 6);
	f[12] = 0x08;
	f[13] = 0x06;
	a[1] = 1;    /* Ethernet */
	a[2] = 0x08; /* IPv4 */
	a[4] = 6;
	a[5] = 4;
	a[7] = 1; /* request */
	memcpy(a + 8, guest_mac, 6);
	memcpy(a + 14, "\x0a\x00\x02\x0f", 4);
	memcpy(a + 24, "\x0a\x00\x02\x02", 4);
	return 42;
}

/* A TCP SYN from the guest (10.0.2.15:40000) to 10.0.2.2:port, checksums complete. */
static size_t tcp_syn(uint8_t *f, uint16_t port)
{
	uint8_t *ip = f + 14, *tcp = ip + 20, pseudo[12 + 20];
	uint16_t c;

	memset(f, 0, 14 + 40);
	memset(f, 0x52, 6); /* slirp's own MAC is not checked */
	memcpy(f + 6, guest_mac, 6);
	f[12] = 0x08;
	ip[0] = 0x45;
	ip[3] = 40;
	ip[8] = 64;
	ip[9] = 6;
	memcpy(ip + 12, "\x0a\x00\x02\x0f", 4);
	memcpy(ip + 16, "\x0a\x00\x02\x02", 4);
	c = ip_csum(ip, 20);
	ip[10] = (uint8_t)(c >> 8);
	ip[11] = (uint8_t)c;
	tcp[0] = 40000 >> 8;
	tcp[1] = 40000 & 0xff;
	tcp[2] = (uint8_t)(port >> 8);
	tcp[3] = (uint8_t)port;
	tcp[7] = 1;	/* sequence number */
	tcp[12] = 0x50; /* 20-byte header */
	tcp[13] = 0x02; /* SYN */
	tcp[14] = 0xff; /* window */
	memcpy(pseudo, ip + 12, 8);
	pseudo[8] = 0;
	pseudo[9] = 6;
	pseudo[10] = 0;
	pseudo[11] = 20;
	memcpy(pseudo + 12, tcp, 20);
	c = ip_csum(pseudo, sizeof(pseudo));
	tcp[16] = (uint8_t)(c >> 8);
	tcp[17] = (uint8_t)c;
	return 14 + 40;
}

/* A listener on the host's 127.0.0.1; the guest sends a SYN to 10.0.2.2 at its port.  slirp
 * connects (or not) inside slirp_input(), so the listener's queue tells at once. */
static bool guest_reaches_host_loopback(unsigned flags, struct reach *r)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t l = sizeof(a);
	struct net_backend *be;
	uint8_t frame[128];
	struct iovec v = { frame, 0 };
	struct pollfd p;
	char err[256];
	int lsn = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), conn;

	memset(r, 0, sizeof(*r));
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(lsn, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(lsn, 4), 0);
	assert_int_equal(getsockname(lsn, (struct sockaddr *)&a, &l), 0);
	assert_int_equal(net_slirp_create(NULL, 0, flags, &be, err, sizeof(err)), 0);
	be->receive = on_reach_receive;
	be->receive_opaque = r;
	v.iov_len = arp_request(frame);
	assert_int_equal(be->ops->send(be, &v, 1), 0);
	assert_true(r->arp_reply); /* 10.0.2.2 answers ARP either way */
	v.iov_len = tcp_syn(frame, ntohs(a.sin_port));
	assert_int_equal(be->ops->send(be, &v, 1), 0);
	/* Loopback connections complete inside connect(); the wait only covers a slow host. */
	p = (struct pollfd){ .fd = lsn, .events = POLLIN };
	if (poll(&p, 1,
		 flags & NET_SLIRP_HOST_LOOPBACK && !(flags & NET_SLIRP_RESTRICTED) ? 5000 : 200) ==
		    1 &&
	    (conn = accept(lsn, NULL, NULL)) >= 0) {
		close(conn);
		be->ops->destroy(be);
		close(lsn);
		return true;
	}
	be->ops->destroy(be);
	close(lsn);
	return false;
}

/* Default: 10.0.2.2 is not the host's loopback; the guest's SYN is answered with a reset or
 * an unreachable error, and nothing reaches the listener. */
static void test_host_loopback_off_by_default(void **state)
{
	struct reach r;

	assert_false(guest_reaches_host_loopback(0, &r));
	assert_true(r.rst || r.icmp_unreach);
	assert_false(r.synack);
}

/* host-loopback=on: 10.0.2.2:port is the host's 127.0.0.1:port. */
static void test_host_loopback_on(void **state)
{
	struct reach r;

	assert_true(guest_reaches_host_loopback(NET_SLIRP_HOST_LOOPBACK, &r));
	assert_false(r.rst);
}

/* restricted=on: no outbound connection at all, even with host loopback allowed; the guest
 * gets a reset. */
static void test_restricted(void **state)
{
	struct reach r;

	assert_false(
		guest_reaches_host_loopback(NET_SLIRP_HOST_LOOPBACK | NET_SLIRP_RESTRICTED, &r));
	assert_true(r.rst);
	assert_false(r.synack);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dhcp_and_hostfwd),
		cmocka_unit_test(test_hostfwd_port_taken),
		cmocka_unit_test(test_host_loopback_off_by_default),
		cmocka_unit_test(test_host_loopback_on),
		cmocka_unit_test(test_restricted),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
