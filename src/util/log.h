/* Logging: monotonic time, thread name, level, file:line, message — always to stderr
 * (the guest console owns stdout). */
#ifndef IGNITION_UTIL_LOG_H
#define IGNITION_UTIL_LOG_H

#include <stddef.h>
#include <stdint.h>

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* Set the minimum level printed (default LOG_WARN; IGNITION_LOG=debug|info overrides). */
void log_set_level(enum log_level level);
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

/* Guest-triggered problems: rate-limited so a hostile guest cannot flood the log. */
#define log_guest(...)                                                      \
	do {                                                                \
		static uint64_t rl_state_;                                  \
		if (log_ratelimit(&rl_state_, 10))                          \
			log_msg(LOG_WARN, __FILE__, __LINE__, __VA_ARGS__); \
	} while (0)

#endif
