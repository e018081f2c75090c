#include "arch/x86/cpuid.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int cpuid_parse_template(const char *s, enum cpu_template *t)
{
	if (!strcmp(s, "auto"))
		*t = CPU_TEMPLATE_AUTO;
	else if (!strcmp(s, "host"))
		*t = CPU_TEMPLATE_HOST;
	else if (!strcmp(s, "no-pv-hypercalls"))
		*t = CPU_TEMPLATE_NO_PV_HC;
	else
		return -EINVAL;
	return 0;
}

const char *cpuid_template_name(enum cpu_template t)
{
	switch (t) {
	case CPU_TEMPLATE_AUTO:
		return "auto";
	case CPU_TEMPLATE_HOST:
		return "host";
	case CPU_TEMPLATE_NO_PV_HC:
		return "no-pv-hypercalls";
	}
	return "?";
}

enum cpu_template cpuid_detect_template(const char *sysfs_root)
{
	char path[256];

	/* kvm_pvm runs guests by software-assisted virtualization; a guest's vmcall/vmmcall for
	 * PV IPIs and the like faults there (reference/nested-kvm/README.md). */
	snprintf(path, sizeof(path), "%s/module/kvm_pvm", sysfs_root);
	if (access(path, F_OK) == 0)
		return CPU_TEMPLATE_NO_PV_HC;
	return CPU_TEMPLATE_HOST;
}

struct kvm_cpuid_entry2 *cpuid_find(struct kvm_cpuid2 *c, uint32_t function, uint32_t index)
{
	for (uint32_t i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];

		if (e->function != function)
			continue;
		if ((e->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) && e->index != index)
			continue;
		return e;
	}
	return NULL;
}

static unsigned order_base_2(unsigned n)
{
	unsigned b = 0;

	while ((1u << b) < n)
		b++;
	return b;
}

void cpuid_fixup(struct kvm_cpuid2 *c, unsigned index, unsigned nr_vcpus, enum cpu_template t)
{
	unsigned shift = order_base_2(nr_vcpus);

	for (uint32_t i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];

		switch (e->function) {
		case 0x1:
			/* EBX[31:24] initial APIC id, EBX[23:16] logical processors per package. */
			e->ebx = (e->ebx & 0x0000ffffu) | (index << 24) | ((nr_vcpus & 0xff) << 16);
			e->ecx |= 1u << 31; /* hypervisor present */
			if (nr_vcpus > 1)
				e->edx |= 1u << 28; /* HTT: the package has several logical CPUs */
			else
				e->edx &= ~(1u << 28);
			break;
		case 0x4:
			/* Deterministic cache parameters: EAX[31:26] = cores per package - 1;
			 * EAX[25:14] = logical CPUs sharing this cache - 1 (one per core below
			 * L3, all of them at L3). */
			if ((e->eax & 0x1f) == 0)
				break;
			e->eax &= 0x3fffu;
			e->eax |= ((nr_vcpus - 1) & 0x3f) << 26;
			if (((e->eax >> 5) & 0x7) >= 3)
				e->eax |= ((nr_vcpus - 1) & 0xfff) << 14;
			break;
		case 0x6:
			/* No thermal/power management for a VM, but keep EAX bit 2, ARAT (the
			 * LAPIC timer runs in every C-state), which KVM reports.  Without it
			 * Linux marks the LAPIC timer C3STOP, finds no broadcast device to
			 * stand in, never leaves the periodic tick for one-shot/NO_HZ mode, and
			 * replays every missed tick one by one after any stall: a restored
			 * snapshot spent ~0.1 s per second of downtime catching up, and busy
			 * vCPUs on a loaded kvm_pvm host could fall behind the tick for good. */
			e->eax &= 1u << 2;
			e->ebx = e->ecx = e->edx = 0;
			break;
		case 0xa:
			/* No architectural PMU: counters are not virtualised consistently. */
			e->eax = e->ebx = e->ecx = e->edx = 0;
			break;
		case 0xb:
		case 0x1f:
			/* Extended topology: level 0 = SMT (1 thread per core), level 1 = core
			 * (nr_vcpus cores); EDX = x2APIC id. */
			if (e->index == 0) {
				e->eax = 0;
				e->ebx = 1;
				e->ecx = (1u << 8) | 0;
			} else if (e->index == 1) {
				e->eax = shift;
				e->ebx = nr_vcpus;
				e->ecx = (2u << 8) | 1;
			} else {
				e->eax = e->ebx = 0;
				e->ecx = e->index & 0xff;
			}
			e->edx = index;
			break;
		case 0x40000001:
			if (t == CPU_TEMPLATE_NO_PV_HC)
				e->eax &= ~KVM_CPUID_PV_HYPERCALLS;
			break;
		case 0x80000007:
			/* EDX bit 8, invariant TSC: not promised (QEMU's -cpu host does not promise
			 * it either).  With it, Linux ranks the raw TSC above kvm-clock and switches
			 * to it, which a VM cannot keep true across hosts, snapshots and restores. */
			e->edx &= ~(1u << 8);
			break;
		case 0x80000001:
			/* CmpLegacy/extended APIC topology on AMD: keep; nothing to fix. */
			break;
		default:
			break;
		}
	}
}
