/* The snapshot fuzzer's loop (src/fuzz/engine.c) against an in-process fake target: it finds a
 * crash planted behind four specific bytes, saves each crash once, replays it, stops on runs,
 * time or the stop flag, prints parseable status lines and a JSON summary. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "fuzz/engine.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define COV_SIZE     4096
#define CRASH_CODE   42
#define FIND_BUDGET  200000 /* executions allowed to find the planted crash */
#define FAKE_MAX_LEN 64

struct fake {
	uint8_t cov[COV_SIZE];
	volatile sig_atomic_t *stop_on_crash; /* set when the planted crash is hit */
	uint64_t runs;
	uint64_t bad_len; /* runs with len outside [1, max_len] */
	uint64_t fail_at; /* return -EIO on this run (0: never) */
	bool report_resets;
};

/* Branches that write coverage bytes: the input's length, every 'A' among the first bytes
 * (hit counts: more 'A's, higher buckets), a "HANG" prefix, and the planted crash behind
 * "FUZZ", one edge per matching byte so that coverage leads the way there. */
static int fake_run(struct fuzz_target *t, const uint8_t *in, size_t len, enum fuzz_outcome *out,
		    uint32_t *code)
{
	struct fake *f = t->ctx;
	uint8_t *cov = t->cov;

	f->runs++;
	if (len < 1 || len > t->max_len)
		f->bad_len++;
	if (f->fail_at && f->runs == f->fail_at) {
		snprintf(t->err, sizeof(t->err), "boom at run %llu", (unsigned long long)f->runs);
		return -EIO;
	}
	if (f->report_resets)
		fuzz_engine_note_reset_us(t->engine, 10 + f->runs % 10);
	*out = FUZZ_OK;
	cov[1 + (len & 63)]++;
	for (size_t i = 0; i < len && i < 16; i++)
		if (in[i] == 'A')
			cov[100]++;
	if (len >= 4 && !memcmp(in, "HANG", 4)) {
		cov[300]++;
		*out = FUZZ_HANG;
		return 0;
	}
	if (len >= 1 && in[0] == 'F') {
		cov[200]++;
		if (len >= 2 && in[1] == 'U') {
			cov[201]++;
			if (len >= 3 && in[2] == 'Z') {
				cov[202]++;
				if (len >= 4 && in[3] == 'Z') {
					cov[203]++;
					*out = FUZZ_CRASH;
					*code = CRASH_CODE;
					if (f->stop_on_crash)
						*f->stop_on_crash = 1;
				}
			}
		}
	}
	return 0;
}

static struct fake fake;
static struct fuzz_target target;
static char tmp[64];

static int setup(void **state)
{
	memset(&fake, 0, sizeof(fake));
	target = (struct fuzz_target){
		.ctx = &fake,
		.run = fake_run,
		.cov = fake.cov,
		.cov_size = COV_SIZE,
		.max_len = FAKE_MAX_LEN,
	};
	snprintf(tmp, sizeof(tmp), "/tmp/ign-engine-XXXXXX");
	return mkdtemp(tmp) ? 0 : -1;
}

static int remove_tree(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[512];

	if (!d)
		return 0;
	while ((e = readdir(d))) {
		struct stat st;

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
			remove_tree(path);
		else
			unlink(path);
	}
	closedir(d);
	return rmdir(dir);
}

static int teardown(void **state)
{
	return remove_tree(tmp);
}

static void subdir(char *buf, size_t n, const char *name)
{
	snprintf(buf, n, "%s/%s", tmp, name);
}

static void put_file(const char *dir, const char *name, const char *text)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* Names in dir starting with prefix, into names[] (at most max); the count. */
static size_t list(const char *dir, const char *prefix, char names[][128], size_t max)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		if (e->d_name[0] != '.' && !strncmp(e->d_name, prefix, strlen(prefix))) {
			if (n < max)
				snprintf(names[n], 128, "%.127s", e->d_name);
			n++;
		}
	closedir(d);
	return n;
}

/* Create and run an engine; returns run()'s result, the stats, and the summary as JSON. */
static int session(const struct fuzz_engine_opts *o, volatile sig_atomic_t *stop,
		   struct fuzz_stats *st, json_t **summary, char *err, size_t n)
{
	struct fuzz_engine *e;
	char *text = NULL;
	size_t size = 0;
	FILE *out;
	int ret;

	assert_int_equal(fuzz_engine_create(&e, &target, o, err, n), 0);
	assert_ptr_equal(target.engine, e);
	ret = fuzz_engine_run(e, stop, err, n);
	fuzz_engine_stats(e, st);
	out = open_memstream(&text, &size);
	assert_non_null(out);
	assert_int_equal(fuzz_engine_summary(e, out), 0);
	fclose(out);
	fuzz_engine_destroy(e);
	assert_null(target.engine);
	/* Exactly one line. */
	assert_true(size > 2 && text[size - 1] == '\n');
	assert_null(memchr(text, '\n', size - 1));
	if (summary) {
		json_error_t je;

		*summary = json_loads(text, 0, &je);
		if (!*summary)
			fail_msg("summary is not JSON: %s (%s)", je.text, text);
	}
	free(text);
	return ret;
}

static const char *jstr(json_t *j, const char *key)
{
	json_t *v = json_object_get(j, key);

	if (!json_is_string(v))
		fail_msg("summary: no string '%s'", key);
	return json_string_value(v);
}

static long long jint(json_t *j, const char *key)
{
	json_t *v = json_object_get(j, key);

	if (!json_is_integer(v))
		fail_msg("summary: no integer '%s'", key);
	return json_integer_value(v);
}

static void test_finds_planted_crash(void **state)
{
	volatile sig_atomic_t stop = 0;
	char sol[128], err[512], names[4][128], path[300];
	struct fuzz_engine_opts o = {
		.runs = FIND_BUDGET,
		.has_rng_seed = true,
		.rng_seed = 1,
	};
	struct fuzz_stats st, again;
	struct fuzz_replay r;
	json_t *sum;
	uint8_t *data;
	size_t len, full;

	subdir(sol, sizeof(sol), "solutions");
	o.solutions_dir = sol;
	fake.stop_on_crash = &stop;
	assert_int_equal(session(&o, &stop, &st, &sum, err, sizeof(err)), 0);
	print_message("planted crash found after %llu executions (corpus %zu, edges %zu)\n",
		      (unsigned long long)st.execs, st.corpus, st.edges);
	/* Stopped by the flag the crash set, not by the budget. */
	assert_string_equal(jstr(sum, "stop"), "signal");
	assert_true(st.execs < FIND_BUDGET);
	assert_int_equal(st.unique_crashes, 1);
	assert_int_equal(jint(sum, "unique_crashes"), 1);
	assert_int_equal(jint(sum, "seed"), 1);
	assert_int_equal(jint(sum, "execs"), (long long)st.execs);
	/* The path there is coverage: F, FU, FUZ each became a corpus entry. */
	assert_true(st.corpus >= 4);
	assert_int_equal(fake.bad_len, 0);
	json_decref(sum);

	/* The saved input replays to the same crash, with the coverage of its file name. */
	assert_int_equal(list(sol, "crash-", names, 4), 2);
	if (strstr(names[0], ".json"))
		memcpy(names[0], names[1], sizeof(names[0]));
	snprintf(path, sizeof(path), "%s/%s", sol, names[0]);
	assert_int_equal(fuzz_file_read(path, FAKE_MAX_LEN, &data, &len, &full, err, sizeof(err)),
			 0);
	assert_memory_equal(data, "FUZZ", 4);
	assert_int_equal(fuzz_engine_replay(&target, data, len, &r, err, sizeof(err)), 0);
	assert_int_equal(r.outcome, FUZZ_CRASH);
	assert_int_equal(r.code, CRASH_CODE);
	assert_int_equal(r.len, len);
	{
		char want[32], line[160];

		snprintf(want, sizeof(want), "crash-%016llx", (unsigned long long)r.cov_hash);
		assert_string_equal(names[0], want);
		fuzz_replay_format(&r, line, sizeof(line));
		snprintf(path, sizeof(path), "crash code=42 len=%zu edges=%zu edges_hash=%016llx",
			 len, r.edges, (unsigned long long)r.cov_hash);
		assert_string_equal(line, path);
	}
	free(data);

	/* The same seed value gives the same session. */
	stop = 0;
	o.solutions_dir = NULL;
	assert_int_equal(session(&o, &stop, &again, NULL, err, sizeof(err)), 0);
	assert_int_equal(again.execs, st.execs);
	assert_int_equal(again.corpus, st.corpus);
	assert_int_equal(again.edges, st.edges);
}

static void test_dedupe_and_seeds(void **state)
{
	char seeds[128], sol[128], err[512], names[8][128];
	struct fuzz_engine_opts o = { .has_rng_seed = true, .rng_seed = 5 };
	struct fuzz_stats st;
	json_t *sum;

	subdir(seeds, sizeof(seeds), "seeds");
	subdir(sol, sizeof(sol), "solutions");
	assert_int_equal(mkdir(seeds, 0755), 0);
	/* Two different inputs with the same coverage crash; one runs fine. */
	put_file(seeds, "1", "FUZZ1");
	put_file(seeds, "2", "FUZZ2");
	put_file(seeds, "3", "hello");
	o.seed_dir = seeds;
	o.solutions_dir = sol;
	o.runs = 3; /* the seeds only */
	assert_int_equal(session(&o, NULL, &st, &sum, err, sizeof(err)), 0);
	assert_int_equal(st.execs, 3);
	assert_int_equal(st.crashes, 2);
	assert_int_equal(st.unique_crashes, 1);
	assert_int_equal(st.corpus, 1);
	assert_int_equal(jint(sum, "crashes"), 2);
	assert_int_equal(jint(sum, "unique_crashes"), 1);
	assert_string_equal(jstr(sum, "stop"), "runs");
	json_decref(sum);
	assert_int_equal(list(sol, "crash-", names, 8), 2); /* one input and its .json */
	assert_int_equal(list(sol, "", names, 8), 2);
}

static void test_hang(void **state)
{
	char seeds[128], sol[128], err[512], names[8][128];
	struct fuzz_engine_opts o = { .runs = 2, .has_rng_seed = true };
	struct fuzz_stats st;

	subdir(seeds, sizeof(seeds), "seeds");
	subdir(sol, sizeof(sol), "solutions");
	assert_int_equal(mkdir(seeds, 0755), 0);
	put_file(seeds, "a", "HANG");
	put_file(seeds, "b", "fine");
	o.seed_dir = seeds;
	o.solutions_dir = sol;
	assert_int_equal(session(&o, NULL, &st, NULL, err, sizeof(err)), 0);
	assert_int_equal(st.hangs, 1);
	assert_int_equal(st.unique_hangs, 1);
	assert_int_equal(st.crashes, 0);
	assert_int_equal(list(sol, "hang-", names, 8), 2);
	assert_int_equal(list(sol, "crash-", names, 8), 0);
}

static void test_stop_by_runs_time_flag(void **state)
{
	volatile sig_atomic_t stop = 0;
	struct fuzz_engine_opts o = { .runs = 1000, .has_rng_seed = true, .rng_seed = 3 };
	struct fuzz_stats st;
	char err[256];
	json_t *sum;

	assert_int_equal(session(&o, &stop, &st, &sum, err, sizeof(err)), 0);
	assert_int_equal(st.execs, 1000);
	assert_int_equal(fake.runs, 1000);
	assert_string_equal(jstr(sum, "stop"), "runs");
	json_decref(sum);

	o.runs = 0;
	o.time_s = 0.2;
	assert_int_equal(session(&o, &stop, &st, &sum, err, sizeof(err)), 0);
	assert_string_equal(jstr(sum, "stop"), "time");
	assert_true(st.elapsed_s >= 0.2 && st.elapsed_s < 10);
	assert_true(st.execs > 1000);
	json_decref(sum);

	/* The flag set before the start: nothing runs. */
	fake.runs = 0;
	stop = 1;
	assert_int_equal(session(&o, &stop, &st, &sum, err, sizeof(err)), 0);
	assert_string_equal(jstr(sum, "stop"), "signal");
	assert_int_equal(st.execs, 0);
	assert_int_equal(fake.runs, 0);
	json_decref(sum);
}

static void test_status_and_summary(void **state)
{
	struct fuzz_engine_opts o = {
		.time_s = 0.05, .has_rng_seed = true, .rng_seed = 11, .status_ms = 5
	};
	static const char *const keys[] = { "execs", "execs_per_s",  "corpus",
					    "edges", "crashes",	     "unique_crashes",
					    "hangs", "unique_hangs", "elapsed_s",
					    "seed",  "max_len",	     "stop" };
	unsigned long long execs, rate, crashes, hangs, elapsed, last = 0;
	size_t corpus, edges, size = 0;
	char *text = NULL, *line, *save = NULL, err[256];
	struct fuzz_stats st;
	int lines = 0, starts = 0;
	json_t *sum;

	o.status = open_memstream(&text, &size);
	assert_non_null(o.status);
	fake.report_resets = true;
	assert_int_equal(session(&o, NULL, &st, &sum, err, sizeof(err)), 0);
	fclose(o.status);
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (!strncmp(line, "fuzz: seed-value=11 ", 20)) {
			starts++;
			continue;
		}
		if (sscanf(line,
			   "#%llu execs/s=%llu corpus=%zu edges=%zu crashes=%llu hangs=%llu "
			   "elapsed=%llus",
			   &execs, &rate, &corpus, &edges, &crashes, &hangs, &elapsed) != 7)
			fail_msg("unparsable status line '%s'", line);
		assert_true(execs >= last && execs <= st.execs);
		assert_true(corpus >= 1 && corpus <= st.corpus);
		assert_true(edges <= st.edges);
		last = execs;
		lines++;
	}
	free(text);
	assert_int_equal(starts, 1);
	assert_true(lines >= 2);

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (!json_object_get(sum, keys[i]))
			fail_msg("summary without '%s'", keys[i]);
	assert_int_equal(jint(sum, "max_len"), FAKE_MAX_LEN);
	assert_true(json_is_real(json_object_get(sum, "execs_per_s")));
	assert_true(json_real_value(json_object_get(sum, "execs_per_s")) > 0);
	/* The fake reports resets of 10..19 us: both percentiles in that range. */
	assert_true(jint(sum, "resets") == (long long)st.execs);
	assert_in_range(jint(sum, "reset_us_p50"), 10, 19);
	assert_in_range(jint(sum, "reset_us_p99"), 18, 19);
	json_decref(sum);

	/* No resets reported: no reset fields. */
	fake.report_resets = false;
	o.status_ms = 0;
	o.status = NULL;
	o.time_s = 0;
	o.runs = 10;
	assert_int_equal(session(&o, NULL, &st, &sum, err, sizeof(err)), 0);
	assert_null(json_object_get(sum, "reset_us_p50"));
	assert_null(json_object_get(sum, "reset_us_p99"));
	json_decref(sum);
}

static void test_reset_percentiles(void **state)
{
	struct fuzz_engine_opts o = { .runs = 1 };
	struct fuzz_engine *e;
	char err[128];

	assert_int_equal(fuzz_engine_create(&e, &target, &o, err, sizeof(err)), 0);
	assert_int_equal(fuzz_engine_reset_percentile(e, 50), -1);
	for (uint64_t us = 1; us <= 100; us++)
		fuzz_engine_note_reset_us(e, us);
	assert_int_equal(fuzz_engine_reset_percentile(e, 50), 50);
	assert_int_equal(fuzz_engine_reset_percentile(e, 99), 99);
	assert_int_equal(fuzz_engine_reset_percentile(e, 100), 100);
	/* Above the exact range: the middle of the 1/8-of-a-power-of-two bin [9216, 10240),
	 * not the power of two below (8192). */
	for (int i = 0; i < 300; i++)
		fuzz_engine_note_reset_us(e, 10000);
	assert_int_equal(fuzz_engine_reset_percentile(e, 99), 9728);
	assert_int_equal(fuzz_engine_reset_percentile(e, 0), -1);
	fuzz_engine_note_reset_us(NULL, 5); /* no engine: ignored */
	fuzz_engine_destroy(e);
}

/* Answers stay within the smallest and largest time noted: a time noted alone is answered
 * exactly, not as the middle of its bin. */
static void test_reset_percentile_within_samples(void **state)
{
	struct fuzz_engine_opts o = { .runs = 1 };
	struct fuzz_engine *e;
	char err[128];

	assert_int_equal(fuzz_engine_create(&e, &target, &o, err, sizeof(err)), 0);
	fuzz_engine_note_reset_us(e, 8200); /* bin [8192, 9216), middle 8704 */
	assert_int_equal(fuzz_engine_reset_percentile(e, 50), 8200);
	assert_int_equal(fuzz_engine_reset_percentile(e, 99), 8200);
	for (int i = 0; i < 99; i++)
		fuzz_engine_note_reset_us(e, 16383); /* bin [15360, 16384), middle 15872 */
	assert_int_equal(fuzz_engine_reset_percentile(e, 1), 8704);
	assert_int_equal(fuzz_engine_reset_percentile(e, 50), 15872);
	assert_int_equal(fuzz_engine_reset_percentile(e, 100), 15872);
	fuzz_engine_destroy(e);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Against the exact nearest-rank percentile of a sorted copy: spread times from 1 us to 2^40 us
 * (a fixed xorshift sequence), every answer within 1/16 of the exact one (exact below 4096). */
static void test_reset_percentile_error_bound(void **state)
{
	static const double ps[] = { 0.1, 1, 10, 25, 50, 75, 90, 99, 99.9, 100 };
	enum { N = 5000 };
	uint64_t *v = malloc(N * sizeof(*v)), x = 0x9e3779b97f4a7c15ull;
	struct fuzz_engine_opts o = { .runs = 1 };
	struct fuzz_engine *e;
	char err[128];

	assert_non_null(v);
	assert_int_equal(fuzz_engine_create(&e, &target, &o, err, sizeof(err)), 0);
	for (int i = 0; i < N; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		/* A random bit length 1..40, then random bits below it: log-uniform. */
		v[i] = (x >> 24) & ((1ull << (1 + x % 40)) - 1);
		fuzz_engine_note_reset_us(e, v[i]);
	}
	qsort(v, N, sizeof(*v), cmp_u64);
	for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++) {
		size_t rank = (size_t)((double)N * ps[i] / 100.0 + 0.999999);
		uint64_t want = v[(rank ? rank : 1) - 1];
		int64_t got = fuzz_engine_reset_percentile(e, ps[i]);
		uint64_t diff = (uint64_t)got > want ? (uint64_t)got - want : want - (uint64_t)got;

		assert_true(got >= 0);
		if (want < 4096)
			assert_int_equal(got, want);
		else if (diff > want / 16)
			fail_msg("p%g: %lld, exact %llu", ps[i], (long long)got,
				 (unsigned long long)want);
	}
	free(v);
	fuzz_engine_destroy(e);
}

static void test_errors(void **state)
{
	char seeds[128], dict[128], err[512], path[256];
	struct fuzz_engine_opts o = { .runs = 100 };
	struct fuzz_engine *e;
	struct fuzz_stats st;
	json_t *sum;

	/* An empty seed directory, a missing one. */
	subdir(seeds, sizeof(seeds), "seeds");
	o.seed_dir = seeds;
	assert_int_equal(fuzz_engine_create(&e, &target, &o, err, sizeof(err)), -ENOENT);
	assert_null(e);
	assert_non_null(strstr(err, seeds));
	assert_int_equal(mkdir(seeds, 0755), 0);
	assert_int_equal(fuzz_engine_create(&e, &target, &o, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "has no non-empty regular file"));

	/* A bad dictionary: its line. */
	put_file(seeds, "s", "seed");
	subdir(dict, sizeof(dict), "dict");
	put_file(tmp, "dict", "ok=\"1\"\n\nbad=\"2\n");
	o.dict_file = dict;
	assert_int_equal(fuzz_engine_create(&e, &target, &o, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "line 3: missing closing"));
	o.dict_file = NULL;

	/* --max-len above the target's window. */
	o.max_len = FAKE_MAX_LEN + 1;
	assert_int_equal(fuzz_engine_create(&e, &target, &o, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "larger than the target's input window"));
	o.max_len = 0;

	/* Solutions "directory" that is a file. */
	snprintf(path, sizeof(path), "%s/s", seeds);
	o.solutions_dir = path;
	assert_int_equal(fuzz_engine_create(&e, &target, &o, err, sizeof(err)), -ENOTDIR);
	o.solutions_dir = NULL;

	/* The target fails on its 50th run: the engine stops with its reason. */
	fake.fail_at = 50;
	assert_int_equal(session(&o, NULL, &st, &sum, err, sizeof(err)), -EIO);
	assert_string_equal(err, "fuzz target: boom at run 50");
	assert_int_equal(st.execs, 50);
	assert_string_equal(jstr(sum, "stop"), "error");
	json_decref(sum);
	fake.fail_at = 0;

	/* Every seed crashes: nothing to mutate. */
	put_file(seeds, "s", "FUZZ");
	assert_int_equal(session(&o, NULL, &st, NULL, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "every seed input crashed or hung"));
	assert_int_equal(st.crashes, 1);

	/* Replay refuses inputs the target cannot take. */
	{
		struct fuzz_replay r;
		uint8_t big[FAKE_MAX_LEN + 1] = { 0 };

		assert_int_equal(fuzz_engine_replay(&target, big, 0, &r, err, sizeof(err)),
				 -EINVAL);
		assert_int_equal(
			fuzz_engine_replay(&target, big, sizeof(big), &r, err, sizeof(err)),
			-EINVAL);
		assert_int_equal(fuzz_engine_replay(&target, big, 4, &r, err, sizeof(err)), 0);
		assert_int_equal(r.outcome, FUZZ_OK);
		assert_string_equal(fuzz_outcome_name(r.outcome), "ok");
	}
}

static void test_corpus_dir_and_max_len(void **state)
{
	char corpus[128], err[256], names[1][128];
	struct fuzz_engine_opts o = {
		.runs = 20000, .has_rng_seed = true, .rng_seed = 8, .max_len = 6
	};
	struct fuzz_stats st;

	subdir(corpus, sizeof(corpus), "corpus");
	o.corpus_dir = corpus;
	assert_int_equal(session(&o, NULL, &st, NULL, err, sizeof(err)), 0);
	assert_int_equal(fake.bad_len, 0);
	/* Every kept input is a file (the fake has edges for lengths 1..6 and more). */
	assert_true(st.corpus >= 6);
	assert_int_equal(list(corpus, "", names, 1), st.corpus);
	assert_int_equal(st.max_len, 6);
	/* The built-in seed is cut to max_len too. */
	assert_int_equal(fake.bad_len, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_finds_planted_crash, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dedupe_and_seeds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hang, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_by_runs_time_flag, setup, teardown),
		cmocka_unit_test_setup_teardown(test_status_and_summary, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reset_percentiles, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reset_percentile_within_samples, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_reset_percentile_error_bound, setup, teardown),
		cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corpus_dir_and_max_len, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
