/* ACPI sleep/reset registers: each port value gives the sink the right
 * stop reason, and nothing else stops the VM; snapshots keep the sleep status register. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "arch/x86/layout.h"
#include "core/devmgr.h"
#include "devices/power.h"
#include "snap_edit.h"

#include <errno.h>
#include <string.h>

struct sink {
	int n;
	enum vm_stop_reason last;
};

static void sink_request(void *ctx, enum vm_stop_reason reason)
{
	struct sink *s = ctx;

	s->n++;
	s->last = reason;
}

static struct sink sk;
static const struct power_sink ps = { .request = sink_request, .ctx = &sk };
static struct devmgr dm;

static int setup(void **state)
{
	memset(&sk, 0, sizeof(sk));
	devmgr_init(&dm, NULL, NULL, NULL);
	assert_int_equal(power_add(&dm, &ps), 0);
	return 0;
}

static int teardown(void **state)
{
	devmgr_destroy(&dm);
	return 0;
}

static void outb(uint16_t port, uint8_t v)
{
	assert_true(bus_write(&dm.pio, port, &v, 1));
}

static uint8_t inb(uint16_t port)
{
	uint8_t v;

	assert_true(bus_read(&dm.pio, port, &v, 1));
	return v;
}

static void test_acpi_s5(void **state)
{
	/* SLP_TYP without SLP_EN does nothing. */
	outb(LAYOUT_ACPI_SLEEP_CTL, POWER_SLP_TYP_S5 << POWER_SLP_TYP_SHIFT);
	assert_int_equal(sk.n, 0);
	outb(LAYOUT_ACPI_SLEEP_CTL, POWER_SLP_TYP_S5 << POWER_SLP_TYP_SHIFT | POWER_SLP_EN);
	assert_int_equal(sk.n, 1);
	assert_int_equal(sk.last, VM_STOP_POWEROFF);
	assert_int_equal(inb(LAYOUT_ACPI_SLEEP_CTL), 0);
}

static void test_acpi_other_sleep(void **state)
{
	assert_int_equal(inb(LAYOUT_ACPI_SLEEP_STS), 0);
	/* S3-like request: not offered; the guest "wakes" at once. */
	outb(LAYOUT_ACPI_SLEEP_CTL, 3 << POWER_SLP_TYP_SHIFT | POWER_SLP_EN);
	assert_int_equal(sk.n, 0);
	assert_int_equal(inb(LAYOUT_ACPI_SLEEP_STS), POWER_WAK_STS);
	outb(LAYOUT_ACPI_SLEEP_STS, 0x01); /* writing 0 to bit 7 keeps it */
	assert_int_equal(inb(LAYOUT_ACPI_SLEEP_STS), POWER_WAK_STS);
	outb(LAYOUT_ACPI_SLEEP_STS, POWER_WAK_STS); /* write 1 to clear */
	assert_int_equal(inb(LAYOUT_ACPI_SLEEP_STS), 0);
}

static void test_acpi_reset(void **state)
{
	outb(LAYOUT_ACPI_RESET, 0x00);
	outb(LAYOUT_ACPI_RESET, 0x06);
	assert_int_equal(sk.n, 0);
	outb(LAYOUT_ACPI_RESET, LAYOUT_ACPI_RESET_VAL);
	assert_int_equal(sk.n, 1);
	assert_int_equal(sk.last, VM_STOP_REBOOT);
	assert_int_equal(inb(LAYOUT_ACPI_RESET), 0);
}

static void test_acpi_widths(void **state)
{
	uint16_t w = 0xffff;

	/* 8-bit registers: wider accesses are refused by the bus (reads all-ones). */
	assert_true(bus_read(&dm.pio, LAYOUT_ACPI_SLEEP_CTL, &w, 2));
	assert_int_equal(w, 0xffff);
	w = POWER_SLP_TYP_S5 << POWER_SLP_TYP_SHIFT | POWER_SLP_EN;
	assert_true(bus_write(&dm.pio, LAYOUT_ACPI_SLEEP_CTL, &w, 2));
	assert_int_equal(sk.n, 0);
}

static void test_separate_helpers(void **state)
{
	struct devmgr d;
	struct power *p;

	devmgr_init(&d, NULL, NULL, NULL);
	assert_int_equal(power_acpi_add(&d, &ps, &p), 0);
	assert_non_null(p);
	assert_non_null(devmgr_find(&d, "acpi-pm"));
	/* The i8042 is a device of its own now (test_i8042.c). */
	assert_null(devmgr_find(&d, "i8042"));
	devmgr_destroy(&d);
}

static void test_no_sink(void **state)
{
	struct power *p;

	/* A NULL sink is allowed: requests are dropped. */
	assert_int_equal(power_create(NULL, &p), 0);
	power_acpi_ops.write(p, 0, 1, POWER_SLP_TYP_S5 << POWER_SLP_TYP_SHIFT | POWER_SLP_EN);
	power_destroy(p);
}

static void test_add_conflict(void **state)
{
	/* Ids already taken: errors, no leak (ASan checks). */
	assert_int_equal(power_add(&dm, &ps), -EINVAL);
	assert_int_equal(power_acpi_add(&dm, &ps, NULL), -EINVAL);
}

/* ---- snapshots ---- */

static uint8_t sts_of(struct devmgr *d)
{
	uint8_t v;

	assert_true(bus_read(&d->pio, LAYOUT_ACPI_SLEEP_STS, &v, 1));
	return v;
}

/* The whole power block through the device manager, as a VM snapshot takes it. */
static void test_snapshot_round_trip(void **state)
{
	struct devmgr d;
	struct snap_writer w;
	struct snap_file f;
	struct snap_reader r;
	char why[256];
	uint8_t v;

	/* The guest asked for an unsupported sleep state: WAK_STS is set. */
	outb(LAYOUT_ACPI_SLEEP_CTL, 3 << POWER_SLP_TYP_SHIFT | POWER_SLP_EN);
	assert_int_equal(inb(LAYOUT_ACPI_SLEEP_STS), POWER_WAK_STS);
	snap_writer_init(&w);
	assert_int_equal(devmgr_save(&dm, &w), 0);
	assert_int_equal(snap_writer_finish(&w), 0);
	assert_int_equal(snap_file_parse(&f, w.buf, w.len, why, sizeof(why)), 0);
	/* One record for the ACPI registers. */
	assert_int_equal(snap_file_find(&f, SNAP_REC_POWER, "acpi-pm", &r), 0);
	assert_int_equal(r.version, 1);
	assert_int_equal(r.len, 1);
	for (uint32_t i = 0; snap_file_record(&f, i, &r) == 0; i++)
		assert_true(r.type == SNAP_REC_SLOT || r.type == SNAP_REC_POWER);

	devmgr_init(&d, NULL, NULL, NULL);
	assert_int_equal(power_add(&d, &ps), 0);
	assert_int_equal(sts_of(&d), 0);
	assert_int_equal(devmgr_restore(&d, &f, why, sizeof(why)), 0);
	assert_int_equal(sts_of(&d), POWER_WAK_STS);
	/* Write 1 to clear works on the restored register; the sink is the new VM's. */
	v = POWER_WAK_STS;
	assert_true(bus_write(&d.pio, LAYOUT_ACPI_SLEEP_STS, &v, 1));
	assert_int_equal(sts_of(&d), 0);
	v = LAYOUT_ACPI_RESET_VAL;
	assert_true(bus_write(&d.pio, LAYOUT_ACPI_RESET, &v, 1));
	assert_int_equal(sk.n, 1);
	assert_int_equal(sk.last, VM_STOP_REBOOT);
	/* A clear status loads back as clear. */
	snap_writer_free(&w);
	outb(LAYOUT_ACPI_SLEEP_STS, POWER_WAK_STS);
	snap_writer_init(&w);
	assert_int_equal(devmgr_save(&dm, &w), 0);
	assert_int_equal(snap_writer_finish(&w), 0);
	assert_int_equal(snap_file_parse(&f, w.buf, w.len, why, sizeof(why)), 0);
	outb(LAYOUT_ACPI_SLEEP_CTL, 3 << POWER_SLP_TYP_SHIFT | POWER_SLP_EN);
	assert_int_equal(devmgr_restore(&dm, &f, why, sizeof(why)), 0);
	assert_int_equal(inb(LAYOUT_ACPI_SLEEP_STS), 0);
	snap_writer_free(&w);
	devmgr_destroy(&d);
}

static void test_snapshot_refused(void **state)
{
	struct power *src, *dst;
	struct snap_edit good, e, before, after;
	static const uint8_t bad_sts[] = { 0x01, 0x40, POWER_WAK_STS | 0x01, 0xff };

	assert_int_equal(power_create(&ps, &src), 0);
	assert_int_equal(power_create(&ps, &dst), 0);
	snap_edit_save(&good, &power_acpi_ops, src, SNAP_REC_POWER, "acpi-pm");
	/* The target has WAK_STS set, which every refusal must leave alone. */
	power_acpi_ops.write(dst, LAYOUT_ACPI_SLEEP_CTL - LAYOUT_PORT_ACPI_PM, 1,
			     1 << POWER_SLP_TYP_SHIFT | POWER_SLP_EN);
	snap_edit_save(&before, &power_acpi_ops, dst, SNAP_REC_POWER, "acpi-pm");
	assert_int_equal(before.payload[0], POWER_WAK_STS);

	for (size_t i = 0; i < sizeof(bad_sts) + 5; i++) {
		e = good;
		if (i < sizeof(bad_sts))
			e.payload[0] = bad_sts[i]; /* bits the register does not have */
		else if (i == sizeof(bad_sts))
			e.len = 0; /* truncated */
		else if (i == sizeof(bad_sts) + 1)
			e.payload[e.len++] = 0; /* a trailing byte */
		else if (i == sizeof(bad_sts) + 2)
			e.version = 2;
		else if (i == sizeof(bad_sts) + 3)
			e.version = 0;
		else
			e.type = SNAP_REC_BOOT_TIMER;
		assert_int_equal(snap_edit_restore(&e, &power_acpi_ops, dst), -EINVAL);
		snap_edit_save(&after, &power_acpi_ops, dst, SNAP_REC_POWER, "acpi-pm");
		snap_edit_assert_same(&before, &after);
	}
	assert_int_equal(snap_edit_restore(&good, &power_acpi_ops, dst), 0);
	assert_int_equal(power_acpi_ops.read(dst, LAYOUT_ACPI_SLEEP_STS - LAYOUT_PORT_ACPI_PM, 1),
			 0);
	assert_int_equal(sk.n, 0);
	power_destroy(src);
	power_destroy(dst);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_acpi_s5, setup, teardown),
		cmocka_unit_test_setup_teardown(test_acpi_other_sleep, setup, teardown),
		cmocka_unit_test_setup_teardown(test_acpi_reset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_acpi_widths, setup, teardown),
		cmocka_unit_test(test_separate_helpers),
		cmocka_unit_test(test_no_sink),
		cmocka_unit_test_setup_teardown(test_add_conflict, setup, teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_refused, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
