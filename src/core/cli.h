/* Command-line parsing for `ignition run` (pure: no KVM, unit-tested). */
#ifndef IGNITION_CORE_CLI_H
#define IGNITION_CORE_CLI_H

#include "arch/x86/cpuid.h"
#include "core/machine.h"
#include "net/slirp.h"
#include "ui/ui.h"
#include "util/log.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CLI_MAX_DISKS MACHINE_MAX_DISKS
#define CLI_MAX_NETS  MACHINE_MAX_NETS
#define CLI_PATH_MAX  MACHINE_PATH_MAX

/* A default guest (--guest): its files in guest/out/ and what it implies. */
struct cli_guest {
	const char *name;
	const char *kernel; /* file names in guest/out/ */
	const char *initrd; /* NULL: none */
	const char *rootfs;
	const char *cmdline; /* the kernel command line's file */
	const char *make;    /* the make target that builds the files */
	bool desktop;	     /* has a display (--gui=headless unless told otherwise) */
	bool read_only;	     /* its root disk is attached read-only */
	unsigned mem_mib;    /* RAM unless --mem says otherwise; 0: the default */
};

/* The default guest called `name`, or NULL. */
const struct cli_guest *cli_guest(const char *name);

struct cli_opts {
	const char *kernel; /* NULL: the default guest from guest/out/ */
	const char *initrd;
	const char *cmdline; /* replaces the default command line */
	const char *append;  /* appended to the command line */
	const char *guest;   /* the default guest's name (cli_guest) */
	/* The machine: --disk, --net (eth0, eth1...), --smp, --mem, --no-acpi, --no-rng,
	 * --balloon, --vsock, --cpu-template.  Its kernel/initrd/cmdline are filled by main
	 * from the fields above. */
	struct machine_config m;
	bool no_seccomp;	/* --no-seccomp: run without the per-thread filters */
	const char *chroot_dir; /* --chroot DIR, or NULL */
	bool has_uid, has_gid;	/* --uid N, --gid N given */
	uint32_t uid, gid;
	unsigned new_ns;	  /* --new-ns: CLI_NS_* bits */
	const char *restore_dir;  /* --restore DIR: resume a snapshot instead of booting */
	const char *snapshot_dir; /* --snapshot-dir DIR: where Ctrl-A s writes */
	const char *control_path; /* --control PATH: the line-JSON control socket */
	bool track_dirty;	  /* --track-dirty: diff snapshots, Ctrl-A c / r */
	/* --mmds FILE[,v1|v2][,addr=IP][,eth=N]...: MMDS with FILE's JSON on eth0 or the ethN named
	 * (user networking or TAP). */
	char mmds_file[CLI_PATH_MAX]; /* "": no MMDS */
	unsigned mmds_version;	      /* 1 or 2 */
	uint32_t mmds_ipv4;	      /* host order, in 169.254.0.0/16 */
	unsigned mmds_ifaces;	      /* bit i: ethi serves it (eth=N; default eth0) */
	bool help;
	/* GUI (docs/gui.md): --gui[=sdl|headless], --vnc [ADDR:]PORT[,password-file=F], --gpu WxH.
	 * Any of them adds the GPU and input devices (m.gpu). */
	struct ui_opts ui;
	char vnc_password_file[CLI_PATH_MAX]; /* "": no password */
	/* Metrics and logger (docs/metrics.md). */
	const char *metrics_path; /* --metrics-path P: file or FIFO for the metrics lines */
	const char *log_path;	  /* --log-path P: file or FIFO instead of stderr */
	bool has_level;		  /* --level L given */
	enum log_level level;
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
