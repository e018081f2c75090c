/* 16550A UART.  Register behaviour follows the PC16550D datasheet; the interrupt details follow
 * what Linux's 8250 driver relies on (drivers/tty/serial/8250/8250_port.c):
 *  - IIR reports the highest-priority pending source: line status > RX data > THR empty >
 *    modem status; reading IIR while it reports THR empty clears that indication.
 *  - Setting IER.ETBEI while the THR is empty raises a THR-empty interrupt (the driver's
 *    "THRE test" at startup, and every start_tx, depend on it).
 *  - The output line is edge-triggered: one irq_trigger() whenever the UART goes from "no
 *    interrupt pending" to "some interrupt pending", as the INTR pin of a PC UART rises.
 * Transmission is instantaneous, so LSR.THRE and LSR.TEMT always read 1.  The RX FIFO is 64
 * bytes deep whether or not FCR enables FIFOs (software that reads while LSR.DR cannot tell);
 * the RX data interrupt is reported whenever data is waiting (the trigger level and the
 * character-timeout interrupt are not modelled: Linux treats IIR 0x04 and 0x0c alike).
 *
 * Snapshots save struct serial_state (every register and the FIFO's bytes, oldest first) and
 * nothing of the host side (output fd, congestion, RX flow control).  The interrupt output is
 * a function of that state (iir_id()), so it is not stored: restore drives it again. */
#include "devices/serial.h"

#include "platform/acpi/aml.h"

#include "core/devmgr.h"
#include "core/irq.h"
#include "snapshot/snap.h"
#include "util/log.h"

#include <stdio.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

/* How long a TX byte may wait for a full output fd before output counts as congested; while
 * congested, bytes that do not fit at once are dropped so a stuck reader never stalls a vCPU. */
#define TX_WAIT_MS 100

/* What the guest can see: the registers and the receive FIFO (PC16550D Table II).  Everything
 * a snapshot holds; struct serial adds only host-side plumbing. */
struct serial_state {
	uint8_t ier, lcr, mcr, lsr, msr, scr, fcr;
	uint8_t dll, dlm;
	bool thre_pending; /* THR-empty interrupt condition, cleared by an IIR read */
	uint8_t rbr_last;  /* RBR keeps the last byte when the FIFO is empty */
	uint8_t rx[SERIAL_RX_FIFO];
	unsigned rx_head, rx_count;
};

struct serial {
	pthread_mutex_t lock;
	struct irq_line *irq;
	int out_fd;
	bool out_is_file; /* regular file: always writable, skip poll() */
	bool tx_congested;
	bool tx_broken; /* persistent write error: drop everything */
	uint64_t tx_dropped;
	int room_fd;	/* eventfd: RX room after a short serial_input() */
	bool want_room; /* a serial_input() was short since the last room signal */

	struct serial_state st;
};

/* Modem status inputs: normally DCD, DSR and CTS asserted (a cable with a ready terminal),
 * so getty and the 8250 driver's carrier checks are happy.  In loopback the inputs are wired
 * to the MCR outputs: DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD (PC16550D, MCR bit 4). */
static uint8_t msr_inputs(uint8_t mcr)
{
	uint8_t v = 0;

	if (!(mcr & SERIAL_MCR_LOOP))
		return SERIAL_MSR_DCD | SERIAL_MSR_DSR | SERIAL_MSR_CTS;
	if (mcr & SERIAL_MCR_DTR)
		v |= SERIAL_MSR_DSR;
	if (mcr & SERIAL_MCR_RTS)
		v |= SERIAL_MSR_CTS;
	if (mcr & SERIAL_MCR_OUT1)
		v |= SERIAL_MSR_RI;
	if (mcr & SERIAL_MCR_OUT2)
		v |= SERIAL_MSR_DCD;
	return v;
}

/* Latch new modem inputs, setting the delta bits of MSR[3:0]. */
static void msr_update(struct serial *s)
{
	uint8_t now = msr_inputs(s->st.mcr), old = s->st.msr & 0xf0, chg = now ^ old;

	if (chg & SERIAL_MSR_CTS)
		s->st.msr |= SERIAL_MSR_DCTS;
	if (chg & SERIAL_MSR_DSR)
		s->st.msr |= SERIAL_MSR_DDSR;
	if (chg & SERIAL_MSR_DCD)
		s->st.msr |= SERIAL_MSR_DDCD;
	if ((old & SERIAL_MSR_RI) && !(now & SERIAL_MSR_RI))
		s->st.msr |= SERIAL_MSR_TERI; /* trailing edge of RI only */
	s->st.msr = (uint8_t)((s->st.msr & 0x0f) | now);
}

/* IIR interrupt identification, in the datasheet's priority order (Table IV). */
static uint8_t iir_id(const struct serial_state *st)
{
	if ((st->ier & SERIAL_IER_ELSI) && (st->lsr & (SERIAL_LSR_OE | SERIAL_LSR_BI)))
		return SERIAL_IIR_RLSI;
	if ((st->ier & SERIAL_IER_ERBFI) && st->rx_count)
		return SERIAL_IIR_RDI;
	if ((st->ier & SERIAL_IER_ETBEI) && st->thre_pending)
		return SERIAL_IIR_THRI;
	if ((st->ier & SERIAL_IER_EDSSI) && (st->msr & 0x0f))
		return SERIAL_IIR_MSI;
	return SERIAL_IIR_NO_INT;
}

/* The level of the UART's INTR output. */
static bool irq_pending(const struct serial *s)
{
	return iir_id(&s->st) != SERIAL_IIR_NO_INT;
}

static void rx_clear(struct serial *s)
{
	s->st.rx_head = s->st.rx_count = 0;
	s->st.lsr &= (uint8_t)~SERIAL_LSR_DR;
}

/* Push one byte; false (and nothing stored) if the FIFO is full. */
static bool rx_push(struct serial *s, uint8_t b)
{
	if (s->st.rx_count == SERIAL_RX_FIFO)
		return false;
	s->st.rx[(s->st.rx_head + s->st.rx_count) % SERIAL_RX_FIFO] = b;
	s->st.rx_count++;
	s->st.lsr |= SERIAL_LSR_DR;
	return true;
}

static void signal_room(struct serial *s)
{
	uint64_t one = 1;
	ssize_t r;

	if (!s->want_room || s->st.rx_count == SERIAL_RX_FIFO)
		return;
	s->want_room = false;
	r = write(s->room_fd, &one, sizeof(one));
	(void)r; /* only fails on counter overflow: already readable */
}

static uint8_t rx_pop(struct serial *s)
{
	if (!s->st.rx_count)
		return s->st.rbr_last;
	s->st.rbr_last = s->st.rx[s->st.rx_head];
	s->st.rx_head = (s->st.rx_head + 1) % SERIAL_RX_FIFO;
	if (--s->st.rx_count == 0)
		s->st.lsr &= (uint8_t)~SERIAL_LSR_DR;
	signal_room(s);
	return s->st.rbr_last;
}

/* Send one byte to the host without ever blocking the vCPU for long. */
static void tx_out(struct serial *s, uint8_t b)
{
	int tries = 0;

	if (s->out_fd < 0 || s->tx_broken) {
		s->tx_dropped++;
		return;
	}
	while (tries++ < 4) {
		ssize_t n;

		if (!s->out_is_file) {
			struct pollfd p = { .fd = s->out_fd, .events = POLLOUT };
			int r = poll(&p, 1, s->tx_congested ? 0 : TX_WAIT_MS);

			if (r < 0 && errno == EINTR)
				continue;
			if (r == 0) {
				s->tx_congested = true;
				break;
			}
			/* r < 0 or POLLERR/POLLHUP: let write() report the error. */
		}
		n = write(s->out_fd, &b, 1);
		if (n == 1) {
			s->tx_congested = false;
			return;
		}
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		log_warn("serial: output fd %d failed (%s); dropping console output", s->out_fd,
			 n < 0 ? strerror(errno) : "short write");
		s->tx_broken = true;
		break;
	}
	s->tx_dropped++;
}

/* THR write: the byte leaves at once (or loops back into the receiver in loopback mode). */
static void thr_write(struct serial *s, uint8_t b)
{
	if (s->st.mcr & SERIAL_MCR_LOOP) {
		if (!rx_push(s, b))
			s->st.lsr |= SERIAL_LSR_OE; /* overrun: the new character is lost */
	} else {
		tx_out(s, b);
	}
	/* The THR is empty again: a new THR-empty condition. */
	s->st.thre_pending = true;
}

static void regs_reset(struct serial *s)
{
	/* PC16550D Table III (master reset); the divisor and SCR are not reset by the chip, but
	 * a defined value (9600 baud) is friendlier to snapshots and tests. */
	s->st.ier = 0;
	s->st.lcr = 0;
	s->st.mcr = 0;
	s->st.fcr = 0;
	s->st.lsr = SERIAL_LSR_THRE | SERIAL_LSR_TEMT;
	s->st.msr = msr_inputs(0);
	s->st.scr = 0;
	s->st.dll = 0x0c;
	s->st.dlm = 0;
	s->st.thre_pending = false;
	s->st.rbr_last = 0;
	rx_clear(s);
	signal_room(s);
}

uint8_t serial_read(struct serial *s, unsigned off)
{
	uint8_t v = 0xff;
	bool before, trigger;

	pthread_mutex_lock(&s->lock);
	before = irq_pending(s);
	switch (off) {
	case SERIAL_RBR:
		v = (s->st.lcr & SERIAL_LCR_DLAB) ? s->st.dll : rx_pop(s);
		break;
	case SERIAL_IER:
		v = (s->st.lcr & SERIAL_LCR_DLAB) ? s->st.dlm : s->st.ier;
		break;
	case SERIAL_IIR:
		v = iir_id(&s->st);
		/* Reading IIR clears a THR-empty interrupt it reports (PC16550D Table IV). */
		if (v == SERIAL_IIR_THRI)
			s->st.thre_pending = false;
		if (s->st.fcr & SERIAL_FCR_ENABLE)
			v |= SERIAL_IIR_FIFO;
		break;
	case SERIAL_LCR:
		v = s->st.lcr;
		break;
	case SERIAL_MCR:
		v = s->st.mcr;
		break;
	case SERIAL_LSR:
		v = s->st.lsr;
		/* OE and BI are cleared by reading LSR. */
		s->st.lsr &= (uint8_t) ~(SERIAL_LSR_OE | SERIAL_LSR_BI);
		break;
	case SERIAL_MSR:
		v = s->st.msr;
		s->st.msr &= 0xf0; /* delta bits clear on read */
		break;
	case SERIAL_SCR:
		v = s->st.scr;
		break;
	}
	trigger = !before && irq_pending(s);
	pthread_mutex_unlock(&s->lock);
	if (trigger && s->irq)
		irq_trigger(s->irq);
	return v;
}

void serial_write(struct serial *s, unsigned off, uint8_t val)
{
	bool before, trigger;
	uint8_t old;

	pthread_mutex_lock(&s->lock);
	before = irq_pending(s);
	switch (off) {
	case SERIAL_THR:
		if (s->st.lcr & SERIAL_LCR_DLAB)
			s->st.dll = val;
		else
			thr_write(s, val);
		break;
	case SERIAL_IER:
		if (s->st.lcr & SERIAL_LCR_DLAB) {
			s->st.dlm = val;
			break;
		}
		old = s->st.ier;
		s->st.ier = val & 0x0f; /* bits 7:4 are always 0 on a 16550A */
		/* Enabling ETBEI with an empty THR raises THR empty at once. */
		if (!(old & SERIAL_IER_ETBEI) && (s->st.ier & SERIAL_IER_ETBEI))
			s->st.thre_pending = true;
		break;
	case SERIAL_FCR:
		/* Changing FCR0 clears both FIFOs; bits 1/2 clear them explicitly and self-clear.
		 * The TX side is always empty.  DMA mode and trigger level are kept but unused. */
		if ((val ^ s->st.fcr) & SERIAL_FCR_ENABLE || (val & SERIAL_FCR_CLEAR_RX)) {
			rx_clear(s);
			signal_room(s);
		}
		s->st.fcr = val & (uint8_t) ~(SERIAL_FCR_CLEAR_RX | SERIAL_FCR_CLEAR_TX);
		break;
	case SERIAL_LCR:
		s->st.lcr = val;
		break;
	case SERIAL_MCR:
		old = s->st.mcr;
		s->st.mcr = val & 0x1f;
		msr_update(s);
		/* Leaving loopback reconnects the receiver: input held back may flow again. */
		if ((old & SERIAL_MCR_LOOP) && !(s->st.mcr & SERIAL_MCR_LOOP))
			signal_room(s);
		break;
	case SERIAL_LSR:
	case SERIAL_MSR:
		/* Factory-test writes on real chips; ignored. */
		break;
	case SERIAL_SCR:
		s->st.scr = val;
		break;
	}
	trigger = !before && irq_pending(s);
	pthread_mutex_unlock(&s->lock);
	if (trigger && s->irq)
		irq_trigger(s->irq);
}

size_t serial_input(struct serial *s, const uint8_t *buf, size_t len)
{
	size_t n = 0;
	bool before, trigger;

	pthread_mutex_lock(&s->lock);
	before = irq_pending(s);
	/* In loopback the receiver is disconnected from the serial input (PC16550D, MCR bit 4):
	 * hold the bytes back until the guest leaves loopback. */
	if (!(s->st.mcr & SERIAL_MCR_LOOP))
		while (n < len && rx_push(s, buf[n]))
			n++;
	if (n < len)
		s->want_room = true;
	trigger = !before && irq_pending(s);
	pthread_mutex_unlock(&s->lock);
	if (trigger && s->irq)
		irq_trigger(s->irq);
	return n;
}

int serial_rx_room_fd(const struct serial *s)
{
	return s->room_fd;
}

size_t serial_rx_pending(struct serial *s)
{
	size_t n;

	pthread_mutex_lock(&s->lock);
	n = s->st.rx_count;
	pthread_mutex_unlock(&s->lock);
	return n;
}

uint64_t serial_tx_dropped(struct serial *s)
{
	uint64_t n;

	pthread_mutex_lock(&s->lock);
	n = s->tx_dropped;
	pthread_mutex_unlock(&s->lock);
	return n;
}

static uint64_t ops_read(void *dev, uint64_t off, unsigned size)
{
	return serial_read(dev, (unsigned)off);
}

static void ops_write(void *dev, uint64_t off, unsigned size, uint64_t val)
{
	serial_write(dev, (unsigned)off, (uint8_t)val);
}

static void ops_reset(void *dev)
{
	struct serial *s = dev;

	pthread_mutex_lock(&s->lock);
	regs_reset(s);
	pthread_mutex_unlock(&s->lock);
}

/* SNAP_REC_SERIAL payload, version 1:
 *   u8 IER, u8 LCR, u8 MCR, u8 LSR, u8 MSR, u8 SCR, u8 FCR, u8 DLL, u8 DLM,
 *   bool THR-empty interrupt pending, u8 last RBR byte,
 *   u8 n (<= SERIAL_RX_FIFO), n bytes: the receive FIFO, oldest first. */
#define SERIAL_STATE_VERSION 1

/* LSR bits this model can set: no parity/framing errors, breaks or RX FIFO errors. */
#define LSR_MODELLED (SERIAL_LSR_DR | SERIAL_LSR_OE | SERIAL_LSR_THRE | SERIAL_LSR_TEMT)

/* Could this UART have reached `st`?  (A register value it cannot produce would make its
 * interrupt logic disagree with what the guest reads.) */
static bool state_valid(const struct serial_state *st)
{
	return !(st->ier & 0xf0) && !(st->mcr & 0xe0) &&
	       !(st->fcr & (SERIAL_FCR_CLEAR_RX | SERIAL_FCR_CLEAR_TX)) &&
	       !(st->lsr & (uint8_t)~LSR_MODELLED) &&
	       (st->lsr & (SERIAL_LSR_THRE | SERIAL_LSR_TEMT)) ==
		       (SERIAL_LSR_THRE | SERIAL_LSR_TEMT) &&
	       !!(st->lsr & SERIAL_LSR_DR) == (st->rx_count != 0) &&
	       (st->msr & 0xf0) == msr_inputs(st->mcr) && st->rx_count <= SERIAL_RX_FIFO &&
	       st->rx_head < SERIAL_RX_FIFO;
}

static int ops_save(void *dev, struct snap_writer *w, const char *id)
{
	struct serial *s = dev;
	struct serial_state st;

	pthread_mutex_lock(&s->lock);
	st = s->st;
	pthread_mutex_unlock(&s->lock);
	snap_rec_begin(w, SNAP_REC_SERIAL, SERIAL_STATE_VERSION, id);
	snap_put_u8(w, st.ier);
	snap_put_u8(w, st.lcr);
	snap_put_u8(w, st.mcr);
	snap_put_u8(w, st.lsr);
	snap_put_u8(w, st.msr);
	snap_put_u8(w, st.scr);
	snap_put_u8(w, st.fcr);
	snap_put_u8(w, st.dll);
	snap_put_u8(w, st.dlm);
	snap_put_bool(w, st.thre_pending);
	snap_put_u8(w, st.rbr_last);
	snap_put_u8(w, (uint8_t)st.rx_count);
	for (unsigned i = 0; i < st.rx_count; i++)
		snap_put_u8(w, st.rx[(st.rx_head + i) % SERIAL_RX_FIFO]);
	return w->err;
}

static int ops_restore(void *dev, const struct snap_file *f, const char *id)
{
	struct serial *s = dev;
	struct serial_state st;
	struct snap_reader r;
	bool raise;

	if (snap_file_find(f, SNAP_REC_SERIAL, id, &r) || r.version != SERIAL_STATE_VERSION)
		return -EINVAL;
	memset(&st, 0, sizeof(st));
	st.ier = snap_get_u8(&r);
	st.lcr = snap_get_u8(&r);
	st.mcr = snap_get_u8(&r);
	st.lsr = snap_get_u8(&r);
	st.msr = snap_get_u8(&r);
	st.scr = snap_get_u8(&r);
	st.fcr = snap_get_u8(&r);
	st.dll = snap_get_u8(&r);
	st.dlm = snap_get_u8(&r);
	st.thre_pending = snap_get_bool(&r);
	st.rbr_last = snap_get_u8(&r);
	st.rx_count = snap_get_u8(&r);
	if (st.rx_count <= SERIAL_RX_FIFO)
		snap_get_bytes(&r, st.rx, st.rx_count);
	if (snap_reader_done(&r) || !state_valid(&st))
		return -EINVAL;

	pthread_mutex_lock(&s->lock);
	s->st = st;
	raise = irq_pending(s);
	signal_room(s); /* input held back by a short serial_input() may fit now */
	pthread_mutex_unlock(&s->lock);
	/* The line is edge-triggered and this device has never raised it: an interrupt pending
	 * in the snapshot must rise again or the guest would wait for it for ever.  If the
	 * restored irqchip already holds that edge, the guest sees one spurious interrupt (IIR
	 * then reads "none", which the 8250 driver tolerates). */
	if (raise && s->irq)
		irq_trigger(s->irq);
	return 0;
}

static void ops_destroy(void *dev)
{
	serial_destroy(dev);
}

/* An ACPI PNP0501 node lets the guest find the port without probing it (ACPI 6.4 §6.1.5). */
static int ops_describe(void *dev, const struct dm_dev *slot, struct dm_describe *ctx)
{
	char name[5];

	if (!ctx->dsdt)
		return 0;
	snprintf(name, sizeof(name), "COM%u", slot->index % 10);
	return aml_pio_device(ctx->dsdt, name, "PNP0501", slot->index, (uint16_t)slot->base,
			      (uint8_t)slot->len, slot->has_irq ? (int)slot->irq.gsi : -1);
}

const struct dev_ops serial_ops = {
	.name = "serial-16550a",
	.sizes = BUS_SZ1,
	.read = ops_read,
	.write = ops_write,
	.reset = ops_reset,
	.describe = ops_describe,
	.save = ops_save,
	.restore = ops_restore,
	.rec = { SNAP_REC_SERIAL, SERIAL_STATE_VERSION },
	.destroy = ops_destroy,
};

int serial_create(struct irq_line *irq, int out_fd, struct serial **out)
{
	struct serial *s = calloc(1, sizeof(*s));
	struct stat st;
	int ret;

	if (!s)
		return -ENOMEM;
	s->room_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->room_fd < 0) {
		ret = -errno;
		goto err_free;
	}
	ret = -pthread_mutex_init(&s->lock, NULL);
	if (ret)
		goto err_close;
	s->irq = irq;
	s->out_fd = out_fd;
	s->out_is_file = out_fd >= 0 && fstat(out_fd, &st) == 0 && S_ISREG(st.st_mode);
	regs_reset(s);
	*out = s;
	return 0;

err_close:
	close(s->room_fd);
err_free:
	free(s);
	return ret;
}

void serial_destroy(struct serial *s)
{
	if (!s)
		return;
	pthread_mutex_destroy(&s->lock);
	close(s->room_fd);
	free(s);
}

static int add_create(struct devmgr *dm, struct dm_dev *slot, const void *out_fd, void **dev)
{
	struct serial *s;
	int ret = serial_create(slot->has_irq ? &slot->irq : NULL, *(const int *)out_fd, &s);

	if (!ret)
		*dev = s;
	return ret;
}

int serial_add(struct devmgr *dm, const char *id, uint16_t port, int gsi, int out_fd,
	       struct serial **out)
{
	const struct dm_slot_req req = { .id = id,
					 .kind = DM_PIO,
					 .base = port,
					 .len = SERIAL_NR_PORTS,
					 .irq = gsi >= 0,
					 .gsi = gsi >= 0 ? (uint32_t)gsi : 0 };
	void *dev;
	int ret = devmgr_add(dm, &req, &serial_ops, add_create, ops_destroy, &out_fd, &dev);

	if (!ret && out)
		*out = dev;
	return ret;
}
