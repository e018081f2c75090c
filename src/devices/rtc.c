/* MC146818 real-time clock (Motorola MC146818A datasheet: address map, registers A-D).
 *
 * Time registers are computed from the host clock on every read, in BCD or binary (register
 * B DM) and 24- or 12-hour form (register B 24/12; 12-hour keeps PM in bit 7 of the hours).
 * While register B SET is 1 the clock is frozen and the guest's writes edit that frozen time;
 * clearing SET makes the edited time current by storing its distance to the host clock.
 * Register A UIP is set only during the last 244 us of each second (the datasheet's t_BUC
 * window before an update), so it can never appear stuck.
 *
 * A snapshot keeps the guest's distance to the host clock, not a time of day: a restored guest
 * reads the host's current time (plus whatever offset it had set), as after a suspend. */
#include "devices/rtc.h"

#include "arch/x86/layout.h"
#include "core/devmgr.h"
#include "snapshot/snap.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NS_PER_SEC 1000000000ll
#define UIP_NS	   244000ll /* MC146818A: UIP rises 244 us before the update cycle */

/* What the guest can see, apart from the host clock itself. */
struct rtc_state {
	uint8_t index;	   /* last value written to port 0x70, NMI mask bit included */
	uint8_t cmos[128]; /* CMOS RAM; also holds registers A/B and the alarm bytes */
	int64_t offset;	   /* guest clock - host clock, seconds */
	bool frozen;	   /* SET: time stopped at `set_tm` (always == register B SET) */
	struct tm set_tm;
};

struct rtc {
	pthread_mutex_t lock;
	struct rtc_state st;
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
	return r->st.cmos[RTC_REG_B] & RTC_B_DM;
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

	if (r->st.cmos[RTC_REG_B] & RTC_B_24H)
		return enc(r, (unsigned)h);
	/* 12-hour: 12, 1..11 with bit 7 = PM (MC146818A Table 3). */
	h12 = h % 12 ? h % 12 : 12;
	return (uint8_t)(enc(r, (unsigned)h12) | (h >= 12 ? 0x80 : 0));
}

static int dec_hours(const struct rtc *r, uint8_t v)
{
	if (r->st.cmos[RTC_REG_B] & RTC_B_24H)
		return (int)dec(r, v);
	return (int)(dec(r, v & 0x7f) % 12) + (v & 0x80 ? 12 : 0);
}

/* The guest's current broken-down time. */
static void guest_tm(struct rtc *r, int64_t host_ns, struct tm *tm)
{
	time_t t;

	if (r->st.frozen) {
		*tm = r->st.set_tm;
		return;
	}
	t = (time_t)(floor_div(host_ns, NS_PER_SEC) + r->st.offset);
	gmtime_r(&t, tm);
}

static bool updating(const struct rtc *r)
{
	return !r->st.frozen && (r->st.cmos[RTC_REG_A] & RTC_A_DV) == 0x20;
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
	uint8_t b = r->st.cmos[RTC_REG_B], c = 0;
	int64_t per = periodic_ns(r->st.cmos[RTC_REG_A] & RTC_A_RS);
	struct tm tm;

	if (updating(r) && floor_div(now, NS_PER_SEC) != floor_div(r->last_c_ns, NS_PER_SEC))
		c |= RTC_C_UF;
	if (per && now - r->last_c_ns >= per)
		c |= RTC_C_PF;
	guest_tm(r, now, &tm);
	if (alarm_match(r->st.cmos[RTC_SECONDS_ALARM], enc(r, (unsigned)tm.tm_sec)) &&
	    alarm_match(r->st.cmos[RTC_MINUTES_ALARM], enc(r, (unsigned)tm.tm_min)) &&
	    alarm_match(r->st.cmos[RTC_HOURS_ALARM], enc_hours(r, tm.tm_hour)))
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
		uint8_t a = r->st.cmos[RTC_REG_A] & (uint8_t)~RTC_A_UIP;

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
		return r->st.cmos[idx];
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
	if (r->st.frozen) {
		/* Keep the fields as written (the guest may write an intermediate invalid date);
		 * timegm() normalises when SET is cleared. */
		r->st.set_tm = tm;
		return;
	}
	r->st.offset = (int64_t)timegm(&tm) - floor_div(now, NS_PER_SEC);
}

static void reg_b_write(struct rtc *r, uint8_t val)
{
	uint8_t old = r->st.cmos[RTC_REG_B];
	int64_t now = r->now_ns(r->now_opaque);

	if (val & RTC_B_SET) {
		val &= (uint8_t)~RTC_B_UIE; /* SET clears UIE (MC146818A register B) */
		if (!(old & RTC_B_SET)) {
			guest_tm(r, now, &r->st.set_tm);
			r->st.frozen = true;
		}
	} else if (old & RTC_B_SET) {
		struct tm tm = r->st.set_tm;

		r->st.frozen = false;
		r->st.offset = (int64_t)timegm(&tm) - floor_div(now, NS_PER_SEC);
	}
	r->st.cmos[RTC_REG_B] = val;
}

uint8_t rtc_read(struct rtc *r, unsigned off)
{
	uint8_t v;

	if (off != 1)
		return 0xff; /* the index port is write-only */
	pthread_mutex_lock(&r->lock);
	v = data_read(r, r->st.index & 0x7f);
	pthread_mutex_unlock(&r->lock);
	return v;
}

void rtc_write(struct rtc *r, unsigned off, uint8_t val)
{
	uint8_t idx;

	pthread_mutex_lock(&r->lock);
	if (off == 0) {
		r->st.index = val; /* bit 7 masks NMI on PCs; there is no NMI source to mask */
		goto out;
	}
	idx = r->st.index & 0x7f;
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
		r->st.cmos[RTC_REG_A] = val & (uint8_t)~RTC_A_UIP; /* UIP is read-only */
		break;
	case RTC_REG_B:
		reg_b_write(r, val);
		break;
	case RTC_REG_C:
	case RTC_REG_D:
		break; /* read-only */
	default:
		r->st.cmos[idx] = val; /* alarms and CMOS RAM */
		break;
	}
out:
	pthread_mutex_unlock(&r->lock);
}

int64_t rtc_offset(struct rtc *r)
{
	int64_t v;

	pthread_mutex_lock(&r->lock);
	v = r->st.offset;
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
	r->st.cmos[RTC_REG_B] &= (uint8_t) ~(RTC_B_PIE | RTC_B_AIE | RTC_B_UIE | RTC_B_SQWE);
	r->last_c_ns = r->now_ns(r->now_opaque);
	pthread_mutex_unlock(&r->lock);
}

/* SNAP_REC_RTC payload, version 1:
 *   u8 index (0..127), bool NMI masked (bit 7 of the last index write),
 *   128 bytes CMOS RAM (registers A and B, alarms, RAM; the computed time and C/D bytes are 0),
 *   u64 offset: guest clock - host clock in seconds, two's complement,
 *   7 x u32 (two's complement) the time being set while register B SET is 1 (struct tm
 *   sec, min, hour, mday, mon, year, wday; stale but kept while SET is 0).
 * Register C's flags are computed from host time when read, so they are not saved: a restored
 * RTC reports update/periodic flags from the restore on, as if C had just been read. */
#define RTC_STATE_VERSION 1

/* Bounds on what restore accepts.  A guest moves its clock only by writing time fields (each
 * at most 255, the century included), so these lie far beyond any real use, and they keep
 * every later computation from overflowing: host seconds + offset, gmtime_r()'s int year
 * (which must stay below INT_MAX: about 6.7e16 s), timegm().  The year bound covers the time
 * frozen from any accepted offset. */
#define RTC_MAX_OFFSET (1ll << 55) /* s: about 1.14e9 years */
#define RTC_MAX_YEAR   1200000000  /* |tm_year| */

/* CMOS bytes never stored: the time registers and C/D are computed when read. */
static bool computed_index(unsigned i)
{
	switch (i) {
	case RTC_SECONDS:
	case RTC_MINUTES:
	case RTC_HOURS:
	case RTC_DAY_OF_WEEK:
	case RTC_DAY_OF_MONTH:
	case RTC_MONTH:
	case RTC_YEAR:
	case RTC_REG_C:
	case RTC_REG_D:
	case RTC_CENTURY:
		return true;
	}
	return false;
}

static bool in_range(int v, int lo, int hi)
{
	return v >= lo && v <= hi;
}

/* Could this RTC have reached `st`?  The ranges of set_tm are those time_write() can store
 * (decoded BCD or binary bytes; month - 1), the weekday is gmtime_r()'s. */
static bool state_valid(const struct rtc_state *st)
{
	const struct tm *t = &st->set_tm;
	uint8_t b = st->cmos[RTC_REG_B];

	for (unsigned i = 0; i < sizeof(st->cmos); i++)
		if (computed_index(i) && st->cmos[i])
			return false;
	return (st->index & 0x7f) < sizeof(st->cmos) && !(st->cmos[RTC_REG_A] & RTC_A_UIP) &&
	       st->frozen == !!(b & RTC_B_SET) && !(st->frozen && (b & RTC_B_UIE)) &&
	       st->offset >= -RTC_MAX_OFFSET && st->offset <= RTC_MAX_OFFSET &&
	       in_range(t->tm_sec, 0, 255) && in_range(t->tm_min, 0, 255) &&
	       in_range(t->tm_hour, 0, 255) && in_range(t->tm_mday, 0, 255) &&
	       in_range(t->tm_mon, -1, 254) && in_range(t->tm_year, -RTC_MAX_YEAR, RTC_MAX_YEAR) &&
	       in_range(t->tm_wday, 0, 6);
}

static int ops_save(void *dev, struct snap_writer *w, const char *id)
{
	struct rtc *r = dev;
	struct rtc_state st;

	pthread_mutex_lock(&r->lock);
	st = r->st;
	pthread_mutex_unlock(&r->lock);
	snap_rec_begin(w, SNAP_REC_RTC, RTC_STATE_VERSION, id);
	snap_put_u8(w, st.index & 0x7f);
	snap_put_bool(w, st.index & 0x80);
	snap_put_bytes(w, st.cmos, sizeof(st.cmos));
	snap_put_u64(w, (uint64_t)st.offset);
	snap_put_u32(w, (uint32_t)st.set_tm.tm_sec);
	snap_put_u32(w, (uint32_t)st.set_tm.tm_min);
	snap_put_u32(w, (uint32_t)st.set_tm.tm_hour);
	snap_put_u32(w, (uint32_t)st.set_tm.tm_mday);
	snap_put_u32(w, (uint32_t)st.set_tm.tm_mon);
	snap_put_u32(w, (uint32_t)st.set_tm.tm_year);
	snap_put_u32(w, (uint32_t)st.set_tm.tm_wday);
	return w->err;
}

static int ops_restore(void *dev, const struct snap_file *f, const char *id)
{
	struct rtc *r = dev;
	struct rtc_state st;
	struct snap_reader rd;
	uint8_t index;

	if (snap_file_find(f, SNAP_REC_RTC, id, &rd) || rd.version != RTC_STATE_VERSION)
		return -EINVAL;
	memset(&st, 0, sizeof(st));
	index = snap_get_u8(&rd);
	st.index = (uint8_t)(index | (snap_get_bool(&rd) ? 0x80 : 0));
	snap_get_bytes(&rd, st.cmos, sizeof(st.cmos));
	st.offset = (int64_t)snap_get_u64(&rd);
	st.set_tm.tm_sec = (int32_t)snap_get_u32(&rd);
	st.set_tm.tm_min = (int32_t)snap_get_u32(&rd);
	st.set_tm.tm_hour = (int32_t)snap_get_u32(&rd);
	st.set_tm.tm_mday = (int32_t)snap_get_u32(&rd);
	st.set_tm.tm_mon = (int32_t)snap_get_u32(&rd);
	st.set_tm.tm_year = (int32_t)snap_get_u32(&rd);
	st.set_tm.tm_wday = (int32_t)snap_get_u32(&rd);
	st.frozen = st.cmos[RTC_REG_B] & RTC_B_SET;
	if (snap_reader_done(&rd) || index > 0x7f || !state_valid(&st))
		return -EINVAL;

	pthread_mutex_lock(&r->lock);
	r->st = st;
	r->last_c_ns = r->now_ns(r->now_opaque);
	pthread_mutex_unlock(&r->lock);
	return 0;
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
	.save = ops_save,
	.restore = ops_restore,
	.rec = { SNAP_REC_RTC, RTC_STATE_VERSION },
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
	r->st.cmos[RTC_REG_A] = 0x26;
	r->st.cmos[RTC_REG_B] = RTC_B_24H;
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

static int add_create(struct devmgr *dm, struct dm_dev *slot, const void *arg, void **dev)
{
	struct rtc *r;
	int ret = rtc_create(&r);

	if (!ret)
		*dev = r;
	return ret;
}

int rtc_add(struct devmgr *dm, struct rtc **out)
{
	/* No line: the guest's rtc-cmos driver runs without the alarm interrupt. */
	const struct dm_slot_req req = {
		.id = "rtc", .kind = DM_PIO, .base = LAYOUT_PORT_RTC, .len = RTC_NR_PORTS
	};
	void *dev;
	int ret = devmgr_add(dm, &req, &rtc_ops, add_create, ops_destroy, NULL, &dev);

	if (!ret && out)
		*out = dev;
	return ret;
}
