/* The snapshot fuzzer's coverage model, corpus and solutions (docs/fuzzing.md, "Host engine"):
 * AFL-style hit-count buckets over a byte map, a map of what was ever seen, inputs kept in
 * memory (and optionally on disk, named by their content hash), and crashing or hanging inputs
 * saved once per distinct coverage.  No KVM; file I/O only in the *_init/_add/_load calls. */
#ifndef IGNITION_FUZZ_CORPUS_H
#define IGNITION_FUZZ_CORPUS_H

#include "fuzz/mutate.h"

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FUZZ_COV_DEFAULT (64u * 1024u) /* bytes in a coverage map unless the target says */

/* A 64-bit hash of n bytes (not cryptographic): corpus file names and coverage identities. */
uint64_t fuzz_hash64(const void *p, size_t n);

/* ---- coverage ---- */

/* The bucket bit of a hit count: 0 -> 0, 1 -> 1, 2 -> 2, 3 -> 4, 4-7 -> 8, 8-15 -> 16,
 * 16-31 -> 32, 32-127 -> 64, 128-255 -> 128. */
uint8_t fuzz_cov_bucket(uint8_t hits);
/* Replace every hit count of a run's map by its bucket bit, in place. */
void fuzz_cov_classify(uint8_t *map, size_t size);
/* Bytes of a (classified or raw) map that are non-zero: the edges one run took. */
size_t fuzz_cov_count(const uint8_t *map, size_t size);
/* The identity of a run's classified map (what deduplicates solutions). */
uint64_t fuzz_cov_hash(const uint8_t *map, size_t size);

/* Everything seen so far: per edge, the union of the bucket bits of every kept run (the
 * complement of AFL's "virgin" map, which starts all ones). */
struct fuzz_cov {
	uint8_t *seen;
	size_t size;
	size_t edges; /* bytes of `seen` that are non-zero */
};

enum fuzz_cov_news {
	FUZZ_COV_NOTHING, /* nothing new */
	FUZZ_COV_BUCKET,  /* a known edge in a hit-count bucket not seen before */
	FUZZ_COV_EDGE,	  /* an edge never seen before */
};

/* A map of `size` bytes (> 0), nothing seen.  0 or -ENOMEM. */
int fuzz_cov_init(struct fuzz_cov *c, size_t size) __attribute__((warn_unused_result));
void fuzz_cov_free(struct fuzz_cov *c);
/* What a classified run map brings that `c` has not seen, without recording it. */
enum fuzz_cov_news fuzz_cov_check(const struct fuzz_cov *c, const uint8_t *map);
/* The same, and record it in `c` (edges grows by the new edges). */
enum fuzz_cov_news fuzz_cov_merge(struct fuzz_cov *c, const uint8_t *map);

/* ---- inputs on disk ---- */

#define FUZZ_MAX_SEED_FILES 65536u

/* Read a file, at most max_len bytes: *data (malloc'd, free it), *len, and *full_len, the
 * file's own size (greater than *len when it was cut).  0 or -errno (err: "PATH: reason"). */
int fuzz_file_read(const char *path, size_t max_len, uint8_t **data, size_t *len, size_t *full_len,
		   char *err, size_t n) __attribute__((warn_unused_result));

struct fuzz_input {
	uint8_t *data;
	size_t len;
};

struct fuzz_inputs {
	struct fuzz_input *v;
	size_t n;
	size_t cut;   /* files longer than max_len, kept cut to max_len */
	size_t empty; /* empty files, skipped */
};

/* Every regular file of `dir` (not recursive, in name order so runs are reproducible), each
 * cut to max_len bytes.  0, or -errno with a reason in err: the directory cannot be read, a
 * file in it cannot be read, it holds no non-empty regular file, or more than
 * FUZZ_MAX_SEED_FILES of them. */
int fuzz_inputs_load(struct fuzz_inputs *in, const char *dir, size_t max_len, char *err, size_t n)
	__attribute__((warn_unused_result));
void fuzz_inputs_free(struct fuzz_inputs *in);

/* ---- corpus ---- */

struct fuzz_entry {
	uint8_t *data;
	size_t len;
	uint64_t hash;	   /* fuzz_hash64 of the bytes: its file name */
	uint64_t exec_us;  /* duration of the run that added it */
	uint64_t found_at; /* exec number that added it */
	uint64_t picked;   /* times it was chosen for mutation */
};

struct fuzz_corpus {
	struct fuzz_entry *e;
	size_t n, cap;
	char dir[PATH_MAX]; /* "" : kept in memory only */
};

/* An empty corpus; with `dir` (may be NULL), every entry is also written there as a file named
 * by its content hash (16 hex digits); the directory is created when missing.  0 or -errno. */
int fuzz_corpus_init(struct fuzz_corpus *c, const char *dir, char *err, size_t n)
	__attribute__((warn_unused_result));
void fuzz_corpus_free(struct fuzz_corpus *c);
/* Keep a copy of an input (1 <= len).  *added is false when the same bytes are already in.
 * 0 or -errno (memory, or the file could not be written: err says which). */
int fuzz_corpus_add(struct fuzz_corpus *c, const uint8_t *data, size_t len, uint64_t exec_us,
		    uint64_t exec_no, bool *added, char *err, size_t n)
	__attribute__((warn_unused_result));
/* Choose the next entry to mutate (the corpus is not empty): a tournament of three uniformly
 * drawn entries won by the lowest cost (len + 64) * (1 + picked / 16), so short and
 * little-fuzzed entries (every new one among them) are chosen more often while every entry
 * keeps a chance.  The run time is not used: it would make sessions irreproducible.
 * Increments the winner's `picked`. */
size_t fuzz_corpus_pick(struct fuzz_corpus *c, struct fuzz_rng *r);

/* ---- solutions ---- */

enum fuzz_kind { FUZZ_KIND_CRASH, FUZZ_KIND_HANG };

struct fuzz_solution_meta {
	enum fuzz_kind kind;
	uint32_t code;	   /* the target's crash code (0 for a hang) */
	uint64_t cov_hash; /* fuzz_cov_hash of the run's classified map */
	size_t edges;	   /* edges that run took */
	uint64_t exec_no;  /* which execution found it (1 = the first) */
	double elapsed_s;  /* seconds into the session */
};

struct fuzz_solutions {
	char dir[PATH_MAX]; /* "": counted, not saved */
	struct {
		enum fuzz_kind kind;
		uint64_t cov_hash;
	} * seen;
	size_t n, cap;
	uint64_t total[2];  /* every crash / hang reported */
	uint64_t unique[2]; /* distinct (kind, coverage) pairs */
};

/* With `dir` (may be NULL), solutions are written there (created when missing).  0 or -errno. */
int fuzz_solutions_init(struct fuzz_solutions *s, const char *dir, char *err, size_t n)
	__attribute__((warn_unused_result));
void fuzz_solutions_free(struct fuzz_solutions *s);
/* Count a crash or hang; the first one of each (kind, coverage) is saved as
 * DIR/<kind>-<cov_hash as 16 hex digits> (the input) and the same name + ".json" (its
 * metadata).  A file of that name already there (an earlier session) is left alone.
 * *is_new: first of its coverage in this session.  0 or -errno. */
int fuzz_solutions_add(struct fuzz_solutions *s, const struct fuzz_solution_meta *m,
		       const uint8_t *data, size_t len, bool *is_new, char *err, size_t n)
	__attribute__((warn_unused_result));
/* "crash" or "hang". */
const char *fuzz_kind_name(enum fuzz_kind k);

#endif
