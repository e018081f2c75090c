#include "net/tap.h"

#include "api/mmds.h"
#include "core/evloop.h"
#include "devices/virtio/net.h"
#include "net/backend.h"
#include "net/mmds_net.h"
#include "net/slirp.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

/* The one line a user without the privilege gets. */
#define NO_PRIV_FMT                                                                          \
	"tap %s: permission denied: creating or attaching a TAP device needs CAP_NET_ADMIN " \
	"(run as root, or use --net user)"

/* Frames read and dropped per wake-up while no device pulls them. */
#define TAP_RX_BUDGET 64

struct net_tap {
	struct net_backend be;
	int fd;
	int wake_fd; /* set_rx_enabled from any thread → the loop (re)arms fd */
	struct evloop *ev;
	bool watching;	 /* fd is in the event loop (loop thread only) */
	bool want_rx;	 /* atomic */
	bool wake_added; /* wake_fd is in the event loop */
	char name[IFNAMSIZ];
	uint8_t buf[NET_VNET_HDR_BYTES + NET_MAX_FRAME]; /* frames nobody takes */
	/* MMDS (net_tap_add_mmds): a private slirp back end in restricted mode that sees only
	 * the guest's frames for MMDS, the address the guest sends to (host order), the
	 * guest's address for each TCP port it uses towards MMDS (0: none yet), and a copy of
	 * each such frame (never rewritten in guest memory). */
	struct net_backend *mmds;
	uint32_t mmds_ip;
	uint32_t *mmds_guest_ip; /* [65536] */
	uint8_t *mmds_buf;	 /* [2 * NET_MAX_FRAME]: guest-sent, guest-bound */
};

/* The address the guest's MMDS connections have inside the private slirp's network. */
#define MMDS_INNER_ADDR 0x0a00020fu /* NET_SLIRP_GUEST_ADDR, 10.0.2.15 */

static void tap_readable(void *opaque, uint32_t events);

/* Loop thread: watch the TAP fd exactly when the device wants frames. */
static void sync_watch(struct net_tap *t)
{
	bool want = __atomic_load_n(&t->want_rx, __ATOMIC_ACQUIRE);

	if (want && !t->watching) {
		int ret = evloop_add(t->ev, t->fd, EPOLLIN, tap_readable, t);

		if (ret)
			log_warn("tap %s: cannot watch the device: %s", t->name, strerror(-ret));
		else
			t->watching = true;
	} else if (!want && t->watching) {
		evloop_del(t->ev, t->fd);
		t->watching = false;
	}
}

/* The fd is readable (level-triggered): the device pulls frames straight into the guest's
 * buffers through tap_recv, at most its budget; if more wait, epoll reports the fd again
 * after the loop's other sources. */
static void tap_readable(void *opaque, uint32_t events)
{
	struct net_tap *t = opaque;

	if (__atomic_load_n(&t->want_rx, __ATOMIC_ACQUIRE) && !net_backend_readable(&t->be)) {
		/* Nobody pulls: drain and drop, so the fd does not stay ready forever. */
		for (int i = 0; i < TAP_RX_BUDGET; i++)
			if (read(t->fd, t->buf, sizeof(t->buf)) < 0 && errno != EINTR)
				break;
	}
	sync_watch(t); /* the device may have paused us */
}

/* One frame into iov: the kernel writes the 12-byte virtio-net header, then the frame.  A
 * frame that does not fit is cut off, and the result is then the iovec list's size (seen on
 * Linux 6.18; were it the frame's full length, it would be larger still): the device treats
 * a result that fills its offer as a cut-off frame. */
static ssize_t tap_recv(struct net_backend *be, const struct iovec *iov, int n)
{
	struct net_tap *t = (struct net_tap *)be;

	for (;;) {
		ssize_t r = readv(t->fd, iov, n);

		if (r >= 0)
			return r;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			log_warn("tap %s: read: %s", t->name, strerror(errno));
		return -errno;
	}
}

/* Largest frame the kernel hands us without segmentation offload: the MTU plus Ethernet and
 * VLAN headers (the device sizes receive buffer sets by it). */
static void update_frame_max(struct net_tap *t)
{
	struct ifreq ifr;
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	t->be.rx_frame_max = 0; /* unknown: NET_MAX_FRAME */
	if (s < 0)
		return;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", t->name);
	if (ioctl(s, SIOCGIFMTU, &ifr) == 0 && ifr.ifr_mtu > 0)
		t->be.rx_frame_max = (size_t)ifr.ifr_mtu + 18;
	close(s);
}

static void tap_wake(void *opaque, uint32_t events)
{
	struct net_tap *t = opaque;
	uint64_t v;
	ssize_t r = read(t->wake_fd, &v, sizeof(v));

	(void)r;
	sync_watch(t);
}

static int tap_start(struct net_backend *be, struct evloop *ev)
{
	struct net_tap *t = (struct net_tap *)be;
	int ret;

	t->ev = ev;
	if (t->mmds && (ret = t->mmds->ops->start(t->mmds, ev)))
		return ret;
	ret = evloop_add(ev, t->wake_fd, EPOLLIN, tap_wake, t);
	if (ret)
		return ret;
	t->wake_added = true;
	sync_watch(t);
	return t->watching ? 0 : -EIO;
}

/* The private slirp's frames for the guest: MMDS's answers (its source already MMDS_IP, see
 * slirp.c) get the guest's own address as destination; the ARP reply for MMDS_IP passes;
 * slirp's ARP requests (for MMDS_INNER_ADDR, which mmds_to_slirp announces before every
 * segment) and anything else stay inside. */
static void mmds_receive(void *opaque, const uint8_t *hdr, const uint8_t *frame, size_t len)
{
	struct net_tap *t = opaque;
	uint8_t *copy = t->mmds_buf + NET_MAX_FRAME; /* the guest-bound half */

	if (len < NET_MIN_FRAME || len > NET_MAX_FRAME)
		return;
	if (frame[12] == 0x08 && frame[13] == 0x06) {
		if (!mmds_net_arp_reply(frame, len, MMDS_INNER_ADDR, (const uint8_t[6]){ 0 }, NULL))
			net_backend_deliver(&t->be, NULL, frame, len);
		return;
	}
	memcpy(copy, frame, len);
	if (mmds_net_tap_in(copy, len, t->mmds_ip, MMDS_INNER_ADDR, t->mmds_guest_ip))
		net_backend_deliver(&t->be, NULL, copy, len);
}

static void mmds_receive_flush(void *opaque)
{
	net_backend_flush(&((struct net_tap *)opaque)->be);
}

/* A guest frame for MMDS (iov[0] the virtio-net header, then the frame): to the private slirp
 * instead of the TAP device.  False: not for MMDS, send it on.  The frame is copied before
 * any check, so the guest cannot change it between check and use. */
static bool mmds_to_slirp(struct net_tap *t, const struct iovec *iov, int n)
{
	uint8_t peek[34] = { 0 }, *f = t->mmds_buf, garp[MMDS_NET_ARP_LEN];
	const uint8_t *hdr = iov[0].iov_base;
	size_t len = 0, got = 0;
	uint32_t guest_ip, dst;
	uint16_t port;
	struct iovec one;

	if (n < 2 || iov[0].iov_len != NET_VNET_HDR_BYTES)
		return false;
	for (int i = 1; i < n; i++) {
		size_t c =
			iov[i].iov_len < sizeof(peek) - got ? iov[i].iov_len : sizeof(peek) - got;

		memcpy(peek + got, iov[i].iov_base, c);
		got += c;
		len += iov[i].iov_len;
	}
	/* A cheap look first: ARP, or IPv4 to MMDS_IP. */
	dst = (uint32_t)peek[30] << 24 | (uint32_t)peek[31] << 16 | (uint32_t)peek[32] << 8 |
	      peek[33];
	if (got < sizeof(peek) || len > NET_MAX_FRAME || peek[12] != 0x08 ||
	    !(peek[13] == 0x06 || (peek[13] == 0x00 && dst == t->mmds_ip)))
		return false;
	got = 0;
	for (int i = 1; i < n; i++) {
		memcpy(f + got, iov[i].iov_base, iov[i].iov_len);
		got += iov[i].iov_len;
	}
	if (hdr[VIRTIO_NET_HDR_FLAGS] & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
		uint16_t start = (uint16_t)virtio_get_le(hdr + VIRTIO_NET_HDR_CSUM_START, 2);
		uint16_t off = (uint16_t)virtio_get_le(hdr + VIRTIO_NET_HDR_CSUM_OFFSET, 2);

		if ((size_t)start + off + 2 > len)
			return false;
		virtio_net_complete_csum(f, len, start, off);
	}
	switch (mmds_net_tap_out(f, len, t->mmds_ip, MMDS_INNER_ADDR, &guest_ip, &port)) {
	case MMDS_NET_TAP_PASS:
		return false;
	case MMDS_NET_TAP_ARP:
		break;
	case MMDS_NET_TAP_TCP:
		/* slirp has no segmentation: a GSO frame to MMDS is dropped (requests are
		 * small; TCP sends it again). */
		if (hdr[VIRTIO_NET_HDR_GSO_TYPE] != VIRTIO_NET_HDR_GSO_NONE)
			return true;
		t->mmds_guest_ip[port] = guest_ip;
		/* slirp answers MMDS_INNER_ADDR at the guest's MAC: tell it first. */
		mmds_net_garp(f + 6, MMDS_INNER_ADDR, garp);
		one = (struct iovec){ garp, sizeof(garp) };
		if (t->mmds->ops->send(t->mmds, &one, 1))
			return true;
		break;
	}
	one = (struct iovec){ f, len };
	if (t->mmds->ops->send(t->mmds, &one, 1))
		log_guest("tap %s: MMDS frame dropped", t->name);
	return true;
}

static int tap_send(struct net_backend *be, const struct iovec *iov, int n)
{
	struct net_tap *t = (struct net_tap *)be;

	if (t->mmds && mmds_to_slirp(t, iov, n))
		return 0;
	for (;;) {
		ssize_t r = writev(t->fd, iov, n);

		if (r >= 0)
			return 0;
		if (errno == EINTR)
			continue;
		/* EAGAIN/ENOBUFS: the host side is congested; the frame is dropped like on a
		 * wire.  EINVAL: the kernel refused the header. */
		log_guest("tap %s: write: %s", t->name, strerror(errno));
		return -errno;
	}
}

static void tap_set_rx_enabled(struct net_backend *be, bool on)
{
	struct net_tap *t = (struct net_tap *)be;
	uint64_t one = 1;
	ssize_t r;

	if (t->mmds)
		t->mmds->ops->set_rx_enabled(t->mmds, on);
	if (__atomic_exchange_n(&t->want_rx, on, __ATOMIC_ACQ_REL) == on)
		return;
	r = write(t->wake_fd, &one, sizeof(one));
	(void)r;
}

/* Which offloads the kernel may hand us for the guest (TUNSETOFFLOAD): exactly what the
 * guest accepted; the kernel segments and checksums the rest itself. */
static void tap_set_offload(struct net_backend *be, uint64_t f)
{
	struct net_tap *t = (struct net_tap *)be;
	unsigned long off = 0;

	if (f & VIRTIO_BIT(VIRTIO_NET_F_GUEST_CSUM)) {
		off |= TUN_F_CSUM;
		if (f & VIRTIO_BIT(VIRTIO_NET_F_GUEST_TSO4))
			off |= TUN_F_TSO4;
		if (f & VIRTIO_BIT(VIRTIO_NET_F_GUEST_TSO6))
			off |= TUN_F_TSO6;
	}
	if (ioctl(t->fd, TUNSETOFFLOAD, off) < 0)
		log_warn("tap %s: TUNSETOFFLOAD %#lx: %s", t->name, off, strerror(errno));
	/* The MTU stays as read when the TAP was opened: this runs on the vCPU thread that wrote
	 * DRIVER_OK, whose seccomp filter allows neither the socket nor SIOCGIFMTU a re-read
	 * needs.  Raise the TAP's MTU before starting ignition. */
}

static void tap_destroy(struct net_backend *be)
{
	struct net_tap *t = (struct net_tap *)be;

	if (t->ev) {
		if (t->watching)
			evloop_del(t->ev, t->fd);
		if (t->wake_added)
			evloop_del(t->ev, t->wake_fd);
	}
	if (t->mmds)
		t->mmds->ops->destroy(t->mmds);
	free(t->mmds_guest_ip);
	free(t->mmds_buf);
	close(t->fd);
	close(t->wake_fd);
	free(t);
}

static const struct net_backend_ops tap_ops = {
	.name = "tap",
	.start = tap_start,
	.recv = tap_recv,
	.send = tap_send,
	.set_rx_enabled = tap_set_rx_enabled,
	.set_offload = tap_set_offload,
	.destroy = tap_destroy,
};

/* IFF_UP, so frames flow without a separate `ip link set NAME up`. */
static void bring_up(const char *name)
{
	struct ifreq ifr;
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (s < 0)
		return;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (ioctl(s, SIOCGIFFLAGS, &ifr) == 0 && !(ifr.ifr_flags & IFF_UP)) {
		ifr.ifr_flags |= IFF_UP;
		if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
			log_warn("tap %s: cannot bring it up: %s", name, strerror(errno));
	}
	close(s);
}

int net_tap_create(const char *name, struct net_backend **out, char *err, size_t err_size)
{
	struct net_tap *t;
	struct ifreq ifr;
	unsigned int feat = 0;
	int hdr = NET_VNET_HDR_BYTES, ret;

	if (!*name || strlen(name) >= IFNAMSIZ || strchr(name, '/') || strchr(name, ' ')) {
		snprintf(err, err_size, "tap: '%s' is not a valid interface name", name);
		return -EINVAL;
	}
	t = calloc(1, sizeof(*t));
	if (!t) {
		snprintf(err, err_size, "tap: out of memory");
		return -ENOMEM;
	}
	snprintf(t->name, sizeof(t->name), "%s", name);
	t->fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (t->fd < 0) {
		ret = -errno;
		if (ret == -EACCES || ret == -EPERM)
			snprintf(err, err_size, NO_PRIV_FMT, name);
		else
			snprintf(err, err_size, "tap %s: cannot open /dev/net/tun: %s%s", name,
				 strerror(-ret),
				 ret == -ENOENT ? " (is the tun module loaded?)" : "");
		goto free_tap;
	}
	if (ioctl(t->fd, TUNGETFEATURES, &feat) == 0 && !(feat & IFF_VNET_HDR)) {
		ret = -EOPNOTSUPP;
		snprintf(err, err_size, "tap %s: this kernel's TUN driver has no IFF_VNET_HDR",
			 name);
		goto close_fd;
	}
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	if (ioctl(t->fd, TUNSETIFF, &ifr) < 0) {
		ret = -errno;
		if (ret == -EPERM || ret == -EACCES)
			snprintf(err, err_size, NO_PRIV_FMT, name);
		else if (ret == -EBUSY)
			snprintf(err, err_size, "tap %s: the device is in use by another process",
				 name);
		else
			snprintf(err, err_size, "tap %s: TUNSETIFF: %s", name, strerror(-ret));
		goto close_fd;
	}
	/* §5.1.6 header with num_buffers: 12 bytes both ways. */
	if (ioctl(t->fd, TUNSETVNETHDRSZ, &hdr) < 0) {
		ret = -errno;
		snprintf(err, err_size, "tap %s: TUNSETVNETHDRSZ: %s", name, strerror(-ret));
		goto close_fd;
	}
	/* Plain frames to us until a guest driver says what it accepts. */
	if (ioctl(t->fd, TUNSETOFFLOAD, 0ul) < 0) {
		ret = -errno;
		snprintf(err, err_size, "tap %s: TUNSETOFFLOAD: %s", name, strerror(-ret));
		goto close_fd;
	}
	t->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (t->wake_fd < 0) {
		ret = -errno;
		snprintf(err, err_size, "tap %s: eventfd: %s", name, strerror(-ret));
		goto close_fd;
	}
	bring_up(t->name);
	update_frame_max(t);
	t->be.ops = &tap_ops;
	t->be.vnet_hdr = true;
	/* The kernel segments and checksums what we hand it with a header. */
	t->be.host_features =
		VIRTIO_BIT(VIRTIO_NET_F_HOST_TSO4) | VIRTIO_BIT(VIRTIO_NET_F_HOST_TSO6) |
		VIRTIO_BIT(VIRTIO_NET_F_GUEST_TSO4) | VIRTIO_BIT(VIRTIO_NET_F_GUEST_TSO6);
	t->want_rx = true;
	*out = &t->be;
	return 0;

close_fd:
	close(t->fd);
free_tap:
	free(t);
	return ret;
}

int net_tap_add_mmds(struct net_backend *be, struct mmds *m, char *err, size_t err_size)
{
	struct net_tap *t = (struct net_tap *)be;
	struct mmds_config c;
	int ret;

	if (be->ops != &tap_ops || t->mmds || t->ev)
		return -EINVAL;
	t->mmds_guest_ip = calloc(65536, sizeof(*t->mmds_guest_ip));
	t->mmds_buf = malloc(2 * (size_t)NET_MAX_FRAME);
	if (!t->mmds_guest_ip || !t->mmds_buf) {
		snprintf(err, err_size, "MMDS on tap %s: out of memory", t->name);
		return -ENOMEM;
	}
	/* Restricted: the guest reaches nothing through it but the MMDS forward. */
	ret = net_slirp_create(NULL, 0, NET_SLIRP_RESTRICTED, &t->mmds, err, err_size);
	if (ret)
		return ret;
	ret = net_slirp_add_mmds(t->mmds, m, err, err_size);
	if (ret)
		return ret;
	mmds_get_config(m, &c);
	t->mmds_ip = c.ipv4;
	t->mmds->receive = mmds_receive;
	t->mmds->receive_flush = mmds_receive_flush;
	t->mmds->receive_opaque = t;
	return 0;
}
