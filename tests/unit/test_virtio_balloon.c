/* virtio-balloon (virtio 1.2 §5.5) driven through the virtio-mmio transport.  Guest RAM is a
 * real private anonymous mapping, so mincore() shows whether inflated pages really went back
 * to the host. */
#include "core/cli.h"
#include "core/evloop.h"
#include "core/irq.h"
#include "devices/virtio/balloon.h"
#include "devices/virtio/mmio.h"
#include "devices/virtio/virtio.h"
#include "devices/virtio/virtq.h"
#include "fake_driver.h"
#include "fake_virtq.h"
#include "metrics_json.h"
#include "snapshot/snap.h"

#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#define RAM_SIZE (32u << 20)
#define QSIZE	 16
/* Rings of queue q at RING_GPA(q) + 0x0000 (desc), +0x1000 (avail), +0x2000 (used). */
#define RING_GPA(q) (0x10000u + 0x4000u * (q))
#define LIST_GPA    0x40000 /* page lists and stats buffers */
#define LIST2_GPA   0x50000
#define POOL_GPA    (8u << 20) /* the pages the tests balloon */
#define POOL_PFN    (POOL_GPA >> 12)
#define STEP_MIB    4

#define ALL_FEATURES                                                                    \
	(VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(VIRTIO_BALLOON_F_STATS_VQ) |       \
	 VIRTIO_BIT(VIRTIO_BALLOON_F_DEFLATE_ON_OOM) | VIRTIO_BIT(VIRTIO_F_EVENT_IDX) | \
	 VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC))

struct fixture {
	struct fake_mem mem;
	struct fake_vq f[3];
	struct irq_line irq;
	struct virtio_balloon *b;
	struct virtio_mmio *t;
};

static uint64_t cfg_rd(struct fixture *x, uint32_t off, unsigned size)
{
	return virtio_mmio_dev_ops.read(x->t, VIRTIO_MMIO_CONFIG + off, size);
}

static void cfg_wr(struct fixture *x, uint32_t off, unsigned size, uint64_t v)
{
	virtio_mmio_dev_ops.write(x->t, VIRTIO_MMIO_CONFIG + off, size, v);
}

static bool needs_reset(struct fixture *x)
{
	return virtio_mmio_status(x->t) & VIRTIO_STATUS_DEVICE_NEEDS_RESET;
}

static void put_first_stats(struct fixture *x);

/* §3.1.1 initialisation accepting `features`, making queues 0..nq-1 ready; with `prime`, a
 * stats buffer is offered and kicked before DRIVER_OK, as Linux does. */
static void bring_up_ex(struct fixture *x, uint64_t features, unsigned nq, bool prime)
{
	assert_int_equal(fdrv_negotiate(x->t, features), features);
	for (unsigned q = 0; q < nq; q++) {
		uint64_t base = RING_GPA(q);

		fdrv_queue(x->t, q, &x->f[q], &x->mem, QSIZE, base, base + 0x1000, base + 0x2000,
			   VIRTIO_BALLOON_QUEUE_SIZE);
	}
	if (prime)
		put_first_stats(x);
	fdrv_wr(x->t, VIRTIO_MMIO_STATUS, 0x0f);
}

static void bring_up(struct fixture *x, uint64_t features, unsigned nq)
{
	bring_up_ex(x, features, nq, false);
}

static int setup(void **state)
{
	struct fixture *x = calloc(1, sizeof(*x));
	struct virtio_balloon_opts o = { .step_mib = STEP_MIB, .stats_s = 0 };
	void *ram;

	/* Fake guest RAM as the VMM has it: private anonymous memory. */
	ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(ram != MAP_FAILED);
	/* 4 KiB pages throughout, so residency is per page (no transparent huge pages). */
	madvise(ram, RAM_SIZE, MADV_NOHUGEPAGE);
	x->mem.buf = ram;
	x->mem.size = RAM_SIZE;
	gmem_init_flat(&x->mem.gm, ram, RAM_SIZE);
	x->irq.fd = -1;
	assert_int_equal(virtio_balloon_create(&x->mem.gm, NULL, &o, &x->b), 0);
	assert_int_equal(virtio_mmio_create(&x->mem.gm, &x->irq, &virtio_balloon_ops, x->b, &x->t),
			 0);
	bring_up(x, ALL_FEATURES, 3);
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_STATUS), 0x0f);
	*state = x;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *x = *state;

	virtio_mmio_destroy(x->t); /* destroys the balloon too */
	munmap(x->mem.buf, RAM_SIZE);
	free(x);
	return 0;
}

/* Write `n` le32 PFNs at `gpa`. */
static void put_pfns(struct fixture *x, uint64_t gpa, const uint32_t *pfns, unsigned n)
{
	uint8_t *p = fake_mem_ptr(&x->mem, gpa, 4u * n);

	for (unsigned i = 0; i < n; i++)
		virtio_put_le(p + 4 * i, pfns[i], 4);
}

/* Publish a chain on queue q, kick, and take its used element; returns used.len. */
static uint32_t run(struct fixture *x, unsigned q, const struct fake_buf *bufs, unsigned n)
{
	uint32_t id, len;
	uint16_t head;

	head = fake_vq_add_chain(&x->f[q], bufs, n);
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, q);
	assert_true(fake_vq_get_used(&x->f[q], &id, &len));
	assert_int_equal(id, head);
	return len;
}

static uint32_t send_pfns(struct fixture *x, unsigned q, const uint32_t *pfns, unsigned n)
{
	struct fake_buf b = { LIST_GPA, 4u * n, false };

	put_pfns(x, LIST_GPA, pfns, n);
	return run(x, q, &b, 1);
}

static bool resident(struct fixture *x, uint32_t pfn)
{
	unsigned char v = 0;

	assert_int_equal(mincore(x->mem.buf + ((size_t)pfn << 12), 4096, &v), 0);
	return v & 1;
}

static void touch(struct fixture *x, uint32_t pfn, unsigned n, uint8_t c)
{
	memset(x->mem.buf + ((size_t)pfn << 12), c, (size_t)n << 12);
}

static struct virtio_balloon_counters counters(struct fixture *x)
{
	struct virtio_balloon_counters c;

	virtio_balloon_get_stats(x->b, NULL, &c);
	return c;
}

static void test_identity(void **state)
{
	struct fixture *x = *state;
	uint32_t lo;

	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_DEVICE_ID), VIRTIO_ID_BALLOON);
	fdrv_wr(x->t, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	lo = fdrv_rd(x->t, VIRTIO_MMIO_DEVICE_FEATURES);
	assert_true(lo & (1u << VIRTIO_BALLOON_F_STATS_VQ));
	assert_true(lo & (1u << VIRTIO_BALLOON_F_DEFLATE_ON_OOM));
	assert_false(lo & (1u << VIRTIO_BALLOON_F_MUST_TELL_HOST));
	assert_false(lo & (1u << VIRTIO_BALLOON_F_FREE_PAGE_HINT));
	assert_false(lo & (1u << VIRTIO_BALLOON_F_PAGE_REPORTING));
	fdrv_wr(x->t, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_DEVICE_FEATURES), 1); /* VERSION_1 */
	/* §5.5.2: inflateq, deflateq, statsq; nothing more. */
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_SEL, 3);
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_QUEUE_NUM_MAX), 0);
	assert_int_equal(cfg_rd(x, VIRTIO_BALLOON_CFG_NUM_PAGES, 4), 0);
	assert_int_equal(cfg_rd(x, VIRTIO_BALLOON_CFG_ACTUAL, 4), 0);
	assert_int_equal(cfg_rd(x, VIRTIO_BALLOON_CFG_SIZE, 4), 0);
	assert_int_equal(cfg_rd(x, 0x1000, 4), 0);
}

static void test_target_and_config_interrupt(void **state)
{
	struct fixture *x = *state;
	uint32_t gen = fdrv_rd(x->t, VIRTIO_MMIO_CONFIG_GENERATION);
	uint64_t irqs = x->irq.count;
	uint32_t v = 0;

	virtio_balloon_set_target(x->b, 0x1234);
	assert_int_equal(virtio_balloon_target(x->b), 0x1234);
	/* Read byte by byte, as Linux may. */
	for (unsigned i = 0; i < 4; i++)
		v |= (uint32_t)cfg_rd(x, VIRTIO_BALLOON_CFG_NUM_PAGES + i, 1) << (8 * i);
	assert_int_equal(v, 0x1234);
	assert_int_equal(x->irq.count, irqs + 1);
	assert_true(fdrv_rd(x->t, VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_INT_CONFIG);
	assert_int_not_equal(fdrv_rd(x->t, VIRTIO_MMIO_CONFIG_GENERATION), gen);
	/* The same target again: no interrupt. */
	fdrv_wr(x->t, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_INT_CONFIG);
	virtio_balloon_set_target(x->b, 0x1234);
	assert_int_equal(x->irq.count, irqs + 1);
	/* Clamped to guest RAM. */
	virtio_balloon_set_target(x->b, UINT32_MAX);
	assert_int_equal(virtio_balloon_target(x->b), RAM_SIZE >> 12);
}

static void test_toggle(void **state)
{
	struct fixture *x = *state;

	assert_int_equal(virtio_balloon_toggle(x->b), STEP_MIB * 256);
	assert_int_equal(cfg_rd(x, VIRTIO_BALLOON_CFG_NUM_PAGES, 4), STEP_MIB * 256);
	assert_int_equal(virtio_balloon_toggle(x->b), 0);
	virtio_balloon_set_target(x->b, 7);
	assert_int_equal(virtio_balloon_toggle(x->b), 0);
}

static bool readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

/* VIRTIO_BALLOON_EV_REACHED: a target change arms it, the driver's write of an `actual` equal
 * to the target raises it once (signalled on the event fd, taken with its page count), and
 * the device itself writes nothing to stderr (the CLI prints; DESIGN "Layering"). */
static void test_reached_event(void **state)
{
	struct fixture *x = *state;
	int fd = virtio_balloon_event_fd(x->b), err[2], saved;
	uint32_t pages = 0;
	char c;

	assert_true(fd >= 0);
	assert_int_equal(pipe(err), 0);
	saved = dup(STDERR_FILENO);
	assert_true(saved >= 0);
	assert_int_equal(dup2(err[1], STDERR_FILENO), STDERR_FILENO);

	assert_false(readable(fd));
	assert_int_equal(virtio_balloon_take_events(x->b, NULL), 0);
	/* No target change yet: matching writes raise nothing. */
	cfg_wr(x, VIRTIO_BALLOON_CFG_ACTUAL, 4, 0);
	assert_false(readable(fd));
	virtio_balloon_set_target(x->b, 1024);
	/* On the way: not yet. */
	cfg_wr(x, VIRTIO_BALLOON_CFG_ACTUAL, 4, 300);
	cfg_wr(x, VIRTIO_BALLOON_CFG_ACTUAL, 4, 1023);
	assert_false(readable(fd));
	assert_int_equal(virtio_balloon_take_events(x->b, NULL), 0);
	/* Reached: once. */
	cfg_wr(x, VIRTIO_BALLOON_CFG_ACTUAL, 4, 1024);
	assert_true(readable(fd));
	assert_int_equal(virtio_balloon_take_events(x->b, &pages), VIRTIO_BALLOON_EV_REACHED);
	assert_int_equal(pages, 1024);
	assert_false(readable(fd));
	assert_int_equal(virtio_balloon_take_events(x->b, NULL), 0);
	cfg_wr(x, VIRTIO_BALLOON_CFG_ACTUAL, 4, 1000);
	cfg_wr(x, VIRTIO_BALLOON_CFG_ACTUAL, 4, 1024);
	assert_false(readable(fd));
	/* The same target again arms nothing. */
	virtio_balloon_set_target(x->b, 1024);
	cfg_wr(x, VIRTIO_BALLOON_CFG_ACTUAL, 4, 1024);
	assert_false(readable(fd));
	/* A toggle (1024 -> 0) arms it; a byte write that completes the value raises it. */
	assert_int_equal(virtio_balloon_toggle(x->b), 0);
	cfg_wr(x, VIRTIO_BALLOON_CFG_ACTUAL + 1, 1, 0); /* 0x400 -> 0 */
	assert_true(readable(fd));
	assert_int_equal(virtio_balloon_take_events(x->b, &pages), VIRTIO_BALLOON_EV_REACHED);
	assert_int_equal(pages, 0);
	/* A target the guest already has arms nothing. */
	assert_int_equal(virtio_balloon_toggle(x->b), STEP_MIB * 256);
	virtio_balloon_set_target(x->b, 0);
	cfg_wr(x, VIRTIO_BALLOON_CFG_ACTUAL, 4, 0);
	assert_false(readable(fd));
	/* Events wait until taken: two raises, one take with the latest count. */
	virtio_balloon_set_target(x->b, 10);
	cfg_wr(x, VIRTIO_BALLOON_CFG_ACTUAL, 4, 10);
	virtio_balloon_set_target(x->b, 20);
	cfg_wr(x, VIRTIO_BALLOON_CFG_ACTUAL, 4, 20);
	assert_int_equal(virtio_balloon_take_events(x->b, &pages), VIRTIO_BALLOON_EV_REACHED);
	assert_int_equal(pages, 20);
	assert_false(readable(fd));

	assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
	close(saved);
	close(err[1]);
	assert_int_equal(read(err[0], &c, 1), 0); /* end of file at once: nothing printed */
	close(err[0]);
}

/* §5.5.4: the driver writes `actual`; num_pages is read-only to it. */
static void test_actual_written_by_driver(void **state)
{
	struct fixture *x = *state;

	virtio_balloon_set_target(x->b, 1024);
	cfg_wr(x, VIRTIO_BALLOON_CFG_ACTUAL, 4, 300);
	assert_int_equal(virtio_balloon_actual(x->b), 300);
	/* Bytewise. */
	cfg_wr(x, VIRTIO_BALLOON_CFG_ACTUAL + 1, 1, 0x02);
	assert_int_equal(virtio_balloon_actual(x->b), 0x22c);
	/* num_pages writes are dropped, also as part of a wider write. */
	cfg_wr(x, VIRTIO_BALLOON_CFG_NUM_PAGES, 4, 5);
	assert_int_equal(virtio_balloon_target(x->b), 1024);
	cfg_wr(x, VIRTIO_BALLOON_CFG_NUM_PAGES, 8, 0x0000000700000009ull);
	assert_int_equal(virtio_balloon_target(x->b), 1024);
	assert_int_equal(virtio_balloon_actual(x->b), 7);
	/* Past the end: nothing. */
	cfg_wr(x, VIRTIO_BALLOON_CFG_SIZE, 4, 0xffffffff);
	cfg_wr(x, 0xffffffff, 4, 0xffffffff);
	assert_int_equal(virtio_balloon_actual(x->b), 7);
	assert_false(needs_reset(x));
	/* A device reset forgets actual, not the target. */
	bring_up(x, ALL_FEATURES, 3);
	assert_int_equal(virtio_balloon_actual(x->b), 0);
	assert_int_equal(virtio_balloon_target(x->b), 1024);
}

/* Inflated pages leave the host (mincore) and read back as zeros; others stay. */
static void test_inflate_discards(void **state)
{
	struct fixture *x = *state;
	/* Out of order, with a run of 3 and gaps. */
	uint32_t pfns[] = { POOL_PFN + 5, POOL_PFN + 1, POOL_PFN + 2, POOL_PFN + 3, POOL_PFN + 9 };
	bool in_list[16] = { [1] = true, [2] = true, [3] = true, [5] = true, [9] = true };

	touch(x, POOL_PFN, 16, 0x5a);
	for (unsigned i = 0; i < 16; i++)
		assert_true(resident(x, POOL_PFN + i));
	assert_int_equal(send_pfns(x, VIRTIO_BALLOON_Q_INFLATE, pfns, 5), 0);
	for (unsigned i = 0; i < 16; i++) {
		uint8_t *p = x->mem.buf + ((size_t)(POOL_PFN + i) << 12);

		assert_int_equal(resident(x, POOL_PFN + i), !in_list[i]);
		assert_int_equal(p[0], in_list[i] ? 0 : 0x5a);
		assert_int_equal(p[4095], in_list[i] ? 0 : 0x5a);
	}
	assert_int_equal(counters(x).inflated, 5);
	assert_int_equal(counters(x).bad_pfns, 0);
	assert_false(needs_reset(x));
}

/* Deflate only forgets: the guest's pages are left alone and usable. */
static void test_deflate(void **state)
{
	struct fixture *x = *state;
	uint32_t pfns[] = { POOL_PFN, POOL_PFN + 1 };

	touch(x, POOL_PFN, 2, 0x11);
	assert_int_equal(send_pfns(x, VIRTIO_BALLOON_Q_INFLATE, pfns, 2), 0);
	assert_false(resident(x, POOL_PFN));
	assert_int_equal(send_pfns(x, VIRTIO_BALLOON_Q_DEFLATE, pfns, 2), 0);
	assert_int_equal(counters(x).deflated, 2);
	touch(x, POOL_PFN, 2, 0x22);
	assert_true(resident(x, POOL_PFN));
	assert_int_equal(x->mem.buf[(size_t)POOL_PFN << 12], 0x22);
	/* Deflating pages never inflated is harmless too. */
	touch(x, POOL_PFN + 4, 1, 0x33);
	pfns[0] = POOL_PFN + 4;
	assert_int_equal(send_pfns(x, VIRTIO_BALLOON_Q_DEFLATE, pfns, 1), 0);
	assert_true(resident(x, POOL_PFN + 4));
	assert_int_equal(x->mem.buf[(size_t)(POOL_PFN + 4) << 12], 0x33);
}

static void test_pfns_outside_ram(void **state)
{
	struct fixture *x = *state;
	uint32_t pfns[] = { RAM_SIZE >> 12, POOL_PFN, 0xffffffffu, (RAM_SIZE >> 12) - 1,
			    0x100000u /* 4 GiB */ };

	touch(x, POOL_PFN, 1, 1);
	touch(x, (RAM_SIZE >> 12) - 1, 1, 1);
	assert_int_equal(send_pfns(x, VIRTIO_BALLOON_Q_INFLATE, pfns, 5), 0);
	assert_int_equal(counters(x).bad_pfns, 3);
	assert_int_equal(counters(x).inflated, 2);
	assert_false(resident(x, POOL_PFN));
	assert_false(resident(x, (RAM_SIZE >> 12) - 1));
	assert_int_equal(send_pfns(x, VIRTIO_BALLOON_Q_DEFLATE, pfns, 5), 0);
	assert_int_equal(counters(x).bad_pfns, 6);
	assert_int_equal(counters(x).deflated, 2);
	assert_false(needs_reset(x));
}

/* A list that is not whole le32s: whole entries used, the tail ignored. */
static void test_odd_length_list(void **state)
{
	struct fixture *x = *state;
	uint32_t pfns[] = { POOL_PFN, POOL_PFN + 1, POOL_PFN + 2 };
	struct fake_buf b = { LIST_GPA, 10, false };

	touch(x, POOL_PFN, 3, 1);
	put_pfns(x, LIST_GPA, pfns, 3);
	assert_int_equal(run(x, VIRTIO_BALLOON_Q_INFLATE, &b, 1), 0);
	assert_int_equal(counters(x).inflated, 2);
	assert_true(resident(x, POOL_PFN + 2));
	/* Empty and 3-byte lists: nothing. */
	b.len = 0;
	assert_int_equal(run(x, VIRTIO_BALLOON_Q_INFLATE, &b, 1), 0);
	b.len = 3;
	assert_int_equal(run(x, VIRTIO_BALLOON_Q_INFLATE, &b, 1), 0);
	assert_int_equal(counters(x).inflated, 2);
	assert_false(needs_reset(x));
}

/* A list split over several descriptors, with a PFN straddling two of them. */
static void test_split_list(void **state)
{
	struct fixture *x = *state;
	uint32_t pfns[] = { POOL_PFN, POOL_PFN + 7 };
	struct fake_buf bufs[] = { { LIST_GPA, 6, false }, { LIST2_GPA, 2, false } };
	uint8_t raw[8];

	touch(x, POOL_PFN, 8, 1);
	virtio_put_le(raw, pfns[0], 4);
	virtio_put_le(raw + 4, pfns[1], 4);
	memcpy(fake_mem_ptr(&x->mem, LIST_GPA, 6), raw, 6);
	memcpy(fake_mem_ptr(&x->mem, LIST2_GPA, 2), raw + 6, 2);
	assert_int_equal(run(x, VIRTIO_BALLOON_Q_INFLATE, bufs, 2), 0);
	assert_false(resident(x, POOL_PFN));
	assert_false(resident(x, POOL_PFN + 7));
	assert_true(resident(x, POOL_PFN + 3));
}

/* More frame numbers than one request may carry: the first VIRTIO_BALLOON_MAX_PFNS only. */
static void test_too_many_pfns(void **state)
{
	struct fixture *x = *state;
	unsigned n = VIRTIO_BALLOON_MAX_PFNS + 10;
	uint32_t *pfns = calloc(n, sizeof(*pfns));
	struct fake_buf b = { LIST_GPA, 4u * n, false };

	for (unsigned i = 0; i < n; i++)
		pfns[i] = POOL_PFN + i;
	touch(x, POOL_PFN, n, 1);
	put_pfns(x, LIST_GPA, pfns, n);
	assert_int_equal(run(x, VIRTIO_BALLOON_Q_INFLATE, &b, 1), 0);
	assert_int_equal(counters(x).inflated, VIRTIO_BALLOON_MAX_PFNS);
	assert_false(resident(x, POOL_PFN + VIRTIO_BALLOON_MAX_PFNS - 1));
	assert_true(resident(x, POOL_PFN + VIRTIO_BALLOON_MAX_PFNS));
	free(pfns);
}

/* Writable buffers where the list should be readable: ignored, never written. */
static void test_writable_list(void **state)
{
	struct fixture *x = *state;
	uint32_t pfns[] = { POOL_PFN };
	struct fake_buf w = { LIST_GPA, 4, true };
	struct fake_buf mixed[] = { { LIST_GPA, 4, false }, { LIST2_GPA, 64, true } };

	touch(x, POOL_PFN, 1, 1);
	put_pfns(x, LIST_GPA, pfns, 1);
	memset(fake_mem_ptr(&x->mem, LIST2_GPA, 64), 0xee, 64);
	assert_int_equal(run(x, VIRTIO_BALLOON_Q_INFLATE, &w, 1), 0);
	assert_true(resident(x, POOL_PFN));
	assert_int_equal(counters(x).inflated, 0);
	assert_int_equal(run(x, VIRTIO_BALLOON_Q_INFLATE, mixed, 2), 0);
	assert_false(resident(x, POOL_PFN));
	assert_int_equal(*(uint8_t *)fake_mem_ptr(&x->mem, LIST2_GPA, 1), 0xee);
	assert_false(needs_reset(x));
}

/* A descriptor whose length runs past guest RAM: NEEDS_RESET, nothing discarded. */
static void test_chain_lies_about_length(void **state)
{
	struct fixture *x = *state;
	struct fake_buf b = { RAM_SIZE - 4096, 8192, false };
	uint32_t id, len;

	touch(x, (RAM_SIZE >> 12) - 1, 1, 1);
	fake_vq_add_chain(&x->f[0], &b, 1);
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_false(fake_vq_get_used(&x->f[0], &id, &len));
	assert_true(needs_reset(x));
	assert_int_equal(counters(x).inflated, 0);
	/* Stats requests stop too; after a reset all works again. */
	assert_int_equal(virtio_balloon_request_stats(x->b), -EAGAIN);
	bring_up(x, ALL_FEATURES, 3);
	assert_false(needs_reset(x));
	uint32_t pfns[] = { POOL_PFN };
	touch(x, POOL_PFN, 1, 1);
	assert_int_equal(send_pfns(x, VIRTIO_BALLOON_Q_INFLATE, pfns, 1), 0);
	assert_false(resident(x, POOL_PFN));
}

struct stat_ent {
	uint16_t tag;
	uint64_t val;
};

static void put_stats(struct fixture *x, uint64_t gpa, const struct stat_ent *s, unsigned n)
{
	uint8_t *p = fake_mem_ptr(&x->mem, gpa, 10u * n);

	for (unsigned i = 0; i < n; i++) {
		virtio_put_le(p + 10 * i, s[i].tag, 2);
		virtio_put_le(p + 10 * i + 2, s[i].val, 8);
	}
}

/* Offer a stats buffer of `len` bytes at LIST_GPA; the device keeps it (no used element). */
static uint16_t offer_stats_ex(struct fixture *x, uint32_t len, bool writable, bool expect_kept)
{
	struct fake_buf b = { LIST_GPA, len, writable };
	uint16_t head = fake_vq_add_chain(&x->f[2], &b, 1);
	uint32_t id, ulen;

	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, VIRTIO_BALLOON_Q_STATS);
	if (expect_kept)
		assert_false(fake_vq_get_used(&x->f[2], &id, &ulen));
	return head;
}

static uint16_t offer_stats(struct fixture *x, uint32_t len, bool writable)
{
	return offer_stats_ex(x, len, writable, true);
}

/* One MEMTOT entry, published and kicked on the stats queue (before DRIVER_OK, the transport
 * holds the work until activation). */
static void put_first_stats(struct fixture *x)
{
	struct stat_ent s[] = { { VIRTIO_BALLOON_S_MEMTOT, 123 } };
	struct fake_buf b = { LIST_GPA, 10, false };

	put_stats(x, LIST_GPA, s, 1);
	fake_vq_add_chain(&x->f[2], &b, 1);
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, VIRTIO_BALLOON_Q_STATS);
}

static struct virtio_balloon_stats stats(struct fixture *x)
{
	struct virtio_balloon_stats s;

	virtio_balloon_get_stats(x->b, &s, NULL);
	return s;
}

/* The "balloon" metrics (docs/metrics.md): requests on each queue, statistics received. */
static void test_metrics(void **state)
{
	struct fixture *x = *state;
	uint32_t pfns[] = { POOL_PFN, POOL_PFN + 1 };
	struct stat_ent s[] = { { VIRTIO_BALLOON_S_MEMFREE, 4096 } };
	json_t *m = metrics_json_take(); /* zero the deltas (and the primed statistics) */

	assert_non_null(m);
	json_decref(m);
	touch(x, POOL_PFN, 2, 0x11);
	assert_int_equal(send_pfns(x, VIRTIO_BALLOON_Q_INFLATE, pfns, 2), 0);
	assert_int_equal(send_pfns(x, VIRTIO_BALLOON_Q_DEFLATE, pfns, 2), 0);
	assert_int_equal(send_pfns(x, VIRTIO_BALLOON_Q_DEFLATE, pfns, 1), 0);
	put_stats(x, LIST_GPA, s, 1);
	offer_stats(x, 10, false);
	m = metrics_json_take();
	assert_non_null(m);
	assert_int_equal(metrics_json_get(m, "balloon", "inflate_count"), 1);
	assert_int_equal(metrics_json_get(m, "balloon", "deflate_count"), 2);
	assert_int_equal(metrics_json_get(m, "balloon", "stats_updates_count"), 1);
	json_decref(m);
}

/* §5.5.6.3: the driver leaves a buffer; giving it back asks for fresh statistics. */
static void test_stats(void **state)
{
	struct fixture *x = *state;
	struct stat_ent s1[] = { { VIRTIO_BALLOON_S_MEMFREE, 100 << 20 },
				 { VIRTIO_BALLOON_S_MEMTOT, 500 << 20 },
				 { 200, 7 }, /* unknown tag: ignored */
				 { VIRTIO_BALLOON_S_AVAIL, 300 << 20 } };
	struct stat_ent s2[] = { { VIRTIO_BALLOON_S_MEMFREE, 50 << 20 } };
	uint32_t id, len;
	uint16_t head;

	assert_false(stats(x).valid);
	assert_int_equal(virtio_balloon_request_stats(x->b), -EAGAIN); /* nothing held */
	put_stats(x, LIST_GPA, s1, 4);
	head = offer_stats(x, 40, false);
	assert_true(stats(x).valid);
	assert_int_equal(stats(x).val[VIRTIO_BALLOON_S_MEMFREE], 100 << 20);
	assert_int_equal(stats(x).val[VIRTIO_BALLOON_S_MEMTOT], 500 << 20);
	assert_int_equal(stats(x).val[VIRTIO_BALLOON_S_AVAIL], 300 << 20);
	assert_int_equal(stats(x).present, (1u << VIRTIO_BALLOON_S_MEMFREE) |
						   (1u << VIRTIO_BALLOON_S_MEMTOT) |
						   (1u << VIRTIO_BALLOON_S_AVAIL));
	assert_true(stats(x).age_ms < 5000);
	/* Ask for more: the buffer comes back, once. */
	assert_int_equal(virtio_balloon_request_stats(x->b), 0);
	assert_true(fake_vq_get_used(&x->f[2], &id, &len));
	assert_int_equal(id, head);
	assert_int_equal(len, 0);
	assert_int_equal(virtio_balloon_request_stats(x->b), -EAGAIN);
	/* The driver refills it: the new set replaces the old one. */
	put_stats(x, LIST_GPA, s2, 1);
	offer_stats(x, 10, false);
	assert_int_equal(stats(x).val[VIRTIO_BALLOON_S_MEMFREE], 50 << 20);
	assert_int_equal(stats(x).present, 1u << VIRTIO_BALLOON_S_MEMFREE);
	assert_int_equal(stats(x).val[VIRTIO_BALLOON_S_MEMTOT], 0);
}

/* A stats buffer offered and kicked before DRIVER_OK is taken at activation: the transport runs
 * every ready queue once after the balloon's activate (the balloon has no workaround of its
 * own). */
static void test_stats_primed_before_driver_ok(void **state)
{
	struct fixture *x = *state;
	uint32_t id, len;

	bring_up_ex(x, ALL_FEATURES, 3, true);
	assert_false(needs_reset(x));
	assert_true(stats(x).valid);
	assert_int_equal(stats(x).val[VIRTIO_BALLOON_S_MEMTOT], 123);
	assert_false(fake_vq_get_used(&x->f[2], &id, &len));
	assert_int_equal(virtio_balloon_request_stats(x->b), 0);
	assert_true(fake_vq_get_used(&x->f[2], &id, &len));
}

/* Odd lengths: a partial trailing entry, empty buffers, writable ones, oversized ones. */
static void test_stats_odd_lengths(void **state)
{
	struct fixture *x = *state;
	struct stat_ent s[] = { { VIRTIO_BALLOON_S_SWAP_IN, 1 },
				{ VIRTIO_BALLOON_S_SWAP_OUT, 2 },
				{ VIRTIO_BALLOON_S_MAJFLT, 3 } };
	uint32_t id, len;
	uint16_t first;

	put_stats(x, LIST_GPA, s, 3);
	first = offer_stats(x, 25, false); /* 2 entries + 5 bytes */
	assert_int_equal(stats(x).present, 3);
	assert_int_equal(stats(x).val[VIRTIO_BALLOON_S_SWAP_OUT], 2);
	/* A second buffer while we hold one: the first is given back, none is lost. */
	offer_stats_ex(x, 0, false, false);
	assert_true(fake_vq_get_used(&x->f[2], &id, &len));
	assert_int_equal(id, first);
	assert_false(fake_vq_get_used(&x->f[2], &id, &len));
	assert_true(stats(x).valid);
	assert_int_equal(stats(x).present, 0);
	assert_int_equal(virtio_balloon_request_stats(x->b), 0);
	assert_true(fake_vq_get_used(&x->f[2], &id, &len));
	/* Writable only: no entries. */
	offer_stats(x, 30, true);
	assert_int_equal(stats(x).present, 0);
	assert_int_equal(virtio_balloon_request_stats(x->b), 0);
	assert_true(fake_vq_get_used(&x->f[2], &id, &len));
	/* Huge: at most VIRTIO_BALLOON_MAX_STATS entries are looked at. */
	memset(fake_mem_ptr(&x->mem, LIST_GPA, 0x10000), 0, 0x10000);
	put_stats(x, LIST_GPA + 10u * VIRTIO_BALLOON_MAX_STATS, s, 1); /* past the cap */
	offer_stats(x, 0x10000, false);
	assert_int_equal(stats(x).present, 1u << 0);
	assert_int_equal(stats(x).val[0], 0);
	assert_false(needs_reset(x));
}

/* Without STATS_VQ the stats queue is never used, even if the driver kicks it. */
static void test_no_stats_feature(void **state)
{
	struct fixture *x = *state;
	struct stat_ent s[] = { { VIRTIO_BALLOON_S_MEMFREE, 1 } };
	struct fake_buf b = { LIST_GPA, 10, false };
	uint32_t id, len;

	bring_up(x, ALL_FEATURES & ~VIRTIO_BIT(VIRTIO_BALLOON_F_STATS_VQ), 3);
	assert_false(needs_reset(x));
	put_stats(x, LIST_GPA, s, 1);
	fake_vq_add_chain(&x->f[2], &b, 1);
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, VIRTIO_BALLOON_Q_STATS);
	assert_false(fake_vq_get_used(&x->f[2], &id, &len));
	assert_false(stats(x).valid);
	assert_int_equal(virtio_balloon_request_stats(x->b), -EAGAIN);
	/* Inflation still works. */
	uint32_t pfns[] = { POOL_PFN };
	touch(x, POOL_PFN, 1, 1);
	assert_int_equal(send_pfns(x, VIRTIO_BALLOON_Q_INFLATE, pfns, 1), 0);
	assert_false(resident(x, POOL_PFN));
	/* STATS_VQ negotiated but only two queues set up: fine, no statistics. */
	bring_up(x, ALL_FEATURES, 2);
	assert_false(needs_reset(x));
	assert_int_equal(virtio_balloon_request_stats(x->b), -EAGAIN);
}

static void test_missing_queues(void **state)
{
	struct fixture *x = *state;

	bring_up(x, ALL_FEATURES, 1);
	assert_true(needs_reset(x));
	bring_up(x, ALL_FEATURES, 0);
	assert_true(needs_reset(x));
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 9);
	bring_up(x, ALL_FEATURES, 3);
	assert_false(needs_reset(x));
}

/* gmem_discard: the range reads as zeros and leaves the host; outside RAM is refused. */
static void test_gmem_discard(void **state)
{
	struct fixture *x = *state;

	touch(x, POOL_PFN, 4, 0x77);
	assert_int_equal(gmem_discard(&x->mem.gm, POOL_GPA + 4096, 2 * 4096), 0);
	assert_true(resident(x, POOL_PFN));
	assert_false(resident(x, POOL_PFN + 1));
	assert_false(resident(x, POOL_PFN + 2));
	assert_int_equal(x->mem.buf[POOL_GPA + 4096], 0);
	assert_int_equal(x->mem.buf[POOL_GPA + 3 * 4096 - 1], 0);
	assert_int_equal(x->mem.buf[POOL_GPA + 3 * 4096], 0x77);
	assert_int_equal(gmem_discard(&x->mem.gm, RAM_SIZE - 4096, 2 * 4096), -EFAULT);
	assert_int_equal(gmem_discard(&x->mem.gm, UINT64_MAX - 4095, 4096), -EFAULT);
	assert_int_equal(gmem_discard(&x->mem.gm, POOL_GPA, 0), 0);
}

/* ---- snapshots ----
 *
 * The device's own record, round-tripped: the fixture's balloon is saved, a fresh one restores
 * the record and is activated with the queues as the transport would bring them back
 * (fdrv_vq_resume); the driver then carries on through the restored device's ops.  The old
 * device is left alone from the save on. */

#define SNAP_ID "virtio-balloon"

struct snap_buf {
	struct snap_writer w;
	struct snap_file f;
};

static void snap_parse(struct snap_buf *s)
{
	char why[128];

	assert_int_equal(snap_writer_finish(&s->w), 0);
	assert_int_equal(snap_file_parse(&s->f, s->w.buf, s->w.len, why, sizeof(why)), 0);
}

/* Quiesce through the transport (as the device manager does), then save the device. */
static void snap_take(struct fixture *x, struct snap_buf *s)
{
	virtio_mmio_quiesce(x->t);
	snap_writer_init(&s->w);
	assert_int_equal(virtio_balloon_ops.save(x->b, &s->w, SNAP_ID), 0);
	snap_parse(s);
}

struct restored {
	struct irq_line irq;
	struct virtio_balloon *b;
	struct virtio_mmio *t;
	struct virtq vqs[3];
};

static struct restored *restored_create(struct fixture *x)
{
	struct virtio_balloon_opts o = { .step_mib = STEP_MIB, .stats_s = 0 };
	struct restored *r = calloc(1, sizeof(*r));

	r->irq.fd = -1;
	assert_int_equal(virtio_balloon_create(&x->mem.gm, NULL, &o, &r->b), 0);
	assert_int_equal(virtio_mmio_create(&x->mem.gm, &r->irq, &virtio_balloon_ops, r->b, &r->t),
			 0);
	return r;
}

/* DRIVER_OK was set when the snapshot was taken: the transport re-activates the device with
 * its queues where they were; `stats_held` chains of the stats queue were consumed and not
 * used yet. */
static void restored_activate(struct fixture *x, struct restored *r, unsigned stats_held)
{
	for (unsigned q = 0; q < 3; q++)
		fdrv_vq_resume(&r->vqs[q], &x->f[q], ALL_FEATURES,
			       (uint16_t)(fake_vq_used_idx(&x->f[q]) +
					  (q == VIRTIO_BALLOON_Q_STATS ? stats_held : 0)));
	assert_int_equal(virtio_balloon_ops.activate(r->b, r->t, ALL_FEATURES, r->vqs, 3), 0);
}

static void restored_destroy(struct restored *r)
{
	virtio_mmio_destroy(r->t);
	free(r);
}

static struct virtio_balloon_stats restored_stats(struct restored *r)
{
	struct virtio_balloon_stats s;

	virtio_balloon_get_stats(r->b, &s, NULL);
	return s;
}

/* Target, actual and the statistics come back; the held stats buffer is still held by the
 * restored device and given back exactly once; the queues carry on. */
static void test_snapshot_round_trip(void **state)
{
	struct fixture *x = *state;
	struct stat_ent s1[] = { { VIRTIO_BALLOON_S_MEMFREE, 100 << 20 },
				 { VIRTIO_BALLOON_S_MEMTOT, 500 << 20 } };
	struct stat_ent s2[] = { { VIRTIO_BALLOON_S_AVAIL, 7 } };
	uint32_t pfns[] = { POOL_PFN, POOL_PFN + 1 };
	struct fake_buf b = { LIST_GPA, 8, false };
	struct restored *r;
	struct snap_buf s;
	uint32_t id, len;
	uint16_t head, head2;

	virtio_balloon_set_target(x->b, 1000);
	cfg_wr(x, VIRTIO_BALLOON_CFG_ACTUAL, 4, 600);
	touch(x, POOL_PFN, 2, 1);
	assert_int_equal(send_pfns(x, VIRTIO_BALLOON_Q_INFLATE, pfns, 2), 0);
	put_stats(x, LIST_GPA, s1, 2);
	head = offer_stats(x, 20, false);
	snap_take(x, &s);

	r = restored_create(x);
	assert_int_equal(virtio_balloon_target(r->b), 0);
	assert_int_equal(virtio_balloon_ops.restore(r->b, &s.f, SNAP_ID), 0);
	assert_int_equal(virtio_balloon_target(r->b), 1000);
	assert_int_equal(virtio_balloon_actual(r->b), 600);
	assert_int_equal(virtio_mmio_dev_ops.read(r->t, VIRTIO_MMIO_CONFIG, 4), 1000);
	assert_int_equal(virtio_mmio_dev_ops.read(r->t, VIRTIO_MMIO_CONFIG + 4, 4), 600);
	assert_true(restored_stats(r).valid);
	assert_int_equal(restored_stats(r).present,
			 (1u << VIRTIO_BALLOON_S_MEMFREE) | (1u << VIRTIO_BALLOON_S_MEMTOT));
	assert_int_equal(restored_stats(r).val[VIRTIO_BALLOON_S_MEMTOT], 500 << 20);
	assert_true(restored_stats(r).age_ms < 5000);
	restored_activate(x, r, 1);
	/* The stats buffer the old device held comes back once, as a request. */
	assert_false(fake_vq_get_used(&x->f[2], &id, &len));
	assert_int_equal(virtio_balloon_request_stats(r->b), 0);
	assert_true(fake_vq_get_used(&x->f[2], &id, &len));
	assert_int_equal(id, head);
	assert_int_equal(len, 0);
	assert_true(r->irq.count > 0);
	assert_int_equal(virtio_balloon_request_stats(r->b), -EAGAIN);
	assert_false(fake_vq_get_used(&x->f[2], &id, &len));
	/* The driver answers with fresh statistics; the round trip goes on. */
	put_stats(x, LIST_GPA, s2, 1);
	b.len = 10;
	head2 = fake_vq_add_chain(&x->f[2], &b, 1);
	virtio_balloon_ops.queue_notify(r->b, VIRTIO_BALLOON_Q_STATS);
	assert_false(fake_vq_get_used(&x->f[2], &id, &len));
	assert_int_equal(restored_stats(r).present, 1u << VIRTIO_BALLOON_S_AVAIL);
	assert_int_equal(virtio_balloon_request_stats(r->b), 0);
	assert_true(fake_vq_get_used(&x->f[2], &id, &len));
	assert_int_equal(id, head2);
	/* Inflation through the restored device. */
	touch(x, POOL_PFN + 5, 1, 1);
	pfns[0] = POOL_PFN + 5;
	put_pfns(x, LIST_GPA, pfns, 1);
	b.len = 4;
	head = fake_vq_add_chain(&x->f[0], &b, 1);
	virtio_balloon_ops.queue_notify(r->b, VIRTIO_BALLOON_Q_INFLATE);
	assert_true(fake_vq_get_used(&x->f[0], &id, &len));
	assert_int_equal(id, head);
	assert_false(resident(x, POOL_PFN + 5));
	/* The restored device raises no event for a target it did not set. */
	virtio_mmio_dev_ops.write(r->t, VIRTIO_MMIO_CONFIG + 4, 4, 1000);
	assert_int_equal(virtio_balloon_take_events(r->b, NULL), 0);
	/* The target moves on from the restored one. */
	assert_int_equal(virtio_balloon_toggle(r->b), 0);
	snap_writer_free(&s.w);
	restored_destroy(r);
}

/* A hand-made record: what a valid one holds, and the knobs the refusals turn. */
struct balloon_rec {
	uint16_t version;
	const char *id;
	uint32_t num_pages, actual;
	uint8_t held;
	uint16_t head;
	uint8_t valid;
	uint32_t present;
	uint64_t val[VIRTIO_BALLOON_S_MAX];
	bool truncated, trailing;
};

static struct balloon_rec good_rec(void)
{
	struct balloon_rec g = { .version = 1,
				 .id = SNAP_ID,
				 .num_pages = RAM_SIZE >> 12,
				 .actual = 0xfffffff0u,
				 .held = 1,
				 .head = 3,
				 .valid = 1,
				 .present = 1u << VIRTIO_BALLOON_S_MEMTOT };

	g.val[VIRTIO_BALLOON_S_MEMTOT] = 42;
	return g;
}

static void build_rec(struct snap_buf *s, const struct balloon_rec *g)
{
	snap_writer_init(&s->w);
	snap_rec_begin(&s->w, SNAP_REC_VIRTIO_BALLOON, g->version, g->id);
	snap_put_u32(&s->w, g->num_pages);
	snap_put_u32(&s->w, g->actual);
	snap_put_u8(&s->w, g->held);
	snap_put_u16(&s->w, g->head);
	snap_put_u8(&s->w, g->valid);
	snap_put_u32(&s->w, g->present);
	for (unsigned i = 0; i < VIRTIO_BALLOON_S_MAX - (g->truncated ? 1 : 0); i++)
		snap_put_u64(&s->w, g->val[i]);
	if (g->trailing)
		snap_put_u8(&s->w, 0);
	snap_parse(s);
}

/* Malformed records are refused with -EINVAL and leave the device exactly as created. */
static void test_snapshot_refusals(void **state)
{
	struct fixture *x = *state;
	struct restored *r = restored_create(x);
	struct balloon_rec cases[16];
	unsigned n = 0;
	struct snap_buf s;
	uint32_t id, len;

	for (unsigned i = 0; i < 16; i++)
		cases[i] = good_rec();
	cases[n++].version = 2;
	cases[n++].version = 0;
	cases[n++].id = "virtio-balloon1"; /* no record for this device */
	cases[n++].truncated = true;
	cases[n++].trailing = true;
	cases[n++].num_pages = (RAM_SIZE >> 12) + 1; /* more than guest RAM */
	cases[n++].held = 2;
	cases[n++].head = VIRTIO_BALLOON_QUEUE_SIZE;
	cases[n].held = 0; /* nothing held, yet a head */
	n++;
	cases[n++].valid = 2;
	cases[n++].valid = 0; /* statistics present though none arrived */
	cases[n++].present = 1u << VIRTIO_BALLOON_S_MAX;
	cases[n++].val[VIRTIO_BALLOON_S_MEMFREE] = 1; /* a value for an absent tag */
	for (unsigned i = 0; i < n; i++) {
		build_rec(&s, &cases[i]);
		if (virtio_balloon_ops.restore(r->b, &s.f, SNAP_ID) != -EINVAL)
			fail_msg("case %u accepted", i);
		snap_writer_free(&s.w);
		assert_int_equal(virtio_balloon_target(r->b), 0);
		assert_int_equal(virtio_balloon_actual(r->b), 0);
		assert_false(restored_stats(r).valid);
	}
	/* No stats buffer is believed held. */
	restored_activate(x, r, 0);
	assert_int_equal(virtio_balloon_request_stats(r->b), -EAGAIN);
	assert_false(fake_vq_get_used(&x->f[2], &id, &len));
	restored_destroy(r);

	/* The builder's good record is accepted: any `actual`, the target at its largest. */
	r = restored_create(x);
	cases[0] = good_rec();
	build_rec(&s, &cases[0]);
	assert_int_equal(virtio_balloon_ops.restore(r->b, &s.f, SNAP_ID), 0);
	snap_writer_free(&s.w);
	assert_int_equal(virtio_balloon_target(r->b), RAM_SIZE >> 12);
	assert_int_equal(virtio_balloon_actual(r->b), 0xfffffff0u);
	assert_int_equal(restored_stats(r).val[VIRTIO_BALLOON_S_MEMTOT], 42);
	/* Head 3 fits the driver's 16-entry stats queue: it is given back on request. */
	restored_activate(x, r, 0);
	assert_int_equal(virtio_balloon_request_stats(r->b), 0);
	assert_true(fake_vq_get_used(&x->f[2], &id, &len));
	assert_int_equal(id, 3);
	restored_destroy(r);

	/* A head beyond the queue the driver set up (16 entries) is dropped at activation. */
	r = restored_create(x);
	cases[0].head = QSIZE;
	build_rec(&s, &cases[0]);
	assert_int_equal(virtio_balloon_ops.restore(r->b, &s.f, SNAP_ID), 0);
	snap_writer_free(&s.w);
	restored_activate(x, r, 0);
	assert_int_equal(virtio_balloon_request_stats(r->b), -EAGAIN);
	restored_destroy(r);
}

/* A statistics timer on an event loop is created and torn down cleanly; bad options fail. */
static void test_create_with_timer(void **state)
{
	struct virtio_balloon_opts o = { .step_mib = 1, .stats_s = 1 };
	struct virtio_balloon *b;
	struct evloop ev;
	struct gmem gm;
	static uint8_t ram[1 << 16];

	(void)state;
	gmem_init_flat(&gm, ram, sizeof(ram));
	assert_int_equal(evloop_init(&ev), 0);
	assert_int_equal(virtio_balloon_create(&gm, &ev, &o, &b), 0);
	assert_int_equal(virtio_balloon_request_stats(b), -EAGAIN);
	/* Step larger than RAM: clamped when applied. */
	assert_int_equal(virtio_balloon_toggle(b), sizeof(ram) >> 12);
	virtio_balloon_destroy(b);
	o.step_mib = UINT32_MAX;
	assert_int_equal(virtio_balloon_create(&gm, &ev, &o, &b), -EINVAL);
	assert_int_equal(virtio_balloon_create(&gm, NULL, NULL, &b), 0);
	assert_int_equal(virtio_balloon_toggle(b), sizeof(ram) >> 12);
	virtio_balloon_destroy(b);
	evloop_destroy(&ev);
}

static int parse(struct cli_opts *o, char *err, int argc, char **argv)
{
	return cli_parse(argc, argv, o, err, 256);
}

/* argv arrays of string literals, as a shell would pass them. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdiscarded-qualifiers"
static void test_cli(void **state)
{
	struct cli_opts o;
	char err[256];
	char *a0[] = { "run", NULL };
	char *a1[] = { "run", "--balloon", NULL };
	char *a2[] = { "run", "--balloon=step=64,stats=0", NULL };
	char *a3[] = { "run", "--balloon", "step=32", "--smp", "2", NULL };
	char *a4[] = { "run", "--balloon=stats=10", NULL };
	char *bad1[] = { "run", "--balloon=step=0", NULL };
	char *bad2[] = { "run", "--balloon=size=3", NULL };
	char *bad3[] = { "run", "--balloon=stats=3601", NULL };
	char *comma[] = { "run", "--balloon=step=64,", NULL };
	char *bad5[] = { "run", "--balloon", "64", NULL };
	char *rng[] = { "run", "--no-rng", NULL };

	(void)state;
	assert_int_equal(parse(&o, err, 1, a0), 0);
	assert_false(o.m.balloon);
	assert_false(o.m.no_rng);
	assert_int_equal(parse(&o, err, 2, a1), 0);
	assert_true(o.m.balloon);
	assert_int_equal(o.m.balloon_step_mib, 0);
	assert_int_equal(o.m.balloon_stats_s, 5);
	assert_int_equal(parse(&o, err, 2, a2), 0);
	assert_int_equal(o.m.balloon_step_mib, 64);
	assert_int_equal(o.m.balloon_stats_s, 0);
	assert_int_equal(parse(&o, err, 5, a3), 0);
	assert_int_equal(o.m.balloon_step_mib, 32);
	assert_int_equal(o.m.smp, 2);
	assert_int_equal(parse(&o, err, 2, a4), 0);
	assert_int_equal(o.m.balloon_stats_s, 10);
	assert_int_equal(parse(&o, err, 2, bad1), -EINVAL);
	assert_non_null(strstr(err, "--balloon"));
	assert_int_equal(parse(&o, err, 2, bad2), -EINVAL);
	assert_int_equal(parse(&o, err, 2, bad3), -EINVAL);
	/* A trailing comma is an empty (ignored) item. */
	assert_int_equal(parse(&o, err, 2, comma), 0);
	assert_int_equal(parse(&o, err, 3, bad5), -EINVAL);
	assert_non_null(strstr(err, "64"));
	assert_int_equal(parse(&o, err, 2, rng), 0);
	assert_true(o.m.no_rng);
}
#pragma GCC diagnostic pop

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_identity),
		T(test_target_and_config_interrupt),
		T(test_toggle),
		T(test_actual_written_by_driver),
		T(test_reached_event),
		T(test_inflate_discards),
		T(test_metrics),
		T(test_deflate),
		T(test_pfns_outside_ram),
		T(test_odd_length_list),
		T(test_split_list),
		T(test_too_many_pfns),
		T(test_writable_list),
		T(test_chain_lies_about_length),
		T(test_stats),
		T(test_stats_primed_before_driver_ok),
		T(test_stats_odd_lengths),
		T(test_no_stats_feature),
		T(test_missing_queues),
		T(test_gmem_discard),
		T(test_snapshot_round_trip),
		T(test_snapshot_refusals),
		cmocka_unit_test(test_create_with_timer),
		cmocka_unit_test(test_cli),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
