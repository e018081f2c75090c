/* The VM: KVM file descriptors, guest memory, in-kernel irqchip, the device manager, the event
 * loop and the vCPU threads.  The only place (with vcpu.c) that issues KVM ioctls. */
#ifndef IGNITION_CORE_VM_H
#define IGNITION_CORE_VM_H

#include "arch/x86/cpuid.h"
#include "core/devmgr.h"
#include "core/evloop.h"
#include "core/gmem.h"
#include "core/power.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define VM_MAX_VCPUS 32

struct vcpu;

struct vm_config {
	uint64_t mem_bytes;
	unsigned nr_vcpus;
	enum cpu_template cpu_template; /* resolved (never AUTO) */
};

struct vm {
	int kvm_fd;
	int vm_fd;
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
/* Tear everything down (safe on a partially created VM). */
void vm_destroy(struct vm *vm);

#endif
