/* A tiny AML (ACPI Machine Language) emitter: bytes in, bytes out, no KVM.
 * Only what ignition's DSDT needs (ACPI 6.4 §20). */
#ifndef IGNITION_PLATFORM_ACPI_AML_H
#define IGNITION_PLATFORM_ACPI_AML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct aml {
	uint8_t *buf;
	size_t len, cap;
	bool oom; /* an allocation failed; the buffer is unusable */
};

/* Empty buffer. */
void aml_init(struct aml *a);
/* Free the buffer. */
void aml_free(struct aml *a);
/* Append a Device(name) { _HID hid, _UID uid, _CRS { Memory32Fixed(RW, base, len),
 * Interrupt(ResourceConsumer, Edge, ActiveHigh, Exclusive) { gsi } } } node.
 * name: exactly 4 characters [A-Z0-9_], first not a digit.  gsi < 0: no interrupt. */
int aml_mmio_device(struct aml *a, const char *name, const char *hid, uint32_t uid, uint64_t base,
		    uint32_t len, int gsi) __attribute__((warn_unused_result));

#endif
