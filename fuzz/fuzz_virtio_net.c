/* virtio-net (virtio 1.2 §5.1) driven by a hostile driver (fuzz/harness.h), over a fake back end
 * that checks every frame it is handed and injects received frames of fuzzer bytes: transmit
 * headers (checksum offsets, GSO), receive buffers (mergeable or not), back-pressure.
 * Input: [cfg] then harness operations; cfg bit 0 makes the back end a vnet-header one (TAP:
 * headers pass through, TSO offered); bit 1 makes it a pull back end like TAP (vnet header,
 * ops->recv: frames are read straight into the guest's buffers; bit 2: an MTU of 1500; bit 3:
 * recv returns a cut-off frame's full length).  The device operation is u8
 * what, then
 *   0: u16 len, [12-byte header for vnet back ends], len frame bytes (zero-padded): a frame
 *      from the network (pull: u8 copies first; that many wait and the device is told);
 *   1: u8 up: link up or down;  2: read the counters;  3: pull: "frames wait" again. */
#include "devices/virtio/net.h"
#include "devices/virtio/virtq.h"
#include "harness.h"
#include "net/backend.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct fake_be {
	struct net_backend be;
	uint64_t sent, checksum;
	unsigned waiting;   /* pull: copies of frame[0..waiting_len) still to be read */
	size_t waiting_len; /* header included */
	bool full_len;	    /* recv returns the frame's length even when cut off */
};

static struct fake_be fb;
static uint8_t frame[NET_VNET_HDR_BYTES + NET_MAX_FRAME + 16];

/* Read every byte the device hands over, so ASan sees any iovec outside guest RAM. */
static int fb_send(struct net_backend *be, const struct iovec *iov, int n)
{
	size_t total = 0;

	FUZZ_CHECK(n >= 1 && n <= VIRTQ_ELEM_MAX_SEGS + 1);
	for (int i = 0; i < n; i++) {
		const uint8_t *p = iov[i].iov_base;

		for (size_t k = 0; k < iov[i].iov_len; k++)
			fb.checksum += p[k];
		total += iov[i].iov_len;
	}
	FUZZ_CHECK(total >= NET_MIN_FRAME);
	FUZZ_CHECK(total <= NET_MAX_FRAME + (be->vnet_hdr ? NET_VNET_HDR_BYTES : 0));
	fb.sent++;
	return 0;
}

/* Like the TUN driver: write what fits, return what was written (cfg bit 3: the frame's
 * whole length, as a kernel might).  Every byte goes through the device's iovecs, so ASan
 * sees any that is not guest RAM or the device's own buffer. */
static ssize_t fb_recv(struct net_backend *be, const struct iovec *iov, int n)
{
	size_t off = 0, total = 0;

	FUZZ_CHECK(n >= 1 && n <= 1024);
	for (int i = 0; i < n; i++)
		total += iov[i].iov_len;
	FUZZ_CHECK(total >= NET_VNET_HDR_BYTES);
	if (!fb.waiting)
		return -EAGAIN;
	fb.waiting--;
	for (int i = 0; i < n && off < fb.waiting_len; i++) {
		size_t take = fb.waiting_len - off < iov[i].iov_len ? fb.waiting_len - off
								    : iov[i].iov_len;

		memcpy(iov[i].iov_base, frame + off, take);
		off += take;
	}
	return (ssize_t)(fb.full_len ? fb.waiting_len : off);
}

static void fb_set_rx(struct net_backend *be, bool on)
{
}

static void fb_offload(struct net_backend *be, uint64_t features)
{
}

static void fb_destroy(struct net_backend *be)
{
}

static const struct net_backend_ops fb_ops = {
	.name = "fuzz",
	.send = fb_send,
	.set_rx_enabled = fb_set_rx,
	.set_offload = fb_offload,
	.destroy = fb_destroy,
};

static const struct net_backend_ops fb_pull_ops = {
	.name = "fuzz-pull",
	.recv = fb_recv,
	.send = fb_send,
	.set_rx_enabled = fb_set_rx,
	.set_offload = fb_offload,
	.destroy = fb_destroy,
};

static int net_create(struct vh *h, uint8_t cfg, void **dev)
{
	static const uint8_t mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };

	memset(&fb, 0, sizeof(fb));
	fb.be.ops = cfg & 2 ? &fb_pull_ops : &fb_ops;
	fb.be.vnet_hdr = cfg & 3;
	fb.be.rx_frame_max = cfg & 4 ? 1518 : 0;
	fb.full_len = cfg & 8;
	if (fb.be.vnet_hdr)
		fb.be.host_features =
			VIRTIO_BIT(VIRTIO_NET_F_HOST_TSO4) | VIRTIO_BIT(VIRTIO_NET_F_HOST_TSO6) |
			VIRTIO_BIT(VIRTIO_NET_F_GUEST_TSO4) | VIRTIO_BIT(VIRTIO_NET_F_GUEST_TSO6);
	return virtio_net_create(&fb.be, mac, (struct virtio_net **)dev);
}

static void net_op(struct vh *h, void *dev, struct fuzz_in *in)
{
	struct virtio_net_stats st;

	switch (fuzz_u8(in) % 4) {
	case 0: {
		size_t len, n;
		const uint8_t *hdr = NULL, *p;

		if (fb.be.ops->recv) {
			unsigned copies = 1 + fuzz_u8(in) % 4;

			len = fuzz_u16(in);
			n = fuzz_bytes(in, NET_VNET_HDR_BYTES + len, &p);
			memcpy(frame, p, n);
			memset(frame + n, 0, NET_VNET_HDR_BYTES + len - n);
			fb.waiting = copies;
			fb.waiting_len = NET_VNET_HDR_BYTES + len;
			net_backend_readable(&fb.be);
			return;
		}
		len = fuzz_u16(in);
		if (fb.be.vnet_hdr && fuzz_bytes(in, NET_VNET_HDR_BYTES, &hdr) < NET_VNET_HDR_BYTES)
			return;
		/* Up to 64 KiB - 1: the length checks at NET_MAX_FRAME are below that. */
		n = fuzz_bytes(in, len, &p);
		memcpy(frame, p, n);
		memset(frame + n, 0, len - n);
		net_backend_deliver(&fb.be, hdr, frame, len);
		break;
	}
	case 1:
		virtio_net_set_link(dev, fuzz_u8(in) & 1);
		break;
	case 2:
		virtio_net_get_stats(dev, &st);
		FUZZ_CHECK(st.tx_frames == fb.sent);
		break;
	default:
		net_backend_readable(&fb.be);
		net_backend_flush(&fb.be);
		break;
	}
}

static const struct vh_device net_dev = {
	.ops = &virtio_net_ops,
	.create = net_create,
	.op = net_op,
};

static void seed_frame(struct fuzz_seed *s, const uint8_t *hdr, uint16_t len)
{
	uint8_t f[64] = { 0 };

	vh_seed_device(s);
	seed_u8(s, 0);
	seed_u16(s, len);
	if (hdr)
		seed_bytes(s, hdr, NET_VNET_HDR_BYTES);
	memset(f, 0xff, 6); /* broadcast, from 52:54:00:..., IPv4 */
	f[6] = 0x52;
	f[12] = 0x08;
	seed_bytes(s, f, len < sizeof(f) ? len : sizeof(f));
}

static void write_seeds(void)
{
	static struct fuzz_seed s;
	const struct fake_buf tx[2] = { { 0x1000, VIRTIO_NET_HDR_BYTES, false },
					{ 0x1100, 60, false } };
	const struct fake_buf rx = { 0x2000, 1526, true };
	const struct fake_buf rx_small = { 0x3000, 64, true };
	uint8_t hdr[VIRTIO_NET_HDR_BYTES] = { 0 }, eth[60] = { 0 };

	/* Transmit a plain frame and one whose UDP checksum the device completes; receive one
	 * frame into a posted buffer. */
	memset(eth, 0xff, 6);
	eth[12] = 0x08;
	seed_u8(&s, 0);
	vh_seed_bring_up(&s, 0, 4);
	vh_seed_mem(&s, 0x1000, hdr, sizeof(hdr));
	vh_seed_mem(&s, 0x1100, eth, sizeof(eth));
	vh_seed_chain(&s, 1, tx, 2);
	vh_seed_notify(&s, 1);
	hdr[VIRTIO_NET_HDR_FLAGS] = VIRTIO_NET_HDR_F_NEEDS_CSUM;
	virtio_put_le(hdr + VIRTIO_NET_HDR_CSUM_START, 34, 2);
	virtio_put_le(hdr + VIRTIO_NET_HDR_CSUM_OFFSET, 6, 2);
	vh_seed_mem(&s, 0x1000, hdr, sizeof(hdr));
	vh_seed_chain(&s, 1, tx, 2);
	vh_seed_notify(&s, 1);
	vh_seed_chain(&s, 0, &rx, 1);
	vh_seed_notify(&s, 0);
	seed_frame(&s, NULL, 60);
	fuzz_seed_save(&s, "plain");

	/* Without MRG_RXBUF (the fourth device bit offered: clear bit 5), a frame too big for the one
	 * buffer, then a link bounce. */
	seed_u8(&s, 0);
	vh_seed_bring_up(&s, 0x20, 4);
	vh_seed_chain(&s, 0, &rx_small, 1);
	vh_seed_notify(&s, 0);
	seed_frame(&s, NULL, 200);
	vh_seed_device(&s);
	seed_u8(&s, 1);
	seed_u8(&s, 0);
	vh_seed_device(&s);
	seed_u8(&s, 1);
	seed_u8(&s, 1);
	fuzz_seed_save(&s, "no-mrg");

	/* Mergeable buffers: a frame that spans three small buffers; a frame before any buffer
	 * (it waits), then buffers. */
	seed_u8(&s, 0);
	vh_seed_bring_up(&s, 0, 4);
	seed_frame(&s, NULL, 60);
	for (unsigned i = 0; i < 3; i++) {
		struct fake_buf b = { 0x3000 + 0x100 * i, 32, true };

		vh_seed_chain(&s, 0, &b, 1);
	}
	vh_seed_notify(&s, 0);
	seed_frame(&s, NULL, 60);
	fuzz_seed_save(&s, "mrg");

	/* vnet header back end: a TSO frame out, a GSO frame in. */
	memset(hdr, 0, sizeof(hdr));
	hdr[VIRTIO_NET_HDR_FLAGS] = VIRTIO_NET_HDR_F_NEEDS_CSUM;
	hdr[VIRTIO_NET_HDR_GSO_TYPE] = VIRTIO_NET_HDR_GSO_TCPV4;
	virtio_put_le(hdr + VIRTIO_NET_HDR_HDR_LEN, 54, 2);
	virtio_put_le(hdr + VIRTIO_NET_HDR_GSO_SIZE, 1448, 2);
	virtio_put_le(hdr + VIRTIO_NET_HDR_CSUM_START, 34, 2);
	virtio_put_le(hdr + VIRTIO_NET_HDR_CSUM_OFFSET, 16, 2);
	seed_u8(&s, 1);
	vh_seed_bring_up(&s, 0, 4);
	vh_seed_mem(&s, 0x1000, hdr, sizeof(hdr));
	vh_seed_mem(&s, 0x1100, eth, sizeof(eth));
	vh_seed_chain(&s, 1, tx, 2);
	vh_seed_notify(&s, 1);
	vh_seed_chain(&s, 0, &rx, 1);
	vh_seed_notify(&s, 0);
	seed_frame(&s, hdr, 60);
	fuzz_seed_save(&s, "vnet");

	/* Pull back end (TAP): mergeable buffers, three frames waiting, the third past the
	 * buffers posted (parked), then more buffers. */
	seed_u8(&s, 2 | 4);
	vh_seed_bring_up(&s, 0, 4);
	for (unsigned i = 0; i < 3; i++) {
		struct fake_buf b = { 0x3000 + 0x100 * i, 64, true };

		vh_seed_chain(&s, 0, &b, 1);
	}
	vh_seed_notify(&s, 0);
	vh_seed_device(&s);
	seed_u8(&s, 0);
	seed_u8(&s, 2);
	seed_u16(&s, 60);
	memset(hdr, 0, sizeof(hdr));
	seed_bytes(&s, hdr, sizeof(hdr));
	seed_bytes(&s, eth, sizeof(eth));
	vh_seed_chain(&s, 0, &rx, 1);
	vh_seed_notify(&s, 0);
	vh_seed_device(&s);
	seed_u8(&s, 3);
	fuzz_seed_save(&s, "pull");
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	write_seeds();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return vh_run(&net_dev, data, size);
}
