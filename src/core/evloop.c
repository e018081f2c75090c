#include "core/evloop.h"

#include "util/log.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define STOP_TAG UINT64_MAX
#define CALL_TAG (UINT64_MAX - 1)

int evloop_init(struct evloop *ev)
{
	struct epoll_event e = { .events = EPOLLIN, .data.u64 = STOP_TAG };

	struct epoll_event c = { .events = EPOLLIN, .data.u64 = CALL_TAG };

	memset(ev, 0, sizeof(*ev));
	ev->stop_fd = ev->call_fd = -1;
	pthread_mutex_init(&ev->call_lock, NULL);
	pthread_mutex_init(&ev->call_mu, NULL);
	pthread_cond_init(&ev->call_cond, NULL);
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
	ev->call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (ev->call_fd < 0 || epoll_ctl(ev->epfd, EPOLL_CTL_ADD, ev->call_fd, &c) < 0) {
		int ret = -errno;

		if (ev->call_fd >= 0)
			close(ev->call_fd);
		close(ev->stop_fd);
		close(ev->epfd);
		ev->epfd = ev->stop_fd = ev->call_fd = -1;
		return ret;
	}
	return 0;
}

/* Loop thread: run the pending call, if any, and wake its caller. */
static void run_call(struct evloop *ev)
{
	uint64_t n;

	if (read(ev->call_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		log_warn("evloop: call eventfd: %s", strerror(errno));
	pthread_mutex_lock(&ev->call_mu);
	if (ev->call_fn && !ev->call_done) {
		int (*fn)(void *) = ev->call_fn;
		void *arg = ev->call_arg;

		/* Unlocked while fn runs: the caller only waits for call_done. */
		pthread_mutex_unlock(&ev->call_mu);
		int ret = fn(arg);
		pthread_mutex_lock(&ev->call_mu);
		ev->call_ret = ret;
		ev->call_done = true;
		pthread_cond_broadcast(&ev->call_cond);
	}
	pthread_mutex_unlock(&ev->call_mu);
}

/* The loop returned: fail the pending call and every later one. */
static void close_calls(struct evloop *ev)
{
	pthread_mutex_lock(&ev->call_mu);
	ev->call_closed = true;
	if (ev->call_fn && !ev->call_done) {
		ev->call_ret = -ESHUTDOWN;
		ev->call_done = true;
	}
	pthread_cond_broadcast(&ev->call_cond);
	pthread_mutex_unlock(&ev->call_mu);
}

int evloop_call(struct evloop *ev, int (*fn)(void *arg), void *arg)
{
	uint64_t one = 1;
	int ret;

	pthread_mutex_lock(&ev->call_lock);
	pthread_mutex_lock(&ev->call_mu);
	if (ev->call_closed || __atomic_load_n(&ev->stopping, __ATOMIC_ACQUIRE)) {
		pthread_mutex_unlock(&ev->call_mu);
		pthread_mutex_unlock(&ev->call_lock);
		return -ESHUTDOWN;
	}
	ev->call_fn = fn;
	ev->call_arg = arg;
	ev->call_done = false;
	pthread_mutex_unlock(&ev->call_mu);
	if (write(ev->call_fd, &one, sizeof(one)) < 0) {
		ret = -errno;
		pthread_mutex_lock(&ev->call_mu);
		ev->call_fn = NULL;
		pthread_mutex_unlock(&ev->call_mu);
		pthread_mutex_unlock(&ev->call_lock);
		return ret;
	}
	pthread_mutex_lock(&ev->call_mu);
	while (!ev->call_done)
		pthread_cond_wait(&ev->call_cond, &ev->call_mu);
	ret = ev->call_ret;
	ev->call_fn = NULL;
	pthread_mutex_unlock(&ev->call_mu);
	pthread_mutex_unlock(&ev->call_lock);
	return ret;
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

static int loop(struct evloop *ev);

int evloop_run(struct evloop *ev)
{
	int ret = loop(ev);

	close_calls(ev);
	return ret;
}

static int loop(struct evloop *ev)
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
			if (events[i].data.u64 == CALL_TAG) {
				run_call(ev);
				continue;
			}
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
	if (ev->call_fd >= 0)
		close(ev->call_fd);
	ev->epfd = ev->stop_fd = ev->call_fd = -1;
}
