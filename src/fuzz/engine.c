#include "fuzz/engine.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Reset times: one bin per microsecond below RESET_EXACT (2^RESET_EXACT_LOG2), then log-linear:
 * each power of two [2^k, 2^(k+1)) cut into RESET_SUB equal bins, so a bin is at most 1/8 of
 * its values wide (a power-of-two bin said "8192" for anything from 8 to 16 ms). */
#define RESET_EXACT_LOG2 12u
#define RESET_EXACT	 (1u << RESET_EXACT_LOG2)
#define RESET_SUB_LOG2	 3u
#define RESET_SUB	 (1u << RESET_SUB_LOG2)
#define RESET_LOGLIN	 ((64u - RESET_EXACT_LOG2) * RESET_SUB)

struct fuzz_engine {
	struct fuzz_target *t;
	struct fuzz_engine_opts o;
	size_t max_len;
	uint64_t rng_seed;
	struct fuzz_mutator mut;
	struct fuzz_dict dict;
	struct fuzz_inputs seeds;
	struct fuzz_cov cov;
	struct fuzz_corpus corpus;
	struct fuzz_solutions sol;
	uint8_t *buf; /* the input being built, max_len bytes */
	uint64_t execs;
	uint64_t start_us;
	uint64_t end_us; /* when run() returned (0: still running) */
	uint64_t last_status_us, last_status_execs;
	enum fuzz_stop stop;
	bool ran;
	/* The byte sweep: a stack of corpus entries waiting for it, each with its progress. */
	struct sweep {
		size_t idx, pos;
		unsigned val;
	} * sweep;
	size_t sweep_n, sweep_cap;
	bool sweeping; /* the input being run comes from the sweep */
	uint64_t resets;
	uint64_t reset_min, reset_max; /* of the times noted: percentiles stay within them */
	uint64_t reset_exact[RESET_EXACT];
	uint64_t reset_loglin[RESET_LOGLIN];
};

/* The input run when no --seed directory is given: short, so that the first mutations reach
 * every byte, and long enough for the 32-bit operators. */
static const uint8_t builtin_seed[8] = "ignition";

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

const char *fuzz_outcome_name(enum fuzz_outcome o)
{
	switch (o) {
	case FUZZ_OK:
		return "ok";
	case FUZZ_CRASH:
		return "crash";
	case FUZZ_HANG:
		return "hang";
	default:
		return "error";
	}
}

int fuzz_engine_create(struct fuzz_engine **out, struct fuzz_target *t,
		       const struct fuzz_engine_opts *o, char *err, size_t n)
{
	struct fuzz_engine *e;
	int ret;

	*out = NULL;
	if (!t->run || !t->cov || !t->cov_size || !t->max_len) {
		snprintf(err, n, "fuzz target without run(), coverage map or input size");
		return -EINVAL;
	}
	if (o->max_len > t->max_len) {
		snprintf(err, n,
			 "--max-len %zu is larger than the target's input window (%zu bytes)",
			 o->max_len, t->max_len);
		return -EINVAL;
	}
	e = calloc(1, sizeof(*e));
	if (!e) {
		snprintf(err, n, "%s", strerror(ENOMEM));
		return -ENOMEM;
	}
	e->t = t;
	e->o = *o;
	if (!e->o.status)
		e->o.status = stderr;
	e->max_len = o->max_len ? o->max_len : t->max_len;
	if (o->has_rng_seed) {
		e->rng_seed = o->rng_seed;
	} else {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		/* 63 bits: the summary prints it as a JSON integer, --seed-value takes it back. */
		e->rng_seed = ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec) ^
			      ((uint64_t)getpid() << 32);
		e->rng_seed &= INT64_MAX;
	}
	fuzz_rng_seed(&e->mut.rng, e->rng_seed);
	e->mut.max_len = e->max_len;
	e->mut.dict = &e->dict;
	e->buf = malloc(e->max_len);
	if (!e->buf || fuzz_cov_init(&e->cov, t->cov_size)) {
		snprintf(err, n, "%s", strerror(ENOMEM));
		ret = -ENOMEM;
		goto fail;
	}
	if (o->dict_file && (ret = fuzz_dict_load(&e->dict, o->dict_file, err, n)))
		goto fail;
	if (o->seed_dir && (ret = fuzz_inputs_load(&e->seeds, o->seed_dir, e->max_len, err, n)))
		goto fail;
	if ((ret = fuzz_corpus_init(&e->corpus, o->corpus_dir, err, n)))
		goto fail;
	if ((ret = fuzz_solutions_init(&e->sol, o->solutions_dir, err, n)))
		goto fail;
	t->engine = e;
	*out = e;
	return 0;
fail:
	fuzz_engine_destroy(e);
	return ret;
}

void fuzz_engine_destroy(struct fuzz_engine *e)
{
	if (!e)
		return;
	if (e->t && e->t->engine == e)
		e->t->engine = NULL;
	fuzz_solutions_free(&e->sol);
	fuzz_corpus_free(&e->corpus);
	fuzz_inputs_free(&e->seeds);
	fuzz_dict_free(&e->dict);
	fuzz_cov_free(&e->cov);
	free(e->sweep);
	free(e->buf);
	free(e);
}

/* The log-linear bin of us >= RESET_EXACT: its power of two k (bit length - 1) and the next
 * RESET_SUB_LOG2 bits below the leading one. */
static unsigned loglin_bin(uint64_t us)
{
	unsigned k = 63u - (unsigned)__builtin_clzll(us);
	unsigned sub = (unsigned)(us >> (k - RESET_SUB_LOG2)) & (RESET_SUB - 1);

	return (k - RESET_EXACT_LOG2) * RESET_SUB + sub;
}

/* The middle of log-linear bin b: its lower bound plus half its width. */
static uint64_t loglin_mid(unsigned b)
{
	unsigned k = b / RESET_SUB + RESET_EXACT_LOG2, sub = b % RESET_SUB;
	uint64_t width = (uint64_t)1 << (k - RESET_SUB_LOG2);

	return (uint64_t)(RESET_SUB + sub) * width + width / 2;
}

void fuzz_engine_note_reset_us(struct fuzz_engine *e, uint64_t us)
{
	if (!e)
		return;
	if (!e->resets || us < e->reset_min)
		e->reset_min = us;
	if (us > e->reset_max)
		e->reset_max = us;
	e->resets++;
	if (us < RESET_EXACT)
		e->reset_exact[us]++;
	else
		e->reset_loglin[loglin_bin(us)]++;
}

int64_t fuzz_engine_reset_percentile(const struct fuzz_engine *e, double p)
{
	uint64_t want, seen = 0, v;

	if (!e->resets || p <= 0 || p > 100)
		return -1;
	/* The smallest value v with at least p% of the samples <= v (nearest rank). */
	want = (uint64_t)((double)e->resets * p / 100.0);
	if ((double)want < (double)e->resets * p / 100.0)
		want++;
	if (want == 0)
		want = 1;
	for (unsigned u = 0; u < RESET_EXACT; u++)
		if ((seen += e->reset_exact[u]) >= want)
			return u;
	for (unsigned b = 0; b < RESET_LOGLIN; b++) {
		if ((seen += e->reset_loglin[b]) < want)
			continue;
		/* Within half a bin (1/16 of the value) of the sample, and never outside the
		 * range of the samples (a bin holding only the largest one answers it). */
		v = loglin_mid(b);
		if (v > e->reset_max)
			v = e->reset_max;
		if (v < e->reset_min)
			v = e->reset_min;
		return v > INT64_MAX ? INT64_MAX : (int64_t)v;
	}
	return -1;
}

static double elapsed_s(const struct fuzz_engine *e)
{
	uint64_t end = e->end_us ? e->end_us : now_us();

	return e->start_us ? (double)(end - e->start_us) / 1e6 : 0.0;
}

void fuzz_engine_stats(const struct fuzz_engine *e, struct fuzz_stats *st)
{
	st->execs = e->execs;
	st->corpus = e->corpus.n;
	st->edges = e->cov.edges;
	st->crashes = e->sol.total[FUZZ_KIND_CRASH];
	st->unique_crashes = e->sol.unique[FUZZ_KIND_CRASH];
	st->hangs = e->sol.total[FUZZ_KIND_HANG];
	st->unique_hangs = e->sol.unique[FUZZ_KIND_HANG];
	st->elapsed_s = elapsed_s(e);
	st->rng_seed = e->rng_seed;
	st->max_len = e->max_len;
}

static void status_line(struct fuzz_engine *e, uint64_t now)
{
	struct fuzz_stats st;
	uint64_t dt = now - e->last_status_us, rate;

	fuzz_engine_stats(e, &st);
	rate = dt ? (e->execs - e->last_status_execs) * 1000000u / dt : 0;
	fprintf(e->o.status, FUZZ_STATUS_FMT, (unsigned long long)st.execs,
		(unsigned long long)rate, st.corpus, st.edges, (unsigned long long)st.crashes,
		(unsigned long long)st.hangs, (unsigned long long)((now - e->start_us) / 1000000u));
	fflush(e->o.status);
	e->last_status_us = now;
	e->last_status_execs = e->execs;
}

/* Run one input through the target: zero its map, run, classify.  0 or -errno (err set). */
static int target_run(struct fuzz_target *t, const uint8_t *in, size_t len, enum fuzz_outcome *out,
		      uint32_t *code, char *err, size_t n)
{
	int ret;

	memset(t->cov, 0, t->cov_size);
	*code = 0;
	*out = FUZZ_ERROR;
	t->err[0] = '\0';
	ret = t->run(t, in, len, out, code);
	if (!ret && (unsigned)*out > FUZZ_ERROR) {
		snprintf(t->err, sizeof(t->err), "unknown outcome %u", (unsigned)*out);
		*out = FUZZ_ERROR;
	}
	if (ret < 0 || *out == FUZZ_ERROR) {
		snprintf(err, n, "fuzz target: %s",
			 t->err[0] ? t->err
			 : ret < 0 ? strerror(-ret)
				   : "run failed");
		return ret < 0 ? ret : -EIO;
	}
	if (*out != FUZZ_CRASH)
		*code = 0;
	fuzz_cov_classify(t->cov, t->cov_size);
	return 0;
}

/* Queue a new corpus entry for the byte sweep: on top of the stack (swept next) or at its
 * bottom (after every other).  0 or -ENOMEM. */
static int sweep_push(struct fuzz_engine *e, size_t idx, bool top, char *err, size_t n)
{
	if (e->sweep_n == e->sweep_cap) {
		size_t cap = e->sweep_cap ? e->sweep_cap * 2 : 64;
		struct sweep *q = realloc(e->sweep, cap * sizeof(*q));

		if (!q) {
			snprintf(err, n, "%s", strerror(ENOMEM));
			return -ENOMEM;
		}
		e->sweep = q;
		e->sweep_cap = cap;
	}
	if (top) {
		e->sweep[e->sweep_n++] = (struct sweep){ .idx = idx, .pos = 0, .val = 1 };
	} else {
		memmove(e->sweep + 1, e->sweep, e->sweep_n * sizeof(*e->sweep));
		e->sweep[0] = (struct sweep){ .idx = idx, .pos = 0, .val = 1 };
		e->sweep_n++;
	}
	return 0;
}

/* The next input of the byte sweep into e->buf: the first FUZZ_SWEEP_BYTES bytes of each new
 * entry, one at a time, XORed with 1..255, i.e. set to every other value.  This is AFL's
 * deterministic stage cut down to the one operator that walks through a magic value byte by
 * byte: each byte that matches is a new edge, hence a new entry one byte away from a known
 * one, and such entries are swept next (top of the stack: they are the frontier; the sweep
 * they interrupted resumes after them).  Entries that havoc or the seeds found wait at the
 * bottom.  Havoc alone reaches a magic value only by luck.  False when no entry waits. */
static bool sweep_next(struct fuzz_engine *e, size_t *len)
{
	while (e->sweep_n) {
		struct sweep *w = &e->sweep[e->sweep_n - 1];
		const struct fuzz_entry *en = &e->corpus.e[w->idx];
		size_t limit = en->len < FUZZ_SWEEP_BYTES ? en->len : FUZZ_SWEEP_BYTES;

		if (w->pos < limit) {
			memcpy(e->buf, en->data, en->len);
			e->buf[w->pos] ^= (uint8_t)w->val;
			*len = en->len;
			if (++w->val == 256) {
				w->val = 1;
				w->pos++;
			}
			return true;
		}
		e->sweep_n--;
	}
	return false;
}

/* One execution: run, then keep the input (new coverage, or always for a seed) or save it as a
 * solution.  0 or -errno. */
static int execute(struct fuzz_engine *e, const uint8_t *in, size_t len, bool seed, char *err,
		   size_t n)
{
	struct fuzz_target *t = e->t;
	enum fuzz_outcome out;
	uint32_t code;
	uint64_t t0 = now_us(), dt;
	bool added;
	int ret;

	ret = target_run(t, in, len, &out, &code, err, n);
	dt = now_us() - t0;
	e->execs++;
	if (ret)
		return ret;
	if (out == FUZZ_OK) {
		/* Seeds always enter the corpus (a target without coverage still has something to
		 * mutate); later inputs only when they bring a new edge or bucket. */
		if (fuzz_cov_merge(&e->cov, t->cov) == FUZZ_COV_NOTHING && !seed)
			return 0;
		ret = fuzz_corpus_add(&e->corpus, in, len, dt, e->execs, &added, err, n);
		if (!ret && added)
			ret = sweep_push(e, e->corpus.n - 1, e->sweeping, err, n);
		return ret;
	}
	struct fuzz_solution_meta m = {
		.kind = out == FUZZ_HANG ? FUZZ_KIND_HANG : FUZZ_KIND_CRASH,
		.code = code,
		.cov_hash = fuzz_cov_hash(t->cov, t->cov_size),
		.edges = fuzz_cov_count(t->cov, t->cov_size),
		.exec_no = e->execs,
		.elapsed_s = (double)(now_us() - e->start_us) / 1e6,
	};
	return fuzz_solutions_add(&e->sol, &m, in, len, &added, err, n);
}

/* Should the loop end now?  Sets e->stop. */
static bool must_stop(struct fuzz_engine *e, volatile sig_atomic_t *stop, uint64_t now)
{
	if (stop && *stop)
		e->stop = FUZZ_STOP_SIGNAL;
	else if (e->o.runs && e->execs >= e->o.runs)
		e->stop = FUZZ_STOP_RUNS;
	else if (e->o.time_s > 0 && (double)(now - e->start_us) >= e->o.time_s * 1e6)
		e->stop = FUZZ_STOP_TIME;
	else if (e->o.until_crash && e->sol.unique[FUZZ_KIND_CRASH])
		e->stop = FUZZ_STOP_CRASH;
	return e->stop != FUZZ_STOP_NONE;
}

/* Status line when due, and the stop check. */
static bool tick(struct fuzz_engine *e, volatile sig_atomic_t *stop)
{
	uint64_t now = now_us();

	if (e->o.status_ms && now - e->last_status_us >= (uint64_t)e->o.status_ms * 1000u)
		status_line(e, now);
	return must_stop(e, stop, now);
}

int fuzz_engine_run(struct fuzz_engine *e, volatile sig_atomic_t *stop, char *err, size_t n)
{
	int ret = 0;

	if (e->ran) {
		snprintf(err, n, "fuzz engine already ran");
		return -EINVAL;
	}
	e->ran = true;
	e->start_us = e->last_status_us = now_us();
	if (e->o.status_ms)
		fprintf(e->o.status,
			"fuzz: seed-value=%llu max-len=%zu coverage-map=%zu seeds=%zu%s "
			"dictionary=%zu\n",
			(unsigned long long)e->rng_seed, e->max_len, e->t->cov_size,
			e->o.seed_dir ? e->seeds.n : 1, e->o.seed_dir ? "" : " (built-in)",
			e->dict.n);

	/* Every seed once, before any mutation. */
	if (!e->o.seed_dir) {
		size_t len = sizeof(builtin_seed) < e->max_len ? sizeof(builtin_seed) : e->max_len;

		if (!tick(e, stop) && (ret = execute(e, builtin_seed, len, true, err, n)))
			goto out;
	}
	for (size_t i = 0; i < e->seeds.n; i++) {
		if (tick(e, stop))
			goto out;
		if ((ret = execute(e, e->seeds.v[i].data, e->seeds.v[i].len, true, err, n)))
			goto out;
	}
	if (e->stop == FUZZ_STOP_NONE && e->corpus.n == 0) {
		snprintf(err, n,
			 "every seed input crashed or hung (see the solutions); "
			 "nothing left to mutate");
		ret = -EINVAL;
		goto out;
	}

	/* Half of the executions go to the byte sweep while entries wait for it, the others
	 * (all of them once the queue is empty) to havoc. */
	while (!tick(e, stop)) {
		const struct fuzz_entry *pick, *other = NULL;
		size_t len;

		if ((e->execs & 1) && sweep_next(e, &len)) {
			e->sweeping = true;
			ret = execute(e, e->buf, len, false, err, n);
			e->sweeping = false;
			if (ret)
				goto out;
			continue;
		}
		pick = &e->corpus.e[fuzz_corpus_pick(&e->corpus, &e->mut.rng)];
		len = pick->len;
		if (e->corpus.n > 1)
			other = &e->corpus.e[fuzz_rng_below(&e->mut.rng, e->corpus.n)];
		memcpy(e->buf, pick->data, len);
		/* The entries stay put while buf is mutated: the corpus only grows in execute(). */
		fuzz_mutate_havoc(&e->mut, e->buf, &len,
				  other && other != pick ? other->data : NULL,
				  other && other != pick ? other->len : 0);
		if ((ret = execute(e, e->buf, len, false, err, n)))
			goto out;
	}
out:
	if (ret)
		e->stop = FUZZ_STOP_ERROR;
	e->end_us = now_us();
	return ret;
}

static const char *stop_name(enum fuzz_stop s)
{
	static const char *const names[] = {
		[FUZZ_STOP_NONE] = "none",   [FUZZ_STOP_RUNS] = "runs",
		[FUZZ_STOP_TIME] = "time",   [FUZZ_STOP_SIGNAL] = "signal",
		[FUZZ_STOP_ERROR] = "error", [FUZZ_STOP_CRASH] = "crash",
	};

	return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "?";
}

/* v >= 0 rounded to 1/scale (no libm). */
static double round_to(double v, double scale)
{
	return (double)(uint64_t)(v * scale + 0.5) / scale;
}

int fuzz_engine_summary(const struct fuzz_engine *e, FILE *out)
{
	struct fuzz_stats st;
	json_t *j = json_object();
	char *text;
	int ret = 0;

	if (!j)
		return -ENOMEM;
	fuzz_engine_stats(e, &st);
	ret |= json_object_set_new(j, "execs", json_integer((json_int_t)st.execs));
	ret |= json_object_set_new(
		j, "execs_per_s",
		json_real(round_to(st.elapsed_s > 0 ? st.execs / st.elapsed_s : 0, 10)));
	ret |= json_object_set_new(j, "corpus", json_integer((json_int_t)st.corpus));
	ret |= json_object_set_new(j, "edges", json_integer((json_int_t)st.edges));
	ret |= json_object_set_new(j, "crashes", json_integer((json_int_t)st.crashes));
	ret |= json_object_set_new(j, "unique_crashes",
				   json_integer((json_int_t)st.unique_crashes));
	ret |= json_object_set_new(j, "hangs", json_integer((json_int_t)st.hangs));
	ret |= json_object_set_new(j, "unique_hangs", json_integer((json_int_t)st.unique_hangs));
	ret |= json_object_set_new(j, "elapsed_s", json_real(round_to(st.elapsed_s, 1000)));
	ret |= json_object_set_new(j, "seed", json_integer((json_int_t)st.rng_seed));
	ret |= json_object_set_new(j, "max_len", json_integer((json_int_t)st.max_len));
	ret |= json_object_set_new(j, "stop", json_string(stop_name(e->stop)));
	if (e->resets) {
		ret |= json_object_set_new(j, "resets", json_integer((json_int_t)e->resets));
		ret |= json_object_set_new(j, "reset_us_p50",
					   json_integer(fuzz_engine_reset_percentile(e, 50)));
		ret |= json_object_set_new(j, "reset_us_p99",
					   json_integer(fuzz_engine_reset_percentile(e, 99)));
	}
	text = ret ? NULL : json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(j);
	if (!text)
		return -ENOMEM;
	ret = fprintf(out, "%s\n", text) < 0 ? -EIO : 0;
	fflush(out);
	free(text);
	return ret;
}

int fuzz_engine_replay(struct fuzz_target *t, const uint8_t *in, size_t len, struct fuzz_replay *r,
		       char *err, size_t n)
{
	int ret;

	memset(r, 0, sizeof(*r));
	if (!t->run || !t->cov || !t->cov_size) {
		snprintf(err, n, "fuzz target without run() or coverage map");
		return -EINVAL;
	}
	if (len == 0 || len > t->max_len) {
		snprintf(err, n, "input of %zu bytes: the target takes 1 to %zu", len, t->max_len);
		return -EINVAL;
	}
	ret = target_run(t, in, len, &r->outcome, &r->code, err, n);
	if (ret)
		return ret;
	r->len = len;
	r->edges = fuzz_cov_count(t->cov, t->cov_size);
	r->cov_hash = fuzz_cov_hash(t->cov, t->cov_size);
	return 0;
}

void fuzz_replay_format(const struct fuzz_replay *r, char *buf, size_t n)
{
	char code[24] = "";

	if (r->outcome == FUZZ_CRASH)
		snprintf(code, sizeof(code), " code=%u", r->code);
	snprintf(buf, n, "%s%s len=%zu edges=%zu edges_hash=%016llx", fuzz_outcome_name(r->outcome),
		 code, r->len, r->edges, (unsigned long long)r->cov_hash);
}
