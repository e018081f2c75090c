/* The logger (util/log.c): Firecracker's level names, log_open to a file or FIFO, the line
 * format (default, and without level / origin), and lines dropped for a FIFO that is full.
 * log_open is once per process, so the tests run in order: the failures first. */
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

static char dir[] = "/tmp/ignition-log-XXXXXX";
static char file_path[64];

static void test_level_parse(void **state)
{
	static const struct {
		const char *s;
		enum log_level l;
	} ok[] = {
		{ "Error", LOG_ERROR },	 { "error", LOG_ERROR }, { "WARNING", LOG_WARN },
		{ "Warning", LOG_WARN }, { "warn", LOG_WARN },	 { "Info", LOG_INFO },
		{ "debug", LOG_DEBUG },	 { "Trace", LOG_TRACE }, { "Off", LOG_OFF },
		{ "oFF", LOG_OFF },
	};
	static const char *const bad[] = { "", "verbose", "errors", "Info ", "0", "warnin" };
	enum log_level l;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		l = LOG_ERROR;
		assert_int_equal(log_level_parse(ok[i].s, &l), 0);
		assert_int_equal(l, ok[i].l);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		l = LOG_DEBUG;
		assert_int_equal(log_level_parse(bad[i], &l), -EINVAL);
		assert_int_equal(l, LOG_DEBUG); /* untouched */
	}
	assert_int_equal(log_level_parse(NULL, &l), -EINVAL);
}

static void test_open_errors(void **state)
{
	char path[80], err[256] = "";

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/fifo", dir);
	assert_int_equal(mkfifo(path, 0600), 0);
	assert_int_equal(log_open(path, err, sizeof(err)), -ENXIO);
	assert_non_null(strstr(err, "no reader"));
	unlink(path);
	snprintf(path, sizeof(path), "%s/no/such/dir", dir);
	assert_int_equal(log_open(path, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, path));
}

/* Lines of `path` matching the extended regex `re`. */
static int count_matching(const char *path, const char *re)
{
	char line[2048];
	regex_t rx;
	int n = 0;
	FILE *f = fopen(path, "r");

	assert_non_null(f);
	assert_int_equal(regcomp(&rx, re, REG_EXTENDED | REG_NOSUB), 0);
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		n += regexec(&rx, line, 0, NULL, 0) == 0;
	}
	regfree(&rx);
	fclose(f);
	return n;
}

/* A FIFO whose reader does not keep up: logging never blocks, lines that find no room are
 * dropped and counted, and those written are whole.  In a child: log_open is once only. */
static void test_fifo_full(void **state)
{
	char path[80], buf[65536];
	int rd, status;
	pid_t pid;
	ssize_t n;

	snprintf(path, sizeof(path), "%s/logfifo", dir);
	assert_int_equal(mkfifo(path, 0600), 0);
	rd = open(path, O_RDONLY | O_NONBLOCK);
	assert_true(rd >= 0);
	assert_true(fcntl(rd, F_SETPIPE_SZ, 4096) >= 4096);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char err[256];

		if (log_open(path, err, sizeof(err)))
			_exit(2);
		for (int i = 0; i < 200; i++)
			log_error("line %d of a log nobody reads fast enough", i);
		_exit(log_take_missed() > 0 && log_take_failed() == 0 ? 0 : 3);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	n = read(rd, buf, sizeof(buf) - 1);
	assert_true(n > 0 && n <= 4096);
	assert_int_equal(buf[n - 1], '\n'); /* whole lines only */
	buf[n] = '\0';
	assert_non_null(strstr(buf, "line 0 of a log"));
	close(rd);
	unlink(path);
}

static void test_file(void **state)
{
	char err[256];
	struct stat st;

	snprintf(file_path, sizeof(file_path), "%s/ignition.log", dir);
	log_set_level(LOG_INFO);
	assert_int_equal(log_open(file_path, err, sizeof(err)), 0);
	assert_int_equal(log_open(file_path, err, sizeof(err)), -EALREADY);
	assert_int_equal(stat(file_path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	log_info("hello %d", 42);
	log_debug("not shown at Info");
	/* Wall-clock ISO-8601 UTC, thread, level, origin: the default prefix. */
	assert_int_equal(count_matching(file_path,
					"^\\[[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"
					"\\.[0-9]{6}Z vmm INFO test_log\\.c:[0-9]+\\] hello 42$"),
			 1);
	assert_int_equal(count_matching(file_path, "not shown"), 0);
	log_set_options(false, false);
	log_set_thread("api");
	log_warn("bare");
	assert_int_equal(count_matching(file_path, "^\\[[0-9T:.Z-]+ api\\] bare$"), 1);
	log_set_options(true, false);
	log_error("no origin");
	assert_int_equal(count_matching(file_path, "^\\[[0-9T:.Z-]+ api ERROR\\] no origin$"), 1);
	log_set_options(true, true);
	log_set_level(LOG_TRACE);
	log_trace("tracing");
	assert_int_equal(count_matching(file_path, " api TRACE test_log\\.c:[0-9]+\\] tracing$"),
			 1);
	log_set_level(LOG_OFF);
	log_error("silence");
	assert_int_equal(count_matching(file_path, "silence"), 0);
	log_set_level(LOG_WARN);
	assert_int_equal(log_take_missed(), 0);
	assert_int_equal(log_take_failed(), 0);
	unlink(file_path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_level_parse),
		cmocka_unit_test(test_open_errors),
		cmocka_unit_test(test_fifo_full),
		cmocka_unit_test(test_file),
	};

	/* The tests set the level themselves: IGNITION_LOG would override log_set_level. */
	if (getenv("IGNITION_LOG")) {
		fputs("test_log: unset IGNITION_LOG to run these tests\n", stderr);
		return 1;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
