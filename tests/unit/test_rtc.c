/* MC146818 RTC: host time in BCD/binary and 12/24-hour form, the guest setting the clock,
 * UIP, registers A-D, CMOS RAM, the bus registration, and snapshot save/restore. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/devmgr.h"
#include "devices/rtc.h"
#include "snap_edit.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int64_t fake_ns;

static int64_t fake_clock(void *opaque)
{
	return fake_ns;
}

/* 2024-03-05 15:04:05 UTC, a Tuesday. */
#define T0 1709651045ll

static int setup(void **state)
{
	struct rtc *r;

	assert_int_equal(rtc_create(&r), 0);
	*state = r;
	return 0;
}

static int teardown(void **state)
{
	rtc_destroy(*state);
	return 0;
}

static uint8_t get(struct rtc *r, uint8_t idx)
{
	rtc_write(r, 0, idx);
	return rtc_read(r, 1);
}

static void set(struct rtc *r, uint8_t idx, uint8_t v)
{
	rtc_write(r, 0, idx);
	rtc_write(r, 1, v);
}

static unsigned bcd(uint8_t v)
{
	return (v >> 4) * 10u + (v & 15);
}

/* Read the clock the way Linux's mc146818_get_time() does and return it as a time_t. */
static time_t read_time(struct rtc *r)
{
	struct tm tm = { 0 };
	uint8_t b = get(r, RTC_REG_B), h;
	unsigned (*d)(uint8_t) = bcd;
	int tries = 0;

	while (get(r, RTC_REG_A) & RTC_A_UIP)
		assert_true(++tries < 1000000);
	if (b & RTC_B_DM)
		d = NULL;
#define DEC(v) (d ? d(v) : (v))
	tm.tm_sec = (int)DEC(get(r, RTC_SECONDS));
	tm.tm_min = (int)DEC(get(r, RTC_MINUTES));
	h = get(r, RTC_HOURS);
	if (b & RTC_B_24H)
		tm.tm_hour = (int)DEC(h);
	else
		tm.tm_hour = (int)(DEC((uint8_t)(h & 0x7f)) % 12) + (h & 0x80 ? 12 : 0);
	tm.tm_mday = (int)DEC(get(r, RTC_DAY_OF_MONTH));
	tm.tm_mon = (int)DEC(get(r, RTC_MONTH)) - 1;
	tm.tm_year = (int)(DEC(get(r, RTC_CENTURY)) * 100 + DEC(get(r, RTC_YEAR))) - 1900;
#undef DEC
	return timegm(&tm);
}

static void test_host_time_bcd(void **state)
{
	struct rtc *r = *state;
	time_t t;

	assert_int_equal(get(r, RTC_REG_B), RTC_B_24H); /* BCD, 24-hour */
	t = read_time(r);
	assert_true(llabs((long long)(t - time(NULL))) <= 2);
}

static void test_host_time_binary_12h(void **state)
{
	struct rtc *r = *state;
	time_t t;

	set(r, RTC_REG_B, RTC_B_DM | RTC_B_24H);
	t = read_time(r);
	assert_true(llabs((long long)(t - time(NULL))) <= 2);
	set(r, RTC_REG_B, RTC_B_DM);
	t = read_time(r);
	assert_true(llabs((long long)(t - time(NULL))) <= 2);
	set(r, RTC_REG_B, 0);
	t = read_time(r);
	assert_true(llabs((long long)(t - time(NULL))) <= 2);
}

static void test_encodings(void **state)
{
	struct rtc *r = *state;

	fake_ns = T0 * 1000000000ll + 500000000ll;
	rtc_set_clock(r, fake_clock, NULL);
	/* BCD, 24h */
	assert_int_equal(get(r, RTC_SECONDS), 0x05);
	assert_int_equal(get(r, RTC_MINUTES), 0x04);
	assert_int_equal(get(r, RTC_HOURS), 0x15);
	assert_int_equal(get(r, RTC_DAY_OF_WEEK), 3); /* Tuesday; Sunday = 1 */
	assert_int_equal(get(r, RTC_DAY_OF_MONTH), 0x05);
	assert_int_equal(get(r, RTC_MONTH), 0x03);
	assert_int_equal(get(r, RTC_YEAR), 0x24);
	assert_int_equal(get(r, RTC_CENTURY), 0x20);
	/* BCD, 12h: 3 PM */
	set(r, RTC_REG_B, 0);
	assert_int_equal(get(r, RTC_HOURS), 0x83);
	/* binary, 12h, binary 24h */
	set(r, RTC_REG_B, RTC_B_DM);
	assert_int_equal(get(r, RTC_HOURS), 0x83);
	assert_int_equal(get(r, RTC_YEAR), 24);
	assert_int_equal(get(r, RTC_CENTURY), 20);
	set(r, RTC_REG_B, RTC_B_DM | RTC_B_24H);
	assert_int_equal(get(r, RTC_HOURS), 15);
	assert_int_equal(get(r, RTC_MINUTES), 4);
	/* Midnight is 12 AM, noon 12 PM. */
	fake_ns = (T0 - 15 * 3600 - 4 * 60 - 5) * 1000000000ll;
	set(r, RTC_REG_B, 0);
	assert_int_equal(get(r, RTC_HOURS), 0x12);
	fake_ns += 12 * 3600 * 1000000000ll;
	assert_int_equal(get(r, RTC_HOURS), 0x92);
	fake_ns += 11 * 3600 * 1000000000ll;
	assert_int_equal(get(r, RTC_HOURS), 0x91); /* 11 PM */
	set(r, RTC_REG_B, RTC_B_24H);
	assert_int_equal(get(r, RTC_HOURS), 0x23);
}

static void test_uip_window(void **state)
{
	struct rtc *r = *state;

	rtc_set_clock(r, fake_clock, NULL);
	fake_ns = T0 * 1000000000ll + 500000000ll;
	assert_int_equal(get(r, RTC_REG_A), 0x26);
	fake_ns = T0 * 1000000000ll + 999900000ll; /* 100 us before the update */
	assert_int_equal(get(r, RTC_REG_A), 0x26 | RTC_A_UIP);
	/* Not while SET stops updates, nor with the divider held in reset. */
	set(r, RTC_REG_B, RTC_B_SET | RTC_B_24H);
	assert_int_equal(get(r, RTC_REG_A), 0x26);
	set(r, RTC_REG_B, RTC_B_24H);
	set(r, RTC_REG_A, 0x66);
	assert_int_equal(get(r, RTC_REG_A), 0x66);
	/* UIP is read-only. */
	set(r, RTC_REG_A, 0x80 | 0x26);
	fake_ns = T0 * 1000000000ll;
	assert_int_equal(get(r, RTC_REG_A), 0x26);
}

static void test_uip_not_stuck(void **state)
{
	struct rtc *r = *state;
	struct timespec t0, t;
	unsigned clear = 0, setn = 0;

	/* Poll the real clock for 1.1 s: UIP is mostly clear. */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		if (get(r, RTC_REG_A) & RTC_A_UIP)
			setn++;
		else
			clear++;
		clock_gettime(CLOCK_MONOTONIC, &t);
	} while ((t.tv_sec - t0.tv_sec) * 1000000000ll + (t.tv_nsec - t0.tv_nsec) < 1100000000ll);
	assert_true(clear > 0);
	assert_true(setn < clear);
}

static void test_guest_sets_time(void **state)
{
	struct rtc *r = *state;

	rtc_set_clock(r, fake_clock, NULL);
	fake_ns = T0 * 1000000000ll;
	/* Linux's mc146818_set_time: SET, write the fields, clear SET. */
	set(r, RTC_REG_B, RTC_B_SET | RTC_B_24H | RTC_B_UIE);
	assert_int_equal(get(r, RTC_REG_B), RTC_B_SET | RTC_B_24H); /* SET clears UIE */
	set(r, RTC_YEAR, 0x30);
	set(r, RTC_MONTH, 0x01);
	set(r, RTC_DAY_OF_MONTH, 0x02);
	set(r, RTC_HOURS, 0x03);
	set(r, RTC_MINUTES, 0x04);
	set(r, RTC_SECONDS, 0x05);
	set(r, RTC_CENTURY, 0x20);
	/* Frozen while SET: time does not move. */
	fake_ns += 5 * 1000000000ll;
	assert_int_equal(get(r, RTC_SECONDS), 0x05);
	assert_int_equal(get(r, RTC_YEAR), 0x30);
	set(r, RTC_REG_B, RTC_B_24H);
	/* 2030-01-02 03:04:05 UTC = 1893553445 */
	assert_int_equal(rtc_offset(r), 1893553445ll - (T0 + 5));
	assert_int_equal(read_time(r), 1893553445);
	fake_ns += 10 * 1000000000ll;
	assert_int_equal(read_time(r), 1893553455);
	assert_int_equal(get(r, RTC_DAY_OF_WEEK), 4); /* Wednesday */
	/* A write without SET takes effect at once (binary, 12-hour PM). */
	set(r, RTC_REG_B, RTC_B_DM);
	set(r, RTC_HOURS, 0x80 | 11);
	assert_int_equal(get(r, RTC_HOURS), 0x80 | 11);
	set(r, RTC_REG_B, RTC_B_DM | RTC_B_24H);
	assert_int_equal(get(r, RTC_HOURS), 23);
	/* Day-of-week writes are ignored (it follows the date). */
	set(r, RTC_DAY_OF_WEEK, 1);
	assert_int_equal(get(r, RTC_DAY_OF_WEEK), 4);
	/* The offset survives a device reset (battery-backed). */
	rtc_ops.reset(r);
	assert_int_equal(get(r, RTC_HOURS), 23);
}

static void test_reg_c_d(void **state)
{
	struct rtc *r = *state;

	rtc_set_clock(r, fake_clock, NULL);
	fake_ns = T0 * 1000000000ll + 100;
	rtc_set_clock(r, fake_clock, NULL); /* resets the register C reference time */
	assert_int_equal(get(r, RTC_REG_D), RTC_D_VRT);
	set(r, RTC_REG_D, 0);
	assert_int_equal(get(r, RTC_REG_D), RTC_D_VRT);
	set(r, RTC_REG_A, 0x20); /* no periodic rate */
	assert_int_equal(get(r, RTC_REG_C) & ~RTC_C_AF, 0);
	/* An update happened: UF; with UIE enabled, IRQF too. */
	fake_ns += 1000000000ll;
	assert_int_equal(get(r, RTC_REG_C) & (RTC_C_UF | RTC_C_IRQF), RTC_C_UF);
	assert_int_equal(get(r, RTC_REG_C) & RTC_C_UF, 0); /* cleared by the read */
	set(r, RTC_REG_B, RTC_B_24H | RTC_B_UIE);
	fake_ns += 1000000000ll;
	assert_int_equal(get(r, RTC_REG_C) & (RTC_C_UF | RTC_C_IRQF), RTC_C_UF | RTC_C_IRQF);
	/* Periodic flag at 1024 Hz. */
	set(r, RTC_REG_B, RTC_B_24H | RTC_B_PIE);
	set(r, RTC_REG_A, 0x26);
	fake_ns += 2000000;
	assert_int_equal(get(r, RTC_REG_C) & (RTC_C_PF | RTC_C_IRQF), RTC_C_PF | RTC_C_IRQF);
	/* Alarm at 15:04:07 (BCD), enabled. */
	set(r, RTC_REG_A, 0x20);
	set(r, RTC_REG_B, RTC_B_24H | RTC_B_AIE);
	set(r, RTC_SECONDS_ALARM, 0x07);
	set(r, RTC_MINUTES_ALARM, 0x04);
	set(r, RTC_HOURS_ALARM, 0xc0); /* any hour */
	fake_ns = (T0 + 2) * 1000000000ll;
	assert_int_equal(get(r, RTC_REG_C) & (RTC_C_AF | RTC_C_IRQF), RTC_C_AF | RTC_C_IRQF);
	fake_ns = (T0 + 3) * 1000000000ll;
	assert_int_equal(get(r, RTC_REG_C) & RTC_C_AF, 0);
	/* Device reset clears the enables. */
	rtc_ops.reset(r);
	assert_int_equal(get(r, RTC_REG_B), RTC_B_24H);
}

static void test_cmos_ram(void **state)
{
	struct rtc *r = *state;

	for (unsigned i = 0x0e; i < 0x80; i++)
		if (i != RTC_CENTURY)
			set(r, (uint8_t)i, (uint8_t)(i ^ 0xa5));
	for (unsigned i = 0x0e; i < 0x80; i++)
		if (i != RTC_CENTURY)
			assert_int_equal(get(r, (uint8_t)i), i ^ 0xa5);
	/* Bit 7 of the index is the NMI mask, not part of the address. */
	assert_int_equal(get(r, 0x80 | 0x0e), 0x0e ^ 0xa5);
	set(r, 0x80 | 0x10, 0x42);
	assert_int_equal(get(r, 0x10), 0x42);
	/* Alarm bytes are plain storage. */
	set(r, RTC_HOURS_ALARM, 0x12);
	assert_int_equal(get(r, RTC_HOURS_ALARM), 0x12);
	/* The index port is write-only. */
	rtc_write(r, 0, 0x0e);
	assert_int_equal(rtc_read(r, 0), 0xff);
}

static void test_devmgr_add(void **state)
{
	struct devmgr dm;
	struct rtc *r;
	uint8_t v;

	devmgr_init(&dm, NULL, NULL, NULL);
	assert_int_equal(rtc_add(&dm, &r), 0);
	assert_int_equal(rtc_add(&dm, NULL), -EINVAL); /* id "rtc" taken */
	v = RTC_REG_D;
	assert_true(bus_write(&dm.pio, 0x70, &v, 1));
	assert_true(bus_read(&dm.pio, 0x71, &v, 1));
	assert_int_equal(v, RTC_D_VRT);
	v = 0x0e;
	assert_true(bus_write(&dm.pio, 0x70, &v, 1));
	v = 0x77;
	assert_true(bus_write(&dm.pio, 0x71, &v, 1));
	assert_int_equal(get(r, 0x0e), 0x77);
	assert_false(devmgr_find(&dm, "rtc")->has_irq);
	devmgr_destroy(&dm);
}

/* ---- snapshots ---- */

#define NS 1000000000ll
/* 2030-01-02 03:04:05 UTC */
#define T_SET 1893553445ll

/* Payload offsets of the version 1 layout. */
enum {
	P_INDEX = 0,
	P_NMI = 1,
	P_CMOS = 2,
	P_OFFSET = P_CMOS + 128,
	P_TM = P_OFFSET + 8, /* sec, min, hour, mday, mon, year, wday: 4 bytes each */
	P_LEN = P_TM + 7 * 4,
};

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static struct rtc *fresh_rtc(void)
{
	struct rtc *r;

	assert_int_equal(rtc_create(&r), 0);
	rtc_set_clock(r, fake_clock, NULL);
	return r;
}

/* The guest sets its clock to T_SET (binary, 24-hour), enables the alarm interrupt, picks a
 * periodic rate, fills the CMOS RAM, and leaves the index at 0x40 with NMIs masked. */
static void busy_rtc(struct rtc *r)
{
	set(r, RTC_REG_B, RTC_B_SET | RTC_B_DM | RTC_B_24H);
	set(r, RTC_CENTURY, 20);
	set(r, RTC_YEAR, 30);
	set(r, RTC_MONTH, 1);
	set(r, RTC_DAY_OF_MONTH, 2);
	set(r, RTC_HOURS, 3);
	set(r, RTC_MINUTES, 4);
	set(r, RTC_SECONDS, 5);
	set(r, RTC_REG_B, RTC_B_DM | RTC_B_24H | RTC_B_AIE);
	set(r, RTC_REG_A, 0x2a);
	set(r, RTC_SECONDS_ALARM, 9);
	set(r, RTC_MINUTES_ALARM, 0xc0);
	set(r, RTC_HOURS_ALARM, 0xc0);
	for (unsigned i = 0x0e; i < 0x80; i++)
		if (i != RTC_CENTURY)
			set(r, (uint8_t)i, (uint8_t)(i * 7));
	rtc_write(r, 0, 0x80 | 0x40);
}

static void test_snapshot_running(void **state)
{
	struct rtc *src = *state, *dst;
	struct snap_edit e, again;

	fake_ns = T0 * NS + 250000000ll;
	rtc_set_clock(src, fake_clock, NULL);
	busy_rtc(src);
	assert_int_equal(rtc_offset(src), T_SET - T0);
	snap_edit_save(&e, &rtc_ops, src, SNAP_REC_RTC, "rtc");
	assert_int_equal(e.version, 1);
	assert_int_equal(e.len, P_LEN);
	assert_int_equal(e.payload[P_INDEX], 0x40);
	assert_int_equal(e.payload[P_NMI], 1);

	/* The snapshot waits 1000 s on disk; the host clock moves on. */
	fake_ns += 1000 * NS;
	dst = fresh_rtc();
	assert_int_equal(snap_edit_restore(&e, &rtc_ops, dst), 0);
	snap_edit_save(&again, &rtc_ops, dst, SNAP_REC_RTC, "rtc");
	snap_edit_assert_same(&e, &again);
	/* The index came along: a data read without an index write reads CMOS byte 0x40. */
	assert_int_equal(rtc_read(dst, 1), (uint8_t)(0x40 * 7));
	/* The guest's clock kept its distance to the host's: it reads the present (the host's
	 * time plus the guest's offset), not the moment of the snapshot. */
	assert_int_equal(rtc_offset(dst), T_SET - T0);
	assert_int_equal(read_time(dst), T_SET + 1000);
	assert_int_equal(read_time(src), T_SET + 1000);
	/* Register C: no flag at the restore instant (as if just read), then the update and
	 * periodic flags, and the alarm (any hour and minute, second 9) fires at :09. */
	assert_int_equal(get(dst, RTC_REG_C), 0);
	fake_ns += NS;
	assert_int_equal(get(dst, RTC_REG_C), RTC_C_UF | RTC_C_PF);
	fake_ns = (T0 + 1000 + 4) * NS; /* guest time 03:20:49 */
	assert_int_equal(get(dst, RTC_SECONDS), 49);
	fake_ns += 20 * NS;
	assert_int_equal(get(dst, RTC_REG_C) & (RTC_C_AF | RTC_C_IRQF), RTC_C_AF | RTC_C_IRQF);
	/* Every other register reads the same on both. */
	for (unsigned i = 0; i < 0x80; i++)
		if (i != RTC_REG_C)
			assert_int_equal(get(dst, (uint8_t)i), get(src, (uint8_t)i));
	rtc_destroy(dst);
}

static void test_snapshot_frozen(void **state)
{
	struct rtc *src = *state, *dst;
	struct snap_edit e;
	struct tm tm = { .tm_year = 131,
			 .tm_mon = 11,
			 .tm_mday = 31,
			 .tm_hour = 23,
			 .tm_min = 59,
			 .tm_sec = 58 };

	/* Snapshot taken halfway through the guest setting its clock (BCD). */
	fake_ns = T0 * NS;
	rtc_set_clock(src, fake_clock, NULL);
	set(src, RTC_REG_B, RTC_B_SET | RTC_B_24H);
	set(src, RTC_YEAR, 0x31);
	set(src, RTC_MONTH, 0x12);
	set(src, RTC_DAY_OF_MONTH, 0x31);
	set(src, RTC_HOURS, 0x23);
	set(src, RTC_MINUTES, 0x59);
	snap_edit_save(&e, &rtc_ops, src, SNAP_REC_RTC, "rtc");
	fake_ns += 100 * NS;
	dst = fresh_rtc();
	assert_int_equal(snap_edit_restore(&e, &rtc_ops, dst), 0);
	/* Still stopped at what the guest wrote, the weekday from when it stopped. */
	assert_int_equal(get(dst, RTC_REG_B), RTC_B_SET | RTC_B_24H);
	assert_int_equal(get(dst, RTC_YEAR), 0x31);
	assert_int_equal(get(dst, RTC_MINUTES), 0x59);
	assert_int_equal(get(dst, RTC_SECONDS), 0x05); /* T0's, not yet written */
	assert_int_equal(get(dst, RTC_DAY_OF_WEEK), 3);
	assert_int_equal(get(dst, RTC_REG_A), 0x26); /* no UIP while SET */
	/* The guest finishes on both: the same clock. */
	set(src, RTC_SECONDS, 0x58);
	set(dst, RTC_SECONDS, 0x58);
	set(src, RTC_REG_B, RTC_B_24H);
	set(dst, RTC_REG_B, RTC_B_24H);
	assert_int_equal(rtc_offset(dst), rtc_offset(src));
	assert_int_equal(read_time(dst), timegm(&tm));
	rtc_destroy(dst);
}

/* Restoring `bad` must fail with -EINVAL and leave `dst` as it was. */
static void refused(struct rtc *dst, const struct snap_edit *bad)
{
	struct snap_edit before, after;

	snap_edit_save(&before, &rtc_ops, dst, SNAP_REC_RTC, "rtc");
	assert_int_equal(snap_edit_restore(bad, &rtc_ops, dst), -EINVAL);
	snap_edit_save(&after, &rtc_ops, dst, SNAP_REC_RTC, "rtc");
	snap_edit_assert_same(&before, &after);
}

static void test_snapshot_refused(void **state)
{
	struct rtc *src = *state, *dst;
	struct snap_edit good, e;
	static const struct {
		unsigned off;
		uint8_t val;
	} bad_bytes[] = {
		{ P_INDEX, 0x80 }, /* the NMI bit has its own field */
		{ P_INDEX, 0xff },
		{ P_NMI, 2 },
		{ P_CMOS + RTC_REG_A, 0x26 | RTC_A_UIP },		   /* UIP is computed */
		{ P_CMOS + RTC_REG_B, RTC_B_SET | RTC_B_UIE | RTC_B_24H }, /* SET clears UIE */
		{ P_CMOS + RTC_SECONDS, 1 }, /* time bytes are computed, never stored */
		{ P_CMOS + RTC_HOURS, 1 },
		{ P_CMOS + RTC_YEAR, 1 },
		{ P_CMOS + RTC_CENTURY, 0x20 },
		{ P_CMOS + RTC_REG_C, RTC_C_IRQF },
		{ P_CMOS + RTC_REG_D, RTC_D_VRT },
	};
	static const struct {
		unsigned field; /* of the time being set */
		int32_t val;
	} bad_tm[] = {
		{ 0, 256 }, { 0, -1 },	      { 1, 256 },	  { 2, 256 }, { 3, -1 }, { 4, -2 },
		{ 4, 255 }, { 5, INT32_MAX }, { 5, -1200000001 }, { 6, 7 },   { 6, -1 },
	};
	static const int64_t bad_offsets[] = { (1ll << 55) + 1, -(1ll << 55) - 1, INT64_MIN,
					       INT64_MAX };

	fake_ns = T0 * NS;
	rtc_set_clock(src, fake_clock, NULL);
	busy_rtc(src);
	snap_edit_save(&good, &rtc_ops, src, SNAP_REC_RTC, "rtc");
	dst = fresh_rtc();
	/* The target has a state of its own: another offset, RAM, index. */
	set(dst, RTC_REG_B, RTC_B_24H);
	set(dst, RTC_HOURS, 0x01);
	set(dst, 0x20, 0x99);

	for (size_t i = 0; i < sizeof(bad_bytes) / sizeof(bad_bytes[0]); i++) {
		e = good;
		e.payload[bad_bytes[i].off] = bad_bytes[i].val;
		refused(dst, &e);
	}
	for (size_t i = 0; i < sizeof(bad_tm) / sizeof(bad_tm[0]); i++) {
		e = good;
		put32(e.payload + P_TM + 4 * bad_tm[i].field, (uint32_t)bad_tm[i].val);
		refused(dst, &e);
	}
	for (size_t i = 0; i < sizeof(bad_offsets) / sizeof(bad_offsets[0]); i++) {
		e = good;
		put64(e.payload + P_OFFSET, (uint64_t)bad_offsets[i]);
		refused(dst, &e);
	}
	for (size_t len = 0; len < good.len; len++) {
		e = good;
		e.len = len;
		refused(dst, &e);
	}
	e = good;
	e.payload[e.len++] = 0;
	refused(dst, &e);
	e = good;
	e.version = 2;
	refused(dst, &e);
	e = good;
	e.type = SNAP_REC_SERIAL;
	refused(dst, &e);
	assert_int_equal(get(dst, 0x20), 0x99);

	/* The bounds themselves load, and the clock reads without trouble there. */
	e = good;
	put64(e.payload + P_OFFSET, (uint64_t)(1ll << 55));
	assert_int_equal(snap_edit_restore(&e, &rtc_ops, dst), 0);
	assert_int_equal(rtc_offset(dst), 1ll << 55);
	(void)get(dst, RTC_CENTURY);
	put64(e.payload + P_OFFSET, (uint64_t) - (1ll << 55));
	put32(e.payload + P_TM + 4 * 4, (uint32_t)-1);
	put32(e.payload + P_TM + 4 * 5, (uint32_t)-1200000000);
	e.payload[P_CMOS + RTC_REG_B] = RTC_B_SET | RTC_B_24H;
	assert_int_equal(snap_edit_restore(&e, &rtc_ops, dst), 0);
	(void)get(dst, RTC_YEAR);
	set(dst, RTC_REG_B, RTC_B_24H); /* unfreezes at that time */
	(void)get(dst, RTC_CENTURY);
	rtc_destroy(dst);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_host_time_bcd, setup, teardown),
		cmocka_unit_test_setup_teardown(test_host_time_binary_12h, setup, teardown),
		cmocka_unit_test_setup_teardown(test_encodings, setup, teardown),
		cmocka_unit_test_setup_teardown(test_uip_window, setup, teardown),
		cmocka_unit_test_setup_teardown(test_uip_not_stuck, setup, teardown),
		cmocka_unit_test_setup_teardown(test_guest_sets_time, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reg_c_d, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cmos_ram, setup, teardown),
		cmocka_unit_test(test_devmgr_add),
		cmocka_unit_test_setup_teardown(test_snapshot_running, setup, teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_frozen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_refused, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
