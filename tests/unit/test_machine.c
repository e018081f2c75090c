/* The machine description record: every field round-trips; counts, ranges and strings from a
 * hostile file are refused with a reason.  The console's port reaches the UART. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/console.h"
#include "core/evloop.h"
#include "core/machine.h"
#include "devices/serial.h"
#include "snapshot/snap.h"
#include "snapshot/snapshot.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

static struct machine_config sample;

static void fill_sample(void)
{
	memset(&sample, 0, sizeof(sample));
	sample.mem_mib = 512;
	sample.smp = 4;
	sample.cpu_template = CPU_TEMPLATE_NO_PV_HC;
	sample.no_acpi = true;
	sample.nr_disks = 2;
	strcpy(sample.disks[0].path, "/var/lib/vm/root.ext4");
	strcpy(sample.disks[1].path, "/srv/data.img");
	sample.disks[1].read_only = true;
	sample.nr_nets = 2;
	sample.nets[0].kind = MACHINE_NET_USER;
	sample.nets[0].has_mac = true;
	memcpy(sample.nets[0].mac, "\x02\x11\x22\x33\x44\x55", 6);
	sample.nets[0].slirp_flags = NET_SLIRP_RESTRICTED;
	sample.nets[0].nr_fwd = 1;
	sample.nets[0].fwd[0] = (struct net_slirp_fwd){ .udp = false,
							.host_addr = 0x7f000001,
							.host_port = 2222,
							.guest_addr = 0,
							.guest_port = 22 };
	sample.nets[1].kind = MACHINE_NET_TAP;
	strcpy(sample.nets[1].tap, "ign0");
	sample.balloon = true;
	sample.balloon_step_mib = 64;
	sample.balloon_stats_s = 5;
	sample.vsock_cid = 3;
	strcpy(sample.vsock_path, "/tmp/v.sock");
	sample.fuzz = true;
	sample.gpu = true;
	sample.huge_pages = true;
	sample.gpu_width = 1024;
	sample.gpu_height = 768;
	sample.disks[1].rl = (struct ratelimit_cfg){ .bandwidth = { 2 << 20, 1 << 20, 1000 },
						     .ops = { 100, 0, 500 } };
	sample.nets[0].rx_rl.bandwidth = (struct tbucket_cfg){ 1 << 20, 0, 100 };
	sample.nets[1].tx_rl.ops = (struct tbucket_cfg){ 1000, 5, 1000 };
	sample.rng_rl.bandwidth = (struct tbucket_cfg){ 4096, 0, 1000 };
	strcpy(sample.disks[0].id, "rootfs");
	sample.disks[0].root = true;
	strcpy(sample.disks[0].partuuid, "abcd-01");
	strcpy(sample.disks[1].id, "data");
	sample.disks[1].writeback = true;
	sample.disks[1].async = true;
	strcpy(sample.nets[0].id, "net1");
	strcpy(sample.nets[1].id, "net2");
	sample.balloon_deflate_on_oom = false; /* older records meant true */
	sample.mmds.version = 2;
	sample.mmds.ipv4 = 0xa9fe0102;
	sample.mmds.ifaces = 2; /* eth1 */
	sample.mmds.imds_compat = true;
	strcpy(sample.kernel, "/boot/vmlinux");
	strcpy(sample.cmdline, "console=ttyS0 root=/dev/vda rw");
}

/* The rate limiters of the sample in a version-3 record: 2 disks, 2 nets (rx and tx), rng;
 * 6 u64 each. */
#define RL_BYTES ((2 + 2 * 2 + 1) * 6 * 8)
/* v4: bool gpu + two u32. */
#define GPU_BYTES (1 + 4 + 4)
/* v5: bool huge_pages. */
#define HUGE_BYTES 1
/* v6: per disk id, bool root, partuuid, two bools; per net id (each string a u32 length and
 * its bytes); bool balloon_deflate_on_oom. */
#define IDS_BYTES \
	((4 + 6 + 1 + 4 + 7 + 1 + 1) + (4 + 4 + 1 + 4 + 0 + 1 + 1) + (4 + 4) + (4 + 4) + 1)
/* v7: MMDS's version, address and interfaces, three u32, and bool imds_compat. */
#define MMDS_BYTES (3 * 4 + 1)

static void encode(const struct machine_config *c, struct snap_writer *w, struct snap_file *f)
{
	snap_writer_init(w);
	machine_config_save(c, w);
	assert_int_equal(snap_writer_finish(w), 0);
	assert_int_equal(snap_file_parse(f, w->buf, w->len, NULL, 0), 0);
}

static void test_round_trip(void **state)
{
	static struct machine_config back;
	struct snap_writer w;
	struct snap_file f;
	char err[256];

	fill_sample();
	encode(&sample, &w, &f);
	assert_int_equal(machine_config_load(&back, &f, err, sizeof(err)), 0);
	assert_memory_equal(&back, &sample, sizeof(back));
	snap_writer_free(&w);
}

/* Re-encode with one field changed; the loader must refuse it. */
static void expect_refused(void (*mutate)(struct machine_config *), const char *what)
{
	static struct machine_config c, back;
	struct snap_writer w;
	struct snap_file f;
	char err[256] = "";

	fill_sample();
	c = sample;
	mutate(&c);
	encode(&c, &w, &f);
	assert_int_equal(machine_config_load(&back, &f, err, sizeof(err)), -EINVAL);
	assert_true(err[0] != '\0');
	(void)what;
	snap_writer_free(&w);
}

static void mmds_iface_absent(struct machine_config *c)
{
	c->mmds.ifaces = 4; /* eth2 of two */
}

static void mmds_bad_version(struct machine_config *c)
{
	c->mmds.version = 3;
}

static void mmds_bad_address(struct machine_config *c)
{
	c->mmds.ipv4 = 0x0a000001; /* 10.0.0.1 */
}

static void tiny_mem(struct machine_config *c)
{
	c->mem_mib = 1;
}

static void no_vcpus(struct machine_config *c)
{
	c->smp = 0;
}

static void many_vcpus(struct machine_config *c)
{
	c->smp = VM_MAX_VCPUS + 1;
}

/* Huge pages of 2 MiB cannot hold an odd number of MiB. */
static void huge_odd_mem(struct machine_config *c)
{
	c->mem_mib = 511;
}

static void auto_template(struct machine_config *c)
{
	c->cpu_template = CPU_TEMPLATE_AUTO;
}

static void bad_template(struct machine_config *c)
{
	c->cpu_template = (enum cpu_template)7;
}

static void bad_cid(struct machine_config *c)
{
	c->vsock_cid = 2;
}

/* Only the first disk can be the root device (it is /dev/vda). */
static void root_not_first(struct machine_config *c)
{
	c->disks[1].root = true;
}

static void same_drive_ids(struct machine_config *c)
{
	strcpy(c->disks[1].id, "rootfs");
}

static void same_iface_ids(struct machine_config *c)
{
	strcpy(c->nets[1].id, "net1");
}

static void tap_without_name(struct machine_config *c)
{
	c->nets[1].tap[0] = '\0';
}

static void bad_ratelimit(struct machine_config *c)
{
	c->nets[1].rx_rl.bandwidth = (struct tbucket_cfg){ 100, 0, 0 }; /* never refills */
}

static void test_refuses_values(void **state)
{
	expect_refused(bad_ratelimit, "rate limiter");
	expect_refused(tiny_mem, "memory");
	expect_refused(no_vcpus, "vcpus");
	expect_refused(many_vcpus, "vcpus");
	expect_refused(huge_odd_mem, "huge pages, odd memory");
	expect_refused(auto_template, "template");
	expect_refused(bad_template, "template");
	expect_refused(bad_cid, "cid");
	expect_refused(tap_without_name, "tap");
	expect_refused(root_not_first, "root device");
	expect_refused(same_drive_ids, "drive ids");
	expect_refused(same_iface_ids, "iface ids");
	expect_refused(mmds_iface_absent, "MMDS interface");
	expect_refused(mmds_bad_version, "MMDS version");
	expect_refused(mmds_bad_address, "MMDS address");
}

/* Devices without API ids (the command line) are fine several times over. */
static void test_empty_ids(void **state)
{
	static struct machine_config c, back;
	struct snap_writer w;
	struct snap_file f;
	char err[256];

	fill_sample();
	c = sample;
	for (int i = 0; i < 2; i++) {
		memset(c.disks[i].id, 0, sizeof(c.disks[i].id));
		memset(c.nets[i].id, 0, sizeof(c.nets[i].id));
	}
	encode(&c, &w, &f);
	assert_int_equal(machine_config_load(&back, &f, err, sizeof(err)), 0);
	assert_memory_equal(&back, &c, sizeof(back));
	snap_writer_free(&w);
}

/* Counts past the arrays are refused before anything is read into them. */
static void test_refuses_counts(void **state)
{
	static struct machine_config back;
	struct snap_writer w;
	struct snap_file f;
	char err[256];

	snap_writer_init(&w);
	snap_rec_begin(&w, SNAP_REC_MACHINE, 1, "machine");
	snap_put_u64(&w, 256);
	snap_put_u32(&w, 1);
	snap_put_u32(&w, CPU_TEMPLATE_HOST);
	snap_put_bool(&w, false);
	snap_put_u32(&w, MACHINE_MAX_DISKS + 1);
	assert_int_equal(snap_writer_finish(&w), 0);
	assert_int_equal(snap_file_parse(&f, w.buf, w.len, NULL, 0), 0);
	assert_int_equal(machine_config_load(&back, &f, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "disks"));
	snap_writer_free(&w);
}

static void test_refuses_truncation_and_version(void **state)
{
	static struct machine_config back;
	struct snap_writer w, t;
	struct snap_file f;
	struct snap_reader r;
	char err[256];

	fill_sample();
	encode(&sample, &w, &f);
	assert_int_equal(snap_file_find(&f, SNAP_REC_MACHINE, "machine", &r), 0);
	/* Every shorter payload, re-framed as a valid file. */
	for (size_t cut = 0; cut < r.len; cut += 7) {
		snap_writer_init(&t);
		snap_rec_begin(&t, SNAP_REC_MACHINE, 7, "machine");
		snap_put_bytes(&t, r.p, cut);
		assert_int_equal(snap_writer_finish(&t), 0);
		assert_int_equal(snap_file_parse(&f, t.buf, t.len, NULL, 0), 0);
		assert_int_equal(machine_config_load(&back, &f, err, sizeof(err)), -EINVAL);
		snap_writer_free(&t);
	}
	/* Another version. */
	snap_writer_init(&t);
	snap_rec_begin(&t, SNAP_REC_MACHINE, 8, "machine");
	snap_put_bytes(&t, r.p, r.len);
	assert_int_equal(snap_writer_finish(&t), 0);
	assert_int_equal(snap_file_parse(&f, t.buf, t.len, NULL, 0), 0);
	assert_int_equal(machine_config_load(&back, &f, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "version 8"));
	snap_writer_free(&t);
	/* Version 6 (before MMDS): loads without it; with its bytes left over refused. */
	for (int extra = 0; extra <= 1; extra++) {
		snap_writer_init(&t);
		snap_rec_begin(&t, SNAP_REC_MACHINE, 6, "machine");
		snap_put_bytes(&t, r.p, r.len - MMDS_BYTES + (size_t)extra);
		assert_int_equal(snap_writer_finish(&t), 0);
		assert_int_equal(snap_file_parse(&f, t.buf, t.len, NULL, 0), 0);
		assert_int_equal(machine_config_load(&back, &f, err, sizeof(err)),
				 extra ? -EINVAL : 0);
		if (!extra) {
			assert_int_equal(back.mmds.ifaces, 0);
			assert_int_equal(back.mmds.version, 0);
			assert_string_equal(back.nets[0].id, "net1");
		}
		snap_writer_free(&t);
	}
	/* Version 5 (before the API's ids): loads with none, the balloon offering
	 * deflate-on-OOM as every balloon did; with the ids' bytes left over refused. */
	for (int extra = 0; extra <= 1; extra++) {
		snap_writer_init(&t);
		snap_rec_begin(&t, SNAP_REC_MACHINE, 5, "machine");
		snap_put_bytes(&t, r.p, r.len - MMDS_BYTES - IDS_BYTES + (size_t)extra);
		assert_int_equal(snap_writer_finish(&t), 0);
		assert_int_equal(snap_file_parse(&f, t.buf, t.len, NULL, 0), 0);
		assert_int_equal(machine_config_load(&back, &f, err, sizeof(err)),
				 extra ? -EINVAL : 0);
		if (!extra) {
			assert_string_equal(back.disks[0].id, "");
			assert_false(back.disks[0].root);
			assert_string_equal(back.disks[0].partuuid, "");
			assert_false(back.disks[1].writeback);
			assert_string_equal(back.nets[0].id, "");
			assert_true(back.balloon_deflate_on_oom);
			assert_true(back.huge_pages);
		}
		snap_writer_free(&t);
	}
	/* Version 4 (before huge pages): loads without them; with the byte left over refused. */
	for (int extra = 0; extra <= 1; extra++) {
		snap_writer_init(&t);
		snap_rec_begin(&t, SNAP_REC_MACHINE, 4, "machine");
		snap_put_bytes(&t, r.p,
			       r.len - MMDS_BYTES - IDS_BYTES - HUGE_BYTES + (size_t)extra);
		assert_int_equal(snap_writer_finish(&t), 0);
		assert_int_equal(snap_file_parse(&f, t.buf, t.len, NULL, 0), 0);
		assert_int_equal(machine_config_load(&back, &f, err, sizeof(err)),
				 extra ? -EINVAL : 0);
		if (!extra) {
			assert_false(back.huge_pages);
			assert_true(back.gpu);
		}
		snap_writer_free(&t);
	}
	/* Version 3 (before the GPU): loads without it; with its bytes left over refused. */
	for (int extra = 0; extra <= 1; extra++) {
		snap_writer_init(&t);
		snap_rec_begin(&t, SNAP_REC_MACHINE, 3, "machine");
		snap_put_bytes(&t, r.p,
			       r.len - MMDS_BYTES - IDS_BYTES - HUGE_BYTES - GPU_BYTES +
				       (size_t)extra);
		assert_int_equal(snap_writer_finish(&t), 0);
		assert_int_equal(snap_file_parse(&f, t.buf, t.len, NULL, 0), 0);
		if (extra) {
			assert_int_equal(machine_config_load(&back, &f, err, sizeof(err)), -EINVAL);
		} else {
			assert_int_equal(machine_config_load(&back, &f, err, sizeof(err)), 0);
			assert_false(back.gpu);
			assert_false(ratelimit_cfg_none(&back.rng_rl));
		}
		snap_writer_free(&t);
	}
	/* Version 2 (before the rate limiters): the same fields without them load, with no
	 * limits; with their bytes left over it is refused. */
	for (int extra = 0; extra <= 1; extra++) {
		snap_writer_init(&t);
		snap_rec_begin(&t, SNAP_REC_MACHINE, 2, "machine");
		snap_put_bytes(&t, r.p,
			       r.len - MMDS_BYTES - IDS_BYTES - HUGE_BYTES - GPU_BYTES - RL_BYTES +
				       (size_t)extra);
		assert_int_equal(snap_writer_finish(&t), 0);
		assert_int_equal(snap_file_parse(&f, t.buf, t.len, NULL, 0), 0);
		if (extra) {
			assert_int_equal(machine_config_load(&back, &f, err, sizeof(err)), -EINVAL);
		} else {
			assert_int_equal(machine_config_load(&back, &f, err, sizeof(err)), 0);
			assert_true(back.fuzz);
			assert_true(ratelimit_cfg_none(&back.disks[1].rl));
			assert_true(ratelimit_cfg_none(&back.nets[0].rx_rl));
			assert_true(ratelimit_cfg_none(&back.nets[1].tx_rl));
			assert_true(ratelimit_cfg_none(&back.rng_rl));
			assert_string_equal(back.cmdline, sample.cmdline);
		}
		snap_writer_free(&t);
	}
	/* Version 1 (before the fuzz flag): the same fields without it load, without the
	 * device; with the flag's byte left over it is refused. */
	for (int extra = 0; extra <= 1; extra++) {
		snap_writer_init(&t);
		snap_rec_begin(&t, SNAP_REC_MACHINE, 1, "machine");
		snap_put_bytes(&t, r.p,
			       r.len - MMDS_BYTES - IDS_BYTES - HUGE_BYTES - GPU_BYTES - RL_BYTES -
				       1 + (size_t)extra);
		assert_int_equal(snap_writer_finish(&t), 0);
		assert_int_equal(snap_file_parse(&f, t.buf, t.len, NULL, 0), 0);
		if (extra) {
			assert_int_equal(machine_config_load(&back, &f, err, sizeof(err)), -EINVAL);
		} else {
			assert_int_equal(machine_config_load(&back, &f, err, sizeof(err)), 0);
			assert_false(back.fuzz);
			assert_string_equal(back.cmdline, sample.cmdline);
		}
		snap_writer_free(&t);
	}
	/* No record at all. */
	snap_writer_init(&t);
	assert_int_equal(snap_writer_finish(&t), 0);
	assert_int_equal(snap_file_parse(&f, t.buf, t.len, NULL, 0), 0);
	assert_int_equal(machine_config_load(&back, &f, err, sizeof(err)), -EINVAL);
	snap_writer_free(&t);
	snap_writer_free(&w);
}

/* Firecracker's network_overrides: by the id the snapshot recorded, only the back end
 * changes (MAC, limiters, forwards stay); a snapshot without ids goes by position. */
static void test_net_overrides(void **state)
{
	static struct machine_config c;
	struct snapshot_net_override o[3] = {
		{ .id = "net2", .kind = MACHINE_NET_USER },
		{ .id = "net1", .kind = MACHINE_NET_TAP, .tap = "tap5" },
	};
	struct snapshot_overrides ov = { .nr_net_backends = 2, .net_backends = o };
	bool keep[MACHINE_MAX_NETS] = { false };
	char err[256] = "";

	fill_sample();
	c = sample;
	assert_int_equal(snapshot_override_backends(&c, &ov, keep, err, sizeof(err)), 0);
	assert_true(keep[0] && keep[1]);
	assert_int_equal(c.nets[0].kind, MACHINE_NET_TAP);
	assert_string_equal(c.nets[0].tap, "tap5");
	assert_string_equal(c.nets[0].id, "net1");
	assert_memory_equal(c.nets[0].mac, sample.nets[0].mac, 6);
	assert_memory_equal(&c.nets[0].rx_rl, &sample.nets[0].rx_rl, sizeof(c.nets[0].rx_rl));
	assert_int_equal(c.nets[1].kind, MACHINE_NET_USER);
	assert_string_equal(c.nets[1].tap, "");
	assert_memory_equal(&c.nets[1].tx_rl, &sample.nets[1].tx_rl, sizeof(c.nets[1].tx_rl));
	/* An id the snapshot does not have; one given twice; more than it has. */
	o[0].id = "eth9";
	c = sample;
	memset(keep, 0, sizeof(keep));
	assert_int_equal(snapshot_override_backends(&c, &ov, keep, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "eth9"));
	o[0].id = "net1";
	c = sample;
	memset(keep, 0, sizeof(keep));
	assert_int_equal(snapshot_override_backends(&c, &ov, keep, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "twice"));
	o[2] = o[1];
	ov.nr_net_backends = 3;
	c = sample;
	memset(keep, 0, sizeof(keep));
	assert_int_equal(snapshot_override_backends(&c, &ov, keep, err, sizeof(err)), -EINVAL);
	/* A TAP without a usable name. */
	ov.nr_net_backends = 1;
	o[0] = (struct snapshot_net_override){ .id = "net1",
					       .kind = MACHINE_NET_TAP,
					       .tap = "a-name-too-long-for-a-tap" };
	c = sample;
	memset(keep, 0, sizeof(keep));
	assert_int_equal(snapshot_override_backends(&c, &ov, keep, err, sizeof(err)), -EINVAL);
	/* No ids recorded (an older snapshot): by position, taking the override's id. */
	c = sample;
	memset(c.nets[0].id, 0, sizeof(c.nets[0].id));
	memset(c.nets[1].id, 0, sizeof(c.nets[1].id));
	o[0] = (struct snapshot_net_override){ .id = "wan", .kind = MACHINE_NET_TAP, .tap = "t1" };
	memset(keep, 0, sizeof(keep));
	assert_int_equal(snapshot_override_backends(&c, &ov, keep, err, sizeof(err)), 0);
	assert_true(keep[0] && !keep[1]);
	assert_string_equal(c.nets[0].id, "wan");
	assert_string_equal(c.nets[0].tap, "t1");
	assert_string_equal(c.nets[1].id, "");
}

static void on_timer(void *opaque, uint32_t events)
{
	evloop_stop(opaque);
}

/* machine_console_port() wires the console to the UART's receive side: bytes reach the RX
 * FIFO, what does not fit waits in the console, and the UART's room eventfd (the port's
 * room_fd) fires once the guest drains a byte, after which the rest goes in. */
static void test_console_port_reaches_uart(void **state)
{
	struct machine m = { 0 };
	struct console_port port;
	struct power_sink ps = { 0 };
	struct console *c;
	struct evloop ev;
	struct itimerspec its = { .it_value = { .tv_nsec = 100000000 } };
	uint8_t in[SERIAL_RX_FIFO + 10];
	int t;

	memset(in, 'q', sizeof(in));
	in[0] = 'h';
	assert_int_equal(serial_create(NULL, -1, &m.uart), 0);
	machine_console_port(&m, &port);
	assert_int_equal(port.room_fd, serial_rx_room_fd(m.uart));
	assert_int_equal(evloop_init(&ev), 0);
	assert_int_equal(console_create(&ev, -1, &port, &ps, &c), 0);
	console_input(c, in, sizeof(in));
	assert_int_equal(serial_rx_pending(m.uart), SERIAL_RX_FIFO);
	assert_int_equal(console_pending(c), 10);
	assert_int_equal(serial_read(m.uart, SERIAL_RBR), 'h');
	/* The console watches the room eventfd on the loop: one run moves the next byte in (a
	 * timer ends the run). */
	t = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
	assert_true(t >= 0);
	assert_int_equal(timerfd_settime(t, 0, &its, NULL), 0);
	assert_int_equal(evloop_add(&ev, t, EPOLLIN, on_timer, &ev), 0);
	assert_int_equal(evloop_run(&ev), 0);
	evloop_del(&ev, t);
	close(t);
	assert_int_equal(serial_rx_pending(m.uart), SERIAL_RX_FIFO);
	assert_int_equal(console_pending(c), 9);
	console_destroy(c);
	evloop_destroy(&ev);
	serial_destroy(m.uart);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_console_port_reaches_uart),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_empty_ids),
		cmocka_unit_test(test_net_overrides),
		cmocka_unit_test(test_refuses_values),
		cmocka_unit_test(test_refuses_counts),
		cmocka_unit_test(test_refuses_truncation_and_version),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
