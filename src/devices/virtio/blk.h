/* virtio-blk (virtio 1.2 §5.2) over a raw image file or block device: `--disk PATH[,ro]`, or
 * over a copy-on-write overlay on a read-only base (a restored snapshot's disk, blk_cow.h).
 * Requests go through io_uring and complete on the event loop (blk.c explains the model); the
 * image is locked against a second writer. */
#ifndef IGNITION_DEVICES_VIRTIO_BLK_H
#define IGNITION_DEVICES_VIRTIO_BLK_H

#include "devices/virtio/virtio.h"
#include "util/ratelimit.h"

#include <stdbool.h>
#include <stdint.h>

/* Feature bits (virtio 1.2 §5.2.3). */
#define VIRTIO_BLK_F_SIZE_MAX	  1
#define VIRTIO_BLK_F_SEG_MAX	  2
#define VIRTIO_BLK_F_GEOMETRY	  4
#define VIRTIO_BLK_F_RO		  5
#define VIRTIO_BLK_F_BLK_SIZE	  6
#define VIRTIO_BLK_F_FLUSH	  9
#define VIRTIO_BLK_F_TOPOLOGY	  10
#define VIRTIO_BLK_F_CONFIG_WCE	  11
#define VIRTIO_BLK_F_MQ		  12
#define VIRTIO_BLK_F_DISCARD	  13
#define VIRTIO_BLK_F_WRITE_ZEROES 14

/* Request types and status values (§5.2.6). */
#define VIRTIO_BLK_T_IN		  0
#define VIRTIO_BLK_T_OUT	  1
#define VIRTIO_BLK_T_FLUSH	  4
#define VIRTIO_BLK_T_GET_ID	  8
#define VIRTIO_BLK_T_GET_LIFETIME 10
#define VIRTIO_BLK_T_DISCARD	  11
#define VIRTIO_BLK_T_WRITE_ZEROES 13
#define VIRTIO_BLK_T_SECURE_ERASE 14

#define VIRTIO_BLK_S_OK	    0
#define VIRTIO_BLK_S_IOERR  1
#define VIRTIO_BLK_S_UNSUPP 2

/* Discard / write-zeroes segment flag (§5.2.6): may deallocate. */
#define VIRTIO_BLK_WZ_F_UNMAP 1u

#define VIRTIO_BLK_SECTOR_SIZE 512u
#define VIRTIO_BLK_ID_BYTES    20u /* GET_ID answer: serial, NUL-padded */
#define VIRTIO_BLK_QUEUE_SIZE  256u
/* Largest data transfer of one request; bigger ones fail with IOERR. */
#define VIRTIO_BLK_MAX_REQUEST (64u << 20)
/* Discard / write-zeroes limits advertised in config space. */
#define VIRTIO_BLK_MAX_DISCARD_SECTORS (1u << 22) /* 2 GiB */
#define VIRTIO_BLK_MAX_DISCARD_SEG     32u

/* Config space layout (§5.2.4), byte offsets. */
#define VIRTIO_BLK_CFG_CAPACITY		   0
#define VIRTIO_BLK_CFG_SIZE_MAX		   8
#define VIRTIO_BLK_CFG_SEG_MAX		   12
#define VIRTIO_BLK_CFG_BLK_SIZE		   20
#define VIRTIO_BLK_CFG_MAX_DISCARD_SECTORS 36
#define VIRTIO_BLK_CFG_MAX_DISCARD_SEG	   40
#define VIRTIO_BLK_CFG_DISCARD_ALIGNMENT   44
#define VIRTIO_BLK_CFG_MAX_WZ_SECTORS	   48
#define VIRTIO_BLK_CFG_MAX_WZ_SEG	   52
#define VIRTIO_BLK_CFG_WZ_MAY_UNMAP	   56
#define VIRTIO_BLK_CFG_SIZE		   60

struct devmgr;
struct virtio_blk;

/* The virtio ops of a block device (register it with virtio_mmio_add). */
extern const struct virtio_device_ops virtio_blk_ops;

/* Open `path` (O_RDONLY when read_only) as a disk whose GET_ID answer is `serial` (at most 20
 * bytes used; NULL: "ignition"), and lock it: shared for read-only, exclusive otherwise (OFD
 * lock on the whole file).  -errno from open (-ENOENT, -EACCES...), -EINVAL for an image
 * smaller than one sector, -EBUSY when another open of the image holds a conflicting lock.
 * Without io_uring (ENOSYS/EPERM, or IGNITION_BLK_SYNC=1 in the environment) requests run
 * synchronously, said once per process on stderr. */
int virtio_blk_create(const char *path, bool read_only, const char *serial, struct virtio_blk **out)
	__attribute__((warn_unused_result));

/* Create the disk (serial = `id`), register it as virtio device `id`, and watch its completions
 * on the manager's event loop.  Errors as virtio_blk_create() and virtio_mmio_add(). */
int virtio_blk_add(struct devmgr *dm, const char *id, const char *path, bool read_only,
		   struct virtio_blk **out) __attribute__((warn_unused_result));

/* The same on files already open (a restore's private disk): `fd` is the image, or, when
 * base_fd >= 0, a copy-on-write overlay of the same size over the read-only image base_fd
 * (blk_cow.h): reads come from the base until the guest writes a block, writes and flushes go
 * to the overlay, the base is never written.  Both fds are duplicated (the caller still owns
 * and closes its own); the base gets a shared lock, the overlay an exclusive one.  -EINVAL for
 * a read-only copy-on-write disk or mismatched sizes, else as virtio_blk_create(). */
int virtio_blk_create_fd(int fd, int base_fd, bool read_only, const char *serial,
			 struct virtio_blk **out) __attribute__((warn_unused_result));
int virtio_blk_add_fd(struct devmgr *dm, const char *id, int fd, int base_fd, bool read_only,
		      struct virtio_blk **out) __attribute__((warn_unused_result));

/* The copy-on-write state of a disk made with a base_fd (for a snapshot to export the merged
 * image, with the device quiesced), or NULL for a plain image. */
struct blk_cow;
const struct blk_cow *virtio_blk_cow(const struct virtio_blk *b);

/* After -EBUSY: true when the image is held read-write by someone else, false when read-only
 * users keep a writer out. */
bool virtio_blk_locked_rw(const char *path);

/* Complete requests asynchronously: returns an eventfd that becomes readable when requests
 * finish; the caller then calls virtio_blk_complete().  Call before the driver activates the
 * device.  -ENOTSUP in the synchronous fallback.  (Without it, queue_notify waits for its own
 * requests: unit tests, fuzz harness.) */
int virtio_blk_async_fd(struct virtio_blk *b) __attribute__((warn_unused_result));

/* Reap finished requests (takes the transport lock): the event-loop callback of the fd above. */
void virtio_blk_complete(struct virtio_blk *b);

/* Limit the disk (bandwidth: data bytes of reads and writes; ops: requests, flushes
 * included); a limiter of zero sizes removes the limit.  A request that must wait goes back
 * to the available ring and the queue is not drained until the limiter's timer fires (on the
 * event loop of virtio_blk_add).  Callable before activation or at run time on the event-loop
 * thread; a request held under the old limits is reconsidered at once.  0, -EINVAL
 * (ratelimit_validate), or -errno of the timer. */
int virtio_blk_set_ratelimit(struct virtio_blk *b, const struct ratelimit_cfg *cfg)
	__attribute__((warn_unused_result));

/* The limiter's timer expired: resume the queue (its event-loop callback; unit tests). */
void virtio_blk_ratelimit_fire(struct virtio_blk *b);

/* Requests submitted and not yet completed. */
unsigned virtio_blk_in_flight(const struct virtio_blk *b);

/* Capacity in 512-byte sectors. */
uint64_t virtio_blk_capacity(const struct virtio_blk *b);

/* In-place reset (docs/snapshots.md, "In-place reset: disks").  Mark a checkpoint of the disk:
 * from now on, before a 4 KiB block first changes, its current content is saved into an undo
 * log (an unnamed sparse file beside the image, or beside a copy-on-write overlay, made when
 * the disk was created); a second call drops what the previous one saved and starts over.
 * Discards are then ignored (allowed: §5.2.6.2).  Call with the device quiesced (no request
 * in flight: -EBUSY) and the VM paused, on the event loop.  0 (also for a read-only disk,
 * which has nothing to undo), -ENOMEM, or the error that kept the log from being created
 * (-EACCES, -EROFS...); after an error no checkpoint is armed. */
int virtio_blk_checkpoint(struct virtio_blk *b) __attribute__((warn_unused_result));

/* Give every block changed since the checkpoint its content back, fdatasync the image (or the
 * overlay), and empty the log: the checkpoint stays, so the next rollback returns to it again.
 * For a copy-on-write disk, blocks that read from the base at the checkpoint read from it
 * again (their overlay bits cleared).  Same conditions as virtio_blk_checkpoint(); 0 for a
 * read-only disk, -ENOENT without a checkpoint.  On -errno of a write or of fdatasync the disk
 * is partly rolled back and the log is kept whole: the guest must not run on it, and calling
 * this again redoes the whole rollback. */
int virtio_blk_rollback(struct virtio_blk *b) __attribute__((warn_unused_result));

/* Blocks saved since the checkpoint or the last rollback: what the next rollback rewrites. */
uint64_t virtio_blk_undo_blocks(const struct virtio_blk *b);

/* Put the disk on another image (Firecracker's PATCH /drives path_on_host), on the event loop:
 * `fd` is the new image, open with the disk's read-only-ness, taken over (closed on failure
 * too); `name` names it in messages.  The image is checked (a regular file or block device of
 * at least one sector: else -EINVAL) and locked as at creation (-EBUSY); requests in flight
 * complete on the old image first; then the old one is flushed and closed, the capacity in
 * config space becomes the new image's and a driver that is up gets a configuration change
 * interrupt (virtio 1.2 §2.5.1).  The same file as now only refreshes the capacity.  -EPERM
 * while an in-place reset checkpoint is armed; a copy-on-write disk becomes a plain image and
 * a writable disk loses its undo log.  On failure the old image stays in use. */
int virtio_blk_swap(struct virtio_blk *b, int fd, const char *name)
	__attribute__((warn_unused_result));

/* Wait for (or cancel) requests in flight, close the image (dropping its lock) and free the
 * device (also virtio_blk_ops.destroy). */
void virtio_blk_destroy(struct virtio_blk *b);

#endif
