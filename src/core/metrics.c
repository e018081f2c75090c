/* Metrics in Firecracker's style (docs/metrics.md): process-global counters bumped with relaxed
 * atomics where the work happens, written as one JSON object on one line per flush.
 *
 * Counters are deltas: a flush takes each one back to zero with an atomic exchange, so no
 * increment is ever lost or counted twice, whichever thread makes it.  Values that are not
 * counts (latencies, the time stamp) are reported as they stand.
 *
 * A flush never blocks the VM: the destination is opened O_NONBLOCK.  When a FIFO's reader is
 * so slow that a line finds no room at all, the line is dropped and counted
 * (logger.missed_metrics_count); when it finds room for part of it, the rest is written first
 * thing at the next flush, so the reader still sees whole lines. */
#include "core/metrics.h"

#include "core/evloop.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define METRICS_PERIOD_MS 60000u
#define ID_MAX		  64

struct metrics_vsock metrics_vsock;
struct metrics_balloon metrics_balloon;
struct metrics_entropy metrics_entropy;
struct metrics_vcpu metrics_vcpu;

/* Per-device blocks: ids are set once under reg_lock, then published by nr_* (release), so a
 * flush reads them without the lock.  Slot METRICS_MAX_DEVICES is the spare. */
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct metrics_blk blk_slots[METRICS_MAX_DEVICES + 1];
static char blk_ids[METRICS_MAX_DEVICES][ID_MAX];
static unsigned nr_blk;
static struct metrics_net net_slots[METRICS_MAX_DEVICES + 1];
static char net_ids[METRICS_MAX_DEVICES][ID_MAX];
static unsigned nr_net;

/* The API server's routes, Firecracker's key for each and the methods it serves. */
enum { M_GET, M_PUT, M_PATCH, M_NR };
static const struct {
	const char *route; /* a trailing '/' matches any id after it */
	const char *name;
	unsigned methods;
} routes[] = {
	{ "/", "instance_info", 1u << M_GET },
	{ "/version", "vmm_version", 1u << M_GET },
	{ "/machine-config", "machine_cfg", (1u << M_GET) | (1u << M_PUT) | (1u << M_PATCH) },
	{ "/vm/config", "vm_config", 1u << M_GET },
	{ "/actions", "actions", 1u << M_PUT },
	{ "/boot-source", "boot_source", 1u << M_PUT },
	{ "/drives/", "drive", (1u << M_PUT) | (1u << M_PATCH) },
	{ "/network-interfaces/", "network", (1u << M_PUT) | (1u << M_PATCH) },
	{ "/logger", "logger", 1u << M_PUT },
	{ "/metrics", "metrics", 1u << M_PUT },
	{ "/vsock", "vsock", 1u << M_PUT },
	{ "/entropy", "entropy", 1u << M_PUT },
	{ "/cpu-config", "cpu_cfg", 1u << M_PUT },
	{ "/balloon", "balloon", (1u << M_GET) | (1u << M_PUT) | (1u << M_PATCH) },
	{ "/balloon/statistics", "balloon_stats", (1u << M_GET) | (1u << M_PATCH) },
	{ "/vm", "vm", 1u << M_PATCH },
	{ "/snapshot/create", "snapshot_create", 1u << M_PUT },
	{ "/snapshot/load", "snapshot_load", 1u << M_PUT },
	{ "/mmds", "mmds", (1u << M_GET) | (1u << M_PUT) | (1u << M_PATCH) },
	{ "/mmds/config", "mmds_config", 1u << M_PUT },
};
#define NR_ROUTES (sizeof(routes) / sizeof(routes[0]))

static uint64_t api_count[M_NR][NR_ROUTES], api_fails[M_NR][NR_ROUTES];
static uint64_t api_requests, api_2xx, api_4xx, api_5xx, api_other_route;

/* Values, not counts: reported as they stand (latest measurement). */
static uint64_t lat_full_snapshot, lat_diff_snapshot, lat_load_snapshot;

/* The logger section. */
static uint64_t missed_metrics_count, metrics_fails;

/* The destination: fd (-1: none), FIFO or not, the ticking timer. */
static pthread_mutex_t flush_lock = PTHREAD_MUTEX_INITIALIZER;
static int out_fd = -1;
static bool out_fifo;
static int timer_fd = -1;
static struct evloop *timer_ev;

static uint64_t take(uint64_t *c)
{
	return __atomic_exchange_n(c, 0, __ATOMIC_RELAXED);
}

static void set_u64(json_t *o, const char *key, uint64_t v)
{
	json_object_set_new(o, key, json_integer((json_int_t)v));
}

/* Find or claim the slot of `id` in a registry; the spare (max) when full or id is NULL. */
static unsigned slot_of(const char *id, char ids[][ID_MAX], unsigned *nr)
{
	unsigned i, n;

	if (!id || !id[0])
		return METRICS_MAX_DEVICES;
	pthread_mutex_lock(&reg_lock);
	n = *nr;
	for (i = 0; i < n && strncmp(ids[i], id, ID_MAX - 1); i++)
		;
	if (i == n && n < METRICS_MAX_DEVICES) {
		snprintf(ids[n], ID_MAX, "%s", id);
		__atomic_store_n(nr, n + 1, __ATOMIC_RELEASE);
	} else if (i == n) {
		i = METRICS_MAX_DEVICES;
	}
	pthread_mutex_unlock(&reg_lock);
	return i;
}

struct metrics_blk *metrics_blk_get(const char *id)
{
	return &blk_slots[slot_of(id, blk_ids, &nr_blk)];
}

struct metrics_net *metrics_net_get(const char *id)
{
	return &net_slots[slot_of(id, net_ids, &nr_net)];
}

/* "block" and one "block_<id>" per drive: each device's deltas, and their sum. */
static void put_blk(json_t *root)
{
	unsigned n = __atomic_load_n(&nr_blk, __ATOMIC_ACQUIRE);
	struct metrics_blk sum = { 0 };
	json_t *agg = json_object();

	json_object_set_new(root, "block", agg);
	for (unsigned i = 0; i <= METRICS_MAX_DEVICES; i++) {
		struct metrics_blk *b = &blk_slots[i];
		json_t *o = NULL;
		char key[ID_MAX + 8];

		if (i < n) {
			snprintf(key, sizeof(key), "block_%s", blk_ids[i]);
			o = json_object();
			json_object_set_new(root, key, o);
		} else if (i < METRICS_MAX_DEVICES) {
			continue;
		}
#define X(f)                               \
	{                                  \
		uint64_t v = take(&b->f);  \
		sum.f += v;                \
		if (o)                     \
			set_u64(o, #f, v); \
	}
		METRICS_BLK_FIELDS(X)
#undef X
	}
#define X(f) set_u64(agg, #f, sum.f);
	METRICS_BLK_FIELDS(X)
#undef X
}

static void put_net(json_t *root)
{
	unsigned n = __atomic_load_n(&nr_net, __ATOMIC_ACQUIRE);
	struct metrics_net sum = { 0 };
	json_t *agg = json_object();

	json_object_set_new(root, "net", agg);
	for (unsigned i = 0; i <= METRICS_MAX_DEVICES; i++) {
		struct metrics_net *d = &net_slots[i];
		json_t *o = NULL;
		char key[ID_MAX + 8];

		if (i < n) {
			snprintf(key, sizeof(key), "net_%s", net_ids[i]);
			o = json_object();
			json_object_set_new(root, key, o);
		} else if (i < METRICS_MAX_DEVICES) {
			continue;
		}
#define X(f)                               \
	{                                  \
		uint64_t v = take(&d->f);  \
		sum.f += v;                \
		if (o)                     \
			set_u64(o, #f, v); \
	}
		METRICS_NET_FIELDS(X)
#undef X
	}
#define X(f) set_u64(agg, #f, sum.f);
	METRICS_NET_FIELDS(X)
#undef X
}

/* get_api_requests / put_api_requests / patch_api_requests, and api_server's totals. */
static void put_api(json_t *root)
{
	static const char *const sect[M_NR] = { "get_api_requests", "put_api_requests",
						"patch_api_requests" };
	json_t *srv = json_object();

	json_object_set_new(root, "api_server", srv);
	set_u64(srv, "requests_count", take(&api_requests));
	set_u64(srv, "status_2xx_count", take(&api_2xx));
	set_u64(srv, "status_4xx_count", take(&api_4xx));
	set_u64(srv, "status_5xx_count", take(&api_5xx));
	set_u64(srv, "unknown_route_count", take(&api_other_route));
	for (unsigned m = 0; m < M_NR; m++) {
		json_t *o = json_object();

		json_object_set_new(root, sect[m], o);
		for (unsigned r = 0; r < NR_ROUTES; r++) {
			char key[64];

			if (!(routes[r].methods & (1u << m)))
				continue;
			snprintf(key, sizeof(key), "%s_count", routes[r].name);
			set_u64(o, key, take(&api_count[m][r]));
			/* Firecracker counts failures of configuration calls, not of reads. */
			if (m == M_GET)
				continue;
			snprintf(key, sizeof(key), "%s_fails", routes[r].name);
			set_u64(o, key, take(&api_fails[m][r]));
		}
	}
}

static uint64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* The whole object, counters taken (reset) as they are read.  Caller holds flush_lock. */
static json_t *build(void)
{
	json_t *root = json_object(), *o;

	if (!root)
		return NULL;
	set_u64(root, "utc_timestamp_ms", wall_ms());
	put_api(root);
	put_blk(root);
	put_net(root);
#define PUT_FIELD_(f) set_u64(o, #f, take(&S_.f));
#define S_	      metrics_vsock
	json_object_set_new(root, "vsock", o = json_object());
	METRICS_VSOCK_FIELDS(PUT_FIELD_)
#undef S_
#define S_ metrics_balloon
	json_object_set_new(root, "balloon", o = json_object());
	METRICS_BALLOON_FIELDS(PUT_FIELD_)
#undef S_
#define S_ metrics_entropy
	json_object_set_new(root, "entropy", o = json_object());
	METRICS_ENTROPY_FIELDS(PUT_FIELD_)
#undef S_
#define S_ metrics_vcpu
	json_object_set_new(root, "vcpu", o = json_object());
	METRICS_VCPU_FIELDS(PUT_FIELD_)
#undef S_
#undef PUT_FIELD_
	json_object_set_new(root, "latencies_us", o = json_object());
	set_u64(o, "full_create_snapshot", __atomic_load_n(&lat_full_snapshot, __ATOMIC_RELAXED));
	set_u64(o, "diff_create_snapshot", __atomic_load_n(&lat_diff_snapshot, __ATOMIC_RELAXED));
	set_u64(o, "load_snapshot", __atomic_load_n(&lat_load_snapshot, __ATOMIC_RELAXED));
	json_object_set_new(root, "logger", o = json_object());
	set_u64(o, "missed_metrics_count", take(&missed_metrics_count));
	set_u64(o, "metrics_fails", take(&metrics_fails));
	set_u64(o, "missed_log_count", log_take_missed());
	set_u64(o, "log_fails", log_take_failed());
	return root;
}

/* What a FIFO has not taken yet of the last line (a slow reader): finished before anything
 * else is written, so every line reaches the reader whole and in order. */
static char *pending;
static size_t pending_len, pending_off;

/* Try to finish the pending line: true when nothing is left of it. */
static bool finish_pending(void)
{
	while (pending && pending_off < pending_len) {
		ssize_t w = write(out_fd, pending + pending_off, pending_len - pending_off);

		if (w <= 0)
			return false;
		pending_off += (size_t)w;
	}
	free(pending);
	pending = NULL;
	return true;
}

/* Write one line with one write().  A FIFO that cannot take it now costs this line
 * (missed_metrics_count); one that takes part of it keeps the rest for the next flush. */
static int write_line(char *line, size_t len)
{
	ssize_t w;

	if (!finish_pending()) {
		METRIC_INC(missed_metrics_count);
		free(line);
		return -EAGAIN;
	}
	w = write(out_fd, line, len);
	if (w < 0) {
		int ret = -errno;

		if (ret == -EAGAIN || ret == -EPIPE)
			METRIC_INC(missed_metrics_count);
		else
			METRIC_INC(metrics_fails);
		free(line);
		return ret;
	}
	if ((size_t)w == len || !out_fifo) {
		/* A regular file writes all unless the disk is full: end a cut line there so
		 * that the next one starts clean. */
		if ((size_t)w != len) {
			METRIC_INC(metrics_fails);
			if (write(out_fd, "\n", 1) < 0)
				METRIC_INC(metrics_fails);
		}
		free(line);
		return (size_t)w == len ? 0 : -EIO;
	}
	pending = line;
	pending_len = len;
	pending_off = (size_t)w;
	return 0;
}

int metrics_flush(void)
{
	json_t *root;
	char *text;
	size_t len;
	int ret;

	pthread_mutex_lock(&flush_lock);
	if (out_fd < 0) {
		pthread_mutex_unlock(&flush_lock);
		return -ENOENT;
	}
	root = build();
	text = root ? json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	json_decref(root);
	if (!text) {
		METRIC_INC(metrics_fails);
		pthread_mutex_unlock(&flush_lock);
		return -ENOMEM;
	}
	/* json_dumps leaves no newline: replace its NUL with one so the line is one write(). */
	len = strlen(text);
	{
		char *line = realloc(text, len + 2);

		if (!line) {
			free(text);
			METRIC_INC(metrics_fails);
			pthread_mutex_unlock(&flush_lock);
			return -ENOMEM;
		}
		text = line;
	}
	text[len++] = '\n';
	text[len] = '\0';
	ret = write_line(text, len); /* takes text */
	pthread_mutex_unlock(&flush_lock);
	return ret;
}

static void ignore_sigpipe(void)
{
	struct sigaction old, ign = { .sa_handler = SIG_IGN };

	if (sigaction(SIGPIPE, NULL, &old) == 0 && old.sa_handler == SIG_DFL)
		sigaction(SIGPIPE, &ign, NULL);
}

int metrics_open(const char *path, char *err, size_t n)
{
	struct stat st;
	int fd, ret;

	/* Seed jansson's hash now: unseeded, its first object (a flush on a filtered thread,
	 * the last one at exit) would open /dev/urandom, which no seccomp filter allows. */
	json_object_seed(0);
	pthread_mutex_lock(&flush_lock);
	if (out_fd >= 0) {
		pthread_mutex_unlock(&flush_lock);
		return err_set(-EALREADY, err, n, "metrics are already written to a file");
	}
	/* O_NONBLOCK: opening a FIFO with no reader fails with ENXIO at once instead of waiting
	 * for one, and later writes never wait for a slow reader. */
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NONBLOCK | O_CLOEXEC, 0600);
	if (fd < 0) {
		ret = -errno;
		pthread_mutex_unlock(&flush_lock);
		if (ret == -ENXIO)
			return err_set(ret, err, n,
				       "metrics FIFO '%s' has no reader: start its reader first",
				       path);
		return err_set(ret, err, n, "metrics file '%s': %s", path, strerror(-ret));
	}
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		close(fd);
		pthread_mutex_unlock(&flush_lock);
		return err_set(ret, err, n, "metrics file '%s': %s", path, strerror(-ret));
	}
	out_fifo = S_ISFIFO(st.st_mode);
	/* A reader that goes away must cost lines, not the process (EPIPE, not SIGPIPE). */
	if (out_fifo)
		ignore_sigpipe();
	out_fd = fd;
	pthread_mutex_unlock(&flush_lock);
	return 0;
}

static void timer_cb(void *opaque, uint32_t events)
{
	uint64_t ticks;
	(void)opaque;
	(void)events;

	if (read(timer_fd, &ticks, sizeof(ticks)) != sizeof(ticks))
		return;
	(void)metrics_flush(); /* -ENOENT before a path is open; failures are counted */
}

bool metrics_is_open(void)
{
	return __atomic_load_n(&out_fd, __ATOMIC_RELAXED) >= 0;
}

int metrics_start_timer(struct evloop *ev, unsigned period_ms)
{
	struct itimerspec its;
	int fd, ret;

	if (timer_fd >= 0)
		return -EALREADY;
	if (!period_ms)
		period_ms = METRICS_PERIOD_MS;
	fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	its.it_interval.tv_sec = period_ms / 1000u;
	its.it_interval.tv_nsec = (long)(period_ms % 1000u) * 1000000l;
	its.it_value = its.it_interval;
	if (timerfd_settime(fd, 0, &its, NULL) < 0) {
		ret = -errno;
		goto close_fd;
	}
	timer_fd = fd;
	ret = evloop_add(ev, fd, EPOLLIN, timer_cb, NULL);
	if (ret) {
		timer_fd = -1;
		goto close_fd;
	}
	timer_ev = ev;
	return 0;

close_fd:
	close(fd);
	return ret;
}

void metrics_close(void)
{
	if (timer_fd >= 0) {
		evloop_del(timer_ev, timer_fd);
		close(timer_fd);
		timer_fd = -1;
		timer_ev = NULL;
	}
	if (metrics_flush() == -ENOENT)
		return;
	pthread_mutex_lock(&flush_lock);
	(void)finish_pending(); /* once: never wait for a reader at exit */
	free(pending);
	pending = NULL;
	close(out_fd);
	out_fd = -1;
	out_fifo = false;
	pthread_mutex_unlock(&flush_lock);
}

void metrics_api_request(const char *method, const char *route, unsigned status)
{
	unsigned m, r;

	METRIC_INC(api_requests);
	if (status >= 200 && status < 300)
		METRIC_INC(api_2xx);
	else if (status >= 400 && status < 500)
		METRIC_INC(api_4xx);
	else if (status >= 500 && status < 600)
		METRIC_INC(api_5xx);
	if (!method || !route)
		goto other;
	if (!strcmp(method, "GET"))
		m = M_GET;
	else if (!strcmp(method, "PUT"))
		m = M_PUT;
	else if (!strcmp(method, "PATCH"))
		m = M_PATCH;
	else
		goto other;
	for (r = 0; r < NR_ROUTES; r++) {
		size_t len = strlen(routes[r].route);
		bool prefix = len > 1 && routes[r].route[len - 1] == '/';

		if (prefix ? !strncmp(route, routes[r].route, len) && route[len]
			   : !strcmp(route, routes[r].route))
			break;
	}
	if (r == NR_ROUTES || !(routes[r].methods & (1u << m)))
		goto other;
	METRIC_INC(api_count[m][r]);
	if (status >= 400)
		METRIC_INC(api_fails[m][r]);
	return;
other:
	METRIC_INC(api_other_route);
}

void metrics_snapshot_time(uint64_t create_us)
{
	__atomic_store_n(&lat_full_snapshot, create_us, __ATOMIC_RELAXED);
}

void metrics_diff_snapshot_time(uint64_t create_us)
{
	__atomic_store_n(&lat_diff_snapshot, create_us, __ATOMIC_RELAXED);
}

void metrics_restore_time(uint64_t load_us)
{
	__atomic_store_n(&lat_load_snapshot, load_us, __ATOMIC_RELAXED);
}
