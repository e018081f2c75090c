/* Hardware-reduced ACPI sleep/reset registers.  Snapshots: the device saves its status
 * register.  The power sink is the VM's, not state.  (The i8042's reset line: i8042.c.) */
#include "devices/power.h"

#include "arch/x86/layout.h"
#include "core/devmgr.h"
#include "snapshot/snap.h"
#include "util/log.h"

#include <errno.h>
#include <stdlib.h>

#define OFF_SLEEP_CTL (LAYOUT_ACPI_SLEEP_CTL - LAYOUT_PORT_ACPI_PM)
#define OFF_SLEEP_STS (LAYOUT_ACPI_SLEEP_STS - LAYOUT_PORT_ACPI_PM)
#define OFF_RESET     (LAYOUT_ACPI_RESET - LAYOUT_PORT_ACPI_PM)
#define ACPI_PM_PORTS (OFF_RESET + 1)

/* What a snapshot keeps of the ACPI registers: SLEEP_CONTROL_REG and RESET_REG act on the
 * write and hold nothing; only the status register has a value. */
struct power_state {
	uint8_t wak_sts; /* SLEEP_STATUS_REG value: 0 or POWER_WAK_STS */
};

struct power {
	struct power_sink sink;
	struct power_state st;
};

/* ---- ACPI ---- */

static uint64_t acpi_read(void *dev, uint64_t off, unsigned size)
{
	struct power *p = dev;

	if (off == OFF_SLEEP_STS)
		return __atomic_load_n(&p->st.wak_sts, __ATOMIC_RELAXED);
	return 0; /* SLEEP_CONTROL_REG and RESET_REG are write-only */
}

static void acpi_write(void *dev, uint64_t off, unsigned size, uint64_t val)
{
	struct power *p = dev;
	unsigned typ;

	switch (off) {
	case OFF_SLEEP_CTL:
		if (!(val & POWER_SLP_EN))
			break;
		typ = (unsigned)(val & POWER_SLP_TYP_MASK) >> POWER_SLP_TYP_SHIFT;
		if (typ == POWER_SLP_TYP_S5) {
			power_request(&p->sink, VM_STOP_POWEROFF);
			break;
		}
		/* No sleep states are offered (the DSDT has only \_S5); if a guest asks anyway,
		 * it "wakes" at once: WAK_STS ends its wait loop (ACPI 6.4 §7.4.2.x). */
		log_guest("acpi: unsupported sleep type %u, waking immediately", typ);
		__atomic_store_n(&p->st.wak_sts, POWER_WAK_STS, __ATOMIC_RELAXED);
		break;
	case OFF_SLEEP_STS:
		if (val & POWER_WAK_STS) /* write 1 to clear */
			__atomic_store_n(&p->st.wak_sts, 0, __ATOMIC_RELAXED);
		break;
	case OFF_RESET:
		if (val == LAYOUT_ACPI_RESET_VAL)
			power_request(&p->sink, VM_STOP_REBOOT);
		break;
	}
}

static void acpi_reset(void *dev)
{
	struct power *p = dev;

	__atomic_store_n(&p->st.wak_sts, 0, __ATOMIC_RELAXED);
}

/* SNAP_REC_POWER payload, version 1: u8 SLEEP_STATUS_REG (0 or POWER_WAK_STS). */
#define POWER_STATE_VERSION 1

static int acpi_save(void *dev, struct snap_writer *w, const char *id)
{
	struct power *p = dev;

	snap_rec_begin(w, SNAP_REC_POWER, POWER_STATE_VERSION, id);
	snap_put_u8(w, __atomic_load_n(&p->st.wak_sts, __ATOMIC_RELAXED));
	return w->err;
}

static int acpi_restore(void *dev, const struct snap_file *f, const char *id)
{
	struct power *p = dev;
	struct power_state st;
	struct snap_reader r;

	if (snap_file_find(f, SNAP_REC_POWER, id, &r) || r.version != POWER_STATE_VERSION)
		return -EINVAL;
	st.wak_sts = snap_get_u8(&r);
	if (snap_reader_done(&r) || (st.wak_sts != 0 && st.wak_sts != POWER_WAK_STS))
		return -EINVAL;
	__atomic_store_n(&p->st.wak_sts, st.wak_sts, __ATOMIC_RELAXED);
	return 0;
}

static void acpi_destroy(void *dev)
{
	power_destroy(dev);
}

const struct dev_ops power_acpi_ops = {
	.name = "acpi-pm",
	.sizes = BUS_SZ1,
	.read = acpi_read,
	.write = acpi_write,
	.reset = acpi_reset,
	.save = acpi_save,
	.restore = acpi_restore,
	.rec = { SNAP_REC_POWER, POWER_STATE_VERSION },
	.destroy = acpi_destroy,
};

int power_create(const struct power_sink *sink, struct power **out)
{
	struct power *p = calloc(1, sizeof(*p));

	if (!p)
		return -ENOMEM;
	if (sink)
		p->sink = *sink;
	*out = p;
	return 0;
}

void power_destroy(struct power *p)
{
	free(p);
}

static int acpi_create(struct devmgr *dm, struct dm_dev *slot, const void *sink, void **dev)
{
	struct power *p;
	int ret = power_create(sink, &p);

	if (!ret)
		*dev = p;
	return ret;
}

int power_acpi_add(struct devmgr *dm, const struct power_sink *sink, struct power **out)
{
	const struct dm_slot_req req = {
		.id = "acpi-pm", .kind = DM_PIO, .base = LAYOUT_PORT_ACPI_PM, .len = ACPI_PM_PORTS
	};
	void *dev;
	int ret = devmgr_add(dm, &req, &power_acpi_ops, acpi_create, acpi_destroy, sink, &dev);

	if (!ret && out)
		*out = dev;
	return ret;
}

int power_add(struct devmgr *dm, const struct power_sink *sink)
{
	return power_acpi_add(dm, sink, NULL);
}
