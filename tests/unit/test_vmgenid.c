/* VMGenID: the ID in fake guest memory, the GED line, the DSDT nodes (bytes, iasl, acpiexec),
 * where the ID sits in the memory map, and its slot record. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "acpi_tools.h"
#include "arch/x86/boot.h"
#include "arch/x86/layout.h"
#include "core/devmgr.h"
#include "core/gmem.h"
#include "devices/vmgenid.h"
#include "platform/acpi/acpi.h"
#include "platform/acpi/aml.h"
#include "snapshot/snap.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RAM_SIZE (2u << 20)
#define ID	 VMGENID_ID_SIZE

struct fixture {
	uint8_t *ram;
	struct gmem gm;
	struct devmgr dm;
	struct vmgenid *v;
	struct dm_dev *slot;
	int binds;
	char tmpdir[32]; /* iasl scratch directory, removed by teardown even after a failure */
};

/* The VM's irq_bind hook: accepts the line (the manager then owns a real eventfd). */
static int fake_irq_bind(void *ctx, struct irq_line *l)
{
	struct fixture *fx = ctx;

	assert_false(l->level);
	assert_int_equal(l->resample_fd, -1);
	fx->binds++;
	return 0;
}

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	struct devmgr_hooks hooks = { .irq_bind = fake_irq_bind };

	assert_non_null(fx);
	hooks.ctx = fx;
	fx->ram = malloc(RAM_SIZE);
	assert_non_null(fx->ram);
	memset(fx->ram, 0xa5, RAM_SIZE);
	gmem_init_flat(&fx->gm, fx->ram, RAM_SIZE);
	/* No event loop: an edge line needs none (nothing lowers it again). */
	devmgr_init(&fx->dm, &fx->gm, NULL, &hooks);
	assert_int_equal(vmgenid_add(&fx->dm, &fx->v), 0);
	fx->slot = devmgr_find(&fx->dm, "vmgenid");
	assert_non_null(fx->slot);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;

	if (fx->tmpdir[0]) {
		char cmd[64];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->tmpdir);
		if (system(cmd) != 0)
			fprintf(stderr, "cannot remove %s\n", fx->tmpdir);
	}
	devmgr_destroy(&fx->dm);
	free(fx->ram);
	free(fx);
	return 0;
}

static const uint8_t *id_of(const struct fixture *fx)
{
	return fx->ram + LAYOUT_VMGENID_ADDR;
}

/* Pulses written to the line's eventfd since the last call (0 if none). */
static uint64_t pulses(const struct fixture *fx)
{
	struct pollfd p = { .fd = fx->slot->irq.fd, .events = POLLIN };
	uint64_t v = 0;

	if (poll(&p, 1, 0) != 1)
		return 0;
	assert_int_equal(read(fx->slot->irq.fd, &v, sizeof(v)), sizeof(v));
	return v;
}

/* Every byte of fake RAM but the ID still holds the fill pattern. */
static void only_id_written(const struct fixture *fx)
{
	for (size_t i = LAYOUT_VMGENID_ADDR - 4096; i < LAYOUT_VMGENID_ADDR + 8192; i++)
		if (i < LAYOUT_VMGENID_ADDR || i >= LAYOUT_VMGENID_ADDR + ID)
			assert_int_equal(fx->ram[i], 0xa5);
}

/* The slot: the fixed GSI as an edge line bound through the VM hook, no window, no bus. */
static void test_slot(void **state)
{
	struct fixture *fx = *state;
	struct dm_dev *other;

	assert_int_equal(fx->slot->kind, DM_LINE);
	assert_true(fx->slot->has_irq);
	assert_int_equal(fx->slot->irq.gsi, LAYOUT_GSI_VMGENID);
	assert_false(fx->slot->irq.level);
	assert_true(fx->slot->irq.fd >= 0);
	assert_int_equal(fx->binds, 1);
	assert_int_equal(fx->slot->len, 0);
	assert_int_equal(fx->dm.mmio.nr, 0);
	assert_int_equal(fx->dm.pio.nr, 0);
	/* The MP table declares only level lines; this one conforms to the bus (edge). */
	assert_int_equal(devmgr_level_gsis(&fx->dm), 0);
	/* Creating the device writes nothing (a restore keeps the snapshot's memory as is). */
	only_id_written(fx);
	for (int i = 0; i < ID; i++)
		assert_int_equal(id_of(fx)[i], 0xa5);
	/* A second device cannot have the line; a GSI beyond the IOAPIC's pins is refused. */
	assert_int_equal(vmgenid_add(&fx->dm, NULL), -EBUSY);
	assert_int_equal(devmgr_reserve_line(&fx->dm, "x", LAYOUT_GSI_VMGENID, &other), -EBUSY);
	assert_int_equal(devmgr_reserve_line(&fx->dm, "x", LAYOUT_IOAPIC_PINS, &other), -EINVAL);
	assert_int_equal(fx->dm.nr_devs, 1);
}

/* The allocator for virtio lines never hands out the VMGenID's: 17 lines (5..22 minus the
 * RTC's 8), whichever was registered first. */
static void test_allocator_leaves_the_line(void **state)
{
	struct fixture *fx = *state;

	for (int first = 0; first < 2; first++) {
		struct devmgr dm;
		struct dm_dev *d;
		int lines = 0, ret;
		char id[32];

		devmgr_init(&dm, &fx->gm, NULL, NULL);
		if (first)
			assert_int_equal(vmgenid_add(&dm, NULL), 0);
		for (ret = 0; !ret && lines < 64;) {
			snprintf(id, sizeof(id), "virtio-x%d", lines);
			ret = devmgr_reserve_mmio(&dm, id, 0x200, true, &d);
			if (ret)
				continue;
			assert_int_not_equal(d->irq.gsi, LAYOUT_GSI_VMGENID);
			assert_int_not_equal(d->irq.gsi, LAYOUT_GSI_RTC);
			lines++;
		}
		assert_int_equal(ret, -ENOSPC);
		assert_int_equal(lines, 17);
		if (!first)
			assert_int_equal(vmgenid_add(&dm, NULL), 0);
		assert_non_null(devmgr_find(&dm, "vmgenid"));
		devmgr_destroy(&dm);
	}
}

static void test_boot_generation(void **state)
{
	struct fixture *fx = *state;
	uint8_t first[ID];

	assert_int_equal(vmgenid_generate(fx->v), 0);
	memcpy(first, id_of(fx), ID);
	assert_memory_not_equal(first, (uint8_t[ID]){ 0 }, ID);
	only_id_written(fx);
	/* A boot raises no interrupt: the driver reads the ID when it probes. */
	assert_int_equal(pulses(fx), 0);
	assert_int_equal(fx->slot->irq.count, 0);
	assert_int_equal(vmgenid_generations(fx->v), 0);
	/* Two boots get two IDs. */
	assert_int_equal(vmgenid_generate(fx->v), 0);
	assert_memory_not_equal(first, id_of(fx), ID);
}

/* A restore: each new generation writes a different ID into guest memory and pulses the line
 * once (edge: one eventfd write each). */
static void test_new_generation(void **state)
{
	struct fixture *fx = *state;
	uint8_t seen[4][ID];

	assert_int_equal(vmgenid_generate(fx->v), 0);
	memcpy(seen[0], id_of(fx), ID);
	for (int g = 1; g < 4; g++) {
		assert_int_equal(vmgenid_new_generation(fx->v), 0);
		memcpy(seen[g], id_of(fx), ID);
		for (int e = 0; e < g; e++)
			assert_memory_not_equal(seen[e], seen[g], ID);
		assert_int_equal(pulses(fx), 1);
		assert_int_equal(fx->slot->irq.count, (uint64_t)g);
		assert_int_equal(vmgenid_generations(fx->v), (uint64_t)g);
		only_id_written(fx);
	}
}

static void test_create_refusals(void **state)
{
	struct fixture *fx = *state;
	struct irq_line edge = { .gsi = 23, .fd = -1, .resample_fd = -1 };
	struct irq_line level = { .gsi = 23, .level = true, .fd = -1, .resample_fd = -1 };
	struct vmgenid *v = NULL;
	struct devmgr dm;

	assert_int_equal(vmgenid_create(&fx->gm, LAYOUT_VMGENID_ADDR + 4, &edge, &v), -EINVAL);
	assert_int_equal(vmgenid_create(&fx->gm, LAYOUT_VMGENID_ADDR, &level, &v), -EINVAL);
	assert_int_equal(vmgenid_create(NULL, LAYOUT_VMGENID_ADDR, &edge, &v), -EINVAL);
	assert_int_equal(vmgenid_create(&fx->gm, LAYOUT_VMGENID_ADDR, NULL, &v), -EINVAL);
	/* The last 8 bytes of RAM cannot hold 16. */
	assert_int_equal(vmgenid_create(&fx->gm, RAM_SIZE - 8, &edge, &v), -EFAULT);
	assert_int_equal(vmgenid_create(&fx->gm, 1ull << 40, &edge, &v), -EFAULT);
	assert_null(v);
	/* Works on its own line, and says so by pulsing it. */
	assert_int_equal(vmgenid_create(&fx->gm, RAM_SIZE - 16, &edge, &v), 0);
	assert_int_equal(vmgenid_new_generation(v), 0);
	assert_int_equal(edge.count, 1);
	vmgenid_destroy(v);
	/* A manager without guest memory: the slot is released again. */
	devmgr_init(&dm, NULL, NULL, NULL);
	assert_int_equal(vmgenid_add(&dm, &v), -EINVAL);
	assert_int_equal(dm.nr_devs, 0);
	assert_null(devmgr_find(&dm, "vmgenid"));
	devmgr_destroy(&dm);
}

/* ---- ACPI ---- */

static void build_tables(struct fixture *fx, uint8_t **dsdt, size_t *used)
{
	uint8_t *buf = gmem_ptr(&fx->gm, LAYOUT_ACPI_START, LAYOUT_ACPI_END - LAYOUT_ACPI_START);
	struct acpi_config cfg = { .nr_cpus = 2,
				   .buf = buf,
				   .buf_size = LAYOUT_ACPI_END - LAYOUT_ACPI_START,
				   .buf_gpa = LAYOUT_ACPI_START };
	uint64_t rsdp;
	uint8_t *d;

	assert_non_null(buf);
	assert_int_equal(acpi_build(&cfg, &fx->dm, &rsdp, used), 0);
	/* The DSDT is the last table (acpi.c's layout). */
	d = memmem(buf, *used, "DSDT", 4);
	assert_non_null(d);
	assert_int_equal(d[4] | d[5] << 8 | d[6] << 16 | (uint32_t)d[7] << 24, buf + *used - d);
	*dsdt = d;
}

static const uint8_t *find(const uint8_t *hay, size_t n, const void *needle, size_t len)
{
	const uint8_t *p = memmem(hay, n, needle, len);

	if (!p)
		fail_msg("byte sequence of %zu bytes not in the DSDT", len);
	return p;
}

#define FIND(t, n, ...) \
	find(t, n, (const uint8_t[]){ __VA_ARGS__ }, sizeof((const uint8_t[]){ __VA_ARGS__ }))

/* The nodes byte by byte, and where the ID sits against the tables and the e820 map. */
static void test_dsdt_and_layout(void **state)
{
	struct fixture *fx = *state;
	struct e820_entry map[BP_E820_MAX];
	uint8_t *dsdt, saved[ID];
	size_t used, len;
	int n, reserved = 0;

	assert_int_equal(vmgenid_generate(fx->v), 0);
	memcpy(saved, id_of(fx), ID);
	build_tables(fx, &dsdt, &used);
	len = (size_t)(fx->ram + LAYOUT_ACPI_START + used - dsdt);
	/* The tables end before the ID, and building them left it alone. */
	assert_true(LAYOUT_ACPI_START + used <= LAYOUT_VMGENID_ADDR);
	assert_memory_equal(saved, id_of(fx), ID);

	/* Device (VGEN) { _HID "IGNT0001", _CID and _DDN "VM_GEN_COUNTER",
	 * Name (ADDR, Package (2) { 0xEF000, 0 }) }: DWord low half, Zero high half. */
	FIND(dsdt, len, 0x5b, 0x82);
	FIND(dsdt, len, 'V', 'G', 'E', 'N', 0x08, '_', 'H', 'I', 'D', 0x0d, 'I', 'G', 'N', 'T', '0',
	     '0', '0', '1', 0);
	FIND(dsdt, len, 0x08, '_', 'C', 'I', 'D', 0x0d, 'V', 'M', '_', 'G', 'E', 'N', '_', 'C', 'O',
	     'U', 'N', 'T', 'E', 'R', 0);
	FIND(dsdt, len, 0x08, '_', 'D', 'D', 'N', 0x0d, 'V', 'M', '_');
	FIND(dsdt, len, 0x08, 'A', 'D', 'D', 'R', 0x12, 0x08, 0x02, 0x0c,
	     (uint8_t)LAYOUT_VMGENID_ADDR, (uint8_t)(LAYOUT_VMGENID_ADDR >> 8),
	     (uint8_t)(LAYOUT_VMGENID_ADDR >> 16), (uint8_t)(LAYOUT_VMGENID_ADDR >> 24), 0x00);
	/* Device (GED0) { _HID "ACPI0013", _UID 0, _CRS { Interrupt (ResourceConsumer, Edge,
	 * ActiveHigh, Exclusive) { 23 } }, Method (_EVT, 1) { Notify (\_SB.VGEN, 0x80) } }. */
	FIND(dsdt, len, 'G', 'E', 'D', '0', 0x08, '_', 'H', 'I', 'D', 0x0d, 'A', 'C', 'P', 'I', '0',
	     '0', '1', '3', 0, 0x08, '_', 'U', 'I', 'D', 0x00);
	FIND(dsdt, len, 0x89, 0x06, 0x00, 0x03, 0x01, LAYOUT_GSI_VMGENID, 0, 0, 0, 0x79, 0x00);
	FIND(dsdt, len, 0x14, 0x13, '_', 'E', 'V', 'T', 0x01, 0x86, '\\', 0x2e, '_', 'S', 'B', '_',
	     'V', 'G', 'E', 'N', 0x0a, 0x80);

	/* e820: the ID is inside a reserved range and in no RAM range. */
	n = boot_e820(&fx->gm, map, BP_E820_MAX);
	assert_true(n > 0);
	for (int i = 0; i < n; i++) {
		bool overlaps = map[i].addr < LAYOUT_VMGENID_ADDR + ID &&
				LAYOUT_VMGENID_ADDR < map[i].addr + map[i].size;

		if (!overlaps)
			continue;
		assert_int_equal(map[i].type, E820_RESERVED);
		assert_true(map[i].addr <= LAYOUT_VMGENID_ADDR &&
			    LAYOUT_VMGENID_ADDR + ID <= map[i].addr + map[i].size);
		reserved++;
	}
	assert_int_equal(reserved, 1);
}

/* Without ACPI nothing is described (the kernel command line cannot name it). */
static void test_no_acpi(void **state)
{
	struct fixture *fx = *state;
	char cmdline[64] = "console=ttyS0";
	struct dm_describe ctx = { .cmdline = cmdline, .cmdline_size = sizeof(cmdline) };

	assert_int_equal(devmgr_describe(&fx->dm, &ctx), 0);
	assert_string_equal(cmdline, "console=ttyS0");
}

/* ---- iasl and acpiexec ---- */

/* Disassemble the DSDT, compile it back (the body must come out byte for byte the same: the
 * AML is what iasl itself would emit), then run the nodes in ACPICA's interpreter (the code
 * Linux runs). */
static void test_iasl(void **state)
{
	struct fixture *fx = *state;
	char *dir = fx->tmpdir, *dsl, *back, *out;
	uint8_t *dsdt;
	size_t used, len, back_len;

	if (!acpi_tool_have("iasl")) {
		print_message("iasl not installed: skipping\n");
		skip();
	}
	build_tables(fx, &dsdt, &used);
	len = (size_t)(fx->ram + LAYOUT_ACPI_START + used - dsdt);
	snprintf(dir, sizeof(fx->tmpdir), "/tmp/ignition-vgen-XXXXXX");
	assert_non_null(mkdtemp(dir));
	acpi_tool_write(dir, "dsdt.dat", dsdt, len);

	free(acpi_tool_run(dir, "iasl", "-d dsdt.dat", 2146));
	/* -on: keep \_SB.VGEN as written (iasl would shorten it to VGEN, found by the search
	 * rules of ACPI 6.4 §5.3 just the same). */
	out = acpi_tool_run(dir, "iasl", "-on -p dsdt2 dsdt.dsl", 2146);
	acpi_tool_expect(out, "Compilation successful. 0 Errors, 0 Warnings", "iasl");
	free(out);
	back = acpi_tool_read(dir, "dsdt2.aml", &back_len);
	if (back_len != len || memcmp(back + 36, dsdt + 36, len - 36))
		fail_msg("recompiled DSDT differs from the original");
	free(back);

	dsl = acpi_tool_read(dir, "dsdt.dsl", NULL);
	acpi_tool_expect(dsl, "Device (VGEN)", "dsdt.dsl");
	acpi_tool_expect(dsl, "Name (_HID, \"IGNT0001\")", "dsdt.dsl");
	acpi_tool_expect(dsl, "Name (_CID, \"VM_GEN_COUNTER\")", "dsdt.dsl");
	acpi_tool_expect(dsl, "Name (_DDN, \"VM_GEN_COUNTER\")", "dsdt.dsl");
	acpi_tool_expect(dsl, "Name (ADDR, Package (0x02)", "dsdt.dsl");
	acpi_tool_expect(dsl, "0x000EF000,", "dsdt.dsl");
	acpi_tool_expect(dsl, "Device (GED0)", "dsdt.dsl");
	acpi_tool_expect(dsl, "Name (_HID, \"ACPI0013\" /* Generic Event Device */)", "dsdt.dsl");
	acpi_tool_expect(dsl, "Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive, ,, )",
			 "dsdt.dsl");
	acpi_tool_expect(dsl, "0x00000017,", "dsdt.dsl");
	acpi_tool_expect(dsl, "Method (_EVT, 1, NotSerialized)", "dsdt.dsl");
	acpi_tool_expect(dsl, "Notify (\\_SB.VGEN, 0x80)", "dsdt.dsl");
	free(dsl);

	if (!acpi_tool_have("acpiexec")) {
		print_message("acpiexec not installed: AML not executed\n");
		return;
	}
	/* ADDR evaluates to the two halves the driver ORs together; _EVT (called as Linux's GED
	 * driver calls it, with the GSI) reaches VGEN with 0x80. */
	out = acpi_tool_run(dir, "acpiexec",
			    "-b 'evaluate \\_SB.VGEN.ADDR; evaluate \\_SB.VGEN._CID; "
			    "evaluate \\_SB.GED0._EVT 0x17' dsdt.dat",
			    2146);
	acpi_tool_expect(out, "[Integer] = 00000000000EF000", "acpiexec");
	acpi_tool_expect(out, "[Integer] = 0000000000000000", "acpiexec");
	acpi_tool_expect(out, "VM_GEN_COUNTER", "acpiexec");
	acpi_tool_expect(out, "Received a Device Notify on [VGEN]", "acpiexec");
	acpi_tool_expect(out, "Value 0x80", "acpiexec");
	free(out);
}

/* ---- snapshots ---- */

/* The device has no record of its own (the ID is in guest memory); its slot record pins the
 * line, so a machine that would put it elsewhere, or lack it, is refused. */
static void test_slot_record(void **state)
{
	struct fixture *fx = *state;
	struct snap_writer w;
	struct snap_file f;
	struct snap_reader r;
	struct devmgr dm;
	struct dm_dev *d;
	struct vmgenid *v;
	char why[256];

	snap_writer_init(&w);
	assert_int_equal(devmgr_save(&fx->dm, &w), 0);
	assert_int_equal(snap_writer_finish(&w), 0);
	assert_int_equal(snap_file_parse(&f, w.buf, w.len, why, sizeof(why)), 0);
	assert_int_equal(f.count, 1);
	assert_int_equal(snap_file_record(&f, 0, &r), 0);
	assert_int_equal(r.type, SNAP_REC_SLOT);
	assert_string_equal(r.id, "vmgenid");

	/* The same machine again: accepted. */
	devmgr_init(&dm, &fx->gm, NULL, NULL);
	assert_int_equal(vmgenid_add(&dm, NULL), 0);
	assert_int_equal(devmgr_restore(&dm, &f, why, sizeof(why)), 0);
	devmgr_destroy(&dm);
	/* Without the device: refused. */
	devmgr_init(&dm, &fx->gm, NULL, NULL);
	assert_int_equal(devmgr_restore(&dm, &f, why, sizeof(why)), -EINVAL);
	acpi_tool_expect(why, "'vmgenid' is in the snapshot but not in this VM", "why");
	devmgr_destroy(&dm);
	/* On another line: refused. */
	devmgr_init(&dm, &fx->gm, NULL, NULL);
	assert_int_equal(devmgr_reserve_line(&dm, "vmgenid", 22, &d), 0);
	assert_int_equal(vmgenid_create(&fx->gm, LAYOUT_VMGENID_ADDR, &d->irq, &v), 0);
	assert_int_equal(devmgr_attach(&dm, d, &vmgenid_ops, v), 0);
	assert_int_equal(devmgr_restore(&dm, &f, why, sizeof(why)), -EINVAL);
	acpi_tool_expect(why, "(GSI 23), this VM at 0+0 (GSI 22)", "why");
	devmgr_destroy(&dm);
	snap_writer_free(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_slot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_allocator_leaves_the_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_boot_generation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_new_generation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_create_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dsdt_and_layout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_acpi, setup, teardown),
		cmocka_unit_test_setup_teardown(test_iasl, setup, teardown),
		cmocka_unit_test_setup_teardown(test_slot_record, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
