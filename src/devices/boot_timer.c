/* Boot timer (DESIGN.md §3): a one-byte write of 123 at offset 0 records and prints the
 * guest's boot time once; everything else reads 0 and is ignored.  A snapshot keeps whether the
 * line was printed, and its value, so a restored guest that already booted prints nothing. */
#include "devices/boot_timer.h"

#include "arch/x86/layout.h"
#include "core/devmgr.h"
#include "snapshot/snap.h"
#include "util/log.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* What a snapshot keeps. */
struct boot_timer_state {
	int fired;   /* set once, atomically: several vCPUs may race to write */
	uint64_t ms; /* 0 until fired */
};

struct boot_timer {
	int log_fd;
	struct boot_timer_state st;
};

static uint64_t ops_read(void *dev, uint64_t off, unsigned size)
{
	return 0;
}

static void ops_write(void *dev, uint64_t off, unsigned size, uint64_t val)
{
	struct boot_timer *bt = dev;
	uint64_t ms = log_uptime_ms();
	char line[64];
	int n;

	if (off != 0 || size != 1 || val != BOOT_TIMER_MAGIC)
		return;
	if (__atomic_exchange_n(&bt->st.fired, 1, __ATOMIC_ACQ_REL))
		return;
	/* 0 means "not yet" to boot_timer_ms(); a boot cannot take 0 ms anyway. */
	__atomic_store_n(&bt->st.ms, ms ? ms : 1, __ATOMIC_RELEASE);
	/* A plain line (not a log record) so scripts can grep it; one write() keeps it whole. */
	n = snprintf(line, sizeof(line), "Guest-boot-time = %llu ms\n", (unsigned long long)ms);
	if (bt->log_fd >= 0 && n > 0 && write(bt->log_fd, line, (size_t)n) < 0)
		log_warn("boot-timer: cannot print the boot time");
}

/* SNAP_REC_BOOT_TIMER payload, version 1: bool fired, u64 ms (0 exactly when not fired).
 * The layout grows by versions: a later one appends fields (say, a guest's snapshot request)
 * and restore then accepts version 1 with those at their power-on values. */
#define BOOT_TIMER_STATE_VERSION 1

static int ops_save(void *dev, struct snap_writer *w, const char *id)
{
	struct boot_timer *bt = dev;

	snap_rec_begin(w, SNAP_REC_BOOT_TIMER, BOOT_TIMER_STATE_VERSION, id);
	snap_put_bool(w, __atomic_load_n(&bt->st.fired, __ATOMIC_ACQUIRE));
	snap_put_u64(w, __atomic_load_n(&bt->st.ms, __ATOMIC_ACQUIRE));
	return w->err;
}

static int ops_restore(void *dev, const struct snap_file *f, const char *id)
{
	struct boot_timer *bt = dev;
	struct boot_timer_state st;
	struct snap_reader r;

	if (snap_file_find(f, SNAP_REC_BOOT_TIMER, id, &r) || r.version != BOOT_TIMER_STATE_VERSION)
		return -EINVAL;
	st.fired = snap_get_bool(&r);
	st.ms = snap_get_u64(&r);
	if (snap_reader_done(&r) || !st.fired != !st.ms)
		return -EINVAL;
	__atomic_store_n(&bt->st.ms, st.ms, __ATOMIC_RELEASE);
	__atomic_store_n(&bt->st.fired, st.fired, __ATOMIC_RELEASE);
	return 0;
}

static void ops_destroy(void *dev)
{
	boot_timer_destroy(dev);
}

const struct dev_ops boot_timer_ops = {
	.name = "boot-timer",
	.sizes = BUS_SZ_ANY,
	.read = ops_read,
	.write = ops_write,
	.save = ops_save,
	.restore = ops_restore,
	.destroy = ops_destroy,
	/* no reset: the boot time is measured once per VMM process, across guest reboots */
};

int boot_timer_create(int log_fd, struct boot_timer **out)
{
	struct boot_timer *bt = calloc(1, sizeof(*bt));

	if (!bt)
		return -ENOMEM;
	bt->log_fd = log_fd;
	*out = bt;
	return 0;
}

void boot_timer_destroy(struct boot_timer *bt)
{
	free(bt);
}

uint64_t boot_timer_ms(const struct boot_timer *bt)
{
	return __atomic_load_n(&bt->st.ms, __ATOMIC_ACQUIRE);
}

int boot_timer_add(struct devmgr *dm, struct boot_timer **out)
{
	struct dm_dev *slot;
	struct boot_timer *bt;
	int ret;

	ret = devmgr_reserve_mmio(dm, "boot-timer", BOOT_TIMER_SIZE, false, &slot);
	if (ret)
		return ret;
	if (slot->base != LAYOUT_MMIO_START) {
		/* The guest helper pokes LAYOUT_MMIO_START: anywhere else nobody would write. */
		log_error("boot-timer: must be the first MMIO device (got %#llx)",
			  (unsigned long long)slot->base);
		devmgr_release(dm, slot);
		return -EBUSY;
	}
	ret = boot_timer_create(STDERR_FILENO, &bt);
	if (ret) {
		devmgr_release(dm, slot);
		return ret;
	}
	ret = devmgr_attach(dm, slot, &boot_timer_ops, bt);
	if (ret) {
		boot_timer_destroy(bt); /* the manager released the slot */
		return ret;
	}
	if (out)
		*out = bt;
	return 0;
}
