/* The i8042 keyboard controller and its PS/2 keyboard (see i8042.h for the guest's view).
 *
 * Model: the controller's output register is either a controller answer (one byte, a new one
 * replaces it, as in the real part) or the head of the keyboard's buffer, which the controller
 * takes only while the keyboard interface is enabled (CTR bit 4 clear).  IBF never shows: every
 * command completes inside the port write.  One IRQ 1 edge per byte presented, when the CTR
 * enables the keyboard interrupt: Linux's handler reads one byte per interrupt. */
#include "devices/i8042.h"

#include "core/devmgr.h"
#include "platform/acpi/aml.h"
#include "snapshot/snap.h"
#include "util/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Keyboard commands (IBM PS/2 keyboard interface). */
#define KBD_SETLEDS  0xed
#define KBD_ECHO     0xee
#define KBD_SCANSET  0xf0
#define KBD_GETID    0xf2
#define KBD_SETREP   0xf3
#define KBD_ENABLE   0xf4
#define KBD_DISABLE  0xf5
#define KBD_DEFAULTS 0xf6
#define KBD_RESEND   0xfe
#define KBD_RESET    0xff

/* Output port (commands 0xD0/0xD1): bit 0 the CPU reset line (active low), bit 1 the A20
 * gate, bit 4 "output buffer full". */
#define OUTPORT_RESET	0x01
#define OUTPORT_A20	0x02
#define OUTPORT_OBF	0x10
#define OUTPORT_DEFAULT (OUTPORT_RESET | OUTPORT_A20)

/* Room a key sequence must leave in the keyboard's buffer for a command's answer (at most
 * three bytes: ACK 0xAB 0x83), so that the guest's driver is never starved of its ACKs. */
#define ANSWER_ROOM 3

/* What a snapshot keeps: every field below (plain data). */
struct i8042_state {
	uint8_t ctr;
	uint8_t outport;
	uint8_t ctl_cmd;  /* controller command waiting for its data byte at 0x60, or 0 */
	uint8_t kbd_cmd;  /* keyboard command waiting for its parameter, or 0 */
	bool last_cmd;	  /* the last write went to 0x64 (status bit 3) */
	bool scanning;	  /* the keyboard sends key codes (0xF4 on, 0xF5 off) */
	uint8_t last_kbd; /* the keyboard's last byte sent, for 0xFE resend */
	uint8_t last_out; /* the output register's last value: what an empty read returns */
	bool irq_sent;	  /* the byte presented now has had its IRQ edge */
	bool ctl_valid;	  /* a controller answer is waiting */
	uint8_t ctl_byte;
	uint8_t kbd_len; /* bytes in the keyboard's buffer, kbd_q[0] first */
	uint8_t kbd_q[I8042_QUEUE];
};

struct i8042 {
	pthread_mutex_t lock;
	struct irq_line *irq;
	struct power_sink sink;
	struct i8042_state st;
};

static void state_reset(struct i8042_state *s)
{
	memset(s, 0, sizeof(*s));
	s->ctr = I8042_CTR_DEFAULT;
	s->outport = OUTPORT_DEFAULT;
	s->scanning = true;
}

/* The byte the output register shows, if any. */
static bool head(const struct i8042_state *s, uint8_t *b)
{
	if (s->ctl_valid) {
		*b = s->ctl_byte;
		return true;
	}
	if (s->kbd_len && !(s->ctr & I8042_CTR_KBDDIS)) {
		*b = s->kbd_q[0];
		return true;
	}
	return false;
}

/* Whether to raise IRQ 1 now (called under the lock after every change): once per byte
 * presented, while the keyboard interrupt is enabled. */
static bool irq_due(struct i8042_state *s)
{
	uint8_t b;

	if (s->irq_sent || !(s->ctr & I8042_CTR_KBDINT) || !head(s, &b))
		return false;
	s->irq_sent = true;
	return true;
}

static void ctl_answer(struct i8042_state *s, uint8_t b)
{
	/* One output register: a new answer replaces an unread one (still the same byte
	 * presented as far as the interrupt goes). */
	s->ctl_valid = true;
	s->ctl_byte = b;
}

static void kbd_clear(struct i8042_state *s)
{
	/* A keyboard drops what it had not sent yet when told to (re)start; a byte the
	 * controller already presents as the head is dropped with it. */
	if (!s->ctl_valid && s->kbd_len)
		s->irq_sent = false;
	s->kbd_len = 0;
}

/* Set 2 -> set 1 for the codes this keyboard sends (the 8042's translation table); the
 * prefixes 0xE0 and answers at or above 0x80 other than 0x83 pass unchanged. */
static uint8_t xlate(uint8_t b)
{
	switch (b) {
	case 0x11:
		return 0x38; /* left Alt */
	case 0x14:
		return 0x1d; /* left Ctrl */
	case 0x71:
		return 0x53; /* Delete (after 0xE0) */
	case 0x83:
		return 0x41; /* second ID byte */
	default:
		return b;
	}
}

/* Queue the keyboard's bytes as the controller will hand them out: translated to set 1 when
 * the CTR says so (0xF0 then marks the next code as a release, bit 7).  Bytes that do not fit
 * are lost (a real keyboard reports an overrun; nobody here would read it). */
static void kbd_send(struct i8042_state *s, const uint8_t *seq, size_t n)
{
	bool brk = false;

	for (size_t i = 0; i < n; i++) {
		uint8_t b = seq[i];

		if (s->ctr & I8042_CTR_XLATE) {
			if (b == 0xf0) {
				brk = true;
				continue;
			}
			b = (uint8_t)(xlate(b) | (brk ? 0x80 : 0));
			brk = false;
		}
		if (s->kbd_len >= I8042_QUEUE)
			return;
		s->kbd_q[s->kbd_len++] = b;
		s->last_kbd = b;
	}
}

static void kbd_send1(struct i8042_state *s, uint8_t b)
{
	kbd_send(s, &b, 1);
}

/* A byte written to 0x60 with no controller command pending goes to the keyboard. */
static void kbd_write(struct i8042_state *s, uint8_t v)
{
	uint8_t cmd = s->kbd_cmd;

	if (cmd) {
		s->kbd_cmd = 0;
		if (cmd == KBD_SCANSET && v == 0) {
			static const uint8_t ans[] = { I8042_KBD_ACK, 2 };

			kbd_send(s, ans, sizeof(ans));
		} else if (cmd == KBD_SCANSET && v != 2) {
			kbd_send1(s, I8042_KBD_NAK); /* only set 2 is offered */
		} else {
			kbd_send1(s, I8042_KBD_ACK); /* LEDs, typematic rate, set 2 */
		}
		return;
	}
	switch (v) {
	case KBD_RESET: {
		static const uint8_t ans[] = { I8042_KBD_ACK, I8042_KBD_BAT };

		kbd_clear(s);
		s->scanning = true;
		kbd_send(s, ans, sizeof(ans));
		break;
	}
	case KBD_GETID: {
		static const uint8_t ans[] = { I8042_KBD_ACK, 0xab, 0x83 };

		kbd_send(s, ans, sizeof(ans));
		break;
	}
	case KBD_ENABLE:
		kbd_clear(s);
		s->scanning = true;
		kbd_send1(s, I8042_KBD_ACK);
		break;
	case KBD_DISABLE:
		kbd_clear(s);
		s->scanning = false;
		kbd_send1(s, I8042_KBD_ACK);
		break;
	case KBD_DEFAULTS:
		kbd_clear(s);
		kbd_send1(s, I8042_KBD_ACK);
		break;
	case KBD_SETLEDS:
	case KBD_SETREP:
	case KBD_SCANSET:
		s->kbd_cmd = v;
		kbd_send1(s, I8042_KBD_ACK);
		break;
	case KBD_ECHO:
		kbd_send1(s, KBD_ECHO);
		break;
	case KBD_RESEND:
		kbd_send1(s, s->last_kbd);
		break;
	case 0xf7:
	case 0xf8:
	case 0xf9:
	case 0xfa:
	case 0xfb:
	case 0xfc:
	case 0xfd:
		/* Set 3 key types: accepted and meaningless in set 2. */
		kbd_send1(s, I8042_KBD_ACK);
		break;
	default:
		kbd_send1(s, I8042_KBD_NAK);
		break;
	}
}

/* Returns true if the VM must reset (output port bit 0 pulsed or written low). */
static bool ctl_data(struct i8042_state *s, uint8_t cmd, uint8_t v)
{
	if (cmd == 0x60) {
		s->ctr = v;
	} else if (cmd == 0xd1) {
		s->outport = (uint8_t)(v | OUTPORT_RESET);
		if (!(v & OUTPORT_RESET))
			return true;
	} else if (cmd == 0xd2) {
		ctl_answer(s, v); /* echoed as if the keyboard had sent it */
	}
	/* 0x61-0x7F: controller RAM nobody reads; 0xD3/0xD4: no auxiliary port. */
	return false;
}

/* A write to 0x64.  Returns true if the VM must reset. */
static bool ctl_command(struct i8042_state *s, uint8_t cmd)
{
	uint8_t b;

	s->ctl_cmd = 0; /* a new command abandons one still waiting for its byte */
	if (cmd == 0x20) {
		ctl_answer(s, s->ctr);
	} else if (cmd > 0x20 && cmd < 0x40) {
		ctl_answer(s, 0); /* controller RAM */
	} else if ((cmd >= 0x60 && cmd < 0x80) || (cmd >= 0xd1 && cmd <= 0xd4)) {
		s->ctl_cmd = cmd;
	} else if (cmd >= 0xf0) {
		/* Pulse the output lines whose bit is 0 in the low nibble; bit 0 is reset. */
		return !(cmd & 1);
	} else {
		switch (cmd) {
		case 0xa7:
			s->ctr |= I8042_CTR_AUXDIS;
			break;
		case 0xa8:
			/* No auxiliary port: it stays disabled, which tells a driver probing
			 * for one that it is absent. */
			break;
		case 0xa9:
			ctl_answer(s, 0x01); /* auxiliary clock line stuck: nothing there */
			break;
		case 0xaa:
			ctl_answer(s, 0x55);
			s->ctr |= I8042_CTR_SYS;
			break;
		case 0xab:
			ctl_answer(s, 0x00);
			break;
		case 0xad:
			s->ctr |= I8042_CTR_KBDDIS;
			break;
		case 0xae:
			s->ctr &= (uint8_t)~I8042_CTR_KBDDIS;
			break;
		case 0xd0:
			ctl_answer(s, (uint8_t)(s->outport | (head(s, &b) ? OUTPORT_OBF : 0)));
			break;
		default:
			/* Unknown (0xA1 version, 0xC0 input port, vendor commands...): no answer;
			 * a driver waiting for one times out, as on controllers without it. */
			log_debug("i8042: command %#x ignored", cmd);
			break;
		}
	}
	return false;
}

static uint64_t data_read(void *dev, uint64_t off, unsigned size)
{
	struct i8042 *k = dev;
	struct i8042_state *s = &k->st;
	bool raise;
	uint8_t b;

	pthread_mutex_lock(&k->lock);
	if (head(s, &b)) {
		if (s->ctl_valid) {
			s->ctl_valid = false;
		} else {
			memmove(s->kbd_q, s->kbd_q + 1, --s->kbd_len);
		}
		s->last_out = b;
		s->irq_sent = false;
	}
	b = s->last_out;
	raise = irq_due(s);
	pthread_mutex_unlock(&k->lock);
	if (raise && k->irq)
		irq_trigger(k->irq);
	return b;
}

static uint64_t status_read(void *dev, uint64_t off, unsigned size)
{
	struct i8042 *k = dev;
	struct i8042_state *s = &k->st;
	uint8_t b, v = I8042_STR_KEYLOCK;

	pthread_mutex_lock(&k->lock);
	if (head(s, &b))
		v |= I8042_STR_OBF;
	if (s->ctr & I8042_CTR_SYS)
		v |= I8042_STR_SYS;
	if (s->last_cmd)
		v |= I8042_STR_CMD;
	pthread_mutex_unlock(&k->lock);
	return v;
}

static void port_write(struct i8042 *k, bool cmd_port, uint8_t v)
{
	struct i8042_state *s = &k->st;
	bool reset = false, raise;

	pthread_mutex_lock(&k->lock);
	s->last_cmd = cmd_port;
	if (cmd_port) {
		reset = ctl_command(s, v);
	} else if (s->ctl_cmd) {
		uint8_t c = s->ctl_cmd;

		s->ctl_cmd = 0;
		reset = ctl_data(s, c, v);
	} else {
		kbd_write(s, v);
	}
	raise = irq_due(s);
	pthread_mutex_unlock(&k->lock);
	if (raise && k->irq)
		irq_trigger(k->irq);
	if (reset)
		power_request(&k->sink, VM_STOP_REBOOT);
}

static void data_write(void *dev, uint64_t off, unsigned size, uint64_t val)
{
	port_write(dev, false, (uint8_t)val);
}

static void cmd_write(void *dev, uint64_t off, unsigned size, uint64_t val)
{
	port_write(dev, true, (uint8_t)val);
}

int i8042_send_ctrl_alt_del(struct i8042 *k)
{
	/* Set 2: LeftCtrl, LeftAlt, Delete (0xE0 0x71) made, then broken (0xF0 prefix). */
	static const uint8_t seq[] = { 0x14, 0x11, 0xe0, 0x71, 0xe0, 0xf0,
				       0x71, 0xf0, 0x11, 0xf0, 0x14 };
	struct i8042_state *s = &k->st;
	bool raise = false;
	int ret = 0;

	pthread_mutex_lock(&k->lock);
	if (!s->scanning)
		ret = -EAGAIN;
	else if (s->kbd_len + sizeof(seq) + ANSWER_ROOM > I8042_QUEUE)
		ret = -ENOSPC;
	if (!ret) {
		kbd_send(s, seq, sizeof(seq));
		raise = irq_due(s);
	}
	pthread_mutex_unlock(&k->lock);
	if (raise && k->irq)
		irq_trigger(k->irq);
	return ret;
}

static void ops_reset(void *dev)
{
	struct i8042 *k = dev;

	pthread_mutex_lock(&k->lock);
	state_reset(&k->st);
	pthread_mutex_unlock(&k->lock);
}

/* ACPI 6.4 §6.1.5 _HID PNP0303 (IBM enhanced keyboard, 8042): data port first, then the
 * command port, and IRQ 1; Linux's i8042 PNP driver takes the ports in that order and, with
 * no PNP0F13 (mouse) node, leaves the auxiliary port alone. */
static int ops_describe(void *dev, const struct dm_dev *slot, struct dm_describe *ctx)
{
	struct aml res;
	size_t mark;
	int ret;

	if (!ctx->dsdt)
		return 0;
	aml_init(&res);
	ret = aml_res_io(&res, I8042_DATA_PORT, 1) ?: aml_res_io(&res, I8042_CMD_PORT, 1) ?:
	      aml_res_irq(&res, slot->has_irq ? slot->irq.gsi : I8042_IRQ);
	ret = ret ?: aml_device_begin(ctx->dsdt, "PS2K", &mark) ?:
		     aml_name_id(ctx->dsdt, "_HID", "PNP0303") ?:
		     aml_name_integer(ctx->dsdt, "_UID", 0) ?:
		     aml_name_resources(ctx->dsdt, "_CRS", &res) ?: aml_end(ctx->dsdt, mark);
	aml_free(&res);
	return ret;
}

/* SNAP_REC_I8042 payload, version 1: u8 CTR, u8 output port, u8 pending controller command,
 * u8 pending keyboard command, bool last write to 0x64, bool scanning, u8 last keyboard byte,
 * u8 last output byte, bool IRQ sent for the byte presented, bool controller answer waiting,
 * u8 that answer, u8 keyboard buffer length n (<= I8042_QUEUE), n bytes. */
#define I8042_STATE_VERSION 1

static int ops_save(void *dev, struct snap_writer *w, const char *id)
{
	struct i8042 *k = dev;
	struct i8042_state s;

	pthread_mutex_lock(&k->lock);
	s = k->st;
	pthread_mutex_unlock(&k->lock);
	snap_rec_begin(w, SNAP_REC_I8042, I8042_STATE_VERSION, id);
	snap_put_u8(w, s.ctr);
	snap_put_u8(w, s.outport);
	snap_put_u8(w, s.ctl_cmd);
	snap_put_u8(w, s.kbd_cmd);
	snap_put_bool(w, s.last_cmd);
	snap_put_bool(w, s.scanning);
	snap_put_u8(w, s.last_kbd);
	snap_put_u8(w, s.last_out);
	snap_put_bool(w, s.irq_sent);
	snap_put_bool(w, s.ctl_valid);
	snap_put_u8(w, s.ctl_byte);
	snap_put_u8(w, s.kbd_len);
	snap_put_bytes(w, s.kbd_q, s.kbd_len);
	return w->err;
}

static bool valid_pending(uint8_t ctl, uint8_t kbd)
{
	return (ctl == 0 || (ctl >= 0x60 && ctl < 0x80) || (ctl >= 0xd1 && ctl <= 0xd4)) &&
	       (kbd == 0 || kbd == KBD_SETLEDS || kbd == KBD_SETREP || kbd == KBD_SCANSET);
}

static int ops_restore(void *dev, const struct snap_file *f, const char *id)
{
	struct i8042 *k = dev;
	struct i8042_state s;
	struct snap_reader r;

	if (snap_file_find(f, SNAP_REC_I8042, id, &r) || r.version != I8042_STATE_VERSION)
		return -EINVAL;
	memset(&s, 0, sizeof(s));
	s.ctr = snap_get_u8(&r);
	s.outport = snap_get_u8(&r);
	s.ctl_cmd = snap_get_u8(&r);
	s.kbd_cmd = snap_get_u8(&r);
	s.last_cmd = snap_get_bool(&r);
	s.scanning = snap_get_bool(&r);
	s.last_kbd = snap_get_u8(&r);
	s.last_out = snap_get_u8(&r);
	s.irq_sent = snap_get_bool(&r);
	s.ctl_valid = snap_get_bool(&r);
	s.ctl_byte = snap_get_u8(&r);
	s.kbd_len = snap_get_u8(&r);
	if (s.kbd_len > I8042_QUEUE)
		snap_fail(&r);
	else
		snap_get_bytes(&r, s.kbd_q, s.kbd_len);
	if (snap_reader_done(&r) || !(s.outport & OUTPORT_RESET) ||
	    !valid_pending(s.ctl_cmd, s.kbd_cmd))
		return -EINVAL;
	pthread_mutex_lock(&k->lock);
	k->st = s;
	pthread_mutex_unlock(&k->lock);
	return 0;
}

static void ops_destroy(void *dev)
{
	i8042_destroy(dev);
}

const struct dev_ops i8042_data_ops = {
	.name = "i8042",
	.sizes = BUS_SZ1,
	.read = data_read,
	.write = data_write,
	.reset = ops_reset,
	.describe = ops_describe,
	.save = ops_save,
	.restore = ops_restore,
	.rec = { SNAP_REC_I8042, I8042_STATE_VERSION },
	.destroy = ops_destroy,
};

const struct dev_ops i8042_cmd_ops = {
	.name = "i8042-cmd", .sizes = BUS_SZ1, .read = status_read, .write = cmd_write,
	/* no reset, save or destroy: the data port's slot owns the state */
};

int i8042_create(struct irq_line *irq, const struct power_sink *sink, struct i8042 **out)
{
	struct i8042 *k = calloc(1, sizeof(*k));
	int ret;

	if (!k)
		return -ENOMEM;
	ret = -pthread_mutex_init(&k->lock, NULL);
	if (ret) {
		free(k);
		return ret;
	}
	k->irq = irq;
	if (sink)
		k->sink = *sink;
	state_reset(&k->st);
	*out = k;
	return 0;
}

void i8042_destroy(struct i8042 *k)
{
	if (!k)
		return;
	pthread_mutex_destroy(&k->lock);
	free(k);
}

static int add_create(struct devmgr *dm, struct dm_dev *slot, const void *sink, void **dev)
{
	struct i8042 *k;
	int ret = i8042_create(slot->has_irq ? &slot->irq : NULL, sink, &k);

	if (!ret)
		*dev = k;
	return ret;
}

/* The command port's slot shares the data port's state: nothing to create or destroy. */
static int add_lend(struct devmgr *dm, struct dm_dev *slot, const void *k, void **dev)
{
	*dev = (void *)k;
	return 0;
}

int i8042_add(struct devmgr *dm, const struct power_sink *sink, struct i8042 **out)
{
	const struct dm_slot_req data = { .id = "i8042",
					  .kind = DM_PIO,
					  .base = I8042_DATA_PORT,
					  .len = 1,
					  .irq = true,
					  .gsi = I8042_IRQ };
	const struct dm_slot_req cmd = {
		.id = "i8042-cmd", .kind = DM_PIO, .base = I8042_CMD_PORT, .len = 1
	};
	void *k;
	int ret;

	/* Two slots (ports 0x60 and 0x64 are not contiguous), one state: the data slot owns it.
	 * If the command slot fails, the data slot stays attached and the manager frees the
	 * state with it: a start-up failure is fatal anyway. */
	ret = devmgr_add(dm, &data, &i8042_data_ops, add_create, ops_destroy, sink, &k);
	if (ret)
		return ret;
	ret = devmgr_add(dm, &cmd, &i8042_cmd_ops, add_lend, NULL, k, NULL);
	if (!ret && out)
		*out = k;
	return ret;
}
