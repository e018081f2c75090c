/* tests/nested/kvm-smoke.c — minimal end-to-end check that /dev/kvm works.
 *
 * Creates a VM with one vCPU in real mode and runs:
 *     mov al,'A' ; mov dx,0x3f8 ; out dx,al      -> KVM_EXIT_IO port 0x3f8 data 'A'
 *     mov cx,N   ; l: out 0x80,al ; loop l       -> N x KVM_EXIT_IO port 0x80 (timed)
 *     hlt                                        -> KVM_EXIT_HLT
 * Prints "kvm-smoke: OK" and exits 0 on success.
 *
 * build: cc -O2 -Wall -o build/nested/kvm-smoke tests/nested/kvm-smoke.c
 * usage: kvm-smoke [N]   (N = timed port-I/O exits, default 1000, max 65535)
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define MEM_SIZE 0x10000
#define CODE_GPA 0x1000

static int fail(const char *what)
{
	fprintf(stderr, "kvm-smoke: FAIL: %s: %s\n", what, strerror(errno));
	return 1;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	unsigned long n = argc > 1 ? strtoul(argv[1], NULL, 0) : 1000;
	if (n < 1 || n > 65535)
		n = 1000;
	const uint8_t code[] = {
		0xb0, 'A',		/* mov al,'A'     */
		0xba, 0xf8,	0x03,	/* mov dx,0x3f8   */
		0xee,			/* out dx,al      */
		0xb9, n & 0xff, n >> 8, /* mov cx,n      */
		0xe6, 0x80,		/* l: out 0x80,al */
		0xe2, 0xfc,		/* loop l         */
		0xf4,			/* hlt            */
	};
	double t0 = now();

	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		return fail("open /dev/kvm");
	int api = ioctl(kvm, KVM_GET_API_VERSION, 0);
	if (api != KVM_API_VERSION) {
		fprintf(stderr, "kvm-smoke: FAIL: KVM API version %d\n", api);
		return 1;
	}
	static const struct {
		const char *name;
		int cap;
	} caps[] = {
		{ "IRQCHIP", KVM_CAP_IRQCHIP },
		{ "PIT2", KVM_CAP_PIT2 },
		{ "IRQFD", KVM_CAP_IRQFD },
		{ "IOEVENTFD", KVM_CAP_IOEVENTFD },
		{ "SPLIT_IRQCHIP", KVM_CAP_SPLIT_IRQCHIP },
		{ "X2APIC_API", KVM_CAP_X2APIC_API },
		{ "TSC_DEADLINE", KVM_CAP_TSC_DEADLINE_TIMER },
		{ "IMMEDIATE_EXIT", KVM_CAP_IMMEDIATE_EXIT },
		{ "NR_VCPUS", KVM_CAP_NR_VCPUS },
		{ "MAX_VCPUS", KVM_CAP_MAX_VCPUS },
		{ "NR_MEMSLOTS", KVM_CAP_NR_MEMSLOTS },
	};
	printf("kvm-smoke: caps:");
	for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++)
		printf(" %s=%d", caps[i].name, ioctl(kvm, KVM_CHECK_EXTENSION, caps[i].cap));
	printf("\n");
	int vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0)
		return fail("KVM_CREATE_VM");
	uint8_t *mem =
		mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		return fail("mmap");
	memcpy(mem + CODE_GPA, code, sizeof(code));
	struct kvm_userspace_memory_region region = {
		.slot = 0,
		.guest_phys_addr = 0,
		.memory_size = MEM_SIZE,
		.userspace_addr = (uintptr_t)mem,
	};
	if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0)
		return fail("KVM_SET_USER_MEMORY_REGION");
	int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	if (vcpu < 0)
		return fail("KVM_CREATE_VCPU");
	int run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (run_size <= 0)
		return fail("KVM_GET_VCPU_MMAP_SIZE");
	struct kvm_run *run = mmap(NULL, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	if (run == MAP_FAILED)
		return fail("mmap kvm_run");

	struct kvm_sregs sregs;
	if (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0)
		return fail("KVM_GET_SREGS");
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0)
		return fail("KVM_SET_SREGS");
	struct kvm_regs regs = { .rip = CODE_GPA, .rflags = 0x2 };
	if (ioctl(vcpu, KVM_SET_REGS, &regs) < 0)
		return fail("KVM_SET_REGS");
	double t1 = now();

	/* 1: out 0x3f8 'A' */
	if (ioctl(vcpu, KVM_RUN, 0) < 0)
		return fail("KVM_RUN");
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	if (run->exit_reason != KVM_EXIT_IO || run->io.direction != KVM_EXIT_IO_OUT ||
	    run->io.port != 0x3f8 || run->io.size != 1 || *data != 'A') {
		fprintf(stderr,
			"kvm-smoke: FAIL: first exit reason %u (port 0x%x data 0x%x), want IO "
			"0x3f8 'A'\n",
			run->exit_reason, run->io.port, *data);
		return 1;
	}
	printf("kvm-smoke: got '%c' on port 0x%x\n", *data, run->io.port);

	/* 2: n timed exits on port 0x80 */
	double t2 = now();
	for (unsigned long i = 0; i < n; i++) {
		if (ioctl(vcpu, KVM_RUN, 0) < 0)
			return fail("KVM_RUN");
		if (run->exit_reason != KVM_EXIT_IO || run->io.port != 0x80) {
			fprintf(stderr,
				"kvm-smoke: FAIL: exit %lu: reason %u port 0x%x, want IO 0x80\n", i,
				run->exit_reason, run->io.port);
			return 1;
		}
	}
	double t3 = now();

	/* 3: hlt */
	if (ioctl(vcpu, KVM_RUN, 0) < 0)
		return fail("KVM_RUN");
	if (run->exit_reason != KVM_EXIT_HLT) {
		fprintf(stderr, "kvm-smoke: FAIL: last exit reason %u, want KVM_EXIT_HLT (%d)\n",
			run->exit_reason, KVM_EXIT_HLT);
		return 1;
	}
	printf("kvm-smoke: setup %.1f ms, %lu I/O exits in %.1f ms (%.1f us/exit)\n",
	       (t1 - t0) * 1e3, n, (t3 - t2) * 1e3, (t3 - t2) * 1e6 / n);
	printf("kvm-smoke: OK\n");
	return 0;
}
