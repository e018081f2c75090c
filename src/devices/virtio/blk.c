/* virtio-blk (virtio 1.2 §5.2).
 *
 * I/O model.  queue_notify runs on the event loop with the transport lock held: it pops at
 * most VIRTIO_QUEUE_BUDGET chains, checks each header and turns the request into io_uring
 * operations on the image (readv/writev straight into and out of guest memory, fsync,
 * fallocate), submits them with io_uring_submit() and returns without waiting.  The ring
 * signals an eventfd that the event loop watches: completion_cb() takes the transport lock,
 * reaps at most a budget of completions, resubmits the rest of short or interrupted
 * transfers, writes each finished request's status byte, pushes it to the used ring and
 * interrupts the driver once per batch.  At most BLK_SLOTS requests are in flight, each in a
 * slot of a fixed array whose index is its io_uring user_data.
 *
 * Locks.  No blocking I/O system call runs under the transport lock: the lock stays held
 * across io_uring_enter(), which never waits for the disk (the kernel tries each operation
 * without blocking and hands what would block, such as every fsync, to its io-wq workers),
 * while dropping a recursive lock that kick_cb() took for us would let a vCPU reset the queue
 * in the middle of a pass.  The ring is only touched under the transport lock.
 *
 * Reset and destroy cancel what has not started and wait for the rest, so no completion
 * writes into guest memory once they return; a reset therefore blocks its vCPU for as long as
 * the slowest in-flight request takes (the driver is resetting the device; nothing else of it
 * runs meanwhile).  quiesce waits for everything in flight and completes it normally.
 *
 * Without an event loop (unit tests, fuzz harness: created without virtio_blk_add() or
 * virtio_blk_async_fd()) queue_notify waits for its own requests before returning.  Where
 * io_uring is unavailable (io_uring_setup fails with ENOSYS or EPERM: kernel.io_uring_disabled,
 * a container's seccomp profile; or ENOMEM: the memlock limit of older kernels) or
 * IGNITION_BLK_SYNC is set, the same requests run with
 * preadv/pwritev/fdatasync/fallocate inside queue_notify, as before io_uring.
 *
 * Copy-on-write disks (virtio_blk_create_fd with a base; blk_cow.h).  b->fd is the overlay:
 * writes, write-zeroes, discards and flushes go there exactly as to a plain image.  Before a
 * write (or write-zeroes) is queued, the blocks it covers only in part are copied up from the
 * base synchronously (cow_prep_rw); its blocks' bits are set when it completes successfully
 * (finish).  A read is split into runs of blocks that come from one file and carried out one
 * run after the other, each as one operation of the same slot, so a request still has at
 * most one operation in the ring.
 *
 * In-place reset (virtio_blk_checkpoint/rollback, blk_undo.h).  With a checkpoint armed, a
 * write or write-zeroes first saves, synchronously like the copy-up and before it, the blocks
 * it touches for the first time since the checkpoint (undo_ok, in prep_rw and prep_dwz: before
 * anything is queued or run, so both I/O modes are covered); a discard does nothing.  The
 * undo log file is created with the disk, beside the image or the overlay. */
#include "devices/virtio/blk.h"

#include "core/devmgr.h"
#include "core/evloop.h"
#include "core/metrics.h"
#include "devices/virtio/blk_cow.h"
#include "devices/virtio/blk_undo.h"
#include "devices/virtio/mmio.h"
#include "devices/virtio/virtq.h"
#include "snapshot/snap.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <liburing.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

/* Request header (§5.2.6): le32 type, le32 reserved, le64 sector. */
#define REQ_HDR_BYTES 16
/* Discard / write-zeroes segment (§5.2.6): le64 sector, le32 num_sectors, le32 flags. */
#define DWZ_SEG_BYTES 16

/* Requests in flight at most.  A driver cannot have more chains outstanding than its queue has
 * descriptors, so only a driver that publishes a head twice ever waits for a slot. */
#define BLK_SLOTS VIRTIO_BLK_QUEUE_SIZE
/* Submission ring: one operation per slot at a time, plus a reset's cancel request. */
#define RING_ENTRIES (2 * BLK_SLOTS)
/* user_data of the cancel request (slot indices are below BLK_SLOTS). */
#define CANCEL_TAG UINT64_MAX
/* EINTR/EAGAIN resubmissions of one operation without progress before it is an I/O error. */
#define MAX_RETRIES 16
/* Write-zeroes fallback: ZERO_IOVS views of one static buffer of zeros per write. */
#define ZERO_CHUNK (64u * 1024)
#define ZERO_IOVS  16
/* How long destroy waits for requests that could not be cancelled (the VM is going away). */
#define DESTROY_WAIT_MS 5000
/* A wait without a limit that has gone on this long is reported (once). */
#define BLK_SLOW_WAIT_MS 10000

/* The operation a request has in the ring (or runs synchronously) next. */
enum blk_op { OP_NONE, OP_READ, OP_WRITE, OP_FSYNC, OP_FALLOC, OP_ZERO_WRITE };
/* Write-zeroes tries the cheapest way first: deallocate, zero the range in place, write. */
enum dwz_stage { ST_PUNCH, ST_ZERO_RANGE, ST_WRITE };

struct dwz_seg {
	uint64_t off, len; /* bytes */
	bool unmap;
};

/* What a successful request tells a copy-on-write disk's bitmap (blk_cow_mark). */
enum blk_mark { MARK_NONE, MARK_RANGE, MARK_SEGS };

/* One request from pop to push. */
struct blk_req {
	bool busy;
	uint8_t status;
	bool io_failed;	     /* the host's I/O failed (metrics: execute_fails, not invalid_reqs) */
	uint32_t type;	     /* VIRTIO_BLK_T_*, or UINT32_MAX before the header is read */
	uint64_t bytes;	     /* IN / OUT: the request's data length (metrics) */
	uint32_t written;    /* bytes of data written into the chain (reads, GET_ID) */
	uint8_t *status_ptr; /* the chain's last writable byte (§5.2.6) */
	enum blk_op op;
	int fd;		   /* the file of the current operation: the image, or a COW base */
	struct iovec *iov; /* OP_READ/OP_WRITE/OP_ZERO_WRITE: what is left to transfer */
	unsigned niov;
	/* Copy-on-write disk.  A read goes run by run (blk_cow_run), each from the base or the
	 * overlay through the slot's run view (b->rio, cow_read_run) of the data buffers
	 * dio[0..dniov) from byte rd_done on.  A write or write-zeroes sets bits once it
	 * succeeded (mark). */
	struct iovec *dio;
	unsigned dniov;
	uint64_t rd_off, rd_done, rd_total;
	enum blk_mark mark;
	uint64_t mark_off, mark_len;
	uint64_t off, len; /* file offset and bytes left of the current operation */
	int mode;	   /* OP_FALLOC */
	unsigned retries;
	/* DISCARD / WRITE_ZEROES: the segments, copied and checked at submission. */
	bool wz;
	enum dwz_stage stage;
	unsigned nseg, seg;
	struct dwz_seg segs[VIRTIO_BLK_MAX_DISCARD_SEG];
	struct iovec zio[ZERO_IOVS];
	struct virtq_elem elem;
};

struct virtio_blk {
	int fd;		     /* the image; for a copy-on-write disk, the overlay */
	struct blk_cow *cow; /* NULL: a plain image */
	int base_fd;	     /* the copy-on-write base, or -1 */
	struct iovec *rio;   /* COW: BLK_SLOTS * VIRTQ_ELEM_MAX_SEGS entries, one run view each */
	/* The undo log of a writable disk (in-place reset, blk_undo.h), or NULL with the error
	 * that prevented it in undo_err. */
	struct blk_undo *undo;
	int undo_err;
	bool read_only;
	uint64_t capacity; /* 512-byte sectors */
	char serial[VIRTIO_BLK_ID_BYTES];
	uint8_t config[VIRTIO_BLK_CFG_SIZE];
	/* Set while the driver has the device activated. */
	struct virtio_mmio *t;
	struct virtq *vq;
	/* The transport, kept across resets: completions take its lock (atomic: read by the
	 * event loop before it holds that lock). */
	struct virtio_mmio *lock_t;
	bool uring; /* false: synchronous fallback */
	struct io_uring ring;
	int efd;	   /* eventfd the ring signals completions on, or -1 */
	bool async;	   /* somebody polls efd: queue_notify does not wait */
	struct evloop *ev; /* the loop that watches efd (virtio_blk_add), or NULL */
	unsigned in_flight;
	bool starved; /* popping stopped for want of a slot */
	unsigned nfree;
	uint16_t free_slots[BLK_SLOTS];
	struct blk_req *reqs;  /* BLK_SLOTS */
	struct metrics_blk *m; /* this drive's counters (never NULL) */
	/* Rate limiter: bytes of request data, one op per request.  A request it holds back goes
	 * back to the available ring and the queue is not drained until its timer fires. */
	struct ratelimit rl;
	bool rl_watched; /* rl's timerfd is on ev */
};

static const uint8_t zeros[ZERO_CHUNK];

static uint64_t blk_features(void *dev)
{
	struct virtio_blk *b = dev;
	uint64_t f = VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC) |
		     VIRTIO_BIT(VIRTIO_F_EVENT_IDX) | VIRTIO_BIT(VIRTIO_BLK_F_SEG_MAX) |
		     VIRTIO_BIT(VIRTIO_BLK_F_BLK_SIZE) | VIRTIO_BIT(VIRTIO_BLK_F_FLUSH);

	if (b->read_only)
		f |= VIRTIO_BIT(VIRTIO_BLK_F_RO);
	else
		f |= VIRTIO_BIT(VIRTIO_BLK_F_DISCARD) | VIRTIO_BIT(VIRTIO_BLK_F_WRITE_ZEROES);
	return f;
}

static uint64_t blk_config_read(void *dev, uint32_t off, unsigned size)
{
	struct virtio_blk *b = dev;

	return virtio_config_get(b->config, sizeof(b->config), off, size);
}

/* Nothing in our config space is driver-writable (no CONFIG_WCE): writes are dropped. */
static void blk_config_write(void *dev, uint32_t off, unsigned size, uint64_t val)
{
	log_guest("virtio-blk: config write at %u ignored", off);
}

static bool range_ok(const struct virtio_blk *b, uint64_t sector, uint64_t nsectors)
{
	return sector <= b->capacity && nsectors <= b->capacity - sector;
}

static struct blk_req *slot_get(struct virtio_blk *b)
{
	struct blk_req *r;

	if (!b->nfree)
		return NULL;
	r = &b->reqs[b->free_slots[--b->nfree]];
	r->busy = true;
	return r;
}

static void slot_put(struct virtio_blk *b, struct blk_req *r)
{
	r->busy = false;
	r->op = OP_NONE;
	b->free_slots[b->nfree++] = (uint16_t)(r - b->reqs);
}

/* Make iov[0..n) describe its own bytes [skip, skip + len), in place (the caller checked that
 * they exist); returns the number of entries from *first on. */
static unsigned iov_trim(struct iovec *iov, unsigned n, size_t skip, size_t len,
			 struct iovec **first)
{
	unsigned i = 0, k;

	while (i < n && skip >= iov[i].iov_len) {
		skip -= iov[i].iov_len;
		i++;
	}
	if (i < n) {
		iov[i].iov_base = (uint8_t *)iov[i].iov_base + skip;
		iov[i].iov_len -= skip;
	}
	*first = iov + i;
	for (k = i; k < n && len; k++) {
		if (iov[k].iov_len > len)
			iov[k].iov_len = len;
		len -= iov[k].iov_len;
	}
	return k - i;
}

/* Drop the first `done` bytes of r's remaining transfer. */
static void iov_advance(struct blk_req *r, size_t done)
{
	r->off += done;
	r->len -= done;
	while (r->niov && done >= r->iov->iov_len) {
		done -= r->iov->iov_len;
		r->iov++;
		r->niov--;
	}
	if (r->niov) {
		r->iov->iov_base = (uint8_t *)r->iov->iov_base + done;
		r->iov->iov_len -= done;
	}
}

static uint8_t *last_writable_byte(const struct virtq_elem *e)
{
	for (unsigned i = e->nr_out + e->nr_in; i > e->nr_out; i--) {
		const struct iovec *v = &e->iov[i - 1];

		if (v->iov_len)
			return (uint8_t *)v->iov_base + v->iov_len - 1;
	}
	return NULL;
}

/* dst[] = the bytes [skip, skip + len) of src[0..n) (which has them); returns the entries. */
static unsigned iov_slice(const struct iovec *src, unsigned n, size_t skip, size_t len,
			  struct iovec *dst)
{
	unsigned i = 0, k = 0;

	while (i < n && skip >= src[i].iov_len) {
		skip -= src[i].iov_len;
		i++;
	}
	for (; i < n && len; i++, skip = 0) {
		size_t m = src[i].iov_len - skip;

		if (m > len)
			m = len;
		dst[k++] = (struct iovec){ .iov_base = (uint8_t *)src[i].iov_base + skip,
					   .iov_len = m };
		len -= m;
	}
	return k;
}

/* Point r's current operation at the next run of its copy-on-write read: the longest stretch
 * from where it stands that comes from one file (the base or the overlay). */
static void cow_read_run(struct virtio_blk *b, struct blk_req *r)
{
	uint64_t left = r->rd_total - r->rd_done;
	bool ovl;

	r->off = r->rd_off + r->rd_done;
	r->len = blk_cow_run(b->cow, r->off, left, &ovl);
	r->fd = ovl ? b->fd : b->base_fd;
	r->iov = b->rio + (size_t)(r - b->reqs) * VIRTQ_ELEM_MAX_SEGS;
	r->niov = iov_slice(r->dio, r->dniov, (size_t)r->rd_done, (size_t)r->len, r->iov);
	r->retries = 0;
}

/* Copy-on-write disk, after prep_rw checked the request.  A write first copies up from the
 * base the (at most two) blocks it covers in part, synchronously: 8 KiB at most, and doing it
 * here, before anything is in the ring, is what keeps two writes to different sectors of one
 * block from both copying it up.  Its bits are set when it succeeds (finish).  A read is
 * carried out run by run, each run one operation on the file that has it. */
static uint8_t cow_prep_rw(struct virtio_blk *b, struct blk_req *r, bool write)
{
	int ret;

	if (write) {
		ret = blk_cow_prepare_write(b->cow, r->off, r->len);
		if (ret) {
			log_guest("virtio-blk: copy-up for a write at byte %llu: %s",
				  (unsigned long long)r->off, strerror(-ret));
			return VIRTIO_BLK_S_IOERR;
		}
		r->mark = MARK_RANGE;
		r->mark_off = r->off;
		r->mark_len = r->len;
		return VIRTIO_BLK_S_OK;
	}
	r->dio = r->iov;
	r->dniov = r->niov;
	r->rd_off = r->off;
	r->rd_done = 0;
	r->rd_total = r->len;
	cow_read_run(b, r);
	return VIRTIO_BLK_S_OK;
}

/* Before anything can change [off, off + len) (a write, a write-zeroes, a copy-up): with a
 * checkpoint armed, save the blocks it touches for the first time since (blk_undo.h), before
 * the operation is queued or run, in both I/O modes.  The save is synchronous, as the
 * copy-up is: one read and one write per newly touched block, bounded by the request's
 * length (VIRTIO_BLK_MAX_REQUEST, or the segments of a write-zeroes).  False when the save
 * failed: the request then fails without writing, so no change ever escapes the log. */
static bool undo_ok(struct virtio_blk *b, uint64_t off, uint64_t len)
{
	int ret = blk_undo_save(b->undo, b->fd, b->cow, off, len);

	if (ret)
		log_guest("virtio-blk: saving %llu bytes at %llu for the checkpoint: %s",
			  (unsigned long long)len, (unsigned long long)off, strerror(-ret));
	return ret == 0;
}

/* IN / OUT (§5.2.6.1): data is whole sectors, inside the disk, at most one request's worth. */
static uint8_t prep_rw(struct virtio_blk *b, struct blk_req *r, uint64_t sector, bool write)
{
	struct virtq_elem *e = &r->elem;
	size_t len = write ? e->out_len - REQ_HDR_BYTES : e->in_len - 1u;

	if (write && b->read_only) {
		log_guest("virtio-blk: write to a read-only disk");
		return VIRTIO_BLK_S_IOERR;
	}
	if (len % VIRTIO_BLK_SECTOR_SIZE || len > VIRTIO_BLK_MAX_REQUEST ||
	    !range_ok(b, sector, len / VIRTIO_BLK_SECTOR_SIZE)) {
		log_guest("virtio-blk: bad %s of %zu bytes at sector %llu (capacity %llu)",
			  write ? "write" : "read", len, (unsigned long long)sector,
			  (unsigned long long)b->capacity);
		return VIRTIO_BLK_S_IOERR;
	}
	if (len == 0)
		return VIRTIO_BLK_S_OK;
	if (write)
		r->niov = iov_trim(e->iov, e->nr_out, REQ_HDR_BYTES, len, &r->iov);
	else
		r->niov = iov_trim(e->iov + e->nr_out, e->nr_in, 0, len, &r->iov);
	r->op = write ? OP_WRITE : OP_READ;
	r->off = sector * VIRTIO_BLK_SECTOR_SIZE;
	r->len = len;
	r->bytes = len;
	r->written = write ? 0 : (uint32_t)len;
	if (write && !undo_ok(b, r->off, r->len))
		return VIRTIO_BLK_S_IOERR;
	return b->cow ? cow_prep_rw(b, r, write) : VIRTIO_BLK_S_OK;
}

static uint8_t do_get_id(struct virtio_blk *b, struct blk_req *r)
{
	size_t room = r->elem.in_len - 1u;
	size_t n = room < VIRTIO_BLK_ID_BYTES ? room : VIRTIO_BLK_ID_BYTES;

	r->written = (uint32_t)virtq_elem_write(&r->elem, 0, b->serial, n);
	return VIRTIO_BLK_S_OK;
}

/* Set up the first operation of segment r->seg, or of the next one that is not empty; false
 * when no segment is left. */
static bool dwz_seg_start(struct blk_req *r)
{
	const struct dwz_seg *s;

	while (r->seg < r->nseg && r->segs[r->seg].len == 0)
		r->seg++;
	if (r->seg == r->nseg)
		return false;
	s = &r->segs[r->seg];
	r->op = OP_FALLOC;
	r->off = s->off;
	r->len = s->len;
	r->retries = 0;
	if (!r->wz || s->unmap) {
		r->stage = ST_PUNCH;
		r->mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
	} else {
		r->stage = ST_ZERO_RANGE;
		r->mode = FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
	}
	return true;
}

/* The next write of zeros for what is left of the current segment (r->off, r->len). */
static void zero_write_setup(struct blk_req *r)
{
	uint64_t left = r->len;
	unsigned k = 0;

	while (left && k < ZERO_IOVS) {
		size_t n = left < ZERO_CHUNK ? (size_t)left : ZERO_CHUNK;

		r->zio[k++] = (struct iovec){ .iov_base = (void *)zeros, .iov_len = n };
		left -= n;
	}
	r->iov = r->zio;
	r->niov = k;
	r->op = OP_ZERO_WRITE;
}

/* DISCARD / WRITE_ZEROES (§5.2.6): a list of {sector, num_sectors, flags} segments, all copied
 * and checked before any of them is carried out. */
static uint8_t prep_dwz(struct virtio_blk *b, struct blk_req *r, bool wz)
{
	struct virtq_elem *e = &r->elem;
	size_t len = e->out_len - REQ_HDR_BYTES;
	size_t nseg = len / DWZ_SEG_BYTES;

	if (b->read_only)
		return VIRTIO_BLK_S_IOERR;
	if (len == 0 || len % DWZ_SEG_BYTES || nseg > VIRTIO_BLK_MAX_DISCARD_SEG) {
		log_guest("virtio-blk: %s with %zu bytes of segments",
			  wz ? "write-zeroes" : "discard", len);
		return VIRTIO_BLK_S_IOERR;
	}
	for (size_t i = 0; i < nseg; i++) {
		uint8_t seg[DWZ_SEG_BYTES];
		uint64_t sector;
		uint32_t num, flags;

		virtq_elem_read(e, REQ_HDR_BYTES + i * DWZ_SEG_BYTES, seg, sizeof(seg));
		sector = virtio_get_le(seg, 8);
		num = (uint32_t)virtio_get_le(seg + 8, 4);
		flags = (uint32_t)virtio_get_le(seg + 12, 4);
		/* §5.2.6.2: unknown flags, or unmap on a discard, are unsupported. */
		if (flags & ~VIRTIO_BLK_WZ_F_UNMAP || (!wz && flags))
			return VIRTIO_BLK_S_UNSUPP;
		if (num > VIRTIO_BLK_MAX_DISCARD_SECTORS || !range_ok(b, sector, num))
			return VIRTIO_BLK_S_IOERR;
		r->segs[i] = (struct dwz_seg){ .off = sector * VIRTIO_BLK_SECTOR_SIZE,
					       .len = (uint64_t)num * VIRTIO_BLK_SECTOR_SIZE,
					       .unmap = flags & VIRTIO_BLK_WZ_F_UNMAP };
	}
	/* With a checkpoint armed a discard does nothing: it is a hint, after which the sectors
	 * may read as anything (§5.2.6.2), and keeping them is cheaper than saving them into
	 * the undo log.  A write-zeroes saves what its segments cover first. */
	if (!wz && blk_undo_armed(b->undo))
		return VIRTIO_BLK_S_OK;
	for (size_t i = 0; wz && i < nseg; i++)
		if (r->segs[i].len && !undo_ok(b, r->segs[i].off, r->segs[i].len))
			return VIRTIO_BLK_S_IOERR;
	/* Copy-on-write disk: write-zeroes copies up its segments' partial blocks and sets their
	 * bits once done (the overlay then reads as zeros there, holes included).  A discard only
	 * punches the overlay: where the base shows through it changes nothing, which is
	 * allowed (§5.2.6.2 requires zeros after write-zeroes, nothing of discarded sectors). */
	for (size_t i = 0; wz && b->cow && i < nseg; i++) {
		int ret = r->segs[i].len
				  ? blk_cow_prepare_write(b->cow, r->segs[i].off, r->segs[i].len)
				  : 0;

		if (ret) {
			log_guest("virtio-blk: copy-up for write-zeroes at byte %llu: %s",
				  (unsigned long long)r->segs[i].off, strerror(-ret));
			return VIRTIO_BLK_S_IOERR;
		}
	}
	if (wz && b->cow)
		r->mark = MARK_SEGS;
	r->wz = wz;
	r->nseg = (unsigned)nseg;
	r->seg = 0;
	dwz_seg_start(r); /* nothing to do if every segment is empty: op stays OP_NONE */
	return VIRTIO_BLK_S_OK;
}

/* Finish r with an I/O error (host side: logged, rate-limited, as a guest can provoke it). */
static bool fail(struct blk_req *r, int err)
{
	static const char *const what[] = { "request", "read",	    "write",
					    "flush",   "fallocate", "write of zeros" };

	log_guest("virtio-blk: %s at byte %llu: %s", what[r->op], (unsigned long long)r->off,
		  strerror(-err));
	r->status = VIRTIO_BLK_S_IOERR;
	r->written = 0;
	r->io_failed = true;
	return true;
}

/* The next step of a discard / write-zeroes after its current operation returned `res`. */
static bool dwz_step(struct blk_req *r, int res)
{
	if (r->op == OP_FALLOC) {
		if (res == 0)
			goto next;
		if (!r->wz) {
			/* Discard is a hint: a back end that cannot punch holes ignores it. */
			if (res == -EOPNOTSUPP || res == -ENOSYS)
				goto next;
			return fail(r, res);
		}
		r->retries = 0;
		if (r->stage == ST_PUNCH) {
			r->stage = ST_ZERO_RANGE;
			r->mode = FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
			return false;
		}
		r->stage = ST_WRITE;
		zero_write_setup(r);
		return false;
	}
	/* OP_ZERO_WRITE */
	if (res < 0)
		return fail(r, res);
	if (res == 0)
		return fail(r, -EIO);
	r->off += (uint64_t)res;
	r->len -= (uint64_t)res;
	r->retries = 0;
	if (r->len) {
		zero_write_setup(r);
		return false;
	}
next:
	r->seg++;
	if (dwz_seg_start(r))
		return false;
	r->op = OP_NONE;
	r->status = VIRTIO_BLK_S_OK;
	return true;
}

/* The current operation of r returned `res` (bytes or -errno): set up the next one and return
 * false, or finish the request (status set) and return true. */
static bool op_done(struct virtio_blk *b, struct blk_req *r, int res)
{
	if ((res == -EINTR || res == -EAGAIN) && ++r->retries <= MAX_RETRIES)
		return false; /* the same operation again */
	switch (r->op) {
	case OP_READ:
	case OP_WRITE:
		if (res < 0)
			return fail(r, res);
		if (res == 0) {
			if (r->op == OP_WRITE)
				return fail(r, -EIO);
			/* End of file: the image shrank under us; the rest reads as zeros. */
			for (unsigned i = 0; i < r->niov; i++)
				memset(r->iov[i].iov_base, 0, r->iov[i].iov_len);
			r->off += r->len; /* a copy-on-write read goes on after it */
			r->len = 0;
		} else {
			/* Short transfer: go on with the rest. */
			iov_advance(r, (size_t)res);
			r->retries = 0;
		}
		if (r->len)
			return false;
		if (r->op == OP_READ && b->cow) {
			/* The run is done: on with the next one, if any. */
			r->rd_done = r->off - r->rd_off;
			if (r->rd_done < r->rd_total) {
				cow_read_run(b, r);
				return false;
			}
		}
		r->status = VIRTIO_BLK_S_OK;
		return true;
	case OP_FSYNC:
		if (res < 0)
			return fail(r, res);
		r->status = VIRTIO_BLK_S_OK;
		return true;
	case OP_FALLOC:
	case OP_ZERO_WRITE:
		return dwz_step(r, res);
	case OP_NONE:
		break;
	}
	return fail(r, -EINVAL);
}

/* Run r's current operation with a plain system call (synchronous fallback). */
static int op_sync(struct virtio_blk *b, struct blk_req *r)
{
	ssize_t n;

	switch (r->op) {
	case OP_READ:
		n = preadv(r->fd, r->iov, (int)r->niov, (off_t)r->off);
		break;
	case OP_WRITE:
	case OP_ZERO_WRITE:
		n = pwritev(r->fd, r->iov, (int)r->niov, (off_t)r->off);
		break;
	case OP_FSYNC:
		n = fdatasync(r->fd);
		break;
	case OP_FALLOC:
		n = fallocate(r->fd, r->mode, (off_t)r->off, (off_t)r->len);
		break;
	default:
		return -EINVAL;
	}
	/* Transfers are at most VIRTIO_BLK_MAX_REQUEST (64 MiB) or 1 MiB of zeros: fit an int. */
	return n < 0 ? -errno : (int)n;
}

static struct io_uring_sqe *get_sqe(struct virtio_blk *b)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&b->ring);

	if (!sqe) {
		/* Full of prepared entries: hand them to the kernel to make room. */
		io_uring_submit(&b->ring);
		sqe = io_uring_get_sqe(&b->ring);
	}
	return sqe;
}

/* Put r's current operation into the submission ring (submitted by the caller's submit()). */
static int op_queue(struct virtio_blk *b, struct blk_req *r)
{
	struct io_uring_sqe *sqe = get_sqe(b);

	if (!sqe)
		return -EBUSY;
	switch (r->op) {
	case OP_READ:
		io_uring_prep_readv(sqe, r->fd, r->iov, r->niov, r->off);
		break;
	case OP_WRITE:
	case OP_ZERO_WRITE:
		io_uring_prep_writev(sqe, r->fd, r->iov, r->niov, r->off);
		break;
	case OP_FSYNC:
		/* fdatasync semantics: the data and the metadata needed to read it back (size,
		 * allocation) reach stable storage, which is all FLUSH promises; timestamps are
		 * not worth a second journal commit. */
		io_uring_prep_fsync(sqe, r->fd, IORING_FSYNC_DATASYNC);
		break;
	case OP_FALLOC:
		io_uring_prep_fallocate(sqe, r->fd, r->mode, r->off, r->len);
		break;
	default:
		return -EINVAL;
	}
	io_uring_sqe_set_data64(sqe, (uint64_t)(r - b->reqs));
	return 0;
}

/* The drive's counters for a request that is answered now (docs/metrics.md). */
static void count(struct virtio_blk *b, const struct blk_req *r)
{
	struct metrics_blk *m = b->m;

	if (r->status != VIRTIO_BLK_S_OK) {
		if (r->io_failed)
			METRIC_INC(m->execute_fails);
		else
			METRIC_INC(m->invalid_reqs_count);
		return;
	}
	switch (r->type) {
	case VIRTIO_BLK_T_IN:
		METRIC_INC(m->read_count);
		METRIC_ADD(m->read_bytes, r->bytes);
		break;
	case VIRTIO_BLK_T_OUT:
		METRIC_INC(m->write_count);
		METRIC_ADD(m->write_bytes, r->bytes);
		break;
	case VIRTIO_BLK_T_FLUSH:
		METRIC_INC(m->flush_count);
		break;
	case VIRTIO_BLK_T_DISCARD:
		METRIC_INC(m->discard_count);
		break;
	case VIRTIO_BLK_T_WRITE_ZEROES:
		METRIC_INC(m->write_zeroes_count);
		break;
	default:
		break;
	}
}

/* Write the status byte, return the chain to the driver (unless `deliver` is false: reset),
 * free the slot. */
static void finish(struct virtio_blk *b, struct blk_req *r, bool deliver)
{
	/* A copy-on-write disk's blocks read from the overlay once a write there succeeded. */
	if (deliver && b->cow && r->status == VIRTIO_BLK_S_OK) {
		if (r->mark == MARK_RANGE)
			blk_cow_mark(b->cow, r->mark_off, r->mark_len);
		for (unsigned i = 0; r->mark == MARK_SEGS && i < r->nseg; i++)
			blk_cow_mark(b->cow, r->segs[i].off, r->segs[i].len);
	}
	if (deliver)
		count(b, r);
	if (deliver && b->vq) {
		*r->status_ptr = r->status;
		virtq_push(b->vq, r->elem.head, r->written + 1);
	}
	slot_put(b, r);
}

static void submit(struct virtio_blk *b)
{
	int ret;

	if (!io_uring_sq_ready(&b->ring))
		return;
	ret = io_uring_submit(&b->ring);
	if (ret < 0) {
		/* Transient (EAGAIN, EBUSY): the entries stay queued; come back for them. */
		log_guest("virtio-blk: io_uring submit: %s", strerror(-ret));
		if (b->t)
			virtio_mmio_queue_yield(b->t, 0);
	}
}

/* Reap at most `max` completions; with `deliver` false (reset, destroy) requests are dropped
 * without touching guest memory.  Returns the number of requests pushed. */
static unsigned reap(struct virtio_blk *b, unsigned max, bool deliver)
{
	struct io_uring_cqe *cqe;
	unsigned pushed = 0;

	for (unsigned seen = 0; seen < max && io_uring_peek_cqe(&b->ring, &cqe) == 0; seen++) {
		uint64_t tag = io_uring_cqe_get_data64(cqe);
		int res = cqe->res;
		struct blk_req *r;

		io_uring_cqe_seen(&b->ring, cqe);
		if (tag >= BLK_SLOTS || !b->reqs[tag].busy)
			continue; /* the cancel request's own completion */
		r = &b->reqs[tag];
		if (deliver && !op_done(b, r, res)) {
			if (op_queue(b, r) == 0)
				continue;
			fail(r, -EBUSY);
		}
		b->in_flight--;
		finish(b, r, deliver);
		pushed += deliver;
	}
	return pushed;
}

/* Wait until nothing is in flight (at most timeout_ms; -1: no limit); returns requests pushed.
 * No limit for a reset, a snapshot's quiesce or an image swap: a request the kernel still
 * holds may yet write into guest memory, so it cannot be abandoned; a wait that goes on is
 * said once, so that a VM stuck on the host's storage is not a silent hang. */
static unsigned wait_all(struct virtio_blk *b, bool deliver, int timeout_ms)
{
	unsigned pushed = 0;
	int waited = 0;

	while (b->in_flight) {
		struct __kernel_timespec ts = { .tv_sec = 1 };
		struct io_uring_cqe *cqe;
		int ret = io_uring_submit_and_wait_timeout(&b->ring, &cqe, 1, &ts, NULL);

		if (ret < 0 && ret != -ETIME && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY) {
			log_error("virtio-blk: waiting for %u requests: %s", b->in_flight,
				  strerror(-ret));
			break;
		}
		if (ret == -ETIME && timeout_ms >= 0 && (waited += 1000) >= timeout_ms)
			break;
		if (ret == -ETIME && timeout_ms < 0 && (waited += 1000) == BLK_SLOW_WAIT_MS)
			log_warn("virtio-blk: %u requests still unfinished after %d s: waiting for "
				 "the host's storage",
				 b->in_flight, BLK_SLOW_WAIT_MS / 1000);
		pushed += reap(b, UINT_MAX, deliver);
	}
	return pushed;
}

/* Cancel every request of ours that has not started (kernel 5.19+; older ones refuse and we
 * simply wait for everything). */
static void cancel_all(struct virtio_blk *b)
{
	struct io_uring_sqe *sqe = get_sqe(b);

	if (!sqe)
		return;
	io_uring_prep_cancel_fd(sqe, b->fd, IORING_ASYNC_CANCEL_ALL);
	io_uring_sqe_set_data64(sqe, CANCEL_TAG);
	/* A copy-on-write disk's reads of the base (the ring has room: one operation per slot
	 * plus these two). */
	if (b->base_fd >= 0 && (sqe = get_sqe(b))) {
		io_uring_prep_cancel_fd(sqe, b->base_fd, IORING_ASYNC_CANCEL_ALL);
		io_uring_sqe_set_data64(sqe, CANCEL_TAG);
	}
}

enum { REQ_DONE, REQ_QUEUED };

/* Start the request popped into r: REQ_DONE (status set, push it now), REQ_QUEUED (in the
 * ring), or -EINVAL when the chain has no status byte to answer through. */
static int start_request(struct virtio_blk *b, struct blk_req *r)
{
	struct virtq_elem *e = &r->elem;
	uint8_t hdr[REQ_HDR_BYTES];
	uint32_t type;
	uint64_t sector;

	/* §5.2.6: the status byte is the last writable byte; without one the driver cannot be
	 * told anything, so the device needs a reset. */
	r->status_ptr = e->in_len ? last_writable_byte(e) : NULL;
	if (!r->status_ptr) {
		log_guest("virtio-blk: request without a status byte");
		return -EINVAL;
	}
	r->written = 0;
	r->retries = 0;
	r->op = OP_NONE;
	r->fd = b->fd;
	r->io_failed = false;
	r->type = UINT32_MAX;
	r->bytes = 0;
	r->mark = MARK_NONE;
	if (virtq_elem_read(e, 0, hdr, sizeof(hdr)) < sizeof(hdr)) {
		log_guest("virtio-blk: request header of %u bytes", e->out_len);
		r->status = VIRTIO_BLK_S_IOERR;
		return REQ_DONE;
	}
	type = (uint32_t)virtio_get_le(hdr, 4);
	sector = virtio_get_le(hdr + 8, 8);
	r->type = type;
	switch (type) {
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_OUT:
		r->status = prep_rw(b, r, sector, type == VIRTIO_BLK_T_OUT);
		break;
	case VIRTIO_BLK_T_FLUSH:
		/* §5.2.6.2: once this completes, every write completed before it is stable, so
		 * acknowledged-flushed data survives a host crash (fdatasync, see op_queue). */
		r->status = VIRTIO_BLK_S_OK;
		r->op = OP_FSYNC;
		break;
	case VIRTIO_BLK_T_GET_ID:
		r->status = do_get_id(b, r);
		break;
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
		r->status = prep_dwz(b, r, type == VIRTIO_BLK_T_WRITE_ZEROES);
		break;
	default:
		log_guest("virtio-blk: unsupported request type %u", type);
		r->status = VIRTIO_BLK_S_UNSUPP;
		break;
	}
	if (r->status != VIRTIO_BLK_S_OK || r->op == OP_NONE)
		return REQ_DONE;
	if (!b->uring) {
		while (!op_done(b, r, op_sync(b, r)))
			;
		return REQ_DONE;
	}
	if (op_queue(b, r)) {
		fail(r, -EBUSY);
		return REQ_DONE;
	}
	b->in_flight++;
	return REQ_QUEUED;
}

/* Data bytes the rate limiter counts for the request popped into e (§5.2.6: a read's data
 * is the writable part before the status byte, a write's the readable part after the
 * header); 0 for flushes and the rest, which count as an op only. */
static uint64_t rl_bytes(const struct virtq_elem *e)
{
	uint8_t hdr[REQ_HDR_BYTES];
	uint32_t type;

	if (virtq_elem_read(e, 0, hdr, sizeof(hdr)) < sizeof(hdr))
		return 0;
	type = (uint32_t)virtio_get_le(hdr, 4);
	if (type == VIRTIO_BLK_T_IN)
		return e->in_len ? e->in_len - 1 : 0;
	if (type == VIRTIO_BLK_T_OUT)
		return e->out_len - REQ_HDR_BYTES;
	return 0;
}

static void blk_queue_notify(void *dev, unsigned q)
{
	struct virtio_blk *b = dev;
	unsigned pushed = 0;

	if (q != 0 || !b->vq)
		return;
	METRIC_INC(b->m->queue_event_count);
	for (unsigned n = 0;; n++) {
		struct blk_req *r;
		int ret;

		if (n == VIRTIO_QUEUE_BUDGET) {
			virtio_mmio_queue_yield(b->t, q);
			break;
		}
		if (b->rl.armed)
			break; /* the limiter's timer resumes us */
		r = slot_get(b);
		if (!r) {
			/* Resumed by the completion that frees a slot. */
			b->starved = true;
			break;
		}
		ret = virtq_pop(b->vq, &r->elem);
		if (ret <= 0) {
			slot_put(b, r);
			if (ret < 0)
				virtio_mmio_set_needs_reset(b->t);
			break;
		}
		if (!ratelimit_none(&b->rl)) {
			uint64_t wait;

			/* Not now: the chain goes back to the ring and the timer resumes us
			 * (without a timer the request passes rather than stall the queue). */
			if (!ratelimit_consume(&b->rl, rl_bytes(&r->elem), 1, &wait) &&
			    ratelimit_arm(&b->rl, wait) == 0) {
				virtq_unpop(b->vq, 1);
				slot_put(b, r);
				break;
			}
		}
		ret = start_request(b, r);
		if (ret < 0) {
			slot_put(b, r);
			virtio_mmio_set_needs_reset(b->t);
			break;
		}
		if (ret == REQ_DONE) {
			finish(b, r, true);
			pushed++;
		}
	}
	if (b->uring) {
		submit(b);
		if (!b->async)
			pushed += wait_all(b, true, -1);
	}
	if (pushed)
		virtio_mmio_notify_used(b->t, b->vq);
}

static void complete_locked(struct virtio_blk *b)
{
	unsigned pushed;
	uint64_t one = 1;

	if (!b->uring)
		return;
	pushed = reap(b, VIRTIO_QUEUE_BUDGET, true);
	submit(b); /* the rest of short transfers */
	/* Completions left over: run again once the loop has served the other ready sources. */
	if (b->efd >= 0 && io_uring_cq_ready(&b->ring) && write(b->efd, &one, sizeof(one)) < 0)
		log_warn("virtio-blk: cannot re-arm the completion eventfd: %s", strerror(errno));
	if (pushed && b->t)
		virtio_mmio_notify_used(b->t, b->vq);
	if (b->starved && b->nfree && b->t) {
		b->starved = false;
		virtio_mmio_queue_yield(b->t, 0);
	}
}

void virtio_blk_complete(struct virtio_blk *b)
{
	struct virtio_mmio *t = __atomic_load_n(&b->lock_t, __ATOMIC_ACQUIRE);
	uint64_t cnt;
	ssize_t r;

	r = read(b->efd, &cnt, sizeof(cnt)); /* EAGAIN when a reset took the completions */
	(void)r;
	if (!t)
		return; /* never activated: nothing was ever submitted */
	virtio_mmio_lock(t);
	complete_locked(b);
	virtio_mmio_unlock(t);
}

static void completion_cb(void *opaque, uint32_t events)
{
	virtio_blk_complete(opaque);
}

static int blk_activate(void *dev, struct virtio_mmio *t, uint64_t features, struct virtq *vqs,
			unsigned nr)
{
	struct virtio_blk *b = dev;

	if (nr < 1 || !vqs[0].ready) {
		log_guest("virtio-blk: DRIVER_OK without a request queue");
		return -EINVAL;
	}
	b->t = t;
	b->vq = &vqs[0];
	__atomic_store_n(&b->lock_t, t, __ATOMIC_RELEASE);
	return 0;
}

static void blk_reset(void *dev)
{
	struct virtio_blk *b = dev;

	if (b->uring && b->in_flight) {
		cancel_all(b);
		wait_all(b, false, -1);
	}
	b->starved = false;
	b->t = NULL;
	b->vq = NULL;
	ratelimit_disarm(&b->rl);
}

static void blk_quiesce(void *dev)
{
	struct virtio_blk *b = dev;
	unsigned pushed;

	if (!b->uring || !b->in_flight)
		return;
	pushed = wait_all(b, true, -1);
	if (pushed && b->t)
		virtio_mmio_notify_used(b->t, b->vq);
}

/* Snapshots (SNAP_REC_VIRTIO_BLK).  Everything the driver learnt about the disk comes from
 * the configuration (the image, ro, the serial) and nothing in config space is writable, so
 * the record holds no state to load, only what the driver saw, to refuse a restore onto a
 * disk that would look different under it.  The image itself is the snapshot's business.
 * Payload, version 1: u64 capacity (sectors), bool read-only, 20 bytes GET_ID serial. */
#define VIRTIO_BLK_STATE_VERSION 1

static int blk_save(void *dev, struct snap_writer *w, const char *id)
{
	struct virtio_blk *b = dev;

	/* quiesce completes every request it can; one still in flight is a chain the driver
	 * handed over that the snapshot would lose (its used entry never written). */
	if (b->in_flight) {
		log_warn("virtio-blk: %u requests still in flight; not saving", b->in_flight);
		return -EBUSY;
	}
	snap_rec_begin(w, SNAP_REC_VIRTIO_BLK, VIRTIO_BLK_STATE_VERSION, id);
	snap_put_u64(w, b->capacity);
	snap_put_bool(w, b->read_only);
	snap_put_bytes(w, b->serial, sizeof(b->serial));
	return w->err;
}

static int blk_restore(void *dev, const struct snap_file *f, const char *id)
{
	struct virtio_blk *b = dev;
	char serial[VIRTIO_BLK_ID_BYTES];
	struct snap_reader r;
	uint64_t capacity;
	bool read_only;

	if (snap_file_find(f, SNAP_REC_VIRTIO_BLK, id, &r) ||
	    r.version != VIRTIO_BLK_STATE_VERSION) {
		log_warn("virtio-blk: no record of version %u for '%s'", VIRTIO_BLK_STATE_VERSION,
			 id);
		return -EINVAL;
	}
	capacity = snap_get_u64(&r);
	read_only = snap_get_bool(&r);
	snap_get_bytes(&r, serial, sizeof(serial));
	if (snap_reader_done(&r)) {
		log_warn("virtio-blk: malformed record for '%s'", id);
		return -EINVAL;
	}
	/* The capacity and the read-only feature were read by the driver (§5.2.4, §5.2.3), the
	 * serial perhaps named the disk (/dev/disk/by-id). */
	if (capacity != b->capacity || read_only != b->read_only ||
	    memcmp(serial, b->serial, sizeof(serial))) {
		log_warn("virtio-blk: snapshot of a %llu-sector%s disk, this one has %llu sectors%s"
			 " (or another serial)",
			 (unsigned long long)capacity, read_only ? " read-only" : "",
			 (unsigned long long)b->capacity, b->read_only ? " read-only" : "");
		return -EINVAL;
	}
	return 0;
}

static void blk_destroy(void *dev)
{
	virtio_blk_destroy(dev);
}

const struct virtio_device_ops virtio_blk_ops = {
	.name = "virtio-blk",
	.device_id = VIRTIO_ID_BLOCK,
	.num_queues = 1,
	.queue_max_size = VIRTIO_BLK_QUEUE_SIZE,
	.features = blk_features,
	.config_read = blk_config_read,
	.config_write = blk_config_write,
	.activate = blk_activate,
	.queue_notify = blk_queue_notify,
	.reset = blk_reset,
	.quiesce = blk_quiesce,
	.save = blk_save,
	.restore = blk_restore,
	.rec = { SNAP_REC_VIRTIO_BLK, VIRTIO_BLK_STATE_VERSION },
	.destroy = blk_destroy,
};

/* Config space (§5.2.4): what the driver learns about the disk. */
static void build_config(struct virtio_blk *b)
{
	uint8_t *c = b->config;

	memset(c, 0, sizeof(b->config));
	virtio_put_le(c + VIRTIO_BLK_CFG_CAPACITY, b->capacity, 8);
	/* A chain is header + data segments + status, and no longer than the queue. */
	virtio_put_le(c + VIRTIO_BLK_CFG_SEG_MAX, VIRTIO_BLK_QUEUE_SIZE - 2, 4);
	virtio_put_le(c + VIRTIO_BLK_CFG_BLK_SIZE, VIRTIO_BLK_SECTOR_SIZE, 4);
	if (b->read_only)
		return;
	virtio_put_le(c + VIRTIO_BLK_CFG_MAX_DISCARD_SECTORS, VIRTIO_BLK_MAX_DISCARD_SECTORS, 4);
	virtio_put_le(c + VIRTIO_BLK_CFG_MAX_DISCARD_SEG, VIRTIO_BLK_MAX_DISCARD_SEG, 4);
	virtio_put_le(c + VIRTIO_BLK_CFG_DISCARD_ALIGNMENT, 8, 4); /* 4 KiB, a file-system block */
	virtio_put_le(c + VIRTIO_BLK_CFG_MAX_WZ_SECTORS, VIRTIO_BLK_MAX_DISCARD_SECTORS, 4);
	virtio_put_le(c + VIRTIO_BLK_CFG_MAX_WZ_SEG, VIRTIO_BLK_MAX_DISCARD_SEG, 4);
	c[VIRTIO_BLK_CFG_WZ_MAY_UNMAP] = 1; /* write-zeroes with UNMAP may punch holes */
}

/* One OFD lock on the whole image (fcntl(2) "open file description locks"): shared for a
 * read-only disk, exclusive for a writable one.  It conflicts with other OFD and POSIX locks,
 * also those of this process, and goes away when the image is closed. */
static int lock_image(int fd, bool read_only, const char *path)
{
	struct flock fl = { .l_type = read_only ? F_RDLCK : F_WRLCK, .l_whence = SEEK_SET };

	if (fcntl(fd, F_OFD_SETLK, &fl) == 0)
		return 0;
	if (errno == EAGAIN || errno == EACCES)
		return -EBUSY;
	if (errno == ENOLCK || errno == EOPNOTSUPP || errno == EINVAL) {
		/* NFS without a lock manager and the like: run, but say what is not protected. */
		log_warn("virtio-blk: '%s' cannot be locked (%s): a second VM could open it too",
			 path, strerror(errno));
		return 0;
	}
	return -errno;
}

bool virtio_blk_locked_rw(const char *path)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	bool rw = true;

	if (fd < 0)
		return true;
	/* Asking for an exclusive lock reports whichever lock is in the way. */
	if (fcntl(fd, F_OFD_GETLK, &fl) == 0)
		rw = fl.l_type == F_WRLCK;
	close(fd);
	return rw;
}

static bool ops_supported(struct io_uring *ring)
{
	struct io_uring_probe *p = io_uring_get_probe_ring(ring);
	bool ok;

	if (!p)
		return false;
	ok = io_uring_opcode_supported(p, IORING_OP_READV) &&
	     io_uring_opcode_supported(p, IORING_OP_WRITEV) &&
	     io_uring_opcode_supported(p, IORING_OP_FSYNC) &&
	     io_uring_opcode_supported(p, IORING_OP_FALLOCATE);
	io_uring_free_probe(p);
	return ok;
}

/* Set up the ring, or decide on the synchronous fallback (said once per process). */
static int ring_init(struct virtio_blk *b)
{
	static bool said;
	const char *env = getenv("IGNITION_BLK_SYNC");
	const char *why;
	int ret;

	if (env && *env && strcmp(env, "0")) {
		why = "IGNITION_BLK_SYNC is set";
	} else {
		ret = io_uring_queue_init(RING_ENTRIES, &b->ring, 0);
		/* ENOMEM: kernels before 5.12 charge the rings to RLIMIT_MEMLOCK, which is
		 * small for ordinary users; like ENOSYS/EPERM that is the host's setting, not a
		 * reason to refuse the disk.  Other errors (out of file descriptors) fail. */
		if (ret == -ENOSYS || ret == -EPERM || ret == -ENOMEM) {
			why = ret == -ENOMEM ? "Cannot allocate memory: RLIMIT_MEMLOCK too low?"
					     : strerror(-ret);
		} else if (ret) {
			return ret;
		} else if (!ops_supported(&b->ring)) {
			io_uring_queue_exit(&b->ring);
			why = "the kernel lacks readv, writev, fsync or fallocate";
		} else {
			b->uring = true;
			return 0;
		}
	}
	if (!__atomic_exchange_n(&said, true, __ATOMIC_SEQ_CST))
		log_warn("virtio-blk: io_uring unavailable (%s): synchronous I/O", why);
	return 0;
}

/* Close what blk_open() opened and free the device (the ring is the caller's business). */
static void blk_free(struct virtio_blk *b)
{
	blk_undo_destroy(b->undo);
	blk_cow_destroy(b->cow);
	free(b->rio);
	free(b->reqs);
	if (b->base_fd >= 0)
		close(b->base_fd);
	close(b->fd); /* drops the lock too (with the last fd of the open file) */
	free(b);
}

/* The directory of the image `path`, or when path is NULL of the file open as fd (through
 * /proc, which still names the directory of an unlinked file: "/dir/#123 (deleted)"). */
static int image_dir(const char *path, int fd, char *dir, size_t size)
{
	char link[64];
	ssize_t n;
	char *slash;

	if (path) {
		if (strlen(path) >= size)
			return -ENAMETOOLONG;
		strcpy(dir, path);
	} else {
		snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
		n = readlink(link, dir, size - 1);
		if (n < 0)
			return -errno;
		dir[n] = 0;
		if (dir[0] != '/')
			return -ENOENT; /* not a file in a directory ("anon_inode:...") */
	}
	slash = strrchr(dir, '/');
	if (!slash)
		strcpy(dir, ".");
	else if (slash == dir)
		dir[1] = 0;
	else
		*slash = 0;
	return 0;
}

/* A writable disk's undo log, in the directory of the image (or of the overlay), created now
 * while files may still be created (before the jail and seccomp).  A failure does not stop
 * the disk: it is kept for virtio_blk_checkpoint() to report. */
static void undo_init(struct virtio_blk *b, const char *path)
{
	char dir[PATH_MAX];

	b->undo_err = image_dir(path, b->fd, dir, sizeof(dir));
	if (!b->undo_err)
		b->undo_err = blk_undo_create(dir, b->capacity * VIRTIO_BLK_SECTOR_SIZE, &b->undo);
}

/* The rest of creating a device once b->fd (and b->base_fd for a copy-on-write disk) is
 * open; `name` names the image in messages, `path` is its path (NULL: an fd given).  On
 * failure the caller calls blk_free(). */
static int blk_open(struct virtio_blk *b, bool read_only, const char *serial, const char *name,
		    const char *path)
{
	struct stat st;
	off_t size;
	int ret;

	if (fstat(b->fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
		return -EINVAL;
	/* Block devices report st_size 0; seeking to the end works for both. */
	size = lseek(b->fd, 0, SEEK_END);
	if (size < 0)
		return -errno;
	b->capacity = (uint64_t)size / VIRTIO_BLK_SECTOR_SIZE;
	if (b->capacity == 0)
		return -EINVAL;
	ret = lock_image(b->fd, read_only, name);
	if (ret)
		return ret;
	/* Large (VIRTQ_ELEM_MAX_SEGS iovecs per slot) but touched only as far as chains go. */
	b->reqs = calloc(BLK_SLOTS, sizeof(*b->reqs));
	if (!b->reqs)
		return -ENOMEM;
	if (b->base_fd >= 0) {
		/* Shared, as every clone of one snapshot reads the same base. */
		ret = lock_image(b->base_fd, true, name);
		if (!ret)
			ret = blk_cow_create(b->base_fd, b->fd, &b->cow);
		if (ret)
			return ret;
		/* Slot i's run view is rio[i * VIRTQ_ELEM_MAX_SEGS...], found from the slot's
		 * index when used: a pointer stored in every slot here would touch a page of
		 * reqs per slot (1 MiB of every clone's memory, idle or not). */
		b->rio = calloc((size_t)BLK_SLOTS * VIRTQ_ELEM_MAX_SEGS, sizeof(*b->rio));
		if (!b->rio)
			return -ENOMEM;
	}
	for (unsigned i = 0; i < BLK_SLOTS; i++)
		b->free_slots[i] = (uint16_t)(BLK_SLOTS - 1 - i);
	b->nfree = BLK_SLOTS;
	ret = ring_init(b);
	if (ret)
		return ret;
	b->read_only = read_only;
	if (!read_only)
		undo_init(b, path);
	/* GET_ID: up to 20 bytes, NUL-padded when shorter (§5.2.6). */
	/* Counted under the drive's id (the serial its creator gave), or only in the aggregate. */
	b->m = metrics_blk_get(serial);
	if (!serial)
		serial = "ignition";
	memcpy(b->serial, serial, strnlen(serial, sizeof(b->serial)));
	build_config(b);
	return 0;
}

int virtio_blk_create(const char *path, bool read_only, const char *serial, struct virtio_blk **out)
{
	struct virtio_blk *b;
	int ret;

	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->efd = -1;
	ratelimit_init_none(&b->rl);
	b->base_fd = -1;
	b->fd = open(path, (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (b->fd < 0) {
		ret = -errno;
		free(b);
		return ret;
	}
	ret = blk_open(b, read_only, serial, path, path);
	if (ret) {
		blk_free(b);
		return ret;
	}
	*out = b;
	return 0;
}

int virtio_blk_create_fd(int fd, int base_fd, bool read_only, const char *serial,
			 struct virtio_blk **out)
{
	struct virtio_blk *b;
	int ret;

	if (base_fd >= 0 && read_only)
		return -EINVAL; /* nothing would ever be written to the overlay */
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->efd = -1;
	ratelimit_init_none(&b->rl);
	b->base_fd = -1;
	/* Our own fds on the caller's open files: the caller keeps (and closes) its own. */
	b->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (b->fd < 0) {
		ret = -errno;
		free(b);
		return ret;
	}
	if (base_fd >= 0) {
		b->base_fd = fcntl(base_fd, F_DUPFD_CLOEXEC, 0);
		if (b->base_fd < 0) {
			ret = -errno;
			blk_free(b);
			return ret;
		}
	}
	ret = blk_open(b, read_only, serial, base_fd >= 0 ? "copy-on-write overlay" : "disk", NULL);
	if (ret) {
		blk_free(b);
		return ret;
	}
	*out = b;
	return 0;
}

int virtio_blk_async_fd(struct virtio_blk *b)
{
	int fd, ret;

	if (!b->uring)
		return -ENOTSUP;
	if (b->efd < 0) {
		fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (fd < 0)
			return -errno;
		ret = io_uring_register_eventfd(&b->ring, fd);
		if (ret) {
			close(fd);
			return ret;
		}
		b->efd = fd;
	}
	b->async = true;
	return b->efd;
}

static void rl_timer_cb(void *opaque, uint32_t events);

/* Watch b's completions on the manager's event loop and register it as virtio device `id`;
 * destroys b on failure. */
static int blk_attach(struct devmgr *dm, const char *id, struct virtio_blk *b,
		      struct virtio_blk **out)
{
	int ret, fd;

	if (dm->ev && b->uring) {
		fd = virtio_blk_async_fd(b);
		ret = fd < 0 ? fd : evloop_add(dm->ev, fd, EPOLLIN, completion_cb, b);
		if (ret)
			goto destroy_dev;
		b->ev = dm->ev;
	}
	/* The limiter's timer exists from the start, limited or not: a limit set at run time
	 * then needs no new fd (timerfd_create is outside the seccomp policy after start-up). */
	if (dm->ev) {
		fd = ratelimit_timer_fd(&b->rl);
		ret = fd < 0 ? fd : evloop_add(dm->ev, fd, EPOLLIN, rl_timer_cb, b);
		if (ret)
			goto destroy_dev;
		b->ev = dm->ev;
		b->rl_watched = true;
	}
	ret = virtio_mmio_add(dm, id, &virtio_blk_ops, b, NULL);
	if (ret)
		goto destroy_dev;
	b->ev = dm->ev; /* the rate limiter's timer goes there too */
	if (out)
		*out = b;
	return 0;

destroy_dev:
	virtio_blk_destroy(b);
	return ret;
}

int virtio_blk_add(struct devmgr *dm, const char *id, const char *path, bool read_only,
		   struct virtio_blk **out)
{
	struct virtio_blk *b;
	int ret;

	ret = virtio_blk_create(path, read_only, id, &b);
	return ret ? ret : blk_attach(dm, id, b, out);
}

int virtio_blk_add_fd(struct devmgr *dm, const char *id, int fd, int base_fd, bool read_only,
		      struct virtio_blk **out)
{
	struct virtio_blk *b;
	int ret;

	ret = virtio_blk_create_fd(fd, base_fd, read_only, id, &b);
	return ret ? ret : blk_attach(dm, id, b, out);
}

const struct blk_cow *virtio_blk_cow(const struct virtio_blk *b)
{
	return b->cow;
}

uint64_t virtio_blk_capacity(const struct virtio_blk *b)
{
	return b->capacity;
}

unsigned virtio_blk_in_flight(const struct virtio_blk *b)
{
	return b->in_flight;
}

void virtio_blk_ratelimit_fire(struct virtio_blk *b)
{
	struct virtio_mmio *t = __atomic_load_n(&b->lock_t, __ATOMIC_ACQUIRE);

	if (!t) {
		ratelimit_timer_ack(&b->rl);
		return;
	}
	virtio_mmio_lock(t);
	ratelimit_timer_ack(&b->rl);
	if (b->t && b->vq)
		virtio_mmio_queue_yield(b->t, 0);
	virtio_mmio_unlock(t);
}

static void rl_timer_cb(void *opaque, uint32_t events)
{
	virtio_blk_ratelimit_fire(opaque);
}

int virtio_blk_set_ratelimit(struct virtio_blk *b, const struct ratelimit_cfg *cfg)
{
	struct virtio_mmio *t = __atomic_load_n(&b->lock_t, __ATOMIC_ACQUIRE);
	int ret;

	if (t)
		virtio_mmio_lock(t);
	ret = ratelimit_update(&b->rl, cfg);
	/* A request held under the old limits is looked at again under the new ones. */
	if (!ret && b->rl.armed) {
		ratelimit_disarm(&b->rl);
		if (b->t && b->vq)
			virtio_mmio_queue_yield(b->t, 0);
	}
	if (t)
		virtio_mmio_unlock(t);
	return ret;
}

/* In-place reset (blk_undo.h).  Both run with the VM paused and the device quiesced; the
 * transport lock (recursive) keeps them apart from queue work all the same. */
static int undo_begin(struct virtio_blk *b, const char *what)
{
	if (b->in_flight) {
		log_warn("virtio-blk: %s with %u requests in flight (not quiesced)", what,
			 b->in_flight);
		return -EBUSY;
	}
	if (!b->undo) {
		log_warn("virtio-blk: no undo log for this disk (%s): no %s",
			 strerror(-b->undo_err), what);
		return b->undo_err ? b->undo_err : -ENOTSUP;
	}
	return 0;
}

int virtio_blk_checkpoint(struct virtio_blk *b)
{
	struct virtio_mmio *t = __atomic_load_n(&b->lock_t, __ATOMIC_ACQUIRE);
	int ret;

	if (b->read_only)
		return 0;
	if (t)
		virtio_mmio_lock(t);
	ret = undo_begin(b, "checkpoint");
	if (!ret)
		ret = blk_undo_checkpoint(b->undo);
	if (t)
		virtio_mmio_unlock(t);
	return ret;
}

int virtio_blk_rollback(struct virtio_blk *b)
{
	struct virtio_mmio *t = __atomic_load_n(&b->lock_t, __ATOMIC_ACQUIRE);
	int ret;

	if (b->read_only)
		return 0;
	if (t)
		virtio_mmio_lock(t);
	ret = undo_begin(b, "rollback");
	if (!ret)
		ret = blk_undo_rollback(b->undo, b->fd, b->cow);
	if (ret)
		log_warn("virtio-blk: rollback: %s", strerror(-ret));
	if (t)
		virtio_mmio_unlock(t);
	return ret;
}

/* The size of the image open as fd, in sectors: a regular file or a block device (whose
 * st_size is 0: seek to its end) of at least one sector. */
static int image_sectors(int fd, uint64_t *sectors)
{
	struct stat st;
	off_t size;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
		return -EINVAL;
	size = lseek(fd, 0, SEEK_END);
	if (size < 0)
		return -errno;
	*sectors = (uint64_t)size / VIRTIO_BLK_SECTOR_SIZE;
	return *sectors ? 0 : -EINVAL;
}

static bool same_file(int a, int b)
{
	struct stat sa, sb;

	return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
	       sa.st_ino == sb.st_ino;
}

int virtio_blk_swap(struct virtio_blk *b, int fd, const char *name)
{
	struct virtio_mmio *t = __atomic_load_n(&b->lock_t, __ATOMIC_ACQUIRE);
	uint64_t sectors = 0;
	bool same;
	int ret;

	if (t)
		virtio_mmio_lock(t);
	ret = image_sectors(fd, &sectors);
	if (ret)
		goto refuse;
	/* An armed in-place reset checkpoint describes the old image's blocks. */
	if (b->undo && blk_undo_armed(b->undo)) {
		ret = -EPERM;
		goto refuse;
	}
	/* The same file again (Firecracker's way to announce a resized image): keep our open
	 * file and its lock, which a second open file description of ours would conflict with. */
	same = !b->cow && same_file(fd, b->fd);
	if (!same) {
		ret = lock_image(fd, b->read_only, name);
		if (ret)
			goto refuse;
	}
	/* Requests in flight finish on the old image (and are answered): nothing is popped
	 * meanwhile, the transport lock is ours. */
	if (b->uring && b->in_flight && wait_all(b, true, -1) && b->t)
		virtio_mmio_notify_used(b->t, b->vq);
	if (same) {
		close(fd);
	} else {
		if (!b->read_only && fsync(b->fd) < 0)
			log_warn("virtio-blk: flushing the image being replaced: %s",
				 strerror(errno));
		close(b->fd);
		b->fd = fd;
		if (b->cow) {
			/* A restore's copy-on-write disk becomes a plain image. */
			blk_cow_destroy(b->cow);
			b->cow = NULL;
			close(b->base_fd);
			b->base_fd = -1;
		}
		if (b->undo) {
			/* Sized for the old image and made beside it; a new one cannot be
			 * created now (seccomp): in-place resets report this instead. */
			blk_undo_destroy(b->undo);
			b->undo = NULL;
			b->undo_err = -EOPNOTSUPP;
		}
	}
	b->capacity = sectors;
	build_config(b);
	/* §5.2.4, §2.5.1: the capacity may have changed; a driver that is up re-reads it. */
	if (b->t)
		virtio_mmio_config_changed(b->t);
	if (t)
		virtio_mmio_unlock(t);
	log_info("virtio-blk: now on '%s' (%llu sectors)", name, (unsigned long long)sectors);
	return 0;

refuse:
	if (t)
		virtio_mmio_unlock(t);
	close(fd);
	return ret;
}

uint64_t virtio_blk_undo_blocks(const struct virtio_blk *b)
{
	return blk_undo_saved_blocks(b->undo);
}

void virtio_blk_destroy(struct virtio_blk *b)
{
	if (!b)
		return;
	if (b->ev && b->efd >= 0)
		evloop_del(b->ev, b->efd);
	if (b->rl_watched)
		evloop_del(b->ev, b->rl.timer_fd);
	ratelimit_destroy(&b->rl);
	if (b->uring) {
		if (b->in_flight) {
			cancel_all(b);
			wait_all(b, false, DESTROY_WAIT_MS);
		}
		if (b->in_flight)
			log_warn("virtio-blk: %u requests still in flight at exit", b->in_flight);
		io_uring_queue_exit(&b->ring);
	}
	if (b->efd >= 0)
		close(b->efd);
	/* Whatever the guest wrote and did not flush reaches stable storage on every orderly
	 * stop (poweroff, Ctrl-A x, SIGTERM), as a host power-down would not guarantee. */
	if (!b->read_only && fsync(b->fd) < 0)
		log_warn("virtio-blk: flushing the disk image at exit: %s", strerror(errno));
	blk_free(b); /* closes the image, and with it the image lock */
}
