/* ACPI table builder (ACPI 6.4 §5.2).  Layout in the caller's buffer, each table 16-byte
 * aligned:
 *
 *   RSDP | XSDT -> { FADT, MADT } | FADT -> DSDT | MADT | DSDT
 *
 * The RSDP comes first so that it sits on a 16-byte boundary at the start of the buffer; the
 * VM places the buffer at 0xE0000, where a guest that is not handed boot_params.acpi_rsdp_addr
 * scans for it (ACPI 6.4 §5.2.5.1).  There is no RSDT (RsdtAddress = 0): revision 2 RSDPs give
 * the XSDT, which every ACPI 2.0+ OS uses.  There is no FACS either: the FADT is
 * hardware-reduced (§4.1), so there is no global lock or firmware waking vector.
 *
 * Every field is written with explicit little-endian stores at its spec offset, never through
 * a packed struct. */
#include "platform/acpi/acpi.h"

#include "arch/x86/layout.h"
#include "core/devmgr.h"
#include "core/le.h"
#include "platform/acpi/aml.h"

#include <errno.h>
#include <string.h>

#define OEM_ID		 "IGNITN"   /* 6 bytes */
#define OEM_TABLE_ID	 "IGNITION" /* 8 bytes */
#define OEM_REVISION	 1
#define CREATOR_ID	 "IGNT" /* 4 bytes */
#define CREATOR_REVISION 1
#define HYPERVISOR_ID	 "IGNITION" /* FADT Hypervisor Vendor Identity, 8 bytes */

/* ACPI 6.4 §5.2.6 System Description Table Header. */
#define HDR_LEN 36

/* ACPI 6.4 §5.2.5.3 RSDP (revision 2). */
#define RSDP_LEN       36
#define RSDP_V1_LEN    20 /* the part the first checksum covers */
#define RSDP_CHECKSUM  8
#define RSDP_OEMID     9
#define RSDP_REVISION  15
#define RSDP_RSDT      16
#define RSDP_LENGTH    20
#define RSDP_XSDT      24
#define RSDP_EXT_CHECK 32

/* ACPI 6.4 §5.2.9 FADT, revision 6 (minor version 4 for ACPI 6.4). */
#define FADT_LEN	    276
#define FADT_REVISION	    6
#define FADT_MINOR_VERSION  4
#define FADT_DSDT	    40
#define FADT_SCI_INT	    46
#define FADT_IAPC_BOOT_ARCH 109
#define FADT_FLAGS	    112
#define FADT_RESET_REG	    116
#define FADT_RESET_VALUE    128
#define FADT_MINOR	    131
#define FADT_X_DSDT	    140
#define FADT_SLEEP_CONTROL  244
#define FADT_SLEEP_STATUS   256
#define FADT_HYPERVISOR_ID  268

/* IA-PC Boot Architecture Flags, ACPI 6.4 §5.2.9.3 (Table 5.11). */
#define IAPC_8042	     (1u << 1) /* deliberately not set, see acpi_build */
#define IAPC_VGA_NOT_PRESENT (1u << 2)

/* FADT Fixed Feature Flags, ACPI 6.4 §5.2.9 (Table 5.10). */
#define FADT_F_WBINVD	     (1u << 0)
#define FADT_F_PWR_BUTTON    (1u << 4)
#define FADT_F_SLP_BUTTON    (1u << 5)
#define FADT_F_RESET_REG_SUP (1u << 10)
#define FADT_F_HW_REDUCED    (1u << 20)

/* Generic Address Structure, ACPI 6.4 §5.2.3.2. */
#define GAS_SYSTEM_IO	1
#define GAS_ACCESS_BYTE 1

/* ACPI 6.4 §5.2.12 MADT, revision 5. */
#define MADT_REVISION	       5
#define MADT_LAPIC_ADDR	       36
#define MADT_FLAGS	       40
#define MADT_ENTRIES	       44
#define MADT_PCAT_COMPAT       (1u << 0)
#define MADT_LAPIC	       0 /* §5.2.12.2 Processor Local APIC */
#define MADT_LAPIC_LEN	       8
#define MADT_LAPIC_ENABLED     (1u << 0)
#define MADT_IOAPIC	       1 /* §5.2.12.3 I/O APIC */
#define MADT_IOAPIC_LEN	       12
#define MADT_ISO	       2 /* §5.2.12.5 Interrupt Source Override */
#define MADT_ISO_LEN	       10
#define MADT_LAPIC_NMI	       4 /* §5.2.12.7 Local APIC NMI */
#define MADT_LAPIC_NMI_LEN     6
#define MPS_INTI_POLARITY_HIGH (1u << 0) /* §5.2.12.5 Table 5.26: 01 active high */
#define MPS_INTI_TRIGGER_EDGE  (1u << 2) /* 01 edge-triggered */

#define XSDT_REVISION 1
#define DSDT_REVISION 2 /* revision 2+: Integers are 64 bits (ACPI 6.4 §5.2.11.1) */

static void put_header(uint8_t *t, const char sig[4], uint32_t len, uint8_t rev)
{
	memcpy(t, sig, 4);
	put_le32(t + 4, len);
	t[8] = rev;
	/* t[9], the checksum, is filled in last by finish_table. */
	memcpy(t + 10, OEM_ID, 6);
	memcpy(t + 16, OEM_TABLE_ID, 8);
	put_le32(t + 24, OEM_REVISION);
	memcpy(t + 28, CREATOR_ID, 4);
	put_le32(t + 32, CREATOR_REVISION);
}

static void finish_table(uint8_t *t, size_t len)
{
	t[9] = 0;
	t[9] = sum_to_zero(t, len);
}

/* Generic Address Structure (§5.2.3.2) for a one-byte register in I/O space. */
static void put_gas_io8(uint8_t *p, uint16_t port)
{
	p[0] = GAS_SYSTEM_IO;
	p[1] = 8; /* register bit width */
	p[2] = 0; /* bit offset */
	p[3] = GAS_ACCESS_BYTE;
	put_le64(p + 4, port);
}

static void build_rsdp(uint8_t *t, uint64_t xsdt_gpa)
{
	memcpy(t, "RSD PTR ", 8);
	memcpy(t + RSDP_OEMID, OEM_ID, 6);
	t[RSDP_REVISION] = 2;
	put_le32(t + RSDP_RSDT, 0);
	put_le32(t + RSDP_LENGTH, RSDP_LEN);
	put_le64(t + RSDP_XSDT, xsdt_gpa);
	/* The first checksum covers the ACPI 1.0 part, the extended one the whole structure
	 * (including the first checksum), §5.2.5.3. */
	t[RSDP_CHECKSUM] = sum_to_zero(t, RSDP_V1_LEN);
	t[RSDP_EXT_CHECK] = sum_to_zero(t, RSDP_LEN);
}

static void build_xsdt(uint8_t *t, const uint64_t *entries, unsigned n)
{
	uint32_t len = HDR_LEN + 8 * n;

	put_header(t, "XSDT", len, XSDT_REVISION);
	for (unsigned i = 0; i < n; i++)
		put_le64(t + HDR_LEN + 8 * i, entries[i]);
	finish_table(t, len);
}

static void build_fadt(uint8_t *t, uint64_t dsdt_gpa)
{
	put_header(t, "FACP", FADT_LEN, FADT_REVISION);
	/* FIRMWARE_CTRL/X_FIRMWARE_CTRL stay 0: no FACS in hardware-reduced mode (§5.2.9).
	 * The 32-bit DSDT field holds the same address when it fits, for old readers; ACPICA
	 * prefers X_DSDT and only warns if the two differ. */
	if (dsdt_gpa <= UINT32_MAX)
		put_le32(t + FADT_DSDT, (uint32_t)dsdt_gpa);
	/* No SCI: hardware-reduced ACPI has no fixed events or GPE blocks; all PM1/PM2/PM timer/
	 * GPE blocks and their lengths stay 0 (§4.1). */
	put_le16(t + FADT_SCI_INT, 0);
	/* No 8042 flag: the minimal i8042 only takes the reset command (0xFE, used by reboot=k,
	 * which writes the port without probing); with the flag clear Linux skips probing a
	 * keyboard controller that would time out its self-test.  No VGA.  The CMOS RTC at
	 * 0x70/0x71 does exist, so "CMOS RTC Not Present" stays clear; LEGACY_DEVICES stays
	 * clear too (it only enables PnP BIOS probing, there is no PnP BIOS). */
	put_le16(t + FADT_IAPC_BOOT_ARCH, IAPC_VGA_NOT_PRESENT);
	/* PWR_BUTTON/SLP_BUTTON set = no fixed-feature buttons: otherwise Linux fabricates
	 * fixed button devices whose fixed events cannot exist in hardware-reduced mode. */
	put_le32(t + FADT_FLAGS, FADT_F_WBINVD | FADT_F_PWR_BUTTON | FADT_F_SLP_BUTTON |
					 FADT_F_RESET_REG_SUP | FADT_F_HW_REDUCED);
	/* Reset: one byte LAYOUT_ACPI_RESET_VAL to I/O port LAYOUT_ACPI_RESET (§4.8.3.6). */
	put_gas_io8(t + FADT_RESET_REG, LAYOUT_ACPI_RESET);
	t[FADT_RESET_VALUE] = LAYOUT_ACPI_RESET_VAL;
	t[FADT_MINOR] = FADT_MINOR_VERSION;
	put_le64(t + FADT_X_DSDT, dsdt_gpa);
	/* Hardware-reduced sleep registers (§4.8.3.7): Linux only offers S5 poweroff when both
	 * are present and \_S5 evaluates; see ACPI_SLEEP_CTL_S5 for the value written. */
	put_gas_io8(t + FADT_SLEEP_CONTROL, LAYOUT_ACPI_SLEEP_CTL);
	put_gas_io8(t + FADT_SLEEP_STATUS, LAYOUT_ACPI_SLEEP_STS);
	memcpy(t + FADT_HYPERVISOR_ID, HYPERVISOR_ID, 8);
	finish_table(t, FADT_LEN);
}

static size_t madt_len(unsigned nr_cpus)
{
	return MADT_ENTRIES + (size_t)nr_cpus * MADT_LAPIC_LEN + MADT_IOAPIC_LEN + MADT_ISO_LEN +
	       MADT_LAPIC_NMI_LEN;
}

static void build_madt(uint8_t *t, unsigned nr_cpus)
{
	size_t len = madt_len(nr_cpus);
	uint8_t *e = t + MADT_ENTRIES;

	put_header(t, "APIC", (uint32_t)len, MADT_REVISION);
	put_le32(t + MADT_LAPIC_ADDR, (uint32_t)LAYOUT_LAPIC_ADDR);
	/* PCAT_COMPAT: the in-kernel irqchip also models the dual 8259s. */
	put_le32(t + MADT_FLAGS, MADT_PCAT_COMPAT);
	for (unsigned i = 0; i < nr_cpus; i++, e += MADT_LAPIC_LEN) {
		e[0] = MADT_LAPIC;
		e[1] = MADT_LAPIC_LEN;
		e[2] = (uint8_t)i; /* ACPI Processor UID */
		e[3] = (uint8_t)i; /* APIC id = vCPU index (KVM's default) */
		put_le32(e + 4, MADT_LAPIC_ENABLED);
	}
	/* One IOAPIC with 24 pins from GSI 0.  Its id follows the vCPUs' APIC ids so that the
	 * two never clash, as the APIC bus namespace requires on older systems. */
	e[0] = MADT_IOAPIC;
	e[1] = MADT_IOAPIC_LEN;
	e[2] = (uint8_t)nr_cpus;
	e[3] = 0;
	put_le32(e + 4, (uint32_t)LAYOUT_IOAPIC_ADDR);
	put_le32(e + 8, 0);
	e += MADT_IOAPIC_LEN;
	/* ISA IRQ0 (the PIT) arrives on IOAPIC pin 2, as on PCs (the wiring in layout.h, which
	 * the VM programs into KVM); flags 0 = conforms to the ISA bus (edge, active high).
	 * There is no SCI override: hardware-reduced ACPI has no SCI. */
	e[0] = MADT_ISO;
	e[1] = MADT_ISO_LEN;
	e[2] = 0; /* bus: ISA */
	e[3] = LAYOUT_GSI_PIT;
	put_le32(e + 4, (uint32_t)layout_ioapic_pin(LAYOUT_GSI_PIT));
	put_le16(e + 8, 0);
	e += MADT_ISO_LEN;
	/* LINT1 of every processor (UID 0xFF) is the NMI input, edge-triggered active-high. */
	e[0] = MADT_LAPIC_NMI;
	e[1] = MADT_LAPIC_NMI_LEN;
	e[2] = 0xff;
	put_le16(e + 3, MPS_INTI_POLARITY_HIGH | MPS_INTI_TRIGGER_EDGE);
	e[5] = 1;
	finish_table(t, len);
}

/* DSDT body: \_S5 for poweroff, then Scope(\_SB) { every device's node } (ACPI 6.4 §5.2.11.1). */
static int build_dsdt_body(struct aml *body, struct devmgr *dm)
{
	const uint64_t s5[4] = { ACPI_S5_SLP_TYP, 0, 0, 0 };
	struct dm_describe ctx = { 0 };
	struct aml sb;
	size_t mark;
	int ret;

	/* \_S5: SLP_TYPa, SLP_TYPb, two reserved (ACPI 6.4 §7.4.2).  Only SLP_TYPa is used by
	 * hardware-reduced sleep. */
	ret = aml_name_int_package(body, "_S5", s5, 4);
	if (ret)
		return ret;
	aml_init(&sb);
	ctx.dsdt = &sb;
	ret = dm ? devmgr_describe(dm, &ctx) : 0;
	if (!ret && sb.oom)
		ret = -ENOMEM;
	/* The devices' nodes are collected first so that the Scope's PkgLength is known.  The
	 * DSDT's code runs at the root scope, so "_SB" names \_SB (the form iasl emits too). */
	ret = ret ?: aml_scope_begin(body, "_SB", &mark) ?: aml_append(body, sb.buf, sb.len) ?:
		aml_end(body, mark);
	aml_free(&sb);
	return ret;
}

static size_t align16(size_t v)
{
	return (v + 15) & ~(size_t)15;
}

int acpi_build(const struct acpi_config *cfg, struct devmgr *dm, uint64_t *rsdp_gpa, size_t *used)
{
	size_t rsdp_off, xsdt_off, fadt_off, madt_off, dsdt_off, dsdt_len, end;
	uint64_t xsdt_entries[2];
	uint8_t *b = cfg->buf;
	struct aml body;
	int ret;

	/* The RSDP must be 16-byte aligned in guest memory (ACPI 6.4 §5.2.5.1). */
	if (!cfg->buf || cfg->buf_gpa % 16 || cfg->nr_cpus == 0 || cfg->nr_cpus > ACPI_MAX_CPUS)
		return -EINVAL;
	aml_init(&body);
	ret = build_dsdt_body(&body, dm);
	if (ret)
		goto out_free_body;
	dsdt_len = HDR_LEN + body.len;
	if (dsdt_len > UINT32_MAX) {
		ret = -ENOSPC;
		goto out_free_body;
	}

	rsdp_off = 0;
	xsdt_off = align16(rsdp_off + RSDP_LEN);
	fadt_off = align16(xsdt_off + HDR_LEN + 8 * 2);
	madt_off = align16(fadt_off + FADT_LEN);
	dsdt_off = align16(madt_off + madt_len(cfg->nr_cpus));
	end = dsdt_off + dsdt_len;
	if (end > cfg->buf_size || cfg->buf_gpa + end < cfg->buf_gpa) {
		ret = -ENOSPC;
		goto out_free_body;
	}
	/* Tables are read by the guest: no stale bytes in padding. */
	memset(b, 0, end);

	put_header(b + dsdt_off, "DSDT", (uint32_t)dsdt_len, DSDT_REVISION);
	memcpy(b + dsdt_off + HDR_LEN, body.buf, body.len);
	finish_table(b + dsdt_off, dsdt_len);
	build_madt(b + madt_off, cfg->nr_cpus);
	build_fadt(b + fadt_off, cfg->buf_gpa + dsdt_off);
	xsdt_entries[0] = cfg->buf_gpa + fadt_off;
	xsdt_entries[1] = cfg->buf_gpa + madt_off;
	build_xsdt(b + xsdt_off, xsdt_entries, 2);
	build_rsdp(b + rsdp_off, cfg->buf_gpa + xsdt_off);

	*rsdp_gpa = cfg->buf_gpa + rsdp_off;
	*used = end;
	ret = 0;
out_free_body:
	aml_free(&body);
	return ret;
}
