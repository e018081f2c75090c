/* Process jail, after Firecracker's jailer: new namespaces, a new root, an unprivileged user.
 * Applied by main after every file and device is open and before the seccomp filters, so the
 * VMM keeps what it opened and loses the rest (docs/architecture.md, "Process hardening"). */
#ifndef IGNITION_CORE_JAIL_H
#define IGNITION_CORE_JAIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define JAIL_NS_MOUNT 1u
#define JAIL_NS_NET   4u

struct jail_config {
	const char *root; /* new root directory, or NULL */
	unsigned ns;	  /* JAIL_NS_MOUNT | JAIL_NS_NET (the PID namespace: jail_pid_ns_fork) */
	bool has_uid, has_gid;
	uid_t uid;
	gid_t gid;
};

/* Enter a new PID namespace: unshare(CLONE_NEWPID) only moves children, so fork; the child
 * (*child = 0) goes on as PID 1 of the new namespace, the parent gets its pid.  Must run
 * before KVM is opened (a KVM VM only works in the process that created it).  0 or -errno. */
int jail_pid_ns_fork(pid_t *child) __attribute__((warn_unused_result));
/* Parent side: forward SIGTERM/SIGINT/SIGHUP to the child, wait for it and return the exit
 * status to report (the child's, or 128 + signal if it was killed; the terminal is then put
 * back as it was before the fork). */
int jail_wait_child(pid_t child);
/* Unshare the namespaces, change root (pivot_root in a new mount namespace, else chroot),
 * drop supplementary groups and switch group and user.  On failure, 0 or -errno and a one-line
 * reason in err. */
int jail_enter(const struct jail_config *j, char *err, size_t err_size)
	__attribute__((warn_unused_result));

#endif
