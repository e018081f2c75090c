/* MMDS on a TAP interface, no guest: a real TAP device and the TAP back end with its private
 * slirp on a real event loop.  Frames sent as the guest (10.0.3.9, any destination MAC) get
 * the ARP answer for 169.254.169.254, and a TCP connection to it port 80 gets the metadata
 * over HTTP, answered to 10.0.3.9 with valid checksums; the request segment leaves its TCP
 * checksum to the device (NEEDS_CSUM), as Linux guests do.  Needs root and /dev/net/tun
 * (skipped otherwise). */
#include "api/mmds.h"
#include "core/evloop.h"
#include "devices/virtio/net.h"
#include "net/backend.h"
#include "net/tap.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <cmocka.h>

#define GUEST_IP  0x0a000309u /* 10.0.3.9 */
#define MMDS_IP	  0xa9fea9feu
#define GPORT	  40000
#define MMDS_JSON "{\"latest\":{\"ami-id\":\"ami-tap\"}}"

static const uint8_t guest_mac[6] = { 0x52, 0x54, 0x00, 0xab, 0xcd, 0xef };
static const uint8_t gw_mac[6] = { 0x02, 0x00, 0x00, 0x00, 0x03, 0x01 };

struct ctx {
	struct evloop ev;
	struct net_backend *be;
	int timeout_fd, kick_fd; /* kick_fd: the SYN-ACK came, send the request (on the loop) */
	bool timed_out, arp_reply, synack, bad_csum, wrong_dst;
	uint32_t mmds_seq; /* MMDS's sequence number, from its SYN-ACK */
	char http[512];	   /* the answer's bytes, in order */
	size_t http_len;
};

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint32_t sum(const uint8_t *p, size_t len, uint32_t s)
{
	for (size_t i = 0; i + 1 < len; i += 2)
		s += (uint32_t)p[i] << 8 | p[i + 1];
	if (len & 1)
		s += (uint32_t)p[len - 1] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return s;
}

/* The TCP pseudo-header sum (RFC 9293 §3.1) of the segment at ip. */
static uint32_t pseudo(const uint8_t *ip, size_t tcplen)
{
	return sum(ip + 12, 8, 6 + (uint32_t)tcplen);
}

/* A TCP segment 10.0.3.9:GPORT -> MMDS_IP:80 into f (after a 12-byte virtio-net header in
 * hdr); with partial, the TCP checksum is left to the device (NEEDS_CSUM). */
static size_t segment(uint8_t *hdr, uint8_t *f, uint8_t flags, uint32_t seq, uint32_t ack,
		      const char *data, bool partial)
{
	size_t dl = strlen(data), tl = 20 + dl, len = 14 + 20 + tl;
	uint8_t *ip = f + 14, *tcp = ip + 20;
	uint16_t c;

	memset(hdr, 0, NET_VNET_HDR_BYTES);
	memset(f, 0, len);
	memcpy(f, gw_mac, 6); /* to a gateway's MAC, as a routed guest sends it */
	memcpy(f + 6, guest_mac, 6);
	f[12] = 0x08;
	ip[0] = 0x45;
	ip[2] = (uint8_t)((20 + tl) >> 8);
	ip[3] = (uint8_t)(20 + tl);
	ip[6] = 0x40;
	ip[8] = 64;
	ip[9] = 6;
	put32(ip + 12, GUEST_IP);
	put32(ip + 16, MMDS_IP);
	c = (uint16_t)~sum(ip, 20, 0);
	ip[10] = (uint8_t)(c >> 8);
	ip[11] = (uint8_t)c;
	tcp[0] = GPORT >> 8;
	tcp[1] = GPORT & 0xff;
	tcp[3] = 80;
	put32(tcp + 4, seq);
	put32(tcp + 8, ack);
	tcp[12] = 0x50;
	tcp[13] = flags;
	tcp[14] = 0x40; /* window 16 KiB */
	memcpy(tcp + 20, data, dl);
	if (partial) {
		c = (uint16_t)pseudo(ip, tl); /* not complemented: §5.1.6.2 */
		hdr[VIRTIO_NET_HDR_FLAGS] = VIRTIO_NET_HDR_F_NEEDS_CSUM;
		hdr[VIRTIO_NET_HDR_CSUM_START] = 34;
		hdr[VIRTIO_NET_HDR_CSUM_OFFSET] = 16;
	} else {
		c = (uint16_t)~sum(tcp, tl, pseudo(ip, tl));
	}
	tcp[16] = (uint8_t)(c >> 8);
	tcp[17] = (uint8_t)c;
	return len;
}

static void send_frame(struct ctx *c, uint8_t *hdr, uint8_t *f, size_t len)
{
	/* Split like guest buffers: header, then the frame in two pieces. */
	struct iovec v[3] = { { hdr, NET_VNET_HDR_BYTES }, { f, 20 }, { f + 20, len - 20 } };

	assert_int_equal(c->be->ops->send(c->be, v, 3), 0);
}

static void on_receive(void *opaque, const uint8_t *hdr, const uint8_t *f, size_t len)
{
	struct ctx *c = opaque;
	const uint8_t *ip = f + 14, *tcp = ip + 20;
	size_t tl, dl;

	assert_true(len >= 14);
	if (len >= 42 && f[12] == 0x08 && f[13] == 0x06) {
		/* The reply: to the guest's MAC and address, MMDS at slirp's gateway MAC. */
		c->arp_reply = f[21] == 2 && !memcmp(f, guest_mac, 6) &&
			       !memcmp(f + 22, "\x52\x55\x0a\x00\x02\x02", 6) &&
			       get32(f + 28) == MMDS_IP && get32(f + 38) == GUEST_IP;
		return;
	}
	if (len < 14 + 40 || f[12] != 0x08 || f[13] != 0 || ip[9] != 6)
		return;
	tl = (size_t)(ip[2] << 8 | ip[3]) - 20;
	if (get32(ip + 12) != MMDS_IP || get32(ip + 16) != GUEST_IP || tcp[0] != 0 ||
	    tcp[1] != 80 || (tcp[2] << 8 | tcp[3]) != GPORT) {
		c->wrong_dst = true;
		return;
	}
	if (sum(ip, 20, 0) != 0xffff || sum(tcp, tl, pseudo(ip, tl)) != 0xffff)
		c->bad_csum = true;
	if ((tcp[13] & 0x12) == 0x12) {
		uint64_t one = 1;

		c->synack = true;
		c->mmds_seq = get32(tcp + 4);
		assert_int_equal(write(c->kick_fd, &one, sizeof(one)), sizeof(one));
		return;
	}
	dl = tl - (size_t)(tcp[12] >> 4) * 4;
	if (dl && c->http_len + dl < sizeof(c->http)) {
		memcpy(c->http + c->http_len, tcp + (tcp[12] >> 4) * 4, dl);
		c->http_len += dl;
	}
	if (strstr(c->http, "ami-tap") || (tcp[13] & 0x01)) /* the body, or FIN */
		evloop_stop(&c->ev);
}

/* ACK with the request, its checksum left to the device. */
static void on_kick(void *opaque, uint32_t events)
{
	static const char req[] = "GET /latest/ami-id HTTP/1.0\r\n\r\n";
	struct ctx *c = opaque;
	uint8_t hdr[NET_VNET_HDR_BYTES], f[256];
	uint64_t n;
	size_t len;

	assert_int_equal(read(c->kick_fd, &n, sizeof(n)), sizeof(n));
	len = segment(hdr, f, 0x18, 1001, c->mmds_seq + 1, req, true);
	send_frame(c, hdr, f, len);
}

static void on_timeout(void *opaque, uint32_t events)
{
	struct ctx *c = opaque;

	c->timed_out = true;
	evloop_stop(&c->ev);
}

static void test_tap_mmds_http(void **state)
{
	static struct ctx c;
	struct mmds_config cfg = { .version = 1, .ipv4 = MMDS_IP, .ifaces = 1 };
	struct itimerspec its = { .it_value.tv_sec = 10 };
	uint8_t hdr[NET_VNET_HDR_BYTES], f[256];
	struct mmds *m;
	char err[256], name[16];
	size_t len;
	int ret;

	if (geteuid() != 0 || access("/dev/net/tun", R_OK | W_OK) != 0)
		skip();
	memset(&c, 0, sizeof(c));
	snprintf(name, sizeof(name), "ignmt%d", getpid() % 100000);
	assert_int_equal(mmds_create(&m), 0);
	assert_int_equal(mmds_put(m, MMDS_JSON, strlen(MMDS_JSON), err, sizeof(err)), 0);
	assert_int_equal(mmds_set_config(m, &cfg, err, sizeof(err)), 0);
	ret = net_tap_create(name, &c.be, err, sizeof(err));
	if (ret == -EPERM || ret == -ENOENT)
		skip(); /* a container without TAP */
	assert_int_equal(ret, 0);
	assert_int_equal(net_tap_add_mmds(c.be, m, err, sizeof(err)), 0);
	c.be->receive = on_receive;
	c.be->receive_opaque = &c;
	assert_int_equal(evloop_init(&c.ev), 0);
	assert_int_equal(c.be->ops->start(c.be, &c.ev), 0);
	c.timeout_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
	assert_int_equal(timerfd_settime(c.timeout_fd, 0, &its, NULL), 0);
	assert_int_equal(evloop_add(&c.ev, c.timeout_fd, EPOLLIN, on_timeout, &c), 0);
	c.kick_fd = eventfd(0, EFD_NONBLOCK);
	assert_int_equal(evloop_add(&c.ev, c.kick_fd, EPOLLIN, on_kick, &c), 0);

	/* ARP for MMDS from 10.0.3.9: answered at once. */
	memset(hdr, 0, sizeof(hdr));
	memset(f, 0, 60);
	memset(f, 0xff, 6);
	memcpy(f + 6, guest_mac, 6);
	memcpy(f + 12, "\x08\x06\x00\x01\x08\x00\x06\x04\x00\x01", 10);
	memcpy(f + 22, guest_mac, 6);
	put32(f + 28, GUEST_IP);
	put32(f + 38, MMDS_IP);
	send_frame(&c, hdr, f, 60);
	assert_true(c.arp_reply);

	/* SYN; slirp connects to the MMDS socket through the loop and answers; on_kick sends
	 * the request. */
	len = segment(hdr, f, 0x02, 1000, 0, "", false);
	send_frame(&c, hdr, f, len);
	assert_int_equal(evloop_run(&c.ev), 0);
	assert_true(c.synack);
	assert_false(c.timed_out);
	assert_non_null(strstr(c.http, " 200 "));
	assert_non_null(strstr(c.http, "\r\n\r\nami-tap"));
	assert_false(c.bad_csum);
	assert_false(c.wrong_dst);

	evloop_del(&c.ev, c.timeout_fd);
	evloop_del(&c.ev, c.kick_fd);
	close(c.timeout_fd);
	close(c.kick_fd);
	c.be->ops->destroy(c.be);
	evloop_destroy(&c.ev);
	mmds_destroy(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tap_mmds_http),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
