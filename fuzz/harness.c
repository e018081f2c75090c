#include "harness.h"

#include "devices/virtio/mmio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- input ---- */

static uint64_t take_le(struct fuzz_in *in, unsigned bytes)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < bytes && in->n; i++, in->p++, in->n--)
		v |= (uint64_t)in->p[0] << (8 * i);
	return v;
}

uint8_t fuzz_u8(struct fuzz_in *in)
{
	return (uint8_t)take_le(in, 1);
}

uint16_t fuzz_u16(struct fuzz_in *in)
{
	return (uint16_t)take_le(in, 2);
}

uint32_t fuzz_u32(struct fuzz_in *in)
{
	return (uint32_t)take_le(in, 4);
}

uint64_t fuzz_u64(struct fuzz_in *in)
{
	return take_le(in, 8);
}

size_t fuzz_bytes(struct fuzz_in *in, size_t max, const uint8_t **out)
{
	size_t n = max < in->n ? max : in->n;

	*out = in->p;
	in->p += n;
	in->n -= n;
	return n;
}

void fuzz_fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "fuzz: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	abort();
}

/* ---- temporary directory ---- */

static char tmpdir[128];

static void remove_tmpdir(void)
{
	DIR *d = opendir(tmpdir);
	struct dirent *e;
	char path[512];

	if (!d)
		return;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(path, sizeof(path), "%s/%s", tmpdir, e->d_name);
		unlink(path);
	}
	closedir(d);
	rmdir(tmpdir);
}

const char *fuzz_tmpdir(void)
{
	const char *base = getenv("TMPDIR");
	struct stat st;

	if (tmpdir[0])
		return tmpdir;
	/* tmpfs if there is one: fdatasync and socket files cost nothing there. */
	if (!base || !*base)
		base = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) &&
				       access("/dev/shm", W_OK) == 0
			       ? "/dev/shm"
			       : "/tmp";
	snprintf(tmpdir, sizeof(tmpdir), "%s/ign-fuzz-XXXXXX", base);
	if (!mkdtemp(tmpdir))
		fuzz_fail("mkdtemp %s: %s", tmpdir, strerror(errno));
	atexit(remove_tmpdir);
	return tmpdir;
}

/* ---- seeds ---- */

static void seed_le(struct fuzz_seed *s, uint64_t v, unsigned bytes)
{
	if (s->len + bytes > sizeof(s->data))
		fuzz_fail("seed too long");
	for (unsigned i = 0; i < bytes; i++)
		s->data[s->len++] = (uint8_t)(v >> (8 * i));
}

void seed_u8(struct fuzz_seed *s, uint8_t v)
{
	seed_le(s, v, 1);
}

void seed_u16(struct fuzz_seed *s, uint16_t v)
{
	seed_le(s, v, 2);
}

void seed_u32(struct fuzz_seed *s, uint32_t v)
{
	seed_le(s, v, 4);
}

void seed_u64(struct fuzz_seed *s, uint64_t v)
{
	seed_le(s, v, 8);
}

void seed_bytes(struct fuzz_seed *s, const void *p, size_t len)
{
	if (s->len + len > sizeof(s->data))
		fuzz_fail("seed too long");
	memcpy(s->data + s->len, p, len);
	s->len += len;
}

bool fuzz_want_seeds(void)
{
	const char *dir = getenv("IGN_FUZZ_SEED_DIR");

	return dir && *dir;
}

void fuzz_seed_save(struct fuzz_seed *s, const char *name)
{
	const char *dir = getenv("IGN_FUZZ_SEED_DIR");
	char path[512];
	FILE *f;

	if (dir && *dir) {
		snprintf(path, sizeof(path), "%s/seed-%s", dir, name);
		f = fopen(path, "wb");
		if (!f || fwrite(s->data, 1, s->len, f) != s->len || fclose(f))
			fuzz_fail("writing seed %s: %s", path, strerror(errno));
	}
	s->len = 0;
}

/* ---- the virtio driver ---- */

/* One driver for the process: the fake RAM is allocated once and cleared for every input. */
static struct vh the_vh;

uint32_t vh_read32(struct vh *h, uint64_t off)
{
	uint8_t b[4];

	bus_read(&h->bus, VH_MMIO_BASE + off, b, 4);
	return (uint32_t)virtio_get_le(b, 4);
}

void vh_write32(struct vh *h, uint64_t off, uint32_t val)
{
	uint8_t b[4];

	virtio_put_le(b, val, 4);
	bus_write(&h->bus, VH_MMIO_BASE + off, b, 4);
}

/* virtio 1.2 §3.1.1, with every queue at its fixed place.  `clear` drops offered features:
 * bit 0 EVENT_IDX, bit 1 INDIRECT_DESC, bits 2..7 the first six device-specific bits. */
static void bring_up(struct vh *h, uint8_t clear, uint8_t qsize)
{
	const unsigned ack = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER;
	uint64_t f, drop = 0;
	unsigned k = 0;

	vh_write32(h, VIRTIO_MMIO_STATUS, 0);
	vh_write32(h, VIRTIO_MMIO_STATUS, ack);
	vh_write32(h, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	f = vh_read32(h, VIRTIO_MMIO_DEVICE_FEATURES);
	vh_write32(h, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	f |= (uint64_t)vh_read32(h, VIRTIO_MMIO_DEVICE_FEATURES) << 32;
	if (clear & 1)
		drop |= VIRTIO_BIT(VIRTIO_F_EVENT_IDX);
	if (clear & 2)
		drop |= VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC);
	for (unsigned bit = 0; bit < 24 && k < 6; bit++) {
		if (!(f & VIRTIO_BIT(bit)))
			continue;
		if (clear & (4u << k))
			drop |= VIRTIO_BIT(bit);
		k++;
	}
	f &= ~drop;
	vh_write32(h, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	vh_write32(h, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)f);
	vh_write32(h, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	vh_write32(h, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(f >> 32));
	vh_write32(h, VIRTIO_MMIO_STATUS, ack | VIRTIO_STATUS_FEATURES_OK);
	for (unsigned q = 0; q < h->d->ops->num_queues; q++) {
		uint64_t desc = VH_RING(q), avail = desc + VH_AVAIL, used = desc + VH_USED;
		uint32_t max, size = 1u << (qsize % 5); /* 1..16 entries fit the fixed places */

		vh_write32(h, VIRTIO_MMIO_QUEUE_SEL, q);
		max = vh_read32(h, VIRTIO_MMIO_QUEUE_NUM_MAX);
		if (size > max)
			size = max;
		if (!size)
			continue;
		fake_vq_init(&h->vq[q], &h->mem, (uint16_t)size, desc, avail, used);
		vh_write32(h, VIRTIO_MMIO_QUEUE_NUM, size);
		vh_write32(h, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)desc);
		vh_write32(h, VIRTIO_MMIO_QUEUE_DESC_HIGH, 0);
		vh_write32(h, VIRTIO_MMIO_QUEUE_AVAIL_LOW, (uint32_t)avail);
		vh_write32(h, VIRTIO_MMIO_QUEUE_AVAIL_HIGH, 0);
		vh_write32(h, VIRTIO_MMIO_QUEUE_USED_LOW, (uint32_t)used);
		vh_write32(h, VIRTIO_MMIO_QUEUE_USED_HIGH, 0);
		vh_write32(h, VIRTIO_MMIO_QUEUE_READY, 1);
		h->vq_up[q] = true;
	}
	vh_write32(h, VIRTIO_MMIO_STATUS,
		   ack | VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
}

static unsigned access_size(uint8_t sel)
{
	return 1u << (sel & 3);
}

static struct fake_vq *queue_arg(struct vh *h, struct fuzz_in *in)
{
	unsigned q = fuzz_u8(in) % h->d->ops->num_queues;

	return h->vq_up[q] ? &h->vq[q] : NULL;
}

static void run_op(struct vh *h, struct fuzz_in *in)
{
	uint8_t buf[8];

	switch (fuzz_u8(in) % VH_NR_OPS) {
	case VH_OP_READ: {
		uint16_t off = fuzz_u16(in) & (VIRTIO_MMIO_WINDOW - 1);

		bus_read(&h->bus, VH_MMIO_BASE + off, buf, access_size(fuzz_u8(in)));
		break;
	}
	case VH_OP_WRITE: {
		uint16_t off = fuzz_u16(in) & (VIRTIO_MMIO_WINDOW - 1);
		unsigned size = access_size(fuzz_u8(in));

		virtio_put_le(buf, fuzz_u64(in), 8);
		bus_write(&h->bus, VH_MMIO_BASE + off, buf, size);
		break;
	}
	case VH_OP_MEM: {
		uint16_t gpa = fuzz_u16(in);
		const uint8_t *p;
		size_t n = fuzz_bytes(in, fuzz_u8(in), &p);

		if (n > VH_RAM_SIZE - gpa)
			n = VH_RAM_SIZE - gpa;
		memcpy(h->mem.buf + gpa, p, n);
		break;
	}
	case VH_OP_BRING_UP: {
		uint8_t clear = fuzz_u8(in);

		bring_up(h, clear, fuzz_u8(in));
		break;
	}
	case VH_OP_NOTIFY:
		vh_write32(h, VIRTIO_MMIO_QUEUE_NOTIFY, fuzz_u8(in));
		break;
	case VH_OP_CHAIN: {
		struct fake_vq *f = queue_arg(h, in);
		struct fake_buf b[8];
		unsigned n = 1 + fuzz_u8(in) % 8;

		for (unsigned i = 0; i < n; i++) {
			b[i].gpa = fuzz_u16(in);
			b[i].len = fuzz_u16(in);
			b[i].write = fuzz_u8(in) & 1;
		}
		if (f)
			fake_vq_add_chain(f, b, n);
		break;
	}
	case VH_OP_DESC: {
		struct fake_vq *f = queue_arg(h, in);
		uint16_t i = fuzz_u16(in);
		uint64_t addr = fuzz_u64(in);
		uint32_t len = fuzz_u32(in);
		uint16_t flags = fuzz_u16(in), next = fuzz_u16(in);

		if (f)
			fake_vq_set_desc(f, i, addr, len, flags, next);
		break;
	}
	case VH_OP_RING: {
		struct fake_vq *f = queue_arg(h, in);
		uint8_t what = fuzz_u8(in);
		uint16_t val = fuzz_u16(in);

		if (!f)
			break;
		switch (what % 4) {
		case 0:
			fake_vq_publish(f, val);
			break;
		case 1:
			fake_vq_set_avail_idx(f, val);
			break;
		case 2:
			fake_vq_set_avail_flags(f, val);
			break;
		default:
			fake_vq_set_used_event(f, val);
			break;
		}
		break;
	}
	case VH_OP_DEVICE:
		if (h->d->op)
			h->d->op(h, h->dev, in);
		break;
	}
}

int vh_run(const struct vh_device *d, const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	struct vh *h = &the_vh;
	int ret;

	if (!h->mem.buf)
		fake_mem_init(&h->mem, VH_RAM_SIZE);
	else
		memset(h->mem.buf, 0, VH_RAM_SIZE);
	h->d = d;
	h->irq = (struct irq_line){ .fd = -1 };
	h->t = NULL;
	h->dev = NULL;
	memset(h->vq, 0, sizeof(h->vq));
	memset(h->vq_up, 0, sizeof(h->vq_up));

	ret = d->create(h, fuzz_u8(&in), &h->dev);
	if (ret)
		fuzz_fail("%s: create: %s", d->ops->name, strerror(-ret));
	ret = virtio_mmio_create(&h->mem.gm, &h->irq, d->ops, h->dev, &h->t);
	if (ret)
		fuzz_fail("%s: virtio_mmio_create: %s", d->ops->name, strerror(-ret));
	bus_init(&h->bus, "mmio");
	ret = bus_register(&h->bus, VH_MMIO_BASE, VIRTIO_MMIO_WINDOW, &virtio_mmio_dev_ops, h->t);
	if (ret)
		fuzz_fail("bus_register: %s", strerror(-ret));

	for (unsigned i = 0; i < VH_MAX_OPS && in.n; i++)
		run_op(h, &in);

	virtio_mmio_destroy(h->t); /* and the device */
	h->t = NULL;
	h->dev = NULL;
	if (d->cleanup)
		d->cleanup(h);
	return 0;
}

/* ---- seed builders ---- */

void vh_seed_mem(struct fuzz_seed *s, uint16_t gpa, const void *p, uint8_t len)
{
	seed_u8(s, VH_OP_MEM);
	seed_u16(s, gpa);
	seed_u8(s, len);
	seed_bytes(s, p, len);
}

void vh_seed_bring_up(struct fuzz_seed *s, uint8_t clear, uint8_t qsize)
{
	seed_u8(s, VH_OP_BRING_UP);
	seed_u8(s, clear);
	seed_u8(s, qsize);
}

void vh_seed_notify(struct fuzz_seed *s, uint8_t q)
{
	seed_u8(s, VH_OP_NOTIFY);
	seed_u8(s, q);
}

void vh_seed_chain(struct fuzz_seed *s, uint8_t q, const struct fake_buf *b, uint8_t n)
{
	seed_u8(s, VH_OP_CHAIN);
	seed_u8(s, q);
	seed_u8(s, (uint8_t)(n - 1));
	for (unsigned i = 0; i < n; i++) {
		seed_u16(s, (uint16_t)b[i].gpa);
		seed_u16(s, (uint16_t)b[i].len);
		seed_u8(s, b[i].write);
	}
}

void vh_seed_desc(struct fuzz_seed *s, uint8_t q, uint16_t i, uint64_t addr, uint32_t len,
		  uint16_t flags, uint16_t next)
{
	seed_u8(s, VH_OP_DESC);
	seed_u8(s, q);
	seed_u16(s, i);
	seed_u64(s, addr);
	seed_u32(s, len);
	seed_u16(s, flags);
	seed_u16(s, next);
}

void vh_seed_ring(struct fuzz_seed *s, uint8_t q, uint8_t what, uint16_t val)
{
	seed_u8(s, VH_OP_RING);
	seed_u8(s, q);
	seed_u8(s, what);
	seed_u16(s, val);
}

void vh_seed_device(struct fuzz_seed *s)
{
	seed_u8(s, VH_OP_DEVICE);
}
