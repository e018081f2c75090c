/* Boot timer: one line, once, only for a one-byte write of 123 at offset 0; snapshots keep
 * whether it was printed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "arch/x86/layout.h"
#include "core/devmgr.h"
#include "devices/boot_timer.h"
#include "snap_edit.h"
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

/* ---- snapshots ---- */

struct piped {
	struct boot_timer *bt;
	int p[2];
};

static void piped_new(struct piped *t)
{
	assert_int_equal(pipe2(t->p, O_CLOEXEC | O_NONBLOCK), 0);
	assert_int_equal(boot_timer_create(t->p[1], &t->bt), 0);
}

static void piped_free(struct piped *t)
{
	boot_timer_destroy(t->bt);
	close(t->p[0]);
	close(t->p[1]);
}

/* Did the timer print its line since the last call? */
static bool printed(struct piped *t)
{
	char buf[128];

	return read(t->p[0], buf, sizeof(buf)) > 0;
}

static void test_snapshot_after_boot(void **state)
{
	struct piped src, dst;
	struct snap_edit e, again;
	uint64_t ms;

	piped_new(&src);
	boot_timer_ops.write(src.bt, 0, 1, BOOT_TIMER_MAGIC);
	assert_true(printed(&src));
	ms = boot_timer_ms(src.bt);
	assert_true(ms > 0);
	snap_edit_save(&e, &boot_timer_ops, src.bt, SNAP_REC_BOOT_TIMER, "boot-timer");
	assert_int_equal(e.version, 2);
	assert_int_equal(e.len, 1 + 8 + 4);

	piped_new(&dst);
	assert_int_equal(snap_edit_restore(&e, &boot_timer_ops, dst.bt), 0);
	assert_int_equal(boot_timer_ms(dst.bt), ms);
	snap_edit_save(&again, &boot_timer_ops, dst.bt, SNAP_REC_BOOT_TIMER, "boot-timer");
	snap_edit_assert_same(&e, &again);
	/* The restored guest already booted: its init poking again prints nothing. */
	assert_false(printed(&dst));
	boot_timer_ops.write(dst.bt, 0, 1, BOOT_TIMER_MAGIC);
	assert_false(printed(&dst));
	assert_int_equal(boot_timer_ms(dst.bt), ms);
	piped_free(&src);
	piped_free(&dst);
}

static void test_snapshot_before_boot(void **state)
{
	struct piped src, dst;
	struct snap_edit e;

	piped_new(&src);
	snap_edit_save(&e, &boot_timer_ops, src.bt, SNAP_REC_BOOT_TIMER, "boot-timer");
	piped_new(&dst);
	assert_int_equal(snap_edit_restore(&e, &boot_timer_ops, dst.bt), 0);
	assert_int_equal(boot_timer_ms(dst.bt), 0);
	/* Not yet booted in the snapshot: the first poke after the restore prints, once. */
	boot_timer_ops.write(dst.bt, 0, 1, BOOT_TIMER_MAGIC);
	assert_true(printed(&dst));
	assert_true(boot_timer_ms(dst.bt) > 0);
	boot_timer_ops.write(dst.bt, 0, 1, BOOT_TIMER_MAGIC);
	assert_false(printed(&dst));
	piped_free(&src);
	piped_free(&dst);
}

static void test_snapshot_refused(void **state)
{
	struct piped src, dst;
	struct snap_edit good, e, before, after;
	/* fired, then the ms as 8 little-endian bytes (the snapshot count after them) */
	static const uint8_t bad[][9] = {
		{ 1, 0, 0, 0, 0, 0, 0, 0, 0 }, /* fired at 0 ms: 0 means "not yet" */
		{ 0, 5, 0, 0, 0, 0, 0, 0, 0 }, /* a time without having fired */
		{ 2, 5, 0, 0, 0, 0, 0, 0, 0 }, /* not a bool */
	};

	piped_new(&src);
	boot_timer_ops.write(src.bt, 0, 1, BOOT_TIMER_MAGIC);
	snap_edit_save(&good, &boot_timer_ops, src.bt, SNAP_REC_BOOT_TIMER, "boot-timer");
	piped_new(&dst);
	snap_edit_save(&before, &boot_timer_ops, dst.bt, SNAP_REC_BOOT_TIMER, "boot-timer");

	for (size_t i = 0; i <= sizeof(bad) / sizeof(bad[0]) + good.len + 3; i++) {
		e = good;
		if (i < sizeof(bad) / sizeof(bad[0]))
			memcpy(e.payload, bad[i], sizeof(bad[i]));
		else if (i < sizeof(bad) / sizeof(bad[0]) + good.len)
			e.len = i - sizeof(bad) / sizeof(bad[0]); /* every truncation */
		else if (i == sizeof(bad) / sizeof(bad[0]) + good.len)
			e.payload[e.len++] = 0; /* a trailing byte */
		else if (i == sizeof(bad) / sizeof(bad[0]) + good.len + 1)
			e.version = 3;
		else if (i == sizeof(bad) / sizeof(bad[0]) + good.len + 2)
			e.version = 0;
		else
			e.type = SNAP_REC_POWER;
		assert_int_equal(snap_edit_restore(&e, &boot_timer_ops, dst.bt), -EINVAL);
		snap_edit_save(&after, &boot_timer_ops, dst.bt, SNAP_REC_BOOT_TIMER, "boot-timer");
		snap_edit_assert_same(&before, &after);
	}
	/* Still unfired: it prints when the guest pokes it. */
	boot_timer_ops.write(dst.bt, 0, 1, BOOT_TIMER_MAGIC);
	assert_true(printed(&dst));
	piped_free(&src);
	piped_free(&dst);
}

static int requests;

static void count_request(void *ctx)
{
	(void)ctx;
	requests++;
}

/* A guest's snapshot request: one byte 0x5a at offset 8 calls the hook (nothing else does);
 * the count read there moves when a snapshot quiesces the device, survives a save/restore, and
 * a version-1 record (no count) loads with the count at 0. */
static void test_snapshot_request(void **state)
{
	struct piped src, dst;
	struct snap_edit e;

	piped_new(&src);
	boot_timer_on_snapshot_request(src.bt, count_request, NULL);
	requests = 0;
	boot_timer_ops.write(src.bt, BOOT_TIMER_SNAPSHOT_OFF, 1, 0x5b);
	boot_timer_ops.write(src.bt, BOOT_TIMER_SNAPSHOT_OFF, 4, BOOT_TIMER_SNAPSHOT_MAGIC);
	boot_timer_ops.write(src.bt, 0, 1, BOOT_TIMER_SNAPSHOT_MAGIC);
	assert_int_equal(requests, 0);
	boot_timer_ops.write(src.bt, BOOT_TIMER_SNAPSHOT_OFF, 1, BOOT_TIMER_SNAPSHOT_MAGIC);
	assert_int_equal(requests, 1);
	assert_int_equal(boot_timer_ops.read(src.bt, BOOT_TIMER_SNAPSHOT_OFF, 4), 0);
	boot_timer_ops.quiesce(src.bt);
	assert_int_equal(boot_timer_ops.read(src.bt, BOOT_TIMER_SNAPSHOT_OFF, 4), 1);
	assert_int_equal(boot_timer_ops.read(src.bt, BOOT_TIMER_SNAPSHOT_OFF, 1), 0);
	snap_edit_save(&e, &boot_timer_ops, src.bt, SNAP_REC_BOOT_TIMER, "boot-timer");
	piped_new(&dst);
	assert_int_equal(snap_edit_restore(&e, &boot_timer_ops, dst.bt), 0);
	assert_int_equal(boot_timer_ops.read(dst.bt, BOOT_TIMER_SNAPSHOT_OFF, 4), 1);
	/* Version 1: fired and ms only. */
	e.version = 1;
	e.len = 1 + 8;
	assert_int_equal(snap_edit_restore(&e, &boot_timer_ops, dst.bt), 0);
	assert_int_equal(boot_timer_ops.read(dst.bt, BOOT_TIMER_SNAPSHOT_OFF, 4), 0);
	/* No hook on dst: a request is ignored. */
	boot_timer_ops.write(dst.bt, BOOT_TIMER_SNAPSHOT_OFF, 1, BOOT_TIMER_SNAPSHOT_MAGIC);
	assert_int_equal(requests, 1);
	piped_free(&src);
	piped_free(&dst);
}

/* The guest's "network configured" mark: one byte 0x4e at offset 8 counts (nothing else does);
 * the count is this run's: a snapshot does not carry it. */
static void test_net_ready(void **state)
{
	struct piped src, dst;
	struct snap_edit e;

	piped_new(&src);
	boot_timer_on_snapshot_request(src.bt, count_request, NULL);
	requests = 0;
	assert_int_equal(boot_timer_net_ready(src.bt), 0);
	boot_timer_ops.write(src.bt, BOOT_TIMER_SNAPSHOT_OFF, 4, BOOT_TIMER_NET_MAGIC);
	boot_timer_ops.write(src.bt, BOOT_TIMER_SNAPSHOT_OFF, 1, BOOT_TIMER_NET_MAGIC + 1);
	boot_timer_ops.write(src.bt, 0, 1, BOOT_TIMER_NET_MAGIC);
	assert_int_equal(boot_timer_net_ready(src.bt), 0);
	boot_timer_ops.write(src.bt, BOOT_TIMER_SNAPSHOT_OFF, 1, BOOT_TIMER_NET_MAGIC);
	assert_int_equal(boot_timer_net_ready(src.bt), 1);
	boot_timer_ops.write(src.bt, BOOT_TIMER_SNAPSHOT_OFF, 1, BOOT_TIMER_NET_MAGIC);
	assert_int_equal(boot_timer_net_ready(src.bt), 2);
	/* Neither a snapshot request nor the boot line. */
	assert_int_equal(requests, 0);
	assert_false(printed(&src));
	snap_edit_save(&e, &boot_timer_ops, src.bt, SNAP_REC_BOOT_TIMER, "boot-timer");
	piped_new(&dst);
	assert_int_equal(snap_edit_restore(&e, &boot_timer_ops, dst.bt), 0);
	assert_int_equal(boot_timer_net_ready(dst.bt), 0);
	boot_timer_ops.write(dst.bt, BOOT_TIMER_SNAPSHOT_OFF, 1, BOOT_TIMER_NET_MAGIC);
	assert_int_equal(boot_timer_net_ready(dst.bt), 1);
	assert_int_equal(boot_timer_net_ready(src.bt), 2);
	piped_free(&src);
	piped_free(&dst);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_logs_once),
		cmocka_unit_test(test_first_mmio_slot),
		cmocka_unit_test(test_snapshot_after_boot),
		cmocka_unit_test(test_snapshot_before_boot),
		cmocka_unit_test(test_snapshot_refused),
		cmocka_unit_test(test_snapshot_request),
		cmocka_unit_test(test_net_ready),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
