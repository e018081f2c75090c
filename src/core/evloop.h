/* The event loop (DESIGN.md §1): one epoll thread that owns device back ends, ioeventfd
 * kicks, console input and timers.  vCPU threads never do queue work. */
#ifndef IGNITION_CORE_EVLOOP_H
#define IGNITION_CORE_EVLOOP_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define EVLOOP_MAX_HANDLERS 128

struct evloop_handler {
	int fd; /* -1: free */
	void (*cb)(void *opaque, uint32_t events);
	void *opaque;
};

struct evloop {
	int epfd;
	int stop_fd; /* eventfd that wakes the loop to stop */
	bool stopping;
	struct evloop_handler handlers[EVLOOP_MAX_HANDLERS];
	/* evloop_call(): one call at a time, handed over through call_fd. */
	int call_fd;
	pthread_mutex_t call_lock; /* serialises callers */
	pthread_mutex_t call_mu;   /* guards the fields below */
	pthread_cond_t call_cond;
	int (*call_fn)(void *arg);
	void *call_arg;
	int call_ret;
	bool call_done;
	bool call_closed; /* the loop returned: new calls fail with -ESHUTDOWN */
};

/* Create the epoll instance. */
int evloop_init(struct evloop *ev) __attribute__((warn_unused_result));
/* Call cb(opaque, epoll events) whenever fd is ready for `events` (EPOLLIN...). */
int evloop_add(struct evloop *ev, int fd, uint32_t events, void (*cb)(void *opaque, uint32_t ev),
	       void *opaque) __attribute__((warn_unused_result));
/* Stop watching fd (the handler is never called again after this returns on the loop thread). */
void evloop_del(struct evloop *ev, int fd);
/* Run until evloop_stop(); returns 0 or -errno. */
int evloop_run(struct evloop *ev);
/* Ask the loop to return (any thread, async-signal-safe). */
void evloop_stop(struct evloop *ev);
/* Run fn(arg) on the loop's thread and wait for it (any other thread, e.g. the REST API's):
 * what fn returns, or -ESHUTDOWN when the loop stopped (or stops) before running it. */
int evloop_call(struct evloop *ev, int (*fn)(void *arg), void *arg)
	__attribute__((warn_unused_result));
/* Close the epoll instance. */
void evloop_destroy(struct evloop *ev);

#endif
