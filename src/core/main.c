/* ignition: command line entry point.  Parses options, builds the VM through the
 * DeviceManager, loads the kernel, runs until the guest or the user stops it. */
#include "api/mmds.h"
#include "arch/x86/boot.h"
#include "browser/browser.h"
#include "core/cli.h"
#include "core/console.h"
#include "core/control.h"
#include "core/jail.h"
#include "core/kvm_stats.h"
#include "core/machine.h"
#include "core/metrics.h"
#include "core/run.h"
#include "api/fc_main.h"
#include "devices/boot_timer.h"
#include "fuzz/fuzz_main.h"
#include "mcp/mcp.h"
#include "devices/fuzz.h"
#include "core/seccomp.h"
#include "snapshot/checkpoint.h"
#include "snapshot/snapshot.h"
#include "snapshot/store.h"
#include "core/vcpu.h"
#include "core/vm.h"
#include "devices/virtio/balloon.h"
#include "devices/virtio/net.h"
#include "ui/display.h"
#include "ui/input.h"
#include "ui/ui.h"
#include "util/guest_files.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define CMDLINE_MAX 4096

static const char top_usage[] =
	"Usage: ignition COMMAND [OPTIONS]\n"
	"A microVM monitor for Linux/KVM.\n"
	"\n"
	"Commands:\n"
	"  run        boot a guest, or resume a snapshot with --restore (see\n"
	"             'ignition run --help')\n"
	"  snapshot   list, inspect, flatten and delete snapshots (see 'ignition\n"
	"             snapshot --help')\n"
	"  fuzz       fuzz a program inside a VM from a checkpoint (see 'ignition fuzz\n"
	"             --help')\n"
	"  mcp        serve microVM sandboxes to agents over MCP on stdio (see\n"
	"             'ignition mcp --help')\n"
	"  browser    a disposable web browser in a fresh clone of a warm microVM (see\n"
	"             'ignition browser --help')\n"
	"  help       show this help\n"
	"  version    print the version\n";

/* One clear line on stderr, then exit: the only way start-up errors end the program. */
__attribute__((noreturn, format(printf, 2, 3))) static void die(int status, const char *fmt, ...)
{
	va_list ap;

	console_restore();
	fputs("ignition: error: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(status);
}

static void check_readable(const char *what, const char *path, bool want_write)
{
	struct stat st;

	if (stat(path, &st) < 0)
		die(1, "%s '%s': %s", what, path, strerror(errno));
	if (S_ISDIR(st.st_mode))
		die(1, "%s '%s' is a directory", what, path);
	if (access(path, want_write ? R_OK | W_OK : R_OK) < 0)
		die(1, "%s '%s': %s", what, path, strerror(errno));
}

/* Decide what to boot: explicit paths, or the default guest from guest/out/. */
static void plan_boot(struct cli_opts *o)
{
	struct machine_config *p = &o->m;
	char dir[PATH_MAX - 64], guest_cl[CMDLINE_MAX] = "";
	const struct cli_guest *g = cli_guest(o->guest);

	if (o->kernel) {
		snprintf(p->kernel, sizeof(p->kernel), "%s", o->kernel);
		if (o->initrd)
			snprintf(p->initrd, sizeof(p->initrd), "%s", o->initrd);
	} else {
		char cl[PATH_MAX];

		guest_out_dir(dir, sizeof(dir));
		snprintf(p->kernel, sizeof(p->kernel), "%s/%s", dir, g->kernel);
		if (access(p->kernel, F_OK) < 0)
			die(1,
			    "no kernel given and the %s guest is not built (%s is missing): run "
			    "'make %s' or pass --kernel",
			    g->name, p->kernel, g->make);
		if (g->initrd)
			snprintf(p->initrd, sizeof(p->initrd), "%s/%s", dir, g->initrd);
		if (o->m.nr_disks == 0) {
			snprintf(o->m.disks[0].path, sizeof(o->m.disks[0].path), "%s/%s", dir,
				 g->rootfs);
			o->m.nr_disks = 1;
			o->m.disks[0].read_only = g->read_only;
			if (access(o->m.disks[0].path, F_OK) < 0)
				die(1, "the %s guest is not built (%s is missing): run 'make %s'",
				    g->name, o->m.disks[0].path, g->make);
		}
		snprintf(cl, sizeof(cl), "%s/%s", dir, g->cmdline);
		if (read_text_line(cl, guest_cl, sizeof(guest_cl)) < 0)
			guest_cl[0] = '\0';
	}
	/* --cmdline wins; else the default guest's own complete command line (guest/out/cmdline-*,
	 * which carries what that kernel needs on this host); else a minimal default. */
	if (o->cmdline)
		snprintf(p->cmdline, sizeof(p->cmdline), "%s", o->cmdline);
	else if (guest_cl[0])
		snprintf(p->cmdline, sizeof(p->cmdline), "%s", guest_cl);
	else
		snprintf(p->cmdline, sizeof(p->cmdline), "console=ttyS0 reboot=k%s%s",
			 o->m.nr_disks ? " root=/dev/vda " : "",
			 o->m.nr_disks ? (o->m.disks[0].read_only ? "ro" : "rw") : "");
	if (o->append) {
		size_t used = strlen(p->cmdline);

		if ((size_t)snprintf(p->cmdline + used, sizeof(p->cmdline) - used, " %s",
				     o->append) >= sizeof(p->cmdline) - used)
			die(2, "kernel command line is longer than %d bytes", CMDLINE_MAX - 1);
	}
}

/* Ctrl-A n: toggle the first network device's link (VIRTIO_NET_F_STATUS). */
static void toggle_link(void *opaque)
{
	bool up = !virtio_net_link_up(opaque);

	virtio_net_set_link(opaque, up);
	fprintf(stderr, "\r\nignition: eth0 link %s\r\n", up ? "up" : "down");
}

/* The balloon's console key and lines; the device itself prints nothing. */
static uint32_t pages_mib(uint32_t pages)
{
	return pages >> (20 - VIRTIO_BALLOON_PAGE_SHIFT);
}

static uint32_t bytes_mib(uint64_t bytes)
{
	return (uint32_t)(bytes >> 20);
}

/* One line on stderr in one write(), so it is never interleaved with other output. */
static void put_stderr(const char *line, int n, size_t size)
{
	if (n > 0 && (size_t)n < size && write(STDERR_FILENO, line, (size_t)n) < 0)
		return;
}

/* Ctrl-A b (event-loop thread): toggle the target, ask for fresh statistics, print one line
 * with the statistics we have. */
static void balloon_key(void *opaque)
{
	struct virtio_balloon *b = opaque;
	uint32_t target = virtio_balloon_toggle(b), actual = virtio_balloon_actual(b);
	struct virtio_balloon_stats s;
	char line[256];
	int n, m = 0;

	(void)virtio_balloon_request_stats(b);
	virtio_balloon_get_stats(b, &s, NULL);
	n = snprintf(line, sizeof(line), "\rignition: balloon target %u MiB, actual %u MiB",
		     pages_mib(target), pages_mib(actual));
	if (n > 0 && (size_t)n < sizeof(line) && s.valid &&
	    (s.present & (1u << VIRTIO_BALLOON_S_MEMTOT)))
		m = snprintf(line + n, sizeof(line) - (size_t)n,
			     "; guest free %u MiB, available %u MiB of %u MiB (%llu s ago)",
			     bytes_mib(s.val[VIRTIO_BALLOON_S_MEMFREE]),
			     bytes_mib(s.val[VIRTIO_BALLOON_S_AVAIL]),
			     bytes_mib(s.val[VIRTIO_BALLOON_S_MEMTOT]),
			     (unsigned long long)(s.age_ms / 1000));
	if (n < 0 || m < 0 || (size_t)n + (size_t)m + 3 > sizeof(line))
		return;
	n += m;
	memcpy(line + n, "\r\n", 3);
	put_stderr(line, n + 2, sizeof(line));
}

/* The balloon's event fd (event-loop thread): the guest reached a new target. */
static void balloon_event(void *opaque, uint32_t events)
{
	uint32_t pages;
	char line[128];

	if (!(virtio_balloon_take_events(opaque, &pages) & VIRTIO_BALLOON_EV_REACHED))
		return;
	put_stderr(line,
		   snprintf(line, sizeof(line),
			    "\rignition: balloon reached its target: %u MiB\r\n", pages_mib(pages)),
		   sizeof(line));
}

/* Ctrl-A b and the balloon's lines on the event loop. */
static int balloon_ui_init(struct evloop *ev, struct virtio_balloon *b)
{
	static char help[64];
	int ret;

	snprintf(help, sizeof(help), "toggle the balloon between 0 and %u MiB",
		 pages_mib(virtio_balloon_step(b)));
	ret = console_register_key(console_stdin(), 'b', help, balloon_key, b);
	return ret ? ret : evloop_add(ev, virtio_balloon_event_fd(b), EPOLLIN, balloon_event, b);
}

/* Console keys that act on the whole machine (event-loop thread). */
static struct machine *key_machine;
static const char *key_snapshot_dir;

/* Where a snapshot without an explicit directory goes: --snapshot-dir itself the first time
 * (if it does not exist yet), else a new timestamped directory inside it; without the option,
 * a timestamped directory under ./snapshots/.  0 or -errno. */
static int pick_snapshot_dir(char *dir, size_t size)
{
	struct stat sb;

	if (!key_snapshot_dir) {
		if (mkdir("snapshots", 0700) < 0 && errno != EEXIST)
			return -errno;
		snapshot_default_dir("snapshots", dir, size);
	} else if (stat(key_snapshot_dir, &sb) < 0 && errno == ENOENT) {
		snprintf(dir, size, "%s", key_snapshot_dir);
	} else {
		snapshot_default_dir(key_snapshot_dir, dir, size);
	}
	return 0;
}

/* Take a snapshot into dir (NULL: pick_snapshot_dir) and report it on stderr. */
static int take_snapshot(const char *want, char *dir, size_t dir_size, char *err, size_t n)
{
	struct snapshot_stats st;
	int ret;

	if (want) {
		snprintf(dir, dir_size, "%s", want);
	} else if ((ret = pick_snapshot_dir(dir, dir_size))) {
		snprintf(err, n, "cannot create ./snapshots: %s", strerror(-ret));
		return ret;
	}
	ret = snapshot_create(key_machine, dir, &st, err, n);
	if (ret)
		return ret;
	char kind[64] = "";

	if (st.diff)
		snprintf(kind, sizeof(kind), " (Diff: %llu dirty pages)",
			 (unsigned long long)st.diff_pages);
	fprintf(stderr,
		"\r\nignition: snapshot %s%s written in %llu ms (paused %llu us, state %llu us, "
		"memory %llu of %llu MiB in %llu ms, disks %llu ms)\r\n",
		dir, kind, (unsigned long long)st.total_us / 1000, (unsigned long long)st.pause_us,
		(unsigned long long)st.state_us, (unsigned long long)st.memory_written >> 20,
		(unsigned long long)st.memory_bytes >> 20, (unsigned long long)st.memory_us / 1000,
		(unsigned long long)st.disks_us / 1000);
	return 0;
}

/* Ctrl-A s: a Full snapshot; the guest carries on. */
static void snapshot_key(void *opaque)
{
	char dir[PATH_MAX], err[512];
	(void)opaque;

	if (take_snapshot(NULL, dir, sizeof(dir), err, sizeof(err)))
		fprintf(stderr, "\r\nignition: snapshot failed: %s\r\n", err);
}

/* A guest's request for a snapshot (the boot-timer register, guest/rootfs ign-snapshot):
 * the vCPU thread only wakes the event loop, which takes it like Ctrl-A s. */
static int snapshot_request_fd = -1;

static void snapshot_requested(void *ctx)
{
	uint64_t one = 1;
	(void)ctx;

	if (write(snapshot_request_fd, &one, sizeof(one)) < 0)
		log_warn("cannot pass on the guest's snapshot request: %s", strerror(errno));
}

static void snapshot_request_cb(void *opaque, uint32_t events)
{
	uint64_t n;
	(void)events;

	if (read(snapshot_request_fd, &n, sizeof(n)) == sizeof(n))
		snapshot_key(opaque);
}

/* The window's hotkeys (docs/gui.md), called on the window's thread.  Ctrl+Alt+S is Ctrl-A s
 * taken on the event loop: the thread only wakes the loop the way a guest's request does, so
 * the window keeps drawing while the snapshot is written. */
static void gui_snapshot(void *ctx)
{
	snapshot_requested(ctx);
}

/* Ctrl+Alt+Q or closing the window: Ctrl-A x. */
static void gui_quit(void *ctx)
{
	struct machine *m = ctx;

	power_request(&m->vm.power, VM_STOP_QUIT);
}

/* The control socket's operations (event-loop thread). */
static uint64_t started_ms;

static int ctl_pause(void *ctx, char *err, size_t n)
{
	int ret = vm_pause(&key_machine->vm);
	(void)ctx;

	if (ret == -EALREADY)
		ret = 0;
	if (ret)
		snprintf(err, n, "cannot pause: %s", strerror(-ret));
	return ret;
}

static int ctl_resume(void *ctx, char *err, size_t n)
{
	(void)ctx;
	(void)err;
	(void)n;
	vm_resume(&key_machine->vm);
	return 0;
}

static int ctl_snapshot(void *ctx, const char *want, char *dir, size_t dir_n, char *err, size_t n)
{
	(void)ctx;
	return take_snapshot(want, dir, dir_n, err, n);
}

/* In-place checkpoint and reset (Ctrl-A c / Ctrl-A r, control commands). */
static struct checkpoint ckpt;

static int do_checkpoint(char *err, size_t n)
{
	return checkpoint_take(&ckpt, key_machine, err, n);
}

static int do_reset(struct reset_stats *st, char *err, size_t n)
{
	int ret = checkpoint_reset(&ckpt, key_machine, RESET_NEW_GENERATION, st, err, n);

	if (!ret)
		fprintf(stderr,
			"\r\nignition: Reset-time = %llu us (%llu pages; pause %llu us, memory "
			"%llu "
			"us of which KVM slots %llu us, disks %llu us, state %llu us)\r\n",
			(unsigned long long)st->total_us, (unsigned long long)st->pages,
			(unsigned long long)st->pause_us, (unsigned long long)st->memory_us,
			(unsigned long long)key_machine->vm.remap_us,
			(unsigned long long)st->disks_us, (unsigned long long)st->state_us);
	return ret;
}

static int ctl_checkpoint(void *ctx, char *err, size_t n)
{
	(void)ctx;
	return do_checkpoint(err, n);
}

static int ctl_reset(void *ctx, uint64_t *us, uint64_t *pages, char *err, size_t n)
{
	struct reset_stats st;
	int ret = do_reset(&st, err, n);

	(void)ctx;
	*us = st.total_us;
	*pages = st.pages;
	return ret;
}

static void checkpoint_key(void *opaque)
{
	char err[512];
	(void)opaque;

	if (do_checkpoint(err, sizeof(err)))
		fprintf(stderr, "\r\nignition: checkpoint failed: %s\r\n", err);
	else
		fputs("\r\nignition: checkpoint marked (Ctrl-A r rolls back to it)\r\n", stderr);
}

static void reset_key(void *opaque)
{
	struct reset_stats st;
	char err[512];
	(void)opaque;

	if (do_reset(&st, err, sizeof(err)))
		fprintf(stderr, "\r\nignition: reset failed: %s\r\n", err);
}

static int ctl_status(void *ctx, struct control_status *st, char *err, size_t n)
{
	(void)ctx;
	(void)err;
	(void)n;
	st->state = vm_paused(&key_machine->vm) ? CONTROL_VM_PAUSED : CONTROL_VM_RUNNING;
	st->vcpus = key_machine->cfg.smp;
	st->mem_mib = key_machine->cfg.mem_mib;
	st->uptime_ms = log_uptime_ms() - started_ms;
	st->net_ready = key_machine->boot_timer ? boot_timer_net_ready(key_machine->boot_timer) : 0;
	return 0;
}

/* KVM's counters of the VM and of each vCPU (event-loop thread: the statistics files are read
 * with pread, which its seccomp filter allows). */
static int ctl_kvm_stats(void *ctx, json_t *ans, char *err, size_t n)
{
	struct vm *vm = &key_machine->vm;
	json_t *o = json_object(), *arr = json_array();
	int ret = o && arr ? 0 : -ENOMEM;

	(void)ctx;
	if (!ret && vm->stats_fd < 0)
		ret = -EOPNOTSUPP;
	if (!ret)
		ret = kvm_stats_read(vm->stats_fd, o);
	for (unsigned i = 0; !ret && i < vm->cfg.nr_vcpus; i++) {
		json_t *c = json_object();

		ret = !c || json_array_append_new(arr, c) ? -ENOMEM : 0;
		if (!ret && vm->vcpus[i] && vm->vcpus[i]->stats_fd >= 0)
			ret = kvm_stats_read(vm->vcpus[i]->stats_fd, c);
	}
	if (!ret)
		ret = json_object_set(ans, "vm", o) || json_object_set(ans, "vcpus", arr) ? -ENOMEM
											  : 0;
	json_decref(o);
	json_decref(arr);
	if (ret)
		snprintf(err, n, "%s",
			 ret == -EOPNOTSUPP
				 ? "this host's KVM has no binary statistics (Linux 5.14+)"
				 : strerror(-ret));
	return ret;
}

/* The display commands of the control socket (event-loop thread; docs/gui.md): through the
 * same struct ui_input the front ends use, whose functions are thread-safe. */
static struct ui_input ui_in; /* outlives the front ends' threads */

static int no_display(char *err, size_t n)
{
	if (key_machine->display)
		return 0;
	snprintf(err, n, "this VM has no display (start it with --gui, --vnc or --gpu)");
	return -ENODEV;
}

static int no_mode(char *err, size_t n)
{
	snprintf(err, n, "the guest has not set a display mode yet");
	return -EAGAIN;
}

static int ctl_screenshot(void *ctx, const char *path, uint32_t *w, uint32_t *h, char *err,
			  size_t n)
{
	int ret = no_display(err, n);

	(void)ctx;
	if (ret)
		return ret;
	ret = ui_screenshot_png(key_machine->display, path, w, h);
	if (ret == -EAGAIN)
		return no_mode(err, n);
	if (ret)
		snprintf(err, n, "'%.160s': %s", path, strerror(-ret));
	else
		log_info("screenshot %s (%ux%u)", path, *w, *h);
	return ret;
}

static int ctl_display(void *ctx, struct control_display *d, char *err, size_t n)
{
	int ret = no_display(err, n);

	(void)ctx;
	if (ret)
		return ret;
	d->active = display_mode(key_machine->display, &d->width, &d->height);
	d->serial = display_serial(key_machine->display);
	return 0;
}

static int ctl_type(void *ctx, const char *text, char *err, size_t n)
{
	int ret = no_display(err, n);

	(void)ctx;
	return ret ? ret : ui_type(&ui_in, text, err, n);
}

static int ctl_key(void *ctx, const char *keys, char *err, size_t n)
{
	int ret = no_display(err, n);

	(void)ctx;
	return ret ? ret : ui_keys(&ui_in, keys, err, n);
}

static int ctl_pointer(void *ctx, uint32_t x, uint32_t y, uint32_t buttons, char *err, size_t n)
{
	uint32_t w, h;
	int ret = no_display(err, n);

	(void)ctx;
	if (ret)
		return ret;
	/* Positions are pixels of the current mode: without one there is nowhere to point,
	 * and a point outside it is a caller's mistake worth saying (ui_pointer would clamp). */
	if (!display_mode(key_machine->display, &w, &h))
		return no_mode(err, n);
	if (x >= w || y >= h) {
		snprintf(err, n, "(%u, %u) is outside the %ux%u screen", x, y, w, h);
		return -ERANGE;
	}
	return ui_pointer(&ui_in, x, y, buttons);
}

static int ctl_resize(void *ctx, uint32_t w, uint32_t h, char *err, size_t n)
{
	int ret = no_display(err, n);

	(void)ctx;
	if (ret)
		return ret;
	ret = display_request_size(key_machine->display, w, h);
	if (ret == -ENOTSUP)
		snprintf(err, n, "the display takes no resize requests");
	return ret;
}

/* Ctrl-A p: pause or resume every vCPU. */
static void pause_key(void *opaque)
{
	int ret;
	(void)opaque;

	if (vm_paused(&key_machine->vm)) {
		vm_resume(&key_machine->vm);
		fputs("\r\nignition: resumed\r\n", stderr);
		return;
	}
	ret = vm_pause(&key_machine->vm);
	if (ret)
		fprintf(stderr, "\r\nignition: cannot pause: %s\r\n", strerror(-ret));
	else
		fputs("\r\nignition: paused (Ctrl-A p resumes)\r\n", stderr);
}

/* --chroot, --uid/--gid and the mount/net namespaces, once everything is open. */
static void enter_jail(const struct cli_opts *o)
{
	struct jail_config j = {
		.root = o->chroot_dir,
		.ns = ((o->new_ns & CLI_NS_MOUNT) ? JAIL_NS_MOUNT : 0) |
		      ((o->new_ns & CLI_NS_NET) ? JAIL_NS_NET : 0),
		.has_uid = o->has_uid,
		.has_gid = o->has_gid,
		.uid = o->uid,
		.gid = o->gid,
	};
	char err[256];

	if (jail_enter(&j, err, sizeof(err)))
		die(1, "%s", err);
}

/* --mmds FILE[,v1|v2][,addr=IP]: the metadata store with FILE's JSON, served on eth0.  NULL
 * without --mmds; exits on errors (start-up). */
static struct mmds *setup_mmds(const struct cli_opts *o)
{
	struct mmds_config c = { .version = o->mmds_version,
				 .ipv4 = o->mmds_ipv4,
				 .ifaces = o->mmds_ifaces };
	struct mmds *m;
	char *buf, err[256];
	size_t len = 0;
	FILE *f;
	int ret;

	if (!o->mmds_file[0])
		return NULL;
	f = fopen(o->mmds_file, "r");
	if (!f)
		die(1, "--mmds '%s': %s", o->mmds_file, strerror(errno));
	/* Room for more than the store takes, so an oversized file gets the store's message. */
	buf = malloc(4 * MMDS_DATA_MAX + 1);
	if (!buf)
		die(1, "--mmds: out of memory");
	len = fread(buf, 1, 4 * MMDS_DATA_MAX + 1, f);
	fclose(f);
	if (len > 4 * MMDS_DATA_MAX)
		die(1, "--mmds '%s': larger than %d bytes", o->mmds_file, 4 * MMDS_DATA_MAX);
	ret = mmds_create(&m);
	if (ret)
		die(1, "--mmds: %s", strerror(-ret));
	if (mmds_put(m, buf, len, err, sizeof(err)) || mmds_set_config(m, &c, err, sizeof(err)))
		die(1, "--mmds '%s': %s", o->mmds_file, err);
	free(buf);
	/* The jail entered later: slirp connects to the MMDS socket from inside it. */
	if (o->chroot_dir || o->has_uid || o->has_gid) {
		struct mmds_jail j = { .uid = o->has_uid ? o->uid : (uint32_t)-1,
				       .gid = o->has_gid ? o->gid : (uint32_t)-1 };

		if (o->chroot_dir &&
		    snprintf(j.root, sizeof(j.root), "%s", o->chroot_dir) >= (int)sizeof(j.root))
			die(1, "--mmds with --chroot: the directory name '%s' is too long",
			    o->chroot_dir);
		mmds_set_jail(m, &j);
	}
	return m;
}

static int cmd_run(int argc, char **argv)
{
	static struct cli_opts o;
	static struct machine m;
	struct machine_env env = { .console_fd = STDOUT_FILENO, .mem_fd = -1 };
	struct vm *vmp = &m.vm;
	char err[512];
	const char *why = NULL;
	int ret;

	if (cli_parse(argc, argv, &o, err, sizeof(err)))
		die(2, "%s", err);
	if (o.help) {
		fputs(cli_usage, stdout);
		return 0;
	}
	if (o.no_seccomp)
		fputs("ignition: warning: --no-seccomp: the VMM runs without system call filters\n",
		      stderr);
	if (o.new_ns & CLI_NS_PID) {
		pid_t child;

		/* Before anything is opened: the child, PID 1 of the new namespace, does it all. */
		ret = jail_pid_ns_fork(&child);
		if (ret)
			die(1, "--new-ns pid: %s", strerror(-ret));
		if (child)
			return jail_wait_child(child);
	}
	/* --log-path, --level, --metrics-path (docs/metrics.md): before anything logs or counts. */
	if (o.log_path && log_open(o.log_path, err, sizeof(err)))
		die(1, "--log-path: %s", err);
	if (o.has_level)
		log_set_level(o.level);
	if (o.metrics_path && metrics_open(o.metrics_path, err, sizeof(err)))
		die(1, "--metrics-path: %s", err);
	if (o.vnc_password_file[0] &&
	    read_text_line(o.vnc_password_file, o.ui.vnc_password, sizeof(o.ui.vnc_password)) < 0)
		die(1, "--vnc: cannot read the password file '%s': %s", o.vnc_password_file,
		    strerror(errno));
	env.chroot_dir = o.chroot_dir;
	env.track_dirty = o.track_dirty;
	env.mmds = setup_mmds(&o);
	if (o.restore_dir) {
		struct snapshot_overrides ov = { .nr_nets = o.m.nr_nets,
						 .nets = o.m.nets,
						 .checkpoint = &ckpt };
		uint64_t t0 = log_uptime_ms();

		for (int i = 0; i < o.m.nr_disks; i++) {
			check_readable("disk", o.m.disks[i].path, true);
			ov.disks[i] = o.m.disks[i].path;
		}
		if (o.m.vsock_path[0]) {
			ov.vsock_path = o.m.vsock_path;
			ov.vsock_cid = o.m.vsock_cid;
		}
		if (snapshot_restore(&m, o.restore_dir, &ov, &env, err, sizeof(err)))
			die(1, "%s", err);
		log_info("restored %s in %llu ms", o.restore_dir,
			 (unsigned long long)(log_uptime_ms() - t0));
		if (o.ui.mode != UI_NONE && !m.cfg.gpu)
			die(1,
			    "--gui/--vnc: the snapshot in %s has no display (it was taken "
			    "without --gui, --vnc or --gpu)",
			    o.restore_dir);
	} else {
		plan_boot(&o);
		check_readable("kernel", o.m.kernel, false);
		ret = boot_probe_kernel(o.m.kernel, &why);
		if (ret)
			die(1, "kernel '%s': %s", o.m.kernel, why ? why : strerror(-ret));
		if (o.m.initrd[0])
			check_readable("initrd", o.m.initrd, false);
		for (int i = 0; i < o.m.nr_disks; i++)
			check_readable("disk", o.m.disks[i].path, !o.m.disks[i].read_only);
		/* Debug mode of the fuzz device (docs/fuzzing.md): inputs from files, no fuzzer. */
		o.m.fuzz = getenv("IGNITION_FUZZ_DEBUG") != NULL;
		if (machine_create(&m, &o.m, &env, err, sizeof(err)))
			die(1, "%s", err);
		if (m.fuzz && (ret = fuzzdev_debug_attach(m.fuzz, getenv("IGNITION_FUZZ_DEBUG"),
							  &vmp->power)))
			die(1, "IGNITION_FUZZ_DEBUG: %s", strerror(-ret));
	}
	/* Before the console: it then leaves these signals to the VM. */
	ret = vm_catch_stop_signals(vmp, console_restore);
	if (ret)
		die(1, "cannot set up the stop signals: %s", strerror(-ret));
	if (!o.restore_dir && machine_boot(&m, err, sizeof(err)))
		die(1, "%s", err);
	struct run_opts ro = { .restored = o.restore_dir != NULL,
			       .track_dirty = o.track_dirty,
			       .no_seccomp = o.no_seccomp,
			       .control_path = o.control_path,
			       .snapshot_dir = o.snapshot_dir,
			       .jail = &o,
			       .ui = &o.ui };

	ret = run_machine(&m, &ro);
	mmds_destroy(env.mmds); /* after the machine: its slirp back end served it */
	return ret;
}

int run_machine(struct machine *mp, const struct run_opts *ro)
{
	struct ui *ui = NULL;
	struct control *control = NULL;
	struct console_port port;
	struct vm *vmp = &mp->vm;
	enum vm_stop_reason reason;
	char err[512];
	int ret;

	machine_console_port(mp, &port);
	ret = console_init(&vmp->ev, &port, &vmp->power);
	if (ret)
		die(1, "cannot set up the console: %s", strerror(-ret));
	if (mp->nets[0] && (ret = console_register_key(console_stdin(), 'n',
						       "toggle the first network device's link",
						       toggle_link, mp->nets[0])))
		die(1, "cannot register the network console key: %s", strerror(-ret));
	if (mp->balloon && (ret = balloon_ui_init(&vmp->ev, mp->balloon)))
		die(1, "cannot register the balloon's console key: %s", strerror(-ret));
	key_machine = mp;
	key_snapshot_dir = ro->snapshot_dir;
	ui_in = (struct ui_input){ .kbd = mp->kbd, .tablet = mp->tablet, .display = mp->display };
	started_ms = log_uptime_ms();
	snapshot_request_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	ret = snapshot_request_fd < 0 ? -errno
				      : evloop_add(&vmp->ev, snapshot_request_fd, EPOLLIN,
						   snapshot_request_cb, NULL);
	if (ret)
		die(1, "cannot set up guest snapshot requests: %s", strerror(-ret));
	boot_timer_on_snapshot_request(mp->boot_timer, snapshot_requested, NULL);
	if (metrics_is_open() && (ret = metrics_start_timer(&vmp->ev, 0)))
		die(1, "cannot start the metrics timer: %s", strerror(-ret));
	if (ro->control_path) {
		static const struct control_ops ops = { .pause = ctl_pause,
							.resume = ctl_resume,
							.snapshot = ctl_snapshot,
							.status = ctl_status,
							.checkpoint = ctl_checkpoint,
							.reset = ctl_reset,
							.kvm_stats = ctl_kvm_stats,
							.screenshot = ctl_screenshot,
							.display = ctl_display,
							.type = ctl_type,
							.key = ctl_key,
							.pointer = ctl_pointer,
							.resize = ctl_resize };

		ret = control_create(&vmp->ev, ro->control_path, &ops, &control);
		if (ret)
			die(1, "--control '%s': %s", ro->control_path,
			    ret == -EADDRINUSE ? "another process is listening there"
					       : strerror(-ret));
	}
	if ((ret = console_register_key(console_stdin(), 's', "snapshot the VM (it carries on)",
					snapshot_key, NULL)) ||
	    (ret = console_register_key(console_stdin(), 'p', "pause or resume the vCPUs",
					pause_key, NULL)))
		die(1, "cannot register the snapshot console keys: %s", strerror(-ret));
	if (ro->track_dirty &&
	    ((ret = console_register_key(console_stdin(), 'c', "mark an in-place checkpoint",
					 checkpoint_key, NULL)) ||
	     (ret = console_register_key(console_stdin(), 'r', "roll the VM back to the checkpoint",
					 reset_key, NULL))))
		die(1, "cannot register the reset console keys: %s", strerror(-ret));
	/* After a restore, the restored snapshot is the checkpoint (its memory is mapped). */
	if (ro->track_dirty && ro->restored && do_checkpoint(err, sizeof(err)))
		die(1, "cannot make the restored snapshot the checkpoint: %s", err);

	/* The GUI module is a file to open: before the jail closes the file system off. */
	if (mp->display && ui_load(err, sizeof(err)))
		die(1, "GUI: %s", err);
	if (ro->jail)
		enter_jail(ro->jail);
	if (!ro->no_seccomp) {
		struct seccomp_config sc = { .on_fatal = console_restore };

		/* libslirp: user networking, and MMDS on TAP interfaces (a private slirp). */
		sc.slirp = mp->tap_mmds;
		for (int i = 0; i < mp->cfg.nr_nets; i++)
			sc.slirp |= mp->cfg.nets[i].kind == MACHINE_NET_USER;
		ret = seccomp_filters_build(&sc);
		if (ret)
			die(1, "cannot build the seccomp filters: %s", strerror(-ret));
		log_info("seccomp: allowlists vcpu %zu, evloop %zu, main %zu rules",
			 seccomp_allowlist_size(SECCOMP_THREAD_VCPU),
			 seccomp_allowlist_size(SECCOMP_THREAD_EVLOOP),
			 seccomp_allowlist_size(SECCOMP_THREAD_MAIN));
	}
	if (mp->display) {
		struct ui_opts uo = ro->ui ? *ro->ui : (struct ui_opts){ .mode = UI_HEADLESS };

		if (uo.mode == UI_NONE)
			uo.mode = UI_HEADLESS;
		uo.quit = gui_quit;
		uo.snapshot = gui_snapshot;
		uo.ctx = mp;
		ret = ui_start(&uo, mp->display, &ui_in, &ui, err, sizeof(err));
		if (ret)
			die(1, "GUI: %s", err);
	}
	if (ro->ready)
		ro->ready(ro->ctx);
	reason = vm_run(vmp);
	ui_stop(ui);
	console_restore();
	switch (reason) {
	case VM_STOP_POWEROFF:
		log_info("guest powered off");
		break;
	case VM_STOP_REBOOT:
		log_info("guest rebooted");
		break;
	case VM_STOP_QUIT:
		log_info("quit from the console");
		break;
	case VM_STOP_SIGNAL:
		log_info("stopped by signal %d", vmp->stop_signal);
		break;
	default:
		break;
	}
	if (ro->stopping)
		ro->stopping(ro->ctx);
	metrics_close(); /* the last line, while the event loop still exists */
	if (control)
		control_destroy(control);
	if (mp->balloon)
		evloop_del(&vmp->ev, virtio_balloon_event_fd(mp->balloon));
	checkpoint_free(&ckpt);
	machine_destroy(mp);
	seccomp_filters_free();
	if (reason == VM_STOP_ERROR) {
		fputs("ignition: the VM stopped on an error (see above)\n", stderr);
		return 1;
	}
	return 0;
}

/* The checkpoint a restore with dirty tracking starts from (snapshot_overrides.checkpoint). */
struct checkpoint *run_checkpoint(void)
{
	return &ckpt;
}

int main(int argc, char **argv)
{
	log_set_level(LOG_WARN);
	/* Firecracker's command line: installed as `firecracker`, or its flags (docs/api.md). */
	if (!strcmp(basename(argv[0]), "firecracker") ||
	    (argc >= 2 && !strncmp(argv[1], "--", 2) && strcmp(argv[1], "--help") &&
	     strcmp(argv[1], "--version")))
		return fc_main(argc, argv);
	if (argc < 2) {
		fputs(top_usage, stderr);
		return 2;
	}
	if (!strcmp(argv[1], "run"))
		return cmd_run(argc - 1, argv + 1);
	if (!strcmp(argv[1], "snapshot"))
		return snapshot_store_main(argc - 1, argv + 1);
	if (!strcmp(argv[1], "fuzz"))
		return fuzz_main(argc - 1, argv + 1);
	if (!strcmp(argv[1], "mcp"))
		return mcp_main(argc - 1, argv + 1);
	if (!strcmp(argv[1], "browser"))
		return browser_main(argc - 1, argv + 1);
	if (!strcmp(argv[1], "help") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		fputs(top_usage, stdout);
		return 0;
	}
	if (!strcmp(argv[1], "version") || !strcmp(argv[1], "--version")) {
		puts("ignition 0.1");
		return 0;
	}
	fprintf(stderr, "ignition: error: unknown command '%s' (try 'ignition help')\n", argv[1]);
	return 2;
}
