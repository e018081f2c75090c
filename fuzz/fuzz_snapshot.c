/* Snapshot state files (src/snapshot/snap.c) and the legacy devices' records in them.  The input
 * is a state file.  snap_file_parse() must accept it or refuse it with a reason; every record of
 * an accepted file must lie inside it; then fresh devices get their records as a VM restore
 * hands them out, under the ids the boot path gives them (main.c: serial_add "serial0",
 * rtc_add "rtc", boot_timer_add "boot-timer", power_acpi_add "acpi-pm", i8042_add
 * "i8042").  A device that refuses its record must be left exactly as it was (its save does not
 * change); one that accepts it must save the very same payload back and stay usable (every
 * register read, a few writes).
 *
 * The layer record (snapshot/layer.c) is read as a restore reads it, against the RAM size of
 * the machine record (16 MiB without one): refused with a reason, or accepted and saved back
 * byte for byte, a Diff's bitmap covering exactly RAM's pages.
 *
 * A state file ends in a CRC-32 that random mutations almost never keep right, so each input
 * runs twice: once as it is (the checksum check itself), and once with the CRC recomputed over
 * the mutated bytes, which lets the fuzzer reach the framing and the device records.
 *
 * Seeds (LLVMFuzzerInitialize, into $IGN_FUZZ_SEED_DIR): state files saved from the five
 * devices fresh, busy (UART with a divisor, RX bytes and interrupts pending; RTC stopped while
 * the guest sets it; boot timer fired; WAK_STS set; i8042 keys queued) and in loopback with a running RTC, and a
 * Diff snapshot's machine and layer records. */
#include "arch/x86/layout.h"
#include "core/gmem.h"
#include "core/irq.h"
#include "core/machine.h"
#include "core/vcpu_state.h"
#include "core/power.h"
#include "devices/boot_timer.h"
#include "devices/i8042.h"
#include "devices/power.h"
#include "devices/rtc.h"
#include "devices/serial.h"
#include "harness.h"
#include "snapshot/layer.h"
#include "snapshot/snap.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

/* SLEEP_STATUS_REG's offset in the ACPI device's window. */
#define OFF_STS (LAYOUT_ACPI_SLEEP_STS - LAYOUT_PORT_ACPI_PM)

static int null_fd = -1;

static int64_t fake_clock(void *opaque)
{
	return 1700000000ll * 1000000000ll;
}

static void stop(void *ctx, enum vm_stop_reason reason)
{
	FUZZ_CHECK(reason == VM_STOP_POWEROFF || reason == VM_STOP_REBOOT);
}

static const struct power_sink sink = { .request = stop };

struct devs {
	struct irq_line irq;
	struct serial *uart;
	struct rtc *rtc;
	struct boot_timer *bt;
	struct power *pm;
	struct i8042 *kbd;
};

enum { D_SERIAL, D_RTC, D_BOOT_TIMER, D_POWER, D_I8042, NR_DEVS };

/* Each device's record type is the one its ops table declares (ops->rec). */
static const struct {
	const struct dev_ops *ops;
	const char *id;
} table[NR_DEVS] = {
	[D_SERIAL] = { &serial_ops, "serial0" },
	[D_RTC] = { &rtc_ops, "rtc" },
	[D_BOOT_TIMER] = { &boot_timer_ops, "boot-timer" },
	[D_POWER] = { &power_acpi_ops, "acpi-pm" },
	[D_I8042] = { &i8042_data_ops, "i8042" },
};

static enum snap_rec_type rec_type(int i)
{
	return (enum snap_rec_type)table[i].ops->rec.type;
}

static void must(int ret, const char *what)
{
	if (ret)
		fuzz_fail("%s: %s", what, strerror(-ret));
}

static void create(struct devs *d)
{
	memset(d, 0, sizeof(*d));
	d->irq.fd = -1;
	must(serial_create(&d->irq, null_fd, &d->uart), "serial_create");
	must(rtc_create(&d->rtc), "rtc_create");
	rtc_set_clock(d->rtc, fake_clock, NULL);
	must(boot_timer_create(null_fd, &d->bt), "boot_timer_create");
	must(power_create(&sink, &d->pm), "power_create");
	must(i8042_create(&d->irq, &sink, &d->kbd), "i8042_create");
}

static void destroy(struct devs *d)
{
	serial_destroy(d->uart);
	rtc_destroy(d->rtc);
	boot_timer_destroy(d->bt);
	power_destroy(d->pm);
	i8042_destroy(d->kbd);
}

static void *dev_of(struct devs *d, int i)
{
	switch (i) {
	case D_SERIAL:
		return d->uart;
	case D_RTC:
		return d->rtc;
	case D_BOOT_TIMER:
		return d->bt;
	case D_I8042:
		return d->kbd;
	default:
		return d->pm;
	}
}

/* Device i's save, as a finished state file in w (the caller frees it). */
static void save_one(struct devs *d, int i, struct snap_writer *w)
{
	snap_writer_init(w);
	must(table[i].ops->save(dev_of(d, i), w, table[i].id), "save");
	must(snap_writer_finish(w), "snap_writer_finish");
}

/* The device took its record: use it as a guest would. */
static void exercise(struct devs *d, int i)
{
	switch (i) {
	case D_SERIAL:
		for (unsigned off = 0; off < SERIAL_NR_PORTS; off++)
			(void)serial_read(d->uart, off);
		(void)serial_input(d->uart, (const uint8_t *)"x", 1);
		serial_write(d->uart, SERIAL_THR, 'y');
		for (unsigned off = 0; off < SERIAL_NR_PORTS; off++)
			(void)serial_read(d->uart, off);
		FUZZ_CHECK(serial_rx_pending(d->uart) <= SERIAL_RX_FIFO);
		break;
	case D_RTC:
		(void)rtc_read(d->rtc, 1); /* at the restored index */
		for (unsigned idx = 0; idx < 0x80; idx++) {
			rtc_write(d->rtc, 0, (uint8_t)idx);
			(void)rtc_read(d->rtc, 1);
		}
		/* Stop the clock, edit it, start it again (timegm of the restored time). */
		rtc_write(d->rtc, 0, RTC_REG_B);
		rtc_write(d->rtc, 1, RTC_B_SET | RTC_B_24H);
		rtc_write(d->rtc, 0, RTC_SECONDS);
		rtc_write(d->rtc, 1, 0x59);
		rtc_write(d->rtc, 0, RTC_REG_B);
		rtc_write(d->rtc, 1, RTC_B_24H);
		rtc_write(d->rtc, 0, RTC_CENTURY);
		(void)rtc_read(d->rtc, 1);
		(void)rtc_offset(d->rtc);
		break;
	case D_BOOT_TIMER:
		boot_timer_ops.write(d->bt, 0, 1, BOOT_TIMER_MAGIC);
		FUZZ_CHECK(boot_timer_ms(d->bt) != 0);
		break;
	case D_I8042: {
		int r;

		/* Drain what the record queued (bounded), then a command and a key press. */
		for (int n = 0; n < 2 + I8042_QUEUE; n++) {
			(void)i8042_cmd_ops.read(d->kbd, 0, 1);
			(void)i8042_data_ops.read(d->kbd, 0, 1);
		}
		FUZZ_CHECK(!(i8042_cmd_ops.read(d->kbd, 0, 1) & I8042_STR_OBF));
		i8042_cmd_ops.write(d->kbd, 0, 1, 0xaa);
		FUZZ_CHECK(i8042_data_ops.read(d->kbd, 0, 1) == 0x55);
		r = i8042_send_ctrl_alt_del(d->kbd);
		FUZZ_CHECK(r == 0 || r == -EAGAIN || r == -ENOSPC);
		break;
	}
	default:
		(void)power_acpi_ops.read(d->pm, OFF_STS, 1);
		power_acpi_ops.write(d->pm, OFF_STS, 1, POWER_WAK_STS);
		FUZZ_CHECK(power_acpi_ops.read(d->pm, OFF_STS, 1) == 0);
		break;
	}
}

/* Restore each device from f into a fresh one and check the promises above. */
static void restore_all(const struct snap_file *f)
{
	struct devs d;

	create(&d);
	for (int i = 0; i < NR_DEVS; i++) {
		struct snap_writer before, after;
		struct snap_reader rec, saved;
		struct snap_file af;
		int ret;

		save_one(&d, i, &before);
		ret = table[i].ops->restore(dev_of(&d, i), f, table[i].id);
		save_one(&d, i, &after);
		if (ret) {
			FUZZ_CHECK(ret == -EINVAL);
			FUZZ_CHECK(before.len == after.len);
			FUZZ_CHECK(!memcmp(before.buf, after.buf, before.len));
		} else {
			/* Accepted: the record was there and comes back byte for byte. */
			FUZZ_CHECK(snap_file_find(f, rec_type(i), table[i].id, &rec) == 0);
			must(snap_file_parse(&af, after.buf, after.len, NULL, 0), "reparse");
			FUZZ_CHECK(snap_file_find(&af, rec_type(i), table[i].id, &saved) == 0);
			FUZZ_CHECK(saved.version == rec.version);
			FUZZ_CHECK(saved.len == rec.len && !memcmp(saved.p, rec.p, rec.len));
			exercise(&d, i);
		}
		snap_writer_free(&before);
		snap_writer_free(&after);
	}
	destroy(&d);
}

/* The layer record against RAM of ram_bytes (layer_load, as a restore and a flatten call it). */
static void load_layer(const struct snap_file *f, uint64_t ram_bytes)
{
	static struct layer_info li;
	uint64_t pages = ram_bytes >> GMEM_PAGE_SHIFT, pos = 0, run, sum = 0;
	struct snap_reader rec, saved;
	struct snap_writer w;
	struct snap_file af;
	char why[256];
	int ret;

	why[0] = '\0';
	ret = layer_load(f, ram_bytes, &li, why, sizeof(why));
	FUZZ_CHECK(ret == 0 || ((ret == -EINVAL || ret == -ENOMEM) && why[0]));
	if (ret) {
		FUZZ_CHECK(li.bits == NULL);
		return;
	}
	if (li.kind == LAYER_FULL) {
		FUZZ_CHECK(li.bits == NULL);
	} else {
		FUZZ_CHECK(li.kind == LAYER_DIFF && li.bits && li.nr_pages == pages);
		FUZZ_CHECK(li.parent[0] && memchr(li.parent, '\0', sizeof(li.parent)));
		/* Nothing past the last page; the runs cover exactly the set bits. */
		FUZZ_CHECK(gmem_bitmap_count(li.bits, gmem_bitmap_words(pages) * 64) ==
			   gmem_bitmap_count(li.bits, pages));
		while ((run = gmem_bitmap_next_run(li.bits, pages, &pos))) {
			FUZZ_CHECK(pos + run <= pages);
			sum += run;
			pos += run;
		}
		FUZZ_CHECK(sum == gmem_bitmap_count(li.bits, pages));
	}
	if (snap_file_find(f, SNAP_REC_LAYER, "layer", &rec) == 0) {
		snap_writer_init(&w);
		layer_save(&w, &li);
		must(snap_writer_finish(&w), "save layer");
		must(snap_file_parse(&af, w.buf, w.len, NULL, 0), "reparse layer");
		FUZZ_CHECK(snap_file_find(&af, SNAP_REC_LAYER, "layer", &saved) == 0);
		FUZZ_CHECK(saved.len == rec.len && !memcmp(saved.p, rec.p, rec.len));
		snap_writer_free(&w);
	}
	layer_info_free(&li);
}

/* The records a restore reads without a device: the machine description, a vCPU and the
 * layer.  Each is refused (-EINVAL, -ENOENT for a missing vCPU) or, accepted, saves back byte
 * for byte. */
static void load_pure(const struct snap_file *f)
{
	static struct machine_config mc;
	static struct vcpu_state vs;
	struct snap_reader rec, saved;
	struct snap_writer w;
	struct snap_file af;
	uint64_t ram_bytes = 16ull << 20;
	char err[256];
	int ret;

	err[0] = '\0';
	ret = machine_config_load(&mc, f, err, sizeof(err));
	FUZZ_CHECK(ret == 0 || (ret == -EINVAL && err[0]));
	if (ret == 0) {
		FUZZ_CHECK(mc.nr_disks <= MACHINE_MAX_DISKS && mc.nr_nets <= MACHINE_MAX_NETS);
		FUZZ_CHECK(memchr(mc.cmdline, '\0', sizeof(mc.cmdline)) != NULL);
		snap_writer_init(&w);
		machine_config_save(&mc, &w);
		must(snap_writer_finish(&w), "save machine");
		must(snap_file_parse(&af, w.buf, w.len, NULL, 0), "reparse machine");
		FUZZ_CHECK(snap_file_find(f, SNAP_REC_MACHINE, "machine", &rec) == 0);
		FUZZ_CHECK(snap_file_find(&af, SNAP_REC_MACHINE, "machine", &saved) == 0);
		/* An older version's record is saved in the current layout (longer). */
		FUZZ_CHECK(saved.version > rec.version ||
			   (saved.len == rec.len && !memcmp(saved.p, rec.p, rec.len)));
		snap_writer_free(&w);
		ram_bytes = mc.mem_mib << 20;
	}
	load_layer(f, ram_bytes);
	ret = vcpu_state_load(&vs, f, "vcpu0");
	FUZZ_CHECK(ret == 0 || ret == -EINVAL || ret == -ENOENT);
	if (ret == 0) {
		snap_writer_init(&w);
		vcpu_state_save(&vs, &w, "vcpu0");
		must(snap_writer_finish(&w), "save vcpu");
		must(snap_file_parse(&af, w.buf, w.len, NULL, 0), "reparse vcpu");
		FUZZ_CHECK(snap_file_find(f, SNAP_REC_VCPU, "vcpu0", &rec) == 0);
		FUZZ_CHECK(snap_file_find(&af, SNAP_REC_VCPU, "vcpu0", &saved) == 0);
		FUZZ_CHECK(saved.len == rec.len && !memcmp(saved.p, rec.p, rec.len));
		snap_writer_free(&w);
	}
}

static void run(const uint8_t *data, size_t size)
{
	struct snap_file f;
	struct snap_reader r;
	char why[256];
	int ret;

	why[0] = '\0';
	ret = snap_file_parse(&f, data, size, why, sizeof(why));
	if (ret) {
		FUZZ_CHECK(ret == -EINVAL || ret == -EPROTO);
		FUZZ_CHECK(why[0] != '\0');
		return;
	}
	FUZZ_CHECK(f.count <= SNAP_MAX_RECORDS);
	for (uint32_t i = 0; i < f.count; i++) {
		FUZZ_CHECK(snap_file_record(&f, i, &r) == 0);
		FUZZ_CHECK(memchr(r.id, '\0', sizeof(r.id)) != NULL);
		FUZZ_CHECK(r.p >= data + SNAP_HEADER_SIZE + SNAP_REC_HEADER);
		FUZZ_CHECK(r.len <= (size_t)(data + size - 4 - r.p));
		(void)snap_rec_name(r.type);
		/* Read it to the end and past it: the reader must stop at the record's end. */
		while (snap_get_u8(&r) || !r.err)
			;
		FUZZ_CHECK(r.off == r.len && snap_reader_done(&r) != 0);
	}
	FUZZ_CHECK(snap_file_record(&f, f.count, &r) == -ENOENT);
	restore_all(&f);
	load_pure(&f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *copy;
	uint32_t crc;

	run(data, size);
	if (size < SNAP_HEADER_SIZE + 4)
		return 0;
	crc = (uint32_t)crc32(crc32(0L, Z_NULL, 0), data, (uInt)(size - 4));
	if (crc == ((uint32_t)data[size - 4] | (uint32_t)data[size - 3] << 8 |
		    (uint32_t)data[size - 2] << 16 | (uint32_t)data[size - 1] << 24))
		return 0; /* already ran with a right CRC */
	/* An exact-size copy, so that ASan sees any read past the end. */
	copy = malloc(size);
	if (!copy)
		fuzz_fail("out of memory");
	memcpy(copy, data, size);
	for (int i = 0; i < 4; i++)
		copy[size - 4 + i] = (uint8_t)(crc >> (8 * i));
	run(copy, size);
	free(copy);
	return 0;
}

/* ---- seeds ---- */

/* A machine description and a vCPU in its reset state (x87 control word and MXCSR set), for
 * the first seed: the records a restore reads before any device. */
static void seed_machine_and_vcpu(struct snap_writer *w, uint64_t mem_mib)
{
	static struct machine_config mc;
	static struct vcpu_state vs;

	memset(&mc, 0, sizeof(mc));
	mc.mem_mib = mem_mib;
	mc.smp = 1;
	mc.cpu_template = CPU_TEMPLATE_HOST;
	mc.nr_disks = 1;
	strcpy(mc.disks[0].path, "/rootfs.ext4");
	strcpy(mc.cmdline, "console=ttyS0");
	machine_config_save(&mc, w);
	memset(&vs, 0, sizeof(vs));
	vs.xsave_size = 4096;
	vs.xsave[0] = 0x7f; /* FCW 0x037f */
	vs.xsave[1] = 0x03;
	vs.xsave[24] = 0x80; /* MXCSR 0x1f80 */
	vs.xsave[25] = 0x1f;
	vs.regs.rflags = 2;
	vs.sregs.cr0 = 0x60000010;
	vs.nr_msrs = 2;
	vs.msrs[0].index = 0x10;       /* TSC */
	vs.msrs[1].index = 0xc0000103; /* TSC_AUX */
	vcpu_state_save(&vs, w, "vcpu0");
}

static void seed_state(struct devs *d, const char *name)
{
	static struct fuzz_seed s;
	struct snap_writer w;

	snap_writer_init(&w);
	if (!strcmp(name, "fresh")) {
		struct layer_info full = { .kind = LAYER_FULL, .id = { 0x42 } };

		seed_machine_and_vcpu(&w, 256);
		layer_save(&w, &full);
	}
	for (int i = 0; i < NR_DEVS; i++)
		must(table[i].ops->save(dev_of(d, i), &w, table[i].id), "save");
	must(snap_writer_finish(&w), "snap_writer_finish");
	if (w.len > sizeof(s.data))
		fuzz_fail("seed %s: %zu bytes", name, w.len);
	seed_bytes(&s, w.buf, w.len);
	fuzz_seed_save(&s, name);
	snap_writer_free(&w);
}

/* A Diff snapshot of a 16 MiB machine: its machine, vCPU and layer records, with runs of
 * dirty pages across word edges and the last page. */
static void seed_diff(void)
{
	static uint64_t bits[(16u << 20) / GMEM_PAGE_SIZE / 64];
	static struct fuzz_seed s;
	struct layer_info li = { .kind = LAYER_DIFF, .bits = bits };
	struct snap_writer w;

	li.nr_pages = (16u << 20) / GMEM_PAGE_SIZE;
	memset(li.id, 0x11, sizeof(li.id));
	memset(li.parent_id, 0x22, sizeof(li.parent_id));
	strcpy(li.parent, "/var/snapshots/base");
	bits[0] = 1;
	bits[1] = 0xf000000000000000ull;
	bits[2] = 0xff;
	bits[63] = 1ull << 63;
	snap_writer_init(&w);
	seed_machine_and_vcpu(&w, 16);
	layer_save(&w, &li);
	must(snap_writer_finish(&w), "snap_writer_finish");
	if (w.len > sizeof(s.data))
		fuzz_fail("seed diff: %zu bytes", w.len);
	seed_bytes(&s, w.buf, w.len);
	fuzz_seed_save(&s, "diff");
	snap_writer_free(&w);
}

static void rtc_set(struct rtc *r, uint8_t idx, uint8_t v)
{
	rtc_write(r, 0, idx);
	rtc_write(r, 1, v);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const char typed[] = "root\nls -l\n";
	struct devs d;

	null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (null_fd < 0)
		fuzz_fail("/dev/null: %s", strerror(errno));
	if (!fuzz_want_seeds())
		return 0;

	create(&d);
	seed_state(&d, "fresh");
	destroy(&d);

	create(&d);
	serial_write(d.uart, SERIAL_LCR, SERIAL_LCR_DLAB | 0x03);
	serial_write(d.uart, SERIAL_DLL, 0x01);
	serial_write(d.uart, SERIAL_DLM, 0x00);
	serial_write(d.uart, SERIAL_LCR, 0x03);
	serial_write(d.uart, SERIAL_FCR, SERIAL_FCR_ENABLE | SERIAL_FCR_CLEAR_RX | 0xc0);
	serial_write(d.uart, SERIAL_MCR, SERIAL_MCR_DTR | SERIAL_MCR_RTS | SERIAL_MCR_OUT2);
	serial_write(d.uart, SERIAL_IER, SERIAL_IER_ERBFI | SERIAL_IER_ETBEI | SERIAL_IER_ELSI);
	serial_write(d.uart, SERIAL_SCR, 0x42);
	(void)serial_input(d.uart, (const uint8_t *)typed, sizeof(typed) - 1);
	rtc_set(d.rtc, RTC_REG_B, RTC_B_SET | RTC_B_24H);
	rtc_set(d.rtc, RTC_YEAR, 0x30);
	rtc_set(d.rtc, RTC_MONTH, 0x12);
	rtc_set(d.rtc, 0x20, 0xaa);
	rtc_write(d.rtc, 0, 0x80 | 0x20);
	boot_timer_ops.write(d.bt, 0, 1, BOOT_TIMER_MAGIC);
	power_acpi_ops.write(d.pm, LAYOUT_ACPI_SLEEP_CTL - LAYOUT_PORT_ACPI_PM, 1,
			     3 << POWER_SLP_TYP_SHIFT | POWER_SLP_EN);
	/* Keys queued behind a translated, disabled keyboard port; a LED command waiting. */
	i8042_cmd_ops.write(d.kbd, 0, 1, 0x60);
	i8042_data_ops.write(d.kbd, 0, 1, I8042_CTR_DEFAULT | I8042_CTR_XLATE | I8042_CTR_KBDDIS);
	i8042_data_ops.write(d.kbd, 0, 1, 0xed);
	if (i8042_send_ctrl_alt_del(d.kbd))
		fuzz_fail("i8042_send_ctrl_alt_del");
	seed_state(&d, "busy");
	destroy(&d);

	create(&d);
	serial_write(d.uart, SERIAL_MCR, SERIAL_MCR_LOOP | SERIAL_MCR_OUT1);
	for (int i = 0; i < SERIAL_RX_FIFO + 1; i++)
		serial_write(d.uart, SERIAL_THR, (uint8_t)i); /* the last one overruns */
	serial_write(d.uart, SERIAL_IER, 0x0f);
	rtc_set(d.rtc, RTC_REG_B, RTC_B_DM | RTC_B_24H | RTC_B_PIE | RTC_B_AIE);
	rtc_set(d.rtc, RTC_REG_A, 0x2f);
	rtc_set(d.rtc, RTC_HOURS, 23);
	rtc_set(d.rtc, RTC_SECONDS_ALARM, 0xc0);
	seed_state(&d, "loopback");
	destroy(&d);
	seed_diff();
	return 0;
}
