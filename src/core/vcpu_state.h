/* A vCPU's architectural state as plain data: what KVM_GET_* returns, what a snapshot stores,
 * what KVM_SET_* loads (docs/snapshots.md, "vCPU record").  Getting and setting issue vCPU
 * ioctls and run on the vCPU's own thread (or before it starts); encoding and validation are
 * pure and unit-tested. */
#ifndef IGNITION_CORE_VCPU_STATE_H
#define IGNITION_CORE_VCPU_STATE_H

#include <linux/kvm.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct snap_writer;
struct snap_file;
struct vcpu;

#define VCPU_STATE_MAX_MSRS  256
#define VCPU_STATE_MAX_XSAVE (64u << 10)

struct vcpu_state {
	struct kvm_mp_state mp;
	struct kvm_regs regs;
	/* Segments, tables, control registers: KVM_GET_SREGS2 where the host has it (then
	 * pdptrs/sregs2_flags are meaningful and interrupt_bitmap is 0), else KVM_GET_SREGS. */
	struct kvm_sregs sregs;
	uint64_t sregs2_flags;
	uint64_t pdptrs[4];
	uint32_t xsave_size; /* bytes in xsave (>= 4096) */
	uint8_t xsave[VCPU_STATE_MAX_XSAVE];
	struct kvm_xcrs xcrs;
	struct kvm_debugregs dregs;
	struct kvm_lapic_state lapic;
	uint32_t nr_msrs;
	struct kvm_msr_entry msrs[VCPU_STATE_MAX_MSRS];
	struct kvm_vcpu_events events;
};

/* Read everything from KVM (call on the vCPU's thread, the vCPU out of KVM_RUN). */
int vcpu_state_get(struct vcpu *v, struct vcpu_state *st) __attribute__((warn_unused_result));
/* Load everything into KVM, in the order KVM needs (LAPIC before MSRs: the TSC deadline only
 * loads once the LAPIC timer is in deadline mode; events last).  CPUID is not touched (it was
 * set when the vCPU was created; KVM refuses it after the first run). */
int vcpu_state_set(struct vcpu *v, const struct vcpu_state *st) __attribute__((warn_unused_result));
/* Append record SNAP_REC_VCPU `id`. */
void vcpu_state_save(const struct vcpu_state *st, struct snap_writer *w, const char *id);
/* Read and validate record SNAP_REC_VCPU `id` into st.  0, -ENOENT (absent) or -EINVAL. */
int vcpu_state_load(struct vcpu_state *st, const struct snap_file *f, const char *id)
	__attribute__((warn_unused_result));

/* The MSR indices to save on this host: KVM_GET_MSR_INDEX_LIST on `kvm_fd` plus TSC_AUX
 * (which the list omits on some hosts), deduplicated.  Returns the count (<= max) or -errno. */
int vcpu_state_msr_list(int kvm_fd, uint32_t *out, unsigned max);

#endif
