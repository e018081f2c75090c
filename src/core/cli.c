#include "core/cli.h"

#include "arch/x86/layout.h"
#include "ui/display.h"
#include "util/ratelimit.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char cli_usage[] =
	"Usage: ignition run [OPTIONS]\n"
	"Boot a Linux guest in a KVM microVM with its serial console on this terminal.\n"
	"\n"
	"Options:\n"
	"  --kernel PATH        kernel to boot: a bzImage or an ELF vmlinux (default: the\n"
	"                       default guest's minimal kernel, guest/out/vmlinux-min)\n"
	"  --initrd PATH        initial ramdisk to load with the kernel\n"
	"  --disk PATH[,ro][,bw=RATE][,iops=N]\n"
	"                       raw disk image as a virtio-blk device; repeatable, the first is\n"
	"                       the root disk (/dev/vda); ',ro' makes it read-only; bw= limits\n"
	"                       it to RATE bytes/s (suffix K, M, G: binary), iops= to N\n"
	"                       requests/s (token buckets refilled every second)\n"
	"  --cmdline STR        kernel command line, replacing the default one\n"
	"  --append STR         text appended to the kernel command line\n"
	"  --guest min|stock|gui|gui-stock|browser\n"
	"                       which default guest to boot when --kernel is not given:\n"
	"                       the minimal kernel (default), Debian's stock cloud kernel, or\n"
	"                       the minimal kernel with the desktop root file system (sway +\n"
	"                       foot, `make guest-gui`; implies --gui=headless unless --gui),\n"
	"                       the same desktop on Debian's generic stock kernel (gui-stock),\n"
	"                       or with the browser's (Firefox ESR, read-only, `make\n"
	"                       guest-browser`; also --mem 1024 unless --mem; see 'ignition\n"
	"                       browser --help')\n"
	"  --smp N              number of vCPUs, 1 to 32 (default 1)\n"
	"  --mem MiB            guest RAM in MiB, 16 to 1048576 (default 256)\n"
	"  --huge-pages         guest RAM from 2 MiB hugetlb pages, reserved at start from\n"
	"                       /proc/sys/vm/nr_hugepages (--mem a multiple of 2)\n"
	"  --no-acpi            no ACPI tables; describe virtio-mmio devices on the command line\n"
	"                       (virtio_mmio.device=...) for kernels built that way\n"
	"  --no-rng             leave out the virtio-rng entropy device (present by default,\n"
	"                       fed from the host's getrandom())\n"
	"  --balloon[=step=MiB,stats=SEC]\n"
	"                       a virtio-balloon device; Ctrl-A b toggles its target between\n"
	"                       0 and step MiB (default 128); the guest's memory statistics\n"
	"                       are refreshed every SEC seconds (default 5, 0: on Ctrl-A b only)\n"
	"  --vsock CID,PATH     a virtio-vsock device with guest CID (3 to 4294967294): a guest\n"
	"                       connect to port P reaches the Unix socket PATH_P; host programs\n"
	"                       connect to PATH, write 'CONNECT <port>\\n', read 'OK <n>\\n'\n"
	"  --mmds FILE[,v1|v2][,addr=IP][,eth=N]...\n"
	"                       serve FILE's JSON object as metadata (MMDS) at http://IP/\n"
	"                       (default 169.254.169.254, in 169.254.0.0/16) to eth0, or to\n"
	"                       each ethN named (--net user or tap); v2 (default v1) requires\n"
	"                       a session token\n"
	"  --net user[,hostfwd=tcp:[HOSTADDR]:PORT-[GUESTADDR]:PORT]...[,host-loopback=on]\n"
	"           [,restricted=on][,mac=MAC]\n"
	"                       a virtio-net device on user-mode NAT (libslirp, no privileges):\n"
	"                       DHCP gives the guest 10.0.2.15, DNS 10.0.2.3; hostfwd (tcp or\n"
	"                       udp, repeatable) forwards a host port to the guest, e.g.\n"
	"                       hostfwd=tcp:127.0.0.1:2222-:22; host-loopback=on lets the guest\n"
	"                       reach the host's 127.0.0.1 as 10.0.2.2 (default off);\n"
	"                       restricted=on: no outbound connections at all (DHCP and\n"
	"                       hostfwd still work)\n"
	"  --net tap=NAME[,mac=MAC]\n"
	"                       a virtio-net device on TAP device NAME, created if missing\n"
	"                       (needs CAP_NET_ADMIN); --net is repeatable: eth0, eth1...\n"
	"  --mac XX:XX:XX:XX:XX:XX\n"
	"                       MAC address of the first --net (default: random, locally\n"
	"                       administered)\n"
	"  --cpu-template T     auto (default), host, or no-pv-hypercalls: hide the KVM PV\n"
	"                       features that make the guest issue hypercalls (CPUID 0x40000001\n"
	"                       PV_UNHALT, PV_TLB_FLUSH, PV_SEND_IPI, PV_SCHED_YIELD); 'auto'\n"
	"                       picks no-pv-hypercalls on hosts whose KVM is kvm_pvm\n"
	"  --no-seccomp         run without the per-thread seccomp filters (on by default: a\n"
	"                       system call outside a thread's allowlist ends the VMM with a\n"
	"                       message; exit status 159)\n"
	"  --chroot DIR         after opening every file and device, change the root to DIR\n"
	"                       (pivot_root with --new-ns mount); --vsock PATH then names a\n"
	"                       path inside DIR\n"
	"  --uid N, --gid N     then run as user N and group N (no supplementary groups)\n"
	"  --new-ns LIST        enter new namespaces, a comma-separated subset of mount,pid,net\n"
	"                       (pid: ignition runs as PID 1 of the new namespace, its parent\n"
	"                       waits; net cannot be combined with --net user)\n"
	"  --snapshot-dir DIR   where Ctrl-A s writes snapshots: DIR itself if it does not\n"
	"                       exist yet, else a new timestamped directory inside it (default:\n"
	"                       a new timestamped directory under ./snapshots/)\n"
	"  --restore DIR        resume the snapshot in DIR instead of booting: memory, vCPUs,\n"
	"                       devices and the command line come from it; each writable disk\n"
	"                       is a private copy-on-write view of the snapshot's, every NIC\n"
	"                       gets a new MAC (its link bounces), the VMGenID changes;\n"
	"                       --disk PATH (in order) uses PATH instead of that disk view,\n"
	"                       --net replaces the network back ends (same count; mac= keeps\n"
	"                       a MAC), --vsock CID,PATH moves the vsock socket (same CID),\n"
	"                       --mmds serves metadata (a snapshot holds none)\n"
	"  --track-dirty        log the pages the guest writes (KVM's dirty-page bitmap): a\n"
	"                       snapshot then holds only the pages written since the snapshot\n"
	"                       this VM was restored from or last wrote (a diff snapshot, with\n"
	"                       that one as its parent), and Ctrl-A c / Ctrl-A r checkpoint\n"
	"                       and reset the running VM in place\n"
	"  --control PATH       a Unix socket (mode 0600) taking one JSON command per line:\n"
	"                       {\"cmd\":\"pause\"}, {\"cmd\":\"resume\"}, {\"cmd\":\"status\"},\n"
	"                       {\"cmd\":\"snapshot\",\"dir\":\"DIR\"} (dir optional, as Ctrl-A "
	"s),\n"
	"                       {\"cmd\":\"checkpoint\"}, {\"cmd\":\"reset\"} (--track-dirty);\n"
	"                       with a display also screenshot, display, type, key,\n"
	"                       pointer, click, resize (docs/gui.md);\n"
	"                       each answered by one line {\"ok\":true,...} or\n"
	"                       {\"ok\":false,\"error\":\"...\"}\n"
	"  --gui[=sdl|headless] a virtio-gpu display with a virtio-input keyboard and tablet,\n"
	"                       shown in an SDL window (sdl, the default) or nowhere (headless:\n"
	"                       screenshots and input through --control and MCP); the serial\n"
	"                       console stays on this terminal (docs/gui.md)\n"
	"  --vnc [ADDR:]PORT[,password-file=F]\n"
	"                       serve the display over VNC on ADDR (default 127.0.0.1) port\n"
	"                       PORT, with the password in file F (first line); implies\n"
	"                       --gui=headless unless --gui is given\n"
	"  --gpu WxH            the display's first mode (default 1280x800; 64x64 to\n"
	"                       3840x2160); implies --gui=headless unless --gui is given\n"
	"  --metrics-path P     append metrics (one JSON object per line, Firecracker's\n"
	"                       layout: docs/metrics.md) to file P every 60 s and at exit;\n"
	"                       P may be a FIFO, whose reader must be running already\n"
	"  --log-path P         write log lines to file or FIFO P instead of stderr, time\n"
	"                       stamped in UTC (ISO 8601)\n"
	"  --level L            log level: Error, Warning (default), Info, Debug, Trace or\n"
	"                       Off (any case; IGNITION_LOG=L in the environment wins)\n"
	"  -h, --help           show this help\n"
	"\n"
	"Console keys: Ctrl-A x quits, Ctrl-A s snapshots, Ctrl-A p pauses or resumes, with\n"
	"--track-dirty Ctrl-A c marks a checkpoint and Ctrl-A r resets the VM to it (after\n"
	"--restore the restored snapshot is the checkpoint), Ctrl-A h lists keys, Ctrl-A Ctrl-A\n"
	"sends Ctrl-A.\n"
	"Exit status: 0 when the guest powers off or reboots or you quit, 1 on a VM error,\n"
	"2 on bad usage, 159 when seccomp refused a system call.  SIGTERM, SIGINT and SIGHUP stop\n"
	"the VM cleanly (exit 0); a second one ends it at once.  Set IGNITION_LOG=info or debug\n"
	"for diagnostics on stderr.\n";

enum {
	OPT_KERNEL = 256,
	OPT_INITRD,
	OPT_DISK,
	OPT_CMDLINE,
	OPT_APPEND,
	OPT_GUEST,
	OPT_SMP,
	OPT_MEM,
	OPT_NO_ACPI,
	OPT_CPU_TEMPLATE,
	OPT_NET,
	OPT_MAC,
	OPT_VSOCK,
	OPT_MMDS,
	OPT_NO_RNG,
	OPT_HUGE_PAGES,
	OPT_BALLOON,
	OPT_NO_SECCOMP,
	OPT_CHROOT,
	OPT_UID,
	OPT_GID,
	OPT_NEW_NS,
	OPT_RESTORE,
	OPT_SNAPSHOT_DIR,
	OPT_CONTROL,
	OPT_TRACK_DIRTY,
	OPT_METRICS_PATH,
	OPT_LOG_PATH,
	OPT_LEVEL,
	OPT_GUI,
	OPT_VNC,
	OPT_GPU,
};

static int parse_uint(const char *s, unsigned long long min, unsigned long long max,
		      unsigned long long *out)
{
	char *end;
	unsigned long long v;

	if (!*s || *s == '-' || *s == '+')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

/* --vnc [ADDR:]PORT[,password-file=F]: ADDR numeric IPv4 or [IPv6]. */
static int parse_vnc(const char *arg, struct cli_opts *o)
{
	char buf[CLI_PATH_MAX + 64], *opt, *port, *end;
	struct in6_addr a6;
	struct in_addr a4;
	unsigned long p;

	if (strlen(arg) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, arg);
	opt = strchr(buf, ',');
	if (opt) {
		*opt++ = '\0';
		if (strncmp(opt, "password-file=", 14) || !opt[14] ||
		    strlen(opt + 14) >= sizeof(o->vnc_password_file))
			return -EINVAL;
		strcpy(o->vnc_password_file, opt + 14);
	}
	port = strrchr(buf, ':');
	snprintf(o->ui.vnc_addr, sizeof(o->ui.vnc_addr), "127.0.0.1");
	if (port) {
		char *addr = buf;

		*port++ = '\0';
		if (addr[0] == '[') {
			size_t l = strlen(addr);

			if (l < 3 || addr[l - 1] != ']')
				return -EINVAL;
			addr[l - 1] = '\0';
			addr++;
			if (inet_pton(AF_INET6, addr, &a6) != 1)
				return -EINVAL;
		} else if (inet_pton(AF_INET, addr, &a4) != 1) {
			return -EINVAL;
		}
		if (strlen(addr) >= sizeof(o->ui.vnc_addr))
			return -EINVAL;
		strcpy(o->ui.vnc_addr, addr);
	} else {
		port = buf;
	}
	errno = 0;
	p = strtoul(port, &end, 10);
	if (errno || end == port || *end || p < 1 || p > 65535 || port[0] == '-')
		return -EINVAL;
	o->ui.vnc = true;
	o->ui.vnc_port = (uint16_t)p;
	return 0;
}

/* --gpu WxH within the display's limits. */
static int parse_gpu(const char *arg, struct cli_opts *o)
{
	unsigned long w, h;
	char *end;

	if (!isdigit((unsigned char)arg[0]))
		return -EINVAL;
	errno = 0;
	w = strtoul(arg, &end, 10);
	if (errno || *end != 'x' || !isdigit((unsigned char)end[1]))
		return -EINVAL;
	h = strtoul(end + 1, &end, 10);
	if (errno || *end || w < DISPLAY_MIN_DIM || w > DISPLAY_MAX_W || h < DISPLAY_MIN_DIM ||
	    h > DISPLAY_MAX_H)
		return -EINVAL;
	o->m.gpu_width = (uint32_t)w;
	o->m.gpu_height = (uint32_t)h;
	o->m.gpu = true;
	return 0;
}

/* --balloon options: a comma-separated list of step=MiB and stats=SEC. */
static int parse_balloon(const char *arg, struct cli_opts *o)
{
	char buf[128], *save = NULL;
	unsigned long long v;

	if (strlen(arg) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, arg);
	for (char *kv = strtok_r(buf, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
		if (!strncmp(kv, "step=", 5) && !parse_uint(kv + 5, 1, 1048576, &v))
			o->m.balloon_step_mib = (uint32_t)v;
		else if (!strncmp(kv, "stats=", 6) && !parse_uint(kv + 6, 0, 3600, &v))
			o->m.balloon_stats_s = (uint32_t)v;
		else
			return -EINVAL;
	}
	return 0;
}

/* --vsock CID,PATH: a guest CID other than the reserved 0, 1, 2 and 0xffffffff, and a path
 * short enough for PATH_<port> to fit a Unix socket address. */
static int parse_vsock(const char *arg, struct cli_opts *o)
{
	const char *comma = strchr(arg, ',');
	unsigned long long v;
	char cid[16];
	size_t n;

	if (!comma || (n = (size_t)(comma - arg)) >= sizeof(cid))
		return -EINVAL;
	memcpy(cid, arg, n);
	cid[n] = '\0';
	if (parse_uint(cid, 3, 0xfffffffeull, &v) || !comma[1] || strlen(comma + 1) > 96)
		return -EINVAL;
	o->m.vsock_cid = (uint32_t)v;
	snprintf(o->m.vsock_path, sizeof(o->m.vsock_path), "%s", comma + 1);
	return 0;
}

/* --mmds FILE[,v1|v2][,addr=IP][,eth=N]... */
static int parse_mmds(const char *arg, struct cli_opts *o)
{
	const char *opt = strchr(arg, ',');
	size_t len = opt ? (size_t)(opt - arg) : strlen(arg);

	if (len == 0 || len >= sizeof(o->mmds_file))
		return -EINVAL;
	o->mmds_version = 1;
	o->mmds_ipv4 = 0xa9fea9feu; /* 169.254.169.254 */
	o->mmds_ifaces = 0;
	while (opt) {
		const char *next = strchr(++opt, ',');
		size_t n = next ? (size_t)(next - opt) : strlen(opt);
		char ip[INET_ADDRSTRLEN];
		struct in_addr a;

		if (n == 2 && (!strncmp(opt, "v1", 2) || !strncmp(opt, "v2", 2))) {
			o->mmds_version = opt[1] == '1' ? 1 : 2;
		} else if (n > 5 && n - 5 < sizeof(ip) && !strncmp(opt, "addr=", 5)) {
			memcpy(ip, opt + 5, n - 5);
			ip[n - 5] = '\0';
			if (inet_pton(AF_INET, ip, &a) != 1 ||
			    (ntohl(a.s_addr) & 0xffff0000u) != 0xa9fe0000u)
				return -EINVAL;
			o->mmds_ipv4 = ntohl(a.s_addr);
		} else if (n == 5 && !strncmp(opt, "eth=", 4) && opt[4] >= '0' &&
			   opt[4] < '0' + MACHINE_MAX_NETS) {
			o->mmds_ifaces |= 1u << (opt[4] - '0');
		} else {
			return -EINVAL;
		}
		opt = next;
	}
	if (!o->mmds_ifaces)
		o->mmds_ifaces = 1; /* eth0 */
	memcpy(o->mmds_file, arg, len);
	o->mmds_file[len] = '\0';
	return 0;
}

/* XX:XX:XX:XX:XX:XX, a unicast address (bit 0 of the first byte clear). */
static int parse_mac(const char *s, uint8_t mac[6])
{
	unsigned v[6];
	int used = 0;

	if (strlen(s) != 17 ||
	    sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%n", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
		   &used) != 6 ||
	    used != 17 || (v[0] & 1))
		return -EINVAL;
	for (int i = 0; i < 17; i++)
		if (i % 3 == 2 ? s[i] != ':' : !strchr("0123456789abcdefABCDEF", s[i]))
			return -EINVAL;
	for (int i = 0; i < 6; i++)
		mac[i] = (uint8_t)v[i];
	return 0;
}

/* --net user[,hostfwd=...]...[,host-loopback=on|off][,restricted=on|off][,mac=...]
 * | tap=NAME[,mac=...]; err gets the reason. */
static int parse_net(const char *arg, struct machine_net *n, char *err, size_t err_size)
{
	char buf[1024], *save = NULL, *kv;

	memset(n, 0, sizeof(*n));
	if (strlen(arg) >= sizeof(buf)) {
		snprintf(err, err_size, "--net: value too long");
		return -EINVAL;
	}
	strcpy(buf, arg);
	kv = strtok_r(buf, ",", &save);
	if (kv && !strcmp(kv, "user")) {
		n->kind = MACHINE_NET_USER;
	} else if (kv && !strncmp(kv, "tap=", 4)) {
		n->kind = MACHINE_NET_TAP;
		if (!kv[4] || strlen(kv + 4) >= sizeof(n->tap) || strchr(kv + 4, '/')) {
			snprintf(err, err_size,
				 "--net: '%s' is not an interface name (1 to 15 "
				 "characters)",
				 kv + 4);
			return -EINVAL;
		}
		strcpy(n->tap, kv + 4);
	} else {
		snprintf(err, err_size,
			 "--net: bad value '%s' (want user[,hostfwd=...] or tap=NAME)", arg);
		return -EINVAL;
	}
	while ((kv = strtok_r(NULL, ",", &save))) {
		if (!strncmp(kv, "mac=", 4)) {
			if (parse_mac(kv + 4, n->mac)) {
				snprintf(err, err_size,
					 "--net: bad mac '%s' (want a unicast "
					 "XX:XX:XX:XX:XX:XX)",
					 kv + 4);
				return -EINVAL;
			}
			n->has_mac = true;
		} else if (n->kind == MACHINE_NET_USER && (!strncmp(kv, "host-loopback=", 14) ||
							   !strncmp(kv, "restricted=", 11))) {
			bool lb = kv[0] == 'h';
			const char *v = kv + (lb ? 14 : 11);
			unsigned bit = lb ? NET_SLIRP_HOST_LOOPBACK : NET_SLIRP_RESTRICTED;

			if (!strcmp(v, "on")) {
				n->slirp_flags |= bit;
			} else if (!strcmp(v, "off")) {
				n->slirp_flags &= ~bit;
			} else {
				snprintf(err, err_size, "--net: bad value in '%s' (want on or off)",
					 kv);
				return -EINVAL;
			}
		} else if (!strncmp(kv, "hostfwd=", 8) && n->kind == MACHINE_NET_USER) {
			if (n->nr_fwd >= NET_SLIRP_MAX_FWD) {
				snprintf(err, err_size, "--net: at most %d hostfwd",
					 NET_SLIRP_MAX_FWD);
				return -EINVAL;
			}
			if (net_slirp_parse_fwd(kv + 8, &n->fwd[n->nr_fwd])) {
				snprintf(err, err_size,
					 "--net: bad hostfwd '%s' (want "
					 "tcp|udp:[HOSTADDR]:PORT-[GUESTADDR]:PORT)",
					 kv + 8);
				return -EINVAL;
			}
			n->nr_fwd++;
		} else {
			snprintf(err, err_size, "--net: unknown option '%s'", kv);
			return -EINVAL;
		}
	}
	return 0;
}

/* --new-ns mount,pid,net (any non-empty subset, each at most once). */
static int parse_new_ns(const char *arg, unsigned *out)
{
	char buf[64], *save = NULL;
	unsigned ns = 0;

	if (strlen(arg) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, arg);
	for (char *w = strtok_r(buf, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
		unsigned bit = !strcmp(w, "mount") ? CLI_NS_MOUNT
			       : !strcmp(w, "pid") ? CLI_NS_PID
			       : !strcmp(w, "net") ? CLI_NS_NET
						   : 0;

		if (!bit || (ns & bit))
			return -EINVAL;
		ns |= bit;
	}
	if (!ns)
		return -EINVAL;
	*out = ns;
	return 0;
}

unsigned cli_irq_lines(void)
{
	unsigned n = LAYOUT_GSI_LAST - LAYOUT_GSI_FIRST + 1;

	if (LAYOUT_GSI_RTC >= LAYOUT_GSI_FIRST && LAYOUT_GSI_RTC <= LAYOUT_GSI_LAST)
		n--;
	return n;
}

unsigned cli_irq_devices(const struct cli_opts *o, bool default_disk)
{
	unsigned disks = o->m.nr_disks ? (unsigned)o->m.nr_disks : default_disk ? 1 : 0;

	/* The GPU comes with two input devices: three lines. */
	return disks + (unsigned)o->m.nr_nets + !o->m.no_rng + !!o->m.vsock_path[0] + o->m.balloon +
	       3u * o->m.gpu;
}

/* "N[K|M|G]" (binary multiples) of `len` bytes, 1..RATELIMIT_MAX_TOKENS. */
static int parse_rate(const char *p, size_t len, bool suffix, uint64_t *out)
{
	uint64_t v = 0, mult = 1;

	if (suffix && len > 1) {
		switch (p[len - 1]) {
		case 'K':
		case 'k':
			mult = 1ull << 10;
			len--;
			break;
		case 'M':
		case 'm':
			mult = 1ull << 20;
			len--;
			break;
		case 'G':
		case 'g':
			mult = 1ull << 30;
			len--;
			break;
		}
	}
	if (len == 0 || len > 19)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -EINVAL;
		v = v * 10 + (uint64_t)(p[i] - '0');
	}
	if (v == 0 || v > RATELIMIT_MAX_TOKENS / mult)
		return -EINVAL;
	*out = v * mult;
	return 0;
}

/* PATH[,ro|,rw][,bw=RATE][,iops=N]: options are taken off the end while they parse, so a
 * path may still hold commas.  bw and iops become buckets refilled every second. */
static int parse_disk(const char *arg, struct machine_disk *d)
{
	size_t len = strlen(arg);

	d->read_only = false;
	memset(&d->rl, 0, sizeof(d->rl));
	for (;;) {
		const char *comma = memrchr(arg, ',', len);
		const char *opt = comma ? comma + 1 : NULL;
		size_t olen = comma ? len - (size_t)(opt - arg) : 0;
		uint64_t v;

		if (!comma)
			break;
		if (olen == 2 && (!memcmp(opt, "ro", 2) || !memcmp(opt, "rw", 2))) {
			d->read_only = opt[1] == 'o';
		} else if (olen >= 3 && !memcmp(opt, "bw=", 3)) {
			if (parse_rate(opt + 3, olen - 3, true, &v))
				return -EINVAL;
			d->rl.bandwidth = (struct tbucket_cfg){ .size = v, .refill_time_ms = 1000 };
		} else if (olen >= 5 && !memcmp(opt, "iops=", 5)) {
			if (parse_rate(opt + 5, olen - 5, false, &v))
				return -EINVAL;
			d->rl.ops = (struct tbucket_cfg){ .size = v, .refill_time_ms = 1000 };
		} else {
			break;
		}
		len = (size_t)(comma - arg);
	}
	if (len == 0 || len >= sizeof(d->path))
		return -EINVAL;
	memcpy(d->path, arg, len);
	d->path[len] = '\0';
	return 0;
}

/* The default guests (guest/README.md): what `make guest`, `make guest-gui` and `make
 * guest-browser` build into guest/out/. */
static const struct cli_guest guests[] = {
	{ .name = "min",
	  .kernel = "vmlinux-min",
	  .rootfs = "rootfs.ext4",
	  .cmdline = "cmdline-min",
	  .make = "guest" },
	{ .name = "stock",
	  .kernel = "vmlinuz-stock",
	  .initrd = "initrd-stock.img",
	  .rootfs = "rootfs.ext4",
	  .cmdline = "cmdline-stock",
	  .make = "guest" },
	{ .name = "gui",
	  .kernel = "vmlinux-min",
	  .rootfs = "rootfs-gui.ext4",
	  .cmdline = "cmdline-gui",
	  .make = "guest-gui",
	  .desktop = true },
	{ .name = "gui-stock",
	  .kernel = "vmlinuz-gui-stock",
	  .initrd = "initrd-gui-stock.img",
	  .rootfs = "rootfs-gui.ext4",
	  .cmdline = "cmdline-gui-stock",
	  .make = "guest-gui",
	  .desktop = true },
	/* Firefox and its content process want more than the default 256 MiB; the session's
	 * writes go to tmpfs. */
	{ .name = "browser",
	  .kernel = "vmlinux-min",
	  .rootfs = "rootfs-browser.ext4",
	  .cmdline = "cmdline-browser",
	  .make = "guest-browser",
	  .desktop = true,
	  .read_only = true,
	  .mem_mib = 1024 },
};

const struct cli_guest *cli_guest(const char *name)
{
	for (size_t i = 0; i < sizeof(guests) / sizeof(guests[0]); i++)
		if (!strcmp(guests[i].name, name))
			return &guests[i];
	return NULL;
}

int cli_parse(int argc, char **argv, struct cli_opts *o, char *err, size_t err_size)
{
	static const struct option opts[] = {
		{ "kernel", required_argument, NULL, OPT_KERNEL },
		{ "initrd", required_argument, NULL, OPT_INITRD },
		{ "disk", required_argument, NULL, OPT_DISK },
		{ "cmdline", required_argument, NULL, OPT_CMDLINE },
		{ "append", required_argument, NULL, OPT_APPEND },
		{ "guest", required_argument, NULL, OPT_GUEST },
		{ "smp", required_argument, NULL, OPT_SMP },
		{ "mem", required_argument, NULL, OPT_MEM },
		{ "no-acpi", no_argument, NULL, OPT_NO_ACPI },
		{ "cpu-template", required_argument, NULL, OPT_CPU_TEMPLATE },
		{ "net", required_argument, NULL, OPT_NET },
		{ "mac", required_argument, NULL, OPT_MAC },
		{ "vsock", required_argument, NULL, OPT_VSOCK },
		{ "mmds", required_argument, NULL, OPT_MMDS },
		{ "no-rng", no_argument, NULL, OPT_NO_RNG },
		{ "huge-pages", no_argument, NULL, OPT_HUGE_PAGES },
		{ "balloon", optional_argument, NULL, OPT_BALLOON },
		{ "no-seccomp", no_argument, NULL, OPT_NO_SECCOMP },
		{ "chroot", required_argument, NULL, OPT_CHROOT },
		{ "uid", required_argument, NULL, OPT_UID },
		{ "gid", required_argument, NULL, OPT_GID },
		{ "new-ns", required_argument, NULL, OPT_NEW_NS },
		{ "restore", required_argument, NULL, OPT_RESTORE },
		{ "snapshot-dir", required_argument, NULL, OPT_SNAPSHOT_DIR },
		{ "control", required_argument, NULL, OPT_CONTROL },
		{ "track-dirty", no_argument, NULL, OPT_TRACK_DIRTY },
		{ "metrics-path", required_argument, NULL, OPT_METRICS_PATH },
		{ "log-path", required_argument, NULL, OPT_LOG_PATH },
		{ "level", required_argument, NULL, OPT_LEVEL },
		{ "gui", optional_argument, NULL, OPT_GUI },
		{ "vnc", required_argument, NULL, OPT_VNC },
		{ "gpu", required_argument, NULL, OPT_GPU },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	unsigned long long v;
	uint8_t mac[6];
	bool has_mac = false;
	const char *shaping = NULL; /* first option that a snapshot fixes (--restore refuses it) */
	bool gui_given = false, mem_given = false;
	int c;

	memset(o, 0, sizeof(*o));
	o->m.smp = 1;
	o->m.mem_mib = 256;
	o->guest = "min";
	o->m.cpu_template = CPU_TEMPLATE_AUTO;
	optind = 0; /* reset getopt (GNU: 0 also re-initialises) so tests can call this twice */
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case OPT_KERNEL:
		case OPT_INITRD:
		case OPT_CMDLINE:
		case OPT_APPEND:
		case OPT_GUEST:
		case OPT_SMP:
		case OPT_MEM:
		case OPT_NO_ACPI:
		case OPT_CPU_TEMPLATE:
		case OPT_NO_RNG:
		case OPT_HUGE_PAGES:
		case OPT_BALLOON:
		case OPT_MAC:
		case OPT_GPU:
			/* By name: argv[optind - 1] is the value when it came separately. */
			for (const struct option *p = opts; !shaping && p->name; p++)
				if (p->val == c)
					shaping = p->name;
			break;
		default:
			break;
		}
		switch (c) {
		case OPT_TRACK_DIRTY:
			o->track_dirty = true;
			break;
		case OPT_GUI:
			if (!optarg || !strcmp(optarg, "sdl")) {
				o->ui.mode = UI_SDL;
			} else if (!strcmp(optarg, "headless")) {
				o->ui.mode = UI_HEADLESS;
			} else {
				snprintf(err, err_size, "--gui: '%s' is not sdl or headless",
					 optarg);
				return -EINVAL;
			}
			gui_given = true;
			break;
		case OPT_VNC:
			if (parse_vnc(optarg, o)) {
				snprintf(
					err, err_size,
					"--vnc: bad value '%s' (want [ADDR:]PORT[,password-file=F] "
					"with a numeric address and PORT 1 to 65535)",
					optarg);
				return -EINVAL;
			}
			break;
		case OPT_GPU:
			if (parse_gpu(optarg, o)) {
				snprintf(err, err_size,
					 "--gpu: bad mode '%s' (want WxH from %ux%u to %ux%u)",
					 optarg, DISPLAY_MIN_DIM, DISPLAY_MIN_DIM, DISPLAY_MAX_W,
					 DISPLAY_MAX_H);
				return -EINVAL;
			}
			break;
		case OPT_METRICS_PATH:
		case OPT_LOG_PATH:
			if (!*optarg || strlen(optarg) >= CLI_PATH_MAX) {
				snprintf(err, err_size, "--%s: bad path '%s'",
					 c == OPT_LOG_PATH ? "log-path" : "metrics-path", optarg);
				return -EINVAL;
			}
			if (c == OPT_LOG_PATH)
				o->log_path = optarg;
			else
				o->metrics_path = optarg;
			break;
		case OPT_LEVEL:
			if (log_level_parse(optarg, &o->level)) {
				snprintf(err, err_size,
					 "--level: unknown level '%s' (want Error, Warning, Info, "
					 "Debug, Trace or Off)",
					 optarg);
				return -EINVAL;
			}
			o->has_level = true;
			break;
		case OPT_CONTROL:
			if (!*optarg || strlen(optarg) >= 108) {
				snprintf(err, err_size,
					 "--control: bad socket path '%s' (1 to 107 bytes)",
					 optarg);
				return -EINVAL;
			}
			o->control_path = optarg;
			break;
		case OPT_RESTORE:
		case OPT_SNAPSHOT_DIR:
			if (!*optarg || strlen(optarg) >= CLI_PATH_MAX - 64) {
				snprintf(err, err_size, "--%s: bad directory '%s'",
					 c == OPT_RESTORE ? "restore" : "snapshot-dir", optarg);
				return -EINVAL;
			}
			if (c == OPT_RESTORE)
				o->restore_dir = optarg;
			else
				o->snapshot_dir = optarg;
			break;
		case OPT_KERNEL:
			o->kernel = optarg;
			break;
		case OPT_INITRD:
			o->initrd = optarg;
			break;
		case OPT_DISK:
			if (o->m.nr_disks >= CLI_MAX_DISKS) {
				snprintf(err, err_size, "too many --disk options (at most %d)",
					 CLI_MAX_DISKS);
				return -EINVAL;
			}
			if (parse_disk(optarg, &o->m.disks[o->m.nr_disks])) {
				snprintf(err, err_size,
					 "--disk: bad value '%s' (want "
					 "PATH[,ro][,bw=RATE][,iops=N])",
					 optarg);
				return -EINVAL;
			}
			o->m.nr_disks++;
			break;
		case OPT_CMDLINE:
			o->cmdline = optarg;
			break;
		case OPT_APPEND:
			o->append = optarg;
			break;
		case OPT_GUEST:
			if (!cli_guest(optarg)) {
				snprintf(err, err_size,
					 "--guest: '%s' is not one of min, stock, gui, gui-stock, "
					 "browser",
					 optarg);
				return -EINVAL;
			}
			o->guest = optarg;
			break;
		case OPT_SMP:
			if (parse_uint(optarg, 1, 32, &v)) {
				snprintf(err, err_size, "--smp: '%s' is not a number from 1 to 32",
					 optarg);
				return -EINVAL;
			}
			o->m.smp = (unsigned)v;
			break;
		case OPT_MEM:
			if (parse_uint(optarg, 16, 1048576, &v)) {
				snprintf(err, err_size,
					 "--mem: '%s' is not a size in MiB from 16 to 1048576",
					 optarg);
				return -EINVAL;
			}
			o->m.mem_mib = v;
			mem_given = true;
			break;
		case OPT_NO_ACPI:
			o->m.no_acpi = true;
			break;
		case OPT_CPU_TEMPLATE:
			if (cpuid_parse_template(optarg, &o->m.cpu_template)) {
				snprintf(err, err_size,
					 "--cpu-template: '%s' is not auto, host or "
					 "no-pv-hypercalls",
					 optarg);
				return -EINVAL;
			}
			break;
		case OPT_NO_RNG:
			o->m.no_rng = true;
			break;
		case OPT_HUGE_PAGES:
			o->m.huge_pages = true;
			break;
		case OPT_BALLOON: {
			const char *a = optarg;

			/* "--balloon step=64" as well as "--balloon=step=64". */
			if (!a && optind < argc &&
			    (!strncmp(argv[optind], "step=", 5) ||
			     !strncmp(argv[optind], "stats=", 6)))
				a = argv[optind++];
			o->m.balloon = true;
			o->m.balloon_deflate_on_oom = true;
			o->m.balloon_stats_s = 5;
			if (a && parse_balloon(a, o)) {
				snprintf(err, err_size,
					 "--balloon: bad value '%s' (want step=MiB,stats=SEC with "
					 "step 1 to 1048576 and stats 0 to 3600)",
					 a);
				return -EINVAL;
			}
			break;
		}
		case OPT_MMDS:
			if (o->mmds_file[0] || parse_mmds(optarg, o)) {
				snprintf(err, err_size,
					 "--mmds: bad or repeated value '%s' (want FILE[,v1|v2]"
					 "[,addr=IP][,eth=N]... with IP in 169.254.0.0/16, N "
					 "0 to %d)",
					 optarg, MACHINE_MAX_NETS - 1);
				return -EINVAL;
			}
			break;
		case OPT_VSOCK:
			if (o->m.vsock_path[0]) {
				snprintf(err, err_size, "--vsock given twice (one device at most)");
				return -EINVAL;
			}
			if (parse_vsock(optarg, o)) {
				snprintf(err, err_size,
					 "--vsock: bad value '%s' (want CID,PATH with CID 3 to "
					 "4294967294 and PATH at most 96 bytes)",
					 optarg);
				return -EINVAL;
			}
			break;
		case OPT_NET:
			if (o->m.nr_nets >= CLI_MAX_NETS) {
				snprintf(err, err_size, "too many --net options (at most %d)",
					 CLI_MAX_NETS);
				return -EINVAL;
			}
			if (parse_net(optarg, &o->m.nets[o->m.nr_nets], err, err_size))
				return -EINVAL;
			o->m.nr_nets++;
			break;
		case OPT_MAC:
			if (parse_mac(optarg, mac)) {
				snprintf(err, err_size,
					 "--mac: bad value '%s' (want a unicast XX:XX:XX:XX:XX:XX)",
					 optarg);
				return -EINVAL;
			}
			has_mac = true;
			break;
		case OPT_NO_SECCOMP:
			o->no_seccomp = true;
			break;
		case OPT_CHROOT:
			if (!*optarg || strlen(optarg) >= CLI_PATH_MAX) {
				snprintf(err, err_size, "--chroot: bad directory '%s'", optarg);
				return -EINVAL;
			}
			o->chroot_dir = optarg;
			break;
		case OPT_UID:
		case OPT_GID:
			/* (uid_t)-1 means "unchanged" to setresuid(): not a user. */
			if (parse_uint(optarg, 0, 0xfffffffeull, &v)) {
				snprintf(err, err_size,
					 "--%s: '%s' is not a number from 0 to 4294967294",
					 c == OPT_UID ? "uid" : "gid", optarg);
				return -EINVAL;
			}
			if (c == OPT_UID) {
				o->uid = (uint32_t)v;
				o->has_uid = true;
			} else {
				o->gid = (uint32_t)v;
				o->has_gid = true;
			}
			break;
		case OPT_NEW_NS:
			if (parse_new_ns(optarg, &o->new_ns)) {
				snprintf(err, err_size,
					 "--new-ns: bad value '%s' (want a comma-separated subset "
					 "of "
					 "mount,pid,net)",
					 optarg);
				return -EINVAL;
			}
			break;
		case 'h':
			o->help = true;
			return 0;
		case ':':
			snprintf(err, err_size, "option '%s' needs a value", argv[optind - 1]);
			return -EINVAL;
		default:
			snprintf(err, err_size, "unknown option '%s' (see --help)",
				 argv[optind - 1]);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		snprintf(err, err_size, "unexpected argument '%s' (see --help)", argv[optind]);
		return -EINVAL;
	}
	if (has_mac) {
		if (!o->m.nr_nets) {
			snprintf(err, err_size, "--mac needs --net");
			return -EINVAL;
		}
		if (!o->m.nets[0].has_mac) {
			memcpy(o->m.nets[0].mac, mac, sizeof(mac));
			o->m.nets[0].has_mac = true;
		}
	}
	if (o->m.huge_pages && o->m.mem_mib % 2) {
		snprintf(err, err_size,
			 "--huge-pages: --mem must be a multiple of 2 MiB (2 MiB pages)");
		return -EINVAL;
	}
	if (o->restore_dir && shaping) {
		snprintf(err, err_size,
			 "--%s cannot be used with --restore: the snapshot fixes the machine (only "
			 "--disk, --net and --vsock may replace its back ends)",
			 shaping);
		return -EINVAL;
	}
	/* The GUI flags imply each other: a front end needs the GPU, the GPU a front end. */
	const struct cli_guest *guest = cli_guest(o->guest);
	bool desktop = guest->desktop;

	if (desktop && !o->kernel)
		o->m.gpu = true;
	if (guest->mem_mib && !o->kernel && !mem_given)
		o->m.mem_mib = guest->mem_mib;
	if (gui_given || o->ui.vnc)
		o->m.gpu = true;
	if (o->m.gpu && o->ui.mode == UI_NONE)
		o->ui.mode = UI_HEADLESS;
	if (o->m.gpu && !o->m.gpu_width) {
		o->m.gpu_width = 1280;
		o->m.gpu_height = 800;
	}
	/* With --restore the interfaces are the snapshot's: the machine checks them. */
	if (o->mmds_file[0] && !o->restore_dir && o->mmds_ifaces >> o->m.nr_nets) {
		snprintf(err, err_size, "--mmds: eth%d has no --net",
			 31 - __builtin_clz(o->mmds_ifaces));
		return -EINVAL;
	}
	if (o->initrd && !o->kernel) {
		snprintf(err, err_size, "--initrd needs --kernel");
		return -EINVAL;
	}
	if (o->new_ns & CLI_NS_NET) {
		for (int i = 0; i < o->m.nr_nets; i++) {
			if (o->m.nets[i].kind != MACHINE_NET_USER)
				continue;
			/* slirp makes host sockets for the guest's connections as they come; in an
			 * empty network namespace they would reach nothing. */
			snprintf(err, err_size,
				 "--new-ns net cannot be used with --net user (user-mode NAT needs "
				 "the host's network; use --net tap=NAME)");
			return -EINVAL;
		}
	}
	/* Every virtio device needs an interrupt line of its own: too many is a usage error
	 * here, not a failure half-way through building the VM. */
	if (cli_irq_devices(o, !o->kernel) > cli_irq_lines()) {
		snprintf(err, err_size,
			 "too many devices: %u need an interrupt line (disks %d, nets %d, rng %d, "
			 "vsock %d, balloon %d, gpu+input %d) and there are %u",
			 cli_irq_devices(o, !o->kernel),
			 o->m.nr_disks ? o->m.nr_disks
			 : o->kernel   ? 0
				       : 1,
			 o->m.nr_nets, !o->m.no_rng, !!o->m.vsock_path[0], o->m.balloon,
			 3 * o->m.gpu, cli_irq_lines());
		return -EINVAL;
	}
	return 0;
}
