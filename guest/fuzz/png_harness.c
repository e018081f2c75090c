/* libpng demo target (docs/fuzzing.md): decode the input as a PNG into memory, the classic
 * shape of a libpng fuzz harness: png_read_info, the usual expanding transforms so that every
 * colour type and bit depth is converted (and its code runs), every row of every interlace
 * pass, then png_read_end.  Limits keep a hostile header from allocating gigabytes. */
#include "fuzz.h"

#include <png.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DIM	   4096u
#define MAX_PIXELS (4u << 20) /* 16 MiB of RGBA rows at most */

struct source {
	const uint8_t *data;
	size_t len, off;
};

static void read_fn(png_structp png, png_bytep out, size_t len)
{
	struct source *s = png_get_io_ptr(png);

	if (len > s->len - s->off)
		png_error(png, "read past the end of the input");
	memcpy(out, s->data + s->off, len);
	s->off += len;
}

/* Warnings are normal for fuzzed inputs: keep the console quiet. */
static void warn_fn(png_structp png, png_const_charp msg)
{
	(void)png;
	(void)msg;
}

static void error_fn(png_structp png, png_const_charp msg)
{
	(void)msg;
	png_longjmp(png, 1);
}

/* 0: decoded to the end; -1: rejected (libpng error or a limit). */
static int decode(const uint8_t *data, size_t len)
{
	struct source src = { .data = data, .len = len };
	png_structp png;
	png_infop info;
	png_bytep volatile row = NULL;
	png_uint_32 w, h;
	int passes;

	if (len < 8 || png_sig_cmp(data, 0, 8))
		return -1;
	png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, error_fn, warn_fn);
	if (!png)
		return -1;
	info = png_create_info_struct(png);
	if (!info) {
		png_destroy_read_struct(&png, NULL, NULL);
		return -1;
	}
	if (setjmp(png_jmpbuf(png))) {
		free(row);
		png_destroy_read_struct(&png, &info, NULL);
		return -1;
	}
	png_set_user_limits(png, MAX_DIM, MAX_DIM);
	png_set_chunk_malloc_max(png, 8u << 20);
	/* Mutated inputs rarely keep valid CRCs: check nothing, reach the decoders. */
	png_set_crc_action(png, PNG_CRC_QUIET_USE, PNG_CRC_QUIET_USE);
	png_set_read_fn(png, &src, read_fn);
	png_read_info(png, info);
	w = png_get_image_width(png, info);
	h = png_get_image_height(png, info);
	if ((uint64_t)w * h > MAX_PIXELS)
		png_error(png, "image too large for the harness");
	png_set_expand(png);
	png_set_strip_16(png);
	png_set_gray_to_rgb(png);
	png_set_filler(png, 0xff, PNG_FILLER_AFTER);
	passes = png_set_interlace_handling(png);
	png_read_update_info(png, info);
	row = malloc(png_get_rowbytes(png, info));
	if (!row)
		png_error(png, "out of memory");
	for (int p = 0; p < passes; p++)
		for (png_uint_32 y = 0; y < h; y++)
			png_read_row(png, row, NULL);
	png_read_end(png, info);
	free(row);
	png_destroy_read_struct(&png, &info, NULL);
	return 0;
}

/* Outside the VM (replay, seed check): run each file given once, natively. */
static int run_files(int argc, char **argv)
{
	static uint8_t data[1 << 20];

	for (int i = 1; i < argc; i++) {
		FILE *f = fopen(argv[i], "rb");
		size_t n;

		if (!f) {
			perror(argv[i]);
			return 1;
		}
		n = fread(data, 1, sizeof(data), f);
		fclose(f);
		printf("%s: %d\n", argv[i], decode(data, n));
	}
	return 0;
}

int main(int argc, char **argv)
{
	const uint8_t *buf;
	size_t len;

	if (argc > 1)
		return run_files(argc, argv);
	if (fuzz_init() < 0)
		return 1;
	fprintf(stderr, "libpng harness: fuzz device found, waiting for inputs\n");
	for (;;) {
		if (fuzz_next_input(&buf, &len) < 0)
			return 1;
		decode(buf, len);
		fuzz_done();
	}
}
