/* Shared pieces of the libFuzzer targets (docs/architecture.md, "Fuzzing"): a cursor over the
 * fuzzer's bytes, seed inputs that each target writes for itself, a private temporary
 * directory, and a hostile virtio driver that runs one device behind the real virtio-mmio
 * transport on fake guest memory. */
#ifndef IGNITION_FUZZ_HARNESS_H
#define IGNITION_FUZZ_HARNESS_H

#include "core/bus.h"
#include "core/irq.h"
#include "devices/virtio/virtio.h"
#include "fake_virtq.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* libFuzzer's entry points (LLVMFuzzerInitialize is optional). */
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The fuzzer's bytes, consumed front to back; reads past the end give zeros. */
struct fuzz_in {
	const uint8_t *p;
	size_t n;
};

/* Little-endian values from the input (0 once it is exhausted). */
uint8_t fuzz_u8(struct fuzz_in *in);
uint16_t fuzz_u16(struct fuzz_in *in);
uint32_t fuzz_u32(struct fuzz_in *in);
uint64_t fuzz_u64(struct fuzz_in *in);
/* Take up to `max` bytes: *out points at them, the count is returned. */
size_t fuzz_bytes(struct fuzz_in *in, size_t max, const uint8_t **out);

/* Abort with a message: an invariant the code under test promised does not hold. */
void fuzz_fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
#define FUZZ_CHECK(cond)                                                                 \
	do {                                                                             \
		if (!(cond))                                                             \
			fuzz_fail("%s:%d: check failed: %s", __FILE__, __LINE__, #cond); \
	} while (0)

/* A directory of this process's own (files, sockets), removed when the process exits. */
const char *fuzz_tmpdir(void);

/* A seed input under construction (little-endian values appended). */
struct fuzz_seed {
	uint8_t data[8192];
	size_t len;
};

void seed_u8(struct fuzz_seed *s, uint8_t v);
void seed_u16(struct fuzz_seed *s, uint16_t v);
void seed_u32(struct fuzz_seed *s, uint32_t v);
void seed_u64(struct fuzz_seed *s, uint64_t v);
void seed_bytes(struct fuzz_seed *s, const void *p, size_t len);
/* Write the seed as file `name` into $IGN_FUZZ_SEED_DIR (nothing when that is unset) and empty
 * it.  Targets call this from LLVMFuzzerInitialize, before libFuzzer reads its corpus. */
void fuzz_seed_save(struct fuzz_seed *s, const char *name);
/* True when the seeds are wanted. */
bool fuzz_want_seeds(void);

/* ---- the virtio driver ---- */

/* Fake guest RAM: 64 KiB at GPA 0.  The canned bring-up puts queue q's rings at
 * VH_RING(q) (descriptors), +0x100 (available), +0x200 (used); the rest is buffers. */
#define VH_RAM_SIZE 0x10000u
#define VH_RING(q)  (0x400ull * (q))
#define VH_AVAIL    0x100u
#define VH_USED	    0x200u
/* Where the transport sits on the MMIO bus. */
#define VH_MMIO_BASE 0xd0000000ull
/* Operations per input, so that one input cannot run for ever. */
#define VH_MAX_OPS 128

/* Operations, the first byte of each (modulo VH_NR_OPS). */
enum vh_op {
	VH_OP_READ,	/* u16 offset, u8 size: bus read of the window */
	VH_OP_WRITE,	/* u16 offset, u8 size, u64 value: bus write */
	VH_OP_MEM,	/* u16 gpa, u8 len, len bytes: store into guest RAM */
	VH_OP_BRING_UP, /* u8 clear, u8 qsize: §3.1.1 initialisation with every queue */
	VH_OP_NOTIFY,	/* u8 queue: QueueNotify */
	VH_OP_CHAIN,	/* u8 queue, u8 n, n * (u16 gpa, u16 len, u8 write): publish a chain */
	VH_OP_DESC,	/* u8 queue, u16 i, u64 addr, u32 len, u16 flags, u16 next */
	VH_OP_RING,	/* u8 queue, u8 what, u16 val: publish head / avail idx / flags / event */
	VH_OP_DEVICE,	/* the device's own operation (vh_device.op) */
	VH_NR_OPS,
};

struct vh;

/* One device under the driver. */
struct vh_device {
	const struct virtio_device_ops *ops;
	/* Create the device for one input; `cfg` is the input's first byte.  0 or -errno. */
	int (*create)(struct vh *h, uint8_t cfg, void **dev);
	/* The device's own operation, reading its arguments from `in` (may be NULL). */
	void (*op)(struct vh *h, void *dev, struct fuzz_in *in);
	/* After the transport has destroyed the device: release whatever else create() set up
	 * (may be NULL). */
	void (*cleanup)(struct vh *h);
};

/* The driver's state for one input. */
struct vh {
	const struct vh_device *d;
	struct fake_mem mem;
	struct irq_line irq;
	struct bus bus;
	struct virtio_mmio *t;
	void *dev;
	struct fake_vq vq[VIRTIO_MAX_QUEUES];
	bool vq_up[VIRTIO_MAX_QUEUES]; /* set up by the canned bring-up */
};

/* Run one input against a fresh device: [cfg byte] then operations. */
int vh_run(const struct vh_device *d, const uint8_t *data, size_t size);

/* 32-bit register access through the bus, as a driver does it. */
uint32_t vh_read32(struct vh *h, uint64_t off);
void vh_write32(struct vh *h, uint64_t off, uint32_t val);

/* Seed builders: the same operations, encoded. */
void vh_seed_mem(struct fuzz_seed *s, uint16_t gpa, const void *p, uint8_t len);
void vh_seed_bring_up(struct fuzz_seed *s, uint8_t clear, uint8_t qsize);
void vh_seed_notify(struct fuzz_seed *s, uint8_t q);
void vh_seed_chain(struct fuzz_seed *s, uint8_t q, const struct fake_buf *b, uint8_t n);
void vh_seed_desc(struct fuzz_seed *s, uint8_t q, uint16_t i, uint64_t addr, uint32_t len,
		  uint16_t flags, uint16_t next);
void vh_seed_ring(struct fuzz_seed *s, uint8_t q, uint8_t what, uint16_t val);
/* The device operation's opcode; its arguments follow (the target's own encoding). */
void vh_seed_device(struct fuzz_seed *s);

#endif
