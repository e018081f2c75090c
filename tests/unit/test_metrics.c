/* The metrics writer (core/metrics.c, docs/metrics.md): the JSON layout, deltas against values
 * that stand, per-device registries, the API request counts, FIFO destinations (no reader, a
 * slow reader) and the periodic flush on an event loop. */
#include "core/evloop.h"
#include "core/metrics.h"
#include "metrics_json.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Every section Firecracker's consumers look for, utc_timestamp_ms first. */
static void test_layout(void **state)
{
	static const char *const sections[] = {
		"api_server",
		"get_api_requests",
		"put_api_requests",
		"patch_api_requests",
		"block",
		"net",
		"vsock",
		"balloon",
		"entropy",
		"vcpu",
		"latencies_us",
		"logger",
	};
	uint64_t before = now_ms(), ts;
	json_t *m = metrics_json_take();
	const char *first;
	void *it;

	assert_non_null(m);
	it = json_object_iter(m);
	first = json_object_iter_key(it);
	assert_string_equal(first, "utc_timestamp_ms");
	ts = (uint64_t)json_integer_value(json_object_get(m, "utc_timestamp_ms"));
	assert_true(ts >= before && ts <= now_ms());
	for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++)
		assert_true(json_is_object(json_object_get(m, sections[i])));
	(void)metrics_json_get(m, "vcpu", "exit_io_in");
	(void)metrics_json_get(m, "vcpu", "exit_mmio_write");
	(void)metrics_json_get(m, "logger", "missed_metrics_count");
	json_decref(m);
}

/* Counters of the single-instance devices and the vCPUs: reported, then back to zero. */
static void test_deltas(void **state)
{
	json_t *m = metrics_json_take();

	json_decref(m);
	METRIC_ADD(metrics_vsock.rx_bytes_count, 300);
	METRIC_INC(metrics_vsock.conns_added);
	METRIC_INC(metrics_balloon.inflate_count);
	METRIC_ADD(metrics_entropy.entropy_bytes, 64);
	for (int i = 0; i < 5; i++)
		METRIC_INC(metrics_vcpu.exit_io_out);
	m = metrics_json_take();
	assert_int_equal(metrics_json_get(m, "vsock", "rx_bytes_count"), 300);
	assert_int_equal(metrics_json_get(m, "vsock", "conns_added"), 1);
	assert_int_equal(metrics_json_get(m, "balloon", "inflate_count"), 1);
	assert_int_equal(metrics_json_get(m, "entropy", "entropy_bytes"), 64);
	assert_int_equal(metrics_json_get(m, "vcpu", "exit_io_out"), 5);
	assert_int_equal(metrics_json_get(m, "vcpu", "exit_io_in"), 0);
	json_decref(m);
	m = metrics_json_take();
	assert_int_equal(metrics_json_get(m, "vsock", "rx_bytes_count"), 0);
	assert_int_equal(metrics_json_get(m, "vcpu", "exit_io_out"), 0);
	json_decref(m);
}

/* Named devices get their own object; the aggregate sums them. */
static void test_device_registry(void **state)
{
	struct metrics_blk *a = metrics_blk_get("rootfs"), *b = metrics_blk_get("scratch");
	struct metrics_net *n = metrics_net_get("eth0");
	json_t *m;

	assert_ptr_equal(metrics_blk_get("rootfs"), a); /* the same id, the same counters */
	assert_ptr_not_equal(a, b);
	json_decref(metrics_json_take());
	METRIC_ADD(a->read_bytes, 4096);
	METRIC_ADD(b->read_bytes, 512);
	METRIC_ADD(n->tx_bytes_count, 99);
	m = metrics_json_take();
	assert_int_equal(metrics_json_get(m, "block_rootfs", "read_bytes"), 4096);
	assert_int_equal(metrics_json_get(m, "block_scratch", "read_bytes"), 512);
	assert_int_equal(metrics_json_get(m, "block", "read_bytes"), 4608);
	assert_int_equal(metrics_json_get(m, "net_eth0", "tx_bytes_count"), 99);
	assert_int_equal(metrics_json_get(m, "net", "tx_bytes_count"), 99);
	json_decref(m);
}

/* Past METRICS_MAX_DEVICES ids, devices still count, in the aggregate only. */
static void test_registry_full(void **state)
{
	char id[32];
	struct metrics_blk *spare;
	json_t *m;

	for (int i = 0; i < METRICS_MAX_DEVICES; i++) {
		snprintf(id, sizeof(id), "d%d", i);
		(void)metrics_blk_get(id);
	}
	spare = metrics_blk_get("one-too-many");
	assert_ptr_equal(spare, metrics_blk_get(NULL));
	json_decref(metrics_json_take());
	METRIC_ADD(spare->write_bytes, 7);
	m = metrics_json_take();
	assert_null(json_object_get(m, "block_one-too-many"));
	assert_int_equal(metrics_json_get(m, "block", "write_bytes"), 7);
	json_decref(m);
}

static void test_api_requests(void **state)
{
	json_t *m;

	json_decref(metrics_json_take());
	metrics_api_request("PUT", "/drives/{drive_id}", 204);
	metrics_api_request("PUT", "/drives/rootfs", 400);
	metrics_api_request("PATCH", "/drives/{drive_id}", 204);
	metrics_api_request("GET", "/", 200);
	metrics_api_request("PUT", "/actions", 204);
	metrics_api_request("PATCH", "/vm", 204);
	metrics_api_request("PUT", "/balloon/statistics", 400); /* no such call: unknown */
	metrics_api_request("GET", "/nonsense", 400);
	metrics_api_request("DELETE", "/", 405);
	metrics_api_request("PUT", "/machine-config", 500);
	m = metrics_json_take();
	assert_int_equal(metrics_json_get(m, "put_api_requests", "drive_count"), 2);
	assert_int_equal(metrics_json_get(m, "put_api_requests", "drive_fails"), 1);
	assert_int_equal(metrics_json_get(m, "patch_api_requests", "drive_count"), 1);
	assert_int_equal(metrics_json_get(m, "patch_api_requests", "drive_fails"), 0);
	assert_int_equal(metrics_json_get(m, "get_api_requests", "instance_info_count"), 1);
	assert_int_equal(metrics_json_get(m, "put_api_requests", "actions_count"), 1);
	assert_int_equal(metrics_json_get(m, "patch_api_requests", "vm_count"), 1);
	assert_int_equal(metrics_json_get(m, "put_api_requests", "machine_cfg_fails"), 1);
	assert_null(json_object_get(json_object_get(m, "get_api_requests"), "actions_count"));
	assert_int_equal(metrics_json_get(m, "api_server", "requests_count"), 10);
	assert_int_equal(metrics_json_get(m, "api_server", "status_2xx_count"), 5);
	assert_int_equal(metrics_json_get(m, "api_server", "status_4xx_count"), 4);
	assert_int_equal(metrics_json_get(m, "api_server", "status_5xx_count"), 1);
	assert_int_equal(metrics_json_get(m, "api_server", "unknown_route_count"), 3);
	json_decref(m);
}

/* Latencies are values: the latest one stands across flushes. */
static void test_latencies(void **state)
{
	json_t *m;

	metrics_snapshot_time(1234);
	metrics_diff_snapshot_time(55);
	metrics_restore_time(777);
	for (int i = 0; i < 2; i++) {
		m = metrics_json_take();
		assert_int_equal(metrics_json_get(m, "latencies_us", "full_create_snapshot"), 1234);
		assert_int_equal(metrics_json_get(m, "latencies_us", "diff_create_snapshot"), 55);
		assert_int_equal(metrics_json_get(m, "latencies_us", "load_snapshot"), 777);
		json_decref(m);
	}
}

static void test_open_errors(void **state)
{
	char dir[] = "/tmp/ignition-mt-XXXXXX", path[64], err[256];

	assert_int_equal(metrics_flush(), -ENOENT);
	assert_non_null(mkdtemp(dir));
	/* A FIFO nobody reads: refused at once, with a reason that says so. */
	snprintf(path, sizeof(path), "%s/fifo", dir);
	assert_int_equal(mkfifo(path, 0600), 0);
	err[0] = '\0';
	assert_int_equal(metrics_open(path, err, sizeof(err)), -ENXIO);
	assert_non_null(strstr(err, "no reader"));
	assert_int_equal(metrics_open(dir, err, sizeof(err)), -EISDIR);
	snprintf(path, sizeof(path), "%s/m.json", dir);
	assert_int_equal(metrics_open(path, err, sizeof(err)), 0);
	assert_int_equal(metrics_open(path, err, sizeof(err)), -EALREADY);
	metrics_close();
	metrics_close(); /* nothing open: a no-op */
	/* The file was created private, and the close wrote the final line. */
	{
		struct stat st;
		char line[65536];
		FILE *f = fopen(path, "r");

		assert_int_equal(stat(path, &st), 0);
		assert_int_equal(st.st_mode & 0777, 0600);
		assert_non_null(f);
		assert_non_null(fgets(line, sizeof(line), f));
		assert_null(fgets(line, sizeof(line), f));
		fclose(f);
	}
	unlink(path);
	snprintf(path, sizeof(path), "%s/fifo", dir);
	unlink(path);
	rmdir(dir);
}

/* Read what the FIFO holds now (non-blocking reader); returns bytes appended to buf. */
static size_t drain(int fd, char *buf, size_t at, size_t size)
{
	ssize_t r;

	while (at < size - 1 && (r = read(fd, buf + at, size - 1 - at)) > 0)
		at += (size_t)r;
	buf[at] = '\0';
	return at;
}

/* A reader that does not keep up: flushes never block; a line with no room is dropped and
 * counted; one cut short is finished at the next flush, so the reader sees whole lines. */
static void test_fifo_slow_reader(void **state)
{
	char dir[] = "/tmp/ignition-mt-XXXXXX", path[64], err[256];
	static char buf[1 << 20];
	size_t have = 0, lines = 0;
	uint64_t missed = 0;
	int rd;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/fifo", dir);
	assert_int_equal(mkfifo(path, 0600), 0);
	rd = open(path, O_RDONLY | O_NONBLOCK);
	assert_true(rd >= 0);
	assert_true(fcntl(rd, F_SETPIPE_SZ, 4096) >= 4096);
	assert_int_equal(metrics_open(path, err, sizeof(err)), 0);
	/* Far more than the pipe holds: each returns at once. */
	for (int i = 0; i < 8; i++) {
		int ret = metrics_flush();

		assert_true(ret == 0 || ret == -EAGAIN);
	}
	have = drain(rd, buf, have, sizeof(buf));
	assert_true(have > 0 && have <= 4096);
	/* Room again: the cut line is finished first, then a new whole line. */
	assert_int_equal(metrics_flush(), 0);
	have = drain(rd, buf, have, sizeof(buf));
	metrics_close();
	have = drain(rd, buf, have, sizeof(buf));
	for (char *line = buf, *nl; (nl = strchr(line, '\n')); line = nl + 1) {
		json_error_t je;
		json_t *m;

		*nl = '\0';
		m = json_loads(line, 0, &je);
		if (!m)
			fail_msg("line %zu is not JSON: %s", lines, je.text);
		missed += metrics_json_get(m, "logger", "missed_metrics_count");
		json_decref(m);
		lines++;
	}
	assert_true(lines >= 2);
	assert_true(missed >= 1);
	assert_int_equal(buf[have - 1], '\0'); /* nothing after the last newline */
	close(rd);
	unlink(path);
	rmdir(dir);
}

static void *loop_thread(void *arg)
{
	return (void *)(intptr_t)evloop_run(arg);
}

/* The periodic flush runs on the event loop. */
static void test_timer(void **state)
{
	char path[] = "/tmp/ignition-mt-XXXXXX", err[256], line[65536];
	struct evloop ev;
	pthread_t th;
	struct timespec nap = { 0, 200 * 1000000l };
	int fd = mkstemp(path), lines = 0;
	FILE *f;

	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(evloop_init(&ev), 0);
	assert_int_equal(metrics_start_timer(&ev, 20), 0);
	assert_int_equal(metrics_start_timer(&ev, 20), -EALREADY);
	assert_int_equal(metrics_open(path, err, sizeof(err)), 0);
	assert_int_equal(pthread_create(&th, NULL, loop_thread, &ev), 0);
	nanosleep(&nap, NULL);
	evloop_stop(&ev);
	pthread_join(th, NULL);
	metrics_close();
	evloop_destroy(&ev);
	f = fopen(path, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		lines++;
	fclose(f);
	unlink(path);
	/* ~10 ticks in 200 ms plus the final line; a loaded machine may run fewer. */
	assert_true(lines >= 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_layout),		cmocka_unit_test(test_deltas),
		cmocka_unit_test(test_device_registry), cmocka_unit_test(test_registry_full),
		cmocka_unit_test(test_api_requests),	cmocka_unit_test(test_latencies),
		cmocka_unit_test(test_open_errors),	cmocka_unit_test(test_fifo_slow_reader),
		cmocka_unit_test(test_timer),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
