/* The i8042 keyboard controller, port by port: what Linux's i8042 and atkbd drivers send at
 * probe time and get back, Ctrl+Alt+Del in set 2 and translated to set 1, one IRQ 1 edge per
 * byte presented, the reset line, a hostile port-write storm, the DSDT node, and snapshots. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/devmgr.h"
#include "devices/i8042.h"
#include "platform/acpi/aml.h"
#include "snap_edit.h"

#include <errno.h>
#include <string.h>

struct sink {
	int n;
	enum vm_stop_reason last;
};

static void sink_request(void *ctx, enum vm_stop_reason reason)
{
	struct sink *s = ctx;

	s->n++;
	s->last = reason;
}

static struct sink sk;
static const struct power_sink ps = { .request = sink_request, .ctx = &sk };
static struct devmgr dm;
static struct i8042 *kbd;
static struct irq_line *line;
static struct bus *pio; /* the bus the port helpers below use */

static int setup(void **state)
{
	memset(&sk, 0, sizeof(sk));
	devmgr_init(&dm, NULL, NULL, NULL);
	assert_int_equal(i8042_add(&dm, &ps, &kbd), 0);
	line = &devmgr_find(&dm, "i8042")->irq;
	pio = &dm.pio;
	return 0;
}

static int teardown(void **state)
{
	devmgr_destroy(&dm);
	return 0;
}

static void outb(uint16_t port, uint8_t v)
{
	assert_true(bus_write(pio, port, &v, 1));
}

static uint8_t inb(uint16_t port)
{
	uint8_t v;

	assert_true(bus_read(pio, port, &v, 1));
	return v;
}

static bool obf(void)
{
	return inb(I8042_CMD_PORT) & I8042_STR_OBF;
}

/* Read the next byte, which must be there, and must have raised exactly one edge. */
static uint8_t next(void)
{
	assert_true(obf());
	return inb(I8042_DATA_PORT);
}

/* Every byte waiting, in order (at most n). */
static size_t drain(uint8_t *buf, size_t n)
{
	size_t i = 0;

	while (i < n && obf())
		buf[i++] = inb(I8042_DATA_PORT);
	return i;
}

static void test_slots(void **state)
{
	struct dm_dev *d = devmgr_find(&dm, "i8042"), *c = devmgr_find(&dm, "i8042-cmd");

	assert_non_null(d);
	assert_non_null(c);
	assert_int_equal(d->base, 0x60);
	assert_int_equal(c->base, 0x64);
	assert_true(d->has_irq);
	assert_int_equal(d->irq.gsi, 1);
	assert_false(d->irq.level); /* ISA IRQ 1: edge */
	assert_false(c->has_irq);
	/* Ports 0x61-0x63 stay free (the in-kernel PIT's port B). */
	assert_null(bus_find(&dm.pio, 0x61));
	/* Byte registers only. */
	{
		uint16_t w;

		assert_true(bus_read(&dm.pio, 0x64, &w, 2));
		assert_int_equal(w, 0xffff);
	}
}

/* What Linux's i8042_controller_check/_init and i8042_setup_kbd do, in order. */
static void test_linux_probe(void **state)
{
	uint8_t ctr;

	/* Power-on: nothing to read, not inhibited, POST passed. */
	assert_int_equal(inb(I8042_CMD_PORT), I8042_STR_KEYLOCK | I8042_STR_SYS);
	/* Read the CTR (twice, as Linux does for a stable value): one edge per answer. */
	for (int i = 0; i < 2; i++) {
		outb(I8042_CMD_PORT, 0x20);
		assert_int_equal(inb(I8042_CMD_PORT),
				 I8042_STR_KEYLOCK | I8042_STR_SYS | I8042_STR_CMD | I8042_STR_OBF);
		assert_int_equal(next(), I8042_CTR_DEFAULT);
		assert_false(obf());
	}
	assert_int_equal(line->count, 2);
	/* No translation at power-on: Linux then drives set 2 itself (i8042_direct). */
	assert_false(I8042_CTR_DEFAULT & I8042_CTR_XLATE);
	/* Disable keyboard interface and interrupt, write it back. */
	ctr = (I8042_CTR_DEFAULT | I8042_CTR_KBDDIS) & ~I8042_CTR_KBDINT;
	outb(I8042_CMD_PORT, 0x60);
	outb(I8042_DATA_PORT, ctr);
	assert_int_equal(inb(I8042_CMD_PORT) & I8042_STR_CMD, 0); /* last write was data */
	outb(I8042_CMD_PORT, 0x20);
	assert_int_equal(next(), ctr);
	assert_int_equal(line->count, 2); /* interrupt off: no edge */
	/* Self tests. */
	outb(I8042_CMD_PORT, 0xaa);
	assert_int_equal(next(), 0x55);
	outb(I8042_CMD_PORT, 0xab);
	assert_int_equal(next(), 0x00);
	/* No auxiliary port: its test fails and enabling it does not take. */
	outb(I8042_CMD_PORT, 0xa9);
	assert_int_equal(next(), 0x01);
	outb(I8042_CMD_PORT, 0xa8);
	outb(I8042_CMD_PORT, 0x20);
	assert_true(next() & I8042_CTR_AUXDIS);
	/* Loop/send to the auxiliary port: the byte is taken and nothing comes back. */
	outb(I8042_CMD_PORT, 0xd3);
	outb(I8042_DATA_PORT, 0x5a);
	outb(I8042_CMD_PORT, 0xd4);
	outb(I8042_DATA_PORT, 0xf4);
	assert_false(obf());
	/* Enable the keyboard port with its interrupt. */
	ctr = (ctr & ~I8042_CTR_KBDDIS) | I8042_CTR_KBDINT;
	outb(I8042_CMD_PORT, 0x60);
	outb(I8042_DATA_PORT, ctr);
	assert_false(obf());
	assert_int_equal(line->count, 2);
}

/* What atkbd_probe, atkbd_reset_state and atkbd_activate send, each byte ACKed with an edge. */
static void test_atkbd_probe(void **state)
{
	uint64_t before = line->count;

	outb(I8042_DATA_PORT, 0xf2); /* GETID */
	assert_int_equal(next(), I8042_KBD_ACK);
	assert_int_equal(next(), 0xab);
	assert_int_equal(next(), 0x83);
	assert_false(obf());
	assert_int_equal(line->count, before + 3);
	outb(I8042_DATA_PORT, 0xf5); /* RESET_DIS */
	assert_int_equal(next(), I8042_KBD_ACK);
	outb(I8042_DATA_PORT, 0xed); /* SETLEDS 0 */
	assert_int_equal(next(), I8042_KBD_ACK);
	outb(I8042_DATA_PORT, 0x00);
	assert_int_equal(next(), I8042_KBD_ACK);
	outb(I8042_DATA_PORT, 0xf3); /* SETREP 0 */
	assert_int_equal(next(), I8042_KBD_ACK);
	outb(I8042_DATA_PORT, 0x00);
	assert_int_equal(next(), I8042_KBD_ACK);
	outb(I8042_DATA_PORT, 0xf4); /* ENABLE */
	assert_int_equal(next(), I8042_KBD_ACK);
	assert_false(obf());
	assert_int_equal(line->count, before + 9);
	/* Scan code sets: 0 reads it (2), 2 is taken, 3 is not offered. */
	outb(I8042_DATA_PORT, 0xf0);
	outb(I8042_DATA_PORT, 0x00);
	assert_int_equal(next(), I8042_KBD_ACK);
	assert_int_equal(next(), I8042_KBD_ACK);
	assert_int_equal(next(), 2);
	outb(I8042_DATA_PORT, 0xf0);
	outb(I8042_DATA_PORT, 0x03);
	assert_int_equal(next(), I8042_KBD_ACK);
	assert_int_equal(next(), I8042_KBD_NAK);
	/* Reset: ACK and self-test passed; echo; resend repeats the last byte; unknown: NAK. */
	outb(I8042_DATA_PORT, 0xff);
	assert_int_equal(next(), I8042_KBD_ACK);
	assert_int_equal(next(), I8042_KBD_BAT);
	outb(I8042_DATA_PORT, 0xee);
	assert_int_equal(next(), 0xee);
	outb(I8042_DATA_PORT, 0xfe);
	assert_int_equal(next(), 0xee);
	outb(I8042_DATA_PORT, 0x12);
	assert_int_equal(next(), I8042_KBD_NAK);
	/* An empty data port reads the last byte again, and raises nothing. */
	before = line->count;
	assert_int_equal(inb(I8042_DATA_PORT), I8042_KBD_NAK);
	assert_int_equal(line->count, before);
}

static const uint8_t cad_set2[] = {
	0x14, 0x11, 0xe0, 0x71, 0xe0, 0xf0, 0x71, 0xf0, 0x11, 0xf0, 0x14
};

static void test_ctrl_alt_del(void **state)
{
	uint8_t got[32];
	uint64_t before = line->count;

	assert_int_equal(i8042_send_ctrl_alt_del(kbd), 0);
	assert_int_equal(line->count, before + 1); /* the first byte's edge */
	assert_int_equal(drain(got, sizeof(got)), sizeof(cad_set2));
	assert_memory_equal(got, cad_set2, sizeof(cad_set2));
	assert_int_equal(line->count, before + sizeof(cad_set2));
	/* Not read yet: a second press fits, a third does not (room kept for ACKs), and a
	 * refused one adds nothing. */
	assert_int_equal(i8042_send_ctrl_alt_del(kbd), 0);
	assert_int_equal(i8042_send_ctrl_alt_del(kbd), -ENOSPC);
	assert_int_equal(drain(got, sizeof(got)), sizeof(cad_set2));
	/* The guest turned scanning off: nothing is sent. */
	outb(I8042_DATA_PORT, 0xf5);
	assert_int_equal(next(), I8042_KBD_ACK);
	assert_int_equal(i8042_send_ctrl_alt_del(kbd), -EAGAIN);
	assert_false(obf());
	outb(I8042_DATA_PORT, 0xf4);
	assert_int_equal(next(), I8042_KBD_ACK);
	assert_int_equal(i8042_send_ctrl_alt_del(kbd), 0);
	assert_int_equal(drain(got, sizeof(got)), sizeof(cad_set2));
}

static void test_ctrl_alt_del_translated(void **state)
{
	/* Set 1 through the controller's translation: make codes, releases with bit 7. */
	static const uint8_t set1[] = { 0x1d, 0x38, 0xe0, 0x53, 0xe0, 0xd3, 0xb8, 0x9d };
	uint8_t got[32];

	outb(I8042_CMD_PORT, 0x60);
	outb(I8042_DATA_PORT, I8042_CTR_DEFAULT | I8042_CTR_XLATE);
	assert_int_equal(i8042_send_ctrl_alt_del(kbd), 0);
	assert_int_equal(drain(got, sizeof(got)), sizeof(set1));
	assert_memory_equal(got, set1, sizeof(set1));
	/* The keyboard's id is translated too (0x83 -> 0x41), ACKs are not. */
	outb(I8042_DATA_PORT, 0xf2);
	assert_int_equal(next(), I8042_KBD_ACK);
	assert_int_equal(next(), 0xab);
	assert_int_equal(next(), 0x41);
}

static void test_disabled_port_holds_keys(void **state)
{
	uint8_t got[32];
	uint64_t before;

	outb(I8042_CMD_PORT, 0xad);
	assert_int_equal(i8042_send_ctrl_alt_del(kbd), 0);
	assert_false(obf()); /* held by the keyboard while its interface is disabled */
	/* A controller answer still comes through. */
	outb(I8042_CMD_PORT, 0x20);
	assert_int_equal(next(), I8042_CTR_DEFAULT | I8042_CTR_KBDDIS);
	before = line->count;
	outb(I8042_CMD_PORT, 0xae);
	assert_int_equal(line->count, before + 1);
	assert_int_equal(drain(got, sizeof(got)), sizeof(cad_set2));
	assert_memory_equal(got, cad_set2, sizeof(cad_set2));
	/* Interrupt disabled: bytes come, edges do not; enabling raises the pending one. */
	outb(I8042_CMD_PORT, 0x60);
	outb(I8042_DATA_PORT, I8042_CTR_DEFAULT & ~I8042_CTR_KBDINT);
	before = line->count;
	outb(I8042_DATA_PORT, 0xee);
	assert_int_equal(line->count, before);
	assert_true(obf());
	outb(I8042_CMD_PORT, 0x60);
	outb(I8042_DATA_PORT, I8042_CTR_DEFAULT);
	assert_int_equal(line->count, before + 1);
	assert_int_equal(next(), 0xee);
}

static void test_reset_line(void **state)
{
	/* Commands that pulse nothing, output port writes keeping bit 0, other commands. */
	outb(I8042_CMD_PORT, 0xff);
	outb(I8042_CMD_PORT, 0xf1);
	outb(I8042_CMD_PORT, 0xd1);
	outb(I8042_DATA_PORT, 0xdf); /* Linux's A20 gate write */
	outb(I8042_CMD_PORT, 0xd0);
	assert_int_equal(next(), 0xdf);
	outb(I8042_DATA_PORT, I8042_CMD_RESET); /* to the keyboard: Resend, not a reset */
	assert_int_equal(next(), 0);		/* (nothing sent before) */
	assert_int_equal(sk.n, 0);
	outb(I8042_CMD_PORT, I8042_CMD_RESET);
	assert_int_equal(sk.n, 1);
	assert_int_equal(sk.last, VM_STOP_REBOOT);
	outb(I8042_CMD_PORT, 0xf0); /* every line pulsed, reset among them */
	assert_int_equal(sk.n, 2);
	outb(I8042_CMD_PORT, 0xd1);
	outb(I8042_DATA_PORT, 0xfe); /* reset line written low */
	assert_int_equal(sk.n, 3);
	/* A controller without a sink drops the request. */
	{
		struct i8042 *k;

		assert_int_equal(i8042_create(NULL, NULL, &k), 0);
		i8042_cmd_ops.write(k, 0, 1, I8042_CMD_RESET);
		i8042_destroy(k);
	}
}

static void test_hostile_storm(void **state)
{
	uint32_t x = 12345;

	/* Every byte on both ports in any order, reads interleaved: no crash, and whatever is
	 * left drains within the bounded buffer (one controller answer + the keyboard's 16). */
	for (int i = 0; i < 200000; i++) {
		x = x * 1103515245u + 12345u;
		switch ((x >> 28) & 3) {
		case 0:
			if ((uint8_t)(x >> 8) >= 0xf0 && !((x >> 8) & 1))
				continue; /* the reset line is checked above */
			outb(I8042_CMD_PORT, (uint8_t)(x >> 8));
			break;
		case 1:
		case 2:
			outb(I8042_DATA_PORT, (uint8_t)(x >> 8));
			break;
		default:
			(void)inb((x >> 8) & 1 ? I8042_CMD_PORT : I8042_DATA_PORT);
			break;
		}
		if (i % 1000 == 0) {
			int r = i8042_send_ctrl_alt_del(kbd);

			assert_true(r == 0 || r == -ENOSPC || r == -EAGAIN);
		}
	}
	/* Whatever a D1 in the storm left: bring the controller to a known state. */
	outb(I8042_CMD_PORT, 0xae);
	for (int i = 0; i < 1 + I8042_QUEUE; i++)
		(void)inb(I8042_DATA_PORT);
	assert_false(obf());
	/* And it still works. */
	outb(I8042_CMD_PORT, 0xaa);
	assert_int_equal(next(), 0x55);
}

static void test_describe(void **state)
{
	/* Device (PS2K) { _HID EisaId("PNP0303"), _UID 0, _CRS { IO(0x60), IO(0x64), IRQ 1 } } */
	static const uint8_t hid[] = { 'P', 'S', '2',  'K',  0x08, '_',	 'H',
				       'I', 'D', 0x0c, 0x41, 0xd0, 0x03, 0x03 };
	static const uint8_t crs[] = { 0x47, 0x01, 0x60, 0x00, 0x60, 0x00, 0x01, 0x01, 0x47, 0x01,
				       0x64, 0x00, 0x64, 0x00, 0x01, 0x01, 0x22, 0x02, 0x00, 0x79 };
	struct aml a;
	struct dm_describe ctx = { 0 };
	bool found_hid = false, found_crs = false;

	aml_init(&a);
	ctx.dsdt = &a;
	assert_int_equal(devmgr_describe(&dm, &ctx), 0);
	for (size_t i = 0; i + sizeof(crs) <= a.len; i++) {
		found_hid |= !memcmp(a.buf + i, hid, sizeof(hid));
		found_crs |= !memcmp(a.buf + i, crs, sizeof(crs));
	}
	assert_true(found_hid);
	assert_true(found_crs);
	aml_free(&a);
	/* Without ACPI there is nothing to describe (no command-line form for it). */
	ctx.dsdt = NULL;
	assert_int_equal(devmgr_describe(&dm, &ctx), 0);
}

static void test_reset_op(void **state)
{
	outb(I8042_CMD_PORT, 0xad);
	outb(I8042_DATA_PORT, 0xf5);
	outb(I8042_CMD_PORT, 0x60); /* a command waiting for its byte */
	devmgr_reset(&dm);
	assert_int_equal(inb(I8042_CMD_PORT), I8042_STR_KEYLOCK | I8042_STR_SYS);
	outb(I8042_CMD_PORT, 0x20);
	assert_int_equal(next(), I8042_CTR_DEFAULT);
	assert_int_equal(i8042_send_ctrl_alt_del(kbd), 0); /* scanning on again */
}

/* ---- snapshots ---- */

static void test_snapshot_round_trip(void **state)
{
	struct devmgr d;
	struct i8042 *k2;
	struct snap_writer w;
	struct snap_file f;
	char why[256];
	uint8_t a[32], b[32];
	size_t na, nb;

	/* Mid-conversation: translated keys queued, one read, a LED command waiting for its
	 * byte, a CTR write waiting for its byte... the latter replaced by the keyboard one. */
	outb(I8042_CMD_PORT, 0x60);
	outb(I8042_DATA_PORT, I8042_CTR_DEFAULT | I8042_CTR_XLATE);
	assert_int_equal(i8042_send_ctrl_alt_del(kbd), 0);
	assert_int_equal(next(), 0x1d);
	outb(I8042_DATA_PORT, 0xed);
	snap_writer_init(&w);
	assert_int_equal(devmgr_save(&dm, &w), 0);
	assert_int_equal(snap_writer_finish(&w), 0);
	assert_int_equal(snap_file_parse(&f, w.buf, w.len, why, sizeof(why)), 0);

	devmgr_init(&d, NULL, NULL, NULL);
	assert_int_equal(i8042_add(&d, &ps, &k2), 0);
	assert_int_equal(devmgr_restore(&d, &f, why, sizeof(why)), 0);
	/* Both continue the same way. */
	na = drain(a, sizeof(a));
	pio = &d.pio;
	nb = drain(b, sizeof(b));
	outb(I8042_DATA_PORT, 0x07); /* the LED byte */
	assert_int_equal(next(), I8042_KBD_ACK);
	outb(I8042_CMD_PORT, 0x20);
	assert_int_equal(next(), I8042_CTR_DEFAULT | I8042_CTR_XLATE);
	pio = &dm.pio;
	assert_int_equal(na, nb);
	assert_memory_equal(a, b, na);
	assert_int_equal(na, 8); /* 0x38 0xe0 0x53 0xe0 0xd3 0xb8 0x9d + the ACK of 0xED */
	snap_writer_free(&w);
	devmgr_destroy(&d);
}

static void test_snapshot_refused(void **state)
{
	struct i8042 *src, *dst;
	struct snap_edit good, e, before, after;

	assert_int_equal(i8042_create(NULL, &ps, &src), 0);
	assert_int_equal(i8042_create(NULL, &ps, &dst), 0);
	assert_int_equal(i8042_send_ctrl_alt_del(src), 0);
	snap_edit_save(&good, &i8042_data_ops, src, SNAP_REC_I8042, "i8042");
	assert_int_equal(good.len, 12 + sizeof(cad_set2));
	i8042_cmd_ops.write(dst, 0, 1, 0xad); /* something to keep */
	snap_edit_save(&before, &i8042_data_ops, dst, SNAP_REC_I8042, "i8042");

	for (int i = 0; i < 10; i++) {
		e = good;
		switch (i) {
		case 0:
			e.payload[1] = 0x02; /* output port with the reset line low */
			break;
		case 1:
			e.payload[2] = 0xa5; /* not a command that takes a byte */
			break;
		case 2:
			e.payload[3] = 0xf2; /* not a keyboard command with a parameter */
			break;
		case 3:
			e.payload[4] = 2; /* a bool that is not 0 or 1 */
			break;
		case 4:
			e.payload[11] = I8042_QUEUE + 1; /* more than the buffer holds */
			break;
		case 5:
			e.len--; /* truncated */
			break;
		case 6:
			e.payload[e.len++] = 0; /* a trailing byte */
			break;
		case 7:
			e.version = 2;
			break;
		case 8:
			e.type = SNAP_REC_POWER;
			break;
		default:
			e.payload[11] = 0; /* length 0 but bytes follow */
			break;
		}
		assert_int_equal(snap_edit_restore(&e, &i8042_data_ops, dst), -EINVAL);
		snap_edit_save(&after, &i8042_data_ops, dst, SNAP_REC_I8042, "i8042");
		snap_edit_assert_same(&before, &after);
	}
	assert_int_equal(snap_edit_restore(&good, &i8042_data_ops, dst), 0);
	snap_edit_save(&after, &i8042_data_ops, dst, SNAP_REC_I8042, "i8042");
	snap_edit_assert_same(&good, &after);
	assert_int_equal(i8042_cmd_ops.read(dst, 0, 1) & I8042_STR_OBF, I8042_STR_OBF);
	assert_int_equal(i8042_data_ops.read(dst, 0, 1), 0x14);
	i8042_destroy(src);
	i8042_destroy(dst);
}

static void test_add_conflict(void **state)
{
	/* Ports already taken: errors, no leak (ASan checks). */
	assert_int_equal(i8042_add(&dm, &ps, NULL), -EBUSY);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_slots, setup, teardown),
		cmocka_unit_test_setup_teardown(test_linux_probe, setup, teardown),
		cmocka_unit_test_setup_teardown(test_atkbd_probe, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ctrl_alt_del, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ctrl_alt_del_translated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_disabled_port_holds_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reset_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hostile_storm, setup, teardown),
		cmocka_unit_test_setup_teardown(test_describe, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reset_op, setup, teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_add_conflict, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
