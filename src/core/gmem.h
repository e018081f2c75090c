/* Guest physical memory: at most two RAM regions (below the 3 GiB MMIO hole and above 4 GiB).
 * Every access to guest memory goes through gmem_ptr(), which checks bounds and overflow. */
#ifndef IGNITION_CORE_GMEM_H
#define IGNITION_CORE_GMEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GMEM_MAX_REGIONS 2

struct gmem_region {
	uint64_t gpa;  /* guest physical start */
	uint64_t size; /* bytes */
	uint8_t *hva;  /* host mapping */
};

struct gmem {
	struct gmem_region regions[GMEM_MAX_REGIONS];
	int nr_regions;
	uint64_t ram_size; /* total RAM bytes */
	void *map;	   /* one host mapping backing all regions */
	size_t map_size;
	bool owned;	  /* map was allocated by gmem_alloc or gmem_map_file */
	bool file_backed; /* a private mapping of a snapshot's memory file */
	bool hugetlb;	  /* MAP_HUGETLB: 2 MiB pages from the host's pool (GMEM_HUGETLB) */
	/* GMEM_UFFD: the mapping is registered with userfaultfd `uffd` (missing mode), whose
	 * faults an external handler serves.  uffd_open is false without one, and once
	 * gmem_uffd_release() closed it.  lazy stays true: pages not yet served are not zero,
	 * whatever mincore says (a snapshot reads them all). */
	int uffd;
	bool uffd_open;
	bool lazy;
	/* Dirty tracking (gmem_track_dirty): a bit per 4 KiB page of RAM, numbered by RAM
	 * offset (region 0 first, then region 1: the memory file's layout), set for every page
	 * the VMM itself writes.  NULL when not tracking. */
	uint64_t *vmm_dirty;
	uint64_t nr_pages;
};

#define GMEM_PAGE_SHIFT 12
#define GMEM_PAGE_SIZE	(1ull << GMEM_PAGE_SHIFT)
#define GMEM_HUGE_SIZE	(2ull << 20) /* the one huge page size (x86_64 PMD) */

/* gmem_alloc_flags: back RAM with 2 MiB hugetlb pages, reserved from the host's pool at
 * mmap time (-ENOMEM when the pool is too small; size must be a multiple of 2 MiB). */
#define GMEM_HUGETLB (1u << 0)
/* gmem_alloc_flags: register the mapping with a new userfaultfd (missing mode, with
 * UFFD_FEATURE_EVENT_REMOVE) kept in gm->uffd, for a page-fault handler to fill. */
#define GMEM_UFFD (1u << 1)

/* Allocate `size` bytes of anonymous guest RAM laid out around the MMIO hole. */
int gmem_alloc(struct gmem *gm, uint64_t size) __attribute__((warn_unused_result));
/* The same with GMEM_* flags.  -EINVAL for a hugetlb size not a multiple of 2 MiB, -ENOMEM
 * when the host's huge page pool cannot hold it, -errno of userfaultfd/UFFDIO_API/REGISTER. */
int gmem_alloc_flags(struct gmem *gm, uint64_t size, unsigned flags)
	__attribute__((warn_unused_result));
/* Close gm->uffd (any thread, at most once whoever calls): the handler is gone, so faults
 * waiting on it are woken and the range becomes plain anonymous memory (zero pages). */
void gmem_uffd_release(struct gmem *gm);
/* 2 MiB huge pages of the host's pool a new mapping can still reserve (/proc/meminfo
 * HugePages_Free - HugePages_Rsvd), or -errno. */
long gmem_huge_pages_free(void);
/* Map `size` bytes of the file `fd` (a snapshot's memory file, exactly `size` long) as guest
 * RAM, MAP_PRIVATE: pages load from the file on first touch, writes stay in this process. */
int gmem_map_file(struct gmem *gm, uint64_t size, int fd) __attribute__((warn_unused_result));
/* Describe caller-owned host memory as guest RAM starting at GPA 0 (unit tests). */
void gmem_init_flat(struct gmem *gm, void *host, uint64_t size);
/* Release memory allocated by gmem_alloc. */
void gmem_free(struct gmem *gm);
/* Host pointer for [gpa, gpa+len) if it lies wholly inside one RAM region, else NULL.
 * len == 0 is valid if gpa is inside RAM. */
void *gmem_ptr(const struct gmem *gm, uint64_t gpa, uint64_t len);
/* Copy out of / into guest RAM; -EFAULT if the range is not wholly RAM. */
int gmem_read(const struct gmem *gm, uint64_t gpa, void *dst, size_t len)
	__attribute__((warn_unused_result));
int gmem_write(const struct gmem *gm, uint64_t gpa, const void *src, size_t len)
	__attribute__((warn_unused_result));
/* True if gpa..gpa+len is wholly guest RAM. */
bool gmem_valid(const struct gmem *gm, uint64_t gpa, uint64_t len);
/* Return [gpa, gpa+len) (page-aligned, inside one RAM region) to the host: the memory is
 * freed and reads as zeros afterwards (the balloon's inflated pages).  0, -EFAULT if the range
 * is not wholly RAM, or -errno.  Works for anonymous and file-backed (restored) RAM alike. */
int gmem_discard(const struct gmem *gm, uint64_t gpa, uint64_t len)
	__attribute__((warn_unused_result));

/* Start recording the pages the VMM writes (gmem_mark_dirty).  0 or -ENOMEM. */
int gmem_track_dirty(struct gmem *gm) __attribute__((warn_unused_result));
/* Record that the VMM wrote [gpa, gpa+len) (any thread; no-op when not tracking or outside
 * RAM).  Call it wherever the VMM gets a writable view of guest memory: virtq buffers the
 * device may fill, the used ring, gmem_write, a discard. */
void gmem_mark_dirty(const struct gmem *gm, uint64_t gpa, uint64_t len);
/* Move the VMM's dirty bits into `out` (OR, nr_pages bits) and clear them. */
void gmem_take_vmm_dirty(const struct gmem *gm, uint64_t *out);
/* Host pointer of RAM offset `off` (the memory file's layout); NULL past the end. */
void *gmem_ram_ptr(const struct gmem *gm, uint64_t off);

/* Bitmaps over pages: words of 64 bits, bit n of word n/64 = page n. */
static inline uint64_t gmem_bitmap_words(uint64_t nr_pages)
{
	return (nr_pages + 63) / 64;
}
/* The next run of set bits at or after *pos (below n): its start in *pos and its length as
 * the return value; 0 when none is left. */
uint64_t gmem_bitmap_next_run(const uint64_t *bits, uint64_t n, uint64_t *pos);
/* Number of set bits in the first n. */
uint64_t gmem_bitmap_count(const uint64_t *bits, uint64_t n);

#endif
