#include "core/gmem.h"

#include "arch/x86/layout.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef MAP_HUGE_2MB
#define MAP_HUGE_2MB (21 << 26) /* log2(2 MiB) << MAP_HUGE_SHIFT */
#endif

/* A userfaultfd on the whole mapping, missing mode (Documentation/admin-guide/mm/
 * userfaultfd.rst): every first touch of a page, by a vCPU through KVM or by the VMM, waits
 * until the handler fills it (UFFDIO_COPY / UFFDIO_ZEROPAGE).  Not user-mode only: KVM's
 * own accesses must fault through it too.  EVENT_REMOVE, as Firecracker asks for: a balloon
 * madvise(MADV_DONTNEED) tells the handler, which then zero-fills those pages instead of
 * serving the snapshot's old bytes again. */
static int register_uffd(struct gmem *gm)
{
	struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_EVENT_REMOVE };
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)gm->map, .len = gm->map_size },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	int ret;

	if (fd < 0)
		return -errno;
	if (ioctl(fd, UFFDIO_API, &api) < 0 || ioctl(fd, UFFDIO_REGISTER, &reg) < 0) {
		ret = -errno;
		close(fd);
		return ret;
	}
	gm->uffd = fd;
	gm->uffd_open = true;
	gm->lazy = true;
	return 0;
}

static int map_ram(struct gmem *gm, uint64_t size, int fd, unsigned flags)
{
	uint64_t low = size < LAYOUT_MMIO_HOLE_START ? size : LAYOUT_MMIO_HOLE_START;
	bool huge = flags & GMEM_HUGETLB;
	int mflags = MAP_PRIVATE | (fd < 0 ? MAP_ANONYMOUS : 0);
	void *map;

	memset(gm, 0, sizeof(*gm));
	gm->uffd = -1;
	if (size == 0 || size > LAYOUT_MAX_RAM || (huge && (size % GMEM_HUGE_SIZE || fd >= 0)))
		return -EINVAL;
	/* Huge pages are reserved from the pool now (no MAP_NORESERVE): a pool too small is
	 * ENOMEM here, at start, not a SIGBUS when the guest first touches the missing page. */
	mflags |= huge ? MAP_HUGETLB | MAP_HUGE_2MB : MAP_NORESERVE;
	map = mmap(NULL, size, PROT_READ | PROT_WRITE, mflags, fd, 0);
	if (map == MAP_FAILED)
		return -errno;
	/* Guest RAM is mostly page cache and anonymous memory; huge pages cut TLB misses and
	 * the cost of touching it.  Advisory only (and not for a file mapping, whose pages are
	 * the file's page cache, shared by every clone of the snapshot, nor hugetlb). */
	if (fd < 0 && !huge)
		madvise(map, size, MADV_HUGEPAGE);
	madvise(map, size, MADV_DONTDUMP);
	gm->file_backed = fd >= 0;
	gm->hugetlb = huge;
	gm->map = map;
	gm->map_size = size;
	gm->owned = true;
	gm->ram_size = size;
	gm->regions[0] = (struct gmem_region){ .gpa = 0, .size = low, .hva = map };
	gm->nr_regions = 1;
	if (size > low) {
		gm->regions[1] = (struct gmem_region){ .gpa = LAYOUT_HIGH_RAM_START,
						       .size = size - low,
						       .hva = (uint8_t *)map + low };
		gm->nr_regions = 2;
	}
	if (flags & GMEM_UFFD) {
		int ret = register_uffd(gm);

		if (ret) {
			gmem_free(gm);
			return ret;
		}
	}
	return 0;
}

int gmem_alloc(struct gmem *gm, uint64_t size)
{
	return map_ram(gm, size, -1, 0);
}

int gmem_alloc_flags(struct gmem *gm, uint64_t size, unsigned flags)
{
	return map_ram(gm, size, -1, flags);
}

int gmem_map_file(struct gmem *gm, uint64_t size, int fd)
{
	return fd < 0 ? -EBADF : map_ram(gm, size, fd, 0);
}

void gmem_uffd_release(struct gmem *gm)
{
	if (__atomic_exchange_n(&gm->uffd_open, false, __ATOMIC_ACQ_REL))
		close(gm->uffd);
}

long gmem_huge_pages_free(void)
{
	FILE *f = fopen("/proc/meminfo", "re");
	char line[128];
	long v = -ENOENT, rsvd = 0;

	if (!f)
		return -errno;
	/* Reserved pages (a mapping's, not yet touched) still count as free there. */
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "HugePages_Free: %ld", &v) != 1)
			(void)sscanf(line, "HugePages_Rsvd: %ld", &rsvd);
	fclose(f);
	return v < 0 ? v : v - rsvd;
}

void gmem_init_flat(struct gmem *gm, void *host, uint64_t size)
{
	memset(gm, 0, sizeof(*gm));
	gm->regions[0] = (struct gmem_region){ .gpa = 0, .size = size, .hva = host };
	gm->nr_regions = 1;
	gm->ram_size = size;
	gm->uffd = -1;
}

void gmem_free(struct gmem *gm)
{
	gmem_uffd_release(gm);
	free(gm->vmm_dirty);
	if (gm->owned && gm->map)
		munmap(gm->map, gm->map_size);
	memset(gm, 0, sizeof(*gm));
}

void *gmem_ptr(const struct gmem *gm, uint64_t gpa, uint64_t len)
{
	for (int i = 0; i < gm->nr_regions; i++) {
		const struct gmem_region *r = &gm->regions[i];
		uint64_t off;

		if (gpa < r->gpa)
			continue;
		off = gpa - r->gpa;
		/* off < size and len <= size - off: no overflow possible. */
		if (off >= r->size || len > r->size - off)
			continue;
		return r->hva + off;
	}
	return NULL;
}

bool gmem_valid(const struct gmem *gm, uint64_t gpa, uint64_t len)
{
	return gmem_ptr(gm, gpa, len) != NULL;
}

int gmem_read(const struct gmem *gm, uint64_t gpa, void *dst, size_t len)
{
	void *p = gmem_ptr(gm, gpa, len);

	if (!p)
		return -EFAULT;
	memcpy(dst, p, len);
	return 0;
}

int gmem_write(const struct gmem *gm, uint64_t gpa, const void *src, size_t len)
{
	void *p = gmem_ptr(gm, gpa, len);

	if (!p)
		return -EFAULT;
	gmem_mark_dirty(gm, gpa, len);
	memcpy(p, src, len);
	return 0;
}

int gmem_discard(const struct gmem *gm, uint64_t gpa, uint64_t len)
{
	void *p = gmem_ptr(gm, gpa, len);

	if (!p)
		return -EFAULT;
	if (!len)
		return 0;
	/* A hugetlb page can only be dropped whole, and the balloon gives back 4 KiB pages
	 * whose neighbours the guest still uses: keep them (the guest cannot use them while
	 * they are in the balloon, but the host gets nothing back; as in Firecracker). */
	if (gm->hugetlb)
		return 0;
	/* The range now reads as zeros: for a diff snapshot or a reset it changed. */
	gmem_mark_dirty(gm, gpa, len);
	/* Guest RAM from gmem_alloc is private anonymous memory: MADV_DONTNEED frees the pages
	 * and the next touch maps a zero page.  Restored RAM is a MAP_PRIVATE mapping of the
	 * snapshot's memory file, where MADV_DONTNEED would only drop our private copies and the
	 * next touch would read the file's old bytes: map fresh anonymous memory over the range
	 * instead (KVM's MMU notifier drops the old pages from the guest's view). */
	if (gm->file_backed) {
		void *q = mmap(p, len, PROT_READ | PROT_WRITE,
			       MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

		return q == MAP_FAILED ? -errno : 0;
	}
	if (madvise(p, len, MADV_DONTNEED))
		return -errno;
	return 0;
}

int gmem_track_dirty(struct gmem *gm)
{
	uint64_t pages = gm->ram_size >> GMEM_PAGE_SHIFT;

	if (gm->vmm_dirty)
		return 0;
	gm->vmm_dirty = calloc(gmem_bitmap_words(pages) ? gmem_bitmap_words(pages) : 1, 8);
	if (!gm->vmm_dirty)
		return -ENOMEM;
	gm->nr_pages = pages;
	return 0;
}

/* RAM offset of gpa (regions lie back to back in RAM-offset order); false outside RAM. */
static bool ram_offset(const struct gmem *gm, uint64_t gpa, uint64_t *off)
{
	uint64_t base = 0;

	for (int i = 0; i < gm->nr_regions; i++) {
		const struct gmem_region *r = &gm->regions[i];

		if (gpa >= r->gpa && gpa - r->gpa < r->size) {
			*off = base + (gpa - r->gpa);
			return true;
		}
		base += r->size;
	}
	return false;
}

void gmem_mark_dirty(const struct gmem *gm, uint64_t gpa, uint64_t len)
{
	uint64_t off, first, last;

	if (!gm->vmm_dirty || !len || !ram_offset(gm, gpa, &off))
		return;
	first = off >> GMEM_PAGE_SHIFT;
	/* A range is inside one region (gmem_ptr checked it): clamp anyway, before off + len
	 * can wrap (a wrapped end would mark nothing, and a Diff would miss the pages). */
	last = len - 1 < gm->ram_size - off ? (off + len - 1) >> GMEM_PAGE_SHIFT : gm->nr_pages - 1;
	if (last >= gm->nr_pages)
		last = gm->nr_pages - 1;
	for (uint64_t p = first; p <= last; p++)
		__atomic_fetch_or(&gm->vmm_dirty[p / 64], 1ull << (p % 64), __ATOMIC_RELAXED);
}

void gmem_take_vmm_dirty(const struct gmem *gm, uint64_t *out)
{
	if (!gm->vmm_dirty)
		return;
	for (uint64_t i = 0; i < gmem_bitmap_words(gm->nr_pages); i++)
		if (__atomic_load_n(&gm->vmm_dirty[i], __ATOMIC_RELAXED))
			out[i] |= __atomic_exchange_n(&gm->vmm_dirty[i], 0, __ATOMIC_RELAXED);
}

void *gmem_ram_ptr(const struct gmem *gm, uint64_t off)
{
	for (int i = 0; i < gm->nr_regions; i++) {
		if (off < gm->regions[i].size)
			return gm->regions[i].hva + off;
		off -= gm->regions[i].size;
	}
	return NULL;
}

uint64_t gmem_bitmap_next_run(const uint64_t *bits, uint64_t n, uint64_t *pos)
{
	uint64_t p = *pos, start;

	/* Skip clear bits a word at a time. */
	while (p < n) {
		uint64_t w = bits[p / 64] >> (p % 64);

		if (w) {
			p += (uint64_t)__builtin_ctzll(w);
			break;
		}
		p = (p / 64 + 1) * 64;
	}
	if (p >= n)
		return 0;
	start = p;
	while (p < n) {
		uint64_t w = ~bits[p / 64] >> (p % 64);

		if (w) {
			p += (uint64_t)__builtin_ctzll(w);
			break;
		}
		p = (p / 64 + 1) * 64;
	}
	if (p > n)
		p = n;
	*pos = start;
	return p - start;
}

uint64_t gmem_bitmap_count(const uint64_t *bits, uint64_t n)
{
	uint64_t c = 0;

	for (uint64_t i = 0; i < n / 64; i++)
		c += (uint64_t)__builtin_popcountll(bits[i]);
	if (n % 64)
		c += (uint64_t)__builtin_popcountll(bits[n / 64] & ((1ull << (n % 64)) - 1));
	return c;
}
