/* Running a built machine the way `ignition run` does (console on stdin/stdout, Ctrl-A keys,
 * guest snapshot requests, the control socket, jail, seccomp, stop signals, teardown): shared
 * by `ignition run` and the Firecracker-compatible mode (src/api/fc_main.c).  Defined in
 * src/core/main.c. */
#ifndef IGNITION_CORE_RUN_H
#define IGNITION_CORE_RUN_H

#include <stdbool.h>

struct machine;
struct cli_opts;
struct ui_opts;

struct run_opts {
	bool restored;	  /* from a snapshot: the restored snapshot is the checkpoint */
	bool track_dirty; /* Ctrl-A c / r */
	bool no_seccomp;
	const char *control_path;    /* --control, or NULL */
	const char *snapshot_dir;    /* --snapshot-dir, or NULL */
	const struct cli_opts *jail; /* --chroot, --uid... (NULL: none) */
	/* The GUI front ends for a machine with a GPU (NULL or UI_NONE with one: headless). */
	const struct ui_opts *ui;
	/* Called on the main thread once everything is set up and the filters are built,
	 * just before the vCPUs start; and before teardown once the VM stopped.  May be NULL. */
	void (*ready)(void *ctx);
	void (*stopping)(void *ctx);
	void *ctx;
};

/* The machine must be created and booted (or restored), and vm_catch_stop_signals() done.
 * Runs it until it stops, tears it down (machine_destroy) and returns the exit status; a
 * start-up error prints one line and exits. */
int run_machine(struct machine *m, const struct run_opts *ro);
/* The in-place checkpoint a restore with dirty tracking fills (snapshot_overrides). */
struct checkpoint *run_checkpoint(void);

#endif
