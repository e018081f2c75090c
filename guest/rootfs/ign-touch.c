/*
 * ign-touch: make the guest touch MIB MiB of its memory from user space, then give it back.
 *
 *   ign-touch MIB   -> "touched N MiB in N ms" on stdout, exit 0 (1 on a bad argument or a
 *                      failed mmap)
 *
 * The balloon guest test needs guest pages the host has backed before it inflates the balloon
 * (so that the VMM's RSS can be seen to fall).  One write per 4 KiB page of an anonymous
 * mapping costs one guest page fault each; `dd` into tmpfs instead copies every byte in the
 * guest kernel, which is emulated on kvm_pvm hosts and took ~10 s per MiB there.
 * Built static by guest/rootfs/build.sh.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

#define PAGE	4096u
#define MAX_MIB (1u << 20)

int main(int argc, char **argv)
{
	char *end = NULL;
	unsigned long mib = argc == 2 ? strtoul(argv[1], &end, 10) : 0;

	if (argc != 2 || !end || *end || mib == 0 || mib > MAX_MIB) {
		fprintf(stderr, "usage: ign-touch MIB (1..%u)\n", MAX_MIB);
		return 1;
	}
	size_t len = mib << 20;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	volatile char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		perror("ign-touch: mmap");
		return 1;
	}
	for (size_t off = 0; off < len; off += PAGE)
		p[off] = 1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	printf("touched %lu MiB in %ld ms\n", mib, ms);
	return munmap((void *)p, len) == 0 ? 0 : 1;
}
