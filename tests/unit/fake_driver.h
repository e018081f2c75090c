/* Test fake: the driver side of a virtio-mmio device (virtio 1.2 §3.1.1 initialisation,
 * §4.2.3 queue set-up), shared by every device test so that each tests its device, not its own
 * copy of the bring-up.  Register accesses go through the transport's bus ops, as a vCPU's
 * would. */
#ifndef IGNITION_TESTS_FAKE_DRIVER_H
#define IGNITION_TESTS_FAKE_DRIVER_H

#include "fake_virtq.h"

#include <stdbool.h>
#include <stdint.h>

struct virtio_mmio;
struct virtq;

/* 32-bit register read / write at `off` in the transport's window. */
uint32_t fdrv_rd(struct virtio_mmio *t, uint64_t off);
void fdrv_wr(struct virtio_mmio *t, uint64_t off, uint32_t v);

/* All 64 offered feature bits (DeviceFeaturesSel 0 and 1). */
uint64_t fdrv_device_features(struct virtio_mmio *t);

/* Reset, ACKNOWLEDGE | DRIVER, accept the offered features masked by `mask`, FEATURES_OK
 * (asserted to stick).  Returns the accepted features. */
uint64_t fdrv_negotiate(struct virtio_mmio *t, uint64_t mask);

/* Lay out `f` (`size` entries, rings at desc/avail/used) in `m` and make queue `q` ready with it;
 * asserts that QueueNumMax is `max` and that QueueReady stuck. */
void fdrv_queue(struct virtio_mmio *t, unsigned q, struct fake_vq *f, struct fake_mem *m,
		uint16_t size, uint64_t desc, uint64_t avail, uint64_t used, uint16_t max);

/* Set DRIVER_OK; asserts the status reads back as a live device (0x0f). */
void fdrv_driver_ok(struct virtio_mmio *t);

/* §2.7.10: with EVENT_IDX, must the device have interrupted after moving the used index from
 * `old` to `now`, given the driver's used_event `event`?  (The driver's side of the rule that
 * virtq_should_notify() implements: idx - event - 1 < idx - old, in 16-bit arithmetic.) */
bool fdrv_event_due(uint16_t event, uint16_t now, uint16_t old);

/* The device side of queue `f` as a snapshot restore brings it back (rings where `f` has them,
 * `features` applied, the used index the device left in guest memory, `last_avail` chains
 * consumed), for device tests that restore a device and activate it with these queues
 * directly (the transport's own snapshot is not theirs to test). */
void fdrv_vq_resume(struct virtq *vq, struct fake_vq *f, uint64_t features, uint16_t last_avail);

#endif
