/* MMDS frame rewriting for user networking: a TCP segment to MMDS_IP:80 is readdressed to the
 * slirp forward address and back, with IPv4 and TCP checksums equal to a from-scratch
 * computation; ARP requests for MMDS_IP get a reply; everything else (other ports, other
 * addresses, fragments, truncated or lying headers) passes unchanged. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "net/mmds_net.h"

#include <string.h>

#define MMDS 0xa9fea9feu
#define FWD  0x0a0002fdu
#define GST  0x0a00020fu

static uint16_t sum16(const uint8_t *p, size_t n, uint32_t sum)
{
	for (size_t i = 0; i + 1 < n; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (n & 1)
		sum += (uint32_t)p[n - 1] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* From scratch: the IPv4 header checksum and the TCP checksum with its pseudo-header. */
static void full_csums(uint8_t *f, size_t len, uint16_t *ipc, uint16_t *tcpc)
{
	uint8_t *ip = f + 14, *tcp = ip + 20, save[2];
	size_t tlen = len - 34;
	uint32_t ps = 0;

	memcpy(save, ip + 10, 2);
	memset(ip + 10, 0, 2);
	*ipc = sum16(ip, 20, 0);
	memcpy(ip + 10, save, 2);
	for (int i = 12; i < 20; i += 2)
		ps += (uint32_t)(ip[i] << 8 | ip[i + 1]);
	ps += 6 + (uint32_t)tlen;
	memcpy(save, tcp + 16, 2);
	memset(tcp + 16, 0, 2);
	*tcpc = sum16(tcp, tlen, ps);
	memcpy(tcp + 16, save, 2);
}

static size_t build(uint8_t *f, uint32_t src, uint16_t sport, uint32_t dst, uint16_t dport,
		    const char *payload)
{
	size_t pl = strlen(payload), len = 14 + 20 + 20 + pl;
	uint8_t *ip = f + 14, *tcp = ip + 20;
	uint16_t a, b;

	memset(f, 0, len);
	memcpy(f, "\x52\x55\x0a\x00\x02\x02\x52\x54\x00\x12\x34\x56\x08\x00", 14);
	ip[0] = 0x45;
	ip[2] = (uint8_t)((len - 14) >> 8);
	ip[3] = (uint8_t)(len - 14);
	ip[6] = 0x40; /* DF */
	ip[8] = 64;
	ip[9] = 6;
	for (int i = 0; i < 4; i++) {
		ip[12 + i] = (uint8_t)(src >> (24 - 8 * i));
		ip[16 + i] = (uint8_t)(dst >> (24 - 8 * i));
	}
	tcp[0] = (uint8_t)(sport >> 8);
	tcp[1] = (uint8_t)sport;
	tcp[2] = (uint8_t)(dport >> 8);
	tcp[3] = (uint8_t)dport;
	tcp[4] = 0x12;
	tcp[7] = 0x99;
	tcp[12] = 0x50;
	tcp[13] = 0x18;
	tcp[14] = 0xff;
	memcpy(tcp + 20, payload, pl);
	full_csums(f, len, &a, &b);
	ip[10] = (uint8_t)(a >> 8);
	ip[11] = (uint8_t)a;
	tcp[16] = (uint8_t)(b >> 8);
	tcp[17] = (uint8_t)b;
	return len;
}

static void assert_csums_ok(uint8_t *f, size_t len)
{
	uint16_t a, b;

	full_csums(f, len, &a, &b);
	assert_int_equal(a, f[24] << 8 | f[25]);
	assert_int_equal(b, f[50] << 8 | f[51]);
}

static void test_rewrite_both_ways(void **state)
{
	static const char *payloads[] = { "", "G", "GET / HTTP/1.1\r\n\r\n", "\xff\xff\xff" };
	uint8_t f[256], ref[256];

	for (unsigned i = 0; i < 4; i++) {
		for (uint32_t sport = 1; sport < 65535; sport += 4099) {
			size_t len = build(f, GST, (uint16_t)sport, MMDS, 80, payloads[i]);

			assert_int_equal(mmds_net_to_slirp(f, len, MMDS, FWD), MMDS_NET_REWRITTEN);
			build(ref, GST, (uint16_t)sport, FWD, 80, payloads[i]);
			assert_memory_equal(f, ref, len);
			assert_csums_ok(f, len);
			/* The answer: from FWD:80 back as from MMDS:80. */
			len = build(f, FWD, 80, GST, (uint16_t)sport, payloads[i]);
			assert_true(mmds_net_from_slirp(f, len, MMDS, FWD));
			build(ref, MMDS, 80, GST, (uint16_t)sport, payloads[i]);
			assert_memory_equal(f, ref, len);
			assert_csums_ok(f, len);
		}
	}
}

static void test_passes_others(void **state)
{
	uint8_t f[256], ref[256];
	size_t len;

	/* Another port, another address, a fragment, UDP: unchanged. */
	len = build(f, GST, 1234, MMDS, 81, "x");
	memcpy(ref, f, len);
	assert_int_equal(mmds_net_to_slirp(f, len, MMDS, FWD), MMDS_NET_PASS);
	len = build(f, GST, 1234, 0x08080808u, 80, "x");
	assert_int_equal(mmds_net_to_slirp(f, len, MMDS, FWD), MMDS_NET_PASS);
	len = build(f, GST, 1234, MMDS, 80, "x");
	f[20] |= 0x20; /* MF */
	assert_int_equal(mmds_net_to_slirp(f, len, MMDS, FWD), MMDS_NET_PASS);
	len = build(f, GST, 1234, MMDS, 80, "x");
	f[23] = 17;
	assert_int_equal(mmds_net_to_slirp(f, len, MMDS, FWD), MMDS_NET_PASS);
	len = build(f, FWD, 81, GST, 1234, "x");
	assert_false(mmds_net_from_slirp(f, len, MMDS, FWD));
	/* Truncated frames and lying lengths: unchanged, whatever the cut. */
	len = build(f, GST, 1234, MMDS, 80, "abc");
	memcpy(ref, f, len);
	for (size_t cut = 0; cut < 14 + 40; cut++) {
		assert_int_equal(mmds_net_to_slirp(f, cut, MMDS, FWD), MMDS_NET_PASS);
		assert_memory_equal(f, ref, len);
	}
	f[16] = 0x40; /* total length past the frame */
	assert_int_equal(mmds_net_to_slirp(f, len, MMDS, FWD), MMDS_NET_PASS);
	f[16] = 0;
	f[14] = 0x4f; /* IHL 60 bytes, past the total length */
	assert_int_equal(mmds_net_to_slirp(f, len, MMDS, FWD), MMDS_NET_PASS);
	f[14] = 0x44; /* IHL 16 */
	assert_int_equal(mmds_net_to_slirp(f, len, MMDS, FWD), MMDS_NET_PASS);
}

static void test_arp(void **state)
{
	static const uint8_t gw[6] = { 0x52, 0x55, 0x0a, 0x00, 0x02, 0x02 };
	uint8_t req[60] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0x00, 0x12, 0x34,
			    0x56, 0x08, 0x06, 0x00, 0x01, 0x08, 0x00, 6,    4,	  0x00, 0x01,
			    0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 10,   0,    2,	  15,	0,
			    0,	  0,	0,    0,    0,	  169,	254,  169,  254 };
	uint8_t out[MMDS_NET_ARP_LEN];
	static const uint8_t want[MMDS_NET_ARP_LEN] = {
		0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x52, 0x55, 0x0a, 0x00, 0x02, 0x02, 0x08, 0x06,
		0x00, 0x01, 0x08, 0x00, 6,    4,    0x00, 0x02, 0x52, 0x55, 0x0a, 0x00, 0x02, 0x02,
		169,  254,  169,  254,	0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 10,	  0,	2,    15
	};

	assert_int_equal(mmds_net_to_slirp(req, sizeof(req), MMDS, FWD), MMDS_NET_ARP);
	assert_int_equal(mmds_net_arp_reply(req, sizeof(req), MMDS, gw, out), MMDS_NET_ARP_LEN);
	assert_memory_equal(out, want, sizeof(want));
	/* Short, a reply rather than a request, another address: no answer. */
	assert_int_equal(mmds_net_arp_reply(req, 41, MMDS, gw, out), 0);
	req[21] = 2;
	assert_int_equal(mmds_net_arp_reply(req, sizeof(req), MMDS, gw, out), 0);
	req[21] = 1;
	req[41] = 253;
	assert_int_equal(mmds_net_arp_reply(req, sizeof(req), MMDS, gw, out), 0);
	assert_int_equal(mmds_net_to_slirp(req, sizeof(req), MMDS, FWD), MMDS_NET_PASS);
}

/* TAP: the guest's own address (outside slirp's network) becomes INNER on the way in, and
 * comes back, found by the guest's port, on the way out. */
#define TAPG  0x0a000302u /* 10.0.3.2 */
#define INNER 0x0a00020fu

static void test_tap_both_ways(void **state)
{
	static const char *payloads[] = { "", "G", "GET / HTTP/1.1\r\n\r\n", "\xff\xff\xff" };
	static uint32_t by_port[65536];
	uint8_t f[256], ref[256];
	uint32_t gip;
	uint16_t port;

	for (unsigned i = 0; i < 4; i++) {
		for (uint32_t sport = 1; sport < 65535; sport += 4099) {
			size_t len = build(f, TAPG, (uint16_t)sport, MMDS, 80, payloads[i]);

			gip = 0;
			port = 0;
			assert_int_equal(mmds_net_tap_out(f, len, MMDS, INNER, &gip, &port),
					 MMDS_NET_TAP_TCP);
			assert_int_equal(gip, TAPG);
			assert_int_equal(port, sport);
			build(ref, INNER, (uint16_t)sport, MMDS, 80, payloads[i]);
			assert_memory_equal(f, ref, len);
			assert_csums_ok(f, len);
			/* Then slirp.c's own rewrite makes it FWD-bound, and its answer MMDS-sourced. */
			assert_int_equal(mmds_net_to_slirp(f, len, MMDS, FWD), MMDS_NET_REWRITTEN);
			len = build(f, FWD, 80, INNER, (uint16_t)sport, payloads[i]);
			assert_true(mmds_net_from_slirp(f, len, MMDS, FWD));
			/* Unknown port: not for the guest, unchanged. */
			memcpy(ref, f, len);
			by_port[sport] = 0;
			assert_false(mmds_net_tap_in(f, len, MMDS, INNER, by_port));
			assert_memory_equal(f, ref, len);
			by_port[sport] = gip;
			assert_true(mmds_net_tap_in(f, len, MMDS, INNER, by_port));
			build(ref, MMDS, 80, TAPG, (uint16_t)sport, payloads[i]);
			assert_memory_equal(f, ref, len);
			assert_csums_ok(f, len);
		}
	}
}

static void test_tap_passes_others(void **state)
{
	static uint32_t by_port[65536];
	uint8_t f[256], ref[256];
	uint32_t gip = 0;
	uint16_t port = 0;
	size_t len;

	for (unsigned i = 0; i < 65536; i++)
		by_port[i] = TAPG;
	/* Out: another port, another address, a fragment, UDP, cut or lying frames. */
	len = build(f, TAPG, 1234, MMDS, 81, "x");
	assert_int_equal(mmds_net_tap_out(f, len, MMDS, INNER, &gip, &port), MMDS_NET_TAP_PASS);
	len = build(f, TAPG, 1234, 0x0a000301u, 80, "x");
	assert_int_equal(mmds_net_tap_out(f, len, MMDS, INNER, &gip, &port), MMDS_NET_TAP_PASS);
	len = build(f, TAPG, 1234, MMDS, 80, "x");
	f[20] |= 0x20;
	assert_int_equal(mmds_net_tap_out(f, len, MMDS, INNER, &gip, &port), MMDS_NET_TAP_PASS);
	len = build(f, TAPG, 1234, MMDS, 80, "x");
	f[23] = 17;
	assert_int_equal(mmds_net_tap_out(f, len, MMDS, INNER, &gip, &port), MMDS_NET_TAP_PASS);
	len = build(f, TAPG, 1234, MMDS, 80, "abc");
	memcpy(ref, f, len);
	for (size_t cut = 0; cut < 14 + 40; cut++) {
		assert_int_equal(mmds_net_tap_out(f, cut, MMDS, INNER, &gip, &port),
				 MMDS_NET_TAP_PASS);
		assert_int_equal(mmds_net_tap_in(f, cut, MMDS, INNER, by_port), false);
		assert_memory_equal(f, ref, len);
	}
	f[16] = 0x40;
	assert_int_equal(mmds_net_tap_out(f, len, MMDS, INNER, &gip, &port), MMDS_NET_TAP_PASS);
	assert_int_equal(gip, 0);
	/* In: only from MMDS:80 to INNER. */
	len = build(f, MMDS, 81, INNER, 1234, "x");
	assert_false(mmds_net_tap_in(f, len, MMDS, INNER, by_port));
	len = build(f, MMDS, 80, 0x0a000210u, 1234, "x");
	assert_false(mmds_net_tap_in(f, len, MMDS, INNER, by_port));
	len = build(f, FWD, 80, INNER, 1234, "x");
	assert_false(mmds_net_tap_in(f, len, MMDS, INNER, by_port));
	len = build(f, MMDS, 80, INNER, 1234, "x");
	f[20] |= 0x20;
	assert_false(mmds_net_tap_in(f, len, MMDS, INNER, by_port));
}

static void test_tap_arp_and_garp(void **state)
{
	static const uint8_t mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
	static const uint8_t want[MMDS_NET_ARP_LEN] = {
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x08, 0x06,
		0x00, 0x01, 0x08, 0x00, 6,    4,    0x00, 0x01, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56,
		10,   0,    2,	  15,	0,    0,    0,	  0,	0,    0,    10,	  0,	2,    15
	};
	uint8_t req[60] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0x00, 0x12, 0x34,
			    0x56, 0x08, 0x06, 0x00, 0x01, 0x08, 0x00, 6,    4,	  0x00, 0x01,
			    0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 10,   0,    3,	  2,	0,
			    0,	  0,	0,    0,    0,	  169,	254,  169,  254 };
	uint8_t g[MMDS_NET_ARP_LEN], ref[60];
	uint32_t gip = 0;
	uint16_t port = 0;

	memcpy(ref, req, sizeof(req));
	assert_int_equal(mmds_net_tap_out(req, sizeof(req), MMDS, INNER, &gip, &port),
			 MMDS_NET_TAP_ARP);
	assert_memory_equal(req, ref, sizeof(req)); /* passed on as it is */
	req[41] = 1;				    /* for another address: to the TAP */
	assert_int_equal(mmds_net_tap_out(req, sizeof(req), MMDS, INNER, &gip, &port),
			 MMDS_NET_TAP_PASS);
	assert_int_equal(mmds_net_garp(mac, INNER, g), MMDS_NET_ARP_LEN);
	assert_memory_equal(g, want, sizeof(want));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rewrite_both_ways),
		cmocka_unit_test(test_passes_others),
		cmocka_unit_test(test_arp),
		cmocka_unit_test(test_tap_both_ways),
		cmocka_unit_test(test_tap_passes_others),
		cmocka_unit_test(test_tap_arp_and_garp),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
