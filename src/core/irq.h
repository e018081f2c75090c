/* An interrupt line as devices see it: raise it, and the VM delivers it.  Devices never call
 * KVM; the VM wires `fd` to an irqfd (KVM_IRQFD) on the line's GSI.  Unit tests leave fd = -1
 * and read `count`. */
#ifndef IGNITION_CORE_IRQ_H
#define IGNITION_CORE_IRQ_H

#include <stdint.h>
#include <unistd.h>

struct irq_line {
	uint32_t gsi;
	int fd;		/* eventfd bound to the GSI with KVM_IRQFD, or -1 */
	uint64_t count; /* edges raised so far (statistics, tests) */
};

/* Raise one edge on the line (all device lines are edge-triggered, as the ACPI tables say). */
static inline void irq_trigger(struct irq_line *l)
{
	uint64_t one = 1;

	__atomic_add_fetch(&l->count, 1, __ATOMIC_RELAXED);
	if (l->fd >= 0) {
		/* An eventfd write can only fail on counter overflow; the edge is already
		 * pending then, so nothing is lost. */
		ssize_t r = write(l->fd, &one, sizeof(one));
		(void)r;
	}
}

#endif
