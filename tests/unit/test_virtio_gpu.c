/* virtio-gpu 2D (virtio 1.2 §5.7) driven through the virtio-mmio transport by the fake driver,
 * with commands built in fake guest memory and the result read back from the display. */
#include "core/irq.h"
#include "devices/virtio/gpu.h"
#include "devices/virtio/mmio.h"
#include "devices/virtio/virtio.h"
#include "devices/virtio/virtq.h"
#include "fake_driver.h"
#include "fake_virtq.h"
#include "snapshot/snap.h"
#include "ui/display.h"

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define RAM_SIZE (8u << 20)
#define QSIZE	 16
#define REQ_GPA	 0x10000
#define ENT_GPA	 0x12000 /* attach entries */
#define RESP_GPA 0x14000
#define FB_GPA	 0x100000 /* framebuffers: 1 MiB .. */
#define BIG_GPA	 0x400000 /* a 1 MiB entry table for the entry limits */
#define DISP_W	 640
#define DISP_H	 480
#define ALL_FEAT (~0ull)
#define FENCE_ID 0x1122334455667788ull

struct fixture {
	struct fake_mem mem;
	struct fake_vq f[2];
	struct irq_line irq;
	struct display *d;
	struct virtio_gpu *g;
	struct virtio_mmio *t;
};

static void bring_up(struct fixture *x)
{
	fdrv_negotiate(x->t, ALL_FEAT);
	fdrv_queue(x->t, 0, &x->f[0], &x->mem, QSIZE, 0x1000, 0x2000, 0x3000,
		   VIRTIO_GPU_QUEUE_SIZE);
	fdrv_queue(x->t, 1, &x->f[1], &x->mem, QSIZE, 0x4000, 0x5000, 0x6000,
		   VIRTIO_GPU_QUEUE_SIZE);
	fdrv_driver_ok(x->t);
}

static int setup(void **state)
{
	struct fixture *x = calloc(1, sizeof(*x));

	fake_mem_init(&x->mem, RAM_SIZE);
	x->irq.fd = -1;
	assert_int_equal(display_create(DISP_W, DISP_H, &x->d), 0);
	assert_int_equal(virtio_gpu_create(x->d, &x->g), 0);
	virtio_gpu_set_gmem(x->g, &x->mem.gm);
	assert_int_equal(virtio_mmio_create(&x->mem.gm, &x->irq, &virtio_gpu_ops, x->g, &x->t), 0);
	bring_up(x);
	*state = x;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *x = *state;

	virtio_mmio_destroy(x->t); /* and the device */
	display_destroy(x->d);
	fake_mem_free(&x->mem);
	free(x);
	return 0;
}

/* ---- requests ---- */

struct req {
	uint8_t b[64];
	uint32_t len;
};

static void put(struct req *r, unsigned off, uint64_t v, unsigned size)
{
	virtio_put_le(r->b + off, v, size);
	if (off + size > r->len)
		r->len = off + size;
}

static struct req hdr(uint32_t type, bool fence)
{
	struct req r = { .len = VIRTIO_GPU_HDR_SIZE };

	put(&r, 0, type, 4);
	if (fence) {
		put(&r, 4, VIRTIO_GPU_FLAG_FENCE, 4);
		put(&r, 8, FENCE_ID, 8);
		put(&r, 16, 7, 4); /* ctx_id */
	}
	return r;
}

static struct req req4(uint32_t type, uint32_t a, uint32_t b, uint32_t c, uint32_t d, uint32_t e,
		       uint32_t f)
{
	struct req r = hdr(type, false);

	put(&r, 24, a, 4);
	put(&r, 28, b, 4);
	put(&r, 32, c, 4);
	put(&r, 36, d, 4);
	put(&r, 40, e, 4);
	put(&r, 44, f, 4);
	return r;
}

static struct req create_req(uint32_t id, uint32_t fmt, uint32_t w, uint32_t h)
{
	struct req r = req4(VIRTIO_GPU_CMD_RESOURCE_CREATE_2D, id, fmt, w, h, 0, 0);

	r.len = 40;
	return r;
}

static struct req id_req(uint32_t type, uint32_t id)
{
	struct req r = req4(type, id, 0, 0, 0, 0, 0);

	r.len = 32;
	return r;
}

static struct req scanout_req(uint32_t x, uint32_t y, uint32_t w, uint32_t h, uint32_t sid,
			      uint32_t id)
{
	struct req r = req4(VIRTIO_GPU_CMD_SET_SCANOUT, x, y, w, h, sid, id);

	r.len = 48;
	return r;
}

static struct req flush_req(uint32_t x, uint32_t y, uint32_t w, uint32_t h, uint32_t id)
{
	struct req r = req4(VIRTIO_GPU_CMD_RESOURCE_FLUSH, x, y, w, h, id, 0);

	r.len = 48;
	return r;
}

static struct req transfer_req(uint32_t x, uint32_t y, uint32_t w, uint32_t h, uint64_t off,
			       uint32_t id)
{
	struct req r = req4(VIRTIO_GPU_CMD_TRANSFER_TO_HOST_2D, x, y, w, h, 0, 0);

	put(&r, 40, off, 8);
	put(&r, 48, id, 4);
	put(&r, 52, 0, 4);
	return r;
}

static struct req cursor_req(uint32_t type, uint32_t sid, uint32_t x, uint32_t y, uint32_t id,
			     uint32_t hx, uint32_t hy)
{
	struct req r = req4(type, sid, x, y, 0, id, hx);

	put(&r, 48, hy, 4);
	put(&r, 52, 0, 4);
	return r;
}

/* Publish `bufs` on queue q, notify, take the used element; returns used.len. */
static uint32_t run_chain(struct fixture *x, unsigned q, const struct fake_buf *bufs, unsigned n)
{
	uint32_t id, len;
	uint16_t head = fake_vq_add_chain(&x->f[q], bufs, n);

	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, q);
	assert_true(fake_vq_get_used(&x->f[q], &id, &len));
	assert_int_equal(id, head);
	return len;
}

/* One command: request at REQ_GPA, a response buffer of resp_len bytes (0: none) at RESP_GPA,
 * filled with 0xee first.  Returns used.len. */
static uint32_t cmd_q(struct fixture *x, unsigned q, const struct req *r, uint32_t resp_len)
{
	struct fake_buf b[2] = { { REQ_GPA, r->len, false }, { RESP_GPA, resp_len, true } };

	memcpy(fake_mem_ptr(&x->mem, REQ_GPA, r->len), r->b, r->len);
	memset(fake_mem_ptr(&x->mem, RESP_GPA, 0x1000), 0xee, 0x1000);
	return run_chain(x, q, b, resp_len ? 2 : 1);
}

static uint32_t resp_u32(struct fixture *x, unsigned off)
{
	return (uint32_t)virtio_get_le(fake_mem_ptr(&x->mem, RESP_GPA + off, 4), 4);
}

/* A controlq command with a header-sized response: returns the response type. */
static uint32_t cmd(struct fixture *x, struct req r)
{
	assert_int_equal(cmd_q(x, 0, &r, VIRTIO_GPU_HDR_SIZE), VIRTIO_GPU_HDR_SIZE);
	return resp_u32(x, 0);
}

/* ATTACH_BACKING of entries (addr, len) pairs, the entries in a second descriptor as Linux
 * sends them.  Returns the response type (0 if the chain got no response). */
static uint32_t attach(struct fixture *x, uint32_t id, uint32_t nr, const uint64_t *addr,
		       const uint32_t *len, unsigned n_given)
{
	struct req r = req4(VIRTIO_GPU_CMD_RESOURCE_ATTACH_BACKING, id, nr, 0, 0, 0, 0);
	uint8_t *e = fake_mem_ptr(&x->mem, ENT_GPA, 0x1000);
	struct fake_buf b[3] = { { REQ_GPA, 32, false },
				 { ENT_GPA, n_given * VIRTIO_GPU_MEM_ENTRY_SIZE, false },
				 { RESP_GPA, VIRTIO_GPU_HDR_SIZE, true } };
	uint32_t used;

	assert_true(n_given * VIRTIO_GPU_MEM_ENTRY_SIZE <= 0x1000);
	r.len = 32;
	for (unsigned i = 0; i < n_given; i++) {
		virtio_put_le(e + 16 * i, addr[i], 8);
		virtio_put_le(e + 16 * i + 8, len[i], 4);
		virtio_put_le(e + 16 * i + 12, 0, 4);
	}
	memcpy(fake_mem_ptr(&x->mem, REQ_GPA, 32), r.b, 32);
	memset(fake_mem_ptr(&x->mem, RESP_GPA, 64), 0xee, 64);
	used = n_given ? run_chain(x, 0, b, 3)
		       : run_chain(x, 0, (struct fake_buf[]){ b[0], b[2] }, 2);
	return used ? resp_u32(x, 0) : 0;
}

/* The test pattern: the pixel at (px, py) of a framebuffer, as 0x00RRGGBB. */
static uint32_t pattern(uint32_t px, uint32_t py, uint32_t salt)
{
	return ((px * 7 + salt) & 0xff) << 16 | ((py * 13) & 0xff) << 8 | ((px ^ py) & 0xff);
}

/* Write a w x h BGRX framebuffer of pattern(salt) at gpa (rows w * 4 bytes). */
static void draw(struct fixture *x, uint64_t gpa, uint32_t w, uint32_t h, uint32_t salt)
{
	uint8_t *p = fake_mem_ptr(&x->mem, gpa, (size_t)w * h * 4);

	for (uint32_t py = 0; py < h; py++)
		for (uint32_t px = 0; px < w; px++) {
			uint32_t v = pattern(px, py, salt);
			uint8_t *q = p + ((size_t)py * w + px) * 4;

			q[0] = (uint8_t)v;
			q[1] = (uint8_t)(v >> 8);
			q[2] = (uint8_t)(v >> 16);
			q[3] = 0x5a; /* X: ignored */
		}
}

/* The display shows (sx, sy, w, h) of a framebuffer of pattern(salt) at its origin. */
static void expect_screen(struct fixture *x, struct display *d, uint32_t sx, uint32_t sy,
			  uint32_t w, uint32_t h, uint32_t salt)
{
	uint32_t *px, dw, dh;

	assert_int_equal(display_copy(d, &px, &dw, &dh, NULL), 0);
	assert_non_null(px);
	assert_int_equal(dw, w);
	assert_int_equal(dh, h);
	for (uint32_t y = 0; y < h; y++)
		for (uint32_t xx = 0; xx < w; xx++)
			if (px[y * w + xx] != pattern(sx + xx, sy + y, salt))
				fail_msg("pixel %u,%u: %#x, want %#x", xx, y, px[y * w + xx],
					 pattern(sx + xx, sy + y, salt));
	free(px);
}

static bool needs_reset(struct fixture *x)
{
	return virtio_mmio_status(x->t) & VIRTIO_STATUS_DEVICE_NEEDS_RESET;
}

/* Resource `id`, FB_W x FB_H BGRX, backed by three uneven pieces of guest RAM far apart. */
#define FB_W	 128
#define FB_H	 80
#define FB_BYTES (FB_W * FB_H * 4)

static const uint64_t fb_addr[3] = { FB_GPA + 0x20000, FB_GPA, FB_GPA + 0x40000 };
static const uint32_t fb_len[3] = { 10001, 20003, FB_BYTES - 30004 };

/* The guest's view: one linear framebuffer, scattered by fb_addr/fb_len. */
static void draw_scattered(struct fixture *x, uint32_t salt)
{
	uint8_t *lin = malloc(FB_BYTES);
	uint64_t off = 0;

	draw(x, BIG_GPA, FB_W, FB_H, salt);
	memcpy(lin, fake_mem_ptr(&x->mem, BIG_GPA, FB_BYTES), FB_BYTES);
	for (unsigned i = 0; i < 3; i++) {
		memcpy(fake_mem_ptr(&x->mem, fb_addr[i], fb_len[i]), lin + off, fb_len[i]);
		off += fb_len[i];
	}
	free(lin);
}

static void make_fb(struct fixture *x, uint32_t id)
{
	assert_int_equal(cmd(x, create_req(id, DISPLAY_FMT_BGRX, FB_W, FB_H)),
			 VIRTIO_GPU_RESP_OK_NODATA);
	assert_int_equal(attach(x, id, 3, fb_addr, fb_len, 3), VIRTIO_GPU_RESP_OK_NODATA);
}

/* ---- tests ---- */

static void test_identity(void **state)
{
	struct fixture *x = *state;
	uint64_t f = fdrv_device_features(x->t);

	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_DEVICE_ID), VIRTIO_ID_GPU);
	assert_true(f & VIRTIO_BIT(VIRTIO_F_VERSION_1));
	assert_true(f & VIRTIO_BIT(VIRTIO_GPU_F_EDID));
	assert_false(f & VIRTIO_BIT(VIRTIO_GPU_F_VIRGL));
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_CONFIG + VIRTIO_GPU_CFG_EVENTS_READ), 0);
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_CONFIG + VIRTIO_GPU_CFG_NUM_SCANOUTS), 1);
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_CONFIG + VIRTIO_GPU_CFG_NUM_CAPSETS), 0);
	assert_int_equal(virtio_mmio_dev_ops.read(x->t, VIRTIO_MMIO_CONFIG + 8, 1), 1);
	/* Read-only fields ignore writes. */
	fdrv_wr(x->t, VIRTIO_MMIO_CONFIG + VIRTIO_GPU_CFG_NUM_SCANOUTS, 5);
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_CONFIG + VIRTIO_GPU_CFG_NUM_SCANOUTS), 1);
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_SEL, 2);
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_QUEUE_NUM_MAX), 0);
	assert_false(needs_reset(x));
}

static void test_display_info(void **state)
{
	struct fixture *x = *state;
	struct req r = hdr(VIRTIO_GPU_CMD_GET_DISPLAY_INFO, false);

	assert_int_equal(cmd_q(x, 0, &r, VIRTIO_GPU_DISPLAY_INFO_SIZE),
			 VIRTIO_GPU_DISPLAY_INFO_SIZE);
	assert_int_equal(resp_u32(x, 0), VIRTIO_GPU_RESP_OK_DISPLAY_INFO);
	assert_int_equal(resp_u32(x, 4), 0); /* no fence asked, none given */
	assert_int_equal(resp_u32(x, 24), 0);
	assert_int_equal(resp_u32(x, 28), 0);
	assert_int_equal(resp_u32(x, 32), DISP_W);
	assert_int_equal(resp_u32(x, 36), DISP_H);
	assert_int_equal(resp_u32(x, 40), 1); /* enabled */
	for (unsigned i = 1; i < VIRTIO_GPU_MAX_SCANOUTS; i++)
		for (unsigned k = 0; k < 24; k += 4)
			assert_int_equal(resp_u32(x, 24 + 24 * i + k), 0);
	/* Nothing past the response was written. */
	assert_int_equal(resp_u32(x, VIRTIO_GPU_DISPLAY_INFO_SIZE), 0xeeeeeeee);
}

/* Decode the preferred detailed timing of an EDID block. */
static void edid_mode(const uint8_t *e, uint32_t *w, uint32_t *h)
{
	const uint8_t *p = e + 54;

	*w = p[2] | (uint32_t)(p[4] >> 4) << 8;
	*h = p[5] | (uint32_t)(p[7] >> 4) << 8;
	assert_true(p[0] | p[1]); /* a pixel clock: a timing, not a descriptor */
}

static void check_edid(const uint8_t *e, uint32_t w, uint32_t h)
{
	static const uint8_t magic[8] = { 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0 };
	unsigned sum = 0;
	uint32_t ew, eh;

	assert_memory_equal(e, magic, 8);
	for (unsigned i = 0; i < VIRTIO_GPU_EDID_SIZE; i++)
		sum += e[i];
	assert_int_equal(sum % 256, 0);
	assert_int_equal(e[18], 1);
	assert_int_equal(e[19], 4);
	assert_int_equal(e[126], 0); /* no extensions */
	edid_mode(e, &ew, &eh);
	assert_int_equal(ew, w);
	assert_int_equal(eh, h);
	/* The monitor name descriptor. */
	assert_int_equal(e[72 + 3], 0xfc);
	assert_memory_equal(e + 72 + 5, "ignition\n", 9);
}

static void test_edid(void **state)
{
	struct fixture *x = *state;
	struct req r = id_req(VIRTIO_GPU_CMD_GET_EDID, 0);
	uint8_t e[VIRTIO_GPU_EDID_SIZE];

	assert_int_equal(cmd_q(x, 0, &r, VIRTIO_GPU_EDID_RESP_SIZE), VIRTIO_GPU_EDID_RESP_SIZE);
	assert_int_equal(resp_u32(x, 0), VIRTIO_GPU_RESP_OK_EDID);
	assert_int_equal(resp_u32(x, 24), VIRTIO_GPU_EDID_SIZE);
	check_edid(fake_mem_ptr(&x->mem, RESP_GPA + 32, VIRTIO_GPU_EDID_SIZE), DISP_W, DISP_H);
	/* The rest of the 1024-byte blob is zero. */
	assert_int_equal(*(uint8_t *)fake_mem_ptr(&x->mem, RESP_GPA + 32 + 128, 1), 0);
	/* Scanout 1 does not exist. */
	r = id_req(VIRTIO_GPU_CMD_GET_EDID, 1);
	assert_int_equal(cmd_q(x, 0, &r, VIRTIO_GPU_EDID_RESP_SIZE), VIRTIO_GPU_HDR_SIZE);
	assert_int_equal(resp_u32(x, 0), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	/* Other modes, up to the display's largest. */
	virtio_gpu_build_edid(1920, 1080, e);
	check_edid(e, 1920, 1080);
	virtio_gpu_build_edid(DISPLAY_MAX_W, DISPLAY_MAX_H, e);
	check_edid(e, DISPLAY_MAX_W, DISPLAY_MAX_H);
	virtio_gpu_build_edid(DISPLAY_MIN_DIM, DISPLAY_MIN_DIM, e);
	check_edid(e, DISPLAY_MIN_DIM, DISPLAY_MIN_DIM);
}

/* Create, attach a scattered backing, set the scanout, transfer, flush: the display shows the
 * guest's pixels; a partial update changes only its rectangle. */
static void test_happy_path(void **state)
{
	struct fixture *x = *state;
	uint32_t nr, w, h;
	uint64_t bytes, serial;

	draw_scattered(x, 1);
	make_fb(x, 1);
	virtio_gpu_usage(x->g, &nr, &bytes);
	assert_int_equal(nr, 1);
	assert_int_equal(bytes, FB_BYTES);
	assert_false(display_mode(x->d, &w, &h));
	assert_int_equal(cmd(x, scanout_req(0, 0, FB_W, FB_H, 0, 1)), VIRTIO_GPU_RESP_OK_NODATA);
	assert_true(display_mode(x->d, &w, &h));
	assert_int_equal(w, FB_W);
	assert_int_equal(h, FB_H);
	assert_int_equal(cmd(x, transfer_req(0, 0, FB_W, FB_H, 0, 1)), VIRTIO_GPU_RESP_OK_NODATA);
	/* Transferred, not flushed: the screen has not changed. */
	serial = display_serial(x->d);
	assert_int_equal(cmd(x, flush_req(0, 0, FB_W, FB_H, 1)), VIRTIO_GPU_RESP_OK_NODATA);
	assert_true(display_serial(x->d) > serial);
	expect_screen(x, x->d, 0, 0, FB_W, FB_H, 1);

	/* The guest redraws; only rows 20..26, columns 10..39 are transferred and flushed. */
	draw_scattered(x, 2);
	assert_int_equal(cmd(x, transfer_req(10, 20, 30, 7, 20 * FB_W * 4 + 10 * 4, 1)),
			 VIRTIO_GPU_RESP_OK_NODATA);
	assert_int_equal(cmd(x, flush_req(0, 0, FB_W, FB_H, 1)), VIRTIO_GPU_RESP_OK_NODATA);
	{
		uint32_t *px;

		assert_int_equal(display_copy(x->d, &px, &w, &h, NULL), 0);
		for (uint32_t y = 0; y < FB_H; y++)
			for (uint32_t xx = 0; xx < FB_W; xx++) {
				bool in = xx >= 10 && xx < 40 && y >= 20 && y < 27;

				assert_int_equal(px[y * FB_W + xx], pattern(xx, y, in ? 2 : 1));
			}
		free(px);
	}
	/* Everything now; then a scanout of a sub-rectangle: display coordinates start at its
	 * corner and a flush is clipped to it. */
	assert_int_equal(cmd(x, transfer_req(0, 0, FB_W, FB_H, 0, 1)), VIRTIO_GPU_RESP_OK_NODATA);
	assert_int_equal(cmd(x, scanout_req(16, 8, 96, 64, 0, 1)), VIRTIO_GPU_RESP_OK_NODATA);
	expect_screen(x, x->d, 16, 8, 96, 64, 2); /* shown at once, from the host copy */
	draw_scattered(x, 3);
	assert_int_equal(cmd(x, transfer_req(0, 0, FB_W, FB_H, 0, 1)), VIRTIO_GPU_RESP_OK_NODATA);
	assert_int_equal(cmd(x, flush_req(0, 0, 20, 10, 1)), VIRTIO_GPU_RESP_OK_NODATA);
	{
		uint32_t *px;

		assert_int_equal(display_copy(x->d, &px, &w, &h, NULL), 0);
		assert_int_equal(w, 96);
		/* Resource (16..19, 8..9) is display (0..3, 0..1): new; (4, 0) is old. */
		assert_int_equal(px[0], pattern(16, 8, 3));
		assert_int_equal(px[96 + 3], pattern(19, 9, 3));
		assert_int_equal(px[4], pattern(20, 8, 2));
		assert_int_equal(px[2 * 96], pattern(16, 10, 2));
		free(px);
	}
	assert_int_equal(cmd(x, flush_req(0, 0, FB_W, FB_H, 1)), VIRTIO_GPU_RESP_OK_NODATA);
	expect_screen(x, x->d, 16, 8, 96, 64, 3);
	/* Turning the scanout off (resource 0) turns the display off. */
	assert_int_equal(cmd(x, scanout_req(0, 0, 0, 0, 0, 0)), VIRTIO_GPU_RESP_OK_NODATA);
	assert_false(display_mode(x->d, &w, &h));
	assert_int_equal(cmd(x, id_req(VIRTIO_GPU_CMD_RESOURCE_UNREF, 1)),
			 VIRTIO_GPU_RESP_OK_NODATA);
	virtio_gpu_usage(x->g, &nr, &bytes);
	assert_int_equal(nr, 0);
	assert_int_equal(bytes, 0);
	assert_false(needs_reset(x));
}

/* Every format is converted to the display's 0x00RRGGBB by its byte order. */
static void test_formats(void **state)
{
	struct fixture *x = *state;
	static const struct {
		uint32_t fmt, want;
	} t[] = {
		{ DISPLAY_FMT_BGRA, 0x332211 }, { DISPLAY_FMT_BGRX, 0x332211 },
		{ DISPLAY_FMT_ARGB, 0x223344 }, { DISPLAY_FMT_XRGB, 0x223344 },
		{ DISPLAY_FMT_RGBA, 0x112233 }, { DISPLAY_FMT_RGBX, 0x112233 },
		{ DISPLAY_FMT_XBGR, 0x443322 }, { DISPLAY_FMT_ABGR, 0x443322 },
	};
	const uint32_t n = 64 * 64 * 4;
	uint8_t *p = fake_mem_ptr(&x->mem, FB_GPA, n);
	uint64_t addr = FB_GPA;

	for (uint32_t i = 0; i < n; i += 4) {
		p[i] = 0x11;
		p[i + 1] = 0x22;
		p[i + 2] = 0x33;
		p[i + 3] = 0x44;
	}
	for (unsigned i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		uint32_t *px, w, h, id = 10 + i;

		assert_int_equal(cmd(x, create_req(id, t[i].fmt, 64, 64)),
				 VIRTIO_GPU_RESP_OK_NODATA);
		assert_int_equal(attach(x, id, 1, &addr, &n, 1), VIRTIO_GPU_RESP_OK_NODATA);
		assert_int_equal(cmd(x, transfer_req(0, 0, 64, 64, 0, id)),
				 VIRTIO_GPU_RESP_OK_NODATA);
		assert_int_equal(cmd(x, scanout_req(0, 0, 64, 64, 0, id)),
				 VIRTIO_GPU_RESP_OK_NODATA);
		assert_int_equal(display_copy(x->d, &px, &w, &h, NULL), 0);
		assert_int_equal(px[0], t[i].want);
		assert_int_equal(px[64 * 64 - 1], t[i].want);
		free(px);
	}
}

/* §5.7.6.7: a fenced request's response carries the flag and the fence id, errors too. */
static void test_fence(void **state)
{
	struct fixture *x = *state;
	struct req r = create_req(1, DISPLAY_FMT_BGRX, 64, 64);

	put(&r, 4, VIRTIO_GPU_FLAG_FENCE, 4);
	put(&r, 8, FENCE_ID, 8);
	put(&r, 16, 7, 4);
	assert_int_equal(cmd(x, r), VIRTIO_GPU_RESP_OK_NODATA);
	assert_int_equal(resp_u32(x, 4), VIRTIO_GPU_FLAG_FENCE);
	assert_int_equal(virtio_get_le(fake_mem_ptr(&x->mem, RESP_GPA + 8, 8), 8), FENCE_ID);
	assert_int_equal(resp_u32(x, 16), 7);
	/* The same id again: an error, fenced as well. */
	assert_int_equal(cmd(x, r), VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
	assert_int_equal(resp_u32(x, 4), VIRTIO_GPU_FLAG_FENCE);
	assert_int_equal(virtio_get_le(fake_mem_ptr(&x->mem, RESP_GPA + 8, 8), 8), FENCE_ID);
	/* Without the flag: no flag, fence 0, even if the request had an id. */
	put(&r, 4, 0, 4);
	put(&r, 24, 2, 4);
	assert_int_equal(cmd(x, r), VIRTIO_GPU_RESP_OK_NODATA);
	assert_int_equal(resp_u32(x, 4), 0);
	assert_int_equal(virtio_get_le(fake_mem_ptr(&x->mem, RESP_GPA + 8, 8), 8), 0);
	/* A fenced GET_DISPLAY_INFO. */
	r = hdr(VIRTIO_GPU_CMD_GET_DISPLAY_INFO, true);
	assert_int_equal(cmd_q(x, 0, &r, VIRTIO_GPU_DISPLAY_INFO_SIZE),
			 VIRTIO_GPU_DISPLAY_INFO_SIZE);
	assert_int_equal(resp_u32(x, 4), VIRTIO_GPU_FLAG_FENCE);
	assert_int_equal(virtio_get_le(fake_mem_ptr(&x->mem, RESP_GPA + 8, 8), 8), FENCE_ID);
}

static uint32_t events_read(struct fixture *x)
{
	return fdrv_rd(x->t, VIRTIO_MMIO_CONFIG + VIRTIO_GPU_CFG_EVENTS_READ);
}

struct resize_arg {
	struct display *d;
	int ret;
};

static void *resize_thread(void *opaque)
{
	struct resize_arg *a = opaque;

	a->ret = display_request_size(a->d, 800, 600);
	return NULL;
}

/* A host resize reaches the driver as VIRTIO_GPU_EVENT_DISPLAY with a config interrupt; the
 * display info and EDID then say the new mode; events_clear clears it. */
static void test_resize_event(void **state)
{
	struct fixture *x = *state;
	uint32_t gen = fdrv_rd(x->t, VIRTIO_MMIO_CONFIG_GENERATION);
	uint64_t irqs = x->irq.count;
	struct resize_arg a = { x->d, -1 };
	struct req r;
	pthread_t th;
	uint32_t w, h;

	/* From another thread, as a front end does it. */
	assert_int_equal(pthread_create(&th, NULL, resize_thread, &a), 0);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(a.ret, 0);
	assert_int_equal(events_read(x), VIRTIO_GPU_EVENT_DISPLAY);
	assert_true(fdrv_rd(x->t, VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_INT_CONFIG);
	assert_int_not_equal(fdrv_rd(x->t, VIRTIO_MMIO_CONFIG_GENERATION), gen);
	assert_true(x->irq.count > irqs);
	r = hdr(VIRTIO_GPU_CMD_GET_DISPLAY_INFO, false);
	assert_int_equal(cmd_q(x, 0, &r, VIRTIO_GPU_DISPLAY_INFO_SIZE),
			 VIRTIO_GPU_DISPLAY_INFO_SIZE);
	assert_int_equal(resp_u32(x, 32), 800);
	assert_int_equal(resp_u32(x, 36), 600);
	r = id_req(VIRTIO_GPU_CMD_GET_EDID, 0);
	assert_int_equal(cmd_q(x, 0, &r, VIRTIO_GPU_EDID_RESP_SIZE), VIRTIO_GPU_EDID_RESP_SIZE);
	edid_mode(fake_mem_ptr(&x->mem, RESP_GPA + 32, 128), &w, &h);
	assert_int_equal(w, 800);
	assert_int_equal(h, 600);
	/* events_read is the device's; events_clear clears, at any width. */
	fdrv_wr(x->t, VIRTIO_MMIO_CONFIG + VIRTIO_GPU_CFG_EVENTS_READ, 0);
	assert_int_equal(events_read(x), VIRTIO_GPU_EVENT_DISPLAY);
	virtio_mmio_dev_ops.write(x->t, VIRTIO_MMIO_CONFIG + VIRTIO_GPU_CFG_EVENTS_CLEAR + 1, 1,
				  0xff);
	assert_int_equal(events_read(x), VIRTIO_GPU_EVENT_DISPLAY);
	virtio_mmio_dev_ops.write(x->t, VIRTIO_MMIO_CONFIG + VIRTIO_GPU_CFG_EVENTS_CLEAR, 1, 1);
	assert_int_equal(events_read(x), 0);
	assert_int_equal(display_request_size(x->d, 10, 10), -EINVAL);
	assert_int_equal(events_read(x), 0);

	/* Not activated (reset): recorded without an interrupt, signalled at DRIVER_OK. */
	fdrv_wr(x->t, VIRTIO_MMIO_STATUS, 0);
	fdrv_wr(x->t, VIRTIO_MMIO_INTERRUPT_ACK, 3);
	irqs = x->irq.count;
	assert_int_equal(display_request_size(x->d, 1024, 768), 0);
	assert_int_equal(events_read(x), VIRTIO_GPU_EVENT_DISPLAY);
	assert_int_equal(x->irq.count, irqs);
	assert_false(fdrv_rd(x->t, VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_INT_CONFIG);
	bring_up(x);
	assert_true(fdrv_rd(x->t, VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_INT_CONFIG);
	r = hdr(VIRTIO_GPU_CMD_GET_DISPLAY_INFO, false);
	assert_int_equal(cmd_q(x, 0, &r, VIRTIO_GPU_DISPLAY_INFO_SIZE),
			 VIRTIO_GPU_DISPLAY_INFO_SIZE);
	assert_int_equal(resp_u32(x, 32), 1024);
	assert_int_equal(resp_u32(x, 36), 768);
}

/* Rectangles outside their resource, overflowing, or too small for a mode are refused and
 * change nothing. */
static void test_hostile_rects(void **state)
{
	struct fixture *x = *state;
	uint64_t serial;
	uint32_t w, h;

	draw_scattered(x, 1);
	make_fb(x, 1);
	assert_int_equal(cmd(x, scanout_req(0, 0, FB_W, FB_H, 0, 1)), VIRTIO_GPU_RESP_OK_NODATA);
	serial = display_serial(x->d);
	/* set_scanout */
	assert_int_equal(cmd(x, scanout_req(1, 0, FB_W, FB_H, 0, 1)),
			 VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	assert_int_equal(cmd(x, scanout_req(0xffffffff, 0, 2, FB_H, 0, 1)),
			 VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	assert_int_equal(cmd(x, scanout_req(0, 0, 0xffffffff, 0xffffffff, 0, 1)),
			 VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	assert_int_equal(cmd(x, scanout_req(0, 0, 0, 0, 0, 1)),
			 VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	assert_int_equal(cmd(x, scanout_req(0, 0, 32, 32, 0, 1)), /* below the mode limits */
			 VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	assert_int_equal(cmd(x, scanout_req(0, 0, FB_W, FB_H, 1, 1)),
			 VIRTIO_GPU_RESP_ERR_INVALID_SCANOUT_ID);
	assert_int_equal(cmd(x, scanout_req(0, 0, FB_W, FB_H, 16, 0)),
			 VIRTIO_GPU_RESP_ERR_INVALID_SCANOUT_ID);
	assert_int_equal(cmd(x, scanout_req(0, 0, FB_W, FB_H, 0, 2)),
			 VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
	/* transfer */
	assert_int_equal(cmd(x, transfer_req(FB_W - 1, 0, 2, 1, 0, 1)),
			 VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	assert_int_equal(cmd(x, transfer_req(0, 0xfffffff0, 1, 0x20, 0, 1)),
			 VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	assert_int_equal(cmd(x, transfer_req(0, 0, FB_W, FB_H, 4, 1)), /* one pixel past */
			 VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	assert_int_equal(cmd(x, transfer_req(0, 0, 1, 1, UINT64_MAX - 2, 1)),
			 VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	assert_int_equal(cmd(x, transfer_req(0, 0, 1, 1, FB_BYTES - 4, 1)), /* last pixel */
			 VIRTIO_GPU_RESP_OK_NODATA);
	assert_int_equal(cmd(x, transfer_req(0, 0, 1, 1, FB_BYTES - 3, 1)),
			 VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	assert_int_equal(cmd(x, transfer_req(0, 0, 0, 0, 0, 1)), VIRTIO_GPU_RESP_OK_NODATA);
	assert_int_equal(cmd(x, transfer_req(0, 0, FB_W, FB_H, 0, 9)),
			 VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
	/* flush */
	assert_int_equal(cmd(x, flush_req(0, 0, FB_W + 1, FB_H, 1)),
			 VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	assert_int_equal(cmd(x, flush_req(0xffffffff, 0xffffffff, 2, 2, 1)),
			 VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	assert_int_equal(cmd(x, flush_req(0, 0, 1, 1, 9)), VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
	/* Nothing reached the display, which kept its mode. */
	assert_int_equal(display_serial(x->d), serial);
	assert_true(display_mode(x->d, &w, &h));
	assert_int_equal(w, FB_W);
	/* Overlapping transfers and flushes inside the resource are fine. */
	assert_int_equal(cmd(x, transfer_req(0, 0, FB_W, FB_H, 0, 1)), VIRTIO_GPU_RESP_OK_NODATA);
	assert_int_equal(cmd(x, transfer_req(5, 5, 50, 50, 5 * FB_W * 4 + 20, 1)),
			 VIRTIO_GPU_RESP_OK_NODATA);
	assert_int_equal(cmd(x, flush_req(5, 5, 50, 50, 1)), VIRTIO_GPU_RESP_OK_NODATA);
	assert_int_equal(cmd(x, flush_req(0, 0, FB_W, FB_H, 1)), VIRTIO_GPU_RESP_OK_NODATA);
	expect_screen(x, x->d, 0, 0, FB_W, FB_H, 1);
	assert_false(needs_reset(x));
}

/* Sizes: zero, beyond the dimension limit, w * h * 4 past 32 bits, past the host budget, and
 * too many resources. */
static void test_huge_resources(void **state)
{
	struct fixture *x = *state;
	uint32_t nr;
	uint64_t bytes;

	assert_int_equal(cmd(x, create_req(1, DISPLAY_FMT_BGRX, 0, 64)),
			 VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	assert_int_equal(cmd(x, create_req(1, DISPLAY_FMT_BGRX, 64, 0)),
			 VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	/* 65536 * 16384 * 4 is 2^32: zero in 32-bit arithmetic. */
	assert_int_equal(cmd(x, create_req(1, DISPLAY_FMT_BGRX, 65536, 16384)),
			 VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	assert_int_equal(cmd(x, create_req(1, DISPLAY_FMT_BGRX, 0xffffffff, 0xffffffff)),
			 VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	/* 16384 x 16384 is 1 GiB: over the host budget. */
	assert_int_equal(
		cmd(x, create_req(1, DISPLAY_FMT_BGRX, VIRTIO_GPU_MAX_DIM, VIRTIO_GPU_MAX_DIM)),
		VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY);
	/* Four 64 MiB resources fill the budget; a fifth does not fit. */
	for (uint32_t i = 1; i <= 4; i++)
		assert_int_equal(cmd(x, create_req(i, DISPLAY_FMT_BGRX, 4096, 4096)),
				 VIRTIO_GPU_RESP_OK_NODATA);
	assert_int_equal(cmd(x, create_req(5, DISPLAY_FMT_BGRX, 1, 1)),
			 VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY);
	virtio_gpu_usage(x->g, &nr, &bytes);
	assert_int_equal(nr, 4);
	assert_int_equal(bytes, VIRTIO_GPU_MAX_HOST_BYTES);
	for (uint32_t i = 1; i <= 4; i++)
		assert_int_equal(cmd(x, id_req(VIRTIO_GPU_CMD_RESOURCE_UNREF, i)),
				 VIRTIO_GPU_RESP_OK_NODATA);
	/* The count limit. */
	for (uint32_t i = 1; i <= VIRTIO_GPU_MAX_RESOURCES; i++)
		if (cmd(x, create_req(i, DISPLAY_FMT_BGRA, 1, 1)) != VIRTIO_GPU_RESP_OK_NODATA)
			fail_msg("resource %u refused", i);
	assert_int_equal(cmd(x, create_req(5000, DISPLAY_FMT_BGRA, 1, 1)),
			 VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY);
	virtio_gpu_usage(x->g, &nr, &bytes);
	assert_int_equal(nr, VIRTIO_GPU_MAX_RESOURCES);
	assert_int_equal(bytes, VIRTIO_GPU_MAX_RESOURCES * 4);
	/* A reset frees them all. */
	fdrv_wr(x->t, VIRTIO_MMIO_STATUS, 0);
	virtio_gpu_usage(x->g, &nr, &bytes);
	assert_int_equal(nr, 0);
	assert_int_equal(bytes, 0);
}

/* Backing outside RAM, empty, overflowing, too many entries, short lists, twice. */
static void test_hostile_backing(void **state)
{
	struct fixture *x = *state;
	uint64_t a[2] = { FB_GPA, RAM_SIZE - 8 };
	uint32_t l[2] = { 4096, 16 };

	assert_int_equal(cmd(x, create_req(1, DISPLAY_FMT_BGRX, 64, 64)),
			 VIRTIO_GPU_RESP_OK_NODATA);
	/* The second entry runs past the end of RAM: nothing is attached. */
	assert_int_equal(attach(x, 1, 2, a, l, 2), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	assert_int_equal(cmd(x, transfer_req(0, 0, 1, 1, 0, 1)), VIRTIO_GPU_RESP_ERR_UNSPEC);
	a[1] = UINT64_MAX - 4; /* wraps */
	assert_int_equal(attach(x, 1, 2, a, l, 2), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	a[1] = 0xC0000000ull; /* the MMIO hole */
	assert_int_equal(attach(x, 1, 2, a, l, 2), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	a[1] = FB_GPA + 0x10000;
	l[1] = 0; /* empty */
	assert_int_equal(attach(x, 1, 2, a, l, 2), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	/* No entries; more than the limit; more than the request holds (malformed: no
	 * response at all). */
	assert_int_equal(attach(x, 1, 0, a, l, 0), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	assert_int_equal(attach(x, 1, VIRTIO_GPU_MAX_ENTRIES + 1, a, l, 1),
			 VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	assert_int_equal(attach(x, 1, 100, a, l, 2), 0);
	assert_int_equal(resp_u32(x, 0), 0xeeeeeeee);
	assert_int_equal(cmd(x, transfer_req(0, 0, 1, 1, 0, 1)), VIRTIO_GPU_RESP_ERR_UNSPEC);
	/* Unknown resource; then a good attach, and a second one refused. */
	l[1] = 16384 - 4096;
	assert_int_equal(attach(x, 7, 2, a, l, 2), VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
	assert_int_equal(attach(x, 1, 2, a, l, 2), VIRTIO_GPU_RESP_OK_NODATA);
	assert_int_equal(attach(x, 1, 2, a, l, 2), VIRTIO_GPU_RESP_ERR_UNSPEC);
	assert_int_equal(cmd(x, transfer_req(0, 0, 64, 64, 0, 1)), VIRTIO_GPU_RESP_OK_NODATA);
	/* Detach: transfers need backing again; a second detach has nothing to detach. */
	assert_int_equal(cmd(x, id_req(VIRTIO_GPU_CMD_RESOURCE_DETACH_BACKING, 1)),
			 VIRTIO_GPU_RESP_OK_NODATA);
	assert_int_equal(cmd(x, transfer_req(0, 0, 64, 64, 0, 1)), VIRTIO_GPU_RESP_ERR_UNSPEC);
	assert_int_equal(cmd(x, id_req(VIRTIO_GPU_CMD_RESOURCE_DETACH_BACKING, 1)),
			 VIRTIO_GPU_RESP_ERR_UNSPEC);
	assert_int_equal(cmd(x, id_req(VIRTIO_GPU_CMD_RESOURCE_DETACH_BACKING, 3)),
			 VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
	/* A backing shorter than the resource: transfers stop at its end. */
	l[1] = 4096;
	assert_int_equal(attach(x, 1, 2, a, l, 2), VIRTIO_GPU_RESP_OK_NODATA);
	assert_int_equal(cmd(x, transfer_req(0, 0, 64, 32, 0, 1)), VIRTIO_GPU_RESP_OK_NODATA);
	assert_int_equal(cmd(x, transfer_req(0, 0, 64, 33, 0, 1)),
			 VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	assert_false(needs_reset(x));
}

/* The total of backing entries over all resources is bounded: 4 x 65536 page entries fit,
 * more do not (each list a 1 MiB readable buffer, as a guest could send). */
static void test_entry_budget(void **state)
{
	struct fixture *x = *state;
	const uint32_t n = VIRTIO_GPU_MAX_ENTRIES;
	uint8_t *e = fake_mem_ptr(&x->mem, BIG_GPA, (size_t)n * 16);
	struct fake_buf b[3] = { { REQ_GPA, 32, false },
				 { BIG_GPA, n * 16, false },
				 { RESP_GPA, VIRTIO_GPU_HDR_SIZE, true } };

	for (uint32_t i = 0; i < n; i++) {
		virtio_put_le(e + 16 * i, FB_GPA, 8);
		virtio_put_le(e + 16 * i + 8, 4096, 4);
		virtio_put_le(e + 16 * i + 12, 0, 4);
	}
	for (uint32_t id = 1; id <= 5; id++) {
		struct req r = req4(VIRTIO_GPU_CMD_RESOURCE_ATTACH_BACKING, id, n, 0, 0, 0, 0);

		assert_int_equal(cmd(x, create_req(id, DISPLAY_FMT_BGRX, 64, 64)),
				 VIRTIO_GPU_RESP_OK_NODATA);
		memcpy(fake_mem_ptr(&x->mem, REQ_GPA, 32), r.b, 32);
		assert_int_equal(run_chain(x, 0, b, 3), VIRTIO_GPU_HDR_SIZE);
		assert_int_equal(resp_u32(x, 0), id <= 4 ? VIRTIO_GPU_RESP_OK_NODATA
							 : VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY);
	}
	/* Freed with their resources. */
	assert_int_equal(cmd(x, id_req(VIRTIO_GPU_CMD_RESOURCE_UNREF, 1)),
			 VIRTIO_GPU_RESP_OK_NODATA);
	memcpy(fake_mem_ptr(&x->mem, REQ_GPA, 32),
	       req4(VIRTIO_GPU_CMD_RESOURCE_ATTACH_BACKING, 5, n, 0, 0, 0, 0).b, 32);
	assert_int_equal(run_chain(x, 0, b, 3), VIRTIO_GPU_HDR_SIZE);
	assert_int_equal(resp_u32(x, 0), VIRTIO_GPU_RESP_OK_NODATA);
	/* Many entries read across: a transfer of the whole 64x64 (4 entries' worth). */
	assert_int_equal(cmd(x, transfer_req(0, 0, 64, 64, 0, 5)), VIRTIO_GPU_RESP_OK_NODATA);
}

/* Unknown commands and formats, duplicate and zero ids. */
static void test_unknown(void **state)
{
	struct fixture *x = *state;

	assert_int_equal(cmd(x, hdr(0x0200, false)), VIRTIO_GPU_RESP_ERR_UNSPEC); /* 3D */
	assert_int_equal(cmd(x, hdr(0x9999, false)), VIRTIO_GPU_RESP_ERR_UNSPEC);
	assert_int_equal(cmd(x, hdr(VIRTIO_GPU_CMD_GET_CAPSET_INFO, false)),
			 VIRTIO_GPU_RESP_ERR_UNSPEC);
	assert_int_equal(cmd(x, hdr(VIRTIO_GPU_RESP_OK_NODATA, false)), VIRTIO_GPU_RESP_ERR_UNSPEC);
	assert_int_equal(cmd(x, create_req(1, 5, 64, 64)), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	assert_int_equal(cmd(x, create_req(1, 0, 64, 64)), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
	assert_int_equal(cmd(x, create_req(0, DISPLAY_FMT_BGRX, 64, 64)),
			 VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
	assert_int_equal(cmd(x, create_req(1, DISPLAY_FMT_BGRX, 64, 64)),
			 VIRTIO_GPU_RESP_OK_NODATA);
	assert_int_equal(cmd(x, create_req(1, DISPLAY_FMT_RGBA, 128, 64)),
			 VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
	assert_int_equal(cmd(x, id_req(VIRTIO_GPU_CMD_RESOURCE_UNREF, 2)),
			 VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
	assert_int_equal(cmd(x, id_req(VIRTIO_GPU_CMD_RESOURCE_UNREF, 0)),
			 VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
	/* A cursor command on the control queue is unknown there. */
	assert_int_equal(cmd(x, cursor_req(VIRTIO_GPU_CMD_MOVE_CURSOR, 0, 1, 1, 0, 0, 0)),
			 VIRTIO_GPU_RESP_ERR_UNSPEC);
	assert_false(needs_reset(x));
}

/* Unreferencing the resource on screen turns the scanout off; the cursor forgets it too. */
static void test_unref_scanout(void **state)
{
	struct fixture *x = *state;
	struct virtio_gpu_cursor c;
	struct req r;
	uint32_t w, h;

	draw_scattered(x, 1);
	make_fb(x, 1);
	assert_int_equal(cmd(x, transfer_req(0, 0, FB_W, FB_H, 0, 1)), VIRTIO_GPU_RESP_OK_NODATA);
	assert_int_equal(cmd(x, scanout_req(0, 0, FB_W, FB_H, 0, 1)), VIRTIO_GPU_RESP_OK_NODATA);
	r = cursor_req(VIRTIO_GPU_CMD_UPDATE_CURSOR, 0, 5, 5, 1, 0, 0);
	assert_int_equal(cmd_q(x, 1, &r, 0), 0);
	virtio_gpu_get_cursor(x->g, &c);
	assert_int_equal(c.resource_id, 1);
	assert_int_equal(cmd(x, id_req(VIRTIO_GPU_CMD_RESOURCE_UNREF, 1)),
			 VIRTIO_GPU_RESP_OK_NODATA);
	assert_false(display_mode(x->d, &w, &h));
	virtio_gpu_get_cursor(x->g, &c);
	assert_int_equal(c.resource_id, 0);
	/* The id is gone for every command; it may be created again. */
	assert_int_equal(cmd(x, flush_req(0, 0, 1, 1, 1)), VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
	assert_int_equal(cmd(x, transfer_req(0, 0, 1, 1, 0, 1)),
			 VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
	assert_int_equal(cmd(x, scanout_req(0, 0, FB_W, FB_H, 0, 1)),
			 VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
	make_fb(x, 1);
	assert_int_equal(cmd(x, scanout_req(0, 0, FB_W, FB_H, 0, 1)), VIRTIO_GPU_RESP_OK_NODATA);
	assert_true(display_mode(x->d, &w, &h));
}

/* Chains too short for their request or their response complete with nothing written; the
 * queue goes on.  A request split over descriptors is gathered. */
static void test_short_chains(void **state)
{
	struct fixture *x = *state;
	struct req r = create_req(1, DISPLAY_FMT_BGRX, 64, 64);
	uint32_t nr;
	uint64_t bytes;

	r.len = 10; /* not even a header */
	assert_int_equal(cmd_q(x, 0, &r, VIRTIO_GPU_HDR_SIZE), 0);
	assert_int_equal(resp_u32(x, 0), 0xeeeeeeee);
	r.len = 39; /* a header, not the whole command */
	assert_int_equal(cmd_q(x, 0, &r, VIRTIO_GPU_HDR_SIZE), 0);
	assert_int_equal(resp_u32(x, 0), 0xeeeeeeee);
	virtio_gpu_usage(x->g, &nr, &bytes);
	assert_int_equal(nr, 0);
	r.len = 40; /* whole, but no room for the response, or no writable buffer at all */
	assert_int_equal(cmd_q(x, 0, &r, VIRTIO_GPU_HDR_SIZE - 1), 0);
	assert_int_equal(cmd_q(x, 0, &r, 0), 0);
	virtio_gpu_usage(x->g, &nr, &bytes);
	assert_int_equal(nr, 0);
	r = hdr(VIRTIO_GPU_CMD_GET_DISPLAY_INFO, false);
	assert_int_equal(cmd_q(x, 0, &r, VIRTIO_GPU_DISPLAY_INFO_SIZE - 1), 0);
	assert_int_equal(resp_u32(x, 0), 0xeeeeeeee);
	r = id_req(VIRTIO_GPU_CMD_GET_EDID, 0);
	assert_int_equal(cmd_q(x, 0, &r, VIRTIO_GPU_HDR_SIZE), 0);
	/* Split: 10 + 14 + 16 bytes of request, response in two pieces. */
	r = create_req(1, DISPLAY_FMT_BGRX, 64, 64);
	memcpy(fake_mem_ptr(&x->mem, REQ_GPA, 10), r.b, 10);
	memcpy(fake_mem_ptr(&x->mem, REQ_GPA + 0x100, 14), r.b + 10, 14);
	memcpy(fake_mem_ptr(&x->mem, REQ_GPA + 0x200, 16), r.b + 24, 16);
	{
		struct fake_buf b[5] = { { REQ_GPA, 10, false },
					 { REQ_GPA + 0x100, 14, false },
					 { REQ_GPA + 0x200, 16, false },
					 { RESP_GPA, 4, true },
					 { RESP_GPA + 0x100, 20, true } };

		assert_int_equal(run_chain(x, 0, b, 5), VIRTIO_GPU_HDR_SIZE);
	}
	assert_int_equal(resp_u32(x, 0), VIRTIO_GPU_RESP_OK_NODATA);
	virtio_gpu_usage(x->g, &nr, &bytes);
	assert_int_equal(nr, 1);
	assert_false(needs_reset(x));
}

/* §5.7.6.10: the cursor queue keeps the cursor state; a response only if there is room. */
static void test_cursor(void **state)
{
	struct fixture *x = *state;
	struct virtio_gpu_cursor c;
	struct req r;

	assert_int_equal(cmd(x, create_req(5, DISPLAY_FMT_BGRA, 64, 64)),
			 VIRTIO_GPU_RESP_OK_NODATA);
	r = cursor_req(VIRTIO_GPU_CMD_UPDATE_CURSOR, 0, 10, 20, 5, 3, 4);
	assert_int_equal(cmd_q(x, 1, &r, 0), 0); /* Linux sends no response buffer */
	virtio_gpu_get_cursor(x->g, &c);
	assert_int_equal(c.resource_id, 5);
	assert_int_equal(c.x, 10);
	assert_int_equal(c.y, 20);
	assert_int_equal(c.hot_x, 3);
	assert_int_equal(c.hot_y, 4);
	/* MOVE ignores everything but the position; this one has room for an answer. */
	r = cursor_req(VIRTIO_GPU_CMD_MOVE_CURSOR, 0, 30, 40, 99, 9, 9);
	put(&r, 4, VIRTIO_GPU_FLAG_FENCE, 4);
	put(&r, 8, FENCE_ID, 8);
	assert_int_equal(cmd_q(x, 1, &r, VIRTIO_GPU_HDR_SIZE), VIRTIO_GPU_HDR_SIZE);
	assert_int_equal(resp_u32(x, 0), VIRTIO_GPU_RESP_OK_NODATA);
	assert_int_equal(resp_u32(x, 4), VIRTIO_GPU_FLAG_FENCE);
	virtio_gpu_get_cursor(x->g, &c);
	assert_int_equal(c.resource_id, 5);
	assert_int_equal(c.x, 30);
	assert_int_equal(c.y, 40);
	assert_int_equal(c.hot_x, 3);
	/* An unknown resource, another scanout, a short request, an unknown command: refused,
	 * the state stays. */
	r = cursor_req(VIRTIO_GPU_CMD_UPDATE_CURSOR, 0, 1, 1, 77, 0, 0);
	assert_int_equal(cmd_q(x, 1, &r, VIRTIO_GPU_HDR_SIZE), VIRTIO_GPU_HDR_SIZE);
	assert_int_equal(resp_u32(x, 0), VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
	r = cursor_req(VIRTIO_GPU_CMD_MOVE_CURSOR, 3, 1, 1, 0, 0, 0);
	assert_int_equal(cmd_q(x, 1, &r, VIRTIO_GPU_HDR_SIZE), VIRTIO_GPU_HDR_SIZE);
	assert_int_equal(resp_u32(x, 0), VIRTIO_GPU_RESP_ERR_INVALID_SCANOUT_ID);
	r = cursor_req(VIRTIO_GPU_CMD_MOVE_CURSOR, 0, 1, 1, 0, 0, 0);
	r.len = 40;
	assert_int_equal(cmd_q(x, 1, &r, VIRTIO_GPU_HDR_SIZE), 0);
	r = hdr(VIRTIO_GPU_CMD_GET_DISPLAY_INFO, false);
	assert_int_equal(cmd_q(x, 1, &r, VIRTIO_GPU_HDR_SIZE), VIRTIO_GPU_HDR_SIZE);
	assert_int_equal(resp_u32(x, 0), VIRTIO_GPU_RESP_ERR_UNSPEC);
	virtio_gpu_get_cursor(x->g, &c);
	assert_int_equal(c.x, 30);
	assert_int_equal(c.y, 40);
	/* Resource 0 hides it. */
	r = cursor_req(VIRTIO_GPU_CMD_UPDATE_CURSOR, 0, 1, 2, 0, 0, 0);
	assert_int_equal(cmd_q(x, 1, &r, 0), 0);
	virtio_gpu_get_cursor(x->g, &c);
	assert_int_equal(c.resource_id, 0);
	assert_false(needs_reset(x));
}

/* More chains than one pass takes (VIRTIO_QUEUE_BUDGET) are all answered. */
static void test_many_chains(void **state)
{
	struct fixture *x = *state;
	struct fake_buf b[2] = { { REQ_GPA, 24, false }, { RESP_GPA, 24, true } };
	uint32_t id, len, n = 0;

	fdrv_negotiate(x->t, ALL_FEAT);
	fdrv_queue(x->t, 0, &x->f[0], &x->mem, 256, 0x20000, 0x30000, 0x40000,
		   VIRTIO_GPU_QUEUE_SIZE);
	fdrv_driver_ok(x->t);
	memcpy(fake_mem_ptr(&x->mem, REQ_GPA, 24), hdr(0x9999, false).b, 24);
	for (unsigned i = 0; i < 100; i++)
		fake_vq_add_chain(&x->f[0], b, 2);
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	while (fake_vq_get_used(&x->f[0], &id, &len)) {
		assert_int_equal(len, 24);
		n++;
	}
	assert_int_equal(n, 100);
}

/* ---- snapshots ---- */

#define SNAP_ID "virtio-gpu"

struct snap_buf {
	struct snap_writer w;
	struct snap_file f;
};

static void snap_parse(struct snap_buf *s)
{
	char why[128];

	assert_int_equal(snap_writer_finish(&s->w), 0);
	assert_int_equal(snap_file_parse(&s->f, s->w.buf, s->w.len, why, sizeof(why)), 0);
}

static void snap_take(struct virtio_mmio *t, struct virtio_gpu *g, struct snap_buf *s)
{
	virtio_mmio_quiesce(t);
	snap_writer_init(&s->w);
	assert_int_equal(virtio_gpu_ops.save(g, &s->w, SNAP_ID), 0);
	snap_parse(s);
}

/* The device's own record payload (for byte-for-byte comparison). */
static void payload(struct snap_buf *s, const uint8_t **p, size_t *len)
{
	struct snap_reader r;

	assert_int_equal(snap_file_find(&s->f, SNAP_REC_VIRTIO_GPU, SNAP_ID, &r), 0);
	*p = r.p;
	*len = r.len;
}

struct restored {
	struct irq_line irq;
	struct display *d;
	struct virtio_gpu *g;
	struct virtio_mmio *t;
	struct virtq vqs[2];
};

static struct restored *restored_create(struct fixture *x)
{
	struct restored *r = calloc(1, sizeof(*r));

	r->irq.fd = -1;
	assert_int_equal(display_create(DISP_W, DISP_H, &r->d), 0);
	assert_int_equal(virtio_gpu_create(r->d, &r->g), 0);
	virtio_gpu_set_gmem(r->g, &x->mem.gm);
	assert_int_equal(virtio_mmio_create(&x->mem.gm, &r->irq, &virtio_gpu_ops, r->g, &r->t), 0);
	return r;
}

static void restored_destroy(struct restored *r)
{
	virtio_mmio_destroy(r->t);
	display_destroy(r->d);
	free(r);
}

/* Resources, backing, scanout (a sub-rectangle), cursor and a pending event come back; the
 * screen shows at once, from the guest's backing; the restored device carries on. */
static void test_snapshot_round_trip(void **state)
{
	struct fixture *x = *state;
	uint64_t caddr = FB_GPA + 0x80000;
	uint32_t clen = 64 * 64 * 4, nr, nr2, used_id, used_len, pw, ph;
	struct virtio_gpu_cursor c;
	struct snap_buf s, s2;
	const uint8_t *p1, *p2;
	size_t l1, l2;
	uint64_t b1, b2;
	struct restored *r;
	struct req q;
	uint16_t head;

	draw_scattered(x, 4);
	make_fb(x, 1);
	assert_int_equal(cmd(x, transfer_req(0, 0, FB_W, FB_H, 0, 1)), VIRTIO_GPU_RESP_OK_NODATA);
	assert_int_equal(cmd(x, scanout_req(16, 8, 96, 64, 0, 1)), VIRTIO_GPU_RESP_OK_NODATA);
	assert_int_equal(cmd(x, create_req(2, DISPLAY_FMT_BGRA, 64, 64)),
			 VIRTIO_GPU_RESP_OK_NODATA);
	assert_int_equal(attach(x, 2, 1, &caddr, &clen, 1), VIRTIO_GPU_RESP_OK_NODATA);
	assert_int_equal(cmd(x, create_req(3, DISPLAY_FMT_RGBX, 100, 100)), /* no backing */
			 VIRTIO_GPU_RESP_OK_NODATA);
	q = cursor_req(VIRTIO_GPU_CMD_UPDATE_CURSOR, 0, 50, 60, 2, 1, 2);
	assert_int_equal(cmd_q(x, 1, &q, 0), 0);
	assert_int_equal(display_request_size(x->d, 800, 600), 0);
	snap_take(x->t, x->g, &s);

	r = restored_create(x);
	assert_int_equal(virtio_gpu_ops.restore(r->g, &s.f, SNAP_ID), 0);
	/* The screen is there before the guest runs again. */
	expect_screen(x, r->d, 16, 8, 96, 64, 4);
	virtio_gpu_usage(x->g, &nr, &b1);
	virtio_gpu_usage(r->g, &nr2, &b2);
	assert_int_equal(nr2, 3);
	assert_int_equal(nr2, nr);
	assert_int_equal(b2, b1);
	virtio_gpu_get_cursor(r->g, &c);
	assert_int_equal(c.resource_id, 2);
	assert_int_equal(c.x, 50);
	assert_int_equal(c.hot_y, 2);
	assert_int_equal(virtio_mmio_dev_ops.read(r->t, VIRTIO_MMIO_CONFIG, 4),
			 VIRTIO_GPU_EVENT_DISPLAY);
	/* The host's request stands in the restored device: display info reports it. */
	display_preferred(r->d, &pw, &ph);
	assert_int_equal(pw, 800);
	assert_int_equal(ph, 600);
	/* Saved again: the same record, byte for byte. */
	snap_take(r->t, r->g, &s2);
	payload(&s, &p1, &l1);
	payload(&s2, &p2, &l2);
	assert_int_equal(l1, l2);
	assert_memory_equal(p1, p2, l1);
	/* A second restore onto the used device is still a clean load. */
	assert_int_equal(virtio_gpu_ops.restore(r->g, &s.f, SNAP_ID), 0);
	virtio_gpu_usage(r->g, &nr2, &b2);
	assert_int_equal(nr2, 3);

	/* Activated on the queues where they stood, the restored device carries on. */
	fdrv_vq_resume(&r->vqs[0], &x->f[0], ALL_FEAT, fake_vq_used_idx(&x->f[0]));
	fdrv_vq_resume(&r->vqs[1], &x->f[1], ALL_FEAT, fake_vq_used_idx(&x->f[1]));
	assert_int_equal(virtio_gpu_ops.activate(r->g, r->t, ALL_FEAT, r->vqs, 2), 0);
	assert_true(r->irq.count > 0); /* the pending display event is signalled */
	draw_scattered(x, 5);
	q = transfer_req(0, 0, FB_W, FB_H, 0, 1);
	memcpy(fake_mem_ptr(&x->mem, REQ_GPA, q.len), q.b, q.len);
	head = fake_vq_add_chain(
		&x->f[0], (struct fake_buf[]){ { REQ_GPA, q.len, false }, { RESP_GPA, 24, true } },
		2);
	virtio_gpu_ops.queue_notify(r->g, 0);
	assert_true(fake_vq_get_used(&x->f[0], &used_id, &used_len));
	assert_int_equal(used_id, head);
	assert_int_equal(resp_u32(x, 0), VIRTIO_GPU_RESP_OK_NODATA);
	q = flush_req(0, 0, FB_W, FB_H, 1);
	memcpy(fake_mem_ptr(&x->mem, REQ_GPA, q.len), q.b, q.len);
	fake_vq_add_chain(&x->f[0],
			  (struct fake_buf[]){ { REQ_GPA, q.len, false }, { RESP_GPA, 24, true } },
			  2);
	virtio_gpu_ops.queue_notify(r->g, 0);
	assert_true(fake_vq_get_used(&x->f[0], &used_id, &used_len));
	expect_screen(x, r->d, 16, 8, 96, 64, 5);

	/* An in-place reset: the device is reset (the screen goes off), guest RAM rolled back
	 * (here: the backing redrawn), the record loaded: the screen is back at once, read from
	 * the backing as it is now, with no command from the guest. */
	virtio_gpu_ops.reset(r->g);
	assert_false(display_mode(r->d, &pw, &ph));
	draw_scattered(x, 4);
	assert_int_equal(virtio_gpu_ops.restore(r->g, &s.f, SNAP_ID), 0);
	expect_screen(x, r->d, 16, 8, 96, 64, 4);
	snap_writer_free(&s.w);
	snap_writer_free(&s2.w);
	restored_destroy(r);
}

/* A hand-made record and the knobs the refusals turn. */
struct gpu_rec {
	uint16_t version;
	uint32_t events;
	uint32_t nr; /* resources written: 0..2 (ids 1, 2) */
	uint32_t id2, fmt, w, h;
	uint32_t nr_entries;
	uint64_t addr;
	uint32_t len;
	uint32_t s_id, s_x, s_y, s_w, s_h;
	uint32_t c_id;
	uint32_t pref_w, pref_h; /* version 2 */
	bool truncated, trailing;
};

static struct gpu_rec good_rec(void)
{
	return (struct gpu_rec){ .version = 2,
				 .nr = 2,
				 .id2 = 2,
				 .fmt = DISPLAY_FMT_BGRX,
				 .w = FB_W,
				 .h = FB_H,
				 .nr_entries = 1,
				 .addr = FB_GPA,
				 .len = FB_BYTES,
				 .s_id = 1,
				 .s_w = FB_W,
				 .s_h = FB_H,
				 .c_id = 2,
				 .pref_w = 1024,
				 .pref_h = 768 };
}

static void build_rec(struct snap_buf *s, const struct gpu_rec *g)
{
	snap_writer_init(&s->w);
	snap_rec_begin(&s->w, SNAP_REC_VIRTIO_GPU, g->version, SNAP_ID);
	snap_put_u32(&s->w, g->events);
	snap_put_u32(&s->w, g->nr);
	for (uint32_t i = 0; i < g->nr && i < 2; i++) {
		snap_put_u32(&s->w, i ? g->id2 : 1);
		snap_put_u32(&s->w, g->fmt);
		snap_put_u32(&s->w, g->w);
		snap_put_u32(&s->w, g->h);
		snap_put_u32(&s->w, i ? 0 : g->nr_entries);
		for (uint32_t j = 0; !i && j < g->nr_entries && j < 2; j++) {
			snap_put_u64(&s->w, g->addr);
			snap_put_u32(&s->w, g->len);
		}
	}
	snap_put_u32(&s->w, g->s_id);
	snap_put_u32(&s->w, g->s_x);
	snap_put_u32(&s->w, g->s_y);
	snap_put_u32(&s->w, g->s_w);
	snap_put_u32(&s->w, g->s_h);
	snap_put_u32(&s->w, g->c_id);
	for (unsigned i = 0; i < 4; i++)
		snap_put_u32(&s->w, 0);
	if (g->version >= 2) {
		snap_put_u32(&s->w, g->pref_w);
		snap_put_u32(&s->w, g->pref_h);
	}
	if (g->trailing)
		snap_put_u8(&s->w, 0);
	if (g->truncated)
		s->w.len -= 2;
	snap_parse(s);
}

static void test_snapshot_refused(void **state)
{
	struct fixture *x = *state;
	struct gpu_rec bad[24];
	unsigned n = 0;
	struct restored *r = restored_create(x);
	struct snap_buf s;
	uint32_t nr, w, h;
	uint64_t bytes;

	/* The good record is accepted (and shows its screen, reports its preferred mode). */
	draw(x, FB_GPA, FB_W, FB_H, 6);
	bad[0] = good_rec();
	build_rec(&s, &bad[0]);
	assert_int_equal(virtio_gpu_ops.restore(r->g, &s.f, SNAP_ID), 0);
	expect_screen(x, r->d, 0, 0, FB_W, FB_H, 6);
	display_preferred(r->d, &w, &h);
	assert_int_equal(w, 1024);
	assert_int_equal(h, 768);
	snap_writer_free(&s.w);
	restored_destroy(r);
	/* A version 1 record (no preferred mode) still restores, the display keeps its own. */
	r = restored_create(x);
	bad[0].version = 1;
	build_rec(&s, &bad[0]);
	assert_int_equal(virtio_gpu_ops.restore(r->g, &s.f, SNAP_ID), 0);
	expect_screen(x, r->d, 0, 0, FB_W, FB_H, 6);
	display_preferred(r->d, &w, &h);
	assert_int_equal(w, DISP_W);
	assert_int_equal(h, DISP_H);
	snap_writer_free(&s.w);
	restored_destroy(r);

#define BAD(field, value)               \
	do {                            \
		bad[n] = good_rec();    \
		bad[n].field = (value); \
		n++;                    \
	} while (0)
	BAD(version, 0);
	BAD(version, 3);
	BAD(events, 2);
	BAD(nr, VIRTIO_GPU_MAX_RESOURCES + 1);
	BAD(id2, 0);
	BAD(id2, 1); /* duplicate */
	BAD(fmt, 5);
	BAD(w, 0);
	BAD(h, VIRTIO_GPU_MAX_DIM + 1);
	BAD(nr_entries, 0xffffffff);
	BAD(addr, RAM_SIZE - 16);
	BAD(len, 0);
	BAD(s_id, 9);
	BAD(s_x, 1); /* the rectangle leaves the resource */
	BAD(s_w, 32);
	BAD(s_id, 0); /* off, but with a rectangle */
	BAD(c_id, 9);
	BAD(pref_w, DISPLAY_MIN_DIM - 1);
	BAD(pref_h, DISPLAY_MAX_H + 1);
	BAD(truncated, true);
	BAD(trailing, true);
#undef BAD
	for (unsigned i = 0; i < n; i++) {
		r = restored_create(x);
		build_rec(&s, &bad[i]);
		if (virtio_gpu_ops.restore(r->g, &s.f, SNAP_ID) != -EINVAL)
			fail_msg("bad record %u accepted", i);
		virtio_gpu_usage(r->g, &nr, &bytes);
		assert_int_equal(nr, 0);
		assert_false(display_mode(r->d, &w, &h));
		snap_writer_free(&s.w);
		restored_destroy(r);
	}
	/* No record at all. */
	r = restored_create(x);
	snap_writer_init(&s.w);
	snap_parse(&s);
	assert_int_equal(virtio_gpu_ops.restore(r->g, &s.f, SNAP_ID), -EINVAL);
	snap_writer_free(&s.w);
	restored_destroy(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_identity, setup, teardown),
		cmocka_unit_test_setup_teardown(test_display_info, setup, teardown),
		cmocka_unit_test_setup_teardown(test_edid, setup, teardown),
		cmocka_unit_test_setup_teardown(test_happy_path, setup, teardown),
		cmocka_unit_test_setup_teardown(test_formats, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fence, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resize_event, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hostile_rects, setup, teardown),
		cmocka_unit_test_setup_teardown(test_huge_resources, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hostile_backing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_entry_budget, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unref_scanout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_short_chains, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cursor, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_chains, setup, teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_refused, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
