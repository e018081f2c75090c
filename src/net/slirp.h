/* User-mode networking back end (`--net user`): libslirp's NAT with its built-in DHCP and DNS
 * on 10.0.2.0/24 (guest 10.0.2.15, host 10.0.2.2 when host loopback is allowed, DNS
 * 10.0.2.3), host-to-guest port forwards, no privileges.  slirp's sockets and timers run on
 * the event loop. */
#ifndef IGNITION_NET_SLIRP_H
#define IGNITION_NET_SLIRP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct net_backend;

/* net_slirp_create() flags.  HOST_LOOPBACK: connections the guest makes to 10.0.2.2 (the
 * "host") reach the host's 127.0.0.1; off by default, so the guest gets NAT to the outside
 * but not the host's loopback-only services.  RESTRICTED: the guest cannot start any outbound
 * connection (DHCP still answers, host forwards still work), for sandboxes. */
#define NET_SLIRP_HOST_LOOPBACK 1u
#define NET_SLIRP_RESTRICTED	2u

/* Guest address slirp's DHCP hands out first, and the default forward target. */
#define NET_SLIRP_GUEST_ADDR "10.0.2.15"
#define NET_SLIRP_MAX_FWD    16

/* A host-to-guest forward: hostfwd=tcp|udp:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT.
 * Addresses in network byte order; host_addr 0 = any, guest_addr 0 = NET_SLIRP_GUEST_ADDR. */
struct net_slirp_fwd {
	bool udp;
	uint32_t host_addr;
	uint16_t host_port;
	uint32_t guest_addr;
	uint16_t guest_port;
};

/* Parse one forward in the syntax above (pure; the CLI uses it).  0 or -EINVAL. */
int net_slirp_parse_fwd(const char *s, struct net_slirp_fwd *out)
	__attribute__((warn_unused_result));

/* Create the slirp stack with NET_SLIRP_* `flags` and listen on every forward's host port.
 * 0, or -errno with one line for the user in `err` (-EADDRINUSE: a forward's host port is
 * taken). */
int net_slirp_create(const struct net_slirp_fwd *fwd, int nr_fwd, unsigned flags,
		     struct net_backend **out, char *err, size_t err_size)
	__attribute__((warn_unused_result));

/* Serve MMDS `m` to this back end's guest (before it starts): an HTTP server on a private
 * Unix socket that slirp connects the guest's TCP connections to MMDS_IP:80 to (docs/mmds.md).
 * 0, or -errno with one line in err. */
struct mmds;
int net_slirp_add_mmds(struct net_backend *be, struct mmds *m, char *err, size_t err_size)
	__attribute__((warn_unused_result));

#endif
