/* MP tables (Intel MultiProcessor Specification 1.4, chapter 4).  Layout, 16-byte aligned
 * from the start of the buffer:
 *
 *   floating pointer (16) | configuration table header (44) | entries
 *
 * Entries, in the order the spec asks for (§4.3: processors, buses, I/O APICs, I/O interrupt
 * assignments, local interrupt assignments):
 *   - one processor per vCPU, APIC id = vCPU index, the first flagged as boot processor;
 *   - one ISA bus (id 0);
 *   - one I/O APIC, id = nr_cpus (after the vCPUs' ids, as in the MADT), 24 pins at 0xFEC00000;
 *   - one I/O interrupt entry per line with an IOAPIC pin, from layout_ioapic_pin(): ISA
 *     IRQ 0 (PIT) on pin 2, every other line on the pin of the same number, IRQ 2 (the 8259
 *     cascade) nowhere -- the wiring the VM programs into KVM and the MADT describes.
 *     Lines the caller names in `level_irqs` (virtio-mmio: the VM holds them asserted while
 *     the device's InterruptStatus is nonzero) say level-triggered, active-high in the entry's
 *     flags; the rest conform to the bus (ISA: edge, active-high).  Linux (io_apic.c) takes
 *     an explicit trigger/polarity in an entry over the bus default and programs the pin with
 *     it when it sets up the IOAPIC, so a `virtio_mmio.device=` IRQ (--no-acpi) is handled as
 *     a level interrupt (fasteoi);
 *   - LINT0 = ExtINT, LINT1 = NMI on every local APIC: the 8259s reach the CPUs through
 *     LINT0 (virtual wire), not through an IOAPIC pin.  An ExtINT entry on IOAPIC pin 0
 *     makes Linux try to route the 8259 through the IOAPIC, which KVM does not model; with
 *     it the guest's timer-interrupt checks fail and it loses its tick.
 *
 * There are no extended entries.  Fields are stored one by one at their spec offsets. */
#include "arch/x86/mptable.h"

#include "arch/x86/layout.h"
#include "core/le.h"

#include <errno.h>
#include <string.h>

#define MPF_LEN	    16 /* §4.1 floating pointer structure */
#define MPC_HDR_LEN 44 /* §4.2 configuration table header */
#define MP_SPEC_REV 4  /* version 1.4 */

#define MPC_PROCESSOR	  0 /* §4.3.1, 20 bytes */
#define MPC_BUS		  1 /* §4.3.2, 8 bytes */
#define MPC_IOAPIC	  2 /* §4.3.3, 8 bytes */
#define MPC_IOINT	  3 /* §4.3.4, 8 bytes */
#define MPC_LINT	  4 /* §4.3.5, 8 bytes */
#define MPC_PROCESSOR_LEN 20
#define MPC_ENTRY_LEN	  8

#define CPU_ENABLED	  0x01
#define CPU_BOOTPROCESSOR 0x02
#define LAPIC_VERSION	  0x14 /* what KVM's local APIC reports */
#define IOAPIC_VERSION	  0x11 /* what KVM's I/O APIC reports */
#define IOAPIC_ENABLED	  0x01
#define CPU_SIGNATURE	  0x600 /* family 6; informational only */
#define CPU_FEATURES	  0x201 /* FPU, APIC */

#define INT_TYPE_INT	0
#define INT_TYPE_NMI	1
#define INT_TYPE_EXTINT 3
#define INT_FLAGS_BUS	0 /* polarity and trigger conform to the bus (ISA: edge, high) */
#define BUS_ISA		0
#define ALL_LAPICS	0xff

/* §4.3.4 Table 4-10: bits 0-1 polarity (01 active high), bits 2-3 trigger mode (11 level). */
#define INT_POL_HIGH   0x1
#define INT_TRIG_LEVEL (0x3 << 2)

static size_t table_len(unsigned nr_cpus)
{
	size_t nr_ioint = 0;

	for (unsigned irq = 0; irq < LAYOUT_IOAPIC_PINS; irq++)
		nr_ioint += layout_ioapic_pin(irq) >= 0;

	return MPF_LEN + MPC_HDR_LEN + (size_t)nr_cpus * MPC_PROCESSOR_LEN +
	       MPC_ENTRY_LEN /* bus */ + MPC_ENTRY_LEN /* ioapic */ + nr_ioint * MPC_ENTRY_LEN +
	       2 * MPC_ENTRY_LEN /* LINT0, LINT1 */;
}

static uint8_t *put_ioint(uint8_t *e, uint8_t type, uint16_t flags, uint8_t irq, uint8_t apic,
			  uint8_t pin)
{
	e[0] = MPC_IOINT;
	e[1] = type;
	put_le16(e + 2, flags);
	e[4] = BUS_ISA;
	e[5] = irq;
	e[6] = apic;
	e[7] = pin;
	return e + MPC_ENTRY_LEN;
}

static uint8_t *put_lint(uint8_t *e, uint8_t type, uint8_t lint)
{
	e[0] = MPC_LINT;
	e[1] = type;
	put_le16(e + 2, INT_FLAGS_BUS);
	e[4] = BUS_ISA;
	e[5] = 0;
	e[6] = ALL_LAPICS;
	e[7] = lint;
	return e + MPC_ENTRY_LEN;
}

int mptable_build(uint8_t *buf, size_t size, uint64_t gpa, unsigned nr_cpus, uint32_t level_irqs,
		  size_t *used)
{
	size_t len = table_len(nr_cpus);
	uint8_t *mpf = buf, *mpc = buf + MPF_LEN, *e = mpc + MPC_HDR_LEN;
	uint8_t ioapic_id = (uint8_t)nr_cpus;
	uint16_t count = 0;

	if (nr_cpus == 0 || nr_cpus > MPTABLE_MAX_CPUS)
		return -EINVAL;
	if (size < len || gpa + MPF_LEN > UINT32_MAX)
		return -ENOSPC;
	memset(buf, 0, len);

	for (unsigned i = 0; i < nr_cpus; i++, count++, e += MPC_PROCESSOR_LEN) {
		e[0] = MPC_PROCESSOR;
		e[1] = (uint8_t)i;
		e[2] = LAPIC_VERSION;
		e[3] = CPU_ENABLED | (i == 0 ? CPU_BOOTPROCESSOR : 0);
		put_le32(e + 4, CPU_SIGNATURE);
		put_le32(e + 8, CPU_FEATURES);
	}
	e[0] = MPC_BUS;
	e[1] = BUS_ISA;
	memcpy(e + 2, "ISA   ", 6);
	e += MPC_ENTRY_LEN, count++;
	e[0] = MPC_IOAPIC;
	e[1] = ioapic_id;
	e[2] = IOAPIC_VERSION;
	e[3] = IOAPIC_ENABLED;
	put_le32(e + 4, (uint32_t)LAYOUT_IOAPIC_ADDR);
	e += MPC_ENTRY_LEN, count++;
	for (unsigned irq = 0; irq < LAYOUT_IOAPIC_PINS; irq++) {
		int pin = layout_ioapic_pin(irq);
		uint16_t flags =
			(level_irqs >> irq) & 1 ? INT_POL_HIGH | INT_TRIG_LEVEL : INT_FLAGS_BUS;

		if (pin >= 0)
			e = put_ioint(e, INT_TYPE_INT, flags, (uint8_t)irq, ioapic_id,
				      (uint8_t)pin),
			count++;
	}
	e = put_lint(e, INT_TYPE_EXTINT, 0), count++;
	e = put_lint(e, INT_TYPE_NMI, 1), count++;

	/* §4.2 configuration table header; the length covers the header and base entries. */
	memcpy(mpc, "PCMP", 4);
	put_le16(mpc + 4, (uint16_t)(len - MPF_LEN));
	mpc[6] = MP_SPEC_REV;
	memcpy(mpc + 8, "IGNITION", 8);
	memcpy(mpc + 16, "MICROVM     ", 12);
	put_le16(mpc + 34, count);
	put_le32(mpc + 36, (uint32_t)LAYOUT_LAPIC_ADDR);
	mpc[7] = sum_to_zero(mpc, len - MPF_LEN);

	/* §4.1 floating pointer: feature byte 1 = 0 (a configuration table is present),
	 * feature byte 2 = 0 (virtual wire mode, no IMCR). */
	memcpy(mpf, "_MP_", 4);
	put_le32(mpf + 4, (uint32_t)(gpa + MPF_LEN));
	mpf[8] = 1; /* length in 16-byte units */
	mpf[9] = MP_SPEC_REV;
	mpf[10] = sum_to_zero(mpf, MPF_LEN);

	*used = len;
	return 0;
}
