/* Firecracker's pre-boot configuration as plain data: filled by the REST API's PUT/PATCH
 * requests and by --config-file (Firecracker's JSON layout), read back by GET /vm/config, and
 * turned into a struct machine_config when the instance starts.  No I/O, no threads: every
 * function is pure apart from malloc, so the router and the config file share it and the unit
 * tests drive it directly. */
#ifndef IGNITION_API_FC_MODEL_H
#define IGNITION_API_FC_MODEL_H

#include "core/machine.h"
#include "util/ratelimit.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FC_ID_MAX MACHINE_ID_MAX /* drive_id, iface_id, vsock_id (with the NUL) */
/* host_dev_name of a network interface on ignition's user networking (libslirp) instead of a
 * TAP device: ignition's extension of Firecracker's API (docs/api.md). */
#define FC_NET_USER "ignition:user"

struct fc_drive {
	char id[FC_ID_MAX];
	char path[MACHINE_PATH_MAX];
	bool root, read_only;
	char partuuid[64];
	char cache_type[16]; /* "Unsafe" (default) or "Writeback" */
	char io_engine[16];  /* "Sync" (default) or "Async" */
	bool has_rl;
	struct ratelimit_cfg rl;
};

struct fc_net {
	char id[FC_ID_MAX];
	char host_dev[32]; /* a TAP name (< IFNAMSIZ) or FC_NET_USER */
	bool has_mac;
	uint8_t mac[6];
	bool has_rx, has_tx;
	struct ratelimit_cfg rx, tx;
};

struct fc_model {
	bool has_boot;
	char kernel[MACHINE_PATH_MAX], initrd[MACHINE_PATH_MAX];
	char boot_args[MACHINE_CMDLINE_MAX];
	bool has_boot_args;
	struct fc_drive drives[MACHINE_MAX_DISKS];
	int nr_drives;
	struct fc_net nets[MACHINE_MAX_NETS];
	int nr_nets;
	unsigned vcpus;
	uint64_t mem_mib;
	bool smt, track_dirty;
	char cpu_template[16]; /* "None" */
	char huge_pages[16];   /* "None" */
	bool has_vsock;
	char vsock_id[FC_ID_MAX];
	uint32_t cid;
	char uds[MACHINE_PATH_MAX];
	bool has_entropy, has_rng_rl;
	struct ratelimit_cfg rng_rl;
	bool has_balloon;
	uint32_t balloon_mib;
	bool deflate_on_oom;
	uint32_t stats_s;
	bool has_logger;
	char log_path[MACHINE_PATH_MAX];
	char log_level[16];
	bool show_level, show_origin;
	bool has_metrics;
	char metrics_path[MACHINE_PATH_MAX];
	bool has_mmds;
	unsigned mmds_version; /* 1 or 2 */
	uint32_t mmds_ipv4;    /* host order */
	bool mmds_imds_compat; /* always IMDS text, whatever the guest's Accept header */
	char mmds_ifaces[MACHINE_MAX_NETS][FC_ID_MAX];
	int nr_mmds_ifaces;
};

/* Firecracker's defaults: 1 vCPU, 128 MiB, no devices. */
void fc_model_init(struct fc_model *m);

/* One endpoint's body (a parsed JSON value) applied to the model.  `patch`: PATCH semantics
 * (only the fields given change; the object must exist).  `id` is the path's {drive_id} /
 * {iface_id}.  0, or -EINVAL with the fault message in err[n] (unknown field, wrong type,
 * bad value), -ENOSPC (too many devices), -ENOENT (PATCH of a device that does not exist).
 * The model is unchanged on any error. */
int fc_model_boot_source(struct fc_model *m, json_t *body, char *err, size_t n)
	__attribute__((warn_unused_result));
int fc_model_drive(struct fc_model *m, const char *id, json_t *body, bool patch, char *err,
		   size_t n) __attribute__((warn_unused_result));
int fc_model_net(struct fc_model *m, const char *id, json_t *body, bool patch, char *err, size_t n)
	__attribute__((warn_unused_result));
int fc_model_machine(struct fc_model *m, json_t *body, bool patch, char *err, size_t n)
	__attribute__((warn_unused_result));
int fc_model_vsock(struct fc_model *m, json_t *body, char *err, size_t n)
	__attribute__((warn_unused_result));
int fc_model_entropy(struct fc_model *m, json_t *body, char *err, size_t n)
	__attribute__((warn_unused_result));
int fc_model_balloon(struct fc_model *m, json_t *body, bool patch, char *err, size_t n)
	__attribute__((warn_unused_result));
int fc_model_balloon_stats(struct fc_model *m, json_t *body, char *err, size_t n)
	__attribute__((warn_unused_result));
int fc_model_logger(struct fc_model *m, json_t *body, char *err, size_t n)
	__attribute__((warn_unused_result));
int fc_model_metrics(struct fc_model *m, json_t *body, char *err, size_t n)
	__attribute__((warn_unused_result));
int fc_model_mmds_config(struct fc_model *m, json_t *body, char *err, size_t n)
	__attribute__((warn_unused_result));
/* A whole --config-file document (Firecracker's layout: "boot-source", "drives",
 * "machine-config", "network-interfaces", "vsock", "balloon", "entropy", "logger", "metrics",
 * "mmds-config").  Unknown sections are errors. */
int fc_model_config_file(struct fc_model *m, json_t *doc, char *err, size_t n)
	__attribute__((warn_unused_result));

/* The model in the config file's layout (GET /vm/config); NULL on allocation failure. */
json_t *fc_model_to_json(const struct fc_model *m);
/* "machine-config" alone (GET /machine-config) / "balloon" alone (GET /balloon). */
json_t *fc_model_machine_json(const struct fc_model *m);
json_t *fc_model_balloon_json(const struct fc_model *m);

/* The machine the model describes: kernel, initrd, command line (boot_args, plus root= for a
 * root device: Firecracker adds nothing else, ignition's ACPI tables describe the devices),
 * disks (the root device first, as /dev/vda), network interfaces, vsock, rng, balloon.
 * -EINVAL with a fault message if it cannot start (no boot source, bad combination). */
/* The machine disk index (cfg->disks[]) fc_model_to_machine gives model drive `drive`; -1 if
 * there is no such drive. */
int fc_model_disk_index(const struct fc_model *m, int drive);
int fc_model_to_machine(const struct fc_model *m, struct machine_config *cfg, char *err, size_t n)
	__attribute__((warn_unused_result));
/* The model of a running machine built from `cfg` (after a snapshot load: the description it
 * was rebuilt from, with the load's overrides and a clone's new MACs): boot source (the
 * command line the guest booted with), machine-config (`track_dirty` as the load asked),
 * drives, network interfaces, vsock, entropy and balloon (`balloon_mib` its current target)
 * under the ids the snapshot recorded, or drive<N> / eth<N> where it recorded none.  Drives
 * keep the machine's disk order (fc_model_disk_index is then the identity).  The logger,
 * metrics and MMDS settings of `m` stay as they are. */
void fc_model_from_machine(struct fc_model *m, const struct machine_config *cfg,
			   uint32_t balloon_mib, bool track_dirty);
/* Index in the model's network list of iface `id`, or -1. */
int fc_model_net_index(const struct fc_model *m, const char *id);

/* JSON helpers shared with the router.  Each returns 0 or -EINVAL with a fault message. */
/* Every key of `obj` must be one of allowed[] (NULL-terminated); `what` names the object. */
int fc_json_fields(json_t *obj, const char *what, const char *const *allowed, char *err, size_t n)
	__attribute__((warn_unused_result));
/* A string field (absent: untouched unless required); longer than size-1 is an error. */
int fc_json_str(json_t *obj, const char *key, bool required, char *buf, size_t size, char *err,
		size_t n) __attribute__((warn_unused_result));
int fc_json_bool(json_t *obj, const char *key, bool required, bool *out, char *err, size_t n)
	__attribute__((warn_unused_result));
/* An integer in [0, max]. */
int fc_json_u64(json_t *obj, const char *key, bool required, uint64_t max, uint64_t *out, char *err,
		size_t n) __attribute__((warn_unused_result));
/* A rate_limiter object ({bandwidth, ops}, each {size, one_time_burst, refill_time}); null
 * clears it. */
int fc_json_ratelimit(json_t *v, const char *what, struct ratelimit_cfg *out, bool *set, char *err,
		      size_t n) __attribute__((warn_unused_result));
json_t *fc_json_ratelimit_out(const struct ratelimit_cfg *c);

#endif
