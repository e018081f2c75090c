/* virtio-vsock (virtio 1.2 §5.10) driven by a hostile driver (fuzz/harness.h): guest packets on
 * the transmit queue (headers, ops, credit, payload lengths), receive and event buffers, with
 * real Unix sockets on the host side.  A listener at PATH_1024 takes guest connections to port
 * 1024 (other ports are refused), and host clients connect to PATH and write fuzzer bytes, so
 * the "CONNECT <port>\n" line parser is fuzzed too.  Everything is run by hand
 * (virtio_vsock_poll), without an event loop; the device and sockets are new for each input.
 * Input: [cfg (unused)] then harness operations.  The device operation is u8 what, then
 *   0: u8 len, bytes: a host client connects to PATH and sends the bytes;
 *   1: u8 client, u8 action, ...: that client sends (u8 len, bytes), shuts down its write
 *      side, reads what is waiting, or closes;
 *   2: accept a pending guest connection at PATH_1024;
 *   3: u8 peer, u8 action, ...: as 1, for an accepted guest connection;
 *   4: poll the device's sockets;  5: u16 t: run the timeouts t * 256 ms from now;
 *   6: transport reset (§5.10.6.6). */
#include "devices/virtio/virtq.h"
#include "devices/virtio/vsock/conn.h"
#include "devices/virtio/vsock/vsock.h"
#include "harness.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define CID	  3u
#define PEER_PORT 1024u
#define MAX_SOCKS 8u

struct socks {
	int fd[MAX_SOCKS];
	unsigned nr;
};

static char path[128], peer_path[160];
static int peer_listen = -1;
static struct socks clients, peers;

static int unix_addr(const char *p, struct sockaddr_un *a)
{
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	if (strlen(p) >= sizeof(a->sun_path))
		return -ENAMETOOLONG;
	strcpy(a->sun_path, p);
	return 0;
}

static int vsock_create(struct vh *h, uint8_t cfg, void **dev)
{
	struct sockaddr_un a;
	int ret;

	snprintf(path, sizeof(path), "%s/v", fuzz_tmpdir());
	snprintf(peer_path, sizeof(peer_path), "%s_%u", path, PEER_PORT);
	ret = virtio_vsock_create(CID, path, (struct virtio_vsock **)dev);
	if (ret)
		return ret;
	ret = unix_addr(peer_path, &a);
	if (ret)
		return ret;
	unlink(peer_path);
	peer_listen = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (peer_listen < 0 || bind(peer_listen, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    listen(peer_listen, MAX_SOCKS) < 0)
		fuzz_fail("peer listener %s: %s", peer_path, strerror(errno));
	clients.nr = peers.nr = 0;
	return 0;
}

static void send_bytes(int fd, struct fuzz_in *in)
{
	const uint8_t *p;
	size_t n = fuzz_bytes(in, fuzz_u8(in), &p);

	if (n && send(fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0 && errno != EAGAIN &&
	    errno != EPIPE && errno != ECONNRESET && errno != ENOTCONN)
		fuzz_fail("send: %s", strerror(errno));
}

static void drain(int fd)
{
	static uint8_t buf[64 * 1024];

	for (int i = 0; i < 8; i++)
		if (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) <= 0)
			break;
}

static void sock_io(struct socks *s, struct fuzz_in *in)
{
	unsigned i = fuzz_u8(in);
	uint8_t action = fuzz_u8(in);

	if (!s->nr)
		return;
	i %= s->nr;
	switch (action % 4) {
	case 0:
		send_bytes(s->fd[i], in);
		break;
	case 1:
		shutdown(s->fd[i], SHUT_WR);
		break;
	case 2:
		drain(s->fd[i]);
		break;
	default:
		close(s->fd[i]);
		s->fd[i] = s->fd[--s->nr];
		break;
	}
}

static void close_all(struct socks *s)
{
	while (s->nr)
		close(s->fd[--s->nr]);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void vsock_op(struct vh *h, void *dev, struct fuzz_in *in)
{
	struct virtio_vsock *v = dev;

	switch (fuzz_u8(in) % 7) {
	case 0: {
		struct sockaddr_un a;
		int fd;

		if (clients.nr == MAX_SOCKS || unix_addr(path, &a))
			break;
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0)
			fuzz_fail("socket: %s", strerror(errno));
		if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
			close(fd); /* backlog full */
			break;
		}
		clients.fd[clients.nr++] = fd;
		send_bytes(fd, in);
		virtio_vsock_poll(v);
		break;
	}
	case 1:
		sock_io(&clients, in);
		virtio_vsock_poll(v);
		break;
	case 2: {
		int fd;

		if (peers.nr == MAX_SOCKS)
			break;
		fd = accept4(peer_listen, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0)
			peers.fd[peers.nr++] = fd;
		virtio_vsock_poll(v);
		break;
	}
	case 3:
		sock_io(&peers, in);
		virtio_vsock_poll(v);
		break;
	case 4:
		virtio_vsock_poll(v);
		break;
	case 5:
		virtio_vsock_tick(v, now_ms() + (uint64_t)fuzz_u16(in) * 256);
		break;
	default:
		virtio_vsock_transport_reset(v);
		break;
	}
	FUZZ_CHECK(virtio_vsock_nr_conns(v) <= 128);
}

static void vsock_cleanup(struct vh *h)
{
	close_all(&clients);
	close_all(&peers);
	close(peer_listen);
	peer_listen = -1;
	unlink(peer_path);
}

static const struct vh_device vsock_dev = {
	.ops = &virtio_vsock_ops,
	.create = vsock_create,
	.op = vsock_op,
	.cleanup = vsock_cleanup,
};

/* A guest packet header (§5.10.6) at `gpa`. */
static void seed_hdr(struct fuzz_seed *s, uint16_t gpa, uint32_t src_port, uint32_t dst_port,
		     uint16_t op, uint32_t len, uint32_t flags)
{
	struct vsock_hdr h = {
		.src_cid = CID,
		.dst_cid = VSOCK_CID_HOST,
		.src_port = src_port,
		.dst_port = dst_port,
		.len = len,
		.type = VSOCK_TYPE_STREAM,
		.op = op,
		.flags = flags,
		.buf_alloc = 64 * 1024,
	};
	uint8_t raw[VSOCK_HDR_BYTES];

	vsock_hdr_encode(&h, raw);
	vh_seed_mem(s, gpa, raw, sizeof(raw));
}

/* Send the header at `gpa` (and `len` payload bytes at gpa + 0x80) on the transmit queue. */
static void seed_tx(struct fuzz_seed *s, uint16_t gpa, uint16_t len)
{
	const struct fake_buf b[2] = { { gpa, VSOCK_HDR_BYTES, false },
				       { gpa + 0x80u, len, false } };

	vh_seed_chain(s, VSOCK_QUEUE_TX, b, len ? 2 : 1);
	vh_seed_notify(s, VSOCK_QUEUE_TX);
}

static void seed_op(struct fuzz_seed *s, uint8_t what)
{
	vh_seed_device(s);
	seed_u8(s, what);
}

static void seed_start(struct fuzz_seed *s)
{
	seed_u8(s, 0);
	vh_seed_bring_up(s, 0, 4);
	for (unsigned i = 0; i < 8; i++) {
		struct fake_buf b = { 0x8000 + 0x800 * i, 0x800, true };

		vh_seed_chain(s, VSOCK_QUEUE_RX, &b, 1);
	}
	vh_seed_notify(s, VSOCK_QUEUE_RX);
}

static void write_seeds(void)
{
	static struct fuzz_seed s;
	static const char connect_line[] = "CONNECT 5000\n";

	/* The guest connects to port 1024, sends, gets data, shuts down, resets. */
	seed_start(&s);
	seed_hdr(&s, 0x1000, 5000, PEER_PORT, VSOCK_OP_REQUEST, 0, 0);
	seed_tx(&s, 0x1000, 0);
	seed_op(&s, 2);
	seed_hdr(&s, 0x1000, 5000, PEER_PORT, VSOCK_OP_RW, 5, 0);
	vh_seed_mem(&s, 0x1080, "hello", 5);
	seed_tx(&s, 0x1000, 5);
	seed_op(&s, 3);
	seed_u8(&s, 0);
	seed_u8(&s, 0);
	seed_u8(&s, 3);
	seed_bytes(&s, "hi\n", 3);
	seed_hdr(&s, 0x1000, 5000, PEER_PORT, VSOCK_OP_CREDIT_REQUEST, 0, 0);
	seed_tx(&s, 0x1000, 0);
	seed_hdr(&s, 0x1000, 5000, PEER_PORT, VSOCK_OP_SHUTDOWN, 0, VSOCK_SHUTDOWN_BOTH);
	seed_tx(&s, 0x1000, 0);
	seed_op(&s, 3);
	seed_u8(&s, 0);
	seed_u8(&s, 3);
	seed_hdr(&s, 0x1000, 5000, PEER_PORT, VSOCK_OP_RST, 0, 0);
	seed_tx(&s, 0x1000, 0);
	fuzz_seed_save(&s, "guest-connect");

	/* A host client asks for guest port 5000; the guest answers from it and they talk. */
	seed_start(&s);
	seed_op(&s, 0);
	seed_u8(&s, sizeof(connect_line) - 1);
	seed_bytes(&s, connect_line, sizeof(connect_line) - 1);
	seed_hdr(&s, 0x1000, 5000, VSOCK_EPHEMERAL_MIN, VSOCK_OP_RESPONSE, 0, 0);
	seed_tx(&s, 0x1000, 0);
	seed_hdr(&s, 0x1000, 5000, VSOCK_EPHEMERAL_MIN, VSOCK_OP_RW, 4, 0);
	vh_seed_mem(&s, 0x1080, "data", 4);
	seed_tx(&s, 0x1000, 4);
	seed_op(&s, 1);
	seed_u8(&s, 0);
	seed_u8(&s, 2);
	seed_op(&s, 1);
	seed_u8(&s, 0);
	seed_u8(&s, 0);
	seed_u8(&s, 4);
	seed_bytes(&s, "more", 4);
	seed_op(&s, 1);
	seed_u8(&s, 0);
	seed_u8(&s, 3);
	seed_op(&s, 5);
	seed_u16(&s, 100);
	fuzz_seed_save(&s, "host-connect");

	/* The guest sends more than the host socket takes (the rest waits in the connection's
	 * ring), then more than its credit allows; the host reads a little in between. */
	seed_start(&s);
	seed_hdr(&s, 0x1000, 5000, PEER_PORT, VSOCK_OP_REQUEST, 0, 0);
	seed_tx(&s, 0x1000, 0);
	seed_op(&s, 2);
	seed_hdr(&s, 0x1000, 5000, PEER_PORT, VSOCK_OP_RW, 60000, 0);
	for (unsigned i = 0; i < 12; i++) {
		const struct fake_buf b[2] = { { 0x1000, VSOCK_HDR_BYTES, false },
					       { 0x1100, 60000, false } };

		vh_seed_chain(&s, VSOCK_QUEUE_TX, b, 2);
		vh_seed_notify(&s, VSOCK_QUEUE_TX);
		if (i == 1) {
			seed_op(&s, 3);
			seed_u8(&s, 0);
			seed_u8(&s, 2);
		}
	}
	fuzz_seed_save(&s, "guest-flood");

	/* A connection refused (nobody at PATH_7), and a transport reset with an event buffer. */
	seed_start(&s);
	seed_hdr(&s, 0x1000, 5001, 7, VSOCK_OP_REQUEST, 0, 0);
	seed_tx(&s, 0x1000, 0);
	{
		const struct fake_buf ev = { 0x3000, VSOCK_EVENT_BYTES, true };

		vh_seed_chain(&s, VSOCK_QUEUE_EVENT, &ev, 1);
	}
	seed_op(&s, 6);
	vh_seed_notify(&s, VSOCK_QUEUE_EVENT);
	fuzz_seed_save(&s, "refused-reset");
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	write_seeds();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return vh_run(&vsock_dev, data, size);
}
