/* Boot timer: the guest's init writes one byte, 123, to offset 0 of this MMIO slot when it
 * is up, and the VMM prints "Guest-boot-time = N ms" (N = ms since the VMM started) once.
 * The same window takes a guest's request for a snapshot (BOOT_TIMER_SNAPSHOT_OFF).
 * It must be the first MMIO device, so its address (LAYOUT_MMIO_START) is fixed and the
 * guest-side helper can hard-code it: the boot path calls boot_timer_add() before any other
 * MMIO registration.  Safe from any thread. */
#ifndef IGNITION_DEVICES_BOOT_TIMER_H
#define IGNITION_DEVICES_BOOT_TIMER_H

#include "core/bus.h"

#include <stdint.h>

struct devmgr;
struct boot_timer;

#define BOOT_TIMER_MAGIC 123 /* the byte the guest writes at offset 0 */
/* Snapshot request (docs/snapshots.md, "From inside the guest"): a one-byte write of 0x5a at
 * offset 8 asks the VMM for a snapshot; a 4-byte read there counts the snapshots taken. */
#define BOOT_TIMER_SNAPSHOT_OFF	  8
#define BOOT_TIMER_SNAPSHOT_MAGIC 0x5a
/* "My network is configured" (docs/snapshots.md, "From inside the guest"): a one-byte write of
 * 0x4e at offset 8, from the guest's DHCP hook once its address and route are set.  Counted per
 * run, not saved: a restored guest has said nothing yet, so a host that waits for the count to
 * move (ignition browser, before it types a URL) waits for the clone's own lease. */
#define BOOT_TIMER_NET_MAGIC 0x4e
#define BOOT_TIMER_SIZE	     0x1000

/* The bus ops (exposed for tests). */
extern const struct dev_ops boot_timer_ops;

/* Create a boot timer; log_fd receives the one "Guest-boot-time" line (normally stderr). */
int boot_timer_create(int log_fd, struct boot_timer **out) __attribute__((warn_unused_result));
/* Free it (also boot_timer_ops.destroy). */
void boot_timer_destroy(struct boot_timer *bt);
/* Reserve the first MMIO slot as "boot-timer", create and attach (printing to stderr). */
int boot_timer_add(struct devmgr *dm, struct boot_timer **out) __attribute__((warn_unused_result));
/* Call fn(ctx) when the guest asks for a snapshot (on the vCPU thread that wrote: fn must only
 * hand the request to the event loop). */
void boot_timer_on_snapshot_request(struct boot_timer *bt, void (*fn)(void *ctx), void *ctx);
/* How many times the guest said its network is configured in this run (0: not yet). */
uint32_t boot_timer_net_ready(const struct boot_timer *bt);
/* Guest boot time in ms since VMM start, or 0 if the guest has not signalled yet. */
uint64_t boot_timer_ms(const struct boot_timer *bt);

#endif
