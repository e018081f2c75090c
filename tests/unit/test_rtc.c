/* MC146818 RTC: host time in BCD/binary and 12/24-hour form, the guest setting the clock,
 * UIP, registers A-D, CMOS RAM, and the bus registration. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/devmgr.h"
#include "devices/rtc.h"

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
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
