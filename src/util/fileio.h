/* Whole reads and writes at an offset: loop over short transfers and EINTR; unnamed files. */
#ifndef IGNITION_UTIL_FILEIO_H
#define IGNITION_UTIL_FILEIO_H

#include <stddef.h>
#include <stdint.h>

/* Read exactly len bytes at off: 0, -errno, or -EIO if the file ends first. */
int pread_full(int fd, void *buf, size_t len, uint64_t off) __attribute__((warn_unused_result));
/* Write exactly len bytes at off: 0 or -errno (-EIO if the kernel writes nothing). */
int pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
	__attribute__((warn_unused_result));

/* A new unnamed file of `size` bytes (sparse: it reads as zeros; mode 0600, read-write,
 * close-on-exec) in the directory `dir` relative to `dirfd` (AT_FDCWD or a directory fd):
 * O_TMPFILE, or where the file system has none (9p, some FUSE and network file systems:
 * EOPNOTSUPP; EISDIR before Linux 3.11) a file made under a fresh name there, sized, and
 * unlinked at once (sized first: 9p cannot truncate a file once it has no name).  An fd or
 * -errno. */
int open_unnamed(int dirfd, const char *dir, uint64_t size) __attribute__((warn_unused_result));

#endif
