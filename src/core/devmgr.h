/* The DeviceManager (DESIGN.md §2): owns every device.  It hands each one an MMIO window (or
 * its fixed ports) and an interrupt line, registers it on the bus, asks it to describe itself
 * when platform tables are built, and enumerates it for save/restore.  Boot and restore share
 * this one path. */
#ifndef IGNITION_CORE_DEVMGR_H
#define IGNITION_CORE_DEVMGR_H

#include "core/bus.h"
#include "core/irq.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct gmem;
struct evloop;
struct aml;
struct snap_writer;
struct snap_file;

#define DM_MAX_DEVS 48
#define DM_ID_MAX   32
#define DM_MAX_RECS 2 /* records one slot's device writes: its own and an inner device's */

/* On disk in slot records: never renumber.  DM_LINE: an interrupt line and no window (a
 * device the guest reaches through guest memory and ACPI only: VMGenID). */
enum dm_kind { DM_MMIO, DM_PIO, DM_LINE };

/* One device slot: its resources, and (after devmgr_attach) its ops and state. */
struct dm_dev {
	char id[DM_ID_MAX]; /* stable id, the key of its snapshot record: "virtio-blk0" */
	enum dm_kind kind;
	uint64_t base, len; /* MMIO window or port range; 0, 0 for DM_LINE */
	bool has_irq;
	struct irq_line irq;
	const struct dev_ops *ops; /* NULL until attached */
	void *dev;
	unsigned index; /* order of registration */
};

/* What a device writes when asked to describe itself. */
struct dm_describe {
	struct aml *dsdt; /* DSDT body to append Device() nodes to; NULL without ACPI */
	char *cmdline; /* kernel command line to append to (virtio_mmio.device=); NULL if not wanted */
	size_t cmdline_size;
};

/* Services the VM provides; all optional (NULL in unit tests). */
struct devmgr_hooks {
	void *ctx;
	/* Bind l->fd (an eventfd the manager created) to GSI l->gsi as an irqfd; for a level
	 * line (l->level) with l->resample_fd as its resample eventfd (asserted until EOI). */
	int (*irq_bind)(void *ctx, struct irq_line *l);
	/* (De)register an ioeventfd: a guest write of `len` bytes matching `datamatch` at `addr`
	 * signals `fd` instead of exiting to user space. */
	int (*ioeventfd)(void *ctx, uint64_t addr, unsigned len, uint64_t datamatch, int fd,
			 bool assign);
	/* Make host memory [hva, hva+size) guest-visible at [gpa, gpa+size) as a memory slot of
	 * its own (not RAM: no dirty tracking, not in snapshots): the fuzz device's windows. */
	int (*mem_slot)(void *ctx, uint64_t gpa, void *hva, uint64_t size);
};

struct devmgr {
	struct bus mmio;
	struct bus pio;
	struct dm_dev *devs[DM_MAX_DEVS];
	int nr_devs;
	uint64_t mmio_next;
	uint32_t gsi_next;
	struct devmgr_hooks hooks;
	struct gmem *gm;
	struct evloop *ev;
};

/* Empty manager over guest memory `gm` and event loop `ev` (either may be NULL in tests). */
void devmgr_init(struct devmgr *dm, struct gmem *gm, struct evloop *ev,
		 const struct devmgr_hooks *hooks);
/* What devmgr_add() reserves for one device: a slot of `kind` named `id` (its stable id).
 *   DM_MMIO: the next free window of `len` bytes (rounded up to 4 KiB); with `irq`, the next
 *            free GSI as a level-triggered line;
 *   DM_PIO:  the fixed ports [base, base+len); with `irq`, the fixed GSI `gsi`, edge-triggered;
 *   DM_LINE: no window; the fixed GSI `gsi`, edge-triggered (`irq` must be set).
 * Fields a kind does not use stay 0; without `irq` the slot has no line. */
struct dm_slot_req {
	const char *id;
	enum dm_kind kind;
	uint64_t base, len;
	bool irq;
	uint32_t gsi;
};
/* The one way to add a device: reserve the slot `req` describes, call
 * create(dm, slot, arg, &dev) (the slot already holds its window and line, which the device
 * may keep pointers into), and put dev on the slot's bus with `ops`.  Ownership:
 *   - create fails: it leaves nothing behind; the slot is released (its id, ports and fixed
 *     GSI are free again; MMIO windows and allocated GSIs are never handed out twice);
 *   - the attach fails: destroy(dev) undoes create, once, and then the slot is released, so
 *     the device still has its line while it is torn down (NULL: create lent dev, nothing to
 *     undo);
 *   - success: the manager owns dev and frees it with ops->destroy (devmgr_destroy).
 * On success *out (if not NULL) is dev.  0 or -errno; on failure nothing is left behind.
 * An ops table with a save but no record declared (or the reverse, or save without restore)
 * is -EINVAL before anything is reserved: every device kind that saves names its record. */
int devmgr_add(struct devmgr *dm, const struct dm_slot_req *req, const struct dev_ops *ops,
	       int (*create)(struct devmgr *dm, struct dm_dev *slot, const void *arg, void **dev),
	       void (*destroy)(void *dev), const void *arg, void **out)
	__attribute__((warn_unused_result));
/* The steps of devmgr_add() one by one, for tests: devices use devmgr_add().
 * Reserve the next MMIO slot (len rounded up to 4 KiB slots) and, if irq, the next free GSI
 * as a level-triggered line (its owner sets the level source). */
int devmgr_reserve_mmio(struct devmgr *dm, const char *id, uint64_t len, bool irq,
			struct dm_dev **out) __attribute__((warn_unused_result));
/* Reserve fixed ports [base, base+len) and, if gsi >= 0, that fixed GSI as an edge-triggered
 * line (legacy ISA devices). */
int devmgr_reserve_pio(struct devmgr *dm, const char *id, uint16_t base, uint16_t len, int gsi,
		       struct dm_dev **out) __attribute__((warn_unused_result));
/* Reserve a slot without a window holding the fixed GSI `gsi` as an edge-triggered line
 * (one irq_trigger() is one pulse).  -EBUSY if another slot has that GSI. */
int devmgr_reserve_line(struct devmgr *dm, const char *id, uint32_t gsi, struct dm_dev **out)
	__attribute__((warn_unused_result));
/* Put a reserved slot's device on its bus (a DM_LINE slot has none: it is only recorded).
 * On failure the slot is released.  -EINVAL (as devmgr_add) for an ops table whose save,
 * restore and rec do not agree (core/bus.h). */
int devmgr_attach(struct devmgr *dm, struct dm_dev *d, const struct dev_ops *ops, void *dev)
	__attribute__((warn_unused_result));
/* Ask every attached device to describe itself, in registration order. */
int devmgr_describe(struct devmgr *dm, struct dm_describe *ctx) __attribute__((warn_unused_result));
/* Register an ioeventfd through the VM hook; -ENOSYS without one (caller falls back to exits). */
int devmgr_ioeventfd(struct devmgr *dm, uint64_t addr, unsigned len, uint64_t datamatch, int fd,
		     bool assign);
/* Register an extra memory slot through the VM hook; -ENOSYS without one (unit tests). */
int devmgr_mem_slot(struct devmgr *dm, uint64_t gpa, void *hva, uint64_t size)
	__attribute__((warn_unused_result));
/* GSIs (bit n = GSI n, n < 32) of the level-triggered lines: what the MP table declares. */
uint32_t devmgr_level_gsis(const struct devmgr *dm);
/* Find a device by its stable id. */
struct dm_dev *devmgr_find(struct devmgr *dm, const char *id);
/* Quiesce every device (dev_ops.quiesce), in registration order. */
void devmgr_quiesce(struct devmgr *dm);
/* Append a SNAP_REC_SLOT record per device (kind, window, interrupt line) followed by the
 * device's own records (dev_ops.save).  A device may write only the records it declares
 * (devmgr_records): anything else fails the save with -EPROTO and a log line naming it, so a
 * snapshot the loader would refuse is never written.  0 or -errno. */
int devmgr_save(struct devmgr *dm, struct snap_writer *w) __attribute__((warn_unused_result));
/* The records the device on slot `d` declares (dev_ops.rec, then its inner_rec): what its save
 * writes and a restore accepts for it.  Fills out[] and returns how many (0..DM_MAX_RECS). */
unsigned devmgr_records(const struct dm_dev *d, struct dev_rec out[DM_MAX_RECS]);
/* Whether a record found in a snapshot belongs to this machine's devices: a slot record for a
 * slot it has, or a record that the device with that id declares, of a version no newer than
 * the one it declares (each device's restore checks the rest).  This is the loader's only
 * notion of a device record: it comes from the devices' ops tables, so a device kind cannot
 * save a record that restore does not know.  0, or -EINVAL with one line in why: an unknown
 * record type, or a known one for a device this machine lacks or that does not write it. */
int devmgr_check_record(struct devmgr *dm, uint16_t type, uint16_t version, const char *id,
			char *why, size_t why_size) __attribute__((warn_unused_result));
/* Hold every interrupt line while a restore or an in-place reset loads device and vCPU state,
 * and release them once the vCPUs are loaded: a raise made in between is delivered at release
 * (edge lines: one edge; level lines: asserted if the owner's level is high).  See irq.h. */
void devmgr_irqs_hold(struct devmgr *dm);
void devmgr_irqs_release(struct devmgr *dm);
/* After the same devices were created again from the snapshot's machine description: check
 * that every slot got the recorded window and line and that the snapshot has no device this
 * machine lacks, then load each device's records.  On failure writes one reason into why. */
int devmgr_restore(struct devmgr *dm, const struct snap_file *f, char *why, size_t why_size)
	__attribute__((warn_unused_result));
/* Reset every device (guest reboot in place, snapshot reset). */
void devmgr_reset(struct devmgr *dm);
/* Destroy every device in reverse registration order and free the slots. */
void devmgr_destroy(struct devmgr *dm);
/* Append printf-style text to a describe context's command line; -ENOSPC if it does not fit. */
int dm_cmdline_append(struct dm_describe *ctx, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
