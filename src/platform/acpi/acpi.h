/* ACPI tables for the guest (ACPI 6.4 §5.2): RSDP, XSDT, FADT (hardware-reduced), MADT, DSDT.
 * The DSDT body comes from walking the DeviceManager (each device describes itself). */
#ifndef IGNITION_PLATFORM_ACPI_ACPI_H
#define IGNITION_PLATFORM_ACPI_ACPI_H

#include <stddef.h>
#include <stdint.h>

struct devmgr;

struct acpi_config {
	unsigned nr_cpus;  /* one LAPIC per vCPU, APIC ids 0..nr_cpus-1 */
	uint8_t *buf;      /* host memory the tables are written into */
	size_t buf_size;
	uint64_t buf_gpa;  /* guest physical address of buf[0] (table pointers are guest addresses) */
};

/* Build all tables into cfg->buf; *rsdp_gpa = guest address of the RSDP, *used = bytes used.
 * -ENOSPC if the tables do not fit. */
int acpi_build(const struct acpi_config *cfg, struct devmgr *dm, uint64_t *rsdp_gpa, size_t *used)
	__attribute__((warn_unused_result));

#endif
