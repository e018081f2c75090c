/* ignition guest fuzzing library (fuzz.h; registers: docs/fuzzing.md and ignition's
 * src/devices/fuzz.h, whose numbers are repeated here so that this file stands alone).
 * Compile it WITHOUT -fsanitize-coverage (it implements the coverage callbacks) and without
 * sanitizers (the callbacks run on every edge and must stay cheap). */
#include "fuzz.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define FUZZ_MAGIC   0x5a464749u /* "IGFZ" */
#define FUZZ_VERSION 1u

enum {
	REG_MAGIC = 0x00,
	REG_VERSION = 0x04,
	REG_INPUT_GPA = 0x08,
	REG_INPUT_GPA_HI = 0x0c,
	REG_INPUT_SIZE = 0x10,
	REG_COV_GPA = 0x14,
	REG_COV_GPA_HI = 0x18,
	REG_COV_SIZE = 0x1c,
	REG_INPUT_LEN = 0x20,
	REG_CRASH_CODE = 0x24,
	REG_DOORBELL = 0x28,
};
enum { DOORBELL_SNAPSHOT_ME = 1, DOORBELL_DONE = 2, DOORBELL_CRASH = 3 };

#define REGS_SIZE 4096u
/* The guards are numbered before fuzz_init knows the map's size: 1..DEFAULT_MAP-1, wrapped;
 * a smaller map masks them further.  The device's default map is 64 KiB. */
#define DEFAULT_MAP 65536u
#define MAX_INPUT   (16u << 20)
#define MAX_MAP	    (1u << 20)

static volatile uint32_t *regs;
static const uint8_t *input;
static uint32_t input_size;
/* Until fuzz_init maps the shared map, counters go to a private one. */
static uint8_t dummy_map[DEFAULT_MAP];
static uint8_t *cov_map = dummy_map;
static uint32_t cov_mask = DEFAULT_MAP - 1;
static int snapshot_taken;
static int verbose; /* FUZZ_VERBOSE=2: fuzz_done reports the coverage it sees */

/* ---- Coverage (clang -fsanitize-coverage=trace-pc-guard) ---- */

/* Called by each instrumented module's constructor with its guards [start, stop): give each
 * a nonzero number (0 would switch the edge off), once. */
void __sanitizer_cov_trace_pc_guard_init(uint32_t *start, uint32_t *stop);
void __sanitizer_cov_trace_pc_guard_init(uint32_t *start, uint32_t *stop)
{
	static uint32_t next;

	if (start == stop || *start)
		return;
	for (uint32_t *g = start; g < stop; g++)
		*g = 1 + next++ % (DEFAULT_MAP - 1);
}

/* Called on every instrumented edge: count it in the map (a byte counter that wraps, as
 * AFL's). */
void __sanitizer_cov_trace_pc_guard(uint32_t *guard);
void __sanitizer_cov_trace_pc_guard(uint32_t *guard)
{
	uint32_t g = *guard;

	if (g)
		cov_map[g & cov_mask]++;
}

/* ---- Registers ---- */

static uint32_t reg_read(unsigned off)
{
	return regs[off / 4];
}

static void reg_write(unsigned off, uint32_t v)
{
	/* The compiler may not move memory accesses across a doorbell: the host reads and
	 * writes the windows during it. */
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	regs[off / 4] = v;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
}

/* ---- Crashes ---- */

void fuzz_crash(uint32_t code)
{
	if (regs) {
		reg_write(REG_CRASH_CODE, code);
		reg_write(REG_DOORBELL, DOORBELL_CRASH);
	}
	/* The host kept the VM running: end the process the way the crash would have. */
	_exit(128 + (int)(code & 0x7f));
}

static void on_signal(int sig)
{
	fuzz_crash((uint32_t)sig);
}

static void on_sanitizer_death(void)
{
	fuzz_crash(FUZZ_CRASH_SANITIZER);
}

/* Weak: the harness links without a sanitizer runtime, too. */
void __sanitizer_set_death_callback(void (*callback)(void)) __attribute__((weak));

static int install_crash_handlers(void)
{
	static const int sigs[] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT };
	/* A stack overflow's SIGSEGV needs a stack to run its handler on. */
	static uint8_t altstack[64 * 1024];
	stack_t ss = { .ss_sp = altstack, .ss_size = sizeof(altstack) };
	struct sigaction sa;

	if (sigaltstack(&ss, NULL) < 0)
		return -1;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sa.sa_flags = SA_ONSTACK | SA_NODEFER;
	sigfillset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		if (sigaction(sigs[i], &sa, NULL) < 0)
			return -1;
	if (__sanitizer_set_death_callback)
		__sanitizer_set_death_callback(on_sanitizer_death);
	return 0;
}

/* ---- Set-up ---- */

static int fail(const char *what)
{
	fprintf(stderr, "fuzz_init: %s%s%s\n", what, errno ? ": " : "",
		errno ? strerror(errno) : "");
	return -1;
}

/* The register address from "ignition.fuzz=0x..." on the kernel command line; 0 if absent. */
static uint64_t cmdline_regs(void)
{
	static const char key[] = "ignition.fuzz=";
	char buf[4096];
	ssize_t n;
	int fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	for (char *p = buf; (p = strstr(p, key)); p += sizeof(key) - 1)
		if (p == buf || p[-1] == ' ')
			return strtoull(p + sizeof(key) - 1, NULL, 0);
	return 0;
}

static void *map_phys(int fd, uint64_t gpa, size_t size, int prot)
{
	void *p = mmap(NULL, size, prot, MAP_SHARED, fd, (off_t)gpa);

	return p == MAP_FAILED ? NULL : p;
}

int fuzz_init(void)
{
	uint64_t regs_gpa, in_gpa, cov_gpa;
	uint32_t cov_size;
	void *p;
	int fd;

	errno = 0;
	regs_gpa = cmdline_regs();
	if (!regs_gpa || regs_gpa % REGS_SIZE)
		return fail("no ignition.fuzz=0xADDR on /proc/cmdline (not an ignition fuzz VM?)");
	/* O_SYNC: an uncached mapping, as device memory wants. */
	fd = open("/dev/mem", O_RDWR | O_SYNC | O_CLOEXEC);
	if (fd < 0)
		return fail("cannot open /dev/mem");
	p = map_phys(fd, regs_gpa, REGS_SIZE, PROT_READ | PROT_WRITE);
	if (!p) {
		close(fd);
		return fail("cannot map the fuzz registers");
	}
	regs = p;
	if (reg_read(REG_MAGIC) != FUZZ_MAGIC || reg_read(REG_VERSION) != FUZZ_VERSION) {
		errno = 0;
		close(fd);
		return fail("no ignition fuzz device (magic or version) at ignition.fuzz=");
	}
	in_gpa = reg_read(REG_INPUT_GPA) | (uint64_t)reg_read(REG_INPUT_GPA_HI) << 32;
	input_size = reg_read(REG_INPUT_SIZE);
	cov_gpa = reg_read(REG_COV_GPA) | (uint64_t)reg_read(REG_COV_GPA_HI) << 32;
	cov_size = reg_read(REG_COV_SIZE);
	if (!input_size || input_size > MAX_INPUT || in_gpa % 4096 || cov_size < 4096 ||
	    cov_size > MAX_MAP || (cov_size & (cov_size - 1)) || cov_gpa % 4096) {
		errno = 0;
		close(fd);
		return fail("the fuzz device reports windows this library cannot use");
	}
	p = map_phys(fd, in_gpa, input_size, PROT_READ);
	if (!p) {
		close(fd);
		return fail("cannot map the input window");
	}
	input = p;
	p = map_phys(fd, cov_gpa, cov_size, PROT_READ | PROT_WRITE);
	close(fd);
	if (!p)
		return fail("cannot map the coverage map");
	/* Edges counted before now (start-up) stay in the private map: they are the same in
	 * every run. */
	cov_mask = cov_size - 1;
	__atomic_store_n(&cov_map, (uint8_t *)p, __ATOMIC_RELEASE);
	if (install_crash_handlers() < 0)
		return fail("cannot install the crash handlers");
	verbose = getenv("FUZZ_VERBOSE") && !strcmp(getenv("FUZZ_VERBOSE"), "2");
	return 0;
}

int fuzz_next_input(const uint8_t **buf, size_t *len)
{
	uint32_t n;

	if (!regs || !input)
		return -1;
	if (!snapshot_taken) {
		snapshot_taken = 1;
		reg_write(REG_DOORBELL, DOORBELL_SNAPSHOT_ME);
	}
	n = reg_read(REG_INPUT_LEN);
	/* The host is trusted, but a length past the window would make the target read
	 * unmapped memory. */
	*buf = input;
	*len = n <= input_size ? n : input_size;
	return 0;
}

void fuzz_done(void)
{
	if (verbose) {
		unsigned n = 0, first[8], nf = 0;

		for (uint32_t i = 0; i <= cov_mask; i++)
			if (cov_map[i]) {
				if (nf < 8)
					first[nf++] = i;
				n++;
			}
		fprintf(stderr, "fuzz: done, %u coverage bytes set (first at", n);
		for (unsigned i = 0; i < nf; i++)
			fprintf(stderr, " %u", first[i]);
		fprintf(stderr, ")\n");
	}
	if (regs)
		reg_write(REG_DOORBELL, DOORBELL_DONE);
}
