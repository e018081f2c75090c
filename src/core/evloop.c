#include "core/evloop.h"

#include "util/log.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define STOP_TAG UINT64_MAX

int evloop_init(struct evloop *ev)
{
	struct epoll_event e = { .events = EPOLLIN, .data.u64 = STOP_TAG };

	memset(ev, 0, sizeof(*ev));
	ev->stop_fd = -1;
	for (int i = 0; i < EVLOOP_MAX_HANDLERS; i++)
		ev->handlers[i].fd = -1;
	ev->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (ev->epfd < 0)
		return -errno;
	ev->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (ev->stop_fd < 0 || epoll_ctl(ev->epfd, EPOLL_CTL_ADD, ev->stop_fd, &e) < 0) {
		int ret = -errno;

		if (ev->stop_fd >= 0)
			close(ev->stop_fd);
		close(ev->epfd);
		ev->epfd = ev->stop_fd = -1;
		return ret;
	}
	return 0;
}

int evloop_add(struct evloop *ev, int fd, uint32_t events, void (*cb)(void *opaque, uint32_t ev),
	       void *opaque)
{
	for (int i = 0; i < EVLOOP_MAX_HANDLERS; i++) {
		struct evloop_handler *h = &ev->handlers[i];
		struct epoll_event e = { .events = events, .data.u64 = (uint64_t)i };

		if (!__sync_bool_compare_and_swap(&h->fd, -1, -2))
			continue;
		h->cb = cb;
		h->opaque = opaque;
		__atomic_store_n(&h->fd, fd, __ATOMIC_RELEASE);
		if (epoll_ctl(ev->epfd, EPOLL_CTL_ADD, fd, &e) < 0) {
			int ret = -errno;

			__atomic_store_n(&h->fd, -1, __ATOMIC_RELEASE);
			return ret;
		}
		return 0;
	}
	return -ENOSPC;
}

void evloop_del(struct evloop *ev, int fd)
{
	for (int i = 0; i < EVLOOP_MAX_HANDLERS; i++) {
		if (ev->handlers[i].fd != fd)
			continue;
		epoll_ctl(ev->epfd, EPOLL_CTL_DEL, fd, NULL);
		__atomic_store_n(&ev->handlers[i].fd, -1, __ATOMIC_RELEASE);
		return;
	}
}

int evloop_run(struct evloop *ev)
{
	struct epoll_event events[32];

	log_set_thread("evloop");
	while (!__atomic_load_n(&ev->stopping, __ATOMIC_ACQUIRE)) {
		int n = epoll_wait(ev->epfd, events, 32, -1);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		for (int i = 0; i < n; i++) {
			struct evloop_handler *h;

			if (events[i].data.u64 == STOP_TAG)
				return 0;
			h = &ev->handlers[events[i].data.u64];
			/* A handler removed earlier in this batch must not run. */
			if (__atomic_load_n(&h->fd, __ATOMIC_ACQUIRE) < 0)
				continue;
			h->cb(h->opaque, events[i].events);
		}
	}
	return 0;
}

void evloop_stop(struct evloop *ev)
{
	uint64_t one = 1;
	ssize_t r;

	__atomic_store_n(&ev->stopping, true, __ATOMIC_RELEASE);
	r = write(ev->stop_fd, &one, sizeof(one));
	(void)r;
}

void evloop_destroy(struct evloop *ev)
{
	if (ev->epfd >= 0)
		close(ev->epfd);
	if (ev->stop_fd >= 0)
		close(ev->stop_fd);
	ev->epfd = ev->stop_fd = -1;
}
