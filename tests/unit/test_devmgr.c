/* Bus decoding and the DeviceManager: windows, GSIs, access sizes, describe, teardown. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "arch/x86/layout.h"
#include "core/bus.h"
#include "core/devmgr.h"
#include "core/evloop.h"
#include "snapshot/snap.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

struct fake {
	uint64_t last_off;
	unsigned last_size;
	uint64_t last_val;
	int reads, writes, resets, destroyed;
	int *destroy_order;
	int *destroy_pos;
	int id;
};

static uint64_t fake_read(void *dev, uint64_t off, unsigned size)
{
	struct fake *f = dev;

	f->reads++;
	f->last_off = off;
	f->last_size = size;
	return 0x1122334455667788ull;
}

static void fake_write(void *dev, uint64_t off, unsigned size, uint64_t val)
{
	struct fake *f = dev;

	f->writes++;
	f->last_off = off;
	f->last_size = size;
	f->last_val = val;
}

static void fake_reset(void *dev)
{
	((struct fake *)dev)->resets++;
}

static void fake_destroy(void *dev)
{
	struct fake *f = dev;

	f->destroyed++;
	if (f->destroy_order)
		f->destroy_order[(*f->destroy_pos)++] = f->id;
}

static int fake_describe(void *dev, const struct dm_dev *slot, struct dm_describe *ctx)
{
	return dm_cmdline_append(ctx, " dev=%s@%#llx:%u", slot->id, (unsigned long long)slot->base,
				 slot->irq.gsi);
}

static const struct dev_ops fake_ops = {
	.name = "fake",
	.sizes = BUS_SZ1 | BUS_SZ4,
	.read = fake_read,
	.write = fake_write,
	.reset = fake_reset,
	.describe = fake_describe,
	.destroy = fake_destroy,
};

static void test_bus_register_and_find(void **state)
{
	struct bus bus;
	struct fake a = { 0 }, b = { 0 };

	bus_init(&bus, "test");
	assert_int_equal(bus_register(&bus, 0x2000, 0x100, &fake_ops, &b), 0);
	assert_int_equal(bus_register(&bus, 0x1000, 0x100, &fake_ops, &a), 0);
	assert_int_equal(bus_register(&bus, 0x10ff, 2, &fake_ops, &a), -EEXIST);
	assert_int_equal(bus_register(&bus, 0x0f00, 0x101, &fake_ops, &a), -EEXIST);
	assert_int_equal(bus_register(&bus, 0x3000, 0, &fake_ops, &a), -EINVAL);
	assert_int_equal(bus_register(&bus, UINT64_MAX - 1, 4, &fake_ops, &a), -EINVAL);
	assert_ptr_equal(bus_find(&bus, 0x1000)->dev, &a);
	assert_ptr_equal(bus_find(&bus, 0x10ff)->dev, &a);
	assert_null(bus_find(&bus, 0x1100));
	assert_ptr_equal(bus_find(&bus, 0x20ff)->dev, &b);
	assert_null(bus_find(&bus, 0xfff));
	bus_unregister(&bus, 0x1000);
	assert_null(bus_find(&bus, 0x1000));
	assert_ptr_equal(bus_find(&bus, 0x2000)->dev, &b);
}

static void test_bus_access_sizes(void **state)
{
	struct bus bus;
	struct fake a = { 0 };
	uint8_t buf[8];
	uint32_t v32 = 0xdeadbeef;

	bus_init(&bus, "test");
	assert_int_equal(bus_register(&bus, 0x1000, 0x10, &fake_ops, &a), 0);
	/* Offsets, never absolute addresses. */
	assert_true(bus_read(&bus, 0x1004, buf, 4));
	assert_int_equal(a.last_off, 4);
	assert_int_equal(a.last_size, 4);
	assert_memory_equal(buf, "\x88\x77\x66\x55", 4);
	assert_true(bus_write(&bus, 0x1008, &v32, 4));
	assert_int_equal(a.last_val, 0xdeadbeef);
	/* 2-byte access is not declared: all-ones, device not called. */
	a.reads = 0;
	assert_true(bus_read(&bus, 0x1000, buf, 2));
	assert_int_equal(a.reads, 0);
	assert_memory_equal(buf, "\xff\xff", 2);
	/* An access running past the end of the window is refused. */
	assert_true(bus_read(&bus, 0x100e, buf, 4));
	assert_int_equal(a.reads, 0);
	/* Nothing there: all-ones, counted. */
	assert_false(bus_read(&bus, 0x5000, buf, 1));
	assert_int_equal(buf[0], 0xff);
	assert_false(bus_write(&bus, 0x5000, &v32, 4));
	assert_int_equal(bus.unhandled, 2);
}

static void test_devmgr_allocation(void **state)
{
	struct devmgr dm;
	struct dm_dev *d[20];
	struct fake f[20] = { 0 };
	int i;

	devmgr_init(&dm, NULL, NULL, NULL);
	/* The first MMIO slot is at the start of the window (the boot-timer's). */
	assert_int_equal(devmgr_reserve_mmio(&dm, "boot-timer", 0x1000, false, &d[0]), 0);
	assert_int_equal(d[0]->base, LAYOUT_MMIO_START);
	assert_false(d[0]->has_irq);
	assert_int_equal(devmgr_attach(&dm, d[0], &fake_ops, &f[0]), 0);
	assert_int_equal(devmgr_reserve_pio(&dm, "rtc", 0x70, 2, LAYOUT_GSI_RTC, &d[1]), 0);
	assert_int_equal(devmgr_attach(&dm, d[1], &fake_ops, &f[1]), 0);
	/* MMIO devices get consecutive 4 KiB slots and GSIs from 5, skipping taken ones. */
	for (i = 2; i < 10; i++) {
		char id[16];

		snprintf(id, sizeof(id), "v%d", i);
		assert_int_equal(devmgr_reserve_mmio(&dm, id, 0x200, true, &d[i]), 0);
		assert_int_equal(d[i]->base, LAYOUT_MMIO_START + (uint64_t)(i - 1) * 0x1000);
		assert_int_equal(d[i]->len, 0x1000);
		assert_true(d[i]->has_irq);
		assert_true(d[i]->irq.gsi >= LAYOUT_GSI_FIRST);
		assert_int_not_equal(d[i]->irq.gsi, LAYOUT_GSI_RTC);
		assert_int_equal(d[i]->irq.fd, -1); /* no VM: no irqfd */
		assert_int_equal(devmgr_attach(&dm, d[i], &fake_ops, &f[i]), 0);
	}
	assert_int_equal(d[2]->irq.gsi, 5);
	assert_int_equal(d[5]->irq.gsi, 9); /* 8 is the RTC's */
	/* Duplicate ids and a taken fixed GSI are refused. */
	assert_int_equal(devmgr_reserve_mmio(&dm, "v2", 0x1000, true, &d[10]), -EINVAL);
	assert_int_equal(devmgr_reserve_pio(&dm, "x", 0x80, 1, 5, &d[10]), -EBUSY);
	/* Overlapping ports: the attach fails and the slot is released. */
	assert_int_equal(devmgr_reserve_pio(&dm, "rtc2", 0x71, 1, -1, &d[10]), 0);
	assert_int_equal(devmgr_attach(&dm, d[10], &fake_ops, &f[10]), -EEXIST);
	assert_null(devmgr_find(&dm, "rtc2"));
	assert_ptr_equal(devmgr_find(&dm, "v3"), d[3]);
	/* Bus dispatch reaches the right device with window offsets. */
	{
		uint8_t b = 0x42;

		assert_true(bus_write(&dm.mmio, d[4]->base + 0x10, &b, 1));
		assert_int_equal(f[4].last_off, 0x10);
		assert_true(bus_write(&dm.pio, 0x71, &b, 1));
		assert_int_equal(f[1].last_off, 1);
	}
	devmgr_reset(&dm);
	for (i = 0; i < 10; i++)
		assert_int_equal(f[i].resets, 1);
	devmgr_destroy(&dm);
	for (i = 0; i < 10; i++)
		assert_int_equal(f[i].destroyed, 1);
	assert_int_equal(dm.nr_devs, 0);
}

static void test_devmgr_gsi_exhaustion(void **state)
{
	struct devmgr dm;
	struct dm_dev *d;
	int n = 0;

	devmgr_init(&dm, NULL, NULL, NULL);
	for (;;) {
		char id[16];
		int ret;

		snprintf(id, sizeof(id), "v%d", n);
		ret = devmgr_reserve_mmio(&dm, id, 0x1000, true, &d);
		if (ret) {
			assert_int_equal(ret, -ENOSPC);
			break;
		}
		n++;
		assert_true(n < 100);
	}
	/* GSIs 5..23 minus the RTC's 8. */
	assert_int_equal(n, LAYOUT_GSI_LAST - LAYOUT_GSI_FIRST + 1 - 1);
	/* Devices without interrupts still fit. */
	assert_int_equal(devmgr_reserve_mmio(&dm, "noirq", 0x1000, false, &d), 0);
	devmgr_destroy(&dm);
}

static void test_devmgr_describe_and_order(void **state)
{
	struct devmgr dm;
	struct dm_dev *d;
	struct fake f[3] = { 0 };
	int order[3], pos = 0;
	char cmdline[256] = "console=ttyS0";
	struct dm_describe ctx = { .cmdline = cmdline, .cmdline_size = sizeof(cmdline) };
	char small[24] = "";
	struct dm_describe tiny = { .cmdline = small, .cmdline_size = sizeof(small) };

	devmgr_init(&dm, NULL, NULL, NULL);
	for (int i = 0; i < 3; i++) {
		char id[16];

		snprintf(id, sizeof(id), "d%d", i);
		f[i].id = i;
		f[i].destroy_order = order;
		f[i].destroy_pos = &pos;
		assert_int_equal(devmgr_reserve_mmio(&dm, id, 0x1000, true, &d), 0);
		assert_int_equal(devmgr_attach(&dm, d, &fake_ops, &f[i]), 0);
	}
	assert_int_equal(devmgr_describe(&dm, &ctx), 0);
	assert_string_equal(cmdline, "console=ttyS0 dev=d0@0xc0000000:5 dev=d1@0xc0001000:6"
				     " dev=d2@0xc0002000:7");
	/* A command line that does not fit is an error, and stays terminated. */
	assert_int_equal(devmgr_describe(&dm, &tiny), -ENOSPC);
	assert_true(strlen(small) < sizeof(small));
	devmgr_destroy(&dm);
	/* Destruction unwinds in reverse registration order. */
	assert_int_equal(order[0], 2);
	assert_int_equal(order[1], 1);
	assert_int_equal(order[2], 0);
}

/* What the VM's irq_bind hook saw. */
struct bind_rec {
	int calls;
	bool level[4];
	int fd[4], resample_fd[4];
	uint32_t gsi[4];
};

static int fake_irq_bind(void *ctx, struct irq_line *l)
{
	struct bind_rec *r = ctx;

	if (r->calls < 4) {
		r->level[r->calls] = l->level;
		r->fd[r->calls] = l->fd;
		r->resample_fd[r->calls] = l->resample_fd;
		r->gsi[r->calls] = l->gsi;
	}
	r->calls++;
	return 0;
}

static void *loop_thread(void *arg)
{
	return (void *)(intptr_t)evloop_run(arg);
}

static bool level;

static bool fake_level_high(void *opaque)
{
	(void)opaque;
	return __atomic_load_n(&level, __ATOMIC_SEQ_CST);
}

/* Wait up to `ms` for the irqfd to be written; consume what was written. */
static bool asserted(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	uint64_t v;

	if (poll(&p, 1, ms) != 1)
		return false;
	return read(fd, &v, sizeof(v)) == sizeof(v);
}

/* MMIO slots get level lines bound with a resample eventfd that the event loop watches; at
 * each signal (KVM: the guest's EOI) the line is asserted again while its level is high.
 * Legacy port lines stay edge-triggered. */
static void test_devmgr_level_lines(void **state)
{
	struct bind_rec rec = { 0 };
	struct devmgr_hooks hooks = { .ctx = &rec, .irq_bind = fake_irq_bind };
	struct dm_dev *mm, *pio;
	struct devmgr dm;
	struct evloop ev;
	pthread_t th;
	uint64_t one = 1;

	(void)state;
	assert_int_equal(evloop_init(&ev), 0);
	devmgr_init(&dm, NULL, &ev, &hooks);
	assert_int_equal(devmgr_reserve_mmio(&dm, "virtio-x0", 0x1000, true, &mm), 0);
	assert_int_equal(devmgr_reserve_pio(&dm, "com1", 0x3f8, 8, 4, &pio), 0);
	assert_int_equal(rec.calls, 2);
	assert_true(rec.level[0]);
	assert_int_equal(rec.gsi[0], LAYOUT_GSI_FIRST);
	assert_true(rec.fd[0] >= 0 && rec.resample_fd[0] >= 0);
	assert_false(rec.level[1]);
	assert_true(rec.fd[1] >= 0);
	assert_int_equal(rec.resample_fd[1], -1);
	/* The MP table declares exactly the level lines. */
	assert_int_equal(devmgr_level_gsis(&dm), 1u << LAYOUT_GSI_FIRST);

	irq_set_level_source(&mm->irq, fake_level_high, NULL);
	assert_int_equal(pthread_create(&th, NULL, loop_thread, &ev), 0);
	/* EOI while the level is high: asserted again. */
	__atomic_store_n(&level, true, __ATOMIC_SEQ_CST);
	assert_int_equal(write(mm->irq.resample_fd, &one, sizeof(one)), sizeof(one));
	assert_true(asserted(mm->irq.fd, 2000));
	/* EOI after the level dropped: stays low. */
	__atomic_store_n(&level, false, __ATOMIC_SEQ_CST);
	assert_int_equal(write(mm->irq.resample_fd, &one, sizeof(one)), sizeof(one));
	assert_false(asserted(mm->irq.fd, 100));
	evloop_stop(&ev);
	pthread_join(th, NULL);

	/* Without an event loop nothing would ever lower-and-reassert a level line. */
	{
		struct devmgr dm2;
		struct dm_dev *d;

		devmgr_init(&dm2, NULL, NULL, &hooks);
		assert_int_equal(devmgr_reserve_mmio(&dm2, "virtio-x0", 0x1000, true, &d), -EINVAL);
		assert_int_equal(dm2.nr_devs, 0);
		devmgr_destroy(&dm2);
	}
	devmgr_destroy(&dm);
	evloop_destroy(&ev);
}

/* ---- devmgr_add: the one way to add a device ---- */

/* A device for devmgr_add(): records what create saw and when destroy ran. */
struct probe {
	struct fake f; /* first: the device pointer is the probe */
	struct devmgr *dm;
	const char *id;
	int create_ret; /* what create returns */
	int creates;
	bool slot_at_destroy; /* the slot still existed when destroy ran */
	uint64_t base, len;
	bool has_irq;
	uint32_t gsi;
};

static int probe_create(struct devmgr *dm, struct dm_dev *slot, const void *arg, void **dev)
{
	struct probe *p = (struct probe *)arg;

	p->creates++;
	assert_ptr_equal(dm, p->dm);
	assert_string_equal(slot->id, p->id);
	assert_null(slot->ops); /* not on the bus yet */
	p->base = slot->base;
	p->len = slot->len;
	p->has_irq = slot->has_irq;
	p->gsi = slot->irq.gsi;
	if (p->create_ret)
		return p->create_ret;
	*dev = p;
	return 0;
}

static void probe_destroy(void *dev)
{
	struct probe *p = dev;

	p->f.destroyed++;
	p->slot_at_destroy = devmgr_find(p->dm, p->id) != NULL;
}

static const struct dev_ops probe_ops = {
	.name = "probe",
	.sizes = BUS_SZ1 | BUS_SZ4,
	.read = fake_read,
	.write = fake_write,
	.describe = fake_describe,
	.destroy = probe_destroy,
};

static int add_probe(struct devmgr *dm, const struct dm_slot_req *req, struct probe *p, void **out)
{
	p->dm = dm;
	p->id = req->id;
	return devmgr_add(dm, req, &probe_ops, probe_create, probe_destroy, p, out);
}

/* Success: the slot holds what reserve_* would have given, create saw it, the device is on its
 * bus and describes itself, and the manager destroys it exactly once. */
static void test_devmgr_add_success(void **state)
{
	const struct dm_slot_req mmio = {
		.id = "virtio-x0", .kind = DM_MMIO, .len = 0x200, .irq = true
	};
	const struct dm_slot_req timer = { .id = "timer", .kind = DM_MMIO, .len = 0x1000 };
	const struct dm_slot_req com = {
		.id = "com1", .kind = DM_PIO, .base = 0x3f8, .len = 8, .irq = true, .gsi = 4
	};
	const struct dm_slot_req line = { .id = "line", .kind = DM_LINE, .irq = true, .gsi = 22 };
	struct probe p[4] = { 0 };
	char cmdline[256] = "";
	struct dm_describe ctx = { .cmdline = cmdline, .cmdline_size = sizeof(cmdline) };
	struct devmgr dm;
	void *out = NULL;
	uint8_t b = 0x5a;
	struct dm_dev *d;

	devmgr_init(&dm, NULL, NULL, NULL);
	assert_int_equal(add_probe(&dm, &timer, &p[0], NULL), 0);
	assert_int_equal(add_probe(&dm, &mmio, &p[1], &out), 0);
	assert_ptr_equal(out, &p[1]);
	assert_int_equal(add_probe(&dm, &com, &p[2], NULL), 0);
	assert_int_equal(add_probe(&dm, &line, &p[3], NULL), 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(p[i].creates, 1);
	/* What create saw is the slot the manager records (and a snapshot saves). */
	assert_int_equal(p[0].base, LAYOUT_MMIO_START);
	assert_false(p[0].has_irq);
	assert_int_equal(p[1].base, LAYOUT_MMIO_START + 0x1000);
	assert_int_equal(p[1].len, 0x1000); /* rounded up to a 4 KiB slot */
	assert_true(p[1].has_irq);
	assert_int_equal(p[1].gsi, LAYOUT_GSI_FIRST);
	assert_int_equal(p[2].base, 0x3f8);
	assert_int_equal(p[2].len, 8);
	assert_int_equal(p[2].gsi, 4);
	assert_int_equal(p[3].len, 0);
	assert_int_equal(p[3].gsi, 22);
	d = devmgr_find(&dm, "virtio-x0");
	assert_non_null(d);
	assert_int_equal(d->index, 1);
	assert_ptr_equal(d->ops, &probe_ops);
	assert_ptr_equal(d->dev, &p[1]);
	assert_true(d->irq.level); /* MMIO lines are level-triggered, fixed ones edge */
	assert_false(devmgr_find(&dm, "com1")->irq.level);
	assert_int_equal(devmgr_find(&dm, "line")->kind, DM_LINE);
	/* Reachable on its bus, at window offsets. */
	assert_true(bus_write(&dm.mmio, LAYOUT_MMIO_START + 0x1000 + 0x10, &b, 1));
	assert_int_equal(p[1].f.last_off, 0x10);
	assert_true(bus_write(&dm.pio, 0x3f8 + 5, &b, 1));
	assert_int_equal(p[2].f.last_off, 5);
	/* Described, in registration order. */
	assert_int_equal(devmgr_describe(&dm, &ctx), 0);
	assert_string_equal(cmdline, " dev=timer@0xc0000000:0 dev=virtio-x0@0xc0001000:5"
				     " dev=com1@0x3f8:4 dev=line@0:22");
	devmgr_destroy(&dm);
	for (int i = 0; i < 4; i++)
		assert_int_equal(p[i].f.destroyed, 1);
}

/* create fails: its error comes back, destroy is not called, the slot is gone and its id,
 * ports and fixed GSI can be taken again; an MMIO window is not handed out twice. */
static void test_devmgr_add_create_fails(void **state)
{
	const struct dm_slot_req com = {
		.id = "com1", .kind = DM_PIO, .base = 0x3f8, .len = 8, .irq = true, .gsi = 4
	};
	const struct dm_slot_req mmio = {
		.id = "virtio-x0", .kind = DM_MMIO, .len = 0x1000, .irq = true
	};
	struct probe bad = { .create_ret = -EIO }, good = { 0 }, m1 = { .create_ret = -ENOMEM },
		     m2 = { 0 };
	struct devmgr dm;
	void *out = &bad;

	devmgr_init(&dm, NULL, NULL, NULL);
	assert_int_equal(add_probe(&dm, &com, &bad, &out), -EIO);
	assert_ptr_equal(out, &bad); /* untouched on failure */
	assert_int_equal(bad.creates, 1);
	assert_int_equal(bad.f.destroyed, 0);
	assert_int_equal(dm.nr_devs, 0);
	assert_null(devmgr_find(&dm, "com1"));
	assert_int_equal(add_probe(&dm, &com, &good, NULL), 0);
	assert_int_equal(good.gsi, 4);
	assert_ptr_equal(bus_find(&dm.pio, 0x3f8)->dev, &good);

	assert_int_equal(add_probe(&dm, &mmio, &m1, NULL), -ENOMEM);
	assert_int_equal(dm.nr_devs, 1);
	assert_int_equal(add_probe(&dm, &mmio, &m2, NULL), 0);
	assert_int_equal(m2.base, m1.base + 0x1000);
	assert_int_equal(m2.gsi, m1.gsi + 1);
	assert_null(bus_find(&dm.mmio, m1.base));
	devmgr_destroy(&dm);
	assert_int_equal(bad.f.destroyed, 0);
	assert_int_equal(m1.f.destroyed, 0);
	assert_int_equal(good.f.destroyed, 1);
	assert_int_equal(m2.f.destroyed, 1);
}

/* The attach fails (ports overlap): destroy runs once, while the slot still exists, then the
 * slot is released; the manager never sees the device again. */
static void test_devmgr_add_attach_fails(void **state)
{
	const struct dm_slot_req rtc = { .id = "rtc", .kind = DM_PIO, .base = 0x70, .len = 2 };
	const struct dm_slot_req over = {
		.id = "rtc2", .kind = DM_PIO, .base = 0x71, .len = 1, .irq = true, .gsi = 9
	};
	const struct dm_slot_req again = {
		.id = "rtc2", .kind = DM_PIO, .base = 0x72, .len = 1, .irq = true, .gsi = 9
	};
	struct probe a = { 0 }, b = { 0 }, c = { 0 };
	struct devmgr dm;

	devmgr_init(&dm, NULL, NULL, NULL);
	assert_int_equal(add_probe(&dm, &rtc, &a, NULL), 0);
	assert_int_equal(add_probe(&dm, &over, &b, NULL), -EEXIST);
	assert_int_equal(b.creates, 1);
	assert_int_equal(b.f.destroyed, 1);
	assert_true(b.slot_at_destroy);
	assert_null(devmgr_find(&dm, "rtc2"));
	assert_int_equal(dm.nr_devs, 1);
	assert_ptr_equal(bus_find(&dm.pio, 0x71)->dev, &a);
	/* Its id and GSI are free again. */
	assert_int_equal(add_probe(&dm, &again, &c, NULL), 0);
	assert_int_equal(devmgr_find(&dm, "rtc2")->index, 1);
	devmgr_destroy(&dm);
	assert_int_equal(a.f.destroyed, 1);
	assert_int_equal(b.f.destroyed, 1); /* not a second time */
	assert_int_equal(c.f.destroyed, 1);
}

/* Without a destroy (create lent a device it does not own) a failed attach frees nothing. */
static void test_devmgr_add_lent(void **state)
{
	const struct dm_slot_req a = { .id = "a", .kind = DM_PIO, .base = 0x60, .len = 1 };
	const struct dm_slot_req b = { .id = "b", .kind = DM_PIO, .base = 0x60, .len = 1 };
	struct probe p = { 0 }, q = { 0 };
	struct devmgr dm;

	devmgr_init(&dm, NULL, NULL, NULL);
	assert_int_equal(add_probe(&dm, &a, &p, NULL), 0);
	q.dm = &dm;
	q.id = "b";
	assert_int_equal(devmgr_add(&dm, &b, &probe_ops, probe_create, NULL, &q, NULL), -EEXIST);
	assert_int_equal(q.creates, 1);
	assert_int_equal(q.f.destroyed, 0);
	assert_int_equal(dm.nr_devs, 1);
	devmgr_destroy(&dm);
	assert_int_equal(p.f.destroyed, 1);
	assert_int_equal(q.f.destroyed, 0);
}

/* Requests that cannot be reserved never reach create. */
static void test_devmgr_add_bad_requests(void **state)
{
	const struct dm_slot_req bad[] = {
		{ .id = "line", .kind = DM_LINE, .gsi = 22 }, /* a line slot without its line */
		{ .id = "line", .kind = DM_LINE, .irq = true, .gsi = LAYOUT_IOAPIC_PINS },
		{ .id = "pio", .kind = DM_PIO, .base = 0x10000, .len = 1 },
		{ .id = "pio", .kind = DM_PIO, .base = 0x60, .len = 0 },
		{ .id = "pio",
		  .kind = DM_PIO,
		  .base = 0x60,
		  .len = 1,
		  .irq = true,
		  .gsi = 1u << 31 },
		{ .id = "mmio", .kind = DM_MMIO, .len = 0 },
		{ .id = "dup", .kind = DM_PIO, .base = 0x80, .len = 1 },
		{ .id = "far", .kind = (enum dm_kind)7, .len = 1 },
	};
	const struct dm_slot_req dup = { .id = "dup", .kind = DM_PIO, .base = 0x90, .len = 1 };
	struct probe p = { 0 }, first = { 0 };
	struct devmgr dm;

	devmgr_init(&dm, NULL, NULL, NULL);
	assert_int_equal(add_probe(&dm, &dup, &first, NULL), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_not_equal(add_probe(&dm, &bad[i], &p, NULL), 0);
		assert_int_equal(dm.nr_devs, 1);
	}
	assert_int_equal(p.creates, 0);
	devmgr_destroy(&dm);
}

/* Snapshot records.  A device kind names the record its save writes in its ops table
 * (dev_ops.rec, and inner_rec for a device inside another); the manager lets it write only
 * those and answers the loader from them (devmgr_check_record). */
struct rec_dev {
	uint16_t type, version; /* what its save writes */
	int creates;
};

static int rec_save(void *dev, struct snap_writer *w, const char *id)
{
	const struct rec_dev *r = dev;

	snap_rec_begin(w, r->type, r->version, id);
	snap_put_u8(w, 1);
	return 0;
}

static int rec_restore(void *dev, const struct snap_file *f, const char *id)
{
	return 0;
}

static struct dev_rec rec_inner(const void *dev)
{
	return (struct dev_rec){ SNAP_REC_VIRTIO_BLK, 2 };
}

static int rec_create(struct devmgr *dm, struct dm_dev *slot, const void *arg, void **dev)
{
	struct rec_dev *r = (struct rec_dev *)arg;

	r->creates++;
	*dev = r;
	return 0;
}

static const struct dev_ops rec_ops = {
	.name = "rtc-like", .save = rec_save, .restore = rec_restore, .rec = { SNAP_REC_RTC, 1 }
};
static const struct dev_ops outer_ops = { .name = "outer",
					  .save = rec_save,
					  .restore = rec_restore,
					  .rec = { SNAP_REC_VIRTIO_MMIO, 1 },
					  .inner_rec = rec_inner };
static const struct dev_ops plain_ops = { .name = "plain" }; /* nothing to save */

/* An ops table whose save, restore and record disagree is refused before anything is
 * reserved or created (devmgr_add) or at attach (the slot is released). */
static void test_devmgr_records_must_be_declared(void **state)
{
	static const struct dev_ops bad[] = {
		{ .name = "save, no record", .save = rec_save, .restore = rec_restore },
		{ .name = "record, no save", .rec = { SNAP_REC_RTC, 1 } },
		{ .name = "save, no restore", .save = rec_save, .rec = { SNAP_REC_RTC, 1 } },
		{ .name = "restore, no save", .restore = rec_restore, .rec = { SNAP_REC_RTC, 1 } },
	};
	const struct dm_slot_req req = { .id = "dev", .kind = DM_PIO, .base = 0x70, .len = 2 };
	struct rec_dev r = { 0 };
	struct dm_dev *slot;
	struct devmgr dm;

	devmgr_init(&dm, NULL, NULL, NULL);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(devmgr_add(&dm, &req, &bad[i], rec_create, NULL, &r, NULL),
				 -EINVAL);
		assert_int_equal(r.creates, 0);
		assert_int_equal(dm.nr_devs, 0);
		assert_int_equal(devmgr_reserve_pio(&dm, "dev", 0x70, 2, -1, &slot), 0);
		assert_int_equal(devmgr_attach(&dm, slot, &bad[i], &r), -EINVAL);
		assert_int_equal(dm.nr_devs, 0);
	}
	/* The consistent tables are taken. */
	assert_int_equal(devmgr_add(&dm, &req, &rec_ops, rec_create, NULL, &r, NULL), 0);
	assert_int_equal(devmgr_reserve_pio(&dm, "plain", 0x80, 1, -1, &slot), 0);
	assert_int_equal(devmgr_attach(&dm, slot, &plain_ops, &r), 0);
	devmgr_destroy(&dm);
}

/* devmgr_save: a device writes its declared record (type and version) or the save fails with
 * -EPROTO; the filter is gone once the device's save returns. */
static void test_devmgr_save_only_declared(void **state)
{
	struct rec_dev ok = { .type = SNAP_REC_RTC, .version = 1 };
	struct rec_dev wrong_type = { .type = SNAP_REC_SERIAL, .version = 1 };
	struct rec_dev wrong_version = { .type = SNAP_REC_RTC, .version = 2 };
	struct rec_dev *devs[] = { &ok, &wrong_type, &wrong_version };
	const int want[] = { 0, -EPROTO, -EPROTO };
	struct dev_rec recs[DM_MAX_RECS];
	struct snap_writer w;
	struct snap_file f;
	struct snap_reader r;
	struct dm_dev *slot;
	struct devmgr dm;

	for (size_t i = 0; i < sizeof(devs) / sizeof(devs[0]); i++) {
		devmgr_init(&dm, NULL, NULL, NULL);
		assert_int_equal(devmgr_reserve_pio(&dm, "rtc", 0x70, 2, -1, &slot), 0);
		assert_int_equal(devmgr_attach(&dm, slot, &rec_ops, devs[i]), 0);
		assert_int_equal(devmgr_records(slot, recs), 1);
		assert_int_equal(recs[0].type, SNAP_REC_RTC);
		snap_writer_init(&w);
		assert_int_equal(devmgr_save(&dm, &w), want[i]);
		assert_null(w.allow);
		if (!want[i]) {
			assert_int_equal(snap_writer_finish(&w), 0);
			assert_int_equal(snap_file_parse(&f, w.buf, w.len, NULL, 0), 0);
			assert_int_equal(snap_file_find(&f, SNAP_REC_RTC, "rtc", &r), 0);
		}
		snap_writer_free(&w);
		devmgr_destroy(&dm);
	}
	/* A device inside another writes both records. */
	devmgr_init(&dm, NULL, NULL, NULL);
	assert_int_equal(devmgr_reserve_mmio(&dm, "outer0", 0x200, false, &slot), 0);
	assert_int_equal(devmgr_attach(&dm, slot, &outer_ops, &ok), 0);
	assert_int_equal(devmgr_records(slot, recs), 2);
	assert_int_equal(recs[0].type, SNAP_REC_VIRTIO_MMIO);
	assert_int_equal(recs[1].type, SNAP_REC_VIRTIO_BLK);
	assert_int_equal(recs[1].version, 2);
	snap_writer_init(&w);
	assert_int_equal(devmgr_save(&dm, &w), -EPROTO); /* it wrote an RTC record */
	snap_writer_free(&w);
	devmgr_destroy(&dm);
}

static void expect_refused(struct devmgr *dm, uint16_t type, uint16_t version, const char *id,
			   const char *want)
{
	char why[256] = "";

	assert_int_equal(devmgr_check_record(dm, type, version, id, why, sizeof(why)), -EINVAL);
	if (!strstr(why, want))
		fail_msg("record %u v%u '%s': \"%s\", expected \"%s\"", type, version, id, why,
			 want);
}

/* What the loader asks: each record belongs to a device that declares it, at a version no
 * newer than declared; an unknown type, a device this machine lacks and a record its device
 * does not write are each one line saying which. */
static void test_devmgr_check_record(void **state)
{
	struct rec_dev r = { 0 };
	struct dm_dev *slot;
	struct devmgr dm;
	char why[256];

	devmgr_init(&dm, NULL, NULL, NULL);
	assert_int_equal(devmgr_reserve_pio(&dm, "rtc", 0x70, 2, -1, &slot), 0);
	assert_int_equal(devmgr_attach(&dm, slot, &rec_ops, &r), 0);
	assert_int_equal(devmgr_reserve_mmio(&dm, "outer0", 0x200, false, &slot), 0);
	assert_int_equal(devmgr_attach(&dm, slot, &outer_ops, &r), 0);
	assert_int_equal(devmgr_reserve_pio(&dm, "plain", 0x80, 1, -1, &slot), 0);
	assert_int_equal(devmgr_attach(&dm, slot, &plain_ops, &r), 0);

	assert_int_equal(devmgr_check_record(&dm, SNAP_REC_SLOT, 1, "plain", why, sizeof(why)), 0);
	assert_int_equal(devmgr_check_record(&dm, SNAP_REC_RTC, 1, "rtc", why, sizeof(why)), 0);
	assert_int_equal(devmgr_check_record(&dm, SNAP_REC_RTC, 0, "rtc", why, sizeof(why)), 0);
	assert_int_equal(
		devmgr_check_record(&dm, SNAP_REC_VIRTIO_MMIO, 1, "outer0", why, sizeof(why)), 0);
	assert_int_equal(
		devmgr_check_record(&dm, SNAP_REC_VIRTIO_BLK, 2, "outer0", why, sizeof(why)), 0);

	expect_refused(&dm, SNAP_REC_SLOT, 1, "gone",
		       "a device slot record for 'gone', which "
		       "this machine does not have");
	expect_refused(&dm, SNAP_REC_RTC, 2, "rtc", "its RTC record is version 2, newer than");
	expect_refused(&dm, SNAP_REC_VIRTIO_BLK, 3, "outer0", "newer than this ignition reads (2)");
	expect_refused(&dm, SNAP_REC_SERIAL, 1, "rtc", "a serial record for 'rtc', a rtc-like");
	expect_refused(&dm, SNAP_REC_RTC, 1, "plain", "which writes no such record");
	expect_refused(&dm, SNAP_REC_VIRTIO_GPU, 2, "virtio-gpu",
		       "a virtio-gpu record for 'virtio-gpu', which this machine does not have");
	expect_refused(&dm, 999, 1, "rtc", "unknown record type 999 ('rtc')");
	expect_refused(&dm, 999, 1, "mystery", "unknown record type 999 ('mystery')");
	/* Records of the VM itself are not the devices' to claim. */
	expect_refused(&dm, SNAP_REC_MACHINE, 1, "machine", "which this machine does not have");
	devmgr_destroy(&dm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bus_register_and_find),
		cmocka_unit_test(test_bus_access_sizes),
		cmocka_unit_test(test_devmgr_allocation),
		cmocka_unit_test(test_devmgr_gsi_exhaustion),
		cmocka_unit_test(test_devmgr_describe_and_order),
		cmocka_unit_test(test_devmgr_level_lines),
		cmocka_unit_test(test_devmgr_add_success),
		cmocka_unit_test(test_devmgr_add_create_fails),
		cmocka_unit_test(test_devmgr_add_attach_fails),
		cmocka_unit_test(test_devmgr_add_lent),
		cmocka_unit_test(test_devmgr_add_bad_requests),
		cmocka_unit_test(test_devmgr_records_must_be_declared),
		cmocka_unit_test(test_devmgr_save_only_declared),
		cmocka_unit_test(test_devmgr_check_record),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
