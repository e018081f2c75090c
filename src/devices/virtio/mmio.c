#include "devices/virtio/mmio.h"

#include "core/devmgr.h"
#include "core/evloop.h"
#include "core/gmem.h"
#include "core/irq.h"
#include "devices/virtio/virtq.h"
#include "platform/acpi/aml.h"
#include "snapshot/snap.h"
#include "util/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* Per-queue transport state: what the driver wrote, and how its notifications reach us. */
struct mmio_queue {
	struct virtio_mmio *t;
	unsigned index;
	uint32_t num;		    /* QueueNum as written; checked at QueueReady */
	uint64_t desc, avail, used; /* ring addresses as written */
	int kick_fd;		    /* eventfd the event loop watches, or -1 (no event loop) */
	bool ioeventfd;		    /* kick_fd is registered as a KVM ioeventfd */
	bool again;		    /* yielded with work left (no event loop: run_queue loops) */
};

struct virtio_mmio {
	/* Recursive: queue_notify runs with it held and devices call back into
	 * virtio_mmio_notify_used() and friends. */
	pthread_mutex_t lock;
	const struct virtio_device_ops *ops;
	void *dev;
	struct gmem *gm;
	struct irq_line *irq;
	struct devmgr *dm; /* NULL for a stand-alone transport */
	uint64_t base;	   /* guest physical base of the window (ioeventfd addresses) */
	uint64_t device_features;
	uint64_t driver_features;
	uint32_t device_features_sel;
	uint32_t driver_features_sel;
	uint32_t queue_sel;
	uint32_t shm_sel;
	uint32_t status;
	uint32_t int_status; /* atomic: read and acknowledged without the lock */
	uint32_t config_generation;
	bool active; /* DRIVER_OK accepted and the device activated */
	struct virtq vqs[VIRTIO_MAX_QUEUES];
	struct mmio_queue queues[VIRTIO_MAX_QUEUES];
};

void virtio_mmio_lock(struct virtio_mmio *t)
{
	pthread_mutex_lock(&t->lock);
}

void virtio_mmio_unlock(struct virtio_mmio *t)
{
	pthread_mutex_unlock(&t->lock);
}

/* Set InterruptStatus bits, then assert the line.  The order matters for a level line: the
 * resample after the guest's EOI reads int_status, so a bit set after that read is always
 * followed by this write, which asserts the line again. */
static void raise_interrupt(struct virtio_mmio *t, uint32_t bits)
{
	__atomic_or_fetch(&t->int_status, bits, __ATOMIC_SEQ_CST);
	if (t->irq)
		irq_trigger(t->irq);
}

/* The level of the transport's line (virtio 1.2 §4.2.2: the interrupt stays pending while
 * any InterruptStatus bit is set; the driver clears them through InterruptACK). */
static bool irq_level_high(void *opaque)
{
	struct virtio_mmio *t = opaque;

	return __atomic_load_n(&t->int_status, __ATOMIC_SEQ_CST) != 0;
}

static struct mmio_queue *selected_queue(struct virtio_mmio *t)
{
	return t->queue_sel < t->ops->num_queues ? &t->queues[t->queue_sel] : NULL;
}

/* Route QueueNotify writes for queue i straight to its eventfd (KVM ioeventfd), so a kick costs
 * the vCPU no exit to user space.  Without one, writes still exit and notify() forwards them. */
static void queue_arm(struct virtio_mmio *t, unsigned i)
{
	struct mmio_queue *q = &t->queues[i];
	int ret;

	if (!t->dm || q->kick_fd < 0 || q->ioeventfd)
		return;
	ret = devmgr_ioeventfd(t->dm, t->base + VIRTIO_MMIO_QUEUE_NOTIFY, 4, i, q->kick_fd, true);
	if (ret == 0)
		q->ioeventfd = true;
	else if (ret != -ENOSYS)
		log_warn("%s: queue %u: no ioeventfd (%s); notifications will exit", t->ops->name,
			 i, strerror(-ret));
}

static void queue_disarm(struct virtio_mmio *t, unsigned i)
{
	struct mmio_queue *q = &t->queues[i];

	if (!q->ioeventfd)
		return;
	devmgr_ioeventfd(t->dm, t->base + VIRTIO_MMIO_QUEUE_NOTIFY, 4, i, q->kick_fd, false);
	q->ioeventfd = false;
}

/* Without an event loop a yielding queue is re-run here; each pass is bounded by the device's
 * budget, and this bounds the passes (a queue holds at most 32768 chains). */
#define RUN_QUEUE_MAX_PASSES (VIRTIO_QUEUE_MAX_SIZE / VIRTIO_QUEUE_BUDGET + 2)

/* Hand a notification for queue i to the device, if it may use that queue. */
static void run_queue(struct virtio_mmio *t, unsigned i)
{
	struct virtq *vq = &t->vqs[i];

	for (unsigned pass = 0; pass < RUN_QUEUE_MAX_PASSES; pass++) {
		if (!t->active || !vq->ready || vq->broken ||
		    (t->status & VIRTIO_STATUS_DEVICE_NEEDS_RESET))
			return;
		t->queues[i].again = false;
		t->ops->queue_notify(t->dev, i);
		if (!t->queues[i].again)
			return;
	}
}

void virtio_mmio_queue_yield(struct virtio_mmio *t, unsigned q)
{
	uint64_t one = 1;

	if (q >= t->ops->num_queues)
		return;
	if (t->queues[q].kick_fd < 0) {
		t->queues[q].again = true;
		return;
	}
	/* The kick eventfd is level-triggered in the loop's epoll set: it fires again after the
	 * sources that are ready now (epoll hands out ready entries round-robin). */
	if (write(t->queues[q].kick_fd, &one, sizeof(one)) < 0)
		log_warn("%s: queue %u: cannot re-arm after yielding: %s", t->ops->name, q,
			 strerror(errno));
}

/* Event loop: a queue's eventfd fired (ioeventfd, or a forwarded QueueNotify). */
static void kick_cb(void *opaque, uint32_t events)
{
	struct mmio_queue *q = opaque;
	struct virtio_mmio *t = q->t;
	uint64_t cnt;
	ssize_t r;

	virtio_mmio_lock(t);
	r = read(q->kick_fd, &cnt, sizeof(cnt)); /* drain; EAGAIN if another wake took it */
	(void)r;
	run_queue(t, q->index);
	virtio_mmio_unlock(t);
}

/* vCPU thread: the guest wrote QueueNotify (no ioeventfd took it). */
static void notify(struct virtio_mmio *t, uint32_t i)
{
	uint64_t one = 1;

	if (i >= t->ops->num_queues) {
		log_guest("%s: notify for queue %u of %u", t->ops->name, i, t->ops->num_queues);
		return;
	}
	if (t->queues[i].kick_fd >= 0) {
		/* Queue work belongs to the event loop (DESIGN.md §1). */
		ssize_t r = write(t->queues[i].kick_fd, &one, sizeof(one));
		(void)r;
		return;
	}
	run_queue(t, i);
}

/* Power-on state (virtio 1.2 §2.4: writing 0 to status resets the device). */
static void reset_locked(struct virtio_mmio *t)
{
	if (t->ops->reset)
		t->ops->reset(t->dev);
	for (unsigned i = 0; i < t->ops->num_queues; i++) {
		struct mmio_queue *q = &t->queues[i];

		queue_disarm(t, i);
		virtq_reset(&t->vqs[i]);
		q->num = 0;
		q->desc = q->avail = q->used = 0;
	}
	t->driver_features = 0;
	t->device_features_sel = t->driver_features_sel = 0;
	t->queue_sel = t->shm_sel = 0;
	t->status = 0;
	t->active = false;
	__atomic_store_n(&t->int_status, 0, __ATOMIC_SEQ_CST);
}

static void set_needs_reset_locked(struct virtio_mmio *t)
{
	if (t->status & VIRTIO_STATUS_DEVICE_NEEDS_RESET)
		return;
	log_guest("%s: device needs reset", t->ops->name);
	t->status |= VIRTIO_STATUS_DEVICE_NEEDS_RESET;
	/* §4.2.2: the device raises a configuration change notification with NEEDS_RESET. */
	raise_interrupt(t, VIRTIO_INT_CONFIG);
}

/* Hand the ready queues to the device (DRIVER_OK, or a restored live device).  Queue indices
 * are left alone.  0, or the device's -errno after which the device needs a reset. */
static int activate(struct virtio_mmio *t)
{
	unsigned n = t->ops->num_queues;
	int ret;

	for (unsigned i = 0; i < n; i++)
		if (t->vqs[i].ready)
			virtq_set_features(&t->vqs[i], t->driver_features);
	ret = t->ops->activate ? t->ops->activate(t->dev, t, t->driver_features, t->vqs, n) : 0;
	if (ret) {
		log_warn("%s: activation failed: %s", t->ops->name, strerror(-ret));
		set_needs_reset_locked(t);
		return ret;
	}
	t->active = true;
	for (unsigned i = 0; i < n; i++)
		if (t->vqs[i].ready)
			queue_arm(t, i);
	/* Kicks that came before DRIVER_OK reached no device (run_queue() drops them while
	 * inactive).  §3.1.1 forbids them, but drivers send them: Linux's balloon driver primes
	 * its stats queue and kicks it before DRIVER_OK.  Run every ready queue once now, as if
	 * kicked, so no buffer made available before activation waits for a kick that already
	 * came; a queue with nothing available costs one empty pass. */
	for (unsigned i = 0; i < n; i++)
		if (t->vqs[i].ready)
			notify(t, i);
	return 0;
}

/* §3.1.1, §2.2.2: FEATURES_OK only sticks for a subset of the offered features that includes
 * VERSION_1 (this is a modern-only transport). */
static bool features_ok(const struct virtio_mmio *t)
{
	return !(t->driver_features & ~t->device_features) &&
	       (t->driver_features & VIRTIO_BIT(VIRTIO_F_VERSION_1));
}

static void write_status(struct virtio_mmio *t, uint32_t val)
{
	uint32_t old = t->status, new;

	if (val == 0) {
		reset_locked(t);
		return;
	}
	/* Status bits are only ever added by the driver (§2.1); NEEDS_RESET is the device's. */
	new = old | (val & 0xff & ~VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	if ((new &VIRTIO_STATUS_FEATURES_OK) && !(old & VIRTIO_STATUS_FEATURES_OK) &&
	    !features_ok(t)) {
		log_guest("%s: refusing features %#llx (offered %#llx)", t->ops->name,
			  (unsigned long long)t->driver_features,
			  (unsigned long long)t->device_features);
		new &= ~VIRTIO_STATUS_FEATURES_OK;
	}
	if ((new &VIRTIO_STATUS_DRIVER_OK) && !(old & VIRTIO_STATUS_DRIVER_OK) &&
	    !(new &VIRTIO_STATUS_FEATURES_OK)) {
		log_guest("%s: DRIVER_OK without FEATURES_OK", t->ops->name);
		new &= ~VIRTIO_STATUS_DRIVER_OK;
	}
	t->status = new;
	if ((new &VIRTIO_STATUS_DRIVER_OK) && !(old & VIRTIO_STATUS_DRIVER_OK))
		(void)activate(t); /* a failure leaves DEVICE_NEEDS_RESET for the driver */
}

static void write_queue_ready(struct virtio_mmio *t, struct mmio_queue *q, uint32_t val)
{
	struct virtq *vq = &t->vqs[q->index];
	int ret;

	if (!val) {
		queue_disarm(t, q->index);
		virtq_reset(vq);
		return;
	}
	if (vq->ready)
		return;
	/* §4.2.3.2: a size the device can take and rings wholly inside guest RAM, aligned. */
	if (!virtq_size_valid(q->num, t->ops->queue_max_size)) {
		log_guest("%s: queue %u: invalid size %u (max %u)", t->ops->name, q->index, q->num,
			  t->ops->queue_max_size);
		return;
	}
	ret = virtq_setup(vq, t->gm, (uint16_t)q->num, q->desc, q->avail, q->used);
	if (ret) {
		log_guest("%s: queue %u: rings %#llx/%#llx/%#llx not in guest RAM or misaligned",
			  t->ops->name, q->index, (unsigned long long)q->desc,
			  (unsigned long long)q->avail, (unsigned long long)q->used);
		return;
	}
	if (t->active) {
		virtq_set_features(vq, t->driver_features);
		queue_arm(t, q->index);
	}
}

static void set_half(uint64_t *v, bool high, uint32_t val)
{
	if (high)
		*v = (*v & 0xffffffffull) | ((uint64_t)val << 32);
	else
		*v = (*v & ~0xffffffffull) | val;
}

static uint32_t read_reg_locked(struct virtio_mmio *t, uint64_t off)
{
	struct mmio_queue *q = selected_queue(t);

	switch (off) {
	case VIRTIO_MMIO_DEVICE_FEATURES:
		/* §4.2.2: selector 0 = bits 0..31, 1 = bits 32..63; anything else reads 0. */
		if (t->device_features_sel == 0)
			return (uint32_t)t->device_features;
		if (t->device_features_sel == 1)
			return (uint32_t)(t->device_features >> 32);
		return 0;
	case VIRTIO_MMIO_QUEUE_NUM_MAX:
		return q ? t->ops->queue_max_size : 0;
	case VIRTIO_MMIO_QUEUE_READY:
		return q ? t->vqs[q->index].ready : 0;
	case VIRTIO_MMIO_STATUS:
		return t->status;
	case VIRTIO_MMIO_CONFIG_GENERATION:
		return t->config_generation;
	case VIRTIO_MMIO_SHM_LEN_LOW:
	case VIRTIO_MMIO_SHM_LEN_HIGH:
	case VIRTIO_MMIO_SHM_BASE_LOW:
	case VIRTIO_MMIO_SHM_BASE_HIGH:
		return 0xffffffffu; /* no shared memory regions: length -1 (§4.2.2) */
	default:
		return 0; /* write-only or reserved */
	}
}

static uint64_t mmio_read(void *opaque, uint64_t off, unsigned size)
{
	struct virtio_mmio *t = opaque;
	uint64_t v;

	if (off >= VIRTIO_MMIO_CONFIG) {
		/* §4.2.2.2: config space may be read at any width; Linux reads it bytewise. */
		virtio_mmio_lock(t);
		v = 0;
		if (t->ops->config_read)
			v = t->ops->config_read(t->dev, (uint32_t)(off - VIRTIO_MMIO_CONFIG), size);
		virtio_mmio_unlock(t);
		return v;
	}
	if (size != 4 || (off & 3)) {
		log_guest("%s: %u-byte read of register %#llx ignored", t->ops->name, size,
			  (unsigned long long)off);
		return 0;
	}
	switch (off) {
	case VIRTIO_MMIO_MAGIC_VALUE:
		return VIRTIO_MMIO_MAGIC;
	case VIRTIO_MMIO_VERSION:
		return VIRTIO_MMIO_VERSION_2;
	case VIRTIO_MMIO_DEVICE_ID:
		return t->ops->device_id;
	case VIRTIO_MMIO_VENDOR_ID:
		return VIRTIO_MMIO_VENDOR;
	case VIRTIO_MMIO_INTERRUPT_STATUS:
		/* Without the lock: the guest's interrupt handler must not wait for a disk
		 * request that the event loop is running under it. */
		return __atomic_load_n(&t->int_status, __ATOMIC_SEQ_CST);
	default:
		virtio_mmio_lock(t);
		v = read_reg_locked(t, off);
		virtio_mmio_unlock(t);
		return v;
	}
}

static void write_reg_locked(struct virtio_mmio *t, uint64_t off, uint32_t val)
{
	struct mmio_queue *q = selected_queue(t);
	bool q_writable = q && !t->vqs[q->index].ready; /* §4.2.3.2: only while not ready */

	switch (off) {
	case VIRTIO_MMIO_DEVICE_FEATURES_SEL:
		t->device_features_sel = val;
		break;
	case VIRTIO_MMIO_DRIVER_FEATURES:
		/* Features are fixed once FEATURES_OK is set (§3.1.1). */
		if (t->status & VIRTIO_STATUS_FEATURES_OK)
			log_guest("%s: driver features written after FEATURES_OK", t->ops->name);
		else if (t->driver_features_sel <= 1)
			set_half(&t->driver_features, t->driver_features_sel == 1, val);
		break;
	case VIRTIO_MMIO_DRIVER_FEATURES_SEL:
		t->driver_features_sel = val;
		break;
	case VIRTIO_MMIO_QUEUE_SEL:
		t->queue_sel = val; /* out of range: reads give 0, writes are dropped */
		break;
	case VIRTIO_MMIO_QUEUE_NUM:
		if (q_writable)
			q->num = val;
		break;
	case VIRTIO_MMIO_QUEUE_READY:
		if (q)
			write_queue_ready(t, q, val);
		break;
	case VIRTIO_MMIO_QUEUE_NOTIFY:
		notify(t, val);
		break;
	case VIRTIO_MMIO_STATUS:
		write_status(t, val);
		break;
	case VIRTIO_MMIO_QUEUE_DESC_LOW:
	case VIRTIO_MMIO_QUEUE_DESC_HIGH:
		if (q_writable)
			set_half(&q->desc, off == VIRTIO_MMIO_QUEUE_DESC_HIGH, val);
		break;
	case VIRTIO_MMIO_QUEUE_AVAIL_LOW:
	case VIRTIO_MMIO_QUEUE_AVAIL_HIGH:
		if (q_writable)
			set_half(&q->avail, off == VIRTIO_MMIO_QUEUE_AVAIL_HIGH, val);
		break;
	case VIRTIO_MMIO_QUEUE_USED_LOW:
	case VIRTIO_MMIO_QUEUE_USED_HIGH:
		if (q_writable)
			set_half(&q->used, off == VIRTIO_MMIO_QUEUE_USED_HIGH, val);
		break;
	case VIRTIO_MMIO_SHM_SEL:
		t->shm_sel = val;
		break;
	default:
		log_guest("%s: write of %#x to register %#llx ignored", t->ops->name, val,
			  (unsigned long long)off);
		break;
	}
}

static void mmio_write(void *opaque, uint64_t off, unsigned size, uint64_t val)
{
	struct virtio_mmio *t = opaque;

	if (off >= VIRTIO_MMIO_CONFIG) {
		virtio_mmio_lock(t);
		if (t->ops->config_write)
			t->ops->config_write(t->dev, (uint32_t)(off - VIRTIO_MMIO_CONFIG), size,
					     val);
		virtio_mmio_unlock(t);
		return;
	}
	if (size != 4 || (off & 3)) {
		log_guest("%s: %u-byte write of register %#llx ignored", t->ops->name, size,
			  (unsigned long long)off);
		return;
	}
	if (off == VIRTIO_MMIO_INTERRUPT_ACK) {
		__atomic_and_fetch(&t->int_status, ~(uint32_t)val, __ATOMIC_SEQ_CST);
		return;
	}
	virtio_mmio_lock(t);
	write_reg_locked(t, off, (uint32_t)val);
	virtio_mmio_unlock(t);
}

void virtio_mmio_notify_used(struct virtio_mmio *t, struct virtq *vq)
{
	virtio_mmio_lock(t);
	if (virtq_should_notify(vq))
		raise_interrupt(t, VIRTIO_INT_USED);
	virtio_mmio_unlock(t);
}

void virtio_mmio_config_changed(struct virtio_mmio *t)
{
	virtio_mmio_lock(t);
	t->config_generation++;
	raise_interrupt(t, VIRTIO_INT_CONFIG);
	virtio_mmio_unlock(t);
}

void virtio_mmio_set_needs_reset(struct virtio_mmio *t)
{
	virtio_mmio_lock(t);
	set_needs_reset_locked(t);
	virtio_mmio_unlock(t);
}

uint32_t virtio_mmio_status(struct virtio_mmio *t)
{
	uint32_t s;

	virtio_mmio_lock(t);
	s = t->status;
	virtio_mmio_unlock(t);
	return s;
}

void virtio_mmio_reset(struct virtio_mmio *t)
{
	virtio_mmio_lock(t);
	reset_locked(t);
	virtio_mmio_unlock(t);
}

void virtio_mmio_quiesce(struct virtio_mmio *t)
{
	virtio_mmio_lock(t);
	if (t->ops->quiesce)
		t->ops->quiesce(t->dev);
	virtio_mmio_unlock(t);
}

static void mmio_reset(void *opaque)
{
	virtio_mmio_reset(opaque);
}

/* The DSDT node and the command-line entry Linux's virtio_mmio driver probes from. */
static int mmio_describe(void *opaque, const struct dm_dev *slot, struct dm_describe *ctx)
{
	int gsi = slot->has_irq ? (int)slot->irq.gsi : -1;
	char name[5];
	int ret;

	(void)opaque;
	/* "V000".."V999": four characters, unique per slot (ACPI 6.4 §20.2.2 NameSeg). */
	snprintf(name, sizeof(name), "V%03u", slot->index % 1000);
	if (ctx->dsdt) {
		ret = aml_mmio_device(ctx->dsdt, name, "LNRO0005", slot->index, slot->base,
				      (uint32_t)slot->len, gsi, slot->irq.level);
		if (ret)
			return ret;
	}
	if (ctx->cmdline && gsi >= 0) {
		ret = dm_cmdline_append(ctx, " virtio_mmio.device=%lluK@0x%llx:%d",
					(unsigned long long)(slot->len / 1024),
					(unsigned long long)slot->base, gsi);
		if (ret)
			return ret;
	}
	return 0;
}

/* Free the transport; the device too when `with_dev`. */
static void transport_free(struct virtio_mmio *t, bool with_dev)
{
	for (unsigned i = 0; i < t->ops->num_queues; i++) {
		struct mmio_queue *q = &t->queues[i];

		queue_disarm(t, i);
		if (q->kick_fd >= 0) {
			if (t->dm && t->dm->ev)
				evloop_del(t->dm->ev, q->kick_fd);
			close(q->kick_fd);
		}
	}
	if (t->irq && t->irq->level_opaque == t)
		irq_set_level_source(t->irq, NULL, NULL);
	if (with_dev && t->ops->destroy)
		t->ops->destroy(t->dev);
	else if (!with_dev && t->ops->set_transport)
		t->ops->set_transport(t->dev, NULL); /* the device outlives its transport */
	pthread_mutex_destroy(&t->lock);
	free(t);
}

void virtio_mmio_destroy(struct virtio_mmio *t)
{
	if (t)
		transport_free(t, true);
}

static void mmio_destroy(void *opaque)
{
	virtio_mmio_destroy(opaque);
}

static void mmio_quiesce(void *opaque)
{
	virtio_mmio_quiesce(opaque);
}

/* Snapshots (SNAP_REC_VIRTIO_MMIO).  The transport saves the common virtio state, the device
 * its own record(s) under the same id (virtio_device_ops.save).  Payload, version 1, every
 * integer little-endian:
 *
 *   u32 device id          u64 device features offered   u64 driver features
 *   u32 DeviceFeaturesSel  u32 DriverFeaturesSel  u32 QueueSel  u32 SHMSel
 *   u32 status             u32 InterruptStatus    u32 ConfigGeneration
 *   u32 queue count, then per queue:
 *     u32 QueueNum  u64 QueueDesc  u64 QueueDriver  u64 QueueDevice  bool QueueReady
 *     u16 last_avail  u16 used_idx  u16 signalled_used  bool signalled_valid  bool notify_off
 *     bool broken                                        (struct virtq_progress; 0 if not ready)
 *
 * Queue registers are saved as the driver wrote them, also for a queue that is not ready (it
 * may be half programmed).  Whether the device is active is not saved: it is exactly "DRIVER_OK
 * accepted", and a restored device with DRIVER_OK (without FAILED or DEVICE_NEEDS_RESET) is
 * activated again as the status write does it. */
#define VIRTIO_MMIO_STATE_VERSION 1

struct mmio_queue_state {
	uint32_t num;
	uint64_t desc, avail, used;
	bool ready;
	struct virtq_progress progress;
};

/* The transport's savable state, apart from its lock, fds and host pointers. */
struct mmio_state {
	uint32_t device_id;
	uint64_t device_features, driver_features;
	uint32_t device_features_sel, driver_features_sel, queue_sel, shm_sel;
	uint32_t status, int_status, config_generation;
	uint32_t nr_queues;
	struct mmio_queue_state q[VIRTIO_MAX_QUEUES];
};

/* The status is a byte: write_status() keeps whatever the driver sets in the low eight bits
 * (but DEVICE_NEEDS_RESET, which only the device sets). */
#define STATUS_MASK 0xffu
#define INT_MASK    (VIRTIO_INT_USED | VIRTIO_INT_CONFIG)

static int mmio_save(void *opaque, struct snap_writer *w, const char *id)
{
	struct virtio_mmio *t = opaque;
	int ret = 0;

	virtio_mmio_lock(t);
	snap_rec_begin(w, SNAP_REC_VIRTIO_MMIO, VIRTIO_MMIO_STATE_VERSION, id);
	snap_put_u32(w, t->ops->device_id);
	snap_put_u64(w, t->device_features);
	snap_put_u64(w, t->driver_features);
	snap_put_u32(w, t->device_features_sel);
	snap_put_u32(w, t->driver_features_sel);
	snap_put_u32(w, t->queue_sel);
	snap_put_u32(w, t->shm_sel);
	snap_put_u32(w, t->status);
	snap_put_u32(w, __atomic_load_n(&t->int_status, __ATOMIC_SEQ_CST));
	snap_put_u32(w, t->config_generation);
	snap_put_u32(w, t->ops->num_queues);
	for (unsigned i = 0; i < t->ops->num_queues; i++) {
		const struct mmio_queue *q = &t->queues[i];
		struct virtq_progress p;

		virtq_get_progress(&t->vqs[i], &p);
		snap_put_u32(w, q->num);
		snap_put_u64(w, q->desc);
		snap_put_u64(w, q->avail);
		snap_put_u64(w, q->used);
		snap_put_bool(w, t->vqs[i].ready);
		snap_put_u16(w, p.last_avail);
		snap_put_u16(w, p.used_idx);
		snap_put_u16(w, p.signalled_used);
		snap_put_bool(w, p.signalled_valid);
		snap_put_bool(w, p.notify_off);
		snap_put_bool(w, p.broken);
	}
	if (!w->err && t->ops->save)
		ret = t->ops->save(t->dev, w, id);
	virtio_mmio_unlock(t);
	return ret ? ret : w->err;
}

static void read_state(struct snap_reader *r, struct mmio_state *s)
{
	memset(s, 0, sizeof(*s));
	s->device_id = snap_get_u32(r);
	s->device_features = snap_get_u64(r);
	s->driver_features = snap_get_u64(r);
	s->device_features_sel = snap_get_u32(r);
	s->driver_features_sel = snap_get_u32(r);
	s->queue_sel = snap_get_u32(r);
	s->shm_sel = snap_get_u32(r);
	s->status = snap_get_u32(r);
	s->int_status = snap_get_u32(r);
	s->config_generation = snap_get_u32(r);
	s->nr_queues = snap_get_u32(r);
	if (s->nr_queues > VIRTIO_MAX_QUEUES) {
		snap_fail(r);
		return;
	}
	for (unsigned i = 0; i < s->nr_queues && !r->err; i++) {
		struct mmio_queue_state *q = &s->q[i];

		q->num = snap_get_u32(r);
		q->desc = snap_get_u64(r);
		q->avail = snap_get_u64(r);
		q->used = snap_get_u64(r);
		q->ready = snap_get_bool(r);
		q->progress.last_avail = snap_get_u16(r);
		q->progress.used_idx = snap_get_u16(r);
		q->progress.signalled_used = snap_get_u16(r);
		q->progress.signalled_valid = snap_get_bool(r);
		q->progress.notify_off = snap_get_bool(r);
		q->progress.broken = snap_get_bool(r);
	}
}

/* Check `s` against this transport's device and guest memory, and build the queues it
 * describes into vqs[0..num_queues).  false (with a reason logged) if anything is off. */
static bool check_state(struct virtio_mmio *t, const struct mmio_state *s, struct virtq *vqs)
{
	const char *name = t->ops->name;
	uint64_t negotiated = s->driver_features;

	if (s->device_id != t->ops->device_id) {
		log_warn("%s: snapshot of device id %u, this is %u", name, s->device_id,
			 t->ops->device_id);
		return false;
	}
	if (s->nr_queues > t->ops->num_queues) {
		log_warn("%s: snapshot has %u queues, the device %u", name, s->nr_queues,
			 t->ops->num_queues);
		return false;
	}
	if (s->status & ~STATUS_MASK || s->int_status & ~INT_MASK) {
		log_warn("%s: snapshot status %#x, interrupt status %#x", name, s->status,
			 s->int_status);
		return false;
	}
	/* The status write path's rules: DRIVER_OK only after FEATURES_OK, and FEATURES_OK only
	 * for offered features with VERSION_1 (§3.1.1), offered then and offered now.  Before
	 * FEATURES_OK the driver features are just what was written, checked when it is set. */
	if ((s->status & VIRTIO_STATUS_DRIVER_OK) && !(s->status & VIRTIO_STATUS_FEATURES_OK)) {
		log_warn("%s: snapshot status %#x: DRIVER_OK without FEATURES_OK", name, s->status);
		return false;
	}
	if ((s->status & VIRTIO_STATUS_FEATURES_OK) &&
	    ((negotiated & ~s->device_features) || (negotiated & ~t->device_features) ||
	     !(negotiated & VIRTIO_BIT(VIRTIO_F_VERSION_1)))) {
		log_warn("%s: snapshot negotiated features %#llx; offered %#llx then, %#llx now",
			 name, (unsigned long long)negotiated,
			 (unsigned long long)s->device_features,
			 (unsigned long long)t->device_features);
		return false;
	}
	for (unsigned i = 0; i < t->ops->num_queues; i++) {
		const struct mmio_queue_state *q = &s->q[i]; /* zero past nr_queues */
		const struct virtq_progress *p = &q->progress;

		virtq_reset(&vqs[i]);
		if (!q->ready) {
			/* virtq_reset() state: nothing popped, nothing used. */
			if (p->last_avail || p->used_idx || p->signalled_used ||
			    p->signalled_valid || p->notify_off || p->broken) {
				log_warn("%s: queue %u: not ready but has progress", name, i);
				return false;
			}
			continue;
		}
		/* §4.2.3.2, as write_queue_ready() checks it; and where the device stands. */
		if (!virtq_size_valid(q->num, t->ops->queue_max_size) ||
		    virtq_setup(&vqs[i], t->gm, (uint16_t)q->num, q->desc, q->avail, q->used) ||
		    virtq_set_progress(&vqs[i], p)) {
			log_warn("%s: queue %u: size %u, rings %#llx/%#llx/%#llx, indices %u/%u: "
				 "not for this device and guest memory",
				 name, i, q->num, (unsigned long long)q->desc,
				 (unsigned long long)q->avail, (unsigned long long)q->used,
				 p->last_avail, p->used_idx);
			return false;
		}
	}
	return true;
}

/* Power-on state, as virtio_mmio_create() leaves it: what restore may overwrite. */
static bool pristine(const struct virtio_mmio *t)
{
	if (t->status || t->active)
		return false;
	for (unsigned i = 0; i < t->ops->num_queues; i++)
		if (t->vqs[i].ready || t->queues[i].ioeventfd)
			return false;
	return true;
}

static void commit_state(struct virtio_mmio *t, const struct mmio_state *s, const struct virtq *vqs)
{
	t->driver_features = s->driver_features;
	t->device_features_sel = s->device_features_sel;
	t->driver_features_sel = s->driver_features_sel;
	t->queue_sel = s->queue_sel;
	t->shm_sel = s->shm_sel;
	t->status = s->status;
	t->config_generation = s->config_generation;
	for (unsigned i = 0; i < t->ops->num_queues; i++) {
		struct mmio_queue *q = &t->queues[i];

		q->num = s->q[i].num;
		q->desc = s->q[i].desc;
		q->avail = s->q[i].avail;
		q->used = s->q[i].used;
		t->vqs[i] = vqs[i]; /* devices keep &t->vqs[i]: copy in place */
	}
	__atomic_store_n(&t->int_status, s->int_status, __ATOMIC_SEQ_CST);
}

/* Load the transport's record, then the device's, then bring a live device back: activate it
 * with its queues where they stood, register the queues' ioeventfds, and run every ready queue
 * once (as DRIVER_OK does), so chains the driver made available before the snapshot, or that
 * a yielding device had left, are not left waiting for a kick that will not come again.
 *
 * The device's restore runs once the transport's record is validated and before anything is
 * committed (a device cannot see the transport before it is activated), so a record that
 * either refuses leaves both as they were.  A device that then fails to activate is left
 * needing a reset, as after a failed DRIVER_OK. */
static int mmio_restore(void *opaque, const struct snap_file *f, const char *id)
{
	struct virtio_mmio *t = opaque;
	struct virtq vqs[VIRTIO_MAX_QUEUES];
	struct snap_reader r;
	struct mmio_state s;
	int ret;

	if (snap_file_find(f, SNAP_REC_VIRTIO_MMIO, id, &r)) {
		log_warn("%s: no transport record for '%s'", t->ops->name, id);
		return -EINVAL;
	}
	if (r.version != VIRTIO_MMIO_STATE_VERSION) {
		log_warn("%s: transport record version %u (want %u)", t->ops->name, r.version,
			 VIRTIO_MMIO_STATE_VERSION);
		return -EINVAL;
	}
	read_state(&r, &s);
	if (snap_reader_done(&r)) {
		log_warn("%s: malformed transport record", t->ops->name);
		return -EINVAL;
	}
	virtio_mmio_lock(t);
	if (!pristine(t)) {
		log_warn("%s: restore onto a device in use (status %#x)", t->ops->name, t->status);
		ret = -EBUSY;
		goto unlock;
	}
	if (!check_state(t, &s, vqs)) {
		ret = -EINVAL;
		goto unlock;
	}
	if (t->ops->restore) {
		ret = t->ops->restore(t->dev, f, id);
		if (ret)
			goto unlock;
	}
	commit_state(t, &s, vqs);
	/* The line follows InterruptStatus (irq_level_high): assert it for bits the driver has
	 * not acknowledged yet; the resample at each EOI keeps it asserted until it does. */
	if (s.int_status && t->irq)
		irq_trigger(t->irq);
	ret = 0;
	if ((s.status & VIRTIO_STATUS_DRIVER_OK) &&
	    !(s.status & (VIRTIO_STATUS_FAILED | VIRTIO_STATUS_DEVICE_NEEDS_RESET)))
		ret = activate(t);
unlock:
	virtio_mmio_unlock(t);
	return ret;
}

/* The virtio device's record, which mmio_save writes after the transport's. */
static struct dev_rec mmio_inner_rec(const void *opaque)
{
	const struct virtio_mmio *t = opaque;

	return t->ops->rec;
}

const struct dev_ops virtio_mmio_dev_ops = {
	.name = "virtio-mmio",
	.sizes = BUS_SZ_ANY,
	.read = mmio_read,
	.write = mmio_write,
	.reset = mmio_reset,
	.quiesce = mmio_quiesce,
	.describe = mmio_describe,
	.save = mmio_save,
	.restore = mmio_restore,
	.rec = { SNAP_REC_VIRTIO_MMIO, VIRTIO_MMIO_STATE_VERSION },
	.inner_rec = mmio_inner_rec,
	.destroy = mmio_destroy,
};

int virtio_mmio_create(struct gmem *gm, struct irq_line *irq, const struct virtio_device_ops *ops,
		       void *dev, struct virtio_mmio **out)
{
	pthread_mutexattr_t attr;
	struct virtio_mmio *t;
	int ret;

	if (!ops || !ops->queue_notify || !ops->features || ops->num_queues == 0 ||
	    ops->num_queues > VIRTIO_MAX_QUEUES ||
	    !virtq_size_valid(ops->queue_max_size, VIRTIO_QUEUE_MAX_SIZE))
		return -EINVAL;
	/* A device that saves names its record (virtio.h), so that a restore knows it. */
	if ((ops->save != NULL) != (ops->rec.type != 0) ||
	    (ops->save != NULL) != (ops->restore != NULL)) {
		log_error("%s: save, restore and its snapshot record type disagree: a bug in its "
			  "ops table",
			  ops->name);
		return -EINVAL;
	}
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	/* The transport lock is recursive: a device handler may call back into the transport
	 * (interrupts, yield) while holding it. */
	ret = pthread_mutexattr_init(&attr);
	if (ret) {
		free(t);
		return -ret;
	}
	ret = pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
	if (!ret)
		ret = pthread_mutex_init(&t->lock, &attr);
	pthread_mutexattr_destroy(&attr);
	if (ret) {
		free(t);
		return -ret;
	}
	t->ops = ops;
	t->dev = dev;
	t->gm = gm;
	t->irq = irq;
	if (irq)
		irq_set_level_source(irq, irq_level_high, t);
	t->device_features = ops->features(dev);
	for (unsigned i = 0; i < VIRTIO_MAX_QUEUES; i++) {
		t->queues[i].t = t;
		t->queues[i].index = i;
		t->queues[i].kick_fd = -1;
	}
	if (ops->set_transport)
		ops->set_transport(dev, t);
	*out = t;
	return 0;
}

struct add_arg {
	const struct virtio_device_ops *ops;
	void *dev;
};

/* devmgr_add() create: a transport for the device on the slot's line and window, with a
 * kick eventfd per queue on the manager's event loop. */
static int add_create(struct devmgr *dm, struct dm_dev *slot, const void *arg, void **out)
{
	const struct add_arg *a = arg;
	struct virtio_mmio *t;
	int ret;

	ret = virtio_mmio_create(dm->gm, &slot->irq, a->ops, a->dev, &t);
	if (ret)
		return ret;
	t->dm = dm;
	t->base = slot->base;
	for (unsigned i = 0; dm->ev && i < a->ops->num_queues; i++) {
		int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

		if (fd < 0) {
			ret = -errno;
			goto free_transport;
		}
		ret = evloop_add(dm->ev, fd, EPOLLIN, kick_cb, &t->queues[i]);
		if (ret) {
			close(fd);
			goto free_transport;
		}
		t->queues[i].kick_fd = fd;
	}
	*out = t;
	return 0;

free_transport:
	transport_free(t, false);
	return ret;
}

/* devmgr_add() destroy: the transport only; a failed add leaves the device to its caller. */
static void add_destroy(void *t)
{
	transport_free(t, false);
}

int virtio_mmio_add(struct devmgr *dm, const char *id, const struct virtio_device_ops *ops,
		    void *dev, struct virtio_mmio **out)
{
	const struct dm_slot_req req = {
		.id = id, .kind = DM_MMIO, .len = VIRTIO_MMIO_WINDOW, .irq = true
	};
	const struct add_arg a = { .ops = ops, .dev = dev };
	void *t;
	int ret = devmgr_add(dm, &req, &virtio_mmio_dev_ops, add_create, add_destroy, &a, &t);

	if (!ret && out)
		*out = t;
	return ret;
}
