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

#include <errno.h>
#include <stdio.h>
#include <string.h>

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
		"--kernel", "--initrd",	   "--mem",	   "--cmdline",	   "--seed ",
		"--corpus", "--solutions", "--dict",	   "--replay",	   "--runs",
		"--time",   "--max-len",   "--seed-value", "--timeout-ms", "--help",
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_all_flags),
		cmocka_unit_test(test_bad_usage),
		cmocka_unit_test(test_usage_mentions_every_flag),
		cmocka_unit_test(test_exit_status),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
