/* x86_64 guest physical memory map (DESIGN.md §3).  All addresses are guest physical. */
#ifndef IGNITION_ARCH_X86_LAYOUT_H
#define IGNITION_ARCH_X86_LAYOUT_H

/* Low memory used by the boot path. */
#define LAYOUT_GDT_ADDR	      0x500ull
#define LAYOUT_IDT_ADDR	      0x520ull
#define LAYOUT_ZERO_PAGE_ADDR 0x7000ull /* struct boot_params; rsi at entry */
#define LAYOUT_BOOT_STACK     0x8ff0ull
#define LAYOUT_PML4_ADDR      0x9000ull /* identity-mapped page tables */
#define LAYOUT_PDPT_ADDR      0xa000ull
#define LAYOUT_PD_ADDR	      0xb000ull /* 4 pages: 4 GiB of 2 MiB mappings */
#define LAYOUT_CMDLINE_ADDR   0x20000ull
#define LAYOUT_CMDLINE_MAX    0x10000ull	/* 64 KiB */
#define LAYOUT_EBDA_START     0x9fc00ull	/* end of usable conventional memory */
#define LAYOUT_MPTABLE_ADDR   LAYOUT_EBDA_START /* MP tables: the last KiB of base memory, */
#define LAYOUT_MPTABLE_SIZE   0x400ull		/* which guests scan for "_MP_" */
#define LAYOUT_ACPI_START     0xe0000ull	/* ACPI tables: 0xE0000..0xEEFFF */
#define LAYOUT_ACPI_END	      0xef000ull
/* The VMGenID generation ID (16 bytes; the page 0xEF000..0xEFFFF is its own): e820-reserved,
 * so Linux never uses it as RAM, and outside the tables.  Below 0xF0000 on purpose: guests
 * scan that segment for "_MP_", "_SM_" and "_DMI_" signatures, and a random ID there could
 * one day look like one.  The E segment is only scanned for the RSDP, which boot_params
 * hands over. */
#define LAYOUT_VMGENID_ADDR 0xef000ull
#define LAYOUT_VMGENID_SIZE 16ull
#define LAYOUT_KERNEL_ADDR  0x100000ull /* bzImage protected-mode kernel */

/* RAM: [0, min(size, hole)) and [4 GiB, ...) for the rest. */
#define LAYOUT_MMIO_HOLE_START 0xc0000000ull /* 3 GiB */
#define LAYOUT_HIGH_RAM_START  0x100000000ull
#define LAYOUT_MAX_RAM	       (1ull << 40)

/* MMIO device window: 4 KiB slots from 3 GiB; the boot-timer takes the first. */
#define LAYOUT_MMIO_START     0xc0000000ull
#define LAYOUT_MMIO_SLOT_SIZE 0x1000ull
#define LAYOUT_MMIO_SIZE      0x10000000ull /* 256 MiB, below the IOAPIC */
#define LAYOUT_IOAPIC_ADDR    0xfec00000ull
#define LAYOUT_LAPIC_ADDR     0xfee00000ull

/* The fuzz device's shared windows (src/devices/fuzz.h): right after the MMIO device window,
 * in the hole below 4 GiB, so never RAM (e820 lists only RAM and the low reserved area; the
 * hole is not usable memory to the guest) and never in a snapshot's memory file.  Each is its
 * own KVM memory slot.  The device's _CRS claims them, so the guest's resource tree knows. */
#define LAYOUT_FUZZ_INPUT_ADDR 0xd0000000ull
#define LAYOUT_FUZZ_INPUT_MAX  0x01000000ull /* 16 MiB */
#define LAYOUT_FUZZ_COV_ADDR   0xd1000000ull
#define LAYOUT_FUZZ_COV_MAX    0x00100000ull /* 1 MiB */

/* Interrupt lines.  GSIs 0..15 are the ISA IRQs; virtio devices get 5..22 minus the fixed
 * ones; 23 is the VMGenID's (its Generic Event Device, an edge-triggered line, the same on
 * every machine). */
#define LAYOUT_GSI_I8042   1
#define LAYOUT_GSI_COM1	   4
#define LAYOUT_GSI_RTC	   8
#define LAYOUT_GSI_FIRST   5
#define LAYOUT_GSI_LAST	   22
#define LAYOUT_GSI_VMGENID 23

/* How GSIs reach the interrupt controllers, as on PCs: GSIs 0..15 are also the 8259 pins;
 * ISA IRQ 0 (the PIT) arrives on IOAPIC pin 2, pin 0 stays unused, and IRQ 2 (the 8259
 * cascade) goes nowhere.  The VM programs this into KVM (KVM_SET_GSI_ROUTING: KVM's own
 * default would put GSI 0 on pin 0) and the MADT (override 0 -> 2) and the MP table describe
 * the same wiring, so the three can never disagree. */
#define LAYOUT_IOAPIC_PINS 24
#define LAYOUT_PIC_LINES   16
#define LAYOUT_GSI_PIT	   0
#define LAYOUT_PIN_PIT	   2

/* The IOAPIC pin GSI `gsi` is wired to, or -1 if none. */
static inline int layout_ioapic_pin(unsigned gsi)
{
	if (gsi == LAYOUT_GSI_PIT)
		return LAYOUT_PIN_PIT;
	if (gsi == LAYOUT_PIN_PIT || gsi >= LAYOUT_IOAPIC_PINS)
		return -1;
	return (int)gsi;
}

/* Fixed I/O ports. */
#define LAYOUT_PORT_COM1      0x3f8
#define LAYOUT_PORT_RTC	      0x70
#define LAYOUT_PORT_I8042     0x60  /* 0x60 data, 0x64 command */
#define LAYOUT_PORT_ACPI_PM   0x600 /* hardware-reduced ACPI sleep control/status, reset */
#define LAYOUT_ACPI_SLEEP_CTL 0x600
#define LAYOUT_ACPI_SLEEP_STS 0x601
#define LAYOUT_ACPI_RESET     0x602
#define LAYOUT_ACPI_RESET_VAL 0x01

#endif
