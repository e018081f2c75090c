/* The boundary between `ignition fuzz` and the VM that runs each input (docs/fuzzing.md,
 * "Host engine"): open a VM from a kernel and a harness initrd, boot it to the harness's
 * SNAPSHOT_ME, and hand the engine a struct fuzz_target whose run() writes the input, resets
 * the VM to the checkpoint and runs it.  src/fuzz/vm_target.c holds it. */
#ifndef IGNITION_FUZZ_VM_TARGET_H
#define IGNITION_FUZZ_VM_TARGET_H

#include "fuzz/engine.h"

#include <stddef.h>
#include <stdint.h>

struct fuzz_vm_opts {
	const char *kernel;  /* --kernel PATH (required) */
	const char *initrd;  /* --initrd HARNESS.cpio (required) */
	const char *cmdline; /* --cmdline S, or NULL for the target's default */
	uint32_t mem_mib;    /* --mem MIB */
	uint32_t timeout_ms; /* --timeout-ms N: a run longer than this is a FUZZ_HANG */
	/* --checkpoint DIR: the VM at SNAPSHOT_ME is restored from DIR when DIR exists, else
	 * written there after the boot; NULL: boot every time. */
	const char *checkpoint_dir;
};

/* Boot the harness VM (or restore o->checkpoint_dir) and fill *t (run, cov, cov_size, max_len,
 * ctx).  0, or -errno with a one-line reason in err. */
int fuzz_vm_target_open(const struct fuzz_vm_opts *o, struct fuzz_target *t, char *err, size_t n)
	__attribute__((warn_unused_result));
/* Stop the VM and free what open() made (t may be one whose open failed: then a no-op). */
void fuzz_vm_target_close(struct fuzz_target *t);

#endif
