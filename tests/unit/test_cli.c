/* `ignition run` argument parsing: good input and every kind of bad input. */
/* argv arrays of string literals, as a shell would pass them. */
#pragma GCC diagnostic ignored "-Wdiscarded-qualifiers"
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/cli.h"

#include <errno.h>
#include <string.h>

static int parse(struct cli_opts *o, char *err, int argc, char **argv)
{
	return cli_parse(argc, argv, o, err, 256);
}

#define ARGS(...)	   ((char *[]){ "run", __VA_ARGS__, NULL })
#define NARGS(...)	   ((int)(sizeof((char *[]){ "run", __VA_ARGS__ }) / sizeof(char *)))
#define PARSE(o, err, ...) parse(o, err, NARGS(__VA_ARGS__), ARGS(__VA_ARGS__))

static void test_defaults(void **state)
{
	struct cli_opts o;
	char err[256];
	char *argv[] = { "run", NULL };

	assert_int_equal(cli_parse(1, argv, &o, err, sizeof(err)), 0);
	assert_null(o.kernel);
	assert_int_equal(o.m.smp, 1);
	assert_int_equal(o.m.mem_mib, 256);
	assert_false(o.m.no_acpi);
	assert_int_equal(o.m.nr_disks, 0);
	assert_int_equal(o.m.cpu_template, CPU_TEMPLATE_AUTO);
	assert_string_equal(o.guest, "min");
}

static void test_all_flags(void **state)
{
	struct cli_opts o;
	char err[256];

	assert_int_equal(PARSE(&o, err, "--kernel", "/k", "--initrd", "/i", "--disk", "/a.img",
			       "--disk", "/b.img,ro", "--cmdline", "console=ttyS0", "--append",
			       "quiet", "--smp", "4", "--mem", "512", "--no-acpi", "--cpu-template",
			       "no-pv-hypercalls", "--guest", "stock"),
			 0);
	assert_string_equal(o.kernel, "/k");
	assert_string_equal(o.initrd, "/i");
	assert_int_equal(o.m.nr_disks, 2);
	assert_string_equal(o.m.disks[0].path, "/a.img");
	assert_false(o.m.disks[0].read_only);
	assert_string_equal(o.m.disks[1].path, "/b.img");
	assert_true(o.m.disks[1].read_only);
	assert_string_equal(o.cmdline, "console=ttyS0");
	assert_string_equal(o.append, "quiet");
	assert_int_equal(o.m.smp, 4);
	assert_int_equal(o.m.mem_mib, 512);
	assert_true(o.m.no_acpi);
	assert_int_equal(o.m.cpu_template, CPU_TEMPLATE_NO_PV_HC);
	assert_string_equal(o.guest, "stock");
}

static void test_bad_numbers(void **state)
{
	struct cli_opts o;
	char err[256];

	assert_int_equal(PARSE(&o, err, "--smp", "0"), -EINVAL);
	assert_non_null(strstr(err, "--smp"));
	assert_int_equal(PARSE(&o, err, "--smp", "33"), -EINVAL);
	assert_int_equal(PARSE(&o, err, "--smp", "-1"), -EINVAL);
	assert_int_equal(PARSE(&o, err, "--smp", "2x"), -EINVAL);
	assert_int_equal(PARSE(&o, err, "--mem", "abc"), -EINVAL);
	assert_non_null(strstr(err, "'abc'"));
	assert_int_equal(PARSE(&o, err, "--mem", ""), -EINVAL);
	assert_int_equal(PARSE(&o, err, "--mem", "99999999999999999999999"), -EINVAL);
	assert_int_equal(PARSE(&o, err, "--mem", "8"), -EINVAL);
	assert_int_equal(PARSE(&o, err, "--smp", "32"), 0);
}

static void test_bad_usage(void **state)
{
	struct cli_opts o;
	char err[256];

	assert_int_equal(PARSE(&o, err, "--bogus"), -EINVAL);
	assert_non_null(strstr(err, "unknown option"));
	assert_int_equal(PARSE(&o, err, "--kernel"), -EINVAL);
	assert_non_null(strstr(err, "needs a value"));
	assert_int_equal(PARSE(&o, err, "stray"), -EINVAL);
	assert_int_equal(PARSE(&o, err, "--initrd", "/i"), -EINVAL);
	assert_int_equal(PARSE(&o, err, "--disk", ",ro"), -EINVAL);
	assert_int_equal(PARSE(&o, err, "--guest", "fancy"), -EINVAL);
	assert_int_equal(PARSE(&o, err, "--cpu-template", "fast"), -EINVAL);
	assert_int_equal(PARSE(&o, err, "--help"), 0);
	assert_true(o.help);
}

/* --disk suboptions: ro, bw=RATE (K/M/G binary), iops=N, in any order after the path. */
static void test_disk_ratelimit(void **state)
{
	struct cli_opts o;
	char err[256];

	assert_int_equal(PARSE(&o, err, "--disk", "/a,b.img,bw=2M,ro,iops=100", "--disk",
			       "/c.img,bw=1500", "--disk", "/d.img,ro"),
			 0);
	assert_int_equal(o.m.nr_disks, 3);
	assert_string_equal(o.m.disks[0].path, "/a,b.img");
	assert_true(o.m.disks[0].read_only);
	assert_int_equal(o.m.disks[0].rl.bandwidth.size, 2u << 20);
	assert_int_equal(o.m.disks[0].rl.bandwidth.refill_time_ms, 1000);
	assert_int_equal(o.m.disks[0].rl.bandwidth.one_time_burst, 0);
	assert_int_equal(o.m.disks[0].rl.ops.size, 100);
	assert_int_equal(o.m.disks[0].rl.ops.refill_time_ms, 1000);
	assert_false(o.m.disks[1].read_only);
	assert_int_equal(o.m.disks[1].rl.bandwidth.size, 1500);
	assert_int_equal(o.m.disks[1].rl.ops.size, 0);
	assert_true(ratelimit_cfg_none(&o.m.disks[2].rl));
	assert_int_equal(PARSE(&o, err, "--disk", "/a.img,bw=8k"), 0);
	assert_int_equal(o.m.disks[0].rl.bandwidth.size, 8192);
	assert_int_equal(PARSE(&o, err, "--disk", "/a.img,bw=1G"), 0);
	assert_int_equal(o.m.disks[0].rl.bandwidth.size, 1u << 30);

	assert_int_equal(PARSE(&o, err, "--disk", "/a.img,bw=0"), -EINVAL);
	assert_non_null(strstr(err, "bw=RATE"));
	assert_int_equal(PARSE(&o, err, "--disk", "/a.img,bw=2X"), -EINVAL);
	assert_int_equal(PARSE(&o, err, "--disk", "/a.img,bw=M"), -EINVAL);
	assert_int_equal(PARSE(&o, err, "--disk", "/a.img,bw=99999999999999999999"), -EINVAL);
	assert_int_equal(PARSE(&o, err, "--disk", "/a.img,bw=2000000000G"), -EINVAL);
	assert_int_equal(PARSE(&o, err, "--disk", "/a.img,iops=5K"), -EINVAL);
	assert_int_equal(PARSE(&o, err, "--disk", "/a.img,iops="), -EINVAL);
	assert_int_equal(PARSE(&o, err, "--disk", ",bw=2M"), -EINVAL);
	/* Without a comma it is a file name. */
	assert_int_equal(PARSE(&o, err, "--disk", "bw=2M"), 0);
	assert_string_equal(o.m.disks[0].path, "bw=2M");
	assert_true(ratelimit_cfg_none(&o.m.disks[0].rl));
}

static void test_too_many_disks(void **state)
{
	struct cli_opts o;
	char err[256];
	char *argv[2 * CLI_MAX_DISKS + 4];
	int n = 0;

	argv[n++] = "run";
	for (int i = 0; i <= CLI_MAX_DISKS; i++) {
		argv[n++] = "--disk";
		argv[n++] = "/x.img";
	}
	argv[n] = NULL;
	assert_int_equal(cli_parse(n, argv, &o, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "too many"));
}

/* argv for `run --kernel /k` plus `disks` disks, `nets` user nets and `extra` (NULL-ended). */
static int device_argv(char **argv, int disks, int nets, char *const *extra)
{
	int n = 0;

	argv[n++] = "run";
	argv[n++] = "--kernel";
	argv[n++] = "/k";
	for (int i = 0; i < disks; i++) {
		argv[n++] = "--disk";
		argv[n++] = "/x.img";
	}
	for (int i = 0; i < nets; i++) {
		argv[n++] = "--net";
		argv[n++] = "user";
	}
	while (extra && *extra)
		argv[n++] = *extra++;
	argv[n] = NULL;
	return n;
}

static void test_interrupt_lines(void **state)
{
	struct cli_opts o;
	char err[256];
	char *argv[64];
	int n;

	/* GSIs 5..22 without the RTC's 8 (23 is the VMGenID's). */
	assert_int_equal(cli_irq_lines(), 17);
	/* 16 disks + 2 nets + rng = 19 lines: one usage error naming the count, before any
	 * device is built. */
	n = device_argv(argv, 16, 2, NULL);
	assert_int_equal(cli_parse(n, argv, &o, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "too many devices: 19 need an interrupt line"));
	assert_non_null(strstr(err, "there are 17"));
	/* 18 does not fit, exactly 17 does. */
	n = device_argv(argv, 16, 2, (char *[]){ "--no-rng", NULL });
	assert_int_equal(cli_parse(n, argv, &o, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "too many devices: 18 need"));
	n = device_argv(argv, 16, 1, (char *[]){ "--no-rng", NULL });
	assert_int_equal(cli_parse(n, argv, &o, err, sizeof(err)), 0);
	assert_int_equal(cli_irq_devices(&o, false), 17);
	/* vsock and balloon take a line each. */
	n = device_argv(argv, 15, 1, (char *[]){ "--vsock", "3,/tmp/v", "--balloon", NULL });
	assert_int_equal(cli_parse(n, argv, &o, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "19 need"));
	/* Without --kernel or --disk the default guest's root disk counts too. */
	n = device_argv(argv, 0, 4, (char *[]){ "--vsock", "3,/tmp/v", "--balloon", NULL });
	assert_int_equal(cli_parse(n - 2, argv + 2, &o, err, sizeof(err)), 0);
	assert_int_equal(cli_irq_devices(&o, true), 8);
	assert_int_equal(cli_irq_devices(&o, false), 7);
}

static void test_jail_options(void **state)
{
	struct cli_opts o;
	char err[256];

	assert_int_equal(PARSE(&o, err, "--chroot", "/srv/jail", "--uid", "1000", "--gid", "0",
			       "--new-ns", "net,mount,pid", "--no-seccomp"),
			 0);
	assert_string_equal(o.chroot_dir, "/srv/jail");
	assert_true(o.has_uid && o.has_gid);
	assert_int_equal(o.uid, 1000);
	assert_int_equal(o.gid, 0);
	assert_int_equal(o.new_ns, CLI_NS_MOUNT | CLI_NS_PID | CLI_NS_NET);
	assert_true(o.no_seccomp);
	assert_int_equal(PARSE(&o, err, "--new-ns", "pid"), 0);
	assert_int_equal(o.new_ns, CLI_NS_PID);
	assert_false(o.has_uid || o.has_gid || o.no_seccomp);
	assert_null(o.chroot_dir);

	assert_int_equal(PARSE(&o, err, "--uid", "-1"), -EINVAL);
	assert_non_null(strstr(err, "--uid"));
	assert_int_equal(PARSE(&o, err, "--gid", "4294967295"), -EINVAL);
	assert_non_null(strstr(err, "--gid"));
	assert_int_equal(PARSE(&o, err, "--chroot", ""), -EINVAL);
	assert_int_equal(PARSE(&o, err, "--new-ns", "user"), -EINVAL);
	assert_int_equal(PARSE(&o, err, "--new-ns", "pid,pid"), -EINVAL);
	assert_int_equal(PARSE(&o, err, "--new-ns", ","), -EINVAL);
	/* user-mode NAT needs the host's network. */
	assert_int_equal(PARSE(&o, err, "--new-ns", "net", "--net", "user"), -EINVAL);
	assert_non_null(strstr(err, "--net user"));
	assert_int_equal(PARSE(&o, err, "--new-ns", "net", "--net", "tap=tap0"), 0);
}

static void test_usage_mentions_every_flag(void **state)
{
	static const char *const flags[] = {
		"--kernel",	"--initrd",  "--disk",	       "--cmdline", "--append",
		"--guest",	"--smp",     "--mem",	       "--no-acpi", "--cpu-template",
		"--no-seccomp", "--chroot",  "--uid",	       "--gid",	    "--new-ns",
		"--help",	"--restore", "--snapshot-dir", "--control", "--metrics-path",
		"--log-path",	"--level",   "--gui",	       "--vnc",	    "--gpu"
	};

	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
		assert_non_null(strstr(cli_usage, flags[i]));
}

/* --net user sub-options: host loopback and restricted mode are off unless asked for. */
static void test_net_user_exposure(void **state)
{
	static struct cli_opts o;
	char err[256];

	assert_int_equal(PARSE(&o, err, "--net", "user"), 0);
	assert_int_equal(o.m.nets[0].slirp_flags, 0);
	assert_int_equal(PARSE(&o, err, "--net", "user,host-loopback=on", "--net",
			       "user,restricted=on,hostfwd=tcp::2222-:22", "--net",
			       "user,host-loopback=on,restricted=on,host-loopback=off"),
			 0);
	assert_int_equal(o.m.nr_nets, 3);
	assert_int_equal(o.m.nets[0].slirp_flags, NET_SLIRP_HOST_LOOPBACK);
	assert_int_equal(o.m.nets[1].slirp_flags, NET_SLIRP_RESTRICTED);
	assert_int_equal(o.m.nets[1].nr_fwd, 1);
	assert_int_equal(o.m.nets[2].slirp_flags, NET_SLIRP_RESTRICTED); /* the last one wins */
	assert_int_equal(PARSE(&o, err, "--net", "user,host-loopback=yes"), -EINVAL);
	assert_non_null(strstr(err, "host-loopback=yes"));
	assert_int_equal(PARSE(&o, err, "--net", "user,restricted="), -EINVAL);
	assert_int_equal(PARSE(&o, err, "--net", "user,host-loopback"), -EINVAL);
	/* slirp options make no sense on a TAP device. */
	assert_int_equal(PARSE(&o, err, "--net", "tap=ign0,host-loopback=on"), -EINVAL);
	assert_int_equal(PARSE(&o, err, "--net", "tap=ign0,restricted=on"), -EINVAL);
	assert_non_null(strstr(cli_usage, "host-loopback=on"));
	assert_non_null(strstr(cli_usage, "restricted=on"));
}

/* --restore takes back-end overrides (--disk, --net, --vsock) and the run-time options, and
 * refuses what the snapshot fixes, naming the option even when its value came separately. */
static void test_restore_options(void **state)
{
	static struct cli_opts o;
	char err[256];

	assert_int_equal(PARSE(&o, err, "--restore", "/s", "--disk", "/d.img", "--net", "user",
			       "--vsock", "3,/tmp/v", "--snapshot-dir", "/snaps", "--control",
			       "/tmp/c.sock", "--no-seccomp"),
			 0);
	assert_string_equal(o.restore_dir, "/s");
	assert_string_equal(o.snapshot_dir, "/snaps");
	assert_string_equal(o.control_path, "/tmp/c.sock");
	assert_int_equal(o.m.nr_disks, 1);
	assert_string_equal(o.m.vsock_path, "/tmp/v");
	assert_int_equal(PARSE(&o, err, "--restore", "/s", "--smp", "2"), -EINVAL);
	assert_non_null(strstr(err, "--smp cannot be used with --restore"));
	assert_int_equal(PARSE(&o, err, "--mem=512", "--restore", "/s"), -EINVAL);
	assert_non_null(strstr(err, "--mem cannot be used with --restore"));
	assert_int_equal(PARSE(&o, err, "--restore", "/s", "--kernel", "/k"), -EINVAL);
	assert_int_equal(PARSE(&o, err, "--restore", "/s", "--balloon"), -EINVAL);
	assert_int_equal(PARSE(&o, err, "--restore", ""), -EINVAL);
	/* Without --restore those are fine. */
	assert_int_equal(PARSE(&o, err, "--smp", "2", "--snapshot-dir", "/snaps"), 0);
	assert_null(o.restore_dir);
}

/* --huge-pages: 2 MiB pages need a memory size in whole 2 MiB; a snapshot fixes it. */
static void test_huge_pages(void **state)
{
	static struct cli_opts o;
	char err[256];

	(void)state;
	assert_int_equal(PARSE(&o, err, "--mem", "512"), 0);
	assert_false(o.m.huge_pages);
	assert_int_equal(PARSE(&o, err, "--huge-pages", "--mem", "512"), 0);
	assert_true(o.m.huge_pages);
	assert_int_equal(PARSE(&o, err, "--huge-pages", "--mem", "129"), -EINVAL);
	assert_non_null(strstr(err, "multiple of 2"));
	assert_int_equal(PARSE(&o, err, "--restore", "/s", "--huge-pages"), -EINVAL);
	assert_non_null(strstr(err, "--huge-pages cannot be used with --restore"));
}

/* --metrics-path, --log-path, --level: paths kept, Firecracker's level names in any case. */
static void test_metrics_and_log_options(void **state)
{
	struct cli_opts o;
	char err[256];

	assert_int_equal(PARSE(&o, err, "--disk", "/a.img"), 0);
	assert_null(o.metrics_path);
	assert_null(o.log_path);
	assert_false(o.has_level);
	assert_int_equal(PARSE(&o, err, "--metrics-path", "/tmp/m.fifo", "--log-path", "/tmp/l.log",
			       "--level", "Debug"),
			 0);
	assert_string_equal(o.metrics_path, "/tmp/m.fifo");
	assert_string_equal(o.log_path, "/tmp/l.log");
	assert_true(o.has_level);
	assert_int_equal(o.level, LOG_DEBUG);
	assert_int_equal(PARSE(&o, err, "--level", "warning"), 0);
	assert_int_equal(o.level, LOG_WARN);
	assert_int_equal(PARSE(&o, err, "--level", "OFF"), 0);
	assert_int_equal(o.level, LOG_OFF);
	assert_int_equal(PARSE(&o, err, "--level", "verbose"), -EINVAL);
	assert_non_null(strstr(err, "--level"));
	assert_non_null(strstr(err, "verbose"));
	assert_int_equal(PARSE(&o, err, "--metrics-path", ""), -EINVAL);
	assert_non_null(strstr(err, "--metrics-path"));
	assert_int_equal(PARSE(&o, err, "--log-path", ""), -EINVAL);
	assert_non_null(strstr(err, "--log-path"));
	assert_int_equal(PARSE(&o, err, "--level"), -EINVAL);
}

/* --mmds FILE[,v1|v2][,addr=IP][,eth=N]: defaults, options, and what is refused. */
static void test_mmds(void **state)
{
	struct cli_opts o;
	char err[256];

	assert_int_equal(PARSE(&o, err, "--net", "user"), 0);
	assert_string_equal(o.mmds_file, "");
	assert_int_equal(PARSE(&o, err, "--net", "user", "--mmds", "/d.json"), 0);
	assert_string_equal(o.mmds_file, "/d.json");
	assert_int_equal(o.mmds_version, 1);
	assert_int_equal(o.mmds_ipv4, 0xa9fea9feu);
	assert_int_equal(PARSE(&o, err, "--mmds", "d.json,v2,addr=169.254.0.9", "--net", "user"),
			 0);
	assert_string_equal(o.mmds_file, "d.json");
	assert_int_equal(o.mmds_version, 2);
	assert_int_equal(o.mmds_ipv4, 0xa9fe0009u);
	/* Not link-local, unknown options, no file, twice, no user eth0. */
	assert_int_equal(PARSE(&o, err, "--net", "user", "--mmds", "d,addr=10.0.2.9"), -EINVAL);
	assert_int_equal(PARSE(&o, err, "--net", "user", "--mmds", "d,addr=169.254.1"), -EINVAL);
	assert_int_equal(PARSE(&o, err, "--net", "user", "--mmds", "d,v3"), -EINVAL);
	assert_int_equal(PARSE(&o, err, "--net", "user", "--mmds", "d,"), -EINVAL);
	assert_int_equal(PARSE(&o, err, "--net", "user", "--mmds", ",v2"), -EINVAL);
	assert_int_equal(PARSE(&o, err, "--net", "user", "--mmds", "a", "--mmds", "b"), -EINVAL);
	assert_int_equal(PARSE(&o, err, "--mmds", "d"), -EINVAL);
	assert_non_null(strstr(err, "eth0 has no --net"));
	assert_int_equal(o.mmds_ifaces, 1u);
	/* TAP interfaces serve it too; eth=N picks interfaces (eth0 only when none is named). */
	assert_int_equal(PARSE(&o, err, "--net", "tap=tap0", "--mmds", "d"), 0);
	assert_int_equal(o.mmds_ifaces, 1u);
	assert_int_equal(PARSE(&o, err, "--net", "user", "--net", "user", "--net", "tap=tap0",
			       "--mmds", "d,eth=0,v2,eth=2"),
			 0);
	assert_int_equal(o.mmds_ifaces, 5u);
	assert_int_equal(PARSE(&o, err, "--net", "user", "--mmds", "d,eth=1"), -EINVAL);
	assert_non_null(strstr(err, "eth1 has no --net"));
	assert_int_equal(PARSE(&o, err, "--net", "user", "--mmds", "d,eth=4"), -EINVAL);
	assert_int_equal(PARSE(&o, err, "--net", "user", "--mmds", "d,eth=01"), -EINVAL);
	/* With --restore the interfaces are the snapshot's: the restore checks them. */
	assert_int_equal(PARSE(&o, err, "--restore", "snap", "--mmds", "d,v1,eth=2"), 0);
	assert_int_equal(o.mmds_ifaces, 4u);
	assert_int_equal(o.mmds_version, 1);
}

/* --gui, --vnc, --gpu, --guest gui: each adds the GPU; the front end defaults to headless. */
static void test_gui(void **state)
{
	static struct cli_opts o;
	char err[256];

	assert_int_equal(PARSE(&o, err, "--smp", "1"), 0);
	assert_false(o.m.gpu);
	assert_int_equal(o.ui.mode, UI_NONE);
	assert_int_equal(PARSE(&o, err, "--gui"), 0);
	assert_true(o.m.gpu);
	assert_int_equal(o.ui.mode, UI_SDL);
	assert_int_equal(o.m.gpu_width, 1280);
	assert_int_equal(o.m.gpu_height, 800);
	assert_int_equal(PARSE(&o, err, "--gui=headless", "--gpu", "1024x768"), 0);
	assert_int_equal(o.ui.mode, UI_HEADLESS);
	assert_int_equal(o.m.gpu_width, 1024);
	assert_int_equal(o.m.gpu_height, 768);
	assert_false(o.ui.vnc);
	assert_int_equal(PARSE(&o, err, "--vnc", "5901"), 0);
	assert_true(o.m.gpu);
	assert_int_equal(o.ui.mode, UI_HEADLESS);
	assert_true(o.ui.vnc);
	assert_string_equal(o.ui.vnc_addr, "127.0.0.1");
	assert_int_equal(o.ui.vnc_port, 5901);
	assert_int_equal(PARSE(&o, err, "--vnc", "0.0.0.0:5900,password-file=/p", "--gui"), 0);
	assert_int_equal(o.ui.mode, UI_SDL);
	assert_string_equal(o.ui.vnc_addr, "0.0.0.0");
	assert_string_equal(o.vnc_password_file, "/p");
	assert_int_equal(PARSE(&o, err, "--vnc", "[::1]:5902"), 0);
	assert_string_equal(o.ui.vnc_addr, "::1");
	assert_int_equal(PARSE(&o, err, "--guest", "gui"), 0);
	assert_true(o.m.gpu);
	assert_int_equal(o.ui.mode, UI_HEADLESS);
	/* With --kernel, --guest gui names no image: no GPU unless asked for. */
	assert_int_equal(PARSE(&o, err, "--guest", "gui", "--kernel", "/k"), 0);
	assert_false(o.m.gpu);
	/* --guest gui-stock: the same desktop on the stock kernel, the GPU too. */
	assert_int_equal(PARSE(&o, err, "--guest", "gui-stock"), 0);
	assert_string_equal(o.guest, "gui-stock");
	assert_true(o.m.gpu);
	assert_int_equal(o.ui.mode, UI_HEADLESS);
	assert_int_equal(PARSE(&o, err, "--guest", "gui-stocky"), -EINVAL);
	assert_non_null(strstr(err, "gui-stock"));
	/* The table behind --guest: files and what each implies. */
	assert_null(cli_guest("gui-stocky"));
	assert_string_equal(cli_guest("gui-stock")->initrd, "initrd-gui-stock.img");
	assert_string_equal(cli_guest("gui-stock")->rootfs, "rootfs-gui.ext4");
	assert_null(cli_guest("gui")->initrd);
	assert_true(cli_guest("browser")->read_only);
	assert_false(cli_guest("gui")->read_only);
	assert_false(cli_guest("stock")->desktop);
	/* --guest browser: the GPU, and 1024 MiB unless --mem says otherwise. */
	assert_int_equal(PARSE(&o, err, "--guest", "browser"), 0);
	assert_true(o.m.gpu);
	assert_int_equal(o.m.mem_mib, 1024);
	assert_int_equal(PARSE(&o, err, "--guest", "browser", "--mem", "768"), 0);
	assert_int_equal(o.m.mem_mib, 768);
	assert_int_equal(PARSE(&o, err, "--guest", "browser", "--kernel", "/k"), 0);
	assert_false(o.m.gpu);
	assert_int_equal(o.m.mem_mib, 256);
	/* Bad values. */
	assert_int_equal(PARSE(&o, err, "--gui=x11"), -EINVAL);
	assert_non_null(strstr(err, "x11"));
	assert_int_equal(PARSE(&o, err, "--vnc", "localhost:5900"), -EINVAL);
	assert_int_equal(PARSE(&o, err, "--vnc", "5900,password=x"), -EINVAL);
	assert_int_equal(PARSE(&o, err, "--vnc", "70000"), -EINVAL);
	assert_int_equal(PARSE(&o, err, "--vnc", "0"), -EINVAL);
	assert_int_equal(PARSE(&o, err, "--vnc", "[::1"), -EINVAL);
	assert_int_equal(PARSE(&o, err, "--gpu", "32x32"), -EINVAL);
	assert_int_equal(PARSE(&o, err, "--gpu", "4000x2000"), -EINVAL);
	assert_int_equal(PARSE(&o, err, "--gpu", "1024"), -EINVAL);
	assert_int_equal(PARSE(&o, err, "--gpu", "x768"), -EINVAL);
	assert_int_equal(PARSE(&o, err, "--gpu", "1024x768x"), -EINVAL);
	/* The mode is part of the snapshot: not with --restore. */
	assert_int_equal(PARSE(&o, err, "--restore", "/s", "--gpu", "1024x768"), -EINVAL);
	assert_int_equal(PARSE(&o, err, "--restore", "/s", "--gui"), 0);
	/* The front ends are the host's choice: any of them with --restore. */
	assert_int_equal(
		PARSE(&o, err, "--restore", "/s", "--gui=sdl", "--vnc", "5901", "--control", "/c"),
		0);
	assert_string_equal(o.restore_dir, "/s");
	assert_int_equal(o.ui.mode, UI_SDL);
	assert_true(o.ui.vnc);
	assert_int_equal(o.ui.vnc_port, 5901);
	assert_int_equal(PARSE(&o, err, "--restore", "/s", "--vnc", "127.0.0.1:5902"), 0);
	assert_int_equal(o.ui.mode, UI_HEADLESS);
	assert_true(o.ui.vnc);
	assert_int_equal(PARSE(&o, err, "--restore", "/s", "--gui=headless"), 0);
	assert_int_equal(o.ui.mode, UI_HEADLESS);
	assert_false(o.ui.vnc);
	/* The desktop guest's image and kernel are the snapshot's. */
	assert_int_equal(PARSE(&o, err, "--restore", "/s", "--guest", "gui"), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_all_flags),
		cmocka_unit_test(test_bad_numbers),
		cmocka_unit_test(test_bad_usage),
		cmocka_unit_test(test_disk_ratelimit),
		cmocka_unit_test(test_too_many_disks),
		cmocka_unit_test(test_interrupt_lines),
		cmocka_unit_test(test_jail_options),
		cmocka_unit_test(test_usage_mentions_every_flag),
		cmocka_unit_test(test_net_user_exposure),
		cmocka_unit_test(test_restore_options),
		cmocka_unit_test(test_huge_pages),
		cmocka_unit_test(test_metrics_and_log_options),
		cmocka_unit_test(test_mmds),
		cmocka_unit_test(test_gui),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
