/* 16550A UART: every register, the FIFO, interrupts (counted on the irq line), loopback as
 * Linux's 8250 probe uses it, TX output through a pipe, and snapshot save/restore. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/devmgr.h"
#include "devices/serial.h"
#include "snap_edit.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct fixture {
	struct irq_line irq;
	int out[2]; /* pipe: the UART writes out[1], the test reads out[0] */
	struct serial *s;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->irq.fd = -1;
	assert_int_equal(pipe2(f->out, O_CLOEXEC), 0);
	/* Non-blocking read end so "nothing was written" can be checked. */
	assert_int_equal(fcntl(f->out[0], F_SETFL, O_NONBLOCK), 0);
	assert_int_equal(serial_create(&f->irq, f->out[1], &f->s), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	serial_destroy(f->s);
	if (f->out[0] >= 0)
		close(f->out[0]);
	if (f->out[1] >= 0)
		close(f->out[1]);
	free(f);
	return 0;
}

static uint8_t rd(struct fixture *f, unsigned off)
{
	return serial_read(f->s, off);
}

static void wr(struct fixture *f, unsigned off, uint8_t v)
{
	serial_write(f->s, off, v);
}

static void test_reset_values(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(rd(f, SERIAL_IER), 0);
	assert_int_equal(rd(f, SERIAL_IIR), SERIAL_IIR_NO_INT);
	assert_int_equal(rd(f, SERIAL_LCR), 0);
	assert_int_equal(rd(f, SERIAL_MCR), 0);
	assert_int_equal(rd(f, SERIAL_LSR), SERIAL_LSR_THRE | SERIAL_LSR_TEMT);
	/* DCD, DSR, CTS asserted; no deltas. */
	assert_int_equal(rd(f, SERIAL_MSR), SERIAL_MSR_DCD | SERIAL_MSR_DSR | SERIAL_MSR_CTS);
	assert_int_equal(rd(f, SERIAL_SCR), 0);
	assert_int_equal(f->irq.count, 0);
}

static void test_scratch(void **state)
{
	struct fixture *f = *state;

	for (unsigned v = 0; v < 256; v += 17) {
		wr(f, SERIAL_SCR, (uint8_t)v);
		assert_int_equal(rd(f, SERIAL_SCR), v);
	}
}

static void test_divisor_latch(void **state)
{
	struct fixture *f = *state;

	wr(f, SERIAL_IER, SERIAL_IER_ERBFI);
	wr(f, SERIAL_LCR, SERIAL_LCR_DLAB | 0x03);
	assert_int_equal(rd(f, SERIAL_LCR), 0x83);
	wr(f, SERIAL_DLL, 0x01);
	wr(f, SERIAL_DLM, 0x02);
	assert_int_equal(rd(f, SERIAL_DLL), 0x01);
	assert_int_equal(rd(f, SERIAL_DLM), 0x02);
	/* DLAB writes do not reach THR/IER. */
	assert_int_equal(read(f->out[0], (char[4]){ 0 }, 4), -1);
	wr(f, SERIAL_LCR, 0x03);
	assert_int_equal(rd(f, SERIAL_IER), SERIAL_IER_ERBFI);
	wr(f, SERIAL_LCR, SERIAL_LCR_DLAB);
	assert_int_equal(rd(f, SERIAL_DLL), 0x01);
	assert_int_equal(rd(f, SERIAL_DLM), 0x02);
	/* The divisor survives ops.reset only as the defined default. */
	serial_ops.reset(f->s);
	assert_int_equal(rd(f, SERIAL_LCR), 0);
	assert_int_equal(rd(f, SERIAL_IER), 0);
}

static void test_ier_bits(void **state)
{
	struct fixture *f = *state;

	/* Linux autoconfig: IER must hold 0 and 0x0f; bits 7:4 read 0 (no UUE: not XScale). */
	wr(f, SERIAL_IER, 0);
	assert_int_equal(rd(f, SERIAL_IER) & 0x0f, 0);
	wr(f, SERIAL_IER, 0xff);
	assert_int_equal(rd(f, SERIAL_IER), 0x0f);
}

static void test_tx_output(void **state)
{
	struct fixture *f = *state;
	const char *msg = "hello, world\r\n";
	char buf[64];

	for (const char *p = msg; *p; p++)
		wr(f, SERIAL_THR, (uint8_t)*p);
	assert_int_equal(read(f->out[0], buf, sizeof(buf)), strlen(msg));
	assert_memory_equal(buf, msg, strlen(msg));
	assert_int_equal(rd(f, SERIAL_LSR) & (SERIAL_LSR_THRE | SERIAL_LSR_TEMT),
			 SERIAL_LSR_THRE | SERIAL_LSR_TEMT);
	assert_int_equal(serial_tx_dropped(f->s), 0);
	/* No interrupt without IER. */
	assert_int_equal(f->irq.count, 0);
}

static void test_fifo_fill_overflow(void **state)
{
	struct fixture *f = *state;
	uint8_t in[SERIAL_RX_FIFO + 1];
	uint64_t v;

	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)(i + 1);
	wr(f, SERIAL_FCR, SERIAL_FCR_ENABLE);
	assert_int_equal(rd(f, SERIAL_IIR) & SERIAL_IIR_FIFO, SERIAL_IIR_FIFO);
	assert_int_equal(rd(f, SERIAL_LSR) & SERIAL_LSR_DR, 0);
	/* 65 bytes: the 65th is refused. */
	assert_int_equal(serial_input(f->s, in, sizeof(in)), SERIAL_RX_FIFO);
	assert_int_equal(serial_rx_pending(f->s), SERIAL_RX_FIFO);
	assert_int_equal(serial_input(f->s, in + 64, 1), 0);
	assert_int_equal(rd(f, SERIAL_LSR) & (SERIAL_LSR_DR | SERIAL_LSR_OE), SERIAL_LSR_DR);
	/* No room signalled yet. */
	assert_int_equal(read(serial_rx_room_fd(f->s), &v, sizeof(v)), -1);
	assert_int_equal(errno, EAGAIN);
	assert_int_equal(rd(f, SERIAL_RBR), 1);
	/* One byte read: room signalled once. */
	assert_int_equal(read(serial_rx_room_fd(f->s), &v, sizeof(v)), sizeof(v));
	assert_int_equal(serial_input(f->s, in + 64, 1), 1);
	for (unsigned i = 2; i <= 65; i++) {
		assert_true(rd(f, SERIAL_LSR) & SERIAL_LSR_DR);
		assert_int_equal(rd(f, SERIAL_RBR), i);
	}
	assert_int_equal(rd(f, SERIAL_LSR) & SERIAL_LSR_DR, 0);
	/* An empty FIFO keeps returning the last byte. */
	assert_int_equal(rd(f, SERIAL_RBR), 65);
	/* FCR bit 1 clears the receive FIFO. */
	assert_int_equal(serial_input(f->s, in, 10), 10);
	wr(f, SERIAL_FCR, SERIAL_FCR_ENABLE | SERIAL_FCR_CLEAR_RX);
	assert_int_equal(serial_rx_pending(f->s), 0);
	assert_int_equal(rd(f, SERIAL_LSR) & SERIAL_LSR_DR, 0);
	/* Disabling the FIFOs clears them too, and IIR[7:6] drop. */
	assert_int_equal(serial_input(f->s, in, 3), 3);
	wr(f, SERIAL_FCR, 0);
	assert_int_equal(serial_rx_pending(f->s), 0);
	assert_int_equal(rd(f, SERIAL_IIR), SERIAL_IIR_NO_INT);
}

static void test_rx_interrupt(void **state)
{
	struct fixture *f = *state;
	const uint8_t ab[] = { 'a', 'b' };

	wr(f, SERIAL_FCR, SERIAL_FCR_ENABLE);
	wr(f, SERIAL_IER, SERIAL_IER_ERBFI);
	assert_int_equal(f->irq.count, 0);
	assert_int_equal(serial_input(f->s, ab, 1), 1);
	assert_int_equal(f->irq.count, 1);
	assert_int_equal(rd(f, SERIAL_IIR), SERIAL_IIR_FIFO | SERIAL_IIR_RDI);
	/* Already pending: no new edge. */
	assert_int_equal(serial_input(f->s, ab + 1, 1), 1);
	assert_int_equal(f->irq.count, 1);
	assert_int_equal(rd(f, SERIAL_RBR), 'a');
	assert_int_equal(rd(f, SERIAL_IIR), SERIAL_IIR_FIFO | SERIAL_IIR_RDI);
	assert_int_equal(rd(f, SERIAL_RBR), 'b');
	assert_int_equal(rd(f, SERIAL_IIR), SERIAL_IIR_FIFO | SERIAL_IIR_NO_INT);
	/* Data after the FIFO drained: a new edge. */
	assert_int_equal(serial_input(f->s, ab, 1), 1);
	assert_int_equal(f->irq.count, 2);
	/* Data waiting when ERBFI gets enabled raises at once. */
	wr(f, SERIAL_IER, 0);
	wr(f, SERIAL_IER, SERIAL_IER_ERBFI);
	assert_int_equal(f->irq.count, 3);
}

static void test_thre_interrupt(void **state)
{
	struct fixture *f = *state;
	char buf[8];

	/* Linux's THRE test at startup: enabling THRI with an empty THR must show THRI in IIR,
	 * and again after disabling and re-enabling it. */
	wr(f, SERIAL_IER, SERIAL_IER_ETBEI);
	assert_int_equal(f->irq.count, 1);
	assert_int_equal(rd(f, SERIAL_IIR), SERIAL_IIR_THRI);
	/* Reading IIR cleared it. */
	assert_int_equal(rd(f, SERIAL_IIR), SERIAL_IIR_NO_INT);
	wr(f, SERIAL_IER, 0);
	wr(f, SERIAL_IER, SERIAL_IER_ETBEI);
	assert_int_equal(f->irq.count, 2);
	assert_int_equal(rd(f, SERIAL_IIR), SERIAL_IIR_THRI);
	/* A THR write (transmitted at once) makes the THR empty again: a new interrupt. */
	wr(f, SERIAL_THR, 'x');
	assert_int_equal(f->irq.count, 3);
	/* Pending, not yet acknowledged: further writes add no edge. */
	wr(f, SERIAL_THR, 'y');
	assert_int_equal(f->irq.count, 3);
	assert_int_equal(rd(f, SERIAL_IIR), SERIAL_IIR_THRI);
	assert_int_equal(rd(f, SERIAL_IIR), SERIAL_IIR_NO_INT);
	/* Writing IER with ETBEI already set is not a new enable. */
	wr(f, SERIAL_IER, SERIAL_IER_ETBEI);
	assert_int_equal(rd(f, SERIAL_IIR), SERIAL_IIR_NO_INT);
	assert_int_equal(f->irq.count, 3);
	/* Disabling ETBEI hides a pending THRE. */
	wr(f, SERIAL_THR, 'z');
	assert_int_equal(f->irq.count, 4);
	wr(f, SERIAL_IER, 0);
	assert_int_equal(rd(f, SERIAL_IIR), SERIAL_IIR_NO_INT);
	assert_int_equal(read(f->out[0], buf, sizeof(buf)), 3);
	assert_memory_equal(buf, "xyz", 3);
}

static void test_iir_priority(void **state)
{
	struct fixture *f = *state;
	char buf[8];

	wr(f, SERIAL_FCR, SERIAL_FCR_ENABLE);
	/* Loopback with all modem outputs off: DCD/DSR/CTS fall -> modem status deltas. */
	wr(f, SERIAL_MCR, SERIAL_MCR_LOOP);
	assert_int_equal(f->irq.count, 0);
	/* 65 bytes into a 64-byte FIFO: overrun. */
	for (int i = 0; i < SERIAL_RX_FIFO + 1; i++)
		wr(f, SERIAL_THR, (uint8_t)i);
	assert_int_equal(read(f->out[0], buf, sizeof(buf)), -1); /* nothing left the UART */
	wr(f, SERIAL_IER, 0x0f);
	assert_int_equal(f->irq.count, 1);
	/* line status > RX data > THR empty > modem status */
	assert_int_equal(rd(f, SERIAL_IIR) & SERIAL_IIR_ID, SERIAL_IIR_RLSI);
	assert_int_equal(rd(f, SERIAL_IIR) & SERIAL_IIR_ID, SERIAL_IIR_RLSI); /* LSR clears it */
	assert_int_equal(rd(f, SERIAL_LSR),
			 SERIAL_LSR_DR | SERIAL_LSR_OE | SERIAL_LSR_THRE | SERIAL_LSR_TEMT);
	assert_int_equal(rd(f, SERIAL_LSR) & SERIAL_LSR_OE, 0);
	assert_int_equal(rd(f, SERIAL_IIR) & SERIAL_IIR_ID, SERIAL_IIR_RDI);
	for (int i = 0; i < SERIAL_RX_FIFO; i++)
		assert_int_equal(rd(f, SERIAL_RBR), i);
	assert_int_equal(rd(f, SERIAL_IIR) & SERIAL_IIR_ID, SERIAL_IIR_THRI);
	assert_int_equal(rd(f, SERIAL_IIR) & SERIAL_IIR_ID, SERIAL_IIR_MSI);
	assert_int_equal(rd(f, SERIAL_MSR), SERIAL_MSR_DCTS | SERIAL_MSR_DDSR | SERIAL_MSR_DDCD);
	assert_int_equal(rd(f, SERIAL_IIR), SERIAL_IIR_FIFO | SERIAL_IIR_NO_INT);
	/* Still one edge: the line never went idle. */
	assert_int_equal(f->irq.count, 1);
}

static void test_loopback(void **state)
{
	struct fixture *f = *state;
	const uint8_t in = 'q';
	char buf[4];

	/* Linux autoconfig: MCR = LOOP|OUT2|RTS must read back MSR[7:4] = DCD|CTS. */
	wr(f, SERIAL_MCR, SERIAL_MCR_LOOP | SERIAL_MCR_OUT2 | SERIAL_MCR_RTS);
	assert_int_equal(rd(f, SERIAL_MSR) & 0xf0, SERIAL_MSR_DCD | SERIAL_MSR_CTS);
	wr(f, SERIAL_MCR, SERIAL_MCR_LOOP | 0x0f);
	assert_int_equal(rd(f, SERIAL_MSR), SERIAL_MSR_DCD | SERIAL_MSR_RI | SERIAL_MSR_DSR |
						    SERIAL_MSR_CTS | SERIAL_MSR_DDSR);
	/* RI falling sets TERI. */
	wr(f, SERIAL_MCR, SERIAL_MCR_LOOP | SERIAL_MCR_OUT2 | SERIAL_MCR_RTS | SERIAL_MCR_DTR);
	assert_int_equal(rd(f, SERIAL_MSR) & 0x0f, SERIAL_MSR_TERI);
	assert_int_equal(rd(f, SERIAL_MCR), 0x1b);
	/* Transmitted bytes come back in RBR and not out of the fd. */
	wr(f, SERIAL_THR, 0x5a);
	assert_true(rd(f, SERIAL_LSR) & SERIAL_LSR_DR);
	assert_int_equal(rd(f, SERIAL_RBR), 0x5a);
	assert_int_equal(read(f->out[0], buf, sizeof(buf)), -1);
	/* The receiver is disconnected from the outside in loopback. */
	assert_int_equal(serial_input(f->s, &in, 1), 0);
	/* Leaving loopback: lines back to DCD/DSR/CTS, RX room signalled for the held input. */
	wr(f, SERIAL_MCR, SERIAL_MCR_OUT2 | SERIAL_MCR_RTS | SERIAL_MCR_DTR);
	assert_int_equal(rd(f, SERIAL_MSR) & 0xf0,
			 SERIAL_MSR_DCD | SERIAL_MSR_DSR | SERIAL_MSR_CTS);
	{
		uint64_t v;

		assert_int_equal(read(serial_rx_room_fd(f->s), &v, sizeof(v)), sizeof(v));
	}
	assert_int_equal(serial_input(f->s, &in, 1), 1);
	assert_int_equal(rd(f, SERIAL_RBR), 'q');
	wr(f, SERIAL_THR, 'o');
	assert_int_equal(read(f->out[0], buf, sizeof(buf)), 1);
	assert_int_equal(buf[0], 'o');
}

/* The register dance of Linux's autoconfig() + autoconfig_16550a() must end at "16550A". */
static void test_linux_probe(void **state)
{
	struct fixture *f = *state;
	uint8_t save_mcr, iir;

	wr(f, SERIAL_IER, 0);
	assert_int_equal(rd(f, SERIAL_IER) & 0x0f, 0);
	wr(f, SERIAL_IER, 0x0f);
	assert_int_equal(rd(f, SERIAL_IER) & 0x0f, 0x0f);
	wr(f, SERIAL_IER, 0);
	save_mcr = rd(f, SERIAL_MCR);
	wr(f, SERIAL_MCR, SERIAL_MCR_LOOP | 0x0a);
	assert_int_equal(rd(f, SERIAL_MSR) & 0xf0, 0x90);
	wr(f, SERIAL_MCR, save_mcr);
	wr(f, SERIAL_LCR, 0xbf); /* EFR probe: must read non-zero (no EFR) */
	assert_int_not_equal(rd(f, 2), 0);
	wr(f, SERIAL_LCR, 0);
	wr(f, SERIAL_FCR, SERIAL_FCR_ENABLE);
	iir = rd(f, SERIAL_IIR);
	assert_int_equal(iir >> 6, 3); /* 16550A */
	/* 16750 probe: IIR bit 5 (64-byte FIFO) must stay 0 whatever FCR bit 5 says. */
	wr(f, SERIAL_FCR, SERIAL_FCR_ENABLE | 0x20);
	assert_int_equal(rd(f, SERIAL_IIR) & 0xe0, 0xc0);
	wr(f, SERIAL_LCR, 0x80);
	wr(f, SERIAL_FCR, SERIAL_FCR_ENABLE | 0x20);
	assert_int_equal(rd(f, SERIAL_IIR) & 0xe0, 0xc0);
	wr(f, SERIAL_LCR, 0);
	/* Only the IER 0x0f probe raised THR empty (OUT2 does not gate the line, as in QEMU;
	 * the guest's IOAPIC pin is masked until the driver requests the IRQ anyway). */
	assert_int_equal(f->irq.count, 1);
}

static void test_tx_congested(void **state)
{
	struct fixture *f = *state;
	struct timespec t0, t1;
	char junk[4096];
	double ms;

	/* Fill the pipe so the UART's next byte cannot be written. */
	memset(junk, 'j', sizeof(junk));
	assert_int_equal(fcntl(f->out[1], F_SETFL, O_NONBLOCK), 0);
	while (write(f->out[1], junk, sizeof(junk)) > 0)
		;
	while (write(f->out[1], junk, 1) > 0)
		;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	wr(f, SERIAL_THR, 'a'); /* waits at most ~100 ms, then drops */
	for (int i = 0; i < 1000; i++)
		wr(f, SERIAL_THR, 'b'); /* congested: dropped at once */
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	assert_true(ms < 1000);
	assert_int_equal(serial_tx_dropped(f->s), 1001);
	/* Once the reader drains, output flows again. */
	while (read(f->out[0], junk, sizeof(junk)) > 0)
		;
	wr(f, SERIAL_THR, 'c');
	assert_int_equal(read(f->out[0], junk, sizeof(junk)), 1);
	assert_int_equal(junk[0], 'c');
	assert_int_equal(serial_tx_dropped(f->s), 1001);
}

static void test_tx_broken(void **state)
{
	struct fixture *f = *state;
	void (*old)(int) = signal(SIGPIPE, SIG_IGN);

	close(f->out[0]);
	f->out[0] = -1;
	wr(f, SERIAL_THR, 'a'); /* EPIPE: dropped, VMM alive */
	wr(f, SERIAL_THR, 'b');
	assert_int_equal(serial_tx_dropped(f->s), 2);
	signal(SIGPIPE, old);
}

static void test_reset_op(void **state)
{
	struct fixture *f = *state;
	const uint8_t x = 'x';

	wr(f, SERIAL_IER, 0x0f);
	wr(f, SERIAL_LCR, 0x1b);
	wr(f, SERIAL_MCR, 0x0b);
	wr(f, SERIAL_FCR, SERIAL_FCR_ENABLE);
	assert_int_equal(serial_input(f->s, &x, 1), 1);
	serial_ops.reset(f->s);
	assert_int_equal(rd(f, SERIAL_IER), 0);
	assert_int_equal(rd(f, SERIAL_LCR), 0);
	assert_int_equal(rd(f, SERIAL_MCR), 0);
	assert_int_equal(rd(f, SERIAL_IIR), SERIAL_IIR_NO_INT);
	assert_int_equal(rd(f, SERIAL_LSR), SERIAL_LSR_THRE | SERIAL_LSR_TEMT);
	assert_int_equal(serial_rx_pending(f->s), 0);
}

struct feeder {
	struct serial *s;
	int n;
};

static void *feed_thread(void *arg)
{
	struct feeder *fd = arg;
	int sent = 0;

	while (sent < fd->n) {
		uint8_t b = (uint8_t)sent;

		sent += (int)serial_input(fd->s, &b, 1);
	}
	return NULL;
}

/* The event loop feeds while a vCPU reads: every byte arrives once, in order. */
static void test_concurrent_rx(void **state)
{
	struct fixture *f = *state;
	struct feeder fd = { .s = f->s, .n = 4000 };
	pthread_t t;
	int got = 0;

	wr(f, SERIAL_FCR, SERIAL_FCR_ENABLE);
	wr(f, SERIAL_IER, SERIAL_IER_ERBFI);
	assert_int_equal(pthread_create(&t, NULL, feed_thread, &fd), 0);
	while (got < fd.n) {
		if (rd(f, SERIAL_LSR) & SERIAL_LSR_DR) {
			assert_int_equal(rd(f, SERIAL_RBR), (uint8_t)got);
			got++;
		}
	}
	pthread_join(t, NULL);
	assert_true(f->irq.count >= 1);
}

static void test_devmgr_add(void **state)
{
	struct devmgr dm;
	struct serial *s;
	struct dm_dev *slot;
	int out[2];
	uint8_t b;
	char c;

	assert_int_equal(pipe2(out, O_CLOEXEC | O_NONBLOCK), 0);
	devmgr_init(&dm, NULL, NULL, NULL);
	assert_int_equal(serial_add(&dm, "com1", 0x3f8, 4, out[1], &s), 0);
	slot = devmgr_find(&dm, "com1");
	assert_non_null(slot);
	assert_true(slot->has_irq);
	assert_int_equal(slot->irq.gsi, 4);
	/* Same id or GSI again: refused, nothing leaks. */
	assert_int_equal(serial_add(&dm, "com1", 0x2f8, 3, out[1], NULL), -EINVAL);
	assert_int_equal(serial_add(&dm, "com2", 0x2f8, 4, out[1], NULL), -EBUSY);
	assert_int_equal(serial_add(&dm, "com2", 0x3f9, 3, out[1], NULL), -EEXIST);
	assert_null(devmgr_find(&dm, "com2"));
	/* Through the bus at absolute ports. */
	b = 'K';
	assert_true(bus_write(&dm.pio, 0x3f8, &b, 1));
	assert_int_equal(read(out[0], &c, 1), 1);
	assert_int_equal(c, 'K');
	b = SERIAL_IER_ETBEI;
	assert_true(bus_write(&dm.pio, 0x3f9, &b, 1));
	assert_int_equal(slot->irq.count, 1);
	assert_true(bus_read(&dm.pio, 0x3fa, &b, 1));
	assert_int_equal(b, SERIAL_IIR_THRI);
	assert_true(bus_read(&dm.pio, 0x3fd, &b, 1));
	assert_int_equal(b, SERIAL_LSR_THRE | SERIAL_LSR_TEMT);
	devmgr_destroy(&dm);
	close(out[0]);
	close(out[1]);
}

/* ---- snapshots ---- */

static const char typed[] = "hello, snapshot";

/* A UART in a state that touches every saved field: a divisor, 7e1 framing, FIFOs on with a
 * trigger level, ERBFI|ETBEI with RX data and THR empty both pending, modem outputs on with
 * latched modem-status deltas, a scratch value, and FIFO contents that wrap around the ring. */
static void busy_uart(struct fixture *f)
{
	uint8_t junk[60];

	wr(f, SERIAL_LCR, SERIAL_LCR_DLAB | 0x1a);
	wr(f, SERIAL_DLL, 0x01);
	wr(f, SERIAL_DLM, 0x02);
	wr(f, SERIAL_LCR, 0x1a);
	wr(f, SERIAL_FCR, SERIAL_FCR_ENABLE | 0x80);
	wr(f, SERIAL_SCR, 0x5a);
	wr(f, SERIAL_MCR, SERIAL_MCR_LOOP); /* DCD/DSR/CTS fall ... */
	wr(f, SERIAL_MCR, SERIAL_MCR_DTR | SERIAL_MCR_RTS | SERIAL_MCR_OUT2); /* ... and rise */
	memset(junk, 'j', sizeof(junk));
	assert_int_equal(serial_input(f->s, junk, sizeof(junk)), sizeof(junk));
	for (size_t i = 0; i < sizeof(junk); i++)
		rd(f, SERIAL_RBR);
	assert_int_equal(serial_input(f->s, (const uint8_t *)typed, strlen(typed)), strlen(typed));
	wr(f, SERIAL_IER, SERIAL_IER_ERBFI | SERIAL_IER_ETBEI);
}

static void new_fixture(struct fixture *f)
{
	memset(f, 0, sizeof(*f));
	f->irq.fd = -1;
	assert_int_equal(pipe2(f->out, O_CLOEXEC | O_NONBLOCK), 0);
	assert_int_equal(serial_create(&f->irq, f->out[1], &f->s), 0);
}

static void free_fixture(struct fixture *f)
{
	serial_destroy(f->s);
	close(f->out[0]);
	close(f->out[1]);
}

static void test_snapshot_round_trip(void **state)
{
	struct fixture *src = *state, dst;
	struct snap_edit e, again;
	uint64_t edges;
	char buf[8];

	busy_uart(src);
	edges = src->irq.count;
	assert_true(edges >= 1);
	snap_edit_save(&e, &serial_ops, src->s, SNAP_REC_SERIAL, "serial0");
	assert_int_equal(e.version, 1);
	/* Saving reads no register: the source is untouched and saves the same again. */
	snap_edit_save(&again, &serial_ops, src->s, SNAP_REC_SERIAL, "serial0");
	snap_edit_assert_same(&e, &again);

	new_fixture(&dst);
	assert_int_equal(snap_edit_restore(&e, &serial_ops, dst.s), 0);
	/* The pending interrupt is driven again: one edge on the new line. */
	assert_int_equal(dst.irq.count, 1);
	assert_int_equal(serial_rx_pending(dst.s), strlen(typed));
	/* The restored UART saves to the same bytes. */
	snap_edit_save(&again, &serial_ops, dst.s, SNAP_REC_SERIAL, "serial0");
	snap_edit_assert_same(&e, &again);

	/* Register by register, both UARTs answer alike, reads with side effects included (the
	 * second MSR read finds the deltas cleared). */
	{
		static const struct {
			unsigned off;
			uint8_t want;
		} regs[] = {
			{ SERIAL_LCR, 0x1a },
			{ SERIAL_MCR, 0x0b },
			{ SERIAL_SCR, 0x5a },
			{ SERIAL_IER, SERIAL_IER_ERBFI | SERIAL_IER_ETBEI },
			{ SERIAL_MSR, SERIAL_MSR_DCD | SERIAL_MSR_DSR | SERIAL_MSR_CTS |
					      SERIAL_MSR_DCTS | SERIAL_MSR_DDSR | SERIAL_MSR_DDCD },
			{ SERIAL_MSR, SERIAL_MSR_DCD | SERIAL_MSR_DSR | SERIAL_MSR_CTS },
			{ SERIAL_LSR, SERIAL_LSR_DR | SERIAL_LSR_THRE | SERIAL_LSR_TEMT },
		};

		for (size_t i = 0; i < sizeof(regs) / sizeof(regs[0]); i++) {
			assert_int_equal(rd(&dst, regs[i].off), regs[i].want);
			assert_int_equal(rd(src, regs[i].off), regs[i].want);
		}
	}
	/* The FIFO yields the typed bytes in order, RX data above THR empty in IIR. */
	for (size_t i = 0; i < strlen(typed); i++) {
		assert_int_equal(rd(&dst, SERIAL_IIR), SERIAL_IIR_FIFO | SERIAL_IIR_RDI);
		assert_int_equal(rd(src, SERIAL_IIR), SERIAL_IIR_FIFO | SERIAL_IIR_RDI);
		assert_int_equal(rd(&dst, SERIAL_RBR), (uint8_t)typed[i]);
		assert_int_equal(rd(src, SERIAL_RBR), (uint8_t)typed[i]);
	}
	assert_int_equal(rd(&dst, SERIAL_LSR) & SERIAL_LSR_DR, 0);
	assert_int_equal(rd(&dst, SERIAL_RBR), 't'); /* an empty FIFO keeps the last byte */
	/* THR empty was pending too: reported once, then cleared by the IIR read. */
	assert_int_equal(rd(&dst, SERIAL_IIR), SERIAL_IIR_FIFO | SERIAL_IIR_THRI);
	assert_int_equal(rd(&dst, SERIAL_IIR), SERIAL_IIR_FIFO | SERIAL_IIR_NO_INT);
	assert_int_equal(rd(src, SERIAL_IIR), SERIAL_IIR_FIFO | SERIAL_IIR_THRI);
	assert_int_equal(rd(src, SERIAL_IIR), SERIAL_IIR_FIFO | SERIAL_IIR_NO_INT);
	/* The divisor came along. */
	wr(&dst, SERIAL_LCR, SERIAL_LCR_DLAB | 0x1a);
	assert_int_equal(rd(&dst, SERIAL_DLL), 0x01);
	assert_int_equal(rd(&dst, SERIAL_DLM), 0x02);
	wr(&dst, SERIAL_LCR, 0x1a);
	/* The console goes on: typing raises a new edge, a THR write goes out (to the new fd,
	 * not the old one) and raises THR empty. */
	assert_int_equal(serial_input(dst.s, (const uint8_t *)"k", 1), 1);
	assert_int_equal(dst.irq.count, 2);
	assert_int_equal(rd(&dst, SERIAL_RBR), 'k');
	wr(&dst, SERIAL_THR, '!');
	assert_int_equal(dst.irq.count, 3);
	assert_int_equal(read(dst.out[0], buf, sizeof(buf)), 1);
	assert_int_equal(buf[0], '!');
	assert_int_equal(read(src->out[0], buf, sizeof(buf)), -1);
	assert_int_equal(src->irq.count, edges);
	free_fixture(&dst);
}

static void test_snapshot_idle(void **state)
{
	struct fixture *src = *state, dst;
	struct snap_edit e;

	/* A UART with nothing pending raises nothing on restore; the reset values load back. */
	wr(src, SERIAL_IER, SERIAL_IER_ERBFI);
	snap_edit_save(&e, &serial_ops, src->s, SNAP_REC_SERIAL, "serial0");
	assert_int_equal(e.len, 12); /* 11 one-byte fields and an empty FIFO */
	new_fixture(&dst);
	wr(&dst, SERIAL_SCR, 0x77);
	assert_int_equal(snap_edit_restore(&e, &serial_ops, dst.s), 0);
	assert_int_equal(dst.irq.count, 0);
	assert_int_equal(rd(&dst, SERIAL_SCR), 0);
	assert_int_equal(rd(&dst, SERIAL_IER), SERIAL_IER_ERBFI);
	assert_int_equal(rd(&dst, SERIAL_IIR), SERIAL_IIR_NO_INT);
	assert_int_equal(serial_input(dst.s, (const uint8_t *)"a", 1), 1);
	assert_int_equal(dst.irq.count, 1);
	free_fixture(&dst);
}

/* Restoring `bad` into a UART that already holds another state must fail with -EINVAL and
 * change nothing: same save afterwards, no interrupt. */
static void refused(struct fixture *dst, const struct snap_edit *bad)
{
	struct snap_edit before, after;
	uint64_t edges = dst->irq.count;

	snap_edit_save(&before, &serial_ops, dst->s, SNAP_REC_SERIAL, "serial0");
	assert_int_equal(snap_edit_restore(bad, &serial_ops, dst->s), -EINVAL);
	snap_edit_save(&after, &serial_ops, dst->s, SNAP_REC_SERIAL, "serial0");
	snap_edit_assert_same(&before, &after);
	assert_int_equal(dst->irq.count, edges);
}

/* Payload offsets of the version 1 layout. */
enum { P_IER, P_LCR, P_MCR, P_LSR, P_MSR, P_SCR, P_FCR, P_DLL, P_DLM, P_THRE, P_RBR, P_COUNT };

static void test_snapshot_refused(void **state)
{
	struct fixture *src = *state, dst;
	struct snap_edit good, e;
	static const struct {
		unsigned off;
		uint8_t val;
	} bad_fields[] = {
		{ P_IER, 0x10 },			    /* IER bits 7:4 are always 0 */
		{ P_MCR, 0x2b },			    /* MCR bits 7:5 too */
		{ P_LSR, SERIAL_LSR_DR | SERIAL_LSR_TEMT }, /* THR always empty */
		{ P_LSR, SERIAL_LSR_DR | SERIAL_LSR_THRE },
		{ P_LSR, 0x61 | 0x04 }, /* a parity error: not modelled */
		{ P_LSR, 0x61 | SERIAL_LSR_BI },
		{ P_LSR, 0x61 | 0x80 },
		{ P_LSR, 0x60 },			    /* DR clear with bytes in the FIFO */
		{ P_MSR, SERIAL_MSR_DCD | SERIAL_MSR_CTS }, /* inputs that MCR does not give */
		{ P_MSR, 0xf0 },
		{ P_FCR, SERIAL_FCR_ENABLE | SERIAL_FCR_CLEAR_RX }, /* self-clearing bits */
		{ P_FCR, SERIAL_FCR_ENABLE | SERIAL_FCR_CLEAR_TX },
		{ P_THRE, 2 },				 /* not a bool */
		{ P_COUNT, (uint8_t)sizeof(typed) },	 /* one byte more than there is */
		{ P_COUNT, (uint8_t)sizeof(typed) - 2 }, /* one byte less: a byte left over */
		{ P_COUNT, 0 },				 /* FIFO empty but LSR.DR set */
	};

	busy_uart(src);
	snap_edit_save(&good, &serial_ops, src->s, SNAP_REC_SERIAL, "serial0");
	new_fixture(&dst);
	/* The target already has its own state, which must survive every refusal. */
	wr(&dst, SERIAL_SCR, 0x33);
	wr(&dst, SERIAL_IER, SERIAL_IER_ETBEI);
	assert_int_equal(serial_input(dst.s, (const uint8_t *)"zz", 2), 2);

	for (size_t i = 0; i < sizeof(bad_fields) / sizeof(bad_fields[0]); i++) {
		e = good;
		e.payload[bad_fields[i].off] = bad_fields[i].val;
		refused(&dst, &e);
	}
	/* A FIFO deeper than the UART's, with every byte present. */
	e = good;
	e.payload[P_COUNT] = SERIAL_RX_FIFO + 1;
	memset(e.payload + P_COUNT + 1, 'x', SERIAL_RX_FIFO + 1);
	e.len = P_COUNT + 1 + SERIAL_RX_FIFO + 1;
	refused(&dst, &e);
	/* Every truncation, and a trailing byte. */
	for (size_t len = 0; len < good.len; len++) {
		e = good;
		e.len = len;
		refused(&dst, &e);
	}
	e = good;
	e.payload[e.len++] = 0;
	refused(&dst, &e);
	/* Other versions; a record of another type under the id. */
	e = good;
	e.version = 2;
	refused(&dst, &e);
	e.version = 0;
	refused(&dst, &e);
	e = good;
	e.type = SNAP_REC_RTC;
	refused(&dst, &e);
	/* The good record still loads. */
	assert_int_equal(snap_edit_restore(&good, &serial_ops, dst.s), 0);
	assert_int_equal(rd(&dst, SERIAL_SCR), 0x5a);
	free_fixture(&dst);
}

/* Through the device manager, as a snapshot of the VM saves it: the slot's id keys the record. */
static void test_snapshot_devmgr(void **state)
{
	struct devmgr a, b;
	struct serial *sa, *sb;
	struct snap_writer w;
	struct snap_file f;
	struct snap_reader r;
	char why[256];
	int out[2];

	assert_int_equal(pipe2(out, O_CLOEXEC | O_NONBLOCK), 0);
	devmgr_init(&a, NULL, NULL, NULL);
	devmgr_init(&b, NULL, NULL, NULL);
	assert_int_equal(serial_add(&a, "serial0", 0x3f8, 4, out[1], &sa), 0);
	assert_int_equal(serial_add(&b, "serial0", 0x3f8, 4, out[1], &sb), 0);
	serial_write(sa, SERIAL_SCR, 0xa5);
	assert_int_equal(serial_input(sa, (const uint8_t *)"ok", 2), 2);
	snap_writer_init(&w);
	assert_int_equal(devmgr_save(&a, &w), 0);
	assert_int_equal(snap_writer_finish(&w), 0);
	assert_int_equal(snap_file_parse(&f, w.buf, w.len, why, sizeof(why)), 0);
	assert_int_equal(snap_file_find(&f, SNAP_REC_SERIAL, "serial0", &r), 0);
	assert_int_equal(devmgr_restore(&b, &f, why, sizeof(why)), 0);
	assert_int_equal(serial_read(sb, SERIAL_SCR), 0xa5);
	assert_int_equal(serial_read(sb, SERIAL_RBR), 'o');
	assert_int_equal(serial_read(sb, SERIAL_RBR), 'k');
	snap_writer_free(&w);
	devmgr_destroy(&a);
	devmgr_destroy(&b);
	close(out[0]);
	close(out[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_reset_values, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scratch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_divisor_latch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ier_bits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tx_output, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fifo_fill_overflow, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rx_interrupt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_thre_interrupt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_iir_priority, setup, teardown),
		cmocka_unit_test_setup_teardown(test_loopback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_linux_probe, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tx_congested, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tx_broken, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reset_op, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_rx, setup, teardown),
		cmocka_unit_test(test_devmgr_add),
		cmocka_unit_test_setup_teardown(test_snapshot_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_idle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_refused, setup, teardown),
		cmocka_unit_test(test_snapshot_devmgr),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
