#include "net/tap.h"

#include "core/evloop.h"
#include "devices/virtio/net.h"
#include "net/backend.h"
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
};

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
	ret = evloop_add(ev, t->wake_fd, EPOLLIN, tap_wake, t);
	if (ret)
		return ret;
	t->wake_added = true;
	sync_watch(t);
	return t->watching ? 0 : -EIO;
}

static int tap_send(struct net_backend *be, const struct iovec *iov, int n)
{
	struct net_tap *t = (struct net_tap *)be;

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
