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
	int fired;	    /* set once, atomically: several vCPUs may race to write */
	uint64_t ms;	    /* 0 until fired */
	uint32_t snapshots; /* snapshots taken of this guest so far (read at offset 8) */
};

struct boot_timer {
	int log_fd;
	struct boot_timer_state st;
	void (*snapshot_request)(void *ctx); /* a guest asked for a snapshot (vCPU thread) */
	void *snapshot_ctx;
	uint32_t net_ready; /* BOOT_TIMER_NET_MAGIC writes in this run (not saved) */
};

static uint64_t ops_read(void *dev, uint64_t off, unsigned size)
{
	struct boot_timer *bt = dev;

	if (off == BOOT_TIMER_SNAPSHOT_OFF && size == 4)
		return __atomic_load_n(&bt->st.snapshots, __ATOMIC_ACQUIRE);
	return 0;
}

static void ops_write(void *dev, uint64_t off, unsigned size, uint64_t val)
{
	struct boot_timer *bt = dev;
	uint64_t ms = log_uptime_ms();
	char line[64];
	int n;

	if (off == BOOT_TIMER_SNAPSHOT_OFF && size == 1 && val == BOOT_TIMER_SNAPSHOT_MAGIC) {
		/* The VMM snapshots from its event loop, after this write returns: the guest
		 * waits for the count at offset 8 to move (guest/rootfs: ign-snapshot). */
		if (bt->snapshot_request)
			bt->snapshot_request(bt->snapshot_ctx);
		return;
	}
	if (off == BOOT_TIMER_SNAPSHOT_OFF && size == 1 && val == BOOT_TIMER_NET_MAGIC) {
		if (__atomic_add_fetch(&bt->net_ready, 1, __ATOMIC_ACQ_REL) == 1)
			log_info("boot-timer: the guest's network is configured");
		return;
	}
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

/* SNAP_REC_BOOT_TIMER payload, version 2: bool fired, u64 ms (0 exactly when not fired),
 * u32 snapshots.  Version 1 (without the count) still loads, with the count at 0. */
#define BOOT_TIMER_STATE_VERSION 2

static int ops_save(void *dev, struct snap_writer *w, const char *id)
{
	struct boot_timer *bt = dev;

	snap_rec_begin(w, SNAP_REC_BOOT_TIMER, BOOT_TIMER_STATE_VERSION, id);
	snap_put_bool(w, __atomic_load_n(&bt->st.fired, __ATOMIC_ACQUIRE));
	snap_put_u64(w, __atomic_load_n(&bt->st.ms, __ATOMIC_ACQUIRE));
	snap_put_u32(w, __atomic_load_n(&bt->st.snapshots, __ATOMIC_ACQUIRE));
	return w->err;
}

static int ops_restore(void *dev, const struct snap_file *f, const char *id)
{
	struct boot_timer *bt = dev;
	struct boot_timer_state st;
	struct snap_reader r;

	if (snap_file_find(f, SNAP_REC_BOOT_TIMER, id, &r) || r.version < 1 ||
	    r.version > BOOT_TIMER_STATE_VERSION)
		return -EINVAL;
	st.fired = snap_get_bool(&r);
	st.ms = snap_get_u64(&r);
	st.snapshots = r.version >= 2 ? snap_get_u32(&r) : 0;
	if (snap_reader_done(&r) || !st.fired != !st.ms)
		return -EINVAL;
	__atomic_store_n(&bt->st.snapshots, st.snapshots, __ATOMIC_RELEASE);
	__atomic_store_n(&bt->st.ms, st.ms, __ATOMIC_RELEASE);
	__atomic_store_n(&bt->st.fired, st.fired, __ATOMIC_RELEASE);
	return 0;
}

/* Only a snapshot quiesces the devices (src/snapshot/snapshot.c), right before it saves them:
 * the count moves here, so the snapshot and the guest that carries on both read the new value
 * and a guest waiting for it (ign-snapshot) finishes in both. */
static void ops_quiesce(void *dev)
{
	struct boot_timer *bt = dev;

	__atomic_add_fetch(&bt->st.snapshots, 1, __ATOMIC_ACQ_REL);
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
	.rec = { SNAP_REC_BOOT_TIMER, BOOT_TIMER_STATE_VERSION },
	.quiesce = ops_quiesce,
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

void boot_timer_on_snapshot_request(struct boot_timer *bt, void (*fn)(void *ctx), void *ctx)
{
	bt->snapshot_ctx = ctx;
	bt->snapshot_request = fn;
}

uint32_t boot_timer_net_ready(const struct boot_timer *bt)
{
	return __atomic_load_n(&bt->net_ready, __ATOMIC_ACQUIRE);
}

uint64_t boot_timer_ms(const struct boot_timer *bt)
{
	return __atomic_load_n(&bt->st.ms, __ATOMIC_ACQUIRE);
}

static int add_create(struct devmgr *dm, struct dm_dev *slot, const void *arg, void **dev)
{
	struct boot_timer *bt;
	int ret;

	if (slot->base != LAYOUT_MMIO_START) {
		/* The guest helper pokes LAYOUT_MMIO_START: anywhere else nobody would write. */
		log_error("boot-timer: must be the first MMIO device (got %#llx)",
			  (unsigned long long)slot->base);
		return -EBUSY;
	}
	ret = boot_timer_create(STDERR_FILENO, &bt);
	if (!ret)
		*dev = bt;
	return ret;
}

int boot_timer_add(struct devmgr *dm, struct boot_timer **out)
{
	const struct dm_slot_req req = { .id = "boot-timer",
					 .kind = DM_MMIO,
					 .len = BOOT_TIMER_SIZE };
	void *dev;
	int ret = devmgr_add(dm, &req, &boot_timer_ops, add_create, ops_destroy, NULL, &dev);

	if (!ret && out)
		*out = dev;
	return ret;
}
