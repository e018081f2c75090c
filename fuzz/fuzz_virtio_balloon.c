/* virtio-balloon (virtio 1.2 §5.5) driven by a hostile driver (fuzz/harness.h): page frame
 * lists on the inflate and deflate queues (inflated pages of the fake RAM really are
 * madvise(MADV_DONTNEED)'d), statistics buffers, `actual` written at any width.  Input: [cfg]
 * then harness operations; cfg picks the Ctrl-A b step (1 << (cfg % 8) MiB).  The device
 * operation is u8 what, then 0: u32 pages: set the target;  1: toggle (Ctrl-A b);
 * 2: ask for statistics;  3: read statistics and counters. */
#include "devices/virtio/balloon.h"
#include "harness.h"

static int balloon_create(struct vh *h, uint8_t cfg, void **dev)
{
	struct virtio_balloon_opts o = { .step_mib = 1u << (cfg % 8), .stats_s = 0 };

	return virtio_balloon_create(&h->mem.gm, NULL, &o, (struct virtio_balloon **)dev);
}

static void balloon_op(struct vh *h, void *dev, struct fuzz_in *in)
{
	struct virtio_balloon *b = dev;
	struct virtio_balloon_stats s;
	struct virtio_balloon_counters c;

	switch (fuzz_u8(in) % 4) {
	case 0:
		virtio_balloon_set_target(b, fuzz_u32(in));
		/* Clamped to guest RAM. */
		FUZZ_CHECK(virtio_balloon_target(b) <= VH_RAM_SIZE / VIRTIO_BALLOON_PAGE_SIZE);
		break;
	case 1:
		virtio_balloon_toggle(b);
		break;
	case 2:
		(void)virtio_balloon_request_stats(b);
		break;
	default:
		virtio_balloon_get_stats(b, &s, &c);
		FUZZ_CHECK(!(s.present >> VIRTIO_BALLOON_S_MAX));
		break;
	}
}

static const struct vh_device balloon_dev = {
	.ops = &virtio_balloon_ops,
	.create = balloon_create,
	.op = balloon_op,
};

static void write_seeds(void)
{
	static struct fuzz_seed s;
	/* Pages 4..7 (one run), 9, one outside RAM, 12; le32 each. */
	const uint32_t pfns[7] = { 4, 5, 6, 7, 9, 0x100000, 12 };
	uint8_t list[sizeof(pfns)], stats[3 * VIRTIO_BALLOON_STAT_BYTES] = { 0 };
	const struct fake_buf pl = { 0x1000, sizeof(list), false };
	const struct fake_buf st = { 0x1100, sizeof(stats), false };

	for (unsigned i = 0; i < 7; i++)
		virtio_put_le(list + 4 * i, pfns[i], 4);
	virtio_put_le(stats, VIRTIO_BALLOON_S_MEMFREE, 2);
	virtio_put_le(stats + 2, 1u << 20, 8);
	virtio_put_le(stats + 10, VIRTIO_BALLOON_S_MEMTOT, 2);
	virtio_put_le(stats + 12, 64u << 10, 8);
	virtio_put_le(stats + 20, 0xffff, 2); /* unknown tag: ignored */

	/* Target set by the host; the guest inflates, reports `actual`, deflates; statistics
	 * arrive, are asked for again, and read. */
	seed_u8(&s, 3);
	vh_seed_bring_up(&s, 0, 4);
	vh_seed_device(&s);
	seed_u8(&s, 0);
	seed_u32(&s, 8);
	vh_seed_mem(&s, 0x1000, list, sizeof(list));
	vh_seed_chain(&s, VIRTIO_BALLOON_Q_INFLATE, &pl, 1);
	vh_seed_notify(&s, VIRTIO_BALLOON_Q_INFLATE);
	seed_u8(&s, VH_OP_WRITE);
	seed_u16(&s, 0x100 + VIRTIO_BALLOON_CFG_ACTUAL);
	seed_u8(&s, 2); /* 4 bytes */
	seed_u64(&s, 6);
	vh_seed_chain(&s, VIRTIO_BALLOON_Q_DEFLATE, &pl, 1);
	vh_seed_notify(&s, VIRTIO_BALLOON_Q_DEFLATE);
	vh_seed_mem(&s, 0x1100, stats, sizeof(stats));
	vh_seed_chain(&s, VIRTIO_BALLOON_Q_STATS, &st, 1);
	vh_seed_notify(&s, VIRTIO_BALLOON_Q_STATS);
	vh_seed_device(&s);
	seed_u8(&s, 2);
	vh_seed_chain(&s, VIRTIO_BALLOON_Q_STATS, &st, 1);
	vh_seed_notify(&s, VIRTIO_BALLOON_Q_STATS);
	vh_seed_device(&s);
	seed_u8(&s, 3);
	vh_seed_device(&s);
	seed_u8(&s, 1);
	fuzz_seed_save(&s, "inflate-stats");
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	write_seeds();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return vh_run(&balloon_dev, data, size);
}
