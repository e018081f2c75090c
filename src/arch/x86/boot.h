/* Linux x86 boot protocol (Documentation/arch/x86/boot.rst): load a bzImage or an ELF vmlinux,
 * an initrd and a command line into guest memory, and build the zero page (struct boot_params)
 * with the e820 map and the 64-bit page tables and GDT the kernel is entered with. */
#ifndef IGNITION_ARCH_X86_BOOT_H
#define IGNITION_ARCH_X86_BOOT_H

#include <stddef.h>
#include <stdint.h>

struct gmem;

/* Zero page offsets (boot_params), boot protocol 2.15. */
#define BP_ACPI_RSDP_ADDR   0x070
#define BP_EXT_RAMDISK_IMG  0x0c0
#define BP_EXT_RAMDISK_SIZE 0x0c4
#define BP_EXT_CMD_LINE_PTR 0x0c8
#define BP_E820_ENTRIES	    0x1e8
#define BP_HDR		    0x1f1 /* struct setup_header starts here */
#define BP_E820_TABLE	    0x2d0
#define BP_E820_MAX	    128
#define BP_SIZE		    0x1000

/* setup_header fields, as offsets within the zero page / bzImage. */
#define HDR_SETUP_SECTS	    0x1f1
#define HDR_BOOT_FLAG	    0x1fe
#define HDR_JUMP	    0x200
#define HDR_HEADER	    0x202
#define HDR_VERSION	    0x206
#define HDR_TYPE_OF_LOADER  0x210
#define HDR_LOADFLAGS	    0x211
#define HDR_CODE32_START    0x214
#define HDR_RAMDISK_IMAGE   0x218
#define HDR_RAMDISK_SIZE    0x21c
#define HDR_HEAP_END_PTR    0x224
#define HDR_CMD_LINE_PTR    0x228
#define HDR_INITRD_ADDR_MAX 0x22c
#define HDR_KERNEL_ALIGN    0x230
#define HDR_RELOCATABLE	    0x234
#define HDR_XLOADFLAGS	    0x236
#define HDR_CMDLINE_SIZE    0x238
#define HDR_PREF_ADDRESS    0x258
#define HDR_INIT_SIZE	    0x260

#define HDR_MAGIC	      0x53726448u /* "HdrS" */
#define LOADFLAG_LOADED_HIGH  0x01
#define LOADFLAG_CAN_USE_HEAP 0x80
#define XLF_KERNEL_64	      0x01

#define E820_RAM      1
#define E820_RESERVED 2

struct e820_entry {
	uint64_t addr, size;
	uint32_t type;
};

/* What the loader produced; the vCPU setup uses entry/zero_page. */
struct boot_info {
	uint64_t entry;	     /* 64-bit entry point (guest physical) */
	uint64_t kernel_end; /* first byte after the loaded kernel image */
	uint64_t initrd_addr, initrd_size;
	uint8_t hdr[BP_SIZE]; /* setup header as read from the image (bzImage), else zeros */
	size_t hdr_len;	      /* bytes of hdr that are meaningful (0 for ELF) */
	int is_elf;
};

/* Load a kernel image (bzImage or ELF64 vmlinux) from a file into guest memory.
 * -ENOEXEC with *why set when the file is not a kernel this loader can boot. */
int boot_load_kernel(const struct gmem *gm, const char *path, struct boot_info *bi,
		     const char **why) __attribute__((warn_unused_result));
/* Check that a file looks like a kernel this loader boots, before any VM exists. */
int boot_probe_kernel(const char *path, const char **why) __attribute__((warn_unused_result));
/* Same, from a buffer (unit tests, fuzzing). */
int boot_load_kernel_buf(const struct gmem *gm, const uint8_t *img, size_t len,
			 struct boot_info *bi, const char **why)
	__attribute__((warn_unused_result));
/* Load an initrd file high in low RAM, below the kernel's initrd_addr_max. */
int boot_load_initrd(const struct gmem *gm, const char *path, struct boot_info *bi)
	__attribute__((warn_unused_result));
/* Fill an e820 map for guest RAM: conventional memory, the reserved BIOS/ACPI area,
 * RAM from 1 MiB, RAM above 4 GiB.  Returns the number of entries. */
int boot_e820(const struct gmem *gm, struct e820_entry *map, int max);
/* Write the command line, the zero page (header, e820, initrd, RSDP) into guest memory. */
int boot_setup_zero_page(const struct gmem *gm, const struct boot_info *bi, const char *cmdline,
			 uint64_t rsdp_addr) __attribute__((warn_unused_result));
/* Write the GDT and identity-mapped page tables (first 4 GiB, 2 MiB pages) the kernel is
 * entered with in 64-bit mode. */
int boot_setup_page_tables(const struct gmem *gm) __attribute__((warn_unused_result));
/* GDT entries written by boot_setup_page_tables (selector = index * 8). */
#define BOOT_GDT_CODE	 2 /* __BOOT_CS = 0x10 */
#define BOOT_GDT_DATA	 3 /* __BOOT_DS = 0x18 */
#define BOOT_GDT_TSS	 4
#define BOOT_GDT_ENTRIES 5
/* The raw 64-bit descriptors (also used to fill KVM segment registers). */
extern const uint64_t boot_gdt[BOOT_GDT_ENTRIES];

#endif
