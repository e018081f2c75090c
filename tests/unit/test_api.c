/* The REST API's router and model (src/api/router.c, fc_model.c) with fake operations: every
 * endpoint's happy path, its errors (malformed JSON, wrong types, unknown fields and paths,
 * pre-boot-only calls after start, huge bodies), the config-file layout and its conversion to a
 * machine_config; and evloop_call() on a real event loop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "api/fc_model.h"
#include "api/router.h"
#include "core/evloop.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- fakes ---- */
static struct {
	int starts, pauses, resumes, snaps, loads, loggers, metrics, balloons, ratelimits, flushes;
	int cads, swaps;
	int swap_index;
	char swap_path[64];
	int fail;      /* next op returns this */
	bool restored; /* f_load hands back restored_cfg's model */
	struct api_snapshot_create snap;
	struct api_snapshot_load load;
	uint32_t balloon_mib;
	struct ratelimit_cfg rl;
	char kind[16];
} fk;

static int outcome(int *counter, char *err, size_t n)
{
	(*counter)++;
	if (fk.fail) {
		snprintf(err, n, "fake failure");
		return fk.fail;
	}
	return 0;
}

static int f_start(void *c, const struct fc_model *m, char *e, size_t n)
{
	(void)c;
	(void)m;
	return outcome(&fk.starts, e, n);
}
static int f_pause(void *c, char *e, size_t n)
{
	(void)c;
	return outcome(&fk.pauses, e, n);
}
static int f_resume(void *c, char *e, size_t n)
{
	(void)c;
	return outcome(&fk.resumes, e, n);
}
static int f_flush(void *c, char *e, size_t n)
{
	(void)c;
	return outcome(&fk.flushes, e, n);
}
static int f_snap(void *c, const struct api_snapshot_create *s, char *e, size_t n)
{
	(void)c;
	fk.snap = *s;
	return outcome(&fk.snaps, e, n);
}
/* The machine a fake load "restores" (fk.restored set: its model is handed back). */
static struct machine_config restored_cfg;

static int f_load(void *c, const struct api_snapshot_load *l, struct fc_model *m, char *e, size_t n)
{
	int ret;

	(void)c;
	fk.load = *l;
	ret = outcome(&fk.loads, e, n);
	if (!ret && fk.restored)
		fc_model_from_machine(m, &restored_cfg, 32, l->track_dirty);
	return ret;
}
static int f_logger(void *c, const struct fc_model *m, char *e, size_t n)
{
	(void)c;
	(void)m;
	return outcome(&fk.loggers, e, n);
}
static int f_metrics(void *c, const char *p, char *e, size_t n)
{
	(void)c;
	(void)p;
	return outcome(&fk.metrics, e, n);
}
static int f_balloon(void *c, uint32_t mib, char *e, size_t n)
{
	(void)c;
	fk.balloon_mib = mib;
	return outcome(&fk.balloons, e, n);
}
static int f_stats(void *c, char **json, char *e, size_t n)
{
	(void)c;
	*json = strdup("{\"actual_mib\":0}");
	return outcome(&fk.balloons, e, n);
}
static int f_rl(void *c, const char *kind, int idx, const struct ratelimit_cfg *rl,
		const struct ratelimit_cfg *tx, char *e, size_t n)
{
	(void)c;
	(void)idx;
	(void)tx;
	fk.rl = *rl;
	snprintf(fk.kind, sizeof(fk.kind), "%s", kind);
	return outcome(&fk.ratelimits, e, n);
}

static int f_cad(void *c, char *e, size_t n)
{
	(void)c;
	return outcome(&fk.cads, e, n);
}
static int f_drive_path(void *c, int index, const char *path, char *e, size_t n)
{
	(void)c;
	fk.swap_index = index;
	snprintf(fk.swap_path, sizeof(fk.swap_path), "%s", path);
	return outcome(&fk.swaps, e, n);
}

static const struct api_ops ops = {
	.instance_start = f_start,
	.ctrl_alt_del = f_cad,
	.drive_path = f_drive_path,
	.pause = f_pause,
	.resume = f_resume,
	.flush_metrics = f_flush,
	.snapshot_create = f_snap,
	.snapshot_load = f_load,
	.logger = f_logger,
	.metrics = f_metrics,
	.balloon_target = f_balloon,
	.balloon_stats = f_stats,
	.ratelimit = f_rl,
};

static struct api a;
static char *last;
static json_t *last_json;

static unsigned req(const char *method, const char *path, const char *body)
{
	unsigned st = 0;
	const char *route;

	free(last);
	json_decref(last_json);
	last_json = NULL;
	api_handle(&a, method, path, body, body ? strlen(body) : 0, &st, &last, &route);
	if (last)
		last_json = json_loads(last, 0, NULL);
	return st;
}

/* The fault message of the last answer ("" if none). */
static const char *fault_msg(void)
{
	const char *s = json_string_value(json_object_get(last_json, "fault_message"));

	return s ? s : "";
}

static void expect_fault(const char *method, const char *path, const char *body, const char *want)
{
	assert_int_equal(req(method, path, body), 400);
	if (!strstr(fault_msg(), want))
		fail_msg("%s %s: fault %s lacks %s", method, path, fault_msg(), want);
}

static int setup(void **state)
{
	(void)state;
	memset(&fk, 0, sizeof(fk));
	api_init(&a, "t1", &ops, NULL);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	free(last);
	last = NULL;
	json_decref(last_json);
	last_json = NULL;
	return 0;
}

static void configure(void)
{
	assert_int_equal(req("PUT", "/boot-source",
			     "{\"kernel_image_path\":\"/k\",\"boot_args\":\"console=ttyS0\"}"),
			 204);
	assert_int_equal(
		req("PUT", "/drives/rootfs",
		    "{\"drive_id\":\"rootfs\",\"path_on_host\":\"/r\",\"is_root_device\":true,"
		    "\"is_read_only\":false}"),
		204);
}

/* ---- tests ---- */
static void test_info_and_version(void **state)
{
	(void)state;
	assert_int_equal(req("GET", "/", NULL), 200);
	assert_string_equal(json_string_value(json_object_get(last_json, "id")), "t1");
	assert_string_equal(json_string_value(json_object_get(last_json, "state")), "Not started");
	assert_int_equal(req("GET", "/version", NULL), 200);
	assert_non_null(json_object_get(last_json, "firecracker_version"));
}

static void test_unknown_path_and_method(void **state)
{
	(void)state;
	expect_fault("GET", "/nothing", NULL, "GET /nothing");
	expect_fault("DELETE", "/drives/x", NULL, "DELETE /drives/x");
	expect_fault("PUT", "/drives/", "{}", "PUT /drives/");
	expect_fault("PUT", "/drives/a/b", "{}", "/drives/a/b");
	expect_fault("POST", "/actions", "{}", "POST /actions");
	expect_fault("GET", "/", "x", "no body");
}

static void test_malformed(void **state)
{
	(void)state;
	expect_fault("PUT", "/boot-source", "{", "deserializing");
	expect_fault("PUT", "/boot-source", "[]", "object");
	expect_fault("PUT", "/boot-source", "", "empty");
	expect_fault("PUT", "/boot-source",
		     "{\"kernel_image_path\":\"/a\",\"kernel_image_path\":\"/b\"}",
		     "deserializing");
	expect_fault("PUT", "/boot-source", "{\"kernel_image_path\":\"/k\",\"x\":1}", "`x`");
	expect_fault("PUT", "/boot-source", "{\"kernel_image_path\":1}", "kernel_image_path");
	expect_fault("PUT", "/boot-source", "{}", "kernel_image_path");
	/* Nothing was changed by any of them. */
	assert_false(a.model.has_boot);
}

static void test_huge_body(void **state)
{
	size_t n = API_BODY_MAX + 1;
	char *body = malloc(n + 1);
	unsigned st;
	const char *route;

	(void)state;
	memset(body, ' ', n);
	body[n] = '\0';
	free(last);
	api_handle(&a, "PUT", "/boot-source", body, n, &st, &last, &route);
	assert_int_equal(st, 400);
	assert_non_null(strstr(last, "larger than the limit"));
	free(body);
}

static void test_machine_config(void **state)
{
	(void)state;
	assert_int_equal(req("GET", "/machine-config", NULL), 200);
	assert_int_equal(json_integer_value(json_object_get(last_json, "vcpu_count")), 1);
	assert_int_equal(json_integer_value(json_object_get(last_json, "mem_size_mib")), 128);
	assert_int_equal(req("PUT", "/machine-config",
			     "{\"vcpu_count\":2,\"mem_size_mib\":512,\"track_dirty_pages\":true}"),
			 204);
	assert_int_equal(req("PATCH", "/machine-config", "{\"mem_size_mib\":256}"), 204);
	assert_int_equal(a.model.vcpus, 2);
	assert_int_equal(a.model.mem_mib, 256);
	assert_true(a.model.track_dirty);
	expect_fault("PUT", "/machine-config", "{\"vcpu_count\":2}", "mem_size_mib");
	expect_fault("PUT", "/machine-config", "{\"vcpu_count\":\"2\",\"mem_size_mib\":1}",
		     "vcpu_count");
	expect_fault("PUT", "/machine-config", "{\"vcpu_count\":0,\"mem_size_mib\":128}", "vCPU");
	expect_fault("PUT", "/machine-config", "{\"vcpu_count\":99,\"mem_size_mib\":128}",
		     "vcpu_count");
	expect_fault("PATCH", "/machine-config", "{\"smt\":true}", "smt");
	expect_fault("PATCH", "/machine-config", "{\"cpu_template\":\"C3\"}", "C3");
	expect_fault("PATCH", "/machine-config", "{\"huge_pages\":\"1G\"}", "1G");
	expect_fault("PATCH", "/machine-config", "{\"huge_pages\":\"2M\",\"mem_size_mib\":255}",
		     "multiple of 2");
	assert_string_equal(a.model.huge_pages, "None");
	assert_int_equal(req("PATCH", "/machine-config", "{\"huge_pages\":\"2M\"}"), 204);
	assert_string_equal(a.model.huge_pages, "2M");
	assert_int_equal(req("PATCH", "/machine-config", "{\"huge_pages\":\"None\"}"), 204);
	expect_fault("PATCH", "/machine-config", "{\"mem_size_mib\":1.5}", "mem_size_mib");
	assert_int_equal(a.model.mem_mib, 256);
}

static void test_drives(void **state)
{
	(void)state;
	configure();
	assert_int_equal(
		req("PUT", "/drives/data",
		    "{\"drive_id\":\"data\",\"path_on_host\":\"/d\",\"is_root_device\":false,"
		    "\"is_read_only\":true,\"rate_limiter\":{\"bandwidth\":{\"size\":1000,"
		    "\"refill_time\":100},\"ops\":{\"size\":10,\"one_time_burst\":5,"
		    "\"refill_time\":1000}}}"),
		204);
	assert_int_equal(a.model.nr_drives, 2);
	assert_int_equal(a.model.drives[1].rl.bandwidth.size, 1000);
	assert_int_equal(a.model.drives[1].rl.ops.one_time_burst, 5);
	expect_fault("PUT", "/drives/other",
		     "{\"drive_id\":\"other\",\"path_on_host\":\"/o\",\"is_root_device\":true}",
		     "root block device already exists");
	expect_fault("PUT", "/drives/x",
		     "{\"drive_id\":\"y\",\"path_on_host\":\"/o\","
		     "\"is_root_device\":false}",
		     "does not match");
	expect_fault("PUT", "/drives/x",
		     "{\"drive_id\":\"x\",\"path_on_host\":\"/o\","
		     "\"is_root_device\":false,\"cache_type\":\"Fast\"}",
		     "cache_type");
	expect_fault("PUT", "/drives/x",
		     "{\"drive_id\":\"x\",\"path_on_host\":\"/o\","
		     "\"is_root_device\":false,\"rate_limiter\":{\"bandwidth\":{\"size\":1}}}",
		     "refill_time");
	expect_fault("PUT", "/drives/x",
		     "{\"drive_id\":\"x\",\"path_on_host\":\"/o\","
		     "\"is_root_device\":false,\"rate_limiter\":{\"bw\":{}}}",
		     "`bw`");
	expect_fault("PATCH", "/drives/nope", "{\"drive_id\":\"nope\",\"path_on_host\":\"/n\"}",
		     "does not exist");
	expect_fault("PATCH", "/drives/data", "{\"drive_id\":\"data\",\"is_read_only\":true}",
		     "is_read_only");
	expect_fault("PUT", "/drives/bad!id", "{\"drive_id\":\"bad!id\"}", "Invalid drive id");
	assert_int_equal(
		req("PATCH", "/drives/data", "{\"drive_id\":\"data\",\"path_on_host\":\"/d2\"}"),
		204);
	assert_string_equal(a.model.drives[1].path, "/d2");
}

static void test_nets(void **state)
{
	(void)state;
	assert_int_equal(req("PUT", "/network-interfaces/eth0",
			     "{\"iface_id\":\"eth0\",\"host_dev_name\":\"tap0\","
			     "\"guest_mac\":\"AA:FC:00:00:00:01\",\"rx_rate_limiter\":{\"ops\":{"
			     "\"size\":100,\"refill_time\":1000}}}"),
			 204);
	assert_int_equal(req("PUT", "/network-interfaces/eth1",
			     "{\"iface_id\":\"eth1\",\"host_dev_name\":\"" FC_NET_USER "\"}"),
			 204);
	assert_int_equal(a.model.nr_nets, 2);
	assert_int_equal(a.model.nets[0].mac[0], 0xaa);
	assert_true(a.model.nets[0].has_rx);
	expect_fault("PUT", "/network-interfaces/eth2",
		     "{\"iface_id\":\"eth2\",\"host_dev_name\":\"tap0\"}", "already used");
	expect_fault("PUT", "/network-interfaces/eth2",
		     "{\"iface_id\":\"eth2\",\"host_dev_name\":\"a-very-long-tap-name\"}",
		     "host_dev_name");
	expect_fault("PUT", "/network-interfaces/eth2",
		     "{\"iface_id\":\"eth2\",\"host_dev_name\":\"tap2\",\"guest_mac\":\"1:2\"}",
		     "guest_mac");
}

static void test_small_devices(void **state)
{
	(void)state;
	assert_int_equal(req("PUT", "/vsock", "{\"guest_cid\":3,\"uds_path\":\"/v.sock\"}"), 204);
	expect_fault("PUT", "/vsock", "{\"guest_cid\":2,\"uds_path\":\"/v.sock\"}", "guest_cid");
	assert_int_equal(req("PUT", "/entropy", "{}"), 204);
	assert_true(a.model.has_entropy);
	expect_fault("PUT", "/entropy", "{\"rate\":1}", "`rate`");
	expect_fault("GET", "/balloon", NULL, "not configured");
	assert_int_equal(req("PUT", "/balloon", "{\"amount_mib\":64,\"deflate_on_oom\":true}"),
			 204);
	assert_int_equal(req("GET", "/balloon", NULL), 200);
	assert_int_equal(json_integer_value(json_object_get(last_json, "amount_mib")), 64);
	assert_int_equal(req("PATCH", "/balloon", "{\"amount_mib\":32}"), 204);
	assert_int_equal(fk.balloons, 0); /* before start: the model only */
	assert_int_equal(req("PATCH", "/balloon/statistics", "{\"stats_polling_interval_s\":5}"),
			 204);
	assert_int_equal(a.model.stats_s, 5);
	expect_fault("GET", "/balloon/statistics", NULL, "before starting");
	assert_int_equal(req("PUT", "/logger", "{\"log_path\":\"/l\",\"level\":\"Info\"}"), 204);
	assert_int_equal(fk.loggers, 1);
	expect_fault("PUT", "/logger", "{\"module\":\"x\"}", "module");
	assert_int_equal(req("PUT", "/metrics", "{\"metrics_path\":\"/m\"}"), 204);
	assert_int_equal(fk.metrics, 1);
	fk.fail = -EALREADY;
	expect_fault("PUT", "/metrics", "{\"metrics_path\":\"/m\"}", "fake failure");
	fk.fail = 0;
	/* No MMDS in this api: 400 naming it, never a crash. */
	expect_fault("GET", "/mmds", NULL, "MMDS");
	expect_fault("PUT", "/mmds/config", "{\"network_interfaces\":[\"nope\"]}",
		     "network interface");
}

static void test_lifecycle(void **state)
{
	(void)state;
	expect_fault("PATCH", "/vm", "{\"state\":\"Paused\"}", "before starting");
	expect_fault("PUT", "/actions", "{\"action_type\":\"SendCtrlAltDel\"}", "before starting");
	configure();
	fk.fail = -EINVAL;
	expect_fault("PUT", "/actions", "{\"action_type\":\"InstanceStart\"}", "fake failure");
	fk.fail = 0;
	assert_int_equal(a.state, API_NOT_STARTED);
	assert_int_equal(req("PUT", "/actions", "{\"action_type\":\"InstanceStart\"}"), 204);
	assert_int_equal(a.state, API_RUNNING);
	assert_int_equal(fk.starts, 2);
	/* Pre-boot-only calls are refused now, with Firecracker's wording. */
	expect_fault("PUT", "/actions", "{\"action_type\":\"InstanceStart\"}", "after starting");
	expect_fault("PUT", "/boot-source", "{\"kernel_image_path\":\"/k\"}", "after starting");
	expect_fault("PUT", "/machine-config", "{\"vcpu_count\":1,\"mem_size_mib\":128}",
		     "after starting");
	expect_fault("PUT", "/drives/rootfs", "{\"drive_id\":\"rootfs\"}", "after starting");
	expect_fault("PUT", "/logger", "{}", "after starting");
	expect_fault("PUT", "/metrics", "{\"metrics_path\":\"/m\"}", "after starting");
	expect_fault("PUT", "/snapshot/load", "{\"snapshot_path\":\"/s\"}", "not allowed");
	/* SendCtrlAltDel goes to the machine. */
	assert_int_equal(req("PUT", "/actions", "{\"action_type\":\"SendCtrlAltDel\"}"), 204);
	assert_int_equal(fk.cads, 1);
	/* A new image for a running drive goes to the device; the model (GET /vm/config)
	 * follows only when the device took it. */
	fk.fail = -EBUSY;
	expect_fault("PATCH", "/drives/rootfs",
		     "{\"drive_id\":\"rootfs\",\"path_on_host\":\"/locked\"}", "fake failure");
	fk.fail = 0;
	assert_int_equal(req("GET", "/vm/config", NULL), 200);
	assert_string_equal(
		json_string_value(json_object_get(
			json_array_get(json_object_get(last_json, "drives"), 0), "path_on_host")),
		"/r");
	assert_int_equal(
		req("PATCH", "/drives/rootfs", "{\"drive_id\":\"rootfs\",\"path_on_host\":\"/x\"}"),
		204);
	assert_int_equal(fk.swaps, 2);
	assert_int_equal(fk.swap_index, 0);
	assert_string_equal(fk.swap_path, "/x");
	assert_int_equal(req("GET", "/vm/config", NULL), 200);
	assert_string_equal(
		json_string_value(json_object_get(
			json_array_get(json_object_get(last_json, "drives"), 0), "path_on_host")),
		"/x");
	/* A limiter change after start goes to the device. */
	assert_int_equal(
		req("PATCH", "/drives/rootfs",
		    "{\"drive_id\":\"rootfs\",\"rate_limiter\":{\"bandwidth\":{\"size\":2097152,"
		    "\"refill_time\":1000}}}"),
		204);
	assert_int_equal(fk.ratelimits, 1);
	assert_string_equal(fk.kind, "drive");
	assert_int_equal(fk.rl.bandwidth.size, 2097152);
	fk.fail = -ENOSYS;
	expect_fault("PATCH", "/drives/rootfs",
		     "{\"drive_id\":\"rootfs\",\"rate_limiter\":{\"ops\":{\"size\":1,"
		     "\"refill_time\":1}}}",
		     "fake failure");
	fk.fail = 0;
	/* Snapshots need a pause. */
	expect_fault("PUT", "/snapshot/create", "{\"snapshot_path\":\"/s\"}", "paused");
	assert_int_equal(req("PATCH", "/vm", "{\"state\":\"Paused\"}"), 204);
	assert_int_equal(a.state, API_PAUSED);
	assert_int_equal(req("GET", "/", NULL), 200);
	assert_string_equal(json_string_value(json_object_get(last_json, "state")), "Paused");
	expect_fault("PUT", "/snapshot/create",
		     "{\"snapshot_path\":\"/s\",\"snapshot_type\":\"Diff\"}", "track_dirty_pages");
	expect_fault("PUT", "/snapshot/create", "{\"snapshot_path\":\"/s\",\"version\":\"1\"}",
		     "`version`");
	assert_int_equal(req("PUT", "/snapshot/create",
			     "{\"snapshot_type\":\"Full\",\"snapshot_path\":\"/s\","
			     "\"mem_file_path\":\"/m\"}"),
			 204);
	assert_string_equal(fk.snap.snapshot_path, "/s");
	assert_string_equal(fk.snap.mem_file_path, "/m");
	assert_false(fk.snap.diff);
	expect_fault("PATCH", "/vm", "{\"state\":\"Stopped\"}", "Paused");
	assert_int_equal(req("PATCH", "/vm", "{\"state\":\"Resumed\"}"), 204);
	assert_int_equal(a.state, API_RUNNING);
	assert_int_equal(req("PUT", "/actions", "{\"action_type\":\"FlushMetrics\"}"), 204);
	assert_int_equal(fk.flushes, 1);
	/* Balloon after start goes to the device. */
	assert_int_equal(a.model.has_balloon, false);
	expect_fault("PATCH", "/balloon", "{\"amount_mib\":1}", "not configured");
	/* A NULL op: 400, not a crash. */
	{
		static struct api_ops none;

		none = ops;
		none.ctrl_alt_del = NULL;
		a.ops = &none;
		expect_fault("PUT", "/actions", "{\"action_type\":\"SendCtrlAltDel\"}",
			     "not supported");
		a.ops = &ops;
	}
}

static void test_snapshot_load(void **state)
{
	(void)state;
	expect_fault("PUT", "/snapshot/load",
		     "{\"snapshot_path\":\"/s\",\"mem_backend\":{\"backend_type\":\"Mmap\","
		     "\"backend_path\":\"/u\"}}",
		     "backend_type");
	expect_fault("PUT", "/snapshot/load",
		     "{\"snapshot_path\":\"/s\",\"mem_backend\":{\"backend_type\":\"Uffd\"}}",
		     "backend_path");
	assert_int_equal(fk.loads, 0);
	expect_fault("PUT", "/snapshot/load", "{\"snapshot_path\":\"/s\",\"clock_realtime\":1}",
		     "clock_realtime");
	expect_fault("PUT", "/snapshot/load",
		     "{\"snapshot_path\":\"/s\",\"mem_file_path\":\"/m\","
		     "\"mem_backend\":{\"backend_type\":\"File\",\"backend_path\":\"/m\"}}",
		     "mutually exclusive");
	expect_fault("PUT", "/snapshot/load",
		     "{\"snapshot_path\":\"/s\",\"network_overrides\":[{\"iface_id\":\"e\"}]}",
		     "host_dev_name");
	assert_int_equal(
		req("PUT", "/snapshot/load",
		    "{\"snapshot_path\":\"/s\",\"mem_backend\":{\"backend_type\":\"File\","
		    "\"backend_path\":\"/s/memory\"},\"enable_diff_snapshots\":true,"
		    "\"network_overrides\":[{\"iface_id\":\"eth0\",\"host_dev_name\":\"tap9\"}],"
		    "\"vsock_override\":{\"uds_path\":\"/v2\"}}"),
		204);
	assert_int_equal(a.state, API_PAUSED); /* resume_vm false */
	assert_string_equal(fk.load.mem_path, "/s/memory");
	assert_true(fk.load.track_dirty);
	assert_int_equal(fk.load.nr_net_overrides, 1);
	assert_string_equal(fk.load.net_overrides[0].host_dev_name, "tap9");
	assert_string_equal(fk.load.vsock_uds, "/v2");
	assert_false(fk.load.clock_as_saved); /* clock_realtime absent: advanced */
	assert_int_equal(req("PATCH", "/vm", "{\"state\":\"Resumed\"}"), 204);
	assert_int_equal(a.state, API_RUNNING);
}

/* mem_backend Uffd: the path goes to the load as the handler's socket, not a memory file. */
static void test_snapshot_load_uffd(void **state)
{
	(void)state;
	assert_int_equal(req("PUT", "/snapshot/load",
			     "{\"snapshot_path\":\"/s\",\"resume_vm\":true,\"mem_backend\":"
			     "{\"backend_type\":\"Uffd\",\"backend_path\":\"/run/pf.sock\"}}"),
			 204);
	assert_int_equal(fk.loads, 1);
	assert_string_equal(fk.load.uffd_path, "/run/pf.sock");
	assert_string_equal(fk.load.mem_path, "");
	assert_int_equal(a.state, API_RUNNING);
}

/* As in Firecracker: no load once a boot-specific resource is configured (a refused PUT does
 * not count, see test_snapshot_load); logger and metrics do not count either. */
static void test_snapshot_load_after_boot_config(void **state)
{
	(void)state;
	assert_int_equal(req("PUT", "/machine-config", "{\"vcpu_count\":1,\"mem_size_mib\":128}"),
			 204);
	expect_fault("PUT", "/snapshot/load", "{\"snapshot_path\":\"/s\"}",
		     "after configuring boot-specific resources");
	assert_int_equal(fk.loads, 0);
}

/* clock_realtime false: the load keeps the guest clock as saved. */
static void test_snapshot_load_clock_as_saved(void **state)
{
	(void)state;
	assert_int_equal(
		req("PUT", "/snapshot/load", "{\"snapshot_path\":\"/s\",\"clock_realtime\":false}"),
		204);
	assert_true(fk.load.clock_as_saved);
}

static void test_config_roundtrip_and_machine(void **state)
{
	static const char doc[] =
		"{\"boot-source\":{\"kernel_image_path\":\"/k\",\"boot_args\":\"console=ttyS0\"},"
		"\"drives\":[{\"drive_id\":\"data\",\"path_on_host\":\"/"
		"d\",\"is_root_device\":false,"
		"\"is_read_only\":true},{\"drive_id\":\"root\",\"path_on_host\":\"/r\","
		"\"is_root_device\":true,\"is_read_only\":false,\"partuuid\":\"abcd-01\"}],"
		"\"machine-config\":{\"vcpu_count\":2,\"mem_size_mib\":256},"
		"\"network-interfaces\":[{\"iface_id\":\"eth0\",\"host_dev_name\":\"tap0\"}],"
		"\"vsock\":{\"guest_cid\":7,\"uds_path\":\"/v\"},\"entropy\":{},"
		"\"balloon\":{\"amount_mib\":0,\"deflate_on_oom\":false}}";
	static struct fc_model m, m2;
	static struct machine_config cfg;
	char err[256];
	json_t *j = json_loads(doc, 0, NULL), *out, *out2;

	(void)state;
	fc_model_init(&m);
	assert_int_equal(fc_model_config_file(&m, j, err, sizeof(err)), 0);
	out = fc_model_to_json(&m);
	/* What GET /vm/config gives back loads into the same model. */
	fc_model_init(&m2);
	assert_int_equal(fc_model_config_file(&m2, out, err, sizeof(err)), 0);
	out2 = fc_model_to_json(&m2);
	assert_true(json_equal(out, out2));
	assert_int_equal(fc_model_to_machine(&m, &cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg.smp, 2);
	assert_int_equal(cfg.mem_mib, 256);
	assert_int_equal(cfg.nr_disks, 2);
	assert_string_equal(cfg.disks[0].path, "/r"); /* the root device is /dev/vda */
	assert_true(cfg.disks[1].read_only);
	assert_string_equal(cfg.cmdline, "console=ttyS0 root=PARTUUID=abcd-01 rw");
	assert_int_equal(cfg.nets[0].kind, MACHINE_NET_TAP);
	assert_string_equal(cfg.nets[0].tap, "tap0");
	assert_int_equal(cfg.vsock_cid, 7);
	assert_false(cfg.no_rng);
	assert_true(cfg.balloon);
	json_decref(j);
	json_decref(out);
	json_decref(out2);
	/* Unknown sections and no kernel. */
	j = json_loads("{\"boot-source\":{\"kernel_image_path\":\"/k\"},\"extras\":{}}", 0, NULL);
	fc_model_init(&m);
	assert_int_equal(fc_model_config_file(&m, j, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "extras"));
	json_decref(j);
	fc_model_init(&m);
	assert_int_equal(fc_model_to_machine(&m, &cfg, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "kernel"));
}

/* A booted model's machine description (what a snapshot records) gives back the same
 * devices: GET /vm/config of a loaded VM lists what the booted one listed. */
static void test_model_from_machine_round_trip(void **state)
{
	static const char doc[] =
		"{\"boot-source\":{\"kernel_image_path\":\"/k\",\"initrd_path\":\"/i\","
		"\"boot_args\":\"console=ttyS0\"},"
		"\"drives\":[{\"drive_id\":\"data\",\"path_on_host\":\"/"
		"d\",\"is_root_device\":false,"
		"\"is_read_only\":true,\"cache_type\":\"Writeback\",\"io_engine\":\"Async\","
		"\"rate_limiter\":{\"bandwidth\":{\"size\":2097152,\"one_time_burst\":0,"
		"\"refill_time\":1000}}},"
		"{\"drive_id\":\"rootfs\",\"path_on_host\":\"/r\",\"is_root_device\":true,"
		"\"is_read_only\":false,\"partuuid\":\"abcd-01\"}],"
		"\"machine-config\":{\"vcpu_count\":2,\"mem_size_mib\":256,\"huge_pages\":\"2M\"},"
		"\"network-interfaces\":[{\"iface_id\":\"net1\",\"host_dev_name\":\"ignition:"
		"user\","
		"\"guest_mac\":\"02:fc:00:00:00:05\",\"rx_rate_limiter\":{\"ops\":{\"size\":100,"
		"\"one_time_burst\":0,\"refill_time\":1000}}},"
		"{\"iface_id\":\"net2\",\"host_dev_name\":\"tap7\"}],"
		"\"vsock\":{\"guest_cid\":7,\"uds_path\":\"/v\"},\"entropy\":{},"
		"\"balloon\":{\"amount_mib\":0,\"deflate_on_oom\":true,"
		"\"stats_polling_interval_s\":5},"
		"\"logger\":{\"log_path\":\"/l\",\"level\":\"Info\"}}";
	static struct fc_model m, back;
	static struct machine_config cfg;
	json_t *j = json_loads(doc, 0, NULL), *booted, *d, *n;
	char err[256];

	(void)state;
	fc_model_init(&m);
	assert_int_equal(fc_model_config_file(&m, j, err, sizeof(err)), 0);
	json_decref(j);
	booted = fc_model_to_json(&m);
	assert_int_equal(fc_model_to_machine(&m, &cfg, err, sizeof(err)), 0);
	/* The machine description carries the API's names. */
	assert_string_equal(cfg.disks[0].id, "rootfs");
	assert_true(cfg.disks[0].root);
	assert_string_equal(cfg.disks[0].partuuid, "abcd-01");
	assert_string_equal(cfg.disks[1].id, "data");
	assert_true(cfg.disks[1].writeback && cfg.disks[1].async);
	assert_string_equal(cfg.nets[0].id, "net1");
	assert_true(cfg.balloon_deflate_on_oom);
	/* MMDS as the snapshot recorded it (machine_create fills it from the store): on net2. */
	cfg.mmds.version = 2;
	cfg.mmds.ipv4 = 0xa9fe0001;
	cfg.mmds.ifaces = 2;
	cfg.mmds.imds_compat = true;
	/* A load: a fresh model (logger only) takes the machine's devices. */
	fc_model_init(&back);
	back.has_logger = true;
	fc_model_from_machine(&back, &cfg, 12, true);
	assert_true(back.has_logger);
	assert_true(back.track_dirty);
	assert_int_equal(back.balloon_mib, 12);
	assert_string_equal(back.boot_args, "console=ttyS0 root=PARTUUID=abcd-01 rw");
	j = fc_model_to_json(&back);
	d = json_object_get(j, "drives");
	assert_int_equal(json_array_size(d), 2);
	/* Machine order: the root device first; its index is the machine's disk index. */
	assert_string_equal(json_string_value(json_object_get(json_array_get(d, 0), "drive_id")),
			    "rootfs");
	assert_string_equal(json_string_value(json_object_get(json_array_get(d, 0), "partuuid")),
			    "abcd-01");
	assert_true(json_is_true(json_object_get(json_array_get(d, 0), "is_root_device")));
	assert_int_equal(fc_model_disk_index(&back, 0), 0);
	assert_int_equal(fc_model_disk_index(&back, 1), 1);
	/* The data drive comes back exactly as it was configured. */
	assert_true(json_equal(json_array_get(d, 1),
			       json_array_get(json_object_get(booted, "drives"), 0)));
	json_decref(booted);
	n = json_object_get(j, "network-interfaces");
	assert_int_equal(json_array_size(n), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(n, 0), "guest_mac")),
			    "02:fc:00:00:00:05");
	assert_non_null(json_object_get(json_array_get(n, 0), "rx_rate_limiter"));
	assert_null(json_object_get(json_array_get(n, 0), "tx_rate_limiter"));
	assert_string_equal(
		json_string_value(json_object_get(json_array_get(n, 1), "host_dev_name")), "tap7");
	assert_int_equal(
		json_integer_value(json_object_get(json_object_get(j, "vsock"), "guest_cid")), 7);
	assert_string_equal(json_string_value(json_object_get(json_object_get(j, "machine-config"),
							      "huge_pages")),
			    "2M");
	assert_true(json_is_true(json_object_get(json_object_get(j, "balloon"), "deflate_on_oom")));
	assert_true(json_is_object(json_object_get(j, "entropy")));
	assert_true(json_is_object(json_object_get(j, "logger")));
	n = json_object_get(j, "mmds-config");
	assert_string_equal(json_string_value(json_object_get(n, "version")), "V2");
	assert_string_equal(json_string_value(json_object_get(n, "ipv4_address")), "169.254.0.1");
	assert_int_equal(json_array_size(json_object_get(n, "network_interfaces")), 1);
	assert_string_equal(
		json_string_value(json_array_get(json_object_get(n, "network_interfaces"), 0)),
		"net2");
	assert_true(json_is_true(json_object_get(n, "imds_compat")));
	/* What it answers loads as a config file again (one layout). */
	fc_model_init(&m);
	assert_int_equal(fc_model_config_file(&m, j, err, sizeof(err)), 0);
	assert_true(m.has_mmds && m.mmds_imds_compat && m.mmds_version == 2);
	/* imds_compat must be a boolean. */
	json_object_set_new(n, "imds_compat", json_string("yes"));
	fc_model_init(&m);
	assert_int_equal(fc_model_config_file(&m, j, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "imds_compat"));
	json_decref(j);
}

/* A snapshot without ids (older record, command line): drive<N> / eth<N>, never two devices
 * under one id, and an invalid recorded id replaced. */
static void test_model_from_machine_default_ids(void **state)
{
	static struct machine_config cfg;
	static struct fc_model m;

	(void)state;
	memset(&cfg, 0, sizeof(cfg));
	cfg.mem_mib = 128;
	cfg.smp = 1;
	cfg.no_rng = true;
	cfg.nr_disks = 3;
	strcpy(cfg.disks[0].path, "/a");
	strcpy(cfg.disks[1].path, "/b");
	strcpy(cfg.disks[1].id, "drive0");
	strcpy(cfg.disks[2].path, "/c");
	strcpy(cfg.disks[2].id, "bad id/");
	cfg.disks[2].root = true; /* not the first disk: not a root device */
	cfg.nr_nets = 1;
	fc_model_init(&m);
	fc_model_from_machine(&m, &cfg, 0, false);
	assert_string_equal(m.drives[0].id, "drive0");
	assert_string_equal(m.drives[1].id, "drive1");
	assert_string_equal(m.drives[2].id, "drive2");
	assert_false(m.drives[2].root);
	assert_string_equal(m.nets[0].id, "eth0");
	assert_string_equal(m.nets[0].host_dev, FC_NET_USER);
	assert_false(m.has_entropy);
	assert_false(m.has_balloon);
	assert_false(m.has_vsock);
	assert_false(m.has_boot);
}

/* After a load the router answers for the restored devices: GET /vm/config, PATCH of a drive's
 * image (machine disk index) and of an interface's limiter, GET /balloon. */
static void test_snapshot_load_restores_devices(void **state)
{
	static struct fc_model m;
	char err[256];
	json_t *d;

	(void)state;
	/* The booted VM's description, as its snapshot records it. */
	api_init(&a, "t1", &ops, NULL);
	configure();
	assert_int_equal(req("PUT", "/drives/data",
			     "{\"drive_id\":\"data\",\"path_on_host\":\"/d\","
			     "\"is_root_device\":false}"),
			 204);
	assert_int_equal(req("PUT", "/network-interfaces/net1",
			     "{\"iface_id\":\"net1\",\"host_dev_name\":\"ignition:user\"}"),
			 204);
	assert_int_equal(req("PUT", "/balloon", "{\"amount_mib\":0,\"deflate_on_oom\":false}"),
			 204);
	m = a.model;
	assert_int_equal(fc_model_to_machine(&m, &restored_cfg, err, sizeof(err)), 0);
	memcpy(restored_cfg.nets[0].mac, "\x02\x00\x00\x00\x00\x09", 6); /* a clone's MAC */
	restored_cfg.nets[0].has_mac = true;
	/* A fresh process loads it. */
	api_init(&a, "t2", &ops, NULL);
	fk.restored = true;
	assert_int_equal(req("GET", "/balloon", NULL), 400);
	assert_int_equal(req("PUT", "/snapshot/load", "{\"snapshot_path\":\"/s\"}"), 204);
	assert_int_equal(req("GET", "/vm/config", NULL), 200);
	d = json_object_get(last_json, "drives");
	assert_int_equal(json_array_size(d), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(d, 1), "drive_id")),
			    "data");
	assert_string_equal(
		json_string_value(json_object_get(
			json_array_get(json_object_get(last_json, "network-interfaces"), 0),
			"guest_mac")),
		"02:00:00:00:00:09");
	assert_int_equal(req("GET", "/balloon", NULL), 200);
	assert_int_equal(json_integer_value(json_object_get(last_json, "amount_mib")), 32);
	assert_true(json_is_false(json_object_get(last_json, "deflate_on_oom")));
	/* Paused after the load: the PATCH calls reach the restored devices. */
	assert_int_equal(
		req("PATCH", "/drives/data", "{\"drive_id\":\"data\",\"path_on_host\":\"/d2\"}"),
		204);
	assert_int_equal(fk.swaps, 1);
	assert_int_equal(fk.swap_index, 1);
	assert_string_equal(fk.swap_path, "/d2");
	assert_int_equal(req("PATCH", "/network-interfaces/net1",
			     "{\"iface_id\":\"net1\",\"rx_rate_limiter\":{\"bandwidth\":"
			     "{\"size\":1048576,\"refill_time\":100}}}"),
			 204);
	assert_int_equal(fk.ratelimits, 1);
	assert_string_equal(fk.kind, "net");
	assert_int_equal(fk.rl.bandwidth.size, 1048576);
	assert_int_equal(req("GET", "/vm/config", NULL), 200);
	assert_string_equal(
		json_string_value(json_object_get(
			json_array_get(json_object_get(last_json, "drives"), 1), "path_on_host")),
		"/d2");
	assert_non_null(
		json_object_get(json_array_get(json_object_get(last_json, "network-interfaces"), 0),
				"rx_rate_limiter"));
	expect_fault("PATCH", "/drives/nope", "{\"drive_id\":\"nope\",\"path_on_host\":\"/x\"}",
		     "does not exist");
	/* A failed load leaves the model alone. */
	api_init(&a, "t3", &ops, NULL);
	fk.fail = -EINVAL;
	expect_fault("PUT", "/snapshot/load", "{\"snapshot_path\":\"/s\"}", "fake failure");
	assert_int_equal(a.model.nr_drives, 0);
	fk.fail = 0;
	/* The same interface twice in network_overrides is refused before any load. */
	expect_fault("PUT", "/snapshot/load",
		     "{\"snapshot_path\":\"/s\",\"network_overrides\":["
		     "{\"iface_id\":\"net1\",\"host_dev_name\":\"tap1\"},"
		     "{\"iface_id\":\"net1\",\"host_dev_name\":\"tap2\"}]}",
		     "twice");
}

/* ---- evloop_call ---- */
static int add_one(void *arg)
{
	int *v = arg;

	(*v)++;
	return 7;
}

static void *loop_thread(void *arg)
{
	return (void *)(intptr_t)evloop_run(arg);
}

static void test_evloop_call(void **state)
{
	struct evloop ev;
	pthread_t t;
	int v = 0;

	(void)state;
	assert_int_equal(evloop_init(&ev), 0);
	assert_int_equal(pthread_create(&t, NULL, loop_thread, &ev), 0);
	for (int i = 0; i < 100; i++)
		assert_int_equal(evloop_call(&ev, add_one, &v), 7);
	assert_int_equal(v, 100);
	evloop_stop(&ev);
	pthread_join(t, NULL);
	/* Once the loop is gone, a call fails instead of waiting forever. */
	assert_int_equal(evloop_call(&ev, add_one, &v), -ESHUTDOWN);
	assert_int_equal(v, 100);
	evloop_destroy(&ev);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_info_and_version, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_path_and_method, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_huge_body, setup, teardown),
		cmocka_unit_test_setup_teardown(test_machine_config, setup, teardown),
		cmocka_unit_test_setup_teardown(test_drives, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nets, setup, teardown),
		cmocka_unit_test_setup_teardown(test_small_devices, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lifecycle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_load, setup, teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_load_uffd, setup, teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_load_clock_as_saved, setup, teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_load_after_boot_config, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_load_restores_devices, setup,
						teardown),
		cmocka_unit_test(test_model_from_machine_round_trip),
		cmocka_unit_test(test_model_from_machine_default_ids),
		cmocka_unit_test_setup_teardown(test_config_roundtrip_and_machine, setup, teardown),
		cmocka_unit_test(test_evloop_call),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
