/* Logging: time, thread name, level, file:line, message — to stderr (the guest console owns
 * stdout) or, after log_open(), to a file or FIFO.  On stderr the time is monotonic seconds
 * since start; in a file it is wall-clock ISO-8601 UTC, so lines line up with other logs. */
#ifndef IGNITION_UTIL_LOG_H
#define IGNITION_UTIL_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* LOG_OFF prints nothing; LOG_TRACE is Firecracker's most verbose level. */
enum log_level { LOG_OFF = -1, LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG, LOG_TRACE };

/* Set the minimum level printed (default LOG_WARN; IGNITION_LOG=debug|info overrides). */
void log_set_level(enum log_level level);
/* Firecracker's level names (Error, Warning, Info, Debug, Trace, Off; any case; "warn" too)
 * into *out.  0, or -EINVAL for anything else. */
int log_level_parse(const char *s, enum log_level *out) __attribute__((warn_unused_result));
/* Send log lines to `path` (appended to, created 0600; a FIFO must have a reader: ENXIO
 * otherwise) instead of stderr, from now on.  Once only (-EALREADY).  A line the file or FIFO
 * cannot take at once is dropped and counted (log_take_missed), never waited for.  0 or
 * -errno with a one-line reason in err[n]. */
int log_open(const char *path, char *err, size_t n) __attribute__((warn_unused_result));
/* Which parts of the prefix to print (both shown by default): the level name, and the
 * origin file:line. */
void log_set_options(bool show_level, bool show_origin);
/* Lines dropped because the log file or FIFO could not take them (missed) and lines whose
 * write failed otherwise, since the last call (metrics' "logger" section). */
uint64_t log_take_missed(void);
uint64_t log_take_failed(void);
/* Name the calling thread in log lines ("vmm", "vcpu0", "evloop"). */
void log_set_thread(const char *name);
/* Write one log line; use the macros below instead. */
void log_msg(enum log_level level, const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* True when this call site may log now: at most `burst` lines per second per site. */
int log_ratelimit(uint64_t *state, unsigned burst);
/* Milliseconds since the process started (CLOCK_MONOTONIC). */
uint64_t log_uptime_ms(void);
/* Write a one-line reason into buf[size] (printf-style) and return `ret`: how functions below
 * main report an error that main prints ("ignition: error: ..."). */
int err_set(int ret, char *buf, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* The same in microseconds (restore timelines, benchmarks). */
uint64_t log_uptime_us(void);

#define log_error(...) log_msg(LOG_ERROR, __FILE__, __LINE__, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __FILE__, __LINE__, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __FILE__, __LINE__, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __FILE__, __LINE__, __VA_ARGS__)
#define log_trace(...) log_msg(LOG_TRACE, __FILE__, __LINE__, __VA_ARGS__)

/* Guest-triggered problems: rate-limited so a hostile guest cannot flood the log. */
#define log_guest(...)                                                      \
	do {                                                                \
		static uint64_t rl_state_;                                  \
		if (log_ratelimit(&rl_state_, 10))                          \
			log_msg(LOG_WARN, __FILE__, __LINE__, __VA_ARGS__); \
	} while (0)

#endif
