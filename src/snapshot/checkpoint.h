/* In-place reset (docs/snapshots.md, "In-place reset"): a checkpoint of a running VM kept in
 * memory, and a reset that rolls the VM back to it without a new process.
 *
 * A checkpoint holds guest RAM as it was (a private mapping: the restored snapshot's memory
 * file, or an anonymous copy made at the first checkpoint of a booted VM, then kept up to date
 * page by page) and the VM's state as a snapshot state image (vCPUs, irqchip, PIT, clock,
 * devices).  A reset copies back only the pages KVM's dirty log (and the VMM's own writes)
 * says changed since the checkpoint, reloads the state on the same vCPUs and devices (never
 * CPUID: KVM refuses it after the first run), rolls writable disks back, and gives back ends a
 * new start: vsock connections are closed, network links bounce (the MACs the VM has now are
 * kept).  Needs --track-dirty. */
#ifndef IGNITION_SNAPSHOT_CHECKPOINT_H
#define IGNITION_SNAPSHOT_CHECKPOINT_H

#include "core/machine.h"
#include "snapshot/snap.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vcpu_state;

struct checkpoint {
	bool valid;
	uint8_t *mem; /* guest RAM at the checkpoint, map_size bytes (RAM-offset layout) */
	size_t mem_size;
	struct snap_writer state; /* the state image */
	struct snap_file f;	  /* parsed over state.buf */
	struct vcpu_state *vcpus; /* decoded from it, ready to load */
	unsigned nr_vcpus;
	uint64_t resets;
};

struct reset_stats {
	uint64_t pages;	   /* guest pages copied back */
	uint64_t total_us; /* pause to resume */
	uint64_t pause_us; /* until every vCPU was parked and the devices quiesced */
	uint64_t memory_us, state_us, disks_us;
};

/* What a reset does besides the rollback. */
#define RESET_NEW_GENERATION 1u /* a new VMGenID (interactive resets; the fuzzer wants none) */

/* The restored snapshot as the checkpoint: `memfd` is its (root) memory file, mapped again
 * privately; `layers` (may be NULL) lays a Diff chain's pages over it exactly as the restore
 * did.  On the main thread after snapshot_restore, before the VM runs. */
struct layer_chain;
int checkpoint_from_memory_file(struct checkpoint *c, struct machine *m, int memfd,
				const struct layer_chain *layers)
	__attribute__((warn_unused_result));
/* Mark a checkpoint now (Ctrl-A c): pause, quiesce, harvest the dirty log, bring the saved
 * RAM up to date (the pages written since the last checkpoint; all of RAM the first time on
 * a booted VM), capture the state, checkpoint the disks, resume.  Event-loop thread, or the
 * main thread before the VM runs.  0, or -errno with one line in err (the old checkpoint is
 * then gone: c->valid is false). */
int checkpoint_take(struct checkpoint *c, struct machine *m, char *err, size_t err_size)
	__attribute__((warn_unused_result));
/* Roll the VM back to the checkpoint (Ctrl-A r).  Event-loop thread.  0, or -errno with one
 * line in err (the VM is then stopped: a half-reset guest must not run on). */
int checkpoint_reset(struct checkpoint *c, struct machine *m, unsigned flags,
		     struct reset_stats *st, char *err, size_t err_size)
	__attribute__((warn_unused_result));
void checkpoint_free(struct checkpoint *c);

#endif
