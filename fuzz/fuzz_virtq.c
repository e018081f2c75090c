/* Split virtqueues (src/devices/virtio/virtq.c, virtio 1.2 §2.7) on ring memory the fuzzer
 * writes: descriptor tables, indirect tables, available ring, used_event.  Every chain popped
 * is checked against what virtq.h promises (segments inside guest RAM, readable before
 * writable, lengths adding up, a broken queue stays broken), then returned.
 * Input: operations, the first byte of each (modulo 8):
 *   0 setup:   u8 size (1 << (v % 9); bit 7: u16 raw size follows), u8 flags (bit 0: EVENT_IDX,
 *              bit 1: INDIRECT_DESC, bit 2: u32 desc, avail, used addresses follow; otherwise
 *              0x0, 0x1000, 0x1400)
 *   1 mem:     u16 gpa, u8 len, len bytes into guest RAM
 *   2 desc:    u16 table gpa, u16 index, u64 addr, u32 len, u16 flags, u16 next
 *   3 ring:    u8 what, u16 val: publish head val / set avail idx / avail flags / used_event
 *   4 pop one (kept for 5 and 7)
 *   5 push:    u8 which kept chain, u32 len; then ask whether to notify
 *   6 pop and push until the ring is empty or broken
 *   7 elem:    u16 off, u16 len: gather, scatter and slice the last chain popped */
#include "devices/virtio/virtio.h"
#include "devices/virtio/virtq.h"
#include "harness.h"

#include <errno.h>
#include <string.h>

#define RAM_SIZE 0x10000u
#define MAX_OPS	 256u
#define MAX_KEPT 64u

static struct fake_mem mem;
static struct virtq vq;
static struct virtq_elem elem;
static bool have_elem;
static uint16_t kept[MAX_KEPT];
static unsigned nr_kept;
static uint8_t scratch[RAM_SIZE];
static struct iovec slice[VIRTQ_ELEM_MAX_SEGS];

static bool in_ram(const void *p, size_t len)
{
	const uint8_t *b = p;

	return b >= mem.buf && b <= mem.buf + RAM_SIZE && len <= (size_t)(mem.buf + RAM_SIZE - b);
}

/* What virtq_pop promises about a chain it returns. */
static void check_elem(const struct virtq_elem *e)
{
	uint64_t out = 0, in = 0;

	FUZZ_CHECK(e->head < vq.size);
	FUZZ_CHECK(e->nr_out + e->nr_in <= VIRTQ_ELEM_MAX_SEGS);
	for (unsigned i = 0; i < e->nr_out + e->nr_in; i++) {
		const struct iovec *v = &e->iov[i];

		FUZZ_CHECK(v->iov_len > 0);
		FUZZ_CHECK(in_ram(v->iov_base, v->iov_len));
		/* Touch both ends: ASan objects if the arithmetic above lied. */
		scratch[0] ^= ((volatile uint8_t *)v->iov_base)[0];
		scratch[1] ^= ((volatile uint8_t *)v->iov_base)[v->iov_len - 1];
		if (i < e->nr_out)
			out += v->iov_len;
		else
			in += v->iov_len;
	}
	FUZZ_CHECK(out == e->out_len && in == e->in_len);
	FUZZ_CHECK(out + in <= VIRTQ_ELEM_MAX_LEN);
}

static int pop(void)
{
	uint16_t before = vq.last_avail;
	bool was_broken = vq.broken || !vq.ready;
	int ret = virtq_pop(&vq, &elem);

	if (was_broken)
		FUZZ_CHECK(ret == -EIO);
	if (ret == 1) {
		FUZZ_CHECK(vq.last_avail == (uint16_t)(before + 1));
		check_elem(&elem);
		have_elem = true;
	} else {
		FUZZ_CHECK(vq.last_avail == before);
		if (ret < 0)
			FUZZ_CHECK(vq.broken || !vq.ready);
		else
			FUZZ_CHECK(ret == 0);
	}
	return ret;
}

static void setup(struct fuzz_in *in)
{
	uint8_t s = fuzz_u8(in), flags = fuzz_u8(in);
	uint32_t size = s & 0x80 ? fuzz_u16(in) : 1u << (s % 9);
	uint64_t desc = 0, avail = 0x1000, used = 0x1400;
	int ret;

	if (flags & 4) {
		desc = fuzz_u32(in);
		avail = fuzz_u32(in);
		used = fuzz_u32(in);
	}
	ret = virtq_setup(&vq, &mem.gm, (uint16_t)size, desc, avail, used);
	have_elem = false;
	nr_kept = 0;
	if (ret) {
		FUZZ_CHECK(!vq.ready);
		return;
	}
	FUZZ_CHECK(size == vq.size && virtq_size_valid(size, VIRTIO_QUEUE_MAX_SIZE));
	FUZZ_CHECK(in_ram(vq.desc, virtq_desc_bytes(vq.size)));
	FUZZ_CHECK(in_ram(vq.avail, virtq_avail_bytes(vq.size)));
	FUZZ_CHECK(in_ram(vq.used, virtq_used_bytes(vq.size)));
	virtq_set_features(&vq, (flags & 1 ? VIRTIO_BIT(VIRTIO_F_EVENT_IDX) : 0) |
					(flags & 2 ? VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC) : 0));
}

static void ring(struct fuzz_in *in)
{
	uint8_t what = fuzz_u8(in);
	uint16_t val = fuzz_u16(in), idx;

	if (!vq.ready)
		return;
	idx = (uint16_t)virtio_get_le(vq.avail + 2, 2);
	switch (what % 4) {
	case 0: /* ring[idx % size] = head, idx + 1 */
		virtio_put_le(vq.avail + 4 + 2 * (idx % vq.size), val, 2);
		virtio_put_le(vq.avail + 2, (uint16_t)(idx + 1), 2);
		break;
	case 1:
		virtio_put_le(vq.avail + 2, val, 2);
		break;
	case 2:
		virtio_put_le(vq.avail, val, 2);
		break;
	default:
		virtio_put_le(vq.avail + 4 + 2 * vq.size, val, 2);
		break;
	}
}

static void push(uint16_t head, uint32_t len)
{
	uint16_t used = vq.used_idx;

	virtq_push(&vq, head, len);
	/* Broken or not: a ready queue takes the chain back (requests in flight complete). */
	if (vq.ready)
		FUZZ_CHECK(vq.used_idx == (uint16_t)(used + 1) &&
			   virtio_get_le(vq.used + 2, 2) == vq.used_idx);
	(void)virtq_should_notify(&vq);
}

/* Bytes a gather or scatter of `len` at `off` moves, of `total`. */
static size_t span(size_t total, size_t off, size_t len)
{
	if (off >= total)
		return 0;
	return total - off < len ? total - off : len;
}

static void elem_ops(struct fuzz_in *in)
{
	size_t off = fuzz_u16(in), len = fuzz_u16(in) % 4096;
	int nr;

	if (!have_elem)
		return;
	FUZZ_CHECK(virtq_elem_read(&elem, off, scratch, len) == span(elem.out_len, off, len));
	FUZZ_CHECK(virtq_elem_write(&elem, off, scratch, len) == span(elem.in_len, off, len));
	nr = virtq_iov_slice(elem.iov, elem.nr_out + elem.nr_in, off, len, slice,
			     VIRTQ_ELEM_MAX_SEGS);
	if (nr >= 0) {
		size_t total = 0;

		for (int i = 0; i < nr; i++) {
			FUZZ_CHECK(in_ram(slice[i].iov_base, slice[i].iov_len));
			total += slice[i].iov_len;
		}
		FUZZ_CHECK(total == len);
	} else {
		FUZZ_CHECK((uint64_t)off + len > (uint64_t)elem.out_len + elem.in_len);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };

	if (!mem.buf)
		fake_mem_init(&mem, RAM_SIZE);
	else
		memset(mem.buf, 0, RAM_SIZE);
	virtq_reset(&vq);
	have_elem = false;
	nr_kept = 0;

	for (unsigned op = 0; op < MAX_OPS && in.n; op++) {
		switch (fuzz_u8(&in) % 8) {
		case 0:
			setup(&in);
			break;
		case 1: {
			uint16_t gpa = fuzz_u16(&in);
			const uint8_t *p;
			size_t n = fuzz_bytes(&in, fuzz_u8(&in), &p);

			if (n > RAM_SIZE - gpa)
				n = RAM_SIZE - gpa;
			memcpy(mem.buf + gpa, p, n);
			break;
		}
		case 2: {
			uint16_t table = fuzz_u16(&in), i = fuzz_u16(&in);
			uint64_t addr = fuzz_u64(&in), at = table + 16ull * i;
			uint32_t len = fuzz_u32(&in);
			uint16_t flags = fuzz_u16(&in), next = fuzz_u16(&in);

			if (at + 16 <= RAM_SIZE)
				fake_desc_write(&mem, table, i, addr, len, flags, next);
			break;
		}
		case 3:
			ring(&in);
			break;
		case 4:
			if (pop() == 1 && nr_kept < MAX_KEPT)
				kept[nr_kept++] = elem.head;
			break;
		case 5: {
			uint8_t k = fuzz_u8(&in);
			uint32_t len = fuzz_u32(&in);

			if (!nr_kept)
				break;
			k %= nr_kept;
			push(kept[k], len);
			kept[k] = kept[--nr_kept];
			break;
		}
		case 6:
			for (unsigned i = 0; i <= 2u * vq.size + 1 && pop() == 1; i++)
				push(elem.head, elem.in_len);
			break;
		default:
			elem_ops(&in);
			break;
		}
	}
	return 0;
}

static void seed_desc(struct fuzz_seed *s, uint16_t table, uint16_t i, uint64_t addr, uint32_t len,
		      uint16_t flags, uint16_t next)
{
	seed_u8(s, 2);
	seed_u16(s, table);
	seed_u16(s, i);
	seed_u64(s, addr);
	seed_u32(s, len);
	seed_u16(s, flags);
	seed_u16(s, next);
}

static void seed_publish(struct fuzz_seed *s, uint16_t head)
{
	seed_u8(s, 3);
	seed_u8(s, 0);
	seed_u16(s, head);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static struct fuzz_seed s;

	if (!fuzz_want_seeds())
		return 0;
	/* Size 8, both features: a direct chain (readable, writable), an indirect one, a loop. */
	seed_u8(&s, 0);
	seed_u8(&s, 3);
	seed_u8(&s, 3);
	seed_desc(&s, 0, 0, 0x2000, 100, VIRTQ_DESC_F_NEXT, 1);
	seed_desc(&s, 0, 1, 0x3000, 200, VIRTQ_DESC_F_WRITE, 0);
	seed_publish(&s, 0);
	seed_desc(&s, 0x4000, 0, 0x2000, 16, VIRTQ_DESC_F_NEXT, 1);
	seed_desc(&s, 0x4000, 1, 0x3000, 64, VIRTQ_DESC_F_WRITE, 0);
	seed_desc(&s, 0, 2, 0x4000, 32, VIRTQ_DESC_F_INDIRECT, 0);
	seed_publish(&s, 2);
	seed_u8(&s, 4);
	seed_u8(&s, 7);
	seed_u16(&s, 10);
	seed_u16(&s, 200);
	seed_u8(&s, 5);
	seed_u8(&s, 0);
	seed_u32(&s, 100);
	seed_u8(&s, 6);
	seed_desc(&s, 0, 3, 0x2000, 8, VIRTQ_DESC_F_NEXT, 3);
	seed_publish(&s, 3);
	seed_u8(&s, 6);
	fuzz_seed_save(&s, "chains");

	/* Size 4 at chosen addresses, no features: used_event / flags, a jump in avail idx. */
	seed_u8(&s, 0);
	seed_u8(&s, 2);
	seed_u8(&s, 4);
	seed_u32(&s, 0x8000);
	seed_u32(&s, 0x9000);
	seed_u32(&s, 0xa000);
	seed_desc(&s, 0x8000, 0, 0x2000, 4, 0, 0);
	seed_publish(&s, 0);
	seed_u8(&s, 3);
	seed_u8(&s, 2);
	seed_u16(&s, VIRTQ_AVAIL_F_NO_INTERRUPT);
	seed_u8(&s, 6);
	seed_u8(&s, 3);
	seed_u8(&s, 1);
	seed_u16(&s, 9);
	seed_u8(&s, 4);
	fuzz_seed_save(&s, "avail");
	return 0;
}
