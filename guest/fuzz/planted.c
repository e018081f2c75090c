/* The planted target: a tiny parser of "FUZ" records with a deliberate heap overflow, so that
 * ignition's fuzzer tests can assert that a crash is found and replays (docs/fuzzing.md).
 *
 * Input: 'F' 'U' 'Z' <len> <kind> <len bytes of name>...  Each magic byte is its own branch,
 * so coverage guides a fuzzer through the prefix one byte at a time.  The bug: <len> is
 * checked against the input's length but not against the 16-byte name buffer, so any record
 * with len > 16 (and enough bytes) writes past the heap block: ASan reports it, the library
 * turns the report into CRASH with FUZZ_CRASH_SANITIZER. */
#include "fuzz.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct record {
	uint8_t kind;
	char *name; /* 16 bytes */
};

static int parse(const uint8_t *d, size_t n)
{
	struct record r;
	uint8_t len;
	int score = 0;

	if (n < 5)
		return -1;
	if (d[0] != 'F')
		return -1;
	if (d[1] != 'U')
		return -1;
	if (d[2] != 'Z')
		return -1;
	len = d[3];
	r.kind = d[4];
	/* A few harmless branches on the kind, for the fuzzer to find. */
	if (r.kind == 1)
		score += 1;
	else if (r.kind == 2)
		score += 2;
	else if (r.kind > 0x80)
		score -= 1;
	if (len > n - 5)
		return -1; /* checked against the input ... */
	r.name = malloc(16);
	if (!r.name)
		return -2;
	memcpy(r.name, d + 5, len); /* ... but not against name[16]: the planted bug */
	if (len && r.name[0] == '!')
		score += 10;
	free(r.name);
	return score;
}

/* Outside the VM (replay, seed check): run each file given once, natively. */
static int run_files(int argc, char **argv)
{
	static uint8_t data[1 << 20];

	for (int i = 1; i < argc; i++) {
		FILE *f = fopen(argv[i], "rb");
		size_t n;

		if (!f) {
			perror(argv[i]);
			return 1;
		}
		n = fread(data, 1, sizeof(data), f);
		fclose(f);
		printf("%s: %d\n", argv[i], parse(data, n));
	}
	return 0;
}

int main(int argc, char **argv)
{
	const uint8_t *buf;
	size_t len;
	int verbose, ret;

	if (argc > 1)
		return run_files(argc, argv);
	if (fuzz_init() < 0)
		return 1;
	/* FUZZ_VERBOSE=1 (e.g. on the kernel command line, which hands it to /init and so to
	 * here): one line per input, for checking a new set-up; slow, not for fuzzing. */
	verbose = getenv("FUZZ_VERBOSE") != NULL;
	fprintf(stderr, "planted: fuzz device found, waiting for inputs\n");
	for (;;) {
		if (fuzz_next_input(&buf, &len) < 0)
			return 1;
		if (verbose)
			fprintf(stderr, "planted: input of %zu bytes: %02x %02x %02x %02x %02x\n",
				len, len > 0 ? buf[0] : 0, len > 1 ? buf[1] : 0,
				len > 2 ? buf[2] : 0, len > 3 ? buf[3] : 0, len > 4 ? buf[4] : 0);
		ret = parse(buf, len);
		if (verbose)
			fprintf(stderr, "planted: parse returned %d\n", ret);
		fuzz_done();
	}
}
