/* The control socket (`--control PATH`): a Unix stream socket served on the event loop that takes
 * one JSON object per line and answers each with one JSON line, in order:
 *
 *   {"cmd":"pause"}                     -> {"ok":true}
 *   {"cmd":"resume"}                    -> {"ok":true}
 *   {"cmd":"snapshot","dir":"/s/1"}     -> {"ok":true,"dir":"/s/1"}   ("dir" optional or null)
 *   {"cmd":"status"}                    -> {"ok":true,"state":"running","vcpus":2,
 *                                           "mem_mib":512,"uptime_ms":1234}
 *   {"cmd":"checkpoint"}                -> {"ok":true}   (needs --track-dirty)
 *   {"cmd":"reset"}                     -> {"ok":true,"reset_us":180,"pages":42}
 *   anything that fails                 -> {"ok":false,"error":"one line saying why"}
 *
 * docs/architecture.md ("Control socket") has the whole protocol: limits, what happens to a
 * client that sends too much or reads too little, how commands are added.
 *
 * The module only speaks the protocol; what a command does is the creator's, through
 * struct control_ops.  Threading: control_create() and control_destroy() on the main thread
 * while the event loop is not running (or on the event-loop thread); every callback runs on the
 * event-loop thread, one at a time. */
#ifndef IGNITION_CORE_CONTROL_H
#define IGNITION_CORE_CONTROL_H

#include <stddef.h>
#include <stdint.h>

struct evloop;
struct control;

/* Clients served at once; one more is accepted, told so in an error line and closed. */
#define CONTROL_MAX_CLIENTS 8
/* Longest command line in bytes, without its '\n'; a client that sends a longer one gets an
 * error line and is closed. */
#define CONTROL_LINE_MAX 65536
/* Answer bytes a client may leave unread (beyond what the socket buffers hold) before it is
 * dropped: a client that does not read can never block the event loop. */
#define CONTROL_OUT_MAX 65536
/* Size of the `err` buffer a callback gets. */
#define CONTROL_ERR_MAX 256
/* Size of the snapshot callback's `dir_out` buffer (PATH_MAX). */
#define CONTROL_PATH_MAX 4096

enum control_vm_state {
	CONTROL_VM_RUNNING,
	CONTROL_VM_PAUSED,
};

/* What "status" reports (cheap to gather: no vCPU is stopped for it). */
struct control_status {
	enum control_vm_state state;
	uint32_t vcpus;
	uint64_t mem_mib;
	uint64_t uptime_ms; /* since the VM started (or was restored) */
};

/* The operations behind the commands, supplied by the creator and copied by control_create().
 * Each runs on the event-loop thread (the guest's device back ends wait while it does) and
 * returns 0, or -errno with a one-line reason written into err[n] (NUL-terminated; left empty,
 * the answer says strerror(errno)).  A NULL callback makes its command answer "not supported".
 * No callback may call control_destroy(). */
struct control_ops {
	void *ctx;
	/* Stop every vCPU (and quiesce devices); the guest sees no time pass for its devices. */
	int (*pause)(void *ctx, char *err, size_t n);
	/* Let the vCPUs run again. */
	int (*resume)(void *ctx, char *err, size_t n);
	/* Write a snapshot into `dir` (NULL: the creator's default) and put the directory actually
	 * written into dir_out[dir_n] (NUL-terminated). */
	int (*snapshot)(void *ctx, const char *dir, char *dir_out, size_t dir_n, char *err,
			size_t n);
	/* Fill *st. */
	int (*status)(void *ctx, struct control_status *st, char *err, size_t n);
	/* Mark an in-place checkpoint / roll the VM back to it (pages copied back, time taken). */
	int (*checkpoint)(void *ctx, char *err, size_t n);
	int (*reset)(void *ctx, uint64_t *reset_us, uint64_t *pages, char *err, size_t n);
};

/* Listen on Unix socket `path` (mode 0600) and serve it on `ev` (one handler slot; clients
 * live in a private epoll set).  A stale socket file at `path` (nobody listening) is replaced.
 * -EINVAL: empty path or NULL ops; -ENAMETOOLONG: longer than sun_path holds; -EADDRINUSE: a
 * live server listens there; -EEXIST: something other than a socket is there; -ENOENT: the
 * directory does not exist; other -errno from the socket calls.  Also seeds jansson's hash
 * function (it would otherwise open /dev/urandom on first use, which the event loop's seccomp
 * filter refuses). */
int control_create(struct evloop *ev, const char *path, const struct control_ops *ops,
		   struct control **out) __attribute__((warn_unused_result));
/* Stop serving: close every client (unsent answers are lost), the listening socket, and remove
 * `path`.  NULL is a no-op. */
void control_destroy(struct control *c);
/* Clients connected and served now (any thread; for tests and status). */
unsigned control_nr_clients(const struct control *c);

/* The protocol without the socket: run the command in line[0..len) (no '\n'; need not be
 * NUL-terminated) through `ops` and put the answer, one JSON object ending in '\n', into
 * *answer (malloc'd; the caller frees it).  Returns 0 when the command succeeded ("ok":true),
 * -EMSGSIZE for a line longer than CONTROL_LINE_MAX, -EINVAL for a malformed command,
 * -EOPNOTSUPP for a NULL callback, or the callback's -errno; *answer then holds the error line.
 * Only when no answer could be built at all is it -ENOMEM with *answer NULL.  Pure apart from
 * the callbacks: for tests, fuzzing and the REST API.  On a seccomp-filtered thread, jansson
 * must have been seeded before (control_create() does it, or json_object_seed()). */
int control_handle_line(const struct control_ops *ops, const char *line, size_t len, char **answer)
	__attribute__((warn_unused_result));

#endif
