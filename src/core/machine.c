/* A machine from its description: back ends, VM, devices in one fixed order, then either the
 * boot path (kernel, tables, vCPUs at the entry) or a restore (src/snapshot/). */
#include "core/machine.h"

#include "arch/x86/boot.h"
#include "arch/x86/layout.h"
#include "arch/x86/mptable.h"
#include "core/console.h"
#include "core/uffd.h"
#include "devices/boot_timer.h"
#include "devices/fuzz.h"
#include "devices/i8042.h"
#include "devices/power.h"
#include "devices/rtc.h"
#include "devices/serial.h"
#include "devices/virtio/balloon.h"
#include "devices/virtio/blk.h"
#include "devices/virtio/net.h"
#include "devices/virtio/rng.h"
#include "devices/virtio/vsock/vsock.h"
#include "devices/virtio/gpu.h"
#include "devices/virtio/input.h"
#include "ui/display.h"
#include "devices/vmgenid.h"
#include "api/mmds.h"
#include "net/slirp.h"
#include "net/backend.h"
#include "net/tap.h"
#include "platform/acpi/acpi.h"
#include "snapshot/snap.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int open_backends(struct machine *m, const struct machine_env *env, char *err,
			 size_t err_size)
{
	struct mmds_config mc = { 0 };

	if (env && env->mmds) {
		mmds_get_config(env->mmds, &mc);
		/* A restore: the snapshot's configuration, unless the store was given one. */
		if (!mc.ifaces && m->cfg.mmds.ifaces) {
			mc = m->cfg.mmds;
			if (mmds_set_config(env->mmds, &mc, err, err_size))
				return -EINVAL;
		}
	}
	/* What is served, and what a snapshot of this machine records. */
	m->cfg.mmds = mc.ifaces ? mc : (struct mmds_config){ 0 };
	/* A restore takes its interfaces from the snapshot, so --mmds eth=N is checked here. */
	if (mc.ifaces >> m->cfg.nr_nets) {
		snprintf(err, err_size, "MMDS: eth%d has no network device (this machine has %d)",
			 31 - __builtin_clz(mc.ifaces), m->cfg.nr_nets);
		return -EINVAL;
	}
	for (int i = 0; i < m->cfg.nr_nets; i++) {
		const struct machine_net *n = &m->cfg.nets[i];
		int ret = n->kind == MACHINE_NET_TAP
				  ? net_tap_create(n->tap, &m->backends[i], err, err_size)
				  : net_slirp_create(n->fwd, n->nr_fwd, n->slirp_flags,
						     &m->backends[i], err, err_size);

		if (ret)
			return ret;
		if (!(mc.ifaces & (1u << i)))
			continue;
		m->tap_mmds |= n->kind == MACHINE_NET_TAP;
		ret = n->kind == MACHINE_NET_TAP
			      ? net_tap_add_mmds(m->backends[i], env->mmds, err, err_size)
			      : net_slirp_add_mmds(m->backends[i], env->mmds, err, err_size);
		if (ret)
			return ret;
	}
	return 0;
}

/* The vsock device.  With a chroot, the path names a path inside the new root: the socket is
 * bound there (relative to the root, from inside it) and keeps a path relative to the working
 * directory, which is the new root once the jail is entered, for PATH_port connects and the
 * removal at exit. */
static int add_vsock(struct machine *m, const struct machine_env *env, char *err, size_t n)
{
	const char *path = m->cfg.vsock_path, *root = env ? env->chroot_dir : NULL;
	int cwd = -1, ret;

	if (root) {
		while (*path == '/')
			path++;
		if (!*path)
			return err_set(-EINVAL, err, n, "--vsock: '%s' names the new root itself",
				       m->cfg.vsock_path);
		cwd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (cwd < 0 || chdir(root) < 0) {
			ret = -errno;
			if (cwd >= 0)
				close(cwd);
			return err_set(ret, err, n, "--chroot '%s': %s", root, strerror(-ret));
		}
	}
	ret = virtio_vsock_add(&m->vm.dm, m->cfg.vsock_cid, path, NULL);
	if (cwd >= 0) {
		if (fchdir(cwd) < 0 && !ret)
			ret = err_set(-errno, err, n, "cannot return to the working directory: %s",
				      strerror(errno));
		close(cwd);
		if (ret && err[0])
			return ret;
	}
	if (ret)
		return err_set(ret, err, n, "--vsock '%s'%s: %s", m->cfg.vsock_path,
			       root ? " (inside --chroot)" : "", strerror(-ret));
	return 0;
}

/* Every device, in one place; the order fixes MMIO slots and GSIs (boot-timer first), so a
 * restore that runs this again gets the windows and lines the snapshot recorded (and
 * devmgr_restore checks that it did). */
static int add_devices(struct machine *m, const struct machine_env *env, char *err, size_t n)
{
	struct devmgr *dm = &m->vm.dm;
	int ret;

	ret = boot_timer_add(dm, &m->boot_timer);
	if (ret)
		return err_set(ret, err, n, "boot-timer: %s", strerror(-ret));
	ret = serial_add(dm, "serial0", LAYOUT_PORT_COM1, LAYOUT_GSI_COM1,
			 env ? env->console_fd : STDOUT_FILENO, &m->uart);
	if (ret)
		return err_set(ret, err, n, "serial port: %s", strerror(-ret));
	ret = rtc_add(dm, NULL);
	if (ret)
		return err_set(ret, err, n, "RTC: %s", strerror(-ret));
	ret = power_add(dm, &m->vm.power);
	if (ret)
		return err_set(ret, err, n, "power device: %s", strerror(-ret));
	ret = i8042_add(dm, &m->vm.power, &m->i8042);
	if (ret)
		return err_set(ret, err, n, "i8042 keyboard controller: %s", strerror(-ret));
	for (int i = 0; i < m->cfg.nr_disks; i++) {
		const struct machine_disk *d = &m->cfg.disks[i];
		const struct machine_disk_fds *f = env && env->disk_fds ? &env->disk_fds[i] : NULL;
		struct stat st, other;
		char id[32];

		snprintf(id, sizeof(id), "virtio-blk%d", i);
		if (f && f->fd >= 0) {
			/* A restore's private disk: files nobody else has. */
			ret = virtio_blk_add_fd(dm, id, f->fd, f->base_fd, d->read_only,
						&m->disks[i]);
			if (ret)
				return err_set(ret, err, n, "disk %d (private copy of '%s'): %s", i,
					       d->path, strerror(-ret));
			ret = virtio_blk_set_ratelimit(m->disks[i], &d->rl);
			if (ret)
				return err_set(ret, err, n, "disk '%s': rate limiter: %s", d->path,
					       strerror(-ret));
			continue;
		}
		/* The same file twice would meet its own lock ("in use by another process"). */
		for (int j = 0; j < i && stat(d->path, &st) == 0; j++)
			if ((!env || !env->disk_fds || env->disk_fds[j].fd < 0) &&
			    stat(m->cfg.disks[j].path, &other) == 0 && st.st_dev == other.st_dev &&
			    st.st_ino == other.st_ino)
				return err_set(-EINVAL, err, n,
					       "disk '%s' is the same file as disk %d ('%s')",
					       d->path, j, m->cfg.disks[j].path);
		ret = virtio_blk_add(dm, id, d->path, d->read_only, &m->disks[i]);
		if (ret == -EBUSY)
			return err_set(ret, err, n,
				       "disk '%s' is in use by another process (locked %s)",
				       d->path,
				       virtio_blk_locked_rw(d->path) ? "read-write" : "read-only");
		if (ret)
			return err_set(ret, err, n, "disk '%s': %s", d->path, strerror(-ret));
		ret = virtio_blk_set_ratelimit(m->disks[i], &d->rl);
		if (ret)
			return err_set(ret, err, n, "disk '%s': rate limiter: %s", d->path,
				       strerror(-ret));
	}
	for (int i = 0; i < m->cfg.nr_nets; i++) {
		uint8_t mac[6];
		char id[32];

		snprintf(id, sizeof(id), "virtio-net%d", i);
		if (m->cfg.nets[i].has_mac)
			memcpy(mac, m->cfg.nets[i].mac, sizeof(mac));
		else
			virtio_net_random_mac(mac);
		ret = virtio_net_add(dm, id, m->backends[i], mac, &m->nets[i]);
		m->backends[i] = NULL; /* the device owns it now, even on failure */
		if (ret)
			return err_set(ret, err, n, "--net: cannot add the device: %s",
				       strerror(-ret));
		ret = virtio_net_set_ratelimit(m->nets[i], &m->cfg.nets[i].rx_rl,
					       &m->cfg.nets[i].tx_rl);
		if (ret)
			return err_set(ret, err, n, "--net: rate limiter: %s", strerror(-ret));
	}
	if (!m->cfg.no_rng) {
		struct virtio_rng *rng;

		ret = virtio_rng_add(dm, &rng);
		if (!ret)
			ret = virtio_rng_set_ratelimit(rng, &m->cfg.rng_rl);
		if (ret)
			return err_set(ret, err, n, "virtio-rng: %s", strerror(-ret));
	}
	if (m->cfg.vsock_path[0] && (ret = add_vsock(m, env, err, n)))
		return ret;
	if (m->cfg.balloon) {
		struct virtio_balloon_opts bo = {
			.step_mib = m->cfg.balloon_step_mib,
			.stats_s = m->cfg.balloon_stats_s,
			.no_deflate_on_oom = !m->cfg.balloon_deflate_on_oom,
		};

		ret = virtio_balloon_add(dm, &bo, &m->balloon);
		if (ret)
			return err_set(ret, err, n, "virtio-balloon: %s", strerror(-ret));
	}
	/* Last, so that the slots before it (and the names and _UIDs they derive) stay as they
	 * were; its GSI is a fixed one. */
	ret = vmgenid_add(dm, &m->vmgenid);
	if (ret)
		return err_set(ret, err, n, "vmgenid: %s", strerror(-ret));
	/* After the VMGenID: machines without a GPU keep the windows and lines they had. */
	if (m->cfg.gpu) {
		ret = display_create(m->cfg.gpu_width, m->cfg.gpu_height, &m->display);
		if (ret)
			return err_set(ret, err, n, "display %ux%u: %s", m->cfg.gpu_width,
				       m->cfg.gpu_height, strerror(-ret));
		ret = virtio_gpu_add(dm, m->display, &m->gpu);
		if (ret)
			return err_set(ret, err, n, "virtio-gpu: %s", strerror(-ret));
		ret = virtio_input_add(dm, "virtio-input0", VIRTIO_INPUT_KEYBOARD, &m->kbd);
		if (!ret)
			ret = virtio_input_add(dm, "virtio-input1", VIRTIO_INPUT_TABLET,
					       &m->tablet);
		if (ret)
			return err_set(ret, err, n, "virtio-input: %s", strerror(-ret));
	}
	/* After every other MMIO slot: a fuzz machine's devices keep the windows they have
	 * without it. */
	if (m->cfg.fuzz && (ret = fuzzdev_add(dm, NULL, &m->fuzz)))
		return err_set(ret, err, n, "fuzz device: %s", strerror(-ret));
	return 0;
}

/* The host's pool of 2 MiB pages cannot hold the guest: say how many it needs and where. */
static void huge_pages_error(uint64_t mem_mib, char *err, size_t n)
{
	long need = (long)(mem_mib / 2), free_pages = gmem_huge_pages_free();
	char now[32] = "?";
	FILE *f = fopen("/proc/sys/vm/nr_hugepages", "re");

	if (f) {
		if (!fgets(now, sizeof(now), f))
			snprintf(now, sizeof(now), "?");
		now[strcspn(now, "\n")] = '\0';
		fclose(f);
	}
	err_set(-ENOMEM, err, n,
		"huge pages: the guest's %llu MiB need %ld free 2 MiB huge pages, the host has "
		"%ld free (/proc/sys/vm/nr_hugepages is %s): raise it, e.g. `echo %ld > "
		"/proc/sys/vm/nr_hugepages` as root",
		(unsigned long long)mem_mib, need, free_pages < 0 ? 0 : free_pages, now,
		need + (long)strtol(now, NULL, 10) - (free_pages < 0 ? 0 : free_pages));
}

int machine_create(struct machine *m, const struct machine_config *cfg,
		   const struct machine_env *env, char *err, size_t err_size)
{
	struct vm_config vc;
	const char *why = NULL;
	int ret;

	memset(m, 0, sizeof(*m));
	m->vm.kvm_fd = m->vm.vm_fd = m->vm.stop_fd = m->vm.sig_fd = -1;
	m->vm.ev.epfd = m->vm.ev.stop_fd = -1;
	for (int i = 0; i < MACHINE_MAX_DISKS; i++)
		m->private_fds[i] = -1;
	/* Snapshot paths are recorded absolute (a Diff names its parent); later threads run
	 * filtered, without getcwd/readlink. */
	if (!getcwd(m->cwd, sizeof(m->cwd)))
		snprintf(m->cwd, sizeof(m->cwd), "/");
	m->cfg = *cfg;
	err[0] = '\0';
	if (cfg->huge_pages && (cfg->mem_mib % 2 || (env && env->mem_fd >= 0))) {
		ret = err_set(-EINVAL, err, err_size,
			      cfg->mem_mib % 2
				      ? "huge pages: the memory size (%llu MiB) must be a "
					"multiple of 2 MiB"
				      : "huge pages: guest memory cannot be a mapping of a "
					"memory file (%llu MiB); load it with a page-fault "
					"handler (Uffd)",
			      (unsigned long long)cfg->mem_mib);
		goto err;
	}
	ret = open_backends(m, env, err, err_size);
	if (ret)
		goto err;
	vc = (struct vm_config){ .mem_bytes = m->cfg.mem_mib << 20,
				 .nr_vcpus = m->cfg.smp,
				 .cpu_template = m->cfg.cpu_template,
				 .mem_fd = env ? env->mem_fd : -1,
				 .mem_flags = (m->cfg.huge_pages ? GMEM_HUGETLB : 0u) |
					      (env && env->mem_uffd ? GMEM_UFFD : 0u),
				 .track_dirty = env && env->track_dirty };
	if (vc.cpu_template == CPU_TEMPLATE_AUTO)
		vc.cpu_template = cpuid_detect_template("/sys");
	m->cfg.cpu_template = vc.cpu_template;
	log_info("CPU template: %s", cpuid_template_name(vc.cpu_template));
	ret = vm_create(&m->vm, &vc, &why);
	if (ret) {
		if (ret == -ENOMEM && m->cfg.huge_pages)
			huge_pages_error(m->cfg.mem_mib, err, err_size);
		else if (ret == -ENOENT || ret == -EACCES || ret == -EPERM)
			err_set(ret, err, err_size,
				"%s: %s (is KVM available, and may this user open /dev/kvm?)", why,
				strerror(-ret));
		else
			err_set(ret, err, err_size, "%s: %s", why, strerror(-ret));
		goto err;
	}
	ret = add_devices(m, env, err, err_size);
	if (ret)
		goto err;
	return 0;
err:
	machine_destroy(m);
	return ret;
}

int machine_boot(struct machine *m, char *err, size_t n)
{
	struct vm *vm = &m->vm;
	struct boot_info bi;
	uint64_t rsdp = 0;
	const char *why = NULL;
	uint8_t *mp;
	size_t used;
	int ret;

	memset(&bi, 0, sizeof(bi));
	/* The first generation's ID (a restore instead starts a new one, snapshot.c). */
	ret = vmgenid_generate(m->vmgenid);
	if (ret)
		return err_set(ret, err, n, "vmgenid: no random ID: %s", strerror(-ret));
	ret = boot_load_kernel(&vm->gm, m->cfg.kernel, &bi, &why);
	if (ret)
		return err_set(ret, err, n, "kernel '%s': %s", m->cfg.kernel,
			       why ? why : strerror(-ret));
	if (m->cfg.initrd[0]) {
		ret = boot_load_initrd(&vm->gm, m->cfg.initrd, &bi);
		if (ret == -ENOMEM)
			return err_set(ret, err, n,
				       "initrd '%s' does not fit in guest RAM (raise --mem)",
				       m->cfg.initrd);
		if (ret)
			return err_set(ret, err, n, "initrd '%s': %s", m->cfg.initrd,
				       ret == -ENODATA ? "file is empty" : strerror(-ret));
	}
	/* MP tables are written either way: they are how a kernel without ACPI (or booted with
	 * acpi=off) finds the vCPUs and the IOAPIC; a kernel that reads the MADT ignores them. */
	mp = gmem_ptr(&vm->gm, LAYOUT_MPTABLE_ADDR, LAYOUT_MPTABLE_SIZE);
	ret = mp ? mptable_build(mp, LAYOUT_MPTABLE_SIZE, LAYOUT_MPTABLE_ADDR, vm->cfg.nr_vcpus,
				 devmgr_level_gsis(&vm->dm), &used)
		 : -EFAULT;
	if (ret)
		return err_set(ret, err, n, "cannot build the MP tables: %s", strerror(-ret));
	if (m->cfg.no_acpi) {
		struct dm_describe ctx = { .cmdline = m->cfg.cmdline,
					   .cmdline_size = sizeof(m->cfg.cmdline) };

		if ((ret = devmgr_describe(&vm->dm, &ctx)))
			return err_set(ret, err, n,
				       "kernel command line is too long for the device list");
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
			return err_set(ret, err, n, "cannot build the ACPI tables: %s",
				       strerror(-ret));
		log_info("ACPI tables: %zu bytes, RSDP at %#llx", used, (unsigned long long)rsdp);
		/* Without ACPI the device described itself on the command line already. */
		if (m->fuzz &&
		    (ret = fuzzdev_cmdline(m->fuzz, m->cfg.cmdline, sizeof(m->cfg.cmdline))))
			return err_set(ret, err, n,
				       "kernel command line is too long for the fuzz device");
	}
	ret = boot_setup_zero_page(&vm->gm, &bi, m->cfg.cmdline, rsdp);
	if (ret == -E2BIG)
		return err_set(ret, err, n,
			       "kernel command line is longer than this kernel accepts");
	if (ret)
		return err_set(ret, err, n, "cannot write the zero page: %s", strerror(-ret));
	ret = boot_setup_page_tables(&vm->gm);
	if (ret)
		return err_set(ret, err, n, "cannot write the boot page tables: %s",
			       strerror(-ret));
	log_info("kernel %s (%s), entry %#llx, cmdline: %s", m->cfg.kernel,
		 bi.is_elf ? "ELF" : "bzImage", (unsigned long long)bi.entry, m->cfg.cmdline);
	ret = vm_setup_vcpus(vm, bi.entry);
	if (ret)
		return err_set(ret, err, n, "cannot set up the vCPUs: %s", strerror(-ret));
	return 0;
}

void machine_destroy(struct machine *m)
{
	uffd_backend_destroy(m->uffd);
	m->uffd = NULL;
	for (int i = 0; i < MACHINE_MAX_NETS; i++) {
		if (m->backends[i])
			m->backends[i]->ops->destroy(m->backends[i]);
		m->backends[i] = NULL;
	}
	vm_destroy(&m->vm);
	/* After the devices: the GPU draws into it until it is freed. */
	display_destroy(m->display);
	m->display = NULL;
	for (int i = 0; i < MACHINE_MAX_DISKS; i++) {
		if (m->private_fds[i] >= 0)
			close(m->private_fds[i]);
		m->private_fds[i] = -1;
	}
	m->vmgenid = NULL;
	m->uart = NULL;
	m->boot_timer = NULL;
	memset(m->nets, 0, sizeof(m->nets));
	m->balloon = NULL;
	m->fuzz = NULL;
	memset(m->disks, 0, sizeof(m->disks));
}

/* Every writable disk, in order; all are tried, the first error is returned. */
static int disks_each(struct machine *m, int (*fn)(struct virtio_blk *))
{
	int first = 0;

	for (int i = 0; i < m->cfg.nr_disks && i < MACHINE_MAX_DISKS; i++) {
		int ret;

		if (!m->disks[i] || m->cfg.disks[i].read_only)
			continue;
		ret = fn(m->disks[i]);
		if (ret && !first)
			first = ret;
	}
	return first;
}

int machine_disks_checkpoint(struct machine *m)
{
	return disks_each(m, virtio_blk_checkpoint);
}

int machine_disks_rollback(struct machine *m)
{
	return disks_each(m, virtio_blk_rollback);
}

static size_t uart_input(void *opaque, const uint8_t *buf, size_t len)
{
	return serial_input(opaque, buf, len);
}

void machine_console_port(struct machine *m, struct console_port *port)
{
	*port = (struct console_port){ .input = uart_input,
				       .room_fd = serial_rx_room_fd(m->uart),
				       .opaque = m->uart };
}

/* Version 2 appends bool fuzz; version 3 the rate limiters (per disk, per network device rx
 * then tx, then virtio-rng's: each bandwidth then ops as u64 size, one_time_burst,
 * refill_time_ms).  Older records still load, without limits.  Only the configuration is
 * saved: a restored device starts with full buckets.  Version 4 appends bool gpu, u32
 * gpu_width, u32 gpu_height.  Version 5 appends bool huge_pages.  Version 6 appends what the
 * REST API knows the devices by, so that a restored machine answers for them under the same ids
 * (docs/api.md): per disk its id, bool root, partuuid, bool writeback, bool async; per network
 * device its id; then bool balloon_deflate_on_oom.  Older records load with no ids (the API
 * then names the devices drive0.../eth0...) and with the balloon offering deflate-on-OOM, as
 * every balloon did before.  Version 7 appends MMDS's configuration: u32 version, ipv4,
 * ifaces (all 0: no MMDS), bool imds_compat; older records load without MMDS. */
#define MACHINE_STATE_VERSION 7

static void put_rl(struct snap_writer *w, const struct ratelimit_cfg *c)
{
	const struct tbucket_cfg *b[2] = { &c->bandwidth, &c->ops };

	for (int i = 0; i < 2; i++) {
		snap_put_u64(w, b[i]->size);
		snap_put_u64(w, b[i]->one_time_burst);
		snap_put_u64(w, b[i]->refill_time_ms);
	}
}

static void get_rl(struct snap_reader *r, struct ratelimit_cfg *c)
{
	struct tbucket_cfg *b[2] = { &c->bandwidth, &c->ops };

	for (int i = 0; i < 2; i++) {
		b[i]->size = snap_get_u64(r);
		b[i]->one_time_burst = snap_get_u64(r);
		b[i]->refill_time_ms = snap_get_u64(r);
	}
	if (ratelimit_validate(c))
		snap_fail(r);
}

void machine_config_save(const struct machine_config *c, struct snap_writer *w)
{
	snap_rec_begin(w, SNAP_REC_MACHINE, MACHINE_STATE_VERSION, "machine");
	snap_put_u64(w, c->mem_mib);
	snap_put_u32(w, c->smp);
	snap_put_u32(w, (uint32_t)c->cpu_template);
	snap_put_bool(w, c->no_acpi);
	snap_put_u32(w, (uint32_t)c->nr_disks);
	for (int i = 0; i < c->nr_disks && i < MACHINE_MAX_DISKS; i++) {
		snap_put_str(w, c->disks[i].path, MACHINE_PATH_MAX - 1);
		snap_put_bool(w, c->disks[i].read_only);
	}
	snap_put_u32(w, (uint32_t)c->nr_nets);
	for (int i = 0; i < c->nr_nets && i < MACHINE_MAX_NETS; i++) {
		const struct machine_net *n = &c->nets[i];

		snap_put_u32(w, (uint32_t)n->kind);
		snap_put_str(w, n->tap, sizeof(n->tap) - 1);
		snap_put_bool(w, n->has_mac);
		snap_put_bytes(w, n->mac, sizeof(n->mac));
		snap_put_u32(w, n->slirp_flags);
		snap_put_u32(w, (uint32_t)n->nr_fwd);
		for (int j = 0; j < n->nr_fwd && j < NET_SLIRP_MAX_FWD; j++) {
			const struct net_slirp_fwd *f = &n->fwd[j];

			snap_put_bool(w, f->udp);
			snap_put_u32(w, f->host_addr);
			snap_put_u16(w, f->host_port);
			snap_put_u32(w, f->guest_addr);
			snap_put_u16(w, f->guest_port);
		}
	}
	snap_put_bool(w, c->no_rng);
	snap_put_bool(w, c->balloon);
	snap_put_u32(w, c->balloon_step_mib);
	snap_put_u32(w, c->balloon_stats_s);
	snap_put_u32(w, c->vsock_cid);
	snap_put_str(w, c->vsock_path, MACHINE_PATH_MAX - 1);
	snap_put_str(w, c->kernel, MACHINE_PATH_MAX - 1);
	snap_put_str(w, c->initrd, MACHINE_PATH_MAX - 1);
	snap_put_str(w, c->cmdline, MACHINE_CMDLINE_MAX - 1);
	snap_put_bool(w, c->fuzz);
	for (int i = 0; i < c->nr_disks && i < MACHINE_MAX_DISKS; i++)
		put_rl(w, &c->disks[i].rl);
	for (int i = 0; i < c->nr_nets && i < MACHINE_MAX_NETS; i++) {
		put_rl(w, &c->nets[i].rx_rl);
		put_rl(w, &c->nets[i].tx_rl);
	}
	put_rl(w, &c->rng_rl);
	snap_put_bool(w, c->gpu);
	snap_put_u32(w, c->gpu_width);
	snap_put_u32(w, c->gpu_height);
	snap_put_bool(w, c->huge_pages);
	for (int i = 0; i < c->nr_disks && i < MACHINE_MAX_DISKS; i++) {
		const struct machine_disk *d = &c->disks[i];

		snap_put_str(w, d->id, sizeof(d->id) - 1);
		snap_put_bool(w, d->root);
		snap_put_str(w, d->partuuid, sizeof(d->partuuid) - 1);
		snap_put_bool(w, d->writeback);
		snap_put_bool(w, d->async);
	}
	for (int i = 0; i < c->nr_nets && i < MACHINE_MAX_NETS; i++)
		snap_put_str(w, c->nets[i].id, sizeof(c->nets[i].id) - 1);
	snap_put_bool(w, c->balloon_deflate_on_oom);
	snap_put_u32(w, c->mmds.version);
	snap_put_u32(w, c->mmds.ipv4);
	snap_put_u32(w, c->mmds.ifaces);
	snap_put_bool(w, c->mmds.imds_compat);
}

/* Two devices of a kind under one non-empty id would make the API's answers ambiguous. */
static bool ids_unique(const char *first, size_t stride, int count)
{
	for (int i = 0; i < count; i++) {
		const char *a = first + stride * (size_t)i;

		for (int j = 0; a[0] && j < i; j++)
			if (!strcmp(a, first + stride * (size_t)j))
				return false;
	}
	return true;
}

int machine_config_load(struct machine_config *c, const struct snap_file *f, char *err, size_t n)
{
	struct snap_reader r;
	uint32_t v;

	memset(c, 0, sizeof(*c));
	if (snap_file_find(f, SNAP_REC_MACHINE, "machine", &r))
		return err_set(-EINVAL, err, n, "the snapshot has no machine record");
	if (r.version < 1 || r.version > MACHINE_STATE_VERSION)
		return err_set(-EINVAL, err, n,
			       "machine record version %u (this ignition reads %u)", r.version,
			       MACHINE_STATE_VERSION);
	c->mem_mib = snap_get_u64(&r);
	c->smp = snap_get_u32(&r);
	v = snap_get_u32(&r);
	c->cpu_template = (enum cpu_template)v;
	c->no_acpi = snap_get_bool(&r);
	v = snap_get_u32(&r);
	if (v > MACHINE_MAX_DISKS)
		return err_set(-EINVAL, err, n, "the snapshot lists %u disks (at most %d)", v,
			       MACHINE_MAX_DISKS);
	c->nr_disks = (int)v;
	for (int i = 0; i < c->nr_disks; i++) {
		snap_get_str(&r, c->disks[i].path, sizeof(c->disks[i].path));
		c->disks[i].read_only = snap_get_bool(&r);
	}
	v = snap_get_u32(&r);
	if (v > MACHINE_MAX_NETS)
		return err_set(-EINVAL, err, n,
			       "the snapshot lists %u network devices (at most %d)", v,
			       MACHINE_MAX_NETS);
	c->nr_nets = (int)v;
	for (int i = 0; i < c->nr_nets; i++) {
		struct machine_net *m = &c->nets[i];

		v = snap_get_u32(&r);
		if (v > MACHINE_NET_TAP)
			snap_fail(&r);
		m->kind = (enum machine_net_kind)v;
		snap_get_str(&r, m->tap, sizeof(m->tap));
		m->has_mac = snap_get_bool(&r);
		snap_get_bytes(&r, m->mac, sizeof(m->mac));
		m->slirp_flags = snap_get_u32(&r);
		v = snap_get_u32(&r);
		if (v > NET_SLIRP_MAX_FWD) {
			snap_fail(&r);
			break;
		}
		m->nr_fwd = (int)v;
		for (int j = 0; j < m->nr_fwd; j++) {
			struct net_slirp_fwd *fw = &m->fwd[j];

			fw->udp = snap_get_bool(&r);
			fw->host_addr = snap_get_u32(&r);
			fw->host_port = snap_get_u16(&r);
			fw->guest_addr = snap_get_u32(&r);
			fw->guest_port = snap_get_u16(&r);
		}
		if (m->kind == MACHINE_NET_TAP && !m->tap[0])
			snap_fail(&r);
	}
	c->no_rng = snap_get_bool(&r);
	c->balloon = snap_get_bool(&r);
	c->balloon_step_mib = snap_get_u32(&r);
	c->balloon_stats_s = snap_get_u32(&r);
	c->vsock_cid = snap_get_u32(&r);
	snap_get_str(&r, c->vsock_path, sizeof(c->vsock_path));
	snap_get_str(&r, c->kernel, sizeof(c->kernel));
	snap_get_str(&r, c->initrd, sizeof(c->initrd));
	snap_get_str(&r, c->cmdline, sizeof(c->cmdline));
	c->fuzz = r.version >= 2 && snap_get_bool(&r);
	if (r.version >= 3) {
		for (int i = 0; i < c->nr_disks; i++)
			get_rl(&r, &c->disks[i].rl);
		for (int i = 0; i < c->nr_nets; i++) {
			get_rl(&r, &c->nets[i].rx_rl);
			get_rl(&r, &c->nets[i].tx_rl);
		}
		get_rl(&r, &c->rng_rl);
	}
	if (r.version >= 4) {
		c->gpu = snap_get_bool(&r);
		c->gpu_width = snap_get_u32(&r);
		c->gpu_height = snap_get_u32(&r);
		if (c->gpu && (c->gpu_width < DISPLAY_MIN_DIM || c->gpu_width > DISPLAY_MAX_W ||
			       c->gpu_height < DISPLAY_MIN_DIM || c->gpu_height > DISPLAY_MAX_H))
			snap_fail(&r);
	}
	if (r.version >= 5)
		c->huge_pages = snap_get_bool(&r);
	if (r.version >= 6) {
		for (int i = 0; i < c->nr_disks; i++) {
			struct machine_disk *d = &c->disks[i];

			snap_get_str(&r, d->id, sizeof(d->id));
			d->root = snap_get_bool(&r);
			snap_get_str(&r, d->partuuid, sizeof(d->partuuid));
			d->writeback = snap_get_bool(&r);
			d->async = snap_get_bool(&r);
			/* The root device is the first disk (/dev/vda). */
			if (d->root && i)
				snap_fail(&r);
		}
		for (int i = 0; i < c->nr_nets; i++)
			snap_get_str(&r, c->nets[i].id, sizeof(c->nets[i].id));
		c->balloon_deflate_on_oom = snap_get_bool(&r);
		if (!ids_unique(c->disks[0].id, sizeof(c->disks[0]), c->nr_disks) ||
		    !ids_unique(c->nets[0].id, sizeof(c->nets[0]), c->nr_nets))
			snap_fail(&r);
	} else {
		c->balloon_deflate_on_oom = c->balloon;
	}
	if (r.version >= 7) {
		char why[128];

		c->mmds.version = snap_get_u32(&r);
		c->mmds.ipv4 = snap_get_u32(&r);
		c->mmds.ifaces = snap_get_u32(&r);
		c->mmds.imds_compat = snap_get_bool(&r);
		/* Served on existing interfaces only, as the store accepts it. */
		if (c->mmds.ifaces &&
		    (c->mmds.ifaces >> c->nr_nets || mmds_config_check(&c->mmds, why, sizeof(why))))
			snap_fail(&r);
	}
	if (snap_reader_done(&r))
		return err_set(-EINVAL, err, n, "the machine record is malformed");
	if (c->mem_mib < 16 || c->mem_mib > (LAYOUT_MAX_RAM >> 20) || c->smp < 1 ||
	    c->smp > VM_MAX_VCPUS || c->cpu_template == CPU_TEMPLATE_AUTO ||
	    (unsigned)c->cpu_template > CPU_TEMPLATE_NO_PV_HC ||
	    (c->vsock_path[0] && (c->vsock_cid < 3 || c->vsock_cid == 0xffffffffu)) ||
	    (c->huge_pages && c->mem_mib % 2))
		return err_set(
			-EINVAL, err, n,
			"the machine record has values out of range (memory %llu MiB, %u vCPUs)",
			(unsigned long long)c->mem_mib, c->smp);
	return 0;
}
