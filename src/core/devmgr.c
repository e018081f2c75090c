#include "core/devmgr.h"

#include "arch/x86/layout.h"
#include "core/evloop.h"
#include "snapshot/snap.h"
#include "util/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

void devmgr_init(struct devmgr *dm, struct gmem *gm, struct evloop *ev,
		 const struct devmgr_hooks *hooks)
{
	memset(dm, 0, sizeof(*dm));
	bus_init(&dm->mmio, "mmio");
	bus_init(&dm->pio, "pio");
	dm->mmio_next = LAYOUT_MMIO_START;
	dm->gsi_next = LAYOUT_GSI_FIRST;
	dm->gm = gm;
	dm->ev = ev;
	if (hooks)
		dm->hooks = *hooks;
}

static bool gsi_taken(struct devmgr *dm, uint32_t gsi)
{
	for (int i = 0; i < dm->nr_devs; i++)
		if (dm->devs[i]->has_irq && dm->devs[i]->irq.gsi == gsi)
			return true;
	return false;
}

static int new_slot(struct devmgr *dm, const char *id, struct dm_dev **out)
{
	struct dm_dev *d;

	if (dm->nr_devs >= DM_MAX_DEVS)
		return -ENOSPC;
	if (strlen(id) >= DM_ID_MAX || devmgr_find(dm, id))
		return -EINVAL;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	snprintf(d->id, sizeof(d->id), "%s", id);
	d->irq.fd = d->irq.resample_fd = -1;
	d->index = (unsigned)dm->nr_devs;
	*out = d;
	return 0;
}

/* Event loop: the guest EOI'd a level line and KVM de-asserted it (KVM_IRQFD_FLAG_RESAMPLE). */
static void resample_cb(void *opaque, uint32_t events)
{
	struct irq_line *l = opaque;
	uint64_t cnt;
	ssize_t r = read(l->resample_fd, &cnt, sizeof(cnt)); /* drain */

	(void)r;
	(void)events;
	irq_resample(l);
}

static void irq_close(struct devmgr *dm, struct irq_line *l)
{
	if (l->resample_fd >= 0) {
		if (dm->ev)
			evloop_del(dm->ev, l->resample_fd);
		close(l->resample_fd);
	}
	if (l->fd >= 0)
		close(l->fd);
	l->fd = l->resample_fd = -1;
}

static int setup_irq(struct devmgr *dm, struct dm_dev *d, uint32_t gsi, bool level)
{
	struct irq_line *l = &d->irq;
	int ret;

	d->has_irq = true;
	l->gsi = gsi;
	l->level = level;
	if (!dm->hooks.irq_bind)
		return 0;
	/* A level line is only lowered again through the resample eventfd on the loop. */
	if (level && !dm->ev)
		return -EINVAL;
	l->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (l->fd < 0)
		return -errno;
	if (level) {
		l->resample_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (l->resample_fd < 0) {
			ret = -errno;
			goto close_fds;
		}
	}
	ret = dm->hooks.irq_bind(dm->hooks.ctx, l);
	if (ret < 0)
		goto close_fds;
	if (level) {
		ret = evloop_add(dm->ev, l->resample_fd, EPOLLIN, resample_cb, l);
		if (ret < 0) {
			/* Closing the eventfds also unbinds them from KVM. */
			goto close_fds;
		}
	}
	return 0;

close_fds:
	if (l->resample_fd >= 0)
		close(l->resample_fd);
	close(l->fd);
	l->fd = l->resample_fd = -1;
	return ret;
}

int devmgr_reserve_mmio(struct devmgr *dm, const char *id, uint64_t len, bool irq,
			struct dm_dev **out)
{
	struct dm_dev *d;
	uint64_t size = (len + LAYOUT_MMIO_SLOT_SIZE - 1) & ~(LAYOUT_MMIO_SLOT_SIZE - 1);
	uint32_t gsi = dm->gsi_next;
	int ret;

	if (size == 0 || dm->mmio_next + size > LAYOUT_MMIO_START + LAYOUT_MMIO_SIZE)
		return -ENOSPC;
	if (irq) {
		while (gsi <= LAYOUT_GSI_LAST && (gsi == LAYOUT_GSI_RTC || gsi_taken(dm, gsi)))
			gsi++;
		if (gsi > LAYOUT_GSI_LAST)
			return -ENOSPC;
	}
	ret = new_slot(dm, id, &d);
	if (ret)
		return ret;
	d->kind = DM_MMIO;
	d->base = dm->mmio_next;
	d->len = size;
	if (irq) {
		/* Every MMIO slot's line is level-triggered: the virtio-mmio interrupt follows
		 * InterruptStatus (virtio 1.2 §4.2.2), and aml_mmio_device()/the MP table say so. */
		ret = setup_irq(dm, d, gsi, true);
		if (ret) {
			free(d);
			return ret;
		}
		dm->gsi_next = gsi + 1;
	}
	dm->mmio_next += size;
	dm->devs[dm->nr_devs++] = d;
	*out = d;
	return 0;
}

int devmgr_reserve_pio(struct devmgr *dm, const char *id, uint16_t base, uint16_t len, int gsi,
		       struct dm_dev **out)
{
	struct dm_dev *d;
	int ret;

	if (gsi >= 0 && gsi_taken(dm, (uint32_t)gsi))
		return -EBUSY;
	ret = new_slot(dm, id, &d);
	if (ret)
		return ret;
	d->kind = DM_PIO;
	d->base = base;
	d->len = len;
	if (gsi >= 0) {
		/* Legacy ISA lines are edge-triggered, active-high (IRQNoFlags, ISA default). */
		ret = setup_irq(dm, d, (uint32_t)gsi, false);
		if (ret) {
			free(d);
			return ret;
		}
	}
	dm->devs[dm->nr_devs++] = d;
	*out = d;
	return 0;
}

int devmgr_reserve_line(struct devmgr *dm, const char *id, uint32_t gsi, struct dm_dev **out)
{
	struct dm_dev *d;
	int ret;

	if (gsi >= LAYOUT_IOAPIC_PINS)
		return -EINVAL;
	if (gsi_taken(dm, gsi))
		return -EBUSY;
	ret = new_slot(dm, id, &d);
	if (ret)
		return ret;
	d->kind = DM_LINE;
	ret = setup_irq(dm, d, gsi, false);
	if (ret) {
		free(d);
		return ret;
	}
	dm->devs[dm->nr_devs++] = d;
	*out = d;
	return 0;
}

static struct bus *slot_bus(struct devmgr *dm, const struct dm_dev *d)
{
	switch (d->kind) {
	case DM_MMIO:
		return &dm->mmio;
	case DM_PIO:
		return &dm->pio;
	default:
		return NULL;
	}
}

static void free_slot(struct devmgr *dm, struct dm_dev *d)
{
	for (int i = 0; i < dm->nr_devs; i++) {
		if (dm->devs[i] != d)
			continue;
		memmove(&dm->devs[i], &dm->devs[i + 1],
			(size_t)(dm->nr_devs - i - 1) * sizeof(dm->devs[0]));
		dm->nr_devs--;
		break;
	}
	irq_close(dm, &d->irq);
	free(d);
}

void devmgr_irqs_hold(struct devmgr *dm)
{
	for (int i = 0; i < dm->nr_devs; i++)
		if (dm->devs[i]->has_irq)
			__atomic_store_n(&dm->devs[i]->irq.held, true, __ATOMIC_RELEASE);
}

void devmgr_irqs_release(struct devmgr *dm)
{
	for (int i = 0; i < dm->nr_devs; i++) {
		struct irq_line *l = &dm->devs[i]->irq;

		if (!dm->devs[i]->has_irq)
			continue;
		__atomic_store_n(&l->held, false, __ATOMIC_RELEASE);
		if (!__atomic_exchange_n(&l->pending, false, __ATOMIC_ACQ_REL))
			continue;
		if (l->level)
			irq_resample(l); /* asserted only if the owner's level is still high */
		else
			irq_trigger(l);
	}
}

/* A device kind that saves must name its record and load it back; one that names a record
 * must save it (core/bus.h, dev_ops.rec). */
static bool ops_consistent(const struct dev_ops *ops)
{
	bool saves = ops->save != NULL;

	if (saves == (ops->rec.type != 0) && saves == (ops->restore != NULL))
		return true;
	log_error("device kind %s: save, restore and its snapshot record type disagree "
		  "(save %s, restore %s, record type %u): a bug in its ops table",
		  ops->name, saves ? "set" : "unset", ops->restore ? "set" : "unset",
		  (unsigned)ops->rec.type);
	return false;
}

/* devmgr_attach() without releasing the slot on failure. */
static int attach(struct devmgr *dm, struct dm_dev *d, const struct dev_ops *ops, void *dev)
{
	struct bus *bus = slot_bus(dm, d);
	int ret = bus ? bus_register(bus, d->base, d->len, ops, dev) : 0;

	if (ret) {
		log_error("device %s: cannot register %#llx+%#llx on the %s bus: %s", d->id,
			  (unsigned long long)d->base, (unsigned long long)d->len, bus->name,
			  strerror(-ret));
		return ret;
	}
	d->ops = ops;
	d->dev = dev;
	log_debug("device %s: %s at %#llx+%#llx gsi %d", d->id, ops->name,
		  (unsigned long long)d->base, (unsigned long long)d->len,
		  d->has_irq ? (int)d->irq.gsi : -1);
	return 0;
}

int devmgr_attach(struct devmgr *dm, struct dm_dev *d, const struct dev_ops *ops, void *dev)
{
	int ret = ops_consistent(ops) ? attach(dm, d, ops, dev) : -EINVAL;

	if (ret)
		free_slot(dm, d);
	return ret;
}

static int reserve(struct devmgr *dm, const struct dm_slot_req *req, struct dm_dev **out)
{
	switch (req->kind) {
	case DM_MMIO:
		return devmgr_reserve_mmio(dm, req->id, req->len, req->irq, out);
	case DM_PIO:
		if (req->base > UINT16_MAX || req->len == 0 || req->len > UINT16_MAX ||
		    (req->irq && req->gsi > INT32_MAX))
			return -EINVAL;
		return devmgr_reserve_pio(dm, req->id, (uint16_t)req->base, (uint16_t)req->len,
					  req->irq ? (int)req->gsi : -1, out);
	case DM_LINE:
		if (!req->irq)
			return -EINVAL;
		return devmgr_reserve_line(dm, req->id, req->gsi, out);
	}
	return -EINVAL;
}

int devmgr_add(struct devmgr *dm, const struct dm_slot_req *req, const struct dev_ops *ops,
	       int (*create)(struct devmgr *dm, struct dm_dev *slot, const void *arg, void **dev),
	       void (*destroy)(void *dev), const void *arg, void **out)
{
	struct dm_dev *slot;
	void *dev = NULL;
	int ret;

	if (!ops_consistent(ops))
		return -EINVAL;
	ret = reserve(dm, req, &slot);
	if (ret)
		return ret;
	ret = create(dm, slot, arg, &dev);
	if (ret)
		goto release_slot;
	ret = attach(dm, slot, ops, dev);
	if (ret)
		goto destroy_dev;
	if (out)
		*out = dev;
	return 0;

destroy_dev:
	/* Before the slot goes: the device may point at its line (level source, irqfd). */
	if (destroy)
		destroy(dev);
release_slot:
	free_slot(dm, slot);
	return ret;
}

int devmgr_describe(struct devmgr *dm, struct dm_describe *ctx)
{
	for (int i = 0; i < dm->nr_devs; i++) {
		struct dm_dev *d = dm->devs[i];
		int ret;

		if (!d->ops || !d->ops->describe)
			continue;
		ret = d->ops->describe(d->dev, d, ctx);
		if (ret)
			return ret;
	}
	return 0;
}

int devmgr_ioeventfd(struct devmgr *dm, uint64_t addr, unsigned len, uint64_t datamatch, int fd,
		     bool assign)
{
	if (!dm->hooks.ioeventfd)
		return -ENOSYS;
	return dm->hooks.ioeventfd(dm->hooks.ctx, addr, len, datamatch, fd, assign);
}

int devmgr_mem_slot(struct devmgr *dm, uint64_t gpa, void *hva, uint64_t size)
{
	if (!dm->hooks.mem_slot)
		return -ENOSYS;
	return dm->hooks.mem_slot(dm->hooks.ctx, gpa, hva, size);
}

uint32_t devmgr_level_gsis(const struct devmgr *dm)
{
	uint32_t mask = 0;

	for (int i = 0; i < dm->nr_devs; i++) {
		const struct dm_dev *d = dm->devs[i];

		if (d->has_irq && d->irq.level && d->irq.gsi < 32)
			mask |= 1u << d->irq.gsi;
	}
	return mask;
}

struct dm_dev *devmgr_find(struct devmgr *dm, const char *id)
{
	for (int i = 0; i < dm->nr_devs; i++)
		if (!strcmp(dm->devs[i]->id, id))
			return dm->devs[i];
	return NULL;
}

void devmgr_quiesce(struct devmgr *dm)
{
	for (int i = 0; i < dm->nr_devs; i++)
		if (dm->devs[i]->ops && dm->devs[i]->ops->quiesce)
			dm->devs[i]->ops->quiesce(dm->devs[i]->dev);
}

#define SLOT_VERSION 1

unsigned devmgr_records(const struct dm_dev *d, struct dev_rec out[DM_MAX_RECS])
{
	unsigned n = 0;

	if (!d->ops)
		return 0;
	if (d->ops->rec.type)
		out[n++] = d->ops->rec;
	if (d->ops->inner_rec) {
		struct dev_rec inner = d->ops->inner_rec(d->dev);

		if (inner.type)
			out[n++] = inner;
	}
	return n;
}

/* The records one device declares, as the writer's filter while its save runs. */
struct declared {
	struct dev_rec recs[DM_MAX_RECS];
	unsigned n;
};

static bool declared_allows(void *ctx, uint16_t type, uint16_t version)
{
	const struct declared *dc = ctx;

	for (unsigned i = 0; i < dc->n; i++)
		if (dc->recs[i].type == type && dc->recs[i].version == version)
			return true;
	return false;
}

int devmgr_save(struct devmgr *dm, struct snap_writer *w)
{
	for (int i = 0; i < dm->nr_devs; i++) {
		struct dm_dev *d = dm->devs[i];
		struct declared dc;
		int ret;

		snap_rec_begin(w, SNAP_REC_SLOT, SLOT_VERSION, d->id);
		snap_put_u8(w, (uint8_t)d->kind);
		snap_put_u64(w, d->base);
		snap_put_u64(w, d->len);
		snap_put_bool(w, d->has_irq);
		snap_put_u32(w, d->has_irq ? d->irq.gsi : 0);
		snap_put_bool(w, d->has_irq && d->irq.level);
		if (!d->ops || !d->ops->save)
			continue;
		dc.n = devmgr_records(d, dc.recs);
		w->allow = declared_allows;
		w->allow_ctx = &dc;
		ret = d->ops->save(d->dev, w, d->id);
		w->allow = NULL;
		w->allow_ctx = NULL;
		if (!ret)
			ret = w->err;
		if (ret == -EPROTO)
			log_error("device %s (%s): its save wrote a snapshot record it does not "
				  "declare (dev_ops.rec): a bug in the device",
				  d->id, d->ops->name);
		if (ret)
			return ret;
	}
	return w->err;
}

int devmgr_check_record(struct devmgr *dm, uint16_t type, uint16_t version, const char *id,
			char *why, size_t why_size)
{
	struct dm_dev *d = devmgr_find(dm, id);
	struct dev_rec recs[DM_MAX_RECS];
	unsigned n = d ? devmgr_records(d, recs) : 0;

	if (type == SNAP_REC_SLOT && d)
		return 0;
	for (unsigned i = 0; i < n; i++) {
		if (recs[i].type != type)
			continue;
		if (version > recs[i].version)
			return err_set(-EINVAL, why, why_size,
				       "device '%s': its %s record is version %u, newer than this "
				       "ignition reads (%u)",
				       id, snap_rec_name(type), version, recs[i].version);
		return 0;
	}
	if (!snap_rec_known(type))
		return err_set(-EINVAL, why, why_size,
			       "unknown record type %u ('%s'): written by another program?",
			       (unsigned)type, id);
	if (d)
		return err_set(-EINVAL, why, why_size,
			       "a %s record for '%s', a %s device, which writes no such record",
			       snap_rec_name(type), id, d->ops ? d->ops->name : "bare");
	return err_set(-EINVAL, why, why_size,
		       "a %s record for '%s', which this machine does not have",
		       snap_rec_name(type), id);
}

int devmgr_restore(struct devmgr *dm, const struct snap_file *f, char *why, size_t why_size)
{
	struct snap_reader r;
	unsigned slots = 0;

	/* Every slot in the snapshot must exist here, with the same resources. */
	for (uint32_t i = 0; snap_file_record(f, i, &r) == 0; i++) {
		struct dm_dev *d;
		uint64_t base, len;
		uint32_t gsi;
		uint8_t kind;
		bool has_irq, level;

		if (r.type != SNAP_REC_SLOT)
			continue;
		slots++;
		d = devmgr_find(dm, r.id);
		if (!d)
			return err_set(-EINVAL, why, why_size,
				       "device '%s' is in the snapshot but not in this VM", r.id);
		if (r.version != SLOT_VERSION)
			return err_set(-EINVAL, why, why_size,
				       "device '%s': slot record version %u (want %u)", r.id,
				       r.version, SLOT_VERSION);
		kind = snap_get_u8(&r);
		base = snap_get_u64(&r);
		len = snap_get_u64(&r);
		has_irq = snap_get_bool(&r);
		gsi = snap_get_u32(&r);
		level = snap_get_bool(&r);
		if (snap_reader_done(&r))
			return err_set(-EINVAL, why, why_size, "device '%s': malformed slot record",
				       r.id);
		if (kind != d->kind || base != d->base || len != d->len || has_irq != d->has_irq ||
		    (has_irq && (gsi != d->irq.gsi || level != d->irq.level)))
			return err_set(
				-EINVAL, why, why_size,
				"device '%s': the snapshot has it at %#llx+%#llx (GSI %u), this VM"
				" at %#llx+%#llx (GSI %u)",
				r.id, (unsigned long long)base, (unsigned long long)len,
				has_irq ? gsi : 0, (unsigned long long)d->base,
				(unsigned long long)d->len, d->has_irq ? d->irq.gsi : 0);
	}
	if (slots != (unsigned)dm->nr_devs)
		return err_set(-EINVAL, why, why_size, "the snapshot has %u devices, this VM %d",
			       slots, dm->nr_devs);
	for (int i = 0; i < dm->nr_devs; i++) {
		struct dm_dev *d = dm->devs[i];
		int ret;

		if (!d->ops || !d->ops->restore)
			continue;
		ret = d->ops->restore(d->dev, f, d->id);
		if (ret)
			return err_set(-EINVAL, why, why_size,
				       "device '%s' (%s): its state does not load: %s", d->id,
				       d->ops->name, strerror(-ret));
	}
	return 0;
}

void devmgr_reset(struct devmgr *dm)
{
	for (int i = 0; i < dm->nr_devs; i++)
		if (dm->devs[i]->ops && dm->devs[i]->ops->reset)
			dm->devs[i]->ops->reset(dm->devs[i]->dev);
}

void devmgr_destroy(struct devmgr *dm)
{
	while (dm->nr_devs > 0) {
		struct dm_dev *d = dm->devs[dm->nr_devs - 1];

		if (d->ops) {
			if (slot_bus(dm, d))
				bus_unregister(slot_bus(dm, d), d->base);
			if (d->ops->destroy)
				d->ops->destroy(d->dev);
		}
		free_slot(dm, d);
	}
}

int dm_cmdline_append(struct dm_describe *ctx, const char *fmt, ...)
{
	size_t used;
	va_list ap;
	int n;

	if (!ctx->cmdline)
		return 0;
	used = strlen(ctx->cmdline);
	va_start(ap, fmt);
	n = vsnprintf(ctx->cmdline + used, ctx->cmdline_size - used, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= ctx->cmdline_size - used) {
		ctx->cmdline[used] = '\0';
		return -ENOSPC;
	}
	return 0;
}
