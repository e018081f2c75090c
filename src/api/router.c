/* The REST API's router: see router.h and docs/api.md. */
#include "api/router.h"

#include "api/mmds.h"
#include "util/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VERSION "0.1.0"

static const char pre_boot_only[] =
	"The requested operation is not supported after starting the microVM.";
static const char post_boot_only[] =
	"The requested operation is not supported before starting the microVM.";

const char *api_state_name(enum api_state s)
{
	switch (s) {
	case API_RUNNING:
		return "Running";
	case API_PAUSED:
		return "Paused";
	default:
		return "Not started";
	}
}

void api_init(struct api *a, const char *id, const struct api_ops *ops, struct mmds *mmds)
{
	fc_model_init(&a->model);
	a->state = API_NOT_STARTED;
	snprintf(a->id, sizeof(a->id), "%s", id ? id : "anonymous-instance");
	a->ops = ops;
	a->mmds = mmds;
	a->boot_configured = false;
}

/* One request's result being built. */
struct reply {
	unsigned status;
	char *out;
	char err[API_ERR_MAX];
};

static void fault(struct reply *r, const char *msg)
{
	json_t *o = json_pack("{s:s}", "fault_message", msg);

	r->status = 400;
	free(r->out);
	r->out = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
}

/* 0: success (204); else a fault with r->err (or strerror when empty). */
static void done(struct reply *r, int ret)
{
	if (!ret) {
		r->status = 204;
		return;
	}
	if (!r->err[0])
		snprintf(r->err, sizeof(r->err), "%s", strerror(-ret));
	fault(r, r->err);
}

static void ok_json(struct reply *r, json_t *o)
{
	if (!o) {
		fault(r, "out of memory");
		return;
	}
	r->status = 200;
	r->out = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!r->out)
		fault(r, "out of memory");
}

static json_t *parse(struct reply *r, const char *body, size_t len)
{
	json_error_t je;
	json_t *j;

	if (!len) {
		fault(r, "The request body is empty: a JSON object is expected.");
		return NULL;
	}
	/* JSON_REJECT_DUPLICATES: a duplicated field is ambiguous, never silently resolved. */
	j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
	if (!j) {
		snprintf(r->err, sizeof(r->err),
			 "An error occurred when deserializing the json body of a request: %s at "
			 "line %d column %d",
			 je.text, je.line, je.column);
		fault(r, r->err);
		return NULL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		fault(r,
		      "An error occurred when deserializing the json body of a request: expected "
		      "a JSON object");
		return NULL;
	}
	return j;
}

static bool need_op(struct reply *r, const void *op)
{
	if (!op)
		fault(r, "This operation is not supported by ignition.");
	return op != NULL;
}

static void do_actions(struct api *a, json_t *j, struct reply *r)
{
	static const char *const fields[] = { "action_type", NULL };
	char type[32] = "";
	int ret;

	if ((ret = fc_json_fields(j, "actions", fields, r->err, sizeof(r->err))) ||
	    (ret = fc_json_str(j, "action_type", true, type, sizeof(type), r->err, sizeof(r->err))))
		return done(r, ret);
	if (!strcmp(type, "InstanceStart")) {
		if (a->state != API_NOT_STARTED)
			return fault(r, pre_boot_only);
		if (!need_op(r, a->ops->instance_start))
			return;
		ret = a->ops->instance_start(a->ops->ctx, &a->model, r->err, sizeof(r->err));
		if (!ret)
			a->state = API_RUNNING;
		return done(r, ret);
	}
	if (!strcmp(type, "SendCtrlAltDel")) {
		if (a->state == API_NOT_STARTED)
			return fault(r, post_boot_only);
		if (!need_op(r, a->ops->ctrl_alt_del))
			return;
		return done(r, a->ops->ctrl_alt_del(a->ops->ctx, r->err, sizeof(r->err)));
	}
	if (!strcmp(type, "FlushMetrics")) {
		if (!need_op(r, a->ops->flush_metrics))
			return;
		return done(r, a->ops->flush_metrics(a->ops->ctx, r->err, sizeof(r->err)));
	}
	snprintf(r->err, sizeof(r->err),
		 "unknown action_type `%.64s`: expected one of `InstanceStart`, `SendCtrlAltDel`, "
		 "`FlushMetrics`",
		 type);
	fault(r, r->err);
}

static void do_vm(struct api *a, json_t *j, struct reply *r)
{
	static const char *const fields[] = { "state", NULL };
	char st[16] = "";
	int ret;

	if ((ret = fc_json_fields(j, "vm", fields, r->err, sizeof(r->err))) ||
	    (ret = fc_json_str(j, "state", true, st, sizeof(st), r->err, sizeof(r->err))))
		return done(r, ret);
	if (strcmp(st, "Paused") && strcmp(st, "Resumed"))
		return fault(r, "invalid state: expected `Paused` or `Resumed`");
	if (a->state == API_NOT_STARTED)
		return fault(r, post_boot_only);
	if (!strcmp(st, "Paused")) {
		if (!need_op(r, a->ops->pause))
			return;
		ret = a->ops->pause(a->ops->ctx, r->err, sizeof(r->err));
		if (!ret)
			a->state = API_PAUSED;
	} else {
		if (!need_op(r, a->ops->resume))
			return;
		ret = a->ops->resume(a->ops->ctx, r->err, sizeof(r->err));
		if (!ret)
			a->state = API_RUNNING;
	}
	done(r, ret);
}

static void do_snapshot_create(struct api *a, json_t *j, struct reply *r)
{
	static const char *const fields[] = { "snapshot_type", "snapshot_path", "mem_file_path",
					      NULL };
	static struct api_snapshot_create c;
	char type[16] = "Full";
	int ret;

	memset(&c, 0, sizeof(c));
	if ((ret = fc_json_fields(j, "snapshot create", fields, r->err, sizeof(r->err))) ||
	    (ret = fc_json_str(j, "snapshot_type", false, type, sizeof(type), r->err,
			       sizeof(r->err))) ||
	    (ret = fc_json_str(j, "snapshot_path", true, c.snapshot_path, sizeof(c.snapshot_path),
			       r->err, sizeof(r->err))) ||
	    (ret = fc_json_str(j, "mem_file_path", false, c.mem_file_path, sizeof(c.mem_file_path),
			       r->err, sizeof(r->err))))
		return done(r, ret);
	if (strcmp(type, "Full") && strcmp(type, "Diff"))
		return fault(r, "invalid snapshot_type: expected `Full` or `Diff`");
	c.diff = !strcmp(type, "Diff");
	if (!c.snapshot_path[0])
		return fault(r, "snapshot_path must not be empty");
	if (a->state == API_NOT_STARTED)
		return fault(r, post_boot_only);
	if (a->state != API_PAUSED)
		return fault(r, "Create snapshot error: the microVM must be paused (PATCH /vm "
				"{\"state\": \"Paused\"}) before a snapshot is taken.");
	if (c.diff && !a->model.track_dirty)
		return fault(r, "Diff snapshots need track_dirty_pages (machine-config) or "
				"enable_diff_snapshots (snapshot load).");
	if (!need_op(r, a->ops->snapshot_create))
		return;
	done(r, a->ops->snapshot_create(a->ops->ctx, &c, r->err, sizeof(r->err)));
}

static int parse_load(struct api *a, json_t *j, struct api_snapshot_load *l, char *err, size_t n)
{
	static const char *const fields[] = { "snapshot_path",	   "mem_file_path",
					      "mem_backend",	   "enable_diff_snapshots",
					      "track_dirty_pages", "resume_vm",
					      "network_overrides", "vsock_override",
					      "clock_realtime",	   NULL };
	static const char *const mb_fields[] = { "backend_type", "backend_path", NULL };
	static const char *const no_fields[] = { "iface_id", "host_dev_name", NULL };
	static const char *const vo_fields[] = { "uds_path", NULL };
	bool diff = false, track = false, realtime = true;
	json_t *v, *e;
	size_t i;
	int ret;

	memset(l, 0, sizeof(*l));
	if ((ret = fc_json_fields(j, "snapshot load", fields, err, n)) ||
	    (ret = fc_json_str(j, "snapshot_path", true, l->snapshot_path, sizeof(l->snapshot_path),
			       err, n)) ||
	    (ret = fc_json_str(j, "mem_file_path", false, l->mem_path, sizeof(l->mem_path), err,
			       n)) ||
	    (ret = fc_json_bool(j, "enable_diff_snapshots", false, &diff, err, n)) ||
	    (ret = fc_json_bool(j, "track_dirty_pages", false, &track, err, n)) ||
	    (ret = fc_json_bool(j, "resume_vm", false, &l->resume_vm, err, n)) ||
	    (ret = fc_json_bool(j, "clock_realtime", false, &realtime, err, n)))
		return ret;
	l->track_dirty = diff || track;
	/* Absent: ignition advances the clock (Firecracker's default is false; docs/api.md). */
	l->clock_as_saved = !realtime;
	if ((v = json_object_get(j, "mem_backend"))) {
		char type[16] = "";

		if (l->mem_path[0]) {
			snprintf(err, n, "mem_file_path and mem_backend are mutually exclusive");
			return -EINVAL;
		}
		if ((ret = fc_json_fields(v, "mem_backend", mb_fields, err, n)) ||
		    (ret = fc_json_str(v, "backend_type", true, type, sizeof(type), err, n)) ||
		    (ret = fc_json_str(v, "backend_path", true, l->mem_path, sizeof(l->mem_path),
				       err, n)))
			return ret;
		if (!strcmp(type, "Uffd")) {
			/* The path is the page-fault handler's socket, not a memory file. */
			memcpy(l->uffd_path, l->mem_path, sizeof(l->uffd_path));
			l->mem_path[0] = '\0';
		} else if (strcmp(type, "File")) {
			snprintf(err, n, "invalid backend_type: expected `File` or `Uffd`");
			return -EINVAL;
		}
	}
	if ((v = json_object_get(j, "network_overrides"))) {
		if (!json_is_array(v) || json_array_size(v) > MACHINE_MAX_NETS) {
			snprintf(err, n, "network_overrides must be an array of at most %d objects",
				 MACHINE_MAX_NETS);
			return -EINVAL;
		}
		json_array_foreach(v, i, e)
		{
			struct api_net_override *o = &l->net_overrides[i];

			if ((ret = fc_json_fields(e, "network override", no_fields, err, n)) ||
			    (ret = fc_json_str(e, "iface_id", true, o->iface_id,
					       sizeof(o->iface_id), err, n)) ||
			    (ret = fc_json_str(e, "host_dev_name", true, o->host_dev_name,
					       sizeof(o->host_dev_name), err, n)))
				return ret;
		}
		l->nr_net_overrides = (int)json_array_size(v);
		for (int k = 0; k < l->nr_net_overrides; k++)
			for (int q = 0; q < k; q++)
				if (!strcmp(l->net_overrides[k].iface_id,
					    l->net_overrides[q].iface_id)) {
					snprintf(err, n,
						 "network_overrides: iface_id `%.64s` is given "
						 "twice",
						 l->net_overrides[k].iface_id);
					return -EINVAL;
				}
	}
	if ((v = json_object_get(j, "vsock_override"))) {
		if ((ret = fc_json_fields(v, "vsock override", vo_fields, err, n)) ||
		    (ret = fc_json_str(v, "uds_path", true, l->vsock_uds, sizeof(l->vsock_uds), err,
				       n)))
			return ret;
	}
	if (!l->snapshot_path[0]) {
		snprintf(err, n, "snapshot_path must not be empty");
		return -EINVAL;
	}
	(void)a;
	return 0;
}

static void do_snapshot_load(struct api *a, json_t *j, struct reply *r)
{
	static struct api_snapshot_load l;
	static struct fc_model t;
	int ret = parse_load(a, j, &l, r->err, sizeof(r->err));

	if (ret)
		return done(r, ret);
	if (a->state != API_NOT_STARTED || a->boot_configured)
		return fault(
			r, "Loading a microVM snapshot not allowed after configuring boot-specific "
			   "resources.");
	if (!need_op(r, a->ops->snapshot_load))
		return;
	t = a->model;
	ret = a->ops->snapshot_load(a->ops->ctx, &l, &t, r->err, sizeof(r->err));
	if (!ret) {
		/* The restored machine's devices, as GET /vm/config and the PATCH calls see them. */
		a->model = t;
		a->state = l.resume_vm ? API_RUNNING : API_PAUSED;
	}
	done(r, ret);
}

/* PATCH of a device's limiter after start: the device must change it live. */
static void live_ratelimit(struct api *a, const char *kind, int idx, int dev,
			   const struct fc_model *t, struct reply *r)
{
	const struct ratelimit_cfg *rl, *tx = NULL;

	if (!strcmp(kind, "drive")) {
		rl = &t->drives[idx].rl;
	} else {
		rl = &t->nets[idx].rx;
		tx = &t->nets[idx].tx;
	}
	if (!need_op(r, a->ops->ratelimit))
		return;
	done(r, a->ops->ratelimit(a->ops->ctx, kind, dev, rl, tx, r->err, sizeof(r->err)));
}

/* PATCH of a drive's path_on_host after start: the device swaps its image live.  Returns
 * true when it did (the reply is left to the caller), false after answering the fault. */
static bool live_drive_path(struct api *a, int idx, const struct fc_model *t, struct reply *r)
{
	int ret;

	if (idx < 0) {
		fault(r, "no such drive");
		return false;
	}
	if (!need_op(r, a->ops->drive_path))
		return false;
	ret = a->ops->drive_path(a->ops->ctx, fc_model_disk_index(t, idx), t->drives[idx].path,
				 r->err, sizeof(r->err));
	if (ret) {
		done(r, ret);
		return false;
	}
	return true;
}

static void do_drive(struct api *a, const char *id, json_t *j, bool patch, struct reply *r)
{
	static struct fc_model t;
	int ret, idx;

	if (a->state != API_NOT_STARTED && !patch)
		return fault(r, pre_boot_only);
	t = a->model;
	ret = fc_model_drive(&t, id, j, patch, r->err, sizeof(r->err));
	if (ret)
		return done(r, ret);
	if (a->state == API_NOT_STARTED) {
		a->model = t;
		return done(r, 0);
	}
	idx = -1;
	for (int i = 0; i < t.nr_drives; i++)
		if (!strcmp(t.drives[i].id, id))
			idx = i;
	if (json_object_get(j, "path_on_host") && !live_drive_path(a, idx, &t, r))
		return;
	if (json_object_get(j, "rate_limiter"))
		live_ratelimit(a, "drive", idx, fc_model_disk_index(&t, idx), &t, r);
	else
		done(r, 0);
	/* A limiter refused after a new image was taken: the model keeps the new path. */
	if (r->status == 204)
		a->model = t;
	else if (json_object_get(j, "path_on_host"))
		memcpy(a->model.drives[idx].path, t.drives[idx].path, sizeof(t.drives[idx].path));
}

static void do_net(struct api *a, const char *id, json_t *j, bool patch, struct reply *r)
{
	static struct fc_model t;
	int ret;

	if (a->state != API_NOT_STARTED && !patch)
		return fault(r, pre_boot_only);
	t = a->model;
	ret = fc_model_net(&t, id, j, patch, r->err, sizeof(r->err));
	if (ret)
		return done(r, ret);
	if (a->state == API_NOT_STARTED) {
		a->model = t;
		return done(r, 0);
	}
	if (!json_object_get(j, "rx_rate_limiter") && !json_object_get(j, "tx_rate_limiter"))
		return done(r, 0);
	live_ratelimit(a, "net", fc_model_net_index(&t, id), fc_model_net_index(&t, id), &t, r);
	if (r->status == 204)
		a->model = t;
}

static void do_balloon(struct api *a, json_t *j, bool patch, struct reply *r)
{
	static struct fc_model t;
	int ret;

	if (a->state != API_NOT_STARTED && !patch)
		return fault(r, pre_boot_only);
	t = a->model;
	ret = fc_model_balloon(&t, j, patch, r->err, sizeof(r->err));
	if (ret)
		return done(r, ret);
	if (a->state != API_NOT_STARTED) {
		if (!need_op(r, a->ops->balloon_target))
			return;
		ret = a->ops->balloon_target(a->ops->ctx, t.balloon_mib, r->err, sizeof(r->err));
		if (ret)
			return done(r, ret);
	}
	a->model = t;
	done(r, 0);
}

/* PATCH /balloon/statistics: before start it sets the interval the device starts with; after
 * start it changes the running timer (never on or off, as in Firecracker). */
static void do_balloon_stats_patch(struct api *a, json_t *j, struct reply *r)
{
	static struct fc_model t;
	int ret;

	t = a->model;
	ret = fc_model_balloon_stats(&t, j, r->err, sizeof(r->err));
	if (ret)
		return done(r, ret);
	if (a->state != API_NOT_STARTED) {
		if ((a->model.stats_s == 0) != (t.stats_s == 0))
			return fault(r, "Statistics cannot be turned on or off after the microVM "
					"started: only a non-zero interval can be changed.");
		if (!need_op(r, a->ops->balloon_stats_interval))
			return;
		ret = a->ops->balloon_stats_interval(a->ops->ctx, t.stats_s, r->err,
						     sizeof(r->err));
		if (ret)
			return done(r, ret);
	}
	a->model = t;
	done(r, 0);
}

static void do_mmds(struct api *a, const char *method, const char *body, size_t len,
		    struct reply *r)
{
	int ret;

	if (!a->mmds)
		return fault(r, "MMDS is not available in this build of ignition.");
	if (!strcmp(method, "GET")) {
		char *s = mmds_get(a->mmds);

		if (!s)
			return fault(r, "MMDS: cannot read the data store");
		r->status = 200;
		r->out = s;
		return;
	}
	if (!len)
		return fault(r, "The request body is empty: a JSON object is expected.");
	ret = !strcmp(method, "PUT") ? mmds_put(a->mmds, body, len, r->err, sizeof(r->err))
				     : mmds_patch(a->mmds, body, len, r->err, sizeof(r->err));
	done(r, ret);
}

int api_mmds_config(struct api *a, const struct fc_model *m, char *err, size_t n)
{
	struct mmds_config c = { 0 };

	if (!a->mmds)
		return err_set(-ENOSYS, err, n, "MMDS is not available in this build of ignition.");
	c.version = m->mmds_version;
	c.ipv4 = m->mmds_ipv4;
	c.imds_compat = m->mmds_imds_compat;
	/* Interface ids to eth indexes: the model's order is the machine's (eth0, eth1...). */
	for (int i = 0; i < m->nr_mmds_ifaces; i++) {
		int idx = fc_model_net_index(m, m->mmds_ifaces[i]);

		if (idx >= 0)
			c.ifaces |= 1u << idx;
	}
	return mmds_set_config(a->mmds, &c, err, n);
}

static void do_mmds_config(struct api *a, json_t *j, struct reply *r)
{
	static struct fc_model t;
	int ret;

	if (a->state != API_NOT_STARTED)
		return fault(r, pre_boot_only);
	t = a->model;
	ret = fc_model_mmds_config(&t, j, r->err, sizeof(r->err));
	if (ret)
		return done(r, ret);
	ret = api_mmds_config(a, &t, r->err, sizeof(r->err));
	if (!ret)
		a->model = t;
	done(r, ret);
}

/* A pre-boot PUT that only edits the model. */
static void model_put(struct api *a, json_t *j, struct reply *r,
		      int (*fn)(struct fc_model *, json_t *, char *, size_t))
{
	static struct fc_model t;
	int ret;

	if (a->state != API_NOT_STARTED)
		return fault(r, pre_boot_only);
	t = a->model;
	ret = fn(&t, j, r->err, sizeof(r->err));
	if (!ret)
		a->model = t;
	done(r, ret);
}

static int machine_put(struct fc_model *m, json_t *j, char *err, size_t n)
{
	return fc_model_machine(m, j, false, err, n);
}

static int machine_patch(struct fc_model *m, json_t *j, char *err, size_t n)
{
	return fc_model_machine(m, j, true, err, n);
}

static void do_logger(struct api *a, json_t *j, struct reply *r)
{
	static struct fc_model t;
	int ret;

	if (a->state != API_NOT_STARTED)
		return fault(r, pre_boot_only);
	t = a->model;
	if ((ret = fc_model_logger(&t, j, r->err, sizeof(r->err))))
		return done(r, ret);
	if (!need_op(r, a->ops->logger))
		return;
	ret = a->ops->logger(a->ops->ctx, &t, r->err, sizeof(r->err));
	if (!ret)
		a->model = t;
	done(r, ret);
}

static void do_metrics(struct api *a, json_t *j, struct reply *r)
{
	static struct fc_model t;
	int ret;

	if (a->state != API_NOT_STARTED)
		return fault(r, pre_boot_only);
	t = a->model;
	if ((ret = fc_model_metrics(&t, j, r->err, sizeof(r->err))))
		return done(r, ret);
	if (!need_op(r, a->ops->metrics))
		return;
	ret = a->ops->metrics(a->ops->ctx, t.metrics_path, r->err, sizeof(r->err));
	if (!ret)
		a->model = t;
	done(r, ret);
}

static void do_balloon_stats_get(struct api *a, struct reply *r)
{
	char *s = NULL;
	int ret;

	if (!a->model.has_balloon)
		return fault(r, "The balloon device was not configured");
	if (a->state == API_NOT_STARTED)
		return fault(r, post_boot_only);
	if (!need_op(r, a->ops->balloon_stats))
		return;
	ret = a->ops->balloon_stats(a->ops->ctx, &s, r->err, sizeof(r->err));
	if (ret)
		return done(r, ret);
	r->status = 200;
	r->out = s;
}

/* Does `path` start with `prefix` followed by a non-empty last segment?  Returns it. */
static const char *sub_id(const char *path, const char *prefix)
{
	size_t n = strlen(prefix);

	if (strncmp(path, prefix, n) || !path[n] || strchr(path + n, '/'))
		return NULL;
	return path + n;
}

/* The routes whose successful PUT or PATCH before the start configures the machine to boot
 * (Firecracker's "boot-specific resources"); logger, metrics and MMDS data are not. */
static bool boot_specific(const char *route)
{
	static const char *const routes[] = { "/boot-source",
					      "/drives/{drive_id}",
					      "/network-interfaces/{iface_id}",
					      "/machine-config",
					      "/vsock",
					      "/entropy",
					      "/balloon",
					      "/mmds/config" };

	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
		if (!strcmp(route, routes[i]))
			return true;
	return false;
}

void api_handle(struct api *a, const char *method, const char *path, const char *body, size_t len,
		unsigned *status, char **out, const char **route)
{
	struct reply r = { .status = 400 };
	bool get = !strcmp(method, "GET"), put = !strcmp(method, "PUT"),
	     patch = !strcmp(method, "PATCH");
	const char *id;
	json_t *j = NULL;

	*route = "unknown";
	if (len > API_BODY_MAX) {
		snprintf(r.err, sizeof(r.err),
			 "Request payload with size %zu is larger than the limit of %d allowed by "
			 "server.",
			 len, API_BODY_MAX);
		fault(&r, r.err);
		goto out;
	}
	/* Bodies are parsed for PUT and PATCH only; GET takes none. */
	if (get && len) {
		fault(&r, "GET requests take no body.");
		goto out;
	}
#define BODY()                                   \
	do {                                     \
		if (!(j = parse(&r, body, len))) \
			goto out;                \
	} while (0)

	if (!strcmp(path, "/") && get) {
		*route = "/";
		ok_json(&r, json_pack("{s:s,s:s,s:s,s:s}", "id", a->id, "state",
				      api_state_name(a->state), "vmm_version", VERSION, "app_name",
				      "ignition"));
	} else if (!strcmp(path, "/version") && get) {
		*route = "/version";
		ok_json(&r, json_pack("{s:s}", "firecracker_version", VERSION));
	} else if (!strcmp(path, "/actions") && put) {
		*route = "/actions";
		BODY();
		do_actions(a, j, &r);
	} else if (!strcmp(path, "/boot-source") && put) {
		*route = "/boot-source";
		BODY();
		model_put(a, j, &r, fc_model_boot_source);
	} else if ((id = sub_id(path, "/drives/")) && (put || patch)) {
		*route = "/drives/{drive_id}";
		BODY();
		do_drive(a, id, j, patch, &r);
	} else if ((id = sub_id(path, "/network-interfaces/")) && (put || patch)) {
		*route = "/network-interfaces/{iface_id}";
		BODY();
		do_net(a, id, j, patch, &r);
	} else if (!strcmp(path, "/machine-config") && (get || put || patch)) {
		*route = "/machine-config";
		if (get) {
			ok_json(&r, fc_model_machine_json(&a->model));
		} else {
			BODY();
			model_put(a, j, &r, put ? machine_put : machine_patch);
		}
	} else if (!strcmp(path, "/vsock") && put) {
		*route = "/vsock";
		BODY();
		model_put(a, j, &r, fc_model_vsock);
	} else if (!strcmp(path, "/entropy") && put) {
		*route = "/entropy";
		BODY();
		model_put(a, j, &r, fc_model_entropy);
	} else if (!strcmp(path, "/balloon") && (get || put || patch)) {
		*route = "/balloon";
		if (get) {
			if (!a->model.has_balloon)
				fault(&r, "The balloon device was not configured");
			else
				ok_json(&r, fc_model_balloon_json(&a->model));
		} else {
			BODY();
			do_balloon(a, j, patch, &r);
		}
	} else if (!strcmp(path, "/balloon/statistics") && (get || patch)) {
		*route = "/balloon/statistics";
		if (get) {
			do_balloon_stats_get(a, &r);
		} else {
			BODY();
			do_balloon_stats_patch(a, j, &r);
		}
	} else if (!strcmp(path, "/vm") && patch) {
		*route = "/vm";
		BODY();
		do_vm(a, j, &r);
	} else if (!strcmp(path, "/snapshot/create") && put) {
		*route = "/snapshot/create";
		BODY();
		do_snapshot_create(a, j, &r);
	} else if (!strcmp(path, "/snapshot/load") && put) {
		*route = "/snapshot/load";
		BODY();
		do_snapshot_load(a, j, &r);
	} else if (!strcmp(path, "/logger") && put) {
		*route = "/logger";
		BODY();
		do_logger(a, j, &r);
	} else if (!strcmp(path, "/metrics") && put) {
		*route = "/metrics";
		BODY();
		do_metrics(a, j, &r);
	} else if (!strcmp(path, "/mmds") && (get || put || patch)) {
		*route = "/mmds";
		do_mmds(a, method, body, len, &r);
	} else if (!strcmp(path, "/mmds/config") && put) {
		*route = "/mmds/config";
		BODY();
		do_mmds_config(a, j, &r);
	} else if (!strcmp(path, "/vm/config") && get) {
		*route = "/vm/config";
		ok_json(&r, fc_model_to_json(&a->model));
	} else {
		snprintf(r.err, sizeof(r.err), "Invalid request method and/or path: %.16s %.200s.",
			 method, path);
		fault(&r, r.err);
	}
#undef BODY
out:
	if (a->state == API_NOT_STARTED && (put || patch) && r.status == 204 &&
	    boot_specific(*route))
		a->boot_configured = true;
	json_decref(j);
	*status = r.status;
	*out = r.out;
}
