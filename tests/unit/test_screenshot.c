/* Screenshots (src/ui/screenshot.c): a pattern drawn into a display through display_blit, written
 * as PNG, decoded again with libpng and compared pixel by pixel; the in-memory variant; an
 * inactive display (-EAGAIN, no file); unwritable paths (an error, no temporary file left
 * behind); an existing file replaced whole; and the file path under the event loop's seccomp
 * filter, where the VMM takes screenshots. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/seccomp.h"
#include "ui/display.h"
#include "ui/ui.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* A pattern no encoder can get right by accident: every pixel differs from its neighbours in
 * each channel, and the three channels differ from each other. */
static uint32_t pattern(uint32_t x, uint32_t y)
{
	uint8_t r = (uint8_t)(x * 7 + y * 3), g = (uint8_t)(x ^ (y * 5)),
		b = (uint8_t)(x * 13 + y * 11 + 1);

	return (uint32_t)r << 16 | (uint32_t)g << 8 | b;
}

/* A display in mode w x h with the pattern drawn in, as the GPU draws: B8G8R8X8 rows. */
static struct display *drawn(uint32_t w, uint32_t h)
{
	struct display *d;
	uint8_t *src = malloc((size_t)w * h * 4);

	assert_non_null(src);
	assert_int_equal(display_create(w, h, &d), 0);
	assert_int_equal(display_set_mode(d, w, h, true), 0);
	for (uint32_t y = 0; y < h; y++)
		for (uint32_t x = 0; x < w; x++) {
			uint8_t *p = src + ((size_t)y * w + x) * 4;
			uint32_t v = pattern(x, y);

			p[0] = (uint8_t)v;
			p[1] = (uint8_t)(v >> 8);
			p[2] = (uint8_t)(v >> 16);
			p[3] = 0xee; /* X: ignored */
		}
	assert_int_equal(display_blit(d, 0, 0, w, h, src, (size_t)w * 4, DISPLAY_FMT_BGRX), 0);
	free(src);
	return d;
}

/* Decode a PNG in memory with libpng's simplified API: *rgb malloc'd, 3 bytes a pixel. */
static void decode(const uint8_t *png, size_t len, uint8_t **rgb, uint32_t *w, uint32_t *h)
{
	png_image img;

	memset(&img, 0, sizeof(img));
	img.version = PNG_IMAGE_VERSION;
	if (!png_image_begin_read_from_memory(&img, png, len))
		fail_msg("not a PNG libpng reads: %s", img.message);
	/* What the file says, before any conversion: 8-bit RGB, no alpha, no palette. */
	assert_int_equal(img.format, PNG_FORMAT_RGB);
	img.format = PNG_FORMAT_RGB;
	*rgb = malloc(PNG_IMAGE_SIZE(img));
	assert_non_null(*rgb);
	if (!png_image_finish_read(&img, NULL, *rgb, 0, NULL))
		fail_msg("PNG decoding failed: %s", img.message);
	*w = img.width;
	*h = img.height;
}

static uint8_t *read_file(const char *path, size_t *len)
{
	struct stat st;
	uint8_t *buf;
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	buf = malloc((size_t)st.st_size + 1);
	assert_non_null(buf);
	assert_int_equal(read(fd, buf, (size_t)st.st_size), st.st_size);
	close(fd);
	*len = (size_t)st.st_size;
	return buf;
}

static void assert_pattern(const uint8_t *rgb, uint32_t w, uint32_t h)
{
	for (uint32_t y = 0; y < h; y++)
		for (uint32_t x = 0; x < w; x++) {
			const uint8_t *p = rgb + ((size_t)y * w + x) * 3;
			uint32_t got = (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];

			if (got != pattern(x, y))
				fail_msg("pixel (%u,%u) is %06x, drawn %06x", x, y, got,
					 pattern(x, y));
		}
}

/* Entries in dir other than . and .. */
static int entries(const char *dir)
{
	DIR *dp = opendir(dir);
	struct dirent *e;
	int n = 0;

	assert_non_null(dp);
	while ((e = readdir(dp)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(dp);
	return n;
}

static void make_dir(char *dir, size_t n)
{
	snprintf(dir, n, "/tmp/ign-shot-XXXXXX");
	assert_non_null(mkdtemp(dir));
}

static void test_png_file_round_trip(void **state)
{
	/* Odd sizes: no row happens to be a multiple of anything. */
	struct display *d = drawn(203, 67);
	char dir[64], path[128];
	uint32_t w = 0, h = 0, dw, dh;
	uint8_t *png, *rgb;
	size_t len;

	make_dir(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/shot.png", dir);
	assert_int_equal(ui_screenshot_png(d, path, &w, &h), 0);
	assert_int_equal(w, 203);
	assert_int_equal(h, 67);
	png = read_file(path, &len);
	assert_memory_equal(png, "\x89PNG\r\n\x1a\n", 8);
	decode(png, len, &rgb, &dw, &dh);
	assert_int_equal(dw, 203);
	assert_int_equal(dh, 67);
	assert_pattern(rgb, dw, dh);
	/* The file and nothing else: the temporary name is gone. */
	assert_int_equal(entries(dir), 1);
	free(rgb);
	free(png);

	/* A second screenshot replaces the file whole (a smaller picture: no old tail). */
	assert_int_equal(display_set_mode(d, 64, 64, true), 0);
	assert_int_equal(ui_screenshot_png(d, path, &w, &h), 0);
	assert_int_equal(w, 64);
	assert_int_equal(h, 64);
	png = read_file(path, &len);
	decode(png, len, &rgb, &dw, &dh);
	assert_int_equal(dw, 64);
	assert_int_equal(dh, 64);
	for (size_t i = 0; i < (size_t)64 * 64 * 3; i++)
		assert_int_equal(rgb[i], 0); /* a new mode is black */
	assert_int_equal(entries(dir), 1);
	free(rgb);
	free(png);

	/* A relative path works too (in the current directory). */
	{
		char cwd[512];

		assert_non_null(getcwd(cwd, sizeof(cwd)));
		assert_int_equal(chdir(dir), 0);
		assert_int_equal(ui_screenshot_png(d, "rel.png", &w, &h), 0);
		assert_int_equal(chdir(cwd), 0);
	}
	assert_int_equal(entries(dir), 2);
	snprintf(path, sizeof(path), "%s/rel.png", dir);
	assert_int_equal(unlink(path), 0);
	snprintf(path, sizeof(path), "%s/shot.png", dir);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(rmdir(dir), 0);
	display_destroy(d);
}

static void test_png_mem(void **state)
{
	struct display *d = drawn(640, 480);
	uint32_t w, h, dw, dh;
	uint8_t *png, *rgb;
	size_t len;

	assert_int_equal(ui_screenshot_png_mem(d, &png, &len, &w, &h), 0);
	assert_int_equal(w, 640);
	assert_int_equal(h, 480);
	assert_true(len > 8);
	decode(png, len, &rgb, &dw, &dh);
	assert_int_equal(dw, 640);
	assert_int_equal(dh, 480);
	assert_pattern(rgb, dw, dh);
	free(rgb);
	free(png);
	display_destroy(d);
}

/* The largest mode the display takes: 3840 x 2160 of the pattern, round trip. */
static void test_png_largest_mode(void **state)
{
	struct display *d = drawn(DISPLAY_MAX_W, DISPLAY_MAX_H);
	uint32_t w, h, dw, dh;
	uint8_t *png, *rgb;
	size_t len;

	assert_int_equal(ui_screenshot_png_mem(d, &png, &len, &w, &h), 0);
	assert_int_equal(w, DISPLAY_MAX_W);
	assert_int_equal(h, DISPLAY_MAX_H);
	decode(png, len, &rgb, &dw, &dh);
	assert_pattern(rgb, dw, dh);
	free(rgb);
	free(png);
	display_destroy(d);
}

static void test_inactive(void **state)
{
	struct display *d;
	char dir[64], path[128];
	uint32_t w = 1, h = 1;
	uint8_t *png = (uint8_t *)1;
	size_t len = 1;

	make_dir(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/shot.png", dir);
	/* Never set: no scanout yet. */
	assert_int_equal(display_create(800, 600, &d), 0);
	assert_int_equal(ui_screenshot_png(d, path, &w, &h), -EAGAIN);
	assert_int_equal(ui_screenshot_png_mem(d, &png, &len, &w, &h), -EAGAIN);
	assert_null(png);
	assert_int_equal(len, 0);
	/* Set, then gone (the guest disabled its scanout). */
	assert_int_equal(display_set_mode(d, 800, 600, true), 0);
	assert_int_equal(display_set_mode(d, 0, 0, false), 0);
	assert_int_equal(ui_screenshot_png(d, path, &w, &h), -EAGAIN);
	assert_int_equal(entries(dir), 0);
	assert_int_equal(rmdir(dir), 0);
	display_destroy(d);
}

static void test_unwritable(void **state)
{
	struct display *d = drawn(64, 64);
	char dir[64], path[160];
	uint32_t w, h;

	make_dir(dir, sizeof(dir));
	/* No such directory. */
	snprintf(path, sizeof(path), "%s/missing/shot.png", dir);
	assert_int_equal(ui_screenshot_png(d, path, &w, &h), -ENOENT);
	/* A directory as the target: the rename fails, the temporary file is removed. */
	snprintf(path, sizeof(path), "%s/sub", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	assert_int_equal(ui_screenshot_png(d, path, &w, &h), -EISDIR);
	assert_int_equal(entries(dir), 1);
	assert_int_equal(entries(path), 0);
	/* No file name at all. */
	snprintf(path, sizeof(path), "%s/sub/", dir);
	assert_int_equal(ui_screenshot_png(d, path, &w, &h), -EISDIR);
	assert_int_equal(ui_screenshot_png(d, "", &w, &h), -EINVAL);
	/* A directory we may not write into (root may: then only the success is checked). */
	snprintf(path, sizeof(path), "%s/sub", dir);
	assert_int_equal(chmod(path, 0500), 0);
	snprintf(path, sizeof(path), "%s/sub/shot.png", dir);
	if (geteuid() != 0) {
		assert_int_equal(ui_screenshot_png(d, path, &w, &h), -EACCES);
	} else {
		assert_int_equal(ui_screenshot_png(d, path, &w, &h), 0);
		assert_int_equal(unlink(path), 0);
	}
	snprintf(path, sizeof(path), "%s/sub", dir);
	assert_int_equal(entries(path), 0);
	assert_int_equal(rmdir(path), 0);
	/* A path longer than PATH_MAX allows for the temporary name. */
	{
		char *longp = malloc(5000);

		assert_non_null(longp);
		memset(longp, 'a', 4999);
		longp[0] = '/';
		longp[4999] = '\0';
		assert_int_equal(ui_screenshot_png(d, longp, &w, &h), -ENAMETOOLONG);
		free(longp);
	}
	assert_int_equal(entries(dir), 0);
	assert_int_equal(rmdir(dir), 0);
	display_destroy(d);
}

/* The control socket's screenshot runs on the event loop: under its filter (built without
 * --net user), a new file and a replaced one are written.  A refused call ends the child with
 * SECCOMP_EXIT_STATUS. */
static void test_seccomp_evloop(void **state)
{
	struct seccomp_config cfg = { .slirp = false };
	char dir[64], path[128];
	int status;
	pid_t pid;

	make_dir(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/shot.png", dir);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct display *d = drawn(320, 200);
		uint32_t w, h;

		if (seccomp_filters_build(&cfg))
			_exit(20);
		if (seccomp_thread_install(SECCOMP_THREAD_EVLOOP, "evloop"))
			_exit(21);
		if (ui_screenshot_png(d, path, &w, &h) || w != 320 || h != 200)
			_exit(22);
		if (ui_screenshot_png(d, path, &w, &h))
			_exit(23);
		/* A failure's clean-up (unlinkat of the temporary file) is allowed too. */
		if (ui_screenshot_png(d, dir, &w, &h) != -EISDIR)
			_exit(24);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("child status %#x (exit %d; %d is a seccomp refusal)", status,
			 WIFEXITED(status) ? WEXITSTATUS(status) : -1, SECCOMP_EXIT_STATUS);
	assert_int_equal(entries(dir), 1);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_png_file_round_trip), cmocka_unit_test(test_png_mem),
		cmocka_unit_test(test_png_largest_mode),    cmocka_unit_test(test_inactive),
		cmocka_unit_test(test_unwritable),	    cmocka_unit_test(test_seccomp_evloop),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
