/* The REST API's HTTP server: libmicrohttpd on a listening Unix socket, polled by a thread of
 * its own ("api") that installs its own seccomp filter (SECCOMP_THREAD_API) when asked. */
#ifndef IGNITION_API_SERVER_H
#define IGNITION_API_SERVER_H

#include <stddef.h>

struct api;
struct api_server;

/* Listen on `path` (mode 0600, a stale socket replaced) and serve `a` on a new thread with
 * every signal blocked.  Requests are handled one at a time on that thread: only it touches
 * `a` while the server runs.  0 or -errno with a reason. */
int api_server_start(const char *path, struct api *a, struct api_server **out, char *err, size_t n)
	__attribute__((warn_unused_result));
/* Ask the thread to install its seccomp filter (after seccomp_filters_build). */
void api_server_filter(struct api_server *s);
/* Stop the thread, close every connection and the socket, remove the path.  NULL: no-op. */
void api_server_stop(struct api_server *s);

#endif
