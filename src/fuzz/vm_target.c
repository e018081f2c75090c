/* The VM behind `ignition fuzz` (vm_target.h, docs/fuzzing.md "The VM target").
 *
 * One vCPU runs the harness under vm_run() on a thread of its own; the engine's thread drives it:
 *   - boot until the harness rings SNAPSHOT_ME; the vCPU thread (in the exit hook, the MMIO
 *     write complete) asks for a pause of itself and wakes the engine, which waits until the
 *     vCPU is parked and takes the in-memory checkpoint there (checkpoint.h);
 *   - each run: reset the VM to the checkpoint (not for the first run, which starts there),
 *     write the input and its length into the fuzz device, let the vCPU go, and wait for DONE
 *     or CRASH (a doorbell, handled as SNAPSHOT_ME), a guest panic (the kernel reboots:
 *     panic=-1 reboot=k, caught through the VM's power hook), the harness exiting (the guest
 *     powers off) or the time limit (then the engine pauses the vCPU itself: a hang);
 *   - the coverage map is the device's coverage window, which the guest writes directly.
 * The reset rewrites only the pages dirtied since the checkpoint (--track-dirty is implied),
 * reloads vCPU and device state and keeps no VMGenID change, so every run starts from the same
 * state.
 * With --checkpoint DIR the VM at SNAPSHOT_ME is also written to DIR as a snapshot, and a later
 * session naming the same DIR restores it instead of booting: the vCPU stays parked until the
 * first run, and the restored memory file is the checkpoint's memory. */
#include "fuzz/vm_target.h"

#include "core/machine.h"
#include "core/vcpu.h"
#include "devices/fuzz.h"
#include "snapshot/checkpoint.h"
#include "snapshot/snapshot.h"
#include "util/guest_files.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Booting to the harness's SNAPSHOT_ME: a minute or two where guest kernel code is emulated
 * (kvm_pvm hosts), seconds elsewhere. */
#define BOOT_TIMEOUT_MS (15u * 60u * 1000u)
/* Crash codes of ours, beside the guest library's (devices/fuzz.h). */
#define CRASH_KERNEL_PANIC 0x200u /* the guest kernel panicked (it reboots: panic=-1) */
#define CRASH_HARNESS_EXIT 0x201u /* the harness ended (the guest powered off) */

enum event { EV_NONE, EV_SNAPSHOT_ME, EV_DONE, EV_CRASH };

struct vm_target {
	struct machine m;
	struct checkpoint ck;
	pthread_t runner;
	bool running;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	enum event ev; /* what stopped the vCPU last (under lock) */
	uint32_t code;
	bool vm_gone;		 /* vm_run returned */
	enum fuzz_doorbell bell; /* the doorbell the current exit rang (vCPU thread) */
	uint32_t bell_code;	 /* its CRASH_CODE */
	bool at_checkpoint;	 /* the VM is at the checkpoint, not run since */
	uint32_t timeout_ms;
	uint8_t *in;
	size_t in_size;
	uint64_t resets, pages; /* reset statistics */
	int console_fd;
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* From the vCPU thread: stop here (park once back in the loop) and tell the engine why. */
static void stop_here(struct vm_target *vt, enum event ev, uint32_t code)
{
	vm_pause_request(&vt->m.vm);
	pthread_mutex_lock(&vt->lock);
	if (vt->ev == EV_NONE) {
		vt->ev = ev;
		vt->code = code;
	}
	pthread_cond_broadcast(&vt->cond);
	pthread_mutex_unlock(&vt->lock);
}

/* Inside the doorbell's MMIO exit: note it, and ask for the exit hook (the write completes
 * first, so the checkpoint sees the guest past it). */
static void on_doorbell(void *ctx, enum fuzz_doorbell cmd, uint32_t code)
{
	struct vm_target *vt = ctx;

	vt->bell = cmd;
	vt->bell_code = code;
	if (!vcpu_request_exit())
		log_warn("fuzz: doorbell %d outside a vCPU exit", (int)cmd);
}

static void on_exit_hook(void *ctx, struct vcpu *v)
{
	struct vm_target *vt = ctx;
	(void)v;

	switch (vt->bell) {
	case FUZZ_DOORBELL_SNAPSHOT_ME:
		stop_here(vt, EV_SNAPSHOT_ME, 0);
		break;
	case FUZZ_DOORBELL_DONE:
		stop_here(vt, EV_DONE, 0);
		break;
	case FUZZ_DOORBELL_CRASH:
		stop_here(vt, EV_CRASH, vt->bell_code);
		break;
	}
}

/* The guest reset (a kernel panic with panic=-1 reboot=k) or powered off (the harness's /init
 * when the harness ends): a crash of this input, and the VM lives on for the reset. */
static bool on_power(void *ctx, enum vm_stop_reason reason)
{
	struct vm_target *vt = ctx;

	if (reason != VM_STOP_REBOOT && reason != VM_STOP_POWEROFF)
		return false;
	stop_here(vt, EV_CRASH, reason == VM_STOP_REBOOT ? CRASH_KERNEL_PANIC : CRASH_HARNESS_EXIT);
	return true;
}

static void *runner_main(void *arg)
{
	struct vm_target *vt = arg;
	enum vm_stop_reason r = vm_run(&vt->m.vm);

	pthread_mutex_lock(&vt->lock);
	vt->vm_gone = true;
	pthread_cond_broadcast(&vt->cond);
	pthread_mutex_unlock(&vt->lock);
	if (r == VM_STOP_ERROR)
		log_error("fuzz: the VM stopped on an error");
	return NULL;
}

/* Wait for the vCPU to stop (an event) for at most ms; then wait until it is parked.
 * EV_NONE on a time-out (the vCPU is then paused by us), -ESHUTDOWN if the VM is gone. */
static int wait_event(struct vm_target *vt, uint32_t ms, enum event *ev, uint32_t *code)
{
	uint64_t deadline = now_ms() + ms;
	struct timespec ts;
	int ret;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&vt->lock);
	while (vt->ev == EV_NONE && !vt->vm_gone && now_ms() < deadline)
		if (pthread_cond_timedwait(&vt->cond, &vt->lock, &ts) == ETIMEDOUT)
			break;
	*ev = vt->ev;
	*code = vt->code;
	ret = vt->vm_gone ? -ESHUTDOWN : 0;
	pthread_mutex_unlock(&vt->lock);
	if (ret)
		return ret;
	if (*ev == EV_NONE) {
		ret = vm_pause(&vt->m.vm); /* a hang: stop it ourselves */
		if (ret && ret != -EALREADY)
			return ret;
		/* It may have rung just before the pause. */
		pthread_mutex_lock(&vt->lock);
		*ev = vt->ev;
		*code = vt->code;
		pthread_mutex_unlock(&vt->lock);
	}
	ret = vm_wait_paused(&vt->m.vm);
	return ret == -EAGAIN ? -EIO : ret;
}

static void clear_event(struct vm_target *vt)
{
	pthread_mutex_lock(&vt->lock);
	vt->ev = EV_NONE;
	vt->code = 0;
	pthread_mutex_unlock(&vt->lock);
}

static int vm_run_input(struct fuzz_target *t, const uint8_t *in, size_t len,
			enum fuzz_outcome *out, uint32_t *code)
{
	struct vm_target *vt = t->ctx;
	enum event ev;
	int ret;

	if (!vt->at_checkpoint) {
		struct reset_stats st;

		ret = checkpoint_reset(&vt->ck, &vt->m, 0, &st, t->err, sizeof(t->err));
		if (ret)
			return ret;
		vt->resets++;
		vt->pages += st.pages;
		fuzz_engine_note_reset_us(t->engine, st.total_us);
	}
	vt->at_checkpoint = false;
	/* After the reset: it brings back the checkpoint's INPUT_LEN. */
	memcpy(vt->in, in, len);
	ret = fuzzdev_set_input_len(vt->m.fuzz, len);
	if (ret) {
		snprintf(t->err, sizeof(t->err), "input of %zu bytes does not fit", len);
		return ret;
	}
	clear_event(vt);
	vm_resume(&vt->m.vm);
	ret = wait_event(vt, vt->timeout_ms, &ev, code);
	if (ret) {
		snprintf(t->err, sizeof(t->err), "the VM stopped (%s)", strerror(-ret));
		return ret;
	}
	switch (ev) {
	case EV_DONE:
		*out = FUZZ_OK;
		break;
	case EV_CRASH:
		*out = FUZZ_CRASH;
		break;
	case EV_NONE:
		*out = FUZZ_HANG;
		break;
	case EV_SNAPSHOT_ME: /* the harness asked again: its loop is broken */
		snprintf(t->err, sizeof(t->err), "the harness rang SNAPSHOT_ME again");
		return -EPROTO;
	}
	return 0;
}

/* The minimal guest's command line for this host (guest/out/cmdline-min: what that kernel
 * needs here) without its root file system, with panics that reboot at once; `quiet`: the
 * harness's output is dropped in the guest (FUZZ_QUIET, guest/fuzz/init.c) unless
 * IGNITION_FUZZ_CONSOLE keeps the console. */
static void default_cmdline(char *out, size_t size, bool quiet)
{
	char dir[PATH_MAX - 32], path[PATH_MAX], line[MACHINE_CMDLINE_MAX];
	size_t n = 0;
	char *save = NULL;

	guest_out_dir(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/cmdline-min", dir);
	if (read_text_line(path, line, sizeof(line)) < 0) {
		/* Without it a kernel that needs host-specific options (kvm_pvm hosts) fails. */
		fprintf(stderr,
			"fuzz: warning: no %s (set IGNITION_GUEST_DIR or pass --cmdline): using a "
			"bare command line\n",
			path);
		snprintf(line, sizeof(line), "console=ttyS0");
	}
	out[0] = '\0';
	for (char *w = strtok_r(line, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
		if (!strncmp(w, "root=", 5) || !strcmp(w, "rw") || !strncmp(w, "panic=", 6) ||
		    !strncmp(w, "reboot=", 7))
			continue;
		n += (size_t)snprintf(out + n, n < size ? size - n : 0, "%s%s", n ? " " : "", w);
	}
	if (n < size)
		snprintf(out + n, size - n, " reboot=k panic=-1 oops=panic%s",
			 quiet ? " FUZZ_QUIET=1" : "");
}

/* `path` made absolute (as given if that fails: opening it will say why). */
static void absolute_path(const char *path, char *out, size_t size)
{
	char buf[PATH_MAX];

	snprintf(out, size, "%s", realpath(path, buf) ? buf : path);
}

/* Why the checkpoint made from file `made` (its state file `since`) does not fit file `given`
 * (--kernel or --initrd, named `what`): a reason in why[], or false when it fits. */
static bool unfit_file(const char *made, const char *given, const char *what,
		       const struct stat *since, char *why, size_t n)
{
	struct stat sm, sg;

	if (stat(made, &sm) < 0 || stat(given, &sg) < 0 || sm.st_dev != sg.st_dev ||
	    sm.st_ino != sg.st_ino) {
		snprintf(why, n, "was made from another %s (%s)", what, made);
		return true;
	}
	if (sg.st_mtim.tv_sec > since->st_mtim.tv_sec ||
	    (sg.st_mtim.tv_sec == since->st_mtim.tv_sec &&
	     sg.st_mtim.tv_nsec > since->st_mtim.tv_nsec)) {
		snprintf(why, n, "is older than the %s %s", what, given);
		return true;
	}
	return false;
}

/* The checkpoint in --checkpoint's directory restored into vt->m and made the in-memory
 * checkpoint, its vCPU not started yet.  Refused when it was made from another kernel, harness,
 * command line or memory size, or before the kernel or harness last changed. */
static int restore_checkpoint(struct vm_target *vt, const struct fuzz_vm_opts *o,
			      const struct machine_config *want, const struct machine_env *env,
			      bool *made, char *err, size_t n)
{
	struct snapshot_overrides ov = { .checkpoint = &vt->ck, .clock_as_saved = true };
	const struct machine_config *got = &vt->m.cfg;
	char state[PATH_MAX], why[PATH_MAX + 64] = "", cmdline[MACHINE_CMDLINE_MAX];
	struct stat st;
	int ret;

	snprintf(state, sizeof(state), "%s/state", o->checkpoint_dir);
	if (stat(state, &st) < 0) {
		ret = -errno;
		snprintf(err, n,
			 "--checkpoint %s: no checkpoint there (%s): delete it or name "
			 "another directory",
			 o->checkpoint_dir, strerror(-ret));
		return ret;
	}
	ret = snapshot_restore(&vt->m, o->checkpoint_dir, &ov, env, err, n);
	if (ret)
		return ret; /* the machine is torn down */
	*made = true;
	if (!vt->m.fuzz) {
		snprintf(err, n,
			 "--checkpoint %s holds a snapshot of a VM without the fuzz device, not a "
			 "checkpoint of ignition fuzz: name another directory",
			 o->checkpoint_dir);
		return -EINVAL;
	}
	if (!unfit_file(got->kernel, o->kernel, "kernel", &st, why, sizeof(why)) &&
	    !unfit_file(got->initrd, o->initrd, "harness", &st, why, sizeof(why))) {
		/* The booted machine's: this session's, plus where the fuzz device is. */
		snprintf(cmdline, sizeof(cmdline), "%s", want->cmdline);
		if (fuzzdev_cmdline(vt->m.fuzz, cmdline, sizeof(cmdline)) ||
		    strcmp(got->cmdline, cmdline))
			snprintf(why, sizeof(why), "was made with another kernel command line");
		else if (got->mem_mib != want->mem_mib)
			snprintf(why, sizeof(why), "was made with --mem %llu",
				 (unsigned long long)got->mem_mib);
	}
	if (why[0]) {
		snprintf(err, n,
			 "--checkpoint %s %s: delete it to make a new one, or name another "
			 "directory",
			 o->checkpoint_dir, why);
		return -ESTALE;
	}
	return checkpoint_take(&vt->ck, &vt->m, err, n);
}

/* Write the VM, parked at SNAPSHOT_ME, to --checkpoint's directory for later sessions. */
static int write_checkpoint(struct vm_target *vt, const char *dir, char *err, size_t n)
{
	struct snapshot_stats st;
	uint64_t t0 = now_ms();
	int ret = snapshot_create(&vt->m, dir, &st, err, n);

	if (ret == -EEXIST || ret == -ENOTEMPTY) {
		/* Another session wrote it meanwhile: that one serves later sessions. */
		fprintf(stderr,
			"fuzz: warning: %s appeared while this session booted: kept as is\n", dir);
		return 0;
	}
	if (ret)
		return ret;
	fprintf(stderr,
		"fuzz: checkpoint written to %s in %llu ms (%llu of %llu MiB of memory): later "
		"sessions with --checkpoint %s start there\n",
		dir, (unsigned long long)(now_ms() - t0),
		(unsigned long long)(st.memory_written >> 20),
		(unsigned long long)(st.memory_bytes >> 20), dir);
	return 0;
}

int fuzz_vm_target_open(const struct fuzz_vm_opts *o, struct fuzz_target *t, char *err, size_t n)
{
	struct machine_config cfg;
	struct machine_env env = { .mem_fd = -1, .track_dirty = true };
	const char *console = getenv("IGNITION_FUZZ_CONSOLE");
	struct vm_target *vt;
	uint8_t *cov;
	size_t cov_size;
	enum event ev;
	uint32_t code;
	uint64_t t0 = now_ms();
	bool restored;
	int ret;

	vt = calloc(1, sizeof(*vt));
	if (!vt) {
		snprintf(err, n, "out of memory");
		return -ENOMEM;
	}
	pthread_condattr_t ca;

	pthread_mutex_init(&vt->lock, NULL);
	/* Time limits are on the monotonic clock (wait_event), not the wall clock. */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&vt->cond, &ca);
	pthread_condattr_destroy(&ca);
	vt->timeout_ms = o->timeout_ms;
	/* The guest's console: IGNITION_FUZZ_CONSOLE=FILE keeps it (debugging a harness). */
	vt->console_fd = open(console && *console ? console : "/dev/null",
			      O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (vt->console_fd < 0) {
		ret = -errno;
		snprintf(err, n, "fuzz: console file: %s", strerror(errno));
		pthread_mutex_destroy(&vt->lock);
		pthread_cond_destroy(&vt->cond);
		free(vt);
		return ret;
	}
	memset(&cfg, 0, sizeof(cfg));
	cfg.mem_mib = o->mem_mib;
	cfg.smp = 1;
	cfg.no_rng = true;
	cfg.fuzz = true;
	/* Absolute: a checkpoint records them, and a later session may run elsewhere. */
	absolute_path(o->kernel, cfg.kernel, sizeof(cfg.kernel));
	absolute_path(o->initrd, cfg.initrd, sizeof(cfg.initrd));
	if (o->cmdline)
		snprintf(cfg.cmdline, sizeof(cfg.cmdline), "%s", o->cmdline);
	else
		default_cmdline(cfg.cmdline, sizeof(cfg.cmdline), !(console && *console));
	env.console_fd = vt->console_fd;
	t->ctx = vt; /* close() frees what exists from here on */
	/* An existing --checkpoint directory is restored instead of a boot. */
	restored = o->checkpoint_dir && access(o->checkpoint_dir, F_OK) == 0;
	if (restored) {
		bool made = false;

		ret = restore_checkpoint(vt, o, &cfg, &env, &made, err, n);
		if (ret && made)
			goto fail;
	} else {
		ret = machine_create(&vt->m, &cfg, &env, err, n);
	}
	if (ret) {
		close(vt->console_fd);
		pthread_mutex_destroy(&vt->lock);
		pthread_cond_destroy(&vt->cond);
		free(vt);
		t->ctx = NULL;
		return ret;
	}
	ret = restored ? 0 : machine_boot(&vt->m, err, n);
	if (ret)
		goto fail;
	fuzzdev_on_doorbell(vt->m.fuzz, on_doorbell, vt);
	vm_set_vcpu_exit_hook(&vt->m.vm, on_exit_hook, vt);
	vt->m.vm.power_hook = on_power;
	vt->m.vm.power_hook_ctx = vt;
	vt->m.vm.clock_as_saved = true;
	fuzzdev_input(vt->m.fuzz, &vt->in, &vt->in_size);
	fuzzdev_coverage(vt->m.fuzz, &cov, &cov_size);
	/* Restored: the vCPU parks before its first instruction, as at SNAPSHOT_ME after a boot. */
	if (restored)
		vm_pause_request(&vt->m.vm);
	ret = pthread_create(&vt->runner, NULL, runner_main, vt);
	if (ret) {
		ret = -ret;
		snprintf(err, n, "fuzz: cannot start the VM: %s", strerror(-ret));
		goto fail;
	}
	vt->running = true;
	if (restored) {
		fprintf(stderr, "fuzz: started from the checkpoint in %s in %llu ms (no boot)\n",
			o->checkpoint_dir, (unsigned long long)(now_ms() - t0));
		goto ready;
	}
	fprintf(stderr, "fuzz: booting %s with %s, waiting for the harness's SNAPSHOT_ME\n",
		o->kernel, o->initrd);
	ret = wait_event(vt, BOOT_TIMEOUT_MS, &ev, &code);
	if (!ret && ev != EV_SNAPSHOT_ME) {
		ret = -EPROTO;
		snprintf(err, n,
			 ev == EV_NONE ? "fuzz: the harness did not ring SNAPSHOT_ME within %u s"
				       : "fuzz: the harness stopped before SNAPSHOT_ME (code %#x)",
			 ev == EV_NONE ? BOOT_TIMEOUT_MS / 1000 : code);
		goto fail;
	}
	if (ret) {
		snprintf(err, n, "fuzz: the VM stopped before the harness rang SNAPSHOT_ME%s",
			 console ? "" : " (IGNITION_FUZZ_CONSOLE=FILE keeps its console)");
		goto fail;
	}
	ret = checkpoint_take(&vt->ck, &vt->m, err, n);
	if (ret)
		goto fail;
	fprintf(stderr, "fuzz: checkpoint at SNAPSHOT_ME after %.1f s\n",
		(double)(now_ms() - t0) / 1000.0);
	if (o->checkpoint_dir && (ret = write_checkpoint(vt, o->checkpoint_dir, err, n)))
		goto fail;
ready:
	vt->at_checkpoint = true;
	t->run = vm_run_input;
	t->cov = cov;
	t->cov_size = cov_size;
	t->max_len = vt->in_size;
	return 0;
fail:
	fuzz_vm_target_close(t);
	return ret ? ret : -EIO;
}

void fuzz_vm_target_close(struct fuzz_target *t)
{
	struct vm_target *vt = t->ctx;

	if (!vt)
		return;
	if (vt->running) {
		vm_request_stop(&vt->m.vm, VM_STOP_QUIT);
		pthread_join(vt->runner, NULL);
	}
	if (vt->resets)
		fprintf(stderr, "fuzz: %llu resets, %.1f dirty pages each on average\n",
			(unsigned long long)vt->resets, (double)vt->pages / (double)vt->resets);
	checkpoint_free(&vt->ck);
	machine_destroy(&vt->m);
	close(vt->console_fd);
	pthread_mutex_destroy(&vt->lock);
	pthread_cond_destroy(&vt->cond);
	free(vt);
	t->ctx = NULL;
}
