/* ACPI sleep/reset registers and the i8042 reset: each port value gives the sink the right
 * stop reason, and nothing else stops the VM. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "arch/x86/layout.h"
#include "core/devmgr.h"
#include "devices/power.h"

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

static void test_i8042(void **state)
{
	/* Status: output buffer empty, input buffer empty. */
	assert_int_equal(inb(POWER_I8042_CMD), 0);
	assert_int_equal(inb(POWER_I8042_DATA), 0);
	/* Harmless commands and data. */
	outb(POWER_I8042_CMD, 0x20); /* read CTR */
	outb(POWER_I8042_CMD, 0xaa); /* self test */
	outb(POWER_I8042_CMD, 0xff); /* pulse nothing */
	outb(POWER_I8042_DATA, POWER_I8042_RESET);
	assert_int_equal(sk.n, 0);
	/* Port 0x61 is not ours. */
	assert_null(bus_find(&dm.pio, 0x61));
	outb(POWER_I8042_CMD, POWER_I8042_RESET);
	assert_int_equal(sk.n, 1);
	assert_int_equal(sk.last, VM_STOP_REBOOT);
}

static void test_separate_helpers(void **state)
{
	struct devmgr d;
	struct power *p;
	struct power_i8042 *k;

	devmgr_init(&d, NULL, NULL, NULL);
	assert_int_equal(power_acpi_add(&d, &ps, &p), 0);
	assert_non_null(p);
	assert_null(devmgr_find(&d, "i8042"));
	assert_int_equal(power_i8042_add(&d, &ps, &k), 0);
	assert_non_null(k);
	assert_non_null(devmgr_find(&d, "i8042"));
	assert_non_null(devmgr_find(&d, "i8042-cmd"));
	devmgr_destroy(&d);
}

static void test_no_sink(void **state)
{
	struct power *p;
	struct power_i8042 *k;

	/* A NULL sink is allowed: requests are dropped. */
	assert_int_equal(power_create(NULL, &p), 0);
	power_acpi_ops.write(p, 0, 1, POWER_SLP_TYP_S5 << POWER_SLP_TYP_SHIFT | POWER_SLP_EN);
	power_destroy(p);
	assert_int_equal(power_i8042_create(NULL, &k), 0);
	power_i8042_cmd_ops.write(k, 0, 1, POWER_I8042_RESET);
	power_i8042_destroy(k);
}

static void test_add_conflict(void **state)
{
	/* Ids already taken: errors, no leak (ASan checks). */
	assert_int_equal(power_add(&dm, &ps), -EINVAL);
	assert_int_equal(power_acpi_add(&dm, &ps, NULL), -EINVAL);
	assert_int_equal(power_i8042_add(&dm, &ps, NULL), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_acpi_s5, setup, teardown),
		cmocka_unit_test_setup_teardown(test_acpi_other_sleep, setup, teardown),
		cmocka_unit_test_setup_teardown(test_acpi_reset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_acpi_widths, setup, teardown),
		cmocka_unit_test_setup_teardown(test_i8042, setup, teardown),
		cmocka_unit_test(test_separate_helpers),
		cmocka_unit_test(test_no_sink),
		cmocka_unit_test_setup_teardown(test_add_conflict, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
