/* The virtio-mmio transport (virtio 1.2 §4.2.2) driven register by register with a fake device
 * over fake guest memory. */
#include "core/devmgr.h"
#include "core/evloop.h"
#include "core/irq.h"
#include "devices/virtio/mmio.h"
#include "devices/virtio/virtio.h"
#include "devices/virtio/virtq.h"
#include "fake_driver.h"
#include "fake_virtq.h"
#include "platform/acpi/aml.h"
#include "snapshot/snap.h"

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#define RAM_SIZE  (1u << 20)
#define QMAX	  16
#define DESC_GPA  0x1000
#define AVAIL_GPA 0x2000
#define USED_GPA  0x3000
#define FEAT_X	  3 /* a device-specific feature bit the fake offers */
#define FEATURES \
	(VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(VIRTIO_F_EVENT_IDX) | VIRTIO_BIT(FEAT_X))

struct fake_dev {
	uint8_t config[12];
	uint32_t cfg_write_off, cfg_write_size;
	uint64_t cfg_write_val;
	int activate_ret;
	unsigned activations, resets, destroyed, quiesced;
	unsigned notifies[2]; /* atomic: the event-loop test reads them from another thread */
	uint64_t act_features;
	struct virtq *vqs;
	struct virtio_mmio *t;
	bool push_on_notify; /* return one used buffer per notification */
	unsigned saves, restores;
	char saved_id[32], restored_id[32];
	int restore_ret;
	bool garbage_on_notify; /* behave as if the queue held garbage */
	unsigned yields;	/* yield (budget used up) this many more times */
};

static uint64_t fd_features(void *dev)
{
	return FEATURES;
}

static uint64_t fd_config_read(void *dev, uint32_t off, unsigned size)
{
	struct fake_dev *d = dev;

	return virtio_config_get(d->config, sizeof(d->config), off, size);
}

static void fd_config_write(void *dev, uint32_t off, unsigned size, uint64_t val)
{
	struct fake_dev *d = dev;

	d->cfg_write_off = off;
	d->cfg_write_size = size;
	d->cfg_write_val = val;
}

static int fd_activate(void *dev, struct virtio_mmio *t, uint64_t features, struct virtq *vqs,
		       unsigned nr)
{
	struct fake_dev *d = dev;

	assert_int_equal(nr, 2);
	d->activations++;
	d->act_features = features;
	d->vqs = vqs;
	d->t = t;
	return d->activate_ret;
}

static void fd_queue_notify(void *dev, unsigned q)
{
	struct fake_dev *d = dev;

	assert_true(q < 2);
	__atomic_add_fetch(&d->notifies[q], 1, __ATOMIC_SEQ_CST);
	if (d->garbage_on_notify)
		virtio_mmio_set_needs_reset(d->t);
	if (d->push_on_notify) {
		virtq_push(&d->vqs[q], 0, 0);
		virtio_mmio_notify_used(d->t, &d->vqs[q]);
	}
	if (d->yields) {
		d->yields--;
		virtio_mmio_queue_yield(d->t, q);
	}
}

static void fd_reset(void *dev)
{
	((struct fake_dev *)dev)->resets++;
}

static void fd_quiesce(void *dev)
{
	((struct fake_dev *)dev)->quiesced++;
}

static void fd_destroy(void *dev)
{
	((struct fake_dev *)dev)->destroyed++;
}

/* Snapshots.  The fake device saves no record of its own: it counts the calls, and its restore
 * can be told to refuse. */
static int fd_save(void *dev, struct snap_writer *w, const char *id)
{
	struct fake_dev *d = dev;

	d->saves++;
	snprintf(d->saved_id, sizeof(d->saved_id), "%s", id);
	return 0;
}

static int fd_restore(void *dev, const struct snap_file *f, const char *id)
{
	struct fake_dev *d = dev;

	d->restores++;
	snprintf(d->restored_id, sizeof(d->restored_id), "%s", id);
	return d->restore_ret;
}

static const struct virtio_device_ops fake_ops = {
	.name = "virtio-fake",
	.device_id = 42,
	.num_queues = 2,
	.queue_max_size = QMAX,
	.features = fd_features,
	.config_read = fd_config_read,
	.config_write = fd_config_write,
	.activate = fd_activate,
	.queue_notify = fd_queue_notify,
	.reset = fd_reset,
	.quiesce = fd_quiesce,
	.save = fd_save,
	.restore = fd_restore,
	.rec = { 200, 1 }, /* declared as a device with save must; a type no real device has */
	.destroy = fd_destroy,
};

struct fixture {
	struct fake_mem mem;
	struct irq_line irq;
	struct fake_dev dev;
	struct virtio_mmio *t;
};

static int setup(void **state)
{
	struct fixture *x = calloc(1, sizeof(*x));

	fake_mem_init(&x->mem, RAM_SIZE);
	x->irq.fd = -1;
	for (unsigned i = 0; i < sizeof(x->dev.config); i++)
		x->dev.config[i] = (uint8_t)(0x10 + i);
	assert_int_equal(virtio_mmio_create(&x->mem.gm, &x->irq, &fake_ops, &x->dev, &x->t), 0);
	*state = x;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *x = *state;

	virtio_mmio_destroy(x->t);
	assert_int_equal(x->dev.destroyed, 1);
	fake_mem_free(&x->mem);
	free(x);
	return 0;
}

/* Program queue q with rings at base + the standard offsets; returns QueueReady. */
static uint32_t setup_queue(struct virtio_mmio *t, uint32_t q, uint32_t num, uint64_t base)
{
	fdrv_wr(t, VIRTIO_MMIO_QUEUE_SEL, q);
	fdrv_wr(t, VIRTIO_MMIO_QUEUE_NUM, num);
	fdrv_wr(t, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)(base + DESC_GPA));
	fdrv_wr(t, VIRTIO_MMIO_QUEUE_DESC_HIGH, (uint32_t)((base + DESC_GPA) >> 32));
	fdrv_wr(t, VIRTIO_MMIO_QUEUE_AVAIL_LOW, (uint32_t)(base + AVAIL_GPA));
	fdrv_wr(t, VIRTIO_MMIO_QUEUE_AVAIL_HIGH, (uint32_t)((base + AVAIL_GPA) >> 32));
	fdrv_wr(t, VIRTIO_MMIO_QUEUE_USED_LOW, (uint32_t)(base + USED_GPA));
	fdrv_wr(t, VIRTIO_MMIO_QUEUE_USED_HIGH, (uint32_t)((base + USED_GPA) >> 32));
	fdrv_wr(t, VIRTIO_MMIO_QUEUE_READY, 1);
	return fdrv_rd(t, VIRTIO_MMIO_QUEUE_READY);
}

static void negotiate(struct virtio_mmio *t, uint64_t features)
{
	fdrv_wr(t, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
	fdrv_wr(t, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	fdrv_wr(t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	fdrv_wr(t, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)features);
	fdrv_wr(t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	fdrv_wr(t, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(features >> 32));
	fdrv_wr(t, VIRTIO_MMIO_STATUS,
		VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
}

/* The whole §3.1.1 initialisation: features, both queues, DRIVER_OK. */
static void bring_up(struct virtio_mmio *t, uint64_t features)
{
	negotiate(t, features);
	assert_int_equal(setup_queue(t, 0, QMAX, 0), 1);
	assert_int_equal(setup_queue(t, 1, 8, 0x10000), 1);
	fdrv_wr(t, VIRTIO_MMIO_STATUS,
		VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
			VIRTIO_STATUS_DRIVER_OK);
}

static void test_identity(void **state)
{
	struct fixture *x = *state;

	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_MAGIC_VALUE), 0x74726976);
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_VERSION), 2);
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_DEVICE_ID), 42);
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_VENDOR_ID), VIRTIO_MMIO_VENDOR);
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_STATUS), 0);
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_CONFIG_GENERATION), 0);
	/* Write-only and reserved registers read 0. */
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_QUEUE_NUM), 0);
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_QUEUE_NOTIFY), 0);
	assert_int_equal(fdrv_rd(x->t, 0x0f0), 0);
	/* Writes to read-only registers change nothing. */
	fdrv_wr(x->t, VIRTIO_MMIO_MAGIC_VALUE, 0);
	fdrv_wr(x->t, VIRTIO_MMIO_DEVICE_ID, 7);
	fdrv_wr(x->t, VIRTIO_MMIO_INTERRUPT_STATUS, 3);
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_MAGIC_VALUE), 0x74726976);
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_DEVICE_ID), 42);
}

static void test_register_widths(void **state)
{
	struct fixture *x = *state;
	const struct dev_ops *o = &virtio_mmio_dev_ops;

	assert_int_equal(o->sizes, BUS_SZ_ANY);
	/* Registers below 0x100 are 32-bit only (§4.2.2.2): other widths read 0. */
	assert_int_equal(o->read(x->t, VIRTIO_MMIO_MAGIC_VALUE, 1), 0);
	assert_int_equal(o->read(x->t, VIRTIO_MMIO_MAGIC_VALUE, 2), 0);
	assert_int_equal(o->read(x->t, VIRTIO_MMIO_MAGIC_VALUE, 8), 0);
	assert_int_equal(o->read(x->t, VIRTIO_MMIO_MAGIC_VALUE + 1, 4), 0);
	/* ... and other widths are ignored on write. */
	o->write(x->t, VIRTIO_MMIO_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE);
	o->write(x->t, VIRTIO_MMIO_STATUS, 2, VIRTIO_STATUS_ACKNOWLEDGE);
	o->write(x->t, VIRTIO_MMIO_STATUS, 8, VIRTIO_STATUS_ACKNOWLEDGE);
	o->write(x->t, VIRTIO_MMIO_STATUS + 2, 4, VIRTIO_STATUS_ACKNOWLEDGE);
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_STATUS), 0);
	fdrv_wr(x->t, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_STATUS), VIRTIO_STATUS_ACKNOWLEDGE);
}

static void test_device_features_select(void **state)
{
	struct fixture *x = *state;

	fdrv_wr(x->t, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_DEVICE_FEATURES), (uint32_t)FEATURES);
	fdrv_wr(x->t, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_DEVICE_FEATURES), (uint32_t)(FEATURES >> 32));
	/* Out-of-range selectors read 0 and never index anything. */
	fdrv_wr(x->t, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 2);
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_DEVICE_FEATURES), 0);
	fdrv_wr(x->t, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0xffffffffu);
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_DEVICE_FEATURES), 0);
	fdrv_wr(x->t, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0x80000000u);
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_DEVICE_FEATURES), 0);
}

static void test_driver_features_select(void **state)
{
	struct fixture *x = *state;

	/* Selector 2+ writes are dropped: the garbage in the high word never lands. */
	fdrv_wr(x->t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 7);
	fdrv_wr(x->t, VIRTIO_MMIO_DRIVER_FEATURES, 0xffffffffu);
	fdrv_wr(x->t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0xffffffffu);
	fdrv_wr(x->t, VIRTIO_MMIO_DRIVER_FEATURES, 0xffffffffu);
	bring_up(x->t, FEATURES);
	assert_int_equal(x->dev.activations, 1);
	assert_int_equal(x->dev.act_features, FEATURES);
}

static void test_features_ok_rules(void **state)
{
	struct fixture *x = *state;
	uint32_t s;

	/* Without VERSION_1: refused (modern-only transport). */
	negotiate(x->t, VIRTIO_BIT(FEAT_X));
	s = fdrv_rd(x->t, VIRTIO_MMIO_STATUS);
	assert_int_equal(s, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	fdrv_wr(x->t, VIRTIO_MMIO_STATUS, 0);
	/* A feature the device never offered: refused. */
	negotiate(x->t, VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(5));
	assert_false(fdrv_rd(x->t, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_FEATURES_OK);
	fdrv_wr(x->t, VIRTIO_MMIO_STATUS, 0);
	negotiate(x->t, VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(40));
	assert_false(fdrv_rd(x->t, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_FEATURES_OK);
	fdrv_wr(x->t, VIRTIO_MMIO_STATUS, 0);
	/* A subset with VERSION_1: kept. */
	negotiate(x->t, VIRTIO_BIT(VIRTIO_F_VERSION_1));
	assert_true(fdrv_rd(x->t, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_FEATURES_OK);
	/* Features are frozen after FEATURES_OK. */
	fdrv_wr(x->t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	fdrv_wr(x->t, VIRTIO_MMIO_DRIVER_FEATURES, VIRTIO_BIT(FEAT_X));
	assert_int_equal(setup_queue(x->t, 0, QMAX, 0), 1);
	fdrv_wr(x->t, VIRTIO_MMIO_STATUS, 0x0f);
	assert_int_equal(x->dev.act_features, VIRTIO_BIT(VIRTIO_F_VERSION_1));
}

static void test_driver_ok_needs_features_ok(void **state)
{
	struct fixture *x = *state;

	fdrv_wr(x->t, VIRTIO_MMIO_STATUS,
		VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_DRIVER_OK);
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_STATUS),
			 VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	assert_int_equal(x->dev.activations, 0);
}

static void test_status_bits_only_added(void **state)
{
	struct fixture *x = *state;

	fdrv_wr(x->t, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	fdrv_wr(x->t, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_STATUS),
			 VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	/* The driver cannot set DEVICE_NEEDS_RESET. */
	fdrv_wr(x->t, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_DEVICE_NEEDS_RESET | VIRTIO_STATUS_FAILED);
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_STATUS),
			 VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FAILED);
}

static void test_queue_sel_out_of_range(void **state)
{
	struct fixture *x = *state;

	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_SEL, 0);
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_QUEUE_NUM_MAX), QMAX);
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_SEL, 1);
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_QUEUE_NUM_MAX), QMAX);
	for (uint32_t sel = 2; sel != 0; sel = sel < 64 ? sel + 1 : (sel << 1)) {
		assert_int_equal(setup_queue(x->t, sel, 8, 0), 0);
		assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_QUEUE_NUM_MAX), 0);
		assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_QUEUE_READY), 0);
	}
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_SEL, 0xffffffffu);
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_QUEUE_NUM_MAX), 0);
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_SEL, 0);
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_QUEUE_READY), 0);
}

static void test_queue_ready_rules(void **state)
{
	struct fixture *x = *state;

	assert_int_equal(setup_queue(x->t, 0, 0, 0), 0);		 /* zero */
	assert_int_equal(setup_queue(x->t, 0, 12, 0), 0);		 /* not a power of two */
	assert_int_equal(setup_queue(x->t, 0, QMAX * 2, 0), 0);		 /* above QueueNumMax */
	assert_int_equal(setup_queue(x->t, 0, 0x10000 | 8, 0), 0);	 /* 16-bit truncation */
	assert_int_equal(setup_queue(x->t, 0, 8, RAM_SIZE), 0);		 /* outside RAM */
	assert_int_equal(setup_queue(x->t, 0, 8, RAM_SIZE - 0x3010), 0); /* used ring off the end */
	assert_int_equal(setup_queue(x->t, 0, 8, 1ull << 32), 0);	 /* high half */
	assert_int_equal(setup_queue(x->t, 0, 8, 0xfffffffffff00000ull), 0);
	assert_int_equal(setup_queue(x->t, 0, 8, 8), 0); /* desc not 16-aligned */
	assert_int_equal(setup_queue(x->t, 0, 8, 1), 0); /* avail not 2-aligned */
	assert_int_equal(setup_queue(x->t, 0, 8, 2), 0); /* used not 4-aligned */
	assert_int_equal(setup_queue(x->t, 0, 1, 0), 1);
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_READY, 0);
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_QUEUE_READY), 0);
	assert_int_equal(setup_queue(x->t, 0, QMAX, 0), 1);
}

static void test_queue_regs_frozen_while_ready(void **state)
{
	struct fixture *x = *state;

	assert_int_equal(setup_queue(x->t, 0, 8, 0), 1);
	/* §4.2.3.2: while ready, size and addresses cannot change under the device. */
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NUM, 3);
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_DESC_LOW, RAM_SIZE);
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_USED_HIGH, 1);
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_READY, 0);
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_READY, 1);
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_QUEUE_READY), 1);
}

static void test_config_space(void **state)
{
	struct fixture *x = *state;
	const struct dev_ops *o = &virtio_mmio_dev_ops;

	/* Byte by byte, as Linux reads multi-byte fields (§4.2.2.2). */
	for (unsigned i = 0; i < 12; i++)
		assert_int_equal(o->read(x->t, VIRTIO_MMIO_CONFIG + i, 1), 0x10 + i);
	assert_int_equal(o->read(x->t, VIRTIO_MMIO_CONFIG + 1, 2), 0x1211);
	assert_int_equal(o->read(x->t, VIRTIO_MMIO_CONFIG + 4, 4), 0x17161514);
	assert_int_equal(o->read(x->t, VIRTIO_MMIO_CONFIG + 3, 4), 0x16151413); /* unaligned */
	assert_int_equal(o->read(x->t, VIRTIO_MMIO_CONFIG, 8), 0x1716151413121110ull);
	/* Past the device's config: zeros, partially and wholly. */
	assert_int_equal(o->read(x->t, VIRTIO_MMIO_CONFIG + 10, 4), 0x1b1a);
	assert_int_equal(o->read(x->t, VIRTIO_MMIO_CONFIG + 12, 4), 0);
	assert_int_equal(o->read(x->t, VIRTIO_MMIO_WINDOW - 1, 1), 0);
	/* Writes reach the device with the offset inside its config space. */
	o->write(x->t, VIRTIO_MMIO_CONFIG + 5, 1, 0xab);
	assert_int_equal(x->dev.cfg_write_off, 5);
	assert_int_equal(x->dev.cfg_write_size, 1);
	assert_int_equal(x->dev.cfg_write_val, 0xab);
	o->write(x->t, VIRTIO_MMIO_CONFIG + 8, 2, 0x1234);
	assert_int_equal(x->dev.cfg_write_off, 8);
	assert_int_equal(x->dev.cfg_write_size, 2);
}

static void test_activate_and_reset(void **state)
{
	struct fixture *x = *state;

	bring_up(x->t, FEATURES);
	assert_int_equal(x->dev.activations, 1);
	assert_int_equal(x->dev.act_features, FEATURES);
	assert_true(x->dev.vqs[0].ready);
	assert_true(x->dev.vqs[0].event_idx);
	assert_int_equal(x->dev.vqs[0].size, QMAX);
	assert_int_equal(x->dev.vqs[1].size, 8);
	assert_int_equal(x->dev.vqs[1].desc_gpa, 0x10000 + DESC_GPA);
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_STATUS), 0x0f);
	/* A second DRIVER_OK write does not activate again. */
	fdrv_wr(x->t, VIRTIO_MMIO_STATUS, 0x0f);
	assert_int_equal(x->dev.activations, 1);

	/* §2.4: writing 0 resets everything. */
	fdrv_wr(x->t, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	fdrv_wr(x->t, VIRTIO_MMIO_STATUS, 0);
	assert_int_equal(x->dev.resets, 1);
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_STATUS), 0);
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_DEVICE_FEATURES), (uint32_t)FEATURES);
	for (uint32_t q = 0; q < 2; q++) {
		fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_SEL, q);
		assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_QUEUE_READY), 0);
		assert_false(x->dev.vqs[q].ready);
	}
	/* The queue size was forgotten too. */
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_SEL, 0);
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_READY, 1);
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_QUEUE_READY), 0);
	/* And it comes up again. */
	bring_up(x->t, FEATURES);
	assert_int_equal(x->dev.activations, 2);
	/* The device manager's reset does the same. */
	virtio_mmio_dev_ops.reset(x->t);
	assert_int_equal(x->dev.resets, 2);
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_STATUS), 0);
	virtio_mmio_quiesce(x->t);
	assert_int_equal(x->dev.quiesced, 1);
}

static void test_notify_direct(void **state)
{
	struct fixture *x = *state;

	/* Before DRIVER_OK nothing reaches the device. */
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(x->dev.notifies[0], 0);
	/* Activation runs each ready queue once (see test_kick_before_driver_ok). */
	bring_up(x->t, FEATURES);
	assert_int_equal(x->dev.notifies[0], 1);
	assert_int_equal(x->dev.notifies[1], 1);
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 1);
	assert_int_equal(x->dev.notifies[1], 2);
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(x->dev.notifies[0], 2);
	/* Nonexistent queues are ignored. */
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 2);
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 0xffffffffu);
	assert_int_equal(x->dev.notifies[0] + x->dev.notifies[1], 4);
	/* A queue the driver disabled is not handed to the device. */
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_SEL, 1);
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_READY, 0);
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 1);
	assert_int_equal(x->dev.notifies[1], 2);
}

/* A device that used up its budget (VIRTIO_QUEUE_BUDGET) yields: without an event loop the
 * transport runs the queue again right away, until the device stops yielding, bounded. */
static void test_yield_direct(void **state)
{
	struct fixture *x = *state;

	bring_up(x->t, FEATURES);
	assert_int_equal(x->dev.notifies[0], 1);
	x->dev.yields = 3;
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(x->dev.notifies[0], 5);
	/* A device that always yields does not hang the caller. */
	x->dev.yields = UINT32_MAX;
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_true(x->dev.notifies[0] > 5 && x->dev.notifies[0] < 5 + 1024);
	/* Yielding a queue the device does not have is ignored. */
	virtio_mmio_queue_yield(x->t, 7);
}

/* A kick before DRIVER_OK (Linux's balloon driver kicks its stats queue then) is not lost:
 * the transport runs every ready queue once when the device is activated, and only then. */
static void test_kick_before_driver_ok(void **state)
{
	struct fixture *x = *state;

	x->dev.push_on_notify = true;
	negotiate(x->t, FEATURES);
	assert_int_equal(setup_queue(x->t, 0, QMAX, 0), 1);
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 1); /* not ready yet */
	/* §3.1.1: the device uses no buffer and sends no notification before DRIVER_OK. */
	assert_int_equal(x->dev.notifies[0], 0);
	assert_int_equal(x->dev.notifies[1], 0);
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	assert_int_equal(x->irq.count, 0);
	fdrv_wr(x->t, VIRTIO_MMIO_STATUS,
		VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
			VIRTIO_STATUS_DRIVER_OK);
	/* Activated first (the device sees its queues), then queue 0 ran: its used buffer is
	 * signalled.  Queue 1 was never made ready, so it is not run. */
	assert_int_equal(x->dev.activations, 1);
	assert_int_equal(x->dev.notifies[0], 1);
	assert_int_equal(x->dev.notifies[1], 0);
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_INT_USED);
	assert_int_equal(x->irq.count, 1);

	/* A failed activation runs nothing. */
	fdrv_wr(x->t, VIRTIO_MMIO_STATUS, 0);
	x->dev.activate_ret = -EINVAL;
	negotiate(x->t, FEATURES);
	assert_int_equal(setup_queue(x->t, 0, QMAX, 0), 1);
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	fdrv_wr(x->t, VIRTIO_MMIO_STATUS, 0x0f);
	assert_int_equal(x->dev.activations, 2);
	assert_int_equal(x->dev.notifies[0], 1);
	assert_true(fdrv_rd(x->t, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
}

/* The line is level-triggered: it is asserted whenever a status bit is set and, at each EOI
 * (irq_resample, what the VM calls when KVM signals the resample eventfd), again while
 * InterruptStatus is nonzero; it stays low once the driver acknowledged every bit. */
static void test_level_follows_interrupt_status(void **state)
{
	struct fixture *x = *state;
	int efd = eventfd(0, EFD_NONBLOCK);
	uint64_t v;

	assert_true(efd >= 0);
	assert_true(x->irq.level_high != NULL); /* the transport is the line's level source */
	x->irq.fd = efd;
	bring_up(x->t, VIRTIO_BIT(VIRTIO_F_VERSION_1));
	x->dev.push_on_notify = true;
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_INT_USED);
	assert_int_equal(read(efd, &v, sizeof(v)), sizeof(v)); /* asserted through the irqfd */
	assert_int_equal(v, 1);
	/* EOI without an ACK (a handler that ran before the status was set): asserted again. */
	irq_resample(&x->irq);
	assert_int_equal(read(efd, &v, sizeof(v)), sizeof(v));
	/* A new bit while the status is already nonzero still writes the irqfd. */
	virtio_mmio_config_changed(x->t);
	assert_int_equal(read(efd, &v, sizeof(v)), sizeof(v));
	assert_int_equal(x->irq.count, 3);
	/* Some bits acknowledged: the EOI re-asserts. */
	fdrv_wr(x->t, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_INT_USED);
	irq_resample(&x->irq);
	assert_int_equal(read(efd, &v, sizeof(v)), sizeof(v));
	assert_int_equal(x->irq.count, 4);
	/* All acknowledged: the line stays low. */
	fdrv_wr(x->t, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_INT_CONFIG);
	irq_resample(&x->irq);
	assert_int_equal(read(efd, &v, sizeof(v)), -1);
	assert_int_equal(x->irq.count, 4);
	/* A reset clears the status, and with it the level. */
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(read(efd, &v, sizeof(v)), sizeof(v));
	fdrv_wr(x->t, VIRTIO_MMIO_STATUS, 0);
	irq_resample(&x->irq);
	assert_int_equal(read(efd, &v, sizeof(v)), -1);
	x->irq.fd = -1;
	close(efd);
}

/* Completions pushed before a chain broke the queue are still signalled (§2.7.7.2 does not
 * apply to a queue whose rings the device no longer trusts). */
static void test_used_signalled_when_queue_breaks(void **state)
{
	struct fixture *x = *state;

	bring_up(x->t, FEATURES);
	/* The driver asks for no interrupts; a broken queue signals what it used anyway. */
	*(uint16_t *)fake_mem_ptr(&x->mem, AVAIL_GPA, 2) = VIRTQ_AVAIL_F_NO_INTERRUPT;
	virtq_push(&x->dev.vqs[0], 0, 0);
	x->dev.vqs[0].broken = true; /* as virtq_pop leaves it after a malformed chain */
	virtio_mmio_set_needs_reset(x->t);
	virtio_mmio_notify_used(x->t, &x->dev.vqs[0]);
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_INTERRUPT_STATUS),
			 VIRTIO_INT_USED | VIRTIO_INT_CONFIG);
	assert_int_equal(x->irq.count, 2);
	/* Nothing new: no second one. */
	fdrv_wr(x->t, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_INT_USED);
	virtio_mmio_notify_used(x->t, &x->dev.vqs[0]);
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_INT_CONFIG);
	assert_int_equal(x->irq.count, 2);
}

static void test_interrupts(void **state)
{
	struct fixture *x = *state;

	bring_up(x->t, VIRTIO_BIT(VIRTIO_F_VERSION_1));
	x->dev.push_on_notify = true;
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_INT_USED);
	assert_int_equal(x->irq.count, 1);
	virtio_mmio_config_changed(x->t);
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_INTERRUPT_STATUS),
			 VIRTIO_INT_USED | VIRTIO_INT_CONFIG);
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_CONFIG_GENERATION), 1);
	assert_int_equal(x->irq.count, 2);
	fdrv_wr(x->t, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_INT_USED);
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_INT_CONFIG);
	fdrv_wr(x->t, VIRTIO_MMIO_INTERRUPT_ACK, 0xffffffffu);
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	/* Driver suppressed interrupts (§2.7.7): used buffer, but no edge. */
	*(uint16_t *)fake_mem_ptr(&x->mem, AVAIL_GPA, 2) = VIRTQ_AVAIL_F_NO_INTERRUPT;
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(x->dev.notifies[0], 3); /* activation, two kicks */
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	assert_int_equal(x->irq.count, 2);
}

static void test_needs_reset(void **state)
{
	struct fixture *x = *state;

	bring_up(x->t, FEATURES);
	x->dev.garbage_on_notify = true;
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(x->dev.notifies[0], 2); /* activation, the kick */
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_STATUS),
			 0x0f | VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_INT_CONFIG);
	assert_int_equal(x->irq.count, 1);
	/* Stopped: no more queue work, no second interrupt for the same condition. */
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 1);
	assert_int_equal(x->dev.notifies[0] + x->dev.notifies[1], 3);
	virtio_mmio_set_needs_reset(x->t);
	assert_int_equal(x->irq.count, 1);
	/* Only a reset clears it. */
	fdrv_wr(x->t, VIRTIO_MMIO_STATUS, 0x0f);
	assert_true(virtio_mmio_status(x->t) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	fdrv_wr(x->t, VIRTIO_MMIO_STATUS, 0);
	assert_int_equal(virtio_mmio_status(x->t), 0);
	x->dev.garbage_on_notify = false;
	bring_up(x->t, FEATURES);
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(x->dev.notifies[0], 4);
}

static void test_activate_failure(void **state)
{
	struct fixture *x = *state;

	x->dev.activate_ret = -EINVAL;
	bring_up(x->t, FEATURES);
	assert_true(fdrv_rd(x->t, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_INT_CONFIG);
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(x->dev.notifies[0], 0);
}

static void test_create_rejects_bad_ops(void **state)
{
	struct virtio_device_ops ops = fake_ops;
	struct virtio_mmio *t;

	(void)state;
	ops.num_queues = 0;
	assert_int_equal(virtio_mmio_create(NULL, NULL, &ops, NULL, &t), -EINVAL);
	ops.num_queues = VIRTIO_MAX_QUEUES + 1;
	assert_int_equal(virtio_mmio_create(NULL, NULL, &ops, NULL, &t), -EINVAL);
	ops = fake_ops;
	ops.queue_max_size = 100;
	assert_int_equal(virtio_mmio_create(NULL, NULL, &ops, NULL, &t), -EINVAL);
}

/* Through the device manager: bus dispatch, describe, unwinding. */
static void test_add_and_describe(void **state)
{
	struct fake_mem mem;
	struct fake_dev dev = { 0 }, dev2 = { 0 };
	struct devmgr dm;
	struct virtio_mmio *t, *t2;
	struct dm_describe ctx;
	char cmdline[256] = "console=ttyS0";
	struct aml a;
	uint32_t v;

	(void)state;
	fake_mem_init(&mem, RAM_SIZE);
	devmgr_init(&dm, &mem.gm, NULL, NULL);
	assert_int_equal(virtio_mmio_add(&dm, "virtio-fake0", &fake_ops, &dev, &t), 0);
	assert_int_equal(virtio_mmio_add(&dm, "virtio-fake1", &fake_ops, &dev2, &t2), 0);
	assert_int_equal(dm.nr_devs, 2);
	assert_int_equal(dm.devs[0]->len, 0x1000);
	assert_true(dm.devs[0]->has_irq);
	assert_true(bus_read(&dm.mmio, dm.devs[1]->base, &v, 4));
	assert_int_equal(v, 0x74726976);
	/* Through the bus, config space bytes work too. */
	assert_true(bus_read(&dm.mmio, dm.devs[0]->base + 0x100, &v, 1));

	/* Failure unwinds: duplicate id, bad ops; the device stays the caller's. */
	assert_int_not_equal(virtio_mmio_add(&dm, "virtio-fake0", &fake_ops, &dev, &t), 0);
	{
		struct virtio_device_ops bad = fake_ops;

		bad.num_queues = 0;
		assert_int_equal(virtio_mmio_add(&dm, "virtio-bad", &bad, &dev, &t), -EINVAL);
	}
	assert_int_equal(dm.nr_devs, 2);
	assert_int_equal(dev.destroyed, 0);

	aml_init(&a);
	ctx = (struct dm_describe){ .dsdt = &a,
				    .cmdline = cmdline,
				    .cmdline_size = sizeof(cmdline) };
	assert_int_equal(devmgr_describe(&dm, &ctx), 0);
	assert_string_equal(cmdline, "console=ttyS0 virtio_mmio.device=4K@0xc0000000:5"
				     " virtio_mmio.device=4K@0xc0001000:6");
	assert_non_null(memmem(a.buf, a.len, "V000", 4));
	assert_non_null(memmem(a.buf, a.len, "V001", 4));
	assert_non_null(memmem(a.buf, a.len, "LNRO0005", 8));
	aml_free(&a);
	/* No ACPI, no command line: nothing to do. */
	ctx = (struct dm_describe){ 0 };
	assert_int_equal(devmgr_describe(&dm, &ctx), 0);
	/* A command line that is too short: an error, not an overflow. */
	cmdline[0] = '\0';
	ctx = (struct dm_describe){ .cmdline = cmdline, .cmdline_size = 20 };
	assert_int_equal(devmgr_describe(&dm, &ctx), -ENOSPC);

	devmgr_destroy(&dm);
	assert_int_equal(dev.destroyed, 1);
	assert_int_equal(dev2.destroyed, 1);
	fake_mem_free(&mem);
}

/* With a VM: ioeventfds registered at DRIVER_OK, notifications on the event-loop thread. */
struct ioev_rec {
	int assigned;
	uint64_t addr[4], datamatch[4];
	unsigned len[4];
	int nr;
};

static int fake_ioeventfd(void *ctx, uint64_t addr, unsigned len, uint64_t datamatch, int fd,
			  bool assign)
{
	struct ioev_rec *r = ctx;

	if (assign && r->nr < 4) {
		r->addr[r->nr] = addr;
		r->len[r->nr] = len;
		r->datamatch[r->nr] = datamatch;
		r->nr++;
	}
	r->assigned += assign ? 1 : -1;
	return 0;
}

static void *loop_thread(void *arg)
{
	return (void *)(intptr_t)evloop_run(arg);
}

static bool wait_for(unsigned *counter, unsigned want)
{
	for (int i = 0; i < 2000; i++) {
		if (__atomic_load_n(counter, __ATOMIC_SEQ_CST) >= want)
			return true;
		nanosleep(&(struct timespec){ .tv_nsec = 1000000 }, NULL);
	}
	return false;
}

static void test_event_loop_path(void **state)
{
	struct ioev_rec rec = { 0 };
	struct devmgr_hooks hooks = { .ctx = &rec, .ioeventfd = fake_ioeventfd };
	struct fake_mem mem;
	struct fake_dev dev = { 0 };
	struct devmgr dm;
	struct evloop ev;
	struct virtio_mmio *t;
	pthread_t th;
	uint32_t q1 = 1;

	(void)state;
	fake_mem_init(&mem, RAM_SIZE);
	assert_int_equal(evloop_init(&ev), 0);
	devmgr_init(&dm, &mem.gm, &ev, &hooks);
	assert_int_equal(virtio_mmio_add(&dm, "virtio-fake0", &fake_ops, &dev, &t), 0);
	assert_int_equal(pthread_create(&th, NULL, loop_thread, &ev), 0);
	bring_up(t, FEATURES);
	assert_int_equal(rec.assigned, 2);
	assert_int_equal(rec.addr[0], dm.devs[0]->base + VIRTIO_MMIO_QUEUE_NOTIFY);
	assert_int_equal(rec.len[0], 4);
	assert_int_equal(rec.datamatch[0], 0);
	assert_int_equal(rec.datamatch[1], 1);
	/* Activation runs each ready queue once, on the event loop. */
	assert_true(wait_for(&dev.notifies[0], 1));
	assert_true(wait_for(&dev.notifies[1], 1));
	/* QueueNotify writes that still exit are forwarded to the event loop. */
	assert_true(bus_write(&dm.mmio, dm.devs[0]->base + VIRTIO_MMIO_QUEUE_NOTIFY, &q1, 4));
	assert_true(wait_for(&dev.notifies[1], 2));
	/* A yield re-arms the queue's kick eventfd: the loop runs the queue again by itself
	 * (the kick is written after `yields`, so the loop thread sees it). */
	dev.yields = 2;
	assert_true(bus_write(&dm.mmio, dm.devs[0]->base + VIRTIO_MMIO_QUEUE_NOTIFY, &q1, 4));
	assert_true(wait_for(&dev.notifies[1], 5));
	/* Reset tears the ioeventfds down. */
	fdrv_wr(t, VIRTIO_MMIO_STATUS, 0);
	assert_int_equal(rec.assigned, 0);
	evloop_stop(&ev);
	pthread_join(th, NULL);
	devmgr_destroy(&dm);
	assert_int_equal(dev.destroyed, 1);
	evloop_destroy(&ev);
	fake_mem_free(&mem);
}

/* A second transport over the fixture's memory, with its own fake device and line. */
struct peer {
	struct irq_line irq;
	struct fake_dev dev;
	struct virtio_mmio *t;
};

static void peer_create(struct fixture *x, struct peer *p)
{
	memset(p, 0, sizeof(*p));
	p->irq.fd = -1;
	assert_int_equal(virtio_mmio_create(&x->mem.gm, &p->irq, &fake_ops, &p->dev, &p->t), 0);
}

static void peer_destroy(struct peer *p)
{
	virtio_mmio_destroy(p->t);
	assert_int_equal(p->dev.destroyed, 1);
}

/* Quiesce and save transport `t` as `id` into `w` (a finished file), parsed into `f`. */
static void save_to(struct virtio_mmio *t, const char *id, struct snap_writer *w,
		    struct snap_file *f)
{
	char why[128];

	snap_writer_init(w);
	virtio_mmio_dev_ops.quiesce(t);
	assert_int_equal(virtio_mmio_dev_ops.save(t, w, id), 0);
	assert_int_equal(snap_writer_finish(w), 0);
	assert_int_equal(snap_file_parse(f, w->buf, w->len, why, sizeof(why)), 0);
}

/* The transport record's payload, as saved. */
static void record_of(const struct snap_file *f, const char *id, const uint8_t **p, size_t *len)
{
	struct snap_reader r;

	assert_int_equal(snap_file_find(f, SNAP_REC_VIRTIO_MMIO, id, &r), 0);
	assert_int_equal(r.version, 1);
	*p = r.p;
	*len = r.len;
}

/* Two transports whose saved records are byte for byte the same are in the same state. */
static void assert_same_state(struct virtio_mmio *a, struct virtio_mmio *b)
{
	struct snap_writer wa, wb;
	struct snap_file fa, fb;
	const uint8_t *pa, *pb;
	size_t la, lb;

	snap_writer_init(&wa);
	snap_writer_init(&wb);
	assert_int_equal(virtio_mmio_dev_ops.save(a, &wa, "x"), 0);
	assert_int_equal(virtio_mmio_dev_ops.save(b, &wb, "x"), 0);
	assert_int_equal(snap_writer_finish(&wa), 0);
	assert_int_equal(snap_writer_finish(&wb), 0);
	assert_int_equal(snap_file_parse(&fa, wa.buf, wa.len, NULL, 0), 0);
	assert_int_equal(snap_file_parse(&fb, wb.buf, wb.len, NULL, 0), 0);
	record_of(&fa, "x", &pa, &la);
	record_of(&fb, "x", &pb, &lb);
	assert_int_equal(la, lb);
	assert_memory_equal(pa, pb, la);
	snap_writer_free(&wa);
	snap_writer_free(&wb);
}

/* A live device with queue progress, interrupts pending and odd selectors comes back with the
 * same registers, the same queue state, activated with the negotiated features, its queues run
 * once, and the next completion lands at the right used index. */
static void test_snapshot_round_trip(void **state)
{
	struct fixture *x = *state;
	struct fake_vq f;
	struct snap_writer w;
	struct snap_file file;
	struct peer p;
	uint32_t id, len;
	uint16_t heads[3];
	struct virtq_elem *e = malloc(sizeof(*e));

	bring_up(x->t, FEATURES);
	/* The driver's view of queue 0 (bring_up made it QMAX entries at DESC/AVAIL/USED). */
	f = (struct fake_vq){
		.mem = &x->mem, .size = QMAX, .desc = DESC_GPA, .avail = AVAIL_GPA, .used = USED_GPA
	};
	for (unsigned i = 0; i < 3; i++)
		heads[i] = fake_vq_add_chain(
			&f, &(struct fake_buf){ 0x20000 + 0x100 * i, 16, true }, 1);
	/* The device took all three and completed the first two; the third is still its own. */
	for (unsigned i = 0; i < 3; i++)
		assert_int_equal(virtq_pop(&x->dev.vqs[0], e), 1);
	virtq_push(&x->dev.vqs[0], heads[0], 1);
	virtq_push(&x->dev.vqs[0], heads[1], 2);
	virtio_mmio_notify_used(x->t, &x->dev.vqs[0]);
	virtio_mmio_config_changed(x->t);
	virtio_mmio_config_changed(x->t);
	fdrv_wr(x->t, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	fdrv_wr(x->t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 7);
	fdrv_wr(x->t, VIRTIO_MMIO_QUEUE_SEL, 1);
	fdrv_wr(x->t, VIRTIO_MMIO_SHM_SEL, 3);
	assert_int_equal(fdrv_rd(x->t, VIRTIO_MMIO_INTERRUPT_STATUS),
			 VIRTIO_INT_USED | VIRTIO_INT_CONFIG);
	assert_int_equal(x->dev.quiesced, 0);

	save_to(x->t, "virtio-fake0", &w, &file);
	assert_int_equal(x->dev.quiesced, 1);
	assert_int_equal(x->dev.saves, 1);
	assert_string_equal(x->dev.saved_id, "virtio-fake0");

	peer_create(x, &p);
	assert_int_equal(virtio_mmio_dev_ops.restore(p.t, &file, "virtio-fake0"), 0);
	assert_int_equal(p.dev.restores, 1);
	assert_string_equal(p.dev.restored_id, "virtio-fake0");
	/* Re-activated with the negotiated features; each ready queue run once. */
	assert_int_equal(p.dev.activations, 1);
	assert_int_equal(p.dev.act_features, FEATURES);
	assert_int_equal(p.dev.notifies[0], 1);
	assert_int_equal(p.dev.notifies[1], 1);
	/* The line is asserted for the bits the driver has not acknowledged. */
	assert_int_equal(p.irq.count, 1);
	assert_true(p.irq.level_high(p.irq.level_opaque));
	/* Registers. */
	assert_int_equal(fdrv_rd(p.t, VIRTIO_MMIO_STATUS), 0x0f);
	assert_int_equal(fdrv_rd(p.t, VIRTIO_MMIO_INTERRUPT_STATUS),
			 VIRTIO_INT_USED | VIRTIO_INT_CONFIG);
	assert_int_equal(fdrv_rd(p.t, VIRTIO_MMIO_CONFIG_GENERATION), 2);
	assert_int_equal(fdrv_rd(p.t, VIRTIO_MMIO_DEVICE_FEATURES), (uint32_t)(FEATURES >> 32));
	assert_int_equal(fdrv_rd(p.t, VIRTIO_MMIO_QUEUE_NUM_MAX), QMAX);
	assert_int_equal(fdrv_rd(p.t, VIRTIO_MMIO_QUEUE_READY), 1);
	fdrv_wr(p.t, VIRTIO_MMIO_QUEUE_SEL, 0);
	assert_int_equal(fdrv_rd(p.t, VIRTIO_MMIO_QUEUE_READY), 1);
	/* Queue state, with the ring features set again. */
	assert_int_equal(p.dev.vqs[0].size, QMAX);
	assert_int_equal(p.dev.vqs[0].desc_gpa, DESC_GPA);
	assert_int_equal(p.dev.vqs[0].avail_gpa, AVAIL_GPA);
	assert_int_equal(p.dev.vqs[0].used_gpa, USED_GPA);
	assert_int_equal(p.dev.vqs[0].last_avail, 3);
	assert_int_equal(p.dev.vqs[0].used_idx, 2);
	assert_true(p.dev.vqs[0].event_idx);
	assert_int_equal(p.dev.vqs[1].size, 8);
	assert_int_equal(p.dev.vqs[1].desc_gpa, 0x10000 + DESC_GPA);
	/* Same state all through (the queue selector restored above differs: put it back). */
	fdrv_wr(p.t, VIRTIO_MMIO_QUEUE_SEL, 1);
	assert_same_state(x->t, p.t);

	/* The new transport completes the chain that was in the device. */
	assert_true(fake_vq_get_used(&f, &id, &len));
	assert_int_equal(id, heads[0]);
	assert_true(fake_vq_get_used(&f, &id, &len));
	assert_int_equal(id, heads[1]);
	assert_false(fake_vq_get_used(&f, &id, &len));
	fake_vq_set_used_event(&f, 2); /* interrupt me for the next one */
	fdrv_wr(p.t, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_INT_USED | VIRTIO_INT_CONFIG);
	virtq_push(&p.dev.vqs[0], heads[2], 3);
	virtio_mmio_notify_used(p.t, &p.dev.vqs[0]);
	assert_int_equal(fake_vq_used_idx(&f), 3);
	assert_true(fake_vq_get_used(&f, &id, &len));
	assert_int_equal(id, heads[2]);
	assert_int_equal(len, 3);
	assert_int_equal(fdrv_rd(p.t, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_INT_USED);
	/* Nothing more was available: nothing more is popped. */
	assert_int_equal(virtq_pop(&p.dev.vqs[0], e), 0);
	/* The driver's reset reaches the new device. */
	fdrv_wr(p.t, VIRTIO_MMIO_STATUS, 0);
	assert_int_equal(p.dev.resets, 1);
	peer_destroy(&p);
	snap_writer_free(&w);
	free(e);
}

/* A device the driver is still setting up: no activation, and the half-written registers
 * (driver features, queue registers) are there to finish the job with. */
static void test_snapshot_mid_negotiation(void **state)
{
	struct fixture *x = *state;
	struct snap_writer w;
	struct snap_file file;
	struct peer p, p2;

	peer_create(x, &p);
	fdrv_wr(p.t, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	fdrv_wr(p.t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	fdrv_wr(p.t, VIRTIO_MMIO_DRIVER_FEATURES, 1); /* VERSION_1 */
	fdrv_wr(p.t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	fdrv_wr(p.t, VIRTIO_MMIO_DRIVER_FEATURES, VIRTIO_BIT(FEAT_X) | VIRTIO_BIT(5));
	/* Queue 1: size and rings written, not ready yet. */
	fdrv_wr(p.t, VIRTIO_MMIO_QUEUE_SEL, 1);
	fdrv_wr(p.t, VIRTIO_MMIO_QUEUE_NUM, 4);
	fdrv_wr(p.t, VIRTIO_MMIO_QUEUE_DESC_LOW, 0x40000);
	fdrv_wr(p.t, VIRTIO_MMIO_QUEUE_AVAIL_LOW, 0x41000);
	fdrv_wr(p.t, VIRTIO_MMIO_QUEUE_USED_LOW, 0x42000);
	save_to(p.t, "virtio-fake0", &w, &file);

	peer_create(x, &p2);
	assert_int_equal(virtio_mmio_dev_ops.restore(p2.t, &file, "virtio-fake0"), 0);
	assert_int_equal(p2.dev.activations, 0);
	assert_int_equal(p2.irq.count, 0);
	assert_int_equal(fdrv_rd(p2.t, VIRTIO_MMIO_STATUS),
			 VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	assert_int_equal(fdrv_rd(p2.t, VIRTIO_MMIO_QUEUE_READY), 0);
	assert_same_state(p.t, p2.t);
	/* The restored features include bit 5, never offered: FEATURES_OK is refused ... */
	fdrv_wr(p2.t, VIRTIO_MMIO_STATUS, 0x0b);
	assert_int_equal(fdrv_rd(p2.t, VIRTIO_MMIO_STATUS), 0x03);
	/* ... until the driver writes the low word again. */
	fdrv_wr(p2.t, VIRTIO_MMIO_DRIVER_FEATURES, VIRTIO_BIT(FEAT_X));
	fdrv_wr(p2.t, VIRTIO_MMIO_STATUS, 0x0b);
	assert_int_equal(fdrv_rd(p2.t, VIRTIO_MMIO_STATUS), 0x0b);
	/* The queue's registers came back: making it ready uses them. */
	fdrv_wr(p2.t, VIRTIO_MMIO_QUEUE_READY, 1);
	assert_int_equal(fdrv_rd(p2.t, VIRTIO_MMIO_QUEUE_READY), 1);
	assert_int_equal(setup_queue(p2.t, 0, QMAX, 0), 1);
	fdrv_wr(p2.t, VIRTIO_MMIO_STATUS, 0x0f);
	assert_int_equal(p2.dev.activations, 1);
	assert_int_equal(p2.dev.act_features, VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(FEAT_X));
	assert_int_equal(p2.dev.vqs[1].size, 4);
	assert_int_equal(p2.dev.vqs[1].desc_gpa, 0x40000);
	assert_int_equal(p2.dev.vqs[1].avail_gpa, 0x41000);
	assert_int_equal(p2.dev.vqs[1].used_gpa, 0x42000);
	peer_destroy(&p);
	peer_destroy(&p2);
	snap_writer_free(&w);
}

/* A device that needed a reset stays that way and is not activated again; its pending config
 * interrupt is asserted. */
static void test_snapshot_needs_reset(void **state)
{
	struct fixture *x = *state;
	struct snap_writer w;
	struct snap_file file;
	struct peer p, p2;

	peer_create(x, &p);
	bring_up(p.t, FEATURES);
	virtio_mmio_set_needs_reset(p.t);
	save_to(p.t, "virtio-fake0", &w, &file);
	peer_create(x, &p2);
	assert_int_equal(virtio_mmio_dev_ops.restore(p2.t, &file, "virtio-fake0"), 0);
	assert_int_equal(p2.dev.activations, 0);
	assert_int_equal(fdrv_rd(p2.t, VIRTIO_MMIO_STATUS),
			 0x0f | VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	assert_int_equal(fdrv_rd(p2.t, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_INT_CONFIG);
	assert_int_equal(p2.irq.count, 1);
	fdrv_wr(p2.t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(p2.dev.notifies[0], 0);
	/* The driver's reset and a new bring-up work as usual. */
	fdrv_wr(p2.t, VIRTIO_MMIO_STATUS, 0);
	bring_up(p2.t, FEATURES);
	assert_int_equal(p2.dev.activations, 1);
	assert_int_equal(p2.dev.notifies[0], 1);
	peer_destroy(&p);
	peer_destroy(&p2);
	snap_writer_free(&w);
}

/* Test-side encoder of the transport record (the layout mmio.c documents), to build records
 * with one field wrong.  Checked against the transport's own save first. */
struct rec_queue {
	uint32_t num;
	uint64_t desc, avail, used;
	bool ready;
	uint16_t last_avail, used_idx, signalled_used;
	bool signalled_valid, notify_off, broken;
};

struct rec {
	uint16_t version;
	const char *id;
	uint32_t device_id;
	uint64_t device_features, driver_features;
	uint32_t dsel, drsel, qsel, shmsel, status, int_status, generation, nr_queues;
	struct rec_queue q[4];
	int cut;    /* drop this many bytes from the end of the payload */
	bool extra; /* one byte too many */
};

/* What bring_up() leaves, plus progress on queue 0. */
static struct rec live_rec(void)
{
	return (struct rec){
		.version = 1,
		.id = "virtio-fake0",
		.device_id = 42,
		.device_features = FEATURES,
		.driver_features = FEATURES,
		.drsel = 1, /* as negotiate() leaves them */
		.qsel = 1,
		.status = 0x0f,
		.nr_queues = 2,
		.q = { { QMAX, DESC_GPA, AVAIL_GPA, USED_GPA, true, 5, 4, 4, true, false, false },
		       { 8, 0x10000 + DESC_GPA, 0x10000 + AVAIL_GPA, 0x10000 + USED_GPA, true } },
	};
}

static void encode(const struct rec *r, struct snap_writer *w, struct snap_file *f)
{
	struct snap_writer p;

	/* The payload first, so that it can be cut. */
	snap_writer_init(&p);
	snap_rec_begin(&p, SNAP_REC_VIRTIO_MMIO, r->version, r->id);
	snap_put_u32(&p, r->device_id);
	snap_put_u64(&p, r->device_features);
	snap_put_u64(&p, r->driver_features);
	snap_put_u32(&p, r->dsel);
	snap_put_u32(&p, r->drsel);
	snap_put_u32(&p, r->qsel);
	snap_put_u32(&p, r->shmsel);
	snap_put_u32(&p, r->status);
	snap_put_u32(&p, r->int_status);
	snap_put_u32(&p, r->generation);
	snap_put_u32(&p, r->nr_queues);
	for (unsigned i = 0; i < r->nr_queues && i < 4; i++) {
		const struct rec_queue *q = &r->q[i];

		snap_put_u32(&p, q->num);
		snap_put_u64(&p, q->desc);
		snap_put_u64(&p, q->avail);
		snap_put_u64(&p, q->used);
		snap_put_bool(&p, q->ready);
		snap_put_u16(&p, q->last_avail);
		snap_put_u16(&p, q->used_idx);
		snap_put_u16(&p, q->signalled_used);
		snap_put_bool(&p, q->signalled_valid);
		snap_put_bool(&p, q->notify_off);
		snap_put_bool(&p, q->broken);
	}
	if (r->extra)
		snap_put_u8(&p, 0);
	assert_int_equal(p.err, 0);
	snap_writer_init(w);
	snap_rec_begin(w, SNAP_REC_VIRTIO_MMIO, r->version, r->id);
	snap_put_bytes(w, p.buf + p.rec_start + SNAP_REC_HEADER,
		       p.len - p.rec_start - SNAP_REC_HEADER - (size_t)r->cut);
	assert_int_equal(snap_writer_finish(w), 0);
	assert_int_equal(snap_file_parse(f, w->buf, w->len, NULL, 0), 0);
	snap_writer_free(&p);
}

/* Restore `r` into a fresh transport: the result, with the transport checked untouched on
 * failure. */
static int try_restore(struct fixture *x, const struct rec *r)
{
	struct snap_writer w;
	struct snap_file file;
	struct peer p, pristine;
	int ret;

	encode(r, &w, &file);
	peer_create(x, &p);
	ret = virtio_mmio_dev_ops.restore(p.t, &file, "virtio-fake0");
	if (ret) {
		peer_create(x, &pristine);
		assert_same_state(p.t, pristine.t);
		assert_int_equal(fdrv_rd(p.t, VIRTIO_MMIO_STATUS), 0);
		assert_int_equal(fdrv_rd(p.t, VIRTIO_MMIO_QUEUE_READY), 0);
		assert_int_equal(p.dev.activations, 0);
		assert_int_equal(p.irq.count, 0);
		peer_destroy(&pristine);
	}
	peer_destroy(&p);
	snap_writer_free(&w);
	return ret;
}

static void test_snapshot_record_layout(void **state)
{
	struct fixture *x = *state;
	struct rec r = live_rec();
	struct snap_writer w, mine;
	struct snap_file file, fmine;
	struct virtq_elem *e = malloc(sizeof(*e));
	struct fake_vq f;
	const uint8_t *a, *b;
	size_t la, lb;
	struct peer p;

	peer_create(x, &p);
	bring_up(p.t, FEATURES);
	f = (struct fake_vq){
		.mem = &x->mem, .size = QMAX, .desc = DESC_GPA, .avail = AVAIL_GPA, .used = USED_GPA
	};
	for (unsigned i = 0; i < 5; i++) {
		fake_vq_add_chain(&f, &(struct fake_buf){ 0x20000, 16, true }, 1);
		assert_int_equal(virtq_pop(&p.dev.vqs[0], e), 1);
	}
	for (unsigned i = 0; i < 4; i++)
		virtq_push(&p.dev.vqs[0], 0, 0);
	virtio_mmio_notify_used(p.t, &p.dev.vqs[0]);
	fdrv_wr(p.t, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_INT_USED);
	save_to(p.t, "virtio-fake0", &w, &file);
	encode(&r, &mine, &fmine);
	record_of(&file, "virtio-fake0", &a, &la);
	record_of(&fmine, "virtio-fake0", &b, &lb);
	assert_int_equal(la, lb);
	assert_memory_equal(a, b, la);
	/* And the encoder's record restores. */
	assert_int_equal(try_restore(x, &r), 0);
	peer_destroy(&p);
	snap_writer_free(&w);
	snap_writer_free(&mine);
	free(e);
}

/* Every field out of range, and malformed records, are refused with -EINVAL; the transport is
 * left in its power-on state, the device neither restored nor activated. */
static void test_snapshot_refusals(void **state)
{
	struct fixture *x = *state;
	struct rec r;

#define REFUSED(change)                                        \
	do {                                                   \
		r = live_rec();                                \
		change;                                        \
		assert_int_equal(try_restore(x, &r), -EINVAL); \
	} while (0)

	REFUSED(r.version = 2);
	REFUSED(r.version = 0);
	REFUSED(r.cut = 1);
	REFUSED(r.cut = 30);
	REFUSED(r.extra = true);
	REFUSED(r.id = "virtio-fake1"); /* no record for this device */
	REFUSED(r.device_id = VIRTIO_ID_RNG);
	REFUSED(r.nr_queues = 3);
	REFUSED(r.nr_queues = 0x10000);
	/* Status and interrupt bits. */
	REFUSED(r.status = 0x100 | 0x0f);
	REFUSED(r.status =
			VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_DRIVER_OK);
	REFUSED(r.int_status = 4);
	/* Features: not offered now, not offered then, without VERSION_1. */
	REFUSED(r.driver_features |= VIRTIO_BIT(5); r.device_features |= VIRTIO_BIT(5));
	REFUSED(r.driver_features |= VIRTIO_BIT(40));
	REFUSED(r.device_features = VIRTIO_BIT(VIRTIO_F_VERSION_1));
	REFUSED(r.driver_features = VIRTIO_BIT(FEAT_X));
	/* Queue sizes. */
	REFUSED(r.q[0].num = QMAX * 2);
	REFUSED(r.q[1].num = 12);
	REFUSED(r.q[1].num = 0);
	REFUSED(r.q[1].num = 0x10008);
	/* Ring addresses: outside RAM, straddling its end, wrapping, misaligned. */
	REFUSED(r.q[0].desc = RAM_SIZE);
	REFUSED(r.q[0].avail = 0x100000000ull + AVAIL_GPA);
	REFUSED(r.q[1].used = RAM_SIZE - 16);
	REFUSED(r.q[1].desc = UINT64_MAX - 15);
	REFUSED(r.q[0].desc = DESC_GPA + 8);
	REFUSED(r.q[0].used = USED_GPA + 2);
	/* Indices: more outstanding than the ring holds, in either direction. */
	REFUSED(r.q[0].last_avail = 4 + QMAX + 1);
	REFUSED(r.q[0].used_idx = 6);
	REFUSED(r.q[0].signalled_valid = false);
	/* A queue that is not ready has no progress. */
	REFUSED(r.q[1].ready = false; r.q[1].last_avail = 1; r.q[1].used_idx = 1);
	REFUSED(r.q[1].ready = false; r.q[1].broken = true);
	REFUSED(r.q[1].ready = false; r.q[1].signalled_valid = true);
#undef REFUSED

	/* The limits themselves are fine. */
	r = live_rec();
	r.q[0].last_avail = 4 + QMAX;
	r.q[1].num = 0x10008; /* not ready: just what the driver wrote */
	r.q[1].ready = false;
	r.status = 0x3f; /* bits this transport does not know, as the driver set them */
	r.int_status = VIRTIO_INT_USED | VIRTIO_INT_CONFIG;
	r.dsel = r.drsel = r.qsel = r.shmsel = 0xffffffffu;
	r.generation = 0xffffffffu;
	assert_int_equal(try_restore(x, &r), 0);
	/* Fewer queues than the device has: the others are not set up. */
	r = live_rec();
	r.nr_queues = 1;
	assert_int_equal(try_restore(x, &r), 0);
	/* Not live: anything may have been written as driver features. */
	r = live_rec();
	r.status = VIRTIO_STATUS_ACKNOWLEDGE;
	r.driver_features = ~0ull;
	assert_int_equal(try_restore(x, &r), 0);
}

/* The device refuses its own record: the transport stays untouched, nothing is activated. */
static void test_snapshot_device_refuses(void **state)
{
	struct fixture *x = *state;
	struct rec r = live_rec();
	struct snap_writer w;
	struct snap_file file;
	struct peer p, pristine;

	encode(&r, &w, &file);
	peer_create(x, &p);
	peer_create(x, &pristine);
	p.dev.restore_ret = -EINVAL;
	assert_int_equal(virtio_mmio_dev_ops.restore(p.t, &file, "virtio-fake0"), -EINVAL);
	assert_int_equal(p.dev.restores, 1);
	assert_int_equal(p.dev.activations, 0);
	assert_same_state(p.t, pristine.t);
	assert_int_equal(p.irq.count, 0);
	/* It may try again. */
	p.dev.restore_ret = 0;
	assert_int_equal(virtio_mmio_dev_ops.restore(p.t, &file, "virtio-fake0"), 0);
	assert_int_equal(p.dev.activations, 1);
	/* A transport that is not in its power-on state is not overwritten. */
	assert_int_equal(virtio_mmio_dev_ops.restore(p.t, &file, "virtio-fake0"), -EBUSY);
	assert_int_equal(p.dev.restores, 2);
	fdrv_wr(pristine.t, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
	assert_int_equal(virtio_mmio_dev_ops.restore(pristine.t, &file, "virtio-fake0"), -EBUSY);
	assert_int_equal(fdrv_rd(pristine.t, VIRTIO_MMIO_STATUS), VIRTIO_STATUS_ACKNOWLEDGE);
	/* After a reset it is. */
	fdrv_wr(pristine.t, VIRTIO_MMIO_STATUS, 0);
	assert_int_equal(virtio_mmio_dev_ops.restore(pristine.t, &file, "virtio-fake0"), 0);
	peer_destroy(&p);
	peer_destroy(&pristine);
	snap_writer_free(&w);
}

/* The device fails to activate again: restore says so and the device needs a reset (with the
 * config interrupt that goes with it), nothing half activated. */
static void test_snapshot_activation_fails(void **state)
{
	struct fixture *x = *state;
	struct rec r = live_rec();
	struct snap_writer w;
	struct snap_file file;
	struct peer p;

	encode(&r, &w, &file);
	peer_create(x, &p);
	p.dev.activate_ret = -EIO;
	assert_int_equal(virtio_mmio_dev_ops.restore(p.t, &file, "virtio-fake0"), -EIO);
	assert_int_equal(p.dev.activations, 1);
	assert_int_equal(fdrv_rd(p.t, VIRTIO_MMIO_STATUS), 0x0f | VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	assert_int_equal(fdrv_rd(p.t, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_INT_CONFIG);
	assert_int_equal(p.irq.count, 1);
	fdrv_wr(p.t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(p.dev.notifies[0], 0);
	peer_destroy(&p);
	snap_writer_free(&w);
}

/* Through the device manager and an event loop: the restored transport registers its queues'
 * ioeventfds again and runs them on the loop; a yield pending at the snapshot is not lost. */
static void test_snapshot_event_loop(void **state)
{
	struct ioev_rec rec = { 0 };
	struct devmgr_hooks hooks = { .ctx = &rec, .ioeventfd = fake_ioeventfd };
	struct fake_mem mem;
	struct fake_dev dev = { 0 }, dev2 = { 0 };
	struct snap_writer w;
	struct snap_file file;
	struct devmgr dm, dm2;
	struct evloop ev;
	struct virtio_mmio *t, *t2;
	pthread_t th;
	char why[160];
	uint32_t q1 = 1;

	(void)state;
	fake_mem_init(&mem, RAM_SIZE);
	assert_int_equal(evloop_init(&ev), 0);
	devmgr_init(&dm, &mem.gm, &ev, &hooks);
	assert_int_equal(virtio_mmio_add(&dm, "virtio-fake0", &fake_ops, &dev, &t), 0);
	bring_up(t, FEATURES);
	assert_int_equal(rec.assigned, 2);
	/* The loop is not running: the activation's runs and a yield wait in the kick fds. */
	virtio_mmio_queue_yield(t, 1);
	snap_writer_init(&w);
	devmgr_quiesce(&dm);
	assert_int_equal(dev.quiesced, 1);
	assert_int_equal(devmgr_save(&dm, &w), 0);
	assert_int_equal(snap_writer_finish(&w), 0);
	assert_int_equal(snap_file_parse(&file, w.buf, w.len, why, sizeof(why)), 0);
	devmgr_destroy(&dm);
	assert_int_equal(rec.assigned, 0);
	assert_int_equal(dev.notifies[0] + dev.notifies[1], 0);

	devmgr_init(&dm2, &mem.gm, &ev, &hooks);
	assert_int_equal(virtio_mmio_add(&dm2, "virtio-fake0", &fake_ops, &dev2, &t2), 0);
	assert_int_equal(devmgr_restore(&dm2, &file, why, sizeof(why)), 0);
	assert_int_equal(rec.assigned, 2);
	assert_int_equal(rec.addr[2], dm2.devs[0]->base + VIRTIO_MMIO_QUEUE_NOTIFY);
	assert_int_equal(rec.datamatch[3], 1);
	assert_int_equal(dev2.activations, 1);
	/* Queue work belongs to the loop: nothing ran yet, then each queue runs. */
	assert_int_equal(dev2.notifies[0] + dev2.notifies[1], 0);
	assert_int_equal(pthread_create(&th, NULL, loop_thread, &ev), 0);
	assert_true(wait_for(&dev2.notifies[0], 1));
	assert_true(wait_for(&dev2.notifies[1], 1));
	assert_true(bus_write(&dm2.mmio, dm2.devs[0]->base + VIRTIO_MMIO_QUEUE_NOTIFY, &q1, 4));
	assert_true(wait_for(&dev2.notifies[1], 2));
	evloop_stop(&ev);
	pthread_join(th, NULL);
	devmgr_destroy(&dm2);
	assert_int_equal(rec.assigned, 0);
	evloop_destroy(&ev);
	snap_writer_free(&w);
	fake_mem_free(&mem);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_identity),
		T(test_register_widths),
		T(test_device_features_select),
		T(test_driver_features_select),
		T(test_features_ok_rules),
		T(test_driver_ok_needs_features_ok),
		T(test_status_bits_only_added),
		T(test_queue_sel_out_of_range),
		T(test_queue_ready_rules),
		T(test_queue_regs_frozen_while_ready),
		T(test_config_space),
		T(test_activate_and_reset),
		T(test_notify_direct),
		T(test_yield_direct),
		T(test_kick_before_driver_ok),
		T(test_level_follows_interrupt_status),
		T(test_used_signalled_when_queue_breaks),
		T(test_interrupts),
		T(test_needs_reset),
		T(test_activate_failure),
		cmocka_unit_test(test_create_rejects_bad_ops),
		cmocka_unit_test(test_add_and_describe),
		cmocka_unit_test(test_event_loop_path),
		T(test_snapshot_round_trip),
		T(test_snapshot_mid_negotiation),
		T(test_snapshot_needs_reset),
		T(test_snapshot_record_layout),
		T(test_snapshot_refusals),
		T(test_snapshot_device_refuses),
		T(test_snapshot_activation_fails),
		cmocka_unit_test(test_snapshot_event_loop),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
