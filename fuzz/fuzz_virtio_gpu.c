/* virtio-gpu (virtio 1.2 §5.7) driven by a hostile driver (fuzz/harness.h) over a display.
 * Besides the harness's raw register, ring and memory operations, the device operation builds
 * whole controlq or cursorq commands from the input (so that resources, backing, scanouts and
 * transfers are reached, not only the header checks), asks the host for a resize, or
 * round-trips the device's snapshot record: a state the device reached must restore into a
 * fresh device and save back byte for byte, and a record made of input bytes is either refused
 * or does the same.
 *
 * Input: [cfg] then harness operations.  Device operation: u8 what, then
 *   0 (command): u8 queue, u8 kind, u8 fence, u8 trunc, u8 resp, u8 id, u8 id2, u8 fmt,
 *      u16 x, u16 y, u16 w, u16 h, u32 offset, u8 n, n * (u16 addr, u16 len)  (n <= 8)
 *   1 (resize): u16 w, u16 h
 *   2 (snapshot round trip of the live device)
 *   3 (restore a record): u16 len, len bytes of payload */
#include "devices/virtio/gpu.h"
#include "devices/virtio/mmio.h"
#include "harness.h"
#include "snapshot/snap.h"
#include "ui/display.h"

#include <string.h>

#define CMD_GPA	 0x8000u
#define RESP_GPA 0x9000u
#define FUZZ_ID	 "virtio-gpu"

enum { DOP_CMD, DOP_RESIZE, DOP_SNAP, DOP_RESTORE, DOP_N };

static const uint32_t kinds[] = {
	VIRTIO_GPU_CMD_GET_DISPLAY_INFO,
	VIRTIO_GPU_CMD_RESOURCE_CREATE_2D,
	VIRTIO_GPU_CMD_RESOURCE_UNREF,
	VIRTIO_GPU_CMD_SET_SCANOUT,
	VIRTIO_GPU_CMD_RESOURCE_FLUSH,
	VIRTIO_GPU_CMD_TRANSFER_TO_HOST_2D,
	VIRTIO_GPU_CMD_RESOURCE_ATTACH_BACKING,
	VIRTIO_GPU_CMD_RESOURCE_DETACH_BACKING,
	VIRTIO_GPU_CMD_GET_EDID,
	VIRTIO_GPU_CMD_UPDATE_CURSOR,
	VIRTIO_GPU_CMD_MOVE_CURSOR,
	0x0200 /* 3D: unsupported */,
};
#define NR_KINDS (sizeof(kinds) / sizeof(kinds[0]))

static const uint32_t fmts[] = { DISPLAY_FMT_BGRA, DISPLAY_FMT_BGRX, DISPLAY_FMT_ARGB,
				 DISPLAY_FMT_XRGB, DISPLAY_FMT_RGBA, DISPLAY_FMT_XBGR,
				 DISPLAY_FMT_ABGR, DISPLAY_FMT_RGBX, 5 /* invalid */ };
static const uint32_t resp_sizes[] = { 0, VIRTIO_GPU_HDR_SIZE, VIRTIO_GPU_DISPLAY_INFO_SIZE,
				       VIRTIO_GPU_EDID_RESP_SIZE };

static struct display *disp;

static int gpu_create(struct vh *h, uint8_t cfg, void **dev)
{
	int ret = display_create(640, 480, &disp);

	if (ret)
		return ret;
	ret = virtio_gpu_create(disp, (struct virtio_gpu **)dev);
	if (ret) {
		display_destroy(disp);
		disp = NULL;
		return ret;
	}
	virtio_gpu_set_gmem(*dev, &h->mem.gm);
	return 0;
}

static void gpu_cleanup(struct vh *h)
{
	display_destroy(disp);
	disp = NULL;
}

static void put32(uint8_t *p, unsigned off, uint32_t v)
{
	virtio_put_le(p + off, v, 4);
}

static void do_cmd(struct vh *h, struct fuzz_in *in)
{
	uint8_t req[32 + 8 * 16] = { 0 };
	unsigned q = fuzz_u8(in) & 1;
	uint32_t type = kinds[fuzz_u8(in) % NR_KINDS];
	bool fence = fuzz_u8(in) & 1;
	uint8_t trunc = fuzz_u8(in);
	uint32_t resp = resp_sizes[fuzz_u8(in) % 4];
	uint32_t id = fuzz_u8(in) % 8, id2 = fuzz_u8(in) & 1, fmt = fmts[fuzz_u8(in) % 9];
	uint32_t x = fuzz_u16(in), y = fuzz_u16(in), w = fuzz_u16(in), hh = fuzz_u16(in);
	uint32_t off = fuzz_u32(in), n = fuzz_u8(in) % 9, len = 24;
	struct fake_buf b[2];

	put32(req, 0, type);
	if (fence) {
		put32(req, 4, VIRTIO_GPU_FLAG_FENCE);
		virtio_put_le(req + 8, 0x1234, 8);
	}
	switch (type) {
	case VIRTIO_GPU_CMD_RESOURCE_CREATE_2D:
		put32(req, 24, id);
		put32(req, 28, fmt);
		put32(req, 32, w);
		put32(req, 36, hh);
		len = 40;
		break;
	case VIRTIO_GPU_CMD_RESOURCE_UNREF:
	case VIRTIO_GPU_CMD_RESOURCE_DETACH_BACKING:
		put32(req, 24, id);
		len = 32;
		break;
	case VIRTIO_GPU_CMD_GET_EDID:
		put32(req, 24, id2);
		len = 32;
		break;
	case VIRTIO_GPU_CMD_SET_SCANOUT:
	case VIRTIO_GPU_CMD_RESOURCE_FLUSH:
	case VIRTIO_GPU_CMD_TRANSFER_TO_HOST_2D:
		put32(req, 24, x);
		put32(req, 28, y);
		put32(req, 32, w);
		put32(req, 36, hh);
		if (type == VIRTIO_GPU_CMD_SET_SCANOUT) {
			put32(req, 40, id2);
			put32(req, 44, id);
		} else if (type == VIRTIO_GPU_CMD_RESOURCE_FLUSH) {
			put32(req, 40, id);
		} else {
			virtio_put_le(req + 40, off, 8);
			put32(req, 48, id);
		}
		len = type == VIRTIO_GPU_CMD_TRANSFER_TO_HOST_2D ? 56 : 48;
		break;
	case VIRTIO_GPU_CMD_RESOURCE_ATTACH_BACKING:
		put32(req, 24, id);
		put32(req, 28, n);
		len = 32 + n * 16;
		break;
	case VIRTIO_GPU_CMD_UPDATE_CURSOR:
	case VIRTIO_GPU_CMD_MOVE_CURSOR:
		put32(req, 24, id2);
		put32(req, 28, x);
		put32(req, 32, y);
		put32(req, 40, id);
		put32(req, 44, w);
		put32(req, 48, hh);
		len = 56;
		break;
	}
	for (uint32_t i = 0; i < n; i++) {
		uint16_t a = fuzz_u16(in), l = fuzz_u16(in);

		if (type != VIRTIO_GPU_CMD_RESOURCE_ATTACH_BACKING)
			continue;
		virtio_put_le(req + 32 + 16 * i, a, 8);
		put32(req, 32 + 16 * i + 8, l);
	}
	if (trunc < 16 && trunc * 4u < len)
		len = trunc * 4u; /* a short request */
	if (!h->vq_up[q])
		return;
	memcpy(h->mem.buf + CMD_GPA, req, len);
	b[0] = (struct fake_buf){ CMD_GPA, len, false };
	b[1] = (struct fake_buf){ RESP_GPA, resp, true };
	fake_vq_add_chain(&h->vq[q], b, resp ? 2 : 1);
	vh_write32(h, VIRTIO_MMIO_QUEUE_NOTIFY, q);
}

/* The device's record payload in a finished writer. */
static void payload(struct snap_writer *w, struct snap_file *f, const uint8_t **p, size_t *len)
{
	char why[128];
	struct snap_reader r;

	if (snap_writer_finish(w) || snap_file_parse(f, w->buf, w->len, why, sizeof(why)) ||
	    snap_file_find(f, SNAP_REC_VIRTIO_GPU, FUZZ_ID, &r))
		fuzz_fail("snapshot framing: %s", why);
	*p = r.p;
	*len = r.len;
}

/* Restore `f` into a fresh device over the same memory; if it is accepted (must be when
 * `must`), it saves back to exactly `p[0..len)`. */
static void restore_check(struct vh *h, const struct snap_file *f, const uint8_t *p, size_t len,
			  bool must)
{
	struct display *d2;
	struct virtio_gpu *g2;
	struct snap_writer w2;
	struct snap_file f2;
	const uint8_t *p2;
	size_t len2;
	int ret;

	if (display_create(640, 480, &d2))
		fuzz_fail("display_create");
	if (virtio_gpu_create(d2, &g2))
		fuzz_fail("virtio_gpu_create");
	virtio_gpu_set_gmem(g2, &h->mem.gm);
	ret = virtio_gpu_ops.restore(g2, f, FUZZ_ID);
	if (must && ret)
		fuzz_fail("a saved state was refused: %d", ret);
	if (!ret) {
		snap_writer_init(&w2);
		FUZZ_CHECK(virtio_gpu_ops.save(g2, &w2, FUZZ_ID) == 0);
		payload(&w2, &f2, &p2, &len2);
		FUZZ_CHECK(len2 == len && !memcmp(p2, p, len));
		snap_writer_free(&w2);
	}
	virtio_gpu_destroy(g2);
	display_destroy(d2);
}

static void gpu_op(struct vh *h, void *dev, struct fuzz_in *in)
{
	struct snap_writer w;
	struct snap_file f;
	const uint8_t *p;
	size_t len;

	switch (fuzz_u8(in) % DOP_N) {
	case DOP_CMD:
		do_cmd(h, in);
		break;
	case DOP_RESIZE: {
		uint16_t w16 = fuzz_u16(in), h16 = fuzz_u16(in);

		(void)!display_request_size(disp, w16, h16);
		break;
	}
	case DOP_SNAP:
		snap_writer_init(&w);
		virtio_mmio_quiesce(h->t);
		FUZZ_CHECK(virtio_mmio_dev_ops.save(h->t, &w, FUZZ_ID) == 0);
		payload(&w, &f, &p, &len);
		restore_check(h, &f, p, len, true);
		snap_writer_free(&w);
		break;
	case DOP_RESTORE: {
		const uint8_t *raw;
		size_t n = fuzz_bytes(in, fuzz_u16(in) % 1024, &raw);

		snap_writer_init(&w);
		/* The current version: an accepted record must save back byte for byte. */
		snap_rec_begin(&w, SNAP_REC_VIRTIO_GPU, 2, FUZZ_ID);
		snap_put_bytes(&w, raw, n);
		payload(&w, &f, &p, &len);
		restore_check(h, &f, p, len, false);
		snap_writer_free(&w);
		break;
	}
	}
}

static const struct vh_device gpu_dev = {
	.ops = &virtio_gpu_ops,
	.create = gpu_create,
	.op = gpu_op,
	.cleanup = gpu_cleanup,
};

/* Seed encoding of a DOP_CMD. */
struct scmd {
	uint8_t q, kind, fence, trunc, resp, id, id2, fmt;
	uint16_t x, y, w, h;
	uint32_t off;
	uint8_t n;
	uint16_t addr[8], len[8];
};

static void seed_cmd(struct fuzz_seed *s, const struct scmd *c)
{
	vh_seed_device(s);
	seed_u8(s, DOP_CMD);
	seed_u8(s, c->q);
	seed_u8(s, c->kind);
	seed_u8(s, c->fence);
	seed_u8(s, c->trunc);
	seed_u8(s, c->resp);
	seed_u8(s, c->id);
	seed_u8(s, c->id2);
	seed_u8(s, c->fmt);
	seed_u16(s, c->x);
	seed_u16(s, c->y);
	seed_u16(s, c->w);
	seed_u16(s, c->h);
	seed_u32(s, c->off);
	seed_u8(s, c->n);
	for (unsigned i = 0; i < c->n; i++) {
		seed_u16(s, c->addr[i]);
		seed_u16(s, c->len[i]);
	}
}

static void write_seeds(void)
{
	static struct fuzz_seed s;
	/* kinds[] indices */
	const uint8_t INFO = 0, CREATE = 1, UNREF = 2, SCANOUT = 3, FLUSH = 4, XFER = 5, ATTACH = 6,
		      EDID = 8, CURSOR = 9;
	const struct scmd session[] = {
		{ .kind = INFO, .trunc = 0xff, .resp = 2 },
		{ .kind = EDID, .trunc = 0xff, .resp = 3 },
		{ .kind = CREATE, .trunc = 0xff, .resp = 1, .id = 1, .fmt = 1, .w = 64, .h = 64 },
		{ .kind = ATTACH,
		  .trunc = 0xff,
		  .resp = 1,
		  .id = 1,
		  .n = 2,
		  .addr = { 0xa000, 0xc000 },
		  .len = { 0x2000, 0x2000 } },
		{ .kind = SCANOUT, .trunc = 0xff, .resp = 1, .id = 1, .w = 64, .h = 64 },
		{ .kind = XFER, .trunc = 0xff, .resp = 1, .fence = 1, .id = 1, .w = 64, .h = 64 },
		{ .kind = FLUSH, .trunc = 0xff, .resp = 1, .id = 1, .x = 8, .w = 16, .h = 16 },
		{ .kind = CREATE, .trunc = 0xff, .resp = 1, .id = 2, .fmt = 0, .w = 64, .h = 64 },
		{ .q = 1, .kind = CURSOR, .trunc = 0xff, .id = 2, .x = 5, .y = 6 },
	};

	seed_u8(&s, 0);
	vh_seed_bring_up(&s, 0, 4);
	for (unsigned i = 0; i < sizeof(session) / sizeof(session[0]); i++)
		seed_cmd(&s, &session[i]);
	vh_seed_device(&s);
	seed_u8(&s, DOP_RESIZE);
	seed_u16(&s, 800);
	seed_u16(&s, 600);
	vh_seed_device(&s);
	seed_u8(&s, DOP_SNAP);
	seed_cmd(&s, &(struct scmd){ .kind = UNREF, .trunc = 0xff, .resp = 1, .id = 1 });
	fuzz_seed_save(&s, "session");

	/* A record to mutate: no resources, scanout off, cursor hidden. */
	seed_u8(&s, 0);
	vh_seed_device(&s);
	seed_u8(&s, DOP_RESTORE);
	seed_u16(&s, 4 + 4 + 20 + 20);
	for (unsigned i = 0; i < 48; i++)
		seed_u8(&s, 0);
	fuzz_seed_save(&s, "record");
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	write_seeds();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return vh_run(&gpu_dev, data, size);
}
