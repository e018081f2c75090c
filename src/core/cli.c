#include "core/cli.h"

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
	"                       default guest's minimal kernel from guest/out/)\n"
	"  --initrd PATH        initial ramdisk to load with the kernel\n"
	"  --disk PATH[,ro]     raw disk image as a virtio-blk device; repeatable, the first is\n"
	"                       the root disk (/dev/vda); ',ro' makes it read-only\n"
	"  --cmdline STR        kernel command line, replacing the default one\n"
	"  --append STR         text appended to the kernel command line\n"
	"  --guest min|stock    which default guest to boot when --kernel is not given:\n"
	"                       the minimal kernel (default) or Debian's stock cloud kernel\n"
	"  --smp N              number of vCPUs, 1 to 32 (default 1)\n"
	"  --mem MiB            guest RAM in MiB, 16 to 1048576 (default 256)\n"
	"  --no-acpi            no ACPI tables; describe virtio-mmio devices on the command line\n"
	"                       (virtio_mmio.device=...) for kernels built that way\n"
	"  --cpu-template T     auto (default), host, or no-pv-hypercalls: hide the KVM PV\n"
	"                       features that make the guest issue hypercalls (CPUID 0x40000001\n"
	"                       PV_UNHALT, PV_TLB_FLUSH, PV_SEND_IPI, PV_SCHED_YIELD); 'auto'\n"
	"                       picks no-pv-hypercalls on hosts whose KVM is kvm_pvm\n"
	"  -h, --help           show this help\n"
	"\n"
	"Console keys: Ctrl-A x quits, Ctrl-A h lists keys, Ctrl-A Ctrl-A sends Ctrl-A.\n"
	"Exit status: 0 when the guest powers off or reboots or you quit, 1 on a VM error,\n"
	"2 on bad usage.  Set IGNITION_LOG=info or debug for diagnostics on stderr.\n";

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

static int parse_disk(const char *arg, struct cli_disk *d)
{
	const char *comma = strrchr(arg, ',');
	size_t len = strlen(arg);

	d->read_only = false;
	if (comma && (!strcmp(comma, ",ro") || !strcmp(comma, ",rw"))) {
		d->read_only = comma[1] == 'r' && comma[2] == 'o';
		len = (size_t)(comma - arg);
	}
	if (len == 0 || len >= sizeof(d->path))
		return -EINVAL;
	memcpy(d->path, arg, len);
	d->path[len] = '\0';
	return 0;
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
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	unsigned long long v;
	int c;

	memset(o, 0, sizeof(*o));
	o->smp = 1;
	o->mem_mib = 256;
	o->guest = "min";
	o->cpu_template = CPU_TEMPLATE_AUTO;
	optind = 0; /* reset getopt (GNU: 0 also re-initialises) so tests can call this twice */
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case OPT_KERNEL:
			o->kernel = optarg;
			break;
		case OPT_INITRD:
			o->initrd = optarg;
			break;
		case OPT_DISK:
			if (o->nr_disks >= CLI_MAX_DISKS) {
				snprintf(err, err_size, "too many --disk options (at most %d)",
					 CLI_MAX_DISKS);
				return -EINVAL;
			}
			if (parse_disk(optarg, &o->disks[o->nr_disks])) {
				snprintf(err, err_size, "--disk: bad value '%s' (want PATH[,ro])",
					 optarg);
				return -EINVAL;
			}
			o->nr_disks++;
			break;
		case OPT_CMDLINE:
			o->cmdline = optarg;
			break;
		case OPT_APPEND:
			o->append = optarg;
			break;
		case OPT_GUEST:
			if (strcmp(optarg, "min") && strcmp(optarg, "stock")) {
				snprintf(err, err_size, "--guest: '%s' is not 'min' or 'stock'",
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
			o->smp = (unsigned)v;
			break;
		case OPT_MEM:
			if (parse_uint(optarg, 16, 1048576, &v)) {
				snprintf(err, err_size,
					 "--mem: '%s' is not a size in MiB from 16 to 1048576",
					 optarg);
				return -EINVAL;
			}
			o->mem_mib = v;
			break;
		case OPT_NO_ACPI:
			o->no_acpi = true;
			break;
		case OPT_CPU_TEMPLATE:
			if (cpuid_parse_template(optarg, &o->cpu_template)) {
				snprintf(err, err_size,
					 "--cpu-template: '%s' is not auto, host or "
					 "no-pv-hypercalls",
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
	if (o->initrd && !o->kernel) {
		snprintf(err, err_size, "--initrd needs --kernel");
		return -EINVAL;
	}
	return 0;
}
