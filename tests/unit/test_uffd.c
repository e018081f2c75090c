/* The Uffd memory backend (src/core/uffd.c) and gmem's userfaultfd and hugetlb flags: the
 * handshake a page-fault handler receives (Firecracker's field names, one object per RAM
 * region, the userfaultfd as SCM_RIGHTS), faults served through it, the errors for a missing
 * socket or one nobody listens on, and the huge-page size rule.  A host where userfaultfd is
 * not allowed (vm.unprivileged_userfaultfd=0 without CAP_SYS_PTRACE) skips the fault tests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/gmem.h"
#include "core/uffd.h"

#include <errno.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define SIZE (8u << 20)

static bool uffd_allowed(struct gmem *gm)
{
	int ret = gmem_alloc_flags(gm, SIZE, GMEM_UFFD);

	if (ret == -EPERM || ret == -ENOSYS || ret == -EACCES) {
		fprintf(stderr, "# SKIP: userfaultfd not allowed here (%s)\n", strerror(-ret));
		return false;
	}
	assert_int_equal(ret, 0);
	return true;
}

static void test_json(void **state)
{
	struct gmem gm;
	char buf[512], want[512];
	int len;

	(void)state;
	assert_int_equal(gmem_alloc(&gm, SIZE), 0);
	len = uffd_mappings_json(&gm, buf, sizeof(buf));
	snprintf(want, sizeof(want),
		 "[{\"base_host_virt_addr\":%llu,\"size\":%u,\"offset\":0,\"page_size\":4096,"
		 "\"page_size_kib\":4096}]",
		 (unsigned long long)(uintptr_t)gm.regions[0].hva, SIZE);
	assert_string_equal(buf, want);
	assert_int_equal(len, (int)strlen(want));
	assert_int_equal(uffd_mappings_json(&gm, buf, 40), -ENOSPC);
	/* Two regions (RAM above the 3 GiB hole): offsets follow the memory file's layout. */
	gm.nr_regions = 2;
	gm.regions[1] =
		(struct gmem_region){ .gpa = 1ull << 32, .size = 4096, .hva = (void *)8192 };
	gm.hugetlb = true;
	len = uffd_mappings_json(&gm, buf, sizeof(buf));
	assert_true(len > 0);
	snprintf(want, sizeof(want),
		 ",{\"base_host_virt_addr\":8192,\"size\":4096,\"offset\":%u,\"page_size\":2097152,"
		 "\"page_size_kib\":2097152}]",
		 SIZE);
	assert_non_null(strstr(buf, want));
	gm.nr_regions = 1;
	gm.hugetlb = false;
	gmem_free(&gm);
}

static void test_huge_size(void **state)
{
	struct gmem gm;

	(void)state;
	/* Not a multiple of 2 MiB: refused before any mmap. */
	assert_int_equal(gmem_alloc_flags(&gm, (2u << 20) + 4096, GMEM_HUGETLB), -EINVAL);
	assert_false(gm.uffd_open);
	assert_true(gmem_huge_pages_free() >= 0);
}

/* A minimal handler: accepts one connection, takes the handshake and the userfaultfd, serves
 * every fault with a page of `fill`, and stops once the connection ends. */
struct handler {
	int listen_fd;
	char msg[512];
	int uffd;
	uint8_t fill;
	int served;
};

static void *handler_main(void *arg)
{
	struct handler *h = arg;
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { .iov_base = h->msg, .iov_len = sizeof(h->msg) - 1 };
	struct msghdr msg = { .msg_iov = &iov,
			      .msg_iovlen = 1,
			      .msg_control = ctl.buf,
			      .msg_controllen = sizeof(ctl.buf) };
	static uint8_t page[4096] __attribute__((aligned(4096)));
	int c = accept(h->listen_fd, NULL, NULL);
	ssize_t got;

	h->uffd = -1;
	if (c < 0)
		return NULL;
	got = recvmsg(c, &msg, 0);
	if (got > 0 && CMSG_FIRSTHDR(&msg))
		memcpy(&h->uffd, CMSG_DATA(CMSG_FIRSTHDR(&msg)), sizeof(int));
	memset(page, h->fill, sizeof(page));
	for (;;) {
		struct pollfd p[2] = { { .fd = h->uffd, .events = POLLIN },
				       { .fd = c, .events = POLLIN } };
		struct uffd_msg m;

		if (poll(p, 2, 5000) <= 0 || p[1].revents)
			break;
		if (read(h->uffd, &m, sizeof(m)) != sizeof(m) || m.event != UFFD_EVENT_PAGEFAULT)
			continue;
		struct uffdio_copy cp = { .dst = m.arg.pagefault.address & ~4095ull,
					  .src = (uintptr_t)page,
					  .len = 4096 };
		if (!ioctl(h->uffd, UFFDIO_COPY, &cp))
			h->served++;
	}
	close(h->uffd);
	close(c);
	return NULL;
}

static void test_handshake_and_faults(void **state)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct uffd_backend *b;
	struct handler h = { .fill = 0x5a };
	struct gmem gm;
	pthread_t t;
	char err[256], path[64], want[128];
	uint8_t *p;

	(void)state;
	if (!uffd_allowed(&gm))
		return;
	snprintf(path, sizeof(path), "/tmp/ign-uffd-%d.sock", (int)getpid());
	unlink(path);
	/* No socket there, then a socket nobody listens on: one clear line each. */
	assert_int_equal(uffd_backend_connect(&gm, path, &b, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "no page-fault handler socket"));
	h.listen_fd = socket(AF_UNIX, SOCK_STREAM, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	assert_int_equal(bind(h.listen_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(uffd_backend_connect(&gm, path, &b, err, sizeof(err)), -ECONNREFUSED);
	assert_non_null(strstr(err, "nothing listens"));
	assert_int_equal(listen(h.listen_fd, 1), 0);
	assert_int_equal(pthread_create(&t, NULL, handler_main, &h), 0);
	assert_int_equal(uffd_backend_connect(&gm, path, &b, err, sizeof(err)), 0);
	/* The VMM's own first touch waits for the handler, which fills the page. */
	p = gmem_ptr(&gm, 0x3000, 4096);
	assert_int_equal(p[17], 0x5a);
	assert_int_equal(p[4095], 0x5a);
	p[0] = 1; /* a served page is plain memory afterwards */
	assert_int_equal(p[0], 1);
	assert_int_equal(p[8192], 0x5a); /* another page, another fault */
	snprintf(want, sizeof(want), "{\"base_host_virt_addr\":%llu,",
		 (unsigned long long)(uintptr_t)gm.regions[0].hva);
	assert_non_null(strstr(h.msg, want));
	uffd_backend_destroy(b); /* ends the connection: the handler stops */
	pthread_join(t, NULL);
	assert_int_equal(h.served, 2);
	assert_true(h.uffd >= 0);
	gmem_free(&gm);
	assert_false(gm.uffd_open);
	close(h.listen_fd);
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_json),
		cmocka_unit_test(test_huge_size),
		cmocka_unit_test(test_handshake_and_faults),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
