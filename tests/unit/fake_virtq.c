#include "fake_virtq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void put16(uint8_t *p, uint16_t v)
{
	memcpy(p, &v, sizeof(v)); /* x86: little-endian, as virtio 1.x */
}

static uint16_t get16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

void fake_mem_init(struct fake_mem *m, size_t size)
{
	m->buf = aligned_alloc(4096, (size + 4095) & ~(size_t)4095);
	if (!m->buf) {
		fprintf(stderr, "fake_mem_init: out of memory\n");
		abort();
	}
	memset(m->buf, 0, size);
	m->size = size;
	gmem_init_flat(&m->gm, m->buf, size);
}

void fake_mem_free(struct fake_mem *m)
{
	free(m->buf);
	memset(m, 0, sizeof(*m));
}

void *fake_mem_ptr(struct fake_mem *m, uint64_t gpa, size_t len)
{
	if (gpa > m->size || len > m->size - gpa) {
		fprintf(stderr, "fake_mem_ptr: %#llx+%zu outside fake RAM\n",
			(unsigned long long)gpa, len);
		abort();
	}
	return m->buf + gpa;
}

void fake_vq_init(struct fake_vq *f, struct fake_mem *m, uint16_t size, uint64_t desc,
		  uint64_t avail, uint64_t used)
{
	memset(f, 0, sizeof(*f));
	f->mem = m;
	f->size = size;
	f->desc = desc;
	f->avail = avail;
	f->used = used;
	memset(fake_mem_ptr(m, desc, 16u * size), 0, 16u * size);
	memset(fake_mem_ptr(m, avail, 6u + 2u * size), 0, 6u + 2u * size);
	memset(fake_mem_ptr(m, used, 6u + 8u * size), 0, 6u + 8u * size);
}

void fake_desc_write(struct fake_mem *m, uint64_t table, unsigned i, uint64_t addr, uint32_t len,
		     uint16_t flags, uint16_t next)
{
	uint8_t *p = fake_mem_ptr(m, table + 16ull * i, 16);

	memcpy(p, &addr, 8);
	memcpy(p + 8, &len, 4);
	put16(p + 12, flags);
	put16(p + 14, next);
}

void fake_vq_set_desc(struct fake_vq *f, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
		      uint16_t next)
{
	fake_desc_write(f->mem, f->desc, i % f->size, addr, len, flags, next);
}

void fake_vq_put_avail(struct fake_vq *f, uint16_t head)
{
	uint16_t slot = f->avail_idx % f->size;

	put16(fake_mem_ptr(f->mem, f->avail + 4u + 2u * slot, 2), head);
}

void fake_vq_publish(struct fake_vq *f, uint16_t head)
{
	fake_vq_put_avail(f, head);
	f->avail_idx++;
	__atomic_thread_fence(__ATOMIC_RELEASE);
	put16(fake_mem_ptr(f->mem, f->avail + 2, 2), f->avail_idx);
}

uint16_t fake_vq_add_chain(struct fake_vq *f, const struct fake_buf *bufs, unsigned n)
{
	uint16_t head = f->next_desc % f->size;

	for (unsigned i = 0; i < n; i++) {
		uint16_t idx = (uint16_t)((head + i) % f->size);
		uint16_t next = (uint16_t)((head + i + 1) % f->size);
		uint16_t flags = (uint16_t)((bufs[i].write ? 2 : 0) | (i + 1 < n ? 1 : 0));

		fake_vq_set_desc(f, idx, bufs[i].gpa, bufs[i].len, flags, next);
	}
	f->next_desc = (uint16_t)(f->next_desc + n);
	fake_vq_publish(f, head);
	return head;
}

void fake_vq_set_avail_idx(struct fake_vq *f, uint16_t idx)
{
	f->avail_idx = idx;
	put16(fake_mem_ptr(f->mem, f->avail + 2, 2), idx);
}

void fake_vq_set_avail_flags(struct fake_vq *f, uint16_t flags)
{
	put16(fake_mem_ptr(f->mem, f->avail, 2), flags);
}

void fake_vq_set_used_event(struct fake_vq *f, uint16_t idx)
{
	put16(fake_mem_ptr(f->mem, f->avail + 4u + 2u * f->size, 2), idx);
}

uint16_t fake_vq_used_idx(struct fake_vq *f)
{
	return get16(fake_mem_ptr(f->mem, f->used + 2, 2));
}

uint16_t fake_vq_avail_event(struct fake_vq *f)
{
	return get16(fake_mem_ptr(f->mem, f->used + 4u + 8u * f->size, 2));
}

bool fake_vq_get_used(struct fake_vq *f, uint32_t *id, uint32_t *len)
{
	const uint8_t *e;

	if (fake_vq_used_idx(f) == f->used_seen)
		return false;
	e = fake_mem_ptr(f->mem, f->used + 4u + 8u * (f->used_seen % f->size), 8);
	memcpy(id, e, 4);
	memcpy(len, e + 4, 4);
	f->used_seen++;
	return true;
}
