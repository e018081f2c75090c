/* PLACEHOLDER (replaced by the virtio-gpu implementation before this lands). */
#include "devices/virtio/gpu.h"

#include <errno.h>

const struct virtio_device_ops virtio_gpu_ops = { .name = "virtio-gpu",
						  .device_id = VIRTIO_ID_GPU };

int virtio_gpu_create(struct display *d, struct virtio_gpu **out)
{
	return -ENOSYS;
}

int virtio_gpu_add(struct devmgr *dm, struct display *d, struct virtio_gpu **out)
{
	return -ENOSYS;
}

void virtio_gpu_destroy(struct virtio_gpu *g)
{
}
