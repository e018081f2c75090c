/* How devices ask the VM to stop: guest poweroff/reboot, the user's Ctrl-A x, fatal errors. */
#ifndef IGNITION_CORE_POWER_H
#define IGNITION_CORE_POWER_H

enum vm_stop_reason {
	VM_STOP_NONE = 0,
	VM_STOP_POWEROFF, /* guest powered off (ACPI S5): exit 0 */
	VM_STOP_REBOOT,	  /* guest rebooted (ACPI reset / i8042 0xFE): exit 0 */
	VM_STOP_QUIT,	  /* user pressed Ctrl-A x: exit 0 */
	VM_STOP_ERROR,	  /* triple fault, KVM error, fatal VMM error: exit non-zero */
	VM_STOP_SIGNAL,	  /* SIGTERM, SIGINT or SIGHUP: graceful stop, exit 0 */
};

struct power_sink {
	/* Request the VM to stop; safe from any thread, idempotent (first reason wins). */
	void (*request)(void *ctx, enum vm_stop_reason reason);
	void *ctx;
};

/* Forward a stop request to a sink (no-op if the sink is unset). */
static inline void power_request(const struct power_sink *p, enum vm_stop_reason reason)
{
	if (p && p->request)
		p->request(p->ctx, reason);
}

#endif
