/* ignition as Firecracker: the command line, the API server and the instance's lifecycle.
 *
 * Threads: the main thread parses the flags, then waits for the API thread to ask for a start
 * (InstanceStart, or a snapshot load); it builds the machine, answers, and runs it exactly as
 * `ignition run` does (run_machine).  Once the machine runs, the API thread reaches it only
 * through evloop_call(): every operation that touches the VM runs on the event-loop thread. */
#include "api/fc_main.h"

#include "api/fc_model.h"
#include "api/mmds.h"
#include "api/router.h"
#include "api/http.h"
#include "arch/x86/boot.h"
#include "core/console.h"
#include "core/machine.h"
#include "core/metrics.h"
#include "core/run.h"
#include "core/vm.h"
#include "devices/i8042.h"
#include "devices/virtio/balloon.h"
#include "devices/virtio/blk.h"
#include "devices/virtio/net.h"
#include "snapshot/snapshot.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FC_VERSION "0.1.0"

static const char fc_usage[] =
	"Usage: firecracker [OPTIONS]   (ignition in Firecracker mode; docs/api.md)\n"
	"Serves Firecracker's REST API on a Unix socket, then boots or restores one microVM.\n"
	"\n"
	"  --api-sock PATH      the API socket (default /run/firecracker.socket)\n"
	"  --id ID              the instance id (GET /)\n"
	"  --config-file FILE   boot from Firecracker's JSON configuration, no API call needed\n"
	"  --no-api             open no API socket (needs --config-file)\n"
	"  --log-path PATH      write the log there instead of stderr\n"
	"  --level LEVEL        Error, Warning, Info, Debug (or Trace, Off)\n"
	"  --metrics-path PATH  write metrics there (a file or a FIFO)\n"
	"  --boot-timer         log the time from start to the guest's boot-done signal\n"
	"  --help               this help\n"
	"  --version            the version\n"
	"The guest's serial console is on stdin/stdout, with ignition's Ctrl-A keys.\n";

/* Firecracker flags ignition does not implement: named in the error. */
static const char *const unsupported[] = { "--seccomp-filter",
					   "--no-seccomp",
					   "--start-time-us",
					   "--start-time-cpu-us",
					   "--parent-cpu-time-us",
					   "--http-api-max-payload-size",
					   "--mmds-size-limit",
					   "--snapshot-version",
					   "--describe-snapshot",
					   "--show-level",
					   "--show-log-origin",
					   "--module",
					   NULL };

enum req_kind { REQ_NONE, REQ_START, REQ_LOAD, REQ_RESUME };

/* The hand-over between the API thread and the main thread. */
static struct {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	enum req_kind req;
	const struct fc_model *model;
	const struct api_snapshot_load *load;
	struct fc_model *restored; /* REQ_LOAD: receives the restored machine's model */
	bool done;
	int ret;
	char err[API_ERR_MAX];
	bool running; /* vm_run is under way: operations go through evloop_call */
} hand = { .mu = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

static struct machine machine;
static struct api api;
static struct api_server *server;

/* ---- The logger (src/util/log.h): Firecracker's level names, a file or FIFO. ---- */
static int fc_logger_open(const char *path, const char *level, char *err, size_t n)
{
	enum log_level l = LOG_WARN;
	int ret;

	if (level && level[0] && log_level_parse(level, &l))
		return err_set(-EINVAL, err, n,
			       "invalid log level `%s`: expected Error, Warning, Info, Debug, "
			       "Trace or Off",
			       level);
	if (path && path[0] && (ret = log_open(path, err, n)))
		return ret == -EALREADY ? err_set(ret, err, n, "The logger was already configured")
					: ret;
	log_set_level(l);
	return 0;
}

int api_apply_ratelimit(struct machine *m, const char *kind, int index,
			const struct ratelimit_cfg *rl, const struct ratelimit_cfg *tx, char *err,
			size_t n)
{
	int ret;

	if (!strcmp(kind, "drive")) {
		if (index < 0 || index >= m->cfg.nr_disks || !m->disks[index])
			return err_set(-ENODEV, err, n, "no such drive");
		ret = virtio_blk_set_ratelimit(m->disks[index], rl);
		if (!ret)
			m->cfg.disks[index].rl = *rl; /* a later snapshot keeps the new limit */
	} else if (!strcmp(kind, "net")) {
		if (index < 0 || index >= m->cfg.nr_nets || !m->nets[index])
			return err_set(-ENODEV, err, n, "no such network interface");
		ret = virtio_net_set_ratelimit(m->nets[index], rl, tx);
		if (!ret) {
			if (rl)
				m->cfg.nets[index].rx_rl = *rl;
			if (tx)
				m->cfg.nets[index].tx_rl = *tx;
		}
	} else {
		return err_set(-EINVAL, err, n, "no rate limiter of kind %s", kind);
	}
	if (ret)
		return err_set(ret, err, n, "cannot change the %s rate limiter: %s", kind,
			       ret == -EINVAL ? "invalid token bucket" : strerror(-ret));
	return 0;
}

int api_swap_drive(struct machine *m, int index, int fd, const char *path, char *err, size_t n)
{
	int ret;

	if (index < 0 || index >= m->cfg.nr_disks || !m->disks[index]) {
		close(fd);
		return err_set(-ENODEV, err, n, "no such drive");
	}
	if (strlen(path) >= sizeof(m->cfg.disks[index].path)) {
		close(fd);
		return err_set(-ENAMETOOLONG, err, n, "path_on_host is too long");
	}
	ret = virtio_blk_swap(m->disks[index], fd, path);
	if (ret == -EBUSY)
		return err_set(ret, err, n,
			       "Unable to patch the block device: '%s' is in use by another "
			       "process (locked %s)",
			       path, virtio_blk_locked_rw(path) ? "read-write" : "read-only");
	if (ret == -EINVAL)
		return err_set(ret, err, n,
			       "Unable to patch the block device: '%s' is not a regular file or "
			       "block device of at least 512 bytes",
			       path);
	if (ret == -EPERM)
		return err_set(ret, err, n,
			       "Unable to patch the block device: an in-place reset checkpoint "
			       "holds the current image");
	if (ret)
		return err_set(ret, err, n, "Unable to patch the block device: '%s': %s", path,
			       strerror(-ret));
	/* The disk is that file now: a later snapshot copies it from there, and a restore's
	 * private copy of the old image is no longer what the disk reads. */
	snprintf(m->cfg.disks[index].path, sizeof(m->cfg.disks[index].path), "%s", path);
	if (m->private_fds[index] >= 0) {
		close(m->private_fds[index]);
		m->private_fds[index] = -1;
	}
	return 0;
}

/* ---- API operations that need the main thread ---- */
static int ask_main(enum req_kind kind, const struct fc_model *m, const struct api_snapshot_load *l,
		    struct fc_model *restored, char *err, size_t n)
{
	int ret;

	pthread_mutex_lock(&hand.mu);
	hand.req = kind;
	hand.model = m;
	hand.load = l;
	hand.restored = restored;
	hand.done = false;
	hand.err[0] = '\0';
	pthread_cond_broadcast(&hand.cond);
	while (!hand.done)
		pthread_cond_wait(&hand.cond, &hand.mu);
	ret = hand.ret;
	snprintf(err, n, "%s", hand.err);
	pthread_mutex_unlock(&hand.mu);
	return ret;
}

static int op_start(void *ctx, const struct fc_model *m, char *err, size_t n)
{
	(void)ctx;
	return ask_main(REQ_START, m, NULL, NULL, err, n);
}

static int op_load(void *ctx, const struct api_snapshot_load *l, struct fc_model *m, char *err,
		   size_t n)
{
	(void)ctx;
	return ask_main(REQ_LOAD, NULL, l, m, err, n);
}

/* ---- Operations on the running VM: on the event-loop thread ---- */
struct ev_op {
	int kind;
	uint32_t value;
	const char *rl_kind; /* EV_RATELIMIT: "drive" or "net", device index in value */
	const struct ratelimit_cfg *rl, *tx;
	const struct api_snapshot_create *snap;
	char **json;
	int fd;		  /* EV_DRIVE_PATH: the new image, open; disk index in value */
	const char *path; /* EV_DRIVE_PATH: its path */
	char err[API_ERR_MAX];
};

enum {
	EV_PAUSE,
	EV_RESUME,
	EV_SNAPSHOT,
	EV_BALLOON,
	EV_STATS,
	EV_STATS_INTERVAL,
	EV_RATELIMIT,
	EV_CTRL_ALT_DEL,
	EV_DRIVE_PATH,
};

static int snapshot_on_loop(struct ev_op *op)
{
	const struct api_snapshot_create *c = op->snap;
	struct snapshot_stats st;
	int ret;

	/* A Full snapshot: forget the parent, so snapshot_create writes all of memory. */
	if (!c->diff)
		machine.snap_parent[0] = '\0';
	ret = snapshot_create(&machine, c->snapshot_path, &st, op->err, sizeof(op->err));
	if (ret)
		return ret;
	metrics_snapshot_time(st.total_us);
	return 0;
}

/* SendCtrlAltDel: the keys through the i8042, as Firecracker does on x86. */
static int ctrl_alt_del_on_loop(struct ev_op *op)
{
	int ret;

	if (!machine.i8042)
		return err_set(-ENODEV, op->err, sizeof(op->err), "The microVM has no keyboard");
	ret = i8042_send_ctrl_alt_del(machine.i8042);
	if (ret == -EAGAIN)
		return err_set(ret, op->err, sizeof(op->err),
			       "The guest has turned its keyboard off: Ctrl+Alt+Del not sent");
	if (ret == -ENOSPC)
		return err_set(
			ret, op->err, sizeof(op->err),
			"The guest has not read the keys sent before: Ctrl+Alt+Del not sent");
	if (ret)
		return err_set(ret, op->err, sizeof(op->err), "Cannot send Ctrl+Alt+Del: %s",
			       strerror(-ret));
	return 0;
}

static int on_loop(void *arg)
{
	struct ev_op *op = arg;
	struct vm *vm = &machine.vm;
	int ret;

	switch (op->kind) {
	case EV_PAUSE:
		ret = vm_pause(vm);
		if (ret == -EALREADY)
			ret = 0;
		if (ret)
			snprintf(op->err, sizeof(op->err), "cannot pause the microVM: %s",
				 strerror(-ret));
		return ret;
	case EV_RESUME:
		vm_resume(vm);
		return 0;
	case EV_SNAPSHOT:
		return snapshot_on_loop(op);
	case EV_BALLOON:
		if (!machine.balloon)
			return err_set(-ENODEV, op->err, sizeof(op->err),
				       "The balloon device was not configured");
		virtio_balloon_set_target(machine.balloon,
					  op->value << (20 - VIRTIO_BALLOON_PAGE_SHIFT));
		return 0;
	case EV_CTRL_ALT_DEL:
		return ctrl_alt_del_on_loop(op);
	case EV_DRIVE_PATH: {
		int fd = op->fd;

		op->fd = -1; /* taken over by api_swap_drive */
		return api_swap_drive(&machine, (int)op->value, fd, op->path, op->err,
				      sizeof(op->err));
	}
	case EV_RATELIMIT:
		return api_apply_ratelimit(&machine, op->rl_kind, (int)op->value, op->rl, op->tx,
					   op->err, sizeof(op->err));
	case EV_STATS_INTERVAL:
		if (!machine.balloon)
			return err_set(-ENODEV, op->err, sizeof(op->err),
				       "The balloon device was not configured");
		if (virtio_balloon_set_stats_interval(machine.balloon, op->value))
			return err_set(-EINVAL, op->err, sizeof(op->err),
				       "Statistics were not enabled when the microVM started");
		machine.cfg.balloon_stats_s = op->value; /* what a later snapshot records */
		return 0;
	case EV_STATS: {
		struct virtio_balloon_stats s;
		json_t *o;

		if (!machine.balloon)
			return err_set(-ENODEV, op->err, sizeof(op->err),
				       "The balloon device was not configured");
		(void)virtio_balloon_request_stats(machine.balloon);
		virtio_balloon_get_stats(machine.balloon, &s, NULL);
		o = json_pack("{s:i,s:i,s:I,s:I}", "target_pages",
			      (int)virtio_balloon_target(machine.balloon), "actual_pages",
			      (int)virtio_balloon_actual(machine.balloon), "target_mib",
			      (json_int_t)(virtio_balloon_target(machine.balloon) >>
					   (20 - VIRTIO_BALLOON_PAGE_SHIFT)),
			      "actual_mib",
			      (json_int_t)(virtio_balloon_actual(machine.balloon) >>
					   (20 - VIRTIO_BALLOON_PAGE_SHIFT)));
		if (o && s.valid) {
			static const struct {
				int tag;
				const char *name;
			} names[] = {
				{ VIRTIO_BALLOON_S_SWAP_IN, "swap_in" },
				{ VIRTIO_BALLOON_S_SWAP_OUT, "swap_out" },
				{ VIRTIO_BALLOON_S_MAJFLT, "major_faults" },
				{ VIRTIO_BALLOON_S_MINFLT, "minor_faults" },
				{ VIRTIO_BALLOON_S_MEMFREE, "free_memory" },
				{ VIRTIO_BALLOON_S_MEMTOT, "total_memory" },
				{ VIRTIO_BALLOON_S_AVAIL, "available_memory" },
				{ VIRTIO_BALLOON_S_CACHES, "disk_caches" },
				{ VIRTIO_BALLOON_S_HTLB_PGALLOC, "hugetlb_allocations" },
				{ VIRTIO_BALLOON_S_HTLB_PGFAIL, "hugetlb_failures" },
			};

			for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
				if (s.present & (1u << names[i].tag))
					json_object_set_new(
						o, names[i].name,
						json_integer((json_int_t)s.val[names[i].tag]));
		}
		*op->json = o ? json_dumps(o, JSON_COMPACT) : NULL;
		json_decref(o);
		return *op->json ? 0 : -ENOMEM;
	}
	default:
		return -EINVAL;
	}
}

static int on_vm(struct ev_op *op, char *err, size_t n)
{
	int ret;

	if (!__atomic_load_n(&hand.running, __ATOMIC_ACQUIRE))
		return err_set(-ESHUTDOWN, err, n, "The microVM is not running");
	op->err[0] = '\0';
	ret = evloop_call(&machine.vm.ev, on_loop, op);
	if (ret)
		snprintf(err, n, "%s", op->err[0] ? op->err : strerror(-ret));
	return ret;
}

static int op_pause(void *ctx, char *err, size_t n)
{
	struct ev_op op = { .kind = EV_PAUSE };
	(void)ctx;
	return on_vm(&op, err, n);
}

static int op_resume(void *ctx, char *err, size_t n)
{
	struct ev_op op = { .kind = EV_RESUME };
	(void)ctx;

	/* Loaded without resume_vm: the machine waits for this to start running. */
	if (!__atomic_load_n(&hand.running, __ATOMIC_ACQUIRE))
		return ask_main(REQ_RESUME, NULL, NULL, NULL, err, n);
	return on_vm(&op, err, n);
}

static int op_snapshot(void *ctx, const struct api_snapshot_create *c, char *err, size_t n)
{
	struct ev_op op = { .kind = EV_SNAPSHOT, .snap = c };
	char mem[PATH_MAX + 16];
	int ret = on_vm(&op, err, n);
	(void)ctx;

	if (ret || !c->mem_file_path[0])
		return ret;
	/* ignition's snapshot is a directory; mem_file_path names its memory file too (a hard
	 * link, made here on the API thread: the event loop's filter has no link(2)). */
	snprintf(mem, sizeof(mem), "%s/memory", c->snapshot_path);
	if (link(mem, c->mem_file_path) < 0)
		return err_set(-errno, err, n, "snapshot written to %s, but mem_file_path '%s': %s",
			       c->snapshot_path, c->mem_file_path, strerror(errno));
	return 0;
}

static int op_balloon(void *ctx, uint32_t mib, char *err, size_t n)
{
	struct ev_op op = { .kind = EV_BALLOON, .value = mib };
	(void)ctx;
	return on_vm(&op, err, n);
}

static int op_stats(void *ctx, char **json, char *err, size_t n)
{
	struct ev_op op = { .kind = EV_STATS, .json = json };
	(void)ctx;
	return on_vm(&op, err, n);
}

static int op_stats_interval(void *ctx, uint32_t stats_s, char *err, size_t n)
{
	struct ev_op op = { .kind = EV_STATS_INTERVAL, .value = stats_s };
	(void)ctx;
	return on_vm(&op, err, n);
}

static int op_ctrl_alt_del(void *ctx, char *err, size_t n)
{
	struct ev_op op = { .kind = EV_CTRL_ALT_DEL };
	(void)ctx;
	return on_vm(&op, err, n);
}

static int op_flush(void *ctx, char *err, size_t n)
{
	int ret = metrics_flush();
	(void)ctx;

	if (ret == -ENOENT)
		return err_set(ret, err, n, "Metrics are not configured (PUT /metrics first)");
	if (ret)
		return err_set(ret, err, n, "cannot flush the metrics: %s", strerror(-ret));
	return 0;
}

static int op_logger(void *ctx, const struct fc_model *m, char *err, size_t n)
{
	(void)ctx;
	log_set_options(m->show_level, m->show_origin);
	return fc_logger_open(m->log_path, m->log_level, err, n);
}

static int op_metrics(void *ctx, const char *path, char *err, size_t n)
{
	(void)ctx;
	return metrics_open(path, err, n);
}

static int op_ratelimit(void *ctx, const char *kind, int index, const struct ratelimit_cfg *rl,
			const struct ratelimit_cfg *tx, char *err, size_t n)
{
	struct ev_op op = {
		.kind = EV_RATELIMIT, .value = (uint32_t)index, .rl_kind = kind, .rl = rl, .tx = tx
	};
	(void)ctx;
	if (index < 0)
		return err_set(-ENODEV, err, n, "no such device");
	return on_vm(&op, err, n);
}

/* PATCH /drives path_on_host after start: the image is opened here (the API thread's filter
 * allows opening an existing file; the event loop's never opens one for writing), with the
 * drive's read-only-ness, and swapped in on the event loop. */
static int op_drive_path(void *ctx, int index, const char *path, char *err, size_t n)
{
	struct ev_op op = { .kind = EV_DRIVE_PATH, .value = (uint32_t)index, .path = path };
	bool ro;
	int ret;
	(void)ctx;

	if (!__atomic_load_n(&hand.running, __ATOMIC_ACQUIRE))
		return err_set(-ESHUTDOWN, err, n, "The microVM is not running");
	if (index < 0 || index >= machine.cfg.nr_disks)
		return err_set(-ENODEV, err, n, "no such drive");
	ro = machine.cfg.disks[index].read_only;
	op.fd = open(path, (ro ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NOCTTY);
	if (op.fd < 0)
		return err_set(-errno, err, n, "Unable to patch the block device: '%s': %s", path,
			       strerror(errno));
	ret = on_vm(&op, err, n);
	if (op.fd >= 0) /* the loop never took it (the VM stopped meanwhile) */
		close(op.fd);
	return ret;
}

static const struct api_ops ops = {
	.instance_start = op_start,
	.ctrl_alt_del = op_ctrl_alt_del,
	.flush_metrics = op_flush,
	.pause = op_pause,
	.resume = op_resume,
	.snapshot_create = op_snapshot,
	.snapshot_load = op_load,
	.logger = op_logger,
	.metrics = op_metrics,
	.balloon_target = op_balloon,
	.balloon_stats = op_stats,
	.balloon_stats_interval = op_stats_interval,
	.ratelimit = op_ratelimit,
	.drive_path = op_drive_path,
};

/* ---- Building the machine (main thread) ---- */
static bool boot_timer;
static uint64_t t_start_us;

static int check_file(const char *what, const char *path, bool want_write, char *err, size_t n)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return err_set(-errno, err, n, "%s '%s': %s", what, path, strerror(errno));
	if (S_ISDIR(st.st_mode))
		return err_set(-EISDIR, err, n, "%s '%s' is a directory", what, path);
	if (access(path, want_write ? R_OK | W_OK : R_OK) < 0)
		return err_set(-errno, err, n, "%s '%s': %s", what, path, strerror(errno));
	return 0;
}

static int build_boot(const struct fc_model *fm, char *err, size_t n)
{
	static struct machine_config cfg;
	struct machine_env env = { .console_fd = STDOUT_FILENO, .mem_fd = -1 };
	const char *why = NULL;
	int ret;

	if ((ret = fc_model_to_machine(fm, &cfg, err, n)))
		return ret;
	env.track_dirty = fm->track_dirty;
	env.mmds = api.mmds; /* served on the interfaces /mmds/config names */
	if ((ret = check_file("kernel", cfg.kernel, false, err, n)))
		return ret;
	ret = boot_probe_kernel(cfg.kernel, &why);
	if (ret)
		return err_set(ret, err, n, "kernel '%s': %s", cfg.kernel,
			       why ? why : strerror(-ret));
	if (cfg.initrd[0] && (ret = check_file("initrd", cfg.initrd, false, err, n)))
		return ret;
	for (int i = 0; i < cfg.nr_disks; i++)
		if ((ret = check_file("drive", cfg.disks[i].path, !cfg.disks[i].read_only, err, n)))
			return ret;
	if ((ret = machine_create(&machine, &cfg, &env, err, n)))
		return ret;
	if (fm->has_balloon && machine.balloon)
		virtio_balloon_set_target(machine.balloon,
					  fm->balloon_mib << (20 - VIRTIO_BALLOON_PAGE_SHIFT));
	ret = vm_catch_stop_signals(&machine.vm, console_restore);
	if (ret) {
		machine_destroy(&machine);
		return err_set(ret, err, n, "cannot set up the stop signals: %s", strerror(-ret));
	}
	if ((ret = machine_boot(&machine, err, n))) {
		machine_destroy(&machine);
		return ret;
	}
	return 0;
}

static int build_load(const struct api_snapshot_load *l, char *err, size_t n)
{
	struct snapshot_net_override nets[MACHINE_MAX_NETS];
	struct snapshot_overrides ov = { .checkpoint = run_checkpoint() };
	struct machine_env env = { .console_fd = STDOUT_FILENO, .mem_fd = -1 };
	char mem[PATH_MAX + 16];
	struct stat a, b;
	uint64_t t0 = log_uptime_us();
	int ret;

	env.track_dirty = l->track_dirty;
	env.mmds = api.mmds;
	/* With a page-fault handler the memory file need not be there: check the state. */
	snprintf(mem, sizeof(mem), "%s/%s", l->snapshot_path, l->uffd_path[0] ? "state" : "memory");
	if (stat(mem, &a) < 0)
		return err_set(-errno, err, n,
			       "snapshot_path '%s' is not an ignition snapshot directory (%s: %s)",
			       l->snapshot_path, mem, strerror(errno));
	/* Guest RAM is the snapshot's memory file: a backend_path must be that file. */
	if (l->mem_path[0] &&
	    (stat(l->mem_path, &b) < 0 || a.st_dev != b.st_dev || a.st_ino != b.st_ino))
		return err_set(-EINVAL, err, n,
			       "mem_backend backend_path '%s' must be the snapshot's memory file "
			       "(%s, or a hard link to it)",
			       l->mem_path, mem);
	/* Firecracker's network_overrides name interfaces by iface_id; the snapshot's record
	 * says which device that is (snapshot_restore). */
	for (int i = 0; i < l->nr_net_overrides; i++) {
		const char *dev = l->net_overrides[i].host_dev_name;
		bool user = !strcmp(dev, FC_NET_USER);

		nets[i] = (struct snapshot_net_override){
			.id = l->net_overrides[i].iface_id,
			.kind = user ? MACHINE_NET_USER : MACHINE_NET_TAP,
			.tap = user ? NULL : dev,
		};
	}
	ov.nr_net_backends = l->nr_net_overrides;
	ov.net_backends = nets;
	ov.uffd_path = l->uffd_path[0] ? l->uffd_path : NULL;
	ov.clock_as_saved = l->clock_as_saved;
	/* The guest keeps its CID: only the host side's socket moves. */
	if (l->vsock_uds[0])
		ov.vsock_path = l->vsock_uds;
	ret = snapshot_restore(&machine, l->snapshot_path, &ov, &env, err, n);
	if (ret)
		return ret;
	metrics_restore_time(log_uptime_us() - t0);
	ret = vm_catch_stop_signals(&machine.vm, console_restore);
	if (ret) {
		machine_destroy(&machine);
		return err_set(ret, err, n, "cannot set up the stop signals: %s", strerror(-ret));
	}
	return 0;
}

/* The balloon's current target in MiB. */
static uint32_t balloon_target_mib(struct virtio_balloon *b)
{
	return virtio_balloon_target(b) >> (20 - VIRTIO_BALLOON_PAGE_SHIFT);
}

/* Answer the waiting API call. */
static void reply(int ret, const char *err)
{
	pthread_mutex_lock(&hand.mu);
	hand.ret = ret;
	snprintf(hand.err, sizeof(hand.err), "%s", err);
	hand.done = true;
	hand.req = REQ_NONE;
	pthread_cond_broadcast(&hand.cond);
	pthread_mutex_unlock(&hand.mu);
}

/* Wait for a request of the API thread (main thread). */
static enum req_kind wait_request(void)
{
	enum req_kind k;

	pthread_mutex_lock(&hand.mu);
	while (hand.req == REQ_NONE)
		pthread_cond_wait(&hand.cond, &hand.mu);
	k = hand.req;
	pthread_mutex_unlock(&hand.mu);
	return k;
}

/* run_machine's hooks: answer the start once everything is ready, filter the API thread. */
static bool answer_pending;

static void on_ready(void *ctx)
{
	(void)ctx;
	__atomic_store_n(&hand.running, true, __ATOMIC_RELEASE);
	http_api_filter(server);
	if (boot_timer)
		log_warn("boot timer: the machine was built %llu us after start",
			 (unsigned long long)(log_uptime_us() - t_start_us));
	if (answer_pending) {
		answer_pending = false;
		reply(0, "");
	}
}

static void on_stopping(void *ctx)
{
	(void)ctx;
	__atomic_store_n(&hand.running, false, __ATOMIC_RELEASE);
	/* The API thread must be gone before machine_destroy frees what it could reach. */
	http_api_stop(server);
	server = NULL;
}

/* Before the VM exists a stop signal ends the process at once, but not leaving the API socket
 * behind (vm_catch_stop_signals takes these signals over once a machine is built). */
static char sock_path[108];

static void early_stop(int sig)
{
	if (sock_path[0])
		unlink(sock_path);
	_exit(128 + sig);
}

static __attribute__((noreturn, format(printf, 2, 3))) void fail(int status, const char *fmt, ...)
{
	va_list ap;

	fputs("ignition: error: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(status);
}

static int load_config_file(const char *path, char *err, size_t n)
{
	json_error_t je;
	json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
	int ret;

	if (!doc)
		return err_set(-EINVAL, err, n, "--config-file '%s': %s (line %d)", path, je.text,
			       je.line);
	ret = fc_model_config_file(&api.model, doc, err, n);
	json_decref(doc);
	if (ret)
		return ret;
	if (api.model.has_logger)
		log_set_options(api.model.show_level, api.model.show_origin);
	if (api.model.has_logger &&
	    (ret = fc_logger_open(api.model.log_path, api.model.log_level, err, n)))
		return ret;
	if (api.model.has_metrics && (ret = metrics_open(api.model.metrics_path, err, n)))
		return ret;
	if (api.model.has_mmds && (ret = api_mmds_config(&api, &api.model, err, n)))
		return ret;
	return 0;
}

int fc_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "api-sock", required_argument, NULL, 'a' },
		{ "id", required_argument, NULL, 'i' },
		{ "config-file", required_argument, NULL, 'c' },
		{ "no-api", no_argument, NULL, 'N' },
		{ "log-path", required_argument, NULL, 'l' },
		{ "level", required_argument, NULL, 'L' },
		{ "metrics-path", required_argument, NULL, 'm' },
		{ "boot-timer", no_argument, NULL, 'b' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *sock = "/run/firecracker.socket", *id = NULL, *config = NULL;
	const char *log_path = NULL, *level = NULL, *metrics_path = NULL;
	bool no_api = false;
	struct mmds *mmds = NULL;
	char err[API_ERR_MAX] = "";
	struct run_opts ro = { .ready = on_ready, .stopping = on_stopping };
	int c, ret;

	t_start_us = log_uptime_us();
	for (int i = 1; i < argc; i++) {
		for (int k = 0; unsupported[k]; k++) {
			size_t len = strlen(unsupported[k]);

			if (!strncmp(argv[i], unsupported[k], len) &&
			    (argv[i][len] == '\0' || argv[i][len] == '='))
				fail(2,
				     "Firecracker flag %s is not supported by ignition (see "
				     "docs/api.md)",
				     unsupported[k]);
		}
	}
	opterr = 0;
	optind = 1;
	while ((c = getopt_long_only(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'a':
			sock = optarg;
			break;
		case 'i':
			id = optarg;
			break;
		case 'c':
			config = optarg;
			break;
		case 'N':
			no_api = true;
			break;
		case 'l':
			log_path = optarg;
			break;
		case 'L':
			level = optarg;
			break;
		case 'm':
			metrics_path = optarg;
			break;
		case 'b':
			boot_timer = true;
			break;
		case 'h':
			fputs(fc_usage, stdout);
			return 0;
		case 'V':
			printf("ignition v%s (Firecracker-compatible API mode)\n", FC_VERSION);
			return 0;
		default:
			fail(2, "unknown or incomplete option '%s' (try --help)", argv[optind - 1]);
		}
	}
	if (optind < argc)
		fail(2, "unexpected argument '%s' (try --help)", argv[optind]);
	if (no_api && !config)
		fail(2, "--no-api needs --config-file (nothing could start the microVM)");
	if (id && !id[0])
		fail(2, "--id must not be empty");
	/* A client that hangs up must not kill the VMM with SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);
	if (metrics_path && metrics_open(metrics_path, err, sizeof(err)))
		fail(1, "--metrics-path: %s", err);
	/* Last: from here on the log (and so any later error line) goes to --log-path. */
	if ((log_path || level) && fc_logger_open(log_path, level, err, sizeof(err)))
		fail(1, "%s", err);
	/* Seed jansson's hash before any filtered thread could need it (control.h says why). */
	json_object_seed(0);
	if (mmds_create(&mmds))
		mmds = NULL; /* the MMDS endpoints then answer 400 */
	api_init(&api, id, &ops, mmds);
	if (config) {
		if (load_config_file(config, err, sizeof(err)))
			fail(1, "%s", err);
		if (build_boot(&api.model, err, sizeof(err)))
			fail(1, "%s", err);
		api.state = API_RUNNING;
	}
	if (!no_api && http_api_start(sock, &api, &server, err, sizeof(err)))
		fail(1, "%s", err);
	if (!no_api && !config && strlen(sock) < sizeof(sock_path)) {
		struct sigaction sa = { .sa_handler = early_stop };

		memcpy(sock_path, sock, strlen(sock) + 1);
		sigaction(SIGTERM, &sa, NULL);
		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGHUP, &sa, NULL);
	}
	for (; !config;) {
		enum req_kind k = wait_request();

		err[0] = '\0';
		if (k == REQ_START) {
			ret = build_boot(hand.model, err, sizeof(err));
			if (ret) {
				reply(ret, err);
				continue;
			}
			ro.track_dirty = hand.model->track_dirty;
			answer_pending = true;
			break;
		}
		if (k == REQ_LOAD) {
			const struct api_snapshot_load *l = hand.load;
			bool resume = l->resume_vm;

			ret = build_load(l, err, sizeof(err));
			if (ret) {
				reply(ret, err);
				continue;
			}
			/* From now on the API answers for the restored machine: its description
			 * after the overrides and the clone's new MACs, as the guest has it. */
			fc_model_from_machine(hand.restored, &machine.cfg,
					      machine.balloon ? balloon_target_mib(machine.balloon)
							      : 0,
					      l->track_dirty);
			ro.restored = true;
			ro.track_dirty = l->track_dirty;
			if (resume) {
				answer_pending = true;
				break;
			}
			reply(0, "");
			/* Paused until PATCH /vm Resumed. */
			while (wait_request() != REQ_RESUME)
				reply(-EINVAL, "The microVM is loaded and paused: only PATCH /vm "
					       "Resumed starts it");
			answer_pending = true;
			break;
		}
		reply(-EINVAL, "The microVM is not loaded");
	}
	ret = run_machine(&machine, &ro);
	metrics_close();
	mmds_destroy(mmds);
	return ret;
}
