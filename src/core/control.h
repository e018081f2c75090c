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
 *   {"cmd":"kvm_stats"}                 -> {"ok":true,"vm":{"remote_tlb_flush":3,...},
 *                                           "vcpus":[{"exits":12345,"halt_exits":67,...}]}
 *                                           (KVM's own counters, core/kvm_stats.h)
 *
 * With a display (--gui, --vnc, --gpu; docs/gui.md):
 *   {"cmd":"screenshot","path":"/t/s.png"} -> {"ok":true,"path":"/t/s.png","width":1280,
 *                                           "height":800}   (PNG; the VMM's cwd for a
 *                                           relative path)
 *   {"cmd":"display"}                   -> {"ok":true,"active":true,"width":1280,
 *                                           "height":800,"serial":1234}  (serial: changes
 *                                           with every update of the frame)
 *   {"cmd":"type","text":"ls\n"}        -> {"ok":true}   (US layout; '\n' is Enter)
 *   {"cmd":"key","keys":"ctrl+alt+t"}   -> {"ok":true}   (pressed in order, released)
 *   {"cmd":"pointer","x":10,"y":20,"buttons":1} -> {"ok":true}  (buttons optional, default
 *                                           0: 1 left, 2 right, 4 middle, or'ed)
 *   {"cmd":"click","x":10,"y":20,"button":"left"} -> {"ok":true}  (move, press, release;
 *                                           button optional: left, right or middle)
 *   {"cmd":"resize","width":1024,"height":768} -> {"ok":true}  (a request: the guest
 *                                           changes its mode when it follows it)
 *   without a display, each of them     -> {"ok":false,"error":"CMD: this VM has no display
 *                                           (start it with --gui, --vnc or --gpu)"}
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

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evloop;
struct control;
struct json_t;

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
/* Size of the snapshot callback's `dir_out` buffer (PATH_MAX); also the limit of a
 * screenshot's path. */
#define CONTROL_PATH_MAX 4096
/* Longest "text" of `type` and "keys" of `key`, in bytes: a burst of input the guest's
 * event queue can take (each character is up to 4 events). */
#define CONTROL_TYPE_MAX 4096
#define CONTROL_KEYS_MAX 256

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
	uint32_t net_ready; /* the guest's "network configured" marks in this run (boot_timer.h) */
};

/* What "display" reports. */
struct control_display {
	bool active; /* a scanout is set (else width = height = 0) */
	uint32_t width, height;
	uint64_t serial; /* display_serial(): changes with every blit and mode change */
};

/* Pointer buttons of the "pointer" op (the same bits as ui/input.h's UI_BUTTON_*). */
#define CONTROL_BUTTON_LEFT   1u
#define CONTROL_BUTTON_RIGHT  2u
#define CONTROL_BUTTON_MIDDLE 4u

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
	/* Put KVM's statistics into `ans` (a JSON object: "vm" and "vcpus"). */
	int (*kvm_stats)(void *ctx, struct json_t *ans, char *err, size_t n);
	/* The display (docs/gui.md).  A VM without one fails them all with -ENODEV and the
	 * reason "this VM has no display (start it with --gui, --vnc or --gpu)". */
	/* Write the current frame as a PNG file at `path` (non-empty, < CONTROL_PATH_MAX);
	 * its size into *w, *h.  -EAGAIN while the guest has not set a mode. */
	int (*screenshot)(void *ctx, const char *path, uint32_t *w, uint32_t *h, char *err,
			  size_t n);
	/* Fill *d (cheap: no copy of the frame). */
	int (*display)(void *ctx, struct control_display *d, char *err, size_t n);
	/* Type `text` (non-empty UTF-8, < CONTROL_TYPE_MAX bytes; the op refuses what the
	 * keyboard cannot type, naming it). */
	int (*type)(void *ctx, const char *text, char *err, size_t n);
	/* Press and release a combination such as "ctrl+alt+t" (< CONTROL_KEYS_MAX bytes). */
	int (*key)(void *ctx, const char *keys, char *err, size_t n);
	/* Move the pointer to (x, y) (x < DISPLAY_MAX_W, y < DISPLAY_MAX_H; the op checks them
	 * against the current mode) with `buttons` (CONTROL_BUTTON_*) held.  "click" is three
	 * of these: move, press, release. */
	int (*pointer)(void *ctx, uint32_t x, uint32_t y, uint32_t buttons, char *err, size_t n);
	/* Ask the guest for mode w x h (within the display's limits, checked before). */
	int (*resize)(void *ctx, uint32_t w, uint32_t h, char *err, size_t n);
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
