/* virtio-input (virtio 1.2 §5.8) driven through the virtio-mmio transport by the fake driver:
 * config space of both kinds, event delivery in whole groups, the bounded ring, the status
 * queue, hostile buffers, snapshots, and senders on other threads. */
#include "core/devmgr.h"
#include "core/evloop.h"
#include "devices/virtio/input.h"
#include "devices/virtio/mmio.h"
#include "devices/virtio/virtio.h"
#include "fake_driver.h"
#include "fake_input.h"
#include "fake_virtq.h"
#include "snapshot/snap.h"

#include <errno.h>
#include <linux/input.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#define QSIZE 64

static const struct virtio_input_event SYN = { 0, 0, 0 };

static struct virtio_input_event key(uint16_t code, uint32_t v)
{
	return (struct virtio_input_event){ EV_KEY, code, v };
}

static void expect_events(const struct virtio_input_event *got, unsigned n,
			  const struct virtio_input_event *want, unsigned m)
{
	assert_int_equal(n, m);
	for (unsigned i = 0; i < n; i++)
		if (got[i].type != want[i].type || got[i].code != want[i].code ||
		    got[i].value != want[i].value)
			fail_msg("event %u: %u/%u/%u, want %u/%u/%u", i, got[i].type, got[i].code,
				 got[i].value, want[i].type, want[i].code, want[i].value);
}

static bool needs_reset(struct fin *x)
{
	return virtio_mmio_status(x->t) & VIRTIO_STATUS_DEVICE_NEEDS_RESET;
}

static int setup_kbd(void **state)
{
	struct fin *x = calloc(1, sizeof(*x));

	fin_init(x, VIRTIO_INPUT_KEYBOARD, QSIZE);
	*state = x;
	return 0;
}

static int setup_tablet(void **state)
{
	struct fin *x = calloc(1, sizeof(*x));

	fin_init(x, VIRTIO_INPUT_TABLET, QSIZE);
	*state = x;
	return 0;
}

static int teardown(void **state)
{
	struct fin *x = *state;

	fin_free(x);
	free(x);
	return 0;
}

static bool bit(const uint8_t *u, unsigned b)
{
	return u[b / 8] >> (b % 8) & 1;
}

static void test_config_keyboard(void **state)
{
	struct fin *x = *state;
	uint8_t u[128];
	unsigned keys = 0;

	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_DEVICE_ID), VIRTIO_ID_INPUT);
	/* §5.8.3: no device feature bits. */
	fdrv_wr(x->t, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_DEVICE_FEATURES) & 0xffffff, 0);
	/* UNSET and unknown selectors: size 0, union zero. */
	assert_int_equal(fin_cfg_select(x, VIRTIO_INPUT_CFG_UNSET, 0, u), 0);
	assert_int_equal(fin_cfg_select(x, 0x42, 0, u), 0);
	for (unsigned i = 0; i < 128; i++)
		assert_int_equal(u[i], 0);
	assert_int_equal(fin_cfg_select(x, VIRTIO_INPUT_CFG_ID_NAME, 0, u), 17);
	assert_memory_equal(u, "ignition keyboard", 17);
	assert_int_equal(u[17], 0);
	/* select and subsel read back; a 4-byte read sees select, subsel, size, 0. */
	assert_int_equal(virtio_mmio_dev_ops.read(x->t, VIRTIO_MMIO_CONFIG, 4), 0x00110001);
	/* Writes to size and the union are dropped. */
	virtio_mmio_dev_ops.write(x->t, VIRTIO_MMIO_CONFIG + 2, 4, 0xffffffff);
	virtio_mmio_dev_ops.write(x->t, VIRTIO_MMIO_CONFIG + 8, 8, 0);
	assert_int_equal(virtio_mmio_dev_ops.read(x->t, VIRTIO_MMIO_CONFIG + 2, 1), 17);
	assert_int_equal(virtio_mmio_dev_ops.read(x->t, VIRTIO_MMIO_CONFIG + 8, 1), 'i');
	/* Beyond the 136 bytes reads 0. */
	assert_int_equal(virtio_mmio_dev_ops.read(x->t, VIRTIO_MMIO_CONFIG + 136, 4), 0);
	assert_int_equal(fin_cfg_select(x, VIRTIO_INPUT_CFG_ID_SERIAL, 0, u), 12);
	assert_memory_equal(u, "ignition-kbd", 12);
	assert_int_equal(fin_cfg_select(x, VIRTIO_INPUT_CFG_ID_DEVIDS, 0, u), 8);
	assert_int_equal(u[0] | u[1] << 8, BUS_VIRTUAL);
	assert_int_equal(u[2] | u[3] << 8, VIRTIO_INPUT_VENDOR);
	assert_int_equal(u[4] | u[5] << 8, 1);
	assert_int_equal(u[6] | u[7] << 8, 1);
	assert_int_equal(fin_cfg_select(x, VIRTIO_INPUT_CFG_PROP_BITS, 0, u), 0);
	/* EV_KEY: the keys of a US keyboard, Linux's "keyboard" test (udev: keys 1..31). */
	assert_int_equal(fin_cfg_select(x, VIRTIO_INPUT_CFG_EV_BITS, EV_KEY, u), 16);
	for (unsigned c = 1; c < 32; c++)
		assert_true(bit(u, c));
	assert_false(bit(u, 0));
	assert_false(bit(u, 84));
	assert_true(bit(u, KEY_F12));
	assert_true(bit(u, KEY_RIGHTALT));
	assert_true(bit(u, KEY_DELETE));
	assert_true(bit(u, KEY_LEFTMETA));
	assert_true(bit(u, KEY_COMPOSE));
	for (unsigned c = 0; c < 128; c++)
		keys += bit(u, c);
	assert_int_equal(keys, 83 + 3 + 5 + 10 + 7 + 3);
	assert_int_equal(fin_cfg_select(x, VIRTIO_INPUT_CFG_EV_BITS, EV_REP, u), 1);
	assert_int_equal(fin_cfg_select(x, VIRTIO_INPUT_CFG_EV_BITS, EV_LED, u), 1);
	assert_int_equal(u[0], 1 << LED_NUML | 1 << LED_CAPSL | 1 << LED_SCROLLL);
	assert_int_equal(fin_cfg_select(x, VIRTIO_INPUT_CFG_EV_BITS, EV_ABS, u), 0);
	assert_int_equal(fin_cfg_select(x, VIRTIO_INPUT_CFG_EV_BITS, EV_REL, u), 0);
	assert_int_equal(fin_cfg_select(x, VIRTIO_INPUT_CFG_EV_BITS, EV_SYN, u), 0);
	assert_int_equal(fin_cfg_select(x, VIRTIO_INPUT_CFG_ABS_INFO, ABS_X, u), 0);
	/* Two queues. */
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_SEL, 2);
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_QUEUE_NUM_MAX), 0);
}

static void test_config_tablet(void **state)
{
	struct fin *x = *state;
	uint8_t u[128];

	assert_int_equal(fin_cfg_select(x, VIRTIO_INPUT_CFG_ID_NAME, 0, u), 15);
	assert_memory_equal(u, "ignition tablet", 15);
	assert_int_equal(fin_cfg_select(x, VIRTIO_INPUT_CFG_ID_SERIAL, 0, u), 15);
	assert_memory_equal(u, "ignition-tablet", 15);
	assert_int_equal(fin_cfg_select(x, VIRTIO_INPUT_CFG_ID_DEVIDS, 0, u), 8);
	assert_int_equal(u[0] | u[1] << 8, BUS_VIRTUAL);
	assert_int_equal(u[4] | u[5] << 8, 2);
	/* No INPUT_PROP_DIRECT: a pointer with absolute axes, not a touchscreen. */
	assert_int_equal(fin_cfg_select(x, VIRTIO_INPUT_CFG_PROP_BITS, 0, u), 0);
	assert_int_equal(fin_cfg_select(x, VIRTIO_INPUT_CFG_EV_BITS, EV_ABS, u), 1);
	assert_int_equal(u[0], 3);
	assert_int_equal(fin_cfg_select(x, VIRTIO_INPUT_CFG_EV_BITS, EV_KEY, u),
			 BTN_MIDDLE / 8 + 1);
	for (unsigned c = 0; c < 8 * 35; c++)
		assert_int_equal(bit(u, c), c == BTN_LEFT || c == BTN_RIGHT || c == BTN_MIDDLE);
	assert_false(bit(u, BTN_TOUCH));
	assert_int_equal(fin_cfg_select(x, VIRTIO_INPUT_CFG_EV_BITS, EV_REL, u), 2);
	assert_int_equal(u[0], 0);
	assert_int_equal(u[1], 1); /* REL_WHEEL = 8 */
	assert_int_equal(fin_cfg_select(x, VIRTIO_INPUT_CFG_EV_BITS, EV_REP, u), 0);
	assert_int_equal(fin_cfg_select(x, VIRTIO_INPUT_CFG_EV_BITS, EV_LED, u), 0);
	for (unsigned axis = ABS_X; axis <= ABS_Y; axis++) {
		assert_int_equal(fin_cfg_select(x, VIRTIO_INPUT_CFG_ABS_INFO, (uint8_t)axis, u),
				 20);
		assert_int_equal(virtio_get_le(u, 4), 0);
		assert_int_equal(virtio_get_le(u + 4, 4), VIRTIO_INPUT_ABS_MAX);
		assert_int_equal(virtio_get_le(u + 8, 4), 0);
		assert_int_equal(virtio_get_le(u + 12, 4), 0);
		assert_int_equal(virtio_get_le(u + 16, 4), 0);
	}
	assert_int_equal(fin_cfg_select(x, VIRTIO_INPUT_CFG_ABS_INFO, ABS_Z, u), 0);
}

static void test_delivery(void **state)
{
	struct fin *x = *state;
	struct virtio_input_event ev[] = { key(KEY_A, 1), SYN, key(KEY_A, 0), SYN };
	struct virtio_input_event got[16];
	uint64_t irqs;

	fin_post(x, 8);
	irqs = x->irq.count;
	assert_int_equal(virtio_input_send(x->in, ev, 4), 0);
	/* Two groups in one send: one interrupt for the pass. */
	assert_int_equal(x->irq.count, irqs + 1);
	expect_events(got, fin_take(x, got, 16), ev, 4);
	assert_int_equal(virtio_input_pending(x->in), 0);
	/* The bytes as §5.8.6 lays them out. */
	assert_int_equal(virtio_input_send(x->in, ev, 2), 0);
	{
		const uint8_t want[8] = { EV_KEY, 0, KEY_A, 0, 1, 0, 0, 0 };
		uint32_t id, len;

		assert_true(fake_vq_get_used(&x->evq, &id, &len));
		assert_memory_equal(fake_mem_ptr(&x->mem, FIN_EVBUF + 8u * id, 8), want, 8);
	}
	assert_true(virtio_input_key_down(x->in, KEY_A));
	assert_false(virtio_input_key_down(x->in, KEY_B));
}

/* Events sent with no buffers wait; a group goes in only when buffers for all of it are
 * there, then everything in order. */
static void test_queued_until_buffers(void **state)
{
	struct fin *x = *state;
	struct virtio_input_event g1[] = { key(KEY_LEFTSHIFT, 1), key(KEY_4, 1), SYN };
	struct virtio_input_event g2[] = { key(KEY_4, 0), key(KEY_LEFTSHIFT, 0), SYN };
	struct virtio_input_event want[6], got[16];

	assert_int_equal(virtio_input_send(x->in, g1, 3), 0);
	assert_int_equal(virtio_input_send(x->in, g2, 3), 0);
	assert_int_equal(virtio_input_pending(x->in), 6);
	assert_int_equal(fake_vq_used_idx(&x->evq), 0);
	fin_post(x, 2); /* not enough for g1 */
	assert_int_equal(fake_vq_used_idx(&x->evq), 0);
	assert_int_equal(virtio_input_pending(x->in), 6);
	fin_post(x, 2); /* g1 fits, g2 does not */
	assert_int_equal(fin_take(x, got, 16), 3);
	expect_events(got, 3, g1, 3);
	assert_int_equal(virtio_input_pending(x->in), 3);
	fin_post(x, 8);
	memcpy(want, g2, sizeof(g2));
	expect_events(got, fin_take(x, got, 16), want, 3);
	assert_int_equal(virtio_input_pending(x->in), 0);
}

/* Before the driver is up, events wait too and go in at DRIVER_OK. */
static void test_before_driver(void **state)
{
	struct fin x;
	struct virtio_input_event ev[] = { key(KEY_B, 1), SYN };
	struct virtio_input_event got[4];

	fin_init(&x, VIRTIO_INPUT_KEYBOARD, 0);
	assert_int_equal(virtio_input_send(x.in, ev, 2), 0);
	assert_int_equal(virtio_input_pending(x.in), 2);
	fdrv_negotiate(x.t, ~0ull);
	fdrv_queue(x.t, 0, &x.evq, &x.mem, QSIZE, FIN_EVQ_DESC, FIN_EVQ_AVAIL, FIN_EVQ_USED,
		   VIRTIO_INPUT_QUEUE_SIZE);
	/* Buffers made available before DRIVER_OK (Linux fills the queue at probe). */
	for (unsigned i = 0; i < 4; i++) {
		struct fake_buf b = { FIN_EVBUF + 8u * i, 8, true };

		fake_vq_add_chain(&x.evq, &b, 1);
	}
	fdrv_driver_ok(x.t); /* no status queue: optional */
	expect_events(got, fin_take(&x, got, 4), ev, 2);
	fin_free(&x);
}

static void test_full_ring_drops_whole_groups(void **state)
{
	struct fin *x = *state;
	struct virtio_input_event press[] = { key(KEY_A, 1), SYN };
	struct virtio_input_event release[] = { key(KEY_A, 0), SYN };
	struct virtio_input_event bb[] = { key(KEY_B, 1), SYN, key(KEY_B, 0), SYN };
	struct virtio_input_event three[] = { key(KEY_C, 1), key(KEY_D, 1), SYN };
	struct virtio_input_event got[QSIZE], last[2] = { { 0 } };
	unsigned sent = 2, total = 0, n;

	assert_int_equal(virtio_input_send(x->in, press, 2), 0);
	while (virtio_input_send(x->in, bb, 4) == 0)
		sent += 4;
	assert_int_equal(sent, VIRTIO_INPUT_RING - 2);
	assert_int_equal(virtio_input_pending(x->in), sent);
	/* Two free slots: a three-event group is refused whole, a two-event one fits. */
	assert_int_equal(virtio_input_send(x->in, three, 3), -ENOBUFS);
	assert_int_equal(virtio_input_pending(x->in), sent);
	assert_int_equal(virtio_input_send(x->in, bb, 2), 0);
	sent += 2;
	/* Full: the release of A is dropped, so it is owed and comes once there is room. */
	assert_int_equal(virtio_input_send(x->in, release, 2), -ENOBUFS);
	assert_int_equal(virtio_input_pending(x->in), VIRTIO_INPUT_RING);
	assert_false(virtio_input_key_down(x->in, KEY_A));
	for (unsigned round = 0; round < 1000; round++) {
		fin_post(x, QSIZE);
		n = fin_take(x, got, QSIZE);
		if (!n)
			break;
		for (unsigned i = 0; i < n; i++) {
			/* C and D never went in, not even half of their group. */
			assert_int_not_equal(got[i].code, KEY_C);
			assert_int_not_equal(got[i].code, KEY_D);
		}
		if (n >= 2)
			memcpy(last, got + n - 2, sizeof(last));
		total += n;
	}
	assert_int_equal(total, sent + 2);
	expect_events(last, 2, release, 2);
	assert_int_equal(virtio_input_pending(x->in), 0);
}

static void test_invalid_events(void **state)
{
	struct fin *x = *state;
	struct virtio_input_event e[VIRTIO_INPUT_MAX_GROUP + 2];
	struct virtio_input_event nosyn[] = { key(KEY_A, 1) };
	struct virtio_input_event btn[] = { key(BTN_LEFT, 1), SYN };
	struct virtio_input_event badkey[] = { key(84, 1), SYN };
	struct virtio_input_event badval[] = { key(KEY_A, 3), SYN };
	struct virtio_input_event abs[] = { { EV_ABS, ABS_X, 5 }, SYN };
	struct virtio_input_event badsyn[] = { key(KEY_A, 1), { EV_SYN, SYN_REPORT, 1 } };
	struct fin t;

	assert_int_equal(virtio_input_send(x->in, nosyn, 1), -EINVAL);
	assert_int_equal(virtio_input_send(x->in, btn, 2), -EINVAL);
	assert_int_equal(virtio_input_send(x->in, badkey, 2), -EINVAL);
	assert_int_equal(virtio_input_send(x->in, badval, 2), -EINVAL);
	assert_int_equal(virtio_input_send(x->in, abs, 2), -EINVAL);
	assert_int_equal(virtio_input_send(x->in, badsyn, 2), -EINVAL);
	assert_int_equal(virtio_input_send(x->in, btn, 0), -EINVAL);
	/* A group longer than the device delivers whole. */
	for (unsigned i = 0; i < VIRTIO_INPUT_MAX_GROUP; i++)
		e[i] = key(KEY_A, 2);
	e[VIRTIO_INPUT_MAX_GROUP - 1] = SYN;
	assert_int_equal(virtio_input_send(x->in, e, VIRTIO_INPUT_MAX_GROUP), 0);
	e[VIRTIO_INPUT_MAX_GROUP - 1] = key(KEY_A, 2);
	e[VIRTIO_INPUT_MAX_GROUP] = SYN;
	assert_int_equal(virtio_input_send(x->in, e, VIRTIO_INPUT_MAX_GROUP + 1), -EINVAL);
	assert_int_equal(virtio_input_pending(x->in), VIRTIO_INPUT_MAX_GROUP);

	fin_init(&t, VIRTIO_INPUT_TABLET, QSIZE);
	assert_int_equal(virtio_input_send(t.in, btn, 2), 0);
	assert_int_equal(virtio_input_send(t.in, abs, 2), 0);
	abs[0].value = VIRTIO_INPUT_ABS_MAX + 1;
	assert_int_equal(virtio_input_send(t.in, abs, 2), -EINVAL);
	abs[0].code = ABS_Z;
	abs[0].value = 0;
	assert_int_equal(virtio_input_send(t.in, abs, 2), -EINVAL);
	assert_int_equal(virtio_input_send(t.in, badkey, 2), -EINVAL);
	btn[0].value = 2; /* no autorepeat on buttons */
	assert_int_equal(virtio_input_send(t.in, btn, 2), -EINVAL);
	assert_int_equal(
		virtio_input_send(t.in, (struct virtio_input_event[]){ key(KEY_A, 1), SYN }, 2),
		-EINVAL);
	assert_int_equal(virtio_input_pending(t.in), 4);
	fin_free(&t);
}

/* Put one status event (type, code, value) of `len` readable bytes on the status queue. */
static void status(struct fin *x, uint16_t type, uint16_t code, uint32_t value, uint32_t len,
		   bool write)
{
	uint8_t *p = fake_mem_ptr(&x->mem, FIN_STBUF, 8);
	struct fake_buf b = { FIN_STBUF, len, write };
	uint32_t id, l;

	virtio_put_le(p, type, 2);
	virtio_put_le(p + 2, code, 2);
	virtio_put_le(p + 4, value, 4);
	fake_vq_add_chain(&x->stq, &b, 1);
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 1);
	assert_true(fake_vq_get_used(&x->stq, &id, &l));
	assert_int_equal(l, 0);
}

static void test_statusq(void **state)
{
	struct fin *x = *state;

	assert_int_equal(virtio_input_leds(x->in), 0);
	status(x, EV_LED, LED_CAPSL, 1, 8, false);
	assert_int_equal(virtio_input_leds(x->in), 1 << LED_CAPSL);
	status(x, EV_LED, LED_NUML, 1, 8, false);
	status(x, EV_SYN, 0, 0, 8, false);
	assert_int_equal(virtio_input_leds(x->in), 1 << LED_CAPSL | 1 << LED_NUML);
	status(x, EV_LED, LED_CAPSL, 0, 8, false);
	assert_int_equal(virtio_input_leds(x->in), 1 << LED_NUML);
	/* Ignored, but completed: short, device-writable, unknown LEDs, odd values, types. */
	status(x, EV_LED, LED_CAPSL, 1, 4, false);
	status(x, EV_LED, LED_CAPSL, 1, 8, true);
	status(x, EV_LED, LED_KANA, 1, 8, false);
	status(x, EV_LED, LED_SCROLLL, 7, 8, false);
	status(x, EV_KEY, KEY_A, 1, 8, false);
	status(x, EV_REP, REP_DELAY, 250, 8, false);
	assert_int_equal(virtio_input_leds(x->in), 1 << LED_NUML);
	assert_false(needs_reset(x));
	/* A flood is handled in budgeted passes, all completed. */
	for (unsigned i = 0; i < QSIZE; i++) {
		struct fake_buf b = { FIN_STBUF, 8, false };

		fake_vq_add_chain(&x->stq, &b, 1);
	}
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 1);
	assert_int_equal(fake_vq_used_idx(&x->stq), 10 + QSIZE);
}

static void test_statusq_tablet_ignores_leds(void **state)
{
	struct fin *x = *state;

	status(x, EV_LED, LED_CAPSL, 1, 8, false);
	assert_int_equal(virtio_input_leds(x->in), 0);
}

/* Event buffers that are read-only or shorter than an event break the queue (NEEDS_RESET),
 * never the VMM; a buffer split over two descriptors is fine. */
static void test_hostile_eventq(void **state)
{
	struct fin *x = *state;
	struct virtio_input_event ev[] = { key(KEY_A, 1), SYN };
	struct virtio_input_event got[4];
	struct fake_buf split[2] = { { FIN_EVBUF + 0x1000, 3, true },
				     { FIN_EVBUF + 0x2000, 5, true } };
	struct fake_buf ro = { FIN_EVBUF, 8, false }, shortb = { FIN_EVBUF, 7, true };
	struct fake_buf outside = { FIN_RAM_SIZE - 4, 8, true };
	uint32_t id, len;
	uint8_t raw[8];

	/* Split buffer: 3 + 5 bytes. */
	fake_vq_add_chain(&x->evq, split, 2);
	fin_post(x, 1);
	assert_int_equal(virtio_input_send(x->in, ev, 2), 0);
	assert_true(fake_vq_get_used(&x->evq, &id, &len));
	assert_int_equal(len, 8);
	memcpy(raw, fake_mem_ptr(&x->mem, FIN_EVBUF + 0x1000, 3), 3);
	memcpy(raw + 3, fake_mem_ptr(&x->mem, FIN_EVBUF + 0x2000, 5), 5);
	assert_int_equal(virtio_get_le(raw, 2), EV_KEY);
	assert_int_equal(virtio_get_le(raw + 2, 2), KEY_A);
	assert_int_equal(virtio_get_le(raw + 4, 4), 1);
	assert_int_equal(fin_take(x, got, 4), 1);
	assert_false(needs_reset(x));

	/* Read-only. */
	fake_vq_add_chain(&x->evq, &ro, 1);
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(virtio_input_send(x->in, ev, 2), 0);
	assert_true(needs_reset(x));
	assert_true(fake_vq_get_used(&x->evq, &id, &len));
	assert_int_equal(len, 0);

	/* Too short. */
	fin_bring_up(x, QSIZE);
	fake_vq_add_chain(&x->evq, &shortb, 1);
	assert_int_equal(virtio_input_send(x->in, ev, 2), 0);
	assert_true(needs_reset(x));

	/* Outside guest RAM. */
	fin_bring_up(x, QSIZE);
	fake_vq_add_chain(&x->evq, &outside, 1);
	assert_int_equal(virtio_input_send(x->in, ev, 2), 0);
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_true(needs_reset(x));

	/* A reset device works again; the events sent meanwhile were kept. */
	fin_bring_up(x, QSIZE);
	assert_false(needs_reset(x));
	fin_post(x, 16);
	assert_true(fin_take(x, got, 4) >= 2);
}

/* A queue smaller than a group can never take it: the group is dropped, the next delivered. */
static void test_queue_too_small(void **state)
{
	struct fin x;
	struct virtio_input_event big[] = { { EV_ABS, ABS_X, 1 }, { EV_ABS, ABS_Y, 2 }, SYN };
	struct virtio_input_event wheel[] = { { EV_REL, REL_WHEEL, 1 }, SYN };
	struct virtio_input_event got[4];

	fin_init(&x, VIRTIO_INPUT_TABLET, 2);
	fin_post(&x, 2);
	assert_int_equal(virtio_input_send(x.in, big, 3), 0);
	assert_int_equal(virtio_input_pending(x.in), 0);
	assert_int_equal(fake_vq_used_idx(&x.evq), 0);
	assert_int_equal(virtio_input_send(x.in, wheel, 2), 0);
	expect_events(got, fin_take(&x, got, 4), wheel, 2);
	assert_false(needs_reset(&x));
	fin_free(&x);
}

/* Snapshots: quiesce and save the transport and device into w, parsed into f. */
static void snap_save(struct fin *x, struct snap_writer *w, struct snap_file *f)
{
	char why[128];

	snap_writer_init(w);
	virtio_mmio_dev_ops.quiesce(x->t);
	assert_int_equal(virtio_mmio_dev_ops.save(x->t, w, "virtio-input0"), 0);
	assert_int_equal(snap_writer_finish(w), 0);
	assert_int_equal(snap_file_parse(f, w->buf, w->len, why, sizeof(why)), 0);
}

/* A fresh device and transport over the same memory (a restored VM's). */
static void new_device(struct fin *x, enum virtio_input_kind kind)
{
	virtio_mmio_destroy(x->t);
	x->irq = (struct irq_line){ .fd = -1 };
	assert_int_equal(virtio_input_create(kind, &x->in), 0);
	assert_int_equal(virtio_mmio_create(&x->mem.gm, &x->irq, &virtio_input_ops, x->in, &x->t),
			 0);
}

/* A held key and LEDs at save; after restore the guest gets the key's release (not the
 * events that were still waiting), LEDs and the config selection are back. */
static void test_snapshot_round_trip(void **state)
{
	struct fin *x = *state;
	struct virtio_input_event press[] = { key(KEY_LEFTCTRL, 1), SYN, key(KEY_X, 1), SYN };
	struct virtio_input_event waiting[] = { key(KEY_Y, 1), SYN };
	struct virtio_input_event want[] = { key(KEY_LEFTCTRL, 0), key(KEY_X, 0), SYN };
	struct virtio_input_event got[8];
	struct snap_writer w;
	struct snap_file f;
	struct snap_reader r;
	fin_post(x, 4);
	assert_int_equal(virtio_input_send(x->in, press, 4), 0);
	assert_int_equal(fin_take(x, got, 8), 4);
	assert_int_equal(virtio_input_send(x->in, waiting, 2), 0);
	assert_int_equal(virtio_input_pending(x->in), 2);
	/* Buffers the driver made available without notifying: still in the ring at save. */
	for (unsigned i = 0; i < 4; i++) {
		uint16_t idx = x->evq.next_desc % x->evq.size;
		struct fake_buf b = { FIN_EVBUF + 8u * idx, 8, true };

		fake_vq_add_chain(&x->evq, &b, 1);
	}
	status(x, EV_LED, LED_SCROLLL, 1, 8, false);
	assert_int_equal(fin_cfg_select(x, VIRTIO_INPUT_CFG_ID_NAME, 0, NULL), 17);
	snap_save(x, &w, &f);
	assert_int_equal(snap_file_find(&f, SNAP_REC_VIRTIO_INPUT, "virtio-input0", &r), 0);
	assert_int_equal(r.version, 1);
	assert_string_equal(snap_rec_name(SNAP_REC_VIRTIO_INPUT), "virtio-input");
	/* Saving changed nothing for the running device. */
	assert_int_equal(virtio_input_pending(x->in), 2);

	new_device(x, VIRTIO_INPUT_KEYBOARD);
	assert_int_equal(virtio_mmio_dev_ops.restore(x->t, &f, "virtio-input0"), 0);
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_STATUS), 0x0f);
	expect_events(got, fin_take(x, got, 8), want, 3);
	assert_int_equal(virtio_input_pending(x->in), 0);
	assert_int_equal(virtio_input_leds(x->in), 1 << LED_SCROLLL);
	assert_int_equal(virtio_mmio_dev_ops.read(x->t, VIRTIO_MMIO_CONFIG, 1),
			 VIRTIO_INPUT_CFG_ID_NAME);
	assert_int_equal(virtio_mmio_dev_ops.read(x->t, VIRTIO_MMIO_CONFIG + 2, 1), 17);
	assert_false(virtio_input_key_down(x->in, KEY_X));
	/* It goes on working. */
	fin_post(x, 2);
	assert_int_equal(virtio_input_send(x->in, waiting, 2), 0);
	expect_events(got, fin_take(x, got, 8), waiting, 2);
	snap_writer_free(&w);
}

/* Records that do not fit the device are refused. */
static void test_snapshot_bad_records(void **state)
{
	struct fin *x = *state;
	struct snap_writer w, w2;
	struct snap_file f, f2;
	struct snap_reader r;
	uint8_t payload[4 + 96];
	char why[128];

	snap_save(x, &w, &f);
	assert_int_equal(snap_file_find(&f, SNAP_REC_VIRTIO_INPUT, "virtio-input0", &r), 0);
	assert_int_equal(r.len, sizeof(payload));
	/* The wrong kind. */
	new_device(x, VIRTIO_INPUT_TABLET);
	assert_int_equal(virtio_mmio_dev_ops.restore(x->t, &f, "virtio-input0"), -EINVAL);
	new_device(x, VIRTIO_INPUT_KEYBOARD);
	/* Each corruption of the device record alone. */
	for (unsigned k = 0; k < 5; k++) {
		size_t len = sizeof(payload);
		uint16_t version = 1;

		memcpy(payload, r.p, sizeof(payload));
		switch (k) {
		case 0:
			payload[0] = 7; /* no such kind */
			break;
		case 1:
			payload[3] = 0x80; /* no such LED */
			break;
		case 2:
			payload[4 + 84 / 8] |= 1 << (84 % 8); /* a key the keyboard lacks */
			break;
		case 3:
			len--;
			break;
		case 4:
			version = 2;
			break;
		}
		snap_writer_init(&w2);
		for (uint32_t i = 0; snap_file_record(&f, i, &r) == 0; i++) {
			snap_rec_begin(&w2, r.type,
				       r.type == SNAP_REC_VIRTIO_INPUT ? version : r.version, r.id);
			if (r.type == SNAP_REC_VIRTIO_INPUT)
				snap_put_bytes(&w2, payload, len);
			else
				snap_put_bytes(&w2, r.p, r.len);
		}
		assert_int_equal(snap_writer_finish(&w2), 0);
		assert_int_equal(snap_file_parse(&f2, w2.buf, w2.len, why, sizeof(why)), 0);
		assert_int_equal(virtio_mmio_dev_ops.restore(x->t, &f2, "virtio-input0"), -EINVAL);
		snap_writer_free(&w2);
		assert_int_equal(snap_file_find(&f, SNAP_REC_VIRTIO_INPUT, "virtio-input0", &r), 0);
		new_device(x, VIRTIO_INPUT_KEYBOARD);
	}
	assert_int_equal(virtio_mmio_dev_ops.restore(x->t, &f, "virtio-input0"), 0);
	snap_writer_free(&w);
}

/* send() from another thread while the driver hands out buffers: every event arrives, in
 * order, groups whole. */
#define THREAD_GROUPS 500

static void *sender(void *arg)
{
	struct virtio_input *in = arg;

	for (unsigned i = 0; i < THREAD_GROUPS; i++) {
		struct virtio_input_event ev[] = { key(KEY_1 + i % 10, i & 1), SYN };

		while (virtio_input_send(in, ev, 2) == -ENOBUFS)
			;
	}
	return NULL;
}

static void test_send_from_thread(void **state)
{
	struct fin *x = *state;
	struct virtio_input_event got[QSIZE];
	unsigned total = 0;
	pthread_t th;

	assert_int_equal(pthread_create(&th, NULL, sender, x->in), 0);
	for (unsigned spins = 0; total < 2 * THREAD_GROUPS && spins < 10000000; spins++) {
		unsigned n;

		virtio_mmio_lock(x->t);
		n = fin_take(x, got, QSIZE);
		if (n)
			fin_post(x, n);
		else if (fake_vq_used_idx(&x->evq) == x->evq.avail_idx)
			fin_post(x, QSIZE / 2);
		virtio_mmio_unlock(x->t);
		for (unsigned i = 0; i < n; i++, total++) {
			unsigned g = total / 2;

			if (total % 2) {
				assert_int_equal(got[i].type, EV_SYN);
			} else {
				assert_int_equal(got[i].code, KEY_1 + g % 10);
				assert_int_equal(got[i].value, g & 1);
			}
		}
	}
	assert_int_equal(pthread_join(th, NULL), 0);
	/* Whatever the last pass left. */
	virtio_mmio_lock(x->t);
	fin_post(x, QSIZE / 2);
	total += fin_take(x, got, QSIZE);
	virtio_mmio_unlock(x->t);
	assert_int_equal(total, 2 * THREAD_GROUPS);
}

/* The production path: virtio_input_add() on a device manager with an event loop.  send()
 * only wakes the loop; the loop's callback takes the transport lock and delivers; QueueNotify
 * writes are forwarded to the loop too. */
static void *loop_thread(void *arg)
{
	return (void *)(intptr_t)evloop_run(arg);
}

static int bind_ok(void *ctx, struct irq_line *l)
{
	return 0;
}

static bool wait_used(struct fake_vq *f, uint16_t want)
{
	for (unsigned i = 0; i < 5000; i++) {
		if (fake_vq_used_idx(f) == want)
			return true;
		usleep(1000);
	}
	return false;
}

static void test_event_loop(void **state)
{
	struct devmgr_hooks hooks = { .irq_bind = bind_ok };
	struct virtio_input_event press[] = { key(KEY_A, 1), SYN }, rel[] = { key(KEY_A, 0), SYN };
	struct virtio_input_event got[4];
	struct fin x = { 0 };
	struct devmgr dm;
	struct evloop ev;
	struct dm_dev *d;
	pthread_t th;

	(void)state;
	fake_mem_init(&x.mem, FIN_RAM_SIZE);
	assert_int_equal(evloop_init(&ev), 0);
	devmgr_init(&dm, &x.mem.gm, &ev, &hooks);
	assert_int_equal(virtio_input_add(&dm, "virtio-input0", VIRTIO_INPUT_KEYBOARD, &x.in), 0);
	d = devmgr_find(&dm, "virtio-input0");
	assert_non_null(d);
	x.t = d->dev;
	assert_int_equal(pthread_create(&th, NULL, loop_thread, &ev), 0);
	fin_bring_up(&x, QSIZE);
	/* Sent before there are buffers: it waits, then goes in when they come. */
	assert_int_equal(virtio_input_send(x.in, press, 2), 0);
	fin_post(&x, 4);
	assert_true(wait_used(&x.evq, 2));
	assert_int_equal(virtio_input_send(x.in, rel, 2), 0);
	assert_true(wait_used(&x.evq, 4));
	assert_int_equal(fin_take(&x, got, 4), 4);
	expect_events(got, 2, press, 2);
	expect_events(got + 2, 2, rel, 2);
	assert_int_equal(virtio_input_pending(x.in), 0);
	evloop_stop(&ev);
	assert_int_equal(pthread_join(th, NULL), 0);
	devmgr_destroy(&dm); /* destroys the transport and the device */
	evloop_destroy(&ev);
	fake_mem_free(&x.mem);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_config_keyboard, setup_kbd, teardown),
		cmocka_unit_test_setup_teardown(test_config_tablet, setup_tablet, teardown),
		cmocka_unit_test_setup_teardown(test_delivery, setup_kbd, teardown),
		cmocka_unit_test_setup_teardown(test_queued_until_buffers, setup_kbd, teardown),
		cmocka_unit_test(test_before_driver),
		cmocka_unit_test_setup_teardown(test_full_ring_drops_whole_groups, setup_kbd,
						teardown),
		cmocka_unit_test_setup_teardown(test_invalid_events, setup_kbd, teardown),
		cmocka_unit_test_setup_teardown(test_statusq, setup_kbd, teardown),
		cmocka_unit_test_setup_teardown(test_statusq_tablet_ignores_leds, setup_tablet,
						teardown),
		cmocka_unit_test_setup_teardown(test_hostile_eventq, setup_kbd, teardown),
		cmocka_unit_test(test_queue_too_small),
		cmocka_unit_test_setup_teardown(test_snapshot_round_trip, setup_kbd, teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_bad_records, setup_kbd, teardown),
		cmocka_unit_test_setup_teardown(test_send_from_thread, setup_kbd, teardown),
		cmocka_unit_test(test_event_loop),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
