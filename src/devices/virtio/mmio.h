/* The virtio-mmio transport, version 2 register layout (virtio 1.2 §4.2.2), implemented once
 * for every virtio device: registers, feature negotiation, device status, queue set-up,
 * notifications (ioeventfd → event loop) and interrupts. */
#ifndef IGNITION_DEVICES_VIRTIO_MMIO_H
#define IGNITION_DEVICES_VIRTIO_MMIO_H

#include "core/bus.h"
#include "devices/virtio/virtio.h"

#include <stdint.h>

struct devmgr;
struct gmem;
struct irq_line;
struct virtq;

/* Register offsets (virtio 1.2 §4.2.2, Table 4.1). */
#define VIRTIO_MMIO_MAGIC_VALUE		0x000
#define VIRTIO_MMIO_VERSION		0x004
#define VIRTIO_MMIO_DEVICE_ID		0x008
#define VIRTIO_MMIO_VENDOR_ID		0x00c
#define VIRTIO_MMIO_DEVICE_FEATURES	0x010
#define VIRTIO_MMIO_DEVICE_FEATURES_SEL 0x014
#define VIRTIO_MMIO_DRIVER_FEATURES	0x020
#define VIRTIO_MMIO_DRIVER_FEATURES_SEL 0x024
#define VIRTIO_MMIO_QUEUE_SEL		0x030
#define VIRTIO_MMIO_QUEUE_NUM_MAX	0x034
#define VIRTIO_MMIO_QUEUE_NUM		0x038
#define VIRTIO_MMIO_QUEUE_READY		0x044
#define VIRTIO_MMIO_QUEUE_NOTIFY	0x050
#define VIRTIO_MMIO_INTERRUPT_STATUS	0x060
#define VIRTIO_MMIO_INTERRUPT_ACK	0x064
#define VIRTIO_MMIO_STATUS		0x070
#define VIRTIO_MMIO_QUEUE_DESC_LOW	0x080
#define VIRTIO_MMIO_QUEUE_DESC_HIGH	0x084
#define VIRTIO_MMIO_QUEUE_AVAIL_LOW	0x090 /* "QueueDriver" */
#define VIRTIO_MMIO_QUEUE_AVAIL_HIGH	0x094
#define VIRTIO_MMIO_QUEUE_USED_LOW	0x0a0 /* "QueueDevice" */
#define VIRTIO_MMIO_QUEUE_USED_HIGH	0x0a4
#define VIRTIO_MMIO_SHM_SEL		0x0ac
#define VIRTIO_MMIO_SHM_LEN_LOW		0x0b0
#define VIRTIO_MMIO_SHM_LEN_HIGH	0x0b4
#define VIRTIO_MMIO_SHM_BASE_LOW	0x0b8
#define VIRTIO_MMIO_SHM_BASE_HIGH	0x0bc
#define VIRTIO_MMIO_QUEUE_RESET		0x0c0
#define VIRTIO_MMIO_CONFIG_GENERATION	0x0fc
#define VIRTIO_MMIO_CONFIG		0x100

#define VIRTIO_MMIO_MAGIC     0x74726976u /* "virt" */
#define VIRTIO_MMIO_VERSION_2 2u
#define VIRTIO_MMIO_VENDOR    0x49474e49u /* "INGI": ignition */
#define VIRTIO_MMIO_WINDOW    0x1000u

/* The bus ops of the transport (sizes = BUS_SZ_ANY: widths are checked per register).  save
 * writes the common virtio state as one SNAP_REC_VIRTIO_MMIO record (layout in mmio.c), then
 * the device's own records under the same id; restore loads them into a transport in its
 * power-on state (-EBUSY otherwise), -EINVAL and nothing changed if a record does not fit this
 * device or guest memory, and re-activates a live device where its queues stood. */
extern const struct dev_ops virtio_mmio_dev_ops;

/* Create a transport for `dev` (driven by `ops`) over guest memory `gm`, raising `irq`.
 * Without a device manager: register accesses go through virtio_mmio_dev_ops by hand and
 * notifications call queue_notify directly (unit tests).  `irq` must outlive the transport. */
int virtio_mmio_create(struct gmem *gm, struct irq_line *irq, const struct virtio_device_ops *ops,
		       void *dev, struct virtio_mmio **out) __attribute__((warn_unused_result));

/* Register virtio device `dev` as `id`: reserve an MMIO slot and GSI, create the transport and
 * attach it to the bus.  On success the transport owns `dev` (ops->destroy is called when the
 * manager destroys it); on failure nothing is left behind and `dev` is still the caller's. */
int virtio_mmio_add(struct devmgr *dm, const char *id, const struct virtio_device_ops *ops,
		    void *dev, struct virtio_mmio **out) __attribute__((warn_unused_result));

/* Free the transport and its device (also reached through virtio_mmio_dev_ops.destroy). */
void virtio_mmio_destroy(struct virtio_mmio *t);

/* Return the transport and the device to the power-on state (as a status write of 0). */
void virtio_mmio_reset(struct virtio_mmio *t);

/* Ask the device to finish or park its in-flight work (pause, snapshot), so that nothing it
 * took from its queues is lost or completed twice if its state is saved now.  Chains still
 * available stay in the rings; a restore runs every ready queue once. */
void virtio_mmio_quiesce(struct virtio_mmio *t);

/* The device pushed used buffers on `vq`: interrupt the driver unless it suppressed that
 * (§2.7.7.2, §2.7.10). */
void virtio_mmio_notify_used(struct virtio_mmio *t, struct virtq *vq);

/* The device stopped work on queue `q` with chains left (VIRTIO_QUEUE_BUDGET): run the queue
 * again once the event loop has served the other ready sources (without an event loop: right
 * after the current queue_notify returns). */
void virtio_mmio_queue_yield(struct virtio_mmio *t, unsigned q);

/* The device's config space changed: bump the generation, raise a config interrupt (§2.5.1). */
void virtio_mmio_config_changed(struct virtio_mmio *t);

/* The device saw something it cannot recover from: set DEVICE_NEEDS_RESET and raise a config
 * interrupt (§2.1.2).  The device stops using its queues until the driver resets it. */
void virtio_mmio_set_needs_reset(struct virtio_mmio *t);

/* Current device status byte (tests, diagnostics). */
uint32_t virtio_mmio_status(struct virtio_mmio *t);

/* Serialise with register accesses and queue work from outside queue_notify (for example a
 * device's own back-end callback on the event loop).  The lock is recursive. */
void virtio_mmio_lock(struct virtio_mmio *t);
void virtio_mmio_unlock(struct virtio_mmio *t);

#endif
