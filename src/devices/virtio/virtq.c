#include "devices/virtio/virtq.h"

#include "core/gmem.h"
#include "devices/virtio/virtio.h"
#include "util/log.h"

#include <errno.h>
#include <string.h>

/* Ring layout (virtio 1.2 §2.7.6, §2.7.8): avail = flags, idx, ring[size], used_event;
 * used = flags, idx, ring[size] of {id, len}, avail_event.  All little-endian, like x86. */
#define RING_FLAGS 0
#define RING_IDX   2
#define RING_START 4

uint64_t virtq_desc_bytes(uint16_t size)
{
	return 16ull * size;
}

uint64_t virtq_avail_bytes(uint16_t size)
{
	return 6ull + 2ull * size;
}

uint64_t virtq_used_bytes(uint16_t size)
{
	return 6ull + 8ull * size;
}

bool virtq_size_valid(uint32_t size, uint32_t max)
{
	return size != 0 && (size & (size - 1)) == 0 && size <= max &&
	       size <= VIRTIO_QUEUE_MAX_SIZE;
}

static uint16_t *avail_idx_p(const struct virtq *vq)
{
	return (uint16_t *)(vq->avail + RING_IDX);
}

static uint16_t *avail_flags_p(const struct virtq *vq)
{
	return (uint16_t *)(vq->avail + RING_FLAGS);
}

static uint16_t *avail_ring_p(const struct virtq *vq, uint16_t slot)
{
	return (uint16_t *)(vq->avail + RING_START + 2u * slot);
}

/* used_event lives after the available ring (§2.7.10). */
static uint16_t *used_event_p(const struct virtq *vq)
{
	return (uint16_t *)(vq->avail + RING_START + 2u * vq->size);
}

static uint16_t *used_flags_p(const struct virtq *vq)
{
	return (uint16_t *)(vq->used + RING_FLAGS);
}

static uint16_t *used_idx_p(const struct virtq *vq)
{
	return (uint16_t *)(vq->used + RING_IDX);
}

static uint32_t *used_ring_p(const struct virtq *vq, uint16_t slot)
{
	return (uint32_t *)(vq->used + RING_START + 8u * slot);
}

/* avail_event lives after the used ring (§2.7.10). */
static uint16_t *avail_event_p(const struct virtq *vq)
{
	return (uint16_t *)(vq->used + RING_START + 8u * vq->size);
}

/* Every store into the used area (ring, flags, avail_event) changes guest memory behind
 * KVM's dirty log: tell gmem (a no-op unless dirty tracking is on). */
static void mark_used(const struct virtq *vq)
{
	gmem_mark_dirty(vq->gm, vq->used_gpa, virtq_used_bytes(vq->size));
}

static void *ring_ptr(const struct gmem *gm, uint64_t gpa, uint64_t len, uint64_t align)
{
	uint8_t *p;

	if (gpa & (align - 1))
		return NULL;
	p = gmem_ptr(gm, gpa, len);
	/* The host view must be aligned too, for the atomic index accesses. */
	if (!p || ((uintptr_t)p & (align - 1)))
		return NULL;
	return p;
}

int virtq_setup(struct virtq *vq, const struct gmem *gm, uint16_t size, uint64_t desc,
		uint64_t avail, uint64_t used)
{
	uint8_t *d, *a, *u;

	virtq_reset(vq);
	if (!gm || !virtq_size_valid(size, VIRTIO_QUEUE_MAX_SIZE))
		return -EINVAL;
	d = ring_ptr(gm, desc, virtq_desc_bytes(size), VIRTQ_DESC_ALIGN);
	a = ring_ptr(gm, avail, virtq_avail_bytes(size), VIRTQ_AVAIL_ALIGN);
	u = ring_ptr(gm, used, virtq_used_bytes(size), VIRTQ_USED_ALIGN);
	if (!d || !a || !u)
		return -EINVAL;
	vq->gm = gm;
	vq->size = size;
	vq->desc_gpa = desc;
	vq->avail_gpa = avail;
	vq->used_gpa = used;
	vq->desc = d;
	vq->avail = a;
	vq->used = u;
	vq->ready = true;
	return 0;
}

void virtq_set_features(struct virtq *vq, uint64_t features)
{
	vq->event_idx = (features & VIRTIO_BIT(VIRTIO_F_EVENT_IDX)) != 0;
	vq->indirect = (features & VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC)) != 0;
}

void virtq_reset(struct virtq *vq)
{
	memset(vq, 0, sizeof(*vq));
}

static int chain_error(struct virtq *vq, int err, const char *why)
{
	log_guest("virtq: malformed chain (%s); queue stopped until reset", why);
	vq->broken = true;
	return err;
}

/* Append one descriptor's buffer to elem (§2.7.4.2: readable before writable). */
static int add_segment(struct virtq *vq, struct virtq_elem *elem, const struct virtq_desc *d,
		       uint64_t *total)
{
	bool writable = (d->flags & VIRTQ_DESC_F_WRITE) != 0;
	void *p;

	if (!writable && elem->nr_in)
		return chain_error(vq, -EINVAL, "readable descriptor after a writable one");
	if (d->len == 0)
		return 0; /* nothing to transfer; the address is never used */
	p = gmem_ptr(vq->gm, d->addr, d->len);
	if (!p)
		return chain_error(vq, -EFAULT, "buffer outside guest RAM");
	/* The one place a device gets a writable view of guest memory: from here on the VMM
	 * may change these pages without KVM seeing it (dirty tracking). */
	if (writable)
		gmem_mark_dirty(vq->gm, d->addr, d->len);
	*total += d->len;
	if (*total > VIRTQ_ELEM_MAX_LEN)
		return chain_error(vq, -EINVAL, "total length over 4 GiB");
	if (elem->nr_out + elem->nr_in >= VIRTQ_ELEM_MAX_SEGS)
		return chain_error(vq, -EINVAL, "too many segments");
	elem->iov[elem->nr_out + elem->nr_in] = (struct iovec){ .iov_base = p, .iov_len = d->len };
	if (writable) {
		elem->nr_in++;
		elem->in_len += d->len;
	} else {
		elem->nr_out++;
		elem->out_len += d->len;
	}
	return 0;
}

/* Walk the chain starting at `head` (§2.7.5).  Each descriptor is copied once, then checked,
 * so the guest cannot change it between check and use.  The main table walk visits at most
 * `size` descriptors and an indirect table walk at most its entry count, so loops end. */
static int walk_chain(struct virtq *vq, uint16_t head, struct virtq_elem *elem)
{
	const uint8_t *table = vq->desc;
	uint32_t table_n = vq->size, budget = vq->size, idx = head;
	bool in_indirect = false;
	uint64_t total = 0;
	struct virtq_desc d;
	int ret;

	elem->head = head;
	elem->nr_out = elem->nr_in = 0;
	elem->out_len = elem->in_len = 0;
	for (;;) {
		if (budget-- == 0)
			return chain_error(vq, -EINVAL, "descriptor loop or chain too long");
		memcpy(&d, table + 16u * idx, sizeof(d));
		if (d.flags & VIRTQ_DESC_F_INDIRECT) {
			/* §2.7.5.3.1: only with the feature, never nested, never with NEXT, a
			 * whole number of descriptors. */
			if (!vq->indirect)
				return chain_error(vq, -EINVAL, "indirect not negotiated");
			if (in_indirect)
				return chain_error(vq, -EINVAL, "nested indirect table");
			if (d.flags & VIRTQ_DESC_F_NEXT)
				return chain_error(vq, -EINVAL, "indirect with NEXT");
			if (d.len == 0 || d.len % 16)
				return chain_error(vq, -EINVAL, "indirect table length");
			if (d.len / 16 > VIRTQ_ELEM_MAX_SEGS)
				return chain_error(vq, -EINVAL, "indirect table too large");
			table = gmem_ptr(vq->gm, d.addr, d.len);
			if (!table)
				return chain_error(vq, -EFAULT, "indirect table outside guest RAM");
			table_n = budget = d.len / 16;
			in_indirect = true;
			idx = 0;
			continue;
		}
		ret = add_segment(vq, elem, &d, &total);
		if (ret)
			return ret;
		if (!(d.flags & VIRTQ_DESC_F_NEXT))
			return 0;
		if (d.next >= table_n)
			return chain_error(vq, -EINVAL, "next index out of range");
		idx = d.next;
	}
}

int virtq_pop(struct virtq *vq, struct virtq_elem *elem)
{
	uint16_t avail_idx, head;
	int ret;

	if (!vq->ready || vq->broken)
		return -EIO;
	/* Acquire: the ring entries and descriptors the driver wrote before bumping idx are
	 * visible once we see the new idx (§2.7.13.3). */
	avail_idx = __atomic_load_n(avail_idx_p(vq), __ATOMIC_ACQUIRE);
	if (avail_idx == vq->last_avail) {
		/* Draining with notifications off: the caller re-enables them (and looks again)
		 * with virtq_enable_notify() before it sleeps. */
		if (!vq->event_idx || vq->notify_off)
			return 0;
		/* Ask for a notification on the next buffer, then look again: the driver may
		 * have added one before it saw avail_event (§2.7.10). */
		mark_used(vq);
		__atomic_store_n(avail_event_p(vq), vq->last_avail, __ATOMIC_RELAXED);
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		avail_idx = __atomic_load_n(avail_idx_p(vq), __ATOMIC_ACQUIRE);
		if (avail_idx == vq->last_avail)
			return 0;
	}
	if ((uint16_t)(avail_idx - vq->last_avail) > vq->size)
		return chain_error(vq, -EINVAL, "available index moved more than the queue size");
	head = __atomic_load_n(avail_ring_p(vq, vq->last_avail & (vq->size - 1)), __ATOMIC_RELAXED);
	if (head >= vq->size)
		return chain_error(vq, -EINVAL, "head index out of range");
	ret = walk_chain(vq, head, elem);
	if (ret)
		return ret;
	vq->last_avail++;
	/* Without virtq_disable_notify(), keep asking for a notification at our next slot (the
	 * behaviour of devices that do not manage suppression themselves). */
	if (vq->event_idx && !vq->notify_off) {
		mark_used(vq);
		__atomic_store_n(avail_event_p(vq), vq->last_avail, __ATOMIC_RELEASE);
	}
	return 1;
}

void virtq_disable_notify(struct virtq *vq)
{
	if (!vq->ready || vq->broken || vq->notify_off)
		return;
	vq->notify_off = true;
	/* §2.7.10: with EVENT_IDX the driver ignores the flags field and notifies only when its
	 * index moves past avail_event.  We leave avail_event where it is: the driver has passed
	 * it already (that notification is what woke us) or passes it with its next buffer, and
	 * after that nothing crosses it again until the 16-bit index wraps (one spurious
	 * notification at worst). */
	if (!vq->event_idx) {
		mark_used(vq);
		__atomic_store_n(used_flags_p(vq), VIRTQ_USED_F_NO_NOTIFY, __ATOMIC_RELAXED);
	}
}

bool virtq_enable_notify(struct virtq *vq)
{
	uint16_t avail_idx;

	if (!vq->ready || vq->broken)
		return false;
	vq->notify_off = false;
	mark_used(vq);
	if (vq->event_idx)
		__atomic_store_n(avail_event_p(vq), vq->last_avail, __ATOMIC_RELAXED);
	else
		__atomic_store_n(used_flags_p(vq), 0, __ATOMIC_RELAXED);
	/* The request must be visible before we read the driver's index: a driver that added a
	 * buffer before it saw the request does not notify, so we must see that buffer here
	 * (§2.7.10; the same store-load order as the driver's side in §2.7.13.4). */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	avail_idx = __atomic_load_n(avail_idx_p(vq), __ATOMIC_ACQUIRE);
	return avail_idx != vq->last_avail;
}

void virtq_push(struct virtq *vq, uint16_t head, uint32_t len)
{
	uint32_t *e;

	/* A broken queue still takes back chains popped before it broke (requests that were in
	 * flight): the used ring's place was checked at set-up, only the driver's side is bad. */
	if (!vq->ready)
		return;
	mark_used(vq);
	e = used_ring_p(vq, vq->used_idx & (vq->size - 1));
	__atomic_store_n(&e[0], (uint32_t)head, __ATOMIC_RELAXED);
	__atomic_store_n(&e[1], len, __ATOMIC_RELAXED);
	vq->used_idx++;
	/* Release: the element is visible before the index that publishes it (§2.7.8). */
	__atomic_store_n(used_idx_p(vq), vq->used_idx, __ATOMIC_RELEASE);
}

bool virtq_should_notify(struct virtq *vq)
{
	uint16_t old = vq->signalled_used, new = vq->used_idx, event;
	bool valid = vq->signalled_valid;

	if (!vq->ready)
		return false;
	if (valid && old == new)
		return false; /* nothing new since the last decision */
	if (vq->broken) {
		/* A queue a later chain broke still owes the driver the buffers used before
		 * it: signal them whatever the suppression state says (it lives in rings we no
		 * longer trust; one interrupt too many is harmless, one too few leaves requests
		 * hanging). */
		if (!valid && new == 0)
			return false; /* nothing was ever used */
		vq->signalled_used = new;
		vq->signalled_valid = true;
		return true;
	}
	vq->signalled_used = new;
	vq->signalled_valid = true;
	/* Our used->idx store must be visible before we read the driver's suppression state,
	 * or a driver that just re-enabled interrupts could miss this one. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (!vq->event_idx)
		return !(__atomic_load_n(avail_flags_p(vq), __ATOMIC_RELAXED) &
			 VIRTQ_AVAIL_F_NO_INTERRUPT);
	if (!valid)
		return true;
	event = __atomic_load_n(used_event_p(vq), __ATOMIC_RELAXED);
	/* §2.7.10: notify if used_event lies in [old, new). */
	return (uint16_t)(new - event - 1) < (uint16_t)(new - old);
}

size_t virtq_elem_read(const struct virtq_elem *elem, size_t off, void *dst, size_t len)
{
	size_t done = 0;

	for (unsigned i = 0; i < elem->nr_out && done < len; i++) {
		const struct iovec *v = &elem->iov[i];
		size_t n;

		if (off >= v->iov_len) {
			off -= v->iov_len;
			continue;
		}
		n = v->iov_len - off;
		if (n > len - done)
			n = len - done;
		memcpy((uint8_t *)dst + done, (const uint8_t *)v->iov_base + off, n);
		done += n;
		off = 0;
	}
	return done;
}

size_t virtq_elem_write(const struct virtq_elem *elem, size_t off, const void *src, size_t len)
{
	size_t done = 0;

	for (unsigned i = elem->nr_out; i < elem->nr_out + elem->nr_in && done < len; i++) {
		const struct iovec *v = &elem->iov[i];
		size_t n;

		if (off >= v->iov_len) {
			off -= v->iov_len;
			continue;
		}
		n = v->iov_len - off;
		if (n > len - done)
			n = len - done;
		memcpy((uint8_t *)v->iov_base + off, (const uint8_t *)src + done, n);
		done += n;
		off = 0;
	}
	return done;
}

int virtq_iov_slice(const struct iovec *iov, unsigned n, size_t off, size_t len, struct iovec *out,
		    unsigned max)
{
	unsigned nr = 0;

	for (unsigned i = 0; i < n && len; i++) {
		size_t take;

		if (off >= iov[i].iov_len) {
			off -= iov[i].iov_len;
			continue;
		}
		if (nr >= max)
			return -EINVAL;
		take = iov[i].iov_len - off;
		if (take > len)
			take = len;
		out[nr++] = (struct iovec){ .iov_base = (uint8_t *)iov[i].iov_base + off,
					    .iov_len = take };
		len -= take;
		off = 0;
	}
	return len ? -EINVAL : (int)nr;
}

void virtq_unpop(struct virtq *vq, uint16_t n)
{
	if (!vq->ready)
		return;
	vq->last_avail = (uint16_t)(vq->last_avail - n);
}

void virtq_get_progress(const struct virtq *vq, struct virtq_progress *p)
{
	*p = (struct virtq_progress){
		.last_avail = vq->last_avail,
		.used_idx = vq->used_idx,
		.signalled_used = vq->signalled_used,
		.signalled_valid = vq->signalled_valid,
		.notify_off = vq->notify_off,
		.broken = vq->broken,
	};
}

int virtq_set_progress(struct virtq *vq, const struct virtq_progress *p)
{
	if (!vq->ready)
		return -EINVAL;
	/* A device cannot hold more chains than the ring has slots: each popped chain took one
	 * slot, and the driver refills a slot only once its chain is used (§2.7.13). */
	if ((uint16_t)(p->last_avail - p->used_idx) > vq->size)
		return -EINVAL;
	/* virtq_should_notify() sets both together; virtq_reset() clears both. */
	if (!p->signalled_valid && p->signalled_used)
		return -EINVAL;
	vq->last_avail = p->last_avail;
	vq->used_idx = p->used_idx;
	vq->signalled_used = p->signalled_used;
	vq->signalled_valid = p->signalled_valid;
	vq->notify_off = p->notify_off;
	vq->broken = p->broken;
	return 0;
}
