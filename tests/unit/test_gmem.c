/* Guest memory mapped from a snapshot's memory file: private (writes never reach the file) and
 * a discarded range reads as zeros, not as the file's bytes (the balloon after a restore). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/gmem.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SIZE (16u << 20)

static void test_file_backed(void **state)
{
	char path[] = "/tmp/ign-gmem-XXXXXX";
	int fd = mkstemp(path);
	uint8_t buf[4096], *p;
	struct gmem gm;

	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(ftruncate(fd, SIZE), 0);
	memset(buf, 0xab, sizeof(buf));
	for (off_t off = 0; off < 4 * 4096; off += 4096)
		assert_int_equal(pwrite(fd, buf, sizeof(buf), off), (ssize_t)sizeof(buf));
	assert_int_equal(gmem_map_file(&gm, SIZE, fd), 0);
	assert_true(gm.file_backed);
	p = gmem_ptr(&gm, 0, 4 * 4096);
	assert_non_null(p);
	assert_int_equal(p[0], 0xab);
	assert_int_equal(p[3 * 4096 + 100], 0xab);
	assert_int_equal(p[5 * 4096], 0); /* a hole in the file */
	/* Writes stay private. */
	p[0] = 1;
	assert_int_equal(pread(fd, buf, 1, 0), 1);
	assert_int_equal(buf[0], 0xab);
	/* A discarded page reads as zeros, its neighbours keep their bytes. */
	assert_int_equal(gmem_discard(&gm, 4096, 2 * 4096), 0);
	assert_int_equal(p[0], 1);
	for (unsigned i = 4096; i < 3 * 4096; i++)
		assert_int_equal(p[i], 0);
	assert_int_equal(p[3 * 4096], 0xab);
	/* ... and can be written again. */
	p[4096] = 7;
	assert_int_equal(p[4096], 7);
	assert_int_equal(gmem_discard(&gm, SIZE - 4096, 2 * 4096), -EFAULT);
	gmem_free(&gm);
	close(fd);
	/* A bad fd is refused. */
	assert_int_equal(gmem_map_file(&gm, SIZE, -1), -EBADF);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_file_backed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
