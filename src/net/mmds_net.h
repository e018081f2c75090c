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

/* TAP interfaces: a private slirp serves MMDS there, but the guest's address is outside
 * slirp's network, so TCP to MMDS gets `inner_ip` (an address inside it) as its source on the
 * way in, and the guest's address back as the destination on the way out. */
enum mmds_net_tap_verdict {
	MMDS_NET_TAP_PASS, /* not for MMDS: to the TAP device unchanged */
	MMDS_NET_TAP_ARP,  /* an ARP request for mmds_ip: to the private slirp as it is */
	MMDS_NET_TAP_TCP,  /* a TCP segment to mmds_ip:80, its source now inner_ip */
};

/* Guest → private slirp.  For TCP: the old source address in *guest_ip, the source port in
 * *port.  f[0..len) is changed only for TCP. */
enum mmds_net_tap_verdict mmds_net_tap_out(uint8_t *f, size_t len, uint32_t mmds_ip,
					   uint32_t inner_ip, uint32_t *guest_ip, uint16_t *port);
/* Private slirp → guest: a TCP segment from mmds_ip:80 to inner_ip gets the destination
 * guest_by_port[its destination port] (65536 entries).  False, f unchanged, for anything
 * else or a port with no address (0): not for the guest. */
bool mmds_net_tap_in(uint8_t *f, size_t len, uint32_t mmds_ip, uint32_t inner_ip,
		     const uint32_t *guest_by_port);
/* A gratuitous ARP request announcing `ip` at `mac` (RFC 5227 §3) into out (MMDS_NET_ARP_LEN
 * bytes): how slirp learns where inner_ip is.  Its length. */
size_t mmds_net_garp(const uint8_t mac[6], uint32_t ip, uint8_t *out);

#endif
