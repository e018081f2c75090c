/* A machine: the VM plus its devices, built from a plain description (struct machine_config)
 * that the command line, a snapshot (and later the REST API and config file) fill in.  Boot
 * and restore share machine_create(): one way to add each device, errors returned (never an
 * exit) so a bad restore fails cleanly. */
#ifndef IGNITION_CORE_MACHINE_H
#define IGNITION_CORE_MACHINE_H

#include "api/mmds.h"
#include "arch/x86/cpuid.h"
#include "core/vm.h"
#include "net/slirp.h"
#include "util/ratelimit.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MACHINE_MAX_DISKS   16
#define MACHINE_MAX_NETS    4
#define MACHINE_PATH_MAX    4096
#define MACHINE_CMDLINE_MAX 4096
#define MACHINE_ID_MAX	    64 /* a device's API id (drive_id, iface_id) with its NUL */

struct machine_disk {
	char path[MACHINE_PATH_MAX];
	bool read_only;
	struct ratelimit_cfg rl; /* the disk's rate limiter (none: no limit) */
	/* What the REST API was told about the drive (docs/api.md), kept so that a restored
	 * machine answers for it under the same id; "" / false from the command line. */
	char id[MACHINE_ID_MAX];
	bool root;	   /* is_root_device (only disk 0 can be) */
	char partuuid[64]; /* with root: root=PARTUUID= */
	bool writeback;	   /* cache_type Writeback (else Unsafe) */
	bool async;	   /* io_engine Async (else Sync) */
};

enum machine_net_kind { MACHINE_NET_USER, MACHINE_NET_TAP };

struct machine_net {
	enum machine_net_kind kind;
	char tap[16]; /* interface name (IFNAMSIZ) */
	bool has_mac; /* mac= given (or --mac for the first --net) */
	uint8_t mac[6];
	struct net_slirp_fwd fwd[NET_SLIRP_MAX_FWD];
	int nr_fwd;
	unsigned slirp_flags; /* NET_SLIRP_HOST_LOOPBACK, NET_SLIRP_RESTRICTED (user only) */
	struct ratelimit_cfg rx_rl, tx_rl; /* rate limiters of the two directions */
	char id[MACHINE_ID_MAX];	   /* the REST API's iface_id, or "" (command line) */
};

/* Everything that decides what the guest sees.  Plain data: copied, saved in snapshots. */
struct machine_config {
	uint64_t mem_mib;
	unsigned smp;
	enum cpu_template cpu_template; /* AUTO is resolved by machine_create */
	bool no_acpi;
	struct machine_disk disks[MACHINE_MAX_DISKS];
	int nr_disks;
	struct machine_net nets[MACHINE_MAX_NETS]; /* eth0, eth1... */
	int nr_nets;
	bool no_rng;		     /* leave out the virtio-rng device */
	struct ratelimit_cfg rng_rl; /* the virtio-rng device's rate limiter */
	bool balloon;		     /* a virtio-balloon device */
	bool balloon_deflate_on_oom; /* it offers VIRTIO_BALLOON_F_DEFLATE_ON_OOM */
	uint32_t balloon_step_mib;   /* Ctrl-A b step; 0: the default (128) */
	uint32_t balloon_stats_s;    /* seconds between statistics requests, 0: on demand only */
	uint32_t vsock_cid;	     /* guest CID (>= 3) when vsock_path[0] */
	char vsock_path[MACHINE_PATH_MAX]; /* host Unix socket path; "": no vsock device */
	bool fuzz; /* the fuzz device (docs/fuzzing.md); set by the fuzz mode, not a `run` flag */
	/* A virtio-gpu device (2D, one scanout) with a virtio-input keyboard and tablet
	 * (docs/gui.md); gpu_width x gpu_height is the mode it offers first. */
	bool gpu;
	uint32_t gpu_width, gpu_height;
	/* Guest RAM from 2 MiB hugetlb pages (Firecracker's huge_pages "2M"); mem_mib even. */
	bool huge_pages;
	/* MMDS as the machine serves it (docs/mmds.md; all zero: not served).  machine_create
	 * sets it from the environment's store; a restore whose store has no configuration
	 * serves the saved one (Firecracker keeps the configuration in a snapshot, not the
	 * data). */
	struct mmds_config mmds;
	/* What was booted (informational once running; a restore does not reload it). */
	char kernel[MACHINE_PATH_MAX];
	char initrd[MACHINE_PATH_MAX];
	char cmdline[MACHINE_CMDLINE_MAX];
};

struct serial;
struct boot_timer;
struct virtio_net;
struct virtio_balloon;
struct net_backend;
struct virtio_blk;

/* A disk given as open files instead of its path (a restore's private disk). */
struct machine_disk_fds {
	int fd;	     /* the image, or -1: open machine_disk.path */
	int base_fd; /* >= 0: fd is a copy-on-write overlay over this read-only image */
};
struct vmgenid;
struct fuzzdev;
struct mmds;
struct display;
struct uffd_backend;
struct i8042;
struct virtio_gpu;
struct virtio_input;

/* Run-time settings that are not part of the machine (never saved). */
struct machine_env {
	int console_fd;		/* the serial port's output (stdout) */
	const char *chroot_dir; /* --chroot: vsock_path is inside it; NULL if none */
	int mem_fd;		/* >= 0: guest RAM is a private mapping of this file (restore) */
	/* Guest RAM anonymous and registered with userfaultfd for a page-fault handler to
	 * fill (a restore's Uffd backend, src/core/uffd.h); mem_fd must be -1. */
	bool mem_uffd;
	bool track_dirty; /* --track-dirty: diff snapshots and in-place reset */
	/* NULL, or MACHINE_MAX_DISKS entries: disks built from open files (the machine
	 * duplicates them; cfg.disks[i].path then only says where the disk came from). */
	const struct machine_disk_fds *disk_fds;
	/* NULL, or the metadata service to serve on the interfaces its config names (user
	 * networking only; owned by the caller, outlives the machine). */
	struct mmds *mmds;
};

struct machine {
	struct vm vm;
	struct machine_config cfg;
	struct serial *uart;
	struct vmgenid *vmgenid; /* a restore starts a new generation */
	struct boot_timer *boot_timer;
	struct i8042 *i8042; /* the keyboard controller: SendCtrlAltDel types through it */
	struct virtio_net *nets[MACHINE_MAX_NETS]; /* eth0...; Ctrl-A n toggles eth0's link */
	struct virtio_balloon *balloon;
	struct fuzzdev *fuzz; /* cfg.fuzz's device, else NULL */
	/* cfg.gpu's devices and the display the GPU draws into (front ends read it), else NULL. */
	struct display *display;
	struct virtio_gpu *gpu;
	struct virtio_input *kbd, *tablet;
	struct net_backend *backends[MACHINE_MAX_NETS]; /* until their device owns them */
	bool tap_mmds; /* a TAP back end serves MMDS through a private slirp (seccomp) */
	struct virtio_blk *disks[MACHINE_MAX_DISKS]; /* cfg.disks[i]'s device */
	/* A restore's private disks (unlinked files: a copy, or a copy-on-write overlay whose
	 * base the device holds), open while the machine lives; -1 where none. */
	int private_fds[MACHINE_MAX_DISKS];
	/* The snapshot this VM's memory was last equal to (restored from, or last written),
	 * absolute, and its identity: with dirty tracking, the next snapshot is a Diff over it.
	 * "" when there is none (a boot, before its first snapshot). */
	char snap_parent[MACHINE_PATH_MAX];
	uint8_t snap_id[16];
	char cwd[MACHINE_PATH_MAX]; /* at creation: makes relative snapshot paths absolute */
	struct uffd_backend *uffd;  /* the page-fault handler serving RAM (a Uffd load), or NULL */
};

/* Open the network back ends (first: a missing privilege or a taken port is reported before
 * any VM exists), create the VM and add every device in the one fixed order that decides MMIO
 * windows and GSIs.  On failure *m is torn down and err holds one line; returns -errno, with
 * -EBUSY for a disk locked by another process and -EINVAL for a bad configuration. */
int machine_create(struct machine *m, const struct machine_config *cfg,
		   const struct machine_env *env, char *err, size_t err_size)
	__attribute__((warn_unused_result));
/* Load the kernel (and initrd), build the MP and ACPI tables or the device command line,
 * the zero page and page tables, and create the vCPUs at the kernel's entry. */
int machine_boot(struct machine *m, char *err, size_t err_size) __attribute__((warn_unused_result));
/* Free everything (safe on a partly created machine). */
void machine_destroy(struct machine *m);

/* In-place reset of the disks (virtio_blk_checkpoint/rollback on every writable disk; with
 * the VM paused and the devices quiesced, on the event loop).  Every disk is tried; the first
 * error is returned.  After a checkpoint error treat the machine as having no disk checkpoint;
 * after a rollback error the failed disks are partly rolled back (the guest must not resume on
 * them; a retry redoes them). */
int machine_disks_checkpoint(struct machine *m) __attribute__((warn_unused_result));
int machine_disks_rollback(struct machine *m) __attribute__((warn_unused_result));

/* Fill the console's way into the guest: the UART's receive side (serial_input() and its RX
 * room eventfd), so that the console itself needs no device. */
struct console_port;
void machine_console_port(struct machine *m, struct console_port *port);

/* In-place reset of the disks (checkpoint.c): remember every writable disk's content now /
 * put it back.  0 or the first -errno. */
int machine_disks_checkpoint(struct machine *m) __attribute__((warn_unused_result));
int machine_disks_rollback(struct machine *m) __attribute__((warn_unused_result));

/* The SNAP_REC_MACHINE record: the configuration a restore rebuilds the devices from. */
struct snap_writer;
struct snap_file;
void machine_config_save(const struct machine_config *cfg, struct snap_writer *w);
/* Read and validate it (every string terminated, counts and values in range). */
int machine_config_load(struct machine_config *cfg, const struct snap_file *f, char *err,
			size_t err_size) __attribute__((warn_unused_result));

#endif
