/* `ignition fuzz` (docs/fuzzing.md, "Command line"): argument parsing (pure, unit-tested) and
 * the subcommand itself, which opens the VM target and runs the engine or one replay. */
#ifndef IGNITION_FUZZ_FUZZ_MAIN_H
#define IGNITION_FUZZ_FUZZ_MAIN_H

#include "fuzz/engine.h"
#include "fuzz/vm_target.h"

#include <stdbool.h>
#include <stddef.h>

/* Input size when --max-len is not given (capped to the target's input window). */
#define FUZZ_DEFAULT_MAX_LEN 4096u
/* Largest --max-len accepted by the parser (the target may take less). */
#define FUZZ_MAX_MAX_LEN (16u << 20)

struct fuzz_cli {
	struct fuzz_vm_opts vm;
	struct fuzz_engine_opts eng; /* status/status_ms are set by fuzz_main() */
	const char *replay;	     /* --replay FILE: run it once instead of fuzzing */
	unsigned repeat;	     /* --repeat N (with --replay): run it N times, compare */
	bool no_seccomp;	     /* --no-seccomp: no system call filters (as `ignition run`) */
	bool help;
};

/* Parse argv (argv[0] is "fuzz").  0, or -EINVAL with a one-line reason in err. */
int fuzz_main_parse(int argc, char **argv, struct fuzz_cli *o, char *err, size_t n)
	__attribute__((warn_unused_result));
/* The --help text. */
extern const char fuzz_usage[];
/* How the subcommand opens and closes its target: the VM (vm_target.h), or a fake in tests. */
struct fuzz_main_target {
	int (*open)(const struct fuzz_vm_opts *o, struct fuzz_target *t, char *err, size_t n);
	void (*close)(struct fuzz_target *t);
	/* Seccomp (docs/fuzzing.md, "Process hardening"): the filters are built before open(),
	 * whose VM threads install theirs as `ignition run`'s do, and the calling thread (the
	 * host loop) installs SECCOMP_THREAD_FUZZ's once the VM is up and every input file is
	 * read.  False for an in-process target (the unit tests), or with --no-seccomp. */
	bool seccomp;
};

/* `ignition fuzz ...` (argv[0] is "fuzz") on the VM target: the process exit status (0 fuzzing
 * done or a replayed input ran fine, 1 a replayed crash or hang, 2 bad usage, 3 an error). */
int fuzz_main(int argc, char **argv);
/* The same on another target (the summary and replay line go to stdout, the rest to stderr). */
int fuzz_main_with(int argc, char **argv, const struct fuzz_main_target *target);

#endif
