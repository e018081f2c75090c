/* The VM: KVM file descriptors, guest memory, in-kernel irqchip, the device manager, the event
 * loop and the vCPU threads.  The only place (with vcpu.c) that issues KVM ioctls. */
#ifndef IGNITION_CORE_VM_H
#define IGNITION_CORE_VM_H

#include "arch/x86/cpuid.h"
#include "core/devmgr.h"
#include "core/evloop.h"
#include "core/gmem.h"
#include "core/power.h"
#include "core/vcpu_pause.h"
#include "core/vcpu_state.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define VM_MAX_VCPUS 32
/* Memory slots besides RAM (vm_add_mem_slot): the fuzz device's two windows. */
#define VM_MAX_EXTRA_SLOTS 4

struct vcpu;
struct snap_writer;
struct snap_file;

struct vm_config {
	uint64_t mem_bytes;
	unsigned nr_vcpus;
	enum cpu_template cpu_template; /* resolved (never AUTO) */
	int mem_fd;			/* >= 0: guest RAM maps this file (gmem_map_file) */
	unsigned mem_flags;		/* else: GMEM_HUGETLB, GMEM_UFFD (gmem_alloc_flags) */
	bool track_dirty;		/* log the pages the guest and the VMM write */
};

/* Who reads the dirty log.  Each consumer has its own bitmap of the pages written since it
 * last cleared it: a diff snapshot and an in-place reset each see every write, whichever
 * harvested it from KVM. */
enum vm_dirty_consumer { VM_DIRTY_SNAPSHOT, VM_DIRTY_RESET, VM_DIRTY_NR };

struct vm_dirty {
	bool on;
	bool manual;		    /* KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2: GET then CLEAR */
	uint64_t nr_pages;	    /* of RAM, numbered by RAM offset */
	uint64_t *acc[VM_DIRTY_NR]; /* gmem_bitmap_words(nr_pages) words each */
	uint64_t *scratch;	    /* one harvest */
	uint64_t last_sync_us;	    /* how long the last vm_dirty_sync took */
};

struct vm {
	int kvm_fd;
	int vm_fd;
	int stats_fd; /* KVM_GET_STATS_FD of vm_fd, -1 without (core/kvm_stats.h) */
	int run_size; /* size of each vCPU's kvm_run mapping */
	struct vm_config cfg;
	struct gmem gm;
	struct evloop ev;
	struct devmgr dm;
	struct power_sink power;  /* devices stop the VM through this */
	struct kvm_cpuid2 *cpuid; /* KVM_GET_SUPPORTED_CPUID, before per-vCPU fixups */
	struct vcpu *vcpus[VM_MAX_VCPUS];
	pthread_t evloop_thread;
	bool evloop_running;
	int stop_fd;			 /* eventfd: written once when the VM must stop */
	enum vm_stop_reason stop_reason; /* first reason wins */
	int sig_fd;			 /* signalfd for SIGTERM/SIGINT/SIGHUP, or -1 */
	int stop_signal;		 /* the signal that stopped the VM (VM_STOP_SIGNAL) */
	int evloop_ready;		 /* evloop thread: 0 or -errno of its filter install */
	void *evloop_sem;		 /* sem_t the evloop thread posts once filtered */
	/* What a vCPU snapshot needs from this host, read once at creation. */
	uint32_t msr_index[VCPU_STATE_MAX_MSRS];
	unsigned nr_msr_index;
	int xsave_size;	     /* KVM_CAP_XSAVE2 (>= 4096), or 4096 */
	uint64_t memslot_us; /* how long KVM_SET_USER_MEMORY_REGION took (vm_create) */
	uint64_t remap_us;   /* how long the last vm_remap_memory took */
	bool has_sregs2;
	struct vm_dirty dirty;	 /* cfg.track_dirty */
	struct vcpu_pause pause; /* the pause rendezvous with the vCPU threads (vcpu_pause.h) */
	unsigned nr_extra_slots; /* vm_add_mem_slot: slots GMEM_MAX_REGIONS.. */
	/* vcpu_request_exit(): run on the vCPU's thread once its current exit is complete. */
	void (*vcpu_exit_hook)(void *ctx, struct vcpu *v);
	void *vcpu_exit_ctx;
	/* A guest power-off or reset (the devices' power sink): true if the hook handled it
	 * and the VM must not stop (the snapshot fuzzer turns a guest panic into a crash and
	 * resets the VM).  Any thread; set before vm_run. */
	bool (*power_hook)(void *ctx, enum vm_stop_reason reason);
	void *power_hook_ctx;
	/* vm_restore_state loads kvmclock as saved, without the wall time elapsed since: the
	 * guest sees no time pass (the snapshot fuzzer's resets: every run starts at the same
	 * guest time, and the kernel has no timers to catch up on). */
	bool clock_as_saved;
};

/* Open /dev/kvm, create the VM, its memory, irqchip, event loop and device manager.
 * On failure *why names the failing step for the user. */
int vm_create(struct vm *vm, const struct vm_config *cfg, const char **why)
	__attribute__((warn_unused_result));
/* Create and configure the vCPUs; vCPU 0 enters the kernel at `entry` (64-bit). */
int vm_setup_vcpus(struct vm *vm, uint64_t entry) __attribute__((warn_unused_result));
/* Turn SIGTERM, SIGINT and SIGHUP into a graceful stop (VM_STOP_SIGNAL): they are blocked in
 * the calling (main) thread, and so in every thread vm_run() starts, and read by vm_run()
 * through a signalfd.  Once the stop is under way a second one runs on_force (async-signal-
 * safe, e.g. console_restore) and ends the process by that signal.  Call on the main thread
 * after vm_create() and before any other thread exists.  0 or -errno. */
int vm_catch_stop_signals(struct vm *vm, void (*on_force)(void))
	__attribute__((warn_unused_result));
/* Start the event loop and vCPU threads, wait for a stop request, stop everything.  With
 * seccomp filters built (core/seccomp.h) each thread installs its own before the guest runs:
 * the event loop before any vCPU starts, each vCPU before its first KVM_RUN, the main thread
 * once all are started.  Returns the stop reason. */
enum vm_stop_reason vm_run(struct vm *vm);
/* Ask the VM to stop (any thread; first reason wins). */
void vm_request_stop(struct vm *vm, enum vm_stop_reason reason);
/* Stop every vCPU at a consistent point: each completes its pending I/O exit (a KVM_RUN with
 * immediate_exit), tells the guest kernel it was paused (KVM_KVMCLOCK_CTRL) and parks.  Returns
 * once all are parked: 0, -EALREADY if already paused, -ESHUTDOWN if the VM is stopping.  Not
 * from a vCPU thread. */
int vm_pause(struct vm *vm) __attribute__((warn_unused_result));
/* Ask for a pause without waiting for it: from a vCPU thread (its exit hook or a bus
 * handler), which parks once it returns to its loop.  vm_wait_paused() on another thread
 * then waits until every vCPU is parked: 0, -ESHUTDOWN if the VM is stopping, -EAGAIN if
 * it was resumed meanwhile. */
void vm_pause_request(struct vm *vm);
int vm_wait_paused(struct vm *vm) __attribute__((warn_unused_result));
/* Let parked vCPUs run again (no-op unless paused). */
void vm_resume(struct vm *vm);
bool vm_paused(struct vm *vm);
/* With the VM paused: every vCPU reads its own state on its own thread into out[index]
 * (cfg.nr_vcpus entries).  0 or the first vCPU's -errno. */
int vm_save_vcpus(struct vm *vm, struct vcpu_state *out) __attribute__((warn_unused_result));
/* Load vCPU states: before vm_run (restore) from this thread, or with the VM paused (an
 * in-place reset) each vCPU on its own thread.  in[index] for each vCPU; never CPUID (KVM
 * refuses KVM_SET_CPUID2 after the first run). */
int vm_load_vcpus(struct vm *vm, const struct vcpu_state *in) __attribute__((warn_unused_result));
/* Append the VM-wide KVM state: both PICs and the IOAPIC, the PIT, kvmclock. */
int vm_save_state(struct vm *vm, struct snap_writer *w) __attribute__((warn_unused_result));
/* Load them (before vm_run).  kvmclock is brought forward by the wall-clock time elapsed since
 * the snapshot (KVM_CLOCK_REALTIME) so guest time is right and never goes backwards.  On
 * failure writes one reason into why. */
int vm_restore_state(struct vm *vm, const struct snap_file *f, char *why, size_t why_size)
	__attribute__((warn_unused_result));
/* With dirty tracking: move the pages written since the last call (KVM's log for guest
 * writes, gmem's for the VMM's) into every consumer's bitmap.  Call with the VM paused (or
 * accept that writes racing with it land in the next harvest).  0, -ENOTSUP when not
 * tracking, or -errno. */
int vm_dirty_sync(struct vm *vm) __attribute__((warn_unused_result));
/* Make KVM forget every mapping and shadow page it built from guest memory, by deleting and
 * re-adding the memory slots: after the VMM rewrote guest memory behind KVM's back (an
 * in-place reset), shadow page tables (kvm_pvm, or any host without EPT/NPT) and cached
 * guest translations would still describe the old page tables.  Harvest the dirty log first
 * (a deleted slot's log is gone).  VM paused.  0 or -errno. */
int vm_remap_memory(struct vm *vm) __attribute__((warn_unused_result));
/* Forget a consumer's pages (it has used them). */
void vm_dirty_clear(struct vm *vm, enum vm_dirty_consumer c);
/* Make host memory [hva, hva+size) guest-visible at [gpa, gpa+size) as a KVM memory slot of
 * its own (numbered after the RAM slots), outside RAM: not dirty-tracked, not saved, not reset.
 * All three page-aligned, size > 0, not overlapping RAM.  0, -EINVAL, -ENOSPC (more than
 * VM_MAX_EXTRA_SLOTS) or the ioctl's -errno. */
int vm_add_mem_slot(struct vm *vm, uint64_t gpa, void *hva, uint64_t size)
	__attribute__((warn_unused_result));
/* Install the hook a vCPU runs, on its own thread, after an exit during which a bus handler
 * called vcpu_request_exit() (core/vcpu.h): the exit is complete then (the MMIO write done,
 * RIP past the instruction, a pending read's value in the registers), so the hook may read or
 * load the vCPU's state, e.g. checkpoint or reset the VM.  When it returns the vCPU runs on
 * (unless a stop or pause was requested).  NULL: requests are dropped.  Before vm_run. */
void vm_set_vcpu_exit_hook(struct vm *vm, void (*fn)(void *ctx, struct vcpu *v), void *ctx);
/* Tear everything down (safe on a partially created VM). */
void vm_destroy(struct vm *vm);

#endif
