/* The guest's HTTP to MMDS: libmicrohttpd on a private Unix socket (in a temporary directory
 * of its own, removed by mmds_http_destroy), driven from the event loop (MHD's epoll fd and a
 * timerfd for its connection timeouts; no thread of its own).  Requests are answered by
 * mmds_handle().  User networking connects the guest's TCP connections to the socket. */
#ifndef IGNITION_API_MMDS_HTTP_H
#define IGNITION_API_MMDS_HTTP_H

#include <stddef.h>

struct mmds;
struct evloop;
struct mmds_http;

/* Bind the socket and start the (idle) server.  0 or -errno with a reason in err. */
int mmds_http_create(struct mmds *m, struct mmds_http **out, char *err, size_t n)
	__attribute__((warn_unused_result));
/* The socket's path as slirp connects to it (slirp_add_unix): inside the jail with
 * --chroot (mmds_set_jail). */
const char *mmds_http_path(const struct mmds_http *h);
/* Serve on `ev` (its thread). */
int mmds_http_start(struct mmds_http *h, struct evloop *ev) __attribute__((warn_unused_result));
/* Stop serving, close every connection, remove the socket and its directory. */
void mmds_http_destroy(struct mmds_http *h);

#endif
