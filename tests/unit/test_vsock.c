/* virtio-vsock (virtio 1.2 §5.10) with the hybrid Unix-socket protocol, driven through the
 * virtio-mmio transport with packets built in fake guest memory and real Unix sockets on the
 * host side; socket events are run by calling virtio_vsock_poll() by hand. */
#include "core/irq.h"
#include "devices/virtio/mmio.h"
#include "devices/virtio/virtio.h"
#include "devices/virtio/virtq.h"
#include "devices/virtio/vsock/conn.h"
#include "devices/virtio/vsock/proto.h"
#include "devices/virtio/vsock/vsock.h"
#include "fake_driver.h"
#include "fake_virtq.h"
#include "metrics_json.h"
#include "snapshot/snap.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#define RAM_SIZE (8u << 20)
#define QSIZE	 64
/* Rings of the three queues. */
#define RXQ_GPA 0x1000
#define TXQ_GPA 0x4000
#define EVQ_GPA 0x7000
/* Receive buffers: one 8 KiB slot per descriptor index. */
#define RX_BUF_GPA  0x100000
#define RX_BUF_SLOT 0x2000
#define RX_BUF_DATA 4096
/* The transmit packet (consumed synchronously, so one place is enough) and event buffers. */
#define TX_BUF_GPA 0x300000
#define EV_BUF_GPA 0x10000
#define CID	   3
#define GPORT	   1234 /* the guest's ephemeral port */

struct fixture {
	char dir[64], path[96];
	struct fake_mem mem;
	struct fake_vq rx, tx, ev;
	struct irq_line irq;
	struct virtio_vsock *v;
	struct virtio_mmio *t;
};

static void setup_queue(struct fixture *x, struct fake_vq *f, unsigned q, uint64_t gpa)
{
	fdrv_queue(x->t, q, f, &x->mem, QSIZE, gpa, gpa + 0x400, gpa + 0x800,
		   VIRTIO_VSOCK_QUEUE_SIZE);
}

/* §3.1.1 with VERSION_1 only (no EVENT_IDX, so every push is visible at once). */
static void bring_up(struct fixture *x)
{
	fdrv_negotiate(x->t, VIRTIO_BIT(VIRTIO_F_VERSION_1));
	setup_queue(x, &x->rx, VSOCK_QUEUE_RX, RXQ_GPA);
	setup_queue(x, &x->tx, VSOCK_QUEUE_TX, TXQ_GPA);
	setup_queue(x, &x->ev, VSOCK_QUEUE_EVENT, EVQ_GPA);
	fdrv_driver_ok(x->t);
}

static int setup(void **state)
{
	struct fixture *x = calloc(1, sizeof(*x));

	snprintf(x->dir, sizeof(x->dir), "/tmp/ign-vsock-XXXXXX");
	assert_non_null(mkdtemp(x->dir));
	snprintf(x->path, sizeof(x->path), "%s/v.sock", x->dir);
	fake_mem_init(&x->mem, RAM_SIZE);
	x->irq.fd = -1;
	assert_int_equal(virtio_vsock_create(CID, x->path, &x->v), 0);
	assert_int_equal(virtio_mmio_create(&x->mem.gm, &x->irq, &virtio_vsock_ops, x->v, &x->t),
			 0);
	bring_up(x);
	*state = x;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *x = *state;
	struct stat st;

	virtio_mmio_destroy(x->t);		  /* destroys the device too */
	assert_int_equal(stat(x->path, &st), -1); /* the listening socket is gone */
	fake_mem_free(&x->mem);
	rmdir(x->dir);
	free(x);
	return 0;
}

static uint32_t status(struct fixture *x)
{
	return fdrv_rd(x->t, VIRTIO_MMIO_STATUS);
}

/* ---- the driver's side ---- */

/* Post `n` receive buffers of a header plus RX_BUF_DATA bytes and kick the queue. */
static void post_rx(struct fixture *x, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		uint16_t head = x->rx.next_desc % QSIZE;
		struct fake_buf b = { RX_BUF_GPA + (uint64_t)head * RX_BUF_SLOT,
				      VSOCK_HDR_BYTES + RX_BUF_DATA, true };

		fake_vq_add_chain(&x->rx, &b, 1);
	}
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, VSOCK_QUEUE_RX);
}

/* Take the next packet the device put in the receive queue; false if none. */
static bool rx_pkt(struct fixture *x, struct vsock_hdr *h, void *payload, size_t room)
{
	uint32_t id, len;
	const uint8_t *p;

	if (!fake_vq_get_used(&x->rx, &id, &len))
		return false;
	assert_true(id < QSIZE);
	assert_true(len >= VSOCK_HDR_BYTES && len <= VSOCK_HDR_BYTES + RX_BUF_DATA);
	p = fake_mem_ptr(&x->mem, RX_BUF_GPA + (uint64_t)id * RX_BUF_SLOT, len);
	vsock_hdr_decode(p, h);
	assert_int_equal(h->len, len - VSOCK_HDR_BYTES);
	assert_int_equal(h->src_cid, VSOCK_CID_HOST);
	assert_int_equal(h->dst_cid, CID);
	assert_int_equal(h->type, VSOCK_TYPE_STREAM);
	if (payload) {
		assert_true(h->len <= room);
		memcpy(payload, p + VSOCK_HDR_BYTES, h->len);
	}
	return true;
}

static void expect_op(struct fixture *x, uint16_t op, uint32_t src_port, uint32_t dst_port,
		      struct vsock_hdr *out)
{
	struct vsock_hdr h;

	if (!rx_pkt(x, &h, NULL, 0))
		fail_msg("no packet; wanted op %u", op);
	if (h.op != op)
		fail_msg("op %u, wanted %u", h.op, op);
	assert_int_equal(h.src_port, src_port);
	assert_int_equal(h.dst_port, dst_port);
	if (out)
		*out = h;
}

static void expect_nothing(struct fixture *x)
{
	struct vsock_hdr h;

	if (rx_pkt(x, &h, NULL, 0))
		fail_msg("unexpected packet op %u %u->%u", h.op, h.src_port, h.dst_port);
}

/* Guest packet with everything chosen by the caller, in a chain of `buf_len` bytes. */
static void tx_raw(struct fixture *x, const struct vsock_hdr *h, const void *payload,
		   size_t payload_len, uint32_t buf_len)
{
	uint8_t *p = fake_mem_ptr(&x->mem, TX_BUF_GPA, VSOCK_HDR_BYTES + payload_len);
	struct fake_buf b = { TX_BUF_GPA, buf_len, false };
	uint32_t id, len;

	vsock_hdr_encode(h, p);
	if (payload_len)
		memcpy(p + VSOCK_HDR_BYTES, payload, payload_len);
	fake_vq_add_chain(&x->tx, &b, 1);
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, VSOCK_QUEUE_TX);
	assert_true(fake_vq_get_used(&x->tx, &id, &len));
	assert_int_equal(len, 0);
}

static struct vsock_hdr ghdr(uint16_t op, uint32_t src_port, uint32_t dst_port)
{
	return (struct vsock_hdr){ .src_cid = CID,
				   .dst_cid = VSOCK_CID_HOST,
				   .src_port = src_port,
				   .dst_port = dst_port,
				   .type = VSOCK_TYPE_STREAM,
				   .op = op,
				   .buf_alloc = 64 * 1024,
				   .fwd_cnt = 0 };
}

/* A well-formed guest packet. */
static void tx(struct fixture *x, uint16_t op, uint32_t src_port, uint32_t dst_port, uint32_t flags,
	       const void *payload, size_t len)
{
	struct vsock_hdr h = ghdr(op, src_port, dst_port);

	h.flags = flags;
	h.len = (uint32_t)len;
	tx_raw(x, &h, payload, len, (uint32_t)(VSOCK_HDR_BYTES + len));
}

/* ---- the host's side ---- */

static int host_listen(struct fixture *x, uint32_t port)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);

	snprintf(a.sun_path, sizeof(a.sun_path), "%s_%u", x->path, port);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(fd, 256), 0);
	return fd;
}

static void host_unlisten(struct fixture *x, int fd, uint32_t port)
{
	char p[128];

	snprintf(p, sizeof(p), "%s_%u", x->path, port);
	close(fd);
	unlink(p);
}

static int host_connect(struct fixture *x)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	snprintf(a.sun_path, sizeof(a.sun_path), "%s", x->path);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	return fd;
}

static void host_write(int fd, const void *buf, size_t len)
{
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
}

/* Read exactly len bytes (the socket may be blocking or not; waits up to 1 s). */
static void host_read(int fd, void *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t r;

		assert_int_equal(poll(&p, 1, 1000), 1);
		r = read(fd, (uint8_t *)buf + got, len - got);
		assert_true(r > 0);
		got += (size_t)r;
	}
}

/* The socket reads end-of-file (or a reset) within 1 s. */
static void host_expect_eof(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char c;

	assert_int_equal(poll(&p, 1, 1000), 1);
	assert_true(read(fd, &c, 1) <= 0);
}

static bool host_readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, 0) == 1;
}

/* Guest connects GPORT -> port on a host listener; returns the accepted host socket. */
static int guest_connects(struct fixture *x, int lfd, uint32_t gport, uint32_t port)
{
	int fd;

	tx(x, VSOCK_OP_REQUEST, gport, port, 0, NULL, 0);
	expect_op(x, VSOCK_OP_RESPONSE, port, gport, NULL);
	fd = accept(lfd, NULL, NULL);
	assert_true(fd >= 0);
	return fd;
}

/* A host client connects to PATH for guest port `port`; the guest accepts.  Returns the
 * client socket and the host port in *hport. */
static int host_connects(struct fixture *x, uint32_t port, uint32_t *hport)
{
	struct vsock_hdr h;
	char line[64], want[64];
	int fd = host_connect(x);

	snprintf(line, sizeof(line), "CONNECT %u\n", port);
	host_write(fd, line, strlen(line));
	virtio_vsock_poll(x->v);
	assert_true(rx_pkt(x, &h, NULL, 0));
	assert_int_equal(h.op, VSOCK_OP_REQUEST);
	assert_int_equal(h.dst_port, port);
	assert_true(h.src_port >= VSOCK_EPHEMERAL_MIN);
	tx(x, VSOCK_OP_RESPONSE, port, h.src_port, 0, NULL, 0);
	snprintf(want, sizeof(want), "OK %u\n", h.src_port);
	host_read(fd, line, strlen(want));
	assert_memory_equal(line, want, strlen(want));
	*hport = h.src_port;
	return fd;
}

/* ---- tests ---- */

static void test_config_and_features(void **state)
{
	struct fixture *x = *state;

	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_DEVICE_ID), VIRTIO_ID_VSOCK);
	assert_int_equal(virtio_mmio_dev_ops.read(x->t, VIRTIO_MMIO_CONFIG, 8), CID);
	assert_int_equal(virtio_mmio_dev_ops.read(x->t, VIRTIO_MMIO_CONFIG + 4, 4), 0);
	/* Byte-wise, as Linux reads it; past the end reads 0. */
	assert_int_equal(virtio_mmio_dev_ops.read(x->t, VIRTIO_MMIO_CONFIG, 1), CID);
	assert_int_equal(virtio_mmio_dev_ops.read(x->t, VIRTIO_MMIO_CONFIG + 8, 4), 0);
	fdrv_wr(x->t, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	/* Streams only: no SEQPACKET (bit 1). */
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_DEVICE_FEATURES) & 3u, 0);
}

static void test_create_errors(void **state)
{
	struct fixture *x = *state;
	struct virtio_vsock *v;
	char longp[200], p[100];
	int fd;

	assert_int_equal(virtio_vsock_create(2, "/tmp/x", &v), -EINVAL);
	assert_int_equal(virtio_vsock_create(0xffffffffu, "/tmp/x", &v), -EINVAL);
	memset(longp, 'a', sizeof(longp) - 1);
	longp[0] = '/';
	longp[sizeof(longp) - 1] = '\0';
	assert_int_equal(virtio_vsock_create(3, longp, &v), -ENAMETOOLONG);
	/* A live socket at the path is not stolen. */
	assert_int_equal(virtio_vsock_create(4, x->path, &v), -EADDRINUSE);
	/* A regular file is not deleted. */
	snprintf(p, sizeof(p), "%s/file", x->dir);
	fd = open(p, O_CREAT | O_WRONLY, 0600);
	close(fd);
	assert_int_equal(virtio_vsock_create(4, p, &v), -EEXIST);
	unlink(p);
	/* A stale socket (nobody listening) is replaced, and removed on destroy. */
	snprintf(p, sizeof(p), "%s/stale", x->dir);
	{
		struct sockaddr_un a = { .sun_family = AF_UNIX };

		fd = socket(AF_UNIX, SOCK_STREAM, 0);
		snprintf(a.sun_path, sizeof(a.sun_path), "%s", p);
		assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
		close(fd);
	}
	assert_int_equal(virtio_vsock_create(4, p, &v), 0);
	virtio_vsock_destroy(v);
	assert_int_equal(access(p, F_OK), -1);
}

static void test_guest_to_host(void **state)
{
	struct fixture *x = *state;
	int lfd = host_listen(x, 5000), fd;
	char buf[64];
	struct vsock_hdr h;

	post_rx(x, 8);
	fd = guest_connects(x, lfd, GPORT, 5000);
	assert_int_equal(virtio_vsock_nr_conns(x->v), 1);
	tx(x, VSOCK_OP_RW, GPORT, 5000, 0, "hello", 5);
	host_read(fd, buf, 5);
	assert_memory_equal(buf, "hello", 5);
	host_write(fd, "world!", 6);
	virtio_vsock_poll(x->v);
	assert_true(rx_pkt(x, &h, buf, sizeof(buf)));
	assert_int_equal(h.op, VSOCK_OP_RW);
	assert_int_equal(h.src_port, 5000);
	assert_int_equal(h.dst_port, GPORT);
	assert_int_equal(h.len, 6);
	assert_memory_equal(buf, "world!", 6);
	/* Our credit: what we advertise and what reached the host socket. */
	assert_int_equal(h.buf_alloc, VSOCK_CONN_BUF_ALLOC);
	assert_int_equal(h.fwd_cnt, 5);
	close(fd);
	host_unlisten(x, lfd, 5000);
}

/* The "vsock" metrics (docs/metrics.md): packets and payload bytes each way, connections. */
static void test_metrics(void **state)
{
	struct fixture *x = *state;
	int lfd = host_listen(x, 5000), fd;
	char buf[64];
	struct vsock_hdr h;
	json_t *m = metrics_json_take(); /* zero the deltas */

	assert_non_null(m);
	json_decref(m);
	post_rx(x, 8);
	fd = guest_connects(x, lfd, GPORT, 5000);
	tx(x, VSOCK_OP_RW, GPORT, 5000, 0, "hello", 5);
	host_read(fd, buf, 5);
	host_write(fd, "world!", 6);
	virtio_vsock_poll(x->v);
	assert_true(rx_pkt(x, &h, buf, sizeof(buf)));
	tx(x, VSOCK_OP_RST, GPORT, 5000, 0, NULL, 0);
	assert_int_equal(virtio_vsock_nr_conns(x->v), 0);
	m = metrics_json_take();
	assert_non_null(m);
	assert_int_equal(metrics_json_get(m, "vsock", "tx_packets_count"), 3);
	assert_int_equal(metrics_json_get(m, "vsock", "tx_bytes_count"), 5);
	assert_int_equal(metrics_json_get(m, "vsock", "rx_packets_count"), 2);
	assert_int_equal(metrics_json_get(m, "vsock", "rx_bytes_count"), 6);
	assert_int_equal(metrics_json_get(m, "vsock", "conns_added"), 1);
	assert_int_equal(metrics_json_get(m, "vsock", "conns_removed"), 1);
	assert_int_equal(metrics_json_get(m, "vsock", "conns_killed"), 0);
	json_decref(m);
	close(fd);
	host_unlisten(x, lfd, 5000);
}

static void test_guest_connect_refused(void **state)
{
	struct fixture *x = *state;

	post_rx(x, 4);
	tx(x, VSOCK_OP_REQUEST, GPORT, 5001, 0, NULL, 0);
	expect_op(x, VSOCK_OP_RST, 5001, GPORT, NULL);
	assert_int_equal(virtio_vsock_nr_conns(x->v), 0);
	/* A non-socket at PATH_P is refused the same way. */
	{
		char p[128];
		int fd;

		snprintf(p, sizeof(p), "%s_5002", x->path);
		fd = open(p, O_CREAT | O_WRONLY, 0600);
		close(fd);
		tx(x, VSOCK_OP_REQUEST, GPORT, 5002, 0, NULL, 0);
		expect_op(x, VSOCK_OP_RST, 5002, GPORT, NULL);
		unlink(p);
	}
	assert_int_equal(status(x) & VIRTIO_STATUS_DEVICE_NEEDS_RESET, 0);
}

static void test_host_to_guest(void **state)
{
	struct fixture *x = *state;
	struct vsock_hdr h;
	uint32_t hport;
	char buf[64];
	int fd;

	post_rx(x, 8);
	fd = host_connects(x, 52, &hport);
	assert_int_equal(virtio_vsock_nr_conns(x->v), 1);
	host_write(fd, "ping", 4);
	virtio_vsock_poll(x->v);
	assert_true(rx_pkt(x, &h, buf, sizeof(buf)));
	assert_int_equal(h.op, VSOCK_OP_RW);
	assert_int_equal(h.src_port, hport);
	assert_int_equal(h.dst_port, 52);
	assert_memory_equal(buf, "ping", 4);
	tx(x, VSOCK_OP_RW, 52, hport, 0, "pong", 4);
	host_read(fd, buf, 4);
	assert_memory_equal(buf, "pong", 4);
	close(fd);
}

static void test_host_connect_early_data(void **state)
{
	struct fixture *x = *state;
	struct vsock_hdr h;
	char buf[64];
	int fd;

	post_rx(x, 8);
	fd = host_connect(x);
	/* Bytes right behind the CONNECT line are data, not part of the line. */
	host_write(fd, "CONNECT 7\r\nEARLY", 16);
	virtio_vsock_poll(x->v);
	assert_true(rx_pkt(x, &h, NULL, 0));
	assert_int_equal(h.op, VSOCK_OP_REQUEST);
	assert_int_equal(h.dst_port, 7);
	tx(x, VSOCK_OP_RESPONSE, 7, h.src_port, 0, NULL, 0);
	host_read(fd, buf, 3);
	assert_memory_equal(buf, "OK ", 3);
	assert_true(rx_pkt(x, &h, buf, sizeof(buf)));
	assert_int_equal(h.op, VSOCK_OP_RW);
	assert_int_equal(h.len, 5);
	assert_memory_equal(buf, "EARLY", 5);
	close(fd);
}

static void test_host_connect_refused(void **state)
{
	struct fixture *x = *state;
	struct vsock_hdr h;
	int fd;

	post_rx(x, 8);
	fd = host_connect(x);
	host_write(fd, "CONNECT 9\n", 10);
	virtio_vsock_poll(x->v);
	assert_true(rx_pkt(x, &h, NULL, 0));
	assert_int_equal(h.op, VSOCK_OP_REQUEST);
	/* Nobody listens on guest port 9: the guest answers RST, the client is closed. */
	tx(x, VSOCK_OP_RST, 9, h.src_port, 0, NULL, 0);
	host_expect_eof(fd);
	assert_int_equal(virtio_vsock_nr_conns(x->v), 0);
	expect_nothing(x);
	close(fd);
}

static void test_host_connect_bad_lines(void **state)
{
	static const char *const bad[] = {
		"HELLO 5\n",	 "CONNECT\n",
		"CONNECT \n",	 "CONNECT 4294967296\n",
		"CONNECT 5 6\n", "connect 5\n",
		"CONNECT -1\n",	 "CONNECT 123456789012345678901234567890",
	};
	struct fixture *x = *state;

	post_rx(x, 8);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int fd = host_connect(x);

		host_write(fd, bad[i], strlen(bad[i]));
		virtio_vsock_poll(x->v);
		host_expect_eof(fd);
		close(fd);
	}
	expect_nothing(x);
	assert_int_equal(virtio_vsock_nr_conns(x->v), 0);
}

static void test_host_connect_timeouts(void **state)
{
	struct fixture *x = *state;
	struct vsock_hdr h;
	int quiet, waiting;

	post_rx(x, 8);
	/* A client that never sends its line. */
	quiet = host_connect(x);
	virtio_vsock_poll(x->v);
	assert_int_equal(virtio_vsock_nr_conns(x->v), 1);
	/* A guest that never answers the REQUEST. */
	waiting = host_connect(x);
	host_write(waiting, "CONNECT 11\n", 11);
	virtio_vsock_poll(x->v);
	assert_true(rx_pkt(x, &h, NULL, 0));
	assert_int_equal(h.op, VSOCK_OP_REQUEST);
	virtio_vsock_tick(x->v, UINT64_MAX / 2);
	host_expect_eof(quiet);
	host_expect_eof(waiting);
	/* The guest heard of the second one, so it is told. */
	expect_op(x, VSOCK_OP_RST, h.src_port, 11, NULL);
	assert_int_equal(virtio_vsock_nr_conns(x->v), 0);
	close(quiet);
	close(waiting);
}

/* Host -> guest never exceeds the guest's credit; a stalled sender asks for credit. */
static void test_credit_to_guest(void **state)
{
	struct fixture *x = *state;
	int lfd = host_listen(x, 6000), fd;
	struct vsock_hdr h = ghdr(VSOCK_OP_REQUEST, GPORT, 6000), r;
	uint8_t data[1000], got[1000];
	uint32_t total = 0;

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 13);
	post_rx(x, 16);
	h.buf_alloc = 300;
	tx_raw(x, &h, NULL, 0, VSOCK_HDR_BYTES);
	expect_op(x, VSOCK_OP_RESPONSE, 6000, GPORT, NULL);
	fd = accept(lfd, NULL, NULL);
	host_write(fd, data, sizeof(data));
	virtio_vsock_poll(x->v);
	while (rx_pkt(x, &r, got + total, sizeof(got) - total)) {
		if (r.op == VSOCK_OP_CREDIT_REQUEST)
			break;
		assert_int_equal(r.op, VSOCK_OP_RW);
		total += r.len;
	}
	assert_int_equal(r.op, VSOCK_OP_CREDIT_REQUEST);
	assert_int_equal(total, 300);
	/* The guest consumed 300: 300 more may come. */
	h = ghdr(VSOCK_OP_CREDIT_UPDATE, GPORT, 6000);
	h.buf_alloc = 300;
	h.fwd_cnt = 300;
	tx_raw(x, &h, NULL, 0, VSOCK_HDR_BYTES);
	while (rx_pkt(x, &r, got + total, sizeof(got) - total) && r.op == VSOCK_OP_RW)
		total += r.len;
	assert_int_equal(total, 600);
	assert_memory_equal(got, data, 600);
	/* A guest claiming to have forwarded more than it was sent gets nothing. */
	h.fwd_cnt = 5000;
	tx_raw(x, &h, NULL, 0, VSOCK_HDR_BYTES);
	virtio_vsock_poll(x->v);
	while (rx_pkt(x, &r, NULL, 0))
		assert_int_not_equal(r.op, VSOCK_OP_RW);
	close(fd);
	host_unlisten(x, lfd, 6000);
}

/* Guest -> host: bounded buffering behind a host that does not read, credit updates when it
 * does, RST for a guest that ignores its credit. */
static void test_credit_from_guest(void **state)
{
	struct fixture *x = *state;
	int lfd = host_listen(x, 6001), fd;
	static uint8_t chunk[VSOCK_MAX_PKT_LEN], sink[1 << 16];
	struct vsock_hdr r;
	uint32_t sent = 0;
	bool reset = false, update = false;

	memset(chunk, 0x5a, sizeof(chunk));
	post_rx(x, 32);
	fd = guest_connects(x, lfd, GPORT, 6001);
	/* Fill the socket and then our buffer; the host reads nothing. */
	for (int i = 0; i < 64 && !reset; i++) {
		tx(x, VSOCK_OP_RW, GPORT, 6001, 0, chunk, sizeof(chunk));
		sent += sizeof(chunk);
		while (rx_pkt(x, &r, NULL, 0)) {
			if (r.op == VSOCK_OP_RST)
				reset = true;
		}
	}
	/* 4 MiB is far more than socket + VSOCK_CONN_BUF_ALLOC: the guest overran its credit. */
	assert_true(reset);
	assert_int_equal(virtio_vsock_nr_conns(x->v), 0);
	close(fd);

	/* Within credit (4 x 64 KiB = buf_alloc), a draining host produces CREDIT_UPDATEs and
	 * every byte arrives. */
	fd = guest_connects(x, lfd, GPORT + 1, 6001);
	fcntl(fd, F_SETFL, O_NONBLOCK);
	for (int i = 0; i < 4; i++)
		tx(x, VSOCK_OP_RW, GPORT + 1, 6001, 0, chunk, sizeof(chunk));
	for (uint32_t got = 0; got < 4 * sizeof(chunk);) {
		ssize_t n = read(fd, sink, sizeof(sink));

		if (n > 0)
			got += (uint32_t)n;
		virtio_vsock_poll(x->v);
		while (rx_pkt(x, &r, NULL, 0))
			if (r.op == VSOCK_OP_CREDIT_UPDATE && r.fwd_cnt > 0)
				update = true;
	}
	/* Either a CREDIT_UPDATE, or every packet on the way carried the new fwd_cnt. */
	assert_true(update);
	close(fd);
	host_unlisten(x, lfd, 6001);
}

/* No receive buffers: host sockets wait; posting buffers resumes them. */
static void test_rx_backpressure(void **state)
{
	struct fixture *x = *state;
	int lfd = host_listen(x, 6002), fd;
	struct vsock_hdr r;
	char buf[RX_BUF_DATA];
	uint32_t total = 0;

	post_rx(x, 1);
	fd = guest_connects(x, lfd, GPORT, 6002); /* the one buffer carries the RESPONSE */
	host_write(fd, "0123456789", 10);
	virtio_vsock_poll(x->v);
	expect_nothing(x);
	post_rx(x, 1);
	assert_true(rx_pkt(x, &r, buf, sizeof(buf)));
	assert_int_equal(r.op, VSOCK_OP_RW);
	total += r.len;
	assert_int_equal(total, 10);
	assert_memory_equal(buf, "0123456789", 10);
	close(fd);
	host_unlisten(x, lfd, 6002);
}

static void test_shutdown_guest_side(void **state)
{
	struct fixture *x = *state;
	int lfd = host_listen(x, 6003), fd;
	struct vsock_hdr r;
	char buf[16];

	post_rx(x, 8);
	fd = guest_connects(x, lfd, GPORT, 6003);
	tx(x, VSOCK_OP_RW, GPORT, 6003, 0, "req", 3);
	/* Half-close: the host reads the request, then end-of-file, and can still answer. */
	tx(x, VSOCK_OP_SHUTDOWN, GPORT, 6003, VSOCK_SHUTDOWN_SEND, NULL, 0);
	host_read(fd, buf, 3);
	host_expect_eof(fd);
	host_write(fd, "ans", 3);
	virtio_vsock_poll(x->v);
	assert_true(rx_pkt(x, &r, buf, sizeof(buf)));
	assert_int_equal(r.op, VSOCK_OP_RW);
	assert_memory_equal(buf, "ans", 3);
	/* Data after SHUTDOWN(SEND) breaks the stream. */
	tx(x, VSOCK_OP_RW, GPORT, 6003, 0, "late", 4);
	expect_op(x, VSOCK_OP_RST, 6003, GPORT, NULL);
	assert_int_equal(virtio_vsock_nr_conns(x->v), 0);
	close(fd);

	/* Full close from the guest: the host socket closes, the guest gets RST. */
	fd = guest_connects(x, lfd, GPORT + 1, 6003);
	tx(x, VSOCK_OP_SHUTDOWN, GPORT + 1, 6003, VSOCK_SHUTDOWN_BOTH, NULL, 0);
	expect_op(x, VSOCK_OP_RST, 6003, GPORT + 1, NULL);
	host_expect_eof(fd);
	assert_int_equal(virtio_vsock_nr_conns(x->v), 0);
	close(fd);
	host_unlisten(x, lfd, 6003);
}

static void test_shutdown_host_side(void **state)
{
	struct fixture *x = *state;
	int lfd = host_listen(x, 6004), fd;
	struct vsock_hdr r;
	char buf[16];

	post_rx(x, 16);
	/* Half-close from the host: data, then SHUTDOWN(SEND); the guest can still send. */
	fd = guest_connects(x, lfd, GPORT, 6004);
	host_write(fd, "abc", 3);
	shutdown(fd, SHUT_WR);
	virtio_vsock_poll(x->v);
	assert_true(rx_pkt(x, &r, buf, sizeof(buf)));
	assert_int_equal(r.op, VSOCK_OP_RW);
	expect_op(x, VSOCK_OP_SHUTDOWN, 6004, GPORT, &r);
	assert_int_equal(r.flags, VSOCK_SHUTDOWN_SEND);
	tx(x, VSOCK_OP_RW, GPORT, 6004, 0, "xyz", 3);
	host_read(fd, buf, 3);
	assert_memory_equal(buf, "xyz", 3);
	close(fd);
	/* Now the host is gone entirely. */
	virtio_vsock_poll(x->v);
	tx(x, VSOCK_OP_SHUTDOWN, GPORT, 6004, VSOCK_SHUTDOWN_BOTH, NULL, 0);
	expect_op(x, VSOCK_OP_RST, 6004, GPORT, NULL);
	assert_int_equal(virtio_vsock_nr_conns(x->v), 0);

	/* Full close from the host: SHUTDOWN(RCV|SEND), the guest answers RST. */
	fd = guest_connects(x, lfd, GPORT + 1, 6004);
	close(fd);
	virtio_vsock_poll(x->v);
	expect_op(x, VSOCK_OP_SHUTDOWN, 6004, GPORT + 1, &r);
	assert_int_equal(r.flags, VSOCK_SHUTDOWN_BOTH);
	tx(x, VSOCK_OP_RST, GPORT + 1, 6004, 0, NULL, 0);
	assert_int_equal(virtio_vsock_nr_conns(x->v), 0);
	expect_nothing(x);

	/* ... and a guest that never answers is reset after the linger time. */
	fd = guest_connects(x, lfd, GPORT + 2, 6004);
	close(fd);
	virtio_vsock_poll(x->v);
	expect_op(x, VSOCK_OP_SHUTDOWN, 6004, GPORT + 2, NULL);
	virtio_vsock_tick(x->v, UINT64_MAX / 2);
	expect_op(x, VSOCK_OP_RST, 6004, GPORT + 2, NULL);
	assert_int_equal(virtio_vsock_nr_conns(x->v), 0);
	host_unlisten(x, lfd, 6004);
}

/* Many connections at once, each with its own data; the table's cap is enforced. */
static void test_many_connections(void **state)
{
	struct fixture *x = *state;
	int lfd = host_listen(x, 7000);
	static int fds[VSOCK_MAX_CONNS];
	struct vsock_hdr r;
	char buf[32];

	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
		post_rx(x, 1);
		fds[i] = guest_connects(x, lfd, 10000 + i, 7000);
	}
	assert_int_equal(virtio_vsock_nr_conns(x->v), VSOCK_MAX_CONNS);
	post_rx(x, 1);
	tx(x, VSOCK_OP_REQUEST, 20000, 7000, 0, NULL, 0);
	expect_op(x, VSOCK_OP_RST, 7000, 20000, NULL);
	/* A host client beyond the cap is closed at once. */
	{
		int fd = host_connect(x);

		virtio_vsock_poll(x->v);
		host_expect_eof(fd);
		close(fd);
	}
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
		int n = snprintf(buf, sizeof(buf), "conn %u", i);

		tx(x, VSOCK_OP_RW, 10000 + i, 7000, 0, buf, (size_t)n);
		host_write(fds[i], buf, (size_t)n);
	}
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
		char want[32];
		int n = snprintf(want, sizeof(want), "conn %u", i);

		host_read(fds[i], buf, (size_t)n);
		assert_memory_equal(buf, want, n);
	}
	for (unsigned got = 0; got < VSOCK_MAX_CONNS;) {
		char want[32];

		post_rx(x, 32);
		virtio_vsock_poll(x->v);
		while (rx_pkt(x, &r, buf, sizeof(buf))) {
			assert_int_equal(r.op, VSOCK_OP_RW);
			snprintf(want, sizeof(want), "conn %u", r.dst_port - 10000);
			assert_int_equal(r.len, strlen(want));
			assert_memory_equal(buf, want, r.len);
			got++;
		}
	}
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++)
		close(fds[i]);
	host_unlisten(x, lfd, 7000);
}

static void test_transport_reset(void **state)
{
	struct fixture *x = *state;
	int lfd = host_listen(x, 7001), fds[3], hfd;
	struct fake_buf eb = { EV_BUF_GPA, 8, true };
	uint32_t id, len, hport;

	post_rx(x, 8);
	for (int i = 0; i < 3; i++)
		fds[i] = guest_connects(x, lfd, GPORT + (uint32_t)i, 7001);
	hfd = host_connects(x, 77, &hport);
	assert_int_equal(virtio_vsock_nr_conns(x->v), 4);
	/* No event buffer yet: the event waits for one. */
	virtio_vsock_transport_reset(x->v);
	assert_int_equal(virtio_vsock_nr_conns(x->v), 0);
	for (int i = 0; i < 3; i++)
		host_expect_eof(fds[i]);
	host_expect_eof(hfd);
	assert_false(fake_vq_get_used(&x->ev, &id, &len));
	memset(fake_mem_ptr(&x->mem, EV_BUF_GPA, 8), 0xff, 8);
	fake_vq_add_chain(&x->ev, &eb, 1);
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, VSOCK_QUEUE_EVENT);
	assert_true(fake_vq_get_used(&x->ev, &id, &len));
	assert_int_equal(len, VSOCK_EVENT_BYTES);
	assert_int_equal(virtio_get_le(fake_mem_ptr(&x->mem, EV_BUF_GPA, 4), 4),
			 VSOCK_EVENT_TRANSPORT_RESET);
	/* With a buffer already posted it goes out at once. */
	fake_vq_add_chain(&x->ev, &eb, 1);
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, VSOCK_QUEUE_EVENT);
	virtio_vsock_transport_reset(x->v);
	assert_true(fake_vq_get_used(&x->ev, &id, &len));
	/* Nothing else went to the guest; old ports are unknown now. */
	expect_nothing(x);
	tx(x, VSOCK_OP_RW, GPORT, 7001, 0, "x", 1);
	expect_op(x, VSOCK_OP_RST, 7001, GPORT, NULL);
	for (int i = 0; i < 3; i++)
		close(fds[i]);
	close(hfd);
	host_unlisten(x, lfd, 7001);
}

static void test_device_reset_drops_connections(void **state)
{
	struct fixture *x = *state;
	int lfd = host_listen(x, 7002), fd;

	post_rx(x, 4);
	fd = guest_connects(x, lfd, GPORT, 7002);
	fdrv_wr(x->t, VIRTIO_MMIO_STATUS, 0);
	assert_int_equal(virtio_vsock_nr_conns(x->v), 0);
	host_expect_eof(fd);
	close(fd);
	/* Before DRIVER_OK, host clients are closed at once. */
	fd = host_connect(x);
	virtio_vsock_poll(x->v);
	host_expect_eof(fd);
	close(fd);
	host_unlisten(x, lfd, 7002);
}

/* Malformed guest packets: dropped or answered with RST; the device keeps working. */
static void test_hostile_headers(void **state)
{
	struct fixture *x = *state;
	int lfd = host_listen(x, 7003), fd;
	struct vsock_hdr h;
	uint8_t big[VSOCK_MAX_PKT_LEN + 16];
	char buf[8];

	memset(big, 1, sizeof(big));
	post_rx(x, 32);
	fd = guest_connects(x, lfd, GPORT, 7003);

	/* A chain shorter than a header: dropped, no answer. */
	h = ghdr(VSOCK_OP_RW, GPORT, 7003);
	tx_raw(x, &h, NULL, 0, VSOCK_HDR_BYTES - 1);
	expect_nothing(x);
	/* Wrong source CID (spoofing another VM) or destination (not the host): dropped. */
	h.src_cid = CID + 1;
	tx_raw(x, &h, NULL, 0, VSOCK_HDR_BYTES);
	h.src_cid = (uint64_t)CID | (1ull << 32);
	tx_raw(x, &h, NULL, 0, VSOCK_HDR_BYTES);
	h = ghdr(VSOCK_OP_REQUEST, GPORT + 5, 7003);
	h.dst_cid = 1;
	tx_raw(x, &h, NULL, 0, VSOCK_HDR_BYTES);
	h.dst_cid = CID;
	tx_raw(x, &h, NULL, 0, VSOCK_HDR_BYTES);
	expect_nothing(x);
	assert_int_equal(virtio_vsock_nr_conns(x->v), 1);

	/* Packets for no connection: RST, except for an RST. */
	tx(x, VSOCK_OP_RW, 999, 7003, 0, "x", 1);
	expect_op(x, VSOCK_OP_RST, 7003, 999, NULL);
	tx(x, VSOCK_OP_SHUTDOWN, 999, 7003, VSOCK_SHUTDOWN_BOTH, NULL, 0);
	expect_op(x, VSOCK_OP_RST, 7003, 999, NULL);
	tx(x, VSOCK_OP_CREDIT_UPDATE, 999, 7003, 0, NULL, 0);
	expect_op(x, VSOCK_OP_RST, 7003, 999, NULL);
	tx(x, VSOCK_OP_RESPONSE, 999, 7003, 0, NULL, 0);
	expect_op(x, VSOCK_OP_RST, 7003, 999, NULL);
	tx(x, VSOCK_OP_RST, 999, 7003, 0, NULL, 0);
	expect_nothing(x);
	/* Unknown ops and types. */
	tx(x, 0, 999, 7003, 0, NULL, 0);
	expect_op(x, VSOCK_OP_RST, 7003, 999, NULL);
	tx(x, 0x7777, 999, 7003, 0, NULL, 0);
	expect_op(x, VSOCK_OP_RST, 7003, 999, NULL);
	h = ghdr(VSOCK_OP_REQUEST, 998, 7003);
	h.type = VSOCK_TYPE_SEQPACKET;
	tx_raw(x, &h, NULL, 0, VSOCK_HDR_BYTES);
	expect_op(x, VSOCK_OP_RST, 7003, 998, NULL);
	assert_int_equal(virtio_vsock_nr_conns(x->v), 1);

	/* The header claims more payload than the chain holds: the connection is reset. */
	h = ghdr(VSOCK_OP_RW, GPORT, 7003);
	h.len = 100;
	tx_raw(x, &h, big, 50, VSOCK_HDR_BYTES + 50);
	expect_op(x, VSOCK_OP_RST, 7003, GPORT, NULL);
	host_expect_eof(fd);
	close(fd);
	assert_int_equal(virtio_vsock_nr_conns(x->v), 0);

	/* Oversized packet (beyond 64 KiB), and a payload on a non-RW op. */
	fd = guest_connects(x, lfd, GPORT, 7003);
	h.len = sizeof(big);
	tx_raw(x, &h, big, sizeof(big), sizeof(big) + VSOCK_HDR_BYTES);
	expect_op(x, VSOCK_OP_RST, 7003, GPORT, NULL);
	close(fd);
	fd = guest_connects(x, lfd, GPORT, 7003);
	h = ghdr(VSOCK_OP_CREDIT_UPDATE, GPORT, 7003);
	h.len = 4;
	tx_raw(x, &h, big, 4, VSOCK_HDR_BYTES + 4);
	expect_op(x, VSOCK_OP_RST, 7003, GPORT, NULL);
	close(fd);

	/* A chain longer than its header says: only `len` bytes are data. */
	fd = guest_connects(x, lfd, GPORT, 7003);
	h = ghdr(VSOCK_OP_RW, GPORT, 7003);
	h.len = 2;
	tx_raw(x, &h, "okNOT", 5, VSOCK_HDR_BYTES + 5);
	host_read(fd, buf, 2);
	assert_memory_equal(buf, "ok", 2);
	assert_false(host_readable(fd));
	/* A second REQUEST for a live connection resets it. */
	tx(x, VSOCK_OP_REQUEST, GPORT, 7003, 0, NULL, 0);
	expect_op(x, VSOCK_OP_RST, 7003, GPORT, NULL);
	close(fd);
	/* Unknown op on a live connection resets it. */
	fd = guest_connects(x, lfd, GPORT, 7003);
	tx(x, 42, GPORT, 7003, 0, NULL, 0);
	expect_op(x, VSOCK_OP_RST, 7003, GPORT, NULL);
	close(fd);
	assert_int_equal(virtio_vsock_nr_conns(x->v), 0);

	/* Through all of it the device never needed a reset. */
	assert_int_equal(status(x) & VIRTIO_STATUS_DEVICE_NEEDS_RESET, 0);
	host_unlisten(x, lfd, 7003);
}

/* A flood of packets for unknown connections with no receive buffers: bounded RST backlog. */
static void test_rst_flood_bounded(void **state)
{
	struct fixture *x = *state;
	struct vsock_hdr r;
	unsigned n = 0;

	for (unsigned i = 0; i < 1000; i++)
		tx(x, VSOCK_OP_RW, 30000 + i, 1, 0, "x", 1);
	post_rx(x, QSIZE);
	while (rx_pkt(x, &r, NULL, 0)) {
		assert_int_equal(r.op, VSOCK_OP_RST);
		n++;
	}
	assert_true(n > 0 && n <= 64);
	assert_int_equal(status(x) & VIRTIO_STATUS_DEVICE_NEEDS_RESET, 0);
}

/* Descriptor chains that lie: outside RAM, or a receive buffer too small for a header. */
static void test_lying_chains(void **state)
{
	struct fixture *x = *state;
	struct fake_buf b = { RAM_SIZE - 16, 4096, false };
	int fd;

	/* A transmit chain running past the end of guest RAM: the device needs a reset. */
	fake_vq_add_chain(&x->tx, &b, 1);
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, VSOCK_QUEUE_TX);
	assert_true(status(x) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	/* Reset and bring up again; the device works. */
	bring_up(x);
	/* A receive buffer smaller than a header. */
	b = (struct fake_buf){ RX_BUF_GPA, VSOCK_HDR_BYTES - 4, true };
	fake_vq_add_chain(&x->rx, &b, 1);
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, VSOCK_QUEUE_RX);
	tx(x, VSOCK_OP_REQUEST, GPORT, 1, 0, NULL, 0); /* owes an RST: uses the buffer */
	assert_true(status(x) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	bring_up(x);
	/* A read-only "receive" buffer: the chain is malformed for this queue. */
	b = (struct fake_buf){ RX_BUF_GPA, 4096, false };
	fake_vq_add_chain(&x->rx, &b, 1);
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, VSOCK_QUEUE_RX);
	tx(x, VSOCK_OP_REQUEST, GPORT, 1, 0, NULL, 0);
	assert_true(status(x) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	bring_up(x);
	/* A tiny event buffer. */
	b = (struct fake_buf){ EV_BUF_GPA, 2, true };
	fake_vq_add_chain(&x->ev, &b, 1);
	virtio_vsock_transport_reset(x->v);
	assert_true(status(x) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	bring_up(x);
	/* Still serving host clients after all that. */
	post_rx(x, 4);
	fd = host_connect(x);
	host_write(fd, "CONNECT 1\n", 10);
	virtio_vsock_poll(x->v);
	expect_op(x, VSOCK_OP_REQUEST, VSOCK_EPHEMERAL_MIN, 1, NULL);
	close(fd);
}

/* ---- snapshots ----
 *
 * The device's own record, round-tripped: the fixture's device is quiesced and saved, a fresh
 * device (its own listening socket, as a new process would have) restores the record and is
 * activated with the queues as the transport would bring them back (fdrv_vq_resume); the
 * driver then carries on through the restored device's ops.  The old device is left alone
 * from the save on. */

#define SNAP_ID "virtio-vsock0"

struct snap_buf {
	struct snap_writer w;
	struct snap_file f;
};

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
	assert_int_equal(virtio_vsock_ops.save(x->v, &s->w, SNAP_ID), 0);
	snap_parse(s);
}

struct restored {
	char path[96];
	struct irq_line irq;
	struct virtio_vsock *v;
	struct virtio_mmio *t;
	struct virtq vqs[VSOCK_NUM_QUEUES];
};

static struct restored *restored_create(struct fixture *x, uint32_t cid)
{
	struct restored *r = calloc(1, sizeof(*r));

	snprintf(r->path, sizeof(r->path), "%s/r.sock", x->dir);
	r->irq.fd = -1;
	assert_int_equal(virtio_vsock_create(cid, r->path, &r->v), 0);
	assert_int_equal(virtio_mmio_create(&x->mem.gm, &r->irq, &virtio_vsock_ops, r->v, &r->t),
			 0);
	return r;
}

/* DRIVER_OK was set when the snapshot was taken: the transport re-activates the device with
 * its queues where they were (after quiesce, every chain popped was also used). */
static void restored_activate(struct fixture *x, struct restored *r)
{
	uint64_t f = VIRTIO_BIT(VIRTIO_F_VERSION_1);

	fdrv_vq_resume(&r->vqs[VSOCK_QUEUE_RX], &x->rx, f, fake_vq_used_idx(&x->rx));
	fdrv_vq_resume(&r->vqs[VSOCK_QUEUE_TX], &x->tx, f, fake_vq_used_idx(&x->tx));
	fdrv_vq_resume(&r->vqs[VSOCK_QUEUE_EVENT], &x->ev, f, fake_vq_used_idx(&x->ev));
	assert_int_equal(virtio_vsock_ops.activate(r->v, r->t, f, r->vqs, VSOCK_NUM_QUEUES), 0);
}

static void restored_destroy(struct restored *r)
{
	struct stat st;

	virtio_mmio_destroy(r->t);
	assert_int_equal(stat(r->path, &st), -1);
	free(r);
}

/* A guest packet to the restored device (its transmit queue run by hand). */
static void restored_tx(struct fixture *x, struct restored *r, uint16_t op, uint32_t src_port,
			uint32_t dst_port, const void *payload, size_t n)
{
	struct vsock_hdr h = ghdr(op, src_port, dst_port);
	uint8_t *p = fake_mem_ptr(&x->mem, TX_BUF_GPA, VSOCK_HDR_BYTES + n);
	struct fake_buf b = { TX_BUF_GPA, (uint32_t)(VSOCK_HDR_BYTES + n), false };
	uint32_t id, len;
	uint16_t head;

	h.len = (uint32_t)n;
	vsock_hdr_encode(&h, p);
	memcpy(p + VSOCK_HDR_BYTES, payload, n);
	head = fake_vq_add_chain(&x->tx, &b, 1);
	virtio_vsock_ops.queue_notify(r->v, VSOCK_QUEUE_TX);
	assert_true(fake_vq_get_used(&x->tx, &id, &len));
	assert_int_equal(id, head);
}

/* The next event the device used, or -1. */
static int64_t next_event(struct fixture *x)
{
	uint32_t id, len;

	if (!fake_vq_get_used(&x->ev, &id, &len))
		return -1;
	assert_int_equal(len, VSOCK_EVENT_BYTES);
	return (int64_t)virtio_get_le(fake_mem_ptr(&x->mem, EV_BUF_GPA + 8u * id, 4), 4);
}

/* Make an event buffer available (at a slot of its own per descriptor), without notifying. */
static void add_event_buf(struct fixture *x)
{
	struct fake_buf b = { EV_BUF_GPA + 8u * (x->ev.next_desc % QSIZE), 8, true };

	memset(fake_mem_ptr(&x->mem, b.gpa, 8), 0xff, 8);
	fake_vq_add_chain(&x->ev, &b, 1);
}

/* Connections do not survive; the guest is told with TRANSPORT_RESET once the restored device
 * is activated; the receive buffer the old device held goes back and is used by the new one;
 * the restored device serves new connections. */
static void test_snapshot_round_trip(void **state)
{
	struct fixture *x = *state;
	int lfd = host_listen(x, 8000), fd, cfd;
	struct restored *r;
	struct snap_buf s;
	struct vsock_hdr h;
	uint32_t id, len;
	char buf[64];
	uint8_t *held;

	post_rx(x, 8);
	fd = guest_connects(x, lfd, GPORT, 8000); /* the RESPONSE used buffer 0 */
	host_write(fd, "data", 4);
	virtio_vsock_poll(x->v);
	assert_true(rx_pkt(x, &h, buf, sizeof(buf))); /* buffer 1 */
	assert_int_equal(h.op, VSOCK_OP_RW);
	assert_memory_equal(buf, "data", 4);
	/* Nothing more to read: the device kept buffer 2 in hand for the next data. */
	expect_nothing(x);
	add_event_buf(x); /* as Linux's driver posts them at probe */
	held = fake_mem_ptr(&x->mem, RX_BUF_GPA + 2 * RX_BUF_SLOT, VSOCK_HDR_BYTES);
	memset(held, 0xee, VSOCK_HDR_BYTES);
	snap_take(x, &s);

	r = restored_create(x, CID);
	assert_int_equal(virtio_vsock_ops.restore(r->v, &s.f, SNAP_ID), 0);
	assert_int_equal(virtio_mmio_dev_ops.read(r->t, VIRTIO_MMIO_CONFIG, 8), CID);
	assert_int_equal(next_event(x), -1); /* not before activation */
	restored_activate(x, r);
	assert_int_equal(next_event(x), VSOCK_EVENT_TRANSPORT_RESET);
	assert_int_equal(next_event(x), -1);
	assert_true(r->irq.count > 0);
	assert_int_equal(virtio_vsock_nr_conns(r->v), 0);
	/* The old connection is unknown: the guest's data on it is answered with RST, in the
	 * buffer the old device held (returned at quiesce, not lost). */
	restored_tx(x, r, VSOCK_OP_RW, GPORT, 8000, "x", 1);
	assert_true(fake_vq_get_used(&x->rx, &id, &len));
	assert_int_equal(id, 2);
	vsock_hdr_decode(fake_mem_ptr(&x->mem, RX_BUF_GPA + 2 * RX_BUF_SLOT, VSOCK_HDR_BYTES), &h);
	assert_int_equal(h.op, VSOCK_OP_RST);
	assert_int_equal(h.src_port, 8000);
	assert_int_equal(h.dst_port, GPORT);
	expect_nothing(x);
	/* A host client of the restored device reaches the guest. */
	{
		struct sockaddr_un a = { .sun_family = AF_UNIX };

		cfd = socket(AF_UNIX, SOCK_STREAM, 0);
		snprintf(a.sun_path, sizeof(a.sun_path), "%s", r->path);
		assert_int_equal(connect(cfd, (struct sockaddr *)&a, sizeof(a)), 0);
	}
	host_write(cfd, "CONNECT 99\n", 11);
	virtio_vsock_poll(r->v);
	expect_op(x, VSOCK_OP_REQUEST, VSOCK_EPHEMERAL_MIN, 99, NULL);
	assert_int_equal(virtio_vsock_nr_conns(r->v), 1);
	/* A later transport reset (in-place reset) goes out the same way. */
	add_event_buf(x);
	virtio_vsock_transport_reset(r->v);
	assert_int_equal(next_event(x), VSOCK_EVENT_TRANSPORT_RESET);
	assert_int_equal(virtio_vsock_nr_conns(r->v), 0);
	host_expect_eof(cfd);
	close(cfd);
	snap_writer_free(&s.w);
	restored_destroy(r);
	close(fd);
	host_unlisten(x, lfd, 8000);
}

/* Quiesce gives the receive buffer kept in hand back to the ring: after a pause the next
 * packet lands in that same buffer, none is skipped (the transport's saved queue state counts
 * it as available). */
static void test_quiesce_returns_rx_buffer(void **state)
{
	struct fixture *x = *state;
	int lfd = host_listen(x, 8002), fd;
	struct vsock_hdr h;
	uint32_t id, len;
	char buf[64];

	post_rx(x, 8);
	fd = guest_connects(x, lfd, GPORT, 8002); /* buffer 0 */
	host_write(fd, "one", 3);
	virtio_vsock_poll(x->v);
	assert_true(rx_pkt(x, &h, buf, sizeof(buf))); /* buffer 1; buffer 2 kept in hand */
	virtio_mmio_quiesce(x->t);
	host_write(fd, "two", 3);
	virtio_vsock_poll(x->v);
	assert_true(fake_vq_get_used(&x->rx, &id, &len));
	assert_int_equal(id, 2);
	assert_int_equal(len, VSOCK_HDR_BYTES + 3);
	assert_memory_equal(
		fake_mem_ptr(&x->mem, RX_BUF_GPA + 2 * RX_BUF_SLOT + VSOCK_HDR_BYTES, 3), "two", 3);
	close(fd);
	host_unlisten(x, lfd, 8002);
}

/* No event buffer at activation: the reset event waits for the driver to post one. */
static void test_snapshot_event_waits_for_buffer(void **state)
{
	struct fixture *x = *state;
	struct restored *r;
	struct snap_buf s;

	snap_take(x, &s);
	r = restored_create(x, CID);
	assert_int_equal(virtio_vsock_ops.restore(r->v, &s.f, SNAP_ID), 0);
	restored_activate(x, r);
	assert_int_equal(next_event(x), -1);
	add_event_buf(x);
	virtio_vsock_ops.queue_notify(r->v, VSOCK_QUEUE_EVENT);
	assert_int_equal(next_event(x), VSOCK_EVENT_TRANSPORT_RESET);
	add_event_buf(x);
	virtio_vsock_ops.queue_notify(r->v, VSOCK_QUEUE_EVENT);
	assert_int_equal(next_event(x), -1); /* once */
	snap_writer_free(&s.w);
	restored_destroy(r);
}

static void build_rec(struct snap_buf *s, uint16_t version, const char *id, uint64_t cid,
		      uint8_t pending, int extra)
{
	snap_writer_init(&s->w);
	snap_rec_begin(&s->w, SNAP_REC_VIRTIO_VSOCK, version, id);
	if (extra >= 0) {
		snap_put_u64(&s->w, cid);
		snap_put_u8(&s->w, pending);
	} else {
		snap_put_u32(&s->w, (uint32_t)cid); /* truncated */
	}
	if (extra > 0)
		snap_put_u8(&s->w, 0);
	snap_parse(s);
}

/* Malformed records and another guest CID are refused with -EINVAL, leaving the device as
 * created (no reset event owed); a CID change passes when the configuration says so. */
static void test_snapshot_refusals(void **state)
{
	struct fixture *x = *state;
	const struct {
		uint16_t version;
		const char *id;
		uint64_t cid;
		uint8_t pending;
		int extra;
	} bad[] = {
		{ 2, SNAP_ID, CID, 0, 0 },
		{ 0, SNAP_ID, CID, 0, 0 },
		{ 1, "virtio-vsock1", CID, 0, 0 },
		{ 1, SNAP_ID, CID, 0, -1 },
		{ 1, SNAP_ID, CID, 0, 1 },
		{ 1, SNAP_ID, CID, 2, 0 },
		{ 1, SNAP_ID, VSOCK_CID_HOST, 0, 0 },
		{ 1, SNAP_ID, 0, 0, 0 },
		{ 1, SNAP_ID, VSOCK_CID_ANY, 0, 0 },
		{ 1, SNAP_ID, (1ull << 32) | CID, 0, 0 },
		{ 1, SNAP_ID, CID + 1, 0, 0 }, /* another VM's CID */
	};
	struct restored *r = restored_create(x, CID);
	struct snap_buf s;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		build_rec(&s, bad[i].version, bad[i].id, bad[i].cid, bad[i].pending, bad[i].extra);
		if (virtio_vsock_ops.restore(r->v, &s.f, SNAP_ID) != -EINVAL)
			fail_msg("case %zu accepted", i);
		snap_writer_free(&s.w);
		assert_int_equal(virtio_mmio_dev_ops.read(r->t, VIRTIO_MMIO_CONFIG, 8), CID);
	}
	add_event_buf(x);
	restored_activate(x, r);
	assert_int_equal(next_event(x), -1);
	restored_destroy(r);

	/* A clone configured with its own CID keeps it; the guest re-reads it on the event. */
	r = restored_create(x, CID + 7);
	build_rec(&s, 1, SNAP_ID, CID, 0, 0);
	assert_int_equal(virtio_vsock_ops.restore(r->v, &s.f, SNAP_ID), -EINVAL);
	virtio_vsock_keep_cid_on_restore(r->v, true);
	assert_int_equal(virtio_vsock_ops.restore(r->v, &s.f, SNAP_ID), 0);
	snap_writer_free(&s.w);
	assert_int_equal(virtio_mmio_dev_ops.read(r->t, VIRTIO_MMIO_CONFIG, 8), CID + 7);
	restored_activate(x, r);
	assert_int_equal(next_event(x), VSOCK_EVENT_TRANSPORT_RESET);
	restored_destroy(r);
}

/* ---- connection bookkeeping ---- */

static void test_ring(void **state)
{
	struct vsock_ring r = { 0 };
	struct iovec iov[2];
	uint8_t buf[10], out[10];

	for (int i = 0; i < 10; i++)
		buf[i] = (uint8_t)i;
	assert_int_equal(vsock_ring_peek(&r, iov), 0);
	assert_int_equal(vsock_ring_put(&r, 8, buf, 6), 0);
	assert_int_equal(vsock_ring_put(&r, 8, buf, 3), -ENOBUFS);
	vsock_ring_consume(&r, 4);
	assert_int_equal(vsock_ring_put(&r, 8, buf + 6, 4), 0); /* wraps */
	assert_int_equal(r.len, 6);
	assert_int_equal(vsock_ring_peek(&r, iov), 2);
	memcpy(out, iov[0].iov_base, iov[0].iov_len);
	memcpy(out + iov[0].iov_len, iov[1].iov_base, iov[1].iov_len);
	assert_int_equal(iov[0].iov_len + iov[1].iov_len, 6);
	assert_memory_equal(out, buf + 4, 6);
	vsock_ring_consume(&r, 6);
	assert_int_equal(vsock_ring_peek(&r, iov), 0);
	vsock_ring_free(&r);
}

static void test_credit_math(void **state)
{
	struct vsock_conn c = { 0 };

	c.peer_buf_alloc = 1000;
	assert_int_equal(vsock_conn_peer_credit(&c), 1000);
	c.tx_cnt = 600;
	c.peer_fwd_cnt = 100;
	assert_int_equal(vsock_conn_peer_credit(&c), 500);
	/* 32-bit counters wrap. */
	c.tx_cnt = 100;
	c.peer_fwd_cnt = UINT32_MAX - 99;
	assert_int_equal(vsock_conn_peer_credit(&c), 800);
	/* A guest that forwarded more than it got, or shrank its buffer: no credit. */
	c.tx_cnt = 100;
	c.peer_fwd_cnt = 200;
	assert_int_equal(vsock_conn_peer_credit(&c), 0);
	c.peer_fwd_cnt = 0;
	c.peer_buf_alloc = 50;
	assert_int_equal(vsock_conn_peer_credit(&c), 0);
	/* Credit updates: only when the guest's view of our space is below half, and moved. */
	c.rx_cnt = VSOCK_CONN_BUF_ALLOC;
	c.fwd_cnt = c.fwd_cnt_sent = 0;
	assert_false(vsock_conn_want_credit_update(&c));
	c.fwd_cnt = VSOCK_CONN_BUF_ALLOC;
	assert_true(vsock_conn_want_credit_update(&c));
	c.fwd_cnt_sent = VSOCK_CONN_BUF_ALLOC / 2 + 1;
	assert_false(vsock_conn_want_credit_update(&c));
}

static void test_table(void **state)
{
	static struct vsock_table t;
	struct vsock_conn *c[VSOCK_MAX_CONNS];
	uint32_t gen;

	vsock_table_init(&t);
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
		c[i] = vsock_conn_alloc(&t);
		assert_non_null(c[i]);
		c[i]->state = VSOCK_CONN_ESTABLISHED;
		c[i]->local_port = vsock_table_ephemeral(&t, 1);
		c[i]->peer_port = 1;
	}
	assert_null(vsock_conn_alloc(&t));
	assert_int_equal(c[0]->local_port, VSOCK_EPHEMERAL_MIN);
	assert_ptr_equal(vsock_conn_find(&t, VSOCK_EPHEMERAL_MIN + 5, 1), c[5]);
	assert_null(vsock_conn_find(&t, VSOCK_EPHEMERAL_MIN + 5, 2));
	gen = c[5]->gen;
	assert_ptr_equal(vsock_conn_get(&t, 5, gen), c[5]);
	vsock_conn_free(&t, c[5]);
	assert_null(vsock_conn_get(&t, 5, gen));
	assert_null(vsock_conn_get(&t, VSOCK_MAX_CONNS, 0));
	c[5] = vsock_conn_alloc(&t);
	assert_non_null(c[5]);
	assert_null(vsock_conn_get(&t, 5, gen)); /* a stale event does not reach the new one */
	/* Ports in use are skipped when the counter wraps. */
	t.next_ephemeral = UINT32_MAX - 1;
	assert_int_equal(vsock_table_ephemeral(&t, 1), UINT32_MAX - 1);
	assert_int_equal(vsock_table_ephemeral(&t, 1), VSOCK_EPHEMERAL_MIN + 5); /* freed above */
	vsock_table_destroy(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_config_and_features, setup, teardown),
		cmocka_unit_test_setup_teardown(test_create_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_guest_to_host, setup, teardown),
		cmocka_unit_test_setup_teardown(test_metrics, setup, teardown),
		cmocka_unit_test_setup_teardown(test_guest_connect_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_host_to_guest, setup, teardown),
		cmocka_unit_test_setup_teardown(test_host_connect_early_data, setup, teardown),
		cmocka_unit_test_setup_teardown(test_host_connect_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_host_connect_bad_lines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_host_connect_timeouts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_credit_to_guest, setup, teardown),
		cmocka_unit_test_setup_teardown(test_credit_from_guest, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rx_backpressure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shutdown_guest_side, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shutdown_host_side, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_connections, setup, teardown),
		cmocka_unit_test_setup_teardown(test_transport_reset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_device_reset_drops_connections, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_hostile_headers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rst_flood_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lying_chains, setup, teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_quiesce_returns_rx_buffer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_event_waits_for_buffer, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_refusals, setup, teardown),
		cmocka_unit_test(test_ring),
		cmocka_unit_test(test_credit_math),
		cmocka_unit_test(test_table),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
