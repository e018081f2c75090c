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

#endif
