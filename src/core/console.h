/* The host side of the guest console: stdin (a raw-mode terminal, or a pipe/file) feeds a
 * console_port (the UART's receive side, as main wires it) through a Ctrl-A escape-key machine;
 * the UART writes guest output to stdout itself.  The console knows no device: it only sees
 * the port below.
 *
 * Escape keys (Ctrl-A = 0x01, then one key):
 *   Ctrl-A x        quit the VM (power_request(VM_STOP_QUIT))
 *   Ctrl-A h        print the key list to stderr
 *   Ctrl-A Ctrl-A   send one Ctrl-A to the guest
 *   Ctrl-A <other>  send both bytes to the guest (so programs that use Ctrl-A, e.g. readline's
 *                   beginning-of-line, keep working for every key that is not a command)
 * More commands are added with console_register_key().  The machine runs on bytes, not on
 * reads, so an escape split across reads (or arriving through a pipe) works the same.
 *
 * Threading: console_create/destroy on the main thread before/after the event loop runs;
 * everything else on the event-loop thread (or a single test thread).  console_restore() is
 * safe anywhere, including signal handlers. */
#ifndef IGNITION_CORE_CONSOLE_H
#define IGNITION_CORE_CONSOLE_H

#include "core/power.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evloop;
struct console;

#define CONSOLE_ESC_CHAR 0x01 /* Ctrl-A */
#define CONSOLE_MAX_KEYS 16
#define CONSOLE_PENDING	 4096 /* guest-bound bytes buffered while the UART FIFO is full */

/* Where guest-bound bytes go, filled by whoever wires the machine (the UART's receive side).
 * input() takes up to len bytes and returns how many it took (the rest wait in the console);
 * after a short take, room_fd (an eventfd; -1: none) becomes readable once more bytes fit, and
 * the console drains it with read() and retries. */
struct console_port {
	size_t (*input)(void *opaque, const uint8_t *buf, size_t len);
	int room_fd;
	void *opaque;
};

/* One escape command: Ctrl-A then `key` runs cb(opaque) on the event-loop thread. */
struct console_key {
	uint8_t key;
	const char *help;
	void (*cb)(void *opaque);
	void *opaque;
};

/* The escape-key machine: plain data, no I/O (unit-testable without a terminal). */
struct console_esc {
	bool armed; /* Ctrl-A seen, waiting for the command key */
	struct console_key keys[CONSOLE_MAX_KEYS];
	unsigned nr_keys;
};

/* Empty machine with no commands. */
void console_esc_init(struct console_esc *e);
/* Add a command key; -EINVAL for Ctrl-A itself or a NULL cb, -EEXIST, -ENOSPC. */
int console_esc_register(struct console_esc *e, uint8_t key, const char *help,
			 void (*cb)(void *opaque), void *opaque)
	__attribute__((warn_unused_result));
/* Feed one input byte: stores 0..2 bytes for the guest in out[] (count in *nout) and returns
 * the command entered, or NULL.  The caller runs the command. */
const struct console_key *console_esc_feed(struct console_esc *e, uint8_t in, uint8_t out[2],
					   size_t *nout);

/* Start the console: raw mode if in_fd is a terminal (restored at exit and on fatal signals),
 * watch in_fd on `ev` (NULL: no watching, feed with console_input), send guest-bound bytes to
 * `port` (copied; NULL or a NULL input: they stay buffered), stop requests to `power`.  in_fd
 * may be -1 (no input).  Also ignores SIGPIPE if it has its default action, so a closed stdout
 * drops guest output instead of killing the VMM. */
int console_create(struct evloop *ev, int in_fd, const struct console_port *port,
		   const struct power_sink *power, struct console **out)
	__attribute__((warn_unused_result));
/* The VMM's console: console_create(ev, STDIN_FILENO, port, power) into a process-wide
 * handle (there is one controlling terminal); -EBUSY if already done. */
int console_init(struct evloop *ev, const struct console_port *port, const struct power_sink *power)
	__attribute__((warn_unused_result));
/* That handle (NULL before console_init), e.g. to register keys; free it with console_fini. */
struct console *console_stdin(void);
/* Destroy the console_init() console (terminal restored); no-op without one. */
void console_fini(void);
/* Register an escape command (see console_esc_register). */
int console_register_key(struct console *c, uint8_t key, const char *help, void (*cb)(void *opaque),
			 void *opaque) __attribute__((warn_unused_result));
/* Process bytes as if read from in_fd (escape machine, then the port). */
void console_input(struct console *c, const uint8_t *buf, size_t len);
/* Print the escape-key list to fd (stderr for Ctrl-A h). */
void console_help(const struct console *c, int fd);
/* Guest-bound bytes waiting for room in the port, and bytes dropped (terminal mode). */
size_t console_pending(const struct console *c);
uint64_t console_dropped(const struct console *c);
/* True once in_fd reached end of file (the VM keeps running). */
bool console_input_eof(const struct console *c);
/* Stop watching, restore the terminal, free. */
void console_destroy(struct console *c);
/* Put the terminal back as it was; idempotent and async-signal-safe. */
void console_restore(void);

#endif
