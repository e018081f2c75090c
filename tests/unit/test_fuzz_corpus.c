/* The snapshot fuzzer's coverage model, corpus and solutions (src/fuzz/corpus.c): hit-count
 * buckets, what counts as new coverage, seed directories, corpus files named by content, and
 * solutions saved once per coverage with their metadata. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "fuzz/corpus.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmp[64];

static int make_tmp(void **state)
{
	snprintf(tmp, sizeof(tmp), "/tmp/ign-corpus-XXXXXX");
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

static int remove_tmp(void **state)
{
	return remove_tree(tmp);
}

static void put_file(const char *dir, const char *name, const void *p, size_t n)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(p, 1, n, f), n);
	fclose(f);
}

static size_t count_files(const char *dir, const char *prefix)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		if (e->d_name[0] != '.' && !strncmp(e->d_name, prefix, strlen(prefix)))
			n++;
	closedir(d);
	return n;
}

static void test_buckets(void **state)
{
	static const struct {
		unsigned lo, hi;
		uint8_t bit;
	} want[] = {
		{ 0, 0, 0 },   { 1, 1, 1 },    { 2, 2, 2 },	{ 3, 3, 4 },	   { 4, 7, 8 },
		{ 8, 15, 16 }, { 16, 31, 32 }, { 32, 127, 64 }, { 128, 255, 128 },
	};
	uint8_t map[300];

	for (size_t k = 0; k < sizeof(want) / sizeof(want[0]); k++)
		for (unsigned v = want[k].lo; v <= want[k].hi; v++)
			assert_int_equal(fuzz_cov_bucket((uint8_t)v), want[k].bit);
	/* In place over a map whose length is not a multiple of 8, non-zero bytes anywhere. */
	for (size_t i = 0; i < sizeof(map); i++)
		map[i] = (uint8_t)(i % 7 == 0 ? i : 0);
	fuzz_cov_classify(map, sizeof(map));
	for (size_t i = 0; i < sizeof(map); i++)
		assert_int_equal(map[i], fuzz_cov_bucket((uint8_t)(i % 7 == 0 ? i : 0)));
	assert_int_equal(fuzz_cov_count(map, sizeof(map)), 42); /* 7, 14 ... 294: i=0 is 0 */
	map[299] = 1;
	assert_int_equal(fuzz_cov_count(map, sizeof(map)), 43);
}

static void test_new_coverage(void **state)
{
	struct fuzz_cov c;
	uint8_t run[37];

	assert_int_equal(fuzz_cov_init(&c, sizeof(run)), 0);
	memset(run, 0, sizeof(run));
	assert_int_equal(fuzz_cov_merge(&c, run), FUZZ_COV_NOTHING);
	assert_int_equal(c.edges, 0);

	/* A new edge; check() sees it without recording it. */
	run[36] = 1;
	fuzz_cov_classify(run, sizeof(run));
	assert_int_equal(fuzz_cov_check(&c, run), FUZZ_COV_EDGE);
	assert_int_equal(c.edges, 0);
	assert_int_equal(fuzz_cov_merge(&c, run), FUZZ_COV_EDGE);
	assert_int_equal(c.edges, 1);
	assert_int_equal(fuzz_cov_merge(&c, run), FUZZ_COV_NOTHING);

	/* The same edge taken twice: a new bucket, not a new edge. */
	run[36] = 2;
	fuzz_cov_classify(run, sizeof(run));
	assert_int_equal(fuzz_cov_merge(&c, run), FUZZ_COV_BUCKET);
	assert_int_equal(c.edges, 1);
	/* 5 and 6 hits share the 4-7 bucket. */
	run[36] = 5;
	fuzz_cov_classify(run, sizeof(run));
	assert_int_equal(fuzz_cov_merge(&c, run), FUZZ_COV_BUCKET);
	run[36] = 6;
	fuzz_cov_classify(run, sizeof(run));
	assert_int_equal(fuzz_cov_merge(&c, run), FUZZ_COV_NOTHING);
	/* Back to one hit: seen already. */
	run[36] = 1;
	fuzz_cov_classify(run, sizeof(run));
	assert_int_equal(fuzz_cov_merge(&c, run), FUZZ_COV_NOTHING);

	/* A new edge beside a known one wins over a bucket change. */
	run[0] = 200;
	run[36] = 3;
	fuzz_cov_classify(run, sizeof(run));
	assert_int_equal(fuzz_cov_check(&c, run), FUZZ_COV_EDGE);
	assert_int_equal(fuzz_cov_merge(&c, run), FUZZ_COV_EDGE);
	assert_int_equal(c.edges, 2);
	assert_int_equal(c.seen[36], 1 | 2 | 4 | 8);
	assert_int_equal(c.seen[0], 128);
	fuzz_cov_free(&c);
}

static void test_hash(void **state)
{
	uint8_t a[100] = { 0 }, b[100] = { 0 };

	assert_true(fuzz_hash64(a, sizeof(a)) == fuzz_hash64(b, sizeof(b)));
	b[99] = 1;
	assert_true(fuzz_hash64(a, sizeof(a)) != fuzz_hash64(b, sizeof(b)));
	/* Zero bytes count: lengths differ, hashes differ. */
	assert_true(fuzz_hash64(a, 8) != fuzz_hash64(a, 9));
	assert_true(fuzz_hash64(a, 0) != fuzz_hash64(a, 1));
	assert_true(fuzz_cov_hash(a, sizeof(a)) == fuzz_hash64(a, sizeof(a)));
}

static void test_inputs_load(void **state)
{
	struct fuzz_inputs in;
	char dir[128], sub[160], err[512];

	/* Missing directory; empty directory; only empty files and a subdirectory. */
	snprintf(dir, sizeof(dir), "%s/seeds", tmp);
	assert_int_equal(fuzz_inputs_load(&in, dir, 16, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "seed directory"));
	assert_non_null(strstr(err, dir));
	assert_int_equal(mkdir(dir, 0755), 0);
	assert_int_equal(fuzz_inputs_load(&in, dir, 16, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "has no non-empty regular file"));
	put_file(dir, "empty", "", 0);
	snprintf(sub, sizeof(sub), "%s/subdir", dir);
	assert_int_equal(mkdir(sub, 0755), 0);
	put_file(sub, "inside", "nested", 6);
	assert_int_equal(fuzz_inputs_load(&in, dir, 16, err, sizeof(err)), -ENOENT);

	/* Name order, cut to max_len, empty and hidden files skipped. */
	put_file(dir, "b", "second", 6);
	put_file(dir, "a", "first", 5);
	put_file(dir, "c", "this one is much too long", 25);
	put_file(dir, ".hidden", "x", 1);
	assert_int_equal(fuzz_inputs_load(&in, dir, 16, err, sizeof(err)), 0);
	assert_int_equal(in.n, 3);
	assert_int_equal(in.empty, 1);
	assert_int_equal(in.cut, 1);
	assert_int_equal(in.v[0].len, 5);
	assert_memory_equal(in.v[0].data, "first", 5);
	assert_memory_equal(in.v[1].data, "second", 6);
	assert_int_equal(in.v[2].len, 16);
	assert_memory_equal(in.v[2].data, "this one is much", 16);
	fuzz_inputs_free(&in);
	assert_int_equal(in.n, 0);

	/* An unreadable file is an error, not skipped (root reads anything: skip then). */
	if (geteuid() != 0) {
		char path[192];

		snprintf(path, sizeof(path), "%s/a", dir);
		assert_int_equal(chmod(path, 0), 0);
		assert_int_equal(fuzz_inputs_load(&in, dir, 16, err, sizeof(err)), -EACCES);
		assert_non_null(strstr(err, path));
		chmod(path, 0644);
	}
}

static void test_file_read(void **state)
{
	uint8_t *data;
	size_t len, full;
	char err[512];

	put_file(tmp, "f", "0123456789", 10);
	assert_int_equal(fuzz_file_read("/nonexistent/x", 4, &data, &len, &full, err, sizeof(err)),
			 -ENOENT);
	assert_null(data);
	assert_int_equal(fuzz_file_read(tmp, 4, &data, &len, &full, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "not a regular file"));
	{
		char path[128];

		snprintf(path, sizeof(path), "%s/f", tmp);
		assert_int_equal(fuzz_file_read(path, 4, &data, &len, &full, err, sizeof(err)), 0);
		assert_int_equal(len, 4);
		assert_int_equal(full, 10);
		assert_memory_equal(data, "0123", 4);
		free(data);
		assert_int_equal(fuzz_file_read(path, 100, &data, &len, &full, err, sizeof(err)),
				 0);
		assert_int_equal(len, 10);
		assert_int_equal(full, 10);
		free(data);
	}
}

static void test_corpus(void **state)
{
	struct fuzz_corpus c;
	struct fuzz_rng r;
	char dir[128], path[192], err[512];
	uint64_t picks[3] = { 0 };
	uint8_t big[1000] = { 0 };
	bool added;
	FILE *f;

	snprintf(dir, sizeof(dir), "%s/corpus", tmp);
	assert_int_equal(fuzz_corpus_init(&c, dir, err, sizeof(err)), 0);
	assert_int_equal(
		fuzz_corpus_add(&c, (const uint8_t *)"abc", 3, 10, 1, &added, err, sizeof(err)), 0);
	assert_true(added);
	/* The same bytes again: kept once. */
	assert_int_equal(
		fuzz_corpus_add(&c, (const uint8_t *)"abc", 3, 10, 2, &added, err, sizeof(err)), 0);
	assert_false(added);
	assert_int_equal(c.n, 1);
	assert_int_equal(count_files(dir, ""), 1);
	/* The file is named by the content hash and holds the bytes. */
	snprintf(path, sizeof(path), "%s/%016llx", dir, (unsigned long long)fuzz_hash64("abc", 3));
	f = fopen(path, "r");
	assert_non_null(f);
	{
		char got[8] = { 0 };

		assert_int_equal(fread(got, 1, sizeof(got), f), 3);
		assert_string_equal(got, "abc");
	}
	fclose(f);
	assert_int_equal(c.e[0].found_at, 1);

	/* Scheduling: two big entries and one small: the small one wins most tournaments. */
	assert_int_equal(fuzz_corpus_add(&c, big, sizeof(big), 10, 3, &added, err, sizeof(err)), 0);
	big[0] = 1;
	assert_int_equal(fuzz_corpus_add(&c, big, sizeof(big), 10, 4, &added, err, sizeof(err)), 0);
	assert_int_equal(c.n, 3);
	assert_int_equal(count_files(dir, ""), 3);
	fuzz_rng_seed(&r, 9);
	for (int i = 0; i < 3000; i++) {
		size_t k = fuzz_corpus_pick(&c, &r);

		assert_true(k < c.n);
		picks[k]++;
	}
	assert_true(picks[0] > picks[1] + picks[2]);
	/* ...but not all of them: the others are picked too. */
	assert_true(picks[1] > 0 && picks[2] > 0);
	assert_int_equal(c.e[0].picked + c.e[1].picked + c.e[2].picked, 3000);
	fuzz_corpus_free(&c);

	/* Memory only; a directory that is a file. */
	assert_int_equal(fuzz_corpus_init(&c, NULL, err, sizeof(err)), 0);
	assert_int_equal(
		fuzz_corpus_add(&c, (const uint8_t *)"x", 1, 1, 1, &added, err, sizeof(err)), 0);
	assert_int_equal(c.n, 1);
	fuzz_corpus_free(&c);
	snprintf(path, sizeof(path), "%s/afile", tmp);
	put_file(tmp, "afile", "x", 1);
	assert_int_equal(fuzz_corpus_init(&c, path, err, sizeof(err)), -ENOTDIR);
	assert_non_null(strstr(err, "not a directory"));
}

static json_t *load_json(const char *dir, const char *name)
{
	char path[256];
	json_error_t je;
	json_t *j;

	snprintf(path, sizeof(path), "%s/%s.json", dir, name);
	j = json_load_file(path, 0, &je);
	if (!j)
		fail_msg("%s: %s", path, je.text);
	return j;
}

static void test_solutions(void **state)
{
	struct fuzz_solutions s;
	char dir[128], name[64], err[512], path[256];
	struct fuzz_solution_meta m = {
		.kind = FUZZ_KIND_CRASH,
		.code = 42,
		.cov_hash = 0x1234abcd5678ef00ull,
		.edges = 7,
		.exec_no = 99,
		.elapsed_s = 1.5,
	};
	bool is_new;
	json_t *j;

	snprintf(dir, sizeof(dir), "%s/solutions", tmp);
	assert_int_equal(fuzz_solutions_init(&s, dir, err, sizeof(err)), 0);
	assert_int_equal(
		fuzz_solutions_add(&s, &m, (const uint8_t *)"boom", 4, &is_new, err, sizeof(err)),
		0);
	assert_true(is_new);
	/* Another input with the same coverage: counted, not saved again. */
	m.exec_no = 150;
	assert_int_equal(
		fuzz_solutions_add(&s, &m, (const uint8_t *)"boom!", 5, &is_new, err, sizeof(err)),
		0);
	assert_false(is_new);
	assert_int_equal(count_files(dir, "crash-"), 2); /* the input and its .json */
	assert_int_equal(s.total[FUZZ_KIND_CRASH], 2);
	assert_int_equal(s.unique[FUZZ_KIND_CRASH], 1);

	j = load_json(dir, "crash-1234abcd5678ef00");
	assert_string_equal(json_string_value(json_object_get(j, "kind")), "crash");
	assert_int_equal(json_integer_value(json_object_get(j, "code")), 42);
	assert_int_equal(json_integer_value(json_object_get(j, "len")), 4);
	assert_int_equal(json_integer_value(json_object_get(j, "exec")), 99);
	assert_int_equal(json_integer_value(json_object_get(j, "edges")), 7);
	assert_true(json_real_value(json_object_get(j, "found_s")) == 1.5);
	assert_true(json_integer_value(json_object_get(j, "found_unix")) > 1600000000);
	assert_string_equal(json_string_value(json_object_get(j, "edges_hash")),
			    "1234abcd5678ef00");
	snprintf(name, sizeof(name), "%016llx", (unsigned long long)fuzz_hash64("boom", 4));
	assert_string_equal(json_string_value(json_object_get(j, "input_hash")), name);
	json_decref(j);
	snprintf(path, sizeof(path), "%s/crash-1234abcd5678ef00", dir);
	{
		uint8_t *data;
		size_t len, full;

		assert_int_equal(fuzz_file_read(path, 100, &data, &len, &full, err, sizeof(err)),
				 0);
		assert_int_equal(len, 4);
		assert_memory_equal(data, "boom", 4);
		free(data);
	}

	/* The same coverage as a hang is its own kind; another coverage is another crash. */
	m.kind = FUZZ_KIND_HANG;
	m.code = 0;
	assert_int_equal(
		fuzz_solutions_add(&s, &m, (const uint8_t *)"slow", 4, &is_new, err, sizeof(err)),
		0);
	assert_true(is_new);
	assert_int_equal(count_files(dir, "hang-1234abcd5678ef00"), 2);
	m.kind = FUZZ_KIND_CRASH;
	m.cov_hash = 1;
	assert_int_equal(
		fuzz_solutions_add(&s, &m, (const uint8_t *)"bang", 4, &is_new, err, sizeof(err)),
		0);
	assert_true(is_new);
	assert_int_equal(count_files(dir, "crash-"), 4);
	assert_int_equal(s.unique[FUZZ_KIND_CRASH], 2);
	assert_int_equal(s.unique[FUZZ_KIND_HANG], 1);
	fuzz_solutions_free(&s);

	/* A later session: the file already there is left alone (the earlier input stays). */
	assert_int_equal(fuzz_solutions_init(&s, dir, err, sizeof(err)), 0);
	m.cov_hash = 0x1234abcd5678ef00ull;
	assert_int_equal(
		fuzz_solutions_add(&s, &m, (const uint8_t *)"other", 5, &is_new, err, sizeof(err)),
		0);
	assert_int_equal(count_files(dir, "crash-"), 4);
	j = load_json(dir, "crash-1234abcd5678ef00");
	assert_int_equal(json_integer_value(json_object_get(j, "len")), 4);
	json_decref(j);
	fuzz_solutions_free(&s);

	/* Without a directory: counted only. */
	assert_int_equal(fuzz_solutions_init(&s, NULL, err, sizeof(err)), 0);
	assert_int_equal(
		fuzz_solutions_add(&s, &m, (const uint8_t *)"x", 1, &is_new, err, sizeof(err)), 0);
	assert_true(is_new);
	assert_int_equal(s.unique[FUZZ_KIND_CRASH], 1);
	fuzz_solutions_free(&s);
	assert_string_equal(fuzz_kind_name(FUZZ_KIND_HANG), "hang");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_buckets),
		cmocka_unit_test(test_new_coverage),
		cmocka_unit_test(test_hash),
		cmocka_unit_test_setup_teardown(test_inputs_load, make_tmp, remove_tmp),
		cmocka_unit_test_setup_teardown(test_file_read, make_tmp, remove_tmp),
		cmocka_unit_test_setup_teardown(test_corpus, make_tmp, remove_tmp),
		cmocka_unit_test_setup_teardown(test_solutions, make_tmp, remove_tmp),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
