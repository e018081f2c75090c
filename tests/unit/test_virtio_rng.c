/* virtio-rng (virtio 1.2 §5.4) driven through the virtio-mmio transport with requests built in
 * fake guest memory, with getrandom() and with scripted entropy sources. */
#include "core/irq.h"
#include "devices/virtio/mmio.h"
#include "devices/virtio/rng.h"
#include "devices/virtio/virtio.h"
#include "devices/virtio/virtq.h"
#include "fake_driver.h"
#include "fake_virtq.h"
#include "metrics_json.h"
#include "snapshot/snap.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define RAM_SIZE  (1u << 20)
#define QSIZE	  16
#define DESC_GPA  0x1000
#define AVAIL_GPA 0x2000
#define USED_GPA  0x3000
#define TABLE_GPA 0x8000
#define DATA_GPA  0x10000
#define BIG_GPA	  0x80000 /* 512 KiB to the end of RAM */

struct fixture {
	struct fake_mem mem;
	struct fake_vq f;
	struct irq_line irq;
	struct virtio_rng *rng;
	struct virtio_mmio *t;
};

/* §3.1.1 initialisation, every offered feature accepted; the queue made ready if `queue`. */
static void bring_up(struct fixture *x, bool queue)
{
	fdrv_negotiate(x->t, ~0ull);
	if (!queue) {
		/* DRIVER_OK without a queue: the device refuses to activate. */
		fake_vq_init(&x->f, &x->mem, QSIZE, DESC_GPA, AVAIL_GPA, USED_GPA);
		fdrv_wr(x->t, VIRTIO_MMIO_STATUS, 0x0f);
		return;
	}
	fdrv_queue(x->t, 0, &x->f, &x->mem, QSIZE, DESC_GPA, AVAIL_GPA, USED_GPA,
		   VIRTIO_RNG_QUEUE_SIZE);
	fdrv_driver_ok(x->t);
}

static int setup(void **state)
{
	struct fixture *x = calloc(1, sizeof(*x));

	fake_mem_init(&x->mem, RAM_SIZE);
	x->irq.fd = -1;
	assert_int_equal(virtio_rng_create(&x->rng), 0);
	assert_int_equal(virtio_mmio_create(&x->mem.gm, &x->irq, &virtio_rng_ops, x->rng, &x->t),
			 0);
	bring_up(x, true);
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_STATUS), 0x0f);
	*state = x;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *x = *state;

	virtio_mmio_destroy(x->t); /* destroys the rng device too */
	fake_mem_free(&x->mem);
	free(x);
	return 0;
}

/* Scripted entropy sources: a counter pattern, at most `chunk` bytes per call. */
static uint8_t counter;
static size_t chunk;
static int eintr_left;
static unsigned calls;

static long pattern_source(void *buf, size_t len)
{
	calls++;
	if (eintr_left) {
		if (eintr_left > 0)
			eintr_left--;
		return -EINTR;
	}
	if (chunk && len > chunk)
		len = chunk;
	for (size_t i = 0; i < len; i++)
		((uint8_t *)buf)[i] = counter++;
	return (long)len;
}

static long eio_source(void *buf, size_t len)
{
	calls++;
	return -EIO;
}

static long zero_source(void *buf, size_t len)
{
	calls++;
	return 0;
}

static long liar_source(void *buf, size_t len)
{
	calls++;
	return (long)len + 1; /* claims more than asked: not believed */
}

static void use_pattern(struct fixture *x, size_t max_chunk, int eintr)
{
	counter = 0;
	chunk = max_chunk;
	eintr_left = eintr;
	calls = 0;
	virtio_rng_set_source(x->rng, pattern_source);
}

/* Publish a chain, kick the queue, and take its used element; returns used.len. */
static uint32_t run(struct fixture *x, const struct fake_buf *bufs, unsigned n)
{
	uint32_t id, len;
	uint16_t head;

	head = fake_vq_add_chain(&x->f, bufs, n);
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_true(fake_vq_get_used(&x->f, &id, &len));
	assert_int_equal(id, head);
	return len;
}

static void expect_fill(const uint8_t *p, size_t len, uint8_t c)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != c)
			fail_msg("byte %zu: %#x, want %#x", i, p[i], c);
}

static void expect_counter(const uint8_t *p, size_t len, uint8_t first)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != (uint8_t)(first + i))
			fail_msg("byte %zu: %#x, want %#x", i, p[i], (uint8_t)(first + i));
}

static bool needs_reset(struct fixture *x)
{
	return virtio_mmio_status(x->t) & VIRTIO_STATUS_DEVICE_NEEDS_RESET;
}

static void test_identity(void **state)
{
	struct fixture *x = *state;

	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_DEVICE_ID), VIRTIO_ID_RNG);
	fdrv_wr(x->t, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_DEVICE_FEATURES), 1); /* VERSION_1 */
	fdrv_wr(x->t, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	/* §5.4.3: no device feature bits (0..23). */
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_DEVICE_FEATURES) & 0xffffff, 0);
	/* §5.4.4: no config space; reads give 0 at any width, writes are harmless. */
	assert_int_equal(virtio_mmio_dev_ops.read(x->t, VIRTIO_MMIO_CONFIG, 8), 0);
	assert_int_equal(virtio_mmio_dev_ops.read(x->t, VIRTIO_MMIO_CONFIG + 3, 1), 0);
	virtio_mmio_dev_ops.write(x->t, VIRTIO_MMIO_CONFIG, 4, 0xffffffff);
	assert_false(needs_reset(x));
	/* One queue only. */
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_SEL, 1);
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_QUEUE_NUM_MAX), 0);
}

static void test_getrandom(void **state)
{
	struct fixture *x = *state;
	struct fake_buf b = { DATA_GPA, 4096, true };
	uint8_t *p = fake_mem_ptr(&x->mem, DATA_GPA, 4096);
	uint64_t irqs = x->irq.count;
	unsigned zeros = 0;

	memset(p, 0, 4096);
	assert_int_equal(run(x, &b, 1), 4096);
	for (unsigned i = 0; i < 4096; i++)
		zeros += p[i] == 0;
	assert_true(zeros < 64); /* ~16 expected from random bytes */
	assert_int_equal(virtio_rng_bytes(x->rng), 4096);
	assert_int_equal(x->irq.count, irqs + 1);
	assert_true(fdrv_rd(x->t, VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_INT_USED);
}

/* The "entropy" metrics (docs/metrics.md): bytes given, queue events, source failures. */
static void test_metrics(void **state)
{
	struct fixture *x = *state;
	struct fake_buf b = { DATA_GPA, 4096, true };
	json_t *m = metrics_json_take(); /* zero the deltas */

	assert_non_null(m);
	json_decref(m);
	assert_int_equal(run(x, &b, 1), 4096);
	virtio_rng_set_source(x->rng, eio_source);
	assert_int_equal(run(x, &b, 1), 0);
	m = metrics_json_take();
	assert_non_null(m);
	assert_int_equal(metrics_json_get(m, "entropy", "entropy_bytes"), 4096);
	assert_int_equal(metrics_json_get(m, "entropy", "entropy_event_count"), 2);
	assert_int_equal(metrics_json_get(m, "entropy", "host_rng_fails"), 1);
	json_decref(m);
}

static void test_segments(void **state)
{
	struct fixture *x = *state;
	struct fake_buf bufs[] = {
		{ DATA_GPA, 100, true },
		{ DATA_GPA + 0x1000, 1, true },
		{ DATA_GPA + 0x2000, 5000, true },
	};

	use_pattern(x, 0, 0);
	memset(fake_mem_ptr(&x->mem, DATA_GPA, 0x4000), 0xee, 0x4000);
	assert_int_equal(run(x, bufs, 3), 5101);
	expect_counter(fake_mem_ptr(&x->mem, DATA_GPA, 100), 100, 0);
	expect_counter(fake_mem_ptr(&x->mem, DATA_GPA + 0x1000, 1), 1, 100);
	expect_counter(fake_mem_ptr(&x->mem, DATA_GPA + 0x2000, 5000), 5000, 101);
	/* Nothing written past any buffer. */
	expect_fill(fake_mem_ptr(&x->mem, DATA_GPA + 100, 0x1000 - 100), 0x1000 - 100, 0xee);
	expect_fill(fake_mem_ptr(&x->mem, DATA_GPA + 0x1001, 0x1000 - 1), 0x1000 - 1, 0xee);
	expect_fill(fake_mem_ptr(&x->mem, DATA_GPA + 0x2000 + 5000, 100), 100, 0xee);
}

static void test_oversized_buffer_capped(void **state)
{
	struct fixture *x = *state;
	struct fake_buf b = { BIG_GPA, RAM_SIZE - BIG_GPA, true };
	uint8_t *p = fake_mem_ptr(&x->mem, BIG_GPA, RAM_SIZE - BIG_GPA);

	use_pattern(x, 0, 0);
	memset(p, 0xee, RAM_SIZE - BIG_GPA);
	assert_int_equal(run(x, &b, 1), VIRTIO_RNG_MAX_REQUEST);
	expect_counter(p, 256, 0);
	/* Past the cap the buffer is untouched. */
	expect_fill(p + VIRTIO_RNG_MAX_REQUEST, RAM_SIZE - BIG_GPA - VIRTIO_RNG_MAX_REQUEST, 0xee);
	assert_false(needs_reset(x));
}

static void test_short_reads(void **state)
{
	struct fixture *x = *state;
	struct fake_buf b = { DATA_GPA, 1000, true };

	use_pattern(x, 7, 0);
	assert_int_equal(run(x, &b, 1), 1000);
	expect_counter(fake_mem_ptr(&x->mem, DATA_GPA, 1000), 1000, 0);
	assert_int_equal(calls, (1000 + 6) / 7);
}

static void test_eintr_retried(void **state)
{
	struct fixture *x = *state;
	struct fake_buf b = { DATA_GPA, 64, true };

	use_pattern(x, 0, 2);
	assert_int_equal(run(x, &b, 1), 64);
	expect_counter(fake_mem_ptr(&x->mem, DATA_GPA, 64), 64, 0);
	/* A source stuck in EINTR: bounded retries, then an empty answer. */
	use_pattern(x, 0, -1);
	assert_int_equal(run(x, &b, 1), 0);
	assert_true(calls < 20);
	assert_false(needs_reset(x));
}

static void test_source_errors(void **state)
{
	struct fixture *x = *state;
	struct fake_buf b = { DATA_GPA, 64, true };
	uint8_t *p = fake_mem_ptr(&x->mem, DATA_GPA, 64);

	memset(p, 0xee, 64);
	calls = 0;
	virtio_rng_set_source(x->rng, eio_source);
	assert_int_equal(run(x, &b, 1), 0);
	virtio_rng_set_source(x->rng, zero_source);
	assert_int_equal(run(x, &b, 1), 0);
	virtio_rng_set_source(x->rng, liar_source);
	assert_int_equal(run(x, &b, 1), 0);
	assert_int_equal(calls, 3);
	expect_fill(p, 64, 0xee);
	assert_false(needs_reset(x));
	/* Back to getrandom(). */
	virtio_rng_set_source(x->rng, NULL);
	assert_int_equal(run(x, &b, 1), 64);
}

/* §5.4.6.1: readable buffers are a driver error: answered empty, nothing touched. */
static void test_readable_buffer(void **state)
{
	struct fixture *x = *state;
	struct fake_buf ro = { DATA_GPA, 64, false };
	struct fake_buf mixed[] = { { DATA_GPA, 64, false }, { DATA_GPA + 0x1000, 64, true } };

	use_pattern(x, 0, 0);
	memset(fake_mem_ptr(&x->mem, DATA_GPA, 0x2000), 0xee, 0x2000);
	assert_int_equal(run(x, &ro, 1), 0);
	assert_int_equal(run(x, mixed, 2), 0);
	expect_fill(fake_mem_ptr(&x->mem, DATA_GPA, 0x2000), 0x2000, 0xee);
	assert_int_equal(calls, 0);
	assert_false(needs_reset(x));
	assert_int_equal(virtio_rng_bytes(x->rng), 0);
}

static void test_zero_length_buffer(void **state)
{
	struct fixture *x = *state;
	struct fake_buf b = { DATA_GPA, 0, true };

	use_pattern(x, 0, 0);
	assert_int_equal(run(x, &b, 1), 0);
	assert_int_equal(calls, 0);
}

/* A batch of requests in one notification is all answered, in order. */
static void test_batch(void **state)
{
	struct fixture *x = *state;
	uint16_t heads[QSIZE];
	uint32_t id, len;

	use_pattern(x, 0, 0);
	for (unsigned i = 0; i < QSIZE; i++) {
		struct fake_buf b = { DATA_GPA + 0x100 * i, 16 + i, true };

		heads[i] = fake_vq_add_chain(&x->f, &b, 1);
	}
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	for (unsigned i = 0; i < QSIZE; i++) {
		assert_true(fake_vq_get_used(&x->f, &id, &len));
		assert_int_equal(id, heads[i]);
		assert_int_equal(len, 16 + i);
	}
	assert_false(fake_vq_get_used(&x->f, &id, &len));
}

/* With EVENT_IDX (offered, and accepted by bring_up) the device interrupts exactly when the
 * used index passes the driver's used_event (§2.7.10), whatever the batch size. */
static void test_interrupts_follow_used_event(void **state)
{
	struct fixture *x = *state;
	static const uint16_t events[] = { 0, 1, 2, 3, 5, 7, 8, 20, 0xffff };
	uint32_t id, len;

	use_pattern(x, 0, 0);
	for (unsigned i = 0; i < sizeof(events) / sizeof(events[0]); i++) {
		uint16_t old = fake_vq_used_idx(&x->f), now;
		uint64_t before = x->irq.count;
		unsigned batch = 1 + i % 3;

		fake_vq_set_used_event(&x->f, (uint16_t)(old + events[i]));
		for (unsigned k = 0; k < batch; k++) {
			struct fake_buf b = { DATA_GPA + 0x40 * k, 8, true };

			fake_vq_add_chain(&x->f, &b, 1);
		}
		fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
		now = fake_vq_used_idx(&x->f);
		assert_int_equal((uint16_t)(now - old), batch);
		while (fake_vq_get_used(&x->f, &id, &len))
			;
		assert_int_equal(x->irq.count > before,
				 fdrv_event_due((uint16_t)(old + events[i]), now, old));
	}
}

static void test_indirect(void **state)
{
	struct fixture *x = *state;
	uint32_t id, len;

	use_pattern(x, 0, 0);
	fake_desc_write(&x->mem, TABLE_GPA, 0, DATA_GPA, 32, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT,
			1);
	fake_desc_write(&x->mem, TABLE_GPA, 1, DATA_GPA + 0x1000, 32, VIRTQ_DESC_F_WRITE, 0);
	fake_vq_set_desc(&x->f, 0, TABLE_GPA, 32, VIRTQ_DESC_F_INDIRECT, 0);
	fake_vq_publish(&x->f, 0);
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_true(fake_vq_get_used(&x->f, &id, &len));
	assert_int_equal(id, 0);
	assert_int_equal(len, 64);
	expect_counter(fake_mem_ptr(&x->mem, DATA_GPA + 0x1000, 32), 32, 32);
}

/* A descriptor whose length runs past the end of guest RAM: the device stops (NEEDS_RESET)
 * instead of writing out of bounds, and works again after a driver reset. */
static void test_chain_lies_about_length(void **state)
{
	struct fixture *x = *state;
	struct fake_buf b = { BIG_GPA, RAM_SIZE - BIG_GPA + 4096, true };
	struct fake_buf ok = { DATA_GPA, 16, true };
	uint32_t id, len;

	use_pattern(x, 0, 0);
	fake_vq_add_chain(&x->f, &b, 1);
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_false(fake_vq_get_used(&x->f, &id, &len));
	assert_true(needs_reset(x));
	assert_int_equal(calls, 0);
	/* Nothing more is processed until the reset. */
	fake_vq_add_chain(&x->f, &ok, 1);
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_false(fake_vq_get_used(&x->f, &id, &len));
	bring_up(x, true);
	assert_false(needs_reset(x));
	assert_int_equal(run(x, &ok, 1), 16);
}

/* A descriptor loop: bounded walk, NEEDS_RESET. */
static void test_descriptor_loop(void **state)
{
	struct fixture *x = *state;
	uint32_t id, len;

	fake_vq_set_desc(&x->f, 0, DATA_GPA, 16, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
	fake_vq_set_desc(&x->f, 1, DATA_GPA, 16, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 0);
	fake_vq_publish(&x->f, 0);
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_false(fake_vq_get_used(&x->f, &id, &len));
	assert_true(needs_reset(x));
}

static void test_no_queue_at_driver_ok(void **state)
{
	struct fixture *x = *state;

	bring_up(x, false);
	assert_true(needs_reset(x));
	/* Notifications for missing queues are ignored. */
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 5);
	bring_up(x, true);
	assert_false(needs_reset(x));
}

/* Snapshots.  Quiesce and save the transport (the device's record follows its own) into `w`,
 * parsed into `f`. */
static void snap_save(struct fixture *x, struct snap_writer *w, struct snap_file *f)
{
	char why[128];

	snap_writer_init(w);
	virtio_mmio_dev_ops.quiesce(x->t);
	assert_int_equal(virtio_mmio_dev_ops.save(x->t, w, "virtio-rng"), 0);
	assert_int_equal(snap_writer_finish(w), 0);
	assert_int_equal(snap_file_parse(f, w->buf, w->len, why, sizeof(why)), 0);
}

/* A copy of `f` in `w`/`out` with its record of `type` replaced by `payload` of `len` bytes and
 * `version` (left out when payload is NULL). */
static void replace_record(const struct snap_file *f, enum snap_rec_type type, uint16_t version,
			   const void *payload, size_t len, struct snap_writer *w,
			   struct snap_file *out)
{
	struct snap_reader r;

	snap_writer_init(w);
	for (uint32_t i = 0; snap_file_record(f, i, &r) == 0; i++) {
		if (r.type == type) {
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

/* The device of a restored VM: new, over the same guest memory, nothing set up. */
static void new_device(struct fixture *x)
{
	virtio_mmio_destroy(x->t);
	x->irq = (struct irq_line){ .fd = -1 };
	assert_int_equal(virtio_rng_create(&x->rng), 0);
	virtio_rng_set_source(x->rng, pattern_source);
	assert_int_equal(virtio_mmio_create(&x->mem.gm, &x->irq, &virtio_rng_ops, x->rng, &x->t),
			 0);
}

static void expect_untouched(struct fixture *x)
{
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_STATUS), 0);
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_QUEUE_READY), 0);
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	assert_int_equal(x->irq.count, 0);
	assert_int_equal(virtio_rng_bytes(x->rng), 0);
}

/* Requests answered before the snapshot stay answered, the ones the driver made available and
 * never kicked are answered once after it, in order, at the right used index. */
static void test_snapshot_round_trip(void **state)
{
	struct fixture *x = *state;
	struct fake_buf b1 = { DATA_GPA, 16, true }, b2 = { DATA_GPA + 0x100, 16, true };
	struct fake_buf b3 = { DATA_GPA + 0x200, 8, true }, b4 = { DATA_GPA + 0x300, 24, true };
	uint8_t *d = fake_mem_ptr(&x->mem, DATA_GPA, 0x400);
	struct snap_writer w;
	struct snap_file f;
	struct snap_reader r;
	uint16_t h3, h4;
	uint32_t id, len;

	use_pattern(x, 0, 0);
	assert_int_equal(run(x, &b1, 1), 16);
	assert_int_equal(run(x, &b2, 1), 16);
	h3 = fake_vq_add_chain(&x->f, &b3, 1);
	h4 = fake_vq_add_chain(&x->f, &b4, 1);
	assert_int_equal(virtio_rng_bytes(x->rng), 32);
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_INT_USED);
	snap_save(x, &w, &f);
	assert_int_equal(snap_file_find(&f, SNAP_REC_VIRTIO_RNG, "virtio-rng", &r), 0);
	assert_int_equal(r.version, 1);

	new_device(x);
	assert_int_equal(virtio_mmio_dev_ops.restore(x->t, &f, "virtio-rng"), 0);
	assert_int_equal(fake_vq_used_idx(&x->f), 4);
	assert_true(fake_vq_get_used(&x->f, &id, &len));
	assert_int_equal(id, h3);
	assert_int_equal(len, 8);
	assert_true(fake_vq_get_used(&x->f, &id, &len));
	assert_int_equal(id, h4);
	assert_int_equal(len, 24);
	assert_false(fake_vq_get_used(&x->f, &id, &len));
	expect_counter(d, 16, 0); /* untouched */
	expect_counter(d + 0x100, 16, 16);
	expect_counter(d + 0x200, 8, 32);
	expect_counter(d + 0x300, 24, 40);
	assert_int_equal(virtio_rng_bytes(x->rng), 64);
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_STATUS), 0x0f);
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_INT_USED);
	assert_true(x->irq.count >= 1);
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_SEL, 0);
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_QUEUE_READY), 1);
	/* Next request, next index. */
	assert_int_equal(run(x, &b1, 1), 16);
	assert_int_equal(fake_vq_used_idx(&x->f), 5);
	expect_counter(d, 16, 64);
	assert_int_equal(virtio_rng_bytes(x->rng), 80);
	snap_writer_free(&w);
}

/* Records that do not fit are refused, the new device and its transport left as created. */
static void test_snapshot_refusals(void **state)
{
	struct fixture *x = *state;
	struct fake_buf b = { DATA_GPA, 16, true };
	struct snap_writer w, w2;
	struct snap_file f, f2;
	struct snap_reader r;
	uint8_t ok[8], bad[9], mmio[512];

	use_pattern(x, 0, 0);
	assert_int_equal(run(x, &b, 1), 16);
	snap_save(x, &w, &f);
	new_device(x);
	virtio_put_le(ok, 16, 8);
	memcpy(bad, ok, sizeof(ok));
	bad[8] = 0;
	replace_record(&f, SNAP_REC_VIRTIO_RNG, 2, ok, sizeof(ok), &w2, &f2); /* version */
	assert_int_equal(virtio_mmio_dev_ops.restore(x->t, &f2, "virtio-rng"), -EINVAL);
	expect_untouched(x);
	snap_writer_free(&w2);
	replace_record(&f, SNAP_REC_VIRTIO_RNG, 1, ok, 7, &w2, &f2); /* truncated */
	assert_int_equal(virtio_mmio_dev_ops.restore(x->t, &f2, "virtio-rng"), -EINVAL);
	expect_untouched(x);
	snap_writer_free(&w2);
	replace_record(&f, SNAP_REC_VIRTIO_RNG, 1, bad, sizeof(bad), &w2, &f2); /* overlong */
	assert_int_equal(virtio_mmio_dev_ops.restore(x->t, &f2, "virtio-rng"), -EINVAL);
	expect_untouched(x);
	snap_writer_free(&w2);
	replace_record(&f, SNAP_REC_VIRTIO_RNG, 1, NULL, 0, &w2, &f2); /* missing */
	assert_int_equal(virtio_mmio_dev_ops.restore(x->t, &f2, "virtio-rng"), -EINVAL);
	expect_untouched(x);
	snap_writer_free(&w2);
	/* The transport record of a disk: its device id is the first field. */
	assert_int_equal(snap_file_find(&f, SNAP_REC_VIRTIO_MMIO, "virtio-rng", &r), 0);
	assert_true(r.len <= sizeof(mmio));
	memcpy(mmio, r.p, r.len);
	assert_int_equal(virtio_get_le(mmio, 4), VIRTIO_ID_RNG);
	virtio_put_le(mmio, VIRTIO_ID_BLOCK, 4);
	replace_record(&f, SNAP_REC_VIRTIO_MMIO, 1, mmio, r.len, &w2, &f2);
	assert_int_equal(virtio_mmio_dev_ops.restore(x->t, &f2, "virtio-rng"), -EINVAL);
	expect_untouched(x);
	snap_writer_free(&w2);
	/* The encodings above are the real ones: put back, they load. */
	virtio_put_le(mmio, VIRTIO_ID_RNG, 4);
	replace_record(&f, SNAP_REC_VIRTIO_MMIO, 1, mmio, r.len, &w2, &f2);
	snap_writer_free(&w);
	replace_record(&f2, SNAP_REC_VIRTIO_RNG, 1, ok, sizeof(ok), &w, &f);
	assert_int_equal(virtio_mmio_dev_ops.restore(x->t, &f, "virtio-rng"), 0);
	assert_int_equal(virtio_rng_bytes(x->rng), 16);
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_STATUS), 0x0f);
	snap_writer_free(&w2);
	snap_writer_free(&w);
}

/* Rate limiter (fake clock): 1000 bytes per second.  A request beyond the budget stays in the
 * ring until the limiter's timer fires, and then completes in full. */
static uint64_t rl_now;

static uint64_t rl_clock(void)
{
	return rl_now;
}

static void test_ratelimit(void **state)
{
	struct fixture *x = *state;
	struct ratelimit_cfg c = { .bandwidth = { 1000, 0, 1000 } };
	struct ratelimit_cfg none = { 0 };
	uint32_t id, len;

	rl_now = 5000000000;
	ratelimit_set_clock(rl_clock);
	use_pattern(x, 0, 0);
	assert_int_equal(virtio_rng_set_ratelimit(x->rng, &c), 0);
	for (unsigned i = 0; i < 3; i++) {
		struct fake_buf b = { DATA_GPA + 0x1000u * i, 400, true };

		fake_vq_add_chain(&x->f, &b, 1);
	}
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(fake_vq_used_idx(&x->f), 2);
	assert_int_equal(virtio_rng_bytes(x->rng), 800);
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(fake_vq_used_idx(&x->f), 2);
	rl_now += 199000000; /* 999 bytes' worth in the bucket: not yet */
	virtio_rng_ratelimit_fire(x->rng);
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(fake_vq_used_idx(&x->f), 2);
	rl_now += 1000000;
	virtio_rng_ratelimit_fire(x->rng);
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(fake_vq_used_idx(&x->f), 3);
	for (unsigned i = 0; i < 3; i++) {
		assert_true(fake_vq_get_used(&x->f, &id, &len));
		assert_int_equal(len, 400);
	}
	assert_int_equal(virtio_rng_bytes(x->rng), 1200);
	/* Held again, then released by removing the limit. */
	for (unsigned i = 0; i < 2; i++) {
		struct fake_buf b = { DATA_GPA + 0x1000u * i, 400, true };

		fake_vq_add_chain(&x->f, &b, 1);
	}
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(fake_vq_used_idx(&x->f), 3);
	assert_int_equal(virtio_rng_set_ratelimit(x->rng, &none), 0);
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(fake_vq_used_idx(&x->f), 5);
	ratelimit_set_clock(NULL);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_identity),
		T(test_getrandom),
		T(test_metrics),
		T(test_segments),
		T(test_ratelimit),
		T(test_oversized_buffer_capped),
		T(test_short_reads),
		T(test_eintr_retried),
		T(test_source_errors),
		T(test_readable_buffer),
		T(test_zero_length_buffer),
		T(test_batch),
		T(test_interrupts_follow_used_event),
		T(test_indirect),
		T(test_chain_lies_about_length),
		T(test_descriptor_loop),
		T(test_no_queue_at_driver_ok),
		T(test_snapshot_round_trip),
		T(test_snapshot_refusals),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
