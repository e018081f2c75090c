/* The "exits" target: a harness that ends the guest on request, for the tests of the two crash
 * codes the VMM reports itself (docs/fuzzing.md, "Crash codes").  Its image (exits.cpio) runs
 * it as PID 1 (init.c built with -DINIT_EXEC), and the input is one command:
 *   "exit"      return from main: PID 1 exits, the kernel panics ("Attempted to kill init!")
 *               and, with ignition fuzz's panic=-1 reboot=k, resets at once: crash 0x200;
 *   "poweroff"  power the guest off, what /init does when a harness ends: crash 0x201;
 *   "sleep"     sleep 2 s, then DONE: a run long enough to look at the VMM while it runs;
 *   anything else: DONE.
 * A command is compared whole (one memcmp, one branch), so mutations next to never find one.
 * Built with coverage (trace-pc-guard) so that each command's run has its own edges. */
#include "fuzz.h"

#include <stdint.h>
#include <string.h>
#include <sys/reboot.h>
#include <unistd.h>

static int is(const uint8_t *buf, size_t len, const char *cmd)
{
	return len == strlen(cmd) && !memcmp(buf, cmd, len);
}

int main(void)
{
	const uint8_t *buf;
	size_t len;

	if (fuzz_init() < 0)
		return 1;
	for (;;) {
		if (fuzz_next_input(&buf, &len) < 0)
			return 1;
		if (is(buf, len, "exit"))
			return 0;
		if (is(buf, len, "poweroff")) {
			sync();
			reboot(RB_POWER_OFF);
		}
		if (is(buf, len, "sleep"))
			sleep(2);
		fuzz_done();
	}
}
