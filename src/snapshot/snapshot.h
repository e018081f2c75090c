/* Snapshots of a running machine and restores from them (docs/snapshots.md).
 *
 * A snapshot is a directory:
 *   state          the state file (snap.h): machine description, vCPUs, irqchip, PIT, clock,
 *                  every device slot and device record
 *   memory         guest RAM as one raw file, sparse where the guest's pages are zero
 *   disk0, disk1…  copies of the writable disks at the moment of the snapshot (reflinks where
 *                  the file system has them; a copy-on-write disk's merged image)
 *   manifest.json  what a person or a tool reads: type, parent, time, version, config, sizes
 * It is written into a temporary sibling directory, every file and the directory fsynced, then
 * renamed into place: a crash leaves the old state or the new snapshot, never a half one. */
#ifndef IGNITION_SNAPSHOT_SNAPSHOT_H
#define IGNITION_SNAPSHOT_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include "core/machine.h"

/* Timings of the last snapshot_create, in microseconds (for the report line and benches). */
struct snapshot_stats {
	uint64_t pause_us, state_us, memory_us, disks_us, sync_us, total_us;
	uint64_t memory_bytes;	 /* guest RAM size */
	uint64_t memory_written; /* bytes of non-zero pages written */
	bool diff;		 /* a Diff layer over the VM's previous snapshot */
	uint64_t diff_pages;	 /* pages it holds */
};

/* Snapshot machine `m` into `dir` (must not exist; its parent must).  Pauses the VM if it is
 * running (and resumes it after), quiesces every device, saves every vCPU on its own thread.
 * On the event-loop thread.  0, or -errno with one line in err; on failure nothing is left at
 * `dir` and the VM carries on. */
int snapshot_create(struct machine *m, const char *dir, struct snapshot_stats *stats, char *err,
		    size_t err_size) __attribute__((warn_unused_result));

/* A new directory name under `parent` for a snapshot taken now: PARENT/YYYYmmdd-HHMMSS-mmm. */
void snapshot_default_dir(const char *parent, char *out, size_t size);

/* Firecracker's network_overrides entry: interface `id` gets another back end; its MAC (the
 * snapshot's), rate limiters and the rest stay as recorded. */
struct snapshot_net_override {
	const char *id;
	enum machine_net_kind kind;
	const char *tap; /* MACHINE_NET_TAP: the TAP device's name */
};

/* What a restore may change (Firecracker's network_overrides / vsock_override and disks). */
struct snapshot_overrides {
	const char *disks[MACHINE_MAX_DISKS]; /* per disk index: this file, not a private copy */
	const char *vsock_path;
	uint32_t vsock_cid; /* with vsock_path: must be the snapshot's CID; 0: not checked */
	int nr_nets;	    /* >0: replace the snapshot's network back ends with these */
	const struct machine_net *nets; /* [nr_nets] (the command line's --net, by position) */
	/* The REST API's network_overrides, by interface id (a snapshot that records no ids, from
	 * before version 6 of the machine record or the command line: by position, and the
	 * interface takes the override's id).  An overridden interface keeps the snapshot's
	 * MAC (as in Firecracker); the others get a clone's new one. */
	int nr_net_backends;
	const struct snapshot_net_override *net_backends; /* [nr_net_backends] */
	/* Not NULL: guest RAM is filled by the page-fault handler listening on this Unix
	 * socket (the Uffd backend, src/core/uffd.h) instead of mapping `memory`.  Refused for a
	 * Diff snapshot (its memory file holds only its layer); required for a snapshot of a VM
	 * with huge pages (as in Firecracker: hugetlb memory cannot map a file). */
	const char *uffd_path;
	/* With env->track_dirty: made the restored snapshot's memory (the first half of a
	 * checkpoint; checkpoint_take completes it before the VM runs).  May be NULL. */
	struct checkpoint *checkpoint;
	/* The guest clock resumes where it stopped (the REST API's clock_realtime: false) instead
	 * of being brought forward by the wall-clock time elapsed since the snapshot. */
	bool clock_as_saved;
};

/* Capture the VM's state as a state image (vCPUs, VM-wide state, devices; no layer record)
 * with the VM paused and quiesced (checkpoint.c).  0 or -errno. */
int snapshot_capture(struct machine *m, struct snap_writer *w) __attribute__((warn_unused_result));

/* ov's net_backends (the REST API's network_overrides) applied to a snapshot's description `c`:
 * by interface id, or by position when `c` records no ids (the interface then takes the
 * override's id); only kind and TAP name change.  keep_mac[i] (all false on entry) is set for
 * each interface overridden.  0, or -EINVAL with the reason (an id the snapshot lacks, one
 * given twice, more overrides than interfaces, a bad TAP name); `c` may then be partly
 * changed. */
int snapshot_override_backends(struct machine_config *c, const struct snapshot_overrides *ov,
			       bool keep_mac[MACHINE_MAX_NETS], char *err, size_t n)
	__attribute__((warn_unused_result));

struct checkpoint;
/* Rebuild the machine recorded in `dir` and load its state, so that vm_run() continues the
 * guest where it was.  Guest RAM is a private mapping of `memory` (nothing copied); each
 * writable disk gets a private disk (an unlinked file, gone at exit) unless overridden: a
 * reflink of `diskN`, else a copy-on-write overlay over it (nothing copied either).  On the
 * main thread before anything runs.  0, or -errno with one line in err (m is then torn
 * down). */
int snapshot_restore(struct machine *m, const char *dir, const struct snapshot_overrides *ov,
		     const struct machine_env *env, char *err, size_t err_size)
	__attribute__((warn_unused_result));

#endif
