/* virtio-gpu, 2D only (virtio 1.2 §5.7): one scanout the guest draws into through host-side
 * resources, shown through a struct display (src/ui/display.h) that the front ends read.
 * `--gui`, `--vnc` or `--gpu WxH` add it (with the keyboard and tablet of virtio-input). */
#ifndef IGNITION_DEVICES_VIRTIO_GPU_H
#define IGNITION_DEVICES_VIRTIO_GPU_H

#include "devices/virtio/virtio.h"

#include <stdint.h>

struct devmgr;
struct display;
struct virtio_gpu;

#define VIRTIO_ID_GPU 16

/* The virtio ops of the GPU device (register with virtio_mmio_add). */
extern const struct virtio_device_ops virtio_gpu_ops;

/* A new GPU device showing its scanout on `d` (not owned; outlives the device).  It reports
 * d's preferred mode as its display info and installs itself as d's resize handler.
 * -ENOMEM. */
int virtio_gpu_create(struct display *d, struct virtio_gpu **out)
	__attribute__((warn_unused_result));

/* Create the device and register it as "virtio-gpu" on `dm`. */
int virtio_gpu_add(struct devmgr *dm, struct display *d, struct virtio_gpu **out)
	__attribute__((warn_unused_result));

/* Free the device (also virtio_gpu_ops.destroy). */
void virtio_gpu_destroy(struct virtio_gpu *g);

#endif
