/* The REST API's HTTP server: see server.h.  libmicrohttpd parses HTTP; it runs in external
 * epoll mode on our own thread, so that thread can carry its own seccomp filter and never runs
 * guest-facing work. */
#include "api/server.h"

#include "api/http.h"
#include "api/mmds_http.h"

#include "api/router.h"
#include "core/metrics.h"
#include "core/seccomp.h"
#include "util/log.h"
#include "util/unix_listen.h"

#include <errno.h>
#include <microhttpd.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* Clients served at once: more are accepted and closed at once by libmicrohttpd. */
#define API_MAX_CONNS 256
/* Header bytes a connection may hold (libmicrohttpd's pool; bodies are ours, API_BODY_MAX). */
#define API_CONN_MEMORY (32 * 1024)
/* A client idle this long is dropped: a slow client holds one slot, never the thread. */
#define API_CONN_TIMEOUT_S 10
#define API_BACKLOG	   1024

struct api_server {
	struct MHD_Daemon *d;
	struct api *a;
	int listen_fd;
	int wake_fd; /* eventfd: stop or install the filter */
	bool stop, filter;
	pthread_t thread;
	char path[108];
};

/* A request's body, collected as libmicrohttpd hands it over. */
struct req {
	char *buf;
	size_t len;   /* bytes kept (<= API_BODY_MAX) */
	size_t total; /* bytes received */
};

static enum MHD_Result answer(struct MHD_Connection *c, unsigned status, char *out)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	r = MHD_create_response_from_buffer(out ? strlen(out) : 0, out,
					    out ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
	if (!r) {
		free(out);
		return MHD_NO;
	}
	if (out)
		MHD_add_response_header(r, "Content-Type", "application/json");
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
			       const char *method, const char *version, const char *upload,
			       size_t *upload_size, void **con_cls)
{
	struct api_server *s = cls;
	struct req *q = *con_cls;
	const char *route;
	unsigned status;
	char *out;
	(void)version;

	if (!q) {
		q = calloc(1, sizeof(*q));
		if (!q)
			return MHD_NO;
		*con_cls = q;
		return MHD_YES;
	}
	if (*upload_size) {
		size_t n = *upload_size;

		/* Keep at most API_BODY_MAX bytes; count the rest so the answer can say. */
		if (q->total + n <= API_BODY_MAX) {
			char *nb = realloc(q->buf, q->len + n + 1);

			if (!nb)
				return MHD_NO;
			q->buf = nb;
			memcpy(q->buf + q->len, upload, n);
			q->len += n;
		}
		q->total += n;
		*upload_size = 0;
		return MHD_YES;
	}
	api_handle(s->a, method, url, q->buf ? q->buf : "", q->total > q->len ? q->total : q->len,
		   &status, &out, &route);
	metrics_api_request(method, route, status);
	return answer(c, status, out);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
		      enum MHD_RequestTerminationCode toe)
{
	struct req *q = *con_cls;
	(void)cls;
	(void)c;
	(void)toe;

	if (q) {
		free(q->buf);
		free(q);
		*con_cls = NULL;
	}
}

static void *thread_main(void *arg)
{
	struct api_server *s = arg;
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_EPOLL_FD);
	int epfd = info ? info->epoll_fd : -1;

	log_set_thread("api");
	for (;;) {
		struct pollfd p[2] = { { .fd = epfd, .events = POLLIN },
				       { .fd = s->wake_fd, .events = POLLIN } };
		MHD_UNSIGNED_LONG_LONG to = 1000;
		int timeout;

		if (MHD_get_timeout(s->d, &to) != MHD_YES || to > 1000)
			to = 1000;
		timeout = (int)to;
		if (poll(p, 2, timeout) < 0 && errno != EINTR) {
			log_error("api: poll: %s", strerror(errno));
			break;
		}
		if (p[1].revents & POLLIN) {
			uint64_t v;

			if (read(s->wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
				log_warn("api: wake fd: %s", strerror(errno));
			if (__atomic_load_n(&s->stop, __ATOMIC_ACQUIRE))
				break;
			if (__atomic_exchange_n(&s->filter, false, __ATOMIC_ACQ_REL)) {
				int ret = seccomp_thread_install(SECCOMP_THREAD_API, "api");

				if (ret)
					log_error("api: cannot install the seccomp filter: %s",
						  strerror(-ret));
			}
		}
		MHD_run(s->d);
	}
	return NULL;
}

static void wake(struct api_server *s)
{
	uint64_t one = 1;

	if (write(s->wake_fd, &one, sizeof(one)) < 0)
		log_warn("api: cannot wake the API thread: %s", strerror(errno));
}

int api_server_start(const char *path, struct api *a, struct api_server **out, char *err, size_t n)
{
	struct api_server *s = calloc(1, sizeof(*s));
	sigset_t all, old;
	int ret;

	if (!s)
		return -ENOMEM;
	s->a = a;
	s->wake_fd = -1;
	if (strlen(path) >= sizeof(s->path)) {
		snprintf(err, n, "--api-sock '%s': path too long for a Unix socket", path);
		free(s);
		return -ENAMETOOLONG;
	}
	snprintf(s->path, sizeof(s->path), "%s", path);
	s->listen_fd = unix_listen(path, API_BACKLOG, 0600);
	if (s->listen_fd < 0) {
		ret = s->listen_fd;
		snprintf(err, n, "--api-sock '%s': %s", path,
			 ret == -EADDRINUSE ? "another process is listening there"
					    : strerror(-ret));
		free(s);
		return ret;
	}
	s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->wake_fd < 0) {
		ret = -errno;
		goto fail;
	}
	s->d = MHD_start_daemon(MHD_USE_EPOLL, 0, NULL, NULL, handler, s, MHD_OPTION_LISTEN_SOCKET,
				s->listen_fd, MHD_OPTION_CONNECTION_LIMIT, (unsigned)API_MAX_CONNS,
				MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)API_CONN_MEMORY,
				MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)API_CONN_TIMEOUT_S,
				MHD_OPTION_NOTIFY_COMPLETED, completed, s, MHD_OPTION_END);
	if (!s->d) {
		ret = -EIO;
		snprintf(err, n, "--api-sock '%s': libmicrohttpd did not start", path);
		goto fail;
	}
	/* Stop signals go to the main thread (vm_catch_stop_signals), never to this one. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	ret = -pthread_create(&s->thread, NULL, thread_main, s);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret) {
		MHD_stop_daemon(s->d); /* closes the listening socket */
		s->listen_fd = -1;
		goto fail;
	}
	*out = s;
	return 0;
fail:
	if (!err[0])
		snprintf(err, n, "--api-sock '%s': %s", path, strerror(-ret));
	if (s->wake_fd >= 0)
		close(s->wake_fd);
	if (s->listen_fd >= 0)
		close(s->listen_fd);
	unlink(path);
	free(s);
	return ret;
}

void api_server_filter(struct api_server *s)
{
	if (!s)
		return;
	__atomic_store_n(&s->filter, true, __ATOMIC_RELEASE);
	wake(s);
}

void api_server_stop(struct api_server *s)
{
	if (!s)
		return;
	__atomic_store_n(&s->stop, true, __ATOMIC_RELEASE);
	wake(s);
	pthread_join(s->thread, NULL);
	MHD_stop_daemon(s->d); /* also closes the listening socket */
	close(s->wake_fd);
	unlink(s->path);
	free(s);
}

/* The HTTP module's table (http.h): this file and mmds_http.c are the module. */
__attribute__((visibility("default"))) const struct http_module http_module = {
	.abi = HTTP_MODULE_ABI,
	.api_server_start = api_server_start,
	.api_server_filter = api_server_filter,
	.api_server_stop = api_server_stop,
	.mmds_http_create = mmds_http_create,
	.mmds_http_path = mmds_http_path,
	.mmds_http_start = mmds_http_start,
	.mmds_http_destroy = mmds_http_destroy,
};
