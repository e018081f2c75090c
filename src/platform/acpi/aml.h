/* A tiny AML (ACPI Machine Language) emitter: bytes in, bytes out, no KVM.
 * Only what ignition's DSDT needs (ACPI 6.4 §20).
 *
 * Every emitter appends to a growable buffer and returns 0 or -errno: -EINVAL for a bad name
 * or value, -ENOMEM once an allocation failed (the buffer is then marked `oom` and every later
 * call fails too, so callers may check only the last result), -E2BIG for a package longer than
 * a PkgLength can encode.
 *
 * Names: a NameSeg is 1..4 characters [A-Z0-9_], the first not a digit, padded with '_' to four
 * as ASL does ("_SB" is "_SB_").  A path is an optional '\' (root) or '^'s (parent), then
 * NameSegs separated by '.' (ACPI 6.4 §20.2.2). */
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

/* Largest package body a PkgLength can describe (4-byte form, 28 bits, minus itself). */
#define AML_PKGLEN_MAX (0x0fffffffu - 4)

/* Empty buffer. */
void aml_init(struct aml *a);
/* Free the buffer. */
void aml_free(struct aml *a);

/* Append raw bytes (already encoded AML, e.g. another buffer's contents). */
int aml_append(struct aml *a, const void *p, size_t n) __attribute__((warn_unused_result));
/* Encode the PkgLength of a package whose contents after the PkgLength are `body` bytes into
 * out[]; returns the encoding's size (1..4) or -E2BIG (ACPI 6.4 §20.2.4). */
int aml_pkglen_encode(size_t body, uint8_t out[4]);

/* Primitive data objects (ACPI 6.4 §20.2.3): the shortest of Zero/One/Byte/Word/DWord/QWord. */
int aml_integer(struct aml *a, uint64_t v) __attribute__((warn_unused_result));
/* A String object; characters 0x01..0x7f only. */
int aml_string(struct aml *a, const char *s) __attribute__((warn_unused_result));
/* A NameString (see the path rules above). */
int aml_namestring(struct aml *a, const char *path) __attribute__((warn_unused_result));

/* Open Scope(path) { ... }; *mark remembers where its PkgLength goes.  Close with aml_end. */
int aml_scope_begin(struct aml *a, const char *path, size_t *mark)
	__attribute__((warn_unused_result));
/* Open Device(name) { ... }.  Close with aml_end. */
int aml_device_begin(struct aml *a, const char *name, size_t *mark)
	__attribute__((warn_unused_result));
/* Open Method(name, nargs, Serialized or NotSerialized) { ... } (ACPI 6.4 §20.2.5.2), sync
 * level 0; nargs 0..7.  Close with aml_end. */
int aml_method_begin(struct aml *a, const char *name, unsigned nargs, bool serialized, size_t *mark)
	__attribute__((warn_unused_result));
/* Close the innermost open Scope/Device/Method: insert its PkgLength now that its size is
 * known.  Opened objects must be closed innermost first. */
int aml_end(struct aml *a, size_t mark) __attribute__((warn_unused_result));

/* Name(name, v) for an Integer. */
int aml_name_integer(struct aml *a, const char *name, uint64_t v)
	__attribute__((warn_unused_result));
/* Name(name, "s") for a String. */
int aml_name_string(struct aml *a, const char *name, const char *s)
	__attribute__((warn_unused_result));
/* Name(name, id) for a device id (_HID/_CID): a PNP-style "AAA####" id becomes an EisaId
 * integer (ACPI 6.4 §6.1.5), anything else (ACPI ids such as "LNRO0005") a String. */
int aml_name_id(struct aml *a, const char *name, const char *id)
	__attribute__((warn_unused_result));
/* Name(name, Package() { v[0], ..., v[n-1] }) of Integers, n <= 255. */
int aml_name_int_package(struct aml *a, const char *name, const uint64_t *v, unsigned n)
	__attribute__((warn_unused_result));

/* Notify(path, value) (ACPI 6.4 §20.2.5.3): a notification `value` for the object at path
 * (a NameString such as \_SB.VGEN). */
int aml_notify(struct aml *a, const char *path, uint64_t value) __attribute__((warn_unused_result));

/* Resource descriptors (ACPI 6.4 §6.4) are appended to a separate struct aml `r`, then wrapped
 * with aml_name_resources, which adds the End Tag and the Buffer around them. */
/* Memory32Fixed(ReadWrite or ReadOnly, base, len). */
int aml_res_mem32(struct aml *r, uint32_t base, uint32_t len, bool rw)
	__attribute__((warn_unused_result));
/* QWordMemory(ResourceConsumer, PosDecode, MinFixed, MaxFixed, NonCacheable, rw) for windows
 * above 4 GiB. len > 0 and base + len must not overflow. */
int aml_res_mem64(struct aml *r, uint64_t base, uint64_t len, bool rw)
	__attribute__((warn_unused_result));
/* IO(Decode16, port, port, 1, len), 1 <= len <= 255. */
int aml_res_io(struct aml *r, uint16_t port, uint8_t len) __attribute__((warn_unused_result));
/* IRQNoFlags() { irq }: an ISA IRQ (0..15), edge-triggered, active-high, exclusive. */
int aml_res_irq(struct aml *r, unsigned irq) __attribute__((warn_unused_result));
/* Interrupt(ResourceConsumer, Level or Edge, ActiveHigh, Exclusive) { gsi }. */
int aml_res_interrupt(struct aml *r, uint32_t gsi, bool level) __attribute__((warn_unused_result));
/* Name(name, ResourceTemplate() { <r's descriptors> }) — a Buffer ending in an End Tag. */
int aml_name_resources(struct aml *a, const char *name, const struct aml *r)
	__attribute__((warn_unused_result));

/* Append a Device(name) { _HID hid, _UID uid, _CRS { Memory32Fixed(RW, base, len),
 * Interrupt(ResourceConsumer, Level|Edge, ActiveHigh, Exclusive) { gsi } } } node (level for
 * a level-triggered line: virtio-mmio).  name: one NameSeg (e.g. "V000").  A window above
 * 4 GiB is a QWordMemory.  gsi < 0: no interrupt. */
int aml_mmio_device(struct aml *a, const char *name, const char *hid, uint32_t uid, uint64_t base,
		    uint32_t len, int gsi, bool level) __attribute__((warn_unused_result));
/* Append a Device(name) { _HID hid, _UID uid, _CRS { IO(Decode16, port, port, 1, len),
 * IRQNoFlags() { irq } } } node for a legacy port device (COM1: "PNP0501", 0x3f8, 8, 4).
 * irq < 0: no interrupt; irq > 15 is described as an edge Interrupt() { irq } instead. */
int aml_pio_device(struct aml *a, const char *name, const char *hid, uint32_t uid, uint16_t port,
		   uint8_t len, int irq) __attribute__((warn_unused_result));

#endif
