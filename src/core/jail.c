#include "core/jail.h"

#include <errno.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

static volatile pid_t forward_to;

static void forward_signal(int sig)
{
	int saved_errno = errno;

	if (forward_to > 0)
		kill(forward_to, sig);
	errno = saved_errno;
}

/* Make the calling process's group the terminal's foreground group (no-op without a
 * terminal).  SIGTTOU is blocked around it: a background group may not otherwise do it. */
static void take_terminal(void)
{
	sigset_t ttou, old;

	if (!isatty(STDIN_FILENO))
		return;
	sigemptyset(&ttou);
	sigaddset(&ttou, SIGTTOU);
	if (sigprocmask(SIG_BLOCK, &ttou, &old) < 0)
		return;
	if (tcsetpgrp(STDIN_FILENO, getpgrp()) < 0 && errno != ENOTTY)
		fprintf(stderr, "ignition: cannot take the terminal: %s\n", strerror(errno));
	sigprocmask(SIG_SETMASK, &old, NULL);
}

int jail_pid_ns_fork(pid_t *child)
{
	pid_t pid;

	if (unshare(CLONE_NEWPID) < 0)
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		/* A process group of its own (in the foreground if the parent's was): a signal
		 * sent to the parent's group (a shell ending its job) reaches the VMM once,
		 * forwarded by the parent, not twice, which would force the exit; a terminal
		 * hangup reaches it directly. */
		bool fg = isatty(STDIN_FILENO) && tcgetpgrp(STDIN_FILENO) == getpgrp();

		if (setpgid(0, 0) == 0 && fg)
			take_terminal();
	}
	*child = pid;
	return 0;
}

int jail_wait_child(pid_t child)
{
	static const int sigs[] = { SIGTERM, SIGINT, SIGHUP };
	struct termios tio;
	bool tty = tcgetattr(STDIN_FILENO, &tio) == 0;
	struct sigaction sa;
	int status;

	forward_to = child;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = forward_signal;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		if (sigaction(sigs[i], &sa, NULL) < 0)
			fprintf(stderr, "ignition: cannot forward signal %d: %s\n", sigs[i],
				strerror(errno));
	while (waitpid(child, &status, 0) < 0) {
		if (errno != EINTR) {
			fprintf(stderr, "ignition: waiting for the VMM: %s\n", strerror(errno));
			return 1;
		}
	}
	/* The child's group had the terminal: the parent's takes it back for the shell. */
	if (tty && tcgetpgrp(STDIN_FILENO) == child)
		take_terminal();
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	/* Killed (SIGKILL, a forced second signal...): it could not restore the terminal. */
	if (tty)
		tcsetattr(STDIN_FILENO, TCSANOW, &tio);
	return 128 + WTERMSIG(status);
}

/* In a new mount namespace: make `root` the root mount and detach the old one, so nothing
 * outside stays reachable (unlike chroot, which root-privileged code can leave). */
static int pivot_into(const char *root, char *err, size_t err_size)
{
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
		snprintf(err, err_size, "--new-ns mount: cannot make mounts private: %s",
			 strerror(errno));
		return -errno;
	}
	/* pivot_root needs a mount point: bind the directory onto itself. */
	if (mount(root, root, NULL, MS_BIND | MS_REC, NULL) < 0 || chdir(root) < 0) {
		snprintf(err, err_size, "--chroot '%s': %s", root, strerror(errno));
		return -errno;
	}
	/* pivot_root(".", "."): the old root is stacked on the new one, then detached
	 * (pivot_root(2), "NOTES"). */
	if (syscall(SYS_pivot_root, ".", ".") < 0 || umount2(".", MNT_DETACH) < 0 ||
	    chdir("/") < 0) {
		snprintf(err, err_size, "--chroot '%s': pivot_root: %s", root, strerror(errno));
		return -errno;
	}
	return 0;
}

int jail_enter(const struct jail_config *j, char *err, size_t err_size)
{
	int ret;

	if ((j->ns & JAIL_NS_NET) && unshare(CLONE_NEWNET) < 0) {
		ret = -errno;
		snprintf(err, err_size, "--new-ns net: %s", strerror(-ret));
		return ret;
	}
	if ((j->ns & JAIL_NS_MOUNT) && unshare(CLONE_NEWNS) < 0) {
		ret = -errno;
		snprintf(err, err_size, "--new-ns mount: %s", strerror(-ret));
		return ret;
	}
	if (j->root && (j->ns & JAIL_NS_MOUNT)) {
		ret = pivot_into(j->root, err, err_size);
		if (ret)
			return ret;
	} else if (j->root) {
		if (chdir(j->root) < 0 || chroot(".") < 0 || chdir("/") < 0) {
			ret = -errno;
			snprintf(err, err_size, "--chroot '%s': %s", j->root, strerror(-ret));
			return ret;
		}
	} else if (j->ns & JAIL_NS_MOUNT) {
		/* Nothing mounted here may propagate back to the host's namespace. */
		if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
			ret = -errno;
			snprintf(err, err_size, "--new-ns mount: cannot make mounts private: %s",
				 strerror(-ret));
			return ret;
		}
	}
	/* Group before user: once the user is unprivileged, the group can no longer change. */
	if ((j->has_gid || j->has_uid) && setgroups(0, NULL) < 0) {
		ret = -errno;
		snprintf(err, err_size, "--uid/--gid: cannot drop supplementary groups: %s",
			 strerror(-ret));
		return ret;
	}
	if (j->has_gid && setresgid(j->gid, j->gid, j->gid) < 0) {
		ret = -errno;
		snprintf(err, err_size, "--gid %u: %s", (unsigned)j->gid, strerror(-ret));
		return ret;
	}
	if (j->has_uid && setresuid(j->uid, j->uid, j->uid) < 0) {
		ret = -errno;
		snprintf(err, err_size, "--uid %u: %s", (unsigned)j->uid, strerror(-ret));
		return ret;
	}
	/* A user switch must not be undoable (it is not after setresuid from root, but say so
	 * loudly if some capability setup made it so). */
	if (j->has_uid && j->uid != 0 && setuid(0) == 0) {
		snprintf(err, err_size, "--uid %u: could switch back to root", (unsigned)j->uid);
		return -EPERM;
	}
	return 0;
}
