/* How a guest on user networking reaches MMDS (docs/mmds.md): libslirp can connect guest TCP
 * connections to a Unix socket (slirp_add_unix) only at addresses inside its virtual network,
 * so frames to MMDS_IP:80 are rewritten to a spare address of that network on the way into
 * slirp, and its answers rewritten back on the way out; ARP requests for MMDS_IP are answered
 * here.  Pure functions on frame bytes (every length checked), unit-tested and fuzzed. */
#ifndef IGNITION_NET_MMDS_NET_H
#define IGNITION_NET_MMDS_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MMDS_NET_PORT	 80
#define MMDS_NET_ARP_LEN 42 /* Ethernet + ARP for IPv4 over Ethernet (RFC 826) */

enum mmds_net_verdict {
	MMDS_NET_PASS,	    /* not for MMDS: hand the frame on unchanged */
	MMDS_NET_REWRITTEN, /* a TCP segment to mmds_ip:80, now addressed to fwd_ip */
	MMDS_NET_ARP,	    /* an ARP request for mmds_ip: answer it with mmds_net_arp_reply() */
};

/* Guest → slirp.  Addresses in host order.  f[0..len) is changed only for REWRITTEN. */
enum mmds_net_verdict mmds_net_to_slirp(uint8_t *f, size_t len, uint32_t mmds_ip, uint32_t fwd_ip);
/* Slirp → guest: a TCP segment from fwd_ip:80 gets mmds_ip as its source.  True if changed. */
bool mmds_net_from_slirp(uint8_t *f, size_t len, uint32_t mmds_ip, uint32_t fwd_ip);
/* The ARP reply to the request req[0..len) for mmds_ip, from `mac`, into out (at least
 * MMDS_NET_ARP_LEN bytes).  Its length, or 0 if req is not such a request. */
size_t mmds_net_arp_reply(const uint8_t *req, size_t len, uint32_t mmds_ip, const uint8_t mac[6],
			  uint8_t *out);

#endif
