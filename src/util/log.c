#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static enum log_level min_level = LOG_WARN;
static int level_from_env = -1;
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

	start_ns = now_ns();
	if (!env)
		return;
	if (!strcmp(env, "debug"))
		level_from_env = LOG_DEBUG;
	else if (!strcmp(env, "info"))
		level_from_env = LOG_INFO;
	else if (!strcmp(env, "error"))
		level_from_env = LOG_ERROR;
	if (level_from_env >= 0)
		min_level = (enum log_level)level_from_env;
}

void log_set_level(enum log_level level)
{
	if (level_from_env < 0)
		min_level = level;
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

void log_msg(enum log_level level, const char *file, int line, const char *fmt, ...)
{
	static const char *const names[] = { "ERROR", "WARN", "INFO", "DEBUG" };
	char msg[1024];
	uint64_t t = now_ns() - start_ns;
	const char *base = strrchr(file, '/');
	va_list ap;

	if (level > min_level)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* One fprintf per line so lines from different threads do not interleave. */
	fprintf(stderr, "[%6llu.%06llu %s %s %s:%d] %s\n", (unsigned long long)(t / 1000000000ull),
		(unsigned long long)(t / 1000ull % 1000000ull), thread_name, names[level],
		base ? base + 1 : file, line, msg);
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
