#include "net/mmds_net.h"

#include <string.h>

#define ETH_HLEN     14
#define ETH_P_IPV4   0x0800
#define ETH_P_ARP    0x0806
#define IP_PROTO_TCP 6
#define TCP_MIN_HLEN 20

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)(v >> 16));
	put16(p + 2, (uint16_t)v);
}

/* RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m') for each 16-bit word m that became m'. */
static void csum_replace32(uint8_t *csum, uint32_t from, uint32_t to)
{
	uint32_t sum = (uint16_t)~get16(csum);

	sum += (uint16_t) ~(from >> 16) + (uint16_t) ~(from & 0xffff);
	sum += (to >> 16) + (to & 0xffff);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	put16(csum, (uint16_t)~sum);
}

/* The IPv4 header and TCP header of an unfragmented TCP segment in f[0..len), or NULL.  Only
 * whole datagrams: a fragment's TCP checksum spans other frames. */
static uint8_t *tcp_of(uint8_t *f, size_t len, uint8_t **tcp)
{
	uint8_t *ip = f + ETH_HLEN;
	size_t ihl, tot;

	if (len < ETH_HLEN + 20 || get16(f + 12) != ETH_P_IPV4 || (ip[0] >> 4) != 4)
		return NULL;
	ihl = (size_t)(ip[0] & 15) * 4;
	tot = get16(ip + 2);
	if (ihl < 20 || tot < ihl + TCP_MIN_HLEN || tot > len - ETH_HLEN)
		return NULL;
	if (ip[9] != IP_PROTO_TCP || (get16(ip + 6) & 0x3fff) != 0)
		return NULL;
	*tcp = ip + ihl;
	return ip;
}

static void set_addr(uint8_t *ip, uint8_t *tcp, size_t off, uint32_t to)
{
	uint32_t from = get32(ip + off);

	put32(ip + off, to);
	csum_replace32(ip + 10, from, to);
	/* The TCP checksum covers the pseudo-header's addresses (RFC 9293 §3.1). */
	csum_replace32(tcp + 16, from, to);
}

enum mmds_net_verdict mmds_net_to_slirp(uint8_t *f, size_t len, uint32_t mmds_ip, uint32_t fwd_ip)
{
	uint8_t *ip, *tcp;

	if (len >= ETH_HLEN + 28 && get16(f + 12) == ETH_P_ARP)
		return mmds_net_arp_reply(f, len, mmds_ip, (const uint8_t[6]){ 0 }, NULL)
			       ? MMDS_NET_ARP
			       : MMDS_NET_PASS;
	ip = tcp_of(f, len, &tcp);
	if (!ip || get32(ip + 16) != mmds_ip || get16(tcp + 2) != MMDS_NET_PORT)
		return MMDS_NET_PASS;
	set_addr(ip, tcp, 16, fwd_ip);
	return MMDS_NET_REWRITTEN;
}

bool mmds_net_from_slirp(uint8_t *f, size_t len, uint32_t mmds_ip, uint32_t fwd_ip)
{
	uint8_t *tcp, *ip = tcp_of(f, len, &tcp);

	if (!ip || get32(ip + 12) != fwd_ip || get16(tcp) != MMDS_NET_PORT)
		return false;
	set_addr(ip, tcp, 12, mmds_ip);
	return true;
}

/* RFC 826: htype 1 (Ethernet), ptype IPv4, hlen 6, plen 4, then op, sender, target. */
static void put_arp(uint8_t *out, const uint8_t dst[6], uint16_t op, const uint8_t sha[6],
		    uint32_t sip, const uint8_t *tha_tip)
{
	memcpy(out, dst, 6);
	memcpy(out + 6, sha, 6);
	put16(out + 12, ETH_P_ARP);
	put16(out + 14, 1);
	put16(out + 16, ETH_P_IPV4);
	out[18] = 6;
	out[19] = 4;
	put16(out + 20, op);
	memcpy(out + 22, sha, 6);
	put32(out + 28, sip);
	memcpy(out + 32, tha_tip, 10);
}

/* op 1 (request) / 2 (reply).  out may be NULL: only say whether req is a request for
 * mmds_ip. */
size_t mmds_net_arp_reply(const uint8_t *req, size_t len, uint32_t mmds_ip, const uint8_t mac[6],
			  uint8_t *out)
{
	const uint8_t *a = req + ETH_HLEN;

	if (len < ETH_HLEN + 28 || get16(req + 12) != ETH_P_ARP || get16(a) != 1 ||
	    get16(a + 2) != ETH_P_IPV4 || a[4] != 6 || a[5] != 4 || get16(a + 6) != 1 ||
	    get32(a + 24) != mmds_ip)
		return 0;
	if (!out)
		return MMDS_NET_ARP_LEN;
	/* To the asker, from MMDS at mac; target: the asker's MAC and IPv4. */
	put_arp(out, req + 6, 2, mac, mmds_ip, a + 8);
	return MMDS_NET_ARP_LEN;
}

size_t mmds_net_garp(const uint8_t mac[6], uint32_t ip, uint8_t *out)
{
	static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	uint8_t target[10] = { 0 };

	put32(target + 6, ip); /* target IP = sender IP: gratuitous */
	put_arp(out, bcast, 1, mac, ip, target);
	return MMDS_NET_ARP_LEN;
}

enum mmds_net_tap_verdict mmds_net_tap_out(uint8_t *f, size_t len, uint32_t mmds_ip,
					   uint32_t inner_ip, uint32_t *guest_ip, uint16_t *port)
{
	uint8_t *ip, *tcp;

	if (mmds_net_arp_reply(f, len, mmds_ip, (const uint8_t[6]){ 0 }, NULL))
		return MMDS_NET_TAP_ARP;
	ip = tcp_of(f, len, &tcp);
	if (!ip || get32(ip + 16) != mmds_ip || get16(tcp + 2) != MMDS_NET_PORT)
		return MMDS_NET_TAP_PASS;
	*guest_ip = get32(ip + 12);
	*port = get16(tcp);
	set_addr(ip, tcp, 12, inner_ip);
	return MMDS_NET_TAP_TCP;
}

bool mmds_net_tap_in(uint8_t *f, size_t len, uint32_t mmds_ip, uint32_t inner_ip,
		     const uint32_t *guest_by_port)
{
	uint8_t *tcp, *ip = tcp_of(f, len, &tcp);
	uint32_t to;

	if (!ip || get32(ip + 12) != mmds_ip || get16(tcp) != MMDS_NET_PORT ||
	    get32(ip + 16) != inner_ip)
		return false;
	to = guest_by_port[get16(tcp + 2)];
	if (!to)
		return false;
	set_addr(ip, tcp, 16, to);
	return true;
}
