#include "core/vm.h"

#include "arch/x86/layout.h"
#include "core/kvm_stats.h"
#include "core/seccomp.h"
#include "core/vcpu.h"
#include "snapshot/snap.h"
#include "util/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <fcntl.h>
#include <poll.h>
#include <semaphore.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

/* Addresses KVM needs for its own use below 4 GiB (three pages for the real-mode TSS, one for
 * the EPT identity map), above the IOAPIC/LAPIC and out of the MMIO window. */
#define KVM_TSS_ADDR	  0xfffbd000ull
#define KVM_IDENTITY_ADDR 0xfffbc000ull

/* Program the GSI wiring of layout.h into KVM: GSIs 0..15 to the 8259 pin of the same number
 * (IRQ 2 is the cascade), GSIs 0..23 to the IOAPIC pin layout_ioapic_pin() names.  The whole
 * table is replaced, so every line the guest may use is listed. */
static int set_gsi_routing(struct vm *vm)
{
	struct {
		struct kvm_irq_routing hdr;
		struct kvm_irq_routing_entry e[LAYOUT_PIC_LINES + LAYOUT_IOAPIC_PINS];
	} r;
	unsigned n = 0;

	memset(&r, 0, sizeof(r));
	for (unsigned gsi = 0; gsi < LAYOUT_IOAPIC_PINS; gsi++) {
		int pin = layout_ioapic_pin(gsi);

		if (gsi < LAYOUT_PIC_LINES && gsi != 2)
			r.e[n++] = (struct kvm_irq_routing_entry){
				.gsi = gsi,
				.type = KVM_IRQ_ROUTING_IRQCHIP,
				.u.irqchip = { .irqchip = gsi < 8 ? KVM_IRQCHIP_PIC_MASTER
								  : KVM_IRQCHIP_PIC_SLAVE,
					       .pin = gsi % 8 },
			};
		if (pin >= 0)
			r.e[n++] = (struct kvm_irq_routing_entry){
				.gsi = gsi,
				.type = KVM_IRQ_ROUTING_IRQCHIP,
				.u.irqchip = { .irqchip = KVM_IRQCHIP_IOAPIC,
					       .pin = (uint32_t)pin },
			};
	}
	r.hdr.nr = n;
	return ioctl(vm->vm_fd, KVM_SET_GSI_ROUTING, &r) < 0 ? -errno : 0;
}

/* An edge line: each write to l->fd pulses the GSI.  A level line: each write asserts the GSI
 * (KVM_IRQFD_FLAG_RESAMPLE) until the guest EOIs it; KVM then de-asserts it and signals
 * l->resample_fd, and the device manager re-asserts while the device's level is high. */
static int irq_bind(void *ctx, struct irq_line *l)
{
	struct vm *vm = ctx;
	struct kvm_irqfd req = { .fd = (uint32_t)l->fd, .gsi = l->gsi };

	if (l->level) {
		if (l->resample_fd < 0)
			return -EINVAL;
		req.flags = KVM_IRQFD_FLAG_RESAMPLE;
		req.resamplefd = (uint32_t)l->resample_fd;
	}
	return ioctl(vm->vm_fd, KVM_IRQFD, &req) < 0 ? -errno : 0;
}

static int ioeventfd(void *ctx, uint64_t addr, unsigned len, uint64_t datamatch, int fd,
		     bool assign)
{
	struct vm *vm = ctx;
	struct kvm_ioeventfd req = {
		.datamatch = datamatch,
		.addr = addr,
		.len = len,
		.fd = fd,
		.flags = KVM_IOEVENTFD_FLAG_DATAMATCH | (assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN),
	};

	return ioctl(vm->vm_fd, KVM_IOEVENTFD, &req) < 0 ? -errno : 0;
}

static int mem_slot(void *ctx, uint64_t gpa, void *hva, uint64_t size)
{
	return vm_add_mem_slot(ctx, gpa, hva, size);
}

int vm_add_mem_slot(struct vm *vm, uint64_t gpa, void *hva, uint64_t size)
{
	/* RAM has slots 0..gm.nr_regions-1 (set_memory); extra slots follow. */
	struct kvm_userspace_memory_region mr = {
		.slot = (uint32_t)(GMEM_MAX_REGIONS + vm->nr_extra_slots),
		.guest_phys_addr = gpa,
		.memory_size = size,
		.userspace_addr = (uint64_t)(uintptr_t)hva,
	};

	if (!size || gpa % 4096 || size % 4096 || (uintptr_t)hva % 4096 || gpa + size < gpa)
		return -EINVAL;
	for (int i = 0; i < vm->gm.nr_regions; i++)
		if (gpa < vm->gm.regions[i].gpa + vm->gm.regions[i].size &&
		    vm->gm.regions[i].gpa < gpa + size)
			return -EINVAL; /* KVM refuses overlapping slots too; say why first */
	if (vm->nr_extra_slots >= VM_MAX_EXTRA_SLOTS)
		return -ENOSPC;
	if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &mr) < 0)
		return -errno;
	vm->nr_extra_slots++;
	return 0;
}

static void power_cb(void *ctx, enum vm_stop_reason reason)
{
	struct vm *vm = ctx;

	if (vm->power_hook && vm->power_hook(vm->power_hook_ctx, reason))
		return;
	vm_request_stop(vm, reason);
}

static int get_supported_cpuid(struct vm *vm)
{
	/* 128 entries hold what KVM reports on today's CPUs (75 on an EPYC with AVX-512): one
	 * call, where each costs ~0.5 ms on kvm_pvm hosts even when it fails with E2BIG. */
	for (unsigned n = 128; n <= 4096; n *= 2) {
		struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(c->entries[0]));

		if (!c)
			return -ENOMEM;
		c->nent = n;
		if (ioctl(vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0) {
			vm->cpuid = c;
			return 0;
		}
		free(c);
		if (errno != E2BIG)
			return -errno;
	}
	return -E2BIG;
}

/* Dirty tracking: KVM's bitmap log (exact everywhere; the dirty ring loses entries on
 * kvm_pvm hosts, see docs/snapshots.md), with manual protection where KVM has it so that a
 * harvest re-protects only the pages it saw.  Before the memory slots exist. */
static int dirty_init(struct vm *vm)
{
	struct vm_dirty *d = &vm->dirty;
	uint64_t words;
	int ret;

	ret = gmem_track_dirty(&vm->gm);
	if (ret)
		return ret;
	d->nr_pages = vm->gm.nr_pages;
	words = gmem_bitmap_words(d->nr_pages);
	for (int c = 0; c < VM_DIRTY_NR; c++) {
		d->acc[c] = calloc(words, 8);
		if (!d->acc[c])
			return -ENOMEM;
	}
	d->scratch = calloc(words, 8);
	if (!d->scratch)
		return -ENOMEM;
	if (ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2) > 0) {
		/* Without KVM_DIRTY_LOG_INITIALLY_SET: the log starts empty, as a consumer expects
		 * (every page set would make the first diff snapshot a full one). */
		struct kvm_enable_cap cap = { .cap = KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2,
					      .args = { KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE } };

		d->manual = ioctl(vm->vm_fd, KVM_ENABLE_CAP, &cap) == 0;
	}
	d->on = true;
	return 0;
}

int vm_dirty_sync(struct vm *vm)
{
	struct vm_dirty *d = &vm->dirty;
	uint64_t t0 = log_uptime_us(), words, base = 0;

	if (!d->on)
		return -ENOTSUP;
	words = gmem_bitmap_words(d->nr_pages);
	memset(d->scratch, 0, words * 8);
	for (int i = 0; i < vm->gm.nr_regions; i++) {
		uint64_t pages = vm->gm.regions[i].size >> GMEM_PAGE_SHIFT;
		/* Region 0 ends at the MMIO hole (3 GiB) or the end of RAM; region 1 only exists
		 * after a full region 0, so each slot's bitmap starts on a 64-page boundary. */
		struct kvm_dirty_log log = { .slot = (uint32_t)i,
					     .dirty_bitmap = d->scratch + base / 64 };

		if (ioctl(vm->vm_fd, KVM_GET_DIRTY_LOG, &log) < 0)
			return -errno;
		if (d->manual) {
			struct kvm_clear_dirty_log clr = { .slot = (uint32_t)i,
							   .num_pages = (uint32_t)pages,
							   .first_page = 0,
							   .dirty_bitmap = d->scratch + base / 64 };

			if (ioctl(vm->vm_fd, KVM_CLEAR_DIRTY_LOG, &clr) < 0)
				return -errno;
		}
		base += pages;
	}
	gmem_take_vmm_dirty(&vm->gm, d->scratch);
	for (int c = 0; c < VM_DIRTY_NR; c++)
		for (uint64_t w = 0; w < words; w++)
			d->acc[c][w] |= d->scratch[w];
	d->last_sync_us = log_uptime_us() - t0;
	return 0;
}

void vm_dirty_clear(struct vm *vm, enum vm_dirty_consumer c)
{
	if (vm->dirty.on)
		memset(vm->dirty.acc[c], 0, gmem_bitmap_words(vm->dirty.nr_pages) * 8);
}

static int set_memory(struct vm *vm)
{
	for (int i = 0; i < vm->gm.nr_regions; i++) {
		const struct gmem_region *r = &vm->gm.regions[i];
		struct kvm_userspace_memory_region mr = {
			.slot = (uint32_t)i,
			.flags = vm->dirty.on ? KVM_MEM_LOG_DIRTY_PAGES : 0,
			.guest_phys_addr = r->gpa,
			.memory_size = r->size,
			.userspace_addr = (uint64_t)(uintptr_t)r->hva,
		};

		if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &mr) < 0)
			return -errno;
	}
	return 0;
}

int vm_remap_memory(struct vm *vm)
{
	uint64_t t0 = log_uptime_us();
	int ret;

	for (int i = 0; i < vm->gm.nr_regions; i++) {
		struct kvm_userspace_memory_region mr = { .slot = (uint32_t)i };

		if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &mr) < 0)
			return -errno;
	}
	ret = set_memory(vm);
	vm->remap_us = log_uptime_us() - t0;
	return ret;
}

int vm_create(struct vm *vm, const struct vm_config *cfg, const char **why)
{
	static const struct {
		int cap;
		const char *name;
	} required[] = {
		{ KVM_CAP_IRQCHIP, "in-kernel irqchip" },
		{ KVM_CAP_IOEVENTFD, "ioeventfd" },
		{ KVM_CAP_IRQFD, "irqfd" },
		{ KVM_CAP_IRQFD_RESAMPLE, "level-triggered irqfd (resample)" },
		{ KVM_CAP_USER_MEMORY, "user memory" },
		{ KVM_CAP_IMMEDIATE_EXIT, "immediate_exit" },
		{ KVM_CAP_PIT2, "in-kernel PIT" },
		{ KVM_CAP_IRQ_ROUTING, "GSI routing" },
	};
	struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };
	struct devmgr_hooks hooks = {
		.ctx = vm, .irq_bind = irq_bind, .ioeventfd = ioeventfd, .mem_slot = mem_slot
	};
	uint64_t t;
	int ret;

	memset(vm, 0, sizeof(*vm));
	vm->kvm_fd = vm->vm_fd = vm->stop_fd = vm->sig_fd = vm->stats_fd = -1;
	vm->ev.epfd = vm->ev.stop_fd = -1;
	vm->cfg = *cfg;
	vm->power = (struct power_sink){ .request = power_cb, .ctx = vm };

	vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0) {
		ret = -errno;
		*why = "cannot open /dev/kvm";
		return ret;
	}
	if (ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0) != KVM_API_VERSION) {
		*why = "unsupported KVM API version";
		return -ENOTSUP;
	}
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0) {
		*why = "KVM_CREATE_VM failed";
		return -errno;
	}
	vm->stats_fd = kvm_stats_open(vm->vm_fd); /* optional: the kvm_stats command */
	for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
		if (ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, required[i].cap) <= 0) {
			log_error("KVM lacks %s", required[i].name);
			*why = "KVM lacks a required capability";
			return -ENOTSUP;
		}
	}
	/* Guest RAM's slots before the irqchip: on kvm_pvm hosts a VM's first slot change after
	 * KVM_CREATE_IRQCHIP costs ~7 ms (each later one too), before it ~0.1-0.2 ms (measured
	 * 2026-12-02 with a probe: KVM_CREATE_VM, then the slot, then the irqchip). */
	ret = vcpu_pause_init(&vm->pause, &vm->stop_reason);
	if (ret) {
		*why = "cannot create the pause lock";
		return ret;
	}
	ret = cfg->mem_fd >= 0 ? gmem_map_file(&vm->gm, cfg->mem_bytes, cfg->mem_fd)
			       : gmem_alloc_flags(&vm->gm, cfg->mem_bytes, cfg->mem_flags);
	if (ret) {
		*why = ret == -ENOMEM && (cfg->mem_flags & GMEM_HUGETLB)
			       ? "cannot reserve the guest's huge pages"
		       : cfg->mem_flags & GMEM_UFFD
			       ? "cannot register guest memory with userfaultfd"
			       : "cannot allocate guest memory";
		return ret;
	}
	if (cfg->track_dirty) {
		ret = dirty_init(vm);
		if (ret) {
			*why = "cannot set up dirty-page tracking";
			return ret;
		}
	}
	t = log_uptime_us();
	ret = set_memory(vm);
	/* Reported apart from the VMM's own work (bench/snapshot.sh). */
	vm->memslot_us = log_uptime_us() - t;
	if (ret) {
		*why = "KVM_SET_USER_MEMORY_REGION failed";
		return ret;
	}
	vm->run_size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (vm->run_size <= 0) {
		*why = "KVM_GET_VCPU_MMAP_SIZE failed";
		return -EINVAL;
	}
	ret = get_supported_cpuid(vm);
	if (ret) {
		*why = "KVM_GET_SUPPORTED_CPUID failed";
		return ret;
	}
	ret = vcpu_state_msr_list(vm->kvm_fd, vm->msr_index, VCPU_STATE_MAX_MSRS);
	if (ret < 0) {
		*why = "KVM_GET_MSR_INDEX_LIST failed";
		return ret;
	}
	vm->nr_msr_index = (unsigned)ret;
	vm->xsave_size = ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
	if (vm->xsave_size < (int)sizeof(struct kvm_xsave))
		vm->xsave_size = (int)sizeof(struct kvm_xsave);
	vm->has_sregs2 = ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_SREGS2) > 0;
	if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)KVM_TSS_ADDR) < 0 ||
	    ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &(uint64_t){ KVM_IDENTITY_ADDR }) < 0) {
		*why = "cannot set KVM's TSS/identity-map addresses";
		return -errno;
	}
	if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0) {
		*why = "KVM_CREATE_IRQCHIP failed";
		return -errno;
	}
	ret = set_gsi_routing(vm);
	if (ret) {
		*why = "KVM_SET_GSI_ROUTING failed";
		return ret;
	}
	if (ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0) {
		*why = "KVM_CREATE_PIT2 failed";
		return -errno;
	}
	/* Emulation failures then report the instruction bytes (used in the error line). */
	if (ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_EXIT_ON_EMULATION_FAILURE) > 0) {
		struct kvm_enable_cap cap = { .cap = KVM_CAP_EXIT_ON_EMULATION_FAILURE,
					      .args = { 1 } };

		if (ioctl(vm->vm_fd, KVM_ENABLE_CAP, &cap) < 0)
			log_debug("KVM_CAP_EXIT_ON_EMULATION_FAILURE: %s", strerror(errno));
	}
	vm->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (vm->stop_fd < 0) {
		*why = "eventfd failed";
		return -errno;
	}
	ret = evloop_init(&vm->ev);
	if (ret) {
		*why = "cannot create the event loop";
		return ret;
	}
	devmgr_init(&vm->dm, &vm->gm, &vm->ev, &hooks);
	ret = vcpu_init_signals();
	if (ret) {
		*why = "cannot install the vCPU kick signal handler";
		return ret;
	}
	return 0;
}

int vm_setup_vcpus(struct vm *vm, uint64_t entry)
{
	for (unsigned i = 0; i < vm->cfg.nr_vcpus; i++) {
		int ret = vcpu_create(vm, i, entry, &vm->vcpus[i]);

		if (ret) {
			log_error("vCPU %u: %s", i, strerror(-ret));
			return ret;
		}
	}
	return 0;
}

void vm_request_stop(struct vm *vm, enum vm_stop_reason reason)
{
	enum vm_stop_reason none = VM_STOP_NONE;
	uint64_t one = 1;
	ssize_t r;

	if (!__atomic_compare_exchange_n(&vm->stop_reason, &none, reason, false, __ATOMIC_ACQ_REL,
					 __ATOMIC_ACQUIRE))
		return;
	r = write(vm->stop_fd, &one, sizeof(one));
	(void)r;
	for (unsigned i = 0; i < vm->cfg.nr_vcpus; i++)
		if (vm->vcpus[i])
			vcpu_kick(vm->vcpus[i]);
}

/* The signals that stop the VM gracefully (the first one) or at once (the next). */
static const int stop_signals[] = { SIGTERM, SIGINT, SIGHUP };
static void (*force_hook)(void);

static void force_exit(int sig)
{
	static const char msg[] = "ignition: second stop signal: exiting without cleanup\n";
	ssize_t r;

	if (force_hook)
		force_hook();
	r = write(STDERR_FILENO, msg, sizeof(msg) - 1);
	(void)r;
	/* PID 1 of a PID namespace (--new-ns pid) ignores its own default-action signals. */
	if (getpid() == 1)
		_exit(128 + sig);
	/* SA_RESETHAND put the default action back: the process ends by this signal once the
	 * handler returns. */
	raise(sig);
}

static void stop_signal_set(sigset_t *set)
{
	sigemptyset(set);
	for (size_t i = 0; i < sizeof(stop_signals) / sizeof(stop_signals[0]); i++)
		sigaddset(set, stop_signals[i]);
}

int vm_catch_stop_signals(struct vm *vm, void (*on_force)(void))
{
	struct sigaction sa;
	sigset_t set;
	int ret;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = force_exit;
	sa.sa_flags = SA_RESETHAND;
	sigemptyset(&sa.sa_mask);
	force_hook = on_force;
	for (size_t i = 0; i < sizeof(stop_signals) / sizeof(stop_signals[0]); i++)
		if (sigaction(stop_signals[i], &sa, NULL) < 0)
			return -errno;
	stop_signal_set(&set);
	ret = pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (ret)
		return -ret;
	vm->sig_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	return vm->sig_fd < 0 ? -errno : 0;
}

/* Wait for a stop request; a stop signal is one (VM_STOP_SIGNAL). */
static void wait_for_stop(struct vm *vm)
{
	struct pollfd pfd[2] = { { .fd = vm->stop_fd, .events = POLLIN },
				 { .fd = vm->sig_fd, .events = POLLIN } };
	struct signalfd_siginfo si;
	sigset_t set;
	int ret;

	for (;;) {
		if (poll(pfd, vm->sig_fd >= 0 ? 2 : 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_error("waiting for the VM to stop: %s", strerror(errno));
			vm_request_stop(vm, VM_STOP_ERROR);
			break;
		}
		if ((pfd[1].revents & POLLIN) && read(vm->sig_fd, &si, sizeof(si)) == sizeof(si)) {
			vm->stop_signal = (int)si.ssi_signo;
			log_info("stop signal %d from pid %u", vm->stop_signal, si.ssi_pid);
			vm_request_stop(vm, VM_STOP_SIGNAL);
		}
		if (pfd[0].revents & POLLIN)
			break;
	}
	if (vm->sig_fd < 0)
		return;
	/* The stop is under way: from here a second signal ends the process at once (only this
	 * thread unblocks them, so it is the one that takes them). */
	stop_signal_set(&set);
	ret = pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	if (ret)
		log_warn("cannot unblock the stop signals: %s", strerror(ret));
}

static void *evloop_main(void *arg)
{
	struct vm *vm = arg;
	sem_t *ready = vm->evloop_sem;
	int ret;

	log_set_thread("evloop");
	pthread_setname_np(pthread_self(), "evloop"); /* for ps/top; failure is harmless */
	ret = seccomp_thread_install(SECCOMP_THREAD_EVLOOP, "evloop");
	vm->evloop_ready = ret;
	sem_post(ready);
	if (ret)
		return NULL;
	ret = evloop_run(&vm->ev);
	if (ret) {
		log_error("event loop failed: %s", strerror(-ret));
		vm_request_stop(vm, VM_STOP_ERROR);
	}
	return NULL;
}

enum vm_stop_reason vm_run(struct vm *vm)
{
	sem_t ready;
	int ret;

	if (sem_init(&ready, 0, 0) < 0) {
		log_error("cannot create a semaphore: %s", strerror(errno));
		return VM_STOP_ERROR;
	}
	vm->evloop_sem = &ready;
	ret = pthread_create(&vm->evloop_thread, NULL, evloop_main, vm);
	if (ret) {
		log_error("cannot start the event loop thread: %s", strerror(ret));
		sem_destroy(&ready);
		return VM_STOP_ERROR;
	}
	vm->evloop_running = true;
	/* No vCPU runs before the event loop (which does the guest's queue work) is filtered. */
	while (sem_wait(&ready) < 0 && errno == EINTR)
		;
	if (vm->evloop_ready) {
		log_error("event loop: cannot install its seccomp filter: %s",
			  strerror(-vm->evloop_ready));
		vm_request_stop(vm, VM_STOP_ERROR);
	}
	for (unsigned i = 0; i < vm->cfg.nr_vcpus && !vm->evloop_ready; i++) {
		ret = vcpu_start(vm->vcpus[i]);
		if (ret) {
			log_error("cannot start vCPU %u: %s", i, strerror(-ret));
			vm_request_stop(vm, VM_STOP_ERROR);
			break;
		}
	}
	/* Every thread is started: the main thread only waits and tears down from here. */
	ret = seccomp_thread_install(SECCOMP_THREAD_MAIN, "main");
	if (ret) {
		log_error("main thread: cannot install its seccomp filter: %s", strerror(-ret));
		vm_request_stop(vm, VM_STOP_ERROR);
	}
	wait_for_stop(vm);
	/* Parked vCPUs wait on the pause condition: wake them to see the stop. */
	vcpu_pause_wake(&vm->pause);
	for (unsigned i = 0; i < vm->cfg.nr_vcpus; i++) {
		if (!vm->vcpus[i])
			continue;
		vcpu_kick(vm->vcpus[i]);
		vcpu_join(vm->vcpus[i]);
	}
	evloop_stop(&vm->ev);
	pthread_join(vm->evloop_thread, NULL);
	vm->evloop_running = false;
	sem_destroy(&ready);
	vm->evloop_sem = NULL;
	return __atomic_load_n(&vm->stop_reason, __ATOMIC_ACQUIRE);
}

void vm_destroy(struct vm *vm)
{
	for (unsigned i = 0; i < VM_MAX_VCPUS; i++) {
		if (vm->vcpus[i])
			vcpu_destroy(vm->vcpus[i]);
		vm->vcpus[i] = NULL;
	}
	devmgr_destroy(&vm->dm);
	if (vm->ev.epfd >= 0)
		evloop_destroy(&vm->ev);
	gmem_free(&vm->gm);
	for (int c = 0; c < VM_DIRTY_NR; c++)
		free(vm->dirty.acc[c]);
	free(vm->dirty.scratch);
	free(vm->cpuid);
	vm->cpuid = NULL;
	if (vm->stop_fd >= 0)
		close(vm->stop_fd);
	if (vm->sig_fd >= 0)
		close(vm->sig_fd);
	if (vm->stats_fd >= 0)
		close(vm->stats_fd);
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	vm->stop_fd = vm->sig_fd = vm->vm_fd = vm->kvm_fd = vm->stats_fd = -1;
	vcpu_pause_destroy(&vm->pause);
}

static void kick_all(void *ctx)
{
	struct vm *vm = ctx;

	for (unsigned i = 0; i < vm->cfg.nr_vcpus; i++)
		if (vm->vcpus[i])
			vcpu_kick(vm->vcpus[i]);
}

int vm_pause(struct vm *vm)
{
	return vcpu_pause_all(&vm->pause, kick_all, vm);
}

void vm_pause_request(struct vm *vm)
{
	vcpu_pause_request(&vm->pause);
}

int vm_wait_paused(struct vm *vm)
{
	return vcpu_pause_wait(&vm->pause);
}

void vm_resume(struct vm *vm)
{
	vcpu_pause_resume(&vm->pause);
}

void vm_set_vcpu_exit_hook(struct vm *vm, void (*fn)(void *ctx, struct vcpu *v), void *ctx)
{
	vm->vcpu_exit_ctx = ctx;
	vm->vcpu_exit_hook = fn;
}

bool vm_paused(struct vm *vm)
{
	return vcpu_pause_requested(&vm->pause);
}

int vm_save_vcpus(struct vm *vm, struct vcpu_state *out)
{
	if (vcpu_pause_threads(&vm->pause))
		return vcpu_pause_task(&vm->pause, out, false, vm->cfg.nr_vcpus);
	/* Before vm_run (a checkpoint of a VM just restored): read from this thread. */
	for (unsigned i = 0; i < vm->cfg.nr_vcpus; i++) {
		int ret = vcpu_state_get(vm->vcpus[i], &out[i]);

		if (ret)
			return ret;
	}
	return 0;
}

int vm_load_vcpus(struct vm *vm, const struct vcpu_state *in)
{
	if (vcpu_pause_threads(&vm->pause)) /* the states are only read (vcpu_state_set) */
		return vcpu_pause_task(&vm->pause, (struct vcpu_state *)(uintptr_t)in, true,
				       vm->cfg.nr_vcpus);
	for (unsigned i = 0; i < vm->cfg.nr_vcpus; i++) {
		int ret = vcpu_state_set(vm->vcpus[i], &in[i]);

		if (ret) {
			log_error("vCPU %u: cannot load its state: %s", i, strerror(-ret));
			return ret;
		}
	}
	return 0;
}

#define IRQCHIP_STATE_VERSION 1
#define PIT_STATE_VERSION     1
#define CLOCK_STATE_VERSION   1

static void put_pic(struct snap_writer *w, const struct kvm_pic_state *p)
{
	const uint8_t f[] = { p->last_irr,
			      p->irr,
			      p->imr,
			      p->isr,
			      p->priority_add,
			      p->irq_base,
			      p->read_reg_select,
			      p->poll,
			      p->special_mask,
			      p->init_state,
			      p->auto_eoi,
			      p->rotate_on_auto_eoi,
			      p->special_fully_nested_mode,
			      p->init4,
			      p->elcr,
			      p->elcr_mask };

	snap_put_bytes(w, f, sizeof(f));
}

static void get_pic(struct snap_reader *r, struct kvm_pic_state *p)
{
	uint8_t f[16];

	snap_get_bytes(r, f, sizeof(f));
	*p = (struct kvm_pic_state){
		.last_irr = f[0],
		.irr = f[1],
		.imr = f[2],
		.isr = f[3],
		.priority_add = f[4],
		.irq_base = f[5],
		.read_reg_select = f[6],
		.poll = f[7],
		.special_mask = f[8],
		.init_state = f[9],
		.auto_eoi = f[10],
		.rotate_on_auto_eoi = f[11],
		.special_fully_nested_mode = f[12],
		.init4 = f[13],
		.elcr = f[14],
		.elcr_mask = f[15],
	};
	if (p->priority_add > 7 || p->init_state > 3)
		snap_fail(r);
}

/* The host's wall clock in ns, the unit of kvm_clock_data.realtime. */
static uint64_t realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int vm_save_state(struct vm *vm, struct snap_writer *w)
{
	struct kvm_irqchip chip[3];
	struct kvm_pit_state2 pit;
	struct kvm_clock_data clk;

	for (uint32_t i = 0; i < 3; i++) {
		memset(&chip[i], 0, sizeof(chip[i]));
		chip[i].chip_id = i;
		if (ioctl(vm->vm_fd, KVM_GET_IRQCHIP, &chip[i]) < 0)
			return -errno;
	}
	memset(&pit, 0, sizeof(pit));
	memset(&clk, 0, sizeof(clk));
	if (ioctl(vm->vm_fd, KVM_GET_PIT2, &pit) < 0 || ioctl(vm->vm_fd, KVM_GET_CLOCK, &clk) < 0)
		return -errno;
	/* KVM pairs kvmclock with the host's wall clock only when the host clocksource is the
	 * TSC (not inside tests/nested, for one): then the pairing is ours, taken right after,
	 * and vm_restore_state moves the clock forward itself. */
	if (!(clk.flags & KVM_CLOCK_REALTIME))
		clk.realtime = realtime_ns();
	snap_rec_begin(w, SNAP_REC_IRQCHIP, IRQCHIP_STATE_VERSION, "irqchip");
	put_pic(w, &chip[0].chip.pic);
	put_pic(w, &chip[1].chip.pic);
	snap_put_u64(w, chip[2].chip.ioapic.base_address);
	snap_put_u32(w, chip[2].chip.ioapic.ioregsel);
	snap_put_u32(w, chip[2].chip.ioapic.id);
	snap_put_u32(w, chip[2].chip.ioapic.irr);
	for (int i = 0; i < KVM_IOAPIC_NUM_PINS; i++)
		snap_put_u64(w, chip[2].chip.ioapic.redirtbl[i].bits);
	snap_rec_begin(w, SNAP_REC_PIT, PIT_STATE_VERSION, "pit");
	for (int i = 0; i < 3; i++) {
		const struct kvm_pit_channel_state *c = &pit.channels[i];

		snap_put_u32(w, c->count);
		snap_put_u16(w, c->latched_count);
		snap_put_u8(w, c->count_latched);
		snap_put_u8(w, c->status_latched);
		snap_put_u8(w, c->status);
		snap_put_u8(w, c->read_state);
		snap_put_u8(w, c->write_state);
		snap_put_u8(w, c->write_latch);
		snap_put_u8(w, c->rw_mode);
		snap_put_u8(w, c->mode);
		snap_put_u8(w, c->bcd);
		snap_put_u8(w, c->gate);
		snap_put_u64(w, (uint64_t)c->count_load_time);
	}
	snap_put_u32(w, pit.flags);
	snap_rec_begin(w, SNAP_REC_CLOCK, CLOCK_STATE_VERSION, "kvmclock");
	snap_put_u64(w, clk.clock);
	snap_put_u32(w, clk.flags);
	snap_put_u64(w, clk.realtime);
	return w->err;
}

int vm_restore_state(struct vm *vm, const struct snap_file *f, char *why, size_t why_size)
{
	struct kvm_irqchip chip[3];
	struct kvm_pit_state2 pit;
	struct kvm_clock_data clk;
	struct snap_reader r;

	memset(chip, 0, sizeof(chip));
	if (snap_file_find(f, SNAP_REC_IRQCHIP, "irqchip", &r) ||
	    r.version != IRQCHIP_STATE_VERSION)
		return err_set(-EINVAL, why, why_size,
			       "the irqchip record is missing or of another version");
	for (uint32_t i = 0; i < 2; i++) {
		chip[i].chip_id = i;
		get_pic(&r, &chip[i].chip.pic);
	}
	chip[2].chip_id = KVM_IRQCHIP_IOAPIC;
	chip[2].chip.ioapic.base_address = snap_get_u64(&r);
	chip[2].chip.ioapic.ioregsel = snap_get_u32(&r);
	chip[2].chip.ioapic.id = snap_get_u32(&r);
	chip[2].chip.ioapic.irr = snap_get_u32(&r);
	for (int i = 0; i < KVM_IOAPIC_NUM_PINS; i++)
		chip[2].chip.ioapic.redirtbl[i].bits = snap_get_u64(&r);
	if (snap_reader_done(&r) || chip[2].chip.ioapic.base_address != LAYOUT_IOAPIC_ADDR)
		return err_set(-EINVAL, why, why_size, "the irqchip record is malformed");
	memset(&pit, 0, sizeof(pit));
	if (snap_file_find(f, SNAP_REC_PIT, "pit", &r) || r.version != PIT_STATE_VERSION)
		return err_set(-EINVAL, why, why_size,
			       "the PIT record is missing or of another version");
	for (int i = 0; i < 3; i++) {
		struct kvm_pit_channel_state *c = &pit.channels[i];

		c->count = snap_get_u32(&r);
		c->latched_count = snap_get_u16(&r);
		c->count_latched = snap_get_u8(&r);
		c->status_latched = snap_get_u8(&r);
		c->status = snap_get_u8(&r);
		c->read_state = snap_get_u8(&r);
		c->write_state = snap_get_u8(&r);
		c->write_latch = snap_get_u8(&r);
		c->rw_mode = snap_get_u8(&r);
		c->mode = snap_get_u8(&r);
		c->bcd = snap_get_u8(&r);
		c->gate = snap_get_u8(&r);
		c->count_load_time = (int64_t)snap_get_u64(&r);
		/* KVM leaves an unprogrammed channel at mode 0xff. */
		if (c->count > 0x10000 || (c->mode > 7 && c->mode != 0xff) || c->rw_mode > 3 ||
		    c->bcd > 1 || c->gate > 1)
			snap_fail(&r);
	}
	pit.flags = snap_get_u32(&r);
	if (snap_reader_done(&r))
		return err_set(-EINVAL, why, why_size, "the PIT record is malformed");
	memset(&clk, 0, sizeof(clk));
	if (snap_file_find(f, SNAP_REC_CLOCK, "kvmclock", &r) || r.version != CLOCK_STATE_VERSION)
		return err_set(-EINVAL, why, why_size,
			       "the clock record is missing or of another version");
	clk.clock = snap_get_u64(&r);
	clk.flags = snap_get_u32(&r);
	clk.realtime = snap_get_u64(&r);
	if (snap_reader_done(&r))
		return err_set(-EINVAL, why, why_size, "the clock record is malformed");
	for (int i = 0; i < 3; i++)
		if (ioctl(vm->vm_fd, KVM_SET_IRQCHIP, &chip[i]) < 0)
			return err_set(-EINVAL, why, why_size, "KVM_SET_IRQCHIP: %s",
				       strerror(errno));
	if (ioctl(vm->vm_fd, KVM_SET_PIT2, &pit) < 0)
		return err_set(-EINVAL, why, why_size, "KVM_SET_PIT2: %s", strerror(errno));
	/* With KVM_CLOCK_REALTIME KVM adds the wall-clock time elapsed since `realtime` (like
	 * Firecracker's clock_realtime): the restored guest's clock reads now, and its
	 * monotonic time moves forward, never back.  A snapshot without the flag holds our own
	 * pairing (vm_save_state; 0 in snapshots older than it): the same sum is done here.
	 * clock_as_saved: the clock resumes where it stopped. */
	if (vm->clock_as_saved) {
		clk.flags = 0;
	} else if (clk.flags & KVM_CLOCK_REALTIME) {
		clk.flags = KVM_CLOCK_REALTIME;
	} else {
		uint64_t now = realtime_ns();

		if (clk.realtime && now > clk.realtime)
			clk.clock += now - clk.realtime;
		clk.flags = 0;
	}
	if (ioctl(vm->vm_fd, KVM_SET_CLOCK, &clk) < 0)
		return err_set(-EINVAL, why, why_size, "KVM_SET_CLOCK: %s", strerror(errno));
	return 0;
}
