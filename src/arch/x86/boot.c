#include "arch/x86/boot.h"

#include "arch/x86/layout.h"
#include "core/gmem.h"
#include "core/le.h"
#include "util/log.h"

#include <elf.h>
#include <stdbool.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Descriptors: null, null, 64-bit code (L=1), data, 64-bit TSS (busy). */
const uint64_t boot_gdt[BOOT_GDT_ENTRIES] = {
	0,
	0,
	0x00af9b000000ffffull, /* code: P, DPL0, S, type 0xb (exec/read, accessed), L, G */
	0x00cf93000000ffffull, /* data: P, DPL0, S, type 0x3 (read/write, accessed), D/B, G */
	0x008f8b000000ffffull, /* TSS: P, type 0xb (busy 64-bit TSS), G */
};

static uint64_t low_ram_end(const struct gmem *gm)
{
	return gm->regions[0].gpa + gm->regions[0].size;
}

/* Format checks shared by the probe and the loader (boot protocol 2.12+, 64-bit entry). */
static int check_bzimage(const uint8_t *img, size_t len, const char **why)
{
	unsigned setup_sects = img[HDR_SETUP_SECTS] ? img[HDR_SETUP_SECTS] : 4;

	if (get_le16(img + HDR_VERSION) < 0x020c) {
		*why = "bzImage boot protocol is older than 2.12 (no 64-bit entry)";
		return -ENOEXEC;
	}
	if (!(get_le16(img + HDR_XLOADFLAGS) & XLF_KERNEL_64)) {
		*why = "bzImage has no 64-bit entry point (XLF_KERNEL_64 clear)";
		return -ENOEXEC;
	}
	if (!(img[HDR_LOADFLAGS] & LOADFLAG_LOADED_HIGH)) {
		*why = "zImage (not loaded high) is not supported";
		return -ENOEXEC;
	}
	if (((size_t)setup_sects + 1) * 512 >= len) {
		*why = "bzImage is truncated (no protected-mode kernel)";
		return -ENOEXEC;
	}
	return 0;
}

static bool is_elf(const uint8_t *img, size_t len)
{
	return len >= SELFMAG && !memcmp(img, ELFMAG, SELFMAG);
}

static bool is_bzimage(const uint8_t *img, size_t len)
{
	return len >= 0x1000 && get_le16(img + HDR_BOOT_FLAG) == 0xaa55 &&
	       get_le32(img + HDR_HEADER) == HDR_MAGIC;
}

/* bzImage: real-mode setup sectors, then the protected-mode kernel loaded at 1 MiB and entered
 * at its 64-bit entry point, 0x200 past the load address (boot protocol "64-bit BOOT PROTOCOL"). */
static int load_bzimage(const struct gmem *gm, const uint8_t *img, size_t len, struct boot_info *bi,
			const char **why)
{
	unsigned setup_sects = img[HDR_SETUP_SECTS] ? img[HDR_SETUP_SECTS] : 4;
	size_t kernel_off = ((size_t)setup_sects + 1) * 512;
	size_t hdr_end = HDR_JUMP + 2 + (size_t)img[HDR_JUMP + 1];
	uint64_t init_size, need;
	int ret = check_bzimage(img, len, why);

	if (ret)
		return ret;
	if (hdr_end > len || hdr_end > BP_SIZE)
		hdr_end = len < BP_SIZE ? len : BP_SIZE;
	/* The kernel decompresses in place and needs init_size bytes from its load address. */
	init_size = get_le32(img + HDR_INIT_SIZE);
	need = len - kernel_off > init_size ? len - kernel_off : init_size;
	if (!gmem_valid(gm, LAYOUT_KERNEL_ADDR, need)) {
		*why = "kernel does not fit in guest RAM (raise --mem)";
		return -ENOMEM;
	}
	memcpy(gmem_ptr(gm, LAYOUT_KERNEL_ADDR, len - kernel_off), img + kernel_off,
	       len - kernel_off);
	memset(bi, 0, sizeof(*bi));
	memcpy(bi->hdr + BP_HDR, img + BP_HDR, hdr_end - BP_HDR);
	bi->hdr_len = hdr_end;
	bi->entry = LAYOUT_KERNEL_ADDR + 0x200;
	bi->kernel_end = LAYOUT_KERNEL_ADDR + need;
	return 0;
}

/* ELF64 vmlinux: PT_LOAD segments at their physical addresses; e_entry is phys_startup_64. */
static int load_elf(const struct gmem *gm, const uint8_t *img, size_t len, struct boot_info *bi,
		    const char **why)
{
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)img;
	uint64_t end = 0;
	int loaded = 0;

	if (len < sizeof(*eh) || eh->e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh->e_ident[EI_DATA] != ELFDATA2LSB || eh->e_machine != EM_X86_64 ||
	    eh->e_type != ET_EXEC) {
		*why = "ELF file is not an x86_64 executable";
		return -ENOEXEC;
	}
	if (eh->e_phentsize != sizeof(Elf64_Phdr) || eh->e_phnum == 0 || eh->e_phoff >= len ||
	    eh->e_phnum > (len - eh->e_phoff) / sizeof(Elf64_Phdr)) {
		*why = "ELF program headers are missing or truncated";
		return -ENOEXEC;
	}
	memset(bi, 0, sizeof(*bi));
	for (unsigned i = 0; i < eh->e_phnum; i++) {
		Elf64_Phdr ph;
		uint8_t *dst;

		memcpy(&ph, img + eh->e_phoff + i * sizeof(ph), sizeof(ph));
		if (ph.p_type != PT_LOAD || ph.p_memsz == 0)
			continue;
		if (ph.p_filesz > ph.p_memsz || ph.p_offset > len ||
		    ph.p_filesz > len - ph.p_offset) {
			*why = "ELF segment lies outside the file";
			return -ENOEXEC;
		}
		dst = gmem_ptr(gm, ph.p_paddr, ph.p_memsz);
		if (!dst || ph.p_paddr < LAYOUT_KERNEL_ADDR) {
			*why = "ELF segment does not fit in guest RAM (raise --mem)";
			return -ENOMEM;
		}
		memcpy(dst, img + ph.p_offset, ph.p_filesz);
		memset(dst + ph.p_filesz, 0, ph.p_memsz - ph.p_filesz);
		if (ph.p_paddr + ph.p_memsz > end)
			end = ph.p_paddr + ph.p_memsz;
		loaded++;
	}
	if (!loaded) {
		*why = "ELF file has no loadable segments";
		return -ENOEXEC;
	}
	if (!gmem_valid(gm, eh->e_entry, 1)) {
		*why = "ELF entry point is outside guest RAM";
		return -ENOEXEC;
	}
	bi->entry = eh->e_entry;
	bi->kernel_end = end;
	bi->is_elf = 1;
	return 0;
}

int boot_load_kernel_buf(const struct gmem *gm, const uint8_t *img, size_t len,
			 struct boot_info *bi, const char **why)
{
	*why = NULL;
	if (is_elf(img, len))
		return load_elf(gm, img, len, bi, why);
	if (is_bzimage(img, len))
		return load_bzimage(gm, img, len, bi, why);
	*why = "not a Linux kernel (neither a bzImage nor an ELF vmlinux)";
	return -ENOEXEC;
}

static int map_file(const char *path, const uint8_t **data, size_t *len)
{
	struct stat st;
	void *p;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		int ret = S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;

		close(fd);
		return ret;
	}
	if (st.st_size == 0) {
		close(fd);
		*data = NULL;
		*len = 0;
		return 0;
	}
	p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return -errno;
	*data = p;
	*len = (size_t)st.st_size;
	return 0;
}

int boot_probe_kernel(const char *path, const char **why)
{
	const uint8_t *img;
	size_t len;
	int ret = map_file(path, &img, &len);

	*why = NULL;
	if (ret)
		return ret;
	if (!len) {
		*why = "file is empty";
		return -ENOEXEC;
	}
	/* Same order as boot_load_kernel_buf: a file that looks like both is loaded as ELF. */
	if (is_elf(img, len)) {
		ret = 0;
	} else if (is_bzimage(img, len)) {
		ret = check_bzimage(img, len, why);
	} else {
		*why = "not a Linux kernel (neither a bzImage nor an ELF vmlinux)";
		ret = -ENOEXEC;
	}
	munmap((void *)img, len);
	return ret;
}

int boot_load_kernel(const struct gmem *gm, const char *path, struct boot_info *bi,
		     const char **why)
{
	const uint8_t *img;
	size_t len;
	int ret = map_file(path, &img, &len);

	if (ret) {
		*why = NULL;
		return ret;
	}
	if (!len) {
		*why = "file is empty";
		return -ENOEXEC;
	}
	ret = boot_load_kernel_buf(gm, img, len, bi, why);
	munmap((void *)img, len);
	return ret;
}

int boot_load_initrd(const struct gmem *gm, const char *path, struct boot_info *bi)
{
	uint64_t max = low_ram_end(gm), addr;
	const uint8_t *data;
	size_t len;
	int ret = map_file(path, &data, &len);

	if (ret)
		return ret;
	if (bi->hdr_len > HDR_INITRD_ADDR_MAX + 4) {
		uint64_t lim = (uint64_t)get_le32(bi->hdr + HDR_INITRD_ADDR_MAX) + 1;

		if (lim < max)
			max = lim;
	}
	/* Highest page-aligned spot below the limit and above the kernel. */
	addr = (max - len) & ~0xfffull;
	if (len == 0 || len > max || addr < ((bi->kernel_end + 0xfff) & ~0xfffull) ||
	    !gmem_valid(gm, addr, len)) {
		if (len)
			munmap((void *)data, len);
		return len ? -ENOMEM : -ENODATA;
	}
	memcpy(gmem_ptr(gm, addr, len), data, len);
	munmap((void *)data, len);
	bi->initrd_addr = addr;
	bi->initrd_size = len;
	return 0;
}

int boot_e820(const struct gmem *gm, struct e820_entry *map, int max)
{
	int n = 0;

	if (max < 4)
		return -ENOSPC;
	/* Conventional memory up to the EBDA; 0x9fc00..1 MiB (EBDA, VGA hole, BIOS area with the
	 * ACPI tables) is reserved; RAM from 1 MiB; then RAM above 4 GiB. */
	map[n++] = (struct e820_entry){ 0, LAYOUT_EBDA_START, E820_RAM };
	map[n++] = (struct e820_entry){ LAYOUT_EBDA_START, LAYOUT_KERNEL_ADDR - LAYOUT_EBDA_START,
					E820_RESERVED };
	if (low_ram_end(gm) > LAYOUT_KERNEL_ADDR)
		map[n++] = (struct e820_entry){ LAYOUT_KERNEL_ADDR,
						low_ram_end(gm) - LAYOUT_KERNEL_ADDR, E820_RAM };
	for (int i = 1; i < gm->nr_regions; i++)
		map[n++] = (struct e820_entry){ gm->regions[i].gpa, gm->regions[i].size, E820_RAM };
	return n;
}

int boot_setup_zero_page(const struct gmem *gm, const struct boot_info *bi, const char *cmdline,
			 uint64_t rsdp_addr)
{
	uint8_t *zp = gmem_ptr(gm, LAYOUT_ZERO_PAGE_ADDR, BP_SIZE);
	size_t cl = strlen(cmdline) + 1;
	struct e820_entry map[BP_E820_MAX];
	uint64_t cmdline_max = LAYOUT_CMDLINE_MAX;
	int n;

	if (!zp)
		return -EFAULT;
	if (bi->hdr_len > HDR_CMDLINE_SIZE + 4 && get_le16(bi->hdr + HDR_VERSION) >= 0x0206)
		cmdline_max = (uint64_t)get_le32(bi->hdr + HDR_CMDLINE_SIZE) + 1; /* no wrap */
	if (cl > cmdline_max || cl > LAYOUT_CMDLINE_MAX)
		return -E2BIG;
	if (gmem_write(gm, LAYOUT_CMDLINE_ADDR, cmdline, cl))
		return -EFAULT;

	memset(zp, 0, BP_SIZE);
	if (bi->hdr_len > BP_HDR) {
		memcpy(zp + BP_HDR, bi->hdr + BP_HDR, bi->hdr_len - BP_HDR);
	} else {
		/* ELF vmlinux carries no setup header: write the fields the kernel reads. */
		put_le16(zp + HDR_BOOT_FLAG, 0xaa55);
		put_le32(zp + HDR_HEADER, HDR_MAGIC);
		put_le16(zp + HDR_VERSION, 0x020f);
		put_le32(zp + HDR_KERNEL_ALIGN, 0x1000000);
	}
	zp[HDR_TYPE_OF_LOADER] = 0xff; /* undefined boot loader */
	zp[HDR_LOADFLAGS] |= LOADFLAG_CAN_USE_HEAP;
	put_le16(zp + HDR_HEAP_END_PTR, 0xfe00);
	put_le32(zp + HDR_CMD_LINE_PTR, (uint32_t)LAYOUT_CMDLINE_ADDR);
	put_le32(zp + HDR_CMDLINE_SIZE, (uint32_t)(cl - 1));
	if (bi->initrd_size) {
		put_le32(zp + HDR_RAMDISK_IMAGE, (uint32_t)bi->initrd_addr);
		put_le32(zp + HDR_RAMDISK_SIZE, (uint32_t)bi->initrd_size);
		put_le32(zp + BP_EXT_RAMDISK_IMG, (uint32_t)(bi->initrd_addr >> 32));
		put_le32(zp + BP_EXT_RAMDISK_SIZE, (uint32_t)(bi->initrd_size >> 32));
	}
	put_le64(zp + BP_ACPI_RSDP_ADDR, rsdp_addr);

	n = boot_e820(gm, map, BP_E820_MAX);
	if (n < 0)
		return n;
	zp[BP_E820_ENTRIES] = (uint8_t)n;
	for (int i = 0; i < n; i++) {
		uint8_t *e = zp + BP_E820_TABLE + i * 20;

		put_le64(e, map[i].addr);
		put_le64(e + 8, map[i].size);
		put_le32(e + 16, map[i].type);
	}
	return 0;
}

int boot_setup_page_tables(const struct gmem *gm)
{
	uint8_t *pml4 = gmem_ptr(gm, LAYOUT_PML4_ADDR, 0x1000);
	uint8_t *pdpt = gmem_ptr(gm, LAYOUT_PDPT_ADDR, 0x1000);
	uint8_t *pd = gmem_ptr(gm, LAYOUT_PD_ADDR, 4 * 0x1000);
	uint8_t *gdt = gmem_ptr(gm, LAYOUT_GDT_ADDR, sizeof(boot_gdt));

	if (!pml4 || !pdpt || !pd || !gdt)
		return -EFAULT;
	memset(pml4, 0, 0x1000);
	memset(pdpt, 0, 0x1000);
	/* PML4[0] -> PDPT; PDPT[0..3] -> four page directories of 2 MiB pages: the first 4 GiB
	 * identity-mapped, present + writable (the kernel builds its own tables right away). */
	put_le64(pml4, LAYOUT_PDPT_ADDR | 0x3);
	for (int i = 0; i < 4; i++)
		put_le64(pdpt + i * 8, (LAYOUT_PD_ADDR + (uint64_t)i * 0x1000) | 0x3);
	for (uint64_t i = 0; i < 4 * 512; i++)
		put_le64(pd + i * 8, (i << 21) | 0x83); /* present, writable, PS */
	for (int i = 0; i < BOOT_GDT_ENTRIES; i++)
		put_le64(gdt + i * 8, boot_gdt[i]);
	return 0;
}
