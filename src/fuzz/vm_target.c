/* Placeholder until the VM side lands (issue 7, "Snapshot fuzzer"): opening fails with a clear
 * message, so `ignition fuzz` never pretends to fuzz. */
#include "fuzz/vm_target.h"

#include <errno.h>
#include <stdio.h>

int fuzz_vm_target_open(const struct fuzz_vm_opts *o, struct fuzz_target *t, char *err, size_t n)
{
	(void)o;
	(void)t;
	snprintf(err, n, "fuzz: VM target not built yet");
	return -ENOSYS;
}

void fuzz_vm_target_close(struct fuzz_target *t)
{
	(void)t;
}
