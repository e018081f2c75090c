/* Test fakes: guest memory over a heap buffer, and the driver side of a split virtqueue
 * (virtio 1.2 §2.7) that writes descriptor tables and rings into it. */
#ifndef IGNITION_TESTS_FAKE_VIRTQ_H
#define IGNITION_TESTS_FAKE_VIRTQ_H

#include "core/gmem.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Fake guest RAM: GPA 0..size, page-aligned, zeroed. */
struct fake_mem {
	uint8_t *buf;
	size_t size;
	struct gmem gm;
};

/* Allocate `size` bytes of zeroed fake guest RAM. */
void fake_mem_init(struct fake_mem *m, size_t size);
/* Free it. */
void fake_mem_free(struct fake_mem *m);
/* Host pointer for `gpa` (aborts if [gpa, gpa+len) is not inside the fake RAM). */
void *fake_mem_ptr(struct fake_mem *m, uint64_t gpa, size_t len);

/* One buffer of a chain: guest address, length, device-writable or not. */
struct fake_buf {
	uint64_t gpa;
	uint32_t len;
	bool write;
};

/* The driver's view of one split virtqueue in fake memory. */
struct fake_vq {
	struct fake_mem *mem;
	uint16_t size;
	uint64_t desc, avail, used;
	uint16_t next_desc; /* next descriptor fake_vq_add_chain hands out */
	uint16_t avail_idx; /* driver's available index */
	uint16_t used_seen; /* used elements already taken by fake_vq_get_used */
};

/* Lay out (and zero) rings of `size` entries at the given guest addresses. */
void fake_vq_init(struct fake_vq *f, struct fake_mem *m, uint16_t size, uint64_t desc,
		  uint64_t avail, uint64_t used);
/* Write descriptor `i` of the table at `table` (the ring's own table or an indirect one). */
void fake_desc_write(struct fake_mem *m, uint64_t table, unsigned i, uint64_t addr, uint32_t len,
		     uint16_t flags, uint16_t next);
/* Write descriptor `i` of the queue's own table. */
void fake_vq_set_desc(struct fake_vq *f, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
		      uint16_t next);
/* Put `head` in the next available slot without publishing it. */
void fake_vq_put_avail(struct fake_vq *f, uint16_t head);
/* Put `head` in the available ring and publish it (avail->idx + 1). */
void fake_vq_publish(struct fake_vq *f, uint16_t head);
/* Chain `n` buffers through consecutive descriptors, publish the chain; returns its head. */
uint16_t fake_vq_add_chain(struct fake_vq *f, const struct fake_buf *bufs, unsigned n);
/* Store raw values into the rings. */
void fake_vq_set_avail_idx(struct fake_vq *f, uint16_t idx);
void fake_vq_set_avail_flags(struct fake_vq *f, uint16_t flags);
void fake_vq_set_used_event(struct fake_vq *f, uint16_t idx);
/* Read back the device's side. */
uint16_t fake_vq_used_idx(struct fake_vq *f);
uint16_t fake_vq_avail_event(struct fake_vq *f);
/* Take the next used element; false if the device has not returned one. */
bool fake_vq_get_used(struct fake_vq *f, uint32_t *id, uint32_t *len);

#endif
