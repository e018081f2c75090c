/* Whole reads and writes at an offset: loop over short transfers and EINTR. */
#ifndef IGNITION_UTIL_FILEIO_H
#define IGNITION_UTIL_FILEIO_H

#include <stddef.h>
#include <stdint.h>

/* Read exactly len bytes at off: 0, -errno, or -EIO if the file ends first. */
int pread_full(int fd, void *buf, size_t len, uint64_t off) __attribute__((warn_unused_result));
/* Write exactly len bytes at off: 0 or -errno (-EIO if the kernel writes nothing). */
int pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
	__attribute__((warn_unused_result));

#endif
