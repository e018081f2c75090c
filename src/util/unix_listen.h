/* A listening Unix stream socket at a path, as the vsock device and the control socket need. */
#ifndef IGNITION_UTIL_UNIX_LISTEN_H
#define IGNITION_UTIL_UNIX_LISTEN_H

/* Bind and listen (non-blocking, close-on-exec) at `path` (shorter than sun_path), replacing a
 * stale socket file a dead process left; `mode` >= 0 is set on the socket file before
 * listen(), so no client connects while the mode is still the umask's.  The fd, -EADDRINUSE
 * when a live server answers there, -EEXIST when the path is not a socket, or -errno. */
int unix_listen(const char *path, int backlog, int mode) __attribute__((warn_unused_result));

#endif
