/* Dirty tracking and in-place checkpoint/reset under real KVM, driven by a few instructions of
 * hand-written 64-bit guest code (kvm_guest.h) instead of a kernel: milliseconds, no boot.
 *
 * In the first two tests the vCPU runs on the test's own thread (kvm_guest_run), never on a
 * vCPU thread: vm->pause.started stays 0, so vm_pause returns at once and checkpoint_take and
 * checkpoint_reset save and load the vCPU state from this thread (vm_save_vcpus' and
 * vm_load_vcpus' path for a VM not yet running).  Each run stops at an OUT the guest makes,
 * completed before the test looks at the VM: the consistent point vm_pause gives a running
 * VM.  The third runs the vCPU on its thread (vm_run) and pauses it with vm_pause.
 *
 * The guest writes nothing but the stores the code makes: no stack, and the page tables'
 * accessed and dirty bits are set beforehand (kvm_guest_install), so the dirty log must hold
 * exactly the pages the tests expect.  Skipped when /dev/kvm cannot be opened. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "arch/x86/layout.h"
#include "core/machine.h"
#include "core/vcpu.h"
#include "core/vcpu_state.h"
#include "core/vm.h"
#include "kvm_guest.h"
#include "snapshot/checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

/* AddressSanitizer keeps freed memory in its quarantine (256 MiB by default) instead of
 * reusing it: every free during a reset adds to RSS there, so the bound on RSS growth is
 * checked only without it (LeakSanitizer reports a real leak at exit). */
#if defined(__SANITIZE_ADDRESS__)
#define RSS_CHECKED 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RSS_CHECKED 0
#endif
#endif
#ifndef RSS_CHECKED
#define RSS_CHECKED 1
#endif

#define PORT	0x4f0 /* no device: every OUT to it comes back to the test */
#define MEM_MIB 16

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Run to the next OUT and check that it is the one `phase` expects. */
static void run_to(struct vcpu *v, uint8_t phase)
{
	uint16_t port = 0;
	uint8_t value = 0xff;

	assert_int_equal(kvm_guest_run(v, &port, &value), 0);
	assert_int_equal(port, PORT);
	assert_int_equal(value, phase);
}

static void set_page(uint64_t *bits, uint64_t gpa)
{
	uint64_t p = gpa >> GMEM_PAGE_SHIFT; /* RAM starts at GPA 0: RAM offset == GPA */

	bits[p / 64] |= 1ull << (p % 64);
}

/* Fail with the first differing page named, rather than two bitmaps' worth of hex. */
/* Pages the CPU itself may log with no store of the code: the code page and the boot page
 * tables (0x9000-0xefff).  QEMU's emulated nested paging (tests/nested) logged both, measured
 * 2026-12-02; a kvm_pvm host logs neither (kvm_guest_install presets the accessed and dirty
 * bits).  Every other page of RAM must be exact. */
#define CPU_PAGES 7 /* the code page, the PML4, the PDPT and four PDs */

static bool cpu_page(uint64_t gpa)
{
	return (gpa >= LAYOUT_PML4_ADDR && gpa < LAYOUT_PD_ADDR + 4 * 0x1000) ||
	       (gpa >> GMEM_PAGE_SHIFT) == (KVM_GUEST_CODE_GPA >> GMEM_PAGE_SHIFT);
}

/* The pages in c's bitmap, the CPU's own left out. */
static uint64_t count_pages(const struct vm *vm, enum vm_dirty_consumer c)
{
	const uint64_t *got = vm->dirty.acc[c];
	uint64_t n = 0;

	for (uint64_t p = 0; p < vm->dirty.nr_pages; p++)
		n += (got[p / 64] >> (p % 64) & 1) && !cpu_page(p << GMEM_PAGE_SHIFT);
	return n;
}

static void expect_pages(const struct vm *vm, enum vm_dirty_consumer c, const uint64_t *want)
{
	const uint64_t *got = vm->dirty.acc[c];

	for (uint64_t p = 0; p < vm->dirty.nr_pages; p++) {
		bool g = got[p / 64] >> (p % 64) & 1, w = want[p / 64] >> (p % 64) & 1;

		if (g != w && !cpu_page(p << GMEM_PAGE_SHIFT))
			fail_msg("consumer %d: page %#llx (GPA %#llx) is %s", (int)c,
				 (unsigned long long)p, (unsigned long long)(p << GMEM_PAGE_SHIFT),
				 g ? "dirty but was not written" : "written but not dirty");
	}
}

/* mov rax, gpa; mov byte [rax], v */
static void store8(struct kvm_guest_code *c, uint64_t gpa, uint8_t v)
{
	kg_mov64(c, KG_RAX, gpa);
	kg_store8_rax(c, v);
}

/* 1. The bitmap log is exact: the pages the guest wrote and nothing else, in both consumers'
 * bitmaps; each consumer clears only its own; a harvested page is caught again when written
 * again (KVM_CLEAR_DIRTY_LOG re-protected it); the VMM's own writes are in it too. */
static void test_dirty_log_exact(void **state)
{
	static struct vm vm, off;
	struct vm_config cfg = {
		.mem_bytes = MEM_MIB << 20, .nr_vcpus = 1, .mem_fd = -1, .track_dirty = true
	};
	/* Scattered over RAM: the first page past the code, one in the middle, the last one. */
	static const uint64_t a[] = { 0x200000, 0x3ff010, 0x7ff000, 0xa00800, 0xfff000 };
	static const uint64_t b[] = { 0x400000, 0xc00abc };
	uint64_t want[64] = { 0 }, want_snap[64] = { 0 }, words;
	struct kvm_guest_code code = { .n = 0 };
	const char *why = NULL;
	uint8_t buf[4] = { 1, 2, 3, 4 };
	int ret;

	(void)state;
	cfg.cpu_template = cpuid_detect_template("/sys");
	ret = vm_create(&vm, &cfg, &why);
	if (kvm_guest_unavailable(ret)) {
		vm_destroy(&vm);
		print_message("no usable /dev/kvm (%s): skipping\n", why);
		skip();
	}
	assert_int_equal(ret, 0);
	assert_true(vm.dirty.on);
	assert_int_equal(vm.dirty.nr_pages, (MEM_MIB << 20) >> GMEM_PAGE_SHIFT);
	words = gmem_bitmap_words(vm.dirty.nr_pages);
	assert_int_equal(words, 64);

	/* Phase 1: five pages, the first one twice (two bytes apart). */
	for (size_t i = 0; i < 5; i++)
		store8(&code, a[i], (uint8_t)(0x10 + i));
	store8(&code, a[0] + 2, 0x20);
	kg_out(&code, PORT, 1);
	/* Phase 2: other pages, one of them by a qword store across a page boundary:
	 * mov rbx, imm64; mov rax, 0x5ffffc; mov [rax], rbx (48 89 18). */
	for (size_t i = 0; i < 2; i++)
		store8(&code, b[i], 0x30);
	kg_mov64(&code, KG_RBX, 0x1122334455667788ull);
	kg_mov64(&code, KG_RAX, 0x5ffffc);
	kg_bytes(&code, (const uint8_t[]){ 0x48, 0x89, 0x18 }, 3);
	kg_out(&code, PORT, 2);
	/* Phase 3: a page of phase 1 again, after its dirty bit was harvested. */
	store8(&code, a[2], 0x40);
	kg_out(&code, PORT, 3);
	kg_spin(&code);
	assert_int_equal(kvm_guest_install(&vm.gm, &code), 0);
	assert_int_equal(vm_setup_vcpus(&vm, KVM_GUEST_CODE_GPA), 0);

	/* The log starts empty (no KVM_DIRTY_LOG_INITIALLY_SET; the set-up is not a VMM write). */
	assert_int_equal(vm_dirty_sync(&vm), 0);
	expect_pages(&vm, VM_DIRTY_SNAPSHOT, want);
	expect_pages(&vm, VM_DIRTY_RESET, want);

	run_to(vm.vcpus[0], 1);
	assert_int_equal(vm_dirty_sync(&vm), 0);
	for (size_t i = 0; i < 5; i++)
		set_page(want, a[i]);
	expect_pages(&vm, VM_DIRTY_SNAPSHOT, want);
	expect_pages(&vm, VM_DIRTY_RESET, want);
	assert_int_equal(count_pages(&vm, VM_DIRTY_RESET), 5);
	assert_int_equal(*(uint8_t *)gmem_ptr(&vm.gm, a[0] + 2, 1), 0x20);
	/* A second harvest with no write in between adds nothing. */
	assert_int_equal(vm_dirty_sync(&vm), 0);
	expect_pages(&vm, VM_DIRTY_RESET, want);

	/* One consumer clears its bitmap, the other keeps its pages. */
	vm_dirty_clear(&vm, VM_DIRTY_RESET);
	memcpy(want_snap, want, sizeof(want));
	memset(want, 0, sizeof(want));
	expect_pages(&vm, VM_DIRTY_RESET, want);
	expect_pages(&vm, VM_DIRTY_SNAPSHOT, want_snap);

	/* The second run's pages: only those in the cleared consumer, added in the other. */
	run_to(vm.vcpus[0], 2);
	assert_int_equal(vm_dirty_sync(&vm), 0);
	set_page(want, b[0]);
	set_page(want, b[1]);
	set_page(want, 0x5ff000);
	set_page(want, 0x600000);
	expect_pages(&vm, VM_DIRTY_RESET, want);
	for (uint64_t w = 0; w < words; w++)
		want_snap[w] |= want[w];
	expect_pages(&vm, VM_DIRTY_SNAPSHOT, want_snap);

	/* A page seen and cleared once is logged again when written again. */
	vm_dirty_clear(&vm, VM_DIRTY_RESET);
	vm_dirty_clear(&vm, VM_DIRTY_SNAPSHOT);
	run_to(vm.vcpus[0], 3);
	assert_int_equal(vm_dirty_sync(&vm), 0);
	memset(want, 0, sizeof(want));
	set_page(want, a[2]);
	expect_pages(&vm, VM_DIRTY_RESET, want);
	expect_pages(&vm, VM_DIRTY_SNAPSHOT, want);

	/* The VMM's writes: gmem_write, and gmem_mark_dirty over a range that spans two pages;
	 * outside RAM it marks nothing. */
	vm_dirty_clear(&vm, VM_DIRTY_RESET);
	vm_dirty_clear(&vm, VM_DIRTY_SNAPSHOT);
	assert_int_equal(gmem_write(&vm.gm, 0x900ffe, buf, sizeof(buf)), 0);
	gmem_mark_dirty(&vm.gm, 0xe00000, 1);
	gmem_mark_dirty(&vm.gm, 0xd0000000, 0x1000);
	gmem_mark_dirty(&vm.gm, 0x300000, 0);
	assert_int_equal(vm_dirty_sync(&vm), 0);
	memset(want, 0, sizeof(want));
	set_page(want, 0x900000);
	set_page(want, 0x901000);
	set_page(want, 0xe00000);
	expect_pages(&vm, VM_DIRTY_RESET, want);
	expect_pages(&vm, VM_DIRTY_SNAPSHOT, want);
	/* ... taken once: the VMM's log is empty after the harvest. */
	vm_dirty_clear(&vm, VM_DIRTY_RESET);
	assert_int_equal(vm_dirty_sync(&vm), 0);
	assert_int_equal(count_pages(&vm, VM_DIRTY_RESET), 0);
	vm_destroy(&vm);

	/* Without tracking there is no log. */
	cfg.track_dirty = false;
	assert_int_equal(vm_create(&off, &cfg, &why), 0);
	assert_false(off.dirty.on);
	assert_int_equal(vm_dirty_sync(&off), -ENOTSUP);
	vm_dirty_clear(&off, VM_DIRTY_RESET); /* a no-op */
	vm_destroy(&off);
}

/* 2. Checkpoint and reset on a machine (serial, RTC, power, vmgenid; no disks, nets, RNG or
 * ACPI), with the code loaded and vCPU 0 set up by hand instead of machine_boot. */

/* The guest's phases.  Before the first checkpoint: rax, rbx, rcx and one page get values.
 * Phase 1 (read-modify-write, so a run on unreset memory or registers ends differently):
 * rbx += 1; on five pages (one twice) `inc qword [page]; mov [page+8], rbx`; rcx changes.
 * Phase 2: rbx += 0x10, the same on three pages (one also written by phase 1). */
static const uint64_t phase1_pages[] = {
	0x200000, 0x480000, 0x480008, 0x7ff000, 0xa01000, 0xfff000
};
static const uint64_t phase2_pages[] = { 0x7ff000, 0x300000, 0xc00000 };

static void rmw(struct kvm_guest_code *c, uint64_t gpa)
{
	kg_mov64(c, KG_RAX, gpa);
	kg_bytes(c, (const uint8_t[]){ 0x48, 0xff, 0x00 }, 3);	     /* inc qword [rax] */
	kg_bytes(c, (const uint8_t[]){ 0x48, 0x89, 0x58, 0x08 }, 4); /* mov [rax+8], rbx */
}

static void build_phases(struct kvm_guest_code *c, uint64_t *ckpt1, uint64_t *ckpt2)
{
	store8(c, 0x600000, 0x11);
	kg_mov64(c, KG_RBX, 0x1000);
	kg_mov64(c, KG_RCX, 0x2000);
	kg_out(c, PORT, 0);
	*ckpt1 = KVM_GUEST_CODE_GPA + c->n;
	kg_bytes(c, (const uint8_t[]){ 0x48, 0x83, 0xc3, 0x01 }, 4); /* add rbx, 1 */
	for (size_t i = 0; i < sizeof(phase1_pages) / sizeof(phase1_pages[0]); i++)
		rmw(c, phase1_pages[i]);
	kg_mov64(c, KG_RCX, 0xc0ffee);
	kg_out(c, PORT, 1);
	*ckpt2 = KVM_GUEST_CODE_GPA + c->n;
	kg_bytes(c, (const uint8_t[]){ 0x48, 0x83, 0xc3, 0x10 }, 4); /* add rbx, 0x10 */
	for (size_t i = 0; i < sizeof(phase2_pages) / sizeof(phase2_pages[0]); i++)
		rmw(c, phase2_pages[i]);
	kg_out(c, PORT, 2);
	kg_spin(c);
}

static void get_regs(struct vcpu *v, struct kvm_regs *r)
{
	assert_int_equal(ioctl(v->fd, KVM_GET_REGS, r), 0);
}

static void expect_regs(const struct kvm_regs *got, const struct kvm_regs *want)
{
	assert_int_equal(got->rip, want->rip);
	assert_int_equal(got->rax, want->rax);
	assert_int_equal(got->rbx, want->rbx);
	assert_int_equal(got->rcx, want->rcx);
	assert_int_equal(got->rdx, want->rdx);
	assert_int_equal(got->rflags, want->rflags);
	assert_memory_equal(got, want, sizeof(*got));
}

static long rss_kib(void)
{
	char line[256];
	long kib = -1;
	FILE *f = fopen("/proc/self/status", "r");

	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	fclose(f);
	assert_true(kib > 0);
	return kib;
}

static void reset(struct checkpoint *c, struct machine *m, uint64_t want_pages)
{
	struct reset_stats st = { 0 };
	char err[256] = "";

	if (checkpoint_reset(c, m, 0, &st, err, sizeof(err)))
		fail_msg("checkpoint_reset: %s", err);
	/* The CPU's own pages (cpu_page) may be among those put back. */
	assert_in_range(st.pages, want_pages, want_pages + CPU_PAGES);
}

static void test_checkpoint_reset(void **state)
{
	static struct machine m;
	static struct checkpoint c;
	struct machine_config cfg = { .mem_mib = MEM_MIB,
				      .smp = 1,
				      .cpu_template = CPU_TEMPLATE_AUTO,
				      .no_rng = true,
				      .no_acpi = true };
	struct machine_env env = { .console_fd = -1, .mem_fd = -1, .track_dirty = true };
	struct kvm_guest_code code = { .n = 0 };
	struct kvm_regs regs0, regs1, r;
	uint64_t ckpt1, ckpt2, t0;
	uint8_t *ram0, *ram1, *ram;
	size_t size;
	char err[256] = "";
	long rss0, rss1;

	(void)state;
	env.console_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	assert_true(env.console_fd >= 0);
	kvm_guest_machine_or_skip(&m, &cfg, &env, "checkpoints");
	build_phases(&code, &ckpt1, &ckpt2);
	assert_int_equal(kvm_guest_install(&m.vm.gm, &code), 0);
	assert_int_equal(vm_setup_vcpus(&m.vm, KVM_GUEST_CODE_GPA), 0);
	ram = m.vm.gm.map;
	size = m.vm.gm.map_size;
	ram0 = malloc(size);
	ram1 = malloc(size);
	assert_non_null(ram0);
	assert_non_null(ram1);

	/* No checkpoint yet: a reset is refused and the VM left alone. */
	assert_int_equal(checkpoint_reset(&c, &m, 0, NULL, err, sizeof(err)), -ENOENT);

	/* The checkpoint, taken where the guest stopped; the vCPU is not on a thread. */
	run_to(m.vm.vcpus[0], 0);
	assert_int_equal(m.vm.pause.started, 0);
	if (checkpoint_take(&c, &m, err, sizeof(err)))
		fail_msg("checkpoint_take: %s", err);
	assert_true(c.valid);
	assert_false(vm_paused(&m.vm)); /* the pause it made is undone */
	memcpy(ram0, ram, size);
	get_regs(m.vm.vcpus[0], &regs0);
	assert_int_equal(regs0.rip, ckpt1);
	assert_int_equal(regs0.rbx, 0x1000);
	assert_int_equal(regs0.rcx, 0x2000);

	/* The guest changes memory and registers ... */
	run_to(m.vm.vcpus[0], 1);
	memcpy(ram1, ram, size);
	get_regs(m.vm.vcpus[0], &regs1);
	assert_int_equal(regs1.rip, ckpt2);
	assert_int_equal(regs1.rbx, 0x1001);
	assert_int_equal(regs1.rcx, 0xc0ffee);
	assert_int_equal(*(uint64_t *)(ram + 0x480000), 1);
	/* [0x480008] held rbx (the first page's store), then was incremented. */
	assert_int_equal(*(uint64_t *)(ram + 0x480008), 0x1002);
	assert_memory_not_equal(ram0, ram1, size);

	/* ... the reset copies back exactly the five pages it dirtied and reloads the vCPU. */
	reset(&c, &m, 5);
	assert_memory_equal(ram, ram0, size);
	get_regs(m.vm.vcpus[0], &r);
	expect_regs(&r, &regs0);

	/* Run again from the checkpoint: the same memory and registers as the first time. */
	run_to(m.vm.vcpus[0], 1);
	assert_memory_equal(ram, ram1, size);
	get_regs(m.vm.vcpus[0], &r);
	expect_regs(&r, &regs1);

	/* Reset, run, 200 times (after a few to let allocations settle): no growth in RSS. */
	for (int i = 0; i < 10; i++) {
		reset(&c, &m, 5);
		run_to(m.vm.vcpus[0], 1);
	}
	rss0 = rss_kib();
	t0 = now_us();
	for (int i = 0; i < 200; i++) {
		reset(&c, &m, 5);
		run_to(m.vm.vcpus[0], 1);
	}
	t0 = now_us() - t0;
	rss1 = rss_kib();
	print_message("200 resets + runs: %llu us each; VmRSS %ld -> %ld KiB\n",
		      (unsigned long long)(t0 / 200), rss0, rss1);
	if (RSS_CHECKED)
		assert_true(rss1 - rss0 <= 1024);
	else
		print_message("AddressSanitizer: RSS growth not checked\n");
	assert_int_equal(c.resets, 211);
	assert_memory_equal(ram, ram1, size);

	/* Ctrl-A c: a second checkpoint here (after phase 1) moves the reset point.  The saved
	 * RAM is brought up to date with the pages written since the first one. */
	if (checkpoint_take(&c, &m, err, sizeof(err)))
		fail_msg("checkpoint_take: %s", err);
	assert_int_equal(c.resets, 0);
	assert_memory_equal(c.mem, ram, size);
	run_to(m.vm.vcpus[0], 2);
	assert_memory_not_equal(ram, ram1, size);
	reset(&c, &m, 3);
	assert_memory_equal(ram, ram1, size);
	get_regs(m.vm.vcpus[0], &r);
	expect_regs(&r, &regs1);
	/* ... so the guest goes on with phase 2, not phase 1. */
	run_to(m.vm.vcpus[0], 2);
	assert_int_equal(*(uint64_t *)(ram + 0x300008), 0x1011);

	free(ram0);
	free(ram1);
	checkpoint_free(&c);
	machine_destroy(&m);
	close(env.console_fd);
}

/* The same on a running VM: the vCPU on its own thread (vm_run), the test as the event loop
 * would be.  The guest increments a counter in a loop: its page is the only one it dirties.
 * With the VM paused by the caller, checkpoint_take and checkpoint_reset leave it paused
 * (vm_pause's -EALREADY) and load the vCPU state through the parked vCPU thread; with the VM
 * running, checkpoint_reset pauses and resumes it itself. */
#define COUNTER_GPA 0x600000ull

struct run_thread {
	struct vm *vm;
	pthread_t t;
	enum vm_stop_reason reason;
};

static void *run_main(void *arg)
{
	struct run_thread *r = arg;

	r->reason = vm_run(r->vm);
	return NULL;
}

/* Wait (at most 5 s) until the guest's counter passes `above`; its value then. */
static uint64_t counter_above(const uint8_t *ram, uint64_t above)
{
	uint64_t v = 0;

	for (int i = 0; i < 50000; i++) {
		v = __atomic_load_n((const uint64_t *)(const void *)(ram + COUNTER_GPA),
				    __ATOMIC_RELAXED);
		if (v > above)
			return v;
		usleep(100);
	}
	fail_msg("the guest's counter stays at %llu", (unsigned long long)v);
	return v;
}

static void test_checkpoint_reset_threads(void **state)
{
	static struct machine m;
	static struct checkpoint c;
	struct machine_config cfg = { .mem_mib = MEM_MIB,
				      .smp = 1,
				      .cpu_template = CPU_TEMPLATE_AUTO,
				      .no_rng = true,
				      .no_acpi = true };
	struct machine_env env = { .console_fd = -1, .mem_fd = -1, .track_dirty = true };
	struct kvm_guest_code code = { .n = 0 };
	struct run_thread rt = { .vm = &m.vm };
	struct vcpu_state *now;
	struct reset_stats st = { 0 };
	uint64_t count0, count1;
	uint8_t *ram0, *ram;
	size_t size;
	char err[256] = "";

	(void)state;
	env.console_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	assert_true(env.console_fd >= 0);
	kvm_guest_machine_or_skip(&m, &cfg, &env, "reset");
	now = calloc(1, sizeof(*now));
	assert_non_null(now);
	/* mov rax, COUNTER; 1: inc qword [rax]; inc rcx; jmp 1b   (rcx counts too: a vCPU
	 * left as it is at the reset has a larger one than the checkpoint's) */
	kg_mov64(&code, KG_RAX, COUNTER_GPA);
	kg_bytes(&code, (const uint8_t[]){ 0x48, 0xff, 0x00, 0x48, 0xff, 0xc1, 0xeb, 0xf8 }, 8);
	assert_int_equal(kvm_guest_install(&m.vm.gm, &code), 0);
	assert_int_equal(vm_setup_vcpus(&m.vm, KVM_GUEST_CODE_GPA), 0);
	ram = m.vm.gm.map;
	size = m.vm.gm.map_size;
	ram0 = malloc(size);
	assert_non_null(ram0);
	assert_int_equal(pthread_create(&rt.t, NULL, run_main, &rt), 0);

	/* The checkpoint, taken while the vCPU thread runs the loop (paused here). */
	counter_above(ram, 0);
	assert_int_equal(vm_pause(&m.vm), 0);
	assert_int_equal(m.vm.pause.started, 1);
	if (checkpoint_take(&c, &m, err, sizeof(err)))
		fail_msg("checkpoint_take: %s", err);
	assert_true(vm_paused(&m.vm)); /* the caller's pause is the caller's to end */
	memcpy(ram0, ram, size);
	count0 = *(uint64_t *)(ram + COUNTER_GPA);
	assert_true(c.vcpus[0].regs.rip >= KVM_GUEST_CODE_GPA + 10 &&
		    c.vcpus[0].regs.rip <= KVM_GUEST_CODE_GPA + 16);
	vm_resume(&m.vm);

	/* It runs on; paused again, the reset puts back the one page and the vCPU. */
	count1 = counter_above(ram, count0 + 100);
	assert_int_equal(vm_pause(&m.vm), 0);
	if (checkpoint_reset(&c, &m, 0, &st, err, sizeof(err)))
		fail_msg("checkpoint_reset: %s", err);
	assert_in_range(st.pages, 1, 1 + CPU_PAGES);
	assert_true(vm_paused(&m.vm));
	assert_memory_equal(ram, ram0, size);
	assert_int_equal(vm_save_vcpus(&m.vm, now), 0);
	assert_int_equal(now->regs.rcx, c.vcpus[0].regs.rcx);
	assert_memory_equal(&now->regs, &c.vcpus[0].regs, sizeof(now->regs));
	vm_resume(&m.vm);
	/* ... and the vCPU thread, which loaded it, runs the guest on. */
	assert_true(count1 > count0 + 100);
	counter_above(ram, count0);

	/* A reset of the running VM pauses and resumes it itself. */
	counter_above(ram, count0 + 100);
	if (checkpoint_reset(&c, &m, 0, &st, err, sizeof(err)))
		fail_msg("checkpoint_reset: %s", err);
	assert_in_range(st.pages, 1, 1 + CPU_PAGES);
	assert_false(vm_paused(&m.vm));
	assert_int_equal(c.resets, 2);
	counter_above(ram, count0);

	vm_request_stop(&m.vm, VM_STOP_POWEROFF);
	pthread_join(rt.t, NULL);
	assert_int_equal(rt.reason, VM_STOP_POWEROFF);
	free(ram0);
	free(now);
	checkpoint_free(&c);
	machine_destroy(&m);
	close(env.console_fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dirty_log_exact),
		cmocka_unit_test(test_checkpoint_reset),
		cmocka_unit_test(test_checkpoint_reset_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
