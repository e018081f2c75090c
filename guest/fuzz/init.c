/* /init of the fuzz harness images (guest/fuzz/build.sh): mount /proc and /dev, run the
 * harness (/harness) with the environment it needs in this VM, and power off when it exits
 * (the fuzzer normally resets the VM long before).  Static, no dependencies.
 *
 * Built with -DINIT_EXEC (the "exits" image), it execs the harness instead of forking it: the
 * harness is PID 1, and when it exits the kernel panics ("Attempted to kill init!"), which is
 * how the tests make a guest kernel panic without sysrq in the minimal kernel. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void)
{
	char *const argv[] = { "/harness", NULL };
	int status = 0;
	pid_t pid;

	mkdir("/proc", 0555);
	mkdir("/dev", 0755);
	if (mount("proc", "/proc", "proc", 0, NULL) < 0)
		fprintf(stderr, "init: mount /proc: %s\n", strerror(errno));
	if (mount("devtmpfs", "/dev", "devtmpfs", 0, NULL) < 0)
		fprintf(stderr, "init: mount /dev: %s\n", strerror(errno));
	/* glibc must not pick AVX code paths the guest CPU cannot run here (guest/README.md);
	 * ASan: stop at the first report (the library rings CRASH from its death callback),
	 * no leak check (runs end by reset), no symbolizer in the image.
	 * Values given on the kernel command line (which become /init's environment) win. */
	setenv("GLIBC_TUNABLES",
	       "glibc.cpu.hwcaps=-AVX,-AVX2,-AVX512F,-AVX512BW,-AVX512VL,-AVX512DQ,-AVX512CD,-FMA,"
	       "-AVX_Fast_Unaligned_Load",
	       0);
	setenv("ASAN_OPTIONS", "abort_on_error=1:detect_leaks=0:symbolize=0:detect_odr_violation=0",
	       0);
#ifdef INIT_EXEC
	pid = 0;
#else
	pid = fork();
#endif
	if (pid == 0) {
		/* FUZZ_QUIET=1 on the kernel command line (ignition fuzz's default): the harness's
		 * output (a sanitizer's report) goes nowhere instead of through the emulated serial
		 * port, byte by byte, which is slow enough to turn a crash into a hang. */
		const char *quiet = getenv("FUZZ_QUIET");

		if (quiet && !strcmp(quiet, "1")) {
			int fd = open("/dev/null", O_WRONLY);

			if (fd >= 0) {
				dup2(fd, 1);
				dup2(fd, 2);
				close(fd);
			}
		}
		execv(argv[0], argv);
		fprintf(stderr, "init: exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	if (pid < 0)
		fprintf(stderr, "init: fork: %s\n", strerror(errno));
	else
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
	fprintf(stderr, "init: harness ended (status %#x), powering off\n", status);
	sync();
	reboot(RB_POWER_OFF);
	return 0;
}
