/* Per-thread seccomp filters: each allowlist lets its thread's work through and anything else
 * ends the process with the SIGSYS message.  Filters are installed in forked children, so the
 * test process itself stays unfiltered. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/seccomp.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

/* Child exit codes for "a step that should have worked failed". */
#define BAD_INSTALL 10
#define BAD_ALLOWED 11

struct child {
	int status;
	char err[512];
};

/* Fork; the child sends stderr into a pipe, installs the `kind` filter as thread `name`, runs
 * body() and exits 0.  The parent collects stderr and the wait status. */
static void run_child(enum seccomp_thread kind, const char *name, void (*body)(void),
		      struct child *c)
{
	int p[2];
	size_t len = 0;
	ssize_t r;
	pid_t pid;

	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct seccomp_config cfg = { .slirp = true };

		close(p[0]);
		dup2(p[1], STDERR_FILENO);
		/* cmocka catches SIGSYS while a test runs: building again puts the VMM's handler
		 * back (and reads IGNITION_SECCOMP_SELFTEST as the VMM would). */
		if (seccomp_filters_built()) {
			seccomp_filters_free();
			if (seccomp_filters_build(&cfg))
				_exit(BAD_INSTALL);
		}
		if (seccomp_thread_install(kind, name))
			_exit(BAD_INSTALL);
		body();
		_exit(0);
	}
	close(p[1]);
	while ((r = read(p[0], c->err + len, sizeof(c->err) - 1 - len)) > 0)
		len += (size_t)r;
	c->err[len] = '\0';
	close(p[0]);
	assert_int_equal(waitpid(pid, &c->status, 0), pid);
}

static int exit_code(const struct child *c)
{
	return WIFEXITED(c->status) ? WEXITSTATUS(c->status) : 1000 + WTERMSIG(c->status);
}

static int setup(void **state)
{
	struct seccomp_config cfg = { .slirp = true };

	unsetenv("IGNITION_SECCOMP_SELFTEST");
	return seccomp_filters_build(&cfg) ? -1 : 0;
}

static int teardown(void **state)
{
	seccomp_filters_free();
	return 0;
}

static void test_sizes(void **state)
{
	for (int k = 0; k < SECCOMP_THREAD_KINDS; k++) {
		assert_true(seccomp_allowlist_size((enum seccomp_thread)k) > 10);
		assert_true(seccomp_filter_insns((enum seccomp_thread)k) > 10);
	}
	/* The main thread only waits and tears down; the event loop does everything. */
	assert_true(seccomp_allowlist_size(SECCOMP_THREAD_MAIN) <
		    seccomp_allowlist_size(SECCOMP_THREAD_EVLOOP));
	assert_true(seccomp_allowlist_size(SECCOMP_THREAD_VCPU) <
		    seccomp_allowlist_size(SECCOMP_THREAD_EVLOOP));
	assert_true(seccomp_allowlist_size(SECCOMP_THREAD_FUZZ) <
		    seccomp_allowlist_size(SECCOMP_THREAD_EVLOOP));
	assert_string_equal(seccomp_thread_name(SECCOMP_THREAD_VCPU), "vcpu");
	assert_string_equal(seccomp_thread_name(SECCOMP_THREAD_FUZZ), "fuzz");
	assert_true(seccomp_filters_built());
}

/* ---- what a vCPU thread does ---- */

static void make_pipe(void)
{
	int fds[2];

	if (pipe(fds) == 0) /* pipe2 is in no list */
		_exit(BAD_ALLOWED);
}

static void vcpu_work(void)
{
	struct timespec ts;
	struct termios tio;
	char *p;

	/* Log time stamps, a terminal query (isatty), an ioctl on a non-KVM fd that KVM_RUN's
	 * number lets through, memory churn. */
	if (clock_gettime(CLOCK_MONOTONIC, &ts) < 0)
		_exit(BAD_ALLOWED);
	if (tcgetattr(STDERR_FILENO, &tio) == 0 || errno != ENOTTY)
		_exit(BAD_ALLOWED);
	if (ioctl(STDERR_FILENO, KVM_RUN, 0) == 0)
		_exit(BAD_ALLOWED);
	p = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		_exit(BAD_ALLOWED);
	p[0] = 1;
	if (madvise(p, 1 << 20, MADV_DONTNEED) < 0 || munmap(p, 1 << 20) < 0)
		_exit(BAD_ALLOWED);
	if (write(STDERR_FILENO, "fine\n", 5) != 5)
		_exit(BAD_ALLOWED);
}

static void test_vcpu_allows_its_work(void **state)
{
	struct child c;

	run_child(SECCOMP_THREAD_VCPU, "vcpu0", vcpu_work, &c);
	assert_int_equal(exit_code(&c), 0);
	assert_string_equal(c.err, "fine\n");
}

static void test_vcpu_refuses_pipe(void **state)
{
	struct child c;

	run_child(SECCOMP_THREAD_VCPU, "vcpu3", make_pipe, &c);
	assert_int_equal(exit_code(&c), SECCOMP_EXIT_STATUS);
	/* glibc's pipe() is pipe2 */
	assert_non_null(strstr(c.err, "ignition: seccomp: refused system call pipe2 (293) in "
				      "thread vcpu3\n"));
}

static void vcpu_create_vm(void)
{
	/* An ioctl request the vCPU list does not hold, on any fd. */
	ioctl(STDERR_FILENO, KVM_CREATE_VM, 0);
}

static void test_vcpu_refuses_other_ioctls(void **state)
{
	struct child c;

	run_child(SECCOMP_THREAD_VCPU, "vcpu0", vcpu_create_vm, &c);
	assert_int_equal(exit_code(&c), SECCOMP_EXIT_STATUS);
	assert_non_null(strstr(c.err, "refused system call ioctl (16) in thread vcpu0"));
}

static void madvise_other(void)
{
	char *p = mmap(NULL, 1 << 21, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		_exit(BAD_ALLOWED);
	madvise(p, 1 << 21, MADV_HUGEPAGE);
}

static void test_madvise_only_dontneed(void **state)
{
	struct child c;

	run_child(SECCOMP_THREAD_EVLOOP, "evloop", madvise_other, &c);
	assert_int_equal(exit_code(&c), SECCOMP_EXIT_STATUS);
	assert_non_null(strstr(c.err, "refused system call madvise (28) in thread evloop"));
}

/* ---- the event loop ---- */

static void evloop_sockets(void)
{
	int fds[3], queued;

	fds[0] = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	fds[1] = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	fds[2] = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
	for (int i = 0; i < 3; i++)
		if (fds[i] < 0 && errno != EAFNOSUPPORT)
			_exit(BAD_ALLOWED);
	/* libslirp sizes UDP datagrams with FIONREAD (the filters here are built for slirp). */
	if (ioctl(fds[1], FIONREAD, &queued) < 0)
		_exit(BAD_ALLOWED);
	/* Netlink is no back end's business. */
	socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, 0);
}

static void test_evloop_socket_domains(void **state)
{
	struct child c;

	run_child(SECCOMP_THREAD_EVLOOP, "evloop", evloop_sockets, &c);
	assert_int_equal(exit_code(&c), SECCOMP_EXIT_STATUS);
	assert_non_null(strstr(c.err, "refused system call socket (41) in thread evloop"));
}

static void open_for_writing(void)
{
	/* Read-only opens (libslirp's resolv.conf) pass, writable ones do not. */
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		_exit(BAD_ALLOWED);
	close(fd);
	open("/dev/null", O_WRONLY | O_CLOEXEC);
}

static void test_evloop_open_read_only(void **state)
{
	struct child c;

	run_child(SECCOMP_THREAD_EVLOOP, "evloop", open_for_writing, &c);
	assert_int_equal(exit_code(&c), SECCOMP_EXIT_STATUS);
	assert_non_null(strstr(c.err, "refused system call openat (257) in thread evloop"));
}

/* What a snapshot does: create a new file exclusively and write it; also refused: the same
 * path opened again for writing without O_EXCL (an existing file is never written). */
static char excl_path[64];

static void create_exclusive(void)
{
	int fd = open(excl_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

	if (fd < 0 || write(fd, "x", 1) != 1)
		_exit(3);
	close(fd);
	_exit(0);
}

static void reopen_for_writing(void)
{
	open(excl_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
}

static void test_evloop_creates_new_files_only(void **state)
{
	struct child c;

	snprintf(excl_path, sizeof(excl_path), "/tmp/ign-seccomp-%d", (int)getpid());
	unlink(excl_path);
	run_child(SECCOMP_THREAD_EVLOOP, "evloop", create_exclusive, &c);
	assert_int_equal(exit_code(&c), 0);
	run_child(SECCOMP_THREAD_EVLOOP, "evloop", reopen_for_writing, &c);
	assert_int_equal(exit_code(&c), SECCOMP_EXIT_STATUS);
	assert_non_null(strstr(c.err, "refused system call openat (257) in thread evloop"));
	unlink(excl_path);
}

/* ---- the main thread ---- */

static void main_socket(void)
{
	socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
}

static void test_main_refuses_sockets(void **state)
{
	struct child c;

	run_child(SECCOMP_THREAD_MAIN, "main", main_socket, &c);
	assert_int_equal(exit_code(&c), SECCOMP_EXIT_STATUS);
	assert_non_null(strstr(c.err, "refused system call socket (41) in thread main"));
}

/* ---- `ignition fuzz`'s host loop ---- */

static char fuzz_path[64];

/* What the host loop does between runs: a reset's VM ioctls (on a non-KVM fd: refused by the
 * driver, not by the filter), a solution created exclusively, written, and removed (its
 * failure path), stdout sized for the summary, the stop handlers put back. */
static void fuzz_work(void)
{
	static const unsigned long reset_ioctls[] = {
		KVM_GET_DIRTY_LOG, KVM_CLEAR_DIRTY_LOG, KVM_SET_USER_MEMORY_REGION,
		KVM_SET_IRQCHIP,   KVM_SET_PIT2,	KVM_SET_CLOCK,
	};
	struct sigaction sa = { .sa_handler = SIG_DFL };
	struct stat st;
	int fd;

	for (size_t i = 0; i < sizeof(reset_ioctls) / sizeof(reset_ioctls[0]); i++)
		if (ioctl(STDERR_FILENO, reset_ioctls[i], NULL) == 0 || errno != ENOTTY)
			_exit(BAD_ALLOWED);
	fd = open(fuzz_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, "crash", 5) != 5 || close(fd) < 0 || unlink(fuzz_path) < 0)
		_exit(BAD_ALLOWED);
	if (fstat(STDOUT_FILENO, &st) < 0 || sigaction(SIGINT, &sa, NULL) < 0)
		_exit(BAD_ALLOWED);
}

static void test_fuzz_allows_its_work(void **state)
{
	struct child c;

	snprintf(fuzz_path, sizeof(fuzz_path), "/tmp/ign-seccomp-fuzz-%d", (int)getpid());
	unlink(fuzz_path);
	run_child(SECCOMP_THREAD_FUZZ, "fuzz", fuzz_work, &c);
	assert_int_equal(exit_code(&c), 0);
	assert_int_equal(access(fuzz_path, F_OK), -1);
}

static void fuzz_read_file(void)
{
	/* Seeds and the dictionary are read before the filter; jansson's /dev/urandom too. */
	open("/dev/urandom", O_RDONLY | O_CLOEXEC);
}

static void fuzz_truncate(void)
{
	/* What json_dump_file() does: an existing solution must never be rewritten. */
	open(fuzz_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
}

static void fuzz_kvm_run(void)
{
	/* The vCPU's, not the host loop's. */
	ioctl(STDERR_FILENO, KVM_RUN, 0);
}

static void fuzz_socket(void)
{
	socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
}

static void test_fuzz_refuses_the_rest(void **state)
{
	static const struct {
		void (*body)(void);
		const char *msg;
	} cases[] = {
		{ fuzz_read_file, "refused system call openat (257) in thread fuzz\n" },
		{ fuzz_truncate, "refused system call openat (257) in thread fuzz\n" },
		{ fuzz_kvm_run, "refused system call ioctl (16) in thread fuzz\n" },
		{ fuzz_socket, "refused system call socket (41) in thread fuzz\n" },
		{ make_pipe, "refused system call pipe2 (293) in thread fuzz\n" },
	};
	struct child c;

	snprintf(fuzz_path, sizeof(fuzz_path), "/tmp/ign-seccomp-fuzz-%d", (int)getpid());
	unlink(fuzz_path);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		run_child(SECCOMP_THREAD_FUZZ, "fuzz", cases[i].body, &c);
		assert_int_equal(exit_code(&c), SECCOMP_EXIT_STATUS);
		if (!strstr(c.err, cases[i].msg))
			fail_msg("case %zu: stderr '%s'", i, c.err);
	}
	assert_int_equal(access(fuzz_path, F_OK), -1);
}

/* ---- the self-test hook and --no-seccomp ---- */

static void nothing(void)
{
}

static void test_selftest_hook(void **state)
{
	struct child c;

	setenv("IGNITION_SECCOMP_SELFTEST", "1", 1);
	/* Only the event-loop thread runs it. */
	run_child(SECCOMP_THREAD_VCPU, "vcpu0", nothing, &c);
	assert_int_equal(exit_code(&c), 0);
	run_child(SECCOMP_THREAD_EVLOOP, "evloop", nothing, &c);
	unsetenv("IGNITION_SECCOMP_SELFTEST");
	assert_int_equal(exit_code(&c), SECCOMP_EXIT_STATUS);
	assert_non_null(strstr(c.err, "refused system call uselib (134) in thread evloop"));
}

static void pipe_is_fine(void)
{
	int fds[2];
	char line[64];
	FILE *f;

	if (pipe(fds) < 0)
		_exit(BAD_ALLOWED);
	/* Nothing installed: the status says mode 0. */
	f = fopen("/proc/self/status", "r");
	if (!f)
		_exit(BAD_ALLOWED);
	while (fgets(line, sizeof(line), f))
		if (!strcmp(line, "Seccomp:\t0\n"))
			_exit(0);
	_exit(BAD_ALLOWED);
}

static void test_not_built_installs_nothing(void **state)
{
	struct child c;

	seccomp_filters_free();
	assert_false(seccomp_filters_built());
	run_child(SECCOMP_THREAD_VCPU, "vcpu0", pipe_is_fine, &c);
	assert_int_equal(exit_code(&c), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_vcpu_allows_its_work),
		cmocka_unit_test(test_vcpu_refuses_pipe),
		cmocka_unit_test(test_vcpu_refuses_other_ioctls),
		cmocka_unit_test(test_madvise_only_dontneed),
		cmocka_unit_test(test_evloop_socket_domains),
		cmocka_unit_test(test_evloop_open_read_only),
		cmocka_unit_test(test_evloop_creates_new_files_only),
		cmocka_unit_test(test_main_refuses_sockets),
		cmocka_unit_test(test_fuzz_allows_its_work),
		cmocka_unit_test(test_fuzz_refuses_the_rest),
		cmocka_unit_test(test_selftest_hook),
		cmocka_unit_test(test_not_built_installs_nothing),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
