/* The snapshot state file: encoding, framing and validation (format in snap.h). */
#include "snapshot/snap.h"

#include "core/le.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static uint64_t get_le64(const uint8_t *p)
{
	return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}

static uint32_t crc_of(const uint8_t *p, size_t n)
{
	uLong crc = crc32(0L, Z_NULL, 0);

	/* zlib takes uInt lengths: feed large buffers in pieces. */
	while (n) {
		uInt chunk = n > (1u << 30) ? (1u << 30) : (uInt)n;

		crc = crc32(crc, p, chunk);
		p += chunk;
		n -= chunk;
	}
	return (uint32_t)crc;
}

/* Room for n more bytes; sets the sticky error on failure. */
static uint8_t *grow(struct snap_writer *w, size_t n)
{
	if (w->err)
		return NULL;
	if (n > SIZE_MAX / 2 - w->len) {
		w->err = -ENOMEM;
		return NULL;
	}
	if (w->len + n > w->cap) {
		size_t cap = w->cap ? w->cap : 4096;
		uint8_t *b;

		while (cap < w->len + n)
			cap *= 2;
		b = realloc(w->buf, cap);
		if (!b) {
			w->err = -ENOMEM;
			return NULL;
		}
		w->buf = b;
		w->cap = cap;
	}
	w->len += n;
	return w->buf + w->len - n;
}

void snap_writer_init(struct snap_writer *w)
{
	uint8_t *h;

	memset(w, 0, sizeof(*w));
	h = grow(w, SNAP_HEADER_SIZE);
	if (!h)
		return;
	memcpy(h, SNAP_MAGIC, 8); /* 7 characters and the NUL */
	put_le32(h + 8, SNAP_FORMAT_VERSION);
	put_le32(h + 12, 0);
}

void snap_writer_free(struct snap_writer *w)
{
	free(w->buf);
	memset(w, 0, sizeof(*w));
}

static void rec_end(struct snap_writer *w)
{
	size_t payload;

	if (!w->rec_start || w->err)
		return;
	payload = w->len - w->rec_start - SNAP_REC_HEADER;
	if (payload > SNAP_MAX_PAYLOAD || w->count >= SNAP_MAX_RECORDS) {
		w->err = -E2BIG;
		return;
	}
	put_le32(w->buf + w->rec_start + 4 + SNAP_ID_MAX, (uint32_t)payload);
	w->rec_start = 0;
	w->count++;
}

void snap_rec_begin(struct snap_writer *w, enum snap_rec_type type, uint16_t version,
		    const char *id)
{
	size_t idlen = strlen(id);
	uint8_t *h;

	rec_end(w);
	if (idlen >= SNAP_ID_MAX) {
		if (!w->err)
			w->err = -EINVAL;
		return;
	}
	if (w->allow && !w->allow(w->allow_ctx, (uint16_t)type, version)) {
		if (!w->err)
			w->err = -EPROTO;
		return;
	}
	h = grow(w, SNAP_REC_HEADER);
	if (!h)
		return;
	put_le16(h, (uint16_t)type);
	put_le16(h + 2, version);
	memset(h + 4, 0, SNAP_ID_MAX);
	memcpy(h + 4, id, idlen);
	put_le32(h + 4 + SNAP_ID_MAX, 0);
	w->rec_start = (size_t)(h - w->buf);
}

/* Every put outside an open record is a programming error: fail the file. */
static uint8_t *put(struct snap_writer *w, size_t n)
{
	if (!w->rec_start && !w->err)
		w->err = -EINVAL;
	return grow(w, n);
}

void snap_put_u8(struct snap_writer *w, uint8_t v)
{
	uint8_t *p = put(w, 1);

	if (p)
		*p = v;
}

void snap_put_u16(struct snap_writer *w, uint16_t v)
{
	uint8_t *p = put(w, 2);

	if (p)
		put_le16(p, v);
}

void snap_put_u32(struct snap_writer *w, uint32_t v)
{
	uint8_t *p = put(w, 4);

	if (p)
		put_le32(p, v);
}

void snap_put_u64(struct snap_writer *w, uint64_t v)
{
	uint8_t *p = put(w, 8);

	if (p)
		put_le64(p, v);
}

void snap_put_bool(struct snap_writer *w, bool v)
{
	snap_put_u8(w, v ? 1 : 0);
}

void snap_put_bytes(struct snap_writer *w, const void *src, size_t n)
{
	uint8_t *p = put(w, n);

	if (p && n)
		memcpy(p, src, n);
}

void snap_put_str(struct snap_writer *w, const char *s, size_t max)
{
	size_t n = s ? strlen(s) : 0;

	if (n > max || n > UINT32_MAX) {
		if (!w->err)
			w->err = -EINVAL;
		return;
	}
	snap_put_u32(w, (uint32_t)n);
	snap_put_bytes(w, s, n);
}

int snap_writer_finish(struct snap_writer *w)
{
	uint8_t *p;

	rec_end(w);
	if (w->err)
		return w->err;
	put_le32(w->buf + 12, w->count);
	p = grow(w, 4);
	if (!p)
		return w->err;
	put_le32(p, crc_of(w->buf, w->len - 4));
	return 0;
}

__attribute__((format(printf, 3, 4))) static int bad(char *why, size_t size, const char *fmt, ...)
{
	va_list ap;

	if (why && size) {
		va_start(ap, fmt);
		vsnprintf(why, size, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

int snap_file_parse(struct snap_file *f, const uint8_t *data, size_t len, char *why,
		    size_t why_size)
{
	uint32_t version, count, crc;
	size_t off;

	memset(f, 0, sizeof(*f));
	if (len < SNAP_HEADER_SIZE + 4)
		return bad(why, why_size, "file too short (%zu bytes) for a snapshot state file",
			   len);
	if (memcmp(data, SNAP_MAGIC, 8))
		return bad(why, why_size, "not an ignition snapshot state file (bad magic)");
	/* The CRC before the version: a damaged file says so, not "version 1651663207". */
	crc = get_le32(data + len - 4);
	if (crc != crc_of(data, len - 4))
		return bad(why, why_size, "checksum mismatch: the file is corrupt or truncated");
	version = get_le32(data + 8);
	if (version != SNAP_FORMAT_VERSION) {
		bad(why, why_size, "format version %u, this ignition reads version %u", version,
		    SNAP_FORMAT_VERSION);
		return -EPROTO;
	}
	count = get_le32(data + 12);
	if (count > SNAP_MAX_RECORDS)
		return bad(why, why_size, "%u records (at most %u)", count, SNAP_MAX_RECORDS);
	off = SNAP_HEADER_SIZE;
	for (uint32_t i = 0; i < count; i++) {
		uint32_t plen;

		if (len - 4 - off < SNAP_REC_HEADER)
			return bad(why, why_size, "record %u: header runs past the end", i);
		if (memchr(data + off + 4, '\0', SNAP_ID_MAX) == NULL)
			return bad(why, why_size, "record %u: id is not terminated", i);
		plen = get_le32(data + off + 4 + SNAP_ID_MAX);
		if (plen > SNAP_MAX_PAYLOAD || plen > len - 4 - off - SNAP_REC_HEADER)
			return bad(why, why_size, "record %u: length %u runs past the end", i,
				   plen);
		off += SNAP_REC_HEADER + plen;
	}
	if (off != len - 4)
		return bad(why, why_size, "%zu bytes after the last record", len - 4 - off);
	f->data = data;
	f->len = len;
	f->count = count;
	return 0;
}

static void reader_at(const struct snap_file *f, size_t off, struct snap_reader *r)
{
	const uint8_t *h = f->data + off;

	memset(r, 0, sizeof(*r));
	r->file = f;
	r->type = (enum snap_rec_type)get_le16(h);
	r->version = get_le16(h + 2);
	memcpy(r->id, h + 4, SNAP_ID_MAX);
	r->len = get_le32(h + 4 + SNAP_ID_MAX);
	r->p = h + SNAP_REC_HEADER;
}

int snap_file_record(const struct snap_file *f, uint32_t index, struct snap_reader *r)
{
	size_t off = SNAP_HEADER_SIZE;

	if (index >= f->count)
		return -ENOENT;
	/* Framing was validated by snap_file_parse. */
	for (uint32_t i = 0; i < index; i++)
		off += SNAP_REC_HEADER + get_le32(f->data + off + 4 + SNAP_ID_MAX);
	reader_at(f, off, r);
	return 0;
}

int snap_file_find(const struct snap_file *f, enum snap_rec_type type, const char *id,
		   struct snap_reader *r)
{
	size_t off = SNAP_HEADER_SIZE;

	for (uint32_t i = 0; i < f->count; i++) {
		reader_at(f, off, r);
		if (r->type == type && !strcmp(r->id, id))
			return 0;
		off += SNAP_REC_HEADER + r->len;
	}
	memset(r, 0, sizeof(*r));
	r->err = -ENOENT;
	return -ENOENT;
}

static const uint8_t *get(struct snap_reader *r, size_t n)
{
	if (r->err || n > r->len - r->off) {
		r->err = -EINVAL;
		return NULL;
	}
	r->off += n;
	return r->p + r->off - n;
}

uint8_t snap_get_u8(struct snap_reader *r)
{
	const uint8_t *p = get(r, 1);

	return p ? *p : 0;
}

uint16_t snap_get_u16(struct snap_reader *r)
{
	const uint8_t *p = get(r, 2);

	return p ? get_le16(p) : 0;
}

uint32_t snap_get_u32(struct snap_reader *r)
{
	const uint8_t *p = get(r, 4);

	return p ? get_le32(p) : 0;
}

uint64_t snap_get_u64(struct snap_reader *r)
{
	const uint8_t *p = get(r, 8);

	return p ? get_le64(p) : 0;
}

bool snap_get_bool(struct snap_reader *r)
{
	uint8_t v = snap_get_u8(r);

	if (v > 1)
		r->err = -EINVAL;
	return v == 1;
}

void snap_get_bytes(struct snap_reader *r, void *dst, size_t n)
{
	const uint8_t *p = get(r, n);

	if (p && n)
		memcpy(dst, p, n);
	else if (!p && n)
		memset(dst, 0, n);
}

void snap_get_str(struct snap_reader *r, char *buf, size_t size)
{
	uint32_t n = snap_get_u32(r);

	if (size == 0)
		return;
	buf[0] = '\0';
	if (r->err)
		return;
	if (n >= size) {
		r->err = -EINVAL;
		return;
	}
	snap_get_bytes(r, buf, n);
	buf[r->err ? 0 : n] = '\0';
	if (!r->err && memchr(buf, '\0', n))
		r->err = -EINVAL; /* an embedded NUL would hide the rest */
}

void snap_fail(struct snap_reader *r)
{
	r->err = -EINVAL;
}

int snap_reader_done(const struct snap_reader *r)
{
	return r->err || r->off != r->len ? -EINVAL : 0;
}

/* NULL for a type this program does not know. */
static const char *rec_name(enum snap_rec_type type)
{
	switch (type) {
	case SNAP_REC_MACHINE:
		return "machine";
	case SNAP_REC_VCPU:
		return "vCPU";
	case SNAP_REC_IRQCHIP:
		return "irqchip";
	case SNAP_REC_PIT:
		return "PIT";
	case SNAP_REC_CLOCK:
		return "clock";
	case SNAP_REC_SLOT:
		return "device slot";
	case SNAP_REC_LAYER:
		return "layer";
	case SNAP_REC_VIRTIO_MMIO:
		return "virtio-mmio";
	case SNAP_REC_VIRTIO_BLK:
		return "virtio-blk";
	case SNAP_REC_VIRTIO_NET:
		return "virtio-net";
	case SNAP_REC_VIRTIO_RNG:
		return "virtio-rng";
	case SNAP_REC_VIRTIO_BALLOON:
		return "virtio-balloon";
	case SNAP_REC_VIRTIO_VSOCK:
		return "virtio-vsock";
	case SNAP_REC_VIRTIO_GPU:
		return "virtio-gpu";
	case SNAP_REC_VIRTIO_INPUT:
		return "virtio-input";
	case SNAP_REC_SERIAL:
		return "serial";
	case SNAP_REC_RTC:
		return "RTC";
	case SNAP_REC_BOOT_TIMER:
		return "boot-timer";
	case SNAP_REC_POWER:
		return "power";
	case SNAP_REC_FUZZ:
		return "fuzz";
	case SNAP_REC_I8042:
		return "i8042";
	}
	return NULL;
}

const char *snap_rec_name(enum snap_rec_type type)
{
	const char *name = rec_name(type);

	return name ? name : "unknown";
}

bool snap_rec_known(uint16_t type)
{
	return rec_name((enum snap_rec_type)type) != NULL;
}
