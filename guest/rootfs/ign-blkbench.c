/*
 * ign-blkbench: the guest side of bench/blk.sh.  Block I/O at queue depth 1 with O_DIRECT
 * (no guest page cache), timed with CLOCK_MONOTONIC, one result line on stdout:
 *
 *   ign-blkbench seqwrite  DEV MIB        MIB 1-MiB writes from offset 0, then fdatasync
 *   ign-blkbench seqread   DEV MIB        MIB 1-MiB reads from offset 0
 *   ign-blkbench randwrite DEV OPS SPAN   OPS 4-KiB writes at random 4-KiB-aligned offsets
 *                                          in the first SPAN MiB, then fdatasync
 *   ign-blkbench randread  DEV OPS SPAN   OPS 4-KiB reads, likewise
 *
 *   -> "ops=N bytes=N ns=N"  (ns includes the final fdatasync of the write tests)
 *
 * Debian's fio would do this but links some 80 MB of libraries (ceph, gluster, ICU), more than
 * the whole root file system; busybox dd can do the sequential part but a process per random
 * 4-KiB request would time fork+exec, not the disk.  Built static by guest/rootfs/build.sh.
 * The random offsets come from a fixed-seed xorshift, so every VMM sees the same sequence.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SEQ_BLOCK  (1u << 20)
#define RAND_BLOCK 4096u
#define MAX_MIB	   (1u << 20)
#define MAX_OPS	   100000000u

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t xorshift64(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*s = x;
	return x;
}

/* Whole-block transfer at `off`; a short one is an error (a block device does not do them). */
static int xfer(int fd, int write, void *buf, size_t len, off_t off)
{
	ssize_t r = write ? pwrite(fd, buf, len, off) : pread(fd, buf, len, off);

	if (r < 0)
		return -errno;
	return (size_t)r == len ? 0 : -EIO;
}

static int parse(const char *s, unsigned long max, unsigned long *out)
{
	char *end;

	errno = 0;
	*out = strtoul(s, &end, 10);
	return errno || end == s || *end || *out == 0 || *out > max ? -EINVAL : 0;
}

static int usage(void)
{
	fprintf(stderr, "usage: ign-blkbench seqwrite|seqread DEV MIB\n"
			"       ign-blkbench randwrite|randread DEV OPS SPAN_MIB\n");
	return 2;
}

int main(int argc, char **argv)
{
	unsigned long n, span = 0;
	uint64_t seed = 0x9e3779b97f4a7c15u, t0, t1;
	int seq, write, fd, err = 0;
	unsigned long i;
	size_t bs;
	void *buf;

	if (argc < 4)
		return usage();
	seq = !strncmp(argv[1], "seq", 3);
	if (!seq && strncmp(argv[1], "rand", 4))
		return usage();
	write = !strcmp(argv[1] + (seq ? 3 : 4), "write");
	if (!write && strcmp(argv[1] + (seq ? 3 : 4), "read"))
		return usage();
	if (seq ? argc != 4 || parse(argv[3], MAX_MIB, &n)
		: argc != 5 || parse(argv[3], MAX_OPS, &n) || parse(argv[4], MAX_MIB, &span))
		return usage();
	bs = seq ? SEQ_BLOCK : RAND_BLOCK;
	/* O_DIRECT wants buffers aligned to the logical block size; a page covers any. */
	if (posix_memalign(&buf, 4096, bs)) {
		fprintf(stderr, "ign-blkbench: out of memory\n");
		return 1;
	}
	memset(buf, 0x5a, bs);
	fd = open(argv[2], (write ? O_WRONLY : O_RDONLY) | O_DIRECT);
	if (fd < 0) {
		fprintf(stderr, "ign-blkbench: %s: %s\n", argv[2], strerror(errno));
		return 1;
	}
	t0 = now_ns();
	for (i = 0; i < n; i++) {
		off_t off;

		if (seq)
			off = (off_t)i * SEQ_BLOCK;
		else
			off = (off_t)(xorshift64(&seed) % (span * (SEQ_BLOCK / RAND_BLOCK))) *
			      RAND_BLOCK;
		err = xfer(fd, write, buf, bs, off);
		if (err)
			break;
	}
	if (!err && write && fdatasync(fd) < 0)
		err = -errno;
	t1 = now_ns();
	close(fd);
	free(buf);
	if (err) {
		fprintf(stderr, "ign-blkbench: %s %s: request %lu: %s\n", argv[1], argv[2], i,
			strerror(-err));
		return 1;
	}
	printf("ops=%lu bytes=%llu ns=%llu\n", n, (unsigned long long)n * bs,
	       (unsigned long long)(t1 - t0));
	return 0;
}
