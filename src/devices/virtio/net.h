/* virtio-net (virtio 1.2 §5.1): one receive and one transmit queue over a network back end
 * (src/net/: libslirp user networking or a TAP device).  `--net user|tap=NAME`. */
#ifndef IGNITION_DEVICES_VIRTIO_NET_H
#define IGNITION_DEVICES_VIRTIO_NET_H

#include "devices/virtio/virtio.h"
#include "util/ratelimit.h"

#include <stdbool.h>
#include <stdint.h>

struct devmgr;
struct net_backend;
struct virtio_mmio;

/* Feature bits (virtio 1.2 §5.1.3). */
#define VIRTIO_NET_F_CSUM	1
#define VIRTIO_NET_F_GUEST_CSUM 2
#define VIRTIO_NET_F_MTU	3
#define VIRTIO_NET_F_MAC	5
#define VIRTIO_NET_F_GUEST_TSO4 7
#define VIRTIO_NET_F_GUEST_TSO6 8
#define VIRTIO_NET_F_GUEST_ECN	9
#define VIRTIO_NET_F_GUEST_UFO	10
#define VIRTIO_NET_F_HOST_TSO4	11
#define VIRTIO_NET_F_HOST_TSO6	12
#define VIRTIO_NET_F_HOST_ECN	13
#define VIRTIO_NET_F_HOST_UFO	14
#define VIRTIO_NET_F_MRG_RXBUF	15
#define VIRTIO_NET_F_STATUS	16
#define VIRTIO_NET_F_CTRL_VQ	17

/* Config space (§5.1.4): mac[6], le16 status; the rest needs features we do not offer. */
#define VIRTIO_NET_CFG_MAC    0
#define VIRTIO_NET_CFG_STATUS 6
#define VIRTIO_NET_CFG_SIZE   8
#define VIRTIO_NET_S_LINK_UP  1u

/* struct virtio_net_hdr (§5.1.6), as the driver uses it with VERSION_1: 12 bytes. */
#define VIRTIO_NET_HDR_FLAGS	    0
#define VIRTIO_NET_HDR_GSO_TYPE	    1
#define VIRTIO_NET_HDR_HDR_LEN	    2
#define VIRTIO_NET_HDR_GSO_SIZE	    4
#define VIRTIO_NET_HDR_CSUM_START   6
#define VIRTIO_NET_HDR_CSUM_OFFSET  8
#define VIRTIO_NET_HDR_NUM_BUFFERS  10
#define VIRTIO_NET_HDR_BYTES	    12
#define VIRTIO_NET_HDR_F_NEEDS_CSUM 1u
#define VIRTIO_NET_HDR_F_DATA_VALID 2u
#define VIRTIO_NET_HDR_GSO_NONE	    0u
#define VIRTIO_NET_HDR_GSO_TCPV4    1u
#define VIRTIO_NET_HDR_GSO_UDP	    3u
#define VIRTIO_NET_HDR_GSO_TCPV6    4u
#define VIRTIO_NET_HDR_GSO_ECN	    0x80u

#define VIRTIO_NET_RXQ	      0
#define VIRTIO_NET_TXQ	      1
#define VIRTIO_NET_QUEUE_SIZE 256u
/* Frames kept for the guest while it has no receive buffers; past this the back end is
 * paused, and what still arrives is dropped. */
#define VIRTIO_NET_PENDING_MAX 64u

struct virtio_net;

/* Counters (tests, diagnostics). */
struct virtio_net_stats {
	uint64_t rx_frames, rx_bytes, rx_dropped;
	uint64_t tx_frames, tx_bytes, tx_dropped;
};

/* The virtio ops of a network device (register it with virtio_mmio_add, or virtio_net_add). */
extern const struct virtio_device_ops virtio_net_ops;

/* A device over back end `be` (which it then owns) with MAC address `mac`. */
int virtio_net_create(struct net_backend *be, const uint8_t mac[6], struct virtio_net **out)
	__attribute__((warn_unused_result));

/* Create the device, register it as `id` and start the back end on the manager's event loop.
 * On failure the back end is destroyed. */
int virtio_net_add(struct devmgr *dm, const char *id, struct net_backend *be, const uint8_t mac[6],
		   struct virtio_net **out) __attribute__((warn_unused_result));

/* Link up or down (VIRTIO_NET_F_STATUS): the config status changes and the driver gets a
 * configuration-change interrupt, so a link bounce makes the guest renew its DHCP lease.
 * While the link is down frames are dropped both ways.  Any thread. */
void virtio_net_set_link(struct virtio_net *n, bool up);

/* Take the link down and bring it back up as soon as the driver has read the status field
 * (so the guest sees the carrier drop, however long it takes to look): after a restore, a
 * guest renews its lease and re-probes the NIC (guest/README.md, "Networking").  Only when
 * the driver is running with VIRTIO_NET_F_STATUS and the link is up; returns whether it
 * bounced.  Any thread. */
bool virtio_net_bounce_link(struct virtio_net *n);

/* Current link state. */
bool virtio_net_link_up(struct virtio_net *n);

/* Give a restored device another MAC address (a clone's own identity, DESIGN.md §5).  A
 * restore brings back the MAC the guest was using, whatever the device was created with; main
 * calls this after devmgr's restore when the MAC was chosen for this run (mac=, or a fresh
 * one for a clone), then virtio_net_bounce_link().  Only config space changes: there is no
 * virtio way for a device to change a running driver's MAC (CTRL_MAC_ADDR goes the other
 * way) and Linux's driver reads it at probe, so the guest re-probes the NIC when the link
 * bounces (ign-netwatch in the test rootfs unbinds and binds the driver).  -EINVAL for a multicast or all-zero MAC.
 * Any thread. */
int virtio_net_set_mac_after_restore(struct virtio_net *n, const uint8_t mac[6])
	__attribute__((warn_unused_result));

/* Limit receiving (`rx`: bytes of frames delivered to the guest, one op per frame) and
 * transmitting (`tx`: bytes of frames the guest sends); NULL leaves that direction as it is,
 * zero sizes remove its limit.  A received frame that must wait stays in the back end (it is
 * paused; frames already read wait in the device) and a transmit chain stays in its ring until
 * the limiter's timer fires on the event loop of virtio_net_add.  Callable before activation
 * or at run time on the event-loop thread.  0, -EINVAL (ratelimit_validate; nothing changed),
 * or -errno of a timer. */
int virtio_net_set_ratelimit(struct virtio_net *n, const struct ratelimit_cfg *rx,
			     const struct ratelimit_cfg *tx) __attribute__((warn_unused_result));

/* A limiter's timer expired (tx: the transmit one): resume that direction (the event-loop
 * callback; unit tests). */
void virtio_net_ratelimit_fire(struct virtio_net *n, bool tx);

/* Copy of the counters. */
void virtio_net_get_stats(struct virtio_net *n, struct virtio_net_stats *out);

/* Parse "XX:XX:XX:XX:XX:XX" (hex, case-insensitive).  0 or -EINVAL. */
int virtio_net_parse_mac(const char *s, uint8_t mac[6]) __attribute__((warn_unused_result));

/* A random unicast, locally administered MAC (different for every VM). */
void virtio_net_random_mac(uint8_t mac[6]);

/* NEEDS_CSUM (§5.1.6.2): complete the checksum at start + offset over frame[start..len).  The
 * caller has checked start + offset + 2 <= len. */
void virtio_net_complete_csum(uint8_t *frame, size_t len, uint16_t start, uint16_t offset);

/* Free the device and its back end (also virtio_net_ops.destroy). */
void virtio_net_destroy(struct virtio_net *n);

#endif
