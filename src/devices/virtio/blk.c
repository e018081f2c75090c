#include "devices/virtio/blk.h"

#include "devices/virtio/mmio.h"
#include "devices/virtio/virtq.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

/* Request header (§5.2.6): le32 type, le32 reserved, le64 sector. */
#define REQ_HDR_BYTES 16
/* Discard / write-zeroes segment (§5.2.6): le64 sector, le32 num_sectors, le32 flags. */
#define DWZ_SEG_BYTES 16

struct virtio_blk {
	int fd;
	bool read_only;
	uint64_t capacity; /* 512-byte sectors */
	char serial[VIRTIO_BLK_ID_BYTES];
	uint8_t config[VIRTIO_BLK_CFG_SIZE];
	/* Set while the driver has the device activated. */
	struct virtio_mmio *t;
	struct virtq *vq;
	/* Scratch space for one request; requests run one at a time under the transport lock. */
	struct virtq_elem elem;
	struct iovec data[VIRTQ_ELEM_MAX_SEGS];
};

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

/* preadv/pwritev the whole of iov[0..n) at `off`, looping over short transfers.  A read past
 * the end of the file (it shrank under us) yields zeros. */
static int rw_full(struct virtio_blk *b, struct iovec *iov, int n, uint64_t off, bool write)
{
	while (n > 0) {
		ssize_t r = write ? pwritev(b->fd, iov, n, (off_t)off)
				  : preadv(b->fd, iov, n, (off_t)off);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0) {
			if (write)
				return -EIO;
			for (int i = 0; i < n; i++)
				memset(iov[i].iov_base, 0, iov[i].iov_len);
			return 0;
		}
		off += (uint64_t)r;
		while (n > 0 && (size_t)r >= iov->iov_len) {
			r -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + r;
			iov->iov_len -= (size_t)r;
		}
	}
	return 0;
}

/* IN / OUT (§5.2.6.1): data is whole sectors, inside the disk, at most one request's worth. */
static uint8_t do_rw(struct virtio_blk *b, uint64_t sector, bool write, uint32_t *written)
{
	struct virtq_elem *e = &b->elem;
	size_t len = write ? e->out_len - REQ_HDR_BYTES : e->in_len - 1u;
	int n, ret;

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
	if (write)
		n = virtq_iov_slice(e->iov, e->nr_out, REQ_HDR_BYTES, len, b->data,
				    VIRTQ_ELEM_MAX_SEGS);
	else
		n = virtq_iov_slice(e->iov + e->nr_out, e->nr_in, 0, len, b->data,
				    VIRTQ_ELEM_MAX_SEGS);
	if (n < 0)
		return VIRTIO_BLK_S_IOERR;
	ret = rw_full(b, b->data, n, sector * VIRTIO_BLK_SECTOR_SIZE, write);
	if (ret) {
		log_warn("virtio-blk: %s at sector %llu: %s", write ? "write" : "read",
			 (unsigned long long)sector, strerror(-ret));
		return VIRTIO_BLK_S_IOERR;
	}
	if (!write)
		*written = (uint32_t)len;
	return VIRTIO_BLK_S_OK;
}

/* FLUSH (§5.2.6.2): once this completes, every write completed before it is stable, so
 * acknowledged-flushed data survives a host crash. */
static uint8_t do_flush(struct virtio_blk *b)
{
	while (fdatasync(b->fd) < 0) {
		if (errno == EINTR)
			continue;
		log_warn("virtio-blk: flush: %s", strerror(errno));
		return VIRTIO_BLK_S_IOERR;
	}
	return VIRTIO_BLK_S_OK;
}

static uint8_t do_get_id(struct virtio_blk *b, uint32_t *written)
{
	size_t room = b->elem.in_len - 1u;
	size_t n = room < VIRTIO_BLK_ID_BYTES ? room : VIRTIO_BLK_ID_BYTES;

	*written = (uint32_t)virtq_elem_write(&b->elem, 0, b->serial, n);
	return VIRTIO_BLK_S_OK;
}

static int punch(struct virtio_blk *b, uint64_t off, uint64_t len)
{
	if (fallocate(b->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len))
		return -errno;
	return 0;
}

static int write_zeroes(struct virtio_blk *b, uint64_t off, uint64_t len, bool may_unmap)
{
	static const uint8_t zeros[64 * 1024];
	int ret;

	/* Cheapest first: deallocate (reads return zeros) if allowed, else zero the range in
	 * place, else write zeros. */
	if (may_unmap && punch(b, off, len) == 0)
		return 0;
	if (fallocate(b->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) ==
	    0)
		return 0;
	while (len) {
		size_t n = len < sizeof(zeros) ? (size_t)len : sizeof(zeros);
		struct iovec v = { .iov_base = (void *)zeros, .iov_len = n };

		ret = rw_full(b, &v, 1, off, true);
		if (ret)
			return ret;
		off += n;
		len -= n;
	}
	return 0;
}

/* DISCARD / WRITE_ZEROES (§5.2.6): a list of {sector, num_sectors, flags} segments. */
static uint8_t do_discard_wz(struct virtio_blk *b, bool wz)
{
	struct virtq_elem *e = &b->elem;
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
		uint64_t sector, off, bytes;
		uint32_t num, flags;
		int ret;

		virtq_elem_read(e, REQ_HDR_BYTES + i * DWZ_SEG_BYTES, seg, sizeof(seg));
		sector = virtio_get_le(seg, 8);
		num = (uint32_t)virtio_get_le(seg + 8, 4);
		flags = (uint32_t)virtio_get_le(seg + 12, 4);
		/* §5.2.6.2: unknown flags, or unmap on a discard, are unsupported. */
		if (flags & ~VIRTIO_BLK_WZ_F_UNMAP || (!wz && flags))
			return VIRTIO_BLK_S_UNSUPP;
		if (num > VIRTIO_BLK_MAX_DISCARD_SECTORS || !range_ok(b, sector, num))
			return VIRTIO_BLK_S_IOERR;
		off = sector * VIRTIO_BLK_SECTOR_SIZE;
		bytes = (uint64_t)num * VIRTIO_BLK_SECTOR_SIZE;
		if (!bytes)
			continue;
		if (wz) {
			ret = write_zeroes(b, off, bytes, flags & VIRTIO_BLK_WZ_F_UNMAP);
		} else {
			/* Discard is a hint: a back end that cannot punch holes ignores it. */
			ret = punch(b, off, bytes);
			if (ret == -EOPNOTSUPP || ret == -ENOSYS)
				ret = 0;
		}
		if (ret) {
			log_warn("virtio-blk: %s at sector %llu: %s",
				 wz ? "write-zeroes" : "discard", (unsigned long long)sector,
				 strerror(-ret));
			return VIRTIO_BLK_S_IOERR;
		}
	}
	return VIRTIO_BLK_S_OK;
}

/* Run the request in b->elem.  Returns the bytes written into the chain (data plus the status
 * byte), or -EINVAL when the chain has no status byte to answer through. */
static int64_t handle_request(struct virtio_blk *b)
{
	struct virtq_elem *e = &b->elem;
	uint8_t hdr[REQ_HDR_BYTES], status;
	uint32_t written = 0, type;
	uint64_t sector;

	/* §5.2.6: the status byte is the last writable byte; without one the driver cannot be
	 * told anything, so the device needs a reset. */
	if (e->in_len == 0) {
		log_guest("virtio-blk: request without a status byte");
		return -EINVAL;
	}
	if (virtq_elem_read(e, 0, hdr, sizeof(hdr)) < sizeof(hdr)) {
		log_guest("virtio-blk: request header of %u bytes", e->out_len);
		status = VIRTIO_BLK_S_IOERR;
		goto done;
	}
	type = (uint32_t)virtio_get_le(hdr, 4);
	sector = virtio_get_le(hdr + 8, 8);
	switch (type) {
	case VIRTIO_BLK_T_IN:
		status = do_rw(b, sector, false, &written);
		break;
	case VIRTIO_BLK_T_OUT:
		status = do_rw(b, sector, true, &written);
		break;
	case VIRTIO_BLK_T_FLUSH:
		status = do_flush(b);
		break;
	case VIRTIO_BLK_T_GET_ID:
		status = do_get_id(b, &written);
		break;
	case VIRTIO_BLK_T_DISCARD:
		status = do_discard_wz(b, false);
		break;
	case VIRTIO_BLK_T_WRITE_ZEROES:
		status = do_discard_wz(b, true);
		break;
	default:
		log_guest("virtio-blk: unsupported request type %u", type);
		status = VIRTIO_BLK_S_UNSUPP;
		break;
	}
done:
	virtq_elem_write(e, e->in_len - 1u, &status, 1);
	return (int64_t)written + 1;
}

static void blk_queue_notify(void *dev, unsigned q)
{
	struct virtio_blk *b = dev;
	bool pushed = false;

	if (q != 0 || !b->vq)
		return;
	for (;;) {
		int64_t used;
		int ret = virtq_pop(b->vq, &b->elem);

		if (ret == 0)
			break;
		if (ret < 0) {
			virtio_mmio_set_needs_reset(b->t);
			break;
		}
		used = handle_request(b);
		if (used < 0) {
			virtio_mmio_set_needs_reset(b->t);
			break;
		}
		virtq_push(b->vq, b->elem.head, (uint32_t)used);
		pushed = true;
	}
	if (pushed)
		virtio_mmio_notify_used(b->t, b->vq);
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
	return 0;
}

static void blk_reset(void *dev)
{
	struct virtio_blk *b = dev;

	b->t = NULL;
	b->vq = NULL;
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

int virtio_blk_create(const char *path, bool read_only, const char *serial, struct virtio_blk **out)
{
	struct virtio_blk *b;
	struct stat st;
	off_t size;
	int ret;

	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->fd = open(path, (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (b->fd < 0) {
		ret = -errno;
		goto free_dev;
	}
	if (fstat(b->fd, &st) < 0) {
		ret = -errno;
		goto close_fd;
	}
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
		ret = -EINVAL;
		goto close_fd;
	}
	/* Block devices report st_size 0; seeking to the end works for both. */
	size = lseek(b->fd, 0, SEEK_END);
	if (size < 0) {
		ret = -errno;
		goto close_fd;
	}
	b->capacity = (uint64_t)size / VIRTIO_BLK_SECTOR_SIZE;
	if (b->capacity == 0) {
		ret = -EINVAL;
		goto close_fd;
	}
	b->read_only = read_only;
	/* GET_ID: up to 20 bytes, NUL-padded when shorter (§5.2.6). */
	if (!serial)
		serial = "ignition";
	memcpy(b->serial, serial, strnlen(serial, sizeof(b->serial)));
	build_config(b);
	*out = b;
	return 0;

close_fd:
	close(b->fd);
free_dev:
	free(b);
	return ret;
}

uint64_t virtio_blk_capacity(const struct virtio_blk *b)
{
	return b->capacity;
}

void virtio_blk_destroy(struct virtio_blk *b)
{
	if (!b)
		return;
	/* Whatever the guest wrote and did not flush reaches stable storage on every orderly
	 * stop (poweroff, Ctrl-A x, SIGTERM), as a host power-down would not guarantee. */
	if (!b->read_only && fsync(b->fd) < 0)
		log_warn("virtio-blk: flushing the disk image at exit: %s", strerror(errno));
	close(b->fd);
	free(b);
}
