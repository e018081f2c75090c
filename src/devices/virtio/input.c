/* virtio-input (virtio 1.2 §5.8): a keyboard and an absolute pointer (tablet).
 *
 * Host front ends call virtio_input_send() from any thread.  Events wait in a bounded ring of
 * the device's own (its mutex, never the transport lock, so a front end never waits for a vCPU
 * or the event loop) and are moved into the guest's eventq buffers on the event loop, under
 * the transport lock, one whole group (up to and including SYN_REPORT) at a time: §5.8.6.1
 * asks that the events of one update are not split, so a group goes in only when the driver
 * has made buffers available for all of it, and a send that does not fit in the ring is
 * dropped whole. */
#include "devices/virtio/input.h"

#include "core/devmgr.h"
#include "core/evloop.h"
#include "devices/virtio/mmio.h"
#include "devices/virtio/virtq.h"
#include "snapshot/snap.h"
#include "util/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define EVENTQ	0
#define STATUSQ 1

#define KEY_BYTES ((VIRTIO_INPUT_KEY_MAX + 1) / 8)
#define LED_MASK  0x7u /* LED_NUML, LED_CAPSL, LED_SCROLLL */
/* Groups one flush pass moves at most, so that a front end sending without pause cannot keep
 * the event loop in one callback; the rest goes on the next pass. */
#define FLUSH_MAX_GROUPS (2 * VIRTIO_INPUT_QUEUE_SIZE)
/* Writable segments of an event buffer we look at: 8 bytes need at most 8 non-empty ones. */
#define EV_SEGS 8

struct virtio_input {
	enum virtio_input_kind kind;
	/* Under the transport lock (config accesses, queue work, activation). */
	struct virtio_mmio *t; /* set_transport */
	struct virtq *eventq, *statusq;
	uint8_t select, subsel;
	uint8_t cfg[VIRTIO_INPUT_CFG_LEN]; /* the image for the current select/subsel */
	uint8_t leds;
	uint8_t guest_down[KEY_BYTES]; /* keys whose last delivered event was a press */
	struct virtq_elem elem;
	/* Under mu: events from the host for the guest. */
	pthread_mutex_t mu;
	struct virtio_input_event ring[VIRTIO_INPUT_RING];
	unsigned head, count;
	uint8_t host_down[KEY_BYTES];	/* what the host's events say is held */
	uint8_t queued_down[KEY_BYTES]; /* pressed as of the last event that went into the ring */
	uint8_t owed[KEY_BYTES];	/* releases that were dropped: sent once there is room */
	/* Wakes the event loop; registered on `ev` by virtio_input_add(). */
	int kick_fd;
	struct evloop *ev;
};

static bool bit_get(const uint8_t *map, unsigned b)
{
	return map[b / 8] >> (b % 8) & 1;
}

static void bit_set(uint8_t *map, unsigned b, bool on)
{
	if (on)
		map[b / 8] |= (uint8_t)(1u << (b % 8));
	else
		map[b / 8] &= (uint8_t) ~(1u << (b % 8));
}

/* The keys of a full US keyboard (105 keys and the common extras), evdev numbering. */
static bool kbd_has_key(unsigned code)
{
	return (code >= 1 && code <= 83) ||    /* Esc .. keypad '.' */
	       (code >= 86 && code <= 88) ||   /* 102nd, F11, F12 */
	       (code >= 96 && code <= 100) ||  /* KP Enter, RCtrl, KP '/', SysRq, RAlt */
	       (code >= 102 && code <= 111) || /* Home .. Delete */
	       (code >= 113 && code <= 119) || /* Mute .. Pause */
	       (code >= 125 && code <= 127);   /* LMeta, RMeta, Compose */
}

static bool tablet_has_button(unsigned code)
{
	return code == VIRTIO_INPUT_BTN_LEFT || code == VIRTIO_INPUT_BTN_RIGHT ||
	       code == VIRTIO_INPUT_BTN_MIDDLE;
}

static bool has_key(enum virtio_input_kind kind, unsigned code)
{
	return kind == VIRTIO_INPUT_KEYBOARD ? kbd_has_key(code) : tablet_has_button(code);
}

static bool is_syn(const struct virtio_input_event *e)
{
	return e->type == VIRTIO_INPUT_EV_SYN && e->code == VIRTIO_INPUT_SYN_REPORT;
}

/* ---- Config space (§5.8.4) ---- */

static const char *dev_name(enum virtio_input_kind kind)
{
	return kind == VIRTIO_INPUT_KEYBOARD ? "ignition keyboard" : "ignition tablet";
}

static const char *dev_serial(enum virtio_input_kind kind)
{
	return kind == VIRTIO_INPUT_KEYBOARD ? "ignition-kbd" : "ignition-tablet";
}

/* The event-type bitmap for `type` into `u` (128 bytes); its size in bytes (0: unsupported). */
static unsigned ev_bits(enum virtio_input_kind kind, unsigned type, uint8_t *u)
{
	unsigned size = 0;

	if (type == VIRTIO_INPUT_EV_KEY) {
		for (unsigned c = 0; c <= VIRTIO_INPUT_KEY_MAX && c / 8 < 128; c++)
			if (has_key(kind, c)) {
				bit_set(u, c, true);
				size = c / 8 + 1;
			}
		return size;
	}
	if (kind == VIRTIO_INPUT_KEYBOARD) {
		switch (type) {
		case VIRTIO_INPUT_EV_REP:
			/* §5.8.5: a non-zero size says the type is supported; Linux then runs
			 * its own autorepeat (the bitmap itself carries no codes). */
			return 1;
		case VIRTIO_INPUT_EV_LED:
			u[0] = LED_MASK;
			return 1;
		}
		return 0;
	}
	switch (type) {
	case VIRTIO_INPUT_EV_ABS:
		u[0] = 1u << VIRTIO_INPUT_ABS_X | 1u << VIRTIO_INPUT_ABS_Y;
		return 1;
	case VIRTIO_INPUT_EV_REL:
		bit_set(u, VIRTIO_INPUT_REL_WHEEL, true);
		return VIRTIO_INPUT_REL_WHEEL / 8 + 1;
	}
	return 0;
}

/* Rebuild the config image for the current select/subsel: §5.8.5, the device sets size and
 * the union; an unsupported selection reads size 0. */
static void build_config(struct virtio_input *in)
{
	uint8_t *u = in->cfg + VIRTIO_INPUT_CFG_U;
	const char *s = NULL;
	unsigned size = 0;

	memset(in->cfg, 0, sizeof(in->cfg));
	in->cfg[VIRTIO_INPUT_CFG_SELECT] = in->select;
	in->cfg[VIRTIO_INPUT_CFG_SUBSEL] = in->subsel;
	switch (in->select) {
	case VIRTIO_INPUT_CFG_ID_NAME:
		s = dev_name(in->kind);
		break;
	case VIRTIO_INPUT_CFG_ID_SERIAL:
		s = dev_serial(in->kind);
		break;
	case VIRTIO_INPUT_CFG_ID_DEVIDS:
		/* struct virtio_input_devids: le16 bustype, vendor, product, version. */
		virtio_put_le(u + 0, VIRTIO_INPUT_BUS_VIRTUAL, 2);
		virtio_put_le(u + 2, VIRTIO_INPUT_VENDOR, 2);
		virtio_put_le(u + 4, in->kind == VIRTIO_INPUT_KEYBOARD ? 1 : 2, 2);
		virtio_put_le(u + 6, 1, 2);
		size = 8;
		break;
	case VIRTIO_INPUT_CFG_PROP_BITS:
		/* No INPUT_PROP_* bits, for either kind.  The tablet in particular is not
		 * INPUT_PROP_DIRECT: with absolute X/Y and BTN_LEFT but neither BTN_TOUCH nor a
		 * pen tool, udev's input_id tags it ID_INPUT_MOUSE and libinput drives it as a
		 * pointer with absolute motion (what wlroots/cage and X expect of a VM
		 * tablet); DIRECT would invite touchscreen handling. */
		break;
	case VIRTIO_INPUT_CFG_EV_BITS:
		size = ev_bits(in->kind, in->subsel, u);
		break;
	case VIRTIO_INPUT_CFG_ABS_INFO:
		if (in->kind == VIRTIO_INPUT_TABLET &&
		    (in->subsel == VIRTIO_INPUT_ABS_X || in->subsel == VIRTIO_INPUT_ABS_Y)) {
			/* struct virtio_input_absinfo: le32 min, max, fuzz, flat, res. */
			virtio_put_le(u + 0, 0, 4);
			virtio_put_le(u + 4, VIRTIO_INPUT_ABS_MAX, 4);
			size = 20;
		}
		break;
	}
	if (s) {
		size = (unsigned)strlen(s);
		memcpy(u, s, size); /* §5.8.5: not NUL-terminated; size says how long */
	}
	in->cfg[VIRTIO_INPUT_CFG_SIZE] = (uint8_t)size;
}

static uint64_t input_features(void *dev)
{
	/* §5.8.3: no device-specific feature bits. */
	return VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC) |
	       VIRTIO_BIT(VIRTIO_F_EVENT_IDX);
}

static uint64_t input_config_read(void *dev, uint32_t off, unsigned size)
{
	struct virtio_input *in = dev;

	return virtio_config_get(in->cfg, sizeof(in->cfg), off, size);
}

/* §5.8.4: the driver writes select and subsel (any width, byte by byte); size and the union
 * are the device's, and writes to them are dropped. */
static void input_config_write(void *dev, uint32_t off, unsigned size, uint64_t val)
{
	struct virtio_input *in = dev;
	bool changed = false;

	for (unsigned i = 0; i < size && i < 8; i++) {
		uint64_t at = (uint64_t)off + i;
		uint8_t b = (uint8_t)(val >> (8 * i));

		if (at == VIRTIO_INPUT_CFG_SELECT) {
			in->select = b;
			changed = true;
		} else if (at == VIRTIO_INPUT_CFG_SUBSEL) {
			in->subsel = b;
			changed = true;
		}
	}
	if (changed)
		build_config(in);
}

/* ---- The host side: the pending ring (under mu) ---- */

static void ring_put(struct virtio_input *in, const struct virtio_input_event *ev, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		in->ring[(in->head + in->count + i) % VIRTIO_INPUT_RING] = ev[i];
	in->count += n;
}

static void ring_drop(struct virtio_input *in, unsigned n)
{
	in->head = (in->head + n) % VIRTIO_INPUT_RING;
	in->count -= n;
}

/* Copy the first group of the ring into grp; its length (0: the ring is empty).  Every group
 * in the ring ends with SYN_REPORT and has at most VIRTIO_INPUT_MAX_GROUP events (send()
 * checks it). */
static unsigned ring_peek_group(struct virtio_input *in, struct virtio_input_event *grp)
{
	for (unsigned i = 0; i < in->count && i < VIRTIO_INPUT_MAX_GROUP; i++) {
		grp[i] = in->ring[(in->head + i) % VIRTIO_INPUT_RING];
		if (is_syn(&grp[i]))
			return i + 1;
	}
	return 0;
}

/* Releases whose group was dropped (ring full) are owed to the guest: a press that got through
 * with its release lost would leave the key held, and autorepeating, in the guest.  Queue them,
 * each chunk ending with SYN_REPORT, once the ring has room for all of them. */
static void ring_put_owed(struct virtio_input *in)
{
	struct virtio_input_event grp[VIRTIO_INPUT_MAX_GROUP];
	unsigned keys = 0, need, g = 0;

	for (unsigned c = 0; c <= VIRTIO_INPUT_KEY_MAX; c++)
		keys += bit_get(in->owed, c);
	if (!keys)
		return;
	need = keys + (keys + VIRTIO_INPUT_MAX_GROUP - 2) / (VIRTIO_INPUT_MAX_GROUP - 1);
	if (VIRTIO_INPUT_RING - in->count < need)
		return;
	for (unsigned c = 0; c <= VIRTIO_INPUT_KEY_MAX; c++) {
		if (!bit_get(in->owed, c))
			continue;
		bit_set(in->queued_down, c, false);
		grp[g++] = (struct virtio_input_event){ VIRTIO_INPUT_EV_KEY, (uint16_t)c, 0 };
		if (g == VIRTIO_INPUT_MAX_GROUP - 1) {
			grp[g++] = (struct virtio_input_event){ 0 };
			ring_put(in, grp, g);
			g = 0;
		}
	}
	if (g) {
		grp[g++] = (struct virtio_input_event){ 0 };
		ring_put(in, grp, g);
	}
	memset(in->owed, 0, sizeof(in->owed));
}

/* ---- The guest side (under the transport lock) ---- */

/* One popped event buffer: its head and where its first 8 writable bytes are. */
struct ev_buf {
	uint16_t head;
	unsigned nseg;
	struct iovec seg[EV_SEGS];
};

/* Take the writable space of in->elem into b; false if it cannot hold one event (§5.8.6:
 * eventq buffers are device-writable and at least one struct virtio_input_event long). */
static bool take_buf(struct virtio_input *in, struct ev_buf *b)
{
	const struct virtq_elem *e = &in->elem;
	size_t have = 0;

	b->head = e->head;
	b->nseg = 0;
	if (e->nr_out || e->in_len < sizeof(struct virtio_input_event))
		return false;
	for (unsigned i = e->nr_out; i < e->nr_out + e->nr_in && have < 8; i++) {
		if (!e->iov[i].iov_len)
			continue;
		b->seg[b->nseg++] = e->iov[i];
		have += e->iov[i].iov_len;
	}
	return have >= 8;
}

static void put_event(const struct ev_buf *b, const struct virtio_input_event *ev)
{
	uint8_t raw[8];
	size_t done = 0;

	/* §5.8.6: le16 type, le16 code, le32 value. */
	virtio_put_le(raw, ev->type, 2);
	virtio_put_le(raw + 2, ev->code, 2);
	virtio_put_le(raw + 4, ev->value, 4);
	for (unsigned i = 0; i < b->nseg && done < 8; i++) {
		size_t n = b->seg[i].iov_len < 8 - done ? b->seg[i].iov_len : 8 - done;

		memcpy(b->seg[i].iov_base, raw + done, n);
		done += n;
	}
}

static void kick(struct virtio_input *in)
{
	uint64_t one = 1;
	ssize_t r = write(in->kick_fd, &one, sizeof(one));

	(void)r; /* EAGAIN: already signalled */
}

/* Move whole groups from the ring into eventq buffers; one interrupt for the pass. */
static void flush(struct virtio_input *in)
{
	struct virtio_input_event grp[VIRTIO_INPUT_MAX_GROUP];
	struct ev_buf bufs[VIRTIO_INPUT_MAX_GROUP];
	struct virtq *vq = in->eventq;
	bool pushed = false;
	unsigned groups;

	if (!vq || vq->broken)
		return;
	for (groups = 0; groups < FLUSH_MAX_GROUPS; groups++) {
		unsigned g, k;

		pthread_mutex_lock(&in->mu);
		ring_put_owed(in);
		g = ring_peek_group(in, grp);
		pthread_mutex_unlock(&in->mu);
		if (!g)
			break;
		if (g > vq->size) {
			/* The driver's queue can never hold this group whole. */
			log_guest("virtio-input: eventq of %u buffers is too small for %u events",
				  vq->size, g);
			pthread_mutex_lock(&in->mu);
			ring_drop(in, g);
			pthread_mutex_unlock(&in->mu);
			continue;
		}
		for (k = 0; k < g; k++) {
			int ret = virtq_pop(vq, &in->elem);

			if (ret == 0)
				break;
			if (ret < 0) {
				virtio_mmio_set_needs_reset(in->t);
				goto out;
			}
			if (!take_buf(in, &bufs[k])) {
				/* A driver bug or a hostile one: hand back what we took, empty,
				 * and stop using the queue until the driver resets us. */
				log_guest("virtio-input: eventq buffer without 8 writable bytes");
				for (unsigned i = 0; i <= k; i++)
					virtq_push(vq, i < k ? bufs[i].head : in->elem.head, 0);
				pushed = true;
				virtio_mmio_set_needs_reset(in->t);
				goto out;
			}
		}
		if (k < g) {
			/* Not enough buffers for the whole group: give the ones we took back
			 * untouched and wait for the driver's next notification. */
			virtq_unpop(vq, (uint16_t)k);
			break;
		}
		for (unsigned i = 0; i < g; i++) {
			put_event(&bufs[i], &grp[i]);
			virtq_push(vq, bufs[i].head, sizeof(struct virtio_input_event));
			if (grp[i].type == VIRTIO_INPUT_EV_KEY &&
			    grp[i].code <= VIRTIO_INPUT_KEY_MAX)
				bit_set(in->guest_down, grp[i].code, grp[i].value != 0);
		}
		pushed = true;
		pthread_mutex_lock(&in->mu);
		ring_drop(in, g);
		pthread_mutex_unlock(&in->mu);
	}
	if (groups == FLUSH_MAX_GROUPS && in->ev)
		kick(in); /* more next pass, after the loop's other sources */
out:
	if (pushed)
		virtio_mmio_notify_used(in->t, vq);
}

/* §5.8.6.2: the driver reports LED state (and may send EV_REP/EV_SYN, which we ignore). */
static void status_event(struct virtio_input *in, const struct virtio_input_event *e)
{
	if (e->type == VIRTIO_INPUT_EV_LED && in->kind == VIRTIO_INPUT_KEYBOARD && e->code < 8 &&
	    (LED_MASK >> e->code & 1) && e->value <= 1) {
		if (e->value)
			in->leds |= (uint8_t)(1u << e->code);
		else
			in->leds &= (uint8_t) ~(1u << e->code);
		return;
	}
	if (e->type == VIRTIO_INPUT_EV_SYN || e->type == VIRTIO_INPUT_EV_REP)
		return;
	log_guest("virtio-input: unexpected status event type %u code %u value %u", e->type,
		  e->code, e->value);
}

static void drain_status(struct virtio_input *in)
{
	struct virtq *vq = in->statusq;
	bool pushed = false;

	if (!vq)
		return;
	for (unsigned n = 0;; n++) {
		uint8_t raw[8];
		int ret;

		if (n == VIRTIO_QUEUE_BUDGET) {
			virtio_mmio_queue_yield(in->t, STATUSQ);
			break;
		}
		ret = virtq_pop(vq, &in->elem);
		if (ret == 0)
			break;
		if (ret < 0) {
			virtio_mmio_set_needs_reset(in->t);
			break;
		}
		/* §5.8.6.2: one readable struct virtio_input_event per buffer; anything
		 * shorter is completed and ignored. */
		if (virtq_elem_read(&in->elem, 0, raw, sizeof(raw)) == sizeof(raw)) {
			struct virtio_input_event e = {
				.type = (uint16_t)virtio_get_le(raw, 2),
				.code = (uint16_t)virtio_get_le(raw + 2, 2),
				.value = (uint32_t)virtio_get_le(raw + 4, 4),
			};

			status_event(in, &e);
		} else {
			log_guest("virtio-input: short status buffer (%u bytes)", in->elem.out_len);
		}
		virtq_push(vq, in->elem.head, 0);
		pushed = true;
	}
	if (pushed)
		virtio_mmio_notify_used(in->t, vq);
}

static void input_queue_notify(void *dev, unsigned q)
{
	struct virtio_input *in = dev;

	if (q == EVENTQ)
		flush(in);
	else if (q == STATUSQ)
		drain_status(in);
}

static int input_activate(void *dev, struct virtio_mmio *t, uint64_t features, struct virtq *vqs,
			  unsigned nr)
{
	struct virtio_input *in = dev;

	if (nr < 2 || !vqs[EVENTQ].ready) {
		log_guest("virtio-input: DRIVER_OK without an event queue");
		return -EINVAL;
	}
	in->t = t;
	in->eventq = &vqs[EVENTQ];
	/* The status queue is optional for a driver that never sets LEDs. */
	in->statusq = vqs[STATUSQ].ready ? &vqs[STATUSQ] : NULL;
	return 0;
}

/* The driver reset the device: its input device is gone in the guest, with whatever keys it
 * held.  Events still waiting stay for the next driver (bounded by the ring). */
static void input_reset(void *dev)
{
	struct virtio_input *in = dev;

	in->eventq = NULL;
	in->statusq = NULL;
	in->select = in->subsel = 0;
	in->leds = 0;
	memset(in->guest_down, 0, sizeof(in->guest_down));
	build_config(in);
}

static void input_set_transport(void *dev, struct virtio_mmio *t)
{
	struct virtio_input *in = dev;

	in->t = t;
}

/* ---- Snapshots (SNAP_REC_VIRTIO_INPUT) ----
 * The device never holds a chain between calls (groups are popped, written and pushed in one
 * go, statusq buffers completed at once), so it needs no quiesce.  Payload, version 1:
 *   u8 kind, u8 select, u8 subsel, u8 leds, KEY_BYTES bytes: keys the guest saw pressed.
 * Events still waiting in the ring are not saved: they are host input of this moment, and a
 * restore (perhaps much later, perhaps a clone) must not type them into another session.
 * Keys the guest saw pressed are released on restore instead: the guest's memory says they
 * are held, and no host is holding them any more, so without that they would stay stuck (and
 * autorepeat) until pressed again. */
#define VIRTIO_INPUT_STATE_VERSION 1

static int input_save(void *dev, struct snap_writer *w, const char *id)
{
	struct virtio_input *in = dev;

	snap_rec_begin(w, SNAP_REC_VIRTIO_INPUT, VIRTIO_INPUT_STATE_VERSION, id);
	snap_put_u8(w, (uint8_t)in->kind);
	snap_put_u8(w, in->select);
	snap_put_u8(w, in->subsel);
	snap_put_u8(w, in->leds);
	snap_put_bytes(w, in->guest_down, sizeof(in->guest_down));
	return w->err;
}

static int input_restore(void *dev, const struct snap_file *f, const char *id)
{
	struct virtio_input *in = dev;
	uint8_t kind, select, subsel, leds, down[KEY_BYTES];
	struct snap_reader r;

	if (snap_file_find(f, SNAP_REC_VIRTIO_INPUT, id, &r) ||
	    r.version != VIRTIO_INPUT_STATE_VERSION) {
		log_warn("virtio-input: no record of version %u for '%s'",
			 VIRTIO_INPUT_STATE_VERSION, id);
		return -EINVAL;
	}
	kind = snap_get_u8(&r);
	select = snap_get_u8(&r);
	subsel = snap_get_u8(&r);
	leds = snap_get_u8(&r);
	snap_get_bytes(&r, down, sizeof(down));
	if (kind != in->kind || (leds & ~LED_MASK) || (leds && in->kind != VIRTIO_INPUT_KEYBOARD))
		snap_fail(&r);
	for (unsigned c = 0; c <= VIRTIO_INPUT_KEY_MAX; c++)
		if (bit_get(down, c) && !has_key(in->kind, c))
			snap_fail(&r);
	if (snap_reader_done(&r)) {
		log_warn("virtio-input: %s: invalid state record", id);
		return -EINVAL;
	}
	in->select = select;
	in->subsel = subsel;
	in->leds = leds;
	memset(in->guest_down, 0, sizeof(in->guest_down));
	build_config(in);
	pthread_mutex_lock(&in->mu);
	in->head = in->count = 0;
	memset(in->host_down, 0, sizeof(in->host_down));
	memset(in->queued_down, 0, sizeof(in->queued_down));
	memcpy(in->owed, down, sizeof(down));
	ring_put_owed(in); /* the ring is empty: they fit */
	pthread_mutex_unlock(&in->mu);
	return 0;
}

static void input_destroy(void *dev)
{
	virtio_input_destroy(dev);
}

const struct virtio_device_ops virtio_input_ops = {
	.name = "virtio-input",
	.device_id = VIRTIO_ID_INPUT,
	.num_queues = 2, /* §5.8.2: eventq, statusq */
	.queue_max_size = VIRTIO_INPUT_QUEUE_SIZE,
	.features = input_features,
	.set_transport = input_set_transport,
	.config_read = input_config_read,
	.config_write = input_config_write,
	.activate = input_activate,
	.queue_notify = input_queue_notify,
	.reset = input_reset,
	.save = input_save,
	.restore = input_restore,
	.rec = { SNAP_REC_VIRTIO_INPUT, VIRTIO_INPUT_STATE_VERSION },
	.destroy = input_destroy,
};

/* ---- Public ---- */

int virtio_input_create(enum virtio_input_kind kind, struct virtio_input **out)
{
	struct virtio_input *in;

	if (kind != VIRTIO_INPUT_KEYBOARD && kind != VIRTIO_INPUT_TABLET)
		return -EINVAL;
	in = calloc(1, sizeof(*in));
	if (!in)
		return -ENOMEM;
	in->kind = kind;
	in->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (in->kick_fd < 0) {
		int ret = -errno;

		free(in);
		return ret;
	}
	pthread_mutex_init(&in->mu, NULL);
	build_config(in);
	*out = in;
	return 0;
}

static void kick_cb(void *opaque, uint32_t events)
{
	struct virtio_input *in = opaque;
	uint64_t v;
	ssize_t r = read(in->kick_fd, &v, sizeof(v));

	(void)r;
	if (!in->t)
		return;
	virtio_mmio_lock(in->t);
	flush(in);
	virtio_mmio_unlock(in->t);
}

int virtio_input_add(struct devmgr *dm, const char *id, enum virtio_input_kind kind,
		     struct virtio_input **out)
{
	struct virtio_input *in;
	int ret;

	ret = virtio_input_create(kind, &in);
	if (ret)
		return ret;
	if (dm->ev) {
		ret = evloop_add(dm->ev, in->kick_fd, EPOLLIN, kick_cb, in);
		if (ret) {
			virtio_input_destroy(in);
			return ret;
		}
		in->ev = dm->ev;
	}
	ret = virtio_mmio_add(dm, id, &virtio_input_ops, in, NULL);
	if (ret) {
		virtio_input_destroy(in);
		return ret;
	}
	if (out)
		*out = in;
	return 0;
}

/* Check one event against what the device says it supports (§5.8.5). */
static bool event_valid(const struct virtio_input *in, const struct virtio_input_event *e)
{
	switch (e->type) {
	case VIRTIO_INPUT_EV_SYN:
		return e->code == VIRTIO_INPUT_SYN_REPORT && e->value == 0;
	case VIRTIO_INPUT_EV_KEY:
		if (!has_key(in->kind, e->code))
			return false;
		/* 2 is an autorepeat, which only a keyboard has. */
		return e->value <= (in->kind == VIRTIO_INPUT_KEYBOARD ? 2u : 1u);
	case VIRTIO_INPUT_EV_ABS:
		return in->kind == VIRTIO_INPUT_TABLET &&
		       (e->code == VIRTIO_INPUT_ABS_X || e->code == VIRTIO_INPUT_ABS_Y) &&
		       e->value <= VIRTIO_INPUT_ABS_MAX;
	case VIRTIO_INPUT_EV_REL:
		return in->kind == VIRTIO_INPUT_TABLET && e->code == VIRTIO_INPUT_REL_WHEEL;
	}
	return false;
}

int virtio_input_send(struct virtio_input *in, const struct virtio_input_event *ev, unsigned n)
{
	unsigned run = 0;
	int ret = 0;

	if (!in || !ev || !n || n > VIRTIO_INPUT_RING || !is_syn(&ev[n - 1]))
		return -EINVAL;
	for (unsigned i = 0; i < n; i++) {
		if (!event_valid(in, &ev[i]))
			return -EINVAL;
		run = is_syn(&ev[i]) ? 0 : run + 1;
		if (run >= VIRTIO_INPUT_MAX_GROUP)
			return -EINVAL; /* a group longer than the device delivers whole */
	}
	pthread_mutex_lock(&in->mu);
	ring_put_owed(in);
	for (unsigned i = 0; i < n; i++)
		if (ev[i].type == VIRTIO_INPUT_EV_KEY)
			bit_set(in->host_down, ev[i].code, ev[i].value != 0);
	if (VIRTIO_INPUT_RING - in->count < n) {
		/* Dropped whole.  A release of a key whose press went in is owed; a press
		 * supersedes what was owed for its key. */
		for (unsigned i = 0; i < n; i++) {
			if (ev[i].type != VIRTIO_INPUT_EV_KEY)
				continue;
			if (ev[i].value)
				bit_set(in->owed, ev[i].code, false);
			else if (bit_get(in->queued_down, ev[i].code))
				bit_set(in->owed, ev[i].code, true);
		}
		ret = -ENOBUFS;
	} else {
		for (unsigned i = 0; i < n; i++) {
			if (ev[i].type != VIRTIO_INPUT_EV_KEY)
				continue;
			bit_set(in->owed, ev[i].code, false);
			bit_set(in->queued_down, ev[i].code, ev[i].value != 0);
		}
		ring_put(in, ev, n);
	}
	pthread_mutex_unlock(&in->mu);
	if (ret)
		return ret;
	if (in->ev) {
		kick(in);
	} else if (in->t) {
		/* No event loop (unit tests, fuzzing): deliver now, as the transport runs queue
		 * work on the calling thread there too. */
		virtio_mmio_lock(in->t);
		flush(in);
		virtio_mmio_unlock(in->t);
	}
	return 0;
}

enum virtio_input_kind virtio_input_kind(const struct virtio_input *in)
{
	return in->kind;
}

bool virtio_input_key_down(struct virtio_input *in, uint16_t code)
{
	bool down;

	if (code > VIRTIO_INPUT_KEY_MAX)
		return false;
	pthread_mutex_lock(&in->mu);
	down = bit_get(in->host_down, code);
	pthread_mutex_unlock(&in->mu);
	return down;
}

uint8_t virtio_input_leds(struct virtio_input *in)
{
	uint8_t leds;

	if (in->t)
		virtio_mmio_lock(in->t);
	leds = in->leds;
	if (in->t)
		virtio_mmio_unlock(in->t);
	return leds;
}

unsigned virtio_input_pending(struct virtio_input *in)
{
	unsigned n;

	pthread_mutex_lock(&in->mu);
	n = in->count;
	pthread_mutex_unlock(&in->mu);
	return n;
}

void virtio_input_destroy(struct virtio_input *in)
{
	if (!in)
		return;
	if (in->ev)
		evloop_del(in->ev, in->kick_fd);
	close(in->kick_fd);
	pthread_mutex_destroy(&in->mu);
	free(in);
}
