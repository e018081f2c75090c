/* The snapshot `state` file (docs/snapshots.md): a header, typed records, a CRC.
 *
 *   header  magic "IGNSNAP\0" (8 bytes), u32 format version, u32 record count
 *   record  u16 type, u16 version, char id[SNAP_ID_MAX] (NUL padded), u32 payload length,
 *           payload
 *   trailer u32 CRC-32 (zlib's) of every byte before it
 *
 * Every integer is little-endian, written field by field (never a raw struct), so the file
 * means the same on any host and a compiler's padding never leaks into it.  A record is keyed
 * by (type, id): the type says what produced it (a vCPU, the irqchip, a virtio-blk device), the
 * id which instance ("vcpu1", "virtio-blk0"), the version which layout of that type's payload.
 *
 * Writers and readers carry a sticky error: a device's save or restore makes all its put/get
 * calls and checks the error once at the end, and a short or overlong record is an error, not
 * a silent truncation. */
#ifndef IGNITION_SNAPSHOT_SNAP_H
#define IGNITION_SNAPSHOT_SNAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SNAP_MAGIC	    "IGNSNAP"
#define SNAP_FORMAT_VERSION 1
#define SNAP_ID_MAX	    32
#define SNAP_HEADER_SIZE    16
#define SNAP_REC_HEADER	    (2 + 2 + SNAP_ID_MAX + 4)
/* Bounds that make a hostile file cheap to refuse. */
#define SNAP_MAX_RECORDS 4096
#define SNAP_MAX_PAYLOAD (64u << 20)

/* Record types.  Never renumber: they are on disk. */
enum snap_rec_type {
	SNAP_REC_MACHINE = 1,	   /* machine description: memory, vCPUs, devices and options */
	SNAP_REC_VCPU = 2,	   /* one vCPU's KVM state (id "vcpuN") */
	SNAP_REC_IRQCHIP = 3,	   /* both PICs and the IOAPIC */
	SNAP_REC_PIT = 4,	   /* the in-kernel i8254 */
	SNAP_REC_CLOCK = 5,	   /* kvmclock */
	SNAP_REC_SLOT = 6,	   /* a device slot: kind, window, interrupt line */
	SNAP_REC_LAYER = 7,	   /* identity, Full or Diff, parent, Diff page bitmap */
	SNAP_REC_VIRTIO_MMIO = 10, /* the virtio-mmio transport's common state */
	SNAP_REC_VIRTIO_BLK = 11,
	SNAP_REC_VIRTIO_NET = 12,
	SNAP_REC_VIRTIO_RNG = 13,
	SNAP_REC_VIRTIO_BALLOON = 14,
	SNAP_REC_VIRTIO_VSOCK = 15,
	SNAP_REC_VIRTIO_GPU = 16,   /* resources, scanout, cursor (devices/virtio/gpu.c) */
	SNAP_REC_VIRTIO_INPUT = 17, /* a keyboard or tablet (devices/virtio/input.c) */
	SNAP_REC_SERIAL = 20,
	SNAP_REC_RTC = 21,
	SNAP_REC_BOOT_TIMER = 22,
	SNAP_REC_POWER = 23,
	SNAP_REC_FUZZ = 24,  /* the fuzz device's input length and crash code */
	SNAP_REC_I8042 = 25, /* the keyboard controller and its keyboard (devices/i8042.c) */
};

struct snap_writer {
	uint8_t *buf;
	size_t len, cap;
	size_t rec_start; /* offset of the open record's header; 0 = none open */
	uint32_t count;	  /* records closed so far */
	int err;	  /* first error (-ENOMEM, -EINVAL, -EPROTO), sticky */
	/* While set, a record that allow() refuses fails the file with -EPROTO: the device
	 * manager lets a device write only the records it declares (core/bus.h, dev_ops.rec). */
	bool (*allow)(void *ctx, uint16_t type, uint16_t version);
	void *allow_ctx;
};

/* An empty file (header only); w->err says if even that failed. */
void snap_writer_init(struct snap_writer *w);
void snap_writer_free(struct snap_writer *w);
/* Open a record (closing any open one).  `id` longer than SNAP_ID_MAX - 1 is -EINVAL; a
 * record w->allow refuses is -EPROTO. */
void snap_rec_begin(struct snap_writer *w, enum snap_rec_type type, uint16_t version,
		    const char *id);
void snap_put_u8(struct snap_writer *w, uint8_t v);
void snap_put_u16(struct snap_writer *w, uint16_t v);
void snap_put_u32(struct snap_writer *w, uint32_t v);
void snap_put_u64(struct snap_writer *w, uint64_t v);
void snap_put_bool(struct snap_writer *w, bool v);
void snap_put_bytes(struct snap_writer *w, const void *p, size_t n);
/* A string as u32 length + bytes (no NUL); at most `max` bytes else -EINVAL. */
void snap_put_str(struct snap_writer *w, const char *s, size_t max);
/* Close the open record, patch the count, append the CRC.  Then w->buf[0..len) is the file.
 * 0 or the sticky error. */
int snap_writer_finish(struct snap_writer *w) __attribute__((warn_unused_result));

/* A parsed file: validated framing over caller-owned bytes (which must outlive it). */
struct snap_file {
	const uint8_t *data;
	size_t len;
	uint32_t count;
};

/* One record's payload being read. */
struct snap_reader {
	const struct snap_file *file;
	enum snap_rec_type type;
	uint16_t version;
	char id[SNAP_ID_MAX];
	const uint8_t *p;
	size_t len, off;
	int err; /* -EINVAL once a get ran past the end or a check failed; sticky */
};

/* Check magic, format version, CRC, and that the records exactly tile the file with sane
 * lengths and NUL-terminated ids.  On failure returns -EINVAL (or -EPROTO for a version this
 * build cannot read) and writes one human-readable reason into why. */
int snap_file_parse(struct snap_file *f, const uint8_t *data, size_t len, char *why,
		    size_t why_size) __attribute__((warn_unused_result));
/* Record number `index` (0..count-1) into r; -ENOENT past the end. */
int snap_file_record(const struct snap_file *f, uint32_t index, struct snap_reader *r);
/* The record of `type` with `id`; -ENOENT if absent. */
int snap_file_find(const struct snap_file *f, enum snap_rec_type type, const char *id,
		   struct snap_reader *r);

uint8_t snap_get_u8(struct snap_reader *r);
uint16_t snap_get_u16(struct snap_reader *r);
uint32_t snap_get_u32(struct snap_reader *r);
uint64_t snap_get_u64(struct snap_reader *r);
/* 0 or 1; anything else sets the error. */
bool snap_get_bool(struct snap_reader *r);
void snap_get_bytes(struct snap_reader *r, void *dst, size_t n);
/* A snap_put_str string into buf (NUL-terminated); longer than size - 1 sets the error. */
void snap_get_str(struct snap_reader *r, char *buf, size_t size);
/* Mark the record invalid (a field failed a semantic check). */
void snap_fail(struct snap_reader *r);
/* 0 if every get succeeded and the payload was consumed exactly, else -EINVAL. */
int snap_reader_done(const struct snap_reader *r) __attribute__((warn_unused_result));

/* Human-readable name of a record type ("virtio-blk"), for error lines. */
const char *snap_rec_name(enum snap_rec_type type);
/* Whether `type` is one of enum snap_rec_type (a record type this program knows). */
bool snap_rec_known(uint16_t type);

#endif
