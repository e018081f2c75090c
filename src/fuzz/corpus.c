#include "fuzz/corpus.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- hashing ---- */

static uint64_t mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

uint64_t fuzz_hash64(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint64_t h = 0x6a09e667f3bcc909ull ^ ((uint64_t)n * 0x9e3779b97f4a7c15ull);
	size_t i = 0;

	/* Eight bytes at a time (memcpy: the map may sit anywhere), each word mixed before it
	 * enters the state so that zero words still move it. */
	for (; i + 8 <= n; i += 8) {
		uint64_t w;

		memcpy(&w, b + i, 8);
		h = (h ^ mix64(w + i)) * 0x9fb21c651e98df25ull;
		h ^= h >> 29;
	}
	if (i < n) {
		uint64_t w = 0;

		memcpy(&w, b + i, n - i);
		h = (h ^ mix64(w + i + 1)) * 0x9fb21c651e98df25ull;
	}
	return mix64(h);
}

/* ---- coverage ---- */

/* Hit count -> bucket bit (GNU range designators, gnu11). */
static const uint8_t bucket_table[256] = {
	[1] = 1,	 [2] = 2,	   [3] = 4,	      [4 ... 7] = 8,
	[8 ... 15] = 16, [16 ... 31] = 32, [32 ... 127] = 64, [128 ... 255] = 128,
};

uint8_t fuzz_cov_bucket(uint8_t hits)
{
	return bucket_table[hits];
}

void fuzz_cov_classify(uint8_t *map, size_t size)
{
	size_t i = 0;

	/* Most of a map is zero: skip it a word at a time. */
	for (; i + 8 <= size; i += 8) {
		uint64_t w;

		memcpy(&w, map + i, 8);
		if (!w)
			continue;
		for (size_t k = i; k < i + 8; k++)
			map[k] = bucket_table[map[k]];
	}
	for (; i < size; i++)
		map[i] = bucket_table[map[i]];
}

size_t fuzz_cov_count(const uint8_t *map, size_t size)
{
	size_t i = 0, count = 0;

	for (; i + 8 <= size; i += 8) {
		uint64_t w;

		memcpy(&w, map + i, 8);
		if (!w)
			continue;
		for (size_t k = i; k < i + 8; k++)
			count += map[k] != 0;
	}
	for (; i < size; i++)
		count += map[i] != 0;
	return count;
}

uint64_t fuzz_cov_hash(const uint8_t *map, size_t size)
{
	return fuzz_hash64(map, size);
}

int fuzz_cov_init(struct fuzz_cov *c, size_t size)
{
	c->size = size;
	c->edges = 0;
	c->seen = size ? calloc(1, size) : NULL;
	return c->seen ? 0 : -ENOMEM;
}

void fuzz_cov_free(struct fuzz_cov *c)
{
	free(c->seen);
	c->seen = NULL;
	c->size = c->edges = 0;
}

static enum fuzz_cov_news cov_scan(struct fuzz_cov *c, const uint8_t *map, bool record)
{
	enum fuzz_cov_news news = FUZZ_COV_NOTHING;
	size_t i = 0, size = c->size;

	for (; i < size; i += 8) {
		size_t end = i + 8 <= size ? i + 8 : size;

		if (end == i + 8) {
			uint64_t w, s;

			memcpy(&w, map + i, 8);
			memcpy(&s, c->seen + i, 8);
			if (!(w & ~s))
				continue;
		}
		for (size_t k = i; k < end; k++) {
			uint8_t fresh = map[k] & (uint8_t)~c->seen[k];

			if (!fresh)
				continue;
			if (!c->seen[k]) {
				news = FUZZ_COV_EDGE;
				if (record)
					c->edges++;
			} else if (news == FUZZ_COV_NOTHING) {
				news = FUZZ_COV_BUCKET;
			}
			if (record)
				c->seen[k] |= map[k];
			else if (news == FUZZ_COV_EDGE)
				return news;
		}
	}
	return news;
}

enum fuzz_cov_news fuzz_cov_check(const struct fuzz_cov *c, const uint8_t *map)
{
	return cov_scan((struct fuzz_cov *)c, map, false);
}

enum fuzz_cov_news fuzz_cov_merge(struct fuzz_cov *c, const uint8_t *map)
{
	return cov_scan(c, map, true);
}

/* ---- files ---- */

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Create `path` with exactly these bytes; -EEXIST when it is already there (left alone). */
static int write_new_file(const char *path, const uint8_t *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644), ret;

	if (fd < 0)
		return -errno;
	ret = write_all(fd, p, n);
	if (close(fd) < 0 && !ret)
		ret = -errno;
	if (ret)
		unlink(path);
	return ret;
}

/* The directory exists (created when missing, one level).  0 or -errno. */
static int ensure_dir(const char *what, const char *dir, char *err, size_t n)
{
	struct stat st;

	if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		int ret = -errno;

		snprintf(err, n, "%s '%s': %s", what, dir, strerror(-ret));
		return ret;
	}
	if (stat(dir, &st) < 0) {
		int ret = -errno;

		snprintf(err, n, "%s '%s': %s", what, dir, strerror(-ret));
		return ret;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, n, "%s '%s' is not a directory", what, dir);
		return -ENOTDIR;
	}
	if (access(dir, W_OK | X_OK) < 0) {
		int ret = -errno;

		snprintf(err, n, "%s '%s': %s", what, dir, strerror(-ret));
		return ret;
	}
	return 0;
}

int fuzz_file_read(const char *path, size_t max_len, uint8_t **data, size_t *len, size_t *full_len,
		   char *err, size_t n)
{
	struct stat st;
	uint8_t *buf = NULL;
	size_t want, got = 0;
	int fd, ret = 0;

	*data = NULL;
	*len = *full_len = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		ret = -errno;
		snprintf(err, n, "'%s': %s", path, strerror(-ret));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, n, "'%s' is not a regular file", path);
		ret = -EINVAL;
		goto out;
	}
	want = (uint64_t)st.st_size < max_len ? (size_t)st.st_size : max_len;
	buf = malloc(want ? want : 1);
	if (!buf) {
		snprintf(err, n, "'%s': %s", path, strerror(ENOMEM));
		ret = -ENOMEM;
		goto out;
	}
	while (got < want) {
		ssize_t r = read(fd, buf + got, want - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			ret = -errno;
			snprintf(err, n, "'%s': %s", path, strerror(-ret));
			free(buf);
			goto out;
		}
		if (r == 0)
			break; /* the file shrank meanwhile: take what there is */
		got += (size_t)r;
	}
	*data = buf;
	*len = got;
	*full_len = (size_t)st.st_size < got ? got : (size_t)st.st_size;
out:
	if (fd >= 0)
		close(fd);
	return ret;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int fuzz_inputs_load(struct fuzz_inputs *in, const char *dir, size_t max_len, char *err, size_t n)
{
	char **names = NULL, path[PATH_MAX];
	size_t nr = 0, cap = 0;
	struct dirent *de;
	int ret = 0;
	DIR *d;

	memset(in, 0, sizeof(*in));
	d = opendir(dir);
	if (!d) {
		ret = -errno;
		snprintf(err, n, "seed directory '%s': %s", dir, strerror(-ret));
		return ret;
	}
	while ((errno = 0, de = readdir(d))) {
		struct stat st;

		if (de->d_name[0] == '.')
			continue; /* ".", "..", and hidden files (editor and rsync leftovers) */
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) >= sizeof(path))
			continue;
		if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
			continue;
		if (nr == FUZZ_MAX_SEED_FILES) {
			snprintf(err, n, "seed directory '%s' has more than %u files", dir,
				 FUZZ_MAX_SEED_FILES);
			ret = -E2BIG;
			goto out_names;
		}
		if (nr == cap) {
			char **nn = realloc(names, (cap ? cap * 2 : 64) * sizeof(*nn));

			if (!nn) {
				ret = -ENOMEM;
				goto out_oom;
			}
			names = nn;
			cap = cap ? cap * 2 : 64;
		}
		if (!(names[nr] = strdup(de->d_name))) {
			ret = -ENOMEM;
			goto out_oom;
		}
		nr++;
	}
	if (errno) {
		ret = -errno;
		snprintf(err, n, "seed directory '%s': %s", dir, strerror(-ret));
		goto out_names;
	}
	if (nr)
		qsort(names, nr, sizeof(*names), name_cmp);
	in->v = calloc(nr ? nr : 1, sizeof(*in->v));
	if (!in->v) {
		ret = -ENOMEM;
		goto out_oom;
	}
	for (size_t i = 0; i < nr; i++) {
		char why[PATH_MAX + 64];
		uint8_t *data;
		size_t len, full;

		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		ret = fuzz_file_read(path, max_len, &data, &len, &full, why, sizeof(why));
		if (ret) {
			snprintf(err, n, "seed file %s", why);
			goto out_inputs;
		}
		if (len == 0) {
			free(data);
			in->empty++;
			continue;
		}
		in->cut += full > len;
		in->v[in->n].data = data;
		in->v[in->n].len = len;
		in->n++;
	}
	if (in->n == 0) {
		snprintf(err, n, "seed directory '%s' has no non-empty regular file", dir);
		ret = -ENOENT;
		goto out_inputs;
	}
	goto out_names;

out_oom:
	snprintf(err, n, "seed directory '%s': %s", dir, strerror(ENOMEM));
out_inputs:
	fuzz_inputs_free(in);
out_names:
	for (size_t i = 0; i < nr; i++)
		free(names[i]);
	free(names);
	closedir(d);
	return ret;
}

void fuzz_inputs_free(struct fuzz_inputs *in)
{
	for (size_t i = 0; in->v && i < in->n; i++)
		free(in->v[i].data);
	free(in->v);
	memset(in, 0, sizeof(*in));
}

/* ---- corpus ---- */

int fuzz_corpus_init(struct fuzz_corpus *c, const char *dir, char *err, size_t n)
{
	memset(c, 0, sizeof(*c));
	if (!dir)
		return 0;
	if (strlen(dir) + 18 >= sizeof(c->dir)) {
		snprintf(err, n, "corpus directory '%s': name too long", dir);
		return -ENAMETOOLONG;
	}
	snprintf(c->dir, sizeof(c->dir), "%s", dir);
	return ensure_dir("corpus directory", dir, err, n);
}

void fuzz_corpus_free(struct fuzz_corpus *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->e[i].data);
	free(c->e);
	c->e = NULL;
	c->n = c->cap = 0;
}

int fuzz_corpus_add(struct fuzz_corpus *c, const uint8_t *data, size_t len, uint64_t exec_us,
		    uint64_t exec_no, bool *added, char *err, size_t n)
{
	uint64_t h = fuzz_hash64(data, len);
	struct fuzz_entry *e;

	*added = false;
	/* Additions are rare (new coverage only): a linear look-up is fine. */
	for (size_t i = 0; i < c->n; i++)
		if (c->e[i].hash == h && c->e[i].len == len && !memcmp(c->e[i].data, data, len))
			return 0;
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 64;

		e = realloc(c->e, cap * sizeof(*e));
		if (!e)
			goto oom;
		c->e = e;
		c->cap = cap;
	}
	e = &c->e[c->n];
	e->data = malloc(len);
	if (!e->data)
		goto oom;
	memcpy(e->data, data, len);
	e->len = len;
	e->hash = h;
	e->exec_us = exec_us;
	e->found_at = exec_no;
	e->picked = 0;
	if (c->dir[0]) {
		char path[PATH_MAX + 32]; /* dir was checked shorter than PATH_MAX - 18 */
		int ret;

		snprintf(path, sizeof(path), "%s/%016llx", c->dir, (unsigned long long)h);
		ret = write_new_file(path, data, len);
		if (ret && ret != -EEXIST) {
			snprintf(err, n, "corpus file '%s': %s", path, strerror(-ret));
			free(e->data);
			return ret;
		}
	}
	c->n++;
	*added = true;
	return 0;
oom:
	snprintf(err, n, "corpus: %s", strerror(ENOMEM));
	return -ENOMEM;
}

/* The run time is left out on purpose: it varies from run to run, and a cost that depends on
 * it would make two sessions with the same --seed-value diverge.  For a snapshot target a run's
 * time follows its length anyway (the reset dominates). */
static double entry_cost(const struct fuzz_entry *e)
{
	return ((double)e->len + 64.0) * (1.0 + (double)e->picked / 16.0);
}

size_t fuzz_corpus_pick(struct fuzz_corpus *c, struct fuzz_rng *r)
{
	size_t best = fuzz_rng_below(r, c->n);

	for (int i = 0; i < 2; i++) {
		size_t k = fuzz_rng_below(r, c->n);

		if (entry_cost(&c->e[k]) < entry_cost(&c->e[best]))
			best = k;
	}
	c->e[best].picked++;
	return best;
}

/* ---- solutions ---- */

const char *fuzz_kind_name(enum fuzz_kind k)
{
	return k == FUZZ_KIND_HANG ? "hang" : "crash";
}

int fuzz_solutions_init(struct fuzz_solutions *s, const char *dir, char *err, size_t n)
{
	memset(s, 0, sizeof(*s));
	if (!dir)
		return 0;
	if (strlen(dir) + 32 >= sizeof(s->dir)) {
		snprintf(err, n, "solutions directory '%s': name too long", dir);
		return -ENAMETOOLONG;
	}
	snprintf(s->dir, sizeof(s->dir), "%s", dir);
	return ensure_dir("solutions directory", dir, err, n);
}

void fuzz_solutions_free(struct fuzz_solutions *s)
{
	free(s->seen);
	s->seen = NULL;
	s->n = s->cap = 0;
}

static int save_solution(const struct fuzz_solutions *s, const struct fuzz_solution_meta *m,
			 const uint8_t *data, size_t len, char *err, size_t n)
{
	char path[PATH_MAX + 48], hex[17]; /* dir was checked shorter than PATH_MAX - 32 */
	char *text;
	json_t *j;
	int ret;

	snprintf(path, sizeof(path), "%s/%s-%016llx", s->dir, fuzz_kind_name(m->kind),
		 (unsigned long long)m->cov_hash);
	ret = write_new_file(path, data, len);
	if (ret == -EEXIST)
		return 0; /* an earlier session found the same one */
	if (ret) {
		snprintf(err, n, "solution file '%s': %s", path, strerror(-ret));
		return ret;
	}
	j = json_object();
	if (!j)
		goto oom;
	snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)m->cov_hash);
	ret = json_object_set_new(j, "kind", json_string(fuzz_kind_name(m->kind)));
	ret |= json_object_set_new(j, "code", json_integer(m->code));
	ret |= json_object_set_new(j, "len", json_integer((json_int_t)len));
	ret |= json_object_set_new(j, "exec", json_integer((json_int_t)m->exec_no));
	ret |= json_object_set_new(j, "found_s", json_real(m->elapsed_s));
	ret |= json_object_set_new(j, "found_unix", json_integer((json_int_t)time(NULL)));
	ret |= json_object_set_new(j, "edges", json_integer((json_int_t)m->edges));
	ret |= json_object_set_new(j, "edges_hash", json_string(hex));
	snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)fuzz_hash64(data, len));
	ret |= json_object_set_new(j, "input_hash", json_string(hex));
	if (ret) {
		json_decref(j);
		goto oom;
	}
	strcat(path, ".json");
	/* Created exclusively like the input itself (json_dump_file would open it O_TRUNC): the
	 * host loop's seccomp filter lets it create new files only. */
	text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(j);
	if (!text)
		goto oom;
	ret = write_new_file(path, (const uint8_t *)text, strlen(text));
	free(text);
	if (ret && ret != -EEXIST) {
		snprintf(err, n, "solution metadata '%s': %s", path, strerror(-ret));
		return ret;
	}
	return 0;
oom:
	snprintf(err, n, "solution metadata: %s", strerror(ENOMEM));
	return -ENOMEM;
}

int fuzz_solutions_add(struct fuzz_solutions *s, const struct fuzz_solution_meta *m,
		       const uint8_t *data, size_t len, bool *is_new, char *err, size_t n)
{
	int k = m->kind == FUZZ_KIND_HANG;

	*is_new = false;
	s->total[k]++;
	for (size_t i = 0; i < s->n; i++)
		if (s->seen[i].kind == m->kind && s->seen[i].cov_hash == m->cov_hash)
			return 0;
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 16;
		void *p = realloc(s->seen, cap * sizeof(*s->seen));

		if (!p) {
			snprintf(err, n, "solutions: %s", strerror(ENOMEM));
			return -ENOMEM;
		}
		s->seen = p;
		s->cap = cap;
	}
	if (s->dir[0]) {
		int ret = save_solution(s, m, data, len, err, n);

		if (ret)
			return ret;
	}
	s->seen[s->n].kind = m->kind;
	s->seen[s->n].cov_hash = m->cov_hash;
	s->n++;
	s->unique[k]++;
	*is_new = true;
	return 0;
}
