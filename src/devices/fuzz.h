/* The fuzz device (issue 7 §4, docs/fuzzing.md): how a harness inside the guest talks to the
 * snapshot fuzzer on the host.  Three pieces of guest-physical address space:
 *   - a register window (a DM_MMIO slot "fuzz0", no interrupt), every access an MMIO exit;
 *   - an INPUT window (FUZZDEV_INPUT_SIZE by default, at most LAYOUT_FUZZ_INPUT_MAX): the host
 *     writes the next input there, the guest reads it at native speed;
 *   - a COVERAGE window (FUZZDEV_COV_SIZE, an AFL-style byte map of edge counters) that the
 *     guest writes at native speed and the host reads after each run.
 * Both windows lie in the MMIO hole (LAYOUT_FUZZ_*), outside guest RAM: host memory the device
 * allocates (anonymous mmap), each registered as its own KVM memory slot through the
 * devmgr_hooks.mem_slot hook.  So they are not dirty-tracked, not rewritten by a reset and not
 * part of a snapshot's memory file; a snapshot keeps only INPUT_LEN.
 *
 * Registers (little-endian, 4-byte accesses at these offsets only: any other size or offset
 * reads 0 and ignores writes):
 *   0x00 MAGIC       R   FUZZDEV_MAGIC, "IGFZ" in memory order
 *   0x04 VERSION     R   FUZZDEV_VERSION
 *   0x08 INPUT_GPA   R   guest-physical address of the input window, low 32 bits
 *   0x0c INPUT_GPA_HI R  high 32 bits
 *   0x10 INPUT_SIZE  R   size of the input window = the largest input
 *   0x14 COV_GPA     R   guest-physical address of the coverage map, low 32 bits
 *   0x18 COV_GPA_HI  R   high 32 bits
 *   0x1c COV_SIZE    R   size of the coverage map in bytes (a power of two)
 *   0x20 INPUT_LEN   R   length of the current input (set by the host, <= INPUT_SIZE)
 *   0x24 CRASH_CODE  RW  code reported with the next CRASH doorbell
 *   0x28 DOORBELL    W   FUZZ_DOORBELL_*: calls the host's callback on the writing vCPU's thread;
 *                        other values are ignored; reads 0
 * Writes to read-only registers are ignored.  Nothing here touches KVM. */
#ifndef IGNITION_DEVICES_FUZZ_H
#define IGNITION_DEVICES_FUZZ_H

#include "core/bus.h"

#include <stddef.h>
#include <stdint.h>

struct devmgr;
struct power_sink;
struct fuzzdev;

#define FUZZDEV_ID	 "fuzz0"
#define FUZZDEV_HID	 "IGNT0002"
#define FUZZDEV_NODE	 "FUZZ"
#define FUZZDEV_MAGIC	 0x5a464749u /* 'I' 'G' 'F' 'Z' read as a little-endian u32 */
#define FUZZDEV_VERSION	 1u
#define FUZZDEV_REG_SIZE 0x1000ull
/* Default window sizes. */
#define FUZZDEV_INPUT_SIZE (1ull << 20) /* 1 MiB */
#define FUZZDEV_COV_SIZE   (1ull << 16) /* 64 KiB, as AFL's map */

/* Register offsets (see above). */
enum fuzzdev_reg {
	FUZZDEV_REG_MAGIC = 0x00,
	FUZZDEV_REG_VERSION = 0x04,
	FUZZDEV_REG_INPUT_GPA = 0x08,
	FUZZDEV_REG_INPUT_GPA_HI = 0x0c,
	FUZZDEV_REG_INPUT_SIZE = 0x10,
	FUZZDEV_REG_COV_GPA = 0x14,
	FUZZDEV_REG_COV_GPA_HI = 0x18,
	FUZZDEV_REG_COV_SIZE = 0x1c,
	FUZZDEV_REG_INPUT_LEN = 0x20,
	FUZZDEV_REG_CRASH_CODE = 0x24,
	FUZZDEV_REG_DOORBELL = 0x28,
};

/* Doorbell values (what the guest writes at FUZZDEV_REG_DOORBELL). */
enum fuzz_doorbell {
	/* The harness is about to read its first input: take the checkpoint now, put an input
	 * in the window (fuzzdev_input + fuzzdev_set_input_len), then let the vCPU go on. */
	FUZZ_DOORBELL_SNAPSHOT_ME = 1,
	/* This input ran to the end (the host normally resets the VM to the checkpoint). */
	FUZZ_DOORBELL_DONE = 2,
	/* The target crashed; `code` is CRASH_CODE (FUZZ_CRASH_* below, or the harness's own). */
	FUZZ_DOORBELL_CRASH = 3,
};

/* CRASH codes the guest library (guest/fuzz/fuzz.h) uses: 1..64 is the number of the fatal
 * signal; FUZZ_CRASH_SANITIZER a sanitizer's report (its death callback).  Harnesses may use
 * codes from FUZZ_CRASH_USER up. */
#define FUZZ_CRASH_SANITIZER 0x100u
#define FUZZ_CRASH_USER	     0x1000u

/* Window sizes for fuzzdev_create; 0 picks the default.  input_size: a multiple of 4 KiB, at
 * most LAYOUT_FUZZ_INPUT_MAX; cov_size: a power of two from 4 KiB to LAYOUT_FUZZ_COV_MAX. */
struct fuzzdev_config {
	uint64_t input_size;
	uint64_t cov_size;
};

/* How the device makes its windows guest-visible: register [gpa, gpa+size) -> hva as a KVM
 * memory slot (vm_add_mem_slot); NULL in unit tests (the windows then exist on the host
 * only). */
struct fuzzdev_mem_hook {
	int (*map)(void *ctx, uint64_t gpa, void *hva, uint64_t size);
	void *ctx;
};

/* The bus ops (exposed for tests). */
extern const struct dev_ops fuzzdev_ops;

/* A device with windows of cfg's sizes (NULL: defaults) at LAYOUT_FUZZ_INPUT_ADDR and
 * LAYOUT_FUZZ_COV_ADDR, mapped through `hook` (may be NULL).  0 or -errno (-EINVAL for a bad
 * size; the hook's error). */
int fuzzdev_create(const struct fuzzdev_config *cfg, const struct fuzzdev_mem_hook *hook,
		   struct fuzzdev **out) __attribute__((warn_unused_result));
/* Free it and its windows (the VM must not run any more: the slots still point there). */
void fuzzdev_destroy(struct fuzzdev *f);
/* Reserve an MMIO slot as FUZZDEV_ID (no interrupt), create the device with its windows
 * mapped through the manager's mem_slot hook, and attach it. */
int fuzzdev_add(struct devmgr *dm, const struct fuzzdev_config *cfg, struct fuzzdev **out)
	__attribute__((warn_unused_result));
/* Install the host's doorbell callback fn(ctx, cmd, code) (NULL: doorbells are only counted).
 * It runs on the vCPU thread that wrote the doorbell, inside that vCPU's MMIO exit (the write
 * has not completed yet): to checkpoint or reset there, call vcpu_request_exit() (core/vcpu.h)
 * and act in the VM's vCPU exit hook (vm_set_vcpu_exit_hook), where the exit is complete.
 * `code` is CRASH_CODE for FUZZ_DOORBELL_CRASH, else 0.  Call before the vCPUs run. */
void fuzzdev_on_doorbell(struct fuzzdev *f,
			 void (*fn)(void *ctx, enum fuzz_doorbell cmd, uint32_t code), void *ctx);
/* The input window on the host: *ptr, *size (the largest input).  Write the input there, then
 * fuzzdev_set_input_len(). */
void fuzzdev_input(struct fuzzdev *f, uint8_t **ptr, size_t *size);
/* Set INPUT_LEN (what the guest reads as the input's length); -EINVAL above the window. */
int fuzzdev_set_input_len(struct fuzzdev *f, size_t len) __attribute__((warn_unused_result));
/* The coverage map on the host: *ptr, *size.  The host clears it before each run. */
void fuzzdev_coverage(struct fuzzdev *f, uint8_t **ptr, size_t *size);
/* The register window's guest-physical base (0 before fuzzdev_add attached it). */
uint64_t fuzzdev_regs_gpa(const struct fuzzdev *f);
/* Append " ignition.fuzz=0x<register GPA>" to the kernel command line `buf` (its size
 * `size`): how the guest library finds the device without parsing ACPI.  -ENOSPC if it does
 * not fit; -EINVAL before fuzzdev_add. */
int fuzzdev_cmdline(const struct fuzzdev *f, char *buf, size_t size)
	__attribute__((warn_unused_result));
/* Doorbells rung so far, per kind (statistics, tests); 0 for an unknown kind. */
uint64_t fuzzdev_doorbells(const struct fuzzdev *f, enum fuzz_doorbell cmd);

/* Debug mode (IGNITION_FUZZ_DEBUG, docs/fuzzing.md): without a fuzzer, serve the inputs in
 * `files` (colon-separated paths, read now, before any sandbox) one per SNAPSHOT_ME/DONE, log
 * each doorbell, the input served and the coverage bytes set to stderr, and stop the VM
 * through `power` after a CRASH or after the last input's DONE.  The VM is never reset: each
 * DONE returns to the guest with the next input in the window.  0 or -errno. */
int fuzzdev_debug_attach(struct fuzzdev *f, const char *files, const struct power_sink *power)
	__attribute__((warn_unused_result));

#endif
