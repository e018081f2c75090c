/* `ignition fuzz` argument parsing (src/fuzz/fuzz_main.c): defaults, every flag, and every kind
 * of bad input; the help text names every option. */
/* argv arrays of string literals, as a shell would pass them. */
#pragma GCC diagnostic ignored "-Wdiscarded-qualifiers"
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "fuzz/fuzz_main.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ARGS(...)	   ((char *[]){ "fuzz", __VA_ARGS__, NULL })
#define NARGS(...)	   ((int)(sizeof((char *[]){ "fuzz", __VA_ARGS__ }) / sizeof(char *)))
#define PARSE(o, err, ...) fuzz_main_parse(NARGS(__VA_ARGS__), ARGS(__VA_ARGS__), o, err, 256)

static void test_defaults(void **state)
{
	struct fuzz_cli o;
	char err[256];

	assert_int_equal(PARSE(&o, err, "--kernel", "/k", "--initrd", "/h.cpio"), 0);
	assert_string_equal(o.vm.kernel, "/k");
	assert_string_equal(o.vm.initrd, "/h.cpio");
	assert_null(o.vm.cmdline);
	assert_int_equal(o.vm.mem_mib, 256);
	assert_int_equal(o.vm.timeout_ms, 1000);
	assert_null(o.eng.seed_dir);
	assert_null(o.eng.corpus_dir);
	assert_string_equal(o.eng.solutions_dir, "solutions");
	assert_null(o.eng.dict_file);
	assert_int_equal(o.eng.runs, 0);
	assert_true(o.eng.time_s == 0);
	assert_int_equal(o.eng.max_len, 0); /* 4096 capped to the target, once it is open */
	assert_false(o.eng.has_rng_seed);
	assert_null(o.replay);
	assert_false(o.no_seccomp);
	assert_false(o.help);
}

static void test_all_flags(void **state)
{
	struct fuzz_cli o;
	char err[256];

	assert_int_equal(PARSE(&o, err, "--kernel", "/k", "--initrd", "/h", "--mem", "512",
			       "--cmdline", "console=ttyS0 quiet", "--seed", "/s", "--corpus", "/c",
			       "--solutions", "/o", "--dict", "/d", "--runs", "1000", "--time",
			       "60", "--max-len", "1024", "--seed-value", "9223372036854775807",
			       "--timeout-ms", "250"),
			 0);
	assert_int_equal(o.vm.mem_mib, 512);
	assert_string_equal(o.vm.cmdline, "console=ttyS0 quiet");
	assert_string_equal(o.eng.seed_dir, "/s");
	assert_string_equal(o.eng.corpus_dir, "/c");
	assert_string_equal(o.eng.solutions_dir, "/o");
	assert_string_equal(o.eng.dict_file, "/d");
	assert_int_equal(o.eng.runs, 1000);
	assert_true(o.eng.time_s == 60);
	assert_int_equal(o.eng.max_len, 1024);
	assert_true(o.eng.has_rng_seed);
	assert_int_equal(o.eng.rng_seed, 9223372036854775807ull);
	assert_int_equal(o.vm.timeout_ms, 250);

	/* --opt=value works as well; --seed-value 0 is a seed like any other. */
	assert_int_equal(
		PARSE(&o, err, "--kernel=/k", "--initrd=/h", "--seed-value=0", "--replay=/x"),
		-EINVAL); /* --seed-value is for fuzzing, not --replay */
	assert_int_equal(PARSE(&o, err, "--kernel=/k", "--initrd=/h", "--seed-value=0"), 0);
	assert_true(o.eng.has_rng_seed);
	assert_int_equal(o.eng.rng_seed, 0);

	/* Replay: VM options only; no solutions directory is made. */
	assert_int_equal(PARSE(&o, err, "--kernel", "/k", "--initrd", "/h", "--replay", "/crash",
			       "--timeout-ms", "50", "--mem", "64"),
			 0);
	assert_string_equal(o.replay, "/crash");
	assert_null(o.eng.solutions_dir);
	/* --no-seccomp goes with fuzzing and with --replay. */
	assert_int_equal(PARSE(&o, err, "--kernel", "/k", "--initrd", "/h", "--no-seccomp"), 0);
	assert_true(o.no_seccomp);
	assert_int_equal(PARSE(&o, err, "--kernel", "/k", "--initrd", "/h", "--replay", "/crash",
			       "--no-seccomp"),
			 0);
	assert_true(o.no_seccomp);
	/* --checkpoint DIR goes with fuzzing and with --replay; an empty name is refused. */
	assert_int_equal(PARSE(&o, err, "--kernel", "/k", "--initrd", "/h"), 0);
	assert_null(o.vm.checkpoint_dir);
	assert_int_equal(PARSE(&o, err, "--kernel", "/k", "--initrd", "/h", "--checkpoint", "/c"),
			 0);
	assert_string_equal(o.vm.checkpoint_dir, "/c");
	assert_int_equal(PARSE(&o, err, "--kernel", "/k", "--initrd", "/h", "--replay", "/crash",
			       "--checkpoint=/c"),
			 0);
	assert_string_equal(o.vm.checkpoint_dir, "/c");
	assert_int_equal(PARSE(&o, err, "--kernel", "/k", "--initrd", "/h", "--checkpoint="),
			 -EINVAL);
	assert_non_null(strstr(err, "--checkpoint"));

	assert_int_equal(PARSE(&o, err, "--help"), 0);
	assert_true(o.help);
	assert_int_equal(PARSE(&o, err, "-h"), 0);
	assert_true(o.help);
}

static void test_bad_usage(void **state)
{
	/* Not static: the compound literals of ARGS() are not constant initialisers. */
	const struct {
		char **argv;
		int argc;
		const char *want;
	} bad[] = {
#define CASE(want, ...) { ARGS(__VA_ARGS__), NARGS(__VA_ARGS__), want }
		CASE("--kernel and --initrd are required", "--runs", "5"),
		CASE("--kernel and --initrd are required", "--kernel", "/k"),
		CASE("--kernel and --initrd are required", "--initrd", "/h"),
		CASE("option '--kernel' needs a value", "--initrd", "/h", "--kernel"),
		CASE("unknown option '--bogus'", "--kernel", "/k", "--initrd", "/h", "--bogus"),
		CASE("unexpected argument 'extra'", "--kernel", "/k", "--initrd", "/h", "extra"),
		CASE("--mem: invalid value '15'", "--kernel", "/k", "--initrd", "/h", "--mem",
		     "15"),
		CASE("--mem: invalid value '1048577'", "--kernel", "/k", "--initrd", "/h", "--mem",
		     "1048577"),
		CASE("--runs: invalid value '0'", "--kernel", "/k", "--initrd", "/h", "--runs",
		     "0"),
		CASE("--runs: invalid value '-1'", "--kernel", "/k", "--initrd", "/h", "--runs",
		     "-1"),
		CASE("--runs: invalid value '10x'", "--kernel", "/k", "--initrd", "/h", "--runs",
		     "10x"),
		CASE("--runs: invalid value '99999999999999999999'", "--kernel", "/k", "--initrd",
		     "/h", "--runs", "99999999999999999999"),
		CASE("--time: invalid value '0'", "--kernel", "/k", "--initrd", "/h", "--time",
		     "0"),
		CASE("--time: invalid value '1.5'", "--kernel", "/k", "--initrd", "/h", "--time",
		     "1.5"),
		CASE("--max-len: invalid value '0'", "--kernel", "/k", "--initrd", "/h",
		     "--max-len", "0"),
		CASE("--max-len: invalid value '16777217'", "--kernel", "/k", "--initrd", "/h",
		     "--max-len", "16777217"),
		CASE("--seed-value: invalid value '9223372036854775808'", "--kernel", "/k",
		     "--initrd", "/h", "--seed-value", "9223372036854775808"),
		CASE("--seed-value: invalid value ' 1'", "--kernel", "/k", "--initrd", "/h",
		     "--seed-value", " 1"),
		CASE("--timeout-ms: invalid value '0'", "--kernel", "/k", "--initrd", "/h",
		     "--timeout-ms", "0"),
		CASE("--timeout-ms: invalid value ''", "--kernel", "/k", "--initrd", "/h",
		     "--timeout-ms", ""),
		CASE("--seed has no effect with --replay", "--kernel", "/k", "--initrd", "/h",
		     "--replay", "/x", "--seed", "/s"),
		CASE("--dict has no effect with --replay", "--kernel", "/k", "--initrd", "/h",
		     "--dict", "/d", "--replay", "/x"),
		CASE("--runs has no effect with --replay", "--kernel", "/k", "--initrd", "/h",
		     "--replay", "/x", "--runs", "3"),
#undef CASE
	};
	struct fuzz_cli o;
	char err[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(fuzz_main_parse(bad[i].argc, bad[i].argv, &o, err, sizeof(err)),
				 -EINVAL);
		if (strncmp(err, bad[i].want, strlen(bad[i].want)))
			fail_msg("case %zu: got '%s', want '%s...'", i, err, bad[i].want);
	}
}

static void test_usage_mentions_every_flag(void **state)
{
	static const char *const flags[] = {
		"--kernel",	"--initrd",	"--mem",    "--cmdline",    "--seed ", "--corpus",
		"--solutions",	"--dict",	"--replay", "--runs",	    "--time",  "--max-len",
		"--seed-value", "--timeout-ms", "--help",   "--no-seccomp",
	};

	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
		if (!strstr(fuzz_usage, flags[i]))
			fail_msg("--help does not mention %s", flags[i]);
	/* The status line format it documents is the one printed. */
	assert_non_null(strstr(fuzz_usage, "#EXECS execs/s=N corpus=N edges=N crashes=N hangs=N "
					   "elapsed=Ns"));
}

/* The subcommand end to end as far as it goes without a VM: usage errors are status 2, help
 * is 0, and a VM that cannot be opened (the stub, or a missing kernel) is status 3. */
static void test_exit_status(void **state)
{
	assert_int_equal(fuzz_main(NARGS("--bogus"), ARGS("--bogus")), 2);
	assert_int_equal(fuzz_main(NARGS("--kernel", "/k"), ARGS("--kernel", "/k")), 2);
	assert_int_equal(fuzz_main(NARGS("--kernel", "/nonexistent/k", "--initrd", "/nonexistent/h",
					 "--replay", "/nonexistent/x"),
				   ARGS("--kernel", "/nonexistent/k", "--initrd", "/nonexistent/h",
					"--replay", "/nonexistent/x")),
			 3);
}

/* ---- the subcommand on a fake target ---- */

static uint8_t fake_cov[256];
static unsigned fake_runs, fake_sigint_at;
static struct fuzz_vm_opts fake_opened;

/* '!' first: a crash (code 7); '~' first: a hang; anything else runs fine.  Raises SIGINT on
 * run fake_sigint_at, as a user's Ctrl-C would arrive. */
static int fake_run(struct fuzz_target *t, const uint8_t *in, size_t len, enum fuzz_outcome *out,
		    uint32_t *code)
{
	if (++fake_runs == fake_sigint_at)
		raise(SIGINT);
	t->cov[in[0]]++;
	t->cov[len % 256]++;
	if (in[0] == '?') /* coverage that changes from run to run: an unstable target */
		t->cov[fake_runs % 200]++;
	*out = in[0] == '!' ? FUZZ_CRASH : in[0] == '~' ? FUZZ_HANG : FUZZ_OK;
	*code = 7;
	return 0;
}

static int fake_open(const struct fuzz_vm_opts *o, struct fuzz_target *t, char *err, size_t n)
{
	fake_opened = *o;
	fake_runs = 0;
	*t = (struct fuzz_target){
		.run = fake_run, .cov = fake_cov, .cov_size = sizeof(fake_cov), .max_len = 100
	};
	return 0;
}

static void fake_close(struct fuzz_target *t)
{
	t->run = NULL;
}

static const struct fuzz_main_target fake = { .open = fake_open, .close = fake_close };
static char tmp[64], out_path[128];

static int make_tmp(void **state)
{
	snprintf(tmp, sizeof(tmp), "/tmp/ign-fuzzmain-XXXXXX");
	if (!mkdtemp(tmp))
		return -1;
	snprintf(out_path, sizeof(out_path), "%s/stdout", tmp);
	return 0;
}

static int remove_tmp(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
	return system(cmd);
}

/* Run fuzz_main_with() with its stdout captured: the exit status; *text gets the output. */
static int run_captured(int argc, char **argv, char **text)
{
	int saved, fd, status;
	FILE *f;
	long size;

	fflush(stdout);
	saved = dup(1);
	fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(saved >= 0 && fd >= 0);
	dup2(fd, 1);
	close(fd);
	status = fuzz_main_with(argc, argv, &fake);
	fflush(stdout);
	dup2(saved, 1);
	close(saved);
	f = fopen(out_path, "r");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	size = ftell(f);
	rewind(f);
	*text = calloc(1, (size_t)size + 1);
	assert_int_equal(fread(*text, 1, (size_t)size, f), (size_t)size);
	fclose(f);
	return status;
}

static void put(const char *name, const char *text)
{
	char path[160];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmp, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static json_t *summary(const char *text)
{
	json_error_t je;
	json_t *j = json_loads(text, 0, &je);

	if (!j)
		fail_msg("stdout is not one JSON summary: %s (%s)", text, je.text);
	return j;
}

static void test_fuzz_session(void **state)
{
	char sol[128], seeds[128], *text;
	json_t *j;

	snprintf(sol, sizeof(sol), "%s/solutions", tmp);
	snprintf(seeds, sizeof(seeds), "%s/seeds", tmp);
	assert_int_equal(mkdir(seeds, 0755), 0);
	put("seeds/a", "hello");
	put("seeds/b", "!crash");
	assert_int_equal(run_captured(NARGS("--kernel", "/k", "--initrd", "/h", "--seed", seeds,
					    "--solutions", sol, "--runs", "300", "--seed-value",
					    "17", "--timeout-ms", "20", "--mem", "64"),
				      ARGS("--kernel", "/k", "--initrd", "/h", "--seed", seeds,
					   "--solutions", sol, "--runs", "300", "--seed-value",
					   "17", "--timeout-ms", "20", "--mem", "64"),
				      &text),
			 0);
	/* The VM options reach the target. */
	assert_string_equal(fake_opened.kernel, "/k");
	assert_string_equal(fake_opened.initrd, "/h");
	assert_int_equal(fake_opened.timeout_ms, 20);
	assert_int_equal(fake_opened.mem_mib, 64);
	j = summary(text);
	assert_int_equal(json_integer_value(json_object_get(j, "execs")), 300);
	assert_int_equal(json_integer_value(json_object_get(j, "seed")), 17);
	/* 4096 by default, capped to the target's 100-byte window. */
	assert_int_equal(json_integer_value(json_object_get(j, "max_len")), 100);
	assert_string_equal(json_string_value(json_object_get(j, "stop")), "runs");
	assert_true(json_integer_value(json_object_get(j, "unique_crashes")) >= 1);
	json_decref(j);
	free(text);

	/* A saved crash replays: status 1 and its line; a fine input: status 0. */
	{
		DIR *d = opendir(sol);
		struct dirent *e;
		char path[400] = "", want[64];

		assert_non_null(d);
		while ((e = readdir(d)))
			if (!strncmp(e->d_name, "crash-", 6) && !strstr(e->d_name, ".json"))
				snprintf(path, sizeof(path), "%s/%.64s", sol, e->d_name);
		closedir(d);
		assert_true(path[0]);
		assert_int_equal(
			run_captured(NARGS("--kernel", "/k", "--initrd", "/h", "--replay", path),
				     ARGS("--kernel", "/k", "--initrd", "/h", "--replay", path),
				     &text),
			1);
		assert_int_equal(strncmp(text, "crash code=7 len=", 17), 0);
		snprintf(want, sizeof(want), "edges_hash=%s\n", strrchr(path, '-') + 1);
		assert_non_null(strstr(text, want));
		free(text);
	}
	snprintf(seeds, sizeof(seeds), "%s/seeds/a", tmp);
	assert_int_equal(run_captured(NARGS("--kernel", "/k", "--initrd", "/h", "--replay", seeds),
				      ARGS("--kernel", "/k", "--initrd", "/h", "--replay", seeds),
				      &text),
			 0);
	assert_int_equal(strncmp(text, "ok len=5 edges=2 edges_hash=", 28), 0);
	free(text);
	put("hang", "~zz");
	snprintf(seeds, sizeof(seeds), "%s/hang", tmp);
	assert_int_equal(run_captured(NARGS("--kernel", "/k", "--initrd", "/h", "--replay", seeds),
				      ARGS("--kernel", "/k", "--initrd", "/h", "--replay", seeds),
				      &text),
			 1);
	assert_int_equal(strncmp(text, "hang len=3 ", 11), 0);
	free(text);
	/* Unreadable or too long: an error, status 3, nothing on stdout. */
	assert_int_equal(
		run_captured(NARGS("--kernel", "/k", "--initrd", "/h", "--replay", "/nonexistent"),
			     ARGS("--kernel", "/k", "--initrd", "/h", "--replay", "/nonexistent"),
			     &text),
		3);
	assert_string_equal(text, "");
	free(text);
	put("long", "0123456789012345678901234567890123456789012345678901234567890123456789"
		    "0123456789012345678901234567890123456789");
	snprintf(seeds, sizeof(seeds), "%s/long", tmp);
	assert_int_equal(run_captured(NARGS("--kernel", "/k", "--initrd", "/h", "--replay", seeds),
				      ARGS("--kernel", "/k", "--initrd", "/h", "--replay", seeds),
				      &text),
			 3);
	free(text);
}

/* --replay --repeat: the same input N times from the checkpoint; one line says stable or how
 * many runs differed; --repeat without --replay is bad usage. */
static void test_replay_repeat(void **state)
{
	char ok[128], flaky[128], *text;

	put("ok", "abc");
	put("flaky", "?x");
	snprintf(ok, sizeof(ok), "%s/ok", tmp);
	snprintf(flaky, sizeof(flaky), "%s/flaky", tmp);
	assert_int_equal(
		run_captured(
			NARGS("--kernel", "/k", "--initrd", "/h", "--replay", ok, "--repeat", "5"),
			ARGS("--kernel", "/k", "--initrd", "/h", "--replay", ok, "--repeat", "5"),
			&text),
		0);
	assert_non_null(strstr(text, "\nstable: 5 runs\n"));
	assert_int_equal(fake_runs, 5);
	free(text);
	assert_int_equal(run_captured(NARGS("--kernel", "/k", "--initrd", "/h", "--replay", flaky,
					    "--repeat", "5"),
				      ARGS("--kernel", "/k", "--initrd", "/h", "--replay", flaky,
					   "--repeat", "5"),
				      &text),
			 1);
	assert_non_null(strstr(text, "unstable: 4 different results in 5 runs\n"));
	free(text);
	assert_int_equal(fuzz_main(NARGS("--kernel", "/k", "--initrd", "/h", "--repeat", "5"),
				   ARGS("--kernel", "/k", "--initrd", "/h", "--repeat", "5")),
			 2);
	assert_int_equal(
		fuzz_main(
			NARGS("--kernel", "/k", "--initrd", "/h", "--replay", ok, "--repeat", "0"),
			ARGS("--kernel", "/k", "--initrd", "/h", "--replay", ok, "--repeat", "0")),
		2);
}

/* --until-crash: fuzzing stops at the first crash (found by mutating the seed's first byte),
 * long before --runs, with stop "crash" in the summary. */
static void test_until_crash(void **state)
{
	char sol[128], seeds[128], *text;
	json_t *j;

	snprintf(sol, sizeof(sol), "%s/solutions", tmp);
	snprintf(seeds, sizeof(seeds), "%s/seeds", tmp);
	assert_int_equal(mkdir(seeds, 0755), 0);
	put("seeds/a", "a");
	assert_int_equal(run_captured(NARGS("--kernel", "/k", "--initrd", "/h", "--seed", seeds,
					    "--solutions", sol, "--runs", "100000", "--seed-value",
					    "3", "--until-crash"),
				      ARGS("--kernel", "/k", "--initrd", "/h", "--seed", seeds,
					   "--solutions", sol, "--runs", "100000", "--seed-value",
					   "3", "--until-crash"),
				      &text),
			 0);
	j = summary(text);
	assert_string_equal(json_string_value(json_object_get(j, "stop")), "crash");
	assert_int_equal(json_integer_value(json_object_get(j, "unique_crashes")), 1);
	assert_true(json_integer_value(json_object_get(j, "execs")) < 100000);
	assert_int_equal(fake_runs, json_integer_value(json_object_get(j, "execs")));
	json_decref(j);
	free(text);
}

static void test_sigint_stops_cleanly(void **state)
{
	char sol[128], *text;
	json_t *j;

	snprintf(sol, sizeof(sol), "%s/solutions", tmp);
	fake_sigint_at = 100;
	assert_int_equal(run_captured(NARGS("--kernel", "/k", "--initrd", "/h", "--solutions", sol,
					    "--time", "30"),
				      ARGS("--kernel", "/k", "--initrd", "/h", "--solutions", sol,
					   "--time", "30"),
				      &text),
			 0);
	fake_sigint_at = 0;
	j = summary(text);
	assert_string_equal(json_string_value(json_object_get(j, "stop")), "signal");
	assert_int_equal(json_integer_value(json_object_get(j, "execs")), 100);
	json_decref(j);
	free(text);
	/* The handler is gone again: SIGINT is back to what it was. */
	{
		struct sigaction sa;

		assert_int_equal(sigaction(SIGINT, NULL, &sa), 0);
		assert_true(sa.sa_handler == SIG_DFL);
	}
	/* --max-len above the target's window: an error, status 3. */
	assert_int_equal(run_captured(NARGS("--kernel", "/k", "--initrd", "/h", "--solutions", sol,
					    "--max-len", "101"),
				      ARGS("--kernel", "/k", "--initrd", "/h", "--solutions", sol,
					   "--max-len", "101"),
				      &text),
			 3);
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_all_flags),
		cmocka_unit_test(test_bad_usage),
		cmocka_unit_test(test_usage_mentions_every_flag),
		cmocka_unit_test(test_exit_status),
		cmocka_unit_test_setup_teardown(test_fuzz_session, make_tmp, remove_tmp),
		cmocka_unit_test_setup_teardown(test_sigint_stops_cleanly, make_tmp, remove_tmp),
		cmocka_unit_test_setup_teardown(test_replay_repeat, make_tmp, remove_tmp),
		cmocka_unit_test_setup_teardown(test_until_crash, make_tmp, remove_tmp),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
