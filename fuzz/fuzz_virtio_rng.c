/* virtio-rng (virtio 1.2 §5.4) driven by a hostile driver (fuzz/harness.h), with an entropy
 * source that misbehaves on request: short reads, EINTR, errors, empty reads, and claims of
 * more bytes than asked for.  Input: [cfg] then harness operations; cfg picks the source's
 * first mode (below; 7 is getrandom itself).  The device operation is u8 mode. */
#include "devices/virtio/rng.h"
#include "harness.h"

#include <errno.h>
#include <string.h>

static unsigned mode;
static unsigned long calls;

static long fake_source(void *buf, size_t len)
{
	size_t n;

	calls++;
	switch (mode) {
	case 0: /* everything asked for */
		memset(buf, 0xa5, len);
		return (long)len;
	case 1: /* short reads of 1..7 bytes */
		n = 1 + calls % 7;
		n = n < len ? n : len;
		memset(buf, 0x5a, n);
		return (long)n;
	case 2: /* every other call interrupted */
		if (calls & 1)
			return -EINTR;
		memset(buf, 0x3c, len);
		return (long)len;
	case 3: /* always interrupted: the retry budget must end it */
		return -EINTR;
	case 4:
		return -EIO;
	case 5: /* nothing available (GRND_NONBLOCK before the pool is ready) */
		return calls & 1 ? -EAGAIN : 0;
	default: /* a broken source claiming more than it was asked for */
		return (long)len + 1;
	}
}

static void set_mode(struct virtio_rng *r, uint8_t m)
{
	mode = m % 8;
	calls = 0;
	virtio_rng_set_source(r, mode == 7 ? NULL : fake_source);
}

static int rng_create(struct vh *h, uint8_t cfg, void **dev)
{
	int ret = virtio_rng_create((struct virtio_rng **)dev);

	if (!ret)
		set_mode(*dev, cfg);
	return ret;
}

static void rng_op(struct vh *h, void *dev, struct fuzz_in *in)
{
	set_mode(dev, fuzz_u8(in));
}

static const struct vh_device rng_dev = {
	.ops = &virtio_rng_ops,
	.create = rng_create,
	.op = rng_op,
};

static void write_seeds(void)
{
	static struct fuzz_seed s;
	const struct fake_buf two[2] = { { 0x1000, 100, true }, { 0x2000, 0x3000, true } };
	const struct fake_buf bad[2] = { { 0x1000, 16, false }, { 0x2000, 16, true } };

	for (uint8_t m = 0; m < 8; m++) {
		char name[16] = "mode-0";

		name[5] = (char)('0' + m);
		seed_u8(&s, m);
		vh_seed_bring_up(&s, 0, 4);
		vh_seed_chain(&s, 0, two, 2);
		vh_seed_chain(&s, 0, bad, 2);
		vh_seed_chain(&s, 0, &two[1], 1);
		vh_seed_notify(&s, 0);
		fuzz_seed_save(&s, name);
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	write_seeds();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return vh_run(&rng_dev, data, size);
}
