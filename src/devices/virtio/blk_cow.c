/* Copy-on-write disk (blk_cow.h).  Block k covers bytes [k * 4 KiB, (k + 1) * 4 KiB) clipped
 * to the disk's size; bit k set means the overlay holds the block's current contents (written
 * by the guest, or copied up from the base before a partial write).  A bit is set only once
 * the overlay has the whole block, so a failed copy-up or write leaves the block reading from
 * the base, and two writes to different sectors of one block never both copy it up (the
 * second finds the bit the first one's copy-up set). */
#include "devices/virtio/blk_cow.h"

#include "util/fileio.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BITS	     64u
#define BOUNCE_BYTES (64u * 1024) /* fallback copy buffer where copy_file_range refuses */

struct blk_cow {
	int base_fd, ovl_fd;
	uint64_t size;	  /* bytes */
	uint64_t nblocks; /* size / BLK_COW_BLOCK rounded up */
	uint64_t *bits;	  /* nblocks bits */
};

int blk_cow_create(int base_fd, int ovl_fd, struct blk_cow **out)
{
	struct stat bs, os;
	struct blk_cow *c;

	if (fstat(base_fd, &bs) < 0 || fstat(ovl_fd, &os) < 0)
		return -errno;
	if (!S_ISREG(bs.st_mode) || !S_ISREG(os.st_mode) || bs.st_size <= 0 ||
	    bs.st_size != os.st_size)
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->base_fd = base_fd;
	c->ovl_fd = ovl_fd;
	c->size = (uint64_t)bs.st_size;
	c->nblocks = (c->size + BLK_COW_BLOCK - 1) / BLK_COW_BLOCK;
	/* 32 KiB of bitmap per GiB of disk, e.g. 128 KiB for 4 GiB. */
	c->bits = calloc((size_t)((c->nblocks + BITS - 1) / BITS), sizeof(*c->bits));
	if (!c->bits) {
		free(c);
		return -ENOMEM;
	}
	*out = c;
	return 0;
}

void blk_cow_destroy(struct blk_cow *c)
{
	if (!c)
		return;
	free(c->bits);
	free(c);
}

uint64_t blk_cow_size(const struct blk_cow *c)
{
	return c->size;
}

int blk_cow_base_fd(const struct blk_cow *c)
{
	return c->base_fd;
}

bool blk_cow_range_ok(const struct blk_cow *c, uint64_t off, uint64_t len)
{
	return len && off < c->size && len <= c->size - off;
}

static bool bit(const struct blk_cow *c, uint64_t k)
{
	return c->bits[k / BITS] >> (k % BITS) & 1;
}

static void set_bit(struct blk_cow *c, uint64_t k)
{
	c->bits[k / BITS] |= 1ull << (k % BITS);
}

bool blk_cow_present(const struct blk_cow *c, uint64_t off)
{
	return off < c->size && bit(c, off / BLK_COW_BLOCK);
}

/* The first block in [k, end) whose bit differs from v, or end (whole words skipped). */
static uint64_t scan(const struct blk_cow *c, uint64_t k, uint64_t end, bool v)
{
	const uint64_t same = v ? ~0ull : 0;

	while (k < end) {
		if (k % BITS == 0 && end - k >= BITS && c->bits[k / BITS] == same) {
			k += BITS;
			continue;
		}
		if (bit(c, k) != v)
			break;
		k++;
	}
	return k;
}

uint64_t blk_cow_run(const struct blk_cow *c, uint64_t off, uint64_t len, bool *overlay)
{
	uint64_t k = off / BLK_COW_BLOCK, last = (off + len - 1) / BLK_COW_BLOCK;
	uint64_t next, run;

	*overlay = bit(c, k);
	next = scan(c, k + 1, last + 1, *overlay);
	run = next * BLK_COW_BLOCK - off;
	return run < len ? run : len;
}

/* Block k's bytes: [*start, *start + return value). */
static size_t block_span(const struct blk_cow *c, uint64_t k, uint64_t *start)
{
	uint64_t end;

	*start = k * BLK_COW_BLOCK;
	end = *start + BLK_COW_BLOCK;
	return (size_t)((end < c->size ? end : c->size) - *start);
}

/* Copy block k from the base into the overlay if the range [off, end) covers it only in part
 * and the overlay does not have it yet. */
static int copy_up(struct blk_cow *c, uint64_t k, uint64_t off, uint64_t end)
{
	uint8_t buf[BLK_COW_BLOCK];
	uint64_t start;
	size_t n = block_span(c, k, &start);
	int ret;

	if (bit(c, k) || (off <= start && end >= start + n))
		return 0;
	ret = pread_full(c->base_fd, buf, n, start);
	if (!ret)
		ret = pwrite_full(c->ovl_fd, buf, n, start);
	if (!ret)
		set_bit(c, k);
	return ret;
}

int blk_cow_prepare_write(struct blk_cow *c, uint64_t off, uint64_t len)
{
	uint64_t first, last;
	int ret;

	if (!blk_cow_range_ok(c, off, len))
		return -EINVAL;
	/* Only the first and the last block can be covered in part. */
	first = off / BLK_COW_BLOCK;
	last = (off + len - 1) / BLK_COW_BLOCK;
	ret = copy_up(c, first, off, off + len);
	if (!ret && last != first)
		ret = copy_up(c, last, off, off + len);
	return ret;
}

void blk_cow_mark(struct blk_cow *c, uint64_t off, uint64_t len)
{
	if (!blk_cow_range_ok(c, off, len))
		return;
	for (uint64_t k = off / BLK_COW_BLOCK, last = (off + len - 1) / BLK_COW_BLOCK; k <= last;
	     k++)
		set_bit(c, k);
}

void blk_cow_unmark(struct blk_cow *c, uint64_t off, uint64_t len)
{
	if (!blk_cow_range_ok(c, off, len))
		return;
	for (uint64_t k = off / BLK_COW_BLOCK, last = (off + len - 1) / BLK_COW_BLOCK; k <= last;
	     k++)
		c->bits[k / BITS] &= ~(1ull << (k % BITS));
}

int blk_cow_read(const struct blk_cow *c, void *buf, size_t len, uint64_t off)
{
	uint8_t *p = buf;

	if (!blk_cow_range_ok(c, off, len))
		return -EINVAL;
	while (len) { /* each run is at least one byte */
		bool ovl;
		uint64_t run = blk_cow_run(c, off, len, &ovl);
		int ret = pread_full(ovl ? c->ovl_fd : c->base_fd, p, (size_t)run, off);

		if (ret)
			return ret;
		p += run;
		off += run;
		len -= (size_t)run;
	}
	return 0;
}

int blk_cow_write(struct blk_cow *c, const void *buf, size_t len, uint64_t off)
{
	int ret = blk_cow_prepare_write(c, off, len);

	if (!ret)
		ret = pwrite_full(c->ovl_fd, buf, len, off);
	if (!ret)
		blk_cow_mark(c, off, len);
	return ret;
}

int blk_cow_flush(const struct blk_cow *c)
{
	return fdatasync(c->ovl_fd) < 0 ? -errno : 0;
}

/* [a, b) of in to the same offsets of out with read/write, where copy_file_range cannot
 * (kernels before 5.3 across file systems, or a file system that refuses it). */
static int bounce_copy(int in, int out, uint64_t a, uint64_t b)
{
	uint8_t *buf = malloc(BOUNCE_BYTES);
	int ret = buf ? 0 : -ENOMEM;

	while (!ret && a < b) {
		size_t n = b - a < BOUNCE_BYTES ? (size_t)(b - a) : BOUNCE_BYTES;

		ret = pread_full(in, buf, n, a);
		if (!ret)
			ret = pwrite_full(out, buf, n, a);
		a += n;
	}
	free(buf);
	return ret;
}

static int copy_range(int in, int out, uint64_t a, uint64_t b)
{
	while (a < b) {
		loff_t ia = (loff_t)a, oa = (loff_t)a;
		ssize_t n = copy_file_range(in, &ia, out, &oa, (size_t)(b - a), 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 &&
		    (errno == EXDEV || errno == EOPNOTSUPP || errno == EINVAL || errno == ENOSYS))
			return bounce_copy(in, out, a, b);
		if (n <= 0)
			return n < 0 ? -errno : -EIO; /* 0: in ends early */
		a += (uint64_t)n;
	}
	return 0;
}

int blk_cow_copy_extents(int in_fd, int out_fd, uint64_t start, uint64_t end)
{
	uint64_t pos = start;

	while (pos < end) { /* each pass moves pos past one data extent */
		off_t data = lseek(in_fd, (off_t)pos, SEEK_DATA), hole;
		uint64_t stop;
		int ret;

		if (data < 0)
			return errno == ENXIO ? 0 : -errno; /* ENXIO: only a hole is left */
		if ((uint64_t)data >= end)
			return 0;
		hole = lseek(in_fd, data, SEEK_HOLE);
		if (hole < 0)
			return -errno;
		stop = (uint64_t)hole < end ? (uint64_t)hole : end;
		if (stop <= (uint64_t)data)
			return -EIO; /* a file system answering nonsense: do not loop */
		ret = copy_range(in_fd, out_fd, (uint64_t)data, stop);
		if (ret)
			return ret;
		pos = stop;
	}
	return 0;
}

int blk_cow_export(const struct blk_cow *c, int out_fd)
{
	uint64_t k = 0;

	if (ftruncate(out_fd, (off_t)c->size) < 0)
		return -errno;
	while (k < c->nblocks) { /* each pass takes one run of equal bits */
		bool ovl = bit(c, k);
		uint64_t next = scan(c, k + 1, c->nblocks, ovl);
		uint64_t start = k * BLK_COW_BLOCK, end = next * BLK_COW_BLOCK;
		int ret = blk_cow_copy_extents(ovl ? c->ovl_fd : c->base_fd, out_fd, start,
					       end < c->size ? end : c->size);

		if (ret)
			return ret;
		k = next;
	}
	return 0;
}
