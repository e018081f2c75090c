/* The undo log of a writable disk (blk_undo.h).
 *
 * Block k covers bytes [k * 4 KiB, (k + 1) * 4 KiB) of the disk, clipped to its size, the
 * same grid as a copy-on-write disk's (blk_cow.c).  Bit k of `saved` set means the block's
 * content as of the checkpoint is known: in the log file at the same offset, or, when bit k
 * of `base` is set too, on the copy-on-write base (the block read from the base at the
 * checkpoint, and the base never changes).  A bit is set only once the copy is complete, so a
 * failed save leaves the block unsaved and the request that needed it fails before writing.
 *
 * Sparseness.  While `sparse` holds, every block whose bit is clear reads zeros in the log (a
 * fresh checkpoint truncates it; a failed save punches what it wrote), so a block of zeros is
 * saved by setting its bit only, and holes of the disk cost nothing.  If that invariant is
 * ever lost (a punch or truncate failed) saves write every block in full instead: slower,
 * never wrong.
 *
 * Costs.  A first write to a block after the checkpoint adds one pread and one pwrite of the
 * block (4 KiB each, to the page cache: the log is never synced, as the checkpoint it serves
 * lives in memory and does not survive the process either); later writes to it add nothing.
 * A rollback reads and writes back every saved block (runs coalesced, up to BUF_BYTES per
 * system call), then one fdatasync of the disk: see docs/snapshots.md for figures. */
#include "devices/virtio/blk_undo.h"

#include "devices/virtio/blk_cow.h"
#include "util/fileio.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BLK  BLK_UNDO_BLOCK
#define BITS 64u
/* Bounce buffer of a save or a rollback: one system call per 256 KiB of a run. */
#define BUF_BYTES (256u * 1024)
/* Saves of at least this much look for the holes of the source first (SEEK_DATA): a
 * write-zeroes over a mostly empty disk then reads only its data. */
#define HOLE_SCAN_MIN (1u << 20)

_Static_assert(BLK_UNDO_BLOCK == BLK_COW_BLOCK, "the undo log and the overlay share a grid");

struct blk_undo {
	int fd;		  /* the log: an unnamed sparse file of the disk's size */
	uint64_t size;	  /* bytes */
	uint64_t nblocks; /* size / BLK rounded up */
	uint64_t *saved;  /* nblocks bits; NULL until the first checkpoint */
	uint64_t *base;	  /* nblocks bits: saved blocks that were on the copy-on-write base */
	uint64_t nsaved;
	uint64_t lo, hi; /* the saved blocks lie in [lo, hi) (lo >= hi: none) */
	bool armed;
	bool sparse;  /* blocks with a clear `saved` bit read zeros in the log */
	uint8_t *buf; /* BUF_BYTES */
};

int blk_undo_create(const char *dir, uint64_t size, struct blk_undo **out)
{
	struct blk_undo *u;
	int ret;

	if (size == 0 || size > (uint64_t)INT64_MAX)
		return -EINVAL;
	u = calloc(1, sizeof(*u));
	if (!u)
		return -ENOMEM;
	u->fd = open_unnamed(AT_FDCWD, dir, size);
	if (u->fd < 0) {
		ret = u->fd;
		free(u);
		return ret;
	}
	u->size = size;
	u->nblocks = (size + BLK - 1) / BLK;
	*out = u;
	return 0;
}

void blk_undo_destroy(struct blk_undo *u)
{
	if (!u)
		return;
	close(u->fd);
	free(u->saved);
	free(u->base);
	free(u->buf);
	free(u);
}

bool blk_undo_armed(const struct blk_undo *u)
{
	return u && u->armed;
}

uint64_t blk_undo_saved_blocks(const struct blk_undo *u)
{
	return u ? u->nsaved : 0;
}

static bool bit(const uint64_t *bits, uint64_t k)
{
	return bits[k / BITS] >> (k % BITS) & 1;
}

static void set_bits(uint64_t *bits, uint64_t k, uint64_t end)
{
	for (; k < end; k++)
		bits[k / BITS] |= 1ull << (k % BITS);
}

/* The first block in [k, end) whose bit differs from v, or end (whole words skipped). */
static uint64_t scan(const uint64_t *bits, uint64_t k, uint64_t end, bool v)
{
	const uint64_t same = v ? ~0ull : 0;

	while (k < end) {
		if (k % BITS == 0 && end - k >= BITS && bits[k / BITS] == same) {
			k += BITS;
			continue;
		}
		if (bit(bits, k) != v)
			break;
		k++;
	}
	return k;
}

/* Where block k ends (the last block may be short). */
static uint64_t block_end(const struct blk_undo *u, uint64_t k)
{
	uint64_t end = (k + 1) * BLK;

	return end < u->size ? end : u->size;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

/* Empty the log: every block reads zeros again.  A failure only costs sparseness. */
static void drop_contents(struct blk_undo *u)
{
	if (ftruncate(u->fd, 0) == 0 && ftruncate(u->fd, (off_t)u->size) == 0) {
		u->sparse = true;
		return;
	}
	log_warn("virtio-blk: cannot empty the undo log (%s): saving every block in full",
		 strerror(errno));
	u->sparse = false;
}

/* Clear bits [k, end) (whole words at once). */
static void clear_bits(uint64_t *bits, uint64_t k, uint64_t end)
{
	for (; k < end; k++) {
		if (k % BITS == 0 && end - k >= BITS) {
			bits[k / BITS] = 0;
			k += BITS - 1;
			continue;
		}
		bits[k / BITS] &= ~(1ull << (k % BITS));
	}
}

int blk_undo_checkpoint(struct blk_undo *u)
{
	size_t words = (size_t)((u->nblocks + BITS - 1) / BITS);

	if (u->armed && u->nsaved == 0 && u->sparse)
		return 0; /* nothing saved since: the log is empty already */
	u->armed = false;
	if (!u->saved) {
		/* 32 KiB per GiB of disk for each bitmap. */
		u->saved = calloc(words, sizeof(*u->saved));
		u->base = calloc(words, sizeof(*u->base));
		u->buf = malloc(BUF_BYTES);
		if (!u->saved || !u->base || !u->buf) {
			free(u->saved);
			free(u->base);
			free(u->buf);
			u->saved = u->base = NULL;
			u->buf = NULL;
			return -ENOMEM;
		}
	} else {
		clear_bits(u->saved, u->lo, u->hi);
		clear_bits(u->base, u->lo, u->hi);
	}
	u->nsaved = 0;
	u->lo = u->hi = 0;
	drop_contents(u);
	u->armed = true;
	return 0;
}

/* The log's copy of [a, b) (block-aligned a) from buf: in full, or, while the log is sparse,
 * only its blocks that are not all zeros, in as few writes as runs of them. */
static int log_write(struct blk_undo *u, const uint8_t *buf, uint64_t a, uint64_t b)
{
	uint64_t run = a, pos = a;

	if (!u->sparse)
		return pwrite_full(u->fd, buf, (size_t)(b - a), a);
	while (pos < b) {
		uint64_t next = pos + BLK < b ? pos + BLK : b;

		if (all_zero(buf + (pos - a), (size_t)(next - pos))) {
			int ret = run < pos ? pwrite_full(u->fd, buf + (run - a),
							  (size_t)(pos - run), run)
					    : 0;

			if (ret)
				return ret;
			run = next;
		}
		pos = next;
	}
	return run < b ? pwrite_full(u->fd, buf + (run - a), (size_t)(b - run), run) : 0;
}

/* Copy [a, b) of src into the log through the bounce buffer. */
static int copy_in_bounce(struct blk_undo *u, int src, uint64_t a, uint64_t b)
{
	while (a < b) {
		size_t n = b - a < BUF_BYTES ? (size_t)(b - a) : BUF_BYTES;
		int ret = pread_full(src, u->buf, n, a);

		if (!ret)
			ret = log_write(u, u->buf, a, a + n);
		if (ret)
			return ret;
		a += n;
	}
	return 0;
}

/* Copy [a, b) of src into the log; a large range only where src has data (its holes read
 * zeros, which a sparse log already holds there). */
static int copy_in(struct blk_undo *u, int src, uint64_t a, uint64_t b)
{
	if (!u->sparse || b - a < HOLE_SCAN_MIN)
		return copy_in_bounce(u, src, a, b);
	while (a < b) { /* each pass copies one data extent, or the rest */
		off_t data = lseek(src, (off_t)a, SEEK_DATA), hole;
		uint64_t x, y;
		int ret;

		if (data < 0 && errno == ENXIO)
			return 0; /* a hole up to the end of the file */
		if (data < 0 || (hole = lseek(src, data, SEEK_HOLE)) < 0 || hole <= data)
			return copy_in_bounce(u, src, a, b); /* no hole map (a block device) */
		/* Extents of a file system with blocks smaller than ours: whole blocks. */
		x = (uint64_t)data / BLK * BLK;
		y = ((uint64_t)hole + BLK - 1) / BLK * BLK;
		if (x >= b)
			return 0;
		x = x > a ? x : a;
		y = y < b ? y : b;
		ret = copy_in_bounce(u, src, x, y);
		if (ret)
			return ret;
		a = y;
	}
	return 0;
}

/* A save of [a, b) failed: what it wrote into the log must read zeros again. */
static void forget(struct blk_undo *u, uint64_t a, uint64_t b)
{
	if (u->sparse &&
	    fallocate(u->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)a, (off_t)(b - a)))
		u->sparse = false;
}

/* Save the unsaved blocks [k, end). */
static int save_run(struct blk_undo *u, int fd, struct blk_cow *cow, uint64_t k, uint64_t end)
{
	uint64_t a = k * BLK, b = block_end(u, end - 1);

	while (a < b) { /* each pass takes one run of blocks from one file */
		bool ovl = true;
		uint64_t n = cow ? blk_cow_run(cow, a, b - a, &ovl) : b - a;
		uint64_t k0 = a / BLK, k1 = (a + n + BLK - 1) / BLK;

		if (ovl) {
			int ret = copy_in(u, fd, a, a + n);

			if (ret) {
				forget(u, a, a + n);
				return ret;
			}
		} else {
			set_bits(u->base, k0, k1); /* the base keeps it for us */
		}
		set_bits(u->saved, k0, k1);
		if (!u->nsaved || k0 < u->lo)
			u->lo = k0;
		if (!u->nsaved || k1 > u->hi)
			u->hi = k1;
		u->nsaved += k1 - k0;
		a += n;
	}
	return 0;
}

int blk_undo_save(struct blk_undo *u, int fd, struct blk_cow *cow, uint64_t off, uint64_t len)
{
	uint64_t k, end;

	if (!u || !u->armed)
		return 0;
	if (len == 0 || off >= u->size || len > u->size - off)
		return -EINVAL;
	k = off / BLK;
	end = (off + len - 1) / BLK + 1;
	while (k < end) { /* each pass saves one run of unsaved blocks */
		uint64_t next;
		int ret;

		k = scan(u->saved, k, end, true);
		if (k == end)
			break;
		next = scan(u->saved, k + 1, end, false);
		ret = save_run(u, fd, cow, k, next);
		if (ret)
			return ret;
		k = next;
	}
	return 0;
}

/* Write the log's [a, b) back into the disk's fd. */
static int copy_out(struct blk_undo *u, int fd, uint64_t a, uint64_t b)
{
	while (a < b) {
		size_t n = b - a < BUF_BYTES ? (size_t)(b - a) : BUF_BYTES;
		int ret = pread_full(u->fd, u->buf, n, a);

		if (!ret)
			ret = pwrite_full(fd, u->buf, n, a);
		if (ret)
			return ret;
		a += n;
	}
	return 0;
}

/* Give the saved blocks [k, end) back their checkpoint content. */
static int restore_run(struct blk_undo *u, int fd, struct blk_cow *cow, uint64_t k, uint64_t end)
{
	while (k < end) { /* each pass takes blocks that were all on the base, or none */
		bool on_base = cow && bit(u->base, k);
		uint64_t next = scan(u->base, k + 1, end, on_base);
		uint64_t a = k * BLK, b = block_end(u, next - 1);

		if (on_base) {
			/* Reads go to the base again; the overlay's copy is only space now, so
			 * punching it is a courtesy (a later partial write copies up anew). */
			blk_cow_unmark(cow, a, b - a);
			if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)a,
				      (off_t)(b - a)) < 0 &&
			    errno != EOPNOTSUPP)
				log_warn("virtio-blk: punching the overlay at %llu: %s",
					 (unsigned long long)a, strerror(errno));
		} else {
			int ret = copy_out(u, fd, a, b);

			if (ret)
				return ret;
			/* It was in the overlay at the checkpoint and still is: no bit moves. */
		}
		k = next;
	}
	return 0;
}

int blk_undo_rollback(struct blk_undo *u, int fd, struct blk_cow *cow)
{
	uint64_t k;

	if (!u || !u->armed)
		return -ENOENT;
	/* Nothing written since the checkpoint (a fuzzer's reset, most of the time): free. */
	if (u->nsaved == 0)
		return 0;
	/* Only the bitmap's words between the first and the last saved block are looked at. */
	for (k = u->lo; k < u->hi;) { /* each pass restores one run of saved blocks */
		uint64_t next;
		int ret;

		k = scan(u->saved, k, u->hi, false);
		if (k == u->hi)
			break;
		next = scan(u->saved, k + 1, u->hi, true);
		ret = restore_run(u, fd, cow, k, next);
		if (ret)
			return ret;
		k = next;
	}
	/* The rolled-back content is what the guest's RAM (page cache, file system state)
	 * now believes is on the disk: make it as durable as a FLUSH would. */
	if (fdatasync(fd) < 0)
		return -errno;
	clear_bits(u->saved, u->lo, u->hi);
	clear_bits(u->base, u->lo, u->hi);
	drop_contents(u);
	u->nsaved = 0;
	u->lo = u->hi = 0;
	return 0;
}
