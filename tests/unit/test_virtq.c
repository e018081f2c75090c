/* Split virtqueue (virtio 1.2 §2.7) walked over fake guest memory, including hostile chains. */
#include "devices/virtio/virtio.h"
#include "devices/virtio/virtq.h"
#include "fake_virtq.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <cmocka.h>

#define RAM_SIZE  (1u << 20)
#define QSIZE	  8
#define DESC_GPA  0x1000
#define AVAIL_GPA 0x2000
#define USED_GPA  0x3000
#define TABLE_GPA 0x8000 /* indirect tables */
#define DATA_GPA  0x10000

struct fixture {
	struct fake_mem mem;
	struct fake_vq f;
	struct virtq vq;
};

static struct virtq_elem elem; /* 16 KiB: keep it off the stack */

static int setup(void **state)
{
	struct fixture *x = calloc(1, sizeof(*x));

	fake_mem_init(&x->mem, RAM_SIZE);
	fake_vq_init(&x->f, &x->mem, QSIZE, DESC_GPA, AVAIL_GPA, USED_GPA);
	assert_int_equal(virtq_setup(&x->vq, &x->mem.gm, QSIZE, DESC_GPA, AVAIL_GPA, USED_GPA), 0);
	*state = x;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *x = *state;

	fake_mem_free(&x->mem);
	free(x);
	return 0;
}

static void test_ring_sizes(void **state)
{
	(void)state;
	assert_int_equal(virtq_desc_bytes(256), 4096);
	assert_int_equal(virtq_avail_bytes(256), 6 + 512);
	assert_int_equal(virtq_used_bytes(256), 6 + 2048);
	assert_true(virtq_size_valid(1, 256));
	assert_true(virtq_size_valid(256, 256));
	assert_false(virtq_size_valid(0, 256));
	assert_false(virtq_size_valid(3, 256));
	assert_false(virtq_size_valid(512, 256));
	assert_false(virtq_size_valid(65536, 65536));
	assert_true(virtq_size_valid(32768, 65536));
}

static void test_setup_rejects(void **state)
{
	struct fixture *x = *state;
	struct virtq vq;

	/* Size: zero, not a power of two. */
	assert_int_equal(virtq_setup(&vq, &x->mem.gm, 0, DESC_GPA, AVAIL_GPA, USED_GPA), -EINVAL);
	assert_int_equal(virtq_setup(&vq, &x->mem.gm, 6, DESC_GPA, AVAIL_GPA, USED_GPA), -EINVAL);
	assert_false(vq.ready);
	/* Alignment (§2.7): 16 / 2 / 4. */
	assert_int_equal(virtq_setup(&vq, &x->mem.gm, 8, DESC_GPA + 8, AVAIL_GPA, USED_GPA),
			 -EINVAL);
	assert_int_equal(virtq_setup(&vq, &x->mem.gm, 8, DESC_GPA, AVAIL_GPA + 1, USED_GPA),
			 -EINVAL);
	assert_int_equal(virtq_setup(&vq, &x->mem.gm, 8, DESC_GPA, AVAIL_GPA, USED_GPA + 2),
			 -EINVAL);
	/* Rings that are outside RAM or run off its end. */
	assert_int_equal(virtq_setup(&vq, &x->mem.gm, 8, RAM_SIZE, AVAIL_GPA, USED_GPA), -EINVAL);
	assert_int_equal(virtq_setup(&vq, &x->mem.gm, 8, RAM_SIZE - 64, AVAIL_GPA, USED_GPA),
			 -EINVAL);
	assert_int_equal(virtq_setup(&vq, &x->mem.gm, 8, DESC_GPA, RAM_SIZE - 16, USED_GPA),
			 -EINVAL);
	assert_int_equal(virtq_setup(&vq, &x->mem.gm, 8, DESC_GPA, AVAIL_GPA, RAM_SIZE - 68),
			 -EINVAL);
	assert_int_equal(
		virtq_setup(&vq, &x->mem.gm, 8, DESC_GPA, AVAIL_GPA, 0xfffffffffffffff0ull),
		-EINVAL);
	/* Exactly at the end is fine: used ring of 8 is 70 bytes. */
	assert_int_equal(virtq_setup(&vq, &x->mem.gm, 8, DESC_GPA, AVAIL_GPA, RAM_SIZE - 72), 0);
	assert_true(vq.ready);
}

static void test_empty(void **state)
{
	struct fixture *x = *state;

	assert_int_equal(virtq_pop(&x->vq, &elem), 0);
	assert_int_equal(virtq_pop(&x->vq, &elem), 0);
}

static void test_not_ready(void **state)
{
	struct virtq vq;

	(void)state;
	virtq_reset(&vq);
	assert_int_equal(virtq_pop(&vq, &elem), -EIO);
	virtq_push(&vq, 0, 0); /* ignored, no crash */
	assert_false(virtq_should_notify(&vq));
}

static void test_normal_chain(void **state)
{
	struct fixture *x = *state;
	struct fake_buf bufs[] = {
		{ DATA_GPA, 16, false },
		{ DATA_GPA + 0x100, 32, false },
		{ DATA_GPA + 0x1000, 512, true },
		{ DATA_GPA + 0x2000, 1, true },
	};
	uint32_t id, len;
	uint16_t head = fake_vq_add_chain(&x->f, bufs, 4);

	assert_int_equal(virtq_pop(&x->vq, &elem), 1);
	assert_int_equal(elem.head, head);
	assert_int_equal(elem.nr_out, 2);
	assert_int_equal(elem.nr_in, 2);
	assert_int_equal(elem.out_len, 48);
	assert_int_equal(elem.in_len, 513);
	assert_ptr_equal(elem.iov[0].iov_base, x->mem.buf + DATA_GPA);
	assert_int_equal(elem.iov[1].iov_len, 32);
	assert_ptr_equal(elem.iov[2].iov_base, x->mem.buf + DATA_GPA + 0x1000);
	assert_ptr_equal(elem.iov[3].iov_base, x->mem.buf + DATA_GPA + 0x2000);
	assert_int_equal(virtq_pop(&x->vq, &elem), 0);

	virtq_push(&x->vq, head, 513);
	assert_true(fake_vq_get_used(&x->f, &id, &len));
	assert_int_equal(id, head);
	assert_int_equal(len, 513);
	assert_false(fake_vq_get_used(&x->f, &id, &len));
	assert_true(virtq_should_notify(&x->vq));
	/* Nothing new: no second interrupt. */
	assert_false(virtq_should_notify(&x->vq));
}

static void test_many_chains_wrap(void **state)
{
	struct fixture *x = *state;
	struct fake_buf b = { DATA_GPA, 64, true };
	uint32_t id, len;

	/* Start near the 16-bit wrap of the indices (§2.7.6: idx wraps at 65536). */
	x->vq.last_avail = 65533;
	x->vq.used_idx = 65533;
	x->f.used_seen = 65533;
	fake_vq_set_avail_idx(&x->f, 65533);
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < QSIZE; i++)
			fake_vq_add_chain(&x->f, &b, 1);
		for (int i = 0; i < QSIZE; i++) {
			assert_int_equal(virtq_pop(&x->vq, &elem), 1);
			assert_int_equal(elem.in_len, 64);
			virtq_push(&x->vq, elem.head, 64);
		}
		assert_int_equal(virtq_pop(&x->vq, &elem), 0);
		for (int i = 0; i < QSIZE; i++) {
			assert_true(fake_vq_get_used(&x->f, &id, &len));
			assert_int_equal(len, 64);
		}
	}
	assert_false(x->vq.broken);
}

static void test_zero_length_skipped(void **state)
{
	struct fixture *x = *state;
	struct fake_buf bufs[] = { { DATA_GPA, 16, false },
				   { 0, 0, false },
				   { DATA_GPA, 1, true } };

	fake_vq_add_chain(&x->f, bufs, 3);
	assert_int_equal(virtq_pop(&x->vq, &elem), 1);
	assert_int_equal(elem.nr_out, 1);
	assert_int_equal(elem.nr_in, 1);
}

static void expect_broken(struct fixture *x, int err)
{
	assert_int_equal(virtq_pop(&x->vq, &elem), err);
	assert_true(x->vq.broken);
	/* Stopped until reset: nothing more is popped, nothing pushed. */
	assert_int_equal(virtq_pop(&x->vq, &elem), -EIO);
}

static void test_loop_in_chain(void **state)
{
	struct fixture *x = *state;

	fake_vq_set_desc(&x->f, 0, DATA_GPA, 16, VIRTQ_DESC_F_NEXT, 1);
	fake_vq_set_desc(&x->f, 1, DATA_GPA, 16, VIRTQ_DESC_F_NEXT, 2);
	fake_vq_set_desc(&x->f, 2, DATA_GPA, 16, VIRTQ_DESC_F_NEXT, 0);
	fake_vq_publish(&x->f, 0);
	expect_broken(x, -EINVAL);
}

static void test_self_loop(void **state)
{
	struct fixture *x = *state;

	fake_vq_set_desc(&x->f, 3, DATA_GPA, 16, VIRTQ_DESC_F_NEXT, 3);
	fake_vq_publish(&x->f, 3);
	expect_broken(x, -EINVAL);
}

static void test_chain_of_queue_size_ok(void **state)
{
	struct fixture *x = *state;
	struct fake_buf bufs[QSIZE];

	for (int i = 0; i < QSIZE; i++)
		bufs[i] = (struct fake_buf){ DATA_GPA + 16u * i, 16, false };
	fake_vq_add_chain(&x->f, bufs, QSIZE);
	assert_int_equal(virtq_pop(&x->vq, &elem), 1);
	assert_int_equal(elem.nr_out, QSIZE);
}

static void test_next_out_of_range(void **state)
{
	struct fixture *x = *state;

	fake_vq_set_desc(&x->f, 0, DATA_GPA, 16, VIRTQ_DESC_F_NEXT, QSIZE);
	fake_vq_publish(&x->f, 0);
	expect_broken(x, -EINVAL);
}

static void test_head_out_of_range(void **state)
{
	struct fixture *x = *state;

	fake_vq_publish(&x->f, QSIZE + 3);
	expect_broken(x, -EINVAL);
}

static void test_addr_out_of_ram(void **state)
{
	struct fixture *x = *state;

	fake_vq_set_desc(&x->f, 0, RAM_SIZE, 16, 0, 0);
	fake_vq_publish(&x->f, 0);
	expect_broken(x, -EFAULT);
}

static void test_addr_crosses_end(void **state)
{
	struct fixture *x = *state;

	fake_vq_set_desc(&x->f, 0, RAM_SIZE - 8, 16, VIRTQ_DESC_F_WRITE, 0);
	fake_vq_publish(&x->f, 0);
	expect_broken(x, -EFAULT);
}

static void test_addr_overflows(void **state)
{
	struct fixture *x = *state;

	/* addr + len wraps past 2^64 back into RAM. */
	fake_vq_set_desc(&x->f, 0, 0xfffffffffffff000ull, 0x2000, 0, 0);
	fake_vq_publish(&x->f, 0);
	expect_broken(x, -EFAULT);
}

static void test_huge_length(void **state)
{
	struct fixture *x = *state;

	fake_vq_set_desc(&x->f, 0, DATA_GPA, 0xffffffffu, VIRTQ_DESC_F_WRITE, 0);
	fake_vq_publish(&x->f, 0);
	expect_broken(x, -EFAULT);
}

/* Chains whose lengths add up past 4 GiB (used.len is 32 bits).  Needs > 4 GiB of RAM, so map
 * it sparse: nothing is touched. */
static void test_total_length_overflow(void **state)
{
	uint64_t big = 5ull << 30;
	void *map = mmap(NULL, big, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	struct fake_mem m;
	struct fake_vq f;
	struct virtq vq;

	(void)state;
	if (map == MAP_FAILED)
		skip();
	/* Rings in the first page of the big mapping. */
	m.buf = map;
	m.size = big;
	gmem_init_flat(&m.gm, map, big);
	fake_vq_init(&f, &m, QSIZE, 0x0, 0x100, 0x200);
	assert_int_equal(virtq_setup(&vq, &m.gm, QSIZE, 0x0, 0x100, 0x200), 0);
	fake_vq_set_desc(&f, 0, 0x1000, 0x80000000u, VIRTQ_DESC_F_NEXT, 1);
	fake_vq_set_desc(&f, 1, 0x1000, 0x80000000u, VIRTQ_DESC_F_NEXT, 2);
	fake_vq_set_desc(&f, 2, 0x1000, 0x10, 0, 0);
	fake_vq_publish(&f, 0);
	assert_int_equal(virtq_pop(&vq, &elem), -EINVAL);
	assert_true(vq.broken);
	/* Just under the limit is fine. */
	fake_vq_init(&f, &m, QSIZE, 0x0, 0x100, 0x200);
	assert_int_equal(virtq_setup(&vq, &m.gm, QSIZE, 0x0, 0x100, 0x200), 0);
	fake_vq_set_desc(&f, 0, 0x1000, 0x80000000u, VIRTQ_DESC_F_NEXT, 1);
	fake_vq_set_desc(&f, 1, 0x1000, 0x7fffffffu, 0, 0);
	fake_vq_publish(&f, 0);
	assert_int_equal(virtq_pop(&vq, &elem), 1);
	assert_int_equal(elem.out_len, 0xffffffffu);
	munmap(map, big);
}

static void test_readable_after_writable(void **state)
{
	struct fixture *x = *state;
	struct fake_buf bufs[] = { { DATA_GPA, 16, true }, { DATA_GPA, 16, false } };

	fake_vq_add_chain(&x->f, bufs, 2);
	expect_broken(x, -EINVAL);
}

static void test_avail_idx_jump(void **state)
{
	struct fixture *x = *state;

	fake_vq_set_avail_idx(&x->f, QSIZE + 1);
	expect_broken(x, -EINVAL);
}

static void test_avail_idx_full_ok(void **state)
{
	struct fixture *x = *state;
	struct fake_buf b = { DATA_GPA, 16, false };

	for (int i = 0; i < QSIZE; i++)
		fake_vq_add_chain(&x->f, &b, 1);
	for (int i = 0; i < QSIZE; i++)
		assert_int_equal(virtq_pop(&x->vq, &elem), 1);
	assert_int_equal(virtq_pop(&x->vq, &elem), 0);
}

static void test_indirect(void **state)
{
	struct fixture *x = *state;
	uint32_t id, len;

	virtq_set_features(&x->vq, VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC));
	fake_desc_write(&x->mem, TABLE_GPA, 0, DATA_GPA, 16, VIRTQ_DESC_F_NEXT, 2);
	fake_desc_write(&x->mem, TABLE_GPA, 2, DATA_GPA + 0x100, 512,
			VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1);
	fake_desc_write(&x->mem, TABLE_GPA, 1, DATA_GPA + 0x400, 1, VIRTQ_DESC_F_WRITE, 0);
	/* §2.7.5.3.1: the device ignores WRITE on the descriptor naming the table. */
	fake_vq_set_desc(&x->f, 5, TABLE_GPA, 48, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_WRITE, 0);
	fake_vq_publish(&x->f, 5);
	assert_int_equal(virtq_pop(&x->vq, &elem), 1);
	assert_int_equal(elem.head, 5);
	assert_int_equal(elem.nr_out, 1);
	assert_int_equal(elem.nr_in, 2);
	assert_int_equal(elem.in_len, 513);
	assert_ptr_equal(elem.iov[2].iov_base, x->mem.buf + DATA_GPA + 0x400);
	virtq_push(&x->vq, 5, 513);
	assert_true(fake_vq_get_used(&x->f, &id, &len));
	assert_int_equal(id, 5);
}

static void test_indirect_after_direct(void **state)
{
	struct fixture *x = *state;

	virtq_set_features(&x->vq, VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC));
	fake_desc_write(&x->mem, TABLE_GPA, 0, DATA_GPA, 1, VIRTQ_DESC_F_WRITE, 0);
	fake_vq_set_desc(&x->f, 0, DATA_GPA, 16, VIRTQ_DESC_F_NEXT, 1);
	fake_vq_set_desc(&x->f, 1, TABLE_GPA, 16, VIRTQ_DESC_F_INDIRECT, 0);
	fake_vq_publish(&x->f, 0);
	assert_int_equal(virtq_pop(&x->vq, &elem), 1);
	assert_int_equal(elem.nr_out, 1);
	assert_int_equal(elem.nr_in, 1);
}

static void indirect_case(struct fixture *x, uint64_t table, uint32_t len, uint16_t flags, int err)
{
	virtq_set_features(&x->vq, VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC));
	fake_vq_set_desc(&x->f, 0, table, len, flags, 0);
	fake_vq_publish(&x->f, 0);
	expect_broken(x, err);
}

static void test_indirect_not_negotiated(void **state)
{
	struct fixture *x = *state;

	fake_desc_write(&x->mem, TABLE_GPA, 0, DATA_GPA, 16, 0, 0);
	fake_vq_set_desc(&x->f, 0, TABLE_GPA, 16, VIRTQ_DESC_F_INDIRECT, 0);
	fake_vq_publish(&x->f, 0);
	expect_broken(x, -EINVAL);
}

static void test_indirect_bad_len(void **state)
{
	indirect_case(*state, TABLE_GPA, 24, VIRTQ_DESC_F_INDIRECT, -EINVAL);
}

static void test_indirect_zero_len(void **state)
{
	indirect_case(*state, TABLE_GPA, 0, VIRTQ_DESC_F_INDIRECT, -EINVAL);
}

static void test_indirect_with_next(void **state)
{
	indirect_case(*state, TABLE_GPA, 16, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, -EINVAL);
}

static void test_indirect_out_of_ram(void **state)
{
	indirect_case(*state, RAM_SIZE - 16, 32, VIRTQ_DESC_F_INDIRECT, -EFAULT);
}

static void test_indirect_huge(void **state)
{
	indirect_case(*state, TABLE_GPA, 0xfffffff0u, VIRTQ_DESC_F_INDIRECT, -EINVAL);
}

static void test_indirect_too_many_entries(void **state)
{
	indirect_case(*state, TABLE_GPA, 16u * (VIRTQ_ELEM_MAX_SEGS + 1), VIRTQ_DESC_F_INDIRECT,
		      -EINVAL);
}

static void test_indirect_nested(void **state)
{
	struct fixture *x = *state;

	fake_desc_write(&x->mem, TABLE_GPA, 0, DATA_GPA, 16, VIRTQ_DESC_F_NEXT, 1);
	fake_desc_write(&x->mem, TABLE_GPA, 1, TABLE_GPA + 0x100, 16, VIRTQ_DESC_F_INDIRECT, 0);
	indirect_case(x, TABLE_GPA, 32, VIRTQ_DESC_F_INDIRECT, -EINVAL);
}

static void test_indirect_loop(void **state)
{
	struct fixture *x = *state;

	fake_desc_write(&x->mem, TABLE_GPA, 0, DATA_GPA, 16, VIRTQ_DESC_F_NEXT, 1);
	fake_desc_write(&x->mem, TABLE_GPA, 1, DATA_GPA, 16, VIRTQ_DESC_F_NEXT, 0);
	indirect_case(x, TABLE_GPA, 32, VIRTQ_DESC_F_INDIRECT, -EINVAL);
}

static void test_indirect_next_out_of_table(void **state)
{
	struct fixture *x = *state;

	fake_desc_write(&x->mem, TABLE_GPA, 0, DATA_GPA, 16, VIRTQ_DESC_F_NEXT, 2);
	indirect_case(x, TABLE_GPA, 32, VIRTQ_DESC_F_INDIRECT, -EINVAL);
}

static void test_indirect_bad_buffer(void **state)
{
	struct fixture *x = *state;

	fake_desc_write(&x->mem, TABLE_GPA, 0, 0xffffffffffffff00ull, 0x200, 0, 0);
	indirect_case(x, TABLE_GPA, 16, VIRTQ_DESC_F_INDIRECT, -EFAULT);
}

static void test_indirect_max_entries_ok(void **state)
{
	struct fixture *x = *state;

	for (unsigned i = 0; i < VIRTQ_ELEM_MAX_SEGS; i++)
		fake_desc_write(&x->mem, TABLE_GPA, i, DATA_GPA, 4,
				i + 1 < VIRTQ_ELEM_MAX_SEGS ? VIRTQ_DESC_F_NEXT : 0,
				(uint16_t)(i + 1));
	virtq_set_features(&x->vq, VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC));
	fake_vq_set_desc(&x->f, 0, TABLE_GPA, 16u * VIRTQ_ELEM_MAX_SEGS, VIRTQ_DESC_F_INDIRECT, 0);
	fake_vq_publish(&x->f, 0);
	assert_int_equal(virtq_pop(&x->vq, &elem), 1);
	assert_int_equal(elem.nr_out, VIRTQ_ELEM_MAX_SEGS);
	assert_int_equal(elem.out_len, 4 * VIRTQ_ELEM_MAX_SEGS);
}

static void test_reset_clears_broken(void **state)
{
	struct fixture *x = *state;

	fake_vq_publish(&x->f, QSIZE);
	expect_broken(x, -EINVAL);
	assert_int_equal(virtq_setup(&x->vq, &x->mem.gm, QSIZE, DESC_GPA, AVAIL_GPA, USED_GPA), 0);
	fake_vq_init(&x->f, &x->mem, QSIZE, DESC_GPA, AVAIL_GPA, USED_GPA);
	assert_int_equal(virtq_pop(&x->vq, &elem), 0);
}

static void test_no_interrupt_flag(void **state)
{
	struct fixture *x = *state;

	virtq_push(&x->vq, 0, 0);
	fake_vq_set_avail_flags(&x->f, VIRTQ_AVAIL_F_NO_INTERRUPT);
	assert_false(virtq_should_notify(&x->vq));
	virtq_push(&x->vq, 0, 0);
	fake_vq_set_avail_flags(&x->f, 0);
	assert_true(virtq_should_notify(&x->vq));
}

static void test_event_idx(void **state)
{
	struct fixture *x = *state;
	struct fake_buf b = { DATA_GPA, 16, false };

	virtq_set_features(&x->vq, VIRTIO_BIT(VIRTIO_F_EVENT_IDX));
	/* avail_event: after each pop, and when the ring runs dry, the device asks to be
	 * notified at its next slot. */
	assert_int_equal(virtq_pop(&x->vq, &elem), 0);
	assert_int_equal(fake_vq_avail_event(&x->f), 0);
	fake_vq_add_chain(&x->f, &b, 1);
	fake_vq_add_chain(&x->f, &b, 1);
	assert_int_equal(virtq_pop(&x->vq, &elem), 1);
	assert_int_equal(fake_vq_avail_event(&x->f), 1);
	assert_int_equal(virtq_pop(&x->vq, &elem), 1);
	assert_int_equal(virtq_pop(&x->vq, &elem), 0);
	assert_int_equal(fake_vq_avail_event(&x->f), 2);
	/* NO_INTERRUPT is ignored with EVENT_IDX; used_event rules (§2.7.10). */
	fake_vq_set_avail_flags(&x->f, VIRTQ_AVAIL_F_NO_INTERRUPT);
	fake_vq_set_used_event(&x->f, 0);
	virtq_push(&x->vq, 0, 0); /* used idx 1: first decision always notifies */
	assert_true(virtq_should_notify(&x->vq));
	fake_vq_set_used_event(&x->f, 4); /* driver wants an interrupt once idx passes 4 */
	virtq_push(&x->vq, 0, 0);	  /* 2 */
	assert_false(virtq_should_notify(&x->vq));
	virtq_push(&x->vq, 0, 0); /* 3 */
	virtq_push(&x->vq, 0, 0); /* 4 */
	assert_false(virtq_should_notify(&x->vq));
	virtq_push(&x->vq, 0, 0); /* 5: crossed used_event 4 */
	assert_true(virtq_should_notify(&x->vq));
	virtq_push(&x->vq, 0, 0); /* 6 */
	assert_false(virtq_should_notify(&x->vq));
	/* Batch jumping over used_event: 6 -> 9 with event 7. */
	fake_vq_set_used_event(&x->f, 7);
	virtq_push(&x->vq, 0, 0);
	virtq_push(&x->vq, 0, 0);
	virtq_push(&x->vq, 0, 0);
	assert_true(virtq_should_notify(&x->vq));
}

static void test_event_idx_wrap(void **state)
{
	struct fixture *x = *state;

	virtq_set_features(&x->vq, VIRTIO_BIT(VIRTIO_F_EVENT_IDX));
	x->vq.used_idx = 65534;
	x->vq.signalled_used = 65534;
	x->vq.signalled_valid = true;
	fake_vq_set_used_event(&x->f, 65535);
	virtq_push(&x->vq, 0, 0); /* 65535 */
	assert_false(virtq_should_notify(&x->vq));
	virtq_push(&x->vq, 0, 0); /* 0: passed 65535 */
	assert_true(virtq_should_notify(&x->vq));
}

static uint16_t used_flags(struct fixture *x)
{
	return *(uint16_t *)fake_mem_ptr(&x->mem, USED_GPA, 2);
}

/* Draining with notifications off and EVENT_IDX (§2.7.10): avail_event stays where it was
 * while chains are popped, so the driver does not notify for each new buffer; enabling them
 * again asks for the next slot and reports buffers that arrived meanwhile. */
static void test_notify_suppression_event_idx(void **state)
{
	struct fixture *x = *state;
	struct fake_buf b = { DATA_GPA, 16, false };

	virtq_set_features(&x->vq, VIRTIO_BIT(VIRTIO_F_EVENT_IDX));
	fake_vq_add_chain(&x->f, &b, 1);
	fake_vq_add_chain(&x->f, &b, 1);
	virtq_disable_notify(&x->vq);
	assert_int_equal(virtq_pop(&x->vq, &elem), 1);
	assert_int_equal(virtq_pop(&x->vq, &elem), 1);
	assert_int_equal(fake_vq_avail_event(&x->f), 0); /* not advanced while draining */
	assert_int_equal(virtq_pop(&x->vq, &elem), 0);
	assert_int_equal(fake_vq_avail_event(&x->f), 0); /* an empty pop does not re-arm */
	/* Flags are not the mechanism with EVENT_IDX. */
	assert_int_equal(used_flags(x), 0);
	/* Nothing new: enabling asks for slot 2 and says "sleep". */
	assert_false(virtq_enable_notify(&x->vq));
	assert_int_equal(fake_vq_avail_event(&x->f), 2);
	/* The race: the driver adds a buffer, the device enables and must see it. */
	virtq_disable_notify(&x->vq);
	fake_vq_add_chain(&x->f, &b, 1);
	assert_true(virtq_enable_notify(&x->vq));
	assert_int_equal(fake_vq_avail_event(&x->f), 2);
	assert_int_equal(virtq_pop(&x->vq, &elem), 1);
	/* Notifications on again: pop behaves as before (asks for the next slot). */
	assert_int_equal(fake_vq_avail_event(&x->f), 3);
	assert_int_equal(virtq_pop(&x->vq, &elem), 0);
	assert_false(virtq_enable_notify(&x->vq));
}

/* Without EVENT_IDX: VIRTQ_USED_F_NO_NOTIFY in the used ring's flags (§2.7.7.2). */
static void test_notify_suppression_flags(void **state)
{
	struct fixture *x = *state;
	struct fake_buf b = { DATA_GPA, 16, false };

	assert_int_equal(used_flags(x), 0);
	virtq_disable_notify(&x->vq);
	assert_int_equal(used_flags(x), VIRTQ_USED_F_NO_NOTIFY);
	fake_vq_add_chain(&x->f, &b, 1);
	assert_int_equal(virtq_pop(&x->vq, &elem), 1);
	assert_int_equal(used_flags(x), VIRTQ_USED_F_NO_NOTIFY);
	assert_false(virtq_enable_notify(&x->vq));
	assert_int_equal(used_flags(x), 0);
	virtq_disable_notify(&x->vq);
	fake_vq_add_chain(&x->f, &b, 1);
	assert_true(virtq_enable_notify(&x->vq));
	assert_int_equal(used_flags(x), 0);
	/* A reset forgets the suppression. */
	virtq_disable_notify(&x->vq);
	virtq_reset(&x->vq);
	assert_false(x->vq.notify_off);
}

/* A broken or unready queue: nothing to drain, nothing written. */
static void test_notify_suppression_broken(void **state)
{
	struct fixture *x = *state;

	fake_vq_publish(&x->f, QSIZE); /* head out of range */
	expect_broken(x, -EINVAL);
	virtq_disable_notify(&x->vq);
	assert_int_equal(used_flags(x), 0);
	assert_false(virtq_enable_notify(&x->vq));
	virtq_reset(&x->vq);
	assert_false(virtq_enable_notify(&x->vq));
}

static void test_elem_copy_helpers(void **state)
{
	struct fixture *x = *state;
	struct fake_buf bufs[] = {
		{ DATA_GPA, 3, false },
		{ DATA_GPA + 0x100, 5, false },
		{ DATA_GPA + 0x200, 2, true },
		{ DATA_GPA + 0x300, 6, true },
	};
	uint8_t out[8], *w;
	struct iovec sl[4];
	int n;

	memcpy(x->mem.buf + DATA_GPA, "abc", 3);
	memcpy(x->mem.buf + DATA_GPA + 0x100, "defgh", 5);
	fake_vq_add_chain(&x->f, bufs, 4);
	assert_int_equal(virtq_pop(&x->vq, &elem), 1);
	assert_int_equal(virtq_elem_read(&elem, 1, out, 6), 6);
	assert_memory_equal(out, "bcdefg", 6);
	assert_int_equal(virtq_elem_read(&elem, 6, out, 8), 2);
	assert_int_equal(virtq_elem_read(&elem, 100, out, 8), 0);
	assert_int_equal(virtq_elem_write(&elem, 1, "XYZ", 3), 3);
	w = x->mem.buf + DATA_GPA + 0x200;
	assert_int_equal(w[1], 'X');
	assert_memory_equal(x->mem.buf + DATA_GPA + 0x300, "YZ", 2);
	assert_int_equal(virtq_elem_write(&elem, 7, "0123456789", 10), 1);
	n = virtq_iov_slice(elem.iov, elem.nr_out, 2, 4, sl, 4);
	assert_int_equal(n, 2);
	assert_int_equal(sl[0].iov_len, 1);
	assert_ptr_equal(sl[1].iov_base, x->mem.buf + DATA_GPA + 0x100);
	assert_int_equal(sl[1].iov_len, 3);
	assert_int_equal(virtq_iov_slice(elem.iov, elem.nr_out, 2, 7, sl, 4), -EINVAL);
	assert_int_equal(virtq_iov_slice(elem.iov, elem.nr_out, 0, 8, sl, 1), -EINVAL);
	assert_int_equal(virtq_iov_slice(elem.iov, elem.nr_out, 8, 0, sl, 4), 0);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ring_sizes),
		T(test_setup_rejects),
		T(test_empty),
		cmocka_unit_test(test_not_ready),
		T(test_normal_chain),
		T(test_many_chains_wrap),
		T(test_zero_length_skipped),
		T(test_loop_in_chain),
		T(test_self_loop),
		T(test_chain_of_queue_size_ok),
		T(test_next_out_of_range),
		T(test_head_out_of_range),
		T(test_addr_out_of_ram),
		T(test_addr_crosses_end),
		T(test_addr_overflows),
		T(test_huge_length),
		cmocka_unit_test(test_total_length_overflow),
		T(test_readable_after_writable),
		T(test_avail_idx_jump),
		T(test_avail_idx_full_ok),
		T(test_indirect),
		T(test_indirect_after_direct),
		T(test_indirect_not_negotiated),
		T(test_indirect_bad_len),
		T(test_indirect_zero_len),
		T(test_indirect_with_next),
		T(test_indirect_out_of_ram),
		T(test_indirect_huge),
		T(test_indirect_too_many_entries),
		T(test_indirect_nested),
		T(test_indirect_loop),
		T(test_indirect_next_out_of_table),
		T(test_indirect_bad_buffer),
		T(test_indirect_max_entries_ok),
		T(test_reset_clears_broken),
		T(test_no_interrupt_flag),
		T(test_event_idx),
		T(test_event_idx_wrap),
		T(test_notify_suppression_event_idx),
		T(test_notify_suppression_flags),
		T(test_notify_suppression_broken),
		T(test_elem_copy_helpers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
