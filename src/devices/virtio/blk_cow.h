/* A copy-on-write disk: a read-only base image under a sparse overlay file of the same size,
 * with a bitmap of the 4 KiB blocks the overlay holds.  A restored VM's disk where the file
 * system has no reflinks: setting one up costs the same for a 64 MiB and a 4 GiB disk, and the
 * base (the snapshot's diskN) is never written.  The bitmap lives in memory only; a snapshot
 * of the VM writes the merged image (blk_cow_export).  Not thread-safe: virtio-blk uses it
 * under its transport lock (queue work and completions, on the event loop), and a snapshot
 * exports it with the vCPUs paused and the device quiesced. */
#ifndef IGNITION_DEVICES_VIRTIO_BLK_COW_H
#define IGNITION_DEVICES_VIRTIO_BLK_COW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BLK_COW_BLOCK 4096u

struct blk_cow;

/* A view of base_fd (read) under ovl_fd (read-write), both regular files of the same non-zero
 * size; the fds stay the caller's (not closed by blk_cow_destroy).  The overlay starts empty:
 * every block reads from the base.  -EINVAL for other sizes or file types, -ENOMEM. */
int blk_cow_create(int base_fd, int ovl_fd, struct blk_cow **out)
	__attribute__((warn_unused_result));

/* Free the bitmap (not the files). */
void blk_cow_destroy(struct blk_cow *c);

/* The disk's size in bytes. */
uint64_t blk_cow_size(const struct blk_cow *c);

/* The base image's fd. */
int blk_cow_base_fd(const struct blk_cow *c);

/* Is [off, off + len) inside the disk and not empty? */
bool blk_cow_range_ok(const struct blk_cow *c, uint64_t off, uint64_t len);

/* Whether the block holding byte `off` is in the overlay. */
bool blk_cow_present(const struct blk_cow *c, uint64_t off);

/* Bytes from `off` (at most len) that all come from one file: *overlay says which.  Needs a
 * range for which blk_cow_range_ok() holds; returns at least 1. */
uint64_t blk_cow_run(const struct blk_cow *c, uint64_t off, uint64_t len, bool *overlay);

/* Before writing [off, off + len) to the overlay: copy up from the base the blocks the range
 * covers only in part and the overlay does not hold yet (read base, write overlay, then set
 * their bits).  0, -EINVAL out of range, or -errno of the copy (-EIO for a short read). */
int blk_cow_prepare_write(struct blk_cow *c, uint64_t off, uint64_t len)
	__attribute__((warn_unused_result));

/* After a write of [off, off + len) to the overlay succeeded: every block it touches now
 * reads from the overlay (the partial ones were copied up by blk_cow_prepare_write). */
void blk_cow_mark(struct blk_cow *c, uint64_t off, uint64_t len);

/* The blocks [off, off + len) touches read from the base again (an in-place reset hands back
 * blocks that were on the base at its checkpoint: blk_undo.h).  Their overlay data stays
 * where it is, unreachable; the caller may punch it. */
void blk_cow_unmark(struct blk_cow *c, uint64_t off, uint64_t len);

/* Synchronous read and write of the merged disk (tests, tools; virtio-blk splits its requests
 * with the calls above instead).  0 or -errno; -EINVAL out of range or for len 0. */
int blk_cow_read(const struct blk_cow *c, void *buf, size_t len, uint64_t off)
	__attribute__((warn_unused_result));
int blk_cow_write(struct blk_cow *c, const void *buf, size_t len, uint64_t off)
	__attribute__((warn_unused_result));

/* Make completed writes durable: fdatasync of the overlay (the base never changes). */
int blk_cow_flush(const struct blk_cow *c) __attribute__((warn_unused_result));

/* Write the merged image into out_fd (an empty file, sized here): base blocks where the
 * overlay has none, overlay blocks where it has, copied in the kernel (copy_file_range) and
 * skipping holes, so holes in either stay holes.  0 or -errno. */
int blk_cow_export(const struct blk_cow *c, int out_fd) __attribute__((warn_unused_result));

/* Copy the data extents of in_fd within [start, end) to the same offsets of out_fd (holes are
 * skipped: out_fd keeps its holes there).  0 or -errno. */
int blk_cow_copy_extents(int in_fd, int out_fd, uint64_t start, uint64_t end)
	__attribute__((warn_unused_result));

#endif
