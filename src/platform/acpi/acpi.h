/* ACPI tables for the guest (ACPI 6.4 §5.2): RSDP, XSDT, FADT (hardware-reduced), MADT, DSDT.
 * The DSDT body comes from walking the DeviceManager (each device describes itself). */
#ifndef IGNITION_PLATFORM_ACPI_ACPI_H
#define IGNITION_PLATFORM_ACPI_ACPI_H

#include <stddef.h>
#include <stdint.h>

struct devmgr;

/* MADT Processor Local APIC entries carry 8-bit APIC ids (0xff is broadcast) and the IOAPIC
 * takes the id after the last vCPU, so at most 254 vCPUs (x2APIC entries would lift this). */
#define ACPI_MAX_CPUS 254

/* Hardware-reduced sleep (ACPI 6.4 §4.8.3.7, §7.4.2): the DSDT says Name(_S5, Package() {
 * ACPI_S5_SLP_TYP, 0, 0, 0 }), and to enter S5 the OS writes (SLP_TYP << 2) | SLP_EN (bit 5)
 * — that is ACPI_SLEEP_CTL_S5 — as one byte to the sleep control register
 * (LAYOUT_ACPI_SLEEP_CTL).  The port handler should power off when SLP_EN is set and
 * ((value >> 2) & 7) == ACPI_S5_SLP_TYP.  Linux first writes WAK_STS (0x80) to the sleep status
 * register (LAYOUT_ACPI_SLEEP_STS) to clear it; that write must be harmless. */
#define ACPI_S5_SLP_TYP	  5
#define ACPI_SLEEP_SLP_EN 0x20
#define ACPI_SLEEP_CTL_S5 ((ACPI_S5_SLP_TYP << 2) | ACPI_SLEEP_SLP_EN) /* 0x34 */

struct acpi_config {
	unsigned nr_cpus; /* one LAPIC per vCPU, APIC ids 0..nr_cpus-1 */
	uint8_t *buf;	  /* host memory the tables are written into */
	size_t buf_size;
	/* Guest physical address of buf[0], 16-byte aligned (table pointers are guest addresses). */
	uint64_t buf_gpa;
};

/* Build all tables into cfg->buf; *rsdp_gpa = guest address of the RSDP, *used = bytes used.
 * -ENOSPC if the tables do not fit (nothing is written then), -EINVAL for nr_cpus outside
 * 1..ACPI_MAX_CPUS or a misaligned buf_gpa, or a device's describe error.  dm may be NULL. */
int acpi_build(const struct acpi_config *cfg, struct devmgr *dm, uint64_t *rsdp_gpa, size_t *used)
	__attribute__((warn_unused_result));

#endif
