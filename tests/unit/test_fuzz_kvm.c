/* The fuzz device under real KVM, with a few instructions of 64-bit guest code instead of a
 * kernel (milliseconds, no boot): the windows are guest memory (a coverage write lands in the
 * host's map, an input the host writes during a doorbell is what the guest reads next), the
 * registers are MMIO, and vcpu_request_exit() from the doorbell callback runs the VM's vCPU
 * exit hook once, on the vCPU thread, with the doorbell write complete (RIP past it).
 * Skipped when /dev/kvm cannot be opened; the only unit test that needs KVM. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "arch/x86/cpuid.h"
#include "arch/x86/layout.h"
#include "core/vcpu.h"
#include "core/vm.h"
#include "devices/fuzz.h"
#include "kvm_guest.h"

#include <errno.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

struct run_log {
	struct vm *vm;
	struct fuzzdev *f;
	int snapshot_me, done, crash;
	bool exit_requested; /* vcpu_request_exit()'s answer inside the callback */
	int hooks;
	uint64_t hook_rip;
	uint8_t cov_at_snapshot, cov_at_done[8]; /* what the host sees during each doorbell */
	pthread_t hook_thread, callback_thread;
};

static void on_doorbell(void *ctx, enum fuzz_doorbell cmd, uint32_t code)
{
	struct run_log *l = ctx;
	uint8_t *in;
	size_t size;

	l->callback_thread = pthread_self();
	switch (cmd) {
	case FUZZ_DOORBELL_SNAPSHOT_ME:
		l->snapshot_me++;
		fuzzdev_coverage(l->f, &in, &size);
		l->cov_at_snapshot = in[5];
		fuzzdev_input(l->f, &in, &size);
		memcpy(in, "WXYZ", 4);
		assert_int_equal(fuzzdev_set_input_len(l->f, 4), 0);
		l->exit_requested = vcpu_request_exit();
		break;
	case FUZZ_DOORBELL_DONE:
		l->done++;
		fuzzdev_coverage(l->f, &in, &size);
		memcpy(l->cov_at_done, in + 0x10, sizeof(l->cov_at_done));
		vm_request_stop(l->vm, VM_STOP_POWEROFF);
		break;
	case FUZZ_DOORBELL_CRASH:
		l->crash++;
		break;
	}
}

static void exit_hook(void *ctx, struct vcpu *v)
{
	struct run_log *l = ctx;
	struct kvm_regs regs;

	l->hooks++;
	l->hook_thread = pthread_self();
	if (ioctl(v->fd, KVM_GET_REGS, &regs) == 0)
		l->hook_rip = regs.rip;
}

/* A stop after 20 s, should the guest never ring DONE. */
static void *watchdog(void *arg)
{
	for (int i = 0;
	     i < 200 && !__atomic_load_n(&((struct vm *)arg)->stop_reason, __ATOMIC_ACQUIRE); i++)
		usleep(100 * 1000);
	vm_request_stop(arg, VM_STOP_ERROR);
	return NULL;
}

static void test_guest_code(void **state)
{
	static struct vm vm;
	struct vm_config cfg = { .mem_bytes = 64ull << 20, .nr_vcpus = 1, .mem_fd = -1 };
	struct run_log l = { .vm = &vm };
	const char *why = NULL;
	struct kvm_guest_code code = { .n = 0 };
	uint8_t *cov;
	size_t cov_size, doorbell_end;
	uint64_t regs;
	pthread_t dog;
	int ret;

	cfg.cpu_template = cpuid_detect_template("/sys");
	ret = vm_create(&vm, &cfg, &why);
	if (kvm_guest_unavailable(ret)) {
		vm_destroy(&vm);
		print_message("no usable /dev/kvm (%s): skipping\n", why);
		skip();
	}
	assert_int_equal(ret, 0);
	assert_int_equal(fuzzdev_add(&vm.dm, NULL, &l.f), 0);
	assert_int_equal(vm.nr_extra_slots, 2);
	regs = fuzzdev_regs_gpa(l.f);
	fuzzdev_on_doorbell(l.f, on_doorbell, &l);
	vm_set_vcpu_exit_hook(&vm, exit_hook, &l);

	/* mov rax, COV+5; mov byte [rax], 0x42        a coverage counter, at native speed
	 * mov rdx, REGS+DOORBELL; mov dword [rdx], 1   SNAPSHOT_ME (the hook runs after this)
	 * mov rbx, INPUT; mov ecx, [rbx]                the input the host just wrote
	 * mov esi, [rdx-8]                              INPUT_LEN, an MMIO read
	 * mov rax, COV+0x10; mov [rax], ecx; mov [rax+4], esi
	 * mov dword [rdx], 2; jmp $                     DONE (the host stops the VM) */
	kg_mov64(&code, KG_RAX, LAYOUT_FUZZ_COV_ADDR + 5);
	kg_store8_rax(&code, 0x42);
	kg_mov64(&code, KG_RDX, regs + FUZZDEV_REG_DOORBELL);
	kg_bytes(&code, (const uint8_t[]){ 0xc7, 0x02, 0x01, 0, 0, 0 }, 6);
	doorbell_end = code.n;
	kg_mov64(&code, KG_RBX, LAYOUT_FUZZ_INPUT_ADDR);
	kg_bytes(&code, (const uint8_t[]){ 0x8b, 0x0b, 0x8b, 0x72, 0xf8 }, 5);
	kg_mov64(&code, KG_RAX, LAYOUT_FUZZ_COV_ADDR + 0x10);
	kg_bytes(&code, (const uint8_t[]){ 0x89, 0x08, 0x89, 0x70, 0x04 }, 5);
	kg_bytes(&code, (const uint8_t[]){ 0xc7, 0x02, 0x02, 0, 0, 0 }, 6);
	kg_spin(&code);
	assert_int_equal(kvm_guest_install(&vm.gm, &code), 0);
	assert_int_equal(vm_setup_vcpus(&vm, KVM_GUEST_CODE_GPA), 0);

	assert_int_equal(pthread_create(&dog, NULL, watchdog, &vm), 0);
	assert_int_equal(vm_run(&vm), VM_STOP_POWEROFF);
	pthread_join(dog, NULL);

	assert_int_equal(l.snapshot_me, 1);
	assert_int_equal(l.done, 1);
	assert_int_equal(l.crash, 0);
	/* The callback ran on the vCPU thread, which could ask to leave the exit ... */
	assert_true(l.exit_requested);
	assert_false(pthread_equal(l.callback_thread, pthread_self()));
	/* ... and the hook ran once, on that thread, with the doorbell write complete. */
	assert_int_equal(l.hooks, 1);
	assert_true(pthread_equal(l.hook_thread, l.callback_thread));
	assert_int_equal(l.hook_rip, KVM_GUEST_CODE_GPA + doorbell_end);
	/* The guest's writes are in the host's map, already during the doorbell that follows
	 * them (where a fuzzer reads it); the guest read the host's input and length. */
	assert_int_equal(l.cov_at_snapshot, 0x42);
	assert_memory_equal(l.cov_at_done, "WXYZ\x04\0\0\0", 8);
	fuzzdev_coverage(l.f, &cov, &cov_size);
	assert_int_equal(cov[5], 0x42);
	assert_memory_equal(cov + 0x10, "WXYZ", 4);
	assert_memory_equal(cov + 0x14, "\x04\0\0\0", 4);
	vm_destroy(&vm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_guest_code),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
