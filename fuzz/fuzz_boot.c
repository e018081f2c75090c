/* The kernel loader (src/arch/x86/boot.c, Linux x86 boot protocol): the input is a kernel file,
 * a bzImage or an ELF vmlinux as far as its headers claim.  It goes through
 * boot_probe_kernel() and boot_load_kernel() from a file and boot_load_kernel_buf() from
 * memory, which must agree, into fake guest RAM of two regions (2 MiB at 0, 64 KiB at 4 GiB);
 * then the same file as an initrd, and the zero page built from the header the loader kept. */
#include "arch/x86/boot.h"
#include "arch/x86/layout.h"
#include "core/gmem.h"
#include "core/le.h"
#include "harness.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LOW_RAM	 (2u << 20)
#define HIGH_RAM (64u << 10)

static struct gmem gm;
static char kernel_path[256];
static struct boot_info bi, bi_file;

static void *ram(size_t size)
{
	void *p = aligned_alloc(4096, size);

	if (!p)
		fuzz_fail("out of memory");
	memset(p, 0, size);
	return p;
}

static void write_file(const uint8_t *data, size_t size)
{
	int fd = open(kernel_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (fd < 0 || (size && write(fd, data, size) != (ssize_t)size) || close(fd))
		fuzz_fail("writing %s: %s", kernel_path, strerror(errno));
}

static bool is_elf(const uint8_t *data, size_t size)
{
	return size >= SELFMAG && !memcmp(data, ELFMAG, SELFMAG);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *why = NULL, *why_file = NULL, *why_probe = NULL;
	int ret, ret_file, ret_probe;
	struct e820_entry map[BP_E820_MAX];
	uint8_t *zp;
	int n;

	write_file(data, size);
	ret_probe = boot_probe_kernel(kernel_path, &why_probe);
	ret_file = boot_load_kernel(&gm, kernel_path, &bi_file, &why_file);
	ret = boot_load_kernel_buf(&gm, data, size, &bi, &why);

	/* A refusal always says why, in one line. */
	FUZZ_CHECK(ret == 0 || ret == -ENOEXEC || ret == -ENOMEM);
	FUZZ_CHECK(!ret || (why && *why && !strchr(why, '\n')));
	FUZZ_CHECK(ret_probe == 0 || (ret_probe == -ENOEXEC && why_probe && *why_probe));
	/* File and buffer are the same image (an empty file is refused with its own reason). */
	FUZZ_CHECK(ret_file == ret);
	if (!ret)
		FUZZ_CHECK(!memcmp(&bi, &bi_file, sizeof(bi)));
	/* The probe accepts a bzImage exactly when the loader can boot it given enough RAM.  ELF
	 * files it only recognises by their magic, leaving the rest to the loader (and a file
	 * that is both ELF and bzImage it takes for a bzImage, the loader for an ELF). */
	if (!is_elf(data, size))
		FUZZ_CHECK((ret_probe == 0) == (ret == 0 || ret == -ENOMEM));
	if (ret) {
		memset(&bi, 0, sizeof(bi));
	} else {
		FUZZ_CHECK(bi.hdr_len <= BP_SIZE);
		FUZZ_CHECK(gmem_valid(&gm, bi.entry, 1));
		FUZZ_CHECK(bi.kernel_end > LAYOUT_KERNEL_ADDR);
	}

	/* The same bytes as an initrd: placed high in low RAM, above the kernel, inside RAM. */
	ret = boot_load_initrd(&gm, kernel_path, &bi);
	FUZZ_CHECK(ret == 0 || ret == -ENOMEM || ret == -ENODATA);
	if (!ret) {
		FUZZ_CHECK(bi.initrd_size == size && gmem_valid(&gm, bi.initrd_addr, size));
		FUZZ_CHECK(!(bi.initrd_addr & 0xfff) && bi.initrd_addr >= bi.kernel_end);
	}

	/* The zero page from the header the loader kept. */
	ret = boot_setup_zero_page(&gm, &bi, "console=ttyS0 reboot=k panic=-1", LAYOUT_ACPI_START);
	FUZZ_CHECK(ret == 0 || ret == -E2BIG);
	if (!ret) {
		zp = gmem_ptr(&gm, LAYOUT_ZERO_PAGE_ADDR, BP_SIZE);
		FUZZ_CHECK(zp && zp[BP_E820_ENTRIES] <= BP_E820_MAX);
		FUZZ_CHECK(get_le32(zp + HDR_CMD_LINE_PTR) == LAYOUT_CMDLINE_ADDR);
	}
	n = boot_e820(&gm, map, BP_E820_MAX);
	FUZZ_CHECK(n >= 3 && n <= BP_E820_MAX);
	return 0;
}

/* A bzImage of `len` bytes: boot protocol 2.15, 64-bit entry, loaded high. */
static void make_bzimage(uint8_t *img, size_t len, uint8_t setup_sects, uint32_t init_size)
{
	memset(img, 0, len);
	img[HDR_SETUP_SECTS] = setup_sects;
	put_le16(img + HDR_BOOT_FLAG, 0xaa55);
	img[HDR_JUMP] = 0xeb;
	img[HDR_JUMP + 1] = 0x6a; /* jump over the header to 0x26c */
	put_le32(img + HDR_HEADER, HDR_MAGIC);
	put_le16(img + HDR_VERSION, 0x020f);
	img[HDR_LOADFLAGS] = LOADFLAG_LOADED_HIGH;
	put_le32(img + HDR_INITRD_ADDR_MAX, 0x7fffffff);
	put_le16(img + HDR_XLOADFLAGS, XLF_KERNEL_64);
	put_le32(img + HDR_CMDLINE_SIZE, 2047);
	put_le32(img + HDR_INIT_SIZE, init_size);
}

/* An ELF64 x86_64 executable with two PT_LOAD segments (one with bss) and a note. */
static size_t make_elf(uint8_t *img, size_t cap)
{
	Elf64_Ehdr eh = { 0 };
	Elf64_Phdr ph[3] = { { 0 } };
	size_t off = sizeof(eh) + sizeof(ph);

	memcpy(eh.e_ident, ELFMAG, SELFMAG);
	eh.e_ident[EI_CLASS] = ELFCLASS64;
	eh.e_ident[EI_DATA] = ELFDATA2LSB;
	eh.e_ident[EI_VERSION] = EV_CURRENT;
	eh.e_type = ET_EXEC;
	eh.e_machine = EM_X86_64;
	eh.e_version = EV_CURRENT;
	eh.e_entry = LAYOUT_KERNEL_ADDR;
	eh.e_phoff = sizeof(eh);
	eh.e_ehsize = sizeof(eh);
	eh.e_phentsize = sizeof(Elf64_Phdr);
	eh.e_phnum = 3;
	ph[0] = (Elf64_Phdr){ .p_type = PT_LOAD,
			      .p_offset = off,
			      .p_paddr = LAYOUT_KERNEL_ADDR,
			      .p_filesz = 64,
			      .p_memsz = 64 };
	ph[1] = (Elf64_Phdr){ .p_type = PT_LOAD,
			      .p_offset = off + 64,
			      .p_paddr = LAYOUT_KERNEL_ADDR + 0x1000,
			      .p_filesz = 32,
			      .p_memsz = 0x2000 };
	ph[2] = (Elf64_Phdr){ .p_type = PT_NOTE, .p_offset = off, .p_filesz = 16 };
	if (off + 96 > cap)
		fuzz_fail("seed buffer too small");
	memset(img, 0, off + 96);
	memcpy(img, &eh, sizeof(eh));
	memcpy(img + sizeof(eh), ph, sizeof(ph));
	memset(img + off, 0x90, 96);
	return off + 96;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static uint8_t img[8192];
	static struct fuzz_seed s;

	snprintf(kernel_path, sizeof(kernel_path), "%s/kernel", fuzz_tmpdir());
	gm.regions[0] = (struct gmem_region){ .gpa = 0, .size = LOW_RAM, .hva = ram(LOW_RAM) };
	gm.regions[1] = (struct gmem_region){ .gpa = LAYOUT_HIGH_RAM_START,
					      .size = HIGH_RAM,
					      .hva = ram(HIGH_RAM) };
	gm.nr_regions = 2;
	gm.ram_size = LOW_RAM + HIGH_RAM;
	if (!fuzz_want_seeds())
		return 0;

	/* A bzImage is at least 4 KiB: 7 setup sectors + 512 bytes of kernel, and 3 sectors +
	 * 3 KiB with an init_size that does not fit (libFuzzer's -max_len follows the seeds). */
	make_bzimage(img, 4608, 7, 0x10000);
	seed_bytes(&s, img, 4608);
	fuzz_seed_save(&s, "bzimage");
	make_bzimage(img, 5120, 3, 0x10000000);
	seed_bytes(&s, img, 5120);
	fuzz_seed_save(&s, "bzimage-big");
	seed_bytes(&s, img, make_elf(img, sizeof(img)));
	fuzz_seed_save(&s, "elf");
	return 0;
}
