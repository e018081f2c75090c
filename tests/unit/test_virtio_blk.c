/* virtio-blk (virtio 1.2 §5.2) on a temporary image file, driven through the virtio-mmio
 * transport with requests built in fake guest memory.  Three ways to run requests: io_uring
 * with queue_notify waiting for its own requests (no event loop), io_uring completed
 * asynchronously through the completion eventfd (as on the event loop), and the synchronous
 * fallback (IGNITION_BLK_SYNC=1). */
#include "core/devmgr.h"
#include "core/evloop.h"
#include "core/irq.h"
#include "devices/virtio/blk.h"
#include "devices/virtio/mmio.h"
#include "devices/virtio/rng.h"
#include "devices/virtio/virtio.h"
#include "devices/virtio/virtq.h"
#include "fake_driver.h"
#include "fake_virtq.h"
#include "metrics_json.h"
#include "snapshot/snap.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#define RAM_SIZE   (1u << 20)
#define QSIZE	   16
#define DESC_GPA   0x1000
#define AVAIL_GPA  0x2000
#define USED_GPA   0x3000
#define HDR_GPA	   0x4000
#define STATUS_GPA 0x5000
#define TABLE_GPA  0x8000
#define DATA_GPA   0x10000
#define BIG_GPA	   0x80000 /* 512 KiB to the end of RAM */
#define SECTORS	   64
#define SERIAL	   "virtio-blk0"
#define BIG_QSIZE  256 /* room for more chains than one pass's budget */
#define MANY	   100 /* > VIRTIO_QUEUE_BUDGET */

enum mode { M_WAIT, M_ASYNC, M_SYNC };

struct fixture {
	char path[64];
	int fd; /* the test's own view of the image */
	struct fake_mem mem;
	struct fake_vq f;
	struct irq_line irq;
	struct virtio_blk *blk;
	struct virtio_mmio *t;
	uint16_t qsize;
	int efd; /* M_ASYNC: completion eventfd */
	enum mode mode;
};

static uint8_t pattern(uint64_t off)
{
	return (uint8_t)(off * 7 + off / 512);
}

static void make_image(struct fixture *x)
{
	uint8_t buf[SECTORS * 512];

	snprintf(x->path, sizeof(x->path), "/tmp/ignition-blk-XXXXXX");
	x->fd = mkstemp(x->path);
	assert_true(x->fd >= 0);
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = pattern(i);
	assert_int_equal(pwrite(x->fd, buf, sizeof(buf), 0), sizeof(buf));
}

/* §3.1.1 initialisation with every offered feature accepted, one queue. */
static void bring_up(struct fixture *x)
{
	fdrv_negotiate(x->t, ~0ull);
	fdrv_queue(x->t, 0, &x->f, &x->mem, x->qsize, DESC_GPA, AVAIL_GPA, USED_GPA,
		   VIRTIO_BLK_QUEUE_SIZE);
	fdrv_driver_ok(x->t);
}

static int open_dev(void **state, bool ro, enum mode mode, uint16_t qsize)
{
	struct fixture *x = calloc(1, sizeof(*x));

	make_image(x);
	fake_mem_init(&x->mem, RAM_SIZE);
	x->irq.fd = -1;
	x->qsize = qsize;
	x->efd = -1;
	x->mode = mode;
	if (mode == M_SYNC)
		setenv("IGNITION_BLK_SYNC", "1", 1);
	assert_int_equal(virtio_blk_create(x->path, ro, SERIAL, &x->blk), 0);
	unsetenv("IGNITION_BLK_SYNC");
	assert_int_equal(virtio_blk_capacity(x->blk), SECTORS);
	if (mode == M_ASYNC) {
		x->efd = virtio_blk_async_fd(x->blk);
		assert_true(x->efd >= 0);
	}
	assert_int_equal(virtio_mmio_create(&x->mem.gm, &x->irq, &virtio_blk_ops, x->blk, &x->t),
			 0);
	bring_up(x);
	*state = x;
	return 0;
}

static int setup_rw(void **state)
{
	return open_dev(state, false, M_WAIT, QSIZE);
}

static int setup_ro(void **state)
{
	return open_dev(state, true, M_WAIT, QSIZE);
}

static int setup_async(void **state)
{
	return open_dev(state, false, M_ASYNC, QSIZE);
}

static int setup_sync(void **state)
{
	return open_dev(state, false, M_SYNC, QSIZE);
}

static int setup_sync_ro(void **state)
{
	return open_dev(state, true, M_SYNC, QSIZE);
}

static int setup_big(void **state)
{
	return open_dev(state, false, M_WAIT, BIG_QSIZE);
}

static int setup_big_async(void **state)
{
	return open_dev(state, false, M_ASYNC, BIG_QSIZE);
}

static int teardown(void **state)
{
	struct fixture *x = *state;

	virtio_mmio_destroy(x->t); /* destroys the blk device too */
	close(x->fd);
	unlink(x->path);
	fake_mem_free(&x->mem);
	free(x);
	return 0;
}

static void put_hdr(struct fixture *x, uint32_t type, uint64_t sector)
{
	uint8_t *h = fake_mem_ptr(&x->mem, HDR_GPA, 16);

	virtio_put_le(h, type, 4);
	virtio_put_le(h + 4, 0, 4);
	virtio_put_le(h + 8, sector, 8);
}

static uint8_t *status_byte(struct fixture *x)
{
	return fake_mem_ptr(&x->mem, STATUS_GPA, 1);
}

/* Asynchronous mode: reap completions until the used index reaches `want` (at most ~5 s). */
static void settle(struct fixture *x, uint16_t want)
{
	for (int i = 0; i < 500 && fake_vq_used_idx(&x->f) != want; i++) {
		struct pollfd p = { .fd = x->efd, .events = POLLIN };

		if (poll(&p, 1, 10) > 0)
			virtio_blk_complete(x->blk);
	}
	assert_int_equal(fake_vq_used_idx(&x->f), want);
}

/* Kick the queue and, in asynchronous mode, wait for `n` more used elements. */
static void kick(struct fixture *x, uint16_t n)
{
	uint16_t want = (uint16_t)(fake_vq_used_idx(&x->f) + n);

	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	if (x->efd >= 0)
		settle(x, want);
}

/* Publish a chain, kick the queue, and take its used element; returns used.len. */
static uint32_t run(struct fixture *x, const struct fake_buf *bufs, unsigned n)
{
	uint32_t id, len;
	uint16_t head;

	*status_byte(x) = 0xee;
	head = fake_vq_add_chain(&x->f, bufs, n);
	kick(x, 1);
	assert_true(fake_vq_get_used(&x->f, &id, &len));
	assert_int_equal(id, head);
	return len;
}

/* header, data (readable for OUT-like requests, writable for IN-like), status. */
static uint8_t request(struct fixture *x, uint32_t type, uint64_t sector, uint32_t data_len,
		       bool data_writable, uint32_t *used)
{
	struct fake_buf bufs[3] = { { HDR_GPA, 16, false } };
	unsigned n = 1;
	uint32_t len;

	put_hdr(x, type, sector);
	if (data_len)
		bufs[n++] = (struct fake_buf){ DATA_GPA, data_len, data_writable };
	bufs[n++] = (struct fake_buf){ STATUS_GPA, 1, true };
	len = run(x, bufs, n);
	if (used)
		*used = len;
	return *status_byte(x);
}

static void file_read(struct fixture *x, uint64_t off, void *buf, size_t len)
{
	assert_int_equal(pread(x->fd, buf, len, (off_t)off), (ssize_t)len);
}

static void expect_pattern(const uint8_t *p, uint64_t off, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != pattern(off + i))
			fail_msg("byte %zu: %#x, want %#x", i, p[i], pattern(off + i));
}

static void expect_zero(const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i])
			fail_msg("byte %zu is %#x, want 0", i, p[i]);
}

static void put_seg(struct fixture *x, unsigned i, uint64_t sector, uint32_t num, uint32_t flags)
{
	uint8_t *s = fake_mem_ptr(&x->mem, DATA_GPA + 16u * i, 16);

	virtio_put_le(s, sector, 8);
	virtio_put_le(s + 8, num, 4);
	virtio_put_le(s + 12, flags, 4);
}

static void test_create_errors(void **state)
{
	struct virtio_blk *b;
	char path[] = "/tmp/ignition-blk-empty-XXXXXX";
	int fd;

	(void)state;
	assert_int_equal(virtio_blk_create("/nonexistent/disk.img", false, NULL, &b), -ENOENT);
	assert_int_equal(virtio_blk_create("/nonexistent/disk.img", true, NULL, &b), -ENOENT);
	assert_int_equal(virtio_blk_create("/tmp", false, NULL, &b), -EISDIR);
	assert_int_equal(virtio_blk_create("/tmp", true, NULL, &b), -EINVAL);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(virtio_blk_create(path, false, NULL, &b), -EINVAL); /* no whole sector */
	assert_int_equal(write(fd, "abc", 3), 3);
	assert_int_equal(virtio_blk_create(path, false, NULL, &b), -EINVAL);
	close(fd);
	unlink(path);
}

static void test_features_and_config(void **state)
{
	struct fixture *x = *state;
	const struct dev_ops *o = &virtio_mmio_dev_ops;
	uint64_t cap = 0;

	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_DEVICE_ID), VIRTIO_ID_BLOCK);
	fdrv_wr(x->t, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	uint32_t lo = fdrv_rd(x->t, VIRTIO_MMIO_DEVICE_FEATURES);
	assert_true(lo & (1u << VIRTIO_BLK_F_FLUSH));
	assert_true(lo & (1u << VIRTIO_BLK_F_DISCARD));
	assert_true(lo & (1u << VIRTIO_BLK_F_WRITE_ZEROES));
	assert_true(lo & (1u << VIRTIO_BLK_F_SEG_MAX));
	assert_true(lo & (1u << VIRTIO_BLK_F_BLK_SIZE));
	assert_true(lo & (1u << VIRTIO_F_INDIRECT_DESC));
	assert_true(lo & (1u << VIRTIO_F_EVENT_IDX));
	assert_false(lo & (1u << VIRTIO_BLK_F_RO));
	fdrv_wr(x->t, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_DEVICE_FEATURES), 1); /* VERSION_1 */
	/* Capacity read byte by byte, as Linux does. */
	for (unsigned i = 0; i < 8; i++)
		cap |= o->read(x->t, VIRTIO_MMIO_CONFIG + i, 1) << (8 * i);
	assert_int_equal(cap, SECTORS);
	assert_int_equal(o->read(x->t, VIRTIO_MMIO_CONFIG + VIRTIO_BLK_CFG_CAPACITY, 8), SECTORS);
	assert_int_equal(o->read(x->t, VIRTIO_MMIO_CONFIG + VIRTIO_BLK_CFG_SEG_MAX, 4),
			 VIRTIO_BLK_QUEUE_SIZE - 2);
	assert_int_equal(o->read(x->t, VIRTIO_MMIO_CONFIG + VIRTIO_BLK_CFG_BLK_SIZE, 4), 512);
	assert_int_equal(o->read(x->t, VIRTIO_MMIO_CONFIG + VIRTIO_BLK_CFG_MAX_DISCARD_SEG, 4),
			 VIRTIO_BLK_MAX_DISCARD_SEG);
	assert_int_equal(o->read(x->t, VIRTIO_MMIO_CONFIG + VIRTIO_BLK_CFG_MAX_WZ_SECTORS, 2),
			 (uint16_t)VIRTIO_BLK_MAX_DISCARD_SECTORS);
	assert_int_equal(o->read(x->t, VIRTIO_MMIO_CONFIG + VIRTIO_BLK_CFG_WZ_MAY_UNMAP, 1), 1);
	assert_int_equal(o->read(x->t, VIRTIO_MMIO_CONFIG + VIRTIO_BLK_CFG_SIZE, 4), 0);
	/* Config writes change nothing. */
	o->write(x->t, VIRTIO_MMIO_CONFIG, 1, 0xff);
	assert_int_equal(o->read(x->t, VIRTIO_MMIO_CONFIG, 8), SECTORS);
}

static void test_read(void **state)
{
	struct fixture *x = *state;
	struct fake_buf bufs[] = {
		{ HDR_GPA, 16, false },
		{ DATA_GPA, 512, true },
		{ DATA_GPA + 0x1000, 512, true },
		{ STATUS_GPA, 1, true },
	};
	uint64_t irqs = x->irq.count;

	put_hdr(x, VIRTIO_BLK_T_IN, 2);
	assert_int_equal(run(x, bufs, 4), 1025);
	assert_int_equal(*status_byte(x), VIRTIO_BLK_S_OK);
	expect_pattern(fake_mem_ptr(&x->mem, DATA_GPA, 512), 1024, 512);
	expect_pattern(fake_mem_ptr(&x->mem, DATA_GPA + 0x1000, 512), 1536, 512);
	assert_int_equal(x->irq.count, irqs + 1);
	assert_true(fdrv_rd(x->t, VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_INT_USED);
}

static void test_read_last_sector(void **state)
{
	struct fixture *x = *state;
	uint32_t used;

	assert_int_equal(request(x, VIRTIO_BLK_T_IN, SECTORS - 1, 512, true, &used),
			 VIRTIO_BLK_S_OK);
	assert_int_equal(used, 513);
	expect_pattern(fake_mem_ptr(&x->mem, DATA_GPA, 512), (SECTORS - 1) * 512, 512);
}

static void test_status_shares_buffer(void **state)
{
	struct fixture *x = *state;
	/* No framing (§2.6.4): header+nothing in one buffer, data and status in another. */
	struct fake_buf bufs[] = { { HDR_GPA, 16, false }, { DATA_GPA, 513, true } };
	uint8_t *d = fake_mem_ptr(&x->mem, DATA_GPA, 513);

	put_hdr(x, VIRTIO_BLK_T_IN, 5);
	d[512] = 0xee;
	assert_int_equal(run(x, bufs, 2), 513);
	assert_int_equal(d[512], VIRTIO_BLK_S_OK);
	expect_pattern(d, 5 * 512, 512);
}

static void test_header_split(void **state)
{
	struct fixture *x = *state;
	/* The 16-byte header split over two descriptors. */
	struct fake_buf bufs[] = { { HDR_GPA, 5, false },
				   { HDR_GPA + 5, 11, false },
				   { DATA_GPA, 512, true },
				   { STATUS_GPA, 1, true } };

	put_hdr(x, VIRTIO_BLK_T_IN, 7);
	assert_int_equal(run(x, bufs, 4), 513);
	assert_int_equal(*status_byte(x), VIRTIO_BLK_S_OK);
	expect_pattern(fake_mem_ptr(&x->mem, DATA_GPA, 512), 7 * 512, 512);
}

static void test_write(void **state)
{
	struct fixture *x = *state;
	uint8_t *d = fake_mem_ptr(&x->mem, DATA_GPA, 1024), back[1024];
	uint32_t used;

	memset(d, 0x5a, 1024);
	assert_int_equal(request(x, VIRTIO_BLK_T_OUT, 3, 1024, false, &used), VIRTIO_BLK_S_OK);
	assert_int_equal(used, 1);
	file_read(x, 3 * 512, back, sizeof(back));
	for (size_t i = 0; i < sizeof(back); i++)
		assert_int_equal(back[i], 0x5a);
	/* Neighbours untouched. */
	file_read(x, 5 * 512, back, 512);
	expect_pattern(back, 5 * 512, 512);
	/* And reading it back through the device. */
	memset(d, 0, 1024);
	assert_int_equal(request(x, VIRTIO_BLK_T_IN, 3, 1024, true, NULL), VIRTIO_BLK_S_OK);
	for (size_t i = 0; i < 1024; i++)
		assert_int_equal(d[i], 0x5a);
}

static void test_write_header_and_data_together(void **state)
{
	struct fixture *x = *state;
	struct fake_buf bufs[] = { { HDR_GPA, 16 + 512, false }, { STATUS_GPA, 1, true } };
	uint8_t *d = fake_mem_ptr(&x->mem, HDR_GPA + 16, 512), back[512];

	put_hdr(x, VIRTIO_BLK_T_OUT, 9);
	memset(d, 0xa5, 512);
	assert_int_equal(run(x, bufs, 2), 1);
	assert_int_equal(*status_byte(x), VIRTIO_BLK_S_OK);
	file_read(x, 9 * 512, back, 512);
	for (size_t i = 0; i < 512; i++)
		assert_int_equal(back[i], 0xa5);
}

static void test_indirect_request(void **state)
{
	struct fixture *x = *state;
	uint32_t id, len;

	put_hdr(x, VIRTIO_BLK_T_IN, 1);
	fake_desc_write(&x->mem, TABLE_GPA, 0, HDR_GPA, 16, VIRTQ_DESC_F_NEXT, 1);
	fake_desc_write(&x->mem, TABLE_GPA, 1, DATA_GPA, 512,
			VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 2);
	fake_desc_write(&x->mem, TABLE_GPA, 2, STATUS_GPA, 1, VIRTQ_DESC_F_WRITE, 0);
	fake_vq_set_desc(&x->f, 0, TABLE_GPA, 48, VIRTQ_DESC_F_INDIRECT, 0);
	fake_vq_publish(&x->f, 0);
	kick(x, 1);
	assert_true(fake_vq_get_used(&x->f, &id, &len));
	assert_int_equal(len, 513);
	assert_int_equal(*status_byte(x), VIRTIO_BLK_S_OK);
	expect_pattern(fake_mem_ptr(&x->mem, DATA_GPA, 512), 512, 512);
}

static void test_batch(void **state)
{
	struct fixture *x = *state;
	uint32_t id, len;

	/* Several requests in one notification, each with its own status byte. */
	for (unsigned i = 0; i < 4; i++) {
		struct fake_buf bufs[] = { { HDR_GPA + 32u * i, 16, false },
					   { DATA_GPA + 0x1000u * i, 512, true },
					   { STATUS_GPA + i, 1, true } };
		uint8_t *h = fake_mem_ptr(&x->mem, HDR_GPA + 32u * i, 16);

		virtio_put_le(h, VIRTIO_BLK_T_IN, 4);
		virtio_put_le(h + 8, 10 + i, 8);
		*status_byte(x) = 0xee;
		fake_vq_add_chain(&x->f, bufs, 3);
	}
	kick(x, 4);
	for (unsigned i = 0; i < 4; i++) {
		assert_true(fake_vq_get_used(&x->f, &id, &len));
		assert_int_equal(len, 513);
		assert_int_equal(*(uint8_t *)fake_mem_ptr(&x->mem, STATUS_GPA + i, 1), 0);
		expect_pattern(fake_mem_ptr(&x->mem, DATA_GPA + 0x1000u * i, 512), (10 + i) * 512,
			       512);
	}
	assert_false(fake_vq_get_used(&x->f, &id, &len));
}

static void test_flush(void **state)
{
	struct fixture *x = *state;
	uint32_t used;

	assert_int_equal(request(x, VIRTIO_BLK_T_FLUSH, 0, 0, false, &used), VIRTIO_BLK_S_OK);
	assert_int_equal(used, 1);
}

static void test_get_id(void **state)
{
	struct fixture *x = *state;
	uint8_t *d = fake_mem_ptr(&x->mem, DATA_GPA, 20);
	uint8_t want[20] = SERIAL;
	uint32_t used;

	memset(d, 0xff, 20);
	assert_int_equal(request(x, VIRTIO_BLK_T_GET_ID, 0, 20, true, &used), VIRTIO_BLK_S_OK);
	assert_int_equal(used, 21);
	assert_memory_equal(d, want, 20); /* NUL-padded */
}

static void test_discard(void **state)
{
	struct fixture *x = *state;
	uint8_t back[2048];

	put_seg(x, 0, 4, 2, 0);
	put_seg(x, 1, 20, 1, 0);
	assert_int_equal(request(x, VIRTIO_BLK_T_DISCARD, 0, 32, false, NULL), VIRTIO_BLK_S_OK);
	file_read(x, 4 * 512, back, 1024);
	expect_zero(back, 1024);
	file_read(x, 20 * 512, back, 512);
	expect_zero(back, 512);
	file_read(x, 6 * 512, back, 512);
	expect_pattern(back, 6 * 512, 512);
	/* The file keeps its size. */
	assert_int_equal(lseek(x->fd, 0, SEEK_END), SECTORS * 512);
}

static void test_discard_errors(void **state)
{
	struct fixture *x = *state;

	put_seg(x, 0, 4, 2, VIRTIO_BLK_WZ_F_UNMAP); /* unmap on a discard: unsupported */
	assert_int_equal(request(x, VIRTIO_BLK_T_DISCARD, 0, 16, false, NULL), VIRTIO_BLK_S_UNSUPP);
	put_seg(x, 0, 4, 2, 0x80);
	assert_int_equal(request(x, VIRTIO_BLK_T_DISCARD, 0, 16, false, NULL), VIRTIO_BLK_S_UNSUPP);
	put_seg(x, 0, SECTORS - 1, 2, 0); /* past the end */
	assert_int_equal(request(x, VIRTIO_BLK_T_DISCARD, 0, 16, false, NULL), VIRTIO_BLK_S_IOERR);
	put_seg(x, 0, UINT64_MAX - 1, 4, 0); /* wraps */
	assert_int_equal(request(x, VIRTIO_BLK_T_DISCARD, 0, 16, false, NULL), VIRTIO_BLK_S_IOERR);
	put_seg(x, 0, 4, 2, 0);
	assert_int_equal(request(x, VIRTIO_BLK_T_DISCARD, 0, 12, false, NULL), VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(x, VIRTIO_BLK_T_DISCARD, 0, 0, false, NULL), VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(x, VIRTIO_BLK_T_DISCARD, 0, 16 * (VIRTIO_BLK_MAX_DISCARD_SEG + 1),
				 false, NULL),
			 VIRTIO_BLK_S_IOERR);
}

static void test_write_zeroes(void **state)
{
	struct fixture *x = *state;
	uint8_t back[2048];

	put_seg(x, 0, 6, 3, 0);
	assert_int_equal(request(x, VIRTIO_BLK_T_WRITE_ZEROES, 0, 16, false, NULL),
			 VIRTIO_BLK_S_OK);
	file_read(x, 6 * 512, back, 1536);
	expect_zero(back, 1536);
	file_read(x, 9 * 512, back, 512);
	expect_pattern(back, 9 * 512, 512);
	put_seg(x, 0, 12, 4, VIRTIO_BLK_WZ_F_UNMAP);
	assert_int_equal(request(x, VIRTIO_BLK_T_WRITE_ZEROES, 0, 16, false, NULL),
			 VIRTIO_BLK_S_OK);
	file_read(x, 12 * 512, back, 2048);
	expect_zero(back, 2048);
	assert_int_equal(lseek(x->fd, 0, SEEK_END), SECTORS * 512);
	put_seg(x, 0, 12, 4, 2); /* unknown flag */
	assert_int_equal(request(x, VIRTIO_BLK_T_WRITE_ZEROES, 0, 16, false, NULL),
			 VIRTIO_BLK_S_UNSUPP);
	put_seg(x, 0, SECTORS, 1, 0);
	assert_int_equal(request(x, VIRTIO_BLK_T_WRITE_ZEROES, 0, 16, false, NULL),
			 VIRTIO_BLK_S_IOERR);
}

static void test_read_only(void **state)
{
	struct fixture *x = *state;
	uint8_t back[512];
	uint32_t lo;

	fdrv_wr(x->t, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	lo = fdrv_rd(x->t, VIRTIO_MMIO_DEVICE_FEATURES);
	assert_true(lo & (1u << VIRTIO_BLK_F_RO));
	assert_false(lo & (1u << VIRTIO_BLK_F_DISCARD));
	assert_false(lo & (1u << VIRTIO_BLK_F_WRITE_ZEROES));
	memset(fake_mem_ptr(&x->mem, DATA_GPA, 512), 0x11, 512);
	assert_int_equal(request(x, VIRTIO_BLK_T_OUT, 0, 512, false, NULL), VIRTIO_BLK_S_IOERR);
	file_read(x, 0, back, 512);
	expect_pattern(back, 0, 512);
	put_seg(x, 0, 0, 1, 0);
	assert_int_equal(request(x, VIRTIO_BLK_T_DISCARD, 0, 16, false, NULL), VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(x, VIRTIO_BLK_T_WRITE_ZEROES, 0, 16, false, NULL),
			 VIRTIO_BLK_S_IOERR);
	file_read(x, 0, back, 512);
	expect_pattern(back, 0, 512);
	/* Reads and flushes still work. */
	assert_int_equal(request(x, VIRTIO_BLK_T_IN, 0, 512, true, NULL), VIRTIO_BLK_S_OK);
	expect_pattern(fake_mem_ptr(&x->mem, DATA_GPA, 512), 0, 512);
	assert_int_equal(request(x, VIRTIO_BLK_T_FLUSH, 0, 0, false, NULL), VIRTIO_BLK_S_OK);
}

static void test_out_of_range(void **state)
{
	struct fixture *x = *state;
	uint8_t back[512];

	assert_int_equal(request(x, VIRTIO_BLK_T_IN, SECTORS - 1, 1024, true, NULL),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(x, VIRTIO_BLK_T_IN, SECTORS, 512, true, NULL), VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(x, VIRTIO_BLK_T_OUT, SECTORS, 512, false, NULL),
			 VIRTIO_BLK_S_IOERR);
	/* sector * 512 would wrap. */
	assert_int_equal(request(x, VIRTIO_BLK_T_IN, 1ull << 55, 512, true, NULL),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(x, VIRTIO_BLK_T_OUT, UINT64_MAX, 512, false, NULL),
			 VIRTIO_BLK_S_IOERR);
	/* Not whole sectors. */
	assert_int_equal(request(x, VIRTIO_BLK_T_IN, 0, 100, true, NULL), VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(x, VIRTIO_BLK_T_OUT, 0, 513, false, NULL), VIRTIO_BLK_S_IOERR);
	file_read(x, 0, back, 512);
	expect_pattern(back, 0, 512);
	/* A read of nothing is fine. */
	assert_int_equal(request(x, VIRTIO_BLK_T_IN, 0, 0, true, NULL), VIRTIO_BLK_S_OK);
}

static void test_request_too_large(void **state)
{
	struct fixture *x = *state;
	unsigned n = VIRTIO_BLK_MAX_REQUEST / (512 * 1024) + 1;
	uint32_t id, len;

	/* 129 aliased 512 KiB buffers: 64.5 MiB, over the per-request cap. */
	put_hdr(x, VIRTIO_BLK_T_IN, 0);
	fake_desc_write(&x->mem, TABLE_GPA, 0, HDR_GPA, 16, VIRTQ_DESC_F_NEXT, 1);
	for (unsigned i = 1; i <= n; i++)
		fake_desc_write(&x->mem, TABLE_GPA, i, BIG_GPA, 512 * 1024,
				VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, (uint16_t)(i + 1));
	fake_desc_write(&x->mem, TABLE_GPA, n + 1, STATUS_GPA, 1, VIRTQ_DESC_F_WRITE, 0);
	fake_vq_set_desc(&x->f, 0, TABLE_GPA, 16 * (n + 2), VIRTQ_DESC_F_INDIRECT, 0);
	*status_byte(x) = 0xee;
	fake_vq_publish(&x->f, 0);
	kick(x, 1);
	assert_true(fake_vq_get_used(&x->f, &id, &len));
	assert_int_equal(*status_byte(x), VIRTIO_BLK_S_IOERR);
	assert_int_equal(len, 1);
}

static void test_unsupported(void **state)
{
	struct fixture *x = *state;

	assert_int_equal(request(x, VIRTIO_BLK_T_GET_LIFETIME, 0, 16, true, NULL),
			 VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(request(x, VIRTIO_BLK_T_SECURE_ERASE, 0, 16, false, NULL),
			 VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(request(x, 0xdeadbeef, 0, 0, false, NULL), VIRTIO_BLK_S_UNSUPP);
}

static void test_short_header(void **state)
{
	struct fixture *x = *state;
	struct fake_buf bufs[] = { { HDR_GPA, 8, false }, { STATUS_GPA, 1, true } };

	put_hdr(x, VIRTIO_BLK_T_IN, 0);
	assert_int_equal(run(x, bufs, 2), 1);
	assert_int_equal(*status_byte(x), VIRTIO_BLK_S_IOERR);
	assert_false(virtio_mmio_status(x->t) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
}

static void test_no_header(void **state)
{
	struct fixture *x = *state;
	struct fake_buf bufs[] = { { DATA_GPA, 512, true }, { STATUS_GPA, 1, true } };

	assert_int_equal(run(x, bufs, 2), 1);
	assert_int_equal(*status_byte(x), VIRTIO_BLK_S_IOERR);
	/* The data buffer before the status byte was not touched as a status. */
	assert_false(virtio_mmio_status(x->t) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
}

/* A chain with nowhere to put a status: the driver cannot be answered → NEEDS_RESET. */
static void expect_needs_reset_then_recover(struct fixture *x)
{
	uint32_t id, len;

	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_false(fake_vq_get_used(&x->f, &id, &len));
	assert_true(virtio_mmio_status(x->t) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	assert_true(fdrv_rd(x->t, VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_INT_CONFIG);
	/* Further requests wait for the reset. */
	put_hdr(x, VIRTIO_BLK_T_FLUSH, 0);
	fake_vq_add_chain(
		&x->f, (struct fake_buf[]){ { HDR_GPA, 16, false }, { STATUS_GPA, 1, true } }, 2);
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_false(fake_vq_get_used(&x->f, &id, &len));
	/* After a reset the device works again. */
	bring_up(x);
	assert_int_equal(virtio_mmio_status(x->t), 0x0f);
	assert_int_equal(request(x, VIRTIO_BLK_T_IN, 0, 512, true, NULL), VIRTIO_BLK_S_OK);
}

static void test_header_only(void **state)
{
	struct fixture *x = *state;

	put_hdr(x, VIRTIO_BLK_T_FLUSH, 0);
	fake_vq_add_chain(&x->f, (struct fake_buf[]){ { HDR_GPA, 16, false } }, 1);
	expect_needs_reset_then_recover(x);
}

static void test_no_writable_status(void **state)
{
	struct fixture *x = *state;

	put_hdr(x, VIRTIO_BLK_T_OUT, 0);
	fake_vq_add_chain(&x->f,
			  (struct fake_buf[]){ { HDR_GPA, 16, false },
					       { DATA_GPA, 512, false },
					       { STATUS_GPA, 1, false } },
			  3);
	expect_needs_reset_then_recover(x);
}

static void test_garbage_chain(void **state)
{
	struct fixture *x = *state;

	fake_vq_set_desc(&x->f, 0, HDR_GPA, 16, VIRTQ_DESC_F_NEXT, 1);
	fake_vq_set_desc(&x->f, 1, STATUS_GPA, 1, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 0);
	fake_vq_publish(&x->f, 0);
	x->f.next_desc = 2;
	expect_needs_reset_then_recover(x);
}

/* A request completed, then a garbage chain in the same pass: the completion is still
 * signalled (USED beside the NEEDS_RESET config interrupt), or the driver would wait forever
 * for a request the device did finish. */
static void test_completion_before_garbage_signalled(void **state)
{
	struct fixture *x = *state;
	uint32_t id, len;
	uint16_t head;

	put_hdr(x, VIRTIO_BLK_T_FLUSH, 0);
	*status_byte(x) = 0xee;
	head = fake_vq_add_chain(
		&x->f, (struct fake_buf[]){ { HDR_GPA, 16, false }, { STATUS_GPA, 1, true } }, 2);
	/* Then a descriptor loop (2 -> 3 -> 2). */
	fake_vq_set_desc(&x->f, 2, HDR_GPA, 16, VIRTQ_DESC_F_NEXT, 3);
	fake_vq_set_desc(&x->f, 3, STATUS_GPA, 1, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 2);
	fake_vq_publish(&x->f, 2);
	x->f.next_desc = 4;
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_true(fake_vq_get_used(&x->f, &id, &len));
	assert_int_equal(id, head);
	assert_int_equal(*status_byte(x), VIRTIO_BLK_S_OK);
	assert_false(fake_vq_get_used(&x->f, &id, &len));
	assert_true(virtio_mmio_status(x->t) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_INTERRUPT_STATUS),
			 VIRTIO_INT_USED | VIRTIO_INT_CONFIG);
}

static void test_status_byte_position(void **state)
{
	struct fixture *x = *state;
	/* Two writable buffers after the data: status is the very last byte. */
	struct fake_buf bufs[] = { { HDR_GPA, 16, false },
				   { DATA_GPA, 20, true },
				   { DATA_GPA + 0x100, 4, true } };
	uint8_t *tail = fake_mem_ptr(&x->mem, DATA_GPA + 0x100, 4);
	uint8_t want[20] = SERIAL;

	put_hdr(x, VIRTIO_BLK_T_GET_ID, 0);
	memset(tail, 0xee, 4);
	assert_int_equal(run(x, bufs, 3), 21);
	assert_memory_equal(fake_mem_ptr(&x->mem, DATA_GPA, 20), want, 20);
	assert_int_equal(tail[0], 0xee); /* room past the ID is not written */
	assert_int_equal(tail[3], VIRTIO_BLK_S_OK);
}

static void test_reset_while_idle(void **state)
{
	struct fixture *x = *state;

	/* devmgr reset path: device forgets the queue and comes back. */
	virtio_mmio_dev_ops.reset(x->t);
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	bring_up(x);
	assert_int_equal(request(x, VIRTIO_BLK_T_FLUSH, 0, 0, false, NULL), VIRTIO_BLK_S_OK);
}

/* Publish reads of sector `first + i` into DATA_GPA + 1 KiB * i, i < n, as two-descriptor
 * chains (header; data + status); returns nothing, kicks nothing. */
static void publish_reads(struct fixture *x, unsigned n, uint64_t first)
{
	for (unsigned i = 0; i < n; i++) {
		struct fake_buf bufs[] = { { HDR_GPA + 16u * i, 16, false },
					   { DATA_GPA + 1024u * i, 513, true } };
		uint8_t *h = fake_mem_ptr(&x->mem, HDR_GPA + 16u * i, 16);

		virtio_put_le(h, VIRTIO_BLK_T_IN, 4);
		virtio_put_le(h + 4, 0, 4);
		virtio_put_le(h + 8, (first + i) % SECTORS, 8);
		memset(fake_mem_ptr(&x->mem, DATA_GPA + 1024u * i, 513), 0xee, 513);
		fake_vq_add_chain(&x->f, bufs, 2);
	}
}

static void expect_reads(struct fixture *x, unsigned n, uint64_t first)
{
	for (unsigned i = 0; i < n; i++) {
		uint8_t *d = fake_mem_ptr(&x->mem, DATA_GPA + 1024u * i, 513);

		assert_int_equal(d[512], VIRTIO_BLK_S_OK);
		expect_pattern(d, ((first + i) % SECTORS) * 512, 512);
	}
}

/* Several requests in flight at once: nothing is used until the completions are reaped. */
static void test_async_in_flight(void **state)
{
	struct fixture *x = *state;
	uint64_t irqs = x->irq.count;

	publish_reads(x, 8, 3);
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(virtio_blk_in_flight(x->blk), 8);
	assert_int_equal(fake_vq_used_idx(&x->f), 0);
	assert_int_equal(x->irq.count, irqs);
	settle(x, 8);
	assert_int_equal(virtio_blk_in_flight(x->blk), 0);
	expect_reads(x, 8, 3);
	assert_true(x->irq.count > irqs);
}

/* Writes in flight together land in the file, then read back through the device. */
static void test_async_round_trip(void **state)
{
	struct fixture *x = *state;
	uint8_t back[512];

	for (unsigned i = 0; i < 8; i++) {
		struct fake_buf bufs[] = { { HDR_GPA + 16u * i, 16, false },
					   { DATA_GPA + 1024u * i, 512, false },
					   { STATUS_GPA + i, 1, true } };
		uint8_t *h = fake_mem_ptr(&x->mem, HDR_GPA + 16u * i, 16);

		virtio_put_le(h, VIRTIO_BLK_T_OUT, 4);
		virtio_put_le(h + 8, 20 + i, 8);
		memset(fake_mem_ptr(&x->mem, DATA_GPA + 1024u * i, 512), 0x30 + i, 512);
		*(uint8_t *)fake_mem_ptr(&x->mem, STATUS_GPA + i, 1) = 0xee;
		fake_vq_add_chain(&x->f, bufs, 3);
	}
	/* A flush in the same batch. */
	virtio_put_le(fake_mem_ptr(&x->mem, HDR_GPA + 16u * 8, 16), VIRTIO_BLK_T_FLUSH, 4);
	*(uint8_t *)fake_mem_ptr(&x->mem, STATUS_GPA + 8, 1) = 0xee;
	fake_vq_add_chain(&x->f,
			  (struct fake_buf[]){ { HDR_GPA + 16u * 8, 16, false },
					       { STATUS_GPA + 8, 1, true } },
			  2);
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(virtio_blk_in_flight(x->blk), 9);
	settle(x, 9);
	for (unsigned i = 0; i < 9; i++)
		assert_int_equal(*(uint8_t *)fake_mem_ptr(&x->mem, STATUS_GPA + i, 1), 0);
	for (unsigned i = 0; i < 8; i++) {
		file_read(x, (20 + i) * 512, back, 512);
		for (unsigned k = 0; k < 512; k++)
			assert_int_equal(back[k], 0x30 + i);
	}
	memset(fake_mem_ptr(&x->mem, DATA_GPA, 8 * 1024), 0, 8 * 1024);
	publish_reads(x, 8, 20);
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	settle(x, 17);
	for (unsigned i = 0; i < 8; i++) {
		uint8_t *d = fake_mem_ptr(&x->mem, DATA_GPA + 1024u * i, 513);

		assert_int_equal(d[512], VIRTIO_BLK_S_OK);
		for (unsigned k = 0; k < 512; k++)
			assert_int_equal(d[k], 0x30 + i);
	}
}

/* More chains than one pass may take, in one notification: all complete. */
static void test_budget(void **state)
{
	struct fixture *x = *state;

	publish_reads(x, MANY, 0);
	kick(x, MANY);
	assert_int_equal(fake_vq_used_idx(&x->f), MANY);
	expect_reads(x, MANY, 0);
}

/* Asynchronously, completions are reaped at most a budget per pass, and the eventfd stays
 * armed for the rest. */
static void test_budget_async(void **state)
{
	struct fixture *x = *state;
	struct pollfd p = { .fd = x->efd, .events = POLLIN };

	publish_reads(x, MANY, 0);
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(virtio_blk_in_flight(x->blk), MANY);
	assert_int_equal(poll(&p, 1, 5000), 1);
	usleep(100 * 1000); /* let all of them finish */
	virtio_blk_complete(x->blk);
	assert_true(fake_vq_used_idx(&x->f) > 0);
	assert_true(fake_vq_used_idx(&x->f) <= VIRTIO_QUEUE_BUDGET);
	assert_int_equal(poll(&p, 1, 5000), 1); /* re-armed: the rest is waiting */
	settle(x, MANY);
	assert_int_equal(virtio_blk_in_flight(x->blk), 0);
	expect_reads(x, MANY, 0);
}

/* A driver that publishes one head over and over cannot take more than the device's slots. */
static void test_slots_bounded(void **state)
{
	struct fixture *x = *state;
	struct fake_buf bufs[] = { { HDR_GPA, 16, false }, { DATA_GPA, 513, true } };
	uint16_t head;

	put_hdr(x, VIRTIO_BLK_T_IN, 1);
	head = fake_vq_add_chain(&x->f, bufs, 2);
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	/* 1 + 16 * 16 chains: one more than the device has slots. */
	for (unsigned round = 0; round < 16; round++) {
		for (unsigned i = 0; i < QSIZE; i++)
			fake_vq_publish(&x->f, head);
		fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
		assert_true(virtio_blk_in_flight(x->blk) <= VIRTIO_BLK_QUEUE_SIZE);
	}
	assert_int_equal(virtio_blk_in_flight(x->blk), VIRTIO_BLK_QUEUE_SIZE);
	assert_false(virtio_mmio_status(x->t) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	/* Completions free slots and the rest is taken on the next notification. */
	for (int i = 0; i < 500 && fake_vq_used_idx(&x->f) != (uint16_t)(1 + 16 * QSIZE); i++) {
		struct pollfd p = { .fd = x->efd, .events = POLLIN };

		if (poll(&p, 1, 10) > 0)
			virtio_blk_complete(x->blk);
		fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	}
	assert_int_equal(fake_vq_used_idx(&x->f), (uint16_t)(1 + 16 * QSIZE));
	assert_int_equal(virtio_blk_in_flight(x->blk), 0);
}

/* A reset with requests in flight: nothing is pushed, no status or data is written after it,
 * and the device works again afterwards. */
static void test_reset_in_flight(void **state)
{
	struct fixture *x = *state;
	struct pollfd p = { .fd = x->efd, .events = POLLIN };
	uint8_t *d = fake_mem_ptr(&x->mem, DATA_GPA, 8 * 1024);

	publish_reads(x, 8, 0);
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(virtio_blk_in_flight(x->blk), 8);
	fdrv_wr(x->t, VIRTIO_MMIO_STATUS, 0);
	assert_int_equal(virtio_blk_in_flight(x->blk), 0);
	assert_int_equal(fake_vq_used_idx(&x->f), 0);
	memset(d, 0x77, 8 * 1024);
	poll(&p, 1, 50);
	virtio_blk_complete(x->blk);
	usleep(20 * 1000);
	for (size_t i = 0; i < 8 * 1024; i++)
		if (d[i] != 0x77)
			fail_msg("byte %zu written after the reset", i);
	assert_int_equal(fake_vq_used_idx(&x->f), 0);
	bring_up(x);
	assert_int_equal(request(x, VIRTIO_BLK_T_IN, 2, 512, true, NULL), VIRTIO_BLK_S_OK);
	expect_pattern(fake_mem_ptr(&x->mem, DATA_GPA, 512), 1024, 512);
}

/* quiesce (pause, snapshot) returns with nothing in flight, every request completed. */
static void test_quiesce(void **state)
{
	struct fixture *x = *state;
	uint64_t irqs = x->irq.count;

	publish_reads(x, 8, 5);
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(virtio_blk_in_flight(x->blk), 8);
	virtio_mmio_quiesce(x->t);
	assert_int_equal(virtio_blk_in_flight(x->blk), 0);
	assert_int_equal(fake_vq_used_idx(&x->f), 8);
	expect_reads(x, 8, 5);
	assert_true(x->irq.count > irqs);
	/* Nothing left for the eventfd's callback. */
	virtio_blk_complete(x->blk);
	assert_int_equal(fake_vq_used_idx(&x->f), 8);
}

/* The image shrank under the device: reads past its end return zeros (short read, then EOF). */
static void test_image_shrank(void **state)
{
	struct fixture *x = *state;
	uint8_t *d = fake_mem_ptr(&x->mem, DATA_GPA, 1024);

	assert_int_equal(ftruncate(x->fd, 32 * 512 + 100), 0);
	memset(d, 0xee, 1024);
	assert_int_equal(request(x, VIRTIO_BLK_T_IN, 40, 1024, true, NULL), VIRTIO_BLK_S_OK);
	expect_zero(d, 1024);
	memset(d, 0xee, 1024);
	assert_int_equal(request(x, VIRTIO_BLK_T_IN, 31, 1024, true, NULL), VIRTIO_BLK_S_OK);
	expect_pattern(d, 31 * 512, 612);
	expect_zero(d + 612, 412);
}

/* IGNITION_BLK_SYNC=1: the fallback has no completion fd and does the same work. */
static void test_sync_fallback(void **state)
{
	struct fixture *x = *state;
	uint8_t *d = fake_mem_ptr(&x->mem, DATA_GPA, 1024), back[1024];

	assert_int_equal(virtio_blk_async_fd(x->blk), -ENOTSUP);
	memset(d, 0x42, 1024);
	assert_int_equal(request(x, VIRTIO_BLK_T_OUT, 8, 1024, false, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(virtio_blk_in_flight(x->blk), 0);
	file_read(x, 8 * 512, back, sizeof(back));
	for (size_t i = 0; i < sizeof(back); i++)
		assert_int_equal(back[i], 0x42);
	assert_int_equal(request(x, VIRTIO_BLK_T_FLUSH, 0, 0, false, NULL), VIRTIO_BLK_S_OK);
	memset(d, 0, 1024);
	assert_int_equal(request(x, VIRTIO_BLK_T_IN, 8, 1024, true, NULL), VIRTIO_BLK_S_OK);
	for (size_t i = 0; i < 1024; i++)
		assert_int_equal(d[i], 0x42);
}

/* Snapshots.  Quiesce and save the transport (the disk's record follows its own) as SERIAL
 * into `w`, parsed into `f`. */
static void snap_save(struct fixture *x, struct snap_writer *w, struct snap_file *f)
{
	char why[128];

	snap_writer_init(w);
	virtio_mmio_dev_ops.quiesce(x->t);
	assert_int_equal(virtio_mmio_dev_ops.save(x->t, w, SERIAL), 0);
	assert_int_equal(snap_writer_finish(w), 0);
	assert_int_equal(snap_file_parse(f, w->buf, w->len, why, sizeof(why)), 0);
}

/* A copy of `f` in `w`/`out` with its virtio-blk record replaced by `payload` of `len` bytes
 * and `version` (left out when payload is NULL). */
static void replace_blk_record(const struct snap_file *f, uint16_t version, const void *payload,
			       size_t len, struct snap_writer *w, struct snap_file *out)
{
	struct snap_reader r;

	snap_writer_init(w);
	for (uint32_t i = 0; snap_file_record(f, i, &r) == 0; i++) {
		if (r.type == SNAP_REC_VIRTIO_BLK) {
			if (!payload)
				continue;
			snap_rec_begin(w, r.type, version, r.id);
			snap_put_bytes(w, payload, len);
			continue;
		}
		snap_rec_begin(w, r.type, r.version, r.id);
		snap_put_bytes(w, r.p, r.len);
	}
	assert_int_equal(snap_writer_finish(w), 0);
	assert_int_equal(snap_file_parse(out, w->buf, w->len, NULL, 0), 0);
}

/* The disk of a restored VM: a new device on the same image, a new transport over the same
 * guest memory, nothing set up yet.  Returns virtio_blk_create()'s result. */
static int new_disk(struct fixture *x, bool ro)
{
	int ret;

	virtio_mmio_destroy(x->t); /* and the old device, dropping the image lock */
	x->t = NULL;
	x->irq = (struct irq_line){ .fd = -1 };
	if (x->mode == M_SYNC)
		setenv("IGNITION_BLK_SYNC", "1", 1);
	ret = virtio_blk_create(x->path, ro, SERIAL, &x->blk);
	unsetenv("IGNITION_BLK_SYNC");
	if (ret)
		return ret;
	if (x->mode == M_ASYNC) {
		x->efd = virtio_blk_async_fd(x->blk);
		assert_true(x->efd >= 0);
	}
	assert_int_equal(virtio_mmio_create(&x->mem.gm, &x->irq, &virtio_blk_ops, x->blk, &x->t),
			 0);
	return 0;
}

/* The transport as virtio_mmio_create() left it. */
static void expect_untouched(struct fixture *x)
{
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_SEL, 0);
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_STATUS), 0);
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_QUEUE_READY), 0);
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	assert_int_equal(x->irq.count, 0);
}

/* A write completed before the snapshot reads back after it; chains the driver made available
 * and never kicked are taken once the disk is restored, each exactly once, at the right used
 * index; the registers read as before. */
static void test_snapshot_round_trip(void **state)
{
	struct fixture *x = *state;
	struct snap_writer w;
	struct snap_file f;
	struct snap_reader r;
	uint8_t *d = fake_mem_ptr(&x->mem, DATA_GPA, 0x3000), want_id[20] = SERIAL, back[512];
	uint64_t features = fdrv_device_features(x->t);
	uint16_t h1, h2;
	uint32_t id, len;

	memset(d, 0x5a, 512);
	assert_int_equal(request(x, VIRTIO_BLK_T_OUT, 10, 512, false, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(fake_vq_used_idx(&x->f), 1);
	memset(d, 0x11, 512); /* the driver reuses the buffer: a replayed write would show */
	/* Made available, not kicked: a read of what was written, and GET_ID. */
	virtio_put_le(fake_mem_ptr(&x->mem, HDR_GPA + 0x100, 16), VIRTIO_BLK_T_IN, 4);
	virtio_put_le(fake_mem_ptr(&x->mem, HDR_GPA + 0x108, 8), 10, 8);
	virtio_put_le(fake_mem_ptr(&x->mem, HDR_GPA + 0x200, 16), VIRTIO_BLK_T_GET_ID, 4);
	memset(d + 0x1000, 0, 0x2000);
	memset(status_byte(x), 0xee, 3);
	h1 = fake_vq_add_chain(&x->f,
			       (struct fake_buf[]){ { HDR_GPA + 0x100, 16, false },
						    { DATA_GPA + 0x1000, 512, true },
						    { STATUS_GPA + 1, 1, true } },
			       3);
	h2 = fake_vq_add_chain(&x->f,
			       (struct fake_buf[]){ { HDR_GPA + 0x200, 16, false },
						    { DATA_GPA + 0x2000, 20, true },
						    { STATUS_GPA + 2, 1, true } },
			       3);
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_INT_USED);
	snap_save(x, &w, &f);
	assert_int_equal(snap_file_find(&f, SNAP_REC_VIRTIO_BLK, SERIAL, &r), 0);
	assert_int_equal(fake_vq_used_idx(&x->f), 1);

	assert_int_equal(new_disk(x, false), 0);
	assert_int_equal(virtio_mmio_dev_ops.restore(x->t, &f, SERIAL), 0);
	if (x->efd >= 0)
		settle(x, 3);
	/* The two waiting chains, once each (GET_ID finishes first with io_uring), after the
	 * one used before. */
	assert_int_equal(fake_vq_used_idx(&x->f), 3);
	for (unsigned i = 0; i < 2; i++) {
		assert_true(fake_vq_get_used(&x->f, &id, &len));
		assert_true(id == h1 || id == h2);
		assert_int_equal(len, id == h1 ? 513 : 21);
		if (id == h1)
			h1 = UINT16_MAX; /* seen */
		else
			h2 = UINT16_MAX;
	}
	assert_false(fake_vq_get_used(&x->f, &id, &len));
	assert_int_equal(status_byte(x)[1], VIRTIO_BLK_S_OK);
	assert_int_equal(status_byte(x)[2], VIRTIO_BLK_S_OK);
	for (unsigned i = 0; i < 512; i++)
		assert_int_equal(d[0x1000 + i], 0x5a);
	assert_memory_equal(d + 0x2000, want_id, 20);
	file_read(x, 10 * 512, back, sizeof(back));
	for (unsigned i = 0; i < 512; i++)
		assert_int_equal(back[i], 0x5a);
	/* Registers, and the line asserted for the unacknowledged used notification. */
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_STATUS), 0x0f);
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_INT_USED);
	assert_true(x->irq.count >= 1);
	assert_int_equal(fdrv_device_features(x->t), features);
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_SEL, 0);
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_QUEUE_READY), 1);
	assert_int_equal(virtio_mmio_dev_ops.read(x->t, VIRTIO_MMIO_CONFIG, 8), SECTORS);
	/* The next request, at the next used index. */
	memset(d, 0, 512);
	assert_int_equal(request(x, VIRTIO_BLK_T_IN, 10, 512, true, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(fake_vq_used_idx(&x->f), 4);
	for (unsigned i = 0; i < 512; i++)
		assert_int_equal(d[i], 0x5a);
	kick(x, 0);
	assert_int_equal(fake_vq_used_idx(&x->f), 4);
	snap_writer_free(&w);
}

/* Requests in flight when the snapshot is asked for: save refuses until quiesce has completed
 * them, and none of them is completed again after the restore. */
static void test_snapshot_in_flight(void **state)
{
	struct fixture *x = *state;
	struct snap_writer w;
	struct snap_file f;
	uint32_t id, len;

	publish_reads(x, 8, 3);
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(virtio_blk_in_flight(x->blk), 8);
	snap_writer_init(&w);
	assert_int_equal(virtio_mmio_dev_ops.save(x->t, &w, SERIAL), -EBUSY);
	snap_writer_free(&w);
	snap_save(x, &w, &f);
	assert_int_equal(virtio_blk_in_flight(x->blk), 0);
	assert_int_equal(fake_vq_used_idx(&x->f), 8);
	expect_reads(x, 8, 3);
	assert_int_equal(new_disk(x, false), 0);
	assert_int_equal(virtio_mmio_dev_ops.restore(x->t, &f, SERIAL), 0);
	assert_int_equal(virtio_blk_in_flight(x->blk), 0);
	usleep(20 * 1000);
	virtio_blk_complete(x->blk);
	assert_int_equal(fake_vq_used_idx(&x->f), 8);
	for (unsigned i = 0; i < 8; i++)
		assert_true(fake_vq_get_used(&x->f, &id, &len));
	assert_int_equal(request(x, VIRTIO_BLK_T_FLUSH, 0, 0, false, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(fake_vq_used_idx(&x->f), 9);
	snap_writer_free(&w);
}

/* A disk that is not the one the driver knew is refused, the transport left untouched: another
 * size, read-only instead of writable, a record that does not fit. */
static void test_snapshot_other_disk(void **state)
{
	struct fixture *x = *state;
	struct snap_writer w, w2;
	struct snap_file f, f2;
	uint8_t ok[29], bad[30];

	assert_int_equal(request(x, VIRTIO_BLK_T_FLUSH, 0, 0, false, NULL), VIRTIO_BLK_S_OK);
	snap_save(x, &w, &f);
	/* Larger, smaller. */
	assert_int_equal(new_disk(x, false), 0);
	assert_int_equal(ftruncate(x->fd, (SECTORS + 1) * 512), 0);
	assert_int_equal(new_disk(x, false), 0);
	assert_int_equal(virtio_blk_capacity(x->blk), SECTORS + 1);
	assert_int_equal(virtio_mmio_dev_ops.restore(x->t, &f, SERIAL), -EINVAL);
	expect_untouched(x);
	assert_int_equal(ftruncate(x->fd, (SECTORS - 1) * 512), 0);
	assert_int_equal(new_disk(x, false), 0);
	assert_int_equal(virtio_mmio_dev_ops.restore(x->t, &f, SERIAL), -EINVAL);
	expect_untouched(x);
	assert_int_equal(ftruncate(x->fd, SECTORS * 512), 0);
	/* Read-only: other features offered, and the record says writable. */
	assert_int_equal(new_disk(x, true), 0);
	assert_int_equal(virtio_mmio_dev_ops.restore(x->t, &f, SERIAL), -EINVAL);
	expect_untouched(x);
	assert_int_equal(new_disk(x, false), 0);

	/* The disk's own record: the right one first, then each thing wrong with it. */
	virtio_put_le(ok, SECTORS, 8);
	ok[8] = 0;
	memset(ok + 9, 0, 20);
	memcpy(ok + 9, SERIAL, strlen(SERIAL));
	memcpy(bad, ok, sizeof(ok));
	replace_blk_record(&f, 2, ok, sizeof(ok), &w2, &f2); /* version */
	assert_int_equal(virtio_mmio_dev_ops.restore(x->t, &f2, SERIAL), -EINVAL);
	expect_untouched(x);
	snap_writer_free(&w2);
	replace_blk_record(&f, 1, ok, sizeof(ok) - 1, &w2, &f2); /* truncated */
	assert_int_equal(virtio_mmio_dev_ops.restore(x->t, &f2, SERIAL), -EINVAL);
	expect_untouched(x);
	snap_writer_free(&w2);
	replace_blk_record(&f, 1, bad, sizeof(bad), &w2, &f2); /* a byte too many */
	assert_int_equal(virtio_mmio_dev_ops.restore(x->t, &f2, SERIAL), -EINVAL);
	expect_untouched(x);
	snap_writer_free(&w2);
	replace_blk_record(&f, 1, NULL, 0, &w2, &f2); /* missing */
	assert_int_equal(virtio_mmio_dev_ops.restore(x->t, &f2, SERIAL), -EINVAL);
	expect_untouched(x);
	snap_writer_free(&w2);
	bad[8] = 2; /* not a bool */
	replace_blk_record(&f, 1, bad, sizeof(ok), &w2, &f2);
	assert_int_equal(virtio_mmio_dev_ops.restore(x->t, &f2, SERIAL), -EINVAL);
	expect_untouched(x);
	snap_writer_free(&w2);
	bad[8] = 1; /* read-only, onto a writable disk */
	replace_blk_record(&f, 1, bad, sizeof(ok), &w2, &f2);
	assert_int_equal(virtio_mmio_dev_ops.restore(x->t, &f2, SERIAL), -EINVAL);
	expect_untouched(x);
	snap_writer_free(&w2);
	memcpy(bad, ok, sizeof(ok));
	bad[9] = 'V'; /* another serial */
	replace_blk_record(&f, 1, bad, sizeof(ok), &w2, &f2);
	assert_int_equal(virtio_mmio_dev_ops.restore(x->t, &f2, SERIAL), -EINVAL);
	expect_untouched(x);
	snap_writer_free(&w2);
	replace_blk_record(&f, 1, ok, sizeof(ok), &w2,
			   &f2); /* the encoding above is the real one */
	assert_int_equal(virtio_mmio_dev_ops.restore(x->t, &f2, SERIAL), 0);
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_STATUS), 0x0f);
	assert_int_equal(request(x, VIRTIO_BLK_T_FLUSH, 0, 0, false, NULL), VIRTIO_BLK_S_OK);
	snap_writer_free(&w2);
	snap_writer_free(&w);
}

/* An entropy device's snapshot is not a disk's: refused by the device id. */
static void test_snapshot_rng_into_blk(void **state)
{
	struct fixture *x = *state;
	struct fake_mem m2;
	struct fake_vq f2;
	struct irq_line irq2 = { .fd = -1 };
	struct virtio_rng *rng;
	struct virtio_mmio *t2;
	struct snap_writer w;
	struct snap_file f;

	fake_mem_init(&m2, RAM_SIZE);
	assert_int_equal(virtio_rng_create(&rng), 0);
	assert_int_equal(virtio_mmio_create(&m2.gm, &irq2, &virtio_rng_ops, rng, &t2), 0);
	fdrv_negotiate(t2, ~0ull);
	fdrv_queue(t2, 0, &f2, &m2, QSIZE, DESC_GPA, AVAIL_GPA, USED_GPA, VIRTIO_RNG_QUEUE_SIZE);
	fdrv_driver_ok(t2);
	snap_writer_init(&w);
	assert_int_equal(virtio_mmio_dev_ops.save(t2, &w, SERIAL), 0);
	assert_int_equal(snap_writer_finish(&w), 0);
	assert_int_equal(snap_file_parse(&f, w.buf, w.len, NULL, 0), 0);
	assert_int_equal(new_disk(x, false), 0);
	assert_int_equal(virtio_mmio_dev_ops.restore(x->t, &f, SERIAL), -EINVAL);
	expect_untouched(x);
	virtio_mmio_destroy(t2);
	fake_mem_free(&m2);
	snap_writer_free(&w);
}

/* Image locks: one writer, or any number of readers. */
static void test_lock_rw_rw(void **state)
{
	struct virtio_blk *a, *b;
	struct fixture x = { 0 };

	(void)state;
	make_image(&x);
	assert_int_equal(virtio_blk_create(x.path, false, NULL, &a), 0);
	assert_int_equal(virtio_blk_create(x.path, false, NULL, &b), -EBUSY);
	assert_true(virtio_blk_locked_rw(x.path));
	/* A reader must not see the image change under it either. */
	assert_int_equal(virtio_blk_create(x.path, true, NULL, &b), -EBUSY);
	virtio_blk_destroy(a);
	assert_int_equal(virtio_blk_create(x.path, false, NULL, &b), 0);
	virtio_blk_destroy(b);
	close(x.fd);
	unlink(x.path);
}

static void test_lock_ro_ro(void **state)
{
	struct virtio_blk *a, *b, *c;
	struct fixture x = { 0 };

	(void)state;
	make_image(&x);
	assert_int_equal(virtio_blk_create(x.path, true, NULL, &a), 0);
	assert_int_equal(virtio_blk_create(x.path, true, NULL, &b), 0);
	/* Read-only users keep a writer out. */
	assert_int_equal(virtio_blk_create(x.path, false, NULL, &c), -EBUSY);
	assert_false(virtio_blk_locked_rw(x.path));
	virtio_blk_destroy(a);
	assert_int_equal(virtio_blk_create(x.path, false, NULL, &c), -EBUSY);
	virtio_blk_destroy(b);
	assert_int_equal(virtio_blk_create(x.path, false, NULL, &c), 0);
	virtio_blk_destroy(c);
	close(x.fd);
	unlink(x.path);
}

/* A POSIX lock (lockf, another process's fcntl lock) conflicts with ours too. */
static void test_lock_posix_holder(void **state)
{
	struct virtio_blk *a;
	struct fixture x = { 0 };
	pid_t pid;
	int pfd[2], st;
	char c;

	(void)state;
	make_image(&x);
	assert_int_equal(pipe(pfd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open(x.path, O_RDWR);

		if (fd < 0 || lockf(fd, F_LOCK, 0) || write(pfd[1], "x", 1) != 1)
			_exit(1);
		pause();
		_exit(0);
	}
	assert_int_equal(read(pfd[0], &c, 1), 1);
	assert_int_equal(virtio_blk_create(x.path, false, NULL, &a), -EBUSY);
	assert_int_equal(virtio_blk_create(x.path, true, NULL, &a), -EBUSY);
	assert_true(virtio_blk_locked_rw(x.path));
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_int_equal(virtio_blk_create(x.path, false, NULL, &a), 0);
	virtio_blk_destroy(a);
	close(pfd[0]);
	close(pfd[1]);
	close(x.fd);
	unlink(x.path);
}

static void *loop_thread(void *opaque)
{
	return (void *)(intptr_t)evloop_run(opaque);
}

/* Poll the used index written by the event-loop thread (at most ~5 s). */
static void wait_used(struct fixture *x, uint16_t want)
{
	for (int i = 0; i < 5000 && fake_vq_used_idx(&x->f) != want; i++)
		usleep(1000);
	assert_int_equal(fake_vq_used_idx(&x->f), want);
}

/* The real wiring: virtio_blk_add() on a device manager with an event loop running in its own
 * thread; kicks go through the transport's eventfd, completions through the ring's. */
static void test_event_loop(void **state)
{
	struct fixture *x = calloc(1, sizeof(*x));
	struct devmgr dm;
	struct evloop ev;
	struct virtio_blk *b;
	pthread_t th;
	uint8_t back[512];
	void *rc;

	(void)state;
	make_image(x);
	fake_mem_init(&x->mem, RAM_SIZE);
	x->qsize = QSIZE;
	x->efd = -1;
	assert_int_equal(evloop_init(&ev), 0);
	devmgr_init(&dm, &x->mem.gm, &ev, NULL);
	assert_int_equal(virtio_blk_add(&dm, "virtio-blk0", x->path, false, &b), 0);
	x->t = devmgr_find(&dm, "virtio-blk0")->dev;
	assert_int_equal(pthread_create(&th, NULL, loop_thread, &ev), 0);
	bring_up(x);

	publish_reads(x, 6, 9);
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	wait_used(x, 6);
	expect_reads(x, 6, 9);

	memset(fake_mem_ptr(&x->mem, DATA_GPA, 512), 0x66, 512);
	put_hdr(x, VIRTIO_BLK_T_OUT, 50);
	*status_byte(x) = 0xee;
	fake_vq_add_chain(&x->f,
			  (struct fake_buf[]){ { HDR_GPA, 16, false },
					       { DATA_GPA, 512, false },
					       { STATUS_GPA, 1, true } },
			  3);
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	wait_used(x, 7);
	assert_int_equal(*status_byte(x), VIRTIO_BLK_S_OK);
	file_read(x, 50 * 512, back, 512);
	for (unsigned i = 0; i < 512; i++)
		assert_int_equal(back[i], 0x66);
	for (unsigned i = 0; i < 512; i++)
		back[i] = pattern(50 * 512 + i);
	assert_int_equal(pwrite(x->fd, back, 512, 50 * 512), 512);

	/* More than a budget in one kick: the queue yields and the loop comes back. */
	x->qsize = BIG_QSIZE;
	bring_up(x);
	publish_reads(x, MANY, 0);
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	wait_used(x, MANY);
	expect_reads(x, MANY, 0);

	/* A second open of the image while the device has it. */
	assert_int_equal(virtio_blk_create(x->path, true, NULL, &b), -EBUSY);

	evloop_stop(&ev);
	assert_int_equal(pthread_join(th, &rc), 0);
	assert_int_equal((intptr_t)rc, 0);
	devmgr_destroy(&dm);
	evloop_destroy(&ev);
	assert_int_equal(virtio_blk_create(x->path, false, NULL, &b), 0);
	virtio_blk_destroy(b);
	close(x->fd);
	unlink(x->path);
	fake_mem_free(&x->mem);
	free(x);
}

#define RW(fn) cmocka_unit_test_setup_teardown(fn, setup_rw, teardown)
#define RO(fn) cmocka_unit_test_setup_teardown(fn, setup_ro, teardown)

/* Rate limiter (fake clock): 1024 bytes/s and 3 ops/s.  Requests beyond the budget stay in
 * the ring (not popped) until the limiter's timer fires; flushes count as ops. */
static uint64_t rl_now;

static uint64_t rl_clock(void)
{
	return rl_now;
}

static void queue_read(struct fixture *x, unsigned i, uint32_t len)
{
	struct fake_buf bufs[] = { { HDR_GPA + 32u * i, 16, false },
				   { DATA_GPA + 0x1000u * i, len, true },
				   { STATUS_GPA + i, 1, true } };
	uint8_t *h = fake_mem_ptr(&x->mem, HDR_GPA + 32u * i, 16);

	virtio_put_le(h, VIRTIO_BLK_T_IN, 4);
	virtio_put_le(h + 8, i, 8);
	fake_vq_add_chain(&x->f, bufs, 3);
}

static void test_ratelimit(void **state)
{
	struct fixture *x = *state;
	struct ratelimit_cfg c = { .bandwidth = { 1024, 0, 1000 }, .ops = { 3, 0, 1000 } };
	struct ratelimit_cfg bad = { .bandwidth = { 1024, 0, 0 } };
	struct ratelimit_cfg none = { 0 };
	uint32_t id, len;

	rl_now = 1000000000;
	ratelimit_set_clock(rl_clock);
	assert_int_equal(virtio_blk_set_ratelimit(x->blk, &bad), -EINVAL);
	assert_int_equal(virtio_blk_set_ratelimit(x->blk, &c), 0);
	/* 512 + 512 bytes pass; the third read waits for bandwidth. */
	for (unsigned i = 0; i < 3; i++)
		queue_read(x, i, 512);
	kick(x, 2);
	assert_int_equal(fake_vq_used_idx(&x->f), 2);
	/* A kick while held does nothing (no busy loop, nothing lost). */
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(fake_vq_used_idx(&x->f), 2);
	/* 499 ms later: still 1 byte short; the timer would fire at 500 ms. */
	rl_now += 499000000;
	virtio_blk_ratelimit_fire(x->blk);
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 0); /* no event loop here: run the queue */
	assert_int_equal(fake_vq_used_idx(&x->f), 2);
	rl_now += 1000000;
	virtio_blk_ratelimit_fire(x->blk);
	kick(x, 1);
	assert_int_equal(fake_vq_used_idx(&x->f), 3);
	for (unsigned i = 0; i < 3; i++) {
		assert_true(fake_vq_get_used(&x->f, &id, &len));
		assert_int_equal(len, 513);
		assert_int_equal(*(uint8_t *)fake_mem_ptr(&x->mem, STATUS_GPA + i, 1), 0);
		expect_pattern(fake_mem_ptr(&x->mem, DATA_GPA + 0x1000u * i, 512), i * 512, 512);
	}
	/* Ops: three per second, flushes included. */
	rl_now += 10000000000;
	for (unsigned i = 0; i < 4; i++) {
		struct fake_buf bufs[] = { { HDR_GPA + 32u * i, 16, false },
					   { STATUS_GPA + i, 1, true } };

		virtio_put_le(fake_mem_ptr(&x->mem, HDR_GPA + 32u * i, 16), VIRTIO_BLK_T_FLUSH, 4);
		fake_vq_add_chain(&x->f, bufs, 2);
	}
	kick(x, 3);
	assert_int_equal(fake_vq_used_idx(&x->f), 6);
	/* A request larger than the bucket waits for a full bucket, then passes (debt). */
	rl_now += 10000000000;
	virtio_blk_ratelimit_fire(x->blk);
	kick(x, 1);
	assert_int_equal(fake_vq_used_idx(&x->f), 7);
	queue_read(x, 0, 4096);
	kick(x, 1);
	assert_int_equal(fake_vq_used_idx(&x->f), 8);
	queue_read(x, 1, 512);
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(fake_vq_used_idx(&x->f), 8);
	/* Removing the limit at run time releases what was held at once. */
	assert_int_equal(virtio_blk_set_ratelimit(x->blk, &none), 0);
	kick(x, 1);
	assert_int_equal(fake_vq_used_idx(&x->f), 9);
	ratelimit_set_clock(NULL);
}
#define ASYNC(fn) cmocka_unit_test_setup_teardown(fn, setup_async, teardown)
#define SYNC(fn)  cmocka_unit_test_setup_teardown(fn, setup_sync, teardown)

/* The drive's metrics (docs/metrics.md): per drive id (block_<serial>) and in the aggregate
 * "block", as deltas since the previous flush. */
static void check_blk_metrics(json_t *m, const char *sect, uint64_t rd_bytes, uint64_t wr_bytes)
{
	assert_int_equal(metrics_json_get(m, sect, "read_count"), 2);
	assert_int_equal(metrics_json_get(m, sect, "read_bytes"), rd_bytes);
	assert_int_equal(metrics_json_get(m, sect, "write_count"), 1);
	assert_int_equal(metrics_json_get(m, sect, "write_bytes"), wr_bytes);
	assert_int_equal(metrics_json_get(m, sect, "flush_count"), 1);
	assert_int_equal(metrics_json_get(m, sect, "invalid_reqs_count"), 2);
	assert_int_equal(metrics_json_get(m, sect, "execute_fails"), 0);
	assert_int_equal(metrics_json_get(m, sect, "queue_event_count"), 6);
}

static void test_metrics(void **state)
{
	struct fixture *x = *state;
	json_t *m = metrics_json_take(); /* zero the deltas */

	assert_non_null(m);
	json_decref(m);
	assert_int_equal(request(x, VIRTIO_BLK_T_IN, 0, 4096, true, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(request(x, VIRTIO_BLK_T_IN, 8, 512, true, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(request(x, VIRTIO_BLK_T_OUT, 2, 1536, false, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(request(x, VIRTIO_BLK_T_FLUSH, 0, 0, false, NULL), VIRTIO_BLK_S_OK);
	/* Past the end, and an unknown type: the guest's mistakes, not the host's. */
	assert_int_equal(request(x, VIRTIO_BLK_T_IN, SECTORS, 512, true, NULL), VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(x, 0x77, 0, 0, false, NULL), VIRTIO_BLK_S_UNSUPP);
	m = metrics_json_take();
	assert_non_null(m);
	check_blk_metrics(m, "block_" SERIAL, 4608, 1536);
	check_blk_metrics(m, "block", 4608, 1536);
	json_decref(m);
	/* Deltas: the flush took them back to zero. */
	m = metrics_json_take();
	assert_int_equal(metrics_json_get(m, "block_" SERIAL, "read_bytes"), 0);
	assert_int_equal(metrics_json_get(m, "block", "read_count"), 0);
	json_decref(m);
}

/* ---- PATCH /drives path_on_host: virtio_blk_swap ---- */

/* A second image of `sectors` sectors filled with `fill`; its fd (O_RDWR) in *fd. */
static void make_other(char *path, size_t n, uint64_t sectors, uint8_t fill, int *fd)
{
	static uint8_t buf[512];

	snprintf(path, n, "/tmp/ignition-blk-other-XXXXXX");
	*fd = mkstemp(path);
	assert_true(*fd >= 0);
	memset(buf, fill, sizeof(buf));
	for (uint64_t i = 0; i < sectors; i++)
		assert_int_equal(pwrite(*fd, buf, sizeof(buf), (off_t)(i * 512)), 512);
}

static uint64_t cfg_capacity(struct fixture *x)
{
	return virtio_mmio_dev_ops.read(x->t, VIRTIO_MMIO_CONFIG + VIRTIO_BLK_CFG_CAPACITY, 8);
}

static void test_swap(void **state)
{
	struct fixture *x = *state;
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	uint32_t gen = fdrv_rd(x->t, VIRTIO_MMIO_CONFIG_GENERATION);
	uint64_t irqs = x->irq.count;
	char other[64];
	uint8_t *d, buf[512];
	int ofd, probe;

	make_other(other, sizeof(other), 2 * SECTORS, 0x5a, &ofd);
	assert_int_equal(virtio_blk_swap(x->blk, open(other, O_RDWR | O_CLOEXEC), other), 0);
	/* The driver is told: new capacity, generation moved, a config interrupt. */
	assert_int_equal(virtio_blk_capacity(x->blk), 2 * SECTORS);
	assert_int_equal(cfg_capacity(x), 2 * SECTORS);
	assert_int_not_equal(fdrv_rd(x->t, VIRTIO_MMIO_CONFIG_GENERATION), gen);
	assert_true(fdrv_rd(x->t, VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_INT_CONFIG);
	assert_true(x->irq.count > irqs);
	fdrv_wr(x->t, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_INT_CONFIG);
	/* Reads come from the new image, also past the old end; writes go there. */
	assert_int_equal(request(x, VIRTIO_BLK_T_IN, 2 * SECTORS - 1, 512, true, NULL),
			 VIRTIO_BLK_S_OK);
	d = fake_mem_ptr(&x->mem, DATA_GPA, 512);
	for (int i = 0; i < 512; i++)
		assert_int_equal(d[i], 0x5a);
	memset(d, 0xc3, 512);
	assert_int_equal(request(x, VIRTIO_BLK_T_OUT, 1, 512, false, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(pread(ofd, buf, 512, 512), 512);
	assert_int_equal(buf[0], 0xc3);
	file_read(x, 512, buf, 512);
	expect_pattern(buf, 512, 512); /* the old image is untouched */
	/* The old image's lock went with it; the new one is held. */
	probe = open(x->path, O_RDWR | O_CLOEXEC);
	assert_int_equal(fcntl(probe, F_OFD_SETLK, &fl), 0);
	close(probe);
	probe = open(other, O_RDWR | O_CLOEXEC);
	assert_int_equal(fcntl(probe, F_OFD_SETLK, &fl), -1);
	close(probe);
	close(ofd);
	unlink(other);
}

static void test_swap_refused(void **state)
{
	struct fixture *x = *state;
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	uint32_t gen = fdrv_rd(x->t, VIRTIO_MMIO_CONFIG_GENERATION);
	char other[64];
	uint8_t *d;
	int ofd, holder;

	/* Not a disk, smaller than a sector, locked by someone else. */
	assert_int_equal(virtio_blk_swap(x->blk, open("/tmp", O_RDONLY | O_CLOEXEC), "/tmp"),
			 -EINVAL);
	make_other(other, sizeof(other), 0, 0, &ofd);
	assert_int_equal(write(ofd, "abc", 3), 3);
	assert_int_equal(virtio_blk_swap(x->blk, open(other, O_RDWR | O_CLOEXEC), other), -EINVAL);
	assert_int_equal(ftruncate(ofd, 8 * 512), 0);
	holder = open(other, O_RDWR | O_CLOEXEC);
	assert_int_equal(fcntl(holder, F_OFD_SETLK, &fl), 0);
	assert_int_equal(virtio_blk_swap(x->blk, open(other, O_RDWR | O_CLOEXEC), other), -EBUSY);
	close(holder);
	/* Each time the old image stayed, unannounced. */
	assert_int_equal(virtio_blk_capacity(x->blk), SECTORS);
	assert_int_equal(cfg_capacity(x), SECTORS);
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_CONFIG_GENERATION), gen);
	assert_int_equal(request(x, VIRTIO_BLK_T_IN, 5, 512, true, NULL), VIRTIO_BLK_S_OK);
	d = fake_mem_ptr(&x->mem, DATA_GPA, 512);
	expect_pattern(d, 5 * 512, 512);
	/* A checkpoint for an in-place reset pins the image. */
	assert_int_equal(virtio_blk_checkpoint(x->blk), 0);
	assert_int_equal(virtio_blk_swap(x->blk, open(other, O_RDWR | O_CLOEXEC), other), -EPERM);
	assert_int_equal(virtio_blk_capacity(x->blk), SECTORS);
	close(ofd);
	unlink(other);
}

/* The same file again, grown meanwhile: the new size, and no conflict with our own lock. */
static void test_swap_same_file(void **state)
{
	struct fixture *x = *state;

	assert_int_equal(ftruncate(x->fd, 3 * SECTORS * 512), 0);
	assert_int_equal(virtio_blk_swap(x->blk, open(x->path, O_RDWR | O_CLOEXEC), x->path), 0);
	assert_int_equal(virtio_blk_capacity(x->blk), 3 * SECTORS);
	assert_int_equal(cfg_capacity(x), 3 * SECTORS);
	assert_int_equal(request(x, VIRTIO_BLK_T_IN, 4, 512, true, NULL), VIRTIO_BLK_S_OK);
	expect_pattern(fake_mem_ptr(&x->mem, DATA_GPA, 512), 4 * 512, 512);
}

/* Requests in flight finish on the old image, answered, before the switch. */
static void test_swap_in_flight(void **state)
{
	struct fixture *x = *state;
	char other[64];
	int ofd;

	make_other(other, sizeof(other), SECTORS, 0x11, &ofd);
	publish_reads(x, 8, 3);
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(virtio_blk_in_flight(x->blk), 8);
	assert_int_equal(virtio_blk_swap(x->blk, open(other, O_RDWR | O_CLOEXEC), other), 0);
	assert_int_equal(virtio_blk_in_flight(x->blk), 0);
	assert_int_equal(fake_vq_used_idx(&x->f), 8);
	expect_reads(x, 8, 3);
	close(ofd);
	unlink(other);
}

static void test_swap_read_only(void **state)
{
	struct fixture *x = *state;
	struct flock fl = { .l_type = F_RDLCK, .l_whence = SEEK_SET };
	char other[64];
	int ofd, reader;

	make_other(other, sizeof(other), SECTORS / 2, 0x22, &ofd);
	/* Another reader does not keep a read-only disk out. */
	reader = open(other, O_RDONLY | O_CLOEXEC);
	assert_int_equal(fcntl(reader, F_OFD_SETLK, &fl), 0);
	assert_int_equal(virtio_blk_swap(x->blk, open(other, O_RDONLY | O_CLOEXEC), other), 0);
	assert_int_equal(virtio_blk_capacity(x->blk), SECTORS / 2);
	fdrv_wr(x->t, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	assert_true(fdrv_rd(x->t, VIRTIO_MMIO_DEVICE_FEATURES) & (1u << VIRTIO_BLK_F_RO));
	assert_int_equal(request(x, VIRTIO_BLK_T_IN, 1, 512, true, NULL), VIRTIO_BLK_S_OK);
	assert_int_equal(*(uint8_t *)fake_mem_ptr(&x->mem, DATA_GPA, 1), 0x22);
	close(reader);
	close(ofd);
	unlink(other);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_errors),
		RW(test_features_and_config),
		RW(test_read),
		RW(test_metrics),
		SYNC(test_metrics),
		ASYNC(test_metrics),
		RW(test_ratelimit),
		ASYNC(test_ratelimit),
		SYNC(test_ratelimit),
		RW(test_read_last_sector),
		RW(test_status_shares_buffer),
		RW(test_header_split),
		RW(test_write),
		RW(test_write_header_and_data_together),
		RW(test_indirect_request),
		RW(test_batch),
		RW(test_flush),
		RW(test_get_id),
		RW(test_discard),
		RW(test_discard_errors),
		RW(test_write_zeroes),
		RO(test_read_only),
		RW(test_out_of_range),
		RW(test_request_too_large),
		RW(test_unsupported),
		RW(test_short_header),
		RW(test_no_header),
		RW(test_header_only),
		RW(test_no_writable_status),
		RW(test_garbage_chain),
		RW(test_completion_before_garbage_signalled),
		RW(test_status_byte_position),
		RW(test_reset_while_idle),
		RW(test_image_shrank),
		ASYNC(test_read),
		ASYNC(test_write),
		ASYNC(test_batch),
		ASYNC(test_flush),
		ASYNC(test_get_id),
		ASYNC(test_discard),
		ASYNC(test_write_zeroes),
		ASYNC(test_indirect_request),
		ASYNC(test_request_too_large),
		ASYNC(test_image_shrank),
		ASYNC(test_async_in_flight),
		cmocka_unit_test_setup_teardown(test_async_round_trip, setup_big_async, teardown),
		ASYNC(test_slots_bounded),
		ASYNC(test_reset_in_flight),
		ASYNC(test_quiesce),
		cmocka_unit_test_setup_teardown(test_budget, setup_big, teardown),
		cmocka_unit_test_setup_teardown(test_budget, setup_big_async, teardown),
		cmocka_unit_test_setup_teardown(test_budget_async, setup_big_async, teardown),
		SYNC(test_sync_fallback),
		SYNC(test_read),
		SYNC(test_write),
		SYNC(test_batch),
		SYNC(test_discard),
		SYNC(test_discard_errors),
		SYNC(test_write_zeroes),
		SYNC(test_out_of_range),
		SYNC(test_image_shrank),
		cmocka_unit_test_setup_teardown(test_read_only, setup_sync_ro, teardown),
		RW(test_snapshot_round_trip),
		ASYNC(test_snapshot_round_trip),
		SYNC(test_snapshot_round_trip),
		ASYNC(test_snapshot_in_flight),
		RW(test_snapshot_other_disk),
		RW(test_snapshot_rng_into_blk),
		cmocka_unit_test(test_lock_rw_rw),
		cmocka_unit_test(test_lock_ro_ro),
		cmocka_unit_test(test_lock_posix_holder),
		cmocka_unit_test(test_event_loop),
		cmocka_unit_test_setup_teardown(test_swap, setup_rw, teardown),
		cmocka_unit_test_setup_teardown(test_swap_refused, setup_rw, teardown),
		cmocka_unit_test_setup_teardown(test_swap_same_file, setup_rw, teardown),
		cmocka_unit_test_setup_teardown(test_swap_in_flight, setup_async, teardown),
		cmocka_unit_test_setup_teardown(test_swap_read_only, setup_ro, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
