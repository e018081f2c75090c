/* The snapshot fuzzer's mutator (docs/fuzzing.md, "Host engine"): a seeded PRNG, the mutation
 * operators, stacked havoc and the dictionary.  Deterministic: the same seed and the same calls
 * give the same inputs.  No I/O except fuzz_dict_load(); no KVM. */
#ifndef IGNITION_FUZZ_MUTATE_H
#define IGNITION_FUZZ_MUTATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* xoshiro256** seeded through splitmix64: fast, 256 bits of state, good enough statistics for
 * choosing mutations (not cryptographic). */
struct fuzz_rng {
	uint64_t s[4];
};

/* Seed the generator; every seed (0 included) gives a valid, distinct state. */
void fuzz_rng_seed(struct fuzz_rng *r, uint64_t seed);
/* The next 64 random bits. */
uint64_t fuzz_rng_next(struct fuzz_rng *r);
/* A uniform value in [0, n) (n > 0; 0 when n is 0). */
uint64_t fuzz_rng_below(struct fuzz_rng *r, uint64_t n);

/* A dictionary (AFL / libFuzzer -dict format): tokens the mutator inserts or writes over. */
#define FUZZ_DICT_MAX_TOKEN  128u	/* bytes in one token */
#define FUZZ_DICT_MAX_TOKENS 65536u	/* tokens in one dictionary */
#define FUZZ_DICT_MAX_FILE   (1u << 20) /* bytes in a dictionary file */

struct fuzz_token {
	uint8_t data[FUZZ_DICT_MAX_TOKEN];
	size_t len;
};

struct fuzz_dict {
	struct fuzz_token *tok;
	size_t n, cap;
};

/* Parse dictionary text (len bytes, NUL bytes are an error) and append its tokens to d.
 * Lines: blank, `# comment`, or `[name[@level]]=` then a double-quoted value with `\\`, `\"`
 * and `\xNN` escapes and printable ASCII otherwise.  0, or -EINVAL with "line N: reason" in
 * err (d then holds the tokens of the lines before), -ENOMEM, -E2BIG (too many tokens). */
int fuzz_dict_parse(struct fuzz_dict *d, const char *text, size_t len, char *err, size_t n)
	__attribute__((warn_unused_result));
/* Read and parse a dictionary file; err gets "PATH: line N: reason" or "PATH: strerror". */
int fuzz_dict_load(struct fuzz_dict *d, const char *path, char *err, size_t n)
	__attribute__((warn_unused_result));
/* Free the tokens; d is empty afterwards. */
void fuzz_dict_free(struct fuzz_dict *d);

/* The operators.  Each keeps the length within [1, max_len]. */
enum fuzz_mut_op {
	FUZZ_MUT_BITFLIP,	 /* flip one bit */
	FUZZ_MUT_BYTEFLIP,	 /* invert one byte (XOR 0xff) */
	FUZZ_MUT_ARITH8,	 /* add or subtract 1..35 to one byte */
	FUZZ_MUT_ARITH16,	 /* ... to a 16-bit word, little- or big-endian */
	FUZZ_MUT_ARITH32,	 /* ... to a 32-bit word, little- or big-endian */
	FUZZ_MUT_INTERESTING8,	 /* set a byte to an interesting value */
	FUZZ_MUT_INTERESTING16,	 /* ... a 16-bit word, either endian */
	FUZZ_MUT_INTERESTING32,	 /* ... a 32-bit word, either endian */
	FUZZ_MUT_RANDOM_BYTE,	 /* XOR one byte with 1..255 (always changes it) */
	FUZZ_MUT_DELETE,	 /* remove a block (never the whole input) */
	FUZZ_MUT_INSERT,	 /* insert a block of random bytes or of one repeated byte */
	FUZZ_MUT_DUPLICATE,	 /* insert a copy of a block of the input elsewhere */
	FUZZ_MUT_OVERWRITE,	 /* copy a block of the input over another place */
	FUZZ_MUT_SPLICE,	 /* a head of the input, then a tail of another corpus entry */
	FUZZ_MUT_DICT_INSERT,	 /* insert a dictionary token */
	FUZZ_MUT_DICT_OVERWRITE, /* write a dictionary token over the input */
	FUZZ_MUT_NR,
};

/* Operator names ("bitflip", ...), for tests and diagnostics. */
const char *fuzz_mut_name(enum fuzz_mut_op op);

/* The classic interesting values (signed, stored in the width's two's complement). */
extern const int8_t fuzz_interesting8[];
extern const int16_t fuzz_interesting16[];
extern const int32_t fuzz_interesting32[];
extern const size_t fuzz_nr_interesting8, fuzz_nr_interesting16, fuzz_nr_interesting32;

/* Largest block DELETE / INSERT / DUPLICATE / OVERWRITE move at once. */
#define FUZZ_MUT_MAX_BLOCK 256u

struct fuzz_mutator {
	struct fuzz_rng rng;
	const struct fuzz_dict *dict; /* may be NULL or empty */
	size_t max_len;		      /* >= 1: capacity of every buffer given to the mutator */
};

/* Apply `op` to buf (len bytes of a max_len buffer, 1 <= *len <= max_len).  `other` is a
 * second corpus entry for SPLICE (may be NULL).  0 on a change made; -EAGAIN when the operator
 * does not apply (input too short or already max_len long, no dictionary, no other entry):
 * buf and *len are then unchanged; -EINVAL for a bad op or *len outside [1, max_len]. */
int fuzz_mutate_op(struct fuzz_mutator *m, enum fuzz_mut_op op, uint8_t *buf, size_t *len,
		   const uint8_t *other, size_t other_len) __attribute__((warn_unused_result));
/* Stacked havoc: 2 to 16 operators drawn at random, each re-drawn when it does not apply.
 * Returns the number applied (at least 1 for any input). */
unsigned fuzz_mutate_havoc(struct fuzz_mutator *m, uint8_t *buf, size_t *len, const uint8_t *other,
			   size_t other_len);

#endif
