/* An interrupt line as devices see it: raise it, and the VM delivers it.  Devices never call
 * KVM; the VM binds `fd` as an irqfd (KVM_IRQFD) on the line's GSI.  Unit tests leave fd = -1
 * and read `count`.
 *
 * Two kinds of line:
 * - edge (legacy ISA devices, the UART on IRQ 4): each irq_trigger() is one edge; KVM pulses
 *   the GSI.  The device must raise again for a new event.
 * - level (`level` set; virtio-mmio): the line's owner says whether its level is high
 *   (irq_set_level_source()).  The VM binds the irqfd with KVM_IRQFD_FLAG_RESAMPLE:
 *   irq_trigger() asserts the GSI, KVM holds it asserted until the guest's EOI, then
 *   de-asserts it and signals `resample_fd`, and the device manager calls irq_resample(),
 *   which asserts again while the owner's level is still high.  So the pin follows the
 *   owner's level at every EOI, and an interrupt cannot be lost to a masked or still-busy
 *   IOAPIC pin (KVM's IOAPIC re-delivers a pending level on unmask and after EOI). */
#ifndef IGNITION_CORE_IRQ_H
#define IGNITION_CORE_IRQ_H

#include <stdbool.h>
#include <stdint.h>
#include <unistd.h>

struct irq_line {
	uint32_t gsi;
	bool level;	 /* level-triggered, active-high (the tables say so too) */
	int fd;		 /* eventfd bound to the GSI with KVM_IRQFD, or -1 */
	int resample_fd; /* level lines: KVM signals it at the guest's EOI; else -1 */
	uint64_t count;	 /* assertions (edges) raised so far (statistics, tests) */
	/* Held while a restore or reset loads state (devmgr_irqs_hold): a raise is only noted
	 * in `pending` and made at devmgr_irqs_release(), once the vCPUs' LAPICs are loaded.
	 * Raised earlier, it would reach the IOAPIC while no vCPU exists or land in a LAPIC
	 * whose IRR the load then overwrites: the guest never sees it, never EOIs, and KVM's
	 * IOAPIC keeps the level pin's Remote IRR set, so the line is dead for good. */
	bool held;
	bool pending;
	/* Level lines: is the owner's level still high?  Called on the event-loop thread. */
	bool (*level_high)(void *opaque);
	void *level_opaque;
};

/* Raise the line: one edge, or (level line) assert it until the guest's next EOI.  A level
 * line's owner calls this after its level became or stayed high, never before: the write then
 * always follows the state change, so an EOI that saw the old state is followed by an
 * assertion. */
static inline void irq_trigger(struct irq_line *l)
{
	uint64_t one = 1;

	__atomic_add_fetch(&l->count, 1, __ATOMIC_RELAXED);
	if (__atomic_load_n(&l->held, __ATOMIC_ACQUIRE)) {
		__atomic_store_n(&l->pending, true, __ATOMIC_RELEASE);
		return;
	}
	if (l->fd >= 0) {
		/* An eventfd write can only fail on counter overflow; the edge is already
		 * pending then, so nothing is lost. */
		ssize_t r = write(l->fd, &one, sizeof(one));
		(void)r;
	}
}

/* Tell a level line how to ask its owner for the level (NULL: the level reads low). */
static inline void irq_set_level_source(struct irq_line *l, bool (*level_high)(void *opaque),
					void *opaque)
{
	l->level_high = level_high;
	l->level_opaque = opaque;
}

/* The guest EOI'd a level line and KVM de-asserted it: assert it again if the owner's level
 * is still high (the guest has not acknowledged everything yet). */
static inline void irq_resample(struct irq_line *l)
{
	bool (*high)(void *opaque) = l->level_high;

	if (high && high(l->level_opaque))
		irq_trigger(l);
}

#endif
