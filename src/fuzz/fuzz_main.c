#include "fuzz/fuzz_main.h"

#include "core/seccomp.h"
#include "util/log.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char fuzz_usage[] =
	"Usage: ignition fuzz --kernel PATH --initrd HARNESS.cpio [OPTIONS]\n"
	"Fuzz a program inside a microVM: boot the harness once, checkpoint the VM where it\n"
	"reads its input, then for each input write it, roll the VM back to the checkpoint and\n"
	"run it; keep inputs that reach new coverage, save the ones that crash or hang.\n"
	"\n"
	"Options:\n"
	"  --kernel PATH        guest kernel (bzImage or ELF vmlinux)\n"
	"  --initrd PATH        initramfs with the harness (built with guest/fuzz/)\n"
	"  --mem MIB            guest RAM in MiB, 16 to 1048576 (default 256)\n"
	"  --cmdline S          kernel command line (default: the minimal guest's for this\n"
	"                       host, guest/out/cmdline-min, without its root device, plus\n"
	"                       reboot=k panic=-1 oops=panic FUZZ_QUIET=1)\n"
	"  --seed DIR           initial corpus: every non-empty regular file in DIR, cut to\n"
	"                       --max-len (default: one built-in 8-byte input)\n"
	"  --corpus DIR         also write every kept input to DIR, named by its content hash\n"
	"                       (created if missing)\n"
	"  --solutions DIR      where crashing and hanging inputs go (default ./solutions,\n"
	"                       created if missing): crash-HASH / hang-HASH and HASH.json\n"
	"                       metadata, one per distinct coverage (HASH: of the coverage)\n"
	"  --dict FILE          dictionary of tokens, AFL/libFuzzer format: name=\"value\"\n"
	"                       lines, \\xNN escapes\n"
	"  --runs N             stop after N executions, seeds included\n"
	"  --time S             stop after S seconds\n"
	"  --until-crash        stop at the first crash (its input is in --solutions)\n"
	"  --max-len N          largest input in bytes (default 4096, at most the harness's\n"
	"                       input window)\n"
	"  --seed-value N       seed of the mutator's random numbers, 0 to 2^63-1 (default:\n"
	"                       from the clock; printed at the start and in the summary)\n"
	"  --timeout-ms N       a run longer than N ms is a hang, 1 to 3600000 (default 1000)\n"
	"  --replay FILE        run FILE once and print its outcome instead of fuzzing:\n"
	"                       'ok|crash code=N|hang len=N edges=N edges_hash=HEX'; only\n"
	"                       --kernel, --initrd, --mem, --cmdline, --timeout-ms, --repeat,\n"
	"                       --checkpoint, --no-seccomp go with it\n"
	"  --repeat N           with --replay: run the input N times (1 to 100000), each from the\n"
	"                       checkpoint, and say whether every run had the same outcome and\n"
	"                       coverage: 'stable: N runs' or 'unstable: K different results\n"
	"                       in N runs' (exit status 1)\n"
	"  --checkpoint DIR     keep the VM at the harness's SNAPSHOT_ME as a snapshot in DIR:\n"
	"                       the first session boots and writes it there, later ones\n"
	"                       (fuzzing or --replay) restore it instead of booting; refused\n"
	"                       if made from another kernel, harness, --cmdline or --mem,\n"
	"                       or before the kernel or harness last changed\n"
	"  --no-seccomp         no system call filters (every thread is filtered by default,\n"
	"                       as for 'ignition run')\n"
	"  -h, --help           show this help\n"
	"\n"
	"Crash codes: 1 to 64 a fatal signal, 256 a sanitizer's report (guest/fuzz/fuzz.h),\n"
	"512 a guest kernel panic, 513 the harness ended (the guest powered off), 4096 and up\n"
	"the harness's own.  IGNITION_FUZZ_CONSOLE=FILE keeps the guest's console in FILE.\n"
	"\n"
	"While fuzzing, a status line goes to stderr every second:\n"
	"  #EXECS execs/s=N corpus=N edges=N crashes=N hangs=N elapsed=Ns\n"
	"and at the end one JSON line to stdout: execs, execs_per_s, corpus, edges, crashes,\n"
	"unique_crashes, hangs, unique_hangs, elapsed_s, seed, max_len, stop (runs, time,\n"
	"crash, signal or error), and reset_us_p50/reset_us_p99 when the VM reported reset\n"
	"times.\n"
	"SIGINT or SIGTERM stops fuzzing after the current run (the summary is still printed);\n"
	"a second one ends ignition at once.\n"
	"Exit status: 0 when fuzzing stopped (crashes found or not) or a replayed input ran\n"
	"fine, 1 when a replayed input crashed or hung, 2 on bad usage, 3 on an error (the VM\n"
	"or a file).\n";

enum {
	OPT_KERNEL = 256,
	OPT_INITRD,
	OPT_MEM,
	OPT_CMDLINE,
	OPT_SEED,
	OPT_CORPUS,
	OPT_SOLUTIONS,
	OPT_DICT,
	OPT_REPLAY,
	OPT_REPEAT,
	OPT_UNTIL_CRASH,
	OPT_RUNS,
	OPT_TIME,
	OPT_MAX_LEN,
	OPT_SEED_VALUE,
	OPT_TIMEOUT_MS,
	OPT_NO_SECCOMP,
	OPT_CHECKPOINT,
};

static int parse_u64(const char *s, unsigned long long min, unsigned long long max,
		     unsigned long long *out)
{
	unsigned long long v;
	char *end;

	if (!*s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

int fuzz_main_parse(int argc, char **argv, struct fuzz_cli *o, char *err, size_t n)
{
	static const struct option opts[] = {
		{ "kernel", required_argument, NULL, OPT_KERNEL },
		{ "initrd", required_argument, NULL, OPT_INITRD },
		{ "mem", required_argument, NULL, OPT_MEM },
		{ "cmdline", required_argument, NULL, OPT_CMDLINE },
		{ "seed", required_argument, NULL, OPT_SEED },
		{ "corpus", required_argument, NULL, OPT_CORPUS },
		{ "solutions", required_argument, NULL, OPT_SOLUTIONS },
		{ "dict", required_argument, NULL, OPT_DICT },
		{ "replay", required_argument, NULL, OPT_REPLAY },
		{ "repeat", required_argument, NULL, OPT_REPEAT },
		{ "until-crash", no_argument, NULL, OPT_UNTIL_CRASH },
		{ "runs", required_argument, NULL, OPT_RUNS },
		{ "time", required_argument, NULL, OPT_TIME },
		{ "max-len", required_argument, NULL, OPT_MAX_LEN },
		{ "seed-value", required_argument, NULL, OPT_SEED_VALUE },
		{ "timeout-ms", required_argument, NULL, OPT_TIMEOUT_MS },
		{ "no-seccomp", no_argument, NULL, OPT_NO_SECCOMP },
		{ "checkpoint", required_argument, NULL, OPT_CHECKPOINT },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *fuzz_only = NULL; /* an option --replay has no use for */
	unsigned long long v;
	int c;

	memset(o, 0, sizeof(*o));
	o->vm.mem_mib = 256;
	o->vm.timeout_ms = 1000;
	optind = 0; /* GNU: 0 re-initialises getopt, so the parser can run twice (tests) */
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		const char *name = NULL;

		for (const struct option *p = opts; p->name; p++)
			if (p->val == c)
				name = p->name;
		switch (c) {
		case OPT_KERNEL:
			o->vm.kernel = optarg;
			break;
		case OPT_INITRD:
			o->vm.initrd = optarg;
			break;
		case OPT_CMDLINE:
			o->vm.cmdline = optarg;
			break;
		case OPT_MEM:
			if (parse_u64(optarg, 16, 1048576, &v))
				goto bad_value;
			o->vm.mem_mib = (uint32_t)v;
			break;
		case OPT_TIMEOUT_MS:
			if (parse_u64(optarg, 1, 3600000, &v))
				goto bad_value;
			o->vm.timeout_ms = (uint32_t)v;
			break;
		case OPT_REPLAY:
			o->replay = optarg;
			break;
		case OPT_NO_SECCOMP:
			o->no_seccomp = true;
			break;
		case OPT_CHECKPOINT:
			if (!*optarg)
				goto bad_value;
			o->vm.checkpoint_dir = optarg;
			break;
		case OPT_UNTIL_CRASH:
			o->eng.until_crash = true;
			fuzz_only = name;
			break;
		case OPT_REPEAT:
			if (parse_u64(optarg, 1, 100000, &v))
				goto bad_value;
			o->repeat = (unsigned)v;
			break;
		case OPT_SEED:
			o->eng.seed_dir = optarg;
			fuzz_only = name;
			break;
		case OPT_CORPUS:
			o->eng.corpus_dir = optarg;
			fuzz_only = name;
			break;
		case OPT_SOLUTIONS:
			o->eng.solutions_dir = optarg;
			fuzz_only = name;
			break;
		case OPT_DICT:
			o->eng.dict_file = optarg;
			fuzz_only = name;
			break;
		case OPT_RUNS:
			if (parse_u64(optarg, 1, UINT64_MAX, &v))
				goto bad_value;
			o->eng.runs = v;
			fuzz_only = name;
			break;
		case OPT_TIME:
			if (parse_u64(optarg, 1, 100u * 365 * 86400, &v))
				goto bad_value;
			o->eng.time_s = (double)v;
			fuzz_only = name;
			break;
		case OPT_MAX_LEN:
			if (parse_u64(optarg, 1, FUZZ_MAX_MAX_LEN, &v))
				goto bad_value;
			o->eng.max_len = (size_t)v;
			fuzz_only = name;
			break;
		case OPT_SEED_VALUE:
			if (parse_u64(optarg, 0, INT64_MAX, &v))
				goto bad_value;
			o->eng.rng_seed = v;
			o->eng.has_rng_seed = true;
			fuzz_only = name;
			break;
		case 'h':
			o->help = true;
			return 0;
		case ':':
			snprintf(err, n, "option '%s' needs a value", argv[optind - 1]);
			return -EINVAL;
		default:
			snprintf(err, n, "unknown option '%s' (see 'ignition fuzz --help')",
				 argv[optind - 1]);
			return -EINVAL;
		}
		continue;
	bad_value:
		snprintf(err, n, "--%s: invalid value '%s' (see 'ignition fuzz --help')", name,
			 optarg);
		return -EINVAL;
	}
	if (optind < argc) {
		snprintf(err, n, "unexpected argument '%s' (see 'ignition fuzz --help')",
			 argv[optind]);
		return -EINVAL;
	}
	if (!o->vm.kernel || !o->vm.initrd) {
		snprintf(err, n, "--kernel and --initrd are required (see 'ignition fuzz --help')");
		return -EINVAL;
	}
	if (o->replay && fuzz_only) {
		snprintf(err, n, "--%s has no effect with --replay, which runs one input once",
			 fuzz_only);
		return -EINVAL;
	}
	if (o->repeat && !o->replay) {
		snprintf(err, n, "--repeat goes with --replay");
		return -EINVAL;
	}
	if (!o->replay && !o->eng.solutions_dir)
		o->eng.solutions_dir = "solutions";
	return 0;
}

static volatile sig_atomic_t stop_requested;

/* The first SIGINT/SIGTERM asks the loop to stop after the current run; a second one (a run
 * that does not come back) ends the process at once, as for `ignition run`. */
static void on_stop_signal(int sig)
{
	if (stop_requested)
		_exit(128 + sig);
	stop_requested = 1;
}

/* The host loop's own filter, once the VM runs and every file it reads is read (seeds,
 * dictionary, the replayed input): from here it only resets the VM, writes inputs into it,
 * reads coverage and creates new files (solutions, corpus).  No-op without built filters. */
static int lockdown(void)
{
	int ret;

	/* jansson seeds its hash function from /dev/urandom on the first JSON object (a
	 * solution's metadata, the summary): here, before the filter, which opens no file for
	 * reading. */
	json_object_seed(0);
	ret = seccomp_thread_install(SECCOMP_THREAD_FUZZ, "fuzz");

	if (ret)
		fprintf(stderr,
			"ignition: error: cannot install the fuzz thread's seccomp filter: %s\n",
			strerror(-ret));
	return ret;
}

static int replay(struct fuzz_target *t, const char *path, unsigned repeat)
{
	struct fuzz_replay r, again;
	unsigned differ = 0;
	char err[PATH_MAX + 128], line[160];
	uint8_t *data;
	size_t len, full;
	int ret;

	if (fuzz_file_read(path, t->max_len, &data, &len, &full, err, sizeof(err))) {
		fprintf(stderr, "ignition: error: replay input %s\n", err);
		return 3;
	}
	if (full > len || len == 0) {
		fprintf(stderr,
			"ignition: error: replay input '%s' is %zu bytes; the harness takes 1 to "
			"%zu\n",
			path, full, t->max_len);
		free(data);
		return 3;
	}
	if (lockdown()) {
		free(data);
		return 3;
	}
	ret = fuzz_engine_replay(t, data, len, &r, err, sizeof(err));
	/* Each further run starts from the checkpoint again: the same outcome and coverage
	 * every time is what says the reset brings back everything the input can see. */
	for (unsigned i = 1; !ret && i < repeat; i++) {
		ret = fuzz_engine_replay(t, data, len, &again, err, sizeof(err));
		if (!ret && (again.outcome != r.outcome || again.code != r.code ||
			     again.cov_hash != r.cov_hash))
			differ++;
	}
	free(data);
	if (ret) {
		fprintf(stderr, "ignition: error: %s\n", err);
		return 3;
	}
	fuzz_replay_format(&r, line, sizeof(line));
	printf("%s\n", line);
	if (repeat > 1) {
		if (differ)
			printf("unstable: %u different results in %u runs\n", differ, repeat);
		else
			printf("stable: %u runs\n", repeat);
	}
	return r.outcome == FUZZ_OK && !differ ? 0 : 1;
}

static int fuzz(struct fuzz_target *t, struct fuzz_cli *o)
{
	struct sigaction sa = { .sa_handler = on_stop_signal }, old_int, old_term;
	struct fuzz_engine *e;
	char err[PATH_MAX + 256];
	int ret, status = 0;

	if (!o->eng.max_len)
		o->eng.max_len =
			t->max_len < FUZZ_DEFAULT_MAX_LEN ? t->max_len : FUZZ_DEFAULT_MAX_LEN;
	o->eng.status_ms = 1000;
	o->eng.status = stderr;
	if (fuzz_engine_create(&e, t, &o->eng, err, sizeof(err))) {
		fprintf(stderr, "ignition: error: %s\n", err);
		return 3;
	}
	if (lockdown()) {
		fuzz_engine_destroy(e);
		return 3;
	}
	/* No SA_RESTART: a blocking call in the target returns EINTR and the loop sees the flag. */
	sigemptyset(&sa.sa_mask);
	stop_requested = 0;
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	ret = fuzz_engine_run(e, &stop_requested, err, sizeof(err));
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	if (ret) {
		fprintf(stderr, "ignition: error: %s\n", err);
		status = 3;
	}
	if (fuzz_engine_summary(e, stdout)) {
		fprintf(stderr, "ignition: error: cannot write the summary\n");
		status = 3;
	}
	fuzz_engine_destroy(e);
	return status;
}

int fuzz_main(int argc, char **argv)
{
	static const struct fuzz_main_target vm = {
		.open = fuzz_vm_target_open,
		.close = fuzz_vm_target_close,
		.seccomp = true,
	};

	return fuzz_main_with(argc, argv, &vm);
}

int fuzz_main_with(int argc, char **argv, const struct fuzz_main_target *target)
{
	struct fuzz_target t = { 0 };
	struct fuzz_cli o;
	char err[512];
	int status;

	if (fuzz_main_parse(argc, argv, &o, err, sizeof(err))) {
		fprintf(stderr, "ignition: error: %s\n", err);
		return 2;
	}
	if (o.help) {
		fputs(fuzz_usage, stdout);
		return 0;
	}
	if (o.no_seccomp && target->seccomp)
		fputs("ignition: warning: --no-seccomp: the VMM runs without system call filters\n",
		      stderr);
	if (target->seccomp && !o.no_seccomp) {
		/* No terminal to restore (the guest console goes to a file): no on_fatal. */
		struct seccomp_config sc = { .slirp = false };
		int ret = seccomp_filters_build(&sc);

		if (ret) {
			fprintf(stderr, "ignition: error: cannot build the seccomp filters: %s\n",
				strerror(-ret));
			return 3;
		}
		log_info("seccomp: allowlists vcpu %zu, evloop %zu, main %zu, fuzz %zu rules",
			 seccomp_allowlist_size(SECCOMP_THREAD_VCPU),
			 seccomp_allowlist_size(SECCOMP_THREAD_EVLOOP),
			 seccomp_allowlist_size(SECCOMP_THREAD_MAIN),
			 seccomp_allowlist_size(SECCOMP_THREAD_FUZZ));
	}
	if (target->open(&o.vm, &t, err, sizeof(err))) {
		fprintf(stderr, "ignition: error: %s\n", err);
		seccomp_filters_free(); /* none installed on this thread: no later lockdown */
		return 3;
	}
	status = o.replay ? replay(&t, o.replay, o.repeat) : fuzz(&t, &o);
	target->close(&t);
	seccomp_filters_free(); /* the programs; the installed filters stay */
	return status;
}
