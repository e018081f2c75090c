/* The interface between virtio-net and a network back end (slirp, TAP, a test fake).
 * Everything here runs on the event-loop thread, except set_rx_enabled, which any thread may
 * call.
 *
 * Frames reach the guest one of two ways.  A back end that owns its buffer (slirp) pushes each
 * frame with net_backend_deliver() and the device copies it into receive buffers; at the end of
 * a batch it calls net_backend_flush(), so the guest gets one interrupt per batch.  A back end
 * that can read into any memory (TAP) has ops->recv and calls net_backend_readable() when
 * frames wait: the device then pulls them with recv straight into the guest's buffers (no
 * copy), at most a budget of them per call, and the back end calls again while more wait. */
#ifndef IGNITION_NET_BACKEND_H
#define IGNITION_NET_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

struct evloop;
struct net_backend;

/* The virtio-net header both ways when a back end has vnet_hdr (virtio 1.2 §5.1.6:
 * struct virtio_net_hdr with VERSION_1, num_buffers included). */
#define NET_VNET_HDR_BYTES 12
/* Largest Ethernet frame either way, without the header: a 64 KiB GSO packet plus the
 * Ethernet header (the bound Linux and other VMMs use). */
#define NET_MAX_FRAME 65550u
/* Shortest frame worth delivering: an Ethernet header. */
#define NET_MIN_FRAME 14u

struct net_backend_ops {
	const char *name;
	/* Start watching the back end's fds on `ev` (rx begins enabled). */
	int (*start)(struct net_backend *be, struct evloop *ev) __attribute__((warn_unused_result));
	/* Read one waiting frame straight into iov[0..n) (with be->vnet_hdr, the header first).
	 * Returns its length, -EAGAIN when no frame waits, or another -errno.  A frame that did
	 * not fit is cut off (the rest is lost) and the result is then at least the iovec
	 * list's size (the TUN driver returns what it wrote), so the device offers more than
	 * the largest frame.  NULL for back ends that push frames with net_backend_deliver(). */
	ssize_t (*recv)(struct net_backend *be, const struct iovec *iov, int n);
	/* Send one frame to the network.  With be->vnet_hdr, iov[0..n) begins with the
	 * NET_VNET_HDR_BYTES header; otherwise it is the bare frame with complete checksums.
	 * 0, or -errno when the frame was dropped. */
	int (*send)(struct net_backend *be, const struct iovec *iov, int n);
	/* Stop (false) or resume (true) reading from the network: back-pressure while the guest
	 * has no receive buffers.  Any thread. */
	void (*set_rx_enabled)(struct net_backend *be, bool on);
	/* The guest accepted these virtio-net feature bits: which offloads it can receive
	 * (GUEST_CSUM, GUEST_TSO4...).  May be NULL. */
	void (*set_offload)(struct net_backend *be, uint64_t guest_features);
	/* Stop watching fds and free the back end. */
	void (*destroy)(struct net_backend *be);
};

/* Embedded first in every back end's own state. */
struct net_backend {
	const struct net_backend_ops *ops;
	/* Frames carry a virtio-net header both ways: checksum and segmentation offloads pass
	 * through (TAP with IFF_VNET_HDR).  Without it the device completes checksums. */
	bool vnet_hdr;
	/* Offloads the back end can take from the guest (VIRTIO_NET_F_* bits). */
	uint64_t host_features;
	/* Largest frame (without the header) ops->recv hands over while the guest takes no
	 * receive segmentation offload: the link MTU plus Ethernet and VLAN headers.  0 means
	 * NET_MAX_FRAME.  The device offers that many bytes of receive buffers per frame. */
	size_t rx_frame_max;
	/* Set by the device: deliver one received frame to the guest.  `hdr` is the
	 * NET_VNET_HDR_BYTES header (vnet_hdr back ends) or NULL. */
	void (*receive)(void *opaque, const uint8_t *hdr, const uint8_t *frame, size_t len);
	/* Set by the device: a batch of receive() calls ended (signal the guest once). */
	void (*receive_flush)(void *opaque);
	/* Set by the device: frames wait behind ops->recv; pull some now. */
	void (*readable)(void *opaque);
	void *receive_opaque;
};

/* Deliver a frame to whoever receives from `be` (drops it when nobody does). */
static inline void net_backend_deliver(struct net_backend *be, const uint8_t *hdr,
				       const uint8_t *frame, size_t len)
{
	if (be->receive)
		be->receive(be->receive_opaque, hdr, frame, len);
}

/* A batch of net_backend_deliver() calls ended. */
static inline void net_backend_flush(struct net_backend *be)
{
	if (be->receive_flush)
		be->receive_flush(be->receive_opaque);
}

/* Frames wait behind ops->recv.  False when nobody pulls them (the caller then drops them). */
static inline bool net_backend_readable(struct net_backend *be)
{
	if (!be->readable)
		return false;
	be->readable(be->receive_opaque);
	return true;
}

#endif
