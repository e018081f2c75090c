/* virtio-net (virtio 1.2 §5.1) driven through the virtio-mmio transport, with frames built in
 * fake guest memory and a fake back end that records what the device sends and injects what
 * it receives.  Includes a hostile driver: short and oversized frames, lying headers,
 * undersized receive buffers, garbage chains. */
#include "core/cli.h"
#include "core/irq.h"
#include "devices/virtio/mmio.h"
#include "devices/virtio/net.h"
#include "devices/virtio/virtio.h"
#include "devices/virtio/virtq.h"
#include "fake_driver.h"
#include "fake_virtq.h"
#include "metrics_json.h"
#include "net/backend.h"
#include "net/slirp.h"
#include "snapshot/snap.h"

#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define RAM_SIZE      (4u << 20)
#define QSIZE	      16
#define RX_DESC	      0x1000
#define RX_AVAIL      0x2000
#define RX_USED	      0x3000
#define TX_DESC	      0x4000
#define TX_AVAIL      0x5000
#define TX_USED	      0x6000
#define TX_HDR	      0x8000
#define RX_BUF	      0x100000 /* QSIZE buffers of 4 KiB */
#define TX_BUF	      0x200000 /* up to 128 KiB */
#define BIG_BUF	      0x300000 /* up to 128 KiB */
#define HDR	      VIRTIO_NET_HDR_BYTES
#define ALL_FEATURES  (~0ull)
#define NO_MRG	      (~VIRTIO_BIT(VIRTIO_NET_F_MRG_RXBUF))
#define NO_GUEST_CSUM (~VIRTIO_BIT(VIRTIO_NET_F_GUEST_CSUM))
#define NO_GUEST_TSO  (~(VIRTIO_BIT(VIRTIO_NET_F_GUEST_TSO4) | VIRTIO_BIT(VIRTIO_NET_F_GUEST_TSO6)))
#define NO_EVENT_IDX  (~VIRTIO_BIT(VIRTIO_F_EVENT_IDX))

static const uint8_t test_mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };

static void make_frame(uint8_t *p, size_t len);

struct fake_be {
	struct net_backend be;
	const struct irq_line *irq; /* the device's line: interrupts counted at each call */
	const struct fake_mem *mem; /* guest RAM, to tell its buffers from the device's */
	unsigned sent;
	uint64_t irqs_at_send[256]; /* interrupts raised when frame i was sent */
	size_t last_len;
	uint8_t last[HDR + NET_MAX_FRAME];
	bool rx_on;
	unsigned rx_toggles;
	uint64_t offload;
	bool destroyed;
	/* Pull mode (ops->recv, like TAP): `pull_n` frames of `pull_len` bytes wait, each
	 * behind `pull_hdr`; the frame number is at byte 100.  Like the TUN driver, recv
	 * cuts a frame off at the end of the iovec list and returns the bytes written. */
	unsigned pull_n, pulled, recv_calls;
	size_t pull_len;
	uint8_t pull_hdr[HDR];
	const void *last_iov0;
	int last_iovcnt;
	size_t last_iov_bytes, last_guest_bytes;
	uint64_t irqs_at_recv[256];
};

struct fixture {
	struct fake_mem mem;
	struct fake_vq rx, tx;
	struct irq_line irq;
	struct fake_be fb;
	struct virtio_net *net;
	struct virtio_mmio *t;
};

static int fb_send(struct net_backend *be, const struct iovec *iov, int n)
{
	struct fake_be *f = (struct fake_be *)be;
	size_t off = 0;

	for (int i = 0; i < n; i++) {
		assert_true(off + iov[i].iov_len <= sizeof(f->last));
		memcpy(f->last + off, iov[i].iov_base, iov[i].iov_len);
		off += iov[i].iov_len;
	}
	f->last_len = off;
	if (f->sent < 256)
		f->irqs_at_send[f->sent] = f->irq->count;
	f->sent++;
	return 0;
}

static ssize_t fb_recv(struct net_backend *be, const struct iovec *iov, int n)
{
	struct fake_be *f = (struct fake_be *)be;
	static uint8_t frame[HDR + NET_MAX_FRAME + 64];
	size_t total = HDR + f->pull_len, off = 0;

	if (f->recv_calls < 256)
		f->irqs_at_recv[f->recv_calls] = f->irq->count;
	f->recv_calls++;
	if (f->pulled == f->pull_n)
		return -EAGAIN;
	/* What the frame was offered. */
	f->last_iov0 = n ? iov[0].iov_base : NULL;
	f->last_iovcnt = n;
	f->last_iov_bytes = f->last_guest_bytes = 0;
	for (int i = 0; i < n; i++) {
		const uint8_t *b = iov[i].iov_base;

		f->last_iov_bytes += iov[i].iov_len;
		if (b >= f->mem->buf && b < f->mem->buf + f->mem->size)
			f->last_guest_bytes += iov[i].iov_len;
	}
	memcpy(frame, f->pull_hdr, HDR);
	make_frame(frame + HDR, f->pull_len);
	frame[HDR + 100] = (uint8_t)f->pulled;
	f->pulled++;
	for (int i = 0; i < n && off < total; i++) {
		size_t take = total - off < iov[i].iov_len ? total - off : iov[i].iov_len;

		memcpy(iov[i].iov_base, frame + off, take);
		off += take;
	}
	return (ssize_t)off;
}

static void fb_set_rx(struct net_backend *be, bool on)
{
	struct fake_be *f = (struct fake_be *)be;

	f->rx_on = on;
	f->rx_toggles++;
}

static void fb_offload(struct net_backend *be, uint64_t features)
{
	((struct fake_be *)be)->offload = features;
}

static void fb_destroy(struct net_backend *be)
{
	((struct fake_be *)be)->destroyed = true;
}

static const struct net_backend_ops fb_ops = {
	.name = "fake",
	.send = fb_send,
	.set_rx_enabled = fb_set_rx,
	.set_offload = fb_offload,
	.destroy = fb_destroy,
};

static const struct net_backend_ops fb_pull_ops = {
	.name = "fake-pull",
	.recv = fb_recv,
	.send = fb_send,
	.set_rx_enabled = fb_set_rx,
	.set_offload = fb_offload,
	.destroy = fb_destroy,
};

static uint32_t rd(struct fixture *x, uint64_t off)
{
	return fdrv_rd(x->t, off);
}

static void wr(struct fixture *x, uint64_t off, uint32_t v)
{
	fdrv_wr(x->t, off, v);
}

static uint64_t device_features(struct fixture *x)
{
	return fdrv_device_features(x->t);
}

static void setup_queue(struct fixture *x, unsigned q, struct fake_vq *f, uint64_t desc,
			uint64_t avail, uint64_t used, uint16_t size)
{
	fdrv_queue(x->t, q, f, &x->mem, size, desc, avail, used, VIRTIO_NET_QUEUE_SIZE);
}

/* §3.1.1 with the offered features masked by `mask`, a transmit queue of `txsize`. */
static void bring_up_tx(struct fixture *x, uint64_t mask, uint16_t txsize)
{
	fdrv_negotiate(x->t, mask);
	setup_queue(x, VIRTIO_NET_RXQ, &x->rx, RX_DESC, RX_AVAIL, RX_USED, QSIZE);
	setup_queue(x, VIRTIO_NET_TXQ, &x->tx, TX_DESC, TX_AVAIL, TX_USED, txsize);
	fdrv_driver_ok(x->t);
}

static void bring_up(struct fixture *x, uint64_t mask)
{
	bring_up_tx(x, mask, QSIZE);
}

static int open_dev_ops(void **state, const struct net_backend_ops *ops, bool vnet_hdr,
			uint64_t mask)
{
	struct fixture *x = calloc(1, sizeof(*x));

	fake_mem_init(&x->mem, RAM_SIZE);
	x->irq.fd = -1;
	x->fb.irq = &x->irq;
	x->fb.mem = &x->mem;
	x->fb.be.ops = ops;
	x->fb.be.vnet_hdr = vnet_hdr;
	x->fb.rx_on = true;
	if (vnet_hdr)
		x->fb.be.host_features =
			VIRTIO_BIT(VIRTIO_NET_F_HOST_TSO4) | VIRTIO_BIT(VIRTIO_NET_F_GUEST_TSO4);
	assert_int_equal(virtio_net_create(&x->fb.be, test_mac, &x->net), 0);
	assert_int_equal(virtio_mmio_create(&x->mem.gm, &x->irq, &virtio_net_ops, x->net, &x->t),
			 0);
	bring_up(x, mask);
	*state = x;
	return 0;
}

static int open_dev(void **state, bool vnet_hdr, uint64_t mask)
{
	return open_dev_ops(state, &fb_ops, vnet_hdr, mask);
}

/* A pull back end like TAP: vnet header, ops->recv, an MTU of 1500. */
static int setup_pull(void **state)
{
	int ret = open_dev_ops(state, &fb_pull_ops, true, NO_GUEST_TSO);
	struct fixture *x = *state;

	x->fb.be.rx_frame_max = 1518;
	return ret;
}

static int setup_pull_no_mrg(void **state)
{
	int ret = open_dev_ops(state, &fb_pull_ops, true, NO_MRG & NO_GUEST_TSO);
	struct fixture *x = *state;

	x->fb.be.rx_frame_max = 1518;
	return ret;
}

static int setup_plain(void **state)
{
	return open_dev(state, false, ALL_FEATURES);
}

static int setup_vnet(void **state)
{
	return open_dev(state, true, ALL_FEATURES);
}

static int setup_no_mrg(void **state)
{
	return open_dev(state, false, NO_MRG);
}

static int teardown(void **state)
{
	struct fixture *x = *state;

	virtio_mmio_destroy(x->t); /* destroys the device and so the back end */
	assert_true(x->fb.destroyed);
	fake_mem_free(&x->mem);
	free(x);
	return 0;
}

static bool needs_reset(struct fixture *x)
{
	return virtio_mmio_status(x->t) & VIRTIO_STATUS_DEVICE_NEEDS_RESET;
}

static struct virtio_net_stats stats(struct fixture *x)
{
	struct virtio_net_stats s;

	virtio_net_get_stats(x->net, &s);
	return s;
}

/* An Ethernet + IPv4 + UDP frame of `len` bytes with a recognisable payload. */
static void make_frame(uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(i * 13 + 7);
	memcpy(p, "\xff\xff\xff\xff\xff\xff", 6);
	memcpy(p + 6, test_mac, 6);
	p[12] = 0x08;
	p[13] = 0x00;
}

static void put_tx_hdr(struct fixture *x, uint8_t flags, uint8_t gso, uint16_t start,
		       uint16_t offset)
{
	uint8_t *h = fake_mem_ptr(&x->mem, TX_HDR, HDR);

	memset(h, 0, HDR);
	h[VIRTIO_NET_HDR_FLAGS] = flags;
	h[VIRTIO_NET_HDR_GSO_TYPE] = gso;
	virtio_put_le(h + VIRTIO_NET_HDR_CSUM_START, start, 2);
	virtio_put_le(h + VIRTIO_NET_HDR_CSUM_OFFSET, offset, 2);
}

/* Publish a transmit chain [header][frame of len], kick, take the used element. */
static void transmit(struct fixture *x, size_t len)
{
	struct fake_buf b[2] = { { TX_HDR, HDR, false }, { TX_BUF, (uint32_t)len, false } };
	uint32_t id, used;
	uint16_t head = fake_vq_add_chain(&x->tx, b, len ? 2 : 1);

	wr(x, VIRTIO_MMIO_QUEUE_NOTIFY, VIRTIO_NET_TXQ);
	assert_true(fake_vq_get_used(&x->tx, &id, &used));
	assert_int_equal(id, head);
	assert_int_equal(used, 0);
}

/* Make `n` receive buffers of `size` bytes each available (one descriptor per chain), without
 * notifying. */
static void add_rx(struct fixture *x, unsigned n, uint32_t size)
{
	for (unsigned i = 0; i < n; i++) {
		struct fake_buf b = { RX_BUF + (uint64_t)(x->rx.next_desc % QSIZE) * 0x1000, size,
				      true };

		fake_vq_add_chain(&x->rx, &b, 1);
	}
}

/* Post `n` receive buffers of `size` bytes each and notify. */
static void post_rx(struct fixture *x, unsigned n, uint32_t size)
{
	add_rx(x, n, size);
	wr(x, VIRTIO_MMIO_QUEUE_NOTIFY, VIRTIO_NET_RXQ);
}

static void inject(struct fixture *x, const uint8_t *hdr, const uint8_t *frame, size_t len)
{
	net_backend_deliver(&x->fb.be, hdr, frame, len);
}

/* --- config and features --- */

static void test_config_and_features(void **state)
{
	struct fixture *x = *state;
	uint64_t f = device_features(x);

	for (int i = 0; i < 6; i++)
		assert_int_equal(virtio_mmio_dev_ops.read(x->t, VIRTIO_MMIO_CONFIG + i, 1),
				 test_mac[i]);
	assert_int_equal(virtio_mmio_dev_ops.read(x->t, VIRTIO_MMIO_CONFIG + 6, 2),
			 VIRTIO_NET_S_LINK_UP);
	assert_int_equal(rd(x, VIRTIO_MMIO_DEVICE_ID), VIRTIO_ID_NET);
	assert_true(f & VIRTIO_BIT(VIRTIO_F_VERSION_1));
	assert_true(f & VIRTIO_BIT(VIRTIO_NET_F_MAC));
	assert_true(f & VIRTIO_BIT(VIRTIO_NET_F_STATUS));
	assert_true(f & VIRTIO_BIT(VIRTIO_NET_F_MRG_RXBUF));
	assert_true(f & VIRTIO_BIT(VIRTIO_NET_F_CSUM));
	/* No segmentation offload without a back end that can do it (slirp). */
	assert_false(f & VIRTIO_BIT(VIRTIO_NET_F_HOST_TSO4));
	assert_false(f & VIRTIO_BIT(VIRTIO_NET_F_GUEST_TSO4));
	/* The MAC is read-only. */
	virtio_mmio_dev_ops.write(x->t, VIRTIO_MMIO_CONFIG, 1, 0xff);
	assert_int_equal(virtio_mmio_dev_ops.read(x->t, VIRTIO_MMIO_CONFIG, 1), test_mac[0]);
	/* The driver's feature choice reached the back end. */
	assert_true(x->fb.offload & VIRTIO_BIT(VIRTIO_NET_F_GUEST_CSUM));
}

static void test_mac_helpers(void **state)
{
	uint8_t m[6], m2[6];

	assert_int_equal(virtio_net_parse_mac("52:54:00:AB:cd:0f", m), 0);
	assert_memory_equal(m, "\x52\x54\x00\xab\xcd\x0f", 6);
	assert_int_equal(virtio_net_parse_mac("52:54:00:ab:cd", m), -EINVAL);
	assert_int_equal(virtio_net_parse_mac("52:54:00:ab:cd:0f:", m), -EINVAL);
	assert_int_equal(virtio_net_parse_mac("52-54-00-ab-cd-0f", m), -EINVAL);
	assert_int_equal(virtio_net_parse_mac("5:54:00:ab:cd:0f1", m), -EINVAL);
	virtio_net_random_mac(m);
	virtio_net_random_mac(m2);
	assert_int_equal(m[0] & 1, 0); /* unicast */
	assert_int_equal(m[0] & 2, 2); /* locally administered */
	assert_memory_not_equal(m, m2, 6);
}

static void test_parse_hostfwd(void **state)
{
	struct net_slirp_fwd f;

	assert_int_equal(net_slirp_parse_fwd("tcp:127.0.0.1:2222-:22", &f), 0);
	assert_false(f.udp);
	assert_int_equal(f.host_addr, htonl(0x7f000001));
	assert_int_equal(f.host_port, 2222);
	assert_int_equal(f.guest_addr, 0);
	assert_int_equal(f.guest_port, 22);
	assert_int_equal(net_slirp_parse_fwd("udp::5353-10.0.2.15:53", &f), 0);
	assert_true(f.udp);
	assert_int_equal(f.host_addr, 0);
	assert_int_equal(f.guest_addr, htonl(0x0a00020f));
	assert_int_equal(net_slirp_parse_fwd("sctp::1-:2", &f), -EINVAL);
	assert_int_equal(net_slirp_parse_fwd("tcp::0-:22", &f), -EINVAL);
	assert_int_equal(net_slirp_parse_fwd("tcp::70000-:22", &f), -EINVAL);
	assert_int_equal(net_slirp_parse_fwd("tcp:1.2.3:80-:22", &f), -EINVAL);
	assert_int_equal(net_slirp_parse_fwd("tcp::80:22", &f), -EINVAL);
	assert_int_equal(net_slirp_parse_fwd("tcp::80-22", &f), -EINVAL);
	assert_int_equal(net_slirp_parse_fwd("tcp::8x-:22", &f), -EINVAL);
}

/* --- transmit --- */

static void test_tx_frame(void **state)
{
	struct fixture *x = *state;
	uint8_t *p = fake_mem_ptr(&x->mem, TX_BUF, 1514);

	make_frame(p, 1514);
	put_tx_hdr(x, 0, 0, 0, 0);
	transmit(x, 1514);
	assert_int_equal(x->fb.sent, 1);
	assert_int_equal(x->fb.last_len, 1514);
	assert_memory_equal(x->fb.last, p, 1514);
	assert_int_equal(stats(x).tx_frames, 1);
	assert_true(x->irq.count > 0);
}

/* Header and frame spread over many descriptors, some of them tiny. */
static void test_tx_scattered(void **state)
{
	struct fixture *x = *state;
	struct fake_buf b[6] = { { TX_HDR, 5, false },	     { TX_HDR + 5, 7, false },
				 { TX_BUF, 1, false },	     { TX_BUF + 1, 99, false },
				 { TX_BUF + 100, 0, false }, { TX_BUF + 100, 500, false } };
	uint8_t *p = fake_mem_ptr(&x->mem, TX_BUF, 600);
	uint32_t id, used;

	make_frame(p, 600);
	put_tx_hdr(x, 0, 0, 0, 0);
	fake_vq_add_chain(&x->tx, b, 6);
	wr(x, VIRTIO_MMIO_QUEUE_NOTIFY, VIRTIO_NET_TXQ);
	assert_true(fake_vq_get_used(&x->tx, &id, &used));
	assert_int_equal(x->fb.sent, 1);
	assert_int_equal(x->fb.last_len, 600);
	assert_memory_equal(x->fb.last, p, 600);
}

static uint16_t fold(const uint8_t *p, size_t len)
{
	uint32_t sum = 0;

	for (size_t i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)p[i] << 8 | p[i + 1];
	if (len & 1)
		sum += (uint32_t)p[len - 1] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

/* NEEDS_CSUM with a back end that wants complete checksums: the device fills it in. */
static void test_tx_checksum_completed(void **state)
{
	struct fixture *x = *state;
	uint8_t *p = fake_mem_ptr(&x->mem, TX_BUF, 1001);
	const uint16_t start = 34, offset = 6; /* UDP header after Ethernet + IPv4 */

	make_frame(p, 1001);	  /* odd length: the last byte is padded */
	p[start + offset] = 0x12; /* the driver's pseudo-header sum */
	p[start + offset + 1] = 0x34;
	put_tx_hdr(x, VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, start, offset);
	transmit(x, 1001);
	assert_int_equal(x->fb.sent, 1);
	/* The receiver's sum of the covered range, checksum included, plus the pseudo-header
	 * gives all ones. */
	{
		uint32_t sum = fold(x->fb.last + start, 1001 - start) + 0x1234u;

		assert_int_equal((sum & 0xffff) + (sum >> 16), 0xffff);
	}
	/* Bytes outside the checksum are untouched. */
	assert_memory_equal(x->fb.last, p, start + offset);
	assert_memory_equal(x->fb.last + start + offset + 2, p + start + offset + 2,
			    1001 - start - offset - 2);
}

/* A vnet back end gets the header itself (checked) and the frame without a copy. */
static void test_tx_vnet_passthrough(void **state)
{
	struct fixture *x = *state;
	uint8_t *p = fake_mem_ptr(&x->mem, TX_BUF, 3000);

	make_frame(p, 3000);
	put_tx_hdr(x, VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4, 34, 16);
	virtio_put_le(fake_mem_ptr(&x->mem, TX_HDR + VIRTIO_NET_HDR_NUM_BUFFERS, 2), 0x7777, 2);
	transmit(x, 3000);
	assert_int_equal(x->fb.sent, 1);
	assert_int_equal(x->fb.last_len, HDR + 3000);
	assert_int_equal(x->fb.last[VIRTIO_NET_HDR_GSO_TYPE], VIRTIO_NET_HDR_GSO_TCPV4);
	assert_int_equal(virtio_get_le(x->fb.last + VIRTIO_NET_HDR_NUM_BUFFERS, 2), 0);
	assert_memory_equal(x->fb.last + HDR, p, 3000);
	/* UDP segmentation was not offered: dropped. */
	put_tx_hdr(x, VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_UDP, 34, 6);
	transmit(x, 3000);
	assert_int_equal(x->fb.sent, 1);
	assert_false(needs_reset(x));
}

/* Hostile transmit chains are dropped (buffer returned), never reset or crash. */
static void test_tx_hostile(void **state)
{
	struct fixture *x = *state;
	uint8_t *p = fake_mem_ptr(&x->mem, TX_BUF, 70000);
	uint32_t id, used;

	make_frame(p, 70000);
	put_tx_hdr(x, 0, 0, 0, 0);
	/* Shorter than the header. */
	{
		struct fake_buf b = { TX_HDR, HDR - 1, false };

		fake_vq_add_chain(&x->tx, &b, 1);
		wr(x, VIRTIO_MMIO_QUEUE_NOTIFY, VIRTIO_NET_TXQ);
		assert_true(fake_vq_get_used(&x->tx, &id, &used));
	}
	transmit(x, 0);			/* a header and no frame */
	transmit(x, NET_MIN_FRAME - 1); /* not even an Ethernet header */
	transmit(x, NET_MAX_FRAME + 1); /* oversized */
	/* Segmentation the driver did not negotiate (and the back end cannot do). */
	put_tx_hdr(x, VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4, 34, 16);
	transmit(x, 1500);
	/* A checksum field past the end of the frame. */
	put_tx_hdr(x, VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 1490, 9);
	transmit(x, 1500);
	put_tx_hdr(x, VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0xffff, 0xffff);
	transmit(x, 1500);
	/* A device-writable buffer in a transmit chain. */
	{
		struct fake_buf b[2] = { { TX_HDR, HDR, false }, { TX_BUF, 100, true } };

		put_tx_hdr(x, 0, 0, 0, 0);
		fake_vq_add_chain(&x->tx, b, 2);
		wr(x, VIRTIO_MMIO_QUEUE_NOTIFY, VIRTIO_NET_TXQ);
		assert_true(fake_vq_get_used(&x->tx, &id, &used));
	}
	assert_int_equal(x->fb.sent, 0);
	assert_int_equal(stats(x).tx_dropped, 8);
	assert_false(needs_reset(x));
	/* The largest legal frame still goes through. */
	put_tx_hdr(x, 0, 0, 0, 0);
	transmit(x, NET_MAX_FRAME);
	assert_int_equal(x->fb.sent, 1);
	assert_int_equal(x->fb.last_len, NET_MAX_FRAME);
}

/* A chain that lies: its descriptor points outside guest RAM, or loops. */
static void test_tx_garbage_chain(void **state)
{
	struct fixture *x = *state;
	struct fake_buf b = { RAM_SIZE - 4, 64, false };

	fake_vq_add_chain(&x->tx, &b, 1);
	wr(x, VIRTIO_MMIO_QUEUE_NOTIFY, VIRTIO_NET_TXQ);
	assert_true(needs_reset(x));
	assert_int_equal(x->fb.sent, 0);
	/* A reset brings it back. */
	bring_up(x, ALL_FEATURES);
	assert_false(needs_reset(x));
	make_frame(fake_mem_ptr(&x->mem, TX_BUF, 100), 100);
	put_tx_hdr(x, 0, 0, 0, 0);
	transmit(x, 100);
	assert_int_equal(x->fb.sent, 1);
}

static void test_tx_descriptor_loop(void **state)
{
	struct fixture *x = *state;

	fake_vq_set_desc(&x->tx, 0, TX_HDR, HDR, VIRTQ_DESC_F_NEXT, 1);
	fake_vq_set_desc(&x->tx, 1, TX_BUF, 100, VIRTQ_DESC_F_NEXT, 0);
	fake_vq_publish(&x->tx, 0);
	wr(x, VIRTIO_MMIO_QUEUE_NOTIFY, VIRTIO_NET_TXQ);
	assert_true(needs_reset(x));
	assert_int_equal(x->fb.sent, 0);
}

/* --- receive --- */

static const uint8_t *rx_buf(struct fixture *x, uint32_t id)
{
	return fake_mem_ptr(&x->mem, RX_BUF + (uint64_t)id * 0x1000, 0x1000);
}

static void test_rx_simple(void **state)
{
	struct fixture *x = *state;
	uint8_t frame[1514];
	uint32_t id, len;
	const uint8_t *b;

	make_frame(frame, sizeof(frame));
	post_rx(x, 4, 2048);
	inject(x, NULL, frame, sizeof(frame));
	assert_true(fake_vq_get_used(&x->rx, &id, &len));
	assert_int_equal(len, HDR + sizeof(frame));
	b = rx_buf(x, id);
	assert_int_equal(virtio_get_le(b + VIRTIO_NET_HDR_NUM_BUFFERS, 2), 1);
	/* slirp's frames carry valid checksums: told with GUEST_CSUM. */
	assert_int_equal(b[VIRTIO_NET_HDR_FLAGS], VIRTIO_NET_HDR_F_DATA_VALID);
	assert_int_equal(b[VIRTIO_NET_HDR_GSO_TYPE], 0);
	assert_memory_equal(b + HDR, frame, sizeof(frame));
	assert_int_equal(stats(x).rx_frames, 1);
	assert_false(fake_vq_get_used(&x->rx, &id, &len));
}

/* MRG_RXBUF (§5.1.6.4): one frame over several buffers, num_buffers in the first. */
static void test_rx_mergeable(void **state)
{
	struct fixture *x = *state;
	static uint8_t frame[9000];
	uint32_t ids[5], lens[5], got = 0;

	make_frame(frame, sizeof(frame));
	post_rx(x, 8, 2048);
	inject(x, NULL, frame, sizeof(frame));
	while (got < 5 && fake_vq_get_used(&x->rx, &ids[got], &lens[got]))
		got++;
	assert_int_equal(got, 5); /* 9012 bytes in 2048-byte buffers */
	assert_int_equal(virtio_get_le(rx_buf(x, ids[0]) + VIRTIO_NET_HDR_NUM_BUFFERS, 2), 5);
	{
		size_t off = 0;

		for (unsigned i = 0; i < got; i++) {
			const uint8_t *b = rx_buf(x, ids[i]);
			size_t skip = i == 0 ? HDR : 0;

			assert_memory_equal(b + skip, frame + off, lens[i] - skip);
			off += lens[i] - skip;
		}
		assert_int_equal(off, sizeof(frame));
	}
}

/* No MRG_RXBUF: a frame that does not fit the buffer is dropped, the buffer kept. */
static void test_rx_small_buffer_no_mrg(void **state)
{
	struct fixture *x = *state;
	uint8_t frame[1514];
	uint32_t id, len;

	make_frame(frame, sizeof(frame));
	post_rx(x, 1, 1000);
	inject(x, NULL, frame, sizeof(frame));
	assert_false(fake_vq_get_used(&x->rx, &id, &len));
	assert_int_equal(stats(x).rx_dropped, 1);
	inject(x, NULL, frame, 500);
	assert_true(fake_vq_get_used(&x->rx, &id, &len));
	assert_int_equal(len, HDR + 500);
	assert_int_equal(virtio_get_le(rx_buf(x, id) + VIRTIO_NET_HDR_NUM_BUFFERS, 2), 1);
	assert_false(needs_reset(x));
}

static void test_rx_without_guest_csum(void **state)
{
	struct fixture *x = *state;
	uint8_t frame[100];
	uint32_t id, len;

	bring_up(x, NO_GUEST_CSUM);
	make_frame(frame, sizeof(frame));
	post_rx(x, 1, 2048);
	inject(x, NULL, frame, sizeof(frame));
	assert_true(fake_vq_get_used(&x->rx, &id, &len));
	assert_int_equal(rx_buf(x, id)[VIRTIO_NET_HDR_FLAGS], 0);
}

/* No buffers: frames wait in order; a full backlog pauses the back end; buffers drain it. */
static void test_rx_backpressure(void **state)
{
	struct fixture *x = *state;
	uint8_t frame[200];
	uint32_t id, len;
	unsigned got = 0;

	make_frame(frame, sizeof(frame));
	for (unsigned i = 0; i < VIRTIO_NET_PENDING_MAX + 3; i++) {
		frame[100] = (uint8_t)i;
		inject(x, NULL, frame, sizeof(frame));
	}
	assert_false(x->fb.rx_on);
	assert_int_equal(stats(x).rx_dropped, 3);
	assert_false(fake_vq_get_used(&x->rx, &id, &len));
	/* Buffers arrive QSIZE at a time; frames come out in order. */
	while (got < VIRTIO_NET_PENDING_MAX) {
		post_rx(x, QSIZE, 2048);
		while (fake_vq_get_used(&x->rx, &id, &len)) {
			assert_int_equal(rx_buf(x, id)[HDR + 100], (uint8_t)got);
			got++;
		}
		x->rx.next_desc = 0; /* the buffers were all returned: reuse them */
	}
	assert_int_equal(got, VIRTIO_NET_PENDING_MAX);
	assert_true(x->fb.rx_on);
	assert_int_equal(stats(x).rx_frames, VIRTIO_NET_PENDING_MAX);
}

/* A frame larger than every posted buffer together waits; larger than the ring can ever
 * hold is dropped. */
static void test_rx_frame_bigger_than_buffers(void **state)
{
	struct fixture *x = *state;
	static uint8_t frame[NET_MAX_FRAME + 1];
	uint32_t id, len;

	make_frame(frame, sizeof(frame));
	inject(x, NULL, frame, NET_MAX_FRAME + 1); /* oversized from the back end */
	assert_int_equal(stats(x).rx_dropped, 1);
	post_rx(x, 2, 2048);
	inject(x, NULL, frame, 5000); /* needs 3 */
	assert_false(fake_vq_get_used(&x->rx, &id, &len));
	post_rx(x, 1, 2048);
	assert_true(fake_vq_get_used(&x->rx, &id, &len));
	assert_true(fake_vq_get_used(&x->rx, &id, &len));
	assert_true(fake_vq_get_used(&x->rx, &id, &len));
	/* The whole ring of 16 x 2 KiB cannot hold 60 KiB: dropped, buffers kept. */
	x->rx.next_desc = 0;
	post_rx(x, QSIZE, 2048);
	inject(x, NULL, frame, 60000);
	assert_false(fake_vq_get_used(&x->rx, &id, &len));
	assert_int_equal(stats(x).rx_dropped, 2);
	inject(x, NULL, frame, 100);
	assert_true(fake_vq_get_used(&x->rx, &id, &len));
	assert_false(needs_reset(x));
}

static void test_rx_buffer_smaller_than_header(void **state)
{
	struct fixture *x = *state;
	uint8_t frame[100];

	make_frame(frame, sizeof(frame));
	post_rx(x, 1, HDR - 1);
	inject(x, NULL, frame, sizeof(frame));
	assert_true(needs_reset(x));
	/* Nothing more is delivered until the driver resets the device. */
	inject(x, NULL, frame, sizeof(frame));
	assert_int_equal(stats(x).rx_frames, 0);
}

static void test_rx_readable_buffer(void **state)
{
	struct fixture *x = *state;
	struct fake_buf b = { RX_BUF, 2048, false };
	uint8_t frame[100];

	make_frame(frame, sizeof(frame));
	fake_vq_add_chain(&x->rx, &b, 1);
	inject(x, NULL, frame, sizeof(frame));
	assert_true(needs_reset(x));
}

/* vnet back end: its header reaches the guest when the guest accepted those offloads. */
static void test_rx_vnet_header(void **state)
{
	struct fixture *x = *state;
	static uint8_t frame[5000];
	uint8_t hdr[HDR] = { VIRTIO_NET_HDR_F_NEEDS_CSUM,
			     VIRTIO_NET_HDR_GSO_TCPV4,
			     54,
			     0,
			     0xa8,
			     0x05,
			     34,
			     0,
			     16,
			     0,
			     0x99,
			     0x99 };
	uint32_t id, len;
	const uint8_t *b;

	make_frame(frame, sizeof(frame));
	post_rx(x, 4, 4096);
	inject(x, hdr, frame, sizeof(frame));
	assert_true(fake_vq_get_used(&x->rx, &id, &len));
	b = rx_buf(x, id);
	assert_memory_equal(b, hdr, VIRTIO_NET_HDR_NUM_BUFFERS);
	assert_int_equal(virtio_get_le(b + VIRTIO_NET_HDR_NUM_BUFFERS, 2), 2);
	assert_true(fake_vq_get_used(&x->rx, &id, &len));
	assert_int_equal(len, HDR + sizeof(frame) - 4096);
	/* UDP segmentation the guest never accepted: dropped. */
	hdr[VIRTIO_NET_HDR_GSO_TYPE] = VIRTIO_NET_HDR_GSO_UDP;
	inject(x, hdr, frame, 1000);
	assert_false(fake_vq_get_used(&x->rx, &id, &len));
	assert_int_equal(stats(x).rx_dropped, 1);
}

static void test_rx_before_driver_ok(void **state)
{
	struct fixture *x = *state;
	uint8_t frame[100];

	make_frame(frame, sizeof(frame));
	wr(x, VIRTIO_MMIO_STATUS, 0);
	inject(x, NULL, frame, sizeof(frame));
	assert_int_equal(stats(x).rx_dropped, 1);
	inject(x, NULL, frame, NET_MIN_FRAME - 1);
	assert_int_equal(stats(x).rx_dropped, 2);
}

/* --- batching, budget, notification suppression --- */

static uint16_t used_flags(struct fixture *x, struct fake_vq *f)
{
	return (uint16_t)virtio_get_le(fake_mem_ptr(&x->mem, f->used, 2), 2);
}

/* Publish `n` one-descriptor transmit chains (header + 60-byte frame) without kicking. */
static void publish_tx(struct fixture *x, unsigned n)
{
	uint8_t *p = fake_mem_ptr(&x->mem, TX_BUF, HDR + 60);

	memset(p, 0, HDR);
	make_frame(p + HDR, 60);
	for (unsigned i = 0; i < n; i++) {
		struct fake_buf b = { TX_BUF, HDR + 60, false };

		fake_vq_add_chain(&x->tx, &b, 1);
	}
}

/* 100 chains and one kick: the device handles at most VIRTIO_QUEUE_BUDGET per pass (then
 * yields; without an event loop the transport runs the next pass at once), and interrupts
 * once per pass, never per frame. */
static void test_tx_budget_one_interrupt_per_pass(void **state)
{
	struct fixture *x = *state;
	uint64_t before;
	uint32_t id, len;
	unsigned got = 0;

	bring_up_tx(x, NO_EVENT_IDX, 128);
	publish_tx(x, 100);
	before = x->irq.count;
	wr(x, VIRTIO_MMIO_QUEUE_NOTIFY, VIRTIO_NET_TXQ);
	assert_int_equal(x->fb.sent, 100);
	for (unsigned i = 0; i < VIRTIO_QUEUE_BUDGET; i++)
		assert_int_equal(x->fb.irqs_at_send[i], before);
	/* The first pass ended after the budget with one interrupt. */
	assert_int_equal(x->fb.irqs_at_send[VIRTIO_QUEUE_BUDGET], before + 1);
	assert_int_equal(x->fb.irqs_at_send[99], before + 1);
	assert_int_equal(x->irq.count, before + 2);
	while (fake_vq_get_used(&x->tx, &id, &len))
		got++;
	assert_int_equal(got, 100);
}

/* While the device drains, the driver is told not to notify (NO_NOTIFY without EVENT_IDX);
 * once the ring is empty notifications are on again. */
static void test_tx_suppression_flags(void **state)
{
	struct fixture *x = *state;

	bring_up(x, NO_EVENT_IDX);
	assert_int_equal(used_flags(x, &x->tx), 0);
	publish_tx(x, 3);
	wr(x, VIRTIO_MMIO_QUEUE_NOTIFY, VIRTIO_NET_TXQ);
	assert_int_equal(x->fb.sent, 3);
	assert_int_equal(used_flags(x, &x->tx), 0);
	/* Receive notifications stay off until the device waits for buffers. */
	assert_int_equal(used_flags(x, &x->rx), VIRTQ_USED_F_NO_NOTIFY);
}

/* With EVENT_IDX, avail_event is set only when the device goes to sleep: to the slot after
 * the last chain it took. */
static void test_tx_suppression_event_idx(void **state)
{
	struct fixture *x = *state;

	publish_tx(x, 5);
	wr(x, VIRTIO_MMIO_QUEUE_NOTIFY, VIRTIO_NET_TXQ);
	assert_int_equal(x->fb.sent, 5);
	assert_int_equal(fake_vq_avail_event(&x->tx), 5);
	publish_tx(x, 2);
	wr(x, VIRTIO_MMIO_QUEUE_NOTIFY, VIRTIO_NET_TXQ);
	assert_int_equal(fake_vq_avail_event(&x->tx), 7);
}

/* Frames a push back end delivers in one batch: one interrupt, at the flush. */
static void test_rx_push_one_interrupt_per_batch(void **state)
{
	struct fixture *x = *state;
	uint8_t frame[200];
	uint64_t before;
	uint32_t id, len;
	unsigned got = 0;

	make_frame(frame, sizeof(frame));
	post_rx(x, 8, 2048);
	before = x->irq.count;
	for (int i = 0; i < 5; i++)
		inject(x, NULL, frame, sizeof(frame));
	assert_int_equal(x->irq.count, before);
	while (fake_vq_get_used(&x->rx, &id, &len))
		got++;
	assert_int_equal(got, 5); /* in the ring already, the interrupt is what waits */
	net_backend_flush(&x->fb.be);
	assert_int_equal(x->irq.count, before + 1);
	net_backend_flush(&x->fb.be); /* nothing new: no interrupt */
	assert_int_equal(x->irq.count, before + 1);
}

/* The receive queue asks for notifications only while frames wait for buffers. */
static void test_rx_push_asks_for_buffers(void **state)
{
	struct fixture *x = *state;
	uint8_t frame[200];
	uint32_t id, len;

	bring_up(x, NO_EVENT_IDX);
	make_frame(frame, sizeof(frame));
	assert_int_equal(used_flags(x, &x->rx), VIRTQ_USED_F_NO_NOTIFY);
	inject(x, NULL, frame, sizeof(frame)); /* no buffers: waits */
	assert_int_equal(used_flags(x, &x->rx), 0);
	post_rx(x, 2, 2048);
	assert_true(fake_vq_get_used(&x->rx, &id, &len));
	assert_int_equal(used_flags(x, &x->rx), VIRTQ_USED_F_NO_NOTIFY);
}

/* --- pull back end (TAP): frames read straight into guest buffers --- */

static void pull(struct fixture *x, unsigned n, size_t len)
{
	x->fb.pull_n += n;
	x->fb.pull_len = len;
	assert_true(net_backend_readable(&x->fb.be));
}

static void test_pull_zero_copy(void **state)
{
	struct fixture *x = *state;
	uint8_t hdr[HDR] = { 0 };
	uint8_t frame[1514];
	uint32_t id, len;
	const uint8_t *b;
	uint64_t before;

	post_rx(x, 4, 2048);
	before = x->irq.count;
	pull(x, 1, 1514);
	/* The back end read into the guest's first buffer itself. */
	assert_ptr_equal(x->fb.last_iov0, fake_mem_ptr(&x->mem, RX_BUF, 2048));
	assert_true(fake_vq_get_used(&x->rx, &id, &len));
	assert_int_equal(id, 0);
	assert_int_equal(len, HDR + 1514);
	b = rx_buf(x, id);
	assert_memory_equal(b, hdr, VIRTIO_NET_HDR_NUM_BUFFERS);
	assert_int_equal(virtio_get_le(b + VIRTIO_NET_HDR_NUM_BUFFERS, 2), 1);
	make_frame(frame, sizeof(frame));
	frame[100] = 0;
	assert_memory_equal(b + HDR, frame, sizeof(frame));
	assert_int_equal(stats(x).rx_frames, 1);
	assert_int_equal(x->irq.count, before + 1);
	/* The buffers it did not need are still the guest's: the next frame takes the second. */
	pull(x, 1, 100);
	assert_true(fake_vq_get_used(&x->rx, &id, &len));
	assert_int_equal(id, 1);
	assert_false(fake_vq_get_used(&x->rx, &id, &len));
	/* Without segmentation offload, buffers for one MTU-sized frame are offered, and an
	 * overflow buffer after them: the offer always exceeds the largest frame by a byte. */
	assert_int_equal(x->fb.last_guest_bytes, 2048);
	assert_int_equal(x->fb.last_iov_bytes, HDR + NET_MAX_FRAME + 1);
}

/* A frame longer than any frame may be fills the whole offer, is cut off by the back end and
 * dropped (not parked); the guest's buffers stay for the next one. */
static void test_pull_cut_off(void **state)
{
	struct fixture *x = *state;
	uint32_t id, len;

	post_rx(x, 2, 2048);
	pull(x, 1, NET_MAX_FRAME + 5);
	assert_int_equal(x->fb.pulled, 1);
	assert_false(fake_vq_get_used(&x->rx, &id, &len));
	assert_int_equal(stats(x).rx_dropped, 1);
	assert_true(x->fb.rx_on);
	pull(x, 1, 200);
	assert_true(fake_vq_get_used(&x->rx, &id, &len));
	assert_int_equal(id, 0);
	assert_int_equal(rx_buf(x, id)[HDR + 100], 1);
}

/* MRG_RXBUF: one frame over several chains, num_buffers in the first; with GUEST_TSO the
 * device offers up to a 64 KiB frame's worth of buffers.  A frame that runs past the guest's
 * buffers into the overflow buffer waits (parked) until the driver adds more. */
static void test_pull_mergeable(void **state)
{
	struct fixture *x = *state;
	uint32_t ids[4], lens[4];
	uint64_t before;

	bring_up(x, ALL_FEATURES);
	post_rx(x, 8, 2048);
	before = x->irq.count;
	pull(x, 3, 5000);
	/* Frame 3 was offered what was left: 2 chains, then the overflow buffer. */
	assert_int_equal(x->fb.last_guest_bytes, 2 * 2048);
	for (int i = 0; i < 3; i++)
		assert_true(fake_vq_get_used(&x->rx, &ids[i], &lens[i]));
	assert_int_equal(virtio_get_le(rx_buf(x, ids[0]) + VIRTIO_NET_HDR_NUM_BUFFERS, 2), 3);
	assert_int_equal(lens[0] + lens[1] + lens[2], HDR + 5000);
	assert_int_equal(rx_buf(x, ids[0])[HDR + 100], 0);
	/* The second frame started in the fourth buffer. */
	assert_true(fake_vq_get_used(&x->rx, &ids[3], &lens[3]));
	assert_int_equal(ids[3], 3);
	assert_int_equal(rx_buf(x, ids[3])[HDR + 100], 1);
	assert_int_equal(virtio_get_le(rx_buf(x, ids[3]) + VIRTIO_NET_HDR_NUM_BUFFERS, 2), 3);
	assert_true(fake_vq_get_used(&x->rx, &ids[3], &lens[3]));
	assert_true(fake_vq_get_used(&x->rx, &ids[3], &lens[3]));
	assert_false(fake_vq_get_used(&x->rx, &ids[3], &lens[3]));
	assert_int_equal(stats(x).rx_frames, 2);
	/* Frame 3 was read and parked; the back end is paused; one interrupt. */
	assert_int_equal(x->fb.pulled, 3);
	assert_false(x->fb.rx_on);
	assert_int_equal(x->irq.count, before + 1);
	/* The driver was asked for a notification at its next buffer (EVENT_IDX). */
	assert_int_equal(fake_vq_avail_event(&x->rx), 8);
	/* New buffers: frame 3 lands in the two it was offered and one more, the back end
	 * resumes. */
	post_rx(x, 8, 2048);
	assert_true(fake_vq_get_used(&x->rx, &ids[0], &lens[0]));
	assert_int_equal(ids[0], 6);
	assert_int_equal(rx_buf(x, ids[0])[HDR + 100], 2);
	assert_int_equal(virtio_get_le(rx_buf(x, ids[0]) + VIRTIO_NET_HDR_NUM_BUFFERS, 2), 3);
	assert_int_equal(stats(x).rx_frames, 3);
	assert_true(x->fb.rx_on);
	assert_false(needs_reset(x));
}

/* No buffers at all: nothing is read, the back end pauses until buffers come. */
static void test_pull_no_buffers(void **state)
{
	struct fixture *x = *state;
	uint32_t id, len;

	bring_up(x, NO_EVENT_IDX & NO_GUEST_TSO);
	pull(x, 2, 300);
	assert_int_equal(x->fb.pulled, 0);
	assert_false(x->fb.rx_on);
	assert_int_equal(used_flags(x, &x->rx), 0); /* notify us */
	post_rx(x, 4, 2048);
	assert_true(x->fb.rx_on);
	assert_int_equal(used_flags(x, &x->rx), VIRTQ_USED_F_NO_NOTIFY);
	pull(x, 0, 300);
	assert_int_equal(x->fb.pulled, 2);
	assert_true(fake_vq_get_used(&x->rx, &id, &len));
	assert_true(fake_vq_get_used(&x->rx, &id, &len));
	assert_false(fake_vq_get_used(&x->rx, &id, &len));
}

/* Without MRG_RXBUF a frame larger than the buffer is cut off by the back end: dropped, and
 * the buffer kept for the next frame. */
static void test_pull_truncated(void **state)
{
	struct fixture *x = *state;
	uint32_t id, len;

	post_rx(x, 1, 1000);
	pull(x, 1, 1514);
	assert_int_equal(x->fb.pulled, 1);
	assert_false(fake_vq_get_used(&x->rx, &id, &len));
	assert_int_equal(stats(x).rx_dropped, 1);
	pull(x, 1, 500);
	assert_true(fake_vq_get_used(&x->rx, &id, &len));
	assert_int_equal(len, HDR + 500);
	assert_int_equal(rx_buf(x, id)[HDR + 100], 1);
	assert_false(needs_reset(x));
}

/* Offloads the guest refused in the header the back end wrote: dropped, buffer kept. */
static void test_pull_refused_offload(void **state)
{
	struct fixture *x = *state;
	uint32_t id, len;

	post_rx(x, 2, 2048);
	x->fb.pull_hdr[VIRTIO_NET_HDR_GSO_TYPE] = VIRTIO_NET_HDR_GSO_TCPV4; /* no GUEST_TSO4 */
	pull(x, 1, 1000);
	assert_false(fake_vq_get_used(&x->rx, &id, &len));
	assert_int_equal(stats(x).rx_dropped, 1);
	x->fb.pull_hdr[VIRTIO_NET_HDR_GSO_TYPE] = 0;
	pull(x, 1, 1000);
	assert_true(fake_vq_get_used(&x->rx, &id, &len));
	assert_int_equal(id, 0);
}

/* At most a budget of frames per wake-up, also when they are dropped (link down); the back
 * end calls again while frames wait. */
static void test_pull_budget(void **state)
{
	struct fixture *x = *state;

	virtio_net_set_link(x->net, false);
	pull(x, VIRTIO_QUEUE_BUDGET + 6, 100);
	assert_int_equal(x->fb.pulled, VIRTIO_QUEUE_BUDGET);
	assert_int_equal(stats(x).rx_dropped, VIRTIO_QUEUE_BUDGET);
	pull(x, 0, 100);
	assert_int_equal(x->fb.pulled, VIRTIO_QUEUE_BUDGET + 6);
}

/* Garbage in the receive ring: DEVICE_NEEDS_RESET, nothing read into it. */
static void test_pull_garbage_chain(void **state)
{
	struct fixture *x = *state;
	struct fake_buf b = { RX_BUF, 2048, false }; /* readable */

	fake_vq_add_chain(&x->rx, &b, 1);
	pull(x, 1, 100);
	assert_true(needs_reset(x));
	assert_int_equal(stats(x).rx_frames, 0);
}

/* A pull back end must carry the vnet header (it writes it into the guest's buffers). */
static void test_pull_needs_vnet_hdr(void **state)
{
	struct fake_be fb = { .be = { .ops = &fb_pull_ops, .vnet_hdr = false } };
	struct virtio_net *n;

	assert_int_equal(virtio_net_create(&fb.be, test_mac, &n), -EINVAL);
	assert_true(fb.destroyed);
}

/* --- link status --- */

static void test_link_bounce(void **state)
{
	struct fixture *x = *state;
	uint8_t frame[100];
	uint32_t id, len;

	make_frame(frame, sizeof(frame));
	wr(x, VIRTIO_MMIO_INTERRUPT_ACK, rd(x, VIRTIO_MMIO_INTERRUPT_STATUS));
	virtio_net_set_link(x->net, false);
	assert_false(virtio_net_link_up(x->net));
	assert_int_equal(virtio_mmio_dev_ops.read(x->t, VIRTIO_MMIO_CONFIG + 6, 2), 0);
	assert_true(rd(x, VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_INT_CONFIG);
	/* Link down: nothing moves either way. */
	post_rx(x, 2, 2048);
	inject(x, NULL, frame, sizeof(frame));
	assert_false(fake_vq_get_used(&x->rx, &id, &len));
	memcpy(fake_mem_ptr(&x->mem, TX_BUF, 100), frame, 100);
	put_tx_hdr(x, 0, 0, 0, 0);
	transmit(x, 100);
	assert_int_equal(x->fb.sent, 0);
	/* Up again: a second config interrupt, and frames flow. */
	wr(x, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_INT_CONFIG);
	virtio_net_set_link(x->net, true);
	assert_int_equal(virtio_mmio_dev_ops.read(x->t, VIRTIO_MMIO_CONFIG + 6, 2),
			 VIRTIO_NET_S_LINK_UP);
	assert_true(rd(x, VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_INT_CONFIG);
	inject(x, NULL, frame, sizeof(frame));
	assert_true(fake_vq_get_used(&x->rx, &id, &len));
	/* Setting the same state again is no change: no interrupt. */
	wr(x, VIRTIO_MMIO_INTERRUPT_ACK, rd(x, VIRTIO_MMIO_INTERRUPT_STATUS));
	virtio_net_set_link(x->net, true);
	assert_false(rd(x, VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_INT_CONFIG);
}

/* virtio_net_bounce_link: down until the driver has read the status field, then up by
 * itself, each a config interrupt; MAC reads leave it down; no bounce of a link that is down. */
static void test_bounce_until_seen(void **state)
{
	struct fixture *x = *state;

	wr(x, VIRTIO_MMIO_INTERRUPT_ACK, rd(x, VIRTIO_MMIO_INTERRUPT_STATUS));
	assert_true(virtio_net_bounce_link(x->net));
	assert_false(virtio_net_link_up(x->net));
	assert_true(rd(x, VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_INT_CONFIG);
	wr(x, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_INT_CONFIG);
	/* Reading the MAC is not reading the status. */
	for (uint32_t off = 0; off < 6; off++)
		(void)virtio_mmio_dev_ops.read(x->t, VIRTIO_MMIO_CONFIG + off, 1);
	assert_false(virtio_net_link_up(x->net));
	assert_false(rd(x, VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_INT_CONFIG);
	/* The driver looks: it sees down, and the link comes back with a second interrupt. */
	assert_int_equal(virtio_mmio_dev_ops.read(x->t, VIRTIO_MMIO_CONFIG + 6, 2), 0);
	assert_true(virtio_net_link_up(x->net));
	assert_true(rd(x, VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_INT_CONFIG);
	assert_int_equal(virtio_mmio_dev_ops.read(x->t, VIRTIO_MMIO_CONFIG + 6, 2),
			 VIRTIO_NET_S_LINK_UP);
	/* A link the user took down is not brought up by a bounce. */
	virtio_net_set_link(x->net, false);
	assert_false(virtio_net_bounce_link(x->net));
	assert_false(virtio_net_link_up(x->net));
	(void)virtio_mmio_dev_ops.read(x->t, VIRTIO_MMIO_CONFIG + 6, 2);
	assert_false(virtio_net_link_up(x->net));
	/* An explicit setting ends a bounce in progress. */
	virtio_net_set_link(x->net, true);
	assert_true(virtio_net_bounce_link(x->net));
	virtio_net_set_link(x->net, false);
	(void)virtio_mmio_dev_ops.read(x->t, VIRTIO_MMIO_CONFIG + 6, 2);
	assert_false(virtio_net_link_up(x->net));
}

static void test_reset_drops_backlog(void **state)
{
	struct fixture *x = *state;
	uint8_t frame[100];
	uint32_t id, len;

	make_frame(frame, sizeof(frame));
	for (unsigned i = 0; i < VIRTIO_NET_PENDING_MAX; i++)
		inject(x, NULL, frame, sizeof(frame));
	assert_false(x->fb.rx_on);
	bring_up(x, ALL_FEATURES); /* includes a reset */
	assert_true(x->fb.rx_on);
	post_rx(x, 2, 2048);
	assert_false(fake_vq_get_used(&x->rx, &id, &len));
}

static int parse(struct cli_opts *o, char *err, ...)
{
	static char run[] = "run";
	char *argv[16] = { run };
	int argc = 1;
	va_list ap;

	va_start(ap, err);
	for (char *a; (a = va_arg(ap, char *));)
		argv[argc++] = a;
	va_end(ap);
	return cli_parse(argc, argv, o, err, 256);
}

/* --net, --mac on the command line. */
static void test_cli_net(void **state)
{
	static struct cli_opts o;
	char err[256];

	assert_int_equal(parse(&o, err, "--net",
			       "user,hostfwd=tcp:127.0.0.1:2222-:22,"
			       "hostfwd=udp::53-10.0.2.15:53",
			       "--net", "tap=ign0,mac=02:00:00:00:00:01", "--mac",
			       "52:54:00:12:34:56", NULL),
			 0);
	assert_int_equal(o.m.nr_nets, 2);
	assert_int_equal(o.m.nets[0].kind, MACHINE_NET_USER);
	assert_int_equal(o.m.nets[0].nr_fwd, 2);
	assert_int_equal(o.m.nets[0].fwd[0].host_port, 2222);
	assert_true(o.m.nets[0].fwd[1].udp);
	assert_true(o.m.nets[0].has_mac);
	assert_memory_equal(o.m.nets[0].mac, test_mac, 6);
	assert_int_equal(o.m.nets[1].kind, MACHINE_NET_TAP);
	assert_string_equal(o.m.nets[1].tap, "ign0");
	assert_int_equal(o.m.nets[1].mac[5], 1);
	assert_int_equal(parse(&o, err, "--net", "user", NULL), 0);
	assert_false(o.m.nets[0].has_mac);
	assert_int_equal(parse(&o, err, "--mac", "52:54:00:12:34:56", NULL), -EINVAL);
	assert_int_equal(parse(&o, err, "--net", "user", "--mac", "01:54:00:12:34:56", NULL),
			 -EINVAL); /* multicast */
	assert_int_equal(parse(&o, err, "--net", "user", "--mac", "52:54:00:12:34", NULL), -EINVAL);
	assert_int_equal(parse(&o, err, "--net", "bridge", NULL), -EINVAL);
	assert_int_equal(parse(&o, err, "--net", "tap=", NULL), -EINVAL);
	assert_int_equal(parse(&o, err, "--net", "tap=abcdefghijklmnop", NULL), -EINVAL);
	assert_int_equal(parse(&o, err, "--net", "tap=x,hostfwd=tcp::1-:2", NULL), -EINVAL);
	assert_int_equal(parse(&o, err, "--net", "user,hostfwd=tcp::1", NULL), -EINVAL);
	assert_int_equal(parse(&o, err, "--net", "user,foo=1", NULL), -EINVAL);
	assert_int_equal(parse(&o, err, "--net", "user", "--net", "user", "--net", "user", "--net",
			       "user", "--net", "user", NULL),
			 -EINVAL);
}

/* --- snapshots ---
 *
 * The device's own record, round-tripped: the fixture's device is quiesced and saved, a fresh
 * device (another back end, another configured MAC) restores the record and is activated with
 * the queues as the transport would bring them back (fdrv_vq_resume), and the driver carries
 * on through the restored device's ops.  The old device is left alone from the save on. */

#define SNAP_ID "virtio-net0"

static const uint8_t other_mac[6] = { 0x02, 0x11, 0x22, 0x33, 0x44, 0x55 };

struct snap_buf {
	struct snap_writer w;
	struct snap_file f;
};

/* Parse a finished writer into s->f. */
static void snap_parse(struct snap_buf *s)
{
	char why[128];

	assert_int_equal(snap_writer_finish(&s->w), 0);
	assert_int_equal(snap_file_parse(&s->f, s->w.buf, s->w.len, why, sizeof(why)), 0);
}

/* Quiesce through the transport (as the device manager does), then save the device. */
static void snap_take(struct fixture *x, struct snap_buf *s)
{
	virtio_mmio_quiesce(x->t);
	snap_writer_init(&s->w);
	assert_int_equal(virtio_net_ops.save(x->net, &s->w, SNAP_ID), 0);
	snap_parse(s);
}

/* A device freshly created from the configuration, as a restore starts from. */
struct restored {
	struct fake_be fb;
	struct irq_line irq;
	struct virtio_net *net;
	struct virtio_mmio *t;
	struct virtq vqs[2];
};

static struct restored *restored_create(struct fixture *x, const struct net_backend_ops *ops,
					bool vnet_hdr)
{
	struct restored *r = calloc(1, sizeof(*r));

	r->irq.fd = -1;
	r->fb.irq = &r->irq;
	r->fb.mem = &x->mem;
	r->fb.be.ops = ops;
	r->fb.be.vnet_hdr = vnet_hdr;
	r->fb.be.host_features = x->fb.be.host_features;
	r->fb.be.rx_frame_max = x->fb.be.rx_frame_max;
	r->fb.rx_on = true;
	assert_int_equal(virtio_net_create(&r->fb.be, other_mac, &r->net), 0);
	assert_int_equal(virtio_mmio_create(&x->mem.gm, &r->irq, &virtio_net_ops, r->net, &r->t),
			 0);
	return r;
}

/* DRIVER_OK was set when the snapshot was taken: the transport re-activates the device with
 * its queues where they were (every chain popped was also used). */
static void restored_activate(struct fixture *x, struct restored *r, uint64_t features)
{
	fdrv_vq_resume(&r->vqs[VIRTIO_NET_RXQ], &x->rx, features, fake_vq_used_idx(&x->rx));
	fdrv_vq_resume(&r->vqs[VIRTIO_NET_TXQ], &x->tx, features, fake_vq_used_idx(&x->tx));
	assert_int_equal(virtio_net_ops.activate(r->net, r->t, features, r->vqs, 2), 0);
}

static void restored_destroy(struct restored *r)
{
	virtio_mmio_destroy(r->t);
	assert_true(r->fb.destroyed);
	free(r);
}

static uint64_t restored_cfg(struct restored *r, uint32_t off, unsigned size)
{
	return virtio_mmio_dev_ops.read(r->t, VIRTIO_MMIO_CONFIG + off, size);
}

static void assert_mac(struct restored *r, const uint8_t mac[6])
{
	for (int i = 0; i < 6; i++)
		assert_int_equal(restored_cfg(r, VIRTIO_NET_CFG_MAC + (uint32_t)i, 1), mac[i]);
}

static struct virtio_net_stats restored_stats(struct restored *r)
{
	struct virtio_net_stats s;

	virtio_net_get_stats(r->net, &s);
	return s;
}

/* Frames waiting for receive buffers are saved and reach the guest exactly once, in order,
 * after the restore; MAC and link come back; transmit carries on. */
static void test_snapshot_round_trip(void **state)
{
	struct fixture *x = *state;
	uint64_t features = device_features(x), irqs;
	struct snap_buf s;
	struct restored *r;
	uint8_t frame[200];
	uint32_t id, len;

	make_frame(frame, sizeof(frame));
	memcpy(fake_mem_ptr(&x->mem, TX_BUF, sizeof(frame)), frame, sizeof(frame));
	put_tx_hdr(x, 0, 0, 0, 0);
	transmit(x, sizeof(frame));
	post_rx(x, 2, 2048);
	irqs = x->irq.count;
	for (unsigned i = 0; i < 5; i++) {
		frame[100] = (uint8_t)i;
		inject(x, NULL, frame, sizeof(frame));
	}
	/* Frames 0 and 1 were delivered; 2, 3 and 4 wait.  The batch has not ended: no
	 * interrupt yet. */
	for (unsigned i = 0; i < 2; i++) {
		assert_true(fake_vq_get_used(&x->rx, &id, &len));
		assert_int_equal(rx_buf(x, id)[HDR + 100], i);
	}
	assert_false(fake_vq_get_used(&x->rx, &id, &len));
	assert_int_equal(x->irq.count, irqs);
	/* Quiesce signals what the batch owed, so the interrupt is in the saved state. */
	snap_take(x, &s);
	assert_int_equal(x->irq.count, irqs + 1);
	assert_true(fdrv_rd(x->t, VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_INT_USED);

	r = restored_create(x, &fb_ops, false);
	assert_mac(r, other_mac);
	assert_int_equal(virtio_net_ops.restore(r->net, &s.f, SNAP_ID), 0);
	assert_mac(r, test_mac);
	assert_int_equal(restored_cfg(r, VIRTIO_NET_CFG_STATUS, 2), VIRTIO_NET_S_LINK_UP);
	restored_activate(x, r, features);
	/* No buffers yet: the frames keep waiting, the back end keeps running. */
	assert_false(fake_vq_get_used(&x->rx, &id, &len));
	assert_true(r->fb.rx_on);
	/* Buffers: 2, 3, 4 in order, once each, with an interrupt. */
	add_rx(x, 4, 2048);
	virtio_net_ops.queue_notify(r->net, VIRTIO_NET_RXQ);
	for (unsigned i = 2; i < 5; i++) {
		const uint8_t *b;

		assert_true(fake_vq_get_used(&x->rx, &id, &len));
		assert_int_equal(len, HDR + sizeof(frame));
		b = rx_buf(x, id);
		assert_int_equal(b[HDR + 100], i);
		frame[100] = (uint8_t)i;
		assert_memory_equal(b + HDR, frame, sizeof(frame));
		assert_int_equal(virtio_get_le(b + VIRTIO_NET_HDR_NUM_BUFFERS, 2), 1);
	}
	assert_false(fake_vq_get_used(&x->rx, &id, &len));
	assert_true(r->irq.count > 0);
	assert_int_equal(restored_stats(r).rx_frames, 3);
	/* Nothing is left to deliver a second time. */
	virtio_net_ops.queue_notify(r->net, VIRTIO_NET_RXQ);
	assert_false(fake_vq_get_used(&x->rx, &id, &len));
	/* Both ways work on the restored device. */
	net_backend_deliver(&r->fb.be, NULL, frame, sizeof(frame));
	assert_true(fake_vq_get_used(&x->rx, &id, &len));
	{
		struct fake_buf b[2] = { { TX_HDR, HDR, false }, { TX_BUF, sizeof(frame), false } };
		uint16_t head = fake_vq_add_chain(&x->tx, b, 2);

		virtio_net_ops.queue_notify(r->net, VIRTIO_NET_TXQ);
		assert_true(fake_vq_get_used(&x->tx, &id, &len));
		assert_int_equal(id, head);
		assert_int_equal(r->fb.sent, 1);
		assert_int_equal(r->fb.last_len, sizeof(frame));
	}
	snap_writer_free(&s.w);
	restored_destroy(r);
}

/* A pull back end (TAP) parks a frame that ran past the guest's buffers: it is in the record,
 * and the restored device delivers it (the new back end never sees it). */
static void test_snapshot_parked_frame(void **state)
{
	struct fixture *x = *state;
	uint64_t features;
	struct snap_buf s;
	struct restored *r;
	uint32_t ids[3], lens[3];

	bring_up(x, ALL_FEATURES);
	features = device_features(x);
	post_rx(x, 8, 2048);
	pull(x, 3, 5000);
	for (int i = 0; i < 6; i++)
		assert_true(fake_vq_get_used(&x->rx, &ids[0], &lens[0]));
	assert_false(fake_vq_get_used(&x->rx, &ids[0], &lens[0]));
	assert_int_equal(x->fb.pulled, 3); /* frame 2 read and parked */
	snap_take(x, &s);

	r = restored_create(x, &fb_pull_ops, true);
	assert_int_equal(virtio_net_ops.restore(r->net, &s.f, SNAP_ID), 0);
	restored_activate(x, r, features);
	add_rx(x, 8, 2048);
	virtio_net_ops.queue_notify(r->net, VIRTIO_NET_RXQ);
	for (int i = 0; i < 3; i++)
		assert_true(fake_vq_get_used(&x->rx, &ids[i], &lens[i]));
	assert_false(fake_vq_get_used(&x->rx, &ids[0], &lens[0]));
	/* The buffers it was offered before the snapshot, and one more. */
	assert_int_equal(ids[0], 6);
	assert_int_equal(rx_buf(x, ids[0])[HDR + 100], 2);
	assert_int_equal(virtio_get_le(rx_buf(x, ids[0]) + VIRTIO_NET_HDR_NUM_BUFFERS, 2), 3);
	assert_int_equal(lens[0] + lens[1] + lens[2], HDR + 5000);
	assert_int_equal(r->fb.pulled, 0);
	assert_int_equal(restored_stats(r).rx_frames, 1);
	snap_writer_free(&s.w);
	restored_destroy(r);
}

/* Link down comes back down; a clone's MAC replaces the restored one. */
static void test_snapshot_link_and_mac(void **state)
{
	struct fixture *x = *state;
	static const uint8_t clone_mac[6] = { 0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee };
	static const uint8_t multicast[6] = { 0x01, 0x00, 0x5e, 0x00, 0x00, 0x01 };
	uint64_t features = device_features(x);
	struct snap_buf s;
	struct restored *r;
	uint8_t frame[100];
	uint32_t id, len;

	virtio_net_set_link(x->net, false);
	snap_take(x, &s);
	r = restored_create(x, &fb_ops, false);
	assert_true(virtio_net_link_up(r->net));
	assert_int_equal(virtio_net_ops.restore(r->net, &s.f, SNAP_ID), 0);
	assert_false(virtio_net_link_up(r->net));
	assert_int_equal(restored_cfg(r, VIRTIO_NET_CFG_STATUS, 2), 0);
	restored_activate(x, r, features);
	/* Down: nothing reaches the guest. */
	make_frame(frame, sizeof(frame));
	add_rx(x, 1, 2048);
	virtio_net_ops.queue_notify(r->net, VIRTIO_NET_RXQ);
	net_backend_deliver(&r->fb.be, NULL, frame, sizeof(frame));
	assert_false(fake_vq_get_used(&x->rx, &id, &len));
	/* The clone's identity: another MAC (a config interrupt), then the link comes up. */
	assert_int_equal(virtio_net_set_mac_after_restore(r->net, multicast), -EINVAL);
	assert_mac(r, test_mac);
	assert_int_equal(virtio_net_set_mac_after_restore(r->net, clone_mac), 0);
	assert_mac(r, clone_mac);
	assert_true(fdrv_rd(r->t, VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_INT_CONFIG);
	virtio_net_set_link(r->net, true);
	net_backend_deliver(&r->fb.be, NULL, frame, sizeof(frame));
	assert_true(fake_vq_get_used(&x->rx, &id, &len));
	snap_writer_free(&s.w);
	restored_destroy(r);
}

/* A snapshot taken while a bounce waits for the driver saves the link it returns to. */
static void test_snapshot_during_bounce(void **state)
{
	struct fixture *x = *state;
	struct snap_buf s;
	struct restored *r;

	assert_true(virtio_net_bounce_link(x->net));
	snap_take(x, &s);
	r = restored_create(x, &fb_ops, false);
	assert_int_equal(virtio_net_ops.restore(r->net, &s.f, SNAP_ID), 0);
	assert_true(virtio_net_link_up(r->net));
	assert_int_equal(restored_cfg(r, VIRTIO_NET_CFG_STATUS, 2), VIRTIO_NET_S_LINK_UP);
	snap_writer_free(&s.w);
	restored_destroy(r);
}

/* A hand-made record: what a valid one holds, and the knobs the refusals turn. */
struct net_rec {
	uint16_t version;
	const char *id;
	uint8_t mac[6];
	uint8_t link, broken;
	uint32_t count;	  /* frames claimed */
	unsigned written; /* frames written */
	uint8_t has_hdr;
	uint32_t len;	/* each frame's length field */
	uint32_t bytes; /* bytes written per frame */
	bool trailing;	/* one byte too many */
};

static struct net_rec good_rec(void)
{
	struct net_rec g = { .version = 1,
			     .id = SNAP_ID,
			     .link = 1,
			     .count = 1,
			     .written = 1,
			     .len = 60,
			     .bytes = 60 };

	memcpy(g.mac, other_mac, 6);
	g.mac[5] = 0x99;
	return g;
}

static void build_rec(struct snap_buf *s, const struct net_rec *g)
{
	static uint8_t frame[HDR + NET_MAX_FRAME + 1];

	make_frame(frame, sizeof(frame));
	snap_writer_init(&s->w);
	snap_rec_begin(&s->w, SNAP_REC_VIRTIO_NET, g->version, g->id);
	snap_put_bytes(&s->w, g->mac, 6);
	snap_put_u8(&s->w, g->link);
	snap_put_u8(&s->w, g->broken);
	snap_put_u32(&s->w, g->count);
	for (unsigned i = 0; i < g->written; i++) {
		snap_put_u8(&s->w, g->has_hdr);
		snap_put_u32(&s->w, g->len);
		snap_put_bytes(&s->w, frame, g->bytes);
	}
	if (g->trailing)
		snap_put_u8(&s->w, 0);
	snap_parse(s);
}

/* Malformed records are refused with -EINVAL and leave the device exactly as created. */
static void test_snapshot_refusals(void **state)
{
	struct fixture *x = *state;
	uint64_t features = device_features(x);
	struct restored *r = restored_create(x, &fb_ops, false);
	struct net_rec cases[16];
	unsigned n = 0;
	struct snap_buf s;
	uint32_t id, len;

	for (unsigned i = 0; i < 16; i++)
		cases[i] = good_rec();
	cases[n++].version = 2;
	cases[n++].version = 0;
	cases[n++].id = "virtio-net1"; /* no record for this device */
	cases[n++].mac[0] = 0x03;      /* multicast */
	memset(cases[n++].mac, 0, 6);
	cases[n++].link = 2;
	cases[n++].broken = 7;
	cases[n].count = cases[n].written = VIRTIO_NET_PENDING_MAX + 1;
	n++;
	cases[n].len = cases[n].bytes = NET_MIN_FRAME - 1;
	n++;
	cases[n].len = cases[n].bytes = NET_MAX_FRAME + 1;
	n++;
	cases[n++].bytes = 30; /* truncated frame */
	cases[n++].count = 2;  /* a frame missing */
	cases[n++].trailing = true;
	cases[n++].has_hdr = 2;
	cases[n].has_hdr = 1; /* the header's 12 bytes missing */
	n++;
	for (unsigned i = 0; i < n; i++) {
		build_rec(&s, &cases[i]);
		if (virtio_net_ops.restore(r->net, &s.f, SNAP_ID) != -EINVAL)
			fail_msg("case %u accepted", i);
		snap_writer_free(&s.w);
		assert_mac(r, other_mac);
		assert_true(virtio_net_link_up(r->net));
	}
	/* No frame of a refused record was kept. */
	restored_activate(x, r, features);
	add_rx(x, 4, 2048);
	virtio_net_ops.queue_notify(r->net, VIRTIO_NET_RXQ);
	assert_false(fake_vq_get_used(&x->rx, &id, &len));
	restored_destroy(r);

	/* The same builder's good record is accepted, and its frame is delivered: at activation
	 * already, since buffers are available (a kick the snapshot cut off is not needed). */
	r = restored_create(x, &fb_ops, false);
	cases[0] = good_rec();
	build_rec(&s, &cases[0]);
	assert_int_equal(virtio_net_ops.restore(r->net, &s.f, SNAP_ID), 0);
	snap_writer_free(&s.w);
	assert_mac(r, cases[0].mac);
	restored_activate(x, r, features);
	assert_true(fake_vq_get_used(&x->rx, &id, &len));
	assert_int_equal(len, HDR + 60);
	assert_false(fake_vq_get_used(&x->rx, &id, &len));
	restored_destroy(r);
}

static void test_create_errors(void **state)
{
	struct net_backend be = { 0 };
	struct virtio_net *n;

	assert_int_equal(virtio_net_create(NULL, test_mac, &n), -EINVAL);
	assert_int_equal(virtio_net_create(&be, test_mac, &n), -EINVAL);
}

/* --- rate limiters (fake clock, 1000 bytes per second) --- */

static uint64_t rl_now;

static uint64_t rl_clock(void)
{
	return rl_now;
}

static void rl_start(void)
{
	rl_now = 7000000000;
	ratelimit_set_clock(rl_clock);
}

/* TX: a chain beyond the budget stays in the ring until the timer fires. */
static void test_ratelimit_tx(void **state)
{
	struct fixture *x = *state;
	struct ratelimit_cfg c = { .bandwidth = { 1000, 0, 1000 } };
	struct ratelimit_cfg bad = { .ops = { 1, 0, 0 } };
	struct fake_buf b[2] = { { TX_HDR, HDR, false }, { TX_BUF, 400, false } };
	uint32_t id, used;

	rl_start();
	make_frame(fake_mem_ptr(&x->mem, TX_BUF, 400), 400);
	put_tx_hdr(x, 0, 0, 0, 0);
	assert_int_equal(virtio_net_set_ratelimit(x->net, NULL, &bad), -EINVAL);
	assert_int_equal(virtio_net_set_ratelimit(x->net, NULL, &c), 0);
	for (int i = 0; i < 3; i++)
		fake_vq_add_chain(&x->tx, b, 2);
	wr(x, VIRTIO_MMIO_QUEUE_NOTIFY, VIRTIO_NET_TXQ);
	assert_int_equal(x->fb.sent, 2);
	wr(x, VIRTIO_MMIO_QUEUE_NOTIFY, VIRTIO_NET_TXQ);
	assert_int_equal(x->fb.sent, 2);
	assert_int_equal(fake_vq_used_idx(&x->tx), 2);
	rl_now += 200000000;
	virtio_net_ratelimit_fire(x->net, true);
	wr(x, VIRTIO_MMIO_QUEUE_NOTIFY, VIRTIO_NET_TXQ); /* no event loop: run the queue */
	assert_int_equal(x->fb.sent, 3);
	assert_int_equal(stats(x).tx_frames, 3);
	assert_int_equal(stats(x).tx_dropped, 0);
	for (int i = 0; i < 3; i++)
		assert_true(fake_vq_get_used(&x->tx, &id, &used));
	/* The receive side is not limited by the transmit limiter. */
	post_rx(x, 4, 2048);
	for (int i = 0; i < 3; i++) {
		uint8_t frame[400];

		make_frame(frame, sizeof(frame));
		inject(x, NULL, frame, sizeof(frame));
	}
	assert_int_equal(stats(x).rx_frames, 3);
	ratelimit_set_clock(NULL);
}

/* RX from a push back end (slirp): a frame beyond the budget waits in the device, the back
 * end is paused (nothing dropped), and the timer delivers it. */
static void test_ratelimit_rx_push(void **state)
{
	struct fixture *x = *state;
	struct ratelimit_cfg c = { .bandwidth = { 1000, 0, 1000 } };
	struct ratelimit_cfg none = { 0 };
	uint8_t frame[400];
	uint32_t id, len;
	unsigned got = 0;

	rl_start();
	make_frame(frame, sizeof(frame));
	assert_int_equal(virtio_net_set_ratelimit(x->net, &c, NULL), 0);
	post_rx(x, 8, 2048);
	for (int i = 0; i < 4; i++) {
		frame[100] = (uint8_t)i;
		inject(x, NULL, frame, sizeof(frame));
	}
	assert_int_equal(stats(x).rx_frames, 2);
	assert_int_equal(stats(x).rx_dropped, 0);
	assert_false(x->fb.rx_on);
	rl_now += 400000000; /* room for one more */
	virtio_net_ratelimit_fire(x->net, false);
	assert_int_equal(stats(x).rx_frames, 3);
	assert_false(x->fb.rx_on);
	/* Lifting the limit delivers the rest at once and resumes the back end. */
	assert_int_equal(virtio_net_set_ratelimit(x->net, &none, NULL), 0);
	assert_int_equal(stats(x).rx_frames, 4);
	assert_true(x->fb.rx_on);
	while (fake_vq_get_used(&x->rx, &id, &len)) {
		assert_int_equal(rx_buf(x, id)[HDR + 100], (uint8_t)got); /* in order */
		got++;
	}
	assert_int_equal(got, 4);
	ratelimit_set_clock(NULL);
}

/* RX from a pull back end (TAP): frames are read while the bucket is not in debt, each then
 * counted in full; in debt the back end is paused until the timer fires. */
static void test_ratelimit_rx_pull(void **state)
{
	struct fixture *x = *state;
	struct ratelimit_cfg c = { .bandwidth = { 1000, 0, 1000 } };

	rl_start();
	assert_int_equal(virtio_net_set_ratelimit(x->net, &c, NULL), 0);
	post_rx(x, 8, 2048);
	pull(x, 5, 400);
	assert_int_equal(x->fb.pulled, 3); /* 1000 - 3 * 400: 200 bytes in debt */
	assert_false(x->fb.rx_on);
	rl_now += 200000000; /* debt paid, bucket at 0: still waits */
	virtio_net_ratelimit_fire(x->net, false);
	pull(x, 0, 400);
	assert_int_equal(x->fb.pulled, 3);
	rl_now += 1000000;
	virtio_net_ratelimit_fire(x->net, false);
	assert_true(x->fb.rx_on);
	pull(x, 0, 400);
	assert_int_equal(x->fb.pulled, 4);
	assert_int_equal(stats(x).rx_frames, 4);
	assert_int_equal(stats(x).rx_dropped, 0);
	ratelimit_set_clock(NULL);
}

#define PLAIN(fn)     cmocka_unit_test_setup_teardown(fn, setup_plain, teardown)
#define VNET(fn)      cmocka_unit_test_setup_teardown(fn, setup_vnet, teardown)
#define NOMRG(fn)     cmocka_unit_test_setup_teardown(fn, setup_no_mrg, teardown)
#define PULL(fn)      cmocka_unit_test_setup_teardown(fn, setup_pull, teardown)
#define PULLNOMRG(fn) cmocka_unit_test_setup_teardown(fn, setup_pull_no_mrg, teardown)

/* The interface's metrics (docs/metrics.md): a device made without an id (as here) counts in
 * the aggregate "net". */
static void test_metrics(void **state)
{
	struct fixture *x = *state;
	uint8_t *p = fake_mem_ptr(&x->mem, TX_BUF, 1000), frame[600];
	json_t *m = metrics_json_take(); /* zero the deltas */

	assert_non_null(m);
	json_decref(m);
	make_frame(p, 1000);
	put_tx_hdr(x, 0, 0, 0, 0);
	transmit(x, 1000);
	transmit(x, 60);
	transmit(x, 4); /* shorter than an Ethernet header: malformed, dropped */
	make_frame(frame, sizeof(frame));
	post_rx(x, 2, 2048);
	inject(x, NULL, frame, sizeof(frame));
	m = metrics_json_take();
	assert_non_null(m);
	assert_int_equal(metrics_json_get(m, "net", "tx_packets_count"), 2);
	assert_int_equal(metrics_json_get(m, "net", "tx_bytes_count"), 1060);
	assert_int_equal(metrics_json_get(m, "net", "tx_malformed_frames"), 1);
	assert_int_equal(metrics_json_get(m, "net", "tx_dropped_count"), 1);
	assert_int_equal(metrics_json_get(m, "net", "tx_queue_event_count"), 3);
	assert_int_equal(metrics_json_get(m, "net", "rx_packets_count"), 1);
	assert_int_equal(metrics_json_get(m, "net", "rx_bytes_count"), sizeof(frame));
	assert_int_equal(metrics_json_get(m, "net", "rx_dropped_count"), 0);
	json_decref(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_errors),
		cmocka_unit_test(test_mac_helpers),
		PLAIN(test_ratelimit_tx),
		PLAIN(test_ratelimit_rx_push),
		PULL(test_ratelimit_rx_pull),
		cmocka_unit_test(test_parse_hostfwd),
		cmocka_unit_test(test_cli_net),
		PLAIN(test_config_and_features),
		PLAIN(test_tx_frame),
		PLAIN(test_metrics),
		PLAIN(test_tx_scattered),
		PLAIN(test_tx_checksum_completed),
		VNET(test_tx_vnet_passthrough),
		PLAIN(test_tx_hostile),
		PLAIN(test_tx_garbage_chain),
		PLAIN(test_tx_descriptor_loop),
		PLAIN(test_rx_simple),
		PLAIN(test_rx_mergeable),
		NOMRG(test_rx_small_buffer_no_mrg),
		PLAIN(test_rx_without_guest_csum),
		PLAIN(test_rx_backpressure),
		PLAIN(test_rx_frame_bigger_than_buffers),
		PLAIN(test_rx_buffer_smaller_than_header),
		PLAIN(test_rx_readable_buffer),
		VNET(test_rx_vnet_header),
		PLAIN(test_rx_before_driver_ok),
		PLAIN(test_link_bounce),
		PLAIN(test_bounce_until_seen),
		PLAIN(test_reset_drops_backlog),
		PLAIN(test_tx_budget_one_interrupt_per_pass),
		PLAIN(test_tx_suppression_flags),
		PLAIN(test_tx_suppression_event_idx),
		PLAIN(test_rx_push_one_interrupt_per_batch),
		PLAIN(test_rx_push_asks_for_buffers),
		PULL(test_pull_zero_copy),
		PULL(test_pull_mergeable),
		PULL(test_pull_cut_off),
		PULL(test_pull_no_buffers),
		PULLNOMRG(test_pull_truncated),
		PULL(test_pull_refused_offload),
		PULL(test_pull_budget),
		PULL(test_pull_garbage_chain),
		cmocka_unit_test(test_pull_needs_vnet_hdr),
		PLAIN(test_snapshot_round_trip),
		PULL(test_snapshot_parked_frame),
		PLAIN(test_snapshot_link_and_mac),
		PLAIN(test_snapshot_during_bounce),
		PLAIN(test_snapshot_refusals),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
