/* MC146818 real-time clock (Motorola MC146818A datasheet: address map, registers A-D).
 *
 * Time registers are computed from the host clock on every read, in BCD or binary (register
 * B DM) and 24- or 12-hour form (register B 24/12; 12-hour keeps PM in bit 7 of the hours).
 * While register B SET is 1 the clock is frozen and the guest's writes edit that frozen time;
 * clearing SET makes the edited time current by storing its distance to the host clock.
 * Register A UIP is set only during the last 244 us of each second (the datasheet's t_BUC
 * window before an update), so it can never appear stuck. */
#include "devices/rtc.h"

#include "arch/x86/layout.h"
#include "core/devmgr.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NS_PER_SEC 1000000000ll
#define UIP_NS	   244000ll /* MC146818A: UIP rises 244 us before the update cycle */

struct rtc {
	pthread_mutex_t lock;
	uint8_t index;	   /* last value written to port 0x70, NMI mask bit included */
	uint8_t cmos[128]; /* CMOS RAM; also holds registers A/B and the alarm bytes */
	int64_t offset;	   /* guest clock - host clock, seconds */
	bool frozen;	   /* SET: time stopped at `set_tm` */
	struct tm set_tm;
	int64_t last_c_ns; /* host time of the previous register C read */
	int64_t (*now_ns)(void *opaque);
	void *now_opaque;
};

static int64_t host_now_ns(void *opaque)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * NS_PER_SEC + ts.tv_nsec;
}

static int64_t floor_div(int64_t a, int64_t b)
{
	return a / b - (a % b < 0);
}

static uint8_t to_bcd(unsigned v)
{
	return (uint8_t)(((v / 10) % 10) << 4 | (v % 10));
}

static unsigned from_bcd(uint8_t v)
{
	return (v >> 4) * 10u + (v & 0x0f);
}

static bool binary(const struct rtc *r)
{
	return r->cmos[RTC_REG_B] & RTC_B_DM;
}

static uint8_t enc(const struct rtc *r, unsigned v)
{
	return binary(r) ? (uint8_t)v : to_bcd(v);
}

static unsigned dec(const struct rtc *r, uint8_t v)
{
	return binary(r) ? v : from_bcd(v);
}

static uint8_t enc_hours(const struct rtc *r, int h)
{
	int h12;

	if (r->cmos[RTC_REG_B] & RTC_B_24H)
		return enc(r, (unsigned)h);
	/* 12-hour: 12, 1..11 with bit 7 = PM (MC146818A Table 3). */
	h12 = h % 12 ? h % 12 : 12;
	return (uint8_t)(enc(r, (unsigned)h12) | (h >= 12 ? 0x80 : 0));
}

static int dec_hours(const struct rtc *r, uint8_t v)
{
	if (r->cmos[RTC_REG_B] & RTC_B_24H)
		return (int)dec(r, v);
	return (int)(dec(r, v & 0x7f) % 12) + (v & 0x80 ? 12 : 0);
}

/* The guest's current broken-down time. */
static void guest_tm(struct rtc *r, int64_t host_ns, struct tm *tm)
{
	time_t t;

	if (r->frozen) {
		*tm = r->set_tm;
		return;
	}
	t = (time_t)(floor_div(host_ns, NS_PER_SEC) + r->offset);
	gmtime_r(&t, tm);
}

static bool updating(const struct rtc *r)
{
	return !r->frozen && (r->cmos[RTC_REG_A] & RTC_A_DV) == 0x20;
}

/* Periodic interrupt period for rate select RS (MC146818A Table 5, 32.768 kHz base). */
static int64_t periodic_ns(uint8_t rs)
{
	if (rs == 0)
		return 0;
	if (rs < 3)
		rs += 7; /* 1, 2 behave as 8, 9: 256 Hz, 128 Hz */
	return NS_PER_SEC / (65536 >> rs);
}

static bool alarm_match(uint8_t alarm, uint8_t now)
{
	return (alarm & 0xc0) == 0xc0 || alarm == now; /* 11xxxxxx = "don't care" */
}

/* Register C: flags since the previous read, computed lazily (no interrupt is raised). */
static uint8_t reg_c(struct rtc *r, int64_t now)
{
	uint8_t b = r->cmos[RTC_REG_B], c = 0;
	int64_t per = periodic_ns(r->cmos[RTC_REG_A] & RTC_A_RS);
	struct tm tm;

	if (updating(r) && floor_div(now, NS_PER_SEC) != floor_div(r->last_c_ns, NS_PER_SEC))
		c |= RTC_C_UF;
	if (per && now - r->last_c_ns >= per)
		c |= RTC_C_PF;
	guest_tm(r, now, &tm);
	if (alarm_match(r->cmos[RTC_SECONDS_ALARM], enc(r, (unsigned)tm.tm_sec)) &&
	    alarm_match(r->cmos[RTC_MINUTES_ALARM], enc(r, (unsigned)tm.tm_min)) &&
	    alarm_match(r->cmos[RTC_HOURS_ALARM], enc_hours(r, tm.tm_hour)))
		c |= RTC_C_AF;
	if (((c & RTC_C_PF) && (b & RTC_B_PIE)) || ((c & RTC_C_AF) && (b & RTC_B_AIE)) ||
	    ((c & RTC_C_UF) && (b & RTC_B_UIE)))
		c |= RTC_C_IRQF;
	r->last_c_ns = now;
	return c;
}

static uint8_t data_read(struct rtc *r, uint8_t idx)
{
	int64_t now = r->now_ns(r->now_opaque);
	struct tm tm;

	switch (idx) {
	case RTC_SECONDS:
	case RTC_MINUTES:
	case RTC_HOURS:
	case RTC_DAY_OF_WEEK:
	case RTC_DAY_OF_MONTH:
	case RTC_MONTH:
	case RTC_YEAR:
	case RTC_CENTURY:
		guest_tm(r, now, &tm);
		switch (idx) {
		case RTC_SECONDS:
			return enc(r, (unsigned)tm.tm_sec);
		case RTC_MINUTES:
			return enc(r, (unsigned)tm.tm_min);
		case RTC_HOURS:
			return enc_hours(r, tm.tm_hour);
		case RTC_DAY_OF_WEEK:
			return enc(r, (unsigned)tm.tm_wday + 1);
		case RTC_DAY_OF_MONTH:
			return enc(r, (unsigned)tm.tm_mday);
		case RTC_MONTH:
			return enc(r, (unsigned)tm.tm_mon + 1);
		case RTC_YEAR:
			return enc(r, (unsigned)(tm.tm_year + 1900) % 100);
		default:
			return enc(r, (unsigned)(tm.tm_year + 1900) / 100);
		}
	case RTC_REG_A: {
		uint8_t a = r->cmos[RTC_REG_A] & (uint8_t)~RTC_A_UIP;

		if (updating(r) &&
		    now - floor_div(now, NS_PER_SEC) * NS_PER_SEC >= NS_PER_SEC - UIP_NS)
			a |= RTC_A_UIP;
		return a;
	}
	case RTC_REG_C:
		return reg_c(r, now);
	case RTC_REG_D:
		return RTC_D_VRT;
	default:
		return r->cmos[idx];
	}
}

/* A guest write to one time field: edit the (frozen or running) time. */
static void time_write(struct rtc *r, uint8_t idx, uint8_t val)
{
	int64_t now = r->now_ns(r->now_opaque);
	int year;
	struct tm tm;

	guest_tm(r, now, &tm);
	year = tm.tm_year + 1900;
	switch (idx) {
	case RTC_SECONDS:
		tm.tm_sec = (int)dec(r, val);
		break;
	case RTC_MINUTES:
		tm.tm_min = (int)dec(r, val);
		break;
	case RTC_HOURS:
		tm.tm_hour = dec_hours(r, val);
		break;
	case RTC_DAY_OF_MONTH:
		tm.tm_mday = (int)dec(r, val);
		break;
	case RTC_MONTH:
		tm.tm_mon = (int)dec(r, val) - 1;
		break;
	case RTC_YEAR:
		tm.tm_year = year / 100 * 100 + (int)dec(r, val) % 100 - 1900;
		break;
	case RTC_CENTURY:
		tm.tm_year = (int)dec(r, val) * 100 + year % 100 - 1900;
		break;
	default:
		return; /* day of week follows from the date */
	}
	if (r->frozen) {
		/* Keep the fields as written (the guest may write an intermediate invalid date);
		 * timegm() normalises when SET is cleared. */
		r->set_tm = tm;
		return;
	}
	r->offset = (int64_t)timegm(&tm) - floor_div(now, NS_PER_SEC);
}

static void reg_b_write(struct rtc *r, uint8_t val)
{
	uint8_t old = r->cmos[RTC_REG_B];
	int64_t now = r->now_ns(r->now_opaque);

	if (val & RTC_B_SET) {
		val &= (uint8_t)~RTC_B_UIE; /* SET clears UIE (MC146818A register B) */
		if (!(old & RTC_B_SET)) {
			guest_tm(r, now, &r->set_tm);
			r->frozen = true;
		}
	} else if (old & RTC_B_SET) {
		struct tm tm = r->set_tm;

		r->frozen = false;
		r->offset = (int64_t)timegm(&tm) - floor_div(now, NS_PER_SEC);
	}
	r->cmos[RTC_REG_B] = val;
}

uint8_t rtc_read(struct rtc *r, unsigned off)
{
	uint8_t v;

	if (off != 1)
		return 0xff; /* the index port is write-only */
	pthread_mutex_lock(&r->lock);
	v = data_read(r, r->index & 0x7f);
	pthread_mutex_unlock(&r->lock);
	return v;
}

void rtc_write(struct rtc *r, unsigned off, uint8_t val)
{
	uint8_t idx;

	pthread_mutex_lock(&r->lock);
	if (off == 0) {
		r->index = val; /* bit 7 masks NMI on PCs; there is no NMI source to mask */
		goto out;
	}
	idx = r->index & 0x7f;
	switch (idx) {
	case RTC_SECONDS:
	case RTC_MINUTES:
	case RTC_HOURS:
	case RTC_DAY_OF_WEEK:
	case RTC_DAY_OF_MONTH:
	case RTC_MONTH:
	case RTC_YEAR:
	case RTC_CENTURY:
		time_write(r, idx, val);
		break;
	case RTC_REG_A:
		r->cmos[RTC_REG_A] = val & (uint8_t)~RTC_A_UIP; /* UIP is read-only */
		break;
	case RTC_REG_B:
		reg_b_write(r, val);
		break;
	case RTC_REG_C:
	case RTC_REG_D:
		break; /* read-only */
	default:
		r->cmos[idx] = val; /* alarms and CMOS RAM */
		break;
	}
out:
	pthread_mutex_unlock(&r->lock);
}

int64_t rtc_offset(struct rtc *r)
{
	int64_t v;

	pthread_mutex_lock(&r->lock);
	v = r->offset;
	pthread_mutex_unlock(&r->lock);
	return v;
}

void rtc_set_clock(struct rtc *r, int64_t (*now_ns)(void *opaque), void *opaque)
{
	pthread_mutex_lock(&r->lock);
	r->now_ns = now_ns ? now_ns : host_now_ns;
	r->now_opaque = opaque;
	r->last_c_ns = r->now_ns(r->now_opaque);
	pthread_mutex_unlock(&r->lock);
}

static uint64_t ops_read(void *dev, uint64_t off, unsigned size)
{
	return rtc_read(dev, (unsigned)off);
}

static void ops_write(void *dev, uint64_t off, unsigned size, uint64_t val)
{
	rtc_write(dev, (unsigned)off, (uint8_t)val);
}

static void ops_reset(void *dev)
{
	struct rtc *r = dev;

	/* The RESET pin clears PIE/AIE/UIE/SQWE and the register C flags; time and RAM are
	 * battery-backed and survive (MC146818A "RESET"). */
	pthread_mutex_lock(&r->lock);
	r->cmos[RTC_REG_B] &= (uint8_t) ~(RTC_B_PIE | RTC_B_AIE | RTC_B_UIE | RTC_B_SQWE);
	r->last_c_ns = r->now_ns(r->now_opaque);
	pthread_mutex_unlock(&r->lock);
}

static void ops_destroy(void *dev)
{
	rtc_destroy(dev);
}

const struct dev_ops rtc_ops = {
	.name = "rtc-mc146818",
	.sizes = BUS_SZ1,
	.read = ops_read,
	.write = ops_write,
	.reset = ops_reset,
	.destroy = ops_destroy,
};

int rtc_create(struct rtc **out)
{
	struct rtc *r = calloc(1, sizeof(*r));
	int ret;

	if (!r)
		return -ENOMEM;
	ret = -pthread_mutex_init(&r->lock, NULL);
	if (ret) {
		free(r);
		return ret;
	}
	r->now_ns = host_now_ns;
	r->last_c_ns = host_now_ns(NULL);
	/* glibc's gmtime_r() and timegm() load the time-zone rules on their first call (they
	 * open /etc/localtime).  Do it now, at start-up: the first guest read of the clock runs
	 * on a vCPU thread whose seccomp filter allows no open. */
	tzset();
	/* Power-on values as a PC BIOS leaves them: 32.768 kHz divider, 1024 Hz rate, BCD,
	 * 24-hour (Linux's rtc-cmos and hwclock handle either form). */
	r->cmos[RTC_REG_A] = 0x26;
	r->cmos[RTC_REG_B] = RTC_B_24H;
	*out = r;
	return 0;
}

void rtc_destroy(struct rtc *r)
{
	if (!r)
		return;
	pthread_mutex_destroy(&r->lock);
	free(r);
}

int rtc_add(struct devmgr *dm, struct rtc **out)
{
	struct dm_dev *slot;
	struct rtc *r;
	int ret;

	ret = devmgr_reserve_pio(dm, "rtc", LAYOUT_PORT_RTC, RTC_NR_PORTS, -1, &slot);
	if (ret)
		return ret;
	ret = rtc_create(&r);
	if (ret) {
		devmgr_release(dm, slot);
		return ret;
	}
	ret = devmgr_attach(dm, slot, &rtc_ops, r);
	if (ret) {
		rtc_destroy(r); /* the manager released the slot */
		return ret;
	}
	if (out)
		*out = r;
	return 0;
}
