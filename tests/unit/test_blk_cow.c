/* The copy-on-write disk (src/devices/virtio/blk_cow.c) on real temporary files, checked
 * against an in-memory model of the disk: read-through, copy-up of partly written blocks,
 * runs, bounds, the base never written, the merged export with its holes; then virtio-blk
 * over a copy-on-write disk, driven through the fake driver in all three I/O modes. */
#include "core/irq.h"
#include "devices/virtio/blk.h"
#include "devices/virtio/blk_cow.h"
#include "devices/virtio/mmio.h"
#include "devices/virtio/virtio.h"
#include "fake_driver.h"
#include "fake_virtq.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#define BLK BLK_COW_BLOCK
/* 16 blocks and a partial one (3 sectors): the last block is shorter than 4 KiB. */
#define DISK_SIZE (16u * BLK + 1536u)
/* A hole in the base (blocks 8..11) that the export must keep a hole. */
#define HOLE_START (8u * BLK)
#define HOLE_END   (12u * BLK)

struct cow_fx {
	char dir[64];
	int base, ovl;
	uint8_t *orig;	/* the base's contents as created */
	uint8_t *model; /* what the merged disk must read */
	struct blk_cow *c;
};

static uint8_t pattern(uint64_t off)
{
	return (uint8_t)(off * 13 + off / 4096 + 1);
}

/* A base file of `size` bytes (pattern, with a hole at [hole_start, hole_end)), opened
 * read-only, and an empty overlay of the same size. */
static void make_files(struct cow_fx *x, uint64_t size, uint64_t hole_start, uint64_t hole_end)
{
	char path[128];
	int fd;

	snprintf(x->dir, sizeof(x->dir), "/tmp/ignition-cow-XXXXXX");
	assert_non_null(mkdtemp(x->dir));
	snprintf(path, sizeof(path), "%s/base", x->dir);
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	x->orig = calloc(1, size);
	x->model = malloc(size);
	assert_non_null(x->orig);
	assert_non_null(x->model);
	for (uint64_t i = 0; i < size; i++)
		if (i < hole_start || i >= hole_end)
			x->orig[i] = pattern(i);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	assert_int_equal(pwrite(fd, x->orig, hole_start, 0), (ssize_t)hole_start);
	assert_int_equal(pwrite(fd, x->orig + hole_end, size - hole_end, (off_t)hole_end),
			 (ssize_t)(size - hole_end));
	assert_int_equal(fsync(fd), 0);
	close(fd);
	memcpy(x->model, x->orig, size);
	x->base = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(x->base >= 0);
	x->ovl = open(x->dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	assert_true(x->ovl >= 0);
	assert_int_equal(ftruncate(x->ovl, (off_t)size), 0);
}

static int setup(void **state)
{
	struct cow_fx *x = calloc(1, sizeof(*x));

	make_files(x, DISK_SIZE, HOLE_START, HOLE_END);
	assert_int_equal(blk_cow_create(x->base, x->ovl, &x->c), 0);
	*state = x;
	return 0;
}

static int teardown(void **state)
{
	struct cow_fx *x = *state;
	char path[128];

	blk_cow_destroy(x->c);
	close(x->base);
	close(x->ovl);
	snprintf(path, sizeof(path), "%s/base", x->dir);
	unlink(path);
	rmdir(x->dir);
	free(x->orig);
	free(x->model);
	free(x);
	return 0;
}

/* The base file still holds exactly what it was created with. */
static void expect_base_unchanged(struct cow_fx *x, uint64_t size)
{
	uint8_t *now = malloc(size);

	assert_non_null(now);
	assert_int_equal(pread(x->base, now, size, 0), (ssize_t)size);
	assert_memory_equal(now, x->orig, size);
	free(now);
}

/* The whole merged disk reads as the model. */
static void expect_model(struct cow_fx *x)
{
	uint8_t *now = malloc(DISK_SIZE);

	assert_non_null(now);
	assert_int_equal(blk_cow_read(x->c, now, DISK_SIZE, 0), 0);
	assert_memory_equal(now, x->model, DISK_SIZE);
	free(now);
}

static void write_both(struct cow_fx *x, uint64_t off, size_t len, uint8_t seed)
{
	uint8_t *buf = malloc(len);

	assert_non_null(buf);
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)(seed + i * 3);
	assert_int_equal(blk_cow_write(x->c, buf, len, off), 0);
	memcpy(x->model + off, buf, len);
	free(buf);
}

static void test_read_through(void **state)
{
	struct cow_fx *x = *state;
	uint8_t buf[700];
	bool ovl;

	assert_int_equal(blk_cow_size(x->c), DISK_SIZE);
	assert_int_equal(blk_cow_base_fd(x->c), x->base);
	expect_model(x);
	/* Unaligned, across a block boundary and into the hole (zeros). */
	assert_int_equal(blk_cow_read(x->c, buf, sizeof(buf), HOLE_START - 300), 0);
	assert_memory_equal(buf, x->orig + HOLE_START - 300, sizeof(buf));
	for (uint64_t k = 0; k * BLK < DISK_SIZE; k++)
		assert_false(blk_cow_present(x->c, k * BLK));
	assert_int_equal(blk_cow_run(x->c, 100, DISK_SIZE - 100, &ovl), DISK_SIZE - 100);
	assert_false(ovl);
}

static void test_partial_write_copies_up(void **state)
{
	struct cow_fx *x = *state;
	uint8_t blk[BLK];

	write_both(x, BLK + 512, 512, 0x40);
	assert_true(blk_cow_present(x->c, BLK));
	assert_true(blk_cow_present(x->c, 2 * BLK - 1));
	assert_false(blk_cow_present(x->c, 0));
	assert_false(blk_cow_present(x->c, 2 * BLK));
	/* The overlay holds the whole block: base bytes around the write. */
	assert_int_equal(pread(x->ovl, blk, BLK, BLK), BLK);
	assert_memory_equal(blk, x->model + BLK, BLK);
	assert_memory_equal(blk, x->orig + BLK, 512);
	assert_memory_equal(blk + 1024, x->orig + BLK + 1024, BLK - 1024);
	/* A second write to another sector of the block copies nothing up again. */
	write_both(x, BLK + 3072, 512, 0x50);
	expect_model(x);
	expect_base_unchanged(x, DISK_SIZE);
}

static void test_write_spanning_blocks(void **state)
{
	struct cow_fx *x = *state;
	bool ovl;

	/* Block 2 in part, 3 and 4 whole, 5 in part. */
	write_both(x, 2 * BLK + 2048, 3 * BLK, 0x11);
	for (unsigned k = 2; k <= 5; k++)
		assert_true(blk_cow_present(x->c, k * BLK));
	assert_false(blk_cow_present(x->c, 6 * BLK));
	expect_model(x);
	/* Runs: base [0, 2 blocks), overlay [2, 6), base after. */
	assert_int_equal(blk_cow_run(x->c, 512, DISK_SIZE - 512, &ovl), 2 * BLK - 512);
	assert_false(ovl);
	assert_int_equal(blk_cow_run(x->c, 2 * BLK + 100, DISK_SIZE - 2 * BLK - 100, &ovl),
			 4 * BLK - 100);
	assert_true(ovl);
	assert_int_equal(blk_cow_run(x->c, 3 * BLK, 1000, &ovl), 1000); /* clipped to len */
	assert_true(ovl);
	expect_base_unchanged(x, DISK_SIZE);
}

static void test_last_partial_block(void **state)
{
	struct cow_fx *x = *state;

	/* The last block is 1536 bytes: copy-up reads only those. */
	write_both(x, DISK_SIZE - 512, 512, 0x77);
	assert_true(blk_cow_present(x->c, DISK_SIZE - 1));
	write_both(x, 16 * BLK, 512, 0x78);
	expect_model(x);
	assert_int_equal(lseek(x->ovl, 0, SEEK_END), DISK_SIZE); /* never grown */
	expect_base_unchanged(x, DISK_SIZE);
}

/* Writes and reads at pseudo-random places and lengths, against the model. */
static void test_mixed_runs(void **state)
{
	struct cow_fx *x = *state;
	uint8_t *buf = malloc(DISK_SIZE);
	uint32_t seed = 12345;

	assert_non_null(buf);
	for (unsigned i = 0; i < 200; i++) {
		uint64_t off, len;

		seed = seed * 1103515245u + 12345u;
		off = (seed >> 8) % DISK_SIZE;
		seed = seed * 1103515245u + 12345u;
		len = 1 + (seed >> 8) % (3 * BLK);
		if (len > DISK_SIZE - off)
			len = DISK_SIZE - off;
		if (i % 3 == 0) {
			write_both(x, off, (size_t)len, (uint8_t)i);
		} else {
			assert_int_equal(blk_cow_read(x->c, buf, (size_t)len, off), 0);
			assert_memory_equal(buf, x->model + off, len);
		}
	}
	expect_model(x);
	expect_base_unchanged(x, DISK_SIZE);
	free(buf);
}

static void test_bounds(void **state)
{
	struct cow_fx *x = *state;
	uint8_t buf[BLK];

	assert_int_equal(blk_cow_read(x->c, buf, 0, 0), -EINVAL);
	assert_int_equal(blk_cow_write(x->c, buf, 0, 0), -EINVAL);
	assert_int_equal(blk_cow_read(x->c, buf, 1, DISK_SIZE), -EINVAL);
	assert_int_equal(blk_cow_write(x->c, buf, 512, DISK_SIZE - 511), -EINVAL);
	assert_int_equal(blk_cow_write(x->c, buf, 512, UINT64_MAX - 100), -EINVAL);
	assert_int_equal(blk_cow_prepare_write(x->c, DISK_SIZE, 1), -EINVAL);
	assert_int_equal(blk_cow_prepare_write(x->c, 0, 0), -EINVAL);
	assert_false(blk_cow_range_ok(x->c, 1, UINT64_MAX));
	assert_true(blk_cow_range_ok(x->c, 0, DISK_SIZE));
	blk_cow_mark(x->c, DISK_SIZE, 10); /* ignored */
	assert_false(blk_cow_present(x->c, DISK_SIZE));
	assert_false(blk_cow_present(x->c, DISK_SIZE - 1));
	assert_int_equal(blk_cow_flush(x->c), 0);
	expect_model(x);
}

/* A copy-up that fails sets no bit: the block keeps reading from the base. */
static void test_failed_copy_up(void **state)
{
	struct cow_fx *x = *state;
	struct blk_cow *c;
	char path[128];
	uint8_t buf[512];
	int wo;

	snprintf(path, sizeof(path), "%s/base", x->dir);
	wo = open(path, O_WRONLY | O_CLOEXEC); /* reads fail with EBADF */
	assert_true(wo >= 0);
	assert_int_equal(blk_cow_create(wo, x->ovl, &c), 0);
	memset(buf, 0xaa, sizeof(buf));
	assert_int_equal(blk_cow_write(c, buf, sizeof(buf), 512), -EBADF);
	assert_false(blk_cow_present(c, 0));
	/* A whole block needs no copy-up and works. */
	assert_int_equal(blk_cow_prepare_write(c, BLK, BLK), 0);
	assert_false(blk_cow_present(c, BLK)); /* not until the write succeeded */
	blk_cow_destroy(c);
	close(wo);
	expect_base_unchanged(x, DISK_SIZE);
}

static void test_create_errors(void **state)
{
	struct cow_fx *x = *state;
	struct blk_cow *c;
	int dir = open(x->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	assert_true(dir >= 0);
	assert_int_equal(blk_cow_create(x->base, dir, &c), -EINVAL);
	assert_int_equal(ftruncate(x->ovl, DISK_SIZE + 512), 0);
	assert_int_equal(blk_cow_create(x->base, x->ovl, &c), -EINVAL); /* sizes differ */
	assert_int_equal(ftruncate(x->ovl, DISK_SIZE), 0);
	assert_int_equal(blk_cow_create(-1, x->ovl, &c), -EBADF);
	close(dir);
}

/* The merged image is the base with the writes applied, and holes stay holes. */
static void test_export(void **state)
{
	struct cow_fx *x = *state;
	uint8_t *now = malloc(DISK_SIZE);
	off_t data;
	int out;

	assert_non_null(now);
	write_both(x, 0, 100, 1);			      /* block 0 in part */
	write_both(x, 3 * BLK, 2 * BLK, 2);		      /* blocks 3, 4 */
	write_both(x, HOLE_START + BLK + 8, 16, 3);	      /* block 9, inside the hole */
	write_both(x, 15 * BLK + 4000, BLK - 4000 + 1000, 4); /* 15 and the short last one */
	out = open(x->dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	assert_true(out >= 0);
	assert_int_equal(blk_cow_export(x->c, out), 0);
	assert_int_equal(lseek(out, 0, SEEK_END), DISK_SIZE);
	assert_int_equal(pread(out, now, DISK_SIZE, 0), DISK_SIZE);
	assert_memory_equal(now, x->model, DISK_SIZE);
	/* Blocks 8, 10 and 11 came from the base's hole: no data there. */
	data = lseek(out, HOLE_START, SEEK_DATA);
	assert_true(data >= (off_t)(HOLE_START + BLK) || data < 0);
	data = lseek(out, HOLE_START + 2 * BLK, SEEK_DATA);
	assert_true(data >= (off_t)HOLE_END);
	close(out);
	expect_base_unchanged(x, DISK_SIZE);
	free(now);
}

static void test_copy_extents(void **state)
{
	struct cow_fx *x = *state;
	uint8_t buf[BLK];
	int out = open(x->dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

	assert_true(out >= 0);
	assert_int_equal(ftruncate(out, DISK_SIZE), 0);
	/* Only [BLK, 2 BLK) and from inside the hole on. */
	assert_int_equal(blk_cow_copy_extents(x->base, out, BLK, 2 * BLK), 0);
	assert_int_equal(blk_cow_copy_extents(x->base, out, HOLE_START + 100, DISK_SIZE), 0);
	assert_int_equal(pread(out, buf, BLK, 0), BLK);
	for (unsigned i = 0; i < BLK; i++)
		assert_int_equal(buf[i], 0);
	assert_int_equal(pread(out, buf, BLK, BLK), BLK);
	assert_memory_equal(buf, x->orig + BLK, BLK);
	assert_int_equal(pread(out, buf, BLK, HOLE_END), BLK);
	assert_memory_equal(buf, x->orig + HOLE_END, BLK);
	assert_int_equal(blk_cow_copy_extents(x->base, out, 5, 5), 0); /* empty */
	close(out);
}

/* ---- virtio-blk over a copy-on-write disk ---- */

#define RAM_SIZE   (1u << 20)
#define QSIZE	   16
#define DESC_GPA   0x1000
#define AVAIL_GPA  0x2000
#define USED_GPA   0x3000
#define HDR_GPA	   0x4000
#define STATUS_GPA 0x5000
#define DATA_GPA   0x10000

enum mode { M_WAIT, M_ASYNC, M_SYNC };

struct dev_fx {
	struct cow_fx cow; /* files and model (cow.c unused) */
	struct fake_mem mem;
	struct fake_vq f;
	struct irq_line irq;
	struct virtio_blk *blk;
	struct virtio_mmio *t;
	int efd;
};

static int open_dev(void **state, enum mode mode)
{
	struct dev_fx *x = calloc(1, sizeof(*x));

	make_files(&x->cow, DISK_SIZE, HOLE_START, HOLE_END);
	fake_mem_init(&x->mem, RAM_SIZE);
	x->irq.fd = -1;
	x->efd = -1;
	if (mode == M_SYNC)
		setenv("IGNITION_BLK_SYNC", "1", 1);
	assert_int_equal(virtio_blk_create_fd(x->cow.ovl, x->cow.base, false, "cow", &x->blk), 0);
	unsetenv("IGNITION_BLK_SYNC");
	assert_non_null(virtio_blk_cow(x->blk));
	assert_int_equal(virtio_blk_capacity(x->blk), DISK_SIZE / 512);
	if (mode == M_ASYNC) {
		x->efd = virtio_blk_async_fd(x->blk);
		assert_true(x->efd >= 0);
	}
	assert_int_equal(virtio_mmio_create(&x->mem.gm, &x->irq, &virtio_blk_ops, x->blk, &x->t),
			 0);
	fdrv_negotiate(x->t, ~0ull);
	fdrv_queue(x->t, 0, &x->f, &x->mem, QSIZE, DESC_GPA, AVAIL_GPA, USED_GPA,
		   VIRTIO_BLK_QUEUE_SIZE);
	fdrv_driver_ok(x->t);
	*state = x;
	return 0;
}

static int setup_wait(void **state)
{
	return open_dev(state, M_WAIT);
}

static int setup_async(void **state)
{
	return open_dev(state, M_ASYNC);
}

static int setup_sync(void **state)
{
	return open_dev(state, M_SYNC);
}

static int teardown_dev(void **state)
{
	struct dev_fx *x = *state;
	void *cow = &x->cow;

	virtio_mmio_destroy(x->t); /* and the device */
	fake_mem_free(&x->mem);
	x->cow.c = NULL;
	teardown(&cow); /* frees x->cow's buffers and x itself (first member) */
	return 0;
}

/* One request: header, data buffers (`segs` pieces of data_len / segs bytes from DATA_GPA,
 * spaced a page apart), status; returns the status byte. */
static uint8_t request(struct dev_fx *x, uint32_t type, uint64_t sector, uint32_t data_len,
		       unsigned segs, bool writable)
{
	struct fake_buf bufs[10] = { { HDR_GPA, 16, false } };
	uint8_t *h = fake_mem_ptr(&x->mem, HDR_GPA, 16);
	uint8_t *st = fake_mem_ptr(&x->mem, STATUS_GPA, 1);
	uint16_t want = (uint16_t)(fake_vq_used_idx(&x->f) + 1);
	unsigned n = 1;
	uint32_t id, len;

	virtio_put_le(h, type, 4);
	virtio_put_le(h + 4, 0, 4);
	virtio_put_le(h + 8, sector, 8);
	for (unsigned i = 0; i < segs; i++)
		bufs[n++] = (struct fake_buf){ DATA_GPA + (uint64_t)i * 0x10000, data_len / segs,
					       writable };
	bufs[n++] = (struct fake_buf){ STATUS_GPA, 1, true };
	*st = 0xee;
	fake_vq_add_chain(&x->f, bufs, n);
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	for (int i = 0; x->efd >= 0 && i < 500 && fake_vq_used_idx(&x->f) != want; i++) {
		struct pollfd p = { .fd = x->efd, .events = POLLIN };

		if (poll(&p, 1, 10) > 0)
			virtio_blk_complete(x->blk);
	}
	assert_int_equal(fake_vq_used_idx(&x->f), want);
	assert_true(fake_vq_get_used(&x->f, &id, &len));
	return *st;
}

/* Data buffer i of a `segs`-piece request of `len` bytes, in guest memory. */
static uint8_t *seg_ptr(struct dev_fx *x, unsigned i, uint32_t piece)
{
	return fake_mem_ptr(&x->mem, DATA_GPA + (uint64_t)i * 0x10000, piece);
}

static void dev_write(struct dev_fx *x, uint64_t sector, uint32_t len, unsigned segs, uint8_t seed)
{
	uint32_t piece = len / segs;

	for (unsigned i = 0; i < segs; i++) {
		uint8_t *p = seg_ptr(x, i, piece);

		for (uint32_t j = 0; j < piece; j++)
			p[j] = (uint8_t)(seed + i * 31 + j);
		memcpy(x->cow.model + sector * 512 + (uint64_t)i * piece, p, piece);
	}
	assert_int_equal(request(x, VIRTIO_BLK_T_OUT, sector, len, segs, false), VIRTIO_BLK_S_OK);
}

static void dev_expect(struct dev_fx *x, uint64_t sector, uint32_t len, unsigned segs)
{
	uint32_t piece = len / segs;

	for (unsigned i = 0; i < segs; i++)
		memset(seg_ptr(x, i, piece), 0xcc, piece);
	assert_int_equal(request(x, VIRTIO_BLK_T_IN, sector, len, segs, true), VIRTIO_BLK_S_OK);
	for (unsigned i = 0; i < segs; i++)
		assert_memory_equal(seg_ptr(x, i, piece),
				    x->cow.model + sector * 512 + (uint64_t)i * piece, piece);
}

static void test_dev_read_write_flush(void **state)
{
	struct dev_fx *x = *state;
	const uint32_t all = DISK_SIZE;

	/* Read-through first, in one piece and in 8 pieces of unequal origin. */
	dev_expect(x, 0, 16 * BLK, 1);
	dev_expect(x, 3, 8 * 1024, 8);
	/* A one-sector write in block 1 (copy-up), a write over blocks 4..7 (4 and 7 in part). */
	dev_write(x, 9, 512, 1, 0x10);
	dev_write(x, 4 * 8 + 7, 2 * BLK + 1024, 4, 0x20);
	/* Reads across mixed runs: base, overlay, base, overlay, base, the hole. */
	dev_expect(x, 0, 12 * BLK, 4);
	dev_expect(x, 1, 8 * BLK, 8);
	dev_expect(x, 0, all - 1536, 1);
	dev_expect(x, DISK_SIZE / 512 - 3, 1536, 3);
	assert_int_equal(request(x, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false), VIRTIO_BLK_S_OK);
	/* The writes are in the overlay; the base is as it was. */
	expect_base_unchanged(&x->cow, DISK_SIZE);
	{
		uint8_t b[512];

		assert_int_equal(pread(x->cow.ovl, b, 512, 9 * 512), 512);
		assert_memory_equal(b, x->cow.model + 9 * 512, 512);
	}
}

static void test_dev_write_zeroes(void **state)
{
	struct dev_fx *x = *state;
	uint8_t *s = fake_mem_ptr(&x->mem, DATA_GPA, 32);

	/* Sectors 3..20 (blocks 0 and 2 in part, 1 whole), and blocks 5..6 whole with UNMAP. */
	virtio_put_le(s, 3, 8);
	virtio_put_le(s + 8, 18, 4);
	virtio_put_le(s + 12, 0, 4);
	virtio_put_le(s + 16, 40, 8);
	virtio_put_le(s + 24, 16, 4);
	virtio_put_le(s + 28, VIRTIO_BLK_WZ_F_UNMAP, 4);
	assert_int_equal(request(x, VIRTIO_BLK_T_WRITE_ZEROES, 0, 32, 1, false), VIRTIO_BLK_S_OK);
	memset(x->cow.model + 3 * 512, 0, 18 * 512);
	memset(x->cow.model + 40 * 512, 0, 16 * 512);
	dev_expect(x, 0, 8 * BLK, 1);
	/* A discard changes nothing that must read back; the base stays as it was. */
	virtio_put_le(s, 64, 8);
	virtio_put_le(s + 8, 8, 4);
	virtio_put_le(s + 12, 0, 4);
	assert_int_equal(request(x, VIRTIO_BLK_T_DISCARD, 0, 16, 1, false), VIRTIO_BLK_S_OK);
	expect_base_unchanged(&x->cow, DISK_SIZE);
	dev_expect(x, 0, 8 * BLK, 1);
}

static void test_dev_bounds(void **state)
{
	struct dev_fx *x = *state;

	assert_int_equal(request(x, VIRTIO_BLK_T_IN, DISK_SIZE / 512, 512, 1, true),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(x, VIRTIO_BLK_T_OUT, DISK_SIZE / 512 - 1, 1024, 1, false),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(x, VIRTIO_BLK_T_OUT, UINT64_MAX, 512, 1, false),
			 VIRTIO_BLK_S_IOERR);
	expect_base_unchanged(&x->cow, DISK_SIZE);
	dev_expect(x, 0, 16 * BLK, 2);
}

/* After a write into block 2 (copied up: in the overlay), MIXED reads of 3 blocks from
 * sector 1, each across base, overlay, base runs, in flight at once (asynchronous mode:
 * queue_notify does not wait; 3 descriptors each, the queue has 16). */
#define MIXED 4
static void publish_mixed_reads(struct dev_fx *x)
{
	dev_write(x, 16, 2048, 1, 0x33);
	for (unsigned i = 0; i < MIXED; i++) {
		uint8_t *h = fake_mem_ptr(&x->mem, HDR_GPA + 32u * i, 16);
		struct fake_buf bufs[3] = { { HDR_GPA + 32u * i, 16, false },
					    { DATA_GPA + 0x10000u * i, 3 * BLK, true },
					    { STATUS_GPA + i, 1, true } };

		virtio_put_le(h, VIRTIO_BLK_T_IN, 4);
		virtio_put_le(h + 4, 0, 4);
		virtio_put_le(h + 8, 1, 8);
		memset(seg_ptr(x, i, 3 * BLK), 0xcc, 3 * BLK);
		fake_vq_add_chain(&x->f, bufs, 3);
	}
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
}

/* quiesce completes multi-run reads (each run a new operation of its slot) normally. */
static void test_dev_quiesce_mixed(void **state)
{
	struct dev_fx *x = *state;

	publish_mixed_reads(x);
	assert_int_equal(virtio_blk_in_flight(x->blk), MIXED);
	virtio_mmio_quiesce(x->t);
	assert_int_equal(virtio_blk_in_flight(x->blk), 0);
	assert_int_equal(fake_vq_used_idx(&x->f), 1 + MIXED);
	for (unsigned i = 0; i < MIXED; i++) {
		assert_int_equal(*(uint8_t *)fake_mem_ptr(&x->mem, STATUS_GPA + i, 1),
				 VIRTIO_BLK_S_OK);
		assert_memory_equal(seg_ptr(x, i, 3 * BLK), x->cow.model + 512, 3 * BLK);
	}
}

/* A reset cancels or waits for reads of both files: nothing in flight afterwards, and the
 * device works again once brought up. */
static void test_dev_reset_mixed(void **state)
{
	struct dev_fx *x = *state;

	publish_mixed_reads(x);
	assert_int_equal(virtio_blk_in_flight(x->blk), MIXED);
	fdrv_wr(x->t, VIRTIO_MMIO_STATUS, 0);
	assert_int_equal(virtio_blk_in_flight(x->blk), 0);
	virtio_blk_complete(x->blk); /* nothing left for the callback */
	fdrv_negotiate(x->t, ~0ull);
	fdrv_queue(x->t, 0, &x->f, &x->mem, QSIZE, DESC_GPA, AVAIL_GPA, USED_GPA,
		   VIRTIO_BLK_QUEUE_SIZE);
	fdrv_driver_ok(x->t);
	dev_expect(x, 0, 8 * BLK, 2);
	expect_base_unchanged(&x->cow, DISK_SIZE);
}

static void test_dev_create_errors(void **state)
{
	struct cow_fx *x = *state;
	struct virtio_blk *b;

	assert_int_equal(virtio_blk_create_fd(x->ovl, x->base, true, NULL, &b), -EINVAL);
	assert_int_equal(ftruncate(x->ovl, DISK_SIZE - 512), 0);
	assert_int_equal(virtio_blk_create_fd(x->ovl, x->base, false, NULL, &b), -EINVAL);
	assert_int_equal(virtio_blk_create_fd(-1, -1, false, NULL, &b), -EBADF);
	/* A plain disk on an fd has no copy-on-write state and the caller's fd stays open. */
	assert_int_equal(virtio_blk_create_fd(x->ovl, -1, false, NULL, &b), 0);
	assert_null(virtio_blk_cow(b));
	virtio_blk_destroy(b);
	assert_true(fcntl(x->ovl, F_GETFD) >= 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_read_through, setup, teardown),
		cmocka_unit_test_setup_teardown(test_partial_write_copies_up, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_spanning_blocks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_last_partial_block, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mixed_runs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bounds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_copy_up, setup, teardown),
		cmocka_unit_test_setup_teardown(test_create_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_export, setup, teardown),
		cmocka_unit_test_setup_teardown(test_copy_extents, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dev_create_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dev_read_write_flush, setup_wait,
						teardown_dev),
		cmocka_unit_test_setup_teardown(test_dev_read_write_flush, setup_async,
						teardown_dev),
		cmocka_unit_test_setup_teardown(test_dev_read_write_flush, setup_sync,
						teardown_dev),
		cmocka_unit_test_setup_teardown(test_dev_write_zeroes, setup_wait, teardown_dev),
		cmocka_unit_test_setup_teardown(test_dev_write_zeroes, setup_async, teardown_dev),
		cmocka_unit_test_setup_teardown(test_dev_write_zeroes, setup_sync, teardown_dev),
		cmocka_unit_test_setup_teardown(test_dev_quiesce_mixed, setup_async, teardown_dev),
		cmocka_unit_test_setup_teardown(test_dev_reset_mixed, setup_async, teardown_dev),
		cmocka_unit_test_setup_teardown(test_dev_bounds, setup_wait, teardown_dev),
		cmocka_unit_test_setup_teardown(test_dev_bounds, setup_async, teardown_dev),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
