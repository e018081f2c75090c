/* VMGenID (see vmgenid.h): the generation ID in guest memory, its DSDT nodes, and the Generic
 * Event Device interrupt that tells the guest a new generation began. */
#include "devices/vmgenid.h"

#include "arch/x86/layout.h"
#include "core/devmgr.h"
#include "core/gmem.h"
#include "platform/acpi/aml.h"
#include "util/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* Linux memremaps the ID; Microsoft's specification asks for 8-byte alignment.  The place
 * must be reserved in the e820 map (boot.c reserves 0x9FC00..1 MiB) and apart from the ACPI
 * tables, which acpi_build() writes up to LAYOUT_ACPI_END. */
_Static_assert(LAYOUT_VMGENID_ADDR % 8 == 0, "VMGenID address must be 8-byte aligned");
_Static_assert(LAYOUT_VMGENID_SIZE == VMGENID_ID_SIZE, "VMGenID size");
_Static_assert(LAYOUT_VMGENID_ADDR >= LAYOUT_ACPI_END ||
		       LAYOUT_VMGENID_ADDR + LAYOUT_VMGENID_SIZE <= LAYOUT_ACPI_START,
	       "VMGenID must not overlap the ACPI tables");
_Static_assert(LAYOUT_VMGENID_ADDR >= LAYOUT_EBDA_START &&
		       LAYOUT_VMGENID_ADDR + LAYOUT_VMGENID_SIZE <= LAYOUT_KERNEL_ADDR,
	       "VMGenID must be in the e820-reserved low area");
/* Its line is fixed and outside the range devmgr_reserve_mmio() allocates from. */
_Static_assert(LAYOUT_GSI_VMGENID > LAYOUT_GSI_LAST && LAYOUT_GSI_VMGENID < LAYOUT_IOAPIC_PINS,
	       "VMGenID GSI");

/* Draws of a new ID that may come out equal to the old one before we give up (2^-128 each). */
#define MAX_DRAWS 4
/* getrandom() interrupted by a signal: retries. */
#define MAX_EINTR 16

struct vmgenid {
	struct gmem *gm;
	uint64_t gpa;
	struct irq_line *irq;
	uint64_t generations;
};

static int random_id(uint8_t id[VMGENID_ID_SIZE])
{
	size_t got = 0;

	/* Flags 0: the host's pool is long initialised when a VM starts, and this runs on the
	 * thread building or restoring the VM, never on the event loop. */
	for (int tries = 0; got < VMGENID_ID_SIZE; tries++) {
		ssize_t r = getrandom(id + got, VMGENID_ID_SIZE - got, 0);

		if (r < 0 && errno == EINTR && tries < MAX_EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -errno : -EIO;
		got += (size_t)r;
	}
	return 0;
}

/* Draw an ID that differs from the one in guest memory (the driver ignores a notification
 * whose ID did not change) and store it there. */
int vmgenid_generate(struct vmgenid *v)
{
	uint8_t *p = gmem_ptr(v->gm, v->gpa, VMGENID_ID_SIZE);
	uint8_t id[VMGENID_ID_SIZE];
	int ret;

	if (!p)
		return -EFAULT;
	for (int i = 0; i < MAX_DRAWS; i++) {
		ret = random_id(id);
		if (ret)
			return ret;
		if (memcmp(id, p, sizeof(id)))
			break;
		if (i == MAX_DRAWS - 1)
			return -EIO; /* getrandom is broken; do not pretend */
	}
	gmem_mark_dirty(v->gm, v->gpa, sizeof(id));
	memcpy(p, id, sizeof(id));
	return 0;
}

int vmgenid_new_generation(struct vmgenid *v)
{
	int ret = vmgenid_generate(v);

	if (ret)
		return ret;
	/* The ID is in memory before the interrupt can make the guest read it. */
	__atomic_thread_fence(__ATOMIC_RELEASE);
	v->generations++;
	irq_trigger(v->irq);
	log_info("vmgenid: new generation");
	return 0;
}

uint64_t vmgenid_generations(const struct vmgenid *v)
{
	return v->generations;
}

int vmgenid_create(struct gmem *gm, uint64_t gpa, struct irq_line *irq, struct vmgenid **out)
{
	struct vmgenid *v;

	if (!gm || !irq || irq->level || gpa % 8)
		return -EINVAL;
	if (!gmem_ptr(gm, gpa, VMGENID_ID_SIZE))
		return -EFAULT;
	v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	v->gm = gm;
	v->gpa = gpa;
	v->irq = irq;
	*out = v;
	return 0;
}

void vmgenid_destroy(struct vmgenid *v)
{
	free(v);
}

/* Device (VGEN): the ID's address as the driver wants it, a Package of two Integers, low
 * 32 bits first, under the name ADDR (Linux evaluates "ADDR", not _ADR). */
static int describe_vgen(struct aml *a, uint64_t gpa)
{
	const uint64_t addr[2] = { gpa & 0xffffffffu, gpa >> 32 };
	size_t mark;

	return aml_device_begin(a, VMGENID_NODE, &mark) ?: aml_name_id(a, "_HID", VMGENID_HID) ?:
		aml_name_string(a, "_CID", VMGENID_CID) ?:
		aml_name_string(a, "_DDN", VMGENID_CID) ?:
		aml_name_int_package(a, "ADDR", addr, 2) ?: aml_end(a, mark);
}

/* Device (GED0): the Generic Event Device (ACPI 6.4 §5.6.9) on the slot's edge line.  For a
 * GSI <= 255 Linux's GED driver first looks for _Exx/_Lxx, then _EVT, and calls it with the
 * GSI as Arg0; there is one event, so _EVT notifies without looking.  The devices are
 * described inside \_SB (acpi.c), hence the absolute path. */
static int describe_ged(struct aml *a, uint32_t uid, uint32_t gsi)
{
	struct aml res;
	size_t dev, meth;
	int ret;

	aml_init(&res);
	ret = aml_res_interrupt(&res, gsi, false) ?: aml_device_begin(a, VMGENID_GED, &dev) ?:
		aml_name_id(a, "_HID", "ACPI0013") ?: aml_name_integer(a, "_UID", uid) ?:
		aml_name_resources(a, "_CRS", &res) ?:
		aml_method_begin(a, "_EVT", 1, false, &meth) ?:
		aml_notify(a, "\\_SB." VMGENID_NODE, VMGENID_NOTIFY) ?: aml_end(a, meth) ?:
		aml_end(a, dev);
	aml_free(&res);
	return ret;
}

static int ops_describe(void *dev, const struct dm_dev *slot, struct dm_describe *ctx)
{
	struct vmgenid *v = dev;

	/* Without ACPI (--no-acpi) the guest has no way to find the device. */
	if (!ctx->dsdt || !slot->has_irq)
		return 0;
	return describe_vgen(ctx->dsdt, v->gpa) ?: describe_ged(ctx->dsdt, 0, slot->irq.gsi);
}

static void ops_destroy(void *dev)
{
	vmgenid_destroy(dev);
}

const struct dev_ops vmgenid_ops = {
	.name = "vmgenid",
	.describe = ops_describe,
	.destroy = ops_destroy,
};

static int add_create(struct devmgr *dm, struct dm_dev *slot, const void *arg, void **dev)
{
	struct vmgenid *v;
	int ret = vmgenid_create(dm->gm, LAYOUT_VMGENID_ADDR, &slot->irq, &v);

	if (!ret)
		*dev = v;
	return ret;
}

int vmgenid_add(struct devmgr *dm, struct vmgenid **out)
{
	const struct dm_slot_req req = {
		.id = "vmgenid", .kind = DM_LINE, .irq = true, .gsi = LAYOUT_GSI_VMGENID
	};
	void *dev;
	int ret = devmgr_add(dm, &req, &vmgenid_ops, add_create, ops_destroy, NULL, &dev);

	if (!ret && out)
		*out = dev;
	return ret;
}
