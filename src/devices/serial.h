/* 16550A UART (National Semiconductor PC16550D datasheet register model), the guest console
 * at COM1.  TX bytes go straight to a host fd; RX bytes come from the console through
 * serial_input().  Register accesses (vCPU threads) and serial_input (event-loop thread) are
 * serialised by one mutex, so any thread may call any function here. */
#ifndef IGNITION_DEVICES_SERIAL_H
#define IGNITION_DEVICES_SERIAL_H

#include "core/bus.h"

#include <stddef.h>
#include <stdint.h>

struct devmgr;
struct irq_line;
struct serial;

#define SERIAL_NR_PORTS 8  /* RBR/THR .. SCR */
#define SERIAL_RX_FIFO	64 /* receive FIFO depth (the 16550A has 16; deeper is invisible) */

/* Register offsets within the 8-port window (PC16550D Table II). */
#define SERIAL_RBR 0 /* read, DLAB=0: receiver buffer */
#define SERIAL_THR 0 /* write, DLAB=0: transmitter holding */
#define SERIAL_DLL 0 /* DLAB=1: divisor latch LSB */
#define SERIAL_IER 1 /* DLAB=0: interrupt enable */
#define SERIAL_DLM 1 /* DLAB=1: divisor latch MSB */
#define SERIAL_IIR 2 /* read: interrupt identification */
#define SERIAL_FCR 2 /* write: FIFO control */
#define SERIAL_LCR 3 /* line control */
#define SERIAL_MCR 4 /* modem control */
#define SERIAL_LSR 5 /* line status */
#define SERIAL_MSR 6 /* modem status */
#define SERIAL_SCR 7 /* scratch */

#define SERIAL_IER_ERBFI 0x01 /* received data available */
#define SERIAL_IER_ETBEI 0x02 /* THR empty */
#define SERIAL_IER_ELSI	 0x04 /* receiver line status */
#define SERIAL_IER_EDSSI 0x08 /* modem status */

#define SERIAL_IIR_NO_INT 0x01
#define SERIAL_IIR_MSI	  0x00 /* modem status */
#define SERIAL_IIR_THRI	  0x02 /* THR empty */
#define SERIAL_IIR_RDI	  0x04 /* received data available */
#define SERIAL_IIR_RLSI	  0x06 /* receiver line status */
#define SERIAL_IIR_FIFO	  0xc0 /* FIFOs enabled (FCR0 = 1) */
#define SERIAL_IIR_ID	  0x0f

#define SERIAL_FCR_ENABLE   0x01
#define SERIAL_FCR_CLEAR_RX 0x02
#define SERIAL_FCR_CLEAR_TX 0x04

#define SERIAL_LCR_DLAB 0x80

#define SERIAL_MCR_DTR	0x01
#define SERIAL_MCR_RTS	0x02
#define SERIAL_MCR_OUT1 0x04
#define SERIAL_MCR_OUT2 0x08
#define SERIAL_MCR_LOOP 0x10

#define SERIAL_LSR_DR	0x01 /* data ready */
#define SERIAL_LSR_OE	0x02 /* overrun error */
#define SERIAL_LSR_BI	0x10 /* break interrupt */
#define SERIAL_LSR_THRE 0x20 /* THR empty */
#define SERIAL_LSR_TEMT 0x40 /* transmitter empty */

#define SERIAL_MSR_DCTS 0x01
#define SERIAL_MSR_DDSR 0x02
#define SERIAL_MSR_TERI 0x04
#define SERIAL_MSR_DDCD 0x08
#define SERIAL_MSR_CTS	0x10
#define SERIAL_MSR_DSR	0x20
#define SERIAL_MSR_RI	0x40
#define SERIAL_MSR_DCD	0x80

/* The bus ops of the UART (exposed for tests that drive it without a DeviceManager). */
extern const struct dev_ops serial_ops;

/* Create a UART raising `irq` (may be NULL: no interrupts) and transmitting to out_fd
 * (-1: discard).  out_fd stays owned by the caller. */
int serial_create(struct irq_line *irq, int out_fd, struct serial **out)
	__attribute__((warn_unused_result));
/* Free the UART (also serial_ops.destroy). */
void serial_destroy(struct serial *s);
/* Reserve `port`..+7 and `gsi` (-1: none) as device `id`, create the UART and attach it. */
int serial_add(struct devmgr *dm, const char *id, uint16_t port, int gsi, int out_fd,
	       struct serial **out) __attribute__((warn_unused_result));
/* Register read/write at an offset in the window (what serial_ops calls). */
uint8_t serial_read(struct serial *s, unsigned off);
void serial_write(struct serial *s, unsigned off, uint8_t val);
/* Queue received bytes (any thread); returns how many fit in the RX FIFO.  When fewer than
 * len were taken, serial_rx_room_fd() becomes readable once the guest has drained a byte. */
size_t serial_input(struct serial *s, const uint8_t *buf, size_t len);
/* Eventfd (EFD_NONBLOCK) signalled when RX room appears after a short serial_input(); the
 * reader drains it with read() and retries.  Owned by the UART. */
int serial_rx_room_fd(const struct serial *s);
/* Bytes currently waiting in the RX FIFO. */
size_t serial_rx_pending(struct serial *s);
/* TX bytes dropped because out_fd stayed full or failed. */
uint64_t serial_tx_dropped(struct serial *s);

#endif
