/* Intel MultiProcessor Specification 1.4 tables: how a kernel booted without ACPI
 * (`--no-acpi`) learns about the vCPUs, the IOAPIC and how ISA/device interrupts reach it. */
#ifndef IGNITION_ARCH_X86_MPTABLE_H
#define IGNITION_ARCH_X86_MPTABLE_H

#include <stddef.h>
#include <stdint.h>

/* Most vCPUs whose tables fit in the 1 KiB the guest scans at the top of base memory. */
#define MPTABLE_MAX_CPUS 32

/* Write the floating pointer and the configuration table for `nr_cpus` vCPUs (APIC ids
 * 0..nr_cpus-1, the first the boot processor) into buf, which the guest sees at `gpa`.  IRQ n
 * with bit n of `level_irqs` set is declared level-triggered, active-high (virtio-mmio lines);
 * every other line edge-triggered, active-high (the ISA default).
 * Returns 0 and the bytes used, -EINVAL for 0 or too many CPUs, -ENOSPC if buf is too small. */
__attribute__((warn_unused_result)) int mptable_build(uint8_t *buf, size_t size, uint64_t gpa,
						      unsigned nr_cpus, uint32_t level_irqs,
						      size_t *used);

#endif
