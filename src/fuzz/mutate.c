#include "fuzz/mutate.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- PRNG ---- */

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

void fuzz_rng_seed(struct fuzz_rng *r, uint64_t seed)
{
	/* splitmix64 never yields four zero words in a row, so the xoshiro state is valid. */
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

uint64_t fuzz_rng_next(struct fuzz_rng *r)
{
	uint64_t *s = r->s;
	uint64_t result = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

uint64_t fuzz_rng_below(struct fuzz_rng *r, uint64_t n)
{
	uint64_t x, limit;

	if (n == 0)
		return 0;
	/* Reject the top partial range so every value is equally likely. */
	limit = UINT64_MAX - UINT64_MAX % n;
	do {
		x = fuzz_rng_next(r);
	} while (x >= limit);
	return x % n;
}

/* ---- dictionary ---- */

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int dict_push(struct fuzz_dict *d, const uint8_t *p, size_t len)
{
	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 16;
		struct fuzz_token *t;

		if (d->n >= FUZZ_DICT_MAX_TOKENS)
			return -E2BIG;
		t = realloc(d->tok, cap * sizeof(*t));
		if (!t)
			return -ENOMEM;
		d->tok = t;
		d->cap = cap;
	}
	memcpy(d->tok[d->n].data, p, len);
	d->tok[d->n].len = len;
	d->n++;
	return 0;
}

/* One line (without its newline): 0 with the value in tok[0, *tlen), *tlen = 0 for a blank or comment
 * line, or -EINVAL with the reason in why. */
static int dict_line(const char *s, size_t len, uint8_t *tok, size_t *tlen, const char **why)
{
	size_t i = 0, out = 0;

	*tlen = 0;
	while (i < len && (s[i] == ' ' || s[i] == '\t'))
		i++;
	if (i < len && s[i] == '\r' && i + 1 == len)
		return 0; /* a CRLF file's blank line */
	if (i == len || s[i] == '#')
		return 0;
	/* Optional name: [A-Za-z0-9_]+ with an optional @level, then '='. */
	if (s[i] != '"') {
		size_t name = i;

		while (i < len && (s[i] == '_' || (s[i] >= '0' && s[i] <= '9') ||
				   (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z')))
			i++;
		if (i == name) {
			*why = "expected a name or '\"'";
			return -EINVAL;
		}
		if (i < len && s[i] == '@') {
			size_t lvl = ++i;

			while (i < len && s[i] >= '0' && s[i] <= '9')
				i++;
			if (i == lvl) {
				*why = "expected digits after '@'";
				return -EINVAL;
			}
		}
		while (i < len && (s[i] == ' ' || s[i] == '\t'))
			i++;
		if (i == len || s[i] != '=') {
			*why = "expected '=' after the name";
			return -EINVAL;
		}
		i++;
		while (i < len && (s[i] == ' ' || s[i] == '\t'))
			i++;
		if (i == len || s[i] != '"') {
			*why = "expected '\"' after '='";
			return -EINVAL;
		}
	}
	i++; /* the opening quote */
	for (;;) {
		unsigned char c;

		if (i == len) {
			*why = "missing closing '\"'";
			return -EINVAL;
		}
		c = (unsigned char)s[i];
		if (c == '"')
			break;
		if (c < 0x20 || c > 0x7e) {
			*why = "non-printable character in the value (use \\xNN)";
			return -EINVAL;
		}
		if (out == FUZZ_DICT_MAX_TOKEN) {
			*why = "value longer than 128 bytes";
			return -EINVAL;
		}
		if (c != '\\') {
			tok[out++] = c;
			i++;
			continue;
		}
		if (i + 1 == len) {
			*why = "'\\' at the end of the line";
			return -EINVAL;
		}
		c = (unsigned char)s[i + 1];
		if (c == '\\' || c == '"') {
			tok[out++] = c;
			i += 2;
		} else if (c == 'x') {
			int hi = i + 2 < len ? hexval(s[i + 2]) : -1;
			int lo = i + 3 < len ? hexval(s[i + 3]) : -1;

			if (hi < 0 || lo < 0) {
				*why = "\\x needs two hex digits";
				return -EINVAL;
			}
			tok[out++] = (uint8_t)(hi << 4 | lo);
			i += 4;
		} else {
			*why = "unknown escape (only \\\\, \\\" and \\xNN)";
			return -EINVAL;
		}
	}
	i++; /* the closing quote */
	while (i < len && (s[i] == ' ' || s[i] == '\t' || (s[i] == '\r' && i + 1 == len)))
		i++;
	if (i != len) {
		*why = "text after the closing '\"'";
		return -EINVAL;
	}
	if (out == 0) {
		*why = "empty value";
		return -EINVAL;
	}
	*tlen = out;
	return 0;
}

int fuzz_dict_parse(struct fuzz_dict *d, const char *text, size_t len, char *err, size_t n)
{
	size_t pos = 0, line = 0;
	uint8_t tok[FUZZ_DICT_MAX_TOKEN];

	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t end = nl ? (size_t)(nl - text) : len, tlen;
		const char *why = NULL;
		int ret;

		line++;
		if (memchr(text + pos, '\0', end - pos)) {
			snprintf(err, n, "line %zu: NUL byte", line);
			return -EINVAL;
		}
		if (dict_line(text + pos, end - pos, tok, &tlen, &why) < 0) {
			snprintf(err, n, "line %zu: %s", line, why);
			return -EINVAL;
		}
		if (tlen && (ret = dict_push(d, tok, tlen))) {
			snprintf(err, n, "line %zu: %s", line,
				 ret == -E2BIG ? "more than 65536 tokens" : strerror(-ret));
			return ret;
		}
		pos = end + 1;
	}
	return 0;
}

int fuzz_dict_load(struct fuzz_dict *d, const char *path, char *err, size_t n)
{
	char why[200];
	struct stat st;
	char *text = NULL;
	size_t got = 0;
	int fd, ret = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		ret = -errno;
		snprintf(err, n, "dictionary '%s': %s", path, strerror(-ret));
		goto out_close;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, n, "dictionary '%s' is not a regular file", path);
		ret = -EINVAL;
		goto out_close;
	}
	if (st.st_size > FUZZ_DICT_MAX_FILE) {
		snprintf(err, n, "dictionary '%s' is larger than %u bytes", path,
			 FUZZ_DICT_MAX_FILE);
		ret = -EFBIG;
		goto out_close;
	}
	text = malloc((size_t)st.st_size + 1);
	if (!text) {
		ret = -ENOMEM;
		snprintf(err, n, "dictionary '%s': %s", path, strerror(ENOMEM));
		goto out_close;
	}
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, text + got, (size_t)st.st_size - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			ret = -errno;
			snprintf(err, n, "dictionary '%s': %s", path, strerror(-ret));
			goto out_free;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	ret = fuzz_dict_parse(d, text, got, why, sizeof(why));
	if (ret)
		snprintf(err, n, "dictionary '%s': %s", path, why);
	else if (d->n == 0) {
		snprintf(err, n, "dictionary '%s' has no tokens", path);
		ret = -EINVAL;
	}
out_free:
	free(text);
out_close:
	if (fd >= 0)
		close(fd);
	return ret;
}

void fuzz_dict_free(struct fuzz_dict *d)
{
	free(d->tok);
	d->tok = NULL;
	d->n = d->cap = 0;
}

/* ---- operators ---- */

/* AFL's classic sets: boundaries of signed and unsigned types, small powers of two and a few
 * numbers that are often sizes or lengths. */
const int8_t fuzz_interesting8[] = { -128, -1, 0, 1, 16, 32, 64, 100, 127 };
const int16_t fuzz_interesting16[] = { -32768, -129, 128, 255, 256, 512, 1000, 1024, 4096, 32767 };
const int32_t fuzz_interesting32[] = {
	INT32_MIN, -100663046, -32769, 32768, 65535, 65536, 100663045, INT32_MAX,
};
const size_t fuzz_nr_interesting8 = sizeof(fuzz_interesting8) / sizeof(fuzz_interesting8[0]);
const size_t fuzz_nr_interesting16 = sizeof(fuzz_interesting16) / sizeof(fuzz_interesting16[0]);
const size_t fuzz_nr_interesting32 = sizeof(fuzz_interesting32) / sizeof(fuzz_interesting32[0]);

#define ARITH_MAX 35

static const char *const mut_names[FUZZ_MUT_NR] = {
	[FUZZ_MUT_BITFLIP] = "bitflip",
	[FUZZ_MUT_BYTEFLIP] = "byteflip",
	[FUZZ_MUT_ARITH8] = "arith8",
	[FUZZ_MUT_ARITH16] = "arith16",
	[FUZZ_MUT_ARITH32] = "arith32",
	[FUZZ_MUT_INTERESTING8] = "interesting8",
	[FUZZ_MUT_INTERESTING16] = "interesting16",
	[FUZZ_MUT_INTERESTING32] = "interesting32",
	[FUZZ_MUT_RANDOM_BYTE] = "random_byte",
	[FUZZ_MUT_DELETE] = "delete",
	[FUZZ_MUT_INSERT] = "insert",
	[FUZZ_MUT_DUPLICATE] = "duplicate",
	[FUZZ_MUT_OVERWRITE] = "overwrite",
	[FUZZ_MUT_SPLICE] = "splice",
	[FUZZ_MUT_DICT_INSERT] = "dict_insert",
	[FUZZ_MUT_DICT_OVERWRITE] = "dict_overwrite",
};

const char *fuzz_mut_name(enum fuzz_mut_op op)
{
	return (unsigned)op < FUZZ_MUT_NR ? mut_names[op] : "?";
}

static uint64_t load_word(const uint8_t *p, unsigned w, bool be)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < w; i++)
		v |= (uint64_t)p[be ? w - 1 - i : i] << (8 * i);
	return v;
}

static void store_word(uint8_t *p, unsigned w, bool be, uint64_t v)
{
	for (unsigned i = 0; i < w; i++)
		p[be ? w - 1 - i : i] = (uint8_t)(v >> (8 * i));
}

/* A block length in [1, max], short blocks more likely (half the time at most 8 bytes). */
static size_t block_len(struct fuzz_rng *r, size_t max)
{
	size_t cap = max < FUZZ_MUT_MAX_BLOCK ? max : FUZZ_MUT_MAX_BLOCK;

	if (cap > 8 && fuzz_rng_below(r, 2))
		cap = 8;
	return 1 + (size_t)fuzz_rng_below(r, cap);
}

/* Open a gap of `n` bytes at `pos` (the caller has checked len + n <= max_len). */
static void open_gap(uint8_t *buf, size_t *len, size_t pos, size_t n)
{
	memmove(buf + pos + n, buf + pos, *len - pos);
	*len += n;
}

static int arith(struct fuzz_mutator *m, uint8_t *buf, size_t len, unsigned w)
{
	size_t pos;
	bool be;
	uint64_t v, delta, mask = w == 8 ? UINT64_MAX : (1ull << (8 * w)) - 1;

	if (len < w)
		return -EAGAIN;
	pos = fuzz_rng_below(&m->rng, len - w + 1);
	be = w > 1 && fuzz_rng_below(&m->rng, 2);
	delta = 1 + fuzz_rng_below(&m->rng, ARITH_MAX);
	v = load_word(buf + pos, w, be);
	v = fuzz_rng_below(&m->rng, 2) ? v + delta : v - delta;
	store_word(buf + pos, w, be, v & mask);
	return 0;
}

static int interesting(struct fuzz_mutator *m, uint8_t *buf, size_t len, unsigned w)
{
	/* Each width also uses the narrower sets, as AFL does. */
	size_t n8 = fuzz_nr_interesting8, n16 = fuzz_nr_interesting16,
	       n = n8 + (w >= 2 ? n16 : 0) + (w == 4 ? fuzz_nr_interesting32 : 0), k, pos;
	int64_t v;
	bool be;

	if (len < w)
		return -EAGAIN;
	pos = fuzz_rng_below(&m->rng, len - w + 1);
	be = w > 1 && fuzz_rng_below(&m->rng, 2);
	k = fuzz_rng_below(&m->rng, n);
	if (k < n8)
		v = fuzz_interesting8[k];
	else if (k < n8 + n16)
		v = fuzz_interesting16[k - n8];
	else
		v = fuzz_interesting32[k - n8 - n16];
	store_word(buf + pos, w, be, (uint64_t)v);
	return 0;
}

int fuzz_mutate_op(struct fuzz_mutator *m, enum fuzz_mut_op op, uint8_t *buf, size_t *len,
		   const uint8_t *other, size_t other_len)
{
	struct fuzz_rng *r = &m->rng;
	size_t l = *len, pos, n, from;

	if (l == 0 || l > m->max_len)
		return -EINVAL;
	switch (op) {
	case FUZZ_MUT_BITFLIP:
		pos = fuzz_rng_below(r, l * 8);
		buf[pos / 8] ^= (uint8_t)(0x80u >> (pos % 8));
		return 0;
	case FUZZ_MUT_BYTEFLIP:
		buf[fuzz_rng_below(r, l)] ^= 0xff;
		return 0;
	case FUZZ_MUT_ARITH8:
		return arith(m, buf, l, 1);
	case FUZZ_MUT_ARITH16:
		return arith(m, buf, l, 2);
	case FUZZ_MUT_ARITH32:
		return arith(m, buf, l, 4);
	case FUZZ_MUT_INTERESTING8:
		return interesting(m, buf, l, 1);
	case FUZZ_MUT_INTERESTING16:
		return interesting(m, buf, l, 2);
	case FUZZ_MUT_INTERESTING32:
		return interesting(m, buf, l, 4);
	case FUZZ_MUT_RANDOM_BYTE:
		pos = fuzz_rng_below(r, l);
		buf[pos] ^= (uint8_t)(1 + fuzz_rng_below(r, 255));
		return 0;
	case FUZZ_MUT_DELETE:
		if (l < 2)
			return -EAGAIN;
		n = block_len(r, l - 1);
		pos = fuzz_rng_below(r, l - n + 1);
		memmove(buf + pos, buf + pos + n, l - pos - n);
		*len = l - n;
		return 0;
	case FUZZ_MUT_INSERT:
		if (l >= m->max_len)
			return -EAGAIN;
		n = block_len(r, m->max_len - l);
		pos = fuzz_rng_below(r, l + 1);
		open_gap(buf, len, pos, n);
		if (fuzz_rng_below(r, 2)) {
			memset(buf + pos, (int)fuzz_rng_below(r, 256), n);
		} else {
			for (size_t i = 0; i < n; i++)
				buf[pos + i] = (uint8_t)fuzz_rng_next(r);
		}
		return 0;
	case FUZZ_MUT_DUPLICATE:
		if (l >= m->max_len)
			return -EAGAIN;
		n = block_len(r, l < m->max_len - l ? l : m->max_len - l);
		from = fuzz_rng_below(r, l - n + 1);
		pos = fuzz_rng_below(r, l + 1);
		open_gap(buf, len, pos, n);
		/* The source block may have moved with the gap: copy from where it is now. */
		if (from >= pos)
			memcpy(buf + pos, buf + from + n, n);
		else if (from + n <= pos)
			memcpy(buf + pos, buf + from, n);
		else {
			/* The gap split the block: its head stayed, its tail moved past the gap. */
			size_t head = pos - from;

			memmove(buf + pos, buf + from, head);
			memmove(buf + pos + head, buf + pos + n, n - head);
		}
		return 0;
	case FUZZ_MUT_OVERWRITE:
		if (l < 2)
			return -EAGAIN;
		n = block_len(r, l - 1);
		from = fuzz_rng_below(r, l - n + 1);
		pos = fuzz_rng_below(r, l - n + 1);
		if (from == pos)
			pos = (pos + 1) % (l - n + 1);
		memmove(buf + pos, buf + from, n);
		return 0;
	case FUZZ_MUT_SPLICE: {
		size_t head, tail_from, tail;

		if (!other || other_len < 2 || m->max_len < 2)
			return -EAGAIN;
		/* Keep buf[0, head), then other[tail_from, other_len): at least one byte of each,
		 * so head stops one short of max_len. */
		head = 1 + fuzz_rng_below(r, l < m->max_len - 1 ? l : m->max_len - 1);
		tail_from = fuzz_rng_below(r, other_len);
		tail = other_len - tail_from;
		if (tail > m->max_len - head)
			tail = m->max_len - head;
		memcpy(buf + head, other + tail_from, tail);
		*len = head + tail;
		return 0;
	}
	case FUZZ_MUT_DICT_INSERT: {
		const struct fuzz_token *t;

		if (!m->dict || !m->dict->n)
			return -EAGAIN;
		t = &m->dict->tok[fuzz_rng_below(r, m->dict->n)];
		if (t->len > m->max_len - l)
			return -EAGAIN;
		pos = fuzz_rng_below(r, l + 1);
		open_gap(buf, len, pos, t->len);
		memcpy(buf + pos, t->data, t->len);
		return 0;
	}
	case FUZZ_MUT_DICT_OVERWRITE: {
		const struct fuzz_token *t;

		if (!m->dict || !m->dict->n)
			return -EAGAIN;
		t = &m->dict->tok[fuzz_rng_below(r, m->dict->n)];
		if (t->len > l)
			return -EAGAIN;
		pos = fuzz_rng_below(r, l - t->len + 1);
		memcpy(buf + pos, t->data, t->len);
		return 0;
	}
	default:
		return -EINVAL;
	}
}

unsigned fuzz_mutate_havoc(struct fuzz_mutator *m, uint8_t *buf, size_t *len, const uint8_t *other,
			   size_t other_len)
{
	unsigned stack = 2u << fuzz_rng_below(&m->rng, 4), done = 0;

	for (unsigned i = 0; i < stack; i++) {
		/* An operator that does not apply is re-drawn; bitflip always applies, so a few
		 * tries suffice in practice and the cap only bounds the loop. */
		for (int tries = 0; tries < 32; tries++) {
			enum fuzz_mut_op op =
				(enum fuzz_mut_op)fuzz_rng_below(&m->rng, FUZZ_MUT_NR);

			if (fuzz_mutate_op(m, op, buf, len, other, other_len) == 0) {
				done++;
				break;
			}
		}
	}
	if (!done && fuzz_mutate_op(m, FUZZ_MUT_BITFLIP, buf, len, NULL, 0) == 0)
		done = 1;
	return done;
}
