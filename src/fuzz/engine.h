/* The snapshot fuzzer's host loop (docs/fuzzing.md, "Host engine"): run the seeds, then pick,
 * mutate and run inputs through a target, keep what finds new coverage, save crashes and hangs,
 * report.  The target is anything behind `struct fuzz_target`: the VM (src/fuzz/vm_target.h) or
 * an in-process function in the unit tests.  Single-threaded; no KVM here. */
#ifndef IGNITION_FUZZ_ENGINE_H
#define IGNITION_FUZZ_ENGINE_H

#include "fuzz/corpus.h"

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum fuzz_outcome {
	FUZZ_OK,    /* the input ran to its end */
	FUZZ_CRASH, /* the target crashed (code says how: the target's own numbering) */
	FUZZ_HANG,  /* the target did not finish within its time limit */
	FUZZ_ERROR, /* the target could not run the input: the engine stops */
};

struct fuzz_engine;

/* Bytes at the start of every new corpus entry that the engine sets, one at a time, to each of
 * their 255 other values (the "byte sweep", see engine.c), interleaved with havoc. */
#define FUZZ_SWEEP_BYTES 32u

/* What the engine drives.  The target owns every field except `engine`. */
struct fuzz_target {
	void *ctx;
	/* Run one input, 1 <= len <= max_len bytes, from the target's clean state, and set *out
	 * (and *code for FUZZ_CRASH).  Before each call the ENGINE zeroes cov[0, cov_size); after
	 * it the engine reads the hit counts (and classifies them in place), so the map must not
	 * change between the return and the next call.  Returns 0, or -errno when the target
	 * itself broke (VM gone, I/O error): the engine then stops with t->err as the reason,
	 * exactly as for *out == FUZZ_ERROR. */
	int (*run)(struct fuzz_target *t, const uint8_t *in, size_t len, enum fuzz_outcome *out,
		   uint32_t *code);
	uint8_t *cov;	 /* the coverage map: one hit counter (saturating or wrapping) per edge */
	size_t cov_size; /* > 0 */
	size_t max_len;	 /* the largest input the target takes (its input window) */
	/* Set by fuzz_engine_create() (NULL otherwise): a target that measures its reset passes
	 * each duration to fuzz_engine_note_reset_us(t->engine, us). */
	struct fuzz_engine *engine;
	char err[256]; /* why run() failed */
};

struct fuzz_engine_opts {
	const char *seed_dir;	   /* initial corpus (NULL: one built-in input) */
	const char *corpus_dir;	   /* NULL: the corpus stays in memory */
	const char *solutions_dir; /* NULL: crashes and hangs are counted, not saved */
	const char *dict_file;	   /* NULL: no dictionary */
	uint64_t runs;		   /* stop after this many executions, seeds included (0: none) */
	double time_s;		   /* stop after this many seconds (0: no limit) */
	size_t max_len;		   /* largest input made (0: the target's max_len; not above it) */
	uint64_t rng_seed;	   /* the mutator's seed when has_rng_seed */
	bool has_rng_seed;	   /* else one is drawn from the clock and the pid */
	unsigned status_ms;	   /* a status line this often (0: none) */
	bool until_crash;	   /* stop at the first crash (libFuzzer's default) */
	FILE *status;		   /* where status lines go (NULL: stderr) */
};

/* Counters, as in the status line and the summary. */
struct fuzz_stats {
	uint64_t execs;
	size_t corpus;
	size_t edges;
	uint64_t crashes, unique_crashes;
	uint64_t hangs, unique_hangs;
	double elapsed_s;
	uint64_t rng_seed;
	size_t max_len;
};

/* How the last fuzz_engine_run() ended (the summary's "stop"). */
enum fuzz_stop {
	FUZZ_STOP_NONE,
	FUZZ_STOP_RUNS,
	FUZZ_STOP_TIME,
	FUZZ_STOP_SIGNAL,
	FUZZ_STOP_ERROR,
	FUZZ_STOP_CRASH, /* --until-crash: the first crash */
};

/* Set up an engine for target t: load the dictionary and the seeds, create the corpus and
 * solutions directories.  0 or -errno with a one-line reason in err. */
int fuzz_engine_create(struct fuzz_engine **out, struct fuzz_target *t,
		       const struct fuzz_engine_opts *o, char *err, size_t n)
	__attribute__((warn_unused_result));
/* Run the seeds, then fuzz until o->runs, o->time_s or *stop (may be NULL; set by the caller's
 * signal handler) ends it.  0 when a limit or *stop ended it; -errno on an error (the target
 * failed, a file could not be written, every seed crashed).  May be called once. */
int fuzz_engine_run(struct fuzz_engine *e, volatile sig_atomic_t *stop, char *err, size_t n)
	__attribute__((warn_unused_result));
void fuzz_engine_stats(const struct fuzz_engine *e, struct fuzz_stats *st);
/* The one-line JSON summary: execs, execs_per_s, corpus, edges, crashes, unique_crashes, hangs,
 * unique_hangs, elapsed_s, seed, max_len, stop, and reset_us_p50 / reset_us_p99 / resets when
 * the target reported reset times.  0 or -errno. */
int fuzz_engine_summary(const struct fuzz_engine *e, FILE *out) __attribute__((warn_unused_result));
/* Record one reset duration in microseconds (e may be NULL: ignored). */
void fuzz_engine_note_reset_us(struct fuzz_engine *e, uint64_t us);
/* The p-th percentile (0 < p <= 100, nearest rank) of the reset times noted, or -1 if none:
 * exact below 4096 us; above, the middle of its log-linear bin (8 per power of two), i.e.
 * within 1/16 of the exact value, kept within the smallest and largest time noted. */
int64_t fuzz_engine_reset_percentile(const struct fuzz_engine *e, double p);
void fuzz_engine_destroy(struct fuzz_engine *e);

/* The status line format (one per status_ms): "#EXECS execs/s=N corpus=N edges=N crashes=N
 * hangs=N elapsed=Ns" where execs/s is the rate since the previous line and crashes / hangs
 * count every one (the summary's fields of the same names). */
#define FUZZ_STATUS_FMT \
	"#%llu execs/s=%llu corpus=%zu edges=%zu crashes=%llu hangs=%llu elapsed=%llus\n"

/* ---- one input ---- */

struct fuzz_replay {
	enum fuzz_outcome outcome;
	uint32_t code;
	size_t len;
	size_t edges;	   /* edges the run took */
	uint64_t cov_hash; /* fuzz_cov_hash of its classified map (a solution's "edges_hash") */
};

/* Run one input once through t (zeroing, then classifying its map).  0, or -errno when the
 * target failed (t->err, copied to err). */
int fuzz_engine_replay(struct fuzz_target *t, const uint8_t *in, size_t len, struct fuzz_replay *r,
		       char *err, size_t n) __attribute__((warn_unused_result));
/* "ok|crash|hang|error" */
const char *fuzz_outcome_name(enum fuzz_outcome o);
/* The replay line: "crash code=N len=N edges=N edges_hash=HEX" (code only for a crash). */
void fuzz_replay_format(const struct fuzz_replay *r, char *buf, size_t n);

#endif
