/* The snapshot fuzzer's dictionary parser (src/fuzz/mutate.c, fuzz_dict_parse): the input is
 * a dictionary file.  A refusal must name a line that exists; an accepted file must give tokens
 * of 1 to 128 bytes that survive a round trip (written back with escapes, parsed again, the
 * same bytes); and stacked mutations with those tokens must keep every length in bounds. */
#include "fuzz/mutate.h"
#include "harness.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Write one token as a dictionary line: printable ASCII as is, '"' and '\' escaped, anything
 * else as \xNN. */
static size_t write_line(char *out, const struct fuzz_token *t)
{
	size_t n = 0;

	n += (size_t)sprintf(out + n, "t=\"");
	for (size_t i = 0; i < t->len; i++) {
		uint8_t c = t->data[i];

		if (c == '"' || c == '\\')
			n += (size_t)sprintf(out + n, "\\%c", c);
		else if (c >= 0x20 && c <= 0x7e)
			out[n++] = (char)c;
		else
			n += (size_t)sprintf(out + n, "\\x%02x", c);
	}
	n += (size_t)sprintf(out + n, "\"\n");
	return n;
}

static void check_refusal(const uint8_t *data, size_t size, int ret, const char *err)
{
	unsigned long line;
	size_t lines = 1;
	char *end;

	FUZZ_CHECK(ret == -EINVAL || ret == -E2BIG);
	FUZZ_CHECK(!strncmp(err, "line ", 5));
	line = strtoul(err + 5, &end, 10);
	FUZZ_CHECK(*end == ':');
	for (size_t i = 0; i < size; i++)
		lines += data[i] == '\n';
	FUZZ_CHECK(line >= 1 && line <= lines);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_dict d = { 0 }, again = { 0 };
	struct fuzz_mutator m;
	char err[160];
	uint8_t buf[64];
	size_t len;
	int ret;

	err[0] = '\0';
	ret = fuzz_dict_parse(&d, (const char *)data, size, err, sizeof(err));
	if (ret) {
		check_refusal(data, size, ret, err);
		fuzz_dict_free(&d);
		return 0;
	}
	FUZZ_CHECK(d.n <= FUZZ_DICT_MAX_TOKENS);
	for (size_t i = 0; i < d.n; i++)
		FUZZ_CHECK(d.tok[i].len >= 1 && d.tok[i].len <= FUZZ_DICT_MAX_TOKEN);

	/* Round trip: every token written back as a line parses to the same bytes. */
	for (size_t i = 0; i < d.n; i++) {
		char line[8 + 4 * FUZZ_DICT_MAX_TOKEN];
		size_t n = write_line(line, &d.tok[i]);

		ret = fuzz_dict_parse(&again, line, n, err, sizeof(err));
		if (ret)
			fuzz_fail("token %zu written back as %.*s does not parse: %s", i, (int)n,
				  line, err);
		FUZZ_CHECK(again.n == i + 1);
		FUZZ_CHECK(again.tok[i].len == d.tok[i].len);
		FUZZ_CHECK(!memcmp(again.tok[i].data, d.tok[i].data, d.tok[i].len));
	}

	/* Mutations with these tokens stay inside the buffer and within [1, max_len]. */
	if (d.n) {
		memset(&m, 0, sizeof(m));
		fuzz_rng_seed(&m.rng, size);
		m.dict = &d;
		m.max_len = 1 + size % sizeof(buf);
		len = 1;
		buf[0] = 0;
		for (int i = 0; i < 32; i++) {
			FUZZ_CHECK(fuzz_mutate_havoc(&m, buf, &len, data, size) >= 1);
			FUZZ_CHECK(len >= 1 && len <= m.max_len);
		}
	}
	fuzz_dict_free(&again);
	fuzz_dict_free(&d);
	return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const char png[] = "# PNG chunk names and the signature\n"
				  "header_png=\"\\x89PNG\\x0d\\x0a\\x1a\\x0a\"\n"
				  "ihdr=\"IHDR\"\n"
				  "idat@2 = \"IDAT\"\n"
				  "\"IEND\\xaeB`\\x82\"\n";
	static const char escapes[] = "a=\"\\\\\\\"\\x00\\xFF\"\r\n  \n# end\nb=\"sp ace\"  ";
	static const char bad[] = "ok=\"1\"\nbroken=\"\\x4\"\n";
	static struct fuzz_seed s;

	(void)argc;
	(void)argv;
	if (!fuzz_want_seeds())
		return 0;
	seed_bytes(&s, png, sizeof(png) - 1);
	fuzz_seed_save(&s, "png");
	seed_bytes(&s, escapes, sizeof(escapes) - 1);
	fuzz_seed_save(&s, "escapes");
	seed_bytes(&s, bad, sizeof(bad) - 1);
	fuzz_seed_save(&s, "bad");
	return 0;
}
