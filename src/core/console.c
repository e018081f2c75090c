/* Host console: terminal raw mode, stdin on the event loop, Ctrl-A escape keys.
 *
 * Flow control: guest-bound bytes go to the port (the UART's RX FIFO); what does not fit waits
 * in a CONSOLE_PENDING buffer here and is retried when the port signals room (its room_fd).
 * stdin keeps being read meanwhile so the escape keys stay live.  When the buffer fills:
 *  - from a pipe or file, reading pauses (nothing is lost; the writer waits on the pipe);
 *  - from a terminal, guest-bound bytes are dropped, as a real UART overruns, so a guest that
 *    is not reading its console can never make Ctrl-A x unreachable. */
#include "core/console.h"

#include "core/evloop.h"
#include "util/log.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <termios.h>
#include <unistd.h>

struct console {
	struct console_esc esc;
	struct evloop *ev;
	struct console_port port; /* input NULL: none */
	struct power_sink power;
	int in_fd;
	bool is_tty;
	int kick_fd;	 /* in_fd cannot be polled (regular file, /dev/null): an always-ready
			   * eventfd stands in for it */
	bool in_watched; /* the input (or kick) fd is on the event loop */
	bool in_eof;	 /* input finished (EOF or read error) */
	bool room_watched;
	uint8_t pend[CONSOLE_PENDING];
	size_t pend_len;
	uint64_t dropped;
};

/* ---- escape-key machine ---- */

void console_esc_init(struct console_esc *e)
{
	memset(e, 0, sizeof(*e));
}

int console_esc_register(struct console_esc *e, uint8_t key, const char *help,
			 void (*cb)(void *opaque), void *opaque)
{
	if (key == CONSOLE_ESC_CHAR || !cb)
		return -EINVAL;
	for (unsigned i = 0; i < e->nr_keys; i++)
		if (e->keys[i].key == key)
			return -EEXIST;
	if (e->nr_keys >= CONSOLE_MAX_KEYS)
		return -ENOSPC;
	e->keys[e->nr_keys++] = (struct console_key){
		.key = key, .help = help ? help : "", .cb = cb, .opaque = opaque
	};
	return 0;
}

const struct console_key *console_esc_feed(struct console_esc *e, uint8_t in, uint8_t out[2],
					   size_t *nout)
{
	*nout = 0;
	if (!e->armed) {
		if (in == CONSOLE_ESC_CHAR)
			e->armed = true;
		else
			out[(*nout)++] = in;
		return NULL;
	}
	e->armed = false;
	if (in == CONSOLE_ESC_CHAR) {
		out[(*nout)++] = CONSOLE_ESC_CHAR; /* Ctrl-A Ctrl-A: one literal Ctrl-A */
		return NULL;
	}
	for (unsigned i = 0; i < e->nr_keys; i++)
		if (e->keys[i].key == in)
			return &e->keys[i];
	/* Not a command: the guest gets both bytes. */
	out[(*nout)++] = CONSOLE_ESC_CHAR;
	out[(*nout)++] = in;
	return NULL;
}

/* ---- terminal state (process-global: there is one controlling terminal) ---- */

static struct termios saved_tio;
static int saved_fd = -1;
static int raw_active; /* 1 while the terminal is in raw mode; swapped atomically */
static const int fatal_signals[] = { SIGINT,  SIGTERM, SIGHUP, SIGQUIT, SIGSEGV,
				     SIGABRT, SIGBUS,  SIGFPE, SIGILL };

void console_restore(void)
{
	/* tcsetattr() is async-signal-safe (POSIX.1-2008 §2.4.3); the exchange makes the restore
	 * happen once even if a signal lands during a normal exit. */
	if (__atomic_exchange_n(&raw_active, 0, __ATOMIC_SEQ_CST))
		tcsetattr(saved_fd, TCSANOW, &saved_tio);
}

static void fatal_signal(int sig)
{
	int saved_errno = errno;

	console_restore();
	/* SA_RESETHAND put the default action back; the re-raised signal is delivered when this
	 * handler returns (a fault re-executes the instruction and faults again). */
	raise(sig);
	errno = saved_errno;
}

static int install_signal_handlers(void)
{
	static bool installed;
	struct sigaction sa;

	if (installed)
		return 0;
	if (atexit(console_restore))
		return -ENOMEM;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = fatal_signal;
	sa.sa_flags = SA_RESETHAND;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(fatal_signals) / sizeof(fatal_signals[0]); i++) {
		struct sigaction old;

		/* Leave handlers someone else installed (the VMM's own stop-signal handling, a
		 * sanitizer); those paths end in exit() and so reach the atexit restore. */
		if (sigaction(fatal_signals[i], NULL, &old) < 0)
			return -errno;
		if (old.sa_handler == SIG_DFL && !(old.sa_flags & SA_SIGINFO) &&
		    sigaction(fatal_signals[i], &sa, NULL) < 0)
			return -errno;
	}
	installed = true;
	return 0;
}

static int enter_raw_mode(int fd)
{
	struct termios raw;
	int ret;

	if (tcgetattr(fd, &saved_tio) < 0)
		return -errno;
	raw = saved_tio;
	/* Raw input (no echo, no line editing, no signals from Ctrl-C/Ctrl-Z: they belong to the
	 * guest), but output processing is kept so host log lines on the same terminal still end
	 * in CR LF. */
	cfmakeraw(&raw);
	raw.c_oflag = saved_tio.c_oflag;
	saved_fd = fd;
	ret = install_signal_handlers();
	if (ret)
		return ret;
	__atomic_store_n(&raw_active, 1, __ATOMIC_SEQ_CST);
	if (tcsetattr(fd, TCSANOW, &raw) < 0) {
		ret = -errno;
		__atomic_store_n(&raw_active, 0, __ATOMIC_SEQ_CST);
		return ret;
	}
	return 0;
}

/* ---- input path ---- */

static void flush_pending(struct console *c)
{
	size_t n;

	if (!c->pend_len || !c->port.input)
		return;
	n = c->port.input(c->port.opaque, c->pend, c->pend_len);
	if (n > c->pend_len)
		n = c->pend_len; /* a port that claims more than it was given took it all */
	memmove(c->pend, c->pend + n, c->pend_len - n);
	c->pend_len -= n;
}

static void push_guest(struct console *c, const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (c->pend_len == CONSOLE_PENDING) {
			c->dropped++;
			continue;
		}
		c->pend[c->pend_len++] = b[i];
	}
}

void console_input(struct console *c, const uint8_t *buf, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		const struct console_key *k;
		uint8_t out[2];
		size_t n;

		k = console_esc_feed(&c->esc, buf[i], out, &n);
		push_guest(c, out, n);
		if (k)
			k->cb(k->opaque);
	}
	flush_pending(c);
}

static void on_input(void *opaque, uint32_t events);

static int watch_fd(const struct console *c)
{
	return c->kick_fd >= 0 ? c->kick_fd : c->in_fd;
}

static void input_pause(struct console *c)
{
	if (c->in_watched && c->ev)
		evloop_del(c->ev, watch_fd(c));
	c->in_watched = false;
}

static void input_resume(struct console *c)
{
	int ret;

	if (c->in_watched || c->in_eof || !c->ev || c->in_fd < 0)
		return;
	ret = evloop_add(c->ev, watch_fd(c), EPOLLIN, on_input, c);
	if (ret) {
		log_error("console: cannot watch input: %s", strerror(-ret));
		c->in_eof = true;
		return;
	}
	c->in_watched = true;
}

static void on_input(void *opaque, uint32_t events)
{
	struct console *c = opaque;
	uint8_t buf[512];
	size_t want = sizeof(buf);
	ssize_t r;

	if (!c->is_tty) {
		/* Pipe/file: read only what the buffer can take even if every byte turned into
		 * two (Ctrl-A + other), so nothing is ever dropped. */
		want = (CONSOLE_PENDING - c->pend_len) / 2;
		if (want > sizeof(buf))
			want = sizeof(buf);
		if (want == 0) {
			input_pause(c);
			return;
		}
	}
	r = read(c->in_fd, buf, want);
	if (r < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (r <= 0) {
		/* End of input (or a dead terminal): stop reading; the VM keeps running. */
		if (r < 0)
			log_warn("console: reading input failed: %s", strerror(errno));
		input_pause(c);
		c->in_eof = true;
		return;
	}
	console_input(c, buf, (size_t)r);
	if (!c->is_tty && CONSOLE_PENDING - c->pend_len < 2)
		input_pause(c);
}

static void on_room(void *opaque, uint32_t events)
{
	struct console *c = opaque;
	uint64_t v;
	ssize_t r = read(c->port.room_fd, &v, sizeof(v));

	(void)r;
	flush_pending(c);
	if (CONSOLE_PENDING - c->pend_len >= 2)
		input_resume(c);
}

/* ---- built-in commands ---- */

static void cmd_quit(void *opaque)
{
	struct console *c = opaque;

	power_request(&c->power, VM_STOP_QUIT);
}

static void cmd_help(void *opaque)
{
	console_help(opaque, STDERR_FILENO);
}

static bool put_line(int fd, const char *line, int n, size_t size)
{
	if (n < 0)
		return false;
	if ((size_t)n >= size)
		n = (int)size - 1; /* truncated by snprintf */
	return write(fd, line, (size_t)n) == n;
}

void console_help(const struct console *c, int fd)
{
	char line[160];
	int n;

	/* CR LF: the terminal may be in raw mode. */
	n = snprintf(line, sizeof(line), "\r\nignition console escape keys:\r\n");
	if (!put_line(fd, line, n, sizeof(line)))
		return;
	for (unsigned i = 0; i < c->esc.nr_keys; i++) {
		n = snprintf(line, sizeof(line), "  Ctrl-A %c        %s\r\n", c->esc.keys[i].key,
			     c->esc.keys[i].help);
		if (!put_line(fd, line, n, sizeof(line)))
			return;
	}
	n = snprintf(line, sizeof(line), "  Ctrl-A Ctrl-A   send Ctrl-A to the guest\r\n");
	put_line(fd, line, n, sizeof(line));
}

/* ---- life cycle ---- */

int console_create(struct evloop *ev, int in_fd, const struct console_port *port,
		   const struct power_sink *power, struct console **out)
{
	struct console *c = calloc(1, sizeof(*c));
	struct sigaction old;
	int ret;

	if (!c)
		return -ENOMEM;
	c->ev = ev;
	c->port.room_fd = -1;
	if (port && port->input)
		c->port = *port;
	c->in_fd = in_fd;
	c->kick_fd = -1;
	if (power)
		c->power = *power;
	console_esc_init(&c->esc);
	ret = console_esc_register(&c->esc, 'x', "quit the VM", cmd_quit, c);
	if (!ret)
		ret = console_esc_register(&c->esc, 'h', "print this help", cmd_help, c);
	if (ret)
		goto err_free;

	/* Guest output goes to stdout; a reader that went away must not kill the VMM. */
	if (sigaction(SIGPIPE, NULL, &old) < 0) {
		ret = -errno;
		goto err_free;
	}
	if (old.sa_handler == SIG_DFL && !(old.sa_flags & SA_SIGINFO)) {
		struct sigaction ign = { .sa_handler = SIG_IGN };

		sigemptyset(&ign.sa_mask);
		if (sigaction(SIGPIPE, &ign, NULL) < 0) {
			ret = -errno;
			goto err_free;
		}
	}

	if (in_fd >= 0 && isatty(in_fd)) {
		ret = enter_raw_mode(in_fd);
		if (ret) {
			log_warn("console: cannot put the terminal in raw mode: %s",
				 strerror(-ret));
		} else {
			c->is_tty = true;
		}
	}
	if (ev && c->port.room_fd >= 0) {
		ret = evloop_add(ev, c->port.room_fd, EPOLLIN, on_room, c);
		if (ret)
			goto err_restore;
		c->room_watched = true;
	}
	if (ev && in_fd >= 0) {
		ret = evloop_add(ev, in_fd, EPOLLIN, on_input, c);
		if (ret == -EPERM) {
			/* epoll refuses regular files and some devices; they are always readable,
			 * so an eventfd that stays signalled drives the same reads. */
			c->kick_fd = eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK);
			if (c->kick_fd < 0) {
				ret = -errno;
				goto err_room;
			}
			ret = evloop_add(ev, c->kick_fd, EPOLLIN, on_input, c);
		}
		if (ret)
			goto err_kick;
		c->in_watched = true;
	}
	*out = c;
	return 0;

err_kick:
	if (c->kick_fd >= 0)
		close(c->kick_fd);
err_room:
	if (c->room_watched)
		evloop_del(ev, c->port.room_fd);
err_restore:
	if (c->is_tty)
		console_restore();
err_free:
	free(c);
	return ret;
}

static struct console *stdin_console;

int console_init(struct evloop *ev, const struct console_port *port, const struct power_sink *power)
{
	if (stdin_console)
		return -EBUSY;
	return console_create(ev, STDIN_FILENO, port, power, &stdin_console);
}

struct console *console_stdin(void)
{
	return stdin_console;
}

void console_fini(void)
{
	console_destroy(stdin_console);
	stdin_console = NULL;
}

int console_register_key(struct console *c, uint8_t key, const char *help, void (*cb)(void *opaque),
			 void *opaque)
{
	return console_esc_register(&c->esc, key, help, cb, opaque);
}

size_t console_pending(const struct console *c)
{
	return c->pend_len;
}

uint64_t console_dropped(const struct console *c)
{
	return c->dropped;
}

bool console_input_eof(const struct console *c)
{
	return c->in_eof;
}

void console_destroy(struct console *c)
{
	if (!c)
		return;
	input_pause(c);
	if (c->room_watched)
		evloop_del(c->ev, c->port.room_fd);
	if (c->kick_fd >= 0)
		close(c->kick_fd);
	if (c->is_tty)
		console_restore();
	free(c);
}
