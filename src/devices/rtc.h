/* MC146818 CMOS real-time clock at ports 0x70 (index; bit 7 = NMI mask) / 0x71 (data).
 * The clock is the host's UTC time plus an offset the guest can change (register B SET).
 * The 128-byte CMOS RAM backs every other index.  IRQ 8 is never raised: register C flags
 * are computed when read, which is enough for polling software; interrupt-driven alarm/update
 * users should be told there is no RTC interrupt (describe the RTC without an IRQ).
 * All functions are safe from any thread (one mutex). */
#ifndef IGNITION_DEVICES_RTC_H
#define IGNITION_DEVICES_RTC_H

#include "core/bus.h"

#include <stdint.h>

struct devmgr;
struct rtc;

#define RTC_NR_PORTS 2

/* MC146818 register indices. */
#define RTC_SECONDS	  0x00
#define RTC_SECONDS_ALARM 0x01
#define RTC_MINUTES	  0x02
#define RTC_MINUTES_ALARM 0x03
#define RTC_HOURS	  0x04
#define RTC_HOURS_ALARM	  0x05
#define RTC_DAY_OF_WEEK	  0x06 /* 1 = Sunday */
#define RTC_DAY_OF_MONTH  0x07
#define RTC_MONTH	  0x08
#define RTC_YEAR	  0x09
#define RTC_REG_A	  0x0a
#define RTC_REG_B	  0x0b
#define RTC_REG_C	  0x0c
#define RTC_REG_D	  0x0d
#define RTC_CENTURY	  0x32 /* PC/ACPI convention (FADT CENTURY field) */

#define RTC_A_UIP  0x80 /* update in progress */
#define RTC_A_DV   0x70 /* divider; 010 = 32.768 kHz time base, running */
#define RTC_A_RS   0x0f /* periodic rate select */
#define RTC_B_SET  0x80 /* stop updates, guest sets the time */
#define RTC_B_PIE  0x40
#define RTC_B_AIE  0x20
#define RTC_B_UIE  0x10
#define RTC_B_SQWE 0x08
#define RTC_B_DM   0x04 /* 1 = binary, 0 = BCD */
#define RTC_B_24H  0x02
#define RTC_B_DSE  0x01
#define RTC_C_IRQF 0x80
#define RTC_C_PF   0x40
#define RTC_C_AF   0x20
#define RTC_C_UF   0x10
#define RTC_D_VRT  0x80 /* valid RAM and time (battery good) */

/* The bus ops (exposed for tests). */
extern const struct dev_ops rtc_ops;

/* Create an RTC running on host UTC time. */
int rtc_create(struct rtc **out) __attribute__((warn_unused_result));
/* Free it (also rtc_ops.destroy). */
void rtc_destroy(struct rtc *r);
/* Reserve ports 0x70-0x71 as "rtc" (no GSI), create and attach. */
int rtc_add(struct devmgr *dm, struct rtc **out) __attribute__((warn_unused_result));
/* Replace the host clock (ns since the Unix epoch, UTC); tests use it for fixed times. */
void rtc_set_clock(struct rtc *r, int64_t (*now_ns)(void *opaque), void *opaque);
/* Port access at offset 0 (index) or 1 (data). */
uint8_t rtc_read(struct rtc *r, unsigned off);
void rtc_write(struct rtc *r, unsigned off, uint8_t val);
/* Seconds the guest's clock is ahead of the host's (after the guest set it). */
int64_t rtc_offset(struct rtc *r);

#endif
