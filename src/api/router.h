/* The REST API's request handler without the socket: (method, path, body) in, (status, JSON
 * body) out, with Firecracker's paths, fields and status codes (docs/api.md).  The pre-boot
 * configuration lives in the router's struct fc_model; what touches a machine goes through
 * struct api_ops, supplied by fc_main.c (tests and the fuzz target pass fakes).
 *
 * Threading: one caller at a time (the API thread); the ops may block until the main thread or
 * the event loop has done the work. */
#ifndef IGNITION_API_ROUTER_H
#define IGNITION_API_ROUTER_H

#include "api/fc_model.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest request body accepted (Firecracker's default http_api_max_payload_size). */
#define API_BODY_MAX 51200
#define API_ERR_MAX  512

enum api_state { API_NOT_STARTED, API_RUNNING, API_PAUSED };

struct api_snapshot_create {
	char snapshot_path[MACHINE_PATH_MAX]; /* a directory (ignition's snapshot format) */
	char mem_file_path[MACHINE_PATH_MAX]; /* "" or: a hard link to its memory file */
	bool diff;
};

struct api_net_override {
	char iface_id[FC_ID_MAX];
	char host_dev_name[32];
};

struct api_snapshot_load {
	char snapshot_path[MACHINE_PATH_MAX];
	char mem_path[MACHINE_PATH_MAX]; /* mem_backend.backend_path (File), or "" */
	/* mem_backend.backend_path (Uffd): the page-fault handler's socket, or "" */
	char uffd_path[MACHINE_PATH_MAX];
	bool track_dirty;
	bool resume_vm;
	bool clock_as_saved; /* clock_realtime false: the guest clock resumes where it stopped */
	int nr_net_overrides;
	struct api_net_override net_overrides[MACHINE_MAX_NETS];
	char vsock_uds[MACHINE_PATH_MAX]; /* vsock_override.uds_path, or "" */
};

/* What the router cannot do by itself.  Each returns 0, or -errno with a fault message in
 * err[n].  A NULL op answers 400 "not supported". */
struct api_ops {
	void *ctx;
	/* Build and start the machine the model describes. */
	int (*instance_start)(void *ctx, const struct fc_model *m, char *err, size_t n);
	int (*ctrl_alt_del)(void *ctx, char *err, size_t n);
	int (*flush_metrics)(void *ctx, char *err, size_t n);
	int (*pause)(void *ctx, char *err, size_t n);
	/* Resume a running VM, or run a VM loaded with resume_vm false. */
	int (*resume)(void *ctx, char *err, size_t n);
	int (*snapshot_create)(void *ctx, const struct api_snapshot_create *c, char *err, size_t n);
	/* Load (before start); the machine runs if l->resume_vm.  On success *m describes the
	 * restored machine (fc_model_from_machine: its devices under their ids), the router's
	 * model from then on. */
	int (*snapshot_load)(void *ctx, const struct api_snapshot_load *l, struct fc_model *m,
			     char *err, size_t n);
	/* Pre-boot: open the log / metrics destination. */
	int (*logger)(void *ctx, const struct fc_model *m, char *err, size_t n);
	int (*metrics)(void *ctx, const char *path, char *err, size_t n);
	/* After start: the balloon's new target; its statistics as a JSON object (malloc'd). */
	int (*balloon_target)(void *ctx, uint32_t mib, char *err, size_t n);
	int (*balloon_stats)(void *ctx, char **json, char *err, size_t n);
	/* After start: a new statistics interval (seconds, > 0). */
	int (*balloon_stats_interval)(void *ctx, uint32_t stats_s, char *err, size_t n);
	/* After start: a device's new rate limiter ("drive"/"net"/"entropy", model index). */
	int (*ratelimit)(void *ctx, const char *kind, int index, const struct ratelimit_cfg *rl,
			 const struct ratelimit_cfg *tx, char *err, size_t n);
	/* After start: put drive `index` (machine disk index) on the image at `path`. */
	int (*drive_path)(void *ctx, int index, const char *path, char *err, size_t n);
};

struct mmds;

struct api {
	struct fc_model model;
	enum api_state state;
	char id[FC_ID_MAX];
	const struct api_ops *ops;
	struct mmds *mmds; /* NULL: the MMDS endpoints answer 400 */
	/* A boot-specific resource was configured (boot source, machine, a device, MMDS
	 * config): a snapshot load is then refused, as in Firecracker. */
	bool boot_configured;
};

/* Set up `a` with Firecracker's default model (ops are borrowed). */
void api_init(struct api *a, const char *id, const struct api_ops *ops, struct mmds *mmds);

/* Handle one request: `method` ("GET", "PUT", "PATCH"...), `path` (without query), body[len]
 * (need not be NUL-terminated).  Sets *status (200, 204 or 400) and *out: NULL (204) or a
 * malloc'd JSON text the caller frees.  *route gets the path template for metrics.  Never
 * fails: out of memory is a 400 without body. */
void api_handle(struct api *a, const char *method, const char *path, const char *body, size_t len,
		unsigned *status, char **out, const char **route);

/* Hand the model's mmds-config to the MMDS store (PUT /mmds/config, --config-file): iface
 * ids become a mask of eth indexes.  0 or -errno with a reason. */
int api_mmds_config(struct api *a, const struct fc_model *m, char *err, size_t n)
	__attribute__((warn_unused_result));

/* The state's name in GET / ("Not started", "Running", "Paused"). */
const char *api_state_name(enum api_state s);

#endif
