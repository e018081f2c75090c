/* Firecracker's pre-boot configuration model: see fc_model.h. */
#include "api/fc_model.h"

#include "util/log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define VCPUS_MAX 32 /* VM_MAX_VCPUS */
/* Guest RAM the model accepts, in MiB (the machine checks what the host can give). */
#define MEM_MIB_MAX (1024 * 1024)

__attribute__((format(printf, 3, 4))) static int bad(char *err, size_t n, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, n, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

int fc_json_fields(json_t *obj, const char *what, const char *const *allowed, char *err, size_t n)
{
	const char *key;
	json_t *v;

	if (!json_is_object(obj))
		return bad(err, n,
			   "An error occurred when deserializing the json body of a request: "
			   "%s must be a JSON object",
			   what);
	json_object_foreach(obj, key, v)
	{
		bool ok = false;

		for (int i = 0; allowed[i]; i++)
			ok |= !strcmp(key, allowed[i]);
		if (!ok) {
			char list[512] = "";
			size_t used = 0;

			for (int i = 0; allowed[i] && used < sizeof(list); i++) {
				int w = snprintf(list + used, sizeof(list) - used, "%s`%s`",
						 i ? ", " : "", allowed[i]);
				if (w < 0)
					break;
				used += (size_t)w;
			}
			snprintf(err, n,
				 "An error occurred when deserializing the json body of a request: "
				 "unknown field `%.64s` in %s, expected one of %s",
				 key, what, list);
			return -EINVAL;
		}
	}
	return 0;
}

int fc_json_str(json_t *obj, const char *key, bool required, char *buf, size_t size, char *err,
		size_t n)
{
	json_t *v = json_object_get(obj, key);

	if (!v || json_is_null(v)) { /* Firecracker: null = not given */
		if (required)
			return bad(err, n, "missing field `%s`", key);
		return 0;
	}
	if (!json_is_string(v))
		return bad(err, n, "invalid type for field `%s`: expected a string", key);
	if (json_string_length(v) >= size || strlen(json_string_value(v)) != json_string_length(v))
		return bad(err, n, "field `%s` is too long or holds a NUL byte", key);
	memcpy(buf, json_string_value(v), json_string_length(v) + 1);
	return 0;
}

int fc_json_bool(json_t *obj, const char *key, bool required, bool *out, char *err, size_t n)
{
	json_t *v = json_object_get(obj, key);

	if (!v || json_is_null(v)) { /* Firecracker: null = not given */
		if (required)
			return bad(err, n, "missing field `%s`", key);
		return 0;
	}
	if (!json_is_boolean(v))
		return bad(err, n, "invalid type for field `%s`: expected a boolean", key);
	*out = json_is_true(v);
	return 0;
}

int fc_json_u64(json_t *obj, const char *key, bool required, uint64_t max, uint64_t *out, char *err,
		size_t n)
{
	json_t *v = json_object_get(obj, key);
	json_int_t i;

	if (!v || json_is_null(v)) { /* Firecracker: null = not given */
		if (required)
			return bad(err, n, "missing field `%s`", key);
		return 0;
	}
	if (!json_is_integer(v))
		return bad(err, n, "invalid type for field `%s`: expected an unsigned integer",
			   key);
	i = json_integer_value(v);
	if (i < 0 || (uint64_t)i > max) {
		snprintf(err, n,
			 "invalid value for field `%s`: %" PRId64 " is out of range [0, %" PRIu64
			 "]",
			 key, (int64_t)i, max);
		return -EINVAL;
	}
	*out = (uint64_t)i;
	return 0;
}

static int parse_bucket(json_t *v, const char *what, struct tbucket_cfg *b, char *err, size_t n)
{
	static const char *const fields[] = { "size", "one_time_burst", "refill_time", NULL };
	uint64_t size = 0, burst = 0, refill = 0;
	int ret;

	if ((ret = fc_json_fields(v, what, fields, err, n)) ||
	    (ret = fc_json_u64(v, "size", true, UINT64_MAX >> 1, &size, err, n)) ||
	    (ret = fc_json_u64(v, "one_time_burst", false, UINT64_MAX >> 1, &burst, err, n)) ||
	    (ret = fc_json_u64(v, "refill_time", true, UINT64_MAX >> 1, &refill, err, n)))
		return ret;
	if (size && !refill)
		return bad(err, n, "%s: refill_time must be > 0 when size is not 0", what);
	b->size = size;
	b->one_time_burst = burst;
	b->refill_time_ms = refill;
	return 0;
}

int fc_json_ratelimit(json_t *v, const char *what, struct ratelimit_cfg *out, bool *set, char *err,
		      size_t n)
{
	static const char *const fields[] = { "bandwidth", "ops", NULL };
	struct ratelimit_cfg c = { 0 };
	json_t *b, *o;
	int ret;

	if (json_is_null(v)) {
		memset(out, 0, sizeof(*out));
		*set = false;
		return 0;
	}
	if ((ret = fc_json_fields(v, what, fields, err, n)))
		return ret;
	b = json_object_get(v, "bandwidth");
	o = json_object_get(v, "ops");
	if (b && !json_is_null(b) && (ret = parse_bucket(b, "bandwidth", &c.bandwidth, err, n)))
		return ret;
	if (o && !json_is_null(o) && (ret = parse_bucket(o, "ops", &c.ops, err, n)))
		return ret;
	*out = c;
	*set = true;
	return 0;
}

static json_t *bucket_out(const struct tbucket_cfg *b)
{
	return json_pack("{s:I,s:I,s:I}", "size", (json_int_t)b->size, "one_time_burst",
			 (json_int_t)b->one_time_burst, "refill_time",
			 (json_int_t)b->refill_time_ms);
}

json_t *fc_json_ratelimit_out(const struct ratelimit_cfg *c)
{
	json_t *o = json_object();

	if (!o)
		return NULL;
	if (c->bandwidth.size)
		json_object_set_new(o, "bandwidth", bucket_out(&c->bandwidth));
	if (c->ops.size)
		json_object_set_new(o, "ops", bucket_out(&c->ops));
	return o;
}

void fc_model_init(struct fc_model *m)
{
	memset(m, 0, sizeof(*m));
	m->vcpus = 1;
	m->mem_mib = 128;
	snprintf(m->cpu_template, sizeof(m->cpu_template), "None");
	snprintf(m->huge_pages, sizeof(m->huge_pages), "None");
}

int fc_model_boot_source(struct fc_model *m, json_t *body, char *err, size_t n)
{
	static const char *const fields[] = { "kernel_image_path", "initrd_path", "boot_args",
					      NULL };
	static struct fc_model t; /* copy-on-success: large, and the API is one thread */
	int ret;

	t = *m;
	t.initrd[0] = t.boot_args[0] = '\0';
	t.has_boot_args = json_object_get(body, "boot_args") != NULL;
	if ((ret = fc_json_fields(body, "boot-source", fields, err, n)) ||
	    (ret = fc_json_str(body, "kernel_image_path", true, t.kernel, sizeof(t.kernel), err,
			       n)) ||
	    (ret = fc_json_str(body, "initrd_path", false, t.initrd, sizeof(t.initrd), err, n)) ||
	    (ret = fc_json_str(body, "boot_args", false, t.boot_args, sizeof(t.boot_args), err, n)))
		return ret;
	if (!t.kernel[0])
		return bad(err, n, "kernel_image_path must not be empty");
	t.has_boot = true;
	*m = t;
	return 0;
}

static int find_drive(const struct fc_model *m, const char *id)
{
	for (int i = 0; i < m->nr_drives; i++)
		if (!strcmp(m->drives[i].id, id))
			return i;
	return -1;
}

/* The path's id and the body's must agree (Firecracker checks it too). */
static int check_id(json_t *body, const char *key, const char *id, char *err, size_t n)
{
	char bid[FC_ID_MAX] = "";
	int ret = fc_json_str(body, key, true, bid, sizeof(bid), err, n);

	if (ret)
		return ret;
	if (strcmp(bid, id))
		return bad(err, n,
			   "The id from the path `%s` does not match the id from the body `%s`", id,
			   bid);
	return 0;
}

static bool valid_id(const char *id)
{
	size_t len = strlen(id);

	if (!len || len >= FC_ID_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!(id[i] == '_' || id[i] == '-' || id[i] == '.' ||
		      (id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'z') ||
		      (id[i] >= 'A' && id[i] <= 'Z')))
			return false;
	return true;
}

int fc_model_drive(struct fc_model *m, const char *id, json_t *body, bool patch, char *err,
		   size_t n)
{
	static const char *const fields[] = { "drive_id",  "path_on_host", "is_root_device",
					      "partuuid",  "is_read_only", "cache_type",
					      "io_engine", "rate_limiter", "socket",
					      NULL };
	static const char *const pfields[] = { "drive_id", "path_on_host", "rate_limiter", NULL };
	int i = valid_id(id) ? find_drive(m, id) : -2;
	struct fc_drive d = { 0 };
	json_t *rl;
	int ret;

	if (i == -2)
		return bad(err, n, "Invalid drive id `%.64s`: use 1-63 of [A-Za-z0-9_.-]%s", id,
			   "");
	if ((ret = fc_json_fields(body, "drive", patch ? pfields : fields, err, n)) ||
	    (ret = check_id(body, "drive_id", id, err, n)))
		return ret;
	if (patch) {
		if (i < 0) {
			snprintf(err, n, "Drive `%.64s` does not exist", id);
			return -ENOENT;
		}
		d = m->drives[i];
	} else {
		snprintf(d.id, sizeof(d.id), "%s", id);
		snprintf(d.cache_type, sizeof(d.cache_type), "Unsafe");
		snprintf(d.io_engine, sizeof(d.io_engine), "Sync");
	}
	if (json_object_get(body, "socket"))
		return bad(err, n,
			   "field `socket` (vhost-user block) is not supported by ignition");
	if ((ret = fc_json_str(body, "path_on_host", !patch, d.path, sizeof(d.path), err, n)) ||
	    (ret = fc_json_bool(body, "is_root_device", !patch, &d.root, err, n)) ||
	    (ret = fc_json_bool(body, "is_read_only", false, &d.read_only, err, n)) ||
	    (ret = fc_json_str(body, "partuuid", false, d.partuuid, sizeof(d.partuuid), err, n)) ||
	    (ret = fc_json_str(body, "cache_type", false, d.cache_type, sizeof(d.cache_type), err,
			       n)) ||
	    (ret = fc_json_str(body, "io_engine", false, d.io_engine, sizeof(d.io_engine), err, n)))
		return ret;
	if (strcmp(d.cache_type, "Unsafe") && strcmp(d.cache_type, "Writeback"))
		return bad(err, n, "invalid cache_type `%s`: expected `Unsafe` or `Writeback`",
			   d.cache_type);
	if (strcmp(d.io_engine, "Sync") && strcmp(d.io_engine, "Async"))
		return bad(err, n, "invalid io_engine `%s`: expected `Sync` or `Async`",
			   d.io_engine);
	if (!d.path[0])
		return bad(err, n, "path_on_host must not be empty");
	if ((rl = json_object_get(body, "rate_limiter")) &&
	    (ret = fc_json_ratelimit(rl, "rate_limiter", &d.rl, &d.has_rl, err, n)))
		return ret;
	/* Only one root device (Firecracker: "A root block device already exists!"). */
	for (int j = 0; d.root && j < m->nr_drives; j++)
		if (j != i && m->drives[j].root)
			return bad(err, n, "A root block device already exists!");
	if (i < 0) {
		if (m->nr_drives >= MACHINE_MAX_DISKS) {
			snprintf(err, n, "Too many drives: at most %d", MACHINE_MAX_DISKS);
			return -ENOSPC;
		}
		i = m->nr_drives++;
	}
	m->drives[i] = d;
	return 0;
}

int fc_model_net_index(const struct fc_model *m, const char *id)
{
	for (int i = 0; i < m->nr_nets; i++)
		if (!strcmp(m->nets[i].id, id))
			return i;
	return -1;
}

static int parse_mac(const char *s, uint8_t mac[6])
{
	unsigned v[6];
	char tail;

	if (sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
		   &tail) != 6 ||
	    strlen(s) != 17)
		return -EINVAL;
	for (int i = 0; i < 6; i++)
		mac[i] = (uint8_t)v[i];
	return 0;
}

int fc_model_net(struct fc_model *m, const char *id, json_t *body, bool patch, char *err, size_t n)
{
	static const char *const fields[] = { "iface_id",	 "host_dev_name",   "guest_mac",
					      "rx_rate_limiter", "tx_rate_limiter", NULL };
	static const char *const pfields[] = { "iface_id", "rx_rate_limiter", "tx_rate_limiter",
					       NULL };
	int i = valid_id(id) ? fc_model_net_index(m, id) : -2;
	struct fc_net d = { 0 };
	char mac[32] = "";
	json_t *rl;
	int ret;

	if (i == -2)
		return bad(err, n, "Invalid iface id `%.64s`: use 1-63 of [A-Za-z0-9_.-]%s", id,
			   "");
	if ((ret = fc_json_fields(body, "network interface", patch ? pfields : fields, err, n)) ||
	    (ret = check_id(body, "iface_id", id, err, n)))
		return ret;
	if (patch) {
		if (i < 0) {
			snprintf(err, n, "Network interface `%.64s` does not exist", id);
			return -ENOENT;
		}
		d = m->nets[i];
	} else {
		snprintf(d.id, sizeof(d.id), "%s", id);
	}
	if ((ret = fc_json_str(body, "host_dev_name", !patch, d.host_dev, sizeof(d.host_dev), err,
			       n)) ||
	    (ret = fc_json_str(body, "guest_mac", false, mac, sizeof(mac), err, n)))
		return ret;
	if (strcmp(d.host_dev, FC_NET_USER) && (!d.host_dev[0] || strlen(d.host_dev) >= 16))
		return bad(err, n,
			   "invalid host_dev_name `%s`: a TAP device name (1-15 bytes) or `%s`",
			   d.host_dev, FC_NET_USER);
	if (mac[0]) {
		if (parse_mac(mac, d.mac))
			return bad(err, n, "invalid guest_mac `%s`: expected XX:XX:XX:XX:XX:XX",
				   mac);
		d.has_mac = true;
	}
	if ((rl = json_object_get(body, "rx_rate_limiter")) &&
	    (ret = fc_json_ratelimit(rl, "rx_rate_limiter", &d.rx, &d.has_rx, err, n)))
		return ret;
	if ((rl = json_object_get(body, "tx_rate_limiter")) &&
	    (ret = fc_json_ratelimit(rl, "tx_rate_limiter", &d.tx, &d.has_tx, err, n)))
		return ret;
	for (int j = 0; j < m->nr_nets; j++) {
		if (j == i)
			continue;
		if (strcmp(d.host_dev, FC_NET_USER) && !strcmp(m->nets[j].host_dev, d.host_dev))
			return bad(err, n, "host_dev_name `%s` is already used by interface `%s`",
				   d.host_dev, m->nets[j].id);
		if (d.has_mac && m->nets[j].has_mac && !memcmp(m->nets[j].mac, d.mac, 6))
			return bad(err, n, "guest_mac `%s` is already used by interface `%s`", mac,
				   m->nets[j].id);
	}
	if (i < 0) {
		if (m->nr_nets >= MACHINE_MAX_NETS) {
			snprintf(err, n, "Too many network interfaces: at most %d",
				 MACHINE_MAX_NETS);
			return -ENOSPC;
		}
		i = m->nr_nets++;
	}
	m->nets[i] = d;
	return 0;
}

int fc_model_machine(struct fc_model *m, json_t *body, bool patch, char *err, size_t n)
{
	static const char *const fields[] = {
		"vcpu_count",	"mem_size_mib", "smt", "track_dirty_pages",
		"cpu_template", "huge_pages",	NULL
	};
	uint64_t vcpus = m->vcpus, mem = m->mem_mib;
	bool smt = false, track = patch ? m->track_dirty : false;
	char tmpl[16] = "None", huge[16] = "None";
	int ret;

	if (patch) {
		snprintf(tmpl, sizeof(tmpl), "%s", m->cpu_template);
		snprintf(huge, sizeof(huge), "%s", m->huge_pages);
		smt = m->smt;
	}
	if ((ret = fc_json_fields(body, "machine-config", fields, err, n)) ||
	    (ret = fc_json_u64(body, "vcpu_count", !patch, VCPUS_MAX, &vcpus, err, n)) ||
	    (ret = fc_json_u64(body, "mem_size_mib", !patch, MEM_MIB_MAX, &mem, err, n)) ||
	    (ret = fc_json_bool(body, "smt", false, &smt, err, n)) ||
	    (ret = fc_json_bool(body, "track_dirty_pages", false, &track, err, n)) ||
	    (ret = fc_json_str(body, "cpu_template", false, tmpl, sizeof(tmpl), err, n)) ||
	    (ret = fc_json_str(body, "huge_pages", false, huge, sizeof(huge), err, n)))
		return ret;
	if (vcpus < 1)
		return bad(err, n,
			   "The vCPU number is invalid! The vCPU number can only be 1 or an "
			   "even number when SMT is enabled.");
	if (mem < 16)
		return bad(err, n, "The memory size (MiB) is invalid: at least 16 MiB");
	if (smt)
		return bad(err, n, "smt: true is not supported by ignition (one thread per core)");
	if (strcmp(tmpl, "None"))
		return bad(err, n,
			   "cpu_template `%s` is not supported by ignition (only `None`: ignition "
			   "picks its own CPUID template for the host)%s",
			   tmpl, "");
	if (strcmp(huge, "None") && strcmp(huge, "2M"))
		return bad(err, n, "huge_pages `%s` is not supported: expected `None` or `2M`",
			   huge);
	if (!strcmp(huge, "2M") && mem % 2)
		return bad(err, n,
			   "The memory size (MiB) is invalid: with huge_pages `2M` it must be a "
			   "multiple of 2 (got %llu)",
			   (unsigned long long)mem);
	m->vcpus = (unsigned)vcpus;
	m->mem_mib = mem;
	m->smt = smt;
	m->track_dirty = track;
	snprintf(m->cpu_template, sizeof(m->cpu_template), "%s", tmpl);
	snprintf(m->huge_pages, sizeof(m->huge_pages), "%s", huge);
	return 0;
}

int fc_model_vsock(struct fc_model *m, json_t *body, char *err, size_t n)
{
	static const char *const fields[] = { "guest_cid", "uds_path", "vsock_id", NULL };
	char id[FC_ID_MAX] = "", uds[MACHINE_PATH_MAX] = "";
	uint64_t cid = 0;
	int ret;

	if ((ret = fc_json_fields(body, "vsock", fields, err, n)) ||
	    (ret = fc_json_u64(body, "guest_cid", true, UINT32_MAX, &cid, err, n)) ||
	    (ret = fc_json_str(body, "uds_path", true, uds, sizeof(uds), err, n)) ||
	    (ret = fc_json_str(body, "vsock_id", false, id, sizeof(id), err, n)))
		return ret;
	if (cid < 3)
		return bad(err, n, "guest_cid must be at least 3 (0-2 are reserved)");
	if (!uds[0])
		return bad(err, n, "uds_path must not be empty");
	m->has_vsock = true;
	m->cid = (uint32_t)cid;
	snprintf(m->uds, sizeof(m->uds), "%s", uds);
	snprintf(m->vsock_id, sizeof(m->vsock_id), "%s", id);
	return 0;
}

int fc_model_entropy(struct fc_model *m, json_t *body, char *err, size_t n)
{
	static const char *const fields[] = { "rate_limiter", NULL };
	struct ratelimit_cfg rl = { 0 };
	bool set = false;
	json_t *v;
	int ret;

	if ((ret = fc_json_fields(body, "entropy", fields, err, n)))
		return ret;
	if ((v = json_object_get(body, "rate_limiter")) &&
	    (ret = fc_json_ratelimit(v, "rate_limiter", &rl, &set, err, n)))
		return ret;
	m->has_entropy = true;
	m->has_rng_rl = set;
	m->rng_rl = rl;
	return 0;
}

int fc_model_balloon(struct fc_model *m, json_t *body, bool patch, char *err, size_t n)
{
	static const char *const fields[] = { "amount_mib", "deflate_on_oom",
					      "stats_polling_interval_s", NULL };
	static const char *const pfields[] = { "amount_mib", NULL };
	uint64_t amount = m->balloon_mib, stats = patch ? m->stats_s : 0;
	bool deflate = patch ? m->deflate_on_oom : false;
	int ret;

	if (patch && !m->has_balloon)
		return bad(err, n, "The balloon device was not configured");
	if ((ret = fc_json_fields(body, "balloon", patch ? pfields : fields, err, n)) ||
	    (ret = fc_json_u64(body, "amount_mib", true, UINT32_MAX >> 8, &amount, err, n)) ||
	    (ret = fc_json_bool(body, "deflate_on_oom", !patch, &deflate, err, n)) ||
	    (ret = fc_json_u64(body, "stats_polling_interval_s", false, 3600, &stats, err, n)))
		return ret;
	if (amount > m->mem_mib)
		return bad(err, n, "amount_mib is larger than the guest's memory (mem_size_mib)");
	m->has_balloon = true;
	m->balloon_mib = (uint32_t)amount;
	m->deflate_on_oom = deflate;
	m->stats_s = (uint32_t)stats;
	return 0;
}

int fc_model_balloon_stats(struct fc_model *m, json_t *body, char *err, size_t n)
{
	static const char *const fields[] = { "stats_polling_interval_s", NULL };
	uint64_t stats = 0;
	int ret;

	if (!m->has_balloon)
		return bad(err, n, "The balloon device was not configured");
	if ((ret = fc_json_fields(body, "balloon statistics", fields, err, n)) ||
	    (ret = fc_json_u64(body, "stats_polling_interval_s", true, 3600, &stats, err, n)))
		return ret;
	m->stats_s = (uint32_t)stats;
	return 0;
}

int fc_model_logger(struct fc_model *m, json_t *body, char *err, size_t n)
{
	static const char *const fields[] = { "log_path",	 "level",  "show_level",
					      "show_log_origin", "module", NULL };
	char path[MACHINE_PATH_MAX] = "", level[16] = "Warning";
	bool sl = false, so = false;
	int ret;

	if ((ret = fc_json_fields(body, "logger", fields, err, n)) ||
	    (ret = fc_json_str(body, "log_path", false, path, sizeof(path), err, n)) ||
	    (ret = fc_json_str(body, "level", false, level, sizeof(level), err, n)) ||
	    (ret = fc_json_bool(body, "show_level", false, &sl, err, n)) ||
	    (ret = fc_json_bool(body, "show_log_origin", false, &so, err, n)))
		return ret;
	if (json_object_get(body, "module"))
		return bad(err, n,
			   "field `module` (a per-module log filter) is not supported by "
			   "ignition");
	m->has_logger = true;
	snprintf(m->log_path, sizeof(m->log_path), "%s", path);
	snprintf(m->log_level, sizeof(m->log_level), "%s", level);
	m->show_level = sl;
	m->show_origin = so;
	return 0;
}

int fc_model_metrics(struct fc_model *m, json_t *body, char *err, size_t n)
{
	static const char *const fields[] = { "metrics_path", NULL };
	char path[MACHINE_PATH_MAX] = "";
	int ret;

	if ((ret = fc_json_fields(body, "metrics", fields, err, n)) ||
	    (ret = fc_json_str(body, "metrics_path", true, path, sizeof(path), err, n)))
		return ret;
	if (!path[0])
		return bad(err, n, "metrics_path must not be empty");
	m->has_metrics = true;
	snprintf(m->metrics_path, sizeof(m->metrics_path), "%s", path);
	return 0;
}

int fc_model_mmds_config(struct fc_model *m, json_t *body, char *err, size_t n)
{
	static const char *const fields[] = { "version", "network_interfaces", "ipv4_address",
					      "imds_compat", NULL };
	char ver[8] = "V1", ip[32] = "169.254.169.254";
	unsigned a, b, c, d;
	char tail;
	json_t *ifs, *v;
	bool imds_compat = false;
	size_t i;
	int ret;

	if ((ret = fc_json_fields(body, "mmds-config", fields, err, n)) ||
	    (ret = fc_json_bool(body, "imds_compat", false, &imds_compat, err, n)) ||
	    (ret = fc_json_str(body, "version", false, ver, sizeof(ver), err, n)) ||
	    (ret = fc_json_str(body, "ipv4_address", false, ip, sizeof(ip), err, n)))
		return ret;
	if (strcmp(ver, "V1") && strcmp(ver, "V2"))
		return bad(err, n, "invalid MMDS version `%s`: expected `V1` or `V2`", ver);
	if (sscanf(ip, "%u.%u.%u.%u%c", &a, &b, &c, &d, &tail) != 4 || a != 169 || b != 254 ||
	    c > 255 || d > 255)
		return bad(err, n, "invalid ipv4_address `%s`: must be in 169.254.0.0/16", ip);
	ifs = json_object_get(body, "network_interfaces");
	if (!ifs)
		return bad(err, n, "missing field `network_interfaces`");
	if (!json_is_array(ifs))
		return bad(err, n,
			   "invalid type for field `network_interfaces`: expected an "
			   "array");
	if (json_array_size(ifs) > MACHINE_MAX_NETS)
		return bad(err, n, "network_interfaces: too many interfaces");
	json_array_foreach(ifs, i, v)
	{
		if (!json_is_string(v) || fc_model_net_index(m, json_string_value(v)) < 0)
			return bad(err, n,
				   "The list of network interface IDs provided contains at least "
				   "one ID that does not correspond to any existing network "
				   "interface.");
	}
	m->has_mmds = true;
	m->mmds_version = ver[1] - '0';
	m->mmds_ipv4 = a << 24 | b << 16 | c << 8 | d;
	m->mmds_imds_compat = imds_compat;
	m->nr_mmds_ifaces = (int)json_array_size(ifs);
	json_array_foreach(ifs, i, v)
		snprintf(m->mmds_ifaces[i], FC_ID_MAX, "%s", json_string_value(v));
	return 0;
}

int fc_model_config_file(struct fc_model *m, json_t *doc, char *err, size_t n)
{
	static const char *const fields[] = {
		"boot-source", "drives",      "machine-config", "network-interfaces",
		"vsock",       "balloon",     "entropy",	"logger",
		"metrics",     "mmds-config", "cpu-config",	NULL
	};
	json_t *v, *e;
	size_t i;
	int ret;

	if ((ret = fc_json_fields(doc, "the configuration file", fields, err, n)))
		return ret;
	if (json_object_get(doc, "cpu-config"))
		return bad(err, n,
			   "section `cpu-config` (custom CPU templates) is not supported by "
			   "ignition");
	if ((v = json_object_get(doc, "machine-config")) && !json_is_null(v) &&
	    (ret = fc_model_machine(m, v, false, err, n)))
		return ret;
	if ((v = json_object_get(doc, "boot-source")) && (ret = fc_model_boot_source(m, v, err, n)))
		return ret;
	if ((v = json_object_get(doc, "drives"))) {
		if (!json_is_array(v))
			return bad(err, n, "`drives` must be an array");
		json_array_foreach(v, i, e)
		{
			json_t *id = json_object_get(e, "drive_id");

			if (!json_is_string(id))
				return bad(err, n, "drives[]: missing string field `drive_id`");
			if ((ret = fc_model_drive(m, json_string_value(id), e, false, err, n)))
				return ret;
		}
	}
	if ((v = json_object_get(doc, "network-interfaces"))) {
		if (!json_is_array(v))
			return bad(err, n, "`network-interfaces` must be an array");
		json_array_foreach(v, i, e)
		{
			json_t *id = json_object_get(e, "iface_id");

			if (!json_is_string(id))
				return bad(err, n,
					   "network-interfaces[]: missing string field `iface_id`");
			if ((ret = fc_model_net(m, json_string_value(id), e, false, err, n)))
				return ret;
		}
	}
	if ((v = json_object_get(doc, "vsock")) && !json_is_null(v) &&
	    (ret = fc_model_vsock(m, v, err, n)))
		return ret;
	if ((v = json_object_get(doc, "balloon")) && !json_is_null(v) &&
	    (ret = fc_model_balloon(m, v, false, err, n)))
		return ret;
	if ((v = json_object_get(doc, "entropy")) && !json_is_null(v) &&
	    (ret = fc_model_entropy(m, v, err, n)))
		return ret;
	if ((v = json_object_get(doc, "logger")) && !json_is_null(v) &&
	    (ret = fc_model_logger(m, v, err, n)))
		return ret;
	if ((v = json_object_get(doc, "metrics")) && !json_is_null(v) &&
	    (ret = fc_model_metrics(m, v, err, n)))
		return ret;
	if ((v = json_object_get(doc, "mmds-config")) && !json_is_null(v) &&
	    (ret = fc_model_mmds_config(m, v, err, n)))
		return ret;
	return 0;
}

static void put_rl(json_t *o, const char *key, bool set, const struct ratelimit_cfg *c)
{
	if (set)
		json_object_set_new(o, key, fc_json_ratelimit_out(c));
}

json_t *fc_model_machine_json(const struct fc_model *m)
{
	return json_pack("{s:i,s:I,s:b,s:b,s:s,s:s}", "vcpu_count", (int)m->vcpus, "mem_size_mib",
			 (json_int_t)m->mem_mib, "smt", m->smt, "track_dirty_pages", m->track_dirty,
			 "cpu_template", m->cpu_template, "huge_pages", m->huge_pages);
}

json_t *fc_model_balloon_json(const struct fc_model *m)
{
	return json_pack("{s:i,s:b,s:i}", "amount_mib", (int)m->balloon_mib, "deflate_on_oom",
			 m->deflate_on_oom, "stats_polling_interval_s", (int)m->stats_s);
}

json_t *fc_model_to_json(const struct fc_model *m)
{
	json_t *o = json_object(), *drives = json_array(), *nets = json_array();

	if (!o || !drives || !nets) {
		json_decref(o);
		json_decref(drives);
		json_decref(nets);
		return NULL;
	}
	if (m->has_boot) {
		json_t *b = json_pack("{s:s}", "kernel_image_path", m->kernel);

		if (m->initrd[0])
			json_object_set_new(b, "initrd_path", json_string(m->initrd));
		if (m->has_boot_args)
			json_object_set_new(b, "boot_args", json_string(m->boot_args));
		json_object_set_new(o, "boot-source", b);
	}
	for (int i = 0; i < m->nr_drives; i++) {
		const struct fc_drive *d = &m->drives[i];
		json_t *j =
			json_pack("{s:s,s:s,s:b,s:b,s:s,s:s}", "drive_id", d->id, "path_on_host",
				  d->path, "is_root_device", d->root, "is_read_only", d->read_only,
				  "cache_type", d->cache_type, "io_engine", d->io_engine);

		if (d->partuuid[0])
			json_object_set_new(j, "partuuid", json_string(d->partuuid));
		put_rl(j, "rate_limiter", d->has_rl, &d->rl);
		json_array_append_new(drives, j);
	}
	json_object_set_new(o, "drives", drives);
	json_object_set_new(o, "machine-config", fc_model_machine_json(m));
	for (int i = 0; i < m->nr_nets; i++) {
		const struct fc_net *d = &m->nets[i];
		json_t *j = json_pack("{s:s,s:s}", "iface_id", d->id, "host_dev_name", d->host_dev);

		if (d->has_mac) {
			char mac[18];

			snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", d->mac[0],
				 d->mac[1], d->mac[2], d->mac[3], d->mac[4], d->mac[5]);
			json_object_set_new(j, "guest_mac", json_string(mac));
		}
		put_rl(j, "rx_rate_limiter", d->has_rx, &d->rx);
		put_rl(j, "tx_rate_limiter", d->has_tx, &d->tx);
		json_array_append_new(nets, j);
	}
	json_object_set_new(o, "network-interfaces", nets);
	json_object_set_new(
		o, "vsock",
		m->has_vsock ? json_pack("{s:i,s:s}", "guest_cid", (int)m->cid, "uds_path", m->uds)
			     : json_null());
	json_object_set_new(o, "balloon", m->has_balloon ? fc_model_balloon_json(m) : json_null());
	if (m->has_entropy) {
		json_t *e = json_object();

		put_rl(e, "rate_limiter", m->has_rng_rl, &m->rng_rl);
		json_object_set_new(o, "entropy", e);
	} else {
		json_object_set_new(o, "entropy", json_null());
	}
	json_object_set_new(o, "logger",
			    m->has_logger
				    ? json_pack("{s:s,s:s,s:b,s:b}", "log_path", m->log_path,
						"level", m->log_level, "show_level", m->show_level,
						"show_log_origin", m->show_origin)
				    : json_null());
	json_object_set_new(o, "metrics",
			    m->has_metrics ? json_pack("{s:s}", "metrics_path", m->metrics_path)
					   : json_null());
	if (m->has_mmds) {
		json_t *ifs = json_array();
		char ip[16];

		for (int i = 0; i < m->nr_mmds_ifaces; i++)
			json_array_append_new(ifs, json_string(m->mmds_ifaces[i]));
		snprintf(ip, sizeof(ip), "%u.%u.%u.%u", m->mmds_ipv4 >> 24,
			 (m->mmds_ipv4 >> 16) & 255, (m->mmds_ipv4 >> 8) & 255, m->mmds_ipv4 & 255);
		json_object_set_new(o, "mmds-config",
				    json_pack("{s:s,s:o,s:s,s:b}", "version",
					      m->mmds_version == 2 ? "V2" : "V1",
					      "network_interfaces", ifs, "ipv4_address", ip,
					      "imds_compat", m->mmds_imds_compat));
	} else {
		json_object_set_new(o, "mmds-config", json_null());
	}
	return o;
}

static int append(char *buf, size_t size, const char *s)
{
	size_t used = strlen(buf);

	if ((size_t)snprintf(buf + used, size - used, "%s%s", used ? " " : "", s) >= size - used)
		return -ENAMETOOLONG;
	return 0;
}

int fc_model_disk_index(const struct fc_model *m, int drive)
{
	int before = 0;

	if (drive < 0 || drive >= m->nr_drives)
		return -1;
	/* fc_model_to_machine's order: root drives first, then the others, each in PUT order. */
	for (int i = 0; i < m->nr_drives; i++)
		if (m->drives[i].root && (!m->drives[drive].root || i < drive))
			before++;
	if (!m->drives[drive].root)
		for (int i = 0; i < drive; i++)
			before += !m->drives[i].root;
	return before;
}

int fc_model_to_machine(const struct fc_model *m, struct machine_config *cfg, char *err, size_t n)
{
	char root[128];
	int d = 0;

	if (!m->has_boot)
		return bad(err, n, "Cannot start microvm without kernel configuration.");
	memset(cfg, 0, sizeof(*cfg));
	cfg->mem_mib = m->mem_mib;
	cfg->smp = m->vcpus;
	cfg->cpu_template = CPU_TEMPLATE_AUTO;
	cfg->huge_pages = !strcmp(m->huge_pages, "2M");
	snprintf(cfg->kernel, sizeof(cfg->kernel), "%s", m->kernel);
	snprintf(cfg->initrd, sizeof(cfg->initrd), "%s", m->initrd);
	/* Firecracker's default command line when none is given, minus what ignition does not
	 * need (i8042 and PCI flags) and with the serial console on. */
	snprintf(cfg->cmdline, sizeof(cfg->cmdline), "%s",
		 m->has_boot_args ? m->boot_args : "console=ttyS0 reboot=k panic=1");
	/* The root device is /dev/vda: it goes first. */
	for (int pass = 0; pass < 2; pass++) {
		for (int i = 0; i < m->nr_drives; i++) {
			const struct fc_drive *fd = &m->drives[i];

			if (fd->root != (pass == 0))
				continue;
			snprintf(cfg->disks[d].path, sizeof(cfg->disks[d].path), "%s", fd->path);
			cfg->disks[d].read_only = fd->read_only;
			if (fd->has_rl)
				cfg->disks[d].rl = fd->rl;
			/* Recorded in a snapshot, so that a load knows the drive by its id. */
			snprintf(cfg->disks[d].id, sizeof(cfg->disks[d].id), "%s", fd->id);
			cfg->disks[d].root = fd->root;
			snprintf(cfg->disks[d].partuuid, sizeof(cfg->disks[d].partuuid), "%s",
				 fd->partuuid);
			cfg->disks[d].writeback = !strcmp(fd->cache_type, "Writeback");
			cfg->disks[d].async = !strcmp(fd->io_engine, "Async");
			d++;
			if (!fd->root)
				continue;
			if (fd->partuuid[0])
				snprintf(root, sizeof(root), "root=PARTUUID=%s %s", fd->partuuid,
					 fd->read_only ? "ro" : "rw");
			else
				snprintf(root, sizeof(root), "root=/dev/vda %s",
					 fd->read_only ? "ro" : "rw");
			if (append(cfg->cmdline, sizeof(cfg->cmdline), root))
				return bad(err, n, "boot_args are too long");
		}
	}
	cfg->nr_disks = d;
	for (int i = 0; i < m->nr_nets; i++) {
		const struct fc_net *fn = &m->nets[i];
		struct machine_net *mn = &cfg->nets[i];

		if (!strcmp(fn->host_dev, FC_NET_USER)) {
			mn->kind = MACHINE_NET_USER;
		} else {
			mn->kind = MACHINE_NET_TAP;
			snprintf(mn->tap, sizeof(mn->tap), "%s", fn->host_dev);
		}
		snprintf(mn->id, sizeof(mn->id), "%s", fn->id);
		mn->has_mac = fn->has_mac;
		memcpy(mn->mac, fn->mac, 6);
		if (fn->has_rx)
			mn->rx_rl = fn->rx;
		if (fn->has_tx)
			mn->tx_rl = fn->tx;
	}
	cfg->nr_nets = m->nr_nets;
	/* Firecracker has no entropy device unless configured. */
	cfg->no_rng = !m->has_entropy;
	if (m->has_rng_rl)
		cfg->rng_rl = m->rng_rl;
	cfg->balloon = m->has_balloon;
	cfg->balloon_deflate_on_oom = m->deflate_on_oom;
	cfg->balloon_stats_s = m->stats_s;
	if (m->has_vsock) {
		cfg->vsock_cid = m->cid;
		snprintf(cfg->vsock_path, sizeof(cfg->vsock_path), "%s", m->uds);
	}
	return 0;
}

/* Is `id` taken by one of the first n drives (nets: network interfaces) of the model? */
static bool id_taken(const struct fc_model *m, bool nets, int n, const char *id)
{
	for (int j = 0; j < n; j++)
		if (!strcmp(id, nets ? m->nets[j].id : m->drives[j].id))
			return true;
	return false;
}

/* `id` if it is a valid API id not used by an earlier device of its kind, else the first free
 * prefix<N> from `index` on. */
static void restored_id(char out[FC_ID_MAX], const char *id, const struct fc_model *m, bool nets,
			int index)
{
	const char *prefix = nets ? "eth" : "drive";

	snprintf(out, FC_ID_MAX, "%s", id);
	for (int k = index; !valid_id(out) || id_taken(m, nets, index, out); k++)
		snprintf(out, FC_ID_MAX, "%s%d", prefix, k);
}

void fc_model_from_machine(struct fc_model *m, const struct machine_config *cfg,
			   uint32_t balloon_mib, bool track_dirty)
{
	int nd = cfg->nr_disks < MACHINE_MAX_DISKS ? cfg->nr_disks : MACHINE_MAX_DISKS;
	int nn = cfg->nr_nets < MACHINE_MAX_NETS ? cfg->nr_nets : MACHINE_MAX_NETS;

	m->has_boot = cfg->kernel[0] != '\0';
	snprintf(m->kernel, sizeof(m->kernel), "%s", cfg->kernel);
	snprintf(m->initrd, sizeof(m->initrd), "%s", cfg->initrd);
	/* What the guest booted with, root= included. */
	snprintf(m->boot_args, sizeof(m->boot_args), "%s", cfg->cmdline);
	m->has_boot_args = true;
	m->vcpus = cfg->smp;
	m->mem_mib = cfg->mem_mib;
	m->smt = false;
	m->track_dirty = track_dirty;
	snprintf(m->cpu_template, sizeof(m->cpu_template), "None");
	snprintf(m->huge_pages, sizeof(m->huge_pages), "%s", cfg->huge_pages ? "2M" : "None");
	m->nr_drives = nd;
	for (int i = 0; i < nd; i++) {
		const struct machine_disk *md = &cfg->disks[i];
		struct fc_drive *d = &m->drives[i];

		memset(d, 0, sizeof(*d));
		restored_id(d->id, md->id, m, false, i);
		snprintf(d->path, sizeof(d->path), "%s", md->path);
		/* Only the first disk can be the root device (fc_model_to_machine's order). */
		d->root = md->root && i == 0;
		d->read_only = md->read_only;
		snprintf(d->partuuid, sizeof(d->partuuid), "%s", d->root ? md->partuuid : "");
		snprintf(d->cache_type, sizeof(d->cache_type), "%s",
			 md->writeback ? "Writeback" : "Unsafe");
		snprintf(d->io_engine, sizeof(d->io_engine), "%s", md->async ? "Async" : "Sync");
		d->has_rl = !ratelimit_cfg_none(&md->rl);
		d->rl = md->rl;
	}
	m->nr_nets = nn;
	for (int i = 0; i < nn; i++) {
		const struct machine_net *mn = &cfg->nets[i];
		struct fc_net *d = &m->nets[i];

		memset(d, 0, sizeof(*d));
		restored_id(d->id, mn->id, m, true, i);
		snprintf(d->host_dev, sizeof(d->host_dev), "%s",
			 mn->kind == MACHINE_NET_TAP ? mn->tap : FC_NET_USER);
		d->has_mac = mn->has_mac;
		memcpy(d->mac, mn->mac, sizeof(d->mac));
		d->has_rx = !ratelimit_cfg_none(&mn->rx_rl);
		d->rx = mn->rx_rl;
		d->has_tx = !ratelimit_cfg_none(&mn->tx_rl);
		d->tx = mn->tx_rl;
	}
	m->has_vsock = cfg->vsock_path[0] != '\0';
	m->vsock_id[0] = '\0';
	m->cid = m->has_vsock ? cfg->vsock_cid : 0;
	snprintf(m->uds, sizeof(m->uds), "%s", cfg->vsock_path);
	m->has_entropy = !cfg->no_rng;
	m->has_rng_rl = !cfg->no_rng && !ratelimit_cfg_none(&cfg->rng_rl);
	m->rng_rl = cfg->rng_rl;
	m->has_balloon = cfg->balloon;
	m->balloon_mib = cfg->balloon ? balloon_mib : 0;
	m->deflate_on_oom = cfg->balloon && cfg->balloon_deflate_on_oom;
	m->stats_s = cfg->balloon ? cfg->balloon_stats_s : 0;
	/* MMDS as the snapshot configured it (the store itself starts empty). */
	m->has_mmds = cfg->mmds.ifaces != 0;
	if (m->has_mmds) {
		m->mmds_version = cfg->mmds.version;
		m->mmds_ipv4 = cfg->mmds.ipv4;
		m->mmds_imds_compat = cfg->mmds.imds_compat;
	}
	m->nr_mmds_ifaces = 0;
	for (int i = 0; i < nn; i++)
		if (cfg->mmds.ifaces & (1u << i))
			snprintf(m->mmds_ifaces[m->nr_mmds_ifaces++], FC_ID_MAX, "%s",
				 m->nets[i].id);
}
