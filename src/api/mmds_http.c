#include "api/mmds_http.h"

#include "api/mmds.h"
#include "core/evloop.h"
#include "util/log.h"

#include <errno.h>
#include <microhttpd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

/* Bounds a guest cannot push past: connections at once, bytes of headers per connection
 * (MHD answers 431/413 beyond), seconds an idle connection stays. */
#define MMDS_HTTP_CONNS	  32
#define MMDS_HTTP_MEMORY  16384
#define MMDS_HTTP_TIMEOUT 30

struct mmds_http {
	struct mmds *mmds;
	struct MHD_Daemon *d;
	struct evloop *ev;
	int listen_fd, epoll_fd, timer_fd;
	/* The directory and socket as this process names them now, and the socket as slirp
	 * names it when it connects (inside the jail: `path` without the jail's root). */
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path) - sizeof("/http") + 1];
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	const char *conn_path;
	size_t root_len; /* strlen of the jail's root in dir/path; 0 without --chroot */
};

static int marker;

/* A header under Firecracker's name or its EC2 alias (X-aws-ec2-metadata-...). */
static const char *header(struct MHD_Connection *c, const char *name, const char *alias)
{
	const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);

	return v ? v : MHD_lookup_connection_value(c, MHD_HEADER_KIND, alias);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	struct mmds_http *h = cls;
	struct mmds_request rq;
	struct mmds_response rs;
	struct MHD_Response *r;
	enum MHD_Result ret;

	if (!*con_cls) {
		*con_cls = &marker;
		return MHD_YES;
	}
	/* A body (the token PUT has none) is read and dropped, a chunk at a time. */
	if (*upload_size) {
		*upload_size = 0;
		return MHD_YES;
	}
	rq = (struct mmds_request){
		.method = method,
		.path = url,
		.accept = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Accept"),
		.token = header(c, "X-metadata-token", "X-aws-ec2-metadata-token"),
		.ttl = header(c, "X-metadata-token-ttl-seconds",
			      "X-aws-ec2-metadata-token-ttl-seconds"),
		.forwarded =
			MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Forwarded-For") != NULL,
	};
	if (mmds_handle(h->mmds, &rq, &rs))
		return MHD_NO; /* out of memory: MHD closes the connection */
	r = MHD_create_response_from_buffer(rs.len, rs.body, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(rs.body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, rs.content_type);
	if (rs.allow)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, rs.allow);
	ret = MHD_queue_response(c, rs.status, r);
	MHD_destroy_response(r);
	return ret;
}

/* After every run: wake again when MHD's next connection timeout is due. */
static void rearm(struct mmds_http *h)
{
	struct itimerspec its = { 0 };
	MHD_UNSIGNED_LONG_LONG ms;

	if (MHD_get_timeout(h->d, &ms) == MHD_YES) {
		its.it_value.tv_sec = (time_t)(ms / 1000);
		its.it_value.tv_nsec = (long)(ms % 1000) * 1000000;
		if (!its.it_value.tv_sec && !its.it_value.tv_nsec)
			its.it_value.tv_nsec = 1;
	}
	timerfd_settime(h->timer_fd, 0, &its, NULL);
}

static void on_epoll(void *opaque, uint32_t events)
{
	struct mmds_http *h = opaque;

	MHD_run(h->d);
	rearm(h);
}

static void on_timer(void *opaque, uint32_t events)
{
	struct mmds_http *h = opaque;
	uint64_t v;
	ssize_t r = read(h->timer_fd, &v, sizeof(v));

	(void)r;
	MHD_run(h->d);
	rearm(h);
}

int mmds_http_create(struct mmds *m, struct mmds_http **out, char *err, size_t n)
{
	struct mmds_http *h = calloc(1, sizeof(*h));
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const union MHD_DaemonInfo *info;
	struct mmds_jail jail;
	int ret, len;

	if (!h) {
		snprintf(err, n, "MMDS: out of memory");
		return -ENOMEM;
	}
	h->mmds = m;
	h->listen_fd = h->timer_fd = h->epoll_fd = -1;
	mmds_get_jail(m, &jail);
	/* With --chroot the directory is made at the top of the new root (its /tmp may not
	 * exist), and slirp later connects to it by its path inside. */
	h->root_len = strlen(jail.root);
	while (h->root_len > 1 && jail.root[h->root_len - 1] == '/')
		h->root_len--;
	if (h->root_len == 1)
		h->root_len = 0; /* --chroot / */
	len = snprintf(h->dir, sizeof(h->dir), "%.*s%s", (int)h->root_len, jail.root,
		       h->root_len ? "/ignition-mmds-XXXXXX" : "/tmp/ignition-mmds-XXXXXX");
	if (len < 0 || (size_t)len >= sizeof(h->dir)) {
		h->dir[0] = '\0';
		snprintf(err, n,
			 "MMDS: the socket path under '%s' would be too long for a Unix socket",
			 jail.root);
		ret = -ENAMETOOLONG;
		goto fail;
	}
	if (!mkdtemp(h->dir)) {
		ret = -errno;
		snprintf(err, n, "MMDS: cannot create a directory '%s': %s", h->dir,
			 strerror(-ret));
		h->dir[0] = '\0';
		goto fail;
	}
	snprintf(h->path, sizeof(h->path), "%s/http", h->dir);
	h->conn_path = h->path + h->root_len;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", h->path);
	h->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (h->listen_fd < 0 || bind(h->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(h->listen_fd, MMDS_HTTP_CONNS) < 0) {
		ret = -errno;
		snprintf(err, n, "MMDS: cannot listen on %s: %s", h->path, strerror(-ret));
		goto fail;
	}
	/* After --uid/--gid, slirp's connects need search on the directory and write on the
	 * socket (both 0700/0755 root's as made). */
	if ((jail.uid != (uint32_t)-1 || jail.gid != (uint32_t)-1) &&
	    (chown(h->dir, jail.uid, jail.gid) < 0 || chown(h->path, jail.uid, jail.gid) < 0)) {
		ret = -errno;
		snprintf(err, n, "MMDS: cannot give %s to the --uid/--gid ids: %s", h->path,
			 strerror(-ret));
		goto fail;
	}
	h->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (h->timer_fd < 0) {
		ret = -errno;
		snprintf(err, n, "MMDS: timerfd: %s", strerror(-ret));
		goto fail;
	}
	h->d = MHD_start_daemon(MHD_USE_EPOLL, 0, NULL, NULL, on_request, h,
				MHD_OPTION_LISTEN_SOCKET, h->listen_fd, MHD_OPTION_CONNECTION_LIMIT,
				(unsigned)MMDS_HTTP_CONNS, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
				(size_t)MMDS_HTTP_MEMORY, MHD_OPTION_CONNECTION_TIMEOUT,
				(unsigned)MMDS_HTTP_TIMEOUT, MHD_OPTION_END);
	info = h->d ? MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_EPOLL_FD) : NULL;
	if (!info) {
		ret = -EINVAL;
		snprintf(err, n, "MMDS: cannot start the HTTP server (libmicrohttpd)");
		goto fail;
	}
	h->epoll_fd = info->epoll_fd;
	*out = h;
	return 0;
fail:
	mmds_http_destroy(h);
	return ret;
}

const char *mmds_http_path(const struct mmds_http *h)
{
	return h->conn_path;
}

int mmds_http_start(struct mmds_http *h, struct evloop *ev)
{
	int ret = evloop_add(ev, h->epoll_fd, EPOLLIN, on_epoll, h);

	if (ret)
		return ret;
	ret = evloop_add(ev, h->timer_fd, EPOLLIN, on_timer, h);
	if (ret) {
		evloop_del(ev, h->epoll_fd);
		return ret;
	}
	h->ev = ev;
	return 0;
}

void mmds_http_destroy(struct mmds_http *h)
{
	if (!h)
		return;
	if (h->ev) {
		evloop_del(h->ev, h->timer_fd);
		evloop_del(h->ev, h->epoll_fd);
	}
	if (h->d)
		MHD_stop_daemon(h->d); /* closes the listening socket it was given */
	else if (h->listen_fd >= 0)
		close(h->listen_fd);
	if (h->timer_fd >= 0)
		close(h->timer_fd);
	/* Named from outside the jail if it was not entered (an error on the way), else from
	 * inside it. */
	if (h->dir[0] && unlink(h->path) < 0 && errno == ENOENT && h->root_len)
		unlink(h->path + h->root_len);
	if (h->dir[0] && rmdir(h->dir) < 0 && errno == ENOENT && h->root_len)
		rmdir(h->dir + h->root_len);
	free(h);
}
