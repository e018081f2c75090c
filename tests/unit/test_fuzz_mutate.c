/* The snapshot fuzzer's mutator (src/fuzz/mutate.c): each operator does what it says, lengths
 * stay in [1, max_len] over 100k stacked mutations, one seed gives one sequence, and the
 * dictionary parser takes the AFL/libFuzzer format and refuses anything else by line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "fuzz/mutate.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TRIALS 300

static void random_input(struct fuzz_rng *r, uint8_t *buf, size_t len)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)fuzz_rng_next(r);
}

/* Apply op to a copy of a random input of `len` bytes: the result goes to out and out_len. */
static int apply(struct fuzz_mutator *m, enum fuzz_mut_op op, const uint8_t *in, size_t len,
		 uint8_t *out, size_t *out_len)
{
	memcpy(out, in, len);
	*out_len = len;
	return fuzz_mutate_op(m, op, out, out_len, NULL, 0);
}

static size_t diff_bytes(const uint8_t *a, const uint8_t *b, size_t n)
{
	size_t d = 0;

	for (size_t i = 0; i < n; i++)
		d += a[i] != b[i];
	return d;
}

/* b is a with one block of (len(b) - len(a)) bytes inserted somewhere: the position of the
 * block, or -1. */
static long inserted_at(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	size_t n = blen - alen;

	if (blen <= alen)
		return -1;
	for (size_t pos = 0; pos <= alen; pos++)
		if (!memcmp(a, b, pos) && !memcmp(a + pos, b + pos + n, alen - pos))
			return (long)pos;
	return -1;
}

static bool contains(const uint8_t *hay, size_t hlen, const uint8_t *needle, size_t nlen)
{
	for (size_t i = 0; i + nlen <= hlen; i++)
		if (!memcmp(hay + i, needle, nlen))
			return true;
	return false;
}

static void setup(struct fuzz_mutator *m, uint64_t seed, size_t max_len)
{
	memset(m, 0, sizeof(*m));
	fuzz_rng_seed(&m->rng, seed);
	m->max_len = max_len;
}

static void test_rng(void **state)
{
	struct fuzz_rng a, b, c;
	uint64_t hist[10] = { 0 };
	int same = 0;

	fuzz_rng_seed(&a, 42);
	fuzz_rng_seed(&b, 42);
	fuzz_rng_seed(&c, 43);
	for (int i = 0; i < 1000; i++) {
		uint64_t x = fuzz_rng_next(&a);

		assert_int_equal(x, fuzz_rng_next(&b));
		same += x == fuzz_rng_next(&c);
	}
	assert_int_equal(same, 0);
	/* Seed 0 is a valid state too (not stuck at zero). */
	fuzz_rng_seed(&a, 0);
	assert_true(fuzz_rng_next(&a) | fuzz_rng_next(&a));
	for (int i = 0; i < 100000; i++) {
		uint64_t v = fuzz_rng_below(&b, 10);

		assert_true(v < 10);
		hist[v]++;
	}
	for (int i = 0; i < 10; i++)
		assert_in_range(hist[i], 9000, 11000);
	assert_int_equal(fuzz_rng_below(&b, 0), 0);
	assert_int_equal(fuzz_rng_below(&b, 1), 0);
}

static void test_flips(void **state)
{
	struct fuzz_mutator m;
	uint8_t in[64], out[64];
	size_t len;

	setup(&m, 1, sizeof(out));
	for (int t = 0; t < TRIALS; t++) {
		size_t n = 1 + fuzz_rng_below(&m.rng, sizeof(in));
		size_t bits = 0;

		random_input(&m.rng, in, n);
		assert_int_equal(apply(&m, FUZZ_MUT_BITFLIP, in, n, out, &len), 0);
		assert_int_equal(len, n);
		for (size_t i = 0; i < n; i++)
			bits += (size_t)__builtin_popcount(in[i] ^ out[i]);
		assert_int_equal(bits, 1);

		assert_int_equal(apply(&m, FUZZ_MUT_BYTEFLIP, in, n, out, &len), 0);
		assert_int_equal(len, n);
		assert_int_equal(diff_bytes(in, out, n), 1);
		for (size_t i = 0; i < n; i++)
			if (in[i] != out[i])
				assert_int_equal(out[i], (uint8_t)~in[i]);

		assert_int_equal(apply(&m, FUZZ_MUT_RANDOM_BYTE, in, n, out, &len), 0);
		assert_int_equal(len, n);
		assert_int_equal(diff_bytes(in, out, n), 1);
	}
}

static uint64_t word(const uint8_t *p, unsigned w, bool be)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < w; i++)
		v |= (uint64_t)p[be ? w - 1 - i : i] << (8 * i);
	return v;
}

/* out differs from in only inside [pos, pos + w) for some pos: call ok(pos, be) for each
 * placement and endianness; true when one of them accepts. */
static bool some_window(const uint8_t *in, const uint8_t *out, size_t n, unsigned w,
			bool (*ok)(uint64_t before, uint64_t after, unsigned w))
{
	for (size_t pos = 0; pos + w <= n; pos++) {
		if (memcmp(in, out, pos) || memcmp(in + pos + w, out + pos + w, n - pos - w))
			continue;
		for (int be = 0; be < (w > 1 ? 2 : 1); be++)
			if (ok(word(in + pos, w, be), word(out + pos, w, be), w))
				return true;
	}
	return false;
}

static bool arith_ok(uint64_t before, uint64_t after, unsigned w)
{
	uint64_t mask = (1ull << (8 * w)) - 1, up = (after - before) & mask,
		 down = (before - after) & mask;

	return (up >= 1 && up <= 35) || (down >= 1 && down <= 35);
}

static bool interesting_ok(uint64_t before, uint64_t after, unsigned w)
{
	uint64_t mask = (1ull << (8 * w)) - 1;

	(void)before;
	for (size_t i = 0; i < fuzz_nr_interesting8; i++)
		if (after == ((uint64_t)(int64_t)fuzz_interesting8[i] & mask))
			return true;
	for (size_t i = 0; w >= 2 && i < fuzz_nr_interesting16; i++)
		if (after == ((uint64_t)(int64_t)fuzz_interesting16[i] & mask))
			return true;
	for (size_t i = 0; w == 4 && i < fuzz_nr_interesting32; i++)
		if (after == ((uint64_t)(int64_t)fuzz_interesting32[i] & mask))
			return true;
	return false;
}

static void test_arith_and_interesting(void **state)
{
	static const struct {
		enum fuzz_mut_op op;
		unsigned w;
		bool (*ok)(uint64_t, uint64_t, unsigned);
	} cases[] = {
		{ FUZZ_MUT_ARITH8, 1, arith_ok },
		{ FUZZ_MUT_ARITH16, 2, arith_ok },
		{ FUZZ_MUT_ARITH32, 4, arith_ok },
		{ FUZZ_MUT_INTERESTING8, 1, interesting_ok },
		{ FUZZ_MUT_INTERESTING16, 2, interesting_ok },
		{ FUZZ_MUT_INTERESTING32, 4, interesting_ok },
	};
	struct fuzz_mutator m;
	uint8_t in[32], out[32];
	size_t len;

	setup(&m, 2, sizeof(out));
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		bool saw_be_only = false;

		for (int t = 0; t < TRIALS; t++) {
			size_t n = cases[c].w + fuzz_rng_below(&m.rng, sizeof(in) - cases[c].w + 1);

			random_input(&m.rng, in, n);
			assert_int_equal(apply(&m, cases[c].op, in, n, out, &len), 0);
			assert_int_equal(len, n);
			assert_true(some_window(in, out, n, cases[c].w, cases[c].ok));
		}
		if (cases[c].w > 1 && cases[c].ok == arith_ok) {
			/* Big-endian placements happen: on inputs of exactly the width, some change
			 * reads as arithmetic only in big-endian order. */
			for (int t = 0; t < TRIALS && !saw_be_only; t++) {
				uint64_t b, a, lb, la;

				random_input(&m.rng, in, cases[c].w);
				assert_int_equal(apply(&m, cases[c].op, in, cases[c].w, out, &len),
						 0);
				b = word(in, cases[c].w, true);
				a = word(out, cases[c].w, true);
				lb = word(in, cases[c].w, false);
				la = word(out, cases[c].w, false);
				saw_be_only =
					arith_ok(b, a, cases[c].w) && !arith_ok(lb, la, cases[c].w);
			}
			assert_true(saw_be_only);
		}
		/* Shorter than the width: does not apply, leaves the input alone. */
		if (cases[c].w > 1) {
			memcpy(out, "\x11\x22\x33", 3);
			len = cases[c].w - 1;
			assert_int_equal(fuzz_mutate_op(&m, cases[c].op, out, &len, NULL, 0),
					 -EAGAIN);
			assert_int_equal(len, cases[c].w - 1);
			assert_memory_equal(out, "\x11\x22\x33", cases[c].w - 1);
		}
	}
}

static void test_blocks(void **state)
{
	struct fuzz_mutator m;
	uint8_t in[80], out[80];
	size_t len;

	setup(&m, 3, sizeof(out));
	for (int t = 0; t < TRIALS; t++) {
		size_t n = 2 + fuzz_rng_below(&m.rng, 60);
		long pos;

		random_input(&m.rng, in, n);
		/* DELETE: a contiguous block gone, never everything. */
		assert_int_equal(apply(&m, FUZZ_MUT_DELETE, in, n, out, &len), 0);
		assert_true(len >= 1 && len < n);
		assert_true(inserted_at(out, len, in, n) >= 0);

		/* INSERT: the original is the result minus one block. */
		assert_int_equal(apply(&m, FUZZ_MUT_INSERT, in, n, out, &len), 0);
		assert_true(len > n && len <= sizeof(out));
		assert_true(inserted_at(in, n, out, len) >= 0);

		/* DUPLICATE: an inserted block that is a copy of a block of the original. */
		assert_int_equal(apply(&m, FUZZ_MUT_DUPLICATE, in, n, out, &len), 0);
		assert_true(len > n && len <= sizeof(out));
		pos = inserted_at(in, n, out, len);
		assert_true(pos >= 0);
		assert_true(contains(in, n, out + pos, len - n));

		/* OVERWRITE: same length; what changed is a copy of bytes of the original. */
		assert_int_equal(apply(&m, FUZZ_MUT_OVERWRITE, in, n, out, &len), 0);
		assert_int_equal(len, n);
		if (memcmp(in, out, n)) {
			size_t a = 0, b = n - 1;

			while (in[a] == out[a])
				a++;
			while (in[b] == out[b])
				b--;
			assert_true(contains(in, n, out + a, b - a + 1));
		}
	}
	/* Limits: one byte cannot shrink; a full buffer cannot grow. */
	out[0] = 7;
	len = 1;
	assert_int_equal(fuzz_mutate_op(&m, FUZZ_MUT_DELETE, out, &len, NULL, 0), -EAGAIN);
	assert_int_equal(fuzz_mutate_op(&m, FUZZ_MUT_OVERWRITE, out, &len, NULL, 0), -EAGAIN);
	assert_int_equal(len, 1);
	assert_int_equal(out[0], 7);
	len = sizeof(out);
	memset(out, 9, len);
	assert_int_equal(fuzz_mutate_op(&m, FUZZ_MUT_INSERT, out, &len, NULL, 0), -EAGAIN);
	assert_int_equal(fuzz_mutate_op(&m, FUZZ_MUT_DUPLICATE, out, &len, NULL, 0), -EAGAIN);
	assert_int_equal(len, sizeof(out));
	/* Out-of-range lengths and operators are refused. */
	len = 0;
	assert_int_equal(fuzz_mutate_op(&m, FUZZ_MUT_BITFLIP, out, &len, NULL, 0), -EINVAL);
	len = sizeof(out) + 1;
	assert_int_equal(fuzz_mutate_op(&m, FUZZ_MUT_BITFLIP, out, &len, NULL, 0), -EINVAL);
	len = 4;
	assert_int_equal(fuzz_mutate_op(&m, FUZZ_MUT_NR, out, &len, NULL, 0), -EINVAL);
}

static void test_splice(void **state)
{
	struct fuzz_mutator m;
	uint8_t a[40], b[40], out[48];
	size_t len;

	setup(&m, 4, sizeof(out));
	for (int t = 0; t < TRIALS; t++) {
		size_t na = 1 + fuzz_rng_below(&m.rng, sizeof(a)),
		       nb = 2 + fuzz_rng_below(&m.rng, sizeof(b) - 1);
		bool found = false;

		random_input(&m.rng, a, na);
		random_input(&m.rng, b, nb);
		memcpy(out, a, na);
		len = na;
		assert_int_equal(fuzz_mutate_op(&m, FUZZ_MUT_SPLICE, out, &len, b, nb), 0);
		assert_true(len >= 2 && len <= sizeof(out));
		/* A head of a (>= 1 byte), then a tail of b (>= 1 byte), cut at max_len. */
		for (size_t h = 1; h < len && !found; h++) {
			size_t tail = len - h;

			if (h > na || memcmp(out, a, h))
				continue;
			if (len == sizeof(out))
				found = contains(b, nb, out + h, tail);
			else
				found = tail <= nb && !memcmp(out + h, b + nb - tail, tail);
		}
		assert_true(found);
	}
	len = 3;
	memcpy(out, "abc", 3);
	assert_int_equal(fuzz_mutate_op(&m, FUZZ_MUT_SPLICE, out, &len, NULL, 0), -EAGAIN);
	assert_int_equal(fuzz_mutate_op(&m, FUZZ_MUT_SPLICE, out, &len, b, 1), -EAGAIN);
	assert_int_equal(len, 3);
	assert_memory_equal(out, "abc", 3);
}

static void test_dict_ops(void **state)
{
	static const char text[] = "kw=\"IHDR\"\n\"\\x89PNG\"\n";
	struct fuzz_dict d = { 0 };
	struct fuzz_mutator m;
	uint8_t in[32], out[40];
	size_t len;
	char err[128];

	setup(&m, 5, sizeof(out));
	random_input(&m.rng, in, sizeof(in));
	/* No dictionary: neither operator applies. */
	assert_int_equal(apply(&m, FUZZ_MUT_DICT_INSERT, in, 8, out, &len), -EAGAIN);
	assert_int_equal(apply(&m, FUZZ_MUT_DICT_OVERWRITE, in, 8, out, &len), -EAGAIN);
	assert_int_equal(fuzz_dict_parse(&d, text, strlen(text), err, sizeof(err)), 0);
	m.dict = &d;
	for (int t = 0; t < TRIALS; t++) {
		size_t n = 4 + fuzz_rng_below(&m.rng, sizeof(in) - 3);
		long pos;

		assert_int_equal(apply(&m, FUZZ_MUT_DICT_INSERT, in, n, out, &len), 0);
		assert_int_equal(len, n + 4);
		pos = inserted_at(in, n, out, len);
		assert_true(pos >= 0);
		assert_true(!memcmp(out + pos, "IHDR", 4) || !memcmp(out + pos, "\x89PNG", 4));

		assert_int_equal(apply(&m, FUZZ_MUT_DICT_OVERWRITE, in, n, out, &len), 0);
		assert_int_equal(len, n);
		assert_true(contains(out, n, (const uint8_t *)"IHDR", 4) ||
			    contains(out, n, (const uint8_t *)"\x89PNG", 4));
	}
	/* Too short to hold a token, or too full to take one. */
	assert_int_equal(apply(&m, FUZZ_MUT_DICT_OVERWRITE, in, 3, out, &len), -EAGAIN);
	m.max_len = 10;
	assert_int_equal(apply(&m, FUZZ_MUT_DICT_INSERT, in, 7, out, &len), -EAGAIN);
	fuzz_dict_free(&d);
}

/* 100k stacked mutations on buffers of exactly max_len bytes (ASan catches any write past
 * them), for several max_len, with a dictionary and splice partners. */
static void test_bounds(void **state)
{
	static const size_t maxes[] = { 1, 2, 3, 7, 64, 300 };
	static const char text[] = "a=\"0123456789\"\nb=\"x\"\n";
	struct fuzz_dict d = { 0 };
	char err[64];
	unsigned applied = 0;

	assert_int_equal(fuzz_dict_parse(&d, text, strlen(text), err, sizeof(err)), 0);
	for (size_t k = 0; k < sizeof(maxes) / sizeof(maxes[0]); k++) {
		struct fuzz_mutator m;
		uint8_t *buf = malloc(maxes[k]), *other = malloc(maxes[k]);
		size_t len = 1, other_len = maxes[k];

		assert_non_null(buf);
		assert_non_null(other);
		setup(&m, 100 + k, maxes[k]);
		m.dict = &d;
		buf[0] = 0;
		random_input(&m.rng, other, other_len);
		for (int i = 0; i < 100000 / 6; i++) {
			unsigned got = fuzz_mutate_havoc(&m, buf, &len, other, other_len);

			assert_true(got >= 1);
			applied += got;
			assert_true(len >= 1 && len <= maxes[k]);
			if (i % 97 == 0) {
				memcpy(other, buf, len);
				other_len = len;
			}
		}
		free(buf);
		free(other);
	}
	assert_true(applied >= 100000);
	fuzz_dict_free(&d);
}

static void test_same_seed_same_sequence(void **state)
{
	struct fuzz_mutator a, b, c;
	uint8_t ba[128], bb[128], bc[128];
	size_t la = 5, lb = 5, lc = 5;
	int differ = 0;

	setup(&a, 77, sizeof(ba));
	setup(&b, 77, sizeof(bb));
	setup(&c, 78, sizeof(bc));
	memcpy(ba, "hello", 5);
	memcpy(bb, "hello", 5);
	memcpy(bc, "hello", 5);
	for (int i = 0; i < 2000; i++) {
		fuzz_mutate_havoc(&a, ba, &la, (const uint8_t *)"splice me", 9);
		fuzz_mutate_havoc(&b, bb, &lb, (const uint8_t *)"splice me", 9);
		fuzz_mutate_havoc(&c, bc, &lc, (const uint8_t *)"splice me", 9);
		assert_int_equal(la, lb);
		assert_memory_equal(ba, bb, la);
		differ += la != lc || memcmp(ba, bc, la);
	}
	assert_true(differ > 1900);
}

static void test_op_names(void **state)
{
	/* Every operator has its own name (diagnostics and docs use them). */
	for (int i = 0; i < FUZZ_MUT_NR; i++) {
		assert_string_not_equal(fuzz_mut_name((enum fuzz_mut_op)i), "?");
		for (int k = 0; k < i; k++)
			assert_string_not_equal(fuzz_mut_name((enum fuzz_mut_op)i),
						fuzz_mut_name((enum fuzz_mut_op)k));
	}
	assert_string_equal(fuzz_mut_name(FUZZ_MUT_NR), "?");
}

static void test_dict_parse(void **state)
{
	static const char good[] = "# a comment\n"
				   "\n"
				   "   \t\n"
				   "kw1=\"foo\"\n"
				   "kw_2@3 = \"a\\\"b\\\\c\"\n"
				   "\"\\x00\\xff\\x7F\"\n"
				   "  name=\"sp ace\"  \r\n"
				   "last=\"end\"";
	struct fuzz_dict d = { 0 };
	char err[128];

	assert_int_equal(fuzz_dict_parse(&d, good, sizeof(good) - 1, err, sizeof(err)), 0);
	assert_int_equal(d.n, 5);
	assert_int_equal(d.tok[0].len, 3);
	assert_memory_equal(d.tok[0].data, "foo", 3);
	assert_int_equal(d.tok[1].len, 5);
	assert_memory_equal(d.tok[1].data, "a\"b\\c", 5);
	assert_int_equal(d.tok[2].len, 3);
	assert_memory_equal(d.tok[2].data, "\x00\xff\x7f", 3);
	assert_memory_equal(d.tok[3].data, "sp ace", 6);
	assert_memory_equal(d.tok[4].data, "end", 3);
	fuzz_dict_free(&d);
	assert_int_equal(d.n, 0);
}

static void test_dict_errors(void **state)
{
	static const struct {
		const char *text;
		const char *want; /* expected start of the error */
	} bad[] = {
		{ "a=\"ok\"\nb=\"open\n", "line 2: missing closing '\"'" },
		{ "x=\"\\q\"", "line 1: unknown escape" },
		{ "x=\"\\x4\"", "line 1: \\x needs two hex digits" },
		{ "x=\"\\xg0\"", "line 1: \\x needs two hex digits" },
		{ "\n\nx=\"a\" junk", "line 3: text after the closing" },
		{ "x=\"\"", "line 1: empty value" },
		{ "x \"a\"", "line 1: expected '=' after the name" },
		{ "x=a", "line 1: expected '\"' after '='" },
		{ "=\"a\"", "line 1: expected a name or '\"'" },
		{ "x@=\"a\"", "line 1: expected digits after '@'" },
		{ "x=\"tab\there\"", "line 1: non-printable character" },
		{ "x=\"\xc3\xa9\"", "line 1: non-printable character" },
		{ "x=\"a\\\"", "line 1: missing closing '\"'" },
		{ "x=\"a\\", "line 1: '\\' at the end of the line" },
		{ "# ok\nx=\"a\"\n#\ny=\"b", "line 4: missing closing" },
	};
	char err[128], big[200];
	struct fuzz_dict d = { 0 };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(
			fuzz_dict_parse(&d, bad[i].text, strlen(bad[i].text), err, sizeof(err)),
			-EINVAL);
		if (strncmp(err, bad[i].want, strlen(bad[i].want)))
			fail_msg("case %zu: got '%s', want '%s...'", i, err, bad[i].want);
		fuzz_dict_free(&d);
	}
	/* A NUL byte inside a line. */
	assert_int_equal(fuzz_dict_parse(&d, "a=\"x\"\nb=\"\0\"", 11, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "line 2: NUL byte");
	fuzz_dict_free(&d);
	/* 128 bytes is the longest token. */
	snprintf(big, sizeof(big), "x=\"%0128d\"", 0);
	assert_int_equal(fuzz_dict_parse(&d, big, strlen(big), err, sizeof(err)), 0);
	assert_int_equal(d.tok[0].len, 128);
	fuzz_dict_free(&d);
	snprintf(big, sizeof(big), "x=\"%0129d\"", 0);
	assert_int_equal(fuzz_dict_parse(&d, big, strlen(big), err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "line 1: value longer than 128 bytes");
	fuzz_dict_free(&d);
}

static void test_dict_load(void **state)
{
	char path[] = "/tmp/ign-dict-XXXXXX", err[256];
	struct fuzz_dict d = { 0 };
	FILE *f;
	int fd;

	assert_int_equal(fuzz_dict_load(&d, "/nonexistent/dict", err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "/nonexistent/dict"));
	assert_int_equal(fuzz_dict_load(&d, "/tmp", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "not a regular file"));

	fd = mkstemp(path);
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	fputs("# only comments\n\n", f);
	fflush(f);
	assert_int_equal(fuzz_dict_load(&d, path, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "has no tokens"));
	fputs("tok=\"GET \"\nbad=\"x\n", f);
	fflush(f);
	assert_int_equal(fuzz_dict_load(&d, path, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, "line 4: missing closing"));
	fuzz_dict_free(&d);
	assert_int_equal(ftruncate(fd, 0), 0);
	rewind(f);
	fputs("tok=\"GET \"\n", f);
	fflush(f);
	assert_int_equal(fuzz_dict_load(&d, path, err, sizeof(err)), 0);
	assert_int_equal(d.n, 1);
	assert_memory_equal(d.tok[0].data, "GET ", 4);
	fuzz_dict_free(&d);
	fclose(f);
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rng),
		cmocka_unit_test(test_flips),
		cmocka_unit_test(test_arith_and_interesting),
		cmocka_unit_test(test_blocks),
		cmocka_unit_test(test_splice),
		cmocka_unit_test(test_dict_ops),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_same_seed_same_sequence),
		cmocka_unit_test(test_op_names),
		cmocka_unit_test(test_dict_parse),
		cmocka_unit_test(test_dict_errors),
		cmocka_unit_test(test_dict_load),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
