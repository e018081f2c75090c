#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static enum log_level min_level = LOG_WARN;
static bool level_from_env;
static bool show_level = true, show_origin = true;
/* The log file (-1: stderr); set once by log_open, read by every thread. */
static int log_fd = -1;
static uint64_t missed_lines, failed_lines;
static __thread char thread_name[16] = "vmm";
static uint64_t start_ns;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Runs before main() so "uptime" really is time since VMM start (boot-timer uses it). */
__attribute__((constructor)) static void log_init(void)
{
	const char *env = getenv("IGNITION_LOG");
	enum log_level l;

	start_ns = now_ns();
	if (env && log_level_parse(env, &l) == 0) {
		min_level = l;
		level_from_env = true;
	}
}

void log_set_level(enum log_level level)
{
	if (!level_from_env)
		__atomic_store_n(&min_level, level, __ATOMIC_RELAXED);
}

int log_level_parse(const char *s, enum log_level *out)
{
	static const struct {
		const char *name;
		enum log_level level;
	} names[] = {
		{ "error", LOG_ERROR }, { "warning", LOG_WARN }, { "warn", LOG_WARN },
		{ "info", LOG_INFO },	{ "debug", LOG_DEBUG },	 { "trace", LOG_TRACE },
		{ "off", LOG_OFF },
	};

	for (size_t i = 0; s && i < sizeof(names) / sizeof(names[0]); i++) {
		if (!strcasecmp(s, names[i].name)) {
			*out = names[i].level;
			return 0;
		}
	}
	return -EINVAL;
}

int log_open(const char *path, char *err, size_t n)
{
	int fd, ret;

	if (__atomic_load_n(&log_fd, __ATOMIC_ACQUIRE) >= 0)
		return err_set(-EALREADY, err, n, "the log already goes to a file");
	/* O_NONBLOCK: a FIFO without a reader fails at once (ENXIO), and a slow reader makes
	 * lines drop rather than stall the thread that logs (a vCPU, the event loop). */
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NONBLOCK | O_CLOEXEC, 0600);
	if (fd < 0) {
		ret = -errno;
		if (ret == -ENXIO)
			return err_set(ret, err, n,
				       "log FIFO '%s' has no reader: start its reader first", path);
		return err_set(ret, err, n, "log file '%s': %s", path, strerror(-ret));
	}
	/* A FIFO whose reader goes away must cost lines, not the process: EPIPE, not SIGPIPE. */
	{
		struct sigaction old, ign = { .sa_handler = SIG_IGN };
		struct stat st;

		if (fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode) &&
		    sigaction(SIGPIPE, NULL, &old) == 0 && old.sa_handler == SIG_DFL)
			sigaction(SIGPIPE, &ign, NULL);
	}
	/* Once only: a file swapped under a thread that is writing could see its fd reused. */
	int none = -1;

	if (!__atomic_compare_exchange_n(&log_fd, &none, fd, false, __ATOMIC_RELEASE,
					 __ATOMIC_RELAXED)) {
		close(fd);
		return err_set(-EALREADY, err, n, "the log already goes to a file");
	}
	return 0;
}

void log_set_options(bool level, bool origin)
{
	__atomic_store_n(&show_level, level, __ATOMIC_RELAXED);
	__atomic_store_n(&show_origin, origin, __ATOMIC_RELAXED);
}

uint64_t log_take_missed(void)
{
	return __atomic_exchange_n(&missed_lines, 0, __ATOMIC_RELAXED);
}

uint64_t log_take_failed(void)
{
	return __atomic_exchange_n(&failed_lines, 0, __ATOMIC_RELAXED);
}

void log_set_thread(const char *name)
{
	snprintf(thread_name, sizeof(thread_name), "%s", name);
}

uint64_t log_uptime_ms(void)
{
	return (now_ns() - start_ns) / 1000000ull;
}

uint64_t log_uptime_us(void)
{
	return (now_ns() - start_ns) / 1000ull;
}

int log_ratelimit(uint64_t *state, unsigned burst)
{
	/* state: high 32 bits = second, low 32 bits = lines in that second.  Racy by design:
	 * an occasional extra line is harmless. */
	uint64_t sec = now_ns() / 1000000000ull;
	uint64_t s = __atomic_load_n(state, __ATOMIC_RELAXED);

	if ((s >> 32) != (sec & 0xffffffffu))
		s = (sec & 0xffffffffu) << 32;
	if ((s & 0xffffffffu) >= burst)
		return 0;
	__atomic_store_n(state, s + 1, __ATOMIC_RELAXED);
	return 1;
}

/* The time stamp: monotonic seconds on stderr, wall-clock ISO-8601 UTC in a file. */
static int stamp(char *buf, size_t size, bool to_file)
{
	uint64_t t = now_ns() - start_ns;
	struct timespec ts;
	struct tm tm;
	size_t k;

	if (!to_file)
		return snprintf(buf, size, "%6llu.%06llu", (unsigned long long)(t / 1000000000ull),
				(unsigned long long)(t / 1000ull % 1000000ull));
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	k = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
	return k ? (int)k + snprintf(buf + k, size - k, ".%06ldZ", ts.tv_nsec / 1000l) : -1;
}

void log_msg(enum log_level level, const char *file, int line, const char *fmt, ...)
{
	static const char *const names[] = { "ERROR", "WARN", "INFO", "DEBUG", "TRACE" };
	int fd = __atomic_load_n(&log_fd, __ATOMIC_ACQUIRE);
	char msg[1024], ts[48], out[1280], origin[128] = "";
	const char *base = strrchr(file, '/');
	va_list ap;
	bool lvl = __atomic_load_n(&show_level, __ATOMIC_RELAXED);
	int len;
	ssize_t w;

	if (level < LOG_ERROR || level > LOG_TRACE ||
	    level > __atomic_load_n(&min_level, __ATOMIC_RELAXED))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (stamp(ts, sizeof(ts), fd >= 0) < 0)
		ts[0] = '\0';
	if (__atomic_load_n(&show_origin, __ATOMIC_RELAXED))
		snprintf(origin, sizeof(origin), " %s:%d", base ? base + 1 : file, line);
	len = snprintf(out, sizeof(out), "[%s %s%s%s%s] %s\n", ts, thread_name, lvl ? " " : "",
		       lvl ? names[level] : "", origin, msg);
	if (len < 0)
		return;
	if ((size_t)len >= sizeof(out)) {
		len = sizeof(out) - 1;
		out[len - 1] = '\n';
	}
	if (fd < 0) {
		/* One fwrite per line so lines from different threads do not interleave. */
		fwrite(out, 1, (size_t)len, stderr);
		return;
	}
	/* One write() per line: O_APPEND keeps lines from different threads whole. */
	w = write(fd, out, (size_t)len);
	if (w < 0 && (errno == EAGAIN || errno == EPIPE))
		__atomic_fetch_add(&missed_lines, 1, __ATOMIC_RELAXED);
	else if (w != len)
		__atomic_fetch_add(&failed_lines, 1, __ATOMIC_RELAXED);
}

int err_set(int ret, char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;

	if (buf && size) {
		va_start(ap, fmt);
		vsnprintf(buf, size, fmt, ap);
		va_end(ap);
	}
	return ret;
}
