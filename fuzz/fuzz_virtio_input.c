/* virtio-input (virtio 1.2 §5.8) driven by a hostile driver (fuzz/harness.h): config
 * select/subsel at any width, event buffers of any shape on the eventq, status events on the
 * statusq, against host events sent meanwhile.  Input: [cfg] then harness operations; bit 0 of
 * cfg picks the kind (keyboard, tablet).  The device operation is u8 what, then:
 *   0: u8 n, n * (u16 type, u16 code, u32 value): virtio_input_send() of raw events;
 *   1: u16 a, u16 b, u8 c: one valid group for the kind (must be taken or -ENOBUFS);
 *   2: save the device record and restore it into the device (must succeed);
 *   3: u8 version, u8 len, len bytes: restore from that record (refused or taken, never a
 *      crash; if taken, the state saved back agrees with it). */
#include "devices/virtio/input.h"
#include "harness.h"
#include "snapshot/snap.h"

#include <errno.h>
#include <linux/input-event-codes.h>
#include <string.h>

static enum virtio_input_kind kind;

static int input_create(struct vh *h, uint8_t cfg, void **dev)
{
	kind = cfg & 1 ? VIRTIO_INPUT_TABLET : VIRTIO_INPUT_KEYBOARD;
	return virtio_input_create(kind, (struct virtio_input **)dev);
}

static void send_raw(struct virtio_input *in, struct fuzz_in *fi)
{
	struct virtio_input_event ev[24];
	unsigned n = fuzz_u8(fi) % 25;
	int ret;

	for (unsigned i = 0; i < n; i++) {
		ev[i].type = fuzz_u16(fi);
		ev[i].code = fuzz_u16(fi);
		ev[i].value = fuzz_u32(fi);
	}
	ret = virtio_input_send(in, n ? ev : NULL, n);
	FUZZ_CHECK(ret == 0 || ret == -EINVAL || ret == -ENOBUFS);
	FUZZ_CHECK(virtio_input_pending(in) <= VIRTIO_INPUT_RING);
}

static void send_valid(struct virtio_input *in, struct fuzz_in *fi)
{
	struct virtio_input_event ev[6];
	uint16_t a = fuzz_u16(fi), b = fuzz_u16(fi);
	uint8_t c = fuzz_u8(fi);
	unsigned n = 0;
	int ret;

	if (kind == VIRTIO_INPUT_KEYBOARD) {
		ev[n++] = (struct virtio_input_event){ EV_KEY, (uint16_t)(KEY_ESC + a % KEY_KPDOT),
						       c % 3u };
	} else {
		ev[n++] = (struct virtio_input_event){ EV_ABS, ABS_X,
						       a % (VIRTIO_INPUT_ABS_MAX + 1u) };
		ev[n++] = (struct virtio_input_event){ EV_ABS, ABS_Y,
						       b % (VIRTIO_INPUT_ABS_MAX + 1u) };
		if (c & 1)
			ev[n++] = (struct virtio_input_event){ EV_KEY, BTN_LEFT, (c >> 1) & 1u };
		if (c & 4)
			ev[n++] = (struct virtio_input_event){ EV_REL, REL_WHEEL,
							       (uint32_t)(int8_t)c };
	}
	ev[n++] = (struct virtio_input_event){ EV_SYN, SYN_REPORT, 0 };
	ret = virtio_input_send(in, ev, n);
	FUZZ_CHECK(ret == 0 || ret == -ENOBUFS);
}

/* Save the device's record into w and parse it into f. */
static void save(struct virtio_input *in, struct snap_writer *w, struct snap_file *f)
{
	snap_writer_init(w);
	FUZZ_CHECK(virtio_input_ops.save(in, w, "virtio-input0") == 0);
	FUZZ_CHECK(snap_writer_finish(w) == 0);
	FUZZ_CHECK(snap_file_parse(f, w->buf, w->len, NULL, 0) == 0);
}

static void round_trip(struct virtio_input *in)
{
	struct snap_writer w, w2;
	struct snap_file f, f2;
	struct snap_reader r, r2;

	save(in, &w, &f);
	FUZZ_CHECK(virtio_input_ops.restore(in, &f, "virtio-input0") == 0);
	/* The held keys are released, so they are no longer saved; the rest is. */
	save(in, &w2, &f2);
	FUZZ_CHECK(snap_file_find(&f, SNAP_REC_VIRTIO_INPUT, "virtio-input0", &r) == 0);
	FUZZ_CHECK(snap_file_find(&f2, SNAP_REC_VIRTIO_INPUT, "virtio-input0", &r2) == 0);
	FUZZ_CHECK(r.len == r2.len && r.len >= 4 && !memcmp(r.p, r2.p, 4));
	snap_writer_free(&w);
	snap_writer_free(&w2);
}

static void restore_fuzzed(struct virtio_input *in, struct fuzz_in *fi)
{
	uint16_t version = fuzz_u8(fi) % 3;
	const uint8_t *p;
	size_t n = fuzz_bytes(fi, fuzz_u8(fi), &p);
	struct snap_writer w, w2;
	struct snap_file f, f2;
	struct snap_reader r;

	snap_writer_init(&w);
	snap_rec_begin(&w, SNAP_REC_VIRTIO_INPUT, version, "virtio-input0");
	snap_put_bytes(&w, p, n);
	FUZZ_CHECK(snap_writer_finish(&w) == 0);
	FUZZ_CHECK(snap_file_parse(&f, w.buf, w.len, NULL, 0) == 0);
	if (virtio_input_ops.restore(in, &f, "virtio-input0") == 0) {
		save(in, &w2, &f2);
		FUZZ_CHECK(snap_file_find(&f2, SNAP_REC_VIRTIO_INPUT, "virtio-input0", &r) == 0);
		FUZZ_CHECK(version == 1 && n == r.len && !memcmp(p, r.p, 4));
		snap_writer_free(&w2);
	}
	snap_writer_free(&w);
}

static void input_op(struct vh *h, void *dev, struct fuzz_in *fi)
{
	switch (fuzz_u8(fi) % 4) {
	case 0:
		send_raw(dev, fi);
		break;
	case 1:
		send_valid(dev, fi);
		break;
	case 2:
		round_trip(dev);
		break;
	default:
		restore_fuzzed(dev, fi);
		break;
	}
}

static const struct vh_device input_dev = {
	.ops = &virtio_input_ops,
	.create = input_create,
	.op = input_op,
};

static void write_seeds(void)
{
	static struct fuzz_seed s;
	const struct fake_buf ev[4] = {
		{ 0x1000, 8, true }, { 0x1008, 8, true }, { 0x1010, 3, true }, { 0x1020, 5, true }
	};
	const struct fake_buf st = { 0x2000, 8, false };
	const uint8_t led[8] = { EV_LED, 0, LED_CAPSL, 0, 1, 0, 0, 0 };

	for (uint8_t k = 0; k < 2; k++) {
		char name[16] = "kind-0";

		name[5] = (char)('0' + k);
		seed_u8(&s, k);
		vh_seed_bring_up(&s, 0, 8);
		/* Config: select EV_BITS, subsel EV_KEY, read size and a bitmap byte. */
		seed_u8(&s, VH_OP_WRITE);
		seed_u16(&s, 0x100);
		seed_u8(&s, 1); /* 2 bytes */
		seed_u64(&s, 0x0111);
		seed_u8(&s, VH_OP_READ);
		seed_u16(&s, 0x102);
		seed_u8(&s, 0);
		seed_u8(&s, VH_OP_READ);
		seed_u16(&s, 0x108);
		seed_u8(&s, 2);
		vh_seed_chain(&s, 0, &ev[0], 1);
		vh_seed_chain(&s, 0, &ev[1], 1);
		vh_seed_chain(&s, 0, &ev[2], 2);
		vh_seed_notify(&s, 0);
		vh_seed_device(&s);
		seed_u8(&s, 1); /* a valid group */
		seed_u16(&s, 29);
		seed_u16(&s, 100);
		seed_u8(&s, 5);
		vh_seed_mem(&s, 0x2000, led, 8);
		vh_seed_chain(&s, 1, &st, 1);
		vh_seed_notify(&s, 1);
		vh_seed_device(&s);
		seed_u8(&s, 2); /* save and restore */
		vh_seed_chain(&s, 0, &ev[0], 1);
		vh_seed_chain(&s, 0, &ev[1], 1);
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
	return vh_run(&input_dev, data, size);
}
