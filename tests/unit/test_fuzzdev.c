/* The fuzz device: registers read through the bus as a guest does, hostile accesses (sizes,
 * offsets, read-only registers, unknown doorbells), the doorbell callback, the windows and the
 * memory-slot hook, its DSDT node (bytes and iasl) and command-line entry, its snapshot
 * record, and vcpu_request_exit off a vCPU thread. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "acpi_tools.h"
#include "arch/x86/layout.h"
#include "core/devmgr.h"
#include "core/power.h"
#include "core/vcpu.h"
#include "devices/boot_timer.h"
#include "devices/fuzz.h"
#include "platform/acpi/aml.h"
#include "snap_edit.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_SLOTS 4

struct fixture {
	struct devmgr dm;
	struct fuzzdev *f;
	uint64_t regs; /* the register window's GPA */
	struct {
		uint64_t gpa, size;
		void *hva;
	} slots[MAX_SLOTS];
	int nr_slots;
	int fail_slot; /* >= 0: the hook fails on that call */
	/* doorbell callback log */
	int calls;
	enum fuzz_doorbell last_cmd;
	uint32_t last_code;
	uint32_t len_seen; /* INPUT_LEN the guest would read during the callback */
	char tmpdir[32];
};

static int fake_mem_slot(void *ctx, uint64_t gpa, void *hva, uint64_t size)
{
	struct fixture *fx = ctx;

	if (fx->nr_slots == fx->fail_slot)
		return -ENOSPC;
	assert_true(fx->nr_slots < MAX_SLOTS);
	fx->slots[fx->nr_slots].gpa = gpa;
	fx->slots[fx->nr_slots].hva = hva;
	fx->slots[fx->nr_slots].size = size;
	fx->nr_slots++;
	return 0;
}

static uint32_t rd(struct fixture *fx, uint64_t off, unsigned size)
{
	uint64_t v = 0;

	assert_true(bus_read(&fx->dm.mmio, fx->regs + off, &v, size));
	return (uint32_t)v;
}

static void wr(struct fixture *fx, uint64_t off, unsigned size, uint64_t v)
{
	assert_true(bus_write(&fx->dm.mmio, fx->regs + off, &v, size));
}

static void on_doorbell(void *ctx, enum fuzz_doorbell cmd, uint32_t code)
{
	struct fixture *fx = ctx;
	uint8_t *in;
	size_t size;

	fx->calls++;
	fx->last_cmd = cmd;
	fx->last_code = code;
	/* What a fuzzer does on SNAPSHOT_ME/DONE: put the next input in the window. */
	if (cmd != FUZZ_DOORBELL_CRASH) {
		fuzzdev_input(fx->f, &in, &size);
		memcpy(in, "abc", 3);
		assert_int_equal(fuzzdev_set_input_len(fx->f, 3), 0);
	}
}

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	struct devmgr_hooks hooks = { .mem_slot = fake_mem_slot };
	struct dm_dev *slot;

	assert_non_null(fx);
	fx->fail_slot = -1;
	hooks.ctx = fx;
	devmgr_init(&fx->dm, NULL, NULL, &hooks);
	/* As in a machine: the boot timer first, the fuzz device after. */
	assert_int_equal(boot_timer_add(&fx->dm, NULL), 0);
	assert_int_equal(fuzzdev_add(&fx->dm, NULL, &fx->f), 0);
	slot = devmgr_find(&fx->dm, FUZZDEV_ID);
	assert_non_null(slot);
	fx->regs = slot->base;
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;
	char cmd[64];

	devmgr_destroy(&fx->dm);
	if (fx->tmpdir[0]) {
		snprintf(cmd, sizeof(cmd), "rm -rf %s", fx->tmpdir);
		if (system(cmd) != 0)
			print_message("cannot remove %s\n", fx->tmpdir);
	}
	free(fx);
	return 0;
}

/* The slot, the windows, and the hook that made them guest memory. */
static void test_slot_and_windows(void **state)
{
	struct fixture *fx = *state;
	struct dm_dev *slot = devmgr_find(&fx->dm, FUZZDEV_ID);
	uint8_t *in, *cov;
	size_t in_size, cov_size;

	assert_int_equal(slot->kind, DM_MMIO);
	assert_int_equal(slot->base, LAYOUT_MMIO_START + LAYOUT_MMIO_SLOT_SIZE);
	assert_int_equal(slot->len, FUZZDEV_REG_SIZE);
	assert_false(slot->has_irq);
	assert_int_equal(fuzzdev_regs_gpa(fx->f), slot->base);
	fuzzdev_input(fx->f, &in, &in_size);
	fuzzdev_coverage(fx->f, &cov, &cov_size);
	assert_int_equal(in_size, FUZZDEV_INPUT_SIZE);
	assert_int_equal(cov_size, FUZZDEV_COV_SIZE);
	/* Two slots, each exactly one window, at the layout's addresses. */
	assert_int_equal(fx->nr_slots, 2);
	assert_int_equal(fx->slots[0].gpa, LAYOUT_FUZZ_INPUT_ADDR);
	assert_ptr_equal(fx->slots[0].hva, in);
	assert_int_equal(fx->slots[0].size, in_size);
	assert_int_equal(fx->slots[1].gpa, LAYOUT_FUZZ_COV_ADDR);
	assert_ptr_equal(fx->slots[1].hva, cov);
	assert_int_equal(fx->slots[1].size, cov_size);
	/* Host memory, zeroed, writable end to end. */
	assert_int_equal(in[0] | in[in_size - 1] | cov[0] | cov[cov_size - 1], 0);
	in[in_size - 1] = 1;
	cov[cov_size - 1] = 1;
	/* Outside RAM, in the hole, not over another device's window or the IOAPIC. */
	assert_true(LAYOUT_FUZZ_INPUT_ADDR >= LAYOUT_MMIO_HOLE_START);
	assert_true(LAYOUT_FUZZ_COV_ADDR + cov_size <= LAYOUT_IOAPIC_ADDR);
	assert_true(LAYOUT_FUZZ_INPUT_ADDR >= LAYOUT_MMIO_START + LAYOUT_MMIO_SIZE);
}

/* What a guest reads, register by register. */
static void test_registers(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(rd(fx, FUZZDEV_REG_MAGIC, 4), FUZZDEV_MAGIC);
	/* "IGFZ" in memory order. */
	assert_memory_equal(&(uint32_t){ rd(fx, FUZZDEV_REG_MAGIC, 4) }, "IGFZ", 4);
	assert_int_equal(rd(fx, FUZZDEV_REG_VERSION, 4), FUZZDEV_VERSION);
	assert_int_equal(rd(fx, FUZZDEV_REG_INPUT_GPA, 4), (uint32_t)LAYOUT_FUZZ_INPUT_ADDR);
	assert_int_equal(rd(fx, FUZZDEV_REG_INPUT_GPA_HI, 4), LAYOUT_FUZZ_INPUT_ADDR >> 32);
	assert_int_equal(rd(fx, FUZZDEV_REG_INPUT_SIZE, 4), FUZZDEV_INPUT_SIZE);
	assert_int_equal(rd(fx, FUZZDEV_REG_COV_GPA, 4), (uint32_t)LAYOUT_FUZZ_COV_ADDR);
	assert_int_equal(rd(fx, FUZZDEV_REG_COV_GPA_HI, 4), LAYOUT_FUZZ_COV_ADDR >> 32);
	assert_int_equal(rd(fx, FUZZDEV_REG_COV_SIZE, 4), FUZZDEV_COV_SIZE);
	assert_int_equal(rd(fx, FUZZDEV_REG_INPUT_LEN, 4), 0);
	assert_int_equal(rd(fx, FUZZDEV_REG_CRASH_CODE, 4), 0);
	assert_int_equal(rd(fx, FUZZDEV_REG_DOORBELL, 4), 0);
	/* INPUT_LEN follows the host, within the window only. */
	assert_int_equal(fuzzdev_set_input_len(fx->f, 1234), 0);
	assert_int_equal(rd(fx, FUZZDEV_REG_INPUT_LEN, 4), 1234);
	assert_int_equal(fuzzdev_set_input_len(fx->f, FUZZDEV_INPUT_SIZE), 0);
	assert_int_equal(rd(fx, FUZZDEV_REG_INPUT_LEN, 4), FUZZDEV_INPUT_SIZE);
	assert_int_equal(fuzzdev_set_input_len(fx->f, FUZZDEV_INPUT_SIZE + 1), -EINVAL);
	assert_int_equal(rd(fx, FUZZDEV_REG_INPUT_LEN, 4), FUZZDEV_INPUT_SIZE);
	/* CRASH_CODE is the guest's. */
	wr(fx, FUZZDEV_REG_CRASH_CODE, 4, 0xdeadbeef);
	assert_int_equal(rd(fx, FUZZDEV_REG_CRASH_CODE, 4), 0xdeadbeef);
}

/* A guest is hostile: wrong sizes, offsets and values change nothing and read 0. */
static void test_hostile_accesses(void **state)
{
	struct fixture *fx = *state;
	static const unsigned sizes[] = { 1, 2, 8 };
	static const uint32_t bells[] = { 0, 4, 5, 0x80000001u, 0xffffffffu };

	fuzzdev_on_doorbell(fx->f, on_doorbell, fx);
	assert_int_equal(fuzzdev_set_input_len(fx->f, 7), 0);
	/* Other sizes read 0, even at MAGIC, and their writes are dropped. */
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		uint64_t v = ~0ull;

		assert_true(bus_read(&fx->dm.mmio, fx->regs, &v, sizes[i]));
		assert_int_equal(v & (sizes[i] == 8 ? ~0ull : (1ull << (8 * sizes[i])) - 1), 0);
		wr(fx, FUZZDEV_REG_CRASH_CODE, sizes[i], 0x55);
		wr(fx, FUZZDEV_REG_DOORBELL, sizes[i], FUZZ_DOORBELL_DONE);
	}
	assert_int_equal(rd(fx, FUZZDEV_REG_CRASH_CODE, 4), 0);
	/* Unaligned and unknown offsets, up to the window's last bytes. */
	for (uint64_t off = 0x1; off < 0x30; off++)
		if (off % 4)
			assert_int_equal(rd(fx, off, 4), 0);
	assert_int_equal(rd(fx, 0x2c, 4), 0);
	assert_int_equal(rd(fx, 0x800, 4), 0);
	assert_int_equal(rd(fx, FUZZDEV_REG_SIZE - 4, 4), 0);
	wr(fx, 0x2c, 4, FUZZ_DOORBELL_DONE);
	wr(fx, FUZZDEV_REG_SIZE - 4, 4, FUZZ_DOORBELL_DONE);
	wr(fx, FUZZDEV_REG_DOORBELL + 1, 4, FUZZ_DOORBELL_DONE);
	/* Read-only registers keep their values. */
	for (uint64_t off = FUZZDEV_REG_MAGIC; off <= FUZZDEV_REG_INPUT_LEN; off += 4)
		wr(fx, off, 4, 0x41414141);
	assert_int_equal(rd(fx, FUZZDEV_REG_MAGIC, 4), FUZZDEV_MAGIC);
	assert_int_equal(rd(fx, FUZZDEV_REG_INPUT_SIZE, 4), FUZZDEV_INPUT_SIZE);
	assert_int_equal(rd(fx, FUZZDEV_REG_COV_GPA, 4), (uint32_t)LAYOUT_FUZZ_COV_ADDR);
	assert_int_equal(rd(fx, FUZZDEV_REG_COV_SIZE, 4), FUZZDEV_COV_SIZE);
	assert_int_equal(rd(fx, FUZZDEV_REG_INPUT_LEN, 4), 7);
	/* Unknown doorbells. */
	for (size_t i = 0; i < sizeof(bells) / sizeof(bells[0]); i++)
		wr(fx, FUZZDEV_REG_DOORBELL, 4, bells[i]);
	assert_int_equal(fx->calls, 0);
	for (int c = FUZZ_DOORBELL_SNAPSHOT_ME; c <= FUZZ_DOORBELL_CRASH; c++)
		assert_int_equal(fuzzdev_doorbells(fx->f, (enum fuzz_doorbell)c), 0);
	assert_int_equal(fuzzdev_doorbells(fx->f, (enum fuzz_doorbell)0), 0);
	assert_int_equal(fuzzdev_doorbells(fx->f, (enum fuzz_doorbell)99), 0);
}

/* Each doorbell reaches the callback once, with CRASH_CODE for a crash only. */
static void test_doorbells(void **state)
{
	struct fixture *fx = *state;

	/* Without a callback: counted, nothing else. */
	wr(fx, FUZZDEV_REG_DOORBELL, 4, FUZZ_DOORBELL_DONE);
	assert_int_equal(fuzzdev_doorbells(fx->f, FUZZ_DOORBELL_DONE), 1);

	fuzzdev_on_doorbell(fx->f, on_doorbell, fx);
	wr(fx, FUZZDEV_REG_CRASH_CODE, 4, 77);
	wr(fx, FUZZDEV_REG_DOORBELL, 4, FUZZ_DOORBELL_SNAPSHOT_ME);
	assert_int_equal(fx->calls, 1);
	assert_int_equal(fx->last_cmd, FUZZ_DOORBELL_SNAPSHOT_ME);
	assert_int_equal(fx->last_code, 0);
	/* The input the callback wrote is what the guest reads next. */
	assert_int_equal(rd(fx, FUZZDEV_REG_INPUT_LEN, 4), 3);

	wr(fx, FUZZDEV_REG_DOORBELL, 4, FUZZ_DOORBELL_DONE);
	assert_int_equal(fx->calls, 2);
	assert_int_equal(fx->last_cmd, FUZZ_DOORBELL_DONE);
	assert_int_equal(fx->last_code, 0);

	wr(fx, FUZZDEV_REG_CRASH_CODE, 4, FUZZ_CRASH_SANITIZER);
	wr(fx, FUZZDEV_REG_DOORBELL, 4, FUZZ_DOORBELL_CRASH);
	assert_int_equal(fx->calls, 3);
	assert_int_equal(fx->last_cmd, FUZZ_DOORBELL_CRASH);
	assert_int_equal(fx->last_code, FUZZ_CRASH_SANITIZER);

	assert_int_equal(fuzzdev_doorbells(fx->f, FUZZ_DOORBELL_SNAPSHOT_ME), 1);
	assert_int_equal(fuzzdev_doorbells(fx->f, FUZZ_DOORBELL_DONE), 2);
	assert_int_equal(fuzzdev_doorbells(fx->f, FUZZ_DOORBELL_CRASH), 1);
	/* Off a vCPU thread there is no exit to leave (the callback may still ask). */
	assert_false(vcpu_request_exit());
	/* A reset (guest reboot) clears the length and the code, not the windows. */
	fuzzdev_ops.reset(fx->f);
	assert_int_equal(rd(fx, FUZZDEV_REG_INPUT_LEN, 4), 0);
	assert_int_equal(rd(fx, FUZZDEV_REG_CRASH_CODE, 4), 0);
}

/* Bad window sizes and a failing hook leave nothing behind. */
static void test_create_refusals(void **state)
{
	struct fixture *fx = *state;
	static const struct fuzzdev_config bad[] = {
		{ .input_size = 100 },
		{ .input_size = LAYOUT_FUZZ_INPUT_MAX + 4096 },
		{ .cov_size = 3 * 4096 },
		{ .cov_size = 2048 },
		{ .cov_size = LAYOUT_FUZZ_COV_MAX * 2 },
	};
	const struct fuzzdev_mem_hook hook = { .map = fake_mem_slot, .ctx = fx };
	struct fuzzdev_config ok = { .input_size = LAYOUT_FUZZ_INPUT_MAX, .cov_size = 4096 };
	struct fuzzdev *f;
	uint8_t *p;
	size_t n;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(fuzzdev_create(&bad[i], NULL, &f), -EINVAL);
	/* The hook fails on the second window: the error comes back, the memory is freed
	 * (the sanitizer build's leak check). */
	fx->nr_slots = 0;
	fx->fail_slot = 1;
	assert_int_equal(fuzzdev_create(NULL, &hook, &f), -ENOSPC);
	fx->fail_slot = 0;
	assert_int_equal(fuzzdev_add(&fx->dm, NULL, NULL), -EINVAL); /* the id is taken */
	/* The largest input window and the smallest map. */
	assert_int_equal(fuzzdev_create(&ok, NULL, &f), 0);
	fuzzdev_input(f, &p, &n);
	assert_int_equal(n, LAYOUT_FUZZ_INPUT_MAX);
	p[n - 1] = 1;
	fuzzdev_coverage(f, &p, &n);
	assert_int_equal(n, 4096);
	fuzzdev_destroy(f);
}

/* ---- ACPI and command line ---- */

static void test_describe(void **state)
{
	struct fixture *fx = *state;
	char cmdline[64] = "console=ttyS0", small[30] = "console=ttyS0 quiet", exp[64];
	struct dm_describe ctx = { .cmdline = cmdline, .cmdline_size = sizeof(cmdline) };
	struct aml dsdt;
	const uint8_t crs_regs[] = { 0x86,
				     0x09,
				     0x00,
				     0x01,
				     (uint8_t)fx->regs,
				     (uint8_t)(fx->regs >> 8),
				     (uint8_t)(fx->regs >> 16),
				     (uint8_t)(fx->regs >> 24),
				     0x00,
				     0x10,
				     0x00,
				     0x00 };
	const uint8_t crs_in[] = { 0x86, 0x09, 0x00, 0x01, 0x00, 0x00,
				   0x00, 0xd0, 0x00, 0x00, 0x10, 0x00 };
	const uint8_t crs_cov[] = { 0x86, 0x09, 0x00, 0x01, 0x00, 0x00,
				    0x00, 0xd1, 0x00, 0x00, 0x01, 0x00 };
	const uint8_t hid[] = { 0x08, '_', 'H', 'I', 'D', 0x0d, 'I', 'G',
				'N',  'T', '0', '0', '0', '2',	0 };

	/* Without ACPI: the command-line entry (the boot timer adds nothing). */
	assert_int_equal(devmgr_describe(&fx->dm, &ctx), 0);
	snprintf(exp, sizeof(exp), "console=ttyS0 ignition.fuzz=0x%llx",
		 (unsigned long long)fx->regs);
	assert_string_equal(cmdline, exp);
	/* Too long: -ENOSPC and the line as it was. */
	assert_int_equal(fuzzdev_cmdline(fx->f, small, sizeof(small)), -ENOSPC);
	assert_string_equal(small, "console=ttyS0 quiet");

	/* With ACPI: Device (FUZZ) with the three windows in its _CRS (Memory32Fixed, ACPI 6.4
	 * §6.4.3.4: 0x86, length 9, read-write, base, length). */
	aml_init(&dsdt);
	ctx = (struct dm_describe){ .dsdt = &dsdt };
	assert_int_equal(devmgr_describe(&fx->dm, &ctx), 0);
	assert_non_null(memmem(dsdt.buf, dsdt.len, "FUZZ", 4));
	assert_non_null(memmem(dsdt.buf, dsdt.len, hid, sizeof(hid)));
	assert_non_null(memmem(dsdt.buf, dsdt.len, crs_regs, sizeof(crs_regs)));
	assert_non_null(memmem(dsdt.buf, dsdt.len, crs_in, sizeof(crs_in)));
	assert_non_null(memmem(dsdt.buf, dsdt.len, crs_cov, sizeof(crs_cov)));
	aml_free(&dsdt);
}

/* iasl reads the node back as written. */
static void test_iasl(void **state)
{
	struct fixture *fx = *state;
	struct dm_describe ctx;
	struct aml body, sb;
	char *dsl, *dir = fx->tmpdir;
	uint8_t hdr[36] = { 'S', 'S', 'D', 'T' };
	uint8_t *table;
	size_t mark, len;
	uint8_t sum = 0;

	if (!acpi_tool_have("iasl")) {
		print_message("iasl not installed: skipping\n");
		skip();
	}
	/* An SSDT holding Scope (\_SB) { the device }: a table iasl disassembles alone. */
	aml_init(&sb);
	aml_init(&body);
	ctx = (struct dm_describe){ .dsdt = &sb };
	assert_int_equal(devmgr_describe(&fx->dm, &ctx), 0);
	assert_int_equal(aml_scope_begin(&body, "_SB", &mark), 0);
	assert_int_equal(aml_append(&body, sb.buf, sb.len), 0);
	assert_int_equal(aml_end(&body, mark), 0);
	len = sizeof(hdr) + body.len;
	table = calloc(1, len);
	assert_non_null(table);
	hdr[4] = (uint8_t)len;
	hdr[5] = (uint8_t)(len >> 8);
	hdr[8] = 2; /* revision */
	memcpy(hdr + 10, "IGNITN", 6);
	memcpy(hdr + 16, "FUZZTEST", 8);
	memcpy(table, hdr, sizeof(hdr));
	memcpy(table + sizeof(hdr), body.buf, body.len);
	for (size_t i = 0; i < len; i++)
		sum = (uint8_t)(sum + table[i]);
	table[9] = (uint8_t)-sum;
	snprintf(dir, sizeof(fx->tmpdir), "/tmp/ignition-fuzz-XXXXXX");
	assert_non_null(mkdtemp(dir));
	acpi_tool_write(dir, "ssdt.dat", table, len);
	free(acpi_tool_run(dir, "iasl", "-d ssdt.dat", 0));
	dsl = acpi_tool_read(dir, "ssdt.dsl", NULL);
	acpi_tool_expect(dsl, "Device (FUZZ)", "ssdt.dsl");
	acpi_tool_expect(dsl, "Name (_HID, \"IGNT0002\")", "ssdt.dsl");
	acpi_tool_expect(dsl, "Memory32Fixed (ReadWrite,\n                    0xC0001000,",
			 "ssdt.dsl");
	acpi_tool_expect(dsl,
			 "0xD0000000,         // Address Base\n                    0x00100000,",
			 "ssdt.dsl");
	acpi_tool_expect(dsl,
			 "0xD1000000,         // Address Base\n                    0x00010000,",
			 "ssdt.dsl");
	free(dsl);
	free(table);
	aml_free(&body);
	aml_free(&sb);
}

/* ---- snapshots ---- */

static void test_snapshot(void **state)
{
	struct fixture *fx = *state;
	struct snap_edit e, again, bad;
	struct fuzzdev *dst;

	assert_int_equal(fuzzdev_set_input_len(fx->f, 4096), 0);
	wr(fx, FUZZDEV_REG_CRASH_CODE, 4, 11);
	snap_edit_save(&e, &fuzzdev_ops, fx->f, SNAP_REC_FUZZ, FUZZDEV_ID);
	assert_int_equal(e.version, 1);
	assert_int_equal(e.len, 8);

	assert_int_equal(fuzzdev_create(NULL, NULL, &dst), 0);
	assert_int_equal(snap_edit_restore(&e, &fuzzdev_ops, dst), 0);
	assert_int_equal(fuzzdev_ops.read(dst, FUZZDEV_REG_INPUT_LEN, 4), 4096);
	assert_int_equal(fuzzdev_ops.read(dst, FUZZDEV_REG_CRASH_CODE, 4), 11);
	snap_edit_save(&again, &fuzzdev_ops, dst, SNAP_REC_FUZZ, FUZZDEV_ID);
	snap_edit_assert_same(&e, &again);

	/* Refused, leaving the device as it was: a length past the window, every truncation,
	 * a trailing byte, another version. */
	assert_int_equal(fuzzdev_set_input_len(dst, 5), 0);
	for (size_t i = 0; i < e.len + 4; i++) {
		bad = e;
		if (i == 0) {
			bad.payload[0] = 0x01;
			bad.payload[1] = 0x00;
			bad.payload[2] = 0x10; /* 0x100001 > 1 MiB */
			bad.payload[3] = 0x00;
		} else if (i <= e.len) {
			bad.len = i - 1;
		} else if (i == e.len + 1) {
			bad.payload[bad.len++] = 0;
		} else {
			bad.version = i == e.len + 2 ? 0 : 2;
		}
		assert_int_equal(snap_edit_restore(&bad, &fuzzdev_ops, dst), -EINVAL);
		assert_int_equal(fuzzdev_ops.read(dst, FUZZDEV_REG_INPUT_LEN, 4), 5);
	}
	fuzzdev_destroy(dst);
}

/* ---- debug mode ---- */

static void stop_cb(void *ctx, enum vm_stop_reason reason)
{
	*(enum vm_stop_reason *)ctx = reason;
}

static void test_debug_mode(void **state)
{
	struct fixture *fx = *state;
	enum vm_stop_reason stopped = VM_STOP_NONE;
	const struct power_sink power = { .request = stop_cb, .ctx = &stopped };
	char a[] = "/tmp/ignition-fuzzdbg-a-XXXXXX", b[] = "/tmp/ignition-fuzzdbg-b-XXXXXX";
	char list[80];
	uint8_t *in, *cov;
	size_t n;
	int fa = mkstemp(a), fb = mkstemp(b);

	assert_true(fa >= 0 && fb >= 0);
	assert_int_equal(write(fa, "first", 5), 5);
	assert_int_equal(write(fb, "2nd", 3), 3);
	close(fa);
	close(fb);
	assert_int_equal(fuzzdev_debug_attach(fx->f, "/nonexistent/input", &power), -ENOENT);
	snprintf(list, sizeof(list), "%s:%s", a, b);
	assert_int_equal(fuzzdev_debug_attach(fx->f, list, &power), 0);
	fuzzdev_input(fx->f, &in, &n);
	fuzzdev_coverage(fx->f, &cov, &n);
	cov[5] = 1;
	wr(fx, FUZZDEV_REG_DOORBELL, 4, FUZZ_DOORBELL_SNAPSHOT_ME);
	assert_int_equal(rd(fx, FUZZDEV_REG_INPUT_LEN, 4), 5);
	assert_memory_equal(in, "first", 5);
	assert_int_equal(cov[5], 0); /* cleared for the run */
	wr(fx, FUZZDEV_REG_DOORBELL, 4, FUZZ_DOORBELL_DONE);
	assert_int_equal(rd(fx, FUZZDEV_REG_INPUT_LEN, 4), 3);
	assert_memory_equal(in, "2nd", 3);
	assert_int_equal(stopped, VM_STOP_NONE);
	/* After the last input: stop. */
	wr(fx, FUZZDEV_REG_DOORBELL, 4, FUZZ_DOORBELL_DONE);
	assert_int_equal(stopped, VM_STOP_POWEROFF);
	stopped = VM_STOP_NONE;
	wr(fx, FUZZDEV_REG_DOORBELL, 4, FUZZ_DOORBELL_CRASH);
	assert_int_equal(stopped, VM_STOP_POWEROFF);
	unlink(a);
	unlink(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_slot_and_windows, setup, teardown),
		cmocka_unit_test_setup_teardown(test_registers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hostile_accesses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_doorbells, setup, teardown),
		cmocka_unit_test_setup_teardown(test_create_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_describe, setup, teardown),
		cmocka_unit_test_setup_teardown(test_iasl, setup, teardown),
		cmocka_unit_test_setup_teardown(test_snapshot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_debug_mode, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
