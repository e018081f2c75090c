/* Boot protocol: bzImage / ELF loading, zero page, e820, page tables. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "arch/x86/boot.h"
#include "arch/x86/layout.h"
#include "core/gmem.h"

#include <elf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define RAM (64u << 20)

static uint8_t *ram;
static struct gmem gm;

static int setup(void **state)
{
	ram = calloc(1, RAM);
	assert_non_null(ram);
	gmem_init_flat(&gm, ram, RAM);
	return 0;
}

static int teardown(void **state)
{
	free(ram);
	return 0;
}

static uint32_t rd32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

static uint64_t rd64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

static void wr16(uint8_t *p, uint16_t v)
{
	memcpy(p, &v, 2);
}

static void wr32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

/* A synthetic bzImage: 1 setup sector + boot sector, then `payload` bytes of kernel. */
static uint8_t *make_bzimage(size_t payload, size_t *len)
{
	size_t n = 1024 + payload;
	uint8_t *img = calloc(1, n < 0x1000 ? 0x1000 : n);

	img[HDR_SETUP_SECTS] = 1;
	wr16(img + HDR_BOOT_FLAG, 0xaa55);
	img[HDR_JUMP] = 0xeb;
	img[HDR_JUMP + 1] = 0x6a; /* header ends at 0x26c */
	wr32(img + HDR_HEADER, HDR_MAGIC);
	wr16(img + HDR_VERSION, 0x020f);
	img[HDR_LOADFLAGS] = LOADFLAG_LOADED_HIGH;
	wr16(img + HDR_XLOADFLAGS, XLF_KERNEL_64);
	wr32(img + HDR_INITRD_ADDR_MAX, 0x7fffffff);
	wr32(img + HDR_CMDLINE_SIZE, 2047);
	wr32(img + HDR_INIT_SIZE, 0x200000);
	for (size_t i = 0; i < payload; i++)
		img[1024 + i] = (uint8_t)(i * 7);
	*len = n < 0x1000 ? 0x1000 : n;
	return img;
}

static void test_bzimage_load(void **state)
{
	size_t len;
	uint8_t *img = make_bzimage(8192, &len);
	struct boot_info bi;
	const char *why;

	assert_int_equal(boot_load_kernel_buf(&gm, img, len, &bi, &why), 0);
	assert_int_equal(bi.entry, LAYOUT_KERNEL_ADDR + 0x200);
	assert_memory_equal(ram + LAYOUT_KERNEL_ADDR, img + 1024, 8192);
	/* init_size (2 MiB) is larger than the payload: the kernel needs that much room. */
	assert_int_equal(bi.kernel_end, LAYOUT_KERNEL_ADDR + 0x200000);
	assert_int_equal(bi.is_elf, 0);
	free(img);
}

static void test_bzimage_rejects(void **state)
{
	size_t len;
	uint8_t *img = make_bzimage(4096, &len);
	struct boot_info bi;
	const char *why;
	uint8_t junk[8192] = { 0 };

	assert_int_equal(boot_load_kernel_buf(&gm, junk, sizeof(junk), &bi, &why), -ENOEXEC);
	assert_non_null(strstr(why, "not a Linux kernel"));

	wr16(img + HDR_VERSION, 0x0204);
	assert_int_equal(boot_load_kernel_buf(&gm, img, len, &bi, &why), -ENOEXEC);
	wr16(img + HDR_VERSION, 0x020f);

	wr16(img + HDR_XLOADFLAGS, 0);
	assert_int_equal(boot_load_kernel_buf(&gm, img, len, &bi, &why), -ENOEXEC);
	assert_non_null(strstr(why, "64-bit"));
	wr16(img + HDR_XLOADFLAGS, XLF_KERNEL_64);

	/* Setup sectors claim more than the file holds. */
	img[HDR_SETUP_SECTS] = 200;
	assert_int_equal(boot_load_kernel_buf(&gm, img, len, &bi, &why), -ENOEXEC);
	img[HDR_SETUP_SECTS] = 1;

	/* init_size beyond guest RAM. */
	wr32(img + HDR_INIT_SIZE, RAM);
	assert_int_equal(boot_load_kernel_buf(&gm, img, len, &bi, &why), -ENOMEM);
	free(img);
}

static void test_elf_load(void **state)
{
	uint8_t img[4096] = { 0 };
	Elf64_Ehdr *eh = (Elf64_Ehdr *)img;
	Elf64_Phdr ph = { 0 };
	struct boot_info bi;
	const char *why;

	memcpy(eh->e_ident, ELFMAG, SELFMAG);
	eh->e_ident[EI_CLASS] = ELFCLASS64;
	eh->e_ident[EI_DATA] = ELFDATA2LSB;
	eh->e_type = ET_EXEC;
	eh->e_machine = EM_X86_64;
	eh->e_entry = 0x1000000;
	eh->e_phoff = sizeof(*eh);
	eh->e_phentsize = sizeof(ph);
	eh->e_phnum = 1;
	ph.p_type = PT_LOAD;
	ph.p_offset = 1024;
	ph.p_paddr = 0x1000000;
	ph.p_filesz = 16;
	ph.p_memsz = 4096;
	memcpy(img + sizeof(*eh), &ph, sizeof(ph));
	memset(img + 1024, 0xab, 16);
	memset(ram + 0x1000000 + 16, 0xff, 64); /* must be zeroed (bss) */

	assert_int_equal(boot_load_kernel_buf(&gm, img, sizeof(img), &bi, &why), 0);
	assert_int_equal(bi.entry, 0x1000000);
	assert_int_equal(bi.is_elf, 1);
	assert_int_equal(ram[0x1000000], 0xab);
	assert_int_equal(ram[0x1000000 + 16], 0);
	assert_int_equal(bi.kernel_end, 0x1000000 + 4096);

	/* Segment beyond RAM, file offset beyond the file, entry outside RAM. */
	ph.p_paddr = RAM - 100;
	memcpy(img + sizeof(*eh), &ph, sizeof(ph));
	assert_int_equal(boot_load_kernel_buf(&gm, img, sizeof(img), &bi, &why), -ENOMEM);
	ph.p_paddr = 0x1000000;
	ph.p_offset = 1u << 30;
	memcpy(img + sizeof(*eh), &ph, sizeof(ph));
	assert_int_equal(boot_load_kernel_buf(&gm, img, sizeof(img), &bi, &why), -ENOEXEC);
	ph.p_offset = 1024;
	memcpy(img + sizeof(*eh), &ph, sizeof(ph));
	eh->e_entry = 1ull << 40;
	assert_int_equal(boot_load_kernel_buf(&gm, img, sizeof(img), &bi, &why), -ENOEXEC);
	/* Program header table that runs off the end of the file. */
	eh->e_entry = 0x1000000;
	eh->e_phnum = 1000;
	assert_int_equal(boot_load_kernel_buf(&gm, img, sizeof(img), &bi, &why), -ENOEXEC);
	/* Wrong machine. */
	eh->e_phnum = 1;
	eh->e_machine = EM_AARCH64;
	assert_int_equal(boot_load_kernel_buf(&gm, img, sizeof(img), &bi, &why), -ENOEXEC);
}

static void test_e820_small(void **state)
{
	struct e820_entry map[8];
	int n = boot_e820(&gm, map, 8);

	assert_int_equal(n, 3);
	assert_int_equal(map[0].addr, 0);
	assert_int_equal(map[0].size, LAYOUT_EBDA_START);
	assert_int_equal(map[0].type, E820_RAM);
	/* The ACPI tables at 0xE0000 must not be usable RAM. */
	assert_int_equal(map[1].type, E820_RESERVED);
	assert_true(map[1].addr <= LAYOUT_ACPI_START);
	assert_true(map[1].addr + map[1].size >= LAYOUT_ACPI_END);
	assert_int_equal(map[2].addr, LAYOUT_KERNEL_ADDR);
	assert_int_equal(map[2].addr + map[2].size, RAM);
	assert_int_equal(boot_e820(&gm, map, 2), -ENOSPC);
}

static void test_e820_above_4g(void **state)
{
	/* 5 GiB guest: 3 GiB below the hole, 2 GiB above 4 GiB (sizes only; nothing mapped). */
	struct gmem big = { .nr_regions = 2, .ram_size = 5ull << 30 };
	struct e820_entry map[8];
	int n;

	big.regions[0] = (struct gmem_region){ 0, LAYOUT_MMIO_HOLE_START, NULL };
	big.regions[1] = (struct gmem_region){ LAYOUT_HIGH_RAM_START, 2ull << 30, NULL };
	n = boot_e820(&big, map, 8);
	assert_int_equal(n, 4);
	assert_int_equal(map[2].addr + map[2].size, LAYOUT_MMIO_HOLE_START);
	assert_int_equal(map[3].addr, LAYOUT_HIGH_RAM_START);
	assert_int_equal(map[3].size, 2ull << 30);
	assert_int_equal(map[3].type, E820_RAM);
	/* No RAM entry overlaps the MMIO window or the APICs. */
	for (int i = 0; i < n; i++)
		if (map[i].type == E820_RAM)
			assert_true(map[i].addr + map[i].size <= LAYOUT_MMIO_START ||
				    map[i].addr >= LAYOUT_HIGH_RAM_START);
}

static void test_zero_page(void **state)
{
	size_t len;
	uint8_t *img = make_bzimage(4096, &len);
	struct boot_info bi;
	const char *why;
	const uint8_t *zp = ram + LAYOUT_ZERO_PAGE_ADDR;
	const char *cl = "console=ttyS0 root=/dev/vda";

	assert_int_equal(boot_load_kernel_buf(&gm, img, len, &bi, &why), 0);
	bi.initrd_addr = 0x3000000;
	bi.initrd_size = 0x12345;
	assert_int_equal(boot_setup_zero_page(&gm, &bi, cl, 0xe0000), 0);
	assert_int_equal(rd32(zp + HDR_HEADER), HDR_MAGIC);
	assert_int_equal(zp[HDR_TYPE_OF_LOADER], 0xff);
	assert_true(zp[HDR_LOADFLAGS] & LOADFLAG_LOADED_HIGH);
	assert_true(zp[HDR_LOADFLAGS] & LOADFLAG_CAN_USE_HEAP);
	assert_int_equal(rd32(zp + HDR_CMD_LINE_PTR), LAYOUT_CMDLINE_ADDR);
	assert_string_equal((const char *)ram + LAYOUT_CMDLINE_ADDR, cl);
	assert_int_equal(rd32(zp + HDR_CMDLINE_SIZE), strlen(cl));
	assert_int_equal(rd32(zp + HDR_RAMDISK_IMAGE), 0x3000000);
	assert_int_equal(rd32(zp + HDR_RAMDISK_SIZE), 0x12345);
	assert_int_equal(rd64(zp + BP_ACPI_RSDP_ADDR), 0xe0000);
	assert_int_equal(zp[BP_E820_ENTRIES], 3);
	assert_int_equal(rd64(zp + BP_E820_TABLE + 2 * 20), LAYOUT_KERNEL_ADDR);
	assert_int_equal(rd32(zp + BP_E820_TABLE + 2 * 20 + 16), E820_RAM);

	/* A command line longer than the kernel's cmdline_size is refused. */
	{
		char *longcl = malloc(4000);

		memset(longcl, 'a', 3999);
		longcl[3999] = 0;
		assert_int_equal(boot_setup_zero_page(&gm, &bi, longcl, 0), -E2BIG);
		/* cmdline_size = 0xffffffff means "no limit of its own", not 0 (found by
		 * fuzz_boot: the + 1 wrapped); our 64 KiB area still bounds it. */
		wr32(bi.hdr + HDR_CMDLINE_SIZE, 0xffffffffu);
		assert_int_equal(boot_setup_zero_page(&gm, &bi, longcl, 0), 0);
		free(longcl);
	}
	free(img);
}

static void test_zero_page_elf(void **state)
{
	struct boot_info bi = { .entry = 0x1000000, .is_elf = 1 };
	const uint8_t *zp = ram + LAYOUT_ZERO_PAGE_ADDR;

	assert_int_equal(boot_setup_zero_page(&gm, &bi, "x", 0), 0);
	/* ELF kernels get a synthesized header. */
	assert_int_equal(rd32(zp + HDR_HEADER), HDR_MAGIC);
	assert_int_equal(zp[HDR_BOOT_FLAG], 0x55);
	assert_int_equal(zp[HDR_BOOT_FLAG + 1], 0xaa);
	assert_int_equal(rd32(zp + HDR_RAMDISK_SIZE), 0);
}

static void test_page_tables(void **state)
{
	assert_int_equal(boot_setup_page_tables(&gm), 0);
	assert_int_equal(rd64(ram + LAYOUT_PML4_ADDR), LAYOUT_PDPT_ADDR | 3);
	for (int i = 0; i < 4; i++)
		assert_int_equal(rd64(ram + LAYOUT_PDPT_ADDR + i * 8),
				 (LAYOUT_PD_ADDR + i * 0x1000) | 3);
	/* 2 MiB entry for 3 GiB + 2 MiB: identity. */
	assert_int_equal(rd64(ram + LAYOUT_PD_ADDR + 1537 * 8), (1537ull << 21) | 0x83);
	assert_int_equal(rd64(ram + LAYOUT_GDT_ADDR + BOOT_GDT_CODE * 8), boot_gdt[BOOT_GDT_CODE]);
	/* The code segment is a 64-bit (L) segment. */
	assert_true(boot_gdt[BOOT_GDT_CODE] & (1ull << 53));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_bzimage_load, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bzimage_rejects, setup, teardown),
		cmocka_unit_test_setup_teardown(test_elf_load, setup, teardown),
		cmocka_unit_test_setup_teardown(test_e820_small, setup, teardown),
		cmocka_unit_test_setup_teardown(test_e820_above_4g, setup, teardown),
		cmocka_unit_test_setup_teardown(test_zero_page, setup, teardown),
		cmocka_unit_test_setup_teardown(test_zero_page_elf, setup, teardown),
		cmocka_unit_test_setup_teardown(test_page_tables, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
