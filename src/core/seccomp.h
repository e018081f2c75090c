/* Per-thread seccomp filters (libseccomp): one allowlist per thread kind, compiled once to BPF
 * on the main thread and installed by each thread on itself before the guest can reach it.
 *
 * The default action is SECCOMP_RET_TRAP: the kernel sends SIGSYS to the offending thread,
 * whose handler restores the terminal, writes
 *   ignition: seccomp: refused system call NAME (NR) in thread THREAD
 * on stderr and ends the process with SECCOMP_EXIT_STATUS.  docs/architecture.md ("Process
 * hardening") says what each allowlist holds and why. */
#ifndef IGNITION_CORE_SECCOMP_H
#define IGNITION_CORE_SECCOMP_H

#include <stdbool.h>
#include <stddef.h>

/* Exit status after a refused system call: 128 + SIGSYS, as a shell reports a SIGSYS death. */
#define SECCOMP_EXIT_STATUS 159

enum seccomp_thread {
	SECCOMP_THREAD_VCPU,   /* KVM_RUN, exit decoding, device register access */
	SECCOMP_THREAD_EVLOOP, /* queue work, back ends (disk, slirp/TAP, vsock), console input */
	SECCOMP_THREAD_MAIN,   /* waits for the stop request, then tears the VM down */
	SECCOMP_THREAD_API,    /* the REST API's HTTP server (src/api/server.c) */
	SECCOMP_THREAD_VNC,    /* the VNC server (src/ui/vnc.c): network clients, the display */
	/* `ignition fuzz`'s host loop (src/fuzz/): resets the VM, reads its coverage, writes
	 * inputs into it and saves solutions; its VM's threads are the kinds above. */
	SECCOMP_THREAD_FUZZ,
	/* The SDL window (src/ui/sdl.c): a deny-list, not an allowlist (seccomp.c says why). */
	SECCOMP_THREAD_GUI,
	SECCOMP_THREAD_KINDS,
};

/* What the filters must allow beyond the fixed lists. */
struct seccomp_config {
	/* --net user: what libslirp does on the event loop beyond plain sockets (re-reading
	 * /etc/resolv.conf read-only, FIONREAD on UDP sockets, accept for hostfwd). */
	bool slirp;
	/* Called from the SIGSYS handler before the message (async-signal-safe; may be NULL):
	 * main passes console_restore. */
	void (*on_fatal)(void);
};

/* Build the BPF program of every thread kind and install the SIGSYS handler (main thread,
 * before any filtered thread starts).  Reads IGNITION_SECCOMP_SELFTEST (a test hook, see
 * docs/architecture.md).  0 or -errno. */
int seccomp_filters_build(const struct seccomp_config *cfg) __attribute__((warn_unused_result));
/* True once seccomp_filters_build() succeeded (false: --no-seccomp, nothing installed). */
bool seccomp_filters_built(void);
/* Install the filter of `kind` on the calling thread, named `name` in the SIGSYS message;
 * 0 without built filters (nothing to do), else 0 or -errno.  With the self-test hook set,
 * the event-loop thread then issues a system call no filter allows. */
int seccomp_thread_install(enum seccomp_thread kind, const char *name)
	__attribute__((warn_unused_result));
/* Number of allowlist rules (system calls, or one per allowed ioctl request) of `kind`; for
 * SECCOMP_THREAD_GUI, the number of refused system calls. */
size_t seccomp_allowlist_size(enum seccomp_thread kind);
/* Number of BPF instructions of the compiled filter of `kind` (0 if not built). */
size_t seccomp_filter_insns(enum seccomp_thread kind);
/* The kind's name: "vcpu", "evloop", "main", "api", "vnc", "fuzz", "gui". */
const char *seccomp_thread_name(enum seccomp_thread kind);
/* Free the compiled programs (the installed filters stay, as the kernel keeps them). */
void seccomp_filters_free(void);

#endif
