#include "fake_driver.h"

#include "devices/virtio/mmio.h"
#include "devices/virtio/virtio.h"
#include "devices/virtio/virtq.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

uint32_t fdrv_rd(struct virtio_mmio *t, uint64_t off)
{
	return (uint32_t)virtio_mmio_dev_ops.read(t, off, 4);
}

void fdrv_wr(struct virtio_mmio *t, uint64_t off, uint32_t v)
{
	virtio_mmio_dev_ops.write(t, off, 4, v);
}

uint64_t fdrv_device_features(struct virtio_mmio *t)
{
	uint64_t f;

	fdrv_wr(t, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	f = fdrv_rd(t, VIRTIO_MMIO_DEVICE_FEATURES);
	fdrv_wr(t, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	return f | (uint64_t)fdrv_rd(t, VIRTIO_MMIO_DEVICE_FEATURES) << 32;
}

uint64_t fdrv_negotiate(struct virtio_mmio *t, uint64_t mask)
{
	uint64_t f;

	fdrv_wr(t, VIRTIO_MMIO_STATUS, 0);
	fdrv_wr(t, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	f = fdrv_device_features(t) & mask;
	fdrv_wr(t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	fdrv_wr(t, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)f);
	fdrv_wr(t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	fdrv_wr(t, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(f >> 32));
	fdrv_wr(t, VIRTIO_MMIO_STATUS,
		VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
	assert_int_equal(fdrv_rd(t, VIRTIO_MMIO_STATUS), VIRTIO_STATUS_ACKNOWLEDGE |
								 VIRTIO_STATUS_DRIVER |
								 VIRTIO_STATUS_FEATURES_OK);
	return f;
}

void fdrv_queue(struct virtio_mmio *t, unsigned q, struct fake_vq *f, struct fake_mem *m,
		uint16_t size, uint64_t desc, uint64_t avail, uint64_t used, uint16_t max)
{
	fake_vq_init(f, m, size, desc, avail, used);
	fdrv_wr(t, VIRTIO_MMIO_QUEUE_SEL, q);
	assert_int_equal(fdrv_rd(t, VIRTIO_MMIO_QUEUE_NUM_MAX), max);
	fdrv_wr(t, VIRTIO_MMIO_QUEUE_NUM, size);
	fdrv_wr(t, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)desc);
	fdrv_wr(t, VIRTIO_MMIO_QUEUE_DESC_HIGH, (uint32_t)(desc >> 32));
	fdrv_wr(t, VIRTIO_MMIO_QUEUE_AVAIL_LOW, (uint32_t)avail);
	fdrv_wr(t, VIRTIO_MMIO_QUEUE_AVAIL_HIGH, (uint32_t)(avail >> 32));
	fdrv_wr(t, VIRTIO_MMIO_QUEUE_USED_LOW, (uint32_t)used);
	fdrv_wr(t, VIRTIO_MMIO_QUEUE_USED_HIGH, (uint32_t)(used >> 32));
	fdrv_wr(t, VIRTIO_MMIO_QUEUE_READY, 1);
	assert_int_equal(fdrv_rd(t, VIRTIO_MMIO_QUEUE_READY), 1);
}

void fdrv_driver_ok(struct virtio_mmio *t)
{
	fdrv_wr(t, VIRTIO_MMIO_STATUS,
		VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
			VIRTIO_STATUS_DRIVER_OK);
	assert_int_equal(fdrv_rd(t, VIRTIO_MMIO_STATUS), 0x0f);
}

bool fdrv_event_due(uint16_t event, uint16_t now, uint16_t old)
{
	return (uint16_t)(now - event - 1) < (uint16_t)(now - old);
}

void fdrv_vq_resume(struct virtq *vq, struct fake_vq *f, uint64_t features, uint16_t last_avail)
{
	assert_int_equal(virtq_setup(vq, &f->mem->gm, f->size, f->desc, f->avail, f->used), 0);
	virtq_set_features(vq, features);
	vq->last_avail = last_avail;
	vq->used_idx = fake_vq_used_idx(f);
}
