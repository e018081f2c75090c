/* Per-thread seccomp filters: see seccomp.h and docs/architecture.md, "Process hardening".
 *
 * Each thread kind has its own allowlist, so the filters are installed thread by thread
 * (no SECCOMP_FILTER_FLAG_TSYNC, which would give every thread the same one).  libseccomp
 * compiles each list once, on the main thread, into a plain BPF program; a thread installs
 * its program with one seccomp(2) call and no allocation, so several vCPU threads starting at
 * once never share libseccomp state. */
#include "core/seccomp.h"

#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/kvm.h>
#include <linux/if_tun.h>
#include <linux/seccomp.h>
#include <limits.h>
#include <malloc.h>
#include <seccomp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define SECCOMP_SANITIZER_BUILD 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SECCOMP_SANITIZER_BUILD 1
#endif
#endif

/* si_code of a seccomp SIGSYS (siginfo.h); older libc headers lack the name. */
#ifndef SYS_SECCOMP
#define SYS_SECCOMP 1
#endif

#define VCPU   (1u << SECCOMP_THREAD_VCPU)
#define EVLOOP (1u << SECCOMP_THREAD_EVLOOP)
#define MAIN   (1u << SECCOMP_THREAD_MAIN)
#define API    (1u << SECCOMP_THREAD_API)
#define VNC    (1u << SECCOMP_THREAD_VNC)
#define FUZZ   (1u << SECCOMP_THREAD_FUZZ)
#define ALL    (VCPU | EVLOOP | MAIN | API | VNC | FUZZ)

/* System calls allowed without argument checks, and which thread kinds may make them. */
static const struct {
	int nr;
	unsigned kinds;
} syscalls[] = {
	/* Every thread: malloc/free and thread stacks, locks, signal return and masks, the
	 * SIGSYS/fatal-signal paths (write to stderr, terminal restore via ioctl below), vCPU
	 * kicks (pthread_kill = tgkill), log time stamps (vDSO, but the fallback is a real call),
	 * and exit. */
	{ SCMP_SYS(mmap), ALL },
	{ SCMP_SYS(munmap), ALL },
	{ SCMP_SYS(mprotect), ALL },
	{ SCMP_SYS(mremap), ALL },
	{ SCMP_SYS(brk), ALL },
	{ SCMP_SYS(futex), ALL },
	{ SCMP_SYS(rt_sigreturn), ALL },
	{ SCMP_SYS(rt_sigprocmask), ALL },
	{ SCMP_SYS(restart_syscall), ALL },
	/* glibc and the sanitizer runtimes query the alternate signal stack at thread exit. */
	{ SCMP_SYS(sigaltstack), ALL },
	{ SCMP_SYS(write), ALL },
	{ SCMP_SYS(read), ALL },
	{ SCMP_SYS(close), ALL },
	{ SCMP_SYS(getpid), ALL },
	{ SCMP_SYS(gettid), ALL },
	{ SCMP_SYS(tgkill), ALL },
	{ SCMP_SYS(clock_gettime), ALL },
	{ SCMP_SYS(gettimeofday), ALL },
	{ SCMP_SYS(exit), ALL },
	{ SCMP_SYS(exit_group), ALL },
	/* Device work.  Queues run on the event loop, but a register write on a vCPU thread
	 * can activate or reset a device (arm timers, pause back ends, close connections) and
	 * raise interrupts (eventfd writes), so both kinds get these. */
	{ SCMP_SYS(epoll_ctl), VCPU | EVLOOP | MAIN | API },
	{ SCMP_SYS(timerfd_settime), VCPU | EVLOOP },
	{ SCMP_SYS(timerfd_gettime), VCPU | EVLOOP },
	{ SCMP_SYS(shutdown), VCPU | EVLOOP | MAIN | API | VNC },
	{ SCMP_SYS(writev), VCPU | EVLOOP | VNC },
	{ SCMP_SYS(fcntl), VCPU | EVLOOP | API | VNC },
	/* The event loop: epoll, disk I/O (virtio-blk: vectored reads/writes, FLUSH =
	 * fdatasync, DISCARD/WRITE_ZEROES = fallocate, io_uring), virtio-rng (getrandom),
	 * slirp's poll rounds and host sockets, TAP, vsock's Unix sockets. */
	{ SCMP_SYS(epoll_wait), EVLOOP | API },
	{ SCMP_SYS(epoll_pwait), EVLOOP | API },
	{ SCMP_SYS(readv), EVLOOP },
	{ SCMP_SYS(pread64), EVLOOP },
	{ SCMP_SYS(pwrite64), EVLOOP },
	{ SCMP_SYS(preadv), EVLOOP },
	{ SCMP_SYS(pwritev), EVLOOP },
	{ SCMP_SYS(preadv2), EVLOOP },
	{ SCMP_SYS(pwritev2), EVLOOP },
	{ SCMP_SYS(fdatasync), EVLOOP | MAIN },
	{ SCMP_SYS(fsync), EVLOOP | MAIN },
	{ SCMP_SYS(fallocate), EVLOOP },
	/* Also vCPU and main: a device reset (a guest status write of 0, on its vCPU thread) and
	 * the teardown at exit cancel and wait for virtio-blk requests still in flight. */
	{ SCMP_SYS(io_uring_enter), VCPU | EVLOOP | MAIN },
	{ SCMP_SYS(io_uring_register), EVLOOP },
	{ SCMP_SYS(getrandom), EVLOOP },
	/* poll: slirp rounds (event loop), the UART's wait for room on stdout (vCPU), the
	 * stop wait (main). */
	{ SCMP_SYS(poll), ALL },
	{ SCMP_SYS(ppoll), ALL },
	{ SCMP_SYS(connect), EVLOOP },
	/* The REST API (API): libmicrohttpd accepts clients on the listening socket it was
	 * handed, reads requests and sends answers; it opens no file and no new socket. */
	{ SCMP_SYS(accept4), EVLOOP | API | VNC },
	{ SCMP_SYS(accept), API | VNC },
	{ SCMP_SYS(bind), EVLOOP },
	{ SCMP_SYS(listen), EVLOOP },
	{ SCMP_SYS(sendto), EVLOOP | API | VNC },
	{ SCMP_SYS(recvfrom), EVLOOP | API | VNC },
	{ SCMP_SYS(sendmsg), EVLOOP | API | VNC },
	{ SCMP_SYS(recvmsg), EVLOOP | VNC },
	{ SCMP_SYS(getsockopt), EVLOOP | API | VNC },
	{ SCMP_SYS(setsockopt), EVLOOP | API | VNC },
	{ SCMP_SYS(getsockname), EVLOOP | API | VNC },
	{ SCMP_SYS(getpeername), EVLOOP | VNC },
	/* The VNC server (VNC): libvncserver 0.9.14 waits with select() (its main loop, and
	 * when a client's socket is full), accepts clients on the socket ignition bound and
	 * handed it (it binds nothing itself), makes them non-blocking with TCP_NODELAY,
	 * reads and writes them, and stamps time() into its statistics.  It opens no file
	 * and creates no socket: libgcrypt (DES for VNC authentication, SHA-1 for WebSocket
	 * handshakes) is initialised before the filter (vnc.c). */
	{ SCMP_SYS(select), VNC },
	{ SCMP_SYS(pselect6), VNC },
	{ SCMP_SYS(time), VNC },
	{ SCMP_SYS(nanosleep), VNC },
	{ SCMP_SYS(clock_nanosleep), VNC },
	/* Snapshots (Ctrl-A s, the control socket) are written from the event loop: a temporary
	 * directory, the state, memory and manifest files, disk copies (reflink or
	 * copy_file_range over the data extents, lseek SEEK_DATA/SEEK_HOLE), fsync, rename;
	 * mincore finds the guest pages never touched.  Also the stat that slirp's DNS
	 * forwarder needs for /etc/resolv.conf.  openat: see add_rules (read-only, or a new
	 * file created exclusively). */
	{ SCMP_SYS(newfstatat), EVLOOP },
	{ SCMP_SYS(fstat), EVLOOP },
	{ SCMP_SYS(access), EVLOOP },
	{ SCMP_SYS(faccessat), EVLOOP },
	{ SCMP_SYS(faccessat2), EVLOOP },
	{ SCMP_SYS(mkdir), EVLOOP },
	{ SCMP_SYS(mkdirat), EVLOOP },
	{ SCMP_SYS(rename), EVLOOP },
	{ SCMP_SYS(renameat), EVLOOP },
	{ SCMP_SYS(renameat2), EVLOOP },
	{ SCMP_SYS(unlinkat), EVLOOP },
	{ SCMP_SYS(rmdir), EVLOOP | MAIN }, /* main: MMDS's socket directory at exit */
	{ SCMP_SYS(ftruncate), EVLOOP },
	{ SCMP_SYS(lseek), EVLOOP },
	{ SCMP_SYS(copy_file_range), EVLOOP },
	{ SCMP_SYS(mincore), EVLOOP },
	/* The main thread, after the stop: joins, flushes every writable disk (fsync above),
	 * removes the vsock socket, frees everything. */
	{ SCMP_SYS(unlink), MAIN },
	/* The REST API: PUT /snapshot/create's mem_file_path, a hard link to the memory file of
	 * the snapshot the event loop just wrote. */
	{ SCMP_SYS(link), API },
	{ SCMP_SYS(linkat), API },
	/* `ignition fuzz`'s host loop (FUZZ), from strace of fuzzing sessions with crashes and
	 * hangs: it restores its SIGINT/SIGTERM handlers when the loop ends, sizes stdout's
	 * buffer (newfstatat) for the summary, and removes a solution or corpus file it could
	 * not write in full.  Its resets: the ioctls below; its fuzz VM has no virtio device, so
	 * a reset re-arms no ioeventfd and arms no timer.  pause/resume: tgkill, futex. */
	{ SCMP_SYS(rt_sigaction), FUZZ },
	{ SCMP_SYS(newfstatat), FUZZ },
	{ SCMP_SYS(unlink), FUZZ },
};

/* ioctl requests, compared on the low 32 bits (the request argument is an int in some
 * libcs).  Terminal requests everywhere: a fatal signal or SIGSYS on any thread restores the
 * terminal (tcsetattr), and isatty() is TCGETS. */
static const struct {
	uint32_t req;
	unsigned kinds;
} ioctls[] = {
	{ TCGETS, ALL },
	{ TCSETS, ALL },
	{ TCSETSW, ALL },
	{ TCSETSF, ALL },
	/* The vCPU loop, the internal-error report and int3 emulation. */
	{ KVM_RUN, VCPU },
	{ KVM_GET_REGS, VCPU },
	{ KVM_SET_REGS, VCPU },
	{ KVM_GET_SREGS, VCPU },
	{ KVM_TRANSLATE, VCPU },
	{ KVM_GET_VCPU_EVENTS, VCPU },
	{ KVM_SET_VCPU_EVENTS, VCPU },
	/* QUEUE_READY and device reset (vCPU) add and remove queue ioeventfds; teardown (main)
	 * removes the rest; an in-place reset (event loop) re-arms them.  Register writes,
	 * teardown or a reset, never queue work. */
	{ KVM_IOEVENTFD, VCPU | MAIN | EVLOOP },
	/* virtio-net FEATURES_OK (a register write) tells the TAP device the offloads the guest
	 * accepted. */
	{ TUNSETOFFLOAD, VCPU },
	/* Pause and snapshot: each vCPU reads its own state on its own thread (vcpu_state.c)
	 * and tells the guest it was paused; the event loop reads the VM-wide state and
	 * reflinks disk copies. */
	{ KVM_GET_MP_STATE, VCPU },
	{ KVM_GET_SREGS2, VCPU },
	{ KVM_GET_XSAVE, VCPU },
	{ KVM_GET_XSAVE2, VCPU },
	{ KVM_GET_XCRS, VCPU },
	{ KVM_GET_DEBUGREGS, VCPU },
	{ KVM_GET_LAPIC, VCPU },
	{ KVM_GET_MSRS, VCPU },
	{ KVM_KVMCLOCK_CTRL, VCPU },
	{ KVM_GET_IRQCHIP, EVLOOP },
	{ KVM_GET_PIT2, EVLOOP },
	{ KVM_GET_CLOCK, EVLOOP },
	{ FICLONE, EVLOOP },
	/* --track-dirty: a snapshot, checkpoint or reset harvests the dirty log (event loop;
	 * `ignition fuzz`: its host loop resets the VM before every input). */
	{ KVM_GET_DIRTY_LOG, EVLOOP | FUZZ },
	{ KVM_CLEAR_DIRTY_LOG, EVLOOP | FUZZ },
	/* In-place reset: each parked vCPU loads its own state; the event loop loads the
	 * VM-wide state and re-arms the devices' queue ioeventfds. */
	{ KVM_SET_MP_STATE, VCPU },
	{ KVM_SET_SREGS, VCPU },
	{ KVM_SET_SREGS2, VCPU },
	{ KVM_SET_XSAVE, VCPU },
	{ KVM_SET_XCRS, VCPU },
	{ KVM_SET_DEBUGREGS, VCPU },
	{ KVM_SET_LAPIC, VCPU },
	{ KVM_SET_MSRS, VCPU },
	{ KVM_SET_IRQCHIP, EVLOOP | FUZZ },
	{ KVM_SET_PIT2, EVLOOP | FUZZ },
	{ KVM_SET_CLOCK, EVLOOP | FUZZ },
	{ KVM_SET_USER_MEMORY_REGION, EVLOOP | FUZZ }, /* reset: KVM drops its stale mappings */
};

static const char *const kind_names[SECCOMP_THREAD_KINDS] = { "vcpu", "evloop", "main", "api",
							      "vnc",  "fuzz",	"gui" };

/* The SDL window's thread (SECCOMP_THREAD_GUI) gets a deny-list: everything is allowed but
 * these, which trap like any refused call.  Why not an allowlist: what the thread calls is
 * decided by the host's graphics stack, not by ignition (Xlib or Wayland, the GL driver that
 * SDL's accelerated renderer loads: Mesa's DRM ioctls differ per GPU, llvmpipe starts
 * threads, proprietary drivers do more), so an allowlist tested here would kill --gui on
 * the next host, and a refused call ends the VM.  The thread parses nothing from the guest
 * (it copies pixels out of the display, whose modes display.c bounds) and talks only to the
 * local display server.  What the deny-list still closes is the way out of the process for
 * an attacker who already controls another thread and so, through the shared memory, can
 * make this one run code: new programs, other processes' memory, namespaces and mounts,
 * kernel modules, BPF and the like. */
static const int gui_denied[] = {
	SCMP_SYS(execve),
	SCMP_SYS(execveat),
	SCMP_SYS(ptrace),
	SCMP_SYS(process_vm_readv),
	SCMP_SYS(process_vm_writev),
	SCMP_SYS(mount),
	SCMP_SYS(umount2),
	SCMP_SYS(pivot_root),
	SCMP_SYS(chroot),
	SCMP_SYS(unshare),
	SCMP_SYS(setns),
	SCMP_SYS(init_module),
	SCMP_SYS(finit_module),
	SCMP_SYS(delete_module),
	SCMP_SYS(kexec_load),
	SCMP_SYS(kexec_file_load),
	SCMP_SYS(bpf),
	SCMP_SYS(perf_event_open),
	SCMP_SYS(reboot),
	SCMP_SYS(swapon),
	SCMP_SYS(swapoff),
	SCMP_SYS(acct),
	SCMP_SYS(keyctl),
	SCMP_SYS(add_key),
	SCMP_SYS(request_key),
	SCMP_SYS(uselib),
	SCMP_SYS(userfaultfd),
	SCMP_SYS(open_by_handle_at),
	SCMP_SYS(name_to_handle_at),
	SCMP_SYS(setuid),
	SCMP_SYS(setgid),
	SCMP_SYS(setreuid),
	SCMP_SYS(setregid),
	SCMP_SYS(setresuid),
	SCMP_SYS(setresgid),
	SCMP_SYS(setgroups),
	SCMP_SYS(settimeofday),
	SCMP_SYS(clock_settime),
	SCMP_SYS(clock_adjtime),
	SCMP_SYS(adjtimex),
	SCMP_SYS(iopl),
	SCMP_SYS(ioperm),
	SCMP_SYS(quotactl),
	SCMP_SYS(fanotify_init),
	SCMP_SYS(lookup_dcookie),
	SCMP_SYS(vhangup),
	SCMP_SYS(personality),
};

/* Highest x86_64 system call number named in the SIGSYS message (Linux 6.x uses < 460). */
#define NAMES_MAX 512

static struct sock_fprog progs[SECCOMP_THREAD_KINDS];
static size_t rule_counts[SECCOMP_THREAD_KINDS];
static char names[NAMES_MAX][24];
static bool built;
static bool selftest;
static void (*on_fatal)(void);
static __thread char thread_name[16] = "?";

const char *seccomp_thread_name(enum seccomp_thread kind)
{
	return kind < SECCOMP_THREAD_KINDS ? kind_names[kind] : "?";
}

/* ---- SIGSYS: async-signal-safe, so only write(2), no stdio ---- */

static size_t put_str(char *buf, size_t at, size_t size, const char *s)
{
	while (*s && at + 1 < size)
		buf[at++] = *s++;
	return at;
}

static size_t put_uint(char *buf, size_t at, size_t size, unsigned long v)
{
	char digits[24];
	int n = 0;

	do {
		digits[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v && n < (int)sizeof(digits));
	while (n && at + 1 < size)
		buf[at++] = digits[--n];
	return at;
}

static void sigsys_handler(int sig, siginfo_t *si, void *uctx)
{
	char msg[160];
	size_t n = 0;
	ssize_t r;
	int nr = si->si_syscall;

	(void)sig;
	(void)uctx;
	if (on_fatal)
		on_fatal();
	if (si->si_code == SYS_SECCOMP) {
		n = put_str(msg, n, sizeof(msg), "ignition: seccomp: refused system call ");
		n = put_str(msg, n, sizeof(msg),
			    si->si_arch == AUDIT_ARCH_X86_64 && nr >= 0 && nr < NAMES_MAX &&
					    names[nr][0]
				    ? names[nr]
				    : "?");
		n = put_str(msg, n, sizeof(msg), " (");
		if (si->si_arch != AUDIT_ARCH_X86_64)
			n = put_str(msg, n, sizeof(msg), "foreign arch, ");
		n = put_uint(msg, n, sizeof(msg), (unsigned long)(unsigned)nr);
		n = put_str(msg, n, sizeof(msg), ") in thread ");
		n = put_str(msg, n, sizeof(msg), thread_name);
	} else {
		n = put_str(msg, n, sizeof(msg), "ignition: SIGSYS (not from seccomp) in thread ");
		n = put_str(msg, n, sizeof(msg), thread_name);
	}
	n = put_str(msg, n, sizeof(msg), "\n");
	r = write(STDERR_FILENO, msg, n);
	(void)r;
	_exit(SECCOMP_EXIT_STATUS);
}

/* ---- building ---- */

/* Argument `arg` with the bits of `mask` equal to `value` (a mask of 0xffffffff compares the
 * low 32 bits, as the kernel's int arguments need).  Spelled out rather than through
 * SCMP_A*_32(), whose two-value form leaves a field implicit. */
static struct scmp_arg_cmp arg_masked(unsigned arg, uint64_t mask, uint64_t value)
{
	return (struct scmp_arg_cmp){
		.arg = arg, .op = SCMP_CMP_MASKED_EQ, .datum_a = mask, .datum_b = value
	};
}

/* One rule per value: `nr` allowed when its argument `arg` (low 32 bits) is one of values[n]. */
static int allow_values(scmp_filter_ctx ctx, int nr, unsigned arg, const uint32_t *values, size_t n,
			size_t *count)
{
	for (size_t i = 0; i < n; i++) {
		int ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1,
					   arg_masked(arg, 0xffffffffu, values[i]));

		if (ret)
			return ret;
		(*count)++;
	}
	return 0;
}

/* What libslirp 4.7 calls beyond the common socket set (its dynamic symbols: accept, ioctl,
 * stat64, fopen64). */
static int add_slirp_rules(scmp_filter_ctx ctx, size_t *count)
{
	int ret;

	/* The DNS forwarder re-reads /etc/resolv.conf (stat, then fopen "r"): openat
	 * (read-only) and fstat are in the event loop's rules already (snapshots need them).
	 * sorecvfrom() sizes a UDP datagram with FIONREAD before reading it. */
	ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
			       arg_masked(1, 0xffffffffu, FIONREAD));
	/* hostfwd: a host connection to a forwarded TCP port is taken with accept(2). */
	if (!ret)
		ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(accept), 0);
	if (!ret)
		*count += 2;
	return ret;
}

static int add_rules(scmp_filter_ctx ctx, enum seccomp_thread kind,
		     const struct seccomp_config *cfg, size_t *count)
{
	unsigned bit = 1u << kind;
	int ret;

	*count = 0;
	for (size_t i = 0; i < sizeof(syscalls) / sizeof(syscalls[0]); i++) {
		if (!(syscalls[i].kinds & bit))
			continue;
		ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, syscalls[i].nr, 0);
		if (ret)
			return ret;
		(*count)++;
	}
	for (size_t i = 0; i < sizeof(ioctls) / sizeof(ioctls[0]); i++) {
		if (!(ioctls[i].kinds & bit))
			continue;
		ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
				       arg_masked(1, 0xffffffffu, ioctls[i].req));
		if (ret)
			return ret;
		(*count)++;
	}
	/* madvise: only MADV_DONTNEED (free() trimming, thread stacks at exit, the balloon's
	 * inflated pages). */
	static const uint32_t dontneed[] = { MADV_DONTNEED };

	ret = allow_values(ctx, SCMP_SYS(madvise), 2, dontneed, 1, count);
	if (ret)
		return ret;
#ifdef SECCOMP_SANITIZER_BUILD
	/* ASan/UBSan builds only (make SAN=1): the sanitizer runtime's allocator maps its shadow
	 * and quarantine with madvise(MADV_NOHUGEPAGE | MADV_DONTDUMP) and its reports read
	 * sched_getaffinity; without these the filter tests could only run on release builds. */
	static const uint32_t san_advice[] = { MADV_NOHUGEPAGE, MADV_DONTDUMP };

	ret = allow_values(ctx, SCMP_SYS(madvise), 2, san_advice, 2, count);
	if (!ret)
		ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(sched_getaffinity), 0);
	if (ret)
		return ret;
	(*count)++;
#endif
	if (kind == SECCOMP_THREAD_VNC) {
		/* libvncserver reads RLIMIT_NOFILE for every new client (its fdQuota): getrlimit
		 * is prlimit64(0, resource, NULL, old); reading only, and only our own. */
		ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(prlimit64), 2,
				       arg_masked(0, UINT64_MAX, 0), arg_masked(2, UINT64_MAX, 0));
		if (ret)
			return ret;
		(*count)++;
	}
	if (kind == SECCOMP_THREAD_FUZZ) {
		/* Solutions and corpus entries are new files created exclusively (fuzz/corpus.c);
		 * seeds, dictionary and a replayed input are read before the filter. */
		ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(openat), 1,
				       arg_masked(2, O_ACCMODE | O_CREAT | O_EXCL | O_TRUNC,
						  O_WRONLY | O_CREAT | O_EXCL));
		if (ret)
			return ret;
		(*count)++;
	}
	if (kind == SECCOMP_THREAD_API) {
		/* PATCH /drives path_on_host after start: the new image is opened here, read-only
		 * or read-write as the drive is, never created or truncated, and handed to the
		 * event loop (whose filter opens no existing file for writing). */
		ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(openat), 1,
				       arg_masked(2, O_ACCMODE | O_CREAT | O_TRUNC, O_RDONLY));
		if (!ret)
			ret = seccomp_rule_add(
				ctx, SCMP_ACT_ALLOW, SCMP_SYS(openat), 1,
				arg_masked(2, O_ACCMODE | O_CREAT | O_TRUNC, O_RDWR));
		if (ret)
			return ret;
		*count += 2;
	}
	if (kind == SECCOMP_THREAD_EVLOOP) {
		/* madvise MADV_DONTDUMP: an in-place checkpoint's copy of guest RAM taken while
		 * the VM runs (control `checkpoint`, Ctrl-A c) stays out of core dumps. */
		ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(madvise), 1,
				       arg_masked(2, 0xffffffffu, MADV_DONTDUMP));
		if (ret)
			return ret;
		(*count)++;
		/* Files: read-only opens, or a new file created exclusively for writing (a
		 * snapshot's files); never an existing file opened for writing. */
		ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(openat), 1,
				       arg_masked(2, O_ACCMODE | O_CREAT | O_TRUNC, O_RDONLY));
		if (!ret)
			ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(openat), 1,
					       arg_masked(2, O_ACCMODE | O_CREAT | O_EXCL | O_TRUNC,
							  O_WRONLY | O_CREAT | O_EXCL));
		if (ret)
			return ret;
		*count += 2;
		/* New sockets: vsock's guest-to-host connects (AF_UNIX), slirp's outbound NAT
		 * (AF_INET/AF_INET6); nothing else (no netlink, no packet sockets). */
		static const uint32_t domains[] = { AF_UNIX, AF_INET, AF_INET6 };

		ret = allow_values(ctx, SCMP_SYS(socket), 0, domains, 3, count);
		if (ret)
			return ret;
		if (cfg->slirp) {
			ret = add_slirp_rules(ctx, count);
			if (ret)
				return ret;
		}
	}
	return 0;
}

static int add_denials(scmp_filter_ctx ctx, size_t *count)
{
	*count = 0;
	for (size_t i = 0; i < sizeof(gui_denied) / sizeof(gui_denied[0]); i++) {
		int ret = seccomp_rule_add(ctx, SCMP_ACT_TRAP, gui_denied[i], 0);

		if (ret)
			return ret;
		(*count)++;
	}
	return 0;
}

/* Compile one allowlist to BPF through a memfd (libseccomp 2.5 exports to a file only). */
static int build_one(enum seccomp_thread kind, const struct seccomp_config *cfg)
{
	bool deny = kind == SECCOMP_THREAD_GUI;
	scmp_filter_ctx ctx = seccomp_init(deny ? SCMP_ACT_ALLOW : SCMP_ACT_TRAP);
	struct sock_filter *insns = NULL;
	off_t len;
	int fd = -1, ret;

	if (!ctx)
		return -ENOMEM;
	/* A foreign-arch call (int 0x80 from 64-bit code) gets the same trap and message. */
	ret = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_TRAP);
	if (!ret)
		ret = deny ? add_denials(ctx, &rule_counts[kind])
			   : add_rules(ctx, kind, cfg, &rule_counts[kind]);
	if (ret)
		goto out;
	fd = memfd_create("ignition-seccomp", MFD_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		goto out;
	}
	ret = seccomp_export_bpf(ctx, fd);
	if (ret)
		goto out;
	len = lseek(fd, 0, SEEK_END);
	if (len <= 0 || len % (off_t)sizeof(*insns) || len / (off_t)sizeof(*insns) > BPF_MAXINSNS) {
		ret = -E2BIG;
		goto out;
	}
	insns = malloc((size_t)len);
	if (!insns) {
		ret = -ENOMEM;
		goto out;
	}
	if (pread(fd, insns, (size_t)len, 0) != len) {
		ret = -EIO;
		free(insns);
		goto out;
	}
	progs[kind].filter = insns;
	progs[kind].len = (unsigned short)(len / (off_t)sizeof(*insns));
out:
	if (fd >= 0)
		close(fd);
	seccomp_release(ctx);
	return ret;
}

int seccomp_filters_build(const struct seccomp_config *cfg)
{
	struct sigaction sa;
	const char *env = getenv("IGNITION_SECCOMP_SELFTEST");
	int ret;

	if (built)
		return -EALREADY;
	/* glibc reads /proc/sys/vm/overcommit_memory the first time a thread's own malloc arena
	 * gives memory back (malloc/arena.c, shrink_heap -> check_may_shrink_heap), which happens
	 * when a thread frees 64 KiB or more at once (the control socket's client buffers, a
	 * long line parsed by jansson): that open() is in no allowlist.  A trim threshold no
	 * arena reaches keeps heaps from shrinking; freed memory stays for reuse, and blocks of
	 * 128 KiB or more are mmap()ed and unmapped as before.  (A no-op under ASan, whose
	 * allocator reads no file.) */
	(void)mallopt(M_TRIM_THRESHOLD, INT_MAX);
	for (int nr = 0; nr < NAMES_MAX; nr++) {
		char *s = seccomp_syscall_resolve_num_arch(SCMP_ARCH_X86_64, nr);

		names[nr][0] = '\0';
		if (s) {
			size_t len = strlen(s);

			if (len >= sizeof(names[nr]))
				len = sizeof(names[nr]) - 1;
			memcpy(names[nr], s, len);
			names[nr][len] = '\0';
			free(s);
		}
	}
	for (int k = 0; k < SECCOMP_THREAD_KINDS; k++) {
		ret = build_one((enum seccomp_thread)k, cfg);
		if (ret) {
			seccomp_filters_free();
			return ret;
		}
	}
	on_fatal = cfg->on_fatal;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = sigsys_handler;
	sa.sa_flags = SA_SIGINFO;
	sigfillset(&sa.sa_mask); /* nothing else runs while the process ends */
	if (sigaction(SIGSYS, &sa, NULL) < 0) {
		ret = -errno;
		seccomp_filters_free();
		return ret;
	}
	selftest = env && !strcmp(env, "1");
	built = true;
	return 0;
}

bool seccomp_filters_built(void)
{
	return built;
}

int seccomp_thread_install(enum seccomp_thread kind, const char *name)
{
	if (!built)
		return 0;
	if (kind >= SECCOMP_THREAD_KINDS || !progs[kind].filter)
		return -EINVAL;
	snprintf(thread_name, sizeof(thread_name), "%s", name);
	/* Required for an unprivileged caller; for everyone it means no exec can gain rights. */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -errno;
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &progs[kind]) < 0)
		return -errno;
	if (selftest && kind == SECCOMP_THREAD_EVLOOP) {
		/* Test hook (IGNITION_SECCOMP_SELFTEST=1): uselib(2) is in no allowlist, so the
		 * SIGSYS handler must end the process with its message. */
		syscall(SYS_uselib, NULL);
		return -ENOTRECOVERABLE; /* not reached while the filter works */
	}
	return 0;
}

size_t seccomp_allowlist_size(enum seccomp_thread kind)
{
	return kind < SECCOMP_THREAD_KINDS ? rule_counts[kind] : 0;
}

size_t seccomp_filter_insns(enum seccomp_thread kind)
{
	return kind < SECCOMP_THREAD_KINDS ? progs[kind].len : 0;
}

void seccomp_filters_free(void)
{
	for (int k = 0; k < SECCOMP_THREAD_KINDS; k++) {
		free(progs[k].filter);
		progs[k].filter = NULL;
		progs[k].len = 0;
	}
	built = false;
}
