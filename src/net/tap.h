/* TAP back end (`--net tap=NAME`): an existing or newly created TAP device, opened with a
 * virtio-net header so checksum and segmentation offloads pass straight through. */
#ifndef IGNITION_NET_TAP_H
#define IGNITION_NET_TAP_H

#include <stddef.h>

struct net_backend;

/* Open (creating it if missing) TAP device `name` and bring it up.  0, or -errno with one
 * line for the user in `err` (-EPERM: the caller lacks CAP_NET_ADMIN). */
int net_tap_create(const char *name, struct net_backend **out, char *err, size_t err_size)
	__attribute__((warn_unused_result));

/* Serve MMDS `m` to this back end's guest (before it starts): the guest's ARP requests for
 * MMDS_IP and its TCP to MMDS_IP:80 go to a private libslirp instance in restricted mode
 * with the MMDS forward of user networking, instead of the TAP device (docs/mmds.md).  0, or
 * -errno with one line in err. */
struct mmds;
int net_tap_add_mmds(struct net_backend *be, struct mmds *m, char *err, size_t err_size)
	__attribute__((warn_unused_result));

#endif
