/* Whole reads and writes at an offset, unnamed files (fileio.h). */
#include "util/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

int pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = pread(fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO; /* the file ends early */
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

int pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

int open_unnamed(int dirfd, const char *dir, uint64_t size)
{
	static unsigned counter;
	int fd, dfd, ret = -EEXIST;

	if (size > (uint64_t)INT64_MAX)
		return -EFBIG;
	fd = openat(dirfd, dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd >= 0) {
		if (ftruncate(fd, (off_t)size) == 0)
			return fd;
		ret = -errno;
		close(fd);
		return ret;
	}
	if (errno != EOPNOTSUPP && errno != EISDIR)
		return -errno;
	dfd = openat(dirfd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	/* A name nobody else picks (the process, a counter, the time), created exclusively. */
	for (int i = 0; i < 100 && ret == -EEXIST; i++) {
		struct timespec ts;
		char name[80];

		clock_gettime(CLOCK_MONOTONIC, &ts);
		snprintf(name, sizeof(name), ".ignition-unnamed-%d-%u-%ld.tmp", (int)getpid(),
			 __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED), (long)ts.tv_nsec);
		fd = openat(dfd, name, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd < 0) {
			ret = -errno;
			continue;
		}
		ret = ftruncate(fd, (off_t)size) < 0 ? -errno : fd;
		if (unlinkat(dfd, name, 0) < 0 && ret >= 0)
			ret = -errno;
		if (ret < 0)
			close(fd);
	}
	close(dfd);
	return ret;
}
