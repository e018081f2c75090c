/* The Uffd memory backend (uffd.h): the handshake with an external page-fault handler and
 * the watch on it. */
#include "core/uffd.h"

#include "core/gmem.h"
#include "core/vm.h"
#include "util/log.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

struct uffd_backend {
	struct gmem *gm;
	struct vm *vm;	   /* set by uffd_backend_start */
	int sock;	   /* the connection to the handler, open while the VM lives */
	int pidfd;	   /* the handler's process (readable once it exits), or -1 */
	pid_t pid;	   /* its pid (0: unknown) */
	int wake_fd;	   /* ends the load-time watcher */
	pthread_t watcher; /* load-time watcher, while `watching` */
	bool watching;
	bool on_loop; /* watch_fd() is on the VM's event loop */
	bool dead;    /* the handler exited (atomic) */
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

int uffd_mappings_json(const struct gmem *gm, char *buf, size_t size)
{
	uint64_t page = gm->hugetlb ? GMEM_HUGE_SIZE : GMEM_PAGE_SIZE, off = 0;
	size_t at = 0;
	int len;

	len = snprintf(buf, size, "[");
	if (len < 0 || (size_t)len >= size)
		return -ENOSPC;
	at = (size_t)len;
	for (int i = 0; i < gm->nr_regions; i++) {
		const struct gmem_region *r = &gm->regions[i];

		/* page_size_kib holds bytes too: Firecracker's field, misnamed, kept for
		 * handlers written against it. */
		len = snprintf(buf + at, size - at,
			       "%s{\"base_host_virt_addr\":%" PRIu64 ",\"size\":%" PRIu64
			       ",\"offset\":%" PRIu64 ",\"page_size\":%" PRIu64
			       ",\"page_size_kib\":%" PRIu64 "}",
			       i ? "," : "", (uint64_t)(uintptr_t)r->hva, r->size, off, page, page);
		if (len < 0 || (size_t)len >= size - at)
			return -ENOSPC;
		at += (size_t)len;
		off += r->size;
	}
	len = snprintf(buf + at, size - at, "]");
	if (len < 0 || (size_t)len >= size - at)
		return -ENOSPC;
	return (int)(at + (size_t)len);
}

/* The fd that says the handler is gone: its pidfd, else the connection (EOF or error). */
static int watch_fd(const struct uffd_backend *b)
{
	return b->pidfd >= 0 ? b->pidfd : b->sock;
}

/* watch_fd() is ready: true if the handler is gone.  Bytes the handler sends on the
 * connection (the protocol has none) are read and dropped. */
static bool handler_gone(struct uffd_backend *b, bool hup)
{
	char buf[256];
	ssize_t got;

	if (b->pidfd >= 0)
		return true; /* a pidfd is readable only once the process exited */
	got = recv(b->sock, buf, sizeof(buf), MSG_DONTWAIT);
	return got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR) || (hup && got <= 0);
}

/* The handler is gone: wake whatever waits on a fault (the range becomes plain anonymous
 * memory) so that the VM can stop; its memory is no longer the guest's. */
static void mark_dead(struct uffd_backend *b)
{
	__atomic_store_n(&b->dead, true, __ATOMIC_RELEASE);
	gmem_uffd_release(b->gm);
}

static void *load_watcher(void *arg)
{
	struct uffd_backend *b = arg;

	log_set_thread("uffd");
	for (;;) {
		struct pollfd p[2] = { { .fd = watch_fd(b), .events = POLLIN },
				       { .fd = b->wake_fd, .events = POLLIN } };

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents)
			break;
		if (p[0].revents && handler_gone(b, p[0].revents & (POLLHUP | POLLERR))) {
			mark_dead(b);
			break;
		}
	}
	return NULL;
}

static void on_handler(void *opaque, uint32_t events)
{
	struct uffd_backend *b = opaque;

	if (!handler_gone(b, events & (EPOLLHUP | EPOLLERR)))
		return;
	evloop_del(&b->vm->ev, watch_fd(b));
	b->on_loop = false;
	log_error("the page-fault handler (pid %d) on '%s' exited: guest memory it did not "
		  "serve yet is lost; stopping the VM",
		  (int)b->pid, b->path);
	mark_dead(b);
	vm_request_stop(b->vm, VM_STOP_ERROR);
}

static int send_handshake(struct uffd_backend *b, const char *json, size_t len)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { .iov_base = (void *)json, .iov_len = len };
	struct msghdr msg = { .msg_iov = &iov,
			      .msg_iovlen = 1,
			      .msg_control = ctl.buf,
			      .msg_controllen = sizeof(ctl.buf) };
	struct cmsghdr *c;
	ssize_t sent;

	memset(&ctl, 0, sizeof(ctl));
	c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &b->gm->uffd, sizeof(int));
	do
		sent = sendmsg(b->sock, &msg, MSG_NOSIGNAL);
	while (sent < 0 && errno == EINTR);
	if (sent < 0)
		return -errno;
	/* One message, never split: the handler reads it whole with the descriptor.  A few
	 * hundred bytes always fit a fresh stream socket's buffer. */
	return (size_t)sent == len ? 0 : -EMSGSIZE;
}

int uffd_backend_connect(struct gmem *gm, const char *path, struct uffd_backend **out, char *err,
			 size_t n)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct ucred cred = { 0 };
	socklen_t cl = sizeof(cred);
	struct uffd_backend *b;
	char json[512];
	int len, ret;

	*out = NULL;
	if (!gm->uffd_open)
		return err_set(-EINVAL, err, n, "guest memory has no userfaultfd");
	if (strlen(path) >= sizeof(sa.sun_path))
		return err_set(-ENAMETOOLONG, err, n,
			       "mem_backend backend_path '%s' is too long for a Unix socket (at "
			       "most %zu bytes)",
			       path, sizeof(sa.sun_path) - 1);
	len = uffd_mappings_json(gm, json, sizeof(json));
	if (len < 0)
		return err_set(len, err, n, "the memory mappings do not fit the handshake");
	b = calloc(1, sizeof(*b));
	if (!b)
		return err_set(-ENOMEM, err, n, "out of memory");
	b->gm = gm;
	b->pidfd = b->wake_fd = -1;
	snprintf(b->path, sizeof(b->path), "%s", path);
	memcpy(sa.sun_path, path, strlen(path));
	b->sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (b->sock < 0 || connect(b->sock, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		ret = -errno;
		if (ret == -ENOENT)
			err_set(ret, err, n,
				"no page-fault handler socket at '%s' (mem_backend backend_path): "
				"start the handler first",
				path);
		else if (ret == -ECONNREFUSED)
			err_set(ret, err, n,
				"nothing listens on '%s' (mem_backend backend_path): is the "
				"page-fault handler running?",
				path);
		else
			err_set(ret, err, n, "cannot connect to the page-fault handler at '%s': %s",
				path, strerror(-ret));
		goto fail;
	}
	/* The handler's process, to notice its exit (pidfd_open: Linux 5.3). */
	if (!getsockopt(b->sock, SOL_SOCKET, SO_PEERCRED, &cred, &cl) && cred.pid > 0) {
		b->pid = cred.pid;
		b->pidfd = (int)syscall(SYS_pidfd_open, cred.pid, 0);
	}
	ret = send_handshake(b, json, (size_t)len);
	if (ret) {
		err_set(ret, err, n,
			"cannot send the memory mappings to the page-fault handler at "
			"'%s': %s",
			path, strerror(-ret));
		goto fail;
	}
	log_info("uffd: handler on '%s' (pid %d) got %s", path, (int)b->pid, json);
	b->wake_fd = eventfd(0, EFD_CLOEXEC);
	if (b->wake_fd < 0) {
		ret = err_set(-errno, err, n, "eventfd: %s", strerror(errno));
		goto fail;
	}
	ret = -pthread_create(&b->watcher, NULL, load_watcher, b);
	if (ret) {
		err_set(ret, err, n, "cannot start the page-fault handler's watcher: %s",
			strerror(-ret));
		goto fail;
	}
	b->watching = true;
	*out = b;
	return 0;
fail:
	uffd_backend_destroy(b);
	return ret;
}

static void stop_watcher(struct uffd_backend *b)
{
	uint64_t one = 1;

	if (!b->watching)
		return;
	if (write(b->wake_fd, &one, sizeof(one)) < 0)
		log_warn("uffd: cannot wake the watcher: %s", strerror(errno));
	pthread_join(b->watcher, NULL);
	b->watching = false;
}

int uffd_backend_start(struct uffd_backend *b, struct vm *vm, char *err, size_t n)
{
	int ret;

	stop_watcher(b);
	if (__atomic_load_n(&b->dead, __ATOMIC_ACQUIRE))
		return err_set(-EPIPE, err, n,
			       "the page-fault handler on '%s' exited during the load: guest "
			       "memory is incomplete",
			       b->path);
	b->vm = vm;
	ret = evloop_add(&vm->ev, watch_fd(b), EPOLLIN | EPOLLRDHUP, on_handler, b);
	if (ret)
		return err_set(ret, err, n, "cannot watch the page-fault handler: %s",
			       strerror(-ret));
	b->on_loop = true;
	return 0;
}

void uffd_backend_destroy(struct uffd_backend *b)
{
	if (!b)
		return;
	stop_watcher(b);
	if (b->on_loop)
		evloop_del(&b->vm->ev, watch_fd(b));
	if (b->pidfd >= 0)
		close(b->pidfd);
	if (b->wake_fd >= 0)
		close(b->wake_fd);
	if (b->sock >= 0)
		close(b->sock);
	free(b);
}
