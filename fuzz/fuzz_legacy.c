/* The legacy devices a guest reaches by port I/O, and the boot-timer's MMIO slot, behind real
 * buses as the vCPU exit path drives them: the 16550 UART (COM1), the CMOS RTC, the ACPI
 * sleep/reset registers, the i8042 keyboard controller, the boot timer; plus the host-controlled bytes that
 * reach the UART: serial_input() and the console's Ctrl-A escape machine (console_input()).
 * Input: operations, the first byte of each (modulo 8):
 *   0/1 port read/write:  u8 device, u8 offset, u8 size (1 << (v & 3)) [, u32 value] — the
 *                         port is the device's base + offset % (ports + 2) - 1, so accesses
 *                         next to each window hit nothing
 *   2   boot timer:       u16 offset, u8 size, u8 write, u64 value
 *   3   serial_input:     u8 len, bytes
 *   4   console_input:    u8 len, bytes
 *   5   RTC clock:        u64 >> 2: host ns since the epoch
 *   6   reset every device (a guest reboot)
 *   7   read the devices' counters, and press Ctrl+Alt+Del on the i8042's keyboard */
#include "arch/x86/layout.h"
#include "core/bus.h"
#include "core/console.h"
#include "core/irq.h"
#include "core/power.h"
#include "devices/boot_timer.h"
#include "devices/i8042.h"
#include "devices/power.h"
#include "devices/rtc.h"
#include "devices/serial.h"
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#define MAX_OPS 256u

static int null_fd = -1;
static int64_t clock_ns;
static unsigned stop_requests;

static int64_t fake_clock(void *opaque)
{
	return clock_ns;
}

static void stop(void *ctx, enum vm_stop_reason reason)
{
	FUZZ_CHECK(reason == VM_STOP_POWEROFF || reason == VM_STOP_REBOOT ||
		   reason == VM_STOP_QUIT);
	stop_requests++;
}

struct devs {
	struct bus pio, mmio;
	struct irq_line irq, kbd_irq;
	struct serial *uart;
	struct rtc *rtc;
	struct power *pm;
	struct i8042 *kbd;
	struct boot_timer *bt;
	struct console *con;
};

static const struct {
	uint16_t base, ports;
} windows[] = {
	{ LAYOUT_PORT_COM1, SERIAL_NR_PORTS },
	{ LAYOUT_PORT_RTC, RTC_NR_PORTS },
	{ LAYOUT_PORT_ACPI_PM, 3 },
	{ I8042_DATA_PORT, 1 },
	{ I8042_CMD_PORT, 1 },
};

static void must(int ret, const char *what)
{
	if (ret)
		fuzz_fail("%s: %s", what, strerror(-ret));
}

/* The console's port into the UART, as machine_console_port() wires it. */
static size_t uart_input(void *opaque, const uint8_t *buf, size_t len)
{
	return serial_input(opaque, buf, len);
}

static void create(struct devs *d)
{
	static const struct power_sink sink = { .request = stop };
	struct console_port port;

	memset(d, 0, sizeof(*d));
	d->irq.fd = -1;
	d->kbd_irq.fd = -1;
	bus_init(&d->pio, "pio");
	bus_init(&d->mmio, "mmio");
	must(serial_create(&d->irq, null_fd, &d->uart), "serial_create");
	must(rtc_create(&d->rtc), "rtc_create");
	rtc_set_clock(d->rtc, fake_clock, NULL);
	must(power_create(&sink, &d->pm), "power_create");
	must(i8042_create(&d->kbd_irq, &sink, &d->kbd), "i8042_create");
	must(boot_timer_create(null_fd, &d->bt), "boot_timer_create");
	port = (struct console_port){ .input = uart_input,
				      .room_fd = serial_rx_room_fd(d->uart),
				      .opaque = d->uart };
	must(console_create(NULL, -1, &port, &sink, &d->con), "console_create");
	must(bus_register(&d->pio, windows[0].base, windows[0].ports, &serial_ops, d->uart),
	     "bus_register");
	must(bus_register(&d->pio, windows[1].base, windows[1].ports, &rtc_ops, d->rtc),
	     "bus_register");
	must(bus_register(&d->pio, windows[2].base, windows[2].ports, &power_acpi_ops, d->pm),
	     "bus_register");
	must(bus_register(&d->pio, windows[3].base, 1, &i8042_data_ops, d->kbd), "bus_register");
	must(bus_register(&d->pio, windows[4].base, 1, &i8042_cmd_ops, d->kbd), "bus_register");
	must(bus_register(&d->mmio, LAYOUT_MMIO_START, BOOT_TIMER_SIZE, &boot_timer_ops, d->bt),
	     "bus_register");
}

static void destroy(struct devs *d)
{
	console_destroy(d->con);
	serial_destroy(d->uart);
	rtc_destroy(d->rtc);
	power_destroy(d->pm);
	i8042_destroy(d->kbd);
	boot_timer_destroy(d->bt);
}

static void reset_bus(struct bus *b)
{
	for (int i = 0; i < b->nr; i++)
		if (b->ranges[i].ops->reset)
			b->ranges[i].ops->reset(b->ranges[i].dev);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	static struct devs d;
	uint8_t buf[8];

	clock_ns = 1700000000ll * 1000000000ll;
	create(&d);
	for (unsigned op = 0; op < MAX_OPS && in.n; op++) {
		uint8_t what = fuzz_u8(&in) % 8;

		switch (what) {
		case 0:
		case 1: {
			unsigned w = fuzz_u8(&in) % (sizeof(windows) / sizeof(windows[0]));
			uint16_t port = (uint16_t)(windows[w].base +
						   fuzz_u8(&in) % (windows[w].ports + 2u) - 1u);
			unsigned len = 1u << (fuzz_u8(&in) & 3);

			if (what == 0) {
				bus_read(&d.pio, port, buf, len);
			} else {
				virtio_put_le(buf, fuzz_u32(&in), 4);
				bus_write(&d.pio, port, buf, len);
			}
			break;
		}
		case 2: {
			uint16_t off = fuzz_u16(&in) % BOOT_TIMER_SIZE;
			unsigned len = 1u << (fuzz_u8(&in) & 3);
			bool write = fuzz_u8(&in) & 1;

			virtio_put_le(buf, fuzz_u64(&in), 8);
			if (write)
				bus_write(&d.mmio, LAYOUT_MMIO_START + off, buf, len);
			else
				bus_read(&d.mmio, LAYOUT_MMIO_START + off, buf, len);
			break;
		}
		case 3:
		case 4: {
			const uint8_t *p;
			size_t n = fuzz_bytes(&in, fuzz_u8(&in), &p);

			if (what == 3)
				FUZZ_CHECK(serial_input(d.uart, p, n) <= n);
			else
				console_input(d.con, p, n);
			FUZZ_CHECK(serial_rx_pending(d.uart) <= SERIAL_RX_FIFO);
			FUZZ_CHECK(console_pending(d.con) <= CONSOLE_PENDING);
			break;
		}
		case 5:
			/* The host's CLOCK_REALTIME: anything from 1970 to 2116 (not the guest's
			 * to choose; the device takes differences of two readings). */
			clock_ns = (int64_t)(fuzz_u64(&in) >> 2);
			break;
		case 6:
			reset_bus(&d.pio);
			reset_bus(&d.mmio);
			break;
		default: {
			int r = i8042_send_ctrl_alt_del(d.kbd);

			FUZZ_CHECK(r == 0 || r == -ENOSPC || r == -EAGAIN);
			(void)serial_tx_dropped(d.uart);
			(void)rtc_offset(d.rtc);
			(void)boot_timer_ms(d.bt);
			FUZZ_CHECK(serial_rx_pending(d.uart) <= SERIAL_RX_FIFO);
			break;
		}
		}
	}
	destroy(&d);
	return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static struct fuzz_seed s;
	/* Program the UART (8n1, FIFO, interrupts), send and receive; read the RTC; poweroff. */
	static const uint8_t uart[] = {
		1, 0, 4,   0,	0x80, 0,   0, 0, /* LCR = DLAB */
		1, 0, 1,   0,	1,    0,   0, 0, /* DLL = 1 */
		1, 0, 4,   0,	0x03, 0,   0, 0, /* LCR = 8n1 */
		1, 0, 3,   0,	0x07, 0,   0, 0, /* FCR: enable, clear */
		1, 0, 2,   0,	0x0f, 0,   0, 0, /* IER: all */
		1, 0, 5,   0,	0x0b, 0,   0, 0, /* MCR: DTR RTS OUT2 */
		1, 0, 1,   0,	'A',  0,   0, 0, /* THR */
		3, 3, 'o', 'k', '\n',		 /* serial_input */
		0, 0, 3,   0,			 /* IIR */
		0, 0, 6,   0,			 /* LSR */
		0, 0, 1,   0,			 /* RBR */
		4, 5, 'x', 1,	'h',  1,   1,	 /* console: x, Ctrl-A h, Ctrl-A Ctrl-A */
		1, 1, 1,   0,	0x8a, 0,   0, 0, /* RTC index 0x0a (NMI masked) */
		0, 1, 2,   0,			 /* RTC data */
		1, 1, 1,   0,	0x0b, 0,   0, 0, /* index 0x0b */
		1, 1, 2,   0,	0x86, 0,   0, 0, /* SET, binary, 24 h */
		1, 1, 2,   0,	0x06, 0,   0, 0, /* SET cleared */
		2, 0, 0,   0,	1,    123, 0, 0, 0, 0, 0, 0, 0, /* boot timer */
		1, 2, 1,   0,	0x34, 0,   0, 0,		/* SLP_TYP 5 | SLP_EN: poweroff */
		1, 4, 1,   0,	0xfe, 0,   0, 0,		/* i8042 pulse reset */
		6,
	};

	null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (null_fd < 0)
		fuzz_fail("/dev/null: %s", strerror(errno));
	if (!fuzz_want_seeds())
		return 0;
	seed_bytes(&s, uart, sizeof(uart));
	fuzz_seed_save(&s, "devices");
	return 0;
}
