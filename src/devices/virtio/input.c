/* PLACEHOLDER (replaced by the virtio-input implementation before this lands). */
#include "devices/virtio/input.h"

#include <errno.h>

const struct virtio_device_ops virtio_input_ops = { .name = "virtio-input",
						    .device_id = VIRTIO_ID_INPUT };

int virtio_input_create(enum virtio_input_kind kind, struct virtio_input **out)
{
	return -ENOSYS;
}

int virtio_input_add(struct devmgr *dm, const char *id, enum virtio_input_kind kind,
		     struct virtio_input **out)
{
	return -ENOSYS;
}

int virtio_input_send(struct virtio_input *in, const struct virtio_input_event *ev, unsigned n)
{
	return -ENOSYS;
}

void virtio_input_destroy(struct virtio_input *in)
{
}
