/* Guest CPUID: start from KVM_GET_SUPPORTED_CPUID, then make it describe this VM (APIC ids,
 * topology, hypervisor bit) and apply the CPU template. */
#ifndef IGNITION_ARCH_X86_CPUID_H
#define IGNITION_ARCH_X86_CPUID_H

#include <linux/kvm.h>
#include <stdint.h>

enum cpu_template {
	CPU_TEMPLATE_AUTO,     /* pick by detecting the host (see cpuid_detect_template) */
	CPU_TEMPLATE_HOST,     /* everything KVM supports, as on bare metal */
	CPU_TEMPLATE_NO_PV_HC, /* hide the hypercall-based KVM PV features (leaf 0x40000001) */
};

/* KVM paravirt feature bits in CPUID 0x40000001 EAX (Documentation/virt/kvm/x86/cpuid.rst). */
#define KVM_CPUID_PV_UNHALT	 (1u << 7)
#define KVM_CPUID_PV_TLB_FLUSH	 (1u << 9)
#define KVM_CPUID_PV_SEND_IPI	 (1u << 11)
#define KVM_CPUID_PV_SCHED_YIELD (1u << 13)
/* The features whose use makes the guest kernel execute a hypercall (vmcall/vmmcall). */
#define KVM_CPUID_PV_HYPERCALLS                                                 \
	(KVM_CPUID_PV_UNHALT | KVM_CPUID_PV_TLB_FLUSH | KVM_CPUID_PV_SEND_IPI | \
	 KVM_CPUID_PV_SCHED_YIELD)

/* Parse "auto", "host" or "no-pv-hypercalls"; -EINVAL otherwise. */
int cpuid_parse_template(const char *s, enum cpu_template *t) __attribute__((warn_unused_result));
/* Name of a template. */
const char *cpuid_template_name(enum cpu_template t);
/* Resolve AUTO: NO_PV_HC on hosts whose KVM breaks guest hypercalls (the kvm_pvm module,
 * software-assisted nested KVM), HOST elsewhere.  `sysfs_root` is "/sys" (tests pass a dir). */
enum cpu_template cpuid_detect_template(const char *sysfs_root);
/* Rewrite `c` in place for vCPU `index` of `nr_vcpus`, under template `t` (not AUTO). */
void cpuid_fixup(struct kvm_cpuid2 *c, unsigned index, unsigned nr_vcpus, enum cpu_template t);
/* Find an entry (function, index), or NULL. */
struct kvm_cpuid_entry2 *cpuid_find(struct kvm_cpuid2 *c, uint32_t function, uint32_t index);

#endif
