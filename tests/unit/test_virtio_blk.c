/* virtio-blk (virtio 1.2 §5.2) on a temporary image file, driven through the virtio-mmio
 * transport with requests built in fake guest memory. */
#include "core/irq.h"
#include "devices/virtio/blk.h"
#include "devices/virtio/mmio.h"
#include "devices/virtio/virtio.h"
#include "devices/virtio/virtq.h"
#include "fake_virtq.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

struct fixture {
	char path[64];
	int fd; /* the test's own view of the image */
	struct fake_mem mem;
	struct fake_vq f;
	struct irq_line irq;
	struct virtio_blk *blk;
	struct virtio_mmio *t;
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

static uint32_t rd(struct virtio_mmio *t, uint64_t off)
{
	return (uint32_t)virtio_mmio_dev_ops.read(t, off, 4);
}

static void wr(struct virtio_mmio *t, uint64_t off, uint32_t v)
{
	virtio_mmio_dev_ops.write(t, off, 4, v);
}

/* §3.1.1 initialisation with every offered feature accepted, one queue. */
static void bring_up(struct fixture *x)
{
	uint64_t f;

	wr(x->t, VIRTIO_MMIO_STATUS, 0);
	wr(x->t, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	wr(x->t, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	f = rd(x->t, VIRTIO_MMIO_DEVICE_FEATURES);
	wr(x->t, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	f |= (uint64_t)rd(x->t, VIRTIO_MMIO_DEVICE_FEATURES) << 32;
	wr(x->t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	wr(x->t, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)f);
	wr(x->t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	wr(x->t, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(f >> 32));
	wr(x->t, VIRTIO_MMIO_STATUS, 0x0b);
	assert_int_equal(rd(x->t, VIRTIO_MMIO_STATUS), 0x0b);
	fake_vq_init(&x->f, &x->mem, QSIZE, DESC_GPA, AVAIL_GPA, USED_GPA);
	wr(x->t, VIRTIO_MMIO_QUEUE_SEL, 0);
	assert_int_equal(rd(x->t, VIRTIO_MMIO_QUEUE_NUM_MAX), VIRTIO_BLK_QUEUE_SIZE);
	wr(x->t, VIRTIO_MMIO_QUEUE_NUM, QSIZE);
	wr(x->t, VIRTIO_MMIO_QUEUE_DESC_LOW, DESC_GPA);
	wr(x->t, VIRTIO_MMIO_QUEUE_AVAIL_LOW, AVAIL_GPA);
	wr(x->t, VIRTIO_MMIO_QUEUE_USED_LOW, USED_GPA);
	wr(x->t, VIRTIO_MMIO_QUEUE_READY, 1);
	wr(x->t, VIRTIO_MMIO_STATUS, 0x0f);
	assert_int_equal(rd(x->t, VIRTIO_MMIO_STATUS), 0x0f);
}

static int open_dev(void **state, bool ro)
{
	struct fixture *x = calloc(1, sizeof(*x));

	make_image(x);
	fake_mem_init(&x->mem, RAM_SIZE);
	x->irq.fd = -1;
	assert_int_equal(virtio_blk_create(x->path, ro, SERIAL, &x->blk), 0);
	assert_int_equal(virtio_blk_capacity(x->blk), SECTORS);
	assert_int_equal(virtio_mmio_create(&x->mem.gm, &x->irq, &virtio_blk_ops, x->blk, &x->t),
			 0);
	bring_up(x);
	*state = x;
	return 0;
}

static int setup_rw(void **state)
{
	return open_dev(state, false);
}

static int setup_ro(void **state)
{
	return open_dev(state, true);
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

/* Publish a chain, kick the queue, and take its used element; returns used.len. */
static uint32_t run(struct fixture *x, const struct fake_buf *bufs, unsigned n)
{
	uint32_t id, len;
	uint16_t head;

	*status_byte(x) = 0xee;
	head = fake_vq_add_chain(&x->f, bufs, n);
	wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
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

	assert_int_equal(rd(x->t, VIRTIO_MMIO_DEVICE_ID), VIRTIO_ID_BLOCK);
	wr(x->t, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	uint32_t lo = rd(x->t, VIRTIO_MMIO_DEVICE_FEATURES);
	assert_true(lo & (1u << VIRTIO_BLK_F_FLUSH));
	assert_true(lo & (1u << VIRTIO_BLK_F_DISCARD));
	assert_true(lo & (1u << VIRTIO_BLK_F_WRITE_ZEROES));
	assert_true(lo & (1u << VIRTIO_BLK_F_SEG_MAX));
	assert_true(lo & (1u << VIRTIO_BLK_F_BLK_SIZE));
	assert_true(lo & (1u << VIRTIO_F_INDIRECT_DESC));
	assert_true(lo & (1u << VIRTIO_F_EVENT_IDX));
	assert_false(lo & (1u << VIRTIO_BLK_F_RO));
	wr(x->t, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	assert_int_equal(rd(x->t, VIRTIO_MMIO_DEVICE_FEATURES), 1); /* VERSION_1 */
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
	assert_true(rd(x->t, VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_INT_USED);
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
	wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
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
	wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
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

	wr(x->t, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	lo = rd(x->t, VIRTIO_MMIO_DEVICE_FEATURES);
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
	wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
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

	wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_false(fake_vq_get_used(&x->f, &id, &len));
	assert_true(virtio_mmio_status(x->t) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	assert_true(rd(x->t, VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_INT_CONFIG);
	/* Further requests wait for the reset. */
	put_hdr(x, VIRTIO_BLK_T_FLUSH, 0);
	fake_vq_add_chain(
		&x->f, (struct fake_buf[]){ { HDR_GPA, 16, false }, { STATUS_GPA, 1, true } }, 2);
	wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
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
	wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_true(fake_vq_get_used(&x->f, &id, &len));
	assert_int_equal(id, head);
	assert_int_equal(*status_byte(x), VIRTIO_BLK_S_OK);
	assert_false(fake_vq_get_used(&x->f, &id, &len));
	assert_true(virtio_mmio_status(x->t) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	assert_int_equal(rd(x->t, VIRTIO_MMIO_INTERRUPT_STATUS),
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
	wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	bring_up(x);
	assert_int_equal(request(x, VIRTIO_BLK_T_FLUSH, 0, 0, false, NULL), VIRTIO_BLK_S_OK);
}

#define RW(fn) cmocka_unit_test_setup_teardown(fn, setup_rw, teardown)
#define RO(fn) cmocka_unit_test_setup_teardown(fn, setup_ro, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_errors),
		RW(test_features_and_config),
		RW(test_read),
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
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
