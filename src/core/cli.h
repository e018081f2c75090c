/* Command-line parsing for `ignition run` (pure: no KVM, unit-tested). */
#ifndef IGNITION_CORE_CLI_H
#define IGNITION_CORE_CLI_H

#include "arch/x86/cpuid.h"
#include "net/slirp.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CLI_MAX_DISKS 16

#define CLI_PATH_MAX 4096

struct cli_disk {
	char path[CLI_PATH_MAX];
	bool read_only;
};

#define CLI_MAX_NETS 4

/* --net user[,hostfwd=...][,host-loopback=on|off][,restricted=on|off][,mac=...]
 *     | tap=NAME[,mac=...] */
enum cli_net_kind { CLI_NET_USER, CLI_NET_TAP };

struct cli_net {
	enum cli_net_kind kind;
	char tap[16]; /* interface name (IFNAMSIZ) */
	bool has_mac; /* mac= given (or --mac for the first --net) */
	uint8_t mac[6];
	struct net_slirp_fwd fwd[NET_SLIRP_MAX_FWD];
	int nr_fwd;
	unsigned slirp_flags; /* NET_SLIRP_HOST_LOOPBACK, NET_SLIRP_RESTRICTED (user only) */
};

struct cli_opts {
	const char *kernel; /* NULL: the default guest from guest/out/ */
	const char *initrd;
	const char *cmdline; /* replaces the default command line */
	const char *append;  /* appended to the command line */
	const char *guest;   /* default guest flavour: "min" or "stock" */
	struct cli_disk disks[CLI_MAX_DISKS];
	int nr_disks;
	unsigned smp;
	uint64_t mem_mib;
	bool no_acpi;
	bool no_rng;		   /* --no-rng: leave out the virtio-rng device */
	bool balloon;		   /* --balloon[=step=MiB,stats=SEC] */
	uint32_t balloon_step_mib; /* Ctrl-A b step; 0: the default (128) */
	uint32_t balloon_stats_s;  /* seconds between statistics requests, 0: on demand only */
	uint32_t vsock_cid;	   /* --vsock CID,PATH: guest CID (>= 3) */
	const char *vsock_path;	   /* host Unix socket path; NULL: no vsock device */
	struct cli_net nets[CLI_MAX_NETS]; /* --net, in order: eth0, eth1... */
	int nr_nets;
	enum cpu_template cpu_template;
	bool no_seccomp;	/* --no-seccomp: run without the per-thread filters */
	const char *chroot_dir; /* --chroot DIR, or NULL */
	bool has_uid, has_gid;	/* --uid N, --gid N given */
	uint32_t uid, gid;
	unsigned new_ns; /* --new-ns: CLI_NS_* bits */
	bool help;
};

/* --new-ns LIST: namespaces to enter (docs/architecture.md, "Process hardening"). */
#define CLI_NS_MOUNT 1u
#define CLI_NS_PID   2u
#define CLI_NS_NET   4u

/* Devices that take an interrupt line (GSI) of their own: every virtio device (disks, nets,
 * rng unless --no-rng, vsock, balloon).  `default_disk`: a root disk will be added (no
 * --kernel and no --disk: the default guest's rootfs). */
unsigned cli_irq_devices(const struct cli_opts *o, bool default_disk);
/* Interrupt lines there are for such devices: GSIs LAYOUT_GSI_FIRST..LAST minus the RTC's. */
unsigned cli_irq_lines(void);

/* Parse argv (after the "run" word).  Returns 0, or -EINVAL with a one-line reason in err. */
int cli_parse(int argc, char **argv, struct cli_opts *o, char *err, size_t err_size)
	__attribute__((warn_unused_result));
/* The --help text. */
extern const char cli_usage[];

#endif
