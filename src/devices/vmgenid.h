/* VMGenID: a 128-bit "generation ID" in guest memory that changes whenever the VM is started
 * again from a snapshot, and an ACPI notification that it did (Microsoft's "Virtual Machine
 * Generation ID" interface, as Linux's vmgenid driver reads it).  Linux then mixes the new ID
 * into its RNG (add_vmfork_randomness), so two clones of one snapshot stop sharing a
 * /dev/urandom stream.
 *
 * What the guest sees (the device describes itself in the DSDT, inside \_SB):
 *   Device (VGEN) { _HID VMGENID_HID, _CID and _DDN "VM_GEN_COUNTER",
 *                   ADDR = Package { low 32 bits, high 32 bits } of the ID's address }
 *   Device (GED0) { _HID "ACPI0013" (Generic Event Device, ACPI 6.4 §5.6.9),
 *                   _CRS Interrupt (Edge, ActiveHigh, Exclusive) { LAYOUT_GSI_VMGENID },
 *                   Method (_EVT, 1) { Notify (\_SB.VGEN, 0x80) } }
 * Our ACPI is hardware-reduced (no GPE blocks), so the notification comes from the GED's
 * interrupt: vmgenid_new_generation() writes a new ID, then pulses the line; the guest's GED
 * driver runs _EVT, whose Notify makes the vmgenid driver compare and reseed.
 *
 * The ID lives at LAYOUT_VMGENID_ADDR (e820-reserved, outside the ACPI tables), so it is saved
 * with guest memory; the device has no state record.  Nothing here touches KVM. */
#ifndef IGNITION_DEVICES_VMGENID_H
#define IGNITION_DEVICES_VMGENID_H

#include "core/bus.h"
#include "core/irq.h"

#include <stdint.h>

struct devmgr;
struct gmem;
struct vmgenid;

#define VMGENID_ID_SIZE 16
/* Device-specific notification the driver acts on (ACPI 6.4 §5.6.6: 0x80 and up). */
#define VMGENID_NOTIFY 0x80
/* _HID: an ACPI id of ours (iasl refuses Linux's "VMGENCTR", whose suffix is not hex); the
 * driver matches the _CID. */
#define VMGENID_HID "IGNT0001"
#define VMGENID_CID "VM_GEN_COUNTER"
/* DSDT node names. */
#define VMGENID_NODE "VGEN"
#define VMGENID_GED  "GED0"

/* The ops the device manager calls (describe, destroy; no window, so no read/write). */
extern const struct dev_ops vmgenid_ops;

/* A device whose ID lives at guest address `gpa` (8-byte aligned, 16 bytes of guest RAM) and
 * that pulses `irq` (an edge-triggered line) for each new generation.  Writes nothing yet.
 * -EINVAL for a misaligned address or a bad line, -EFAULT if the ID is not in RAM. */
int vmgenid_create(struct gmem *gm, uint64_t gpa, struct irq_line *irq, struct vmgenid **out)
	__attribute__((warn_unused_result));
/* Free the device. */
void vmgenid_destroy(struct vmgenid *v);
/* Reserve the line LAYOUT_GSI_VMGENID as slot "vmgenid", create the device over the manager's
 * guest memory at LAYOUT_VMGENID_ADDR and attach it; boot and restore both call this. */
int vmgenid_add(struct devmgr *dm, struct vmgenid **out) __attribute__((warn_unused_result));
/* Write a fresh random ID into guest memory, different from the one there; no interrupt (a
 * boot: the driver reads the ID when it probes).  0 or -errno (getrandom). */
int vmgenid_generate(struct vmgenid *v) __attribute__((warn_unused_result));
/* A new generation (a restore, once the vCPU state is loaded so that the pending interrupt is
 * not overwritten): a fresh ID, then one pulse of the GED line.  0 or -errno; on an error
 * nothing was written and no interrupt raised. */
int vmgenid_new_generation(struct vmgenid *v) __attribute__((warn_unused_result));
/* Generations started since the device was created (statistics, tests). */
uint64_t vmgenid_generations(const struct vmgenid *v);

#endif
