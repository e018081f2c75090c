/* The in-place reset of a disk (virtio_blk_checkpoint/rollback, src/devices/virtio/blk_undo.c)
 * on real temporary files, driven through the fake driver: plain images and copy-on-write
 * disks, each with io_uring (queue_notify waiting, or completed through the eventfd) and with
 * the synchronous fallback.  Every check compares the whole disk, as the device reads it and
 * as the files hold it, with a model of what it must be.  Ends with a microbenchmark on a
 * 64 MiB image (figures printed). */
#include "core/irq.h"
#include "core/machine.h"
#include "devices/virtio/blk.h"
#include "devices/virtio/blk_cow.h"
#include "devices/virtio/blk_undo.h"
#include "devices/virtio/mmio.h"
#include "devices/virtio/virtio.h"
#include "fake_driver.h"
#include "fake_virtq.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#define BLK	      4096u
#define NBLK	      40u
#define DISK_SIZE     (NBLK * BLK + 1536u) /* the last block is 3 sectors */
#define HOLE_START    (24u * BLK)	   /* blocks 24..31: a hole in the image / base */
#define HOLE_END      (32u * BLK)
#define RAM_SIZE      (1u << 20)
#define QSIZE	      16
#define DESC_GPA      0x1000
#define AVAIL_GPA     0x2000
#define USED_GPA      0x3000
#define HDR_GPA	      0x4000
#define STATUS_GPA    0x5000
#define DATA_GPA      0x10000
#define DATA_ROOM     (RAM_SIZE - DATA_GPA)
#define BENCH_SIZE    (64u << 20)
#define BENCH_N	      1000u
#define SECTORS_OF(b) ((b) / 512u)

enum mode { M_WAIT, M_ASYNC, M_SYNC };

struct ux {
	char dir[64];
	char path[96]; /* the image (plain) or the base (copy-on-write) */
	int img;       /* the test's own fd on it */
	int ovl;       /* copy-on-write: the overlay, else -1 */
	uint64_t size;
	uint8_t *model; /* what the disk must read now */
	uint8_t *ckpt;	/* what it read at the last checkpoint */
	uint8_t *buf;	/* scratch of `size` bytes */
	struct fake_mem mem;
	struct fake_vq f;
	struct irq_line irq;
	struct virtio_blk *blk;
	struct virtio_mmio *t;
	int efd;
};

static uint8_t pattern(uint64_t off)
{
	return (uint8_t)(off * 11 + off / 4096 + 5);
}

/* The image (or base) of `size` bytes: the pattern, a hole at [hole_a, hole_b). */
static void make_image(struct ux *x, uint64_t size, uint64_t hole_a, uint64_t hole_b)
{
	snprintf(x->dir, sizeof(x->dir), "/tmp/ignition-undo-XXXXXX");
	assert_non_null(mkdtemp(x->dir));
	snprintf(x->path, sizeof(x->path), "%s/disk", x->dir);
	x->img = open(x->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	assert_true(x->img >= 0);
	x->size = size;
	x->model = calloc(1, size);
	x->ckpt = malloc(size);
	x->buf = malloc(size);
	assert_non_null(x->model);
	assert_non_null(x->ckpt);
	assert_non_null(x->buf);
	for (uint64_t i = 0; i < size; i++)
		if (i < hole_a || i >= hole_b)
			x->model[i] = pattern(i);
	assert_int_equal(ftruncate(x->img, (off_t)size), 0);
	assert_int_equal(pwrite(x->img, x->model, hole_a, 0), (ssize_t)hole_a);
	assert_int_equal(pwrite(x->img, x->model + hole_b, size - hole_b, (off_t)hole_b),
			 (ssize_t)(size - hole_b));
	x->ovl = -1;
}

static void open_dev(struct ux *x, bool cow, bool ro, enum mode mode)
{
	fake_mem_init(&x->mem, RAM_SIZE);
	x->irq.fd = -1;
	x->efd = -1;
	if (mode == M_SYNC)
		setenv("IGNITION_BLK_SYNC", "1", 1);
	if (cow) {
		int base = open(x->path, O_RDONLY | O_CLOEXEC);

		assert_true(base >= 0);
		x->ovl = open(x->dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
		assert_true(x->ovl >= 0);
		assert_int_equal(ftruncate(x->ovl, (off_t)x->size), 0);
		assert_int_equal(virtio_blk_create_fd(x->ovl, base, false, "undo", &x->blk), 0);
		close(base);
	} else {
		assert_int_equal(virtio_blk_create(x->path, ro, "undo", &x->blk), 0);
	}
	unsetenv("IGNITION_BLK_SYNC");
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
}

static int setup_dev(void **state, bool cow, enum mode mode)
{
	struct ux *x = calloc(1, sizeof(*x));

	make_image(x, DISK_SIZE, HOLE_START, HOLE_END);
	open_dev(x, cow, false, mode);
	*state = x;
	return 0;
}

static int plain_wait(void **s)
{
	return setup_dev(s, false, M_WAIT);
}
static int plain_async(void **s)
{
	return setup_dev(s, false, M_ASYNC);
}
static int plain_sync(void **s)
{
	return setup_dev(s, false, M_SYNC);
}
static int cow_wait(void **s)
{
	return setup_dev(s, true, M_WAIT);
}
static int cow_async(void **s)
{
	return setup_dev(s, true, M_ASYNC);
}
static int cow_sync(void **s)
{
	return setup_dev(s, true, M_SYNC);
}

static int teardown(void **state)
{
	struct ux *x = *state;

	if (x->t)
		virtio_mmio_destroy(x->t); /* and the device */
	fake_mem_free(&x->mem);
	close(x->img);
	if (x->ovl >= 0)
		close(x->ovl);
	unlink(x->path);
	assert_int_equal(rmdir(x->dir), 0); /* the undo log left no name behind */
	free(x->model);
	free(x->ckpt);
	free(x->buf);
	free(x);
	return 0;
}

/* Kick and, in asynchronous mode, reap until the used index reaches `want`. */
static void settle(struct ux *x, uint16_t want)
{
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	for (int i = 0; x->efd >= 0 && i < 500 && fake_vq_used_idx(&x->f) != want; i++) {
		struct pollfd p = { .fd = x->efd, .events = POLLIN };

		if (poll(&p, 1, 10) > 0)
			virtio_blk_complete(x->blk);
	}
	assert_int_equal(fake_vq_used_idx(&x->f), want);
}

/* Publish header + one data buffer (unless len is 0) + status, without kicking. */
static void publish(struct ux *x, uint32_t type, uint64_t sector, uint32_t len, bool writable)
{
	struct fake_buf bufs[3] = { { HDR_GPA, 16, false } };
	uint8_t *h = fake_mem_ptr(&x->mem, HDR_GPA, 16);
	unsigned n = 1;

	virtio_put_le(h, type, 4);
	virtio_put_le(h + 4, 0, 4);
	virtio_put_le(h + 8, sector, 8);
	if (len)
		bufs[n++] = (struct fake_buf){ DATA_GPA, len, writable };
	bufs[n++] = (struct fake_buf){ STATUS_GPA, 1, true };
	*(uint8_t *)fake_mem_ptr(&x->mem, STATUS_GPA, 1) = 0xee;
	fake_vq_add_chain(&x->f, bufs, n);
}

static uint8_t request(struct ux *x, uint32_t type, uint64_t sector, uint32_t len, bool writable)
{
	uint32_t id, used;

	publish(x, type, sector, len, writable);
	settle(x, (uint16_t)(fake_vq_used_idx(&x->f) + 1));
	assert_true(fake_vq_get_used(&x->f, &id, &used));
	return *(uint8_t *)fake_mem_ptr(&x->mem, STATUS_GPA, 1);
}

/* A guest write of `len` bytes at byte `off` (whole sectors), mirrored into the model. */
static void dev_write(struct ux *x, uint64_t off, uint32_t len, uint8_t seed)
{
	uint8_t *p = fake_mem_ptr(&x->mem, DATA_GPA, len);

	assert_true(off % 512 == 0 && len % 512 == 0 && len <= DATA_ROOM);
	for (uint32_t i = 0; i < len; i++)
		p[i] = (uint8_t)(seed + i * 7 + i / 512);
	memcpy(x->model + off, p, len);
	assert_int_equal(request(x, VIRTIO_BLK_T_OUT, off / 512, len, false), VIRTIO_BLK_S_OK);
}

/* DISCARD or WRITE_ZEROES with segments {byte offset, bytes, flags}. */
static uint8_t dev_dwz(struct ux *x, uint32_t type, const uint64_t (*segs)[3], unsigned n)
{
	uint8_t *s = fake_mem_ptr(&x->mem, DATA_GPA, 16 * n);

	for (unsigned i = 0; i < n; i++) {
		virtio_put_le(s + 16 * i, segs[i][0] / 512, 8);
		virtio_put_le(s + 16 * i + 8, segs[i][1] / 512, 4);
		virtio_put_le(s + 16 * i + 12, segs[i][2], 4);
	}
	return request(x, type, 0, 16 * n, false);
}

/* The whole disk, as the guest reads it and as the files hold it, equals `want`. */
static void expect_disk(struct ux *x, const uint8_t *want)
{
	uint64_t usable = x->size / 512 * 512;

	for (uint64_t off = 0; off < usable; off += DATA_ROOM / 2) {
		uint32_t n =
			(uint32_t)(usable - off < DATA_ROOM / 2 ? usable - off : DATA_ROOM / 2);
		uint8_t *p = fake_mem_ptr(&x->mem, DATA_GPA, n);

		memset(p, 0xcc, n);
		assert_int_equal(request(x, VIRTIO_BLK_T_IN, off / 512, n, true), VIRTIO_BLK_S_OK);
		assert_memory_equal(p, want + off, n);
	}
	if (x->ovl >= 0) {
		assert_int_equal(blk_cow_read(virtio_blk_cow(x->blk), x->buf, usable, 0), 0);
	} else {
		assert_int_equal(pread(x->img, x->buf, usable, 0), (ssize_t)usable);
	}
	assert_memory_equal(x->buf, want, usable);
}

static void checkpoint(struct ux *x)
{
	assert_int_equal(virtio_blk_checkpoint(x->blk), 0);
	assert_int_equal(virtio_blk_undo_blocks(x->blk), 0);
	memcpy(x->ckpt, x->model, x->size);
}

static void rollback(struct ux *x)
{
	assert_int_equal(virtio_blk_rollback(x->blk), 0);
	assert_int_equal(virtio_blk_undo_blocks(x->blk), 0);
	memcpy(x->model, x->ckpt, x->size);
	expect_disk(x, x->ckpt);
}

/* Writes of every shape after a checkpoint, each saving exactly the blocks it touches for the
 * first time; then rollbacks, each back to the checkpoint. */
static void test_rollback(void **state)
{
	struct ux *x = *state;

	/* Before the checkpoint: a copy-on-write disk then has blocks in the overlay too. */
	dev_write(x, 2 * BLK, BLK, 0x10);
	dev_write(x, 5 * BLK + 1024, 512, 0x11);
	checkpoint(x);
	dev_write(x, 0, BLK, 0x20); /* aligned, one block */
	assert_int_equal(virtio_blk_undo_blocks(x->blk), 1);
	dev_write(x, 3 * BLK + 512, 1024, 0x21); /* inside one block */
	assert_int_equal(virtio_blk_undo_blocks(x->blk), 2);
	dev_write(x, 6 * BLK + 3584, 1024, 0x22); /* straddles blocks 6 and 7 */
	assert_int_equal(virtio_blk_undo_blocks(x->blk), 4);
	dev_write(x, 8 * BLK + 1536, 20 * BLK, 0x23); /* blocks 8..28, into the hole */
	assert_int_equal(virtio_blk_undo_blocks(x->blk), 25);
	dev_write(x, 0, 512, 0x24);	      /* block 0 again: nothing to save */
	dev_write(x, 2 * BLK, 2 * BLK, 0x25); /* 2 (overlay), 3 (saved) */
	dev_write(x, 5 * BLK, BLK, 0x26);     /* was partly in the overlay */
	dev_write(x, NBLK * BLK, 1536, 0x27); /* the short last block */
	assert_int_equal(virtio_blk_undo_blocks(x->blk), 28);
	expect_disk(x, x->model);
	rollback(x);
	/* Rollback N times in a row: each returns to the checkpoint. */
	rollback(x);
	for (unsigned round = 0; round < 3; round++) {
		dev_write(x, (uint64_t)(round * 9) * BLK + 512, 3 * BLK, (uint8_t)(0x30 + round));
		dev_write(x, HOLE_START + BLK, BLK, (uint8_t)(0x40 + round));
		rollback(x);
	}
	if (x->ovl >= 0) {
		const struct blk_cow *c = virtio_blk_cow(x->blk);

		/* Blocks on the base at the checkpoint are on the base again; the ones in the
		 * overlay then are still there. */
		assert_false(blk_cow_present(c, 0));
		assert_false(blk_cow_present(c, 10 * BLK));
		assert_false(blk_cow_present(c, HOLE_START));
		assert_true(blk_cow_present(c, 2 * BLK));
		assert_true(blk_cow_present(c, 5 * BLK));
	}
}

/* A second checkpoint drops the first: rollback goes to the second one's content. */
static void test_checkpoint_again(void **state)
{
	struct ux *x = *state;

	checkpoint(x);
	dev_write(x, BLK, 2 * BLK, 0x50);
	dev_write(x, 30 * BLK, BLK + 512, 0x51);
	checkpoint(x);			       /* the content with those writes */
	dev_write(x, BLK + 512, 512, 0x52);    /* a block the first checkpoint had saved */
	dev_write(x, 12 * BLK, 4 * BLK, 0x53); /* and new ones */
	assert_int_equal(virtio_blk_undo_blocks(x->blk), 5);
	rollback(x);
	dev_write(x, 0, 8 * BLK, 0x54);
	rollback(x);
}

/* WRITE_ZEROES saves what it covers (with and without UNMAP, whole and partial blocks); a
 * DISCARD does nothing while a checkpoint is armed. */
static void test_write_zeroes_discard(void **state)
{
	struct ux *x = *state;
	const uint64_t wz[3][3] = { { 512, 3 * BLK, 0 },
				    { 10 * BLK, 4 * BLK, VIRTIO_BLK_WZ_F_UNMAP },
				    { 20 * BLK + 1024, 6 * BLK, VIRTIO_BLK_WZ_F_UNMAP } };
	const uint64_t dis[1][3] = { { 34 * BLK, 4 * BLK, 0 } };

	checkpoint(x);
	assert_int_equal(dev_dwz(x, VIRTIO_BLK_T_WRITE_ZEROES, wz, 3), VIRTIO_BLK_S_OK);
	for (unsigned i = 0; i < 3; i++)
		memset(x->model + wz[i][0], 0, wz[i][1]);
	assert_int_equal(dev_dwz(x, VIRTIO_BLK_T_DISCARD, dis, 1), VIRTIO_BLK_S_OK);
	expect_disk(x, x->model); /* the discarded blocks kept their data */
	assert_int_equal(virtio_blk_undo_blocks(x->blk), 4 + 4 + 7);
	rollback(x);
}

/* Errors: no checkpoint yet, a request in flight, a save that fails. */
static void test_errors(void **state)
{
	struct ux *x = *state;

	assert_int_equal(virtio_blk_rollback(x->blk), -ENOENT);
	/* Asynchronous mode: a write published and kicked, not yet reaped, is in flight. */
	dev_write(x, 0, BLK, 0x60);
	checkpoint(x);
	memset(fake_mem_ptr(&x->mem, DATA_GPA, BLK), 0x61, BLK);
	memset(x->model + BLK, 0x61, BLK);
	publish(x, VIRTIO_BLK_T_OUT, SECTORS_OF(BLK), BLK, false);
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(virtio_blk_in_flight(x->blk), 1);
	assert_int_equal(virtio_blk_checkpoint(x->blk), -EBUSY);
	assert_int_equal(virtio_blk_rollback(x->blk), -EBUSY);
	virtio_mmio_quiesce(x->t);
	assert_int_equal(virtio_blk_in_flight(x->blk), 0);
	{
		uint32_t id, used;

		assert_true(fake_vq_get_used(&x->f, &id, &used));
		assert_int_equal(*(uint8_t *)fake_mem_ptr(&x->mem, STATUS_GPA, 1), VIRTIO_BLK_S_OK);
	}
	expect_disk(x, x->model);
	rollback(x);
	/* A block that cannot be read for saving (the image shrank under the device) is never
	 * written: the request fails and the file keeps its size. */
	assert_int_equal(ftruncate(x->img, 16 * BLK), 0);
	memset(fake_mem_ptr(&x->mem, DATA_GPA, BLK), 0x62, BLK);
	assert_int_equal(request(x, VIRTIO_BLK_T_OUT, SECTORS_OF(20 * BLK), BLK, false),
			 VIRTIO_BLK_S_IOERR);
	{
		struct stat st;

		assert_int_equal(fstat(x->img, &st), 0);
		assert_int_equal(st.st_size, 16 * BLK);
	}
	assert_int_equal(virtio_blk_undo_blocks(x->blk), 0);
}

/* A read-only disk has nothing to undo; the machine's helpers skip it. */
static void test_read_only_and_machine(void **state)
{
	struct ux *x = *state;
	struct ux *ro = calloc(1, sizeof(*ro));
	struct machine *m = calloc(1, sizeof(*m));

	assert_non_null(ro);
	assert_non_null(m);
	make_image(ro, DISK_SIZE, HOLE_START, HOLE_END);
	open_dev(ro, false, true, M_WAIT);
	assert_int_equal(virtio_blk_checkpoint(ro->blk), 0);
	assert_int_equal(virtio_blk_rollback(ro->blk), 0);

	m->cfg.nr_disks = 2;
	m->disks[0] = ro->blk;
	m->cfg.disks[0].read_only = true;
	m->disks[1] = x->blk;
	assert_int_equal(machine_disks_rollback(m), -ENOENT);
	assert_int_equal(machine_disks_checkpoint(m), 0);
	memcpy(x->ckpt, x->model, x->size);
	dev_write(x, 7 * BLK, 3 * BLK, 0x70);
	assert_int_equal(machine_disks_rollback(m), 0);
	memcpy(x->model, x->ckpt, x->size);
	expect_disk(x, x->ckpt);
	free(m);
	teardown((void **)&ro);
}

/* The log on its own: a save larger than HOLE_SCAN_MIN over a sparse source skips its holes
 * and still restores them as zeros; a save outside the disk is refused. */
static void test_log_large_sparse(void **state)
{
	struct ux *x = *state; /* only the directory and a scratch file */
	const uint64_t size = 8u << 20;
	struct blk_undo *u;
	uint8_t *p = malloc(size);
	int fd = open(x->dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

	assert_non_null(p);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	memset(p, 0, size);
	for (uint64_t off = 1u << 20; off < size; off += 3u << 20) /* data every 3 MiB */
		memset(p + off, 0x5a, 256 * 1024 + 512);
	assert_int_equal(pwrite(fd, p, size, 0), (ssize_t)size);
	for (uint64_t off = 0; off < size; off += 64 * 1024) /* zeros back to holes */
		if (!memchr(p + off, 0x5a, 64 * 1024))
			assert_int_equal(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
						   (off_t)off, 64 * 1024),
					 0);
	assert_int_equal(blk_undo_create(x->dir, size, &u), 0);
	assert_int_equal(blk_undo_save(u, fd, NULL, 0, 512), 0); /* not armed: nothing */
	assert_int_equal(blk_undo_saved_blocks(u), 0);
	assert_int_equal(blk_undo_checkpoint(u), 0);
	assert_int_equal(blk_undo_save(u, fd, NULL, size - 512, 1024), -EINVAL);
	assert_int_equal(blk_undo_save(u, fd, NULL, 0, 0), -EINVAL);
	assert_int_equal(blk_undo_save(u, fd, NULL, 4096, size - 8192), 0);
	assert_int_equal(blk_undo_saved_blocks(u), size / BLK - 2);
	/* Scribble over everything the save covered, then roll back. */
	{
		uint8_t *junk = malloc(size);

		assert_non_null(junk);
		memset(junk, 0xa5, size);
		assert_int_equal(pwrite(fd, junk + 4096, size - 8192, 4096),
				 (ssize_t)(size - 8192));
		assert_int_equal(blk_undo_rollback(u, fd, NULL), 0);
		assert_int_equal(pread(fd, junk, size, 0), (ssize_t)size);
		assert_memory_equal(junk, p, size);
		free(junk);
	}
	blk_undo_destroy(u);
	close(fd);
	free(p);
}

/* A save that fails half-way (the source ends early, after two of the bounce buffer's chunks
 * were copied) leaves nothing behind in the log: after the source becomes all zeros, saving it
 * again (zeros: bits only, nothing written) and rolling back gives zeros, not the data the
 * failed save had copied.  (The range stays below HOLE_SCAN_MIN: a hole scan would take the
 * end of the file for a hole, as a read of the device does.) */
static void test_log_failed_save(void **state)
{
	struct ux *x = *state;
	const uint64_t size = 1u << 20;
	uint8_t *p = malloc(size);
	struct blk_undo *u;
	int fd = open(x->dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

	assert_non_null(p);
	assert_true(fd >= 0);
	memset(p, 0x77, size);
	assert_int_equal(pwrite(fd, p, 600 * 1024, 0), 600 * 1024); /* the file ends there */
	assert_int_equal(blk_undo_create(x->dir, size, &u), 0);
	assert_int_equal(blk_undo_checkpoint(u), 0);
	assert_int_equal(blk_undo_save(u, fd, NULL, 0, size - BLK), -EIO);
	assert_int_equal(blk_undo_saved_blocks(u), 0);
	assert_int_equal(ftruncate(fd, 0), 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	assert_int_equal(blk_undo_save(u, fd, NULL, 0, size - BLK), 0);
	assert_int_equal(blk_undo_saved_blocks(u), size / BLK - 1);
	assert_int_equal(pwrite(fd, p, size, 0), (ssize_t)size);
	assert_int_equal(blk_undo_rollback(u, fd, NULL), 0);
	assert_int_equal(pread(fd, p, size, 0), (ssize_t)size);
	for (uint64_t i = 0; i < size - BLK; i++)
		if (p[i])
			fail_msg("byte %llu is %#x after the rollback, want 0",
				 (unsigned long long)i, p[i]);
	blk_undo_destroy(u);
	close(fd);
	free(p);
}

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, unsigned n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return v[n / 2];
}

/* Microbenchmark on a 64 MiB image, BENCH_REPS rounds, medians printed (the machine is shared:
 * single runs are noisy).  Device level (io_uring, queue_notify waiting): BENCH_N scattered
 * 4 KiB writes to distinct blocks after the checkpoint (each saves its block first), the same
 * writes again (nothing left to save), an fdatasync of the image as a guest FLUSH would do,
 * then the rollback of the BENCH_N blocks.  Log level: BENCH_N blk_undo_save() calls of one
 * block each, the exact extra cost of a first write.  Content checked. */
#define BENCH_REPS 5
static void test_bench(void **state)
{
	struct ux *x = calloc(1, sizeof(*x));
	uint64_t *offs = malloc(BENCH_N * sizeof(*offs));
	double first[BENCH_REPS], again[BENCH_REPS], rb[BENCH_REPS], sync[BENCH_REPS];
	double save[BENCH_REPS], t0, empty_us;
	struct blk_undo *u;

	assert_non_null(x);
	assert_non_null(offs);
	(void)state;
	make_image(x, BENCH_SIZE, BENCH_SIZE / 2, BENCH_SIZE / 2 + (8u << 20));
	open_dev(x, false, false, M_WAIT);
	/* Distinct blocks, scattered: a stride coprime with the block count. */
	for (unsigned i = 0; i < BENCH_N; i++)
		offs[i] = (uint64_t)((i * 7919u) % (BENCH_SIZE / BLK)) * BLK;
	assert_int_equal(fsync(x->img), 0);
	checkpoint(x);
	for (unsigned r = 0; r < BENCH_REPS; r++) {
		t0 = now_us();
		for (unsigned i = 0; i < BENCH_N; i++)
			dev_write(x, offs[i], BLK, (uint8_t)(i + r));
		first[r] = (now_us() - t0) / BENCH_N;
		t0 = now_us();
		for (unsigned i = 0; i < BENCH_N; i++)
			dev_write(x, offs[i], BLK, (uint8_t)(i + r + 1));
		again[r] = (now_us() - t0) / BENCH_N;
		assert_int_equal(virtio_blk_undo_blocks(x->blk), BENCH_N);
		t0 = now_us();
		assert_int_equal(fdatasync(x->img), 0);
		sync[r] = now_us() - t0;
		t0 = now_us();
		assert_int_equal(virtio_blk_rollback(x->blk), 0);
		rb[r] = now_us() - t0;
	}
	memcpy(x->model, x->ckpt, x->size);
	expect_disk(x, x->ckpt);
	/* A rollback with nothing written since (most of a fuzzer's resets). */
	t0 = now_us();
	for (unsigned i = 0; i < BENCH_N; i++)
		assert_int_equal(virtio_blk_rollback(x->blk), 0);
	empty_us = (now_us() - t0) / BENCH_N;
	assert_int_equal(blk_undo_create(x->dir, BENCH_SIZE, &u), 0);
	for (unsigned r = 0; r < BENCH_REPS; r++) {
		assert_int_equal(blk_undo_checkpoint(u), 0);
		t0 = now_us();
		for (unsigned i = 0; i < BENCH_N; i++)
			assert_int_equal(blk_undo_save(u, x->img, NULL, offs[i], BLK), 0);
		save[r] = (now_us() - t0) / BENCH_N;
	}
	blk_undo_destroy(u);
	print_message("bench: 64 MiB image, %u scattered 4 KiB blocks, median of %u: save of a "
		      "block %.1f us; guest write %.1f us when it saves, %.1f us when not; "
		      "rollback %.0f us (%.1f us/block, its fdatasync included; an fdatasync of "
		      "the guest's writes took %.0f us); rollback with nothing saved %.2f us\n",
		      BENCH_N, BENCH_REPS, median(save, BENCH_REPS), median(first, BENCH_REPS),
		      median(again, BENCH_REPS), median(rb, BENCH_REPS),
		      median(rb, BENCH_REPS) / BENCH_N, median(sync, BENCH_REPS), empty_us);
	free(offs);
	teardown((void **)&x);
}

static int setup_dir(void **state)
{
	struct ux *x = calloc(1, sizeof(*x));

	make_image(x, DISK_SIZE, HOLE_START, HOLE_END);
	*state = x;
	return 0;
}

#define ALL_MODES(fn)                                                       \
	cmocka_unit_test_setup_teardown(fn, plain_wait, teardown),          \
		cmocka_unit_test_setup_teardown(fn, plain_async, teardown), \
		cmocka_unit_test_setup_teardown(fn, plain_sync, teardown),  \
		cmocka_unit_test_setup_teardown(fn, cow_wait, teardown),    \
		cmocka_unit_test_setup_teardown(fn, cow_async, teardown),   \
		cmocka_unit_test_setup_teardown(fn, cow_sync, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		ALL_MODES(test_rollback),
		ALL_MODES(test_checkpoint_again),
		ALL_MODES(test_write_zeroes_discard),
		cmocka_unit_test_setup_teardown(test_errors, plain_async, teardown),
		cmocka_unit_test_setup_teardown(test_read_only_and_machine, plain_wait, teardown),
		cmocka_unit_test_setup_teardown(test_read_only_and_machine, cow_sync, teardown),
		cmocka_unit_test_setup_teardown(test_log_large_sparse, setup_dir, teardown),
		cmocka_unit_test_setup_teardown(test_log_failed_save, setup_dir, teardown),
		cmocka_unit_test(test_bench),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
