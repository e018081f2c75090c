/* ignition guest fuzzing library: the guest half of ignition's snapshot fuzzer
 * (docs/fuzzing.md).  A harness links fuzz.c and calls, in this order:
 *
 *     if (fuzz_init() < 0) exit(1);
 *     for (;;) {
 *             const uint8_t *buf; size_t len;
 *             fuzz_next_input(&buf, &len);    first call: the host checkpoints the VM here
 *             target(buf, len);
 *             fuzz_done();                    the host resets the VM to the checkpoint
 *     }
 *
 * The code under test is compiled with clang -fsanitize-coverage=trace-pc-guard (this file is
 * not): its edge counters land in the host's coverage map.  Fatal signals and sanitizer reports
 * become fuzz_crash() calls.  Plain C, no dependency but libc; not thread-safe (one harness
 * thread). */
#ifndef IGNITION_GUEST_FUZZ_H
#define IGNITION_GUEST_FUZZ_H

#include <stddef.h>
#include <stdint.h>

/* Crash codes: 1..64 is a fatal signal's number; FUZZ_CRASH_SANITIZER a sanitizer report
 * (ASan, UBSan...); a harness's own codes start at FUZZ_CRASH_USER. */
#define FUZZ_CRASH_SANITIZER 0x100u
#define FUZZ_CRASH_USER	     0x1000u

/* Find the fuzz device (ignition.fuzz=0xADDR on /proc/cmdline), map its registers, input
 * window and coverage map through /dev/mem, check its magic and version, point the coverage
 * counters at the shared map, and turn SIGSEGV, SIGBUS, SIGILL, SIGFPE and SIGABRT, and a
 * sanitizer's death, into fuzz_crash().  Needs /proc and /dev/mem (root).  0, or -1 with a
 * message on stderr. */
int fuzz_init(void);

/* The next input: *buf points into the shared input window (read-only, valid until
 * fuzz_done), *len is its length.  The first call rings SNAPSHOT_ME: the host takes its
 * checkpoint during that doorbell and writes an input before the guest goes on, so every run
 * starts from here.  A later call (only reached when the host did not reset the VM after
 * fuzz_done, e.g. ignition's IGNITION_FUZZ_DEBUG mode) rings nothing: the host put the next
 * input in the window while handling DONE.  0, or -1 before fuzz_init. */
int fuzz_next_input(const uint8_t **buf, size_t *len);

/* This input ran to the end: ring DONE.  With FUZZ_VERBOSE=2 in the environment (set-up
 * checks only: slow) it first prints how many coverage bytes it sees set.  The host normally resets the VM to the checkpoint,
 * so this returns only to a host that keeps the VM running. */
void fuzz_done(void);

/* Report a crash with `code` (CRASH_CODE, then the CRASH doorbell).  The host normally resets
 * the VM; if it returns, the process exits with status 128 + (code & 0x7f) (async-signal-safe:
 * usable from signal handlers). */
void fuzz_crash(uint32_t code);

#endif
