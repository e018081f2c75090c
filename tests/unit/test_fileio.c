/* util/fileio.c: whole reads and writes at an offset, and unnamed files (open_unnamed: a file
 * no directory lists, read-write, gone with its last fd).  The fallback for file systems
 * without O_TMPFILE (a random name, unlinked at once) runs where the guest tests run on 9p
 * (tests/nested); here the file system has O_TMPFILE, and both paths must leave no name. */
#include "util/fileio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

static char dir[PATH_MAX];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/ign-test-fileio-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	return rmdir(dir);
}

static int entries(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
	closedir(d);
	return n;
}

static void test_unnamed_file(void **state)
{
	uint8_t in[4096], out[4096];
	int fd, dfd;

	(void)state;
	memset(in, 0xa5, sizeof(in));
	fd = open_unnamed(AT_FDCWD, dir, 1 << 20);
	assert_true(fd >= 0);
	assert_int_equal(entries(dir), 0); /* no name in the directory */
	/* Of the size asked for, reading as zeros. */
	assert_int_equal(pread_full(fd, out, sizeof(out), (1 << 20) - sizeof(out)), 0);
	for (size_t i = 0; i < sizeof(out); i++)
		assert_int_equal(out[i], 0);
	assert_int_equal(pread_full(fd, out, 1, 1 << 20), -EIO);
	assert_int_equal(pwrite_full(fd, in, sizeof(in), 1 << 20), 0);
	assert_int_equal(pread_full(fd, out, sizeof(out), 1 << 20), 0);
	assert_memory_equal(in, out, sizeof(in));
	/* Past the end: -EIO, not a short read. */
	assert_int_equal(pread_full(fd, out, sizeof(out), (1 << 20) + 1), -EIO);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	close(fd);

	/* Relative to a directory fd, as a snapshot's private disk is made. */
	dfd = open(dir, O_RDONLY | O_DIRECTORY);
	assert_true(dfd >= 0);
	fd = open_unnamed(dfd, ".", 0);
	assert_true(fd >= 0);
	assert_int_equal(entries(dir), 0);
	close(fd);
	close(dfd);
}

static void test_unnamed_refused(void **state)
{
	char file[PATH_MAX + 16];
	int fd;

	(void)state;
	assert_int_equal(open_unnamed(AT_FDCWD, "/nonexistent-ignition-dir", 0), -ENOENT);
	/* A regular file is no directory. */
	snprintf(file, sizeof(file), "%s/f", dir);
	fd = open(file, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_true(open_unnamed(AT_FDCWD, file, 0) < 0);
	unlink(file);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unnamed_file),
		cmocka_unit_test(test_unnamed_refused),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
