/* Command-line parsing for `ignition run` (pure: no KVM, unit-tested). */
#ifndef IGNITION_CORE_CLI_H
#define IGNITION_CORE_CLI_H

#include "arch/x86/cpuid.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CLI_MAX_DISKS 16

#define CLI_PATH_MAX 4096

struct cli_disk {
	char path[CLI_PATH_MAX];
	bool read_only;
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
	enum cpu_template cpu_template;
	bool help;
};

/* Parse argv (after the "run" word).  Returns 0, or -EINVAL with a one-line reason in err. */
int cli_parse(int argc, char **argv, struct cli_opts *o, char *err, size_t err_size)
	__attribute__((warn_unused_result));
/* The --help text. */
extern const char cli_usage[];

#endif
