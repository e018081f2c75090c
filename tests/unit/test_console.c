/* Console: the Ctrl-A escape machine as a pure function, input through a pipe, a file and a
 * pseudo-terminal on a real event loop, back-pressure against a full port, raw mode restore.
 * The console sees no device: a fake port (a small FIFO with a room eventfd, as the UART's
 * receive side behaves) stands for it; test_machine checks the real UART wiring. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/console.h"
#include "core/evloop.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

/* ---- the pure escape machine ---- */

static int calls;

static void count_cb(void *opaque)
{
	calls++;
	(void)opaque;
}

/* Feed a string; return the guest bytes in out, the number of commands in *cmds. */
static size_t feed(struct console_esc *e, const char *in, size_t len, uint8_t *out, int *cmds)
{
	size_t n = 0;

	*cmds = 0;
	for (size_t i = 0; i < len; i++) {
		size_t k;
		const struct console_key *key = console_esc_feed(e, (uint8_t)in[i], out + n, &k);

		n += k;
		if (key) {
			(*cmds)++;
			key->cb(key->opaque);
		}
	}
	return n;
}

static void test_esc_sequences(void **state)
{
	struct console_esc e;
	uint8_t out[16];
	int cmds;

	console_esc_init(&e);
	assert_int_equal(console_esc_register(&e, 'x', "quit", count_cb, NULL), 0);
	calls = 0;
	/* Plain bytes pass through. */
	assert_int_equal(feed(&e, "ab\r", 3, out, &cmds), 3);
	assert_memory_equal(out, "ab\r", 3);
	assert_int_equal(cmds, 0);
	/* Ctrl-A x: the command, nothing to the guest. */
	assert_int_equal(feed(&e, "\x01x", 2, out, &cmds), 0);
	assert_int_equal(cmds, 1);
	assert_int_equal(calls, 1);
	/* Ctrl-A Ctrl-A: one Ctrl-A, and the machine is idle again ("x" is just x). */
	assert_int_equal(feed(&e, "\x01\x01x", 3, out, &cmds), 2);
	assert_memory_equal(out, "\x01x", 2);
	assert_int_equal(cmds, 0);
	/* Ctrl-A + a key that is no command: both bytes. */
	assert_int_equal(feed(&e, "\x01q", 2, out, &cmds), 2);
	assert_memory_equal(out, "\x01q", 2);
	/* ... including an unregistered 'h' when only x exists, and NUL. */
	assert_int_equal(feed(&e, "\x01h\x01", 3, out, &cmds), 2);
	assert_true(e.armed);
	assert_int_equal(feed(&e, "\0", 1, out, &cmds), 2);
	assert_memory_equal(out, "\x01\0", 2);
	/* Split across feeds (reads). */
	assert_int_equal(feed(&e, "a\x01", 2, out, &cmds), 1);
	assert_true(e.armed);
	assert_int_equal(feed(&e, "x", 1, out, &cmds), 0);
	assert_int_equal(cmds, 1);
	assert_false(e.armed);
	/* Case matters: X is not x. */
	assert_int_equal(feed(&e, "\x01X", 2, out, &cmds), 2);
	assert_int_equal(calls, 2);
}

static void test_esc_register(void **state)
{
	struct console_esc e;
	char key;

	console_esc_init(&e);
	assert_int_equal(console_esc_register(&e, 0x01, "no", count_cb, NULL), -EINVAL);
	assert_int_equal(console_esc_register(&e, 'b', "no cb", NULL, NULL), -EINVAL);
	assert_int_equal(console_esc_register(&e, 'b', "balloon", count_cb, NULL), 0);
	assert_int_equal(console_esc_register(&e, 'b', "again", count_cb, NULL), -EEXIST);
	for (key = 'c'; e.nr_keys < CONSOLE_MAX_KEYS; key++)
		assert_int_equal(console_esc_register(&e, (uint8_t)key, NULL, count_cb, NULL), 0);
	assert_int_equal(console_esc_register(&e, (uint8_t)key, "full", count_cb, NULL), -ENOSPC);
}

/* ---- console objects ---- */

struct sink {
	int n;
	enum vm_stop_reason last;
	struct evloop *ev; /* stop the loop on a request */
};

static void sink_request(void *ctx, enum vm_stop_reason reason)
{
	struct sink *s = ctx;

	s->n++;
	s->last = reason;
	if (s->ev)
		evloop_stop(s->ev);
}

/* ---- the fake port: a FIFO the "guest" drains, with a room eventfd ---- */

#define FAKE_FIFO 64

struct fake_port {
	pthread_mutex_t lock; /* input() on the loop thread, guest_read() on the test thread */
	uint8_t fifo[FAKE_FIFO];
	size_t head, count;
	bool want_room; /* an input() came up short since the last room signal */
	int room_fd;
	unsigned calls;
	struct console_port port;
};

static size_t fake_input(void *opaque, const uint8_t *buf, size_t len)
{
	struct fake_port *f = opaque;
	size_t n = 0;

	pthread_mutex_lock(&f->lock);
	f->calls++;
	for (; n < len && f->count < FAKE_FIFO; n++, f->count++)
		f->fifo[(f->head + f->count) % FAKE_FIFO] = buf[n];
	if (n < len)
		f->want_room = true;
	pthread_mutex_unlock(&f->lock);
	return n;
}

/* room_fd -1: a port that never signals room. */
static struct fake_port *fake_new(bool room)
{
	struct fake_port *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	pthread_mutex_init(&f->lock, NULL);
	f->room_fd = room ? eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK) : -1;
	assert_true(!room || f->room_fd >= 0);
	f->port = (struct console_port){ .input = fake_input, .room_fd = f->room_fd, .opaque = f };
	return f;
}

static void fake_free(struct fake_port *f)
{
	if (f->room_fd >= 0)
		close(f->room_fd);
	pthread_mutex_destroy(&f->lock);
	free(f);
}

static size_t fake_pending(struct fake_port *f)
{
	size_t n;

	pthread_mutex_lock(&f->lock);
	n = f->count;
	pthread_mutex_unlock(&f->lock);
	return n;
}

/* Read what the guest would see, as a driver draining the FIFO; room is signalled once a
 * short input() is waiting. */
static size_t guest_read(struct fake_port *f, uint8_t *buf, size_t max)
{
	size_t n = 0;

	pthread_mutex_lock(&f->lock);
	for (; n < max && f->count; n++, f->count--) {
		buf[n] = f->fifo[f->head];
		f->head = (f->head + 1) % FAKE_FIFO;
	}
	if (n && f->want_room && f->room_fd >= 0) {
		uint64_t one = 1;

		f->want_room = false;
		if (write(f->room_fd, &one, sizeof(one)) != sizeof(one))
			abort();
	}
	pthread_mutex_unlock(&f->lock);
	return n;
}

static void test_console_input_keys(void **state)
{
	struct sink sk = { 0 };
	struct power_sink ps = { .request = sink_request, .ctx = &sk };
	struct console *c;
	struct fake_port *u;
	uint8_t buf[64];
	int err[2], saved;
	char help[1024];
	ssize_t n;

	u = fake_new(true);
	assert_int_equal(console_create(NULL, -1, &u->port, &ps, &c), 0);
	calls = 0;
	assert_int_equal(console_register_key(c, 'b', "inflate balloon", count_cb, NULL), 0);
	assert_int_equal(console_register_key(c, 'x', "dup", count_cb, NULL), -EEXIST);
	console_input(c, (const uint8_t *)"hi\x01", 3);
	console_input(c, (const uint8_t *)"b\x01\x01!", 4);
	assert_int_equal(calls, 1);
	assert_int_equal(sk.n, 0);
	assert_int_equal(guest_read(u, buf, sizeof(buf)), 4);
	assert_memory_equal(buf, "hi\x01!", 4);
	/* Ctrl-A h prints the list to stderr (captured through a pipe). */
	assert_int_equal(pipe(err), 0);
	saved = dup(STDERR_FILENO);
	dup2(err[1], STDERR_FILENO);
	console_input(c, (const uint8_t *)"\x01h", 2);
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(err[1]);
	n = read(err[0], help, sizeof(help) - 1);
	close(err[0]);
	assert_true(n > 0);
	help[n] = '\0';
	assert_non_null(strstr(help, "Ctrl-A x"));
	assert_non_null(strstr(help, "Ctrl-A h"));
	assert_non_null(strstr(help, "Ctrl-A b        inflate balloon"));
	assert_non_null(strstr(help, "Ctrl-A Ctrl-A"));
	assert_int_equal(guest_read(u, buf, sizeof(buf)), 0);
	/* Ctrl-A x quits. */
	console_input(c, (const uint8_t *)"\x01x", 2);
	assert_int_equal(sk.n, 1);
	assert_int_equal(sk.last, VM_STOP_QUIT);
	console_destroy(c);
	fake_free(u);
}

/* The process-wide stdin console main uses (stdin swapped for a pipe here). */
static void test_console_init_stdin(void **state)
{
	struct sink sk = { 0 };
	struct power_sink ps = { .request = sink_request, .ctx = &sk };
	struct fake_port *u;
	uint8_t buf[8];
	int p[2], saved = dup(STDIN_FILENO);

	assert_true(saved >= 0);
	assert_int_equal(pipe(p), 0);
	dup2(p[0], STDIN_FILENO);
	u = fake_new(true);
	assert_null(console_stdin());
	assert_int_equal(console_init(NULL, &u->port, &ps), 0);
	assert_non_null(console_stdin());
	assert_int_equal(console_init(NULL, &u->port, &ps), -EBUSY);
	console_input(console_stdin(), (const uint8_t *)"ok\x01x", 4);
	assert_int_equal(sk.last, VM_STOP_QUIT);
	assert_int_equal(guest_read(u, buf, sizeof(buf)), 2);
	console_fini();
	assert_null(console_stdin());
	console_fini(); /* no-op */
	dup2(saved, STDIN_FILENO);
	close(saved);
	close(p[0]);
	close(p[1]);
	fake_free(u);
}

static void on_timeout(void *opaque, uint32_t events)
{
	evloop_stop(opaque);
}

/* Arm a one-shot timer that stops the loop after ms (a safety net for every loop test). */
static int add_timeout(struct evloop *ev, int ms)
{
	struct itimerspec its = { .it_value = { .tv_sec = ms / 1000,
						.tv_nsec = (ms % 1000) * 1000000l } };
	int fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(timerfd_settime(fd, 0, &its, NULL), 0);
	assert_int_equal(evloop_add(ev, fd, EPOLLIN, on_timeout, ev), 0);
	return fd;
}

static void test_pipe_escape_quits(void **state)
{
	struct evloop ev;
	struct sink sk = { .ev = &ev };
	struct power_sink ps = { .request = sink_request, .ctx = &sk };
	struct console *c;
	struct fake_port *u;
	uint8_t buf[64];
	int p[2], t;

	assert_int_equal(evloop_init(&ev), 0);
	u = fake_new(true);
	assert_int_equal(pipe(p), 0);
	assert_int_equal(write(p[1], "hello\x01", 6), 6);
	assert_int_equal(write(p[1], "x", 1), 1);
	assert_int_equal(console_create(&ev, p[0], &u->port, &ps, &c), 0);
	t = add_timeout(&ev, 5000);
	assert_int_equal(evloop_run(&ev), 0);
	assert_int_equal(sk.n, 1);
	assert_int_equal(sk.last, VM_STOP_QUIT);
	assert_int_equal(guest_read(u, buf, sizeof(buf)), 5);
	assert_memory_equal(buf, "hello", 5);
	console_destroy(c);
	evloop_del(&ev, t);
	close(t);
	close(p[0]);
	close(p[1]);
	fake_free(u);
	evloop_destroy(&ev);
}

static void test_pipe_eof_keeps_running(void **state)
{
	struct evloop ev;
	struct sink sk = { .ev = &ev };
	struct power_sink ps = { .request = sink_request, .ctx = &sk };
	struct console *c;
	struct fake_port *u;
	uint8_t buf[64];
	int p[2], t;

	assert_int_equal(evloop_init(&ev), 0);
	u = fake_new(true);
	assert_int_equal(pipe(p), 0);
	assert_int_equal(write(p[1], "abc", 3), 3);
	close(p[1]);
	assert_int_equal(console_create(&ev, p[0], &u->port, &ps, &c), 0);
	t = add_timeout(&ev, 200); /* only the timer ends this loop */
	assert_int_equal(evloop_run(&ev), 0);
	assert_int_equal(sk.n, 0);
	assert_true(console_input_eof(c));
	assert_int_equal(guest_read(u, buf, sizeof(buf)), 3);
	assert_memory_equal(buf, "abc", 3);
	console_destroy(c);
	evloop_del(&ev, t);
	close(t);
	close(p[0]);
	fake_free(u);
	evloop_destroy(&ev);
}

/* stdin redirected from a file (epoll refuses regular files). */
static void test_file_input(void **state)
{
	struct evloop ev;
	struct sink sk = { .ev = &ev };
	struct power_sink ps = { .request = sink_request, .ctx = &sk };
	struct console *c;
	struct fake_port *u;
	uint8_t buf[64];
	FILE *fp = tmpfile();
	int t;

	assert_non_null(fp);
	assert_int_equal(fwrite("file\x01x", 1, 6, fp), 6);
	fflush(fp);
	rewind(fp);
	assert_int_equal(evloop_init(&ev), 0);
	u = fake_new(true);
	assert_int_equal(console_create(&ev, fileno(fp), &u->port, &ps, &c), 0);
	t = add_timeout(&ev, 5000);
	assert_int_equal(evloop_run(&ev), 0);
	assert_int_equal(sk.n, 1);
	assert_int_equal(guest_read(u, buf, sizeof(buf)), 4);
	assert_memory_equal(buf, "file", 4);
	console_destroy(c);
	evloop_del(&ev, t);
	close(t);
	fclose(fp);
	fake_free(u);
	evloop_destroy(&ev);
}

static void *loop_thread(void *arg)
{
	return (void *)(intptr_t)evloop_run(arg);
}

/* 20000 bytes through a pipe into a 64-byte FIFO: the console pauses and resumes on the
 * port's room signal; nothing is lost or reordered. */
static void test_pipe_backpressure(void **state)
{
	enum { N = 20000 };
	struct evloop ev;
	struct power_sink ps = { 0 };
	struct console *c;
	struct fake_port *u;
	static uint8_t data[N];
	pthread_t th;
	int p[2], got = 0, spins = 0;
	void *ret;

	for (int i = 0; i < N; i++) {
		data[i] = (uint8_t)(i % 251);
		if (data[i] == CONSOLE_ESC_CHAR)
			data[i] = 'A';
	}
	assert_int_equal(evloop_init(&ev), 0);
	u = fake_new(true);
	assert_int_equal(pipe(p), 0);
	assert_int_equal(fcntl(p[1], F_SETPIPE_SZ, 65536) >= N, 1);
	assert_int_equal(write(p[1], data, N), N);
	assert_int_equal(console_create(&ev, p[0], &u->port, &ps, &c), 0);
	assert_int_equal(pthread_create(&th, NULL, loop_thread, &ev), 0);
	/* The "vCPU": read the port like a polling driver. */
	while (got < N && spins < 50000000) {
		uint8_t b;

		if (guest_read(u, &b, 1)) {
			if (b != data[got])
				fail_msg("byte %d: got %u, want %u", got, b, data[got]);
			got++;
		} else {
			spins++;
		}
	}
	evloop_stop(&ev);
	pthread_join(th, &ret);
	assert_int_equal(got, N);
	assert_int_equal(console_dropped(c), 0);
	assert_int_equal(console_pending(c), 0);
	console_destroy(c);
	close(p[0]);
	close(p[1]);
	fake_free(u);
	evloop_destroy(&ev);
}

/* A port without a room signal is retried on the next input; without a port, bytes wait. */
static void test_port_without_room_fd(void **state)
{
	struct evloop ev;
	struct power_sink ps = { 0 };
	struct fake_port *u = fake_new(false);
	struct console *c, *none;
	uint8_t in[100], buf[128];

	memset(in, 'a', sizeof(in));
	assert_int_equal(evloop_init(&ev), 0);
	assert_int_equal(console_create(&ev, -1, &u->port, &ps, &c), 0);
	console_input(c, in, sizeof(in));
	assert_int_equal(fake_pending(u), FAKE_FIFO);
	assert_int_equal(console_pending(c), sizeof(in) - FAKE_FIFO);
	assert_int_equal(guest_read(u, buf, sizeof(buf)), FAKE_FIFO);
	assert_int_equal(console_pending(c), sizeof(in) - FAKE_FIFO);
	console_input(c, (const uint8_t *)"b", 1);
	assert_int_equal(console_pending(c), 0);
	assert_int_equal(guest_read(u, buf, sizeof(buf)), sizeof(in) - FAKE_FIFO + 1);
	assert_int_equal(buf[sizeof(in) - FAKE_FIFO], 'b');
	assert_int_equal(console_dropped(c), 0);
	console_destroy(c);

	assert_int_equal(console_create(&ev, -1, NULL, &ps, &none), 0);
	console_input(none, (const uint8_t *)"abc", 3);
	assert_int_equal(console_pending(none), 3);
	console_destroy(none);
	fake_free(u);
	evloop_destroy(&ev);
}

static void test_tty_raw_mode(void **state)
{
	struct power_sink ps = { 0 };
	struct termios before, during, after;
	struct console *c;
	int master, slave;

	if (openpty(&master, &slave, NULL, NULL, NULL) < 0)
		skip();
	assert_int_equal(tcgetattr(slave, &before), 0);
	assert_true(before.c_lflag & ICANON);
	assert_int_equal(console_create(NULL, slave, NULL, &ps, &c), 0);
	assert_int_equal(tcgetattr(slave, &during), 0);
	assert_false(during.c_lflag & (ICANON | ECHO | ISIG));
	assert_int_equal(during.c_oflag, before.c_oflag); /* output processing kept */
	console_restore();
	console_restore(); /* idempotent */
	assert_int_equal(tcgetattr(slave, &after), 0);
	assert_int_equal(after.c_lflag, before.c_lflag);
	assert_int_equal(after.c_iflag, before.c_iflag);
	console_destroy(c); /* restores nothing more */
	assert_int_equal(tcgetattr(slave, &after), 0);
	assert_int_equal(after.c_lflag, before.c_lflag);
	close(slave);
	close(master);
}

/* A fatal signal restores the terminal before the process dies of it. */
static void test_tty_signal_restore(void **state)
{
	struct termios before, after;
	int master, slave, status;
	pid_t pid;

	if (openpty(&master, &slave, NULL, NULL, NULL) < 0)
		skip();
	assert_int_equal(tcgetattr(slave, &before), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct power_sink ps = { 0 };
		struct console *c;

		if (console_create(NULL, slave, NULL, &ps, &c))
			_exit(2);
		raise(SIGTERM);
		_exit(3); /* not reached */
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGTERM);
	assert_int_equal(tcgetattr(slave, &after), 0);
	assert_int_equal(after.c_lflag, before.c_lflag);
	close(slave);
	close(master);
}

/* A normal exit() restores it through atexit. */
static void test_tty_exit_restore(void **state)
{
	struct termios before, after;
	int master, slave, status;
	pid_t pid;

	if (openpty(&master, &slave, NULL, NULL, NULL) < 0)
		skip();
	assert_int_equal(tcgetattr(slave, &before), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct power_sink ps = { 0 };
		struct console *c;
		struct termios raw;

		if (console_create(NULL, slave, NULL, &ps, &c))
			_exit(2);
		if (tcgetattr(slave, &raw) || (raw.c_lflag & ICANON))
			_exit(4);
		exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(tcgetattr(slave, &after), 0);
	assert_int_equal(after.c_lflag, before.c_lflag);
	close(slave);
	close(master);
}

/* Terminal input that the guest does not read: bytes beyond the buffer are dropped, but
 * Ctrl-A x still gets through. */
static void test_tty_overflow_escape(void **state)
{
	struct evloop ev;
	struct sink sk = { .ev = &ev };
	struct power_sink ps = { .request = sink_request, .ctx = &sk };
	struct console *c;
	struct fake_port *u;
	static uint8_t junk[CONSOLE_PENDING + 1000];
	int master, slave, t;
	size_t off = 0;

	if (openpty(&master, &slave, NULL, NULL, NULL) < 0)
		skip();
	assert_int_equal(evloop_init(&ev), 0);
	u = fake_new(true);
	assert_int_equal(console_create(&ev, slave, &u->port, &ps, &c), 0);
	memset(junk, 'z', sizeof(junk));
	t = add_timeout(&ev, 5000);
	/* Feed through the pty master in chunks the pty buffer takes, running the loop. */
	assert_int_equal(fcntl(master, F_SETFL, O_NONBLOCK), 0);
	while (off < sizeof(junk)) {
		ssize_t n = write(master, junk + off,
				  sizeof(junk) - off > 512 ? 512 : sizeof(junk) - off);

		if (n > 0)
			off += (size_t)n;
		/* One pass of the loop: the timer is far away, so stop it right after. */
		{
			struct itimerspec quick = { .it_value = { .tv_nsec = 2000000 } };
			int q = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);

			assert_int_equal(timerfd_settime(q, 0, &quick, NULL), 0);
			assert_int_equal(evloop_add(&ev, q, EPOLLIN, on_timeout, &ev), 0);
			ev.stopping = false;
			evloop_run(&ev);
			evloop_del(&ev, q);
			close(q);
			{
				uint64_t v;
				ssize_t r = read(ev.stop_fd, &v, sizeof(v));

				(void)r;
			}
		}
	}
	assert_int_equal(write(master, "\x01x", 2), 2);
	ev.stopping = false;
	assert_int_equal(evloop_run(&ev), 0);
	assert_int_equal(sk.n, 1);
	assert_int_equal(sk.last, VM_STOP_QUIT);
	assert_int_equal(console_pending(c), CONSOLE_PENDING);
	assert_true(console_dropped(c) > 0);
	assert_int_equal(fake_pending(u), FAKE_FIFO);
	console_destroy(c);
	evloop_del(&ev, t);
	close(t);
	close(slave);
	close(master);
	fake_free(u);
	evloop_destroy(&ev);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_esc_sequences),
		cmocka_unit_test(test_esc_register),
		cmocka_unit_test(test_console_input_keys),
		cmocka_unit_test(test_console_init_stdin),
		cmocka_unit_test(test_pipe_escape_quits),
		cmocka_unit_test(test_pipe_eof_keeps_running),
		cmocka_unit_test(test_file_input),
		cmocka_unit_test(test_pipe_backpressure),
		cmocka_unit_test(test_port_without_room_fd),
		cmocka_unit_test(test_tty_raw_mode),
		cmocka_unit_test(test_tty_signal_restore),
		cmocka_unit_test(test_tty_exit_restore),
		cmocka_unit_test(test_tty_overflow_escape),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
