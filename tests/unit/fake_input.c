#include "fake_input.h"

#include "devices/virtio/mmio.h"
#include "fake_driver.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

void fin_bring_up(struct fin *x, uint16_t qsize)
{
	fdrv_negotiate(x->t, ~0ull);
	fdrv_queue(x->t, 0, &x->evq, &x->mem, qsize, FIN_EVQ_DESC, FIN_EVQ_AVAIL, FIN_EVQ_USED,
		   VIRTIO_INPUT_QUEUE_SIZE);
	fdrv_queue(x->t, 1, &x->stq, &x->mem, qsize, FIN_STQ_DESC, FIN_STQ_AVAIL, FIN_STQ_USED,
		   VIRTIO_INPUT_QUEUE_SIZE);
	fdrv_driver_ok(x->t);
}

void fin_init(struct fin *x, enum virtio_input_kind kind, uint16_t qsize)
{
	memset(x, 0, sizeof(*x));
	fake_mem_init(&x->mem, FIN_RAM_SIZE);
	x->irq.fd = -1;
	assert_int_equal(virtio_input_create(kind, &x->in), 0);
	assert_int_equal(virtio_mmio_create(&x->mem.gm, &x->irq, &virtio_input_ops, x->in, &x->t),
			 0);
	if (qsize)
		fin_bring_up(x, qsize);
}

void fin_free(struct fin *x)
{
	virtio_mmio_destroy(x->t);
	fake_mem_free(&x->mem);
}

void fin_post(struct fin *x, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		uint16_t idx = x->evq.next_desc % x->evq.size;
		struct fake_buf b = { FIN_EVBUF + 8u * idx, 8, true };

		memset(fake_mem_ptr(&x->mem, b.gpa, 8), 0xee, 8);
		fake_vq_add_chain(&x->evq, &b, 1);
	}
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
}

unsigned fin_take(struct fin *x, struct virtio_input_event *out, unsigned max)
{
	unsigned n = 0;
	uint32_t id, len;

	while (n < max && fake_vq_get_used(&x->evq, &id, &len)) {
		const uint8_t *p = fake_mem_ptr(&x->mem, FIN_EVBUF + 8u * id, 8);

		assert_int_equal(len, 8);
		out[n].type = (uint16_t)(p[0] | p[1] << 8);
		out[n].code = (uint16_t)(p[2] | p[3] << 8);
		out[n].value = (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 |
			       (uint32_t)p[7] << 24;
		n++;
	}
	return n;
}

uint8_t fin_cfg_select(struct fin *x, uint8_t select, uint8_t subsel, uint8_t *u)
{
	virtio_mmio_dev_ops.write(x->t, VIRTIO_MMIO_CONFIG + VIRTIO_INPUT_CFG_SELECT, 1, select);
	virtio_mmio_dev_ops.write(x->t, VIRTIO_MMIO_CONFIG + VIRTIO_INPUT_CFG_SUBSEL, 1, subsel);
	/* Byte by byte, as Linux reads config space. */
	for (unsigned i = 0; i < 128 && u; i++)
		u[i] = (uint8_t)virtio_mmio_dev_ops.read(
			x->t, VIRTIO_MMIO_CONFIG + VIRTIO_INPUT_CFG_U + i, 1);
	return (uint8_t)virtio_mmio_dev_ops.read(x->t, VIRTIO_MMIO_CONFIG + VIRTIO_INPUT_CFG_SIZE,
						 1);
}
