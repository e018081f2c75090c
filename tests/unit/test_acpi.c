/* ACPI tables: built over a DeviceManager holding fake devices, then checked byte by byte
 * (ACPI 6.4 §5.2) and by iasl disassembly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "acpi_tools.h"
#include "arch/x86/layout.h"
#include "core/devmgr.h"
#include "platform/acpi/acpi.h"
#include "platform/acpi/aml.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define BUF_SIZE (LAYOUT_ACPI_END - LAYOUT_ACPI_START)

/* A fake virtio-mmio device that describes itself the way the real transport does. */
struct fake_mmio {
	char name[5];
};

static int fake_mmio_describe(void *dev, const struct dm_dev *slot, struct dm_describe *ctx)
{
	struct fake_mmio *f = dev;

	if (!ctx->dsdt)
		return 0;
	return aml_mmio_device(ctx->dsdt, f->name, "LNRO0005", slot->index, slot->base,
			       (uint32_t)slot->len, slot->has_irq ? (int)slot->irq.gsi : -1,
			       slot->irq.level);
}

static const struct dev_ops fake_mmio_ops = {
	.name = "fake-mmio",
	.sizes = BUS_SZ4,
	.describe = fake_mmio_describe,
};

/* A fake COM1 describing itself as a PNP0501 port device. */
static int fake_com_describe(void *dev, const struct dm_dev *slot, struct dm_describe *ctx)
{
	if (!ctx->dsdt)
		return 0;
	return aml_pio_device(ctx->dsdt, "COM1", "PNP0501", 0, (uint16_t)slot->base,
			      (uint8_t)slot->len, (int)slot->irq.gsi);
}

static const struct dev_ops fake_com_ops = {
	.name = "fake-com",
	.sizes = BUS_SZ1,
	.describe = fake_com_describe,
};

struct fixture {
	struct devmgr dm;
	struct fake_mmio mmio[2];
	uint8_t *buf;
	uint64_t rsdp_gpa;
	size_t used;
	char tmpdir[32]; /* iasl scratch directory, removed by teardown even after a failure */
};

static void add_mmio(struct fixture *fx, int i, const char *id, uint64_t len)
{
	struct dm_dev *d;

	snprintf(fx->mmio[i].name, sizeof(fx->mmio[i].name), "V%03d", i & 7);
	assert_int_equal(devmgr_reserve_mmio(&fx->dm, id, len, true, &d), 0);
	assert_int_equal(devmgr_attach(&fx->dm, d, &fake_mmio_ops, &fx->mmio[i]), 0);
}

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	struct dm_dev *d;

	assert_non_null(fx);
	devmgr_init(&fx->dm, NULL, NULL, NULL);
	assert_int_equal(
		devmgr_reserve_pio(&fx->dm, "com1", LAYOUT_PORT_COM1, 8, LAYOUT_GSI_COM1, &d), 0);
	assert_int_equal(devmgr_attach(&fx->dm, d, &fake_com_ops, NULL), 0);
	add_mmio(fx, 0, "virtio-blk0", 0x200);
	add_mmio(fx, 1, "virtio-net0", 0x200);
	fx->buf = calloc(1, BUF_SIZE);
	assert_non_null(fx->buf);
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
	free(fx->buf);
	free(fx);
	return 0;
}

static uint16_t le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
	return le32(p) | (uint64_t)le32(p + 4) << 32;
}

static uint8_t sum(const uint8_t *p, size_t n)
{
	uint8_t s = 0;

	while (n--)
		s = (uint8_t)(s + *p++);
	return s;
}

/* Host pointer for a guest address inside the tables, bounds-checked. */
static const uint8_t *at(const struct fixture *fx, uint64_t gpa, size_t len)
{
	assert_true(gpa >= LAYOUT_ACPI_START);
	assert_true(gpa - LAYOUT_ACPI_START + len <= fx->used);
	return fx->buf + (gpa - LAYOUT_ACPI_START);
}

/* Check a table's header: signature, length within the tables, checksum; return it. */
static const uint8_t *table(const struct fixture *fx, uint64_t gpa, const char *sig, uint8_t rev)
{
	const uint8_t *t = at(fx, gpa, 36);
	uint32_t len = le32(t + 4);

	assert_memory_equal(t, sig, 4);
	assert_true(len >= 36);
	at(fx, gpa, len);
	assert_int_equal(sum(t, len), 0);
	assert_int_equal(t[8], rev);
	assert_memory_equal(t + 10, "IGNITN", 6);
	assert_memory_equal(t + 16, "IGNITION", 8);
	return t;
}

static void build(struct fixture *fx, unsigned nr_cpus)
{
	struct acpi_config cfg = {
		.nr_cpus = nr_cpus,
		.buf = fx->buf,
		.buf_size = BUF_SIZE,
		.buf_gpa = LAYOUT_ACPI_START,
	};

	memset(fx->buf, 0xa5, BUF_SIZE);
	assert_int_equal(acpi_build(&cfg, &fx->dm, &fx->rsdp_gpa, &fx->used), 0);
	assert_true(fx->used > 0 && fx->used <= BUF_SIZE);
}

struct tables {
	const uint8_t *rsdp, *xsdt, *fadt, *madt, *dsdt;
};

static void check_tables(struct fixture *fx, unsigned nr_cpus, struct tables *out)
{
	const uint8_t *rsdp, *xsdt, *fadt, *madt, *dsdt;
	unsigned counts[16] = { 0 };
	uint32_t len;
	uint64_t gpa;

	/* RSDP (§5.2.5.3): 16-byte aligned, both checksums, revision 2, XSDT address. */
	assert_int_equal(fx->rsdp_gpa % 16, 0);
	rsdp = at(fx, fx->rsdp_gpa, 36);
	assert_memory_equal(rsdp, "RSD PTR ", 8);
	assert_int_equal(sum(rsdp, 20), 0);
	assert_int_equal(sum(rsdp, 36), 0);
	assert_int_equal(rsdp[15], 2);
	assert_int_equal(le32(rsdp + 20), 36);
	assert_memory_equal(rsdp + 9, "IGNITN", 6);

	/* XSDT (§5.2.8): FADT and MADT. */
	gpa = le64(rsdp + 24);
	assert_int_equal(gpa % 8, 0);
	xsdt = table(fx, gpa, "XSDT", 1);
	assert_int_equal(le32(xsdt + 4), 36 + 2 * 8);
	fadt = table(fx, le64(xsdt + 36), "FACP", 6);
	madt = table(fx, le64(xsdt + 44), "APIC", 5);

	/* FADT (§5.2.9): revision 6.4, hardware-reduced, reset and sleep registers. */
	assert_int_equal(le32(fadt + 4), 276);
	assert_int_equal(fadt[131], 4);
	assert_int_equal(le32(fadt + 112) & (1u << 20), 1u << 20); /* HW_REDUCED_ACPI */
	assert_int_equal(le32(fadt + 112) & (1u << 10), 1u << 10); /* RESET_REG_SUP */
	assert_int_equal(le32(fadt + 112) & (3u << 4), 3u << 4);   /* no fixed buttons */
	assert_int_equal(le16(fadt + 46), 0);			   /* no SCI */
	assert_int_equal(le16(fadt + 109), 1u << 2); /* no VGA; no 8042 probe; CMOS RTC present */
	assert_int_equal(le32(fadt + 36), 0);	     /* no FACS */
	assert_int_equal(le64(fadt + 132), 0);
	/* RESET_REG: SystemIO, 8 bits, byte access, LAYOUT_ACPI_RESET; value. */
	assert_memory_equal(fadt + 116, ((const uint8_t[]){ 1, 8, 0, 1 }), 4);
	assert_int_equal(le64(fadt + 120), LAYOUT_ACPI_RESET);
	assert_int_equal(fadt[128], LAYOUT_ACPI_RESET_VAL);
	/* SLEEP_CONTROL_REG / SLEEP_STATUS_REG. */
	assert_memory_equal(fadt + 244, ((const uint8_t[]){ 1, 8, 0, 1 }), 4);
	assert_int_equal(le64(fadt + 248), LAYOUT_ACPI_SLEEP_CTL);
	assert_memory_equal(fadt + 256, ((const uint8_t[]){ 1, 8, 0, 1 }), 4);
	assert_int_equal(le64(fadt + 260), LAYOUT_ACPI_SLEEP_STS);
	assert_memory_equal(fadt + 268, "IGNITION", 8);
	/* DSDT and X_DSDT agree. */
	gpa = le64(fadt + 140);
	assert_int_equal(le32(fadt + 40), gpa);
	dsdt = table(fx, gpa, "DSDT", 2);

	/* MADT (§5.2.12): LAPIC address, PCAT_COMPAT, entries. */
	assert_int_equal(le32(madt + 36), LAYOUT_LAPIC_ADDR);
	assert_int_equal(le32(madt + 40), 1);
	len = le32(madt + 4);
	for (uint32_t off = 44; off < len;) {
		const uint8_t *e = madt + off;

		assert_true(e[1] >= 2 && off + e[1] <= len);
		assert_true(e[0] < 16);
		counts[e[0]]++;
		switch (e[0]) {
		case 0: /* Processor Local APIC */
			assert_int_equal(e[1], 8);
			assert_int_equal(e[3], counts[0] - 1); /* APIC ids 0..n-1 in order */
			assert_int_equal(e[2], e[3]);
			assert_int_equal(le32(e + 4), 1); /* enabled */
			break;
		case 1: /* I/O APIC */
			assert_int_equal(e[1], 12);
			assert_true(e[2] >= nr_cpus); /* id clashes with no APIC id */
			assert_int_equal(le32(e + 4), LAYOUT_IOAPIC_ADDR);
			assert_int_equal(le32(e + 8), 0);
			break;
		case 2: /* Interrupt Source Override IRQ0 -> GSI2 */
			assert_int_equal(e[1], 10);
			assert_int_equal(e[2], 0);
			assert_int_equal(e[3], 0);
			assert_int_equal(le32(e + 4), 2);
			break;
		case 4: /* Local APIC NMI on LINT1 */
			assert_int_equal(e[1], 6);
			assert_int_equal(e[5], 1);
			break;
		default:
			fail_msg("unexpected MADT entry type %u", e[0]);
		}
		off += e[1];
	}
	assert_int_equal(counts[0], nr_cpus);
	assert_int_equal(counts[1], 1);
	assert_int_equal(counts[2], 1);
	assert_int_equal(counts[4], 1);

	/* DSDT body: Name(_S5, Package() { 5, 0, 0, 0 }), then Scope(_SB) spanning the rest. */
	len = le32(dsdt + 4);
	assert_memory_equal(dsdt + 36, "\x08_S5_\x12\x07\x04\x0a\x05\x00\x00\x00", 13);
	assert_int_equal(dsdt[36 + 13], 0x10);
	{
		const uint8_t *pl = dsdt + 36 + 14;
		int n = (pl[0] >> 6) + 1;
		size_t v = n == 1 ? pl[0] & 0x3fu : (pl[0] & 0x0fu) | (size_t)pl[1] << 4;

		assert_true(n <= 2);
		assert_int_equal(v, len - 36 - 14); /* the Scope runs to the end of the table */
		assert_memory_equal(pl + n, "_SB_", 4);
	}
	assert_non_null(memmem(dsdt, len, "LNRO0005", 8));
	assert_non_null(memmem(dsdt, len, "COM1", 4));

	/* 16-byte alignment of every table, padding zeroed (the buffer was 0xa5-filled). */
	assert_int_equal((xsdt - fx->buf) % 16, 0);
	assert_int_equal((fadt - fx->buf) % 16, 0);
	assert_int_equal((madt - fx->buf) % 16, 0);
	assert_int_equal((dsdt - fx->buf) % 16, 0);
	for (size_t i = 36; i < (size_t)(xsdt - fx->buf); i++)
		assert_int_equal(fx->buf[i], 0);
	assert_int_equal(fx->used, (size_t)(dsdt - fx->buf) + le32(dsdt + 4));
	assert_int_equal(fx->buf[fx->used], 0xa5); /* nothing written past the end */

	if (out)
		*out = (struct tables){ rsdp, xsdt, fadt, madt, dsdt };
}

static void test_tables_1cpu(void **state)
{
	struct fixture *fx = *state;

	build(fx, 1);
	check_tables(fx, 1, NULL);
}

static void test_tables_4cpus(void **state)
{
	struct fixture *fx = *state;

	build(fx, 4);
	check_tables(fx, 4, NULL);
}

static void test_tables_max_cpus(void **state)
{
	struct fixture *fx = *state;

	build(fx, ACPI_MAX_CPUS);
	check_tables(fx, ACPI_MAX_CPUS, NULL);
}

static void test_no_devices(void **state)
{
	struct fixture *fx = *state;
	struct acpi_config cfg = {
		.nr_cpus = 2, .buf = fx->buf, .buf_size = BUF_SIZE, .buf_gpa = LAYOUT_ACPI_START
	};
	const uint8_t *dsdt;

	assert_int_equal(acpi_build(&cfg, NULL, &fx->rsdp_gpa, &fx->used), 0);
	assert_int_equal(fx->rsdp_gpa, LAYOUT_ACPI_START);
	dsdt = fx->buf + fx->used - 36 - 13 - 6;
	/* DSDT body: Name(_S5, ...) (13 bytes) then an empty Scope(_SB) (6 bytes). */
	assert_memory_equal(dsdt, "DSDT", 4);
	assert_int_equal(sum(dsdt, le32(dsdt + 4)), 0);
	assert_memory_equal(dsdt + 36 + 13, "\x10\x05_SB_", 6);
}

static void test_bad_config(void **state)
{
	struct fixture *fx = *state;
	struct acpi_config cfg = {
		.nr_cpus = 0, .buf = fx->buf, .buf_size = BUF_SIZE, .buf_gpa = LAYOUT_ACPI_START
	};

	assert_int_equal(acpi_build(&cfg, &fx->dm, &fx->rsdp_gpa, &fx->used), -EINVAL);
	cfg.nr_cpus = ACPI_MAX_CPUS + 1;
	assert_int_equal(acpi_build(&cfg, &fx->dm, &fx->rsdp_gpa, &fx->used), -EINVAL);
	cfg.nr_cpus = 1;
	cfg.buf_gpa = LAYOUT_ACPI_START + 8; /* RSDP would not be 16-byte aligned */
	assert_int_equal(acpi_build(&cfg, &fx->dm, &fx->rsdp_gpa, &fx->used), -EINVAL);
}

static void test_enospc(void **state)
{
	struct fixture *fx = *state;
	struct acpi_config cfg = {
		.nr_cpus = 4, .buf = fx->buf, .buf_size = BUF_SIZE, .buf_gpa = LAYOUT_ACPI_START
	};
	uint64_t rsdp = 0x1234;
	size_t used = 0x5678, need;

	assert_int_equal(acpi_build(&cfg, &fx->dm, &rsdp, &used), 0);
	need = used;
	/* One byte short, and a tiny buffer: -ENOSPC, outputs untouched, buffer untouched. */
	memset(fx->buf, 0xa5, BUF_SIZE);
	rsdp = 0x1234;
	used = 0x5678;
	cfg.buf_size = need - 1;
	assert_int_equal(acpi_build(&cfg, &fx->dm, &rsdp, &used), -ENOSPC);
	cfg.buf_size = 16;
	assert_int_equal(acpi_build(&cfg, &fx->dm, &rsdp, &used), -ENOSPC);
	assert_int_equal(rsdp, 0x1234);
	assert_int_equal(used, 0x5678);
	assert_int_equal(fx->buf[0], 0xa5);
	cfg.buf_size = need;
	assert_int_equal(acpi_build(&cfg, &fx->dm, &rsdp, &used), 0);
	assert_int_equal(used, need);
}

/* A device whose describe fails makes the whole build fail with its error. */
static int failing_describe(void *dev, const struct dm_dev *slot, struct dm_describe *ctx)
{
	return -EIO;
}

static void test_describe_error(void **state)
{
	static const struct dev_ops bad_ops = { .name = "bad", .describe = failing_describe };
	struct fixture *fx = *state;
	struct acpi_config cfg = {
		.nr_cpus = 1, .buf = fx->buf, .buf_size = BUF_SIZE, .buf_gpa = LAYOUT_ACPI_START
	};
	struct dm_dev *d;

	assert_int_equal(devmgr_reserve_mmio(&fx->dm, "bad0", 0x1000, false, &d), 0);
	assert_int_equal(devmgr_attach(&fx->dm, d, &bad_ops, NULL), 0);
	assert_int_equal(acpi_build(&cfg, &fx->dm, &fx->rsdp_gpa, &fx->used), -EIO);
}

/* ---- iasl ---- */

/* Disassemble a table with iasl, compile the result back, and require the recompiled table's
 * body to equal ours byte for byte (the header differs: iasl puts in its own compiler id). */
static char *iasl_round_trip(const char *dir, const char *name, const uint8_t *t)
{
	char args[128], file[64], *out, *back;
	uint32_t len = le32(t + 4);
	size_t back_len;

	snprintf(file, sizeof(file), "%s.dat", name);
	acpi_tool_write(dir, file, t, len);
	snprintf(args, sizeof(args), "-d %s.dat", name);
	free(acpi_tool_run(dir, "iasl", args, 0));
	snprintf(args, sizeof(args), "-p %s2 %s.dsl", name, name);
	out = acpi_tool_run(dir, "iasl", args, 0);
	acpi_tool_expect(out, "Compilation successful. 0 Errors, 0 Warnings, 0 Remarks", args);
	free(out);
	snprintf(file, sizeof(file), "%s2.aml", name);
	back = acpi_tool_read(dir, file, &back_len);
	if (back_len != len || memcmp(back + 36, t + 36, len - 36))
		fail_msg("%s: recompiled table differs from the original", name);
	free(back);
	snprintf(file, sizeof(file), "%s.dsl", name);
	return acpi_tool_read(dir, file, NULL);
}

static void test_iasl(void **state)
{
	struct fixture *fx = *state;
	char *dir = fx->tmpdir;
	struct tables t;
	char *dsl;

	if (!acpi_tool_have("iasl")) {
		print_message("iasl not installed: skipping\n");
		skip();
	}
	build(fx, 4);
	check_tables(fx, 4, &t);
	snprintf(dir, sizeof(fx->tmpdir), "/tmp/ignition-acpi-XXXXXX");
	assert_non_null(mkdtemp(dir));

	/* (iasl 20200925 cannot disassemble a stand-alone RSDP; check_tables covers it.) */
	free(iasl_round_trip(dir, "xsdt", t.xsdt));

	dsl = iasl_round_trip(dir, "dsdt", t.dsdt);
	acpi_tool_expect(dsl, "Name (_S5, Package (0x04)", "dsdt.dsl");
	acpi_tool_expect(dsl, "Scope (_SB)", "dsdt.dsl");
	acpi_tool_expect(dsl, "Device (V000)", "dsdt.dsl");
	acpi_tool_expect(dsl, "Device (V001)", "dsdt.dsl");
	acpi_tool_expect(dsl, "Name (_HID, \"LNRO0005\")", "dsdt.dsl");
	acpi_tool_expect(dsl, "Memory32Fixed (ReadWrite,", "dsdt.dsl");
	acpi_tool_expect(dsl, "0xC0000000,         // Address Base", "dsdt.dsl");
	acpi_tool_expect(dsl, "0xC0001000,         // Address Base", "dsdt.dsl");
	acpi_tool_expect(dsl, "0x00001000,         // Address Length", "dsdt.dsl");
	/* The virtio-mmio lines are level-triggered, active-high (the VM holds them asserted
	 * while InterruptStatus is nonzero). */
	acpi_tool_expect(dsl, "Interrupt (ResourceConsumer, Level, ActiveHigh, Exclusive, ,, )",
			 "dsdt.dsl");
	assert_null(strstr(dsl, "Interrupt (ResourceConsumer, Edge"));
	acpi_tool_expect(dsl, "0x00000005,", "dsdt.dsl");
	acpi_tool_expect(dsl, "0x00000006,", "dsdt.dsl");
	acpi_tool_expect(dsl, "Device (COM1)", "dsdt.dsl");
	acpi_tool_expect(dsl, "EisaId (\"PNP0501\")", "dsdt.dsl");
	acpi_tool_expect(dsl, "IO (Decode16,", "dsdt.dsl");
	acpi_tool_expect(dsl, "0x03F8,             // Range Minimum", "dsdt.dsl");
	acpi_tool_expect(dsl, "IRQNoFlags ()", "dsdt.dsl");
	acpi_tool_expect(dsl, "{4}", "dsdt.dsl");
	free(dsl);

	dsl = iasl_round_trip(dir, "facp", t.fadt);
	acpi_tool_expect(dsl, "Hardware Reduced (V5) : 1", "facp.dsl");
	acpi_tool_expect(dsl, "Reset Register Supported (V2) : 1", "facp.dsl");
	acpi_tool_expect(dsl, "Value to cause reset : 01", "facp.dsl");
	acpi_tool_expect(dsl, "Address : 0000000000000600", "facp.dsl");
	acpi_tool_expect(dsl, "Address : 0000000000000601", "facp.dsl");
	acpi_tool_expect(dsl, "Address : 0000000000000602", "facp.dsl");
	free(dsl);

	dsl = iasl_round_trip(dir, "apic", t.madt);
	acpi_tool_expect(dsl, "Local Apic Address : FEE00000", "apic.dsl");
	acpi_tool_expect(dsl, "Local Apic ID : 03", "apic.dsl");
	acpi_tool_expect(dsl, "I/O Apic ID : 04", "apic.dsl");
	acpi_tool_expect(dsl, "Address : FEC00000", "apic.dsl");
	acpi_tool_expect(dsl, "Interrupt : 00000002", "apic.dsl");
	free(dsl);

	/* Load our FADT, MADT and DSDT into the ACPICA interpreter (the code Linux runs):
	 * evaluate the nodes, and enter S5, which must take the hardware-reduced path through
	 * the FADT sleep registers. */
	if (acpi_tool_have("acpiexec")) {
		char *out = acpi_tool_run(
			dir, "acpiexec",
			"-b 'evaluate \\_S5; evaluate \\_SB.V001._CRS; "
			"evaluate \\_SB.COM1._HID; sleep 5' facp.dat apic.dat dsdt.dat",
			0);

		acpi_tool_expect(out, "3 Devices", "acpiexec");
		acpi_tool_expect(out, "[Integer] = 0000000000000005", "acpiexec");
		/* ... 89 06 00 01: Interrupt(ResourceConsumer, Level, ActiveHigh, Exclusive). */
		acpi_tool_expect(out, "0000: 86 09 00 01 00 10 00 C0 00 10 00 00 89 06 00 01",
				 "acpiexec");
		acpi_tool_expect(out, "[Integer] = 000000000105D041", "acpiexec");
		acpi_tool_expect(out, "Sleep-A: 05", "acpiexec");
		acpi_tool_expect(out, "HwExtendedSleep", "acpiexec");
		free(out);
	} else {
		print_message("acpiexec not installed: AML not executed\n");
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_tables_1cpu, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tables_4cpus, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tables_max_cpus, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_devices, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_config, setup, teardown),
		cmocka_unit_test_setup_teardown(test_enospc, setup, teardown),
		cmocka_unit_test_setup_teardown(test_describe_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_iasl, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
