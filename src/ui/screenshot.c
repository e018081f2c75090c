/* Screenshots of the display as PNG files (ui.h, through frontend.h): the frame is copied under the display's lock
 * (display_copy), then encoded outside it with libpng as 8-bit RGB (PNG 1.2 §4.1.3: colour
 * type 2, bit depth 8), so the producer is held up only for the memcpy.
 *
 * Files are written the way snapshots are: to a new temporary name beside the target (created
 * with O_EXCL, which the event loop's seccomp filter allows; it refuses opening an existing
 * file for writing), fsync'ed, then renamed over the target, so a reader never sees half a PNG
 * and a failed write leaves nothing behind. */
#include "ui/frontend.h"

#include "ui/display.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The encoder runs on the event loop, so speed first: zlib level 1 and the Sub filter alone
 * (PNG 1.2 §6.3; libpng's adaptive choice tries all five per row).  Measured on this project's
 * 2-core host with a terminal-like 1280x800 frame: ~12 ms and 28 KB, against ~27 ms and 18 KB
 * with the adaptive filters; a 3840x2160 frame of noise ~0.65 s. */
#define PNG_ZLEVEL 1
/* Temporary names tried before giving up (a stale one from a crash takes one try). */
#define TMP_TRIES 16

/* Where libpng's output goes: a growing buffer. */
struct png_out {
	uint8_t *p;
	size_t len, cap;
	int err; /* -ENOMEM once an append failed */
};

static void out_write(png_structp png, png_bytep data, size_t len)
{
	struct png_out *o = png_get_io_ptr(png);

	if (o->err)
		return;
	if (len > o->cap - o->len) {
		size_t cap = o->cap ? o->cap : 65536;
		uint8_t *p;

		while (cap - o->len < len) {
			if (cap > SIZE_MAX / 2) {
				o->err = -ENOMEM;
				return;
			}
			cap *= 2;
		}
		p = realloc(o->p, cap);
		if (!p) {
			o->err = -ENOMEM;
			return;
		}
		o->p = p;
		o->cap = cap;
	}
	memcpy(o->p + o->len, data, len);
	o->len += len;
}

static void out_flush(png_structp png)
{
	(void)png;
}

/* libpng reports errors by longjmp (its default handler prints to stderr first, which the
 * guest console does not own: stay quiet and let the caller say why). */
static void png_fail(png_structp png, png_const_charp msg)
{
	(void)msg;
	png_longjmp(png, 1);
}

static void png_warn(png_structp png, png_const_charp msg)
{
	(void)png;
	(void)msg;
}

/* Encode w x h pixels (0x00RRGGBB) as PNG into *o.  0 or -errno. */
static int encode(const uint32_t *px, uint32_t w, uint32_t h, struct png_out *o)
{
	png_structp png;
	png_infop info = NULL;
	uint8_t *volatile row;
	int ret = -ENOMEM;

	row = malloc((size_t)w * 3);
	if (!row)
		return -ENOMEM;
	png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, png_fail, png_warn);
	if (!png)
		goto free_row;
	info = png_create_info_struct(png);
	if (!info)
		goto destroy;
	if (setjmp(png_jmpbuf(png))) {
		ret = o->err ? o->err : -EIO;
		goto destroy;
	}
	png_set_write_fn(png, o, out_write, out_flush);
	png_set_compression_level(png, PNG_ZLEVEL);
	png_set_filter(png, PNG_FILTER_TYPE_BASE, PNG_FILTER_SUB);
	png_set_IHDR(png, info, w, h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
		     PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
	png_write_info(png, info);
	for (uint32_t y = 0; y < h; y++) {
		const uint32_t *s = px + (size_t)y * w;
		uint8_t *d = row;

		for (uint32_t x = 0; x < w; x++) {
			*d++ = (uint8_t)(s[x] >> 16);
			*d++ = (uint8_t)(s[x] >> 8);
			*d++ = (uint8_t)s[x];
		}
		png_write_row(png, row);
	}
	png_write_end(png, info);
	ret = o->err;
destroy:
	png_destroy_write_struct(&png, info ? &info : NULL);
free_row:
	free(row);
	return ret;
}

int screenshot_png_mem(struct display *d, uint8_t **png, size_t *len, uint32_t *w, uint32_t *h)
{
	struct png_out o = { 0 };
	uint32_t *px;
	int ret;

	*png = NULL;
	*len = 0;
	ret = display_copy(d, &px, w, h, NULL);
	if (ret)
		return ret;
	if (!px)
		return -EAGAIN; /* no scanout yet: nothing to show */
	ret = encode(px, *w, *h, &o);
	free(px);
	if (ret) {
		free(o.p);
		return ret;
	}
	*png = o.p;
	*len = o.len;
	return 0;
}

static int write_all(int fd, const uint8_t *p, size_t len)
{
	while (len) {
		ssize_t r = write(fd, p, len);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += r;
		len -= (size_t)r;
	}
	return 0;
}

/* Create a new temporary file beside `path`: its name into tmp[n]; the fd or -errno. */
static int open_tmp(const char *path, char *tmp, size_t n)
{
	static unsigned counter;
	const char *slash = strrchr(path, '/');
	int dir_len = slash ? (int)(slash - path + 1) : 0;
	const char *base = slash ? slash + 1 : path;

	if (!*base)
		return -EISDIR; /* "dir/": no file name */
	for (int i = 0; i < TMP_TRIES; i++) {
		unsigned k = __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED);
		int fd;

		if ((size_t)snprintf(tmp, n, "%.*s.%s.%d.%u.tmp", dir_len, path, base,
				     (int)getpid(), k) >= n)
			return -ENAMETOOLONG;
		/* O_WRONLY | O_CREAT | O_EXCL: what the event loop's filter lets it open. */
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (fd >= 0)
			return fd;
		if (errno != EEXIST)
			return -errno;
	}
	return -EEXIST;
}

int screenshot_png(struct display *d, const char *path, uint32_t *w, uint32_t *h)
{
	char tmp[PATH_MAX];
	uint8_t *png;
	size_t len;
	int fd, ret;

	if (!path || !*path)
		return -EINVAL;
	ret = screenshot_png_mem(d, &png, &len, w, h);
	if (ret)
		return ret;
	fd = open_tmp(path, tmp, sizeof(tmp));
	if (fd < 0) {
		ret = fd;
		goto free_png;
	}
	ret = write_all(fd, png, len);
	if (!ret && fsync(fd) < 0)
		ret = -errno;
	if (close(fd) < 0 && !ret)
		ret = -errno;
	if (!ret && rename(tmp, path) < 0)
		ret = -errno;
	/* unlinkat, not unlink: the event loop's filter has the former only. */
	if (ret)
		unlinkat(AT_FDCWD, tmp, 0);
free_png:
	free(png);
	return ret;
}
