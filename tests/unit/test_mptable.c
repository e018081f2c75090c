/* MP tables: read back the way a kernel's MP parser does (Intel MP spec 1.4, chapter 4). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "arch/x86/layout.h"
#include "arch/x86/mptable.h"
#include "core/le.h"

#include <errno.h>
#include <string.h>

#define GPA LAYOUT_MPTABLE_ADDR

static uint8_t buf[LAYOUT_MPTABLE_SIZE];

static uint8_t sum(const uint8_t *p, size_t len)
{
	uint8_t s = 0;

	for (size_t i = 0; i < len; i++)
		s = (uint8_t)(s + p[i]);
	return s;
}

/* What the guest learns, collected by walking the entries. */
struct parsed {
	unsigned cpus, bsp_count, bsp_id, buses, ioapics, ioints, lints;
	int cpu_ids[MPTABLE_MAX_CPUS];
	uint8_t ioapic_id;
	uint32_t ioapic_addr;
	int pin_of_irq[32];   /* ISA IRQ -> IOAPIC pin for INT entries, -1 if none */
	int flags_of_irq[32]; /* its polarity/trigger flags (§4.3.4 Table 4-10), -1 if none */
	int extint_pin;
	int nmi_lint;
};

static const uint8_t *find_mpf(size_t used)
{
	/* The guest scans 16-byte boundaries of the last KiB of base memory. */
	for (size_t off = 0; off + 16 <= used; off += 16)
		if (!memcmp(buf + off, "_MP_", 4))
			return buf + off;
	return NULL;
}

static void parse(size_t used, struct parsed *p)
{
	const uint8_t *mpf = find_mpf(used), *mpc, *e, *end;
	uint32_t mpc_gpa;
	uint16_t len, count;

	memset(p, 0, sizeof(*p));
	memset(p->pin_of_irq, -1, sizeof(p->pin_of_irq));
	memset(p->flags_of_irq, -1, sizeof(p->flags_of_irq));
	p->extint_pin = p->nmi_lint = -1;
	assert_non_null(mpf);
	assert_int_equal(mpf[8], 1);
	assert_int_equal(mpf[9], 4);
	assert_int_equal(sum(mpf, 16), 0);
	assert_int_equal(mpf[11], 0); /* a configuration table follows, no default config */
	mpc_gpa = get_le32(mpf + 4);
	assert_true(mpc_gpa >= GPA && mpc_gpa + 44 <= GPA + used);
	mpc = buf + (mpc_gpa - GPA);
	assert_memory_equal(mpc, "PCMP", 4);
	len = get_le16(mpc + 4);
	assert_true(mpc_gpa + len <= GPA + used);
	assert_int_equal(mpc[6], 4);
	assert_int_equal(sum(mpc, len), 0);
	assert_int_equal(get_le32(mpc + 36), LAYOUT_LAPIC_ADDR);
	assert_int_equal(get_le16(mpc + 40), 0); /* no extended entries */
	count = get_le16(mpc + 34);
	e = mpc + 44;
	end = mpc + len;
	for (unsigned i = 0; i < count; i++) {
		assert_true(e < end);
		switch (e[0]) {
		case 0:
			assert_true(e + 20 <= end);
			assert_true(e[3] & 1);
			assert_true(p->cpus < MPTABLE_MAX_CPUS);
			p->cpu_ids[p->cpus++] = e[1];
			if (e[3] & 2) {
				p->bsp_count++;
				p->bsp_id = e[1];
			}
			e += 20;
			continue;
		case 1:
			assert_memory_equal(e + 2, "ISA   ", 6);
			assert_int_equal(e[1], 0);
			p->buses++;
			break;
		case 2:
			assert_true(e[3] & 1);
			p->ioapics++;
			p->ioapic_id = e[1];
			p->ioapic_addr = get_le32(e + 4);
			break;
		case 3:
			p->ioints++;
			assert_int_equal(e[4], 0); /* from the ISA bus */
			assert_int_equal(e[6], p->ioapic_id);
			assert_true(e[5] < 32 && e[7] < 24);
			if (e[1] == 3)
				p->extint_pin = e[7];
			else if (e[1] == 0) {
				assert_int_equal(p->pin_of_irq[e[5]], -1); /* one route per IRQ */
				p->pin_of_irq[e[5]] = e[7];
				p->flags_of_irq[e[5]] = get_le16(e + 2);
			} else
				fail_msg("unexpected I/O interrupt type %u", e[1]);
			break;
		case 4:
			p->lints++;
			assert_int_equal(e[6], 0xff);
			if (e[1] == 1)
				p->nmi_lint = e[7];
			break;
		default:
			fail_msg("unknown entry type %u", e[0]);
		}
		e += 8;
	}
	assert_ptr_equal(e, end); /* the count and the length agree */
}

static void test_cpus(void **state)
{
	static const unsigned counts[] = { 1, 2, 4, 7, MPTABLE_MAX_CPUS };

	for (size_t c = 0; c < sizeof(counts) / sizeof(counts[0]); c++) {
		struct parsed p;
		size_t used = 0;

		memset(buf, 0xa5, sizeof(buf));
		assert_int_equal(mptable_build(buf, sizeof(buf), GPA, counts[c], 0, &used), 0);
		assert_true(used > 0 && used <= sizeof(buf));
		parse(used, &p);
		assert_int_equal(p.cpus, counts[c]);
		for (unsigned i = 0; i < p.cpus; i++)
			assert_int_equal(p.cpu_ids[i], i); /* APIC id = vCPU index */
		assert_int_equal(p.bsp_count, 1);
		assert_int_equal(p.bsp_id, 0);
		assert_int_equal(p.buses, 1);
		assert_int_equal(p.ioapics, 1);
		/* The IOAPIC id must not collide with any local APIC id. */
		assert_true(p.ioapic_id >= counts[c]);
		assert_int_equal(p.ioapic_addr, LAYOUT_IOAPIC_ADDR);
	}
}

static void test_interrupt_routing(void **state)
{
	struct parsed p;
	size_t used;

	assert_int_equal(mptable_build(buf, sizeof(buf), GPA, 2, 0, &used), 0);
	parse(used, &p);
	/* PIT on pin 2, the 8259 cascade IRQ 2 has no route, every device line 1..23 on its own
	 * pin: the same wiring as the MADT and the VM's KVM routing (layout.h).  Pin 0 stays
	 * unused. */
	for (unsigned irq = 0; irq < 32; irq++)
		assert_int_equal(p.pin_of_irq[irq], layout_ioapic_pin(irq));
	assert_int_equal(p.pin_of_irq[0], 2);
	assert_int_equal(p.pin_of_irq[2], -1);
	for (int irq = 1; irq < 24; irq++)
		if (irq != 2)
			assert_int_equal(p.pin_of_irq[irq], irq);
	assert_int_equal(p.pin_of_irq[LAYOUT_GSI_COM1], LAYOUT_GSI_COM1);
	assert_int_equal(p.pin_of_irq[LAYOUT_GSI_LAST], LAYOUT_GSI_LAST);
	assert_int_equal(p.extint_pin, -1); /* the 8259s use LINT0, not an IOAPIC pin */
	assert_int_equal(p.nmi_lint, 1);
	assert_int_equal(p.lints, 2);
}

/* Lines the VM holds level (virtio-mmio) say so; the others conform to the ISA bus. */
static void test_trigger_modes(void **state)
{
	uint32_t level = (1u << 5) | (1u << 9) | (1u << 23);
	struct parsed p;
	size_t used;

	assert_int_equal(mptable_build(buf, sizeof(buf), GPA, 2, 0, &used), 0);
	parse(used, &p);
	for (unsigned irq = 0; irq < 24; irq++)
		if (irq != 2)
			assert_int_equal(p.flags_of_irq[irq], 0); /* conforms: ISA edge, high */

	assert_int_equal(mptable_build(buf, sizeof(buf), GPA, 2, level, &used), 0);
	parse(used, &p);
	for (unsigned irq = 0; irq < 24; irq++) {
		if (irq == 2)
			continue;
		/* Polarity 01 = active high (bits 0-1), trigger 11 = level (bits 2-3). */
		assert_int_equal(p.flags_of_irq[irq], (level >> irq) & 1 ? 0x0d : 0);
		assert_int_equal(p.pin_of_irq[irq], layout_ioapic_pin(irq)); /* same wiring */
	}
	assert_int_equal(p.flags_of_irq[LAYOUT_GSI_COM1], 0);
	/* A bit for IRQ 2 (no route) or beyond the pins adds no entry. */
	assert_int_equal(mptable_build(buf, sizeof(buf), GPA, 2, 0xff000004u, &used), 0);
	parse(used, &p);
	assert_int_equal(p.pin_of_irq[2], -1);
	assert_int_equal(p.ioints, 23);
}

static void test_fits_the_scanned_kib(void **state)
{
	size_t used;

	assert_int_equal(mptable_build(buf, sizeof(buf), GPA, MPTABLE_MAX_CPUS, 0, &used), 0);
	assert_true(used <= LAYOUT_MPTABLE_SIZE);
	/* The table lies inside the e820 hole below 1 MiB, not in usable RAM. */
	assert_true(GPA + used <= 0xa0000);
}

static void test_rejects(void **state)
{
	size_t used = 1234;

	assert_int_equal(mptable_build(buf, sizeof(buf), GPA, 0, 0, &used), -EINVAL);
	assert_int_equal(mptable_build(buf, sizeof(buf), GPA, MPTABLE_MAX_CPUS + 1, 0, &used),
			 -EINVAL);
	assert_int_equal(mptable_build(buf, 100, GPA, 1, 0, &used), -ENOSPC);
	assert_int_equal(mptable_build(buf, sizeof(buf), 0xfffffff8ull, 1, 0, &used), -ENOSPC);
	assert_int_equal(used, 1234); /* untouched on failure */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cpus),	      cmocka_unit_test(test_interrupt_routing),
		cmocka_unit_test(test_trigger_modes), cmocka_unit_test(test_fits_the_scanned_kib),
		cmocka_unit_test(test_rejects),
	};

	return cmocka_run_group_tests_name("mptable", tests, NULL, NULL);
}
