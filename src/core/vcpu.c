#include "core/vcpu.h"

#include "arch/x86/boot.h"
#include "arch/x86/cpuid.h"
#include "arch/x86/layout.h"
#include "core/kvm_stats.h"
#include "core/metrics.h"
#include "core/seccomp.h"
#include "core/vcpu_state.h"
#include "core/vm.h"
#include "util/log.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define SIG_KICK SIGUSR1

/* MSR numbers (Intel SDM vol. 4). */
#define MSR_IA32_SYSENTER_CS  0x174
#define MSR_IA32_SYSENTER_ESP 0x175
#define MSR_IA32_SYSENTER_EIP 0x176
#define MSR_IA32_TSC	      0x10
#define MSR_IA32_MISC_ENABLE  0x1a0
#define MSR_MTRR_DEF_TYPE     0x2ff
#define MSR_STAR	      0xc0000081
#define MSR_LSTAR	      0xc0000082
#define MSR_CSTAR	      0xc0000083
#define MSR_SYSCALL_MASK      0xc0000084
#define MSR_KERNEL_GS_BASE    0xc0000102

#define MISC_ENABLE_FAST_STRING 1ull
#define MTRR_ENABLE		(1ull << 11)
#define MTRR_TYPE_WB		6ull

/* LAPIC register offsets and LVT delivery modes (Intel SDM vol. 3 §10.5.1). */
#define APIC_LVT_LINT0 0x350
#define APIC_LVT_LINT1 0x360
#define APIC_DM_NMI    0x400
#define APIC_DM_EXTINT 0x700

#define X86_CR0_PE  0x1ull
#define X86_CR0_ET  0x10ull
#define X86_CR0_PG  0x80000000ull
#define X86_CR4_PAE 0x20ull
#define EFER_LME    0x100ull
#define EFER_LMA    0x400ull

/* The vCPU whose exit this thread is handling; NULL anywhere else. */
static __thread struct vcpu *current_vcpu;

bool vcpu_request_exit(void)
{
	if (!current_vcpu)
		return false;
	current_vcpu->exit_requested = true;
	return true;
}

static void kick_handler(int sig)
{
	(void)sig;
}

int vcpu_init_signals(void)
{
	struct sigaction sa = { .sa_handler = kick_handler };

	/* No SA_RESTART: KVM_RUN must return EINTR so the thread sees the stop request. */
	sigemptyset(&sa.sa_mask);
	return sigaction(SIG_KICK, &sa, NULL) < 0 ? -errno : 0;
}

static int set_cpuid(struct vcpu *v)
{
	struct kvm_cpuid2 *src = v->vm->cpuid;
	size_t size = sizeof(*src) + src->nent * sizeof(src->entries[0]);
	struct kvm_cpuid2 *c = malloc(size);
	int ret = 0;

	if (!c)
		return -ENOMEM;
	memcpy(c, src, size);
	cpuid_fixup(c, v->index, v->vm->cfg.nr_vcpus, v->vm->cfg.cpu_template);
	if (ioctl(v->fd, KVM_SET_CPUID2, c) < 0)
		ret = -errno;
	free(c);
	return ret;
}

static int set_msrs(struct vcpu *v)
{
	static const struct {
		uint32_t index;
		uint64_t data;
	} boot_msrs[] = {
		{ MSR_IA32_SYSENTER_CS, 0 },
		{ MSR_IA32_SYSENTER_ESP, 0 },
		{ MSR_IA32_SYSENTER_EIP, 0 },
		{ MSR_STAR, 0 },
		{ MSR_CSTAR, 0 },
		{ MSR_KERNEL_GS_BASE, 0 },
		{ MSR_SYSCALL_MASK, 0 },
		{ MSR_LSTAR, 0 },
		{ MSR_IA32_TSC, 0 },
		{ MSR_IA32_MISC_ENABLE, MISC_ENABLE_FAST_STRING },
		{ MSR_MTRR_DEF_TYPE, MTRR_ENABLE | MTRR_TYPE_WB },
	};
	enum { N = sizeof(boot_msrs) / sizeof(boot_msrs[0]) };
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e[N];
	} msrs;
	int ret;

	memset(&msrs, 0, sizeof(msrs));
	msrs.hdr.nmsrs = N;
	for (int i = 0; i < N; i++) {
		msrs.e[i].index = boot_msrs[i].index;
		msrs.e[i].data = boot_msrs[i].data;
	}
	ret = ioctl(v->fd, KVM_SET_MSRS, &msrs);
	if (ret < 0)
		return -errno;
	if (ret != N) /* KVM returns how many it set; a refused one is a setup bug */
		log_warn("vCPU %u: KVM accepted %d of %d boot MSRs (first refused %#x)", v->index,
			 ret, N, boot_msrs[ret].index);
	return 0;
}

static int set_lapic(struct vcpu *v)
{
	struct kvm_lapic_state st;
	uint32_t reg;

	if (ioctl(v->fd, KVM_GET_LAPIC, &st) < 0)
		return -errno;
	/* LINT0 = ExtINT (the PIC's output), LINT1 = NMI, as firmware leaves them on a PC. */
	memcpy(&reg, st.regs + APIC_LVT_LINT0, 4);
	reg = (reg & ~0x700u) | APIC_DM_EXTINT;
	memcpy(st.regs + APIC_LVT_LINT0, &reg, 4);
	memcpy(&reg, st.regs + APIC_LVT_LINT1, 4);
	reg = (reg & ~0x700u) | APIC_DM_NMI;
	memcpy(st.regs + APIC_LVT_LINT1, &reg, 4);
	return ioctl(v->fd, KVM_SET_LAPIC, &st) < 0 ? -errno : 0;
}

static int set_fpu(struct vcpu *v)
{
	struct kvm_fpu fpu;

	memset(&fpu, 0, sizeof(fpu));
	fpu.fcw = 0x37f;    /* x87 default control word */
	fpu.mxcsr = 0x1f80; /* SSE default: all exceptions masked */
	return ioctl(v->fd, KVM_SET_FPU, &fpu) < 0 ? -errno : 0;
}

static struct kvm_segment seg_from_gdt(uint64_t d, unsigned index)
{
	return (struct kvm_segment){
		.base = ((d >> 16) & 0xffffff) | (((d >> 56) & 0xff) << 24),
		.limit = (uint32_t)((d & 0xffff) | (((d >> 48) & 0xf) << 16)),
		.selector = (uint16_t)(index * 8),
		.type = (uint8_t)((d >> 40) & 0xf),
		.present = (uint8_t)((d >> 47) & 1),
		.dpl = (uint8_t)((d >> 45) & 3),
		.db = (uint8_t)((d >> 54) & 1),
		.s = (uint8_t)((d >> 44) & 1),
		.l = (uint8_t)((d >> 53) & 1),
		.g = (uint8_t)((d >> 55) & 1),
	};
}

/* 64-bit boot protocol: long mode with paging, __BOOT_CS/__BOOT_DS, rsi = zero page. */
static int set_boot_regs(struct vcpu *v, uint64_t entry)
{
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	struct kvm_segment code = seg_from_gdt(boot_gdt[BOOT_GDT_CODE], BOOT_GDT_CODE);
	struct kvm_segment data = seg_from_gdt(boot_gdt[BOOT_GDT_DATA], BOOT_GDT_DATA);
	struct kvm_segment tss = seg_from_gdt(boot_gdt[BOOT_GDT_TSS], BOOT_GDT_TSS);

	if (ioctl(v->fd, KVM_GET_SREGS, &sregs) < 0)
		return -errno;
	sregs.gdt.base = LAYOUT_GDT_ADDR;
	sregs.gdt.limit = sizeof(uint64_t) * BOOT_GDT_ENTRIES - 1;
	sregs.idt.base = LAYOUT_IDT_ADDR;
	sregs.idt.limit = 0;
	sregs.cs = code;
	sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = data;
	sregs.tr = tss;
	sregs.cr3 = LAYOUT_PML4_ADDR;
	sregs.cr4 |= X86_CR4_PAE;
	sregs.cr0 |= X86_CR0_PE | X86_CR0_PG | X86_CR0_ET;
	sregs.efer |= EFER_LME | EFER_LMA;
	if (ioctl(v->fd, KVM_SET_SREGS, &sregs) < 0)
		return -errno;

	memset(&regs, 0, sizeof(regs));
	regs.rflags = 0x2; /* reserved bit 1; interrupts off */
	regs.rip = entry;
	regs.rsp = regs.rbp = LAYOUT_BOOT_STACK;
	regs.rsi = LAYOUT_ZERO_PAGE_ADDR;
	return ioctl(v->fd, KVM_SET_REGS, &regs) < 0 ? -errno : 0;
}

int vcpu_create(struct vm *vm, unsigned index, uint64_t entry, struct vcpu **out)
{
	struct vcpu *v = calloc(1, sizeof(*v));
	int ret;

	if (!v)
		return -ENOMEM;
	v->vm = vm;
	v->index = index;
	v->msr_buf = calloc(1, sizeof(*v->msr_buf) +
				       VCPU_STATE_MAX_MSRS * sizeof(v->msr_buf->entries[0]));
	if (!v->msr_buf) {
		free(v);
		return -ENOMEM;
	}
	v->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)index);
	if (v->fd < 0) {
		ret = -errno;
		free(v->msr_buf);
		free(v);
		return ret;
	}
	v->stats_fd = kvm_stats_open(v->fd); /* optional: only the kvm_stats command reads it */
	v->run = mmap(NULL, (size_t)vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
	if (v->run == MAP_FAILED) {
		ret = -errno;
		v->run = NULL;
		goto err_close;
	}
	ret = set_cpuid(v);
	if (!ret)
		ret = set_msrs(v);
	if (!ret)
		ret = set_lapic(v);
	if (!ret)
		ret = set_fpu(v);
	/* Application processors stay in wait-for-SIPI (the in-kernel LAPIC's default) until the
	 * guest starts them with INIT/SIPI. */
	if (!ret && index == 0)
		ret = set_boot_regs(v, entry);
	if (ret)
		goto err_unmap;
	*out = v;
	return 0;

err_unmap:
	munmap(v->run, (size_t)vm->run_size);
err_close:
	close(v->fd);
	free(v->msr_buf);
	free(v);
	return ret;
}

/* The bytes of the instruction an emulation failure stopped on: from the exit itself when
 * KVM_CAP_EXIT_ON_EMULATION_FAILURE supplies them, else read through KVM_TRANSLATE. */
static unsigned fetch_insn(struct vcpu *v, const struct kvm_regs *regs, uint8_t bytes[15])
{
	struct kvm_run *run = v->run;
	struct kvm_translation tr = { .linear_address = regs->rip };
	const uint8_t *p;
	unsigned n;

	if (run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION &&
	    (run->emulation_failure.flags & KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES)) {
		n = run->emulation_failure.insn_size;
		if (n > 15)
			n = 15;
		memcpy(bytes, run->emulation_failure.insn_bytes, n);
		return n;
	}
	if (ioctl(v->fd, KVM_TRANSLATE, &tr) < 0 || !tr.valid)
		return 0;
	p = gmem_ptr(&v->vm->gm, tr.physical_address, 15);
	if (!p)
		return 0;
	memcpy(bytes, p, 15);
	return 15;
}

/* A software-assisted KVM (kvm_pvm) cannot emulate `int3`: the kernel's int3 self-test and
 * its int3-based text patching then stop the VM.  What the CPU would have done is a #BP trap
 * with RIP after the instruction; inject exactly that.  Returns true if handled. */
static bool emulate_int3(struct vcpu *v, struct kvm_regs *regs, const uint8_t *insn, unsigned n)
{
	struct kvm_vcpu_events ev;

	if (n < 1 || insn[0] != 0xcc || v->run->internal.suberror != KVM_INTERNAL_ERROR_EMULATION)
		return false;
	if (ioctl(v->fd, KVM_GET_VCPU_EVENTS, &ev) < 0 || ev.exception.injected ||
	    ev.exception.pending)
		return false;
	regs->rip += 1;
	if (ioctl(v->fd, KVM_SET_REGS, regs) < 0)
		return false;
	ev.exception.injected = 1;
	ev.exception.nr = 3; /* #BP */
	ev.exception.has_error_code = 0;
	ev.flags = 0;
	if (ioctl(v->fd, KVM_SET_VCPU_EVENTS, &ev) < 0) {
		regs->rip -= 1;
		if (ioctl(v->fd, KVM_SET_REGS, regs) < 0)
			log_error("vCPU %u: cannot restore RIP: %s", v->index, strerror(errno));
		return false;
	}
	if (!v->int3_injected++)
		log_info("vCPU %u: emulating int3 at %#llx by injecting #BP (host KVM cannot)",
			 v->index, (unsigned long long)(regs->rip - 1));
	return true;
}

/* An internal error: handled (int3) or one clear line with suberror, RIP and the instruction
 * bytes.  Returns true if the vCPU may go on. */
static bool handle_internal_error(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	struct kvm_regs regs;
	uint8_t bytes[15];
	unsigned n;
	char hex[3 * 15 + 1] = "";

	if (ioctl(v->fd, KVM_GET_REGS, &regs) < 0)
		memset(&regs, 0, sizeof(regs));
	n = fetch_insn(v, &regs, bytes);
	if (emulate_int3(v, &regs, bytes, n))
		return true;
	for (unsigned i = 0; i < n; i++)
		snprintf(hex + 3 * i, sizeof(hex) - 3 * i, "%s%02x", i ? " " : "", bytes[i]);
	log_error(
		"vCPU %u: KVM internal error, suberror %u (%s), RIP %#llx, instruction bytes [%s]",
		v->index, run->internal.suberror,
		run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION ? "emulation failure"
								       : "see linux/kvm.h",
		(unsigned long long)regs.rip, n ? hex : "unavailable");
	return false;
}

/* A triple fault ends the VM; the line carries the state a post-mortem starts from (where
 * the CPU was, on which stack, with which page tables and IDT). */
static void log_triple_fault(struct vcpu *v)
{
	struct kvm_regs regs;
	struct kvm_sregs sregs;

	if (ioctl(v->fd, KVM_GET_REGS, &regs) < 0)
		memset(&regs, 0, sizeof(regs));
	if (ioctl(v->fd, KVM_GET_SREGS, &sregs) < 0)
		memset(&sregs, 0, sizeof(sregs));
	log_error(
		"vCPU %u: guest triple fault (shutdown): RIP %#llx RSP %#llx RFLAGS %#llx CR0 %#llx"
		" CR2 %#llx CR3 %#llx CR4 %#llx EFER %#llx IDT %#llx/%#x",
		v->index, (unsigned long long)regs.rip, (unsigned long long)regs.rsp,
		(unsigned long long)regs.rflags, (unsigned long long)sregs.cr0,
		(unsigned long long)sregs.cr2, (unsigned long long)sregs.cr3,
		(unsigned long long)sregs.cr4, (unsigned long long)sregs.efer,
		(unsigned long long)sregs.idt.base, sregs.idt.limit);
}

static bool stop_requested(const struct vcpu *v)
{
	return __atomic_load_n(&v->vm->stop_reason, __ATOMIC_ACQUIRE) != VM_STOP_NONE;
}

static void handle_io(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	struct bus *pio = &v->vm->dm.pio;

	/* String I/O (rep outsb...) comes as `count` consecutive items. */
	for (uint32_t i = 0; i < run->io.count; i++, data += run->io.size) {
		if (run->io.direction == KVM_EXIT_IO_OUT)
			bus_write(pio, run->io.port, data, run->io.size);
		else
			bus_read(pio, run->io.port, data, run->io.size);
	}
}

/* Decode the exit KVM_RUN just returned with onto the buses (handle_exit's body). */
static void handle_exit_reason(struct vcpu *v)
{
	struct kvm_run *run = v->run;

	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		if (run->io.direction == KVM_EXIT_IO_OUT)
			METRIC_INC(metrics_vcpu.exit_io_out);
		else
			METRIC_INC(metrics_vcpu.exit_io_in);
		handle_io(v);
		break;
	case KVM_EXIT_MMIO:
		if (run->mmio.is_write) {
			METRIC_INC(metrics_vcpu.exit_mmio_write);
			bus_write(&v->vm->dm.mmio, run->mmio.phys_addr, run->mmio.data,
				  run->mmio.len);
		} else {
			METRIC_INC(metrics_vcpu.exit_mmio_read);
			bus_read(&v->vm->dm.mmio, run->mmio.phys_addr, run->mmio.data,
				 run->mmio.len);
		}
		break;
	case KVM_EXIT_HLT:
		/* Only reached without an in-kernel LAPIC; nothing can wake us. */
		METRIC_INC(metrics_vcpu.exit_hlt);
		log_error("vCPU %u: halted with interrupts off", v->index);
		vm_request_stop(v->vm, VM_STOP_ERROR);
		break;
	case KVM_EXIT_SHUTDOWN:
		METRIC_INC(metrics_vcpu.exit_shutdown);
		log_triple_fault(v);
		vm_request_stop(v->vm, VM_STOP_ERROR);
		break;
	case KVM_EXIT_SYSTEM_EVENT:
		METRIC_INC(metrics_vcpu.exit_system_event);
		switch (run->system_event.type) {
		case KVM_SYSTEM_EVENT_SHUTDOWN:
			vm_request_stop(v->vm, VM_STOP_POWEROFF);
			break;
		case KVM_SYSTEM_EVENT_RESET:
			vm_request_stop(v->vm, VM_STOP_REBOOT);
			break;
		default:
			log_error("vCPU %u: guest system event %u (crash)", v->index,
				  run->system_event.type);
			vm_request_stop(v->vm, VM_STOP_ERROR);
		}
		break;
	case KVM_EXIT_INTERNAL_ERROR:
		if (!handle_internal_error(v)) {
			METRIC_INC(metrics_vcpu.failures);
			vm_request_stop(v->vm, VM_STOP_ERROR);
		}
		break;
	case KVM_EXIT_FAIL_ENTRY:
		METRIC_INC(metrics_vcpu.failures);
		log_error("vCPU %u: KVM entry failed, hardware reason %#llx", v->index,
			  (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
		vm_request_stop(v->vm, VM_STOP_ERROR);
		break;
	case KVM_EXIT_INTR:
		break;
	default:
		METRIC_INC(metrics_vcpu.failures);
		log_error("vCPU %u: unexpected KVM exit reason %u", v->index, run->exit_reason);
		vm_request_stop(v->vm, VM_STOP_ERROR);
	}
}

/* Act on the exit KVM_RUN just returned with, with current_vcpu set for vcpu_request_exit(). */
static void handle_exit(struct vcpu *v)
{
	v->exits++;
	current_vcpu = v;
	handle_exit_reason(v);
	current_vcpu = NULL;
}

/* A KVM_RUN with immediate_exit completes a pending I/O or MMIO read into the registers (and,
 * on kvm_pvm hosts, nothing more) and returns EINTR at once: the state read next is then the
 * one the guest would see on its next instruction. */
static void complete_exit(struct vcpu *v)
{
	__atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_RELEASE);
	/* Completing may itself exit again (the next chunk of a string I/O): handle that exit as
	 * usual and complete again, a bounded number of times. */
	for (int i = 0; i < 64 && ioctl(v->fd, KVM_RUN, 0) == 0; i++)
		handle_exit(v);
	v->run->immediate_exit = 0;
}

/* A bus handler asked for the VM's exit hook (vcpu_request_exit): complete the exit, run it.
 * A request made while completing (a second doorbell in a string write) folds into this one. */
static void run_exit_hook(struct vcpu *v)
{
	struct vm *vm = v->vm;

	complete_exit(v);
	v->exit_requested = false;
	if (vm->vcpu_exit_hook)
		vm->vcpu_exit_hook(vm->vcpu_exit_ctx, v);
}

/* The VM is pausing (vm_pause): finish the exit in progress, park, run save and load tasks
 * while parked, and return when resumed or stopping. */
static void park(struct vcpu *v)
{
	complete_exit(v);
	/* Tell the guest kernel it was stopped by the host (no soft-lockup report for the
	 * pause); EINVAL when the guest does not use kvmclock. */
	if (ioctl(v->fd, KVM_KVMCLOCK_CTRL, 0) < 0 && errno != EINVAL)
		log_debug("vCPU %u: KVM_KVMCLOCK_CTRL: %s", v->index, strerror(errno));
	vcpu_pause_park(&v->vm->pause, v);
}

static void *vcpu_loop(struct vcpu *v);

static void *vcpu_main(void *arg)
{
	struct vcpu *v = arg;

	vcpu_loop(v);
	vcpu_pause_thread_exits(&v->vm->pause);
	return NULL;
}

static void *vcpu_loop(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	char name[16];
	int ret;

	snprintf(name, sizeof(name), "vcpu%u", v->index);
	log_set_thread(name);
	pthread_setname_np(pthread_self(), name); /* for ps/top; failure is harmless */
	/* Before the first KVM_RUN: no guest instruction runs on an unfiltered thread. */
	ret = seccomp_thread_install(SECCOMP_THREAD_VCPU, name);
	if (ret) {
		log_error("vCPU %u: cannot install its seccomp filter: %s", v->index,
			  strerror(-ret));
		vm_request_stop(v->vm, VM_STOP_ERROR);
		return NULL;
	}
	if (v->index == 0) {
		struct timespec ts;

		/* The monotonic clock too: a launcher that noted when it started this process
		 * measures the time before main() (dynamic loading) as well (bench/snapshot.py). */
		clock_gettime(CLOCK_MONOTONIC, &ts);
		log_info("vCPU 0: first KVM_RUN at %llu us since start (CLOCK_MONOTONIC %llu us)",
			 (unsigned long long)log_uptime_us(),
			 (unsigned long long)ts.tv_sec * 1000000ull +
				 (unsigned long long)ts.tv_nsec / 1000);
	}
	while (!stop_requested(v)) {
		if (vcpu_pause_requested(&v->vm->pause)) {
			park(v);
			continue;
		}
		/* After a pause, too: the exit that asked may have been completed by park(). */
		if (v->exit_requested) {
			run_exit_hook(v);
			continue;
		}
		if (ioctl(v->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				run->immediate_exit = 0;
				continue;
			}
			METRIC_INC(metrics_vcpu.failures);
			log_error("vCPU %u: KVM_RUN failed: %s", v->index, strerror(errno));
			vm_request_stop(v->vm, VM_STOP_ERROR);
			break;
		}
		handle_exit(v);
	}
	return NULL;
}

int vcpu_start(struct vcpu *v)
{
	int ret;

	/* Counted before the thread exists, so a pause never waits for a thread that has not
	 * started: it parks as soon as it runs. */
	vcpu_pause_thread_starting(&v->vm->pause);
	ret = pthread_create(&v->thread, NULL, vcpu_main, v);
	if (ret) {
		vcpu_pause_thread_exits(&v->vm->pause);
		return -ret;
	}
	v->started = true;
	return 0;
}

void vcpu_kick(struct vcpu *v)
{
	__atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_RELEASE);
	if (v->started && !pthread_equal(v->thread, pthread_self()))
		pthread_kill(v->thread, SIG_KICK);
}

void vcpu_join(struct vcpu *v)
{
	if (v->started)
		pthread_join(v->thread, NULL);
	v->started = false;
}

void vcpu_destroy(struct vcpu *v)
{
	if (v->run)
		munmap(v->run, (size_t)v->vm->run_size);
	if (v->fd >= 0)
		close(v->fd);
	if (v->stats_fd >= 0)
		close(v->stats_fd);
	free(v->msr_buf);
	free(v);
}
