/* The REST API's router (src/api/router.c, fc_model.c): a sequence of requests through
 * api_handle() with fake operations whose results the input chooses.  Every answer must be
 * 200 with a JSON body, 204 without one, or 400 with a JSON object holding a string
 * "fault_message"; the model must always convert (or refuse to convert) to a machine_config
 * without a crash, and GET /vm/config must always be valid JSON.
 *
 * Input: [flags u8] then requests, each [method u8] [path length u8] [path] [body length u16]
 * [body], until the input ends. */
#include "api/fc_model.h"
#include "api/router.h"
#include "harness.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { F_FAIL = 1 << 0, F_NULL_OPS = 1 << 1 };

static unsigned flags;

static int res(char *err, size_t n)
{
	if (!(flags & F_FAIL))
		return 0;
	snprintf(err, n, "fake failure");
	return -EIO;
}

static int f_start(void *c, const struct fc_model *m, char *e, size_t n)
{
	static struct machine_config cfg;
	char err[256];

	(void)c;
	/* The model must always convert or refuse with a message. */
	if (fc_model_to_machine(m, &cfg, err, sizeof(err)) && !err[0])
		fuzz_fail("fc_model_to_machine failed without a message");
	return res(e, n);
}
static int f_plain(void *c, char *e, size_t n)
{
	(void)c;
	return res(e, n);
}
static int f_snap(void *c, const struct api_snapshot_create *s, char *e, size_t n)
{
	(void)c;
	FUZZ_CHECK(s->snapshot_path[0]);
	return res(e, n);
}
static int f_load(void *c, const struct api_snapshot_load *l, struct fc_model *m, char *e, size_t n)
{
	(void)c;
	(void)m;
	FUZZ_CHECK(l->nr_net_overrides >= 0 && l->nr_net_overrides <= MACHINE_MAX_NETS);
	return res(e, n);
}
static int f_logger(void *c, const struct fc_model *m, char *e, size_t n)
{
	(void)c;
	(void)m;
	return res(e, n);
}
static int f_metrics(void *c, const char *p, char *e, size_t n)
{
	(void)c;
	(void)p;
	return res(e, n);
}
static int f_balloon(void *c, uint32_t mib, char *e, size_t n)
{
	(void)c;
	(void)mib;
	return res(e, n);
}
static int f_stats(void *c, char **json, char *e, size_t n)
{
	(void)c;
	if (flags & F_FAIL)
		return res(e, n);
	*json = strdup("{}");
	return *json ? 0 : -ENOMEM;
}
static int f_rl(void *c, const char *kind, int idx, const struct ratelimit_cfg *rl,
		const struct ratelimit_cfg *tx, char *e, size_t n)
{
	(void)c;
	(void)kind;
	(void)rl;
	(void)tx;
	FUZZ_CHECK(idx >= 0);
	return res(e, n);
}

static const struct api_ops real = {
	.instance_start = f_start,
	.ctrl_alt_del = f_plain,
	.flush_metrics = f_plain,
	.pause = f_plain,
	.resume = f_plain,
	.snapshot_create = f_snap,
	.snapshot_load = f_load,
	.logger = f_logger,
	.metrics = f_metrics,
	.balloon_target = f_balloon,
	.balloon_stats = f_stats,
	.ratelimit = f_rl,
};
static const struct api_ops none;

static const char *const methods[] = { "GET", "PUT", "PATCH", "DELETE", "POST" };

static void check_answer(unsigned st, const char *out)
{
	json_t *j;

	if (st == 204) {
		FUZZ_CHECK(out == NULL);
		return;
	}
	FUZZ_CHECK(st == 200 || st == 400);
	if (!out) /* out of memory only */
		return;
	j = json_loads(out, JSON_DECODE_ANY, NULL);
	if (!j)
		fuzz_fail("answer %u is not JSON: %s", st, out);
	if (st == 400 && !json_is_string(json_object_get(j, "fault_message")))
		fuzz_fail("400 without fault_message: %s", out);
	json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	static struct api a;

	flags = fuzz_u8(&in);
	api_init(&a, "fuzz", flags & F_NULL_OPS ? &none : &real, NULL);
	for (int i = 0; i < 64 && in.n; i++) {
		const char *method = methods[fuzz_u8(&in) % 5];
		const uint8_t *p, *b;
		size_t plen = fuzz_bytes(&in, fuzz_u8(&in), &p);
		size_t blen = fuzz_bytes(&in, fuzz_u16(&in), &b);
		char path[256];
		const char *route;
		unsigned st;
		char *out;

		memcpy(path, p, plen);
		path[plen] = '\0';
		api_handle(&a, method, path, (const char *)b, blen, &st, &out, &route);
		FUZZ_CHECK(route != NULL);
		check_answer(st, out);
		free(out);
	}
	{
		json_t *j = fc_model_to_json(&a.model);

		FUZZ_CHECK(j != NULL);
		json_decref(j);
	}
	return 0;
}

static void req(struct fuzz_seed *s, uint8_t method, const char *path, const char *body)
{
	seed_u8(s, method);
	seed_u8(s, (uint8_t)strlen(path));
	seed_bytes(s, path, strlen(path));
	seed_u16(s, (uint16_t)strlen(body));
	seed_bytes(s, body, strlen(body));
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static struct fuzz_seed s;

	(void)argc;
	(void)argv;
	if (!fuzz_want_seeds())
		return 0;
	json_object_seed(1);
	seed_u8(&s, 0);
	req(&s, 1, "/boot-source",
	    "{\"kernel_image_path\":\"/k\",\"boot_args\":\"console=ttyS0\"}");
	req(&s, 1, "/drives/rootfs",
	    "{\"drive_id\":\"rootfs\",\"path_on_host\":\"/r\",\"is_root_device\":true,"
	    "\"rate_limiter\":{\"bandwidth\":{\"size\":100,\"refill_time\":10}}}");
	req(&s, 1, "/network-interfaces/eth0",
	    "{\"iface_id\":\"eth0\",\"host_dev_name\":\"tap0\",\"guest_mac\":\"aa:bb:cc:dd:ee:"
	    "ff\"}");
	req(&s, 1, "/machine-config", "{\"vcpu_count\":2,\"mem_size_mib\":256}");
	req(&s, 1, "/balloon", "{\"amount_mib\":10,\"deflate_on_oom\":true}");
	req(&s, 1, "/actions", "{\"action_type\":\"InstanceStart\"}");
	req(&s, 2, "/vm", "{\"state\":\"Paused\"}");
	req(&s, 1, "/snapshot/create", "{\"snapshot_path\":\"/s\",\"mem_file_path\":\"/m\"}");
	req(&s, 2, "/drives/rootfs", "{\"drive_id\":\"rootfs\",\"rate_limiter\":{\"ops\":null}}");
	req(&s, 0, "/balloon/statistics", "");
	req(&s, 0, "/vm/config", "");
	fuzz_seed_save(&s, "session");
	seed_u8(&s, 0);
	req(&s, 1, "/snapshot/load",
	    "{\"snapshot_path\":\"/s\",\"mem_backend\":{\"backend_type\":\"File\","
	    "\"backend_path\":\"/m\"},\"network_overrides\":[{\"iface_id\":\"e\","
	    "\"host_dev_name\":\"t\"}],\"vsock_override\":{\"uds_path\":\"/"
	    "v\"},\"resume_vm\":true}");
	fuzz_seed_save(&s, "load");
	seed_u8(&s, F_FAIL);
	req(&s, 1, "/mmds/config", "{\"network_interfaces\":[],\"version\":\"V2\"}");
	req(&s, 1, "/vsock", "{\"guest_cid\":3,\"uds_path\":\"/v\"}");
	req(&s, 1, "/logger", "{\"level\":\"Debug\"}");
	req(&s, 3, "/", "x");
	fuzz_seed_save(&s, "errors");
	return 0;
}
