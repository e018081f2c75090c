/* CPUID fix-ups and CPU templates. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "arch/x86/cpuid.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static struct kvm_cpuid2 *make_cpuid(void)
{
	static const struct kvm_cpuid_entry2 base[] = {
		{ .function = 0x1,
		  .eax = 0x00a50f00,
		  .ebx = 0x00000800,
		  .ecx = 0x7ed8320b,
		  .edx = 0x178bfbff },
		{ .function = 0xb, .index = 0, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX },
		{ .function = 0xb, .index = 1, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX },
		{ .function = 0xb, .index = 2, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX },
		{ .function = 0xa, .eax = 0x07300805 },
		{ .function = 0x6, .eax = 0x00000077, .ecx = 0x9 },
		{ .function = 0x40000000, .eax = 0x40000001, .ebx = 0x4b4d564b },
		{ .function = 0x40000001, .eax = 0x01007afb },
		{ .function = 0x80000007, .edx = 0x00000100 | 0x00000040 },
	};
	size_t n = sizeof(base) / sizeof(base[0]);
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(base[0]));

	c->nent = (uint32_t)n;
	memcpy(c->entries, base, sizeof(base));
	return c;
}

static void test_topology(void **state)
{
	struct kvm_cpuid2 *c = make_cpuid();
	struct kvm_cpuid_entry2 *e;

	cpuid_fixup(c, 3, 4, CPU_TEMPLATE_HOST);
	e = cpuid_find(c, 1, 0);
	assert_int_equal(e->ebx >> 24, 3);	    /* initial APIC id */
	assert_int_equal((e->ebx >> 16) & 0xff, 4); /* logical CPUs */
	assert_true(e->ecx & (1u << 31));	    /* hypervisor bit */
	assert_true(e->edx & (1u << 28));	    /* HTT */
	e = cpuid_find(c, 0xb, 1);
	assert_int_equal(e->ebx, 4);
	assert_int_equal(e->eax, 2); /* log2(4) */
	assert_int_equal(e->edx, 3); /* x2APIC id */
	assert_int_equal((e->ecx >> 8) & 0xff, 2);
	e = cpuid_find(c, 0xb, 2);
	assert_int_equal(e->ebx, 0);
	assert_int_equal((e->ecx >> 8) & 0xff, 0); /* invalid level ends the enumeration */
	e = cpuid_find(c, 0xa, 0);
	assert_int_equal(e->eax, 0); /* no PMU */
	e = cpuid_find(c, 0x6, 0);
	assert_int_equal(e->eax, 0x4); /* only ARAT: the guest may use one-shot LAPIC ticks */
	assert_int_equal(e->ecx, 0);
	e = cpuid_find(c, 0x80000007, 0);
	assert_int_equal(e->edx, 0x40); /* invariant TSC hidden, the rest kept */
	free(c);

	c = make_cpuid();
	cpuid_fixup(c, 0, 1, CPU_TEMPLATE_HOST);
	e = cpuid_find(c, 1, 0);
	assert_false(e->edx & (1u << 28));
	assert_int_equal(cpuid_find(c, 0xb, 1)->eax, 0);
	free(c);
}

static void test_template_no_pv_hypercalls(void **state)
{
	struct kvm_cpuid2 *c = make_cpuid();
	uint32_t before = cpuid_find(c, 0x40000001, 0)->eax;
	uint32_t after;

	assert_true(before & KVM_CPUID_PV_SEND_IPI);
	cpuid_fixup(c, 0, 2, CPU_TEMPLATE_NO_PV_HC);
	after = cpuid_find(c, 0x40000001, 0)->eax;
	assert_int_equal(after & KVM_CPUID_PV_HYPERCALLS, 0);
	/* Everything else (kvmclock, async PF, PV EOI...) stays. */
	assert_int_equal(after, before & ~KVM_CPUID_PV_HYPERCALLS);
	free(c);

	c = make_cpuid();
	cpuid_fixup(c, 0, 2, CPU_TEMPLATE_HOST);
	assert_int_equal(cpuid_find(c, 0x40000001, 0)->eax, before);
	free(c);
}

static void test_parse_and_detect(void **state)
{
	enum cpu_template t;
	char dir[] = "/tmp/ign-cpuid-XXXXXX";
	char path[256];

	assert_int_equal(cpuid_parse_template("no-pv-hypercalls", &t), 0);
	assert_int_equal(t, CPU_TEMPLATE_NO_PV_HC);
	assert_int_equal(cpuid_parse_template("host", &t), 0);
	assert_int_equal(t, CPU_TEMPLATE_HOST);
	assert_int_equal(cpuid_parse_template("bogus", &t), -EINVAL);
	assert_string_equal(cpuid_template_name(CPU_TEMPLATE_NO_PV_HC), "no-pv-hypercalls");

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/module", dir);
	assert_int_equal(mkdir(path, 0755), 0);
	assert_int_equal(cpuid_detect_template(dir), CPU_TEMPLATE_HOST);
	snprintf(path, sizeof(path), "%s/module/kvm_pvm", dir);
	assert_int_equal(mkdir(path, 0755), 0);
	assert_int_equal(cpuid_detect_template(dir), CPU_TEMPLATE_NO_PV_HC);
	rmdir(path);
	snprintf(path, sizeof(path), "%s/module", dir);
	rmdir(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_topology),
		cmocka_unit_test(test_template_no_pv_hypercalls),
		cmocka_unit_test(test_parse_and_detect),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
