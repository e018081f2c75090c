/* virtio-blk (virtio 1.2 §5.2) driven by a hostile driver (fuzz/harness.h) over a 64 KiB image
 * file: request headers, data segments, discard/write-zeroes segment lists and status bytes
 * all come from guest memory.  Input: [cfg] then harness operations; cfg bit 0 opens the
 * disk read-only, bit 1 gives it a 20-byte serial, bit 2 makes it a copy-on-write disk (the
 * image as its read-only base under an empty overlay; bit 0 then ignored).  The device
 * operation takes a checkpoint or rolls back to it (in-place reset, blk_undo.c), and checks
 * that a rollback gives back, byte for byte, the disk the checkpoint saw. */
#include "devices/virtio/blk.h"
#include "devices/virtio/blk_cow.h"
#include "devices/virtio/mmio.h"
#include "devices/virtio/virtq.h"
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* 128 sectors, plus a partial one the capacity does not count. */
#define IMAGE_BYTES (64u * 1024 + 256)

static char image[256];
/* The disk as the last checkpoint saw it (its capacity: 128 sectors). */
#define DISK_BYTES (64u * 1024)
static uint8_t at_checkpoint[DISK_BYTES];
static bool have_checkpoint;

/* What the guest would read from the whole disk now. */
static void disk_read(struct virtio_blk *b, uint8_t *buf)
{
	const struct blk_cow *c = virtio_blk_cow(b);
	int fd;

	if (c) {
		FUZZ_CHECK(blk_cow_read(c, buf, DISK_BYTES, 0) == 0);
		return;
	}
	fd = open(image, O_RDONLY | O_CLOEXEC);
	FUZZ_CHECK(fd >= 0);
	FUZZ_CHECK(pread(fd, buf, DISK_BYTES, 0) == (ssize_t)DISK_BYTES);
	close(fd);
}

/* u8: even = checkpoint, odd = rollback; both with the device quiesced, as the VMM does. */
static void blk_op(struct vh *h, void *dev, struct fuzz_in *in)
{
	static uint8_t now[DISK_BYTES];
	struct virtio_blk *b = dev;
	int ret;

	virtio_mmio_quiesce(h->t);
	if (fuzz_u8(in) % 2 == 0) {
		ret = virtio_blk_checkpoint(b);
		FUZZ_CHECK(ret == 0);
		disk_read(b, at_checkpoint);
		have_checkpoint = true;
		return;
	}
	ret = virtio_blk_rollback(b);
	if (!have_checkpoint)
		return; /* -ENOENT, or 0 for a read-only disk */
	FUZZ_CHECK(ret == 0);
	FUZZ_CHECK(virtio_blk_undo_blocks(b) == 0);
	disk_read(b, now);
	FUZZ_CHECK(memcmp(now, at_checkpoint, DISK_BYTES) == 0);
}

static int blk_create(struct vh *h, uint8_t cfg, void **dev)
{
	const char *serial = (cfg & 2) ? "0123456789abcdefghij" : NULL;
	int base, ovl, ret;

	have_checkpoint = false;
	if (!(cfg & 4))
		return virtio_blk_create(image, cfg & 1, serial, (struct virtio_blk **)dev);
	base = open(image, O_RDONLY | O_CLOEXEC);
	ovl = open(fuzz_tmpdir(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (base < 0 || ovl < 0 || ftruncate(ovl, IMAGE_BYTES) < 0)
		fuzz_fail("copy-on-write files in %s: %s", fuzz_tmpdir(), strerror(errno));
	/* The device keeps its own fds on both. */
	ret = virtio_blk_create_fd(ovl, base, false, serial, (struct virtio_blk **)dev);
	close(ovl);
	close(base);
	return ret;
}

static const struct vh_device blk_dev = {
	.ops = &virtio_blk_ops,
	.create = blk_create,
	.op = blk_op,
};

/* Request header (§5.2.6): le32 type, le32 reserved, le64 sector. */
static void put_hdr(struct fuzz_seed *s, uint16_t gpa, uint32_t type, uint64_t sector)
{
	uint8_t hdr[16] = { 0 };

	virtio_put_le(hdr, type, 4);
	virtio_put_le(hdr + 8, sector, 8);
	vh_seed_mem(s, gpa, hdr, sizeof(hdr));
}

static void write_seeds(void)
{
	static struct fuzz_seed s;
	const struct fake_buf rd[3] = { { 0x1000, 16, false },
					{ 0x2000, 1024, true },
					{ 0x3000, 1, true } };
	const struct fake_buf wr[3] = { { 0x1000, 16, false },
					{ 0x2000, 1024, false },
					{ 0x3000, 1, true } };
	const struct fake_buf id[3] = { { 0x1100, 16, false },
					{ 0x2000, 20, true },
					{ 0x3000, 1, true } };
	const struct fake_buf seg[3] = { { 0x1000, 16, false },
					 { 0x1100, 32, false },
					 { 0x3000, 1, true } };
	uint8_t dwz[32] = { 0 };

	/* IN, then OUT, then FLUSH and GET_ID, each kicked. */
	seed_u8(&s, 0);
	vh_seed_bring_up(&s, 0, 4);
	put_hdr(&s, 0x1000, VIRTIO_BLK_T_IN, 3);
	vh_seed_chain(&s, 0, rd, 3);
	vh_seed_notify(&s, 0);
	put_hdr(&s, 0x1000, VIRTIO_BLK_T_OUT, 5);
	vh_seed_chain(&s, 0, wr, 3);
	vh_seed_notify(&s, 0);
	fuzz_seed_save(&s, "rw");

	/* The same on a copy-on-write disk, the write in part of a block (copy-up), read back. */
	seed_u8(&s, 4);
	vh_seed_bring_up(&s, 0, 4);
	put_hdr(&s, 0x1000, VIRTIO_BLK_T_OUT, 5);
	vh_seed_chain(&s, 0, wr, 3);
	vh_seed_notify(&s, 0);
	put_hdr(&s, 0x1000, VIRTIO_BLK_T_IN, 3);
	vh_seed_chain(&s, 0, rd, 3);
	vh_seed_notify(&s, 0);
	fuzz_seed_save(&s, "cow-rw");

	seed_u8(&s, 2);
	vh_seed_bring_up(&s, 1, 4);
	put_hdr(&s, 0x1000, VIRTIO_BLK_T_FLUSH, 0);
	vh_seed_chain(&s, 0,
		      (const struct fake_buf[]){ { 0x1000, 16, false }, { 0x3000, 1, true } }, 2);
	put_hdr(&s, 0x1100, VIRTIO_BLK_T_GET_ID, 0);
	vh_seed_chain(&s, 0, id, 3);
	vh_seed_notify(&s, 0);
	fuzz_seed_save(&s, "flush-id");

	/* DISCARD and WRITE_ZEROES with two segments {sector, num_sectors, flags}. */
	virtio_put_le(dwz, 8, 8);
	virtio_put_le(dwz + 8, 8, 4);
	virtio_put_le(dwz + 16, 120, 8);
	virtio_put_le(dwz + 24, 8, 4);
	seed_u8(&s, 0);
	vh_seed_bring_up(&s, 0, 4);
	put_hdr(&s, 0x1000, VIRTIO_BLK_T_DISCARD, 0);
	vh_seed_mem(&s, 0x1100, dwz, sizeof(dwz));
	vh_seed_chain(&s, 0, seg, 3);
	vh_seed_notify(&s, 0);
	virtio_put_le(dwz + 12, VIRTIO_BLK_WZ_F_UNMAP, 4);
	put_hdr(&s, 0x1000, VIRTIO_BLK_T_WRITE_ZEROES, 0);
	vh_seed_mem(&s, 0x1100, dwz, sizeof(dwz));
	vh_seed_chain(&s, 0, seg, 3);
	vh_seed_notify(&s, 0);
	fuzz_seed_save(&s, "discard-wz");

	/* Checkpoint, a partial write and a write-zeroes, rollback (on both kinds of disk). */
	for (uint8_t cfg = 0; cfg <= 4; cfg += 4) {
		seed_u8(&s, cfg);
		vh_seed_bring_up(&s, 0, 4);
		vh_seed_device(&s);
		seed_u8(&s, 0);
		put_hdr(&s, 0x1000, VIRTIO_BLK_T_OUT, 5);
		vh_seed_chain(&s, 0, wr, 3);
		vh_seed_notify(&s, 0);
		put_hdr(&s, 0x1000, VIRTIO_BLK_T_WRITE_ZEROES, 0);
		vh_seed_mem(&s, 0x1100, dwz, sizeof(dwz));
		vh_seed_chain(&s, 0, seg, 3);
		vh_seed_notify(&s, 0);
		vh_seed_device(&s);
		seed_u8(&s, 1);
		fuzz_seed_save(&s, cfg ? "cow-undo" : "undo");
	}

	/* The same read through an indirect table at 0x4000 (§2.7.5.3). */
	seed_u8(&s, 0);
	vh_seed_bring_up(&s, 0, 4);
	put_hdr(&s, 0x1000, VIRTIO_BLK_T_IN, 0);
	{
		uint8_t table[48] = { 0 };

		for (unsigned i = 0; i < 3; i++) {
			virtio_put_le(table + 16 * i, rd[i].gpa, 8);
			virtio_put_le(table + 16 * i + 8, rd[i].len, 4);
			virtio_put_le(table + 16 * i + 12,
				      (rd[i].write ? VIRTQ_DESC_F_WRITE : 0) |
					      (i < 2 ? VIRTQ_DESC_F_NEXT : 0),
				      2);
			virtio_put_le(table + 16 * i + 14, i + 1, 2);
		}
		vh_seed_mem(&s, 0x4000, table, sizeof(table));
	}
	vh_seed_desc(&s, 0, 0, 0x4000, 48, VIRTQ_DESC_F_INDIRECT, 0);
	vh_seed_ring(&s, 0, 0, 0);
	vh_seed_notify(&s, 0);
	fuzz_seed_save(&s, "indirect");
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	int fd;

	snprintf(image, sizeof(image), "%s/disk.img", fuzz_tmpdir());
	fd = open(image, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, IMAGE_BYTES) < 0)
		fuzz_fail("creating %s: %s", image, strerror(errno));
	close(fd);
	write_seeds();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return vh_run(&blk_dev, data, size);
}
