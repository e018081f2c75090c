/* One vCPU: its KVM fd, kvm_run mapping and thread; exit decoding onto the buses. */
#ifndef IGNITION_CORE_VCPU_H
#define IGNITION_CORE_VCPU_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct vm;

struct vcpu {
	struct vm *vm;
	unsigned index;
	int fd;
	int stats_fd; /* KVM_GET_STATS_FD, -1 without (core/kvm_stats.h) */
	struct kvm_run *run;
	pthread_t thread;
	bool started;
	uint64_t exits;		/* KVM_RUN returns (statistics) */
	uint64_t int3_injected; /* int3 emulation failures turned into #BP */
	bool exit_requested;	/* vcpu_request_exit() during the current exit */
	/* KVM_GET_MSRS/KVM_SET_MSRS buffer of VCPU_STATE_MAX_MSRS entries (vcpu_state.c),
	 * allocated with the vCPU: a reset loads MSRs thousands of times a second, and a
	 * per-call allocation there shows as RSS growth under ASan (its quarantine). */
	struct kvm_msrs *msr_buf;
};

/* Create vCPU `index`, set its CPUID, MSRs, LAPIC and FPU; the boot vCPU (index 0) also gets
 * 64-bit registers entering the kernel at `entry` with rsi = zero page. */
int vcpu_create(struct vm *vm, unsigned index, uint64_t entry, struct vcpu **out)
	__attribute__((warn_unused_result));
/* Start the vCPU thread running KVM_RUN. */
int vcpu_start(struct vcpu *v) __attribute__((warn_unused_result));
/* Make the thread leave KVM_RUN (immediate_exit + signal). */
void vcpu_kick(struct vcpu *v);
/* Join the thread (after vm_request_stop + vcpu_kick). */
void vcpu_join(struct vcpu *v);
/* Close and free. */
void vcpu_destroy(struct vcpu *v);
/* From a bus handler running on a vCPU thread (inside that vCPU's exit): once this exit is
 * handled, complete it (a KVM_RUN with immediate_exit, as a pause does) and run the VM's vCPU
 * exit hook (vm_set_vcpu_exit_hook) on this thread before the next KVM_RUN.  Returns false,
 * doing nothing, when the calling thread is not handling a vCPU exit (unit tests, the event
 * loop).  The fuzz device's doorbell callback uses it to checkpoint or reset the VM. */
bool vcpu_request_exit(void);
/* Install the no-op signal handler used to kick vCPUs out of KVM_RUN (once per process);
 * 0 or -errno. */
int vcpu_init_signals(void) __attribute__((warn_unused_result));

#endif
