/* Every device kind ignition has, through a snapshot and the real loader.
 *
 * The loader once kept its own list of device record types, and each device that gained a
 * record (virtio-gpu, virtio-input, i8042, the fuzz device) had to be added to it by hand:
 * a GUI guest's snapshot was refused ("unknown record type 16") until a full guest run found
 * it.  Now a device kind declares its record in its ops table (core/bus.h dev_ops.rec,
 * virtio.h virtio_device_ops.rec) and the loader asks the device manager.  These tests hold
 * that in place:
 *   - every kind in `kinds` that has a save declares a record type the loader knows, one of
 *     its own (no KVM);
 *   - for every kind, a machine holding it (built by machine_create from a machine
 *     description, as a boot is) is snapshotted by snapshot_create and restored by
 *     snapshot_restore, and the restored machine has the same devices (KVM; no guest runs:
 *     the vCPUs are created and never entered);
 *   - every device of those machines is of a kind in `kinds`, and every kind was seen: a new
 *     device added to machine_create shows up here, unknown, until it is listed.
 * A state file with a record of a type nobody declares is refused with one line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/devmgr.h"
#include "core/machine.h"
#include "devices/boot_timer.h"
#include "devices/fuzz.h"
#include "devices/i8042.h"
#include "devices/power.h"
#include "devices/rtc.h"
#include "devices/serial.h"
#include "devices/virtio/balloon.h"
#include "devices/virtio/blk.h"
#include "devices/virtio/gpu.h"
#include "devices/virtio/input.h"
#include "devices/virtio/mmio.h"
#include "devices/virtio/net.h"
#include "devices/virtio/rng.h"
#include "devices/virtio/vsock/vsock.h"
#include "devices/vmgenid.h"
#include "kvm_guest.h"
#include "snapshot/snap.h"
#include "snapshot/snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Every device kind: a bus device's ops table, or the virtio transport with a virtio device's
 * ops.  A device added to ignition belongs here (the machine test below fails until it is). */
struct kind {
	const char *name;
	const struct dev_ops *ops;
	const struct virtio_device_ops *vops; /* with ops == &virtio_mmio_dev_ops */
	bool seen;
};

static struct kind kinds[] = {
	{ "boot-timer", &boot_timer_ops, NULL, false },
	{ "serial", &serial_ops, NULL, false },
	{ "rtc", &rtc_ops, NULL, false },
	{ "acpi-pm", &power_acpi_ops, NULL, false },
	{ "i8042 data port", &i8042_data_ops, NULL, false },
	{ "i8042 command port", &i8042_cmd_ops, NULL, false },
	{ "vmgenid", &vmgenid_ops, NULL, false },
	{ "fuzz", &fuzzdev_ops, NULL, false },
	{ "virtio-blk", &virtio_mmio_dev_ops, &virtio_blk_ops, false },
	{ "virtio-net", &virtio_mmio_dev_ops, &virtio_net_ops, false },
	{ "virtio-rng", &virtio_mmio_dev_ops, &virtio_rng_ops, false },
	{ "virtio-balloon", &virtio_mmio_dev_ops, &virtio_balloon_ops, false },
	{ "virtio-vsock", &virtio_mmio_dev_ops, &virtio_vsock_ops, false },
	{ "virtio-gpu", &virtio_mmio_dev_ops, &virtio_gpu_ops, false },
	{ "virtio-input", &virtio_mmio_dev_ops, &virtio_input_ops, false },
};
#define NR_KINDS (sizeof(kinds) / sizeof(kinds[0]))

/* Records of the VM itself, never a device's. */
static bool vm_record(uint16_t type)
{
	switch (type) {
	case SNAP_REC_MACHINE:
	case SNAP_REC_VCPU:
	case SNAP_REC_IRQCHIP:
	case SNAP_REC_PIT:
	case SNAP_REC_CLOCK:
	case SNAP_REC_SLOT:
	case SNAP_REC_LAYER:
		return true;
	}
	return false;
}

/* A declaration is right when save, restore and the record agree, and the record is a known,
 * device-only type. */
static void check_decl(const char *name, bool save, bool restore, struct dev_rec rec)
{
	if (save != restore)
		fail_msg("%s: save %s but restore %s", name, save ? "set" : "unset",
			 restore ? "set" : "unset");
	if (!save) {
		if (rec.type)
			fail_msg("%s: declares record type %u without a save", name, rec.type);
		return;
	}
	if (!rec.type)
		fail_msg("%s: has a save hook but declares no snapshot record (.rec)", name);
	if (!snap_rec_known(rec.type) || vm_record(rec.type))
		fail_msg("%s: declares record type %u, which the loader does not know as a "
			 "device record",
			 name, rec.type);
	if (!rec.version)
		fail_msg("%s: record version 0", name);
}

static void test_kinds_declare_records(void **state)
{
	(void)state;
	for (size_t i = 0; i < NR_KINDS; i++) {
		const struct kind *k = &kinds[i];

		check_decl(k->name, k->ops->save, k->ops->restore, k->ops->rec);
		if (k->vops)
			check_decl(k->name, k->vops->save, k->vops->restore, k->vops->rec);
	}
	/* No two kinds claim one type (the transport's is shared by all virtio kinds). */
	for (size_t i = 0; i < NR_KINDS; i++) {
		struct dev_rec a = kinds[i].vops ? kinds[i].vops->rec : kinds[i].ops->rec;

		for (size_t j = i + 1; a.type && j < NR_KINDS; j++) {
			struct dev_rec b = kinds[j].vops ? kinds[j].vops->rec : kinds[j].ops->rec;

			if (a.type == b.type)
				fail_msg("%s and %s both declare record type %u", kinds[i].name,
					 kinds[j].name, a.type);
		}
	}
}

/* The kind of the device on slot d, or NULL. */
static struct kind *kind_of(const struct dm_dev *d)
{
	struct dev_rec recs[DM_MAX_RECS];
	unsigned n = devmgr_records(d, recs);

	for (size_t i = 0; i < NR_KINDS; i++) {
		struct kind *k = &kinds[i];

		if (k->ops != d->ops)
			continue;
		if (!k->vops)
			return k;
		/* A transport: its device is the one whose record it reports. */
		if (n == 2 && recs[1].type == k->vops->rec.type)
			return k;
	}
	return NULL;
}

static char tmp[64];
static struct machine m;

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int setup(void **state)
{
	(void)state;
	snprintf(tmp, sizeof(tmp), "/tmp/ign-kinds-XXXXXX");
	assert_non_null(mkdtemp(tmp));
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	return nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void make_disk(const char *path)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 1 << 20), 0);
	close(fd);
}

enum { C_BASE, C_RNG, C_DISKS, C_NET, C_VSOCK, C_BALLOON, C_GPU, C_FUZZ, C_ALL, NR_CONFIGS };
static const char *const config_names[NR_CONFIGS] = { "base",	 "rng", "disks", "net", "vsock",
						      "balloon", "gpu", "fuzz",	 "all" };

static void fill_config(int which, struct machine_config *c)
{
	bool all = which == C_ALL;

	memset(c, 0, sizeof(*c));
	c->mem_mib = 32;
	c->smp = 1;
	c->cpu_template = CPU_TEMPLATE_AUTO;
	c->no_acpi = true;
	c->no_rng = !(all || which == C_RNG);
	if (all || which == C_DISKS) {
		c->nr_disks = 2;
		snprintf(c->disks[0].path, sizeof(c->disks[0].path), "%s/rw.img", tmp);
		snprintf(c->disks[1].path, sizeof(c->disks[1].path), "%s/ro.img", tmp);
		c->disks[1].read_only = true;
		make_disk(c->disks[0].path);
		make_disk(c->disks[1].path);
	}
	if (all || which == C_NET) {
		c->nr_nets = 1;
		c->nets[0].kind = MACHINE_NET_USER;
	}
	if (all || which == C_VSOCK) {
		c->vsock_cid = 3;
		snprintf(c->vsock_path, sizeof(c->vsock_path), "%s/v.sock", tmp);
	}
	c->balloon = all || which == C_BALLOON;
	if (all || which == C_GPU) {
		c->gpu = true;
		c->gpu_width = 640;
		c->gpu_height = 480;
	}
	c->fuzz = all || which == C_FUZZ;
}

/* The ids of m's devices and the record types each declares, as "id:t,t id:t ...". */
static void describe_slots(const struct devmgr *dm, char *out, size_t size)
{
	size_t used = 0;

	out[0] = '\0';
	for (int i = 0; i < dm->nr_devs; i++) {
		struct dev_rec recs[DM_MAX_RECS];
		unsigned n = devmgr_records(dm->devs[i], recs);
		int w = snprintf(out + used, size - used, "%s%s:", i ? " " : "", dm->devs[i]->id);

		assert_true(w > 0 && (size_t)w < size - used);
		used += (size_t)w;
		for (unsigned j = 0; j < n; j++) {
			w = snprintf(out + used, size - used, "%s%u", j ? "," : "", recs[j].type);
			assert_true(w > 0 && (size_t)w < size - used);
			used += (size_t)w;
		}
	}
}

static void test_every_kind_round_trips(void **state)
{
	struct machine_env env = { .console_fd = -1, .mem_fd = -1 };
	char err[512] = "", before[2048], after[2048], dir[128];

	(void)state;
	env.console_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	assert_true(env.console_fd >= 0);
	for (int c = 0; c < NR_CONFIGS; c++) {
		struct machine_config cfg;

		fill_config(c, &cfg);
		kvm_guest_machine_or_skip(&m, &cfg, &env, config_names[c]);
		for (int i = 0; i < m.vm.dm.nr_devs; i++) {
			struct kind *k = kind_of(m.vm.dm.devs[i]);

			if (!k)
				fail_msg("%s: device '%s' (%s) is of no kind this test knows: add "
					 "it to kinds[]",
					 config_names[c], m.vm.dm.devs[i]->id,
					 m.vm.dm.devs[i]->ops ? m.vm.dm.devs[i]->ops->name : "-");
			k->seen = true;
		}
		describe_slots(&m.vm.dm, before, sizeof(before));
		/* vCPUs to save; never run. */
		assert_int_equal(vm_setup_vcpus(&m.vm, KVM_GUEST_CODE_GPA), 0);
		snprintf(dir, sizeof(dir), "%s/snap-%s", tmp, config_names[c]);
		if (snapshot_create(&m, dir, NULL, err, sizeof(err)))
			fail_msg("%s: snapshot_create: %s", config_names[c], err);
		machine_destroy(&m);

		if (snapshot_restore(&m, dir, NULL, &env, err, sizeof(err)))
			fail_msg("%s: the loader refused the snapshot: %s", config_names[c], err);
		describe_slots(&m.vm.dm, after, sizeof(after));
		assert_string_equal(after, before);
		print_message("%-8s %s\n", config_names[c], after);
		machine_destroy(&m);
	}
	close(env.console_fd);
	for (size_t i = 0; i < NR_KINDS; i++)
		if (!kinds[i].seen)
			fail_msg("device kind %s: in no machine of this test (add a configuration "
				 "that has it)",
				 kinds[i].name);
}

/* A state file written by the real save with one more record, of a type no device declares,
 * is refused by the real loader with one line that names the type. */
static void test_unknown_record_refused(void **state)
{
	struct machine_env env = { .console_fd = -1, .mem_fd = -1 };
	struct machine_config cfg;
	char err[512] = "", dir[128], path[160];
	struct snap_writer w;
	struct snap_file f;
	struct snap_reader r;
	uint8_t buf[1 << 16];
	ssize_t len;
	int fd;

	(void)state;
	fill_config(C_BASE, &cfg);
	env.console_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	assert_true(env.console_fd >= 0);
	kvm_guest_machine_or_skip(&m, &cfg, &env, "base");
	assert_int_equal(vm_setup_vcpus(&m.vm, KVM_GUEST_CODE_GPA), 0);
	snprintf(dir, sizeof(dir), "%s/snap-unknown", tmp);
	if (snapshot_create(&m, dir, NULL, err, sizeof(err)))
		fail_msg("snapshot_create: %s", err);
	machine_destroy(&m);

	/* Copy every record, then add one of type 999 for the serial port. */
	snprintf(path, sizeof(path), "%s/state", dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	len = read(fd, buf, sizeof(buf));
	close(fd);
	assert_true(len > 0 && (size_t)len < sizeof(buf));
	assert_int_equal(snap_file_parse(&f, buf, (size_t)len, NULL, 0), 0);
	snap_writer_init(&w);
	for (uint32_t i = 0; snap_file_record(&f, i, &r) == 0; i++) {
		snap_rec_begin(&w, r.type, r.version, r.id);
		snap_put_bytes(&w, r.p, r.len);
	}
	snap_rec_begin(&w, 999, 1, "serial0");
	snap_put_u32(&w, 0);
	assert_int_equal(snap_writer_finish(&w), 0);
	assert_int_equal(unlink(path), 0);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, w.buf, w.len), (ssize_t)w.len);
	close(fd);
	snap_writer_free(&w);

	assert_int_equal(snapshot_restore(&m, dir, NULL, &env, err, sizeof(err)), -EINVAL);
	print_message("refused: %s\n", err);
	assert_non_null(strstr(err, "unknown record type 999 ('serial0')"));
	assert_null(strchr(err, '\n'));
	close(env.console_fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kinds_declare_records),
		cmocka_unit_test(test_every_kind_round_trips),
		cmocka_unit_test(test_unknown_record_refused),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
