/* A page-fault handler for ignition's (and Firecracker's) Uffd snapshot-load backend, used by
 * the API test (tests/api/curl_test.py) and as an example of the protocol (docs/api.md,
 * "Page-fault handlers").
 *
 *   build/uffd_handler SOCKET MEMORY_FILE
 *
 * Listens on SOCKET, accepts one VMM, reads its handshake (a JSON array of regions:
 * base_host_virt_addr, size, offset, page_size; the userfaultfd in SCM_RIGHTS) and serves
 * every missing-page fault with UFFDIO_COPY of the page from MEMORY_FILE (mapped read-only).
 * Pages the VMM gave back (UFFD_EVENT_REMOVE: the balloon) are zero-filled when they fault
 * again, not read from the file.  Ends, printing what it served, when the VMM closes the
 * connection; prints "uffd_handler: ready" on stderr once it listens. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_REGIONS 8
#define MAX_DEFER   1024

struct region {
	uint64_t base, size, offset;
};

static struct region regions[MAX_REGIONS];
static int nr_regions;
static uint64_t page_size, file_size;
static const uint8_t *file;
static uint8_t *zeros;	  /* one page of zeros (hugetlb has no UFFDIO_ZEROPAGE) */
static uint64_t *removed; /* a bit per page of the file's layout: zero-fill it */
static int uffd;
static unsigned long served, zeroed, removes;

static void die(const char *what)
{
	fprintf(stderr, "uffd_handler: %s: %s\n", what, strerror(errno));
	exit(1);
}

static int parse(const char *msg)
{
	json_error_t je;
	json_t *a = json_loads(msg, 0, &je), *e;
	size_t i;

	if (!json_is_array(a) || json_array_size(a) == 0 || json_array_size(a) > MAX_REGIONS) {
		fprintf(stderr, "uffd_handler: bad handshake '%s'\n", msg);
		return -1;
	}
	json_array_foreach(a, i, e)
	{
		json_int_t base, size, off, ps;

		if (json_unpack(e, "{s:I,s:I,s:I,s:I}", "base_host_virt_addr", &base, "size", &size,
				"offset", &off, "page_size", &ps) ||
		    size <= 0 || off < 0 || ps < 4096 || (ps & (ps - 1)) ||
		    (uint64_t)off + (uint64_t)size > file_size) {
			fprintf(stderr, "uffd_handler: bad region %zu in '%s'\n", i, msg);
			json_decref(a);
			return -1;
		}
		regions[i] = (struct region){ (uint64_t)base, (uint64_t)size, (uint64_t)off };
		page_size = (uint64_t)ps;
	}
	nr_regions = (int)json_array_size(a);
	json_decref(a);
	return 0;
}

/* The file offset of host address `addr`, or false if it is in no region. */
static bool file_offset(uint64_t addr, uint64_t *off)
{
	for (int i = 0; i < nr_regions; i++)
		if (addr >= regions[i].base && addr - regions[i].base < regions[i].size) {
			*off = regions[i].offset + (addr - regions[i].base);
			return true;
		}
	return false;
}

static bool is_removed(uint64_t off)
{
	uint64_t p = off / 4096;

	return removed[p / 64] >> (p % 64) & 1;
}

/* Fill the page holding `addr`: 0 done, -EAGAIN retry later (a remove is pending). */
static int serve(uint64_t addr)
{
	uint64_t page = addr & ~(page_size - 1), off;
	struct uffdio_copy c = { .dst = page, .len = page_size };

	if (!file_offset(page, &off)) {
		fprintf(stderr, "uffd_handler: fault at %#llx outside every region\n",
			(unsigned long long)addr);
		exit(1);
	}
	c.src = (uintptr_t)(is_removed(off) ? zeros : file + off);
	if (ioctl(uffd, UFFDIO_COPY, &c) < 0) {
		if (errno == EEXIST)
			return 0; /* another thread's fault filled it */
		if (errno == EAGAIN)
			return -EAGAIN;
		die("UFFDIO_COPY");
	}
	if (c.src == (uintptr_t)zeros)
		zeroed++;
	else
		served++;
	return 0;
}

static void on_remove(uint64_t start, uint64_t end)
{
	uint64_t off;

	removes++;
	for (uint64_t a = start; a < end; a += 4096)
		if (file_offset(a, &off))
			removed[off / 4096 / 64] |= 1ull << (off / 4096 % 64);
}

int main(int argc, char **argv)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl;
	char msg[4096];
	struct iovec iov = { .iov_base = msg, .iov_len = sizeof(msg) - 1 };
	struct msghdr mh = { .msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = ctl.buf,
			     .msg_controllen = sizeof(ctl.buf) };
	uint64_t defer[MAX_DEFER];
	int nr_defer = 0, lfd, conn, fd;
	struct stat st;
	ssize_t got;

	if (argc != 3 || strlen(argv[1]) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "usage: uffd_handler SOCKET MEMORY_FILE\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	fd = open(argv[2], O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0)
		die(argv[2]);
	file_size = (uint64_t)st.st_size;
	file = mmap(NULL, file_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (file == MAP_FAILED)
		die("mmap");
	removed = calloc(file_size / 4096 / 64 + 1, 8);
	zeros = aligned_alloc(2u << 20, 2u << 20);
	if (!removed || !zeros)
		die("calloc");
	memset(zeros, 0, 2u << 20);
	memcpy(sa.sun_path, argv[1], strlen(argv[1]));
	unlink(argv[1]);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 1) < 0)
		die(argv[1]);
	fprintf(stderr, "uffd_handler: ready\n");
	conn = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (conn < 0)
		die("accept");
	close(lfd);
	unlink(argv[1]);
	memset(&ctl, 0, sizeof(ctl));
	got = recvmsg(conn, &mh, MSG_CMSG_CLOEXEC);
	if (got <= 0 || !CMSG_FIRSTHDR(&mh) || CMSG_FIRSTHDR(&mh)->cmsg_type != SCM_RIGHTS) {
		fprintf(stderr, "uffd_handler: no handshake with a userfaultfd\n");
		return 1;
	}
	msg[got] = '\0';
	memcpy(&uffd, CMSG_DATA(CMSG_FIRSTHDR(&mh)), sizeof(int));
	if (parse(msg))
		return 1;
	fprintf(stderr, "uffd_handler: %d region(s), page size %llu\n", nr_regions,
		(unsigned long long)page_size);
	for (;;) {
		struct pollfd p[2] = { { .fd = uffd, .events = POLLIN },
				       { .fd = conn, .events = POLLIN | POLLRDHUP } };
		struct uffd_msg m;

		if (poll(p, 2, nr_defer ? 1 : -1) < 0) {
			if (errno == EINTR)
				continue;
			die("poll");
		}
		if (p[1].revents)
			break; /* the VMM is gone */
		while (read(uffd, &m, sizeof(m)) == (ssize_t)sizeof(m)) {
			if (m.event == UFFD_EVENT_PAGEFAULT) {
				if (serve(m.arg.pagefault.address) == -EAGAIN &&
				    nr_defer < MAX_DEFER)
					defer[nr_defer++] = m.arg.pagefault.address;
			} else if (m.event == UFFD_EVENT_REMOVE) {
				on_remove(m.arg.remove.start, m.arg.remove.end);
			}
		}
		/* Faults refused while a remove was pending: their threads still wait. */
		for (int i = 0, n = nr_defer; i < n; i++) {
			uint64_t a = defer[0];

			memmove(defer, defer + 1, (size_t)--nr_defer * sizeof(defer[0]));
			if (serve(a) == -EAGAIN)
				defer[nr_defer++] = a;
		}
	}
	fprintf(stderr,
		"uffd_handler: done: %lu pages served from the file, %lu zero-filled, %lu "
		"removes\n",
		served, zeroed, removes);
	return 0;
}
