/* Boot timer: one line, once, only for a one-byte write of 123 at offset 0. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "arch/x86/layout.h"
#include "core/devmgr.h"
#include "devices/boot_timer.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void test_logs_once(void **state)
{
	struct boot_timer *bt;
	char buf[128];
	unsigned long long n;
	uint64_t before;
	ssize_t len;
	int p[2];

	assert_int_equal(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
	assert_int_equal(boot_timer_create(p[1], &bt), 0);
	assert_int_equal(boot_timer_ms(bt), 0);
	/* Not the magic: wrong value, width or offset. */
	boot_timer_ops.write(bt, 0, 1, 122);
	boot_timer_ops.write(bt, 0, 2, 123);
	boot_timer_ops.write(bt, 0, 4, 123);
	boot_timer_ops.write(bt, 1, 1, 123);
	boot_timer_ops.write(bt, 8, 1, 123);
	assert_int_equal(read(p[0], buf, sizeof(buf)), -1);
	assert_int_equal(errno, EAGAIN);
	assert_int_equal(boot_timer_ms(bt), 0);
	/* Reads are 0 at any width. */
	assert_int_equal(boot_timer_ops.read(bt, 0, 1), 0);
	assert_int_equal(boot_timer_ops.read(bt, 0, 8), 0);
	usleep(20000);
	before = log_uptime_ms();
	boot_timer_ops.write(bt, 0, 1, 123);
	len = read(p[0], buf, sizeof(buf) - 1);
	assert_true(len > 0);
	buf[len] = '\0';
	assert_int_equal(sscanf(buf, "Guest-boot-time = %llu ms\n", &n), 1);
	assert_int_equal(buf[len - 1], '\n');
	assert_true(n >= before && n <= log_uptime_ms());
	assert_true(n >= 20);
	assert_int_equal(boot_timer_ms(bt), n);
	/* Only once. */
	boot_timer_ops.write(bt, 0, 1, 123);
	assert_int_equal(read(p[0], buf, sizeof(buf)), -1);
	assert_int_equal(boot_timer_ms(bt), n);
	boot_timer_destroy(bt);
	close(p[0]);
	close(p[1]);
}

static void test_first_mmio_slot(void **state)
{
	struct devmgr dm;
	struct boot_timer *bt;
	struct dm_dev *slot, *other;
	uint8_t v = 123;
	uint32_t w = 0xffffffff;

	devmgr_init(&dm, NULL, NULL, NULL);
	assert_int_equal(boot_timer_add(&dm, &bt), 0);
	slot = devmgr_find(&dm, "boot-timer");
	assert_non_null(slot);
	assert_int_equal(slot->base, LAYOUT_MMIO_START);
	assert_false(slot->has_irq);
	assert_true(bus_read(&dm.mmio, LAYOUT_MMIO_START, &w, 4));
	assert_int_equal(w, 0);
	/* Through the bus, as the guest's init pokes it (prints to stderr). */
	assert_true(bus_write(&dm.mmio, LAYOUT_MMIO_START, &v, 1));
	assert_true(boot_timer_ms(bt) > 0);
	devmgr_destroy(&dm);

	/* Not first: refused, so the misplacement is caught at start-up. */
	devmgr_init(&dm, NULL, NULL, NULL);
	assert_int_equal(devmgr_reserve_mmio(&dm, "virtio-blk0", 0x1000, true, &other), 0);
	assert_int_equal(boot_timer_add(&dm, &bt), -EBUSY);
	assert_null(devmgr_find(&dm, "boot-timer"));
	devmgr_destroy(&dm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_logs_once),
		cmocka_unit_test(test_first_mmio_slot),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
