/* virtio-gpu in 2D mode (virtio 1.2 §5.7): guest-created resources held on the host, backed
 * by scatter lists of guest RAM, copied in with TRANSFER_TO_HOST_2D and shown through one
 * scanout on a struct display.  Every command completes synchronously under the transport
 * lock, so a fenced command's response is also its completion (§5.7.6.6). */
#include "devices/virtio/gpu.h"

#include "core/devmgr.h"
#include "core/gmem.h"
#include "devices/virtio/mmio.h"
#include "devices/virtio/virtq.h"
#include "snapshot/snap.h"
#include "ui/display.h"
#include "util/log.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Request sizes (§5.7.6.8, §5.7.6.10): header plus the command's fields. */
#define REQ_CREATE_2D	40u
#define REQ_RES_ID	32u /* unref, detach backing, get EDID: le32 + padding */
#define REQ_SET_SCANOUT 48u
#define REQ_FLUSH	48u
#define REQ_TRANSFER	56u
#define REQ_ATTACH	32u /* followed by nr_entries mem entries */
#define REQ_CURSOR	56u
#define REQ_MAX		56u

/* Entries of an ATTACH_BACKING read from the chain at a time. */
#define ENTRY_CHUNK 256u

/* A handler's answer that is not a response type: the chain is malformed and completes with
 * no response at all. */
#define MALFORMED 0u

struct gpu_entry {
	uint64_t addr;
	uint32_t len;
};

struct gpu_res {
	uint32_t id, format, width, height;
	uint8_t *pixels; /* width * height * 4 bytes in the resource's own format */
	uint64_t bytes;
	/* Backing store (§5.7.6.8 ATTACH_BACKING): NULL when none.  ends[i] is the byte offset
	 * just past entry i in the backing, so an offset is found by binary search. */
	struct gpu_entry *entries;
	uint64_t *ends;
	uint32_t nr_entries;
	uint64_t backing_len;
};

/* Scanout 0 (the only one): the resource shown and the rectangle of it, resource 0 = off. */
struct gpu_scanout {
	uint32_t resource_id;
	uint32_t x, y, w, h;
};

struct virtio_gpu {
	struct display *d;
	const struct gmem *gm;
	struct virtio_mmio *mmio; /* set_transport: read by the resize handler on any thread */
	/* Set while the driver has the device activated (under the transport lock). */
	bool active;
	struct virtq *ctrl_vq, *cursor_vq;
	uint32_t events_read; /* VIRTIO_GPU_EVENT_*, atomic: the resize handler sets it */
	struct gpu_res *res[VIRTIO_GPU_MAX_RESOURCES];
	uint32_t nr_res;
	uint64_t host_bytes;  /* pixels of all resources */
	uint32_t all_entries; /* backing entries of all resources */
	struct gpu_scanout scanout;
	struct virtio_gpu_cursor cursor;
	/* Scratch space for one request; requests run one at a time under the transport lock. */
	struct virtq_elem elem;
	uint8_t resp[VIRTIO_GPU_EDID_RESP_SIZE];
};

static uint32_t get32(const uint8_t *p, unsigned off)
{
	return (uint32_t)virtio_get_le(p + off, 4);
}

/* ---- resources ---- */

static struct gpu_res *find_res(const struct virtio_gpu *g, uint32_t id)
{
	if (!id)
		return NULL;
	for (uint32_t i = 0; i < g->nr_res; i++)
		if (g->res[i]->id == id)
			return g->res[i];
	return NULL;
}

static void free_backing(struct gpu_res *r)
{
	free(r->entries);
	free(r->ends);
	r->entries = NULL;
	r->ends = NULL;
	r->nr_entries = 0;
	r->backing_len = 0;
}

static void free_res(struct gpu_res *r)
{
	if (!r)
		return;
	free_backing(r);
	free(r->pixels);
	free(r);
}

/* A resource with black pixels and no backing; NULL when out of host memory. */
static struct gpu_res *alloc_res(uint32_t id, uint32_t format, uint32_t w, uint32_t h)
{
	struct gpu_res *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->id = id;
	r->format = format;
	r->width = w;
	r->height = h;
	r->bytes = (uint64_t)w * h * 4;
	r->pixels = calloc(1, r->bytes);
	if (!r->pixels) {
		free(r);
		return NULL;
	}
	return r;
}

/* Give `r` the entries e[0..n) (already checked), computing the offsets.  false: no memory. */
static bool set_backing(struct gpu_res *r, struct gpu_entry *e, uint32_t n)
{
	uint64_t *ends = calloc(n, sizeof(*ends));
	uint64_t sum = 0;

	if (!ends)
		return false;
	for (uint32_t i = 0; i < n; i++) {
		sum += e[i].len; /* <= 2^16 entries of < 2^32 bytes: no overflow */
		ends[i] = sum;
	}
	r->entries = e;
	r->ends = ends;
	r->nr_entries = n;
	r->backing_len = sum;
	return true;
}

/* One backing entry is usable: non-empty and wholly inside one region of guest RAM. */
static bool entry_ok(const struct virtio_gpu *g, uint64_t addr, uint32_t len)
{
	return len && g->gm && gmem_ptr(g->gm, addr, len);
}

/* Copy bytes [off, off + len) of r's backing into dst.  The caller checked the range against
 * backing_len; false if an entry no longer resolves to guest RAM. */
static bool backing_read(const struct virtio_gpu *g, const struct gpu_res *r, uint64_t off,
			 uint8_t *dst, size_t len)
{
	uint32_t lo = 0, hi = r->nr_entries;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (r->ends[mid] > off)
			hi = mid;
		else
			lo = mid + 1;
	}
	for (uint32_t i = lo; len; i++) {
		uint64_t start, n;
		const uint8_t *p;

		if (i >= r->nr_entries)
			return false;
		start = i ? r->ends[i - 1] : 0;
		n = r->ends[i] - off;
		if (n > len)
			n = len;
		p = gmem_ptr(g->gm, r->entries[i].addr + (off - start), n);
		if (!p)
			return false;
		memcpy(dst, p, n);
		dst += n;
		off += n;
		len -= n;
	}
	return true;
}

static void remove_res(struct virtio_gpu *g, struct gpu_res *r)
{
	for (uint32_t i = 0; i < g->nr_res; i++) {
		if (g->res[i] != r)
			continue;
		g->res[i] = g->res[--g->nr_res];
		g->res[g->nr_res] = NULL;
		break;
	}
	g->host_bytes -= r->bytes;
	g->all_entries -= r->nr_entries;
	free_res(r);
}

static void free_all(struct virtio_gpu *g)
{
	for (uint32_t i = 0; i < g->nr_res; i++) {
		free_res(g->res[i]);
		g->res[i] = NULL;
	}
	g->nr_res = 0;
	g->host_bytes = 0;
	g->all_entries = 0;
}

/* ---- scanout ---- */

/* (x, y, w, h) lies wholly inside a rw x rh resource, without overflow. */
static bool rect_inside(uint32_t x, uint32_t y, uint32_t w, uint32_t h, uint32_t rw, uint32_t rh)
{
	return x <= rw && w <= rw - x && y <= rh && h <= rh - y;
}

static bool mode_ok(uint32_t w, uint32_t h)
{
	return w >= DISPLAY_MIN_DIM && h >= DISPLAY_MIN_DIM && w <= DISPLAY_MAX_W &&
	       h <= DISPLAY_MAX_H;
}

/* Copy the resource rectangle (x, y, w, h), already inside r, clipped to the scanout's, to the
 * display at the matching display coordinates. */
static void blit(struct virtio_gpu *g, const struct gpu_res *r, uint32_t x, uint32_t y, uint32_t w,
		 uint32_t h)
{
	const struct gpu_scanout *s = &g->scanout;
	uint64_t x0 = x > s->x ? x : s->x, y0 = y > s->y ? y : s->y;
	uint64_t x1 = (uint64_t)x + w, y1 = (uint64_t)y + h;
	const uint8_t *src;

	if (x1 > (uint64_t)s->x + s->w)
		x1 = (uint64_t)s->x + s->w;
	if (y1 > (uint64_t)s->y + s->h)
		y1 = (uint64_t)s->y + s->h;
	if (x1 <= x0 || y1 <= y0)
		return;
	src = r->pixels + (y0 * r->width + x0) * 4;
	/* The format was checked at creation: display_blit cannot refuse it. */
	if (display_blit(g->d, (uint32_t)(x0 - s->x), (uint32_t)(y0 - s->y), (uint32_t)(x1 - x0),
			 (uint32_t)(y1 - y0), src, (size_t)r->width * 4,
			 (enum display_format)r->format))
		log_warn("virtio-gpu: resource %u: format %u refused by the display", r->id,
			 r->format);
}

/* Show scanout s of resource r: the display takes the rectangle's size (kept if it already
 * has it, so a page flip between equal buffers does not blank the screen) and its pixels as
 * the host copy holds them.  0 or the display's -errno (nothing changed then). */
static int scanout_show(struct virtio_gpu *g, const struct gpu_res *r, const struct gpu_scanout *s)
{
	uint32_t cw, ch;
	int ret;

	if (!display_mode(g->d, &cw, &ch) || cw != s->w || ch != s->h) {
		ret = display_set_mode(g->d, s->w, s->h, true);
		if (ret)
			return ret;
	}
	g->scanout = *s;
	blit(g, r, s->x, s->y, s->w, s->h);
	return 0;
}

static void scanout_disable(struct virtio_gpu *g)
{
	/* Switching the display off allocates nothing: it cannot fail. */
	if (g->scanout.resource_id && display_set_mode(g->d, 0, 0, false))
		log_warn("virtio-gpu: cannot switch the display off");
	memset(&g->scanout, 0, sizeof(g->scanout));
}

/* ---- EDID (VESA E-EDID 1.4, one 128-byte base block) ---- */

/* One 18-byte detailed timing descriptor for w x h at 60 Hz with reduced blanking (CVT-RB
 * style: 160 pixels of horizontal blanking, at least 460 us of vertical blanking). */
static void edid_dtd(uint8_t *p, uint32_t w, uint32_t h, uint32_t mm_w, uint32_t mm_h)
{
	const uint32_t hblank = 160, hfp = 48, hsync = 32, vfp = 3, vsync = 5;
	uint32_t vblank = h * 276 / 9724 + 1, clock;

	if (vblank < vfp + vsync + 6)
		vblank = vfp + vsync + 6;
	/* 10 kHz units, rounded up; the 16-bit field holds 655 MHz (3840x2160 needs 534). */
	clock = (uint32_t)(((uint64_t)(w + hblank) * (h + vblank) * 60 + 9999) / 10000);
	if (clock > 0xffff)
		clock = 0xffff;
	p[0] = (uint8_t)clock;
	p[1] = (uint8_t)(clock >> 8);
	p[2] = (uint8_t)w;
	p[3] = (uint8_t)hblank;
	p[4] = (uint8_t)(((w >> 8) & 0xf) << 4 | ((hblank >> 8) & 0xf));
	p[5] = (uint8_t)h;
	p[6] = (uint8_t)vblank;
	p[7] = (uint8_t)(((h >> 8) & 0xf) << 4 | ((vblank >> 8) & 0xf));
	p[8] = (uint8_t)hfp;
	p[9] = (uint8_t)hsync;
	p[10] = (uint8_t)((vfp & 0xf) << 4 | (vsync & 0xf));
	p[11] = (uint8_t)(((hfp >> 8) & 3) << 6 | ((hsync >> 8) & 3) << 4 | ((vfp >> 4) & 3) << 2 |
			  ((vsync >> 4) & 3));
	p[12] = (uint8_t)mm_w;
	p[13] = (uint8_t)mm_h;
	p[14] = (uint8_t)(((mm_w >> 8) & 0xf) << 4 | ((mm_h >> 8) & 0xf));
	p[15] = 0; /* no borders */
	p[16] = 0;
	p[17] = 0x1a; /* digital separate sync, +hsync, -vsync (CVT-RB) */
}

void virtio_gpu_build_edid(uint32_t w, uint32_t h, uint8_t e[VIRTIO_GPU_EDID_SIZE])
{
	static const uint8_t magic[8] = { 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00 };
	/* sRGB primaries and D65 white as 10-bit binary fractions (x, y pairs: R, G, B, W). */
	static const uint16_t chroma[8] = { 655, 338, 307, 614, 154, 61, 320, 337 };
	static const char name[] = "ignition";
	/* "IGN": three 5-bit letters, 'A' = 1, big-endian. */
	const uint16_t mfg = ('I' - 'A' + 1) << 10 | ('G' - 'A' + 1) << 5 | ('N' - 'A' + 1);
	uint32_t mm_w, mm_h;
	unsigned sum = 0;
	uint8_t *d;

	if (w > 4095)
		w = 4095; /* 12-bit fields */
	if (h > 4095)
		h = 4095;
	/* Physical size for 96 dots per inch, so desktops pick scale 1. */
	mm_w = (w * 254 + 480) / 960;
	mm_h = (h * 254 + 480) / 960;
	memset(e, 0, VIRTIO_GPU_EDID_SIZE);
	memcpy(e, magic, sizeof(magic));
	e[8] = (uint8_t)(mfg >> 8);
	e[9] = (uint8_t)mfg;
	e[10] = 0x01;	     /* product code 1 */
	e[17] = 2024 - 1990; /* year of manufacture; week 0 = unspecified */
	e[18] = 1;	     /* EDID 1.4 */
	e[19] = 4;
	e[20] = 0x80;						  /* digital input */
	e[21] = (uint8_t)((mm_w + 5) / 10 ? (mm_w + 5) / 10 : 1); /* cm */
	e[22] = (uint8_t)((mm_h + 5) / 10 ? (mm_h + 5) / 10 : 1);
	e[23] = 120;  /* gamma 2.2 */
	e[24] = 0x06; /* RGB 4:4:4, sRGB default colour space, preferred timing is native */
	e[25] = (uint8_t)((chroma[0] & 3) << 6 | (chroma[1] & 3) << 4 | (chroma[2] & 3) << 2 |
			  (chroma[3] & 3));
	e[26] = (uint8_t)((chroma[4] & 3) << 6 | (chroma[5] & 3) << 4 | (chroma[6] & 3) << 2 |
			  (chroma[7] & 3));
	for (unsigned i = 0; i < 8; i++)
		e[27 + i] = (uint8_t)(chroma[i] >> 2);
	/* 35..37: no established timings; 38..53: eight unused standard timings. */
	for (unsigned i = 38; i < 54; i++)
		e[i] = 0x01;
	edid_dtd(e + 54, w, h, mm_w, mm_h); /* the first descriptor is the preferred timing */
	d = e + 72;			    /* display product name (tag 0xfc) */
	d[3] = 0xfc;
	memset(d + 5, ' ', 13);
	memcpy(d + 5, name, sizeof(name) - 1);
	d[5 + sizeof(name) - 1] = '\n';
	e[90 + 3] = 0x10; /* two dummy descriptors */
	e[108 + 3] = 0x10;
	/* 126: no extension blocks; 127: the checksum makes the block sum to 0 mod 256. */
	for (unsigned i = 0; i < VIRTIO_GPU_EDID_SIZE - 1; i++)
		sum += e[i];
	e[127] = (uint8_t)(256 - sum % 256);
}

/* ---- controlq commands (§5.7.6.8) ---- */

static uint32_t cmd_display_info(struct virtio_gpu *g)
{
	uint32_t w, h;
	uint8_t *m = g->resp + VIRTIO_GPU_HDR_SIZE; /* pmodes[0]; the other 15 stay zero */

	display_preferred(g->d, &w, &h);
	virtio_put_le(m + 8, w, 4);
	virtio_put_le(m + 12, h, 4);
	virtio_put_le(m + 16, 1, 4); /* enabled */
	return VIRTIO_GPU_RESP_OK_DISPLAY_INFO;
}

static uint32_t cmd_get_edid(struct virtio_gpu *g, const uint8_t *req)
{
	uint32_t w, h;

	if (get32(req, 24) != 0)
		return VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER;
	display_preferred(g->d, &w, &h);
	virtio_put_le(g->resp + VIRTIO_GPU_HDR_SIZE, VIRTIO_GPU_EDID_SIZE, 4);
	virtio_gpu_build_edid(w, h, g->resp + VIRTIO_GPU_HDR_SIZE + 8);
	return VIRTIO_GPU_RESP_OK_EDID;
}

static uint32_t cmd_create_2d(struct virtio_gpu *g, const uint8_t *req)
{
	uint32_t id = get32(req, 24), fmt = get32(req, 28), w = get32(req, 32), h = get32(req, 36);
	struct gpu_res *r;
	uint64_t bytes;

	if (!id || find_res(g, id)) {
		log_guest("virtio-gpu: create: resource id %u is %s", id, id ? "in use" : "0");
		return VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID;
	}
	if (!display_format_valid(fmt) || !w || !h || w > VIRTIO_GPU_MAX_DIM ||
	    h > VIRTIO_GPU_MAX_DIM) {
		log_guest("virtio-gpu: create: %ux%u format %u refused", w, h, fmt);
		return VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER;
	}
	bytes = (uint64_t)w * h * 4; /* both <= 2^14: no overflow */
	if (g->nr_res == VIRTIO_GPU_MAX_RESOURCES ||
	    bytes > VIRTIO_GPU_MAX_HOST_BYTES - g->host_bytes) {
		log_guest("virtio-gpu: create: %ux%u over the limits (%u resources, %llu bytes)", w,
			  h, g->nr_res, (unsigned long long)g->host_bytes);
		return VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY;
	}
	r = alloc_res(id, fmt, w, h);
	if (!r)
		return VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY;
	g->res[g->nr_res++] = r;
	g->host_bytes += r->bytes;
	return VIRTIO_GPU_RESP_OK_NODATA;
}

static uint32_t cmd_unref(struct virtio_gpu *g, const uint8_t *req)
{
	struct gpu_res *r = find_res(g, get32(req, 24));

	if (!r)
		return VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID;
	/* The scanout and cursor stop using it (the driver should have done that first). */
	if (g->scanout.resource_id == r->id)
		scanout_disable(g);
	if (g->cursor.resource_id == r->id)
		g->cursor.resource_id = 0;
	remove_res(g, r);
	return VIRTIO_GPU_RESP_OK_NODATA;
}

static uint32_t cmd_set_scanout(struct virtio_gpu *g, const uint8_t *req)
{
	struct gpu_scanout s = { .x = get32(req, 24),
				 .y = get32(req, 28),
				 .w = get32(req, 32),
				 .h = get32(req, 36),
				 .resource_id = get32(req, 44) };
	uint32_t sid = get32(req, 40);
	struct gpu_res *r;
	int ret;

	if (sid != 0)
		return VIRTIO_GPU_RESP_ERR_INVALID_SCANOUT_ID;
	if (!s.resource_id) {
		scanout_disable(g);
		return VIRTIO_GPU_RESP_OK_NODATA;
	}
	r = find_res(g, s.resource_id);
	if (!r)
		return VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID;
	/* §5.7.6.8: the rectangle must be covered by the resource; the display takes its size. */
	if (!rect_inside(s.x, s.y, s.w, s.h, r->width, r->height) || !mode_ok(s.w, s.h)) {
		log_guest("virtio-gpu: scanout %ux%u+%u+%u of a %ux%u resource refused", s.w, s.h,
			  s.x, s.y, r->width, r->height);
		return VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER;
	}
	ret = scanout_show(g, r, &s);
	if (ret)
		return ret == -ENOMEM ? VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY
				      : VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER;
	return VIRTIO_GPU_RESP_OK_NODATA;
}

static uint32_t cmd_flush(struct virtio_gpu *g, const uint8_t *req)
{
	uint32_t x = get32(req, 24), y = get32(req, 28), w = get32(req, 32), h = get32(req, 36);
	struct gpu_res *r = find_res(g, get32(req, 40));

	if (!r)
		return VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID;
	if (!rect_inside(x, y, w, h, r->width, r->height)) {
		log_guest("virtio-gpu: flush of %ux%u+%u+%u outside its %ux%u resource", w, h, x, y,
			  r->width, r->height);
		return VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER;
	}
	if (g->scanout.resource_id == r->id)
		blit(g, r, x, y, w, h);
	return VIRTIO_GPU_RESP_OK_NODATA;
}

/* §5.7.6.8 TRANSFER_TO_HOST_2D: row i of the rectangle comes from backing offset
 * offset + i * stride, stride being the resource's row (2D resources have no other), which is
 * how Linux lays out its framebuffers (offset = y * pitch + x * 4). */
static uint32_t cmd_transfer(struct virtio_gpu *g, const uint8_t *req)
{
	uint32_t x = get32(req, 24), y = get32(req, 28), w = get32(req, 32), h = get32(req, 36);
	uint64_t off = virtio_get_le(req + 40, 8), stride, row, span;
	struct gpu_res *r = find_res(g, get32(req, 48));

	if (!r)
		return VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID;
	if (!rect_inside(x, y, w, h, r->width, r->height)) {
		log_guest("virtio-gpu: transfer of %ux%u+%u+%u outside its %ux%u resource", w, h, x,
			  y, r->width, r->height);
		return VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER;
	}
	if (!r->entries) {
		log_guest("virtio-gpu: transfer to resource %u without backing", r->id);
		return VIRTIO_GPU_RESP_ERR_UNSPEC;
	}
	if (!w || !h)
		return VIRTIO_GPU_RESP_OK_NODATA;
	stride = (uint64_t)r->width * 4;
	row = (uint64_t)w * 4;
	span = (uint64_t)(h - 1) * stride + row; /* < 2^31: dimensions are <= 2^14 */
	if (off > r->backing_len || span > r->backing_len - off) {
		log_guest("virtio-gpu: transfer of %llu bytes at %llu past a backing of %llu",
			  (unsigned long long)span, (unsigned long long)off,
			  (unsigned long long)r->backing_len);
		return VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER;
	}
	for (uint32_t i = 0; i < h; i++) {
		uint8_t *dst = r->pixels + ((uint64_t)(y + i) * r->width + x) * 4;

		if (!backing_read(g, r, off + i * stride, dst, row))
			return VIRTIO_GPU_RESP_ERR_UNSPEC;
	}
	return VIRTIO_GPU_RESP_OK_NODATA;
}

static uint32_t cmd_attach(struct virtio_gpu *g, const struct virtq_elem *e, const uint8_t *req)
{
	uint32_t id = get32(req, 24), n = get32(req, 28);
	struct gpu_entry *ents;
	struct gpu_res *r;

	if (n > VIRTIO_GPU_MAX_ENTRIES || !n) {
		log_guest("virtio-gpu: attach of %u entries refused", n);
		return VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER;
	}
	if (e->out_len < REQ_ATTACH + (uint64_t)n * VIRTIO_GPU_MEM_ENTRY_SIZE) {
		log_guest("virtio-gpu: attach of %u entries in a %u-byte request", n, e->out_len);
		return MALFORMED;
	}
	r = find_res(g, id);
	if (!r)
		return VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID;
	if (r->entries) {
		log_guest("virtio-gpu: resource %u already has backing", id);
		return VIRTIO_GPU_RESP_ERR_UNSPEC;
	}
	if (n > VIRTIO_GPU_MAX_ALL_ENTRIES - g->all_entries)
		return VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY;
	ents = calloc(n, sizeof(*ents));
	if (!ents)
		return VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY;
	for (uint32_t i = 0; i < n; i += ENTRY_CHUNK) {
		uint8_t buf[ENTRY_CHUNK * VIRTIO_GPU_MEM_ENTRY_SIZE];
		uint32_t k = n - i < ENTRY_CHUNK ? n - i : ENTRY_CHUNK;

		virtq_elem_read(e, REQ_ATTACH + (size_t)i * VIRTIO_GPU_MEM_ENTRY_SIZE, buf,
				(size_t)k * VIRTIO_GPU_MEM_ENTRY_SIZE);
		for (uint32_t j = 0; j < k; j++) {
			const uint8_t *p = buf + j * VIRTIO_GPU_MEM_ENTRY_SIZE;
			struct gpu_entry *en = &ents[i + j];

			en->addr = virtio_get_le(p, 8);
			en->len = get32(p, 8);
			if (!entry_ok(g, en->addr, en->len)) {
				log_guest("virtio-gpu: backing entry %u (%#llx, %u bytes) is not "
					  "guest RAM",
					  i + j, (unsigned long long)en->addr, en->len);
				free(ents);
				return VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER;
			}
		}
	}
	if (!set_backing(r, ents, n)) {
		free(ents);
		return VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY;
	}
	g->all_entries += n;
	return VIRTIO_GPU_RESP_OK_NODATA;
}

static uint32_t cmd_detach(struct virtio_gpu *g, const uint8_t *req)
{
	struct gpu_res *r = find_res(g, get32(req, 24));

	if (!r)
		return VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID;
	if (!r->entries)
		return VIRTIO_GPU_RESP_ERR_UNSPEC;
	g->all_entries -= r->nr_entries;
	free_backing(r);
	return VIRTIO_GPU_RESP_OK_NODATA;
}

/* Request and response sizes of a controlq command (unknown ones: a bare header each). */
static uint32_t req_size(uint32_t type)
{
	switch (type) {
	case VIRTIO_GPU_CMD_RESOURCE_CREATE_2D:
		return REQ_CREATE_2D;
	case VIRTIO_GPU_CMD_RESOURCE_UNREF:
	case VIRTIO_GPU_CMD_RESOURCE_DETACH_BACKING:
	case VIRTIO_GPU_CMD_GET_EDID:
		return REQ_RES_ID;
	case VIRTIO_GPU_CMD_SET_SCANOUT:
		return REQ_SET_SCANOUT;
	case VIRTIO_GPU_CMD_RESOURCE_FLUSH:
		return REQ_FLUSH;
	case VIRTIO_GPU_CMD_TRANSFER_TO_HOST_2D:
		return REQ_TRANSFER;
	case VIRTIO_GPU_CMD_RESOURCE_ATTACH_BACKING:
		return REQ_ATTACH;
	default:
		return VIRTIO_GPU_HDR_SIZE;
	}
}

static uint32_t resp_size(uint32_t type)
{
	switch (type) {
	case VIRTIO_GPU_CMD_GET_DISPLAY_INFO:
		return VIRTIO_GPU_DISPLAY_INFO_SIZE;
	case VIRTIO_GPU_CMD_GET_EDID:
		return VIRTIO_GPU_EDID_RESP_SIZE;
	default:
		return VIRTIO_GPU_HDR_SIZE;
	}
}

/* Run one command of `e` on queue `q`; returns the bytes of response written (0: malformed
 * chain, completed with nothing, as the driver gave no room or no whole request). */
static uint32_t handle(struct virtio_gpu *g, unsigned q, const struct virtq_elem *e)
{
	uint8_t req[REQ_MAX] = { 0 };
	uint32_t type, need_req, need_resp, resp_type, len;

	if (e->out_len < VIRTIO_GPU_HDR_SIZE) {
		log_guest("virtio-gpu: queue %u: request of %u bytes", q, e->out_len);
		return 0;
	}
	virtq_elem_read(e, 0, req, e->out_len < REQ_MAX ? e->out_len : REQ_MAX);
	type = get32(req, 0);
	if (q == VIRTIO_GPU_Q_CURSOR) {
		/* §5.7.6.10: both cursor commands carry struct virtio_gpu_update_cursor.  Linux
		 * gives no response buffer (the spec names OK_NODATA): answer only if there is
		 * room for a header. */
		need_req =
			type == VIRTIO_GPU_CMD_UPDATE_CURSOR || type == VIRTIO_GPU_CMD_MOVE_CURSOR
				? REQ_CURSOR
				: VIRTIO_GPU_HDR_SIZE;
		need_resp = 0;
	} else {
		need_req = req_size(type);
		need_resp = resp_size(type);
	}
	if (e->out_len < need_req) {
		log_guest("virtio-gpu: command %#x of %u bytes (needs %u)", type, e->out_len,
			  need_req);
		return 0;
	}
	if (e->in_len < need_resp) {
		log_guest("virtio-gpu: command %#x with %u bytes for its %u-byte response", type,
			  e->in_len, need_resp);
		return 0;
	}
	len = need_resp > VIRTIO_GPU_HDR_SIZE ? need_resp : VIRTIO_GPU_HDR_SIZE;
	memset(g->resp, 0, len);
	if (q == VIRTIO_GPU_Q_CURSOR) {
		uint32_t sid = get32(req, 24);

		resp_type = VIRTIO_GPU_RESP_OK_NODATA;
		if (type != VIRTIO_GPU_CMD_UPDATE_CURSOR && type != VIRTIO_GPU_CMD_MOVE_CURSOR) {
			log_guest("virtio-gpu: command %#x on the cursor queue", type);
			resp_type = VIRTIO_GPU_RESP_ERR_UNSPEC;
		} else if (sid != 0) {
			resp_type = VIRTIO_GPU_RESP_ERR_INVALID_SCANOUT_ID;
		} else if (type == VIRTIO_GPU_CMD_UPDATE_CURSOR && get32(req, 40) &&
			   !find_res(g, get32(req, 40))) {
			resp_type = VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID;
		} else {
			g->cursor.x = get32(req, 28);
			g->cursor.y = get32(req, 32);
			/* MOVE_CURSOR: "the other fields ... will be ignored by the device". */
			if (type == VIRTIO_GPU_CMD_UPDATE_CURSOR) {
				g->cursor.resource_id = get32(req, 40);
				g->cursor.hot_x = get32(req, 44);
				g->cursor.hot_y = get32(req, 48);
			}
		}
		if (e->in_len < VIRTIO_GPU_HDR_SIZE)
			return 0;
	} else {
		switch (type) {
		case VIRTIO_GPU_CMD_GET_DISPLAY_INFO:
			resp_type = cmd_display_info(g);
			break;
		case VIRTIO_GPU_CMD_GET_EDID:
			resp_type = cmd_get_edid(g, req);
			break;
		case VIRTIO_GPU_CMD_RESOURCE_CREATE_2D:
			resp_type = cmd_create_2d(g, req);
			break;
		case VIRTIO_GPU_CMD_RESOURCE_UNREF:
			resp_type = cmd_unref(g, req);
			break;
		case VIRTIO_GPU_CMD_SET_SCANOUT:
			resp_type = cmd_set_scanout(g, req);
			break;
		case VIRTIO_GPU_CMD_RESOURCE_FLUSH:
			resp_type = cmd_flush(g, req);
			break;
		case VIRTIO_GPU_CMD_TRANSFER_TO_HOST_2D:
			resp_type = cmd_transfer(g, req);
			break;
		case VIRTIO_GPU_CMD_RESOURCE_ATTACH_BACKING:
			resp_type = cmd_attach(g, e, req);
			break;
		case VIRTIO_GPU_CMD_RESOURCE_DETACH_BACKING:
			resp_type = cmd_detach(g, req);
			break;
		default:
			/* 3D, capsets (num_capsets is 0), blobs, UUIDs: not offered. */
			log_guest("virtio-gpu: unsupported command %#x", type);
			resp_type = VIRTIO_GPU_RESP_ERR_UNSPEC;
			break;
		}
		log_debug("virtio-gpu: cmd %#x res %u rect %ux%u+%u+%u -> %#x", type,
			  get32(req, type == VIRTIO_GPU_CMD_TRANSFER_TO_HOST_2D ? 48 : 40),
			  get32(req, 32), get32(req, 36), get32(req, 24), get32(req, 28),
			  resp_type);
		if (resp_type == MALFORMED)
			return 0;
	}
	/* Errors carry the bare header (§5.7.6.7). */
	if (resp_type >= VIRTIO_GPU_RESP_ERR_UNSPEC)
		len = VIRTIO_GPU_HDR_SIZE;
	virtio_put_le(g->resp, resp_type, 4);
	/* §5.7.6.7: a fenced request gets the flag and its fence id back; all commands are
	 * complete when answered. */
	if (get32(req, 4) & VIRTIO_GPU_FLAG_FENCE) {
		virtio_put_le(g->resp + 4, VIRTIO_GPU_FLAG_FENCE, 4);
		memcpy(g->resp + 8, req + 8, 8);   /* fence_id */
		memcpy(g->resp + 16, req + 16, 4); /* ctx_id */
	}
	return (uint32_t)virtq_elem_write(e, 0, g->resp, len);
}

/* ---- virtio ops ---- */

static uint64_t gpu_features(void *dev)
{
	return VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC) |
	       VIRTIO_BIT(VIRTIO_F_EVENT_IDX) | VIRTIO_BIT(VIRTIO_GPU_F_EDID);
}

static void gpu_set_transport(void *dev, struct virtio_mmio *t)
{
	struct virtio_gpu *g = dev;

	__atomic_store_n(&g->mmio, t, __ATOMIC_RELEASE);
}

static uint64_t gpu_config_read(void *dev, uint32_t off, unsigned size)
{
	struct virtio_gpu *g = dev;
	uint8_t cfg[VIRTIO_GPU_CFG_SIZE] = { 0 };

	virtio_put_le(cfg + VIRTIO_GPU_CFG_EVENTS_READ,
		      __atomic_load_n(&g->events_read, __ATOMIC_ACQUIRE), 4);
	/* events_clear reads 0; one scanout; no capability sets (2D only). */
	virtio_put_le(cfg + VIRTIO_GPU_CFG_NUM_SCANOUTS, 1, 4);
	return virtio_config_get(cfg, sizeof(cfg), off, size);
}

/* §5.7.4: a 1 written into a bit of events_clear clears that bit of events_read; the other
 * fields are read-only.  Any width, like every config field. */
static void gpu_config_write(void *dev, uint32_t off, unsigned size, uint64_t val)
{
	struct virtio_gpu *g = dev;
	uint32_t clear = 0;
	bool dropped = false;

	for (unsigned i = 0; i < size && i < 8; i++) {
		uint64_t at = (uint64_t)off + i;

		if (at >= VIRTIO_GPU_CFG_EVENTS_CLEAR && at < VIRTIO_GPU_CFG_EVENTS_CLEAR + 4)
			clear |= (uint32_t)(uint8_t)(val >> (8 * i))
				 << (8 * (at - VIRTIO_GPU_CFG_EVENTS_CLEAR));
		else
			dropped = true;
	}
	if (dropped)
		log_guest("virtio-gpu: config write of %u bytes at %u outside events_clear", size,
			  off);
	__atomic_and_fetch(&g->events_read, ~clear, __ATOMIC_ACQ_REL);
}

static void gpu_queue_notify(void *dev, unsigned q)
{
	struct virtio_gpu *g = dev;
	struct virtq *vq;
	bool pushed = false;

	if (!g->active)
		return;
	vq = q == VIRTIO_GPU_Q_CONTROL	? g->ctrl_vq
	     : q == VIRTIO_GPU_Q_CURSOR ? g->cursor_vq
					: NULL;
	if (!vq)
		return;
	for (unsigned n = 0;; n++) {
		int ret;

		if (n == VIRTIO_QUEUE_BUDGET) {
			virtio_mmio_queue_yield(g->mmio, q);
			break;
		}
		ret = virtq_pop(vq, &g->elem);
		if (ret == 0)
			break;
		if (ret < 0) {
			virtio_mmio_set_needs_reset(g->mmio);
			break;
		}
		virtq_push(vq, g->elem.head, handle(g, q, &g->elem));
		pushed = true;
	}
	if (pushed)
		virtio_mmio_notify_used(g->mmio, vq);
}

static int gpu_activate(void *dev, struct virtio_mmio *t, uint64_t features, struct virtq *vqs,
			unsigned nr)
{
	struct virtio_gpu *g = dev;

	if (nr < 1 || !vqs[VIRTIO_GPU_Q_CONTROL].ready) {
		log_guest("virtio-gpu: DRIVER_OK without a control queue");
		return -EINVAL;
	}
	if (!g->gm)
		g->gm = vqs[VIRTIO_GPU_Q_CONTROL].gm;
	g->ctrl_vq = &vqs[VIRTIO_GPU_Q_CONTROL];
	/* A driver without the cursor queue just has no hardware cursor. */
	g->cursor_vq = nr > VIRTIO_GPU_Q_CURSOR && vqs[VIRTIO_GPU_Q_CURSOR].ready
			       ? &vqs[VIRTIO_GPU_Q_CURSOR]
			       : NULL;
	__atomic_store_n(&g->mmio, t, __ATOMIC_RELEASE);
	g->active = true;
	/* A host resize while the device was not active (before DRIVER_OK, or between a
	 * restore and its re-activation) was only recorded: tell the driver now. */
	if (__atomic_load_n(&g->events_read, __ATOMIC_ACQUIRE))
		virtio_mmio_config_changed(t);
	return 0;
}

/* §5.7.6: resources are the driver's; a reset driver holds none and shows nothing.  A pending
 * display event stays: the host's request still stands. */
static void gpu_reset(void *dev)
{
	struct virtio_gpu *g = dev;

	g->active = false;
	g->ctrl_vq = g->cursor_vq = NULL;
	scanout_disable(g);
	memset(&g->cursor, 0, sizeof(g->cursor));
	free_all(g);
}

/* The display's resize handler (any thread): record the event, and raise a configuration
 * change interrupt if a driver is there to see it (§5.7.4.2). */
static int gpu_resize(void *opaque, uint32_t w, uint32_t h)
{
	struct virtio_gpu *g = opaque;
	struct virtio_mmio *t = __atomic_load_n(&g->mmio, __ATOMIC_ACQUIRE);

	if (t)
		virtio_mmio_lock(t);
	__atomic_or_fetch(&g->events_read, VIRTIO_GPU_EVENT_DISPLAY, __ATOMIC_ACQ_REL);
	if (t && g->active)
		virtio_mmio_config_changed(t);
	if (t)
		virtio_mmio_unlock(t);
	return 0;
}

/* ---- snapshots ----
 *
 * SNAP_REC_VIRTIO_GPU, version 2 (the transport saves status, features and queues):
 *   u32 events_read
 *   u32 resource count (<= VIRTIO_GPU_MAX_RESOURCES), then per resource:
 *     u32 id (nonzero, unique), u32 format (display_format_valid), u32 width, u32 height
 *     (1..VIRTIO_GPU_MAX_DIM; all resources' pixels within VIRTIO_GPU_MAX_HOST_BYTES),
 *     u32 entry count (0 = no backing; <= VIRTIO_GPU_MAX_ENTRIES, all within
 *     VIRTIO_GPU_MAX_ALL_ENTRIES), then per entry u64 guest address, u32 length (non-empty,
 *     wholly guest RAM)
 *   scanout 0: u32 resource id (0 = off), u32 x, y, width, height (all 0 when off; else
 *     inside the resource and within the display's mode limits)
 *   cursor: u32 resource id (0 or a resource above), u32 x, y, hot_x, hot_y
 *   (version 2) u32 preferred width, u32 preferred height: the mode GET_DISPLAY_INFO and
 *     GET_EDID report (the machine's --gpu mode, or the host's last resize request), within
 *     the display's mode limits.  A version 1 record leaves the display's own (the machine
 *     record's mode), which is what a restore of such a snapshot did before.
 * Plain data only: no pixels, no host pointers.  A 2D resource's pixels are what the guest
 * last transferred from its backing, and the backing is guest RAM, which the memory file holds
 * and which is restored first.  Restore re-creates each host resource, reads its pixels back
 * from its backing (rows of width * 4 bytes from offset 0, Linux's framebuffer layout; every
 * entry resolved through gmem_ptr again, as a transfer does) and shows the scanout on the
 * display before the vCPUs run, so a restored or reset guest's screen is there at once
 * without the guest redrawing.  Pixels the guest had drawn but not yet transferred show up
 * early; nothing else differs.
 *
 * Saved at a quiesced point: a snapshot (or checkpoint) pauses the vCPUs, and the transport
 * calls this with its lock held, which every command also holds from pop to push
 * (queue_notify), so the record always falls between two whole commands.  No quiesce op:
 * no command is left half-done between calls.  A host resize (another thread) sets the
 * preferred mode before it takes the transport lock to raise its event: one that races the
 * save may be recorded with its mode but without its event, and the restored guest then
 * sees that mode at its next GET_DISPLAY_INFO, not at once. */
#define VIRTIO_GPU_STATE_VERSION 2

static int gpu_save(void *dev, struct snap_writer *w, const char *id)
{
	struct virtio_gpu *g = dev;
	uint32_t pw, ph;

	snap_rec_begin(w, SNAP_REC_VIRTIO_GPU, VIRTIO_GPU_STATE_VERSION, id);
	snap_put_u32(w, __atomic_load_n(&g->events_read, __ATOMIC_ACQUIRE));
	snap_put_u32(w, g->nr_res);
	for (uint32_t i = 0; i < g->nr_res; i++) {
		const struct gpu_res *r = g->res[i];

		snap_put_u32(w, r->id);
		snap_put_u32(w, r->format);
		snap_put_u32(w, r->width);
		snap_put_u32(w, r->height);
		snap_put_u32(w, r->nr_entries);
		for (uint32_t j = 0; j < r->nr_entries; j++) {
			snap_put_u64(w, r->entries[j].addr);
			snap_put_u32(w, r->entries[j].len);
		}
	}
	snap_put_u32(w, g->scanout.resource_id);
	snap_put_u32(w, g->scanout.x);
	snap_put_u32(w, g->scanout.y);
	snap_put_u32(w, g->scanout.w);
	snap_put_u32(w, g->scanout.h);
	snap_put_u32(w, g->cursor.resource_id);
	snap_put_u32(w, g->cursor.x);
	snap_put_u32(w, g->cursor.y);
	snap_put_u32(w, g->cursor.hot_x);
	snap_put_u32(w, g->cursor.hot_y);
	display_preferred(g->d, &pw, &ph);
	snap_put_u32(w, pw);
	snap_put_u32(w, ph);
	return w->err;
}

/* A restored resource table under construction. */
struct loaded {
	struct gpu_res *res[VIRTIO_GPU_MAX_RESOURCES];
	uint32_t nr;
	uint64_t bytes;
	uint32_t entries;
};

static void loaded_free(struct loaded *l)
{
	for (uint32_t i = 0; i < l->nr; i++)
		free_res(l->res[i]);
	free(l);
}

static struct gpu_res *loaded_find(const struct loaded *l, uint32_t id)
{
	for (uint32_t i = 0; id && i < l->nr; i++)
		if (l->res[i]->id == id)
			return l->res[i];
	return NULL;
}

/* Read one resource record into l; false (r->err set or out of memory in *oom) if refused. */
static bool load_res(struct virtio_gpu *g, struct snap_reader *rd, struct loaded *l, bool *oom)
{
	uint32_t id = snap_get_u32(rd), fmt = snap_get_u32(rd), w = snap_get_u32(rd),
		 h = snap_get_u32(rd), n = snap_get_u32(rd);
	struct gpu_entry *ents = NULL;
	struct gpu_res *r;
	uint64_t bytes;

	if (rd->err || !id || loaded_find(l, id) || !display_format_valid(fmt) || !w || !h ||
	    w > VIRTIO_GPU_MAX_DIM || h > VIRTIO_GPU_MAX_DIM || n > VIRTIO_GPU_MAX_ENTRIES ||
	    n > VIRTIO_GPU_MAX_ALL_ENTRIES - l->entries)
		goto refuse;
	bytes = (uint64_t)w * h * 4;
	if (bytes > VIRTIO_GPU_MAX_HOST_BYTES - l->bytes)
		goto refuse;
	/* The entries are in the record: a count the payload cannot hold fails below before
	 * anything that large is trusted. */
	if ((uint64_t)n * 12 > rd->len - rd->off)
		goto refuse;
	if (n) {
		ents = calloc(n, sizeof(*ents));
		if (!ents) {
			*oom = true;
			return false;
		}
	}
	for (uint32_t j = 0; j < n; j++) {
		ents[j].addr = snap_get_u64(rd);
		ents[j].len = snap_get_u32(rd);
		if (rd->err || !entry_ok(g, ents[j].addr, ents[j].len)) {
			free(ents);
			goto refuse;
		}
	}
	r = alloc_res(id, fmt, w, h);
	if (!r || (n && !set_backing(r, ents, n))) {
		free_res(r);
		free(ents);
		*oom = true;
		return false;
	}
	l->res[l->nr++] = r;
	l->bytes += bytes;
	l->entries += n;
	return true;

refuse:
	snap_fail(rd);
	return false;
}

static int gpu_restore(void *dev, const struct snap_file *f, const char *id)
{
	struct virtio_gpu *g = dev;
	struct gpu_scanout s = { 0 };
	struct virtio_gpu_cursor c = { 0 };
	struct snap_reader rd;
	struct loaded *l;
	uint32_t events, n, pw = 0, ph = 0;
	bool oom = false;

	if (snap_file_find(f, SNAP_REC_VIRTIO_GPU, id, &rd)) {
		log_warn("virtio-gpu: no state record for '%s'", id);
		return -EINVAL;
	}
	if (rd.version < 1 || rd.version > VIRTIO_GPU_STATE_VERSION) {
		log_warn("virtio-gpu: %s: state version %u, this build reads 1 to %u", id,
			 rd.version, VIRTIO_GPU_STATE_VERSION);
		return -EINVAL;
	}
	if (!g->gm) {
		log_warn("virtio-gpu: %s: no guest memory to check the record against", id);
		return -EINVAL;
	}
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	events = snap_get_u32(&rd);
	if (events & ~VIRTIO_GPU_EVENT_DISPLAY)
		snap_fail(&rd);
	n = snap_get_u32(&rd);
	if (n > VIRTIO_GPU_MAX_RESOURCES)
		snap_fail(&rd);
	for (uint32_t i = 0; i < n && !rd.err; i++)
		if (!load_res(g, &rd, l, &oom) && oom)
			break;
	s.resource_id = snap_get_u32(&rd);
	s.x = snap_get_u32(&rd);
	s.y = snap_get_u32(&rd);
	s.w = snap_get_u32(&rd);
	s.h = snap_get_u32(&rd);
	c.resource_id = snap_get_u32(&rd);
	c.x = snap_get_u32(&rd);
	c.y = snap_get_u32(&rd);
	c.hot_x = snap_get_u32(&rd);
	c.hot_y = snap_get_u32(&rd);
	if (rd.version >= 2) {
		pw = snap_get_u32(&rd);
		ph = snap_get_u32(&rd);
		if (!mode_ok(pw, ph))
			snap_fail(&rd);
	}
	if (!oom && !rd.err) {
		const struct gpu_res *sr = loaded_find(l, s.resource_id);

		if (s.resource_id
			    ? !sr || !rect_inside(s.x, s.y, s.w, s.h, sr->width, sr->height) ||
				      !mode_ok(s.w, s.h)
			    : s.x || s.y || s.w || s.h)
			snap_fail(&rd);
		if (c.resource_id && !loaded_find(l, c.resource_id))
			snap_fail(&rd);
	}
	if (oom) {
		loaded_free(l);
		return -ENOMEM;
	}
	if (snap_reader_done(&rd)) {
		log_warn("virtio-gpu: %s: invalid state record", id);
		loaded_free(l);
		return -EINVAL;
	}
	/* Pixels from the backing, as a full transfer would bring them. */
	for (uint32_t i = 0; i < l->nr; i++) {
		struct gpu_res *r = l->res[i];
		uint64_t len = r->backing_len < r->bytes ? r->backing_len : r->bytes;

		if (r->entries && !backing_read(g, r, 0, r->pixels, len)) {
			loaded_free(l);
			return -EINVAL;
		}
	}
	/* Commit: nothing below refuses. */
	scanout_disable(g);
	free_all(g);
	memcpy(g->res, l->res, sizeof(l->res[0]) * l->nr);
	g->nr_res = l->nr;
	g->host_bytes = l->bytes;
	g->all_entries = l->entries;
	l->nr = 0;
	loaded_free(l);
	g->cursor = c;
	__atomic_store_n(&g->events_read, events, __ATOMIC_RELEASE);
	/* Checked above with the display's own limits: cannot fail. */
	if (pw && display_set_preferred(g->d, pw, ph))
		log_warn("virtio-gpu: %s: preferred mode %ux%u refused", id, pw, ph);
	if (s.resource_id && scanout_show(g, find_res(g, s.resource_id), &s))
		log_warn("virtio-gpu: %s: cannot show the restored %ux%u scanout", id, s.w, s.h);
	return 0;
}

static void gpu_destroy(void *dev)
{
	virtio_gpu_destroy(dev);
}

const struct virtio_device_ops virtio_gpu_ops = {
	.name = "virtio-gpu",
	.device_id = VIRTIO_ID_GPU,
	.num_queues = 2, /* §5.7.2: controlq, cursorq */
	.queue_max_size = VIRTIO_GPU_QUEUE_SIZE,
	.features = gpu_features,
	.set_transport = gpu_set_transport,
	.config_read = gpu_config_read,
	.config_write = gpu_config_write,
	.activate = gpu_activate,
	.queue_notify = gpu_queue_notify,
	.reset = gpu_reset,
	.save = gpu_save,
	.restore = gpu_restore,
	.rec = { SNAP_REC_VIRTIO_GPU, VIRTIO_GPU_STATE_VERSION },
	.destroy = gpu_destroy,
};

int virtio_gpu_create(struct display *d, struct virtio_gpu **out)
{
	struct virtio_gpu *g = calloc(1, sizeof(*g));

	if (!g)
		return -ENOMEM;
	g->d = d;
	display_set_resize_handler(d, gpu_resize, g);
	*out = g;
	return 0;
}

void virtio_gpu_set_gmem(struct virtio_gpu *g, const struct gmem *gm)
{
	g->gm = gm;
}

int virtio_gpu_add(struct devmgr *dm, struct display *d, struct virtio_gpu **out)
{
	struct virtio_gpu *g;
	int ret;

	ret = virtio_gpu_create(d, &g);
	if (ret)
		return ret;
	virtio_gpu_set_gmem(g, dm->gm);
	ret = virtio_mmio_add(dm, "virtio-gpu", &virtio_gpu_ops, g, NULL);
	if (ret) {
		virtio_gpu_destroy(g);
		return ret;
	}
	if (out)
		*out = g;
	return 0;
}

void virtio_gpu_get_cursor(struct virtio_gpu *g, struct virtio_gpu_cursor *out)
{
	struct virtio_mmio *t = __atomic_load_n(&g->mmio, __ATOMIC_ACQUIRE);

	if (t)
		virtio_mmio_lock(t);
	*out = g->cursor;
	if (t)
		virtio_mmio_unlock(t);
}

void virtio_gpu_usage(struct virtio_gpu *g, uint32_t *resources, uint64_t *bytes)
{
	struct virtio_mmio *t = __atomic_load_n(&g->mmio, __ATOMIC_ACQUIRE);

	if (t)
		virtio_mmio_lock(t);
	*resources = g->nr_res;
	*bytes = g->host_bytes;
	if (t)
		virtio_mmio_unlock(t);
}

/* The front ends that call the resize handler are stopped before the devices are destroyed
 * (main.c: ui_stop() before machine_destroy()). */
void virtio_gpu_destroy(struct virtio_gpu *g)
{
	if (!g)
		return;
	display_set_resize_handler(g->d, NULL, NULL);
	free_all(g);
	free(g);
}
