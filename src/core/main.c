/* ignition: command line entry point.  Parses options, builds the VM through the
 * DeviceManager, loads the kernel, runs until the guest or the user stops it. */
#include "arch/x86/boot.h"
#include "arch/x86/layout.h"
#include "arch/x86/mptable.h"
#include "core/cli.h"
#include "core/console.h"
#include "core/jail.h"
#include "core/seccomp.h"
#include "core/vm.h"
#include "devices/boot_timer.h"
#include "devices/power.h"
#include "devices/rtc.h"
#include "devices/serial.h"
#include "devices/virtio/balloon.h"
#include "devices/virtio/blk.h"
#include "devices/virtio/mmio.h"
#include "devices/virtio/net.h"
#include "devices/virtio/rng.h"
#include "devices/virtio/vsock/vsock.h"
#include "net/slirp.h"
#include "net/tap.h"
#include "platform/acpi/acpi.h"
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
#include <unistd.h>

#define CMDLINE_MAX 4096

static const char top_usage[] = "Usage: ignition COMMAND [OPTIONS]\n"
				"A microVM monitor for Linux/KVM.\n"
				"\n"
				"Commands:\n"
				"  run        boot a guest (see 'ignition run --help')\n"
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

/* guest/out/ of this build: $IGNITION_GUEST_DIR, else <binary dir>/../guest/out. */
static void guest_dir(char *buf, size_t size)
{
	const char *env = getenv("IGNITION_GUEST_DIR");
	char exe[PATH_MAX];
	ssize_t n;

	if (env && *env) {
		snprintf(buf, size, "%s", env);
		return;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0) {
		snprintf(buf, size, "guest/out");
		return;
	}
	exe[n] = '\0';
	snprintf(buf, size, "%s/../guest/out", dirname(exe));
}

/* Read a small text file (a guest's command line), trimming the trailing newline. */
static int read_text(const char *path, char *buf, size_t size)
{
	FILE *f = fopen(path, "r");
	size_t n;

	if (!f)
		return -errno;
	n = fread(buf, 1, size - 1, f);
	fclose(f);
	buf[n] = '\0';
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	for (size_t i = 0; i < n; i++)
		if (buf[i] == '\n')
			buf[i] = ' ';
	return 0;
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

struct boot_plan {
	char kernel[PATH_MAX];
	char initrd[PATH_MAX];
	char cmdline[CMDLINE_MAX];
};

/* Decide what to boot: explicit paths, or the default guest from guest/out/. */
static void plan_boot(struct cli_opts *o, struct boot_plan *p)
{
	char dir[PATH_MAX - 64], guest_cl[CMDLINE_MAX] = "";
	bool stock = !strcmp(o->guest, "stock");

	memset(p, 0, sizeof(*p));
	if (o->kernel) {
		snprintf(p->kernel, sizeof(p->kernel), "%s", o->kernel);
		if (o->initrd)
			snprintf(p->initrd, sizeof(p->initrd), "%s", o->initrd);
	} else {
		char cl[PATH_MAX];

		guest_dir(dir, sizeof(dir));
		snprintf(p->kernel, sizeof(p->kernel), "%s/%s", dir,
			 stock ? "vmlinuz-stock" : "vmlinux-min");
		if (access(p->kernel, F_OK) < 0)
			die(1,
			    "no kernel given and the default guest is not built (%s is missing):"
			    " run 'make guest' or pass --kernel",
			    p->kernel);
		if (stock)
			snprintf(p->initrd, sizeof(p->initrd), "%s/initrd-stock.img", dir);
		if (o->nr_disks == 0) {
			snprintf(o->disks[0].path, sizeof(o->disks[0].path), "%s/rootfs.ext4", dir);
			o->nr_disks = 1;
		}
		snprintf(cl, sizeof(cl), "%s/cmdline-%s", dir, stock ? "stock" : "min");
		if (read_text(cl, guest_cl, sizeof(guest_cl)) < 0)
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
			 o->nr_disks ? " root=/dev/vda " : "",
			 o->nr_disks ? (o->disks[0].read_only ? "ro" : "rw") : "");
	if (o->append) {
		size_t used = strlen(p->cmdline);

		if ((size_t)snprintf(p->cmdline + used, sizeof(p->cmdline) - used, " %s",
				     o->append) >= sizeof(p->cmdline) - used)
			die(2, "kernel command line is longer than %d bytes", CMDLINE_MAX - 1);
	}
}

/* The balloon, if any: its console key is registered once the console exists. */
static struct virtio_balloon *balloon;

/* Network back ends, opened before anything else so that a missing privilege (TAP) or a
 * taken port (hostfwd) is one line before any VM exists. */
static struct net_backend *net_backends[CLI_MAX_NETS];
/* The first network device: Ctrl-A n toggles its link (VIRTIO_NET_F_STATUS). */
static struct virtio_net *net0;

static void toggle_link(void *opaque)
{
	bool up = !virtio_net_link_up(opaque);

	virtio_net_set_link(opaque, up);
	fprintf(stderr, "\r\nignition: eth0 link %s\r\n", up ? "up" : "down");
}

static void open_net_backends(const struct cli_opts *o)
{
	char err[256];

	for (int i = 0; i < o->nr_nets; i++) {
		const struct cli_net *n = &o->nets[i];
		int ret = n->kind == CLI_NET_TAP
				  ? net_tap_create(n->tap, &net_backends[i], err, sizeof(err))
				  : net_slirp_create(n->fwd, n->nr_fwd, n->slirp_flags,
						     &net_backends[i], err, sizeof(err));

		if (ret)
			die(1, "%s", err);
	}
}

/* The vsock device.  With --chroot, PATH names a path inside the new root: the socket is
 * bound there (relative to DIR, from inside DIR) and keeps a path relative to the working
 * directory, which is the new root once the jail is entered, for PATH_port connects and the
 * removal at exit. */
static void add_vsock(struct devmgr *dm, const struct cli_opts *o)
{
	const char *path = o->vsock_path;
	int cwd = -1, ret;

	if (o->chroot_dir) {
		while (*path == '/')
			path++;
		cwd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (!*path)
			die(2, "--vsock: '%s' names the new root itself", o->vsock_path);
		if (cwd < 0 || chdir(o->chroot_dir) < 0)
			die(1, "--chroot '%s': %s", o->chroot_dir, strerror(errno));
	}
	ret = virtio_vsock_add(dm, o->vsock_cid, path, NULL);
	if (cwd >= 0 && fchdir(cwd) < 0)
		die(1, "cannot return to the working directory: %s", strerror(errno));
	if (cwd >= 0)
		close(cwd);
	if (ret)
		die(1, "--vsock '%s'%s: %s", o->vsock_path,
		    o->chroot_dir ? " (inside --chroot)" : "", strerror(-ret));
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

/* Every device, in one place; the order fixes MMIO slots and GSIs (boot-timer first). */
static void add_devices(struct vm *vm, const struct cli_opts *o, struct serial **uart)
{
	struct devmgr *dm = &vm->dm;
	int ret;

	ret = boot_timer_add(dm, NULL);
	if (ret)
		die(1, "boot-timer: %s", strerror(-ret));
	ret = serial_add(dm, "serial0", LAYOUT_PORT_COM1, LAYOUT_GSI_COM1, STDOUT_FILENO, uart);
	if (ret)
		die(1, "serial port: %s", strerror(-ret));
	ret = rtc_add(dm, NULL);
	if (ret)
		die(1, "RTC: %s", strerror(-ret));
	ret = power_add(dm, &vm->power);
	if (ret)
		die(1, "power device: %s", strerror(-ret));
	for (int i = 0; i < o->nr_disks; i++) {
		struct virtio_blk *blk;
		char id[32];

		snprintf(id, sizeof(id), "virtio-blk%d", i);
		ret = virtio_blk_add(dm, id, o->disks[i].path, o->disks[i].read_only, &blk);
		if (ret == -EBUSY)
			die(1, "disk '%s' is in use by another process (locked %s)",
			    o->disks[i].path,
			    virtio_blk_locked_rw(o->disks[i].path) ? "read-write" : "read-only");
		if (ret)
			die(1, "disk '%s': %s", o->disks[i].path, strerror(-ret));
	}
	for (int i = 0; i < o->nr_nets; i++) {
		uint8_t mac[6];
		char id[32];

		snprintf(id, sizeof(id), "virtio-net%d", i);
		if (o->nets[i].has_mac)
			memcpy(mac, o->nets[i].mac, sizeof(mac));
		else
			virtio_net_random_mac(mac);
		ret = virtio_net_add(dm, id, net_backends[i], mac, i ? NULL : &net0);
		net_backends[i] = NULL; /* the device owns it now, even on failure */
		if (ret)
			die(1, "--net: cannot add the device: %s", strerror(-ret));
	}
	if (!o->no_rng && (ret = virtio_rng_add(dm, NULL)))
		die(1, "virtio-rng: %s", strerror(-ret));
	if (o->vsock_path)
		add_vsock(dm, o);
	if (o->balloon) {
		struct virtio_balloon_opts bo = { .step_mib = o->balloon_step_mib,
						  .stats_s = o->balloon_stats_s };

		ret = virtio_balloon_add(dm, &bo, &balloon);
		if (ret)
			die(1, "virtio-balloon: %s", strerror(-ret));
	}
}

static void load_guest(struct vm *vm, const struct cli_opts *o, struct boot_plan *p,
		       struct boot_info *bi)
{
	uint64_t rsdp = 0;
	const char *why;
	uint8_t *mp;
	size_t used;
	int ret;

	ret = boot_load_kernel(&vm->gm, p->kernel, bi, &why);
	if (ret)
		die(1, "kernel '%s': %s", p->kernel, why ? why : strerror(-ret));
	if (p->initrd[0]) {
		ret = boot_load_initrd(&vm->gm, p->initrd, bi);
		if (ret == -ENOMEM)
			die(1, "initrd '%s' does not fit in guest RAM (raise --mem)", p->initrd);
		if (ret)
			die(1, "initrd '%s': %s", p->initrd,
			    ret == -ENODATA ? "file is empty" : strerror(-ret));
	}
	/* MP tables are written either way: they are how a kernel without ACPI (or booted with
	 * acpi=off) finds the vCPUs and the IOAPIC; a kernel that reads the MADT ignores them. */
	mp = gmem_ptr(&vm->gm, LAYOUT_MPTABLE_ADDR, LAYOUT_MPTABLE_SIZE);
	ret = mp ? mptable_build(mp, LAYOUT_MPTABLE_SIZE, LAYOUT_MPTABLE_ADDR, vm->cfg.nr_vcpus,
				 devmgr_level_gsis(&vm->dm), &used)
		 : -EFAULT;
	if (ret)
		die(1, "cannot build the MP tables: %s", strerror(-ret));
	if (o->no_acpi) {
		struct dm_describe ctx = { .cmdline = p->cmdline,
					   .cmdline_size = sizeof(p->cmdline) };

		if (devmgr_describe(&vm->dm, &ctx))
			die(1, "kernel command line is too long for the device list");
	} else {
		struct acpi_config cfg = {
			.nr_cpus = vm->cfg.nr_vcpus,
			.buf = gmem_ptr(&vm->gm, LAYOUT_ACPI_START,
					LAYOUT_ACPI_END - LAYOUT_ACPI_START),
			.buf_size = LAYOUT_ACPI_END - LAYOUT_ACPI_START,
			.buf_gpa = LAYOUT_ACPI_START,
		};
		ret = acpi_build(&cfg, &vm->dm, &rsdp, &used);
		if (ret)
			die(1, "cannot build the ACPI tables: %s", strerror(-ret));
		log_info("ACPI tables: %zu bytes, RSDP at %#llx", used, (unsigned long long)rsdp);
	}
	ret = boot_setup_zero_page(&vm->gm, bi, p->cmdline, rsdp);
	if (ret == -E2BIG)
		die(1, "kernel command line is longer than this kernel accepts");
	if (ret)
		die(1, "cannot write the zero page: %s", strerror(-ret));
	ret = boot_setup_page_tables(&vm->gm);
	if (ret)
		die(1, "cannot write the boot page tables: %s", strerror(-ret));
	log_info("kernel %s (%s), entry %#llx, cmdline: %s", p->kernel,
		 bi->is_elf ? "ELF" : "bzImage", (unsigned long long)bi->entry, p->cmdline);
}

static int cmd_run(int argc, char **argv)
{
	static struct cli_opts o;
	static struct boot_plan plan;
	static struct boot_info bi;
	static struct vm vm;
	struct vm_config cfg;
	struct serial *uart = NULL;
	enum vm_stop_reason reason;
	char err[256];
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
	open_net_backends(&o);
	plan_boot(&o, &plan);
	check_readable("kernel", plan.kernel, false);
	ret = boot_probe_kernel(plan.kernel, &why);
	if (ret)
		die(1, "kernel '%s': %s", plan.kernel, why ? why : strerror(-ret));
	if (plan.initrd[0])
		check_readable("initrd", plan.initrd, false);
	for (int i = 0; i < o.nr_disks; i++)
		check_readable("disk", o.disks[i].path, !o.disks[i].read_only);

	cfg = (struct vm_config){ .mem_bytes = o.mem_mib << 20,
				  .nr_vcpus = o.smp,
				  .cpu_template = o.cpu_template };
	if (cfg.cpu_template == CPU_TEMPLATE_AUTO)
		cfg.cpu_template = cpuid_detect_template("/sys");
	log_info("CPU template: %s", cpuid_template_name(cfg.cpu_template));

	ret = vm_create(&vm, &cfg, &why);
	if (ret) {
		if (ret == -ENOENT || ret == -EACCES || ret == -EPERM)
			die(1, "%s: %s (is KVM available, and may this user open /dev/kvm?)", why,
			    strerror(-ret));
		die(1, "%s: %s", why, strerror(-ret));
	}
	/* Before the console: it then leaves these signals to the VM. */
	ret = vm_catch_stop_signals(&vm, console_restore);
	if (ret)
		die(1, "cannot set up the stop signals: %s", strerror(-ret));
	add_devices(&vm, &o, &uart);
	load_guest(&vm, &o, &plan, &bi);
	ret = vm_setup_vcpus(&vm, bi.entry);
	if (ret)
		die(1, "cannot set up the vCPUs: %s", strerror(-ret));
	ret = console_init(&vm.ev, uart, &vm.power);
	if (ret)
		die(1, "cannot set up the console: %s", strerror(-ret));
	if (net0 && (ret = console_register_key(console_stdin(), 'n',
						"toggle the first network device's link",
						toggle_link, net0)))
		die(1, "cannot register the network console key: %s", strerror(-ret));
	if (balloon && (ret = virtio_balloon_register_key(balloon, console_stdin())))
		die(1, "cannot register the balloon's console key: %s", strerror(-ret));

	enter_jail(&o);
	if (!o.no_seccomp) {
		struct seccomp_config sc = { .on_fatal = console_restore };

		for (int i = 0; i < o.nr_nets; i++)
			sc.slirp |= o.nets[i].kind == CLI_NET_USER;
		ret = seccomp_filters_build(&sc);
		if (ret)
			die(1, "cannot build the seccomp filters: %s", strerror(-ret));
		log_info("seccomp: allowlists vcpu %zu, evloop %zu, main %zu rules",
			 seccomp_allowlist_size(SECCOMP_THREAD_VCPU),
			 seccomp_allowlist_size(SECCOMP_THREAD_EVLOOP),
			 seccomp_allowlist_size(SECCOMP_THREAD_MAIN));
	}
	reason = vm_run(&vm);
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
		log_info("stopped by signal %d", vm.stop_signal);
		break;
	default:
		break;
	}
	vm_destroy(&vm);
	seccomp_filters_free();
	if (reason == VM_STOP_ERROR) {
		fputs("ignition: the VM stopped on an error (see above)\n", stderr);
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	log_set_level(LOG_WARN);
	if (argc < 2) {
		fputs(top_usage, stderr);
		return 2;
	}
	if (!strcmp(argv[1], "run"))
		return cmd_run(argc - 1, argv + 1);
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
