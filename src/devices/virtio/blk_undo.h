/* The undo log of a writable disk, for the in-place reset (docs/snapshots.md, "In-place reset:
 * disks").  After a checkpoint, the first time each 4 KiB block is about to change its content
 * as of the checkpoint is saved, at the same offset, in a sparse unnamed file beside the
 * image; a rollback writes every saved block back.  For a copy-on-write disk (blk_cow.h) a
 * block that still read from the base at the checkpoint costs no copy: it is only noted, and
 * a rollback hands it back to the base (its overlay bit cleared, the overlay block punched).
 * Not thread-safe: virtio-blk uses it under its transport lock. */
#ifndef IGNITION_DEVICES_VIRTIO_BLK_UNDO_H
#define IGNITION_DEVICES_VIRTIO_BLK_UNDO_H

#include <stdbool.h>
#include <stdint.h>

#define BLK_UNDO_BLOCK 4096u /* the same grid as BLK_COW_BLOCK */

struct blk_cow;
struct blk_undo;

/* An undo log for a disk of `size` bytes (> 0) kept in an unnamed file (open_unnamed) created in
 * directory `dir` now, so that checkpoints never need to create files later (the event loop's
 * seccomp filter forbids it).  Nothing is armed and no space is used until
 * blk_undo_checkpoint().  -errno of open (-EACCES, -EROFS...), -EINVAL, -ENOMEM. */
int blk_undo_create(const char *dir, uint64_t size, struct blk_undo **out)
	__attribute__((warn_unused_result));

/* Close the file (its blocks go with it) and free the log. */
void blk_undo_destroy(struct blk_undo *u);

/* Forget what was saved and start a new checkpoint here.  0, or -errno (-ENOMEM, or the
 * file's ftruncate): then no checkpoint is armed. */
int blk_undo_checkpoint(struct blk_undo *u) __attribute__((warn_unused_result));

/* Whether a checkpoint is armed (saves happen, a rollback is possible). */
bool blk_undo_armed(const struct blk_undo *u);

/* Before [off, off + len) of the disk changes: save the blocks the range touches that were not
 * saved since the checkpoint, reading what the guest would read now (from `fd`, the image; or
 * through `cow`, with `fd` its overlay).  Costs one read and one write of each such block
 * (nothing for a copy-on-write block still on the base, and a block of zeros is not written:
 * the log reads zeros where it holds nothing), never more than the range.  0 when nothing is
 * armed; -EINVAL for a range outside the disk or empty; -errno of the copy, and then nothing
 * of this call's failed part counts as saved (the caller must not write the range). */
int blk_undo_save(struct blk_undo *u, int fd, struct blk_cow *cow, uint64_t off, uint64_t len)
	__attribute__((warn_unused_result));

/* Put every saved block back (into `fd`, the image or the overlay of `cow`), fdatasync `fd`,
 * then empty the log: the checkpoint stays armed, so a later rollback returns to the same
 * content again.  -ENOENT when nothing is armed.  On -errno of a write or of fdatasync the
 * disk is partly rolled back and the log is kept whole: calling it again redoes every block
 * (rewriting a block is idempotent). */
int blk_undo_rollback(struct blk_undo *u, int fd, struct blk_cow *cow)
	__attribute__((warn_unused_result));

/* Blocks saved since the checkpoint or the last rollback (what the next rollback rewrites). */
uint64_t blk_undo_saved_blocks(const struct blk_undo *u);

#endif
