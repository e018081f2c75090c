/* Address-decoding bus for port I/O and MMIO exits.  Devices see offsets within their own
 * window, never absolute addresses, and declare which access sizes they accept. */
#ifndef IGNITION_CORE_BUS_H
#define IGNITION_CORE_BUS_H

#include <stdbool.h>
#include <stdint.h>

struct dm_dev;
struct dm_describe;
struct snap_writer;
struct snap_file;

/* Access-size bits for dev_ops.sizes: an access of N bytes is allowed if (sizes & N). */
#define BUS_SZ1	   1u
#define BUS_SZ2	   2u
#define BUS_SZ4	   4u
#define BUS_SZ8	   8u
#define BUS_SZ_ANY (BUS_SZ1 | BUS_SZ2 | BUS_SZ4 | BUS_SZ8)

/* A snapshot record a device writes: its type (enum snap_rec_type, src/snapshot/snap.h) and the
 * version its save writes, which is the newest its restore reads.  {0, 0}: none. */
struct dev_rec {
	uint16_t type;
	uint16_t version;
};

/* The ops table every bus device implements (DESIGN.md §2).  Optional entries may be NULL. */
struct dev_ops {
	const char *name;
	unsigned sizes; /* BUS_SZ* mask; other sizes read as all-ones and drop writes */
	/* Read `size` bytes at `off` (little-endian value in the low bytes). */
	uint64_t (*read)(void *dev, uint64_t off, unsigned size);
	/* Write `size` bytes of `val` at `off`. */
	void (*write)(void *dev, uint64_t off, unsigned size, uint64_t val);
	/* Return to power-on state. */
	void (*reset)(void *dev);
	/* Finish or park in-flight work so that guest memory and device state are stable and
	 * nothing taken from the guest is lost.  Called by a snapshot, right before the save,
	 * on the event-loop thread with the vCPUs paused. */
	void (*quiesce)(void *dev);
	/* Describe the device into the platform tables / command line (ACPI DSDT node etc.). */
	int (*describe)(void *dev, const struct dm_dev *slot, struct dm_describe *ctx);
	/* Snapshots (src/snapshot/snap.h): append this device's state as records keyed by `id`
	 * (its slot's stable id), plain data only; load them back from `f` into a device just
	 * created from the same machine description, validating every value.  0 or -errno. */
	int (*save)(void *dev, struct snap_writer *w, const char *id);
	int (*restore)(void *dev, const struct snap_file *f, const char *id);
	/* The one place a device kind names its record: `save` may write only this record (and
	 * inner_rec's), and a restore accepts exactly the records its devices declare here
	 * (devmgr_check_record).  Set exactly when save and restore are; devmgr_add refuses an
	 * ops table that has one without the other. */
	struct dev_rec rec;
	/* A device that holds another one (the virtio transport and its virtio device): the held
	 * device's record, which save writes after rec; {0, 0} if it has none.  May be NULL. */
	struct dev_rec (*inner_rec)(const void *dev);
	/* Free everything the device owns. */
	void (*destroy)(void *dev);
};

struct bus_range {
	uint64_t base, len;
	const struct dev_ops *ops;
	void *dev;
};

#define BUS_MAX_RANGES 64

struct bus {
	const char *name;
	struct bus_range ranges[BUS_MAX_RANGES]; /* sorted by base, non-overlapping */
	int nr;
	uint64_t unhandled; /* accesses that hit no device */
};

/* Prepare an empty bus. */
void bus_init(struct bus *bus, const char *name);
/* Add [base, base+len) -> dev; -EEXIST on overlap, -ENOSPC when full, -EINVAL if len == 0. */
int bus_register(struct bus *bus, uint64_t base, uint64_t len, const struct dev_ops *ops, void *dev)
	__attribute__((warn_unused_result));
/* Remove the range starting at base (used when unwinding a failed start-up). */
void bus_unregister(struct bus *bus, uint64_t base);
/* Find the range holding addr, or NULL. */
const struct bus_range *bus_find(const struct bus *bus, uint64_t addr);
/* Dispatch an access of len bytes (1,2,4,8) from a vCPU exit.  Reads of nothing = all-ones.
 * Returns true if a device handled it. */
bool bus_read(struct bus *bus, uint64_t addr, void *data, unsigned len);
bool bus_write(struct bus *bus, uint64_t addr, const void *data, unsigned len);

#endif
